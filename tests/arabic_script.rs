//! Cleaning and tokenization agree on what an Arabic letter and mark are (allam-script): data
//! cleaning's `strip_diacritics` and the tokenizer's `strip_diacritics` remove the same code points,
//! tatweel is removed by both only when asked, and what either keeps is what the other keeps. Before
//! the one home, cleaning kept the Quranic marks U+0610–U+061A that the tokenizer removed, and removed
//! U+08E2, U+06DD, U+06DE and U+06E9 (not marks) that the tokenizer kept.
use allam::data::clean::normalize_arabic;
use allam::script::{ARABIC_BLOCKS, TATWEEL, is_arabic, is_arabic_letter, is_arabic_mark};
use allam::tokenizer::ArabicNormalization;

fn arabic_block_text() -> String {
    ARABIC_BLOCKS
        .iter()
        .flat_map(|&(lo, hi)| (lo..=hi).filter_map(char::from_u32))
        .filter(|&c| is_arabic(c))
        .collect()
}

#[test]
fn cleaning_and_tokenizer_normalisation_strip_the_same_marks() {
    let text = arabic_block_text();
    let tokenizer = ArabicNormalization {
        strip_diacritics: true,
        ..Default::default()
    };
    let cleaned = normalize_arabic(&text, false, true);
    assert_eq!(cleaned, tokenizer.apply(&text));
    let kept: String = text.chars().filter(|&c| !is_arabic_mark(c)).collect();
    assert_eq!(cleaned, kept);
    // The tokenizer's stored normalizer (a regex in tokenizer.json) does what `apply` does.
    let mut normalized = tokenizers::NormalizedString::from(text.as_str());
    for step in tokenizer.normalizers().unwrap() {
        tokenizers::Normalizer::normalize(&step, &mut normalized).unwrap();
    }
    assert_eq!(normalized.get(), kept);
    for c in ['\u{0610}', '\u{0615}', '\u{064E}', '\u{0670}', '\u{08F0}'] {
        assert!(!cleaned.contains(c), "U+{:04X} is a mark", c as u32);
    }
    for c in [
        '\u{08E2}', '\u{06DD}', '\u{06DE}', '\u{06E9}', '\u{06E5}', TATWEEL, 'ب',
    ] {
        assert!(cleaned.contains(c), "U+{:04X} is not a mark", c as u32);
    }
}

#[test]
fn letter_normalisation_removes_tatweel_in_both() {
    let text = "كتـــاب أحمد إلى";
    let tokenizer = ArabicNormalization {
        remove_tatweel: true,
        unify_alef: true,
        unify_ya: true,
        strip_diacritics: false,
    };
    assert_eq!(normalize_arabic(text, true, false), tokenizer.apply(text));
    assert!(normalize_arabic(text, true, false).chars().all(|c| c != TATWEEL));
    assert!(
        text.chars()
            .filter(|c| !c.is_whitespace())
            .all(|c| is_arabic_letter(c) || c == TATWEEL)
    );
}
