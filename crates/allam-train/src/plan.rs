//! A memory plan before launch: what a training run will hold per device, computed from the
//! model's shape and the batch layout without allocating anything (`allam pretrain --plan`).
//!
//! Training runs in f32 (weights, gradients and both AdamW moments: 16 bytes per parameter). The
//! activations autodiff keeps per decoder layer and token were counted from this implementation
//! (and checked against measured peaks, docs/PERFORMANCE.md), in f32 values:
//!
//! ```text
//! 6·hidden                  the residual input, RMSNorm inputs and outputs, o_proj's input
//! 2·(q + 2·kv heads)·head_dim   q, k, v before and after the rotary embedding
//! 2·heads·head_dim          k and v repeated to every query head (grouped-query attention)
//! 5·intermediate            gate, up, SiLU(gate) and its parts, down_proj's input
//! 3·heads·seq_len           the attention scores, their softmax, and its gradient's input
//! ```
//!
//! With activation checkpointing by layer (`crate::recompute`) the backward pass holds one
//! layer's activations at a time, plus every layer's saved input and the gradient flowing back
//! (`(layers + 1)·tokens·hidden`).
//!
//! In bf16 mixed precision the weights, gradients and moments stay f32; the activations take ¾
//! of their f32 bytes, not ½ (measured: the residual stream, the norms, the rotary embedding, the
//! masked scores and their softmax are f32, and the casts keep copies), and autodiff keeps the bf16
//! copy of every matrix a product read (2 bytes per layer parameter, and the head's with the
//! chunked head).
//!
//! The output head adds, with the chunked head (`crate::head`), two `[chunk, vocab]` buffers, the
//! head's gradient `[hidden, vocab]` and the hidden states' `[tokens, hidden]`; with every
//! position's logits at once, three `[tokens, vocab]` buffers. The peak of a step is the larger of
//! the forward/backward phase (weights, moments, the gradients accumulated so far, activations,
//! and then the head's buffers with the bf16 weight copies or the micro-batch's gradients,
//! whichever is larger — gradients appear as the rest is freed) and the optimizer phase (weights,
//! moments, the step's gradients, and the largest tensor's new value and moments: AdamW updates
//! one tensor at a time).
use serde::Serialize;

use allam_model::LlamaConfig;

/// Process memory besides the training tensors (binary, thread pools, tokenizer, data maps,
/// held-out evaluation): 6 MB for `allam --help`, 13–17 MiB above the tensors in tiny runs.
pub const RUNTIME_BYTES: u64 = 16 << 20;

/// What a run will hold, as the plan needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanInput {
    /// The model's shape.
    pub config: LlamaConfig,
    /// Rows of one micro-batch (DPO: 2 per pair).
    pub rows: usize,
    /// Tokens per row.
    pub seq_len: usize,
    /// Micro-batches whose gradients are summed before a step (accumulation × replicas).
    pub micro_batches_per_step: usize,
    /// Tokens per chunk of the output head (0: every position's logits at once).
    pub head_chunk_tokens: usize,
    /// A frozen copy of the starting model kept in memory (DPO with `reference = "memory"`).
    pub frozen_reference: bool,
    /// Decoder layers recomputed in the backward pass (`activation_checkpointing = "layers"`).
    pub checkpoint_layers: bool,
    /// Activations in bf16 (`precision = "bf16-mixed"`).
    pub bf16_mixed: bool,
}

/// One line of the plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanLine {
    /// What it is.
    pub name: String,
    /// Bytes.
    pub bytes: u64,
}

/// The plan of one run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemoryPlan {
    /// Parameters of the model.
    pub parameters: u64,
    /// Tokens of one micro-batch.
    pub tokens_per_micro_batch: u64,
    /// Each part, in bytes.
    pub lines: Vec<PlanLine>,
    /// Activations of one decoder layer for one micro-batch.
    pub activations_per_layer: u64,
    /// Peak of the forward and backward passes.
    pub forward_backward_peak: u64,
    /// Peak of the optimizer step.
    pub optimizer_peak: u64,
    /// The larger: what one device must hold.
    pub total: u64,
}

const F32: u64 = 4;
const BF16: u64 = 2;

