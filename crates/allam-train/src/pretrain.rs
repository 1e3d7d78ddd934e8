//! Pretraining and continued pretraining: a [`RunConfig`]'s data mixture (built into the run on
//! first use), the embeddings-only warm-up of new rows, and the language-modelling objective,
//! assembled by [`crate::setup::assemble`] and run by [`crate::session::run_loop`].
use std::path::Path;

use allam_data::{BuildOptions, Mixture, Recipe};

use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::objective::LanguageModeling;
use crate::run_dir::Start;
use crate::session::{RunObserver, RunSummary, open_run_dir, run_loop};
use crate::setup::{PreparedModel, StageLength, assemble};
use crate::trainer::EmbeddingWarmup;

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

/// Pretraining (or continued pretraining) as configured, into `run_dir`.
pub fn train(
    config: &RunConfig,
    run_dir: &Path,
    options: &RunOptions,
    observer: &dyn RunObserver,
) -> Result<RunSummary> {
    let _run_dir = open_run_dir(run_dir, options.start, observer)?;
    let stage = config.stage();
    // The device is opened before the data is built (a typo should not cost a build).
    let device = stage.device()?;
    let mixture = open_data(config, run_dir, observer)?;
    let prepared = stage.prepare(run_dir, &device)?;
    let seq_len = mixture.manifest().seq_len;
    let embedding_warmup = embedding_warmup(config, &prepared)?;
    let fingerprint = serde_json::json!({
        "objective": "language_modeling",
        "vocab_size": prepared.model.config.vocab_size,
        "hidden_size": prepared.model.config.hidden_size,
        "num_hidden_layers": prepared.model.config.num_hidden_layers,
        "seq_len": seq_len,
        "micro_batch_size": config.train.step.micro_batch_size,
        "grad_accum": config.train.step.grad_accum,
        "replicas": config.train.replicas,
    });
    let resolved = serde_json::to_string_pretty(config).expect("the config serialises");
    crate::checkpoint::write_atomically(&run_dir.join("run_config.json"), resolved.as_bytes())?;
    let objective =
        LanguageModeling::new(mixture).with_head_chunk_tokens(config.train.step.head_chunk_tokens);
    let length = StageLength {
        max_steps: config.train.max_steps,
        stop_at: options.max_steps,
        replicas: config.train.replicas,
        embedding_warmup,
    };
    let (mut trainer, session) = assemble(&stage, prepared, objective, length, fingerprint, run_dir)?;
    run_loop(&mut trainer, &session, options.start == Start::Resume, observer)
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
