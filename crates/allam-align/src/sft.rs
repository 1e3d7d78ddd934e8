//! Supervised fine-tuning rows: ids with next-token labels on assistant tokens only, packed
//! several conversations to a fixed-length row, never splitting one, truncating by whole turns and
//! reporting every cut.
use allam_model::{TextTokenizer, TokenBatch};
use serde::Serialize;

use crate::conversation::Conversation;
use crate::error::{AlignError, Result};
use crate::template::{ChatTemplate, encode_conversation};

/// The label of a position that is not trained (PyTorch's `ignore_index`).
pub const IGNORE: i32 = -100;

/// Document id of padding in a packed row.
pub const PAD_DOCUMENT: u32 = u32::MAX;

/// One tokenized conversation.
///
/// `labels[i]` is the target predicted *at* position `i`: `ids[i + 1]` when token `i + 1` is
/// trainable, [`IGNORE`] otherwise (already shifted, so the loss is
/// `cross_entropy(logits[i], labels[i])` over positions whose label is not [`IGNORE`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SftExample {
    /// Token ids.
    pub input_ids: Vec<u32>,
    /// Next-token targets, [`IGNORE`] where nothing is trained.
    pub labels: Vec<i32>,
}

impl SftExample {
    /// From ids and their trainable mask (as [`crate::template::tokenize`] gives).
    pub fn from_mask(input_ids: Vec<u32>, trainable: &[bool]) -> Result<Self> {
        if input_ids.len() != trainable.len() {
            return Err(AlignError::Input(format!(
                "{} ids but {} mask entries",
                input_ids.len(),
                trainable.len()
            )));
        }
        let labels = (0..input_ids.len())
            .map(|i| match trainable.get(i + 1) {
                Some(true) => input_ids[i + 1] as i32,
                _ => IGNORE,
            })
            .collect();
        Ok(Self { input_ids, labels })
    }

    /// Renders and tokenizes `conversation`.
    pub fn encode(
        conversation: &Conversation,
        template: &ChatTemplate,
        tokenizer: &TextTokenizer,
    ) -> Result<Self> {
        let (ids, mask) = encode_conversation(template, conversation, tokenizer)?;
        Self::from_mask(ids, &mask)
    }

    /// Whether token `j` is trained (some position predicts it).
    pub fn is_trained(&self, j: usize) -> bool {
        j > 0 && self.labels[j - 1] != IGNORE
    }

    /// The trainable mask over tokens, recovered from the labels.
    pub fn trainable_mask(&self) -> Vec<bool> {
        (0..self.input_ids.len()).map(|j| self.is_trained(j)).collect()
    }

    /// Exclusive end of every assistant turn (a run of trained tokens), in token positions.
    pub fn turn_ends(&self) -> Vec<usize> {
        let n = self.input_ids.len();
        (0..n)
            .filter(|&j| self.is_trained(j) && (j + 1 == n || !self.is_trained(j + 1)))
            .map(|j| j + 1)
            .collect()
    }

    /// Number of tokens with a loss.
    pub fn trained_tokens(&self) -> usize {
        self.labels.iter().filter(|&&l| l != IGNORE).count()
    }
}

/// One packed row of `seq_len` tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SftRow {
    /// Token ids, `pad_id` after the last document.
    pub input_ids: Vec<u32>,
    /// Shifted labels ([`SftExample`]'s convention); [`IGNORE`] on padding and at every document's
    /// last token, so no document predicts the next one's first token.
    pub labels: Vec<i32>,
    /// Which document each token belongs to (its index in the list given to [`pack_examples`]),
    /// [`PAD_DOCUMENT`] on padding.
    pub document_ids: Vec<u32>,
}

impl SftRow {
    /// The rows as one packed [`TokenBatch`] (positions restart per document; documents do not see
    /// each other) and the flattened labels `[rows × seq_len]`.
    pub fn batch(rows: &[SftRow]) -> Result<(TokenBatch, Vec<i32>)> {
        let len = rows.first().map_or(0, |r| r.input_ids.len());
        if rows.iter().any(|r| r.input_ids.len() != len) {
            return Err(AlignError::Input(
                "packed rows must all have the same length".into(),
            ));
        }
        let ids = rows.iter().flat_map(|r| r.input_ids.iter().copied()).collect();
        let docs = rows.iter().flat_map(|r| r.document_ids.iter().copied()).collect();
        let labels = rows.iter().flat_map(|r| r.labels.iter().copied()).collect();
        Ok((TokenBatch::packed(rows.len(), len, ids, docs)?, labels))
    }
}

/// What packing had to cut. Nothing is dropped or shortened without being counted here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TruncationReport {
    /// Conversations given.
    pub conversations: usize,
    /// Conversations kept, shortened to fewer turns.
    pub conversations_truncated: usize,
    /// Conversations dropped because their first assistant turn does not fit in a row.
    pub conversations_dropped: usize,
    /// Assistant turns removed by truncating or dropping.
    pub assistant_turns_dropped: usize,
    /// Tokens removed by truncating or dropping.
    pub tokens_cut: usize,
    /// Rows produced.
    pub rows: usize,
    /// Real (non-padding) tokens in the rows.
    pub tokens: usize,
    /// Padding tokens in the rows.
    pub padding: usize,
}

