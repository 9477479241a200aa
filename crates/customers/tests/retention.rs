//! Retention of skin measurements on both backends: readings recorded before the cutoff are
//! deleted, newer ones kept, a second run deletes nothing.

mod common;

use std::sync::Arc;

use common::*;
use dermis_core::clock::{ManualClock, rfc3339};
use dermis_customers::Customers;
use dermis_customers::crypto::Keyring;
use dermis_customers::feed::CustomersIngest;
use dermis_customers::input::PutConsent;
use dermis_events::Pseudonyms;
use dermis_events::ingest::Ingestor;
use dermis_store::Db;
use dermis_store::sqlx::{self, Row};
use serde_json::{Value, json};

const DAY: i64 = 24 * 60 * 60 * 1000;

dermis_store::backend_tests!(MIGRATIONS; measurements_past_their_retention_are_deleted_and_newer_ones_kept);

fn measurement(id: &str, at: i64) -> Value {
    json!({"type": "track", "event": "Skin Measurement Recorded", "messageId": id, "userId": "shop-ret",
           "timestamp": rfc3339(at),
           "properties": {"device_id": "scope-1", "hydration": {"value": 40.0, "unit": "%"}}})
}

async fn ingest(i: &Ingestor, messages: Vec<Value>) {
    let r = i.ingest_as("wk_1".into(), None, json!({ "batch": messages })).await.expect("ingested");
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
}

async fn recorded(db: &Db) -> Vec<i64> {
    let rows = sqlx::query("SELECT recorded_at FROM customer_measurements ORDER BY recorded_at")
        .fetch_all(db.reader())
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

async fn measurements_past_their_retention_are_deleted_and_newer_ones_kept(db: Db) {
    let long_ago = NOW - 800 * DAY;
    let clock = ManualClock::at(long_ago);
    let c = Customers::open(db.clone(), Keyring::new(master(42)), clock.clone()).await.unwrap();
    let i = Ingestor::new(db.clone(), 4, Pseudonyms::with_key(b"test"))
        .with_clock(clock.clone())
        .with_hook(Arc::new(CustomersIngest::new(c.clone())));
    ingest(
        &i,
        vec![json!({"type": "identify", "messageId": "i1", "userId": "shop-ret", "traits": {"skin_type": "dry"}})],
    )
    .await;
    let consent = PutConsent { granted: true, text_version: "v1".into(), channel: Some("web".into()) }
        .parse("health_data")
        .unwrap();
    c.set_consent("shop-ret", consent, &admin()).await.unwrap();
    ingest(&i, vec![measurement("m1", long_ago - DAY), measurement("m2", long_ago)]).await;
    clock.set(NOW);
    ingest(&i, vec![measurement("m3", NOW - DAY)]).await;
    assert_eq!(recorded(&db).await, [long_ago, long_ago, NOW], "two readings recorded long ago, one now");

    let cutoff = NOW - 730 * DAY;
    assert_eq!(c.delete_measurements_before(cutoff).await.unwrap(), 2, "the readings older than 730 days");
    assert_eq!(recorded(&db).await, [NOW], "the newer reading kept");
    assert_eq!(c.delete_measurements_before(cutoff).await.unwrap(), 0, "a second run deletes nothing");
    let profile = c.get("shop-ret").await.unwrap();
    assert_eq!(profile.skin_profile.measurements.len(), 1, "the profile shows what is left");
}
