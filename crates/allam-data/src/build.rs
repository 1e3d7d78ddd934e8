//! `build`: recipe → cleaned, deduplicated, tokenised shards + `mixture.json` + `report.json`.
//!
//! Each source is streamed in batches of about [`BuildOptions::batch_bytes`] of text (at most
//! 16,384 documents): the batch is
//! cleaned in parallel (rayon), deduplicated in order (so the result does not depend on the thread
//! count), tokenised in parallel, and appended to the source's shard with EOS after each document.
//! Memory is one batch plus the dedup tables held in memory: at most
//! [`BuildOptions::dedup_memory_hashes`] exact-dedup hashes and as many near-dedup LSH buckets;
//! older entries are spilled to sorted runs on disk, and near-dedup's MinHash signatures go to a
//! temporary file. Document lengths are streamed to disk ([`ShardWriter`]) and shards are read
//! back memory-mapped, so nothing grows with the input.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use tokenizers::Tokenizer;

use crate::blend::{WeightInput, source_weights};
use crate::clean::{DropCounts, DropReason, clean_document};
use crate::dedup::{ExactDedup, NearDedup};
use crate::encode::Encoder;
use crate::error::{DataError, Result};
use crate::hash::label_hash;
use crate::output::Staging;
use crate::progress::Progress;
use crate::recipe::{Recipe, SourceSpec};
use crate::report::{Report, SourceReport, write_atomic};
use crate::shard::{ShardWriter, dtype_for_vocab};
use crate::source::{DocReader, Extract, Template};
use crate::stream::{Manifest, ManifestSource, Mixture};
use allam_io::rng::{SplitMix64, mix};

/// Build settings that are not part of the recipe.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Sequences in the planned stream the report describes (default: enough for every kept
    /// token once, `⌈Σ tokens / seq_len⌉`).
    pub sequences: Option<u64>,
    /// Text bytes per processing batch (bounds memory).
    pub batch_bytes: usize,
    /// Exact-dedup hashes (and, separately, near-dedup LSH buckets) held in memory per source;
    /// more are spilled to sorted runs in a temporary directory beside the shards
    /// ([`crate::seen::SeenHashes`]).
    pub dedup_memory_hashes: usize,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            sequences: None,
            batch_bytes: 4 << 20,
            dedup_memory_hashes: crate::seen::DEFAULT_MEMORY_HASHES,
        }
    }
}

/// What one source produced.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceBuild {
    /// Input files.
    pub files: Vec<PathBuf>,
    /// Input bytes.
    pub bytes: u64,
    /// Documents read.
    pub read: u64,
    /// Documents kept.
    pub documents: u64,
    /// Tokens kept (EOS included).
    pub tokens: u64,
    /// Drops by reason.
    pub dropped: DropCounts,
}

