//! Multiple-choice task files, read into one item shape: EXAMS, generic JSON Lines (and MMLU's
//! `datasets` export), MMLU's original CSV, ACVA (true/false statements) and Arabic MMLU (JSON
//! Lines or CSV with a header).
use std::path::Path;

use serde_json::Value;

use crate::csv::{csv_records_with_header, named_record, parse_csv};
use crate::error::{EvalError, Result};
use crate::jsonl::{JsonlRecord, parse_jsonl};

/// ACVA's two choices, in order: "true" then "false".
pub const ACVA_CHOICES: [&str; 2] = ["صح", "خطأ"];

/// One multiple-choice question.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct McItem {
    /// The question text, as the file gives it.
    pub question: String,
    /// A passage the question is about (Arabic MMLU's `Context`), as the file gives it; `""`
    /// when there is none.
    pub context: String,
    /// The answer texts, in order.
    pub choices: Vec<String>,
    /// The letter (or other) label of each choice (`A`, `B`, ... unless the file says).
    pub labels: Vec<String>,
    /// The index of the correct choice.
    pub answer: usize,
    /// The subject, for the per-subject breakdown (`""` when the file has none).
    pub subject: String,
    /// The language the file gives (`"ar"`, `"en"`, ...; `""` when it gives none, and then
    /// the prompt language follows the question's script).
    pub language: String,
    /// The school level (Arabic MMLU's `Level`: `Primary`, `Middle`, `High`, `Univ`, `Prof`;
    /// `""` when none).
    pub level: String,
    /// The country the question comes from (Arabic MMLU's `Country`, e.g. `KSA`; `""` when none).
    pub country: String,
}

/// Arabic MMLU's levels, as its files spell them.
pub const ARABIC_MMLU_LEVELS: [&str; 5] = ["Primary", "Middle", "High", "Univ", "Prof"];

/// The file formats read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskFormat {
    /// EXAMS: `question.stem`, `question.choices[{text, label}]`, `answerKey` (a label),
    /// subject from `info.subject` or `subject`; or the Arabic leaderboard's export
    /// (`OALL/Arabic_EXAMS`: `question` a string, `A` ... `D`, `answer` a letter, `subject`).
    Exams,
    /// Generic JSON Lines (also MMLU as exported by `datasets`): `question`, `choices` (strings),
    /// `answer` (the index of the correct choice), optional `subject` and `language` (`id` and
    /// other keys ignored).
    McJsonl,
    /// MMLU's original CSV: rows `question,A,B,C,D,answer_letter`, no header; the subject is
    /// the file name without `_test`/`_dev`/`_val` (as `abstract_algebra_test.csv`).
    MmluCsv,
    /// ACVA: `question` (a statement), `answer` (`صح` or `خطأ`), optional `subject` (`id`
    /// ignored); two choices, [`ACVA_CHOICES`].
    Acva,
    /// Arabic MMLU (JSON Lines, or CSV with a header row): `Question`, optional `Context` (the
    /// passage the question is about), `Option 1` ... `Option 5` (empty or missing ones skipped),
    /// `Answer Key` (`A`-`E` or `أ` `ب` `ج` `د` `هـ`), optional `Subject`, `Level`
    /// ([`ARABIC_MMLU_LEVELS`]) and `Country`.
    ArabicMmlu,
}

impl TaskFormat {
    /// The format named `exams`, `mc-jsonl`, `mmlu` (MMLU's JSON Lines have the generic shape),
    /// `mmlu-csv`, `acva` or `arabic-mmlu`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "exams" => Ok(Self::Exams),
            "mc-jsonl" | "mmlu" => Ok(Self::McJsonl),
            "mmlu-csv" => Ok(Self::MmluCsv),
            "acva" => Ok(Self::Acva),
            "arabic-mmlu" => Ok(Self::ArabicMmlu),
            other => Err(EvalError::Input(format!(
                "unknown task format `{other}` (expected exams, mc-jsonl, mmlu, mmlu-csv, acva or arabic-mmlu)"
            ))),
        }
    }

    /// The format named `name` for the file `path`: as [`TaskFormat::from_name`], except that
    /// `mmlu` with a `.csv` file is MMLU's original CSV.
    pub fn for_file(name: &str, path: &Path) -> Result<Self> {
        let format = Self::from_name(name)?;
        Ok(if name == "mmlu" && is_csv(path) {
            Self::MmluCsv
        } else {
            format
        })
    }
}

