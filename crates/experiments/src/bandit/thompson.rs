//! Thompson sampling over a placement's variants with a binary reward (clicked, added to cart,
//! converted).
//!
//! Each arm's success rate has a Beta posterior, `Beta(α₀ + successes, β₀ + failures)` (a
//! uniform `Beta(1, 1)` prior by default). Until every arm has [`ThompsonSampling::min_trials`]
//! trials the bandit explores in round robin (the arm with the fewest trials, lowest index
//! first); after that, [`ThompsonSampling::choose`] draws from each posterior and plays the
//! largest draw.
//!
//! A service that assigns many requests between updates does not sample per request: it turns
//! the posteriors into traffic weights, the probability each arm is best
//! ([`ThompsonSampling::probability_best`], Monte Carlo), and splits traffic with them (for
//! instance as the weights of a [`crate::growthbook::Experiment`]). [`BanditWeights`] keeps
//! those weights and recomputes them at most once per interval, whatever the request rate, and
//! never drops an arm below a floor.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::BanditError;
use super::sampling::beta;

/// What one arm has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArmCounts {
    /// Times the arm was played.
    pub trials: u64,
    /// Times it was rewarded.
    pub successes: u64,
}

/// Thompson sampling with Beta posteriors and a minimum sample per arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThompsonSampling {
    arms: Vec<ArmCounts>,
    prior_alpha: f64,
    prior_beta: f64,
    min_trials: u64,
}

impl ThompsonSampling {
    /// A bandit over `arms` arms (at least 1) with a `Beta(1, 1)` prior, exploring in round
    /// robin until each arm has `min_trials` trials.
    pub fn new(arms: usize, min_trials: u64) -> Result<Self, BanditError> {
        if arms == 0 {
            return Err(BanditError::Parameter("a bandit needs at least one arm"));
        }
        Ok(Self { arms: vec![ArmCounts::default(); arms], prior_alpha: 1.0, prior_beta: 1.0, min_trials })
    }

    /// The same bandit with a `Beta(alpha, beta)` prior on every arm (both positive), e.g. a
    /// prior centred on the placement's historical rate.
    pub fn with_prior(mut self, alpha: f64, beta: f64) -> Result<Self, BanditError> {
        if !(alpha > 0.0 && beta > 0.0 && alpha.is_finite() && beta.is_finite()) {
            return Err(BanditError::Parameter("Beta prior parameters must be positive"));
        }
        self.prior_alpha = alpha;
        self.prior_beta = beta;
        Ok(self)
    }

    /// The counts per arm.
    pub fn arms(&self) -> &[ArmCounts] {
        &self.arms
    }

    /// The minimum trials per arm before the bandit exploits.
    pub fn min_trials(&self) -> u64 {
        self.min_trials
    }

    /// Whether some arm still has fewer than [`Self::min_trials`] trials.
    pub fn in_warmup(&self) -> bool {
        self.arms.iter().any(|a| a.trials < self.min_trials)
    }

    /// The posterior `(α, β)` of `arm`.
    pub fn posterior(&self, arm: usize) -> Result<(f64, f64), BanditError> {
        let a = self.arm(arm)?;
        Ok((self.prior_alpha + a.successes as f64, self.prior_beta + a.trials.saturating_sub(a.successes) as f64))
    }

    fn arm(&self, arm: usize) -> Result<&ArmCounts, BanditError> {
        self.arms.get(arm).ok_or(BanditError::UnknownArm { arm, arms: self.arms.len() })
    }

    /// The arm to play next: during warm-up the arm with the fewest trials (lowest index on a
    /// tie); afterwards the arm with the largest posterior draw.
    pub fn choose<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        if self.in_warmup() {
            return self.arms.iter().enumerate().min_by_key(|(_, a)| a.trials).map_or(0, |(i, _)| i);
        }
        self.draw_best(rng)
    }

    fn draw_best<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        let mut best = (0, f64::NEG_INFINITY);
        for (i, a) in self.arms.iter().enumerate() {
            let draw = beta(
                self.prior_alpha + a.successes as f64,
                self.prior_beta + a.trials.saturating_sub(a.successes) as f64,
                rng,
            );
            if draw > best.1 {
                best = (i, draw);
            }
        }
        best.0
    }

    /// Records one play of `arm` and whether it was rewarded.
    pub fn update(&mut self, arm: usize, rewarded: bool) -> Result<(), BanditError> {
        self.record(arm, 1, u64::from(rewarded))
    }

    /// Records `trials` plays of `arm` of which `successes` were rewarded (a batch of outcomes,
    /// e.g. from the event stream).
    pub fn record(&mut self, arm: usize, trials: u64, successes: u64) -> Result<(), BanditError> {
        if successes > trials {
            return Err(BanditError::Parameter("successes cannot exceed trials"));
        }
        let arms = self.arms.len();
        let a = self.arms.get_mut(arm).ok_or(BanditError::UnknownArm { arm, arms })?;
        a.trials += trials;
        a.successes += successes;
        Ok(())
    }

    /// The probability that each arm has the highest success rate, estimated from `draws`
    /// joint posterior draws (at least 1); sums to 1. During warm-up the weights are equal, so
    /// traffic stays evenly split until every arm has its minimum sample.
    pub fn probability_best<R: Rng + ?Sized>(&self, draws: usize, rng: &mut R) -> Vec<f64> {
        let k = self.arms.len();
        if self.in_warmup() || draws == 0 {
            return vec![1.0 / k as f64; k];
        }
        let mut wins = vec![0u64; k];
        for _ in 0..draws {
            wins[self.draw_best(rng)] += 1;
        }
        wins.iter().map(|&w| w as f64 / draws as f64).collect()
    }
}

