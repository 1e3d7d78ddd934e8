//! Token shards in Megatron-LM's `MMapIndexedDataset` layout: a `.bin` of tokens and an `.idx`
//! index of document offsets, memory-mapped for reading.
//!
//! # Byte layout (all integers little-endian)
//!
//! `NAME.bin`: the tokens of every document, concatenated, each document ending with EOS; every
//! token is a `u16` (dtype code 8, vocabularies up to 65,536) or an `i32` (dtype code 4, holding
//! the `u32` id, vocabularies up to 2^31).
//!
//! `NAME.idx`:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 9 | magic `b"MMIDIDX\x00\x00"` |
//! | 9 | 8 | version, `u64` = 1 |
//! | 17 | 1 | dtype code, `u8`: 8 = `u16`, 4 = `i32` |
//! | 18 | 8 | `S`, number of sequences (here: documents), `u64` |
//! | 26 | 8 | `D`, number of document-index entries, `u64` = `S + 1` |
//! | 34 | 4·S | sequence lengths in tokens, `i32[S]` (EOS included) |
//! | 34+4S | 8·S | sequence byte offsets into `.bin`, `i64[S]` |
//! | 34+12S | 8·D | document indices `i64[D]` = `0, 1, …, S` (one sequence per document) |
//!
//! This is byte-for-byte what Megatron-LM's `IndexedDatasetBuilder` writes, so shards can be read
//! by Megatron (`--data-path NAME`) and vice versa (Megatron shards with one sequence per document).
//!
//! # Atomicity
//!
//! Both files are written to temporary files in the target directory, flushed and `fsync`ed,
//! then renamed: first `.bin`, then `.idx`. The `.idx` is the commit marker — a reader opens the
//! index first and checks that the `.bin` has exactly the size the index implies, so a shard whose
//! writer died is never mistaken for a complete one.
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use allam_io::AtomicFile;
use memmap2::Mmap;

use crate::error::{DataError, Result};

/// The `.idx` magic.
pub const MAGIC: &[u8; 9] = b"MMIDIDX\x00\x00";
/// Megatron's dtype code for `u16` tokens.
pub const DTYPE_U16: u8 = 8;
/// Megatron's dtype code for `i32` tokens.
pub const DTYPE_I32: u8 = 4;
const HEADER: usize = 34;

/// `NAME.bin` and `NAME.idx` for a shard prefix.
pub fn shard_paths(prefix: &Path) -> (PathBuf, PathBuf) {
    let mut bin = prefix.as_os_str().to_owned();
    bin.push(".bin");
    let mut idx = prefix.as_os_str().to_owned();
    idx.push(".idx");
    (bin.into(), idx.into())
}

/// The token dtype to use for a vocabulary size.
pub fn dtype_for_vocab(vocab_size: usize) -> u8 {
    if vocab_size <= 1 << 16 {
        DTYPE_U16
    } else {
        DTYPE_I32
    }
}

/// Streams documents into a shard; nothing is visible under the final names until
/// [`ShardWriter::finish`]. Memory does not grow with the number of documents: their lengths go to
/// a temporary file beside the shard and the index is written from it at the end.
pub struct ShardWriter {
    prefix: PathBuf,
    dtype: u8,
    bin: BufWriter<AtomicFile>,
    lengths: BufWriter<tempfile::NamedTempFile>,
    documents: u64,
    tokens: u64,
    bytes: Vec<u8>,
}

/// A scratch file `PREFIX*.tmp` in `dir` (a shard's lengths, MinHash signatures), removed on
/// drop. Files the user keeps go through [`AtomicFile`] instead.
pub(crate) fn temp_in(dir: &Path, prefix: &str) -> Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir).map_err(|e| DataError::io(dir, e))
}

impl ShardWriter {
    /// Starts a shard at `prefix` (the `.bin`/`.idx` suffixes are added) with the given dtype code.
    pub fn create(prefix: &Path, dtype: u8) -> Result<Self> {
        let dir = prefix.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        let (bin_path, _) = shard_paths(prefix);
        let bin = AtomicFile::create(&bin_path).map_err(|e| DataError::io(&bin_path, e))?;
        Ok(ShardWriter {
            prefix: prefix.to_path_buf(),
            dtype,
            bin: BufWriter::with_capacity(1 << 20, bin),
            lengths: BufWriter::with_capacity(1 << 16, temp_in(dir, ".shard-")?),
            documents: 0,
            tokens: 0,
            bytes: Vec::new(),
        })
    }

