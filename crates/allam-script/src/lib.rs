//! # allam-script: the Arabic script classes
//!
//! One definition of what an Arabic character, letter, combining mark and digit are, shared by data
//! cleaning and deduplication (`allam-data`), Arabic normalisation, tokenizer expansion, the
//! byte-level marks pre-tokenization and fertility statistics (`allam-tokenizer`), so that cleaning
//! and tokenization agree on every code point.
//!
//! | class | definition |
//! |---|---|
//! | [`is_arabic`] | a code point of one of Unicode's Arabic blocks ([`ARABIC_BLOCKS`]) |
//! | [`is_arabic_letter`] | an Arabic-block letter (general category `L*`) other than tatweel |
//! | [`is_arabic_mark`] | an Arabic-block nonspacing mark (`Mn`): harakat, tanwin, shadda, sukun, Quranic marks |
//! | [`TATWEEL`] | U+0640, the kashida (a modifier letter that only stretches a joint) |
//! | [`is_arabic_digit`] | Arabic-Indic and extended Arabic-Indic digits (`Nd`) |
//! | [`Script`] | a word's class for statistics and a source's expected script for cleaning |
//!
//! The tables are Unicode 16's; tests check them against the `regex` crate's Unicode tables.
use serde::{Deserialize, Serialize};

/// The Unicode blocks counted as Arabic script.
pub const ARABIC_BLOCKS: &[(u32, u32)] = &[
    (0x0600, 0x06FF),   // Arabic
    (0x0750, 0x077F),   // Arabic Supplement
    (0x0870, 0x089F),   // Arabic Extended-B
    (0x08A0, 0x08FF),   // Arabic Extended-A
    (0xFB50, 0xFDFF),   // Arabic Presentation Forms-A
    (0xFE70, 0xFEFF),   // Arabic Presentation Forms-B (FEFF, the BOM, excluded below)
    (0x10E60, 0x10E7F), // Rumi Numeral Symbols
    (0x10EC0, 0x10EFF), // Arabic Extended-C
    (0x1EE00, 0x1EEFF), // Arabic Mathematical Alphabetic Symbols
];

/// The Arabic combining marks: every nonspacing mark (general category `Mn`) of the Arabic blocks,
/// closed ranges of code points. Harakat U+064B–U+065F, superscript alef U+0670, Quranic marks
/// U+0610–U+061A and U+06D6–U+06ED without the five non-marks among them (U+06DD end of ayah, `Cf`;
/// U+06DE rub el hizb and U+06E9 place of sajdah, `So`; U+06E5–U+06E6 small waw and yeh, letters),
/// Arabic Extended-A/B marks U+0897–U+089F and U+08CA–U+08FF without U+08E2 (disputed end of ayah,
/// `Cf`), and Arabic Extended-C U+10EFC–U+10EFF.
pub const ARABIC_MARKS: &[(u32, u32)] = &[
    (0x0610, 0x061A),
    (0x064B, 0x065F),
    (0x0670, 0x0670),
    (0x06D6, 0x06DC),
    (0x06DF, 0x06E4),
    (0x06E7, 0x06E8),
    (0x06EA, 0x06ED),
    (0x0897, 0x089F),
    (0x08CA, 0x08E1),
    (0x08E3, 0x08FF),
    (0x10EFC, 0x10EFF),
];

