//! The end-to-end recipe configuration (`examples/recipes/toy.toml`). Relative paths are relative
//! to the configuration file.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{RecipeError, Result};

/// Every stage of the recipe at one scale.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeConfig {
    /// Where everything is written.
    pub out: PathBuf,
    /// The sample data folder (`en_docs.txt`, `ar_docs.jsonl`, `parallel.jsonl`, `sft.jsonl`,
    /// `preferences.jsonl`, `mc_questions.jsonl`, `en_heldout.txt`, `ar_heldout.txt`).
    pub sample: PathBuf,
    /// Seed of every stage.
    #[serde(default = "seed")]
    pub seed: u64,
    /// The English base tokenizer.
    pub base_tokenizer: BaseTokenizer,
    /// The model trained from scratch.
    pub model: ModelShape,
    /// Stage 1: English-only pretraining from scratch.
    pub pretrain: Phase,
    /// Stage 2: tokenizer expansion and model growth.
    pub expansion: ExpansionPhase,
    /// Stage 3: continued pretraining on the mixture (and the English-only control).
    pub continued: ContinuedPhase,
    /// Stage 4: supervised fine-tuning.
    pub sft: Phase,
    /// Stage 5: DPO.
    pub dpo: DpoPhase,
    /// How the report judges the claims.
    #[serde(default)]
    pub report: ReportSettings,
}

fn seed() -> u64 {
    1234
}

/// The base tokenizer trained on the English sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseTokenizer {
    /// Learned pieces (besides 3 specials and 256 byte pieces).
    pub pieces: usize,
}

/// The architecture trained from scratch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelShape {
    /// Residual width.
    pub hidden_size: usize,
    /// SwiGLU width.
    pub intermediate_size: usize,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads.
    pub num_key_value_heads: usize,
    /// Initial weight standard deviation.
    #[serde(default = "init_std")]
    pub init_std: f64,
}

fn init_std() -> f64 {
    0.02
}

/// A training phase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    /// Optimizer steps (SFT/DPO: `None` uses `epochs`).
    pub steps: Option<u64>,
    /// Passes over the data (SFT/DPO).
    #[serde(default = "one")]
    pub epochs: f64,
    /// Peak learning rate.
    pub lr: f64,
    /// Cosine floor (`None`: constant rate).
    pub min_lr: Option<f64>,
    /// Linear warm-up steps.
    #[serde(default)]
    pub warmup_steps: u64,
    /// Rows per step.
    pub micro_batch_size: usize,
    /// Tokens per row.
    #[serde(default = "seq_len")]
    pub seq_len: usize,
}

fn one() -> f64 {
    1.0
}
fn seq_len() -> usize {
    128
}

/// Stage 2.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpansionPhase {
    /// Arabic pieces to add to the base vocabulary.
    pub new_pieces: u32,
    /// Initialisation of the new rows: `mean` (the paper's), `noisy-mean` or `random`.
    #[serde(default = "mean")]
    pub init: String,
}

fn mean() -> String {
    "mean".into()
}

/// Stage 3.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContinuedPhase {
    /// The training phase (after the warm-up).
    #[serde(flatten)]
    pub phase: Phase,
    /// Steps of the embeddings-only warm-up (counted within `steps`).
    pub embedding_warmup_steps: u64,
    /// `P(language)`: the paper's en 0.55, ar 0.225, ar_translated 0.225.
    pub languages: BTreeMap<String, f64>,
}

/// Stage 5.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpoPhase {
    /// The training phase.
    #[serde(flatten)]
    pub phase: Phase,
    /// β.
    #[serde(default = "beta")]
    pub beta: f64,
}

fn beta() -> f64 {
    0.1
}

/// Thresholds of the report's verdicts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSettings {
    /// English bpb of the mixed run may exceed the English-only control's by at most this.
    #[serde(default = "margin")]
    pub english_bpb_margin: f64,
}

fn margin() -> f64 {
    0.10
}

impl Default for ReportSettings {
    fn default() -> Self {
        Self {
            english_bpb_margin: margin(),
        }
    }
}

impl RecipeConfig {
    /// Reads a configuration; relative paths become relative to its folder.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| RecipeError::io(path, e))?;
        let mut config: RecipeConfig =
            toml::from_str(&text).map_err(|e| RecipeError::Config(format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new(""));
        for p in [&mut config.out, &mut config.sample] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        config
            .validate()
            .map_err(|e| RecipeError::Config(format!("{}: {e}", path.display())))?;
        Ok(config)
    }

    /// Checks the numbers.
    pub fn validate(&self) -> Result<()> {
        let sum: f64 = self.continued.languages.values().sum();
        if (sum - 1.0).abs() > 1e-6 {
            return Err(RecipeError::Config(format!(
                "[continued.languages] sum to {sum}, not 1"
            )));
        }
        for lang in ["en", "ar", "ar_translated"] {
            if !self.continued.languages.contains_key(lang) {
                return Err(RecipeError::Config(format!(
                    "[continued.languages] needs `{lang}`"
                )));
            }
        }
        if self.continued.embedding_warmup_steps >= self.continued.phase.steps.unwrap_or(0) {
            return Err(RecipeError::Config(
                "[continued]: embedding_warmup_steps must be fewer than steps".into(),
            ));
        }
        if self.pretrain.steps.is_none() || self.continued.phase.steps.is_none() {
            return Err(RecipeError::Config(
                "[pretrain] and [continued] need steps".into(),
            ));
        }
        Ok(())
    }
}
