//! Mixed precision (`LlamaConfig::compute_dtype`): activations and matrix products in a
//! half-precision type while the weights stay in f32 (the master copy an optimizer updates) and
//! are cast where they are used — `torch.autocast` for this model. Where precision matters the
//! computation goes back to f32: RMSNorm's statistics, the attention softmax (with its mask), and
//! the logits. Casts are differentiable, so f32 weights receive f32 gradients.
use burn::nn::RmsNorm;
use burn::tensor::{DType, FloatDType, Tensor};

use crate::config::StorageDtype;

/// Burn's float type of a storage dtype.
pub fn float_dtype(dtype: StorageDtype) -> FloatDType {
    match dtype {
        StorageDtype::F32 => FloatDType::F32,
        StorageDtype::Bf16 => FloatDType::BF16,
        StorageDtype::F16 => FloatDType::F16,
    }
}

/// `t` in the float type of `like` (unchanged when it already is).
pub(crate) fn cast_to<const D: usize>(t: Tensor<D>, like: DType) -> Tensor<D> {
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

/// RMSNorm with its statistics (and the f32 gain) in f32; the result in the input's type.
pub(crate) fn rms_norm(norm: &RmsNorm, x: Tensor<3>) -> Tensor<3> {
    let dtype = x.dtype();
    if dtype == DType::F32 {
        return norm.forward(x);
    }
    cast_to(norm.forward(to_f32(x)), dtype)
}
