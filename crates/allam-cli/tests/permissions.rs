//! Under `umask 022` every file `allam` writes for users is 0644 and every directory 0755 — what
//! `File::create` and `create_dir` give — including the safetensors weights, whose writer once left
//! them owner-only (0600): a pretrain run directory (its data build, checkpoint and final export),
//! an export and a tokenizer expansion.
#![cfg(unix)]
mod common;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use allam_tokenizer::ByteLevelStyle;
use allam_tokenizer::fixture::byte_level_style_tokenizer;
use common::{fixture, repo, stderr};

/// Runs `allam ARGS` under `umask 022`.
fn allam_umask_022(args: &[&str]) -> Output {
    let out = Command::new("sh")
        .arg("-c")
        .arg("umask 022 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_allam"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run allam");
    assert!(out.status.success(), "allam {args:?}: {}", stderr(&out));
    out
}

/// Every path under `root` (itself included) whose mode is not 0644 for a file, 0755 for a
/// directory, with its mode; and how many files there were.
fn wrong_modes(root: &Path) -> (Vec<(PathBuf, u32)>, usize) {
    let (mut wrong, mut files) = (Vec::new(), 0);
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        let want = if meta.is_dir() { 0o755 } else { 0o644 };
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            files += 1;
        }
        if mode != want {
            wrong.push((path, mode));
        }
    }
    (wrong, files)
}

fn assert_plain_modes(root: &Path, at_least: usize) {
    let (wrong, files) = wrong_modes(root);
    assert!(
        wrong.is_empty(),
        "modes other than 0644/0755: {:?}",
        wrong
            .iter()
            .map(|(p, m)| format!("{} {m:o}", p.display()))
            .collect::<Vec<_>>()
    );
    assert!(files >= at_least, "{}: only {files} files", root.display());
}

#[test]
fn files_written_for_users_have_the_modes_the_umask_gives() {
    let dir = tempfile::Builder::new()
        .permissions(std::fs::Permissions::from_mode(0o755))
        .tempdir()
        .unwrap();

    // A pretrain run: data build, a checkpoint after step 2, the final export, metrics, plots.
    let text = std::fs::read_to_string(repo().join("examples/configs/pretrain-tiny.toml"))
        .unwrap()
        .replace("\"../../", &format!("\"{}/", repo().display()))
        .replace(
            "\"../recipes/",
            &format!("\"{}/examples/recipes/", repo().display()),
        )
        .replace("every = 40\nkeep = 2", "every = 2\nkeep = 2");
    let config = dir.path().join("pretrain.toml");
    std::fs::write(&config, text).unwrap();
    let run = dir.path().join("run");
    allam_umask_022(&[
        "pretrain",
        "--config",
        config.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--max-steps",
        "2",
    ]);
    assert!(run.join("data").is_dir() && run.join("checkpoints").is_dir());
    assert_plain_modes(&run, 10);

    // An export of a fixture checkpoint, sharded.
    let export = dir.path().join("export");
    let model = fixture("tiny-gqa-untied");
    allam_umask_022(&[
        "export",
        "--model",
        model.to_str().unwrap(),
        "--out",
        export.to_str().unwrap(),
        "--max-shard-size",
        "50KB",
    ]);
    assert!(export.join("model.safetensors.index.json").exists());
    assert_plain_modes(&export, 4);

    // A tokenizer expansion.
    let work = dir.path().join("tokenizer-input");
    std::fs::create_dir(&work).unwrap();
    let base = byte_level_style_tokenizer(300, 5, ByteLevelStyle::Gpt2).unwrap();
    let base_path = work.join("tokenizer.json");
    std::fs::write(&base_path, base.to_string(false).unwrap()).unwrap();
    let corpus = work.join("ar.txt");
    std::fs::write(&corpus, "ذَهَبَ الوَلَدُ إِلَى المَدْرَسَةِ فِي الصَّبَاحِ.\n".repeat(3)).unwrap();
    let size = (base.get_vocab_size(true) + 20).to_string();
    let expanded = dir.path().join("expanded");
    allam_umask_022(&[
        "tokenizer",
        "expand",
        "--base",
        base_path.to_str().unwrap(),
        "--corpus",
        corpus.to_str().unwrap(),
        "--vocab-size",
        &size,
        "--min-frequency",
        "1",
        "--out",
        expanded.to_str().unwrap(),
    ]);
    assert_plain_modes(&expanded, 1);
}
