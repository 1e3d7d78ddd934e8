//! Tokenizer statistics by script: tokens per word (fertility), tokens per byte and byte-fallback rate.
//!
//! Words are the whitespace-separated spans of the original text; a word is Arabic if it has an Arabic
//! character, Latin if it has a Latin letter (and no Arabic), other otherwise. Each token is counted
//! for the word that holds its last character (a token made only of the `▁` or space before a word counts
//! for that word), using the byte offsets the tokenizer reports into the original text. Byte-level
//! tokenizers report offsets into the original text too (a token holding part of a character gets that
//! character's span), so words and tokens are counted the same way for both families; their "byte-fallback"
//! count is the tokens that are not whole characters.
use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::byte_level;
use crate::error::{Error, Result};
use crate::script::Script;

/// Raw counts for one script class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Words.
    pub words: u64,
    /// UTF-8 bytes of those words.
    pub bytes: u64,
    /// Tokens counted for those words.
    pub tokens: u64,
    /// Of which byte pieces: byte-fallback pieces (`<0xXX>`), or, for a byte-level tokenizer, pieces whose
    /// bytes are not whole UTF-8 characters (part of a character, alone or joined to others).
    pub byte_fallback: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.words += o.words;
        self.bytes += o.bytes;
        self.tokens += o.tokens;
        self.byte_fallback += o.byte_fallback;
    }

    /// Tokens per word (fertility); 0 when there are no words.
    pub fn tokens_per_word(&self) -> f64 {
        ratio(self.tokens, self.words)
    }

    /// Tokens per UTF-8 byte.
    pub fn tokens_per_byte(&self) -> f64 {
        ratio(self.tokens, self.bytes)
    }

    /// Share of tokens that are byte-fallback pieces.
    pub fn byte_fallback_rate(&self) -> f64 {
        ratio(self.byte_fallback, self.tokens)
    }

    /// The counts with their ratios, for JSON output.
    pub fn summary(&self) -> ScriptSummary {
        ScriptSummary {
            counts: *self,
            tokens_per_word: self.tokens_per_word(),
            tokens_per_byte: self.tokens_per_byte(),
            byte_fallback_rate: self.byte_fallback_rate(),
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Counts and ratios of one script class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScriptSummary {
    /// The raw counts.
    #[serde(flatten)]
    pub counts: Counts,
    /// Tokens per word.
    pub tokens_per_word: f64,
    /// Tokens per byte.
    pub tokens_per_byte: f64,
    /// Byte-fallback tokens / tokens.
    pub byte_fallback_rate: f64,
}

/// Statistics of one tokenizer on one set of texts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenizerStats {
    /// A name for the tokenizer (its path, or a role such as "base").
    pub tokenizer: String,
    /// Its vocabulary size (added tokens included).
    pub vocab_size: usize,
    /// Documents measured.
    pub documents: u64,
    /// Per script class (classes without words are left out).
    pub by_script: BTreeMap<Script, ScriptSummary>,
    /// All words together.
    pub all: ScriptSummary,
}

impl TokenizerStats {
    /// The summary of one script class, if the texts had words of it.
    pub fn script(&self, script: Script) -> Option<&ScriptSummary> {
        self.by_script.get(&script)
    }
}

/// Measures `tokenizer` on `documents` (encoded one by one, without special tokens, in parallel
/// batches; the documents are streamed).
pub fn measure(
    name: &str,
    tokenizer: &Tokenizer,
    documents: impl Iterator<Item = Result<String>>,
) -> Result<TokenizerStats> {
    let byte_piece = byte_piece_table(tokenizer);
    let mut totals = [Counts::default(); 3];
    let mut n_docs = 0u64;
    let mut batch = Vec::with_capacity(BATCH);
    let mut documents = documents.peekable();
    while documents.peek().is_some() {
        batch.clear();
        for doc in documents.by_ref().take(BATCH) {
            batch.push(doc?);
        }
        n_docs += batch.len() as u64;
        let part = batch
            .par_iter()
            .map(|doc| count_document(tokenizer, &byte_piece, doc))
            .try_reduce(
                || [Counts::default(); 3],
                |mut a, b| {
                    for (x, y) in a.iter_mut().zip(&b) {
                        x.add(y);
                    }
                    Ok(a)
                },
            )?;
        for (x, y) in totals.iter_mut().zip(&part) {
            x.add(y);
        }
    }
    let mut all = Counts::default();
    let mut by_script = BTreeMap::new();
    for (script, counts) in Script::ALL.iter().zip(&totals) {
        all.add(counts);
        if counts.words > 0 {
            by_script.insert(*script, counts.summary());
        }
    }
    Ok(TokenizerStats {
        tokenizer: name.to_string(),
        vocab_size: tokenizer.get_vocab_size(true),
        documents: n_docs,
        by_script,
        all: all.summary(),
    })
}

const BATCH: usize = 4096;

/// `table[id]` is true when `id` is a byte piece: a byte-fallback piece `<0xXX>`, or, for a byte-level
/// tokenizer (one with a `ByteLevel` pre-tokenizer), a piece whose bytes are not valid UTF-8.
pub fn byte_piece_table(tokenizer: &Tokenizer) -> Vec<bool> {
    let byte_level = tokenizer
        .get_pre_tokenizer()
        .is_some_and(byte_level::is_byte_level);
    let vocab = tokenizer.get_vocab(true);
    let len = vocab.values().max().map_or(0, |m| *m as usize + 1);
    let mut table = vec![false; len];
    for (piece, id) in vocab {
        let b = piece.as_bytes();
        table[id as usize] = if byte_level {
            byte_level::piece_bytes(&piece).is_some_and(|bytes| std::str::from_utf8(&bytes).is_err())
        } else {
            b.len() == 6
                && piece.starts_with("<0x")
                && piece.ends_with('>')
                && b[3..5].iter().all(u8::is_ascii_hexdigit)
        };
    }
    table
}

/// Counts of one document, indexed like [`Script::ALL`].
fn count_document(tokenizer: &Tokenizer, byte_piece: &[bool], doc: &str) -> Result<[Counts; 3]> {
    let mut counts = [Counts::default(); 3];
    // Word spans (byte offsets) and their script index.
    let mut words: Vec<(usize, usize, usize)> = Vec::new();
    let mut start = None;
    for (i, c) in doc.char_indices().chain(std::iter::once((doc.len(), ' '))) {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                let script = Script::of_word(&doc[s..i]);
                let k = Script::ALL.iter().position(|x| *x == script).unwrap_or(2);
                counts[k].words += 1;
                counts[k].bytes += (i - s) as u64;
                words.push((s, i, k));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if words.is_empty() {
        return Ok(counts);
    }
    let encoding = tokenizer.encode(doc, false).map_err(Error::tokenizers)?;
    for (id, &(s, e)) in encoding.get_ids().iter().zip(encoding.get_offsets()) {
        let last = if e > s { e - 1 } else { s };
        // First word ending after `last`: the one holding it, or the next one.
        let w = words.partition_point(|&(_, we, _)| we <= last);
        let k = words.get(w).or(words.last()).map_or(2, |&(_, _, k)| k);
        counts[k].tokens += 1;
        if byte_piece.get(*id as usize).copied().unwrap_or(false) {
            counts[k].byte_fallback += 1;
        }
    }
    Ok(counts)
}

/// A Markdown table: one row per tokenizer and script class.
pub fn render_table(stats: &[TokenizerStats]) -> String {
    let mut out = String::from(
        "| tokenizer | vocab | script | words | tokens | tokens/word | tokens/byte | byte-fallback |\n\
         |---|---:|---|---:|---:|---:|---:|---:|\n",
    );
    for s in stats {
        let rows = s
            .by_script
            .iter()
            .map(|(k, v)| (k.name(), v))
            .chain(std::iter::once(("all", &s.all)));
        for (script, v) in rows {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {:.3} | {:.4} | {:.2} % |\n",
                s.tokenizer,
                s.vocab_size,
                script,
                v.counts.words,
                v.counts.tokens,
                v.tokens_per_word,
                v.tokens_per_byte,
                100.0 * v.byte_fallback_rate
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_script() {
        let tok = crate::fixture::llama_style_tokenizer(400, 0).unwrap();
        let docs = ["The river bank", "كتاب جديد 42", ""].map(|s| Ok(s.to_string()));
        let stats = measure("fixture", &tok, docs.into_iter()).unwrap();
        assert_eq!(stats.documents, 3);
        let latin = stats.script(Script::Latin).unwrap();
        assert_eq!(latin.counts.words, 3);
        assert_eq!(latin.counts.bytes, 12);
        assert!(latin.counts.tokens >= 3);
        let arabic = stats.script(Script::Arabic).unwrap();
        assert_eq!(arabic.counts.words, 2);
        // The base has no Arabic: every Arabic letter falls back to its two UTF-8 bytes.
        assert!(arabic.byte_fallback_rate > 0.8, "{arabic:?}");
        assert_eq!(stats.script(Script::Other).unwrap().counts.words, 1);
        let total: u64 = stats.by_script.values().map(|s| s.counts.tokens).sum();
        let direct: usize = ["The river bank", "كتاب جديد 42"]
            .iter()
            .map(|d| tok.encode(*d, false).unwrap().len())
            .sum();
        assert_eq!(total as usize, direct);
        let vocab = tok.get_vocab_size(true);
        let table = render_table(&[stats]);
        assert!(
            table.contains(&format!("| fixture | {vocab} | arabic | 2 | 18 |")),
            "{table}"
        );
    }

    #[test]
    fn counts_by_script_for_byte_level_tokenizers() {
        use crate::fixture::{ByteLevelStyle, byte_level_style_tokenizer};
        for style in [ByteLevelStyle::Llama3, ByteLevelStyle::Gpt2] {
            // Trained on English only: every Arabic letter is two byte tokens, neither a whole character.
            let tok = byte_level_style_tokenizer(300, 0, style).unwrap();
            let docs = ["The river bank", "كتاب جديد 42", ""].map(|s| Ok(s.to_string()));
            let stats = measure("fixture", &tok, docs.into_iter()).unwrap();
            let latin = stats.script(Script::Latin).unwrap();
            assert_eq!((latin.counts.words, latin.counts.bytes), (3, 12));
            assert_eq!(latin.counts.byte_fallback, 0);
            let arabic = stats.script(Script::Arabic).unwrap();
            assert_eq!((arabic.counts.words, arabic.counts.bytes), (2, 16));
            // 16 byte tokens and the lone `Ġ` before the second word (a whole character: a space).
            assert_eq!(
                (arabic.counts.tokens, arabic.counts.byte_fallback),
                (17, 16),
                "{style:?}: {:?}",
                tok.encode("كتاب جديد 42", false).unwrap().get_tokens()
            );
            let total: u64 = stats.by_script.values().map(|s| s.counts.tokens).sum();
            let direct: usize = ["The river bank", "كتاب جديد 42"]
                .iter()
                .map(|d| tok.encode(*d, false).unwrap().len())
                .sum();
            assert_eq!(total as usize, direct);
        }
    }
}
