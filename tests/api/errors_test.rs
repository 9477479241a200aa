//! Malformed, mistyped, incomplete, oversized and random input to every write route (the
//! documented ones and the Segment ingestion endpoints): never a 5xx, every 4xx is problem+json,
//! nothing stored is lost, and every ingested message that fails validation is kept as a dead
//! letter.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use dermis_auth::Role;
use dermis_events::routes::INGESTION_PATHS;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

crate::both_backends!(
    hostile_bodies_on_every_write_route_are_4xx_problems,
    random_mutations_of_valid_bodies_never_cause_5xx
);

/// How a route reads its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A strictly typed JSON body (`ApiJson`): `Content-Type: application/json` required.
    Json,
    /// The dead-letter replay: an optional JSON body (empty = replay the stored message).
    Replay,
    /// An optional JSON body whose absence means "all" (a reservation's confirmation): empty is
    /// no error on the body's part (200, or 409 once the state forbids it).
    OptionalJson,
    /// No body; the path names what goes: answers `done` once (204 for a revocation, 202 for a
    /// customer's erasure, which other domains finish in the background), then 404.
    Delete { done: u16 },
    /// No body; the query names whose events go (an erasure: answers 200 even for nobody).
    Erase,
    /// A Segment call authenticated by a write key; any content type is read as JSON. A single
    /// call, or a batch.
    Ingest { batch: bool },
}

pub(crate) struct Route {
    pub(crate) method: Method,
    /// The path as the OpenAPI document (or `INGESTION_PATHS`) spells it.
    pub(crate) template: &'static str,
    /// Concrete paths, used in turn (a replay or a revocation consumes what it names).
    paths: Vec<String>,
    next: AtomicUsize,
    pub(crate) valid: Value,
    /// A member the route cannot do without (none for merge patches and deletes).
    required: Option<&'static str>,
    pub(crate) kind: Kind,
}

impl Route {
    pub(crate) fn path(&self) -> &str {
        &self.paths[self.next.fetch_add(1, Ordering::Relaxed) % self.paths.len()]
    }

    fn name(&self) -> String {
        format!("{} {}", self.method, self.template)
    }
}

/// Dead letters the test made on purpose plus those the ingestion answers announced.
struct Ledger {
    expected_dead_letters: usize,
    rejected_message_ids: BTreeSet<String>,
}

pub(crate) struct Fixture {
    pub(crate) write_key: String,
    pub(crate) routes: Vec<Route>,
    ledger: Ledger,
    /// The product and SKU the write routes change.
    pub(crate) product_id: String,
    pub(crate) sku_id: String,
    /// The customers whose profile and consents the write routes change.
    customers: [String; 2],
}

