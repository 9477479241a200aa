//! Personal data of ingested events: `identify` traits (and the same keys in `context.traits`,
//! and a `track` event's email) are moved out of the event log to the customer's encrypted
//! profile before a message is stored, so neither the SQLite files (WAL included) nor a
//! `pg_dump` hold them in clear; features are still computed from those events; a message
//! stored before the move is rewritten by the one-time job; and an erased customer's
//! identifiers are suppressed, so re-ingested events link or create nobody.

use std::time::{Duration, Instant};

use dermis_auth::Role;
use dermis_store::sqlx::{self, Row};
use reqwest::Method;
use serde_json::{Value, json};

use crate::events_test::{post_ingest, write_key};
use crate::helpers::{TestApp, assert_problem};

crate::both_backends!(
    identify_traits_reach_the_encrypted_profile_and_never_the_store_in_clear,
    an_erased_identity_is_not_linked_or_created_again
);

/// What the customer declared through `identify`, none of which may be stored in clear.
const SECRETS: &[&str] = &[
    "Wilhelmina",
    "Quaversmith",
    "wilhelmina.quaversmith@example.org",
    "+33655512347",
    "655512347",
    "Tarrazine",
    "69007",
    "1987-03-14",
    "Linalool",
    "Quibblewort",
    // The message stored before the move (written below as an older release did).
    "Oldrich",
    "Tempelhofer",
    "oldrich.tempelhofer@example.org",
];

async fn send(app: &TestApp, key: &str, path: &str, body: Value) {
    let res = post_ingest(app, key, path, &body).await;
    assert_eq!(res.status(), 200, "{path}: {}", res.text().await.unwrap());
}

async fn json_of(res: reqwest::Response, status: u16) -> Value {
    let url = res.url().to_string();
    let got = res.status().as_u16();
    let text = res.text().await.unwrap();
    assert_eq!(got, status, "{url}: {text}");
    serde_json::from_str(&text).unwrap()
}

fn holds(bytes: &[u8], needle: &str) -> bool {
    bytes.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Every byte of the store: the SQLite file and its WAL (which must exist: a scan that passes
/// because there is no WAL proves nothing), or a `pg_dump`.
async fn store_bytes(app: &TestApp) -> Vec<u8> {
    match app.test_db.data_dir() {
        Some(dir) => {
            let mut bytes = Vec::new();
            let mut names = Vec::new();
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if path.is_file() && (name.ends_with(".sqlite") || name.ends_with(".sqlite-wal")) {
                    bytes.extend(std::fs::read(&path).unwrap());
                    names.push(name);
                }
            }
            assert!(names.iter().any(|n| n.ends_with(".sqlite-wal")), "no WAL file to scan in {names:?}");
            assert!(names.iter().any(|n| n.ends_with(".sqlite")), "no database file in {names:?}");
            bytes
        }
        None => {
            let out = std::process::Command::new("pg_dump").arg("--data-only").arg(app.test_db.url()).output();
            let out = out.expect("pg_dump runs (Debian's postgresql-client)");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            out.stdout
        }
    }
}

fn leaks(bytes: &[u8]) -> Vec<&'static str> {
    SECRETS.iter().copied().filter(|s| holds(bytes, s)).collect()
}

/// Writes an `identify` into the log as a release before the move did: traits in clear.
async fn store_as_before(app: &TestApp, write_key_id: &str) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let payload = json!({
        "type": "identify", "messageId": "old-identify-1", "userId": "shop-ot",
        "traits": {"email": "oldrich.tempelhofer@example.org", "firstName": "Oldrich", "lastName": "Tempelhofer"},
        "context": {"traits": {"email": "oldrich.tempelhofer@example.org"}},
        "timestamp": "2026-01-01T00:00:00.000Z", "receivedAt": "2026-01-01T00:00:00.000Z"
    })
    .to_string();
    let db = app.test_db.db();
    let sql = "INSERT INTO events (id, write_key_id, message_id, kind, event, user_id, anonymous_id, partition_key, \
               schema_ref, timestamp_ms, received_at, payload) \
               VALUES ($1, $2, 'old-identify-1', 'identify', NULL, 'shop-ot', NULL, 'shop-ot', NULL, $3, $3, $4)";
    let q = sqlx::query(sql);
    let q = if app.test_db.data_dir().is_some() {
        // SQLite keys are (ms << 20 | counter); the writer continues above the largest.
        q.bind(now << 20)
    } else {
        q.bind(format!("evt_{}", "0".repeat(26)))
    };
    q.bind(write_key_id).bind(now).bind(payload).execute(db.writer()).await.unwrap();
    // The move ran at start and finished; as after an upgrade, it has not run yet.
    sqlx::query("DELETE FROM event_pii_moves").execute(db.writer()).await.unwrap();
}

