//! How DPO pairs longer than the context are cut, in either of the two ways TRL's `DPOTrainer`
//! has cut them (`[dpo] truncation`):
//!
//! - `prompt-first` (the default; TRL ≤ 0.11's `tokenize_row`, the trainer of the paper's time):
//!   when the prompt plus the longer response exceeds `max_length`, the prompt is cut to
//!   `max_prompt_length` tokens (from the end or the start), then, if still too long, both
//!   responses keep their first `max_length − max_prompt_length` tokens. [`PairTruncation`].
//! - `sequence` (current TRL's `DataCollatorForPreference`): each prompt + response sequence is
//!   cut to `max_length` tokens on its own, keeping its start (`keep_start`, TRL's default now)
//!   or its end (`keep_end`); there is no prompt limit, and with `keep_start` a pair whose prompt
//!   alone fills `max_length` is dropped (it would keep no response token), as TRL drops it.
//!   [`SequenceTruncation`].
use serde::{Deserialize, Serialize};

use crate::dpo::DpoExample;
use crate::error::{AlignError, Result};

/// Which end of an over-long prompt (`prompt-first`) or sequence (`sequence`) is kept (TRL's
/// `truncation_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TruncationMode {
    /// The last tokens (TRL ≤ 0.11's default for the prompt: the turn being answered).
    #[default]
    KeepEnd,
    /// The first tokens (current TRL's default for a sequence).
    KeepStart,
}

/// TRL ≤ 0.11's cut: when the prompt plus the longer response exceeds `max_length`, the prompt
/// is cut to `max_prompt_length` tokens (from the end or the start); if that is still too long,
/// both responses keep their first `max_length − max_prompt_length` tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PairTruncation {
    /// Most tokens of prompt + response.
    pub max_length: usize,
    /// Most prompt tokens once a pair is too long.
    pub max_prompt_length: usize,
    /// Which end of the prompt is kept.
    pub mode: TruncationMode,
}

impl PairTruncation {
    /// Checks that a response keeps at least one token.
    pub fn validate(&self) -> Result<()> {
        if self.max_prompt_length == 0 || self.max_prompt_length >= self.max_length {
            return Err(AlignError::Input(format!(
                "max_prompt_length must be at least 1 and below the maximum length {} (the [data] \
                 seq_len), got {}",
                self.max_length, self.max_prompt_length
            )));
        }
        Ok(())
    }
}

/// Current TRL's cut: each prompt + response sequence keeps its first (`KeepStart`) or last
/// (`KeepEnd`) `max_length` tokens; with `KeepStart` a pair whose prompt alone fills
/// `max_length` is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SequenceTruncation {
    /// Most tokens of prompt + response.
    pub max_length: usize,
    /// Which end of each sequence is kept.
    pub mode: TruncationMode,
}

/// Either way of cutting pairs (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truncation {
    /// TRL ≤ 0.11: the prompt first, then the responses.
    PromptFirst(PairTruncation),
    /// Current TRL: each sequence on its own.
    Sequence(SequenceTruncation),
}

/// What cutting a list of pairs did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TruncationCount {
    /// Pairs cut and kept.
    pub cut: usize,
    /// Pairs dropped because no response token would remain.
    pub dropped: usize,
}

impl Truncation {
    /// Most tokens of prompt + response.
    pub fn max_length(&self) -> usize {
        match self {
            Self::PromptFirst(p) => p.max_length,
            Self::Sequence(s) => s.max_length,
        }
    }

