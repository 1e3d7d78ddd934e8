//! `allam pretrain`, `plot`, `model average`, `sft` and `dpo` on the example configurations.
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::repo;

fn allam(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_allam"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("allam runs");
    assert!(
        out.status.success(),
        "allam {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn pretrain_resumes_then_plots_and_averages() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    let config = "examples/configs/pretrain-tiny.toml";
    allam(&["pretrain", "--config", config, "--out", run_s, "--max-steps", "2"]);
    let out = allam(&[
        "pretrain",
        "--config",
        config,
        "--out",
        run_s,
        "--max-steps",
        "4",
        "--resume",
    ]);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["steps"], 4);
    let rows = metrics(&run);
    assert_eq!(
        rows.iter()
            .map(|r| r["step"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert!(rows[3]["eval/ar/bpb"].as_f64().unwrap() > 0.0);
    std::fs::remove_file(run.join("loss.svg")).unwrap();
    allam(&["plot", run_s]);
    assert!(
        std::fs::read_to_string(run.join("loss.svg"))
            .unwrap()
            .starts_with("<svg")
    );
    let ck = |s: &str| run.join(format!("checkpoints/step-0000000{s}/model"));
    let averaged = dir.path().join("avg");
    allam(&[
        "model",
        "average",
        ck("2").to_str().unwrap(),
        ck("4").to_str().unwrap(),
        "--out",
        averaged.to_str().unwrap(),
    ]);
    let out = allam(&[
        "generate",
        "--model",
        averaged.to_str().unwrap(),
        "--prompt",
        "the",
        "--max-new-tokens",
        "4",
    ]);
    assert!(out.status.success());
}

#[test]
fn sft_and_dpo_run_from_their_example_configs() {
    let dir = tempfile::tempdir().unwrap();
    let sft = dir.path().join("sft");
    let out = allam(&[
        "sft",
        "--config",
        "examples/configs/sft-tiny.toml",
        "--out",
        sft.to_str().unwrap(),
        "--max-steps",
        "1",
    ]);
    assert_eq!(metrics(&sft).len(), 1);
    // stderr is a pipe here: progress falls back to plain lines.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sft: step 1/1 (100%) · loss "), "{stderr}");
    let dpo = dir.path().join("dpo");
    let out = allam(&[
        "dpo",
        "--config",
        "examples/configs/dpo-tiny.toml",
        "--out",
        dpo.to_str().unwrap(),
        "--max-steps",
        "2",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("dpo: step 1/2") && stderr.contains("dpo: step 2/2"),
        "{stderr}"
    );
    assert!(stderr.contains("reward acc"), "{stderr}");
    let rows = metrics(&dpo);
    assert!(
        (rows[0]["loss"].as_f64().unwrap() - std::f64::consts::LN_2).abs() < 1e-5,
        "{}",
        rows[0]
    );
    for key in ["rewards_chosen", "rewards_rejected", "margin", "accuracy"] {
        assert!(rows[1][key].is_number(), "{key} in {}", rows[1]);
    }
    let out = allam(&[
        "sft",
        "inspect",
        "--config",
        "examples/configs/sft-tiny.toml",
        "--n",
        "1",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("[INST]") && text.contains("[[") && text.contains("</s>]]"),
        "{text}"
    );
}
