//! `report.md` (one table per claim of the paper), `report.json` and `bpb.svg`, from an
//! [`Outcome`] measured by the run.
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::config::RecipeConfig;
use crate::error::{RecipeError, Result};
use crate::from_base::BaseRecipe;
use crate::pipeline::{Outcome, run};
use crate::progress::StageProgress;

/// What a report says besides the measurements: its title, where the run came from, the margin
/// it judges English by, the stage folders with a loss curve.
#[derive(Clone, Debug)]
pub struct ReportContext {
    /// The run folder (paths in the report are relative to it).
    pub out: PathBuf,
    /// The report's title.
    pub title: String,
    /// The first paragraph: what was run on what.
    pub intro: String,
    /// The base tokenizer's row label in the fertility table.
    pub base_tokenizer: String,
    /// English bpb of the mixed run may exceed the control's by at most this.
    pub english_bpb_margin: f64,
    /// Stage folders with a `loss.svg`.
    pub loss_plots: Vec<String>,
}

impl RecipeConfig {
    /// The toy recipe's report context.
    pub fn report_context(&self) -> ReportContext {
        ReportContext {
            out: self.out.clone(),
            title: "ALLaM recipe at toy scale — report".into(),
            intro: format!(
                "Every number below was measured by this run (`allam recipe` / `cargo run --release --example reproduce`) \
                 on the sample data in `{}` (paths in this report are relative to its folder). Stage directories hold \
                 each model as a Hugging Face checkpoint, its `metrics.jsonl` and `loss.svg`.",
                relative_path(&self.sample, &self.out).display()
            ),
            base_tokenizer: "base (English BPE)".into(),
            english_bpb_margin: self.report.english_bpb_margin,
            loss_plots: [
                "stage1-base",
                "stage3-mixed",
                "stage3-control",
                "stage4-sft",
                "stage5-dpo",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

impl BaseRecipe {
    /// The report context of a recipe from a base.
    pub fn report_context(&self) -> ReportContext {
        let name = crate::from_base::base_name(self);
        ReportContext {
            out: self.out.clone(),
            title: format!("ALLaM recipe from {name} — report"),
            intro: format!(
                "Every number below was measured by this run (`allam recipe`) from the base `{}` (paths in this \
                 report are relative to the run folder), on {} / {} precision. Stage directories hold each model as a \
                 Hugging Face checkpoint, its `metrics.jsonl` and `loss.svg`; `scores/` holds each model's \
                 measurements and `recipe-state.json` the recipe as run.",
                relative_path(&self.base.dir, &self.out).display(),
                self.device,
                serde_json::to_value(self.precision)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
            ),
            base_tokenizer: format!("base ({name})"),
            english_bpb_margin: self.report.english_bpb_margin,
            loss_plots: ["stage3-mixed", "stage3-control", "stage4-sft", "stage5-dpo"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// The paper's claims as checked on this run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Verdicts {
    /// Arabic tokens per word fell with the expanded tokenizer.
    pub arabic_fertility_down: bool,
    /// English tokenizes exactly as before (same tokens per word).
    pub english_unchanged: bool,
    /// Arabic bits per byte after mixed continued pretraining are below those before it.
    pub arabic_bpb_down: bool,
    /// English bpb of the mixed run minus the control's, within the stated margin.
    pub english_kept: bool,
    /// DPO reward accuracy above chance (0.5).
    pub dpo_above_chance: bool,
}

impl Verdicts {
    /// Judges `outcome` with the English-kept `margin` (bits per byte).
    pub fn of(outcome: &Outcome, margin: f64) -> Self {
        let score = |prefix: &str| outcome.scores.iter().find(|s| s.stage.starts_with(prefix));
        let (expanded, mixed, control) = (score("2 "), score("3 mixed"), score("3 control"));
        let (ab, ae) = outcome.arabic_fertility;
        let (eb, ee) = outcome.english_fertility;
        Self {
            arabic_fertility_down: ae < ab,
            english_unchanged: (eb - ee).abs() < 1e-12,
            arabic_bpb_down: matches!((expanded, mixed), (Some(e), Some(m)) if m.ar_bpb < e.ar_bpb),
            english_kept: matches!((mixed, control), (Some(m), Some(c))
                if m.en_bpb - c.en_bpb <= margin),
            dpo_above_chance: outcome.dpo_reward_accuracy > 0.5,
        }
    }
}

fn mark(ok: bool) -> &'static str {
    if ok { "✅ holds" } else { "❌ does not hold" }
}

/// Writes `report.md`, `report.json` and `bpb.svg` into the run directory; returns the
/// report's path.
pub fn write_report(outcome: &Outcome, config: &ReportContext) -> Result<PathBuf> {
    let margin = config.english_bpb_margin;
    let v = Verdicts::of(outcome, margin);
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "# {}\n", config.title);
    let _ = writeln!(w, "{}\n", config.intro);
    let (ab, ae) = outcome.arabic_fertility;
    let (eb, ee) = outcome.english_fertility;
    let _ = writeln!(
        w,
        "## 1. Tokenizer expansion lowers Arabic fertility — {}\n",
        mark(v.arabic_fertility_down)
    );
    let _ = writeln!(
        w,
        "| tokenizer | vocabulary | Arabic tokens/word | English tokens/word |"
    );
    let _ = writeln!(w, "|---|---:|---:|---:|");
    let _ = writeln!(
        w,
        "| {} | {} | {ab:.3} | {eb:.3} |",
        config.base_tokenizer, outcome.base_vocab
    );
    let _ = writeln!(w, "| expanded | {} | {ae:.3} | {ee:.3} |", outcome.expanded_vocab);
    let _ = writeln!(
        w,
        "\nArabic needs {:.1}× fewer tokens; English text keeps exactly its tokens ({}).\n",
        ab / ae.max(1e-9),
        mark(v.english_unchanged)
    );
    if let Some(note) = &outcome.tokenizer_note {
        let _ = writeln!(w, "Pre-tokenizer: {note}.\n");
    }
    let _ = writeln!(
        w,
        "## 2. Every stage: held-out bits per byte and multiple choice\n"
    );
    let tasks: Vec<&String> = outcome
        .scores
        .first()
        .map(|s| s.accuracy.keys().collect())
        .unwrap_or_default();
    let _ = writeln!(
        w,
        "| stage | English bpb | Arabic bpb |{}",
        tasks.iter().map(|t| format!(" {t} acc |")).collect::<String>()
    );
    let _ = writeln!(w, "|---|---:|---:|{}", "---:|".repeat(tasks.len()));
    for s in &outcome.scores {
        let accuracies: String = tasks
            .iter()
            .map(|t| s.accuracy.get(*t).map_or(" — |".into(), |a| format!(" {a:.3} |")))
            .collect();
        let _ = writeln!(
            w,
            "| {} | {:.4} | {:.4} |{accuracies}",
            s.stage, s.en_bpb, s.ar_bpb
        );
    }
    let _ = writeln!(
        w,
        "\nBits per byte (total NLL / (ln 2 · UTF-8 bytes)) compare models with different tokenizers. \
         Multiple choice: accuracy of the choice with the highest log-likelihood (4 options: chance 0.25).\n"
    );
    let get = |p: &str| outcome.scores.iter().find(|s| s.stage.starts_with(p));
    if let (Some(e), Some(m), Some(c)) = (get("2 "), get("3 mixed"), get("3 control")) {
        let _ = writeln!(
            w,
            "## 3. Continued pretraining gains Arabic — {}\n",
            mark(v.arabic_bpb_down)
        );
        let _ = writeln!(
            w,
            "Arabic bpb: {:.4} before → {:.4} after the mixture (English-only control: {:.4}).\n",
            e.ar_bpb, m.ar_bpb, c.ar_bpb
        );
        let _ = writeln!(w, "## 4. English is not forgotten — {}\n", mark(v.english_kept));
        let _ = writeln!(
            w,
            "English bpb: mixed {:.4} vs English-only control {:.4} (difference {:+.4}; stated margin {:.2}).\n",
            m.en_bpb,
            c.en_bpb,
            m.en_bpb - c.en_bpb,
            margin
        );
    }
    let _ = writeln!(
        w,
        "## 5. Alignment: DPO prefers the chosen answers — {}\n",
        mark(v.dpo_above_chance)
    );
    let _ = writeln!(
        w,
        "Reward accuracy on the preference pairs after DPO: {:.3} (chance 0.5); mean reward margin {:+.4}.\n",
        outcome.dpo_reward_accuracy, outcome.dpo_mean_margin
    );
    if let Some(heldout) = outcome.dpo_heldout_reward_accuracy {
        let _ = writeln!(w, "Reward accuracy on held-out pairs: {heldout:.3}.\n");
    }
    if !outcome.throughput.is_empty() {
        let _ = writeln!(w, "## Training speed\n\n| stage | tokens/s |\n|---|---:|");
        for (stage, rate) in &outcome.throughput {
            let _ = writeln!(w, "| {stage} | {rate:.1} |");
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(w, "## Time\n\n| stage | seconds |\n|---|---:|");
    for (stage, s) in &outcome.seconds {
        let _ = writeln!(w, "| {stage} | {s:.1} |");
    }
    let total: f64 = outcome.seconds.iter().map(|(_, s)| s).sum();
    let _ = writeln!(w, "| **total** | {total:.1} |\n");
    let _ = writeln!(
        w,
        "Plots: `bpb.svg` (bits per byte per stage) and each stage's `loss.svg`:\n{}",
        config
            .loss_plots
            .iter()
            .map(|d| format!("- [{d}/loss.svg]({d}/loss.svg)"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    let out = &config.out;
    let svg = crate::chart::bpb_svg(&outcome.scores, margin)
        .map_err(|e| RecipeError::Config(format!("plotting {}: {e}", out.join("bpb.svg").display())))?;
    crate::error::write_file(&out.join("bpb.svg"), svg.as_bytes())?;
    // Model directories relative to the run folder, so the report holds wherever the folder goes.
    let mut outcome = outcome.clone();
    for s in &mut outcome.scores {
        s.dir = relative_path(&s.dir, out);
    }
    let json = serde_json::json!({ "outcome": outcome, "verdicts": v });
    crate::error::write_file(
        &out.join("report.json"),
        serde_json::to_string_pretty(&json)
            .expect("serialises")
            .as_bytes(),
    )?;
    let path = out.join("report.md");
    crate::error::write_file(&path, md.as_bytes())?;
    Ok(path)
}

/// `path` relative to the folder `base` (`../../data/sample`), both resolved on disk when they
/// exist; `path` unchanged when the two share no root.
pub fn relative_path(path: &Path, base: &Path) -> PathBuf {
    let resolve = |p: &Path| {
        p.canonicalize().unwrap_or_else(|_| {
            let absolute = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
            let mut out = PathBuf::new();
            for c in absolute.components() {
                match c {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::CurDir => {}
                    other => out.push(other),
                }
            }
            out
        })
    };
    let (path_abs, base_abs) = (resolve(path), resolve(base));
    let (p, b): (Vec<_>, Vec<_>) = (path_abs.components().collect(), base_abs.components().collect());
    if p.first() != b.first() {
        return path.to_path_buf();
    }
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out: PathBuf = b[common..].iter().map(|_| Component::ParentDir).collect();
    out.extend(&p[common..]);
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

/// Runs the recipe and writes its report: the one call behind `allam recipe` and the
/// `reproduce` example.
pub fn reproduce(
    config: &RecipeConfig,
    progress: &dyn StageProgress,
) -> Result<(Outcome, Verdicts, PathBuf)> {
    let outcome = run(config, progress)?;
    let report = write_report(&outcome, &config.report_context())?;
    Ok((
        outcome.clone(),
        Verdicts::of(&outcome, config.report.english_bpb_margin),
        report,
    ))
}

/// Runs a recipe from a base and writes its report: `None` when `options.stop_after` ended it
/// before the end (continue with `resume`).
pub fn reproduce_from_base(
    recipe: &BaseRecipe,
    options: crate::from_base::Options,
    progress: &dyn StageProgress,
) -> Result<Option<(Outcome, Verdicts, PathBuf)>> {
    let Some(outcome) = crate::from_base::run(recipe, options, progress)? else {
        return Ok(None);
    };
    let context = recipe.report_context();
    let report = write_report(&outcome, &context)?;
    let verdicts = Verdicts::of(&outcome, context.english_bpb_margin);
    Ok(Some((outcome, verdicts, report)))
}

/// The report of a finished run directory, if there is one.
pub fn existing_report(out: &Path) -> Option<String> {
    std::fs::read_to_string(out.join("report.md")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_written_relative_to_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let (run, sample) = (dir.path().join("runs/reproduce"), dir.path().join("data/sample"));
        std::fs::create_dir_all(&run).unwrap();
        std::fs::create_dir_all(&sample).unwrap();
        let via_dots = dir.path().join("examples/recipes/../../data/sample");
        std::fs::create_dir_all(dir.path().join("examples/recipes")).unwrap();
        assert_eq!(relative_path(&via_dots, &run), Path::new("../../data/sample"));
        assert_eq!(
            relative_path(&run.join("stage4-sft/final"), &run),
            Path::new("stage4-sft/final")
        );
        assert_eq!(relative_path(&run, &run), Path::new("."));
    }
}
