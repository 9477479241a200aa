//! The one interface every model has: fit on interactions ([`Fit`]), then score a history
//! ([`Model::score`]) or take its top k without what the customer already has
//! ([`Model::recommend`]). The models by name are in [`crate::settings`].
//!
//! Models score from a *history* (item indices and weights), not from a user index: a new
//! customer, or one whose latest event the training data does not have yet, is scored the same
//! way as everyone else.

use std::cmp::Ordering;

use crate::RecommendError;
use crate::data::{History, Interactions};

/// An item index and its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub item: u32,
    pub score: f32,
}

/// A trained model, immutable: a server keeps one behind an `Arc` and swaps in a new one.
pub trait Model: Send + Sync {
    /// A short name (`ease`).
    fn name(&self) -> &'static str;

    /// The number of items it scores.
    fn n_items(&self) -> usize;

    /// Scores every item (`out.len() == n_items()`) for a customer with this history; higher is
    /// better. The scores of the history's own items are unspecified.
    fn score(&self, history: History<'_>, out: &mut [f32]);

    /// The `k` best items not in the history (and passing `allow`, when given), best first.
    fn recommend(&self, history: History<'_>, k: usize, allow: Option<&(dyn Fn(u32) -> bool + Sync)>) -> Vec<Scored> {
        let mut scores = vec![0.0; self.n_items()];
        self.score(history, &mut scores);
        top_k(&scores, k, history.items, allow)
    }
}

/// A model's settings, which fit it.
pub trait Fit {
    type Model: Model + 'static;

    /// Trains on `data`.
    fn fit(&self, data: &Interactions) -> Result<Self::Model, RecommendError>;
}

/// Best-first order: higher score, then lower index (NaN last).
fn better(a: &Scored, b: &Scored) -> Ordering {
    let (x, y) = (
        if a.score.is_nan() { f32::NEG_INFINITY } else { a.score },
        if b.score.is_nan() { f32::NEG_INFINITY } else { b.score },
    );
    y.partial_cmp(&x).unwrap_or(Ordering::Equal).then(a.item.cmp(&b.item))
}

/// The `k` best of `scores`, skipping the indices in `exclude` (ascending) and those `allow`
/// refuses, best first; ties go to the lower index.
pub fn top_k(scores: &[f32], k: usize, exclude: &[u32], allow: Option<&(dyn Fn(u32) -> bool + Sync)>) -> Vec<Scored> {
    if k == 0 {
        return Vec::new();
    }
    let mut ex = exclude.iter().peekable();
    let mut all = Vec::with_capacity(scores.len());
    for (i, &s) in scores.iter().enumerate() {
        let i = i as u32;
        while ex.next_if(|&&e| e < i).is_some() {}
        if ex.next_if_eq(&&i).is_some() || allow.is_some_and(|f| !f(i)) {
            continue;
        }
        all.push(Scored { item: i, score: s });
    }
    if all.len() > k {
        all.select_nth_unstable_by(k - 1, better);
        all.truncate(k);
    }
    all.sort_unstable_by(better);
    all
}
