//! The one interface every model has: fit on interactions ([`Fit`]), then score a history
//! ([`Model::score`]) or take its top k without what the customer already has
//! ([`Model::recommend`]). The models by name are in [`crate::settings`].
//!
//! Models score from a *history* (item indices and weights), not from a user index: a new
//! customer, or one whose latest event the training data does not have yet, is scored the same
//! way as everyone else.

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

/// Best-first order: higher score, then lower index (NaN last). [`rank_key`] orders the same.
#[cfg(test)]
fn better(a: &Scored, b: &Scored) -> std::cmp::Ordering {
    let (x, y) = (
        if a.score.is_nan() { f32::NEG_INFINITY } else { a.score },
        if b.score.is_nan() { f32::NEG_INFINITY } else { b.score },
    );
    y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal).then(a.item.cmp(&b.item))
}

/// A key whose ascending order is [`better`]'s: the score descending (NaN as −∞, −0 as 0), then
/// the index ascending. Integer comparisons instead of a float comparator with NaN checks.
#[inline]
fn rank_key(item: u32, score: f32) -> u64 {
    let s = if score.is_nan() { f32::NEG_INFINITY } else { score + 0.0 };
    let b = s.to_bits();
    // Monotone in the score: flip negatives entirely, set the sign bit of the others.
    let ascending = if b & 0x8000_0000 != 0 { !b } else { b | 0x8000_0000 };
    (u64::from(!ascending) << 32) | u64::from(item)
}

thread_local! {
    /// [`top_k`]'s keys, reused between calls on a thread.
    static KEYS: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The `k` best of `scores`, skipping the indices in `exclude` (ascending) and those `allow`
/// refuses, best first; ties go to the lower index.
pub fn top_k(scores: &[f32], k: usize, exclude: &[u32], allow: Option<&(dyn Fn(u32) -> bool + Sync)>) -> Vec<Scored> {
    let mut out = Vec::new();
    top_k_into(scores, k, exclude, allow, &mut out);
    out
}

/// [`top_k`] into `out` (cleared first).
pub fn top_k_into(
    scores: &[f32],
    k: usize,
    exclude: &[u32],
    allow: Option<&(dyn Fn(u32) -> bool + Sync)>,
    out: &mut Vec<Scored>,
) {
    out.clear();
    if k == 0 {
        return;
    }
    let mut fill = |keys: &mut Vec<u64>| {
        keys.clear();
        let mut ex = exclude.iter().peekable();
        for (i, &s) in scores.iter().enumerate() {
            let i = i as u32;
            while ex.next_if(|&&e| e < i).is_some() {}
            if ex.next_if_eq(&&i).is_some() || allow.is_some_and(|f| !f(i)) {
                continue;
            }
            keys.push(rank_key(i, s));
        }
        if keys.len() > k {
            keys.select_nth_unstable(k - 1);
            keys.truncate(k);
        }
        keys.sort_unstable();
        out.extend(keys.iter().map(|&key| {
            let item = key as u32;
            Scored { item, score: scores[item as usize] }
        }));
    };
    // A nested call (an `allow` that ranks) gets its own buffer.
    KEYS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut keys) => fill(&mut keys),
        Err(_) => fill(&mut Vec::new()),
    });
}

/// The `k` best of `candidates` (distinct item, score) by [`better`]'s order, best first.
pub fn top_k_of(candidates: &mut [Scored], k: usize) -> &[Scored] {
    let k = k.min(candidates.len());
    if k == 0 {
        return &[];
    }
    if candidates.len() > k {
        candidates.select_nth_unstable_by_key(k - 1, |s| rank_key(s.item, s.score));
    }
    let top = &mut candidates[..k];
    top.sort_unstable_by_key(|s| rank_key(s.item, s.score));
    top
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The previous `top_k`: every item as a `Scored`, ordered by [`better`].
    fn reference(scores: &[f32], k: usize, exclude: &[u32]) -> Vec<Scored> {
        let mut all: Vec<Scored> = (0..scores.len() as u32)
            .filter(|i| exclude.binary_search(i).is_err())
            .map(|i| Scored { item: i, score: scores[i as usize] })
            .collect();
        all.sort_by(better);
        all.truncate(k);
        all
    }

    #[test]
    fn top_k_orders_as_the_float_comparator_with_ties_nan_and_signed_zeros() {
        let scores = [
            0.5,
            f32::NAN,
            -0.0,
            0.0,
            2.0,
            f32::NEG_INFINITY,
            -1.5,
            0.5,
            f32::INFINITY,
            -0.0,
            1e-40,
            -1e-40,
            2.0,
            f32::NAN,
            -3.0,
        ];
        for exclude in [&[][..], &[4, 8][..], &[0, 1, 2, 3][..]] {
            for k in 0..=scores.len() + 1 {
                let got = top_k(&scores, k, exclude, None);
                let want = reference(&scores, k, exclude);
                let items = |v: &[Scored]| v.iter().map(|s| s.item).collect::<Vec<_>>();
                assert_eq!(items(&got), items(&want), "k = {k}, exclude = {exclude:?}");
                let mut cands: Vec<Scored> = (0..scores.len() as u32)
                    .filter(|i| exclude.binary_search(i).is_err())
                    .map(|i| Scored { item: i, score: scores[i as usize] })
                    .collect();
                assert_eq!(items(top_k_of(&mut cands, k)), items(&want), "top_k_of, k = {k}");
            }
        }
    }
}
