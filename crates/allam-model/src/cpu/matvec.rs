//! Decode-sized products read straight from the CPU backend's memory.
//!
//! A decode step multiplies one row per sequence by every weight matrix once: it is bound by how
//! fast the weights stream from memory, not by arithmetic. Burn's Flex backend runs such a
//! product through `gemm`'s matrix-vector path at ≈ 17 GB/s, of the ≈ 34 GB/s that this 2-core
//! machine reads (`scripts/roofline.py bandwidth`; docs/PERFORMANCE.md). Here the f32 weights are
//! read in place from the Flex tensors' storage (`Tensor::try_into_primitive`, no copy), each
//! thread streaming one contiguous stretch of memory, which the hardware prefetchers follow:
//!
//! - a row-major weight `[d_in, d_out]` (a `Linear`'s) is cut into bands of rows; a band adds
//!   `x[i] · W[i, :]` over its rows `i`, four rows per pass, into partial sums (`d_out` values
//!   per row of `x`, in L1 or L2), and the bands' partial sums are added at the end;
//! - a transposed view (the tied head, `embedding[vocab, hidden]ᵀ`) is cut into bands of output
//!   columns; each output is the dot product of `x` with one contiguous embedding row.
//!
//! The bands of all the matrices of a group (q/k/v, gate/up) run on the rayon pool as one
//! parallel section. Anything else — another backend or dtype, an autodiff tensor, more than
//! [`MAX_ROWS`] rows, a layout with neither stride 1 — returns `None`, and the caller multiplies
//! through Burn as before.
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use super::storage::{Strided, flex_f32, strided};

/// Inputs with more rows than this are compute-bound products for the backend's gemm.
pub(crate) const MAX_ROWS: usize = 8;
/// Weights per band: 256 KiB of f32 (a band streams at least this much contiguous memory, and a
/// SmolLM2 layer's products give the pool a few dozen bands).
const BAND_ELEMENTS: usize = 64 * 1024;

/// A weight or input as a 2-D view of its storage: `shape` `[rows, cols]`, `strides` likewise.
type View<'a> = Strided<'a, 2>;

/// `x · weight` for every weight of `weights` (each `[d_in, d_out]`, any strides), as one parallel
/// section; `None` where the module's conditions do not hold (then nothing was computed).
pub(crate) fn products(x: &Tensor<2>, weights: &[Tensor<2>]) -> Option<Vec<Tensor<2>>> {
    let [rows, d_in] = x.dims();
    if rows == 0 || rows > MAX_ROWS || weights.is_empty() {
        return None;
    }
    let x_primitive = flex_f32(x)?;
    let x_view = strided::<2>(&x_primitive)?;
    // The rows of x, contiguous (a few KB).
    let x_rows: Vec<f32> = (0..rows)
        .flat_map(|r| (0..d_in).map(move |i| (r, i)))
        .map(|(r, i)| x_view.data[x_view.index([r, i])])
        .collect();
    let primitives = weights.iter().map(flex_f32).collect::<Option<Vec<_>>>()?;
    let views = primitives.iter().map(strided::<2>).collect::<Option<Vec<_>>>()?;
    if views
        .iter()
        .any(|w| w.shape[0] != d_in || (w.strides[1] != 1 && w.strides[0] != 1))
    {
        return None;
    }
    let bands: Vec<Band> = views
        .iter()
        .enumerate()
        .flat_map(|(m, w)| Band::cut(m, w))
        .collect();
    let results: Vec<Vec<f32>> = bands
        .par_iter()
        .map(|band| band.product(&x_rows, rows, &views[band.matrix]))
        .collect();
    // Row bands hold partial sums of the whole `[rows, d_out]`; column bands hold their columns.
    let mut outputs: Vec<Vec<f32>> = views.iter().map(|w| vec![0.0; rows * w.shape[1]]).collect();
    for (band, result) in bands.iter().zip(&results) {
        let (out, d_out) = (&mut outputs[band.matrix], views[band.matrix].shape[1]);
        if band.over_rows {
            out.iter_mut().zip(result).for_each(|(o, r)| *o += r);
        } else {
            let width = band.end - band.start;
            for r in 0..rows {
                out[r * d_out + band.start..r * d_out + band.end]
                    .copy_from_slice(&result[r * width..(r + 1) * width]);
            }
        }
    }
    let device = x.device();
    Some(
        outputs
            .into_iter()
            .zip(&views)
            .map(|(values, w)| Tensor::from_data(TensorData::new(values, [rows, w.shape[1]]), &device))
            .collect(),
    )
}

/// One thread's share of one matrix: rows `start..end` of a row-major weight (`over_rows`), or
/// output columns `start..end` of a transposed one.
struct Band {
    matrix: usize,
    over_rows: bool,
    start: usize,
    end: usize,
}

impl Band {
    /// The bands of matrix `matrix`, each about [`BAND_ELEMENTS`] weights (row bands a multiple
    /// of four rows, for the four-row passes).
    fn cut(matrix: usize, w: &View) -> impl Iterator<Item = Band> {
        let over_rows = w.strides[1] == 1;
        let [rows, cols] = w.shape;
        let (length, line) = if over_rows { (rows, cols) } else { (cols, rows) };
        let mut step = BAND_ELEMENTS.div_ceil(line.max(1)).max(1);
        if over_rows {
            step = step.next_multiple_of(4);
        }
        (0..length.div_ceil(step)).map(move |b| Band {
            matrix,
            over_rows,
            start: b * step,
            end: ((b + 1) * step).min(length),
        })
    }

