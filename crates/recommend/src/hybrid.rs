//! The hybrid: a learned linear blend of the other models' scores and simple features.
//!
//! The blend re-ranks candidates: the union of each base model's top 50 for the customer
//! (candidates come first; the rest follow in the blend's order). Fitting holds out part of each
//! training history ([`Interactions::holdout`]), fits the base models (item-kNN, EASE with λ tuned
//! on that held-out part, ALS) on the rest, and learns the blend's weights on the held-out
//! customers' candidates, the held-out pairs rated 4 or more being the relevant ones, with a
//! listwise softmax loss solved by Newton's method. Then the base models are refitted on all the
//! training data; the weights stay. The data a model is evaluated on is never seen by any of this.
//! With a single λ (`EaseConfig::tune` of one value, or `None`: what a running node passes once
//! it has tuned λ) EASE is fitted once, without evaluating it. ALS is fitted alongside item-kNN and
//! the two EASE models (both halves also spread their own work over the threads).
//!
//! Serving ([`Model::recommend`]) computes the base scores into per-thread buffers and blends only
//! the candidates when at least `k` of them are allowed: the list is the one scoring every item
//! would give (a test checks it against that straightforward computation).
//!
//! Base scores: item-kNN, EASE, ALS, EASE fitted on the liked pairs only (rated 4 or more)
//! applied to the liked part of the history, and EASE applied to the disliked part (rated below
//! 4: what resembles what the customer rated low; it ranks but brings no candidate). The last
//! two read the ratings in [`History::ratings`]; without them the whole history counts as liked.
//! Features of an item for a customer: each base score standardized over the items the customer
//! does not have (so scales learned on the held-out fit carry over to the refitted models) and
//! its rank in that score's top list (1 − ln(1 + rank) / ln(1 + 50), 0 outside), the item's
//! popularity (log of its customers, standardized over items), its smoothed mean rating
//! (standardized), and the scores, popularity and rating times the log of the history's length
//! (a short history leans on popularity, a long one on the collaborative scores). Of these, the
//! disliked-history score is what lifts the blend above EASE on the 10-core split (see
//! docs/benchmarks.md).

use std::time::{Duration, Instant};

use faer::linalg::solvers::Solve;
use faer::{Mat, Side};
use rayon::prelude::*;

use crate::RecommendError;
use crate::als::{Als, AlsConfig};
use crate::data::{HeldOut, History, Interactions};
use crate::ease::{Ease, EaseConfig};
use crate::eval::TestSet;
use crate::knn::{ItemKnn, ItemKnnConfig};
use crate::model::{Fit, Model, Scored, top_k, top_k_into, top_k_of};
use crate::popularity::PopularityConfig;

/// The features' names, in the order of [`Hybrid::weights`].
pub const FEATURES: [&str; 19] = [
    "knn",
    "ease",
    "als",
    "liked ease",
    "disliked ease",
    "knn rank",
    "ease rank",
    "als rank",
    "liked ease rank",
    "disliked ease rank",
    "popularity",
    "rating",
    "knn×len",
    "ease×len",
    "als×len",
    "liked ease×len",
    "disliked ease×len",
    "popularity×len",
    "rating×len",
];
/// Base scores: item-kNN, EASE, ALS, liked-only EASE, EASE of the disliked history.
const NB: usize = 5;
const DISLIKED: usize = 4;
const NF: usize = FEATURES.len();
/// What a candidate's score is raised by, above every other item.
const CANDIDATE_BONUS: f32 = 1.0e4;

/// Settings of [`Hybrid`].
#[derive(Debug, Clone)]
pub struct HybridConfig {
    pub knn: ItemKnnConfig,
    /// EASE; its `tune` grid is searched on the hybrid's own held-out part.
    pub ease: EaseConfig,
    pub als: AlsConfig,
    /// The part of each history held out to learn the blend.
    pub holdout_fraction: f64,
    /// Candidates: each base model's top this-many (their union). The blend orders them; the
    /// other items follow, in the blend's order too.
    pub candidates: usize,
    /// L2 penalty on the blend's weights.
    pub l2: f64,
    pub seed: u64,
}

