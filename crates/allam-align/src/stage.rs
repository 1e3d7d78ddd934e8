//! The SFT and DPO stages on `allam-train`'s loop: their [`Objective`]s and the functions that
//! run them as configured by [`crate::config::AlignConfig`].
use std::collections::BTreeMap;
use std::path::Path;

use allam_model::{Llama, TextTokenizer, TokenBatch};
use allam_train::loss::language_model_loss;
use allam_train::params::{frozen, trainable};
use allam_train::run::starting_optimizer;
use allam_train::run::{
    PreparedModel, RunObserver, RunSummary, Session, open_run_dir, prepare_model, read_eval_texts, run_loop,
};
use allam_train::run_dir::Start;
use allam_train::{LossOutput, MetricSum, Objective, StepOptions, Trainer};
use burn::tensor::{Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::Serialize;

use crate::config::AlignConfig;
use crate::conversation::load_conversations;
use crate::dpo::{
    DpoBatch, DpoConfig, DpoExample, DpoLossKind, PairTruncation, TruncationMode, dpo_loss, load_preferences,
    response_logprobs, response_logprobs_of, truncate_pairs,
};
use crate::error::{AlignError, Result};
use crate::heldout::HeldOutPairs;
use crate::sft::{SftExample, SftRow, TruncationReport, pack_examples};
use crate::template::ChatTemplate;
use allam_train::head::{WeightedTargets, row_logprob_gradient, row_logprobs};

/// A deterministic, epoch-reshuffled walk over `n` items; its state is one counter.
#[derive(Clone, Debug)]
struct Order {
    n: usize,
    seed: u64,
    cursor: u64,
    epoch: u64,
    permutation: Vec<usize>,
}

impl Order {
    fn new(n: usize, seed: u64) -> Self {
        let mut order = Self {
            n,
            seed,
            cursor: 0,
            epoch: u64::MAX,
            permutation: Vec::new(),
        };
        order.seek(0);
        order
    }

    fn seek(&mut self, cursor: u64) {
        self.cursor = cursor;
        let epoch = cursor / self.n as u64;
        if epoch != self.epoch {
            let mut rng =
                rand::rngs::StdRng::seed_from_u64(self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            self.permutation = (0..self.n).collect();
            self.permutation.shuffle(&mut rng);
            self.epoch = epoch;
        }
    }

    fn take(&mut self, k: usize) -> Vec<usize> {
        (0..k)
            .map(|_| {
                self.seek(self.cursor);
                let item = self.permutation[(self.cursor % self.n as u64) as usize];
                self.cursor += 1;
                item
            })
            .collect()
    }
}

/// Supervised fine-tuning: packed conversation rows, loss on assistant tokens only.
pub struct SftObjective {
    rows: Vec<SftRow>,
    order: Order,
    head_chunk_tokens: usize,
}

impl SftObjective {
    /// Over packed rows, in an order reshuffled every epoch from `seed`.
    pub fn new(rows: Vec<SftRow>, seed: u64) -> Result<Self> {
        if rows.is_empty() {
            return Err(AlignError::Input("no SFT rows to train on".into()));
        }
        let order = Order::new(rows.len(), seed);
        Ok(Self {
            rows,
            order,
            head_chunk_tokens: allam_train::head::DEFAULT_CHUNK_TOKENS,
        })
    }

    /// Runs the output head in chunks of `tokens` (0: all logits at once).
    pub fn with_head_chunk_tokens(mut self, tokens: usize) -> Self {
        self.head_chunk_tokens = tokens;
        self
    }
}

fn state_error(e: impl std::fmt::Display) -> allam_train::TrainError {
    allam_train::TrainError::Config(format!("saved data state: {e}"))
}

impl Objective for SftObjective {
    type Batch = Vec<SftRow>;

    fn next_batch(&mut self, rows: usize) -> allam_train::Result<Vec<SftRow>> {
        Ok(self
            .order
            .take(rows)
            .into_iter()
            .map(|i| self.rows[i].clone())
            .collect())
    }

    fn units(&self, batch: &Vec<SftRow>) -> usize {
        batch
            .iter()
            .flat_map(|r| &r.labels)
            .filter(|&&l| l != crate::sft::IGNORE)
            .count()
    }

    fn tokens(&self, batch: &Vec<SftRow>) -> usize {
        batch.iter().map(|r| r.input_ids.len()).sum()
    }

    fn loss(&self, model: &Llama, batch: &Vec<SftRow>) -> allam_train::Result<LossOutput> {
        let (tokens, _) = sft_batch(batch)?;
        self.loss_from_hidden(model, model.hidden_states(&tokens)?, batch)
    }

    fn model_input(&self, batch: &Vec<SftRow>) -> Option<allam_train::Result<TokenBatch>> {
        Some(sft_batch(batch).map(|(tokens, _)| tokens))
    }

    fn loss_from_hidden(
        &self,
        model: &Llama,
        hidden: Tensor<3>,
        batch: &Vec<SftRow>,
    ) -> allam_train::Result<LossOutput> {
        let (_, labels) = sft_batch(batch)?;
        let loss = language_model_loss(model, hidden, &labels, self.head_chunk_tokens)?;
        Ok(LossOutput {
            loss_sum: loss.sum,
            metrics: BTreeMap::new(),
        })
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "cursor": self.order.cursor })
    }

    fn restore(&mut self, state: &serde_json::Value) -> allam_train::Result<()> {
        let cursor = state["cursor"].as_u64().ok_or_else(|| state_error("no cursor"))?;
        self.order.seek(cursor);
        Ok(())
    }
}

