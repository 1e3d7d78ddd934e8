//! `allam bench train|decode|prefill`: throughput of a full training step, of KV-cached greedy
//! decoding and of a prefill forward pass, on a model of a given shape with random weights.
//! Prints one JSON object (tokens/s, peak RSS, shape and settings); numbers in docs/PERFORMANCE.md.
use std::collections::BTreeMap;
use std::time::Instant;

use allam_data::{IGNORE_INDEX, PackedBatch, PackedSequence};
use allam_io::SplitMix64;
use allam_model::generate::{GenerationConfig, generate};
use allam_model::{Llama, LlamaConfig, TokenBatch};
use allam_train::loss::language_model_loss;
use allam_train::objective::packed_input;
use allam_train::params::trainable;
use allam_train::{
    ActivationCheckpointing, AdamW, AdamWConfig, LossOutput, LrSchedule, Objective, StepOptions, Trainer,
};
use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use super::model::DeviceArgs;

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchKind {
    /// Full training steps: forward, backward, global clipping, AdamW (default: the 56M config).
    Train,
    /// Greedy decoding with the KV cache after a prompt (default: SmolLM2-135M shape).
    Decode,
    /// One forward pass over a prompt, logits of every position (default: SmolLM2-135M shape).
    Prefill,
}

/// Arguments of `allam bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    kind: BenchKind,
    /// Width of the residual stream (train: 512; decode/prefill: 576).
    #[arg(long)]
    hidden: Option<usize>,
    /// Decoder layers (train: 8; decode/prefill: 30).
    #[arg(long)]
    layers: Option<usize>,
    /// Query heads (train: 8; decode/prefill: 9).
    #[arg(long)]
    heads: Option<usize>,
    /// Key/value heads (train: 4; decode/prefill: 3).
    #[arg(long)]
    kv_heads: Option<usize>,
    /// Width of the SwiGLU hidden layer (train: 1376; decode/prefill: 1536).
    #[arg(long)]
    ffn: Option<usize>,
    /// Vocabulary size (train: 32000; decode/prefill: 49152).
    #[arg(long)]
    vocab: Option<usize>,
    /// Tie the output head to the embedding (`--tied`, `--tied false`; train: untied; decode/prefill: tied).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    tied: Option<bool>,
    /// Tokens per row (train: 256; prefill: 512).
    #[arg(long)]
    seq: Option<usize>,
    /// Rows (train: 8; decode/prefill: 1).
    #[arg(long)]
    batch: Option<usize>,
    /// Decode: tokens generated after the prompt.
    #[arg(long, default_value_t = 128)]
    new_tokens: usize,
    /// Decode: prompt length.
    #[arg(long, default_value_t = 32)]
    prompt_len: usize,
    /// Timed repetitions (train and prefill: 3; decode: 1).
    #[arg(long)]
    steps: Option<usize>,
    /// Untimed repetitions first (decode: a short generation of up to 8 tokens).
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Train: tokens per chunk of the output head and cross-entropy (0: every position's logits
    /// at once; default as `[train] head_chunk_tokens`).
    #[arg(long, default_value_t = allam_train::config::head_chunk_tokens())]
    head_chunk: usize,
    /// Train: `f32` or `bf16-mixed` (`[train] precision`).
    #[arg(long, default_value = "f32", value_parser = parse_precision)]
    precision: allam_train::config::Precision,
    /// Train: recompute each decoder layer in the backward pass (`activation_checkpointing =
    /// "layers"`).
    #[arg(long)]
    checkpoint_layers: bool,
    /// Seed of the weights and of the random tokens.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// One JSON line instead of pretty-printed JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

fn parse_precision(text: &str) -> std::result::Result<allam_train::config::Precision, String> {
    serde_json::from_value(serde_json::json!(text))
        .map_err(|_| format!("`{text}`: expected f32 or bf16-mixed"))
}

/// The shape benchmarked, after defaults.
#[derive(Clone, Copy, Debug)]
struct Shape {
    hidden: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    ffn: usize,
    vocab: usize,
    tied: bool,
}

impl Shape {
    fn of(args: &BenchArgs) -> Result<Self> {
        // train: the 56M config; decode and prefill: SmolLM2-135M.
        let (h, l, q, kv, f, v, t) = match args.kind {
            BenchKind::Train => (512, 8, 8, 4, 1376, 32000, false),
            BenchKind::Decode | BenchKind::Prefill => (576, 30, 9, 3, 1536, 49152, true),
        };
        let shape = Self {
            hidden: args.hidden.unwrap_or(h),
            layers: args.layers.unwrap_or(l),
            heads: args.heads.unwrap_or(q),
            kv_heads: args.kv_heads.unwrap_or(kv),
            ffn: args.ffn.unwrap_or(f),
            vocab: args.vocab.unwrap_or(v),
            tied: args.tied.unwrap_or(t),
        };
        if shape.heads == 0 || shape.kv_heads == 0 || !shape.hidden.is_multiple_of(shape.heads) {
            bail!(
                "--hidden ({}) must be a multiple of --heads ({})",
                shape.hidden,
                shape.heads
            );
        }
        if !shape.heads.is_multiple_of(shape.kv_heads) {
            bail!(
                "--heads ({}) must be a multiple of --kv-heads ({})",
                shape.heads,
                shape.kv_heads
            );
        }
        Ok(shape)
    }

    fn config(&self, max_len: usize) -> LlamaConfig {
        LlamaConfig::new(
            self.vocab,
            self.hidden,
            self.ffn,
            self.layers,
            self.heads,
            self.kv_heads,
            self.hidden / self.heads,
        )
        .with_tie_word_embeddings(self.tied)
        .with_rope_theta(100000.0)
        .with_rms_norm_eps(1e-5)
        .with_max_position_embeddings(max_len.max(4096))
        // Never stop early: every benchmark generates all its tokens.
        .with_eos_token_ids(Vec::new())
    }

    fn json(&self, params: usize) -> Value {
        json!({
            "hidden": self.hidden,
            "layers": self.layers,
            "heads": self.heads,
            "kv_heads": self.kv_heads,
            "head_dim": self.hidden / self.heads,
            "ffn": self.ffn,
            "vocab": self.vocab,
            "tied": self.tied,
            "params": params,
        })
    }
}

/// `len` token ids below `vocab`, drawn from `rng`.
fn random_tokens(rng: &mut SplitMix64, len: usize, vocab: usize) -> Vec<u32> {
    (0..len).map(|_| rng.below(vocab as u64) as u32).collect()
}

/// Uniformly random tokens, one document per row: next-token prediction with nothing to learn,
/// but exactly the work of a pretraining step.
struct RandomTokens {
    rng: SplitMix64,
    vocab: usize,
    seq: usize,
    draws: u64,
    head_chunk: usize,
}

impl Objective for RandomTokens {
    type Batch = PackedBatch;

    fn next_batch(&mut self, rows: usize) -> allam_train::Result<PackedBatch> {
        let seqs = (0..rows)
            .map(|_| {
                let input_ids = random_tokens(&mut self.rng, self.seq, self.vocab);
                let mut labels: Vec<i32> = input_ids[1..].iter().map(|&t| t as i32).collect();
                labels.push(IGNORE_INDEX);
                PackedSequence {
                    source: "random".into(),
                    input_ids,
                    labels,
                    document_ids: vec![0; self.seq],
                    position_ids: (0..self.seq as u32).collect(),
                    documents: Vec::new(),
                }
            })
            .collect();
        self.draws += 1;
        Ok(PackedBatch::from_sequences(seqs))
    }

    fn units(&self, batch: &PackedBatch) -> usize {
        batch.labels.iter().filter(|&&l| l != IGNORE_INDEX).count()
    }

    fn tokens(&self, batch: &PackedBatch) -> usize {
        batch.input_ids.len()
    }

    fn model_input(&self, batch: &PackedBatch) -> Option<allam_train::Result<TokenBatch>> {
        Some(packed_input(batch))
    }

    fn loss_from_hidden(
        &self,
        model: &Llama,
        hidden: burn::tensor::Tensor<3>,
        batch: &PackedBatch,
    ) -> allam_train::Result<LossOutput> {
        let loss = language_model_loss(model, hidden, &batch.labels, self.head_chunk)?;
        Ok(LossOutput {
            loss_sum: loss.sum,
            metrics: BTreeMap::new(),
        })
    }

    fn state(&self) -> Value {
        json!({ "draws": self.draws })
    }

    fn restore(&mut self, _state: &Value) -> allam_train::Result<()> {
        Err(allam_train::TrainError::Config(
            "the benchmark's random stream cannot be resumed".into(),
        ))
    }
}

/// Peak resident set (`VmHWM`) in MiB; `None` where `/proc/self/status` does not exist.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}

/// CPU time (user + system, all threads) of this process so far, in seconds; `None` where
/// `/proc/self/stat` does not exist. Assumes the usual 100 clock ticks per second.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime) of proc(5); `after_name` starts at field 3.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The 1-minute load average (other work on the machine skews wall-clock throughput).
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// Runs `allam bench`.
pub fn bench(args: BenchArgs) -> Result<()> {
    let shape = Shape::of(&args)?;
    let device = args.device.device()?;
    device.seed(args.seed);
    let steps = args.steps.unwrap_or(match args.kind {
        BenchKind::Train | BenchKind::Prefill => 3,
        BenchKind::Decode => 1,
    });
    if steps == 0 {
        bail!("--steps must be at least 1");
    }
    let load_before = load_average();
    let mut out = match args.kind {
        BenchKind::Train => bench_train(&args, shape, steps, &device)?,
        BenchKind::Prefill => bench_prefill(&args, shape, steps, &device)?,
        BenchKind::Decode => bench_decode(&args, shape, steps, &device)?,
    };
    let obj = out.as_object_mut().expect("an object");
    obj.insert("peak_rss_mb".into(), json!(peak_rss_mb()));
    // What the GPU backend's allocator holds after the run (its pools keep pages for reuse, so
    // this is close to the peak); null on the CPU.
    let reserved = device
        .memory_pool_usage()
        .map(|u| round(u.bytes_reserved as f64 / 1048576.0, 1));
    obj.insert("device_memory_reserved_mb".into(), json!(reserved));
    obj.insert("steps".into(), json!(steps));
    obj.insert("warmup".into(), json!(args.warmup));
    obj.insert("dtype".into(), json!("f32"));
    obj.insert("device".into(), json!(args.device.device));
    obj.insert(
        "threads".into(),
        json!(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)),
    );
    obj.insert("seed".into(), json!(args.seed));
    obj.insert("load_average".into(), json!([load_before, load_average()]));
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}

