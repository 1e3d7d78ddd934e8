//! DPO and SFT through the chunked output head: the same loss, metrics and gradients as with
//! every position's logits at once (the DPO loss is non-linear in the log-probabilities, so the
//! chunked path backpropagates it to them first; see `allam_train::head`).
use allam_align::{DpoConfig, DpoExample, DpoLossKind, DpoObjective, Reference};
use allam_model::{Llama, LlamaConfig};
use allam_train::Objective;
use allam_train::params::{GradMap, trainable};
use burn::tensor::Tensor;

const VOCAB: usize = 47;

fn model() -> Llama {
    let device = allam_model::device::select("cpu").unwrap();
    let config = LlamaConfig::new(VOCAB, 16, 32, 2, 4, 2, 4).with_tie_word_embeddings(false);
    trainable(allam_train::params::seeded_init(config.init(&device), 0.2, 11))
}

/// Three pairs of different lengths (so rows are padded) with prompts of 2 to 4 tokens.
fn examples() -> Vec<DpoExample> {
    let pair = |prompt: usize, chosen: usize, rejected: usize, seed: u32| {
        let ids = |n: usize, k: u32| {
            (0..n as u32)
                .map(|i| (i * 13 + k * 7 + 1) % VOCAB as u32)
                .collect::<Vec<_>>()
        };
        let mask = |n: usize| [vec![false; prompt], vec![true; n - prompt]].concat();
        DpoExample {
            chosen_ids: ids(prompt + chosen, seed),
            chosen_mask: mask(prompt + chosen),
            rejected_ids: ids(prompt + rejected, seed + 1),
            rejected_mask: mask(prompt + rejected),
        }
    };
    vec![pair(2, 5, 3, 1), pair(4, 2, 6, 2), pair(3, 4, 4, 3)]
}

fn host(t: Tensor<1>) -> Vec<f32> {
    t.without_autodiff()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

/// Every parameter's gradient, by name.
type Grads = Vec<(String, Vec<f32>)>;

fn loss_and_grads(model: &Llama, loss: DpoLossKind, chunk: usize) -> (f32, Vec<(String, f32)>, Grads) {
    let config = DpoConfig {
        beta: 0.5,
        loss,
        label_smoothing: if loss == DpoLossKind::Sigmoid { 0.1 } else { 0.0 },
    };
    // A reference away from the policy, so every pair has its own slope.
    let reference = Reference::Cached(vec![(-20.0, -15.0), (-9.0, -30.0), (-14.0, -14.5)]);
    let objective = DpoObjective::new(examples(), reference, config, 0, 1)
        .unwrap()
        .with_head_chunk_tokens(chunk);
    let out = objective.loss(model, &vec![0, 1, 2]).unwrap();
    let metrics = out
        .metrics
        .into_iter()
        .map(|(k, m)| (k, host(m.sum).iter().sum()))
        .collect();
    let value = host(out.loss_sum.clone())[0];
    let grads = GradMap::collect(model, out.loss_sum.backward());
    let grads = grads.0.into_iter().map(|(n, f)| (n, host(f.values))).collect();
    (value, metrics, grads)
}

#[test]
fn dpo_through_the_chunked_head_matches_the_composed_head() {
    let model = model();
    for kind in [DpoLossKind::Sigmoid, DpoLossKind::Ipo, DpoLossKind::Hinge] {
        let (loss, metrics, grads) = loss_and_grads(&model, kind, 0);
        for chunk in [1, 5, 1000] {
            let what = format!("{kind:?}, chunk {chunk}");
            let (l, m, g) = loss_and_grads(&model, kind, chunk);
            assert!(
                (l - loss).abs() <= 1e-5 * (1.0 + loss.abs()),
                "{what}: loss {l} vs {loss}"
            );
            for ((k, a), (_, b)) in m.iter().zip(&metrics) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{what}: {k} {a} vs {b}");
            }
            assert_eq!(g.len(), grads.len());
            let mut nonzero = 0;
            for ((n, got), (_, want)) in g.iter().zip(&grads) {
                nonzero += want.iter().filter(|v| **v != 0.0).count();
                for (x, y) in got.iter().zip(want) {
                    assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{what}: {n}: {x} vs {y}");
                }
            }
            assert!(nonzero > 1000, "{what}: gradients worth comparing");
        }
    }
}

