//! Arabic normalisation (optional) and the text pipeline that turns corpus documents into the Arabic
//! "words" the vocabulary is learned from.
//!
//! The pipeline is the base tokenizer's own composition: the Arabic steps (if any) are `Replace`
//! normalizers put in front of the base normalizer, and the result is written into the expanded
//! `tokenizer.json`, so the normalisation used for training is recorded in the output and applied again at
//! encoding time. The steps only rewrite Arabic-block characters, so non-Arabic text is untouched.
use serde::{Deserialize, Serialize};
use tokenizers::normalizers::{Replace, Sequence};
use tokenizers::{
    NormalizedString, Normalizer, NormalizerWrapper, OffsetReferential, OffsetType, PreTokenizedString,
    PreTokenizer, PreTokenizerWrapper,
};

use crate::byte_level;
use crate::error::{Error, Result};
use allam_script::{ARABIC_MARKS, TATWEEL, is_arabic, is_arabic_mark};

/// The word mark of Llama/Mistral (SentencePiece) tokenizers.
pub const WORD_MARK: char = '▁';

/// Which Arabic normalisations to apply before training (and, recorded in the output tokenizer, at
/// encoding time). All off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArabicNormalization {
    /// Remove tatweel (kashida, U+0640).
    pub remove_tatweel: bool,
    /// Remove harakat and Quranic marks: every Arabic combining mark (`allam_script::ARABIC_MARKS`,
    /// the Arabic blocks' nonspacing marks, as data cleaning's `strip_diacritics`).
    pub strip_diacritics: bool,
    /// Write alef with hamza above/below, alef with madda and alef wasla (أ إ آ ٱ) as bare alef (ا).
    pub unify_alef: bool,
    /// Write alef maqsura (ى) as ya (ي).
    pub unify_ya: bool,
}

impl ArabicNormalization {
    /// Every step on.
    pub fn all() -> Self {
        ArabicNormalization {
            remove_tatweel: true,
            strip_diacritics: true,
            unify_alef: true,
            unify_ya: true,
        }
    }

    /// Whether no step is on.
    pub fn is_identity(&self) -> bool {
        *self == Self::default()
    }

    /// The steps as `tokenizers` normalizers (regex `Replace`s), in application order.
    pub fn normalizers(&self) -> Result<Vec<NormalizerWrapper>> {
        let mut out = Vec::new();
        let mut removed = String::new();
        // Escaped code points (`\x{064B}`), so the stored pattern is readable and no combining mark
        // sits next to a bracket.
        if self.remove_tatweel {
            removed.push_str("\\x{0640}");
        }
        if self.strip_diacritics {
            for &(lo, hi) in ARABIC_MARKS {
                removed.push_str(&format!("\\x{{{lo:04X}}}-\\x{{{hi:04X}}}"));
            }
        }
        if !removed.is_empty() {
            out.push(replace(&format!("[{removed}]"), "")?);
        }
        if self.unify_alef {
            out.push(replace("[\\x{0622}\\x{0623}\\x{0625}\\x{0671}]", "\u{0627}")?);
        }
        if self.unify_ya {
            out.push(replace("\\x{0649}", "\u{064A}")?);
        }
        Ok(out)
    }

    /// The same steps applied directly to a string (reference implementation, used in tests and docs).
    pub fn apply(&self, text: &str) -> String {
        text.chars()
            .filter(|&c| !(self.remove_tatweel && c == TATWEEL))
            .filter(|&c| !(self.strip_diacritics && is_arabic_mark(c)))
            .map(|c| match c {
                '\u{0622}' | '\u{0623}' | '\u{0625}' | '\u{0671}' if self.unify_alef => '\u{0627}',
                '\u{0649}' if self.unify_ya => '\u{064A}',
                c => c,
            })
            .collect()
    }
}

fn replace(pattern: &str, content: &str) -> Result<NormalizerWrapper> {
    let r = Replace::new(
        tokenizers::normalizers::replace::ReplacePattern::Regex(pattern.to_string()),
        content,
    )
    .map_err(Error::tokenizers)?;
    Ok(NormalizerWrapper::Replace(r))
}

/// Puts the Arabic steps in front of a base normalizer (flattening into one `Sequence`).
pub fn compose_normalizer(
    arabic: &ArabicNormalization,
    base: Option<&NormalizerWrapper>,
) -> Result<Option<NormalizerWrapper>> {
    let mut steps = arabic.normalizers()?;
    if steps.is_empty() {
        return Ok(base.cloned());
    }
    match base {
        None => {}
        Some(NormalizerWrapper::Sequence(seq)) => steps.extend(seq.as_ref().iter().cloned()),
        Some(other) => steps.push(other.clone()),
    }
    Ok(Some(NormalizerWrapper::Sequence(Sequence::new(steps))))
}

