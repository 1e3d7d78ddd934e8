//! The rotary settings of a `config.json`: `rope_theta` and the scaling, under the classic keys
//! (`rope_theta`, `rope_scaling`) or transformers 5's `rope_parameters`.
use serde_json::{Map, Value};

use super::HfConfig;
use crate::config::RopeScaling;
use crate::error::Result;

impl HfConfig {
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

    pub(super) fn rope_theta(&self) -> Result<f64> {
        let from_parameters = match self.get("rope_parameters") {
            Some(Value::Object(p)) => self.f64_key(p.get("rope_theta"), "rope_parameters.rope_theta")?,
            Some(v) => return Err(self.err("rope_parameters", format!("expected an object, found {v}"))),
            None => None,
        };
        let classic = self.f64_key(self.get("rope_theta"), "rope_theta")?;
        Ok(from_parameters.or(classic).unwrap_or(10000.0))
    }

    /// The rotary scaling named by `rope_type` (or the classic `type`), with its parameters.
    pub(super) fn rope_scaling(&self) -> Result<Option<RopeScaling>> {
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
}
