//! Assembling a training stage: the model it starts from (loaded or initialised, in the run's
//! precision), its optimizer, and the [`Trainer`] and [`Session`] the loop runs. Pretraining, SFT
//! and DPO all go through [`assemble`], from the configuration sections they share
//! ([`StageConfig`]).
use std::path::{Path, PathBuf};

use allam_model::{HfConfig, Llama, LlamaConfig, PretrainedModel, TextTokenizer};
use burn::tensor::Device;

use crate::config::{ArchitectureSpec, EvalSpec, ModelSpec, StageConfig};
use crate::error::{Result, TrainError};
use crate::objective::Objective;
use crate::optim::{AdamW, AdamWConfig};
use crate::params::trainable;
use crate::session::Session;
use crate::trainer::{EmbeddingWarmup, StepOptions, Trainer};

impl StageConfig<'_> {
    /// `[train] device`, opened (a missing driver or adapter is an error naming the key).
    pub fn device(&self) -> Result<Device> {
        allam_model::device::select(&self.step.device)
            .map_err(|e| TrainError::Config(format!("[train] device: {e}")))
    }

    /// The model the stage starts from, on `device` and in `[train] precision` (set before
    /// anything computes with it: DPO's reference log-probs must come from the policy's arithmetic,
    /// as TRL runs the reference under the policy's autocast).
    pub fn prepare(&self, run_dir: &Path, device: &Device) -> Result<PreparedModel> {
        let mut prepared = prepare_model(self.model, run_dir, device)?;
        self.step.precision.apply(&mut prepared.model, device)?;
        Ok(prepared)
    }
}

/// How long a stage runs and what its steps do besides the objective.
#[derive(Clone, Debug)]
pub struct StageLength {
    /// The schedule's length in optimizer steps.
    pub max_steps: u64,
    /// Stop after this step instead (a shortened run is a prefix of the full one).
    pub stop_at: Option<u64>,
    /// Data-parallel replicas.
    pub replicas: usize,
    /// The embeddings-only warm-up of new vocabulary rows, if any.
    pub embedding_warmup: Option<EmbeddingWarmup>,
}

/// The trainer and the session of one stage: `prepared` with a fresh optimizer (or the
/// checkpoint's moments when `[model] keep_optimizer_state`), `objective`, the batches of
/// `[train]`, and the loop's run directory, held-out texts, checkpoints and resume fingerprint
/// (to which the precision is added: a run resumes only in its own arithmetic).
pub fn assemble<O: Objective>(
    config: &StageConfig,
    prepared: PreparedModel,
    objective: O,
    length: StageLength,
    mut fingerprint: serde_json::Value,
    run_dir: &Path,
) -> Result<(Trainer<O>, Session)> {
    fingerprint["precision"] = serde_json::json!(config.step.precision);
    let optimizer = starting_optimizer(config.model, config.optimizer, &prepared.model)?;
    let trainer = Trainer {
        model: trainable(prepared.model),
        optimizer,
        objective,
        options: StepOptions {
            micro_batch_size: config.step.micro_batch_size,
            grad_accum: config.step.grad_accum,
            replicas: length.replicas,
            schedule: config.schedule.clone(),
            max_steps: length.max_steps,
            embedding_warmup: length.embedding_warmup,
            activation_checkpointing: config.step.activation_checkpointing,
        },
        step: 0,
        tokens: 0,
    };
    let session = Session {
        run_dir: run_dir.to_path_buf(),
        hf_config: prepared.hf_config,
        support_from: prepared.support_from,
        tokenizer: prepared.tokenizer,
        eval_texts: read_eval_texts(config.eval)?,
        eval_every: config.eval.every,
        checkpoint: config.checkpoint.clone(),
        last_step: length.stop_at.unwrap_or(length.max_steps).min(length.max_steps),
        fingerprint,
    };
    Ok((trainer, session))
}

/// A model prepared for training, with what is needed to save it.
pub struct PreparedModel {
    /// The model (no autodiff yet).
    pub model: Llama,
    /// Its `config.json`.
    pub hf_config: HfConfig,
    /// Its tokenizer, if known.
    pub tokenizer: Option<TextTokenizer>,
    /// Where its tokenizer files are.
    pub support_from: Option<PathBuf>,
}

