//! `/v1/customers...` through HTTP on both backends: statuses, problem+json, and who may read
//! what.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use dermis_auth::jwt::{JwtConfig, JwtVerifier, issue};
use dermis_auth::{ApiKeys, Authenticator, Role};
use dermis_customers::routes::{CustomersState, router};
use dermis_store::Db;
use secrecy::SecretString;
use serde_json::{Value, json};
use tower::ServiceExt;

const SECRET: &str = "a-test-secret-of-at-least-thirty-two-bytes-0123456789";

struct Api {
    router: Router,
}

struct Answer {
    status: StatusCode,
    content_type: String,
    etag: Option<String>,
    body: Value,
}

fn token(role: Role, sub: &str) -> String {
    let store = (role == Role::StoreAssociate).then_some("store-1");
    issue(&SecretString::from(SECRET.to_owned()), role, sub, store, Duration::from_secs(600)).unwrap()
}

impl Api {
    async fn new(db: &Db) -> Self {
        let jwt = JwtVerifier::new(JwtConfig {
            hs256_secret: Some(SecretString::from(SECRET.to_owned())),
            ..Default::default()
        })
        .await
        .unwrap();
        let auth = Arc::new(Authenticator::new(jwt, ApiKeys::new(db.clone())));
        let state = CustomersState::new(customers(db).await, auth, audit(db));
        let (router, _doc) = router().with_state(state).split_for_parts();
        Self { router }
    }

    async fn call(&self, method: &str, uri: &str, as_: &str, body: Option<Value>, headers: &[(&str, &str)]) -> Answer {
        let mut req = Request::builder().method(method).uri(uri).header(header::AUTHORIZATION, format!("Bearer {as_}"));
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
        let etag = res.headers().get(header::ETAG).map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        Answer { status, content_type, etag, body }
    }
}

fn admin_token() -> String {
    token(Role::Admin, "adm-1")
}

fn ada() -> Value {
    json!({"name": "Ada Lovelace", "email": "Ada@Example.com", "phone": "+44 20 7946 0958", "user_id": "shop-ada",
           "consents": [{"purpose": "health_data", "granted": true, "text_version": "v1", "channel": "web"}],
           "skin_profile": {"skin_type": "dry", "allergies": ["limonene", "zorblax"]}})
}

fn is_problem(a: &Answer, status: u16) {
    assert_eq!(a.status.as_u16(), status, "{}", a.body);
    assert_eq!(a.content_type, "application/problem+json", "{}", a.body);
    assert_eq!(a.body["status"], status);
}

async fn creates_reads_and_finds_a_customer(db: Db) {
    let api = Api::new(&db).await;
    let t = admin_token();
    let made = api.call("POST", "/v1/customers", &t, Some(ada()), &[("idempotency-key", "k1")]).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let id = made.body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("cus_"));
    assert_eq!(made.etag.as_deref(), Some("\"1\""));
    assert_eq!(made.body["phone"], "+442079460958");
    assert_eq!(made.body["unknown_allergens"], json!(["zorblax"]));
    assert_eq!(made.body["skin_profile"]["skin_type"]["value"], "dry");
    assert_eq!(made.body["skin_profile"]["skin_type"]["source"], "self_declared");
    assert_eq!(made.body["skin_profile"]["allergies"]["value"][0]["match"], "ingredient");
    let again = api.call("POST", "/v1/customers", &t, Some(ada()), &[("idempotency-key", "k1")]).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body["id"], id.as_str());

    for path in [format!("/v1/customers/{id}"), "/v1/customers/shop-ada".to_owned()] {
        let got = api.call("GET", &path, &t, None, &[]).await;
        assert_eq!(got.status, StatusCode::OK, "{path}");
        assert_eq!(got.body["id"], id.as_str());
        assert_eq!(got.body["email"], "Ada@Example.com");
    }
    let found = api.call("GET", "/v1/customers?email=%20ADA@EXAMPLE.COM", &t, None, &[]).await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    assert_eq!(found.body["items"][0]["id"], id.as_str(), "lookups by email ignore case");
    let none = api.call("GET", "/v1/customers?email=nobody@example.com", &t, None, &[]).await;
    assert_eq!(none.body["items"], json!([]));
    is_problem(&api.call("GET", "/v1/customers", &t, None, &[]).await, 422);
    is_problem(&api.call("GET", "/v1/customers/cus_nobody", &t, None, &[]).await, 404);
    let dup = api.call("POST", "/v1/customers", &t, Some(json!({"email": "ada@example.COM"})), &[]).await;
    is_problem(&dup, 409);
    assert!(dup.body["detail"].as_str().unwrap().contains("email"));
    assert!(!dup.body["detail"].as_str().unwrap().contains("ada@"), "the detail does not repeat the address");
}

