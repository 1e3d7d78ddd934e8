//! Whole runs on tiny models: exact resume, every device against the CPU, a Qwen2 checkpoint with
//! biases, checkpoint averaging, a new stage from a checkpoint, seeded initialisation.
mod common;

use std::path::Path;

use allam_train::{AdamW, AdamWConfig, Quiet, RunConfig, RunOptions, Start, train};
use common::{device, losses, max_diff, params, tiny_model, write_run, write_run_on};

#[test]
fn resuming_reproduces_the_uninterrupted_run_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_run(dir.path(), 8, 4);
    let straight = dir.path().join("straight");
    let summary = train(&config, &straight, &RunOptions::default(), &Quiet).unwrap();
    assert_eq!(summary.steps, 8);
    let resumed = dir.path().join("resumed");
    let first = RunOptions {
        max_steps: Some(4),
        start: Start::Fresh,
    };
    train(&config, &resumed, &first, &Quiet).unwrap();
    let again = RunOptions {
        max_steps: None,
        start: Start::Resume,
    };
    let summary = train(&config, &resumed, &again, &Quiet).unwrap();
    assert_eq!(summary.steps, 8);
    let (a, b) = (losses(&straight), losses(&resumed));
    assert_eq!(a.len(), 8);
    assert_eq!(a, b, "losses after resume differ");
    assert!(a[7].1 < a[0].1, "the loss falls: {a:?}");
    // the final exports are identical too
    let read = |d: &Path| std::fs::read(d.join("final/model.safetensors")).unwrap();
    assert_eq!(read(&straight), read(&resumed));
    // run directory contents
    assert!(straight.join("loss.svg").exists());
    assert!(straight.join("final/tokenizer.json").exists());
    let kept: Vec<_> = allam_train::checkpoint::list_checkpoints(&straight)
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(kept, vec![4, 8]);
    let metrics = std::fs::read_to_string(straight.join("metrics.jsonl")).unwrap();
    let row4: serde_json::Value = serde_json::from_str(metrics.lines().nth(3).unwrap()).unwrap();
    assert!(row4["eval/en/bpb"].as_f64().unwrap() > 0.0, "{row4}");
    assert!(row4["lr"].as_f64().unwrap() > 0.0 && row4["tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(row4["loss/en"].as_f64().is_some(), "per-source loss: {row4}");
}

/// A whole pretraining run (the packed mixture, per-source losses, held-out bits per byte,
/// checkpoints written from the device) on every test device: the same metrics as on the CPU, to
/// 1e-4 relative, and a final export within 1e-3 of the CPU run's weights (four AdamW steps at
/// lr ≤ 1e-2 move a weight by up to 4e-2, so a wrong update misses by far more).
#[test]
fn a_pretraining_run_on_every_device_matches_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = |name: &str| {
        // Each run in its own directory (the CPU is also one of the test devices).
        let run = tempfile::tempdir_in(dir.path()).unwrap().keep();
        let config = write_run_on(dir.path(), 4, 2, name);
        train(&config, &run, &RunOptions::default(), &Quiet).unwrap();
        let rows: Vec<serde_json::Value> = std::fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let export = allam_model::PretrainedModel::load(&run.join("final"), &device()).unwrap();
        (rows, params(&export.model))
    };
    let (cpu, cpu_export) = metrics("cpu");
    assert_eq!(cpu.len(), 4);
    for (dev, _) in allam_model::device::test_devices() {
        let (rows, export) = metrics(dev);
        assert_eq!(rows.len(), cpu.len(), "{dev}");
        for (got, want) in rows.iter().zip(&cpu) {
            for key in ["loss", "grad_norm", "loss/en", "eval/en/bpb"] {
                let Some(w) = want[key].as_f64() else { continue };
                let g = got[key]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{dev}: no {key} in {got}"));
                assert!(
                    (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                    "{dev} step {}: {key} {g} vs {w}",
                    want["step"]
                );
            }
        }
        let d = max_diff(&export, &cpu_export);
        assert!(
            d < 1e-3,
            "{dev}: exported weights differ from the CPU run's by {d}"
        );
    }
    assert!(
        cpu[3]["eval/en/bpb"].as_f64().is_some(),
        "held-out bpb was measured: {}",
        cpu[3]
    );
    assert!(
        cpu[0]["loss/en"].as_f64().is_some(),
        "per-source loss: {}",
        cpu[0]
    );
}

/// Continued pretraining of a Qwen2 checkpoint (q/k/v biases): the biases are trained, saved in
/// checkpoints and exported under their Hugging Face names, and the export keeps the family.
#[test]
fn a_qwen2_checkpoint_trains_and_exports_its_biases() {
    let dir = tempfile::tempdir().unwrap();
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-qwen2-bias");
    let lines: Vec<String> = (0..40).map(|i| format!("the cat sat on the mat {i}.")).collect();
    std::fs::write(dir.path().join("en.txt"), lines.join("\n")).unwrap();
    let tokenizer = base.join("tokenizer.json");
    std::fs::write(
        dir.path().join("recipe.toml"),
        format!(
            "tokenizer = {tokenizer:?}\nseq_len = 32\nseed = 1\n[languages]\nen = 1.0\n\
             [[sources]]\nname = \"en\"\nlanguage = \"en\"\npaths = [\"en.txt\"]\n"
        ),
    )
    .unwrap();
    let text = format!(
        "[model]\ndir = {base:?}\n[data]\nrecipe = \"recipe.toml\"\n\
         [schedule]\nkind = \"constant\"\nlr = 1e-2\nwarmup_steps = 0\n\
         [train]\nmax_steps = 2\nmicro_batch_size = 2\ngrad_accum = 1\n[checkpoint]\nevery = 2\n"
    );
    std::fs::write(dir.path().join("run.toml"), text).unwrap();
    let config = RunConfig::load(&dir.path().join("run.toml")).unwrap();
    let run = dir.path().join("run");
    train(&config, &run, &RunOptions::default(), &Quiet).unwrap();
    let before = allam_model::PretrainedModel::load(&base, &device()).unwrap();
    let after = allam_model::PretrainedModel::load(&run.join("final"), &device()).unwrap();
    assert_eq!(after.model.config, before.model.config);
    assert_eq!(after.hf_config.family().unwrap(), allam_model::ModelFamily::Qwen2);
    let (b, a) = (params(&before.model), params(&after.model));
    for name in ["layers.0.self_attn.q_proj.bias", "layers.1.self_attn.v_proj.bias"] {
        let moved = a[name]
            .iter()
            .zip(&b[name])
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(moved > 1e-3, "{name} was not trained (max change {moved})");
    }
    assert!(!a.contains_key("layers.0.self_attn.o_proj.bias"));
}

#[test]
fn checkpoint_averaging_is_the_mean_of_the_weights() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (tiny_model(1), tiny_model(2));
    let hf = allam_model::HfConfig::new(&a.config);
    let options = allam_model::SaveOptions::default();
    allam_model::save_model(&a, &hf, &dir.path().join("a"), &options).unwrap();
    allam_model::save_model(&b, &hf, &dir.path().join("b"), &options).unwrap();
    let (mean, _) =
        allam_train::average_checkpoints(&[&dir.path().join("a"), &dir.path().join("b")], &device()).unwrap();
    let (pa, pb, pm) = (params(&a), params(&b), params(&mean));
    for (name, values) in &pm {
        for ((m, x), y) in values.iter().zip(&pa[name]).zip(&pb[name]) {
            assert!((m - (x + y) / 2.0).abs() < 1e-7, "{name}");
        }
    }
    assert_ne!(pa, pb);
}

