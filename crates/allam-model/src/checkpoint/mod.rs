//! Hugging Face checkpoints: `config.json` + `model.safetensors` (or shards with
//! `model.safetensors.index.json`), in f32, bf16 or f16.
//!
//! Tensor names and layouts are exactly `transformers`' `LlamaForCausalLM` (and Mistral / Qwen2)
//! state dict: linear
//! weights are `[out, in]` (Burn's `Linear` holds `[in, out]`, so they are transposed on the way
//! in and out).
mod load;
mod save;

pub use load::{SafetensorsReader, load_model};

pub use save::{SaveOptions, save_model};

use burn::module::Param;
use burn::nn::{Embedding, Linear, RmsNorm};
use burn::tensor::{Device, Tensor, TensorData};

use crate::attention::Attention;
use crate::config::LlamaConfig;
use crate::error::Result;
use crate::layer::DecoderLayer;
use crate::mlp::SwiGlu;
use crate::model::Llama;

/// A tensor of the model as `transformers` names and shapes it.
pub(crate) enum HfTensor {
    /// A Burn `[in, out]` linear weight, stored `[out, in]`.
    Linear(Tensor<2>),
    /// A matrix stored as is (the embedding).
    Matrix(Tensor<2>),
    /// A vector (norm weights, biases).
    Vector(Tensor<1>),
}

impl HfTensor {
    /// The Hugging Face shape.
    pub(crate) fn shape(&self) -> Vec<usize> {
        match self {
            Self::Linear(t) => {
                let [i, o] = t.dims();
                vec![o, i]
            }
            Self::Matrix(t) => t.dims().to_vec(),
            Self::Vector(t) => t.dims().to_vec(),
        }
    }

    /// The values in Hugging Face layout, row-major, as f32 on the host.
    pub(crate) fn to_host(&self) -> Vec<f32> {
        let data = match self {
            Self::Linear(t) => t.clone().transpose().into_data(),
            Self::Matrix(t) => t.clone().into_data(),
            Self::Vector(t) => t.clone().into_data(),
        };
        data.convert::<f32>()
            .try_into_vec::<f32>()
            .expect("converted to f32")
    }
}

/// Every tensor of `model` under its Hugging Face name, in state-dict order.
pub(crate) fn hf_tensors(model: &Llama) -> Vec<(String, HfTensor)> {
    let mut out = vec![(
        "model.embed_tokens.weight".to_string(),
        HfTensor::Matrix(model.embed_tokens.weight.val()),
    )];
    for (i, layer) in model.layers.iter().enumerate() {
        let p = |s: &str| format!("model.layers.{i}.{s}.weight");
        let a = &layer.self_attn;
        let m = &layer.mlp;
        let linears = [
            ("self_attn.q_proj", &a.q_proj),
            ("self_attn.k_proj", &a.k_proj),
            ("self_attn.v_proj", &a.v_proj),
            ("self_attn.o_proj", &a.o_proj),
            ("mlp.gate_proj", &m.gate_proj),
            ("mlp.up_proj", &m.up_proj),
            ("mlp.down_proj", &m.down_proj),
        ];
        for (name, lin) in linears {
            out.push((p(name), HfTensor::Linear(lin.weight.val())));
            if let Some(bias) = &lin.bias {
                out.push((
                    format!("model.layers.{i}.{name}.bias"),
                    HfTensor::Vector(bias.val()),
                ));
            }
        }
        out.push((
            p("input_layernorm"),
            HfTensor::Vector(layer.input_layernorm.gamma.val()),
        ));
        out.push((
            p("post_attention_layernorm"),
            HfTensor::Vector(layer.post_attention_layernorm.gamma.val()),
        ));
    }
    out.push((
        "model.norm.weight".into(),
        HfTensor::Vector(model.norm.gamma.val()),
    ));
    if let Some(head) = &model.lm_head {
        out.push(("lm_head.weight".into(), HfTensor::Linear(head.weight.val())));
    }
    out
}

/// The Hugging Face names of `model`'s tensors that hold a NaN or an infinite value (each tensor is
/// checked on its device; one boolean per tensor is read back).
pub fn non_finite_tensors(model: &Llama) -> Vec<String> {
    hf_tensors(model)
        .into_iter()
        .filter(|(_, tensor)| {
            let bad = match tensor {
                HfTensor::Linear(t) | HfTensor::Matrix(t) => {
                    let t = t.clone().reshape([-1]);
                    t.clone().is_nan().bool_or(t.is_inf()).any()
                }
                HfTensor::Vector(t) => t.clone().is_nan().bool_or(t.clone().is_inf()).any(),
            };
            bad.into_scalar::<bool>()
        })
        .map(|(name, _)| name)
        .collect()
}

