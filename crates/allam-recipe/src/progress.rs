//! Progress bars (indicatif) for training loops and for the stages of the recipe.
use indicatif::{ProgressBar, ProgressStyle};

use allam_train::StepRecord;
use allam_train::run::RunObserver;

/// A progress bar over steps, showing loss, learning rate, gradient norm and throughput.
pub struct StepBar {
    bar: ProgressBar,
    keep: bool,
}

impl StepBar {
    /// A bar labelled `prefix`, cleared when finished.
    pub fn new(prefix: &str) -> Self {
        Self::with_keep(prefix, false)
    }

    /// A bar labelled `prefix` that stays on screen (with its last message) when finished.
    pub fn kept(prefix: &str) -> Self {
        Self::with_keep(prefix, true)
    }

    fn with_keep(prefix: &str, keep: bool) -> Self {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>14} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
                .expect("valid progress template"),
        );
        bar.set_prefix(prefix.to_string());
        Self { bar, keep }
    }

    /// Ends the bar.
    pub fn finish(&self) {
        if self.keep {
            self.bar.abandon();
        } else {
            self.bar.finish_and_clear();
        }
    }
}

impl RunObserver for StepBar {
    fn start(&self, first_step: u64, last_step: u64) {
        self.bar.set_length(last_step);
        self.bar.set_position(first_step);
    }

    fn step(&self, r: &StepRecord) {
        self.bar.set_position(r.step);
        self.bar.set_message(format!(
            "loss {:.4} lr {:.2e} |g| {:.3} {:.0} tok/s{}",
            r.loss,
            r.lr,
            r.grad_norm,
            r.tokens_per_s,
            if r.trained == "new_rows" {
                " (new rows only)"
            } else {
                ""
            }
        ));
    }

    fn message(&self, message: &str) {
        self.bar.println(message);
    }
}

/// How the recipe shows its stages.
pub trait StageProgress {
    /// An observer for the training loop of stage `name` (finished by [`StageProgress::done`]).
    fn stage(&self, name: &str) -> Box<dyn RunObserver>;
    /// A line of news.
    fn message(&self, _message: &str) {}
}

/// Bars on the terminal, one per stage, kept on screen.
pub struct Bars;

impl StageProgress for Bars {
    fn stage(&self, name: &str) -> Box<dyn RunObserver> {
        Box::new(KeptBar(StepBar::kept(name)))
    }

    fn message(&self, message: &str) {
        eprintln!("{message}");
    }
}

struct KeptBar(StepBar);

impl RunObserver for KeptBar {
    fn start(&self, first: u64, last: u64) {
        self.0.start(first, last);
    }
    fn step(&self, r: &StepRecord) {
        self.0.step(r);
        if r.step == self.0.bar.length().unwrap_or(0) {
            self.0.finish();
        }
    }
    fn message(&self, m: &str) {
        self.0.message(m);
    }
}

/// Nothing on screen (tests).
pub struct Silent;

impl StageProgress for Silent {
    fn stage(&self, _name: &str) -> Box<dyn RunObserver> {
        Box::new(allam_train::run::Quiet)
    }
}
