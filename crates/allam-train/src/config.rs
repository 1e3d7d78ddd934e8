//! The run configuration (`RUN.toml`): model, data, optimizer, schedule, batch, checkpoints,
//! evaluation. Relative paths are relative to the configuration file.
//!
//! ```toml
//! [model]
//! dir = "runs/expanded"          # a Hugging Face directory (continued pretraining), or:
//! # tokenizer = "tokenizer.json" # from scratch, with [model.architecture]
//! # init_std = 0.01
//! [data]
//! recipe = "recipes/mixture.toml" # built into RUN_DIR/data on first use; or dir = "built-data"
//! [optimizer]                     # AdamW: beta1 0.9, beta2 0.95, eps 1e-8, weight_decay 0.1, clip_grad_norm 1.0
//! [schedule]
//! kind = "constant"               # or "cosine" (min_lr, total_steps)
//! lr = 3e-5
//! warmup_steps = 20
//! [train]
//! max_steps = 1000
//! micro_batch_size = 4
//! grad_accum = 8
//! embedding_warmup_steps = 100    # only the new rows first (needs first_new_row or expansion.json);
//! embedding_lr = 1e-4             # their own rate (default: [schedule] lr); the [schedule], warm-up
//!                                 # included, starts when every weight trains
//! precision = "bf16-mixed"        # or "f32" (default): bf16 compute, f32 weights and optimizer state
//! activation_checkpointing = "layers" # or "none" (default): recompute each layer in backward
//! head_chunk_tokens = 1024        # the output head and loss in chunks (0: all logits at once)
//! device = "cuda"                 # or "cpu" (default), "vulkan", "wgpu"
//! [checkpoint]
//! every = 100
//! keep = 3
//! [eval]
//! every = 100
//! text = [{ language = "en", path = "heldout/en.txt" }, { language = "ar", path = "heldout/ar.txt" }]
//! ```
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::optim::AdamWConfig;
use crate::schedule::LrSchedule;

/// The configuration sections every training stage has (a pretraining `RunConfig` and an SFT/DPO
/// `AlignConfig` alike).
#[derive(Clone, Copy, Debug)]
pub struct StageConfig<'a> {
    /// Where the model comes from.
    pub model: &'a ModelSpec,
    /// AdamW and clipping.
    pub optimizer: &'a AdamWConfig,
    /// Learning rate by step.
    pub schedule: &'a LrSchedule,
    /// The shared `[train]` keys: batches, device, head chunks, recomputation, precision.
    pub step: &'a StepSpec,
    /// Checkpoint cadence and export dtype.
    pub checkpoint: &'a CheckpointSpec,
    /// Held-out evaluation.
    pub eval: &'a EvalSpec,
}

/// A whole run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Where the model comes from.
    pub model: ModelSpec,
    /// Where the data comes from.
    pub data: DataSpec,
    /// AdamW and clipping.
    #[serde(default)]
    pub optimizer: AdamWConfig,
    /// Learning rate by step.
    pub schedule: LrSchedule,
    /// Steps and batches.
    pub train: TrainSpec,
    /// Checkpoint cadence.
    #[serde(default)]
    pub checkpoint: CheckpointSpec,
    /// Held-out evaluation.
    #[serde(default)]
    pub eval: EvalSpec,
}

/// The model: a Hugging Face directory, or an architecture trained from scratch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// A Hugging Face model directory (continued pretraining).
    pub dir: Option<PathBuf>,
    /// A training checkpoint (`RUN_DIR/checkpoints/step-N`) to start a new stage from: its model,
    /// and its optimizer state if `keep_optimizer_state` (by default the state is reset).
    pub checkpoint: Option<PathBuf>,
    /// Start from the checkpoint's AdamW moments instead of fresh ones.
    #[serde(default)]
    pub keep_optimizer_state: bool,
    /// The architecture of a model trained from scratch.
    pub architecture: Option<ArchitectureSpec>,
    /// The tokenizer of a model trained from scratch (its size is the vocabulary size).
    pub tokenizer: Option<PathBuf>,
    /// Standard deviation of the initial weights from scratch (the paper: 0.01).
    #[serde(default = "init_std")]
    pub init_std: f64,
    /// Seed of the initial weights.
    #[serde(default = "seed")]
    pub seed: u64,
}

fn init_std() -> f64 {
    0.02
}
fn seed() -> u64 {
    1234
}