#[test]
fn a_new_stage_from_a_checkpoint_resets_or_keeps_the_optimizer_state() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_run(dir.path(), 4, 4);
    train(&config, &dir.path().join("first"), &RunOptions::default(), &Quiet).unwrap();
    let checkpoint = dir.path().join("first/checkpoints/step-00000004");
    let steps_of = |run: &Path, step: &str| -> u64 {
        let path = run.join(format!("checkpoints/step-0000000{step}/optimizer.safetensors"));
        let adamw = AdamW::load(&path, AdamWConfig::default(), &device()).unwrap();
        adamw.moments["norm.gamma"].step
    };
    assert_eq!(steps_of(&dir.path().join("first"), "4"), 4);
    for (keep, expected) in [(false, 2), (true, 6)] {
        let mut next = config.clone();
        next.model.architecture = None;
        next.model.tokenizer = None;
        next.model.checkpoint = Some(checkpoint.clone());
        next.model.keep_optimizer_state = keep;
        next.train.max_steps = 2;
        next.validate().unwrap();
        let run = dir.path().join(format!("next-{keep}"));
        train(&next, &run, &RunOptions::default(), &Quiet).unwrap();
        assert_eq!(steps_of(&run, "2"), expected, "keep_optimizer_state = {keep}");
    }
}

#[test]
fn seeded_initialisation_depends_on_the_seed_only() {
    let (a, b, c) = (
        params(&tiny_model(11)),
        params(&tiny_model(11)),
        params(&tiny_model(12)),
    );
    assert_eq!(a, b);
    assert_ne!(a["layers.0.mlp.up_proj.weight"], c["layers.0.mlp.up_proj.weight"]);
    assert!(a["norm.gamma"].iter().all(|&g| g == 1.0));
    assert!(a["layers.0.self_attn.q_proj.bias"].iter().all(|&b| b == 0.0));
    let w: Vec<f64> = a
        .iter()
        .filter(|(k, _)| k.ends_with("weight"))
        .flat_map(|(_, v)| v.iter().map(|&x| f64::from(x)))
        .collect();
    let mean = w.iter().sum::<f64>() / w.len() as f64;
    let std = (w.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
    assert!(
        mean.abs() < 1e-3 && (std - 0.02).abs() < 1e-3,
        "mean {mean}, std {std}"
    );
}
