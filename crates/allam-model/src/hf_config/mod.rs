//! The Hugging Face `config.json` as found on disk ([`HfConfig`]) and its conversion to the
//! [`LlamaConfig`] the model runs on: classic and transformers-5 keys, the Llama, Mistral and Qwen2
//! families, rotary scaling, biases and sliding windows; every key whose value asks for behaviour
//! the model does not implement is refused by name.
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::config::{LlamaConfig, StorageDtype};
use crate::error::{ModelError, Result};

/// The model families whose `config.json` this crate reads: the same decoder with different
/// defaults for biases and sliding windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelFamily {
    /// `LlamaForCausalLM` (Llama-2, Llama-3.x, SmolLM, ...): optional `attention_bias` / `mlp_bias`.
    Llama,
    /// `MistralForCausalLM`: no biases, an optional `sliding_window` on every layer.
    Mistral,
    /// `Qwen2ForCausalLM` (Qwen2, Qwen2.5): biases on q/k/v, sliding windows on some layers when
    /// `use_sliding_window` (or `layer_types`) says so.
    Qwen2,
}

impl ModelFamily {
    /// The `model_type` value.
    pub fn model_type(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Mistral => "mistral",
            Self::Qwen2 => "qwen2",
        }
    }

    /// The `architectures` entry.
    pub fn architecture(self) -> &'static str {
        match self {
            Self::Llama => "LlamaForCausalLM",
            Self::Mistral => "MistralForCausalLM",
            Self::Qwen2 => "Qwen2ForCausalLM",
        }
    }
}

/// A Hugging Face `config.json` for a Llama model, kept whole so that writing it back preserves every
/// key we do not interpret.
#[derive(Clone, Debug, PartialEq)]
pub struct HfConfig {
    /// Where it was read from (for error messages).
    pub path: PathBuf,
    /// The raw JSON object.
    pub raw: Map<String, Value>,
}

mod rope;

