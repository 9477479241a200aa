//! Assignment speed, in process: `cargo run --release -p dermis-feedback --example assign_bench`.
//!
//! 1. GrowthBook's assignment alone (hash version 2, two variants, a namespace and 80% coverage):
//!    decisions per second on one core.
//! 2. What an experiment adds to a recommendation request: `Experiments::placement_variant`
//!    (the running experiment from memory, the hash, and the background task that records the
//!    assignment), per call, p50 and p99, on SQLite in a temporary directory.

use std::time::{Duration, Instant};

use dermis_core::clock;
use dermis_events::Pseudonyms;
use dermis_experiments::growthbook::{self, Namespace};
use dermis_feedback::model::{Attributes, Definition};
use dermis_feedback::{Experiments, MIGRATIONS};
use dermis_store::testing::TestDb;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    // 1. The pure decision.
    let mut experiment = growthbook::Experiment::new("home-recs", 2);
    experiment.namespace = Some(Namespace::new("home", 0.0, 0.5));
    experiment.coverage = 0.8;
    let ids: Vec<String> = (0..1_000_000).map(|i| format!("user-{i}")).collect();
    let started = Instant::now();
    let mut assigned = 0usize;
    for id in &ids {
        assigned += usize::from(growthbook::assign(&experiment, id).is_some());
    }
    let elapsed = started.elapsed();
    println!(
        "growthbook assign: {} decisions in {:.3} s = {:.2} M decisions/s ({} in the experiment)",
        ids.len(),
        elapsed.as_secs_f64(),
        ids.len() as f64 / elapsed.as_secs_f64() / 1e6,
        assigned
    );

    // 2. On a placement, with the service.
    let t = TestDb::sqlite(&[MIGRATIONS]).await;
    let experiments = Experiments::new(t.db().clone(), clock::system(), Pseudonyms::with_key(b"bench"));
    let definition: Definition = serde_json::from_value(serde_json::json!({
        "key": "home-recs", "placement": "home",
        "variants": [{"key": "control", "weight": 0.5}, {"key": "b", "weight": 0.5, "config": {"blend": {"content": 1.5}}}]
    }))
    .unwrap();
    experiments.create(definition).await.unwrap();
    experiments.start("home-recs").await.unwrap();
    let attributes = Attributes::default();
    // Warm: the first call reads the running experiments in the background.
    while experiments.placement_variant("home", "warm", &attributes).is_none() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut latencies = Vec::with_capacity(20_000);
    for i in 0..20_000 {
        let unit = format!("user-{i}");
        let started = Instant::now();
        let v = experiments.placement_variant("home", &unit, &attributes);
        latencies.push(started.elapsed());
        assert!(v.is_some());
        if i % 200 == 0 {
            // Let the background writes run, as a server's other threads would.
            tokio::task::yield_now().await;
        }
    }
    latencies.sort();
    println!(
        "placement_variant: {} calls, p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs (added to a recommendation request)",
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e6,
        percentile(&latencies, 0.99).as_secs_f64() * 1e6,
        latencies.last().unwrap().as_secs_f64() * 1e6
    );
}
