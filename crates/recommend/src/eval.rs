//! Offline evaluation, by the protocol of issue 14: every (user, product) pair in training is an
//! interaction; the relevant items are the held-out pairs rated 4 or more; each model ranks every
//! product the user has not interacted with. Per model: NDCG@k, Recall@k, HitRate@k, catalog
//! coverage, and safety violations when a safety check is given.
//!
//! Definitions (binary gains): DCG@k = Σ over hits at rank r (1-based) of 1/log2(r + 1); NDCG@k
//! divides by the DCG of the ideal list, min(k, |relevant|) hits on top. Recall@k = hits /
//! |relevant|. HitRate@k = share of users with at least one hit. Coverage = distinct items in all
//! the top-k lists / items in the training catalog. Relevant items the training data never saw
//! stay in the denominators: no model can rank them, and the metric says so.

use std::collections::HashMap;
use std::fmt;

use rayon::prelude::*;

use crate::data::{HeldOut, History, Interactions, RatingRow};
use crate::model::Model;

/// One test user: their relevant items.
#[derive(Debug, Clone)]
pub struct TestUser {
    /// The external id.
    pub id: String,
    /// The training index, if training knows the user (else an empty history).
    pub user: Option<u32>,
    /// Relevant items the training data knows (ascending indices).
    pub relevant: Vec<u32>,
    /// Relevant items the training data never saw (counted in the denominators).
    pub unknown_relevant: usize,
}

/// The users to evaluate: those with at least one relevant held-out pair.
#[derive(Debug, Clone, Default)]
pub struct TestSet {
    pub users: Vec<TestUser>,
    /// Test rows that were relevant (rating ≥ the threshold).
    pub relevant_rows: usize,
    /// Test rows that were not.
    pub other_rows: usize,
}

impl TestSet {
    /// From test-file rows: relevant when `rating >= min_rating`.
    pub fn from_rows(train: &Interactions, rows: &[RatingRow], min_rating: f32) -> TestSet {
        let mut by_user: HashMap<&str, (Vec<u32>, usize)> = HashMap::new();
        let mut order = Vec::new();
        let (mut relevant_rows, mut other_rows) = (0, 0);
        for r in rows {
            if r.rating < min_rating {
                other_rows += 1;
                continue;
            }
            relevant_rows += 1;
            let e = by_user.entry(&r.user).or_insert_with(|| {
                order.push(r.user.as_str());
                (Vec::new(), 0)
            });
            match train.items().get(&r.item) {
                Some(i) => e.0.push(i),
                None => e.1 += 1,
            }
        }
        let users = order
            .into_iter()
            .map(|id| {
                let (mut relevant, unknown) = by_user.remove(id).unwrap_or_default();
                relevant.sort_unstable();
                relevant.dedup();
                TestUser { id: id.to_owned(), user: train.users().get(id), relevant, unknown_relevant: unknown }
            })
            .collect();
        TestSet { users, relevant_rows, other_rows }
    }

    /// From pairs held out of the training data ([`Interactions::holdout`]): relevant when rated
    /// `>= min_rating`, or, without a rating, when the signal was positive.
    pub fn from_holdout(fit: &Interactions, held: &[HeldOut], min_rating: f32) -> TestSet {
        let mut users: Vec<TestUser> = Vec::new();
        let (mut relevant_rows, mut other_rows) = (0, 0);
        for h in held {
            let relevant = if h.rating.is_nan() { h.weight > 0.0 } else { h.rating >= min_rating };
            if !relevant {
                other_rows += 1;
                continue;
            }
            relevant_rows += 1;
            if users.last().is_none_or(|u| u.user != Some(h.user)) {
                users.push(TestUser {
                    id: fit.users().id(h.user).to_owned(),
                    user: Some(h.user),
                    relevant: Vec::new(),
                    unknown_relevant: 0,
                });
            }
            users.last_mut().expect("pushed").relevant.push(h.item);
        }
        for u in &mut users {
            u.relevant.sort_unstable();
            u.relevant.dedup();
        }
        TestSet { users, relevant_rows, other_rows }
    }
}

/// Says whether recommending a product (external id) to a user (external id) breaks a safety
/// rule: `true` is a violation.
pub type SafetyCheck<'a> = &'a (dyn Fn(&str, &str) -> bool + Sync);

/// How many recommendations a safety check looked at and how many broke a rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SafetyCount {
    pub checks: u64,
    pub violations: u64,
}

impl fmt::Display for SafetyCount {
    /// `n/a` when nothing was checked (no safety check was given).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.checks == 0 { f.write_str("n/a") } else { write!(f, "{}/{}", self.violations, self.checks) }
    }
}

