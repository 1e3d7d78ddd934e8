//! BPE merging of one piece (a word of the fast encoder), without the `tokenizers` call overhead.
//!
//! [`tokenizers::models::bpe::BPE::tokenize`] builds a `Token` (with a cloned `String`) per
//! output id, formats a `<0xNN>` string per byte-fallback byte, and goes through its own locked
//! cache. For text whose words are mostly new — the first pass over a diverse corpus — that
//! overhead is most of the encoding time. [`PieceBpe`] runs the same algorithm on integer ids:
//!
//! 1. each character becomes its vocabulary id; a character that is not in the vocabulary becomes
//!    its UTF-8 bytes' `<0xNN>` ids (byte fallback), else the unknown token (consecutive unknowns
//!    fused into one when `fuse_unk`);
//! 2. the adjacent pair with the lowest merge rank is merged, the leftmost one on a tie, until no
//!    adjacent pair has a merge.
//!
//! Step 2 is exactly what the `tokenizers` priority queue computes (it pops the smallest
//! `(rank, position)` among pairs that still exist). Pieces are words, so the quadratic scan is
//! short; pieces longer than [`PieceBpe::MAX_SYMBOLS`] go back to `tokenizers`. The encoder's tests
//! compare both paths on real text.
use std::collections::HashMap;

use tokenizers::models::bpe::BPE;

use crate::hash::IdentityBuild;
use allam_io::rng::finalize;

/// A BPE model's vocabulary and merges as integer tables.
#[derive(Clone, Debug)]
pub struct PieceBpe {
    chars: HashMap<char, u32>,
    /// `<0x00>` … `<0xFF>` when the model has byte fallback and all 256 byte pieces.
    bytes: Option<Box<[u32; 256]>>,
    unk: Option<u32>,
    fuse_unk: bool,
    /// The id of a piece that is itself a vocabulary entry (`ignore_merges` models only).
    whole: Option<HashMap<String, u32>>,
    /// `(left << 32 | right)` → `(rank, merged id)`.
    merges: HashMap<u64, (u32, u32), PairHash>,
}

/// The `merges` of a serialised BPE model (other fields are skipped).
#[derive(serde::Deserialize)]
struct SerializedMerges {
    merges: Vec<Merge>,
}

/// One merge: `["a", "b"]`, or `"a b"` in older files.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Merge {
    Pair(String, String),
    Legacy(String),
}

/// Keys are already mixed by [`pair`], so the map hashes them as they are.
type PairHash = IdentityBuild;

/// The map key of an adjacent pair: `left << 32 | right` through a bijective mixer (the
/// identity hasher needs well-spread keys; a bijection keeps them distinct).
fn pair(a: u32, b: u32) -> u64 {
    finalize((a as u64) << 32 | b as u64)
}

impl PieceBpe {
    /// Pieces with more symbols than this are merged by `tokenizers` itself.
    pub const MAX_SYMBOLS: usize = 64;

    /// The tables of `bpe`, or `None` for a model this does not reproduce (dropout, a subword
    /// prefix or suffix, merges that do not serialise as pairs).
    pub fn new(bpe: &BPE) -> Option<Self> {
        if bpe.dropout.is_some_and(|d| d > 0.0)
            || bpe.continuing_subword_prefix.is_some()
            || bpe.end_of_word_suffix.is_some()
        {
            return None;
        }
        let vocab = tokenizers::Model::get_vocab(bpe);
        let mut chars = HashMap::new();
        for (piece, &id) in &vocab {
            let mut it = piece.chars();
            if let (Some(c), None) = (it.next(), it.next()) {
                chars.insert(c, id);
            }
        }
        let bytes = if bpe.byte_fallback {
            let ids: Option<Vec<u32>> = (0..=255u8)
                .map(|b| vocab.get(&format!("<{b:#04X}>")).copied())
                .collect();
            // With only some byte pieces, `tokenizers` interleaves byte and unknown ids in an
            // order this does not reproduce: leave such a model to it.
            Some(Box::new(<[u32; 256]>::try_from(ids?).expect("256 ids")))
        } else {
            None
        };
        let unk = bpe.unk_token.as_ref().and_then(|u| vocab.get(u).copied());
        if bpe.unk_token.is_some() && unk.is_none() {
            return None; // tokenizers errors on an unknown character then; let it.
        }
        // `tokenizers` keeps the merges private; its serialisation lists them in rank order.
        let json = serde_json::to_string(bpe).ok()?;
        let list = serde_json::from_str::<SerializedMerges>(&json).ok()?.merges;
        let mut merges = HashMap::with_capacity_and_hasher(list.len(), PairHash::default());
        let mut joined = String::new();
        for (rank, m) in list.iter().enumerate() {
            let (a, b) = match m {
                Merge::Pair(a, b) => (a.as_str(), b.as_str()),
                Merge::Legacy(s) => s.split_once(' ')?,
            };
            joined.clear();
            joined.push_str(a);
            joined.push_str(b);
            let (&ia, &ib, &merged) = (vocab.get(a)?, vocab.get(b)?, vocab.get(&joined)?);
            merges.insert(pair(ia, ib), (rank as u32, merged));
        }
        Some(PieceBpe {
            chars,
            bytes,
            unk,
            fuse_unk: bpe.fuse_unk,
            whole: bpe.ignore_merges.then_some(vocab),
            merges,
        })
    }

    fn merge_of(&self, left: u32, right: u32) -> (u32, u32) {
        self.merges
            .get(&pair(left, right))
            .copied()
            .unwrap_or((u32::MAX, 0))
    }