/// Whether `path` ends in `.csv` (any case).
fn is_csv(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

/// Reads every item of a task file (Arabic MMLU as CSV when the name ends in `.csv`).
pub fn read_items(path: &Path, format: TaskFormat) -> Result<Vec<McItem>> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    let records = match format {
        TaskFormat::MmluCsv => mmlu_csv_records(&text, path)?,
        TaskFormat::ArabicMmlu if is_csv(path) => csv_records_with_header(&text, path)?,
        _ => parse_jsonl(&text, path)?,
    };
    records
        .iter()
        .map(|record| parse_item(record, path, format))
        .collect()
}

/// MMLU CSV rows as records with `question`, `A`...`D`, `answer` and `subject` (from the file name).
fn mmlu_csv_records(text: &str, path: &Path) -> Result<Vec<JsonlRecord>> {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let subject = ["_test", "_dev", "_val"]
        .iter()
        .find_map(|suffix| stem.strip_suffix(suffix))
        .unwrap_or(stem)
        .to_string();
    const COLUMNS: [&str; 6] = ["question", "A", "B", "C", "D", "answer"];
    parse_csv(text, path)?
        .into_iter()
        .map(|row| {
            if row.fields.len() != COLUMNS.len() {
                return Err(EvalError::format(
                    path,
                    row.line,
                    format!(
                        "{} field(s): MMLU rows are question,A,B,C,D,answer",
                        row.fields.len()
                    ),
                ));
            }
            let pairs = COLUMNS.iter().map(|c| c.to_string()).zip(row.fields);
            let subject = ("subject".to_string(), subject.clone());
            Ok(named_record(row.line, pairs.chain([subject])))
        })
        .collect()
}

/// A string field that may be absent, `null` or empty (all `None`), trimmed.
fn optional_str<'a>(record: &'a JsonlRecord, key: &str) -> Option<&'a str> {
    record
        .object
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The index of an answer letter: `A`-`E` (any case) or the Arabic `أ` `ب` `ج` `د` `هـ`.
fn letter_index(key: &str) -> Option<usize> {
    match key.trim() {
        "A" | "a" | "أ" | "ا" => Some(0),
        "B" | "b" | "ب" => Some(1),
        "C" | "c" | "ج" => Some(2),
        "D" | "d" | "د" => Some(3),
        "E" | "e" | "هـ" | "ه" => Some(4),
        _ => None,
    }
}

/// Reads one line of a task file.
pub fn parse_item(record: &JsonlRecord, path: &Path, format: TaskFormat) -> Result<McItem> {
    let bad = |message: String| EvalError::format(path, record.line, message);
    let item = match format {
        TaskFormat::Exams => exams_item(record, path)?,
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
                language: optional_str(record, "language").unwrap_or_default().to_string(),
                ..McItem::default()
            }
        }
        TaskFormat::MmluCsv => {
            let choices = ["A", "B", "C", "D"]
                .iter()
                .map(|c| record.string(c, path).map(str::to_string))
                .collect::<Result<Vec<_>>>()?;
            let key = record.string("answer", path)?;
            let answer =
                letter_index(key).ok_or_else(|| bad(format!("answer {key:?} must be one of A, B, C, D")))?;
            McItem {
                question: record.string("question", path)?.to_string(),
                labels: letters(choices.len()),
                choices,
                answer,
                subject: optional_str(record, "subject").unwrap_or_default().to_string(),
                ..McItem::default()
            }
        }
        TaskFormat::Acva => {
            let question = record.string("question", path)?;
            let key = record.string("answer", path)?;
            let answer = ACVA_CHOICES
                .iter()
                .position(|c| *c == key.trim())
                .ok_or_else(|| bad(format!("`answer` {key:?} must be \"صح\" or \"خطأ\"")))?;
            McItem {
                question: question.to_string(),
                choices: ACVA_CHOICES.iter().map(|c| c.to_string()).collect(),
                labels: letters(2),
                answer,
                subject: optional_str(record, "subject").unwrap_or_default().to_string(),
                ..McItem::default()
            }
        }
        TaskFormat::ArabicMmlu => arabic_mmlu_item(record, path)?,
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

