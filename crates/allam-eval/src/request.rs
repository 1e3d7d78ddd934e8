//! From a `(context, continuation)` text pair to the token ids that are scored, as in
//! lm-evaluation-harness.
use allam_model::TextTokenizer;

use crate::error::{EvalError, Result};

/// One log-likelihood request: how likely is `continuation` after `context`?
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScoreRequest {
    /// The text the model is given.
    pub context: String,
    /// The text whose log-probability is measured.
    pub continuation: String,
}

impl ScoreRequest {
    /// A request from two strings.
    pub fn new(context: impl Into<String>, continuation: impl Into<String>) -> Self {
        Self {
            context: context.into(),
            continuation: continuation.into(),
        }
    }
}

/// A request as token ids: `context` is given, `continuation` is scored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedRequest {
    /// Ids the model reads before the continuation (special tokens included).
    pub context: Vec<u32>,
    /// Ids whose log-probabilities are summed.
    pub continuation: Vec<u32>,
}

/// Splits a request into token ids the way lm-evaluation-harness does.
///
/// Trailing whitespace of the context moves to the start of the continuation; then
/// `whole = encode(context + continuation)` and `n = len(encode(context))`, both with the special
/// tokens the tokenizer's post-processor adds. The context ids are `whole[..n]` and the
/// continuation ids `whole[n..]`, so the model scores exactly the tokenization of the whole text.
///
/// When the context has no tokens (empty text and no BOS), `bos` stands in for it if given.
pub fn encode_request(
    tokenizer: &TextTokenizer,
    request: &ScoreRequest,
    bos: Option<u32>,
) -> Result<EncodedRequest> {
    encode_request_with(tokenizer, request, bos, true)
}

/// As [`encode_request`], but with `add_special_tokens` chosen: `false` for a context already
/// rendered by a chat template, which places its own BOS.
pub fn encode_request_with(
    tokenizer: &TextTokenizer,
    request: &ScoreRequest,
    bos: Option<u32>,
    add_special_tokens: bool,
) -> Result<EncodedRequest> {
    let trimmed = request.context.trim_end();
    let context = trimmed;
    let continuation = format!("{}{}", &request.context[trimmed.len()..], request.continuation);
    let whole = tokenizer.encode(&format!("{context}{continuation}"), add_special_tokens)?;
    let n = tokenizer
        .encode(context, add_special_tokens)?
        .len()
        .min(whole.len());
    let mut context_ids = whole[..n].to_vec();
    let continuation_ids = whole[n..].to_vec();
    if continuation_ids.is_empty() {
        return Err(EvalError::Input(format!(
            "the continuation {:?} adds no tokens after the context",
            request.continuation
        )));
    }
    if context_ids.is_empty() {
        match bos {
            Some(id) => context_ids.push(id),
            None => {
                return Err(EvalError::Input(format!(
                    "the context {:?} has no tokens and the model has no BOS token to stand in",
                    request.context
                )));
            }
        }
    }
    Ok(EncodedRequest {
        context: context_ids,
        continuation: continuation_ids,
    })
}
