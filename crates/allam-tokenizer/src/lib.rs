//! # allam-tokenizer — teach a Llama-family tokenizer Arabic
//!
//! The tokenizer half of the ALLaM recipe (arXiv 2407.15390, §3): learn an Arabic sub-word vocabulary and
//! merge it into the base model's byte-fallback BPE so that the base keeps every id — English and code
//! encode exactly as before — while Arabic needs far fewer tokens per word.
//!
//! | stage | input → output | module |
//! |---|---|---|
//! | read corpora | `.txt` / `.jsonl` (plain, gzip, zstd) → documents, streamed | [`corpus`] |
//! | prepare text | base normalizer (+ optional [`ArabicNormalization`]) → Arabic words with `▁` | [`normalize`] |
//! | learn | documents → [`ArabicVocab`] (the `tokenizers` BPE trainer) | [`train`] |
//! | merge | [`BaseBpe`] + [`ArabicVocab`] → [`MergedVocab`], every new piece verified reachable | [`merge`] |
//! | whole expansion | [`ExpansionConfig`] → [`ExpandedTokenizer`] + [`ExpansionReport`] | [`expand`], [`report`] |
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
//!    every new piece is an Arabic-script string, so no new merge can fire on such text.
//! 3. Every new piece is reachable: the merged model encodes its surface string to that one id.
//! 4. The vocabulary ends at exactly the requested size, or is padded to the requested multiple with
//!    reserved entries.
//! 5. Arabic fertility is reported for the base, the Arabic vocabulary alone and the merged tokenizer.
//!
//! Only byte-fallback BPE models with `▁` word marks (Llama-2, Mistral) are supported; WordPiece, Unigram,
//! WordLevel and byte-level BPE get [`Error::UnsupportedBase`].
#![warn(missing_docs)]

pub mod corpus;
pub mod error;
pub mod expand;
pub mod fixture;
pub mod io;
pub mod merge;
pub mod normalize;
pub mod report;
pub mod script;
pub mod stats;
pub mod train;

pub use corpus::{Corpus, CorpusFormat};
pub use error::{Error, Result};
pub use expand::{ExpandedTokenizer, Expansion, ExpansionConfig, expand, expand_files};
pub use fixture::train_llama_style;
pub use io::load_tokenizer;
pub use merge::{BaseBpe, MergePriority, MergedVocab, merge_vocab};
pub use normalize::{ArabicNormalization, TextPipeline};
pub use report::ExpansionReport;
pub use script::Script;
pub use stats::{TokenizerStats, measure, render_table};
pub use tokenizers::Tokenizer;
pub use train::{ArabicVocab, TrainConfig, train_arabic_vocab};