pub(crate) fn basic(key: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{key}:")))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

async fn created(res: reqwest::Response, what: &str) -> Value {
    assert_eq!(res.status(), 201, "create {what}");
    res.json().await.unwrap()
}

/// Creates a customer as an admin; returns its id.
async fn customer(app: &TestApp, body: Value) -> String {
    created(app.post_json("/v1/customers", Role::Admin, &body).await, "customer").await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn single(kind: &str) -> (Value, &'static str) {
    match kind {
        "track" => (
            json!({"userId": "u-h", "event": "Product Viewed", "messageId": "h-track",
                "properties": {"product_id": "P1", "price": 12.5, "quantity": 1},
                "timestamp": "2026-01-01T00:00:00Z", "context": {"ip": "203.0.113.9"}}),
            "userId",
        ),
        "identify" => (
            json!({"userId": "u-h", "traits": {"email": "a@example.com", "age": 30}, "messageId": "h-identify"}),
            "userId",
        ),
        "page" => (json!({"userId": "u-h", "name": "Home", "properties": {"path": "/"}}), "userId"),
        "screen" => (json!({"anonymousId": "a-h", "name": "Home", "properties": {"n": 1}}), "anonymousId"),
        "group" => (json!({"userId": "u-h", "groupId": "g-1", "traits": {"name": "Spa"}}), "groupId"),
        "alias" => (json!({"userId": "u-h", "previousId": "a-h"}), "previousId"),
        other => panic!("no single call {other}"),
    }
}

fn batch_body() -> Value {
    json!({
        "batch": [
            {"type": "track", "userId": "u-b", "event": "Order Completed", "messageId": "h-b1",
             "properties": {"order_id": "o-1", "total": 30,
                "products": [{"product_id": "P1", "price": 30, "quantity": 1}]}},
            {"type": "identify", "anonymousId": "a-b", "traits": {"skin": "dry"}, "messageId": "h-b2"}
        ],
        "context": {"library": {"name": "analytics-node"}},
        "sentAt": "2026-01-01T00:00:01Z"
    })
}

pub(crate) async fn fixture(app: &TestApp) -> Fixture {
    let p = app.create_product(json!({"name": "Fuzz Cream", "brand": "B"})).await;
    let pid = p["id"].as_str().unwrap().to_owned();
    let s = app.create_sku(&pid, json!({"code": "FZ-1", "price": {"amount_minor": 100, "currency": "EUR"}})).await;
    let sid = s["id"].as_str().unwrap().to_owned();
    let wk = created(app.post_json("/v1/write-keys", Role::Admin, &json!({"name": "fuzz"})).await, "write key").await;
    let write_key = wk["write_key"].as_str().unwrap().to_owned();
    // Keys to revoke: the first revocations succeed, the rest answer 404.
    let mut write_key_ids = Vec::new();
    let mut api_key_ids = Vec::new();
    for i in 0..3 {
        let wk =
            created(app.post_json("/v1/write-keys", Role::Admin, &json!({"name": format!("old-{i}")})).await, "wk")
                .await;
        write_key_ids.push(format!("/v1/write-keys/{}", wk["id"].as_str().unwrap()));
        let ak = created(
            app.post_json("/v1/api-keys", Role::Admin, &json!({"name": format!("old-{i}"), "role": "service"})).await,
            "api key",
        )
        .await;
        api_key_ids.push(format!("/v1/api-keys/{}", ak["id"].as_str().unwrap()));
    }
    // Enough dead letters that every replay request has a fresh one (a replayed dead letter
    // answers `stored: false` without looking at the body).
    const DEAD: usize = 400;
    let batch: Vec<Value> = (0..DEAD)
        .map(|i| {
            json!({"type": "track", "event": "Product Viewed", "messageId": format!("dl-{i}"),
                "properties": {"price": -1}})
        })
        .collect();
    let res = app
        .client
        .post(app.url("/v1/batch"))
        .header("authorization", basic(&write_key))
        .json(&json!({"batch": batch}))
        .send()
        .await
        .unwrap();
    let r: Value = res.json().await.unwrap();
    assert_eq!(r["rejected"].as_array().map(Vec::len), Some(DEAD), "{r}");
    let replay_paths: Vec<String> = dead_letters(app)
        .await
        .iter()
        .map(|d| format!("/v1/events/dead-letters/{}/replay", d["id"].as_str().unwrap()))
        .collect();
    assert_eq!(replay_paths.len(), DEAD);
    // Customers: one whose profile, contact data and consultations change, one whose consents
    // do, and some to erase (the first erasures are accepted, the rest answer 404).
    let health = json!([{"purpose": "health_data", "granted": true, "text_version": "v1", "channel": "web"}]);
    let cid = customer(app, json!({"name": "Fuzz Customer", "consents": health})).await;
    let consenting = customer(app, json!({"name": "Fuzz Consenting"})).await;
    let mut erase_paths = Vec::new();
    let mut close_paths = Vec::new();
    for i in 0..3 {
        let gone = customer(app, json!({"name": format!("Fuzz Erased {i}")})).await;
        erase_paths.push(format!("/v1/customers/{gone}"));
        let c = created(
            app.post_json(&format!("/v1/customers/{cid}/consultations"), Role::Admin, &json!({"store_id": "store-9"}))
                .await,
            "consultation",
        )
        .await;
        close_paths.push(format!("/v1/customers/{cid}/consultations/{}", c["id"].as_str().unwrap()));
    }
    // Merges: a pair to merge (the first valid request merges, the rest find them merged), and
    // merges to undo (the first undo is answered, the rest find nothing).
    let winner = customer(app, json!({"name": "Fuzz Winner"})).await;
    let loser = customer(app, json!({"name": "Fuzz Loser"})).await;
    let mut unmerge_paths = Vec::new();
    for i in 0..3 {
        let w = customer(app, json!({"name": format!("Fuzz Merged {i}")})).await;
        let l = customer(app, json!({"name": format!("Fuzz Merged In {i}")})).await;
        let m = created(
            app.post_json(&format!("/v1/customers/{w}/merges"), Role::Admin, &json!({"other": l})).await,
            "merge",
        )
        .await;
        unmerge_paths.push(format!("/v1/customer-merges/{}", m["id"].as_str().unwrap()));
    }
    // Merge suggestions: duplicate pairs (same name, date of birth and postcode, other emails),
    // suggested by one matching run without merging; half to accept, half to dismiss.
    for i in 0..6 {
        for email in ["one", "two"] {
            customer(
                app,
                json!({"name": format!("Twin{i} Fuzzington"), "date_of_birth": format!("1980-01-0{}", i + 1),
                    "email": format!("twin{i}.{email}@example.com"),
                    "address": {"line1": "1 Way", "city": "Leeds", "postal_code": format!("ZZ{i} 1AA"), "country": "GB"}}),
            )
            .await;
        }
    }
    let run = app.post_json("/v1/customer-match-runs", Role::Admin, &json!({"auto_merge": false})).await;
    assert_eq!(run.status(), 200);
    let listed: Value = app.get("/v1/customer-merge-suggestions", Role::Admin).await.json().await.unwrap();
    let suggestions: Vec<String> =
        listed["items"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
    assert!(suggestions.len() >= 6, "the twins are suggested: {listed}");
    let accept_paths =
        suggestions[..3].iter().map(|id| format!("/v1/customer-merge-suggestions/{id}/accept")).collect();
    let dismiss_paths = suggestions[3..6].iter().map(|id| format!("/v1/customer-merge-suggestions/{id}")).collect();

    let mut routes = vec![
        Route {
            method: Method::POST,
            template: "/v1/recommendations",
            paths: vec!["/v1/recommendations".into()],
            next: AtomicUsize::new(0),
            valid: json!({"profile": {"skin_type": "dry", "allergies": ["linalool"]}, "k": 3}),
            required: Some("profile"),
            kind: Kind::Json,
        },
        Route {
            // A retrain reads no body; with no interactions in the fixture it answers 409 (too
            // few to train on), every time.
            method: Method::POST,
            template: "/v1/recommendations/model/retrain",
            paths: vec!["/v1/recommendations/model/retrain".into()],
            next: AtomicUsize::new(0),
            valid: json!({}),
            required: None,
            kind: Kind::Delete { done: 409 },
        },
        Route {
            method: Method::POST,
            template: "/v1/customer-match-runs",
            paths: vec!["/v1/customer-match-runs".into()],
            next: AtomicUsize::new(0),
            valid: json!({"auto_merge": false}),
            required: None,
            kind: Kind::Json,
        },
        Route {
            method: Method::POST,
            template: "/v1/customer-merge-suggestions/{suggestion_id}/accept",
            paths: accept_paths,
            next: AtomicUsize::new(0),
            valid: json!({}),
            required: None,
            kind: Kind::Delete { done: 201 },
        },
        Route {
            method: Method::DELETE,
            template: "/v1/customer-merge-suggestions/{suggestion_id}",
            paths: dismiss_paths,
            next: AtomicUsize::new(0),
            valid: json!({}),
            required: None,
            kind: Kind::Delete { done: 204 },
        },
        Route {
            method: Method::POST,
            template: "/v1/products",
            paths: vec!["/v1/products".into()],
            next: AtomicUsize::new(0),
            valid: json!({"name": "N", "brand": "B", "external_id": "E1", "category": "C", "description": "D",
                "ingredients": "Aqua", "highlights": ["Vegan"]}),
            required: Some("brand"),
            kind: Kind::Json,
        },
        Route {
            method: Method::PATCH,
            template: "/v1/products/{id}",
            paths: vec![format!("/v1/products/{pid}")],
            next: AtomicUsize::new(0),
            valid: json!({"name": "N2", "category": null, "status": "active", "highlights": ["Vegan"]}),
            required: None,
            kind: Kind::Json,
        },
        Route {
            method: Method::POST,
            template: "/v1/products/{id}/skus",
            paths: vec![format!("/v1/products/{pid}/skus")],
            next: AtomicUsize::new(0),
            valid: json!({"code": "C-9", "barcode": "4006381333931", "variant": {"size": "50 mL"},
                "price": {"amount_minor": 1250, "currency": "EUR"}}),
            required: Some("price"),
            kind: Kind::Json,
        },
        Route {
            method: Method::PATCH,
            template: "/v1/products/{id}/skus/{sku_id}",
            paths: vec![format!("/v1/products/{pid}/skus/{sid}")],
            next: AtomicUsize::new(0),
            valid: json!({"price": {"amount_minor": 1300, "currency": "EUR"}, "barcode": null}),
            required: None,
            kind: Kind::Json,
        },
        Route {
            method: Method::POST,
            template: "/v1/api-keys",
            paths: vec!["/v1/api-keys".into()],
            next: AtomicUsize::new(0),
            valid: json!({"name": "svc", "role": "store_associate", "store_id": "s-1", "channel": "pos"}),
            required: Some("role"),
            kind: Kind::Json,
        },
        Route {
            method: Method::DELETE,
            template: "/v1/api-keys/{id}",
            paths: api_key_ids,
            next: AtomicUsize::new(0),
            valid: json!({}),
            required: None,
            kind: Kind::Delete { done: 204 },
        },
        Route {
            method: Method::POST,
            template: "/v1/write-keys",
            paths: vec!["/v1/write-keys".into()],
            next: AtomicUsize::new(0),
            valid: json!({"name": "web-shop"}),
            required: Some("name"),
            kind: Kind::Json,
        },
        Route {
            method: Method::DELETE,
            template: "/v1/write-keys/{id}",
            paths: write_key_ids,
            next: AtomicUsize::new(0),
            valid: json!({}),
            required: None,
            kind: Kind::Delete { done: 204 },
        },
        Route {
            method: Method::DELETE,
            template: "/v1/events",
            // Nobody the sweep sends events for: the dead letters it expects must stay.
            paths: vec!["/v1/events?user_id=u-nobody".into(), "/v1/events?anonymous_id=a-nobody".into()],
            next: AtomicUsize::new(0),
            valid: json!({}),
            required: None,
            kind: Kind::Erase,
        },
        Route {
            method: Method::POST,
            template: "/v1/events/dead-letters/{id}/replay",
            paths: replay_paths,
            next: AtomicUsize::new(0),
            valid: json!({"message": {"type": "track", "userId": "u-r", "event": "Product Viewed", "messageId": "r-1",
                "properties": {"product_id": "P1", "price": 1}}}),
            required: None,
            kind: Kind::Replay,
        },
        Route {
            method: Method::POST,
            template: "/v1/customers",
            paths: vec!["/v1/customers".into()],
            next: AtomicUsize::new(0),
            // No unique identifier (email, phone, loyalty, user id): every valid request creates.
            valid: json!({"name": "Fuzz Signup", "date_of_birth": "1990-02-28",
                "address": {"line1": "1 Rue de la Paix", "city": "Paris", "postal_code": "75002", "country": "FR"},
                "external_ids": {"pos": "R-1"},
                "consents": [{"purpose": "health_data", "granted": true, "text_version": "v1", "channel": "web"}],
                "skin_profile": {"skin_type": "dry", "concerns": ["redness"], "allergies": ["linalool"]}}),
            required: Some("name"),
            kind: Kind::Json,
        },
        Route {
            method: Method::PATCH,
            template: "/v1/customers/{id}",
            paths: vec![format!("/v1/customers/{cid}")],
            next: AtomicUsize::new(0),
            valid: json!({"name": "Fuzz Patched", "phone": "+33 6 12 34 56 78", "date_of_birth": null,
                "address": {"line1": "2 Rue Y", "city": "Lyon", "country": "FR"},
                "external_ids": {"pos": "R-2", "web": null}}),
            required: None,
            kind: Kind::Json,
        },
        Route {
            method: Method::DELETE,
            template: "/v1/customers/{id}",
            paths: erase_paths,
            next: AtomicUsize::new(0),
            valid: json!({}),
            required: None,
            kind: Kind::Delete { done: 202 },
        },
        Route {
            method: Method::PUT,
            template: "/v1/customers/{id}/skin-profile",
            paths: vec![format!("/v1/customers/{cid}/skin-profile")],
            next: AtomicUsize::new(0),
            valid: json!({"source": "quiz", "skin_type": "combination", "skin_tone": "medium",
                "concerns": ["acne", "pores"], "lifestyle": {"sun_exposure": "high", "climate": "humid"},
                "conditions": ["rosacea"], "sensitivities": ["fragrance"], "allergies": ["linalool", "zorblax"],
                "pregnant": false, "breastfeeding": null}),
            required: None,
            kind: Kind::Json,
        },
        Route {
            method: Method::POST,
            template: "/v1/customers/{id}/assessments",
            paths: vec![format!("/v1/customers/{cid}/assessments")],
            next: AtomicUsize::new(0),
            valid: json!({"clinic_id": "clinic-9", "dermatologist_id": "dr-9", "conditions": ["rosacea"],
                "contraindicated_ingredients": ["retinol", "zorblax"], "notes": "fuzz"}),
            required: Some("clinic_id"),
            kind: Kind::Json,
        },
        Route {
            method: Method::PUT,
            template: "/v1/customers/{id}/consents/{purpose}",
            paths: ["personalization", "marketing_email", "analytics"]
                .iter()
                .map(|p| format!("/v1/customers/{consenting}/consents/{p}"))
                .collect(),
            next: AtomicUsize::new(0),
            valid: json!({"granted": true, "text_version": "v2", "channel": "web"}),
            required: Some("text_version"),
            kind: Kind::Json,
        },
        Route {
            method: Method::POST,
            template: "/v1/customers/{id}/consultations",
            paths: vec![format!("/v1/customers/{cid}/consultations")],
            next: AtomicUsize::new(0),
            valid: json!({"minutes": 30, "store_id": "store-9"}),
            required: None,
            kind: Kind::Json,
        },
        Route {
            // An asynchronous export reads no body: every request asks for one (202).
            method: Method::POST,
            template: "/v1/customers/{id}/exports",
            paths: vec![format!("/v1/customers/{cid}/exports")],
            next: AtomicUsize::new(0),
            valid: json!({}),
            required: None,
            kind: Kind::Delete { done: 202 },
        },
        Route {
            method: Method::DELETE,
            template: "/v1/customers/{id}/consultations/{consultation_id}",
            paths: close_paths,
            next: AtomicUsize::new(0),
            valid: json!({}),
            required: None,
            kind: Kind::Delete { done: 204 },
        },
        Route {
            method: Method::POST,
            template: "/v1/customers/{id}/merges",
            paths: vec![format!("/v1/customers/{winner}/merges")],
            next: AtomicUsize::new(0),
            valid: json!({"other": loser}),
            required: Some("other"),
            kind: Kind::Json,
        },
        Route {
            method: Method::DELETE,
            template: "/v1/customer-merges/{merge_id}",
            paths: unmerge_paths,
            next: AtomicUsize::new(0),
            valid: json!({}),
            required: None,
            kind: Kind::Delete { done: 200 },
        },
    ];
    routes.extend(inventory_routes(app).await);
    routes.extend(orders_routes(app).await);
    routes.extend(experiments_and_webhooks_routes(app).await);
    routes.extend(quizzes_routes(app).await);
    for &path in &INGESTION_PATHS {
        let name = path.strip_prefix("/v1/").unwrap();
        let long = ["track", "identify", "page", "screen", "group", "alias", "batch", "import"]
            .into_iter()
            .find(|l| *l == name || (name.len() == 1 && l.starts_with(name) && *l != "import"))
            .unwrap_or_else(|| panic!("an ingestion path this test does not know: {path}"));
        let batch = matches!(long, "batch" | "import");
        let (valid, required) = if batch { (batch_body(), "batch") } else { single(long) };
        routes.push(Route {
            method: Method::POST,
            template: path,
            paths: vec![path.to_owned()],
            next: AtomicUsize::new(0),
            valid,
            required: Some(required),
            kind: Kind::Ingest { batch },
        });
    }
    Fixture {
        write_key,
        routes,
        ledger: Ledger { expected_dead_letters: DEAD, rejected_message_ids: BTreeSet::new() },
        product_id: pid,
        sku_id: sid,
        customers: [cid, consenting],
    }
}

fn json_route(method: Method, template: &'static str, path: String, valid: Value, required: &'static str) -> Route {
    Route {
        method,
        template,
        paths: vec![path],
        next: AtomicUsize::new(0),
        valid,
        required: Some(required),
        kind: Kind::Json,
    }
}

/// The inventory's write routes, over a warehouse holding 1,000 units of the fixture's SKU and a
/// live hold to confirm.
async fn inventory_routes(app: &TestApp) -> Vec<Route> {
    let location = json!({"code": "WH-FZ", "name": "Fuzz warehouse", "kind": "warehouse", "latitude": 50.0,
        "longitude": 8.0, "channels": ["web", "pos"]});
    created(app.post_json("/v1/locations", Role::Admin, &location).await, "location").await;
    let receipt = json!({"location_id": "WH-FZ", "lines": [{"sku_id": "FZ-1", "quantity": 1000,
        "lot": {"code": "L-FZ", "expires_on": "2031-01-01"}}]});
    created(app.post_json("/v1/inventory/receipts", Role::Admin, &receipt).await, "receipt").await;
    let hold = json!({"channel": "web", "lines": [{"sku_id": "FZ-1", "quantity": 1}], "ttl_seconds": 3600});
    let hold = created(app.post_json("/v1/reservations", Role::Admin, &hold).await, "reservation").await;
    let res = hold["id"].as_str().unwrap();
    vec![
        json_route(Method::POST, "/v1/locations", "/v1/locations".into(), location, "code"),
        json_route(
            Method::PUT,
            "/v1/channels/{channel}",
            "/v1/channels/web".into(),
            json!({"safety_stock": 0, "min_shelf_life_days": 0}),
            "safety_stock",
        ),
        json_route(
            Method::POST,
            "/v1/inventory/kits",
            "/v1/inventory/kits".into(),
            json!({"sku_id": "FZ-KIT", "components": [{"sku_id": "FZ-1", "quantity": 2}]}),
            "components",
        ),
        json_route(Method::POST, "/v1/inventory/receipts", "/v1/inventory/receipts".into(), receipt, "lines"),
        json_route(
            Method::POST,
            "/v1/inventory/purchase-orders",
            "/v1/inventory/purchase-orders".into(),
            json!({"id": "PO-FZ", "location_id": "WH-FZ", "eta": "2030-01-01T00:00:00Z", "lines": [{"sku_id": "FZ-1", "quantity": 5}]}),
            "lines",
        ),
        json_route(
            Method::POST,
            "/v1/inventory/adjustments",
            "/v1/inventory/adjustments".into(),
            json!({"location_id": "WH-FZ", "sku_id": "FZ-1", "lot": "L-FZ", "quantity": 1, "reason": "damaged", "reference": "count-1"}),
            "reason",
        ),
        json_route(
            Method::POST,
            "/v1/inventory/transfers",
            "/v1/inventory/transfers".into(),
            json!({"id": "TR-FZ", "sku_id": "FZ-1", "quantity": 1, "from_location_id": "WH-FZ", "to_location_id": "WH-FZ"}),
            "to_location_id",
        ),
        Route {
            // No body; an unknown transfer answers 404, every time.
            method: Method::POST,
            template: "/v1/inventory/transfers/{id}/arrived",
            paths: vec!["/v1/inventory/transfers/TR-NONE/arrived".into()],
            next: AtomicUsize::new(0),
            valid: json!({}),
            required: None,
            kind: Kind::Delete { done: 201 },
        },
        json_route(
            Method::POST,
            "/v1/inventory/returns",
            "/v1/inventory/returns".into(),
            json!({"location_id": "WH-FZ", "reference": {"kind": "order", "id": "o-fz"}, "lines": [{"sku_id": "FZ-1", "quantity": 1}]}),
            "lines",
        ),
        json_route(
            Method::POST,
            "/v1/inventory/quarantine",
            "/v1/inventory/quarantine".into(),
            json!({"location_id": "WH-FZ", "sku_id": "FZ-1", "lot": "L-FZ", "quantity": 1, "decision": "restock"}),
            "decision",
        ),
        json_route(
            Method::POST,
            "/v1/reservations",
            "/v1/reservations".into(),
            json!({"channel": "web", "lines": [{"sku_id": "FZ-1", "quantity": 1}], "ttl_seconds": 60}),
            "lines",
        ),
        Route {
            method: Method::POST,
            template: "/v1/reservations/{id}/confirm",
            paths: vec![format!("/v1/reservations/{res}/confirm")],
            next: AtomicUsize::new(0),
            valid: json!({"lines": [{"sku_id": "FZ-1", "quantity": 1}]}),
            required: None,
            kind: Kind::OptionalJson,
        },
        json_route(
            Method::POST,
            "/v1/reservations/{id}/extend",
            format!("/v1/reservations/{res}/extend"),
            json!({"ttl_seconds": 600}),
            "ttl_seconds",
        ),
        Route {
            method: Method::DELETE,
            template: "/v1/reservations/{id}",
            paths: vec!["/v1/reservations/res_none".into()],
            next: AtomicUsize::new(0),
            valid: json!({}),
            required: None,
            kind: Kind::Delete { done: 200 },
        },
        json_route(
            Method::POST,
            "/v1/pos/sync",
            "/v1/pos/sync".into(),
            json!({"location_id": "WH-FZ", "receipts": [{"receipt": "R-FZ", "lines": [{"sku_id": "FZ-1", "quantity": 1}]}]}),
            "receipts",
        ),
    ]
}

/// The orders' write routes, over a location holding 1,000 units of the fixture's SKU: a cart to
/// fill, one to check out, a checkout to pay, POS orders to ship, to take back (shipped) and to
/// cancel.
async fn orders_routes(app: &TestApp) -> Vec<Route> {
    let location = json!({"code": "WH-OZ", "name": "Orders warehouse", "kind": "warehouse", "latitude": 50.0,
        "longitude": 8.0, "channels": ["web", "pos"]});
    created(app.post_json("/v1/locations", Role::Admin, &location).await, "location").await;
    let receipt = json!({"location_id": "WH-OZ", "lines": [{"sku_id": "FZ-1", "quantity": 1000,
        "lot": {"code": "L-OZ", "expires_on": "2031-01-01"}}]});
    created(app.post_json("/v1/inventory/receipts", Role::Admin, &receipt).await, "receipt").await;
    let line = json!([{"sku_id": "FZ-1", "quantity": 1}]);
    let cart_body = json!({"channel": "web", "location_id": "WH-OZ", "lines": line});
    let mut carts = Vec::new();
    for _ in 0..3 {
        let cart = created(app.post_json("/v1/carts", Role::Admin, &cart_body).await, "cart").await;
        carts.push(cart["id"].as_str().unwrap().to_owned());
    }
    let checkout = format!("/v1/carts/{}/checkout", carts[2]);
    let to_pay = created(app.post_json(&checkout, Role::Admin, &json!({"ttl_seconds": 3600})).await, "checkout").await;
    let mut orders = Vec::new();
    for external in ["OZ-SHIP", "OZ-RETURN", "OZ-CANCEL"] {
        let body = json!({"channel": "pos", "external_id": external, "location_id": "WH-OZ", "lines": line});
        let order = created(app.post_json("/v1/orders", Role::Admin, &body).await, "order").await;
        orders.push(order["id"].as_str().unwrap().to_owned());
    }
    let ship = format!("/v1/orders/{}/fulfillments", orders[1]);
    created(app.post_json(&ship, Role::Admin, &json!({})).await, "fulfillment").await;
    vec![
        json_route(Method::POST, "/v1/carts", "/v1/carts".into(), cart_body, "channel"),
        json_route(
            Method::PUT,
            "/v1/carts/{id}/lines",
            format!("/v1/carts/{}/lines", carts[0]),
            json!({"lines": line}),
            "lines",
        ),
        Route {
            method: Method::POST,
            template: "/v1/carts/{id}/checkout",
            paths: vec![format!("/v1/carts/{}/checkout", carts[1])],
            next: AtomicUsize::new(0),
            valid: json!({"ttl_seconds": 600}),
            required: None,
            kind: Kind::OptionalJson,
        },
        json_route(
            Method::POST,
            "/v1/orders",
            "/v1/orders".into(),
            json!({"channel": "pos", "external_id": "OZ-NEW", "location_id": "WH-OZ", "lines": line}),
            "external_id",
        ),
        json_route(
            Method::POST,
            "/v1/orders/{id}/payments",
            format!("/v1/orders/{}/payments", to_pay["id"].as_str().unwrap()),
            json!({"event": "authorized", "provider_reference": "psp-oz", "amount_minor": 100, "currency": "EUR"}),
            "event",
        ),
        Route {
            method: Method::POST,
            template: "/v1/orders/{id}/fulfillments",
            paths: vec![format!("/v1/orders/{}/fulfillments", orders[0])],
            next: AtomicUsize::new(0),
            valid: json!({"location_id": "WH-OZ"}),
            required: None,
            kind: Kind::OptionalJson,
        },
        json_route(
            Method::POST,
            "/v1/orders/{id}/returns",
            format!("/v1/orders/{}/returns", orders[1]),
            json!({"location_id": "WH-OZ", "lines": line}),
            "lines",
        ),
        Route {
            // No body; cancelling again answers the same (200), an unknown order 404.
            method: Method::POST,
            template: "/v1/orders/{id}/cancel",
            paths: vec![format!("/v1/orders/{}/cancel", orders[2])],
            next: AtomicUsize::new(0),
            valid: json!({}),
            required: None,
            kind: Kind::Delete { done: 200 },
        },
    ]
}

/// The experiments' write routes over a running experiment, and the webhooks'.
async fn experiments_and_webhooks_routes(app: &TestApp) -> Vec<Route> {
    let experiment =
        json!({"key": "fz-exp", "variants": [{"key": "control", "weight": 0.5}, {"key": "b", "weight": 0.5}]});
    created(app.post_json("/v1/experiments", Role::Admin, &experiment).await, "experiment").await;
    let started = app.post_json("/v1/experiments/fz-exp/start", Role::Admin, &json!({})).await;
    assert_eq!(started.status(), 200);
    let no_body = |method: Method, template: &'static str, path: &str, done: u16| Route {
        method,
        template,
        paths: vec![path.to_owned()],
        next: AtomicUsize::new(0),
        valid: json!({}),
        required: None,
        kind: Kind::Delete { done },
    };
    vec![
        json_route(Method::POST, "/v1/experiments", "/v1/experiments".into(), experiment, "variants"),
        // Starting and stopping read no body; an unknown experiment answers 404, every time.
        no_body(Method::POST, "/v1/experiments/{key}/start", "/v1/experiments/fz-none/start", 200),
        no_body(Method::POST, "/v1/experiments/{key}/stop", "/v1/experiments/fz-none/stop", 200),
        json_route(
            Method::POST,
            "/v1/experiments/{key}/assignments",
            "/v1/experiments/fz-exp/assignments".into(),
            json!({"anonymous_id": "a-fz", "attributes": {"skin_type": "dry"}, "log_exposure": false}),
            "anonymous_id",
        ),
        json_route(
            Method::POST,
            "/v1/webhooks",
            "/v1/webhooks".into(),
            json!({"url": "http://127.0.0.1:9/hook", "channels": ["web"], "secret": "fuzz-secret-0123456789"}),
            "url",
        ),
        no_body(Method::DELETE, "/v1/webhooks/{id}", "/v1/webhooks/whk_none", 204),
    ]
}

/// The quizzes' write routes over a defined skin quiz (responses and views are sent with an
/// admin bearer, which the routes accept besides a write key).
async fn quizzes_routes(app: &TestApp) -> Vec<Route> {
    let quiz = crate::quizzes_test::skin_quiz("fz-quiz");
    created(app.post_json("/v1/quizzes", Role::Admin, &quiz).await, "quiz").await;
    let mut definition = quiz.clone();
    definition["key"] = json!("fz-quiz-2");
    vec![
        json_route(Method::POST, "/v1/quizzes", "/v1/quizzes".into(), definition, "questions"),
        json_route(
            Method::POST,
            "/v1/quizzes/{key}/responses",
            "/v1/quizzes/fz-quiz/responses".into(),
            json!({"anonymous_id": "a-fz", "answers": [{"question": "type", "option": "dry"},
                {"question": "tightness", "rating": 3}]}),
            "answers",
        ),
        json_route(
            Method::POST,
            "/v1/quizzes/{key}/impressions",
            "/v1/quizzes/fz-quiz/impressions".into(),
            json!({"anonymous_id": "a-fz"}),
            "anonymous_id",
        ),
    ]
}

/// The customers and their consents as an admin reads them.
async fn customer_snapshots(app: &TestApp, ids: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    for id in ids {
        for path in [format!("/v1/customers/{id}"), format!("/v1/customers/{id}/consents")] {
            let res = app.get(&path, Role::Admin).await;
            assert_eq!(res.status(), 200, "{path}");
            out.push(res.json().await.unwrap());
        }
    }
    out
}

/// Every dead letter, through the paginated listing.
async fn dead_letters(app: &TestApp) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let page: Value =
            app.get(&format!("/v1/events/dead-letters?limit=500{q}"), Role::Admin).await.json().await.unwrap();
        all.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return all,
        }
    }
}

