//! The crate's one error type.
//!
//! Every variant names the file (and, for line-oriented inputs, the 1-based line) and says what was
//! expected, so a broken input can be found and fixed without a debugger. Nothing in this crate
//! panics on user data: every problem with a recipe, an input or a shard becomes a [`DataError`].
use std::path::{Path, PathBuf};

/// Result alias used throughout the crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// Everything that can go wrong while reading, cleaning, sharding, blending or packing data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An operating-system error on a file.
    #[error("{path}: {error}")]
    Io {
        /// The file being read or written.
        path: PathBuf,
        /// The underlying error (shown in the message, so not also chained as a `source`).
        error: std::io::Error,
    },
    /// A recipe that is not valid TOML or does not match the recipe schema.
    #[error("{path}: invalid recipe: {message}")]
    Recipe {
        /// The recipe file.
        path: PathBuf,
        /// What was wrong and what was expected.
        message: String,
    },
    /// A glob pattern that matched no file, or a listed file that does not exist.
    #[error("source `{source_name}`: no input file matches `{pattern}`")]
    MissingInput {
        /// The source's name in the recipe.
        source_name: String,
        /// The path or glob pattern (already resolved against the recipe's directory).
        pattern: String,
    },
    /// A line of a `.jsonl` file that is not a JSON object with the expected field.
    #[error("{path}:{line}: {message}")]
    Json {
        /// The input file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What was wrong and what was expected.
        message: String,
    },
    /// Bytes that are not UTF-8 in a text input.
    #[error("{path}:{line}: invalid UTF-8 (expected UTF-8 text): {detail}")]
    InvalidUtf8 {
        /// The input file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// Decoder detail (byte offset of the first bad byte).
        detail: String,
    },
    /// A file whose extension names no supported format.
    #[error("{path}: unknown input format (expected .txt, .jsonl or .parquet, optionally with .gz or .zst)")]
    UnknownFormat {
        /// The input file.
        path: PathBuf,
    },
    /// A Parquet file that cannot be read, or lacks the expected string column.
    #[error("{path}: parquet: {message}")]
    Parquet {
        /// The input file.
        path: PathBuf,
        /// What was wrong and what was expected.
        message: String,
    },
    /// The tokenizer file could not be loaded or used.
    #[error("{path}: tokenizer: {message}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// Every document of a source was removed by cleaning or deduplication.
    #[error("source `{source_name}` is empty after filtering ({read} documents read, dropped: {dropped})")]
    EmptySource {
        /// The source's name in the recipe.
        source_name: String,
        /// Documents read before filtering.
        read: u64,
        /// The per-filter drop counts, formatted.
        dropped: String,
    },
    /// A token shard (`.bin` / `.idx`) that is truncated or not in the documented layout.
    #[error("{path}: corrupt shard: {message}")]
    Shard {
        /// The shard file.
        path: PathBuf,
        /// What was wrong and what was expected.
        message: String,
    },
    /// A blend state that does not fit the mixture it is restored into.
    #[error("blend state: {0}")]
    State(String),
}

impl DataError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl AsRef<Path>, error: std::io::Error) -> Self {
        DataError::Io {
            path: path.as_ref().to_path_buf(),
            error,
        }
    }

    /// A recipe error on `path`.
    pub fn recipe(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        DataError::Recipe {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }

    /// A shard error on `path`.
    pub fn shard(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        DataError::Shard {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }
}
