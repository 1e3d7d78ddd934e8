//! AdamW's update as one parallel pass on the CPU.
//!
//! Composed of Burn ops, one AdamW update is a dozen element-wise passes over the parameter
//! (scale the moments, add, square, sqrt, divide, ...), each on one thread of the Flex backend and
//! each writing a fresh tensor: over the 56M model's parameters that is ~2.7 GB of memory traffic
//! per step with the other core idle. Here every element's new value and moments are computed
//! at once, in chunks on the rayon pool, from the same f32 operations in the same order as the
//! composed ops round them ([`Coefficients`] are the scalars as the composed ops convert them), so
//! the result is bit for bit the composed one. Only plain contiguous f32 tensors on the CPU
//! qualify (`allam_model::cpu::with_f32_slice`); anything else takes the composed ops.
use allam_model::cpu::with_f32_slice;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

/// Elements per task: a 576 × 49,152 embedding gives the pool hundreds of tasks, a norm weight one.
const CHUNK: usize = 16 * 1024;

/// The scalars of one update, each rounded to f32 exactly where the composed ops round it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Coefficients {
    /// β₁.
    pub beta1: f32,
    /// 1 − β₁ (computed in f64).
    pub one_minus_beta1: f32,
    /// β₂.
    pub beta2: f32,
    /// 1 − β₂ (computed in f64).
    pub one_minus_beta2: f32,
    /// 1 − lr·λ, when the parameter decays.
    pub decay: Option<f32>,
    /// √(1 − β₂ᵗ).
    pub bias2_sqrt: f32,
    /// ε.
    pub eps: f32,
    /// lr / (1 − β₁ᵗ).
    pub step_size: f32,
}

/// The updated `(value, exp_avg, exp_avg_sq)` of one flattened parameter (`moments` absent on
/// the first step), or `None` — nothing computed — unless every input is a contiguous plain f32
/// tensor on the CPU backend.
pub(crate) fn update(
    value: &Tensor<1>,
    grad: &Tensor<1>,
    moments: Option<(&Tensor<1>, &Tensor<1>)>,
    c: &Coefficients,
) -> Option<(Tensor<1>, Tensor<1>, Tensor<1>)> {
    let n = value.dims()[0];
    if grad.dims()[0] != n || moments.is_some_and(|(m, v)| m.dims()[0] != n || v.dims()[0] != n) {
        return None;
    }
    let outputs = with_f32_slice(value, |p| {
        with_f32_slice(grad, |g| match moments {
            None => Some(run(p, g, None, c)),
            Some((m, v)) => {
                with_f32_slice(m, |m| with_f32_slice(v, |v| run(p, g, Some((m, v)), c))).flatten()
            }
        })
        .flatten()
    })
    .flatten()?;
    let device = value.device();
    let [p, m, v] = outputs.map(|values| Tensor::<1>::from_data(TensorData::new(values, [n]), &device));
    Some((p, m, v))
}

