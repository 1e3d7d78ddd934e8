//! Attention for inference on the CPU, skipping the keys the mask hides.
//!
//! Burn's Flex backend computes every head's whole `[queries, keys]` score matrix and then
//! masks, exponentiates and normalises it element by element in one scalar loop: in a 512-token
//! prefill that loop was ≈ 21 % of the worker threads' samples and the attention 29 %
//! (docs/PERFORMANCE.md). Here the queries of each head are taken in blocks of [`QUERY_BLOCK`]
//! rows, and a block multiplies only the keys up to the last one its mask lets through — half of
//! the products under a causal mask — with `gemm` on the tensors' own storage; the softmax runs
//! over those keys only. Blocks of all heads run on the rayon pool (9 heads on 2 threads would
//! leave one idle for a ninth of the time). Grouped-query heads read their shared K/V head in place.
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use super::storage::{Strided, flex_f32, strided};

/// Query rows per task.
const QUERY_BLOCK: usize = 64;

/// `softmax(q · kᵀ · scale + bias) · v` per head, for `q`: `[batch, heads, queries, head_dim]`,
/// `k`, `v`: `[batch, kv_heads, keys, head_dim]` and the additive `bias`: `[batch, 1, queries,
/// keys]` (0 or −∞; a row that hides every key gives zeros, as Burn's fused kernel does).
/// `None` — nothing computed — unless all four are plain f32 tensors on the Flex backend whose
/// `q`, `k` and `v` rows are contiguous (`head_dim` stride 1), and there is more than one query:
/// a decode step's single query is left to Flex's kernel, a little faster there (our blocks
/// cost 1–4 % of decode speed, `allam bench decode`).
pub(crate) fn attention(
    q: &Tensor<4>,
    k: &Tensor<4>,
    v: &Tensor<4>,
    bias: &Tensor<4>,
    scale: f32,
) -> Option<Tensor<4>> {
    let primitives = [flex_f32(q)?, flex_f32(k)?, flex_f32(v)?, flex_f32(bias)?];
    let [q4, k4, v4, b4] = [0, 1, 2, 3].map(|i| strided::<4>(&primitives[i]));
    let (q4, k4, v4, b4) = (q4?, k4?, v4?, b4?);
    let [batch, heads, queries, dim] = q4.shape;
    let [_, kv_heads, keys, _] = k4.shape;
    let fits = queries > 1
        && k4.shape == v4.shape
        && k4.shape[0] == batch
        && k4.shape[3] == dim
        && kv_heads > 0
        && heads % kv_heads == 0
        && b4.shape == [batch, 1, queries, keys]
        && [&q4, &k4, &v4].iter().all(|t| t.strides[3] == 1);
    if !fits {
        return None;
    }
    let groups = heads / kv_heads;
    let mut out = vec![0.0f32; batch * heads * queries * dim];
    out.par_chunks_mut(queries * dim)
        .enumerate()
        .for_each(|(bh, head_out)| {
            let (b, h) = (bh / heads, bh % heads);
            head_out
                .par_chunks_mut(QUERY_BLOCK * dim)
                .enumerate()
                .for_each(|(block, block_out)| {
                    let rows = block * QUERY_BLOCK..(block * QUERY_BLOCK + QUERY_BLOCK).min(queries);
                    let task = Task {
                        q: &q4,
                        k: &k4,
                        v: &v4,
                        bias: &b4,
                        b,
                        h,
                        kv: h / groups,
                        scale,
                    };
                    task.run(rows, block_out);
                });
        });
    let data = TensorData::new(out, [batch, heads, queries, dim]);
    Some(Tensor::from_data(data, &q.device()))
}

/// One block of query rows of one head.
struct Task<'a, 'b> {
    q: &'b Strided<'a, 4>,
    k: &'b Strided<'a, 4>,
    v: &'b Strided<'a, 4>,
    bias: &'b Strided<'a, 4>,
    b: usize,
    h: usize,
    kv: usize,
    scale: f32,
}

