//! Per-metric results of a control against one variant, from sufficient statistics (counts,
//! sums, sums of squares), in the way GrowthBook's `gbstats` computes them.
//!
//! - [`relative_uplift`]: relative uplift `mean_variant / mean_control - 1` with a normal
//!   confidence interval from the delta method. Binomial metrics (conversion, click-through,
//!   return and adverse-reaction rates) enter as [`SampleStats::proportion`]; continuous ones
//!   (revenue per visitor) as counts, sums and sums of squares. The interval is a z interval:
//!   `gbstats` uses Student's t with Welch's degrees of freedom, which is the same to three
//!   digits from a few hundred units per arm up.
//! - [`cuped_uplift`]: CUPED (Deng et al. 2013): with each unit's pre-period covariate `x`, the
//!   metric `y` is replaced by `y - θ (x - x̄)` with `θ = cov(x, y) / var(x)` pooled within the
//!   two arms (`gbstats` pools the arms' raw moments instead, which lets a large treatment
//!   effect leak into θ; with randomised arms the two agree closely). The relative uplift is `(adj_variant - adj_control) / ȳ_control` (as `gbstats`:
//!   the denominator is the unadjusted control mean), and its delta-method variance accounts for
//!   the covariance of numerator and denominator. [`CupedUplift::variance_reduction`] says how
//!   much narrower the interval became.
//! - [`bayesian`]: chance to beat control and expected loss under a normal posterior on the
//!   relative uplift (GrowthBook's effect-based Bayesian engine), flat or Gaussian prior, in
//!   closed form with the normal CDF.
//! - [`sample_ratio_mismatch`]: Pearson's chi-square goodness of fit of the observed units per
//!   arm against the configured weights; flagged at `p <` [`SRM_P_THRESHOLD`] (0.001).
//! - [`sequential_interval`]: an always-valid confidence interval, safe to look at after every
//!   unit: the asymptotic confidence sequence of Waudby-Smith et al. (2023) as `gbstats` uses it,
//!   with GrowthBook's tuning parameter (the sample size where the interval is narrowest,
//!   default 5,000).

use serde::{Deserialize, Serialize};

use crate::special::{chi_square_sf, normal_cdf, normal_pdf, normal_quantile};

/// Why a result could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// Each arm needs at least two units for a variance.
    #[error("each arm needs at least 2 units, got {0}")]
    TooFewUnits(u64),
    /// The relative uplift divides by the control mean.
    #[error("the control mean is 0: a relative uplift is undefined")]
    ZeroControlMean,
    /// A confidence level is in `(0, 1)`.
    #[error("confidence {0} is outside (0, 1)")]
    Confidence(f64),
    /// Pre-period and post-period statistics must describe the same units.
    #[error("pre-period statistics cover {pre} units but the metric covers {post}")]
    CupedUnits {
        /// Units in the pre-period statistics.
        pre: u64,
        /// Units in the metric's statistics.
        post: u64,
    },
    /// CUPED needs a covariate that varies.
    #[error("the pre-period covariate has no variance")]
    ConstantCovariate,
    /// One weight per arm, positive, for the sample-ratio check.
    #[error("sample-ratio check needs one positive weight per arm ({arms} arms, {weights} weights)")]
    SrmWeights {
        /// Number of observed counts.
        arms: usize,
        /// Number of weights.
        weights: usize,
    },
    /// Inputs must be finite (a NaN or infinite sum, variance or weight).
    #[error("inputs must be finite")]
    NotFinite,
}

/// The sufficient statistics of a metric in one arm: the number of units, the sum of the
/// metric over units and the sum of its squares.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SampleStats {
    /// Units (visitors) in the arm.
    pub n: u64,
    /// Σ y over units.
    pub sum: f64,
    /// Σ y² over units.
    pub sum_squares: f64,
}

impl SampleStats {
    /// Statistics of a continuous metric from its sums.
    pub const fn new(n: u64, sum: f64, sum_squares: f64) -> Self {
        Self { n, sum, sum_squares }
    }

