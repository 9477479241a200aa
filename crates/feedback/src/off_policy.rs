//! Off-policy evaluation: what conversion rate and revenue per visitor a *target* policy (always
//! one variant, or a probability per variant) would have had, estimated from the units an
//! experiment logged under its own split, before the target goes live.
//!
//! Each unit is one logged decision: its variant, the propensity that variant had of being
//! chosen for it when it was (recorded with its assignment and carried by its `Experiment Viewed`
//! event: a fixed split's weight, a bandit's allocation at that moment), and its outcome over the
//! experiment. The estimators are `dermis-experiments`' ([`off_policy::ips`] and
//! [`off_policy::doubly_robust`]); the doubly robust reward model is each variant's mean
//! outcome, cross-fitted over two folds of the units (split by a hash of the unit), so no unit's
//! outcome enters its own prediction. Units without a known propensity (exposed before
//! propensities were recorded, or logged by an SDK's bandit without one) are left out and
//! counted.

use dermis_core::FieldError;
use dermis_experiments::bandit::off_policy::{self, LoggedDecision, OffPolicyEstimate};
use dermis_experiments::growthbook::fnv1a32;
use serde::Serialize;
use utoipa::ToSchema;

use crate::service::{Experiments, FeedbackError};
use crate::store::{self, LoggedUnit};

/// The policy to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetPolicy {
    /// Always this variant (by key).
    Variant(String),
    /// Each variant with this probability, in the definition's order (summing to 1).
    Shares(Vec<f64>),
}

/// A variant's probability under the target policy.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PolicyShare {
    /// The variant.
    pub variant: String,
    /// Its probability.
    pub probability: f64,
}

/// One metric under the target policy.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OffPolicyMetric {
    /// `conversion` (share of units that ordered) or `revenue_per_visitor`.
    pub metric: String,
    /// The mean over the logged units: the logging policy's own value.
    pub logged_mean: f64,
    /// For a single-variant policy, the plain mean of the units shown that variant (what the
    /// estimates should agree with, within their intervals, on unbiased logs).
    pub observed: Option<f64>,
    /// The inverse-propensity estimate `mean(π(a)/p · r)` with its 95% interval, `n` and the
    /// effective sample size of the importance weights (null with fewer than 2 logged units).
    #[schema(value_type = Object)]
    pub ips: Option<OffPolicyEstimate>,
    /// The doubly robust estimate (variant means as the reward model, cross-fitted) with its 95%
    /// interval.
    #[schema(value_type = Object)]
    pub doubly_robust: Option<OffPolicyEstimate>,
}

/// Off-policy estimates of a target policy on an experiment's logged units.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OffPolicyReport {
    /// The experiment.
    pub experiment: String,
    /// The target policy: each variant's probability, control first.
    pub policy: Vec<PolicyShare>,
    /// Logged units used (those with a known propensity).
    pub units: u64,
    /// Units left out for want of a propensity.
    pub units_without_propensity: u64,
    /// `conversion` and `revenue_per_visitor`.
    pub metrics: Vec<OffPolicyMetric>,
    /// Why there are no estimates, when there are none.
    pub note: Option<String>,
}

/// The target's probability per variant, or the problem with it (by field: `policy` or
/// `weights`).
pub fn resolve(variants: &[String], target: &TargetPolicy) -> Result<Vec<f64>, FieldError> {
    match target {
        TargetPolicy::Variant(key) => match variants.iter().position(|v| v == key) {
            Some(i) => Ok((0..variants.len()).map(|j| if j == i { 1.0 } else { 0.0 }).collect()),
            None => Err(FieldError::new(
                "policy",
                format!("no variant {key:?} in this experiment (its variants: {})", variants.join(", ")),
            )),
        },
        TargetPolicy::Shares(shares) => {
            if shares.len() != variants.len() {
                return Err(FieldError::new(
                    "weights",
                    format!("one probability per variant ({}), in the experiment's order", variants.len()),
                ));
            }
            if shares.iter().any(|p| !p.is_finite() || !(0.0..=1.0).contains(p)) {
                return Err(FieldError::new("weights", "each probability between 0 and 1"));
            }
            let total: f64 = shares.iter().sum();
            if (total - 1.0).abs() > 1e-6 {
                return Err(FieldError::new("weights", format!("the probabilities sum to {total}, not 1")));
            }
            Ok(shares.clone())
        }
    }
}

