//! Training checkpoints: everything a run needs to continue exactly where it stopped.
//!
//! ```text
//! RUN_DIR/checkpoints/step-00000100/
//!   model/                  a Hugging Face directory (config.json, model.safetensors in f32,
//!                           tokenizer files): loadable by `transformers` and by `allam`
//!   optimizer.safetensors   AdamW moments by parameter name (f32, bit-exact), step counts in metadata
//!   trainer_state.json      step, tokens, data position (blend state), run fingerprint
//!   files.json              every other file's size, written last
//! ```
//! A checkpoint is written into a temporary directory and renamed into place, so a directory
//! named `step-*` is complete when it was written; only the newest `keep` are kept. Before a
//! checkpoint is used, [`verify_checkpoint`] checks it against `files.json` and reads the header
//! of every safetensors file, so one damaged later (a full disk, a partial copy) is found, and
//! `--resume` falls back to the newest intact one ([`newest_intact`]).
use std::path::{Path, PathBuf};

use allam_model::{HfConfig, Llama, SaveOptions, StorageDtype, save_model};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::optim::AdamW;
use crate::params::frozen;

/// The small part of a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Steps made.
    pub step: u64,
    /// Tokens read.
    pub tokens: u64,
    /// The objective's data position.
    pub data: serde_json::Value,
    /// What must not change on resume (model shape, batch layout), as written by the run.
    pub fingerprint: serde_json::Value,
}

/// Writes `bytes` to `path` atomically, with the mode the umask gives (`allam_io::write_atomic`).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    allam_io::write_atomic(path, bytes).map_err(|e| TrainError::io(path, e))
}

fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// The directory of the checkpoint after `step` steps.
pub fn checkpoint_dir(run_dir: &Path, step: u64) -> PathBuf {
    run_dir.join("checkpoints").join(format!("step-{step:08}"))
}

