//! The outer loop of a run: resume, steps, `metrics.jsonl`, held-out evaluation, checkpoints,
//! the final Hugging Face export and the loss curve. [`train`] sets up pretraining from a
//! [`RunConfig`]; [`run_loop`] is shared with SFT and DPO.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use allam_data::{BuildOptions, Mixture, NoProgress, Progress, Recipe};
use allam_eval::{SlidingWindow, documents_stats};
use allam_model::{HfConfig, Llama, LlamaConfig, PretrainedModel, StorageDtype, TextTokenizer, load_model};
use burn::tensor::Device;
use serde::Serialize;

use crate::checkpoint::{TrainerState, newest_intact, read_state, save_checkpoint, save_hf};
use crate::config::{CheckpointSpec, ModelSpec, RunConfig};
use crate::error::{Result, TrainError};
use crate::objective::{LanguageModeling, Objective};
use crate::optim::{AdamW, AdamWConfig};
use crate::params::{frozen, trainable};
use crate::plot::plot_run;
use crate::run_dir::{RunDir, Start};
use crate::trainer::{EmbeddingWarmup, StepOptions, StepRecord, Trainer};

/// What the command line may override.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Stop after this many steps instead of the configuration's `max_steps` (the schedule still
    /// uses the configured length, so a shortened run is a prefix of the full one).
    pub max_steps: Option<u64>,
    /// Fresh, resume from the newest intact checkpoint, or overwrite an earlier run
    /// ([`crate::run_dir`]).
    pub start: Start,
}

/// Hooks for progress display (the CLI draws bars; tests use [`Quiet`]).
pub trait RunObserver {
    /// The loop starts at `first_step` and stops at `last_step`.
    fn start(&self, _first_step: u64, _last_step: u64) {}
    /// A step was made.
    fn step(&self, _record: &StepRecord) {}
    /// Something worth telling (building data, evaluating, checkpointing).
    fn message(&self, _message: &str) {}
    /// Progress of a data build.
    fn data_progress(&self) -> &dyn Progress {
        &NoProgress
    }
}

/// An observer that shows nothing.
pub struct Quiet;

impl RunObserver for Quiet {}

/// What a run produced.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Steps made in total.
    pub steps: u64,
    /// Loss of the last step made by this invocation (`None` if it made none).
    pub last_loss: Option<f64>,
    /// The final Hugging Face export.
    pub final_model: PathBuf,
    /// The newest checkpoint.
    pub checkpoint: Option<PathBuf>,
}

