//! Batched log-likelihoods of continuations, the primitive every evaluation here is built on.
use allam_model::score::{ContinuationScore, score_continuations};
use allam_model::{Llama, PretrainedModel};

use crate::error::{EvalError, Result};
use crate::request::{EncodedRequest, ScoreRequest, encode_request};

/// The score of one request.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RequestScore {
    /// `sum log p(continuation token | everything before it)`, natural log.
    pub logprob: f64,
    /// How many tokens the continuation has.
    pub continuation_tokens: usize,
    /// Whether greedy decoding from the context would produce exactly the continuation.
    pub is_greedy: bool,
    /// The log-probability of each continuation token.
    pub token_logprobs: Vec<f32>,
    /// Context tokens dropped from the left because the request was longer than the model's
    /// context (as lm-evaluation-harness does); 0 for almost every request.
    pub context_tokens_dropped: usize,
}

impl From<ContinuationScore> for RequestScore {
    fn from(score: ContinuationScore) -> Self {
        Self {
            logprob: score.logprob,
            continuation_tokens: score.token_logprobs.len(),
            is_greedy: score.is_greedy,
            context_tokens_dropped: 0,
            token_logprobs: score.token_logprobs,
        }
    }
}

/// Told after every forward pass of a scoring run (the CLI draws progress from it).
pub trait ScoreProgress {
    /// `requests` more requests were scored, reading `tokens` tokens; their continuations have
    /// `predicted` tokens with a summed negative log-likelihood of `nll` (nats).
    fn scored(&self, requests: usize, tokens: usize, predicted: usize, nll: f64);
}

/// A [`ScoreProgress`] that ignores everything.
pub struct NoScoreProgress;

impl ScoreProgress for NoScoreProgress {
    fn scored(&self, _requests: usize, _tokens: usize, _predicted: usize, _nll: f64) {}
}

/// Scores encoded requests, `batch_size` per forward pass.
///
/// Requests are batched longest first (less padding) and returned in their own order. Padding is
/// masked, so scores do not depend on the batch size beyond float rounding. A request longer than
/// the model's context (`max_position_embeddings`) loses context tokens from the left; one whose
/// continuation alone does not fit is an error.
pub fn score_encoded(
    model: &Llama,
    requests: &[EncodedRequest],
    batch_size: usize,
) -> Result<Vec<RequestScore>> {
    score_encoded_with(model, requests, batch_size, &NoScoreProgress)
}

/// As [`score_encoded`], telling `progress` after every batch.
pub fn score_encoded_with(
    model: &Llama,
    requests: &[EncodedRequest],
    batch_size: usize,
    progress: &dyn ScoreProgress,
) -> Result<Vec<RequestScore>> {
    if batch_size == 0 {
        return Err(EvalError::Input("batch size must be at least 1".into()));
    }
    let max_len = model.config.max_position_embeddings;
    let mut pairs = Vec::with_capacity(requests.len());
    for (i, request) in requests.iter().enumerate() {
        if request.context.is_empty() || request.continuation.is_empty() {
            return Err(EvalError::Input(format!(
                "request {i}: context and continuation must both have at least one token"
            )));
        }
        if request.continuation.len() > max_len {
            return Err(EvalError::Input(format!(
                "request {i}: the continuation has {} tokens, more than the model's context of {max_len}",
                request.continuation.len()
            )));
        }
        // The model reads context + continuation minus the last token: at most `max_len` ids.
        let keep = (max_len + 1 - request.continuation.len()).min(request.context.len());
        let context = request.context[request.context.len() - keep..].to_vec();
        pairs.push((context, request.continuation.clone()));
    }
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(pairs[i].0.len() + pairs[i].1.len()));
    let sorted: Vec<(Vec<u32>, Vec<u32>)> = order.iter().map(|&i| pairs[i].clone()).collect();
    let mut scores = Vec::with_capacity(sorted.len());
    for chunk in sorted.chunks(batch_size) {
        let batch = score_continuations(model, chunk, batch_size)?;
        let tokens = chunk.iter().map(|(c, x)| c.len() + x.len() - 1).sum();
        let predicted = chunk.iter().map(|(_, x)| x.len()).sum();
        let nll = -batch.iter().map(|s| s.logprob).sum::<f64>();
        progress.scored(chunk.len(), tokens, predicted, nll);
        scores.extend(batch);
    }
    let mut out: Vec<Option<RequestScore>> = vec![None; pairs.len()];
    for (score, &i) in scores.into_iter().zip(&order) {
        let mut score = RequestScore::from(score);
        score.context_tokens_dropped = requests[i].context.len() - pairs[i].0.len();
        out[i] = Some(score);
    }
    Ok(out.into_iter().flatten().collect())
}

/// Tokenizes text requests with the model's tokenizer ([`encode_request`]) and scores them.
pub fn score_requests(
    pretrained: &PretrainedModel,
    requests: &[ScoreRequest],
    batch_size: usize,
) -> Result<Vec<RequestScore>> {
    score_requests_with(pretrained, requests, batch_size, &NoScoreProgress)
}

/// As [`score_requests`], telling `progress` after every batch.
pub fn score_requests_with(
    pretrained: &PretrainedModel,
    requests: &[ScoreRequest],
    batch_size: usize,
    progress: &dyn ScoreProgress,
) -> Result<Vec<RequestScore>> {
    let tokenizer = pretrained.tokenizer()?;
    let bos = pretrained.model.config.bos_token_id;
    let encoded = requests
        .iter()
        .enumerate()
        .map(|(i, r)| {
            encode_request(tokenizer, r, bos).map_err(|e| match e {
                EvalError::Input(m) => EvalError::Input(format!("request {i}: {m}")),
                other => other,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    score_encoded_with(&pretrained.model, &encoded, batch_size, progress)
}