/// Builds a model from Hugging Face tensors; `fetch(name, shape)` returns the row-major f32 values
/// of one tensor after checking its shape. Tensors are fetched one at a time, in state-dict order
/// (the order of [`expected_tensors`]).
pub(crate) fn assemble(
    config: &LlamaConfig,
    device: &Device,
    mut fetch: impl FnMut(&str, &[usize]) -> Result<Vec<f32>>,
) -> Result<Llama> {
    let c = config;
    let eps = c.rms_norm_eps;
    let mut specs = expected_tensors(config).into_iter();
    let mut next = || -> Result<(Vec<f32>, Vec<usize>)> {
        let (name, shape) = specs.next().expect("assemble follows expected_tensors");
        Ok((fetch(&name, &shape)?, shape))
    };
    let embed = matrix(next()?, device);
    let mut layers = Vec::with_capacity(c.num_hidden_layers);
    for _ in 0..c.num_hidden_layers {
        let mut linear = |bias: bool| -> Result<Linear> {
            let weight = next()?;
            let bias = if bias { Some(vector(next()?, device)) } else { None };
            Ok(Linear {
                weight: Param::from_tensor(matrix(weight, device).transpose()),
                bias: bias.map(Param::from_tensor),
            })
        };
        let self_attn = Attention {
            q_proj: linear(c.qkv_bias)?,
            k_proj: linear(c.qkv_bias)?,
            v_proj: linear(c.qkv_bias)?,
            o_proj: linear(c.o_proj_bias)?,
            num_heads: c.num_attention_heads,
            num_kv_heads: c.num_key_value_heads,
            head_dim: c.head_dim,
        };
        let mlp = SwiGlu {
            gate_proj: linear(c.mlp_bias)?,
            up_proj: linear(c.mlp_bias)?,
            down_proj: linear(c.mlp_bias)?,
        };
        layers.push(DecoderLayer {
            input_layernorm: rms_norm(next()?, eps, device),
            self_attn,
            post_attention_layernorm: rms_norm(next()?, eps, device),
            mlp,
        });
    }
    let norm = rms_norm(next()?, eps, device);
    let lm_head = if c.tie_word_embeddings {
        None
    } else {
        Some(Linear {
            weight: Param::from_tensor(matrix(next()?, device).transpose()),
            bias: None,
        })
    };
    Ok(Llama {
        embed_tokens: Embedding {
            weight: Param::from_tensor(embed),
        },
        layers,
        norm,
        lm_head,
        config: config.clone(),
    })
}

fn matrix((values, shape): (Vec<f32>, Vec<usize>), device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, [shape[0], shape[1]]), device)
}

fn vector((values, shape): (Vec<f32>, Vec<usize>), device: &Device) -> Tensor<1> {
    Tensor::from_data(TensorData::new(values, [shape[0]]), device)
}

fn rms_norm(tensor: (Vec<f32>, Vec<usize>), epsilon: f64, device: &Device) -> RmsNorm {
    RmsNorm {
        gamma: Param::from_tensor(vector(tensor, device)),
        epsilon,
    }
}

/// Every Hugging Face tensor name and shape a model with `config` has, in state-dict order.
pub fn expected_tensors(config: &LlamaConfig) -> Vec<(String, Vec<usize>)> {
    let c = config;
    let (d, q, kv, ff) = (
        c.hidden_size,
        c.num_attention_heads * c.head_dim,
        c.num_key_value_heads * c.head_dim,
        c.intermediate_size,
    );
    let mut all = vec![("model.embed_tokens.weight".to_string(), vec![c.vocab_size, d])];
    for i in 0..c.num_hidden_layers {
        // (module, weight shape, whether it has a bias), in state-dict order.
        let modules = [
            ("self_attn.q_proj", vec![q, d], c.qkv_bias),
            ("self_attn.k_proj", vec![kv, d], c.qkv_bias),
            ("self_attn.v_proj", vec![kv, d], c.qkv_bias),
            ("self_attn.o_proj", vec![d, q], c.o_proj_bias),
            ("mlp.gate_proj", vec![ff, d], c.mlp_bias),
            ("mlp.up_proj", vec![ff, d], c.mlp_bias),
            ("mlp.down_proj", vec![d, ff], c.mlp_bias),
            ("input_layernorm", vec![d], false),
            ("post_attention_layernorm", vec![d], false),
        ];
        for (name, shape, bias) in modules {
            let rows = shape[0];
            all.push((format!("model.layers.{i}.{name}.weight"), shape));
            if bias {
                all.push((format!("model.layers.{i}.{name}.bias"), vec![rows]));
            }
        }
    }
    all.push(("model.norm.weight".into(), vec![d]));
    if !c.tie_word_embeddings {
        all.push(("lm_head.weight".into(), vec![c.vocab_size, d]));
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_tensors_match_the_model() {
        for (tied, biases) in [(false, false), (true, true)] {
            let config = LlamaConfig::new(11, 8, 12, 2, 4, 2, 4)
                .with_tie_word_embeddings(tied)
                .with_qkv_bias(biases)
                .with_o_proj_bias(biases)
                .with_mlp_bias(biases);
            let model = config.init(&Device::default());
            let from_model: Vec<_> = hf_tensors(&model)
                .iter()
                .map(|(n, t)| (n.clone(), t.shape()))
                .collect();
            assert_eq!(from_model, expected_tensors(&config));
        }
    }
}
