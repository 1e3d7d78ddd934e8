//! The built mixture on disk (`mixture.json` + shards) and the lazy packed-sequence stream over it.
//!
//! ```no_run
//! use allam_data::{Mixture, BlendState};
//! # fn main() -> allam_data::Result<()> {
//! let mixture = Mixture::open("runs/data".as_ref())?;
//! let mut stream = mixture.stream();
//! let seq = stream.next_sequence(); // PackedSequence of seq_len tokens
//! stream.state().save("ckpt/blend.json".as_ref())?; // with the training checkpoint
//! // … later, possibly with new language probabilities:
//! let mut resumed = mixture.resume(BlendState::load("ckpt/blend.json".as_ref())?)?;
//! let w = mixture.weights_for(&[("en".into(), 0.5), ("ar".into(), 0.5)].into(), None)?;
//! resumed.reweight(w)?;
//! # Ok(()) }
//! ```
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::blend::{BlendState, WeightInput, pick_source, source_weights};
use crate::error::{DataError, Result};
use crate::pack::{PackedBatch, PackedSequence, SourcePacker};
use crate::report::write_atomic;
use crate::shard::Shard;

/// File name of the manifest inside a build directory.
pub const MANIFEST: &str = "mixture.json";

/// One source as recorded in the manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestSource {
    /// Source name.
    pub name: String,
    /// Language key.
    pub language: String,
    /// Domain label.
    pub domain: Option<String>,
    /// Recipe multiplier.
    pub multiplier: f64,
    /// Shard prefix relative to the build directory (`shards/NAME`).
    pub shard: String,
    /// Documents in the shard.
    pub documents: u64,
    /// Tokens in the shard.
    pub tokens: u64,
    /// Target weight `p(source)`.
    pub weight: f64,
}

/// `mixture.json`: everything needed to produce the packed stream lazily.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version (1).
    pub version: u32,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// Recipe seed.
    pub seed: u64,
    /// EOS id appended to every document.
    pub eos_id: u32,
    /// Id written on padding positions (EOS; they are masked anyway).
    pub pad_id: u32,
    /// Whether documents may continue into the next row (see [`crate::pack`]).
    pub split_documents: bool,
    /// Tokenizer copy, relative to the build directory.
    pub tokenizer: String,
    /// Target `P(language)`.
    pub languages: BTreeMap<String, f64>,
    /// Sources in recipe order.
    pub sources: Vec<ManifestSource>,
}

impl Manifest {
    /// Writes `DIR/mixture.json` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("manifest serialises");
        write_atomic(&dir.join(MANIFEST), json.as_bytes())
    }
}

/// A built mixture: manifest plus memory-mapped shards.
#[derive(Debug, Clone)]
pub struct Mixture {
    dir: PathBuf,
    manifest: Arc<Manifest>,
    shards: Vec<Arc<Shard>>,
}

