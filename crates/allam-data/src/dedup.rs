//! Deduplication within a source: exact (hash of normalised text) and near (MinHash + LSH).
//!
//! * **Exact**: [`dedup_key`] lower-cases, removes Arabic diacritics and tatweel, and collapses every
//!   run of non-alphanumeric characters to one space; the xxh3-64 hash of that string is kept in a
//!   set that keeps a bounded number in memory and spills the rest to sorted runs on disk
//!   ([`SeenHashes`]), so memory stays flat however many documents a source has.
//! * **Near**: the document's character 5-grams (of the same normalised text) are hashed and
//!   MinHashed with `k` permutations `h_i(x) = (a_i·x + b_i) mod 2^64 >> 32`. The signature is
//!   split into `b` bands of `r` rows (`b·r = k`) chosen so that the LSH S-curve's threshold
//!   `(1/b)^(1/r)` is closest to the configured Jaccard threshold; documents sharing a band
//!   bucket are candidates, and a candidate is a duplicate when the share of equal signature
//!   entries (an unbiased Jaccard estimate) reaches the threshold. Signatures (`4·k` bytes per
//!   kept document) go to a temporary file and buckets to a [`SeenHashes`], so memory stays flat.
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::seen::SeenHashes;
use allam_io::rng::{SplitMix64, mix};
use allam_script::{TATWEEL, is_arabic_digit, is_arabic_letter, is_arabic_mark};

/// The text that exact deduplication hashes: case-folded, diacritics and tatweel removed,
/// punctuation and whitespace runs collapsed to single spaces.
pub fn dedup_key(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.chars() {
        let keep = if c.is_ascii() {
            c.is_ascii_alphanumeric()
        } else if is_arabic_mark(c) || c == TATWEEL {
            continue;
        } else if ('\u{0600}'..='\u{06FF}').contains(&c) {
            // Arabic block: letters and digits have no case; skip the Unicode tables.
            is_arabic_letter(c) || is_arabic_digit(c)
        } else {
            c.is_alphanumeric()
        };
        if keep {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            if c.is_ascii() {
                out.push(c.to_ascii_lowercase());
            } else if ('\u{0600}'..='\u{06FF}').contains(&c) {
                out.push(c);
            } else {
                out.extend(c.to_lowercase());
            }
        } else {
            pending_space = true;
        }
    }
    out
}

/// Exact-duplicate filter: remembers the hash of every document it has accepted, in a
/// [`SeenHashes`] (a bounded number in memory, the rest in sorted runs on disk).
#[derive(Debug)]
pub struct ExactDedup {
    seen: SeenHashes,
}

impl ExactDedup {
    /// An empty filter keeping at most `memory_hashes` hashes in memory and spilling the rest to
    /// a temporary directory inside `spill_parent`.
    pub fn new(spill_parent: &Path, memory_hashes: usize) -> Self {
        ExactDedup {
            seen: SeenHashes::new(spill_parent, memory_hashes),
        }
    }

    /// Hash of a document's normalised text.
    pub fn hash(text: &str) -> u64 {
        xxhash_rust::xxh3::xxh3_64(dedup_key(text).as_bytes())
    }

    /// Returns `true` if the hash is new (and remembers it), `false` for a duplicate; errors only
    /// come from spilling to disk.
    pub fn insert_hash(&mut self, hash: u64) -> Result<bool> {
        self.seen.insert(hash)
    }
}

/// Near-duplicate filter (MinHash signatures + banded LSH) whose memory does not grow with the
/// number of documents: each LSH bucket remembers the first kept document that fell into it (in a
/// [`SeenHashes`], spilled to disk past its memory cap), and kept documents' signatures are
/// appended to a temporary file, read back only to verify a candidate.
///
/// A new document is compared with the first document of each bucket it shares; when that one
/// is not similar enough, later documents of the bucket are not stored there. Buckets shared by
/// dissimilar documents are rare by construction (the S-curve), and a true near duplicate shares
/// most bands with its original, so this loses little recall.
#[derive(Debug)]
pub struct NearDedup {
    threshold: f64,
    bands: usize,
    rows: usize,
    coeffs: Vec<(u64, u64)>,
    buckets: SeenHashes,
    signatures: SignatureFile,
}

