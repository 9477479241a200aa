//! Segment/RudderStack-compatible ingestion, with the exact payload shapes their SDKs send.

use std::io::Write;

use base64::Engine;
use dermis_auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app};

crate::both_backends!(
    sdk_payloads_are_stored_once_with_corrected_time,
    invalid_events_become_dead_letters_and_can_be_replayed,
    another_node_sees_ingested_events_through_the_bus,
    online_features_survive_a_restart,
    erasure_forgets_a_customer_everywhere
);

pub(crate) async fn write_key(app: &TestApp) -> String {
    let res = app.post_json("/v1/write-keys", Role::Admin, &json!({"name": "web-shop"})).await;
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["write_key"].as_str().unwrap().to_owned()
}

async fn events_of(app: &TestApp, query: &str) -> Vec<Value> {
    let page: Value = app.get(&format!("/v1/events?{query}&limit=500"), Role::Admin).await.json().await.unwrap();
    page["items"].as_array().unwrap().clone()
}

pub(crate) fn basic(key: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{key}:")))
}

/// Posts `body` to an ingestion `path` with a write key.
pub(crate) async fn post_ingest(app: &TestApp, key: &str, path: &str, body: &Value) -> reqwest::Response {
    app.client.post(app.url(path)).header("authorization", basic(key)).json(body).send().await.unwrap()
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

/// One request with a public write key once stored 2.2 GB: 2,500 tiny messages and a 380 KB
/// batch context, copied into each. Now the batch is refused whole, and a message is limited
/// as stored, context included.
#[tokio::test]
async fn a_batch_context_cannot_amplify_what_is_stored() {
    let app = spawn_app().await;
    let key = write_key(&app).await;
    let dir = app.test_db.data_dir().unwrap().to_path_buf();
    let size = || -> u64 { std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum() };
    let before = size();
    let tiny: Vec<Value> = (0..2500).map(|i| json!({"type": "identify", "userId": format!("u{i}")})).collect();
    let body = json!({"batch": tiny, "context": {"blob": "x".repeat(380_000)}});
    let problem = assert_problem(post_ingest(&app, &key, "/v1/batch", &body).await, 413).await;
    assert!(problem["detail"].as_str().unwrap().contains("merged into every message"), "{problem}");
    // A context under the message limit, still copied far beyond the request's own size.
    let body = json!({"batch": tiny, "context": {"blob": "x".repeat(20_000)}});
    assert_problem(post_ingest(&app, &key, "/v1/batch", &body).await, 413).await;
    assert!(events_of(&app, "user_id=u1").await.is_empty(), "nothing of a refused batch is stored");
    // A 20 KB context and a 20 KB message: the stored message would be 40 KB; it becomes a dead
    // letter (as sent), the others in the batch are stored.
    let body = json!({"batch": [
        {"type": "track", "userId": "u-ok", "event": "X", "messageId": "ok-1"},
        {"type": "track", "userId": "u-big", "event": "X", "messageId": "big-1", "properties": {"blob": "p".repeat(20_000)}}
    ], "context": {"blob": "c".repeat(20_000)}});
    let r: Value = post_ingest(&app, &key, "/v1/batch", &body).await.json().await.unwrap();
    assert_eq!(r["accepted"], 1, "{r}");
    assert!(r["rejected"][0]["reason"].as_str().unwrap().contains("once the batch's context is merged"), "{r}");
    let grown = size().saturating_sub(before);
    assert!(grown < 4 * 1024 * 1024, "the store grew by {grown} bytes");
}

#[tokio::test]
async fn features_reflect_an_event_as_soon_as_ingestion_answers() {
    let app = spawn_app().await;
    let key = write_key(&app).await;
    let product =
        app.create_product(json!({"name": "Gel Cleanser", "brand": "Dermis Labs", "external_id": "P77"})).await;
    let id = product["id"].as_str().unwrap();
    let view = json!({"userId": "c-rw", "event": "Product Viewed", "messageId": "rw-1", "properties": {"product_id": "P77", "brand": "Dermis Labs", "price": 20}});
    let res =
        app.client.post(app.url("/v1/track")).header("authorization", basic(&key)).json(&view).send().await.unwrap();
    assert_eq!(res.status(), 200);
    // No waiting: the answer above means the feature is there.
    let f: Value = app.get("/v1/features/customers/c-rw", Role::Service).await.json().await.unwrap();
    // Kept under the product's Dermis id, whatever id the web shop sent.
    assert_eq!(f["recent_views"][0]["product_id"], id);
    assert_eq!(f["session"], json!([id]));
    let order = json!({"userId": "c-rw", "event": "Order Completed", "messageId": "rw-2",
        "properties": {"order_id": "o-9", "products": [{"product_id": "P77", "price": 20, "quantity": 2}]}});
    for _ in 0..2 {
        app.client.post(app.url("/v1/t")).header("authorization", basic(&key)).json(&order).send().await.unwrap();
    }
    let f: Value = app.get("/v1/features/customers/c-rw", Role::Service).await.json().await.unwrap();
    assert_eq!(f["spend_minor"], 4000, "a duplicate order counts once");
    let p: Value = app.get("/v1/features/products/P77", Role::Customer).await.json().await.unwrap();
    assert_eq!((p["views"][2].as_i64(), p["purchases"][2].as_i64()), (Some(1), Some(1)));
    let by_id: Value = app.get(&format!("/v1/features/products/{id}"), Role::Customer).await.json().await.unwrap();
    assert_eq!(by_id, p, "one product, one set of features, by either id");
    // Nothing is made up for what does not exist.
    assert_problem(app.get("/v1/features/products/P-nope", Role::Service).await, 404).await;
    assert_problem(app.get("/v1/features/customers/c-never-seen", Role::Service).await, 404).await;
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

async fn track(app: &TestApp, key: &str, body: &Value) {
    let res =
        app.client.post(app.url("/v1/track")).header("authorization", basic(key)).json(body).send().await.unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

async fn another_node_sees_ingested_events_through_the_bus(app: TestApp) {
    let mut peer = app.peer("node-b").await;
    let key = write_key(&app).await;
    track(
        &app,
        &key,
        &json!({"userId": "c-x", "event": "Product Viewed", "messageId": "x-1",
        "properties": {"product_id": "P5", "brand": "Dermis Labs"}}),
    )
    .await;
    // Node B keeps its own features in memory; it learns of the view from the bus, not from
    // the request (which node A answered).
    let f = eventually_viewed(&peer.client, peer.url("/v1/features/customers/c-x"), 1).await;
    assert_eq!(f["recent_views"][0]["product_id"], "P5", "node B never saw the view");
    assert_eq!(f["brand_affinity"]["Dermis Labs"], 1, "counted once on node B");
    // Node B reports how far behind its consumer is.
    let metrics = peer.client.get(peer.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("bus_consumer_lag{consumer=\"features-node-b\"}"), "{metrics}");
    peer.stop().await;
}

async fn online_features_survive_a_restart(mut app: TestApp) {
    let key = write_key(&app).await;
    let p1 = app.create_product(json!({"name": "Toner", "brand": "Dermis Labs", "external_id": "P1"})).await;
    let p1 = p1["id"].as_str().unwrap().to_owned();
    track(
        &app,
        &key,
        &json!({"userId": "c-r", "event": "Product Viewed", "messageId": "r-1",
        "properties": {"product_id": "P1"}}),
    )
    .await;
    // Saved at shutdown, restored at start.
    app.restart().await;
    let f = eventually_viewed(&app.client, app.url("/v1/features/customers/c-r"), 1).await;
    assert_eq!(f["recent_views"][0]["product_id"], p1);
    // Without snapshots, a restart rebuilds from the event log; either way each event once.
    track(
        &app,
        &key,
        &json!({"userId": "c-r", "event": "Product Viewed", "messageId": "r-2",
        "properties": {"product_id": "P2"}}),
    )
    .await;
    app.config.features.snapshot_secs = 0;
    app.restart().await;
    let f = eventually_viewed(&app.client, app.url("/v1/features/customers/c-r"), 2).await;
    assert_eq!(f["recent_views"][0]["product_id"], "P2", "a product the catalog does not know keeps the event's id");
    let p: Value = app.get("/v1/features/products/P1", Role::Service).await.json().await.unwrap();
    assert_eq!(p["views"][0], 1, "replayed events count once");
}

/// Waits (up to 15 s: a rebuild runs in the background at start, a peer learns from the bus)
/// until the customer features at `url` list `n` views.
async fn eventually_viewed(client: &reqwest::Client, url: String, n: usize) -> Value {
    let started = std::time::Instant::now();
    loop {
        let res = client.get(&url).bearer_auth(crate::helpers::token(Role::Service)).send().await.unwrap();
        // 404: nothing is known of the customer (yet, or any more).
        let f: Value = if res.status() == 404 { json!({"recent_views": []}) } else { res.json().await.unwrap() };
        if f["recent_views"].as_array().unwrap().len() >= n || started.elapsed().as_secs() > 15 {
            assert_eq!(f["recent_views"].as_array().unwrap().len(), n, "{f}");
            return f;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn purchases_are_understood_through_the_catalog() {
    let app = spawn_app().await;
    let product = app
        .create_product(
            json!({"name": "Barrier Cream", "brand": "Dermis Labs", "category": "Skincare/Moisturizers/Face Creams",
            "external_id": "P900", "ingredients": "Water, Glycerin, Niacinamide, Ceramide NP, Cholesterol"}),
        )
        .await;
    let key = write_key(&app).await;
    // A web shop sends the id it knows the product by (the imported one) and no brand.
    track(
        &app,
        &key,
        &json!({"userId": "c-cat", "event": "Order Completed", "messageId": "cat-1",
        "properties": {"order_id": "o-1", "products": [{"product_id": "P900", "price": 160, "quantity": 1}]}}),
    )
    .await;
    let f: Value = app.get("/v1/features/customers/c-cat", Role::Service).await.json().await.unwrap();
    assert_eq!(f["purchases_by_step"]["moisturizer"], 1, "{f}");
    assert_eq!(f["brand_affinity"]["Dermis Labs"], 5, "brand from the catalog: {f}");
    assert_eq!(f["ingredient_affinity"]["niacinamide"], 5, "{f}");
    assert_eq!(f["loyalty_tier"], "silver");
    let actives = product["attributes"]["actives"].as_array().unwrap();
    for a in actives {
        assert_eq!(f["ingredient_affinity"][a.as_str().unwrap()], 5, "every active of the product counts: {f}");
    }
}

/// The same two nodes with NATS JetStream as the bus (a stream of their own, deleted after).
mod nats {
    #[tokio::test]
    async fn another_node_sees_ingested_events_through_the_bus() {
        let url = match std::env::var("DERMIS_TEST_NATS_URL") {
            Ok(u) if !u.is_empty() => u,
            _ => {
                assert!(
                    std::env::var("DERMIS_REQUIRE_SERVICES").is_err(),
                    "DERMIS_REQUIRE_SERVICES is set but DERMIS_TEST_NATS_URL is not"
                );
                eprintln!("skipped: set DERMIS_TEST_NATS_URL=nats://... to run the NATS variant");
                return;
            }
        };
        // A name of its own (a pid repeats across runs on a server that outlives them).
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let stream = format!("DERMIS_T{}_{nanos}", std::process::id());
        let app = crate::helpers::spawn_with(crate::helpers::Backend::Sqlite, |c| {
            c.bus_url = Some(secrecy::SecretString::from(url.clone()));
            c.bus_stream = stream.clone();
        })
        .await
        .unwrap();
        super::another_node_sees_ingested_events_through_the_bus(app).await;
        let bus = dermis_bus::nats::NatsBus::connect(&url, &stream, std::time::Duration::from_secs(30)).await.unwrap();
        bus.delete_stream().await.unwrap();
    }
}

async fn erasure_forgets_a_customer_everywhere(mut app: TestApp) {
    let key = write_key(&app).await;
    let mut peer = app.peer("node-e").await;
    let view = |id: &str, user: Option<&str>, product: &str| {
        let mut m = json!({"anonymousId": "a-e", "event": "Product Viewed", "messageId": id,
            "properties": {"product_id": product}});
        if let Some(u) = user {
            m["userId"] = u.into();
        }
        m
    };
    // Browsing before signing in, then signed in on the same device; someone else; and a
    // message of hers that failed validation.
    track(&app, &key, &view("e-1", None, "P1")).await;
    track(&app, &key, &view("e-2", Some("u-e"), "P2")).await;
    track(
        &app,
        &key,
        &json!({"userId": "u-keep", "event": "Product Viewed", "messageId": "k-1",
        "properties": {"product_id": "P3"}}),
    )
    .await;
    let bad = json!({"writeKey": key, "batch": [{"type": "track", "userId": "u-e", "event": "Product Viewed",
        "messageId": "e-bad", "properties": {"price": -1}}]});
    let r: Value = app.client.post(app.url("/v1/batch")).json(&bad).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["rejected"].as_array().unwrap().len(), 1);
    eventually_viewed(&peer.client, peer.url("/v1/features/customers/u-e"), 1).await;
    // A snapshot that still holds her features (saved at this graceful restart), and from now
    // on no new one: the node restarts below from this snapshot.
    app.config.features.snapshot_secs = 0;
    app.restart().await;
    eventually_viewed(&app.client, app.url("/v1/features/customers/u-e"), 1).await;

    assert_problem(
        app.request(Method::DELETE, "/v1/events?user_id=u-e", Some(Role::Analyst)).send().await.unwrap(),
        403,
    )
    .await;
    assert_problem(app.request(Method::DELETE, "/v1/events", Some(Role::Admin)).send().await.unwrap(), 422).await;
    let res = app.request(Method::DELETE, "/v1/events?user_id=u-e", Some(Role::Admin)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let erased: Value = res.json().await.unwrap();
    assert_eq!(erased["subjects"], json!(["u-e", "a-e"]), "{erased}");
    assert_eq!(erased["events"], 2, "the signed-in view and the anonymous one: {erased}");
    assert_eq!(erased["dead_letters"], 1, "{erased}");

    assert!(events_of(&app, "user_id=u-e").await.is_empty());
    assert!(events_of(&app, "anonymous_id=a-e").await.is_empty());
    assert_eq!(events_of(&app, "user_id=u-keep").await.len(), 1, "nobody else's events");
    let dead: Value = app.get("/v1/events/dead-letters", Role::Admin).await.json().await.unwrap();
    assert!(!dead.to_string().contains("u-e"), "{dead}");
    eventually_viewed(&app.client, app.url("/v1/features/customers/u-e"), 0).await;
    eventually_viewed(&app.client, app.url("/v1/features/customers/a-e"), 0).await;
    eventually_viewed(&app.client, app.url("/v1/features/customers/u-keep"), 1).await;
    // The other node forgets her through the bus.
    eventually_none(&peer.client, peer.url("/v1/features/customers/u-e")).await;
    peer.stop().await;

    // A restart that restores the snapshot taken before the erasure (no new snapshot at this
    // shutdown) forgets her again; the log replay has nothing of hers to bring back.
    app.restart().await;
    eventually_viewed(&app.client, app.url("/v1/features/customers/u-keep"), 1).await;
    eventually_none(&app.client, app.url("/v1/features/customers/u-e")).await;
    // Erasing again removes nothing more.
    let again: Value = app
        .request(Method::DELETE, "/v1/events?user_id=u-e", Some(Role::Admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["events"], 0);
}

/// Waits (up to 15 s) until the customer features at `url` list no views.
async fn eventually_none(client: &reqwest::Client, url: String) {
    let started = std::time::Instant::now();
    loop {
        let res = client.get(&url).bearer_auth(crate::helpers::token(Role::Service)).send().await.unwrap();
        if res.status() == 404 {
            return;
        }
        let f: Value = res.json().await.unwrap();
        let n = f["recent_views"].as_array().unwrap().len();
        if n == 0 {
            return;
        }
        assert!(started.elapsed().as_secs() < 15, "still {n} views: {f}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
