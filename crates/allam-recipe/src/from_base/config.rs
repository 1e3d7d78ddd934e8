//! The recipe from an existing base (`examples/recipes/smollm2-135m.toml`): a Hugging Face
//! checkpoint directory and corpora instead of the toy recipe's `[base_tokenizer]`, `[model]` and
//! `[pretrain]`. Relative paths are relative to the file; every table refuses unknown keys.
//!
//! ```toml
//! out = "runs/smollm2-ar"          # the run folder (replaced by a new run, kept by --resume)
//! seed = 1234
//! device = "cpu"                   # cpu, cuda[:N], vulkan, wgpu
//! precision = "f32"                # or "bf16-mixed"
//!
//! [base]
//! dir = "SmolLM2-135M-Instruct"    # config.json, *.safetensors, tokenizer.json [, tokenizer_config.json]
//!
//! [expansion]                      # stage 2
//! new_pieces = 8192                # or vocab_size = 57344 (base ids + new pieces)
//! pad_to_multiple = 64
//! init = "mean"                    # the paper's; or noisy-mean, random
//! # corpus = ["ar/*.txt"], text_field = "text": what the Arabic pieces are learned from
//! # (default: the files of the [data] sources whose language is "ar")
//!
//! [data]                           # stage 3's corpora: `allam data build`'s [[sources]] format
//! languages = { en = 0.55, ar = 0.225, ar_translated = 0.225 }   # the default: the paper's
//! [[data.sources]]
//! name = "en-books"
//! language = "en"
//! paths = ["en/*.txt"]
//! [[data.sources]]
//! name = "en-ar-pairs"
//! language = "ar_translated"
//! paths = ["parallel.jsonl"]
//! parallel = { fields = ["en", "ar"] }
//!
//! [continued]                      # stage 3: steps = tokens / (micro_batch_size × seq_len × grad_accum)
//! tokens = 300_000
//! seq_len = 512
//! micro_batch_size = 2
//! grad_accum = 4
//! embedding_warmup_steps = 10      # only the new rows first (counted within the steps)
//! lr = 1e-4
//!
//! [sft]                            # stage 4
//! path = "sft.jsonl"
//! template = "tokenizer"           # the base's own chat template; or llama2, llama3, chatml
//! epochs = 2                       # or steps, or tokens
//! lr = 2e-5
//!
//! [dpo]                            # stage 5
//! path = "preferences.jsonl"
//! beta = 0.1
//! lr = 5e-7
//!
//! [eval]                           # after every stage
//! heldout = { en = "heldout/en.txt", ar = "heldout/ar.txt" }
//! [[eval.tasks]]
//! name = "EXAMS-ar"
//! task = "exams"                   # as `allam eval --task`
//! path = "exams_ar_test.jsonl"
//! shots = 0                        # default: the format's
//! limit = 100                      # the first 100 items
//! ```
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{RecipeError, Result};

/// A recipe that starts from an existing Hugging Face checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseRecipe {
    /// Where everything is written.
    pub out: PathBuf,
    /// Seed of every stage.
    #[serde(default = "seed")]
    pub seed: u64,
    /// `cpu`, `cuda[:N]`, `vulkan` or `wgpu` (see `allam_model::device::select`).
    #[serde(default = "cpu")]
    pub device: String,
    /// `f32` or `bf16-mixed`, for every training stage.
    #[serde(default)]
    pub precision: allam_train::config::Precision,
    /// `none` or `layers` (recompute each decoder layer in the backward pass), every training stage.
    #[serde(default)]
    pub activation_checkpointing: allam_train::ActivationCheckpointing,
    /// The checkpoint the recipe starts from.
    pub base: BaseModel,
    /// Stage 2: tokenizer expansion and model growth.
    pub expansion: Expansion,
    /// Stage 3's corpora.
    pub data: Data,
    /// Stage 3: continued pretraining on the mixture (and the English-only control).
    pub continued: Continued,
    /// Stage 4: supervised fine-tuning.
    pub sft: Sft,
    /// Stage 5: DPO.
    pub dpo: Dpo,
    /// What is measured after every stage.
    pub eval: Eval,
    /// How the report judges the claims.
    #[serde(default)]
    pub report: crate::config::ReportSettings,
}

