//! The stages of the recipe, in the paper's order, each writing into `out/`:
//!
//! ```text
//! tokenizers/base/        English byte-fallback BPE trained on the English sample
//! stage1-base/            English-only pretraining from scratch (final/ = the base model)
//! tokenizers/expanded/    Arabic pieces learned and merged (expansion_report.json)
//! stage2-expanded/        the base model grown to the new vocabulary, new rows = mean of pieces
//! stage3-mixed/           embeddings-only warm-up, then the en/ar/translated mixture
//! stage3-control/         the same continuation on English only (the paper's control)
//! stage4-sft/             SFT of the mixed model on bilingual conversations
//! stage5-dpo/             DPO of the SFT model on preference pairs
//! ```
//! A recipe run is all or nothing: it locks `out/` and replaces the previous recipe run there
//! (every stage starts again); a directory that holds anything else is refused. The recipe from an
//! existing base is [`crate::from_base`].
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use allam_align::{AlignConfig, DpoExample, load_preferences};
use allam_eval::{McOptions, SlidingWindow, TaskFormat, documents_stats, read_items};
use allam_model::expand::{VocabExpansion, expand_pretrained, save_expanded, tokenizer_size};
use allam_model::{PretrainedModel, RowInit, SaveOptions, TextTokenizer};
use allam_tokenizer::{Corpus, ExpansionConfig};
use allam_train::config::{
    ArchitectureSpec, CheckpointSpec, DataSpec, EvalSpec, EvalText, ModelSpec, RunConfig, StepSpec, TrainSpec,
};
use allam_train::{AdamWConfig, LrSchedule, RunOptions, Start};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::config::{Phase, RecipeConfig};
use crate::error::{RecipeError, Result};
use crate::progress::StageProgress;

/// What one model scored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelScores {
    /// Stage label.
    pub stage: String,
    /// Its Hugging Face directory.
    pub dir: PathBuf,
    /// English held-out bits per byte.
    pub en_bpb: f64,
    /// Arabic held-out bits per byte.
    pub ar_bpb: f64,
    /// Multiple-choice accuracy by benchmark (the toy recipe: `MC (en)` and `MC (ar)` on the
    /// sample questions).
    pub accuracy: BTreeMap<String, f64>,
}

impl ModelScores {
    /// One line: bits per byte and accuracies.
    pub fn summary(&self) -> String {
        let mut line = format!("English bpb {:.4}, Arabic bpb {:.4}", self.en_bpb, self.ar_bpb);
        for (task, acc) in &self.accuracy {
            line += &format!(", {task} {acc:.3}");
        }
        line
    }
}

/// Everything the report is made of, measured by the run.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// Base vocabulary size.
    pub base_vocab: usize,
    /// Expanded vocabulary size.
    pub expanded_vocab: usize,
    /// Arabic tokens per word: base, expanded (held-out Arabic).
    pub arabic_fertility: (f64, f64),
    /// English tokens per word: base, expanded (held-out English).
    pub english_fertility: (f64, f64),
    /// Scores after each stage.
    pub scores: Vec<ModelScores>,
    /// DPO reward accuracy on the preference pairs after DPO (policy vs reference margins).
    pub dpo_reward_accuracy: f64,
    /// Mean DPO reward margin after DPO.
    pub dpo_mean_margin: f64,
    /// DPO reward accuracy on held-out preference pairs, when the recipe has them.
    pub dpo_heldout_reward_accuracy: Option<f64>,
    /// What the expansion did to the base's pre-tokenizer (byte-level bases).
    pub tokenizer_note: Option<String>,
    /// Training tokens per second of each training stage.
    pub throughput: Vec<(String, f64)>,
    /// Seconds per stage.
    pub seconds: Vec<(String, f64)>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RecipeError + '_ {
    move |e| RecipeError::io(path, e)
}

fn write(path: &Path, text: &str) -> Result<()> {
    crate::error::write_file(path, text.as_bytes())
}

