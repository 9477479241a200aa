//! The audit of `/v1/customers...` (who read or wrote which fields, never their values; no entry,
//! no answer), asynchronous exports (sealed, owned, expiring, gone with the erasure) and the
//! master key's rotation, on both backends.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use dermis_audit::{Audit, AuditError, Auditor, Entry, Record};
use dermis_auth::jwt::{JwtConfig, JwtVerifier, issue};
use dermis_auth::{ApiKeys, Authenticator, Role};
use dermis_core::clock::{ManualClock, SharedClock};
use dermis_customers::Customers;
use dermis_customers::crypto::Keyring;
use dermis_customers::routes::{CustomersState, router};
use dermis_store::{Db, StoreError};
use secrecy::SecretString;
use serde_json::{Value, json};
use tower::ServiceExt;

const SECRET: &str = "a-test-secret-of-at-least-thirty-two-bytes-0123456789";

fn token(role: Role, sub: &str) -> String {
    let store = (role == Role::StoreAssociate).then_some("store-1");
    issue(&SecretString::from(SECRET.to_owned()), role, sub, store, Duration::from_secs(600)).unwrap()
}

fn admin() -> String {
    token(Role::Admin, "adm-1")
}

/// An auditor whose log is down.
struct Down;

#[async_trait]
impl Auditor for Down {
    async fn record(&self, _: Entry) -> Result<Record, AuditError> {
        Err(AuditError::Store(StoreError::Unavailable("the audit log is down".into())))
    }
    async fn export(&self, _: &str) -> Result<Vec<Record>, AuditError> {
        Err(AuditError::Store(StoreError::Unavailable("the audit log is down".into())))
    }
}

struct Api {
    router: Router,
    customers: Customers,
    audit: Audit,
}

struct Answer {
    status: StatusCode,
    content_type: String,
    location: Option<String>,
    body: Value,
    text: String,
}

impl Api {
    async fn new(db: &Db, clock: SharedClock, down: bool) -> Self {
        let jwt = JwtVerifier::new(JwtConfig {
            hs256_secret: Some(SecretString::from(SECRET.to_owned())),
            ..Default::default()
        })
        .await
        .unwrap();
        let auth = Arc::new(Authenticator::new(jwt, ApiKeys::new(db.clone())));
        let customers = Customers::open(db.clone(), Keyring::new(master(42)), clock.clone()).await.unwrap();
        let audit = Audit::new(db.clone(), clock);
        let auditor: Arc<dyn Auditor> = if down { Arc::new(Down) } else { Arc::new(audit.clone()) };
        let state = CustomersState::new(customers.clone(), auth, auditor).with_export_ttl(Duration::from_secs(3600));
        let (router, _doc) = router().with_state(state).split_for_parts();
        Self { router, customers, audit }
    }

    async fn call(&self, method: &str, uri: &str, as_: &str, body: Option<Value>, headers: &[(&str, &str)]) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {as_}"))
            .header("x-request-id", "req-test");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = match body {
            Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let content_type =
            res.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let location = res.headers().get(header::LOCATION).map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        Answer { status, content_type, location, body, text }
    }

    async fn create_ada(&self) -> String {
        let made = self.call("POST", "/v1/customers", &admin(), Some(ada()), &[]).await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
        made.body["id"].as_str().unwrap().to_owned()
    }
}

fn ada() -> Value {
    json!({"name": "Ada Lovelace", "email": "Ada@Example.com", "phone": "+44 20 7946 0958", "user_id": "shop-ada",
           "consents": [{"purpose": "health_data", "granted": true, "text_version": "v1", "channel": "web"}],
           "skin_profile": {"skin_type": "dry", "allergies": ["limonene"]}})
}

/// What must never appear in an audit entry: Ada's values.
const VALUES: &[&str] = &["Ada", "Lovelace", "example.com", "7946", "limonene", "shop-ada", "dry"];