    /// This band's share of `x · w`: partial sums `[rows, d_out]` of a row band, or the columns
    /// `[rows, end - start]` of a column band.
    fn product(&self, x: &[f32], rows: usize, w: &View) -> Vec<f32> {
        let mut out = vec![
            0.0f32;
            rows * if self.over_rows {
                w.shape[1]
            } else {
                self.end - self.start
            }
        ];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, which is all `band_product_avx2` enables.
            unsafe { band_product_avx2(self, x, rows, w, &mut out) };
            return out;
        }
        band_product(self, x, rows, w, &mut out);
        out
    }
}

/// [`band_product`] compiled for AVX2 (8 lanes) instead of the baseline's SSE2 (4).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn band_product_avx2(band: &Band, x: &[f32], rows: usize, w: &View, out: &mut [f32]) {
    band_product(band, x, rows, w, out)
}

#[inline(always)]
fn band_product(band: &Band, x: &[f32], rows: usize, w: &View, out: &mut [f32]) {
    let [d_in, d_out] = w.shape;
    if band.over_rows {
        // Rows i..i+4 of W at once, into every row of x (the weights are read once).
        let row = |i: usize| &w.data[w.index([i, 0])..w.index([i, 0]) + d_out];
        let mut i = band.start;
        while i + 4 <= band.end {
            let (w0, w1, w2, w3) = (row(i), row(i + 1), row(i + 2), row(i + 3));
            for (r, acc) in out.chunks_exact_mut(d_out).enumerate() {
                let xr = &x[r * d_in + i..r * d_in + i + 4];
                let lanes = acc.iter_mut().zip(w0).zip(w1).zip(w2).zip(w3);
                for ((((a, v0), v1), v2), v3) in lanes {
                    *a += xr[0] * v0 + xr[1] * v1 + xr[2] * v2 + xr[3] * v3;
                }
            }
            i += 4;
        }
        for i in i..band.end {
            let wi = row(i);
            for (r, acc) in out.chunks_exact_mut(d_out).enumerate() {
                let xi = x[r * d_in + i];
                acc.iter_mut().zip(wi).for_each(|(a, v)| *a += xi * v);
            }
        }
    } else {
        // Transposed view: column j of w is contiguous; each output is one dot product.
        let width = band.end - band.start;
        for j in band.start..band.end {
            let column = &w.data[w.index([0, j])..w.index([0, j]) + d_in];
            for r in 0..rows {
                out[r * width + j - band.start] = dot(&x[r * d_in..(r + 1) * d_in], column);
            }
        }
    }
}

/// `Σ a[i]·b[i]` with 16 independent partial sums, so the loop vectorises.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut sums = [0.0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (ac, bc) in a_chunks.zip(b_chunks) {
        for lane in 0..LANES {
            sums[lane] += ac[lane] * bc[lane];
        }
    }
    sums.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_product, matrix};
    use burn::tensor::DType;

    #[test]
    fn row_major_weights_of_a_group() {
        // Widths below, at and across block boundaries; d_in not a multiple of 4.
        let (x, xs) = matrix(3, 98, 1);
        let shapes = [7, 512, 1300];
        let weights: Vec<(Tensor<2>, Vec<f32>)> = shapes
            .iter()
            .enumerate()
            .map(|(s, &n)| matrix(98, n, 10 + s as u64))
            .collect();
        let tensors: Vec<Tensor<2>> = weights.iter().map(|(t, _)| t.clone()).collect();
        let outputs = products(&x, &tensors).expect("f32 Flex tensors take the fast path");
        for ((out, (_, ws)), &n) in outputs.iter().zip(&weights).zip(&shapes) {
            assert_product(out, &xs, |p, j| ws[p * n + j], [3, 98, n]);
        }
    }

    #[test]
    fn a_transposed_table_and_a_sliced_weight() {
        let (x, xs) = matrix(2, 64, 2);
        // embedding [vocab 1030, hidden 64] used as its transpose [64, 1030].
        let (table, ts) = matrix(1030, 64, 3);
        let out = products(&x, &[table.transpose()]).unwrap();
        assert_product(&out[0], &xs, |p, j| ts[j * 64 + p], [2, 64, 1030]);
        // A column slice (offset, row stride wider than the view).
        let (w, ws) = matrix(64, 900, 4);
        let out = products(&x, &[w.slice([0..64, 100..700])]).unwrap();
        assert_product(&out[0], &xs, |p, j| ws[p * 900 + 100 + j], [2, 64, 600]);
    }

    #[test]
    fn other_inputs_are_left_to_burn() {
        let (w, _) = matrix(16, 32, 5);
        let (many, _) = matrix(MAX_ROWS + 1, 16, 6);
        assert!(products(&many, std::slice::from_ref(&w)).is_none());
        let (one, _) = matrix(1, 16, 7);
        let half = one.clone().cast(DType::BF16);
        assert!(products(&half, std::slice::from_ref(&w)).is_none());
        let tracked = one.clone().autodiff().require_grad();
        assert!(products(&tracked, std::slice::from_ref(&w)).is_none());
        // A weight that autodiff tracks: reading its storage would drop its gradient.
        assert!(products(&one, &[w.autodiff().require_grad()]).is_none());
    }
}
