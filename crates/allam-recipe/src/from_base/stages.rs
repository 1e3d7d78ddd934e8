//! The stages of a recipe from a base: expansion, continued pretraining, SFT and DPO, and the
//! evaluation of each model.
use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Instant;

use allam_align::AlignConfig;
use allam_eval::{McOptions, PromptFormat, SlidingWindow, TaskFormat, documents_stats, read_items};
use allam_model::expand::{VocabExpansion, expand_pretrained, save_expanded, tokenizer_size};
use allam_model::{PretrainedModel, RowInit, SaveOptions, TextTokenizer};
use allam_train::{LrSchedule, RunConfig, RunOptions, Start};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::config::{BaseRecipe, Length};
use super::{Run, Stage};
use crate::error::{RecipeError, Result};
use crate::pipeline::ModelScores;

/// What stage 2 measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct ExpansionFacts {
    /// Ids of the base tokenizer.
    pub base_vocab: usize,
    /// Ids of the expanded tokenizer.
    pub expanded_vocab: usize,
    /// Arabic tokens per word (held-out Arabic): base, expanded.
    pub arabic_fertility: (f64, f64),
    /// English tokens per word (held-out English): base, expanded.
    pub english_fertility: (f64, f64),
    /// What the expansion did to the pre-tokenizer (from its report).
    pub pre_tokenizer: Option<String>,
}

/// Stage 2: learns Arabic pieces, merges them into the base tokenizer (`tokenizer_dir`) and grows
/// the base model to it with the configured initialisation (`model_dir`).
pub(super) fn expand(recipe: &BaseRecipe, tokenizer_dir: &Path, model_dir: &Path) -> Result<ExpansionFacts> {
    let e = &recipe.expansion;
    let base_path = recipe.base.dir.join("tokenizer.json");
    let base = allam_tokenizer::load_tokenizer(&base_path)?;
    let base_vocab = tokenizer_size(&base);
    let target = e
        .vocab_size
        .unwrap_or(base_vocab as u32 + e.new_pieces.unwrap_or(0));
    let mut config = allam_tokenizer::ExpansionConfig::new(target);
    config.pad_to_multiple = e.pad_to_multiple;
    config.eval_corpus = Some(allam_tokenizer::Corpus::new([&recipe.eval.heldout["ar"]], "text"));
    let corpus = recipe.expansion_corpus()?;
    // Written beside the recipe's tokenizer, as `allam tokenizer expand` writes it.
    let expansion = allam_tokenizer::expand_files(&base_path, &corpus, &config, tokenizer_dir)?;
    let report = serde_json::to_value(&expansion.report).expect("the report serialises");
    let pre_tokenizer = report["pre_tokenizer"]["note"].as_str().map(str::to_string);
    let english = crate::pipeline::english_fertility(
        &base,
        &expansion.tokenizer.tokenizer,
        &recipe.eval.heldout["en"],
    )?;
    let arabic = &expansion.report.fertility.arabic_tokens_per_word;

    let device = allam_model::device::select("cpu").map_err(RecipeError::Config)?;
    let pretrained = PretrainedModel::load(&recipe.base.dir, &device)?;
    let tokenizer = TextTokenizer::from_file(&tokenizer_dir.join("tokenizer.json"))?;
    let new_size = tokenizer_size(tokenizer.inner());
    let plan = VocabExpansion {
        vocab_size: VocabExpansion::default_size(pretrained.model.config.vocab_size, new_size, None),
        init: RowInit::from_str(&e.init)?,
        seed: recipe.seed,
    };
    let (expanded, summary) = expand_pretrained(pretrained, tokenizer, &plan)?;
    save_expanded(&expanded, model_dir, &SaveOptions::default())?;
    let summary = serde_json::to_string_pretty(&summary).expect("serialises");
    crate::error::write_file(&model_dir.join("expansion.json"), summary.as_bytes())?;
    Ok(ExpansionFacts {
        base_vocab,
        expanded_vocab: new_size,
        arabic_fertility: (arabic.base, arabic.expanded),
        english_fertility: english,
        pre_tokenizer,
    })
}

/// The schedule of a stage: linear warm-up, then cosine to `min_lr` over the rest of the stage
/// (after its embeddings-only phase), or constant.
fn schedule(lr: f64, min_lr: Option<f64>, warmup: u64) -> LrSchedule {
    match min_lr {
        Some(min) => LrSchedule {
            total_steps: None,
            ..LrSchedule::cosine(lr, min, warmup, 0)
        },
        None => LrSchedule::constant(lr, warmup),
    }
}

/// How a training stage starts: resumed where its folder has a run (`--resume`), else fresh.
fn start(run: &Run, dir: &Path) -> Start {
    if run.options.resume && dir.exists() {
        Start::Resume
    } else {
        Start::Fresh
    }
}