fn bench_train(args: &BenchArgs, shape: Shape, steps: usize, device: &burn::tensor::Device) -> Result<Value> {
    let seq = args.seq.unwrap_or(256);
    let batch = args.batch.unwrap_or(8);
    if seq < 2 || batch == 0 {
        bail!("train needs --seq ≥ 2 and --batch ≥ 1");
    }
    // The memory plan of this step (`allam pretrain --plan`), to set beside the measured peak.
    let plan = allam_train::plan::checked(&allam_train::plan::PlanInput {
        config: shape.config(seq),
        rows: batch,
        seq_len: seq,
        micro_batches_per_step: 1,
        head_chunk_tokens: args.head_chunk,
        frozen_reference: false,
        checkpoint_layers: args.checkpoint_layers,
        bf16_mixed: args.precision == allam_train::config::Precision::Bf16Mixed,
    })?;
    let mut model: Llama = shape.config(seq).init(device);
    args.precision.apply(&mut model, device)?;
    let params = burn::module::Module::num_params(&model);
    let mut trainer = Trainer {
        model: trainable(model),
        optimizer: AdamW::new(AdamWConfig::default()),
        objective: RandomTokens {
            rng: SplitMix64::new(args.seed ^ 0x5eed),
            vocab: shape.vocab,
            seq,
            draws: 0,
            head_chunk: args.head_chunk,
        },
        options: StepOptions {
            micro_batch_size: batch,
            grad_accum: 1,
            replicas: 1,
            schedule: LrSchedule::constant(3e-4, 0),
            max_steps: (args.warmup + steps) as u64,
            embedding_warmup: None,
            activation_checkpointing: if args.checkpoint_layers {
                ActivationCheckpointing::Layers
            } else {
                ActivationCheckpointing::None
            },
        },
        step: 0,
        tokens: 0,
    };
    let mut warmup_s = Vec::new();
    for _ in 0..args.warmup {
        let t = Instant::now();
        trainer.train_step()?;
        warmup_s.push(round(t.elapsed().as_secs_f64(), 3));
    }
    let mut step_s = Vec::new();
    let mut losses = Vec::new();
    let tokens_before = trainer.tokens;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    for _ in 0..steps {
        let t = Instant::now();
        let record = trainer.train_step()?;
        step_s.push(round(t.elapsed().as_secs_f64(), 3));
        losses.push(round(record.loss, 4));
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| round(after - before, 2));
    let tokens = trainer.tokens - tokens_before;
    Ok(json!({
        "bench": "train",
        "tokens_per_s": round(tokens as f64 / seconds, 2),
        "tokens": tokens,
        "seconds": round(seconds, 3),
        "cpu_seconds": cpu,
        "step_seconds": step_s,
        "warmup_seconds": warmup_s,
        "loss": losses,
        "seq": seq,
        "batch": batch,
        "shape": shape.json(params),
        "optimizer": "AdamW (0.9, 0.95, eps 1e-8, wd 0.1), global clip 1.0, lr 3e-4",
        "head_chunk_tokens": args.head_chunk,
        "precision": args.precision,
        "checkpoint_layers": args.checkpoint_layers,
        "planned_peak_mb": round(plan.total as f64 / 1048576.0, 1),
    }))
}

