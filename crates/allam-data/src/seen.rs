//! A set of 64-bit hashes, each with the `u32` it was first inserted with, whose memory does not
//! grow with the number of members.
//!
//! Exact deduplication must remember one hash per kept document, and near deduplication one
//! document id per LSH bucket. Held in a hash map that costs ≈ 13–26 bytes per entry (16 GB for a
//! billion documents), so [`SeenHashes`] keeps at most `memory_hashes` entries in a hash map and
//! spills the rest to disk as **sorted runs** of little-endian `(u64 hash, u32 value)` records (an
//! LSM-tree without deletions or updates: the first value inserted for a hash stays):
//!
//! * when the in-memory set is full it is sorted and written as a new run, and the newest runs are
//!   merged while the one before is no larger than the new one (a binary counter), so there are at
//!   most ⌈log₂(n / memory_hashes)⌉ + 1 runs and each hash is rewritten that many times at most;
//! * runs are read memory-mapped (page cache, reclaimable — not the process's own memory); a
//!   lookup starts where a uniform hash is expected (`hash / 2⁶⁴ · len`) and gallops from there,
//!   so it touches one or two pages per run.
//!
//! The runs live in a temporary directory (created on the first spill, removed on drop).
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::{DataError, Result};
use crate::hash::IdentityBuild;

/// Hashes kept in memory before spilling by default: 2¹⁷ (≈ 3.4 MiB of hash table).
pub const DEFAULT_MEMORY_HASHES: usize = 1 << 17;

/// A set of `u64` hashes with their first values: the newest in memory, the rest in sorted runs on
/// disk.
#[derive(Debug)]
pub struct SeenHashes {
    recent: HashMap<u64, u32, IdentityBuild>,
    memory_hashes: usize,
    runs: Vec<Run>,
    spill_parent: PathBuf,
    spill_dir: Option<tempfile::TempDir>,
    next_run: u64,
}

/// One sorted run: its file (kept for the path in errors) and its mapping.
#[derive(Debug)]
struct Run {
    path: PathBuf,
    map: Mmap,
    len: usize,
}

/// Bytes of one record: the hash, then its value.
const RECORD: usize = 12;

impl Run {
    fn at(&self, i: usize) -> u64 {
        let o = i * RECORD;
        u64::from_le_bytes(self.map[o..o + 8].try_into().expect("8 bytes"))
    }

    fn value(&self, i: usize) -> u32 {
        let o = i * RECORD + 8;
        u32::from_le_bytes(self.map[o..o + 4].try_into().expect("4 bytes"))
    }

    fn record(&self, i: usize) -> (u64, u32) {
        (self.at(i), self.value(i))
    }

    /// The value stored with `hash`, if the run holds it.
    fn get(&self, hash: u64) -> Option<u32> {
        self.position(hash).map(|i| self.value(i))
    }

    /// Where the run holds `hash`: interpolation guess, galloping to bracket it, then bisection.
    fn position(&self, hash: u64) -> Option<usize> {
        let n = self.len;
        if n == 0 {
            return None;
        }
        let guess = ((u128::from(hash) * n as u128) >> 64) as usize;
        let value = self.at(guess);
        // The answer lies in [lo, hi).
        let (mut lo, mut hi) = if value == hash {
            return Some(guess);
        } else if value < hash {
            let (mut lo, mut step) = (guess + 1, 1);
            loop {
                let probe = guess + step;
                if probe >= n {
                    break (lo, n);
                }
                if self.at(probe) >= hash {
                    break (lo, probe + 1);
                }
                lo = probe + 1;
                step *= 2;
            }
        } else {
            let (mut hi, mut step) = (guess, 1);
            loop {
                if step > guess {
                    break (0, hi);
                }
                let probe = guess - step;
                if self.at(probe) <= hash {
                    break (probe, hi);
                }
                hi = probe;
                step *= 2;
            }
        };
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.at(mid).cmp(&hash) {
                std::cmp::Ordering::Equal => return Some(mid),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        None
    }
}

impl SeenHashes {
    /// An empty set keeping at most `memory_hashes` (≥ 1) hashes in memory; spilled runs go to a
    /// temporary directory inside `spill_parent`.
    pub fn new(spill_parent: &Path, memory_hashes: usize) -> Self {
        SeenHashes {
            recent: HashMap::default(),
            memory_hashes: memory_hashes.max(1),
            runs: Vec::new(),
            spill_parent: spill_parent.to_path_buf(),
            spill_dir: None,
            next_run: 0,
        }
    }

