//! # allam
//!
//! The ALLaM recipe — teaching an existing Llama-family model Arabic without forgetting English — as one
//! Rust dependency. Each stage of the recipe is its own crate, re-exported here:
//!
//! | stage | module | crate |
//! |---|---|---|
//! | the model, Hugging Face checkpoints, generation | [`model`] | `allam-model` |
//! | tokenizer expansion (32K → 64K) | [`tokenizer`] | `allam-tokenizer` |
//! | data mixture, cleaning, packing | [`data`] | `allam-data` |
//! | training: AdamW, schedules, clipping, warm-up of new rows, exact resume | [`train`] | `allam-train` |
//! | alignment: chat templates with loss masks, SFT, DPO | [`align`] | `allam-align` |
//! | evaluation: log-likelihoods, perplexity, multiple choice | [`eval`] | `allam-eval` |
//! | the whole recipe end to end, with its report | [`recipe`] | `allam-recipe` |
//! | files users keep, written atomically with the umask's permissions; compressed input; the seeded RNG | [`io`] | `allam-io` |
//! | what an Arabic letter, mark and digit are | [`script`] | `allam-script` |
pub use allam_align as align;
pub use allam_data as data;
pub use allam_eval as eval;
pub use allam_io as io;
pub use allam_model as model;
pub use allam_recipe as recipe;
pub use allam_script as script;
pub use allam_tokenizer as tokenizer;
pub use allam_train as train;
