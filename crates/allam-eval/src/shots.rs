//! Choosing the solved examples of a k-shot prompt: drawn from a dev split (or, without one,
//! from the other items of the test file), items of the question's own subject first as
//! lm-evaluation-harness does for MMLU, in a seeded random order.
//!
//! The draw for each question depends only on the seed and the question's index, not on the
//! order of scoring or the batch size. The generator is allam-io's SplitMix64, so the same seed
//! gives the same prompts whatever version of `rand` the workspace uses.
use std::collections::BTreeMap;

use allam_io::SplitMix64;

use crate::task::McItem;

/// The default seed of the draw (`--seed`), lm-evaluation-harness's.
pub const DEFAULT_SEED: u64 = 1234;

/// Where the examples come from.
#[derive(Clone, Debug)]
pub struct ShotPool<'a> {
    items: &'a [McItem],
    /// Whether `items` is the test file itself (then a question's own index is left out).
    same_file: bool,
    /// Indices into `items` by subject.
    by_subject: BTreeMap<&'a str, Vec<usize>>,
}

impl<'a> ShotPool<'a> {
    /// A pool of dev items (`same_file` false) or of the test items themselves (`same_file` true,
    /// so that a question is never its own example).
    pub fn new(items: &'a [McItem], same_file: bool) -> Self {
        let mut by_subject: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            by_subject.entry(item.subject.as_str()).or_default().push(i);
        }
        Self {
            items,
            same_file,
            by_subject,
        }
    }

    /// The pool's items.
    pub fn items(&self) -> &'a [McItem] {
        self.items
    }

    /// Whether the pool is the test file itself.
    pub fn is_same_file(&self) -> bool {
        self.same_file
    }

    /// Up to `shots` pool indices for the question `item` (at `index` in the test file): a seeded
    /// draw from the items of its subject, then, if they are too few, from the other subjects.
    /// Never the question itself: neither its own index in a same-file pool nor any item with the
    /// same question text.
    pub fn sample(&self, item: &McItem, index: usize, shots: usize, seed: u64) -> Vec<usize> {
        if shots == 0 {
            return Vec::new();
        }
        let question = item.question.trim();
        let allowed =
            |&i: &usize| !(self.same_file && i == index) && self.items[i].question.trim() != question;
        let mut rng = SplitMix64::new(seed ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
        let same: Vec<usize> = self
            .by_subject
            .get(item.subject.as_str())
            .map(|v| v.iter().copied().filter(allowed).collect())
            .unwrap_or_default();
        let mut chosen = draw(same, shots, &mut rng);
        if chosen.len() < shots {
            let others: Vec<usize> = self
                .by_subject
                .iter()
                .filter(|(subject, _)| **subject != item.subject)
                .flat_map(|(_, v)| v.iter().copied())
                .filter(allowed)
                .collect();
            chosen.extend(draw(others, shots - chosen.len(), &mut rng));
        }
        chosen
    }
}

/// `n` of `candidates` (all, if fewer) in random order: a partial Fisher–Yates shuffle.
fn draw(mut candidates: Vec<usize>, n: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let n = n.min(candidates.len());
    for i in 0..n {
        let j = i + rng.below((candidates.len() - i) as u64) as usize;
        candidates.swap(i, j);
    }
    candidates.truncate(n);
    candidates
}
