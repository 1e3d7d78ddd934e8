//! The output head and cross-entropy in chunks of tokens: the `[tokens, vocab]` logits, their
//! softmax and their gradient never exist at once.
//!
//! A training step's largest tensors are the logits of every position and their gradient (a
//! 4,096-token row with a 64K vocabulary: 1 GB each in f32). Here the head runs on `chunk` tokens
//! at a time, outside autodiff, and computes each chunk's values and gradients on the spot:
//!
//! ```text
//! z = h·W            p = softmax(z)            nll_t = logsumexp(z_t) − z_t[y_t]
//! ∂L/∂z_t = c_t·(p_t − onehot(y_t))            ∂L/∂h = (∂L/∂z)·Wᵀ       ∂L/∂W = hᵀ·(∂L/∂z)
//! ```
//!
//! where `c_t` is the loss's weight of token `t` (0 where it is ignored). The gradients enter the
//! autodiff graph through a surrogate `Σ h ⊙ ∂L/∂h + Σ W ⊙ ∂L/∂W`, whose gradient with respect to
//! `h` and `W` is exactly those constants; the loss value itself comes from the chunked pass. The
//! matrix products are the same three as autodiff's (forward, and the two of backward), so the
//! cost is the same and the memory is one chunk's logits.
use allam_model::precision::cast_to;
use burn::tensor::activation::log_softmax;
use burn::tensor::{DType, FloatDType, IndexingUpdateOp, Int, Tensor, TensorData};

use crate::error::{Result, TrainError};

/// Tokens per chunk of the head when none is configured: a chunk's f32 logits at a 64K
/// vocabulary are 256 MB at this size, against 1 GB per 4,096-token row in one piece.
pub const DEFAULT_CHUNK_TOKENS: usize = 1024;

/// Targets of every position `[rows × len]` with the weight of each in the loss (0: ignored).
#[derive(Clone, Debug, PartialEq)]
pub struct WeightedTargets {
    /// Rows.
    pub rows: usize,
    /// Positions per row.
    pub len: usize,
    /// The target id of every position (any id where the weight is 0).
    pub targets: Vec<u32>,
    /// The weight of every position's log-likelihood.
    pub weights: Vec<f32>,
}

impl WeightedTargets {
    /// Checks the sizes against `rows × len` and the ids against `vocab`.
    fn validate(&self, vocab: usize) -> Result<()> {
        let n = self.rows * self.len;
        if self.targets.len() != n || self.weights.len() != n {
            return Err(TrainError::Config(format!(
                "{} targets and {} weights for {}×{} positions",
                self.targets.len(),
                self.weights.len(),
                self.rows,
                self.len
            )));
        }
        if let Some((&bad, _)) = self
            .targets
            .iter()
            .zip(&self.weights)
            .find(|&(&t, &w)| w != 0.0 && t as usize >= vocab)
        {
            return Err(TrainError::Config(format!(
                "target {bad} is outside the vocabulary of {vocab}"
            )));
        }
        Ok(())
    }
}

/// `Σ_t weight_t · (−log p(target_t))`, computed by the chunked head.
pub struct ChunkedNll {
    /// The total `[1]`; with autodiff its gradient with respect to the hidden states and the
    /// head is the chunked pass's.
    pub sum: Tensor<1>,
    /// Each row's sum `[rows]`, without autodiff (for metrics).
    pub per_row: Tensor<1>,
}

/// Negative log-likelihoods of `targets` under the head `weight` (`[hidden, vocab]`) applied to
/// `hidden` (`[rows, len, hidden]`), `chunk` tokens at a time. With autodiff, `sum` carries the
/// gradient of the weighted total — what a loss that is a weighted sum of token log-likelihoods
/// needs (language modelling, SFT); a loss non-linear in them (DPO) must first find each token's
/// coefficient and pass it as the weight.
pub fn chunked_nll(
    hidden: Tensor<3>,
    weight: Tensor<2>,
    targets: &WeightedTargets,
    chunk: usize,
) -> Result<ChunkedNll> {
    let [rows, len, _] = hidden.dims();
    let vocab = weight.dims()[1];
    if (rows, len) != (targets.rows, targets.len) {
        return Err(TrainError::Config(format!(
            "targets for {}×{} positions, hidden states for {rows}×{len}",
            targets.rows, targets.len
        )));
    }
    targets.validate(vocab)?;
    let device = hidden.device().without_autodiff();
    let weights = Tensor::<2>::from_data(TensorData::new(targets.weights.clone(), [rows * len, 1]), &device);
    Ok(weighted_nll(hidden, weight, &targets.targets, weights, chunk))
}

/// [`chunked_nll`] with the weights already on the device (`[tokens, 1]`, without autodiff).
fn weighted_nll(
    hidden: Tensor<3>,
    weight: Tensor<2>,
    targets: &[u32],
    weights: Tensor<2>,
    chunk: usize,
) -> ChunkedNll {
    let [rows, len, hidden_size] = hidden.dims();
    let tracked = hidden.is_tracked() || weight.is_tracked();
    let h = hidden.clone().reshape([rows * len, hidden_size]);
    // In mixed precision the hidden states come in the half type (`Llama::head_input`): the
    // products run in it, as autocast runs the head's `linear`, and the softmax in f32.
    let pass = head_pass(
        h.clone().without_autodiff(),
        weight.clone().without_autodiff(),
        targets,
        weights,
        chunk.max(1),
        tracked,
    );
    let per_row = pass.nll.reshape([rows, len]).sum_dim(1).reshape([rows]);
    let sum = per_row.clone().sum();
    let Some((grad_h, grad_w)) = pass.grads else {
        return ChunkedNll { sum, per_row };
    };
    // Zero in value, the chunked gradients in backward.
    let surrogate = (h * grad_h).sum().cast(FloatDType::F32) + (weight * grad_w).sum();
    let zero = surrogate.clone() - surrogate.detach();
    ChunkedNll {
        sum: zero + sum,
        per_row,
    }
}