/// The packed rows of an SFT micro-batch and their labels.
fn sft_batch(batch: &[SftRow]) -> allam_train::Result<(TokenBatch, Vec<i32>)> {
    SftRow::batch(batch).map_err(|e| allam_train::TrainError::Config(e.to_string()))
}

/// Where DPO's reference log-probabilities come from.
pub enum Reference {
    /// Computed once before training: `(chosen, rejected)` per example.
    Cached(Vec<(f32, f32)>),
    /// A frozen copy of the starting model.
    Model(Box<Llama>),
}

/// Direct preference optimisation over encoded pairs.
pub struct DpoObjective {
    examples: Vec<DpoExample>,
    reference: Reference,
    config: DpoConfig,
    pad_id: u32,
    order: Order,
    heldout: Option<HeldOutPairs>,
    head_chunk_tokens: usize,
}

impl DpoObjective {
    /// Over `examples` against `reference`, in an order reshuffled every epoch from `seed`.
    pub fn new(
        examples: Vec<DpoExample>,
        reference: Reference,
        config: DpoConfig,
        pad_id: u32,
        seed: u64,
    ) -> Result<Self> {
        if examples.is_empty() {
            return Err(AlignError::Input("no preference pairs to train on".into()));
        }
        config.validate()?;
        let order = Order::new(examples.len(), seed);
        Ok(Self {
            examples,
            reference,
            config,
            pad_id,
            order,
            heldout: None,
            head_chunk_tokens: allam_train::head::DEFAULT_CHUNK_TOKENS,
        })
    }

    /// Runs the output head in chunks of `tokens` (0: all logits at once).
    pub fn with_head_chunk_tokens(mut self, tokens: usize) -> Self {
        self.head_chunk_tokens = tokens;
        self
    }

    /// Also reports the reward accuracy and margin on `heldout` at every evaluation.
    pub fn with_heldout(mut self, heldout: HeldOutPairs) -> Self {
        self.heldout = Some(heldout);
        self
    }

    /// Log-probs `(chosen, rejected)` of a batch: with the chunked head, values only (no
    /// gradient: the reference, evaluation); with the composed head, differentiable.
    fn logprobs(&self, model: &Llama, batch: &DpoBatch) -> Result<(Tensor<1>, Tensor<1>)> {
        let all = if self.head_chunk_tokens == 0 {
            response_logprobs(model, &batch.responses)?
        } else {
            row_logprobs(
                model.hidden_states(&batch.responses.tokens)?,
                model.output_weight(),
                &batch.responses.weighted_targets(),
                self.head_chunk_tokens,
            )?
        };
        Ok(self.split(all, batch))
    }

    /// Chosen and rejected halves of per-row log-probs, length-normalised for IPO (as TRL).
    fn split(&self, all: Tensor<1>, batch: &DpoBatch) -> (Tensor<1>, Tensor<1>) {
        let chosen = all.clone().narrow(0, 0, batch.pairs);
        let rejected = all.narrow(0, batch.pairs, batch.pairs);
        if self.config.loss != DpoLossKind::Ipo {
            return (chosen, rejected);
        }
        let lens: Vec<f32> = batch
            .responses
            .response_tokens()
            .iter()
            .map(|&n| n as f32)
            .collect();
        let device = chosen.device();
        let lens = Tensor::<1>::from_data(TensorData::new(lens, [2 * batch.pairs]), &device);
        (
            chosen / lens.clone().narrow(0, 0, batch.pairs),
            rejected / lens.narrow(0, batch.pairs, batch.pairs),
        )
    }

