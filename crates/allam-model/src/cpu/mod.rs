//! The CPU shortcuts: kernels for the Flex backend where Burn's composed ops leave cores idle.
//!
//! - [`attention`]: blocks of queries against only the keys their mask shows ([`attention.rs`]);
//! - [`swiglu`]: SwiGLU's gating in one parallel pass ([`swiglu.rs`]);
//! - [`matvec`]: decode-sized products reading the weights in place, and [`split`]: such products
//!   as column blocks of Burn products (bf16 compute on the CPU).
//!
//! One gate: a shortcut takes a tensor only when [`eligible`] — a plain (not autodiff-tracked) f32
//! tensor on the Flex backend, read in place ([`storage`]); the column blocks of [`split`], which
//! run Burn's own products, need only the CPU device. Every entry point returns `None`, having
//! computed nothing, for anything else, so call sites read
//! `cpu::swiglu(&gate, &up).unwrap_or_else(|| silu(gate) * up)` and other devices and dtypes take
//! the composed ops. [`with_f32_slice`] lends the same in-place reading to other crates.
mod attention;
mod matvec;
mod split;
mod storage;
mod swiglu;

use burn::tensor::Tensor;

pub(crate) use attention::attention;
pub(crate) use split::{matmul_columns, project, project_group};
pub(crate) use swiglu::swiglu;

/// Whether `tensor` may take the in-place kernels: a plain f32 tensor on the Flex backend.
pub fn eligible<const D: usize>(tensor: &Tensor<D>) -> bool {
    storage::flex_f32(tensor).is_some()
}

/// `read(values)` on the elements of `tensor` in place, when it is [`eligible`] and contiguous
/// (other crates' CPU kernels read their inputs this way, e.g. the optimizer's fused update);
/// `None`, having read nothing, otherwise.
pub fn with_f32_slice<R>(tensor: &Tensor<1>, read: impl FnOnce(&[f32]) -> R) -> Option<R> {
    let primitive = storage::flex_f32(tensor)?;
    let view = storage::strided::<1>(&primitive)?;
    if view.strides[0] != 1 {
        return None;
    }
    Some(read(&view.data[view.offset..view.offset + view.shape[0]]))
}
