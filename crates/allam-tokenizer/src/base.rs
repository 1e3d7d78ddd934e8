//! Training a base tokenizer from text, as the recipe does when it pretrains from scratch (stage 1):
//! [`train_llama_style`] (byte-fallback BPE, the Llama-2 / Mistral composition) and
//! [`train_byte_level_style`] (byte-level BPE, the Llama-3 / Qwen2 and GPT-2 / SmolLM2 compositions,
//! [`ByteLevelStyle`]).
use std::collections::HashMap;

use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::normalizers::{Prepend, Replace, Sequence};
use tokenizers::{NormalizerWrapper, PreTokenizerWrapper, Tokenizer, Trainer};

use crate::byte_level;
use crate::error::{Error, Result};
use crate::normalize::TextPipeline;
use crate::train::bpe_parts;

/// The normalizer of Llama-2 / Mistral tokenizers: prepend `▁`, then spaces become `▁`.
pub fn llama_normalizer() -> NormalizerWrapper {
    NormalizerWrapper::Sequence(Sequence::new(vec![
        NormalizerWrapper::Prepend(Prepend::new("▁".into())),
        NormalizerWrapper::Replace(Replace::new(" ", "▁").expect("a plain-string pattern is valid")),
    ]))
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
    let (learned, merges) = learned_pieces(&mut trainer)?;

    let mut vocab: Vec<String> = ["<unk>", "<s>", "</s>"].map(String::from).to_vec();
    vocab.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    vocab.extend(learned);
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

/// The split regex of Llama-3's pre-tokenizer (also Qwen2's, up to `\p{N}` vs `\p{N}{1,3}`): an optional
/// non-letter before a run of letters, numbers by up to three digits, punctuation runs, whitespace.
/// Arabic diacritics are marks (`\p{M}`), not letters, so it splits diacritised words at them.
pub const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Which byte-level composition [`train_byte_level_style`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteLevelStyle {
    /// Llama-3 / Qwen2: a `Sequence` of `Split` ([`LLAMA3_SPLIT`], isolated) and
    /// `ByteLevel(add_prefix_space = false, use_regex = false)`; `ignore_merges = true`;
    /// `<|begin_of_text|>` / `<|end_of_text|>` as added tokens after the vocabulary, `<|begin_of_text|>`
    /// added by the post-processor.
    Llama3,
    /// GPT-2 / SmolLM2: `ByteLevel(add_prefix_space = false, use_regex = true)` (GPT-2's own regex);
    /// `ignore_merges = false`; `<|endoftext|>` / `<|im_start|>` / `<|im_end|>` at ids 0–2, in the model
    /// vocabulary too; a `ByteLevel` post-processor that trims offsets.
    Gpt2,
}

/// Trains a byte-level BPE tokenizer — the 256 byte symbols, `pieces` learned pieces, the pre-tokenizer,
/// special tokens and post-processor of `style`, the `ByteLevel` decoder — on `lines` (pre-tokenised by
/// that pre-tokenizer, as the `tokenizers` trainer does).
pub fn train_byte_level_style(lines: &[&str], pieces: usize, style: ByteLevelStyle) -> Result<Tokenizer> {
    let llama3 = style == ByteLevelStyle::Llama3;
    let pre_tokenizer = if llama3 {
        serde_json::json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
        ]})
    } else {
        serde_json::json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true})
    };
    let pipeline = TextPipeline {
        normalizer: None,
        pre_tokenizer: Some(
            serde_json::from_value::<PreTokenizerWrapper>(pre_tokenizer.clone())
                .map_err(Error::tokenizers)?,
        ),
    };
    let mut trainer = BpeTrainer::builder()
        .vocab_size(256 + pieces)
        .min_frequency(2)
        .show_progress(false)
        .initial_alphabet(byte_level::alphabet().into_iter().collect())
        .build();
    trainer
        .feed(lines.iter(), |line| {
            pipeline.segments(line).map_err(|e| e.to_string().into())
        })
        .map_err(Error::tokenizers)?;
    let (learned, merges) = learned_pieces(&mut trainer)?;

    let specials: &[&str] = if llama3 {
        &["<|begin_of_text|>", "<|end_of_text|>"]
    } else {
        &["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    };
    let mut vocab: Vec<String> = Vec::new();
    if !llama3 {
        vocab.extend(specials.iter().map(|s| s.to_string()));
    }
    vocab.extend(learned);
    let first_special = if llama3 { vocab.len() } else { 0 };
    let added: Vec<serde_json::Value> = specials
        .iter()
        .enumerate()
        .map(|(i, s)| {
            serde_json::json!({"id": first_special + i, "content": s, "single_word": false,
            "lstrip": false, "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let vocab: HashMap<String, u32> = vocab.into_iter().zip(0..).collect();
    let post_processor = if llama3 {
        let bos = specials[0];
        serde_json::json!({"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {bos: {"id": bos, "ids": [first_special], "tokens": [bos]}}}
        ]})
    } else {
        serde_json::json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true})
    };
    // SmolLM2 writes the empty affixes out; Llama-3 writes null.
    let affix = if llama3 {
        serde_json::Value::Null
    } else {
        "".into()
    };
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": post_processor,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": affix,
            "end_of_word_suffix": affix, "fuse_unk": false, "byte_fallback": false, "ignore_merges": llama3,
            "vocab": vocab, "merges": merges
        }
    });
    json.to_string().parse().map_err(Error::tokenizers)
}

/// A BPE model's merges, in rank order.
type Merges = Vec<(String, String)>;

/// Runs `trainer` (already fed) and returns its learned pieces in the order it learned them (by
/// id) and its merges.
fn learned_pieces(trainer: &mut BpeTrainer) -> Result<(Vec<String>, Merges)> {
    let mut trained = BPE::default();
    trainer.train(&mut trained).map_err(Error::tokenizers)?;
    let (trained_vocab, merges) = bpe_parts(&trained)?;
    let mut learned: Vec<(u32, String)> = trained_vocab.into_iter().map(|(s, i)| (i, s)).collect();
    learned.sort();
    Ok((learned.into_iter().map(|(_, s)| s).collect(), merges))
}
