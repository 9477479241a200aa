//! Personal data of ingested events: `identify` traits (and the same keys in `context.traits`,
//! and a `track` event's email) are moved out of the event log to the customer's encrypted
//! profile before a message is stored, so neither the SQLite files (WAL included) nor a
//! `pg_dump` hold them in clear; features are still computed from those events; a message
//! stored before the move is rewritten by the one-time job; and an erased customer's
//! identifiers are suppressed, so re-ingested events link or create nobody. The same holds for
//! the health properties of the registered skincare events (quiz answers, skin measurements,
//! dermatologist assessments), including rows stored before the policy's version 2.

use std::time::{Duration, Instant};

use dermis_auth::Role;
use dermis_store::sqlx::{self, Row};
use reqwest::Method;
use serde_json::{Value, json};

use crate::events_test::{post_ingest, write_key};
use crate::helpers::{TestApp, assert_problem};

crate::both_backends!(
    identify_traits_reach_the_encrypted_profile_and_never_the_store_in_clear,
    an_erased_identity_is_not_linked_or_created_again,
    skincare_health_properties_reach_the_profile_and_never_the_store_in_clear
);

/// What the customer declared through `identify`, none of which may be stored in clear.
const SECRETS: &[&str] = &[
    "Wilhelmina",
    "Quaversmith",
    "wilhelmina.quaversmith@example.org",
    "+33655512347",
    "655512347",
    "Tarrazine",
    // Quoted as JSON holds it: five bare digits turn up by chance among timestamps and hex.
    "\"69007\"",
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
    leaks_of(bytes, SECRETS)
}