    /// Statistics of a binomial metric: `conversions` of `n` units (y is 0 or 1, so Σy² = Σy).
    pub fn proportion(n: u64, conversions: u64) -> Self {
        Self { n, sum: conversions as f64, sum_squares: conversions as f64 }
    }

    /// Statistics of the given per-unit values.
    pub fn from_values(values: &[f64]) -> Self {
        Self { n: values.len() as u64, sum: values.iter().sum(), sum_squares: values.iter().map(|v| v * v).sum() }
    }

    /// The mean `Σy / n` (NaN for `n == 0`).
    pub fn mean(&self) -> f64 {
        self.sum / self.n as f64
    }

    /// The unbiased sample variance `(Σy² - (Σy)²/n) / (n - 1)`, never negative (NaN for n < 2).
    pub fn variance(&self) -> f64 {
        let n = self.n as f64;
        ((self.sum_squares - self.sum * self.sum / n) / (n - 1.0)).max(0.0)
    }
}

/// A relative uplift of a variant over the control with its frequentist interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Uplift {
    /// Units in the control.
    pub control_n: u64,
    /// Units in the variant.
    pub variant_n: u64,
    /// The control's mean (CUPED-adjusted for [`cuped_uplift`]).
    pub control_mean: f64,
    /// The variant's mean (CUPED-adjusted for [`cuped_uplift`]).
    pub variant_mean: f64,
    /// The relative uplift: 0.05 means the variant's mean is 5% above the control's.
    pub relative: f64,
    /// Standard error of `relative` (delta method).
    pub std_error: f64,
    /// The confidence level of `ci`, e.g. 0.95.
    pub confidence: f64,
    /// Lower end of the confidence interval of `relative`.
    pub ci_low: f64,
    /// Upper end of the confidence interval of `relative`.
    pub ci_high: f64,
    /// Two-sided p-value of "no difference" (fixed horizon: valid only when looked at once).
    pub p_value: f64,
}

fn check_confidence(confidence: f64) -> Result<f64, StatsError> {
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(StatsError::Confidence(confidence));
    }
    Ok(normal_quantile(1.0 - (1.0 - confidence) / 2.0))
}

fn check_arm(s: &SampleStats) -> Result<(), StatsError> {
    if s.n < 2 {
        return Err(StatsError::TooFewUnits(s.n));
    }
    if !s.sum.is_finite() || !s.sum_squares.is_finite() {
        return Err(StatsError::NotFinite);
    }
    Ok(())
}

/// The delta-method relative effect `D / M` of a difference `D` over a control mean `M`:
/// `Var(D/M) ≈ Var(D)/M² + D² Var(M)/M⁴ - 2 D Cov(D, M)/M³`.
#[allow(clippy::too_many_arguments)]
fn ratio_uplift(
    control_n: u64,
    variant_n: u64,
    control_mean: f64,
    variant_mean: f64,
    diff: f64,
    denominator: f64,
    var_diff: f64,
    var_denominator: f64,
    cov: f64,
    confidence: f64,
) -> Result<Uplift, StatsError> {
    let z = check_confidence(confidence)?;
    if denominator == 0.0 {
        return Err(StatsError::ZeroControlMean);
    }
    let m = denominator;
    let relative = diff / m;
    let variance =
        (var_diff / (m * m) + diff * diff * var_denominator / m.powi(4) - 2.0 * diff * cov / m.powi(3)).max(0.0);
    let std_error = variance.sqrt();
    if !relative.is_finite() || !std_error.is_finite() {
        return Err(StatsError::NotFinite);
    }
    let p_value = if std_error > 0.0 {
        2.0 * normal_cdf(-relative.abs() / std_error)
    } else if relative == 0.0 {
        1.0
    } else {
        0.0
    };
    Ok(Uplift {
        control_n,
        variant_n,
        control_mean,
        variant_mean,
        relative,
        std_error,
        confidence,
        ci_low: relative - z * std_error,
        ci_high: relative + z * std_error,
        p_value,
    })
}