/// Everything the loop needs besides the trainer.
pub struct Session {
    /// Where metrics, checkpoints and exports go.
    pub run_dir: PathBuf,
    /// The `config.json` to write with the weights.
    pub hf_config: HfConfig,
    /// A directory whose tokenizer files go beside every saved model.
    pub support_from: Option<PathBuf>,
    /// The tokenizer (for held-out evaluation).
    pub tokenizer: Option<TextTokenizer>,
    /// Held-out documents by language.
    pub eval_texts: Vec<(String, Vec<String>)>,
    /// Evaluate every this many steps.
    pub eval_every: Option<u64>,
    /// Checkpoint cadence and export dtype.
    pub checkpoint: CheckpointSpec,
    /// Stop after this step.
    pub last_step: u64,
    /// What a resumed run must agree on.
    pub fingerprint: serde_json::Value,
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
    arch: &crate::config::ArchitectureSpec,
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
pub fn read_eval_texts(spec: &crate::config::EvalSpec) -> Result<Vec<(String, Vec<String>)>> {
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

/// Pretraining (or continued pretraining) as configured, into `run_dir`.
pub fn train(
    config: &RunConfig,
    run_dir: &Path,
    options: &RunOptions,
    observer: &dyn RunObserver,
) -> Result<RunSummary> {
    let _run_dir = open_run_dir(run_dir, options.start, observer)?;
    let device = allam_model::device::select(&config.train.device)
        .map_err(|e| TrainError::Config(format!("[train] device: {e}")))?;
    let mixture = open_data(config, run_dir, observer)?;
    let mut prepared = prepare_model(&config.model, run_dir, &device)?;
    let seq_len = mixture.manifest().seq_len;
    config.train.precision.apply(&mut prepared.model, &device)?;
    let warmup = embedding_warmup(config, &prepared)?;
    let fingerprint = serde_json::json!({
        "objective": "language_modeling",
        "vocab_size": prepared.model.config.vocab_size,
        "hidden_size": prepared.model.config.hidden_size,
        "num_hidden_layers": prepared.model.config.num_hidden_layers,
        "seq_len": seq_len,
        "micro_batch_size": config.train.micro_batch_size,
        "grad_accum": config.train.grad_accum,
        "replicas": config.train.replicas,
        "precision": config.train.precision,
    });
    let resolved = serde_json::to_string_pretty(config).expect("the config serialises");
    crate::checkpoint::write_atomically(&run_dir.join("run_config.json"), resolved.as_bytes())?;
    let optimizer = starting_optimizer(&config.model, &config.optimizer, &prepared.model)?;
    let mut trainer = Trainer {
        model: trainable(prepared.model),
        optimizer,
        objective: LanguageModeling::new(mixture).with_head_chunk_tokens(config.train.head_chunk_tokens),
        options: StepOptions {
            micro_batch_size: config.train.micro_batch_size,
            grad_accum: config.train.grad_accum,
            replicas: config.train.replicas,
            schedule: config.schedule.clone(),
            max_steps: config.train.max_steps,
            embedding_warmup: warmup,
            activation_checkpointing: config.train.activation_checkpointing,
        },
        step: 0,
        tokens: 0,
    };
    let session = Session {
        run_dir: run_dir.to_path_buf(),
        hf_config: prepared.hf_config,
        support_from: prepared.support_from,
        tokenizer: prepared.tokenizer,
        eval_texts: read_eval_texts(&config.eval)?,
        eval_every: config.eval.every,
        checkpoint: config.checkpoint.clone(),
        last_step: options
            .max_steps
            .unwrap_or(config.train.max_steps)
            .min(config.train.max_steps),
        fingerprint,
    };
    run_loop(&mut trainer, &session, options.start == Start::Resume, observer)
}

/// Locks and prepares `run_dir` for a run ([`RunDir::prepare`]), telling `observer` what it
/// removed. Keep the returned guard alive for the whole run.
pub fn open_run_dir(run_dir: &Path, start: Start, observer: &dyn RunObserver) -> Result<RunDir> {
    let prepared = RunDir::prepare(run_dir, start)?;
    for note in &prepared.notes {
        observer.message(note);
    }
    Ok(prepared)
}

fn open_data(config: &RunConfig, run_dir: &Path, observer: &dyn RunObserver) -> Result<Mixture> {
    if let Some(dir) = &config.data.dir {
        return Ok(Mixture::open(dir)?);
    }
    let recipe_path = config.data.recipe.as_ref().expect("validated: recipe or dir");
    let out = run_dir.join("data");
    if out.join("manifest.json").exists() {
        return Ok(Mixture::open(&out)?);
    }
    observer.message(&format!("building the data mixture of {}", recipe_path.display()));
    let recipe = Recipe::load(recipe_path)?;
    allam_data::build(&recipe, &out, &BuildOptions::default(), observer.data_progress())?;
    Ok(Mixture::open(&out)?)
}

fn embedding_warmup(config: &RunConfig, prepared: &PreparedModel) -> Result<Option<EmbeddingWarmup>> {
    let steps = config.train.embedding_warmup_steps;
    if steps == 0 {
        return Ok(None);
    }
    let first_new_row = match (config.train.first_new_row, &prepared.support_from) {
        (Some(row), _) => row,
        (None, Some(dir)) if dir.join("expansion.json").exists() => {
            let path = dir.join("expansion.json");
            let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
            let value: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))?;
            value["old_vocab_size"].as_u64().ok_or_else(|| {
                TrainError::Config(format!("{}: no \"old_vocab_size\" number", path.display()))
            })? as usize
        }
        _ => {
            return Err(TrainError::Config(
                "[train]: embedding_warmup_steps needs first_new_row (the vocabulary size before expansion) \
                 or an expansion.json in the model directory"
                    .into(),
            ));
        }
    };
    if first_new_row >= prepared.model.config.vocab_size {
        return Err(TrainError::Config(format!(
            "[train]: first_new_row {first_new_row} leaves no new row in a vocabulary of {}",
            prepared.model.config.vocab_size
        )));
    }
    let lr = config.train.embedding_lr.unwrap_or(config.schedule.lr);
    if !(lr.is_finite() && lr > 0.0) {
        return Err(TrainError::Config(format!(
            "[train]: embedding_lr must be a positive number, got {lr}"
        )));
    }
    Ok(Some(EmbeddingWarmup {
        steps,
        first_new_row,
        lr,
        lr_warmup_steps: config.train.embedding_lr_warmup_steps,
    }))
}

