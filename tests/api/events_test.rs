//! Segment/RudderStack-compatible ingestion, with the exact payload shapes their SDKs send.

use std::io::Write;

use base64::Engine;
use dermis_auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app};

crate::both_backends!(
    sdk_payloads_are_stored_once_with_corrected_time,
    invalid_events_become_dead_letters_and_can_be_replayed
);

async fn write_key(app: &TestApp) -> String {
    let res = app.post_json("/v1/write-keys", Role::Admin, &json!({"name": "web-shop"})).await;
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["write_key"].as_str().unwrap().to_owned()
}

async fn events_of(app: &TestApp, query: &str) -> Vec<Value> {
    let page: Value = app.get(&format!("/v1/events?{query}&limit=500"), Role::Admin).await.json().await.unwrap();
    page["items"].as_array().unwrap().clone()
}

fn basic(key: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{key}:")))
}

fn gzip(body: &Value) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(body.to_string().as_bytes()).unwrap();
    e.finish().unwrap()
}

async fn sdk_payloads_are_stored_once_with_corrected_time(app: TestApp) {
    let key = write_key(&app).await;
    // analytics.js: text/plain to the short path, write key in the body, client clock 1 h behind.
    let browser = json!({
        "type": "track", "event": "Product Viewed", "anonymousId": "anon-1", "messageId": "ajs-1",
        "properties": {"product_id": "P123", "price": 12.5},
        "timestamp": "2020-01-01T09:00:00.000Z", "sentAt": "2020-01-01T09:00:01.000Z",
        "context": {"library": {"name": "analytics.js", "version": "4.1.0"}, "page": {"path": "/p/123"}},
        "writeKey": key
    });
    for _ in 0..2 {
        let res = app
            .client
            .post(app.url("/v1/t"))
            .header("content-type", "text/plain")
            .body(browser.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let stored = events_of(&app, "anonymous_id=anon-1").await;
    assert_eq!(stored.len(), 1, "the retry was deduplicated");
    let m = &stored[0]["message"];
    assert_eq!(m["originalTimestamp"], "2020-01-01T09:00:00Z");
    let ts = m["timestamp"].as_str().unwrap();
    let rec = m["receivedAt"].as_str().unwrap();
    assert!(ts < rec && ts.starts_with(&rec[..4]), "timestamp {ts} = receivedAt {rec} − 1 s");
    assert!(m.get("writeKey").is_none());
    assert_eq!(stored[0]["schema"], "product_viewed@1");

    // analytics-node: Basic auth, gzip, batch with batch-level context; RudderStack adds its fields.
    let batch = json!({
        "batch": [
            {"type": "identify", "userId": "u-1", "traits": {"email": "a@example.com"}, "messageId": "node-1", "timestamp": "2026-11-23T10:00:00Z"},
            {"type": "track", "userId": "u-1", "event": "Order Completed", "messageId": "node-2",
             "properties": {"order_id": "o-1", "total": 30, "currency": "EUR", "products": [{"product_id": "P1", "quantity": 1, "price": 30}]}},
            {"type": "page", "userId": "u-1", "name": "Home", "messageId": "rs-1", "channel": "web", "rudderId": "r-1"}
        ],
        "context": {"library": {"name": "analytics-node"}},
        "sentAt": "2026-11-23T10:00:01Z"
    });
    let res = app
        .client
        .post(app.url("/v1/batch"))
        .header("authorization", basic(&key))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gzip(&batch))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let r: Value = res.json().await.unwrap();
    assert_eq!(
        (r["success"].as_bool(), r["accepted"].as_u64(), r["duplicates"].as_u64()),
        (Some(true), Some(3), Some(0)),
        "{r}"
    );
    let user = events_of(&app, "user_id=u-1").await;
    assert_eq!(user.len(), 3);
    assert!(
        user.iter().all(|e| e["message"]["context"]["library"]["name"] == "analytics-node"),
        "batch context merged"
    );
    // Sending the same batch again stores nothing new.
    let again: Value = app
        .client
        .post(app.url("/v1/b"))
        .header("authorization", basic(&key))
        .json(&batch)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((again["accepted"].as_u64(), again["duplicates"].as_u64()), (Some(0), Some(3)));
}

async fn invalid_events_become_dead_letters_and_can_be_replayed(app: TestApp) {
    let key = write_key(&app).await;
    let batch = json!({"writeKey": key, "batch": [
        {"type": "track", "userId": "u-2", "event": "Product Viewed", "messageId": "bad-1", "properties": {"price": -1}},
        {"type": "track", "event": "Anything", "messageId": "bad-2"},
        {"type": "track", "userId": "u-2", "event": "reaction_reported", "messageId": "ok-1", "properties": {"product_id": "P9", "severity": "mild"}}
    ]});
    let r: Value = app.client.post(app.url("/v1/batch")).json(&batch).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["success"], false);
    assert_eq!(r["accepted"], 1);
    let rejected = r["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0]["index"], 0);
    assert!(rejected[0]["reason"].as_str().unwrap().contains("product_viewed@1"));
    assert!(rejected[1]["reason"].as_str().unwrap().contains("userId or anonymousId"));

    let dead: Value = app.get("/v1/events/dead-letters", Role::Admin).await.json().await.unwrap();
    let items = dead["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "nothing is dropped silently");
    assert!(items.iter().all(|d| d["payload"].get("writeKey").is_none()));
    let first = items[0]["id"].as_str().unwrap();
    // Replaying unchanged fails; replaying a corrected message stores it.
    let res = app
        .request(Method::POST, &format!("/v1/events/dead-letters/{first}/replay"), Some(Role::Admin))
        .send()
        .await
        .unwrap();
    assert_problem(res, 422).await;
    let fixed = json!({"message": {"type": "track", "userId": "u-2", "event": "Product Viewed", "messageId": "bad-1", "properties": {"product_id": "P1", "price": 1}}});
    let res = app
        .request(Method::POST, &format!("/v1/events/dead-letters/{first}/replay"), Some(Role::Admin))
        .json(&fixed)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["stored"], true);
    let twice = app
        .request(Method::POST, &format!("/v1/events/dead-letters/{first}/replay"), Some(Role::Admin))
        .json(&fixed)
        .send()
        .await
        .unwrap();
    assert_eq!(twice.json::<Value>().await.unwrap()["stored"], false, "a second replay stores nothing");
    assert_eq!(events_of(&app, "user_id=u-2").await.len(), 2);
    let dead: Value = app.get("/v1/events/dead-letters", Role::Admin).await.json().await.unwrap();
    assert!(dead["items"][0]["replayed_at"].is_string());
}

#[tokio::test]
async fn bad_keys_limits_and_malformed_bodies_are_refused_clearly() {
    let app = spawn_app().await;
    let key = write_key(&app).await;
    let track = json!({"userId": "u", "event": "X"});
    assert_problem(app.client.post(app.url("/v1/track")).json(&track).send().await.unwrap(), 401).await;
    let res = app
        .client
        .post(app.url("/v1/track"))
        .header("authorization", basic("dwk_nope"))
        .json(&track)
        .send()
        .await
        .unwrap();
    assert_problem(res, 401).await;
    let res = app
        .client
        .post(app.url("/v1/track"))
        .header("authorization", basic(&key))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_problem(res, 400).await;
    let many: Vec<Value> = (0..2501)
        .map(|i| json!({"type": "track", "userId": "u", "event": "E", "messageId": format!("m{i}")}))
        .collect();
    let res = app
        .client
        .post(app.url("/v1/batch"))
        .header("authorization", basic(&key))
        .json(&json!({"batch": many}))
        .send()
        .await
        .unwrap();
    assert!(matches!(res.status().as_u16(), 413), "{}", res.status());
    let huge = json!({"userId": "u", "event": "X", "properties": {"blob": "x".repeat(600_000)}});
    let res =
        app.client.post(app.url("/v1/track")).header("authorization", basic(&key)).json(&huge).send().await.unwrap();
    assert_problem(res, 413).await;
    let big = json!({"userId": "u", "event": "X", "messageId": "big", "properties": {"blob": "x".repeat(40_000)}});
    let r: Value = app
        .client
        .post(app.url("/v1/track"))
        .header("authorization", basic(&key))
        .json(&big)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(r["rejected"][0]["reason"].as_str().unwrap().contains("bytes"), "{r}");
    // Browsers may post from any origin.
    let pre = app
        .client
        .request(Method::OPTIONS, app.url("/v1/t"))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.headers()["access-control-allow-origin"], "https://shop.example");
    // Revoked keys stop working.
    let keys: Value = app.get("/v1/write-keys", Role::Admin).await.json().await.unwrap();
    let id = keys["items"][0]["id"].as_str().unwrap();
    assert_eq!(
        app.request(Method::DELETE, &format!("/v1/write-keys/{id}"), Some(Role::Admin)).send().await.unwrap().status(),
        204
    );
    let res =
        app.client.post(app.url("/v1/track")).header("authorization", basic(&key)).json(&track).send().await.unwrap();
    assert_problem(res, 401).await;
    assert_problem(app.get("/v1/events?user_id=u", Role::Merchandiser).await, 403).await;
    assert_problem(app.get("/v1/events", Role::Admin).await, 422).await;
}

