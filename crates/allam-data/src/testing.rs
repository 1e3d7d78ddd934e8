//! A tiny lossless tokenizer for tests and examples (no downloads, no files to commit).
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

/// A byte-level BPE tokenizer with no merges: id 0 = `</s>`, id 1 = `<s>`, then one token per
/// byte (ids 2..258), with GPT-2's byte-to-character mapping. Every UTF-8 text round-trips, and
/// token count = byte count, which makes test arithmetic easy.
pub fn byte_tokenizer() -> Tokenizer {
    let mut alphabet: Vec<char> = ByteLevel::alphabet().into_iter().collect();
    alphabet.sort_unstable();
    let vocab: Vocab = [("</s>".to_string(), 0), ("<s>".to_string(), 1)]
        .into_iter()
        .chain(
            alphabet
                .iter()
                .enumerate()
                .map(|(i, c)| (c.to_string(), i as u32 + 2)),
        )
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, Vec::new())
        .build()
        .expect("a merge-free BPE builds");
    let mut tok = Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
    tok.with_decoder(Some(ByteLevel::default()));
    tok.add_special_tokens(&[AddedToken::from("</s>", true), AddedToken::from("<s>", true)]);
    tok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_tokenizer_round_trips() {
        let t = byte_tokenizer();
        let text = "Hello مرحبا";
        let enc = t.encode_fast(text, false).unwrap();
        assert_eq!(enc.get_ids().len(), text.len());
        assert_eq!(t.decode(enc.get_ids(), false).unwrap(), text);
        assert_eq!(t.token_to_id("</s>"), Some(0));
    }
}
