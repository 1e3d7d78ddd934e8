//! Prompt formats: how an item, its solved examples and its choices become the text that is
//! scored. Each task's default is its reference prompt, reproduced byte for byte, so that a number
//! measured here can be compared with a published one; the house prompt ([`crate::prompt`]) stays
//! as the named alternative `house`.
//!
//! Every format is assembled the way lm-evaluation-harness assembles a `multiple_choice` task:
//!
//! ```text
//! context      = description + Σ over shots (doc_text(shot) + delimiter + choices(shot)[gold] + "\n\n")
//!                + doc_text(item)
//! continuation = delimiter + choices(item)[i]
//! acc_norm     = argmax_i loglik_i / chars(choices(item)[i])      (the delimiter is not counted)
//! ```
//!
//! | format | reference | description | doc_text | choices | shots |
//! |---|---|---|---|---|---|
//! | `mmlu` | lm-evaluation-harness `tasks/mmlu/default` | `The following are multiple choice questions (with answers) about {subject}.\n\n` | `{question.strip()}\nA. …\nB. …\nC. …\nD. …\nAnswer:` | `A` `B` `C` `D` | first k of the subject's dev items |
//! | `arabic-mmlu` | lm-evaluation-harness `tasks/arabicmmlu` | — | `This is a {Subject} question{ for level}{ in Country}. Select the correct answer!\n\nQuestion: {Context\n\n}{Question}\nA. …\n…\n\nAnswer:` | `A` … `E` | first k of the group's (level and subject) dev items |
//! | `arabic-mmlu-ar` | ArabicMMLU `util_prompt.py` `prepare_data_ar` | — | `هذا سؤال {subject}{ level}{ country}. اختر الإجابة الصحيحة!\n\nسؤال: {Context\n\n}{Question}\nأ- …\n…\n\nإجابة: ` | `أ` `ب` `ج` `د` `ه` (no delimiter: the cue ends in a space) | as `arabic-mmlu` (the original is 0-shot) |
//! | `arabic-exams` | Arabic leaderboard `arabic_exams` | — | `الأسئلة التالية هي أسئلة متعددة الإختيارات مع الجواب الصحيح حول {subject}. \n\nالسؤال: {question}\n أ) …\n\n ب) …\n…\nالإجابة:` | `أ` `ب` `ج` `د` | first k of the validation file |
//! | `acva` | Arabic leaderboard `arabic_leaderboard_acva` | — | `السؤال: {statement}\nالإجابة:` | `صح` `خطأ` | first k of the subject's validation items |
//! | `arabic-exams-oall` | lighteval ≤ 0.10 `arabic_exams` (the Open Arabic LLM Leaderboard's runs) | the EXAMS instruction with the question's subject, once | `السؤال: {question}\n أ) …\nالإجابة:` | `أ` … `د`, no delimiter | as `arabic-exams`; the leaderboard ran 0-shot |
//! | `acva-oall` | lighteval ≤ 0.10 `acva` | — | as `acva` | `صح` `خطأ`, no delimiter | as `acva`; the leaderboard ran 0-shot |
//! | `house` | this project | — | [`crate::prompt`] | the choice texts or labels | a seeded draw, same subject first |
//!
//! The references, read at lm-evaluation-harness commit 4e7e0d47 and ArabicMMLU commit 8d5b148b:
//! `lm_eval/tasks/mmlu/default/_default_template_yaml` (+ one `mmlu_<subject>.yaml` per subject
//! for the description), `lm_eval/tasks/arabicmmlu/utils.py` and
//! `_default_arabicmmlu_template_yaml`, `lm_eval/tasks/arabic_leaderboard_complete/
//! arabic_leaderboard_arabic_exams/{utils.py,arabic_exams.yaml}` and `…/arabic_leaderboard_avca/
//! {utils.py,arabic_leaderboard_acva_<subset>.yaml}` (the prompt text of lighteval's community
//! `arabic_evals.py`, assembled as lm-evaluation-harness assembles it: the EXAMS instruction in
//! every example, a `" "` before each answer), `lm_eval/api/task.py`
//! (`fewshot_context`, `build_qa_turn`: target delimiter `" "`, few-shot delimiter `"\n\n"`) and
//! `lm_eval/api/samplers.py` (`first_n`); mbzuai-nlp/ArabicMMLU `util_prompt.py` and
//! `util_compute.py`.
//!
//! The Open Arabic LLM Leaderboard ran lighteval (v1 and v2, 0-shot) whose prompt manager, up to
//! v0.10 (`few_shot_manager.py` / `prompt_manager.py`), writes the same text differently: no
//! delimiter between the cue and the answer (the scored continuations are `صح`, `أ`, not ` صح`),
//! and the EXAMS instruction once, the question's, before all examples — the `-oall` formats.
//! lighteval ≥ 0.11 assembles few-shot prompts differently again (not reproduced).
//!
//! Under a chat template (`--chat`, [`crate::chat`]) each format hands its reference's turns to
//! the template ([`Prompt::messages`]). lm-evaluation-harness 0.4.13 (`fewshot_as_multiturn`
//! off): the description alone is the system turn, the examples and the question one user turn
//! (the examples keep their `" "` before the answer), and the choices follow the generation
//! prompt with no delimiter. lighteval 0.10: one user turn per example and one assistant turn
//! with its answer, the instruction at the start of the first user turn, no system turn.
//! `arabic-mmlu-ar` (the original has no chat mode) and `house` take the harness' turns.
//!
//! The goldens in `tests/golden/` are these texts as the references themselves render them
//! (`scripts/make_eval_goldens.py`).
use allam_model::ChatMessage;

