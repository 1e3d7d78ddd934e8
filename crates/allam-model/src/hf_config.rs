//! The Hugging Face `config.json` as found on disk ([`HfConfig`]) and its conversion to the
//! [`LlamaConfig`] the model runs on: classic and transformers-5 keys, the Llama, Mistral and Qwen2
//! families, rotary scaling, biases and sliding windows; every key whose value asks for behaviour
//! the model does not implement is refused by name.
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::config::{LlamaConfig, StorageDtype};
use crate::error::{ModelError, Result};
use crate::rope::RopeScaling;

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

    /// The rotary parameters' object: `rope_parameters` (transformers 5) or `rope_scaling`
    /// (classic), with the key it was found under.
    fn rope_object(&self) -> Result<Option<(&'static str, &Map<String, Value>)>> {
        for key in ["rope_parameters", "rope_scaling"] {
            match self.get(key) {
                Some(Value::Object(p)) => return Ok(Some((key, p))),
                Some(v) => return Err(self.err(key, format!("expected an object or null, found {v}"))),
                None => {}
            }
        }
        Ok(None)
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

    /// The rotary scaling named by `rope_type` (or the classic `type`), with its parameters.
    fn rope_scaling(&self) -> Result<Option<RopeScaling>> {
        let Some((key, p)) = self.rope_object()? else {
            return Ok(None);
        };
        if p.values().any(Value::is_object) {
            return Err(self.err(key, "rotary parameters per layer type are not implemented"));
        }
        let kind = p
            .get("rope_type")
            .or_else(|| p.get("type"))
            .filter(|v| !v.is_null());
        let name = match kind {
            None => "default",
            Some(v) => v
                .as_str()
                .ok_or_else(|| self.err(key, format!("expected a rope type name, found {v}")))?,
        };
        let number = |field: &str| -> Result<Option<f64>> {
            let value = self.f64_key(p.get(field), &format!("{key}.{field}"))?;
            match value {
                Some(x) if !x.is_finite() || x <= 0.0 => {
                    Err(self.err(&format!("{key}.{field}"), format!("must be positive, found {x}")))
                }
                other => Ok(other),
            }
        };
        let required = |field: &str| -> Result<f64> {
            number(field)?.ok_or_else(|| {
                self.err(
                    &format!("{key}.{field}"),
                    format!("missing (required by rope type \"{name}\")"),
                )
            })
        };
        let scaling = match name {
            "default" => None,
            "linear" => Some(RopeScaling::Linear {
                factor: required("factor")?,
            }),
            "dynamic" => Some(RopeScaling::Dynamic {
                factor: required("factor")?,
            }),
            "llama3" => {
                let (low, high) = (required("low_freq_factor")?, required("high_freq_factor")?);
                if high <= low {
                    return Err(self.err(
                        &format!("{key}.high_freq_factor"),
                        format!("must exceed low_freq_factor ({low}), found {high}"),
                    ));
                }
                Some(RopeScaling::Llama3 {
                    factor: required("factor")?,
                    low_freq_factor: low,
                    high_freq_factor: high,
                    original_max_position_embeddings: required("original_max_position_embeddings")?,
                })
            }
            "yarn" => Some(RopeScaling::Yarn {
                factor: required("factor")?,
                original_max_position_embeddings: number("original_max_position_embeddings")?,
                attention_factor: number("attention_factor")?,
                beta_fast: number("beta_fast")?.unwrap_or(32.0),
                beta_slow: number("beta_slow")?.unwrap_or(1.0),
                mscale: self.f64_key(p.get("mscale"), &format!("{key}.mscale"))?,
                mscale_all_dim: self.f64_key(p.get("mscale_all_dim"), &format!("{key}.mscale_all_dim"))?,
                truncate: match p.get("truncate").filter(|v| !v.is_null()) {
                    None => true,
                    Some(v) => v.as_bool().ok_or_else(|| {
                        self.err(
                            &format!("{key}.truncate"),
                            format!("expected true or false, found {v}"),
                        )
                    })?,
                },
            }),
            other => {
                return Err(self.err(
                    key,
                    format!(
                        "rope type \"{other}\" is not implemented (default, linear, dynamic, llama3 and yarn are)"
                    ),
                ));
            }
        };
        Ok(scaling)
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
            (
                r#""rope_scaling": {"rope_type": "longrope", "factor": 8.0}"#,
                "rope_scaling",
            ),
            (
                r#""rope_parameters": {"rope_theta": 1.0, "rope_type": "llama3", "factor": 8.0}"#,
                "rope_parameters.low_freq_factor",
            ),
            (
                r#""rope_scaling": {"type": "linear", "factor": -2.0}"#,
                "rope_scaling.factor",
            ),
            (r#""partial_rotary_factor": 0.5"#, "partial_rotary_factor"),
            (r#""model_type": "gpt2""#, "model_type"),
            (r#""model_type": "qwen3""#, "model_type"),
            (
                r#""model_type": "qwen2", "architectures": ["LlamaForCausalLM"]"#,
                "architectures",
            ),
            (r#""attention_bias": 1"#, "attention_bias"),
            (r#""hidden_act": "gelu""#, "hidden_act"),
            (r#""num_key_value_heads": 3"#, "num_key_value_heads"),
            (r#""sliding_window": 4096"#, "sliding_window"),
            (
                r#""model_type": "mistral", "sliding_window": 0"#,
                "sliding_window",
            ),
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
    fn rope_scaling_reads_both_key_styles() {
        let llama3 = RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192.0,
        };
        let params = r#""factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192"#;
        let v5 = parse(&format!(
            r#"{{{BASE}, "rope_parameters": {{"rope_type": "llama3", "rope_theta": 500000.0, {params}}}}}"#
        ))
        .unwrap();
        let classic = parse(&format!(
            r#"{{{BASE}, "rope_theta": 500000.0, "rope_scaling": {{"type": "llama3", {params}}}}}"#
        ))
        .unwrap();
        assert_eq!(v5.rope_scaling, Some(llama3));
        assert_eq!(v5, classic);
        assert_eq!(v5.rope_theta, 500000.0);
        let yarn = parse(&format!(
            r#"{{{BASE}, "rope_scaling": {{"rope_type": "yarn", "factor": 4.0}}}}"#
        ))
        .unwrap();
        assert_eq!(
            yarn.rope_scaling,
            Some(RopeScaling::Yarn {
                factor: 4.0,
                original_max_position_embeddings: None,
                attention_factor: None,
                beta_fast: 32.0,
                beta_slow: 1.0,
                mscale: None,
                mscale_all_dim: None,
                truncate: true,
            })
        );
        let plain = parse(&format!(
            r#"{{{BASE}, "rope_scaling": {{"rope_type": "default"}}}}"#
        ))
        .unwrap();
        assert_eq!(plain.rope_scaling, None);
    }

    #[test]
    fn families_set_biases_and_windows_as_transformers_does() {
        let llama = parse(&format!(
            r#"{{{BASE}, "attention_bias": true, "mlp_bias": true}}"#
        ))
        .unwrap();
        assert!(llama.qkv_bias && llama.o_proj_bias && llama.mlp_bias);
        let qwen = parse(&format!(
            r#"{{{BASE}, "model_type": "qwen2", "sliding_window": 32, "use_sliding_window": false}}"#
        ))
        .unwrap();
        assert!(qwen.qkv_bias && !qwen.o_proj_bias && !qwen.mlp_bias);
        assert_eq!(qwen.sliding_window, None);
        let sliding = parse(&format!(
            r#"{{{BASE}, "model_type": "qwen2", "sliding_window": 32, "use_sliding_window": true, "max_window_layers": 0}}"#
        ))
        .unwrap();
        assert_eq!(sliding.sliding_window, Some(32));
        let typed = parse(&format!(
            r#"{{{BASE}, "model_type": "qwen2", "sliding_window": 16, "layer_types": ["sliding_attention"]}}"#
        ))
        .unwrap();
        assert_eq!(typed.sliding_window, Some(16));
        let mistral = parse(&format!(
            r#"{{{BASE}, "model_type": "mistral", "architectures": ["MistralForCausalLM"], "sliding_window": 4096}}"#
        ))
        .unwrap();
        assert_eq!(mistral.sliding_window, Some(4096));
        assert!(!mistral.qkv_bias);
        assert_eq!(
            mistral.num_parameters() + 3 * 16,
            parse(&format!(r#"{{{BASE}, "model_type": "qwen2"}}"#))
                .unwrap()
                .num_parameters()
        );
    }

    /// The published shapes of two bases (the keys of their `config.json`) give their published
    /// parameter counts: Llama-3.2-1B 1,235,814,400 and Qwen2.5-0.5B 494,032,768.
    #[test]
    fn modern_base_configs_parse_with_their_published_sizes() {
        let llama = parse(
            r#"{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256,
            "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
            "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "hidden_act": "silu",
            "attention_bias": false, "mlp_bias": false, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
            "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192, "rope_type": "llama3"},
            "max_position_embeddings": 131072, "tie_word_embeddings": true, "bos_token_id": 128000,
            "eos_token_id": 128001, "torch_dtype": "bfloat16"}"#,
        )
        .unwrap();
        assert_eq!(llama.num_parameters(), 1_235_814_400);
        assert!(matches!(llama.rope_scaling, Some(RopeScaling::Llama3 { factor, .. }) if factor == 32.0));
        let qwen = parse(
            r#"{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936,
            "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
            "num_attention_heads": 14, "num_key_value_heads": 2, "hidden_act": "silu",
            "max_position_embeddings": 32768, "max_window_layers": 21, "rms_norm_eps": 1e-06,
            "rope_theta": 1000000.0, "rope_scaling": null, "sliding_window": 32768,
            "use_sliding_window": false, "tie_word_embeddings": true, "torch_dtype": "bfloat16"}"#,
        )
        .unwrap();
        assert_eq!(qwen.num_parameters(), 494_032_768);
        assert_eq!((qwen.head_dim, qwen.sliding_window), (64, None));
    }

    /// Sizes whose parameter count overflows (or exceeds any machine) are refused, not wrapped.
    #[test]
    fn absurd_sizes_are_refused_not_wrapped() {
        let huge = "18446744073709551615";
        for key in [
            "hidden_size",
            "vocab_size",
            "intermediate_size",
            "num_hidden_layers",
        ] {
            let text = format!("{{{BASE}}}").replacen(
                &format!("\"{key}\": "),
                &format!("\"{key}\": {huge}, \"x_{key}\": "),
                1,
            );
            let err = parse(&text).unwrap_err().to_string();
            assert!(
                err.contains("parameters") || err.contains("multiple"),
                "{key}: {err}"
            );
        }
        let big =
            parse(&format!("{{{BASE}}}").replace("\"vocab_size\": 32", "\"vocab_size\": 30000000000000"));
        assert!(big.unwrap_err().to_string().contains("more than"), "vocab 3e13");
    }

    #[test]
    fn a_fresh_config_reads_back_as_the_same_model() {
        let base = || LlamaConfig::new(32, 16, 24, 2, 4, 2, 4);
        let llama3 = RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 16.0,
        };
        for (config, family) in [
            (base(), ModelFamily::Llama),
            (
                base()
                    .with_qkv_bias(true)
                    .with_o_proj_bias(true)
                    .with_mlp_bias(true),
                ModelFamily::Llama,
            ),
            (base().with_rope_scaling(Some(llama3)), ModelFamily::Llama),
            (base().with_qkv_bias(true), ModelFamily::Qwen2),
            (
                base().with_qkv_bias(true).with_sliding_window(Some(8)),
                ModelFamily::Qwen2,
            ),
            (base().with_sliding_window(Some(8)), ModelFamily::Mistral),
        ] {
            let hf = HfConfig::new(&config);
            let again = HfConfig::from_json_str(&hf.to_json_string(), Path::new("c.json")).unwrap();
            assert_eq!(again.family().unwrap(), family, "{config:?}");
            assert_eq!(again.to_llama_config().unwrap(), config);
        }
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
