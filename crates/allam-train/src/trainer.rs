//! One optimizer step: micro-batches (× replicas), backward, gradient reduction, global clipping,
//! AdamW. The outer loop (logging, evaluation, checkpoints) is in [`crate::session`].
use std::collections::BTreeMap;
use std::time::Instant;

use allam_model::Llama;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::objective::{MetricSum, Objective};
use crate::optim::{AdamW, PreparedGrads, TrainableScope};
use crate::params::GradMap;
use crate::schedule::LrSchedule;

/// The embeddings-only warm-up after a vocabulary expansion: a phase with its own learning
/// rate, after which the run's schedule — its warm-up included — starts from its first step, so
/// the body, unfrozen with empty AdamW moments, is warmed up as the schedule says.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingWarmup {
    /// Steps during which only the new rows train.
    pub steps: u64,
    /// The vocabulary size before the expansion (first new row).
    pub first_new_row: usize,
    /// The phase's learning rate (constant after its own warm-up).
    pub lr: f64,
    /// Linear warm-up steps of the phase's rate.
    pub lr_warmup_steps: u64,
}

impl EmbeddingWarmup {
    /// The learning rate of step `step` (0-based) of the phase.
    pub fn lr_at(&self, step: u64) -> f64 {
        LrSchedule::constant(self.lr, self.lr_warmup_steps).lr_at(step, self.steps)
    }
}

/// How steps are made.
#[derive(Clone, Debug, PartialEq)]
pub struct StepOptions {
    /// Rows per micro-batch.
    pub micro_batch_size: usize,
    /// Micro-batches accumulated per replica and step.
    pub grad_accum: usize,
    /// Data-parallel replicas; each takes `grad_accum` micro-batches and the gradients are summed
    /// (every micro-batch's loss is already divided by the units of the whole step).
    pub replicas: usize,
    /// Learning rate by step.
    pub schedule: LrSchedule,
    /// The run's length (for the cosine schedule).
    pub max_steps: u64,
    /// Only the new rows train for the first steps.
    pub embedding_warmup: Option<EmbeddingWarmup>,
    /// Recompute each decoder layer's activations in the backward pass instead of keeping them
    /// ([`crate::recompute`]).
    pub activation_checkpointing: ActivationCheckpointing,
}

impl StepOptions {
    /// The learning rate of step `step` (0-based): the embeddings-only phase's own rate while it
    /// lasts, then the run's schedule counted from the step where every weight trains (its
    /// warm-up then warms up the newly unfrozen body; a cosine spans its `total_steps`, counted
    /// from there, or the steps left).
    pub fn learning_rate(&self, step: u64) -> f64 {
        match self.embedding_warmup {
            Some(w) if step < w.steps => w.lr_at(step),
            Some(w) => self
                .schedule
                .lr_at(step - w.steps, self.max_steps.saturating_sub(w.steps)),
            None => self.schedule.lr_at(step, self.max_steps),
        }
    }
}

/// What the backward pass keeps of the forward pass (`[train] activation_checkpointing`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivationCheckpointing {
    /// Every activation autodiff needs.
    #[default]
    None,
    /// Only each decoder layer's input; the layer runs again in the backward pass.
    Layers,
}

/// What one step did (a row of `metrics.jsonl`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// 1-based number of the step just made.
    pub step: u64,
    /// Mean loss over the step's units.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Tokens read per second of this step.
    pub tokens_per_s: f64,
    /// Tokens read so far.
    pub tokens: u64,
    /// `"new_rows"` during the embeddings-only warm-up, else `"all"`.
    pub trained: String,
    /// Other metrics (per-source loss, DPO rewards, …).
    #[serde(flatten)]
    pub metrics: BTreeMap<String, f64>,
}

/// The model, its optimizer and its objective, and where they are.
pub struct Trainer<O: Objective> {
    /// The model being trained (autodiff enabled).
    pub model: Llama,
    /// The optimizer and its state.
    pub optimizer: AdamW,
    /// Where data and losses come from.
    pub objective: O,
    /// How steps are made.
    pub options: StepOptions,
    /// Steps made.
    pub step: u64,
    /// Tokens read.
    pub tokens: u64,
}

impl<O: Objective> Trainer<O> {
    /// Which parameters the next step trains.
    pub fn scope(&self) -> TrainableScope {
        match self.options.embedding_warmup {
            Some(w) if self.step < w.steps => TrainableScope::NewRows {
                first_new_row: w.first_new_row,
            },
            _ => TrainableScope::All,
        }
    }

    /// The learning rate of the next step ([`StepOptions::learning_rate`]).
    pub fn learning_rate(&self) -> f64 {
        self.options.learning_rate(self.step)
    }

