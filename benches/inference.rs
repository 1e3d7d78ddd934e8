//! Prefill and decode throughput on a SmolLM2-135M-shaped model with random weights
//! (d 576, 30 layers, 9 query / 3 KV heads, FFN 1536, vocab 49152, tied), f32 on the CPU device.
//!
//! `cargo bench --bench inference` — numbers in docs/PERFORMANCE.md.
use allam::model::generate::{GenerationConfig, generate};
use allam::model::{Llama, LlamaConfig, TokenBatch};
use burn::tensor::Device;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn smollm2_shape() -> LlamaConfig {
    LlamaConfig::new(49152, 576, 1536, 30, 9, 3, 64)
        .with_tie_word_embeddings(true)
        .with_rope_theta(100000.0)
        .with_rms_norm_eps(1e-5)
}

fn prompt(len: usize) -> Vec<u32> {
    (0..len as u32).map(|i| (i * 7919) % 49152).collect()
}

fn bench(c: &mut Criterion) {
    let model: Llama = smollm2_shape().init(&Device::flex());
    let mut group = c.benchmark_group("smollm2-135m-shape");
    group.sample_size(10);

    let prefill = prompt(128);
    group.throughput(Throughput::Elements(prefill.len() as u64));
    group.bench_function("prefill_128_tokens", |b| {
        b.iter(|| {
            let logits = model.forward(&TokenBatch::single(&prefill)).unwrap();
            logits.into_data()
        })
    });

    let new_tokens = 32;
    let mut config = GenerationConfig::greedy(new_tokens);
    config.eos_token_ids = vec![u32::MAX];
    group.throughput(Throughput::Elements(new_tokens as u64));
    group.bench_function("decode_32_tokens_after_32", |b| {
        b.iter(|| generate(&model, &[prompt(32)], &config, |_, _| false).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