/// Character n-gram length used for shingling.
pub const SHINGLE_CHARS: usize = 5;

impl NearDedup {
    /// A filter for Jaccard `threshold` (in `(0, 1]`) with `permutations` hash functions; its
    /// temporary files go inside `spill_parent`, and at most `memory_hashes` buckets are held in
    /// memory.
    pub fn new(
        threshold: f64,
        permutations: usize,
        seed: u64,
        spill_parent: &Path,
        memory_hashes: usize,
    ) -> Result<Self> {
        let k = permutations.max(2);
        let (bands, rows) = choose_bands(k, threshold);
        let mut rng = SplitMix64::new(mix(seed, 0x4D49_4E48));
        let coeffs = (0..bands * rows)
            .map(|_| (rng.next_u64() | 1, rng.next_u64()))
            .collect();
        Ok(NearDedup {
            threshold,
            bands,
            rows,
            coeffs,
            buckets: SeenHashes::new(spill_parent, memory_hashes),
            signatures: SignatureFile::create(spill_parent, bands * rows)?,
        })
    }

    /// `(bands, rows)` in use.
    pub fn shape(&self) -> (usize, usize) {
        (self.bands, self.rows)
    }

    /// The MinHash signature of a text (its [`dedup_key`] character 5-grams).
    pub fn signature(&self, text: &str) -> Box<[u32]> {
        let key = dedup_key(text);
        let chars: Vec<(usize, char)> = key.char_indices().collect();
        let mut sig = vec![u32::MAX; self.coeffs.len()].into_boxed_slice();
        let mut add = |bytes: &[u8]| {
            let x = xxhash_rust::xxh3::xxh3_64(bytes);
            for (s, (a, b)) in sig.iter_mut().zip(&self.coeffs) {
                let h = (a.wrapping_mul(x).wrapping_add(*b) >> 32) as u32;
                if h < *s {
                    *s = h;
                }
            }
        };
        if chars.len() <= SHINGLE_CHARS {
            add(key.as_bytes());
        } else {
            for i in 0..=chars.len() - SHINGLE_CHARS {
                let start = chars[i].0;
                let end = chars.get(i + SHINGLE_CHARS).map_or(key.len(), |&(pos, _)| pos);
                add(&key.as_bytes()[start..end]);
            }
        }
        sig
    }

    /// Estimated Jaccard similarity of two signatures.
    pub fn similarity(a: &[u32], b: &[u32]) -> f64 {
        let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
        same as f64 / a.len() as f64
    }

    /// Returns `Ok(true)` and remembers the document when it is not a near duplicate of one seen
    /// before; `Ok(false)` for a near duplicate. Errors come from the temporary files.
    pub fn insert(&mut self, signature: Box<[u32]>) -> Result<bool> {
        // One key per band, the band's index mixed in: all bands share one bucket table.
        let band_keys: Vec<u64> = signature
            .chunks(self.rows)
            .enumerate()
            .map(|(band, values)| {
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                mix(xxhash_rust::xxh3::xxh3_64(&bytes), band as u64)
            })
            .collect();
        let mut compared: Vec<u32> = Vec::new();
        let mut new_buckets = Vec::new();
        for key in band_keys {
            match self.buckets.get(key) {
                None => new_buckets.push(key),
                Some(id) if !compared.contains(&id) => {
                    compared.push(id);
                    let other = self.signatures.read(id)?;
                    if Self::similarity(&signature, other) >= self.threshold {
                        return Ok(false);
                    }
                }
                Some(_) => {}
            }
        }
        let id = self.signatures.append(&signature)?;
        for key in new_buckets {
            self.buckets.insert_new(key, id)?;
        }
        Ok(true)
    }
}

/// Kept documents' signatures, `width` little-endian `u32`s each, appended to a temporary file
/// and read back by document id.
#[derive(Debug)]
struct SignatureFile {
    writer: BufWriter<tempfile::NamedTempFile>,
    /// A second handle on the same file (its own read position).
    reader: File,
    width: usize,
    written: u32,
    /// Documents known to be on disk (the writer flushed).
    flushed: u32,
    bytes: Vec<u8>,
    values: Vec<u32>,
}