/// What one pass over the chunks produced: per-token weighted NLL `[tokens]` (no autodiff) and,
/// if asked, `∂/∂h` `[tokens, hidden]` (in `h`'s type) and `∂/∂W` `[hidden, vocab]` (f32) of
/// their sum.
struct HeadPass {
    nll: Tensor<1>,
    grads: Option<(Tensor<2>, Tensor<2>)>,
}

fn head_pass(
    h: Tensor<2>,
    weight: Tensor<2>,
    targets: &[u32],
    weights: Tensor<2>,
    chunk: usize,
    with_grads: bool,
) -> HeadPass {
    let [tokens, hidden_size] = h.dims();
    let vocab = weight.dims()[1];
    let device = h.device();
    // The products run in h's type with the weight cast to it; the logits, their softmax and
    // ∂L/∂z in f32, ∂L/∂z rounded to h's type for the backward products (autocast's order), and
    // each chunk's part of ∂L/∂W summed in f32.
    let dtype = h.dtype();
    let weight = cast_to(weight, dtype);
    let mut nll = Vec::new();
    let mut grad_h = Vec::new();
    let mut grad_w: Option<Tensor<2>> = None;
    for start in (0..tokens).step_by(chunk) {
        let end = (start + chunk).min(tokens);
        let n = end - start;
        let h_chunk = h.clone().slice([start..end, 0..hidden_size]);
        let ids: Vec<i64> = targets[start..end].iter().map(|&t| i64::from(t)).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [n, 1]), &device);
        let coefficients = weights.clone().slice([start..end, 0..1]);
        let logits = cast_to(h_chunk.clone().matmul(weight.clone()), DType::F32);
        let log_probs = log_softmax(logits, 1);
        let picked = log_probs.clone().gather(1, ids.clone());
        nll.push((picked.neg() * coefficients.clone()).reshape([n]));
        if with_grads {
            // ∂(Σ c·(−log p_y))/∂z = c·softmax − c·onehot(y).
            let grad_z = (log_probs.exp() * coefficients.clone()).scatter(
                1,
                ids,
                coefficients.neg(),
                IndexingUpdateOp::Add,
            );
            let grad_z = cast_to(grad_z, dtype);
            grad_h.push(grad_z.clone().matmul(weight.clone().transpose()));
            let part = cast_to(h_chunk.transpose().matmul(grad_z), DType::F32);
            grad_w = Some(match grad_w {
                Some(total) => total + part,
                None => part,
            });
        }
    }
    HeadPass {
        nll: Tensor::cat(nll, 0),
        grads: with_grads.then(|| {
            (
                Tensor::cat(grad_h, 0),
                grad_w.unwrap_or_else(|| Tensor::zeros([hidden_size, vocab], &device)),
            )
        }),
    }
}

/// Each row's `Σ_t weight_t · log p(target_t)` `[rows]`, chunked, without autodiff (values only:
/// reference models, evaluation, and the first pass of [`row_logprob_gradient`]).
pub fn row_logprobs(
    hidden: Tensor<3>,
    weight: Tensor<2>,
    targets: &WeightedTargets,
    chunk: usize,
) -> Result<Tensor<1>> {
    let nll = chunked_nll(
        hidden.without_autodiff(),
        weight.without_autodiff(),
        targets,
        chunk,
    )?;
    Ok(nll.per_row.neg())
}

/// A tensor worth 0 whose gradient is that of `Σ_r coefficients_r · row_logprobs_r`: how a loss
/// that is non-linear in the rows' log-probabilities (DPO) reaches the model without the full
/// logits. Find the coefficients (`∂loss/∂row_logprobs`, `[rows]` on the device: nothing is read
/// back) on the rows' values first, with the loss on a leaf tensor, then add this to the loss's
/// value.
pub fn row_logprob_gradient(
    hidden: Tensor<3>,
    weight: Tensor<2>,
    targets: &WeightedTargets,
    coefficients: Tensor<1>,
    chunk: usize,
) -> Result<Tensor<1>> {
    let [rows, len, _] = hidden.dims();
    if coefficients.dims() != [targets.rows] || (rows, len) != (targets.rows, targets.len) {
        return Err(TrainError::Config(format!(
            "{:?} coefficients and {}×{} targets for hidden states of {rows}×{len}",
            coefficients.dims(),
            targets.rows,
            targets.len
        )));
    }
    targets.validate(weight.dims()[1])?;
    // Σ_r c_r Σ_t w_t log p_t = Σ_t (−c_r w_t) · (−log p_t): a chunked NLL with those weights.
    let device = coefficients.device();
    let mask = Tensor::<2>::from_data(TensorData::new(targets.weights.clone(), [rows, len]), &device);
    let weights = (mask * coefficients.reshape([rows, 1]))
        .neg()
        .reshape([rows * len, 1]);
    let sum = weighted_nll(hidden, weight, &targets.targets, weights, chunk).sum;
    Ok(sum.clone() - sum.detach())
}
