//! The error type of the end-to-end recipe: any stage's error, with the stage's own message.
use std::path::PathBuf;

/// What can stop the recipe.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// A configuration that cannot be used.
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
    /// Tokenizer training or expansion.
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] allam_tokenizer::Error),
    /// The model.
    #[error(transparent)]
    Model(#[from] allam_model::ModelError),
    /// Training.
    #[error(transparent)]
    Train(#[from] allam_train::TrainError),
    /// SFT or DPO.
    #[error(transparent)]
    Align(#[from] allam_align::AlignError),
    /// Evaluation.
    #[error(transparent)]
    Eval(#[from] allam_eval::EvalError),
}

impl RecipeError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// `Result` with [`RecipeError`].
pub type Result<T> = std::result::Result<T, RecipeError>;

/// Writes `bytes` to `path` atomically (allam-io), naming the path in the error.
pub(crate) fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    allam_io::write_atomic(path, bytes).map_err(|e| RecipeError::io(path, e))
}