/// The tokenizer_config.json the recipe's tokenizers carry (Llama's specials).
const TOKENIZER_CONFIG: &str = r#"{"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": true, "add_eos_token": false}"#;

/// Runs every stage and returns the measurements.
pub fn run(config: &RecipeConfig, progress: &dyn StageProgress) -> Result<Outcome> {
    let out = &config.out;
    let _lock = crate::out_dir::claim_out(out, false, progress)?;
    let device = allam_model::device::select("cpu").map_err(RecipeError::Config)?;
    let sample = |name: &str| config.sample.join(name);
    let mut seconds = Vec::new();
    let mut clock = Instant::now();
    let mut lap = |name: &str, seconds: &mut Vec<(String, f64)>| {
        seconds.push((name.to_string(), clock.elapsed().as_secs_f64()));
        clock = Instant::now();
    };

    // Stage 1a: the English base tokenizer.
    progress.message("stage 1: English base tokenizer and pretraining from scratch");
    let english = std::fs::read_to_string(sample("en_docs.txt")).map_err(io(&sample("en_docs.txt")))?;
    let lines: Vec<&str> = english.lines().filter(|l| !l.trim().is_empty()).collect();
    let base_tokenizer = allam_tokenizer::train_llama_style(&lines, config.base_tokenizer.pieces)?;
    let base_dir = out.join("tokenizers/base");
    std::fs::create_dir_all(&base_dir).map_err(io(&base_dir))?;
    let base_json = base_tokenizer
        .to_string(false)
        .map_err(|e| RecipeError::Config(e.to_string()))?;
    write(&base_dir.join("tokenizer.json"), &base_json)?;
    write(&base_dir.join("tokenizer_config.json"), TOKENIZER_CONFIG)?;

    // Stage 1b: English-only pretraining.
    let english_recipe = data_recipe(out, "english-base", &base_dir, config, &config.pretrain, false)?;
    let stage1 = out.join("stage1-base");
    let run1 = RunConfig {
        model: ModelSpec {
            dir: None,
            checkpoint: None,
            keep_optimizer_state: false,
            architecture: Some(ArchitectureSpec {
                vocab_size: None,
                hidden_size: config.model.hidden_size,
                intermediate_size: config.model.intermediate_size,
                num_hidden_layers: config.model.num_hidden_layers,
                num_attention_heads: config.model.num_attention_heads,
                num_key_value_heads: Some(config.model.num_key_value_heads),
                tie_word_embeddings: false,
                max_position_embeddings: 4 * config.pretrain.seq_len.max(config.sft.seq_len),
                rope_theta: 10000.0,
                rms_norm_eps: 1e-5,
            }),
            tokenizer: Some(base_dir.join("tokenizer.json")),
            init_std: config.model.init_std,
            seed: config.seed,
        },
        ..lm_run(config, &config.pretrain, english_recipe, 0)
    };
    train_stage(&run1, &stage1, "1 base", progress)?;
    lap("1 base pretraining", &mut seconds);

    // Stage 2: tokenizer expansion, model growth.
    progress.message("stage 2: Arabic vocabulary, merge, model expansion (mean initialisation)");
    let base_vocab = base_tokenizer.get_vocab_size(true);
    let mut expansion_config = ExpansionConfig::new(base_vocab as u32 + config.expansion.new_pieces);
    expansion_config.eval_corpus = Some(Corpus::new([sample("ar_heldout.txt")], "text"));
    let corpus = Corpus::new([sample("ar_docs.jsonl")], "text");
    let expansion = allam_tokenizer::expand(&base_tokenizer, "base", &corpus, &expansion_config)?;
    let expanded_dir = out.join("tokenizers/expanded");
    std::fs::create_dir_all(&expanded_dir).map_err(io(&expanded_dir))?;
    expansion.tokenizer.save(&expanded_dir)?;
    write(&expanded_dir.join("tokenizer_config.json"), TOKENIZER_CONFIG)?;
    let report_json = serde_json::to_string_pretty(&expansion.report).expect("the report serialises");
    write(&expanded_dir.join("expansion_report.json"), &report_json)?;
    let english_fertility = english_fertility(
        &base_tokenizer,
        &expansion.tokenizer.tokenizer,
        &sample("en_heldout.txt"),
    )?;
    let arabic = &expansion.report.fertility.arabic_tokens_per_word;

    let stage2 = out.join("stage2-expanded");
    let pretrained = PretrainedModel::load(&stage1.join("final"), &device)?;
    let new_tokenizer = TextTokenizer::from_file(&expanded_dir.join("tokenizer.json"))?;
    let plan = VocabExpansion {
        vocab_size: tokenizer_size(new_tokenizer.inner()),
        init: RowInit::from_str(&config.expansion.init)?,
        seed: config.seed,
    };
    let (expanded, summary) = expand_pretrained(pretrained, new_tokenizer, &plan)?;
    save_expanded(&expanded, &stage2, &SaveOptions::default())?;
    write(
        &stage2.join("expansion.json"),
        &serde_json::to_string_pretty(&summary).expect("serialises"),
    )?;
    lap("2 expansion", &mut seconds);

    // Stage 3: continued pretraining on the mixture, and the English-only control.
    progress.message(
        "stage 3: embeddings-only warm-up, then the en/ar/translated mixture (and the English-only control)",
    );
    let continued = &config.continued;
    let mixture = data_recipe(out, "mixture", &expanded_dir, config, &continued.phase, true)?;
    let english_only = data_recipe(
        out,
        "english-expanded",
        &expanded_dir,
        config,
        &continued.phase,
        false,
    )?;
    let stage3 = out.join("stage3-mixed");
    let control = out.join("stage3-control");
    for (recipe, dir, label) in [
        (mixture, &stage3, "3 mixed"),
        (english_only, &control, "3 control"),
    ] {
        let run = RunConfig {
            model: from_dir(&stage2, config.seed),
            ..lm_run(config, &continued.phase, recipe, continued.embedding_warmup_steps)
        };
        train_stage(&run, dir, label, progress)?;
    }
    lap("3 continued pretraining (mixed + control)", &mut seconds);

    // Stage 4 and 5: SFT, then DPO.
    progress.message("stage 4-5: SFT on bilingual conversations, then DPO on preference pairs");
    let stage4 = out.join("stage4-sft");
    let sft = align_config(
        config,
        &config.sft,
        &stage3.join("final"),
        &sample("sft.jsonl"),
        0.1,
    );
    let observer = progress.stage("4 sft");
    allam_align::run_sft(&sft, &stage4, None, Start::Fresh, observer.as_ref())?;
    lap("4 SFT", &mut seconds);
    let stage5 = out.join("stage5-dpo");
    let dpo = align_config(
        config,
        &config.dpo.phase,
        &stage4.join("final"),
        &sample("preferences.jsonl"),
        config.dpo.beta,
    );
    let observer = progress.stage("5 dpo");
    allam_align::run_dpo(&dpo, &stage5, None, Start::Fresh, observer.as_ref())?;
    let (dpo_reward_accuracy, dpo_mean_margin) = reward_accuracy(&dpo, &stage5, &device)?;
    lap("5 DPO", &mut seconds);

    // Evaluation of every stage's model.
    progress.message("evaluation: bits per byte and multiple choice after every stage");
    let stages = [
        ("1 base (English only)", stage1.join("final")),
        ("2 expanded (before CPT)", stage2.clone()),
        ("3 mixed CPT", stage3.join("final")),
        ("3 control CPT (English only)", control.join("final")),
        ("4 SFT", stage4.join("final")),
        ("5 DPO", stage5.join("final")),
    ];
    let mut scores = Vec::new();
    for (stage, dir) in stages {
        scores.push(score_model(stage, &dir, &config.sample, &device)?);
    }
    lap("evaluation", &mut seconds);
    let throughput = [&stage1, &stage3, &control, &stage4, &stage5]
        .into_iter()
        .filter_map(|dir| {
            let name = dir.file_name()?.to_string_lossy().into_owned();
            Some((name, crate::out_dir::tokens_per_second(dir)?))
        })
        .collect();
    Ok(Outcome {
        base_vocab,
        expanded_vocab: expansion.report.vocab_size as usize,
        arabic_fertility: (arabic.base, arabic.expanded),
        english_fertility,
        scores,
        dpo_reward_accuracy,
        dpo_mean_margin,
        dpo_heldout_reward_accuracy: None,
        tokenizer_note: None,
        throughput,
        seconds,
    })
}

