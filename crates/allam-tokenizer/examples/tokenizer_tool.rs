//! Development and measurement driver for the tokenizer crate, without the CLI's Burn dependency.
//! The numbers in `docs/TOKENIZER.md` and `docs/PERFORMANCE.md` come from it.
//!
//! ```text
//! cargo run --release -p allam-tokenizer --example tokenizer_tool -- expand \
//!     --base B/tokenizer.json --corpus F... [--field text] --vocab-size N [--pad-to-multiple M] \
//!     [--min-frequency 2] [--priority arabic-first|after-base] [--normalize-arabic] [--eval F...] --out DIR
//! ... -- train --base B/tokenizer.json --corpus F... [--field text] --vocab-size N [--min-frequency 2]
//! ... -- stats --tokenizer A.json [--tokenizer B.json] --text F... [--field text] [--json]
//! ... -- bench --base A.json --merged B.json --text F... [--field text] [--rounds 3]
//! ... -- verify --base A.json --merged B.json
//! ... -- encode --tokenizer A.json --text F... [--field text]
//! ```
//!
//! `expand` takes `--keep-base-pre-tokenizer` as `allam tokenizer expand` does. `encode` prints one JSON
//! line per document: the text, its ids without and with special tokens, and whether decoding the ids
//! gives the text back (`scripts/tokenizer_python_check.py` compares the ids with Python `tokenizers`).
use std::path::PathBuf;

use allam_tokenizer::merge::BaseBpe;
use allam_tokenizer::normalize::compose_normalizer;
use allam_tokenizer::script::has_arabic;
use allam_tokenizer::{
    ArabicNormalization, Corpus, ExpansionConfig, MergePriority, TextPipeline, TrainConfig, expand_files,
    load_tokenizer, measure, render_table, train_arabic_vocab,
};

