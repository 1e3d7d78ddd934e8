//! A real crash: `allam pretrain` killed with SIGKILL mid-run, then the rules of the run
//! directory as a user meets them — a second writer refused while the first runs, a fresh start
//! refused over the killed run, `--resume` cleaning up and continuing, `--overwrite` starting over.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{allam_in_repo as allam, repo, stderr};

/// The tiny example run, checkpointing every 2 steps, long enough to be killed while it runs.
fn long_config(dir: &Path) -> PathBuf {
    let examples = repo().join("examples/configs");
    let text = std::fs::read_to_string(examples.join("pretrain-tiny.toml"))
        .unwrap()
        .replace("\"../../", &format!("\"{}/", repo().display()))
        .replace(
            "\"../recipes/",
            &format!("\"{}/examples/recipes/", repo().display()),
        )
        .replace("max_steps = 80", "max_steps = 100000")
        .replace("every = 40\nkeep = 2", "every = 2\nkeep = 2")
        .replace("every = 40\ntext", "every = 100000\ntext");
    let path = dir.join("long.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn metric_steps(run: &Path) -> Vec<u64> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[test]
fn a_killed_run_is_locked_while_alive_and_resumes_cleanly_after() {
    let dir = tempfile::tempdir().unwrap();
    let config = long_config(dir.path());
    let config_s = config.to_str().unwrap();
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_allam"))
        .args(["pretrain", "--quiet", "--config", config_s, "--out", run_s])
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !run.join("checkpoints/step-00000004").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no checkpoint after 5 minutes"
        );
        assert!(child.try_wait().unwrap().is_none(), "the run stopped by itself");
        std::thread::sleep(Duration::from_millis(50));
    }

    // While it runs, a second writer stops at once and names the first.
    let second = allam(&[
        "pretrain",
        "--config",
        config_s,
        "--out",
        run_s,
        "--resume",
        "--max-steps",
        "2",
    ]);
    assert!(!second.status.success());
    let told = stderr(&second);
    assert!(told.contains("is in use by allam process"), "{told}");
    assert!(told.contains(&child.id().to_string()), "{told}");

    // SIGKILL; then plant what a kill during a checkpoint write leaves (the kill itself cannot be
    // timed to land inside one).
    child.kill().unwrap();
    child.wait().unwrap();
    let stale = run.join(format!("checkpoints/.step-99999998.tmp-{}", child.id()));
    std::fs::create_dir_all(stale.join("model")).unwrap();
    std::fs::write(stale.join("model/model.safetensors"), vec![0u8; 1 << 16]).unwrap();
    let newest = allam_train_newest(&run);

    // A fresh start over the killed run is refused and changes nothing.
    let fresh = allam(&[
        "pretrain",
        "--config",
        config_s,
        "--out",
        run_s,
        "--max-steps",
        "2",
    ]);
    assert_eq!(fresh.status.code(), Some(1));
    let told = stderr(&fresh);
    for needed in ["already holds a run", "--resume", "--overwrite", run_s] {
        assert!(told.contains(needed), "{needed:?} missing in: {told}");
    }
    assert!(stale.exists());

    // --resume removes the temporaries, says so, and continues from the newest checkpoint.
    let target = newest + 2;
    let target_s = target.to_string();
    let resumed = allam(&[
        "pretrain",
        "--config",
        config_s,
        "--out",
        run_s,
        "--resume",
        "--max-steps",
        &target_s,
    ]);
    let told = stderr(&resumed);
    assert!(resumed.status.success(), "{told}");
    assert!(
        told.contains("removed 1 temporary") && told.contains(".step-99999998.tmp-"),
        "{told}"
    );
    assert!(!stale.exists());
    assert_eq!(metric_steps(&run), (1..=target).collect::<Vec<_>>());

    // --overwrite starts again from step 0 with nothing of the old run left.
    let over = allam(&[
        "pretrain",
        "--config",
        config_s,
        "--out",
        run_s,
        "--overwrite",
        "--max-steps",
        "2",
    ]);
    assert!(over.status.success(), "{}", stderr(&over));
    assert_eq!(metric_steps(&run), [1, 2]);
    let kept: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(kept, ["step-00000002"]);
    // Both flags at once make no sense.
    let both = allam(&[
        "pretrain",
        "--config",
        config_s,
        "--out",
        run_s,
        "--overwrite",
        "--resume",
    ]);
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
}

/// The newest checkpoint's step.
fn allam_train_newest(run: &Path) -> u64 {
    std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_prefix("step-").and_then(|s| s.parse().ok())
        })
        .max()
        .unwrap()
}

#[test]
fn plan_prints_the_memory_of_a_run_without_running_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = "examples/configs/pretrain-tiny.toml";
    let text = allam(&["pretrain", "--config", config, "--plan", "--device-memory", "1MB"]);
    assert!(text.status.success(), "{}", stderr(&text));
    let shown = String::from_utf8_lossy(&text.stdout);
    for needed in [
        "weights (f32)",
        "AdamW moments",
        "activations of one micro-batch",
        "output head (chunked)",
        "does not fit in 0.0 GB",
    ] {
        assert!(shown.contains(needed), "{needed:?} missing in:\n{shown}");
    }
    // JSON: the parts add up to what the peaks say, for the example's 64-wide model.
    let json = allam(&[
        "pretrain",
        "--config",
        config,
        "--plan",
        "--json",
        "--device-memory",
        "80GB",
    ]);
    let plan: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(plan["fits"], true);
    assert_eq!(plan["tokens_per_micro_batch"], 8 * 128);
    let part = |name: &str| {
        plan["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"].as_str().unwrap().starts_with(name))
            .unwrap()["bytes"]
            .as_u64()
            .unwrap()
    };
    let params = plan["parameters"].as_u64().unwrap();
    assert_eq!(part("weights"), 4 * params);
    assert_eq!(part("AdamW"), 8 * params);
    let base = part("weights") + part("AdamW") + part("runtime");
    let head_or_grads = part("output head").max(part("gradients"));
    assert_eq!(
        plan["forward_backward_peak"].as_u64().unwrap(),
        base + part("activations") + head_or_grads
    );
    // Another shape from a config.json: a 7B Llama-2 with the 64K vocabulary.
    let shape = dir.path().join("config.json");
    std::fs::write(
        &shape,
        r#"{"model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
            "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 64000, "max_position_embeddings": 4096}"#,
    )
    .unwrap();
    let big = allam(&[
        "pretrain",
        "--config",
        config,
        "--plan",
        "--json",
        "--model-config",
        shape.to_str().unwrap(),
    ]);
    let plan: serde_json::Value = serde_json::from_slice(&big.stdout).unwrap();
    assert_eq!(plan["parameters"], 7_000_559_616u64);
    // A DPO micro-batch is chosen and rejected rows.
    let run = dir.path().join("never");
    let dpo = allam(&[
        "dpo",
        "--config",
        "examples/configs/dpo-tiny.toml",
        "--plan",
        "--json",
        "--model-config",
        shape.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(dpo.status.success(), "{}", stderr(&dpo));
    let plan: serde_json::Value = serde_json::from_slice(&dpo.stdout).unwrap();
    assert_eq!(plan["tokens_per_micro_batch"], 2 * 4 * 512);
    // Nothing ran: the run directory was not made.
    assert!(!run.exists());
}
