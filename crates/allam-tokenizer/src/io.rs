//! Reading tokenizers and writing outputs atomically.
use std::path::Path;

use tokenizers::Tokenizer;

use crate::error::{Error, Result};

/// Reads a `tokenizer.json`.
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.parse().map_err(|e| Error::Tokenizer {
        path: path.to_path_buf(),
        message: format!("expected a Hugging Face tokenizer.json: {e}"),
    })
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so readers
/// never see a half-written file. The file gets the permissions of a plain `File::create` (0666 less
/// the umask), not a private temporary's.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    allam_io::write_atomic(path, bytes).map_err(|e| Error::io(path, e))
}
