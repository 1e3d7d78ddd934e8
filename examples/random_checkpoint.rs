//! Writes a randomly initialised Llama checkpoint in Hugging Face layout — a stand-in for a
//! downloaded model when measuring loading, or a from-scratch starting point.
//!
//! `cargo run --release --example random_checkpoint -- OUT_DIR [hidden layers vocab dtype [kv_heads [tied]]]`
//!
//! Heads are `hidden / 64` (head_dim 64), the FFN `hidden * 8 / 3`; `kv_heads` defaults to the
//! number of heads (no GQA), and `tied` ties the output projection to the embeddings. The
//! SmolLM2-135M shape is `576 30 49152 f32 3 tied`.
use allam::model::{HfConfig, LlamaConfig, SaveOptions, StorageDtype, save_model};
use burn::tensor::Device;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = args
        .first()
        .ok_or("usage: random_checkpoint OUT_DIR [hidden layers vocab dtype [kv_heads [tied]]]")?;
    let num = |i: usize, default: usize| args.get(i).map_or(Ok(default), |s| s.parse());
    let (hidden, layers, vocab) = (num(1, 1024)?, num(2, 16)?, num(3, 32000)?);
    let dtype: StorageDtype = args.get(4).map_or("f32", String::as_str).parse()?;
    let heads = hidden / 64;
    let kv_heads = num(5, heads)?;
    let tied = match args.get(6).map(String::as_str) {
        None | Some("untied") => false,
        Some("tied") => true,
        Some(other) => return Err(format!("argument 7 is `tied` or `untied`, not `{other}`").into()),
    };
    let config = LlamaConfig::new(vocab, hidden, hidden * 8 / 3, layers, heads, kv_heads, 64)
        .with_tie_word_embeddings(tied)
        .with_bos_token_id(Some(1))
        .with_eos_token_ids(vec![2]);
    let model = config.init(&Device::flex());
    let options = SaveOptions {
        dtype,
        ..SaveOptions::default()
    };
    save_model(&model, &HfConfig::new(&config), out.as_ref(), &options)?;
    println!("{} parameters written to {out}", config.num_parameters());
    Ok(())
}