impl Task<'_, '_> {
    /// Writes the attention output of query rows `rows` into `out` (`[rows, head_dim]`).
    fn run(&self, rows: std::ops::Range<usize>, out: &mut [f32]) {
        let (dim, keys) = (self.q.shape[3], self.k.shape[2]);
        let bias = |i: usize, j: usize| self.bias.data[self.bias.index([self.b, 0, i, j])];
        // Keys after the last one any row of the block can see are never multiplied.
        let seen = rows
            .clone()
            .map(|i| {
                (0..keys)
                    .rev()
                    .find(|&j| bias(i, j) != f32::NEG_INFINITY)
                    .map_or(0, |j| j + 1)
            })
            .max()
            .unwrap_or(0);
        if seen == 0 {
            return; // every key hidden from every row: zeros
        }
        let m = rows.len();
        let mut scores = vec![0.0f32; m * seen];
        let (q0, k0, v0) = (
            self.q.index([self.b, self.h, rows.start, 0]),
            self.k.index([self.b, self.kv, 0, 0]),
            self.v.index([self.b, self.kv, 0, 0]),
        );
        // SAFETY: `strided` checked that every element within each shape lies inside its
        // storage; the products below stay within rows `rows`, keys `..seen` and `head_dim`.
        unsafe {
            gemm::gemm(
                m,
                seen,
                dim,
                scores.as_mut_ptr(),
                1,
                seen as isize,
                false,
                self.q.data[q0..].as_ptr(),
                1,
                self.q.strides[2] as isize,
                self.k.data[k0..].as_ptr(),
                self.k.strides[2] as isize,
                1,
                0.0,
                self.scale,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        for (row, i) in scores.chunks_exact_mut(seen).zip(rows.clone()) {
            let mut max = f32::NEG_INFINITY;
            for (j, s) in row.iter_mut().enumerate() {
                *s += bias(i, j);
                max = max.max(*s);
            }
            if max == f32::NEG_INFINITY {
                row.fill(0.0);
                continue;
            }
            let mut sum = 0.0f32;
            for s in row.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            let inverse = 1.0 / sum;
            row.iter_mut().for_each(|s| *s *= inverse);
        }
        // SAFETY: as above; `out` holds `m × head_dim` values.
        unsafe {
            gemm::gemm(
                m,
                dim,
                seen,
                out.as_mut_ptr(),
                1,
                dim as isize,
                false,
                scores.as_ptr(),
                1,
                seen as isize,
                self.v.data[v0..].as_ptr(),
                1,
                self.v.strides[2] as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::matrix;
    use burn::tensor::{DType, Device};

    /// The attention of the module's doc computed on the host in f64, `[batch, heads, queries,
    /// dim]` row-major, from row-major host copies.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        bias: &[f32],
        [batch, heads, kv_heads, queries, keys, dim]: [usize; 6],
        scale: f64,
    ) -> Vec<f64> {
        let mut out = vec![0.0; batch * heads * queries * dim];
        for b in 0..batch {
            for h in 0..heads {
                let kv = h / (heads / kv_heads);
                for i in 0..queries {
                    let qi = &q[((b * heads + h) * queries + i) * dim..][..dim];
                    let scores: Vec<f64> = (0..keys)
                        .map(|j| {
                            let kj = &k[((b * kv_heads + kv) * keys + j) * dim..][..dim];
                            let dot: f64 = qi
                                .iter()
                                .zip(kj)
                                .map(|(a, c)| f64::from(*a) * f64::from(*c))
                                .sum();
                            dot * scale + f64::from(bias[(b * queries + i) * keys + j])
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    if max == f64::NEG_INFINITY {
                        continue;
                    }
                    let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let sum: f64 = weights.iter().sum();
                    for (j, w) in weights.iter().enumerate() {
                        let vj = &v[((b * kv_heads + kv) * keys + j) * dim..][..dim];
                        for c in 0..dim {
                            out[((b * heads + h) * queries + i) * dim + c] += w / sum * f64::from(vj[c]);
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn equals_the_reference_with_grouped_heads_padding_and_a_cache() {
        // 2 sequences, 4 query heads on 2 KV heads, 70 queries (two blocks) after 5 cached keys.
        let (batch, heads, kv_heads, queries, dim) = (2, 4, 2, 70, 16);
        let keys = queries + 5;
        // q as the model makes it: [batch, queries, heads, dim] with heads and queries swapped (a view).
        let (q, qs) = matrix(batch * queries, heads * dim, 1);
        let q = q.reshape([batch, queries, heads, dim]).swap_dims(1, 2);
        let qs: Vec<f32> = (0..batch * heads * queries * dim)
            .map(|n| {
                let (b, h, i, c) = (
                    n / (heads * queries * dim),
                    n / (queries * dim) % heads,
                    n / dim % queries,
                    n % dim,
                );
                qs[((b * queries + i) * heads + h) * dim + c]
            })
            .collect();
        let (k, ks) = matrix(batch * kv_heads * keys, dim, 2);
        let (v, vs) = matrix(batch * kv_heads * keys, dim, 3);
        let (k, v) = (
            k.reshape([batch, kv_heads, keys, dim]),
            v.reshape([batch, kv_heads, keys, dim]),
        );
        // Causal after the cache; sequence 1 is left-padded by 7 positions, and its first padded
        // query sees nothing at all.
        let bias: Vec<f32> = (0..batch * queries * keys)
            .map(|n| {
                let (b, i, j) = (n / (queries * keys), n / keys % queries, n % keys);
                let hidden = j > i + 5 || (b == 1 && (j < 7 || i == 0));
                if hidden { f32::NEG_INFINITY } else { 0.0 }
            })
            .collect();
        let bias_tensor =
            Tensor::<1>::from_data(TensorData::new(bias.clone(), [bias.len()]), &Device::flex())
                .reshape([batch, 1, queries, keys]);
        let shape = [batch, heads, kv_heads, queries, keys, dim];
        let want = reference(&qs, &ks, &vs, &bias, shape, 0.25);
        let got: Vec<f32> = attention(&q, &k, &v, &bias_tensor, 0.25)
            .expect("f32 tensors on Flex take the kernel")
            .into_data()
            .try_into_vec()
            .unwrap();
        assert_eq!(got.len(), want.len());
        for (n, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((f64::from(*g) - w).abs() < 1e-5, "element {n}: {g} vs {w}");
        }
        // The fully hidden row is zeros; a 10 % error in the scale would not pass the loop above.
        let row = (heads * queries) * dim; // sequence 1, head 0, query 0
        assert!(got[row..row + dim].iter().all(|x| *x == 0.0));
    }

    #[test]
    fn other_tensors_are_left_to_burn() {
        let (t, _) = matrix(4, 8, 4);
        let t = t.reshape([1, 1, 4, 8]);
        let bias = Tensor::<4>::zeros([1, 1, 4, 4], &Device::flex());
        assert!(attention(&t, &t, &t, &bias, 1.0).is_some());
        let half = t.clone().cast(DType::BF16);
        assert!(attention(&half, &t, &t, &bias, 1.0).is_none());
        let tracked = t.clone().autodiff().require_grad();
        assert!(attention(&tracked, &t, &t, &bias, 1.0).is_none());
        let one_query = t.clone().slice([0..1, 0..1, 0..1, 0..8]);
        let one_bias = Tensor::<4>::zeros([1, 1, 1, 4], &Device::flex());
        assert!(attention(&one_query, &t, &t, &one_bias, 1.0).is_none());
        let wrong_bias = Tensor::<4>::zeros([1, 1, 4, 5], &Device::flex());
        assert!(attention(&t, &t, &t, &wrong_bias, 1.0).is_none());
    }
}