/// A model's figures on a test set.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Metrics {
    pub users: usize,
    pub k: usize,
    pub ndcg: f64,
    pub recall: f64,
    pub hit_rate: f64,
    pub coverage: f64,
    pub safety: SafetyCount,
}

/// NDCG, recall and hit (0 or 1) of one ranked list against `relevant` (ascending), with
/// `unknown` more relevant items that could not be ranked.
pub fn ranking_metrics(ranked: &[u32], relevant: &[u32], unknown: usize, k: usize) -> (f64, f64, f64) {
    let total = relevant.len() + unknown;
    if total == 0 {
        return (0.0, 0.0, 0.0);
    }
    let mut dcg = 0.0;
    let mut hits = 0usize;
    for (r, item) in ranked.iter().take(k).enumerate() {
        if relevant.binary_search(item).is_ok() {
            dcg += 1.0 / ((r + 2) as f64).log2();
            hits += 1;
        }
    }
    let idcg: f64 = (0..total.min(k)).map(|r| 1.0 / ((r + 2) as f64).log2()).sum();
    (dcg / idcg, hits as f64 / total as f64, if hits > 0 { 1.0 } else { 0.0 })
}

/// Evaluates `model` trained on `train` on `test` at cut-off `k`.
pub fn evaluate(
    model: &dyn Model,
    train: &Interactions,
    test: &TestSet,
    k: usize,
    safety: Option<SafetyCheck<'_>>,
) -> Metrics {
    let n = model.n_items();
    struct Acc {
        ndcg: f64,
        recall: f64,
        hits: f64,
        seen: Vec<bool>,
        safety: SafetyCount,
    }
    let empty = || Acc { ndcg: 0.0, recall: 0.0, hits: 0.0, seen: vec![false; n], safety: SafetyCount::default() };
    let acc = test
        .users
        .par_iter()
        .fold(
            || (empty(), vec![0.0f32; n]),
            |(mut acc, mut scores), tu| {
                let history = tu.user.map_or(History::EMPTY, |u| train.history(u));
                model.score(history, &mut scores);
                let top = crate::model::top_k(&scores, k, history.items, None);
                let ranked: Vec<u32> = top.iter().map(|s| s.item).collect();
                let (ndcg, recall, hit) = ranking_metrics(&ranked, &tu.relevant, tu.unknown_relevant, k);
                acc.ndcg += ndcg;
                acc.recall += recall;
                acc.hits += hit;
                for &i in &ranked {
                    acc.seen[i as usize] = true;
                    if let Some(check) = safety {
                        acc.safety.checks += 1;
                        if check(&tu.id, train.items().id(i)) {
                            acc.safety.violations += 1;
                        }
                    }
                }
                (acc, scores)
            },
        )
        .map(|(acc, _)| acc)
        .reduce(empty, |mut a, b| {
            a.ndcg += b.ndcg;
            a.recall += b.recall;
            a.hits += b.hits;
            a.seen.iter_mut().zip(&b.seen).for_each(|(x, y)| *x |= y);
            a.safety.checks += b.safety.checks;
            a.safety.violations += b.safety.violations;
            a
        });
    let users = test.users.len();
    let per = |x: f64| if users == 0 { 0.0 } else { x / users as f64 };
    Metrics {
        users,
        k,
        ndcg: per(acc.ndcg),
        recall: per(acc.recall),
        hit_rate: per(acc.hits),
        coverage: if n == 0 { 0.0 } else { acc.seen.iter().filter(|&&s| s).count() as f64 / n as f64 },
        safety: acc.safety,
    }
}

/// One model's line in a comparison.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub model: &'static str,
    pub metrics: Metrics,
    pub fit_time: std::time::Duration,
    pub eval_time: std::time::Duration,
}

/// The comparison as a Markdown table (the form docs/benchmarks.md keeps).
pub fn table(rows: &[Comparison]) -> String {
    use std::fmt::Write;
    let k = rows.first().map_or(10, |r| r.metrics.k);
    let mut s = format!(
        "| model | NDCG@{k} | Recall@{k} | HitRate@{k} | coverage | safety violations | fit time | eval time |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for r in rows {
        let m = &r.metrics;
        let _ = writeln!(
            s,
            "| {} | {:.4} | {:.4} | {:.4} | {:.3} | {} | {:.2} s | {:.2} s |",
            r.model,
            m.ndcg,
            m.recall,
            m.hit_rate,
            m.coverage,
            m.safety,
            r.fit_time.as_secs_f64(),
            r.eval_time.as_secs_f64()
        );
    }
    s
}
