//! The recipe from an existing base: stages 2–5 of the paper on a Hugging Face checkpoint, each in
//! its own folder of `out/`, the same report as the toy recipe.
//!
//! ```text
//! tokenizers/expanded/    the base tokenizer + Arabic pieces (expansion-report.json)
//! stage2-expanded/        the base grown to the new vocabulary, new rows = mean of their pieces
//! stage3-mixed/           embeddings-only warm-up, then the en/ar/translated mixture
//! stage3-control/         the same continuation on English only (the paper's control)
//! stage4-sft/             SFT of the mixed model
//! stage5-dpo/             DPO of the SFT model
//! scores/                 each model's held-out bits per byte and benchmark accuracy
//! recipe-state.json       the recipe as run, the stages done and what they measured
//! ```
//! Without `resume`, a run replaces the previous recipe run in `out/`. With it, the stages done
//! are kept and skipped (and their scores reused), and an interrupted training stage continues
//! from its newest checkpoint ([`allam_train::Start::Resume`]); the recipe must be the one the
//! run started with. `stop_after` ends a run after a stage, or after a step of a training stage,
//! as an interruption would.
pub mod config;
mod inputs;
mod plan;
mod stages;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use config::BaseRecipe;
pub use plan::plans;

use crate::error::{RecipeError, Result};
use crate::pipeline::{ModelScores, Outcome};
use crate::progress::StageProgress;

/// The stages of a recipe from a base, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Stage 2: tokenizer expansion and model growth.
    Expansion,
    /// Stage 3: continued pretraining on the mixture.
    Mixed,
    /// Stage 3: the English-only control.
    Control,
    /// Stage 4: supervised fine-tuning.
    Sft,
    /// Stage 5: DPO.
    Dpo,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 5] = [Self::Expansion, Self::Mixed, Self::Control, Self::Sft, Self::Dpo];

    /// The name used by `--stop-after` and `recipe-state.json`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Expansion => "expansion",
            Self::Mixed => "mixed",
            Self::Control => "control",
            Self::Sft => "sft",
            Self::Dpo => "dpo",
        }
    }

    /// The stage's folder in `out/`.
    pub fn dir(self) -> &'static str {
        match self {
            Self::Expansion => "stage2-expanded",
            Self::Mixed => "stage3-mixed",
            Self::Control => "stage3-control",
            Self::Sft => "stage4-sft",
            Self::Dpo => "stage5-dpo",
        }
    }
}

/// Where a run stops early: after a stage, or after a step of a training stage
/// (`--stop-after mixed:20`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopAfter {
    /// The stage.
    pub stage: Stage,
    /// The step of a training stage (its checkpoint is written); `None`: the whole stage.
    pub step: Option<u64>,
}

impl FromStr for StopAfter {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let (name, step) = match text.split_once(':') {
            Some((name, step)) => (name, Some(step)),
            None => (text, None),
        };
        let stage = Stage::ALL.into_iter().find(|s| s.name() == name).ok_or_else(|| {
            format!(
                "`{name}` is not a stage (expected expansion, mixed, control, sft or dpo, optionally :STEP)"
            )
        })?;
        let step = match step {
            None => None,
            Some(_) if stage == Stage::Expansion => {
                return Err("expansion has no steps: write --stop-after expansion".into());
            }
            Some(s) => Some(
                s.parse::<u64>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("`{s}` is not a step number ≥ 1"))?,
            ),
        };
        Ok(Self { stage, step })
    }
}

/// How a recipe run treats `out/` and where it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Keep and skip the stages done; continue an interrupted one from its checkpoint.
    pub resume: bool,
    /// End the run after this stage (or step).
    pub stop_after: Option<StopAfter>,
}

/// What `recipe-state.json` holds: the recipe as run, and what each finished stage left.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    /// The recipe (a resumed run must be given the same one).
    recipe: serde_json::Value,
    /// Seconds of each finished stage and evaluation, by name.
    seconds: BTreeMap<String, f64>,
    /// The stages finished.
    done: Vec<Stage>,
    /// Stage 2's measurements.
    expansion: Option<stages::ExpansionFacts>,
    /// Stage 5's measurements: reward accuracy and mean margin on the training pairs, and the
    /// held-out pairs' reward accuracy.
    dpo: Option<(f64, f64, Option<f64>)>,
}

const STATE_FILE: &str = "recipe-state.json";