/// Writes the data recipe `name` (English only, or the paper's three-language mixture) with the
/// tokenizer of `tokenizer_dir`, and returns its path.
fn data_recipe(
    out: &Path,
    name: &str,
    tokenizer_dir: &Path,
    config: &RecipeConfig,
    phase: &Phase,
    mixed: bool,
) -> Result<PathBuf> {
    let sample = config.sample.canonicalize().map_err(io(&config.sample))?;
    let q = |p: PathBuf| serde_json::to_string(&p.display().to_string()).expect("a string serialises");
    let mut text = format!(
        "# Written by the recipe: the {name} data.\ntokenizer = {}\nseq_len = {}\nseed = {}\n[languages]\n",
        q(tokenizer_dir
            .canonicalize()
            .map_err(io(tokenizer_dir))?
            .join("tokenizer.json")),
        phase.seq_len,
        config.seed
    );
    if mixed {
        for (lang, p) in &config.continued.languages {
            text += &format!("{lang} = {p}\n");
        }
    } else {
        text += "en = 1.0\n";
    }
    text += &format!(
        "[[sources]]\nname = \"en-docs\"\nlanguage = \"en\"\ndomain = \"web\"\npaths = [{}]\n",
        q(sample.join("en_docs.txt"))
    );
    if mixed {
        text += &format!(
            "[[sources]]\nname = \"ar-docs\"\nlanguage = \"ar\"\ndomain = \"encyclopedia\"\nmultiplier = 3.0\n\
             paths = [{}]\ntext_field = \"text\"\n\
             [[sources]]\nname = \"en-ar-translated\"\nlanguage = \"ar_translated\"\ndomain = \"translation\"\n\
             paths = [{}]\n[sources.parallel]\nfields = [\"en\", \"ar\"]\nlabels = [\"English\", \"Arabic\"]\n\
             mode = \"pair\"\ntemplate = \"{{src_label}}: {{src}}\\n{{tgt_label}}: {{tgt}}\"\n",
            q(sample.join("ar_docs.jsonl")),
            q(sample.join("parallel.jsonl"))
        );
    }
    let path = out.join("data").join(format!("{name}.toml"));
    write(&path, &text)?;
    Ok(path)
}

