//! Probabilistic matching at scale: a seeded synthetic population (default 100,000 profiles,
//! about 5% duplicates with name typos, swapped day/month of birth, changed or missing emails,
//! phone typos and moves), matched with blocking; then the first 5,000 of them (by default) with
//! and without blocking, since all pairs of 100,000 (5·10⁹ comparisons) is not feasible and is
//! extrapolated from the measured rate instead.
//!
//! `cargo run --release -p dermis-customers --example matching_bench [PROFILES] [SUBSET] [SEED]`

use std::time::{Duration, Instant};

use dermis_customers::matching::synthetic::{Population, population};
use dermis_customers::matching::{Field, Level, MatchConfig, MatchRun, Record, all_pairs, find_matches};

fn arg(i: usize, default: u64) -> u64 {
    std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

fn print_quality(pop: &Population, run: &MatchRun, config: &MatchConfig) {
    for t in [config.review_threshold - 4.0, config.review_threshold, 20.0, config.auto_merge_threshold] {
        let q = pop.quality(run, t);
        println!(
            "    score >= {:>5.1}: suggested {:>6}  true {:>6}  recall {:.4}  precision {:.4}",
            t, q.suggested, q.true_positives, q.recall, q.precision
        );
    }
}

fn print_weights(run: &MatchRun) {
    let w = &run.weights;
    println!(
        "  EM: {} iterations (converged: {}), match share among candidates {:.5}",
        w.iterations, w.converged, w.candidate_prior
    );
    for f in Field::ALL {
        println!(
            "    {:<14} exact {:>7.2}  close {:>7.2}  different {:>7.2}",
            f.as_str(),
            w.weight(f, Level::Exact),
            w.weight(f, Level::Close),
            w.weight(f, Level::Different)
        );
    }
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

fn main() {
    let n = arg(1, 100_000) as usize;
    let subset = arg(2, 5_000) as usize;
    let seed = arg(3, 2026);
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let config = MatchConfig { all_pairs_limit: subset.max(10_000), ..MatchConfig::default() };
    println!(
        "matching_bench ({profile} build): {n} profiles, subset {subset}, seed {seed}, review >= {}, auto-merge >= {}, block cap {}, EM random sample {} pairs",
        config.review_threshold, config.auto_merge_threshold, config.block_cap, config.u_sample_pairs
    );

    let (pop, gen_time) = timed(|| population(n, 0.05, seed));
    println!(
        "generated in {gen_time:.2?}: {} records, {} true duplicate pairs",
        pop.records.len(),
        pop.true_pairs.len()
    );

    // Full population, blocking.
    let (run, t) = timed(|| find_matches(&pop.records, &config).expect("valid config"));
    let all = n as f64 * (n as f64 - 1.0) / 2.0;
    println!("\n[{n} profiles, blocking] {t:.2?}");
    println!(
        "  pairs compared {} ({:.5}% of the {:.3e} possible), blocks {}, skipped blocks {:?}",
        run.stats.pairs_compared,
        100.0 * run.stats.pairs_compared as f64 / all,
        all,
        run.stats.blocks,
        run.stats.skipped_blocks.iter().map(|b| (b.kind, b.size)).collect::<Vec<_>>()
    );
    print_weights(&run);
    print_quality(&pop, &run, &config);

    // Subset: all pairs against blocking.
    // The first `subset` profiles: duplicates only copy earlier records, so every true pair with
    // both ids in the prefix is kept.
    let subset = subset.min(n);
    let prefix: std::collections::BTreeSet<&str> = pop.records[..subset].iter().map(|r| r.id.as_str()).collect();
    let sub = Population {
        records: pop.records[..subset].to_vec(),
        true_pairs: pop
            .true_pairs
            .iter()
            .filter(|(a, b)| prefix.contains(a.as_str()) && prefix.contains(b.as_str()))
            .cloned()
            .collect(),
    };
    let records: &[Record] = &sub.records;
    let (blocked, tb) = timed(|| find_matches(records, &config).expect("valid config"));
    let (exhaustive, ta) = timed(|| all_pairs(records, &config).expect("under the limit"));
    println!("\n[{subset} profiles] {} true duplicate pairs", sub.true_pairs.len());
    println!("  blocking : {:>10} pairs in {tb:.2?}", blocked.stats.pairs_compared);
    print_quality(&sub, &blocked, &config);
    println!("  all pairs: {:>10} pairs in {ta:.2?}", exhaustive.stats.pairs_compared);
    print_quality(&sub, &exhaustive, &config);
    let found = |r: &MatchRun| {
        r.suggestions
            .iter()
            .filter(|s| sub.is_duplicate(&s.a, &s.b))
            .map(|s| (s.a.clone(), s.b.clone()))
            .collect::<std::collections::BTreeSet<_>>()
    };
    let (fa, fb) = (found(&exhaustive), found(&blocked));
    println!(
        "  true pairs found at review threshold: all pairs {}, blocking {} ({:.2}% of what all pairs finds)",
        fa.len(),
        fa.intersection(&fb).count(),
        100.0 * fa.intersection(&fb).count() as f64 / fa.len().max(1) as f64
    );

    // Extrapolation: all pairs of the full population at the measured all-pairs rate.
    let per_pair = ta.as_secs_f64() / exhaustive.stats.pairs_compared as f64;
    println!(
        "\nextrapolated all pairs of {n}: n(n-1)/2 = {all:.3e} pairs x {:.1} ns/pair (measured on {subset}) = {:.0} s (~{:.1} h), \
         against {t:.2?} with blocking ({:.0}x)",
        per_pair * 1e9,
        all * per_pair,
        all * per_pair / 3600.0,
        all * per_pair / t.as_secs_f64()
    );
}
