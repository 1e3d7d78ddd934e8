//! A set of 64-bit hashes whose memory does not grow with the number of members.
//!
//! Exact deduplication must remember one hash per kept document. Held in a `HashSet` that costs
//! ≈ 10–18 bytes per document (16 GB for a billion documents), so [`SeenHashes`] keeps at most
//! [`SeenHashes::memory_hashes`] in a hash set and spills the rest to disk as **sorted runs** of
//! little-endian `u64`s (an LSM-tree without deletions):
//!
//! * when the in-memory set is full it is sorted and written as a new run, and the newest runs are
//!   merged while the one before is no larger than the new one (a binary counter), so there are at
//!   most ⌈log₂(n / memory_hashes)⌉ + 1 runs and each hash is rewritten that many times at most;
//! * runs are read memory-mapped (page cache, reclaimable — not the process's own memory); a
//!   lookup starts where a uniform hash is expected (`hash / 2⁶⁴ · len`) and gallops from there,
//!   so it touches one or two pages per run.
//!
//! The runs live in a temporary directory (created on the first spill, removed on drop).
use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::dedup::IdentityBuild;
use crate::error::{DataError, Result};

/// Hashes kept in memory before spilling by default: 2¹⁷ (≈ 2.3 MiB of hash table).
pub const DEFAULT_MEMORY_HASHES: usize = 1 << 17;

/// A set of `u64` hashes: the newest in memory, the rest in sorted runs on disk.
#[derive(Debug)]
pub struct SeenHashes {
    recent: HashSet<u64, IdentityBuild>,
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

impl Run {
    fn at(&self, i: usize) -> u64 {
        u64::from_le_bytes(self.map[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
    }

    /// Whether the run holds `hash`: interpolation guess, galloping to bracket it, then bisection.
    fn contains(&self, hash: u64) -> bool {
        let n = self.len;
        if n == 0 {
            return false;
        }
        let guess = ((u128::from(hash) * n as u128) >> 64) as usize;
        let value = self.at(guess);
        // The answer lies in [lo, hi).
        let (mut lo, mut hi) = if value == hash {
            return true;
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
                std::cmp::Ordering::Equal => return true,
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        false
    }
}

impl SeenHashes {
    /// An empty set keeping at most `memory_hashes` (≥ 1) hashes in memory; spilled runs go to a
    /// temporary directory inside `spill_parent`.
    pub fn new(spill_parent: &Path, memory_hashes: usize) -> Self {
        SeenHashes {
            recent: HashSet::default(),
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
        self.recent.contains(&hash) || self.runs.iter().any(|r| r.contains(hash))
    }

    /// Adds `hash`; `Ok(true)` if it was new, `Ok(false)` if it was already a member. Errors only
    /// come from writing a run to disk.
    pub fn insert(&mut self, hash: u64) -> Result<bool> {
        if self.contains(hash) {
            return Ok(false);
        }
        self.recent.insert(hash);
        if self.recent.len() >= self.memory_hashes {
            self.spill()?;
        }
        Ok(true)
    }

    /// Writes the in-memory hashes as a sorted run, then merges runs while the one before the
    /// newest is no larger than it.
    fn spill(&mut self) -> Result<()> {
        let mut sorted: Vec<u64> = self.recent.drain().collect();
        sorted.sort_unstable();
        let run = self.write_run(sorted.len(), sorted.into_iter())?;
        self.runs.push(run);
        while self.runs.len() >= 2 && self.runs[self.runs.len() - 2].len <= self.runs[self.runs.len() - 1].len
        {
            let newer = self.runs.pop().expect("two runs");
            let older = self.runs.pop().expect("two runs");
            let merged = self.write_run(older.len + newer.len, Merge::new(&older, &newer))?;
            for old in [older, newer] {
                drop(old.map);
                std::fs::remove_file(&old.path).map_err(|e| DataError::io(&old.path, e))?;
            }
            self.runs.push(merged);
        }
        Ok(())
    }

    /// Writes `len` sorted hashes to a new file in the spill directory and maps it.
    fn write_run(&mut self, len: usize, hashes: impl Iterator<Item = u64>) -> Result<Run> {
        if self.spill_dir.is_none() {
            let dir = tempfile::Builder::new()
                .prefix(".dedup-")
                .tempdir_in(&self.spill_parent)
                .map_err(|e| DataError::io(&self.spill_parent, e))?;
            self.spill_dir = Some(dir);
        }
        let dir = self.spill_dir.as_ref().expect("created above").path();
        let path = dir.join(format!("run-{:06}.u64", self.next_run));
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
        for h in hashes {
            out.write_all(&h.to_le_bytes()).map_err(io)?;
        }
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        // An empty file cannot be mapped; runs are never empty (memory_hashes ≥ 1).
        debug_assert!(len > 0);
        // SAFETY: the file is ours, in a private temporary directory, and never written again.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        if map.len() != len * 8 {
            return Err(DataError::io(
                &path,
                std::io::Error::other(format!("run has {} bytes, expected {}", map.len(), len * 8)),
            ));
        }
        Ok(Run { path, map, len })
    }
}

/// The sorted union of two sorted runs with no common member.
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
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let a = (self.i < self.a.len).then(|| self.a.at(self.i));
        let b = (self.j < self.b.len).then(|| self.b.at(self.j));
        match (a, b) {
            (Some(x), Some(y)) if x <= y => {
                self.i += 1;
                Some(x)
            }
            (_, Some(y)) => {
                self.j += 1;
                Some(y)
            }
            (Some(x), None) => {
                self.i += 1;
                Some(x)
            }
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    #[test]
    fn agrees_with_an_in_memory_set_across_spills_and_merges() {
        let dir = tempfile::tempdir().unwrap();
        for memory in [1, 3, 64] {
            let mut seen = SeenHashes::new(dir.path(), memory);
            let mut reference = HashSet::new();
            let mut rng = SplitMix64::new(memory as u64);
            // 4,000 draws from 2,500 values: plenty of repeats, old and recent, plus extremes.
            let mut draws: Vec<u64> = (0..4000)
                .map(|_| (rng.next_u64() % 2500).wrapping_mul(0x9E37_79B9_7F4A_7C15))
                .collect();
            draws.extend([0, u64::MAX, 0, u64::MAX, 1]);
            for h in draws {
                assert_eq!(
                    seen.insert(h).unwrap(),
                    reference.insert(h),
                    "hash {h}, memory {memory}"
                );
            }
            assert_eq!(seen.len(), reference.len());
            for probe in 0..3000u64 {
                let h = probe.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                assert_eq!(seen.contains(h), reference.contains(&h), "probe {probe}");
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
