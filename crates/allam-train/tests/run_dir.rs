//! The run directory's rules on the library: one run per directory, a lock, stale temporaries
//! removed, damaged checkpoints found and skipped. (The CLI's tests kill a real process.)
mod common;

use std::path::Path;

use allam_train::Start;
use allam_train::checkpoint::{list_checkpoints, verify_checkpoint};
use allam_train::run_dir::DirLock;
use allam_train::train;
use allam_train::{Quiet, RunObserver, RunOptions};
use common::{losses, write_run};

fn options(max_steps: u64, start: Start) -> RunOptions {
    RunOptions {
        max_steps: Some(max_steps),
        start,
    }
}

/// Collects the messages a run tells.
#[derive(Default)]
struct Messages(std::sync::Mutex<Vec<String>>);

impl RunObserver for Messages {
    fn message(&self, message: &str) {
        self.0.lock().unwrap().push(message.to_string());
    }
}

impl Messages {
    fn all(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

fn steps_in(run: &Path) -> Vec<u64> {
    list_checkpoints(run)
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect()
}

#[test]
fn a_fresh_start_in_a_used_directory_is_refused_and_overwrite_starts_clean() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_run(dir.path(), 8, 2);
    let run = dir.path().join("run");
    train(&config, &run, &options(6, Start::Fresh), &Quiet).unwrap();
    assert_eq!(steps_in(&run), [4, 6]);

    // Fresh again: refused, nothing touched.
    let error = train(&config, &run, &options(2, Start::Fresh), &Quiet)
        .unwrap_err()
        .to_string();
    for needed in [
        run.display().to_string().as_str(),
        "already holds a run",
        "step 6",
        "--resume",
        "--overwrite",
    ] {
        assert!(error.contains(needed), "{needed:?} missing in: {error}");
    }
    assert_eq!(steps_in(&run), [4, 6]);
    assert_eq!(losses(&run).len(), 6);

    // Overwrite: the old run's checkpoints and metrics are gone before the new one starts, so
    // keep-2 never deletes the new run's checkpoints in favour of the old step 6.
    let messages = Messages::default();
    let summary = train(&config, &run, &options(2, Start::Overwrite), &messages).unwrap();
    assert_eq!(summary.steps, 2);
    assert_eq!(steps_in(&run), [2]);
    assert_eq!(losses(&run).iter().map(|(s, _)| *s).collect::<Vec<_>>(), [1, 2]);
    assert!(
        messages.all().contains("removed the previous run (--overwrite)"),
        "{}",
        messages.all()
    );
    assert_eq!(summary.checkpoint.unwrap(), run.join("checkpoints/step-00000002"));
}

#[test]
fn a_second_writer_is_refused_while_the_first_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_run(dir.path(), 2, 2);
    let run = dir.path().join("run");
    let held = DirLock::acquire(&run).unwrap();
    let error = train(&config, &run, &options(2, Start::Fresh), &Quiet)
        .unwrap_err()
        .to_string();
    assert!(error.contains("is in use by allam process"), "{error}");
    assert!(error.contains(&std::process::id().to_string()), "{error}");
    drop(held);
    // A lock file left by a process that died holds no lock: it does not block.
    std::fs::write(run.join(".allam.lock"), "allam process 999999 (killed)\n").unwrap();
    train(&config, &run, &options(2, Start::Fresh), &Quiet).unwrap();
}

#[test]
fn resume_removes_stale_temporaries_and_skips_a_damaged_newest_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_run(dir.path(), 8, 2);
    let straight = dir.path().join("straight");
    train(&config, &straight, &options(8, Start::Fresh), &Quiet).unwrap();

    let run = dir.path().join("run");
    train(&config, &run, &options(4, Start::Fresh), &Quiet).unwrap();
    assert_eq!(steps_in(&run), [2, 4]);
    // What `kill -9` during a checkpoint and an export leaves behind.
    let stale = run.join("checkpoints/.step-00000006.tmp-999999");
    std::fs::create_dir_all(stale.join("model")).unwrap();
    std::fs::write(stale.join("model/model.safetensors"), vec![0u8; 4096]).unwrap();
    std::fs::write(run.join("final/.model.safetensors.999999.tmp"), b"partial").unwrap();
    // The newest checkpoint is damaged afterwards (a full disk, a partial copy).
    let weights = run.join("checkpoints/step-00000004/model/model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() - 100]).unwrap();
    let problem = verify_checkpoint(&run.join("checkpoints/step-00000004"))
        .unwrap_err()
        .to_string();
    assert!(problem.contains("model/model.safetensors"), "{problem}");

    let messages = Messages::default();
    train(&config, &run, &options(8, Start::Resume), &messages).unwrap();
    let told = messages.all();
    assert!(told.contains("removed 2 temporary"), "{told}");
    assert!(told.contains("skipped a damaged checkpoint"), "{told}");
    assert!(
        told.contains("resumed from") && told.contains("step-00000002"),
        "{told}"
    );
    assert!(!stale.exists());
    assert!(!run.join("final/.model.safetensors.999999.tmp").exists());
    // Resumed from step 2, the run is still exactly the uninterrupted one.
    assert_eq!(losses(&run), losses(&straight));
    let read = |d: &Path| std::fs::read(d.join("final/model.safetensors")).unwrap();
    assert_eq!(read(&run), read(&straight));
}

#[test]
fn resume_without_an_intact_checkpoint_lists_what_it_checked() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_run(dir.path(), 4, 2);
    let run = dir.path().join("run");
    train(&config, &run, &options(4, Start::Fresh), &Quiet).unwrap();
    std::fs::remove_file(run.join("checkpoints/step-00000002/optimizer.safetensors")).unwrap();
    let state = run.join("checkpoints/step-00000004/trainer_state.json");
    std::fs::write(&state, "{\"step\": 4").unwrap();
    let error = train(&config, &run, &options(4, Start::Resume), &Quiet)
        .unwrap_err()
        .to_string();
    for needed in [
        "no intact checkpoint",
        "checked 2",
        "optimizer.safetensors is missing",
        "trainer_state.json",
    ] {
        assert!(error.contains(needed), "{needed:?} missing in: {error}");
    }
}

#[test]
fn a_checkpoint_without_a_file_list_is_checked_by_its_headers() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_run(dir.path(), 2, 2);
    let run = dir.path().join("run");
    train(&config, &run, &options(2, Start::Fresh), &Quiet).unwrap();
    let checkpoint = run.join("checkpoints/step-00000002");
    verify_checkpoint(&checkpoint).unwrap();
    std::fs::remove_file(checkpoint.join("files.json")).unwrap();
    verify_checkpoint(&checkpoint).unwrap();
    let optimizer = checkpoint.join("optimizer.safetensors");
    let mut bytes = std::fs::read(&optimizer).unwrap();
    bytes.extend_from_slice(b"tail");
    std::fs::write(&optimizer, bytes).unwrap();
    let problem = verify_checkpoint(&checkpoint).unwrap_err().to_string();
    assert!(
        problem.contains("optimizer.safetensors") && problem.contains("header describes"),
        "{problem}"
    );
}
