//! Activation checkpointing by decoder layer (`[train] activation_checkpointing = "layers"`):
//! keep only each layer's input during the forward pass, and recompute one layer at a time in
//! the backward pass — torch's `checkpoint` per layer, on Burn's autodiff.
//!
//! 1. The forward pass runs without autodiff and keeps each layer's input `[rows, len, hidden]`.
//! 2. The final norm, the output head and the loss run with autodiff on the last layer's output
//!    (a leaf): their backward gives the head's and norm's gradients and `g`, the loss's gradient
//!    with respect to that output.
//! 3. From the last layer to the first: the layer runs again with autodiff on its saved input (a
//!    leaf), and `Σ(output ⊙ g)` is backpropagated: the layer's gradients, and the next `g`.
//! 4. The embedding lookup gets the last `g` the same way.
//!
//! Every operation is the one of the plain step, so the gradients are the same (one more forward
//! pass of compute); the activations held are one layer's plus the saved inputs.
use std::collections::BTreeMap;

use allam_model::Llama;
use burn::tensor::Tensor;

use crate::error::{Result, TrainError};
use crate::objective::{MetricSum, Objective};
use crate::params::{GradMap, frozen};

/// The gradients of `batch`'s loss divided by `units`, the loss so divided (without autodiff) and
/// its metrics, computed layer by layer as the module describes.
pub fn checkpointed_gradients<O: Objective>(
    objective: &O,
    model: &Llama,
    batch: &O::Batch,
    units: usize,
) -> Result<(GradMap, Tensor<1>, BTreeMap<String, MetricSum>)> {
    let input = objective.model_input(batch).ok_or_else(|| {
        TrainError::Config(
            "activation_checkpointing = \"layers\" needs an objective whose loss reads the final hidden states"
                .into(),
        )
    })??;
    let layers = model.layers.len();

    // 1. Forward without autodiff, keeping each layer's input.
    let plain = frozen(model);
    let (mut x, pass) = plain.layer_pass(&input)?;
    let mut inputs = Vec::with_capacity(layers);
    for index in 0..layers {
        inputs.push(x.clone());
        x = plain.layer(index, x, &pass);
    }
    drop(pass);

    // 2. Final norm, head and loss on the last layer's output.
    let last = x.autodiff().require_grad();
    let out = objective.loss_from_hidden(model, model.final_norm(last.clone()), batch)?;
    let scaled = out.loss_sum.div_scalar(units as f64);
    let loss = scaled.clone().without_autodiff();
    let mut grads = scaled.backward();
    let mut upstream = gradient_of(&last, &grads)?;
    let mut total = GradMap::collect(model, grads);

    // 3. Each layer again, last to first.
    let (embedded, pass) = model.layer_pass(&input)?;
    for index in (0..layers).rev() {
        let saved = inputs
            .pop()
            .expect("one input per layer")
            .autodiff()
            .require_grad();
        let output = model.layer(index, saved.clone(), &pass);
        grads = (output * upstream).sum().backward();
        upstream = gradient_of(&saved, &grads)?;
        total.accumulate(GradMap::collect(model, grads));
    }

    // 4. The embedding lookup.
    let grads = (embedded * upstream).sum().backward();
    total.accumulate(GradMap::collect(model, grads));
    Ok((total, loss, out.metrics))
}

fn gradient_of(leaf: &Tensor<3>, grads: &burn::tensor::Gradients) -> Result<Tensor<3>> {
    leaf.grad(grads)
        .ok_or_else(|| TrainError::Config("the loss does not depend on the model's hidden states".into()))
}