/// Loads the configured model directory, or initialises the configured architecture (weights
/// `N(0, init_std)` from `seed`). Training runs in f32, so the rotary frequencies are not rounded
/// to a half-precision storage dtype.
pub fn prepare_model(spec: &ModelSpec, run_dir: &Path, device: &Device) -> Result<PreparedModel> {
    if let Some(checkpoint) = &spec.checkpoint {
        crate::checkpoint::verify_checkpoint(checkpoint)?;
    }
    let source = spec
        .dir
        .clone()
        .or_else(|| spec.checkpoint.as_ref().map(|c| c.join("model")));
    let mut prepared = if let Some(dir) = source {
        let pretrained = PretrainedModel::load(&dir, device)?;
        PreparedModel {
            model: pretrained.model,
            hf_config: pretrained.hf_config,
            tokenizer: pretrained.tokenizer,
            support_from: Some(dir),
        }
    } else {
        let arch = spec
            .architecture
            .as_ref()
            .expect("validated: dir or architecture");
        let tokenizer_path = spec
            .tokenizer
            .as_ref()
            .expect("validated: tokenizer with architecture");
        let tokenizer = TextTokenizer::from_file(tokenizer_path)?;
        // The tokenizer is copied into the run so every export carries it.
        let support = run_dir.join("tokenizer");
        std::fs::create_dir_all(&support).map_err(|e| TrainError::io(&support, e))?;
        let dst = support.join("tokenizer.json");
        allam_io::copy_atomic(tokenizer_path, &dst).map_err(|e| TrainError::io(&dst, e))?;
        // Its tokenizer_config.json (special tokens, chat template) travels with it.
        for name in ["tokenizer_config.json", "special_tokens_map.json"] {
            let src = tokenizer_path.with_file_name(name);
            if src.exists() {
                let dst = support.join(name);
                allam_io::copy_atomic(&src, &dst).map_err(|e| TrainError::io(&dst, e))?;
            }
        }
        let config = architecture_config(arch, &tokenizer, spec.init_std)?;
        let model = crate::params::seeded_init(config.init(device), spec.init_std, spec.seed);
        PreparedModel {
            hf_config: HfConfig::new(&config),
            model,
            tokenizer: Some(tokenizer),
            support_from: Some(support),
        }
    };
    prepared.model.config.rope_inv_freq_dtype = None;
    prepared.hf_config.update(&prepared.model.config);
    Ok(prepared)
}

/// The model configuration of `[model.architecture]` with `tokenizer` (vocabulary size and EOS
/// when not given), checked.
pub fn architecture_config(
    arch: &ArchitectureSpec,
    tokenizer: &TextTokenizer,
    init_std: f64,
) -> Result<LlamaConfig> {
    let heads = arch.num_attention_heads;
    if heads == 0 || !arch.hidden_size.is_multiple_of(heads) {
        return Err(TrainError::Config(format!(
            "[model.architecture]: hidden_size {} is not a multiple of num_attention_heads {heads}",
            arch.hidden_size
        )));
    }
    let vocab = arch
        .vocab_size
        .unwrap_or_else(|| allam_model::expand::tokenizer_size(tokenizer.inner()));
    let eos: Vec<u32> = tokenizer
        .eos_token()
        .and_then(|t| tokenizer.token_to_id(t))
        .into_iter()
        .collect();
    let config = LlamaConfig::new(
        vocab,
        arch.hidden_size,
        arch.intermediate_size,
        arch.num_hidden_layers,
        heads,
        arch.num_key_value_heads.unwrap_or(heads),
        arch.hidden_size / heads,
    )
    .with_tie_word_embeddings(arch.tie_word_embeddings)
    .with_max_position_embeddings(arch.max_position_embeddings)
    .with_rope_theta(arch.rope_theta)
    .with_rms_norm_eps(arch.rms_norm_eps)
    .with_initializer_range(init_std)
    .with_eos_token_ids(eos);
    config.validate()?;
    Ok(config)
}

/// The optimizer a run starts with: fresh, or the moments of `spec.checkpoint` when
/// `keep_optimizer_state` (checked to fit `model`).
pub fn starting_optimizer(spec: &ModelSpec, config: &AdamWConfig, model: &Llama) -> Result<AdamW> {
    match &spec.checkpoint {
        Some(checkpoint) if spec.keep_optimizer_state => {
            AdamW::load_for(model, &checkpoint.join("optimizer.safetensors"), config.clone())
        }
        _ => Ok(AdamW::new(config.clone())),
    }
}

/// Reads the held-out files (one document per line).
pub fn read_eval_texts(spec: &EvalSpec) -> Result<Vec<(String, Vec<String>)>> {
    spec.text
        .iter()
        .map(|t| {
            let text = std::fs::read_to_string(&t.path).map_err(|e| TrainError::io(&t.path, e))?;
            let docs: Vec<String> = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(String::from)
                .collect();
            if docs.is_empty() {
                return Err(TrainError::Config(format!(
                    "{}: no held-out text",
                    t.path.display()
                )));
            }
            Ok((t.language.clone(), docs))
        })
        .collect()
}
