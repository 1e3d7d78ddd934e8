//! # allam-align
//!
//! The data and math of the alignment stage of the ALLaM recipe (supervised fine-tuning, then
//! direct preference optimisation). The training loop lives elsewhere; this crate turns files into
//! token rows with loss masks and turns log-probabilities into DPO losses.
//!
//! The map, in the order data flows:
//! - [`conversation`]: [`Conversation`]s of [`Message`]s, validated, loaded from JSONL in the
//!   `messages`, Alpaca and ShareGPT shapes;
//! - [`template`]: a [`ChatTemplate`] (Llama-2, ChatML or any Jinja template) renders a conversation
//!   into [`Segment`]s marked trainable or not, and [`template::tokenize`] turns them into ids and a
//!   trainable mask;
//! - [`sft`]: [`SftExample`]s (ids and shifted labels) packed into fixed-length [`SftRow`]s with a
//!   [`TruncationReport`];
//! - [`dpo`]: [`PreferencePair`]s, [`DpoBatch`]es, [`dpo::response_logprobs`] and [`dpo::dpo_loss`];
//! - [`pair_scorer`]: a [`PairScorer`] gives a pair's response log-probs the same way to DPO
//!   training, its reference and held-out pair evaluation ([`heldout`]);
//! - [`objectives`]: the SFT and DPO objectives `allam-train`'s loop runs;
//! - [`inspect`]: a tokenized example printed with its trained tokens marked;
//! - [`stage`]: the SFT and DPO runs ([`AlignConfig`], [`run_sft`], [`run_dpo`]) on `allam-train`'s loop.
pub mod config;
pub mod conversation;
pub mod dpo;
pub mod error;
pub mod heldout;
pub mod inspect;
pub mod objectives;
pub mod pair_scorer;
pub mod sft;
pub mod stage;
pub mod template;
pub mod truncation;

pub use config::AlignConfig;
pub use conversation::{Conversation, Message, Role, load_conversations};
pub use dpo::{
    DpoBatch, DpoConfig, DpoExample, DpoLossKind, DpoOutput, PreferencePair, ResponseBatch, dpo_loss,
    load_preferences, response_logprobs,
};
pub use error::{AlignError, Result};
pub use heldout::{HeldOutPairs, HeldOutRewards};
pub use inspect::{MarkStyle, inspect_tokens};
pub use objectives::{DpoObjective, Reference, SftObjective};
pub use pair_scorer::PairScorer;
pub use sft::{SftExample, SftRow, TruncationReport, pack_examples};
pub use stage::{run_dpo, run_sft};
pub use template::{ChatTemplate, Segment, SpecialTokens};
pub use truncation::{
    PairTruncation, SequenceTruncation, Truncation, TruncationCount, TruncationMode, truncate_pairs,
};
