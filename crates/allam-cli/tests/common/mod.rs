//! Helpers shared by the tests of the `allam` binary.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (the example configurations' paths are relative to it).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A checkpoint under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures").join(name)
}

/// Runs `allam ARGS` and returns what it did, whatever its exit status.
pub fn allam(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_allam"))
        .args(args)
        .output()
        .expect("run allam")
}

/// Runs `allam ARGS` from the repository root.
pub fn allam_in_repo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_allam"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run allam")
}

/// Stdout as JSON, after checking the command succeeded (stderr in the message otherwise).
pub fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "stderr: {}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

/// Stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
