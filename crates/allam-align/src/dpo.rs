//! Direct preference optimisation: preference pairs from JSONL, host batches of prompt + response
//! rows with response masks, summed response log-probabilities (differentiable), and the DPO
//! losses exactly as TRL's `DPOTrainer` computes them.
use std::path::Path;

use allam_model::{Llama, PaddingSide, TextTokenizer, TokenBatch};
use allam_train::head::WeightedTargets;
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::conversation::{
    Conversation, Ending, Message, Role, check_turns, for_each_json_line, parse_messages, strip,
};
use crate::error::{AlignError, Result};
use crate::template::{ChatTemplate, encode_conversation};

/// A prompt with a preferred and a dispreferred response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreferencePair {
    /// The turns before the response: an optional system turn, then user/assistant alternating,
    /// ending with a user turn.
    pub prompt: Vec<Message>,
    /// The preferred response.
    pub chosen: String,
    /// The dispreferred response.
    pub rejected: String,
}

fn response(value: Option<&Value>, key: &str) -> Result<String> {
    let text = match value {
        None => return Err(AlignError::Conversation(format!("missing `{key}`"))),
        Some(Value::String(s)) => s.clone(),
        Some(list @ Value::Array(_)) => parse_messages(list)
            .map_err(|e| AlignError::Conversation(format!("`{key}`: {}", strip(e))))?
            .into_iter()
            .rev()
            .find(|m| m.role == Role::Assistant)
            .map(|m| m.content)
            .ok_or_else(|| AlignError::Conversation(format!("`{key}` has no assistant turn")))?,
        Some(other) => {
            return Err(AlignError::Conversation(format!(
                "`{key}` must be a string or a list of messages, found {other}"
            )));
        }
    };
    if text.trim().is_empty() {
        return Err(AlignError::Conversation(format!("`{key}` is empty")));
    }
    Ok(text)
}

impl PreferencePair {
    /// From one record: `{"prompt" | "messages": …, "chosen": …, "rejected": …}`. The prompt is a
    /// string (one user turn) or a list of messages; `chosen` / `rejected` are strings or message
    /// lists whose last assistant turn is taken.
    pub fn from_json(value: &Value) -> Result<Self> {
        let obj = value
            .as_object()
            .ok_or_else(|| AlignError::Conversation("expected a JSON object".into()))?;
        let prompt = match obj.get("prompt").or_else(|| obj.get("messages")) {
            Some(Value::String(s)) => vec![Message::new(Role::User, s.clone())],
            Some(list @ Value::Array(_)) => parse_messages(list)?,
            Some(other) => {
                return Err(AlignError::Conversation(format!(
                    "`prompt` must be a string or a list of messages, found {other}"
                )));
            }
            None => {
                return Err(AlignError::Conversation(
                    "missing `prompt` (or `messages`)".into(),
                ));
            }
        };
        check_turns(&prompt, Ending::User)
            .map_err(|e| AlignError::Conversation(format!("prompt: {}", strip(e))))?;
        Ok(Self {
            prompt,
            chosen: response(obj.get("chosen"), "chosen")?,
            rejected: response(obj.get("rejected"), "rejected")?,
        })
    }

    /// The prompt followed by `response` as the assistant's turn.
    pub fn conversation(&self, response: &str) -> Result<Conversation> {
        let mut messages = self.prompt.clone();
        messages.push(Message::new(Role::Assistant, response));
        Conversation::new(messages)
    }
}

/// Loads every preference pair of a JSONL file; errors name `path:line`.
pub fn load_preferences(path: &Path) -> Result<Vec<PreferencePair>> {
    let mut out = Vec::new();
    for_each_json_line(path, |value| {
        out.push(PreferencePair::from_json(value)?);
        Ok(())
    })?;
    Ok(out)
}

