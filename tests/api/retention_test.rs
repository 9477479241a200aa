//! The retention sweeper on a running app's store, on both backends: with the clock 400 days on
//! (events kept 395 by default), a customer's events are anonymized, no longer listed for them,
//! and counted in `/metrics`; a second sweep changes nothing.

use std::time::{Duration, Instant};

use dermis_auth::Role;
use dermis_core::clock::ManualClock;
use dermis_customers::Customers;
use dermis_events::Pseudonyms;
use dermis_events::ingest::Ingestor;
use dermis_server::background::{Sweeper, Swept};
use serde_json::{Value, json};

use crate::events_test::{post_ingest, write_key};
use crate::helpers::TestApp;

crate::both_backends!(the_sweeper_anonymizes_old_events_and_counts_them);

const DAY: i64 = 24 * 60 * 60 * 1000;

async fn listed(app: &TestApp, user: &str) -> Vec<Value> {
    let page: Value = app.get(&format!("/v1/events?user_id={user}&limit=100"), Role::Admin).await.json().await.unwrap();
    page["items"].as_array().unwrap().clone()
}

async fn the_sweeper_anonymizes_old_events_and_counts_them(app: TestApp) {
    let key = write_key(&app).await;
    let body = json!({"userId": "ret-api-user", "event": "Product Viewed", "messageId": "ret-1",
        "properties": {"product_id": "P-77"}, "context": {"ip": "192.0.2.44"}});
    let res = post_ingest(&app, &key, "/v1/track", &body).await;
    assert_eq!(res.status(), 200);
    assert_eq!(listed(&app, "ret-api-user").await.len(), 1);

    let db = app.test_db.db().clone();
    let clock = ManualClock::at(dermis_core::clock::now_ms() + 400 * DAY);
    let keyring = dermis_server::app::customers_keyring(&app.config).unwrap();
    let customers = Customers::open(db.clone(), keyring, clock.clone()).await.unwrap();
    let mut sweeper = Sweeper {
        ingestor: Ingestor::new(db.clone(), 4, Pseudonyms::with_key(b"test")),
        customers,
        retention: app.config.retention.clone(),
        clock,
        events_after: String::new(),
    };
    // On SQLite the event must be in the customer index first (a second or so).
    let started = Instant::now();
    let mut events = 0;
    while events == 0 {
        assert!(started.elapsed() < Duration::from_secs(15), "the old event was never anonymized");
        events += sweeper.sweep().await.events;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(events, 1);
    assert!(listed(&app, "ret-api-user").await.is_empty(), "no longer the customer's event");
    assert_eq!(sweeper.sweep().await, Swept::default(), "a second sweep changes nothing");

    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"dermis_retention_swept_total{data="events"}"#), "{metrics}");
}
