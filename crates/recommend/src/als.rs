//! Implicit ALS (Hu, Koren and Volinsky, 2008): user and item factors fitted to preferences
//! `p = 1` with confidence `c = 1 + α·w`, alternating between users and items. Each step solves
//! a user's (or item's) regularized least squares with a few conjugate-gradient steps from the
//! previous value (Takács et al., 2011), reading the shared Gram matrix `YᵀY` that `faer`
//! computes once per half-iteration.
//!
//! Serving folds a customer in from their history (an exact solve with `faer`'s Cholesky
//! against the item factors), so a customer the training never saw, or a history that changed
//! since, is scored like any other.

use faer::linalg::solvers::Solve;
use faer::{Mat, Par, Side};
use rayon::prelude::*;

use crate::RecommendError;
use crate::data::{History, Interactions, SplitMix64};
use crate::model::{Fit, Model};

/// Settings of [`Als`].
#[derive(Debug, Clone)]
pub struct AlsConfig {
    pub factors: usize,
    /// L2 penalty on the factors.
    pub regularization: f32,
    /// Confidence per unit of signal weight.
    pub alpha: f32,
    pub iterations: usize,
    /// Conjugate-gradient steps per user or item and iteration.
    pub cg_steps: usize,
    pub seed: u64,
}

impl Default for AlsConfig {
    fn default() -> Self {
        AlsConfig { factors: 64, regularization: 5.0, alpha: 10.0, iterations: 8, cg_steps: 3, seed: 14 }
    }
}

/// The item factors (row-major `n_items × factors`) and what fold-in needs.
#[derive(Debug, Clone)]
pub struct Als {
    factors: usize,
    items: Vec<f32>,
    /// `YᵀY + λI` (row-major `factors × factors`).
    gram: Vec<f64>,
    regularization: f32,
    alpha: f32,
}

/// `gram = XᵀX + reg·I` for `x` row-major `n × f`, computed by `faer`.
fn gram(x: &[f32], n: usize, f: usize, reg: f32) -> Vec<f64> {
    let m = Mat::<f64>::from_fn(n, f, |r, c| f64::from(x[r * f + c]));
    let mut g = Mat::<f64>::zeros(f, f);
    faer::linalg::matmul::matmul(g.as_mut(), faer::Accum::Replace, m.transpose(), m.as_ref(), 1.0, Par::rayon(0));
    let mut out = vec![0.0; f * f];
    for r in 0..f {
        for c in 0..f {
            out[r * f + c] = g[(r, c)] + if r == c { f64::from(reg) } else { 0.0 };
        }
    }
    out
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// What one half-iteration's conjugate-gradient updates share: the other side's factors and
/// their Gram matrix.
struct Cg<'a> {
    /// `YᵀY + λI` in `f32`, row-major.
    gram: Vec<f32>,
    other: &'a [f32],
    f: usize,
    alpha: f32,
    steps: usize,
}

impl Cg<'_> {
    /// One row's update: `x ← argmin` for `(G + Σ (c−1) y yᵀ) x = Σ c y`, from the current `x`.
    fn update(&self, x: &mut [f32], cols: &[u32], weights: &[f32]) {
        let Cg { gram, other, f, alpha, steps } = self;
        let (f, alpha) = (*f, *alpha);
        let gx = |v: &[f32], out: &mut [f32]| {
            for r in 0..f {
                out[r] = dot(&gram[r * f..(r + 1) * f], v);
            }
        };
        let mut r = vec![0.0f32; f];
        gx(x, &mut r);
        r.iter_mut().for_each(|v| *v = -*v);
        for (&j, &w) in cols.iter().zip(weights) {
            if w <= 0.0 {
                continue;
            }
            let y = &other[j as usize * f..(j as usize + 1) * f];
            let c = 1.0 + alpha * w;
            let k = c - (c - 1.0) * dot(y, x);
            r.iter_mut().zip(y).for_each(|(r, y)| *r += k * y);
        }
        let mut p = r.clone();
        let mut rs_old = dot(&r, &r);
        let mut ap = vec![0.0f32; f];
        for _ in 0..*steps {
            if rs_old < 1e-20 {
                break;
            }
            gx(&p, &mut ap);
            for (&j, &w) in cols.iter().zip(weights) {
                if w <= 0.0 {
                    continue;
                }
                let y = &other[j as usize * f..(j as usize + 1) * f];
                let k = alpha * w * dot(y, &p);
                ap.iter_mut().zip(y).for_each(|(a, y)| *a += k * y);
            }
            let a = rs_old / dot(&p, &ap);
            x.iter_mut().zip(&p).for_each(|(x, p)| *x += a * p);
            r.iter_mut().zip(&ap).for_each(|(r, ap)| *r -= a * ap);
            let rs_new = dot(&r, &r);
            let beta = rs_new / rs_old;
            p.iter_mut().zip(&r).for_each(|(p, r)| *p = r + beta * *p);
            rs_old = rs_new;
        }
    }
}