    /// Appends one document (its EOS must already be included).
    pub fn push(&mut self, tokens: &[u32]) -> Result<()> {
        let len = i32::try_from(tokens.len())
            .map_err(|_| DataError::shard(&self.prefix, "document longer than 2^31 tokens"))?;
        self.bytes.clear();
        match self.dtype {
            DTYPE_U16 => {
                for &t in tokens {
                    let t = u16::try_from(t).map_err(|_| {
                        DataError::shard(&self.prefix, format!("token id {t} does not fit u16"))
                    })?;
                    self.bytes.extend_from_slice(&t.to_le_bytes());
                }
            }
            _ => {
                for &t in tokens {
                    self.bytes.extend_from_slice(&t.to_le_bytes());
                }
            }
        }
        self.bin
            .write_all(&self.bytes)
            .and_then(|_| self.lengths.write_all(&len.to_le_bytes()))
            .map_err(|e| DataError::io(&self.prefix, e))?;
        self.documents += 1;
        self.tokens += tokens.len() as u64;
        Ok(())
    }

    /// Documents written so far.
    pub fn documents(&self) -> u64 {
        self.documents
    }

    /// Tokens written so far.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// Flushes, syncs and renames both files into place (`.bin` first, `.idx` last).
    pub fn finish(self) -> Result<(u64, u64)> {
        let (bin_path, idx_path) = shard_paths(&self.prefix);
        let size = token_size(self.dtype) as i64;
        let bin = self
            .bin
            .into_inner()
            .map_err(|e| DataError::io(&bin_path, e.into_error()))?;
        let lengths = self
            .lengths
            .into_inner()
            .map_err(|e| DataError::io(&idx_path, e.into_error()))?;

        let s = self.documents;
        let idx = AtomicFile::create(&idx_path).map_err(|e| DataError::io(&idx_path, e))?;
        let mut idx = BufWriter::with_capacity(1 << 20, idx);
        let write_index = |idx: &mut BufWriter<AtomicFile>| -> std::io::Result<()> {
            idx.write_all(MAGIC)?;
            idx.write_all(&1u64.to_le_bytes())?;
            idx.write_all(&[self.dtype])?;
            idx.write_all(&s.to_le_bytes())?;
            idx.write_all(&(s + 1).to_le_bytes())?;
            // Lengths, then the byte offsets they imply: two passes over the lengths file.
            let mut file = lengths.as_file();
            file.seek(SeekFrom::Start(0))?;
            std::io::copy(&mut BufReader::new(file), idx)?;
            file.seek(SeekFrom::Start(0))?;
            let mut reader = BufReader::with_capacity(1 << 16, file);
            let mut offset = 0i64;
            let mut len = [0u8; 4];
            for _ in 0..s {
                reader.read_exact(&mut len)?;
                idx.write_all(&offset.to_le_bytes())?;
                offset += i32::from_le_bytes(len) as i64 * size;
            }
            for d in 0..=s as i64 {
                idx.write_all(&d.to_le_bytes())?;
            }
            idx.flush()
        };
        write_index(&mut idx).map_err(|e| DataError::io(&idx_path, e))?;
        let idx = idx
            .into_inner()
            .map_err(|e| DataError::io(&idx_path, e.into_error()))?;
        bin.commit().map_err(|e| DataError::io(&bin_path, e))?;
        idx.commit().map_err(|e| DataError::io(&idx_path, e))?;
        Ok((s, self.tokens))
    }
}

fn token_size(dtype: u8) -> usize {
    if dtype == DTYPE_U16 { 2 } else { 4 }
}

/// A memory-mapped, validated shard. Both files stay memory-mapped (lengths and offsets are read
/// from the index as needed), so an open shard holds no per-document memory of its own.
pub struct Shard {
    path: PathBuf,
    dtype: u8,
    documents: usize,
    tokens: u64,
    idx: Mmap,
    bin: Option<Mmap>,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("path", &self.path)
            .field("documents", &self.documents)
            .finish()
    }
}

fn u64_at(bytes: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(bytes[o..o + 8].try_into().expect("8 bytes"))
}

