//! The SwiGLU feed-forward block.
use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor};

use crate::split::project;

/// `down(silu(gate(x)) ⊙ up(x))`, without biases.
///
/// # Shapes
/// - input: `[batch, seq, hidden]`
/// - output: `[batch, seq, hidden]`
#[derive(Module, Debug)]
pub struct SwiGlu {
    /// `gate_proj`: hidden → intermediate.
    pub gate_proj: Linear,
    /// `up_proj`: hidden → intermediate.
    pub up_proj: Linear,
    /// `down_proj`: intermediate → hidden.
    pub down_proj: Linear,
}

impl SwiGlu {
    /// A randomly initialised block.
    pub fn init(hidden: usize, intermediate: usize, init: &Initializer, device: &Device) -> Self {
        Self {
            gate_proj: linear(hidden, intermediate, init, device),
            up_proj: linear(hidden, intermediate, init, device),
            down_proj: linear(intermediate, hidden, init, device),
        }
    }

    /// Applies the block.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let gate = silu(project(&self.gate_proj, x.clone()));
        project(&self.down_proj, gate * project(&self.up_proj, x))
    }
}

/// A bias-free linear layer (Burn stores the weight as `[d_in, d_out]`).
pub(crate) fn linear(d_in: usize, d_out: usize, init: &Initializer, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out)
        .with_bias(false)
        .with_initializer(init.clone())
        .init(device)
}