/// Runs `trainer` to `session.last_step`: resumes from the newest checkpoint if asked, appends a
/// row per step to `metrics.jsonl`, evaluates, checkpoints, and at the end writes the final
/// Hugging Face export (`final/`) and `loss.svg`. A non-finite loss stops the run with an error
/// and leaves the last checkpoint as it was.
pub fn run_loop<O: Objective>(
    trainer: &mut Trainer<O>,
    session: &Session,
    resume: bool,
    observer: &dyn RunObserver,
) -> Result<RunSummary> {
    let run_dir = &session.run_dir;
    std::fs::create_dir_all(run_dir).map_err(|e| TrainError::io(run_dir, e))?;
    let metrics_path = run_dir.join("metrics.jsonl");
    let mut checkpoint = None;
    let newest = if resume {
        let (newest, warnings) = newest_intact(run_dir)?;
        for warning in warnings {
            observer.message(&format!("warning: {warning}"));
        }
        newest
    } else {
        None
    };
    if let Some(dir) = newest {
        restore(trainer, &dir, &session.fingerprint)?;
        observer.message(&format!("resumed from {} (step {})", dir.display(), trainer.step));
        checkpoint = Some(dir);
    } else if resume {
        observer.message(&format!(
            "no checkpoint in {}: starting at step 0",
            run_dir.display()
        ));
    }
    keep_metrics_until(&metrics_path, trainer.step)?;
    let mut metrics = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&metrics_path)
        .map_err(|e| TrainError::io(&metrics_path, e))?;
    observer.start(trainer.step, session.last_step);
    let mut last_loss = None;
    while trainer.step < session.last_step {
        let mut record = trainer.train_step()?;
        last_loss = Some(record.loss);
        let step = record.step;
        if session
            .eval_every
            .is_some_and(|every| every > 0 && step % every == 0)
            || step == session.last_step
        {
            record.metrics.extend(evaluate_texts(&trainer.model, session)?);
            record.metrics.extend(trainer.objective.evaluate(&trainer.model)?);
        }
        let line = serde_json::to_string(&record).expect("a step record serialises");
        writeln!(metrics, "{line}")
            .and_then(|_| metrics.flush())
            .map_err(|e| TrainError::io(&metrics_path, e))?;
        observer.step(&record);
        let due = session
            .checkpoint
            .every
            .is_some_and(|every| every > 0 && step % every == 0);
        if due || step == session.last_step {
            let state = TrainerState {
                step,
                tokens: trainer.tokens,
                data: trainer.objective.state(),
                fingerprint: session.fingerprint.clone(),
            };
            let support = session.support_from.as_deref();
            checkpoint = Some(save_checkpoint(
                run_dir,
                &trainer.model,
                &session.hf_config,
                &trainer.optimizer,
                &state,
                support,
                session.checkpoint.keep,
            )?);
        }
    }
    let final_model = run_dir.join("final");
    let dtype = match session.checkpoint.export_dtype.as_str() {
        "bf16" => StorageDtype::Bf16,
        "f16" => StorageDtype::F16,
        _ => StorageDtype::F32,
    };
    save_hf(
        &trainer.model,
        &session.hf_config,
        &final_model,
        session.support_from.as_deref(),
        dtype,
    )?;
    if metrics_path.metadata().is_ok_and(|m| m.len() > 0) {
        plot_run(run_dir)?;
    }
    Ok(RunSummary {
        run_dir: run_dir.clone(),
        steps: trainer.step,
        last_loss,
        final_model,
        checkpoint,
    })
}

