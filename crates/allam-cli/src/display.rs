//! Progress of long runs, one display for every command: position / total, tokens per second,
//! loss and time left.
//!
//! On a terminal it is an indicatif bar redrawn in place; when stderr is not a terminal (a CI
//! log, a file) it is a plain line every few seconds and at the first and last position; with
//! `--quiet` it is nothing ([`Display`]). A [`Meter`] is that display; [`StepBar`] shows a
//! training loop (pretraining, SFT, DPO), [`ScoreBar`] a scoring run (`score`, `ppl`, `eval`),
//! [`BytesBar`] a data build, and [`Bars`] the stages of the recipe (allam-recipe's
//! [`StageProgress`]).
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

use allam_recipe::StageProgress;
use allam_train::{RunObserver, StepRecord};

/// Environment variable: seconds between plain progress lines when stderr is not a terminal
/// (default 10; `0` prints every update).
pub const PROGRESS_EVERY_ENV: &str = "ALLAM_PROGRESS_EVERY";

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Display {
    /// A bar redrawn in place on stderr (stderr is a terminal).
    Bar,
    /// A plain line on stderr at the first and last position and at most every `every` between.
    Lines {
        /// The least time between two lines.
        every: Duration,
    },
    /// Nothing.
    Quiet,
}

impl Display {
    /// Nothing when `quiet`; else a bar on a terminal, plain lines every
    /// [`PROGRESS_EVERY_ENV`] seconds (default 10) otherwise.
    pub fn detect(quiet: bool) -> Self {
        if quiet {
            Display::Quiet
        } else if std::io::stderr().is_terminal() {
            Display::Bar
        } else {
            let seconds = std::env::var(PROGRESS_EVERY_ENV)
                .ok()
                .and_then(|s| s.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .unwrap_or(10.0);
            Display::Lines {
                every: Duration::from_secs_f64(seconds),
            }
        }
    }

    /// Prints a line of news on stderr (nothing when quiet).
    pub fn message(&self, message: &str) {
        if *self != Display::Quiet {
            eprintln!("{message}");
        }
    }
}

/// What a meter counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Items with a name (`step`, `request`).
    Count(&'static str),
    /// Bytes (shown as KiB, MiB, …).
    Bytes,
}

impl Unit {
    fn show(&self, n: u64) -> String {
        match self {
            Unit::Count(_) => n.to_string(),
            Unit::Bytes => HumanBytes(n).to_string(),
        }
    }
}

struct MeterState {
    started: Instant,
    first: u64,
    total: u64,
    last_line: Option<Instant>,
    last_pos: Option<u64>,
}

/// One progress display over positions `first..=total`.
pub struct Meter {
    display: Display,
    prefix: String,
    unit: Unit,
    bar: Option<ProgressBar>,
    keep: bool,
    state: Mutex<MeterState>,
}

impl Meter {
    /// A meter labelled `prefix` counting `unit`; `keep` leaves a finished bar on screen.
    pub fn new(prefix: &str, unit: Unit, display: Display, keep: bool) -> Self {
        let bar = (display == Display::Bar).then(|| {
            let counts = match unit {
                Unit::Count(name) => format!("{{pos}}/{{len}} {name}s"),
                Unit::Bytes => "{bytes}/{total_bytes}".to_string(),
            };
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(&format!(
                    "{{prefix:>10}} [{{elapsed_precise}}] {{wide_bar}} {counts} · {{msg}} · eta {{eta}}"
                ))
                .expect("valid progress template"),
            );
            bar.set_prefix(prefix.to_string());
            bar
        });
        Self {
            display,
            prefix: prefix.to_string(),
            unit,
            bar,
            keep,
            state: Mutex::new(MeterState {
                started: Instant::now(),
                first: 0,
                total: 0,
                last_line: None,
                last_pos: None,
            }),
        }
    }