#[test]
fn dpo_with_activation_checkpointing_gives_the_same_gradients() {
    let model = model();
    for chunk in [0, 5] {
        let config = DpoConfig {
            beta: 0.5,
            loss: DpoLossKind::Sigmoid,
            label_smoothing: 0.0,
        };
        let reference = Reference::Cached(vec![(-20.0, -15.0), (-9.0, -30.0), (-14.0, -14.5)]);
        let objective = DpoObjective::new(examples(), reference, config, 0, 1)
            .unwrap()
            .with_head_chunk_tokens(chunk);
        let batch = vec![0, 1, 2];
        let out = objective.loss(&model, &batch).unwrap();
        let plain_loss = host(out.loss_sum.clone())[0];
        let plain = GradMap::collect(&model, out.loss_sum.backward());
        let (recomputed, loss, _) =
            allam_train::recompute::checkpointed_gradients(&objective, &model, &batch, 1).unwrap();
        assert!((host(loss)[0] - plain_loss).abs() < 1e-6, "chunk {chunk}: loss");
        assert_eq!(recomputed.0.len(), plain.0.len());
        // f32 rounding of the layer-by-layer chain grows towards the first layer: at most
        // 1.04e-6 of 1 + |g| measured here.
        for (n, want) in &plain.0 {
            let (got, want) = (host(recomputed.0[n].values.clone()), host(want.values.clone()));
            for (x, y) in got.iter().zip(&want) {
                assert!(
                    (x - y).abs() <= 2e-6 * (1.0 + y.abs()),
                    "chunk {chunk}: {n}: {x} vs {y}"
                );
            }
        }
    }
}

/// Held-out pair evaluation scores through the same [`allam_align::PairScorer`] as training, so
/// `[train] head_chunk_tokens` holds there too: the chunked head's rewards equal the composed
/// head's, and they are the margins recomputed by hand from the scorer's log-probs.
#[test]
fn heldout_pairs_score_through_the_configured_head() {
    use allam_align::{HeldOutPairs, PairScorer};
    let reference = model();
    let device = allam_model::device::select("cpu").unwrap();
    let config = LlamaConfig::new(VOCAB, 16, 32, 2, 4, 2, 4).with_tie_word_embeddings(false);
    let policy = trainable(allam_train::params::seeded_init(config.init(&device), 0.2, 12));
    let dpo = DpoConfig {
        beta: 0.5,
        loss: DpoLossKind::Sigmoid,
        label_smoothing: 0.0,
    };
    let rewards = |chunk: usize| {
        let scorer = PairScorer::new(dpo, 0, chunk);
        HeldOutPairs::new(examples(), &reference, scorer, 2)
            .unwrap()
            .rewards(&policy)
            .unwrap()
    };
    let (composed, chunked) = (rewards(0), rewards(3));
    let scorer = PairScorer::new(dpo, 0, 3);
    let (p, r) = (
        scorer.logprobs_of_all(&policy, &examples(), 1).unwrap(),
        scorer.logprobs_of_all(&reference, &examples(), 1).unwrap(),
    );
    let margins: Vec<f64> = p
        .iter()
        .zip(&r)
        .map(|(p, r)| 0.5 * (f64::from(p.0 - r.0) - f64::from(p.1 - r.1)))
        .collect();
    let by_hand = margins.iter().sum::<f64>() / 3.0;
    assert!(
        by_hand.abs() > 1e-3,
        "the policy must differ from the reference: {by_hand}"
    );
    assert_eq!(composed.n, 3);
    assert_eq!(composed.accuracy, chunked.accuracy);
    assert!(
        (composed.margin - chunked.margin).abs() < 1e-5,
        "{composed:?} vs {chunked:?}"
    );
    assert!(
        (chunked.margin - by_hand).abs() < 1e-5,
        "{chunked:?} vs {by_hand}"
    );
    let accuracy = margins.iter().filter(|&&m| m > 0.0).count() as f64 / 3.0;
    assert_eq!(chunked.accuracy, accuracy);
}