impl State {
    /// A new state, or (resuming) the one in `out`, which must be of the same recipe.
    fn open(out: &Path, recipe: &BaseRecipe, resume: bool) -> Result<Self> {
        let value = serde_json::to_value(recipe).expect("the recipe serialises");
        let path = out.join(STATE_FILE);
        if !(resume && path.exists()) {
            return Ok(Self {
                recipe: value,
                ..Self::default()
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|e| RecipeError::io(&path, e))?;
        let state: State = serde_json::from_str(&text)
            .map_err(|e| RecipeError::Config(format!("{}: {e}", path.display())))?;
        if state.recipe != value {
            let differ: Vec<String> = match (&state.recipe, &value) {
                (serde_json::Value::Object(a), serde_json::Value::Object(b)) => b
                    .iter()
                    .filter(|(k, v)| a.get(*k) != Some(v))
                    .map(|(k, _)| k.clone())
                    .collect(),
                _ => vec![],
            };
            return Err(RecipeError::Config(format!(
                "--resume: the recipe differs from the one the run in {} started with (in: {}); \
                 restore it, or start again without --resume",
                out.display(),
                differ.join(", ")
            )));
        }
        Ok(state)
    }

    fn save(&self, out: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("the state serialises");
        crate::error::write_file(&out.join(STATE_FILE), text.as_bytes())
    }

    fn is_done(&self, stage: Stage) -> bool {
        self.done.contains(&stage)
    }
}

/// One recipe run: the recipe, its options, its state, where it reports.
struct Run<'a> {
    recipe: &'a BaseRecipe,
    options: Options,
    state: State,
    progress: &'a dyn StageProgress,
    device: burn::tensor::Device,
}

impl Run<'_> {
    fn out(&self, name: &str) -> PathBuf {
        self.recipe.out.join(name)
    }

    /// Records `stage` as finished after `seconds`.
    fn finish(&mut self, stage: Stage, seconds: f64) -> Result<()> {
        self.state.seconds.insert(stage.name().into(), seconds);
        self.state.done.push(stage);
        self.state.save(&self.recipe.out)
    }

    /// Whether the run ends after `stage` now.
    fn stops_after(&self, stage: Stage) -> bool {
        self.options
            .stop_after
            .is_some_and(|s| s.stage == stage && s.step.is_none())
    }

    /// The last step `stage` may make in this run (`--stop-after STAGE:STEP`).
    fn stop_step(&self, stage: Stage) -> Option<u64> {
        self.options
            .stop_after
            .filter(|s| s.stage == stage)
            .and_then(|s| s.step)
    }

    /// Whether `stage` is done (kept from an earlier run, said so) and needs nothing more.
    fn kept(&self, stage: Stage, label: &str) -> bool {
        let kept = self.state.is_done(stage);
        if kept {
            self.progress
                .message(&format!("{label}: done in an earlier run, kept (--resume)"));
        }
        kept
    }

    /// The scores of the model in `dir` (reused from `scores/KEY.json` when resuming).
    fn score(&mut self, key: &str, label: &str, dir: &Path) -> Result<ModelScores> {
        let path = self.out("scores").join(format!("{key}.json"));
        if self.options.resume
            && let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(scores) = serde_json::from_str::<ModelScores>(&text)
        {
            self.progress
                .message(&format!("{label}: scores of an earlier run kept (--resume)"));
            return Ok(scores);
        }
        self.progress.message(&format!("evaluating {label}"));
        let clock = std::time::Instant::now();
        let scores = stages::score_model(self.recipe, label, dir, &self.device)?;
        self.progress.message(&format!("{label}: {}", scores.summary()));
        let text = serde_json::to_string_pretty(&scores).expect("scores serialise");
        crate::error::write_file(&path, text.as_bytes())?;
        self.state
            .seconds
            .insert(format!("evaluation: {label}"), clock.elapsed().as_secs_f64());
        self.state.save(&self.recipe.out)?;
        Ok(scores)
    }
}