/// The chain's hashes and random ids (`cus_…`, `exp_…`: a prefix and 26 base32 characters, as a
/// subject or as a customer acting) are left out of the search: hex and base32 text can hold
/// "7946" or "dry" by chance (a CI run once failed on a hash holding "7946"). A subject that is not an id
/// (a user id, an email) stays in, and so is still caught.
fn no_values(records: &[Record]) {
    for r in records {
        let mut entry = serde_json::to_value(r).unwrap();
        let fields = entry.as_object_mut().unwrap();
        fields.remove("hash");
        fields.remove("prev_hash");
        for random in ["subject", "actor"] {
            if fields.get(random).and_then(Value::as_str).is_some_and(is_random_id) {
                fields.remove(random);
            }
        }
        let text = entry.to_string();
        for v in VALUES {
            assert!(!text.contains(v), "an audit entry holds the value {v:?}: {text}");
        }
    }
}

fn is_random_id(s: &str) -> bool {
    s.split_once('_').is_some_and(|(prefix, rest)| {
        prefix.bytes().all(|b| b.is_ascii_lowercase())
            && rest.len() == 26
            && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

fn actions(records: &[Record]) -> Vec<&str> {
    records.iter().map(|r| r.action.as_str()).collect()
}

async fn reads_and_writes_are_recorded_with_field_names_and_no_values(db: Db) {
    let api = Api::new(&db, clock(), false).await;
    let id = api.create_ada().await;
    let got = api.call("GET", "/v1/customers/shop-ada", &admin(), None, &[("x-purpose", "order_fulfilment")]).await;
    assert_eq!(got.status, StatusCode::OK);
    let put = api
        .call(
            "PUT",
            &format!("/v1/customers/{id}/skin-profile"),
            &admin(),
            Some(json!({"skin_type": "oily", "pregnant": true})),
            &[],
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    let export = api.call("GET", &format!("/v1/customers/{id}/export"), &admin(), None, &[]).await;
    assert_eq!(export.status, StatusCode::OK);
    let bad = api.call("GET", &format!("/v1/customers/{id}"), &admin(), None, &[("x-purpose", "Just Looking")]).await;
    assert_eq!(bad.status.as_u16(), 422, "{}", bad.body);
    assert_eq!(bad.content_type, "application/problem+json");

    let log = api.audit.export(&id).await.unwrap();
    assert_eq!(
        actions(&log),
        ["customer.create", "customer.read", "customer.read", "skin_profile.write", "customer.read", "customer.export"]
    );
    for r in &log {
        assert_eq!((r.actor.as_str(), r.role.as_str()), ("adm-1", "admin"));
        assert_eq!(r.subject.as_deref(), Some(id.as_str()), "the customer id, never the user id");
        assert_eq!(r.request_id, "req-test");
    }
    assert_eq!(log[0].purpose, "support");
    assert_eq!(log[2].purpose, "order_fulfilment", "the caller's x-purpose");
    assert_eq!(log[5].purpose, "gdpr_export");
    for f in ["name", "email", "phone", "user_id", "skin_profile.skin_type", "skin_profile.allergies"] {
        assert!(log[0].fields.iter().any(|x| x == f), "create wrote {f}: {:?}", log[0].fields);
    }
    assert_eq!(log[3].fields, ["skin_profile.skin_type", "skin_profile.pregnant"], "only the fields written");
    assert!(log[4].fields.contains(&"skin_profile.pregnant".to_owned()));
    for f in ["email", "skin_profile.allergies", "consents", "unknown_allergens"] {
        let present = log[5].fields.iter().any(|x| x == f);
        assert_eq!(present, f != "unknown_allergens", "export fields {:?}", log[5].fields);
    }
    no_values(&log);
    assert_eq!(api.audit.verify().await.unwrap(), Ok(log.len() as u64), "the chain verifies");

    // An admin reads the customer's part of the log (and that read is recorded too).
    let trail = api.call("GET", "/v1/customers/shop-ada/audit", &admin(), None, &[]).await;
    assert_eq!(trail.status, StatusCode::OK, "{}", trail.body);
    assert_eq!(trail.body["customer_id"], id.as_str());
    let items = trail.body["items"].as_array().unwrap();
    assert_eq!(items.len(), log.len() + 1);
    assert_eq!(items.last().unwrap()["action"], "audit.read");
    for role in [Role::Service, Role::StoreAssociate, Role::Customer] {
        let no = api.call("GET", &format!("/v1/customers/{id}/audit"), &token(role, "shop-ada"), None, &[]).await;
        assert_eq!(no.status, StatusCode::FORBIDDEN, "{role:?}");
    }
    assert_eq!(api.call("GET", "/v1/customers/nobody/audit", &admin(), None, &[]).await.status, StatusCode::NOT_FOUND);
}

async fn an_associate_without_a_consultation_is_not_recorded_reading_health_fields(db: Db) {
    let api = Api::new(&db, clock(), false).await;
    let id = api.create_ada().await;
    let associate = token(Role::StoreAssociate, "sa-1");
    let first = api.call("GET", &format!("/v1/customers/{id}"), &associate, None, &[]).await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(first.body["skin_profile"].get("allergies").is_none(), "withheld");
    let open = api.call("POST", &format!("/v1/customers/{id}/consultations"), &associate, Some(json!({})), &[]).await;
    assert_eq!(open.status, StatusCode::CREATED, "{}", open.body);
    let second = api.call("GET", &format!("/v1/customers/{id}"), &associate, None, &[]).await;
    assert!(second.body["skin_profile"].get("allergies").is_some());

    let log = api.audit.export(&id).await.unwrap();
    let by_associate: Vec<&Record> = log.iter().filter(|r| r.actor == "sa-1").collect();
    let done: Vec<&str> = by_associate.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(done, ["customer.read", "consultation.open", "customer.read"]);
    let (before, after) = (&by_associate[0].fields, &by_associate[2].fields);
    assert!(before.contains(&"email".to_owned()) && before.contains(&"skin_profile.skin_type".to_owned()));
    assert!(!before.iter().any(|f| f == "skin_profile.allergies"), "withheld fields are not listed: {before:?}");
    assert!(after.iter().any(|f| f == "skin_profile.allergies"), "{after:?}");
    assert_eq!(by_associate[0].role, "store_associate");
}

async fn when_the_log_is_down_nothing_is_answered(db: Db) {
    let up = Api::new(&db, clock(), false).await;
    let id = up.create_ada().await;
    let down = Api::new(&db, clock(), true).await;
    for (method, path, body) in [
        ("GET", format!("/v1/customers/{id}"), None),
        ("GET", "/v1/customers?email=ada@example.com".to_owned(), None),
        ("GET", format!("/v1/customers/{id}/export"), None),
        ("GET", format!("/v1/customers/{id}/consents"), None),
        ("PATCH", format!("/v1/customers/{id}"), Some(json!({"name": "Ada King"}))),
        ("POST", "/v1/customers".to_owned(), Some(json!({"name": "Grace Hopper", "email": "grace@example.org"}))),
        ("POST", format!("/v1/customers/{id}/exports"), None),
        ("DELETE", format!("/v1/customers/{id}"), None),
    ] {
        let a = down.call(method, &path, &admin(), body, &[]).await;
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{method} {path}: {}", a.text);
        assert_eq!(a.content_type, "application/problem+json");
        for v in ["Ada", "example.com", "limonene", "Grace"] {
            assert!(!a.text.contains(v), "{method} {path} answered data: {}", a.text);
        }
    }
    // The erasure the log could not record was not carried out.
    assert_eq!(up.call("GET", &format!("/v1/customers/{id}"), &admin(), None, &[]).await.status, StatusCode::OK);
}

async fn wait_for(api: &Api, location: &str, as_: &str) -> Answer {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        let a = api.call("GET", location, as_, None, &[]).await;
        if a.body["status"] != "pending" {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the export at {location} never finished");
}

async fn exports_are_made_in_the_background_sealed_owned_and_gone_with_the_erasure(db: Db) {
    let api = Api::new(&db, clock(), false).await;
    let id = api.create_ada().await;
    let other = api.call("POST", "/v1/customers", &admin(), Some(json!({"user_id": "shop-bob"})), &[]).await;
    assert_eq!(other.status, StatusCode::CREATED);
    let own = token(Role::Customer, "shop-ada");

    let asked = api.call("POST", "/v1/customers/shop-ada/exports", &own, None, &[("idempotency-key", "e1")]).await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.body);
    let location = asked.location.clone().unwrap();
    assert!(location.starts_with("/v1/customer-exports/exp_"), "{location}");
    assert_eq!(asked.body["customer_id"], id.as_str());
    assert!(asked.body["requested_at"].is_string() && asked.body["expires_at"].is_string());
    let again = api.call("POST", "/v1/customers/shop-ada/exports", &own, None, &[("idempotency-key", "e1")]).await;
    assert_eq!(again.body["id"], asked.body["id"], "a retry answers the same export");

    let done = wait_for(&api, &location, &own).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.body["status"], "completed", "{}", done.body);
    assert!(done.body["completed_at"].is_string());
    let sync = api.call("GET", &format!("/v1/customers/{id}/export"), &admin(), None, &[]).await;
    let doc = &done.body["document"];
    assert_eq!(doc["customer"], sync.body["customer"], "the same document as the synchronous export");
    assert_eq!(doc["consents"], sync.body["consents"]);
    assert_eq!(doc["customer"]["email"], "Ada@Example.com");

    // Stored sealed: no value of Ada's in the row.
    let row: String = dermis_store::sqlx::query_scalar("SELECT document FROM customer_exports WHERE customer_id = $1")
        .bind(&id)
        .fetch_one(db.reader())
        .await
        .unwrap();
    // (Needles base64 cannot hold by chance: "Ada" alone is in about 1% of sealed documents.)
    for v in ["Lovelace", "Ada@Example.com", "example.com", "limonene", "shop-ada"] {
        assert!(!row.contains(v), "the stored document holds {v:?}");
    }
    // Another customer's token cannot read it; admins can.
    let bob = api.call("GET", &location, &token(Role::Customer, "shop-bob"), None, &[]).await;
    assert_eq!(bob.status, StatusCode::FORBIDDEN);
    assert!(!bob.text.contains("Ada"));
    let stranger = api.call("GET", &location, &token(Role::Customer, "shop-nobody"), None, &[]).await;
    assert_eq!(stranger.status, StatusCode::FORBIDDEN);
    assert_eq!(api.call("GET", &location, &admin(), None, &[]).await.status, StatusCode::OK);
    let asso = api.call("GET", &location, &token(Role::StoreAssociate, "sa-1"), None, &[]).await;
    assert_eq!(asso.status, StatusCode::FORBIDDEN);
    assert_eq!(
        api.call("POST", "/v1/customers/shop-ada/exports", &token(Role::Customer, "shop-bob"), None, &[]).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.call("GET", "/v1/customer-exports/exp_nope", &admin(), None, &[]).await.status,
        StatusCode::NOT_FOUND
    );

    // Audited: the request and each read of the document, with field names only.
    let log = api.audit.export(&id).await.unwrap();
    assert!(actions(&log).contains(&"customer.export_request"));
    let reads: Vec<&Record> = log.iter().filter(|r| r.action == "customer.export").collect();
    assert!(reads.iter().any(|r| r.role == "customer" && r.actor == id), "a customer acts as their customer id");
    assert!(reads.iter().all(|r| r.fields.contains(&"email".to_owned())));
    no_values(&log);

    // Erased: the export is gone with the customer.
    let erased = api.call("DELETE", &format!("/v1/customers/{id}"), &own, None, &[]).await;
    assert_eq!(erased.status, StatusCode::ACCEPTED);
    let gone = api.call("GET", &location, &admin(), None, &[]).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.text);
    assert_eq!(gone.content_type, "application/problem+json");
    let rows: i64 = dermis_store::sqlx::query_scalar("SELECT COUNT(*) FROM customer_exports WHERE customer_id = $1")
        .bind(&id)
        .fetch_one(db.reader())
        .await
        .unwrap();
    assert_eq!(rows, 0);
    assert_eq!(
        api.call("POST", &format!("/v1/customers/{id}/exports"), &admin(), None, &[]).await.status,
        StatusCode::NOT_FOUND
    );
    // The audit trail outlives the customer.
    let trail = api.audit.export(&id).await.unwrap();
    assert_eq!(trail.last().unwrap().action, "customer.erase");
    assert_eq!(api.audit.verify().await.unwrap(), Ok(api.audit.head().await.unwrap().0 as u64));
}

async fn exports_expire_and_are_deleted(db: Db) {
    let manual = ManualClock::at(NOW);
    let api = Api::new(&db, manual.clone(), false).await;
    let id = api.create_ada().await;
    let asked = api.call("POST", &format!("/v1/customers/{id}/exports"), &admin(), None, &[]).await;
    let location = asked.location.unwrap();
    assert_eq!(wait_for(&api, &location, &admin()).await.body["status"], "completed");
    manual.advance(3_600_000 - 1);
    assert_eq!(api.call("GET", &location, &admin(), None, &[]).await.status, StatusCode::OK);
    assert_eq!(api.customers.purge_expired_exports().await.unwrap(), 0);
    manual.advance(1);
    assert_eq!(api.call("GET", &location, &admin(), None, &[]).await.status, StatusCode::NOT_FOUND, "expired");
    assert_eq!(api.customers.purge_expired_exports().await.unwrap(), 1, "the row is deleted");
}

async fn a_failed_export_is_resumed(db: Db) {
    // An export left pending (the node stopped before making it) is made by the background job.
    let api = Api::new(&db, clock(), false).await;
    let id = api.create_ada().await;
    dermis_store::sqlx::query(
        "INSERT INTO customer_exports (id, customer_id, status, requested_by, requested_at, expires_at)
         VALUES ('exp_left', $1, 'failed', 'admin:adm-1', $2, $3)",
    )
    .bind(&id)
    .bind(NOW)
    .bind(NOW + 3_600_000)
    .execute(db.writer())
    .await
    .unwrap();
    assert_eq!(api.customers.resume_exports().await.unwrap(), 1);
    let done = api.call("GET", "/v1/customer-exports/exp_left", &admin(), None, &[]).await;
    assert_eq!(done.body["status"], "completed", "{}", done.body);
    assert_eq!(done.body["document"]["customer"]["id"], id.as_str());
    assert_eq!(api.customers.resume_exports().await.unwrap(), 0, "nothing left");
}

async fn rotation_rewraps_data_keys_and_the_data_reads_under_the_new_key_alone(db: Db) {
    let under_a = Customers::open(db.clone(), Keyring::new(master(1)), clock()).await.unwrap();
    let new = create(json!({"email": "rot@example.com", "name": "Rosalind", "user_id": "shop-ros",
        "consents": [{"purpose": "health_data", "granted": true, "text_version": "v1"}],
        "skin_profile": {"allergies": ["limonene"]}}))
    .parse(NOW)
    .unwrap();
    let made = under_a.create(None, new, &common::admin()).await.unwrap().value;
    let before: (String, Option<String>) =
        dermis_store::sqlx::query_as("SELECT contact, health FROM customers WHERE id = $1")
            .bind(&made.id)
            .fetch_one(db.reader())
            .await
            .unwrap();

    // Without the old key listed, the new key alone opens nothing.
    assert!(Customers::open(db.clone(), Keyring::new(master(2)), clock()).await.is_err());
    let rotating =
        Customers::open(db.clone(), Keyring::new(master(2)).with_previous(master(1)), clock()).await.unwrap();
    assert_eq!(rotating.rotate_master_key().await.unwrap(), 2, "the customer's key and the lookup secret");
    assert_eq!(rotating.rotate_master_key().await.unwrap(), 0, "a second run has nothing to do");
    let after: (String, Option<String>) =
        dermis_store::sqlx::query_as("SELECT contact, health FROM customers WHERE id = $1")
            .bind(&made.id)
            .fetch_one(db.reader())
            .await
            .unwrap();
    assert_eq!(before, after, "no ciphertext of data was touched");

    let under_b = Customers::open(db.clone(), Keyring::new(master(2)), clock()).await.unwrap();
    let read = under_b.get("shop-ros").await.unwrap();
    assert_eq!(read.contact.email.as_deref(), Some("rot@example.com"));
    assert_eq!(read.skin_profile.health.allergies.unwrap().value[0].name, "limonene");
    let lookup = serde_json::from_value::<dermis_customers::input::FindCustomers>(json!({"email": "ROT@example.com"}))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(under_b.find(&lookup).await.unwrap().map(|c| c.id), Some(made.id.clone()), "lookups unchanged");
    // The old key alone no longer opens anything.
    assert!(Customers::open(db.clone(), Keyring::new(master(1)), clock()).await.is_err());
}

dermis_store::backend_tests!(MIGRATIONS;
    reads_and_writes_are_recorded_with_field_names_and_no_values,
    an_associate_without_a_consultation_is_not_recorded_reading_health_fields,
    when_the_log_is_down_nothing_is_answered,
    exports_are_made_in_the_background_sealed_owned_and_gone_with_the_erasure,
    exports_expire_and_are_deleted,
    a_failed_export_is_resumed,
    rotation_rewraps_data_keys_and_the_data_reads_under_the_new_key_alone,
);
