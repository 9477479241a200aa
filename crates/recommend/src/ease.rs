//! EASE (Steck, 2019): a linear item-item model with a closed form.
//! `P = (XᵀX + λI)⁻¹`, `B = I − P·diag(1/diag(P))` (so `diag(B) = 0`); a customer's scores
//! are their history row times `B`. The inverse comes from a Cholesky factorization in `faer`.
//! λ is chosen on a part of the training data held out for it ([`EaseConfig::tune`]), never on
//! the data the model is evaluated on.

use faer::linalg::solvers::DenseSolveCore;
use faer::{Mat, Side};

use crate::RecommendError;
use crate::data::{HeldOut, History, Interactions};
use crate::eval::{TestSet, evaluate};
use crate::model::{Fit, Model};

/// Settings of [`Ease`].
#[derive(Debug, Clone)]
pub struct EaseConfig {
    /// The L2 penalty λ when not tuned.
    pub lambda: f32,
    /// When set, λ is chosen from these values by NDCG@10 on a held-out part of the training
    /// data, then the model is refitted on all of it.
    pub tune: Option<Vec<f32>>,
    /// The part of each history held out for tuning.
    pub holdout_fraction: f64,
    pub seed: u64,
}

impl Default for EaseConfig {
    fn default() -> Self {
        EaseConfig { lambda: 50.0, tune: Some(vec![25.0, 50.0, 100.0]), holdout_fraction: 0.2, seed: 14 }
    }
}

/// The item-item weights `B`, row by row.
#[derive(Debug, Clone)]
pub struct Ease {
    n: usize,
    /// Row-major `n × n`: row `j` is what having item `j` adds to every item's score.
    b: Vec<f32>,
    lambda: f32,
}

impl Ease {
    /// The λ it was fitted with.
    pub fn lambda(&self) -> f32 {
        self.lambda
    }

    /// `B[from, to]`.
    pub fn weight(&self, from: u32, to: u32) -> f32 {
        self.b[from as usize * self.n + to as usize]
    }

    /// Fits with a given λ.
    pub fn fit_lambda(data: &Interactions, lambda: f32) -> Result<Ease, RecommendError> {
        let n = data.n_items();
        let mut g = Mat::<f64>::zeros(n, n);
        for u in 0..data.n_users() as u32 {
            let h = data.history(u);
            for (&a, &wa) in h.items.iter().zip(h.weights) {
                if wa <= 0.0 {
                    continue;
                }
                for (&b, &wb) in h.items.iter().zip(h.weights) {
                    if wb > 0.0 {
                        g[(a as usize, b as usize)] += f64::from(wa) * f64::from(wb);
                    }
                }
            }
        }
        for i in 0..n {
            g[(i, i)] += f64::from(lambda);
        }
        let p = g
            .llt(Side::Lower)
            .map_err(|e| {
                RecommendError::Numeric(format!("EASE: XᵀX + λI is not positive definite ({e:?}); use λ > 0"))
            })?
            .inverse();
        drop(g);
        let mut b = vec![0.0f32; n * n];
        // B[j, i] = −P[j, i] / P[i, i] (j ≠ i); P is symmetric, so row j of B is column j of P
        // scaled by the diagonal.
        for j in 0..n {
            let row = &mut b[j * n..(j + 1) * n];
            for (i, slot) in row.iter_mut().enumerate() {
                if i != j {
                    *slot = (-p[(i, j)] / p[(i, i)]) as f32;
                }
            }
        }
        Ok(Ease { n, b, lambda })
    }

    /// Chooses λ from `grid` by NDCG@10 on `held` after fitting on `fit`; returns the best
    /// model (fitted on `fit`) and every λ's NDCG@10.
    pub fn tune(fit: &Interactions, held: &[HeldOut], grid: &[f32]) -> Result<(Ease, Vec<(f32, f64)>), RecommendError> {
        let test = TestSet::from_holdout(fit, held, 4.0);
        let mut best: Option<(Ease, f64)> = None;
        let mut tried = Vec::new();
        for &lambda in grid {
            let model = Ease::fit_lambda(fit, lambda)?;
            let ndcg = evaluate(&model, fit, &test, 10, None).ndcg;
            tried.push((lambda, ndcg));
            if best.as_ref().is_none_or(|(_, b)| ndcg > *b) {
                best = Some((model, ndcg));
            }
        }
        let (model, _) =
            best.ok_or_else(|| RecommendError::BadOption { option: "EASE λ grid", reason: "empty".into() })?;
        Ok((model, tried))
    }
}

impl Fit for EaseConfig {
    type Model = Ease;

    fn fit(&self, data: &Interactions) -> Result<Ease, RecommendError> {
        match &self.tune {
            Some(grid) if grid.len() > 1 => {
                let (fit, held) = data.holdout(self.holdout_fraction, 5, self.seed);
                let (best, _) = Ease::tune(&fit, &held, grid)?;
                Ease::fit_lambda(data, best.lambda)
            }
            Some(grid) => Ease::fit_lambda(data, grid.first().copied().unwrap_or(self.lambda)),
            None => Ease::fit_lambda(data, self.lambda),
        }
    }
}

impl Model for Ease {
    fn name(&self) -> &'static str {
        "ease"
    }

    fn n_items(&self) -> usize {
        self.n
    }

    fn score(&self, history: History<'_>, out: &mut [f32]) {
        out.fill(0.0);
        for (&j, &w) in history.items.iter().zip(history.weights) {
            if w <= 0.0 {
                continue;
            }
            let row = &self.b[j as usize * self.n..(j as usize + 1) * self.n];
            for (o, &b) in out.iter_mut().zip(row) {
                *o += w * b;
            }
        }
    }
}