/// Runs the recipe from its base: every stage, or up to `options.stop_after` (then `None`).
pub fn run(recipe: &BaseRecipe, options: Options, progress: &dyn StageProgress) -> Result<Option<Outcome>> {
    let out = &recipe.out;
    let _lock = crate::out_dir::claim_out(out, options.resume, progress)?;
    let device = allam_model::device::select(&recipe.device)
        .map_err(|e| RecipeError::Config(format!("device = \"{}\": {e}", recipe.device)))?;
    let mut run = Run {
        recipe,
        options,
        state: State::open(out, recipe, options.resume)?,
        progress,
        device,
    };
    run.state.save(out)?;
    let base_label = format!("1 base ({})", base_name(recipe));
    let mut scores = vec![run.score("base", &base_label, &recipe.base.dir)?];

    // Stage 2.
    if !run.kept(Stage::Expansion, "stage 2 expansion") {
        progress.message(
            "stage 2: Arabic vocabulary merged into the base tokenizer, model grown (mean initialisation)",
        );
        let clock = std::time::Instant::now();
        let facts = stages::expand(
            recipe,
            &run.out("tokenizers/expanded"),
            &run.out(Stage::Expansion.dir()),
        )?;
        progress.message(&format!(
            "stage 2: {} → {} ids; Arabic tokens per word {:.2} → {:.2}",
            facts.base_vocab, facts.expanded_vocab, facts.arabic_fertility.0, facts.arabic_fertility.1
        ));
        run.state.expansion = Some(facts);
        run.finish(Stage::Expansion, clock.elapsed().as_secs_f64())?;
    }
    let expanded = run.out(Stage::Expansion.dir());
    scores.push(run.score("expanded", "2 expanded (before CPT)", &expanded)?);
    if run.stops_after(Stage::Expansion) {
        return Ok(None);
    }

    // Stage 3: the mixture, and the English-only control.
    for (stage, label, key) in [
        (Stage::Mixed, "3 mixed CPT", "mixed"),
        (Stage::Control, "3 control CPT (English only)", "control"),
    ] {
        if !run.kept(stage, label) && !stages::continued(&mut run, stage, label)? {
            return Ok(None);
        }
        scores.push(run.score(key, label, &run.out(stage.dir()).join("final"))?);
        if run.stops_after(stage) {
            return Ok(None);
        }
    }

    // Stages 4 and 5.
    for (stage, label, key) in [(Stage::Sft, "4 SFT", "sft"), (Stage::Dpo, "5 DPO", "dpo")] {
        if !run.kept(stage, label) && !stages::align(&mut run, stage, label)? {
            return Ok(None);
        }
        scores.push(run.score(key, label, &run.out(stage.dir()).join("final"))?);
        if run.stops_after(stage) {
            return Ok(None);
        }
    }
    Ok(Some(outcome(&run, scores)))
}

/// The outcome of a finished run, from its state and scores.
fn outcome(run: &Run, scores: Vec<ModelScores>) -> Outcome {
    let facts = run.state.expansion.clone().unwrap_or_default();
    let (dpo_reward_accuracy, dpo_mean_margin, dpo_heldout) = run.state.dpo.unwrap_or_default();
    let mut seconds: Vec<(String, f64)> = Vec::new();
    for stage in Stage::ALL {
        if let Some(s) = run.state.seconds.get(stage.name()) {
            seconds.push((format!("{} {}", stage_number(stage), stage.name()), *s));
        }
    }
    let evaluation: f64 = run
        .state
        .seconds
        .iter()
        .filter(|(k, _)| k.starts_with("evaluation"))
        .map(|(_, s)| s)
        .sum();
    seconds.push(("evaluation (every model)".into(), evaluation));
    let throughput = [Stage::Mixed, Stage::Control, Stage::Sft, Stage::Dpo]
        .into_iter()
        .filter_map(|stage| {
            let rate = crate::out_dir::tokens_per_second(&run.out(stage.dir()))?;
            Some((format!("{} {}", stage_number(stage), stage.name()), rate))
        })
        .collect();
    Outcome {
        base_vocab: facts.base_vocab,
        expanded_vocab: facts.expanded_vocab,
        arabic_fertility: facts.arabic_fertility,
        english_fertility: facts.english_fertility,
        scores,
        dpo_reward_accuracy,
        dpo_mean_margin,
        dpo_heldout_reward_accuracy: dpo_heldout,
        tokenizer_note: facts.pre_tokenizer,
        throughput,
        seconds,
    }
}

fn stage_number(stage: Stage) -> u32 {
    match stage {
        Stage::Expansion => 2,
        Stage::Mixed | Stage::Control => 3,
        Stage::Sft => 4,
        Stage::Dpo => 5,
    }
}

/// The base's folder name (its label in the report).
pub fn base_name(recipe: &BaseRecipe) -> String {
    recipe.base.dir.file_name().map_or_else(
        || recipe.base.dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_points_parse_or_say_what_is_expected() {
        assert_eq!(
            "control".parse::<StopAfter>(),
            Ok(StopAfter {
                stage: Stage::Control,
                step: None
            })
        );
        assert_eq!(
            "mixed:20".parse::<StopAfter>(),
            Ok(StopAfter {
                stage: Stage::Mixed,
                step: Some(20)
            })
        );
        for (bad, want) in [
            ("pretrain", "not a stage"),
            ("mixed:0", "step number"),
            ("sft:x", "step number"),
            ("expansion:3", "no steps"),
        ] {
            let e = bad.parse::<StopAfter>().unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }
}
