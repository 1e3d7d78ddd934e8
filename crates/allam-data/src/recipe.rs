//! The TOML recipe: tokenizer, sequence length, seed, language mixture and sources.
//!
//! ```toml
//! tokenizer = "path/to/tokenizer.json"
//! seq_len = 2048
//! seed = 1234
//! # optional: eos_token = "</s>", add_bos = true, split_documents = true
//! [languages]            # P(language); must sum to 1
//! en = 0.55
//! ar = 0.225
//! ar_translated = 0.225
//! [clean]                # defaults for every source (see CleanConfig)
//! min_chars = 20
//! [[sources]]
//! name = "ar-books"
//! language = "ar"
//! domain = "books"
//! multiplier = 3.0
//! paths = ["data/ar_books/*.jsonl.gz"]
//! text_field = "text"
//! [sources.clean]        # per-source overrides
//! script = "arabic"
//! [[sources]]
//! name = "quran-pairs"
//! language = "ar_translated"
//! paths = ["data/pairs.jsonl"]
//! [sources.parallel]     # fields = ["en", "ar"], mode = "pair" | "first" | "second", template
//! ```
//!
//! Paths (tokenizer and sources) are relative to the recipe file's directory; source paths may be
//! glob patterns and are expanded in sorted order.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::clean::{CleanConfig, Script};
use crate::error::{DataError, Result};
use crate::source::{ParallelSpec, detect};

/// Tolerance on `Σ P(language) = 1`.
pub const LANGUAGE_SUM_TOLERANCE: f64 = 1e-6;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecipe {
    tokenizer: PathBuf,
    seq_len: usize,
    seed: u64,
    #[serde(default)]
    eos_token: Option<String>,
    #[serde(default = "yes")]
    add_bos: bool,
    #[serde(default = "yes")]
    split_documents: bool,
    languages: BTreeMap<String, f64>,
    #[serde(default)]
    clean: Option<toml::Table>,
    sources: Vec<RawSource>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: String,
    language: String,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default = "one")]
    multiplier: f64,
    paths: Vec<String>,
    #[serde(default = "text")]
    text_field: String,
    #[serde(default)]
    parallel: Option<ParallelSpec>,
    #[serde(default)]
    clean: Option<toml::Table>,
}

fn one() -> f64 {
    1.0
}

fn text() -> String {
    "text".into()
}

/// A validated recipe with paths resolved against the recipe's directory.
#[derive(Clone, Debug)]
pub struct Recipe {
    /// The recipe file (for error messages).
    pub path: PathBuf,
    /// The tokenizer JSON.
    pub tokenizer: PathBuf,
    /// Tokens per packed sequence.
    pub seq_len: usize,
    /// Seed of every random choice (shuffles, parallel directions, MinHash).
    pub seed: u64,
    /// EOS token appended after each document (default: the first of `</s>`, `<|endoftext|>`,
    /// `<eos>`, `<|end_of_text|>` the tokenizer knows).
    pub eos_token: Option<String>,
    /// Prepend the tokenizer's BOS (its post-processor's special tokens) to each document: on by
    /// default, so a document reads in training as in evaluation and generation (`transformers`
    /// encodes with the post-processor, and Llama-2's tokenizer adds BOS). Tokenizers without a
    /// BOS in their post-processor (Qwen2, SmolLM2) add nothing either way.
    pub add_bos: bool,
    /// Let a document that does not fit continue in the source's next sequence (no padding); when
    /// false, the rest of the sequence is padded and the document starts the next one.
    pub split_documents: bool,
    /// `P(language)`, summing to 1.
    pub languages: BTreeMap<String, f64>,
    /// The sources, in recipe order.
    pub sources: Vec<SourceSpec>,
}

/// One `[[sources]]` entry.
#[derive(Clone, Debug)]
pub struct SourceSpec {
    /// Unique name (`[A-Za-z0-9._-]+`), also the shard file name.
    pub name: String,
    /// Key into `[languages]`.
    pub language: String,
    /// Free-form domain label (books, encyclopedia, speech, …), reported only.
    pub domain: Option<String>,
    /// Per-domain multiplier (> 0).
    pub multiplier: f64,
    /// Path or glob patterns, already joined to the recipe's directory.
    pub patterns: Vec<PathBuf>,
    /// JSON / Parquet text field for monolingual sources.
    pub text_field: String,
    /// Present for parallel sources.
    pub parallel: Option<ParallelSpec>,
    /// Cleaning settings (recipe defaults merged with the source's overrides).
    pub clean: CleanConfig,
}

