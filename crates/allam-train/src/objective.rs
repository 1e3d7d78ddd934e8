//! What a training step minimises: the [`Objective`] trait and its language-modelling
//! implementation over the data mixture. SFT and DPO (crate `allam-align`) are other objectives
//! driven by the same loop.
use std::collections::BTreeMap;

use allam_data::{BlendState, IGNORE_INDEX, Mixture, MixtureStream, PackedBatch};
use allam_model::{Llama, TokenBatch};
use burn::tensor::{Int, Tensor, TensorData};

use crate::error::{Result, TrainError};
use crate::loss::language_model_loss;

/// A metric summed over a step's micro-batches, reported as `sum / count`.
///
/// The sum stays on the device until the trainer reads the step's loss, gradient norm and
/// metrics back together, once per step.
#[derive(Clone, Debug)]
pub struct MetricSum {
    /// Sum of the values, `[1]`, outside the autodiff graph.
    pub sum: Tensor<1>,
    /// What the sum is averaged over.
    pub count: f64,
}

impl MetricSum {
    /// `sum` (any tensor whose elements add up to the metric's sum) over `count`.
    pub fn new(sum: Tensor<1>, count: f64) -> Self {
        Self {
            sum: sum.without_autodiff().sum(),
            count,
        }
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: MetricSum) {
        self.sum = self.sum.clone() + other.sum;
        self.count += other.count;
    }
}

/// The loss of one micro-batch.
pub struct LossOutput {
    /// The loss summed over the micro-batch's units (differentiable). The trainer divides it by
    /// the units of the whole step.
    pub loss_sum: Tensor<1>,
    /// Extra metrics (e.g. `loss/<source>`), merged over the step.
    pub metrics: BTreeMap<String, MetricSum>,
}

/// A training objective: where micro-batches come from and what loss they give.
pub trait Objective {
    /// A micro-batch, on the host.
    type Batch: Send;

    /// The next micro-batch of `rows` rows.
    fn next_batch(&mut self, rows: usize) -> Result<Self::Batch>;

    /// What the loss is averaged over (target tokens; pairs for DPO).
    fn units(&self, batch: &Self::Batch) -> usize;

    /// Tokens the model reads for this micro-batch (for tokens/s).
    fn tokens(&self, batch: &Self::Batch) -> usize;

    /// The loss summed over the batch's units: by default [`Objective::loss_from_hidden`] of the
    /// model's hidden states of [`Objective::model_input`]; objectives that provide neither
    /// implement this instead.
    fn loss(&self, model: &Llama, batch: &Self::Batch) -> Result<LossOutput> {
        let input = self.model_input(batch).ok_or_else(|| {
            TrainError::Config("this objective gives neither its loss nor its model input".into())
        })??;
        self.loss_from_hidden(model, model.hidden_states(&input)?, batch)
    }

    /// The tokens the model reads for `batch`, for objectives whose loss is a function of the
    /// final hidden states ([`Objective::loss_from_hidden`]): those can train with activation
    /// checkpointing ([`crate::recompute`]). `None` (the default): they cannot.
    fn model_input(&self, _batch: &Self::Batch) -> Option<Result<TokenBatch>> {
        None
    }

    /// The loss of `batch` from the final hidden states (after the final norm) of
    /// [`Objective::model_input`]; the same as [`Objective::loss`] when `hidden` is
    /// `model.hidden_states(input)`.
    fn loss_from_hidden(
        &self,
        _model: &Llama,
        _hidden: Tensor<3>,
        _batch: &Self::Batch,
    ) -> Result<LossOutput> {
        Err(TrainError::Config(
            "this objective cannot train with activation checkpointing".into(),
        ))
    }

    /// The position in the data, saved with checkpoints.
    fn state(&self) -> serde_json::Value;

    /// Goes back to a saved position.
    fn restore(&mut self, state: &serde_json::Value) -> Result<()>;

