//! Writing Hugging Face checkpoints that `transformers` loads as its own.
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use allam_io::AtomicFile;
use safetensors::{Dtype, View};
use serde_json::json;

use crate::config::StorageDtype;
use crate::error::{ModelError, Result};
use crate::hf_config::HfConfig;
use crate::model::Llama;

/// How to write a checkpoint.
#[derive(Clone, Debug)]
pub struct SaveOptions {
    /// Storage dtype of the weights.
    pub dtype: StorageDtype,
    /// Largest shard in bytes; `None` writes a single `model.safetensors`.
    pub max_shard_bytes: Option<u64>,
}

impl Default for SaveOptions {
    fn default() -> Self {
        Self {
            dtype: StorageDtype::F32,
            max_shard_bytes: Some(5 * 1000 * 1000 * 1000),
        }
    }
}

struct OwnedTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &OwnedTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn encode(values: &[f32], dtype: StorageDtype) -> Vec<u8> {
    match dtype {
        StorageDtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        StorageDtype::Bf16 => values
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect(),
        StorageDtype::F16 => values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect(),
    }
}

/// Writes `model` to `dir` as `config.json` (from `hf_config`, updated with the model's
/// architecture and `dtype`) plus `model.safetensors`, or shards with `model.safetensors.index.json`
/// when the weights exceed `max_shard_bytes`.
///
/// Every file is written under a temporary name and renamed into place, so an interrupted save
/// never leaves a file that looks complete; weight files of an earlier save in `dir` that the new
/// one does not use are removed.
pub fn save_model(model: &Llama, hf_config: &HfConfig, dir: &Path, options: &SaveOptions) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let tensors = super::hf_tensors(model);
    let st_dtype = match options.dtype {
        StorageDtype::F32 => Dtype::F32,
        StorageDtype::Bf16 => Dtype::BF16,
        StorageDtype::F16 => Dtype::F16,
    };
    // Plan shards from the sizes alone, then materialise one shard at a time.
    let sizes: Vec<u64> = tensors
        .iter()
        .map(|(_, t)| (t.shape().iter().product::<usize>() * options.dtype.size()) as u64)
        .collect();
    let mut shards: Vec<Vec<usize>> = vec![Vec::new()];
    let mut current = 0u64;
    for (i, size) in sizes.iter().enumerate() {
        let last = shards.last_mut().expect("non-empty");
        if let Some(max) = options.max_shard_bytes
            && !last.is_empty()
            && current + size > max
        {
            shards.push(Vec::new());
            current = 0;
        }
        shards.last_mut().expect("non-empty").push(i);
        current += size;
    }
    let count = shards.len();
    let file_name = |k: usize| {
        if count == 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{count:05}.safetensors", k + 1)
        }
    };
    let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    let mut written: Vec<AtomicFile> = Vec::new();
    let mut weight_map = serde_json::Map::new();
    for (k, shard) in shards.iter().enumerate() {
        let owned: Vec<(String, OwnedTensor)> = shard
            .iter()
            .map(|&i| {
                let (name, tensor) = &tensors[i];
                weight_map.insert(name.clone(), json!(file_name(k)));
                let owned = OwnedTensor {
                    dtype: st_dtype,
                    shape: tensor.shape(),
                    bytes: encode(&tensor.to_host(), options.dtype),
                };
                (name.clone(), owned)
            })
            .collect();
        let target = dir.join(file_name(k));
        let file = AtomicFile::create(&target).map_err(|e| ModelError::io(&target, e))?;
        // safetensors writes only to a path (its own private temporary, renamed onto this one);
        // the commit gives the file the umask's mode and fsyncs it.
        safetensors::serialize_to_file(
            owned.iter().map(|(n, t)| (n.as_str(), t)),
            metadata.clone(),
            file.path(),
        )
        .map_err(|e| ModelError::Safetensors {
            path: file.path().to_path_buf(),
            message: e.to_string(),
        })?;
        written.push(file);
    }
    if count > 1 {
        let index = json!({
            "metadata": {"total_size": sizes.iter().sum::<u64>()},
            "weight_map": weight_map,
        });
        let target = dir.join("model.safetensors.index.json");
        let text = serde_json::to_string_pretty(&index).expect("JSON value serialises") + "\n";
        written.push(written_file(&target, text.as_bytes())?);
    }
    let mut config = hf_config.clone();
    config.update(&model.config);
    config.set_storage_dtype(options.dtype);
    let target = dir.join("config.json");
    written.push(written_file(&target, config.to_json_string().as_bytes())?);

    remove_stale_weights(dir, &written)?;
    for file in written {
        let target = file.target().to_path_buf();
        file.commit().map_err(|e| ModelError::io(&target, e))?;
    }
    Ok(())
}

/// `bytes` written to a temporary sibling of `target`, not yet renamed onto it.
fn written_file(target: &Path, bytes: &[u8]) -> Result<AtomicFile> {
    let mut file = AtomicFile::create(target).map_err(|e| ModelError::io(target, e))?;
    file.write_all(bytes).map_err(|e| ModelError::io(target, e))?;
    Ok(file)
}

fn remove_stale_weights(dir: &Path, keep: &[AtomicFile]) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| ModelError::io(dir, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_weights = name.starts_with("model")
            && (name.ends_with(".safetensors") || name == "model.safetensors.index.json");
        if is_weights && !keep.iter().any(|file| file.target() == path) {
            std::fs::remove_file(&path).map_err(|e| ModelError::io(&path, e))?;
        }
    }
    Ok(())
}
