//! `precision = "bf16-mixed"`: a run in bf16 with f32 master weights tracks the f32 run, resumes
//! bit for bit, keeps f32 weights, gradients and optimizer state, and a device without bf16
//! arithmetic refuses it at the start.
mod common;

use allam_train::config::Precision;
use allam_train::{Quiet, RunOptions};
use allam_train::{Start, train};
use common::{losses, write_run};

fn options(max_steps: u64, start: Start) -> RunOptions {
    RunOptions {
        max_steps: Some(max_steps),
        start,
    }
}

#[test]
fn a_bf16_mixed_run_tracks_the_f32_run_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let f32_config = write_run(dir.path(), 12, 4);
    let mut mixed = f32_config.clone();
    mixed.train.step.precision = Precision::Bf16Mixed;

    let reference = dir.path().join("f32");
    train(&f32_config, &reference, &options(12, Start::Fresh), &Quiet).unwrap();
    let straight = dir.path().join("mixed");
    train(&mixed, &straight, &options(12, Start::Fresh), &Quiet).unwrap();
    let (want, got) = (losses(&reference), losses(&straight));
    assert_eq!(got.len(), 12);
    // bf16 keeps 8 bits of mantissa: each step's loss within 2 % of the f32 run's, and the
    // run learns as much (the losses fall by the same amount to within 5 %).
    for ((step, a), (_, b)) in got.iter().zip(&want) {
        assert!(
            (a - b).abs() <= 0.02 * b,
            "step {step}: bf16-mixed {a} vs f32 {b}"
        );
    }
    assert_ne!(got, want, "the mixed run computed in bf16");
    let (fall_f32, fall_mixed) = (want[0].1 - want[11].1, got[0].1 - got[11].1);
    assert!(
        fall_f32 > 0.1 && (fall_mixed - fall_f32).abs() <= 0.05 * fall_f32,
        "{fall_mixed} vs {fall_f32}"
    );

    // Resumed halfway: bit for bit the straight mixed run.
    let resumed = dir.path().join("resumed");
    train(&mixed, &resumed, &options(6, Start::Fresh), &Quiet).unwrap();
    train(&mixed, &resumed, &options(12, Start::Resume), &Quiet).unwrap();
    assert_eq!(losses(&resumed), got);
    let read = |d: &std::path::Path| std::fs::read(d.join("final/model.safetensors")).unwrap();
    assert_eq!(read(&resumed), read(&straight));
    // The master weights and the optimizer state stay f32.
    let header = |path: std::path::PathBuf| {
        let bytes = std::fs::read(path).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        String::from_utf8(bytes[8..8 + n].to_vec()).unwrap()
    };
    let checkpoint = straight.join("checkpoints/step-00000012");
    for file in ["model/model.safetensors", "optimizer.safetensors"] {
        let h = header(checkpoint.join(file));
        assert!(h.contains("\"F32\"") && !h.contains("\"BF16\""), "{file}: {h}");
    }
    // A resume that changes the precision is refused (the run would no longer be the same).
    let error = train(&f32_config, &resumed, &options(12, Start::Resume), &Quiet)
        .unwrap_err()
        .to_string();
    assert!(error.contains("different run setup"), "{error}");
}

#[test]
fn a_device_without_bf16_refuses_mixed_precision_at_the_start() {
    for (name, device) in allam_model::device::test_devices() {
        let config = allam_model::LlamaConfig::new(16, 8, 16, 1, 2, 1, 4);
        let mut model = config.init(&device);
        let outcome = Precision::Bf16Mixed.apply(&mut model, &device);
        if device.supports_dtype(burn::tensor::FloatDType::BF16) {
            assert!(outcome.is_ok(), "{name}");
            assert_eq!(model.config.compute_dtype, Some(allam_model::StorageDtype::Bf16));
        } else {
            let error = outcome.unwrap_err().to_string();
            assert!(
                error.contains("bf16-mixed") && error.contains("precision = \"f32\""),
                "{name}: {error}"
            );
        }
        println!(
            "{name}: bf16 {}",
            device.supports_dtype(burn::tensor::FloatDType::BF16)
        );
    }
}

#[test]
fn a_checkpoint_from_before_mixed_precision_resumes_as_f32() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_run(dir.path(), 4, 2);
    let run = dir.path().join("run");
    train(&config, &run, &options(2, Start::Fresh), &Quiet).unwrap();
    // What an older allam wrote: no "precision" in the fingerprint (and no files.json).
    let checkpoint = run.join("checkpoints/step-00000002");
    let path = checkpoint.join("trainer_state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    state["fingerprint"]
        .as_object_mut()
        .unwrap()
        .remove("precision")
        .unwrap();
    std::fs::write(&path, state.to_string()).unwrap();
    std::fs::remove_file(checkpoint.join("files.json")).unwrap();
    train(&config, &run, &options(4, Start::Resume), &Quiet).unwrap();
    assert_eq!(losses(&run).len(), 4);
    // As bf16-mixed it is another run setup.
    let mut mixed = config.clone();
    mixed.train.step.precision = Precision::Bf16Mixed;
    let error = train(&mixed, &run, &options(4, Start::Resume), &Quiet)
        .unwrap_err()
        .to_string();
    assert!(error.contains("different run setup"), "{error}");
}
