//! Held-out Arabic fertility of one expansion, and the English check, as one Markdown table row: the
//! figures of `docs/TOKENIZER.md` ("Byte-level bases: SmolLM2").
//!
//! ```text
//! cargo run --release -p allam-tokenizer --example heldout_fertility -- \
//!     --base B/tokenizer.json --corpus F.jsonl [--field text] (--hold-out 500 | --hold-out-every 10) \
//!     --vocab-size N [--min-frequency 1] [--normalize-arabic] [--keep-base-pre-tokenizer] \
//!     [--priority after-base] --english E.txt --out DIR
//! ```
//!
//! The corpus's documents are split: all but the last `--hold-out` are the training corpus
//! (`DIR/train.jsonl`), the last ones the held-out texts (`DIR/heldout.jsonl`); or, with
//! `--hold-out-every N`, every N-th document (the N-th, 2N-th, ...) is held out. The expansion is written
//! to `DIR/` (`tokenizer.json`, `expansion-report.json`). Every line of the English file is then encoded
//! with the base and the expanded tokenizer (special tokens added, as a model would see it) and the lines
//! whose ids differ are counted. With `--normalize-arabic` the base is also measured on the normalised
//! held-out texts ("base, normalised"), to separate what normalisation and the new pieces each give.
//! "pre-tokens/word" is what the base pre-tokenizer leaves to the model:
//! the held-out pre-tokens holding Arabic per Arabic word, a floor on tokens per word for any expansion
//! that keeps that pre-tokenizer (byte-level bases; `-` where the tokenizer has no pre-tokenizer).
//! "pre-tokenizer" says whether the expansion kept Arabic marks with their letters (`marks`) or kept the
//! base's (`base`); "decoded = input" counts the held-out texts that the expanded tokenizer decodes back
//! byte for byte (normalisation deletes diacritics, so its decode differs).
use std::io::Write;
use std::path::{Path, PathBuf};

use allam_tokenizer::byte_level::piece_bytes;
use allam_tokenizer::script::has_arabic;
use allam_tokenizer::{
    ArabicNormalization, Corpus, ExpansionConfig, MergePriority, Script, TextPipeline, Tokenizer,
    expand_files, load_tokenizer, measure,
};

mod common;
use common::flags;

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Writes `docs` as JSONL (`{"text": ...}`), one document a line.
fn write_jsonl(path: &Path, docs: &[String]) -> Result<(), Failure> {
    let mut file =
        std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?);
    for doc in docs {
        writeln!(file, "{}", serde_json::json!({ "text": doc }))?;
    }
    file.flush()?;
    Ok(())
}

/// Held-out pre-tokens holding Arabic per Arabic word, under `tokenizer`'s normalizer and pre-tokenizer.
fn pre_tokens_per_word(tokenizer: &Tokenizer, docs: &[String]) -> Result<Option<f64>, Failure> {
    if tokenizer.get_pre_tokenizer().is_none() {
        return Ok(None);
    }
    let pipeline = TextPipeline {
        normalizer: tokenizer.get_normalizer().cloned(),
        pre_tokenizer: tokenizer.get_pre_tokenizer().cloned(),
    };
    let (mut pre_tokens, mut words) = (0usize, 0usize);
    for doc in docs {
        words += doc
            .split_whitespace()
            .filter(|w| Script::of_word(w) == Script::Arabic)
            .count();
        for segment in pipeline.segments(doc)? {
            let text = piece_bytes(&segment).map_or(segment, |b| String::from_utf8_lossy(&b).into_owned());
            pre_tokens += usize::from(has_arabic(&text));
        }
    }
    Ok(Some(pre_tokens as f64 / words.max(1) as f64))
}

