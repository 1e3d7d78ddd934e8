//! Model configuration: the Hugging Face `config.json` as found on disk ([`HfConfig`]) and the
//! configuration the model runs on ([`LlamaConfig`]), with one conversion in between so that on-disk
//! quirks (classic vs transformers-5 keys, optional fields) never leak into the model.
use std::path::{Path, PathBuf};

use burn::config::Config;
use serde_json::{Map, Value, json};

use crate::error::{ModelError, Result};

/// The architecture hyper-parameters of a Llama-2-family decoder.
#[derive(Config, Debug, PartialEq)]
pub struct LlamaConfig {
    /// Number of rows of the embedding (and output) matrix.
    pub vocab_size: usize,
    /// Width of the residual stream (`hidden_size`).
    pub hidden_size: usize,
    /// Width of the SwiGLU hidden layer (`intermediate_size`).
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (equal to the query heads for MHA, 1 for MQA, in between for GQA).
    pub num_key_value_heads: usize,
    /// Width of one attention head; may differ from `hidden_size / num_attention_heads`.
    pub head_dim: usize,
    /// Epsilon of every RMSNorm.
    #[config(default = 1e-6)]
    pub rms_norm_eps: f64,
    /// Base of the rotary frequencies.
    #[config(default = 10000.0)]
    pub rope_theta: f64,
    /// Whether the output head shares the embedding matrix.
    #[config(default = false)]
    pub tie_word_embeddings: bool,
    /// Longest context the model was trained for (informational: rotary tables are computed on demand).
    #[config(default = 4096)]
    pub max_position_embeddings: usize,
    /// Half-precision type the rotary inverse frequencies are rounded to, as `transformers` does
    /// for a model loaded in bf16/f16 (set from the checkpoint's dtype; `None` keeps f32).
    pub rope_inv_freq_dtype: Option<StorageDtype>,
    /// Standard deviation of the normal initialisation used when training from scratch.
    #[config(default = 0.02)]
    pub initializer_range: f64,
    /// Beginning-of-sequence token id.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token ids (Llama-3 style configs list several).
    #[config(default = "Vec::new()")]
    pub eos_token_ids: Vec<u32>,
    /// Padding token id.
    pub pad_token_id: Option<u32>,
}

impl LlamaConfig {
    /// Query heads that share one key/value head.
    pub fn kv_groups(&self) -> usize {
        self.num_attention_heads / self.num_key_value_heads
    }

    /// Checks the internal consistency of the hyper-parameters.
    pub fn validate(&self) -> Result<()> {
        let path = Path::new("<config>");
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ModelError::config(path, key, "must be positive"));
            }
        }
        if !self.num_attention_heads.is_multiple_of(self.num_key_value_heads) {
            return Err(ModelError::config(
                path,
                "num_key_value_heads",
                format!(
                    "{} does not divide num_attention_heads = {}",
                    self.num_key_value_heads, self.num_attention_heads
                ),
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(ModelError::config(
                path,
                "head_dim",
                "rotary embeddings need an even head_dim",
            ));
        }
        if self.rms_norm_eps.is_nan() || self.rms_norm_eps <= 0.0 {
            return Err(ModelError::config(path, "rms_norm_eps", "must be positive"));
        }
        if self.rope_theta.is_nan() || self.rope_theta <= 0.0 {
            return Err(ModelError::config(path, "rope_theta", "must be positive"));
        }
        Ok(())
    }

    /// Number of parameters (counting a tied matrix once).
    pub fn num_parameters(&self) -> usize {
        let d = self.hidden_size;
        let attn = d * self.num_attention_heads * self.head_dim * 2
            + d * self.num_key_value_heads * self.head_dim * 2;
        let mlp = 3 * d * self.intermediate_size;
        let layer = attn + mlp + 2 * d;
        let head = if self.tie_word_embeddings {
            0
        } else {
            self.vocab_size * d
        };
        self.vocab_size * d + self.num_hidden_layers * layer + d + head
    }
}

/// The floating-point type of tensors in a checkpoint file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageDtype {
    /// 32-bit IEEE float.
    F32,
    /// bfloat16.
    Bf16,
    /// 16-bit IEEE float.
    F16,
}