/// The relative uplift of `variant` over `control` with a two-sided `confidence` interval
/// (e.g. 0.95), by the delta method:
/// `Var ≈ s²_v / (n_v ȳ_c²) + ȳ_v² s²_c / (n_c ȳ_c⁴)`.
pub fn relative_uplift(control: &SampleStats, variant: &SampleStats, confidence: f64) -> Result<Uplift, StatsError> {
    check_arm(control)?;
    check_arm(variant)?;
    let (mc, mv) = (control.mean(), variant.mean());
    let var_c = control.variance() / control.n as f64;
    let var_v = variant.variance() / variant.n as f64;
    // D = ȳ_v - ȳ_c and M = ȳ_c share the control's noise: Cov(D, M) = -Var(ȳ_c).
    ratio_uplift(control.n, variant.n, mc, mv, mv - mc, mc, var_c + var_v, var_c, -var_c, confidence)
}

/// One arm's metric with its pre-period covariate, for CUPED: the metric's statistics, the
/// covariate's statistics over the same units, and `Σ x·y` over units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CupedStats {
    /// The metric `y` in the experiment period.
    pub post: SampleStats,
    /// The covariate `x`, usually the same metric in the pre-period (0 for units without
    /// history).
    pub pre: SampleStats,
    /// Σ x·y over units.
    pub sum_products: f64,
}

impl CupedStats {
    /// The sample covariance of `x` and `y` in this arm.
    pub fn covariance(&self) -> f64 {
        let n = self.post.n as f64;
        (self.sum_products - self.pre.sum * self.post.sum / n) / (n - 1.0)
    }
}

/// The CUPED-adjusted uplift and what the adjustment bought.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CupedUplift {
    /// The adjusted uplift. Its means are `ȳ - θ (x̄ - x̄_pooled)` per arm.
    pub uplift: Uplift,
    /// The same metric without adjustment.
    pub unadjusted: Uplift,
    /// The regression coefficient θ of the metric on the covariate, pooled within arms.
    pub theta: f64,
    /// `1 - Var(adjusted uplift) / Var(unadjusted uplift)`: 0.3 means the adjusted interval's
    /// variance is 30% smaller (about the squared correlation of covariate and metric).
    pub variance_reduction: f64,
}

/// θ = cov(x, y) / var(x) pooled within the two arms: `(S_xy,c + S_xy,v) / (S_xx,c + S_xx,v)`
/// with sums of centred products per arm, so a treatment effect on `y` does not leak into θ.
pub fn cuped_theta(control: &CupedStats, variant: &CupedStats) -> f64 {
    let sxy = |a: &CupedStats| a.covariance() * (a.post.n as f64 - 1.0);
    let sxx = |a: &CupedStats| a.pre.variance() * (a.pre.n as f64 - 1.0);
    (sxy(control) + sxy(variant)) / (sxx(control) + sxx(variant))
}

