//! Learn an Arabic BPE vocabulary from a streamed corpus with the `tokenizers` trainer.
//!
//! Documents go through the base tokenizer's own normalizer and pre-tokenizer ([`TextPipeline`]), then
//! only the Arabic runs of each pre-token (with their leading `▁`, or space for byte-level bases) reach the
//! trainer, so every learned piece is part of an Arabic-script string that the base pre-tokenizer can
//! produce, word-initial pieces carrying the word mark exactly as the base tokenizer would produce them.
//! For byte-level bases the runs are written in byte symbols and the trainer starts from the 256-symbol
//! byte alphabet, so the pieces are byte sequences, some of them parts of characters.
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokenizers::Trainer;
use tokenizers::models::bpe::{BPE, BpeTrainer};

use crate::byte_level;
use crate::corpus::Corpus;
use crate::error::{Error, Result};
use crate::normalize::TextPipeline;

/// Settings of one training run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Number of pieces (alphabet + merges) to learn.
    pub vocab_size: usize,
    /// A pair must occur at least this often to be merged.
    pub min_frequency: u64,
    /// Keep at most this many distinct characters (the most frequent); `None` keeps all.
    pub limit_alphabet: Option<usize>,
    /// Longest piece, in symbols of the model's alphabet (characters; bytes for byte-level bases);
    /// `None` for no limit.
    pub max_token_length: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            vocab_size: 32_000,
            min_frequency: 2,
            limit_alphabet: Some(1_000),
            max_token_length: Some(24),
        }
    }
}

/// A learned Arabic vocabulary, in the trainer's order.
#[derive(Debug, Clone)]
pub struct ArabicVocab {
    /// Single symbols (characters; byte symbols for byte-level bases), by trainer id.
    pub alphabet: Vec<String>,
    /// Merges, in priority order; the piece of a merge is the concatenation of its two sides.
    pub merges: Vec<(String, String)>,
    /// Documents read.
    pub documents: u64,
    /// Arabic words fed to the trainer (with repetition).
    pub words: u64,
    /// Seconds spent (reading + counting + merging).
    pub seconds: f64,
}

impl ArabicVocab {
    /// Number of pieces (alphabet + merges).
    pub fn len(&self) -> usize {
        self.alphabet.len() + self.merges.len()
    }

    /// Whether nothing was learned.
    pub fn is_empty(&self) -> bool {
        self.alphabet.is_empty()
    }

    /// Every piece, in trainer order (alphabet first, then the product of each merge).
    pub fn pieces(&self) -> impl Iterator<Item = String> + '_ {
        self.alphabet
            .iter()
            .cloned()
            .chain(self.merges.iter().map(|(a, b)| format!("{a}{b}")))
    }
}

/// Trains an Arabic BPE vocabulary on the Arabic runs of `corpus`, prepared by `pipeline`.
///
/// The corpus is streamed (one document in memory per worker); the trainer keeps one count per distinct
/// Arabic word.
pub fn train_arabic_vocab(
    corpus: &Corpus,
    pipeline: &TextPipeline,
    config: &TrainConfig,
) -> Result<ArabicVocab> {
    let start = Instant::now();
    corpus.check_readable()?;
    let mut trainer = BpeTrainer::builder()
        .vocab_size(config.vocab_size)
        .min_frequency(config.min_frequency)
        .show_progress(false)
        .max_token_length(config.max_token_length);
    if let Some(limit) = config.limit_alphabet {
        trainer = trainer.limit_alphabet(limit);
    }
    if pipeline.is_byte_level() {
        trainer = trainer.initial_alphabet(byte_level::alphabet().into_iter().collect());
    }
    let mut trainer = trainer.build();

    // The trainer wants an infallible iterator: stop at the first corpus error and report it afterwards.
    let failure: Arc<Mutex<Option<Error>>> = Arc::default();
    let documents = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let words = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let docs = {
        let failure = failure.clone();
        let documents = documents.clone();
        corpus.documents().map_while(move |d| match d {
            Ok(doc) => {
                documents.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Some(doc)
            }
            Err(e) => {
                *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                None
            }
        })
    };
    let counter = words.clone();
    trainer
        .feed(docs, |doc| {
            let w = pipeline
                .arabic_words(doc)
                .map_err(|e| -> tokenizers::Error { e.to_string().into() })?;
            counter.fetch_add(w.len() as u64, std::sync::atomic::Ordering::Relaxed);
            Ok(w)
        })
        .map_err(Error::tokenizers)?;
    if let Some(e) = failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(e);
    }
    let mut model = BPE::default();
    trainer.train(&mut model).map_err(Error::tokenizers)?;
    let (vocab, merges) = bpe_parts(&model)?;
    let mut by_id: Vec<(u32, String)> = vocab.into_iter().map(|(s, id)| (id, s)).collect();
    by_id.sort();
    let alphabet = by_id
        .into_iter()
        .map(|(_, s)| s)
        .filter(|s| s.chars().count() == 1)
        .collect();
    Ok(ArabicVocab {
        alphabet,
        merges,
        documents: documents.load(std::sync::atomic::Ordering::Relaxed),
        words: words.load(std::sync::atomic::Ordering::Relaxed),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// A BPE model's vocabulary (piece → id) and merges in rank order.
pub type BpeParts = (std::collections::HashMap<String, u32>, Vec<(String, String)>);

/// The vocabulary and the merges (in rank order) of a BPE model, read from its serialised form.
pub fn bpe_parts(model: &BPE) -> Result<BpeParts> {
    #[derive(Deserialize)]
    struct Parts {
        merges: Vec<(String, String)>,
    }
    let value = serde_json::to_value(model).map_err(Error::tokenizers)?;
    let parts: Parts = serde_json::from_value(value).map_err(Error::tokenizers)?;
    Ok((model.get_vocab(), parts.merges))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_arabic_pieces_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mix.txt");
        std::fs::write(
            &path,
            "ذهب الولد إلى المدرسة mixed with English words\nالمدرسة كبيرة والولد سعيد\nالولد في المدرسة\n",
        )
        .unwrap();
        let pipeline = TextPipeline {
            normalizer: Some(crate::base::llama_normalizer()),
            pre_tokenizer: None,
        };
        let config = TrainConfig {
            vocab_size: 60,
            min_frequency: 1,
            ..Default::default()
        };
        let vocab = train_arabic_vocab(&Corpus::new([&path], "text"), &pipeline, &config).unwrap();
        assert_eq!(vocab.documents, 3);
        assert_eq!(vocab.words, 11);
        assert!(vocab.len() <= 60 && vocab.merges.len() > 10);
        for piece in vocab.pieces() {
            assert!(
                piece.chars().all(|c| c == '▁' || crate::script::is_arabic(c)),
                "{piece}"
            );
        }
        assert!(vocab.pieces().any(|p| p == "▁المدرسة"));
    }
}
