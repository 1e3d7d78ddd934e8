//! `allam recipe`: the whole recipe end to end from one configuration — the toy recipe, or one
//! that starts from an existing Hugging Face checkpoint (`[base]`).
use std::path::PathBuf;

use allam_recipe::Recipe;
use allam_recipe::from_base::{Options, StopAfter};
use anyhow::{Context, Result, bail};
use clap::Args;

/// Arguments of `allam recipe`.
#[derive(Debug, Args)]
pub struct RecipeArgs {
    /// Recipe configuration (e.g. examples/recipes/toy.toml, examples/recipes/smollm2-135m.toml).
    #[arg(long)]
    config: PathBuf,
    /// Print the verdicts as JSON instead of the report (with --plan: the plans as JSON).
    #[arg(long)]
    json: bool,
    /// Recipes from a base: keep the stages a previous run in `out` finished, and continue an
    /// interrupted stage from its newest checkpoint (without it, `out` is replaced).
    #[arg(long)]
    resume: bool,
    /// Recipes from a base: end after a stage (`expansion`, `mixed`, `control`, `sft`, `dpo`) or
    /// after a step of a training stage (`mixed:20`); continue later with --resume.
    #[arg(long, value_name = "STAGE[:STEP]")]
    stop_after: Option<StopAfter>,
    /// Recipes from a base: print the memory each training stage will hold per device, from the
    /// base's config.json grown to the expanded vocabulary, without running anything.
    #[arg(long, conflicts_with_all = ["resume", "stop_after"])]
    plan: bool,
    /// With --plan: say whether each stage fits a device of this size (`80GB`, `24GiB`).
    #[arg(long, requires = "plan", value_parser = parse_device_memory)]
    device_memory: Option<u64>,
}

fn parse_device_memory(text: &str) -> Result<u64, String> {
    allam_train::plan::parse_size(text)
        .ok_or_else(|| format!("`{text}` is not a size such as 80GB, 24GiB or 512MB"))
}

/// Runs every stage (or plans them), writes the report and prints it.
pub fn recipe(args: RecipeArgs, display: allam_cli::display::Display) -> Result<()> {
    let recipe = Recipe::load(&args.config)?;
    let progress = allam_cli::display::Bars { display };
    let from_base = match recipe {
        Recipe::Toy(config) => {
            if args.resume || args.stop_after.is_some() || args.plan {
                bail!(
                    "--resume, --stop-after and --plan apply to recipes from an existing base ([base]); \
                     the toy recipe {} always runs every stage again",
                    args.config.display()
                );
            }
            let (outcome, verdicts, report) = allam_recipe::reproduce(&config, &progress)
                .with_context(|| format!("running the recipe {}", args.config.display()))?;
            return print_report(&args, &outcome, &verdicts, &report);
        }
        Recipe::FromBase(recipe) => recipe,
    };
    if args.plan {
        let plans = allam_recipe::from_base::plans(&from_base)
            .with_context(|| format!("planning {}", args.config.display()))?;
        return print_plans(&args, &plans);
    }
    let options = Options {
        resume: args.resume,
        stop_after: args.stop_after,
    };
    let finished = allam_recipe::reproduce_from_base(&from_base, options, &progress)
        .with_context(|| format!("running the recipe {}", args.config.display()))?;
    match finished {
        Some((outcome, verdicts, report)) => print_report(&args, &outcome, &verdicts, &report),
        None => {
            let stop = args.stop_after.expect("only --stop-after ends a run early");
            let at = match stop.step {
                Some(step) => format!("{} at step {step}", stop.stage.name()),
                None => stop.stage.name().to_string(),
            };
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({ "stopped_after": at, "out": from_base.out })
                );
            } else {
                println!(
                    "stopped after {at}; continue with: allam recipe --config {} --resume",
                    args.config.display()
                );
            }
            Ok(())
        }
    }
}

fn print_report(
    args: &RecipeArgs,
    outcome: &allam_recipe::Outcome,
    verdicts: &allam_recipe::Verdicts,
    report: &std::path::Path,
) -> Result<()> {
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "outcome": outcome, "verdicts": verdicts, "report": report })
        );
    } else {
        println!("{}", std::fs::read_to_string(report)?);
    }
    Ok(())
}

fn print_plans(args: &RecipeArgs, plans: &[(String, allam_train::plan::MemoryPlan)]) -> Result<()> {
    if args.json {
        let stages: Vec<_> = plans
            .iter()
            .map(|(stage, plan)| {
                let mut value = serde_json::to_value(plan).expect("a plan serialises");
                value["stage"] = stage.as_str().into();
                if let Some(memory) = args.device_memory {
                    value["device_memory"] = memory.into();
                    value["fits"] = (plan.total <= memory).into();
                }
                value
            })
            .collect();
        println!("{}", serde_json::Value::Array(stages));
    } else {
        for (stage, plan) in plans {
            println!("## stage {stage}");
            print!("{}", plan.render(args.device_memory));
            println!();
        }
    }
    Ok(())
}