fn seed() -> u64 {
    1234
}
fn cpu() -> String {
    "cpu".into()
}
fn one() -> usize {
    1
}

/// `[base]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseModel {
    /// A Hugging Face directory: `config.json`, safetensors, `tokenizer.json`, optionally
    /// `tokenizer_config.json` (special tokens, chat template).
    pub dir: PathBuf,
}

/// `[expansion]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expansion {
    /// Arabic pieces to add to the base's ids.
    pub new_pieces: Option<u32>,
    /// Or the size to end at (base ids + new pieces).
    pub vocab_size: Option<u32>,
    /// Round the vocabulary up to a multiple of this with reserved ids.
    pub pad_to_multiple: Option<u32>,
    /// New rows: `mean` (the paper's), `noisy-mean` or `random`.
    #[serde(default = "mean")]
    pub init: String,
    /// Files the Arabic pieces are learned from (default: the `ar` sources of `[data]`).
    #[serde(default)]
    pub corpus: Vec<PathBuf>,
    /// The field of `.jsonl` corpus files.
    #[serde(default = "text")]
    pub text_field: String,
}

fn mean() -> String {
    "mean".into()
}
fn text() -> String {
    "text".into()
}

/// `[data]`: an `allam data build` recipe without `tokenizer`, `seq_len` and `seed`, which the
/// recipe sets (the expanded tokenizer, `[continued] seq_len`, the recipe's seed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Data {
    /// `P(language)`; the paper's en 0.55, ar 0.225, ar_translated 0.225 by default.
    #[serde(default = "paper_languages")]
    pub languages: BTreeMap<String, f64>,
    /// EOS after each document (default: the tokenizer's).
    pub eos_token: Option<String>,
    /// BOS before each document (the tokenizer's post-processor), on by default.
    pub add_bos: Option<bool>,
    /// Documents continue into the next row (on by default).
    pub split_documents: Option<bool>,
    /// Cleaning defaults for every source (`allam data build`'s `[clean]`).
    pub clean: Option<toml::Table>,
    /// The sources (`allam data build`'s `[[sources]]`), at least one per language with a share.
    pub sources: Vec<toml::Table>,
}

fn paper_languages() -> BTreeMap<String, f64> {
    [("en", 0.55), ("ar", 0.225), ("ar_translated", 0.225)]
        .map(|(k, v)| (k.to_string(), v))
        .into()
}

/// How long a stage trains: exactly one of these (epochs only for SFT and DPO).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Length {
    /// A token budget: steps = tokens / (micro_batch_size × seq_len × grad_accum), rounded up.
    Tokens(u64),
    /// Optimizer steps.
    Steps(u64),
    /// Passes over the examples.
    Epochs(f64),
}

/// `[continued]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Continued {
    /// Token budget of each run (the mixed one and the control).
    pub tokens: Option<u64>,
    /// Or optimizer steps.
    pub steps: Option<u64>,
    /// Tokens per row.
    pub seq_len: usize,
    /// Rows per micro-batch.
    pub micro_batch_size: usize,
    /// Micro-batches per step.
    #[serde(default = "one")]
    pub grad_accum: usize,
    /// Steps of the embeddings-only warm-up (counted within the steps).
    #[serde(default)]
    pub embedding_warmup_steps: u64,
    /// Learning rate of the embeddings-only warm-up (default `lr`).
    pub embedding_lr: Option<f64>,
    /// Peak learning rate after the warm-up.
    pub lr: f64,
    /// Cosine floor (`None`: constant).
    pub min_lr: Option<f64>,
    /// Linear warm-up steps of `lr`.
    #[serde(default)]
    pub warmup_steps: u64,
    /// Save a checkpoint every this many steps (an interrupted stage resumes from the last).
    pub checkpoint_every: Option<u64>,
    /// Held-out bits per byte every this many steps (and at the end).
    pub eval_every: Option<u64>,
}

