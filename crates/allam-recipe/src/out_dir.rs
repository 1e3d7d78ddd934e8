//! The recipe's `out/` folder: one recipe run at a time (a lock), the previous run replaced or
//! (resuming) kept, anything else refused; and what the stages' run folders say afterwards.
use std::path::Path;

use allam_train::run_dir::{DirLock, LOCK_FILE};

use crate::error::{RecipeError, Result};
use crate::progress::StageProgress;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RecipeError + '_ {
    move |e| RecipeError::io(path, e)
}

/// What a recipe run writes into `out/`.
const RECIPE_OUTPUTS: &[&str] = &[
    "tokenizers",
    "data",
    "stage1-base",
    "stage2-expanded",
    "stage3-mixed",
    "stage3-control",
    "stage4-sft",
    "stage5-dpo",
    "scores",
    "recipe-state.json",
    "report.md",
    "report.json",
    "bpb.svg",
];

/// Locks `out` for this run and removes the previous recipe run's outputs (saying so; kept when
/// `resume`); refuses a directory that holds other files and no recipe run, so a wrong `out`
/// never loses anything.
pub(crate) fn claim_out(out: &Path, resume: bool, progress: &dyn StageProgress) -> Result<DirLock> {
    let lock = DirLock::acquire(out)?;
    let mut ours = Vec::new();
    let mut others = Vec::new();
    for entry in std::fs::read_dir(out).map_err(io(out))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if RECIPE_OUTPUTS.contains(&name.as_str()) {
            ours.push(name);
        } else if name != LOCK_FILE {
            others.push(name);
        }
    }
    if ours.is_empty() && !others.is_empty() {
        return Err(RecipeError::Config(format!(
            "{} is not empty ({}) and holds no recipe run: choose a new or empty `out`",
            out.display(),
            others.join(", ")
        )));
    }
    if !ours.is_empty() && !resume {
        ours.sort();
        progress.message(&format!(
            "replacing the previous recipe run in {} ({})",
            out.display(),
            ours.join(", ")
        ));
        for name in &ours {
            let path = out.join(name);
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(io(&path))?;
        }
    }
    Ok(lock)
}

/// Training tokens per second of the run in `dir`: its tokens over the time its steps took
/// (evaluations and checkpoints left out), from `metrics.jsonl`.
pub fn tokens_per_second(dir: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).ok()?;
    let (mut tokens, mut seconds, mut before) = (0.0, 0.0, 0.0);
    for row in text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    {
        let (Some(total), Some(rate)) = (row["tokens"].as_f64(), row["tokens_per_s"].as_f64()) else {
            continue;
        };
        let step = total - before;
        before = total;
        if rate > 0.0 {
            tokens += step;
            seconds += step / rate;
        }
    }
    (seconds > 0.0).then(|| tokens / seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    #[test]
    fn a_recipe_replaces_its_own_run_and_refuses_anything_else() {
        let dir = tempfile::tempdir().unwrap();
        // Someone else's folder: refused, untouched.
        let other = dir.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("notes.txt"), "mine").unwrap();
        let error = claim_out(&other, false, &Silent).unwrap_err().to_string();
        assert!(
            error.contains("holds no recipe run") && error.contains("notes.txt"),
            "{error}"
        );
        assert!(other.join("notes.txt").exists());

        // A previous recipe run: its stages go, so no stage mixes old checkpoints with new.
        let out = dir.path().join("run");
        std::fs::create_dir_all(out.join("stage1-base/checkpoints/step-00000099")).unwrap();
        std::fs::write(out.join("report.md"), "old").unwrap();
        let lock = claim_out(&out, false, &Silent).unwrap();
        assert!(!out.join("stage1-base").exists() && !out.join("report.md").exists());
        // While it runs, a second recipe into the same folder stops.
        let error = claim_out(&out, false, &Silent).unwrap_err().to_string();
        assert!(error.contains("is in use by allam process"), "{error}");
        drop(lock);
        // Resuming keeps what the previous run wrote.
        std::fs::write(out.join("report.md"), "old").unwrap();
        claim_out(&out, true, &Silent).unwrap();
        assert!(out.join("report.md").exists());
    }

    #[test]
    fn throughput_is_tokens_over_the_steps_time() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(tokens_per_second(dir.path()), None);
        // 100 tokens at 50/s (2 s), then 300 at 100/s (3 s): 400 tokens in 5 s.
        let rows = "{\"step\":1,\"tokens\":100,\"tokens_per_s\":50.0}\n{\"step\":2,\"tokens\":400,\"tokens_per_s\":100.0}\n";
        std::fs::write(dir.path().join("metrics.jsonl"), rows).unwrap();
        assert_eq!(tokens_per_second(dir.path()), Some(80.0));
    }
}
