//! AdamW with the paper's defaults, global-norm clipping, and a trainable scope for the
//! embeddings-only warm-up.
//!
//! Burn ships an AdamW, but its clipping is per tensor and it cannot freeze part of a matrix; the
//! recipe needs both, so the update is written here, exactly as PyTorch's `torch.optim.AdamW`:
//!
//! ```text
//! θ ← θ − lr·λ·θ                         (decoupled weight decay; λ = 0 for norms and biases)
//! m ← β₁ m + (1 − β₁) g
//! v ← β₂ v + (1 − β₂) g²
//! θ ← θ − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)
//! ```
use std::collections::BTreeMap;
use std::path::Path;

use allam_model::Llama;
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors, View};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::fused_adamw::Coefficients;
use crate::params::{EMBEDDING, Flat, GradMap, OUTPUT_HEAD, update_params};

/// AdamW hyper-parameters (defaults: the paper's β₁ 0.9, β₂ 0.95, ε 1e-8, weight decay 0.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamWConfig {
    /// First-moment decay.
    #[serde(default = "beta1")]
    pub beta1: f64,
    /// Second-moment decay.
    #[serde(default = "beta2")]
    pub beta2: f64,
    /// Denominator guard.
    #[serde(default = "eps")]
    pub eps: f64,
    /// Decoupled weight decay (not applied to norm weights and biases).
    #[serde(default = "weight_decay")]
    pub weight_decay: f64,
    /// Global gradient-norm clipping threshold; `None` (or 0) disables clipping.
    #[serde(default = "clip")]
    pub clip_grad_norm: Option<f64>,
}

fn beta1() -> f64 {
    0.9
}
fn beta2() -> f64 {
    0.95
}
fn eps() -> f64 {
    1e-8
}
fn weight_decay() -> f64 {
    0.1
}
fn clip() -> Option<f64> {
    Some(1.0)
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: beta1(),
            beta2: beta2(),
            eps: eps(),
            weight_decay: weight_decay(),
            clip_grad_norm: clip(),
        }
    }
}

/// Which parameters a step may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainableScope {
    /// Every parameter.
    All,
    /// Only the rows of the embedding and output head at or after `first_new_row` (the
    /// embeddings-only warm-up after a vocabulary expansion); everything else stays bit-for-bit.
    NewRows {
        /// The old vocabulary size.
        first_new_row: usize,
    },
}

impl TrainableScope {
    /// For parameter `name` of `shape`: `None` if frozen, else the frozen slice to restore, as
    /// `(dimension, rows before)` (`dimension` is the vocabulary axis).
    fn frozen_part(self, name: &str, shape: &[usize]) -> Option<Option<(usize, usize)>> {
        match self {
            Self::All => Some(None),
            Self::NewRows { first_new_row } => match name {
                // Embedding `[vocab, hidden]`; Burn's Linear head `[hidden, vocab]`.
                EMBEDDING => Some(Some((0, first_new_row.min(shape[0])))),
                OUTPUT_HEAD => Some(Some((1, first_new_row.min(shape[1])))),
                _ => None,
            },
        }
    }
}

/// The moments of one parameter.
#[derive(Clone, Debug)]
pub struct Moments {
    /// Updates applied so far (`t`).
    pub step: u64,
    /// First moment, flattened.
    pub exp_avg: Tensor<1>,
    /// Second moment, flattened.
    pub exp_avg_sq: Tensor<1>,
}

/// What one optimizer step saw.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// The factor the gradients were multiplied by (1 when not clipped).
    pub clip_factor: f64,
}

/// A step's gradients made ready for [`AdamW::apply`]: what `scope` freezes dropped (or zeroed
/// where a matrix is partly frozen, so that clipping sees what is trained), and their squared
/// global norm computed on the device but not read back.
pub struct PreparedGrads {
    grads: GradMap,
    /// `Σ‖g‖²` over the trained gradients, `[1]`, on the device.
    pub norm_sq: Tensor<1>,
}

