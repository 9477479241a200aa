//! What an erasure leaves behind, judged on the raw bytes of the store (the SQLite file, its WAL
//! and shared memory; a `pg_dump` of PostgreSQL), the files' modes, and erasure on two nodes.

use std::time::Duration;

use dermis_auth::Role;
use dermis_bus::EventBus;
use reqwest::Method;
use serde_json::{Value, json};

use crate::events_test::{post_ingest, write_key};
use crate::helpers::{Backend, TestApp, assert_problem, spawn_app, spawn_app_on};

const EMAIL: &str = "erase-me.7f3a@example.com";
const MARKER: &str = "MARKER-c41d-9e2b";
const USER: &str = "u-raw-5d1c";

async fn send(app: &TestApp, key: &str, path: &str, body: Value) {
    let res = post_ingest(app, key, path, &body).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

/// Her identify (email), views and an order carrying a marker, a message of hers that became a
/// dead letter, and someone else's view.
async fn her_history(app: &TestApp, key: &str) {
    send(app, key, "/v1/identify", json!({"userId": USER, "anonymousId": "a-raw-5d1c", "traits": {"email": EMAIL}}))
        .await;
    for i in 0..3 {
        send(
            app,
            key,
            "/v1/track",
            json!({"userId": USER, "event": "Product Viewed", "messageId": format!("raw-{i}"),
                "properties": {"product_id": "P-raw", "note": MARKER}}),
        )
        .await;
    }
    send(
        app,
        key,
        "/v1/track",
        json!({"userId": USER, "event": "Order Completed", "messageId": "raw-o",
            "properties": {"order_id": MARKER, "products": [{"product_id": "P-raw", "price": 12, "quantity": 1}]}}),
    )
    .await;
    // Invalid against its schema: kept as a dead letter, with her email in it.
    send(
        app,
        key,
        "/v1/batch",
        json!({"batch": [{"type": "track", "userId": USER, "event": "Product Viewed", "messageId": "raw-bad",
            "properties": {"price": -1, "email": EMAIL}}]}),
    )
    .await;
    send(
        app,
        key,
        "/v1/track",
        json!({"userId": "u-stays", "event": "Product Viewed", "messageId": "stay-1", "properties": {"product_id": "P-raw"}}),
    )
    .await;
}

async fn erase(app: &TestApp) {
    let res =
        app.request(Method::DELETE, &format!("/v1/events?user_id={USER}"), Some(Role::Admin)).send().await.unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let erased: Value = res.json().await.unwrap();
    assert_eq!(erased["events"], 5, "{erased}");
    assert_eq!(erased["dead_letters"], 1, "{erased}");
}

fn holds(bytes: &[u8], needle: &str) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Every byte of every file in the data folder.
fn store_bytes(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect()
}

fn leaks(files: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut found = Vec::new();
    for (name, bytes) in files {
        for needle in [EMAIL, MARKER, USER] {
            if holds(bytes, needle) {
                found.push(format!("{name} holds {needle}"));
            }
        }
    }
    found
}

#[tokio::test]
async fn an_erased_customer_leaves_no_bytes_in_the_sqlite_files() {
    let mut app = spawn_app().await;
    let key = write_key(&app).await;
    her_history(&app, &key).await;
    // A feature snapshot of this node is taken at a graceful restart: it holds her activity.
    app.restart().await;
    let dir = app.test_db.data_dir().unwrap().to_path_buf();
    let before = leaks(&store_bytes(&dir));
    assert!(before.iter().any(|l| l.contains(MARKER)), "the test must see her data before: {before:?}");
    // Her email never reached the log: ingestion moved it out (`dermis_events::pii`).
    assert!(!before.iter().any(|l| l.contains(EMAIL)), "her email was stored in clear: {before:?}");
    erase(&app).await;
    let after = leaks(&store_bytes(&dir));
    assert!(after.is_empty(), "after the erasure: {after:?}");
    // And nothing comes back with the next snapshot and restart.
    app.restart().await;
    // The restart rebuilds features in the background: wait for someone else's to be back.
    let started = std::time::Instant::now();
    while app.get("/v1/features/customers/u-stays", Role::Admin).await.status() != 200 {
        assert!(started.elapsed() < Duration::from_secs(15), "someone else's features never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_problem(app.get(&format!("/v1/features/customers/{USER}"), Role::Admin).await, 404).await;
    let again = leaks(&store_bytes(&dir));
    assert!(again.is_empty(), "after a restart: {again:?}");
}

mod postgres {
    use super::*;

    #[tokio::test]
    async fn an_erased_customer_is_not_in_a_pg_dump() {
        let Some(app) = spawn_app_on(Backend::Postgres).await else { return };
        let key = write_key(&app).await;
        her_history(&app, &key).await;
        let dump = |url: String| async move {
            let out = std::process::Command::new("pg_dump").arg("--data-only").arg(&url).output();
            let out = out.expect("pg_dump runs (Debian's postgresql-client)");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            out.stdout
        };
        let before = dump(app.test_db.url().to_owned()).await;
        assert!(holds(&before, MARKER), "the dump must hold her data before");
        assert!(!holds(&before, EMAIL), "her email was stored in clear (ingestion moves it out)");
        erase(&app).await;
        let after = dump(app.test_db.url().to_owned()).await;
        for needle in [EMAIL, MARKER, USER] {
            assert!(!holds(&after, needle), "the dump still holds {needle}");
        }
        assert!(holds(&after, "stay-1"), "someone else's events stay");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_folder_and_its_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;
    let key = write_key(&app).await;
    her_history(&app, &key).await;
    let dir = app.test_db.data_dir().unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for name in ["dermis.sqlite", "dermis.sqlite-wal", "dermis.sqlite-shm"] {
        let p = dir.join(name);
        assert!(p.exists(), "{name}");
        assert_eq!(mode(&p), 0o600, "{name}");
    }
}

/// Node B applies an update that was on the bus when node A erased its customer (stored by a
/// third node just before the erasure, relayed just after): it is dropped on every node. An
/// update received after the erasure counts.
#[tokio::test]
async fn an_erasure_holds_on_every_node_against_updates_still_on_the_bus() {
    let app = spawn_app().await;
    let key = write_key(&app).await;
    let peer = app.peer("node-tomb").await;
    send(
        &app,
        &key,
        "/v1/track",
        json!({"userId": USER, "event": "Product Viewed", "messageId": "t-1", "properties": {"product_id": "P-1"}}),
    )
    .await;
    let erased_at = dermis_core::clock::now_ms();
    erase_one_user(&app, USER).await;
    let db = app.test_db.db();
    let pseudonyms = dermis_features::Pseudonyms::load(db).await.unwrap();
    let update = |id: &str, received_at_ms: i64| {
        json!({"id": id, "customer_id": pseudonyms.customer(USER), "product_id": "P-late", "action": "view",
            "amount_minor": 0, "at_ms": received_at_ms, "received_at_ms": received_at_ms})
    };
    let bus = dermis_bus::embedded::EmbeddedBus::new(db.clone());
    let late = json!({"write_key_id": "wk_other", "features": [update("late:0", erased_at - 5)]});
    bus.publish("events.ingested", "ingestion", "ing_late", &late.to_string()).await.unwrap();
    // Both nodes have applied (or dropped) it once their consumers caught up.
    for node in ["features-node-tomb", &format!("features-{}", app.config.node_id)] {
        let started = std::time::Instant::now();
        while bus.lag(node, "events.ingested").await.unwrap() > 0 {
            assert!(started.elapsed() < Duration::from_secs(15), "{node} never consumed the late update");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let token = crate::helpers::token(Role::Service);
    for base in [&app.base, &peer.base] {
        let res =
            app.client.get(format!("{base}/v1/features/customers/{USER}")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(res.status(), 404, "{base}: the late update brought her back: {}", res.text().await.unwrap());
    }
    // She comes back after the erasure: a new visit counts, on both nodes.
    let new = json!({"write_key_id": "wk_other", "features": [update("new:0", dermis_core::clock::now_ms() + 1)]});
    bus.publish("events.ingested", "ingestion", "ing_new", &new.to_string()).await.unwrap();
    for base in [&app.base, &peer.base] {
        let started = std::time::Instant::now();
        loop {
            let res = app
                .client
                .get(format!("{base}/v1/features/customers/{USER}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            if res.status() == 200 {
                let f: Value = res.json().await.unwrap();
                assert_eq!(f["recent_views"][0]["product_id"], "P-late");
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(15), "{base}: a visit after the erasure never counted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A message of the previous release (customer named in clear) still on the bus at an upgrade
/// is applied under the customer's pseudonym, so an erasure reaches it.
#[tokio::test]
async fn an_update_naming_a_customer_in_clear_is_applied_under_a_pseudonym() {
    let app = spawn_app().await;
    let db = app.test_db.db();
    let bus = dermis_bus::embedded::EmbeddedBus::new(db.clone());
    let now = dermis_core::clock::now_ms();
    let old = json!({"write_key_id": "wk_old", "features": [{"id": "old:0", "customer_id": "u-legacy",
        "product_id": "P-old", "action": "view", "amount_minor": 0, "at_ms": now}]});
    bus.publish("events.ingested", "ingestion", "ing_old", &old.to_string()).await.unwrap();
    let started = std::time::Instant::now();
    while app.get("/v1/features/customers/u-legacy", Role::Admin).await.status() != 200 {
        assert!(started.elapsed() < Duration::from_secs(15), "the old message was never applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    erase_one_user(&app, "u-legacy").await;
    assert_problem(app.get("/v1/features/customers/u-legacy", Role::Admin).await, 404).await;
}

async fn erase_one_user(app: &TestApp, user: &str) {
    let res =
        app.request(Method::DELETE, &format!("/v1/events?user_id={user}"), Some(Role::Admin)).send().await.unwrap();
    assert_eq!(res.status(), 200);
}
