//! A tokenized example as text with its trained tokens marked, to check a template and its mask by
//! eye (`allam sft inspect`).
use allam_model::TextTokenizer;

use crate::error::{AlignError, Result};

/// How trained spans are marked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkStyle {
    /// `[[trained text]]`.
    Brackets,
    /// Trained text in green (ANSI escape codes), for terminals.
    Ansi,
}

impl MarkStyle {
    fn wrap(self, text: &str) -> String {
        match self {
            MarkStyle::Brackets => format!("[[{text}]]"),
            MarkStyle::Ansi => format!("\x1b[32m{text}\x1b[0m"),
        }
    }
}

/// Decodes `ids` (special tokens written out) and marks the runs where `trainable` is set.
///
/// Each run is decoded in the context of everything before it (the text of `ids[..end]` minus the
/// text of `ids[..start]`), so the spaces a decoder strips at the start of a sequence stay where
/// they belong.
pub fn inspect_tokens(
    ids: &[u32],
    trainable: &[bool],
    tokenizer: &TextTokenizer,
    style: MarkStyle,
) -> Result<String> {
    if ids.len() != trainable.len() {
        return Err(AlignError::Input(format!(
            "{} ids but {} mask entries",
            ids.len(),
            trainable.len()
        )));
    }
    let mut out = String::new();
    let mut previous = String::new();
    let mut start = 0;
    while start < ids.len() {
        let kind = trainable[start];
        let end = (start..ids.len())
            .find(|&j| trainable[j] != kind)
            .unwrap_or(ids.len());
        let upto = tokenizer.decode(&ids[..end], false)?;
        let piece = match upto.strip_prefix(previous.as_str()) {
            Some(rest) => rest.to_string(),
            None => tokenizer.decode(&ids[start..end], false)?,
        };
        if kind {
            out.push_str(&style.wrap(&piece));
        } else {
            out.push_str(&piece);
        }
        previous = upto;
        start = end;
    }
    Ok(out)
}
