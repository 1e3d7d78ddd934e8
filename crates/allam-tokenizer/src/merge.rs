//! Merge a learned Arabic vocabulary into a base BPE — byte-fallback (Llama-2, Mistral) or byte-level
//! (GPT-2, Llama-3, Qwen2, SmolLM2) — keeping every base id and making every new piece reachable.
//!
//! # How
//! The base model's vocabulary keeps its ids; new pieces get the ids after the last id in use (added
//! tokens included). New merges are taken from the Arabic trainer in its order. Every new merge produces an
//! Arabic piece ([`BaseBpe::is_arabic_piece`]: Arabic-block characters and `▁` for byte-fallback bases;
//! for byte-level bases, bytes that can only occur inside Arabic characters, see [`crate::byte_level`]).
//! A merge creates its piece's text where it fires, so on text without Arabic no new merge can fire, and
//! the base merges run there exactly as before (same order, same ids) wherever the new merges sit in the
//! priority list. With `ignore_merges` (Llama-3), a pre-token found whole in the vocabulary is taken
//! directly; a pre-token without Arabic never equals a new piece, so that shortcut is unchanged too.
//!
//! Where they sit matters for Arabic. With [`MergePriority::AfterBase`] the base's own Arabic merges
//! fire first and can glue characters across the boundaries the Arabic trainer chose, so some learned
//! pieces are never produced ("blocked"). With [`MergePriority::ArabicFirst`] (the default) the learned
//! merges come first — a base merge that the trainer also learned is moved up with them — so Arabic
//! words are segmented as by the Arabic tokenizer alone, and the base's Arabic merges only act afterwards.
//!
//! Either way nothing is assumed: after each build every new piece is encoded by the real `tokenizers`
//! BPE, with `ignore_merges` off (with it on, any vocabulary entry would trivially encode to itself; a
//! piece must come out of the merges, as it has to inside a longer pre-token). A piece that does not come
//! out as itself is repaired when the merged model splits it into exactly two pieces (its merge is
//! replaced by that pair, in the same place), and dropped otherwise, together with every learned merge
//! that builds on it; further learned pieces then fill the freed slots, and the build is verified again
//! until every new piece is reachable.
use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::{Model, ModelWrapper, Tokenizer};

use crate::byte_level;
use crate::error::{Error, Result};
use crate::normalize::WORD_MARK;
use crate::script::is_arabic;
use crate::train::{ArabicVocab, bpe_parts};

/// Where the learned merges go in the merged model's priority list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MergePriority {
    /// Learned merges first (base merges they duplicate move with them), base merges after.
    #[default]
    ArabicFirst,
    /// Base merges first, learned merges appended after them.
    AfterBase,
}

/// Whether `piece` is a string the expansion may add to a byte-fallback base: Arabic-block characters and
/// `▁` only, at least one Arabic character. (Byte-level bases: [`byte_level::is_arabic_piece`].)
pub fn is_arabic_piece(piece: &str) -> bool {
    piece.chars().all(|c| c == WORD_MARK || is_arabic(c)) && piece.chars().any(is_arabic)
}

/// The two kinds of BPE base the expansion supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BpeFamily {
    /// Pieces are Unicode strings with `▁` word marks; characters outside the vocabulary fall back to
    /// `<0xXX>` byte pieces (Llama-2, Mistral).
    ByteFallback,
    /// A `ByteLevel` pre-tokenizer maps every byte to one of 256 symbols (`Ġ` is the space); pieces are
    /// strings of those symbols and may hold part of a character (GPT-2, Llama-3, Qwen2, SmolLM2).
    ByteLevel,
}

/// The parts of a base tokenizer's BPE model that the merge works on.
#[derive(Debug, Clone)]
pub struct BaseBpe {
    /// Piece → id.
    pub vocab: HashMap<String, u32>,
    /// Merges in rank order.
    pub merges: Vec<(String, String)>,
    /// Size of the whole vocabulary: one past the largest id in use, added tokens included.
    pub vocab_size: u32,
    /// Byte-fallback or byte-level.
    pub family: BpeFamily,
    model: BPE,
}