    /// Makes one optimizer step. On a non-finite loss or gradient the model and optimizer are
    /// left as they were and [`TrainError::Diverged`] is returned.
    pub fn train_step(&mut self) -> Result<StepRecord> {
        let started = Instant::now();
        let o = &self.options;
        let per_replica = o.grad_accum.max(1);
        let replicas = o.replicas.max(1);
        let mut batches = Vec::with_capacity(per_replica * replicas);
        for _ in 0..per_replica * replicas {
            batches.push(self.objective.next_batch(o.micro_batch_size)?);
        }
        let units: usize = batches.iter().map(|b| self.objective.units(b)).sum();
        if units == 0 {
            return Err(TrainError::Config(
                "a step's micro-batches have nothing to predict (every label is ignored)".into(),
            ));
        }
        let tokens: usize = batches.iter().map(|b| self.objective.tokens(b)).sum();

        // Replicas: each runs its own micro-batches on its own copy of the model and produces
        // its own gradients; the reduction sums them in replica order (deterministic).
        let mut total = GradMap::default();
        let mut loss_total: Option<Tensor<1>> = None;
        let mut metrics: BTreeMap<String, MetricSum> = BTreeMap::new();
        for group in batches.chunks(per_replica) {
            let replica = self.model.clone();
            let (grads, loss, m) = replica_gradients(
                &self.objective,
                &replica,
                group,
                units,
                o.activation_checkpointing,
            )?;
            total.accumulate(grads);
            loss_total = Some(add(loss_total, loss));
            merge_metrics(&mut metrics, m);
        }
        let lr = self.learning_rate();
        let scope = self.scope();
        let prepared = PreparedGrads::new(&self.model, total, scope);
        // The step's only read-back, before the update: its loss (the mean over its units), the
        // squared gradient norm and the metric sums, in one transfer.
        let metrics: Vec<(String, MetricSum)> = metrics.into_iter().collect();
        let mut values = vec![
            loss_total
                .expect("at least one micro-batch")
                .without_autodiff()
                .reshape([1]),
            prepared.norm_sq.clone(),
        ];
        values.extend(metrics.iter().map(|(_, m)| m.sum.clone().reshape([1])));
        let read = Tensor::cat(values, 0)
            .into_data()
            .convert::<f64>()
            .try_into_vec::<f64>()
            .expect("converted to f64");
        let (loss, grad_norm) = (read[0], read[1].sqrt());
        if !loss.is_finite() {
            return Err(TrainError::Diverged(format!(
                "the loss is {loss} at step {}",
                self.step + 1
            )));
        }
        let (model, stats) = self
            .optimizer
            .apply(self.model.clone(), prepared, grad_norm, lr, scope)?;
        self.model = model;
        self.step += 1;
        self.tokens += tokens as u64;
        let seconds = started.elapsed().as_secs_f64();
        Ok(StepRecord {
            step: self.step,
            loss,
            lr,
            grad_norm: stats.grad_norm,
            tokens_per_s: tokens as f64 / seconds.max(1e-9),
            tokens: self.tokens,
            trained: match scope {
                TrainableScope::All => "all".into(),
                TrainableScope::NewRows { .. } => "new_rows".into(),
            },
            metrics: metrics
                .iter()
                .zip(&read[2..])
                .filter(|((_, m), _)| m.count > 0.0)
                .map(|((k, m), sum)| (k.clone(), sum / m.count))
                .collect(),
        })
    }
}

/// The summed gradients, summed loss and metrics of one replica's micro-batches; every loss is
/// divided by `units`, the units of the whole step.
fn replica_gradients<O: Objective>(
    objective: &O,
    model: &Llama,
    batches: &[O::Batch],
    units: usize,
    checkpointing: ActivationCheckpointing,
) -> Result<(GradMap, Tensor<1>, BTreeMap<String, MetricSum>)> {
    let mut grads = GradMap::default();
    let mut loss: Option<Tensor<1>> = None;
    let mut metrics: BTreeMap<String, MetricSum> = BTreeMap::new();
    for batch in batches {
        if checkpointing == ActivationCheckpointing::Layers {
            let (g, l, m) = crate::recompute::checkpointed_gradients(objective, model, batch, units)?;
            loss = Some(add(loss, l));
            grads.accumulate(g);
            merge_metrics(&mut metrics, m);
            continue;
        }
        let out = objective.loss(model, batch)?;
        let scaled = out.loss_sum.div_scalar(units as f64);
        // Kept on the device, without its graph, until the step reads the total once.
        loss = Some(add(loss, scaled.clone().without_autodiff()));
        grads.accumulate(GradMap::collect(model, scaled.backward()));
        merge_metrics(&mut metrics, out.metrics);
    }
    Ok((grads, loss.expect("at least one micro-batch"), metrics))
}

fn add(total: Option<Tensor<1>>, value: Tensor<1>) -> Tensor<1> {
    match total {
        Some(t) => t + value,
        None => value,
    }
}

fn merge_metrics(into: &mut BTreeMap<String, MetricSum>, from: BTreeMap<String, MetricSum>) {
    for (k, v) in from {
        match into.get_mut(&k) {
            Some(mine) => mine.add(v),
            None => {
                into.insert(k, v);
            }
        }
    }
}
