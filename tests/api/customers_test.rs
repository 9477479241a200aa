//! Customers through the real server: sign-up, reads by id, user id and email, the
//! `health_data` consent guarding health facts, export, erasure, who may do what, and the
//! SQLite files holding no personal or health data in clear.

use std::time::{Duration, Instant};

use dermis_auth::Role;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, json_of, spawn_app, token_for};

crate::both_backends!(
    a_customer_is_created_read_by_id_and_user_id_and_found_by_email,
    health_facts_follow_the_health_data_consent_through_export_and_erasure,
    each_role_reaches_only_what_it_may
);

/// A request as the customer whose token's subject is `sub`.
fn as_customer(app: &TestApp, method: Method, path: &str, sub: &str) -> RequestBuilder {
    app.client.request(method, app.url(path)).bearer_auth(token_for(Role::Customer, sub, None))
}

async fn put_json(app: &TestApp, path: &str, role: Role, body: &Value) -> Response {
    app.request(Method::PUT, path, Some(role)).json(body).send().await.unwrap()
}

/// Creates a customer as an admin; returns it.
async fn create(app: &TestApp, body: Value) -> Value {
    json_of(app.post_json("/v1/customers", Role::Admin, &body).await, 201).await
}

fn consent(granted: bool) -> Value {
    json!({"granted": granted, "text_version": "health-v3", "channel": "app"})
}

