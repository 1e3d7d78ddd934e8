//! What a training step minimises: the [`Objective`] trait and its language-modelling
//! implementation over the data mixture. SFT and DPO (crate `allam-align`) are other objectives
//! driven by the same loop.
use std::collections::BTreeMap;

use allam_data::{BlendState, IGNORE_INDEX, Mixture, MixtureStream, PackedBatch};
use allam_model::{Llama, TokenBatch};
use burn::tensor::Tensor;

use crate::error::{Result, TrainError};
use crate::loss::language_model_loss;

/// A metric summed over a step's micro-batches, reported as `sum / count`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MetricSum {
    /// Sum of the values.
    pub sum: f64,
    /// What the sum is averaged over.
    pub count: f64,
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

    /// The loss summed over the batch's units.
    fn loss(&self, model: &Llama, batch: &Self::Batch) -> Result<LossOutput>;

    /// The position in the data, saved with checkpoints.
    fn state(&self) -> serde_json::Value;

    /// Goes back to a saved position.
    fn restore(&mut self, state: &serde_json::Value) -> Result<()>;
}

/// Next-token prediction over the packed, weighted data mixture.
pub struct LanguageModeling {
    mixture: Mixture,
    stream: MixtureStream,
}

impl LanguageModeling {
    /// Reads the mixture from its start.
    pub fn new(mixture: Mixture) -> Self {
        let stream = mixture.stream();
        Self { mixture, stream }
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

    fn loss(&self, model: &Llama, batch: &PackedBatch) -> Result<LossOutput> {
        let loss = language_model_loss(model, &packed_input(batch)?, &batch.labels)?;
        let per_row = loss
            .per_row
            .into_data()
            .convert::<f64>()
            .try_into_vec::<f64>()
            .expect("converted to f64");
        let mut metrics: BTreeMap<String, MetricSum> = BTreeMap::new();
        for (row, source) in batch.sources.iter().enumerate() {
            let labels = &batch.labels[row * batch.seq_len..(row + 1) * batch.seq_len];
            let m = metrics.entry(format!("loss/{source}")).or_default();
            m.sum += per_row[row];
            m.count += labels.iter().filter(|&&l| l != IGNORE_INDEX).count() as f64;
        }
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
