//! Model configuration: the configuration the model runs on ([`LlamaConfig`]); the Hugging Face
//! `config.json` as found on disk is [`HfConfig`] (in [`crate::hf_config`]), with one conversion in
//! between so that on-disk quirks (classic vs transformers-5 keys, model families, optional fields)
//! never leak into the model.
use std::path::Path;

use burn::config::Config;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// The architecture hyper-parameters of a Llama-family decoder (Llama-2/3, Mistral, Qwen2).
#[derive(Config, Debug, PartialEq)]
pub struct LlamaConfig {
    /// Number of rows of the embedding (and output) matrix.
    pub vocab_size: usize,
    /// Width of the residual stream (`hidden_size`).
    pub hidden_size: usize,
    /// Width of the SwiGLU hidden layer (`intermediate_size`).
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (equal to the query heads for MHA, 1 for MQA, in between for GQA).
    pub num_key_value_heads: usize,
    /// Width of one attention head; may differ from `hidden_size / num_attention_heads`.
    pub head_dim: usize,
    /// Epsilon of every RMSNorm.
    #[config(default = 1e-6)]
    pub rms_norm_eps: f64,
    /// Base of the rotary frequencies.
    #[config(default = 10000.0)]
    pub rope_theta: f64,
    /// Rotary scaling for long contexts (`rope_scaling` / `rope_parameters`); `None` is plain RoPE.
    pub rope_scaling: Option<RopeScaling>,
    /// Biases on the query, key and value projections (Llama's `attention_bias`; always on in Qwen2).
    #[config(default = false)]
    pub qkv_bias: bool,
    /// A bias on the attention output projection (Llama's `attention_bias`).
    #[config(default = false)]
    pub o_proj_bias: bool,
    /// Biases on the three SwiGLU projections (`mlp_bias`).
    #[config(default = false)]
    pub mlp_bias: bool,
    /// Sliding-window attention span (Mistral, Qwen2 with sliding layers). Attention within a
    /// shorter input is unaffected by the window, so inputs up to this length run as full
    /// attention and longer ones are refused.
    pub sliding_window: Option<usize>,
    /// Whether the output head shares the embedding matrix.
    #[config(default = false)]
    pub tie_word_embeddings: bool,
    /// Longest context the model was trained for (rotary tables are computed on demand; dynamic
    /// and YaRN scaling read it).
    #[config(default = 4096)]
    pub max_position_embeddings: usize,
    /// Half-precision type the rotary inverse frequencies are rounded to, as `transformers` does
    /// for a model loaded in bf16/f16 (set from the checkpoint's dtype; `None` keeps f32).
    pub rope_inv_freq_dtype: Option<StorageDtype>,
    /// Mixed precision: the float type of activations and matrix products (`bf16` for
    /// `precision = "bf16-mixed"`), the weights cast to it where they are used; `None` computes in
    /// the weights' own type. A run-time setting, never written to `config.json`
    /// (see [`crate::precision`]).
    pub compute_dtype: Option<StorageDtype>,
    /// Standard deviation of the normal initialisation used when training from scratch.
    #[config(default = 0.02)]
    pub initializer_range: f64,
    /// Beginning-of-sequence token id.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token ids (Llama-3 style configs list several).
    #[config(default = "Vec::new()")]
    pub eos_token_ids: Vec<u32>,
    /// Padding token id.
    pub pad_token_id: Option<u32>,
}

impl LlamaConfig {
    /// Query heads that share one key/value head.
    pub fn kv_groups(&self) -> usize {
        self.num_attention_heads / self.num_key_value_heads
    }

