//! The event log's raw insert rate, without HTTP: the ceiling for batched ingestion.
//!
//!     cargo run --release -p dermis-events --example insert_rate -- [sqlite|postgres://...] [MESSAGES] [BATCH]

use std::time::Instant;

use dermis_events::log::{self, Accepted, LogWriter};
use dermis_events::message::{BatchDefaults, Kind, normalize};
use dermis_store::Db;
use dermis_store::db::PoolSize;
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let target = args.get(1).cloned().unwrap_or_else(|| "sqlite".into());
    let total: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(200_000);
    let batch: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(100);
    let dir = tempfile::tempdir()?;
    let db = if target == "sqlite" {
        Db::open_data_dir(dir.path(), PoolSize::default()).await?
    } else {
        Db::connect(&target, PoolSize::default()).await?
    };
    db.migrate(dermis_store::MIGRATIONS).await?;
    db.migrate(dermis_events::MIGRATIONS).await?;
    let writer = LogWriter::new(db.clone());
    let run = dermis_core::ids::new_id("run");
    let now = dermis_core::clock::now_ms();
    let mut normalize_secs = 0.0;
    let started = Instant::now();
    let mut done = 0;
    while done < total {
        let t = Instant::now();
        let msgs: Vec<Accepted> = (done..(done + batch).min(total))
            .map(|i| {
                let raw = json!({"userId": format!("u{}", i % 5000), "event": "Product Viewed", "messageId": format!("{run}-{i}"),
                    "properties": {"product_id": format!("P{}", i % 8000), "price": 12.5}});
                Accepted { message: normalize(&raw, Some(Kind::Track), &BatchDefaults::default(), now).unwrap(), schema: None }
            })
            .collect();
        normalize_secs += t.elapsed().as_secs_f64();
        done += msgs.len();
        let job = log::Append {
            write_key_id: "wk_bench".into(),
            accepted: msgs,
            dead: Vec::new(),
            to_bus: None,
            received_at: now,
        };
        writer.append(job).await?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{target}: {total} events in batches of {batch}: {:.0} events/s ({secs:.2} s, of which building messages {normalize_secs:.2} s)",
        total as f64 / secs
    );
    Ok(())
}