/// A pair tokenized: each response after the rendered prompt, with a mask of the response's tokens
/// (the final assistant turn and its closing token; earlier assistant turns in the prompt are not
/// part of it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpoExample {
    /// Prompt + chosen response ids.
    pub chosen_ids: Vec<u32>,
    /// `true` on the chosen response's tokens.
    pub chosen_mask: Vec<bool>,
    /// Prompt + rejected response ids.
    pub rejected_ids: Vec<u32>,
    /// `true` on the rejected response's tokens.
    pub rejected_mask: Vec<bool>,
}

/// Keeps only the last run of `true` (the final assistant turn).
fn last_run(mut mask: Vec<bool>) -> Vec<bool> {
    if let Some(end) = mask.iter().rposition(|&t| t) {
        let start = mask[..end].iter().rposition(|&t| !t).map_or(0, |p| p + 1);
        mask[..start].fill(false);
    }
    mask
}

impl DpoExample {
    /// Renders and tokenizes both conversations of `pair`.
    pub fn encode(pair: &PreferencePair, template: &ChatTemplate, tokenizer: &TextTokenizer) -> Result<Self> {
        let (chosen_ids, chosen_mask) =
            encode_conversation(template, &pair.conversation(&pair.chosen)?, tokenizer)?;
        let (rejected_ids, rejected_mask) =
            encode_conversation(template, &pair.conversation(&pair.rejected)?, tokenizer)?;
        Ok(Self {
            chosen_ids,
            chosen_mask: last_run(chosen_mask),
            rejected_ids,
            rejected_mask: last_run(rejected_mask),
        })
    }
}

/// Right-padded rows of prompt + response with, per position, the next token and whether it is a
/// response token: what [`response_logprobs`] needs, built on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct ResponseBatch {
    /// The rows (right-padded, padding masked).
    pub tokens: TokenBatch,
    /// `[rows × len]`: the id at the next position (0 where there is none).
    pub targets: Vec<u32>,
    /// `[rows × len]`: 1 where the next token is a response token, else 0.
    pub weights: Vec<f32>,
}

impl ResponseBatch {
    /// From `(ids, response_mask)` rows.
    pub fn new(rows: &[(&[u32], &[bool])], pad_id: u32) -> Result<Self> {
        for (i, (ids, mask)) in rows.iter().enumerate() {
            if ids.len() != mask.len() {
                return Err(AlignError::Input(format!(
                    "row {i}: {} ids but {} mask entries",
                    ids.len(),
                    mask.len()
                )));
            }
            if !mask.iter().any(|&m| m) || mask[0] {
                return Err(AlignError::Input(format!(
                    "row {i}: the response must have at least one token and follow at least one prompt token"
                )));
            }
        }
        let owned: Vec<Vec<u32>> = rows.iter().map(|(ids, _)| ids.to_vec()).collect();
        let tokens = TokenBatch::padded(&owned, pad_id, PaddingSide::Right);
        let len = tokens.len;
        let mut targets = vec![0u32; rows.len() * len];
        let mut weights = vec![0f32; rows.len() * len];
        for (r, (ids, mask)) in rows.iter().enumerate() {
            for j in 0..ids.len() - 1 {
                targets[r * len + j] = ids[j + 1];
                weights[r * len + j] = if mask[j + 1] { 1.0 } else { 0.0 };
            }
        }
        Ok(Self {
            tokens,
            targets,
            weights,
        })
    }

    /// The targets and response weights for [`allam_train::head`]'s chunked head.
    pub fn weighted_targets(&self) -> WeightedTargets {
        WeightedTargets {
            rows: self.tokens.rows,
            len: self.tokens.len,
            targets: self.targets.clone(),
            weights: self.weights.clone(),
        }
    }

    /// Number of response tokens of each row (to average instead of sum, as TRL's IPO does).
    pub fn response_tokens(&self) -> Vec<usize> {
        self.weights
            .chunks(self.tokens.len.max(1))
            .map(|w| w.iter().filter(|&&x| x > 0.0).count())
            .collect()
    }
}