/// Loads a checkpoint into `trainer` (model, optimizer, data position, step).
pub fn restore<O: Objective>(
    trainer: &mut Trainer<O>,
    dir: &Path,
    fingerprint: &serde_json::Value,
) -> Result<()> {
    let mut state = read_state(dir)?;
    // Checkpoints written before mixed precision existed were f32 runs.
    if let Some(saved) = state.fingerprint.as_object_mut()
        && fingerprint.get("precision").is_some()
    {
        saved
            .entry("precision")
            .or_insert_with(|| serde_json::json!("f32"));
    }
    if &state.fingerprint != fingerprint {
        return Err(TrainError::checkpoint(
            dir,
            format!(
                "it was written by a different run setup: {} (this run: {fingerprint})",
                state.fingerprint
            ),
        ));
    }
    let device = trainer.model.device().without_autodiff();
    let (mut model, _) = load_model(&dir.join("model"), &device)?;
    model.config.rope_inv_freq_dtype = None;
    // The run's compute type (mixed precision) is a setting of the run, not of the checkpoint.
    model.config.compute_dtype = trainer.model.config.compute_dtype;
    trainer.model = trainable(model);
    trainer.optimizer = AdamW::load_for(
        &trainer.model,
        &dir.join("optimizer.safetensors"),
        trainer.optimizer.config.clone(),
    )?;
    trainer.objective.restore(&state.data)?;
    trainer.step = state.step;
    trainer.tokens = state.tokens;
    Ok(())
}

/// Drops the rows of `metrics.jsonl` after `step` (a resumed run rewrites them); a fresh run
/// (`step` 0) starts an empty file.
fn keep_metrics_until(path: &Path, step: u64) -> Result<()> {
    let kept = match std::fs::read_to_string(path) {
        Ok(text) if step > 0 => text
            .lines()
            .filter(|line| {
                serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v["step"].as_u64())
                    .is_some_and(|s| s <= step)
            })
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
        _ => String::new(),
    };
    crate::checkpoint::write_atomically(path, kept.as_bytes())
}

/// Held-out loss (nats per token) and bits per byte per language: `eval/<lang>/loss`,
/// `eval/<lang>/bpb`.
pub fn evaluate_texts(model: &Llama, session: &Session) -> Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    let Some(tokenizer) = &session.tokenizer else {
        return Ok(out);
    };
    if session.eval_texts.is_empty() {
        return Ok(out);
    }
    let pretrained = PretrainedModel {
        model: frozen(model),
        hf_config: session.hf_config.clone(),
        tokenizer: Some(tokenizer.clone()),
        dir: session.run_dir.clone(),
    };
    let window = SlidingWindow::for_model(&pretrained.model);
    for (language, docs) in &session.eval_texts {
        let total = documents_stats(&pretrained, docs.iter().map(String::as_str), window, 8)?;
        out.insert(format!("eval/{language}/loss"), total.nll / total.tokens as f64);
        out.insert(format!("eval/{language}/bpb"), total.bits_per_byte());
    }
    Ok(out)
}
