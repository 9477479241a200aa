//! Feature store latency: apply rate, and customer / product read p50 and p99, in memory and on
//! Redis (loopback).
//!
//!     cargo run --release -p dermis-features --example feature_bench -- [redis://127.0.0.1:6379]

use std::sync::Arc;
use std::time::Instant;

use dermis_features::memory::MemoryFeatures;
use dermis_features::redis_store::RedisFeatures;
use dermis_features::{Action, FeatureEvent, FeatureStore};

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p) as usize]
}

async fn run(store: Arc<dyn FeatureStore>, events: usize, reads: usize) {
    let now = 1_800_000_000_000_i64;
    let started = Instant::now();
    for i in 0..events {
        let action = match i % 20 {
            0 => Action::Purchase,
            1..=3 => Action::AddToCart,
            _ => Action::View,
        };
        let e = FeatureEvent {
            id: format!("e{i}"),
            customer_id: format!("c{}", i % 5_000),
            product_id: format!("p{}", i % 2_000),
            action,
            brand: Some(format!("b{}", i % 50)),
            category: Some("Skincare/Moisturizers".into()),
            routine_step: Some("moisturizer".into()),
            actives: vec![format!("a{}", i % 30), "niacinamide".into()],
            amount_minor: 2500,
            at_ms: now - ((events - i) as i64) * 10,
            received_at_ms: now,
        };
        store.apply(&e).await.unwrap();
    }
    let apply_rate = events as f64 / started.elapsed().as_secs_f64();
    let mut customer = Vec::with_capacity(reads);
    let mut product = Vec::with_capacity(reads);
    for i in 0..reads {
        let t = Instant::now();
        std::hint::black_box(store.customer(&format!("c{}", i % 5_000), now).await.unwrap());
        customer.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        std::hint::black_box(store.product(&format!("p{}", i % 2_000), now).await.unwrap());
        product.push(t.elapsed().as_secs_f64() * 1e6);
    }
    println!(
        "| {} | {:.0} events/s | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs |",
        store.name(),
        apply_rate,
        percentile(&mut customer, 0.5),
        percentile(&mut customer, 0.99),
        percentile(&mut product, 0.5),
        percentile(&mut product, 0.99)
    );
}

#[tokio::main]
async fn main() {
    println!("| store | apply | customer read p50 | p99 | product read p50 | p99 |");
    println!("|---|---|---|---|---|---|");
    run(Arc::new(MemoryFeatures::new()), 200_000, 50_000).await;
    if let Some(url) = std::env::args().nth(1) {
        let prefix = format!("bench{}", std::process::id());
        run(Arc::new(RedisFeatures::connect(&url, &prefix).await.unwrap()), 50_000, 20_000).await;
    }
}
