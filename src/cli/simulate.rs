//! `dermis simulate`: runs the seeded experiments simulator ([`dermis_experiments::simulate`]),
//! writes its plots and `summary.json` ([`dermis_experiments::plot::write_report`]) into a
//! directory and prints the summary figures. No database, no configuration.

use std::path::Path;

use anyhow::Context;
use dermis_experiments::plot;
use dermis_experiments::simulate::{self, OpeResult, SimConfig};

/// Simulates `steps` bandit visitors with `seed` and writes the report into `out`.
pub(super) fn simulate(steps: usize, seed: u64, out: &Path) -> anyhow::Result<()> {
    let sim = simulate::run(&SimConfig::new(steps, seed)).context("running the simulation")?;
    let written = plot::write_report(&sim, out).context("writing the report")?;
    let s = &sim.summary;
    let b = &s.bandits;
    println!("simulated {steps} visitors, seed {seed}");
    println!(
        "regret vs the per-visitor oracle: thompson {:.1}, linucb {:.1}, random {:.1}",
        b.regret_thompson, b.regret_linucb, b.regret_random
    );
    println!(
        "regret vs the best fixed arm ({}): thompson {:.1}, random {:.1}",
        b.best_arm_name, b.fixed_regret_thompson, b.fixed_regret_random
    );
    println!(
        "last 10% of steps: thompson played the best arm {:.1}% of the time, linucb each visitor's best arm {:.1}%",
        100.0 * b.thompson_best_arm_share_last_10pct,
        100.0 * b.linucb_oracle_share_last_10pct
    );
    let ab = &s.ab;
    let detected = |d: Option<u64>| d.map_or_else(|| "never".to_string(), |n| format!("at {n} exposures"));
    println!(
        "a/b test ({:.1}% base rate, +{:.0}% planted, {} exposures): uplift {:+.1}% [{:+.1}%, {:+.1}%], always-valid [{:+.1}%, {:+.1}%]; always-valid interval excluded 0 {}",
        100.0 * ab.base_rate,
        100.0 * ab.true_uplift,
        ab.exposures,
        100.0 * ab.last.relative,
        100.0 * ab.last.ci_low,
        100.0 * ab.last.ci_high,
        100.0 * ab.last.sequential_low,
        100.0 * ab.last.sequential_high,
        detected(ab.first_sequential_detection)
    );
    let p = &s.power;
    println!(
        "power ({} replicates of {} per arm): observed {:.3}, theoretical {:.3}; always-valid {:.3}; false positives under no effect {:.3}",
        p.replicates, p.per_arm, p.observed, p.theoretical, p.observed_sequential, p.false_positive_rate
    );
    let ope = |name: &str, r: &OpeResult| {
        println!(
            "off-policy value of {name}: truth {:.4}; ips {:.4} [{:.4}, {:.4}]; doubly robust {:.4} [{:.4}, {:.4}]",
            r.truth,
            r.ips.value,
            r.ips.ci_low,
            r.ips.ci_high,
            r.doubly_robust.value,
            r.doubly_robust.ci_low,
            r.doubly_robust.ci_high
        );
    };
    ope("thompson's policy", &s.off_policy.thompson);
    ope("linucb's greedy policy", &s.off_policy.linucb_greedy);
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}