mod common;
use common::flags;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// CPU time of the calling thread, seconds (Linux: /proc/thread-self/schedstat).
fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = args
        .split_first()
        .ok_or("usage: tokenizer_tool expand|train|stats|bench|verify|encode ...")?;
    let f = flags(rest);
    let one = |k: &str| -> Result<String, String> {
        f.get(k)
            .and_then(|v| v.first().cloned())
            .ok_or(format!("missing --{k}"))
    };
    let many = |k: &str| -> Vec<PathBuf> { f.get(k).into_iter().flatten().map(PathBuf::from).collect() };
    let field = one("field").unwrap_or_else(|_| "text".into());
    let min_frequency: u64 = one("min-frequency").map_or(Ok(2), |s| s.parse())?;
    match cmd.as_str() {
        "expand" => {
            let mut config = ExpansionConfig::new(one("vocab-size")?.parse()?);
            config.pad_to_multiple = one("pad-to-multiple").ok().map(|s| s.parse()).transpose()?;
            config.min_frequency = min_frequency;
            if f.contains_key("normalize-arabic") {
                config.normalization = ArabicNormalization::all();
            }
            if one("priority").as_deref() == Ok("after-base") {
                config.priority = MergePriority::AfterBase;
            }
            config.arabic_marks_pre_tokenizer = !f.contains_key("keep-base-pre-tokenizer");
            if f.contains_key("eval") {
                config.eval_corpus = Some(Corpus::new(many("eval"), &field));
            }
            let corpus = Corpus::new(many("corpus"), &field);
            let e = expand_files(one("base")?.as_ref(), &corpus, &config, one("out")?.as_ref())?;
            let r = &e.report;
            println!(
                "vocab {} -> {} (+{} pieces, {} reserved) in {:.1} s (training {:.1} s); merges added {}, base merges moved {}, repaired {}, dropped {}, rounds {}",
                r.base_vocab_size,
                r.vocab_size,
                r.new_pieces,
                r.padding,
                r.seconds,
                r.training.seconds,
                r.merge.merges_added,
                r.merge.base_merges_moved,
                r.merge.repaired,
                r.merge.dropped,
                r.merge.rounds
            );
            println!("{:?}", r.fertility.arabic_tokens_per_word);
            println!("non-Arabic mismatches: {}", r.non_arabic_check.mismatches);
            println!("pre-tokenizer: {}", r.pre_tokenizer.note);
            print!("{}", r.fertility_table());
        }
        "train" => {
            let base = load_tokenizer(one("base")?.as_ref())?;
            BaseBpe::from_tokenizer(&base)?;
            let pipeline = TextPipeline {
                normalizer: compose_normalizer(&ArabicNormalization::default(), base.get_normalizer())?,
                pre_tokenizer: base.get_pre_tokenizer().cloned(),
            };
            let config = TrainConfig {
                vocab_size: one("vocab-size")?.parse()?,
                min_frequency,
                ..TrainConfig::default()
            };
            let vocab = train_arabic_vocab(&Corpus::new(many("corpus"), &field), &pipeline, &config)?;
            println!(
                "trained {} pieces ({} merges) from {} documents / {} Arabic words in {:.1} s",
                vocab.len(),
                vocab.merges.len(),
                vocab.documents,
                vocab.words,
                vocab.seconds
            );
        }
        "encode" => {
            let tok = load_tokenizer(one("tokenizer")?.as_ref())?;
            for doc in Corpus::new(many("text"), &field).documents() {
                let text = doc?;
                let ids = tok.encode(text.as_str(), false)?.get_ids().to_vec();
                let with_specials = tok.encode(text.as_str(), true)?.get_ids().to_vec();
                let decoded = tok.decode(&ids, false)?;
                println!(
                    "{}",
                    serde_json::json!({"text": text, "ids": ids, "ids_with_specials": with_specials,
                                       "decoded_equal": decoded == text})
                );
            }
        }
        "stats" => {
            let corpus = Corpus::new(many("text"), &field);
            let mut all = Vec::new();
            for path in many("tokenizer") {
                let tok = load_tokenizer(&path)?;
                all.push(measure(&path.display().to_string(), &tok, corpus.documents())?);
            }
            if f.contains_key("json") {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                print!("{}", render_table(&all));
            }
        }
        "bench" => {
            // Encoding cost of base vs merged, one thread, BPE word cache off (every document is new, as
            // in a pre-training corpus). The two tokenizers alternate every 64 documents and each is
            // charged the CPU time of its own thread (/proc/thread-self/schedstat), so other load on the
            // machine affects both alike; the order alternates per chunk.
            let mut tokenizers = [
                load_tokenizer(one("base")?.as_ref())?,
                load_tokenizer(one("merged")?.as_ref())?,
            ];
            for tok in &mut tokenizers {
                let mut model = tok.get_model().clone();
                if let tokenizers::ModelWrapper::BPE(bpe) = &mut model {
                    bpe.resize_cache(0);
                }
                tok.with_model(model);
            }
            let rounds: usize = one("rounds").map_or(Ok(3), |s| s.parse())?;
            let docs: Vec<String> = Corpus::new(many("text"), &field)
                .documents()
                .collect::<Result<_, _>>()?;
            let bytes: usize = docs.iter().map(String::len).sum();
            // Guarantee 2 on real text: documents without Arabic encode to the same ids.
            let plain: Vec<&String> = docs.iter().filter(|d| !has_arabic(d)).collect();
            let mut differ = 0;
            for d in &plain {
                let a = tokenizers[0].encode(d.as_str(), true)?;
                let b = tokenizers[1].encode(d.as_str(), true)?;
                differ += usize::from(a.get_ids() != b.get_ids());
            }
            println!(
                "documents without Arabic: {}, encoded differently: {differ}",
                plain.len()
            );
            let mut cpu = [0f64; 2];
            let mut tokens = [0usize; 2];
            for round in 0..=rounds {
                for (i, chunk) in docs.chunks(64).enumerate() {
                    // ABBA order: whichever runs second on a chunk finds it warm in the caches.
                    for k in if i % 2 == 0 { [0, 1] } else { [1, 0] } {
                        let tok = &tokenizers[k];
                        let t = thread_cpu_seconds();
                        let mut n = 0;
                        for d in chunk {
                            n += tok.encode(d.as_str(), false)?.len();
                        }
                        if round > 0 {
                            cpu[k] += thread_cpu_seconds() - t;
                            tokens[k] += n;
                        }
                    }
                }
            }
            let mbps = |s: f64| (bytes * rounds) as f64 / s / 1e6;
            println!(
                "{} docs, {:.2} MB x {rounds} rounds, 1 thread, CPU time: base {:.2} MB/s ({} tokens/round), merged {:.2} MB/s ({} tokens/round), merged/base speed {:.3}",
                docs.len(),
                bytes as f64 / 1e6,
                mbps(cpu[0]),
                tokens[0] / rounds,
                mbps(cpu[1]),
                tokens[1] / rounds,
                cpu[0] / cpu[1]
            );
        }
        "verify" => {
            // Guarantees 1, 3 and 4 on a written expansion.
            let base = load_tokenizer(one("base")?.as_ref())?;
            let merged = load_tokenizer(one("merged")?.as_ref())?;
            let base_vocab = base.get_vocab(true);
            let kept = base_vocab
                .iter()
                .filter(|(p, id)| merged.token_to_id(p) == Some(**id))
                .count();
            let added_same = base.get_added_tokens_decoder() == merged.get_added_tokens_decoder();
            let (mut reachable, mut new, mut reserved) = (0, 0, 0);
            let size = merged.get_vocab_size(true);
            // Reachable through the merges: with `ignore_merges` (Llama-3) every entry encodes to itself.
            let mut model = merged.get_model().clone();
            if let tokenizers::ModelWrapper::BPE(bpe) = &mut model {
                bpe.ignore_merges = false;
            }
            for id in base_vocab.len() as u32..size as u32 {
                let piece = merged.id_to_token(id).ok_or("hole in the id range")?;
                if piece.starts_with("<|reserved_") {
                    reserved += 1;
                    continue;
                }
                new += 1;
                let tokens = tokenizers::Model::tokenize(&model, &piece)?;
                reachable += usize::from(tokens.len() == 1 && tokens[0].id == id);
            }
            println!(
                "base pieces kept: {kept}/{}; added tokens identical: {added_same}; new pieces reachable: {reachable}/{new}; reserved: {reserved}; vocabulary size: {size}",
                base_vocab.len()
            );
        }
        other => return Err(format!("unknown command {other}").into()),
    }
    Ok(())
}