use crate::error::{EvalError, Result};
use crate::prompt::{ChoiceMode, LetterScript, choice_in, question_prompt_in};
use crate::task::McItem;

/// A prompt format (`--format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PromptFormat {
    /// lm-evaluation-harness' `mmlu`: subject header, `A.`-`D.` lines, `Answer:`, letter
    /// continuations.
    Mmlu,
    /// lm-evaluation-harness' `arabicmmlu`: the English meta prompt of ArabicMMLU
    /// (`prepare_data_en`), Latin letters. What published lm-evaluation-harness numbers use.
    ArabicMmlu,
    /// ArabicMMLU's own Arabic prompt (`prepare_data_ar`, the paper's default): Arabic header,
    /// `أ-` labels, `إجابة:` cue.
    ArabicMmluAr,
    /// The Arabic leaderboard's EXAMS prompt: Arabic instruction, ` أ)` labels, `الإجابة:`.
    ArabicExams,
    /// The Arabic leaderboard's ACVA prompt: the statement, `الإجابة:`, `صح` or `خطأ`.
    Acva,
    /// EXAMS as lighteval ≤ 0.10 (the Open Arabic LLM Leaderboard) assembles it: the instruction
    /// once, no delimiter before the answer letter.
    ArabicExamsOall,
    /// ACVA as lighteval ≤ 0.10 assembles it: no delimiter before `صح` / `خطأ`.
    AcvaOall,
    /// This project's prompt: `Question:`/`السؤال:`, choice texts or labels (`--mode`), Latin or
    /// Arabic labels (`--letters`), seeded examples.
    #[default]
    House,
}

/// Every format's name, in the order of [`PromptFormat::from_name`]'s message.
pub const FORMAT_NAMES: [&str; 8] = [
    "mmlu",
    "arabic-mmlu",
    "arabic-mmlu-ar",
    "arabic-exams",
    "acva",
    "arabic-exams-oall",
    "acva-oall",
    "house",
];

/// Which items share one pool of solved examples (one lm-evaluation-harness task each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShotGroup {
    /// Items of the same subject (MMLU, ACVA: one task per subject).
    Subject,
    /// Items of the same level and subject (Arabic MMLU: one task per group such as
    /// `Univ Accounting`).
    LevelSubject,
    /// The whole file (EXAMS: one task).
    Whole,
}

/// An item rendered for scoring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedItem {
    /// The text the choices continue (the chat template's output under `--chat`).
    pub context: String,
    /// Each choice's continuation, target delimiter included.
    pub continuations: Vec<String>,
    /// Each choice without the delimiter: what `acc_norm` divides by (in characters).
    pub choices: Vec<String>,
}

/// An item's prompt in both of the shapes its reference scores: plain text, or turns for a chat
/// template ([`crate::chat::chat_item`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    /// The context without a chat template: description, examples, question.
    pub text: String,
    /// The same prompt as the turns the reference gives a chat template (`system`, `user`,
    /// `assistant`), the last one the question's user turn.
    pub messages: Vec<ChatMessage>,
    /// The text between the context and each choice without a chat template (under one it is
    /// `""`, as lm-evaluation-harness and lighteval score it).
    pub delimiter: &'static str,
    /// Each choice without the delimiter: what `acc_norm` divides by (in characters).
    pub choices: Vec<String>,
}