/// The schedule of `phase`, which starts after `frozen_steps` embeddings-only steps: its cosine
/// spans the steps left (the schedule counts from the step where the body unfreezes), so it
/// ends at `min_lr` where the phase ends.
fn schedule(phase: &Phase, frozen_steps: u64) -> LrSchedule {
    match phase.min_lr {
        Some(min) => LrSchedule::cosine(
            phase.lr,
            min,
            phase.warmup_steps,
            phase.steps.unwrap_or(1).saturating_sub(frozen_steps),
        ),
        None => LrSchedule::constant(phase.lr, phase.warmup_steps),
    }
}

fn held_out(config: &RecipeConfig) -> EvalSpec {
    EvalSpec {
        every: None,
        text: ["en", "ar"]
            .map(|lang| EvalText {
                language: lang.into(),
                path: config.sample.join(format!("{lang}_heldout.txt")),
            })
            .to_vec(),
    }
}

/// A language-modelling run of `phase` on `recipe` (the model is filled in by the caller).
fn lm_run(config: &RecipeConfig, phase: &Phase, recipe: PathBuf, warmup: u64) -> RunConfig {
    RunConfig {
        model: from_dir(Path::new(""), config.seed),
        data: DataSpec {
            recipe: Some(recipe),
            dir: None,
        },
        optimizer: AdamWConfig::default(),
        schedule: schedule(phase, warmup),
        train: TrainSpec {
            max_steps: phase.steps.unwrap_or(1),
            replicas: 1,
            embedding_warmup_steps: warmup,
            first_new_row: None,
            embedding_lr: None,
            embedding_lr_warmup_steps: 0,
            step: StepSpec {
                micro_batch_size: phase.micro_batch_size,
                grad_accum: 1,
                device: "cpu".into(),
                head_chunk_tokens: allam_train::config::head_chunk_tokens(),
                activation_checkpointing: Default::default(),
                precision: Default::default(),
                unknown: Default::default(),
            },
        },
        checkpoint: CheckpointSpec {
            every: None,
            keep: 1,
            export_dtype: "f32".into(),
        },
        eval: held_out(config),
    }
}

