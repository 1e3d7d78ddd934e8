//! Rotary position embeddings in Hugging Face's rotate-half layout, with the rotary scalings of
//! `transformers`' `ROPE_INIT_FUNCTIONS` that Llama-family bases use (`linear`, `dynamic`, `llama3`,
//! `yarn`).
//!
//! For a head vector `x = [x₁, x₂]` (two halves) at position `p`:
//! `rope(x) = a · (x · cos(p·θ) + [-x₂, x₁] · sin(p·θ))`, with `θᵢ = base^(-2i/head_dim)` rescaled
//! by the scaling type, the angle vector duplicated over both halves, and `a` the scaling's attention
//! factor (1 except for YaRN) — exactly `apply_rotary_pos_emb` in `transformers`' Llama.
use std::f64::consts::PI;

use burn::tensor::{Device, Tensor, TensorData};

pub use crate::config::RopeScaling;
use crate::config::{LlamaConfig, StorageDtype};

/// The inverse frequencies (`head_dim / 2` of them) and the attention factor for a batch whose
/// longest row reaches `seq_len` tokens, computed in `f32` in the order `transformers` uses so
/// the rounding matches.
///
/// `config.rope_inv_freq_dtype` rounds the frequencies computed at load time to a half-precision
/// type: `transformers` keeps them in a buffer that is cast with the model. Frequencies that
/// dynamic NTK recomputes for a longer sequence are fresh `f32`, as there.
pub fn inverse_frequencies(config: &LlamaConfig, seq_len: usize) -> (Vec<f32>, f32) {
    let dim = config.head_dim;
    let default = |base: f32| -> Vec<f32> {
        (0..dim / 2)
            .map(|i| 1.0 / base.powf((2 * i) as f32 / dim as f32))
            .collect()
    };
    let theta = config.rope_theta as f32;
    let max_positions = config.max_position_embeddings;
    let (inv_freq, attention_factor, at_load_time) = match &config.rope_scaling {
        None => (default(theta), 1.0, true),
        Some(RopeScaling::Linear { factor }) => {
            let factor = *factor as f32;
            (
                default(theta).into_iter().map(|f| f / factor).collect(),
                1.0,
                true,
            )
        }
        Some(RopeScaling::Dynamic { factor }) => {
            if seq_len <= max_positions {
                (default(theta), 1.0, true)
            } else {
                let ratio = factor * seq_len as f64 / max_positions as f64 - (factor - 1.0);
                let base = config.rope_theta * ratio.powf(dim as f64 / (dim as f64 - 2.0));
                (default(base as f32), 1.0, false)
            }
        }
        Some(RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings: old_context,
        }) => {
            let (factor, low, high, old) = (
                *factor as f32,
                *low_freq_factor as f32,
                *high_freq_factor as f32,
                *old_context as f32,
            );
            let (low_freq_wavelen, high_freq_wavelen) = (old / low, old / high);
            let scaled = default(theta)
                .into_iter()
                .map(|f| {
                    // `2π / f` and `old / wavelen` as torch evaluates a scalar over a tensor:
                    // the reciprocal times the scalar.
                    let wavelen = (1.0 / f) * (2.0 * PI) as f32;
                    if wavelen < high_freq_wavelen {
                        f
                    } else if wavelen > low_freq_wavelen {
                        f / factor
                    } else {
                        let smooth = ((1.0 / wavelen) * old - low) / (high - low);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect();
            (scaled, 1.0, true)
        }
        Some(yarn @ RopeScaling::Yarn { .. }) => {
            let (inv_freq, attention_factor) = yarn_frequencies(yarn, config);
            (inv_freq, attention_factor, true)
        }
    };
    let rounded = inv_freq
        .into_iter()
        .map(|f| match config.rope_inv_freq_dtype {
            Some(StorageDtype::Bf16) if at_load_time => half::bf16::from_f32(f).to_f32(),
            Some(StorageDtype::F16) if at_load_time => half::f16::from_f32(f).to_f32(),
            _ => f,
        })
        .collect();
    (rounded, attention_factor)
}

/// YaRN's frequencies and attention factor, as `transformers`' `_compute_yarn_parameters` (5.x):
/// the configured factor scales the interpolated frequencies and the default attention factor;
/// the original context only places the correction range.
fn yarn_frequencies(yarn: &RopeScaling, config: &LlamaConfig) -> (Vec<f32>, f32) {
    let RopeScaling::Yarn {
        factor,
        original_max_position_embeddings,
        attention_factor,
        beta_fast,
        beta_slow,
        mscale,
        mscale_all_dim,
        truncate,
    } = yarn
    else {
        unreachable!("called with a YaRN scaling")
    };
    let (dim, base) = (config.head_dim, config.rope_theta);
    let factor = *factor;
    let original = original_max_position_embeddings.unwrap_or(config.max_position_embeddings as f64);
    let get_mscale = |scale: f64, m: f64| {
        if scale <= 1.0 {
            1.0
        } else {
            0.1 * m * scale.ln() + 1.0
        }
    };
    let attention_factor = match (attention_factor, mscale, mscale_all_dim) {
        (Some(a), _, _) => *a,
        (None, Some(m), Some(all)) if *m != 0.0 && *all != 0.0 => {
            get_mscale(factor, *m) / get_mscale(factor, *all)
        }
        _ => get_mscale(factor, 1.0),
    };
    let correction_dim =
        |rotations: f64| (dim as f64 * (original / (rotations * 2.0 * PI)).ln()) / (2.0 * base.ln());
    let (mut low, mut high) = (correction_dim(*beta_fast), correction_dim(*beta_slow));
    if *truncate {
        (low, high) = (low.floor(), high.ceil());
    }
    let (low, mut high) = (low.max(0.0), high.min(dim as f64 - 1.0));
    if low == high {
        high += 0.001;
    }
    let (base, factor) = (base as f32, factor as f32);
    let inv_freq = (0..dim / 2)
        .map(|i| {
            let pos_freq = base.powf((2 * i) as f32 / dim as f32);
            let (extrapolation, interpolation) = (1.0 / pos_freq, 1.0 / (factor * pos_freq));
            let ramp = ((i as f32 - low as f32) / (high - low) as f32).clamp(0.0, 1.0);
            let extrapolation_factor = 1.0 - ramp;
            interpolation * (1.0 - extrapolation_factor) + extrapolation * extrapolation_factor
        })
        .collect();
    (inv_freq, attention_factor as f32)
}

/// Cosine and sine tables for one batch of position ids, shaped `[batch, 1, seq, head_dim]` so they
/// broadcast over heads.
#[derive(Clone, Debug)]
pub struct RotaryTables {
    cos: Tensor<4>,
    sin: Tensor<4>,
}

impl RotaryTables {
    /// Computes the tables for `position_ids` (`[batch, seq]`, row-major) of a model with `config`.
    ///
    /// Angles are computed in `f32` as `transformers` does. Dynamic scaling sees the sequence
    /// length as the largest position + 1 (as `transformers`' `dynamic_rope_update` does on a
    /// fresh model; it also keeps grown frequencies for later, shorter calls, which this does not).
    pub fn new(
        position_ids: &[u32],
        [batch, seq]: [usize; 2],
        config: &LlamaConfig,
        device: &Device,
    ) -> Self {
        let head_dim = config.head_dim;
        let half_dim = head_dim / 2;
        let seq_len = position_ids.iter().max().map_or(0, |&p| p as usize + 1);
        let (inv_freq, scale) = inverse_frequencies(config, seq_len);
        let mut cos = Vec::with_capacity(position_ids.len() * head_dim);
        let mut sin = Vec::with_capacity(position_ids.len() * head_dim);
        for &p in position_ids {
            let start = cos.len();
            for &f in &inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos() * scale);
                sin.push(angle.sin() * scale);
            }
            cos.extend_from_within(start..start + half_dim);
            sin.extend_from_within(start..start + half_dim);
        }
        let shape = [batch, 1, seq, head_dim];
        Self {
            cos: Tensor::from_data(TensorData::new(cos, shape), device),
            sin: Tensor::from_data(TensorData::new(sin, shape), device),
        }
    }

    /// Rotates `x` (`[batch, heads, seq, head_dim]`). The tables are f32 and so is the result:
    /// a half-type `x` (mixed precision) is promoted, as `bf16 · f32` is in PyTorch.
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let x = crate::precision::to_f32(x);
        let (cos, sin) = (self.cos.clone(), self.sin.clone());
        let [_, _, _, head_dim] = x.dims();
        let half_dim = head_dim / 2;
        let first = x.clone().narrow(3, 0, half_dim);
        let second = x.clone().narrow(3, half_dim, half_dim);
        let rotated = Tensor::cat(vec![second.neg(), first], 3);
        x * cos + rotated * sin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(scaling: Option<RopeScaling>) -> LlamaConfig {
        LlamaConfig::new(8, 16, 8, 1, 2, 2, 8)
            .with_rope_theta(10_000.0)
            .with_max_position_embeddings(64)
            .with_rope_scaling(scaling)
    }

    #[test]
    fn default_frequencies_are_the_textbook_ones() {
        let (f, a) = inverse_frequencies(&config(None), 10);
        assert_eq!(a, 1.0);
        let expected = [1.0, 0.1, 0.01, 0.001];
        for (got, want) in f.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6 * want.max(1e-3), "{f:?}");
        }
    }

    #[test]
    fn linear_divides_and_dynamic_only_grows_past_the_context() {
        let (plain, _) = inverse_frequencies(&config(None), 10);
        let (linear, _) = inverse_frequencies(&config(Some(RopeScaling::Linear { factor: 4.0 })), 10);
        assert_eq!(linear, plain.iter().map(|f| f / 4.0).collect::<Vec<_>>());
        let dynamic = config(Some(RopeScaling::Dynamic { factor: 2.0 }));
        assert_eq!(inverse_frequencies(&dynamic, 64).0, plain);
        // 128 tokens with factor 2 and context 64: base · 3^(8/6).
        let (grown, _) = inverse_frequencies(&dynamic, 128);
        let base = 10_000f64 * 3f64.powf(8.0 / 6.0);
        assert!((f64::from(grown[1]) - base.powf(-0.25)).abs() < 1e-7, "{grown:?}");
        assert_eq!(grown[0], 1.0);
    }

    #[test]
    fn llama3_keeps_high_frequencies_blends_middle_ones_and_divides_low_ones() {
        let scaling = RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 64.0,
        };
        let (plain, _) = inverse_frequencies(&config(None), 10);
        let (scaled, _) = inverse_frequencies(&config(Some(scaling)), 10);
        // Wavelengths 2π·[1, 10, 100, 1000] against 64/4 = 16 and 64/1 = 64: 6.3 is kept,
        // 62.8 is blended with weight (64/62.8 − 1)/3, 628 and 6283 are divided by 8.
        assert_eq!(scaled[0], plain[0]);
        let smooth = (64.0 / (20.0 * std::f64::consts::PI) - 1.0) / 3.0;
        let blended = (1.0 - smooth) * 0.1 / 8.0 + smooth * 0.1;
        assert!(
            (f64::from(scaled[1]) - blended).abs() < 1e-7,
            "{scaled:?} vs {blended}"
        );
        for i in 2..4 {
            assert!((scaled[i] - plain[i] / 8.0).abs() < 1e-9, "{i}: {scaled:?}");
        }
    }

    #[test]
    fn yarn_ramps_between_interpolation_and_extrapolation() {
        let scaling = RopeScaling::Yarn {
            factor: 4.0,
            original_max_position_embeddings: None,
            attention_factor: None,
            beta_fast: 32.0,
            beta_slow: 1.0,
            mscale: None,
            mscale_all_dim: None,
            truncate: true,
        };
        let (plain, _) = inverse_frequencies(&config(None), 10);
        let (f, a) = inverse_frequencies(&config(Some(scaling)), 10);
        assert!((a - (0.1 * 4f32.ln() + 1.0)).abs() < 1e-6);
        // The highest frequency is extrapolated (kept), the lowest interpolated (÷ 4).
        assert_eq!(f[0], plain[0]);
        assert!((f[3] - plain[3] / 4.0).abs() < 1e-9, "{f:?}");
    }

    /// Frequencies and attention factors computed by `transformers`' own `_compute_yarn_parameters`
    /// (`scripts/make_precision_fixtures.py yarn`), read through `config.json` parsing.
    #[test]
    fn yarn_matches_transformers() {
        let cases: serde_json::Value =
            serde_json::from_str(include_str!("../tests/fixtures/yarn_reference.json")).unwrap();
        let cases = cases.as_array().unwrap();
        assert!(cases.len() >= 7);
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let c = &case["config"];
            let json = serde_json::json!({
                "vocab_size": 32, "hidden_size": 64, "intermediate_size": 24, "num_hidden_layers": 1,
                "num_attention_heads": 64 / c["head_dim"].as_u64().unwrap(),
                "head_dim": c["head_dim"], "rope_theta": c["rope_theta"],
                "max_position_embeddings": c["max_position_embeddings"], "rope_scaling": c["rope_scaling"],
            });
            let config = crate::HfConfig::from_json_str(&json.to_string(), std::path::Path::new(name))
                .unwrap()
                .to_llama_config()
                .unwrap();
            let (inv_freq, attention_factor) = inverse_frequencies(&config, 1);
            let want = case["attention_factor"].as_f64().unwrap();
            assert!(
                (f64::from(attention_factor) - want).abs() < 1e-6,
                "{name}: {attention_factor} vs {want}"
            );
            let expected = case["inv_freq"].as_array().unwrap();
            assert_eq!(inv_freq.len(), expected.len(), "{name}");
            for (i, (got, want)) in inv_freq.iter().zip(expected).enumerate() {
                let want = want.as_f64().unwrap();
                let error = (f64::from(*got) - want).abs() / want;
                assert!(error < 2e-6, "{name}: inv_freq[{i}] {got} vs {want}");
            }
        }
    }
}