/// Hyper-parameters of a model trained from scratch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchitectureSpec {
    /// Rows of the embedding; defaults to the tokenizer's size.
    pub vocab_size: Option<usize>,
    /// Residual width.
    pub hidden_size: usize,
    /// SwiGLU width.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (defaults to the query heads).
    pub num_key_value_heads: Option<usize>,
    /// Whether the output head is the embedding.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Longest context.
    #[serde(default = "max_positions")]
    pub max_position_embeddings: usize,
    /// Rotary base.
    #[serde(default = "rope_theta")]
    pub rope_theta: f64,
    /// RMSNorm epsilon.
    #[serde(default = "rms_norm_eps")]
    pub rms_norm_eps: f64,
}

fn max_positions() -> usize {
    2048
}
fn rope_theta() -> f64 {
    10000.0
}
fn rms_norm_eps() -> f64 {
    1e-5
}

/// The data: a recipe (built on first use) or a built data directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// A data recipe (`allam data build` format).
    pub recipe: Option<PathBuf>,
    /// A directory written by `allam data build`.
    pub dir: Option<PathBuf>,
}

/// Pretraining's `[train]`: its length, replicas and the embeddings-only warm-up, beside the keys
/// every stage shares ([`StepSpec`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSpec {
    /// Optimizer steps.
    pub max_steps: u64,
    /// Data-parallel replicas.
    #[serde(default = "one")]
    pub replicas: usize,
    /// Steps of the embeddings-only warm-up (new rows only).
    #[serde(default)]
    pub embedding_warmup_steps: u64,
    /// Vocabulary size before expansion; read from the model directory's `expansion.json` when
    /// absent.
    pub first_new_row: Option<usize>,
    /// Learning rate of the embeddings-only phase (default: the schedule's `lr`). The
    /// `[schedule]` (warm-up included) starts when that phase ends.
    pub embedding_lr: Option<f64>,
    /// Linear warm-up steps of `embedding_lr` at the start of the embeddings-only phase.
    #[serde(default)]
    pub embedding_lr_warmup_steps: u64,
    /// The keys every stage shares.
    #[serde(flatten)]
    pub step: StepSpec,
}

/// The `[train]` keys of every training stage (pretraining, SFT, DPO): how a step is batched, and
/// where and in what arithmetic it runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepSpec {
    /// Rows (pretraining, SFT) or pairs (DPO) per micro-batch.
    pub micro_batch_size: usize,
    /// Micro-batches per replica and step.
    #[serde(default = "one")]
    pub grad_accum: usize,
    /// `cpu`, `cuda[:N]`, `wgpu` or `vulkan` (see `allam_model::device::select`).
    #[serde(default = "cpu")]
    pub device: String,
    /// Tokens per chunk of the output head and cross-entropy or DPO log-probabilities, so the
    /// logits of every position never exist at once (`crate::head`); 0 computes them all at once.
    #[serde(default = "head_chunk_tokens")]
    pub head_chunk_tokens: usize,
    /// `none`, or `layers`: keep only each decoder layer's input and recompute the layer in the
    /// backward pass (less memory, one more forward pass of compute).
    #[serde(default)]
    pub activation_checkpointing: crate::trainer::ActivationCheckpointing,
    /// `f32`, or `bf16-mixed`: activations and products in bf16, f32 master weights, gradients
    /// and AdamW moments (`allam_model::precision`).
    #[serde(default)]
    pub precision: Precision,
    /// Keys of `[train]` that no field took (a flattened table cannot deny them to serde, so
    /// [`StepSpec::validate`] refuses them by name).
    #[serde(flatten, default, skip_serializing)]
    pub unknown: std::collections::BTreeMap<String, toml::Value>,
}

