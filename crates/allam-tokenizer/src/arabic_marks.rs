//! Arabic combining marks kept with the letters they follow: a rewrite of a byte-level base's
//! pre-tokenizer regexes.
//!
//! The pre-tokenizer regexes of byte-level bases take letters as `\p{L}`: GPT-2's (inside
//! `ByteLevel(use_regex = true)`, SmolLM2) is [`GPT2_PATTERN`], Llama-3's (a `Split` before
//! `ByteLevel(use_regex = false)`) is [`crate::base::LLAMA3_SPLIT`]. Arabic harakat and Quranic marks
//! are combining marks (`\p{Mn}`), not letters, so a vowelled word such as `بِسْمِ` falls apart into
//! letter and mark pre-tokens, and no learned piece can span them.
//!
//! # The rewrite
//! Every letter class `\p{L}` of the pattern becomes "letter or Arabic mark" ([`rewrite_letter_classes`]):
//! outside a bracket class `\p{L}` → `[\p{L}`*marks*`]`; inside one (negated or not) `\p{L}` →
//! `\p{L}`*marks*, so an "other" class such as `[^\s\p{L}\p{N}]` no longer matches the marks;
//! `\P{L}` → `[^\p{L}`*marks*`]`. *marks* are the [`ARABIC_MARKS`] as `\x{....}` escapes, which both
//! fancy-regex (Rust `tokenizers`) and Oniguruma (Python `tokenizers`) read. GPT-2's
//! `ByteLevel(use_regex = true, add_prefix_space = false)` becomes
//! `Sequence[Split(rewritten GPT2_PATTERN, Isolated), ByteLevel(use_regex = false)]` with the same
//! `trim_offsets` ([`attach_marks`]); a `Split` with a `Regex` pattern gets the rewritten regex, one with a
//! `String` pattern (a literal) and every other pre-tokenizer are kept as they are.
//!
//! # Why text without the marks is split exactly as before
//! The rewrite changes only which classes the added code points belong to: for every other character,
//! each class of the new pattern holds it exactly when the old one did. A regex match is decided by the
//! class tests on the characters of the text (lookarounds included), so on a text without any of the
//! [`ARABIC_MARKS`] the two patterns make the same tests with the same answers, find the same matches,
//! and the pre-tokens, offsets and so the ids are identical. The marks lie in the Arabic block
//! (U+0600–U+06FF, U+0897–U+08FF, U+10EC0–U+10EFF), so every text without Arabic is among those texts —
//! and so is Arabic written without diacritics. The tests check this on varied text and by a property
//! test over strings without marks.
//!
//! A pre-tokenizer that cannot be rewritten faithfully is an error, not a silent change:
//! `ByteLevel(use_regex = true, add_prefix_space = true)` (a `Split` before it would get the space added to
//! every piece, not only the first), and patterns with constructs the rewrite does not parse (`\Q...\E`,
//! extended mode, comments, unbalanced brackets). A pattern without `\p{L}` has no letter class to extend
//! and is kept.
use tokenizers::PreTokenizerWrapper;
use tokenizers::SplitDelimiterBehavior;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};

use crate::error::{Error, Result};

pub use allam_script::{ARABIC_MARKS, is_arabic_mark};

/// The regex `ByteLevel(use_regex = true)` splits with: GPT-2's (`encoder.py`), as `tokenizers` 0.22
/// writes it in `pre_tokenizers/byte_level.rs` (the crate does not export it; a test checks this copy
/// against the pre-tokenizer).
pub const GPT2_PATTERN: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// Whether `text` holds one of the [`ARABIC_MARKS`] (the texts whose pre-tokens the rewrite changes).
pub fn has_arabic_mark(text: &str) -> bool {
    text.chars().any(is_arabic_mark)
}

/// The [`ARABIC_MARKS`] as bracket-class items: `\x{0610}-\x{061A}\x{064B}-\x{065F}\x{0670}...`.
pub fn marks_class_items() -> String {
    ARABIC_MARKS
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                format!("\\x{{{lo:04X}}}")
            } else {
                format!("\\x{{{lo:04X}}}-\\x{{{hi:04X}}}")
            }
        })
        .collect()
}