impl Default for HybridConfig {
    fn default() -> Self {
        HybridConfig {
            knn: ItemKnnConfig::default(),
            ease: EaseConfig::default(),
            als: AlsConfig::default(),
            holdout_fraction: 0.2,
            candidates: 50,
            l2: 1e-4,
            seed: 14,
        }
    }
}

/// What fitting the hybrid chose and how long each part took.
#[derive(Debug, Clone, Default)]
pub struct HybridReport {
    /// Each λ tried for EASE and its NDCG@10 on the held-out part.
    pub ease_grid: Vec<(f32, f64)>,
    pub ease_lambda: f32,
    /// Held-out customers, relevant candidates and candidates the blend learned from.
    pub customers: usize,
    pub relevant: usize,
    pub candidates: usize,
    /// The blend's listwise loss at the end.
    pub loss: f64,
    /// Each part's own time; the base models of one stage are fitted at once, so theirs
    /// overlap.
    pub timings: Vec<(&'static str, Duration)>,
}

/// Per-item features that do not depend on the customer.
#[derive(Debug, Clone)]
struct ItemFeatures {
    popularity: Vec<f32>,
    rating: Vec<f32>,
}

impl ItemFeatures {
    fn new(data: &Interactions) -> Self {
        let n = data.n_items();
        let pop = PopularityConfig.fit(data).map(|p| p.counts().to_vec()).unwrap_or_else(|_| vec![0.0; n]);
        let popularity: Vec<f32> = pop.iter().map(|c| (1.0 + c).ln()).collect();
        let (mut sum, mut count) = (vec![0.0f64; n], vec![0.0f64; n]);
        for u in 0..data.n_users() as u32 {
            for (&i, &r) in data.history(u).items.iter().zip(data.ratings(u)) {
                if !r.is_nan() {
                    sum[i as usize] += f64::from(r);
                    count[i as usize] += 1.0;
                }
            }
        }
        let (ts, tc) = (sum.iter().sum::<f64>(), count.iter().sum::<f64>());
        let global = if tc > 0.0 { ts / tc } else { 0.0 };
        // A mean rating pulled toward the global one by 5 phantom ratings.
        let rating: Vec<f32> = (0..n).map(|i| ((sum[i] + 5.0 * global) / (count[i] + 5.0)) as f32).collect();
        ItemFeatures { popularity: standardize_all(popularity), rating: standardize_all(rating) }
    }
}

fn standardize_all(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.len().max(1) as f64;
    let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = v.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / n;
    let sd = var.sqrt().max(1e-9);
    v.iter_mut().for_each(|x| *x = ((f64::from(*x) - mean) / sd) as f32);
    v
}

/// The mean and the inverse standard deviation of `scores` over the items not in `history`
/// (ascending); an item's standardized score is `(score − mean) · inv`.
fn moments(scores: &[f32], history: &[u32]) -> (f64, f64) {
    let (mut s, mut s2, mut n) = (0.0f64, 0.0f64, 0.0f64);
    let mut ex = history.iter().peekable();
    for (i, &x) in scores.iter().enumerate() {
        if ex.next_if_eq(&&(i as u32)).is_some() {
            continue;
        }
        s += f64::from(x);
        s2 += f64::from(x) * f64::from(x);
        n += 1.0;
    }
    let mean = if n > 0.0 { s / n } else { 0.0 };
    let sd = if n > 0.0 { (s2 / n - mean * mean).max(0.0).sqrt() } else { 0.0 };
    let inv = if sd > 1e-12 { 1.0 / sd } else { 0.0 };
    (mean, inv)
}

/// The base models and item features one blend reads.
struct Bases {
    knn: ItemKnn,
    ease: Ease,
    /// EASE fitted on the liked pairs only (rated 4 or more, or a positive signal without a
    /// rating), applied to the whole history: what people who had these products went on to like.
    liked: Ease,
    als: Als,
    items: ItemFeatures,
    /// Candidates: the union of each base model's top this-many.
    candidates: usize,
}

/// One customer's base scores (raw, with what standardizes them), reciprocal ranks within each
/// model's top list, and the candidates (the union of those lists). Kept per thread and reused
/// ([`Bases::with_user_scores`]): nothing of the size of the catalog is allocated per customer.
#[derive(Default)]
struct UserScores {
    raw: [Vec<f32>; NB],
    /// Per base score: mean and inverse standard deviation over the items not in the history.
    moments: [(f64, f64); NB],
    rr: [Vec<f32>; NB],
    /// Each base score's top list (what `rr` is set at).
    tops: [Vec<Scored>; NB],
    pool: Vec<u32>,
    in_pool: Vec<bool>,
    len: f32,
    /// The liked and the disliked part of the history.
    split: [(Vec<u32>, Vec<f32>); 2],
}

impl UserScores {
    /// Sized for `n` items, with nothing of the previous customer left.
    fn reset(&mut self, n: usize) {
        for m in 0..NB {
            if self.rr[m].len() == n {
                for s in &self.tops[m] {
                    self.rr[m][s.item as usize] = 0.0;
                }
            } else {
                self.rr[m] = vec![0.0; n];
            }
            self.tops[m].clear();
            self.raw[m].resize(n, 0.0);
        }
        if self.in_pool.len() == n {
            for &i in &self.pool {
                self.in_pool[i as usize] = false;
            }
        } else {
            self.in_pool = vec![false; n];
        }
        self.pool.clear();
    }

