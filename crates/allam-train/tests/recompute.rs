//! Activation checkpointing by layer: the gradients of a step recomputed layer by layer equal
//! those of the plain backward pass (untied and tied heads, both head paths, every test device).
use allam_data::IGNORE_INDEX;
use allam_model::{Llama, LlamaConfig, TokenBatch};
use allam_train::loss::language_model_loss;
use allam_train::params::{GradMap, trainable};
use allam_train::recompute::checkpointed_gradients;
use allam_train::{LossOutput, Objective};
use burn::tensor::{Device, Tensor};

const VOCAB: usize = 53;

/// One fixed micro-batch: two packed rows, some positions ignored.
struct Fixed {
    chunk: usize,
}

impl Objective for Fixed {
    type Batch = (TokenBatch, Vec<i32>);

    fn next_batch(&mut self, _rows: usize) -> allam_train::Result<Self::Batch> {
        unreachable!("the test calls loss directly")
    }
    fn units(&self, batch: &Self::Batch) -> usize {
        batch.1.iter().filter(|&&l| l != IGNORE_INDEX).count()
    }
    fn tokens(&self, batch: &Self::Batch) -> usize {
        batch.1.len()
    }
    fn model_input(&self, batch: &Self::Batch) -> Option<allam_train::Result<TokenBatch>> {
        Some(Ok(batch.0.clone()))
    }
    fn loss_from_hidden(
        &self,
        model: &Llama,
        hidden: Tensor<3>,
        batch: &Self::Batch,
    ) -> allam_train::Result<LossOutput> {
        let loss = language_model_loss(model, hidden, &batch.1, self.chunk)?;
        Ok(LossOutput {
            loss_sum: loss.sum,
            metrics: Default::default(),
        })
    }
    fn state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    fn restore(&mut self, _state: &serde_json::Value) -> allam_train::Result<()> {
        Ok(())
    }
}

fn batch() -> (TokenBatch, Vec<i32>) {
    let ids: Vec<u32> = (0..20).map(|i| (i * 11 + 2) % VOCAB as u32).collect();
    let documents = [vec![0; 10], vec![0; 4], vec![1; 6]].concat();
    let mut labels: Vec<i32> = (0..20).map(|i| ((i * 7 + 1) % VOCAB) as i32).collect();
    labels[9] = IGNORE_INDEX;
    labels[13] = IGNORE_INDEX;
    (TokenBatch::packed(2, 10, ids, documents).unwrap(), labels)
}

fn host(t: Tensor<1>) -> Vec<f32> {
    t.without_autodiff()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

fn model(tied: bool, device: &Device) -> Llama {
    let config = LlamaConfig::new(VOCAB, 16, 32, 3, 4, 2, 4)
        .with_tie_word_embeddings(tied)
        .with_qkv_bias(true);
    trainable(allam_train::params::seeded_init(config.init(device), 0.2, 5))
}

#[test]
fn layer_by_layer_gradients_equal_the_plain_backward_pass() {
    for (name, device) in allam_model::device::test_devices() {
        for (tied, chunk) in [(false, 0), (false, 7), (true, 7), (true, 0)] {
            let what = format!("{name}, tied {tied}, head chunk {chunk}");
            let model = model(tied, &device);
            let objective = Fixed { chunk };
            let batch = batch();
            let units = objective.units(&batch);
            let out = objective.loss(&model, &batch).unwrap();
            let scaled = out.loss_sum.div_scalar(units as f64);
            let plain_loss = host(scaled.clone())[0];
            let plain = GradMap::collect(&model, scaled.backward());
            let (recomputed, loss, _) = checkpointed_gradients(&objective, &model, &batch, units).unwrap();
            assert!((host(loss)[0] - plain_loss).abs() < 1e-6, "{what}: loss");
            let names = |g: &GradMap| g.0.keys().cloned().collect::<Vec<_>>();
            assert_eq!(names(&recomputed), names(&plain), "{what}: the same parameters");
            assert!(
                names(&plain).len() > 20,
                "{what}: every layer's weights and biases"
            );
            for (n, want) in &plain.0 {
                let (got, want) = (host(recomputed.0[n].values.clone()), host(want.values.clone()));
                assert!(want.iter().any(|v| *v != 0.0), "{what}: {n} has a gradient");
                for (x, y) in got.iter().zip(&want) {
                    assert!((x - y).abs() <= 1e-6 * (1.0 + y.abs()), "{what}: {n}: {x} vs {y}");
                }
            }
        }
    }
}
