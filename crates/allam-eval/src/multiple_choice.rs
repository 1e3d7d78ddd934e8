//! Multiple-choice accuracy from continuation log-likelihoods, as lm-evaluation-harness scores it.
//!
//! Each choice is a continuation of the item's prompt ([`crate::formats`]): `acc` takes the choice
//! of highest log-likelihood, `acc_norm` the highest log-likelihood per character of the choice
//! (`len(choice)` in the harness: the target delimiter, the space before the choice, is not
//! counted), so longer answers are not penalised for their length. Ties go to the first choice,
//! as `numpy.argmax` breaks them.
use std::collections::BTreeMap;

use allam_model::{PretrainedModel, TextTokenizer};

use crate::chat::chat_item;
use crate::error::{EvalError, Result};
use crate::formats::{HouseStyle, Prompt, PromptFormat, RenderedItem, first_n};
use crate::loglik::{NoScoreProgress, ScoreProgress, score_encoded_with};
pub use crate::prompt::ChoiceMode;
use crate::prompt::{LetterScript, Script, choice_continuation_in, question_prompt_in};
use crate::request::{ScoreRequest, encode_request_with};
use crate::shots::{DEFAULT_SEED, ShotPool};
use crate::task::McItem;

/// Whether the scored text starts with the tokenizer's special tokens (`--bos`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Bos {
    /// Encode with the special tokens the tokenizer's post-processor adds (Llama-2 and Llama-3:
    /// BOS), as `transformers` encodes by default and lm-evaluation-harness does when
    /// `add_bos_token` is left unset.
    #[default]
    Tokenizer,
    /// Encode without special tokens (lm-evaluation-harness `add_bos_token=False`, its default
    /// before 0.4.5); an empty context still starts from BOS.
    None,
}

impl Bos {
    /// `tokenizer` or `none`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "tokenizer" => Ok(Self::Tokenizer),
            "none" => Ok(Self::None),
            other => Err(EvalError::Input(format!(
                "unknown BOS choice `{other}` (expected tokenizer or none)"
            ))),
        }
    }
}

/// The settings of one evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct McOptions {
    /// The prompt format.
    pub format: PromptFormat,
    /// Text or letters (house format only).
    pub mode: ChoiceMode,
    /// Solved examples before each question, from the dev items when given, else from the other
    /// items of the test file: the first ones of the question's group in file order for the
    /// reference formats, a seeded draw (same subject first, [`ShotPool`]) for the house format.
    pub shots: usize,
    /// The seed of the house format's draw of examples (same seed, same prompts).
    pub seed: u64,
    /// The script of labels and cues (house format only).
    pub letters: LetterScript,
    /// Whether the prompt goes through the model's chat template (the description as the system
    /// turn, examples and question as one user turn; lighteval's turns for the `-oall` formats),
    /// the choices scored right after its generation prompt ([`crate::chat`]).
    pub chat: bool,
    /// Whether the tokenizer's special tokens (BOS) start the scored text (never twice: not
    /// when the text, e.g. a chat template's, already starts with BOS).
    pub bos: Bos,
    /// Requests per forward pass.
    pub batch_size: usize,
}

impl Default for McOptions {
    /// House format in text mode, zero shots, seed [`DEFAULT_SEED`], automatic script, no chat,
    /// the tokenizer's BOS, batches of 8.
    fn default() -> Self {
        Self {
            format: PromptFormat::House,
            mode: ChoiceMode::Text,
            shots: 0,
            seed: DEFAULT_SEED,
            letters: LetterScript::Auto,
            chat: false,
            bos: Bos::Tokenizer,
            batch_size: 8,
        }
    }
}