/// `[sft]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sft {
    /// Conversations (`messages`, Alpaca or ShareGPT JSON Lines).
    pub path: PathBuf,
    /// `tokenizer` (the base's own chat template), `llama2`, `llama3` or `chatml`.
    #[serde(default = "tokenizer")]
    pub template: String,
    /// Token budget.
    pub tokens: Option<u64>,
    /// Or optimizer steps.
    pub steps: Option<u64>,
    /// Or passes over the conversations (1 when none of the three is given).
    pub epochs: Option<f64>,
    /// Tokens per packed row.
    #[serde(default = "sft_seq_len")]
    pub seq_len: usize,
    /// Rows per micro-batch.
    #[serde(default = "one")]
    pub micro_batch_size: usize,
    /// Micro-batches per step.
    #[serde(default = "one")]
    pub grad_accum: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Cosine floor (`None`: constant).
    pub min_lr: Option<f64>,
    /// Linear warm-up steps.
    #[serde(default)]
    pub warmup_steps: u64,
    /// Save a checkpoint every this many steps.
    pub checkpoint_every: Option<u64>,
}

fn tokenizer() -> String {
    "tokenizer".into()
}
fn sft_seq_len() -> usize {
    512
}

/// `[dpo]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dpo {
    /// Preference pairs (`prompt` or `messages`, `chosen`, `rejected`).
    pub path: PathBuf,
    /// Held-out pairs: their reward accuracy after DPO is the report's.
    pub eval_path: Option<PathBuf>,
    /// The chat template (default: `[sft] template`).
    pub template: Option<String>,
    /// β.
    #[serde(default = "beta")]
    pub beta: f64,
    /// Optimizer steps.
    pub steps: Option<u64>,
    /// Or passes over the pairs (1 when neither is given).
    pub epochs: Option<f64>,
    /// Most tokens of prompt + response.
    #[serde(default = "sft_seq_len")]
    pub seq_len: usize,
    /// Pairs per micro-batch.
    #[serde(default = "one")]
    pub micro_batch_size: usize,
    /// Micro-batches per step.
    #[serde(default = "one")]
    pub grad_accum: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Cosine floor (`None`: constant).
    pub min_lr: Option<f64>,
    /// Linear warm-up steps.
    #[serde(default)]
    pub warmup_steps: u64,
    /// Save a checkpoint every this many steps.
    pub checkpoint_every: Option<u64>,
}

fn beta() -> f64 {
    0.1
}

/// `[eval]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eval {
    /// Held-out text per language, one document per line: `en` and `ar` are required.
    pub heldout: BTreeMap<String, PathBuf>,
    /// Multiple-choice benchmarks.
    #[serde(default)]
    pub tasks: Vec<Task>,
    /// Requests per forward pass.
    #[serde(default = "batch_size")]
    pub batch_size: usize,
}

fn batch_size() -> usize {
    8
}

/// One multiple-choice benchmark (`allam eval` with these flags).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// Its label in the report (`EXAMS-ar`, `MMLU`).
    pub name: String,
    /// The file format, as `allam eval --task`: `exams`, `mc-jsonl`, `mmlu`, `mmlu-csv`,
    /// `acva`, `arabic-mmlu`.
    pub task: String,
    /// The items.
    pub path: PathBuf,
    /// The prompt format (default: the task's reference prompt, as `allam eval --format`).
    pub format: Option<String>,
    /// Solved examples before each question (default: the format's).
    pub shots: Option<usize>,
    /// The split the examples come from (default: the other items of `path`).
    pub dev: Option<PathBuf>,
    /// Only the first this many items (lm-evaluation-harness' `--limit`).
    pub limit: Option<usize>,
}

