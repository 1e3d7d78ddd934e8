//! The run directory's rules: one process at a time, one run per directory, no leftovers.
//!
//! - **A lock** (`RUN_DIR/.allam.lock`, an OS file lock held for the run's life): a second process
//!   writing the same directory stops at once and names the holder. The OS drops the lock when its
//!   process dies, so a killed run never blocks the next one.
//! - **One run per directory**: a fresh start in a directory that already holds a run (a
//!   checkpoint, `final/` or rows in `metrics.jsonl`) is refused — continue it with `--resume`,
//!   choose a new `--out`, or pass `--overwrite` to delete the old run's outputs first.
//! - **No leftovers**: temporaries of an interrupted run (a checkpoint being written when the
//!   process was killed, half-written exports) are removed by the next start or `--resume`, which
//!   says what it removed.
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};

/// How a run treats what its directory already holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Start {
    /// A new run: refused if the directory holds one.
    #[default]
    Fresh,
    /// Continue from the newest intact checkpoint (step 0 if there is none).
    Resume,
    /// Delete the outputs of a run already there, then start a new one.
    Overwrite,
}

impl Start {
    /// From the command line's `--resume` and `--overwrite` flags (which exclude each other).
    pub fn from_flags(resume: bool, overwrite: bool) -> Result<Self> {
        match (resume, overwrite) {
            (true, true) => Err(TrainError::Config(
                "--resume and --overwrite exclude each other: continue the run, or delete it and start again"
                    .into(),
            )),
            (true, false) => Ok(Self::Resume),
            (false, true) => Ok(Self::Overwrite),
            (false, false) => Ok(Self::Fresh),
        }
    }
}

/// What a run writes into its directory, and an overwrite or a fresh start removes.
pub const RUN_OUTPUTS: &[&str] = &[
    "checkpoints",
    "final",
    "metrics.jsonl",
    "loss.svg",
    "run_config.json",
    "data",
    "tokenizer",
    "packing.json",
    "reference_logprobs.json",
];

/// The name of the lock file in a locked directory.
pub const LOCK_FILE: &str = ".allam.lock";

