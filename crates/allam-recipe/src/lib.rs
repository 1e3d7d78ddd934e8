//! # allam-recipe: the whole ALLaM recipe, end to end, from one configuration
//!
//! Two kinds of recipe file, told apart by their tables ([`Recipe::load`]):
//!
//! - **Toy** ([`RecipeConfig`], `examples/recipes/toy.toml`): at toy scale on the embedded sample
//!   data (`data/sample/`), on a CPU, in minutes:
//!   1. pretrain a small English-only base model from scratch with its own byte-fallback BPE;
//!   2. learn an Arabic vocabulary, merge it, grow the model with mean-initialised rows;
//!   3. embeddings-only warm-up, then continued pretraining on the paper's mixture (en 0.55,
//!      ar 0.225, translated ar 0.225) — and the same continuation on English only as the control;
//!   4. SFT on bilingual conversations, then 5. DPO on preference pairs.
//! - **From a base** ([`BaseRecipe`], `examples/recipes/smollm2-135m.toml`): stages 2–5 on an
//!   existing Hugging Face checkpoint (`[base] dir`) and corpora given as files, with token budgets,
//!   precision and device per recipe, benchmark files (EXAMS, MMLU, …), resumable stage by stage
//!   ([`from_base::Options`]) and a memory plan before launch ([`from_base::plans`]).
//!
//! Both evaluate every stage (bits per byte per language, multiple choice, fertility, DPO reward
//! accuracy) and write `report.md` with one table per claim of the paper. Every number in the
//! report comes from the run.
//!
//! [`config`] is the toy configuration, [`pipeline`] runs its stages, [`from_base`] the recipe
//! from a base, [`report`] writes the report (with [`chart`]'s `bpb.svg`), [`progress`] is how
//! stages report progress (the CLI draws it).
#![warn(missing_docs)]

pub mod chart;
pub mod config;
pub mod error;
pub mod from_base;
mod out_dir;
pub mod pipeline;
pub mod progress;
pub mod report;

use std::path::Path;

pub use config::RecipeConfig;
pub use error::{RecipeError, Result};
pub use from_base::BaseRecipe;
pub use out_dir::tokens_per_second;
pub use pipeline::{ModelScores, Outcome, run};
pub use progress::{Silent, StageProgress};
pub use report::{ReportContext, Verdicts, reproduce, reproduce_from_base, write_report};

/// A recipe file of either kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Recipe {
    /// Everything from scratch at toy scale (`[base_tokenizer]`, `[model]`, `[pretrain]`).
    Toy(Box<RecipeConfig>),
    /// Stages 2–5 from an existing checkpoint (`[base]`).
    FromBase(Box<BaseRecipe>),
}

impl Recipe {
    /// Reads a recipe file: one with `[base]` starts from that checkpoint, one without is the toy
    /// recipe. Relative paths are relative to the file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| RecipeError::io(path, e))?;
        let table: toml::Table =
            toml::from_str(&text).map_err(|e| RecipeError::Config(format!("{}: {e}", path.display())))?;
        if !table.contains_key("base") {
            return Ok(Self::Toy(Box::new(RecipeConfig::load(path)?)));
        }
        let scratch: Vec<&str> = ["base_tokenizer", "model", "pretrain", "sample"]
            .into_iter()
            .filter(|k| table.contains_key(*k))
            .collect();
        if !scratch.is_empty() {
            return Err(RecipeError::Config(format!(
                "{}: a recipe from an existing base ([base]) trains no model from scratch: remove {} \
                 (the base's tokenizer and weights are used, its corpora are in [data])",
                path.display(),
                scratch
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(Self::FromBase(Box::new(BaseRecipe::from_toml(&text, path)?)))
    }

    /// The run folder.
    pub fn out(&self) -> &Path {
        match self {
            Self::Toy(c) => &c.out,
            Self::FromBase(r) => &r.out,
        }
    }
}