impl BaseBpe {
    /// Reads the BPE model of `tokenizer`, or explains why it is not a base we can expand.
    pub fn from_tokenizer(tokenizer: &Tokenizer) -> Result<Self> {
        let model = match tokenizer.get_model() {
            ModelWrapper::BPE(bpe) => bpe,
            ModelWrapper::WordPiece(_) => return Err(unsupported("a WordPiece model")),
            ModelWrapper::Unigram(_) => return Err(unsupported("a Unigram model")),
            ModelWrapper::WordLevel(_) => return Err(unsupported("a WordLevel model")),
        };
        let byte_level = tokenizer
            .get_pre_tokenizer()
            .is_some_and(byte_level::is_byte_level);
        let affix = |a: &Option<String>| a.as_deref().is_some_and(|a| !a.is_empty());
        if affix(&model.continuing_subword_prefix) || affix(&model.end_of_word_suffix) {
            return Err(unsupported(
                "a BPE with a continuing-subword prefix or end-of-word suffix",
            ));
        }
        let (vocab, merges) = bpe_parts(model)?;
        let family = if byte_level {
            if model.byte_fallback {
                return Err(unsupported(
                    "a byte-level BPE (ByteLevel pre-tokenizer) that also has byte_fallback",
                ));
            }
            // No check that all 256 byte symbols are in the vocabulary: SmolLM2 lacks 21 (bytes that
            // never or hardly occur in UTF-8 text), which the base drops. A missing symbol that is an
            // Arabic piece (a lead byte 0xD8–0xDB) is added like any learned piece; others stay missing.
            BpeFamily::ByteLevel
        } else {
            if !model.byte_fallback {
                return Err(unsupported(
                    "a BPE without byte_fallback and without a ByteLevel pre-tokenizer",
                ));
            }
            if !vocab.contains_key(&WORD_MARK.to_string()) {
                return Err(unsupported("a BPE whose vocabulary has no `▁` piece"));
            }
            BpeFamily::ByteFallback
        };
        let vocab_size = tokenizer
            .get_vocab(true)
            .values()
            .chain(vocab.values())
            .max()
            .map_or(0, |m| m + 1);
        Ok(BaseBpe {
            vocab,
            merges,
            vocab_size,
            family,
            model: model.clone(),
        })
    }

    /// Whether `piece` is an Arabic piece of this base's family: for byte-fallback bases
    /// [`is_arabic_piece`], for byte-level bases [`byte_level::is_arabic_piece`].
    pub fn is_arabic_piece(&self, piece: &str) -> bool {
        match self.family {
            BpeFamily::ByteFallback => is_arabic_piece(piece),
            BpeFamily::ByteLevel => byte_level::is_arabic_piece(piece),
        }
    }

    /// Whether the base takes a pre-token found whole in its vocabulary directly (`ignore_merges`, as
    /// Llama-3 does).
    pub fn ignores_merges(&self) -> bool {
        self.model.ignore_merges
    }

    /// Builds a BPE with the base's settings (unk token, byte fallback, `ignore_merges`, ...) on another
    /// vocabulary.
    pub fn build_like(&self, vocab: HashMap<String, u32>, merges: Vec<(String, String)>) -> Result<BPE> {
        self.build_with(vocab, merges, self.model.ignore_merges)
    }

    /// [`build_like`](Self::build_like), but with `ignore_merges` as given.
    fn build_with(
        &self,
        vocab: HashMap<String, u32>,
        merges: Vec<(String, String)>,
        ignore_merges: bool,
    ) -> Result<BPE> {
        let mut builder = BPE::builder()
            .vocab_and_merges(vocab.into_iter().collect::<Vocab>(), merges)
            .fuse_unk(self.model.fuse_unk)
            .byte_fallback(self.model.byte_fallback)
            .ignore_merges(ignore_merges);
        if let Some(unk) = &self.model.unk_token {
            builder = builder.unk_token(unk.clone());
        }
        if let Some(prefix) = &self.model.continuing_subword_prefix {
            builder = builder.continuing_subword_prefix(prefix.clone());
        }
        if let Some(suffix) = &self.model.end_of_word_suffix {
            builder = builder.end_of_word_suffix(suffix.clone());
        }
        if let Some(p) = self.model.dropout {
            builder = builder.dropout(p);
        }
        builder.build().map_err(Error::tokenizers)
    }
}

fn unsupported(found: &str) -> Error {
    Error::UnsupportedBase {
        found: found.to_string(),
    }
}

/// The merged vocabulary: base pieces, new Arabic pieces and the merges, ready to become a BPE model.
#[derive(Debug, Clone)]
pub struct MergedVocab {
    /// Piece → id (base ids unchanged; new pieces from the base's vocabulary size on).
    pub vocab: HashMap<String, u32>,
    /// Merges in rank order.
    pub merges: Vec<(String, String)>,
    /// The new pieces with their ids, in id order.
    pub new_pieces: Vec<(String, u32)>,
    /// Learned merges put in the model (including those producing pieces the base already had).
    pub merges_added: usize,
    /// Base merges moved up to the learned merges' place ([`MergePriority::ArabicFirst`] only).
    pub base_merges_moved: usize,
    /// Learned pieces whose merge was replaced by the pair the merged model actually forms.
    pub repaired: Vec<String>,
    /// Learned pieces dropped because the merged model could not produce them.
    pub dropped: Vec<String>,
    /// Build-and-verify rounds it took.
    pub rounds: usize,
    /// How many of the trainer's merges (a prefix of its list) the new pieces come from; the Arabic
    /// tokenizer with that prefix is the fair "Arabic alone" comparison.
    pub trainer_merges_used: usize,
}