fn bench_prefill(
    args: &BenchArgs,
    shape: Shape,
    steps: usize,
    device: &burn::tensor::Device,
) -> Result<Value> {
    let seq = args.seq.unwrap_or(512);
    let batch = args.batch.unwrap_or(1);
    if seq == 0 || batch == 0 {
        bail!("prefill needs --seq ≥ 1 and --batch ≥ 1");
    }
    let model: Llama = shape.config(seq).init(device);
    let params = burn::module::Module::num_params(&model);
    let mut rng = SplitMix64::new(args.seed ^ 0x5eed);
    let input = TokenBatch::packed(
        batch,
        seq,
        random_tokens(&mut rng, batch * seq, shape.vocab),
        vec![0; batch * seq],
    )?;
    let run = || -> Result<()> {
        // Reading the logits back waits for the whole forward pass.
        let _ = model.forward(&input)?.into_data();
        Ok(())
    };
    let mut warmup_s = Vec::new();
    for _ in 0..args.warmup {
        let t = Instant::now();
        run()?;
        warmup_s.push(round(t.elapsed().as_secs_f64(), 3));
    }
    let mut step_s = Vec::new();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    for _ in 0..steps {
        let t = Instant::now();
        run()?;
        step_s.push(round(t.elapsed().as_secs_f64(), 3));
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| round(after - before, 2));
    let tokens = batch * seq * steps;
    Ok(json!({
        "bench": "prefill",
        "tokens_per_s": round(tokens as f64 / seconds, 2),
        "tokens": tokens,
        "seconds": round(seconds, 3),
        "cpu_seconds": cpu,
        "step_seconds": step_s,
        "warmup_seconds": warmup_s,
        "seq": seq,
        "batch": batch,
        "shape": shape.json(params),
    }))
}

