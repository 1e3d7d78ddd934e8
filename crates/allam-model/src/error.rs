//! The model crate's one error type.
use std::path::PathBuf;

/// Everything that can go wrong reading, building or writing a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file did not parse or did not have the expected shape.
    #[error("{path}: invalid JSON: {message}")]
    Json {
        /// The file involved.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// `config.json` asks for something this crate does not implement, or is inconsistent.
    #[error("{path}: key `{key}`: {message}")]
    Config {
        /// The config file (or `<in memory>`).
        path: PathBuf,
        /// The offending key.
        key: String,
        /// What was expected instead.
        message: String,
    },
    /// The weights do not match what the config describes.
    #[error("{path}: tensor `{tensor}`: {message}")]
    Tensor {
        /// The safetensors file (or the index) involved.
        path: PathBuf,
        /// The tensor's Hugging Face name.
        tensor: String,
        /// What was expected.
        message: String,
    },
    /// A safetensors file is malformed.
    #[error("{path}: not a valid safetensors file: {message}")]
    Safetensors {
        /// The file involved.
        path: PathBuf,
        /// What the reader said.
        message: String,
    },
    /// The tokenizer or its chat template could not be used.
    #[error("{path}: {message}")]
    Tokenizer {
        /// The tokenizer file involved.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An input (ids, batch, generation settings) is not valid for this model.
    #[error("invalid input: {0}")]
    Input(String),
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn config(path: &std::path::Path, key: &str, message: impl Into<String>) -> Self {
        Self::Config {
            path: path.to_path_buf(),
            key: key.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn tensor(path: &std::path::Path, tensor: &str, message: impl Into<String>) -> Self {
        Self::Tensor {
            path: path.to_path_buf(),
            tensor: tensor.to_string(),
            message: message.into(),
        }
    }
}

/// Result with [`ModelError`].
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