fn leaks_of(bytes: &[u8], secrets: &[&'static str]) -> Vec<&'static str> {
    secrets.iter().copied().filter(|s| holds(bytes, s)).collect()
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
        // A current id: the retention sweeper goes by the key's time.
        q.bind(dermis_core::ids::new_id("evt"))
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
    wait_for_move(&app, 2).await;
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

/// Health answers, readings and a dermatologist's findings sent in the registered skincare
/// events, none of which may be stored in clear.
const HEALTH_SECRETS: &[&str] = &[
    "Glimmerroot",
    "Zanthoweed",
    "37.913",
    "211.77",
    "Vexalin Resin",
    "Brindlemoss",
    // The measurement stored before the policy's version 2 (written below as a release did).
    "19.457",
];

async fn skincare_health_properties_reach_the_profile_and_never_the_store_in_clear(mut app: TestApp) {
    let key = write_key(&app).await;
    send(&app, &key, "/v1/identify", json!({"userId": "shop-hx", "messageId": "hx-1", "traits": {"plan": "gold"}}))
        .await;
    let consent = json!({"granted": true, "text_version": "health-v1", "channel": "app"});
    let res = app.request(Method::PUT, "/v1/customers/shop-hx/consents/health_data", Some(Role::Admin)).json(&consent);
    let res = res.send().await.unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    send(
        &app,
        &key,
        "/v1/batch",
        json!({"batch": [
            {"type": "track", "userId": "shop-hx", "event": "Skin Quiz Completed", "messageId": "hx-quiz",
             "properties": {"quiz_id": "quiz_v3", "skin_type": "combination", "concerns": ["acne", "pores"],
                 "sensitivities": ["Glimmerroot Oil"], "allergies": ["Zanthoweed"], "pregnant": true}},
            {"type": "track", "userId": "shop-hx", "event": "Skin Measurement Recorded", "messageId": "hx-msr",
             "properties": {"device_id": "scope-hx", "device_model": "SkinScope S2",
                 "hydration": {"value": 37.913, "unit": "%"}, "sebum": {"value": 211.77, "unit": "ug/cm2"}}},
            {"type": "track", "userId": "shop-hx", "event": "Dermatologist Assessment Recorded", "messageId": "hx-derm",
             "properties": {"clinic_id": "clinic-hx", "dermatologist_id": "dr-hx", "conditions": ["rosacea"],
                 "contraindicated_ingredients": ["retinol", "Vexalin Resin"], "notes": "Avoid Brindlemoss balms"}}
        ]}),
    )
    .await;

    // The profile holds the facts and readings (encrypted at rest, readable through the API).
    let c = json_of(app.get("/v1/customers/shop-hx", Role::Admin).await, 200).await;
    let p = &c["skin_profile"];
    let names = |v: &Value| -> Vec<String> {
        v["value"].as_array().unwrap_or_else(|| panic!("no list: {c}")).iter().map(|a| a["name"].to_string()).collect()
    };
    assert_eq!(p["skin_type"]["value"], "combination", "{c}");
    assert_eq!(names(&p["sensitivities"]), ["\"Glimmerroot Oil\""], "{c}");
    assert_eq!(names(&p["allergies"]), ["\"Zanthoweed\""], "{c}");
    assert_eq!(p["pregnant"]["value"], true, "{c}");
    assert_eq!(p["measurements"]["hydration"]["latest"]["value"], 37.913, "{c}");
    assert_eq!(p["measurements"]["sebum"]["latest"]["value"], 211.77, "{c}");
    assert_eq!(p["conditions"]["value"], json!(["rosacea"]), "{c}");
    assert_eq!(p["conditions"]["source"], "dermatologist", "{c}");
    assert_eq!(names(&p["contraindicated_ingredients"]), ["\"retinol\"", "\"Vexalin Resin\""], "{c}");

    // The log keeps which properties the events carried, not their values.
    let moved = json!({"$moved": "customers"});
    let page = json_of(app.get("/v1/events?user_id=shop-hx&limit=50", Role::Admin).await, 200).await;
    let items = page["items"].as_array().unwrap();
    let props = |id: &str| {
        items.iter().find(|e| e["message"]["messageId"] == id).unwrap_or_else(|| panic!("{id}: {page}"))["message"]
            ["properties"]
            .clone()
    };
    let quiz = props("hx-quiz");
    for k in ["sensitivities", "allergies", "pregnant"] {
        assert_eq!(quiz[k], moved, "{k}: {quiz}");
    }
    assert_eq!(quiz["skin_type"], "combination");
    assert_eq!(quiz["concerns"], json!(["acne", "pores"]));
    let msr = props("hx-msr");
    assert_eq!((&msr["hydration"], &msr["sebum"]), (&moved, &moved), "{msr}");
    assert_eq!((msr["device_id"].as_str(), msr["device_model"].as_str()), (Some("scope-hx"), Some("SkinScope S2")));
    let derm = props("hx-derm");
    for k in ["conditions", "contraindicated_ingredients", "notes"] {
        assert_eq!(derm[k], moved, "{k}: {derm}");
    }
    assert_eq!(derm["clinic_id"], "clinic-hx");

    let bytes = store_bytes(&app).await;
    assert!(holds(&bytes, "clinic-hx") && holds(&bytes, "scope-hx"), "the scan sees the stored events");
    let found = leaks_of(&bytes, HEALTH_SECRETS);
    assert!(found.is_empty(), "in clear in the store: {found:?}");

    // A measurement stored in clear by a release before the policy's version 2, whose
    // rewrite (version 1) had finished: rewritten once more at start, after its reading
    // reached the profile.
    app.stop().await;
    let db = app.test_db.db();
    let write_key_id: String =
        sqlx::query("SELECT id FROM write_keys").fetch_one(db.reader()).await.unwrap().try_get(0).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let payload = json!({
        "type": "track", "event": "Skin Measurement Recorded", "messageId": "old-msr-1", "userId": "shop-hx",
        "properties": {"device_id": "scope-old", "tewl": {"value": 19.457, "unit": "g/m2/h"}},
        "timestamp": "2026-01-01T00:00:00.000Z", "receivedAt": "2026-01-01T00:00:00.000Z"
    })
    .to_string();
    let sql = "INSERT INTO events (id, write_key_id, message_id, kind, event, user_id, anonymous_id, partition_key, \
               schema_ref, timestamp_ms, received_at, payload) \
               VALUES ($1, $2, 'old-msr-1', 'track', 'Skin Measurement Recorded', 'shop-hx', NULL, 'shop-hx', NULL, \
               $3, $3, $4)";
    let q = sqlx::query(sql);
    let q = if app.test_db.data_dir().is_some() { q.bind(now << 20) } else { q.bind(dermis_core::ids::new_id("evt")) };
    q.bind(&write_key_id).bind(now).bind(payload).execute(db.writer()).await.unwrap();
    sqlx::query("DELETE FROM event_pii_moves").execute(db.writer()).await.unwrap();
    sqlx::query(
        "INSERT INTO event_pii_moves (one, after_id, after_dead_letter, moved, finished_at) VALUES (1, '', '', 0, $1)",
    )
    .bind(now)
    .execute(db.writer())
    .await
    .unwrap();
    assert!(holds(&store_bytes(&app).await, "19.457"), "the test sees the old message");
    app.restart().await;
    wait_for_move(&app, 2).await;
    let c = json_of(app.get("/v1/customers/shop-hx", Role::Admin).await, 200).await;
    assert_eq!(c["skin_profile"]["measurements"]["tewl"]["latest"]["value"], 19.457, "applied before the move: {c}");
    let page = json_of(app.get("/v1/events?user_id=shop-hx&limit=50", Role::Admin).await, 200).await;
    let old = page["items"].as_array().unwrap().iter().find(|e| e["message"]["messageId"] == "old-msr-1").unwrap();
    assert_eq!(old["message"]["properties"]["tewl"], moved, "{old}");
    assert_eq!(old["message"]["properties"]["device_id"], "scope-old");
    let found = leaks_of(&store_bytes(&app).await, HEALTH_SECRETS);
    assert!(found.is_empty(), "in clear after the move: {found:?}");
}

/// Waits (up to 20 s) until the background move of stored personal data under `version` (its
/// progress row in `event_pii_moves`) has finished.
async fn wait_for_move(app: &TestApp, version: i64) {
    let started = Instant::now();
    loop {
        let done = sqlx::query("SELECT finished_at FROM event_pii_moves WHERE one = $1")
            .bind(version)
            .fetch_optional(app.test_db.db().reader())
            .await
            .unwrap()
            .and_then(|r| r.try_get::<Option<i64>, _>(0).unwrap());
        if done.is_some() {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the version {version} move never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
