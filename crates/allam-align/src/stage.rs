//! The SFT and DPO stages as configured by [`crate::config::AlignConfig`]: the run directory, the
//! model, the data (packing, pair truncation, the cached reference), then `allam-train`'s loop
//! with the objectives of [`crate::objectives`].
use std::path::Path;

use allam_model::{Llama, TextTokenizer};
use allam_train::Objective;
use allam_train::params::frozen;
use allam_train::run_dir::Start;
use allam_train::session::{RunObserver, RunSummary, open_run_dir, run_loop};
use allam_train::setup::{PreparedModel, StageLength, assemble};
use serde::Serialize;

use crate::config::AlignConfig;
use crate::conversation::load_conversations;
use crate::dpo::{DpoConfig, DpoExample, load_preferences};
use crate::error::{AlignError, Result};
use crate::heldout::HeldOutPairs;
use crate::objectives::{DpoObjective, Reference, SftObjective};
use crate::pair_scorer::PairScorer;
use crate::sft::{SftExample, TruncationReport, pack_examples};
use crate::template::ChatTemplate;
use crate::truncation::Truncation;

/// What an SFT run did besides training.
#[derive(Clone, Debug, Serialize)]
pub struct SftSummary {
    /// The loop's summary.
    pub run: RunSummary,
    /// What packing cut.
    pub packing: TruncationReport,
}

fn pad_id(tokenizer: &TextTokenizer, model: &Llama) -> u32 {
    model
        .config
        .pad_token_id
        .or_else(|| tokenizer.eos_token().and_then(|t| tokenizer.token_to_id(t)))
        .unwrap_or(0)
}

/// What both stages start from: the model (into `run_dir`), its tokenizer and the chat template.
fn prepare_stage(
    config: &AlignConfig,
    run_dir: &Path,
) -> Result<(PreparedModel, TextTokenizer, ChatTemplate)> {
    // In the run's precision before anything computes with it: DPO's reference log-probs must
    // come from the policy's arithmetic, or the first step's margin is rounding noise, not 0.
    let stage = config.stage();
    let prepared = stage.prepare(run_dir, &stage.device()?)?;
    let tokenizer = prepared
        .tokenizer
        .clone()
        .ok_or_else(|| AlignError::Input("the model has no tokenizer.json".into()))?;
    let template = config.template(&tokenizer)?;
    Ok((prepared, tokenizer, template))
}

/// Runs SFT as configured into `run_dir` (stopping early at `stop_at` steps if given).
pub fn run_sft(
    config: &AlignConfig,
    run_dir: &Path,
    stop_at: Option<u64>,
    start: Start,
    observer: &dyn RunObserver,
) -> Result<SftSummary> {
    let _run_dir = open_run_dir(run_dir, start, observer)?;
    let (prepared, tokenizer, template) = prepare_stage(config, run_dir)?;
    let conversations = load_conversations(&config.data.path)?;
    let examples = conversations
        .iter()
        .map(|c| SftExample::encode(c, &template, &tokenizer))
        .collect::<Result<Vec<_>>>()?;
    let pad = pad_id(&tokenizer, &prepared.model);
    let (rows, packing) = pack_examples(&examples, config.data.seq_len, pad)?;
    let report = serde_json::to_string_pretty(&packing).expect("the report serialises");
    let path = run_dir.join("packing.json");
    allam_io::write_atomic(&path, report.as_bytes()).map_err(|source| AlignError::Io { path, source })?;
    if packing.conversations_truncated + packing.conversations_dropped > 0 {
        observer.message(&format!(
            "packing: {} conversation(s) truncated, {} dropped, {} assistant turn(s) and {} token(s) cut (packing.json)",
            packing.conversations_truncated,
            packing.conversations_dropped,
            packing.assistant_turns_dropped,
            packing.tokens_cut
        ));
    }
    let max_steps = config.steps_for(rows.len());
    let fingerprint = serde_json::json!({
        "objective": "sft", "rows": rows.len(), "seq_len": config.data.seq_len,
        "micro_batch_size": config.train.step.micro_batch_size, "grad_accum": config.train.step.grad_accum,
    });
    let objective = SftObjective::new(rows, config.data.seed)?
        .with_head_chunk_tokens(config.train.step.head_chunk_tokens);
    let run = run_stage(
        config,
        prepared,
        objective,
        max_steps,
        stop_at,
        fingerprint,
        run_dir,
        start,
        observer,
    )?;
    Ok(SftSummary { run, packing })
}