impl StorageDtype {
    /// The name `transformers` writes in `config.json` (`torch_dtype` / `dtype`).
    pub fn hf_name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::Bf16 => "bfloat16",
            Self::F16 => "float16",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::Bf16 | Self::F16 => 2,
        }
    }
}

impl std::str::FromStr for StorageDtype {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" | "float" => Ok(Self::F32),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            "f16" | "float16" | "half" => Ok(Self::F16),
            other => Err(format!("unknown dtype `{other}` (expected f32, bf16 or f16)")),
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
        let config = LlamaConfig {
            vocab_size: self.required_usize("vocab_size")?,
            hidden_size,
            intermediate_size: self.required_usize("intermediate_size")?,
            num_hidden_layers: self.required_usize("num_hidden_layers")?,
            num_attention_heads: num_heads,
            num_key_value_heads: self.usize_key("num_key_value_heads")?.unwrap_or(num_heads),
            head_dim,
            rms_norm_eps: self
                .f64_key(self.get("rms_norm_eps"), "rms_norm_eps")?
                .unwrap_or(1e-6),
            rope_theta: self.rope_theta()?,
            rope_inv_freq_dtype: self.storage_dtype()?.filter(|d| *d != StorageDtype::F32),
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

    fn rope_theta(&self) -> Result<f64> {
        let from_parameters = match self.get("rope_parameters") {
            Some(Value::Object(p)) => self.f64_key(p.get("rope_theta"), "rope_parameters.rope_theta")?,
            Some(v) => return Err(self.err("rope_parameters", format!("expected an object, found {v}"))),
            None => None,
        };
        let classic = self.f64_key(self.get("rope_theta"), "rope_theta")?;
        Ok(from_parameters.or(classic).unwrap_or(10000.0))
    }

    /// Refuses every key whose value asks for behaviour this model does not implement.
    fn check_supported(&self) -> Result<()> {
        if let Some(model_type) = self.get("model_type")
            && model_type.as_str() != Some("llama")
        {
            return Err(self.err(
                "model_type",
                format!("only \"llama\" is supported, found {model_type}"),
            ));
        }
        if let Some(archs) = self.get("architectures") {
            let ok = archs
                .as_array()
                .is_some_and(|a| a.iter().all(|v| v.as_str() == Some("LlamaForCausalLM")));
            if !ok {
                return Err(self.err(
                    "architectures",
                    format!("only [\"LlamaForCausalLM\"] is supported, found {archs}"),
                ));
            }
        }
        for key in ["attention_bias", "mlp_bias"] {
            if self.bool_key(key)? == Some(true) {
                return Err(self.err(key, "biases are not implemented (expected false)"));
            }
        }
        if let Some(act) = self.get("hidden_act")
            && act.as_str() != Some("silu")
        {
            return Err(self.err(
                "hidden_act",
                format!("only \"silu\" (SwiGLU) is implemented, found {act}"),
            ));
        }
        for key in ["rope_scaling", "rope_parameters"] {
            if let Some(Value::Object(p)) = self.get(key) {
                let kind = p
                    .get("rope_type")
                    .or_else(|| p.get("type"))
                    .filter(|v| !v.is_null());
                if let Some(kind) = kind
                    && kind.as_str() != Some("default")
                {
                    return Err(self.err(
                        key,
                        format!("rope type {kind} is not implemented (only \"default\")"),
                    ));
                }
                let scaling_keys = [
                    "factor",
                    "low_freq_factor",
                    "high_freq_factor",
                    "original_max_position_embeddings",
                ];
                if let Some(k) = scaling_keys
                    .iter()
                    .find(|k| p.get(**k).is_some_and(|v| !v.is_null()))
                {
                    return Err(self.err(key, format!("rope scaling (`{k}`) is not implemented")));
                }
            } else if let Some(v) = self.get(key) {
                return Err(self.err(key, format!("expected an object or null, found {v}")));
            }
        }
        if let Some(w) = self.get("sliding_window") {
            return Err(self.err(
                "sliding_window",
                format!("sliding-window attention is not implemented, found {w}"),
            ));
        }
        Ok(())
    }

    /// Builds a fresh `config.json` for `config` (used when training from scratch).
    pub fn new(config: &LlamaConfig) -> Self {
        let mut hf = Self {
            path: PathBuf::from("config.json"),
            raw: Map::new(),
        };
        hf.raw.insert("architectures".into(), json!(["LlamaForCausalLM"]));
        hf.raw.insert("model_type".into(), json!("llama"));
        hf.raw.insert("hidden_act".into(), json!("silu"));
        hf.raw.insert("attention_bias".into(), json!(false));
        hf.raw.insert("attention_dropout".into(), json!(0.0));
        hf.raw.insert("mlp_bias".into(), json!(false));
        hf.raw.insert("pretraining_tp".into(), json!(1));
        hf.raw.insert("use_cache".into(), json!(true));
        hf.raw.insert("rope_scaling".into(), Value::Null);
        hf.update(config);
        hf
    }

    /// Writes `config`'s values into this config, keeping the key style it already uses
    /// (`rope_parameters` vs `rope_theta`) and every key the model does not interpret.
    pub fn update(&mut self, config: &LlamaConfig) {
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
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LlamaConfig> {
        HfConfig::from_json_str(text, Path::new("config.json"))?.to_llama_config()
    }

    const BASE: &str = r#""vocab_size": 32, "hidden_size": 16, "intermediate_size": 24,
        "num_hidden_layers": 1, "num_attention_heads": 4"#;

    #[test]
    fn defaults_follow_transformers() {
        let c = parse(&format!("{{{BASE}}}")).unwrap();
        assert_eq!(c.num_key_value_heads, 4);
        assert_eq!(c.head_dim, 4);
        assert_eq!(c.rope_theta, 10000.0);
        assert!(!c.tie_word_embeddings);
    }

    #[test]
    fn rope_parameters_win_over_classic_key() {
        let c = parse(&format!(
            r#"{{{BASE}, "rope_theta": 5.0, "rope_parameters": {{"rope_theta": 7.0, "rope_type": "default"}}}}"#
        ))
        .unwrap();
        assert_eq!(c.rope_theta, 7.0);
    }

    #[test]
    fn eos_list_is_kept() {
        let c = parse(&format!(r#"{{{BASE}, "eos_token_id": [2, 7]}}"#)).unwrap();
        assert_eq!(c.eos_token_ids, vec![2, 7]);
    }

    #[test]
    fn unsupported_keys_are_refused_by_name() {
        for (extra, key) in [
            (r#""attention_bias": true"#, "attention_bias"),
            (r#""mlp_bias": true"#, "mlp_bias"),
            (
                r#""rope_scaling": {"rope_type": "llama3", "factor": 8.0}"#,
                "rope_scaling",
            ),
            (
                r#""rope_parameters": {"rope_theta": 1.0, "rope_type": "yarn"}"#,
                "rope_parameters",
            ),
            (r#""model_type": "gpt2""#, "model_type"),
            (r#""hidden_act": "gelu""#, "hidden_act"),
            (r#""num_key_value_heads": 3"#, "num_key_value_heads"),
            (r#""sliding_window": 4096"#, "sliding_window"),
        ] {
            let err = parse(&format!("{{{BASE}, {extra}}}")).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{extra}: {err}");
        }
        let err = parse(r#"{"hidden_size": 16, "num_attention_heads": 4}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`vocab_size`") && err.contains("missing"), "{err}");
    }

    #[test]
    fn update_round_trips_and_keeps_style() {
        let text = format!(
            r#"{{{BASE}, "rope_parameters": {{"rope_theta": 7.0, "rope_type": "default"}}, "custom": 1}}"#
        );
        let mut hf = HfConfig::from_json_str(&text, Path::new("c.json")).unwrap();
        let mut c = hf.to_llama_config().unwrap();
        c.vocab_size = 64;
        hf.update(&c);
        assert!(!hf.raw.contains_key("rope_theta"));
        assert_eq!(hf.raw["custom"], json!(1));
        let again = HfConfig::from_json_str(&hf.to_json_string(), Path::new("c.json")).unwrap();
        assert_eq!(again.to_llama_config().unwrap(), c);
    }
}
