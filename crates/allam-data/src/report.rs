//! `report.json`: what each source contributed, what cleaning dropped, and the realised mixture.
//! Also the crate's atomic file writer.
use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// Writes `bytes` to `path` atomically ([`allam_io::write_atomic`]): a reader sees the old file or
/// the complete new one, with the mode `File::create` gives.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    allam_io::write_atomic(path, bytes).map_err(|e| DataError::io(path, e))
}

/// Per-source numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceReport {
    /// The source's language.
    pub language: String,
    /// The source's domain label, if any.
    pub domain: Option<String>,
    /// The recipe multiplier.
    pub multiplier: f64,
    /// Input files read.
    pub files: usize,
    /// Input bytes read (compressed size for compressed files).
    pub bytes: u64,
    /// Documents read before cleaning.
    pub documents_read: u64,
    /// Documents kept (in the shard).
    pub documents: u64,
    /// Tokens kept, EOS included.
    pub tokens: u64,
    /// Documents dropped, by reason (every reason listed).
    pub dropped: BTreeMap<String, u64>,
    /// Target share `p(source)` from the formula.
    pub weight: f64,
    /// Non-padding tokens of this source in the planned stream.
    pub sampled_tokens: u64,
    /// `sampled_tokens / tokens`: above 1 means the source is upsampled (repeated).
    pub passes: f64,
    /// Realised share of the planned stream's non-padding tokens.
    pub realised_fraction: f64,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Per source, by name.
    pub sources: BTreeMap<String, SourceReport>,
    /// Realised token fraction per language in the planned stream.
    pub languages: BTreeMap<String, f64>,
    /// Target `P(language)` from the recipe.
    pub language_targets: BTreeMap<String, f64>,
    /// Sequences in the planned stream (`--sequences`, or enough to cover every token once).
    pub sequences: u64,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// Padding tokens in the planned stream.
    pub padding_tokens: u64,
    /// Sources read more than once in the planned stream.
    pub upsampled: Vec<String>,
    /// Seconds spent reading, cleaning, tokenising and writing shards.
    pub build_seconds: f64,
}

impl Report {
    /// Writes `report.json` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("report serialises");
        write_atomic(path, json.as_bytes())
    }

    /// Reads a report.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| DataError::Json {
            path: path.to_path_buf(),
            line: e.line() as u64,
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
    }
}