impl Shard {
    /// Opens `prefix.idx` and `prefix.bin`, checking the layout above.
    pub fn open(prefix: &Path) -> Result<Self> {
        let (bin_path, idx_path) = shard_paths(prefix);
        let bad = |m: String| DataError::shard(&idx_path, m);
        let idx_file = File::open(&idx_path).map_err(|e| DataError::io(&idx_path, e))?;
        let idx_len = idx_file
            .metadata()
            .map_err(|e| DataError::io(&idx_path, e))?
            .len();
        if idx_len < HEADER as u64 {
            return Err(bad("missing MMIDIDX header".into()));
        }
        // SAFETY: read-only mapping; shards are immutable once renamed into place.
        let idx = unsafe { Mmap::map(&idx_file) }.map_err(|e| DataError::io(&idx_path, e))?;
        if &idx[..9] != MAGIC {
            return Err(bad("missing MMIDIDX header".into()));
        }
        if u64_at(&idx, 9) != 1 {
            return Err(bad(format!("version {} (expected 1)", u64_at(&idx, 9))));
        }
        let dtype = idx[17];
        if dtype != DTYPE_U16 && dtype != DTYPE_I32 {
            return Err(bad(format!("dtype code {dtype} (expected 8 = u16 or 4 = i32)")));
        }
        let s = u64_at(&idx, 18) as usize;
        let d = u64_at(&idx, 26) as usize;
        let need = s
            .checked_mul(12)
            .and_then(|x| d.checked_mul(8).map(|y| (x, y)))
            .and_then(|(x, y)| x.checked_add(y))
            .and_then(|x| x.checked_add(HEADER));
        if need != Some(idx.len()) {
            return Err(bad(format!(
                "{} bytes but the header implies {:?} (truncated or not a shard)",
                idx.len(),
                need
            )));
        }
        // Check every length and offset with buffered reads rather than through the mapping, so
        // validating a large index does not leave its pages resident in this process.
        let size = token_size(dtype) as u64;
        let reader_at = |offset: usize| -> std::io::Result<BufReader<File>> {
            // A file of its own: a cloned handle would share the other reader's position.
            let mut f = File::open(&idx_path)?;
            f.seek(SeekFrom::Start(offset as u64))?;
            Ok(BufReader::with_capacity(1 << 16, f))
        };
        let scan = || -> std::io::Result<std::result::Result<u64, String>> {
            let (mut lengths, mut offsets) = (reader_at(HEADER)?, reader_at(HEADER + 4 * s)?);
            let (mut l, mut p) = ([0u8; 4], [0u8; 8]);
            let mut expected = 0u64;
            for i in 0..s {
                lengths.read_exact(&mut l)?;
                offsets.read_exact(&mut p)?;
                let (l, p) = (i32::from_le_bytes(l), u64::from_le_bytes(p));
                if l < 0 || p != expected {
                    return Ok(Err(format!("sequence {i}: bad length {l} or offset {p}")));
                }
                expected += l as u64 * size;
            }
            Ok(Ok(expected))
        };
        let expected = scan().map_err(|e| DataError::io(&idx_path, e))?.map_err(bad)?;
        let file = File::open(&bin_path).map_err(|e| DataError::io(&bin_path, e))?;
        let actual = file.metadata().map_err(|e| DataError::io(&bin_path, e))?.len();
        if actual != expected {
            return Err(DataError::shard(
                &bin_path,
                format!("{actual} bytes but the index implies {expected} (incomplete shard)"),
            ));
        }
        // SAFETY: the file is opened read-only and shards are immutable once renamed into place.
        let bin = if actual == 0 {
            None
        } else {
            Some(unsafe { Mmap::map(&file) }.map_err(|e| DataError::io(&bin_path, e))?)
        };
        Ok(Shard {
            path: prefix.to_path_buf(),
            dtype,
            documents: s,
            tokens: expected / size,
            idx,
            bin,
        })
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.documents
    }

    /// True when the shard has no documents.
    pub fn is_empty(&self) -> bool {
        self.documents == 0
    }

    /// Token count of document `i` (EOS included).
    pub fn doc_len(&self, i: usize) -> usize {
        assert!(i < self.documents, "document {i} of {}", self.documents);
        let o = HEADER + 4 * i;
        i32::from_le_bytes(self.idx[o..o + 4].try_into().expect("4 bytes")) as usize
    }

    /// Byte offset of document `i` in the `.bin`.
    fn offset(&self, i: usize) -> usize {
        u64_at(&self.idx, HEADER + 4 * self.documents + 8 * i) as usize
    }

