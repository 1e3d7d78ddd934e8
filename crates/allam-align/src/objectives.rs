//! The objectives of the alignment stages, run by `allam-train`'s loop: [`SftObjective`] (loss on
//! assistant tokens of packed conversations) and [`DpoObjective`] (the DPO losses against a cached
//! or in-memory reference), both over an epoch-reshuffled order of their examples.
use std::collections::BTreeMap;

use allam_model::{Llama, TokenBatch};
use allam_train::loss::language_model_loss;
use allam_train::{LossOutput, MetricSum, Objective};
use burn::tensor::{Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::dpo::{DpoBatch, DpoConfig, DpoExample, dpo_loss};
use crate::error::{AlignError, Result};
use crate::heldout::HeldOutPairs;
use crate::pair_scorer::PairScorer;
use crate::sft::SftRow;

/// A deterministic, epoch-reshuffled walk over `n` items; its state is one counter.
#[derive(Clone, Debug)]
struct Order {
    n: usize,
    seed: u64,
    cursor: u64,
    epoch: u64,
    permutation: Vec<usize>,
}

impl Order {
    fn new(n: usize, seed: u64) -> Self {
        let mut order = Self {
            n,
            seed,
            cursor: 0,
            epoch: u64::MAX,
            permutation: Vec::new(),
        };
        order.seek(0);
        order
    }

    fn seek(&mut self, cursor: u64) {
        self.cursor = cursor;
        let epoch = cursor / self.n as u64;
        if epoch != self.epoch {
            let mut rng =
                rand::rngs::StdRng::seed_from_u64(self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            self.permutation = (0..self.n).collect();
            self.permutation.shuffle(&mut rng);
            self.epoch = epoch;
        }
    }

    /// What a checkpoint saves: the cursor.
    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "cursor": self.cursor })
    }

    /// Goes back to a saved [`Order::state`].
    fn restore(&mut self, state: &serde_json::Value) -> allam_train::Result<()> {
        let cursor = state["cursor"]
            .as_u64()
            .ok_or_else(|| allam_train::TrainError::Config("saved data state: no cursor".into()))?;
        self.seek(cursor);
        Ok(())
    }

    fn take(&mut self, k: usize) -> Vec<usize> {
        (0..k)
            .map(|_| {
                self.seek(self.cursor);
                let item = self.permutation[(self.cursor % self.n as u64) as usize];
                self.cursor += 1;
                item
            })
            .collect()
    }
}

/// Supervised fine-tuning: packed conversation rows, loss on assistant tokens only.
pub struct SftObjective {
    rows: Vec<SftRow>,
    order: Order,
    head_chunk_tokens: usize,
}

impl SftObjective {
    /// Over packed rows, in an order reshuffled every epoch from `seed`.
    pub fn new(rows: Vec<SftRow>, seed: u64) -> Result<Self> {
        if rows.is_empty() {
            return Err(AlignError::Input("no SFT rows to train on".into()));
        }
        let order = Order::new(rows.len(), seed);
        Ok(Self {
            rows,
            order,
            head_chunk_tokens: allam_train::head::DEFAULT_CHUNK_TOKENS,
        })
    }

    /// Runs the output head in chunks of `tokens` (0: all logits at once).
    pub fn with_head_chunk_tokens(mut self, tokens: usize) -> Self {
        self.head_chunk_tokens = tokens;
        self
    }
}

impl Objective for SftObjective {
    type Batch = Vec<SftRow>;

    fn next_batch(&mut self, rows: usize) -> allam_train::Result<Vec<SftRow>> {
        Ok(self
            .order
            .take(rows)
            .into_iter()
            .map(|i| self.rows[i].clone())
            .collect())
    }

    fn units(&self, batch: &Vec<SftRow>) -> usize {
        batch
            .iter()
            .flat_map(|r| &r.labels)
            .filter(|&&l| l != crate::sft::IGNORE)
            .count()
    }

    fn tokens(&self, batch: &Vec<SftRow>) -> usize {
        batch.iter().map(|r| r.input_ids.len()).sum()
    }

    fn model_input(&self, batch: &Vec<SftRow>) -> Option<allam_train::Result<TokenBatch>> {
        Some(sft_batch(batch).map(|(tokens, _)| tokens))
    }

    fn loss_from_hidden(
        &self,
        model: &Llama,
        hidden: Tensor<3>,
        batch: &Vec<SftRow>,
    ) -> allam_train::Result<LossOutput> {
        let (_, labels) = sft_batch(batch)?;
        let loss = language_model_loss(model, hidden, &labels, self.head_chunk_tokens)?;
        Ok(LossOutput {
            loss_sum: loss.sum,
            metrics: BTreeMap::new(),
        })
    }

    fn state(&self) -> serde_json::Value {
        self.order.state()
    }

    fn restore(&mut self, state: &serde_json::Value) -> allam_train::Result<()> {
        self.order.restore(state)
    }
}

/// The packed rows of an SFT micro-batch and their labels.
fn sft_batch(batch: &[SftRow]) -> allam_train::Result<(TokenBatch, Vec<i32>)> {
    SftRow::batch(batch).map_err(|e| allam_train::TrainError::Config(e.to_string()))
}

/// Where DPO's reference log-probabilities come from.
pub enum Reference {
    /// Computed once before training: `(chosen, rejected)` per example.
    Cached(Vec<(f32, f32)>),
    /// A frozen copy of the starting model.
    Model(Box<Llama>),
}

/// Direct preference optimisation over encoded pairs.
pub struct DpoObjective {
    examples: Vec<DpoExample>,
    reference: Reference,
    scorer: PairScorer,
    order: Order,
    heldout: Option<HeldOutPairs>,
}

