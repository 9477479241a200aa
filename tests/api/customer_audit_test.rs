//! The audit log through the real server: customers' reads and writes and admin actions recorded
//! (actor, role, purpose, request id, customer id, field names; no values) and the chain
//! verifying; asynchronous exports made by the background job, readable only by their customer,
//! gone after an erasure; `dermis customers rotate-master-key`.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use dermis_audit::Audit;
use dermis_auth::Role;
use dermis_customers::Customers;
use dermis_customers::crypto::{Keyring, LocalMasterKey};
use dermis_store::Db;
use dermis_store::db::PoolSize;
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{SECRET, TestApp, assert_problem, token_for};

crate::both_backends!(
    reads_writes_and_admin_actions_are_audited_and_the_chain_verifies,
    an_export_is_made_in_the_background_for_its_customer_only_and_gone_after_erasure
);

async fn json_of(res: Response, status: u16) -> Value {
    let code = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(code, status, "{body}");
    body
}

fn admin_call(app: &TestApp, method: Method, path: &str) -> reqwest::RequestBuilder {
    app.request(method, path, Some(Role::Admin)).header("x-request-id", "req-audit-1")
}

/// (action, actor, role, subject, fields, purpose, request id) of every entry, oldest first.
async fn log(app: &TestApp) -> Vec<(String, String, String, Option<String>, String, String, String)> {
    dermis_store::sqlx::query_as(
        "SELECT action, actor, role, subject, fields, purpose, request_id FROM audit_log ORDER BY seq",
    )
    .fetch_all(app.test_db.db().reader())
    .await
    .unwrap()
}

