//! Event-to-feature freshness: how long after a client sends an event a node's online features
//! show it. Sends `N` `Product Viewed` events one at a time to node A (each for a new customer)
//! and polls node B's `/v1/features/customers/{id}` every 0.5 ms until the view is there. With
//! A = B this is the same-node path (read-your-writes: visible as soon as ingestion answers);
//! with two nodes it includes the outbox relay, the bus and B's consumer.
//!
//!     cargo run --release --example freshness -- A_URL B_URL WRITE_KEY TOKEN [N]

use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() >= 5, "usage: freshness A_URL B_URL WRITE_KEY TOKEN [N]");
    let (a, b, key, token) = (&args[1], &args[2], &args[3], &args[4]);
    let n: usize = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(500);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let run = std::process::id();
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let customer = format!("fresh-{run}-{i}");
        let event = json!({"userId": customer, "event": "Product Viewed", "messageId": format!("fresh-{run}-{i}"),
            "properties": {"product_id": "P1", "price": 10}});
        let started = Instant::now();
        let res = client.post(format!("{a}/v1/track")).basic_auth(key, Some("")).json(&event).send().await?;
        anyhow::ensure!(res.status() == 200, "ingestion answered {}", res.status());
        loop {
            let f: Value = client
                .get(format!("{b}/v1/features/customers/{customer}"))
                .bearer_auth(token)
                .send()
                .await?
                .json()
                .await?;
            if f["recent_views"].as_array().is_some_and(|v| !v.is_empty()) {
                break;
            }
            anyhow::ensure!(started.elapsed() < Duration::from_secs(10), "event {i} not visible after 10 s");
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    samples.sort_by(|x, y| x.total_cmp(y));
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    println!("{n} events: freshness p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", at(0.5), at(0.99), at(1.0));
    Ok(())
}
