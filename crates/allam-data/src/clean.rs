//! Per-document cleaning: optional Arabic normalisation, then length, script and repetition checks.
//!
//! Each check that removes a document increments its own counter in [`DropCounts`], which ends up
//! in `report.json` under `dropped`. Deduplication (exact and near) lives in [`crate::dedup`]; the
//! order of the whole pipeline is
//!
//! `normalise → empty → too_short → script → repetition → exact_duplicate → near_duplicate`.
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::hash::IdentityBuild;

/// The writing system a source is expected to be in (`arabic` or `latin`; allam-script's classes).
pub use allam_script::Script;

/// Cleaning settings. A recipe's top-level `[clean]` table sets defaults for every source, and a
/// source's own `[sources.clean]` table overrides individual keys. A value of `0` disables a
/// numeric check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CleanConfig {
    /// Minimum document length in characters (after normalisation and trimming).
    pub min_chars: usize,
    /// Minimum number of whitespace-separated words.
    pub min_words: usize,
    /// Expected script; `None` disables the language check. The check sees the whole document, so
    /// leave it unset for parallel sources in `pair` mode (they hold both languages).
    pub script: Option<Script>,
    /// Minimum share of the expected script among Arabic + Latin letters, in `[0, 1]`.
    pub min_script_share: f64,
    /// Longest allowed run of one repeated non-space character (`"!!!!!!!"`, `"ههههههه"`).
    pub max_char_run: usize,
    /// Maximum share of word 3-gram occurrences that belong to 3-grams seen more than once in the
    /// document (Gopher-style spam check), applied to documents of at least
    /// [`CleanConfig::repetition_min_words`] words.
    pub max_duplicate_ngram_share: f64,
    /// Documents shorter than this many words skip the n-gram repetition check.
    pub repetition_min_words: usize,
    /// Drop exact duplicates (xxh3 of the normalised text, see [`crate::dedup::dedup_key`]).
    pub dedup_exact: bool,
    /// Drop near duplicates whose estimated Jaccard similarity of character 5-gram sets reaches
    /// this threshold (MinHash + LSH); `None` disables.
    pub near_duplicate_threshold: Option<f64>,
    /// Number of MinHash permutations used for near-duplicate detection.
    pub minhash_permutations: usize,
    /// Normalise Arabic letter variants: alef forms (أ إ آ ٱ → ا), alef maqsura (ى → ي), tatweel removed.
    pub normalize_arabic: bool,
    /// Remove Arabic diacritics: every Arabic combining mark (harakat, tanwin, shadda, sukun, Quranic
    /// marks; `allam_script::is_arabic_mark`).
    pub strip_diacritics: bool,
}

impl Default for CleanConfig {
    fn default() -> Self {
        CleanConfig {
            min_chars: 1,
            min_words: 0,
            script: None,
            min_script_share: 0.5,
            max_char_run: 40,
            max_duplicate_ngram_share: 0.6,
            repetition_min_words: 20,
            dedup_exact: true,
            near_duplicate_threshold: None,
            minhash_permutations: 128,
            normalize_arabic: false,
            strip_diacritics: false,
        }
    }
}

/// Why a document was dropped; the string form is the key in `report.json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Nothing left after trimming.
    Empty,
    /// Below `min_chars` or `min_words`.
    TooShort,
    /// Failed the script-share language check.
    Script,
    /// A character run or repeated n-grams above the limits.
    Repetition,
    /// Same normalised text as an earlier document of the source.
    ExactDuplicate,
    /// MinHash-estimated Jaccard similarity ≥ threshold with an earlier document.
    NearDuplicate,
}

impl DropReason {
    /// All reasons, in pipeline order.
    pub const ALL: [DropReason; 6] = [
        DropReason::Empty,
        DropReason::TooShort,
        DropReason::Script,
        DropReason::Repetition,
        DropReason::ExactDuplicate,
        DropReason::NearDuplicate,
    ];

