//! Rotary position embeddings in Hugging Face's rotate-half layout.
//!
//! For a head vector `x = [x₁, x₂]` (two halves) at position `p`:
//! `rope(x) = x · cos(p·θ) + [-x₂, x₁] · sin(p·θ)`, with `θᵢ = base^(-2i/head_dim)` and the angle
//! vector duplicated over both halves — exactly `apply_rotary_pos_emb` in `transformers`' Llama.
use burn::tensor::{Device, Tensor, TensorData};

use crate::config::StorageDtype;

/// Cosine and sine tables for one batch of position ids, shaped `[batch, 1, seq, head_dim]` so they
/// broadcast over heads.
#[derive(Clone, Debug)]
pub struct RotaryTables {
    cos: Tensor<4>,
    sin: Tensor<4>,
}

impl RotaryTables {
    /// Computes the tables for `position_ids` (`[batch, seq]`, row-major).
    ///
    /// The inverse frequencies and angles are computed in `f32` as `transformers` does, so the
    /// rounding matches the reference implementation. `inv_freq_dtype` rounds the inverse
    /// frequencies to a half-precision type first: `transformers` keeps them in a buffer that is cast
    /// with the model, so a checkpoint loaded in its bf16/f16 dtype has them rounded.
    pub fn new(
        position_ids: &[u32],
        [batch, seq]: [usize; 2],
        head_dim: usize,
        theta: f64,
        inv_freq_dtype: Option<StorageDtype>,
        device: &Device,
    ) -> Self {
        let half_dim = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half_dim)
            .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32))
            .map(|f| match inv_freq_dtype {
                Some(StorageDtype::Bf16) => half::bf16::from_f32(f).to_f32(),
                Some(StorageDtype::F16) => half::f16::from_f32(f).to_f32(),
                Some(StorageDtype::F32) | None => f,
            })
            .collect();
        let mut cos = Vec::with_capacity(position_ids.len() * head_dim);
        let mut sin = Vec::with_capacity(position_ids.len() * head_dim);
        for &p in position_ids {
            let start = cos.len();
            for &f in &inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
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

    /// Rotates `x` (`[batch, heads, seq, head_dim]`).
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, _, head_dim] = x.dims();
        let half_dim = head_dim / 2;
        let first = x.clone().narrow(3, 0, half_dim);
        let second = x.clone().narrow(3, half_dim, half_dim);
        let rotated = Tensor::cat(vec![second.neg(), first], 3);
        x * self.cos.clone() + rotated * self.sin.clone()
    }
}