/// Stage 3, the mixture or the control: steps from the token budget, the data recipe written
/// into `out/data/`, the run resumed or fresh. Returns whether the stage finished (not stopped
/// at a step).
pub(super) fn continued(run: &mut Run, stage: Stage, label: &str) -> Result<bool> {
    let recipe = run.recipe;
    let c = &recipe.continued;
    let steps = recipe.continued_steps().map_err(RecipeError::Config)?;
    let per_step = c.micro_batch_size * c.seq_len * c.grad_accum;
    run.progress.message(&format!(
        "stage {label}: {} steps × {} rows × {} tokens × {} micro-batches = {} tokens{}",
        steps,
        c.micro_batch_size,
        c.seq_len,
        c.grad_accum,
        steps * per_step as u64,
        c.tokens
            .map(|t| format!(" (budget {t} tokens)"))
            .unwrap_or_default()
    ));
    let tokenizer = run.out("tokenizers/expanded").join("tokenizer.json");
    let english_only = stage == Stage::Control;
    let data = recipe
        .data_recipe(&tokenizer, english_only)
        .map_err(RecipeError::Config)?;
    let data_path = run.out("data").join(if english_only {
        "english.toml"
    } else {
        "mixture.toml"
    });
    crate::error::write_file(&data_path, data.as_bytes())?;
    let dir = run.out(stage.dir());
    let eval_text: Vec<_> = match c.eval_every {
        Some(_) => recipe
            .eval
            .heldout
            .iter()
            .map(|(language, path)| json!({"language": language, "path": path}))
            .collect(),
        None => vec![],
    };
    let value = json!({
        "model": {"dir": run.out(Stage::Expansion.dir()), "seed": recipe.seed},
        "data": {"recipe": data_path},
        "schedule": schedule(c.lr, c.min_lr, c.warmup_steps),
        "train": {
            "max_steps": steps,
            "micro_batch_size": c.micro_batch_size,
            "grad_accum": c.grad_accum,
            "embedding_warmup_steps": c.embedding_warmup_steps,
            "embedding_lr": c.embedding_lr,
            "device": recipe.device,
            "precision": recipe.precision,
            "activation_checkpointing": recipe.activation_checkpointing,
        },
        "checkpoint": {"every": c.checkpoint_every, "keep": 1},
        "eval": {"every": c.eval_every, "text": eval_text},
    });
    let config: RunConfig =
        serde_json::from_value(value).map_err(|e| RecipeError::Config(format!("[continued]: {e}")))?;
    config.validate()?;
    let stop = run.stop_step(stage);
    let options = RunOptions {
        max_steps: stop,
        start: start(run, &dir),
    };
    let clock = Instant::now();
    let observer = run.progress.stage(label);
    let summary = allam_train::train(&config, &dir, &options, observer.as_ref())?;
    if summary.steps < steps {
        run.progress.message(&format!(
            "stopped {label} after step {} of {steps} (checkpoint kept): continue with --resume",
            summary.steps
        ));
        return Ok(false);
    }
    run.finish(stage, clock.elapsed().as_secs_f64())?;
    Ok(true)
}

/// The SFT or DPO stage's configuration.
fn align_config(recipe: &BaseRecipe, stage: Stage, from: &Path) -> Result<AlignConfig> {
    let (s, d) = (&recipe.sft, &recipe.dpo);
    let sft = stage == Stage::Sft;
    let (path, template, seq_len, mb, ga) = if sft {
        (
            &s.path,
            s.template.clone(),
            s.seq_len,
            s.micro_batch_size,
            s.grad_accum,
        )
    } else {
        let template = d.template.clone().unwrap_or_else(|| s.template.clone());
        (&d.path, template, d.seq_len, d.micro_batch_size, d.grad_accum)
    };
    let length = if sft { s.length() } else { d.length() };
    let (epochs, max_steps) = match length {
        Length::Epochs(e) => (e, None),
        Length::Steps(n) => (1.0, Some(n)),
        Length::Tokens(t) => (1.0, Some(t.div_ceil((mb * seq_len * ga) as u64).max(1))),
    };
    let (lr, min_lr, warmup, every) = if sft {
        (s.lr, s.min_lr, s.warmup_steps, s.checkpoint_every)
    } else {
        (d.lr, d.min_lr, d.warmup_steps, d.checkpoint_every)
    };
    let value = json!({
        "model": {"dir": from, "seed": recipe.seed},
        "data": {
            "path": path,
            "eval_path": if sft { None } else { d.eval_path.clone() },
            "template": template,
            "seq_len": seq_len,
            "seed": recipe.seed,
        },
        "schedule": schedule(lr, min_lr, warmup),
        "train": {
            "epochs": epochs,
            "max_steps": max_steps,
            "micro_batch_size": mb,
            "grad_accum": ga,
            "device": recipe.device,
            "precision": recipe.precision,
            "activation_checkpointing": recipe.activation_checkpointing,
        },
        "dpo": {"beta": d.beta},
        "checkpoint": {"every": every, "keep": 1},
    });
    let section = if sft { "[sft]" } else { "[dpo]" };
    serde_json::from_value(value).map_err(|e| RecipeError::Config(format!("{section}: {e}")))
}

