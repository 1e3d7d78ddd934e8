//! Checkpoint averaging (the paper averages checkpoints; which ones, and where in the recipe, is
//! this project's choice: see docs/RECIPE.md): the element-wise mean of the weights of
//! several checkpoints of the same architecture.
use std::collections::BTreeMap;
use std::path::Path;

use allam_model::{HfConfig, Llama, load_model};
use burn::tensor::Device;
use burn::tensor::Tensor;

use crate::error::{Result, TrainError};
use crate::params::{Flat, named_values, update_params};

/// Loads each Hugging Face directory in turn (two models in memory at most) and returns the
/// mean model with the first directory's config. Every directory must have the same
/// architecture.
pub fn average_checkpoints(dirs: &[&Path], device: &Device) -> Result<(Llama, HfConfig)> {
    let Some((first, rest)) = dirs.split_first() else {
        return Err(TrainError::Config(
            "averaging needs at least one checkpoint".into(),
        ));
    };
    let (model, hf_config) = load_model(first, device)?;
    let mut sums: BTreeMap<String, Flat> = named_values(&model);
    for dir in rest {
        let (other, _) = load_model(dir, device)?;
        if other.config.vocab_size != model.config.vocab_size
            || other.config.hidden_size != model.config.hidden_size
            || other.config.num_hidden_layers != model.config.num_hidden_layers
            || other.config.intermediate_size != model.config.intermediate_size
            || other.config.tie_word_embeddings != model.config.tie_word_embeddings
        {
            return Err(TrainError::checkpoint(
                dir,
                format!("its architecture differs from {}'s", first.display()),
            ));
        }
        for (name, flat) in named_values(&other) {
            let sum = sums.get_mut(&name).expect("same architecture, same parameters");
            sum.values = sum.values.clone() + flat.values;
        }
    }
    let n = dirs.len() as f64;
    let mut mean = |name: &str, _current: Flat| -> Option<Tensor<1>> {
        sums.remove(name).map(|s| s.values.div_scalar(n))
    };
    Ok((update_params(model, &mut mean), hf_config))
}
