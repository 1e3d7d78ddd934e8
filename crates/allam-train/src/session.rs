//! The loop of every training stage: resume, steps, `metrics.jsonl`, held-out evaluation,
//! checkpoints, the final Hugging Face export and the loss curve. Pretraining, SFT and DPO run it
//! on the [`Trainer`] and [`Session`] that [`crate::setup::assemble`] builds.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use allam_data::{NoProgress, Progress};
use allam_eval::{SlidingWindow, documents_stats};
use allam_model::{HfConfig, Llama, PretrainedModel, StorageDtype, TextTokenizer, load_model};
use serde::Serialize;

use crate::checkpoint::{TrainerState, newest_intact, read_state, save_checkpoint, save_hf};
use crate::config::CheckpointSpec;
use crate::error::{Result, TrainError};
use crate::objective::Objective;
use crate::optim::AdamW;
use crate::params::{frozen, trainable};
use crate::plot::plot_run;
use crate::run_dir::{RunDir, Start};
use crate::trainer::{StepRecord, Trainer};

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

/// Locks and prepares `run_dir` for a run ([`RunDir::prepare`]), telling `observer` what it
/// removed. Keep the returned guard alive for the whole run.
pub fn open_run_dir(run_dir: &Path, start: Start, observer: &dyn RunObserver) -> Result<RunDir> {
    let prepared = RunDir::prepare(run_dir, start)?;
    for note in &prepared.notes {
        observer.message(note);
    }
    Ok(prepared)
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