impl MemoryPlan {
    /// The plan of `input`; `None` if a size overflows (an absurd configuration).
    pub fn new(input: &PlanInput) -> Option<Self> {
        let c = &input.config;
        let p = c.checked_num_parameters()? as u64;
        let (h, f, layers) = (
            c.hidden_size as u64,
            c.intermediate_size as u64,
            c.num_hidden_layers as u64,
        );
        let (heads, kv, hd) = (
            c.num_attention_heads as u64,
            c.num_key_value_heads as u64,
            c.head_dim as u64,
        );
        let vocab = c.vocab_size as u64;
        let seq = input.seq_len as u64;
        let tokens = (input.rows as u64).checked_mul(seq)?;
        let per_token_layer = 6 * h
            + 2 * (heads + 2 * kv) * hd
            + 2 * heads * hd
            + 5 * f
            + 3u64.checked_mul(heads)?.checked_mul(seq)?;
        let per_layer = tokens.checked_mul(per_token_layer)?.checked_mul(F32)?;
        let activations = if input.checkpoint_layers {
            per_layer.checked_add(
                (layers + 1)
                    .checked_mul(tokens)?
                    .checked_mul(h)?
                    .checked_mul(F32)?,
            )?
        } else {
            // The embedding output feeds the first layer.
            per_layer.checked_mul(layers)?.checked_add(tokens * h * F32)?
        };
        let activations = if input.bf16_mixed {
            activations / 4 * 3
        } else {
            activations
        };
        // bf16-mixed casts every product's weight to bf16 and autodiff keeps the copy for the
        // backward product: 2 bytes per matrix parameter of the layers, whatever the tokens
        // (with layers recomputed, only the layer being recomputed holds its copies).
        let weight_copies = if input.bf16_mixed {
            let kept = if input.checkpoint_layers { 1 } else { layers };
            kept.checked_mul(2 * h * (heads + kv) * hd + 3 * h * f)?
                .checked_mul(BF16)?
        } else {
            0
        };
        let head = if input.head_chunk_tokens == 0 {
            3u64.checked_mul(tokens)?.checked_mul(vocab)?.checked_mul(F32)?
        } else {
            let chunk = (input.head_chunk_tokens as u64).min(tokens);
            let weight_copy = if input.bf16_mixed { h * vocab * BF16 } else { 0 };
            (2 * chunk * vocab + h * vocab + tokens * h)
                .checked_mul(F32)?
                .checked_add(weight_copy)?
        };
        let weights = p.checked_mul(F32)?;
        let gradients = weights;
        let moments = weights.checked_mul(2)?;
        let accumulated = if input.micro_batches_per_step > 1 {
            gradients
        } else {
            0
        };
        let reference = if input.frozen_reference { weights } else { 0 };
        let mut lines = vec![
            line("weights (f32)", weights),
            line("gradients (f32)", gradients),
            line("AdamW moments (2 × f32)", moments),
        ];
        if accumulated > 0 {
            lines.push(line("accumulated gradients (f32)", accumulated));
        }
        if reference > 0 {
            lines.push(line("frozen reference model (f32)", reference));
        }
        let name = match (input.checkpoint_layers, input.bf16_mixed) {
            (false, false) => "activations of one micro-batch",
            (true, false) => "activations of one micro-batch (layers recomputed)",
            (false, true) => "activations of one micro-batch (bf16-mixed)",
            (true, true) => "activations of one micro-batch (bf16-mixed, layers recomputed)",
        };
        lines.push(line(name, activations));
        if weight_copies > 0 {
            lines.push(line("bf16 copies of the layers' weights", weight_copies));
        }
        lines.push(line(
            if input.head_chunk_tokens == 0 {
                "output head (every position's logits)"
            } else {
                "output head (chunked)"
            },
            head,
        ));
        lines.push(line("runtime", RUNTIME_BYTES));
        let base = weights + moments + reference + RUNTIME_BYTES;
        // At the end of the forward pass the activations, the bf16 weight copies and the head's
        // buffers are all held; the backward pass frees them as the gradients appear.
        let forward_backward_peak = (base + accumulated)
            .checked_add(activations)?
            .checked_add(head.checked_add(weight_copies)?.max(gradients))?;
        // The step's summed gradients, and the largest tensor's updated value and moments, made
        // before the old ones are dropped (the update runs one tensor at a time).
        let largest = (vocab * h).max(h * f).max(h * heads * hd);
        let optimizer_peak = (base + gradients).checked_add(3u64.checked_mul(largest)?.checked_mul(F32)?)?;
        Some(Self {
            parameters: p,
            tokens_per_micro_batch: tokens,
            lines,
            activations_per_layer: per_layer,
            forward_backward_peak,
            optimizer_peak,
            total: forward_backward_peak.max(optimizer_peak),
        })
    }

    /// The plan as text: one line per part, the peaks, and whether it fits `device_memory`.
    pub fn render(&self, device_memory: Option<u64>) -> String {
        let mut out = format!(
            "{} parameters, {} tokens per micro-batch\n",
            thousands(self.parameters),
            thousands(self.tokens_per_micro_batch)
        );
        for l in &self.lines {
            out.push_str(&format!("  {:<52} {:>12}\n", l.name, human(l.bytes)));
        }
        out.push_str(&format!(
            "  {:<52} {:>12}\n",
            "  of which one decoder layer",
            human(self.activations_per_layer)
        ));
        out.push_str(&format!(
            "peak, forward and backward: {}\npeak, optimizer step: {}\ntotal per device: {}\n",
            human(self.forward_backward_peak),
            human(self.optimizer_peak),
            human(self.total)
        ));
        if let Some(memory) = device_memory {
            let verdict = if self.total <= memory {
                "fits"
            } else {
                "does not fit"
            };
            out.push_str(&format!(
                "{verdict} in {:.1} GB = {} ({:.0} % of it)\n",
                memory as f64 / 1e9,
                human(memory),
                100.0 * self.total as f64 / memory as f64
            ));
        }
        out
    }
}

