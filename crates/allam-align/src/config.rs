//! The configuration of an SFT or DPO run (`SFT.toml`, `DPO.toml`).
//!
//! ```toml
//! [model]
//! dir = "runs/cpt/final"              # or architecture + tokenizer, as in RUN.toml
//! [data]
//! path = "sft.jsonl"                  # conversations (SFT) or preference pairs (DPO)
//! template = "llama2"                 # llama2 (the paper's), llama3, chatml, or tokenizer (its Jinja template)
//! seq_len = 512                       # SFT: packed row length; DPO: most tokens of prompt + response
//! [schedule]
//! kind = "constant"
//! lr = 5e-6
//! [train]
//! epochs = 3                          # or max_steps
//! micro_batch_size = 4
//! # precision, activation_checkpointing, head_chunk_tokens, device: as in RUN.toml
//! [dpo]                               # DPO only
//! beta = 0.1
//! loss = "sigmoid"                    # sigmoid, ipo, hinge
//! label_smoothing = 0.0
//! reference = "cached"                # cached (one pass, on disk) or memory (a frozen copy)
//! truncation = "prompt-first"         # over-long pairs: prompt-first (TRL ≤ 0.11) or sequence (current TRL)
//! max_prompt_length = 128             # prompt-first: a too-long pair's prompt is cut to this (default seq_len / 4)
//! truncation_mode = "keep_end"        # which end is kept: of the prompt (prompt-first, default keep_end)
//!                                     # or of each sequence (sequence, default keep_start)
//! ```
use std::path::{Path, PathBuf};

use allam_model::TextTokenizer;
use allam_train::config::{CheckpointSpec, EvalSpec, ModelSpec, StepSpec};
use allam_train::plan::{MemoryPlan, PlanInput, shape};
use allam_train::{AdamWConfig, LrSchedule};
use serde::{Deserialize, Serialize};

use crate::dpo::{DpoConfig, DpoLossKind};
use crate::error::{AlignError, Result};
use crate::template::ChatTemplate;
use crate::truncation::{PairTruncation, SequenceTruncation, Truncation, TruncationMode};

/// Which stage a configuration is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Supervised fine-tuning.
    Sft,
    /// Direct preference optimisation.
    Dpo,
}

/// An SFT or DPO run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlignConfig {
    /// The starting model (the policy; for DPO also the reference).
    pub model: ModelSpec,
    /// The conversations or preference pairs.
    pub data: AlignData,
    /// AdamW and clipping.
    #[serde(default)]
    pub optimizer: AdamWConfig,
    /// Learning rate by step.
    pub schedule: LrSchedule,
    /// Epochs or steps, batches.
    pub train: AlignTrain,
    /// DPO settings (ignored by SFT).
    #[serde(default)]
    pub dpo: DpoSection,
    /// Checkpoint cadence.
    #[serde(default)]
    pub checkpoint: CheckpointSpec,
    /// Held-out text evaluation.
    #[serde(default)]
    pub eval: EvalSpec,
}

/// Where the examples come from and how they are written out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlignData {
    /// A JSONL file of conversations (SFT) or preference pairs (DPO).
    pub path: PathBuf,
    /// DPO: held-out preference pairs; their reward accuracy and margin are measured at every
    /// evaluation (`eval/pairs/*` in `metrics.jsonl`) and at the end.
    pub eval_path: Option<PathBuf>,
    /// `llama2`, `llama3`, `chatml` or `tokenizer`.
    #[serde(default = "llama2")]
    pub template: String,
    /// SFT: length of the packed rows. DPO: the most tokens of prompt + response (TRL's
    /// `max_length`); longer pairs are cut as `[dpo] truncation`, `max_prompt_length` and `truncation_mode` say.
    #[serde(default = "seq_len")]
    pub seq_len: usize,
    /// Seed of the example order (reshuffled every epoch).
    #[serde(default = "seed")]
    pub seed: u64,
}

fn llama2() -> String {
    "llama2".into()
}
fn seq_len() -> usize {
    512
}
fn seed() -> u64 {
    1234
}