impl HfConfig {
    /// Reads and parses `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        Self::from_json_str(&text, path)
    }

    /// Parses the text of a `config.json`; `path` only names it in errors.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let value: Value = serde_json::from_str(text).map_err(|e| ModelError::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        match value {
            Value::Object(raw) => Ok(Self {
                path: path.to_path_buf(),
                raw,
            }),
            _ => Err(ModelError::Json {
                path: path.to_path_buf(),
                message: "expected a JSON object".into(),
            }),
        }
    }

    fn err(&self, key: &str, message: impl Into<String>) -> ModelError {
        ModelError::config(&self.path, key, message)
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.raw.get(key).filter(|v| !v.is_null())
    }

    fn usize_key(&self, key: &str) -> Result<Option<usize>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(|n| Some(n as usize))
                .ok_or_else(|| self.err(key, format!("expected a non-negative integer, found {v}"))),
        }
    }

    fn required_usize(&self, key: &str) -> Result<usize> {
        self.usize_key(key)?
            .ok_or_else(|| self.err(key, "missing (required for a Llama model)"))
    }

    fn f64_key(&self, value: Option<&Value>, key: &str) -> Result<Option<f64>> {
        match value.filter(|v| !v.is_null()) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.err(key, format!("expected a number, found {v}"))),
        }
    }

    fn bool_key(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.err(key, format!("expected true or false, found {v}"))),
        }
    }

    fn token_ids(&self, key: &str) -> Result<Vec<u32>> {
        let bad = || self.err(key, "expected a token id or a list of token ids");
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_u64().map(|n| n as u32).ok_or_else(bad))
                .collect(),
            Some(v) => v.as_u64().map(|n| vec![n as u32]).ok_or_else(bad),
        }
    }

    /// The dtype the weights are stored in, from `dtype` (transformers 5) or `torch_dtype` (classic).
    pub fn storage_dtype(&self) -> Result<Option<StorageDtype>> {
        for key in ["dtype", "torch_dtype"] {
            if let Some(v) = self.get(key) {
                let name = v
                    .as_str()
                    .ok_or_else(|| self.err(key, format!("expected a dtype name, found {v}")))?;
                return name.parse().map(Some).map_err(|m: String| self.err(key, m));
            }
        }
        Ok(None)
    }

    /// Converts to the model's configuration, refusing anything the model does not implement.
    pub fn to_llama_config(&self) -> Result<LlamaConfig> {
        let family = self.family()?;
        self.check_supported()?;
        let hidden_size = self.required_usize("hidden_size")?;
        let num_heads = self.required_usize("num_attention_heads")?;
        if num_heads == 0 {
            return Err(self.err("num_attention_heads", "must be positive"));
        }
        let head_dim = match self.usize_key("head_dim")? {
            Some(d) => d,
            None if hidden_size % num_heads == 0 => hidden_size / num_heads,
            None => {
                return Err(self.err(
                    "head_dim",
                    "missing and hidden_size is not a multiple of num_attention_heads",
                ));
            }
        };
        let vocab_size = self.required_usize("vocab_size")?;
        let num_hidden_layers = self.required_usize("num_hidden_layers")?;
        let (qkv_bias, o_proj_bias, mlp_bias) = match family {
            ModelFamily::Llama => {
                let attention = self.bool_key("attention_bias")?.unwrap_or(false);
                (attention, attention, self.bool_key("mlp_bias")?.unwrap_or(false))
            }
            // transformers' Mistral has no bias options; Qwen2's q/k/v biases are always on.
            ModelFamily::Mistral => (false, false, false),
            ModelFamily::Qwen2 => (true, false, false),
        };
        let config = LlamaConfig {
            vocab_size,
            hidden_size,
            intermediate_size: self.required_usize("intermediate_size")?,
            num_hidden_layers,
            num_attention_heads: num_heads,
            num_key_value_heads: self.usize_key("num_key_value_heads")?.unwrap_or(num_heads),
            head_dim,
            rms_norm_eps: self
                .f64_key(self.get("rms_norm_eps"), "rms_norm_eps")?
                .unwrap_or(1e-6),
            rope_theta: self.rope_theta()?,
            rope_scaling: self.rope_scaling()?,
            qkv_bias,
            o_proj_bias,
            mlp_bias,
            sliding_window: self.sliding_window(family, num_hidden_layers)?,
            rope_inv_freq_dtype: self.storage_dtype()?.filter(|d| *d != StorageDtype::F32),
            compute_dtype: None,
            tie_word_embeddings: self.bool_key("tie_word_embeddings")?.unwrap_or(false),
            max_position_embeddings: self.usize_key("max_position_embeddings")?.unwrap_or(2048),
            initializer_range: self
                .f64_key(self.get("initializer_range"), "initializer_range")?
                .unwrap_or(0.02),
            bos_token_id: self.token_ids("bos_token_id")?.first().copied(),
            eos_token_ids: self.token_ids("eos_token_id")?,
            pad_token_id: self.token_ids("pad_token_id")?.first().copied(),
        };
        config.validate().map_err(|e| match e {
            ModelError::Config { key, message, .. } => self.err(&key, message),
            other => other,
        })?;
        Ok(config)
    }

    /// The model family, from `model_type` (default `llama`), checked against `architectures`.
    pub fn family(&self) -> Result<ModelFamily> {
        let family = match self.get("model_type") {
            None => ModelFamily::Llama,
            Some(v) => match v.as_str() {
                Some("llama") => ModelFamily::Llama,
                Some("mistral") => ModelFamily::Mistral,
                Some("qwen2") => ModelFamily::Qwen2,
                _ => {
                    return Err(self.err(
                        "model_type",
                        format!("only \"llama\", \"mistral\" and \"qwen2\" are supported, found {v}"),
                    ));
                }
            },
        };
        if let Some(archs) = self.get("architectures") {
            let ok = archs
                .as_array()
                .is_some_and(|a| a.iter().all(|v| v.as_str() == Some(family.architecture())));
            if !ok {
                return Err(self.err(
                    "architectures",
                    format!(
                        "model_type \"{}\" needs [\"{}\"], found {archs}",
                        family.model_type(),
                        family.architecture()
                    ),
                ));
            }
        }
        Ok(family)
    }

    /// The sliding-window span that applies to some layer, if any.
    fn sliding_window(&self, family: ModelFamily, layers: usize) -> Result<Option<usize>> {
        let window = self.usize_key("sliding_window")?;
        match family {
            ModelFamily::Llama => match window {
                None => Ok(None),
                Some(w) => Err(self.err(
                    "sliding_window",
                    format!(
                        "LlamaForCausalLM has no sliding-window attention, found {w} (a Mistral \
                         checkpoint needs model_type \"mistral\")"
                    ),
                )),
            },
            ModelFamily::Mistral => Ok(window),
            ModelFamily::Qwen2 => {
                let sliding_layers = match self.get("layer_types") {
                    Some(Value::Array(types)) => types
                        .iter()
                        .filter(|t| t.as_str() == Some("sliding_attention"))
                        .count(),
                    Some(v) => {
                        return Err(self.err("layer_types", format!("expected a list, found {v}")));
                    }
                    None if self.bool_key("use_sliding_window")? == Some(true) => {
                        let first = self.usize_key("max_window_layers")?.unwrap_or(28);
                        layers.saturating_sub(first)
                    }
                    None => 0,
                };
                match (sliding_layers, window) {
                    (0, _) => Ok(None),
                    (_, Some(w)) => Ok(Some(w)),
                    (_, None) => Err(self.err(
                        "sliding_window",
                        "missing, but some layers use sliding-window attention",
                    )),
                }
            }
        }
    }

    /// Refuses every key whose value asks for behaviour this model does not implement.
    fn check_supported(&self) -> Result<()> {
        if let Some(act) = self.get("hidden_act")
            && act.as_str() != Some("silu")
        {
            return Err(self.err(
                "hidden_act",
                format!("only \"silu\" (SwiGLU) is implemented, found {act}"),
            ));
        }
        if let Some(factor) = self.f64_key(self.get("partial_rotary_factor"), "partial_rotary_factor")?
            && factor != 1.0
        {
            return Err(self.err(
                "partial_rotary_factor",
                format!("partial rotary embeddings are not implemented (expected 1.0, found {factor})"),
            ));
        }
        Ok(())
    }

    /// Builds a fresh `config.json` for `config` (used when training from scratch, and for
    /// models made in code): a Qwen2 config when only q/k/v have biases, a Mistral one when
    /// it has a sliding window, a Llama one otherwise.
    pub fn new(config: &LlamaConfig) -> Self {
        let family = if config.qkv_bias && !config.o_proj_bias && !config.mlp_bias {
            ModelFamily::Qwen2
        } else if config.sliding_window.is_some() && !config.qkv_bias && !config.mlp_bias {
            ModelFamily::Mistral
        } else {
            ModelFamily::Llama
        };
        let mut hf = Self {
            path: PathBuf::from("config.json"),
            raw: Map::new(),
        };
        hf.raw
            .insert("architectures".into(), json!([family.architecture()]));
        hf.raw.insert("model_type".into(), json!(family.model_type()));
        hf.raw.insert("hidden_act".into(), json!("silu"));
        hf.raw.insert("attention_dropout".into(), json!(0.0));
        match family {
            ModelFamily::Llama => {
                hf.raw.insert("pretraining_tp".into(), json!(1));
            }
            ModelFamily::Mistral => {}
            ModelFamily::Qwen2 => {
                let sliding = config.sliding_window.is_some();
                hf.raw.insert("use_sliding_window".into(), json!(sliding));
                hf.raw.insert("max_window_layers".into(), json!(0));
            }
        }
        hf.raw.insert("use_cache".into(), json!(true));
        let scaling = config.rope_scaling.as_ref().map_or(Value::Null, |s| {
            serde_json::to_value(s).expect("plain data serialises")
        });
        hf.raw.insert("rope_scaling".into(), scaling);
        hf.raw
            .insert("sliding_window".into(), json!(config.sliding_window));
        hf.update(config);
        hf
    }

    /// Writes `config`'s values into this config, keeping the key style it already uses
    /// (`rope_parameters` vs `rope_theta`) and every key the model does not interpret.
    pub fn update(&mut self, config: &LlamaConfig) {
        if self.family().ok() == Some(ModelFamily::Llama) {
            self.raw.insert("attention_bias".into(), json!(config.qkv_bias));
            self.raw.insert("mlp_bias".into(), json!(config.mlp_bias));
        }
        let raw = &mut self.raw;
        raw.insert("vocab_size".into(), json!(config.vocab_size));
        raw.insert("hidden_size".into(), json!(config.hidden_size));
        raw.insert("intermediate_size".into(), json!(config.intermediate_size));
        raw.insert("num_hidden_layers".into(), json!(config.num_hidden_layers));
        raw.insert("num_attention_heads".into(), json!(config.num_attention_heads));
        raw.insert("num_key_value_heads".into(), json!(config.num_key_value_heads));
        raw.insert("head_dim".into(), json!(config.head_dim));
        raw.insert("rms_norm_eps".into(), json!(config.rms_norm_eps));
        raw.insert("tie_word_embeddings".into(), json!(config.tie_word_embeddings));
        raw.insert(
            "max_position_embeddings".into(),
            json!(config.max_position_embeddings),
        );
        raw.insert("initializer_range".into(), json!(config.initializer_range));
        match raw.get_mut("rope_parameters") {
            Some(Value::Object(p)) => {
                p.insert("rope_theta".into(), json!(config.rope_theta));
            }
            _ => {
                raw.insert("rope_theta".into(), json!(config.rope_theta));
            }
        }
        raw.insert("bos_token_id".into(), json!(config.bos_token_id));
        let eos = match config.eos_token_ids.as_slice() {
            [] => Value::Null,
            [one] => json!(one),
            many => json!(many),
        };
        raw.insert("eos_token_id".into(), eos);
        raw.insert("pad_token_id".into(), json!(config.pad_token_id));
    }

    /// Records the on-disk dtype under the key the file already uses (`torch_dtype` by default).
    pub fn set_storage_dtype(&mut self, dtype: StorageDtype) {
        let key = if self.raw.contains_key("dtype") {
            "dtype"
        } else {
            "torch_dtype"
        };
        self.raw.insert(key.into(), json!(dtype.hf_name()));
    }

    /// The JSON text, pretty-printed as `transformers` writes it.
    pub fn to_json_string(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.raw).expect("a JSON map always serialises");
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests;
