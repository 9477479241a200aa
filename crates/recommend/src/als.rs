//! Implicit ALS (Hu, Koren and Volinsky, 2008): user and item factors fitted to preferences
//! `p = 1` with confidence `c = 1 + α·w`, alternating between users and items. Each step solves
//! a user's (or item's) regularized least squares with a few conjugate-gradient steps from the
//! previous value (Takács et al., 2011), reading the shared Gram matrix `YᵀY` that `faer`
//! computes once per half-iteration.
//!
//! Serving folds a customer in from their history (an exact solve: `YᵀY + λI` computed at fit
//! time plus the history's terms, one small Cholesky factorization), so a customer the training never saw, or a history that changed
//! since, is scored like any other.

use faer::{Mat, Par};
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

/// `a · b` over 16 independent partial sums (the compiler vectorizes it; a single running sum
/// is one long dependency chain).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `a · b` in `f64` over 4 partial sums.
fn dot64(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Solves `A x = b` in place for a symmetric positive definite `A` (row-major `f × f`, only its
/// lower triangle read; overwritten by its Cholesky factor). `false` when `A` is not positive
/// definite.
fn cholesky_solve(a: &mut [f64], b: &mut [f64], f: usize) -> bool {
    for j in 0..f {
        let (done, rest) = a.split_at_mut(j * f);
        let row_j = &mut rest[..f];
        // L[j][k] for k < j, then the diagonal.
        for k in 0..j {
            let row_k = &done[k * f..k * f + k + 1];
            let v = (row_j[k] - dot64(&row_j[..k], &row_k[..k])) / row_k[k];
            row_j[k] = v;
        }
        let d = row_j[j] - dot64(&row_j[..j], &row_j[..j]);
        if d.is_nan() || d <= 0.0 {
            return false;
        }
        row_j[j] = d.sqrt();
    }
    // L y = b, then Lᵀ x = y.
    for r in 0..f {
        let row = &a[r * f..r * f + r + 1];
        b[r] = (b[r] - dot64(&row[..r], &b[..r])) / row[r];
    }
    for r in (0..f).rev() {
        let mut v = b[r];
        for c in r + 1..f {
            v -= a[c * f + r] * b[c];
        }
        b[r] = v / a[r * f + r];
    }
    true
}

thread_local! {
    /// Fold-in's `A` and `b`, reused between calls on a thread.
    static FOLD: std::cell::RefCell<(Vec<f64>, Vec<f64>, Vec<f64>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
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
    /// The factors of a customer with this history: the exact least-squares solution of
    /// `(YᵀY + λI + Σ (c−1) y yᵀ) x = Σ c y` (`YᵀY + λI` is computed at fit time; only the
    /// history's rank-one terms and one 64×64 Cholesky factorization are per customer). A history
    /// without a positive signal folds in to 0 without any factorization.
    pub fn fold_in(&self, history: History<'_>) -> Vec<f32> {
        let mut x = vec![0.0f32; self.factors];
        self.fold_in_into(history, &mut x);
        x
    }

    /// [`Self::fold_in`] into `out` (`factors` long).
    fn fold_in_into(&self, history: History<'_>, out: &mut [f32]) {
        let f = self.factors;
        out.fill(0.0);
        if !history.weights.iter().any(|&w| w > 0.0) {
            return;
        }
        let mut solve = |(a, b, y): &mut (Vec<f64>, Vec<f64>, Vec<f64>)| {
            a.clear();
            a.extend_from_slice(&self.gram);
            b.clear();
            b.resize(f, 0.0);
            y.resize(f, 0.0);
            for (&j, &w) in history.items.iter().zip(history.weights) {
                if w <= 0.0 {
                    continue;
                }
                let item = &self.items[j as usize * f..(j as usize + 1) * f];
                y.iter_mut().zip(item).for_each(|(d, &s)| *d = f64::from(s));
                let c = f64::from(1.0 + self.alpha * w);
                b.iter_mut().zip(y.iter()).for_each(|(b, &yr)| *b += c * yr);
                // The lower triangle is all the factorization reads.
                for r in 0..f {
                    let k = (c - 1.0) * y[r];
                    a[r * f..r * f + r + 1].iter_mut().zip(&y[..=r]).for_each(|(a, &ys)| *a += k * ys);
                }
            }
            // Only a regularization of 0 with too few items fails; no preference then.
            if cholesky_solve(a, b, f) {
                out.iter_mut().zip(b.iter()).for_each(|(o, &v)| *o = v as f32);
            }
        };
        FOLD.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => solve(&mut buf),
            Err(_) => solve(&mut (Vec::new(), Vec::new(), Vec::new())),
        });
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
        let mut buf = [0.0f32; 128];
        let mut heap = Vec::new();
        let x: &mut [f32] = if self.factors <= buf.len() {
            &mut buf[..self.factors]
        } else {
            heap.resize(self.factors, 0.0);
            &mut heap
        };
        self.fold_in_into(history, x);
        if x.iter().all(|&v| v == 0.0) {
            out.fill(0.0);
            return;
        }
        for (o, y) in out.iter_mut().zip(self.items.chunks_exact(self.factors)) {
            *o = dot(x, y);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Side;
    use faer::linalg::solvers::Solve;

    /// The fold-in as `faer` computes it (the previous implementation).
    fn reference(als: &Als, history: History<'_>) -> Vec<f32> {
        let f = als.factors;
        let mut a = Mat::<f64>::from_fn(f, f, |r, c| als.gram[r * f + c]);
        let mut b = Mat::<f64>::zeros(f, 1);
        for (&j, &w) in history.items.iter().zip(history.weights) {
            if w <= 0.0 {
                continue;
            }
            let y = &als.items[j as usize * f..(j as usize + 1) * f];
            let c = f64::from(1.0 + als.alpha * w);
            for r in 0..f {
                b[(r, 0)] += c * f64::from(y[r]);
                for s in 0..f {
                    a[(r, s)] += (c - 1.0) * f64::from(y[r]) * f64::from(y[s]);
                }
            }
        }
        let llt = a.llt(Side::Lower).expect("positive definite");
        llt.solve_in_place(b.as_mut());
        (0..f).map(|r| b[(r, 0)] as f32).collect()
    }

    #[test]
    fn fold_in_solves_the_same_system_as_faer() {
        let f = 12;
        let n = 30;
        let mut rng = SplitMix64::new(7);
        let items: Vec<f32> = (0..n * f).map(|_| rng.centered()).collect();
        let als = Als { factors: f, gram: gram(&items, n, f, 0.5), items, regularization: 0.5, alpha: 10.0 };
        let hist = [1u32, 4, 5, 9, 17, 29];
        let weights = [1.0f32, 0.5, -1.0, 2.0, 1.0, 0.25];
        let h = History { items: &hist, weights: &weights, ratings: &[] };
        let (got, want) = (als.fold_in(h), reference(&als, h));
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{got:?} vs {want:?}");
        }
        assert!(want.iter().any(|&w| w.abs() > 1e-3), "a history with positive signals has a preference");
        // No positive signal: no preference, and scores of 0.
        let neg = [-1.0f32; 6];
        assert!(als.fold_in(History { items: &hist, weights: &neg, ratings: &[] }).iter().all(|&v| v == 0.0));
        let mut out = vec![1.0; n];
        als.score(History::EMPTY, &mut out);
        assert!(out.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn dot_adds_up_every_product() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.01).collect();
        let want: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
        assert!((f64::from(dot(&a, &b)) - want).abs() < 1e-3);
        let a64: Vec<f64> = a.iter().map(|&x| f64::from(x)).collect();
        let b64: Vec<f64> = b.iter().map(|&x| f64::from(x)).collect();
        assert!((dot64(&a64, &b64) - want).abs() < 1e-9);
    }
}
