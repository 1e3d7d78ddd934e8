//! Document encoding, with an exact fast path for SentencePiece-style BPE tokenizers.
//!
//! Llama/Mistral `tokenizer.json` files have no pre-tokenizer: the normaliser turns spaces into
//! `▁` and the BPE model merges the *whole document* as one word. That is slow (no word cache can
//! help, merges cost `O(n log n)` in the document length) — about 1 MB/s per core.
//!
//! The fast path cuts the normalised text before every `▁` that follows a non-`▁` character and
//! runs the BPE model on each piece (with its word cache). This gives **exactly** the same ids
//! when no vocabulary entry contains `▁` after a non-`▁` character — then no merge can cross such
//! a cut, and BPE's merges within one piece do not depend on the other pieces. [`Encoder::new`]
//! checks that condition on the vocabulary (and that there is no pre-tokenizer, no dropout, no
//! subword prefix/suffix, and no BOS to add); documents containing an added token's text go
//! through the full pipeline. Any other tokenizer uses the full pipeline throughout.
//!
//! New pieces are merged by [`PieceBpe`] (the same algorithm on integer tables, no per-call
//! allocation) when the model allows it, else by the BPE model itself.
//!
//! Each rayon thread keeps a cache of piece → ids (at most 2^18 pieces of ≤ 128 bytes, then it is
//! cleared), so frequent words cost a hash lookup.
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use tokenizers::models::ModelWrapper;

use crate::bpe::{BpeScratch, PieceBpe};
use crate::hash::IdentityBuild;
use tokenizers::{Model, NormalizedString, Normalizer, Tokenizer};

/// Pieces cached per thread (then the cache is cleared: memory stays bounded).
const CACHE_ENTRIES: usize = 1 << 18;
/// Longer pieces are not cached.
const CACHE_PIECE_BYTES: usize = 128;

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A thread's cache of piece → ids for one encoder (identified by `owner`).
#[derive(Default)]
struct PieceCache {
    owner: u64,
    /// Keyed by the piece's 128-bit xxh3 (collision odds ~ n²/2^129: nil for 2^18 pieces).
    map: HashMap<u128, Box<[u32]>, IdentityBuild>,
    piece: String,
    scratch: BpeScratch,
}

thread_local! {
    static CACHE: RefCell<PieceCache> = RefCell::new(PieceCache::default());
}

/// Encodes documents to ids (without EOS), choosing the fast path when it is exact.
#[derive(Clone)]
pub struct Encoder {
    id: u64,
    tokenizer: Tokenizer,
    add_special_tokens: bool,
    fast: Option<Fast>,
}

#[derive(Clone)]
struct Fast {
    /// The normaliser is exactly Llama's `Prepend("▁") + Replace(" ", "▁")`.
    llama_normalizer: bool,
    /// Added-token texts; a document containing one takes the full pipeline.
    specials: Vec<String>,
    /// Their distinct first characters (a quick `memchr` pre-check).
    special_starts: Vec<char>,
    /// The model's merges on integer ids (new pieces skip `tokenizers`' per-call overhead).
    bpe: Option<PieceBpe>,
}

const SPACE: char = '\u{2581}';