    /// Base score `m` of item `i`, standardized.
    #[inline]
    fn z(&self, m: usize, i: usize) -> f32 {
        let (mean, inv) = self.moments[m];
        ((f64::from(self.raw[m][i]) - mean) * inv) as f32
    }
}

thread_local! {
    /// Each thread's [`UserScores`].
    static SCRATCH: std::cell::RefCell<UserScores> = std::cell::RefCell::new(UserScores::default());
}

impl Bases {
    /// Calls `f` with the customer's base scores, computed into this thread's buffers.
    fn with_user_scores<R>(&self, history: History<'_>, f: impl FnOnce(&UserScores) -> R) -> R {
        let mut f = Some(f);
        let mut run = |s: &mut UserScores| {
            self.user_scores(history, s);
            (f.take().expect("called once"))(s)
        };
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut s) => run(&mut s),
            Err(_) => run(&mut UserScores::default()),
        })
    }

    fn user_scores(&self, history: History<'_>, s: &mut UserScores) {
        let n = self.ease.n_items();
        s.reset(n);
        self.knn.score(history, &mut s.raw[0]);
        self.ease.score(history, &mut s.raw[1]);
        self.als.score(history, &mut s.raw[2]);
        // Liked EASE from the liked part of the history; EASE from the disliked part (what
        // resembles what the customer rated low). Without ratings, the whole history is liked.
        let [(liked_items, liked_w), (low_items, low_w)] = &mut s.split;
        liked_items.clear();
        liked_w.clear();
        low_items.clear();
        low_w.clear();
        for (k, (&i, &w)) in history.items.iter().zip(history.weights).enumerate() {
            let r = history.ratings.get(k).copied().unwrap_or(f32::NAN);
            if r.is_nan() || r >= 4.0 {
                liked_items.push(i);
                liked_w.push(w);
            } else {
                low_items.push(i);
                low_w.push(w);
            }
        }
        self.liked.score(History { items: liked_items, weights: liked_w, ratings: &[] }, &mut s.raw[3]);
        self.ease.score(History { items: low_items, weights: low_w, ratings: &[] }, &mut s.raw[4]);
        let denom = (1.0 + self.candidates as f32).ln();
        for m in 0..NB {
            top_k_into(&s.raw[m], self.candidates, history.items, None, &mut s.tops[m]);
            for (rank, t) in s.tops[m].iter().enumerate() {
                s.rr[m][t.item as usize] = 1.0 - (1.0 + rank as f32).ln() / denom;
                // What resembles the disliked products is no candidate.
                if m != DISLIKED && !s.in_pool[t.item as usize] {
                    s.in_pool[t.item as usize] = true;
                    s.pool.push(t.item);
                }
            }
            s.moments[m] = moments(&s.raw[m], history.items);
        }
        s.len = (1.0 + history.len() as f32).ln();
    }

    fn features(&self, s: &UserScores, i: usize) -> [f32; NF] {
        let mut x = [0.0; NF];
        for m in 0..NB {
            x[m] = s.z(m, i);
            x[NB + m] = s.rr[m][i];
        }
        x[2 * NB] = self.items.popularity[i];
        x[2 * NB + 1] = self.items.rating[i];
        // Scores and item features times the history's length.
        for m in 0..NB {
            x[2 * NB + 2 + m] = x[m] * s.len;
        }
        x[3 * NB + 2] = x[2 * NB] * s.len;
        x[3 * NB + 3] = x[2 * NB + 1] * s.len;
        x
    }
}

