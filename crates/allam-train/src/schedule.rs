//! Learning-rate schedules: linear warm-up, then cosine decay to a floor or a constant rate.
//!
//! Steps are counted from 0. During warm-up step `s` uses `peak · (s + 1) / warmup` (Megatron's
//! convention: the first step already moves). After warm-up:
//!
//! - cosine: `min + (peak − min) · ½ (1 + cos(π · p))`, `p = (s − warmup) / (total − warmup)`,
//!   held at `min` once `p ≥ 1`;
//! - constant: `peak`.
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// The shape of the schedule after warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// Cosine decay from the peak to `min_lr` over `total_steps`.
    Cosine,
    /// The peak rate until the end.
    Constant,
}

/// A learning-rate schedule (the paper: 3e-4 → 3e-5 cosine from scratch; 3e-5 constant after 20
/// warm-up steps for continued pretraining).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrSchedule {
    /// Cosine or constant.
    #[serde(default = "default_kind")]
    pub kind: ScheduleKind,
    /// Peak learning rate.
    pub lr: f64,
    /// Floor of the cosine decay.
    #[serde(default)]
    pub min_lr: f64,
    /// Linear warm-up steps.
    #[serde(default)]
    pub warmup_steps: u64,
    /// Steps over which the cosine decays, counted from the schedule's first step — after an
    /// embeddings-only phase, from the step where the body unfreezes (defaults to the steps the
    /// schedule runs: `max_steps`, less the embeddings-only steps).
    #[serde(default)]
    pub total_steps: Option<u64>,
}

fn default_kind() -> ScheduleKind {
    ScheduleKind::Cosine
}

impl LrSchedule {
    /// Linear warm-up then cosine decay to `min_lr` at `total_steps`.
    pub fn cosine(lr: f64, min_lr: f64, warmup_steps: u64, total_steps: u64) -> Self {
        Self {
            kind: ScheduleKind::Cosine,
            lr,
            min_lr,
            warmup_steps,
            total_steps: Some(total_steps),
        }
    }

    /// Linear warm-up then a constant rate.
    pub fn constant(lr: f64, warmup_steps: u64) -> Self {
        Self {
            kind: ScheduleKind::Constant,
            lr,
            min_lr: lr,
            warmup_steps,
            total_steps: None,
        }
    }

    /// Checks the numbers make a schedule.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(TrainError::Config(format!("[schedule]: {what}")));
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr must be a positive number, got {}", self.lr));
        }
        if self.kind == ScheduleKind::Cosine && !(0.0..=self.lr).contains(&self.min_lr) {
            return bad(format!(
                "min_lr must be within [0, lr = {}], got {}",
                self.lr, self.min_lr
            ));
        }
        Ok(())
    }

    /// The learning rate of step `step` (0-based) in a run of `max_steps` steps.
    pub fn lr_at(&self, step: u64, max_steps: u64) -> f64 {
        if step < self.warmup_steps {
            return self.lr * ((step + 1) as f64 / self.warmup_steps as f64);
        }
        match self.kind {
            ScheduleKind::Constant => self.lr,
            ScheduleKind::Cosine => {
                let total = self.total_steps.unwrap_or(max_steps);
                let span = total.saturating_sub(self.warmup_steps).max(1) as f64;
                let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
                self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_values_at_chosen_steps() {
        let s = LrSchedule::cosine(3e-4, 3e-5, 10, 110);
        let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-15, "{a} vs {b}");
        close(s.lr_at(0, 110), 3e-5); // 3e-4 · 1/10
        close(s.lr_at(4, 110), 1.5e-4); // 3e-4 · 5/10
        close(s.lr_at(9, 110), 3e-4);
        close(s.lr_at(10, 110), 3e-4); // start of the decay
        close(s.lr_at(60, 110), 3e-5 + 2.7e-4 * 0.5); // half way: cos(π/2) = 0
        close(s.lr_at(110, 110), 3e-5);
        close(s.lr_at(500, 110), 3e-5);
        // a quarter of the way: ½(1 + cos(π/4))
        close(
            s.lr_at(35, 110),
            3e-5 + 2.7e-4 * 0.5 * (1.0 + std::f64::consts::FRAC_1_SQRT_2),
        );
    }

    #[test]
    fn constant_after_warmup() {
        let s = LrSchedule::constant(3e-5, 20);
        assert_eq!(s.lr_at(0, 100), 3e-5 / 20.0);
        assert_eq!(s.lr_at(19, 100), 3e-5);
        assert_eq!(s.lr_at(20, 100), 3e-5);
        assert_eq!(s.lr_at(99, 100), 3e-5);
    }

    #[test]
    fn total_defaults_to_max_steps() {
        let mut s = LrSchedule::cosine(1.0, 0.0, 0, 0);
        s.total_steps = None;
        assert!((s.lr_at(50, 100) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn invalid_schedules_are_refused() {
        assert!(LrSchedule::cosine(0.0, 0.0, 0, 1).validate().is_err());
        assert!(LrSchedule::cosine(1e-4, 1e-3, 0, 1).validate().is_err());
        assert!(LrSchedule::constant(1e-4, 3).validate().is_ok());
    }
}