fn line(name: &str, bytes: u64) -> PlanLine {
    PlanLine {
        name: name.to_string(),
        bytes,
    }
}

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in MiB or GiB, one decimal.
pub fn human(bytes: u64) -> String {
    let mib = bytes as f64 / (1u64 << 20) as f64;
    if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.1} MiB")
    }
}

/// A size like `80GB`, `80GiB`, `512MB` or a plain number of bytes. Decimal units (`GB`) are
/// powers of 1000, binary ones (`GiB`) of 1024, as `nvidia-smi` and Hugging Face write them.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (number, unit) = (
        t[..split].trim().parse::<f64>().ok()?,
        t[split..].trim().to_ascii_lowercase(),
    );
    let scale: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024f64.powi(2),
        "gib" => 1024f64.powi(3),
        "tib" => 1024f64.powi(4),
        _ => return None,
    };
    let bytes = number * scale;
    (number.is_finite() && number >= 0.0 && bytes < 2f64.powi(63)).then_some(bytes as u64)
}

/// The shape of the model `spec` names, read from its `config.json` or built from
/// `[model.architecture]` and the tokenizer; no weights are read.
pub fn model_shape(spec: &crate::config::ModelSpec) -> crate::Result<LlamaConfig> {
    let dir = spec
        .dir
        .clone()
        .or_else(|| spec.checkpoint.as_ref().map(|c| c.join("model")));
    if let Some(dir) = dir {
        return Ok(allam_model::HfConfig::from_file(dir.join("config.json"))?.to_llama_config()?);
    }
    let (Some(arch), Some(tokenizer)) = (&spec.architecture, &spec.tokenizer) else {
        return Err(crate::TrainError::Config(
            "[model]: give dir, checkpoint, or architecture with tokenizer".into(),
        ));
    };
    let tokenizer = allam_model::TextTokenizer::from_file(tokenizer)?;
    crate::setup::architecture_config(arch, &tokenizer, spec.init_std)
}

/// The plan of a pretraining run: its model (or the `config.json` at `shape_from`, to plan before
/// the model exists), its data's row length, its batch layout.
pub fn pretraining_plan(
    config: &crate::RunConfig,
    shape_from: Option<&std::path::Path>,
) -> crate::Result<MemoryPlan> {
    let seq_len = match (&config.data.dir, &config.data.recipe) {
        (Some(dir), _) => allam_data::Mixture::open(dir)?.manifest().seq_len,
        (None, Some(recipe)) => allam_data::Recipe::load(recipe)?.seq_len,
        (None, None) => return Err(crate::TrainError::Config("[data]: give dir or recipe".into())),
    };
    let input = PlanInput {
        config: shape(&config.model, shape_from)?,
        rows: config.train.step.micro_batch_size,
        seq_len,
        micro_batches_per_step: config.train.step.grad_accum * config.train.replicas,
        head_chunk_tokens: config.train.step.head_chunk_tokens,
        frozen_reference: false,
        checkpoint_layers: config.train.step.activation_checkpointing
            == crate::ActivationCheckpointing::Layers,
        bf16_mixed: config.train.step.precision == crate::config::Precision::Bf16Mixed,
    };
    checked(&input)
}

/// The shape of `spec`'s model, or of the `config.json` at `shape_from` when given.
pub fn shape(
    spec: &crate::config::ModelSpec,
    shape_from: Option<&std::path::Path>,
) -> crate::Result<LlamaConfig> {
    match shape_from {
        Some(path) => Ok(allam_model::HfConfig::from_file(path)?.to_llama_config()?),
        None => model_shape(spec),
    }
}