/// Stage 4 or 5, from the model of the stage before. Returns whether the stage finished (not
/// stopped at a step by `--stop-after`).
pub(super) fn align(run: &mut Run, stage: Stage, label: &str) -> Result<bool> {
    let recipe = run.recipe;
    let from = match stage {
        Stage::Sft => run.out(Stage::Mixed.dir()).join("final"),
        _ => run.out(Stage::Sft.dir()).join("final"),
    };
    let config = align_config(recipe, stage, &from)?;
    run.progress.message(&format!(
        "stage {label}: {} per step ({} × {} micro-batches, seq_len {}), template {}, {}",
        if stage == Stage::Sft { "rows" } else { "pairs" },
        config.train.step.micro_batch_size,
        config.train.step.grad_accum,
        config.data.seq_len,
        config.data.template,
        match config.train.max_steps {
            Some(n) => format!("{n} steps"),
            None => format!("{} epoch(s)", config.train.epochs),
        }
    ));
    let dir = run.out(stage.dir());
    let stop = run.stop_step(stage);
    let start = start(run, &dir);
    let clock = Instant::now();
    let observer = run.progress.stage(label);
    let made = match stage {
        Stage::Sft => {
            allam_align::run_sft(&config, &dir, stop, start, observer.as_ref())?
                .run
                .steps
        }
        _ => allam_align::run_dpo(&config, &dir, stop, start, observer.as_ref())?.steps,
    };
    if stop == Some(made) {
        run.progress.message(&format!(
            "stopped {label} after step {made} (checkpoint kept): continue with --resume"
        ));
        return Ok(false);
    }
    if stage == Stage::Dpo {
        let (accuracy, margin) = crate::pipeline::reward_accuracy(&config, &dir, &run.device)?;
        let heldout = last_metric(&dir, "eval/pairs/reward_accuracy");
        run.state.dpo = Some((accuracy, margin, heldout));
    }
    run.finish(stage, clock.elapsed().as_secs_f64())?;
    Ok(true)
}

/// The last value of `key` in `dir/metrics.jsonl`.
fn last_metric(dir: &Path, key: &str) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v[key].as_f64())
}

/// Held-out bits per byte per language and each benchmark's accuracy of the model in `dir`.
pub(super) fn score_model(
    recipe: &BaseRecipe,
    label: &str,
    dir: &Path,
    device: &Device,
) -> Result<ModelScores> {
    let pretrained = PretrainedModel::load(dir, device)?;
    let window = SlidingWindow::for_model(&pretrained.model);
    let batch = recipe.eval.batch_size;
    let mut bpb = BTreeMap::new();
    for (lang, path) in &recipe.eval.heldout {
        let text = std::fs::read_to_string(path).map_err(|e| RecipeError::io(path, e))?;
        let docs = text.lines().filter(|l| !l.trim().is_empty());
        bpb.insert(
            lang.clone(),
            documents_stats(&pretrained, docs, window, batch)?.bits_per_byte(),
        );
    }
    let mut accuracy = BTreeMap::new();
    for task in &recipe.eval.tasks {
        let format = TaskFormat::for_file(&task.task, &task.path)?;
        let mut items = read_items(&task.path, format)?;
        if let Some(limit) = task.limit {
            items.truncate(limit);
        }
        let dev = match &task.dev {
            Some(path) => Some(read_items(path, TaskFormat::for_file(&task.task, path)?)?),
            None => None,
        };
        let prompt = match &task.format {
            Some(name) => PromptFormat::from_name(name)?,
            None => PromptFormat::default_for_task(&task.task),
        };
        let options = McOptions {
            format: prompt,
            shots: task.shots.unwrap_or(prompt.default_shots()),
            batch_size: batch,
            ..McOptions::default()
        };
        let report = allam_eval::evaluate_with_dev(&pretrained, &items, dev.as_deref(), options)?;
        accuracy.insert(task.name.clone(), report.overall.acc);
    }
    Ok(ModelScores {
        stage: label.to_string(),
        dir: dir.to_path_buf(),
        en_bpb: bpb["en"],
        ar_bpb: bpb["ar"],
        accuracy,
    })
}
