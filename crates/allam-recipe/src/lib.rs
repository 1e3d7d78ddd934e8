//! # allam-recipe: the whole ALLaM recipe, end to end, from one configuration
//!
//! At toy scale on the embedded sample data (`data/sample/`), on a CPU, in minutes:
//! 1. pretrain a small English-only base model from scratch with its own byte-fallback BPE;
//! 2. learn an Arabic vocabulary, merge it, grow the model with mean-initialised rows;
//! 3. embeddings-only warm-up, then continued pretraining on the paper's mixture (en 0.55,
//!    ar 0.225, translated ar 0.225) — and the same continuation on English only as the control;
//! 4. SFT on bilingual conversations, then 5. DPO on preference pairs;
//!
//! evaluating every stage (bits per byte per language, multiple choice, fertility, DPO reward
//! accuracy) and writing `report.md` with one table per claim of the paper. Every number in the
//! report comes from the run.
//!
//! [`config`] is the configuration ([`RecipeConfig`]), [`pipeline`] runs the stages,
//! [`report`] writes the report (with [`chart`]'s `bpb.svg`), [`progress`] shows progress.
#![warn(missing_docs)]

pub mod chart;
pub mod config;
pub mod error;
pub mod pipeline;
pub mod progress;
pub mod report;

pub use config::RecipeConfig;
pub use error::{RecipeError, Result};
pub use pipeline::{ModelScores, Outcome, run};
pub use progress::{Bars, BytesBar, Display, Meter, ScoreBar, Silent, StageProgress, StepBar, Unit};
pub use report::{Verdicts, reproduce, write_report};
