//! # allam-model
//!
//! A Llama-family decoder (RMSNorm, rotary embeddings in Hugging Face's rotate-half layout with
//! `linear`/`dynamic`/`llama3`/`yarn` scaling, SwiGLU, grouped-query attention, optional biases, tied
//! or untied head) on Burn — Llama-2/3.x, Mistral and Qwen2 checkpoints — that reads and writes
//! Hugging Face checkpoints as they are and gives the same logits as `transformers`.
//!
//! ```no_run
//! use allam_model::{PretrainedModel, GenerationConfig};
//! # fn main() -> Result<(), allam_model::ModelError> {
//! let device = allam_model::device::select("cpu").unwrap();
//! let model = PretrainedModel::load("path/to/model-dir".as_ref(), &device)?;
//! let out = model.generate_text("The capital of Saudi Arabia is", &GenerationConfig::greedy(20))?;
//! println!("{}", out.text);
//! # Ok(()) }
//! ```
//!
//! The map: [`hf_config`] (what `config.json` says) → [`config`] → [`model`] ([`Llama`], built of [`layer`],
//! [`attention`], [`mlp`], [`rope`]) fed by a [`batch::TokenBatch`]; [`checkpoint`] reads and writes
//! safetensors; [`expand`] grows the vocabulary; [`cache`] and [`generate`] decode; [`score`] gives
//! log-probabilities; [`text`] holds the tokenizer and chat template; [`pretrained`] ties a model
//! directory together.
pub mod attention;
pub mod batch;
pub mod cache;
pub mod checkpoint;
pub mod config;
pub mod cpu;
pub mod device;
pub mod error;
pub mod expand;
pub mod generate;
pub mod hf_config;
pub mod layer;
pub mod mlp;
pub mod model;
pub mod precision;
pub mod pretrained;
pub mod rope;
pub mod score;
#[cfg(test)]
mod testing;
pub mod text;

pub use batch::{PaddingSide, TokenBatch};
pub use cache::KvCache;
pub use checkpoint::{SaveOptions, load_model, save_model};
pub use config::{LlamaConfig, RopeScaling, StorageDtype};
pub use error::{ModelError, Result};
pub use expand::{ExpansionSummary, RowInit, VocabExpansion, expand_vocab};
pub use hf_config::{HfConfig, ModelFamily};

pub use model::{LayerPass, Llama};

pub use generate::{GenerationConfig, GenerationOutput};
pub use pretrained::PretrainedModel;
pub use text::{ChatMessage, TextTokenizer};
