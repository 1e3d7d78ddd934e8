//! One pre-norm decoder layer.
use burn::module::Module;
use burn::nn::{Initializer, RmsNorm, RmsNormConfig};
use burn::tensor::{DType, Device, Tensor};

use crate::attention::Attention;
use crate::cache::LayerCache;
use crate::config::LlamaConfig;
use crate::mlp::SwiGlu;
use crate::precision::{cast_to, rms_norm};
use crate::rope::RotaryTables;

/// `h = x + attn(norm₁(x)); out = h + mlp(norm₂(h))`.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    /// `input_layernorm`.
    pub input_layernorm: RmsNorm,
    /// `self_attn`.
    pub self_attn: Attention,
    /// `post_attention_layernorm`.
    pub post_attention_layernorm: RmsNorm,
    /// `mlp`.
    pub mlp: SwiGlu,
}

impl DecoderLayer {
    /// A randomly initialised layer.
    pub fn init(config: &LlamaConfig, init: &Initializer, device: &Device) -> Self {
        let norm = RmsNormConfig::new(config.hidden_size).with_epsilon(config.rms_norm_eps);
        Self {
            input_layernorm: norm.init(device),
            self_attn: Attention::init(config, init, device),
            post_attention_layernorm: norm.init(device),
            mlp: SwiGlu::init(config, init, device),
        }
    }

    /// Applies the layer (`x`: `[batch, seq, hidden]`, the residual stream, f32). The attention
    /// and MLP blocks run their products in `products` (f32, or the half type of mixed
    /// precision); their outputs return to the residual's type before the adds.
    pub fn forward(
        &self,
        x: Tensor<3>,
        rope: &RotaryTables,
        bias: Tensor<5>,
        cache: Option<&mut LayerCache>,
        products: DType,
    ) -> Tensor<3> {
        let residual = x.dtype();
        let normed = cast_to(rms_norm(&self.input_layernorm, x.clone()), products);
        let h = x + cast_to(self.self_attn.forward(normed, rope, bias, cache), residual);
        let normed = cast_to(rms_norm(&self.post_attention_layernorm, h.clone()), products);
        h + cast_to(self.mlp.forward(normed), residual)
    }
}