    /// Members.
    pub fn len(&self) -> usize {
        self.recent.len() + self.runs.iter().map(|r| r.len).sum::<usize>()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `hash` is a member.
    pub fn contains(&self, hash: u64) -> bool {
        self.get(hash).is_some()
    }

    /// The value `hash` was first inserted with, if it is a member.
    pub fn get(&self, hash: u64) -> Option<u32> {
        if let Some(&value) = self.recent.get(&hash) {
            return Some(value);
        }
        self.runs.iter().find_map(|r| r.get(hash))
    }

    /// Adds `hash`; `Ok(true)` if it was new, `Ok(false)` if it was already a member. Errors only
    /// come from writing a run to disk.
    pub fn insert(&mut self, hash: u64) -> Result<bool> {
        if self.contains(hash) {
            return Ok(false);
        }
        self.insert_new(hash, 0)?;
        Ok(true)
    }

    /// Adds `hash` with `value`, which the caller knows is not a member yet (checked with
    /// [`SeenHashes::get`]; a second value for a member would shadow nothing and waste space).
    pub fn insert_new(&mut self, hash: u64, value: u32) -> Result<()> {
        debug_assert!(!self.contains(hash));
        self.recent.insert(hash, value);
        if self.recent.len() >= self.memory_hashes {
            self.spill()?;
        }
        Ok(())
    }

    /// Writes the in-memory hashes as a sorted run, then merges runs while the one before the
    /// newest is no larger than it.
    fn spill(&mut self) -> Result<()> {
        let mut sorted: Vec<(u64, u32)> = self.recent.drain().collect();
        sorted.sort_unstable_by_key(|&(hash, _)| hash);
        let run = self.write_run(sorted.into_iter())?;
        self.runs.push(run);
        while self.runs.len() >= 2 && self.runs[self.runs.len() - 2].len <= self.runs[self.runs.len() - 1].len
        {
            let newer = self.runs.pop().expect("two runs");
            let older = self.runs.pop().expect("two runs");
            let merged = self.write_run(Merge::new(&older, &newer))?;
            for old in [older, newer] {
                drop(old.map);
                std::fs::remove_file(&old.path).map_err(|e| DataError::io(&old.path, e))?;
            }
            self.runs.push(merged);
        }
        Ok(())
    }

    /// Writes records sorted by hash (at least one) to a new file in the spill directory and maps
    /// it.
    fn write_run(&mut self, records: impl Iterator<Item = (u64, u32)>) -> Result<Run> {
        if self.spill_dir.is_none() {
            let dir = tempfile::Builder::new()
                .prefix(".dedup-")
                .tempdir_in(&self.spill_parent)
                .map_err(|e| DataError::io(&self.spill_parent, e))?;
            self.spill_dir = Some(dir);
        }
        let dir = self.spill_dir.as_ref().expect("created above").path();
        let path = dir.join(format!("run-{:06}.bin", self.next_run));
        self.next_run += 1;
        let io = |e| DataError::io(&path, e);
        // Read access too: the run is mapped once written.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io)?;
        let mut out = BufWriter::with_capacity(1 << 16, file);
        let mut len = 0;
        for (hash, value) in records {
            out.write_all(&hash.to_le_bytes()).map_err(io)?;
            out.write_all(&value.to_le_bytes()).map_err(io)?;
            len += 1;
        }
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        // An empty file cannot be mapped; runs are never empty (memory_hashes ≥ 1).
        debug_assert!(len > 0);
        // SAFETY: the file is ours, in a private temporary directory, and never written again.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        if map.len() != len * RECORD {
            return Err(DataError::io(
                &path,
                std::io::Error::other(format!("run has {} bytes, expected {}", map.len(), len * RECORD)),
            ));
        }
        Ok(Run { path, map, len })
    }
}

/// The sorted union of two sorted runs with no common member, as `(hash, value)` records.
struct Merge<'a> {
    a: &'a Run,
    b: &'a Run,
    i: usize,
    j: usize,
}