/// Normalizer + pre-tokenizer of a tokenizer, used to prepare training text exactly as the tokenizer
/// prepares text before its model sees it.
#[derive(Debug, Clone)]
pub struct TextPipeline {
    /// The (composed) normalizer.
    pub normalizer: Option<NormalizerWrapper>,
    /// The pre-tokenizer, if the tokenizer has one.
    pub pre_tokenizer: Option<PreTokenizerWrapper>,
}

impl TextPipeline {
    /// The segments of `text` the model would see (after normalisation and pre-tokenisation).
    pub fn segments(&self, text: &str) -> Result<Vec<String>> {
        let mut normalized = NormalizedString::from(text);
        if let Some(n) = &self.normalizer {
            n.normalize(&mut normalized).map_err(Error::tokenizers)?;
        }
        let Some(pre) = &self.pre_tokenizer else {
            return Ok(vec![normalized.get().to_string()]);
        };
        let mut pre_tokenized = PreTokenizedString::from(normalized);
        pre.pre_tokenize(&mut pre_tokenized).map_err(Error::tokenizers)?;
        Ok(pre_tokenized
            .get_splits(OffsetReferential::Normalized, OffsetType::Byte)
            .into_iter()
            .map(|(s, _, _)| s.to_string())
            .collect())
    }

    /// Whether the pre-tokenizer is byte-level (segments are strings of byte symbols, see
    /// [`crate::byte_level`]).
    pub fn is_byte_level(&self) -> bool {
        self.pre_tokenizer.as_ref().is_some_and(byte_level::is_byte_level)
    }

    /// The Arabic training words of `text`: within each model-level segment (a pre-token), every maximal
    /// run of Arabic-block characters, with the word mark that directly precedes it — `▁` for
    /// byte-fallback tokenizers; for byte-level ones the space, and the words are written in byte
    /// symbols (`Ġ` + the bytes of the run), as the model sees them.
    pub fn arabic_words(&self, text: &str) -> Result<Vec<String>> {
        let mut words = Vec::new();
        let byte_level = self.is_byte_level();
        for segment in self.segments(text)? {
            if byte_level {
                byte_level::arabic_words(&segment, &mut words);
            } else {
                split_arabic_words(&segment, &mut words);
            }
        }
        Ok(words)
    }
}

/// Splits a normalised segment into maximal Arabic runs, each prefixed with `▁` when one precedes it.
pub fn split_arabic_words(segment: &str, out: &mut Vec<String>) {
    let mut run = String::new();
    let mut prev = None;
    for c in segment.chars() {
        if is_arabic(c) {
            if run.is_empty() && prev == Some(WORD_MARK) {
                run.push(WORD_MARK);
            }
            run.push(c);
        } else if !run.is_empty() {
            out.push(std::mem::take(&mut run));
        }
        prev = Some(c);
    }
    if !run.is_empty() {
        out.push(run);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::normalizers::{Prepend, Replace};

    fn mistral_like() -> NormalizerWrapper {
        NormalizerWrapper::Sequence(Sequence::new(vec![
            NormalizerWrapper::Prepend(Prepend::new("▁".into())),
            NormalizerWrapper::Replace(Replace::new(" ", "▁").unwrap()),
        ]))
    }

    #[test]
    fn arabic_words_carry_the_word_mark() {
        let p = TextPipeline {
            normalizer: Some(mistral_like()),
            pre_tokenizer: None,
        };
        let words = p.arabic_words("كتب الولد (درسه) in English، أيضا").unwrap();
        assert_eq!(words, ["▁كتب", "▁الولد", "درسه", "،", "▁أيضا"]);
    }

    #[test]
    fn normalisation_in_the_composition_matches_the_reference() {
        let text = "ٱلۡحَمۡدُ لِلَّهِ رَبِّ ٱلۡعَٰلَمِينَ — إلى مـــدرسة, English stays.";
        for arabic in [
            ArabicNormalization::default(),
            ArabicNormalization::all(),
            ArabicNormalization {
                unify_ya: true,
                ..Default::default()
            },
        ] {
            let n = compose_normalizer(&arabic, None).unwrap();
            let mut s = NormalizedString::from(text);
            if let Some(n) = n {
                n.normalize(&mut s).unwrap();
            }
            assert_eq!(s.get(), arabic.apply(text));
        }
        let all = ArabicNormalization::all().apply(text);
        assert!(all.starts_with("الحمد لله رب العلمين — الي مدرسة"), "{all}");
        assert!(all.ends_with("English stays."));
    }
}
