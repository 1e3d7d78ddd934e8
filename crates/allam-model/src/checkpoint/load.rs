//! Reading safetensors checkpoints, memory-mapped, one tensor at a time.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use memmap2::{Mmap, UncheckedAdvice};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};
use crate::hf_config::HfConfig;
use crate::model::Llama;

/// Where one tensor lives: file, dtype, shape and byte range within the file.
#[derive(Clone, Debug)]
struct Entry {
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// The tensors of a single-file or sharded safetensors checkpoint, memory-mapped.
///
/// Each tensor is converted to f32 when taken, and its pages are released from the mapping right
/// after, so loading never holds a second full copy of the weights.
pub struct SafetensorsReader {
    files: Vec<(PathBuf, Mmap)>,
    entries: BTreeMap<String, Entry>,
    taken: HashSet<String>,
}

impl SafetensorsReader {
    /// Opens `dir/model.safetensors`, or the shards listed in `dir/model.safetensors.index.json`.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let index = dir.join("model.safetensors.index.json");
        let single = dir.join("model.safetensors");
        if index.exists() {
            Self::open_index(&index)
        } else if single.exists() {
            Self::open_files(&[single])
        } else {
            Err(ModelError::io(
                &single,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no model.safetensors or model.safetensors.index.json in the model directory",
                ),
            ))
        }
    }

    /// Opens the shards named by a `model.safetensors.index.json`, checking that every tensor the
    /// index lists is in the shard it names.
    pub fn open_index(index: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(index).map_err(|e| ModelError::io(index, e))?;
        let json: Value = serde_json::from_str(&text).map_err(|e| ModelError::Json {
            path: index.to_path_buf(),
            message: e.to_string(),
        })?;
        let map = json
            .get("weight_map")
            .and_then(Value::as_object)
            .ok_or_else(|| ModelError::Json {
                path: index.to_path_buf(),
                message: "expected an object under \"weight_map\"".into(),
            })?;
        let dir = index.parent().unwrap_or(Path::new("."));
        let mut shard_names: Vec<&str> = Vec::new();
        for (tensor, file) in map {
            let file = file.as_str().ok_or_else(|| ModelError::Json {
                path: index.to_path_buf(),
                message: format!("weight_map[\"{tensor}\"] must be a file name"),
            })?;
            if !shard_names.contains(&file) {
                shard_names.push(file);
            }
        }
        shard_names.sort_unstable();
        let paths: Vec<PathBuf> = shard_names.iter().map(|f| dir.join(f)).collect();
        let reader = Self::open_files(&paths)?;
        for (tensor, file) in map {
            let file_index = shard_names
                .iter()
                .position(|f| Some(*f) == file.as_str())
                .expect("listed");
            match reader.entries.get(tensor) {
                Some(entry) if entry.file == file_index => {}
                Some(entry) => {
                    return Err(ModelError::tensor(
                        index,
                        tensor,
                        format!(
                            "listed in {} but found in {}",
                            paths[file_index].display(),
                            paths[entry.file].display()
                        ),
                    ));
                }
                None => {
                    return Err(ModelError::tensor(
                        index,
                        tensor,
                        format!(
                            "listed in the index but missing from {}",
                            paths[file_index].display()
                        ),
                    ));
                }
            }
        }
        Ok(reader)
    }

    /// Maps the given safetensors files.
    pub fn open_files(paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut entries = BTreeMap::new();
        for (file_index, path) in paths.iter().enumerate() {
            let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
            // SAFETY: the file is opened read-only; like every mmap-based loader we assume it is not
            // truncated while we read it.
            let mmap = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))?;
            let bad = |message: String| ModelError::Safetensors {
                path: path.clone(),
                message,
            };
            let st = SafeTensors::deserialize(&mmap).map_err(|e| bad(e.to_string()))?;
            let base = mmap.as_ptr() as usize;
            for (name, view) in st.tensors() {
                let start = view.data().as_ptr() as usize - base;
                let entry = Entry {
                    file: file_index,
                    dtype: view.dtype(),
                    shape: view.shape().to_vec(),
                    start,
                    end: start + view.data().len(),
                };
                if let Some(previous) = entries.insert(name.clone(), entry) {
                    return Err(bad(format!(
                        "tensor `{name}` also appears in {}",
                        paths[previous.file].display()
                    )));
                }
            }
            files.push((path.clone(), mmap));
        }
        Ok(Self {
            files,
            entries,
            taken: HashSet::new(),
        })
    }

    /// Names of every tensor in the checkpoint.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The storage dtype of the first tensor (checkpoints are written in one dtype).
    pub fn dtype(&self) -> Option<Dtype> {
        self.entries.values().next().map(|e| e.dtype)
    }

    /// Converts one tensor to row-major f32 values after checking its shape, then releases its
    /// pages from memory.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let entry = self.entries.get(name).ok_or_else(|| {
            let path = &self.files.first().map(|f| f.0.clone()).unwrap_or_default();
            ModelError::tensor(path, name, "missing from the checkpoint")
        })?;
        let (path, mmap) = &self.files[entry.file];
        if entry.shape != shape {
            return Err(ModelError::tensor(
                path,
                name,
                format!("has shape {:?}, the config implies {:?}", entry.shape, shape),
            ));
        }
        let bytes = &mmap[entry.start..entry.end];
        let values: Vec<f32> = match entry.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(ModelError::tensor(
                    path,
                    name,
                    format!("has dtype {other:?}; only F32, BF16 and F16 are supported"),
                ));
            }
        };
        // SAFETY: the mapping is private and read-only, so dropping its pages only means they are
        // read again from the file if touched; no Rust reference into this range outlives `bytes`.
        let _ = unsafe {
            mmap.unchecked_advise_range(UncheckedAdvice::DontNeed, entry.start, entry.end - entry.start)
        };
        self.taken.insert(name.to_string());
        Ok(values)
    }

    /// Tensors that were never taken.
    pub fn untaken(&self) -> Vec<&str> {
        self.entries
            .keys()
            .filter(|n| !self.taken.contains(*n))
            .map(String::as_str)
            .collect()
    }

    /// The file that holds `name`, for error messages.
    fn file_of(&self, name: &str) -> PathBuf {
        self.entries
            .get(name)
            .map(|e| self.files[e.file].0.clone())
            .unwrap_or_default()
    }

    /// Whether two tensors hold the same bytes (used for redundant tied heads).
    fn same_bytes(&self, a: &str, b: &str) -> bool {
        match (self.entries.get(a), self.entries.get(b)) {
            (Some(x), Some(y)) => {
                x.dtype == y.dtype
                    && x.shape == y.shape
                    && self.files[x.file].1[x.start..x.end] == self.files[y.file].1[y.start..y.end]
            }
            _ => false,
        }
    }
}

