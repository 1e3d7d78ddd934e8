//! Training behaviour on tiny models: the optimizer against hand computations, clipping,
//! accumulation, replicas, the embeddings-only warm-up, exact resume, averaging, the NaN stop.
mod common;

use std::collections::BTreeMap;
use std::path::Path;

use allam_data::{IGNORE_INDEX, PackedBatch, PackedSequence};
use allam_model::{Llama, LlamaConfig};
use allam_train::Quiet;
use allam_train::loss::language_model_loss;
use allam_train::objective::packed_input;
use allam_train::params::{Flat, GradMap, named_values, trainable};
use allam_train::{
    AdamW, AdamWConfig, EmbeddingWarmup, LossOutput, LrSchedule, Objective, StepOptions, TrainError,
    TrainableScope, Trainer,
};
use burn::tensor::{Device, Tensor};
use common::{VOCAB, device, host, max_diff, params, tiny_model, tiny_model_on};

const SEQ: usize = 12;

/// Rows counting up modulo the vocabulary from `start`, one document per row: learnable.
fn counting_row(start: u32) -> PackedSequence {
    let input_ids: Vec<u32> = (0..SEQ as u32).map(|i| (start + i) % VOCAB as u32).collect();
    let mut labels: Vec<i32> = input_ids[1..].iter().map(|&t| t as i32).collect();
    labels.push(IGNORE_INDEX);
    PackedSequence {
        source: if start.is_multiple_of(2) { "even" } else { "odd" }.into(),
        input_ids,
        labels,
        document_ids: vec![0; SEQ],
        position_ids: (0..SEQ as u32).collect(),
        documents: Vec::new(),
    }
}

/// An in-memory stream of counting rows (and, optionally, a NaN at some step).
struct Counting {
    next: u32,
    nan_at_batch: Option<u32>,
    batches: u32,
}

impl Counting {
    fn new() -> Self {
        Self {
            next: 0,
            nan_at_batch: None,
            batches: 0,
        }
    }
}

impl Objective for Counting {
    type Batch = PackedBatch;

    fn next_batch(&mut self, rows: usize) -> allam_train::Result<PackedBatch> {
        let seqs = (0..rows)
            .map(|_| {
                self.next += 7;
                counting_row(self.next)
            })
            .collect();
        self.batches += 1;
        let mut batch = PackedBatch::from_sequences(seqs);
        if self.nan_at_batch == Some(self.batches) {
            batch.sources[0] = "nan".into();
        }
        Ok(batch)
    }

    fn units(&self, batch: &PackedBatch) -> usize {
        batch.labels.iter().filter(|&&l| l != IGNORE_INDEX).count()
    }

    fn tokens(&self, batch: &PackedBatch) -> usize {
        batch.input_ids.len()
    }

    fn loss(&self, model: &Llama, batch: &PackedBatch) -> allam_train::Result<LossOutput> {
        let loss = language_model_loss(
            model,
            model.hidden_states(&packed_input(batch)?)?,
            &batch.labels,
            allam_train::head::DEFAULT_CHUNK_TOKENS,
        )?;
        let sum = if batch.sources[0] == "nan" {
            loss.sum.mul_scalar(f64::NAN)
        } else {
            loss.sum
        };
        Ok(LossOutput {
            loss_sum: sum,
            metrics: BTreeMap::new(),
        })
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "next": self.next })
    }

    fn restore(&mut self, state: &serde_json::Value) -> allam_train::Result<()> {
        self.next = state["next"].as_u64().unwrap() as u32;
        Ok(())
    }
}

fn options(micro: usize, accum: usize, replicas: usize) -> StepOptions {
    StepOptions {
        micro_batch_size: micro,
        grad_accum: accum,
        replicas,
        schedule: LrSchedule::constant(1e-2, 0),
        max_steps: 100,
        embedding_warmup: None,
        activation_checkpointing: Default::default(),
    }
}

fn trainer(micro: usize, accum: usize, replicas: usize) -> Trainer<Counting> {
    trainer_on(&device(), micro, accum, replicas)
}

fn trainer_on(device: &Device, micro: usize, accum: usize, replicas: usize) -> Trainer<Counting> {
    Trainer {
        model: trainable(tiny_model_on(7, device)),
        optimizer: AdamW::new(AdamWConfig::default()),
        objective: Counting::new(),
        options: options(micro, accum, replicas),
        step: 0,
        tokens: 0,
    }
}