    /// Checks the internal consistency of the hyper-parameters.
    pub fn validate(&self) -> Result<()> {
        let path = Path::new("<config>");
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ModelError::config(path, key, "must be positive"));
            }
        }
        if !self.num_attention_heads.is_multiple_of(self.num_key_value_heads) {
            return Err(ModelError::config(
                path,
                "num_key_value_heads",
                format!(
                    "{} does not divide num_attention_heads = {}",
                    self.num_key_value_heads, self.num_attention_heads
                ),
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(ModelError::config(
                path,
                "head_dim",
                "rotary embeddings need an even head_dim",
            ));
        }
        if self.rms_norm_eps.is_nan() || self.rms_norm_eps <= 0.0 {
            return Err(ModelError::config(path, "rms_norm_eps", "must be positive"));
        }
        if self.rope_theta.is_nan() || self.rope_theta <= 0.0 {
            return Err(ModelError::config(path, "rope_theta", "must be positive"));
        }
        if self.sliding_window == Some(0) {
            return Err(ModelError::config(path, "sliding_window", "must be positive"));
        }
        // Sizes this large describe no model that fits in memory; refusing them keeps every size
        // computed from them (parameter counts, tensor shapes, byte counts) from overflowing.
        const MAX_PARAMETERS: usize = 1 << 46;
        match self.checked_num_parameters() {
            Some(n) if n <= MAX_PARAMETERS => {}
            _ => {
                return Err(ModelError::config(
                    path,
                    "hidden_size",
                    format!(
                        "the shape gives more than {MAX_PARAMETERS} parameters (vocab_size {}, \
                         hidden_size {}, intermediate_size {}, num_hidden_layers {})",
                        self.vocab_size, self.hidden_size, self.intermediate_size, self.num_hidden_layers
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Number of parameters (counting a tied matrix once); saturates at `usize::MAX` for shapes
    /// whose count overflows (which [`Self::validate`] refuses).
    pub fn num_parameters(&self) -> usize {
        self.checked_num_parameters().unwrap_or(usize::MAX)
    }

    /// Number of parameters, or `None` if computing it overflows (sizes read from a user's file can
    /// be anything).
    pub fn checked_num_parameters(&self) -> Option<usize> {
        let d = self.hidden_size;
        let ff = self.intermediate_size;
        let q = self.num_attention_heads.checked_mul(self.head_dim)?;
        let kv = self.num_key_value_heads.checked_mul(self.head_dim)?;
        let sum = |terms: &[Option<usize>]| -> Option<usize> {
            terms.iter().try_fold(0usize, |acc, t| acc.checked_add((*t)?))
        };
        let product = |a: usize, b: usize, c: usize| a.checked_mul(b)?.checked_mul(c);
        let attn = sum(&[
            product(d, q, 2),
            product(d, kv, 2),
            if self.qkv_bias {
                q.checked_add(kv.checked_mul(2)?)
            } else {
                Some(0)
            },
            Some(if self.o_proj_bias { d } else { 0 }),
        ])?;
        let mlp = sum(&[
            product(3, d, ff),
            if self.mlp_bias {
                ff.checked_mul(2)?.checked_add(d)
            } else {
                Some(0)
            },
        ])?;
        let layer = sum(&[Some(attn), Some(mlp), d.checked_mul(2)])?;
        let embedding = self.vocab_size.checked_mul(d)?;
        let head = if self.tie_word_embeddings { 0 } else { embedding };
        sum(&[
            Some(embedding),
            self.num_hidden_layers.checked_mul(layer),
            Some(d),
            Some(head),
        ])
    }
}

/// The floating-point type of tensors in a checkpoint file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageDtype {
    /// 32-bit IEEE float.
    F32,
    /// bfloat16.
    Bf16,
    /// 16-bit IEEE float.
    F16,
}

impl StorageDtype {
    /// The name `transformers` writes in `config.json` (`torch_dtype` / `dtype`).
    pub fn hf_name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::Bf16 => "bfloat16",
            Self::F16 => "float16",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::Bf16 | Self::F16 => 2,
        }
    }
}

impl std::str::FromStr for StorageDtype {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" | "float" => Ok(Self::F32),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            "f16" | "float16" | "half" => Ok(Self::F16),
            other => Err(format!("unknown dtype `{other}` (expected f32, bf16 or f16)")),
        }
    }
}

/// How the rotary frequencies are rescaled for contexts longer than pre-training's
/// (`rope_scaling` / `rope_parameters` in `config.json`, by `rope_type`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rope_type", rename_all = "lowercase")]
pub enum RopeScaling {
    /// Position interpolation: every frequency divided by `factor`.
    Linear {
        /// The interpolation factor.
        factor: f64,
    },
    /// Dynamic NTK: for a sequence of `L > max_position_embeddings` tokens the base becomes
    /// `base · (factor·L/max − (factor − 1))^(d/(d−2))`; shorter sequences are unchanged.
    Dynamic {
        /// The NTK factor.
        factor: f64,
    },
    /// Llama-3.1's scaling: long wavelengths divided by `factor`, short ones kept, a smooth blend
    /// in between.
    Llama3 {
        /// Divisor of the low frequencies (8 for Llama-3.1).
        factor: f64,
        /// Wavelengths above `original / low_freq_factor` are fully scaled.
        low_freq_factor: f64,
        /// Wavelengths below `original / high_freq_factor` are kept.
        high_freq_factor: f64,
        /// The pre-training context (8 192 for Llama-3.1).
        original_max_position_embeddings: f64,
    },
    /// YaRN: a ramp between interpolated and extrapolated frequencies, and an attention factor
    /// multiplying the cosines and sines.
    Yarn {
        /// The interpolation factor (kept as configured even where it differs from
        /// `max_position_embeddings / original`, as current `transformers` does).
        factor: f64,
        /// The pre-training context: where the correction range is measured
        /// (`max_position_embeddings` when absent).
        original_max_position_embeddings: Option<f64>,
        /// Fixed attention factor; derived from the factor (and `mscale`s) when absent.
        attention_factor: Option<f64>,
        /// Rotations where extrapolation ends (default 32).
        beta_fast: f64,
        /// Rotations where interpolation begins (default 1).
        beta_slow: f64,
        /// `mscale` of DeepSeek-style configs.
        mscale: Option<f64>,
        /// `mscale_all_dim` of DeepSeek-style configs.
        mscale_all_dim: Option<f64>,
        /// Whether the correction range is rounded outwards to whole dimensions (default true).
        truncate: bool,
    },
}

impl RopeScaling {
    /// The `rope_type` name in `config.json`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Linear { .. } => "linear",
            Self::Dynamic { .. } => "dynamic",
            Self::Llama3 { .. } => "llama3",
            Self::Yarn { .. } => "yarn",
        }
    }
}
