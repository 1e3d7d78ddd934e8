//! The error type of training.
use std::path::PathBuf;

/// What can go wrong while training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A run configuration that cannot be used (names the key and what was expected).
    #[error("{0}")]
    Config(String),
    /// A file that could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A checkpoint that does not fit this run.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint directory or file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The loss or the gradients stopped being finite.
    #[error("{0}")]
    Diverged(String),
    /// From the model crate.
    #[error(transparent)]
    Model(#[from] allam_model::ModelError),
    /// From the data crate.
    #[error(transparent)]
    Data(#[from] allam_data::DataError),
    /// From the evaluation crate.
    #[error(transparent)]
    Eval(#[from] allam_eval::EvalError),
}

impl TrainError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A checkpoint problem at `path`.
    pub fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Checkpoint {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// `Result` with [`TrainError`].
pub type Result<T> = std::result::Result<T, TrainError>;
