//! The whole expansion: learn, merge, pad, measure, write.
//!
//! [`ExpansionConfig`] → [`expand`] → [`Expansion`] (an [`ExpandedTokenizer`] and an
//! [`ExpansionReport`]); [`expand_files`] does the same from and to disk, as `allam tokenizer expand`.
use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokenizers::models::bpe::BPE;
use tokenizers::{PreTokenizerWrapper, Tokenizer};

use crate::arabic_marks::attach_marks;
use crate::byte_level;
use crate::corpus::Corpus;
use crate::error::{Error, Result};
use crate::io::{load_tokenizer, write_atomic};
use crate::merge::{BaseBpe, BpeFamily, MergePriority, merge_vocab};
use crate::normalize::{ArabicNormalization, TextPipeline, compose_normalizer};
use crate::report::{
    ArabicFertility, ExpansionReport, FertilityReport, MergeSummary, NonArabicCheck, PreTokenizerSummary,
    TrainingSummary,
};
use crate::script::is_arabic;
use crate::stats::measure;
use crate::train::{ArabicVocab, TrainConfig, train_arabic_vocab};

/// What to expand to, and how.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExpansionConfig {
    /// The vocabulary size to end at (base pieces + new Arabic pieces), e.g. 64 000.
    pub vocab_size: u32,
    /// Round the final size up to a multiple of this with reserved entries (e.g. 128).
    pub pad_to_multiple: Option<u32>,
    /// Arabic normalisation before training (recorded in the output normalizer). Off by default.
    pub normalization: ArabicNormalization,
    /// Byte-level bases: rewrite the pre-tokenizer's regexes so that Arabic combining marks stay with the
    /// letters they follow, for training and in the output ([`crate::arabic_marks`]); text without those
    /// marks is split exactly as by the base. On by default; a pre-tokenizer that cannot be rewritten
    /// faithfully is then an error. Off keeps the base's pre-tokenizer. Byte-fallback bases are never
    /// changed.
    #[serde(default = "default_true")]
    pub arabic_marks_pre_tokenizer: bool,
    /// Where the learned merges sit in the priority list.
    pub priority: MergePriority,
    /// Minimum pair frequency for the trainer.
    pub min_frequency: u64,
    /// Longest learned piece, in characters (for byte-level bases the trainer counts bytes and is given
    /// twice this: an Arabic letter is two UTF-8 bytes).
    pub max_token_length: Option<usize>,
    /// Extra pieces to learn beyond the need, as a fraction of it (replacements for dropped pieces).
    pub train_margin: f64,
    /// How many documents to measure fertility on.
    pub eval_documents: usize,
    /// Held-out texts to measure fertility on; `None` measures on the leading training documents.
    #[serde(skip)]
    pub eval_corpus: Option<Corpus>,
}

impl ExpansionConfig {
    /// Defaults for a target vocabulary size.
    pub fn new(vocab_size: u32) -> Self {
        ExpansionConfig {
            vocab_size,
            pad_to_multiple: None,
            normalization: ArabicNormalization::default(),
            arabic_marks_pre_tokenizer: true,
            priority: MergePriority::default(),
            min_frequency: 2,
            max_token_length: Some(24),
            train_margin: 0.1,
            eval_documents: 2_000,
            eval_corpus: None,
        }
    }

    /// The final size: `vocab_size` rounded up to `pad_to_multiple` (saturating; [`Self::validate`]
    /// bounds both).
    pub fn final_vocab_size(&self) -> u32 {
        let size = u64::from(self.vocab_size);
        let padded = match self.pad_to_multiple {
            Some(m) if m > 1 => size.div_ceil(u64::from(m)) * u64::from(m),
            _ => size,
        };
        u32::try_from(padded).unwrap_or(u32::MAX)
    }

    /// Refuses sizes no model could use before any work is done: the vocabulary (padded) at most
    /// [`MAX_VOCAB_SIZE`], the multiple at most [`MAX_PAD_MULTIPLE`].
    pub fn validate(&self) -> Result<()> {
        if let Some(m) = self.pad_to_multiple
            && m > MAX_PAD_MULTIPLE
        {
            return Err(Error::Config(format!(
                "pad_to_multiple {m} is larger than the maximum {MAX_PAD_MULTIPLE} (hardware-friendly \
                 multiples are 8 to 128)"
            )));
        }
        let size = self.final_vocab_size();
        if self.vocab_size > MAX_VOCAB_SIZE || size > MAX_VOCAB_SIZE {
            return Err(Error::Config(format!(
                "vocabulary size {size} is larger than the maximum {MAX_VOCAB_SIZE} (the largest \
                 vocabularies in use have about 256,000 entries)"
            )));
        }
        if !(self.train_margin.is_finite() && (0.0..=10.0).contains(&self.train_margin)) {
            return Err(Error::Config(format!(
                "train_margin must be between 0 and 10, got {}",
                self.train_margin
            )));
        }
        Ok(())
    }
}

