//! Off-policy evaluation: the expected reward a *target* policy would have earned, estimated
//! from traffic logged under another (the *logging* policy), before the target goes live.
//!
//! Each [`LoggedDecision`] holds the context, the action the logging policy took, the
//! probability it had of taking it (its propensity, logged at decision time) and the reward
//! observed. The target policy is a closure `π(context, action)` giving the probability it takes
//! `action` in `context` (1 for its choice and 0 elsewhere for a deterministic policy).
//!
//! - [`ips`]: inverse propensity scoring, `mean(π(aᵢ|xᵢ) / pᵢ · rᵢ)`; unbiased when every
//!   action the target takes had a positive logging propensity, but noisy.
//! - [`doubly_robust`]: with a reward model `r̂(x, a)`,
//!   `mean(Σₐ π(a|xᵢ) r̂(xᵢ, a) + π(aᵢ|xᵢ) / pᵢ · (rᵢ - r̂(xᵢ, aᵢ)))`: unbiased if either the
//!   propensities or the model are right, and much less noisy when the model is good.
//!
//! - [`cross_fitted_action_means`]: a context-free reward model for the doubly robust estimate,
//!   each action's mean reward fitted on the other folds of the log (cross-fitting), so the
//!   interval stays honest without holding data out.
//!
//! Both report a normal 95% interval from the per-record terms' standard error.

use serde::{Deserialize, Serialize};

use super::BanditError;

/// One decision logged by the policy in production.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedDecision<C> {
    /// What the policy saw.
    pub context: C,
    /// The action it took (an arm or item index).
    pub action: usize,
    /// The probability it had of taking that action, in (0, 1].
    pub propensity: f64,
    /// The reward observed.
    pub reward: f64,
}

/// An estimate of a policy's value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OffPolicyEstimate {
    /// The estimated expected reward per decision.
    pub value: f64,
    /// Its standard error.
    pub std_error: f64,
    /// Lower end of the normal 95% interval.
    pub ci_low: f64,
    /// Upper end of the normal 95% interval.
    pub ci_high: f64,
    /// Records used.
    pub n: usize,
    /// Kish's effective sample size of the importance weights `(Σw)² / Σw²`: far below `n`
    /// means the target policy strays where the logging policy rarely went.
    pub effective_sample_size: f64,
}

const Z95: f64 = 1.959963984540054;

fn check<C>(logs: &[LoggedDecision<C>]) -> Result<(), BanditError> {
    if logs.len() < 2 {
        return Err(BanditError::TooFewRecords(logs.len()));
    }
    for (index, r) in logs.iter().enumerate() {
        if !(r.propensity > 0.0 && r.propensity <= 1.0) {
            return Err(BanditError::Propensity { index, propensity: r.propensity });
        }
        if !r.reward.is_finite() {
            return Err(BanditError::NotFinite);
        }
    }
    Ok(())
}

fn summarise(terms: &[f64], weights: &[f64]) -> Result<OffPolicyEstimate, BanditError> {
    let n = terms.len() as f64;
    let value = terms.iter().sum::<f64>() / n;
    let variance = terms.iter().map(|t| (t - value).powi(2)).sum::<f64>() / (n - 1.0);
    let std_error = (variance / n).sqrt();
    if !value.is_finite() || !std_error.is_finite() {
        return Err(BanditError::NotFinite);
    }
    let sum_w: f64 = weights.iter().sum();
    let sum_w2: f64 = weights.iter().map(|w| w * w).sum();
    let effective_sample_size = if sum_w2 > 0.0 { sum_w * sum_w / sum_w2 } else { 0.0 };
    Ok(OffPolicyEstimate {
        value,
        std_error,
        ci_low: value - Z95 * std_error,
        ci_high: value + Z95 * std_error,
        n: terms.len(),
        effective_sample_size,
    })
}

/// The inverse-propensity estimate of the value of `target` (`π(context, action)`, a
/// probability) on `logs`.
pub fn ips<C>(logs: &[LoggedDecision<C>], target: impl Fn(&C, usize) -> f64) -> Result<OffPolicyEstimate, BanditError> {
    check(logs)?;
    let weights: Vec<f64> = logs.iter().map(|r| target(&r.context, r.action) / r.propensity).collect();
    let terms: Vec<f64> = logs.iter().zip(&weights).map(|(r, w)| w * r.reward).collect();
    summarise(&terms, &weights)
}

/// The doubly robust estimate of the value of `target` on `logs`, over actions `0..actions`,
/// with `reward_model(context, action)` predicting the reward (fitted on other data than `logs`
/// for an honest interval).
pub fn doubly_robust<C>(
    logs: &[LoggedDecision<C>],
    actions: usize,
    target: impl Fn(&C, usize) -> f64,
    reward_model: impl Fn(&C, usize) -> f64,
) -> Result<OffPolicyEstimate, BanditError> {
    check(logs)?;
    if let Some(r) = logs.iter().find(|r| r.action >= actions) {
        return Err(BanditError::UnknownArm { arm: r.action, arms: actions });
    }
    let mut weights = Vec::with_capacity(logs.len());
    let mut terms = Vec::with_capacity(logs.len());
    for r in logs {
        let direct: f64 = (0..actions).map(|a| target(&r.context, a) * reward_model(&r.context, a)).sum();
        let w = target(&r.context, r.action) / r.propensity;
        terms.push(direct + w * (r.reward - reward_model(&r.context, r.action)));
        weights.push(w);
    }
    summarise(&terms, &weights)
}