impl Prompt {
    /// The item as scored without a chat template: `text`, each choice after the delimiter.
    pub fn plain(&self) -> RenderedItem {
        RenderedItem {
            context: self.text.clone(),
            continuations: self
                .choices
                .iter()
                .map(|c| format!("{}{c}", self.delimiter))
                .collect(),
            choices: self.choices.clone(),
        }
    }
}

/// The settings of the house format (ignored by the reference formats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HouseStyle {
    /// Text or letters.
    pub mode: ChoiceMode,
    /// The script of labels and cues.
    pub letters: LetterScript,
}

impl PromptFormat {
    /// The format named by one of [`FORMAT_NAMES`].
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "mmlu" => Self::Mmlu,
            "arabic-mmlu" => Self::ArabicMmlu,
            "arabic-mmlu-ar" => Self::ArabicMmluAr,
            "arabic-exams" => Self::ArabicExams,
            "acva" => Self::Acva,
            "arabic-exams-oall" => Self::ArabicExamsOall,
            "acva-oall" => Self::AcvaOall,
            "house" => Self::House,
            other => {
                return Err(EvalError::Input(format!(
                    "unknown prompt format `{other}` (expected {})",
                    FORMAT_NAMES.join(", ")
                )));
            }
        })
    }

    /// The format's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mmlu => "mmlu",
            Self::ArabicMmlu => "arabic-mmlu",
            Self::ArabicMmluAr => "arabic-mmlu-ar",
            Self::ArabicExams => "arabic-exams",
            Self::Acva => "acva",
            Self::ArabicExamsOall => "arabic-exams-oall",
            Self::AcvaOall => "acva-oall",
            Self::House => "house",
        }
    }

    /// The reference the format reproduces.
    pub fn reference(self) -> &'static str {
        match self {
            Self::Mmlu => "lm-evaluation-harness tasks/mmlu/default (mmlu_<subject>)",
            Self::ArabicMmlu => "lm-evaluation-harness tasks/arabicmmlu (ArabicMMLU prepare_data_en)",
            Self::ArabicMmluAr => "ArabicMMLU util_prompt.py prepare_data_ar (Arabic prompt, Arabic letters)",
            Self::ArabicExams => {
                "lm-evaluation-harness arabic_leaderboard_complete arabic_exams (lighteval's prompt text)"
            }
            Self::Acva => "lm-evaluation-harness arabic_leaderboard_complete acva (lighteval's prompt text)",
            Self::ArabicExamsOall => {
                "lighteval <= 0.10 community arabic_exams, as the Open Arabic LLM Leaderboard ran it"
            }
            Self::AcvaOall => "lighteval <= 0.10 community acva, as the Open Arabic LLM Leaderboard ran it",
            Self::House => "allam house prompt (no external reference)",
        }
    }

    /// The default format of a task name of `allam eval --task`: its reference prompt
    /// (`mc-jsonl`, a generic file, gets the house prompt).
    pub fn default_for_task(task: &str) -> Self {
        match task {
            "mmlu" | "mmlu-csv" => Self::Mmlu,
            "arabic-mmlu" => Self::ArabicMmlu,
            "exams" => Self::ArabicExams,
            "acva" => Self::Acva,
            _ => Self::House,
        }
    }

    /// The default number of solved examples: 5 for EXAMS and ACVA (the shots the ALLaM model
    /// card reports for them), else 0 (lm-evaluation-harness' default, and the leaderboard's runs
    /// of the `-oall` formats).
    pub fn default_shots(self) -> usize {
        match self {
            Self::ArabicExams | Self::Acva => 5,
            _ => 0,
        }
    }

    /// Whether the examples are the first k of their group in file order (`first_n`, all the
    /// reference formats) rather than a seeded draw (the house format).
    pub fn first_n(self) -> bool {
        self != Self::House
    }

    /// Which items share a pool of examples under `first_n`.
    pub fn shot_group(self) -> ShotGroup {
        match self {
            Self::ArabicMmlu | Self::ArabicMmluAr => ShotGroup::LevelSubject,
            Self::ArabicExams | Self::ArabicExamsOall => ShotGroup::Whole,
            Self::Mmlu | Self::Acva | Self::AcvaOall | Self::House => ShotGroup::Subject,
        }
    }

    /// The text between a prompt and its answer.
    pub fn target_delimiter(self) -> &'static str {
        match self {
            Self::ArabicMmluAr | Self::ArabicExamsOall | Self::AcvaOall => "",
            _ => " ",
        }
    }

    /// The text before everything else (MMLU's subject header, lighteval's EXAMS instruction).
    pub fn description(self, item: &McItem) -> String {
        match self {
            Self::Mmlu => format!(
                "The following are multiple choice questions (with answers) about {}.\n\n",
                item.subject.replace('_', " ")
            ),
            Self::ArabicExamsOall => exams_instruction(item),
            _ => String::new(),
        }
    }

    /// The prompt of one item, ending in its answer cue.
    pub fn doc_text(self, item: &McItem, house: HouseStyle) -> Result<String> {
        Ok(match self {
            Self::Mmlu => {
                let mut text = format!("{}\n", item.question.trim());
                for (i, choice) in item.choices.iter().enumerate() {
                    text.push_str(&format!("{}. {choice}\n", latin_letter(i)));
                }
                text.push_str("Answer:");
                text
            }
            Self::ArabicMmlu => {
                let level = match item.level.as_str() {
                    "" => String::new(),
                    level => format!(" for {}", level_en(level)?),
                };
                let country = match item.country.as_str() {
                    "" => String::new(),
                    country => format!(" in {country}"),
                };
                format!(
                    "This is a {} question{level}{country}. Select the correct answer!\n\nQuestion: {}\n{}\n\nAnswer:",
                    item.subject,
                    with_context(item),
                    options(item, |i| format!("{}.", latin_letter(i))),
                )
            }
            Self::ArabicMmluAr => {
                let subject = subject_ar(&item.subject)?;
                let level = match item.level.as_str() {
                    "" => String::new(),
                    level => format!(" {}", level_ar(level)?),
                };
                let country = match item.country.as_str() {
                    "" => String::new(),
                    country => format!(" {}", country_ar(country)?),
                };
                format!(
                    "هذا سؤال {subject}{level}{country}. اختر الإجابة الصحيحة!\n\nسؤال: {}\n{}\n\nإجابة: ",
                    with_context(item),
                    options(item, |i| format!("{}-", arabic_letter(i))),
                )
            }
            Self::ArabicExams => format!("{}{}", exams_instruction(item), exams_question(item)),
            Self::ArabicExamsOall => exams_question(item),
            Self::Acva | Self::AcvaOall => format!("السؤال: {}\nالإجابة:", item.question),
            Self::House => question_prompt_in(item, house.mode, house.letters.for_item(item)),
        })
    }

    /// The choices of `item` without the target delimiter; `script_of` is the item whose script
    /// the house format writes labels in (the question's, for its examples too).
    pub fn choices(self, item: &McItem, house: HouseStyle, script_of: &McItem) -> Vec<String> {
        let n = item.choices.len();
        match self {
            Self::Mmlu | Self::ArabicMmlu => (0..n).map(latin_letter).collect(),
            Self::ArabicMmluAr => (0..n).map(|i| arabic_letter(i).to_string()).collect(),
            Self::ArabicExams | Self::ArabicExamsOall => {
                (0..n).map(|i| exams_letter(i).to_string()).collect()
            }
            Self::Acva | Self::AcvaOall => item.choices.clone(),
            Self::House => {
                let script = house.letters.for_item(script_of);
                (0..n)
                    .map(|i| choice_in(item, i, house.mode, script).to_string())
                    .collect()
            }
        }
    }

    /// `item` with its solved `shots` before it, as scored without a chat template.
    pub fn render(self, item: &McItem, shots: &[&McItem], house: HouseStyle) -> Result<RenderedItem> {
        Ok(self.prompt(item, shots, house)?.plain())
    }

    /// `item` with its solved `shots` before it, as text and as chat turns.
    pub fn prompt(self, item: &McItem, shots: &[&McItem], house: HouseStyle) -> Result<Prompt> {
        let delimiter = self.target_delimiter();
        let description = self.description(item);
        // Each example: its prompt and its answer.
        let mut examples = Vec::with_capacity(shots.len());
        for shot in shots {
            let choices = self.choices(shot, house, item);
            let doc = match self {
                // The house format writes an example in the question's script.
                Self::House => question_prompt_in(shot, house.mode, house.letters.for_item(item)),
                _ => self.doc_text(shot, house)?,
            };
            examples.push((doc, choices[shot.answer].clone()));
        }
        let question = self.doc_text(item, house)?;
        let mut body = String::new();
        for (doc, answer) in &examples {
            body.push_str(&format!("{doc}{delimiter}{answer}\n\n"));
        }
        body.push_str(&question);
        let messages = if self.lighteval() {
            // lighteval 0.10 `PromptManager.get_examples`: a user and an assistant turn per
            // example, the instruction prefixed to the first user turn.
            let mut messages = Vec::with_capacity(2 * examples.len() + 1);
            for (doc, answer) in examples {
                messages.push(ChatMessage::new("user", doc));
                messages.push(ChatMessage::new("assistant", answer));
            }
            messages.push(ChatMessage::new("user", question));
            messages[0].content.insert_str(0, &description);
            messages
        } else {
            // lm-evaluation-harness `fewshot_context` + `multiturn_to_singleturn`: the description
            // is the system turn, everything else one user turn.
            let mut messages = Vec::with_capacity(2);
            if !description.is_empty() {
                messages.push(ChatMessage::new("system", description.clone()));
            }
            messages.push(ChatMessage::new("user", body.clone()));
            messages
        };
        Ok(Prompt {
            text: format!("{description}{body}"),
            messages,
            delimiter,
            choices: self.choices(item, house, item),
        })
    }

    /// Whether the format is lighteval's assembly (the `-oall` formats) rather than
    /// lm-evaluation-harness'.
    pub fn lighteval(self) -> bool {
        matches!(self, Self::ArabicExamsOall | Self::AcvaOall)
    }
}