/// Runs DPO as configured into `run_dir`; the starting model is the reference.
pub fn run_dpo(
    config: &AlignConfig,
    run_dir: &Path,
    stop_at: Option<u64>,
    start: Start,
    observer: &dyn RunObserver,
) -> Result<RunSummary> {
    let _run_dir = open_run_dir(run_dir, start, observer)?;
    let (prepared, tokenizer, template) = prepare_stage(config, run_dir)?;
    let limits = config.truncation();
    let examples = encode_pairs(&config.data.path, &template, &tokenizer, &limits, observer)?;
    let pad = pad_id(&tokenizer, &prepared.model);
    let dpo = config.dpo.config();
    let scorer = PairScorer::new(dpo, pad, config.train.step.head_chunk_tokens);
    let reference = if config.dpo.reference == "memory" {
        Reference::Model(Box::new(frozen(&prepared.model)))
    } else {
        Reference::Cached(cached_reference(
            run_dir,
            &prepared.model,
            &examples,
            &scorer,
            config.train.step.micro_batch_size,
            observer,
        )?)
    };
    let max_steps = config.steps_for(examples.len());
    let mut fingerprint = serde_json::json!({
        "objective": "dpo", "pairs": examples.len(), "max_length": limits.max_length(),
        "micro_batch_size": config.train.step.micro_batch_size, "grad_accum": config.train.step.grad_accum,
    });
    // Only the newer style is named, so checkpoints from before it existed still resume.
    if let Truncation::Sequence(_) = limits {
        fingerprint["truncation"] = serde_json::json!("sequence");
    }
    let mut objective = DpoObjective::new(examples, reference, dpo, pad, config.data.seed)?
        .with_head_chunk_tokens(config.train.step.head_chunk_tokens);
    if let Some(path) = &config.data.eval_path {
        let heldout = encode_pairs(path, &template, &tokenizer, &limits, observer)?;
        let heldout = HeldOutPairs::new(
            heldout,
            &prepared.model,
            scorer,
            config.train.step.micro_batch_size,
        )?;
        observer.message(&format!(
            "{} held-out pairs from {}: reward accuracy and margin at every evaluation",
            heldout.len(),
            path.display()
        ));
        objective = objective.with_heldout(heldout);
    }
    let has_heldout = objective.has_heldout();
    let summary = run_stage(
        config,
        prepared,
        objective,
        max_steps,
        stop_at,
        fingerprint,
        run_dir,
        start,
        observer,
    )?;
    if has_heldout {
        crate::heldout::report_last(run_dir, observer);
    }
    Ok(summary)
}

/// Reads and tokenizes the pairs of `path`, cut to `limits` as TRL does, and says how many were
/// cut or dropped.
fn encode_pairs(
    path: &Path,
    template: &ChatTemplate,
    tokenizer: &TextTokenizer,
    limits: &Truncation,
    observer: &dyn RunObserver,
) -> Result<Vec<DpoExample>> {
    let mut examples = load_preferences(path)?
        .iter()
        .map(|p| DpoExample::encode(p, template, tokenizer))
        .collect::<Result<Vec<_>>>()?;
    let read = examples.len();
    let count = limits.apply(&mut examples);
    if count.cut > 0 {
        observer.message(&format!(
            "{}: {} of {read} pair(s) longer than {} tokens cut ({})",
            path.display(),
            count.cut,
            limits.max_length(),
            limits.describe()
        ));
    }
    if count.dropped > 0 {
        observer.message(&format!(
            "{}: {} of {read} pair(s) dropped: their prompt alone fills {} tokens, so no response \
             token would remain (as TRL drops them)",
            path.display(),
            count.dropped,
            limits.max_length()
        ));
    }
    if examples.is_empty() {
        return Err(AlignError::Input(format!(
            "{}: no preference pair is left after truncation to {} tokens",
            path.display(),
            limits.max_length()
        )));
    }
    Ok(examples)
}