impl PreparedGrads {
    /// Prepares `grads` of `model` for a step over `scope`.
    pub fn new(model: &Llama, mut grads: GradMap, scope: TrainableScope) -> Self {
        grads
            .0
            .retain(|name, g| scope.frozen_part(name, &g.shape).is_some());
        for (name, g) in grads.0.iter_mut() {
            if let Some(Some((dim, rows))) = scope.frozen_part(name, &g.shape) {
                g.values = zero_part(g.values.clone(), &g.shape, dim, rows);
            }
        }
        let norm_sq = grads.squared_norm_on_device(&model.device().without_autodiff());
        Self { grads, norm_sq }
    }

    /// The global gradient norm, read back on its own (one transfer).
    pub fn read_norm(&self) -> f64 {
        f64::from(self.norm_sq.clone().into_scalar::<f32>()).sqrt()
    }
}

/// AdamW over a [`Llama`], with its state by parameter name.
#[derive(Clone, Debug)]
pub struct AdamW {
    /// Hyper-parameters.
    pub config: AdamWConfig,
    /// State by parameter name.
    pub moments: BTreeMap<String, Moments>,
}

impl AdamW {
    /// A fresh optimizer (no state).
    pub fn new(config: AdamWConfig) -> Self {
        Self {
            config,
            moments: BTreeMap::new(),
        }
    }

    /// Clips `grads` to the global norm, then updates every parameter `scope` allows with `lr`.
    /// Frozen parameters, and the frozen rows of the embedding and head, keep their exact bits.
    /// Errors, changing nothing, if the gradient norm is not finite.
    pub fn step(
        &mut self,
        model: Llama,
        grads: GradMap,
        lr: f64,
        scope: TrainableScope,
    ) -> Result<(Llama, StepStats)> {
        let prepared = PreparedGrads::new(&model, grads, scope);
        let grad_norm = prepared.read_norm();
        self.apply(model, prepared, grad_norm, lr, scope)
    }

    /// The update of [`AdamW::step`] for gradients whose global norm the caller has read back
    /// (`√` of [`PreparedGrads::norm_sq`]; the trainer reads it together with the loss, in the
    /// step's one transfer). Errors, changing nothing, if `grad_norm` is not finite.
    pub fn apply(
        &mut self,
        model: Llama,
        prepared: PreparedGrads,
        grad_norm: f64,
        lr: f64,
        scope: TrainableScope,
    ) -> Result<(Llama, StepStats)> {
        if !grad_norm.is_finite() {
            return Err(TrainError::Diverged(format!("the gradient norm is {grad_norm}")));
        }
        let mut grads = prepared.grads;
        let clip_factor = match self.config.clip_grad_norm {
            Some(max) if max > 0.0 => (max / (grad_norm + 1e-6)).min(1.0),
            _ => 1.0,
        };
        if clip_factor < 1.0 {
            grads.scale(clip_factor);
        }
        let config = self.config.clone();
        let moments = &mut self.moments;
        let mut update = |name: &str, param: Flat| -> Option<Tensor<1>> {
            let grad = grads.0.remove(name)?;
            let frozen = scope.frozen_part(name, &param.shape)?;
            let state = moments.remove(name);
            let (updated, state) = adamw(&config, lr, &param, grad.values, state);
            moments.insert(name.to_string(), state);
            Some(match frozen {
                Some((dim, rows)) => restore_part(updated, &param, dim, rows),
                None => updated,
            })
        };
        let model = update_params(model, &mut update);
        Ok((
            model,
            StepStats {
                grad_norm,
                clip_factor,
            },
        ))
    }

