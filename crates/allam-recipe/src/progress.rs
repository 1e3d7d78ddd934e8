//! How the recipe reports its stages: a [`StageProgress`] gives each training stage an observer of
//! its loop and takes the recipe's lines of news. The CLI draws them (`allam_cli::display::Bars`);
//! tests show nothing ([`Silent`]).
use allam_train::RunObserver;

/// How the recipe shows its stages.
pub trait StageProgress {
    /// An observer for the training loop of stage `name` (finished at its last step).
    fn stage(&self, name: &str) -> Box<dyn RunObserver>;
    /// A line of news.
    fn message(&self, _message: &str) {}
}

/// Nothing on screen (tests).
pub struct Silent;

impl StageProgress for Silent {
    fn stage(&self, _name: &str) -> Box<dyn RunObserver> {
        Box::new(allam_train::Quiet)
    }
}