impl BaseRecipe {
    /// Parses `text` as the recipe at `path` (relative paths become relative to its folder) and
    /// checks it; errors name the file and the key.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        let at = |m: String| RecipeError::Config(format!("{}: {m}", path.display()));
        let mut recipe: BaseRecipe = toml::from_str(text).map_err(|e| at(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new(""));
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut recipe.out);
        fix(&mut recipe.base.dir);
        recipe.expansion.corpus.iter_mut().for_each(fix);
        fix(&mut recipe.sft.path);
        fix(&mut recipe.dpo.path);
        recipe.dpo.eval_path.as_mut().map(fix);
        recipe.eval.heldout.values_mut().for_each(fix);
        for task in &mut recipe.eval.tasks {
            fix(&mut task.path);
            task.dev.as_mut().map(fix);
        }
        recipe.resolve_sources(base).map_err(at)?;
        recipe.validate().map_err(at)?;
        Ok(recipe)
    }

    /// Makes the `paths` of every `[[data.sources]]` relative to `base`.
    fn resolve_sources(&mut self, base: &Path) -> std::result::Result<(), String> {
        for (i, source) in self.data.sources.iter_mut().enumerate() {
            let Some(toml::Value::Array(paths)) = source.get_mut("paths") else {
                continue; // the data recipe's own check names what is missing
            };
            for p in paths {
                let toml::Value::String(s) = p else {
                    return Err(format!("[[data.sources]] #{}: paths must be strings", i + 1));
                };
                if Path::new(s).is_relative() {
                    *s = base.join(&*s).display().to_string();
                }
            }
        }
        Ok(())
    }

    /// Checks what can be checked before anything runs.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let e = &self.expansion;
        if e.new_pieces.is_some() == e.vocab_size.is_some() {
            return Err("[expansion]: give exactly one of new_pieces or vocab_size".into());
        }
        if e.new_pieces == Some(0) {
            return Err("[expansion]: new_pieces must be at least 1".into());
        }
        <allam_model::RowInit as std::str::FromStr>::from_str(&e.init)
            .map_err(|m| format!("[expansion] init: {m}"))?;
        for lang in ["en", "ar"] {
            if !self.eval.heldout.contains_key(lang) {
                return Err(format!(
                    "[eval] heldout needs `{lang}` (a text file, one document per line)"
                ));
            }
        }
        if !self.data.languages.contains_key("en") {
            return Err("[data] languages needs `en` (the English-only control trains on it)".into());
        }
        for (name, path) in self.inputs() {
            if !path.exists() {
                return Err(format!("{name}: {} does not exist", path.display()));
            }
        }
        // The data recipe's own checks (languages summing to 1, sources, cleaning keys).
        self.data_recipe(Path::new("tokenizer.json"), false)?;
        let c = &self.continued;
        let steps = self.continued_steps()?;
        if c.seq_len < 2 || c.micro_batch_size == 0 || c.grad_accum == 0 {
            return Err("[continued]: seq_len ≥ 2, micro_batch_size ≥ 1 and grad_accum ≥ 1".into());
        }
        if c.embedding_warmup_steps >= steps {
            return Err(format!(
                "[continued]: embedding_warmup_steps ({}) must be fewer than the stage's {steps} steps",
                c.embedding_warmup_steps
            ));
        }
        length("[sft]", self.sft.tokens, self.sft.steps, self.sft.epochs)?;
        length("[dpo]", None, self.dpo.steps, self.dpo.epochs)?;
        for (name, lr) in [
            ("[continued] lr", c.lr),
            ("[sft] lr", self.sft.lr),
            ("[dpo] lr", self.dpo.lr),
        ] {
            if !(lr.is_finite() && lr > 0.0) {
                return Err(format!("{name} must be a positive number, got {lr}"));
            }
        }
        for (section, template) in [
            ("[sft]", Some(self.sft.template.as_str())),
            ("[dpo]", self.dpo.template.as_deref()),
        ] {
            if let Some(name) = template {
                self.check_template(section, name)?;
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for task in &self.eval.tasks {
            if !names.insert(task.name.as_str()) {
                return Err(format!("[[eval.tasks]]: two tasks are named `{}`", task.name));
            }
            let at = |m: String| format!("[[eval.tasks]] `{}`: {m}", task.name);
            allam_eval::TaskFormat::for_file(&task.task, &task.path).map_err(|e| at(e.to_string()))?;
            if let Some(format) = &task.format {
                allam_eval::PromptFormat::from_name(format).map_err(|e| at(e.to_string()))?;
            }
            if task.limit == Some(0) {
                return Err(at("limit must be at least 1".into()));
            }
        }
        Ok(())
    }

    /// Every input file the recipe names, with the key that names it.
    fn inputs(&self) -> Vec<(String, PathBuf)> {
        let mut out = vec![
            ("[base] dir".to_string(), self.base.dir.clone()),
            ("[base] dir".to_string(), self.base.dir.join("config.json")),
            ("[base] dir".to_string(), self.base.dir.join("tokenizer.json")),
            ("[sft] path".to_string(), self.sft.path.clone()),
            ("[dpo] path".to_string(), self.dpo.path.clone()),
        ];
        out.extend(
            self.dpo
                .eval_path
                .iter()
                .map(|p| ("[dpo] eval_path".into(), p.clone())),
        );
        out.extend(
            self.expansion
                .corpus
                .iter()
                .map(|p| ("[expansion] corpus".into(), p.clone())),
        );
        for (lang, p) in &self.eval.heldout {
            out.push((format!("[eval] heldout.{lang}"), p.clone()));
        }
        for t in &self.eval.tasks {
            out.push((format!("[[eval.tasks]] `{}` path", t.name), t.path.clone()));
            out.extend(
                t.dev
                    .iter()
                    .map(|p| (format!("[[eval.tasks]] `{}` dev", t.name), p.clone())),
            );
        }
        out
    }

    /// `template = "tokenizer"` needs a chat template in the base's `tokenizer_config.json`.
    fn check_template(&self, section: &str, name: &str) -> std::result::Result<(), String> {
        if name != "tokenizer" {
            return allam_align::ChatTemplate::from_name(name)
                .map(|_| ())
                .map_err(|e| format!("{section} template: {e}"));
        }
        let path = self.base.dir.join("tokenizer.json");
        let tokenizer = allam_model::TextTokenizer::from_file(&path).map_err(|e| e.to_string())?;
        if tokenizer.has_chat_template() {
            return Ok(());
        }
        Err(format!(
            "{section} template = \"tokenizer\": the base has no chat template ({} has no \
             `chat_template`); name one: llama2, llama3 or chatml",
            self.base.dir.join("tokenizer_config.json").display()
        ))
    }

    /// Optimizer steps of each continued-pretraining run.
    pub fn continued_steps(&self) -> std::result::Result<u64, String> {
        let c = &self.continued;
        let per_step = (c.micro_batch_size * c.seq_len * c.grad_accum) as u64;
        match length("[continued]", c.tokens, c.steps, None)? {
            Some(Length::Tokens(t)) => Ok(t.div_ceil(per_step.max(1)).max(1)),
            Some(Length::Steps(s)) => Ok(s),
            _ => Err("[continued]: give tokens (a budget) or steps".into()),
        }
    }
}

