//! Perplexity and bits per byte of whole texts, with a sliding window for long documents.
//!
//! A text is encoded with the tokenizer's special tokens; every token after the first is
//! predicted (the first is given — the BOS when the tokenizer adds one). Its negative
//! log-likelihood `nll` (natural log, summed) gives
//!
//! ```text
//! ppl = exp(nll / tokens)        bpb = nll / (ln 2 · bytes)
//! ```
//!
//! where `tokens` counts the predicted tokens and `bytes` the UTF-8 bytes of the text. Bits per byte
//! does not depend on how finely a tokenizer cuts the text, so it compares tokenizers (an Arabic
//! expansion against its base) where perplexity cannot.
use allam_model::{Llama, PretrainedModel};

use crate::error::{EvalError, Result};
use crate::loglik::{NoScoreProgress, ScoreProgress, score_encoded_with};
use crate::request::EncodedRequest;

/// How a long sequence is cut into forward passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlidingWindow {
    /// The most ids the model reads in one pass (at most `max_position_embeddings`).
    pub window: usize,
    /// How many new tokens each pass scores (`1..=window`); the rest of the window is context.
    /// `stride == window` gives disjoint windows, as lm-evaluation-harness's rolling
    /// log-likelihood; smaller strides give every token more context at more cost.
    pub stride: usize,
}

impl SlidingWindow {
    /// Disjoint windows as long as the model's context.
    pub fn for_model(model: &Llama) -> Self {
        let window = model.config.max_position_embeddings;
        Self {
            window,
            stride: window,
        }
    }

    /// Checks `1 <= stride <= window <= max_len`.
    pub fn validate(&self, max_len: usize) -> Result<()> {
        if self.window == 0 || self.window > max_len {
            return Err(EvalError::Input(format!(
                "window {} must be between 1 and the model's context of {max_len}",
                self.window
            )));
        }
        if self.stride == 0 || self.stride > self.window {
            return Err(EvalError::Input(format!(
                "stride {} must be between 1 and the window {}",
                self.stride, self.window
            )));
        }
        Ok(())
    }

    /// The requests that score every token of `ids` after the first exactly once.
    ///
    /// Each request scores the next `stride` tokens, with as much of the preceding text as
    /// context as fits in `window` ids of input.
    pub fn requests(&self, ids: &[u32]) -> Vec<EncodedRequest> {
        let mut requests = Vec::new();
        let mut scored = 1;
        while scored < ids.len() {
            let end = (scored + self.stride).min(ids.len());
            let begin = (end - 1).saturating_sub(self.window);
            requests.push(EncodedRequest {
                context: ids[begin..scored].to_vec(),
                continuation: ids[scored..end].to_vec(),
            });
            scored = end;
        }
        requests
    }
}

/// The totals perplexity and bits per byte are computed from.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct TextStats {
    /// Predicted tokens.
    pub tokens: usize,
    /// UTF-8 bytes of the text.
    pub bytes: usize,
    /// Summed negative log-likelihood of the predicted tokens, in nats.
    pub nll: f64,
}

impl TextStats {
    /// `exp(nll / tokens)`.
    pub fn perplexity(&self) -> f64 {
        (self.nll / self.tokens as f64).exp()
    }

    /// `nll / (ln 2 · bytes)`.
    pub fn bits_per_byte(&self) -> f64 {
        self.nll / (std::f64::consts::LN_2 * self.bytes as f64)
    }

    /// The totals of two texts together.
    pub fn merge(self, other: TextStats) -> TextStats {
        TextStats {
            tokens: self.tokens + other.tokens,
            bytes: self.bytes + other.bytes,
            nll: self.nll + other.nll,
        }
    }
}

/// The summed negative log-likelihood of every token of `ids` after the first, and how many
/// tokens that is.
pub fn sequence_nll(
    model: &Llama,
    ids: &[u32],
    window: SlidingWindow,
    batch_size: usize,
) -> Result<(usize, f64)> {
    sequence_nll_with(model, ids, window, batch_size, &NoScoreProgress)
}

/// As [`sequence_nll`], telling `progress` after every batch of windows.
pub fn sequence_nll_with(
    model: &Llama,
    ids: &[u32],
    window: SlidingWindow,
    batch_size: usize,
    progress: &dyn ScoreProgress,
) -> Result<(usize, f64)> {
    window.validate(model.config.max_position_embeddings)?;
    let requests = window.requests(ids);
    let scores = score_encoded_with(model, &requests, batch_size, progress)?;
    let tokens = scores.iter().map(|s| s.continuation_tokens).sum();
    let nll = -scores.iter().map(|s| s.logprob).sum::<f64>();
    Ok((tokens, nll))
}

/// Encodes `text` (with special tokens) and measures it; an error if it has nothing to predict.
pub fn text_stats(
    pretrained: &PretrainedModel,
    text: &str,
    window: SlidingWindow,
    batch_size: usize,
) -> Result<TextStats> {
    text_stats_with(pretrained, text, window, batch_size, &NoScoreProgress)
}

/// As [`text_stats`], telling `progress` after every batch of windows
/// ([`SlidingWindow::requests`] says how many there will be).
pub fn text_stats_with(
    pretrained: &PretrainedModel,
    text: &str,
    window: SlidingWindow,
    batch_size: usize,
    progress: &dyn ScoreProgress,
) -> Result<TextStats> {
    let ids = pretrained.tokenizer()?.encode(text, true)?;
    if ids.len() < 2 {
        return Err(EvalError::Input(format!(
            "the text has {} token(s): at least two are needed to predict one",
            ids.len()
        )));
    }
    let (tokens, nll) = sequence_nll_with(&pretrained.model, &ids, window, batch_size, progress)?;
    Ok(TextStats {
        tokens,
        bytes: text.len(),
        nll,
    })
}

/// The totals of several documents, each measured on its own ([`text_stats`]) and merged.
pub fn documents_stats<'a>(
    pretrained: &PretrainedModel,
    documents: impl IntoIterator<Item = &'a str>,
    window: SlidingWindow,
    batch_size: usize,
) -> Result<TextStats> {
    documents
        .into_iter()
        .try_fold(TextStats::default(), |total, doc| {
            Ok(total.merge(text_stats(pretrained, doc, window, batch_size)?))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_every_token_once_within_the_window() {
        let ids: Vec<u32> = (0..23).collect();
        for (window, stride) in [(4, 4), (4, 1), (6, 4), (30, 30), (1, 1)] {
            let w = SlidingWindow { window, stride };
            let requests = w.requests(&ids);
            let scored: Vec<u32> = requests.iter().flat_map(|r| r.continuation.clone()).collect();
            assert_eq!(scored, (1..23).collect::<Vec<_>>(), "{w:?}");
            for r in &requests {
                assert!(!r.context.is_empty());
                assert!(r.continuation.len() <= stride);
                assert!(r.context.len() + r.continuation.len() - 1 <= window, "{w:?}");
                // The context is the text just before the continuation.
                assert_eq!(r.context.last().unwrap() + 1, r.continuation[0]);
            }
        }
        assert!(SlidingWindow { window: 1, stride: 1 }.requests(&[7]).is_empty());
    }
}