    /// The policy's log-probs with gradients, and what turns the loss into the gradient: with the
    /// composed head the log-probs themselves carry it (nothing to add); with the chunked head
    /// they are values on a leaf, and `finish(loss)` backpropagates the loss to the leaf and
    /// returns the loss's value with the model's gradient attached ([`row_logprob_gradient`]).
    fn policy_logprobs(&self, model: &Llama, hidden: Tensor<3>, batch: &DpoBatch) -> Result<PolicyLogprobs> {
        if self.head_chunk_tokens == 0 {
            let all = response_logprobs_of(model.logits(hidden), &batch.responses)?;
            let (chosen, rejected) = self.split(all, batch);
            return Ok(PolicyLogprobs {
                chosen,
                rejected,
                deferred: None,
            });
        }
        let weight = model.output_weight();
        let targets = batch.responses.weighted_targets();
        let values = row_logprobs(hidden.clone(), weight.clone(), &targets, self.head_chunk_tokens)?;
        let leaf = values.autodiff().require_grad();
        let (chosen, rejected) = self.split(leaf.clone(), batch);
        Ok(PolicyLogprobs {
            chosen,
            rejected,
            deferred: Some(Deferred {
                leaf,
                hidden,
                weight,
                targets,
                chunk: self.head_chunk_tokens,
            }),
        })
    }
}

/// Policy log-probs for the loss, see [`DpoObjective::policy_logprobs`].
struct PolicyLogprobs {
    chosen: Tensor<1>,
    rejected: Tensor<1>,
    deferred: Option<Deferred>,
}

/// What the chunked head needs to attach the model's gradient once the loss is known.
struct Deferred {
    leaf: Tensor<1>,
    hidden: Tensor<3>,
    weight: Tensor<2>,
    targets: WeightedTargets,
    chunk: usize,
}

impl PolicyLogprobs {
    /// The loss to backpropagate: `loss` itself, or its value with the chunked head's gradient.
    fn finish(self, loss: Tensor<1>) -> Result<Tensor<1>> {
        let Some(d) = self.deferred else {
            return Ok(loss);
        };
        let value = loss.clone().without_autodiff();
        let grads = loss.backward();
        let coefficients = d
            .leaf
            .grad(&grads)
            .map(host)
            .ok_or_else(|| AlignError::Input("the DPO loss does not depend on the policy".into()))?;
        let attached = row_logprob_gradient(d.hidden, d.weight, &d.targets, &coefficients, d.chunk)?;
        Ok(attached + value)
    }
}

/// The reference log-probabilities of every example, `micro` pairs per forward pass.
pub fn reference_logprobs(
    model: &Llama,
    examples: &[DpoExample],
    config: &DpoConfig,
    pad_id: u32,
    micro: usize,
) -> Result<Vec<(f32, f32)>> {
    let objective = DpoObjective {
        examples: Vec::new(),
        reference: Reference::Cached(Vec::new()),
        config: *config,
        pad_id,
        order: Order::new(1, 0),
        heldout: None,
        head_chunk_tokens: allam_train::head::DEFAULT_CHUNK_TOKENS,
    };
    let mut out = Vec::with_capacity(examples.len());
    for chunk in examples.chunks(micro.max(1)) {
        let batch = DpoBatch::new(chunk, pad_id)?;
        let (c, r) = objective.logprobs(model, &batch)?;
        let (c, r) = (host(c), host(r));
        out.extend(c.into_iter().zip(r));
    }
    Ok(out)
}

fn host(t: Tensor<1>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("converted to f32")
}

impl Objective for DpoObjective {
    type Batch = Vec<usize>;

    fn next_batch(&mut self, rows: usize) -> allam_train::Result<Vec<usize>> {
        Ok(self.order.take(rows))
    }

    fn units(&self, batch: &Vec<usize>) -> usize {
        batch.len()
    }

    fn tokens(&self, batch: &Vec<usize>) -> usize {
        batch
            .iter()
            .map(|&i| self.examples[i].chosen_ids.len() + self.examples[i].rejected_ids.len())
            .sum()
    }

    fn loss(&self, model: &Llama, batch: &Vec<usize>) -> allam_train::Result<LossOutput> {
        let dpo = self.dpo_batch(batch)?;
        let hidden = model.hidden_states(&dpo.responses.tokens)?;
        self.loss_on(model, hidden, &dpo, batch)
    }

