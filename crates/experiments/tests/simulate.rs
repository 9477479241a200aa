//! The simulator on its default world with a fixed seed: the bandits converge (LinUCB beyond
//! Thompson when context matters), the A/B test has the power theory says and its always-valid
//! interval keeps the truth, off-policy estimates cover the true values, and the report files are
//! well-formed SVG with one element per series.

use std::sync::OnceLock;

use dermis_experiments::plot;
use dermis_experiments::simulate::{self, ARM_COUNT, Context, SimConfig, Simulation};
use rand::SeedableRng;
use rand::rngs::StdRng;

const SEED: u64 = 42;
const STEPS: usize = 20_000;

fn sim() -> &'static Simulation {
    static SIM: OnceLock<Simulation> = OnceLock::new();
    SIM.get_or_init(|| simulate::run(&SimConfig::new(STEPS, SEED)).expect("simulation runs"))
}

#[test]
fn thompson_settles_on_the_best_arm_and_loses_far_less_than_random() {
    let b = &sim().summary.bandits;
    assert_eq!(b.best_arm, 0, "the hydrating serum is best on average");
    assert!(b.thompson_best_arm_share_last_10pct > 0.8, "{b:?}");
    // Against the best fixed arm (the benchmark of a bandit without context) Thompson loses
    // a small fraction of what random loses ...
    assert!(b.fixed_regret_thompson < 0.25 * b.fixed_regret_random, "{b:?}");
    // ... and against the per-visitor oracle it is still well below random.
    assert!(b.regret_thompson < 0.75 * b.regret_random, "{b:?}");

    // The last windows of the arm shares are dominated by the best arm.
    let last = sim().thompson_arm_shares.last().unwrap();
    assert_eq!(last.step, STEPS);
    assert!((last.shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    assert!(last.shares[0] > 0.8, "{last:?}");
    let first = &sim().thompson_arm_shares[0];
    assert!(first.shares[0] < 0.6, "early on Thompson still explores: {first:?}");
}

#[test]
fn regret_series_are_cumulative_and_end_at_the_summary() {
    let s = sim();
    for (name, series, total) in [
        ("thompson", &s.regret.thompson, s.summary.bandits.regret_thompson),
        ("linucb", &s.regret.linucb, s.summary.bandits.regret_linucb),
        ("random", &s.regret.random, s.summary.bandits.regret_random),
    ] {
        assert_eq!(series.len(), STEPS, "{name}");
        assert!(series.windows(2).all(|w| w[1] >= w[0] - 1e-12), "{name} decreases");
        assert!((series[STEPS - 1] - total).abs() < 1e-9, "{name}");
    }
    // Random's regret grows linearly at the mean gap to the oracle.
    let per_step = simulate::oracle_rate() - simulate::policy_value(|_, _| 1.0 / ARM_COUNT as f64);
    let random = s.summary.bandits.regret_random / STEPS as f64;
    assert!((random - per_step).abs() < 0.002, "{random} vs {per_step}");
}

#[test]
fn linucb_beats_thompson_when_the_best_product_depends_on_the_visitor() {
    let s = sim();
    let b = &s.summary.bandits;
    assert!(b.regret_linucb < 0.5 * b.regret_thompson, "{b:?}");
    // LinUCB's regret flattens (it learned each context's best arm); Thompson's keeps the slope
    // of always playing the best fixed arm.
    let tail = STEPS / 10;
    let slope = |v: &Vec<f64>| (v[STEPS - 1] - v[STEPS - 1 - tail]) / tail as f64;
    let fixed_gap = simulate::oracle_rate() - simulate::mean_rates()[0];
    assert!(
        slope(&s.regret.linucb) < 0.3 * slope(&s.regret.thompson),
        "{} {}",
        slope(&s.regret.linucb),
        slope(&s.regret.thompson)
    );
    assert!((slope(&s.regret.thompson) - fixed_gap).abs() < 0.01, "{}", slope(&s.regret.thompson));
    assert!(b.linucb_oracle_share_last_10pct > 0.8, "{b:?}");
}

#[test]
fn observed_power_matches_the_normal_approximation() {
    let p = &sim().summary.power;
    assert_eq!((p.replicates, p.per_arm), (1_000, 31_000));
    assert!((p.theoretical - 0.758).abs() < 0.005, "{p:?}");
    assert!((p.observed - p.theoretical).abs() <= 0.07, "{p:?}");
    // Under no effect the interval excludes 0 about 5% of the time.
    assert!((p.false_positive_rate - 0.05).abs() <= 0.02, "{p:?}");
    // Being safe to peek at costs power at a fixed sample size.
    assert!(p.observed_sequential < p.observed - 0.2, "{p:?}");
}

#[test]
fn the_ab_test_detects_the_planted_uplift_and_its_always_valid_interval_keeps_the_truth() {
    let s = sim();
    let ab = &s.summary.ab;
    assert!((ab.true_uplift - 0.10).abs() < 1e-12);
    let last = ab.last;
    assert_eq!(last.exposures, ab.exposures);
    assert!(last.ci_low > 0.0 && last.ci_low <= 0.10 && 0.10 <= last.ci_high, "{last:?}");
    let detected = ab.first_sequential_detection.expect("the always-valid interval excludes 0 by the end");
    assert!(detected <= ab.exposures);
    assert!(ab.first_fixed_detection.unwrap() <= detected, "the fixed interval is narrower");
    assert!(s.ab_path.len() >= 300, "{}", s.ab_path.len());
    for p in &s.ab_path {
        assert!(p.sequential_low <= p.ci_low && p.ci_high <= p.sequential_high, "{p:?}");
        assert!(
            p.sequential_low <= 0.10 && 0.10 <= p.sequential_high,
            "the always-valid interval lost the truth: {p:?}"
        );
    }
    // The intervals narrow as exposures accumulate.
    let width = |p: &simulate::AbPoint| p.ci_high - p.ci_low;
    assert!(width(&last) < 0.3 * width(&s.ab_path[0]));
}

#[test]
fn off_policy_estimates_cover_the_true_values() {
    let o = &sim().summary.off_policy;
    for (name, r) in [("thompson", &o.thompson), ("linucb greedy", &o.linucb_greedy)] {
        for (estimator, e) in [("ips", &r.ips), ("dr", &r.doubly_robust)] {
            assert!(e.ci_low <= r.truth && r.truth <= e.ci_high, "{name} {estimator}: truth {} not in {e:?}", r.truth);
            assert_eq!(e.n, STEPS - STEPS / 5);
        }
    }
    // Both targets beat the uniform logging policy, and the estimates can tell.
    assert!(o.thompson.truth > o.logging_policy_value + 0.02);
    assert!(o.linucb_greedy.truth > o.thompson.truth + 0.02);
    assert!(o.linucb_greedy.doubly_robust.ci_low > o.logging_policy_value);
}

#[test]
fn off_policy_intervals_cover_about_95_percent_of_the_time() {
    // Fixed target policies judged on 60 independent uniform logs of 3,000 decisions.
    let always_best = |_: &Context, a: usize| if a == 0 { 1.0 } else { 0.0 };
    let oracle = |c: &Context, a: usize| if a == simulate::oracle_arm(c) { 1.0 } else { 0.0 };
    let truths = [simulate::policy_value(always_best), simulate::policy_value(oracle)];
    let (mut covered, mut total) = (0, 0);
    let mut dr_narrower = 0;
    for seed in 0..60 {
        let log = simulate::uniform_log(3_000, &mut StdRng::seed_from_u64(1_000 + seed));
        for (target, truth) in [(&always_best as &dyn Fn(&Context, usize) -> f64, truths[0]), (&oracle, truths[1])] {
            let (ips, dr) = simulate::estimate_policy(&log, target).unwrap();
            for e in [ips, dr] {
                covered += usize::from(e.ci_low <= truth && truth <= e.ci_high);
                total += 1;
            }
            dr_narrower += usize::from(dr.std_error < ips.std_error);
        }
    }
    let coverage = covered as f64 / total as f64;
    assert!((0.89..=0.99).contains(&coverage), "coverage {coverage}");
    assert!(dr_narrower >= 100, "the reward model should narrow the interval: {dr_narrower} of 120");
}

#[test]
fn a_seed_gives_one_result() {
    let config = SimConfig { power_replicates: 20, ab_exposures: 5_000, ..SimConfig::new(2_000, 7) };
    let a = simulate::run(&config).unwrap();
    assert_eq!(a, simulate::run(&config).unwrap());
    let b = simulate::run(&SimConfig { seed: 8, ..config }).unwrap();
    assert_ne!(a.regret.thompson, b.regret.thompson);
}

fn count(doc: &roxmltree::Document, tag: &str) -> usize {
    doc.descendants().filter(|n| n.has_tag_name(tag)).count()
}

/// The polylines drawn as series (axes and ticks are 1 pixel wide).
fn series_lines<'a>(doc: &'a roxmltree::Document) -> Vec<roxmltree::Node<'a, 'a>> {
    let width = plot::SERIES_WIDTH.to_string();
    doc.descendants()
        .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke-width") == Some(width.as_str()))
        .collect()
}

#[test]
fn the_report_is_three_well_formed_svgs_with_one_element_per_series_and_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested/report");
    let written = plot::write_report(sim(), &out).unwrap();
    let names: Vec<_> = written.iter().map(|p| p.file_name().unwrap().to_str().unwrap().to_string()).collect();
    assert_eq!(names, ["regret.svg", "uplift.svg", "arms.svg", "summary.json"]);

    let expected = [
        ("regret.svg", plot::regret_svg(sim()).unwrap(), 3, 0),
        ("uplift.svg", plot::uplift_svg(sim()).unwrap(), 3, 2),
        ("arms.svg", plot::arms_svg(sim()).unwrap(), ARM_COUNT, 0),
    ];
    for (name, built, lines, bands) in expected {
        let text = std::fs::read_to_string(out.join(name)).unwrap();
        assert_eq!(text, built.svg, "{name}: the file is what the builder drew");
        let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{name} is not well-formed: {e}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg", "{name}");
        assert_eq!(series_lines(&doc).len(), lines, "{name}: one polyline per line series");
        assert_eq!(count(&doc, "polygon"), bands, "{name}: one polygon per band");
        assert_eq!(built.series.len(), lines + bands, "{name}");
        // Every series is named in the legend and the axes are labelled, as text elements.
        let texts: Vec<String> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text().map(|t| t.trim().to_string()))
            .collect();
        for series in &built.series {
            assert!(texts.iter().any(|t| t.starts_with(series.as_str())), "{name}: no legend for {series}: {texts:?}");
        }
        // Lines are drawn with at most MAX_POINTS (+1) points.
        for line in series_lines(&doc) {
            let points = line.attribute("points").unwrap().split_whitespace().count();
            assert!((2..=plot::MAX_POINTS + 1).contains(&points), "{name}: {points} points");
        }
    }

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let s = &sim().summary;
    let close = |v: &serde_json::Value, x: f64| (v.as_f64().unwrap() - x).abs() < 1e-12;
    assert!(close(&json["bandits"]["regret_thompson"], s.bandits.regret_thompson));
    assert!(close(&json["power"]["observed"], s.power.observed));
    assert!(close(&json["off_policy"]["thompson"]["truth"], s.off_policy.thompson.truth));
    assert_eq!(json["config"]["seed"], SEED);
}
