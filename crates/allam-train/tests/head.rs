//! The chunked output head and cross-entropy against the composed path (all logits at once):
//! the same loss, per-row sums and gradients of every parameter, for tied and untied heads, with
//! ignored positions, at chunk sizes that split rows, on every test device.
use allam_data::IGNORE_INDEX;
use allam_model::{Llama, LlamaConfig, TokenBatch};
use allam_train::loss::language_model_loss;
use allam_train::params::{GradMap, trainable};
use burn::tensor::Device;

const VOCAB: usize = 61;

fn model(tied: bool, device: &Device) -> Llama {
    let config = LlamaConfig::new(VOCAB, 16, 32, 2, 4, 2, 4).with_tie_word_embeddings(tied);
    trainable(allam_train::params::seeded_init(config.init(device), 0.2, 7))
}

/// Two packed rows of 9 tokens (two documents in the second) with some positions ignored.
fn batch() -> (TokenBatch, Vec<i32>) {
    let ids: Vec<u32> = (0..18).map(|i| (i * 17 + 3) % VOCAB as u32).collect();
    let documents = vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1];
    let mut labels: Vec<i32> = (0..18).map(|i| ((i * 29 + 5) % VOCAB) as i32).collect();
    for ignored in [8, 12, 17, 3] {
        labels[ignored] = IGNORE_INDEX;
    }
    (TokenBatch::packed(2, 9, ids, documents).unwrap(), labels)
}

fn host(t: burn::tensor::Tensor<1>) -> Vec<f32> {
    t.without_autodiff()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

/// Every parameter's gradient, by name.
type Grads = Vec<(String, Vec<f32>)>;

/// Loss, per-row sums and every gradient.
fn run(model: &Llama, chunk: usize) -> (Vec<f32>, Vec<f32>, Grads) {
    let (tokens, labels) = batch();
    let loss = language_model_loss(model, model.hidden_states(&tokens).unwrap(), &labels, chunk).unwrap();
    let grads = GradMap::collect(model, loss.sum.backward());
    let grads = grads
        .0
        .into_iter()
        .map(|(name, flat)| (name, host(flat.values)))
        .collect();
    (host(loss.sum), host(loss.per_row), grads)
}

fn close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{what}[{i}]: {x} vs {y}");
    }
}

#[test]
fn the_chunked_head_gives_the_composed_loss_and_gradients() {
    let devices = allam_model::device::test_devices();
    for (name, device) in devices {
        for tied in [false, true] {
            let model = model(tied, &device);
            let (loss, per_row, grads) = run(&model, 0);
            assert!(loss[0] > 1.0, "a loss worth comparing: {loss:?}");
            // 1: a chunk per token; 4 and 5: chunks across the row boundary; 1000: one chunk.
            for chunk in [1, 4, 5, 1000] {
                let what = format!("{name}, tied {tied}, chunk {chunk}");
                let (l, r, g) = run(&model, chunk);
                close(&l, &loss, &format!("{what}: loss"));
                close(&r, &per_row, &format!("{what}: per-row"));
                assert_eq!(g.len(), grads.len(), "{what}: the same parameters get gradients");
                for ((n, got), (m, want)) in g.iter().zip(&grads) {
                    assert_eq!(n, m);
                    assert!(want.iter().any(|v| *v != 0.0), "{what}: {n} has a gradient");
                    close(got, want, &format!("{what}: {n}"));
                }
            }
        }
    }
}

#[test]
fn a_label_outside_the_vocabulary_is_an_error_on_both_paths() {
    let device = allam_model::device::select("cpu").unwrap();
    let model = model(false, &device);
    let (tokens, mut labels) = batch();
    labels[0] = VOCAB as i32;
    for chunk in [0, 4] {
        let hidden = model.hidden_states(&tokens).unwrap();
        let error = language_model_loss(&model, hidden, &labels, chunk)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains(&format!("label {VOCAB}")), "{error}");
    }
}
