//! Appends per second and append latency, sequential and with 16 concurrent writers, on SQLite
//! (a temporary data dir) and on PostgreSQL when `DERMIS_TEST_DATABASE_URL` is set.
//!
//! `cargo run -p dermis-audit --example append_bench`

use std::sync::Arc;
use std::time::{Duration, Instant};

use dermis_audit::{Action, Audit, Entry};
use dermis_store::testing::TestDb;

fn entry(i: usize) -> Entry {
    Entry::new("staff-1", "store_associate", "consultation", format!("req-{i}"), Action::CUSTOMER_READ)
        .about(format!("cust-{}", i % 100))
        .fields(&["email", "allergies"])
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

async fn run(name: &str, t: &TestDb) {
    let audit = Audit::new(t.db().clone(), dermis_core::clock::system());
    let n = 500;
    let start = Instant::now();
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let s = Instant::now();
        audit.record(entry(i)).await.expect("append");
        lat.push(s.elapsed());
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{name}: sequential  {:>7.0} appends/s, p99 {:?}", n as f64 / secs, p99(lat));

    let start = Instant::now();
    let audit = Arc::new(audit);
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let audit = audit.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                for i in 0..n / 16 {
                    let s = Instant::now();
                    audit.record(entry(t * 1000 + i)).await.expect("append");
                    lat.push(s.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("task"));
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{name}: 16 writers  {:>7.0} appends/s, p99 {:?}", lat.len() as f64 / secs, p99(lat));
    let s = Instant::now();
    let count = audit.verify().await.expect("verify").expect("intact");
    println!("{name}: verify of {count} entries {:?}", s.elapsed());
}

#[tokio::main]
async fn main() {
    let sqlite = TestDb::sqlite(&[dermis_store::MIGRATIONS, dermis_audit::MIGRATIONS]).await;
    run("sqlite", &sqlite).await;
    if let Some(pg) = TestDb::postgres(&[dermis_store::MIGRATIONS, dermis_audit::MIGRATIONS]).await {
        run("postgres", &pg).await;
    }
}
