//! The customers' events through the real relay and bus to another node's profile projection,
//! on both backends: the wiring the server does, with one registration each.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use dermis_bus::EventBus;
use dermis_bus::embedded::EmbeddedBus;
use dermis_bus::projection::{Projection, Projections, Settings};
use dermis_bus::relay::{self, OutboxSource};
use dermis_customers::input::PutConsent;
use dermis_customers::projection::ProfileProjection;
use dermis_customers::relay::CustomersOutbox;
use dermis_store::{Db, Migration};
use serde_json::json;

const ALL: &[&[Migration]] = &[
    dermis_store::MIGRATIONS,
    dermis_auth::MIGRATIONS,
    dermis_events::MIGRATIONS,
    dermis_bus::MIGRATIONS,
    dermis_customers::MIGRATIONS,
];

async fn another_nodes_projection_follows_through_the_relay_and_the_bus(db: Db) {
    let bus: Arc<dyn EventBus> = Arc::new(EmbeddedBus::new(db.clone()).with_clock(clock()));
    // Node A takes the writes; node B only consumes.
    let a = customers(&db).await;
    let outbox: Arc<dyn OutboxSource> = Arc::new(CustomersOutbox::of(&a));
    let relay = tokio::spawn(relay::run(bus.clone(), vec![outbox], Duration::from_millis(50)));
    let loader_b = customers(&db).await;
    let projection_b = Arc::new(ProfileProjection::new(loader_b));
    let settings =
        Settings { node_id: "node-b".into(), lag_alert: 1000, lag_every: Duration::from_secs(5), batch: 100 };
    let running = Projections::start(bus.clone(), vec![projection_b.clone() as Arc<dyn Projection>], settings);

    let body = json!({"email": "ada@example.com", "user_id": "shop-ada",
                      "consents": [{"purpose": "health_data", "granted": true, "text_version": "v1"}],
                      "skin_profile": {"skin_type": "combination", "allergies": ["parabens"]}});
    let made = a.create(None, create(body).parse(NOW).unwrap(), &admin()).await.unwrap().value;
    let mut ok = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if projection_b.get("shop-ada").is_some_and(|p| p.allergy_ids.contains("methylparaben")) {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ok, "node B learned the new customer from the bus");

    let withdraw =
        PutConsent { granted: false, text_version: "v1".into(), channel: None }.parse("health_data").unwrap();
    a.set_consent(&made.id, withdraw, &admin()).await.unwrap();
    let mut ok = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if projection_b.get(&made.id).is_some_and(|p| !p.consents.health_data && p.allergy_ids.is_empty()) {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ok, "node B learned the withdrawal");
    a.erase(&made.id).await.unwrap();
    let mut ok = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if projection_b.get(&made.id).is_none() && projection_b.get("shop-ada").is_none() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ok, "node B forgot the erased customer");
    relay.abort();
    running.stop().await;
}

dermis_store::backend_tests!(ALL; another_nodes_projection_follows_through_the_relay_and_the_bus);