/// Rewrites the letter classes of a regex so that the [`ARABIC_MARKS`] count as letters (see the
/// [module docs](self)). `Ok(None)` when the pattern has no `\p{L}` (nothing to extend); `Err` says which
/// construct the rewrite cannot follow.
///
/// Recognised letter classes: `\p{L}`, `\pL`, `\p{Letter}` (any case, spaces or underscores), their
/// negations `\P{L}` and Oniguruma's `\p{^L}`.
pub fn rewrite_letter_classes(pattern: &str) -> std::result::Result<Option<String>, String> {
    let marks = marks_class_items();
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 4 * marks.len());
    let mut depth = 0usize; // bracket-class nesting
    let mut class_start = false; // just after `[` or `[^`: a `]` here is a literal
    let mut changed = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let Some(&n) = chars.get(i + 1) else {
                    return Err("a trailing backslash".into());
                };
                match n {
                    'p' | 'P' => {
                        let (name, end) = if chars.get(i + 2) == Some(&'{') {
                            let close = chars[i + 3..]
                                .iter()
                                .position(|&c| c == '}')
                                .ok_or("an unclosed \\p{")?;
                            (
                                chars[i + 3..i + 3 + close].iter().collect::<String>(),
                                i + 4 + close,
                            )
                        } else {
                            let name = chars.get(i + 2).ok_or("a \\p without a property")?;
                            (name.to_string(), i + 3)
                        };
                        let (caret, name) = match name.trim_start().strip_prefix('^') {
                            Some(rest) => (true, rest.to_string()),
                            None => (false, name),
                        };
                        let loose: String = name
                            .chars()
                            .filter(|c| !matches!(c, ' ' | '_' | '-'))
                            .flat_map(char::to_lowercase)
                            .collect();
                        if loose == "l" || loose == "letter" {
                            changed = true;
                            if (n == 'P') != caret {
                                out.push_str(&format!("[^\\p{{L}}{marks}]"));
                            } else if depth == 0 {
                                out.push_str(&format!("[\\p{{L}}{marks}]"));
                            } else {
                                out.push_str(&format!("\\p{{L}}{marks}"));
                            }
                        } else {
                            out.extend(&chars[i..end]);
                        }
                        i = end;
                        class_start = false;
                        continue;
                    }
                    'Q' => return Err("\\Q...\\E quoting".into()),
                    _ => {
                        out.push(c);
                        out.push(n);
                        i += 2;
                        class_start = false;
                        continue;
                    }
                }
            }
            '[' if depth > 0 && chars.get(i + 1) == Some(&':') => {
                // A POSIX class inside brackets, `[:alpha:]`: copied whole.
                let close = (i + 2..chars.len().saturating_sub(1))
                    .find(|&j| chars[j] == ':' && chars[j + 1] == ']')
                    .ok_or("an unclosed [: POSIX class")?;
                out.extend(&chars[i..close + 2]);
                i = close + 2;
                class_start = false;
                continue;
            }
            '[' => {
                depth += 1;
                out.push('[');
                if chars.get(i + 1) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                class_start = true;
                i += 1;
                continue;
            }
            ']' if depth > 0 && !class_start => depth -= 1,
            '(' if depth == 0 && chars.get(i + 1) == Some(&'?') => {
                let flags: String = chars[i + 2..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphabetic() || **c == '-' || **c == '#')
                    .collect();
                if flags.starts_with('#') {
                    return Err("a (?#...) comment".into());
                }
                if flags.split('-').next().is_some_and(|on| on.contains('x')) {
                    return Err("extended (x) mode".into());
                }
            }
            _ => {}
        }
        out.push(c);
        class_start = false;
        i += 1;
    }
    if depth != 0 {
        return Err("an unclosed [ bracket class".into());
    }
    Ok(changed.then_some(out))
}

/// The base pre-tokenizer rewritten to keep [`ARABIC_MARKS`] with their letters (see the
/// [module docs](self)): `Ok(Some(_))` when something was rewritten, `Ok(None)` when nothing in it splits
/// by a letter class (no regex, `String` patterns, patterns without `\p{L}`), `Err` when a part cannot be
/// rewritten faithfully (the message names it and the opt-out).
pub fn attach_marks(pre_tokenizer: &PreTokenizerWrapper) -> Result<Option<PreTokenizerWrapper>> {
    let mut out = Vec::new();
    if !rewrite(pre_tokenizer, &mut out)? {
        return Ok(None);
    }
    Ok(Some(if out.len() == 1 {
        out.pop().expect("one element")
    } else {
        PreTokenizerWrapper::Sequence(Sequence::new(out))
    }))
}

