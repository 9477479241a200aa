//! Disjoint LinUCB (Li, Chu, Langford and Schapire, 2010): one ridge regression of reward on
//! the context per arm, and the arm's score is its predicted reward plus an exploration bonus,
//! `θₐᵀx + α √(xᵀ Aₐ⁻¹ x)` with `Aₐ = λI + Σ x xᵀ` and `θₐ = Aₐ⁻¹ bₐ`, `bₐ = Σ r x`.
//!
//! Arms are any hashable key (a product id, a variant index). The context is a dense vector of
//! at most [`MAX_DIMENSION`] features that the caller encodes (one-hot skin type and channel,
//! hour of day as sine and cosine, UV index, a constant 1 for the intercept ...). An arm never
//! updated scores with its prior (`θ = 0`, `A = λI`), so new items get the largest bonus.
//! `Aₐ⁻¹` is kept directly and updated by Sherman–Morrison in `O(d²)` per observation; no
//! matrix is ever inverted.

use std::collections::HashMap;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

use super::BanditError;

/// The largest context dimension: the matrices are dense `d × d`.
pub const MAX_DIMENSION: usize = 32;

/// One arm's ridge regression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LinArm {
    /// `A⁻¹`, row-major `d × d`, symmetric.
    a_inv: Vec<f64>,
    /// `b = Σ r x`.
    b: Vec<f64>,
    /// `θ = A⁻¹ b`.
    theta: Vec<f64>,
    pulls: u64,
}

impl LinArm {
    fn prior(d: usize, lambda: f64) -> Self {
        let mut a_inv = vec![0.0; d * d];
        for i in 0..d {
            a_inv[i * d + i] = 1.0 / lambda;
        }
        Self { a_inv, b: vec![0.0; d], theta: vec![0.0; d], pulls: 0 }
    }

    /// `A⁻¹ x`.
    fn a_inv_x(&self, x: &[f64]) -> Vec<f64> {
        let d = x.len();
        (0..d).map(|i| (0..d).map(|j| self.a_inv[i * d + j] * x[j]).sum()).collect()
    }

    fn score(&self, x: &[f64], alpha: f64) -> f64 {
        let mean: f64 = self.theta.iter().zip(x).map(|(t, v)| t * v).sum();
        let ax = self.a_inv_x(x);
        let width: f64 = ax.iter().zip(x).map(|(a, v)| a * v).sum();
        mean + alpha * width.max(0.0).sqrt()
    }

    fn update(&mut self, x: &[f64], reward: f64) {
        let d = x.len();
        // Sherman–Morrison: (A + x xᵀ)⁻¹ = A⁻¹ - (A⁻¹x)(A⁻¹x)ᵀ / (1 + xᵀA⁻¹x), A⁻¹ symmetric.
        let ax = self.a_inv_x(x);
        let denom = 1.0 + ax.iter().zip(x).map(|(a, v)| a * v).sum::<f64>();
        for i in 0..d {
            for j in 0..d {
                self.a_inv[i * d + j] -= ax[i] * ax[j] / denom;
            }
        }
        for (bi, xi) in self.b.iter_mut().zip(x) {
            *bi += reward * xi;
        }
        self.theta = (0..d).map(|i| (0..d).map(|j| self.a_inv[i * d + j] * self.b[j]).sum()).collect();
        self.pulls += 1;
    }
}

/// A disjoint LinUCB contextual bandit over arms keyed by `K`.
#[derive(Debug, Clone)]
pub struct LinUcb<K> {
    dimension: usize,
    alpha: f64,
    lambda: f64,
    arms: HashMap<K, LinArm>,
}