/// Loads `dir` (a Hugging Face model directory: `config.json` + safetensors) onto `device`,
/// computing in f32 whatever the storage dtype.
///
/// Missing, unexpected or mis-shaped tensors are errors that name them.
pub fn load_model(dir: &Path, device: &Device) -> Result<(Llama, HfConfig)> {
    let hf = HfConfig::from_file(dir.join("config.json"))?;
    let config = hf.to_llama_config()?;
    let mut reader = SafetensorsReader::open_dir(dir)?;
    let model = load_from_reader(&config, &mut reader, device)?;
    Ok((model, hf))
}

/// Builds a model with `config` from the tensors in `reader`.
pub(crate) fn load_from_reader(
    config: &LlamaConfig,
    reader: &mut SafetensorsReader,
    device: &Device,
) -> Result<Llama> {
    let expected = super::expected_tensors(config);
    let expected_names: HashMap<&str, &Vec<usize>> = expected.iter().map(|(n, s)| (n.as_str(), s)).collect();
    let missing: Vec<&str> = expected
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !reader.entries.contains_key(*n))
        .collect();
    if !missing.is_empty() {
        let path = reader.files.first().map(|f| f.0.clone()).unwrap_or_default();
        return Err(ModelError::tensor(
            &path,
            missing[0],
            format!(
                "missing from the checkpoint ({} missing: {})",
                missing.len(),
                missing.join(", ")
            ),
        ));
    }
    let unexpected: Vec<String> = reader
        .names()
        .filter(|n| !expected_names.contains_key(n))
        // Old checkpoints carry the rotary inverse frequencies as a buffer; they are recomputed.
        .filter(|n| !n.ends_with("rotary_emb.inv_freq"))
        // A tied model may still store the head as a copy of the embeddings.
        .filter(|n| {
            !(*n == "lm_head.weight"
                && config.tie_word_embeddings
                && reader.same_bytes(n, "model.embed_tokens.weight"))
        })
        .map(str::to_string)
        .collect();
    if let Some(first) = unexpected.first() {
        let hint = if first == "lm_head.weight" && config.tie_word_embeddings {
            " (config.json ties the output head to the embeddings, but this head differs from them)"
        } else {
            ""
        };
        return Err(ModelError::tensor(
            &reader.file_of(first),
            first,
            format!(
                "unexpected for this config{hint} ({} unexpected: {})",
                unexpected.len(),
                unexpected.join(", ")
            ),
        ));
    }
    super::assemble(config, device, |name, shape| reader.take(name, shape))
}