/// Pushes the rewritten `pre` (one step, or two for GPT-2's `ByteLevel`) onto `out`; whether anything
/// changed.
fn rewrite(pre: &PreTokenizerWrapper, out: &mut Vec<PreTokenizerWrapper>) -> Result<bool> {
    match pre {
        PreTokenizerWrapper::ByteLevel(byte_level) if byte_level.use_regex => {
            if byte_level.add_prefix_space {
                return Err(cannot(
                    "ByteLevel(use_regex = true, add_prefix_space = true): its space is added before its \
                     regex splits, and a Split in front of a ByteLevel would get it on every piece",
                ));
            }
            let pattern = rewrite_letter_classes(GPT2_PATTERN)
                .expect("the GPT-2 pattern parses")
                .expect("the GPT-2 pattern has letter classes");
            out.push(split(pattern, SplitDelimiterBehavior::Isolated, false)?);
            out.push(PreTokenizerWrapper::ByteLevel(ByteLevel::new(
                false,
                byte_level.trim_offsets,
                false,
            )));
            Ok(true)
        }
        PreTokenizerWrapper::Split(s) => match &s.pattern {
            SplitPattern::Regex(pattern) => match rewrite_letter_classes(pattern) {
                Ok(Some(new)) => {
                    out.push(split(new, s.behavior, s.invert)?);
                    Ok(true)
                }
                Ok(None) => {
                    out.push(pre.clone());
                    Ok(false)
                }
                Err(why) => Err(cannot(&format!("the Split regex {pattern:?} has {why}"))),
            },
            SplitPattern::String(_) => {
                out.push(pre.clone());
                Ok(false)
            }
        },
        PreTokenizerWrapper::Sequence(seq) => {
            let mut steps = Vec::new();
            let mut changed = false;
            for step in seq.as_ref() {
                changed |= rewrite(step, &mut steps)?;
            }
            out.push(PreTokenizerWrapper::Sequence(Sequence::new(steps)));
            Ok(changed)
        }
        other => {
            out.push(other.clone());
            Ok(false)
        }
    }
}

fn split(pattern: String, behavior: SplitDelimiterBehavior, invert: bool) -> Result<PreTokenizerWrapper> {
    let split = Split::new(SplitPattern::Regex(pattern.clone()), behavior, invert).map_err(|e| {
        Error::Config(format!(
            "the regex {pattern:?}, rewritten to keep Arabic marks with their letters, does not \
             compile: {e}"
        ))
    })?;
    Ok(PreTokenizerWrapper::Split(split))
}