impl McOptions {
    fn house(&self) -> HouseStyle {
        HouseStyle {
            mode: self.mode,
            letters: self.letters,
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
    /// Items whose prompt was longer than the model's context and lost tokens from the left.
    pub items_truncated: usize,
}

/// One scored item, as lm-evaluation-harness' `--log_samples` writes it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct McSample {
    /// The item's 0-based index in the test file.
    pub doc_id: usize,
    /// Its subject.
    pub subject: String,
    /// The full text the choices continue (examples, and chat template when used, included).
    pub context: String,
    /// Each choice's continuation, target delimiter included.
    pub continuations: Vec<String>,
    /// The log-likelihood of each continuation.
    pub logprobs: Vec<f64>,
    /// Whether each continuation is the greedy one.
    pub is_greedy: Vec<bool>,
    /// Each choice's length in characters, without the delimiter (the `acc_norm` divisor).
    pub choice_chars: Vec<usize>,
    /// The correct choice.
    pub gold: usize,
    /// The choice picked by total log-likelihood.
    pub pred: usize,
    /// The choice picked by log-likelihood per character.
    pub pred_norm: usize,
    /// 1 when `pred` is `gold`, else 0.
    pub acc: f64,
    /// 1 when `pred_norm` is `gold`, else 0.
    pub acc_norm: f64,
}

/// What an evaluation did, so that its number can be reproduced.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct McSettings {
    /// The prompt format's name.
    pub format: String,
    /// The reference it reproduces.
    pub reference: String,
    /// Solved examples per question.
    pub shots: usize,
    /// How they were chosen.
    pub shot_selection: String,
    /// The text between prompt and answer.
    pub target_delimiter: String,
    /// How `acc_norm` normalises.
    pub normalisation: String,
    /// What starts the scored text.
    pub bos: String,
    /// Whether the prompt went through the chat template.
    pub chat: bool,
}

/// The prompt of `item` alone in the house format, Latin script, ending in `Answer:`.
pub fn question_prompt(item: &McItem, mode: ChoiceMode) -> String {
    question_prompt_in(item, mode, Script::Latin)
}

/// The continuation of choice `i` in the house format, Latin script (with its leading space).
pub fn choice_continuation(item: &McItem, i: usize, mode: ChoiceMode) -> String {
    choice_continuation_in(item, i, mode, Script::Latin)
}

/// The house-format, Latin-script context for item `index` with `shots` examples drawn from the
/// other items (seed [`DEFAULT_SEED`]).
pub fn few_shot_context(items: &[McItem], index: usize, shots: usize, mode: ChoiceMode) -> Result<String> {
    let options = McOptions {
        mode,
        shots,
        letters: LetterScript::Latin,
        ..McOptions::default()
    };
    Ok(render_item(items, index, &ShotPool::new(items, true), &options)?.context)
}

/// Item `index` rendered under `options` without a chat template (whatever `options.chat`
/// says), its examples from `pool`.
pub fn render_item(
    items: &[McItem],
    index: usize,
    pool: &ShotPool,
    options: &McOptions,
) -> Result<RenderedItem> {
    Ok(render_prompt(items, index, pool, options)?.plain())
}

/// Item `index`'s prompt under `options`, as text and as chat turns, its examples from `pool`.
pub fn render_prompt(items: &[McItem], index: usize, pool: &ShotPool, options: &McOptions) -> Result<Prompt> {
    let item = &items[index];
    let format = options.format;
    let indices = if format.first_n() {
        first_n(
            pool.items(),
            pool.is_same_file(),
            item,
            index,
            options.shots,
            format.shot_group(),
        )?
    } else {
        pool.sample(item, index, options.shots, options.seed)
    };
    let shots: Vec<&McItem> = indices.into_iter().map(|i| &pool.items()[i]).collect();
    format.prompt(item, &shots, options.house()).map_err(|e| match e {
        EvalError::Input(m) => EvalError::Input(format!("item {}: {m}", index + 1)),
        other => other,
    })
}

/// The prompts of all `items` (text and chat turns), examples from `dev` when given, else from
/// the test items themselves.
pub fn render_prompts(items: &[McItem], dev: Option<&[McItem]>, options: &McOptions) -> Result<Vec<Prompt>> {
    let pool = match dev {
        Some(dev) => ShotPool::new(dev, false),
        None => ShotPool::new(items, true),
    };
    (0..items.len())
        .map(|index| render_prompt(items, index, &pool, options))
        .collect()
}

