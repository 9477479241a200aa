//! Experiment variants on a recommendation placement beyond source weights, through the real
//! server: a variant's own business rules (checked at creation) and a contextual bandit ordering
//! the top of the list, which learns from clicks attributed to the response; neither can ever
//! show a product the safety layer excluded.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use dermis_auth::Role;
use serde_json::{Value, json};

use crate::events_test::write_key;
use crate::helpers::{TestApp, assert_problem, json_of};
use crate::recommend_test::{ids, label, recs};

crate::both_backends!(
    a_variant_rule_reorders_the_safe_list_and_bad_rules_are_refused,
    a_contextual_variant_learns_the_top_and_never_shows_an_allergen
);

async fn customer(app: &TestApp, user: &str, profile: Value) {
    crate::recommend_test::customer(app, user, true, profile).await;
}

fn excluded(v: &Value) -> HashSet<String> {
    v["excluded"].as_array().unwrap().iter().map(|e| e["product_id"].as_str().unwrap().to_owned()).collect()
}

/// Defines and starts an experiment on `home` whose every visitor gets the variant `config`.
async fn run_variant(app: &TestApp, key: &str, config: Value) {
    let definition = json!({"key": key, "name": "Home", "placement": "home",
        "variants": [{"key": "control", "weight": 0.0, "config": {}},
                     {"key": "variant", "weight": 1.0, "config": config}]});
    json_of(app.post_json("/v1/experiments", Role::Admin, &definition).await, 201).await;
    json_of(app.post_json(&format!("/v1/experiments/{key}/start"), Role::Admin, &json!({})).await, 200).await;
}

/// The response once the node's recommendation catalog has settled: two responses 300 ms apart
/// list the same products and exclusions. (`load_demo` waits for the search index; the
/// recommendation catalog is another consumer of the same events and may still be taking in
/// products, or their ingredient facts, for a moment.)
async fn settled(app: &TestApp, who: &str, query: &str) -> Value {
    let started = Instant::now();
    let mut last = recs(app, who, query).await;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = recs(app, who, query).await;
        if ids(&now) == ids(&last) && excluded(&now) == excluded(&last) {
            return now;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the recommendations never settled: {now}");
        last = now;
    }
}