fn allergy_names(c: &Value) -> Vec<String> {
    c["skin_profile"]["allergies"]["value"]
        .as_array()
        .map(|a| a.iter().map(|x| x["name"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

async fn a_customer_is_created_read_by_id_and_user_id_and_found_by_email(app: TestApp) {
    let body = json!({"name": "Ada Lovelace", "email": "Ada.Lovelace@Example.com", "phone": "+44 20 7946 0958",
        "user_id": "shop-ada"});
    let res = app
        .request(Method::POST, "/v1/customers", Some(Role::Admin))
        .header("idempotency-key", "signup-ada")
        .json(&body)
        .send()
        .await
        .unwrap();
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    let ada = json_of(res, 201).await;
    let id = ada["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("cus_"), "{ada}");
    assert_eq!(location, format!("/v1/customers/{id}"));
    assert_eq!(etag, format!("\"{}\"", ada["version"]));
    assert_eq!(ada["email"], "Ada.Lovelace@Example.com", "the email is kept as given");
    assert_eq!(ada["phone"], "+442079460958", "the phone is stored in E.164");
    assert_eq!(ada["user_id"], "shop-ada");
    assert_eq!(ada["unknown_allergens"], json!([]));

    // A retry with the same key answers the same customer, and creates no second one.
    let res = app
        .request(Method::POST, "/v1/customers", Some(Role::Admin))
        .header("idempotency-key", "signup-ada")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    assert_eq!(json_of(res, 201).await["id"], id.as_str());

    let by_id = json_of(app.get(&format!("/v1/customers/{id}"), Role::Admin).await, 200).await;
    assert_eq!(by_id, ada);
    let by_user = json_of(app.get("/v1/customers/shop-ada", Role::Admin).await, 200).await;
    assert_eq!(by_user["id"], id.as_str());
    assert_eq!(by_user["email"], "Ada.Lovelace@Example.com");

    // Lookups ignore the email's case; nobody is an empty list, not a 404.
    let found = json_of(app.get("/v1/customers?email=ada.lovelace%40EXAMPLE.com", Role::Admin).await, 200).await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["items"][0]["id"], id.as_str());
    let found = json_of(app.get("/v1/customers?phone=%2B44%2020%207946%200958", Role::StoreAssociate).await, 200).await;
    assert_eq!(found["items"][0]["id"], id.as_str(), "{found}");
    let none = json_of(app.get("/v1/customers?email=grace%40example.com", Role::Admin).await, 200).await;
    assert_eq!(none["items"], json!([]));
    let two = assert_problem(app.get("/v1/customers?email=a%40b.co&user_id=shop-ada", Role::Admin).await, 422).await;
    assert!(two["errors"][0]["message"].as_str().unwrap().contains("exactly one"), "{two}");

    // Identifiers are unique: another sign-up with her email (any case) is a conflict.
    let taken = app.post_json("/v1/customers", Role::Admin, &json!({"email": "ADA.LOVELACE@example.com"})).await;
    let taken = assert_problem(taken, 409).await;
    assert!(taken["detail"].as_str().unwrap().contains("email"), "{taken}");
    let bad = app.post_json("/v1/customers", Role::Admin, &json!({"email": "ada@", "phone": "0612"})).await;
    let bad = assert_problem(bad, 422).await;
    let fields: Vec<&str> = bad["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["email", "phone"], "{bad}");
    assert_problem(app.get("/v1/customers/cus_nobody", Role::Admin).await, 404).await;
}

async fn health_facts_follow_the_health_data_consent_through_export_and_erasure(app: TestApp) {
    let grace =
        create(&app, json!({"name": "Grace Hopper", "email": "grace@example.com", "user_id": "shop-grace"})).await;
    let id = grace["id"].as_str().unwrap().to_owned();
    let skin = format!("/v1/customers/{id}/skin-profile");
    let profile = json!({"source": "quiz", "skin_type": "sensitive", "concerns": ["redness"],
        "conditions": ["eczema"], "allergies": ["Linalool", "Zorblax Root Extract"]});

    // Without the consent: 409 naming it, and nothing is stored.
    let refused = assert_problem(put_json(&app, &skin, Role::Admin, &profile).await, 409).await;
    assert!(refused["detail"].as_str().unwrap().contains("health_data"), "{refused}");
    assert_eq!(refused["errors"][0]["field"], "consents.health_data", "{refused}");
    let now = json_of(app.get(&format!("/v1/customers/{id}"), Role::Admin).await, 200).await;
    assert_eq!(now["skin_profile"], json!({}), "nothing of the refused write is stored: {now}");

    let consents = json_of(
        put_json(&app, &format!("/v1/customers/{id}/consents/health_data"), Role::Admin, &consent(true)).await,
        200,
    )
    .await;
    let health = consents["current"].as_array().unwrap().iter().find(|c| c["purpose"] == "health_data").unwrap();
    assert_eq!(health["granted"], true, "{consents}");
    assert_eq!(health["text_version"], "health-v3");

    let res = put_json(&app, &skin, Role::Admin, &profile).await;
    assert!(res.headers().contains_key("etag"));
    let c = json_of(res, 200).await;
    let allergies = c["skin_profile"]["allergies"]["value"].as_array().unwrap();
    assert_eq!(allergy_names(&c), ["Linalool", "Zorblax Root Extract"], "{c}");
    assert_eq!(allergies[0]["match"], "ingredient", "linalool is known to the knowledge base: {c}");
    assert_eq!(allergies[0]["id"], "linalool");
    assert_eq!(allergies[1]["match"], "unknown");
    assert_eq!(c["unknown_allergens"], json!(["Zorblax Root Extract"]), "an unknown allergen is reported back");
    assert_eq!(c["skin_profile"]["allergies"]["source"], "quiz");
    assert_eq!(c["skin_profile"]["conditions"]["value"], json!(["eczema"]));
    assert_eq!(c["skin_profile"]["skin_type"]["value"], "sensitive");

    // What she did in the shop: an event, and the online features it feeds.
    let key = crate::events_test::write_key(&app).await;
    let view = json!({"type": "track", "event": "Product Viewed", "userId": "shop-grace", "messageId": "grace-v1",
        "properties": {"product_id": "P-grace", "price": 12.5}});
    assert_eq!(crate::events_test::post_ingest(&app, &key, "/v1/track", &view).await.status(), 200);

    // The export (here by her user id) holds the profile with each fact's source, the consent
    // ledger, her events and her online features.
    let export = json_of(app.get("/v1/customers/shop-grace/export", Role::Admin).await, 200).await;
    let events = export["domains"]["events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["message"]["messageId"] == "grace-v1"), "{export}");
    let views = export["domains"]["features"]["shop-grace"]["recent_views"].as_array().unwrap();
    assert_eq!(views.len(), 1, "{export}");
    assert_eq!(export["customer"]["id"], id.as_str());
    assert_eq!(export["customer"]["email"], "grace@example.com");
    assert_eq!(allergy_names(&export["customer"]), ["Linalool", "Zorblax Root Extract"], "{export}");
    assert_eq!(export["customer"]["skin_profile"]["skin_type"]["source"], "quiz");
    let history = export["consents"]["history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "{export}");
    assert_eq!(history[0]["purpose"], "health_data");
    assert_eq!(history[0]["granted"], true);
    assert_eq!(history[0]["channel"], "app");
    assert!(export["exported_at"].is_string() && export["domains"].is_object(), "{export}");

    // Withdrawing the consent deletes the health facts; the rest of the profile stays.
    json_of(
        put_json(&app, &format!("/v1/customers/{id}/consents/health_data"), Role::Admin, &consent(false)).await,
        200,
    )
    .await;
    let c = json_of(app.get(&format!("/v1/customers/{id}"), Role::Admin).await, 200).await;
    for health in ["allergies", "conditions", "sensitivities", "pregnant", "breastfeeding"] {
        assert!(c["skin_profile"].get(health).is_none(), "{health} outlived the withdrawal: {c}");
    }
    assert_eq!(c["unknown_allergens"], json!([]));
    assert_eq!(c["skin_profile"]["skin_type"]["value"], "sensitive", "non-health facts stay: {c}");
    let export = json_of(app.get(&format!("/v1/customers/{id}/export"), Role::Admin).await, 200).await;
    assert!(export["customer"]["skin_profile"].get("allergies").is_none(), "{export}");
    let ledger: Vec<&Value> = export["consents"]["history"].as_array().unwrap().iter().map(|e| &e["granted"]).collect();
    assert_eq!(ledger, [&json!(true), &json!(false)], "the ledger keeps both decisions: {export}");

    // Erasure: accepted, the customer is gone at once (by id and by user id), the rest follows.
    let res = app.request(Method::DELETE, &format!("/v1/customers/{id}"), Some(Role::Admin)).send().await.unwrap();
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let erasure = json_of(res, 202).await;
    assert_eq!(location, format!("/v1/customer-erasures/{}", erasure["id"].as_str().unwrap()));
    assert_problem(app.get(&format!("/v1/customers/{id}"), Role::Admin).await, 404).await;
    assert_problem(app.get("/v1/customers/shop-grace", Role::Admin).await, 404).await;
    assert_problem(app.get(&format!("/v1/customers/{id}/export"), Role::Admin).await, 404).await;
    let found = json_of(app.get("/v1/customers?email=grace%40example.com", Role::Admin).await, 200).await;
    assert_eq!(found["items"], json!([]), "her email finds nobody");
    assert_problem(
        app.request(Method::DELETE, &format!("/v1/customers/{id}"), Some(Role::Admin)).send().await.unwrap(),
        404,
    )
    .await;
    // Her email and user id are free again at once.
    create(&app, json!({"email": "grace@example.com", "user_id": "shop-grace"})).await;
    let started = Instant::now();
    loop {
        let e = json_of(app.get(&location, Role::Admin).await, 200).await;
        if e["status"] == "completed" {
            assert!(e["completed_at"].is_string(), "{e}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the erasure never completed: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn each_role_reaches_only_what_it_may(app: TestApp) {
    let ada = create(
        &app,
        json!({"name": "Ada", "email": "ada@example.com", "user_id": "shop-ada",
            "consents": [{"purpose": "health_data", "granted": true, "text_version": "v1"}],
            "skin_profile": {"skin_type": "dry", "allergies": ["linalool"]}}),
    )
    .await;
    let ada_id = ada["id"].as_str().unwrap().to_owned();
    let bob = create(&app, json!({"name": "Bob", "user_id": "shop-bob"})).await;
    let bob_id = bob["id"].as_str().unwrap().to_owned();

    // Merchandisers and analysts reach no direct identifier.
    for role in [Role::Merchandiser, Role::Analyst] {
        assert_problem(app.post_json("/v1/customers", role, &json!({"name": "X"})).await, 403).await;
        assert_problem(app.get(&format!("/v1/customers/{ada_id}"), role).await, 403).await;
        assert_problem(app.get("/v1/customers?email=ada%40example.com", role).await, 403).await;
        assert_problem(app.get(&format!("/v1/customers/{ada_id}/export"), role).await, 403).await;
        let patch = app.patch_json(&format!("/v1/customers/{ada_id}"), role, &json!({"name": "Y"})).await;
        assert_problem(patch, 403).await;
        let del = app.request(Method::DELETE, &format!("/v1/customers/{ada_id}"), Some(role)).send().await.unwrap();
        assert_problem(del, 403).await;
    }

    // A customer token reaches its own customer (by customer id or user id), nobody else.
    let own = json_of(
        as_customer(&app, Method::GET, &format!("/v1/customers/{ada_id}"), "shop-ada").send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(own["email"], "ada@example.com");
    assert_eq!(allergy_names(&own), ["linalool"], "a customer reads their own health facts");
    json_of(as_customer(&app, Method::GET, "/v1/customers/shop-ada", "shop-ada").send().await.unwrap(), 200).await;
    json_of(
        as_customer(&app, Method::GET, &format!("/v1/customers/{ada_id}/export"), "shop-ada").send().await.unwrap(),
        200,
    )
    .await;
    let renamed = as_customer(&app, Method::PATCH, "/v1/customers/shop-ada", "shop-ada")
        .json(&json!({"name": "Ada L."}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(renamed, 200).await["name"], "Ada L.");
    for (method, path) in [
        (Method::GET, format!("/v1/customers/{bob_id}")),
        (Method::GET, "/v1/customers/shop-bob".to_owned()),
        (Method::GET, format!("/v1/customers/{bob_id}/export")),
        (Method::GET, format!("/v1/customers/{bob_id}/consents")),
        (Method::DELETE, format!("/v1/customers/{bob_id}")),
    ] {
        let res = as_customer(&app, method.clone(), &path, "shop-ada").send().await.unwrap();
        assert_problem(res, 403).await;
    }
    let patch =
        as_customer(&app, Method::PATCH, &format!("/v1/customers/{bob_id}"), "shop-ada").json(&json!({"name": "Z"}));
    assert_problem(patch.send().await.unwrap(), 403).await;
    let consent_other =
        as_customer(&app, Method::PUT, &format!("/v1/customers/{bob_id}/consents/marketing_email"), "shop-ada")
            .json(&consent(true));
    assert_problem(consent_other.send().await.unwrap(), 403).await;
    let lookup = as_customer(&app, Method::GET, "/v1/customers?email=ada%40example.com", "shop-ada");
    assert_problem(lookup.send().await.unwrap(), 403).await;
    let relink = as_customer(&app, Method::PATCH, "/v1/customers/shop-ada", "shop-ada").json(&json!({"user_id": "x"}));
    assert_problem(relink.send().await.unwrap(), 403).await;
    assert_eq!(
        json_of(app.get(&format!("/v1/customers/{bob_id}"), Role::Admin).await, 200).await["name"],
        "Bob",
        "Bob is unchanged"
    );

    // A customer signs up once, as the user id of their token.
    let other = as_customer(&app, Method::POST, "/v1/customers", "shop-cleo").json(&json!({"user_id": "shop-ada"}));
    assert_problem(other.send().await.unwrap(), 403).await;
    let cleo = as_customer(&app, Method::POST, "/v1/customers", "shop-cleo")
        .json(&json!({"name": "Cleo"}))
        .send()
        .await
        .unwrap();
    let cleo = json_of(cleo, 201).await;
    assert_eq!(cleo["user_id"], "shop-cleo", "the sign-up is linked to the token's subject");

    // A store associate reads health facts only within an open consultation at their store.
    let seen = json_of(app.get(&format!("/v1/customers/{ada_id}"), Role::StoreAssociate).await, 200).await;
    assert!(seen["skin_profile"].get("allergies").is_none(), "{seen}");
    assert!(seen["redacted"].as_array().unwrap().contains(&json!("skin_profile.allergies")), "{seen}");
    assert_eq!(seen["skin_profile"]["skin_type"]["value"], "dry");
    let elsewhere = app
        .post_json(
            &format!("/v1/customers/{ada_id}/consultations"),
            Role::StoreAssociate,
            &json!({"store_id": "store-2"}),
        )
        .await;
    assert_problem(elsewhere, 403).await;
    let open = app.post_json(&format!("/v1/customers/{ada_id}/consultations"), Role::StoreAssociate, &json!({})).await;
    let open = json_of(open, 201).await;
    assert_eq!(open["store_id"], "store-1");
    let seen = json_of(app.get(&format!("/v1/customers/{ada_id}"), Role::StoreAssociate).await, 200).await;
    assert_eq!(allergy_names(&seen), ["linalool"], "{seen}");
    let close = format!("/v1/customers/{ada_id}/consultations/{}", open["id"].as_str().unwrap());
    assert_eq!(app.request(Method::DELETE, &close, Some(Role::StoreAssociate)).send().await.unwrap().status(), 204);
    let seen = json_of(app.get(&format!("/v1/customers/{ada_id}"), Role::StoreAssociate).await, 200).await;
    assert!(seen["skin_profile"].get("allergies").is_none(), "closed: withheld again: {seen}");
    // Associates may not export or erase.
    assert_problem(app.get(&format!("/v1/customers/{ada_id}/export"), Role::StoreAssociate).await, 403).await;
}

/// After a customer is created and changed through the API, the SQLite file and its WAL hold
/// none of their personal or health data in clear.
#[tokio::test]
async fn the_sqlite_files_hold_no_plaintext_of_a_customer_made_through_the_api() {
    let app = spawn_app().await;
    let body = json!({
        "name": "Philippa Zanzibar-Oyelaran",
        "email": "philippa.zanzibar@example.net",
        "phone": "+33 7 81 92 03 47",
        "address": {"line1": "12 Quai Voltigeur", "city": "Bordeaux", "country": "FR"},
        "user_id": "shop-pzo",
        "consents": [{"purpose": "health_data", "granted": true, "text_version": "v1"}],
        "skin_profile": {"allergies": ["Linalool", "Quokkaberry Seed Oil"], "conditions": ["rosacea"]},
    });
    let res = app
        .request(Method::POST, "/v1/customers", Some(Role::Admin))
        .header("idempotency-key", "pzo-signup")
        .json(&body)
        .send()
        .await
        .unwrap();
    let made = json_of(res, 201).await;
    let id = made["id"].as_str().unwrap();
    assert_eq!(made["unknown_allergens"], json!(["Quokkaberry Seed Oil"]));
    let patch =
        app.patch_json(&format!("/v1/customers/{id}"), Role::Admin, &json!({"name": "Philippa Z. Oyelaran"})).await;
    json_of(patch, 200).await;
    let found = json_of(app.get("/v1/customers?email=Philippa.Zanzibar%40example.net", Role::Admin).await, 200).await;
    assert_eq!(found["items"][0]["id"], id);

    let dir = app.test_db.data_dir().unwrap();
    let mut scanned = Vec::new();
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_file() && (name.ends_with(".sqlite") || name.ends_with(".sqlite-wal")) {
            bytes.extend(std::fs::read(&path).unwrap());
            scanned.push(name);
        }
    }
    scanned.sort();
    assert!(scanned.iter().any(|n| n.ends_with(".sqlite")), "no database file in {}: {scanned:?}", dir.display());
    let holds = |needle: &str| bytes.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle.as_bytes()));
    assert!(holds(id), "the scan sees the stored rows (the id is in clear) in {scanned:?}");
    for secret in [
        "Philippa",
        "Zanzibar",
        "Oyelaran",
        "philippa.zanzibar@example.net",
        "+33781920347",
        "781920347",
        "Voltigeur",
        "shop-pzo",
        "Linalool",
        "Quokkaberry",
        "rosacea",
    ] {
        assert!(!holds(secret), "{secret:?} is in clear in {scanned:?}");
    }
}