    /// Held-out metrics of the objective's own (e.g. DPO's reward accuracy on held-out pairs),
    /// computed at every evaluation of the run; none by default.
    fn evaluate(&self, _model: &Llama) -> Result<BTreeMap<String, f64>> {
        Ok(BTreeMap::new())
    }
}

/// Next-token prediction over the packed, weighted data mixture.
pub struct LanguageModeling {
    mixture: Mixture,
    stream: MixtureStream,
    head_chunk_tokens: usize,
}

impl LanguageModeling {
    /// Reads the mixture from its start.
    pub fn new(mixture: Mixture) -> Self {
        let stream = mixture.stream();
        Self {
            mixture,
            stream,
            head_chunk_tokens: crate::head::DEFAULT_CHUNK_TOKENS,
        }
    }

    /// Runs the output head in chunks of `tokens` (0: all logits at once; see
    /// [`crate::loss::language_model_loss`]).
    pub fn with_head_chunk_tokens(mut self, tokens: usize) -> Self {
        self.head_chunk_tokens = tokens;
        self
    }

    /// The mixture.
    pub fn mixture(&self) -> &Mixture {
        &self.mixture
    }

    /// Changes the source weights from here on (see [`MixtureStream::reweight`]).
    pub fn reweight(&mut self, weights: BTreeMap<String, f64>) -> Result<()> {
        Ok(self.stream.reweight(weights)?)
    }
}

/// The model input of a packed batch.
pub fn packed_input(batch: &PackedBatch) -> Result<TokenBatch> {
    Ok(TokenBatch::packed(
        batch.batch,
        batch.seq_len,
        batch.input_ids.clone(),
        batch.document_ids.clone(),
    )?)
}

impl Objective for LanguageModeling {
    type Batch = PackedBatch;

    fn next_batch(&mut self, rows: usize) -> Result<PackedBatch> {
        Ok(self.stream.next_batch(rows))
    }

    fn units(&self, batch: &PackedBatch) -> usize {
        batch.labels.iter().filter(|&&l| l != IGNORE_INDEX).count()
    }

    fn tokens(&self, batch: &PackedBatch) -> usize {
        batch.input_ids.len()
    }

    fn model_input(&self, batch: &PackedBatch) -> Option<Result<TokenBatch>> {
        Some(packed_input(batch))
    }

    fn loss_from_hidden(&self, model: &Llama, hidden: Tensor<3>, batch: &PackedBatch) -> Result<LossOutput> {
        let loss = language_model_loss(model, hidden, &batch.labels, self.head_chunk_tokens)?;
        // Per-source sums of the rows' losses, gathered on the device (no read-back here).
        let mut rows_of: BTreeMap<&str, (Vec<i64>, f64)> = BTreeMap::new();
        for (row, source) in batch.sources.iter().enumerate() {
            let labels = &batch.labels[row * batch.seq_len..(row + 1) * batch.seq_len];
            let entry = rows_of.entry(source).or_default();
            entry.0.push(row as i64);
            entry.1 += labels.iter().filter(|&&l| l != IGNORE_INDEX).count() as f64;
        }
        let per_row = loss.per_row.without_autodiff();
        let device = per_row.device();
        let metrics = rows_of
            .into_iter()
            .map(|(source, (rows, count))| {
                let n = rows.len();
                let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [n]), &device);
                let sum = per_row.clone().select(0, rows);
                (format!("loss/{source}"), MetricSum::new(sum, count))
            })
            .collect();
        Ok(LossOutput {
            loss_sum: loss.sum,
            metrics,
        })
    }

    fn state(&self) -> serde_json::Value {
        serde_json::to_value(self.stream.state()).expect("the blend state serialises")
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<()> {
        let state: BlendState = serde_json::from_value(state.clone())
            .map_err(|e| TrainError::Config(format!("saved data state: {e}")))?;
        self.stream = self.mixture.resume(state)?;
        Ok(())
    }
}