impl StepSpec {
    /// Checks the shared keys: batches of at least one, and no key of `[train]` left unread.
    pub fn validate(&self) -> Result<()> {
        if let Some(key) = self.unknown.keys().next() {
            return Err(TrainError::Config(format!("[train]: unknown key `{key}`")));
        }
        if self.micro_batch_size == 0 || self.grad_accum == 0 {
            return Err(TrainError::Config(
                "[train]: micro_batch_size and grad_accum must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// The arithmetic of a run (`[train] precision`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precision {
    /// Everything in f32.
    #[default]
    #[serde(rename = "f32")]
    F32,
    /// Forward and backward in bf16, with f32 where precision matters (norm statistics,
    /// softmax, logits and the loss) and f32 weights, gradients and optimizer state.
    #[serde(rename = "bf16-mixed")]
    Bf16Mixed,
}

impl Precision {
    /// Sets `model`'s compute type for this precision, or says why `device` cannot run it.
    pub fn apply(self, model: &mut allam_model::Llama, device: &burn::tensor::Device) -> crate::Result<()> {
        model.config.compute_dtype = match self {
            Self::F32 => None,
            Self::Bf16Mixed => {
                if !device.supports_dtype(burn::tensor::FloatDType::BF16) {
                    return Err(crate::TrainError::Config(format!(
                        "[train] precision = \"bf16-mixed\": the device {device:?} has no bf16 arithmetic; \
                         use precision = \"f32\""
                    )));
                }
                Some(allam_model::StorageDtype::Bf16)
            }
        };
        Ok(())
    }
}

/// The default of `[train] head_chunk_tokens`.
pub fn head_chunk_tokens() -> usize {
    crate::head::DEFAULT_CHUNK_TOKENS
}

fn one() -> usize {
    1
}
fn cpu() -> String {
    "cpu".into()
}

/// Checkpoint cadence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSpec {
    /// Save every this many steps (and always at the end).
    pub every: Option<u64>,
    /// Checkpoints kept.
    #[serde(default = "keep")]
    pub keep: usize,
    /// Storage dtype of the final Hugging Face export (`f32` or `bf16`).
    #[serde(default = "f32_name")]
    pub export_dtype: String,
}

fn keep() -> usize {
    2
}
fn f32_name() -> String {
    "f32".into()
}

impl Default for CheckpointSpec {
    fn default() -> Self {
        Self {
            every: None,
            keep: keep(),
            export_dtype: f32_name(),
        }
    }
}

/// Held-out evaluation: loss and bits per byte per language.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSpec {
    /// Evaluate every this many steps (and at the end when files are given).
    pub every: Option<u64>,
    /// Text files, one document per line.
    #[serde(default)]
    pub text: Vec<EvalText>,
}

/// One held-out text file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalText {
    /// Label in metrics (`eval/<language>/bpb`).
    pub language: String,
    /// The file.
    pub path: PathBuf,
}

impl ModelSpec {
    /// Checks that exactly one source of weights is named, and that an architecture's heads
    /// divide its hidden size.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(TrainError::Config(m.into()));
        let sources = [
            self.dir.is_some(),
            self.architecture.is_some(),
            self.checkpoint.is_some(),
        ];
        if sources.iter().filter(|&&s| s).count() != 1 {
            return bad(
                "[model]: give exactly one of dir (a Hugging Face model), checkpoint (a training checkpoint) \
                 or architecture (from scratch)",
            );
        }
        if let Some(arch) = &self.architecture {
            let heads = arch.num_attention_heads;
            if heads == 0 || !arch.hidden_size.is_multiple_of(heads) {
                return Err(TrainError::Config(format!(
                    "[model.architecture]: hidden_size {} is not a multiple of num_attention_heads {heads}",
                    arch.hidden_size
                )));
            }
        }
        if self.architecture.is_some() && self.tokenizer.is_none() {
            return bad("[model]: a model from scratch needs tokenizer = \"path/to/tokenizer.json\"");
        }
        if self.keep_optimizer_state && self.checkpoint.is_none() {
            return bad("[model]: keep_optimizer_state needs a checkpoint to take the state from");
        }
        Ok(())
    }
}

impl RunConfig {
    /// Reads and checks a TOML run configuration; relative paths become relative to its folder.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        Self::from_toml(&text, path)
    }

    /// Parses `text` as the configuration at `path`.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        let mut config: RunConfig =
            toml::from_str(text).map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new(""));
        config.resolve(base);
        config
            .validate()
            .map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))?;
        Ok(config)
    }

    /// Makes every relative path relative to `base`.
    pub fn resolve(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        self.model.dir.as_mut().map(fix);
        self.model.checkpoint.as_mut().map(fix);
        self.model.tokenizer.as_mut().map(fix);
        self.data.recipe.as_mut().map(fix);
        self.data.dir.as_mut().map(fix);
        for t in &mut self.eval.text {
            fix(&mut t.path);
        }
    }

    /// The sections every training stage shares, for [`crate::setup::assemble`].
    pub fn stage(&self) -> StageConfig<'_> {
        StageConfig {
            model: &self.model,
            optimizer: &self.optimizer,
            schedule: &self.schedule,
            step: &self.train.step,
            checkpoint: &self.checkpoint,
            eval: &self.eval,
        }
    }

    /// Checks that the parts fit together.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(TrainError::Config(m.into()));
        self.model.validate()?;
        if self.data.recipe.is_some() == self.data.dir.is_some() {
            return bad("[data]: give exactly one of recipe (a data recipe) or dir (built data)");
        }
        self.train.step.validate()?;
        if self.train.max_steps == 0 || self.train.replicas == 0 {
            return bad("[train]: max_steps and replicas must be at least 1");
        }
        if !["f32", "bf16", "f16"].contains(&self.checkpoint.export_dtype.as_str()) {
            return bad("[checkpoint]: export_dtype must be f32, bf16 or f16");
        }
        self.schedule.validate()
    }
}