#[test]
fn loss_falls_on_a_learnable_corpus() {
    let mut t = trainer(4, 1, 1);
    let first = t.train_step().unwrap().loss;
    let mut last = first;
    for _ in 0..40 {
        last = t.train_step().unwrap().loss;
    }
    assert!(
        (first - (VOCAB as f64).ln()).abs() < 0.2,
        "starts near ln V: {first}"
    );
    assert!(last < 0.5 * first, "loss {first} → {last}");
}

#[test]
fn accumulation_equals_one_big_batch() {
    let mut big = trainer(4, 1, 1);
    let mut accumulated = trainer(2, 2, 1);
    for _ in 0..2 {
        let a = big.train_step().unwrap();
        let b = accumulated.train_step().unwrap();
        assert!((a.loss - b.loss).abs() < 1e-5, "{} vs {}", a.loss, b.loss);
        assert!((a.grad_norm - b.grad_norm).abs() < 1e-5 * a.grad_norm.max(1.0));
    }
    let d = max_diff(&params(&big.model), &params(&accumulated.model));
    assert!(d < 1e-5, "parameters differ by {d}");
}

#[test]
fn replicas_equal_one_replica_on_the_whole_batch() {
    let mut one = trainer(4, 1, 1);
    let mut two = trainer(2, 1, 2);
    let mut four = trainer(1, 1, 4);
    for _ in 0..2 {
        let a = one.train_step().unwrap();
        let b = two.train_step().unwrap();
        let c = four.train_step().unwrap();
        assert!((a.loss - b.loss).abs() < 1e-5 && (a.loss - c.loss).abs() < 1e-5);
    }
    assert!(max_diff(&params(&one.model), &params(&two.model)) < 1e-5);
    assert!(max_diff(&params(&one.model), &params(&four.model)) < 1e-5);
}