/// Merges `arabic` into `base`, adding exactly `new_pieces` reachable pieces (or fails saying how many the
/// vocabulary could give).
pub fn merge_vocab(
    base: &BaseBpe,
    arabic: &ArabicVocab,
    new_pieces: usize,
    priority: MergePriority,
) -> Result<MergedVocab> {
    let mut excluded: HashSet<String> = HashSet::new();
    let mut overrides: HashMap<String, (String, String)> = HashMap::new();
    let mut repaired = Vec::new();
    for round in 1..=64 {
        let mut merged = build(base, arabic, new_pieces, priority, &excluded, &overrides);
        // Merges only: with `ignore_merges` every vocabulary entry would encode to itself.
        let model = base.build_with(merged.vocab.clone(), merged.merges.clone(), false)?;
        let mut failures = 0;
        for (piece, id) in &merged.new_pieces {
            let tokens = model.tokenize(piece).map_err(Error::tokenizers)?;
            if tokens.len() == 1 && tokens[0].id == *id {
                continue;
            }
            failures += 1;
            let parts: Vec<String> = tokens.into_iter().map(|t| t.value).collect();
            if parts.len() == 2 && !overrides.contains_key(piece) {
                overrides.insert(piece.clone(), (parts[0].clone(), parts[1].clone()));
                repaired.push(piece.clone());
            } else {
                overrides.remove(piece);
                excluded.insert(piece.clone());
            }
        }
        if failures == 0 {
            if merged.new_pieces.len() < new_pieces {
                return Err(Error::Config(format!(
                    "the Arabic vocabulary gives only {} reachable new pieces, {} are needed; \
                     train on more Arabic text, lower the minimum pair frequency, or ask for a smaller vocabulary",
                    merged.new_pieces.len(),
                    new_pieces
                )));
            }
            repaired.retain(|p| overrides.contains_key(p));
            merged.repaired = repaired;
            let mut dropped: Vec<String> = excluded.into_iter().collect();
            dropped.sort();
            merged.dropped = dropped;
            merged.rounds = round;
            return Ok(merged);
        }
    }
    Err(Error::Config(
        "merging did not converge to a vocabulary whose new pieces are all reachable".into(),
    ))
}

