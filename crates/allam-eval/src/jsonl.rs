//! Reading JSON Lines files: one object per non-empty line, errors naming file and line.
use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{EvalError, Result};
use crate::request::ScoreRequest;

/// One object of a JSON Lines file and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonlRecord {
    /// The 1-based line number.
    pub line: usize,
    /// The object.
    pub object: Map<String, Value>,
}

/// Reads every non-empty line of `path` as a JSON object.
pub fn read_jsonl(path: &Path) -> Result<Vec<JsonlRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    parse_jsonl(&text, path)
}

/// Parses JSON Lines text; `path` only names the source in errors.
pub fn parse_jsonl(text: &str, path: &Path) -> Result<Vec<JsonlRecord>> {
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(object)) => records.push(JsonlRecord { line: i + 1, object }),
            Ok(_) => return Err(EvalError::format(path, i + 1, "expected a JSON object")),
            Err(e) => return Err(EvalError::format(path, i + 1, format!("invalid JSON: {e}"))),
        }
    }
    Ok(records)
}

impl JsonlRecord {
    /// The string field `key`, or an error naming the file, line and key.
    pub fn string(&self, key: &str, path: &Path) -> Result<&str> {
        match self.object.get(key) {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(EvalError::format(
                path,
                self.line,
                format!("`{key}` must be a string"),
            )),
            None => Err(EvalError::format(path, self.line, format!("missing `{key}`"))),
        }
    }

    /// The `{"context": ..., "continuation": ...}` request of this line.
    pub fn score_request(&self, path: &Path) -> Result<ScoreRequest> {
        Ok(ScoreRequest::new(
            self.string("context", path)?,
            self.string("continuation", path)?,
        ))
    }
}