    /// The run goes from position `first` (already done) to `total`.
    pub fn start(&self, first: u64, total: u64) {
        let mut state = self.state.lock().expect("meter lock");
        state.started = Instant::now();
        state.first = first;
        state.total = total;
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(first);
            bar.reset_eta();
        }
    }

    /// Seconds since [`Meter::start`].
    pub fn elapsed(&self) -> Duration {
        self.state.lock().expect("meter lock").started.elapsed()
    }

    /// Now at `pos`; `fields` is the rest of the line (`loss 3.21 · 6100 tok/s`).
    pub fn update(&self, pos: u64, fields: &str) {
        match self.display {
            Display::Quiet => {}
            Display::Bar => {
                if let Some(bar) = &self.bar {
                    bar.set_position(pos);
                    bar.set_message(fields.to_string());
                }
            }
            Display::Lines { every } => {
                let mut state = self.state.lock().expect("meter lock");
                let due = match state.last_line {
                    None => true,
                    Some(t) => pos >= state.total || t.elapsed() >= every,
                };
                if due && state.last_pos != Some(pos) {
                    eprintln!("{}", self.line(&state, pos, fields));
                    state.last_line = Some(Instant::now());
                    state.last_pos = Some(pos);
                }
            }
        }
    }

    /// The plain line for position `pos`.
    fn line(&self, state: &MeterState, pos: u64, fields: &str) -> String {
        let elapsed = state.started.elapsed();
        let done = pos.saturating_sub(state.first);
        let eta = if done > 0 && state.total > pos {
            let left = elapsed.as_secs_f64() / done as f64 * (state.total - pos) as f64;
            format!("eta {}", clock(Duration::from_secs_f64(left)))
        } else if pos >= state.total {
            "done".to_string()
        } else {
            "eta ?".to_string()
        };
        let percent = if state.total > 0 {
            format!(" ({:.0}%)", 100.0 * pos as f64 / state.total as f64)
        } else {
            String::new()
        };
        let counts = match self.unit {
            Unit::Count(name) => format!("{name} {pos}/{}", state.total),
            Unit::Bytes => format!("{}/{}", self.unit.show(pos), self.unit.show(state.total)),
        };
        let fields = if fields.is_empty() {
            String::new()
        } else {
            format!(" · {fields}")
        };
        format!(
            "{}: {counts}{percent}{fields} · elapsed {} · {eta}",
            self.prefix,
            clock(elapsed)
        )
    }

    /// A line of news above the bar (or on its own line; nothing when quiet).
    pub fn message(&self, message: &str) {
        match (&self.bar, self.display) {
            (_, Display::Quiet) => {}
            (Some(bar), _) => bar.println(message),
            (None, _) => eprintln!("{message}"),
        }
    }

    /// Ends the display: a bar is cleared (or left on screen when kept).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            if self.keep {
                bar.abandon();
            } else {
                bar.finish_and_clear();
            }
        }
    }
}

/// `h:mm:ss` or `m:ss`.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// The fields of a training step: loss, learning rate, gradient norm, throughput.
pub fn step_fields(r: &StepRecord) -> String {
    let accuracy = r
        .metrics
        .get("accuracy")
        .map(|a| format!(" · reward acc {a:.2}"))
        .unwrap_or_default();
    format!(
        "loss {:.4} · lr {:.2e} · |g| {:.3} · {:.0} tok/s{accuracy}{}",
        r.loss,
        r.lr,
        r.grad_norm,
        r.tokens_per_s,
        if r.trained == "new_rows" {
            " · new rows only"
        } else {
            ""
        }
    )
}

/// Progress of a training loop (a [`RunObserver`]), over optimizer steps.
pub struct StepBar {
    meter: Meter,
}

impl StepBar {
    /// A display labelled `prefix`, cleared when finished.
    pub fn new(prefix: &str, display: Display) -> Self {
        Self {
            meter: Meter::new(prefix, Unit::Count("step"), display, false),
        }
    }

    /// A display labelled `prefix` that stays on screen (with its last message) when finished.
    pub fn kept(prefix: &str, display: Display) -> Self {
        Self {
            meter: Meter::new(prefix, Unit::Count("step"), display, true),
        }
    }

    /// Ends the display.
    pub fn finish(&self) {
        self.meter.finish();
    }
}

impl RunObserver for StepBar {
    fn start(&self, first_step: u64, last_step: u64) {
        self.meter.start(first_step, last_step);
    }

    fn step(&self, r: &StepRecord) {
        self.meter.update(r.step, &step_fields(r));
    }

    fn message(&self, message: &str) {
        self.meter.message(message);
    }
}

/// Progress of a scoring run ([`allam_eval::ScoreProgress`]): requests scored, tokens read per
/// second, and the loss so far (mean negative log-likelihood per predicted token, nats).
pub struct ScoreBar {
    meter: Meter,
    /// Requests, tokens read, tokens predicted, summed NLL.
    totals: Mutex<(u64, u64, u64, f64)>,
}