/// An EXAMS line: EXAMS' own schema (`question.stem`, `question.choices[{text, label}]`,
/// `answerKey`, `info.subject`, `info.language`) or the Arabic leaderboard's (`OALL/Arabic_EXAMS`:
/// `question` a string, `A` ... `D`, `answer` a letter, `subject`).
fn exams_item(record: &JsonlRecord, path: &Path) -> Result<McItem> {
    let bad = |message: String| EvalError::format(path, record.line, message);
    let question = record
        .object
        .get("question")
        .ok_or_else(|| bad("missing `question`".into()))?;
    if let Some(stem) = question.as_str() {
        let choices = ["A", "B", "C", "D"]
            .iter()
            .map(|c| record.string(c, path).map(str::to_string))
            .collect::<Result<Vec<_>>>()?;
        let key = record.string("answer", path)?;
        let answer = ["A", "B", "C", "D"]
            .iter()
            .position(|l| *l == key.trim())
            .ok_or_else(|| bad(format!("`answer` {key:?} must be one of A, B, C, D")))?;
        return Ok(McItem {
            question: stem.to_string(),
            labels: letters(choices.len()),
            choices,
            answer,
            subject: optional_str(record, "subject").unwrap_or_default().to_string(),
            ..McItem::default()
        });
    }
    let stem = question
        .get("stem")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("`question` must be a string or have a string `stem`".into()))?;
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
    let info = |key: &str| {
        record
            .object
            .get("info")
            .and_then(|i| i.get(key))
            .or_else(|| record.object.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Ok(McItem {
        question: stem.to_string(),
        choices: texts,
        labels,
        answer,
        subject: info("subject"),
        language: info("language"),
        ..McItem::default()
    })
}

/// An Arabic MMLU line: `Question`, `Context`, `Option 1` ... `Option 5`, `Answer Key`,
/// `Subject`, `Level`, `Country`. Texts are kept as the file gives them (the reference prompts
/// do not trim them); an option is missing when it is absent, `null` or blank.
fn arabic_mmlu_item(record: &JsonlRecord, path: &Path) -> Result<McItem> {
    let bad = |message: String| EvalError::format(path, record.line, message);
    let raw = |key: &str| -> Option<String> {
        match record.object.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    };
    let question = record.string("Question", path)?.to_string();
    let mut choices = Vec::new();
    let mut positions = Vec::new();
    for n in 1..=5 {
        if let Some(option) = raw(&format!("Option {n}")) {
            positions.push(n - 1);
            choices.push(option);
        }
    }
    let key = record.string("Answer Key", path)?;
    let option = letter_index(key)
        .ok_or_else(|| bad(format!("`Answer Key` {key:?} must be a letter A-E or أ ب ج د هـ")))?;
    let answer = positions.iter().position(|&p| p == option).ok_or_else(|| {
        bad(format!(
            "`Answer Key` {key:?} names `Option {}`, which is empty or missing",
            option + 1
        ))
    })?;
    let level = optional_str(record, "Level").unwrap_or_default().to_string();
    if !level.is_empty() && !ARABIC_MMLU_LEVELS.contains(&level.as_str()) {
        return Err(bad(format!(
            "`Level` {level:?} must be one of {ARABIC_MMLU_LEVELS:?} (or empty)"
        )));
    }
    Ok(McItem {
        question,
        context: raw("Context").unwrap_or_default(),
        labels: letters(choices.len()),
        choices,
        answer,
        subject: optional_str(record, "Subject").unwrap_or_default().to_string(),
        level,
        country: optional_str(record, "Country").unwrap_or_default().to_string(),
        ..McItem::default()
    })
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