/// A batch of pairs as one [`ResponseBatch`]: rows `0..pairs` are the chosen responses, rows
/// `pairs..2·pairs` the rejected ones, so one forward pass scores both.
#[derive(Clone, Debug, PartialEq)]
pub struct DpoBatch {
    /// Number of pairs.
    pub pairs: usize,
    /// Chosen rows, then rejected rows.
    pub responses: ResponseBatch,
}

impl DpoBatch {
    /// Builds the rows of `examples`, right-padded with `pad_id`.
    pub fn new(examples: &[DpoExample], pad_id: u32) -> Result<Self> {
        let chosen = examples
            .iter()
            .map(|e| (e.chosen_ids.as_slice(), e.chosen_mask.as_slice()));
        let rejected = examples
            .iter()
            .map(|e| (e.rejected_ids.as_slice(), e.rejected_mask.as_slice()));
        let rows: Vec<_> = chosen.chain(rejected).collect();
        Ok(Self {
            pairs: examples.len(),
            responses: ResponseBatch::new(&rows, pad_id)?,
        })
    }

    /// Summed response log-probabilities `(chosen [pairs], rejected [pairs])` from one forward pass.
    pub fn logprobs(&self, model: &Llama) -> Result<(Tensor<1>, Tensor<1>)> {
        let all = response_logprobs(model, &self.responses)?;
        Ok((
            all.clone().narrow(0, 0, self.pairs),
            all.narrow(0, self.pairs, self.pairs),
        ))
    }
}

/// `Σ_t log p(response_t | prompt, response_<t)` for every row: `[rows]`, differentiable through
/// the model (the targets and mask come from the host; nothing of the graph is read back).
pub fn response_logprobs(model: &Llama, batch: &ResponseBatch) -> Result<Tensor<1>> {
    response_logprobs_of(model.forward(&batch.tokens)?, batch)
}

/// [`response_logprobs`] from the logits of every position `[rows, len, vocab]`.
pub fn response_logprobs_of(logits: Tensor<3>, batch: &ResponseBatch) -> Result<Tensor<1>> {
    let (rows, len) = (batch.tokens.rows, batch.tokens.len);
    let device = logits.device();
    let targets: Vec<i64> = batch.targets.iter().map(|&t| t as i64).collect();
    let targets = Tensor::<3, Int>::from_data(TensorData::new(targets, [rows, len, 1]), &device);
    let weights = Tensor::<2>::from_data(TensorData::new(batch.weights.clone(), [rows, len]), &device);
    let picked = log_softmax(logits, 2).gather(2, targets).reshape([rows, len]);
    Ok((picked * weights).sum_dim(1).reshape([rows]))
}

/// Which DPO loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DpoLossKind {
    /// `−(1−ε)·logσ(β·h) − ε·logσ(−β·h)` (Rafailov et al.; ε > 0 is conservative DPO).
    Sigmoid,
    /// `(h − 1/(2β))²` (Azar et al.).
    Ipo,
    /// `relu(1 − β·h)` (SLiC).
    Hinge,
}

/// DPO settings; `h = (log π(chosen) − log π(rejected)) − (log ref(chosen) − log ref(rejected))`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DpoConfig {
    /// β, the strength of the KL penalty towards the reference (default 0.1).
    pub beta: f64,
    /// The loss.
    pub loss: DpoLossKind,
    /// ε, the assumed probability that a preference label is flipped (sigmoid loss only).
    pub label_smoothing: f64,
}

impl Default for DpoConfig {
    fn default() -> Self {
        Self {
            beta: 0.1,
            loss: DpoLossKind::Sigmoid,
            label_smoothing: 0.0,
        }
    }
}