fn default_true() -> bool {
    true
}

/// The largest vocabulary an expansion may produce: 2,097,152 entries (8× the largest in use).
pub const MAX_VOCAB_SIZE: u32 = 1 << 21;
/// The largest `pad_to_multiple`.
pub const MAX_PAD_MULTIPLE: u32 = 1 << 16;

/// The expanded tokenizer and where its new entries are.
#[derive(Debug, Clone)]
pub struct ExpandedTokenizer {
    /// The tokenizer: the base composition with the merged model (and the Arabic normalisation, if any).
    pub tokenizer: Tokenizer,
    /// Ids below this are the base's, unchanged.
    pub base_vocab_size: u32,
    /// Ids of the new Arabic pieces.
    pub new_ids: Range<u32>,
    /// Ids of the reserved padding entries.
    pub padding_ids: Range<u32>,
}

impl ExpandedTokenizer {
    /// Writes `dir/tokenizer.json` (atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let json = self.tokenizer.to_string(true).map_err(Error::tokenizers)?;
        write_atomic(&dir.join("tokenizer.json"), json.as_bytes())
    }
}

/// The result of [`expand`].
#[derive(Debug, Clone)]
pub struct Expansion {
    /// The tokenizer.
    pub tokenizer: ExpandedTokenizer,
    /// What was done and measured.
    pub report: ExpansionReport,
}