async fn bad_input_is_a_clear_422(db: Db) {
    let api = Api::new(&db).await;
    let t = admin_token();
    let bad = api.call("POST", "/v1/customers", &t, Some(json!({"phone": "06 12 34 56 78"})), &[]).await;
    is_problem(&bad, 422);
    assert_eq!(bad.body["errors"][0]["field"], "phone");
    assert!(bad.body["errors"][0]["message"].as_str().unwrap().contains("E.164"));
    let made = api.call("POST", "/v1/customers", &t, Some(json!({"name": "Grace"})), &[]).await;
    let id = made.body["id"].as_str().unwrap().to_owned();
    let skin = api
        .call("PUT", &format!("/v1/customers/{id}/skin-profile"), &t, Some(json!({"skin_type": "shiny"})), &[])
        .await;
    is_problem(&skin, 422);
    assert_eq!(skin.body["errors"][0]["field"], "skin_type");
    assert!(skin.body["errors"][0]["message"].as_str().unwrap().contains("dry, oily, combination, normal, sensitive"));
    let purpose = api
        .call(
            "PUT",
            &format!("/v1/customers/{id}/consents/newsletter"),
            &t,
            Some(json!({"granted": true, "text_version": "v1"})),
            &[],
        )
        .await;
    is_problem(&purpose, 422);
    assert_eq!(purpose.body["errors"][0]["field"], "purpose");
    assert!(purpose.body["errors"][0]["message"].as_str().unwrap().contains("health_data"));
    let unknown_field = api.call("POST", "/v1/customers", &t, Some(json!({"nickname": "G"})), &[]).await;
    assert!(unknown_field.status.is_client_error());
    assert_eq!(unknown_field.content_type, "application/problem+json");
    let dob = api.call("POST", "/v1/customers", &t, Some(json!({"date_of_birth": "2091-01-01"})), &[]).await;
    is_problem(&dob, 422);
}