fn cannot(what: &str) -> Error {
    Error::Config(format!(
        "the base pre-tokenizer cannot be rewritten to keep Arabic marks with their letters: {what}; \
         expand with arabic_marks_pre_tokenizer = false (`--keep-base-pre-tokenizer`) to keep the base's \
         pre-tokenizer as it is"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::byte_level::is_arabic_bytes;
    use crate::script::is_arabic;
    use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

    const M: &str = r"\x{0610}-\x{061A}\x{064B}-\x{065F}\x{0670}\x{06D6}-\x{06DC}\x{06DF}-\x{06E4}\x{06E7}-\x{06E8}\x{06EA}-\x{06ED}\x{0897}-\x{089F}\x{08CA}-\x{08E1}\x{08E3}-\x{08FF}\x{10EFC}-\x{10EFF}";

    #[test]
    fn the_class_items_are_the_ranges() {
        assert_eq!(marks_class_items(), M);
    }

    #[test]
    fn rewrites_the_gpt2_and_llama3_patterns() {
        let gpt2 = rewrite_letter_classes(GPT2_PATTERN).unwrap().unwrap();
        assert_eq!(
            gpt2,
            format!(
                r"'s|'t|'re|'ve|'m|'ll|'d| ?[\p{{L}}{M}]+| ?\p{{N}}+| ?[^\s\p{{L}}{M}\p{{N}}]+|\s+(?!\S)|\s+"
            )
        );
        let llama3 = rewrite_letter_classes(crate::fixture::LLAMA3_SPLIT)
            .unwrap()
            .unwrap();
        assert_eq!(
            llama3,
            format!(
                r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{{L}}{M}\p{{N}}]?[\p{{L}}{M}]+|\p{{N}}{{1,3}}| ?[^\s\p{{L}}{M}\p{{N}}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
            )
        );
    }

    #[test]
    fn other_forms_and_contexts() {
        let r = |p: &str| rewrite_letter_classes(p);
        let m = M;
        assert_eq!(r(r"\pL+").unwrap().unwrap(), format!(r"[\p{{L}}{m}]+"));
        assert_eq!(r(r"\p{Letter}").unwrap().unwrap(), format!(r"[\p{{L}}{m}]"));
        assert_eq!(r(r"\P{L}").unwrap().unwrap(), format!(r"[^\p{{L}}{m}]"));
        assert_eq!(r(r"\p{^L}").unwrap().unwrap(), format!(r"[^\p{{L}}{m}]"));
        // Negated inside a class: a nested class.
        assert_eq!(r(r"[x\P{L}]").unwrap().unwrap(), format!(r"[x[^\p{{L}}{m}]]"));
        // Other properties, escaped brackets, literal `]`, POSIX classes are copied.
        assert_eq!(r(r"\p{Lu}\p{N}\[\]").unwrap(), None);
        assert_eq!(r(r"[]\p{L}]").unwrap().unwrap(), format!(r"[]\p{{L}}{m}]"));
        assert_eq!(
            r(r"[^][:alpha:]\p{L}]").unwrap().unwrap(),
            format!(r"[^][:alpha:]\p{{L}}{m}]")
        );
        assert_eq!(r(r"\[\p{L}").unwrap().unwrap(), format!(r"\[[\p{{L}}{m}]"));
        assert_eq!(r(r"(?i:a)\w+").unwrap(), None);
        // What the rewrite cannot follow.
        for (p, why) in [
            (r"\Q\p{L}\E", "\\Q"),
            (r"(?x)\p{L} # letters", "extended"),
            (r"(?#[)\p{L}", "comment"),
            (r"[\p{L}", "unclosed ["),
            (r"\p{L", "unclosed \\p{"),
            ("a\\", "trailing backslash"),
        ] {
            let err = r(p).unwrap_err();
            assert!(err.contains(why), "{p}: {err}");
        }
    }

    fn splits(pre: &PreTokenizerWrapper, text: &str) -> Vec<(String, (usize, usize))> {
        let mut p = PreTokenizedString::from(text);
        pre.pre_tokenize(&mut p).unwrap();
        p.get_splits(OffsetReferential::Original, OffsetType::Byte)
            .into_iter()
            .map(|(s, o, _)| (s.to_string(), o))
            .collect()
    }

    fn regex_split(pattern: &str) -> PreTokenizerWrapper {
        split(pattern.into(), SplitDelimiterBehavior::Isolated, false).unwrap()
    }

    #[test]
    fn the_marks_are_the_arabic_blocks_nonspacing_marks() {
        // The regex engine's own `\p{Mn}`: every Arabic-block code point it calls a nonspacing mark is
        // in the list, and every listed one is a nonspacing mark or not yet assigned in its tables.
        let mn = regex_split(r"\p{Mn}");
        let unassigned = regex_split(r"\p{Cn}");
        let is = |pre: &PreTokenizerWrapper, c: char| splits(pre, &format!("a{c}b")).len() == 3;
        let mut marks = 0;
        for &(lo, hi) in crate::script::ARABIC_BLOCKS {
            for c in (lo..=hi).filter_map(char::from_u32).filter(|c| is_arabic(*c)) {
                if is(&mn, c) {
                    assert!(is_arabic_mark(c), "U+{:04X} is Mn", c as u32);
                }
                if is_arabic_mark(c) {
                    marks += 1;
                    assert!(is(&mn, c) || is(&unassigned, c), "U+{:04X}", c as u32);
                    // Marks are Arabic characters, and their bytes Arabic byte-level pieces.
                    assert!(is_arabic_bytes(c.to_string().as_bytes()));
                }
            }
        }
        assert_eq!(marks, 11 + 21 + 1 + 7 + 6 + 2 + 4 + 9 + 24 + 29 + 4);
        for c in ['\u{064E}', '\u{0670}', '\u{06E1}', '\u{08F0}'] {
            assert!(is_arabic_mark(c));
        }
        for c in [
            '\u{06DD}', '\u{06DE}', '\u{06E5}', '\u{06E9}', '\u{08E2}', '\u{0640}', '\u{0301}',
        ] {
            assert!(!is_arabic_mark(c), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn gpt2_pattern_is_the_byte_level_regex() {
        // The copy splits as ByteLevel(use_regex = true) does (ByteLevel maps the pieces to byte symbols
        // after the split in both cases), on text with and without marks.
        let original = PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true));
        let copy = PreTokenizerWrapper::Sequence(Sequence::new(vec![
            regex_split(GPT2_PATTERN),
            PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, false)),
        ]));
        for text in [
            "Hello world's 123 end!!  \n\n  x",
            "بِسْمِ ٱللَّهِ ٱلرَّحْمَٰنِ — 42 ok",
            crate::fixture::ENGLISH,
            crate::fixture::ARABIC,
        ] {
            assert_eq!(splits(&original, text), splits(&copy, text));
        }
    }

    #[test]
    fn byte_level_with_a_prefix_space_is_refused_and_other_steps_are_kept() {
        let err = attach_marks(&PreTokenizerWrapper::ByteLevel(ByteLevel::new(true, true, true)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("add_prefix_space = true"), "{err}");
        assert!(err.contains("--keep-base-pre-tokenizer"), "{err}");
        let literal = PreTokenizerWrapper::Split(
            Split::new(
                SplitPattern::String(" ".into()),
                SplitDelimiterBehavior::Removed,
                false,
            )
            .unwrap(),
        );
        assert_eq!(attach_marks(&literal).unwrap(), None);
        let plain = PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, false));
        assert_eq!(attach_marks(&plain).unwrap(), None);
        let bad = PreTokenizerWrapper::Sequence(Sequence::new(vec![regex_split(r"(?x) \p{L}+ "), plain]));
        let err = attach_marks(&bad).unwrap_err().to_string();
        assert!(err.contains("extended (x) mode"), "{err}");
    }
}
