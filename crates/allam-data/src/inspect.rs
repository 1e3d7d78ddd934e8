//! Decoding packed sequences back to text, for `allam data inspect`.
use tokenizers::Tokenizer;

use crate::error::{DataError, Result};
use crate::pack::PackedSequence;
use crate::stream::Mixture;

/// One document span of a sequence, decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedSpan {
    /// Source name.
    pub source: String,
    /// Document index in the source's shard.
    pub document: u64,
    /// Token offset in the document (> 0 for a continued document).
    pub offset: u32,
    /// Tokens in the span.
    pub tokens: u32,
    /// Whether the document continues in the next row of its source.
    pub continues: bool,
    /// The decoded text (special tokens kept, so EOS shows).
    pub text: String,
}

/// Decodes every span of a sequence.
pub fn decode_sequence(tokenizer: &Tokenizer, seq: &PackedSequence) -> Result<Vec<DecodedSpan>> {
    seq.documents
        .iter()
        .map(|span| {
            let s = span.start as usize;
            let ids = &seq.input_ids[s..s + span.len as usize];
            let text = tokenizer.decode(ids, false).map_err(|e| DataError::Tokenizer {
                path: "<tokenizer>".into(),
                message: e.to_string(),
            })?;
            Ok(DecodedSpan {
                source: span.source.clone(),
                document: span.document,
                offset: span.offset,
                tokens: span.len,
                continues: span.continues,
                text,
            })
        })
        .collect()
}

/// The first `n` sequences of a built mixture, decoded with the mixture's tokenizer copy.
pub fn inspect(mixture: &Mixture, n: usize) -> Result<Vec<(PackedSequence, Vec<DecodedSpan>)>> {
    let path = mixture.tokenizer_path();
    let tok = Tokenizer::from_file(&path).map_err(|e| DataError::Tokenizer {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let mut stream = mixture.stream();
    (0..n)
        .map(|_| {
            let seq = stream.next_sequence();
            let spans = decode_sequence(&tok, &seq)?;
            Ok((seq, spans))
        })
        .collect()
}