#[tokio::test]
async fn features_reflect_an_event_as_soon_as_ingestion_answers() {
    let app = spawn_app().await;
    let key = write_key(&app).await;
    let view = json!({"userId": "c-rw", "event": "Product Viewed", "messageId": "rw-1", "properties": {"product_id": "P77", "brand": "Dermis Labs", "price": 20}});
    let res =
        app.client.post(app.url("/v1/track")).header("authorization", basic(&key)).json(&view).send().await.unwrap();
    assert_eq!(res.status(), 200);
    // No waiting: the answer above means the feature is there.
    let f: Value = app.get("/v1/features/customers/c-rw", Role::Service).await.json().await.unwrap();
    assert_eq!(f["recent_views"][0]["product_id"], "P77");
    assert_eq!(f["session"], json!(["P77"]));
    let order = json!({"userId": "c-rw", "event": "Order Completed", "messageId": "rw-2",
        "properties": {"order_id": "o-9", "products": [{"product_id": "P77", "price": 20, "quantity": 2}]}});
    for _ in 0..2 {
        app.client.post(app.url("/v1/t")).header("authorization", basic(&key)).json(&order).send().await.unwrap();
    }
    let f: Value = app.get("/v1/features/customers/c-rw", Role::Service).await.json().await.unwrap();
    assert_eq!(f["spend_minor"], 4000, "a duplicate order counts once");
    let p: Value = app.get("/v1/features/products/P77", Role::Customer).await.json().await.unwrap();
    assert_eq!((p["views"][2].as_i64(), p["purchases"][2].as_i64()), (Some(1), Some(1)));
    // A customer reads only their own features.
    let own = app
        .client
        .get(app.url("/v1/features/customers/c-rw"))
        .bearer_auth(crate::helpers::token_for(Role::Customer, "c-rw", None))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    assert_problem(app.get("/v1/features/customers/c-rw", Role::Customer).await, 403).await;
    assert_problem(app.get("/v1/features/customers/c-rw", Role::Merchandiser).await, 403).await;
}
