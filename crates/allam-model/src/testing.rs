//! Helpers of this crate's unit tests for matrix products.
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A `[rows, cols]` matrix of seeded uniform values in [-1, 1) on the CPU, with its host copy.
pub(crate) fn matrix(rows: usize, cols: usize, seed: u64) -> (Tensor<2>, Vec<f32>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let values: Vec<f32> = (0..rows * cols).map(|_| rng.random_range(-1.0..1.0)).collect();
    let tensor = Tensor::from_data(TensorData::new(values.clone(), [rows, cols]), &Device::flex());
    (tensor, values)
}

/// Asserts `got` = `x · w` (`x` host row-major `[n, k]`, `w(p, j)` the weight's element) up to
/// float rounding: any summation order of a length-k dot product is within k·ε·Σ|x·w| of the
/// exact value, so this bound holds for every kernel while a wrong block or column is off by O(1).
pub(crate) fn assert_product(
    got: &Tensor<2>,
    x: &[f32],
    w: impl Fn(usize, usize) -> f32,
    [n, k, m]: [usize; 3],
) {
    assert_eq!(got.dims(), [n, m]);
    let got: Vec<f32> = got.clone().into_data().try_into_vec().unwrap();
    for i in 0..n {
        for j in 0..m {
            let terms = (0..k).map(|p| f64::from(x[i * k + p]) * f64::from(w(p, j)));
            let exact: f64 = terms.clone().sum();
            let bound = k as f64 * f64::from(f32::EPSILON) * terms.map(f64::abs).sum::<f64>();
            let error = (f64::from(got[i * m + j]) - exact).abs();
            assert!(
                error <= bound,
                "[{i}, {j}]: {} vs {exact} (bound {bound})",
                got[i * m + j]
            );
        }
    }
}
