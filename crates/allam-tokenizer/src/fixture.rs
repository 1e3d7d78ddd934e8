//! Small Llama-style and byte-level tokenizers and texts we wrote ourselves, for tests, examples and
//! smoke runs.
//!
//! [`llama_style_tokenizer`] trains, in well under a second, a BPE with byte fallback, `▁` word marks,
//! `<unk>`/`<s>`/`</s>` and the 256 `<0xXX>` byte pieces at ids 3–258 — the composition of Llama-2 and
//! Mistral's `tokenizer.json` — on `fixtures/english.txt` plus a few lines of `fixtures/arabic.txt` (so the
//! base already knows some Arabic characters and merges, as Mistral does).
//! [`byte_level_style_tokenizer`] does the same for the byte-level compositions of Llama-3 / Qwen2 and of
//! GPT-2 / SmolLM2 ([`ByteLevelStyle`]). Both train with [`crate::base`]'s trainers.
use tokenizers::Tokenizer;

pub use crate::base::{ByteLevelStyle, LLAMA3_SPLIT};
use crate::base::{train_byte_level_style, train_llama_style};
use crate::error::Result;

/// English sentences written for this project (50 lines, prose and a few lines of code).
pub const ENGLISH: &str = include_str!("../fixtures/english.txt");
/// Arabic sentences written for this project (40 lines, Modern Standard Arabic).
pub const ARABIC: &str = include_str!("../fixtures/arabic.txt");

/// Trains a Llama-style byte-fallback BPE tokenizer with about `pieces` learned pieces (plus the 3
/// specials and 256 byte pieces) on [`ENGLISH`] and the first `arabic_lines` lines of [`ARABIC`].
pub fn llama_style_tokenizer(pieces: usize, arabic_lines: usize) -> Result<Tokenizer> {
    let text: Vec<&str> = ENGLISH.lines().chain(ARABIC.lines().take(arabic_lines)).collect();
    train_llama_style(&text, pieces)
}

/// Trains a byte-level tokenizer of `style` with `pieces` learned pieces (besides the 256 byte symbols
/// and the special tokens) on [`ENGLISH`] and the first `arabic_lines` lines of [`ARABIC`].
pub fn byte_level_style_tokenizer(
    pieces: usize,
    arabic_lines: usize,
    style: ByteLevelStyle,
) -> Result<Tokenizer> {
    let text: Vec<&str> = ENGLISH.lines().chain(ARABIC.lines().take(arabic_lines)).collect();
    train_byte_level_style(&text, pieces, style)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::byte_level;

    #[test]
    fn fixture_is_llama_shaped() {
        let tok = llama_style_tokenizer(400, 10).unwrap();
        assert_eq!(tok.token_to_id("<0x41>"), Some(3 + 0x41));
        assert_eq!(tok.get_vocab_size(true), 3 + 256 + 400);
        let enc = tok.encode("The river", false).unwrap();
        assert_eq!(tok.decode(enc.get_ids(), true).unwrap(), "The river");
        // Unknown characters fall back to bytes.
        let enc = tok.encode("€", false).unwrap();
        assert!(enc.get_tokens().iter().any(|t| t == "<0xE2>"));
    }

    #[test]
    fn byte_level_fixtures_are_shaped_like_llama3_and_smollm2() {
        use tokenizers::Model;
        for style in [ByteLevelStyle::Llama3, ByteLevelStyle::Gpt2] {
            let tok = byte_level_style_tokenizer(300, 5, style).unwrap();
            let text = "The river's bank, 1984 — naïve café 東京 🙂 ذهب الولد";
            let enc = tok.encode(text, true).unwrap();
            assert_eq!(
                tok.decode(enc.get_ids(), false)
                    .unwrap()
                    .trim_start_matches("<|begin_of_text|>"),
                text
            );
            let model = tok.get_model();
            assert!(
                byte_level::alphabet()
                    .iter()
                    .all(|c| model.token_to_id(&c.to_string()).is_some())
            );
            let tokenizers::ModelWrapper::BPE(bpe) = model else {
                unreachable!()
            };
            assert_eq!(bpe.ignore_merges, style == ByteLevelStyle::Llama3);
            if style == ByteLevelStyle::Llama3 {
                assert_eq!(tok.get_vocab_size(false), 256 + 300);
                assert_eq!(tok.token_to_id("<|begin_of_text|>"), Some(556));
                assert_eq!(enc.get_ids()[0], 556);
                assert_eq!(enc.get_tokens()[1..3], ["The", "Ġri"]);
            } else {
                assert_eq!(tok.get_vocab_size(false), 3 + 256 + 300);
                assert_eq!(tok.token_to_id("<|im_end|>"), Some(2));
                assert_eq!(tok.encode("<|im_start|>hi", false).unwrap().get_ids()[0], 1);
            }
        }
    }
}
