//! Log-probabilities of continuations: the primitive that evaluation and DPO are built on.
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

use crate::batch::{PaddingSide, TokenBatch};
use crate::error::{ModelError, Result};
use crate::model::Llama;

/// The score of one continuation.
#[derive(Clone, Debug, PartialEq)]
pub struct ContinuationScore {
    /// `log p(token | everything before it)` for every continuation token.
    pub token_logprobs: Vec<f32>,
    /// Their sum.
    pub logprob: f64,
    /// Whether every continuation token is the model's argmax at its position.
    pub is_greedy: bool,
}

/// Scores `continuation` after `context` for each request, `batch_size` requests per forward pass.
///
/// Requests are right-padded within a batch and padding is masked, so scores do not depend on the
/// batch size (up to float rounding).
pub fn score_continuations(
    model: &Llama,
    requests: &[(Vec<u32>, Vec<u32>)],
    batch_size: usize,
) -> Result<Vec<ContinuationScore>> {
    if batch_size == 0 {
        return Err(ModelError::Input("batch size must be at least 1".into()));
    }
    for (i, (context, continuation)) in requests.iter().enumerate() {
        if context.is_empty() || continuation.is_empty() {
            return Err(ModelError::Input(format!(
                "request {i}: context and continuation must both have at least one token"
            )));
        }
    }
    let mut out = Vec::with_capacity(requests.len());
    for chunk in requests.chunks(batch_size) {
        out.extend(score_chunk(model, chunk)?);
    }
    Ok(out)
}

fn score_chunk(model: &Llama, requests: &[(Vec<u32>, Vec<u32>)]) -> Result<Vec<ContinuationScore>> {
    // The model reads context + continuation minus its last token and predicts every next token.
    let inputs: Vec<Vec<u32>> = requests
        .iter()
        .map(|(c, x)| c.iter().chain(x).copied().take(c.len() + x.len() - 1).collect())
        .collect();
    let pad = model.config.pad_token_id.unwrap_or(0);
    let batch = TokenBatch::padded(&inputs, pad, PaddingSide::Right);
    let (rows, len) = (batch.rows, batch.len);
    let mut targets = vec![0i64; rows * len];
    for (r, (c, x)) in requests.iter().enumerate() {
        for (k, &id) in c.iter().skip(1).chain(x).enumerate() {
            targets[r * len + k] = id as i64;
        }
    }
    let logits = model.forward(&batch)?;
    let device = model.device();
    let targets = Tensor::<3, Int>::from_data(TensorData::new(targets, [rows, len, 1]), &device);
    let greedy = logits.clone().argmax(2);
    let logprobs = log_softmax(logits, 2).gather(2, targets);
    let logprobs = to_f32(logprobs.reshape([rows * len]))?;
    let greedy: Vec<i64> = greedy
        .reshape([rows * len])
        .into_data()
        .convert::<i64>()
        .try_into_vec()
        .map_err(|e| ModelError::Input(format!("{e:?}")))?;
    Ok(requests
        .iter()
        .enumerate()
        .map(|(r, (c, x))| {
            let start = r * len + c.len() - 1;
            let token_logprobs = logprobs[start..start + x.len()].to_vec();
            let is_greedy = x
                .iter()
                .zip(&greedy[start..start + x.len()])
                .all(|(a, b)| *a as i64 == *b);
            ContinuationScore {
                logprob: token_logprobs.iter().map(|v| *v as f64).sum(),
                token_logprobs,
                is_greedy,
            }
        })
        .collect())
}

/// `log p(ids[t+1] | ids[..=t])` for every position of one sequence.
pub fn sequence_logprobs(model: &Llama, ids: &[u32]) -> Result<Vec<f32>> {
    if ids.len() < 2 {
        return Err(ModelError::Input(
            "need at least two tokens to score a sequence".into(),
        ));
    }
    let scores = score_continuations(model, &[(ids[..1].to_vec(), ids[1..].to_vec())], 1)?;
    Ok(scores.into_iter().next().expect("one request").token_logprobs)
}

pub(crate) fn to_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| ModelError::Input(format!("cannot read tensor: {e:?}")))
}
