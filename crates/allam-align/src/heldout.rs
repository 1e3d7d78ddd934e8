//! DPO on held-out preference pairs: the reward accuracy and margin of the policy on pairs it never
//! trained on (TRL's `eval_rewards/accuracies` and `eval_rewards/margins`), so a run shows whether
//! the preferences it learned carry over.
use std::collections::BTreeMap;
use std::path::Path;

use allam_model::Llama;
use allam_train::RunObserver;
use allam_train::params::frozen;

use crate::dpo::DpoExample;
use crate::error::{AlignError, Result};
use crate::pair_scorer::PairScorer;

/// Held-out pairs and the reference model's log-probabilities of their responses.
#[derive(Clone, Debug)]
pub struct HeldOutPairs {
    examples: Vec<DpoExample>,
    reference: Vec<(f32, f32)>,
    scorer: PairScorer,
    micro_batch_size: usize,
}

/// The reward accuracy and mean margin of a policy on held-out pairs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeldOutRewards {
    /// Pairs.
    pub n: usize,
    /// Fraction of pairs whose chosen response gets the higher implicit reward.
    pub accuracy: f64,
    /// Mean of `β·((π_c − ref_c) − (π_r − ref_r))`.
    pub margin: f64,
}

impl HeldOutPairs {
    /// `examples` scored by `scorer` (as in training) against `reference` (the starting model),
    /// `micro_batch_size` pairs per forward pass.
    pub fn new(
        examples: Vec<DpoExample>,
        reference: &Llama,
        scorer: PairScorer,
        micro_batch_size: usize,
    ) -> Result<Self> {
        if examples.is_empty() {
            return Err(AlignError::Input(
                "the held-out preference file has no pairs".into(),
            ));
        }
        let reference = scorer.logprobs_of_all(&frozen(reference), &examples, micro_batch_size)?;
        Ok(Self {
            examples,
            reference,
            scorer,
            micro_batch_size,
        })
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether there are no pairs (never: [`HeldOutPairs::new`] refuses an empty file).
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// The rewards of `policy` on the pairs.
    pub fn rewards(&self, policy: &Llama) -> Result<HeldOutRewards> {
        let policy = self
            .scorer
            .logprobs_of_all(&frozen(policy), &self.examples, self.micro_batch_size)?;
        let beta = self.scorer.config().beta;
        let margins: Vec<f64> = policy
            .iter()
            .zip(&self.reference)
            .map(|(&(pc, pr), &(rc, rr))| {
                beta * ((f64::from(pc) - f64::from(rc)) - (f64::from(pr) - f64::from(rr)))
            })
            .collect();
        let n = margins.len();
        Ok(HeldOutRewards {
            n,
            accuracy: margins.iter().filter(|&&m| m > 0.0).count() as f64 / n as f64,
            margin: margins.iter().sum::<f64>() / n as f64,
        })
    }

    /// The rewards as `metrics.jsonl` keys: `eval/pairs/reward_accuracy`, `eval/pairs/margin`.
    pub fn metrics(&self, policy: &Llama) -> Result<BTreeMap<String, f64>> {
        let r = self.rewards(policy)?;
        Ok(BTreeMap::from([
            ("eval/pairs/reward_accuracy".to_string(), r.accuracy),
            ("eval/pairs/margin".to_string(), r.margin),
        ]))
    }
}

/// Tells `observer` the held-out rewards of the last row of `run_dir/metrics.jsonl` (the end of a
/// run always evaluates).
pub fn report_last(run_dir: &Path, observer: &dyn RunObserver) {
    let last = std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text.lines().last()?).ok());
    let Some(last) = last else { return };
    let value = |key: &str| last.get(key).and_then(serde_json::Value::as_f64);
    if let (Some(accuracy), Some(margin)) = (value("eval/pairs/reward_accuracy"), value("eval/pairs/margin"))
    {
        observer.message(&format!(
            "held-out pairs after step {}: reward accuracy {accuracy:.3}, mean margin {margin:.4}",
            last["step"]
        ));
    }
}