/// The plan of `input`, or an error naming what overflows.
pub fn checked(input: &PlanInput) -> crate::Result<MemoryPlan> {
    MemoryPlan::new(input).ok_or_else(|| {
        crate::TrainError::Config(format!(
            "the memory of {} rows × {} tokens on this model does not fit in 64 bits",
            input.rows, input.seq_len
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(rows: usize, seq: usize, chunk: usize) -> PlanInput {
        PlanInput {
            config: LlamaConfig::new(32000, 512, 1376, 8, 8, 4, 64),
            rows,
            seq_len: seq,
            micro_batches_per_step: 1,
            head_chunk_tokens: chunk,
            frozen_reference: false,
            checkpoint_layers: false,
            bf16_mixed: false,
        }
    }

    #[test]
    fn the_parts_are_the_hand_counted_sizes() {
        let plan = MemoryPlan::new(&input(8, 256, 1024)).unwrap();
        let p = 55_976_448u64;
        assert_eq!(plan.parameters, p);
        let bytes = |name: &str| {
            plan.lines
                .iter()
                .find(|l| l.name.starts_with(name))
                .unwrap()
                .bytes
        };
        assert_eq!(bytes("weights"), 4 * p);
        assert_eq!(bytes("AdamW"), 8 * p);
        // per token and layer: 6·512 + 2·(8+8)·64 + 2·8·64 + 5·1376 + 3·8·256 = 19,168 values
        assert_eq!(plan.activations_per_layer, 2048 * 19_168 * 4);
        assert_eq!(bytes("activations"), 8 * 2048 * 19_168 * 4 + 2048 * 512 * 4);
        assert_eq!(
            bytes("output head"),
            (2 * 1024 * 32000 + 512 * 32000 + 2048 * 512) * 4
        );
        // all logits at once: three [tokens, vocab] buffers
        let all = MemoryPlan::new(&input(8, 256, 0)).unwrap();
        assert_eq!(
            all.lines
                .iter()
                .find(|l| l.name.starts_with("output"))
                .unwrap()
                .bytes,
            3 * 2048 * 32000 * 4
        );
        assert!(all.total > plan.total);
        // layers recomputed: one layer's activations, the saved inputs and the gradient
        let recomputed = MemoryPlan::new(&PlanInput {
            checkpoint_layers: true,
            ..input(8, 256, 1024)
        })
        .unwrap();
        let activations = recomputed
            .lines
            .iter()
            .find(|l| l.name.starts_with("activations"))
            .unwrap();
        assert_eq!(activations.bytes, 2048 * 19_168 * 4 + 9 * 2048 * 512 * 4);
    }

    #[test]
    fn bf16_mixed_holds_the_weight_copies_and_the_optimizer_one_tensor_at_a_time() {
        let p = 55_976_448u64;
        let f32_plan = MemoryPlan::new(&input(1, 32, 1024)).unwrap();
        // The optimizer phase: weights, moments, gradients and 3 × the [32000, 512] embedding.
        assert_eq!(
            f32_plan.optimizer_peak,
            16 * p + RUNTIME_BYTES + 3 * 32000 * 512 * 4
        );
        let mixed = MemoryPlan::new(&PlanInput {
            bf16_mixed: true,
            ..input(1, 32, 1024)
        })
        .unwrap();
        let bytes = |plan: &MemoryPlan, name: &str| {
            plan.lines
                .iter()
                .find(|l| l.name.starts_with(name))
                .map(|l| l.bytes)
        };
        // per layer: q, o (2·512·8·64), k, v (2·512·4·64) and gate, up, down (3·512·1376), 2 bytes each
        let copies = 8 * (2 * 512 * (8 + 4) * 64 + 3 * 512 * 1376) * 2;
        assert_eq!(bytes(&mixed, "bf16 copies"), Some(copies));
        assert_eq!(bytes(&f32_plan, "bf16 copies"), None);
        // the chunked head's bf16 copy of the head matrix
        assert_eq!(
            bytes(&mixed, "output head"),
            Some((2 * 32 * 32000 + 512 * 32000 + 32 * 512) * 4 + 512 * 32000 * 2)
        );
        // 32 tokens: the copies and the head are freed before the gradients (4p) are all there
        let activations = bytes(&mixed, "activations").unwrap();
        assert_eq!(mixed.forward_backward_peak, 16 * p + RUNTIME_BYTES + activations);
        // 4,096 tokens: they are held together at the end of the forward pass
        let long = MemoryPlan::new(&PlanInput {
            bf16_mixed: true,
            ..input(16, 256, 1024)
        })
        .unwrap();
        let (activations, head) = (
            bytes(&long, "activations").unwrap(),
            bytes(&long, "output head").unwrap(),
        );
        assert!(head + copies > 4 * p);
        assert_eq!(
            long.forward_backward_peak,
            12 * p + RUNTIME_BYTES + activations + head + copies
        );
    }

    #[test]
    fn sizes_parse_in_decimal_and_binary_units() {
        assert_eq!(parse_size("80GB"), Some(80_000_000_000));
        assert_eq!(parse_size("80 GiB"), Some(80 << 30));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("80 parsecs"), None);
        assert_eq!(parse_size("-1GB"), None);
    }

    #[test]
    fn an_absurd_shape_has_no_plan() {
        let mut absurd = input(8, 256, 1024);
        absurd.seq_len = usize::MAX / 2;
        assert!(MemoryPlan::new(&absurd).is_none());
    }
}