/// The new values, first and second moments.
fn run(p: &[f32], g: &[f32], moments: Option<(&[f32], &[f32])>, c: &Coefficients) -> [Vec<f32>; 3] {
    let n = p.len();
    let (mut new_p, mut new_m, mut new_v) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
    new_p
        .par_chunks_mut(CHUNK)
        .zip(new_m.par_chunks_mut(CHUNK))
        .zip(new_v.par_chunks_mut(CHUNK))
        .enumerate()
        .for_each(|(chunk, ((out_p, out_m), out_v))| {
            let start = chunk * CHUNK;
            for (i, ((op, om), ov)) in out_p.iter_mut().zip(out_m).zip(out_v).enumerate() {
                let k = start + i;
                let gk = g[k];
                // As the composed ops: m·β₁ + g·(1 − β₁), v·β₂ + (g·g)·(1 − β₂).
                let (m, v) = match moments {
                    Some((m, v)) => (
                        m[k] * c.beta1 + gk * c.one_minus_beta1,
                        v[k] * c.beta2 + (gk * gk) * c.one_minus_beta2,
                    ),
                    None => (gk * c.one_minus_beta1, (gk * gk) * c.one_minus_beta2),
                };
                let value = match c.decay {
                    Some(d) => p[k] * d,
                    None => p[k],
                };
                let denom = v.sqrt() / c.bias2_sqrt + c.eps;
                *op = value - (m / denom) * c.step_size;
                *om = m;
                *ov = v;
            }
        });
    [new_p, new_m, new_v]
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;
    use crate::optim::{Moments, composed_adamw};

    fn values(n: usize, seed: u64, scale: f32, positive: bool) -> Vec<f32> {
        let mut rng = allam_io::SplitMix64::new(seed);
        (0..n)
            .map(|_| {
                let u = (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
                let x = if positive { u } else { 2.0 * u - 1.0 };
                x * scale
            })
            .collect()
    }

    fn tensor(v: &[f32]) -> Tensor<1> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &Device::flex())
    }

    fn host(t: &Tensor<1>) -> Vec<f32> {
        t.to_data().convert::<f32>().try_into_vec::<f32>().unwrap()
    }

    fn coefficients(step: i32, decay: bool) -> Coefficients {
        let (b1, b2, lr, wd, eps) = (0.9f64, 0.95f64, 3e-4f64, 0.1f64, 1e-8f64);
        Coefficients {
            beta1: b1 as f32,
            one_minus_beta1: (1.0 - b1) as f32,
            beta2: b2 as f32,
            one_minus_beta2: (1.0 - b2) as f32,
            decay: decay.then_some((1.0 - lr * wd) as f32),
            bias2_sqrt: (1.0 - b2.powi(step)).sqrt() as f32,
            eps: eps as f32,
            step_size: (lr / (1.0 - b1.powi(step))) as f32,
        }
    }

    /// Three steps of both paths on 40,000 elements (not a multiple of the chunk), with and
    /// without decay: the same bits every step, and within f32 rounding of an f64 update.
    #[test]
    fn the_fused_pass_is_the_composed_update_bit_for_bit() {
        let n = 40_000;
        for decay in [true, false] {
            let mut p = values(n, 1, 0.05, false);
            let mut moments: Option<(Vec<f32>, Vec<f32>)> = None;
            let mut reference: Vec<f64> = p.iter().map(|&x| f64::from(x)).collect();
            let (mut m64, mut v64) = (vec![0.0f64; n], vec![0.0f64; n]);
            for step in 1..=3 {
                let g = values(n, 10 + step as u64, 0.3, false);
                let c = coefficients(step, decay);
                let state = moments.as_ref().map(|(m, v)| (tensor(m), tensor(v)));
                let fused = update(&tensor(&p), &tensor(&g), state.as_ref().map(|(m, v)| (m, v)), &c)
                    .expect("plain contiguous f32 on the CPU");
                let composed = composed_adamw(
                    &tensor(&p),
                    tensor(&g),
                    state.map(|(exp_avg, exp_avg_sq)| Moments {
                        step: step as u64 - 1,
                        exp_avg,
                        exp_avg_sq,
                    }),
                    &c,
                );
                for (a, b) in [
                    (&fused.0, &composed.0),
                    (&fused.1, &composed.1),
                    (&fused.2, &composed.2),
                ] {
                    let (a, b) = (host(a), host(b));
                    assert!(
                        a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                        "step {step}"
                    );
                }
                // f64: torch.optim.AdamW's formula.
                let (b1, b2, lr, wd) = (0.9f64, 0.95f64, 3e-4f64, 0.1f64);
                for k in 0..n {
                    let gk = f64::from(g[k]);
                    m64[k] = b1 * m64[k] + (1.0 - b1) * gk;
                    v64[k] = b2 * v64[k] + (1.0 - b2) * gk * gk;
                    if decay {
                        reference[k] *= 1.0 - lr * wd;
                    }
                    let denom = (v64[k] / (1.0 - b2.powi(step))).sqrt() + 1e-8;
                    reference[k] -= lr * (m64[k] / (1.0 - b1.powi(step))) / denom;
                }
                p = host(&fused.0);
                let worst = p
                    .iter()
                    .zip(&reference)
                    .map(|(&x, &r)| (f64::from(x) - r).abs())
                    .fold(0.0, f64::max);
                // A step moves a weight by up to lr = 3e-4; f32 keeps weights of 0.05 to ~4e-9 a
                // step, and the f32 moments add a little: a wrong term would be off by ~1e-4.
                assert!(worst < 5e-8, "step {step}: {worst}");
                moments = Some((host(&fused.1), host(&fused.2)));
            }
        }
    }

    #[test]
    fn tensors_it_cannot_read_in_place_are_left_to_the_composed_ops() {
        let p = tensor(&values(8, 1, 1.0, false));
        let g = tensor(&values(8, 2, 1.0, false));
        let c = coefficients(1, true);
        assert!(update(&p, &g, None, &c).is_some());
        assert!(update(&p.clone().autodiff(), &g, None, &c).is_none());
        assert!(update(&p, &tensor(&values(9, 2, 1.0, false)), None, &c).is_none());
        let strided: Tensor<1> = Tensor::<2>::from_data(
            TensorData::new(values(16, 3, 1.0, false), [8, 2]),
            &Device::flex(),
        )
        .slice([0..8, 0..1])
        .reshape([8]);
        // A strided view is refused, a contiguous copy of it read: either way the same values.
        if let Some((value, ..)) = update(&strided, &g, None, &c) {
            let composed = composed_adamw(&strided, g.clone(), None, &c).0;
            assert_eq!(host(&value), host(&composed));
        }
    }
}