/// The EXAMS instruction: `… حول {subject}. \n\n`.
fn exams_instruction(item: &McItem) -> String {
    format!(
        "الأسئلة التالية هي أسئلة متعددة الإختيارات مع الجواب الصحيح حول {}. \n\n",
        item.subject.replace('_', " ")
    )
}

/// The EXAMS question: `السؤال: …`, ` أ) …` lines joined by blank lines, `الإجابة:`.
fn exams_question(item: &McItem) -> String {
    let lines: Vec<String> = item
        .choices
        .iter()
        .enumerate()
        .map(|(i, choice)| format!(" {}) {choice}\n", exams_letter(i)))
        .collect();
    format!("السؤال: {}\n{}\nالإجابة:", item.question, lines.join("\n"))
}

/// `Context\n\nQuestion`, or the question alone (ArabicMMLU's `question`).
fn with_context(item: &McItem) -> String {
    if item.context.is_empty() {
        item.question.clone()
    } else {
        format!("{}\n\n{}", item.context, item.question)
    }
}

/// `label option` lines joined by line breaks.
fn options(item: &McItem, label: impl Fn(usize) -> String) -> String {
    let lines: Vec<String> = item
        .choices
        .iter()
        .enumerate()
        .map(|(i, option)| format!("{} {option}", label(i)))
        .collect();
    lines.join("\n")
}