fn from_dir(dir: &Path, seed: u64) -> ModelSpec {
    ModelSpec {
        dir: Some(dir.to_path_buf()),
        checkpoint: None,
        keep_optimizer_state: false,
        architecture: None,
        tokenizer: None,
        init_std: 0.02,
        seed,
    }
}

fn train_stage(run: &RunConfig, dir: &Path, label: &str, progress: &dyn StageProgress) -> Result<()> {
    run.validate()?;
    let observer = progress.stage(label);
    allam_train::train(run, dir, &RunOptions::default(), observer.as_ref())?;
    Ok(())
}

fn align_config(config: &RecipeConfig, phase: &Phase, model: &Path, data: &Path, beta: f64) -> AlignConfig {
    let toml = format!(
        "[model]\ndir = {}\n[data]\npath = {}\ntemplate = \"llama2\"\nseq_len = {}\nseed = {}\n\
         [train]\nepochs = {}\nmicro_batch_size = {}\n{}[dpo]\nbeta = {beta}\n[checkpoint]\nkeep = 1\n",
        serde_json::to_string(&model.display().to_string()).expect("serialises"),
        serde_json::to_string(&data.display().to_string()).expect("serialises"),
        phase.seq_len,
        config.seed,
        phase.epochs,
        phase.micro_batch_size,
        phase
            .steps
            .map(|s| format!("max_steps = {s}\n"))
            .unwrap_or_default(),
    );
    let mut aligned: AlignConfig = toml::from_str(&format!("{toml}[schedule]\nlr = {}\n", phase.lr))
        .expect("the recipe writes a valid stage configuration");
    aligned.schedule = schedule(phase, 0);
    aligned
}

/// Reward accuracy and mean margin of the final DPO policy on every pair, against the cached
/// reference log-probs of the run.
pub(crate) fn reward_accuracy(config: &AlignConfig, run_dir: &Path, device: &Device) -> Result<(f64, f64)> {
    let policy = PretrainedModel::load(&run_dir.join("final"), device)?;
    let tokenizer = policy.tokenizer()?;
    let template = config.template(tokenizer)?;
    let mut examples = load_preferences(&config.data.path)?
        .iter()
        .map(|p| DpoExample::encode(p, &template, tokenizer))
        .collect::<allam_align::Result<Vec<_>>>()?;
    // Cut as the DPO stage cut them, so they match the cached reference log-probs.
    config.truncation().apply(&mut examples);
    let reference =
        allam_align::stage::ReferenceCache::read(&run_dir.join("reference_logprobs.json"))?.values;
    let pad = tokenizer.token_to_id("</s>").unwrap_or(0);
    let dpo = config.dpo.config();
    let scorer = allam_align::PairScorer::new(dpo, pad, allam_train::head::DEFAULT_CHUNK_TOKENS);
    let now = scorer.logprobs_of_all(&policy.model, &examples, 8)?;
    let margins: Vec<f64> = now
        .iter()
        .zip(&reference)
        .map(|(p, r)| dpo.beta * (f64::from(p.0 - r.0) - f64::from(p.1 - r.1)))
        .collect();
    let n = margins.len().max(1) as f64;
    let accuracy = margins.iter().filter(|&&m| m > 0.0).count() as f64 / n;
    Ok((accuracy, margins.iter().sum::<f64>() / n))
}

