//! Training checkpoints: everything a run needs to continue exactly where it stopped.
//!
//! ```text
//! RUN_DIR/checkpoints/step-00000100/
//!   model/                  a Hugging Face directory (config.json, model.safetensors in f32,
//!                           tokenizer files): loadable by `transformers` and by `allam`
//!   optimizer.safetensors   AdamW moments by parameter name (f32, bit-exact), step counts in metadata
//!   trainer_state.json      step, tokens, data position (blend state), run fingerprint
//! ```
//! A checkpoint is written into a temporary directory and renamed into place, so a directory
//! named `step-*` is always complete; only the newest `keep` are kept.
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

/// Writes `bytes` to `path` through a temporary file and a rename (the data crate's writer).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(allam_data::report::write_atomic(path, bytes)?)
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

/// Complete checkpoints of a run, oldest first.
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
            && entry.path().join("trainer_state.json").exists()
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
