//! A small Llama-style tokenizer and texts we wrote ourselves, for tests, examples and smoke runs,
//! and [`train_llama_style`], which trains such a base tokenizer on any text.
//!
//! [`llama_style_tokenizer`] trains, in well under a second, a BPE with byte fallback, `▁` word marks,
//! `<unk>`/`<s>`/`</s>` and the 256 `<0xXX>` byte pieces at ids 3–258 — the composition of Llama-2 and
//! Mistral's `tokenizer.json` — on `fixtures/english.txt` plus a few lines of `fixtures/arabic.txt` (so the
//! base already knows some Arabic characters and merges, as Mistral does).
use std::collections::HashMap;

use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::normalizers::{Prepend, Replace, Sequence};
use tokenizers::{NormalizerWrapper, Tokenizer, Trainer};

use crate::error::{Error, Result};
use crate::train::bpe_parts;

/// English sentences written for this project (50 lines, prose and a few lines of code).
pub const ENGLISH: &str = include_str!("../fixtures/english.txt");
/// Arabic sentences written for this project (40 lines, Modern Standard Arabic).
pub const ARABIC: &str = include_str!("../fixtures/arabic.txt");

/// The normalizer of Llama-2 / Mistral tokenizers: prepend `▁`, then spaces become `▁`.
pub fn llama_normalizer() -> NormalizerWrapper {
    NormalizerWrapper::Sequence(Sequence::new(vec![
        NormalizerWrapper::Prepend(Prepend::new("▁".into())),
        NormalizerWrapper::Replace(Replace::new(" ", "▁").expect("a plain-string pattern is valid")),
    ]))
}

/// Trains a Llama-style byte-fallback BPE tokenizer with about `pieces` learned pieces (plus the 3
/// specials and 256 byte pieces) on [`ENGLISH`] and the first `arabic_lines` lines of [`ARABIC`].
pub fn llama_style_tokenizer(pieces: usize, arabic_lines: usize) -> Result<Tokenizer> {
    let text: Vec<&str> = ENGLISH.lines().chain(ARABIC.lines().take(arabic_lines)).collect();
    train_llama_style(&text, pieces)
}

/// Trains a Llama-style tokenizer — BPE with byte fallback, `▁` word marks, `<unk>`/`<s>`/`</s>` at
/// ids 0–2, the 256 `<0xXX>` byte pieces at ids 3–258, a post-processor adding `<s>` — with about
/// `pieces` learned pieces on `lines` (the composition of Llama-2 and Mistral's `tokenizer.json`).
/// This is how the recipe makes its own base tokenizer when it pretrains from scratch.
pub fn train_llama_style(lines: &[&str], pieces: usize) -> Result<Tokenizer> {
    let text = lines;
    // SentencePiece-style words: "▁" + word, split at spaces.
    let words = |line: &str| -> Vec<String> { line.split(' ').map(|w| format!("▁{w}")).collect() };
    let mut trainer = BpeTrainer::builder()
        .vocab_size(pieces)
        .min_frequency(2)
        .show_progress(false)
        .build();
    trainer
        .feed(text.iter(), |line| Ok(words(line)))
        .map_err(Error::tokenizers)?;
    let mut trained = BPE::default();
    trainer.train(&mut trained).map_err(Error::tokenizers)?;
    let (trained_vocab, merges) = bpe_parts(&trained)?;
    let mut learned: Vec<(u32, String)> = trained_vocab.into_iter().map(|(s, i)| (i, s)).collect();
    learned.sort();

    let mut vocab: Vec<String> = ["<unk>", "<s>", "</s>"].map(String::from).to_vec();
    vocab.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    vocab.extend(learned.into_iter().map(|(_, s)| s));
    let vocab: HashMap<String, u32> = vocab
        .into_iter()
        .enumerate()
        .map(|(i, s)| (s, i as u32))
        .collect();
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [
            {"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
            {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
            {"id": 2, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
        ],
        "normalizer": llama_normalizer(),
        "pre_tokenizer": null,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}
        ]},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true,
            "vocab": vocab, "merges": merges
        }
    });
    json.to_string().parse().map_err(Error::tokenizers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_is_llama_shaped() {
        let tok = llama_style_tokenizer(400, 10).unwrap();
        assert_eq!(tok.token_to_id("<0x41>"), Some(3 + 0x41));
        assert_eq!(tok.get_vocab_size(true), 3 + 256 + 400);
        let enc = tok.encode("The river", false).unwrap();
        assert_eq!(tok.decode(enc.get_ids(), true).unwrap(), "The river");
        // Unknown characters fall back to bytes.
        let enc = tok.encode("€", false).unwrap();
        assert!(enc.get_tokens().iter().any(|t| t == "<0xE2>"));
    }
}
