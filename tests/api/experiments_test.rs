//! Experiments through the real server: definitions and their checks, sticky assignment across a
//! login, exposures logged as `Experiment Viewed` events, outcomes attributed per visitor, results
//! with uplift, SRM and guardrails, CSV; bad input is a problem+json.

use dermis_auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::events_test::write_key;
use crate::helpers::{TestApp, assert_problem, json_of, token_for};

crate::both_backends!(
    an_experiment_assigns_logs_exposures_and_reports_uplift,
    a_skewed_split_is_flagged_and_a_guardrail_alerts,
    a_placement_experiment_changes_the_blend_and_logs_the_exposure,
    a_bandit_sends_new_visitors_to_the_variant_that_converts
);

fn experiment(key: &str, weights: [f64; 2]) -> Value {
    json!({"key": key, "name": "Home recommendations", "placement": "home",
        "variants": [{"key": "control", "weight": weights[0], "config": {"model": "hybrid"}},
                     {"key": "ease", "weight": weights[1], "config": {"model": "ease"}}]})
}

async fn post(app: &TestApp, path: &str, role: Role, body: &Value) -> reqwest::Response {
    app.post_json(path, role, body).await
}

async fn assign(app: &TestApp, key: &str, body: Value) -> Value {
    json_of(post(app, &format!("/v1/experiments/{key}/assignments"), Role::Service, &body).await, 200).await
}

async fn batch(app: &TestApp, write_key: &str, messages: Vec<Value>) {
    for chunk in messages.chunks(200) {
        let body = json!({"writeKey": write_key, "batch": chunk});
        json_of(app.client.post(app.url("/v1/batch")).json(&body).send().await.unwrap(), 200).await;
    }
}

fn metric<'a>(results: &'a Value, name: &str) -> &'a Value {
    results["metrics"].as_array().unwrap().iter().find(|m| m["metric"] == name).unwrap()
}

