//! The SwiGLU feed-forward block.
use burn::module::{Module, Param};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use crate::config::LlamaConfig;
use crate::cpu;
use crate::cpu::{project, project_group};
use crate::precision::silu;

/// `down(silu(gate(x)) ⊙ up(x))`, with biases when `mlp_bias`.
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
    pub fn init(config: &LlamaConfig, init: &Initializer, device: &Device) -> Self {
        let (d, ff, bias) = (config.hidden_size, config.intermediate_size, config.mlp_bias);
        Self {
            gate_proj: linear(d, ff, bias, init, device),
            up_proj: linear(d, ff, bias, init, device),
            down_proj: linear(ff, d, bias, init, device),
        }
    }

    /// Applies the block.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [gate, up] = project_group([&self.gate_proj, &self.up_proj], x);
        // On the CPU, outside autodiff: one parallel pass instead of three serial ones.
        let gated = cpu::swiglu(&gate, &up).unwrap_or_else(|| silu(gate) * up);
        project(&self.down_proj, gated)
    }
}

/// A linear layer with weights drawn from `init` and, if `bias`, a zero bias (as `transformers`
/// initialises one). Burn stores the weight as `[d_in, d_out]`.
pub(crate) fn linear(d_in: usize, d_out: usize, bias: bool, init: &Initializer, device: &Device) -> Linear {
    let mut layer = LinearConfig::new(d_in, d_out)
        .with_bias(false)
        .with_initializer(init.clone())
        .init(device);
    if bias {
        layer.bias = Some(Param::from_tensor(Tensor::zeros([d_out], device)));
    }
    layer
}
