//! SwiGLU's gating on the CPU in one parallel pass.
//!
//! `silu(gate) ⊙ up` through Burn is three element-wise ops (sigmoid, two products), and the Flex
//! backend runs each on the calling thread alone: in a 512-token prefill they were most of the
//! ≈ 14 % of the wall time that one core spent while the other waited (docs/PERFORMANCE.md).
//! Here `gate / (1 + e^−gate) · up` is computed in one pass over the tensors' storage, in chunks
//! on the rayon pool.
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use super::storage::{flex_f32, strided};

/// Elements per task: small enough to spread a prefill's `[512, 1536]` over the pool, large enough
/// that a decode step's few thousand values stay on one thread.
const CHUNK: usize = 16 * 1024;

/// `silu(gate) ⊙ up` for two contiguous f32 tensors of one shape on the Flex backend, not tracked
/// by autodiff; `None` (nothing computed) otherwise.
pub(crate) fn swiglu(gate: &Tensor<3>, up: &Tensor<3>) -> Option<Tensor<3>> {
    let (gate_primitive, up_primitive) = (flex_f32(gate)?, flex_f32(up)?);
    let (g, u) = (strided::<3>(&gate_primitive)?, strided::<3>(&up_primitive)?);
    let contiguous = |shape: [usize; 3], strides: [usize; 3]| strides == [shape[1] * shape[2], shape[2], 1];
    if g.shape != u.shape || !contiguous(g.shape, g.strides) || !contiguous(u.shape, u.strides) {
        return None;
    }
    let n = g.shape.iter().product::<usize>();
    let (g, u) = (&g.data[g.offset..g.offset + n], &u.data[u.offset..u.offset + n]);
    let mut out = vec![0.0f32; n];
    out.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
        .for_each(|(out, (g, u))| {
            for ((o, &g), &u) in out.iter_mut().zip(g).zip(u) {
                *o = g / (1.0 + (-g).exp()) * u;
            }
        });
    Some(Tensor::from_data(
        TensorData::new(out, gate.dims()),
        &gate.device(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::matrix;
    use burn::tensor::activation::silu;

    #[test]
    fn equals_burns_silu_times_up() {
        // More than one chunk, and large |gate| where e^−gate overflows or vanishes.
        let (gate, _) = matrix(3 * 40, 700, 1);
        let (up, _) = matrix(3 * 40, 700, 2);
        let gate = gate.mul_scalar(30.0).reshape([3, 40, 700]);
        let up = up.reshape([3, 40, 700]);
        let want: Vec<f32> = (silu(gate.clone()) * up.clone())
            .into_data()
            .try_into_vec()
            .unwrap();
        let got: Vec<f32> = swiglu(&gate, &up).unwrap().into_data().try_into_vec().unwrap();
        for (n, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                "element {n}: {g} vs {w}"
            );
        }
        // A transposed view is not contiguous: left to Burn.
        assert!(swiglu(&gate.clone().swap_dims(1, 2), &up.clone().swap_dims(1, 2)).is_none());
        let tracked = gate.autodiff().require_grad();
        assert!(swiglu(&tracked, &up).is_none());
    }
}
