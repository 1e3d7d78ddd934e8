//! # allam-tokenizer — teach a Llama-family tokenizer Arabic
//!
//! The tokenizer half of the ALLaM recipe (arXiv 2407.15390, §3): learn an Arabic sub-word vocabulary and
//! merge it into the base model's BPE — byte-fallback (Llama-2, Mistral) or byte-level (GPT-2, Llama-3,
//! Qwen2, SmolLM2) — so that the base keeps every id — English and code encode exactly as before — while
//! Arabic needs far fewer tokens per word.
//!
//! | stage | input → output | module |
//! |---|---|---|
//! | read corpora | `.txt` / `.jsonl` (plain, gzip, zstd) → documents, streamed | [`corpus`] |
//! | prepare text | base normalizer (+ optional [`ArabicNormalization`]) and pre-tokenizer (byte-level: its regexes rewritten to keep Arabic marks with their letters) → Arabic words with `▁` (byte-level: `Ġ`, in byte symbols) | [`normalize`], [`byte_level`], [`arabic_marks`] |
//! | learn | documents → [`ArabicVocab`] (the `tokenizers` BPE trainer) | [`train`] |
//! | merge | [`BaseBpe`] + [`ArabicVocab`] → [`MergedVocab`], every new piece verified reachable | [`merge`] |
//! | whole expansion | [`ExpansionConfig`] → [`ExpandedTokenizer`] + [`ExpansionReport`] | [`expand`](mod@expand), [`report`] |
//! | measure | tokenizers × texts → [`TokenizerStats`] by script | [`stats`] |
//!
//! ```no_run
//! use allam_tokenizer::{Corpus, ExpansionConfig, expand_files};
//! let corpus = Corpus::new(["arabic.jsonl.zst"], "text");
//! let mut config = ExpansionConfig::new(64_000);
//! config.pad_to_multiple = Some(128);
//! let expansion = expand_files("base/tokenizer.json".as_ref(), &corpus, &config, "out".as_ref())?;
//! println!("{:?}", expansion.report.fertility.arabic_tokens_per_word);
//! # Ok::<(), allam_tokenizer::Error>(())
//! ```
//!
//! ## Guarantees (each tested in `tests/expansion.rs`)
//! 1. Every base piece keeps its id; special and added tokens are kept.
//! 2. Text without Arabic-block characters ([`script::ARABIC_BLOCKS`]) encodes to exactly the base ids:
//!    every new piece is an Arabic-script string (byte-level: bytes that occur only inside Arabic
//!    characters, [`byte_level::is_arabic_bytes`]), so no new merge can fire on such text.
//! 3. Every new piece is reachable: the merged model's merges (with `ignore_merges` off) turn its surface
//!    string into that one id.
//! 4. The vocabulary ends at exactly the requested size, or is padded to the requested multiple with
//!    reserved entries.
//! 5. Arabic fertility is reported for the base, the Arabic vocabulary alone and the merged tokenizer.
//! 6. Byte-level bases (unless [`ExpansionConfig::arabic_marks_pre_tokenizer`] is off): the pre-tokenizer
//!    keeps Arabic combining marks with the letters they follow ([`arabic_marks`]), and every text without
//!    those marks — all non-Arabic text, and Arabic without diacritics — is split exactly as by the base
//!    (tested in `tests/arabic_marks.rs`). Decoding gives vowelled text back byte for byte.
//!
//! Supported bases ([`BpeFamily`]): byte-fallback BPE with `▁` word marks (Llama-2, Mistral), and
//! byte-level BPE — a `ByteLevel` pre-tokenizer, alone (GPT-2 regex) or after a `Split` regex (Llama-3,
//! Qwen2), with or without `ignore_merges`. Byte-fallback bases keep their pre-tokenizer (none, or
//! `Metaspace`): nothing in them separates a mark from its letter. WordPiece, Unigram, WordLevel, BPE without either byte
//! fallback or a `ByteLevel` pre-tokenizer, and BPE with subword affixes get [`Error::UnsupportedBase`].
#![warn(missing_docs)]

pub mod arabic_marks;
pub mod base;
pub mod byte_level;
pub mod corpus;
pub mod error;
pub mod expand;
pub mod fixture;
pub mod io;
pub mod merge;
pub mod normalize;
pub mod report;
/// The Arabic script classes (allam-script), under the name this crate always used.
pub use allam_script as script;
pub mod stats;
pub mod train;

pub use allam_script::Script;
pub use base::{ByteLevelStyle, train_byte_level_style, train_llama_style};
pub use corpus::{Corpus, CorpusFormat};
pub use error::{Error, Result};
pub use expand::{ExpandedTokenizer, Expansion, ExpansionConfig, expand, expand_files};
pub use io::load_tokenizer;
pub use merge::{BaseBpe, BpeFamily, MergePriority, MergedVocab, merge_vocab};
pub use normalize::{ArabicNormalization, TextPipeline};
pub use report::{ExpansionReport, PreTokenizerSummary};
pub use stats::{TokenizerStats, measure, render_table};
pub use tokenizers::Tokenizer;
pub use train::{ArabicVocab, TrainConfig, train_arabic_vocab};
