//! Packing documents into fixed-length sequences with per-token document and position ids.
//!
//! A [`PackedSequence`] holds `seq_len` tokens from one source. Several documents share a row;
//! `document_ids` number them `0, 1, …` within the row, and the model must let token `i` attend
//! to token `j ≤ i` only when `document_ids[i] == document_ids[j]`. `position_ids` restart at 0 at
//! every document start in the row (including the continuation of a document split across rows).
//!
//! `labels[i]` is the next token of the **same** document, or [`IGNORE_INDEX`] (−100): after a
//! document's EOS (the next token is another document's), and on padding. When a document
//! continues into the source's next row, the row's last label is that continuation's first
//! token, so every token of every document except its first is a target exactly once.
//!
//! Padding appears only with `split_documents = false` (the recipe option): a document that does
//! not fit the rest of a row starts the next row instead, and the gap is filled with the pad id,
//! document id [`PADDING_DOCUMENT`], position 0 and label −100. A document longer than a whole
//! row is cut into row-sized chunks either way.
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::blend::{PassOrder, SourceCursor};
use crate::shard::Shard;

/// Label value ignored by the loss (PyTorch's `ignore_index` convention).
pub const IGNORE_INDEX: i32 = -100;
/// Document id of padding tokens.
pub const PADDING_DOCUMENT: u32 = u32::MAX;

/// A slice of one document placed in a row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentSpan {
    /// Source name.
    pub source: String,
    /// Document index in the source's shard.
    pub document: u64,
    /// First row position of the span.
    pub start: u32,
    /// Number of tokens in the span.
    pub len: u32,
    /// Token offset of the span inside the document (> 0 for a continued document).
    pub offset: u32,
    /// Whether the document continues in the source's next row.
    pub continues: bool,
}

/// One packed training sequence (the model's packed-sequence input).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedSequence {
    /// The source every document of this row comes from.
    pub source: String,
    /// Token ids, exactly `seq_len`.
    pub input_ids: Vec<u32>,
    /// Next-token targets within the same document, [`IGNORE_INDEX`] elsewhere.
    pub labels: Vec<i32>,
    /// Per-token document id, `0, 1, …` in row order; [`PADDING_DOCUMENT`] on padding.
    pub document_ids: Vec<u32>,
    /// Per-token position, restarting at 0 for each document in the row.
    pub position_ids: Vec<u32>,
    /// The documents (or document pieces) in the row, in order.
    pub documents: Vec<DocumentSpan>,
}

impl PackedSequence {
    /// `labels[i] != IGNORE_INDEX`.
    pub fn loss_mask(&self) -> Vec<bool> {
        self.labels.iter().map(|&l| l != IGNORE_INDEX).collect()
    }

    /// Number of padding tokens.
    pub fn padding(&self) -> usize {
        self.document_ids
            .iter()
            .filter(|&&d| d == PADDING_DOCUMENT)
            .count()
    }

    /// Whether position `query` may attend to position `key` (causal, same document, no padding).
    pub fn may_attend(&self, query: usize, key: usize) -> bool {
        key <= query
            && self.document_ids[query] == self.document_ids[key]
            && self.document_ids[key] != PADDING_DOCUMENT
    }
}

/// A batch of packed sequences as flat row-major `[batch, seq_len]` arrays, ready for tensors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedBatch {
    /// Rows.
    pub batch: usize,
    /// Columns.
    pub seq_len: usize,
    /// `[batch, seq_len]` token ids.
    pub input_ids: Vec<u32>,
    /// `[batch, seq_len]` labels (−100 = ignore).
    pub labels: Vec<i32>,
    /// `[batch, seq_len]` document ids.
    pub document_ids: Vec<u32>,
    /// `[batch, seq_len]` position ids.
    pub position_ids: Vec<u32>,
    /// Per row: the source name.
    pub sources: Vec<String>,
    /// Per row: its document spans.
    pub documents: Vec<Vec<DocumentSpan>>,
}

impl PackedBatch {
    /// Stacks sequences of equal length.
    pub fn from_sequences(rows: Vec<PackedSequence>) -> Self {
        let seq_len = rows.first().map_or(0, |r| r.input_ids.len());
        let mut b = PackedBatch {
            batch: rows.len(),
            seq_len,
            input_ids: Vec::with_capacity(rows.len() * seq_len),
            labels: Vec::with_capacity(rows.len() * seq_len),
            document_ids: Vec::with_capacity(rows.len() * seq_len),
            position_ids: Vec::with_capacity(rows.len() * seq_len),
            sources: Vec::new(),
            documents: Vec::new(),
        };
        for r in rows {
            b.input_ids.extend(r.input_ids);
            b.labels.extend(r.labels);
            b.document_ids.extend(r.document_ids);
            b.position_ids.extend(r.position_ids);
            b.sources.push(r.source);
            b.documents.push(r.documents);
        }
        b
    }
}

