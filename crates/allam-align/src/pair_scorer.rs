//! [`PairScorer`]: the log-probabilities of a preference pair's two responses, the one quantity DPO
//! training, its reference and held-out pair evaluation all need — computed the same way for each,
//! through the chunked head when `[train] head_chunk_tokens` asks for it.
use allam_model::Llama;
use allam_train::head::{WeightedTargets, row_logprob_gradient, row_logprobs};
use burn::tensor::{Tensor, TensorData};

use crate::dpo::{DpoBatch, DpoConfig, DpoExample, DpoLossKind, response_logprobs, response_logprobs_of};
use crate::error::{AlignError, Result};

/// Scores `(chosen, rejected)` responses of preference pairs under a model.
#[derive(Clone, Copy, Debug)]
pub struct PairScorer {
    config: DpoConfig,
    pad_id: u32,
    head_chunk_tokens: usize,
}

impl PairScorer {
    /// Pairs padded with `pad_id`, the head run in chunks of `head_chunk_tokens` tokens (0: all
    /// logits at once); IPO's losses get length-normalised log-probs (as TRL).
    pub fn new(config: DpoConfig, pad_id: u32, head_chunk_tokens: usize) -> Self {
        Self {
            config,
            pad_id,
            head_chunk_tokens,
        }
    }

    /// The DPO settings the scores are for.
    pub fn config(&self) -> &DpoConfig {
        &self.config
    }

    /// The padding id of the pairs' rows.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Log-probs `(chosen, rejected)` of a batch: with the chunked head, values only (no
    /// gradient: the reference, evaluation); with the composed head, differentiable.
    pub fn logprobs(&self, model: &Llama, batch: &DpoBatch) -> Result<(Tensor<1>, Tensor<1>)> {
        let all = if self.head_chunk_tokens == 0 {
            response_logprobs(model, &batch.responses)?
        } else {
            row_logprobs(
                model.head_input(model.hidden_states(&batch.responses.tokens)?),
                model.output_weight(),
                &batch.responses.weighted_targets(),
                self.head_chunk_tokens,
            )?
        };
        Ok(self.split(all, batch))
    }

    /// The values of [`PairScorer::logprobs`] for every example, `micro` pairs per forward pass.
    pub fn logprobs_of_all(
        &self,
        model: &Llama,
        examples: &[DpoExample],
        micro: usize,
    ) -> Result<Vec<(f32, f32)>> {
        let mut out = Vec::with_capacity(examples.len());
        for chunk in examples.chunks(micro.max(1)) {
            let batch = DpoBatch::new(chunk, self.pad_id)?;
            let (c, r) = self.logprobs(model, &batch)?;
            out.extend(host(c).into_iter().zip(host(r)));
        }
        Ok(out)
    }

    /// The policy's log-probs with gradients, and what turns the loss into the gradient: with the
    /// composed head the log-probs themselves carry it (nothing to add); with the chunked head
    /// they are values on a leaf, and `finish(loss)` backpropagates the loss to the leaf and
    /// returns the loss's value with the model's gradient attached ([`row_logprob_gradient`]).
    pub(crate) fn policy_logprobs(
        &self,
        model: &Llama,
        hidden: Tensor<3>,
        batch: &DpoBatch,
    ) -> Result<PolicyLogprobs> {
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
        let hidden = model.head_input(hidden);
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
}

/// Policy log-probs for the loss, see [`PairScorer::policy_logprobs`].
pub(crate) struct PolicyLogprobs {
    pub(crate) chosen: Tensor<1>,
    pub(crate) rejected: Tensor<1>,
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
    pub(crate) fn finish(self, loss: Tensor<1>) -> Result<Tensor<1>> {
        let Some(d) = self.deferred else {
            return Ok(loss);
        };
        let value = loss.clone().without_autodiff();
        let grads = loss.backward();
        let coefficients = d
            .leaf
            .grad(&grads)
            .ok_or_else(|| AlignError::Input("the DPO loss does not depend on the policy".into()))?;
        let attached = row_logprob_gradient(d.hidden, d.weight, &d.targets, coefficients, d.chunk)?;
        Ok(attached + value)
    }
}

fn host(t: Tensor<1>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("converted to f32")
}