impl DpoObjective {
    /// Over `examples` against `reference`, in an order reshuffled every epoch from `seed`.
    pub fn new(
        examples: Vec<DpoExample>,
        reference: Reference,
        config: DpoConfig,
        pad_id: u32,
        seed: u64,
    ) -> Result<Self> {
        if examples.is_empty() {
            return Err(AlignError::Input("no preference pairs to train on".into()));
        }
        config.validate()?;
        let order = Order::new(examples.len(), seed);
        Ok(Self {
            examples,
            reference,
            scorer: PairScorer::new(config, pad_id, allam_train::head::DEFAULT_CHUNK_TOKENS),
            order,
            heldout: None,
        })
    }

    /// Runs the output head in chunks of `tokens` (0: all logits at once).
    pub fn with_head_chunk_tokens(mut self, tokens: usize) -> Self {
        self.scorer = PairScorer::new(*self.scorer.config(), self.scorer.pad_id(), tokens);
        self
    }

    /// Whether held-out pairs are evaluated.
    pub fn has_heldout(&self) -> bool {
        self.heldout.is_some()
    }

    /// Also reports the reward accuracy and margin on `heldout` at every evaluation.
    pub fn with_heldout(mut self, heldout: HeldOutPairs) -> Self {
        self.heldout = Some(heldout);
        self
    }
}

impl Objective for DpoObjective {
    type Batch = Vec<usize>;

    fn next_batch(&mut self, rows: usize) -> allam_train::Result<Vec<usize>> {
        Ok(self.order.take(rows))
    }

    fn units(&self, batch: &Vec<usize>) -> usize {
        batch.len()
    }

    fn tokens(&self, batch: &Vec<usize>) -> usize {
        batch
            .iter()
            .map(|&i| self.examples[i].chosen_ids.len() + self.examples[i].rejected_ids.len())
            .sum()
    }

    fn loss(&self, model: &Llama, batch: &Vec<usize>) -> allam_train::Result<LossOutput> {
        let dpo = self.dpo_batch(batch)?;
        let hidden = model.hidden_states(&dpo.responses.tokens)?;
        self.loss_on(model, hidden, &dpo, batch)
    }

    fn model_input(&self, batch: &Vec<usize>) -> Option<allam_train::Result<TokenBatch>> {
        Some(self.dpo_batch(batch).map(|dpo| dpo.responses.tokens))
    }

    fn loss_from_hidden(
        &self,
        model: &Llama,
        hidden: Tensor<3>,
        batch: &Vec<usize>,
    ) -> allam_train::Result<LossOutput> {
        let dpo = self.dpo_batch(batch)?;
        self.loss_on(model, hidden, &dpo, batch)
    }

    fn state(&self) -> serde_json::Value {
        self.order.state()
    }

    fn restore(&mut self, state: &serde_json::Value) -> allam_train::Result<()> {
        self.order.restore(state)
    }

    fn evaluate(&self, model: &Llama) -> allam_train::Result<BTreeMap<String, f64>> {
        match &self.heldout {
            Some(heldout) => heldout
                .metrics(model)
                .map_err(|e| allam_train::TrainError::Config(e.to_string())),
            None => Ok(BTreeMap::new()),
        }
    }
}

impl DpoObjective {
    /// The rows of the pairs `batch` names.
    fn dpo_batch(&self, batch: &[usize]) -> allam_train::Result<DpoBatch> {
        let examples: Vec<DpoExample> = batch.iter().map(|&i| self.examples[i].clone()).collect();
        DpoBatch::new(&examples, self.scorer.pad_id())
            .map_err(|e| allam_train::TrainError::Config(e.to_string()))
    }

    /// The DPO loss of `batch` from the policy's final hidden states of its rows.
    fn loss_on(
        &self,
        model: &Llama,
        hidden: Tensor<3>,
        dpo: &DpoBatch,
        batch: &[usize],
    ) -> allam_train::Result<LossOutput> {
        let fail = |e: AlignError| allam_train::TrainError::Config(e.to_string());
        let policy = self.scorer.policy_logprobs(model, hidden, dpo).map_err(fail)?;
        let (pc, pr) = (policy.chosen.clone(), policy.rejected.clone());
        let device = pc.device().without_autodiff();
        let (rc, rr) = match &self.reference {
            Reference::Cached(values) => {
                let c: Vec<f32> = batch.iter().map(|&i| values[i].0).collect();
                let r: Vec<f32> = batch.iter().map(|&i| values[i].1).collect();
                let n = batch.len();
                (
                    Tensor::<1>::from_data(TensorData::new(c, [n]), &device),
                    Tensor::<1>::from_data(TensorData::new(r, [n]), &device),
                )
            }
            Reference::Model(reference) => self.scorer.logprobs(reference, dpo).map_err(fail)?,
        };
        let out = dpo_loss(pc, pr, rc, rr, self.scorer.config()).map_err(fail)?;
        let n = batch.len() as f64;
        let metrics = BTreeMap::from([
            (
                "rewards_chosen".to_string(),
                MetricSum::new(out.rewards_chosen, n),
            ),
            (
                "rewards_rejected".to_string(),
                MetricSum::new(out.rewards_rejected, n),
            ),
            ("margin".to_string(), MetricSum::new(out.margins, n)),
            ("accuracy".to_string(), MetricSum::new(out.correct, n)),
        ]);
        Ok(LossOutput {
            loss_sum: policy.finish(out.loss.sum()).map_err(fail)?,
            metrics,
        })
    }
}