/// SFT's and DPO's `[train]`: the length in epochs or steps, beside the keys every stage shares
/// (`allam_train::config::StepSpec`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlignTrain {
    /// Passes over the data (used when `max_steps` is absent).
    #[serde(default = "one_epoch")]
    pub epochs: f64,
    /// Optimizer steps (overrides `epochs`).
    pub max_steps: Option<u64>,
    /// Batches, device, head chunks, recomputation and precision.
    #[serde(flatten)]
    pub step: StepSpec,
}

fn one_epoch() -> f64 {
    1.0
}

/// DPO settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpoSection {
    /// β.
    #[serde(default = "beta")]
    pub beta: f64,
    /// `sigmoid`, `ipo` or `hinge`.
    #[serde(default = "sigmoid")]
    pub loss: DpoLossKind,
    /// Conservative DPO's ε (sigmoid only).
    #[serde(default)]
    pub label_smoothing: f64,
    /// `cached` (reference log-probs computed once and stored in the run directory) or `memory`
    /// (a frozen copy of the starting model kept in memory).
    #[serde(default = "cached")]
    pub reference: String,
    /// How over-long pairs are cut: as TRL ≤ 0.11 (`prompt-first`) or current TRL (`sequence`);
    /// see [`crate::truncation`].
    #[serde(default)]
    pub truncation: TruncationStyle,
    /// `prompt-first`: a too-long pair's prompt is cut to this many tokens (TRL's
    /// `max_prompt_length`; default a quarter of `[data] seq_len`, TRL's 128 of 512).
    pub max_prompt_length: Option<usize>,
    /// Which end is kept: of a too-long prompt (`prompt-first`, default `keep_end`) or of each
    /// sequence (`sequence`, default `keep_start`) — each style's TRL default.
    pub truncation_mode: Option<TruncationMode>,
}

/// `[dpo] truncation`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TruncationStyle {
    /// TRL ≤ 0.11's `tokenize_row`: the prompt first, then the responses.
    #[default]
    PromptFirst,
    /// Current TRL's collator: each prompt + response sequence on its own.
    Sequence,
}

fn beta() -> f64 {
    0.1
}
fn sigmoid() -> DpoLossKind {
    DpoLossKind::Sigmoid
}
fn cached() -> String {
    "cached".into()
}

impl Default for DpoSection {
    fn default() -> Self {
        Self {
            beta: beta(),
            loss: sigmoid(),
            label_smoothing: 0.0,
            reference: cached(),
            truncation: TruncationStyle::PromptFirst,
            max_prompt_length: None,
            truncation_mode: None,
        }
    }
}

impl DpoSection {
    /// The loss settings.
    pub fn config(&self) -> DpoConfig {
        DpoConfig {
            beta: self.beta,
            loss: self.loss,
            label_smoothing: self.label_smoothing,
        }
    }
}

