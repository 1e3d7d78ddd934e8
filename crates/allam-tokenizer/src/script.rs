//! Which script a character or a word belongs to (Arabic / Latin / other).
//!
//! "Arabic" here means a code point in one of Unicode's Arabic blocks. That is the definition the
//! expansion guarantee rests on: every learned piece consists of Arabic-block characters (and `▁`), so a
//! text with no Arabic-block character encodes exactly as under the base tokenizer.
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

/// Whether `c` lies in one of the [`ARABIC_BLOCKS`].
pub fn is_arabic(c: char) -> bool {
    let c = c as u32;
    c != 0xFEFF && ARABIC_BLOCKS.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// Whether `c` is a Latin letter (ASCII, Latin-1, Latin Extended, fullwidth Latin).
pub fn is_latin(c: char) -> bool {
    c.is_ascii_alphabetic()
        || matches!(c as u32,
            0x00C0..=0x00D6 | 0x00D8..=0x00F6 | 0x00F8..=0x024F | 0x1E00..=0x1EFF
            | 0x2C60..=0x2C7F | 0xA720..=0xA7FF | 0xAB30..=0xAB6F
            | 0xFF21..=0xFF3A | 0xFF41..=0xFF5A)
}

/// The script class of a word, for statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Script {
    /// The word contains at least one Arabic character.
    Arabic,
    /// No Arabic character, at least one Latin letter.
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

    /// Lower-case name, as used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Script::Arabic => "arabic",
            Script::Latin => "latin",
            Script::Other => "other",
        }
    }
}

/// Whether `text` contains any Arabic-block character.
pub fn has_arabic(text: &str) -> bool {
    text.chars().any(is_arabic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_words() {
        assert_eq!(Script::of_word("كتاب"), Script::Arabic);
        assert_eq!(Script::of_word("(كتاب)."), Script::Arabic);
        assert_eq!(Script::of_word("book"), Script::Latin);
        assert_eq!(Script::of_word("café"), Script::Latin);
        assert_eq!(Script::of_word("1984"), Script::Other);
        assert_eq!(Script::of_word("книга"), Script::Other);
        assert!(is_arabic('\u{064E}')); // fatha (Inherited script, Arabic block)
        assert!(is_arabic('\u{0640}')); // tatweel
        assert!(!is_arabic('\u{FEFF}'));
        assert!(!has_arabic("plain English, code() { x += 1; }"));
    }
}