/// `A`, `B`, ... (`A1`... past `Z`).
fn latin_letter(i: usize) -> String {
    match u8::try_from(i).ok().filter(|&i| i < 26) {
        Some(i) => char::from(b'A' + i).to_string(),
        None => format!("A{i}"),
    }
}

/// ArabicMMLU's Arabic letters (`util_compute.py`): أ ب ج د ه.
fn arabic_letter(i: usize) -> &'static str {
    ["أ", "ب", "ج", "د", "ه"].get(i).copied().unwrap_or("؟")
}

/// The Arabic leaderboard's letters (`LETTER_INDICES_AR`): أ ب ج د هـ و ز ح ط ي ...
fn exams_letter(i: usize) -> &'static str {
    const LETTERS: [&str; 28] = [
        "أ", "ب", "ج", "د", "هـ", "و", "ز", "ح", "ط", "ي", "ك", "ل", "م", "ن", "س", "ع", "ف", "ص", "ق", "ر",
        "ش", "ت", "ث", "خ", "ذ", "ض", "ظ", "غ",
    ];
    LETTERS.get(i).copied().unwrap_or("؟")
}

/// A lookup in one of ArabicMMLU's tables, or an error naming the table and the value.
fn lookup(table: &[(&str, &'static str)], what: &str, key: &str) -> Result<&'static str> {
    table
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let known: Vec<&str> = table.iter().map(|(k, _)| *k).collect();
            EvalError::Input(format!(
                "{what} {key:?} is not in ArabicMMLU's table (known: {})",
                known.join(", ")
            ))
        })
}

/// ArabicMMLU's `level_en`.
fn level_en(level: &str) -> Result<&'static str> {
    const TABLE: [(&str, &str); 5] = [
        ("Primary", "primary school"),
        ("Middle", "middle school"),
        ("High", "high school"),
        ("Univ", "university"),
        ("Prof", "professional"),
    ];
    lookup(&TABLE, "Level", level)
}

