//! The alignment crate's one error type.
use std::path::PathBuf;

use allam_model::ModelError;

/// Everything that can go wrong loading alignment data, rendering or tokenizing it, or computing a
/// loss. Messages name the file and line (or the turn) and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum AlignError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line of a data file is not what was expected (bad JSON, missing key, invalid turns).
    #[error("{path}:{line}: {message}")]
    Data {
        /// The file involved.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong and what was expected.
        message: String,
    },
    /// A conversation's turns do not follow the rules (see [`crate::Conversation::new`]).
    #[error("invalid conversation: {0}")]
    Conversation(String),
    /// A chat template failed to render, or renders turns in a way spans cannot be found in.
    #[error("chat template: {0}")]
    Template(String),
    /// Tokenizing failed or gave something unusable (e.g. a turn not closed by a special token).
    #[error("tokenization: {0}")]
    Tokenize(String),
    /// An input (batch, lengths, loss settings) is not valid.
    #[error("invalid input: {0}")]
    Input(String),
    /// An error from the model crate (tokenizer, forward pass).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// An error from the training loop (configuration, checkpoints, divergence).
    #[error(transparent)]
    Train(#[from] allam_train::TrainError),
}

impl AlignError {
    /// An [`AlignError::Data`] at `path:line`.
    pub fn data(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        Self::Data {
            path: path.into(),
            line,
            message: message.into(),
        }
    }
}

/// `Result` with [`AlignError`].
pub type Result<T> = std::result::Result<T, AlignError>;
