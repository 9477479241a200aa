//! Skin measurements, dermatologist assessments and consent from events' context through the
//! real server: readings sent to `POST /v1/batch` reach `GET /v1/customers/{id}` (latest and
//! trend) only under `health_data`; the `dermatologist` role records assessments and reads skin
//! profiles of consenting customers only; consent context grants and withdraws, in event-time
//! order; bad input is a problem+json, never a 500.

use dermis_auth::Role;
use dermis_core::clock::rfc3339;
use reqwest::Method;
use serde_json::{Value, json};

use crate::events_test::write_key;
use crate::helpers::{TestApp, assert_problem, json_of, token_for};

crate::both_backends!(
    measurements_sent_as_events_reach_the_profile_only_under_consent,
    dermatologists_assess_and_read_consenting_customers_only,
    consent_in_event_context_grants_and_withdraws_in_event_time_order
);

const DAY: i64 = 24 * 60 * 60 * 1000;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

async fn batch(app: &TestApp, key: &str, messages: Vec<Value>) -> Value {
    let body = json!({"writeKey": key, "batch": messages});
    json_of(app.client.post(app.url("/v1/batch")).json(&body).send().await.unwrap(), 200).await
}

async fn create(app: &TestApp, user: &str, health: bool) -> String {
    let mut body = json!({"name": "Skin Tester", "user_id": user});
    if health {
        body["consents"] = json!([{"purpose": "health_data", "granted": true, "text_version": "v1", "channel": "app"}]);
    }
    json_of(app.post_json("/v1/customers", Role::Admin, &body).await, 201).await["id"].as_str().unwrap().to_owned()
}

async fn set_consent(app: &TestApp, user: &str, purpose: &str, granted: bool) {
    let body = json!({"granted": granted, "text_version": "v1", "channel": "app"});
    let res = app
        .request(Method::PUT, &format!("/v1/customers/{user}/consents/{purpose}"), Some(Role::Admin))
        .json(&body)
        .send()
        .await
        .unwrap();
    json_of(res, 200).await;
}

fn measurement(id: &str, user: &str, at: i64, hydration: f64) -> Value {
    json!({"type": "track", "event": "Skin Measurement Recorded", "messageId": id, "userId": user,
           "timestamp": rfc3339(at), "properties": {"device_id": "scope-7", "device_model": "SkinScope S2",
               "hydration": {"value": hydration, "unit": "%"}, "uv_exposure": {"value": 6, "unit": "uv_index"}}})
}

async fn measurements_sent_as_events_reach_the_profile_only_under_consent(app: TestApp) {
    let key = write_key(&app).await;
    create(&app, "shop-zoe", false).await;
    let now = now_ms();
    let r = batch(&app, &key, vec![measurement("z0", "shop-zoe", now - 30 * DAY, 20.0)]).await;
    assert_eq!(r["accepted"], 1);
    let zoe = json_of(app.get("/v1/customers/shop-zoe", Role::Admin).await, 200).await;
    assert!(zoe["skin_profile"].get("measurements").is_none(), "not stored without health_data: {zoe}");

    set_consent(&app, "shop-zoe", "health_data", true).await;
    let r = batch(
        &app,
        &key,
        vec![
            measurement("z1", "shop-zoe", now - 20 * DAY, 40.0),
            measurement("z2", "shop-zoe", now - 10 * DAY, 43.0),
            measurement("z3", "shop-zoe", now - 60_000, 46.0),
        ],
    )
    .await;
    assert_eq!(r["accepted"], 3);
    let zoe = json_of(app.get("/v1/customers/shop-zoe", Role::Admin).await, 200).await;
    let h = &zoe["skin_profile"]["measurements"]["hydration"];
    assert_eq!(h["latest"]["value"], 46.0, "{zoe}");
    assert_eq!(h["latest"]["unit"], "%");
    assert_eq!(h["source"], "device");
    assert_eq!(h["device_model"], "SkinScope S2");
    assert_eq!(h["trend"]["points"], 3);
    let slope = h["trend"]["per_30_days"].as_f64().unwrap();
    assert!((slope - 9.0).abs() < 0.05, "+3 % per 10 days is about +9 per 30 days: {slope}");
    assert_eq!(zoe["skin_profile"]["measurements"]["uv_exposure"]["trend"]["per_30_days"], 0.0);
    // The store associate without a consultation sees none of it.
    let seen = json_of(app.get("/v1/customers/shop-zoe", Role::StoreAssociate).await, 200).await;
    assert!(seen["skin_profile"].get("measurements").is_none());
    assert!(seen["redacted"].as_array().unwrap().iter().any(|f| f == "skin_profile.measurements"), "{seen}");

    // Implausible readings and unknown units are rejected per message, with the reason.
    let mut bad = measurement("z4", "shop-zoe", now, 140.0);
    bad["properties"]["uv_exposure"]["unit"] = json!("bananas");
    let r = batch(&app, &key, vec![bad, measurement("z5", "shop-zoe", now, 47.0)]).await;
    assert_eq!((r["accepted"].as_u64(), r["success"].as_bool()), (Some(1), Some(false)), "{r}");
    let rejected = &r["rejected"][0];
    assert!(rejected["reason"].as_str().unwrap().contains("skin_measurement_recorded@1"), "{rejected}");
    let errors = rejected["errors"].to_string();
    assert!(errors.contains("/hydration/value") && errors.contains("/uv_exposure/unit"), "{errors}");
}