/// Packs examples into rows of `seq_len` tokens, greedy first-fit in order: each example goes to
/// the first row with room for it, else starts a new row. No example is split across rows.
///
/// An example longer than `seq_len` keeps its longest prefix that ends at the end of an assistant
/// turn (the trained tokens and their closing token) and fits; if even its first assistant turn
/// does not fit, it is dropped. Both are counted in the [`TruncationReport`].
pub fn pack_examples(
    examples: &[SftExample],
    seq_len: usize,
    pad_id: u32,
) -> Result<(Vec<SftRow>, TruncationReport)> {
    if seq_len < 2 {
        return Err(AlignError::Input(format!(
            "seq_len must be at least 2, got {seq_len}"
        )));
    }
    let mut report = TruncationReport {
        conversations: examples.len(),
        ..Default::default()
    };
    let mut rows: Vec<SftRow> = Vec::new();
    let mut used: Vec<usize> = Vec::new();
    for (doc, example) in examples.iter().enumerate() {
        if example.input_ids.len() != example.labels.len() {
            return Err(AlignError::Input(format!(
                "example {doc}: {} ids but {} labels",
                example.input_ids.len(),
                example.labels.len()
            )));
        }
        let ends = example.turn_ends();
        let keep = if example.input_ids.len() <= seq_len {
            example.input_ids.len()
        } else {
            let fitting = ends.iter().rev().find(|&&e| e <= seq_len).copied();
            report.tokens_cut += example.input_ids.len() - fitting.unwrap_or(0);
            report.assistant_turns_dropped += ends.iter().filter(|&&e| Some(e) > fitting).count();
            match fitting {
                Some(keep) => {
                    report.conversations_truncated += 1;
                    keep
                }
                None => {
                    report.conversations_dropped += 1;
                    continue;
                }
            }
        };
        let slot = match used.iter().position(|&u| u + keep <= seq_len) {
            Some(slot) => slot,
            None => {
                rows.push(SftRow {
                    input_ids: vec![pad_id; seq_len],
                    labels: vec![IGNORE; seq_len],
                    document_ids: vec![PAD_DOCUMENT; seq_len],
                });
                used.push(0);
                rows.len() - 1
            }
        };
        let (row, at) = (&mut rows[slot], used[slot]);
        row.input_ids[at..at + keep].copy_from_slice(&example.input_ids[..keep]);
        row.labels[at..at + keep].copy_from_slice(&example.labels[..keep]);
        // The last kept token's label points past the document: never trained.
        row.labels[at + keep - 1] = IGNORE;
        row.document_ids[at..at + keep].fill(doc as u32);
        used[slot] += keep;
    }
    report.rows = rows.len();
    report.tokens = used.iter().sum();
    report.padding = rows.len() * seq_len - report.tokens;
    Ok((rows, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// prompt `p` tokens (ids 10+), then per turn `a` trained tokens (ids 50+) and a user turn.
    fn example(prompt: usize, turns: &[usize]) -> SftExample {
        let (mut ids, mut mask) = (vec![], vec![]);
        for k in 0..prompt {
            ids.push(10 + k as u32);
            mask.push(false);
        }
        for (t, &a) in turns.iter().enumerate() {
            if t > 0 {
                ids.extend([20, 21]);
                mask.extend([false, false]);
            }
            for k in 0..a {
                ids.push(50 + k as u32);
                mask.push(true);
            }
        }
        SftExample::from_mask(ids, &mask).unwrap()
    }

    #[test]
    fn labels_are_shifted_targets_of_trained_tokens() {
        let ex = SftExample::from_mask(vec![1, 5, 6, 2, 7], &[false, false, true, true, false]).unwrap();
        assert_eq!(ex.labels, vec![IGNORE, 6, 2, IGNORE, IGNORE]);
        assert_eq!(ex.turn_ends(), vec![4]);
        assert_eq!(ex.trainable_mask(), vec![false, false, true, true, false]);
    }

    #[test]
    fn packing_keeps_documents_apart_and_reports_cuts() {
        let examples = [
            example(3, &[2]),    // 5 tokens
            example(2, &[2, 3]), // 2+2+2+3 = 9 tokens: > 8, keeps first turn (4 tokens)
            example(6, &[4]),    // 10 tokens, first turn ends at 10 > 8: dropped
            example(1, &[2]),    // 3 tokens
        ];
        let (rows, report) = pack_examples(&examples, 8, 0).unwrap();
        assert_eq!(
            report,
            TruncationReport {
                conversations: 4,
                conversations_truncated: 1,
                conversations_dropped: 1,
                assistant_turns_dropped: 2,
                tokens_cut: 5 + 10,
                rows: 2,
                tokens: 12,
                padding: 4,
            }
        );
        // first fit: 5 tokens in row 0, 4 in row 1, 3 back in row 0
        assert_eq!(rows[0].document_ids, vec![0, 0, 0, 0, 0, 3, 3, 3]);
        assert_eq!(rows[1].document_ids[..4], [1, 1, 1, 1]);
        assert!(rows[1].document_ids[4..].iter().all(|&d| d == PAD_DOCUMENT));
        // no label crosses a document boundary, and padding is never trained
        for row in &rows {
            for i in 0..7 {
                if row.labels[i] != IGNORE {
                    assert_eq!(row.document_ids[i], row.document_ids[i + 1]);
                    assert_eq!(row.labels[i], row.input_ids[i + 1] as i32);
                }
            }
        }
        assert_eq!(
            rows[0].labels,
            vec![IGNORE, IGNORE, 50, 51, IGNORE, 50, 51, IGNORE]
        );
        let (batch, labels) = SftRow::batch(&rows).unwrap();
        assert_eq!(batch.position_ids[..8], [0, 1, 2, 3, 4, 0, 1, 2]);
        assert_eq!(labels.len(), 16);
    }
}
