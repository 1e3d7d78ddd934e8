//! Multiple-choice task files: EXAMS and generic JSON Lines, read into one item shape.
use std::path::Path;

use serde_json::Value;

use crate::error::{EvalError, Result};
use crate::jsonl::{JsonlRecord, read_jsonl};

/// One multiple-choice question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct McItem {
    /// The question text.
    pub question: String,
    /// The answer texts, in order.
    pub choices: Vec<String>,
    /// The letter (or other) label of each choice (`A`, `B`, ... unless the file says).
    pub labels: Vec<String>,
    /// The index of the correct choice.
    pub answer: usize,
    /// The subject, for the per-subject breakdown (`""` when the file has none).
    pub subject: String,
}

/// The file formats read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskFormat {
    /// EXAMS: `question.stem`, `question.choices[{text, label}]`, `answerKey` (a label),
    /// subject from `info.subject` or `subject`.
    Exams,
    /// Generic JSON Lines (also MMLU as exported by `datasets`): `question`, `choices` (strings),
    /// `answer` (the index of the correct choice), optional `subject`.
    McJsonl,
}

impl TaskFormat {
    /// The format named `exams`, `mc-jsonl` or `mmlu` (MMLU's JSON Lines have the generic shape).
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "exams" => Ok(Self::Exams),
            "mc-jsonl" | "mmlu" => Ok(Self::McJsonl),
            other => Err(EvalError::Input(format!(
                "unknown task format `{other}` (expected exams, mc-jsonl or mmlu)"
            ))),
        }
    }
}

/// Reads every item of a task file.
pub fn read_items(path: &Path, format: TaskFormat) -> Result<Vec<McItem>> {
    read_jsonl(path)?
        .iter()
        .map(|record| parse_item(record, path, format))
        .collect()
}

/// Reads one line of a task file.
pub fn parse_item(record: &JsonlRecord, path: &Path, format: TaskFormat) -> Result<McItem> {
    let bad = |message: String| EvalError::format(path, record.line, message);
    let item = match format {
        TaskFormat::Exams => {
            let question = record
                .object
                .get("question")
                .ok_or_else(|| bad("missing `question`".into()))?;
            let stem = question
                .get("stem")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("`question.stem` must be a string".into()))?;
            let choices = question
                .get("choices")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("`question.choices` must be an array".into()))?;
            let mut texts = Vec::new();
            let mut labels = Vec::new();
            for (i, choice) in choices.iter().enumerate() {
                let field = |key: &str| {
                    choice
                        .get(key)
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad(format!("`question.choices[{i}].{key}` must be a string")))
                };
                texts.push(field("text")?.to_string());
                labels.push(field("label")?.to_string());
            }
            let key = record.string("answerKey", path)?;
            let answer = labels
                .iter()
                .position(|l| l == key)
                .ok_or_else(|| bad(format!("`answerKey` {key:?} is not one of the labels {labels:?}")))?;
            let subject = record
                .object
                .get("info")
                .and_then(|i| i.get("subject"))
                .or_else(|| record.object.get("subject"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            McItem {
                question: stem.to_string(),
                choices: texts,
                labels,
                answer,
                subject: subject.to_string(),
            }
        }
        TaskFormat::McJsonl => {
            let question = record.string("question", path)?;
            let choices = record
                .object
                .get("choices")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("`choices` must be an array of strings".into()))?
                .iter()
                .map(|c| c.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad("`choices` must be an array of strings".into()))?;
            let answer = record
                .object
                .get("answer")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("`answer` must be the index of the correct choice".into()))?
                as usize;
            let subject = record.object.get("subject").and_then(Value::as_str);
            McItem {
                question: question.to_string(),
                labels: letters(choices.len()),
                choices,
                answer,
                subject: subject.unwrap_or_default().to_string(),
            }
        }
    };
    if item.choices.len() < 2 {
        return Err(bad(format!(
            "{} choice(s): at least two are needed",
            item.choices.len()
        )));
    }
    if item.answer >= item.choices.len() {
        return Err(bad(format!(
            "answer {} is out of range for {} choices",
            item.answer,
            item.choices.len()
        )));
    }
    Ok(item)
}

/// `A`, `B`, `C`, ... (`A1`... past `Z`, where no test goes).
fn letters(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match u8::try_from(i).ok().filter(|&i| i < 26) {
            Some(i) => char::from(b'A' + i).to_string(),
            None => format!("A{i}"),
        })
        .collect()
}