/// The checkpoints of a run (folders `step-N`), oldest first.
pub fn list_checkpoints(run_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let dir = run_dir.join("checkpoints");
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| TrainError::io(&dir, e))? {
        let entry = entry.map_err(|e| TrainError::io(&dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(step) = name.strip_prefix("step-").and_then(|s| s.parse::<u64>().ok())
            && entry.path().is_dir()
        {
            found.push((step, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Saves model, optimizer and state as the checkpoint of `state.step`, then removes all but the
/// newest `keep` checkpoints. `support_from` is a directory whose tokenizer files are copied
/// beside the weights.
pub fn save_checkpoint(
    run_dir: &Path,
    model: &Llama,
    hf_config: &HfConfig,
    optimizer: &AdamW,
    state: &TrainerState,
    support_from: Option<&Path>,
    keep: usize,
) -> Result<PathBuf> {
    let dir = checkpoint_dir(run_dir, state.step);
    let temp = temp_sibling(&dir);
    if temp.exists() {
        std::fs::remove_dir_all(&temp).map_err(|e| TrainError::io(&temp, e))?;
    }
    std::fs::create_dir_all(&temp).map_err(|e| TrainError::io(&temp, e))?;
    save_hf(
        model,
        hf_config,
        &temp.join("model"),
        support_from,
        StorageDtype::F32,
    )?;
    optimizer.save(&temp.join("optimizer.safetensors"))?;
    let json = serde_json::to_string_pretty(state).expect("the trainer state serialises");
    write_atomically(&temp.join("trainer_state.json"), json.as_bytes())?;
    write_file_list(&temp)?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
    }
    std::fs::rename(&temp, &dir).map_err(|e| TrainError::io(&dir, e))?;
    let all = list_checkpoints(run_dir)?;
    for (_, old) in all.iter().take(all.len().saturating_sub(keep.max(1))) {
        std::fs::remove_dir_all(old).map_err(|e| TrainError::io(old, e))?;
    }
    Ok(dir)
}

/// Writes `model` as a Hugging Face directory (the model without autodiff), with the tokenizer
/// files of `support_from`.
pub fn save_hf(
    model: &Llama,
    hf_config: &HfConfig,
    out: &Path,
    support_from: Option<&Path>,
    dtype: StorageDtype,
) -> Result<()> {
    let mut hf_config = hf_config.clone();
    hf_config.update(&model.config);
    hf_config.set_storage_dtype(dtype);
    let options = SaveOptions {
        dtype,
        ..SaveOptions::default()
    };
    save_model(&frozen(model), &hf_config, out, &options)?;
    if let Some(from) = support_from {
        allam_model::pretrained::copy_support_files(from, out)?;
    }
    Ok(())
}

/// Reads a checkpoint's state.
pub fn read_state(dir: &Path) -> Result<TrainerState> {
    let path = dir.join("trainer_state.json");
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::checkpoint(&path, e.to_string()))
}

/// The list of a checkpoint's files and sizes, written last.
pub const FILE_LIST: &str = "files.json";

/// Every regular file under `dir` (relative paths with `/`), sorted.
fn files_under(dir: &Path) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).map_err(|e| TrainError::io(&folder, e))? {
            let entry = entry.map_err(|e| TrainError::io(&folder, e))?;
            let meta = entry.metadata().map_err(|e| TrainError::io(entry.path(), e))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                let relative = entry.path().strip_prefix(dir).expect("under dir").to_path_buf();
                let name = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                if name != FILE_LIST {
                    out.push((name, meta.len()));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

fn write_file_list(dir: &Path) -> Result<()> {
    let files: serde_json::Map<String, serde_json::Value> = files_under(dir)?
        .into_iter()
        .map(|(name, size)| (name, serde_json::json!(size)))
        .collect();
    let json =
        serde_json::to_string_pretty(&serde_json::json!({ "files": files })).expect("a file list serialises");
    write_atomically(&dir.join(FILE_LIST), json.as_bytes())
}

/// Checks that a checkpoint is whole: the files and sizes of its `files.json` (a checkpoint
/// without one, from an older allam, is checked by its headers alone), the header of every
/// safetensors file against its size, and that `trainer_state.json` and `model/config.json`
/// parse. The error names the checkpoint and the first problem found.
pub fn verify_checkpoint(dir: &Path) -> Result<()> {
    let bad = |message: String| TrainError::checkpoint(dir, message);
    let present = files_under(dir)?;
    let list_path = dir.join(FILE_LIST);
    match std::fs::read_to_string(&list_path) {
        Ok(text) => {
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| bad(format!("{FILE_LIST} does not parse ({e})")))?;
            let listed = value["files"]
                .as_object()
                .ok_or_else(|| bad(format!("{FILE_LIST} has no \"files\" object")))?;
            for (name, size) in listed {
                let expected = size
                    .as_u64()
                    .ok_or_else(|| bad(format!("{FILE_LIST}: the size of {name} is not a number")))?;
                match present.iter().find(|(n, _)| n == name) {
                    None => return Err(bad(format!("{name} is missing"))),
                    Some((_, actual)) if *actual != expected => {
                        return Err(bad(format!("{name} has {actual} bytes, {expected} were written")));
                    }
                    Some(_) => {}
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(TrainError::io(&list_path, e)),
    }
    for required in ["trainer_state.json", "optimizer.safetensors", "model/config.json"] {
        if !present.iter().any(|(n, _)| n == required) {
            return Err(bad(format!("{required} is missing")));
        }
    }
    if !present
        .iter()
        .any(|(n, _)| n.starts_with("model/model") && n.ends_with(".safetensors"))
    {
        return Err(bad("model/ holds no weights (model*.safetensors)".into()));
    }
    for (name, size) in &present {
        if name.ends_with(".safetensors") {
            check_safetensors_header(&dir.join(name), *size).map_err(|m| bad(format!("{name}: {m}")))?;
        }
    }
    read_state(dir)?;
    let config = dir.join("model/config.json");
    let text = std::fs::read_to_string(&config).map_err(|e| TrainError::io(&config, e))?;
    serde_json::from_str::<serde_json::Value>(&text)
        .map_err(|e| bad(format!("model/config.json does not parse ({e})")))?;
    Ok(())
}

/// Reads a safetensors header and checks that the file is as long as the header says.
fn check_safetensors_header(path: &Path, size: u64) -> std::result::Result<(), String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix)
        .map_err(|_| format!("{size} bytes, too short for a safetensors header"))?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > size.saturating_sub(8) || header_len > 100_000_000 {
        return Err(format!(
            "the header claims {header_len} bytes but the file has {size}"
        ));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(|e| e.to_string())?;
    let value: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| format!("the header does not parse ({e})"))?;
    let end = value
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != "__metadata__")
        .filter_map(|(_, t)| t["data_offsets"][1].as_u64())
        .max()
        .unwrap_or(0);
    let expected = 8 + header_len + end;
    if expected != size {
        return Err(format!(
            "{size} bytes, but its header describes {expected} (truncated or damaged)"
        ));
    }
    Ok(())
}

/// The newest checkpoint of `run_dir` that passes [`verify_checkpoint`], with a warning for each
/// newer one skipped; `None` if the run has no checkpoint; an error listing every checkpoint and
/// its problem if none is intact.
pub fn newest_intact(run_dir: &Path) -> Result<(Option<PathBuf>, Vec<String>)> {
    let mut problems = Vec::new();
    let all = list_checkpoints(run_dir)?;
    if all.is_empty() {
        return Ok((None, problems));
    }
    for (_, dir) in all.iter().rev() {
        match verify_checkpoint(dir) {
            Ok(()) => {
                let warnings = problems
                    .iter()
                    .map(|p| format!("skipped a damaged checkpoint: {p}"))
                    .collect();
                return Ok((Some(dir.clone()), warnings));
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    Err(TrainError::checkpoint(
        run_dir.join("checkpoints"),
        format!(
            "no intact checkpoint to resume from; checked {}:\n  {}",
            all.len(),
            problems.join("\n  ")
        ),
    ))
}
