//! Causal self-attention with grouped-query heads (MHA, GQA and MQA are the same code).
use burn::module::Module;
use burn::nn::{Initializer, Linear};
use burn::tensor::activation::softmax;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Tensor};

use crate::cache::LayerCache;
use crate::config::LlamaConfig;
use crate::cpu;
use crate::cpu::{project, project_group};
use crate::mlp::linear;
use crate::precision::{cast_to, mul_scalar_rounded, to_f32};
use crate::rope::RotaryTables;

/// Multi-head attention whose query heads share `num_key_value_heads` key/value heads.
///
/// `softmax(q·kᵀ / √head_dim + bias) · v`, where `bias` is 0 where attention is allowed and a large
/// negative number elsewhere (causality, padding, document boundaries).
///
/// # Shapes
/// - input: `[batch, seq, hidden]`, bias `[batch, 1, 1, seq, keys]`
/// - output: `[batch, seq, hidden]`
#[derive(Module, Debug)]
pub struct Attention {
    /// `q_proj`: hidden → heads · head_dim (with a bias in Qwen2 and Llama's `attention_bias`).
    pub q_proj: Linear,
    /// `k_proj`: hidden → kv_heads · head_dim.
    pub k_proj: Linear,
    /// `v_proj`: hidden → kv_heads · head_dim.
    pub v_proj: Linear,
    /// `o_proj`: heads · head_dim → hidden.
    pub o_proj: Linear,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads.
    pub num_kv_heads: usize,
    /// Width of a head.
    pub head_dim: usize,
}

impl Attention {
    /// A randomly initialised attention block.
    pub fn init(config: &LlamaConfig, init: &Initializer, device: &Device) -> Self {
        let d = config.hidden_size;
        let q = config.num_attention_heads * config.head_dim;
        let kv = config.num_key_value_heads * config.head_dim;
        let (qkv_bias, o_bias) = (config.qkv_bias, config.o_proj_bias);
        Self {
            q_proj: linear(d, q, qkv_bias, init, device),
            k_proj: linear(d, kv, qkv_bias, init, device),
            v_proj: linear(d, kv, qkv_bias, init, device),
            o_proj: linear(q, d, o_bias, init, device),
            num_heads: config.num_attention_heads,
            num_kv_heads: config.num_key_value_heads,
            head_dim: config.head_dim,
        }
    }

    /// Attends over the current tokens, and over the cached ones when `cache` is given (the new
    /// keys and values are appended to it).
    pub fn forward(
        &self,
        x: Tensor<3>,
        rope: &RotaryTables,
        bias: Tensor<5>,
        cache: Option<&mut LayerCache>,
    ) -> Tensor<3> {
        let [batch, seq, _] = x.dims();
        let (h, kvh, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let groups = h / kvh;
        let split = |t: Tensor<3>, heads: usize| t.reshape([batch, seq, heads, d]).swap_dims(1, 2);

        // The products run in the input's type (f32, or half under mixed precision); the rotary
        // embedding in f32, its result cast back for the products that read it.
        let dtype = x.dtype();
        let [q, k, v] = project_group([&self.q_proj, &self.k_proj, &self.v_proj], x);
        let q = cast_to(rope.apply(split(q, h)), dtype);
        let k = cast_to(rope.apply(split(k, kvh)), dtype);
        let v = split(v, kvh);
        let (k, v) = match cache {
            Some(cache) => cache.append(k, v),
            None => (k, v),
        };
        let keys = k.dims()[2];

        let scale = (d as f64).powf(-0.5);
        // The fused kernels run on the CPU backend only when nothing is differentiated: Burn's
        // autodiff, and the GPU backends given a bias, fall back to composed ops that need K/V
        // repeated per query head.
        let out = if cpu::eligible(&q) {
            // Our CPU kernel (blocks of queries against only the keys their mask shows), or
            // else Flex's fused one (one head's full scores at a time, heads in parallel); both
            // share K/V heads natively and read the bias broadcast, not copied.
            let bias = bias.reshape([batch, 1, seq, keys]);
            match cpu::attention(&q, &k, &v, &bias, scale as f32) {
                Some(out) => out,
                None => {
                    let bias = bias.expand([batch, h, seq, keys]);
                    let options = AttentionModuleOptions {
                        scale: Some(scale),
                        softcap: None,
                        is_causal: false,
                    };
                    attention(q, k, v, None, Some(bias), options)
                }
            }
        } else {
            // Composed of differentiable ops. The query heads that share a KV head are folded
            // into the sequence axis, so K and V are not copied per query head.
            // In mixed precision the scores are masked and normalised in f32.
            let q = q.reshape([batch, kvh, groups * seq, d]);
            let scores = mul_scalar_rounded(q.matmul(k.swap_dims(2, 3)), scale);
            let scores = to_f32(scores.reshape([batch, kvh, groups, seq, keys])) + bias;
            let probs = cast_to(softmax(scores, 4), dtype).reshape([batch, kvh, groups * seq, keys]);
            probs.matmul(v).reshape([batch, h, seq, d])
        };
        let out = out.swap_dims(1, 2).reshape([batch, seq, h * d]);
        project(&self.o_proj, out)
    }
}