    /// Writes the moments to `path` (safetensors, f32, bit-exact) with the step counts in its
    /// metadata.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors: Vec<(String, HostTensor)> = Vec::new();
        let mut steps = BTreeMap::new();
        for (name, m) in &self.moments {
            steps.insert(name.clone(), m.step);
            tensors.push((format!("{name}.exp_avg"), HostTensor::from(&m.exp_avg)));
            tensors.push((format!("{name}.exp_avg_sq"), HostTensor::from(&m.exp_avg_sq)));
        }
        let mut metadata = std::collections::HashMap::new();
        metadata.insert(
            "steps".to_string(),
            serde_json::to_string(&steps).expect("a map of numbers serialises"),
        );
        metadata.insert(
            "config".to_string(),
            serde_json::to_string(&self.config).expect("the config serialises"),
        );
        let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata))
            .map_err(|e| TrainError::checkpoint(path, e.to_string()))?;
        allam_io::write_atomic(path, &bytes).map_err(|e| TrainError::io(path, e))
    }

    /// [`AdamW::load`] for `model`: on its device, and checked by [`AdamW::check_fits`].
    pub fn load_for(model: &Llama, path: &Path, config: AdamWConfig) -> Result<Self> {
        let optimizer = Self::load(path, config, &model.device())?;
        optimizer.check_fits(model, path)?;
        Ok(optimizer)
    }

    /// Checks that every saved moment belongs to a parameter of `model` of the same size, so that
    /// a state from another model is an error here rather than a shape panic in the first step.
    pub fn check_fits(&self, model: &Llama, path: &Path) -> Result<()> {
        let params = crate::params::named_values(model);
        for (name, m) in &self.moments {
            let numel: Option<usize> = params.get(name).map(|p| p.shape.iter().product());
            let saved = m.exp_avg.dims()[0];
            if numel != Some(saved) || m.exp_avg_sq.dims()[0] != saved {
                return Err(TrainError::checkpoint(
                    path,
                    match numel {
                        Some(n) => {
                            format!("moments of {name} have {saved} values, the model's parameter has {n}")
                        }
                        None => format!("moments of {name}, which the model does not have"),
                    },
                ));
            }
        }
        Ok(())
    }

    /// Reads moments written by [`AdamW::save`]; hyper-parameters come from `config`, not the file.
    pub fn load(path: &Path, config: AdamWConfig, device: &Device) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
        let bad = |m: String| TrainError::checkpoint(path, m);
        let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let steps: BTreeMap<String, u64> = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("steps"))
            .ok_or_else(|| bad("no \"steps\" in the safetensors metadata".into()))
            .and_then(|s| serde_json::from_str(s).map_err(|e| bad(format!("\"steps\" metadata: {e}"))))?;
        let file = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let read = |name: String| -> Result<Tensor<1>> {
            let view = file
                .tensor(&name)
                .map_err(|_| bad(format!("missing tensor {name}")))?;
            if view.dtype() != Dtype::F32 || view.shape().len() != 1 {
                return Err(bad(format!("tensor {name}: expected a 1-D f32 tensor")));
            }
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let n = values.len();
            Ok(Tensor::from_data(TensorData::new(values, [n]), device))
        };
        let mut moments = BTreeMap::new();
        for (name, step) in steps {
            let m = Moments {
                step,
                exp_avg: read(format!("{name}.exp_avg"))?,
                exp_avg_sq: read(format!("{name}.exp_avg_sq"))?,
            };
            moments.insert(name, m);
        }
        Ok(Self { config, moments })
    }
}