/// The swept routes are exactly the write operations of the OpenAPI document plus the ingestion
/// paths, and no other write method answers on a known path.
async fn assert_every_write_route_is_swept(app: &TestApp, routes: &[Route]) {
    let doc: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let writes = ["post", "put", "patch", "delete"];
    let documented: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .filter(|m| writes.contains(&m.as_str()))
                .map(|m| (m.to_uppercase(), p.clone()))
        })
        .collect();
    let swept: BTreeSet<(String, String)> =
        routes.iter().map(|r| (r.method.to_string(), r.template.to_owned())).collect();
    assert_eq!(swept, documented, "the sweep covers exactly the documented write operations");
    let ingestion: BTreeSet<&str> =
        routes.iter().filter(|r| matches!(r.kind, Kind::Ingest { .. })).map(|r| r.template).collect();
    assert_eq!(ingestion, INGESTION_PATHS.into_iter().collect(), "the sweep covers every ingestion path");
    assert!(
        INGESTION_PATHS.iter().all(|p| paths[*p]["post"]["security"][0]["writeKey"].is_array()),
        "ingestion paths are documented with the write key scheme"
    );
    // No undocumented write method hides on a known path.
    let known: Vec<(String, Vec<String>)> = paths
        .iter()
        .map(|(p, ops)| (p.clone(), ops.as_object().unwrap().keys().map(|m| m.to_uppercase()).collect()))
        .chain(["/metrics", "/openapi.json", "/docs", "/docs/"].iter().map(|p| (p.to_string(), vec!["GET".to_owned()])))
        .collect();
    for (template, methods) in known {
        let path = template.replace("{id}", "x").replace("{sku_id}", "x").replace("{name}", "x");
        for m in ["POST", "PUT", "PATCH", "DELETE"] {
            if methods.iter().any(|k| k == m) {
                continue;
            }
            let res = app.request(m.parse().unwrap(), &path, Some(Role::Admin)).json(&json!({})).send().await.unwrap();
            assert_eq!(res.status(), 405, "{m} {template} is an undocumented write route");
            assert_eq!(res.headers()["content-type"], "application/problem+json");
        }
    }
}

