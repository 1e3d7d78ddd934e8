//! # allam-data: the ALLaM data mixture
//!
//! Continued pretraining in ALLaM (arXiv 2407.15390) feeds a language mixture — English 0.55,
//! native Arabic 0.225, machine-translated Arabic 0.225 — with per-domain multipliers, and within
//! a language gives each source
//!
//! `p(source) = P(language) · tokens(source) · multiplier(source) / Σ_{s ∈ language} tokens(s) · multiplier(s)`.
//!
//! This crate turns a TOML [`Recipe`] into that stream:
//!
//! ```text
//! recipe.toml ──► source (txt / jsonl / parquet, plain, .gz, .zst; parallel pairs via a template)
//!             ──► clean   (Arabic normalisation, length, script share, repetition)  ─┐ per-reason
//!             ──► dedup   (exact xxh3 of normalised text, MinHash + LSH near-dups)   ─┘ drop counts
//!             ──► tokenise (rayon, batches of ~4 MiB, EOS after each document)
//!             ──► shard   (Megatron .bin/.idx, written atomically, memory-mapped)      [build]
//!             ──► blend   (paper formula → greedy max-error schedule, BlendState)
//!             ──► pack    (seq_len rows, document ids, position ids, labels)            [stream]
//! ```
//!
//! ```no_run
//! use allam_data::{BuildOptions, Mixture, NoProgress, Recipe, build};
//! # fn main() -> allam_data::Result<()> {
//! let recipe = Recipe::load("recipe.toml".as_ref())?;
//! let report = build(&recipe, "out".as_ref(), &BuildOptions::default(), &NoProgress)?;
//! println!("{:?}", report.languages);
//! let mut stream = Mixture::open("out".as_ref())?.stream();
//! let seq = stream.next_sequence();
//! assert_eq!(seq.input_ids.len(), recipe.seq_len);
//! # Ok(()) }
//! ```
//!
//! On-disk formats are described in `docs/DATA_FORMAT.md` and in [`shard`].
#![warn(missing_docs)]

pub mod blend;
pub mod bpe;
pub mod build;
pub mod clean;
pub mod dedup;
pub mod encode;
pub mod error;
pub mod hash;
pub mod inspect;
pub mod output;
pub mod pack;
pub mod progress;
pub mod recipe;
pub mod report;
pub mod seen;
pub mod shard;
pub mod source;
pub mod stream;
pub mod testing;

pub use blend::{BlendState, PassOrder, SourceCursor, pick_source, source_weights};
pub use build::{BuildOptions, build, build_source, load_tokenizer};
pub use clean::{CleanConfig, DropCounts, DropReason, Script};
pub use encode::Encoder;
pub use error::{DataError, Result};
pub use inspect::{DecodedSpan, decode_sequence, inspect};
pub use pack::{DocumentSpan, IGNORE_INDEX, PADDING_DOCUMENT, PackedBatch, PackedSequence};
pub use progress::{NoProgress, Progress};
pub use recipe::{Recipe, SourceSpec};
pub use report::{Report, SourceReport};
pub use shard::{Shard, ShardWriter};
pub use source::{Format, ParallelMode, ParallelSpec};
pub use stream::{Manifest, Mixture, MixtureStream};
