//! Host-side token batches: plain, padded and packed rows, and the attention rules they imply.
use crate::error::{ModelError, Result};

/// Additive attention bias for a forbidden (query, key) pair.
///
/// Minus infinity rather than a large finite number: `exp` of a huge negative finite value takes
/// libm's underflow path (it sets `errno`), which cost ~12 % of a prefill, while `exp(-inf)` is an
/// early return. No row is ever fully forbidden (every query may attend to itself, padding
/// included), so the softmax maximum stays finite and no NaN can appear.
pub(crate) const MASKED: f32 = f32::NEG_INFINITY;

/// Which end of a row padding goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaddingSide {
    /// Tokens first, padding after (scoring, training).
    Right,
    /// Padding first, so that every row ends at the same column (batched generation).
    Left,
}

/// `rows × len` token ids with what the model needs to attend correctly:
/// - `position_ids`: rotary position of every token;
/// - `document_ids` (packed rows): a token attends only to earlier tokens of the same document;
/// - `attention_mask` (padded rows): `false` marks padding, which no token attends to.
///
/// A token at column `i` may attend to column `j` iff `j ≤ i`, both belong to the same document, and
/// `j` is not padding.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenBatch {
    /// Number of rows.
    pub rows: usize,
    /// Length of every row.
    pub len: usize,
    /// `[rows, len]` token ids, row-major.
    pub input_ids: Vec<u32>,
    /// `[rows, len]` rotary positions.
    pub position_ids: Vec<u32>,
    /// `[rows, len]` document of every token, for packed rows.
    pub document_ids: Option<Vec<u32>>,
    /// `[rows, len]`: `true` for real tokens, `false` for padding.
    pub attention_mask: Option<Vec<bool>>,
}

impl TokenBatch {
    /// One unpadded sequence.
    pub fn single(ids: &[u32]) -> Self {
        Self {
            rows: 1,
            len: ids.len(),
            input_ids: ids.to_vec(),
            position_ids: (0..ids.len() as u32).collect(),
            document_ids: None,
            attention_mask: None,
        }
    }

    /// Rows of unequal length padded with `pad_id` to the longest one. Positions count real tokens
    /// only, so a row's tokens get the positions they would have alone.
    pub fn padded(rows: &[Vec<u32>], pad_id: u32, side: PaddingSide) -> Self {
        let len = rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut batch = Self {
            rows: rows.len(),
            len,
            input_ids: Vec::with_capacity(rows.len() * len),
            position_ids: Vec::with_capacity(rows.len() * len),
            document_ids: None,
            attention_mask: Some(Vec::with_capacity(rows.len() * len)),
        };
        let mask = batch.attention_mask.as_mut().expect("just set");
        for row in rows {
            let pad = len - row.len();
            let (lead, trail) = match side {
                PaddingSide::Left => (pad, 0),
                PaddingSide::Right => (0, pad),
            };
            batch.input_ids.extend(std::iter::repeat_n(pad_id, lead));
            batch.input_ids.extend_from_slice(row);
            batch.input_ids.extend(std::iter::repeat_n(pad_id, trail));
            batch.position_ids.extend(std::iter::repeat_n(0, lead));
            batch.position_ids.extend(0..row.len() as u32);
            batch.position_ids.extend(std::iter::repeat_n(0, trail));
            mask.extend(std::iter::repeat_n(false, lead));
            mask.extend(std::iter::repeat_n(true, row.len()));
            mask.extend(std::iter::repeat_n(false, trail));
        }
        batch
    }