/// The CUPED-adjusted relative uplift of `variant` over `control` (see the module docs), with
/// the unadjusted result for comparison.
pub fn cuped_uplift(control: &CupedStats, variant: &CupedStats, confidence: f64) -> Result<CupedUplift, StatsError> {
    for arm in [control, variant] {
        check_arm(&arm.post)?;
        if arm.pre.n != arm.post.n {
            return Err(StatsError::CupedUnits { pre: arm.pre.n, post: arm.post.n });
        }
        if !arm.pre.sum.is_finite() || !arm.pre.sum_squares.is_finite() || !arm.sum_products.is_finite() {
            return Err(StatsError::NotFinite);
        }
    }
    let unadjusted = relative_uplift(&control.post, &variant.post, confidence)?;
    let pooled_var_x = control.pre.variance() + variant.pre.variance();
    if pooled_var_x <= 0.0 {
        return Err(StatsError::ConstantCovariate);
    }
    let theta = cuped_theta(control, variant);
    let n_total = (control.pre.n + variant.pre.n) as f64;
    let x_pooled = (control.pre.sum + variant.pre.sum) / n_total;
    let adjusted_mean = |a: &CupedStats| a.post.mean() - theta * (a.pre.mean() - x_pooled);
    // Variance of one unit's adjusted value y - θx in the arm.
    let adjusted_var =
        |a: &CupedStats| (a.post.variance() + theta * theta * a.pre.variance() - 2.0 * theta * a.covariance()).max(0.0);
    let (nc, nv) = (control.post.n as f64, variant.post.n as f64);
    let (ac, av) = (adjusted_mean(control), adjusted_mean(variant));
    let var_diff = adjusted_var(control) / nc + adjusted_var(variant) / nv;
    let mc = control.post.mean();
    let var_mc = control.post.variance() / nc;
    // Cov(adj_v - adj_c, ȳ_c) = -Cov(ȳ_c - θ x̄_c, ȳ_c) = -(s²_y - θ s_xy) / n_c.
    let cov = -(control.post.variance() - theta * control.covariance()) / nc;
    let uplift = ratio_uplift(control.post.n, variant.post.n, ac, av, av - ac, mc, var_diff, var_mc, cov, confidence)?;
    let variance_reduction =
        if unadjusted.std_error > 0.0 { 1.0 - (uplift.std_error / unadjusted.std_error).powi(2) } else { 0.0 };
    Ok(CupedUplift { uplift, unadjusted, theta, variance_reduction })
}

/// A Gaussian prior on the relative uplift (GrowthBook's "proper prior": mean 0, standard
/// deviation 0.3 by default).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GaussianPrior {
    /// Prior mean of the relative uplift.
    pub mean: f64,
    /// Prior variance of the relative uplift.
    pub variance: f64,
}

impl Default for GaussianPrior {
    fn default() -> Self {
        Self { mean: 0.0, variance: 0.09 }
    }
}

/// The Bayesian reading of a relative uplift.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BayesianResult {
    /// Posterior mean of the relative uplift.
    pub mean: f64,
    /// Posterior standard deviation of the relative uplift.
    pub std_dev: f64,
    /// P(uplift > 0): the chance the variant beats the control.
    pub chance_to_win: f64,
    /// E[max(0, -uplift)]: the expected relative loss of shipping the variant.
    pub expected_loss: f64,
    /// E[max(0, uplift)]: the expected relative loss of keeping the control.
    pub control_risk: f64,
    /// The central credible interval at the uplift's confidence level.
    pub ci_low: f64,
    /// Upper end of that credible interval.
    pub ci_high: f64,
}

/// The posterior of the relative uplift as a normal `N(relative, std_error²)` (a flat prior)
/// or combined with a Gaussian `prior`, and from it the chance to win and the expected loss in
/// closed form: with `δ ~ N(μ, σ²)`, `P(δ > 0) = Φ(μ/σ)`,
/// `E[max(0, -δ)] = σ φ(μ/σ) - μ Φ(-μ/σ)` and `E[max(0, δ)] = σ φ(μ/σ) + μ Φ(μ/σ)`.
pub fn bayesian(uplift: &Uplift, prior: Option<GaussianPrior>) -> BayesianResult {
    let data_var = uplift.std_error * uplift.std_error;
    let (mean, var) = match prior {
        Some(p) if data_var > 0.0 => {
            let precision = 1.0 / p.variance + 1.0 / data_var;
            ((p.mean / p.variance + uplift.relative / data_var) / precision, 1.0 / precision)
        }
        _ => (uplift.relative, data_var),
    };
    let sd = var.sqrt();
    if sd == 0.0 {
        let win = if mean > 0.0 { 1.0 } else { 0.0 };
        return BayesianResult {
            mean,
            std_dev: 0.0,
            chance_to_win: win,
            expected_loss: (-mean).max(0.0),
            control_risk: mean.max(0.0),
            ci_low: mean,
            ci_high: mean,
        };
    }
    let t = mean / sd;
    let z = normal_quantile(1.0 - (1.0 - uplift.confidence) / 2.0);
    BayesianResult {
        mean,
        std_dev: sd,
        chance_to_win: normal_cdf(t),
        expected_loss: sd * normal_pdf(t) - mean * normal_cdf(-t),
        control_risk: sd * normal_pdf(t) + mean * normal_cdf(t),
        ci_low: mean - z * sd,
        ci_high: mean + z * sd,
    }
}

