//! The house multiple-choice prompt ([`crate::formats::PromptFormat::House`]): the question, its
//! labelled choices and the answer cue, in Latin (`Question:` ... `A.` ... `Answer:`) or Arabic
//! (`السؤال:` ... `أ.` ... `الإجابة:`) script. The reference formats are in [`crate::formats`].
use crate::error::{EvalError, Result};
use crate::task::McItem;

/// What a choice's continuation is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChoiceMode {
    /// The answer text, after the answer cue.
    #[default]
    Text,
    /// The answer's label (`A`, `B`, ... or `أ`, `ب`, ...), after a prompt listing the labelled
    /// choices.
    Letters,
}

/// The script of a prompt's labels and cues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Script {
    /// `Question:`, the item's own labels (`A`, `B`, ... unless the file says), `Answer:`.
    Latin,
    /// `السؤال:`, labels [`ARABIC_LABELS`] by position, `الإجابة:`.
    Arabic,
}

/// How the script of each item's prompt is chosen (`--letters`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LetterScript {
    /// Always Latin.
    Latin,
    /// Always Arabic.
    Arabic,
    /// Arabic for Arabic items: by the item's `language` when the file gives one, else when
    /// most letters of the question are Arabic ([`arabic_share`] above one half).
    #[default]
    Auto,
}

/// The Arabic choice labels, in abjad order: أ ب ج د ه و ز ح ط ي.
pub const ARABIC_LABELS: [&str; 10] = ["أ", "ب", "ج", "د", "ه", "و", "ز", "ح", "ط", "ي"];

impl LetterScript {
    /// `latin`, `arabic` or `auto`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "latin" => Ok(Self::Latin),
            "arabic" => Ok(Self::Arabic),
            "auto" => Ok(Self::Auto),
            other => Err(EvalError::Input(format!(
                "unknown letter script `{other}` (expected latin, arabic or auto)"
            ))),
        }
    }

    /// The script of `item`'s prompt.
    pub fn for_item(self, item: &McItem) -> Script {
        match self {
            Self::Latin => Script::Latin,
            Self::Arabic => Script::Arabic,
            Self::Auto => {
                let arabic = match language_is_arabic(&item.language) {
                    Some(arabic) => arabic,
                    None => arabic_share(&item.question) > 0.5,
                };
                if arabic { Script::Arabic } else { Script::Latin }
            }
        }
    }
}

/// Whether a language name or code (`ar`, `ar-SA`, `ara`, `Arabic`, any case) is Arabic; `None`
/// when it is empty.
pub fn language_is_arabic(language: &str) -> Option<bool> {
    let language = language.trim().to_ascii_lowercase();
    if language.is_empty() {
        return None;
    }
    let primary = language.split(['-', '_']).next().unwrap_or_default();
    Some(matches!(primary, "ar" | "ara" | "arabic"))
}

/// The share of `text`'s letters (alphabetic characters) that are Arabic; 0 when it has none.
pub fn arabic_share(text: &str) -> f64 {
    let (mut letters, mut arabic) = (0usize, 0usize);
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        arabic += usize::from(allam_script::is_arabic(c));
    }
    if letters == 0 {
        0.0
    } else {
        arabic as f64 / letters as f64
    }
}

/// The label of choice `i` of `item` in `script`.
pub fn label(item: &McItem, i: usize, script: Script) -> &str {
    match script {
        Script::Arabic if i < ARABIC_LABELS.len() => ARABIC_LABELS[i],
        _ => &item.labels[i],
    }
}

/// The question cue and the answer cue of `script`.
fn cues(script: Script) -> (&'static str, &'static str) {
    match script {
        Script::Latin => ("Question:", "Answer:"),
        Script::Arabic => ("السؤال:", "الإجابة:"),
    }
}

/// The prompt of `item` alone in `script`, ending in the answer cue; in [`ChoiceMode::Letters`]
/// the labelled choices come between question and cue, one a line (`A. text`).
pub fn question_prompt_in(item: &McItem, mode: ChoiceMode, script: Script) -> String {
    let (question, answer) = cues(script);
    let text = match item.context.trim() {
        "" => item.question.trim().to_string(),
        context => format!("{context}\n{}", item.question.trim()),
    };
    let mut prompt = format!("{question} {text}\n");
    if mode == ChoiceMode::Letters {
        for (i, choice) in item.choices.iter().enumerate() {
            prompt.push_str(&format!("{}. {}\n", label(item, i, script), choice.trim()));
        }
    }
    prompt.push_str(answer);
    prompt
}

/// The continuation of choice `i` in `script` (with its leading space): its text or its label.
pub fn choice_continuation_in(item: &McItem, i: usize, mode: ChoiceMode, script: Script) -> String {
    format!(" {}", choice_in(item, i, mode, script))
}

/// Choice `i` in `script` without the space before it (what `acc_norm` divides by): its text,
/// trimmed, or its label.
pub fn choice_in(item: &McItem, i: usize, mode: ChoiceMode, script: Script) -> &str {
    match mode {
        ChoiceMode::Text => item.choices[i].trim(),
        ChoiceMode::Letters => label(item, i, script),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_detection() {
        assert_eq!(arabic_share("ما هي عاصمة السعودية؟"), 1.0);
        assert!(arabic_share("What does «السلام» mean in English?") < 0.5);
        assert_eq!(arabic_share("12 + 3"), 0.0);
        assert_eq!(language_is_arabic("ar-SA"), Some(true));
        assert_eq!(language_is_arabic("Arabic"), Some(true));
        assert_eq!(language_is_arabic("en"), Some(false));
        assert_eq!(language_is_arabic(" "), None);
        assert!(LetterScript::from_name("hebrew").is_err());
    }
}
