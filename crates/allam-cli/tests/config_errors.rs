//! An error about a configuration key names the configuration file and the key.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::repo;

/// The example configuration `name` with `from` replaced by `to`, written into `dir`.
fn edited(dir: &Path, name: &str, from: &str, to: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("examples/configs").join(name)).unwrap();
    assert!(text.contains(from), "{name} has no `{from}`");
    let path = dir.join(format!("bad-{name}"));
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    path
}

/// stderr of a failing `allam` run.
fn fails(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_allam"))
        .args(args)
        .arg("--quiet")
        .current_dir(repo())
        .output()
        .expect("allam runs");
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn errors_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run = run.to_str().unwrap();
    let cases = [
        (
            "pretrain",
            "pretrain-tiny.toml",
            "num_attention_heads = 4",
            "num_attention_heads = 3",
            "[model.architecture]",
        ),
        (
            "pretrain",
            "pretrain-tiny.toml",
            "grad_accum = 1",
            "grad_accum = 1\ndevice = \"tpu\"",
            "[train] device",
        ),
        (
            "pretrain",
            "pretrain-tiny.toml",
            "lr = 3e-3",
            "lr = -1.0",
            "[schedule]",
        ),
        ("dpo", "dpo-tiny.toml", "beta = 0.1", "beta = -0.1", "[dpo]"),
        (
            "dpo",
            "dpo-tiny.toml",
            "template = \"llama2\"",
            "template = \"nope\"",
            "[data] template",
        ),
        ("sft", "sft-tiny.toml", "[train]", "[train]\nfoo = 1", "foo"),
    ];
    for (command, name, from, to, key) in cases {
        let config = edited(dir.path(), name, from, to);
        let stderr = fails(&[command, "--config", config.to_str().unwrap(), "--out", run]);
        assert!(
            stderr.contains(&format!("bad-{name}")) && stderr.contains(key),
            "{command} with `{to}`: the error should name bad-{name} and {key}: {stderr}"
        );
    }
}
