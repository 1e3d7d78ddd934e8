//! Multiple-choice accuracy from continuation log-likelihoods, as lm-evaluation-harness scores it.
//!
//! Each choice is a continuation of the question's prompt. In [`ChoiceMode::Text`] the continuation
//! is the choice's text: `acc` takes the choice of highest log-likelihood, `acc_norm` the highest
//! log-likelihood per character (so longer answers are not penalised for their length). In
//! [`ChoiceMode::Letters`] the prompt lists the labelled choices and the continuation is the label.
use std::collections::BTreeMap;

use allam_model::PretrainedModel;

use crate::error::Result;
use crate::loglik::score_requests;
use crate::request::ScoreRequest;
use crate::task::McItem;

/// What a choice's continuation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChoiceMode {
    /// The answer text, after `Answer:`.
    Text,
    /// The answer's label (`A`, `B`, ...), after a prompt listing the labelled choices.
    Letters,
}

/// The settings of one evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct McOptions {
    /// Text or letters.
    pub mode: ChoiceMode,
    /// Solved examples before each question (taken from other items of the file, same subject
    /// first).
    pub shots: usize,
    /// Requests per forward pass.
    pub batch_size: usize,
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

/// The prompt of `item` alone, ending in `Answer:`.
pub fn question_prompt(item: &McItem, mode: ChoiceMode) -> String {
    let mut prompt = format!("Question: {}\n", item.question.trim());
    if mode == ChoiceMode::Letters {
        for (label, choice) in item.labels.iter().zip(&item.choices) {
            prompt.push_str(&format!("{label}. {}\n", choice.trim()));
        }
    }
    prompt.push_str("Answer:");
    prompt
}

/// The continuation of choice `i` (with its leading space).
pub fn choice_continuation(item: &McItem, i: usize, mode: ChoiceMode) -> String {
    match mode {
        ChoiceMode::Text => format!(" {}", item.choices[i].trim()),
        ChoiceMode::Letters => format!(" {}", item.labels[i]),
    }
}

/// The full context for item `index`: `shots` solved examples, then its question.
pub fn few_shot_context(items: &[McItem], index: usize, shots: usize, mode: ChoiceMode) -> String {
    let item = &items[index];
    let same = items
        .iter()
        .enumerate()
        .filter(|(i, other)| *i != index && other.subject == item.subject);
    let rest = items
        .iter()
        .enumerate()
        .filter(|(i, other)| *i != index && other.subject != item.subject);
    let mut context = String::new();
    for (_, shot) in same.chain(rest).take(shots) {
        context.push_str(&question_prompt(shot, mode));
        context.push_str(&choice_continuation(shot, shot.answer, mode));
        context.push_str("\n\n");
    }
    context.push_str(&question_prompt(item, mode));
    context
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

/// Scores every choice of every item and reports accuracy overall and per subject.
pub fn evaluate(pretrained: &PretrainedModel, items: &[McItem], options: McOptions) -> Result<McReport> {
    let mut requests = Vec::new();
    let mut lengths = Vec::new();
    for index in 0..items.len() {
        let context = few_shot_context(items, index, options.shots, options.mode);
        for i in 0..items[index].choices.len() {
            let continuation = choice_continuation(&items[index], i, options.mode);
            lengths.push(continuation.chars().count());
            requests.push(ScoreRequest::new(context.clone(), continuation));
        }
    }
    let scores = score_requests(pretrained, &requests, options.batch_size)?;
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