/// The p-value below which [`sample_ratio_mismatch`] flags an experiment (GrowthBook's
/// default).
pub const SRM_P_THRESHOLD: f64 = 0.001;

/// The result of a sample-ratio-mismatch check.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SrmCheck {
    /// Pearson's statistic Σ (observed - expected)² / expected.
    pub chi_square: f64,
    /// Degrees of freedom: arms - 1.
    pub degrees_of_freedom: u32,
    /// P(χ² ≥ statistic) under the configured split.
    pub p_value: f64,
    /// `p_value <` [`SRM_P_THRESHOLD`]: the assignment or the logging is broken, and the
    /// experiment's results should not be trusted.
    pub mismatch: bool,
}

/// Pearson's chi-square goodness of fit of `observed` units per arm against the configured
/// `weights` (normalised, so they need not sum to 1). With no units at all, nothing can
/// mismatch (p = 1).
pub fn sample_ratio_mismatch(observed: &[u64], weights: &[f64]) -> Result<SrmCheck, StatsError> {
    if observed.len() != weights.len() || observed.len() < 2 || weights.iter().any(|w| w.is_nan() || *w <= 0.0) {
        return Err(StatsError::SrmWeights { arms: observed.len(), weights: weights.len() });
    }
    let total_weight: f64 = weights.iter().sum();
    if !total_weight.is_finite() {
        return Err(StatsError::NotFinite);
    }
    let total: u64 = observed.iter().sum();
    let degrees_of_freedom = (observed.len() - 1) as u32;
    if total == 0 {
        return Ok(SrmCheck { chi_square: 0.0, degrees_of_freedom, p_value: 1.0, mismatch: false });
    }
    let chi_square: f64 = observed
        .iter()
        .zip(weights)
        .map(|(&o, &w)| {
            let expected = total as f64 * w / total_weight;
            (o as f64 - expected).powi(2) / expected
        })
        .sum();
    let p_value = chi_square_sf(chi_square, f64::from(degrees_of_freedom));
    Ok(SrmCheck { chi_square, degrees_of_freedom, p_value, mismatch: p_value < SRM_P_THRESHOLD })
}

/// Settings of the always-valid interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SequentialConfig {
    /// GrowthBook's tuning parameter: the total sample size at which the interval is tightest
    /// (default 5,000). Larger values make early looks wider and late looks narrower.
    pub tuning: f64,
}

impl Default for SequentialConfig {
    fn default() -> Self {
        Self { tuning: 5_000.0 }
    }
}

/// An always-valid interval of the relative uplift.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SequentialInterval {
    /// Lower end.
    pub low: f64,
    /// Upper end.
    pub high: f64,
    /// Half the width.
    pub half_width: f64,
    /// The interval excludes 0: a decision can be taken now, however often it was looked at.
    pub significant: bool,
}

/// ρ of the confidence sequence for error rate `alpha` tuned to `tuning` units:
/// `ρ = sqrt((-2 ln α + ln(-2 ln α + 1)) / tuning)`.
fn sequential_rho(alpha: f64, tuning: f64) -> f64 {
    let l = -2.0 * alpha.ln();
    ((l + (l + 1.0).ln()) / tuning).sqrt()
}