impl Fit for AlsConfig {
    type Model = Als;

    fn fit(&self, data: &Interactions) -> Result<Als, RecommendError> {
        let f = self.factors;
        if f == 0 || self.iterations == 0 {
            return Err(RecommendError::BadOption {
                option: "ALS",
                reason: "factors and iterations must be at least 1".into(),
            });
        }
        let (nu, ni) = (data.n_users(), data.n_items());
        let mut rng = SplitMix64::new(self.seed);
        let scale = 0.1 / (f as f32).sqrt();
        let mut users: Vec<f32> = (0..nu * f).map(|_| rng.centered() * scale).collect();
        let mut items: Vec<f32> = (0..ni * f).map(|_| rng.centered() * scale).collect();
        for _ in 0..self.iterations {
            let to_f32 = |g: Vec<f64>| g.into_iter().map(|v| v as f32).collect();
            let cg = Cg {
                gram: to_f32(gram(&items, ni, f, self.regularization)),
                other: &items,
                f,
                alpha: self.alpha,
                steps: self.cg_steps,
            };
            users.par_chunks_mut(f).enumerate().for_each(|(u, x)| {
                let h = data.history(u as u32);
                cg.update(x, h.items, h.weights);
            });
            let cg = Cg {
                gram: to_f32(gram(&users, nu, f, self.regularization)),
                other: &users,
                f,
                alpha: self.alpha,
                steps: self.cg_steps,
            };
            items.par_chunks_mut(f).enumerate().for_each(|(i, y)| {
                let (us, ws) = data.item_users(i as u32);
                cg.update(y, us, ws);
            });
        }
        let gram = gram(&items, ni, f, self.regularization);
        Ok(Als { factors: f, items, gram, regularization: self.regularization, alpha: self.alpha })
    }
}

impl Als {
    /// The factors of a customer with this history: the exact least-squares solution.
    pub fn fold_in(&self, history: History<'_>) -> Vec<f32> {
        let f = self.factors;
        let mut a = Mat::<f64>::from_fn(f, f, |r, c| self.gram[r * f + c]);
        let mut b = Mat::<f64>::zeros(f, 1);
        for (&j, &w) in history.items.iter().zip(history.weights) {
            if w <= 0.0 {
                continue;
            }
            let y = &self.items[j as usize * f..(j as usize + 1) * f];
            let c = f64::from(1.0 + self.alpha * w);
            for r in 0..f {
                let yr = f64::from(y[r]);
                b[(r, 0)] += c * yr;
                for s in 0..f {
                    a[(r, s)] += (c - 1.0) * yr * f64::from(y[s]);
                }
            }
        }
        match a.llt(Side::Lower) {
            Ok(llt) => {
                llt.solve_in_place(b.as_mut());
                (0..f).map(|r| b[(r, 0)] as f32).collect()
            }
            // Only reachable with a regularization of 0 and too few items; no preference then.
            Err(_) => vec![0.0; f],
        }
    }

    /// The L2 penalty it was fitted with.
    pub fn regularization(&self) -> f32 {
        self.regularization
    }
}

impl Model for Als {
    fn name(&self) -> &'static str {
        "als"
    }

    fn n_items(&self) -> usize {
        self.items.len() / self.factors
    }

    fn score(&self, history: History<'_>, out: &mut [f32]) {
        let x = self.fold_in(history);
        for (o, y) in out.iter_mut().zip(self.items.chunks_exact(self.factors)) {
            *o = dot(&x, y);
        }
    }
}
