//! # allam-eval
//!
//! Evaluation of ALLaM models, built on one primitive as in lm-evaluation-harness: the
//! log-likelihood of a continuation given a context, and whether it is the greedy one.
//!
//! ```no_run
//! use allam_eval::{ScoreRequest, score_requests};
//! use allam_model::PretrainedModel;
//! # fn main() -> Result<(), allam_eval::EvalError> {
//! let device = allam_model::device::select("cpu").unwrap();
//! let model = PretrainedModel::load("path/to/model-dir".as_ref(), &device)?;
//! let requests = [ScoreRequest::new("The capital of Saudi Arabia is", " Riyadh")];
//! let scores = score_requests(&model, &requests, 8)?;
//! println!("{} (greedy: {})", scores[0].logprob, scores[0].is_greedy);
//! # Ok(()) }
//! ```
//!
//! The map: [`jsonl`] reads request and task files; [`request`] turns text pairs into token ids; [`loglik`] scores them in batches;
//! [`perplexity`] measures whole texts (perplexity, bits per byte) with a sliding window;
//! [`task`] reads multiple-choice files that [`multiple_choice`] scores (acc, acc_norm, per subject,
//! and one sample per item as `--log_samples` writes them) with prompts from [`formats`] (each
//! task's reference prompt, byte for byte: lm-evaluation-harness' `mmlu` and `arabicmmlu`,
//! ArabicMMLU's Arabic prompt, the Arabic leaderboard's EXAMS and ACVA; their first k dev items as
//! examples; through a model's chat template by [`chat`] as the harness does it) or the house
//! prompt of [`prompt`] (Latin or Arabic labels and cues) with examples
//! from [`shots`] (a seeded draw from a dev split, same subject first):
//! EXAMS, generic JSON Lines (MMLU as `datasets` exports it), MMLU's original CSV, ACVA and
//! Arabic MMLU (JSON Lines or CSV, read by [`csv`]).
pub mod chat;
pub mod csv;
pub mod error;
pub mod formats;
pub mod jsonl;
pub mod loglik;
pub mod multiple_choice;
pub mod perplexity;
pub mod prompt;
pub mod request;
pub mod shots;
pub mod task;

pub use error::{EvalError, Result};
pub use formats::{Prompt, PromptFormat, RenderedItem};
pub use jsonl::{JsonlRecord, parse_jsonl, read_jsonl};
pub use loglik::{
    NoScoreProgress, RequestScore, ScoreProgress, score_encoded, score_encoded_with, score_requests,
    score_requests_with,
};
pub use multiple_choice::{
    Accuracy, Bos, McOptions, McReport, McSample, McSettings, evaluate, evaluate_observed, evaluate_samples,
    evaluate_with_dev,
};
pub use perplexity::{
    SlidingWindow, TextStats, documents_stats, sequence_nll, sequence_nll_with, text_stats, text_stats_with,
};
pub use prompt::{ChoiceMode, LetterScript, Script};
pub use request::{EncodedRequest, ScoreRequest, encode_request, encode_request_with};
pub use shots::{DEFAULT_SEED, ShotPool};
pub use task::{ACVA_CHOICES, McItem, TaskFormat, read_items};