    /// Appends the ids of `piece` to `out`; `false` (nothing appended) when the piece is too long
    /// for this path or holds a character it cannot map.
    pub fn encode(&self, piece: &str, scratch: &mut BpeScratch, out: &mut Vec<u32>) -> bool {
        let BpeScratch { symbols, merges } = scratch;
        if let Some(id) = self.whole.as_ref().and_then(|w| w.get(piece)) {
            out.push(*id);
            return true;
        }
        symbols.clear();
        let mut last_unk = false;
        for c in piece.chars() {
            if let Some(&id) = self.chars.get(&c) {
                symbols.push(id);
                last_unk = false;
            } else if let Some(bytes) = &self.bytes {
                let mut buf = [0u8; 4];
                symbols.extend(c.encode_utf8(&mut buf).bytes().map(|b| bytes[b as usize]));
                last_unk = false;
            } else if let Some(unk) = self.unk {
                if !(last_unk && self.fuse_unk) {
                    symbols.push(unk);
                }
                last_unk = true;
            } else {
                return false;
            }
            if symbols.len() > Self::MAX_SYMBOLS {
                return false;
            }
        }
        // merges[i]: (rank, merged id) of the pair (symbols[i], symbols[i + 1]); u32::MAX = none.
        merges.clear();
        merges.extend(symbols.windows(2).map(|w| self.merge_of(w[0], w[1])));
        loop {
            let mut best = (u32::MAX, 0);
            for (i, &(rank, _)) in merges.iter().enumerate() {
                if rank < best.0 {
                    best = (rank, i);
                }
            }
            let (rank, i) = best;
            if rank == u32::MAX {
                break;
            }
            symbols[i] = merges[i].1;
            symbols.remove(i + 1);
            merges.remove(i);
            if i < merges.len() {
                merges[i] = self.merge_of(symbols[i], symbols[i + 1]);
            }
            if i > 0 {
                merges[i - 1] = self.merge_of(symbols[i - 1], symbols[i]);
            }
        }
        out.extend_from_slice(symbols);
        true
    }
}

/// Reusable buffers for [`PieceBpe::encode`] (one per thread).
#[derive(Debug, Default)]
pub struct BpeScratch {
    symbols: Vec<u32>,
    merges: Vec<(u32, u32)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use allam_io::rng::SplitMix64;
    use tokenizers::Model;

    /// A model over `▁abc` (plus `<0xNN>` pieces when `bytes`) whose merges overlap, so the
    /// merge order matters: `ab` vs `bc`, `abc` from either side, `aa` (ties at several positions).
    fn model(bytes: bool, fuse_unk: bool, ignore_merges: bool) -> BPE {
        let mut vocab: Vec<String> = vec!["<unk>".into()];
        if bytes {
            vocab.extend((0..=255u8).map(|b| format!("<{b:#04X}>")));
        }
        let merges = [
            ("b", "c"),
            ("a", "b"),
            ("a", "a"),
            ("ab", "c"),
            ("a", "bc"),
            ("▁", "a"),
            ("▁a", "bc"),
            ("aa", "a"),
            ("c", "c"),
        ];
        vocab.extend(["▁", "a", "b", "c"].map(String::from));
        vocab.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
        vocab.push("cab".into()); // reachable only as a whole piece (ignore_merges)
        let vocab: tokenizers::models::bpe::Vocab = vocab
            .into_iter()
            .enumerate()
            .map(|(i, t)| (t, i as u32))
            .collect();
        let merges = merges
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        BPE::builder()
            .vocab_and_merges(vocab, merges)
            .unk_token("<unk>".into())
            .byte_fallback(bytes)
            .fuse_unk(fuse_unk)
            .ignore_merges(ignore_merges)
            .build()
            .unwrap()
    }

    #[test]
    fn same_ids_as_tokenizers_on_random_pieces() {
        let alphabet = ['▁', 'a', 'b', 'c', 'x', 'é', '✓'];
        for (bytes, fuse_unk, ignore_merges) in [
            (true, true, false),
            (false, true, false),
            (false, false, false),
            (true, true, true),
        ] {
            let bpe = model(bytes, fuse_unk, ignore_merges);
            let ours = PieceBpe::new(&bpe).expect("supported model");
            let mut rng = SplitMix64::new(42);
            let (mut scratch, mut out) = (BpeScratch::default(), Vec::new());
            let mut pieces: Vec<String> = vec!["cab".into(), "aaaa".into(), "▁abc".into()];
            pieces.extend((0..3000).map(|_| {
                let n = 1 + rng.below(12) as usize;
                (0..n)
                    .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                    .collect()
            }));
            for piece in pieces {
                let want: Vec<u32> = bpe.tokenize(&piece).unwrap().iter().map(|t| t.id).collect();
                out.clear();
                assert!(ours.encode(&piece, &mut scratch, &mut out), "{piece:?}");
                assert_eq!(
                    out, want,
                    "{piece:?} bytes={bytes} fuse={fuse_unk} ignore={ignore_merges}"
                );
            }
        }
    }

    #[test]
    fn long_pieces_and_unsupported_models_are_left_to_tokenizers() {
        let bpe = model(true, true, false);
        let ours = PieceBpe::new(&bpe).unwrap();
        let long = "ab".repeat(PieceBpe::MAX_SYMBOLS);
        let mut out = Vec::new();
        assert!(!ours.encode(&long, &mut BpeScratch::default(), &mut out));
        assert!(out.is_empty());

        let mut dropout = model(true, true, false);
        dropout.dropout = Some(0.1);
        assert!(PieceBpe::new(&dropout).is_none());
    }
}
