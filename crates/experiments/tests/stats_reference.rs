//! The statistics on data a user would recognise: a CUPED example checked against
//! `reference/values.py` (computed from the unit data, independently of the sums used here),
//! and simulated A/A and A/B tests showing that peeking breaks the fixed-horizon interval but
//! not the sequential one, and that the sample-ratio check catches broken assignment.

use dermis_experiments::bandit::sampling::standard_normal;
use dermis_experiments::growthbook::{Experiment, assign};
use dermis_experiments::stats::{
    CupedStats, SampleStats, SequentialConfig, bayesian, cuped_uplift, relative_uplift, sample_ratio_mismatch,
    sequential_interval,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn close(actual: f64, expected: f64, tol: f64) {
    assert!((actual - expected).abs() <= tol, "got {actual}, expected {expected} (±{tol})");
}

fn cuped_arm(x: &[f64], y: &[f64]) -> CupedStats {
    CupedStats {
        post: SampleStats::from_values(y),
        pre: SampleStats::from_values(x),
        sum_products: x.iter().zip(y).map(|(a, b)| a * b).sum(),
    }
}

#[test]
fn cuped_matches_the_reference_and_narrows_the_interval() {
    // reference/values.py: pre-period spend x and period spend y = base + 0.8 x + noise; the
    // variant's base is 2 higher.
    let xc = [10.0, 0.0, 5.0, 20.0, 8.0, 0.0, 15.0, 3.0, 12.0, 7.0, 0.0, 25.0];
    let ec = [1.0, -2.0, 0.0, 3.0, -1.0, 1.0, 2.0, -3.0, 0.0, 1.0, -1.0, 2.0];
    let xv = [9.0, 2.0, 6.0, 18.0, 11.0, 0.0, 14.0, 4.0, 10.0, 6.0, 1.0, 22.0];
    let ev = [-1.0, 2.0, 1.0, -2.0, 0.0, 1.0, -1.0, 3.0, 0.0, -2.0, 1.0, 0.0];
    let yc: Vec<f64> = xc.iter().zip(&ec).map(|(x, e)| 5.0 + 0.8 * x + e).collect();
    let yv: Vec<f64> = xv.iter().zip(&ev).map(|(x, e)| 7.0 + 0.8 * x + e).collect();
    let r = cuped_uplift(&cuped_arm(&xc, &yc), &cuped_arm(&xv, &yv), 0.95).unwrap();
    close(r.theta, 0.8392698369931294, 1e-12);
    close(r.uplift.control_mean, 12.180060846917238, 1e-10);
    close(r.uplift.variant_mean, 14.103272486416094, 1e-10);
    close(r.uplift.relative, 0.15699686853051883, 1e-12);
    close(r.uplift.std_error, 0.07299123248970224, 1e-12);
    close(r.unadjusted.relative, 0.1455782312925169, 1e-12);
    close(r.unadjusted.std_error, 0.2400428516422373, 1e-12);
    close(r.variance_reduction, 0.907537881651991, 1e-10);
    // Unadjusted, the planted +2 is invisible at 12 units per arm; adjusted, it is significant.
    assert!(r.unadjusted.ci_low < 0.0 && r.uplift.ci_low > 0.0);
}

#[test]
fn cuped_with_an_uncorrelated_covariate_changes_nothing_much() {
    let mut rng = StdRng::seed_from_u64(11);
    let arm = |rng: &mut StdRng, lift: f64| {
        let x: Vec<f64> = (0..5000).map(|_| 10.0 + standard_normal(rng)).collect();
        let y: Vec<f64> = (0..5000).map(|_| 20.0 + lift + 4.0 * standard_normal(rng)).collect();
        cuped_arm(&x, &y)
    };
    let (c, v) = (arm(&mut rng, 0.0), arm(&mut rng, 0.5));
    let r = cuped_uplift(&c, &v, 0.95).unwrap();
    assert!(r.theta.abs() < 0.15, "theta {}", r.theta);
    assert!(r.variance_reduction.abs() < 0.01, "{}", r.variance_reduction);
    close(r.uplift.relative, r.unadjusted.relative, 0.01);
}

/// One simulated experiment with normal outcomes (mean 10, sd 3), the variant's mean multiplied
/// by `1 + lift`, looked at every 500 units per arm up to 10,000: whether the fixed-horizon
/// 95% interval and the sequential one ever excluded 0.
fn peeking_run(rng: &mut StdRng, lift: f64) -> (bool, bool) {
    let (mut c, mut v) = (SampleStats::new(0, 0.0, 0.0), SampleStats::new(0, 0.0, 0.0));
    let (mut fixed, mut sequential) = (false, false);
    for _look in 0..20 {
        for _ in 0..500 {
            let a = 10.0 + 3.0 * standard_normal(rng);
            let b = 10.0 * (1.0 + lift) + 3.0 * standard_normal(rng);
            c = SampleStats::new(c.n + 1, c.sum + a, c.sum_squares + a * a);
            v = SampleStats::new(v.n + 1, v.sum + b, v.sum_squares + b * b);
        }
        let u = relative_uplift(&c, &v, 0.95).unwrap();
        fixed |= u.ci_low > 0.0 || u.ci_high < 0.0;
        sequential |= sequential_interval(&u, &SequentialConfig::default()).significant;
    }
    (fixed, sequential)
}

#[test]
fn peeking_inflates_fixed_horizon_errors_but_not_sequential_ones() {
    let mut rng = StdRng::seed_from_u64(2026);
    let runs = 300;
    let (mut fixed, mut sequential) = (0, 0);
    for _ in 0..runs {
        let (f, s) = peeking_run(&mut rng, 0.0);
        fixed += usize::from(f);
        sequential += usize::from(s);
    }
    let (fixed, sequential) = (fixed as f64 / runs as f64, sequential as f64 / runs as f64);
    eprintln!("A/A with 20 looks: fixed-horizon false positives {fixed}, sequential {sequential}");
    assert!(fixed > 0.1, "20 looks at a 95% interval should err far more than 5%: {fixed}");
    assert!(sequential <= 0.05, "the always-valid interval keeps its 5%: {sequential}");
}

#[test]
fn sequential_testing_still_detects_a_real_uplift() {
    let mut rng = StdRng::seed_from_u64(7);
    let runs = 100;
    let detected = (0..runs).filter(|_| peeking_run(&mut rng, 0.02).1).count();
    eprintln!("a 2% uplift: sequential interval significant in {detected} of {runs} runs");
    assert!(detected >= 90, "a 2% uplift detected in {detected} of {runs} runs");
}

#[test]
fn srm_catches_assignment_that_drops_units() {
    let e = Experiment::new("srm-demo", 2);
    let mut counts = [0u64; 2];
    let mut rng = StdRng::seed_from_u64(5);
    for i in 0..20_000 {
        let v = assign(&e, &format!("visitor-{i}")).unwrap();
        // A bug loses 5% of the variant's exposures (e.g. its page fails to log them).
        if v == 1 && rng.r#gen::<f64>() < 0.05 {
            continue;
        }
        counts[v] += 1;
    }
    let broken = sample_ratio_mismatch(&counts, &[0.5, 0.5]).unwrap();
    assert!(broken.mismatch, "{counts:?} p = {}", broken.p_value);
    let mut healthy = [0u64; 2];
    for i in 0..20_000 {
        healthy[assign(&e, &format!("visitor-{i}")).unwrap()] += 1;
    }
    assert!(!sample_ratio_mismatch(&healthy, &[0.5, 0.5]).unwrap().mismatch, "{healthy:?}");
}

#[test]
fn bayesian_agrees_with_the_frequentist_reading() {
    let c = SampleStats::proportion(20_000, 2_000);
    let win = SampleStats::proportion(20_000, 2_200);
    let lose = SampleStats::proportion(20_000, 1_900);
    let bw = bayesian(&relative_uplift(&c, &win, 0.95).unwrap(), None);
    let bl = bayesian(&relative_uplift(&c, &lose, 0.95).unwrap(), None);
    assert!(bw.chance_to_win > 0.99 && bw.expected_loss < 1e-4, "{bw:?}");
    assert!(bl.chance_to_win < 0.05 && bl.expected_loss > 0.04, "{bl:?}");
}