/// Half the width of the asymptotic confidence sequence (Waudby-Smith, Arbour, Sinha, Kennedy
/// and Ramdas, "Time-uniform central limit theory and asymptotic confidence sequences", 2023,
/// Theorem 2.2, as `gbstats`' `sequential_interval_halfwidth`): for `n` units, a per-unit
/// variance `s² = n · Var(estimate)`, error rate `alpha` and ρ from the tuning parameter,
/// `s · sqrt( 2 (n ρ² + 1) / (n² ρ²) · ln( sqrt(n ρ² + 1) / α ) )`.
pub fn sequential_half_width(per_unit_variance: f64, n: f64, alpha: f64, tuning: f64) -> f64 {
    let rho2 = sequential_rho(alpha, tuning).powi(2);
    let a = n * rho2 + 1.0;
    per_unit_variance.sqrt() * (2.0 * a / (n * n * rho2) * (a.sqrt() / alpha).ln()).sqrt()
}

/// The always-valid interval of `uplift` at its confidence level: it holds the true uplift at
/// every sample size simultaneously with probability at least `confidence` (asymptotically), so
/// results may be checked after every unit and the experiment stopped as soon as
/// [`SequentialInterval::significant`] is true. It is wider than the fixed-horizon interval.
/// `n` is both arms' units, as in `gbstats`.
pub fn sequential_interval(uplift: &Uplift, config: &SequentialConfig) -> SequentialInterval {
    let n = (uplift.control_n + uplift.variant_n) as f64;
    let alpha = 1.0 - uplift.confidence;
    let s2 = uplift.std_error * uplift.std_error * n;
    let half_width = sequential_half_width(s2, n, alpha, config.tuning);
    let (low, high) = (uplift.relative - half_width, uplift.relative + half_width);
    SequentialInterval { low, high, half_width, significant: low > 0.0 || high < 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, tol: f64) {
        assert!((actual - expected).abs() <= tol, "got {actual}, expected {expected} (±{tol})");
    }

    #[test]
    fn binomial_uplift_matches_a_hand_computation() {
        // Control 100/1000, variant 120/1000. By hand: p_c = 0.1, p_v = 0.12, relative 0.2;
        // s²_c = 1000·0.1·0.9/999, s²_v = 1000·0.12·0.88/999;
        // Var = s²_v/(1000·0.01) + 0.0144·s²_c/(1000·1e-4). Values from reference/values.py.
        let u =
            relative_uplift(&SampleStats::proportion(1000, 100), &SampleStats::proportion(1000, 120), 0.95).unwrap();
        close(u.relative, 0.2, 1e-12);
        close(u.std_error, 0.15343905481833345, 1e-12);
        close(u.ci_low, -0.10073502126580058, 1e-9);
        close(u.ci_high, 0.5007350212658005, 1e-9);
        close(u.p_value, 0.19242147832226186, 1e-9);
    }

    #[test]
    fn continuous_uplift_matches_a_hand_computation() {
        let c = SampleStats::from_values(&[10.0, 0.0, 5.0, 0.0, 25.0, 0.0, 0.0, 12.0]);
        let v = SampleStats::from_values(&[15.0, 0.0, 8.0, 30.0, 0.0, 0.0, 20.0, 0.0, 9.0]);
        let u = relative_uplift(&c, &v, 0.9).unwrap();
        close(u.control_mean, 6.5, 1e-12);
        close(u.variant_mean, 82.0 / 9.0, 1e-12);
        close(u.relative, 82.0 / 9.0 / 6.5 - 1.0, 1e-12);
        close(u.std_error, 0.8746996321498892, 1e-12);
        close(u.ci_high - u.relative, 1.6448536269514715 * u.std_error, 1e-9);
    }

    #[test]
    fn bad_inputs_are_errors_not_nans() {
        let ok = SampleStats::proportion(100, 10);
        assert_eq!(relative_uplift(&SampleStats::proportion(1, 1), &ok, 0.95), Err(StatsError::TooFewUnits(1)));
        assert_eq!(relative_uplift(&SampleStats::proportion(100, 0), &ok, 0.95), Err(StatsError::ZeroControlMean));
        assert_eq!(relative_uplift(&ok, &ok, 1.0), Err(StatsError::Confidence(1.0)));
        assert!(matches!(sample_ratio_mismatch(&[1, 2], &[1.0]), Err(StatsError::SrmWeights { .. })));
        assert!(matches!(sample_ratio_mismatch(&[1, 2], &[1.0, 0.0]), Err(StatsError::SrmWeights { .. })));
    }

    #[test]
    fn srm_flags_a_real_mismatch_only() {
        // python3: math.erfc(sqrt(x/2)) is the 1-df chi-square tail.
        let bad = sample_ratio_mismatch(&[5000, 5400], &[0.5, 0.5]).unwrap();
        close(bad.chi_square, 15.384615384615385, 1e-9);
        close(bad.p_value, 8.769942375590239e-05, 1e-15);
        assert!(bad.mismatch);
        let fine = sample_ratio_mismatch(&[5000, 5050], &[0.5, 0.5]).unwrap();
        close(fine.p_value, 0.6179522266795625, 1e-12);
        assert!(!fine.mismatch);
        // 5000 against 5300 is suspicious (p = 0.0031) but above GrowthBook's 0.001 threshold.
        let borderline = sample_ratio_mismatch(&[5000, 5300], &[0.5, 0.5]).unwrap();
        close(borderline.chi_square, 8.737864077669903, 1e-9);
        close(borderline.p_value, 0.0031166938398668655, 1e-13);
        assert!(!borderline.mismatch);
        // Three arms 20/30/50: expected 2000/3000/5000 of 10,000; observed 2100/2950/4950.
        // χ² = 5 + 0.8333 + 0.5 = 6.3333, 2 df: p = exp(-χ²/2).
        let three = sample_ratio_mismatch(&[2100, 2950, 4950], &[0.2, 0.3, 0.5]).unwrap();
        close(three.chi_square, 6.333333333333333, 1e-9);
        close(three.p_value, (-6.333333333333333f64 / 2.0).exp(), 1e-12);
        assert_eq!(three.degrees_of_freedom, 2);
        assert!(sample_ratio_mismatch(&[0, 0], &[1.0, 1.0]).unwrap().p_value == 1.0);
    }

    #[test]
    fn bayesian_closed_forms() {
        let u =
            relative_uplift(&SampleStats::proportion(1000, 100), &SampleStats::proportion(1000, 120), 0.95).unwrap();
        let b = bayesian(&u, None);
        // reference/values.py: 1 - NormalDist(0.2, se).cdf(0); E[max(0, -δ)] by numerical integration.
        close(b.chance_to_win, 0.9037892608388691, 1e-12);
        close(b.expected_loss, 0.006934694047250571, 1e-9);
        close(b.control_risk - b.expected_loss, b.mean, 1e-12);
        // A prior pulls toward 0 and narrows.
        let p = bayesian(&u, Some(GaussianPrior::default()));
        assert!(p.mean < b.mean && p.std_dev < b.std_dev && p.chance_to_win < b.chance_to_win);
        close(p.mean, 0.2 * 0.09 / (0.09 + 0.15343905481833345f64.powi(2)), 1e-12);
    }

    #[test]
    fn sequential_half_width_matches_the_gbstats_formula() {
        // python3 (reference/values.py): gbstats' sequential_interval_halfwidth(s2=4, n=2000,
        // tuning=5000, alpha=0.05).
        close(sequential_half_width(4.0, 2000.0, 0.05, 5000.0), 0.13969964791354486, 1e-12);
        // Always wider than the fixed-horizon 1.96·s/√n.
        for n in [100.0, 5000.0, 1e6] {
            assert!(sequential_half_width(1.0, n, 0.05, 5000.0) > 1.959963984540054 / f64::sqrt(n));
        }
    }
}
