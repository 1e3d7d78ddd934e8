//! The crate's one error type.
use std::path::PathBuf;

/// Everything that can go wrong while reading corpora, training, merging or measuring tokenizers.
///
/// Messages name the file (and line, where there is one) and what was expected, so the CLI can print
/// them as they are.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error (part of the message, so not repeated as a `source`).
        error: std::io::Error,
    },
    /// A corpus line was not what its format promises.
    #[error("{path}:{line}: {message}")]
    Corpus {
        /// The corpus file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What was expected and what was found.
        message: String,
    },
    /// A `tokenizer.json` could not be read, or its composition is not one we can expand.
    #[error("{path}: {message}")]
    Tokenizer {
        /// The tokenizer file (or a description of where the tokenizer came from).
        path: PathBuf,
        /// What was expected.
        message: String,
    },
    /// The base is neither a byte-fallback BPE of the Llama-2/Mistral kind nor a byte-level BPE.
    #[error(
        "unsupported base tokenizer: {found}; expected a BPE model with byte_fallback = true and `▁` word marks (Llama-2/Mistral kind) or a byte-level BPE with a ByteLevel pre-tokenizer (GPT-2/Llama-3/Qwen2/SmolLM2 kind)"
    )]
    UnsupportedBase {
        /// What the base is.
        found: String,
    },
    /// The request cannot be met (a vocabulary smaller than the base, a corpus too small, ...).
    #[error("{0}")]
    Config(String),
    /// An error reported by the `tokenizers` crate.
    #[error("tokenizers: {0}")]
    Tokenizers(String),
    /// JSON (de)serialisation of an output failed.
    #[error("{path}: JSON: {error}")]
    Json {
        /// The file being written or read.
        path: PathBuf,
        /// The underlying error (part of the message).
        error: serde_json::Error,
    },
}

impl Error {
    /// Wraps an error of the `tokenizers` crate (its errors are boxed trait objects).
    pub fn tokenizers(err: impl std::fmt::Display) -> Self {
        Error::Tokenizers(err.to_string())
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