fn bench_decode(
    args: &BenchArgs,
    shape: Shape,
    steps: usize,
    device: &burn::tensor::Device,
) -> Result<Value> {
    let batch = args.batch.unwrap_or(1);
    let (prompt_len, new_tokens) = (args.prompt_len, args.new_tokens);
    if prompt_len == 0 || new_tokens == 0 || batch == 0 {
        bail!("decode needs --prompt-len, --new-tokens and --batch ≥ 1");
    }
    let model: Llama = shape.config(prompt_len + new_tokens).init(device);
    let params = burn::module::Module::num_params(&model);
    let mut rng = SplitMix64::new(args.seed ^ 0x5eed);
    let prompts: Vec<Vec<u32>> = (0..batch)
        .map(|_| random_tokens(&mut rng, prompt_len, shape.vocab))
        .collect();
    // An end-of-sequence id no token can have: every row generates all its tokens.
    let config_for = |n: usize| {
        let mut c = GenerationConfig::greedy(n);
        c.eos_token_ids = vec![u32::MAX];
        c
    };
    let mut warmup_s = Vec::new();
    for _ in 0..args.warmup {
        let t = Instant::now();
        generate(&model, &prompts, &config_for(new_tokens.min(8)), |_, _| false)?;
        warmup_s.push(round(t.elapsed().as_secs_f64(), 3));
    }
    let config = config_for(new_tokens);
    let mut step_s = Vec::new();
    let mut first_token_s = Vec::new();
    let mut generated = 0usize;
    let mut after_first = 0.0;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    for _ in 0..steps {
        let t = Instant::now();
        let mut first: Option<f64> = None;
        let outputs = generate(&model, &prompts, &config, |_, _| {
            if first.is_none() {
                first = Some(t.elapsed().as_secs_f64());
            }
            false
        })?;
        let total = t.elapsed().as_secs_f64();
        let first = first.unwrap_or(total);
        generated += outputs.iter().map(|o| o.ids.len()).sum::<usize>();
        after_first += total - first;
        step_s.push(round(total, 3));
        first_token_s.push(round(first, 3));
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| round(after - before, 2));
    // Tokens chosen after the first one, per second of the steps after the first (the KV-cached
    // decode alone, without the prompt's forward pass).
    let later = generated.saturating_sub(batch * steps);
    Ok(json!({
        "bench": "decode",
        "tokens_per_s": round(generated as f64 / seconds, 2),
        "decode_only_tokens_per_s": if after_first > 0.0 { json!(round(later as f64 / after_first, 2)) } else { Value::Null },
        "tokens": generated,
        "seconds": round(seconds, 3),
        "cpu_seconds": cpu,
        "step_seconds": step_s,
        "first_token_seconds": first_token_s,
        "warmup_seconds": warmup_s,
        "prompt_len": prompt_len,
        "new_tokens": new_tokens,
        "batch": batch,
        "shape": shape.json(params),
    }))
}
