//! Decode-sized products on every core.
//!
//! While decoding, each projection multiplies one row (one new token per sequence) by a weight
//! matrix. The Flex backend runs such matrix-vector products on a single thread (its matmul only
//! parallelises products above ~7 M multiply-adds, and `gemm`'s matrix-vector kernels are serial),
//! so decoding used one core of however many there are. Splitting the weight's output columns
//! into one block per thread and running the blocks with `rayon` puts every core to work on the
//! memory-bound weight reads; the per-block results are then concatenated (a few KB).
use burn::nn::Linear;
use burn::tensor::Tensor;
use rayon::prelude::*;

/// Inputs with at most this many rows (tokens × sequences) are split; larger ones are
/// compute-bound products that the backend already parallelises.
const MAX_ROWS: usize = 8;
/// Blocks narrower than this are not worth a thread.
const MIN_BLOCK_COLUMNS: usize = 128;

/// `x · weight` for `x`: `[rows, d_in]` and `weight`: `[d_in, d_out]` (any strides), with the
/// columns split over the thread pool when `rows` is small.
pub(crate) fn matmul_columns(x: Tensor<2>, weight: Tensor<2>) -> Tensor<2> {
    let [rows, _] = x.dims();
    let d_out = weight.dims()[1];
    let blocks = rayon::current_num_threads().min(d_out / MIN_BLOCK_COLUMNS);
    if rows > MAX_ROWS || blocks < 2 {
        return x.matmul(weight);
    }
    matmul_in_blocks(x, weight, blocks)
}

/// `x · weight`, computed as `blocks` column blocks in parallel and concatenated.
fn matmul_in_blocks(x: Tensor<2>, weight: Tensor<2>, blocks: usize) -> Tensor<2> {
    let [d_in, d_out] = weight.dims();
    let width = d_out.div_ceil(blocks);
    let parts: Vec<Tensor<2>> = (0..d_out.div_ceil(width))
        .into_par_iter()
        .map(|block| {
            let start = block * width;
            let end = (start + width).min(d_out);
            x.clone().matmul(weight.clone().slice([0..d_in, start..end]))
        })
        .collect();
    Tensor::cat(parts, 1)
}

/// A bias-free [`Linear`] layer applied to `[batch, seq, d_in]`, through [`matmul_columns`].
pub(crate) fn project(linear: &Linear, x: Tensor<3>) -> Tensor<3> {
    let [batch, seq, d_in] = x.dims();
    if batch * seq > MAX_ROWS || linear.bias.is_some() {
        return linear.forward(x);
    }
    let weight = linear.weight.val();
    let d_out = weight.dims()[1];
    matmul_columns(x.reshape([batch * seq, d_in]), weight).reshape([batch, seq, d_out])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn max_difference(a: Tensor<2>, b: Tensor<2>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    #[test]
    fn blocks_give_the_plain_product() {
        let device = Device::flex();
        let x = Tensor::<2>::random([3, 96], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<2>::random([96, 301], Distribution::Normal(0.0, 1.0), &device);
        let want = x.clone().matmul(w.clone());
        for blocks in [2, 3, 7] {
            let got = matmul_in_blocks(x.clone(), w.clone(), blocks);
            assert_eq!(got.dims(), [3, 301]);
            assert!(max_difference(got, want.clone()) < 1e-5, "{blocks} blocks");
        }
        // A transposed (strided) weight, as for a tied output head.
        let table = Tensor::<2>::random([301, 96], Distribution::Normal(0.0, 1.0), &device);
        let want = x.clone().matmul(table.clone().transpose());
        let got = matmul_in_blocks(x.clone(), table.transpose(), 4);
        assert!(max_difference(got, want) < 1e-5);
    }

    #[test]
    fn matmul_columns_is_the_plain_product_on_every_path() {
        let device = Device::flex();
        let w = Tensor::<2>::random([16, 1024], Distribution::Normal(0.0, 1.0), &device);
        let many = Tensor::<2>::random([MAX_ROWS + 1, 16], Distribution::Normal(0.0, 1.0), &device);
        let want = many.clone().matmul(w.clone());
        assert!(max_difference(matmul_columns(many, w.clone()), want) < 1e-5);
        let one = Tensor::<2>::random([1, 16], Distribution::Normal(0.0, 1.0), &device);
        let want = one.clone().matmul(w.clone());
        assert!(max_difference(matmul_columns(one, w), want) < 1e-5);
    }
}