/// The fitted hybrid.
pub struct Hybrid {
    bases: Bases,
    weights: [f32; NF],
    report: HybridReport,
}

impl Hybrid {
    /// The blend's weights, named by [`FEATURES`].
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// What fitting chose and how long it took.
    pub fn report(&self) -> &HybridReport {
        &self.report
    }
}

/// One held-out customer's candidates: their features and which are relevant.
struct Group {
    xs: Vec<[f32; NF]>,
    relevant: Vec<usize>,
}

/// Listwise softmax regression by Newton's method: for each relevant candidate `p` of each
/// customer, minimizes `−log(exp(w·x_p) / Σ_candidates exp(w·x))` (averaged) + l2/2 ‖w‖². The
/// softmax puts the weight of its gradient on the candidates ranked highest, which is where
/// NDCG@10 is decided.
fn fit_listwise(groups: &[Group], l2: f64) -> ([f32; NF], f64) {
    let m = groups.iter().map(|g| g.relevant.len()).sum::<usize>().max(1) as f64;
    let mut w = [0.0f64; NF];
    let mut loss = f64::INFINITY;
    type Acc = ([f64; NF], [[f64; NF]; NF], f64);
    let zero = || -> Acc { ([0.0; NF], [[0.0; NF]; NF], 0.0) };
    for _ in 0..12 {
        let (grad, hess, sum_loss) = groups
            .par_iter()
            .fold(zero, |(mut g, mut h, mut l), group| {
                let s: Vec<f64> = group.xs.iter().map(|x| (0..NF).map(|k| w[k] * f64::from(x[k])).sum()).collect();
                let top = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|v| (v - top).exp()).collect();
                let z: f64 = e.iter().sum();
                let mut mean = [0.0f64; NF];
                let mut second = [[0.0f64; NF]; NF];
                for (x, ej) in group.xs.iter().zip(&e) {
                    let p = ej / z;
                    for a in 0..NF {
                        let pa = p * f64::from(x[a]);
                        mean[a] += pa;
                        for b in 0..=a {
                            second[a][b] += pa * f64::from(x[b]);
                        }
                    }
                }
                let r = group.relevant.len() as f64;
                for &i in &group.relevant {
                    l += top + z.ln() - s[i];
                    for (a, ga) in g.iter_mut().enumerate() {
                        *ga += mean[a] - f64::from(group.xs[i][a]);
                    }
                }
                for a in 0..NF {
                    for b in 0..=a {
                        h[a][b] += r * (second[a][b] - mean[a] * mean[b]);
                    }
                }
                (g, h, l)
            })
            .reduce(zero, |(mut g, mut h, l), (g2, h2, l2_)| {
                for a in 0..NF {
                    g[a] += g2[a];
                    for b in 0..NF {
                        h[a][b] += h2[a][b];
                    }
                }
                (g, h, l + l2_)
            });
        loss = sum_loss / m + 0.5 * l2 * w.iter().map(|x| x * x).sum::<f64>();
        let hm = Mat::<f64>::from_fn(NF, NF, |a, b| {
            let (a2, b2) = if b <= a { (a, b) } else { (b, a) };
            hess[a2][b2] / m + if a == b { l2 } else { 0.0 }
        });
        let mut g = Mat::<f64>::from_fn(NF, 1, |a, _| grad[a] / m + l2 * w[a]);
        let Ok(llt) = hm.llt(Side::Lower) else { break };
        llt.solve_in_place(g.as_mut());
        let step: f64 = (0..NF).map(|a| g[(a, 0)].abs()).fold(0.0, f64::max);
        // A damped step far from the optimum, a full Newton step near it.
        let scale = if step > 1.0 { 1.0 / step } else { 1.0 };
        for (a, wa) in w.iter_mut().enumerate() {
            *wa -= scale * g[(a, 0)];
        }
        if step < 1e-6 {
            break;
        }
    }
    (w.map(|x| x as f32), loss)
}