/// The Arabic letters: every letter (general category `L*`) of the Arabic blocks except
/// [`TATWEEL`], closed ranges of code points (presentation forms and mathematical letters included).
pub const ARABIC_LETTERS: &[(u32, u32)] = &[
    (0x0620, 0x063F),
    (0x0641, 0x064A),
    (0x066E, 0x066F),
    (0x0671, 0x06D3),
    (0x06D5, 0x06D5),
    (0x06E5, 0x06E6),
    (0x06EE, 0x06EF),
    (0x06FA, 0x06FC),
    (0x06FF, 0x06FF),
    (0x0750, 0x077F),
    (0x0870, 0x0887),
    (0x0889, 0x088E),
    (0x08A0, 0x08C9),
    (0xFB50, 0xFBB1),
    (0xFBD3, 0xFD3D),
    (0xFD50, 0xFD8F),
    (0xFD92, 0xFDC7),
    (0xFDF0, 0xFDFB),
    (0xFE70, 0xFE74),
    (0xFE76, 0xFEFC),
    (0x10EC2, 0x10EC4),
    (0x1EE00, 0x1EE03),
    (0x1EE05, 0x1EE1F),
    (0x1EE21, 0x1EE22),
    (0x1EE24, 0x1EE24),
    (0x1EE27, 0x1EE27),
    (0x1EE29, 0x1EE32),
    (0x1EE34, 0x1EE37),
    (0x1EE39, 0x1EE39),
    (0x1EE3B, 0x1EE3B),
    (0x1EE42, 0x1EE42),
    (0x1EE47, 0x1EE47),
    (0x1EE49, 0x1EE49),
    (0x1EE4B, 0x1EE4B),
    (0x1EE4D, 0x1EE4F),
    (0x1EE51, 0x1EE52),
    (0x1EE54, 0x1EE54),
    (0x1EE57, 0x1EE57),
    (0x1EE59, 0x1EE59),
    (0x1EE5B, 0x1EE5B),
    (0x1EE5D, 0x1EE5D),
    (0x1EE5F, 0x1EE5F),
    (0x1EE61, 0x1EE62),
    (0x1EE64, 0x1EE64),
    (0x1EE67, 0x1EE6A),
    (0x1EE6C, 0x1EE72),
    (0x1EE74, 0x1EE77),
    (0x1EE79, 0x1EE7C),
    (0x1EE7E, 0x1EE7E),
    (0x1EE80, 0x1EE89),
    (0x1EE8B, 0x1EE9B),
    (0x1EEA1, 0x1EEA3),
    (0x1EEA5, 0x1EEA9),
    (0x1EEAB, 0x1EEBB),
];

/// Tatweel (kashida, U+0640): lengthens the joint between two letters and carries no sound.
pub const TATWEEL: char = '\u{0640}';

fn in_ranges(ranges: &[(u32, u32)], c: char) -> bool {
    let c = c as u32;
    ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// Whether `c` lies in one of the [`ARABIC_BLOCKS`] (the byte-order mark U+FEFF excepted).
pub fn is_arabic(c: char) -> bool {
    c != '\u{FEFF}' && in_ranges(ARABIC_BLOCKS, c)
}

/// Whether `c` is one of the [`ARABIC_LETTERS`].
pub fn is_arabic_letter(c: char) -> bool {
    in_ranges(ARABIC_LETTERS, c)
}

/// Whether `c` is one of the [`ARABIC_MARKS`].
pub fn is_arabic_mark(c: char) -> bool {
    in_ranges(ARABIC_MARKS, c)
}

/// Whether `c` is an Arabic-Indic digit (U+0660–0669) or extended Arabic-Indic digit (U+06F0–06F9).
pub fn is_arabic_digit(c: char) -> bool {
    matches!(c, '\u{0660}'..='\u{0669}' | '\u{06F0}'..='\u{06F9}')
}

/// Whether `text` contains any Arabic-block character.
pub fn has_arabic(text: &str) -> bool {
    text.chars().any(is_arabic)
}

/// Whether `c` is a Latin letter (ASCII, Latin-1, Latin Extended, fullwidth Latin).
pub fn is_latin(c: char) -> bool {
    c.is_ascii_alphabetic()
        || matches!(c as u32,
            0x00C0..=0x00D6 | 0x00D8..=0x00F6 | 0x00F8..=0x024F | 0x1E00..=0x1EFF
            | 0x2C60..=0x2C7F | 0xA720..=0xA7FF | 0xAB30..=0xAB6F
            | 0xFF21..=0xFF3A | 0xFF41..=0xFF5A)
}

/// A script class: of a word (statistics) or of a source (what cleaning expects it to be in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Script {
    /// Arabic: a word with at least one Arabic character.
    Arabic,
    /// Latin: a word with no Arabic character and at least one Latin letter.
    Latin,
    /// Everything else (digits, punctuation, other scripts).
    Other,
}

