//! Products and SKUs through HTTP, on both backends.

use std::collections::HashSet;

use dermis_auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem};

crate::both_backends!(
    catalog_changes_reach_the_event_bus,
    products_round_trip_with_etags_and_merge_patch,
    skus_belong_to_their_product,
    unique_codes_barcodes_and_external_ids_are_409,
    creates_are_idempotent_with_a_key,
    pagination_visits_every_product_once,
);

async fn products_round_trip_with_etags_and_merge_patch(app: TestApp) {
    let res = app
        .post_json(
            "/v1/products",
            Role::Merchandiser,
            &json!({
                "name": "  Ceramide Barrier Cream ", "brand": "Dermis Labs", "external_id": "P100",
                "category": "Skincare/Moisturizers", "ingredients": "Aqua, Glycerin, Ceramide NP"
            }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(res.headers()["etag"], "\"1\"");
    let p: Value = res.json().await.unwrap();
    assert_eq!(p["name"], "Ceramide Barrier Cream", "names are trimmed");
    assert_eq!(p["status"], "active");
    assert_eq!(location, format!("/v1/products/{}", p["id"].as_str().unwrap()));

    let got: Value = app.get(&location, Role::Customer).await.json().await.unwrap();
    assert_eq!(got, p);

    // Merge patch: absent fields stay, null clears, values replace.
    let res = app.patch_json(&location, Role::Merchandiser, &json!({"description": "Rich", "category": null})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "\"2\"");
    let p2: Value = res.json().await.unwrap();
    assert_eq!(
        (p2["description"].as_str(), p2.get("category"), p2["name"].as_str()),
        (Some("Rich"), None, Some("Ceramide Barrier Cream"))
    );

    // If-Match with a stale version is refused; with the current one it applies.
    let stale = app
        .request(Method::PATCH, &location, Some(Role::Admin))
        .header("if-match", "\"1\"")
        .json(&json!({"name": "X"}))
        .send()
        .await
        .unwrap();
    assert_problem(stale, 412).await;
    let fresh = app
        .request(Method::PATCH, &location, Some(Role::Admin))
        .header("if-match", "\"2\"")
        .json(&json!({"status": "discontinued"}))
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 200);
    let p3: Value = fresh.json().await.unwrap();
    assert_eq!((p3["status"].as_str(), p3["version"].as_i64()), (Some("discontinued"), Some(3)));

    // A patch that changes nothing does not bump the version.
    let same: Value =
        app.patch_json(&location, Role::Admin, &json!({"status": "discontinued"})).await.json().await.unwrap();
    assert_eq!(same["version"], 3);

    assert_problem(app.get("/v1/products/prd_nope", Role::Admin).await, 404).await;
    assert_problem(app.patch_json("/v1/products/prd_nope", Role::Admin, &json!({"name": "x"})).await, 404).await;
    let filtered: Value = app.get("/v1/products?external_id=P100", Role::Analyst).await.json().await.unwrap();
    assert_eq!(filtered["items"].as_array().unwrap().len(), 1);
    let filtered: Value = app.get("/v1/products?status=active", Role::Analyst).await.json().await.unwrap();
    assert_eq!(filtered["items"].as_array().unwrap().len(), 0);
}

async fn skus_belong_to_their_product(app: TestApp) {
    let a = app.create_product(json!({"name": "Tinted SPF", "brand": "B"})).await;
    let b = app.create_product(json!({"name": "Other", "brand": "B"})).await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let sku = app
        .create_sku(a, json!({"code": "TSPF-02", "barcode": "4006381333931", "variant": {"shade": "02 Light", "size": "50 mL"}, "price": {"amount_minor": 3450, "currency": "EUR"}}))
        .await;
    let sku_id = sku["id"].as_str().unwrap();
    assert_eq!(sku["product_id"], a);
    assert_eq!(sku["variant"]["shade"], "02 Light");
    assert_eq!(sku["price"], json!({"amount_minor": 3450, "currency": "EUR"}));

    assert_eq!(app.get(&format!("/v1/products/{a}/skus/{sku_id}"), Role::StoreAssociate).await.status(), 200);
    assert_problem(app.get(&format!("/v1/products/{b}/skus/{sku_id}"), Role::Admin).await, 404).await;
    let listed: Value = app.get(&format!("/v1/products/{a}/skus"), Role::Analyst).await.json().await.unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    let empty: Value = app.get(&format!("/v1/products/{b}/skus"), Role::Analyst).await.json().await.unwrap();
    assert!(empty["items"].as_array().unwrap().is_empty());
    assert_problem(app.get("/v1/products/prd_nope/skus", Role::Analyst).await, 404).await;
    assert_problem(
        app.post_json(
            "/v1/products/prd_nope/skus",
            Role::Admin,
            &json!({"code": "Z", "price": {"amount_minor": 1, "currency": "EUR"}}),
        )
        .await,
        404,
    )
    .await;

    let patched: Value = app
        .patch_json(
            &format!("/v1/products/{a}/skus/{sku_id}"),
            Role::Merchandiser,
            &json!({"price": {"amount_minor": 2999, "currency": "EUR"}, "barcode": null}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (patched["price"]["amount_minor"].as_i64(), patched.get("barcode"), patched["version"].as_i64()),
        (Some(2999), None, Some(2))
    );
}

async fn unique_codes_barcodes_and_external_ids_are_409(app: TestApp) {
    let a = app.create_product(json!({"name": "A", "brand": "B", "external_id": "EXT-1"})).await;
    let a = a["id"].as_str().unwrap();
    let p = assert_problem(
        app.post_json("/v1/products", Role::Admin, &json!({"name": "A2", "brand": "B", "external_id": "EXT-1"})).await,
        409,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("external_id"), "{p}");
    app.create_sku(a, json!({"code": "C-1", "barcode": "96385074", "price": {"amount_minor": 100, "currency": "USD"}}))
        .await;
    let p = assert_problem(
        app.post_json(
            &format!("/v1/products/{a}/skus"),
            Role::Admin,
            &json!({"code": "C-1", "price": {"amount_minor": 1, "currency": "USD"}}),
        )
        .await,
        409,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("code"), "{p}");
    let p = assert_problem(
        app.post_json(
            &format!("/v1/products/{a}/skus"),
            Role::Admin,
            &json!({"code": "C-2", "barcode": "96385074", "price": {"amount_minor": 1, "currency": "USD"}}),
        )
        .await,
        409,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("barcode"), "{p}");
    // Nothing already stored was touched.
    let skus: Value = app.get(&format!("/v1/products/{a}/skus"), Role::Admin).await.json().await.unwrap();
    assert_eq!(skus["items"].as_array().unwrap().len(), 1);
    // Renaming a second product's external id onto a taken one is also a 409.
    let b = app.create_product(json!({"name": "B", "brand": "B"})).await;
    let res = app
        .patch_json(
            &format!("/v1/products/{}", b["id"].as_str().unwrap()),
            Role::Admin,
            &json!({"external_id": "EXT-1"}),
        )
        .await;
    assert_problem(res, 409).await;
}

async fn creates_are_idempotent_with_a_key(app: TestApp) {
    let body = json!({"name": "Retry Serum", "brand": "B"});
    let send = |key: &'static str, body: Value| {
        app.request(Method::POST, "/v1/products", Some(Role::Merchandiser))
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let first = send("k-1", body.clone()).await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = send("k-1", body.clone()).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"], "the retry returns the first product");
    assert_problem(send("k-1", json!({"name": "Other", "brand": "B"})).await.unwrap(), 422).await;
    assert_problem(
        app.request(Method::POST, "/v1/products", Some(Role::Merchandiser))
            .header("idempotency-key", "bad key")
            .json(&body)
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;

    // Concurrent retries of one request create exactly one product.
    let racers: Vec<_> = (0..8).map(|_| send("k-race", json!({"name": "Race", "brand": "B"}))).collect();
    let mut ids = HashSet::new();
    for r in racers {
        let r = r.await.unwrap();
        assert_eq!(r.status(), 201);
        ids.insert(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    let all: Value = app.get("/v1/products?limit=500", Role::Admin).await.json().await.unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), 2);

    // SKUs too.
    let pid = first["id"].as_str().unwrap();
    let sku = json!({"code": "RS-30", "price": {"amount_minor": 1900, "currency": "EUR"}});
    let path = format!("/v1/products/{pid}/skus");
    let a: Value = app
        .request(Method::POST, &path, Some(Role::Merchandiser))
        .header("idempotency-key", "s-1")
        .json(&sku)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let b = app
        .request(Method::POST, &path, Some(Role::Merchandiser))
        .header("idempotency-key", "s-1")
        .json(&sku)
        .send()
        .await
        .unwrap();
    assert_eq!(b.status(), 201);
    assert_eq!(b.json::<Value>().await.unwrap()["id"], a["id"]);
}

async fn pagination_visits_every_product_once(app: TestApp) {
    let mut made = HashSet::new();
    for i in 0..7 {
        let p = app
            .create_product(json!({"name": format!("P{i}"), "brand": if i % 2 == 0 { "Even" } else { "Odd" }}))
            .await;
        made.insert(p["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/products?limit=3&cursor={c}"),
            None => "/v1/products?limit=3".to_owned(),
        };
        let page: Value = app.get(&path, Role::Analyst).await.json().await.unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|p| p["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), made);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "creation order");
    let evens: Value = app.get("/v1/products?brand=Even&limit=500", Role::Analyst).await.json().await.unwrap();
    assert_eq!(evens["items"].as_array().unwrap().len(), 4);
    for bad in [
        "/v1/products?limit=0",
        "/v1/products?limit=501",
        "/v1/products?limit=abc",
        "/v1/products?cursor=%21%21",
        "/v1/products?color=red",
        "/v1/products?status=sold",
    ] {
        let res = app.get(bad, Role::Analyst).await;
        assert!(matches!(res.status().as_u16(), 400 | 422), "{bad}: {}", res.status());
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
}

async fn catalog_changes_reach_the_event_bus(app: TestApp) {
    use dermis_bus::EventBus;
    let p = app.create_product(json!({"name": "Bus Balm", "brand": "B", "ingredients": "Water, Glycerin"})).await;
    let id = p["id"].as_str().unwrap();
    app.patch_json(&format!("/v1/products/{id}"), Role::Merchandiser, &json!({"status": "discontinued"})).await;
    let bus = dermis_bus::embedded::EmbeddedBus::new(app.test_db.db().clone());
    // The relay may publish the creation before it sees the change: a fetch then answers at once
    // with one message. Fetch again (nothing is acknowledged) until both are there, up to 10 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut seen = Vec::new();
    while std::time::Instant::now() < deadline {
        seen = bus.fetch("test-consumer", "catalog.", 10, std::time::Duration::from_millis(200)).await.unwrap();
        if seen.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let topics: Vec<&str> = seen.iter().map(|e| e.topic.as_str()).collect();
    assert_eq!(topics, ["catalog.product.created", "catalog.product.discontinued"]);
    assert!(seen.iter().all(|e| e.key == id));
    let payload: Value = serde_json::from_str(&seen[1].payload).unwrap();
    assert_eq!(payload["status"], "discontinued");
}