impl Mixture {
    /// Opens `DIR/mixture.json` and every shard it names.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| DataError::Json {
            path: path.clone(),
            line: e.line() as u64,
            message: e.to_string(),
        })?;
        let mut shards = Vec::new();
        for s in &manifest.sources {
            let shard = Shard::open(&dir.join(&s.shard))?;
            if shard.is_empty() || shard.len() as u64 != s.documents {
                return Err(DataError::shard(
                    dir.join(&s.shard),
                    format!(
                        "{} documents, manifest says {} (expected equal and > 0)",
                        shard.len(),
                        s.documents
                    ),
                ));
            }
            shards.push(Arc::new(shard));
        }
        if !manifest.sources.iter().any(|s| s.weight > 0.0) {
            return Err(DataError::shard(&path, "no source has a positive weight"));
        }
        Ok(Mixture {
            dir: dir.to_path_buf(),
            manifest: Arc::new(manifest),
            shards,
        })
    }

    /// The build directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The shard of source `i` (manifest order).
    pub fn shard(&self, i: usize) -> &Shard {
        &self.shards[i]
    }

    /// The tokenizer copy in the build directory.
    pub fn tokenizer_path(&self) -> PathBuf {
        self.dir.join(&self.manifest.tokenizer)
    }

    /// The recipe's target weights, by source name.
    pub fn weights(&self) -> BTreeMap<String, f64> {
        self.manifest
            .sources
            .iter()
            .map(|s| (s.name.clone(), s.weight))
            .collect()
    }

    /// Weights from the paper's formula for new language probabilities (and, optionally, new
    /// multipliers by source name), using the built token counts. Languages must sum to 1.
    pub fn weights_for(
        &self,
        languages: &BTreeMap<String, f64>,
        multipliers: Option<&BTreeMap<String, f64>>,
    ) -> Result<BTreeMap<String, f64>> {
        let sum: f64 = languages.values().sum();
        if (sum - 1.0).abs() > crate::recipe::LANGUAGE_SUM_TOLERANCE {
            return Err(DataError::State(format!("languages sum to {sum} (expected 1)")));
        }
        let inputs: Vec<WeightInput<'_>> = self
            .manifest
            .sources
            .iter()
            .map(|s| WeightInput {
                language: &s.language,
                tokens: s.tokens,
                multiplier: multipliers
                    .and_then(|m| m.get(&s.name).copied())
                    .unwrap_or(s.multiplier),
            })
            .collect();
        let w = source_weights(languages, &inputs).map_err(DataError::State)?;
        Ok(self
            .manifest
            .sources
            .iter()
            .zip(w)
            .map(|(s, w)| (s.name.clone(), w))
            .collect())
    }

    /// A fresh stream from the start, with the recipe's weights.
    pub fn stream(&self) -> MixtureStream {
        let state = BlendState::new(self.manifest.seed, self.weights());
        self.resume(state).expect("a fresh state fits its mixture")
    }

    /// A stream continuing from a saved state (which carries its own, possibly re-weighted,
    /// weights).
    pub fn resume(&self, state: BlendState) -> Result<MixtureStream> {
        if state.seed != self.manifest.seed {
            return Err(DataError::State(format!(
                "seed {} does not match the mixture's {}",
                state.seed, self.manifest.seed
            )));
        }
        let names: Vec<String> = self.manifest.sources.iter().map(|s| s.name.clone()).collect();
        if state
            .sources
            .keys()
            .ne(names.iter().collect::<std::collections::BTreeSet<_>>())
        {
            return Err(DataError::State(format!(
                "state names sources {:?}, the mixture has {:?}",
                state.sources.keys().collect::<Vec<_>>(),
                names
            )));
        }
        for (i, name) in names.iter().enumerate() {
            let c = &state.sources[name];
            let s = &self.shards[i];
            if c.position as usize >= s.len()
                || (c.offset > 0
                    && c.offset as usize
                        >= s.doc_len(
                            crate::blend::PassOrder::new(state.seed, name, c.pass, s.len() as u64)
                                .document(c.position) as usize,
                        ))
            {
                return Err(DataError::State(format!(
                    "cursor of `{name}` is outside its shard"
                )));
            }
        }
        let packers = names
            .iter()
            .zip(&self.shards)
            .map(|(n, s)| SourcePacker::new(n.clone(), s.clone()))
            .collect();
        let mut stream = MixtureStream {
            manifest: self.manifest.clone(),
            names,
            packers,
            weights: Vec::new(),
            state,
        };
        stream.sync_weights()?;
        Ok(stream)
    }
}

/// The infinite, deterministic stream of packed sequences.
#[derive(Debug)]
pub struct MixtureStream {
    manifest: Arc<Manifest>,
    names: Vec<String>,
    packers: Vec<SourcePacker>,
    weights: Vec<f64>,
    state: BlendState,
}

impl MixtureStream {
    fn sync_weights(&mut self) -> Result<()> {
        self.weights = self
            .names
            .iter()
            .map(|n| self.state.weights.get(n).copied().unwrap_or(0.0))
            .collect();
        if !self.weights.iter().any(|w| *w > 0.0) {
            return Err(DataError::State("no source has a positive weight".into()));
        }
        Ok(())
    }

    /// The next packed sequence (the stream never ends: small sources are upsampled).
    pub fn next_sequence(&mut self) -> PackedSequence {
        let counts: Vec<u64> = self
            .names
            .iter()
            .map(|n| self.state.sources[n].segment_sequences)
            .collect();
        let i = pick_source(&self.weights, &counts);
        let cursor = self
            .state
            .sources
            .get_mut(&self.names[i])
            .expect("every source has a cursor");
        let row = self.packers[i].next_row(
            self.manifest.seed,
            cursor,
            self.manifest.seq_len,
            self.manifest.split_documents,
            self.manifest.pad_id,
        );
        self.state.sequences += 1;
        row
    }

    /// The next `batch` sequences, stacked.
    pub fn next_batch(&mut self, batch: usize) -> PackedBatch {
        PackedBatch::from_sequences((0..batch).map(|_| self.next_sequence()).collect())
    }

    /// The current state (save it with checkpoints).
    pub fn state(&self) -> &BlendState {
        &self.state
    }

    /// Changes the per-source weights from here on (normalised; same source names). Documents
    /// consumed so far in each source's current pass are not repeated.
    pub fn reweight(&mut self, weights: BTreeMap<String, f64>) -> Result<()> {
        self.state.reweight(weights)?;
        self.sync_weights()
    }

    /// Source names in manifest order.
    pub fn sources(&self) -> &[String] {
        &self.names
    }
}

impl Iterator for MixtureStream {
    type Item = PackedSequence;

    fn next(&mut self) -> Option<PackedSequence> {
        Some(self.next_sequence())
    }
}
