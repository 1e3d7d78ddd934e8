//! Multiple-choice accuracy from continuation log-likelihoods, as lm-evaluation-harness scores it.
//!
//! Each choice is a continuation of the question's prompt. In [`ChoiceMode::Text`] the continuation
//! is the choice's text: `acc` takes the choice of highest log-likelihood, `acc_norm` the highest
//! log-likelihood per character (so longer answers are not penalised for their length). In
//! [`ChoiceMode::Letters`] the prompt lists the labelled choices and the continuation is the label.
use std::collections::BTreeMap;

use allam_model::{ChatMessage, PretrainedModel, TextTokenizer};

use crate::error::{EvalError, Result};
use crate::loglik::{NoScoreProgress, ScoreProgress, score_encoded_with};
pub use crate::prompt::ChoiceMode;
use crate::prompt::{LetterScript, Script, choice_continuation_in, prompt_with_shots, question_prompt_in};
use crate::request::{ScoreRequest, encode_request_with};
use crate::shots::{DEFAULT_SEED, ShotPool};
use crate::task::McItem;

/// The settings of one evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct McOptions {
    /// Text or letters.
    pub mode: ChoiceMode,
    /// Solved examples before each question: drawn from the dev items when given, else from the
    /// other items of the test file; same subject first ([`ShotPool`]).
    pub shots: usize,
    /// The seed of the draw of examples (same seed, same prompts).
    pub seed: u64,
    /// The script of labels and cues.
    pub letters: LetterScript,
    /// Whether the whole (few-shot) prompt is one user turn of the model's chat template, the
    /// choices scored after its generation prompt.
    pub chat: bool,
    /// Requests per forward pass.
    pub batch_size: usize,
}

impl Default for McOptions {
    /// Text mode, zero shots, seed [`DEFAULT_SEED`], automatic script, no chat, batches of 8.
    fn default() -> Self {
        Self {
            mode: ChoiceMode::Text,
            shots: 0,
            seed: DEFAULT_SEED,
            letters: LetterScript::Auto,
            chat: false,
            batch_size: 8,
        }
    }
}

/// Accuracy over a set of items.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Accuracy {
    /// Items.
    pub n: usize,
    /// Fraction answered right by total log-likelihood.
    pub acc: f64,
    /// Fraction answered right by log-likelihood per character.
    pub acc_norm: f64,
}

/// Accuracy overall and per subject.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct McReport {
    /// All items.
    pub overall: Accuracy,
    /// Each subject (items without one are under `""`).
    pub subjects: BTreeMap<String, Accuracy>,
}

/// The prompt of `item` alone in Latin script, ending in `Answer:`.
pub fn question_prompt(item: &McItem, mode: ChoiceMode) -> String {
    question_prompt_in(item, mode, Script::Latin)
}

/// The continuation of choice `i` in Latin script (with its leading space).
pub fn choice_continuation(item: &McItem, i: usize, mode: ChoiceMode) -> String {
    choice_continuation_in(item, i, mode, Script::Latin)
}

/// The Latin-script context for item `index` with `shots` examples drawn from the other items
/// (seed [`DEFAULT_SEED`]).
pub fn few_shot_context(items: &[McItem], index: usize, shots: usize, mode: ChoiceMode) -> String {
    let options = McOptions {
        mode,
        shots,
        letters: LetterScript::Latin,
        ..McOptions::default()
    };
    item_prompt(items, index, &ShotPool::new(items, true), &options)
}

/// The prompt of item `index` under `options` (before any chat template): its examples from
/// `pool`, all in the item's script.
pub fn item_prompt(items: &[McItem], index: usize, pool: &ShotPool, options: &McOptions) -> String {
    let item = &items[index];
    let script = options.letters.for_item(item);
    let shots: Vec<&McItem> = pool
        .sample(item, index, options.shots, options.seed)
        .into_iter()
        .map(|i| &pool.items()[i])
        .collect();
    prompt_with_shots(item, &shots, options.mode, script)
}

/// The prompts of all `items` (before any chat template), examples drawn from `dev` when given,
/// else from the test items themselves.
pub fn item_prompts(items: &[McItem], dev: Option<&[McItem]>, options: &McOptions) -> Vec<String> {
    let pool = match dev {
        Some(dev) => ShotPool::new(dev, false),
        None => ShotPool::new(items, true),
    };
    (0..items.len())
        .map(|index| item_prompt(items, index, &pool, options))
        .collect()
}