/// English tokens per word of the base and expanded tokenizers on the English held-out text at
/// `path` (they must be equal: English keeps its ids), measured as the Arabic figures are.
pub(crate) fn english_fertility(
    base: &allam_tokenizer::Tokenizer,
    expanded: &allam_tokenizer::Tokenizer,
    path: &Path,
) -> Result<(f64, f64)> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let latin = |name: &str, t: &allam_tokenizer::Tokenizer| -> Result<f64> {
        let docs = text.lines().map(|l| Ok(l.to_string()));
        let stats = allam_tokenizer::measure(name, t, docs)?;
        Ok(stats
            .script(allam_tokenizer::Script::Latin)
            .map_or(0.0, |s| s.tokens_per_word))
    };
    Ok((latin("base", base)?, latin("expanded", expanded)?))
}

/// Held-out bits per byte (English, Arabic) and multiple-choice accuracy of one model directory.
fn score_model(stage: &str, dir: &Path, sample: &Path, device: &Device) -> Result<ModelScores> {
    let pretrained = PretrainedModel::load(dir, device)?;
    let window = SlidingWindow::for_model(&pretrained.model);
    let bpb = |lang: &str| -> Result<f64> {
        let path = sample.join(format!("{lang}_heldout.txt"));
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let docs = text.lines().filter(|l| !l.trim().is_empty());
        Ok(documents_stats(&pretrained, docs, window, 8)?.bits_per_byte())
    };
    let items = read_items(&sample.join("mc_questions.jsonl"), TaskFormat::McJsonl)?;
    let (ar, en): (Vec<_>, Vec<_>) = items
        .into_iter()
        .partition(|i| allam_tokenizer::script::has_arabic(&i.question));
    let acc = |items: &[allam_eval::McItem]| -> Result<f64> {
        Ok(allam_eval::evaluate(&pretrained, items, McOptions::default())?
            .overall
            .acc)
    };
    Ok(ModelScores {
        stage: stage.to_string(),
        dir: dir.to_path_buf(),
        en_bpb: bpb("en")?,
        ar_bpb: bpb("ar")?,
        accuracy: [
            ("MC (en)".to_string(), acc(&en)?),
            ("MC (ar)".to_string(), acc(&ar)?),
        ]
        .into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cosine_after_the_embeddings_only_phase_ends_at_min_lr() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/recipes/toy.toml");
        let mut config = RecipeConfig::load(&path).unwrap();
        let continued = &mut config.continued;
        continued.phase.min_lr = Some(1e-4);
        let run = lm_run(
            &config,
            &config.continued.phase,
            PathBuf::new(),
            config.continued.embedding_warmup_steps,
        );
        let warmup = run.train.embedding_warmup_steps;
        assert!(warmup > 0 && run.schedule.total_steps == Some(run.train.max_steps - warmup));
        let options = allam_train::trainer::StepOptions {
            micro_batch_size: 1,
            grad_accum: 1,
            replicas: 1,
            schedule: run.schedule.clone(),
            max_steps: run.train.max_steps,
            embedding_warmup: Some(allam_train::trainer::EmbeddingWarmup {
                steps: warmup,
                first_new_row: 1,
                lr: 1e-3,
                lr_warmup_steps: 0,
            }),
            activation_checkpointing: Default::default(),
        };
        let end = run.train.max_steps;
        // The decay reaches its floor exactly where the run ends, and falls all the way there.
        assert_eq!(options.learning_rate(end), 1e-4);
        let last = options.learning_rate(end - 1);
        assert!(last > 1e-4 && last < 1e-4 + 1e-6, "{last}");
        // The first step after the phase starts the schedule's own warm-up.
        assert_eq!(options.learning_rate(warmup), run.schedule.lr_at(0, 1));
    }
}
