//! The hybrid: a learned linear blend of the other models' scores and simple features.
//!
//! The blend re-ranks candidates: the union of each base model's top 50 for the customer
//! (candidates come first; the rest follow in the blend's order). Fitting holds out part of each
//! training history ([`Interactions::holdout`]), fits the base models (item-kNN, EASE with λ tuned
//! on that held-out part, ALS) on the rest, and learns the blend's weights on the held-out
//! customers' candidates, the held-out pairs rated 4 or more being the relevant ones, with a
//! listwise softmax loss solved by Newton's method. Then the base models are refitted on all the
//! training data; the weights stay. The data a model is evaluated on is never seen by any of this.
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
use crate::model::{Fit, Model, top_k};
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

/// Standardizes `scores` in place over the items not in `history` (ascending).
fn standardize_user(scores: &mut [f32], history: &[u32]) {
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
    scores.iter_mut().for_each(|x| *x = ((f64::from(*x) - mean) * inv) as f32);
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

/// One customer's base scores: standardized, reciprocal ranks within each model's top list, and
/// the candidates (the union of those lists).
struct UserScores {
    z: [Vec<f32>; NB],
    rr: [Vec<f32>; NB],
    pool: Vec<u32>,
    in_pool: Vec<bool>,
    len: f32,
}

impl Bases {
    fn user_scores(&self, history: History<'_>) -> UserScores {
        let n = self.ease.n_items();
        let mut z: [Vec<f32>; NB] = std::array::from_fn(|_| vec![0.0; n]);
        self.knn.score(history, &mut z[0]);
        self.ease.score(history, &mut z[1]);
        self.als.score(history, &mut z[2]);
        // Liked EASE from the liked part of the history; EASE from the disliked part (what
        // resembles what the customer rated low). Without ratings, the whole history is liked.
        let (mut liked_items, mut liked_w, mut low_items, mut low_w) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
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
        self.liked.score(History { items: &liked_items, weights: &liked_w, ratings: &[] }, &mut z[3]);
        self.ease.score(History { items: &low_items, weights: &low_w, ratings: &[] }, &mut z[4]);
        let mut rr: [Vec<f32>; NB] = std::array::from_fn(|_| vec![0.0; n]);
        let mut in_pool = vec![false; n];
        let mut pool = Vec::new();
        for (m, (scores, rr)) in z.iter_mut().zip(&mut rr).enumerate() {
            for (rank, s) in top_k(scores, self.candidates, history.items, None).into_iter().enumerate() {
                rr[s.item as usize] = 1.0 - (1.0 + rank as f32).ln() / (1.0 + self.candidates as f32).ln();
                // What resembles the disliked products is no candidate.
                if m != DISLIKED && !in_pool[s.item as usize] {
                    in_pool[s.item as usize] = true;
                    pool.push(s.item);
                }
            }
            standardize_user(scores, history.items);
        }
        UserScores { z, rr, pool, in_pool, len: (1.0 + history.len() as f32).ln() }
    }

    fn features(&self, s: &UserScores, i: usize) -> [f32; NF] {
        let mut x = [0.0; NF];
        for m in 0..NB {
            x[m] = s.z[m][i];
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
    /// The base models refitted on all the training data.
    fn refit_bases(
        &self,
        data: &Interactions,
        lambda: f32,
        timings: &mut Vec<(&'static str, Duration)>,
    ) -> Result<Bases, RecommendError> {
        let t = Instant::now();
        let knn = self.knn.fit(data)?;
        timings.push(("refit item-knn", t.elapsed()));
        let t = Instant::now();
        let ease = Ease::fit_lambda(data, lambda)?;
        timings.push(("refit ease", t.elapsed()));
        let t = Instant::now();
        let liked = Ease::fit_lambda(&data.liked(4.0), lambda)?;
        timings.push(("refit liked ease", t.elapsed()));
        let t = Instant::now();
        let als = self.als.fit(data)?;
        timings.push(("refit als", t.elapsed()));
        Ok(Bases { knn, ease, liked, als, items: ItemFeatures::new(data), candidates: self.candidates })
    }

    /// The candidates of the held-out customers with at least one relevant candidate.
    fn training_groups(&self, bases: &Bases, fit: &Interactions, held: &[HeldOut]) -> Vec<Group> {
        let test = TestSet::from_holdout(fit, held, 4.0);
        test.users
            .par_iter()
            .filter_map(|tu| {
                let u = tu.user.expect("held-out users are training users");
                let s = bases.user_scores(fit.history(u));
                let xs: Vec<[f32; NF]> = s.pool.iter().map(|&i| bases.features(&s, i as usize)).collect();
                let relevant: Vec<usize> = s
                    .pool
                    .iter()
                    .enumerate()
                    .filter(|(_, i)| tu.relevant.binary_search(i).is_ok())
                    .map(|(k, _)| k)
                    .collect();
                (!relevant.is_empty()).then_some(Group { xs, relevant })
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

        let t = Instant::now();
        let grid = self.ease.tune.clone().unwrap_or_else(|| vec![self.ease.lambda]);
        let (ease, tried) = Ease::tune(&fit, &held, &grid)?;
        report.ease_lambda = ease.lambda();
        report.ease_grid = tried;
        report.timings.push(("ease λ search on the fit part", t.elapsed()));

        let t = Instant::now();
        let knn = self.knn.fit(&fit)?;
        report.timings.push(("item-knn on the fit part", t.elapsed()));
        let t = Instant::now();
        let liked = Ease::fit_lambda(&fit.liked(4.0), ease.lambda())?;
        report.timings.push(("liked ease on the fit part", t.elapsed()));
        let t = Instant::now();
        let als = self.als.fit(&fit)?;
        report.timings.push(("als on the fit part", t.elapsed()));
        let bases = Bases { knn, ease, liked, als, items: ItemFeatures::new(&fit), candidates: self.candidates };

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

        let bases = self.refit_bases(data, report.ease_lambda, &mut report.timings)?;
        Ok(Hybrid { bases, weights, report })
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
        let s = self.bases.user_scores(history);
        // Without a positive signal every base model scores 0: no candidates, the blend's item
        // features (popularity, rating) order everything.
        let personal = history.weights.iter().any(|&w| w > 0.0);
        for (i, o) in out.iter_mut().enumerate() {
            let x = self.bases.features(&s, i);
            let blend: f32 = x.iter().zip(&self.weights).map(|(x, w)| x * w).sum();
            // Candidates first: the blend was learned to order them.
            *o = if personal && s.in_pool[i] { blend + CANDIDATE_BONUS } else { blend };
        }
    }
}