fn run() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let f = flags(&args);
    let one = |k: &str| -> Result<String, String> {
        f.get(k)
            .and_then(|v| v.first().cloned())
            .ok_or(format!("missing --{k}"))
    };
    let base_path = PathBuf::from(one("base")?);
    let field = one("field").unwrap_or_else(|_| "text".into());
    let every: Option<usize> = one("hold-out-every").ok().map(|n| n.parse()).transpose()?;
    let hold_out: usize = match every {
        Some(_) => 0,
        None => one("hold-out")?.parse()?,
    };
    let out = PathBuf::from(one("out")?);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;

    // Split the corpus: training documents, then the held-out tail.
    let docs: Vec<String> = Corpus::new([one("corpus")?], &field)
        .documents()
        .collect::<Result<_, _>>()?;
    let (train, heldout): (Vec<String>, Vec<String>) = match every {
        Some(n) if n >= 2 => {
            let (held, kept): (Vec<_>, Vec<_>) =
                docs.into_iter().enumerate().partition(|(i, _)| (i + 1) % n == 0);
            (
                kept.into_iter().map(|(_, d)| d).collect(),
                held.into_iter().map(|(_, d)| d).collect(),
            )
        }
        Some(n) => return Err(format!("--hold-out-every {n}: must be at least 2").into()),
        None if hold_out >= docs.len() => {
            return Err(format!(
                "--hold-out {hold_out} leaves no training documents of {}",
                docs.len()
            )
            .into());
        }
        None => {
            let mut docs = docs;
            let heldout = docs.split_off(docs.len() - hold_out);
            (docs, heldout)
        }
    };
    let heldout = &heldout[..];
    let (train_path, heldout_path) = (out.join("train.jsonl"), out.join("heldout.jsonl"));
    write_jsonl(&train_path, &train)?;
    write_jsonl(&heldout_path, heldout)?;

    let mut config = ExpansionConfig::new(one("vocab-size")?.parse()?);
    config.min_frequency = one("min-frequency").map_or(Ok(2), |s| s.parse())?;
    let normalize = f.contains_key("normalize-arabic");
    if normalize {
        config.normalization = ArabicNormalization::all();
    }
    config.arabic_marks_pre_tokenizer = !f.contains_key("keep-base-pre-tokenizer");
    if one("priority").as_deref() == Ok("after-base") {
        config.priority = MergePriority::AfterBase;
    }
    config.eval_corpus = Some(Corpus::new([&heldout_path], "text"));
    config.eval_documents = heldout.len();
    let expansion = expand_files(&base_path, &Corpus::new([&train_path], "text"), &config, &out)?;
    let report = &expansion.report;
    let expanded = &expansion.tokenizer.tokenizer;
    let base = load_tokenizer(&base_path)?;

    // English: every line, ids with special tokens, base vs expanded; and tokens per word.
    let english: Vec<String> = Corpus::new([one("english")?], "text")
        .documents()
        .collect::<Result<_, _>>()?;
    let mut differ = 0;
    for line in &english {
        let a = base.encode(line.as_str(), true)?;
        let b = expanded.encode(line.as_str(), true)?;
        differ += usize::from(a.get_ids() != b.get_ids());
    }
    let latin_tpw = |t: &Tokenizer| -> Result<f64, Failure> {
        let stats = measure("english", t, english.iter().cloned().map(Ok))?;
        Ok(stats.script(Script::Latin).map_or(0.0, |s| s.tokens_per_word))
    };
    let normalised: Vec<String> = heldout.iter().map(|d| config.normalization.apply(d)).collect();
    let base_normalised = measure("base", &base, normalised.into_iter().map(Ok))?
        .script(Script::Arabic)
        .map_or(0.0, |s| s.tokens_per_word);
    let mut decoded = 0;
    for doc in heldout {
        let ids = expanded.encode(doc.as_str(), false)?.get_ids().to_vec();
        decoded += usize::from(expanded.decode(&ids, false)? == *doc);
    }
    let floor = pre_tokens_per_word(expanded, heldout)?.map_or("-".to_string(), |x| format!("{x:.3}"));
    let name = base_path
        .parent()
        .and_then(Path::file_name)
        .map_or(base_path.display().to_string(), |n| {
            n.to_string_lossy().into_owned()
        });
    let fert = report.fertility.arabic_tokens_per_word;
    println!(
        "| base | family | pre-tokenizer | Arabic normalisation | priority | vocab | new pieces | held-out Arabic tokens/word: base | base, normalised | expanded | Arabic alone | pre-tokens/word | decoded = input | English lines identical | English tokens/word base / expanded |"
    );
    println!("|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {name} | {:?} | {} | {} | {:?} | {} → {} | {} | {:.3} | {base_normalised:.3} | {:.3} | {:.3} | {floor} | {decoded}/{} | {}/{} | {:.3} / {:.3} |",
        report.base_family,
        if report.pre_tokenizer.arabic_marks_attached {
            "marks"
        } else {
            "base"
        },
        if normalize { "all" } else { "none" },
        report.priority,
        report.base_vocab_size,
        report.vocab_size,
        report.new_pieces,
        fert.base,
        fert.expanded,
        fert.arabic_only,
        heldout.len(),
        english.len() - differ,
        english.len(),
        latin_tpw(&base)?,
        latin_tpw(expanded)?,
    );
    println!(
        "pre-tokenizer: {}\ntraining: {} documents, {} Arabic words, {} pieces learned; merges added {}, base merges moved {}, repaired {}, dropped {}; non-Arabic check on held-out: {} mismatches",
        report.pre_tokenizer.note,
        report.training.documents,
        report.training.words,
        report.training.learned_pieces,
        report.merge.merges_added,
        report.merge.base_merges_moved,
        report.merge.repaired,
        report.merge.dropped,
        report.non_arabic_check.mismatches
    );
    if differ > 0 {
        return Err(format!("{differ} English lines encode differently").into());
    }
    Ok(())
}