/// The one length a stage's table gives, if any; more than one is an error.
fn length(
    section: &str,
    tokens: Option<u64>,
    steps: Option<u64>,
    epochs: Option<f64>,
) -> std::result::Result<Option<Length>, String> {
    let given = [tokens.is_some(), steps.is_some(), epochs.is_some()];
    if given.iter().filter(|&&g| g).count() > 1 {
        return Err(format!("{section}: give one of tokens, steps or epochs"));
    }
    if tokens == Some(0) || steps == Some(0) {
        return Err(format!("{section}: tokens and steps must be at least 1"));
    }
    if let Some(e) = epochs
        && !(e.is_finite() && e > 0.0)
    {
        return Err(format!("{section}: epochs must be a positive number, got {e}"));
    }
    Ok(tokens
        .map(Length::Tokens)
        .or(steps.map(Length::Steps))
        .or(epochs.map(Length::Epochs)))
}

impl Sft {
    /// The stage's length: tokens, steps or epochs (1 epoch by default).
    pub fn length(&self) -> Length {
        length("[sft]", self.tokens, self.steps, self.epochs)
            .ok()
            .flatten()
            .unwrap_or(Length::Epochs(1.0))
    }
}

impl Dpo {
    /// The stage's length: steps or epochs (1 epoch by default).
    pub fn length(&self) -> Length {
        length("[dpo]", None, self.steps, self.epochs)
            .ok()
            .flatten()
            .unwrap_or(Length::Epochs(1.0))
    }
}
