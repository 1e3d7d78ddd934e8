//! Decode-sized products on every core.
//!
//! While decoding, each projection multiplies one row (one new token per sequence) by a weight
//! matrix. The Flex backend runs such matrix-vector products on a single thread (its matmul only
//! parallelises products above ~7 M multiply-adds, and `gemm`'s matrix-vector kernels are serial),
//! so decoding used one core of however many there are. Splitting the weight's output columns
//! into one block per thread and running the blocks with `rayon` puts every core to work on the
//! memory-bound weight reads; the per-block results are then concatenated (a few KB).
//!
//! Only inputs of at most [`MAX_ROWS`] rows (tokens × sequences) are split; larger ones are
//! compute-bound products that the backend already parallelises. Only on the CPU: a GPU backend
//! runs one product as one kernel, and blocks would only add launches and a copy.
//!
//! f32 tensors on the Flex backend take [`super::matvec`] instead, which reads the weights in
//! place; the blocks of Burn products here remain for the other cases (bf16 compute on the CPU).
use burn::nn::Linear;
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::matvec::{self, MAX_ROWS};
use crate::device::is_cpu;
use crate::precision::cast_to;

/// Blocks narrower than this are not worth a thread.
const MIN_BLOCK_COLUMNS: usize = 128;

/// `x · weight` for `x`: `[rows, d_in]` and `weight`: `[d_in, d_out]` (any strides), with the
/// columns split over the thread pool when `rows` is small.
pub(crate) fn matmul_columns(x: Tensor<2>, weight: Tensor<2>) -> Tensor<2> {
    let [rows, _] = x.dims();
    let d_out = weight.dims()[1];
    let blocks = rayon::current_num_threads().min(d_out / MIN_BLOCK_COLUMNS);
    if rows > MAX_ROWS || !is_cpu(&x.device()) {
        return x.matmul(weight);
    }
    if let Some(out) = matvec::products(&x, std::slice::from_ref(&weight)).and_then(|mut v| v.pop()) {
        return out;
    }
    if blocks < 2 {
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

/// A [`Linear`] layer applied to `[batch, seq, d_in]`, through [`matmul_columns`].
/// In mixed precision the (f32) weight and bias are cast to the input's type first.
pub(crate) fn project(linear: &Linear, x: Tensor<3>) -> Tensor<3> {
    let [batch, seq, d_in] = x.dims();
    let dtype = x.dtype();
    if dtype == linear.weight.val().dtype() && (batch * seq > MAX_ROWS || !is_cpu(&x.device())) {
        return linear.forward(x);
    }
    let weight = cast_to(linear.weight.val(), dtype);
    let d_out = weight.dims()[1];
    let out = matmul_columns(x.reshape([batch * seq, d_in]), weight).reshape([batch, seq, d_out]);
    match &linear.bias {
        Some(bias) => out + cast_to(bias.val(), dtype).reshape([1, 1, d_out]),
        None => out,
    }
}

/// Several [`Linear`] layers applied to the same `x` (q/k/v, or gate/up). On decode-sized inputs
/// on the CPU every layer's column blocks go to the thread pool as one parallel section — one
/// hand-off per group instead of one per layer; otherwise each layer is [`project`]ed alone.
pub(crate) fn project_group<const N: usize>(linears: [&Linear; N], x: Tensor<3>) -> [Tensor<3>; N] {
    let [batch, seq, d_in] = x.dims();
    let dtype = x.dtype();
    let threads = rayon::current_num_threads();
    let grouped = batch * seq <= MAX_ROWS
        && is_cpu(&x.device())
        && threads >= 2
        && linears.iter().all(|l| l.weight.val().dtype() == dtype);
    if !grouped {
        return linears.map(|l| project(l, x.clone()));
    }
    let rows = x.reshape([batch * seq, d_in]);
    let with_bias = |index: usize, out: Tensor<2>| {
        let d_out = out.dims()[1];
        let out = out.reshape([batch, seq, d_out]);
        match &linears[index].bias {
            Some(bias) => out + bias.val().reshape([1, 1, d_out]),
            None => out,
        }
    };
    let weights = linears.map(|l| l.weight.val());
    if let Some(outputs) = matvec::products(&rows, &weights) {
        let mut outputs = outputs.into_iter();
        return std::array::from_fn(|index| with_bias(index, outputs.next().expect("one output per weight")));
    }
    // (layer, column range) tasks: each layer cut into about `threads` blocks.
    let mut tasks = Vec::new();
    for (index, linear) in linears.iter().enumerate() {
        let d_out = linear.weight.val().dims()[1];
        let width = d_out.div_ceil(threads).max(MIN_BLOCK_COLUMNS);
        let mut start = 0;
        while start < d_out {
            let end = (start + width).min(d_out);
            tasks.push((index, start, end));
            start = end;
        }
    }
    let parts: Vec<(usize, Tensor<2>)> = tasks
        .into_par_iter()
        .map(|(index, start, end)| {
            let weight = linears[index].weight.val();
            let d_in = weight.dims()[0];
            (index, rows.clone().matmul(weight.slice([0..d_in, start..end])))
        })
        .collect();
    std::array::from_fn(|index| {
        let blocks: Vec<Tensor<2>> = parts
            .iter()
            .filter(|(i, _)| *i == index)
            .map(|(_, t)| t.clone())
            .collect();
        with_bias(index, Tensor::cat(blocks, 1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_product, matrix};
    use burn::tensor::{Device, TensorData};

    #[test]
    fn blocks_give_the_plain_product() {
        let (x, xs) = matrix(3, 96, 1);
        let (w, ws) = matrix(96, 301, 2);
        for blocks in [2, 3, 7] {
            let got = matmul_in_blocks(x.clone(), w.clone(), blocks);
            assert_product(&got, &xs, |p, j| ws[p * 301 + j], [3, 96, 301]);
        }
        // A transposed (strided) weight, as for a tied output head.
        let transposed: Vec<f32> = (0..301 * 96).map(|i| ws[(i % 96) * 301 + i / 96]).collect();
        let table = Tensor::<2>::from_data(TensorData::new(transposed, [301, 96]), &Device::flex());
        let got = matmul_in_blocks(x, table.transpose(), 4);
        assert_product(&got, &xs, |p, j| ws[p * 301 + j], [3, 96, 301]);
    }

    #[test]
    fn matmul_columns_is_the_plain_product_on_every_path() {
        let (w, ws) = matrix(16, 1024, 3);
        let (many, many_s) = matrix(MAX_ROWS + 1, 16, 4);
        let got = matmul_columns(many, w.clone());
        assert_product(&got, &many_s, |p, j| ws[p * 1024 + j], [MAX_ROWS + 1, 16, 1024]);
        let (one, one_s) = matrix(1, 16, 5);
        let got = matmul_columns(one, w);
        assert_product(&got, &one_s, |p, j| ws[p * 1024 + j], [1, 16, 1024]);
    }

    #[test]
    fn a_group_gives_each_layers_own_product() {
        let device = Device::flex();
        let init = burn::nn::Initializer::Uniform { min: -1.0, max: 1.0 };
        let layers = [
            crate::mlp::linear(32, 300, true, &init, &device),
            crate::mlp::linear(32, 128, false, &init, &device),
            crate::mlp::linear(32, 7, true, &init, &device),
        ];
        let biased = |l: &Linear| {
            let mut l = l.clone();
            if let Some(b) = &l.bias {
                let d = b.val().dims()[0];
                let values: Vec<f32> = (0..d).map(|i| i as f32 * 0.01).collect();
                l.bias = Some(burn::module::Param::from_tensor(Tensor::from_data(
                    TensorData::new(values, [d]),
                    &device,
                )));
            }
            l
        };
        let layers = layers.map(|l| biased(&l));
        for rows in [1, 3, MAX_ROWS, MAX_ROWS + 1] {
            let (x, _) = matrix(rows, 32, 9);
            let x = x.reshape([1, rows, 32]);
            let grouped = project_group([&layers[0], &layers[1], &layers[2]], x.clone());
            for (layer, got) in layers.iter().zip(grouped) {
                let want: Vec<f32> = layer.forward(x.clone()).into_data().try_into_vec().unwrap();
                let got: Vec<f32> = got.into_data().try_into_vec().unwrap();
                assert_eq!(got.len(), want.len());
                for (a, b) in got.iter().zip(&want) {
                    assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "rows {rows}: {a} vs {b}");
                }
            }
        }
    }
}