    /// Total tokens.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// Appends tokens `range` of document `i` to `out`.
    pub fn read_into(&self, i: usize, range: std::ops::Range<usize>, out: &mut Vec<u32>) {
        let Some(bin) = &self.bin else { return };
        let size = token_size(self.dtype);
        assert!(range.end <= self.doc_len(i), "tokens {range:?} of document {i}");
        let start = self.offset(i) + range.start * size;
        let end = self.offset(i) + range.end * size;
        let bytes = &bin[start..end];
        if self.dtype == DTYPE_U16 {
            out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]) as u32),
            );
        } else {
            out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
        }
    }

    /// The tokens of document `i`.
    pub fn document(&self, i: usize) -> Vec<u32> {
        let mut v = Vec::with_capacity(self.doc_len(i));
        self.read_into(i, 0..self.doc_len(i), &mut v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_both_dtypes() {
        let dir = tempfile::tempdir().unwrap();
        for (dtype, big) in [(DTYPE_U16, 65_535u32), (DTYPE_I32, 1_000_000)] {
            let prefix = dir.path().join(format!("s{dtype}"));
            let mut w = ShardWriter::create(&prefix, dtype).unwrap();
            w.push(&[1, 2, 3]).unwrap();
            w.push(&[big, 2]).unwrap();
            assert_eq!(w.finish().unwrap(), (2, 5));
            let s = Shard::open(&prefix).unwrap();
            assert_eq!(s.len(), 2);
            assert_eq!(s.document(0), vec![1, 2, 3]);
            assert_eq!(s.document(1), vec![big, 2]);
            let mut part = Vec::new();
            s.read_into(0, 1..3, &mut part);
            assert_eq!(part, vec![2, 3]);
        }
    }

    #[test]
    fn many_documents_round_trip() {
        // More lengths than the writer's and reader's buffers hold (70,000 × 4 bytes > 64 KiB).
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("many");
        let mut w = ShardWriter::create(&prefix, DTYPE_U16).unwrap();
        let doc = |i: u32| -> Vec<u32> { (0..1 + i % 7).map(|k| (i + k) % 60_000).collect() };
        let n = 70_000u32;
        for i in 0..n {
            w.push(&doc(i)).unwrap();
        }
        let total: u64 = (0..n).map(|i| doc(i).len() as u64).sum();
        assert_eq!(w.finish().unwrap(), (n as u64, total));
        let s = Shard::open(&prefix).unwrap();
        assert_eq!((s.len(), s.tokens()), (n as usize, total));
        for i in [0, 1, 6, 16_383, 16_384, 40_000, n - 1] {
            assert_eq!(s.document(i as usize), doc(i), "document {i}");
        }
    }

    #[test]
    fn idx_matches_megatron_layout() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("m");
        let mut w = ShardWriter::create(&prefix, DTYPE_U16).unwrap();
        w.push(&[7, 8]).unwrap();
        w.push(&[9]).unwrap();
        w.finish().unwrap();
        let idx = std::fs::read(dir.path().join("m.idx")).unwrap();
        let mut want = b"MMIDIDX\x00\x00".to_vec();
        want.extend(1u64.to_le_bytes());
        want.push(8);
        want.extend(2u64.to_le_bytes());
        want.extend(3u64.to_le_bytes());
        want.extend(2i32.to_le_bytes());
        want.extend(1i32.to_le_bytes());
        want.extend(0i64.to_le_bytes());
        want.extend(4i64.to_le_bytes());
        for d in 0..3i64 {
            want.extend(d.to_le_bytes());
        }
        assert_eq!(idx, want);
        let bin = std::fs::read(dir.path().join("m.bin")).unwrap();
        assert_eq!(bin, vec![7, 0, 8, 0, 9, 0]);
    }

    #[test]
    fn unfinished_or_truncated_shards_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("t");
        let mut w = ShardWriter::create(&prefix, DTYPE_U16).unwrap();
        w.push(&[1, 2, 3]).unwrap();
        drop(w); // writer died before finish
        assert!(!dir.path().join("t.idx").exists());
        assert!(!dir.path().join("t.bin").exists());
        assert!(Shard::open(&prefix).is_err());

        let mut w = ShardWriter::create(&prefix, DTYPE_U16).unwrap();
        w.push(&[1, 2, 3]).unwrap();
        w.finish().unwrap();
        let bin = dir.path().join("t.bin");
        let data = std::fs::read(&bin).unwrap();
        std::fs::write(&bin, &data[..4]).unwrap();
        let err = Shard::open(&prefix).unwrap_err().to_string();
        assert!(err.contains("incomplete shard"), "{err}");
    }

    #[test]
    fn u16_overflow_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ShardWriter::create(&dir.path().join("o"), DTYPE_U16).unwrap();
        assert!(w.push(&[70_000]).is_err());
    }
}