/// Loads a tokenizer and finds its EOS id (`eos_token`, else the first known EOS spelling).
pub fn load_tokenizer(path: &Path, eos_token: Option<&str>) -> Result<(Tokenizer, u32)> {
    let tok = Tokenizer::from_file(path).map_err(|e| DataError::Tokenizer {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let candidates: Vec<&str> = match eos_token {
        Some(t) => vec![t],
        None => vec!["</s>", "<|endoftext|>", "<eos>", "<|end_of_text|>", "[SEP]"],
    };
    let eos = candidates
        .iter()
        .find_map(|t| tok.token_to_id(t))
        .ok_or_else(|| DataError::Tokenizer {
            path: path.to_path_buf(),
            message: format!("no EOS token among {candidates:?} (set eos_token in the recipe)"),
        })?;
    Ok((tok, eos))
}

/// Most documents in one batch: short documents would otherwise make a batch of
/// `batch_bytes` hold ~100,000 of them, each with its 512-byte MinHash signature when near-dedup is
/// on (≈ 8 MiB of signatures at this cap).
const BATCH_DOCUMENTS: usize = 16_384;

/// Reads, cleans, deduplicates and tokenises one source into the shard at `prefix`.
#[allow(clippy::too_many_arguments)]
pub fn build_source(
    spec: &SourceSpec,
    files: Vec<PathBuf>,
    encoder: &Encoder,
    eos: u32,
    seed: u64,
    prefix: &Path,
    options: &BuildOptions,
    progress: &dyn Progress,
) -> Result<SourceBuild> {
    let cfg = &spec.clean;
    let extract = match &spec.parallel {
        None => Extract::Field(spec.text_field.clone()),
        Some(p) => Extract::Parallel {
            spec: p.clone(),
            template: Template::parse(&p.template),
            rng: SplitMix64::new(mix(seed, label_hash(&spec.name))),
        },
    };
    let mut reader = DocReader::new(files.clone(), extract);
    let shard_dir = prefix.parent().unwrap_or(Path::new("."));
    let mut exact = ExactDedup::new(shard_dir, options.dedup_memory_hashes);
    let mut near = match cfg.near_duplicate_threshold {
        Some(t) => Some(NearDedup::new(
            t,
            cfg.minhash_permutations,
            seed,
            shard_dir,
            options.dedup_memory_hashes,
        )?),
        None => None,
    };
    let mut dropped = DropCounts::default();
    let mut read = 0u64;
    let mut reported = 0u64;
    let mut writer = ShardWriter::create(prefix, dtype_for_vocab(encoder.tokenizer().get_vocab_size(true)))?;
    loop {
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        while bytes < options.batch_bytes && batch.len() < BATCH_DOCUMENTS {
            match reader.next() {
                None => break,
                Some(doc) => {
                    let doc = doc?;
                    bytes += doc.text.len();
                    batch.push(doc.text);
                }
            }
        }
        if batch.is_empty() {
            break;
        }
        read += batch.len() as u64;
        let near_ref = near.as_ref();
        type Cleaned = std::result::Result<(String, u64, Option<Box<[u32]>>), DropReason>;
        let cleaned: Vec<Cleaned> = batch
            .into_par_iter()
            .map(|text| {
                let t = clean_document(&text, cfg)?;
                let h = if cfg.dedup_exact { ExactDedup::hash(&t) } else { 0 };
                let sig = near_ref.map(|n| n.signature(&t));
                Ok((t, h, sig))
            })
            .collect();
        let mut keep = Vec::with_capacity(cleaned.len());
        for c in cleaned {
            match c {
                Err(reason) => dropped.add(reason),
                Ok((text, hash, sig)) => {
                    if cfg.dedup_exact && !exact.insert_hash(hash)? {
                        dropped.add(DropReason::ExactDuplicate);
                        continue;
                    }
                    if let (Some(n), Some(sig)) = (near.as_mut(), sig)
                        && !n.insert(sig)?
                    {
                        dropped.add(DropReason::NearDuplicate);
                        continue;
                    }
                    keep.push(text);
                }
            }
        }
        let encoded: Vec<Result<Vec<u32>>> = keep
            .par_iter()
            .map(|t| {
                let mut ids = encoder.encode(t).map_err(|e| DataError::Tokenizer {
                    path: PathBuf::from("<tokenizer>"),
                    message: format!("source `{}`: {e}", spec.name),
                })?;
                ids.push(eos);
                Ok(ids)
            })
            .collect();
        for ids in encoded {
            writer.push(&ids?)?;
        }
        let now = reader.bytes_read();
        progress.advance(now - reported);
        reported = now;
    }
    if writer.documents() == 0 {
        return Err(DataError::EmptySource {
            source_name: spec.name.clone(),
            read,
            dropped: dropped
                .to_map()
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| format!("{k}={n}"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let (documents, tokens) = writer.finish()?;
    Ok(SourceBuild {
        files,
        bytes: reader.bytes_read(),
        read,
        documents,
        tokens,
        dropped,
    })
}

/// Builds the whole mixture into `out`: `shards/NAME.{bin,idx}`, `tokenizer.json`,
/// `mixture.json` and `report.json` (all written atomically).
pub fn build(recipe: &Recipe, out: &Path, options: &BuildOptions, progress: &dyn Progress) -> Result<Report> {
    let started = Instant::now();
    let (tokenizer, eos) = load_tokenizer(&recipe.tokenizer, recipe.eos_token.as_deref())?;
    // Resolve every source's files first, so a missing input fails before any work.
    let mut inputs = Vec::new();
    let mut total_bytes = 0u64;
    for s in &recipe.sources {
        let files = s.files()?;
        for f in &files {
            total_bytes += std::fs::metadata(f).map_err(|e| DataError::io(f, e))?.len();
        }
        inputs.push(files);
    }
    progress.start(total_bytes);
    let encoder = Encoder::new(tokenizer, recipe.add_bos);
    // Everything is written to a staging directory and swapped in at the end.
    let staging = Staging::begin(out, progress)?;
    let out = staging.path();
    let shard_dir = out.join("shards");
    std::fs::create_dir_all(&shard_dir).map_err(|e| DataError::io(&shard_dir, e))?;
    let mut built = Vec::new();
    for (spec, files) in recipe.sources.iter().zip(inputs) {
        progress.message(&format!("source {}", spec.name));
        built.push(build_source(
            spec,
            files,
            &encoder,
            eos,
            recipe.seed,
            &shard_dir.join(&spec.name),
            options,
            progress,
        )?);
    }
    let build_seconds = started.elapsed().as_secs_f64();

    let weights = source_weights(
        &recipe.languages,
        &recipe
            .sources
            .iter()
            .zip(&built)
            .map(|(s, b)| WeightInput {
                language: &s.language,
                tokens: b.tokens,
                multiplier: s.multiplier,
            })
            .collect::<Vec<_>>(),
    )
    .map_err(|m| DataError::recipe(&recipe.path, m))?;

    let tok_bytes = std::fs::read(&recipe.tokenizer).map_err(|e| DataError::io(&recipe.tokenizer, e))?;
    write_atomic(&out.join("tokenizer.json"), &tok_bytes)?;
    let manifest = Manifest {
        version: 1,
        seq_len: recipe.seq_len,
        seed: recipe.seed,
        eos_id: eos,
        pad_id: eos,
        split_documents: recipe.split_documents,
        tokenizer: "tokenizer.json".into(),
        languages: recipe.languages.clone(),
        sources: recipe
            .sources
            .iter()
            .zip(&built)
            .zip(&weights)
            .map(|((s, b), w)| ManifestSource {
                name: s.name.clone(),
                language: s.language.clone(),
                domain: s.domain.clone(),
                multiplier: s.multiplier,
                shard: format!("shards/{}", s.name),
                documents: b.documents,
                tokens: b.tokens,
                weight: *w,
            })
            .collect(),
    };
    manifest.save(out)?;

    progress.message("planning the stream");
    let mixture = Mixture::open(out)?;
    let total_tokens: u64 = built.iter().map(|b| b.tokens).sum();
    let sequences = options
        .sequences
        .unwrap_or_else(|| total_tokens.div_ceil(recipe.seq_len as u64));
    let report = plan(&mixture, recipe, &built, sequences, build_seconds);
    report.save(&out.join("report.json"))?;
    drop(mixture);
    staging.commit()?;
    Ok(report)
}

/// Runs the stream for `sequences` rows and summarises what each source and language got.
fn plan(
    mixture: &Mixture,
    recipe: &Recipe,
    built: &[SourceBuild],
    sequences: u64,
    build_seconds: f64,
) -> Report {
    let mut stream = mixture.stream();
    let mut padding = 0u64;
    for _ in 0..sequences {
        padding += stream.next_sequence().padding() as u64;
    }
    let state = stream.state();
    let sampled: u64 = state.sources.values().map(|c| c.tokens).sum();
    let frac = |n: u64| {
        if sampled == 0 {
            0.0
        } else {
            n as f64 / sampled as f64
        }
    };
    let mut sources = BTreeMap::new();
    let mut languages: BTreeMap<String, f64> = recipe.languages.keys().map(|k| (k.clone(), 0.0)).collect();
    let mut upsampled = Vec::new();
    for ((spec, b), m) in recipe.sources.iter().zip(built).zip(&mixture.manifest().sources) {
        let c = &state.sources[&spec.name];
        let passes = c.tokens as f64 / b.tokens as f64;
        if passes > 1.0 {
            upsampled.push(spec.name.clone());
        }
        *languages.entry(spec.language.clone()).or_default() += frac(c.tokens);
        sources.insert(
            spec.name.clone(),
            SourceReport {
                language: spec.language.clone(),
                domain: spec.domain.clone(),
                multiplier: spec.multiplier,
                files: b.files.len(),
                bytes: b.bytes,
                documents_read: b.read,
                documents: b.documents,
                tokens: b.tokens,
                dropped: b.dropped.to_map(),
                weight: m.weight,
                sampled_tokens: c.tokens,
                passes,
                realised_fraction: frac(c.tokens),
            },
        );
    }
    Report {
        sources,
        languages,
        language_targets: recipe.languages.clone(),
        sequences,
        seq_len: recipe.seq_len,
        padding_tokens: padding,
        upsampled,
        build_seconds,
    }
}
