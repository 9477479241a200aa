//! Recommendations filtered by stock through the real server: a request naming a `channel` or a
//! `store` leaves out what the inventory has out of stock there (rule `out-of-stock`, listed
//! with `explain=true`), at once when a hold takes the last units and back when it is released;
//! a product the inventory has no records for is still recommended; a request naming neither,
//! or a place the inventory does not know, is not filtered (and says why).

use std::time::{Duration, Instant};

use dermis_auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, json_of};

crate::both_backends!(recommendations_leave_out_what_is_out_of_stock_for_the_channel_or_store);

const LABEL: &str = "Aqua, Glycerin, Niacinamide, Panthenol, Phenoxyethanol";

/// A serum with one SKU of `code`: (product id, SKU id).
async fn serum(app: &TestApp, code: &str) -> (String, String) {
    let p = app
        .create_product(json!({"name": format!("Serum {code}"), "brand": format!("Brand {code}"),
            "category": "Skincare/Treatments/Face Serums", "ingredients": LABEL}))
        .await;
    let id = p["id"].as_str().unwrap().to_owned();
    let sku = app.create_sku(&id, json!({"code": code, "price": {"amount_minor": 2500, "currency": "EUR"}})).await;
    (id, sku["id"].as_str().unwrap().to_owned())
}

async fn location(app: &TestApp, code: &str, kind: &str, channels: &[&str]) {
    let body =
        json!({"code": code, "name": code, "kind": kind, "latitude": 48.85, "longitude": 2.35, "channels": channels});
    json_of(app.post_json("/v1/locations", Role::Admin, &body).await, 201).await;
}

async fn receive(app: &TestApp, location: &str, sku: &str, quantity: i64) {
    let body = json!({"location_id": location, "lines": [{"sku_id": sku, "quantity": quantity,
        "lot": {"code": "L1", "expires_on": "2031-01-31"}}]});
    json_of(app.post_json("/v1/inventory/receipts", Role::Service, &body).await, 201).await;
}

async fn customer(app: &TestApp) -> String {
    let consents: Vec<Value> = ["health_data", "personalization"]
        .iter()
        .map(|p| json!({"purpose": p, "granted": true, "text_version": "v1", "channel": "web"}))
        .collect();
    let body = json!({"name": "Stock Test", "user_id": "shop-stock", "consents": consents});
    let c = json_of(app.post_json("/v1/customers", Role::Admin, &body).await, 201).await;
    let id = c["id"].as_str().unwrap().to_owned();
    let profile = json!({"source": "quiz", "skin_type": "normal", "concerns": ["dullness"]});
    let res =
        app.request(Method::PUT, &format!("/v1/customers/{id}/skin-profile"), Some(Role::Admin)).json(&profile).send();
    json_of(res.await.unwrap(), 200).await;
    id
}

async fn recs(app: &TestApp, who: &str, query: &str) -> Value {
    json_of(app.get(&format!("/v1/customers/{who}/recommendations?k=10&{query}"), Role::Service).await, 200).await
}

fn ids(v: &Value) -> Vec<String> {
    let mut out: Vec<String> =
        v["items"].as_array().unwrap().iter().map(|i| i["product_id"].as_str().unwrap().to_owned()).collect();
    out.sort();
    out
}

/// The products excluded with rule `out-of-stock`, and their reasons.
fn out_of_stock(v: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = v["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| {
            e["exclusions"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|x| x["rule_id"] == "out-of-stock")
                .map(|x| (e["product_id"].as_str().unwrap().to_owned(), x["reason"].as_str().unwrap().to_owned()))
        })
        .collect();
    out.sort();
    out
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| (*s).clone()).collect();
    v.sort();
    v
}

fn notices(v: &Value) -> String {
    v["notices"]
        .as_array()
        .map(|n| n.iter().map(|x| x.as_str().unwrap()).collect::<Vec<_>>().join(" | "))
        .unwrap_or_default()
}