impl Recipe {
    /// Reads and validates a recipe file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses and validates recipe text; `path` names it in errors and its directory is the base
    /// of relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let err = |m: String| DataError::recipe(path, m);
        let raw: RawRecipe = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new(""));
        if raw.seq_len < 2 {
            return Err(err(format!("seq_len = {} (expected at least 2)", raw.seq_len)));
        }
        if raw.languages.is_empty() {
            return Err(err("[languages] is empty (expected P(language) entries)".into()));
        }
        for (lang, p) in &raw.languages {
            if !p.is_finite() || *p < 0.0 {
                return Err(err(format!(
                    "languages.{lang} = {p} (expected a probability ≥ 0)"
                )));
            }
        }
        let sum: f64 = raw.languages.values().sum();
        if (sum - 1.0).abs() > LANGUAGE_SUM_TOLERANCE {
            let shown = (sum * 1e9).round() / 1e9;
            return Err(err(format!(
                "[languages] sums to {shown} (expected 1: {})",
                raw.languages
                    .iter()
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if raw.sources.is_empty() {
            return Err(err("no [[sources]]".into()));
        }
        let mut names = BTreeSet::new();
        let mut sources = Vec::new();
        for s in raw.sources {
            let at = |m: String| err(format!("source `{}`: {m}", s.name));
            if s.name.is_empty()
                || !s
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                || s.name.starts_with('.')
            {
                return Err(at(
                    "name must be non-empty [A-Za-z0-9._-] (it names the shard file)".into(),
                ));
            }
            if !names.insert(s.name.clone()) {
                return Err(at("duplicate source name".into()));
            }
            if !raw.languages.contains_key(&s.language) {
                return Err(at(format!(
                    "language `{}` is not in [languages] (expected one of {:?})",
                    s.language,
                    raw.languages.keys().collect::<Vec<_>>()
                )));
            }
            if !s.multiplier.is_finite() || s.multiplier <= 0.0 {
                return Err(at(format!("multiplier = {} (expected > 0)", s.multiplier)));
            }
            if s.paths.is_empty() {
                return Err(at("paths is empty".into()));
            }
            let mut table = raw.clean.clone().unwrap_or_default();
            for (k, v) in s.clean.clone().unwrap_or_default() {
                table.insert(k, v);
            }
            let clean: CleanConfig = toml::Value::Table(table)
                .try_into()
                .map_err(|e| at(format!("[clean]: {e}")))?;
            if clean.script == Some(Script::Other) {
                return Err(at(
                    "[clean] script = \"other\" (expected \"arabic\" or \"latin\")".into(),
                ));
            }
            if let Some(t) = clean.near_duplicate_threshold
                && !(t > 0.0 && t <= 1.0)
            {
                return Err(at(format!("near_duplicate_threshold = {t} (expected in (0, 1])")));
            }
            sources.push(SourceSpec {
                patterns: s.paths.iter().map(|p| base.join(p)).collect(),
                name: s.name,
                language: s.language,
                domain: s.domain,
                multiplier: s.multiplier,
                text_field: s.text_field,
                parallel: s.parallel,
                clean,
            });
        }
        for (lang, p) in &raw.languages {
            if *p > 0.0 && !sources.iter().any(|s| &s.language == lang) {
                return Err(err(format!(
                    "language `{lang}` has P = {p} but no source (expected at least one [[sources]] with language = \"{lang}\")"
                )));
            }
        }
        Ok(Recipe {
            path: path.to_path_buf(),
            tokenizer: base.join(raw.tokenizer),
            seq_len: raw.seq_len,
            seed: raw.seed,
            eos_token: raw.eos_token,
            add_bos: raw.add_bos,
            split_documents: raw.split_documents,
            languages: raw.languages,
            sources,
        })
    }
}

impl SourceSpec {
    /// Expands the source's patterns to existing files (sorted within each pattern, duplicates
    /// removed). A pattern matching nothing is an error naming the source and the pattern.
    pub fn files(&self) -> Result<Vec<PathBuf>> {
        let mut out: Vec<PathBuf> = Vec::new();
        for pattern in &self.patterns {
            let text = pattern.to_string_lossy();
            let missing = || DataError::MissingInput {
                source_name: self.name.clone(),
                pattern: text.to_string(),
            };
            let mut matched: Vec<PathBuf> = if text.contains(['*', '?', '[']) {
                glob::glob(&text)
                    .map_err(|e| DataError::MissingInput {
                        source_name: self.name.clone(),
                        pattern: format!("{text} (bad glob: {e})"),
                    })?
                    .filter_map(|p| p.ok())
                    .filter(|p| p.is_file())
                    .collect()
            } else if pattern.is_file() {
                vec![pattern.clone()]
            } else {
                Vec::new()
            };
            if matched.is_empty() {
                return Err(missing());
            }
            matched.sort();
            for m in matched {
                if detect(&m).is_none() {
                    return Err(DataError::UnknownFormat { path: m });
                }
                if !out.contains(&m) {
                    out.push(m);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
tokenizer = "tok.json"
seq_len = 16
seed = 1
[languages]
en = 0.5
ar = 0.5
[clean]
min_chars = 3
[[sources]]
name = "en-a"
language = "en"
paths = ["en/*.txt"]
[[sources]]
name = "ar-a"
language = "ar"
multiplier = 2.0
paths = ["ar.jsonl"]
[sources.clean]
script = "arabic"
"#;

    #[test]
    fn parses_and_merges_clean_defaults() {
        let r = Recipe::parse(BASE, Path::new("/r/recipe.toml")).unwrap();
        assert!(
            r.add_bos,
            "documents start with BOS unless the recipe says otherwise"
        );
        assert_eq!(r.tokenizer, PathBuf::from("/r/tok.json"));
        assert_eq!(r.sources[0].patterns, vec![PathBuf::from("/r/en/*.txt")]);
        assert_eq!(r.sources[0].clean.min_chars, 3);
        assert_eq!(r.sources[0].clean.script, None);
        assert_eq!(r.sources[1].clean.min_chars, 3);
        assert_eq!(r.sources[1].clean.script, Some(crate::clean::Script::Arabic));
        assert_eq!(r.sources[1].multiplier, 2.0);
        assert!(r.split_documents);
    }

    #[test]
    fn languages_must_sum_to_one() {
        let bad = BASE.replace("ar = 0.5", "ar = 0.4");
        let e = Recipe::parse(&bad, Path::new("r.toml")).unwrap_err().to_string();
        assert!(e.contains("r.toml") && e.contains("sums to 0.9"), "{e}");
    }

    #[test]
    fn other_validation_errors() {
        let cases = [
            (
                BASE.replace("language = \"ar\"", "language = \"fr\""),
                "not in [languages]",
            ),
            (BASE.replace("multiplier = 2.0", "multiplier = 0.0"), "multiplier"),
            (BASE.replace("\"ar-a\"", "\"en-a\""), "duplicate"),
            (BASE.replace("seq_len = 16", "seq_len = 1"), "seq_len"),
            (BASE.replace("script = \"arabic\"", "scrpt = 1"), "[clean]"),
            (BASE.replace("seed = 1", "seed = 1\nbogus = 2"), "bogus"),
        ];
        for (text, want) in cases {
            let e = Recipe::parse(&text, Path::new("r.toml")).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn missing_files_name_source_and_pattern() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recipe::parse(BASE, &dir.path().join("recipe.toml")).unwrap();
        let e = r.sources[0].files().unwrap_err().to_string();
        assert!(e.contains("en-a") && e.contains("en/*.txt"), "{e}");
        let e = r.sources[1].files().unwrap_err().to_string();
        assert!(e.contains("ar.jsonl"), "{e}");
        std::fs::create_dir(dir.path().join("en")).unwrap();
        std::fs::write(dir.path().join("en/b.txt"), "x").unwrap();
        std::fs::write(dir.path().join("en/a.txt"), "x").unwrap();
        let files = r.sources[0].files().unwrap();
        assert_eq!(
            files,
            vec![dir.path().join("en/a.txt"), dir.path().join("en/b.txt")]
        );
    }
}