/// All `items` rendered without a chat template (whatever `options.chat` says), examples from
/// `dev` when given, else from the test items themselves.
pub fn render_items(
    items: &[McItem],
    dev: Option<&[McItem]>,
    options: &McOptions,
) -> Result<Vec<RenderedItem>> {
    Ok(render_prompts(items, dev, options)?
        .iter()
        .map(Prompt::plain)
        .collect())
}

/// All `items` as they are scored: through `tokenizer`'s chat template when `options.chat`
/// ([`chat_item`]), else as [`render_items`].
pub fn render_scored_items(
    tokenizer: &TextTokenizer,
    items: &[McItem],
    dev: Option<&[McItem]>,
    options: &McOptions,
) -> Result<Vec<RenderedItem>> {
    render_prompts(items, dev, options)?
        .iter()
        .enumerate()
        .map(|(index, prompt)| {
            if options.chat {
                chat_item(prompt, tokenizer).map_err(|e| match e {
                    EvalError::Input(m) => EvalError::Input(format!("item {}: {m}", index + 1)),
                    EvalError::Model(m) => EvalError::Input(format!("item {}: {m}", index + 1)),
                    other => other,
                })
            } else {
                Ok(prompt.plain())
            }
        })
        .collect()
}

/// The prompts of all `items` (before any chat template): [`render_items`]' contexts.
pub fn item_prompts(items: &[McItem], dev: Option<&[McItem]>, options: &McOptions) -> Result<Vec<String>> {
    Ok(render_items(items, dev, options)?
        .into_iter()
        .map(|r| r.context)
        .collect())
}

/// Whether `context` is encoded with the tokenizer's special tokens: under [`Bos::Tokenizer`]
/// unless it already starts with the BOS token (a chat template's), as lm-evaluation-harness'
/// `HFLM.tok_encode` decides (`has_bos_prefix`); never under [`Bos::None`].
pub fn adds_special_tokens(tokenizer: &TextTokenizer, bos: Bos, context: &str) -> bool {
    let starts_with_bos = tokenizer
        .bos_token()
        .is_some_and(|token| !token.is_empty() && context.starts_with(token));
    bos == Bos::Tokenizer && !starts_with_bos
}

/// The choice picked by total log-likelihood and the one picked per character (first on ties);
/// `char_lengths` are the choices' lengths without the target delimiter.
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

/// The settings of an evaluation of `pretrained` under `options`, `dev` telling whether a dev
/// split was given.
pub fn settings(pretrained: &PretrainedModel, options: &McOptions, dev: bool) -> Result<McSettings> {
    let format = options.format;
    let source = if dev {
        "the dev split"
    } else {
        "the test file (the question itself left out)"
    };
    let shot_selection = if options.shots == 0 {
        "none".to_string()
    } else if format.first_n() {
        let group = match format.shot_group() {
            crate::formats::ShotGroup::Subject => " with the question's subject",
            crate::formats::ShotGroup::LevelSubject => " with the question's level and subject",
            crate::formats::ShotGroup::Whole => "",
        };
        format!(
            "first_n: the first {} items{group} in {source}, in file order",
            options.shots
        )
    } else {
        format!(
            "seeded draw (seed {}) from {source}, same subject first",
            options.seed
        )
    };
    let tokenizer = pretrained.tokenizer()?;
    let bos = match options.bos {
        Bos::None => "none (no special tokens; an empty context starts from BOS)".to_string(),
        Bos::Tokenizer => {
            let first = tokenizer.encode("a", true)?.first().copied();
            match (first, pretrained.model.config.bos_token_id) {
                (Some(id), Some(bos)) if id == bos => {
                    let token = tokenizer.inner().id_to_token(id).unwrap_or_default();
                    format!("tokenizer: adds {token} (id {id}) unless the text starts with it")
                }
                _ => "tokenizer: adds none".to_string(),
            }
        }
    };
    let mut name = format.name().to_string();
    if format == PromptFormat::House {
        let mode = match options.mode {
            ChoiceMode::Text => "text",
            ChoiceMode::Letters => "letters",
        };
        let letters = match options.letters {
            LetterScript::Latin => "latin",
            LetterScript::Arabic => "arabic",
            LetterScript::Auto => "auto",
        };
        name = format!("house (mode {mode}, letters {letters})");
    }
    Ok(McSettings {
        format: name,
        reference: format.reference().to_string(),
        shots: options.shots,
        shot_selection,
        // Under a chat template the choices follow the generation prompt directly.
        target_delimiter: if options.chat {
            String::new()
        } else {
            format.target_delimiter().to_string()
        },
        normalisation:
            "acc_norm = argmax of log-likelihood / characters of the choice without the target delimiter"
                .to_string(),
        bos,
        chat: options.chat,
    })
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
    Ok(evaluate_samples(pretrained, items, dev, options)?.0)
}

