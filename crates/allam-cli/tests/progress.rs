//! Progress of long commands when stderr is not a terminal (a CI log): plain lines with the
//! position, loss, tokens per second and time left; `--quiet` shows none.
mod common;

use std::process::{Command, Output};

use common::repo;

/// Runs `allam` with stderr captured (a pipe, not a terminal); `every` sets ALLAM_PROGRESS_EVERY.
fn allam(args: &[&str], every: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_allam"));
    command.args(args).current_dir(repo());
    match every {
        Some(seconds) => command.env("ALLAM_PROGRESS_EVERY", seconds),
        None => command.env_remove("ALLAM_PROGRESS_EVERY"),
    };
    let out = command.output().expect("allam runs");
    assert!(
        out.status.success(),
        "allam {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The progress lines of `prefix` in stderr.
fn lines(out: &Output, prefix: &str) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with(&format!("{prefix}: ")))
        .map(str::to_string)
        .collect()
}

#[test]
fn long_commands_print_plain_progress_lines_or_none_when_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    let config = "examples/configs/pretrain-tiny.toml";

    // Default cadence (10 s): the first and the last step at least, each with the whole story.
    let out = allam(
        &["pretrain", "--config", config, "--out", run_s, "--max-steps", "3"],
        None,
    );
    let shown = lines(&out, "pretrain");
    assert!(
        shown
            .first()
            .is_some_and(|l| l.starts_with("pretrain: step 1/3 (33%) · loss ")),
        "{shown:?}"
    );
    assert!(
        shown
            .last()
            .is_some_and(|l| l.starts_with("pretrain: step 3/3 (100%)")),
        "{shown:?}"
    );
    for line in &shown {
        for field in [" · loss ", " · lr ", " tok/s", " · elapsed "] {
            assert!(line.contains(field), "{field} missing in {line}");
        }
    }
    assert!(
        shown[0].contains(" · eta ") && shown.last().unwrap().ends_with(" · done"),
        "{shown:?}"
    );
    // The summary stays alone on stdout.
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["steps"], 3);

    // `0` seconds: a line every step.
    let out = allam(
        &[
            "pretrain",
            "--config",
            config,
            "--out",
            run_s,
            "--max-steps",
            "5",
            "--resume",
        ],
        Some("0"),
    );
    let steps: Vec<String> = lines(&out, "pretrain")
        .iter()
        .map(|l| l.split(" (").next().unwrap().to_string())
        .collect();
    assert_eq!(steps, ["pretrain: step 4/5", "pretrain: step 5/5"]);

    // --quiet: nothing but errors on stderr, stdout unchanged.
    let out = allam(
        &[
            "pretrain",
            "--quiet",
            "--config",
            config,
            "--out",
            run_s,
            "--max-steps",
            "6",
            "--resume",
        ],
        Some("0"),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "--quiet prints no progress"
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["steps"],
        6
    );

    // Scoring commands: requests done, loss so far (nats/token), tokens per second.
    let model = run.join("final");
    let model = model.to_str().unwrap();
    let out = allam(
        &[
            "ppl",
            "--model",
            model,
            "--text",
            "data/sample/en_heldout.txt",
            "--window",
            "32",
            "--batch-size",
            "2",
        ],
        Some("0"),
    );
    let shown = lines(&out, "ppl");
    assert!(shown.len() > 2, "one line per batch: {shown:?}");
    assert!(
        shown
            .iter()
            .all(|l| l.contains(" · loss ") && l.contains(" tok/s")),
        "{shown:?}"
    );
    let total = shown[0].split('/').nth(1).unwrap().split(' ').next().unwrap();
    assert!(
        shown
            .last()
            .unwrap()
            .starts_with(&format!("ppl: request {total}/{total} (100%)")),
        "{shown:?}"
    );
    let out = allam(
        &[
            "eval",
            "--model",
            model,
            "--task",
            "mc-jsonl",
            "--data",
            "data/sample/mc_questions.jsonl",
        ],
        Some("0"),
    );
    assert!(
        lines(&out, "eval").last().is_some_and(|l| l.contains("(100%)")),
        "{out:?}"
    );
    let out = allam(
        &[
            "eval",
            "--quiet",
            "--model",
            model,
            "--task",
            "mc-jsonl",
            "--data",
            "data/sample/mc_questions.jsonl",
        ],
        Some("0"),
    );
    assert!(lines(&out, "eval").is_empty() && !out.stdout.is_empty());
}
