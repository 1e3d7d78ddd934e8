//! Mixed precision (`LlamaConfig::compute_dtype`) as `torch.autocast(dtype=bfloat16)` runs
//! `transformers`' Llama with f32 weights: the matrix products run in the half type, everything
//! else stays in f32. The weights are the f32 master copy an optimizer updates and are cast where
//! a product uses them; casts are differentiable, so their gradients arrive in f32.
//!
//! | operation | dtype | why (`transformers`' Llama under autocast) |
//! |---|---|---|
//! | embedding lookup, residual stream, residual adds | f32 | `embedding` is not an autocast op; `f32 + bf16` promotes to f32 |
//! | RMSNorm (statistics, gain, output) | f32 | its input is the f32 residual |
//! | q/k/v, o, gate/up/down projections, the output head | half (inputs and weights cast) | `linear` is on autocast's lower-precision list |
//! | rotary embedding `q·cos + rot(q)·sin` | f32 | cos/sin are built in the residual's dtype (f32); `bf16 · f32` promotes |
//! | `q·kᵀ` and its scaling | half | `matmul` is on the list; the scale multiplies the half result (in f32, rounded once) |
//! | mask add, softmax | f32 | the f32 mask promotes the scores; softmax runs with `dtype=float32` |
//! | `probs·v` | half | `matmul` |
//! | SiLU | f32 inside, result rounded once to half | PyTorch's kernel computes half types in f32 |
//! | `silu(gate) ⊙ up` | half | both factors are half |
//! | logits, log-softmax, cross-entropy | f32 | the loss upcasts the logits (`logits.float()`) |
//!
//! Outside mixed precision (`compute_dtype` unset) every row of the table is f32.
use burn::nn::RmsNorm;
use burn::tensor::activation;
use burn::tensor::{DType, FloatDType, Tensor};

use crate::config::{LlamaConfig, StorageDtype};

/// `t` in the float type `like` (unchanged when it already is, or when `like` is no float type).
pub fn cast_to<const D: usize>(t: Tensor<D>, like: DType) -> Tensor<D> {
    if t.dtype() == like {
        return t;
    }
    match like {
        DType::F32 => t.cast(FloatDType::F32),
        DType::BF16 => t.cast(FloatDType::BF16),
        DType::F16 => t.cast(FloatDType::F16),
        DType::F64 => t.cast(FloatDType::F64),
        _ => t,
    }
}

/// `t` in f32.
pub(crate) fn to_f32<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    cast_to(t, DType::F32)
}

/// The type the matrix products of a model with `config` run in: its compute type, else f32.
pub(crate) fn product_dtype(config: &LlamaConfig) -> DType {
    match config.compute_dtype {
        Some(StorageDtype::Bf16) => DType::BF16,
        Some(StorageDtype::F16) => DType::F16,
        Some(StorageDtype::F32) | None => DType::F32,
    }
}

/// SiLU computed in f32 and rounded once to the input's type (PyTorch's half-type kernel);
/// Burn's composed `x · sigmoid(x)` would round twice in a half type.
pub(crate) fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let dtype = x.dtype();
    cast_to(activation::silu(to_f32(x)), dtype)
}

/// `t · scalar` computed in f32 and rounded once to `t`'s type, as PyTorch multiplies a half
/// tensor by a Python float; Burn's half `mul_scalar` rounds the scalar to half first (for
/// `1/√8` a 1e-4 relative error that flips the rounding of many products).
pub(crate) fn mul_scalar_rounded<const D: usize>(t: Tensor<D>, scalar: f64) -> Tensor<D> {
    let dtype = t.dtype();
    if dtype == DType::F32 {
        return t.mul_scalar(scalar);
    }
    cast_to(to_f32(t).mul_scalar(scalar), dtype)
}

/// RMSNorm with its statistics (and the f32 gain) in f32; the result in the input's type.
pub(crate) fn rms_norm(norm: &RmsNorm, x: Tensor<3>) -> Tensor<3> {
    let dtype = x.dtype();
    if dtype == DType::F32 {
        return norm.forward(x);
    }
    cast_to(norm.forward(to_f32(x)), dtype)
}
