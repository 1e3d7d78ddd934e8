//! The evaluation crate's one error type.
use std::path::PathBuf;

use allam_model::ModelError;

/// Everything that can go wrong reading evaluation data or scoring it.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The model or its tokenizer failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line of a data file is not what its format expects.
    #[error("{path}:{line}: {message}")]
    Format {
        /// The file involved (or `<in memory>`).
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What was expected.
        message: String,
    },
    /// A request or setting cannot be scored with this model.
    #[error("invalid input: {0}")]
    Input(String),
}

impl EvalError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn format(path: &std::path::Path, line: usize, message: impl Into<String>) -> Self {
        Self::Format {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

/// Result with [`EvalError`].
pub type Result<T, E = EvalError> = std::result::Result<T, E>;