async fn reads_writes_and_admin_actions_are_audited_and_the_chain_verifies(app: TestApp) {
    let body = json!({"name": "Mae Jemison", "email": "mae@example.net", "user_id": "shop-mae",
        "consents": [{"purpose": "health_data", "granted": true, "text_version": "v1"}],
        "skin_profile": {"skin_type": "oily", "allergies": ["linalool"]}});
    let made = json_of(admin_call(&app, Method::POST, "/v1/customers").json(&body).send().await.unwrap(), 201).await;
    let id = made["id"].as_str().unwrap().to_owned();
    json_of(admin_call(&app, Method::GET, "/v1/customers/shop-mae").send().await.unwrap(), 200).await;
    let put = admin_call(&app, Method::PUT, &format!("/v1/customers/{id}/skin-profile"))
        .json(&json!({"skin_tone": "deep"}))
        .send()
        .await
        .unwrap();
    json_of(put, 200).await;
    json_of(admin_call(&app, Method::GET, &format!("/v1/customers/{id}/export")).send().await.unwrap(), 200).await;
    // A store associate without a consultation: health fields withheld, and not recorded as read.
    let associate = app
        .client
        .get(app.url(&format!("/v1/customers/{id}")))
        .bearer_auth(token_for(Role::StoreAssociate, "sa-9", Some("store-1")))
        .header("x-purpose", "in_store_advice")
        .send()
        .await
        .unwrap();
    let seen = json_of(associate, 200).await;
    assert!(seen["skin_profile"].get("allergies").is_none());

    // Admin actions of other domains.
    let key = admin_call(&app, Method::POST, "/v1/api-keys").json(&json!({"name": "pos", "role": "service"}));
    json_of(key.send().await.unwrap(), 201).await;
    json_of(admin_call(&app, Method::GET, "/v1/write-keys").send().await.unwrap(), 200).await;
    json_of(admin_call(&app, Method::GET, "/v1/events?user_id=shop-mae").send().await.unwrap(), 200).await;
    let before = log(&app).await.len();
    assert_problem(
        app.post_json("/v1/api-keys", Role::Merchandiser, &json!({"name": "x", "role": "service"})).await,
        403,
    )
    .await;
    assert_eq!(log(&app).await.len(), before, "a refused caller did nothing to record");

    let entries = log(&app).await;
    let of = |action: &str| entries.iter().filter(|e| e.0 == action).collect::<Vec<_>>();
    let create = of("customer.create");
    assert_eq!(create.len(), 1);
    let (_, actor, role, subject, fields, purpose, request_id) = create[0];
    assert_eq!((actor.as_str(), role.as_str(), purpose.as_str()), ("tester", "admin", "support"));
    assert_eq!(subject.as_deref(), Some(id.as_str()));
    assert_eq!(request_id, "req-audit-1", "the request's id");
    assert!(fields.contains("\"email\"") && fields.contains("\"skin_profile.allergies\""), "{fields}");
    let writes = of("skin_profile.write");
    assert_eq!(writes[0].4, r#"["skin_profile.skin_tone"]"#);
    assert!(of("customer.export")[0].4.contains("\"consents\""));
    let by_associate: Vec<_> = entries.iter().filter(|e| e.1 == "sa-9").collect();
    assert_eq!(by_associate.len(), 1);
    assert_eq!((by_associate[0].2.as_str(), by_associate[0].5.as_str()), ("store_associate", "in_store_advice"));
    assert!(by_associate[0].4.contains("\"skin_profile.skin_type\""));
    assert!(!by_associate[0].4.contains("allergies"), "withheld fields are not listed: {}", by_associate[0].4);
    let api_key = of("api_key.create");
    assert_eq!(api_key.len(), 1);
    assert_eq!((api_key[0].1.as_str(), api_key[0].2.as_str(), api_key[0].3.as_deref()), ("tester", "admin", None));
    assert_eq!(api_key[0].5, "administration");
    assert_eq!(of("write_key.list").len(), 1);
    assert_eq!(of("events.read")[0].3.as_deref(), Some(id.as_str()), "the customer id, never the user id");
    for e in &entries {
        let text = format!("{e:?}");
        for value in ["Mae", "Jemison", "example.net", "linalool", "shop-mae", "oily", "deep"] {
            assert!(!text.contains(value), "an entry holds {value:?}: {text}");
        }
    }

    // The customer's part of the log, for admins only.
    let trail = json_of(app.get(&format!("/v1/customers/{id}/audit"), Role::Admin).await, 200).await;
    let actions: Vec<&str> = trail["items"].as_array().unwrap().iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(actions.first(), Some(&"customer.create"));
    assert!(actions.contains(&"events.read") && actions.ends_with(&["audit.read"]), "{actions:?}");
    assert_problem(app.get(&format!("/v1/customers/{id}/audit"), Role::Service).await, 403).await;

    let audit = Audit::new(app.test_db.db().clone(), dermis_core::clock::system());
    let n = log(&app).await.len() as u64;
    assert_eq!(audit.verify().await.unwrap(), Ok(n), "the chain verifies");
}

async fn an_export_is_made_in_the_background_for_its_customer_only_and_gone_after_erasure(app: TestApp) {
    let as_ = |sub: &str, method: Method, path: &str| {
        app.client.request(method, app.url(path)).bearer_auth(token_for(Role::Customer, sub, None))
    };
    let mine = json!({"email": "kat@example.net", "name": "Katherine"});
    json_of(as_("shop-kat", Method::POST, "/v1/customers").json(&mine).send().await.unwrap(), 201).await;
    let other = json!({"email": "dot@example.net"});
    json_of(as_("shop-dot", Method::POST, "/v1/customers").json(&other).send().await.unwrap(), 201).await;

    let asked = as_("shop-kat", Method::POST, "/v1/customers/shop-kat/exports").send().await.unwrap();
    assert_eq!(asked.status(), 202);
    let location = asked.headers()["location"].to_str().unwrap().to_owned();
    let status = json_of(asked, 202).await;
    assert!(["pending", "completed"].contains(&status["status"].as_str().unwrap()), "{status}");

    let started = Instant::now();
    let done = loop {
        let s = json_of(as_("shop-kat", Method::GET, &location).send().await.unwrap(), 200).await;
        if s["status"] == "completed" {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "never completed: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["document"]["customer"]["email"], "kat@example.net");
    assert!(done["document"]["domains"]["events"].is_array(), "{done}");
    let sync = json_of(as_("shop-kat", Method::GET, "/v1/customers/shop-kat/export").send().await.unwrap(), 200).await;
    assert_eq!(done["document"]["customer"], sync["customer"]);

    let res = as_("shop-dot", Method::GET, &location).send().await.unwrap();
    let body = assert_problem(res, 403).await;
    assert!(!body.to_string().contains("kat@"));

    let erased = as_("shop-kat", Method::DELETE, "/v1/customers/shop-kat").send().await.unwrap();
    assert_eq!(erased.status(), 202);
    assert_problem(app.get(&location, Role::Admin).await, 404).await;
    assert_problem(as_("shop-kat", Method::GET, &location).send().await.unwrap(), 404).await;
}

fn dermis(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dermis"));
    cmd.args(args)
        .arg("--data-dir")
        .arg(dir)
        .current_dir(dir)
        .env("DERMIS_AUTH__JWT_SECRET", SECRET)
        .env("DERMIS_LOG__FILTER", "warn")
        .env_remove("DERMIS_CONFIG")
        .env_remove("DERMIS_DATABASE_URL")
        .env_remove("DERMIS_BUS_URL")
        .env_remove("DERMIS_REDIS_URL")
        .env_remove("DERMIS_CUSTOMERS__MASTER_KEY")
        .env_remove("DERMIS_CUSTOMERS__PREVIOUS_MASTER_KEYS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run dermis")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const KEY_A: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="; // 32 bytes of 0x01
const KEY_B: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="; // 32 bytes of 0x02

async fn customers_under(dir: &std::path::Path, key: &str) -> (Db, anyhow::Result<Customers>) {
    let db = Db::open_data_dir(dir, PoolSize::default()).await.unwrap();
    let ring = Keyring::new(std::sync::Arc::new(LocalMasterKey::from_base64(key).unwrap()));
    let c = Customers::open(db.clone(), ring, dermis_core::clock::system()).await.map_err(anyhow::Error::from);
    (db, c)
}

#[tokio::test]
async fn rotate_master_key_rewraps_every_data_key_and_the_old_key_can_then_go() {
    let dir = tempfile::tempdir().unwrap();
    let migrate = dermis(dir.path(), &["migrate"], &[("DERMIS_CUSTOMERS__MASTER_KEY", KEY_A)]);
    assert!(migrate.status.success(), "{}", text(&migrate.stderr));
    let (db, customers) = customers_under(dir.path(), KEY_A).await;
    let customers = customers.unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        let new: dermis_customers::input::CreateCustomer =
            serde_json::from_value(json!({"email": format!("c{i}@example.net"), "user_id": format!("shop-{i}")}))
                .unwrap();
        let actor = dermis_customers::service::Actor { id: "adm".into(), role: "admin".into() };
        ids.push(customers.create(None, new.parse(customers.now_ms()).unwrap(), &actor).await.unwrap().value.id);
    }
    db.close().await;

    let rotate = ["customers", "rotate-master-key"];
    // The new key alone cannot open the keys the old one wrapped: refused, nothing changed.
    let refused = dermis(dir.path(), &rotate, &[("DERMIS_CUSTOMERS__MASTER_KEY", KEY_B)]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stdout));
    assert!(text(&refused.stderr).contains("previous_master_keys"), "{}", text(&refused.stderr));

    let with_old = [("DERMIS_CUSTOMERS__MASTER_KEY", KEY_B), ("DERMIS_CUSTOMERS__PREVIOUS_MASTER_KEYS", KEY_A)];
    let first = dermis(dir.path(), &rotate, &with_old);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(
        text(&first.stdout).contains("re-wrapped 4 data keys"),
        "3 customers and the lookup secret: {}",
        text(&first.stdout)
    );
    let again = dermis(dir.path(), &rotate, &with_old);
    assert!(text(&again.stdout).contains("re-wrapped 0 data keys"), "{}", text(&again.stdout));
    let without_old = dermis(dir.path(), &rotate, &[("DERMIS_CUSTOMERS__MASTER_KEY", KEY_B)]);
    assert!(without_old.status.success() && text(&without_old.stdout).contains("re-wrapped 0"));

    // Under B alone everything reads; under A nothing opens any more.
    let (db, under_b) = customers_under(dir.path(), KEY_B).await;
    let under_b = under_b.unwrap();
    for (i, id) in ids.iter().enumerate() {
        let c = under_b.get(&format!("shop-{i}")).await.unwrap();
        assert_eq!((&c.id, c.contact.email.as_deref()), (id, Some(format!("c{i}@example.net").as_str())));
    }
    let rotations: i64 =
        dermis_store::sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'master_key.rotate'")
            .fetch_one(db.reader())
            .await
            .unwrap();
    assert_eq!(rotations, 3, "each run that opened the keys is recorded");
    db.close().await;
    let (db, under_a) = customers_under(dir.path(), KEY_A).await;
    assert!(under_a.is_err());
    db.close().await;
}
