//! Byte-level BPE (GPT-2, Llama-3, Qwen2, SmolLM2): the byte ↔ symbol alphabet, which byte-level pieces
//! count as Arabic, and the Arabic training words of a byte-level pre-token.
//!
//! A byte-level tokenizer's `ByteLevel` pre-tokenizer rewrites every UTF-8 byte of the text as one of 256
//! printable symbols (GPT-2's `bytes_to_unicode`: `Ġ` is the space byte 0x20, `Ø§` the two bytes of `ا`),
//! and its BPE works on those symbols. So a piece is a string of byte symbols, and it may hold part of a
//! character: `Ø` alone is the lead byte 0xD8, and a merge can join the last byte of one character with
//! the first byte of the next.
//!
//! # When a byte-level piece is Arabic
//! Decode the piece's symbols to bytes `B`; if `B` starts with the space byte 0x20, drop that one byte
//! (the word mark) and call the rest `R`. The piece is Arabic ([`is_arabic_bytes`]) when
//! 1. `R` is not empty and is a contiguous part of the UTF-8 encoding of a string of Arabic-block
//!    characters ([`crate::script::is_arabic`]): continuation bytes at its start are the end of an
//!    Arabic character's encoding (none allowed after a dropped space), every complete character in it is
//!    Arabic, and an incomplete character at its end is the start of an Arabic character's encoding; and
//! 2. `R` *pins down* an Arabic character: it holds a complete Arabic character, or a final incomplete
//!    character all of whose completions are Arabic. The lead bytes 0xD8–0xDB qualify on their own
//!    (they start exactly U+0600–U+06FF); 0xDD does not (it starts U+0740–U+077F, part of which is
//!    Syriac), nor does any run of continuation bytes (0x80–0xBF), which ends characters of every script.
//!
//! Condition 2 is what the expansion's guarantee needs. Text is valid UTF-8, and in valid UTF-8 a lead
//! byte always starts a character, so any text whose bytes contain `R` contains that pinned-down Arabic
//! character. A new merge creates its piece's bytes where it fires, so on text without Arabic characters
//! no new merge can fire, and no pre-token can equal a new piece (which matters for `ignore_merges`).
//! Condition 1 keeps out pieces no Arabic text could produce.
use std::collections::HashSet;
use std::sync::LazyLock;

use tokenizers::PreTokenizerWrapper;

use crate::script::{ARABIC_BLOCKS, is_arabic};

/// The space byte's symbol, the word mark of byte-level tokenizers.
pub const SPACE_SYMBOL: char = 'Ġ';

/// Byte → symbol, GPT-2's `bytes_to_unicode` (the table the `tokenizers` ByteLevel pre-tokenizer uses,
/// which that crate does not export; the tests check this copy against the pre-tokenizer and
/// `ByteLevel::alphabet`).
static BYTE_SYMBOLS: LazyLock<[char; 256]> = LazyLock::new(|| {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        table[b as usize] = if printable(b) {
            char::from(b)
        } else {
            next += 1;
            char::from_u32(next - 1).expect("256..324 are scalar values")
        };
    }
    table
});

/// Symbol → byte: index by the symbol's code point (all are below 324).
static SYMBOL_BYTES: LazyLock<Vec<Option<u8>>> = LazyLock::new(|| {
    let mut table = vec![None; 324];
    for (b, c) in BYTE_SYMBOLS.iter().enumerate() {
        table[*c as usize] = Some(b as u8);
    }
    table
});

/// Every proper suffix of an Arabic-block character's UTF-8 encoding that consists of continuation bytes
/// (what can precede the first lead byte of an Arabic piece).
static ARABIC_TAILS: LazyLock<HashSet<Vec<u8>>> = LazyLock::new(|| {
    let mut tails = HashSet::new();
    for &(lo, hi) in ARABIC_BLOCKS {
        for c in (lo..=hi).filter_map(char::from_u32).filter(|c| is_arabic(*c)) {
            let mut buf = [0u8; 4];
            let bytes = c.encode_utf8(&mut buf).as_bytes();
            for k in 1..bytes.len() {
                tails.insert(bytes[k..].to_vec());
            }
        }
    }
    tails
});

/// The symbol of byte `b`.
pub fn byte_symbol(b: u8) -> char {
    BYTE_SYMBOLS[b as usize]
}

/// The byte of symbol `c`, or `None` if `c` is not one of the 256 byte symbols.
pub fn symbol_byte(c: char) -> Option<u8> {
    SYMBOL_BYTES.get(c as usize).copied().flatten()
}

/// The bytes a byte-level piece stands for, or `None` if it holds a character that is not a byte symbol
/// (an added token such as `<|endoftext|>` is made of symbols and decodes to its own text).
pub fn piece_bytes(piece: &str) -> Option<Vec<u8>> {
    piece.chars().map(symbol_byte).collect()
}

/// The byte-level piece (string of symbols) for `bytes`.
pub fn symbols(bytes: &[u8]) -> String {
    bytes.iter().map(|b| byte_symbol(*b)).collect()
}