async fn recommendations_leave_out_what_is_out_of_stock_for_the_channel_or_store(mut app: TestApp) {
    // A warehouse selling on the web and a store selling at its till.
    location(&app, "WH-1", "warehouse", &["web"]).await;
    location(&app, "ST-PARIS", "store", &["pos"]).await;
    // On the web: 2 of A; B has no inventory records at all; C is only in the store; D on the web.
    let (a, a_sku) = serum(&app, "STK-A").await;
    let (b, _) = serum(&app, "STK-B").await;
    let (c, c_sku) = serum(&app, "STK-C").await;
    let (d, d_sku) = serum(&app, "STK-D").await;
    receive(&app, "WH-1", &a_sku, 2).await;
    receive(&app, "ST-PARIS", &c_sku, 3).await;
    receive(&app, "WH-1", &d_sku, 5).await;
    let who = customer(&app).await;

    // The store holds only C (A and D are elsewhere); B is not tracked, so it stays. Polled until
    // the engine's catalog view has read every product's SKUs (catalog events, in the
    // background).
    let started = Instant::now();
    let at_store = loop {
        let v = recs(&app, &who, "store=ST-PARIS&explain=true").await;
        if ids(&v) == sorted(&[&b, &c]) {
            break v;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the store filter never applied: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let expected: Vec<(String, String)> =
        sorted(&[&a, &d]).into_iter().map(|p| (p, "out of stock for store ST-PARIS".to_owned())).collect();
    assert_eq!(out_of_stock(&at_store), expected, "{at_store}");
    assert!(notices(&at_store).contains("1 of these products has no stock records for store ST-PARIS"), "{at_store}");

    // On the web: A, B (untracked) and D; C is out of stock for the channel, and says so.
    let web = recs(&app, &who, "channel=web&explain=true").await;
    assert_eq!(ids(&web), sorted(&[&a, &b, &d]), "{web}");
    assert_eq!(out_of_stock(&web), [(c.clone(), "out of stock for channel web".to_owned())], "{web}");

    // A cart holds the last two units of A on the web: the very next response leaves it out.
    let hold = json_of(
        app.post_json(
            "/v1/reservations",
            Role::Service,
            &json!({"channel": "web", "lines": [{"sku_id": a_sku, "quantity": 2}], "ttl_seconds": 600}),
        )
        .await,
        201,
    )
    .await;
    let held = recs(&app, &who, "channel=web&explain=true").await;
    assert_eq!(ids(&held), sorted(&[&b, &d]), "{held}");
    assert_eq!(
        out_of_stock(&held),
        [
            (a.clone(), "out of stock for channel web".to_owned()),
            (c.clone(), "out of stock for channel web".to_owned())
        ],
        "{held}"
    );
    // Without explain, the same list and no exclusions; without a channel or store, no stock
    // filter at all.
    let quiet = recs(&app, &who, "channel=web").await;
    assert_eq!(ids(&quiet), ids(&held));
    assert!(quiet.get("excluded").is_none(), "{quiet}");
    assert_eq!(ids(&recs(&app, &who, "").await), sorted(&[&a, &b, &c, &d]));
    // An anonymous visitor on the web, and products similar to B on the web, leave it out too.
    let visitor = json_of(
        app.post_json(
            "/v1/recommendations",
            Role::Customer,
            &json!({"profile": {"skin_type": "normal"}, "k": 10, "channel": "web", "explain": true}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(ids(&visitor), sorted(&[&b, &d]), "{visitor}");
    let similar =
        json_of(app.get(&format!("/v1/products/{b}/similar?channel=web&explain=true"), Role::Customer).await, 200)
            .await;
    assert_eq!(ids(&similar), sorted(&[&d]), "{similar}");
    assert_eq!(out_of_stock(&similar).len(), 2, "{similar}");
    // The routine for the web shop picks its serum among what is in stock there.
    let routine = json_of(app.get(&format!("/v1/customers/{who}/routine?channel=web"), Role::Service).await, 200).await;
    let chosen: Vec<&str> = ["am", "pm"]
        .iter()
        .flat_map(|when| routine[when].as_array().unwrap())
        .map(|step| step["product"]["product_id"].as_str().unwrap())
        .collect();
    assert!(!chosen.is_empty() && chosen.iter().all(|p| *p == b || *p == d), "{routine}");

    // The hold is released: A is back on the web.
    let id = hold["id"].as_str().unwrap();
    json_of(
        app.request(Method::DELETE, &format!("/v1/reservations/{id}"), Some(Role::Service)).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(ids(&recs(&app, &who, "channel=web").await), sorted(&[&a, &b, &d]));

    // A place the inventory does not know filters nothing and says why.
    for query in ["store=NOWHERE", "channel=fax", "channel=app"] {
        let v = recs(&app, &who, query).await;
        assert_eq!(ids(&v), sorted(&[&a, &b, &c, &d]), "{query}: {v}");
        assert!(notices(&v).contains("not filtered by stock"), "{query}: {v}");
    }

    // After a restart the catalog view is read again page by page, each product's SKUs with it.
    app.restart().await;
    let started = Instant::now();
    loop {
        let res = app.get(&format!("/v1/customers/{who}/recommendations?k=10&store=ST-PARIS"), Role::Service).await;
        if res.status() == 200 {
            let v: Value = res.json().await.unwrap();
            if ids(&v) == sorted(&[&b, &c]) {
                break;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the store filter never applied after a restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
