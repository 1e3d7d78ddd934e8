//! The expansion report (`expansion-report.json`): what was learned, what was merged, and Arabic
//! fertility before and after.
use serde::{Deserialize, Serialize};

use crate::merge::{BpeFamily, MergePriority};
use crate::normalize::ArabicNormalization;
use crate::script::Script;
use crate::stats::TokenizerStats;

/// Everything an expansion did and measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExpansionReport {
    /// Where the base tokenizer came from.
    pub base: String,
    /// The corpus files.
    pub corpus: Vec<String>,
    /// Held-out files fertility was measured on (`None`: the leading training documents).
    pub eval_corpus: Option<Vec<String>>,
    /// Base vocabulary size (one past its largest id).
    pub base_vocab_size: u32,
    /// Byte-fallback or byte-level base.
    pub base_family: BpeFamily,
    /// Whether the base (and so the expanded tokenizer) takes whole pre-tokens found in the vocabulary
    /// directly (`ignore_merges`).
    pub base_ignores_merges: bool,
    /// The requested vocabulary size.
    pub requested_vocab_size: u32,
    /// The requested multiple, if any.
    pub pad_to_multiple: Option<u32>,
    /// Final vocabulary size (requested size, rounded up to the multiple).
    pub vocab_size: u32,
    /// New Arabic pieces (ids `new_ids[0]..new_ids[1]`).
    pub new_pieces: u32,
    /// Id range of the new pieces, half-open.
    pub new_ids: [u32; 2],
    /// Reserved padding entries after the new pieces (never produced by encoding).
    pub padding: u32,
    /// Arabic normalisation applied before training and recorded in the output normalizer.
    pub normalization: ArabicNormalization,
    /// Where the learned merges sit relative to the base merges.
    pub priority: MergePriority,
    /// Whether the pre-tokenizer was rewritten to keep Arabic marks with their letters, and why (not).
    #[serde(default)]
    pub pre_tokenizer: PreTokenizerSummary,
    /// The training run.
    pub training: TrainingSummary,
    /// The merge.
    pub merge: MergeSummary,
    /// Fertility of the base, the Arabic tokenizer alone, and the expanded tokenizer.
    pub fertility: FertilityReport,
    /// Text without Arabic must encode to the base ids: checked on the evaluation documents with their
    /// Arabic characters removed.
    pub non_arabic_check: NonArabicCheck,
    /// Wall time of the whole expansion, seconds.
    pub seconds: f64,
}

/// What became of the base's pre-tokenizer ([`crate::arabic_marks`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PreTokenizerSummary {
    /// The expanded tokenizer's pre-tokenizer (and the one the Arabic words were learned through) keeps
    /// Arabic combining marks with the letters they follow.
    pub arabic_marks_attached: bool,
    /// What was done, or why the base's pre-tokenizer was kept.
    pub note: String,
}

/// The Arabic vocabulary training run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingSummary {
    /// Pieces asked of the trainer (needed + what the base already has + a margin).
    pub requested_pieces: usize,
    /// Pieces learned (alphabet + merges).
    pub learned_pieces: usize,
    /// Learned merges the new pieces were taken from (a prefix of the trainer's list).
    pub merges_used: usize,
    /// Documents read.
    pub documents: u64,
    /// Arabic words counted.
    pub words: u64,
    /// Seconds.
    pub seconds: f64,
}

/// The merge of the learned vocabulary into the base.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MergeSummary {
    /// Learned merges in the model.
    pub merges_added: usize,
    /// Base merges moved up with the learned ones.
    pub base_merges_moved: usize,
    /// Learned pieces reached through a different pair than the trainer's (number).
    pub repaired: usize,
    /// Learned pieces dropped as unreachable (number), replaced by later ones.
    pub dropped: usize,
    /// A few of the dropped pieces, for inspection.
    pub dropped_examples: Vec<String>,
    /// Build-and-verify rounds.
    pub rounds: usize,
    /// Every new piece was verified to encode to its own id (always true in a written report).
    pub all_new_pieces_reachable: bool,
}

/// Fertility before and after.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FertilityReport {
    /// Documents measured (of the held-out texts, or the first ones of the corpus).
    pub documents: u64,
    /// The base tokenizer.
    pub base: TokenizerStats,
    /// The learned Arabic vocabulary alone — its alphabet and the prefix of its merges that the new pieces
    /// were taken from — with the same normalizer and byte fallback for everything else.
    pub arabic_only: TokenizerStats,
    /// The expanded tokenizer.
    pub expanded: TokenizerStats,
    /// Arabic tokens per word of the three, and expanded / Arabic-only.
    pub arabic_tokens_per_word: ArabicFertility,
}

/// The headline figures.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ArabicFertility {
    /// Base tokenizer.
    pub base: f64,
    /// Arabic tokenizer alone.
    pub arabic_only: f64,
    /// Expanded tokenizer.
    pub expanded: f64,
    /// expanded / arabic_only (1.0 = as good as the Arabic tokenizer alone).
    pub expanded_over_arabic_only: f64,
}

impl ArabicFertility {
    /// Reads the Arabic tokens-per-word of the three measurements.
    pub fn from_stats(base: &TokenizerStats, arabic: &TokenizerStats, expanded: &TokenizerStats) -> Self {
        let tpw = |s: &TokenizerStats| s.script(Script::Arabic).map_or(0.0, |a| a.tokens_per_word);
        let (b, a, e) = (tpw(base), tpw(arabic), tpw(expanded));
        ArabicFertility {
            base: b,
            arabic_only: a,
            expanded: e,
            expanded_over_arabic_only: if a > 0.0 { e / a } else { 0.0 },
        }
    }
}

/// Result of the non-Arabic identity check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NonArabicCheck {
    /// Documents checked.
    pub documents: u64,
    /// Documents whose ids differ from the base's (must be 0).
    pub mismatches: u64,
}

impl ExpansionReport {
    /// The before/after table in Markdown.
    pub fn fertility_table(&self) -> String {
        crate::stats::render_table(&[
            self.fertility.base.clone(),
            self.fertility.arabic_only.clone(),
            self.fertility.expanded.clone(),
        ])
    }
}