/// Whether the byte-level `piece` is an Arabic piece (see the [module docs](self)).
pub fn is_arabic_piece(piece: &str) -> bool {
    piece_bytes(piece).is_some_and(|b| is_arabic_bytes(&b))
}

/// Whether `bytes` (one optional leading space, then part of the UTF-8 encoding of Arabic-block
/// characters that pins down at least one of them) are an Arabic piece's bytes (see the
/// [module docs](self)).
pub fn is_arabic_bytes(bytes: &[u8]) -> bool {
    let (spaced, rest) = match bytes.split_first() {
        Some((b' ', rest)) => (true, rest),
        _ => (false, bytes),
    };
    let tail_len = rest.iter().take_while(|b| is_continuation(**b)).count();
    if rest.is_empty() || (tail_len > 0 && (spaced || !ARABIC_TAILS.contains(&rest[..tail_len]))) {
        return false;
    }
    let mut pinned = false;
    let mut i = tail_len;
    while i < rest.len() {
        let Some(len) = sequence_len(rest[i]) else {
            return false;
        };
        let end = (i + len).min(rest.len());
        if rest[i + 1..end].iter().any(|b| !is_continuation(*b)) {
            return false;
        }
        let Some((lo, hi)) = completions(&rest[i..end], len) else {
            return false;
        };
        let arabic = |c: u32| char::from_u32(c).is_some_and(is_arabic);
        // Some completion is Arabic (searched block by block: the range may be large)...
        if !ARABIC_BLOCKS
            .iter()
            .any(|&(a, b)| (lo.max(a)..=hi.min(b)).any(arabic))
        {
            return false;
        }
        // ...and every completion is (stops at the first that is not).
        pinned |= (lo..=hi).all(arabic);
        i = end;
    }
    pinned
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// The length of the UTF-8 sequence a lead byte starts (`None` for continuation and invalid bytes).
fn sequence_len(b: u8) -> Option<usize> {
    match b {
        0x00..=0x7F => Some(1),
        0xC2..=0xDF => Some(2),
        0xE0..=0xEF => Some(3),
        0xF0..=0xF4 => Some(4),
        _ => None,
    }
}

/// The code points (as a closed range, clipped to what a `len`-byte sequence may encode) whose UTF-8
/// encoding starts with `prefix`, a lead byte and some of its continuation bytes; `None` if there are none.
fn completions(prefix: &[u8], len: usize) -> Option<(u32, u32)> {
    let lead_bits = [0x7F, 0x1F, 0x0F, 0x07][len - 1];
    let mut value = u32::from(prefix[0] & lead_bits);
    for b in &prefix[1..] {
        value = (value << 6) | u32::from(b & 0x3F);
    }
    let missing = 6 * (len - prefix.len()) as u32;
    let lo = value << missing;
    let hi = lo | ((1 << missing) - 1);
    let (min, max) = [(0, 0x7F), (0x80, 0x7FF), (0x800, 0xFFFF), (0x1_0000, 0x10_FFFF)][len - 1];
    let (lo, hi) = (lo.max(min), hi.min(max));
    (lo <= hi).then_some((lo, hi))
}

/// Whether `pre_tokenizer` is, or contains (in a `Sequence`), a `ByteLevel` pre-tokenizer — so that the
/// model sees byte symbols.
pub fn is_byte_level(pre_tokenizer: &PreTokenizerWrapper) -> bool {
    match pre_tokenizer {
        PreTokenizerWrapper::ByteLevel(_) => true,
        PreTokenizerWrapper::Sequence(seq) => seq.as_ref().iter().any(is_byte_level),
        _ => false,
    }
}

/// The 256 byte symbols, in byte order.
pub fn alphabet() -> Vec<char> {
    BYTE_SYMBOLS.to_vec()
}

/// The Arabic training words of one byte-level pre-token (a string of byte symbols): every maximal run
/// of Arabic-block characters, with the space that directly precedes it, as byte symbols.
///
/// Byte runs that are not valid UTF-8 (a pre-tokenizer step after `ByteLevel` that split a character)
/// break runs and give no words.
pub fn arabic_words(segment: &str, out: &mut Vec<String>) {
    let Some(bytes) = piece_bytes(segment) else {
        return;
    };
    for chunk in bytes.utf8_chunks() {
        let text = chunk.valid();
        let mut start: Option<usize> = None;
        let mut prev = None;
        for (i, c) in text.char_indices().chain(std::iter::once((text.len(), '\0'))) {
            match (is_arabic(c), start) {
                (true, None) => start = Some(if prev == Some(' ') { i - 1 } else { i }),
                (false, Some(s)) => {
                    out.push(symbols(&text.as_bytes()[s..i]));
                    start = None;
                }
                _ => {}
            }
            prev = Some(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

    fn bytes_of(c: char) -> Vec<u8> {
        c.to_string().into_bytes()
    }

    #[test]
    fn byte_table_is_the_pre_tokenizers() {
        assert_eq!(
            alphabet().into_iter().collect::<std::collections::HashSet<_>>(),
            ByteLevel::alphabet().into_iter().collect()
        );
        assert_eq!(byte_symbol(b' '), SPACE_SYMBOL);
        assert_eq!(byte_symbol(b'\n'), 'Ċ');
        assert_eq!(symbols("ا".as_bytes()), "Ø§");
        // Every byte that occurs in UTF-8 text, through the real pre-tokenizer.
        let text: String = (0x01..0x0800u32)
            .chain(0x3040..0x3100)
            .chain(0x1F600..0x1F640)
            .filter_map(char::from_u32)
            .collect();
        let mut pre = PreTokenizedString::from(text.as_str());
        ByteLevel::new(false, false, false)
            .pre_tokenize(&mut pre)
            .unwrap();
        let mapped: String = pre
            .get_splits(OffsetReferential::Original, OffsetType::Byte)
            .into_iter()
            .map(|(s, _, _)| s.to_string())
            .collect();
        assert_eq!(piece_bytes(&mapped).unwrap(), text.as_bytes());
        assert_eq!(piece_bytes("<|endoftext|>").unwrap(), b"<|endoftext|>");
        assert_eq!(piece_bytes("é→"), None);
    }

    #[test]
    fn arabic_byte_pieces() {
        let yes: &[&[u8]] = &[
            "كتاب".as_bytes(),
            " كتاب".as_bytes(),
            "ا".as_bytes(),
            &[0xD8],                   // lead byte of U+0600–U+063F: all Arabic
            &[0xDB],                   // U+06C0–U+06FF
            &[0xA7, 0xD9, 0x84],       // end of ا, then ل
            &[0xA7, 0xD9],             // end of ا, lead byte of U+0640–U+067F
            &[b' ', 0xD9],             // space, lead byte
            &[0xDD, 0x90],             // U+0750, Arabic Supplement
            &[0xEF, 0xAD, 0x90],       // U+FB50, presentation form
            &[0xE0, 0xA2],             // U+0880–U+08BF: all Arabic Extended-B/A
            &[0xF0, 0x9E, 0xB8, 0x80], // U+1EE00
        ];
        for b in yes {
            assert!(is_arabic_bytes(b), "{b:02X?}");
            assert!(is_arabic_piece(&symbols(b)), "{b:02X?}");
        }
        let no: &[&[u8]] = &[
            b"",
            b" ",
            b"the",
            b" the",
            &[0xA7],             // a continuation byte alone: ends ا but also § (C2 A7) and others
            &[0x84, 0xA7],       // continuation bytes only
            &[0xDD],             // U+0740–U+077F: Syriac and Arabic Supplement
            &[0xDD, 0x80],       // U+0740, Syriac
            &[0xA7, 0xDD],       // end of ا, then an undetermined lead byte
            &[0xE0, 0xA1],       // U+0840–U+087F: Mandaic, Syriac Supplement, Arabic Extended-B
            &[0xEF, 0xBB, 0xBF], // U+FEFF (BOM), excluded
            &[0xEF, 0xAD],       // U+FB40–U+FB7F: Hebrew and Arabic presentation forms
            &[b' ', 0xA7, 0xD9], // a space is never followed by a continuation byte
            &[0xD8, 0xD9],       // D8 is not followed by its continuation byte
            &[0xC2, 0xA7],       // §
            &[0xC2, 0xA7, 0xD8], // § then an Arabic lead byte: § is not Arabic
            &[0xD8, 0xA7, b'a'], // ا then a Latin letter
            &[0xD8, 0xA7, b' '], // a trailing space
            &[0xFF],
        ];
        for b in no {
            assert!(!is_arabic_bytes(b), "{b:02X?}");
        }
        for c in ['ܐ', '݀', 'א', '€', '東', '🙂', 'é'] {
            assert!(!is_arabic_bytes(&bytes_of(c)), "{c}");
        }
        assert!(!is_arabic_piece("<|endoftext|>"));
        assert!(!is_arabic_piece("كتاب"), "not byte symbols");
    }

    #[test]
    fn training_words_keep_the_leading_space() {
        let mut out = Vec::new();
        arabic_words(&symbols(" الولد".as_bytes()), &mut out);
        arabic_words(&symbols("(كتاب)".as_bytes()), &mut out);
        arabic_words(&symbols(" book".as_bytes()), &mut out);
        arabic_words(&symbols("ab كت cd".as_bytes()), &mut out);
        let words: Vec<String> = out
            .iter()
            .map(|w| String::from_utf8(piece_bytes(w).unwrap()).unwrap())
            .collect();
        assert_eq!(words, [" الولد", "كتاب", " كت"]);
        // A split inside a character: the valid parts only.
        let mut out = Vec::new();
        let bytes = "كت".as_bytes();
        arabic_words(&symbols(&bytes[1..]), &mut out);
        assert_eq!(out, [symbols("ت".as_bytes())]);
    }
}