/// Packs rows from one source's shard, advancing that source's [`SourceCursor`].
#[derive(Debug)]
pub struct SourcePacker {
    name: String,
    shard: Arc<Shard>,
    /// The current pass and its order (a few words, rebuilt when the cursor's pass changes).
    order: Option<(u64, PassOrder)>,
}

impl SourcePacker {
    /// A packer over a (non-empty) shard.
    pub fn new(name: String, shard: Arc<Shard>) -> Self {
        SourcePacker {
            name,
            shard,
            order: None,
        }
    }

    /// The shard.
    pub fn shard(&self) -> &Shard {
        &self.shard
    }

    fn document_at(&mut self, seed: u64, cursor: &SourceCursor) -> usize {
        let pass = cursor.pass;
        let documents = self.shard.len() as u64;
        let (_, order) = match &mut self.order {
            Some(current) if current.0 == pass => current,
            slot => slot.insert((pass, PassOrder::new(seed, &self.name, pass, documents))),
        };
        order.document(cursor.position) as usize
    }

    /// Fills one row of `seq_len` tokens, continuing where `cursor` stands.
    pub fn next_row(
        &mut self,
        seed: u64,
        cursor: &mut SourceCursor,
        seq_len: usize,
        split_documents: bool,
        pad_id: u32,
    ) -> PackedSequence {
        let mut row = PackedSequence {
            source: self.name.clone(),
            input_ids: Vec::with_capacity(seq_len),
            labels: Vec::with_capacity(seq_len),
            document_ids: Vec::with_capacity(seq_len),
            position_ids: Vec::with_capacity(seq_len),
            documents: Vec::new(),
        };
        while row.input_ids.len() < seq_len {
            let doc = self.document_at(seed, cursor);
            let doc_len = self.shard.doc_len(doc);
            let offset = cursor.offset as usize;
            let remaining = doc_len - offset;
            let space = seq_len - row.input_ids.len();
            if remaining > space && !split_documents && !row.input_ids.is_empty() {
                break; // pad; the document starts the next row
            }
            let take = remaining.min(space);
            let start = row.input_ids.len();
            let id = row.documents.len() as u32;
            self.shard
                .read_into(doc, offset..offset + take, &mut row.input_ids);
            row.document_ids.extend(std::iter::repeat_n(id, take));
            row.position_ids.extend(0..take as u32);
            let continues = take < remaining;
            for i in start + 1..start + take {
                row.labels.push(row.input_ids[i] as i32);
            }
            if continues {
                let mut next = Vec::with_capacity(1);
                self.shard
                    .read_into(doc, offset + take..offset + take + 1, &mut next);
                row.labels.push(next[0] as i32);
            } else {
                row.labels.push(IGNORE_INDEX);
            }
            row.documents.push(DocumentSpan {
                source: self.name.clone(),
                document: doc as u64,
                start: start as u32,
                len: take as u32,
                offset: offset as u32,
                continues,
            });
            cursor.tokens += take as u64;
            if continues {
                cursor.offset += take as u64;
            } else {
                cursor.offset = 0;
                cursor.documents += 1;
                cursor.position += 1;
                if cursor.position as usize >= self.shard.len() {
                    cursor.position = 0;
                    cursor.pass += 1;
                }
            }
        }
        let pad = seq_len - row.input_ids.len();
        row.input_ids.extend(std::iter::repeat_n(pad_id, pad));
        row.labels.extend(std::iter::repeat_n(IGNORE_INDEX, pad));
        row.document_ids
            .extend(std::iter::repeat_n(PADDING_DOCUMENT, pad));
        row.position_ids.extend(std::iter::repeat_n(0, pad));
        cursor.sequences += 1;
        cursor.segment_sequences += 1;
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::{DTYPE_U16, ShardWriter};

    fn shard(docs: &[&[u32]]) -> (tempfile::TempDir, Arc<Shard>) {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("s");
        let mut w = ShardWriter::create(&prefix, DTYPE_U16).unwrap();
        for d in docs {
            w.push(d).unwrap();
        }
        w.finish().unwrap();
        let s = Arc::new(Shard::open(&prefix).unwrap());
        (dir, s)
    }

    /// Checks the invariants every row must satisfy.
    fn check_row(r: &PackedSequence, seq_len: usize) {
        assert_eq!(r.input_ids.len(), seq_len);
        assert_eq!(r.labels.len(), seq_len);
        assert_eq!(r.document_ids.len(), seq_len);
        assert_eq!(r.position_ids.len(), seq_len);
        for span in &r.documents {
            let (s, e) = (span.start as usize, (span.start + span.len) as usize);
            for i in s..e {
                assert_eq!(r.position_ids[i] as usize, i - s);
                assert_eq!(r.document_ids[i], r.document_ids[s]);
            }
            for i in s..e - 1 {
                assert_eq!(r.labels[i], r.input_ids[i + 1] as i32);
            }
            if !span.continues {
                assert_eq!(r.labels[e - 1], IGNORE_INDEX);
            }
            if e < seq_len {
                assert!(!r.may_attend(e, e - 1), "next document must not see this one");
            }
        }
    }

    #[test]
    fn split_mode_fills_rows_and_continues_documents() {
        // EOS = 2. Documents of 5, 3 and 7 tokens.
        let docs: [&[u32]; 3] = [&[10, 11, 12, 13, 2], &[20, 21, 2], &[30, 31, 32, 33, 34, 35, 2]];
        let (_d, s) = shard(&docs);
        let mut p = SourcePacker::new("src".into(), s);
        let mut c = SourceCursor::default();
        let mut all = Vec::new();
        for _ in 0..6 {
            let r = p.next_row(1, &mut c, 4, true, 0);
            check_row(&r, 4);
            assert_eq!(r.padding(), 0);
            all.extend(r.input_ids.clone());
            // A continued span's final label is the document's next token.
            for span in &r.documents {
                if span.continues {
                    let e = (span.start + span.len) as usize;
                    assert_ne!(r.labels[e - 1], IGNORE_INDEX);
                }
            }
        }
        // 6 rows × 4 = 24 tokens = one pass (15) + 9 of the next.
        assert_eq!(c.pass, 1);
        assert_eq!(c.tokens, 24);
        let order = PassOrder::new(1, "src", 0, 3);
        let first_pass: Vec<u32> = (0..3)
            .flat_map(|p| docs[order.document(p) as usize].to_vec())
            .collect();
        assert_eq!(&all[..15], &first_pass[..]);
    }

    #[test]
    fn no_split_mode_pads_instead_of_splitting() {
        let docs: [&[u32]; 3] = [&[10, 11, 2], &[20, 21, 22, 2], &[30, 2]];
        let (_d, s) = shard(&docs);
        let mut p = SourcePacker::new("src".into(), s);
        let mut c = SourceCursor::default();
        let mut seen_padding = false;
        for _ in 0..10 {
            let r = p.next_row(5, &mut c, 5, false, 0);
            check_row(&r, 5);
            for span in &r.documents {
                assert_eq!(span.offset, 0, "no document is split when it fits a row");
                assert!(!span.continues);
            }
            for i in 0..5 {
                if r.document_ids[i] == PADDING_DOCUMENT {
                    seen_padding = true;
                    assert_eq!(r.labels[i], IGNORE_INDEX);
                    assert!(!r.may_attend(i, i));
                }
            }
        }
        assert!(seen_padding);
    }

    #[test]
    fn long_documents_are_chunked_even_without_splitting() {
        let docs: [&[u32]; 1] = [&[1, 2, 3, 4, 5, 6, 7, 8, 9, 2]];
        let (_d, s) = shard(&docs);
        let mut p = SourcePacker::new("src".into(), s);
        let mut c = SourceCursor::default();
        let r1 = p.next_row(0, &mut c, 4, false, 0);
        let r2 = p.next_row(0, &mut c, 4, false, 0);
        check_row(&r1, 4);
        check_row(&r2, 4);
        assert_eq!(r1.input_ids, vec![1, 2, 3, 4]);
        assert_eq!(r1.labels, vec![2, 3, 4, 5]);
        assert_eq!(r2.input_ids, vec![5, 6, 7, 8]);
        assert_eq!(r2.documents[0].offset, 4);
        assert_eq!(r2.position_ids, vec![0, 1, 2, 3]);
    }

    #[test]
    fn batch_is_row_major() {
        let docs: [&[u32]; 2] = [&[1, 2], &[3, 2]];
        let (_d, s) = shard(&docs);
        let mut p = SourcePacker::new("src".into(), s);
        let mut c = SourceCursor::default();
        let rows: Vec<_> = (0..3).map(|_| p.next_row(0, &mut c, 3, true, 0)).collect();
        let b = PackedBatch::from_sequences(rows.clone());
        assert_eq!((b.batch, b.seq_len), (3, 3));
        assert_eq!(&b.input_ids[3..6], &rows[1].input_ids[..]);
        assert_eq!(b.sources, vec!["src"; 3]);
    }
}