impl HybridConfig {
    /// The base models fitted on `data`: ALS on one side, item-kNN and both EASE on the other,
    /// at once (each also spreads its own work over the threads; this fills the serial parts of
    /// one with the other). `ease`: EASE when already fitted. Each model's time is its own
    /// (they overlap).
    fn fit_bases(
        &self,
        data: &Interactions,
        lambda: f32,
        ease: Option<Ease>,
        label: [&'static str; 4],
        timings: &mut Vec<(&'static str, Duration)>,
    ) -> Result<Bases, RecommendError> {
        let (left, als) = rayon::join(
            || -> Result<_, RecommendError> {
                let t = Instant::now();
                let knn = self.knn.fit(data)?;
                let knn_t = t.elapsed();
                let t = Instant::now();
                let ease = match ease {
                    Some(e) => e,
                    None => Ease::fit_lambda(data, lambda)?,
                };
                let ease_t = t.elapsed();
                let t = Instant::now();
                let liked = Ease::fit_lambda(&data.liked(4.0), lambda)?;
                Ok((knn, knn_t, ease, ease_t, liked, t.elapsed()))
            },
            || {
                let t = Instant::now();
                self.als.fit(data).map(|a| (a, t.elapsed()))
            },
        );
        let (knn, knn_t, ease, ease_t, liked, liked_t) = left?;
        let (als, als_t) = als?;
        timings.extend([(label[0], knn_t), (label[1], ease_t), (label[2], liked_t), (label[3], als_t)]);
        Ok(Bases { knn, ease, liked, als, items: ItemFeatures::new(data), candidates: self.candidates })
    }

    /// The candidates of the held-out customers with at least one relevant candidate.
    fn training_groups(&self, bases: &Bases, fit: &Interactions, held: &[HeldOut]) -> Vec<Group> {
        let test = TestSet::from_holdout(fit, held, 4.0);
        test.users
            .par_iter()
            .filter_map(|tu| {
                let u = tu.user.expect("held-out users are training users");
                bases.with_user_scores(fit.history(u), |s| {
                    let relevant: Vec<usize> = s
                        .pool
                        .iter()
                        .enumerate()
                        .filter(|(_, i)| tu.relevant.binary_search(i).is_ok())
                        .map(|(k, _)| k)
                        .collect();
                    // No relevant candidate: nothing to learn, no features to compute.
                    (!relevant.is_empty()).then(|| Group {
                        xs: s.pool.iter().map(|&i| bases.features(s, i as usize)).collect(),
                        relevant,
                    })
                })
            })
            .collect()
    }
}

impl Fit for HybridConfig {
    type Model = Hybrid;

    fn fit(&self, data: &Interactions) -> Result<Hybrid, RecommendError> {
        let mut report = HybridReport::default();
        let t = Instant::now();
        let (fit, held) = data.holdout(self.holdout_fraction, 5, self.seed);
        report.timings.push(("split", t.elapsed()));

        // λ: searched on the held-out part when there is a grid to search; a single value (the
        // one a running node kept from its last search) is fitted once, not evaluated.
        let grid = self.ease.tune.clone().unwrap_or_else(|| vec![self.ease.lambda]);
        let ease = if grid.len() > 1 {
            let t = Instant::now();
            let (ease, tried) = Ease::tune(&fit, &held, &grid)?;
            report.ease_grid = tried;
            report.timings.push(("ease λ search on the fit part", t.elapsed()));
            Some(ease)
        } else {
            None
        };
        let lambda = ease.as_ref().map_or(grid.first().copied().unwrap_or(self.ease.lambda), Ease::lambda);
        report.ease_lambda = lambda;
        let bases = self.fit_bases(
            &fit,
            lambda,
            ease,
            ["item-knn on the fit part", "ease on the fit part", "liked ease on the fit part", "als on the fit part"],
            &mut report.timings,
        )?;

        let t = Instant::now();
        let groups = self.training_groups(&bases, &fit, &held);
        report.timings.push(("features of the held-out candidates", t.elapsed()));
        drop(bases);
        if groups.is_empty() {
            return Err(RecommendError::NotEnoughData(
                "the hybrid needs customers with at least 5 interactions and a held-out rating of 4 or more",
            ));
        }
        let t = Instant::now();
        let (weights, loss) = fit_listwise(&groups, self.l2);
        report.timings.push(("blend weights", t.elapsed()));
        report.customers = groups.len();
        report.relevant = groups.iter().map(|g| g.relevant.len()).sum();
        report.candidates = groups.iter().map(|g| g.xs.len()).sum();
        report.loss = loss;
        drop(groups);

        let bases = self.fit_bases(
            data,
            lambda,
            None,
            ["refit item-knn", "refit ease", "refit liked ease", "refit als"],
            &mut report.timings,
        )?;
        Ok(Hybrid { bases, weights, report })
    }
}

impl Hybrid {
    /// The blend of item `i` for these base scores.
    fn blend(&self, s: &UserScores, i: usize) -> f32 {
        let x = self.bases.features(s, i);
        x.iter().zip(&self.weights).map(|(x, w)| x * w).sum()
    }

    /// Every item's score (see [`Model::score`]) from computed base scores.
    fn score_all(&self, s: &UserScores, personal: bool, out: &mut [f32]) {
        for (i, o) in out.iter_mut().enumerate() {
            let blend = self.blend(s, i);
            // Candidates first: the blend was learned to order them.
            *o = if personal && s.in_pool[i] { blend + CANDIDATE_BONUS } else { blend };
        }
    }
}

impl Model for Hybrid {
    fn name(&self) -> &'static str {
        "hybrid"
    }

    fn n_items(&self) -> usize {
        self.bases.ease.n_items()
    }

    fn score(&self, history: History<'_>, out: &mut [f32]) {
        // Without a positive signal every base model scores 0: no candidates, the blend's item
        // features (popularity, rating) order everything.
        let personal = history.weights.iter().any(|&w| w > 0.0);
        self.bases.with_user_scores(history, |s| self.score_all(s, personal, out));
    }

    /// The same list as scoring every item and taking the top `k`, computed from the candidates
    /// alone when at least `k` of them are allowed: candidates come before every other item, so
    /// the rest need no blend.
    fn recommend(&self, history: History<'_>, k: usize, allow: Option<&(dyn Fn(u32) -> bool + Sync)>) -> Vec<Scored> {
        let personal = history.weights.iter().any(|&w| w > 0.0);
        self.bases.with_user_scores(history, |s| {
            if personal {
                // The pool never holds a history item (each top list left them out).
                let mut cands: Vec<Scored> = s
                    .pool
                    .iter()
                    .filter(|&&i| allow.is_none_or(|f| f(i)))
                    .map(|&i| Scored { item: i, score: self.blend(s, i as usize) + CANDIDATE_BONUS })
                    .collect();
                if cands.len() >= k {
                    let top = top_k_of(&mut cands, k).to_vec();
                    // The candidates rank above every other item while their blends are finite
                    // (a NaN blend ranks last of all items in the full ranking, not last of the
                    // candidates): otherwise rank everything.
                    if top.iter().all(|s| s.score.is_finite()) {
                        return top;
                    }
                }
            }
            let mut scores = vec![0.0; self.n_items()];
            self.score_all(s, personal, &mut scores);
            top_k(&scores, k, history.items, allow)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::InteractionsBuilder;
    use crate::{Signal, SignalWeights};

    /// Customers in taste groups who rate their group's products high and one other product
    /// low, deterministic.
    fn fixture() -> Interactions {
        let mut b = InteractionsBuilder::new(SignalWeights::default());
        let (items, groups) = (60usize, 4usize);
        let per_group = items / groups;
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for u in 0..240 {
            let g = u % groups;
            for _ in 0..8 {
                let i = g * per_group + next(per_group);
                let rating = if next(5) == 0 { 3.0 } else { 5.0 };
                b.add(&format!("u{u}"), &format!("p{i}"), Signal::Review { rating });
            }
            b.add(&format!("u{u}"), &format!("p{}", next(items)), Signal::Review { rating: 2.0 });
        }
        b.build()
    }

    fn small() -> HybridConfig {
        HybridConfig {
            knn: ItemKnnConfig { neighbours: 20, shrink: 1.0 },
            ease: EaseConfig { tune: Some(vec![5.0, 50.0]), ..EaseConfig::default() },
            als: AlsConfig { factors: 8, iterations: 4, ..AlsConfig::default() },
            candidates: 10,
            ..HybridConfig::default()
        }
    }

    /// Higher score first (−0 and 0 alike), then the lower index.
    fn desc(a: &(u32, f32), b: &(u32, f32)) -> std::cmp::Ordering {
        b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal).then(a.0.cmp(&b.0))
    }

    /// The straightforward computation: every item's features, standardized over the whole
    /// catalog in place, the blend with the candidate bonus, one full sort.
    fn reference(h: &Hybrid, history: History<'_>, k: usize) -> Vec<(u32, f32)> {
        let b = &h.bases;
        let n = b.ease.n_items();
        let mut z: [Vec<f32>; NB] = std::array::from_fn(|_| vec![0.0; n]);
        b.knn.score(history, &mut z[0]);
        b.ease.score(history, &mut z[1]);
        b.als.score(history, &mut z[2]);
        let mut parts = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
        for (k, (&i, &w)) in history.items.iter().zip(history.weights).enumerate() {
            let r = history.ratings.get(k).copied().unwrap_or(f32::NAN);
            let p = &mut parts[usize::from(!(r.is_nan() || r >= 4.0))];
            p.0.push(i);
            p.1.push(w);
        }
        b.liked.score(History { items: &parts[0].0, weights: &parts[0].1, ratings: &[] }, &mut z[3]);
        b.ease.score(History { items: &parts[1].0, weights: &parts[1].1, ratings: &[] }, &mut z[4]);
        let mut rr: [Vec<f32>; NB] = std::array::from_fn(|_| vec![0.0; n]);
        let mut in_pool = vec![false; n];
        for m in 0..NB {
            let mut all: Vec<(u32, f32)> = (0..n as u32)
                .filter(|i| history.items.binary_search(i).is_err())
                .map(|i| (i, z[m][i as usize]))
                .collect();
            all.sort_by(desc);
            for (rank, &(i, _)) in all.iter().take(b.candidates).enumerate() {
                rr[m][i as usize] = 1.0 - (1.0 + rank as f32).ln() / (1.0 + b.candidates as f32).ln();
                in_pool[i as usize] |= m != DISLIKED;
            }
            let (mean, inv) = moments(&z[m], history.items);
            z[m].iter_mut().for_each(|x| *x = ((f64::from(*x) - mean) * inv) as f32);
        }
        let len = (1.0 + history.len() as f32).ln();
        let personal = history.weights.iter().any(|&w| w > 0.0);
        let mut all: Vec<(u32, f32)> = (0..n)
            .filter(|&i| history.items.binary_search(&(i as u32)).is_err())
            .map(|i| {
                let mut x = [0.0f32; NF];
                for m in 0..NB {
                    x[m] = z[m][i];
                    x[NB + m] = rr[m][i];
                    x[2 * NB + 2 + m] = z[m][i] * len;
                }
                x[2 * NB] = b.items.popularity[i];
                x[2 * NB + 1] = b.items.rating[i];
                x[3 * NB + 2] = x[2 * NB] * len;
                x[3 * NB + 3] = x[2 * NB + 1] * len;
                let blend: f32 = x.iter().zip(&h.weights).map(|(x, w)| x * w).sum();
                (i as u32, if personal && in_pool[i] { blend + CANDIDATE_BONUS } else { blend })
            })
            .collect();
        all.sort_by(desc);
        all.truncate(k);
        all
    }

    #[test]
    fn the_served_top_list_is_the_straightforward_ranking() {
        let data = fixture();
        let h = small().fit(&data).expect("fits");
        let mut checked = 0;
        let mut from_pool = 0;
        for u in 0..data.n_users() as u32 {
            let history = data.history(u);
            for k in [5, 10, 25, 60] {
                let want = reference(&h, history, k);
                let got: Vec<(u32, f32)> =
                    h.recommend(history, k, None).into_iter().map(|s| (s.item, s.score)).collect();
                assert_eq!(got, want, "user {u}, k = {k}");
                // And the full scores agree with it too.
                let mut scores = vec![0.0; h.n_items()];
                h.score(history, &mut scores);
                let full: Vec<(u32, f32)> =
                    top_k(&scores, k, history.items, None).into_iter().map(|s| (s.item, s.score)).collect();
                assert_eq!(full, want, "user {u}, k = {k}, full scores");
                checked += 1;
                // Which path served it: the candidates alone, or every item's score.
                from_pool += usize::from(h.bases.with_user_scores(history, |s| s.pool.len() >= k));
            }
        }
        assert!(from_pool > 0 && from_pool < checked, "{from_pool} of {checked} from the candidates alone");
        // A customer nobody saw, with a liked and a disliked product, and one with nothing.
        let items = [3u32, 40];
        let weights = [1.0f32, 1.0];
        let ratings = [5.0f32, 1.0];
        let h2 = History { items: &items, weights: &weights, ratings: &ratings };
        let got: Vec<(u32, f32)> = h.recommend(h2, 10, None).into_iter().map(|s| (s.item, s.score)).collect();
        assert_eq!(got, reference(&h, h2, 10));
        let got: Vec<(u32, f32)> =
            h.recommend(History::EMPTY, 10, None).into_iter().map(|s| (s.item, s.score)).collect();
        assert_eq!(got, reference(&h, History::EMPTY, 10));
        // Only what `allow` accepts, in the same order.
        let even = |i: u32| i.is_multiple_of(2);
        let history = data.history(0);
        let got: Vec<u32> = h.recommend(history, 10, Some(&even)).into_iter().map(|s| s.item).collect();
        let want: Vec<u32> =
            reference(&h, history, 60).into_iter().map(|(i, _)| i).filter(|&i| even(i)).take(10).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_kept_lambda_fits_ease_once_without_a_search() {
        let data = fixture();
        let mut config = small();
        config.ease.tune = None;
        config.ease.lambda = 5.0;
        let h = config.fit(&data).expect("fits");
        assert_eq!(h.report().ease_lambda, 5.0);
        assert!(h.report().ease_grid.is_empty(), "{:?}", h.report().ease_grid);
        let tuned = small().fit(&data).expect("fits");
        assert_eq!(tuned.report().ease_grid.len(), 2);
    }
}
