//! The one interface every model has: fit on interactions ([`Fit`]), then score a history
//! ([`Model::score`]) or take its top k without what the customer already has
//! ([`Model::recommend`]).
//!
//! Models score from a *history* (item indices and weights), not from a user index: a new
//! customer, or one whose latest event the training data does not have yet, is scored the same
//! way as everyone else.

use std::cmp::Ordering;
use std::time::{Duration, Instant};

use crate::RecommendError;
use crate::als::AlsConfig;
use crate::data::{History, Interactions};
use crate::ease::EaseConfig;
use crate::hybrid::HybridConfig;
use crate::knn::ItemKnnConfig;
use crate::popularity::PopularityConfig;

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

/// The models by name, for the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    Popularity,
    ItemKnn,
    Ease,
    Als,
    Hybrid,
}

impl ModelKind {
    /// Every model, baselines first.
    pub const ALL: [ModelKind; 5] =
        [ModelKind::Popularity, ModelKind::ItemKnn, ModelKind::Ease, ModelKind::Als, ModelKind::Hybrid];

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Popularity => "popularity",
            ModelKind::ItemKnn => "item-knn",
            ModelKind::Ease => "ease",
            ModelKind::Als => "als",
            ModelKind::Hybrid => "hybrid",
        }
    }

    /// A model by name.
    pub fn parse(name: &str) -> Result<Self, RecommendError> {
        Self::ALL.into_iter().find(|k| k.as_str() == name.trim().to_ascii_lowercase()).ok_or_else(|| {
            RecommendError::UnknownModel {
                name: name.to_owned(),
                known: Self::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "),
            }
        })
    }
}

/// Every model's settings.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub popularity: PopularityConfig,
    pub knn: ItemKnnConfig,
    pub ease: EaseConfig,
    pub als: AlsConfig,
    pub hybrid: HybridConfig,
}

impl Settings {
    /// Fits the model `kind` on `data`, returning it and the time the fit took.
    pub fn fit(&self, kind: ModelKind, data: &Interactions) -> Result<(Box<dyn Model>, Duration), RecommendError> {
        let start = Instant::now();
        let model: Box<dyn Model> = match kind {
            ModelKind::Popularity => Box::new(self.popularity.fit(data)?),
            ModelKind::ItemKnn => Box::new(self.knn.fit(data)?),
            ModelKind::Ease => Box::new(self.ease.fit(data)?),
            ModelKind::Als => Box::new(self.als.fit(data)?),
            ModelKind::Hybrid => Box::new(self.hybrid.fit(data)?),
        };
        Ok((model, start.elapsed()))
    }
}