/// As [`evaluate_with_dev`], with every item's sample (prompt, continuations, log-likelihoods,
/// predictions, gold) in file order.
pub fn evaluate_samples(
    pretrained: &PretrainedModel,
    items: &[McItem],
    dev: Option<&[McItem]>,
    options: McOptions,
) -> Result<(McReport, Vec<McSample>)> {
    evaluate_observed(pretrained, items, dev, options, &NoScoreProgress)
}

/// As [`evaluate_samples`], telling `progress` after every batch (one request per choice of
/// every item).
pub fn evaluate_observed(
    pretrained: &PretrainedModel,
    items: &[McItem],
    dev: Option<&[McItem]>,
    options: McOptions,
    progress: &dyn ScoreProgress,
) -> Result<(McReport, Vec<McSample>)> {
    let tokenizer = pretrained.tokenizer()?;
    let bos = pretrained.model.config.bos_token_id;
    let rendered = render_scored_items(tokenizer, items, dev, &options)?;
    let mut requests = Vec::new();
    for (index, item) in rendered.iter().enumerate() {
        let special_tokens = adds_special_tokens(tokenizer, options.bos, &item.context);
        for continuation in &item.continuations {
            let request = ScoreRequest::new(item.context.clone(), continuation.clone());
            let encoded =
                encode_request_with(tokenizer, &request, bos, special_tokens).map_err(|e| match e {
                    EvalError::Input(m) => EvalError::Input(format!("item {}: {m}", index + 1)),
                    other => other,
                })?;
            requests.push(encoded);
        }
    }
    let scores = score_encoded_with(&pretrained.model, &requests, options.batch_size, progress)?;
    let mut correct: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let mut samples = Vec::with_capacity(items.len());
    let mut offset = 0;
    let mut items_truncated = 0;
    for (doc_id, (item, rendered)) in items.iter().zip(rendered).enumerate() {
        let n = rendered.continuations.len();
        let scores = &scores[offset..offset + n];
        offset += n;
        items_truncated += usize::from(scores.iter().any(|s| s.context_tokens_dropped > 0));
        let logprobs: Vec<f64> = scores.iter().map(|s| s.logprob).collect();
        let choice_chars: Vec<usize> = rendered.choices.iter().map(|c| c.chars().count()).collect();
        let (pred, pred_norm) = pick(&logprobs, &choice_chars);
        let entry = correct.entry(item.subject.clone()).or_default();
        entry.0 += 1;
        entry.1 += usize::from(pred == item.answer);
        entry.2 += usize::from(pred_norm == item.answer);
        samples.push(McSample {
            doc_id,
            subject: item.subject.clone(),
            context: rendered.context,
            continuations: rendered.continuations,
            is_greedy: scores.iter().map(|s| s.is_greedy).collect(),
            logprobs,
            choice_chars,
            gold: item.answer,
            pred,
            pred_norm,
            acc: f64::from(u8::from(pred == item.answer)),
            acc_norm: f64::from(u8::from(pred_norm == item.answer)),
        });
    }
    let accuracy = |(n, acc, norm): (usize, usize, usize)| Accuracy {
        n,
        acc: acc as f64 / n.max(1) as f64,
        acc_norm: norm as f64 / n.max(1) as f64,
    };
    let total = correct
        .values()
        .fold((0, 0, 0), |t, c| (t.0 + c.0, t.1 + c.1, t.2 + c.2));
    let report = McReport {
        overall: accuracy(total),
        subjects: correct.into_iter().map(|(s, c)| (s, accuracy(c))).collect(),
        items_truncated,
    };
    Ok((report, samples))
}