impl Script {
    /// All classes, in table order.
    pub const ALL: [Script; 3] = [Script::Arabic, Script::Latin, Script::Other];

    /// Classifies a (whitespace-free) word: Arabic wins over Latin, Latin over other.
    pub fn of_word(word: &str) -> Script {
        let mut latin = false;
        for c in word.chars() {
            if is_arabic(c) {
                return Script::Arabic;
            }
            latin |= is_latin(c);
        }
        if latin { Script::Latin } else { Script::Other }
    }

    /// Lower-case name, as used in tables, configs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Script::Arabic => "arabic",
            Script::Latin => "latin",
            Script::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use regex::Regex;

    use super::*;

    /// Every code point of the Arabic blocks, BOM excepted.
    fn arabic_block_chars() -> impl Iterator<Item = char> {
        ARABIC_BLOCKS
            .iter()
            .flat_map(|&(lo, hi)| (lo..=hi).filter_map(char::from_u32))
            .filter(|&c| is_arabic(c))
    }

    /// `class` (as a `regex` Unicode class) is exactly `ours` on the Arabic blocks.
    fn agrees(class: &str, ours: fn(char) -> bool, except: &[char]) -> usize {
        let unicode = Regex::new(&format!(r"^{class}$")).unwrap();
        let mut n = 0;
        for c in arabic_block_chars() {
            let expected = unicode.is_match(c.encode_utf8(&mut [0; 4])) && !except.contains(&c);
            assert_eq!(ours(c), expected, "U+{:04X} for {class}", c as u32);
            n += usize::from(expected);
        }
        n
    }

    #[test]
    fn the_classes_are_unicodes() {
        assert_eq!(
            agrees(r"\p{Mn}", is_arabic_mark, &[]),
            11 + 21 + 1 + 7 + 6 + 2 + 4 + 9 + 24 + 29 + 4
        );
        assert_eq!(agrees(r"\p{L}", is_arabic_letter, &[TATWEEL]), 1147);
        assert_eq!(agrees(r"\p{Nd}", is_arabic_digit, &[]), 20);
        assert!(Regex::new(r"^\p{Lm}$").unwrap().is_match("\u{0640}"));
        // The classes do not overlap.
        for c in arabic_block_chars() {
            let classes = [
                is_arabic_letter(c),
                is_arabic_mark(c),
                is_arabic_digit(c),
                c == TATWEEL,
            ];
            assert!(classes.iter().filter(|&&x| x).count() <= 1, "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn marks_letters_and_the_rest() {
        for c in [
            '\u{064E}', '\u{0651}', '\u{0670}', '\u{0610}', '\u{06E1}', '\u{08F0}',
        ] {
            assert!(is_arabic_mark(c) && !is_arabic_letter(c), "U+{:04X}", c as u32);
        }
        for c in ['ا', 'ب', 'ى', 'ٱ', 'ۥ', '\u{FEFB}'] {
            assert!(is_arabic_letter(c) && !is_arabic_mark(c), "U+{:04X}", c as u32);
        }
        for c in [
            '\u{06DD}', '\u{06DE}', '\u{06E9}', '\u{08E2}', '\u{060C}', '\u{061F}', TATWEEL,
        ] {
            assert!(
                is_arabic(c) && !is_arabic_letter(c) && !is_arabic_mark(c),
                "U+{:04X}",
                c as u32
            );
        }
        assert!(is_arabic_digit('٣') && is_arabic_digit('۳') && !is_arabic_digit('3'));
        assert!(!is_arabic('\u{FEFF}') && !is_arabic('a') && !is_arabic('\u{0301}'));
    }

    #[test]
    fn classifies_words() {
        assert_eq!(Script::of_word("كتاب"), Script::Arabic);
        assert_eq!(Script::of_word("(كتاب)."), Script::Arabic);
        assert_eq!(Script::of_word("book"), Script::Latin);
        assert_eq!(Script::of_word("café"), Script::Latin);
        assert_eq!(Script::of_word("2024"), Script::Other);
        assert_eq!(Script::of_word("книга"), Script::Other);
    }
}