impl ScoreBar {
    /// A display labelled `prefix` over `total` requests.
    pub fn new(prefix: &str, total: u64, display: Display) -> Self {
        let meter = Meter::new(prefix, Unit::Count("request"), display, false);
        meter.start(0, total);
        Self {
            meter,
            totals: Mutex::new((0, 0, 0, 0.0)),
        }
    }

    /// Ends the display.
    pub fn finish(&self) {
        self.meter.finish();
    }
}

impl allam_eval::ScoreProgress for ScoreBar {
    fn scored(&self, requests: usize, tokens: usize, predicted: usize, nll: f64) {
        let (done, fields) = {
            let mut t = self.totals.lock().expect("score progress lock");
            t.0 += requests as u64;
            t.1 += tokens as u64;
            t.2 += predicted as u64;
            t.3 += nll;
            let per_s = t.1 as f64 / self.meter.elapsed().as_secs_f64().max(1e-9);
            let loss = t.3 / t.2.max(1) as f64;
            (t.0, format!("loss {loss:.4} · {per_s:.0} tok/s"))
        };
        self.meter.update(done, &fields);
    }
}

/// Progress of a data build ([`allam_data::Progress`]) over input bytes.
pub struct BytesBar {
    meter: Meter,
    done: Mutex<(u64, String)>,
}

impl BytesBar {
    /// A display labelled `prefix`.
    pub fn new(prefix: &str, display: Display) -> Self {
        Self {
            meter: Meter::new(prefix, Unit::Bytes, display, false),
            done: Mutex::new((0, String::new())),
        }
    }

    /// Ends the display.
    pub fn finish(&self) {
        self.meter.finish();
    }
}

impl allam_data::Progress for BytesBar {
    fn start(&self, total_bytes: u64) {
        self.meter.start(0, total_bytes);
    }

    fn advance(&self, bytes: u64) {
        let (pos, fields) = {
            let mut done = self.done.lock().expect("data progress lock");
            done.0 += bytes;
            let per_s = done.0 as f64 / self.meter.elapsed().as_secs_f64().max(1e-9);
            (done.0, format!("{}/s · {}", HumanBytes(per_s as u64), done.1))
        };
        self.meter.update(pos, fields.trim_end_matches(" · "));
    }

    fn message(&self, message: &str) {
        self.done.lock().expect("data progress lock").1 = message.to_string();
    }
}

/// One display per stage, kept on screen (bars on a terminal, lines otherwise).
pub struct Bars {
    /// How every stage is shown.
    pub display: Display,
}

impl Bars {
    /// Bars on a terminal, plain lines otherwise ([`Display::detect`]).
    pub fn detect() -> Self {
        Self {
            display: Display::detect(false),
        }
    }
}

impl StageProgress for Bars {
    fn stage(&self, name: &str) -> Box<dyn RunObserver> {
        Box::new(KeptBar(StepBar::kept(name, self.display)))
    }

    fn message(&self, message: &str) {
        self.display.message(message);
    }
}

struct KeptBar(StepBar);

impl RunObserver for KeptBar {
    fn start(&self, first: u64, last: u64) {
        self.0.start(first, last);
    }
    fn step(&self, r: &StepRecord) {
        self.0.step(r);
        if r.step >= self.0.meter.state.lock().expect("meter lock").total {
            self.0.finish();
        }
    }
    fn message(&self, m: &str) {
        self.0.message(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_say_position_fields_and_time_left() {
        let meter = Meter::new("pretrain", Unit::Count("step"), Display::Quiet, false);
        meter.start(2, 10);
        let state = meter.state.lock().unwrap();
        let line = meter.line(&state, 6, "loss 3.2100 · 6100 tok/s");
        assert!(
            line.starts_with("pretrain: step 6/10 (60%) · loss 3.2100 · 6100 tok/s · elapsed 0:00 · eta "),
            "{line}"
        );
        assert!(meter.line(&state, 10, "").ends_with("· done"));
        assert_eq!(clock(Duration::from_secs(3725)), "1:02:05");
        assert_eq!(clock(Duration::from_secs(65)), "1:05");
    }

    #[test]
    fn quiet_is_chosen_by_the_flag() {
        assert_eq!(Display::detect(true), Display::Quiet);
    }
}