    /// Packed rows: several documents per row, told apart by `document_ids`; positions restart at 0
    /// at every document boundary.
    pub fn packed(rows: usize, len: usize, input_ids: Vec<u32>, document_ids: Vec<u32>) -> Result<Self> {
        if input_ids.len() != rows * len || document_ids.len() != rows * len {
            return Err(ModelError::Input(format!(
                "packed batch of {rows}×{len} needs {} ids and document ids, got {} and {}",
                rows * len,
                input_ids.len(),
                document_ids.len()
            )));
        }
        let mut position_ids = Vec::with_capacity(rows * len);
        for row in document_ids.chunks(len.max(1)) {
            let mut pos = 0u32;
            for (i, doc) in row.iter().enumerate() {
                pos = if i > 0 && row[i - 1] == *doc { pos + 1 } else { 0 };
                position_ids.push(pos);
            }
        }
        Ok(Self {
            rows,
            len,
            input_ids,
            position_ids,
            document_ids: Some(document_ids),
            attention_mask: None,
        })
    }

    /// Checks lengths and that every id is below `vocab_size`.
    pub fn validate(&self, vocab_size: usize) -> Result<()> {
        let n = self.rows * self.len;
        let lens = [
            ("input_ids", Some(self.input_ids.len())),
            ("position_ids", Some(self.position_ids.len())),
            ("document_ids", self.document_ids.as_ref().map(Vec::len)),
            ("attention_mask", self.attention_mask.as_ref().map(Vec::len)),
        ];
        for (name, found) in lens {
            if let Some(found) = found.filter(|&f| f != n) {
                return Err(ModelError::Input(format!(
                    "{name} has {found} entries, expected {} rows × {} = {n}",
                    self.rows, self.len
                )));
            }
        }
        if n == 0 {
            return Err(ModelError::Input("empty batch".into()));
        }
        if let Some((i, id)) = self
            .input_ids
            .iter()
            .enumerate()
            .find(|(_, id)| **id as usize >= vocab_size)
        {
            return Err(ModelError::Input(format!(
                "token id {id} at row {} column {} is outside the vocabulary of {vocab_size}",
                i / self.len,
                i % self.len
            )));
        }
        Ok(())
    }

    /// Whether column `j` of `row` is a real token.
    pub(crate) fn is_real(&self, row: usize, j: usize) -> bool {
        self.attention_mask.as_ref().is_none_or(|m| m[row * self.len + j])
    }

    /// The additive attention bias `[rows, len, len]` (query, key) for a forward pass without cache.
    pub(crate) fn attention_bias(&self) -> Vec<f32> {
        let n = self.len;
        let mut bias = vec![MASKED; self.rows * n * n];
        for row in 0..self.rows {
            let docs = self.document_ids.as_ref().map(|d| &d[row * n..(row + 1) * n]);
            for i in 0..n {
                let out = &mut bias[(row * n + i) * n..(row * n + i + 1) * n];
                for j in 0..=i {
                    let same_doc = docs.is_none_or(|d| d[i] == d[j]);
                    if j == i || (same_doc && self.is_real(row, j)) {
                        out[j] = 0.0;
                    }
                }
            }
        }
        bias
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_positions_count_real_tokens() {
        let b = TokenBatch::padded(&[vec![5, 6, 7], vec![8]], 0, PaddingSide::Left);
        assert_eq!(b.input_ids, vec![5, 6, 7, 0, 0, 8]);
        assert_eq!(b.position_ids, vec![0, 1, 2, 0, 0, 0]);
        assert_eq!(
            b.attention_mask.unwrap(),
            vec![true, true, true, false, false, true]
        );
    }

    #[test]
    fn packed_positions_restart_per_document() {
        let b = TokenBatch::packed(1, 5, vec![1, 2, 3, 4, 5], vec![0, 0, 1, 1, 1]).unwrap();
        assert_eq!(b.position_ids, vec![0, 1, 0, 1, 2]);
        let bias = b.attention_bias();
        // token 2 (first of document 1) must not see tokens 0 and 1.
        assert_eq!(&bias[2 * 5..3 * 5], &[MASKED, MASKED, 0.0, MASKED, MASKED]);
        assert_eq!(&bias[4 * 5..5 * 5], &[MASKED, MASKED, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn validate_names_the_bad_token() {
        let err = TokenBatch::single(&[1, 99]).validate(50).unwrap_err().to_string();
        assert!(err.contains("99") && err.contains("column 1"), "{err}");
    }
}