async fn dermatologists_assess_and_read_consenting_customers_only(app: TestApp) {
    let consenting = create(&app, "shop-cleo", true).await;
    let other = create(&app, "shop-otto", false).await;
    let derm = token_for(Role::Dermatologist, "dr-martin", None);
    let post = |id: &str, body: Value| {
        app.client.post(app.url(&format!("/v1/customers/{id}/assessments"))).bearer_auth(&derm).json(&body).send()
    };
    let body = json!({"clinic_id": "clinic-lyon-2", "conditions": ["rosacea", "acne"],
        "contraindicated_ingredients": ["retinol", "fragrance", "zorblax"], "notes": "no strong actives"});
    let done = json_of(post("shop-cleo", body.clone()).await.unwrap(), 201).await;
    assert_eq!(done["customer_id"], consenting.as_str());
    let p = &done["skin_profile"];
    assert_eq!(p["conditions"]["source"], "dermatologist");
    assert_eq!(p["conditions"]["value"], json!(["rosacea", "acne"]));
    assert_eq!(p["contraindicated_ingredients"]["source"], "dermatologist");
    assert_eq!(p["contraindicated_ingredients"]["value"][1]["match"], "family");
    assert_eq!(done["unknown_ingredients"], json!(["zorblax"]), "the unknown name kept and reported");
    assert_eq!(p["assessment"]["value"]["dermatologist_id"], "dr-martin", "the token's subject");

    // The dermatologist reads the skin profile; nothing else of the customer.
    let read = app.client.get(app.url("/v1/customers/shop-cleo/skin-profile")).bearer_auth(&derm).send().await.unwrap();
    let read = json_of(read, 200).await;
    assert_eq!(read["skin_profile"]["conditions"]["source"], "dermatologist");
    assert!(read.get("name").is_none() && read.get("email").is_none());
    for path in ["/v1/customers/shop-cleo", "/v1/customers/shop-cleo/consents", "/v1/customers/shop-cleo/export"] {
        let res = app.client.get(app.url(path)).bearer_auth(&derm).send().await.unwrap();
        assert_problem(res, 403).await;
    }
    let res = app.client.get(app.url("/v1/customers?user_id=shop-cleo")).bearer_auth(&derm).send().await.unwrap();
    assert_problem(res, 403).await;
    let res = app
        .client
        .put(app.url("/v1/customers/shop-cleo/skin-profile"))
        .bearer_auth(&derm)
        .json(&json!({"skin_type": "dry"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 403).await;

    // Without the customer's health_data consent: 409 naming it (nothing stored), no read.
    let p = assert_problem(post("shop-otto", body.clone()).await.unwrap(), 409).await;
    assert!(p["detail"].as_str().unwrap().contains("health_data"), "{p}");
    let otto = json_of(app.get(&format!("/v1/customers/{other}"), Role::Admin).await, 200).await;
    assert!(otto["skin_profile"].get("conditions").is_none());
    let res = app.client.get(app.url("/v1/customers/shop-otto/skin-profile")).bearer_auth(&derm).send().await.unwrap();
    assert_problem(res, 403).await;
    // Other roles may not record assessments.
    for role in [Role::StoreAssociate, Role::Customer, Role::Analyst, Role::Merchandiser] {
        assert_problem(app.post_json("/v1/customers/shop-cleo/assessments", role, &body).await, 403).await;
    }

    // Bad input: clear problems, never a 500.
    for (bad, status) in [
        (json!({"clinic_id": "c", "conditions": ["lycanthropy"]}), 422),
        (json!({"conditions": ["acne"]}), 422),
        (json!({"clinic_id": "c"}), 422),
        (json!({"clinic_id": "c", "conditions": "acne"}), 422),
        (json!({"clinic_id": "c", "conditions": ["acne"], "surprise": 1}), 422),
        (json!({"clinic_id": "c", "contraindicated_ingredients": [""]}), 422),
        (json!([]), 400),
    ] {
        let p = assert_problem(post("shop-cleo", bad.clone()).await.unwrap(), status).await;
        assert!(p["type"].is_string(), "{bad}: {p}");
    }
    assert_problem(post("nobody-at-all", body.clone()).await.unwrap(), 404).await;

    // The same assessment as an event, for a customer known by user id.
    let key = write_key(&app).await;
    let ev = json!({"type": "track", "event": "Dermatologist Assessment Recorded", "messageId": "da-1",
        "userId": "shop-cleo", "properties": {"clinic_id": "clinic-9", "dermatologist_id": "dr-roux",
        "conditions": ["eczema"], "source_system": "ehr-x"}});
    let r = batch(&app, &key, vec![ev]).await;
    assert_eq!(r["accepted"], 1, "{r}");
    let cleo = json_of(app.get("/v1/customers/shop-cleo", Role::Admin).await, 200).await;
    assert_eq!(cleo["skin_profile"]["conditions"]["value"], json!(["eczema"]));
    assert_eq!(cleo["skin_profile"]["assessment"]["value"]["dermatologist_id"], "dr-roux");
    let bad = json!({"type": "track", "event": "Dermatologist Assessment Recorded", "messageId": "da-2",
        "userId": "shop-cleo", "properties": {"conditions": ["werewolf"]}});
    let r = batch(&app, &key, vec![bad]).await;
    assert_eq!(
        r["rejected"][0]["reason"].as_str().unwrap(),
        "properties do not match the schema dermatologist_assessment_recorded@1"
    );
}

fn with_consent(id: &str, user: &str, at: i64, context: Value) -> Value {
    json!({"type": "track", "event": "Page Section Viewed", "messageId": id, "userId": user, "timestamp": rfc3339(at),
           "context": context})
}

async fn consent_in_event_context_grants_and_withdraws_in_event_time_order(app: TestApp) {
    let key = write_key(&app).await;
    create(&app, "shop-lou", false).await;
    let now = now_ms();
    let segment = json!({"consent": {"categoryPreferences": {"Analytics": true, "Health Data": true,
        "Advertising": true}, "textVersion": "cmp-7"}});
    batch(&app, &key, vec![with_consent("c1", "shop-lou", now - 10 * 60_000, segment)]).await;
    let consents = json_of(app.get("/v1/customers/shop-lou/consents", Role::Admin).await, 200).await;
    let state = |c: &Value, p: &str| {
        c["current"].as_array().unwrap().iter().find(|s| s["purpose"] == p).unwrap()["granted"].clone()
    };
    assert_eq!(state(&consents, "health_data"), true, "{consents}");
    assert_eq!(state(&consents, "analytics"), true);
    assert_eq!(state(&consents, "marketing_email"), false, "Advertising is not email consent");
    let entry = &consents["history"][0];
    assert_eq!((entry["channel"].as_str(), entry["text_version"].as_str()), (Some("event"), Some("cmp-7")));

    // Health facts, then a RudderStack event denying health_data: the facts are deleted.
    let derm = token_for(Role::Dermatologist, "dr-a", None);
    let res = app
        .client
        .post(app.url("/v1/customers/shop-lou/assessments"))
        .bearer_auth(&derm)
        .json(&json!({"clinic_id": "c", "conditions": ["acne"]}))
        .send()
        .await
        .unwrap();
    json_of(res, 201).await;
    let rudder = json!({"consentManagement": {"provider": "ketch", "deniedConsentIds": ["health_data"],
        "allowedConsentIds": []}});
    batch(&app, &key, vec![with_consent("c2", "shop-lou", now - 60_000, rudder)]).await;
    let lou = json_of(app.get("/v1/customers/shop-lou", Role::Admin).await, 200).await;
    assert!(lou["skin_profile"].get("conditions").is_none(), "withdrawal deletes health facts: {lou}");

    // An older event granting it again arrives late: the newer denial stands.
    let late = json!({"consent": {"categoryPreferences": {"Health Data": true}}});
    batch(&app, &key, vec![with_consent("c0", "shop-lou", now - 5 * 60_000, late.clone())]).await;
    let consents = json_of(app.get("/v1/customers/shop-lou/consents", Role::Admin).await, 200).await;
    assert_eq!(state(&consents, "health_data"), false, "{consents}");
    // A newer one wins.
    batch(&app, &key, vec![with_consent("c3", "shop-lou", now, late)]).await;
    let consents = json_of(app.get("/v1/customers/shop-lou/consents", Role::Admin).await, 200).await;
    assert_eq!(state(&consents, "health_data"), true);
    // Events of someone unknown change nobody's ledger and are accepted.
    let r = batch(
        &app,
        &key,
        vec![with_consent("c4", "shop-nobody", now, json!({"consent": {"categoryPreferences": {"Analytics": false}}}))],
    )
    .await;
    assert_eq!(r["accepted"], 1);
}