/// What a hostile body must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Exactly this status.
    Status(u16),
    /// Some 4xx.
    ClientError,
    /// A 422 naming the offending field.
    FieldError,
    /// An ingestion answer (200) that rejects every message, which become dead letters.
    AllRejected,
    /// Anything but a 5xx (a hostile value where the route accepts any JSON).
    NoServerError,
}

pub(crate) struct Hostile {
    pub(crate) what: String,
    pub(crate) body: Vec<u8>,
    pub(crate) content_encoding: Option<&'static str>,
    expect: Expect,
}

fn hostile(what: impl Into<String>, body: Vec<u8>, expect: Expect) -> Hostile {
    Hostile { what: what.into(), body, content_encoding: None, expect }
}

/// Paths to every member and array element of a JSON document, at every depth.
fn value_paths(v: &Value, prefix: &mut Vec<PathPart>, out: &mut Vec<Vec<PathPart>>) {
    match v {
        Value::Object(o) => {
            for (k, child) in o {
                prefix.push(PathPart::Key(k.clone()));
                out.push(prefix.clone());
                value_paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                prefix.push(PathPart::Index(i));
                out.push(prefix.clone());
                value_paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum PathPart {
    Key(String),
    Index(usize),
}

fn at_mut<'a>(v: &'a mut Value, path: &[PathPart]) -> &'a mut Value {
    path.iter().fold(v, |v, p| match p {
        PathPart::Key(k) => &mut v[k.as_str()],
        PathPart::Index(i) => &mut v[*i],
    })
}

fn path_name(path: &[PathPart]) -> String {
    path.iter()
        .map(|p| match p {
            PathPart::Key(k) => k.clone(),
            PathPart::Index(i) => i.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// A body with the value at `path` replaced by raw JSON text (which may be invalid or out of
/// range, so it is spliced into the serialized document).
fn with_raw(valid: &Value, path: &[PathPart], raw: &str) -> Vec<u8> {
    let mut v = valid.clone();
    *at_mut(&mut v, path) = json!("__HOSTILE__");
    serde_json::to_string(&v).unwrap().replacen("\"__HOSTILE__\"", raw, 1).into_bytes()
}

pub(crate) fn hostile_bodies(route: &Route) -> Vec<Hostile> {
    let valid = &route.valid;
    let obj = valid.as_object().unwrap();
    // A bad value anywhere in a typed body is refused; ingestion and replay bodies carry open
    // Segment messages, where only the shape around the message is checked.
    let typed = matches!(route.kind, Kind::Json);
    let ingest = matches!(route.kind, Kind::Ingest { .. });
    let over_limit = if ingest { 600 * 1024 } else { 1536 * 1024 };
    let valid_bytes = serde_json::to_vec(valid).unwrap();
    // A JSON object with some members of every body but not the shape of this one: typed bodies
    // refuse its unknown members, single Segment calls keep it as a dead letter, batches need
    // their `batch` array.
    let open_shape = match route.kind {
        Kind::Ingest { batch: false } => Expect::AllRejected,
        Kind::Ingest { batch: true } => Expect::Status(400),
        _ => Expect::ClientError,
    };
    let mut bodies = vec![
        hostile("malformed", b"{\"name\": \"x\",".to_vec(), Expect::Status(400)),
        hostile("trailing garbage", [&valid_bytes[..], b"}}"].concat(), Expect::Status(400)),
        hostile("two documents", [&valid_bytes[..], &valid_bytes[..]].concat(), Expect::Status(400)),
        hostile("null", b"null".to_vec(), Expect::ClientError),
        hostile("array", b"[1,2,3]".to_vec(), Expect::ClientError),
        hostile("string", b"\"hello\"".to_vec(), Expect::ClientError),
        hostile("number", b"42".to_vec(), Expect::ClientError),
        hostile("invalid utf-8", b"{\"name\": \"\xff\xfe\", \"userId\": \"\xc3\x28\"}".to_vec(), Expect::Status(400)),
        hostile("lone surrogate", br#"{"name": "\ud800", "userId": "\udfff"}"#.to_vec(), Expect::Status(400)),
        hostile("raw NUL byte in a string", b"{\"name\": \"a\x00b\"}".to_vec(), Expect::Status(400)),
        hostile("NUL escape in a key", br#"{"na\u0000me": "x"}"#.to_vec(), Expect::Status(400)),
        hostile("deep nesting", ["[".repeat(100_000), "]".repeat(100_000)].concat().into_bytes(), Expect::Status(400)),
        hostile(
            "deep object nesting",
            format!("{}1{}", "{\"a\":".repeat(50_000), "}".repeat(50_000)).into_bytes(),
            Expect::Status(400),
        ),
        hostile(
            "huge numbers",
            concat!(
                r#"{"price": {"amount_minor": 99999999999999999999999999999, "currency": "EUR"},"#,
                r#" "name": 1e400, "code": -1e400}"#
            )
            .as_bytes()
            .to_vec(),
            Expect::Status(400),
        ),
        hostile("huge body", vec![b' '; 3 * 1024 * 1024], Expect::Status(413)),
        hostile(
            "huge JSON over the limit",
            serde_json::to_vec(&json!({"name": "x".repeat(over_limit), "userId": "u", "event": "E"})).unwrap(),
            Expect::Status(413),
        ),
        hostile(
            "huge string under the limit",
            serde_json::to_vec(&json!({"name": "x".repeat(400_000), "brand": "b", "code": "c", "role": "service",
                "userId": "u", "event": "E"}))
            .unwrap(),
            // Over the 32 KiB a message may have: a dead letter; a batch needs its array.
            open_shape,
        ),
        hostile(
            "control chars",
            serde_json::to_vec(&json!({"name": "a\u{1}b", "brand": "\u{7}", "code": "\u{1b}", "role": "service"}))
                .unwrap(),
            open_shape,
        ),
        Hostile {
            what: "gzip bomb".into(),
            body: gzip(&[b' '; 16 * 1024 * 1024]),
            content_encoding: Some("gzip"),
            // Only ingestion decompresses: its limit holds for the inflated body; elsewhere the
            // bytes are not JSON.
            expect: if ingest { Expect::Status(413) } else { Expect::Status(400) },
        },
        Hostile {
            what: "corrupt gzip".into(),
            body: [&gzip(&serde_json::to_vec(valid).unwrap())[..20], b"garbage"].concat(),
            content_encoding: Some("gzip"),
            expect: Expect::ClientError,
        },
    ];
    if ingest {
        bodies.push(Hostile {
            what: "unsupported content encoding".into(),
            body: serde_json::to_vec(valid).unwrap(),
            content_encoding: Some("br"),
            expect: Expect::ClientError,
        });
    }
    match route.kind {
        Kind::Replay => {
            bodies.push(hostile("empty (replays the stored, invalid message)", Vec::new(), Expect::Status(422)))
        }
        Kind::OptionalJson => bodies.push(hostile("empty (all)", Vec::new(), Expect::NoServerError)),
        _ => bodies.push(hostile("empty", Vec::new(), Expect::Status(400))),
    }
    // Missing and unknown members.
    if let Some(field) = route.required {
        let mut missing = obj.clone();
        missing.remove(field);
        let expect = match route.kind {
            Kind::Ingest { batch: false } => Expect::AllRejected,
            Kind::Ingest { batch: true } => Expect::Status(400),
            _ => Expect::FieldError,
        };
        bodies.push(hostile(format!("missing {field}"), serde_json::to_vec(&missing).unwrap(), expect));
    }
    let mut unknown = obj.clone();
    unknown.insert("definitely_not_a_field".into(), json!(true));
    // Segment messages are open: unknown members are kept, as the SDKs expect.
    let expect = if ingest { Expect::NoServerError } else { Expect::FieldError };
    bodies.push(hostile("unknown field", serde_json::to_vec(&unknown).unwrap(), expect));
    if let Kind::Ingest { batch } = route.kind {
        bodies.extend(ingestion_rejects(batch));
    }

    // Every member, at every depth: a wrong type, huge and out-of-range numbers, a NUL, deep
    // (but legal) nesting.
    let mut paths = Vec::new();
    value_paths(valid, &mut Vec::new(), &mut paths);
    let nested = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    for path in &paths {
        let name = path_name(path);
        let current = {
            let mut v = valid.clone();
            at_mut(&mut v, path).clone()
        };
        let wrong = match current {
            Value::String(_) => "12345",
            Value::Number(_) => "\"twelve\"",
            Value::Object(_) => "[1, 2]",
            Value::Null => "{\"x\": 1}",
            Value::Bool(_) => "\"yes\"",
            Value::Array(_) => "{\"x\": 1}",
        };
        // Typed bodies name the member in a 422; open ones just never fail on the server.
        let expect = if typed { Expect::FieldError } else { Expect::NoServerError };
        bodies.push(hostile(format!("wrong type at {name}"), with_raw(valid, path, wrong), expect));
        for (label, raw) in [("2^64", "18446744073709551616"), ("-2^63-1", "-9223372036854775809"), ("1e308", "1e308")]
        {
            bodies.push(hostile(format!("{label} at {name}"), with_raw(valid, path, raw), expect));
        }
        bodies.push(hostile(format!("1e400 at {name}"), with_raw(valid, path, "1e400"), Expect::Status(400)));
        bodies.push(hostile(format!("NUL at {name}"), with_raw(valid, path, r#""a\u0000b""#), Expect::Status(400)));
        bodies.push(hostile(format!("deep nesting at {name}"), with_raw(valid, path, &nested), expect));
    }
    bodies
}

/// Well-formed requests whose every message fails validation: all must become dead letters.
fn ingestion_rejects(batch: bool) -> Vec<Hostile> {
    let invalid = [
        json!(5),
        json!({"type": "nope", "userId": "u"}),
        json!({"type": "track", "userId": "u"}),
        json!({"type": "track", "userId": {"a": 1}, "event": "E", "messageId": "rej-id"}),
        json!({"type": "track", "userId": "u".repeat(300), "event": "E", "messageId": "rej-long-id"}),
        json!({"type": "track", "userId": "u", "event": "E", "timestamp": "yesterday", "messageId": "rej-time"}),
        json!({"type": "track", "userId": "u", "event": "E", "timestamp": 1e300, "messageId": "rej-time-number"}),
        json!({"type": "track", "userId": "u", "event": "Product Viewed", "properties": {"price": -1},
            "messageId": "rej-schema"}),
        json!({"type": "track", "userId": "u", "event": "E", "properties": {"blob": "x".repeat(40_000)},
            "messageId": "rej-big"}),
        json!({"type": "track", "userId": "u", "event": "E", "properties": [1], "messageId": "rej-props"}),
        json!({"type": "track", "userId": "u", "event": "E", "messageId": 18_446_744_073_709_551_615_u64}),
        json!({"type": "track", "userId": "u", "event": "E", "messageId": "m".repeat(300)}),
        json!({"type": "alias", "userId": "u"}),
        json!({"type": "group", "userId": "u", "groupId": ""}),
    ];
    if batch {
        vec![hostile(
            "a batch of invalid messages",
            serde_json::to_vec(&json!({"batch": invalid})).unwrap(),
            Expect::AllRejected,
        )]
    } else {
        // The path gives the type; these fail whatever it is.
        [
            json!({"event": "E"}),
            json!({"userId": ["u"], "event": "E", "messageId": "rej-single"}),
            json!({"userId": "u", "event": "E", "timestamp": "2026-13-45T99:00:00Z", "messageId": "rej-single-time",
                "groupId": "g", "previousId": "p"}),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, m)| hostile(format!("invalid message {i}"), serde_json::to_vec(&m).unwrap(), Expect::AllRejected))
        .collect()
    }
}

struct Answer {
    status: u16,
    content_type: Option<String>,
    text: String,
}

async fn send(
    app: &TestApp,
    fx: &Fixture,
    route: &Route,
    path: &str,
    body: Vec<u8>,
    content_type: Option<&str>,
    content_encoding: Option<&str>,
) -> Answer {
    let mut rb = match route.kind {
        Kind::Ingest { .. } => {
            app.client.request(route.method.clone(), app.url(path)).header("authorization", basic(&fx.write_key))
        }
        _ => app.request(route.method.clone(), path, Some(Role::Admin)),
    };
    if let Some(ct) = content_type {
        rb = rb.header("content-type", ct);
    }
    if let Some(ce) = content_encoding {
        rb = rb.header("content-encoding", ce);
    }
    let res = rb.body(body).send().await.unwrap_or_else(|e| panic!("{} {path}: {e}", route.method));
    let status = res.status().as_u16();
    let content_type = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    Answer { status, content_type, text: res.text().await.unwrap() }
}

/// The checks every answer passes: no 5xx; a 4xx is a problem document; an ingestion answer
/// accounts for every message, and its rejections are counted as dead letters to be found.
fn check(what: &str, route: &Route, sent: &[u8], a: &Answer, ledger: &mut Ledger) {
    let ctx = format!("{what} to {}", route.name());
    assert!(a.status < 500, "{ctx} answered {}: {}", a.status, a.text);
    if a.status >= 400 {
        assert_eq!(a.content_type.as_deref(), Some("application/problem+json"), "{ctx}: {}", a.text);
        let p: Value = serde_json::from_str(&a.text).unwrap_or_else(|e| panic!("{ctx}: {e}: {}", a.text));
        assert_eq!(p["status"], a.status, "{ctx}: {p}");
        assert!(p["type"].as_str().is_some_and(|t| t.starts_with("/problems/")), "{ctx}: {p}");
        assert!(p["title"].is_string() && p["detail"].is_string(), "{ctx}: {p}");
        return;
    }
    if let Kind::Ingest { batch } = route.kind {
        assert_eq!(a.status, 200, "{ctx}: {}", a.text);
        let r: Value = serde_json::from_str(&a.text).unwrap();
        let rejected = r["rejected"].as_array().unwrap_or_else(|| panic!("{ctx}: {r}"));
        let messages = if batch {
            let sent: Value = serde_json::from_slice(sent).unwrap();
            sent["batch"].as_array().unwrap().len()
        } else {
            1
        };
        let (accepted, duplicates) = (r["accepted"].as_u64().unwrap(), r["duplicates"].as_u64().unwrap());
        assert_eq!(
            accepted as usize + duplicates as usize + rejected.len(),
            messages,
            "{ctx}: every message is accounted for: {r}"
        );
        assert_eq!(r["success"], rejected.is_empty(), "{ctx}: {r}");
        for f in rejected {
            assert!(f["index"].as_u64().is_some_and(|i| (i as usize) < messages), "{ctx}: {f}");
            assert!(f["reason"].as_str().is_some_and(|s| !s.is_empty()), "{ctx}: {f}");
            if let Some(id) = f["message_id"].as_str() {
                ledger.rejected_message_ids.insert(id.to_owned());
            }
        }
        ledger.expected_dead_letters += rejected.len();
    }
}

fn check_expectation(what: &str, route: &Route, expect: Expect, sent: &[u8], a: &Answer) {
    let ctx = format!("{what} to {}: {}", route.name(), a.text);
    match expect {
        Expect::Status(s) => assert_eq!(a.status, s, "{ctx}"),
        Expect::ClientError => assert!((400..500).contains(&a.status), "{ctx}"),
        Expect::FieldError => {
            assert_eq!(a.status, 422, "{ctx}");
            let p: Value = serde_json::from_str(&a.text).unwrap();
            assert!(p["errors"][0]["field"].as_str().is_some_and(|f| !f.is_empty()), "{ctx}");
        }
        Expect::AllRejected => {
            assert_eq!(a.status, 200, "{ctx}");
            let r: Value = serde_json::from_str(&a.text).unwrap();
            let messages = match route.kind {
                Kind::Ingest { batch: true } => {
                    serde_json::from_slice::<Value>(sent).unwrap()["batch"].as_array().unwrap().len()
                }
                _ => 1,
            };
            assert_eq!(r["success"], false, "{ctx}");
            assert_eq!(r["rejected"].as_array().unwrap().len(), messages, "{ctx}");
        }
        Expect::NoServerError => {}
    }
}

/// Every rejection the answers announced is a dead letter; nothing vanished.
async fn assert_dead_letters_kept(app: &TestApp, ledger: &Ledger) {
    let dead = dead_letters(app).await;
    assert_eq!(dead.len(), ledger.expected_dead_letters, "one dead letter per rejected message");
    let ids: BTreeSet<&str> = dead.iter().filter_map(|d| d["message_id"].as_str()).collect();
    for id in &ledger.rejected_message_ids {
        assert!(ids.contains(id.as_str()), "rejected message {id} is not among the dead letters");
    }
    assert!(dead.iter().all(|d| d["reason"].as_str().is_some_and(|r| !r.is_empty())));
}

async fn hostile_bodies_on_every_write_route_are_4xx_problems(app: TestApp) {
    let mut fx = fixture(&app).await;
    assert_every_write_route_is_swept(&app, &fx.routes).await;
    let before: Value = app.get("/v1/products?limit=500", Role::Admin).await.json().await.unwrap();
    let skus_path = fx.routes[2].paths[0].clone();
    let skus_before: Value = app.get(&skus_path, Role::Admin).await.json().await.unwrap();
    let customers_before = customer_snapshots(&app, &fx.customers).await;
    let routes = std::mem::take(&mut fx.routes);
    for route in &routes {
        for h in hostile_bodies(route) {
            let path = route.path().to_owned();
            let a = send(&app, &fx, route, &path, h.body.clone(), Some("application/json"), h.content_encoding).await;
            check(&h.what, route, &h.body, &a, &mut fx.ledger);
            match route.kind {
                // A revocation or an erasure reads no body: it acts (once) or finds nothing.
                Kind::Delete { done } => {
                    assert!(a.status == done || a.status == 404, "{} to {path}: {}: {}", h.what, a.status, a.text)
                }
                // An erasure reads no body either: it erases (nothing, for nobody).
                Kind::Erase => assert_eq!(a.status, 200, "{} to {path}: {}", h.what, a.text),
                _ => check_expectation(&h.what, route, h.expect, &h.body, &a),
            }
        }
        // Wrong content types.
        let valid = serde_json::to_string(&route.valid).unwrap();
        for (ct, body) in [
            (None, valid.as_str()),
            (Some("text/plain"), valid.as_str()),
            (Some("application/x-www-form-urlencoded"), "name=x"),
            (Some("application/xml"), "<a/>"),
        ] {
            let path = route.path().to_owned();
            let a = send(&app, &fx, route, &path, body.as_bytes().to_vec(), ct, None).await;
            check(&format!("content type {ct:?}"), route, body.as_bytes(), &a, &mut fx.ledger);
            match route.kind {
                Kind::Json | Kind::Replay | Kind::OptionalJson => {
                    assert_eq!(a.status, 415, "{ct:?} to {}", route.name())
                }
                Kind::Delete { done } => {
                    assert!(a.status == done || a.status == 404, "{ct:?} to {path}: {}: {}", a.status, a.text)
                }
                Kind::Erase => assert_eq!(a.status, 200, "{ct:?} to {}: {}", route.name(), a.text),
                // Browsers post text/plain to avoid a preflight: any type is read as JSON.
                Kind::Ingest { .. } => {
                    let expected = if body == valid { 200 } else { 400 };
                    assert_eq!(a.status, expected, "{ct:?} to {}: {}", route.name(), a.text);
                }
            }
        }
        // Hostile path parameters.
        if route.template.contains('{') {
            for id in [
                "x".repeat(5000).as_str(),
                "%00",
                "%ff%fe",
                "..%2F..%2Fetc",
                "%27%3B%20DROP%20TABLE%20products%3B--",
                "%C3%A9",
                "%20",
            ] {
                let mut path = String::new();
                let mut rest = route.template;
                while let Some(start) = rest.find('{') {
                    let end = rest.find('}').unwrap();
                    path.push_str(&rest[..start]);
                    path.push_str(id);
                    rest = &rest[end + 1..];
                }
                path.push_str(rest);
                let body = serde_json::to_vec(&route.valid).unwrap();
                let a = send(&app, &fx, route, &path, body.clone(), Some("application/json"), None).await;
                check(&format!("path {path:.60}"), route, &body, &a, &mut fx.ledger);
                // A consent purpose is one of a closed list: an unknown one is a 422 naming them.
                let listed = route.template.ends_with("{purpose}") && a.status == 422 && a.text.contains("health_data");
                assert!(matches!(a.status, 400 | 404) || listed, "{path:.60} to {}: {}", route.name(), a.status);
            }
        }
    }
    // Ingestion without a usable write key is refused as a whole, and stores nothing.
    let ingest = routes.iter().find(|r| r.template == "/v1/track").unwrap();
    for auth in [None, Some("Basic !!!"), Some("Basic /w=="), Some("Basic ZHdrX25vcGU6"), Some("Bearer x")] {
        let mut rb = app.client.post(app.url("/v1/track")).json(&ingest.valid);
        if let Some(h) = auth {
            rb = rb.header("authorization", h);
        }
        let res = rb.send().await.unwrap();
        let a = Answer {
            status: res.status().as_u16(),
            content_type: res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()),
            text: res.text().await.unwrap(),
        };
        check(&format!("authorization {auth:?}"), ingest, &[], &a, &mut fx.ledger);
        assert_eq!(a.status, 401, "authorization {auth:?}");
    }
    // Nothing stored was lost or changed by the rejected requests.
    let after: Value = app.get("/v1/products?limit=500", Role::Admin).await.json().await.unwrap();
    assert_eq!(before, after);
    let skus_after: Value = app.get(&skus_path, Role::Admin).await.json().await.unwrap();
    assert_eq!(skus_before, skus_after);
    assert_eq!(customers_before, customer_snapshots(&app, &fx.customers).await, "customers are unchanged");
    assert_dead_letters_kept(&app, &fx.ledger).await;
}

async fn random_mutations_of_valid_bodies_never_cause_5xx(app: TestApp) {
    let mut fx = fixture(&app).await;
    let routes = std::mem::take(&mut fx.routes);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x0de7_0415);
    const ALPHABET: &[u8] = b"{}[]\",:0123456789-+.eE truefalsnul\\\x00\xff";
    for route in &routes {
        let valid = serde_json::to_vec(&route.valid).unwrap();
        for _ in 0..100 {
            let mut body = valid.clone();
            for _ in 0..rng.gen_range(1..6) {
                let i = rng.gen_range(0..=body.len());
                match rng.gen_range(0..4) {
                    0 if i < body.len() => {
                        body.remove(i);
                    }
                    1 => body.insert(i, ALPHABET[rng.gen_range(0..ALPHABET.len())]),
                    2 if i < body.len() => body[i] = ALPHABET[rng.gen_range(0..ALPHABET.len())],
                    _ => {
                        let j = rng.gen_range(0..=body.len());
                        let (a, b) = (i.min(j), i.max(j));
                        let chunk = body[a..b].to_vec();
                        body.splice(a..a, chunk);
                    }
                }
            }
            let mut path = route.path().to_owned();
            if matches!(route.kind, Kind::Delete { .. }) {
                // A revocation or an erasure has no body: mutate the id it names instead.
                let (head, id) = path.rsplit_once('/').unwrap();
                let mut id = id.as_bytes().to_vec();
                let i = rng.gen_range(0..id.len());
                id[i] = rng.r#gen();
                let encoded: String = id.iter().map(|b| format!("%{b:02X}")).collect();
                path = format!("{head}/{encoded}");
            }
            if route.kind == Kind::Erase {
                // An erasure has no body: mutate whose events it names instead.
                let (head, who) = path.split_once('=').unwrap();
                let mut who = who.as_bytes().to_vec();
                let i = rng.gen_range(0..who.len());
                who[i] = rng.r#gen();
                let encoded: String = who.iter().map(|b| format!("%{b:02X}")).collect();
                path = format!("{head}={encoded}");
            }
            let a = send(&app, &fx, route, &path, body.clone(), Some("application/json"), None).await;
            check(&format!("{:?}", String::from_utf8_lossy(&body)), route, &body, &a, &mut fx.ledger);
        }
    }
    assert_dead_letters_kept(&app, &fx.ledger).await;
}

#[tokio::test]
async fn huge_amounts_in_events_do_not_break_features() {
    let app = spawn_app().await;
    let wk = created(app.post_json("/v1/write-keys", Role::Admin, &json!({"name": "big"})).await, "write key").await;
    let key = wk["write_key"].as_str().unwrap();
    for (i, price) in [1e300, 1e300, 1.7e308].into_iter().enumerate() {
        let order = json!({"userId": "c-big", "event": "Order Completed", "messageId": format!("big-{i}"),
            "properties": {"order_id": format!("o-{i}"),
                "products": [{"product_id": "P-big", "price": price, "quantity": 1}]}});
        let res = app
            .client
            .post(app.url("/v1/track"))
            .header("authorization", basic(key))
            .json(&order)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.json::<Value>().await.unwrap()["accepted"], 1);
    }
    let res = app.get("/v1/features/customers/c-big", Role::Service).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let f: Value = res.json().await.unwrap();
    assert_eq!(f["spend_minor"], i64::MAX, "spend saturates instead of overflowing");
    // P-big is not in the catalog: its counts are kept, but there is no product to answer for.
    assert_eq!(app.get("/v1/features/products/P-big", Role::Service).await.status(), 404);
}

#[tokio::test]
async fn bad_headers_and_paths_are_4xx() {
    let app = spawn_app().await;
    let p = app.create_product(json!({"name": "H", "brand": "B"})).await;
    let path = format!("/v1/products/{}", p["id"].as_str().unwrap());
    for if_match in ["garbage", "\"\"", "\"99999999999999999999999\"", "*"] {
        let res = app
            .request(Method::PATCH, &path, Some(Role::Admin))
            .header("if-match", if_match)
            .json(&json!({"name": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "If-Match {if_match}");
    }
    let long_key = "k".repeat(300);
    let res = app
        .request(Method::POST, "/v1/products", Some(Role::Admin))
        .header("idempotency-key", long_key)
        .json(&json!({"name": "x", "brand": "y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = app.get(&format!("/v1/products/{}", "x".repeat(5000)), Role::Admin).await;
    assert_eq!(res.status(), 404);
    let res = app.get("/v1/products/%ff%fe", Role::Admin).await;
    assert!(res.status().is_client_error());
    // NUL characters, which PostgreSQL cannot store, are refused at the door on every backend.
    for path in ["/v1/products/a%00b", "/v1/products?brand=%00", "/v1/products?cursor=AA"] {
        let res = app.get(path, Role::Admin).await;
        assert!(matches!(res.status().as_u16(), 400 | 422), "{path}: {}", res.status());
    }
    let res = app.post_json("/v1/products", Role::Admin, &json!({"name": "a\u{0}b", "brand": "b"})).await;
    assert_eq!(res.status(), 400);
}