impl DpoConfig {
    /// Checks β > 0, 0 ≤ ε < 0.5, and ε = 0 unless the loss is sigmoid.
    pub fn validate(&self) -> Result<()> {
        if !(self.beta > 0.0 && self.beta.is_finite()) {
            return Err(AlignError::Input(format!(
                "DPO beta must be positive, got {}",
                self.beta
            )));
        }
        if !(0.0..0.5).contains(&self.label_smoothing) {
            return Err(AlignError::Input(format!(
                "label_smoothing must be in [0, 0.5), got {}",
                self.label_smoothing
            )));
        }
        if self.label_smoothing > 0.0 && self.loss != DpoLossKind::Sigmoid {
            return Err(AlignError::Input(format!(
                "label_smoothing applies to the sigmoid loss only, not {:?}",
                self.loss
            )));
        }
        Ok(())
    }
}

/// The per-pair losses and what to log. The logged values stay on the device, outside the
/// autodiff graph (the trainer reads a step's metrics back once).
#[derive(Clone, Debug)]
pub struct DpoOutput {
    /// Per-pair losses, `[pairs]` (take `.mean()` as TRL does, or sum).
    pub loss: Tensor<1>,
    /// `β·(log π(chosen) − log ref(chosen))` per pair, `[pairs]`.
    pub rewards_chosen: Tensor<1>,
    /// `β·(log π(rejected) − log ref(rejected))` per pair, `[pairs]`.
    pub rewards_rejected: Tensor<1>,
    /// `rewards_chosen − rewards_rejected` per pair, `[pairs]`.
    pub margins: Tensor<1>,
    /// Pairs with `rewards_chosen > rewards_rejected`, `[1]` (a count, not a fraction).
    pub correct: Tensor<1>,
}

/// `log σ(x) = min(x, 0) − log(1 + e^{−|x|})`, finite for every finite `x`.
pub fn log_sigmoid(x: Tensor<1>) -> Tensor<1> {
    x.clone().clamp_max(0.0) - x.abs().neg().exp().log1p()
}

/// The DPO loss of each pair from summed response log-probabilities of the policy and the
/// (frozen) reference, all `[pairs]`. Formulas as TRL's `DPOTrainer.dpo_loss`, see [`DpoLossKind`].
/// The rewards are read back detached; the loss keeps the policy's graph.
pub fn dpo_loss(
    policy_chosen: Tensor<1>,
    policy_rejected: Tensor<1>,
    ref_chosen: Tensor<1>,
    ref_rejected: Tensor<1>,
    config: &DpoConfig,
) -> Result<DpoOutput> {
    config.validate()?;
    let dims = [&policy_chosen, &policy_rejected, &ref_chosen, &ref_rejected].map(|t| t.dims()[0]);
    if dims.iter().any(|&d| d != dims[0]) || dims[0] == 0 {
        return Err(AlignError::Input(format!(
            "policy chosen/rejected and reference chosen/rejected log-probs must have the same non-zero length, got {dims:?}"
        )));
    }
    let (beta, eps) = (config.beta, config.label_smoothing);
    let h = (policy_chosen.clone() - policy_rejected.clone()) - (ref_chosen.clone() - ref_rejected.clone());
    let loss = match config.loss {
        DpoLossKind::Sigmoid => {
            let z = h.mul_scalar(beta);
            log_sigmoid(z.clone()).mul_scalar(-(1.0 - eps)) - log_sigmoid(z.neg()).mul_scalar(eps)
        }
        DpoLossKind::Ipo => {
            let d = h.sub_scalar(1.0 / (2.0 * beta));
            d.clone() * d
        }
        DpoLossKind::Hinge => relu(h.mul_scalar(-beta).add_scalar(1.0)),
    };
    let reward = |policy: Tensor<1>, reference: Tensor<1>| {
        (policy.without_autodiff() - reference.without_autodiff()).mul_scalar(beta)
    };
    let rewards_chosen = reward(policy_chosen, ref_chosen);
    let rewards_rejected = reward(policy_rejected, ref_rejected);
    let margins = rewards_chosen.clone() - rewards_rejected.clone();
    let correct = margins.clone().greater_elem(0.0).float().sum();
    Ok(DpoOutput {
        loss,
        rewards_chosen,
        rewards_rejected,
        margins,
        correct,
    })
}