/// `prompt` as the single user turn of the tokenizer's chat template, with the generation
/// prompt appended: the text the choices continue under `--chat`.
pub fn chat_context(tokenizer: &TextTokenizer, prompt: &str) -> Result<String> {
    Ok(tokenizer.apply_chat_template(&[ChatMessage::new("user", prompt)], true)?)
}

/// The choice picked by total log-likelihood and the one picked per character (first on ties).
pub fn pick(logprobs: &[f64], char_lengths: &[usize]) -> (usize, usize) {
    let argmax = |values: &mut dyn Iterator<Item = f64>| {
        let mut best = (0, f64::NEG_INFINITY);
        for (i, v) in values.enumerate() {
            if v > best.1 {
                best = (i, v);
            }
        }
        best.0
    };
    let acc = argmax(&mut logprobs.iter().copied());
    let norm = argmax(
        &mut logprobs
            .iter()
            .zip(char_lengths)
            .map(|(lp, n)| lp / (*n).max(1) as f64),
    );
    (acc, norm)
}

/// Scores every choice of every item and reports accuracy overall and per subject, examples
/// drawn from the test items themselves.
pub fn evaluate(pretrained: &PretrainedModel, items: &[McItem], options: McOptions) -> Result<McReport> {
    evaluate_with_dev(pretrained, items, None, options)
}

/// As [`evaluate`], examples drawn from `dev` when given.
pub fn evaluate_with_dev(
    pretrained: &PretrainedModel,
    items: &[McItem],
    dev: Option<&[McItem]>,
    options: McOptions,
) -> Result<McReport> {
    evaluate_observed(pretrained, items, dev, options, &NoScoreProgress)
}

/// As [`evaluate_with_dev`], telling `progress` after every batch (one request per choice of
/// every item).
pub fn evaluate_observed(
    pretrained: &PretrainedModel,
    items: &[McItem],
    dev: Option<&[McItem]>,
    options: McOptions,
    progress: &dyn ScoreProgress,
) -> Result<McReport> {
    let tokenizer = pretrained.tokenizer()?;
    let bos = pretrained.model.config.bos_token_id;
    let mut requests = Vec::new();
    let mut lengths = Vec::new();
    for (index, prompt) in item_prompts(items, dev, &options).into_iter().enumerate() {
        let item = &items[index];
        let script = options.letters.for_item(item);
        let context = if options.chat {
            chat_context(tokenizer, &prompt)?
        } else {
            prompt
        };
        for i in 0..item.choices.len() {
            let continuation = choice_continuation_in(item, i, options.mode, script);
            lengths.push(continuation.chars().count());
            let request = ScoreRequest::new(context.clone(), continuation);
            // A chat template places its own BOS.
            let encoded =
                encode_request_with(tokenizer, &request, bos, !options.chat).map_err(|e| match e {
                    EvalError::Input(m) => EvalError::Input(format!("item {}: {m}", index + 1)),
                    other => other,
                })?;
            requests.push(encoded);
        }
    }
    let scores = score_encoded_with(&pretrained.model, &requests, options.batch_size, progress)?;
    let mut correct: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let mut offset = 0;
    for item in items {
        let n = item.choices.len();
        let logprobs: Vec<f64> = scores[offset..offset + n].iter().map(|s| s.logprob).collect();
        let (acc, norm) = pick(&logprobs, &lengths[offset..offset + n]);
        offset += n;
        let entry = correct.entry(item.subject.clone()).or_default();
        entry.0 += 1;
        entry.1 += usize::from(acc == item.answer);
        entry.2 += usize::from(norm == item.answer);
    }
    let accuracy = |(n, acc, norm): (usize, usize, usize)| Accuracy {
        n,
        acc: acc as f64 / n.max(1) as f64,
        acc_norm: norm as f64 / n.max(1) as f64,
    };
    let total = correct
        .values()
        .fold((0, 0, 0), |t, c| (t.0 + c.0, t.1 + c.1, t.2 + c.2));
    Ok(McReport {
        overall: accuracy(total),
        subjects: correct.into_iter().map(|(s, c)| (s, accuracy(c))).collect(),
    })
}