    /// The report key.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Empty => "empty",
            DropReason::TooShort => "too_short",
            DropReason::Script => "script",
            DropReason::Repetition => "repetition",
            DropReason::ExactDuplicate => "exact_duplicate",
            DropReason::NearDuplicate => "near_duplicate",
        }
    }
}

/// Counts of dropped documents per [`DropReason`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropCounts(pub [u64; 6]);

impl DropCounts {
    /// Counts one drop.
    pub fn add(&mut self, reason: DropReason) {
        self.0[reason as usize] += 1;
    }

    /// The count for one reason.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason as usize]
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// As a map from report key to count (every key present).
    pub fn to_map(&self) -> BTreeMap<String, u64> {
        DropReason::ALL
            .iter()
            .map(|r| (r.as_str().to_string(), self.get(*r)))
            .collect()
    }
}

pub use allam_script::{TATWEEL, is_arabic_letter, is_arabic_mark, is_latin};

/// Applies the configured Arabic normalisation; returns the input unchanged when both are off.
pub fn normalize_arabic(text: &str, letters: bool, diacritics: bool) -> String {
    if !letters && !diacritics {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if diacritics && is_arabic_mark(c) {
            continue;
        }
        if letters {
            match c {
                TATWEEL => continue,
                'أ' | 'إ' | 'آ' | 'ٱ' => out.push('ا'),
                'ى' => out.push('ي'),
                _ => out.push(c),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Share of Arabic letters among Arabic + Latin letters (`None` when the text has neither).
pub fn arabic_share(text: &str) -> Option<f64> {
    let (mut ar, mut la) = (0u64, 0u64);
    for c in text.chars() {
        if is_arabic_letter(c) {
            ar += 1;
        } else if is_latin(c) {
            la += 1;
        }
    }
    (ar + la > 0).then(|| ar as f64 / (ar + la) as f64)
}

/// Length of the longest run of one repeated non-whitespace character.
pub fn longest_char_run(text: &str) -> usize {
    let (mut best, mut run, mut prev) = (0usize, 0usize, None);
    for c in text.chars() {
        if Some(c) == prev && !c.is_whitespace() {
            run += 1;
        } else {
            run = 1;
        }
        prev = Some(c);
        if !c.is_whitespace() {
            best = best.max(run);
        }
    }
    best
}

/// Share of word 3-gram occurrences whose 3-gram occurs more than once in the text.
pub fn duplicate_ngram_share(words: &[&str]) -> f64 {
    if words.len() < 3 {
        return 0.0;
    }
    let hashes: Vec<u64> = words
        .iter()
        .map(|w| xxhash_rust::xxh3::xxh3_64(w.as_bytes()))
        .collect();
    let mut counts: HashMap<u64, u32, IdentityBuild> =
        HashMap::with_capacity_and_hasher(words.len(), IdentityBuild::default());
    for h in hashes.windows(3) {
        let key = allam_io::rng::mix(allam_io::rng::mix(h[0], h[1]), h[2]);
        *counts.entry(key).or_default() += 1;
    }
    let total = (words.len() - 2) as f64;
    let duplicated: u32 = counts.values().filter(|&&n| n > 1).sum();
    duplicated as f64 / total
}

/// Normalises and checks one document. Returns the cleaned text, or why it was dropped.
/// Deduplication is not part of this (it needs state across documents); see [`crate::dedup`].
pub fn clean_document(text: &str, cfg: &CleanConfig) -> Result<String, DropReason> {
    let normalised = normalize_arabic(text.trim(), cfg.normalize_arabic, cfg.strip_diacritics);
    let text = normalised.trim();
    if text.is_empty() {
        return Err(DropReason::Empty);
    }
    if text.chars().count() < cfg.min_chars {
        return Err(DropReason::TooShort);
    }
    let word_count = if cfg.min_words > 0 || cfg.max_duplicate_ngram_share > 0.0 {
        text.split_whitespace().count()
    } else {
        0
    };
    if word_count < cfg.min_words {
        return Err(DropReason::TooShort);
    }
    if let Some(script) = cfg.script {
        let ok = match (arabic_share(text), script) {
            (None, _) => false,
            (Some(s), Script::Arabic) => s >= cfg.min_script_share,
            (Some(s), Script::Latin) => 1.0 - s >= cfg.min_script_share,
            // Refused when the recipe is read; there is no share of "other" to check.
            (Some(_), Script::Other) => true,
        };
        if !ok {
            return Err(DropReason::Script);
        }
    }
    if cfg.max_char_run > 0 && longest_char_run(text) > cfg.max_char_run {
        return Err(DropReason::Repetition);
    }
    if cfg.max_duplicate_ngram_share > 0.0
        && word_count >= cfg.repetition_min_words.max(3)
        && duplicate_ngram_share(&text.split_whitespace().collect::<Vec<_>>()) > cfg.max_duplicate_ngram_share
    {
        return Err(DropReason::Repetition);
    }
    Ok(if text.len() == normalised.len() {
        normalised
    } else {
        text.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> CleanConfig {
        CleanConfig::default()
    }

    #[test]
    fn empty_and_short() {
        assert_eq!(clean_document("   ", &cfg()), Err(DropReason::Empty));
        let c = CleanConfig {
            min_chars: 10,
            ..cfg()
        };
        assert_eq!(clean_document("short", &c), Err(DropReason::TooShort));
        assert_eq!(
            clean_document("long enough text", &c).unwrap(),
            "long enough text"
        );
        let c = CleanConfig {
            min_words: 3,
            ..cfg()
        };
        assert_eq!(clean_document("two words", &c), Err(DropReason::TooShort));
    }

    #[test]
    fn script_check() {
        let ar = CleanConfig {
            script: Some(Script::Arabic),
            min_script_share: 0.8,
            ..cfg()
        };
        assert!(clean_document("مرحبا بالعالم", &ar).is_ok());
        assert_eq!(clean_document("hello world", &ar), Err(DropReason::Script));
        assert_eq!(clean_document("12345 !!", &ar), Err(DropReason::Script));
        // Mostly Latin with one Arabic word: below 0.8 Arabic.
        assert_eq!(
            clean_document("this is a sentence with مرحبا", &ar),
            Err(DropReason::Script)
        );
        let la = CleanConfig {
            script: Some(Script::Latin),
            ..cfg()
        };
        assert!(clean_document("hello world", &la).is_ok());
        assert_eq!(clean_document("مرحبا بالعالم", &la), Err(DropReason::Script));
        // Diacritics are not letters and do not dilute the share.
        assert_eq!(arabic_share("بِسْمِ"), Some(1.0));
    }

    #[test]
    fn repetition_checks() {
        assert_eq!(
            clean_document("wow!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", &cfg()),
            Err(DropReason::Repetition)
        );
        let spam = "buy now cheap pills ".repeat(10);
        assert_eq!(clean_document(&spam, &cfg()), Err(DropReason::Repetition));
        let fine = "the quick brown fox jumps over the lazy dog while a small bird sings \
                    on the old wooden fence near the river bank at dawn";
        assert!(clean_document(fine, &cfg()).is_ok());
    }

    #[test]
    fn arabic_normalisation() {
        assert_eq!(normalize_arabic("أحمد إلى آخر", true, false), "احمد الي اخر");
        assert_eq!(normalize_arabic("كتـــاب", true, false), "كتاب");
        assert_eq!(normalize_arabic("بِسْمِ اللَّهِ", false, true), "بسم الله");
        assert_eq!(normalize_arabic("أ", false, false), "أ");
        let c = CleanConfig {
            normalize_arabic: true,
            strip_diacritics: true,
            ..cfg()
        };
        assert_eq!(clean_document("  إِلَى  ", &c).unwrap(), "الي");
    }

    #[test]
    fn drop_counts_map_has_every_key() {
        let mut d = DropCounts::default();
        d.add(DropReason::Script);
        d.add(DropReason::Script);
        let m = d.to_map();
        assert_eq!(m.len(), 6);
        assert_eq!(m["script"], 2);
        assert_eq!(d.total(), 2);
    }
}