impl AlignConfig {
    /// Reads a TOML configuration; relative paths become relative to its folder.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| AlignError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let bad = |m: String| AlignError::Input(format!("{}: {m}", path.display()));
        let mut config: AlignConfig = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new(""));
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        config.model.dir.as_mut().map(fix);
        config.model.checkpoint.as_mut().map(fix);
        config.model.tokenizer.as_mut().map(fix);
        fix(&mut config.data.path);
        config.data.eval_path.as_mut().map(fix);
        for t in &mut config.eval.text {
            fix(&mut t.path);
        }
        config.model.validate().map_err(|e| bad(e.to_string()))?;
        config.train.step.validate().map_err(|e| bad(strip_config(e)))?;
        if !["cached", "memory"].contains(&config.dpo.reference.as_str()) {
            return Err(bad("[dpo]: reference must be \"cached\" or \"memory\"".into()));
        }
        config.schedule.validate().map_err(|e| bad(e.to_string()))?;
        if config.dpo.truncation == TruncationStyle::Sequence && config.dpo.max_prompt_length.is_some() {
            return Err(bad(
                "[dpo]: max_prompt_length applies to truncation = \"prompt-first\" only (current TRL, \
                 truncation = \"sequence\", cuts each whole sequence to seq_len)"
                    .into(),
            ));
        }
        config
            .truncation()
            .validate()
            .map_err(|e| bad(format!("[dpo]: {}", strip_input(e))))?;
        config.dpo.config().validate().map_err(|e| match e {
            AlignError::Input(m) => bad(format!("[dpo]: {m}")),
            other => other,
        })?;
        // A named chat template is checked now; the tokenizer's own is read with the tokenizer.
        if config.data.template != "tokenizer" {
            ChatTemplate::from_name(&config.data.template).map_err(|e| match e {
                AlignError::Input(m) => bad(format!("[data] template: {m}")),
                other => other,
            })?;
        }
        Ok(config)
    }

    /// The sections every training stage shares, for `allam_train::setup::assemble`.
    pub fn stage(&self) -> allam_train::config::StageConfig<'_> {
        allam_train::config::StageConfig {
            model: &self.model,
            optimizer: &self.optimizer,
            schedule: &self.schedule,
            step: &self.train.step,
            checkpoint: &self.checkpoint,
            eval: &self.eval,
        }
    }

    /// The chat template named by `[data] template`.
    pub fn template(&self, tokenizer: &TextTokenizer) -> Result<ChatTemplate> {
        match self.data.template.as_str() {
            "tokenizer" => ChatTemplate::from_tokenizer(tokenizer),
            name => ChatTemplate::from_name(name),
        }
    }

    /// How DPO pairs longer than `[data] seq_len` are cut.
    pub fn truncation(&self) -> Truncation {
        let max_length = self.data.seq_len;
        match self.dpo.truncation {
            TruncationStyle::PromptFirst => Truncation::PromptFirst(PairTruncation {
                max_length,
                max_prompt_length: self.dpo.max_prompt_length.unwrap_or((max_length / 4).max(1)),
                mode: self.dpo.truncation_mode.unwrap_or(TruncationMode::KeepEnd),
            }),
            TruncationStyle::Sequence => Truncation::Sequence(SequenceTruncation {
                max_length,
                mode: self.dpo.truncation_mode.unwrap_or(TruncationMode::KeepStart),
            }),
        }
    }

    /// The memory plan of this stage (`allam sft|dpo --plan`): a micro-batch is
    /// `micro_batch_size` rows of `seq_len` tokens, or for DPO twice as many (chosen and rejected)
    /// of at most `seq_len`, with a frozen reference model when `reference = "memory"`.
    /// `shape_from`: a `config.json` to plan with instead of the configured model's.
    pub fn plan(&self, stage: Stage, shape_from: Option<&Path>) -> Result<MemoryPlan> {
        let dpo = stage == Stage::Dpo;
        let input = PlanInput {
            config: shape(&self.model, shape_from)?,
            rows: self.train.step.micro_batch_size * if dpo { 2 } else { 1 },
            seq_len: self.data.seq_len,
            micro_batches_per_step: self.train.step.grad_accum,
            head_chunk_tokens: self.train.step.head_chunk_tokens,
            frozen_reference: dpo && self.dpo.reference == "memory",
            checkpoint_layers: self.train.step.activation_checkpointing
                == allam_train::ActivationCheckpointing::Layers,
            bf16_mixed: self.train.step.precision == allam_train::config::Precision::Bf16Mixed,
        };
        Ok(allam_train::plan::checked(&input)?)
    }

    /// Steps for `examples` rows or pairs: `max_steps`, else `epochs` passes.
    pub fn steps_for(&self, examples: usize) -> u64 {
        let per_step = self.train.step.micro_batch_size * self.train.step.grad_accum;
        self.train.max_steps.unwrap_or_else(|| {
            ((examples as f64 * self.train.epochs) / per_step as f64)
                .ceil()
                .max(1.0) as u64
        })
    }
}

/// The message of a `[train]` error, without the train crate's "configuration:" prefix.
fn strip_config(error: allam_train::TrainError) -> String {
    match error {
        allam_train::TrainError::Config(m) => m,
        other => other.to_string(),
    }
}

fn strip_input(error: AlignError) -> String {
    match error {
        AlignError::Input(m) => m,
        other => other.to_string(),
    }
}