/// An exclusive lock on a directory, held until dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Locks `dir` (created if missing) for this process, or says which process holds it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() {
                    "another process".to_string()
                } else {
                    holder.to_string()
                };
                return Err(TrainError::Config(format!(
                    "{} is in use by {holder}: wait for it to finish, or write to another directory",
                    dir.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(TrainError::io(&path, e)),
        }
        let me = format!(
            "allam process {} ({})\n",
            std::process::id(),
            std::env::args().collect::<Vec<_>>().join(" ")
        );
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(me.as_bytes()))
            .and_then(|_| file.flush())
            .map_err(|e| TrainError::io(&path, e))?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A run directory prepared for a run: locked, cleaned of an interrupted run's temporaries, and
/// checked (or cleared) according to [`Start`]. Keep it alive for the run's whole life.
#[derive(Debug)]
pub struct RunDir {
    lock: DirLock,
    /// What preparing the directory did (removed temporaries, a cleared run), to tell the user.
    pub notes: Vec<String>,
}

impl RunDir {
    /// Locks `dir`, removes stale temporaries and applies `start`.
    pub fn prepare(dir: &Path, start: Start) -> Result<Self> {
        let lock = DirLock::acquire(dir)?;
        let mut notes = Vec::new();
        let existing = run_evidence(dir)?;
        if start == Start::Fresh && !existing.is_empty() {
            // Refused before anything is touched.
            return Err(TrainError::Config(format!(
                "{} already holds a run ({}): continue it with --resume, write to a new --out, \
                 or pass --overwrite to delete its outputs first",
                dir.display(),
                existing.join(", ")
            )));
        }
        let removed = remove_temporaries(dir)?;
        if !removed.is_empty() {
            notes.push(format!(
                "removed {} temporary file(s) or folder(s) left by an interrupted run: {}",
                removed.len(),
                removed
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        match start {
            Start::Resume => {}
            // Nothing of a run, but perhaps the leftovers of a start that never made a step (a
            // data build, a copied tokenizer): a fresh run starts without them.
            Start::Fresh | Start::Overwrite => {
                let cleared = clear_outputs(dir, start == Start::Fresh)?;
                if !cleared.is_empty() {
                    let what = if existing.is_empty() {
                        "leftovers of an earlier start"
                    } else {
                        "the previous run (--overwrite)"
                    };
                    notes.push(format!("removed {what}: {}", cleared.join(", ")));
                }
            }
        }
        Ok(Self { lock, notes })
    }

    /// The lock file (for messages).
    pub fn lock_path(&self) -> &Path {
        self.lock.path()
    }
}

/// What shows that `dir` holds a run: its checkpoints, `final/`, and rows of `metrics.jsonl`.
pub fn run_evidence(dir: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let checkpoints = crate::checkpoint::list_checkpoints(dir)?;
    if let Some((step, _)) = checkpoints.last() {
        found.push(format!(
            "{} checkpoint(s), the newest at step {step}",
            checkpoints.len()
        ));
    }
    if dir.join("final").exists() {
        found.push("final/".into());
    }
    let metrics = dir.join("metrics.jsonl");
    if let Ok(text) = std::fs::read_to_string(&metrics) {
        let rows = text.lines().filter(|l| !l.trim().is_empty()).count();
        if rows > 0 {
            found.push(format!("metrics.jsonl with {rows} row(s)"));
        }
    }
    Ok(found)
}

/// Removes the run outputs of `dir` ([`RUN_OUTPUTS`]); `keep_caches` keeps the DPO reference
/// cache, which records what it was computed from and is recomputed when that changes.
fn clear_outputs(dir: &Path, keep_caches: bool) -> Result<Vec<String>> {
    let mut cleared = Vec::new();
    for name in RUN_OUTPUTS {
        if keep_caches && *name == "reference_logprobs.json" {
            continue;
        }
        let path = dir.join(name);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            std::fs::remove_dir_all(&path).map_err(|e| TrainError::io(&path, e))?;
            cleared.push(format!("{name}/"));
        } else {
            std::fs::remove_file(&path).map_err(|e| TrainError::io(&path, e))?;
            cleared.push(name.to_string());
        }
    }
    Ok(cleared)
}

/// Whether `name` is a temporary that one of our writers makes beside its target: checkpoint
/// staging folders `.step-N.tmp-PID`, weight and config files `.NAME.PID.tmp`, atomic writes
/// `.tmp-XXXXXX.tmp`, data build staging `.data.building-PID` and swap folders `.data.old-PID`.
fn is_temporary(name: &str) -> bool {
    name.starts_with('.')
        && (name.contains(".tmp-")
            || name.ends_with(".tmp")
            || name.starts_with(".data.building-")
            || name.starts_with(".data.old-"))
}

/// Removes every temporary in `dir`, `dir/checkpoints` and `dir/final` (the lock is held, so none
/// belongs to a live writer). A `.data.old-PID` folder is a complete previous data build that a
/// killed build had moved aside: it is put back if `data/` is missing.
fn remove_temporaries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for folder in [dir.to_path_buf(), dir.join("checkpoints"), dir.join("final")] {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !is_temporary(&name) {
                continue;
            }
            let path = entry.path();
            if name.starts_with(".data.old-") && !dir.join("data").exists() {
                std::fs::rename(&path, dir.join("data")).map_err(|e| TrainError::io(&path, e))?;
                continue;
            }
            let result = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            result.map_err(|e| TrainError::io(&path, e))?;
            removed.push(path);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporaries_are_recognised_by_their_writers_names() {
        for name in [
            ".step-00000004.tmp-4242",
            ".model.safetensors.4242.tmp",
            ".config.json.4242.tmp",
            ".tmp-Ab12Cd.tmp",
            ".data.building-4242",
            ".data.old-4242",
        ] {
            assert!(is_temporary(name), "{name}");
        }
        for name in [
            "step-00000004",
            "metrics.jsonl",
            ".allam.lock",
            "model.safetensors",
            "tmp",
        ] {
            assert!(!is_temporary(name), "{name}");
        }
    }

    #[test]
    fn flags_map_to_one_start() {
        assert_eq!(Start::from_flags(false, false).unwrap(), Start::Fresh);
        assert_eq!(Start::from_flags(true, false).unwrap(), Start::Resume);
        assert_eq!(Start::from_flags(false, true).unwrap(), Start::Overwrite);
        assert!(Start::from_flags(true, true).is_err());
    }
}