/// The estimates of one reward over the logged units.
fn estimate(units: &[LoggedUnit], policy: &[f64], name: &str, reward: fn(&LoggedUnit) -> f64) -> OffPolicyMetric {
    let arms = policy.len();
    // The context is the unit's fold (0 or 1) for the cross-fitted reward model.
    let logs: Vec<LoggedDecision<usize>> = units
        .iter()
        .filter(|u| u.variant < arms)
        .map(|u| LoggedDecision {
            context: (fnv1a32(&u.unit_key) % 2) as usize,
            action: u.variant,
            propensity: u.propensity,
            reward: reward(u),
        })
        .collect();
    let logged_mean =
        if logs.is_empty() { 0.0 } else { logs.iter().map(|r| r.reward).sum::<f64>() / logs.len() as f64 };
    let single = policy.iter().position(|p| *p == 1.0);
    let observed = single.and_then(|a| {
        let shown: Vec<f64> = logs.iter().filter(|r| r.action == a).map(|r| r.reward).collect();
        (!shown.is_empty()).then(|| shown.iter().sum::<f64>() / shown.len() as f64)
    });
    let target = |_: &usize, a: usize| policy.get(a).copied().unwrap_or(0.0);
    let model = off_policy::cross_fitted_action_means(&logs, arms, 2, |k| *k);
    let ips = off_policy::ips(&logs, target).ok();
    let doubly_robust = off_policy::doubly_robust(&logs, arms, target, |k, a| model[*k % 2][a]).ok();
    OffPolicyMetric { metric: name.to_owned(), logged_mean, observed, ips, doubly_robust }
}

impl Experiments {
    /// IPS and doubly robust estimates of `target`'s conversion rate and revenue per visitor on
    /// the experiment's logged units. An unknown experiment is [`FeedbackError::NotFound`]; a
    /// target naming no variant, or probabilities that are not one per variant summing to 1,
    /// [`FeedbackError::Invalid`].
    pub async fn off_policy(&self, key: &str, target: &TargetPolicy) -> Result<OffPolicyReport, FeedbackError> {
        let stored = self.get(key).await?;
        let d = &stored.definition;
        let keys: Vec<String> = d.variants.iter().map(|v| v.key.clone()).collect();
        let policy = resolve(&keys, target).map_err(|e| FeedbackError::Invalid(vec![e]))?;
        let (units, without) = store::logged_units(self.db(), key).await?;
        let metrics = vec![
            estimate(&units, &policy, "conversion", |u| if u.converted { 1.0 } else { 0.0 }),
            estimate(&units, &policy, "revenue_per_visitor", |u| u.revenue),
        ];
        let note = (units.len() < 2).then(|| {
            format!(
                "at least 2 units with a logged propensity are needed; this experiment has {} ({without} without one)",
                units.len()
            )
        });
        Ok(OffPolicyReport {
            experiment: key.to_owned(),
            policy: keys
                .into_iter()
                .zip(&policy)
                .map(|(variant, p)| PolicyShare { variant, probability: *p })
                .collect(),
            units: units.len() as u64,
            units_without_propensity: without,
            metrics,
            note,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(i: usize, variant: usize, propensity: f64, converted: bool) -> LoggedUnit {
        LoggedUnit {
            unit_key: format!("u{i}"),
            variant,
            propensity,
            converted,
            revenue: if converted { 20.0 } else { 0.0 },
        }
    }

    #[test]
    fn a_policy_names_a_variant_or_sums_to_one() {
        let v = vec!["control".to_owned(), "ease".to_owned()];
        assert_eq!(resolve(&v, &TargetPolicy::Variant("ease".into())).unwrap(), vec![0.0, 1.0]);
        assert_eq!(resolve(&v, &TargetPolicy::Variant("nope".into())).unwrap_err().field, "policy");
        assert_eq!(resolve(&v, &TargetPolicy::Shares(vec![0.25, 0.75])).unwrap(), vec![0.25, 0.75]);
        for bad in [vec![0.5], vec![0.5, 0.6], vec![-0.5, 1.5], vec![f64::NAN, 1.0]] {
            assert_eq!(resolve(&v, &TargetPolicy::Shares(bad)).unwrap_err().field, "weights");
        }
    }

    #[test]
    fn a_uniform_log_reweights_to_the_variant() {
        // 50/50 logging: control converts 1 in 4, the variant 3 in 4.
        let units: Vec<LoggedUnit> =
            (0..400).map(|i| unit(i, i % 2, 0.5, if i % 2 == 0 { i % 8 == 0 } else { i % 8 != 1 })).collect();
        let control = estimate(&units, &[1.0, 0.0], "conversion", |u| if u.converted { 1.0 } else { 0.0 });
        let ips = control.ips.unwrap();
        assert!((ips.value - 0.25).abs() < 1e-12, "{ips:?}");
        assert_eq!(control.observed, Some(0.25));
        let dr = control.doubly_robust.unwrap();
        assert!(dr.ci_low <= 0.25 && 0.25 <= dr.ci_high && dr.std_error < ips.std_error, "{dr:?} {ips:?}");
        let variant = estimate(&units, &[0.0, 1.0], "conversion", |u| if u.converted { 1.0 } else { 0.0 });
        assert!((variant.ips.unwrap().value - 0.75).abs() < 1e-12);
        assert!((variant.logged_mean - 0.5).abs() < 1e-12);
        let none = estimate(&units[..1], &[1.0, 0.0], "conversion", |u| if u.converted { 1.0 } else { 0.0 });
        assert!(none.ips.is_none() && none.doubly_robust.is_none());
    }
}