impl<'a> Merge<'a> {
    fn new(a: &'a Run, b: &'a Run) -> Self {
        Merge { a, b, i: 0, j: 0 }
    }
}

impl Iterator for Merge<'_> {
    type Item = (u64, u32);

    fn next(&mut self) -> Option<(u64, u32)> {
        let a = (self.i < self.a.len).then(|| self.a.record(self.i));
        let b = (self.j < self.b.len).then(|| self.b.record(self.j));
        match (a, b) {
            (Some(x), Some(y)) if y.0 < x.0 => {
                self.j += 1;
                Some(y)
            }
            (Some(x), _) => {
                self.i += 1;
                Some(x)
            }
            (None, y) => {
                self.j += 1;
                y
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use allam_io::rng::SplitMix64;

    #[test]
    fn agrees_with_an_in_memory_map_across_spills_and_merges() {
        let dir = tempfile::tempdir().unwrap();
        for memory in [1, 3, 64] {
            let mut seen = SeenHashes::new(dir.path(), memory);
            let mut reference = HashMap::new();
            let mut rng = SplitMix64::new(memory as u64);
            // 4,000 draws from 2,500 values: plenty of repeats, old and recent, plus extremes.
            let mut draws: Vec<u64> = (0..4000)
                .map(|_| (rng.next_u64() % 2500).wrapping_mul(0x9E37_79B9_7F4A_7C15))
                .collect();
            draws.extend([0, u64::MAX, 0, u64::MAX, 1]);
            for (i, h) in draws.into_iter().enumerate() {
                // Even draws through `insert` (exact dedup), odd ones through `get` + `insert_new`.
                let first = reference.get(&h).copied();
                if i % 2 == 0 {
                    assert_eq!(
                        seen.insert(h).unwrap(),
                        first.is_none(),
                        "hash {h}, memory {memory}"
                    );
                    reference.entry(h).or_insert(0);
                } else {
                    assert_eq!(seen.get(h), first, "hash {h}, memory {memory}");
                    if first.is_none() {
                        seen.insert_new(h, i as u32).unwrap();
                        reference.insert(h, i as u32);
                    }
                }
            }
            assert_eq!(seen.len(), reference.len());
            for probe in 0..3000u64 {
                let h = probe.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                assert_eq!(seen.get(h), reference.get(&h).copied(), "probe {probe}");
            }
            // A binary counter of runs: at most log2(n / memory) + 1 of them.
            let bound = (reference.len() as f64 / memory as f64).log2().ceil() as usize + 1;
            assert!(
                seen.runs.len() <= bound,
                "{} runs for memory {memory}",
                seen.runs.len()
            );
            assert!(memory == 64 || seen.runs.len() >= 2, "spilled and merged");
        }
    }

    #[test]
    fn lookups_find_every_member_of_a_skewed_run() {
        // Hashes crowded at one end defeat the interpolation guess; galloping must still find them.
        let dir = tempfile::tempdir().unwrap();
        let mut seen = SeenHashes::new(dir.path(), 1000);
        let members: Vec<u64> = (0..999u64).map(|i| i * 7 + 3).chain([u64::MAX - 5]).collect();
        for &h in &members {
            assert!(seen.insert(h).unwrap());
        }
        assert_eq!(seen.runs.len(), 1);
        assert!(seen.recent.is_empty());
        for &h in &members {
            assert!(seen.contains(h), "{h}");
            assert!(!seen.contains(h + 1), "{}", h + 1);
        }
        assert!(!seen.contains(0) && !seen.contains(u64::MAX));
    }

    #[test]
    fn the_spill_directory_is_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let mut seen = SeenHashes::new(dir.path(), 2);
        for h in 0..10 {
            seen.insert(h).unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        drop(seen);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