/// One AdamW update of one flattened parameter: in one parallel pass on the CPU
/// ([`crate::fused_adamw`]), else composed of Burn ops; both give the same bits.
fn adamw(
    config: &AdamWConfig,
    lr: f64,
    param: &Flat,
    grad: Tensor<1>,
    state: Option<Moments>,
) -> (Tensor<1>, Moments) {
    let step = state.as_ref().map_or(1, |s| s.step + 1);
    let (b1, b2) = (config.beta1, config.beta2);
    // No decay on norm weights and biases (the 1-D parameters), as Megatron and most HF recipes.
    let decay = if param.shape.len() > 1 {
        config.weight_decay
    } else {
        0.0
    };
    let bias1 = 1.0 - b1.powi(step as i32);
    let coefficients = Coefficients {
        beta1: b1 as f32,
        one_minus_beta1: (1.0 - b1) as f32,
        beta2: b2 as f32,
        one_minus_beta2: (1.0 - b2) as f32,
        decay: (decay != 0.0).then_some((1.0 - lr * decay) as f32),
        bias2_sqrt: (1.0 - b2.powi(step as i32)).sqrt() as f32,
        eps: config.eps as f32,
        step_size: (lr / bias1) as f32,
    };
    let moments = state.as_ref().map(|s| (&s.exp_avg, &s.exp_avg_sq));
    let (value, exp_avg, exp_avg_sq) =
        crate::fused_adamw::update(&param.values, &grad, moments, &coefficients)
            .unwrap_or_else(|| composed_adamw(&param.values, grad, state, &coefficients));
    (
        value,
        Moments {
            step,
            exp_avg,
            exp_avg_sq,
        },
    )
}

/// [`adamw`] as Burn ops, for every device and dtype: the same f32 operations in the same order
/// as the fused pass (each scalar converted to f32 by the op).
pub(crate) fn composed_adamw(
    value: &Tensor<1>,
    grad: Tensor<1>,
    state: Option<Moments>,
    c: &Coefficients,
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let (exp_avg, exp_avg_sq) = match state {
        Some(s) => (
            s.exp_avg.mul_scalar(c.beta1) + grad.clone().mul_scalar(c.one_minus_beta1),
            s.exp_avg_sq.mul_scalar(c.beta2) + grad.square().mul_scalar(c.one_minus_beta2),
        ),
        None => (
            grad.clone().mul_scalar(c.one_minus_beta1),
            grad.square().mul_scalar(c.one_minus_beta2),
        ),
    };
    let mut value = value.clone();
    if let Some(d) = c.decay {
        value = value.mul_scalar(d);
    }
    let denom = exp_avg_sq
        .clone()
        .sqrt()
        .div_scalar(c.bias2_sqrt)
        .add_scalar(c.eps);
    let value = value - exp_avg.clone().div(denom).mul_scalar(c.step_size);
    (value, exp_avg, exp_avg_sq)
}

/// The flattened `values` of a 2-D `shape` with the first `rows` along `dim` set to zero.
fn zero_part(values: Tensor<1>, shape: &[usize], dim: usize, rows: usize) -> Tensor<1> {
    let [a, b] = [shape[0], shape[1]];
    let m: Tensor<2> = values.reshape([a, b]);
    let m = if dim == 0 {
        m.slice_fill([0..rows, 0..b], 0.0)
    } else {
        m.slice_fill([0..a, 0..rows], 0.0)
    };
    m.reshape([a * b])
}

/// `updated` with the first `rows` along `dim` copied back from `original` (bit-exact).
fn restore_part(updated: Tensor<1>, original: &Flat, dim: usize, rows: usize) -> Tensor<1> {
    let [a, b] = [original.shape[0], original.shape[1]];
    let old: Tensor<2> = original.values.clone().reshape([a, b]);
    let new: Tensor<2> = updated.reshape([a, b]);
    let merged = if dim == 0 {
        new.slice_assign([0..rows, 0..b], old.slice([0..rows, 0..b]))
    } else {
        new.slice_assign([0..a, 0..rows], old.slice([0..a, 0..rows]))
    };
    merged.reshape([a * b])
}

/// A host copy of a flattened f32 tensor, for safetensors.
struct HostTensor {
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl From<&Tensor<1>> for HostTensor {
    fn from(t: &Tensor<1>) -> Self {
        let values = t
            .clone()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("converted to f32");
        Self {
            shape: vec![values.len()],
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

impl View for &HostTensor {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}