async fn an_experiment_assigns_logs_exposures_and_reports_uplift(app: TestApp) {
    // Bad definitions: a split that does not sum to 1, a namespace overlap, a taken key.
    let bad =
        assert_problem(post(&app, "/v1/experiments", Role::Admin, &experiment("home", [0.5, 0.6])).await, 422).await;
    assert!(bad["detail"].as_str().unwrap().contains("sum to 1.1"), "{bad}");
    let mut spaced = experiment("home", [0.5, 0.5]);
    spaced["namespace"] = json!({"id": "home-page", "start": 0.0, "end": 0.6});
    json_of(post(&app, "/v1/experiments", Role::Merchandiser, &spaced).await, 201).await;
    assert_problem(post(&app, "/v1/experiments", Role::Admin, &spaced).await, 409).await;
    let mut neighbour = experiment("home-2", [0.5, 0.5]);
    neighbour["namespace"] = json!({"id": "home-page", "start": 0.5, "end": 1.0});
    assert_problem(post(&app, "/v1/experiments", Role::Admin, &neighbour).await, 409).await;
    neighbour["namespace"] = json!({"id": "home-page", "start": 0.6, "end": 1.0});
    json_of(post(&app, "/v1/experiments", Role::Admin, &neighbour).await, 201).await;
    assert_problem(post(&app, "/v1/experiments", Role::Analyst, &experiment("x", [0.5, 0.5])).await, 403).await;

    json_of(post(&app, "/v1/experiments", Role::Admin, &experiment("recs", [0.5, 0.5])).await, 201).await;
    let early = assign(&app, "recs", json!({"anonymous_id": "a-0"})).await;
    assert_eq!(early["in_experiment"], false, "a draft assigns no one: {early}");
    json_of(post(&app, "/v1/experiments/recs/start", Role::Admin, &json!({})).await, 200).await;

    // 400 visitors: the split is near 50/50, each keeps their variant, exposures are logged.
    let mut variant_of = std::collections::BTreeMap::new();
    for i in 0..400 {
        let a = assign(&app, "recs", json!({"anonymous_id": format!("anon-{i}")})).await;
        assert_eq!(a["in_experiment"], true, "{a}");
        variant_of.insert(i, a["variant"].as_str().unwrap().to_owned());
    }
    let treated = variant_of.values().filter(|v| *v == "ease").count();
    assert!((160..=240).contains(&treated), "{treated} of 400 in the variant");
    let again = assign(&app, "recs", json!({"anonymous_id": "anon-7"})).await;
    assert_eq!(
        (again["variant"].as_str().unwrap(), again["hash_used"].as_bool()),
        (variant_of[&7].as_str(), Some(false))
    );
    // Logging in keeps the variant: the user id joins the anonymous id's unit.
    let login = assign(&app, "recs", json!({"user_id": "shop-7", "anonymous_id": "anon-7"})).await;
    assert_eq!(login["variant"].as_str().unwrap(), variant_of[&7]);
    let later = assign(&app, "recs", json!({"user_id": "shop-7"})).await;
    assert_eq!(later["variant"].as_str().unwrap(), variant_of[&7], "sticky after login");
    // Bad assignment requests.
    assert_problem(post(&app, "/v1/experiments/recs/assignments", Role::Service, &json!({})).await, 422).await;
    assert_problem(post(&app, "/v1/experiments/nope/assignments", Role::Service, &json!({"user_id": "u"})).await, 404)
        .await;
    let customer = token_for(Role::Customer, "cus_me", None);
    let res = app
        .client
        .post(app.url("/v1/experiments/recs/assignments"))
        .bearer_auth(customer)
        .json(&json!({"user_id": "someone-else"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 403).await;
    // Nor by naming another's user id as an anonymous id.
    let customer = token_for(Role::Customer, "cus_me", None);
    let res = app
        .client
        .post(app.url("/v1/experiments/recs/assignments"))
        .bearer_auth(customer)
        .json(&json!({"anonymous_id": "shop-7"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 403).await;

    // Outcomes: every variant visitor with an even number orders; control visitors one in four.
    let key = write_key(&app).await;
    let orders: Vec<Value> = variant_of
        .iter()
        .filter(|(i, v)| if *v == "ease" { *i % 2 == 0 } else { *i % 4 == 0 })
        .map(|(i, _)| {
            json!({"type": "track", "event": "Order Completed", "anonymousId": format!("anon-{i}"),
                "messageId": format!("order-{i}"), "properties": {"order_id": format!("o-{i}"), "revenue": 40.0,
                    "products": [{"product_id": "P1", "price": 40.0, "quantity": 1}]}})
        })
        .collect();
    batch(&app, &key, orders.clone()).await;
    batch(&app, &key, orders).await; // a retried batch counts nothing twice
    let results = json_of(app.get("/v1/experiments/recs/results", Role::Analyst).await, 200).await;
    let units = &results["units"];
    assert_eq!(units["control"].as_u64().unwrap() + units["ease"].as_u64().unwrap(), 400, "{results}");
    assert_eq!(units["ease"].as_u64().unwrap() as usize, treated);
    let conversion = metric(&results, "conversion");
    let control_rate = conversion["variants"][0]["mean"].as_f64().unwrap();
    let ease = &conversion["variants"][1];
    assert!((0.2..0.3).contains(&control_rate), "{conversion}");
    assert!((0.45..0.55).contains(&ease["mean"].as_f64().unwrap()), "{conversion}");
    assert!(ease["uplift"]["ci_low"].as_f64().unwrap() > 0.0, "a doubled rate is detected: {ease}");
    assert!(ease["bayesian"]["chance_to_win"].as_f64().unwrap() > 0.99, "{ease}");
    let rpv = metric(&results, "revenue_per_visitor");
    assert!(rpv["variants"][1]["mean"].as_f64().unwrap() > 18.0, "{rpv}");
    assert_eq!(results["srm"]["mismatch"], false, "{results}");
    assert!(results["alerts"].as_array().unwrap().is_empty(), "{results}");
    let csv = app.get("/v1/experiments/recs/results.csv", Role::Analyst).await;
    assert_eq!(csv.status(), 200);
    let text = csv.text().await.unwrap();
    assert!(text.starts_with("metric,variant,units,mean") && text.lines().count() == 1 + 6 * 2, "{text}");

    // Stopped: no one is assigned any more; stopping again answers the same; no restart.
    json_of(post(&app, "/v1/experiments/recs/stop", Role::Admin, &json!({})).await, 200).await;
    json_of(post(&app, "/v1/experiments/recs/stop", Role::Admin, &json!({})).await, 200).await;
    assert_problem(post(&app, "/v1/experiments/recs/start", Role::Admin, &json!({})).await, 409).await;
    assert_eq!(assign(&app, "recs", json!({"anonymous_id": "anon-new"})).await["in_experiment"], false);
    let listed = json_of(app.get("/v1/experiments", Role::Analyst).await, 200).await;
    assert_eq!(listed.as_array().unwrap().len(), 3);
    let res = app.request(Method::GET, "/v1/experiments/nope", Some(Role::Analyst)).send().await.unwrap();
    assert_problem(res, 404).await;
}

async fn a_skewed_split_is_flagged_and_a_guardrail_alerts(app: TestApp) {
    json_of(post(&app, "/v1/experiments", Role::Admin, &experiment("skew", [0.5, 0.5])).await, 201).await;
    json_of(post(&app, "/v1/experiments/skew/start", Role::Admin, &json!({})).await, 200).await;
    // Exposures logged by an SDK, not by Dermis: 600 control, 400 variant on a 50/50 split (a
    // broken redirect, say); the variant's visitors report reactions far more often.
    let key = write_key(&app).await;
    let mut events = Vec::new();
    for i in 0..1000 {
        let variant = if i < 600 { "control" } else { "ease" };
        events.push(json!({"type": "track", "event": "Experiment Viewed", "anonymousId": format!("v-{i}"),
            "messageId": format!("exp-{i}"), "properties": {"experiment_id": "skew", "variation_id": variant}}));
        let reacts = if variant == "ease" { i % 4 == 0 } else { i % 50 == 0 };
        if reacts {
            events.push(json!({"type": "track", "event": "Reaction Reported", "anonymousId": format!("v-{i}"),
                "messageId": format!("reaction-{i}"), "properties": {"product_id": "P1", "severity": "mild"}}));
        }
    }
    batch(&app, &key, events).await;
    let results = json_of(app.get("/v1/experiments/skew/results", Role::Admin).await, 200).await;
    assert_eq!(results["units"], json!({"control": 600, "ease": 400}), "{results}");
    assert_eq!(results["srm"]["mismatch"], true, "{results}");
    let reactions = metric(&results, "adverse_reaction_rate");
    assert_eq!(reactions["guardrail"], true);
    assert_eq!(reactions["alert"], true, "{reactions}");
    let alerts = results["alerts"].as_array().unwrap();
    assert!(alerts.iter().any(|a| a.as_str().unwrap().contains("sample ratio mismatch")), "{alerts:?}");
    assert!(alerts.iter().any(|a| a.as_str().unwrap().contains("adverse_reaction_rate")), "{alerts:?}");
}

async fn a_placement_experiment_changes_the_blend_and_logs_the_exposure(app: TestApp) {
    app.load_demo().await;
    let consents = json!([{"purpose": "personalization", "granted": true, "text_version": "v1", "channel": "app"}]);
    let body = json!({"name": "Exp Tester", "user_id": "shop-exp", "consents": consents});
    json_of(post(&app, "/v1/customers", Role::Admin, &body).await, 201).await;
    let mut definition = experiment("home-blend", [0.0, 1.0]);
    definition["variants"][1]["config"] = json!({"blend": {"content": 3.0, "collaborative": 0.0}});
    json_of(post(&app, "/v1/experiments", Role::Admin, &definition).await, 201).await;
    json_of(post(&app, "/v1/experiments/home-blend/start", Role::Admin, &json!({})).await, 200).await;
    // Served from memory: the node reads running experiments every few seconds.
    let started = std::time::Instant::now();
    let tagged = loop {
        let recs =
            json_of(app.get("/v1/customers/shop-exp/recommendations?k=5&placement=home", Role::Service).await, 200)
                .await;
        if !recs["experiment"].is_null() {
            break recs;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(15), "the experiment never applied: {recs}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(tagged["experiment"], json!({"key": "home-blend", "variant": "ease"}), "all traffic on the variant");
    assert_eq!(tagged["items"].as_array().unwrap().len(), 5);
    let elsewhere =
        json_of(app.get("/v1/customers/shop-exp/recommendations?k=5&placement=pdp", Role::Service).await, 200).await;
    assert!(elsewhere["experiment"].is_null(), "another placement runs no experiment: {elsewhere}");
    // The exposure reaches the results (logged in the background as an event).
    let results = loop {
        let r = json_of(app.get("/v1/experiments/home-blend/results", Role::Admin).await, 200).await;
        if r["units"]["ease"] == 1 {
            break r;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "the exposure never arrived: {r}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(results["units"]["control"], 0);
}

async fn a_bandit_sends_new_visitors_to_the_variant_that_converts(app: TestApp) {
    let mut definition = experiment("bandit", [0.5, 0.5]);
    definition["allocation"] = json!({"kind": "bandit", "min_units": 10});
    json_of(post(&app, "/v1/experiments", Role::Admin, &definition).await, 201).await;
    json_of(post(&app, "/v1/experiments/bandit/start", Role::Admin, &json!({})).await, 200).await;
    // Warm-up: equal split until each variant has 10 visitors.
    let mut first = Vec::new();
    for i in 0..60 {
        first.push((i, assign(&app, "bandit", json!({"anonymous_id": format!("w-{i}")})).await["variant"].clone()));
    }
    let warm_b = first.iter().filter(|(_, v)| v == "ease").count();
    assert!((15..=45).contains(&warm_b), "warm-up split: {warm_b} of 60");
    // Every variant visitor orders; no control visitor does.
    let key = write_key(&app).await;
    let orders: Vec<Value> = first
        .iter()
        .filter(|(_, v)| v == "ease")
        .map(|(i, _)| {
            json!({"type": "track", "event": "Order Completed", "anonymousId": format!("w-{i}"), "messageId": format!("bo-{i}"),
                "properties": {"order_id": format!("bo-{i}"), "products": [{"product_id": "P1", "price": 10.0, "quantity": 1}]}})
        })
        .collect();
    batch(&app, &key, orders).await;
    // The split is recomputed at most once a second.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let mut later_b = 0;
    for i in 0..100 {
        let a = assign(&app, "bandit", json!({"anonymous_id": format!("n-{i}")})).await;
        later_b += usize::from(a["variant"] == "ease");
    }
    assert!(later_b >= 85, "the bandit moved traffic to the converting variant: {later_b} of 100");
    let results = json_of(app.get("/v1/experiments/bandit/results", Role::Admin).await, 200).await;
    assert!(results["srm"].is_null(), "a bandit's split moves on purpose: no SRM check: {results}");
}
