//! Masked next-token cross-entropy over packed rows.
//!
//! `labels[r, i]` is the target of position `i` (already shifted: the next token of the same
//! document), or −100 where nothing is predicted. The loss of a step is the sum of the token
//! losses over every micro-batch divided by the number of target tokens in the whole step, so that
//! accumulation and replicas give the same gradient as one big batch.
use allam_data::IGNORE_INDEX;
use allam_model::Llama;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

use crate::error::{Result, TrainError};
use crate::head::{WeightedTargets, chunked_nll};

/// Per-token negative log-likelihoods `[rows, len]` of `labels` under `logits` `[rows, len,
/// vocab]`, zero where the label is −100.
pub fn token_nll(logits: Tensor<3>, labels: &[i32]) -> Result<Tensor<2>> {
    let [rows, len, vocab] = logits.dims();
    if labels.len() != rows * len {
        return Err(TrainError::Config(format!(
            "{} labels for logits of {rows}×{len} positions",
            labels.len()
        )));
    }
    if let Some(bad) = labels
        .iter()
        .find(|&&l| l != IGNORE_INDEX && (l < 0 || l as usize >= vocab))
    {
        return Err(TrainError::Config(format!(
            "label {bad} is outside the vocabulary of {vocab} (or −100 to ignore)"
        )));
    }
    let device = logits.device();
    let targets: Vec<i64> = labels.iter().map(|&l| i64::from(l.max(0))).collect();
    let mask: Vec<f32> = labels
        .iter()
        .map(|&l| f32::from(u8::from(l != IGNORE_INDEX)))
        .collect();
    let targets = Tensor::<3, Int>::from_data(TensorData::new(targets, [rows, len, 1]), &device);
    let mask = Tensor::<2>::from_data(TensorData::new(mask, [rows, len]), &device);
    let picked = log_softmax(logits, 2).gather(2, targets).reshape([rows, len]);
    Ok(picked.neg() * mask)
}

/// The summed loss of a packed batch and the per-row sums (for per-source metrics).
pub struct BatchLoss {
    /// Σ token losses, `[1]`, differentiable.
    pub sum: Tensor<1>,
    /// Σ token losses of each row, `[rows]`.
    pub per_row: Tensor<1>,
}

/// Sums the masked token losses of `labels` under `model`'s output head applied to `hidden`
/// (`[rows, len, hidden]`, the final hidden states). `head_chunk_tokens` > 0 runs the head and
/// cross-entropy in chunks of that many tokens ([`crate::head`]: the same values and gradients
/// without the full logits); 0 computes the logits of every position at once.
pub fn language_model_loss(
    model: &Llama,
    hidden: Tensor<3>,
    labels: &[i32],
    head_chunk_tokens: usize,
) -> Result<BatchLoss> {
    let [rows, len, _] = hidden.dims();
    if head_chunk_tokens == 0 {
        let nll = token_nll(model.logits(hidden), labels)?;
        let per_row = nll.clone().sum_dim(1).reshape([rows]);
        return Ok(BatchLoss {
            sum: nll.sum(),
            per_row,
        });
    }
    let vocab = model.config.vocab_size;
    if labels.len() != rows * len {
        return Err(TrainError::Config(format!(
            "{} labels for {rows}×{len} positions",
            labels.len(),
        )));
    }
    if let Some(bad) = labels
        .iter()
        .find(|&&l| l != IGNORE_INDEX && (l < 0 || l as usize >= vocab))
    {
        return Err(TrainError::Config(format!(
            "label {bad} is outside the vocabulary of {vocab} (or −100 to ignore)"
        )));
    }
    let targets = WeightedTargets {
        rows,
        len,
        targets: labels.iter().map(|&l| l.max(0) as u32).collect(),
        weights: labels
            .iter()
            .map(|&l| f32::from(u8::from(l != IGNORE_INDEX)))
            .collect(),
    };
    let nll = chunked_nll(
        model.head_input(hidden),
        model.output_weight(),
        &targets,
        head_chunk_tokens,
    )?;
    Ok(BatchLoss {
        sum: nll.sum,
        per_row: nll.per_row,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn nll_matches_a_hand_computed_softmax() {
        let device = Device::default();
        // one row, two positions, vocab 3
        let logits = Tensor::<3>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 0.0, 0.0, 0.0], [1, 2, 3]),
            &device,
        );
        let nll = token_nll(logits, &[2, IGNORE_INDEX]).unwrap();
        let v = nll.into_data().convert::<f32>().try_into_vec::<f32>().unwrap();
        let z = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
        assert!((f64::from(v[0]) - (z - 3.0)).abs() < 1e-6, "{v:?}");
        assert_eq!(v[1], 0.0);
    }

    #[test]
    fn labels_outside_the_vocabulary_are_an_error() {
        let device = Device::default();
        let logits = Tensor::<3>::zeros([1, 1, 3], &device);
        let err = token_nll(logits, &[3]).err().unwrap().to_string();
        assert!(err.contains("label 3"), "{err}");
    }
}