async fn health_facts_need_the_consent_and_its_withdrawal_deletes_them(db: Db) {
    let api = Api::new(&db).await;
    let t = admin_token();
    let made =
        api.call("POST", "/v1/customers", &t, Some(json!({"name": "Grace", "user_id": "shop-grace"})), &[]).await;
    let id = made.body["id"].as_str().unwrap().to_owned();
    let skin = format!("/v1/customers/{id}/skin-profile");
    let refused = api.call("PUT", &skin, &t, Some(json!({"skin_type": "oily", "allergies": ["fragrance"]})), &[]).await;
    is_problem(&refused, 409);
    assert!(refused.body["detail"].as_str().unwrap().contains("health_data"), "{}", refused.body);
    let got = api.call("GET", &format!("/v1/customers/{id}"), &t, None, &[]).await;
    assert_eq!(got.body["skin_profile"], json!({}), "nothing stored, not even the skin type");
    assert_eq!(got.etag.as_deref(), Some("\"1\""));

    let grant = api
        .call(
            "PUT",
            "/v1/customers/shop-grace/consents/health_data",
            &t,
            Some(json!({"granted": true, "text_version": "2026-01", "channel": "app"})),
            &[],
        )
        .await;
    assert_eq!(grant.status, StatusCode::OK, "{}", grant.body);
    let ok = api
        .call(
            "PUT",
            &skin,
            &t,
            Some(json!({"allergies": ["fragrance"], "source": "advisor"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["skin_profile"]["allergies"]["value"][0]["match"], "family");
    assert_eq!(ok.body["skin_profile"]["allergies"]["source"], "advisor");
    let stale = api.call("PUT", &skin, &t, Some(json!({"pregnant": true})), &[("if-match", "\"1\"")]).await;
    is_problem(&stale, 412);

    let withdraw = api
        .call(
            "PUT",
            &format!("/v1/customers/{id}/consents/health_data"),
            &t,
            Some(json!({"granted": false, "text_version": "2026-01"})),
            &[],
        )
        .await;
    assert_eq!(withdraw.status, StatusCode::OK);
    let after = api.call("GET", &format!("/v1/customers/{id}"), &t, None, &[]).await;
    assert!(after.body["skin_profile"].get("allergies").is_none(), "{}", after.body);
    let consents = api.call("GET", "/v1/customers/shop-grace/consents", &t, None, &[]).await;
    assert_eq!(consents.status, StatusCode::OK);
    let history = consents.body["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["channel"], "app");
    assert_eq!(history[0]["actor"], "adm-1");
    assert_eq!(history[0]["actor_role"], "admin");
    assert_eq!(history[1]["granted"], false);
    let health = consents.body["current"].as_array().unwrap().iter().find(|c| c["purpose"] == "health_data").unwrap();
    assert_eq!(health["granted"], false);
    assert_eq!(health["text_version"], "2026-01");
}

async fn each_role_sees_what_it_may(db: Db) {
    let api = Api::new(&db).await;
    let made = api.call("POST", "/v1/customers", &admin_token(), Some(ada()), &[]).await;
    let id = made.body["id"].as_str().unwrap().to_owned();
    let other = api.call("POST", "/v1/customers", &admin_token(), Some(json!({"name": "Grace"})), &[]).await;
    let other_id = other.body["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/customers/{id}");

    // Merchandisers and analysts never see direct identifiers.
    for role in [Role::Merchandiser, Role::Analyst] {
        is_problem(&api.call("GET", &path, &token(role, "m-1"), None, &[]).await, 403);
        is_problem(&api.call("GET", "/v1/customers?email=ada@example.com", &token(role, "m-1"), None, &[]).await, 403);
    }
    // A store associate reads the profile without the health facts.
    let assoc = api.call("GET", &path, &token(Role::StoreAssociate, "sa-1"), None, &[]).await;
    assert_eq!(assoc.status, StatusCode::OK);
    assert_eq!(assoc.body["name"], "Ada Lovelace");
    assert_eq!(assoc.body["skin_profile"]["skin_type"]["value"], "dry");
    assert!(assoc.body["skin_profile"].get("allergies").is_none(), "{}", assoc.body);
    assert_eq!(assoc.body["unknown_allergens"], json!([]));
    assert_eq!(assoc.body["redacted"], json!(["skin_profile.allergies", "unknown_allergens"]));
    // Within an open consultation at their store, an associate reads the health facts; an
    // associate of another store still does not, and closing it ends it.
    let sa = token(Role::StoreAssociate, "sa-1");
    let opened = api.call("POST", &format!("{path}/consultations"), &sa, Some(json!({"minutes": 15})), &[]).await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.body);
    assert_eq!(opened.body["store_id"], "store-1");
    let inside = api.call("GET", &path, &sa, None, &[]).await;
    assert_eq!(inside.body["skin_profile"]["allergies"]["value"][0]["id"], "limonene", "{}", inside.body);
    assert!(inside.body.get("redacted").is_none());
    let elsewhere_store = issue(
        &SecretString::from(SECRET.to_owned()),
        Role::StoreAssociate,
        "sa-2",
        Some("store-2"),
        Duration::from_secs(600),
    )
    .unwrap();
    let outside = api.call("GET", &path, &elsewhere_store, None, &[]).await;
    assert!(outside.body["skin_profile"].get("allergies").is_none());
    let wrong_store = json!({"store_id": "store-9"});
    is_problem(&api.call("POST", &format!("{path}/consultations"), &sa, Some(wrong_store), &[]).await, 403);
    is_problem(&api.call("POST", &format!("{path}/consultations"), &sa, Some(json!({"minutes": 600})), &[]).await, 422);
    is_problem(
        &api.call("POST", &format!("{path}/consultations"), &token(Role::Customer, "shop-ada"), Some(json!({})), &[])
            .await,
        403,
    );
    is_problem(&api.call("POST", &format!("{path}/consultations"), &admin_token(), Some(json!({})), &[]).await, 422);
    let cid = opened.body["id"].as_str().unwrap();
    let closed = api.call("DELETE", &format!("{path}/consultations/{cid}"), &sa, None, &[]).await;
    assert_eq!(closed.status, StatusCode::NO_CONTENT);
    is_problem(&api.call("DELETE", &format!("{path}/consultations/{cid}"), &sa, None, &[]).await, 404);
    let after = api.call("GET", &path, &sa, None, &[]).await;
    assert!(after.body["skin_profile"].get("allergies").is_none(), "closed: withheld again");

    // A customer reaches their own customer, by id or by user id, and no other.
    let own = token(Role::Customer, "shop-ada");
    for p in [path.clone(), "/v1/customers/shop-ada".into(), format!("{path}/consents")] {
        assert_eq!(api.call("GET", &p, &own, None, &[]).await.status, StatusCode::OK, "{p}");
    }
    assert_eq!(api.call("GET", &path, &token(Role::Customer, &id), None, &[]).await.status, StatusCode::OK);
    is_problem(&api.call("GET", &format!("/v1/customers/{other_id}"), &own, None, &[]).await, 403);
    is_problem(&api.call("GET", "/v1/customers/cus_unknown", &own, None, &[]).await, 403);
    let consent = json!({"granted": true, "text_version": "v1"});
    let elsewhere = api
        .call("PUT", &format!("/v1/customers/{other_id}/consents/marketing_email"), &own, Some(consent.clone()), &[])
        .await;
    is_problem(&elsewhere, 403);
    let mine = api.call("PUT", "/v1/customers/shop-ada/consents/marketing_email", &own, Some(consent), &[]).await;
    assert_eq!(mine.status, StatusCode::OK);
    assert_eq!(mine.body["history"][1]["actor"], id.as_str(), "the ledger names the customer, not the token");
    assert_eq!(mine.body["history"][1]["actor_role"], "customer");
    is_problem(&api.call("GET", "/v1/customers?email=ada@example.com", &own, None, &[]).await, 403);
    // A customer signs up only as their own user id.
    let newcomer = token(Role::Customer, "shop-new");
    is_problem(&api.call("POST", "/v1/customers", &newcomer, Some(json!({"user_id": "shop-else"})), &[]).await, 403);
    let signup = api.call("POST", "/v1/customers", &newcomer, Some(json!({"name": "New"})), &[]).await;
    assert_eq!(signup.status, StatusCode::CREATED);
    assert_eq!(signup.body["user_id"], "shop-new");
    is_problem(&api.call("PATCH", "/v1/customers/shop-new", &newcomer, Some(json!({"user_id": "x"})), &[]).await, 403);
    let renamed = api.call("PATCH", "/v1/customers/shop-new", &newcomer, Some(json!({"name": "Newer"})), &[]).await;
    assert_eq!(renamed.status, StatusCode::OK);
    assert_eq!(renamed.body["name"], "Newer");
    // No token at all.
    let anon = api.call("GET", &path, "", None, &[]).await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
}

async fn a_customer_exports_and_erases_their_data(db: Db) {
    let api = Api::new(&db).await;
    let made = api.call("POST", "/v1/customers", &admin_token(), Some(ada()), &[]).await;
    let id = made.body["id"].as_str().unwrap().to_owned();
    let own = token(Role::Customer, "shop-ada");
    let export = api.call("GET", "/v1/customers/shop-ada/export", &own, None, &[]).await;
    assert_eq!(export.status, StatusCode::OK, "{}", export.body);
    assert_eq!(export.body["customer"]["email"], "Ada@Example.com");
    assert_eq!(export.body["customer"]["skin_profile"]["allergies"]["source"], "self_declared");
    assert_eq!(export.body["consents"]["history"][0]["purpose"], "health_data");
    is_problem(
        &api.call("GET", &format!("/v1/customers/{id}/export"), &token(Role::Analyst, "an-1"), None, &[]).await,
        403,
    );
    is_problem(
        &api.call("GET", &format!("/v1/customers/{id}/export"), &token(Role::StoreAssociate, "sa-1"), None, &[]).await,
        403,
    );
    is_problem(
        &api.call("DELETE", &format!("/v1/customers/{id}"), &token(Role::Customer, "shop-other"), None, &[]).await,
        403,
    );

    let req = Request::builder()
        .method("DELETE")
        .uri("/v1/customers/shop-ada")
        .header(header::AUTHORIZATION, format!("Bearer {own}"))
        .body(Body::empty())
        .unwrap();
    let res = api.router.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let location = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    assert!(location.starts_with("/v1/customer-erasures/era_"), "{location}");
    // Gone everywhere at once.
    for p in [format!("/v1/customers/{id}"), "/v1/customers/shop-ada".into(), format!("/v1/customers/{id}/consents")] {
        is_problem(&api.call("GET", &p, &admin_token(), None, &[]).await, 404);
    }
    let found = api.call("GET", "/v1/customers?email=ada@example.com", &admin_token(), None, &[]).await;
    assert_eq!(found.body["items"], json!([]));
    is_problem(&api.call("DELETE", &format!("/v1/customers/{id}"), &admin_token(), None, &[]).await, 404);
    // The customer follows their erasure; nobody else of their kind can.
    let mut status = Value::Null;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        status = api.call("GET", &location, &own, None, &[]).await.body;
        if status["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status["status"], "completed", "{status}");
    is_problem(&api.call("GET", &location, &token(Role::Customer, "shop-other"), None, &[]).await, 403);
    assert_eq!(api.call("GET", &location, &admin_token(), None, &[]).await.status, StatusCode::OK);
    is_problem(&api.call("GET", "/v1/customer-erasures/era_nope", &admin_token(), None, &[]).await, 404);
}

/// Every leaf of a JSON value, by path.
fn leaves(v: &Value, path: Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Object(m) => m.iter().for_each(|(k, x)| leaves(x, [path.clone(), vec![k.clone()]].concat(), out)),
        Value::Array(a) => {
            a.iter().enumerate().for_each(|(i, x)| leaves(x, [path.clone(), vec![i.to_string()]].concat(), out))
        }
        _ => out.push(path),
    }
}

fn replaced(v: &Value, path: &[String], with: &Value) -> Value {
    let mut v = v.clone();
    let mut at = &mut v;
    for p in path {
        at = match at {
            Value::Object(m) => m.get_mut(p).unwrap(),
            Value::Array(a) => &mut a[p.parse::<usize>().unwrap()],
            _ => unreachable!(),
        };
    }
    *at = with.clone();
    v
}

/// Hostile values in every field of every write route: a 4xx problem or a success, never a 5xx.
async fn hostile_bodies_never_get_a_500(db: Db) {
    let api = Api::new(&db).await;
    let t = admin_token();
    let made = api.call("POST", "/v1/customers", &t, Some(json!({"name": "Target", "user_id": "shop-t"})), &[]).await;
    let id = made.body["id"].as_str().unwrap().to_owned();
    let routes: Vec<(&str, String, Value)> = vec![
        ("POST", "/v1/customers".into(), ada()),
        (
            "PATCH",
            format!("/v1/customers/{id}"),
            json!({"name": "N", "email": "t@example.com", "phone": "+33612345678",
            "date_of_birth": "1990-01-01", "address": {"line1": "1 Rue", "city": "Paris", "country": "FR"},
            "loyalty": {"number": "L-1", "tier": "gold", "points": 3}, "external_ids": {"pos": "R-1"}, "user_id": "shop-t"}),
        ),
        (
            "PUT",
            format!("/v1/customers/{id}/skin-profile"),
            json!({"source": "quiz", "skin_type": "dry", "skin_tone": "fair",
            "concerns": ["acne"], "lifestyle": {"sun_exposure": "low", "climate": "humid"}}),
        ),
        (
            "PUT",
            format!("/v1/customers/{id}/consents/marketing_sms"),
            json!({"granted": true, "text_version": "v1", "channel": "web"}),
        ),
        ("POST", format!("/v1/customers/{id}/consultations"), json!({"minutes": 30, "store_id": "s-1"})),
    ];
    let nasty = [
        json!(null),
        json!(-1),
        json!(1e308),
        json!(9_223_372_036_854_775_807i64),
        json!(true),
        json!(""),
        json!("x".repeat(20_000)),
        json!("a\u{0}b"),
        json!("\u{202e}\u{0}\u{7f}"),
        json!([]),
        json!({}),
        json!([[[[[[[[["deep"]]]]]]]]]),
        json!("'; DROP TABLE customers; --"),
    ];
    let mut seen = 0;
    for (method, path, valid) in &routes {
        let mut paths = Vec::new();
        leaves(valid, Vec::new(), &mut paths);
        for p in &paths {
            for n in &nasty {
                let body = replaced(valid, p, n);
                let a = api.call(method, path, &t, Some(body.clone()), &[]).await;
                assert!(a.status.as_u16() < 500, "{method} {path} {body}: {} {}", a.status, a.body);
                if a.status.is_client_error() {
                    assert_eq!(a.content_type, "application/problem+json", "{method} {path} {body}");
                }
                seen += 1;
            }
        }
        for raw in ["", "{", "[]", "null", "\"x\"", "{\"name\": \"a\", \"name\": \"b\"}"] {
            let req = Request::builder()
                .method(*method)
                .uri(path)
                .header(header::AUTHORIZATION, format!("Bearer {t}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(raw))
                .unwrap();
            let res = api.router.clone().oneshot(req).await.unwrap();
            assert!(res.status().is_client_error(), "{method} {path} {raw:?}: {}", res.status());
        }
    }
    assert!(seen > 300, "{seen}");
    // What was stored before is still readable.
    assert_eq!(api.call("GET", &format!("/v1/customers/{id}"), &t, None, &[]).await.status, StatusCode::OK);
}

async fn merges_are_made_undone_and_shown_by_admins_only(db: Db) {
    let api = Api::new(&db).await;
    let admin = admin_token();
    let a = api.call("POST", "/v1/customers", &admin, Some(json!({"email": "a@example.org"})), &[]).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let a = a.body["id"].as_str().unwrap().to_owned();
    let b = api
        .call(
            "POST",
            "/v1/customers",
            &admin,
            Some(json!({"name": "Bea", "email": "b@example.org", "user_id": "shop-b"})),
            &[],
        )
        .await;
    let b = b.body["id"].as_str().unwrap().to_owned();

    let itself = api.call("POST", &format!("/v1/customers/{a}/merges"), &admin, Some(json!({"other": a})), &[]).await;
    is_problem(&itself, 409);
    let bad = api.call("POST", &format!("/v1/customers/{a}/merges"), &admin, Some(json!({"other": 3})), &[]).await;
    assert!(bad.status.is_client_error(), "{}", bad.body);
    assert_eq!(bad.content_type, "application/problem+json");
    let nobody = api
        .call("POST", &format!("/v1/customers/{a}/merges"), &admin, Some(json!({"other": "shop-nobody"})), &[])
        .await;
    is_problem(&nobody, 404);
    let associate = token(Role::StoreAssociate, "sa-1");
    let denied =
        api.call("POST", &format!("/v1/customers/{a}/merges"), &associate, Some(json!({"other": b})), &[]).await;
    is_problem(&denied, 403);

    let merged =
        api.call("POST", &format!("/v1/customers/{a}/merges"), &admin, Some(json!({"other": "shop-b"})), &[]).await;
    assert_eq!(merged.status, StatusCode::CREATED, "{}", merged.body);
    assert_eq!(merged.body["winner"], a.as_str());
    assert_eq!(merged.body["loser"], b.as_str());
    let merge_id = merged.body["id"].as_str().unwrap().to_owned();
    assert_eq!(api.call("GET", "/v1/customers/shop-b", &admin, None, &[]).await.body["id"], a.as_str());
    let ids = api.call("GET", &format!("/v1/customers/{a}/identifiers"), &admin, None, &[]).await;
    assert_eq!(ids.status, StatusCode::OK, "{}", ids.body);
    let kinds: Vec<&str> =
        ids.body["identifiers"].as_array().unwrap().iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "email").count(), 2, "{kinds:?}");
    assert!(kinds.contains(&"user_id"));
    assert!(!ids.body.to_string().contains("b@example.org"), "hashes, never values");
    is_problem(&api.call("GET", &format!("/v1/customers/{a}/identifiers"), &associate, None, &[]).await, 403);

    let undone = api.call("DELETE", &format!("/v1/customer-merges/{merge_id}"), &admin, None, &[]).await;
    assert_eq!(undone.status, StatusCode::OK, "{}", undone.body);
    assert!(undone.body["unmerged_at"].is_string());
    let bea = api.call("GET", "/v1/customers/shop-b", &admin, None, &[]).await;
    assert_eq!(bea.body["id"], b.as_str());
    assert_eq!(bea.body["email"], "b@example.org");
    is_problem(&api.call("DELETE", &format!("/v1/customer-merges/{merge_id}"), &admin, None, &[]).await, 404);
    is_problem(&api.call("DELETE", "/v1/customer-merges/mrg_nothing", &admin, None, &[]).await, 404);
}

/// Analysts see customers who granted `analytics` under pseudonymous ids, never a direct
/// identifier nor a health fact; other roles that may not are refused.
async fn analysts_see_pseudonymous_profiles_only(db: Db) {
    let api = Api::new(&db).await;
    let admin = admin_token();
    let granted = |p: &str| json!({"purpose": p, "granted": true, "text_version": "v1", "channel": "web"});
    let body = |name: &str, email: &str, user: &str, analytics: bool| {
        let mut consents = vec![granted("health_data")];
        if analytics {
            consents.push(granted("analytics"));
        }
        json!({"name": name, "email": email, "phone": "+33612345678".replace('2', if analytics { "3" } else { "4" }),
            "date_of_birth": "1990-06-15", "user_id": user, "loyalty": {"number": format!("L-{user}"), "tier": "gold"},
            "external_ids": {"pos": format!("R-{user}")}, "consents": consents,
            "skin_profile": {"skin_type": "dry", "concerns": ["dryness"], "allergies": ["linalool"]}})
    };
    let ana = api
        .call("POST", "/v1/customers", &admin, Some(body("Ana Analytica", "ana@example.org", "shop-ana", true)), &[])
        .await;
    assert_eq!(ana.status, StatusCode::CREATED, "{}", ana.body);
    let ben = api
        .call("POST", "/v1/customers", &admin, Some(body("Ben Private", "ben@example.org", "shop-ben", false)), &[])
        .await;
    assert_eq!(ben.status, StatusCode::CREATED, "{}", ben.body);
    let analyst = token(Role::Analyst, "an-1");
    let page = api.call("GET", "/v1/analytics/customers?limit=10", &analyst, None, &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let items = page.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "only the customer who granted analytics: {}", page.body);
    let item = &items[0];
    assert!(item["analytics_id"].as_str().unwrap().starts_with("anl_"));
    assert_eq!((item["skin_type"].as_str(), item["loyalty_tier"].as_str()), (Some("dry"), Some("gold")));
    assert_eq!(item["channels"], json!(["pos"]));
    // Searched without the pseudonym itself: 32 hex digits can hold "1990" by chance.
    let mut searched = page.body.clone();
    searched["items"][0]["analytics_id"] = Value::Null;
    let text = searched.to_string();
    let id = ana.body["id"].as_str().unwrap();
    for direct in [id, "Ana", "ana@example.org", "shop-ana", "1990", "L-shop-ana", "R-shop-ana", "linalool", "+336"] {
        assert!(!text.contains(direct), "{direct} reached an analyst: {text}");
    }
    // Another purpose: other ids; the same purpose: the same ids.
    let other = api.call("GET", "/v1/analytics/customers?purpose=churn_model", &analyst, None, &[]).await;
    assert_ne!(other.body["items"][0]["analytics_id"], item["analytics_id"]);
    let again = api.call("GET", "/v1/analytics/customers", &analyst, None, &[]).await;
    assert_eq!(again.body["items"][0]["analytics_id"], item["analytics_id"]);
    // Bad input and roles.
    is_problem(&api.call("GET", "/v1/analytics/customers?purpose=Not%20Valid", &analyst, None, &[]).await, 422);
    is_problem(&api.call("GET", "/v1/analytics/customers?cursor=cus_123", &analyst, None, &[]).await, 422);
    is_problem(&api.call("GET", "/v1/analytics/customers", &token(Role::StoreAssociate, "sa"), None, &[]).await, 403);
    is_problem(&api.call("GET", "/v1/analytics/customers", &token(Role::Merchandiser, "m"), None, &[]).await, 403);
    // Analysts still reach no customer directly.
    is_problem(&api.call("GET", &format!("/v1/customers/{id}"), &analyst, None, &[]).await, 403);
}

dermis_store::backend_tests!(MIGRATIONS;
    analysts_see_pseudonymous_profiles_only,
    merges_are_made_undone_and_shown_by_admins_only,
    hostile_bodies_never_get_a_500,
    a_customer_exports_and_erases_their_data,
    creates_reads_and_finds_a_customer,
    bad_input_is_a_clear_422,
    health_facts_need_the_consent_and_its_withdrawal_deletes_them,
    each_role_sees_what_it_may,
);

#[test]
fn the_openapi_document_names_every_route() {
    let (_, doc) = router().split_for_parts();
    let json = doc.to_pretty_json().unwrap();
    for path in [
        "/v1/customers",
        "/v1/customers/{id}",
        "/v1/customers/{id}/skin-profile",
        "/v1/customers/{id}/consents",
        "/v1/customers/{id}/consents/{purpose}",
        "/v1/customers/{id}/consultations",
        "/v1/customers/{id}/consultations/{consultation_id}",
        "/v1/customers/{id}/export",
        "/v1/customer-erasures/{id}",
    ] {
        assert!(doc.paths.paths.contains_key(path), "{path}");
    }
    let v: Value = serde_json::from_str(&json).unwrap();
    // Every schema referenced is defined.
    let refs: Vec<&str> = json.match_indices("#/components/schemas/").map(|(i, _)| &json[i + 21..]).collect();
    for r in refs {
        let name = &r[..r.find('"').unwrap()];
        assert!(v["components"]["schemas"].get(name).is_some(), "{name} is referenced but not defined");
    }
    let put = &v["paths"]["/v1/customers/{id}/skin-profile"]["put"];
    for status in ["200", "403", "404", "409", "412", "422"] {
        assert!(put["responses"].get(status).is_some(), "{status}");
    }
}
