//! The hot kernels of training and decoding, one at a time, on the CPU device (f32):
//!
//! - `sgemm_1024`: a 1024³ matrix product — the peak that MFU figures are measured against
//!   (throughput in FLOP: 2·1024³ per iteration);
//! - `head_2048x512x32000`: the untied output head of the 56M training config (2,048 tokens);
//! - `ffn_up_2048x512x1376`, `ffn_dx_2048x1376x512t`, `ffn_dw_512tx2048x1376`: one FFN projection
//!   of that config forward and its two backward products, which multiply by transposed views
//!   (`t` marks the transposed operand) — the shapes `scripts/roofline.py sgemm` runs through
//!   PyTorch, numpy's OpenBLAS and any `cblas_sgemm` library;
//! - `head_dx_2048x32000x512t`, `prefill_gate_512x576x1536`: the head's input gradient, and one
//!   SmolLM2 projection of a 512-token prefill;
//! - `matvec_576x1536`: one decode-step projection of the SmolLM2 shape (a single row);
//! - `softmax_causal_9x512x512`: masked attention probabilities for one layer of a 512-token prefill;
//! - `attention_{composed,fused}_9x512x512`: that layer's whole attention (9 query heads on 3 KV
//!   heads, head_dim 64): the differentiable ops training uses, and Burn's fused op that inference
//!   uses on the CPU;
//! - `rms_norm_2048x512`: the norm of a training step's activations.
//!
//! `cargo bench --bench kernels` — numbers in docs/PERFORMANCE.md.
use burn::nn::RmsNormConfig;
use burn::tensor::activation::softmax;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Distribution, Tensor};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

fn bench(c: &mut Criterion) {
    let device = Device::flex();
    let mut group = c.benchmark_group("kernels");
    group.sample_size(10);

    let (a, b) = (random([1024, 1024], &device), random([1024, 1024], &device));
    group.throughput(Throughput::Elements(2 * 1024 * 1024 * 1024));
    group.bench_function("sgemm_1024", |bench| {
        bench.iter(|| a.clone().matmul(b.clone()).into_data())
    });

    let (x, w) = (random([2048, 512], &device), random([512, 32000], &device));
    group.throughput(Throughput::Elements(2 * 2048 * 512 * 32000));
    group.bench_function("head_2048x512x32000", |bench| {
        bench.iter(|| x.clone().matmul(w.clone()).into_data())
    });

    // The FFN products of a training step, and the backward products through transposed views
    // (as Burn's autodiff forms them: `grad · wᵀ` and `xᵀ · grad`).
    // (name, lhs shape, rhs shape, lhs transposed, rhs transposed)
    type Product = (&'static str, [usize; 2], [usize; 2], bool, bool);
    let products: [Product; 5] = [
        ("ffn_up_2048x512x1376", [2048, 512], [512, 1376], false, false),
        ("ffn_dx_2048x1376x512t", [2048, 1376], [512, 1376], false, true),
        ("ffn_dw_512tx2048x1376", [2048, 512], [2048, 1376], true, false),
        (
            "head_dx_2048x32000x512t",
            [2048, 32000],
            [512, 32000],
            false,
            true,
        ),
        ("prefill_gate_512x576x1536", [512, 576], [576, 1536], false, false),
    ];
    for (name, lhs_shape, rhs_shape, lhs_t, rhs_t) in products {
        let (lhs, rhs) = (random(lhs_shape, &device), random(rhs_shape, &device));
        let (lhs, rhs) = (
            if lhs_t { lhs.transpose() } else { lhs },
            if rhs_t { rhs.transpose() } else { rhs },
        );
        let [m, k] = lhs.dims();
        let n = rhs.dims()[1];
        group.throughput(Throughput::Elements(2 * (m * k * n) as u64));
        group.bench_function(name, |bench| {
            bench.iter(|| lhs.clone().matmul(rhs.clone()).into_data())
        });
    }

    let (row, w) = (random([1, 576], &device), random([576, 1536], &device));
    group.throughput(Throughput::Elements(2 * 576 * 1536));
    group.bench_function("matvec_576x1536", |bench| {
        bench.iter(|| row.clone().matmul(w.clone()).into_data())
    });

    let scores = random([1, 9, 512, 512], &device);
    let causal: Vec<f32> = (0..512 * 512)
        .map(|i| {
            if i % 512 <= i / 512 {
                0.0
            } else {
                f32::NEG_INFINITY
            }
        })
        .collect();
    let bias = Tensor::<2>::from_data(burn::tensor::TensorData::new(causal, [512, 512]), &device)
        .reshape([1, 1, 512, 512]);
    group.throughput(Throughput::Elements(9 * 512 * 512));
    group.bench_function("softmax_causal_9x512x512", |bench| {
        bench.iter(|| softmax(scores.clone() + bias.clone(), 3).into_data())
    });

    let q = random([1, 9, 512, 64], &device);
    let (k, v) = (random([1, 3, 512, 64], &device), random([1, 3, 512, 64], &device));
    group.bench_function("attention_composed_9x512x512", |bench| {
        bench.iter(|| {
            // As in `allam_model::Attention` under autodiff: query heads folded per KV head.
            let scores = q
                .clone()
                .reshape([1, 3, 3 * 512, 64])
                .matmul(k.clone().swap_dims(2, 3));
            let scores = scores.mul_scalar(0.125).reshape([1, 3, 3, 512, 512]) + bias.clone().unsqueeze();
            let probs = softmax(scores, 4).reshape([1, 3, 3 * 512, 512]);
            probs.matmul(v.clone()).into_data()
        })
    });
    let options = AttentionModuleOptions {
        scale: Some(0.125),
        softcap: None,
        is_causal: false,
    };
    group.bench_function("attention_fused_9x512x512", |bench| {
        bench.iter(|| {
            let bias = bias.clone().expand([1, 9, 512, 512]);
            attention(q.clone(), k.clone(), v.clone(), None, Some(bias), options).into_data()
        })
    });

    let norm = RmsNormConfig::new(512).init(&device);
    let h = random([8, 256, 512], &device);
    group.throughput(Throughput::Elements(2048 * 512));
    group.bench_function("rms_norm_2048x512", |bench| {
        bench.iter(|| norm.forward(h.clone()).into_data())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