/// ArabicMMLU's `level_ar`.
fn level_ar(level: &str) -> Result<&'static str> {
    const TABLE: [(&str, &str); 5] = [
        ("Primary", "للمرحلة الابتدائية"),
        ("Middle", "للمرحلة المتوسطة"),
        ("High", "للمرحلة الثانوية"),
        ("Univ", "للجامعات"),
        ("Prof", "للمحترفين"),
    ];
    lookup(&TABLE, "Level", level)
}

/// ArabicMMLU's `country_ar`.
fn country_ar(country: &str) -> Result<&'static str> {
    const TABLE: [(&str, &str); 8] = [
        ("UAE", "في دولة الإمارات العربية المتحدة"),
        ("Egypt", "في مصر"),
        ("Lebanon", "في لبنان"),
        ("Jordan", "في الأردن"),
        ("Kuwait", "في الكويت"),
        ("KSA", "في المملكة العربية السعودية"),
        ("Palestine", "في فلسطين"),
        ("Morocco", "في المغرب"),
    ];
    lookup(&TABLE, "Country", country)
}

/// ArabicMMLU's `subject_ar` (its leading space before `Political Science` included).
fn subject_ar(subject: &str) -> Result<&'static str> {
    const TABLE: [(&str, &str); 21] = [
        ("Islamic Studies", "في الدراسات الإسلامية"),
        ("Driving Test", "اختبار القيادة"),
        ("Natural Science", "في العلوم الطبيعية"),
        ("History", "في التاريخ"),
        ("General Knowledge", "في المعلومات العامة"),
        ("Law", "في القانون"),
        ("Physics", "في الفيزياء"),
        ("Social Science", "في العلوم الاجتماعية"),
        ("Management", "في الإدارة"),
        ("Arabic Language", "في اللغة العربية"),
        ("Political Science", " في العلوم السياسية"),
        ("Philosophy", "في الفلسفة"),
        ("Accounting", "في المحاسبة"),
        ("Computer Science", "في علوم الحاسوب"),
        ("Geography", "في الجغرافيا"),
        ("Math", "في الرياضيات"),
        ("Biology", "في علم الأحياء"),
        ("Economics", "في الاقتصاد"),
        ("Arabic Language (General)", "في اللغة العربية (عام)"),
        ("Arabic Language (Grammar)", "في اللغة العربية (قواعد النحو)"),
        ("Civics", "في التربية المدنية"),
    ];
    lookup(&TABLE, "Subject", subject)
}

/// The pool indices of the first `shots` items of `item`'s group in file order, as
/// lm-evaluation-harness' `first_n` sampler takes them. In a same-file pool (`same_file`: no dev
/// split given) the question itself is left out, as the harness does when the few-shot split is
/// the test split. Fewer than `shots` available is an error (the harness asserts).
pub fn first_n(
    pool: &[McItem],
    same_file: bool,
    item: &McItem,
    index: usize,
    shots: usize,
    group: ShotGroup,
) -> Result<Vec<usize>> {
    if shots == 0 {
        return Ok(Vec::new());
    }
    let same_group = |other: &McItem| match group {
        ShotGroup::Subject => other.subject == item.subject,
        ShotGroup::LevelSubject => other.subject == item.subject && other.level == item.level,
        ShotGroup::Whole => true,
    };
    let chosen: Vec<usize> = pool
        .iter()
        .enumerate()
        .filter(|(i, other)| same_group(other) && !(same_file && (*i == index || *other == item)))
        .map(|(i, _)| i)
        .take(shots)
        .collect();
    if chosen.len() < shots {
        let group = match group {
            ShotGroup::Subject => format!("subject {:?}", item.subject),
            ShotGroup::LevelSubject => format!("level {:?} and subject {:?}", item.level, item.subject),
            ShotGroup::Whole => "the file".to_string(),
        };
        let source = if same_file {
            "the test file"
        } else {
            "the dev split"
        };
        return Err(EvalError::Input(format!(
            "item {}: {shots} examples asked but {source} has {} for {group}",
            index + 1,
            chosen.len()
        )));
    }
    Ok(chosen)
}
