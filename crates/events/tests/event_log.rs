//! The event log's writer on both backends: concurrent requests (grouped into one commit on
//! SQLite) each learn exactly which of their messages were new, and nothing is stored twice.

use dermis_events::log::{Accepted, Append, LogWriter};
use dermis_events::message::{BatchDefaults, Kind, normalize};
use dermis_store::Db;
use dermis_store::sqlx::{self, Row};
use serde_json::json;

const ALL: &[&[dermis_store::Migration]] = &[dermis_store::MIGRATIONS, dermis_events::MIGRATIONS];

dermis_store::backend_tests!(ALL; concurrent_appends_store_each_message_once);

fn job(ids: std::ops::Range<usize>) -> Append {
    let accepted = ids
        .map(|i| {
            let raw = json!({"userId": "u1", "event": "Product Viewed", "messageId": format!("m{i}"),
                "properties": {"product_id": "P1"}});
            Accepted {
                message: normalize(&raw, Some(Kind::Track), &BatchDefaults::default(), 1).unwrap(),
                schema: None,
            }
        })
        .collect();
    Append { write_key_id: "wk_1".into(), accepted, dead: Vec::new(), to_bus: None, received_at: 1 }
}

async fn concurrent_appends_store_each_message_once(db: Db) {
    let writer = LogWriter::new(db.clone());
    // 24 requests at once, overlapping: request k sends messages k*5 .. k*5+10, so every
    // message but the first five and last five is sent twice.
    let tasks: Vec<_> = (0..24)
        .map(|k| {
            let writer = writer.clone();
            tokio::spawn(async move { writer.append(job(k * 5..k * 5 + 10)).await.unwrap() })
        })
        .collect();
    let mut new = 0;
    for t in tasks {
        new += t.await.unwrap();
    }
    let stored: i64 = sqlx::query("SELECT COUNT(*) FROM events").fetch_one(db.reader()).await.unwrap().get(0);
    assert_eq!(stored, 23 * 5 + 10, "each distinct message stored once");
    assert_eq!(new as i64, stored, "the requests' counts of new messages add up to what was stored");
}
