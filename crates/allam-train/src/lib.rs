//! # allam-train: the training loop of the ALLaM recipe
//!
//! Pretraining from scratch and continued pretraining on the data mixture, with the paper's
//! optimizer (AdamW β 0.9/0.95, ε 1e-8, weight decay 0.1 but not on norms or biases), warm-up + cosine or
//! constant learning rate, global-norm clipping at 1.0, gradient accumulation, data-parallel
//! replicas, the embeddings-only warm-up of new vocabulary rows, checkpoints that resume exactly,
//! checkpoint averaging and loss curves. SFT and DPO reuse the same loop with other
//! [`Objective`]s.
//!
//! The map: [`params`] (parameters and gradients by name) → [`optim`] ([`AdamW`], clipping,
//! [`TrainableScope`]) with [`schedule`]; [`loss`] and [`objective`] say what is minimised;
//! [`trainer`] makes one step; [`setup`] assembles a stage's trainer and [`session`] from its
//! [`config`], [`session`] is the outer loop (logging, evaluation, [`checkpoint`]s, [`plot`]) in a
//! directory kept by [`run_dir`]'s rules, and [`pretrain`] is pretraining on top of them (SFT and
//! DPO are in allam-align); [`average`] averages checkpoints.
#![warn(missing_docs)]

pub mod average;
pub mod checkpoint;
pub mod config;
pub mod error;
mod fused_adamw;
pub mod head;
pub mod heap;
pub mod loss;
pub mod objective;
pub mod optim;
pub mod params;
pub mod plan;
pub mod plot;
pub mod pretrain;
pub mod recompute;
pub mod run_dir;
pub mod schedule;
pub mod session;
pub mod setup;
pub mod trainer;

pub use average::average_checkpoints;
pub use config::RunConfig;
pub use error::{Result, TrainError};
pub use objective::{LanguageModeling, LossOutput, MetricSum, Objective};
pub use optim::{AdamW, AdamWConfig, PreparedGrads, StepStats, TrainableScope};
pub use pretrain::{RunOptions, train};
pub use run_dir::Start;
pub use schedule::{LrSchedule, ScheduleKind};
pub use session::{Quiet, RunObserver, RunSummary};
pub use trainer::{ActivationCheckpointing, EmbeddingWarmup, StepOptions, StepRecord, Trainer};