impl<K: Eq + Hash + Clone> LinUcb<K> {
    /// A bandit over contexts of `dimension` features (1 to [`MAX_DIMENSION`]), exploration
    /// weight `alpha >= 0` (about 1; 0 is greedy) and ridge penalty `lambda > 0` (1 is usual).
    pub fn new(dimension: usize, alpha: f64, lambda: f64) -> Result<Self, BanditError> {
        if dimension == 0 || dimension > MAX_DIMENSION {
            return Err(BanditError::DimensionRange(dimension));
        }
        if !(alpha >= 0.0 && alpha.is_finite()) {
            return Err(BanditError::Parameter("alpha must be finite and non-negative"));
        }
        if !(lambda > 0.0 && lambda.is_finite()) {
            return Err(BanditError::Parameter("lambda must be finite and positive"));
        }
        Ok(Self { dimension, alpha, lambda, arms: HashMap::new() })
    }

    /// The context dimension.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    fn check(&self, context: &[f64]) -> Result<(), BanditError> {
        if context.len() != self.dimension {
            return Err(BanditError::Dimension { expected: self.dimension, got: context.len() });
        }
        if context.iter().any(|v| !v.is_finite()) {
            return Err(BanditError::NotFinite);
        }
        Ok(())
    }

    /// The upper confidence bound of `arm`'s reward in `context`.
    pub fn score(&self, arm: &K, context: &[f64]) -> Result<f64, BanditError> {
        self.check(context)?;
        Ok(match self.arms.get(arm) {
            Some(a) => a.score(context, self.alpha),
            None => LinArm::prior(self.dimension, self.lambda).score(context, self.alpha),
        })
    }

    /// The predicted reward `θᵀx` of `arm` in `context`, without the exploration bonus (0 for
    /// an arm never updated).
    pub fn expected_reward(&self, arm: &K, context: &[f64]) -> Result<f64, BanditError> {
        self.check(context)?;
        Ok(self.arms.get(arm).map_or(0.0, |a| a.theta.iter().zip(context).map(|(t, v)| t * v).sum()))
    }

    /// How many times `arm` was updated.
    pub fn pulls(&self, arm: &K) -> u64 {
        self.arms.get(arm).map_or(0, |a| a.pulls)
    }

    /// `candidates` with their scores, best first; ties keep the candidates' order (so the
    /// upstream ranking breaks them).
    pub fn rank(&self, context: &[f64], candidates: &[K]) -> Result<Vec<(K, f64)>, BanditError> {
        self.check(context)?;
        let prior = LinArm::prior(self.dimension, self.lambda);
        let mut scored: Vec<(K, f64)> = candidates
            .iter()
            .map(|k| (k.clone(), self.arms.get(k).unwrap_or(&prior).score(context, self.alpha)))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(scored)
    }

    /// The best of `candidates` in `context` (`None` when there are none).
    pub fn choose(&self, context: &[f64], candidates: &[K]) -> Result<Option<K>, BanditError> {
        Ok(self.rank(context, candidates)?.into_iter().next().map(|(k, _)| k))
    }

    /// Adds `reward` to an observation of `arm` in `context` already recorded with
    /// [`Self::update`] at reward 0 (a reward that arrives later, e.g. a click on an item
    /// counted when it was shown): `b += r x` and `θ` recomputed, `A` unchanged, so the pair is
    /// exactly one observation with reward `r`. An arm never updated is first given its prior.
    pub fn reward(&mut self, arm: K, context: &[f64], reward: f64) -> Result<(), BanditError> {
        self.check(context)?;
        if !reward.is_finite() {
            return Err(BanditError::NotFinite);
        }
        let (d, lambda) = (self.dimension, self.lambda);
        let a = self.arms.entry(arm).or_insert_with(|| LinArm::prior(d, lambda));
        for (bi, xi) in a.b.iter_mut().zip(context) {
            *bi += reward * xi;
        }
        a.theta = (0..d).map(|i| (0..d).map(|j| a.a_inv[i * d + j] * a.b[j]).sum()).collect();
        Ok(())
    }

    /// Records that `arm`, shown in `context`, earned `reward`.
    pub fn update(&mut self, arm: K, context: &[f64], reward: f64) -> Result<(), BanditError> {
        self.check(context)?;
        if !reward.is_finite() {
            return Err(BanditError::NotFinite);
        }
        let (d, lambda) = (self.dimension, self.lambda);
        self.arms.entry(arm).or_insert_with(|| LinArm::prior(d, lambda)).update(context, reward);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sherman_morrison_matches_the_ridge_solution() {
        // Two features, λ = 1, observations (x, r): ([1, 0], 1), ([1, 1], 0), ([0, 1], 2).
        // A = I + Σ x xᵀ = [[3, 1], [1, 3]], b = [1, 2]; θ = A⁻¹ b = [1/8, 5/8].
        let mut m = LinUcb::new(2, 0.0, 1.0).unwrap();
        m.update("a", &[1.0, 0.0], 1.0).unwrap();
        m.update("a", &[1.0, 1.0], 0.0).unwrap();
        m.update("a", &[0.0, 1.0], 2.0).unwrap();
        assert!((m.expected_reward(&"a", &[1.0, 0.0]).unwrap() - 0.125).abs() < 1e-12);
        assert!((m.expected_reward(&"a", &[0.0, 1.0]).unwrap() - 0.625).abs() < 1e-12);
        // The bonus: xᵀA⁻¹x for x = [1, 0] is 3/8.
        let mut bonus = LinUcb::new(2, 2.0, 1.0).unwrap();
        bonus.arms = m.arms.clone();
        let s = bonus.score(&"a", &[1.0, 0.0]).unwrap();
        assert!((s - (0.125 + 2.0 * (0.375f64).sqrt())).abs() < 1e-12);
        assert_eq!(m.pulls(&"a"), 3);
    }

    #[test]
    fn a_late_reward_equals_one_observation_with_that_reward() {
        let mut late = LinUcb::new(2, 1.0, 1.0).unwrap();
        let mut direct = late.clone();
        late.update("a", &[1.0, 0.5], 0.0).unwrap();
        late.reward("a", &[1.0, 0.5], 1.0).unwrap();
        direct.update("a", &[1.0, 0.5], 1.0).unwrap();
        for x in [[1.0, 0.0], [0.0, 1.0], [1.0, 0.5]] {
            let (l, d) = (late.score(&"a", &x).unwrap(), direct.score(&"a", &x).unwrap());
            assert!((l - d).abs() < 1e-12, "{l} vs {d}");
        }
        assert_eq!(late.pulls(&"a"), 1);
        assert!(late.reward("a", &[1.0], 1.0).is_err());
    }

    #[test]
    fn unseen_arms_get_the_largest_bonus() {
        let mut m = LinUcb::new(2, 1.0, 1.0).unwrap();
        for _ in 0..50 {
            m.update(1u32, &[1.0, 0.0], 0.2).unwrap();
        }
        let ranked = m.rank(&[1.0, 0.0], &[1, 2]).unwrap();
        assert_eq!(ranked[0].0, 2);
    }

    #[test]
    fn bad_contexts_are_refused() {
        assert_eq!(LinUcb::<u8>::new(33, 1.0, 1.0).unwrap_err(), BanditError::DimensionRange(33));
        assert!(LinUcb::<u8>::new(3, -1.0, 1.0).is_err());
        assert!(LinUcb::<u8>::new(3, 1.0, 0.0).is_err());
        let mut m = LinUcb::new(3, 1.0, 1.0).unwrap();
        assert_eq!(m.update(0u8, &[1.0], 1.0), Err(BanditError::Dimension { expected: 3, got: 1 }));
        assert_eq!(m.update(0u8, &[1.0, f64::NAN, 0.0], 1.0), Err(BanditError::NotFinite));
        assert_eq!(m.update(0u8, &[1.0, 0.0, 0.0], f64::INFINITY), Err(BanditError::NotFinite));
    }
}