/// The first response made under the experiment (nodes read running experiments every few
/// seconds).
async fn under_experiment(app: &TestApp, who: &str, query: &str) -> Value {
    let started = Instant::now();
    loop {
        let r = recs(app, who, query).await;
        if !r["experiment"].is_null() {
            assert_eq!(r["experiment"]["variant"], "variant", "{r}");
            return r;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "the experiment never applied: {r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn a_variant_rule_reorders_the_safe_list_and_bad_rules_are_refused(app: TestApp) {
    app.load_demo().await;
    customer(
        &app,
        "shop-rules",
        json!({"source": "quiz", "skin_type": "oily", "concerns": ["acne"], "allergies": ["Linalool"]}),
    )
    .await;
    // Bad rules are refused at creation, naming the field; nothing is created.
    let bad = json!({"key": "bad", "name": "Bad", "placement": "home",
        "variants": [{"key": "control", "weight": 0.5, "config": {}},
                     {"key": "variant", "weight": 0.5, "config": {
                        "rules": [{"id": "cheap", "when": "price <", "action": {"type": "bury"}}],
                        "contextual": {"top": 0}}}]});
    let p = assert_problem(app.post_json("/v1/experiments", Role::Admin, &bad).await, 422).await;
    let fields: Vec<&str> = p["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["variants[1].config.rules[0].when", "variants[1].config.contextual.top"], "{p}");
    assert_problem(app.get("/v1/experiments/bad", Role::Admin).await, 404).await;

    let before = settled(&app, "shop-rules", "k=10&placement=home&explain=true").await;
    let (top, unsafe_ids) = (ids(&before)[0].clone(), excluded(&before));
    assert!(!unsafe_ids.is_empty(), "linalool products are excluded for her: {before}");
    // The variant buries today's first product and tries to pin every excluded one first.
    let unsafe_list: Vec<String> = unsafe_ids.iter().map(|id| format!("{id:?}")).collect();
    let rules = json!([
        {"id": "bury-top", "when": format!("product_id = {top:?}"), "action": {"type": "bury"}},
        {"id": "pin-unsafe", "when": format!("product_id in [{}]", unsafe_list.join(", ")), "action": {"type": "pin", "position": 1}}]);
    run_variant(&app, "home-rules", json!({"rules": rules})).await;
    let after = under_experiment(&app, "shop-rules", "k=10&placement=home&explain=true").await;
    let shown = ids(&after);
    assert_eq!(shown.len(), 10, "{after}");
    assert!(!shown.contains(&top), "the variant's bury moved {top} off the page: {shown:?}");
    assert_eq!(shown[..9], ids(&before)[1..10], "the rest keep their order");
    for id in &shown {
        assert!(!unsafe_ids.contains(id), "{id} was excluded by the safety layer and came back");
        assert!(!label(&app, id).await.contains("linalool"), "{id} declares linalool");
    }
    // Another placement runs no experiment: the list is as before.
    let elsewhere = recs(&app, "shop-rules", "k=10&placement=pdp").await;
    assert!(elsewhere["experiment"].is_null());
    assert_eq!(ids(&elsewhere)[0], top);
}

async fn a_contextual_variant_learns_the_top_and_never_shows_an_allergen(app: TestApp) {
    app.load_demo().await;
    let key = write_key(&app).await;
    customer(
        &app,
        "shop-dry",
        json!({"source": "quiz", "skin_type": "dry", "concerns": ["dryness"], "allergies": ["Linalool"]}),
    )
    .await;
    let before = settled(&app, "shop-dry", "k=10&placement=home&explain=true").await;
    let unsafe_ids = excluded(&before);
    assert!(!unsafe_ids.is_empty(), "linalool products are excluded for her: {before}");
    // The product she will keep clicking: fifth today, inside the bandit's pool of 6.
    let target = &before["items"][4];
    let (target_id, target_ext) = (target["product_id"].as_str().unwrap(), target["external_id"].as_str());
    let clicked = target_ext.unwrap_or(target_id).to_owned();

    run_variant(&app, "home-bandit", json!({"contextual": {"top": 3, "pool": 6, "alpha": 1.0}})).await;
    let mut seen = HashSet::new();
    let mut response = under_experiment(&app, "shop-dry", "k=10&placement=home&explain=true").await;
    for round in 0..8 {
        let shown = ids(&response);
        assert_eq!(shown.len(), 10, "{response}");
        for id in &shown {
            assert!(!unsafe_ids.contains(id), "round {round}: {id} was excluded by the safety layer");
        }
        seen.extend(shown.iter().cloned());
        let rec = response["recommendation_id"].as_str().unwrap();
        // She clicks the target whenever it is shown; a click naming an allergen product (a
        // tampered event) rewards nothing.
        let mut events = vec![json!({"type": "track", "event": "Product Clicked", "userId": "shop-dry",
            "messageId": format!("bad-{round}"),
            "properties": {"product_id": unsafe_ids.iter().next().unwrap(), "recommendation_id": rec}})];
        if shown.iter().any(|id| id == target_id) {
            events.push(json!({"type": "track", "event": "Product Clicked", "userId": "shop-dry",
                "messageId": format!("click-{round}"),
                "properties": {"product_id": clicked, "recommendation_id": rec}}));
        }
        let body = json!({"writeKey": key, "batch": events});
        json_of(app.client.post(app.url("/v1/batch")).json(&body).send().await.unwrap(), 200).await;
        response = recs(&app, "shop-dry", "k=10&placement=home&explain=true").await;
    }
    assert_ne!(ids(&before)[0], target_id, "not first before the bandit learned");
    assert_eq!(ids(&response)[0], target_id, "clicked every time it was shown, it leads for her skin type: {response}");
    for id in &seen {
        assert!(!label(&app, id).await.contains("linalool"), "{id} declares linalool");
    }
}