/// The reference log-probabilities cached by a DPO run, `(key, values)`: `values[i]` are the
/// summed (chosen, rejected) response log-probs of pair `i`; `key` identifies the pairs, the loss
/// normalisation and the reference weights they were computed from.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct ReferenceCache {
    /// What the values were computed from.
    pub key: String,
    /// `(chosen, rejected)` per pair.
    pub values: Vec<(f32, f32)>,
}

impl ReferenceCache {
    /// Reads `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| AlignError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        serde_json::from_str(&text).map_err(|e| AlignError::Input(format!("{}: {e}", path.display())))
    }
}

/// FNV-1a over the pairs' tokens and masks, the loss kind, the model's compute type and a
/// checksum of every weight.
fn reference_key(model: &Llama, examples: &[DpoExample], config: &DpoConfig) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |x: u64| {
        for b in x.to_le_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    };
    for e in examples {
        for (ids, mask) in [
            (&e.chosen_ids, &e.chosen_mask),
            (&e.rejected_ids, &e.rejected_mask),
        ] {
            eat(ids.len() as u64);
            ids.iter()
                .zip(mask.iter())
                .for_each(|(&id, &m)| eat(u64::from(id) << 1 | u64::from(m)));
        }
    }
    eat(config.loss as u64);
    // Log-probs computed in another precision are other numbers.
    eat(model.config.compute_dtype.map_or(0, |dtype| dtype as u64 + 1));
    for (_, flat) in allam_train::params::named_values(model) {
        let sum: f32 = flat.values.abs().sum().into_scalar();
        eat(u64::from(sum.to_bits()));
    }
    format!("{h:016x}")
}

/// Reference log-probs from `run_dir/reference_logprobs.json` when it was computed from the same
/// pairs and weights; otherwise computed in one pass and written there (so a resumed run, or a
/// rerun, does not recompute them).
fn cached_reference(
    run_dir: &Path,
    model: &Llama,
    examples: &[DpoExample],
    scorer: &PairScorer,
    micro: usize,
    observer: &dyn RunObserver,
) -> Result<Vec<(f32, f32)>> {
    let path = run_dir.join("reference_logprobs.json");
    let key = reference_key(model, examples, scorer.config());
    if let Ok(cache) = ReferenceCache::read(&path)
        && cache.key == key
        && cache.values.len() == examples.len()
    {
        return Ok(cache.values);
    }
    observer.message(&format!(
        "computing reference log-probs of {} pairs",
        examples.len()
    ));
    let values = scorer.logprobs_of_all(&frozen(model), examples, micro)?;
    let cache = ReferenceCache { key, values };
    let json = serde_json::to_string(&cache).expect("numbers serialise");
    allam_io::write_atomic(&path, json.as_bytes()).map_err(|source| AlignError::Io { path, source })?;
    Ok(cache.values)
}

/// Runs `objective` on `prepared` for `max_steps` (stopping at `stop_at`) on one replica, through
/// the assembly every training stage shares (`allam_train::setup::assemble`) and its loop.
#[allow(clippy::too_many_arguments)]
fn run_stage<O: Objective>(
    config: &AlignConfig,
    prepared: PreparedModel,
    objective: O,
    max_steps: u64,
    stop_at: Option<u64>,
    fingerprint: serde_json::Value,
    run_dir: &Path,
    start: Start,
    observer: &dyn RunObserver,
) -> Result<RunSummary> {
    let length = StageLength {
        max_steps,
        stop_at,
        replicas: 1,
        embedding_warmup: None,
    };
    let (mut trainer, session) =
        assemble(&config.stage(), prepared, objective, length, fingerprint, run_dir)?;
    Ok(run_loop(
        &mut trainer,
        &session,
        start == Start::Resume,
        observer,
    )?)
}