/// How [`BanditWeights`] refreshes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WeightsConfig {
    /// The shortest time between two recomputations.
    pub min_interval: Duration,
    /// Monte Carlo draws per recomputation.
    pub draws: usize,
    /// The least weight any arm keeps (so every arm keeps being measured), in `[0, 1/arms]`.
    pub floor: f64,
}

impl Default for WeightsConfig {
    /// Every 5 minutes, 10,000 draws, a floor of 1%.
    fn default() -> Self {
        Self { min_interval: Duration::from_secs(300), draws: 10_000, floor: 0.01 }
    }
}

/// Traffic weights derived from a [`ThompsonSampling`] bandit, refreshed at a bounded
/// frequency. Time is whatever monotonic clock the caller uses, passed in as a [`Duration`]
/// since its origin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BanditWeights {
    config: WeightsConfig,
    weights: Vec<f64>,
    refreshed_at: Option<Duration>,
}

impl BanditWeights {
    /// Equal weights over `arms` arms (at least 1), not yet refreshed. Refuses a floor outside
    /// `[0, 1/arms]`.
    pub fn new(arms: usize, config: WeightsConfig) -> Result<Self, BanditError> {
        if arms == 0 {
            return Err(BanditError::Parameter("a bandit needs at least one arm"));
        }
        if !(config.floor >= 0.0 && config.floor * arms as f64 <= 1.0) {
            return Err(BanditError::Parameter("the weight floor must lie in [0, 1/arms]"));
        }
        Ok(Self { config, weights: vec![1.0 / arms as f64; arms], refreshed_at: None })
    }

    /// The current weights (sum to 1).
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// When the weights were last recomputed.
    pub fn refreshed_at(&self) -> Option<Duration> {
        self.refreshed_at
    }

    /// Recomputes the weights from `bandit` if at least `min_interval` has passed since the last
    /// recomputation (or there was none), and says whether it did. Each arm gets
    /// `floor + (1 - arms·floor) · P(best)`.
    pub fn refresh<R: Rng + ?Sized>(
        &mut self,
        bandit: &ThompsonSampling,
        now: Duration,
        rng: &mut R,
    ) -> Result<bool, BanditError> {
        if bandit.arms().len() != self.weights.len() {
            return Err(BanditError::Parameter("the bandit's arms differ from the weights'"));
        }
        if let Some(last) = self.refreshed_at
            && now.saturating_sub(last) < self.config.min_interval
        {
            return Ok(false);
        }
        let k = self.weights.len() as f64;
        let floor = self.config.floor;
        self.weights = bandit
            .probability_best(self.config.draws, rng)
            .into_iter()
            .map(|p| floor + (1.0 - k * floor) * p)
            .collect();
        self.refreshed_at = Some(now);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn warmup_is_round_robin_whatever_the_rewards() {
        let mut b = ThompsonSampling::new(3, 100).unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        for t in 0..300 {
            let arm = b.choose(&mut rng);
            assert_eq!(arm, t % 3, "round robin at step {t}");
            // Arm 0 always pays, the others never: exploitation would starve them.
            b.update(arm, arm == 0).unwrap();
        }
        assert!(b.arms().iter().all(|a| a.trials == 100));
        assert!(!b.in_warmup());
        // Now it exploits arm 0.
        let picks = (0..200).filter(|_| b.choose(&mut rng) == 0).count();
        assert!(picks > 190, "{picks}");
    }

    #[test]
    fn weights_refresh_at_a_bounded_frequency_and_keep_a_floor() {
        let mut b = ThompsonSampling::new(3, 10).unwrap();
        let mut rng = StdRng::seed_from_u64(8);
        let config = WeightsConfig { min_interval: Duration::from_secs(60), draws: 4000, floor: 0.05 };
        let mut w = BanditWeights::new(3, config).unwrap();
        // During warm-up the weights stay equal.
        assert!(w.refresh(&b, Duration::from_secs(0), &mut rng).unwrap());
        assert!(w.weights().iter().all(|x| (x - 1.0 / 3.0).abs() < 1e-12));
        b.record(0, 500, 50).unwrap();
        b.record(1, 500, 40).unwrap();
        b.record(2, 500, 80).unwrap();
        // Too soon: unchanged.
        assert!(!w.refresh(&b, Duration::from_secs(59), &mut rng).unwrap());
        assert!(w.weights().iter().all(|x| (x - 1.0 / 3.0).abs() < 1e-12));
        assert!(w.refresh(&b, Duration::from_secs(60), &mut rng).unwrap());
        let ws = w.weights();
        assert!((ws.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(ws[2] > 0.85, "{ws:?}");
        assert!(ws.iter().all(|x| *x >= 0.05 - 1e-12), "{ws:?}");
        assert_eq!(w.refreshed_at(), Some(Duration::from_secs(60)));
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(ThompsonSampling::new(0, 1).is_err());
        let mut b = ThompsonSampling::new(2, 1).unwrap();
        assert_eq!(b.update(2, true), Err(BanditError::UnknownArm { arm: 2, arms: 2 }));
        assert!(b.record(0, 1, 2).is_err());
        assert!(b.clone().with_prior(0.0, 1.0).is_err());
        assert!(BanditWeights::new(3, WeightsConfig { floor: 0.5, ..WeightsConfig::default() }).is_err());
        let w = BanditWeights::new(3, WeightsConfig::default()).unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        assert!(w.clone().refresh(&b, Duration::ZERO, &mut rng).is_err());
    }
}