/// A context-free reward model for [`doubly_robust`], cross-fitted: `model[k][a]` is the mean
/// reward of action `a` over the records *outside* fold `k` (`fold_of(context)` in
/// `0..folds`), so no record's own reward enters its prediction. An action no record outside the
/// fold took falls back to its mean over every record, then to the mean reward of all records.
pub fn cross_fitted_action_means<C>(
    logs: &[LoggedDecision<C>],
    actions: usize,
    folds: usize,
    fold_of: impl Fn(&C) -> usize,
) -> Vec<Vec<f64>> {
    let folds = folds.max(1);
    // Sums and counts per fold and action.
    let mut sum = vec![vec![0.0; actions]; folds];
    let mut count = vec![vec![0u64; actions]; folds];
    for r in logs.iter().filter(|r| r.action < actions && r.reward.is_finite()) {
        let k = fold_of(&r.context) % folds;
        sum[k][r.action] += r.reward;
        count[k][r.action] += 1;
    }
    let total = |a: usize| -> (f64, u64) { (0..folds).fold((0.0, 0), |(s, n), k| (s + sum[k][a], n + count[k][a])) };
    let (all_sum, all_n) = (0..actions).map(total).fold((0.0, 0), |(s, n), (a, b)| (s + a, n + b));
    let overall = if all_n > 0 { all_sum / all_n as f64 } else { 0.0 };
    (0..folds)
        .map(|k| {
            (0..actions)
                .map(|a| {
                    let (s, n) = total(a);
                    let (out_s, out_n) = (s - sum[k][a], n - count[k][a]);
                    if out_n > 0 {
                        out_s / out_n as f64
                    } else if n > 0 {
                        s / n as f64
                    } else {
                        overall
                    }
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(action: usize, propensity: f64, reward: f64) -> LoggedDecision<()> {
        LoggedDecision { context: (), action, propensity, reward }
    }

    #[test]
    fn ips_and_dr_by_hand() {
        // Uniform logging over 2 actions; target always plays action 1.
        let logs = [log(0, 0.5, 1.0), log(1, 0.5, 1.0), log(1, 0.5, 0.0), log(0, 0.5, 0.0)];
        let target = |_: &(), a: usize| if a == 1 { 1.0 } else { 0.0 };
        // IPS terms: 0, 2, 0, 0 → 0.5.
        let e = ips(&logs, target).unwrap();
        assert!((e.value - 0.5).abs() < 1e-12);
        assert!((e.std_error - 0.5).abs() < 1e-12);
        // DR with r̂ = 0.4 everywhere: terms 0.4, 0.4 + 2·0.6, 0.4 - 2·0.4, 0.4 → 0.5.
        let d = doubly_robust(&logs, 2, target, |_, _| 0.4).unwrap();
        assert!((d.value - 0.5).abs() < 1e-12);
        assert!(d.std_error < e.std_error);
        // Weights 0, 2, 2, 0: ESS = 16 / 8.
        assert!((e.effective_sample_size - 2.0).abs() < 1e-12);
    }

    #[test]
    fn cross_fitted_means_leave_the_fold_out() {
        // Context = fold. Fold 0: action 0 rewards 1, 1; fold 1: action 0 reward 0, action 1 reward 4.
        let logs = [
            LoggedDecision { context: 0usize, action: 0, propensity: 0.5, reward: 1.0 },
            LoggedDecision { context: 0, action: 0, propensity: 0.5, reward: 1.0 },
            LoggedDecision { context: 1, action: 0, propensity: 0.5, reward: 0.0 },
            LoggedDecision { context: 1, action: 1, propensity: 0.5, reward: 4.0 },
        ];
        let model = cross_fitted_action_means(&logs, 3, 2, |k| *k);
        // Fold 0 sees fold 1 only: action 0 → 0, action 1 → 4; action 2 was never taken: the mean
        // of all rewards (6 / 4).
        assert_eq!(model[0], vec![0.0, 4.0, 1.5]);
        // Fold 1 sees fold 0: action 0 → 1; action 1 only in fold 1: its overall mean 4.
        assert_eq!(model[1], vec![1.0, 4.0, 1.5]);
    }

    #[test]
    fn bad_logs_are_refused() {
        let t = |_: &(), _| 1.0;
        assert_eq!(ips(&[log(0, 0.5, 1.0)], t), Err(BanditError::TooFewRecords(1)));
        assert_eq!(
            ips(&[log(0, 0.5, 1.0), log(0, 0.0, 1.0)], t),
            Err(BanditError::Propensity { index: 1, propensity: 0.0 })
        );
        assert_eq!(
            doubly_robust(&[log(0, 0.5, 1.0), log(3, 0.5, 1.0)], 2, t, |_, _| 0.0),
            Err(BanditError::UnknownArm { arm: 3, arms: 2 })
        );
    }
}