/// One build: take learned pieces in trainer order until `needed` new ones are in.
fn build(
    base: &BaseBpe,
    arabic: &ArabicVocab,
    needed: usize,
    priority: MergePriority,
    excluded: &HashSet<String>,
    overrides: &HashMap<String, (String, String)>,
) -> MergedVocab {
    let mut vocab = base.vocab.clone();
    let mut next_id = base.vocab_size;
    let mut new_pieces = Vec::new();
    let base_pairs: HashMap<(&str, &str), usize> = base
        .merges
        .iter()
        .enumerate()
        .map(|(i, (a, b))| ((a.as_str(), b.as_str()), i))
        .collect();
    let mut moved: HashSet<usize> = HashSet::new();
    let mut block: Vec<(String, String)> = Vec::new();
    let mut block_pairs: HashSet<(String, String)> = HashSet::new();

    for c in &arabic.alphabet {
        if new_pieces.len() < needed
            && base.is_arabic_piece(c)
            && !vocab.contains_key(c)
            && !excluded.contains(c)
        {
            vocab.insert(c.clone(), next_id);
            new_pieces.push((c.clone(), next_id));
            next_id += 1;
        }
    }
    let mut trainer_merges_used = 0;
    for (i, (a, b)) in arabic.merges.iter().enumerate() {
        let piece = format!("{a}{b}");
        if !base.is_arabic_piece(&piece) || excluded.contains(&piece) {
            continue;
        }
        let (a, b) = overrides.get(&piece).unwrap_or(&(a.clone(), b.clone())).clone();
        if !vocab.contains_key(&a) || !vocab.contains_key(&b) || block_pairs.contains(&(a.clone(), b.clone()))
        {
            continue;
        }
        if let Some(&i) = base_pairs.get(&(a.as_str(), b.as_str())) {
            if priority == MergePriority::ArabicFirst && moved.insert(i) {
                block_pairs.insert((a.clone(), b.clone()));
                block.push((a, b));
            }
            continue;
        }
        if !vocab.contains_key(&piece) {
            if new_pieces.len() >= needed {
                continue;
            }
            vocab.insert(piece.clone(), next_id);
            new_pieces.push((piece, next_id));
            next_id += 1;
            trainer_merges_used = i + 1;
        }
        block_pairs.insert((a.clone(), b.clone()));
        block.push((a, b));
    }

    let base_rest = base
        .merges
        .iter()
        .enumerate()
        .filter(|(i, _)| !moved.contains(i))
        .map(|(_, m)| m.clone());
    let merges_added = block.len();
    let merges: Vec<(String, String)> = match priority {
        MergePriority::ArabicFirst => block.into_iter().chain(base_rest).collect(),
        MergePriority::AfterBase => base_rest.chain(block).collect(),
    };
    MergedVocab {
        vocab,
        merges,
        new_pieces,
        merges_added,
        base_merges_moved: moved.len(),
        repaired: Vec::new(),
        dropped: Vec::new(),
        rounds: 0,
        trainer_merges_used,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arabic_pieces() {
        assert!(is_arabic_piece("▁كتاب"));
        assert!(is_arabic_piece("ال"));
        assert!(!is_arabic_piece("▁"));
        assert!(!is_arabic_piece("▁the"));
        assert!(!is_arabic_piece("كتابa"));
    }

    /// A base with one Arabic merge, `ا`+`ل`, as Mistral has.
    fn tiny_base() -> BaseBpe {
        let mut vocab: Vec<String> = vec!["<unk>".into()];
        vocab.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
        vocab.extend(["▁", "ا", "ل", "ه", "ال"].map(String::from));
        let vocab: HashMap<String, u32> = vocab.into_iter().zip(0..).collect();
        let json = serde_json::json!({
            "version": "1.0", "added_tokens": [], "normalizer": crate::base::llama_normalizer(),
            "pre_tokenizer": null, "post_processor": null, "decoder": null, "truncation": null, "padding": null,
            "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true, "fuse_unk": true,
                      "vocab": vocab, "merges": [["ا", "ل"]]}
        });
        let tokenizer: Tokenizer = json.to_string().parse().unwrap();
        BaseBpe::from_tokenizer(&tokenizer).unwrap()
    }

    #[test]
    fn base_merges_block_appended_pieces_but_not_arabic_first_ones() {
        let base = tiny_base();
        // The trainer built الله as ل+ل, لل+ه, ا+لله; the base's ا+ل cuts across that.
        let arabic = ArabicVocab {
            alphabet: ["ا", "ل", "ه", "▁"].map(String::from).to_vec(),
            merges: [("ل", "ل"), ("لل", "ه"), ("ا", "لله"), ("ه", "ا")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .to_vec(),
            documents: 0,
            words: 0,
            seconds: 0.0,
        };
        let pieces = |m: &MergedVocab| m.new_pieces.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();

        let after = merge_vocab(&base, &arabic, 3, MergePriority::AfterBase).unwrap();
        assert_eq!(after.dropped, ["الله"]);
        assert_eq!(pieces(&after), ["لل", "لله", "ها"]);
        assert_eq!(after.rounds, 2);

        let first = merge_vocab(&base, &arabic, 3, MergePriority::ArabicFirst).unwrap();
        assert!(first.dropped.is_empty());
        assert_eq!(pieces(&first), ["لل", "لله", "الله"]);
        assert_eq!(first.new_pieces[0].1, base.vocab_size);
        let model = base
            .build_like(first.vocab.clone(), first.merges.clone())
            .unwrap();
        let ids: Vec<u32> = model.tokenize("الله").unwrap().iter().map(|t| t.id).collect();
        assert_eq!(ids, [first.vocab["الله"]]);
        // The base merge stays where it was (after the learned ones) and still works.
        assert_eq!(first.merges.last().unwrap(), &("ا".to_string(), "ل".to_string()));
        assert_eq!(model.tokenize("ال").unwrap()[0].id, base.vocab["ال"]);

        let err = merge_vocab(&base, &arabic, 5, MergePriority::AfterBase).unwrap_err();
        assert!(err.to_string().contains("only 3 reachable"), "{err}");
    }

    #[test]
    fn rejects_other_model_types() {
        use tokenizers::models::wordpiece::WordPiece;
        let wp = Tokenizer::new(WordPiece::default());
        let err = BaseBpe::from_tokenizer(&wp).unwrap_err().to_string();
        assert!(err.contains("WordPiece"), "{err}");
        let mut no_fallback = crate::fixture::llama_style_tokenizer(300, 0).unwrap();
        let ModelWrapper::BPE(bpe) = no_fallback.get_model().clone() else {
            unreachable!()
        };
        let mut bpe = bpe;
        bpe.byte_fallback = false;
        no_fallback.with_model(bpe);
        let err = BaseBpe::from_tokenizer(&no_fallback).unwrap_err().to_string();
        assert!(err.contains("byte_fallback"), "{err}");
    }
}