    /// Checks the limits leave every kept pair a response token.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::PromptFirst(p) => p.validate(),
            Self::Sequence(s) if s.max_length == 0 => Err(AlignError::Input(
                "the maximum length (the [data] seq_len) must be at least 1".into(),
            )),
            Self::Sequence(_) => Ok(()),
        }
    }

    /// Cuts every pair of `examples` (dropping those that would keep no response token) and
    /// counts what it did.
    pub fn apply(&self, examples: &mut Vec<DpoExample>) -> TruncationCount {
        let mut count = TruncationCount::default();
        examples.retain_mut(|pair| {
            let cut = match self {
                Self::PromptFirst(limits) => Some(pair.truncate(limits)),
                Self::Sequence(limits) => limits.truncate(pair),
            };
            match cut {
                Some(cut) => {
                    count.cut += usize::from(cut);
                    true
                }
                None => {
                    count.dropped += 1;
                    false
                }
            }
        });
        count
    }

    /// A sentence for the log: how over-long pairs are cut.
    pub fn describe(&self) -> String {
        let end = |mode: TruncationMode| match mode {
            TruncationMode::KeepEnd => "keeping its end",
            TruncationMode::KeepStart => "keeping its start",
        };
        match self {
            Self::PromptFirst(p) => format!(
                "prompt to {} tokens, {}, then responses",
                p.max_prompt_length,
                end(p.mode)
            ),
            Self::Sequence(s) => format!("each prompt + response sequence {}", end(s.mode)),
        }
    }
}

impl SequenceTruncation {
    /// Cuts both sequences of `pair`; `Some(whether anything was cut)`, or `None` when a
    /// sequence would keep no response token (the pair is to be dropped).
    pub fn truncate(&self, pair: &mut DpoExample) -> Option<bool> {
        let mut cut = false;
        for (ids, mask) in [
            (&mut pair.chosen_ids, &mut pair.chosen_mask),
            (&mut pair.rejected_ids, &mut pair.rejected_mask),
        ] {
            if ids.len() <= self.max_length {
                continue;
            }
            let range = match self.mode {
                TruncationMode::KeepStart => self.max_length..ids.len(),
                TruncationMode::KeepEnd => 0..ids.len() - self.max_length,
            };
            ids.drain(range.clone());
            mask.drain(range);
            cut = true;
        }
        let answered = |mask: &[bool]| mask.iter().any(|&m| m);
        (answered(&pair.chosen_mask) && answered(&pair.rejected_mask)).then_some(cut)
    }
}

/// Splits `(ids, mask)` at the response: the prompt is everything before its first response token.
fn prompt_len(mask: &[bool]) -> usize {
    mask.iter().position(|&m| m).unwrap_or(mask.len())
}

impl DpoExample {
    /// Cuts the pair to `limits` (see [`PairTruncation`]); says whether anything was cut.
    pub fn truncate(&mut self, limits: &PairTruncation) -> bool {
        let longer = (self.chosen_ids.len() - prompt_len(&self.chosen_mask))
            .max(self.rejected_ids.len() - prompt_len(&self.rejected_mask));
        let mut cut = false;
        for (ids, mask) in [
            (&mut self.chosen_ids, &mut self.chosen_mask),
            (&mut self.rejected_ids, &mut self.rejected_mask),
        ] {
            let prompt = prompt_len(mask);
            if prompt + longer <= limits.max_length {
                continue;
            }
            // First the prompt, from the chosen end …
            if prompt > limits.max_prompt_length {
                let range = match limits.mode {
                    TruncationMode::KeepStart => limits.max_prompt_length..prompt,
                    TruncationMode::KeepEnd => 0..prompt - limits.max_prompt_length,
                };
                ids.drain(range.clone());
                mask.drain(range);
                cut = true;
            }
            // … then, if still too long, the response keeps its start.
            let prompt = prompt_len(mask);
            if prompt + longer > limits.max_length {
                let keep = prompt + (limits.max_length - limits.max_prompt_length);
                if ids.len() > keep {
                    ids.truncate(keep);
                    mask.truncate(keep);
                    cut = true;
                }
            }
        }
        cut
    }
}

/// Cuts every pair to `limits` (TRL ≤ 0.11); returns how many were cut.
pub fn truncate_pairs(examples: &mut [DpoExample], limits: &PairTruncation) -> usize {
    examples
        .iter_mut()
        .map(|e| e.truncate(limits))
        .filter(|&cut| cut)
        .count()
}