/// Three steps (two accumulated micro-batches each, the packed-row objective, global clipping,
/// AdamW) on every test device against the same steps on the CPU: loss and gradient norm to 1e-5
/// relative, and every weight after the last update to 1e-4 absolute. Backends sum in other
/// orders, so float rounding differs; with lr 1e-2, Adam's first updates are ±lr for every
/// weight whose gradient is not tiny, so a wrong gradient, moment or decay misses by ~1e-2.
#[test]
fn every_device_makes_the_same_steps_as_the_cpu() {
    let mut cpu = trainer(2, 2, 1);
    let expected: Vec<_> = (0..3).map(|_| cpu.train_step().unwrap()).collect();
    let expected_params = params(&cpu.model);
    for (dev, device) in allam_model::device::test_devices() {
        let mut t = trainer_on(&device, 2, 2, 1);
        for want in &expected {
            let got = t.train_step().unwrap();
            for (what, g, w) in [
                ("loss", got.loss, want.loss),
                ("grad norm", got.grad_norm, want.grad_norm),
            ] {
                let step = want.step;
                assert!(
                    (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                    "{dev} step {step}: {what} {g} vs {w}"
                );
            }
        }
        assert!(t.model.device() == device, "{dev}: the model left its device");
        let moved = expected_params["layers.0.self_attn.q_proj.bias"]
            .iter()
            .any(|b| b.abs() > 1e-3);
        assert!(moved, "the q/k/v biases start at zero and are trained");
        let d = max_diff(&params(&t.model), &expected_params);
        assert!(d < 1e-4, "{dev}: weights after AdamW differ by {d}");
    }
}

/// Gradients of ones everywhere: the global norm is √(number of parameters).
fn unit_grads(model: &Llama, value: f32) -> GradMap {
    GradMap(
        named_values(model)
            .into_iter()
            .map(|(k, v)| {
                let values = Tensor::<1>::ones(v.values.dims(), &device()).mul_scalar(value);
                (
                    k,
                    Flat {
                        values,
                        shape: v.shape,
                    },
                )
            })
            .collect(),
    )
}

#[test]
fn adamw_and_global_clipping_match_a_hand_computation() {
    let model = tiny_model(3);
    let before = params(&model);
    let n: usize = before.values().map(Vec::len).sum();
    let config = AdamWConfig::default();
    let mut adamw = AdamW::new(config.clone());
    let lr = 0.01;
    // step 1: g = 2 everywhere → norm 2√n, clipped to 1 → g' = 1/√n (up to PyTorch's 1e-6 guard)
    let (model, stats) = adamw
        .step(model, unit_grads(&tiny_model(3), 2.0), lr, TrainableScope::All)
        .unwrap();
    let norm = 2.0 * (n as f64).sqrt();
    assert!(
        (stats.grad_norm - norm).abs() < 1e-3 * norm,
        "{} vs {norm}",
        stats.grad_norm
    );
    let clip = 1.0 / (norm + 1e-6);
    assert!((stats.clip_factor - clip).abs() < 1e-9);
    let g1 = 2.0 * clip;
    let m = &adamw.moments["layers.0.mlp.up_proj.weight"];
    assert!(
        host(&m.exp_avg)
            .iter()
            .all(|&v| (f64::from(v) - 0.1 * g1).abs() < 1e-9)
    );
    // step 2: g = 0.001 (norm below 1: not clipped)
    let (model, stats) = adamw
        .step(model, unit_grads(&tiny_model(3), 0.001), lr, TrainableScope::All)
        .unwrap();
    assert_eq!(stats.clip_factor, 1.0);
    let after = params(&model);
    // hand computation of both PyTorch AdamW steps in f64
    let expect = |p0: f64, decay: f64| {
        let (b1, b2, eps) = (0.9, 0.95, 1e-8);
        let (mut p, mut m, mut v) = (p0, 0.0, 0.0);
        for (t, g) in [(1, g1), (2, 0.001)] {
            p *= 1.0 - lr * decay;
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let mh = m / (1.0 - f64::powi(b1, t));
            let vh = v / (1.0 - f64::powi(b2, t));
            p -= lr * mh / (vh.sqrt() + eps);
        }
        p
    };
    for (name, values) in &after {
        let decay = if name.ends_with("gamma") || name.ends_with("bias") {
            0.0
        } else {
            0.1
        };
        for (i, (&p, &p0)) in values.iter().zip(&before[name]).enumerate().step_by(7) {
            let e = expect(f64::from(p0), decay);
            assert!((f64::from(p) - e).abs() < 1e-6, "{name}[{i}]: {p} vs {e}");
        }
    }
}

/// The embeddings-only phase runs at its own rate (after its own warm-up); the run's schedule,
/// warm-up included, starts at the step where every weight trains, and a cosine spans the rest.
#[test]
fn the_schedule_starts_when_the_body_unfreezes() {
    let mut t = trainer(2, 1, 1);
    t.options.schedule = LrSchedule::cosine(1e-3, 1e-4, 2, 6);
    t.options.max_steps = 10;
    t.options.embedding_warmup = Some(EmbeddingWarmup {
        steps: 4,
        first_new_row: 24,
        lr: 5e-3,
        lr_warmup_steps: 2,
    });
    let lrs: Vec<f64> = (0..10).map(|_| t.train_step().unwrap().lr).collect();
    let cosine = |p: f64| 1e-4 + 9e-4 * 0.5 * (1.0 + (std::f64::consts::PI * p).cos());
    let expected = [
        2.5e-3,
        5e-3,
        5e-3,
        5e-3, // the phase: its own warm-up, then its rate
        5e-4,
        1e-3, // the schedule's warm-up, from the first step of the body
        cosine(0.0),
        cosine(0.25),
        cosine(0.5),
        cosine(0.75), // cosine over total_steps − warm-up
    ];
    for (step, (got, want)) in lrs.iter().zip(expected).enumerate() {
        assert!((got - want).abs() < 1e-15, "step {step}: {got} vs {want}");
    }
}

#[test]
fn the_warmup_trains_only_new_rows_and_leaves_the_rest_bit_for_bit() {
    let first_new_row = 24;
    let mut t = trainer(4, 1, 1);
    t.options.embedding_warmup = Some(EmbeddingWarmup {
        steps: 3,
        first_new_row,
        lr: 1e-2,
        lr_warmup_steps: 0,
    });
    let before = params(&t.model);
    for _ in 0..3 {
        assert_eq!(t.scope(), TrainableScope::NewRows { first_new_row });
        assert_eq!(t.train_step().unwrap().trained, "new_rows");
    }
    let after = params(&t.model);
    let hidden = 16;
    for (name, values) in &after {
        let old = &before[name];
        match name.as_str() {
            "embed_tokens.weight" => {
                let split = first_new_row * hidden;
                assert_eq!(values[..split], old[..split], "old embedding rows changed");
                assert_ne!(values[split..], old[split..], "new embedding rows did not train");
            }
            "lm_head.weight" => {
                // Burn's head is [hidden, vocab]: the new rows are columns ≥ first_new_row
                for h in 0..hidden {
                    let row = &values[h * VOCAB..(h + 1) * VOCAB];
                    let row0 = &old[h * VOCAB..(h + 1) * VOCAB];
                    assert_eq!(row[..first_new_row], row0[..first_new_row]);
                    assert_ne!(row[first_new_row..], row0[first_new_row..]);
                }
            }
            _ => assert_eq!(values, old, "{name} changed during the warm-up"),
        }
    }
    assert_eq!(t.scope(), TrainableScope::All);
    t.train_step().unwrap();
    let later = params(&t.model);
    assert_ne!(
        later["layers.0.self_attn.q_proj.weight"],
        after["layers.0.self_attn.q_proj.weight"]
    );
}

#[test]
fn norms_and_biases_are_not_decayed() {
    // zero gradients: Adam's update is 0, only the decoupled decay acts
    let ones = |name: &str, current: Flat| {
        name.ends_with("bias")
            .then(|| Tensor::<1>::ones(current.values.dims(), &device()))
    };
    let model = allam_train::params::update_params(tiny_model(5), &mut |n, c| ones(n, c));
    let before = params(&model);
    let mut adamw = AdamW::new(AdamWConfig::default());
    let (model, _) = adamw
        .step(model, unit_grads(&tiny_model(5), 0.0), 0.5, TrainableScope::All)
        .unwrap();
    let after = params(&model);
    assert_eq!(after["norm.gamma"], before["norm.gamma"]);
    for bias in ["layers.0.self_attn.k_proj.bias", "layers.1.mlp.up_proj.bias"] {
        assert_eq!(after[bias], before[bias], "{bias}");
        assert!(before[bias].iter().all(|b| *b == 1.0));
    }
    let (w, w0) = (
        &after["layers.1.mlp.down_proj.weight"],
        &before["layers.1.mlp.down_proj.weight"],
    );
    for (a, b) in w.iter().zip(w0) {
        assert!((a - b * 0.95).abs() < 1e-7, "{a} vs {}", b * 0.95);
    }
}

#[test]
fn a_nan_loss_stops_without_touching_the_model() {
    let mut t = trainer(2, 1, 1);
    t.objective.nan_at_batch = Some(2);
    t.train_step().unwrap();
    let before = params(&t.model);
    let err = t.train_step().unwrap_err();
    assert!(matches!(err, TrainError::Diverged(_)), "{err}");
    assert!(err.to_string().contains("step 2"), "{err}");
    assert_eq!(params(&t.model), before);
    assert_eq!(t.step, 1);
}

#[test]
fn a_diverging_run_stops_and_keeps_its_last_checkpoint() {
    use allam_train::session::{Session, run_loop};
    let dir = tempfile::tempdir().unwrap();
    let mut t = trainer(2, 1, 1);
    t.objective.nan_at_batch = Some(3);
    let session = Session {
        run_dir: dir.path().to_path_buf(),
        hf_config: allam_model::HfConfig::new(&t.model.config),
        support_from: None,
        tokenizer: None,
        eval_texts: Vec::new(),
        eval_every: None,
        checkpoint: allam_train::config::CheckpointSpec {
            every: Some(1),
            keep: 5,
            export_dtype: "f32".into(),
        },
        last_step: 10,
        fingerprint: serde_json::json!({}),
    };
    let err = run_loop(&mut t, &session, false, &Quiet).unwrap_err();
    assert!(err.to_string().contains("step 3"), "{err}");
    let kept: Vec<u64> = allam_train::checkpoint::list_checkpoints(dir.path())
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(kept, vec![1, 2]);
    let state = allam_train::checkpoint::read_state(&dir.path().join("checkpoints/step-00000002")).unwrap();
    assert_eq!(state.step, 2);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    assert!(
        !dir.path().join("final").exists(),
        "no export of a diverged model"
    );
}

#[test]
fn optimizer_state_of_another_model_is_an_error_not_a_panic() {
    let model = tiny_model(1);
    let mut adamw = AdamW::new(AdamWConfig::default());
    let (model, _) = adamw
        .step(model, unit_grads(&tiny_model(1), 0.1), 0.01, TrainableScope::All)
        .unwrap();
    let path = Path::new("run/checkpoints/step-00000001/optimizer.safetensors");
    adamw.check_fits(&model, path).unwrap();
    let wider = LlamaConfig::new(VOCAB, 16, 48, 2, 4, 2, 4)
        .with_qkv_bias(true)
        .with_o_proj_bias(true)
        .with_mlp_bias(true)
        .init(&device());
    let err = adamw.check_fits(&wider, path).unwrap_err().to_string();
    assert!(
        err.contains("step-00000001") && err.contains("mlp") && err.contains("the model's parameter has"),
        "{err}"
    );
}