impl Encoder {
    /// Wraps a tokenizer. `add_special_tokens` adds the post-processor's tokens (e.g. BOS).
    pub fn new(tokenizer: Tokenizer, add_special_tokens: bool) -> Self {
        let fast = Self::fast_path(&tokenizer, add_special_tokens);
        Encoder {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed) + 1,
            tokenizer,
            add_special_tokens,
            fast,
        }
    }

    fn fast_path(tok: &Tokenizer, add_special_tokens: bool) -> Option<Fast> {
        if add_special_tokens || tok.get_pre_tokenizer().is_some() {
            return None;
        }
        let ModelWrapper::BPE(bpe) = tok.get_model() else {
            return None;
        };
        if bpe.dropout.is_some_and(|d| d > 0.0)
            || bpe.continuing_subword_prefix.is_some()
            || bpe.end_of_word_suffix.is_some()
        {
            return None;
        }
        let crosses = |t: &str| t.trim_start_matches(SPACE).contains(SPACE);
        if bpe.get_vocab().keys().any(|t| crosses(t)) {
            return None;
        }
        let llama = serde_json::json!({"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u{2581}"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"}
        ]});
        let llama_normalizer = tok
            .get_normalizer()
            .and_then(|n| serde_json::to_value(n).ok())
            .is_some_and(|v| v == llama);
        let added = tok.get_added_tokens_decoder();
        // An added token matched after normalisation could hide in a different raw spelling.
        if added
            .values()
            .any(|t| t.normalized && (t.content.contains(SPACE) || t.content.contains(' ')))
        {
            return None;
        }
        let specials: Vec<String> = added
            .values()
            .map(|t| t.content.clone())
            .filter(|c| !c.is_empty())
            .collect();
        let mut special_starts: Vec<char> = specials
            .iter()
            .filter_map(|s: &String| s.chars().next())
            .collect();
        special_starts.sort_unstable();
        special_starts.dedup();
        Some(Fast {
            llama_normalizer,
            specials,
            special_starts,
            bpe: PieceBpe::new(bpe),
        })
    }

    /// Whether the exact fast path is in use.
    pub fn is_fast(&self) -> bool {
        self.fast.is_some()
    }

    /// The wrapped tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The ids of `text` (no EOS), identical to `Tokenizer::encode(text, add_special_tokens)`.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        let Some(fast) = &self.fast else {
            return self.full(text);
        };
        if text.is_empty()
            || (fast.special_starts.iter().any(|&c| text.contains(c))
                && fast.specials.iter().any(|s| text.contains(s.as_str())))
        {
            return self.full(text);
        }
        CACHE.with_borrow_mut(|cache| {
            if cache.owner != self.id || cache.map.len() >= CACHE_ENTRIES {
                cache.map.clear();
                cache.owner = self.id;
            }
            let mut ids = Vec::with_capacity(text.len() / 3 + 2);
            if fast.llama_normalizer {
                // Pieces of "▁" + text.replace(' ', "▁"), cut before each space after a non-space,
                // built one at a time without materialising the normalised text.
                let mut piece = std::mem::take(&mut cache.piece);
                piece.clear();
                piece.push(SPACE);
                let mut prev_space = true;
                for c in text.chars() {
                    let space = c == ' ';
                    if space && !prev_space {
                        self.piece(fast, &piece, &mut ids, cache)?;
                        piece.clear();
                    }
                    piece.push(if space { SPACE } else { c });
                    prev_space = space;
                }
                self.piece(fast, &piece, &mut ids, cache)?;
                cache.piece = piece;
            } else {
                let normalized = match self.tokenizer.get_normalizer() {
                    Some(n) => {
                        let mut ns = NormalizedString::from(text);
                        n.normalize(&mut ns).map_err(|e| e.to_string())?;
                        ns.get().to_string()
                    }
                    None => text.to_string(),
                };
                let mut start = 0;
                let mut prev_space = true;
                for (i, c) in normalized.char_indices() {
                    let space = c == SPACE;
                    if space && !prev_space && i > start {
                        self.piece(fast, &normalized[start..i], &mut ids, cache)?;
                        start = i;
                    }
                    prev_space = space;
                }
                self.piece(fast, &normalized[start..], &mut ids, cache)?;
            }
            Ok(ids)
        })
    }

    /// Appends the ids of one piece, through the thread's piece cache.
    fn piece(
        &self,
        fast: &Fast,
        piece: &str,
        ids: &mut Vec<u32>,
        cache: &mut PieceCache,
    ) -> Result<(), String> {
        if piece.is_empty() {
            return Ok(());
        }
        let cacheable = piece.len() <= CACHE_PIECE_BYTES;
        let key = xxhash_rust::xxh3::xxh3_128(piece.as_bytes());
        if cacheable && let Some(cached) = cache.map.get(&key) {
            ids.extend_from_slice(cached);
            return Ok(());
        }
        let start = ids.len();
        let merged = fast
            .bpe
            .as_ref()
            .is_some_and(|bpe| bpe.encode(piece, &mut cache.scratch, ids));
        if !merged {
            for t in self
                .tokenizer
                .get_model()
                .tokenize(piece)
                .map_err(|e| e.to_string())?
            {
                ids.push(t.id);
            }
        }
        if cacheable {
            cache.map.insert(key, ids[start..].to_vec().into_boxed_slice());
        }
        Ok(())
    }

    fn full(&self, text: &str) -> Result<Vec<u32>, String> {
        self.tokenizer
            .encode_fast(text, self.add_special_tokens)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A miniature Llama-style tokenizer: Prepend+Replace normaliser, no pre-tokenizer, BPE with
    /// byte fallback, `▁`-prefixed pieces and a whitespace-only piece.
    fn sp_tokenizer(extra_vocab: &[&str]) -> Tokenizer {
        let mut vocab: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
        vocab.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
        let merges: Vec<(&str, &str)> = vec![
            ("▁", "t"),
            ("h", "e"),
            ("▁t", "he"),
            ("▁", "▁"),
            ("▁", "a"),
            ("a", "t"),
            ("▁a", "t"),
            ("c", "at"),
            ("▁", "cat"),
        ];
        for c in ["▁", "t", "h", "e", "a", "c", "s", "o", "n"] {
            vocab.push(c.into());
        }
        for (a, b) in &merges {
            vocab.push(format!("{a}{b}"));
        }
        vocab.extend(extra_vocab.iter().map(|s| s.to_string()));
        let json = serde_json::json!({
            "version": "1.0",
            "added_tokens": [
                {"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
                {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
                {"id": 2, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
            ],
            "normalizer": {"type": "Sequence", "normalizers": [
                {"type": "Prepend", "prepend": "▁"},
                {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
            ]},
            "pre_tokenizer": null,
            "post_processor": null,
            "decoder": null,
            "model": {
                "type": "BPE", "dropout": null, "unk_token": "<unk>",
                "continuing_subword_prefix": null, "end_of_word_suffix": null,
                "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
                "vocab": vocab.iter().enumerate().map(|(i, t)| (t.clone(), serde_json::json!(i))).collect::<serde_json::Map<String, serde_json::Value>>(),
                "merges": merges.iter().map(|(a, b)| format!("{a} {b}")).collect::<Vec<_>>()
            }
        });
        json.to_string().parse().unwrap()
    }

    #[test]
    fn fast_path_matches_the_full_pipeline() {
        let tok = sp_tokenizer(&[]);
        let enc = Encoder::new(tok.clone(), false);
        assert!(enc.is_fast());
        for text in [
            "the cat",
            "the  cat sat   on  the mat",
            "  leading and trailing  ",
            "thecat the",
            "مرحبا the cat ✓",
            "a </s> inside",
            "x",
            " ",
        ] {
            let want = tok.encode_fast(text, false).unwrap().get_ids().to_vec();
            assert_eq!(enc.encode(text).unwrap(), want, "{text:?}");
        }
    }

    #[test]
    fn vocab_with_cross_boundary_pieces_disables_the_fast_path() {
        let tok = sp_tokenizer(&["t▁c"]);
        assert!(!Encoder::new(tok.clone(), false).is_fast());
        assert!(!Encoder::new(sp_tokenizer(&[]), true).is_fast());
        let enc = Encoder::new(tok.clone(), false);
        let want = tok.encode_fast("the cat", false).unwrap().get_ids().to_vec();
        assert_eq!(enc.encode("the cat").unwrap(), want);
    }

    #[test]
    fn byte_level_tokenizer_uses_the_full_pipeline() {
        let tok = crate::testing::byte_tokenizer();
        let enc = Encoder::new(tok.clone(), false);
        assert!(!enc.is_fast());
        assert_eq!(enc.encode("hi").unwrap().len(), 2);
    }
}
