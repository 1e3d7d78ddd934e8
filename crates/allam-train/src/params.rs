//! Parameters by name: gradients out of Burn's autodiff, new values back into the module.
//!
//! Names are Burn's module paths (`embed_tokens.weight`, `layers.3.self_attn.q_proj.weight`,
//! `norm.gamma`, `lm_head.weight`). Tensors are handled flattened (`[numel]`) with their shape
//! kept beside them, so one optimizer loop serves matrices and vectors alike.
use std::collections::BTreeMap;

use allam_model::Llama;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Device, Gradients, Tensor};

/// Burn path of the input embedding.
pub const EMBEDDING: &str = "embed_tokens.weight";
/// Burn path of the untied output head (Burn's `Linear` holds it `[hidden, vocab]`).
pub const OUTPUT_HEAD: &str = "lm_head.weight";

/// One flattened tensor and its shape.
#[derive(Clone, Debug)]
pub struct Flat {
    /// The values, `[numel]`, without autodiff.
    pub values: Tensor<1>,
    /// The original shape.
    pub shape: Vec<usize>,
}

/// Gradients of the trainable parameters, flattened, by parameter name.
#[derive(Clone, Debug, Default)]
pub struct GradMap(pub BTreeMap<String, Flat>);

impl GradMap {
    /// Takes every parameter's gradient out of `grads` (the result of `loss.backward()`).
    pub fn collect(model: &Llama, mut grads: Gradients) -> Self {
        let mut visitor = Collect {
            path: Vec::new(),
            grads: &mut grads,
            out: BTreeMap::new(),
        };
        model.visit(&mut visitor);
        GradMap(visitor.out)
    }

    /// Adds `other` into `self`, name by name (accumulation over micro-batches and replicas).
    pub fn accumulate(&mut self, other: GradMap) {
        for (name, grad) in other.0 {
            match self.0.get_mut(&name) {
                Some(mine) => mine.values = mine.values.clone() + grad.values,
                None => {
                    self.0.insert(name, grad);
                }
            }
        }
    }

    /// `Σ‖g‖²` over every gradient, `[1]` on the device (zero on `device` when there are
    /// none); nothing is read back.
    pub fn squared_norm_on_device(&self, device: &Device) -> Tensor<1> {
        let squares = self.0.values().map(|grad| grad.values.clone().square().sum());
        squares
            .reduce(|total, sq| total + sq)
            .unwrap_or_else(|| Tensor::zeros([1], device))
    }

    /// Multiplies every gradient by `factor`.
    pub fn scale(&mut self, factor: f64) {
        for grad in self.0.values_mut() {
            grad.values = grad.values.clone().mul_scalar(factor);
        }
    }
}

struct Collect<'a> {
    path: Vec<String>,
    grads: &'a mut Gradients,
    out: BTreeMap<String, Flat>,
}

impl ModuleVisitor for Collect<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val();
        if let Some(grad) = tensor.grad_remove(self.grads) {
            let shape = grad.dims().to_vec();
            let numel: usize = shape.iter().product();
            self.out.insert(
                self.path.join("."),
                Flat {
                    values: grad.reshape([numel]),
                    shape,
                },
            );
        }
    }
}

/// Every parameter's value, flattened and without autodiff, by name.
pub fn named_values(model: &Llama) -> BTreeMap<String, Flat> {
    struct Values {
        path: Vec<String>,
        out: BTreeMap<String, Flat>,
    }
    impl ModuleVisitor for Values {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let tensor = param.val().inner();
            let shape = tensor.dims().to_vec();
            let numel: usize = shape.iter().product();
            self.out.insert(
                self.path.join("."),
                Flat {
                    values: tensor.reshape([numel]),
                    shape,
                },
            );
        }
    }
    let mut visitor = Values {
        path: Vec::new(),
        out: BTreeMap::new(),
    };
    model.visit(&mut visitor);
    visitor.out
}

/// Replaces parameters: `update(name, current)` returns the new flattened value, or `None` to keep
/// the parameter as it is. Identity, gradient requirement and autodiff association are kept.
pub fn update_params(model: Llama, update: &mut dyn FnMut(&str, Flat) -> Option<Tensor<1>>) -> Llama {
    let mut mapper = Update {
        path: Vec::new(),
        update,
    };
    model.map(&mut mapper)
}

struct Update<'a> {
    path: Vec<String>,
    update: &'a mut dyn FnMut(&str, Flat) -> Option<Tensor<1>>,
}

impl ModuleMapper for Update<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let shape = tensor.dims();
        let numel: usize = shape.iter().product();
        let current = Flat {
            values: tensor.clone().inner().reshape([numel]),
            shape: shape.to_vec(),
        };
        let Some(updated) = (self.update)(&self.path.join("."), current) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let mut updated: Tensor<D> = updated.reshape(shape);
        if tensor.is_autodiff() {
            updated = updated.autodiff();
            if tensor.is_require_grad() {
                updated = updated.require_grad();
            }
        }
        Param::from_mapped_value(id, updated, mapper)
    }
}

/// Draws every matrix of `model` from `N(0, std²)` with a generator seeded by `seed` and the
/// parameter's name, sets the norms to one and the biases (if any) to zero. Burn's own initialisers draw from a
/// process-wide generator, lazily, on first use, so weights would depend on what else ran before;
/// these depend on the seed only.
pub fn seeded_init(model: Llama, std: f64, seed: u64) -> Llama {
    use rand::{Rng, SeedableRng};
    let device = model.device();
    let mut draw = |name: &str, current: Flat| -> Option<Tensor<1>> {
        let numel: usize = current.shape.iter().product();
        if name.ends_with("bias") {
            return Some(Tensor::zeros([numel], &device));
        }
        if current.shape.len() == 1 {
            return Some(Tensor::ones([numel], &device));
        }
        let salt = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ salt);
        // Box–Muller: two uniforms give two independent standard normals.
        let mut values = Vec::with_capacity(numel + 1);
        while values.len() < numel {
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random::<f64>();
            let r = (-2.0 * u1.ln()).sqrt();
            let t = std::f64::consts::TAU * u2;
            values.push((std * r * t.cos()) as f32);
            values.push((std * r * t.sin()) as f32);
        }
        values.truncate(numel);
        Some(Tensor::from_data(
            burn::tensor::TensorData::new(values, [numel]),
            &device,
        ))
    };
    update_params(model, &mut draw)
}

/// The model with autodiff enabled and every parameter requiring gradients.
pub fn trainable(model: Llama) -> Llama {
    let device = model.device().autodiff();
    model.fork(&device).set_require_grad(true).train()
}

/// The model without autodiff (for evaluation and saving).
pub fn frozen(model: &Llama) -> Llama {
    model.valid()
}