/// Learns an Arabic vocabulary from `corpus` and merges it into `base` (see the [crate docs](crate)).
pub fn expand(
    base: &Tokenizer,
    base_name: &str,
    corpus: &Corpus,
    config: &ExpansionConfig,
) -> Result<Expansion> {
    let start = Instant::now();
    config.validate()?;
    let base_bpe = BaseBpe::from_tokenizer(base)?;
    if config.vocab_size <= base_bpe.vocab_size {
        return Err(Error::Config(format!(
            "vocabulary size {} must be larger than the base's {}",
            config.vocab_size, base_bpe.vocab_size
        )));
    }
    let needed = (config.vocab_size - base_bpe.vocab_size) as usize;
    let normalizer = compose_normalizer(&config.normalization, base.get_normalizer())?;
    let (pre_tokenizer, pre_tokenizer_summary) = choose_pre_tokenizer(base, base_bpe.family, config)?;
    let pipeline = TextPipeline {
        normalizer: normalizer.clone(),
        pre_tokenizer: pre_tokenizer.clone(),
    };

    // Learn enough to cover what the base already has and what will be dropped (and, for byte-level
    // bases, the 256 byte symbols the trainer starts from).
    let byte_level = base_bpe.family == BpeFamily::ByteLevel;
    let in_base = base_bpe
        .vocab
        .keys()
        .filter(|p| base_bpe.is_arabic_piece(p))
        .count();
    let alphabet = if byte_level { 256 } else { 0 };
    let requested = needed + in_base + alphabet + ((needed as f64 * config.train_margin) as usize).max(64);
    let train = TrainConfig {
        vocab_size: requested,
        min_frequency: config.min_frequency,
        max_token_length: config
            .max_token_length
            .map(|n| if byte_level { 2 * n } else { n }),
        ..TrainConfig::default()
    };
    let arabic = train_arabic_vocab(corpus, &pipeline, &train)?;
    let mut merged = merge_vocab(&base_bpe, &arabic, needed, config.priority)?;

    // Reserved entries up to the multiple: in the model's vocabulary, never produced by encoding.
    let final_size = config.final_vocab_size();
    for id in config.vocab_size..final_size {
        let mut name = format!("<|reserved_{}|>", id - config.vocab_size);
        while merged.vocab.contains_key(&name) {
            name.push('_');
        }
        merged.vocab.insert(name, id);
    }
    // Added tokens after the base model's own vocabulary (Llama-3's 256 special tokens) become
    // entries of the merged model's vocabulary too, at their ids, as Llama-2's `<s>` is: when
    // `tokenizers` loads a file it gives an added token the model does not know the next id after
    // the model's vocabulary, so the new pieces behind them would move every special token.
    for (id, token) in base.get_added_tokens_decoder() {
        merged.vocab.entry(token.content.clone()).or_insert(id);
    }
    let model = base_bpe.build_like(merged.vocab.clone(), merged.merges.clone())?;
    let mut tokenizer = base.clone();
    tokenizer.with_model(model);
    tokenizer.with_normalizer(normalizer.clone());
    tokenizer.with_pre_tokenizer(pre_tokenizer);
    check_reloads_the_same(&tokenizer, final_size)?;
    let expanded = ExpandedTokenizer {
        tokenizer,
        base_vocab_size: base_bpe.vocab_size,
        new_ids: base_bpe.vocab_size..config.vocab_size,
        padding_ids: config.vocab_size..final_size,
    };

    // Measure on held-out texts, or on the first documents of the corpus.
    let eval_corpus = config.eval_corpus.as_ref().unwrap_or(corpus);
    let eval: Vec<String> = eval_corpus
        .documents()
        .take(config.eval_documents)
        .collect::<Result<_>>()?;
    let arabic_only = arabic_only_tokenizer(&base_bpe, &arabic, merged.trainer_merges_used, &pipeline, base)?;
    let docs = || eval.iter().cloned().map(Ok);
    let base_stats = measure("base", base, docs())?;
    let arabic_stats = measure("arabic-only", &arabic_only, docs())?;
    let expanded_stats = measure("expanded", &expanded.tokenizer, docs())?;
    let headline = ArabicFertility::from_stats(&base_stats, &arabic_stats, &expanded_stats);
    let mismatches = non_arabic_mismatches(base, &expanded.tokenizer, &eval)?;

    let mut dropped_examples = merged.dropped.clone();
    dropped_examples.truncate(20);
    let report = ExpansionReport {
        base: base_name.to_string(),
        corpus: corpus
            .files()
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect(),
        eval_corpus: config
            .eval_corpus
            .as_ref()
            .map(|c| c.files().iter().map(|(p, _)| p.display().to_string()).collect()),
        base_vocab_size: base_bpe.vocab_size,
        base_family: base_bpe.family,
        base_ignores_merges: base_bpe.ignores_merges(),
        requested_vocab_size: config.vocab_size,
        pad_to_multiple: config.pad_to_multiple,
        vocab_size: final_size,
        new_pieces: merged.new_pieces.len() as u32,
        new_ids: [expanded.new_ids.start, expanded.new_ids.end],
        padding: final_size - config.vocab_size,
        normalization: config.normalization,
        priority: config.priority,
        pre_tokenizer: pre_tokenizer_summary,
        training: TrainingSummary {
            requested_pieces: requested,
            learned_pieces: arabic.len(),
            merges_used: merged.trainer_merges_used,
            documents: arabic.documents,
            words: arabic.words,
            seconds: arabic.seconds,
        },
        merge: MergeSummary {
            merges_added: merged.merges_added,
            base_merges_moved: merged.base_merges_moved,
            repaired: merged.repaired.len(),
            dropped: merged.dropped.len(),
            dropped_examples,
            rounds: merged.rounds,
            all_new_pieces_reachable: true,
        },
        fertility: FertilityReport {
            documents: eval.len() as u64,
            base: base_stats,
            arabic_only: arabic_stats,
            expanded: expanded_stats,
            arabic_tokens_per_word: headline,
        },
        non_arabic_check: NonArabicCheck {
            documents: eval.len() as u64,
            mismatches,
        },
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok(Expansion {
        tokenizer: expanded,
        report,
    })
}

/// The pre-tokenizer of the expanded tokenizer (and of training), with what was done: for byte-level
/// bases the base's rewritten by [`attach_marks`] unless `config` turns that off; otherwise the base's.
fn choose_pre_tokenizer(
    base: &Tokenizer,
    family: BpeFamily,
    config: &ExpansionConfig,
) -> Result<(Option<PreTokenizerWrapper>, PreTokenizerSummary)> {
    let kept = |note: &str| {
        Ok((
            base.get_pre_tokenizer().cloned(),
            PreTokenizerSummary {
                arabic_marks_attached: false,
                note: note.to_string(),
            },
        ))
    };
    if family == BpeFamily::ByteFallback {
        return kept(
            "base pre-tokenizer kept: a byte-fallback base has no regex that separates marks from letters",
        );
    }
    if !config.arabic_marks_pre_tokenizer {
        return kept("base pre-tokenizer kept (arabic_marks_pre_tokenizer = false)");
    }
    let Some(base_pre) = base.get_pre_tokenizer() else {
        return kept("the base has no pre-tokenizer");
    };
    match attach_marks(base_pre)? {
        Some(rewritten) => Ok((
            Some(rewritten),
            PreTokenizerSummary {
                arabic_marks_attached: true,
                note:
                    "letter classes \\p{L} of the pre-tokenizer regexes extended with the Arabic combining \
                       marks; text without them is split as by the base"
                        .to_string(),
            },
        )),
        None => kept("base pre-tokenizer kept: it has no \\p{L} letter class to extend"),
    }
}

/// [`expand`] from files: reads `base_path`, writes `out_dir/tokenizer.json`,
/// `out_dir/tokenizer_config.json` (copied from the base's directory when there is one) and
/// `out_dir/expansion-report.json`.
pub fn expand_files(
    base_path: &Path,
    corpus: &Corpus,
    config: &ExpansionConfig,
    out_dir: &Path,
) -> Result<Expansion> {
    let base = load_tokenizer(base_path)?;
    let expansion = expand(&base, &base_path.display().to_string(), corpus, config)?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    expansion.tokenizer.save(out_dir)?;
    let base_config = base_path.with_file_name("tokenizer_config.json");
    if base_config.is_file() {
        let bytes = std::fs::read(&base_config).map_err(|e| Error::io(&base_config, e))?;
        write_atomic(&out_dir.join("tokenizer_config.json"), &bytes)?;
    }
    let report_path = out_dir.join("expansion-report.json");
    let json = serde_json::to_vec_pretty(&expansion.report).map_err(|error| Error::Json {
        path: report_path.clone(),
        error,
    })?;
    write_atomic(&report_path, &json)?;
    Ok(expansion)
}

/// The learned Arabic vocabulary (its alphabet and its first `merges` merges) as a tokenizer of its own:
/// the same normalizer, pre-tokenizer and decoder; for everything outside the vocabulary `<unk>` and the
/// 256 `<0xXX>` byte pieces (byte-fallback bases) or the 256 byte symbols (byte-level bases).
pub fn arabic_only_tokenizer(
    base: &BaseBpe,
    arabic: &ArabicVocab,
    merges: usize,
    pipeline: &TextPipeline,
    base_tokenizer: &Tokenizer,
) -> Result<Tokenizer> {
    let mut vocab: HashMap<String, u32> = HashMap::new();
    let specials: Vec<String> = match base.family {
        BpeFamily::ByteFallback => std::iter::once("<unk>".to_string())
            .chain((0..=255u8).map(|b| format!("<0x{b:02X}>")))
            .collect(),
        BpeFamily::ByteLevel => byte_level::alphabet().iter().map(char::to_string).collect(),
    };
    let merges = &arabic.merges[..merges.min(arabic.merges.len())];
    let learned = arabic
        .alphabet
        .iter()
        .cloned()
        .chain(merges.iter().map(|(a, b)| format!("{a}{b}")));
    for piece in specials.into_iter().chain(learned) {
        let next = vocab.len() as u32;
        vocab.entry(piece).or_insert(next);
    }
    let model: BPE = base.build_like(vocab, merges.to_vec())?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_normalizer(pipeline.normalizer.clone());
    tokenizer.with_pre_tokenizer(pipeline.pre_tokenizer.clone());
    tokenizer.with_decoder(base_tokenizer.get_decoder().cloned());
    Ok(tokenizer)
}

/// Documents whose non-Arabic remainder encodes differently under `expanded` than under `base`.
pub fn non_arabic_mismatches(base: &Tokenizer, expanded: &Tokenizer, docs: &[String]) -> Result<u64> {
    use rayon::prelude::*;
    docs.par_iter()
        .map(|doc| {
            let text: String = doc.chars().filter(|c| !is_arabic(*c)).collect();
            let a = base.encode(text.as_str(), true).map_err(Error::tokenizers)?;
            let b = expanded.encode(text.as_str(), true).map_err(Error::tokenizers)?;
            Ok(u64::from(a.get_ids() != b.get_ids()))
        })
        .try_reduce(|| 0, |a, b| Ok(a + b))
}

/// Checks that `tokenizer`, written to JSON and read back as `tokenizers` (and `transformers`) read
/// it, gives every id below `size` the same token and keeps every added token's id.
fn check_reloads_the_same(tokenizer: &Tokenizer, size: u32) -> Result<()> {
    let json = tokenizer.to_string(false).map_err(Error::tokenizers)?;
    let reloaded: Tokenizer = json.parse().map_err(Error::tokenizers)?;
    for id in 0..size {
        let (was, now) = (tokenizer.id_to_token(id), reloaded.id_to_token(id));
        if was != now {
            return Err(Error::Config(format!(
                "the expanded tokenizer does not survive a save and load: id {id} is {was:?} before \
                 and {now:?} after (a base whose added tokens overlap its vocabulary?)"
            )));
        }
    }
    Ok(())
}
