//! `allam recipe --plan`: the memory each training stage of a recipe from a base will hold, from
//! the base's `config.json` grown to the expanded vocabulary, without loading or running anything.
use allam_model::HfConfig;
use allam_model::expand::tokenizer_size;
use allam_train::ActivationCheckpointing;
use allam_train::config::Precision;
use allam_train::plan::{MemoryPlan, PlanInput, checked};

use super::config::BaseRecipe;
use crate::error::{RecipeError, Result};

/// The vocabulary the expansion will end at: `vocab_size`, or the base tokenizer's ids plus
/// `new_pieces`, rounded up to `pad_to_multiple`; never fewer rows than the base model has.
pub fn expanded_vocab(recipe: &BaseRecipe, base_rows: usize) -> Result<usize> {
    let e = &recipe.expansion;
    let path = recipe.base.dir.join("tokenizer.json");
    let base = allam_tokenizer::load_tokenizer(&path)?;
    let target = match e.vocab_size {
        Some(v) => v as usize,
        None => tokenizer_size(&base) + e.new_pieces.unwrap_or(0) as usize,
    };
    let padded = match e.pad_to_multiple {
        Some(m) if m > 1 => target.div_ceil(m as usize) * m as usize,
        _ => target,
    };
    Ok(padded.max(base_rows))
}

/// The plan of each training stage: continued pretraining (the mixed run and the control alike),
/// SFT and DPO (its reference cached, so no second model in memory).
pub fn plans(recipe: &BaseRecipe) -> Result<Vec<(String, MemoryPlan)>> {
    let path = recipe.base.dir.join("config.json");
    let mut config = HfConfig::from_file(&path)?.to_llama_config()?;
    config.vocab_size = expanded_vocab(recipe, config.vocab_size)?;
    let input = |rows: usize, seq_len: usize, micro_batches: usize| PlanInput {
        config: config.clone(),
        rows,
        seq_len,
        micro_batches_per_step: micro_batches,
        head_chunk_tokens: allam_train::config::head_chunk_tokens(),
        frozen_reference: false,
        checkpoint_layers: recipe.activation_checkpointing == ActivationCheckpointing::Layers,
        bf16_mixed: recipe.precision == Precision::Bf16Mixed,
    };
    let (c, s, d) = (&recipe.continued, &recipe.sft, &recipe.dpo);
    let stages = [
        (
            "3 continued pretraining (mixed and control)",
            input(c.micro_batch_size, c.seq_len, c.grad_accum),
        ),
        ("4 SFT", input(s.micro_batch_size, s.seq_len, s.grad_accum)),
        ("5 DPO", input(2 * d.micro_batch_size, d.seq_len, d.grad_accum)),
    ];
    stages
        .into_iter()
        .map(|(name, input)| {
            let plan = checked(&input).map_err(|e| RecipeError::Config(format!("{name}: {e}")))?;
            Ok((name.to_string(), plan))
        })
        .collect()
}