    fn model_input(&self, batch: &Vec<usize>) -> Option<allam_train::Result<TokenBatch>> {
        Some(self.dpo_batch(batch).map(|dpo| dpo.responses.tokens))
    }

    fn loss_from_hidden(
        &self,
        model: &Llama,
        hidden: Tensor<3>,
        batch: &Vec<usize>,
    ) -> allam_train::Result<LossOutput> {
        let dpo = self.dpo_batch(batch)?;
        self.loss_on(model, hidden, &dpo, batch)
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "cursor": self.order.cursor })
    }

    fn restore(&mut self, state: &serde_json::Value) -> allam_train::Result<()> {
        let cursor = state["cursor"].as_u64().ok_or_else(|| state_error("no cursor"))?;
        self.order.seek(cursor);
        Ok(())
    }

    fn evaluate(&self, model: &Llama) -> allam_train::Result<BTreeMap<String, f64>> {
        match &self.heldout {
            Some(heldout) => heldout
                .metrics(model)
                .map_err(|e| allam_train::TrainError::Config(e.to_string())),
            None => Ok(BTreeMap::new()),
        }
    }
}

impl DpoObjective {
    /// The rows of the pairs `batch` names.
    fn dpo_batch(&self, batch: &[usize]) -> allam_train::Result<DpoBatch> {
        let examples: Vec<DpoExample> = batch.iter().map(|&i| self.examples[i].clone()).collect();
        DpoBatch::new(&examples, self.pad_id).map_err(|e| allam_train::TrainError::Config(e.to_string()))
    }

    /// The DPO loss of `batch` from the policy's final hidden states of its rows.
    fn loss_on(
        &self,
        model: &Llama,
        hidden: Tensor<3>,
        dpo: &DpoBatch,
        batch: &[usize],
    ) -> allam_train::Result<LossOutput> {
        let fail = |e: AlignError| allam_train::TrainError::Config(e.to_string());
        let policy = self.policy_logprobs(model, hidden, dpo).map_err(fail)?;
        let (pc, pr) = (policy.chosen.clone(), policy.rejected.clone());
        let device = pc.device().without_autodiff();
        let (rc, rr) = match &self.reference {
            Reference::Cached(values) => {
                let c: Vec<f32> = batch.iter().map(|&i| values[i].0).collect();
                let r: Vec<f32> = batch.iter().map(|&i| values[i].1).collect();
                let n = batch.len();
                (
                    Tensor::<1>::from_data(TensorData::new(c, [n]), &device),
                    Tensor::<1>::from_data(TensorData::new(r, [n]), &device),
                )
            }
            Reference::Model(reference) => self.logprobs(reference, dpo).map_err(fail)?,
        };
        let out = dpo_loss(pc, pr, rc, rr, &self.config).map_err(fail)?;
        let n = batch.len() as f64;
        let metrics = BTreeMap::from([
            (
                "rewards_chosen".to_string(),
                MetricSum::new(out.rewards_chosen, n),
            ),
            (
                "rewards_rejected".to_string(),
                MetricSum::new(out.rewards_rejected, n),
            ),
            ("margin".to_string(), MetricSum::new(out.margins, n)),
            ("accuracy".to_string(), MetricSum::new(out.correct, n)),
        ]);
        Ok(LossOutput {
            loss_sum: policy.finish(out.loss.sum()).map_err(fail)?,
            metrics,
        })
    }
}

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
    let device = allam_model::device::select(&config.train.device)
        .map_err(|e| AlignError::Input(format!("[train] device: {e}")))?;
    let prepared = prepare_model(&config.model, run_dir, &device)?;
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
    allam_train::checkpoint::write_atomically(&run_dir.join("packing.json"), report.as_bytes())?;
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
        "micro_batch_size": config.train.micro_batch_size, "grad_accum": config.train.grad_accum,
    });
    let objective =
        SftObjective::new(rows, config.data.seed)?.with_head_chunk_tokens(config.train.head_chunk_tokens);
    let run = run_stage(
        config,
        prepared,
        objective,
        max_steps,
        stop_at,
        fingerprint,
        run_dir,
        start == Start::Resume,
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
    let limits = config.pair_truncation();
    let examples = encode_pairs(&config.data.path, &template, &tokenizer, &limits, observer)?;
    let pad = pad_id(&tokenizer, &prepared.model);
    let dpo = config.dpo.config();
    let reference = if config.dpo.reference == "memory" {
        Reference::Model(Box::new(frozen(&prepared.model)))
    } else {
        Reference::Cached(cached_reference(
            run_dir,
            &prepared.model,
            &examples,
            &dpo,
            pad,
            config.train.micro_batch_size,
            observer,
        )?)
    };
    let max_steps = config.steps_for(examples.len());
    let fingerprint = serde_json::json!({
        "objective": "dpo", "pairs": examples.len(), "max_length": limits.max_length,
        "micro_batch_size": config.train.micro_batch_size, "grad_accum": config.train.grad_accum,
    });
    let mut objective = DpoObjective::new(examples, reference, dpo, pad, config.data.seed)?
        .with_head_chunk_tokens(config.train.head_chunk_tokens);
    if let Some(path) = &config.data.eval_path {
        let heldout = encode_pairs(path, &template, &tokenizer, &limits, observer)?;
        let heldout = HeldOutPairs::new(heldout, &prepared.model, dpo, pad, config.train.micro_batch_size)?;
        observer.message(&format!(
            "{} held-out pairs from {}: reward accuracy and margin at every evaluation",
            heldout.len(),
            path.display()
        ));
        objective = objective.with_heldout(heldout);
    }
    let has_heldout = objective.heldout.is_some();
    let summary = run_stage(
        config,
        prepared,
        objective,
        max_steps,
        stop_at,
        fingerprint,
        run_dir,
        start == Start::Resume,
        observer,
    )?;
    if has_heldout {
        crate::heldout::report_last(run_dir, observer);
    }
    Ok(summary)
}