impl SignatureFile {
    fn create(dir: &Path, width: usize) -> Result<Self> {
        let file = crate::shard::temp_in(dir, ".minhash-")?;
        let reader = File::open(file.path()).map_err(|e| DataError::io(file.path(), e))?;
        Ok(SignatureFile {
            writer: BufWriter::with_capacity(1 << 16, file),
            reader,
            width,
            written: 0,
            flushed: 0,
            bytes: vec![0; width * 4],
            values: vec![0; width],
        })
    }

    fn path(&self) -> PathBuf {
        self.writer.get_ref().path().to_path_buf()
    }

    /// Appends a signature; returns its document id.
    fn append(&mut self, signature: &[u32]) -> Result<u32> {
        debug_assert_eq!(signature.len(), self.width);
        for v in signature {
            let result = self.writer.write_all(&v.to_le_bytes());
            result.map_err(|e| DataError::io(self.path(), e))?;
        }
        self.written += 1;
        Ok(self.written - 1)
    }

    /// The signature of document `id` (one appended before).
    fn read(&mut self, id: u32) -> Result<&[u32]> {
        if id >= self.flushed {
            let result = self.writer.flush();
            result.map_err(|e| DataError::io(self.path(), e))?;
            self.flushed = self.written;
        }
        let offset = u64::from(id) * self.bytes.len() as u64;
        let result = self
            .reader
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.reader.read_exact(&mut self.bytes));
        result.map_err(|e| DataError::io(self.path(), e))?;
        for (v, b) in self.values.iter_mut().zip(self.bytes.chunks_exact(4)) {
            *v = u32::from_le_bytes(b.try_into().expect("4 bytes"));
        }
        Ok(&self.values)
    }
}

/// Picks `(b, r)` with `b·r ≤ k` whose LSH threshold `(1/b)^(1/r)` is closest to `threshold`.
pub fn choose_bands(k: usize, threshold: f64) -> (usize, usize) {
    let mut best = (k, 1);
    let mut best_err = f64::INFINITY;
    for r in 1..=k {
        let b = k / r;
        if b == 0 {
            break;
        }
        let t = (1.0 / b as f64).powf(1.0 / r as f64);
        // Slightly favour lower LSH thresholds (fewer false negatives; verification removes
        // false positives).
        let err = (t - threshold).abs() + if t > threshold { 0.02 } else { 0.0 };
        if err < best_err {
            best_err = err;
            best = (b, r);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_key_ignores_case_punctuation_and_diacritics() {
        assert_eq!(dedup_key("Hello,   World!"), "hello world");
        assert_eq!(dedup_key("  hello world "), "hello world");
        assert_eq!(dedup_key("بِسْمِ اللَّهِ"), "بسم الله");
        let dir = tempfile::tempdir().unwrap();
        // One hash in memory: the duplicate is found in a spilled run.
        let mut d = ExactDedup::new(dir.path(), 1);
        assert!(d.insert_hash(ExactDedup::hash("Hello, world")).unwrap());
        assert!(!d.insert_hash(ExactDedup::hash("hello world!!")).unwrap());
        assert!(d.insert_hash(ExactDedup::hash("hello there")).unwrap());
    }

    #[test]
    fn near_duplicates_are_caught_and_different_texts_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = NearDedup::new(0.7, 128, 1, dir.path(), 1 << 10).unwrap();
        let a = "The committee approved the new budget for the city library on Tuesday evening \
                 after a long debate about opening hours and the children's reading programme.";
        let b = "The committee approved the new budget for the city library on Tuesday evening \
                 after a long debate about opening hours and the children's reading program.";
        let c = "A completely different sentence about mountains, rivers and the weather in \
                 spring, written to share almost no character five-grams with the others.";
        let sa = d.signature(a);
        let sb = d.signature(b);
        assert!(NearDedup::similarity(&sa, &sb) > 0.8);
        assert!(d.insert(sa).unwrap());
        assert!(!d.insert(sb).unwrap());
        assert!(d.insert(d.signature(c)).unwrap());
    }

    #[test]
    fn band_choice_tracks_threshold() {
        let (b, r) = choose_bands(128, 0.8);
        let t = (1.0 / b as f64).powf(1.0 / r as f64);
        assert!((t - 0.8).abs() < 0.1, "{b}x{r} -> {t}");
        assert!(b * r <= 128);
    }
}