async fn identify_traits_reach_the_encrypted_profile_and_never_the_store_in_clear(mut app: TestApp) {
    let key = write_key(&app).await;
    app.create_product(json!({"name": "Barrier Cream", "brand": "Dermis Labs", "external_id": "P-pii"})).await;
    send(
        &app,
        &key,
        "/v1/identify",
        json!({"userId": "shop-wq", "anonymousId": "anon-wq", "messageId": "wq-1",
            "traits": {"email": "Wilhelmina.Quaversmith@example.org", "phone": "+33 6 55 51 23 47",
                "firstName": "Wilhelmina", "lastName": "Quaversmith", "birthday": "1987-03-14",
                "address": {"street": "4 Rue Tarrazine", "city": "Lyon", "postalCode": "69007", "country": "fr"},
                "skin_type": "dry", "plan": "gold"},
            "context": {"traits": {"email": "Wilhelmina.Quaversmith@example.org"}}}),
    )
    .await;
    // Allergies are health data: kept under the `health_data` consent.
    let consent = json!({"granted": true, "text_version": "health-v1", "channel": "app"});
    let res = app.request(Method::PUT, "/v1/customers/shop-wq/consents/health_data", Some(Role::Admin)).json(&consent);
    let res = res.send().await.unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    send(
        &app,
        &key,
        "/v1/batch",
        json!({"batch": [
            {"type": "identify", "userId": "shop-wq", "messageId": "wq-2",
             "traits": {"allergies": ["Linalool", "Quibblewort Extract"]}},
            {"type": "track", "userId": "shop-wq", "event": "Product Viewed", "messageId": "wq-3",
             "properties": {"product_id": "P-pii", "price": 30}},
            {"type": "track", "userId": "shop-wq", "event": "Order Completed", "messageId": "wq-4",
             "properties": {"order_id": "o-wq", "email": "wilhelmina.quaversmith@example.org",
                 "products": [{"product_id": "P-pii", "price": 30, "quantity": 1}]}}
        ]}),
    )
    .await;

    // The traits are on the profile (encrypted at rest, readable through the API).
    let c = json_of(app.get("/v1/customers/shop-wq", Role::Admin).await, 200).await;
    assert_eq!(c["name"], "Wilhelmina Quaversmith", "{c}");
    assert_eq!(c["email"], "Wilhelmina.Quaversmith@example.org", "{c}");
    assert_eq!(c["phone"], "+33655512347", "{c}");
    assert_eq!(c["date_of_birth"], "1987-03-14", "{c}");
    assert_eq!(c["address"]["line1"], "4 Rue Tarrazine", "{c}");
    assert_eq!(c["address"]["country"], "FR", "{c}");
    let allergies: Vec<&str> = c["skin_profile"]["allergies"]["value"]
        .as_array()
        .unwrap_or_else(|| panic!("no allergies: {c}"))
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(allergies, ["Linalool", "Quibblewort Extract"], "{c}");
    let found =
        json_of(app.get("/v1/customers?email=wilhelmina.quaversmith%40example.org", Role::Admin).await, 200).await;
    assert_eq!(found["items"][0]["id"], c["id"], "{found}");

    // The log keeps which traits the message carried, not their values.
    let page = json_of(app.get("/v1/events?user_id=shop-wq&limit=50", Role::Admin).await, 200).await;
    let items = page["items"].as_array().unwrap();
    let first = items.iter().find(|e| e["message"]["messageId"] == "wq-1").expect("the identify is stored");
    let moved = json!({"$moved": "customers"});
    let traits = &first["message"]["traits"];
    for k in ["email", "phone", "firstName", "lastName", "birthday", "address"] {
        assert_eq!(traits[k], moved, "{k}: {traits}");
    }
    assert_eq!(traits["skin_type"], "dry");
    assert_eq!(traits["plan"], "gold");
    assert_eq!(first["message"]["context"]["traits"]["email"], moved);
    let order = items.iter().find(|e| e["message"]["messageId"] == "wq-4").unwrap();
    assert_eq!(order["message"]["properties"]["email"], moved);
    assert_eq!(order["message"]["properties"]["order_id"], "o-wq");

    // Features are computed from the same events.
    let f = json_of(app.get("/v1/features/customers/shop-wq", Role::Service).await, 200).await;
    assert_eq!(f["spend_minor"], 3000, "{f}");
    assert!(!f["recent_views"].as_array().unwrap().is_empty(), "{f}");

    let bytes = store_bytes(&app).await;
    assert!(holds(&bytes, "o-wq"), "the scan sees the stored events (their order id is in clear)");
    let found = leaks(&bytes);
    assert!(found.is_empty(), "in clear in the store: {found:?}");

    // A message stored before the move: rewritten once at start, after its traits reached the
    // customer.
    app.stop().await;
    let write_key_id: String = sqlx::query("SELECT id FROM write_keys")
        .fetch_one(app.test_db.db().reader())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    store_as_before(&app, &write_key_id).await;
    assert!(holds(&store_bytes(&app).await, "oldrich.tempelhofer@example.org"), "the test sees the old message");
    app.restart().await;
    let started = Instant::now();
    loop {
        let done = sqlx::query("SELECT finished_at FROM event_pii_moves")
            .fetch_optional(app.test_db.db().reader())
            .await
            .unwrap()
            .and_then(|r| r.try_get::<Option<i64>, _>(0).unwrap());
        if done.is_some() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the move never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let old = json_of(app.get("/v1/customers/shop-ot", Role::Admin).await, 200).await;
    assert_eq!(old["email"], "oldrich.tempelhofer@example.org", "{old}");
    assert_eq!(old["name"], "Oldrich Tempelhofer", "{old}");
    let page = json_of(app.get("/v1/events?user_id=shop-ot&limit=50", Role::Admin).await, 200).await;
    assert_eq!(page["items"][0]["message"]["traits"]["email"], moved, "{page}");
    // Features still come from the rewritten log after the restart.
    let f = json_of(app.get("/v1/features/customers/shop-wq", Role::Service).await, 200).await;
    assert_eq!(f["spend_minor"], 3000, "{f}");
    let found = leaks(&store_bytes(&app).await);
    assert!(found.is_empty(), "in clear after the move: {found:?}");
}

async fn an_erased_identity_is_not_linked_or_created_again(app: TestApp) {
    let key = write_key(&app).await;
    let identify = |message_id: &str, user: &str| {
        json!({"userId": user, "anonymousId": "anon-gone", "messageId": message_id,
            "traits": {"email": "gone.forever@example.org", "name": "Gone Forever"}})
    };
    send(&app, &key, "/v1/identify", identify("g-1", "shop-gone")).await;
    let c = json_of(app.get("/v1/customers/shop-gone", Role::Admin).await, 200).await;
    let res = app.request(Method::DELETE, &format!("/v1/customers/{}", c["id"].as_str().unwrap()), Some(Role::Admin));
    assert_eq!(res.send().await.unwrap().status(), 202);
    assert_problem(app.get("/v1/customers/shop-gone", Role::Admin).await, 404).await;

    // The same identify again (a new message), the same email under a new user id, and her
    // anonymous id alone: nobody is created or linked.
    send(&app, &key, "/v1/identify", identify("g-2", "shop-gone")).await;
    send(&app, &key, "/v1/identify", identify("g-3", "shop-gone-2")).await;
    send(
        &app,
        &key,
        "/v1/identify",
        json!({"anonymousId": "anon-gone", "messageId": "g-4",
        "traits": {"email": "new.person@example.org"}}),
    )
    .await;
    send(&app, &key, "/v1/alias", json!({"userId": "shop-gone-3", "previousId": "shop-gone", "messageId": "g-5"}))
        .await;
    for user in ["shop-gone", "shop-gone-2", "shop-gone-3"] {
        assert_problem(app.get(&format!("/v1/customers/{user}"), Role::Admin).await, 404).await;
    }
    for q in ["email=gone.forever%40example.org", "email=new.person%40example.org"] {
        let none = json_of(app.get(&format!("/v1/customers?{q}"), Role::Admin).await, 200).await;
        assert_eq!(none["items"], json!([]), "{q}: {none}");
    }
    // Someone else is still created from their identify.
    send(
        &app,
        &key,
        "/v1/identify",
        json!({"userId": "shop-other", "messageId": "o-1",
        "traits": {"email": "other@example.org"}}),
    )
    .await;
    let other = json_of(app.get("/v1/customers/shop-other", Role::Admin).await, 200).await;
    assert_eq!(other["email"], "other@example.org");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("customers_feed_suppressed_total") && !l.ends_with(" 0")),
        "the skipped messages are counted"
    );
}