/// Reads and tokenizes the pairs of `path`, cut to `limits` as TRL does, and says how many were
/// cut.
fn encode_pairs(
    path: &Path,
    template: &ChatTemplate,
    tokenizer: &TextTokenizer,
    limits: &PairTruncation,
    observer: &dyn RunObserver,
) -> Result<Vec<DpoExample>> {
    let mut examples = load_preferences(path)?
        .iter()
        .map(|p| DpoExample::encode(p, template, tokenizer))
        .collect::<Result<Vec<_>>>()?;
    let cut = truncate_pairs(&mut examples, limits);
    if cut > 0 {
        observer.message(&format!(
            "{}: {cut} of {} pair(s) longer than {} tokens cut (prompt to {} tokens, {}, then responses)",
            path.display(),
            examples.len(),
            limits.max_length,
            limits.max_prompt_length,
            match limits.mode {
                TruncationMode::KeepEnd => "keeping its end",
                TruncationMode::KeepStart => "keeping its start",
            }
        ));
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

/// FNV-1a over the pairs' tokens and masks, the loss kind and a checksum of every weight.
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
    config: &DpoConfig,
    pad: u32,
    micro: usize,
    observer: &dyn RunObserver,
) -> Result<Vec<(f32, f32)>> {
    let path = run_dir.join("reference_logprobs.json");
    let key = reference_key(model, examples, config);
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
    let values = reference_logprobs(&frozen(model), examples, config, pad, micro)?;
    let cache = ReferenceCache { key, values };
    let json = serde_json::to_string(&cache).expect("numbers serialise");
    allam_train::checkpoint::write_atomically(&path, json.as_bytes())?;
    Ok(cache.values)
}

#[allow(clippy::too_many_arguments)]
fn run_stage<O: Objective>(
    config: &AlignConfig,
    prepared: PreparedModel,
    objective: O,
    max_steps: u64,
    stop_at: Option<u64>,
    fingerprint: serde_json::Value,
    run_dir: &Path,
    resume: bool,
    observer: &dyn RunObserver,
) -> Result<RunSummary> {
    let mut prepared = prepared;
    let device = prepared.model.device();
    config.train.precision.apply(&mut prepared.model, &device)?;
    let fingerprint = {
        let mut f = fingerprint;
        f["precision"] = serde_json::json!(config.train.precision);
        f
    };
    let optimizer = starting_optimizer(&config.model, &config.optimizer, &prepared.model)?;
    let mut trainer = Trainer {
        model: trainable(prepared.model),
        optimizer,
        objective,
        options: StepOptions {
            micro_batch_size: config.train.micro_batch_size,
            grad_accum: config.train.grad_accum,
            replicas: 1,
            schedule: config.schedule.clone(),
            max_steps,
            embedding_warmup: None,
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
        last_step: stop_at.unwrap_or(max_steps).min(max_steps),
        fingerprint,
    };
    Ok(run_loop(&mut trainer, &session, resume, observer)?)
}
