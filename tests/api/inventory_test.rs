//! The inventory through the real server: locations, receipts by lot, reservations that never
//! oversell (1,000 concurrent holds on 100 units: exactly 100 succeed, on one node and on three
//! nodes sharing PostgreSQL), confirmation, release, expiry, the nearest store with stock, a POS
//! syncing offline receipts, reports; bad input is a problem+json and leaves the ledger as it was.

use std::time::Duration;

use dermis_auth::Role;
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, json_of, token_for};

crate::both_backends!(stock_moves_through_http_and_bad_input_changes_nothing, a_thousand_holds_on_a_hundred_units);

fn warehouse(code: &str) -> Value {
    json!({"code": code, "name": "Central warehouse", "kind": "warehouse", "latitude": 52.52, "longitude": 13.40,
        "channels": ["web", "app", "marketplace:zalando"]})
}

fn store(code: &str, latitude: f64, longitude: f64) -> Value {
    json!({"code": code, "name": format!("Store {code}"), "kind": "store", "latitude": latitude, "longitude": longitude,
        "channels": ["pos", "web"], "click_and_collect": true, "opening_hours": {"mon": "09:00-19:00", "sat": "10:00-16:00"}})
}

async fn location(app: &TestApp, body: &Value) -> String {
    json_of(app.post_json("/v1/locations", Role::Admin, body).await, 201).await["id"].as_str().unwrap().to_owned()
}

async fn receive(app: &TestApp, location: &str, sku: &str, quantity: i64, lot: &str, expires_on: &str) -> Response {
    app.post_json(
        "/v1/inventory/receipts",
        Role::Service,
        &json!({"location_id": location, "lines": [{"sku_id": sku, "quantity": quantity, "lot": {"code": lot, "expires_on": expires_on}}]}),
    )
    .await
}

async fn stock(app: &TestApp, sku: &str) -> Value {
    json_of(app.get(&format!("/v1/inventory/{sku}"), Role::Merchandiser).await, 200).await
}

fn at<'a>(stock: &'a Value, location: &str) -> &'a Value {
    stock["locations"].as_array().unwrap().iter().find(|l| l["location_id"] == location).unwrap_or(&Value::Null)
}

fn channel<'a>(stock: &'a Value, name: &str) -> &'a Value {
    stock["channels"].as_array().unwrap().iter().find(|c| c["channel"] == name).unwrap_or(&Value::Null)
}

async fn stock_at(client: &reqwest::Client, base: &str, sku: &str) -> Value {
    let token = crate::helpers::token(Role::Service);
    let res = client.get(format!("{base}/v1/inventory/{sku}")).bearer_auth(&token).send().await.unwrap();
    json_of(res, 200).await
}

async fn reserve(app: &TestApp, body: &Value) -> Response {
    app.post_json("/v1/reservations", Role::Service, body).await
}

async fn stock_moves_through_http_and_bad_input_changes_nothing(app: TestApp) {
    let sku_id = app.product_with_sku("SER-30").await;
    let wh = location(&app, &warehouse("WH-BER")).await;
    assert!(wh.starts_with("loc_"), "{wh}");
    // The same location again is the same location; another body with its code is a conflict.
    let again = json_of(app.post_json("/v1/locations", Role::Admin, &warehouse("WH-BER")).await, 200).await;
    assert_eq!(again["id"], wh.as_str());
    let mut other = warehouse("WH-BER");
    other["latitude"] = json!(48.1);
    assert_problem(app.post_json("/v1/locations", Role::Admin, &other).await, 409).await;
    let near_store = location(&app, &store("ST-MITTE", 52.53, 13.41)).await;
    let far_store = location(&app, &store("ST-MUC", 48.14, 11.58)).await;
    assert_problem(app.post_json("/v1/locations", Role::Merchandiser, &store("ST-X", 1.0, 1.0)).await, 403).await;

    // Receipts by lot, the SKU named by its code or its id.
    json_of(receive(&app, "WH-BER", "SER-30", 40, "L-A", "2030-01-31").await, 201).await;
    json_of(receive(&app, &wh, &sku_id, 10, "L-B", "2029-06-30").await, 201).await;
    json_of(receive(&app, &near_store, "SER-30", 3, "L-S1", "2030-01-31").await, 201).await;
    json_of(receive(&app, &far_store, "SER-30", 8, "L-S2", "2030-01-31").await, 201).await;
    let s = stock(&app, "SER-30").await;
    assert_eq!(s["sku_id"], sku_id.as_str());
    assert_eq!(at(&s, &wh)["on_hand"], 50, "{s}");
    assert_eq!(channel(&s, "web")["available"], 61, "{s}");
    assert_eq!(channel(&s, "pos")["available"], 11, "{s}");

    // A retried receipt with an Idempotency-Key is booked once.
    for expected in [201, 200] {
        let res = app
            .request(Method::POST, "/v1/inventory/receipts", Some(Role::Service))
            .header("idempotency-key", "asn-77")
            .json(&json!({"location_id": wh, "lines": [{"sku_id": "SER-30", "quantity": 5, "lot": {"code": "L-A", "expires_on": "2030-01-31"}}]}))
            .send()
            .await
            .unwrap();
        json_of(res, expected).await;
    }
    assert_eq!(at(&stock(&app, "SER-30").await, &wh)["on_hand"], 55);

    // Bad input: a problem+json each, and the ledger unchanged.
    let before = stock(&app, &sku_id).await;
    for (body, status) in [
        (
            json!({"location_id": wh, "lines": [{"sku_id": "SER-30", "quantity": 0, "lot": {"code": "L", "expires_on": "2030-01-01"}}]}),
            422,
        ),
        (
            json!({"location_id": wh, "lines": [{"sku_id": "SER-30", "quantity": -4, "lot": {"code": "L", "expires_on": "2030-01-01"}}]}),
            422,
        ),
        (
            json!({"location_id": wh, "lines": [{"sku_id": "NOPE", "quantity": 1, "lot": {"code": "L", "expires_on": "2030-01-01"}}]}),
            422,
        ),
        (
            json!({"location_id": "nowhere", "lines": [{"sku_id": "SER-30", "quantity": 1, "lot": {"code": "L", "expires_on": "2030-01-01"}}]}),
            422,
        ),
        (
            json!({"location_id": wh, "lines": [{"sku_id": "SER-30", "quantity": 1, "lot": {"code": "OLD", "expires_on": "2020-01-01"}}]}),
            422,
        ),
        (
            json!({"location_id": wh, "lines": [{"sku_id": "SER-30", "quantity": 1, "lot": {"code": "L", "expires_on": "31/01/2030"}}]}),
            422,
        ),
        (json!({"location_id": wh, "lines": []}), 422),
        (json!({"location_id": wh}), 422),
    ] {
        let res = app.post_json("/v1/inventory/receipts", Role::Service, &body).await;
        assert_problem(res, status).await;
    }
    for (body, status) in [
        (json!({"channel": "web", "lines": [{"sku_id": "SER-30", "quantity": 0}]}), 422),
        (json!({"channel": "web", "lines": [{"sku_id": "NOPE", "quantity": 1}]}), 422),
        (json!({"channel": "fax", "lines": [{"sku_id": "SER-30", "quantity": 1}]}), 422),
        (json!({"channel": "web", "lines": [{"sku_id": "SER-30", "quantity": 1}], "ttl_seconds": 0}), 422),
        (json!({"channel": "web", "lines": [{"sku_id": "SER-30", "quantity": 1}], "location_id": "nowhere"}), 422),
    ] {
        assert_problem(reserve(&app, &body).await, status).await;
    }
    assert_eq!(stock(&app, &sku_id).await, before, "refused requests changed the ledger");

    // A hold: lines with location and lot, a deadline; the stock shows it at once.
    let res = reserve(&app, &json!({"channel": "web", "lines": [{"sku_id": "SER-30", "quantity": 12}], "ttl_seconds": 600, "customer_id": "cus_1"})).await;
    let hold = json_of(res, 201).await;
    assert_eq!(hold["status"], "held");
    let first = &hold["lines"][0]["allocations"][0];
    assert_eq!(first["lot"], "L-B", "FEFO: the lot expiring first goes first: {hold}");
    assert_eq!(first["location_id"], wh.as_str());
    assert!(hold["expires_at"].as_str().unwrap().contains('T'), "{hold}");
    let id = hold["id"].as_str().unwrap().to_owned();
    let s = stock(&app, "SER-30").await;
    assert_eq!(at(&s, &wh)["reserved"], 12, "{s}");
    assert_eq!(channel(&s, "web")["available"], 66 - 12, "{s}");

    // Short: a 409 naming the line, nothing held.
    let short = assert_problem(
        reserve(&app, &json!({"channel": "pos", "lines": [{"sku_id": "SER-30", "quantity": 12}]})).await,
        409,
    )
    .await;
    assert!(short["detail"].as_str().unwrap().contains(&sku_id), "{short}");
    assert!(short["errors"][0]["message"].as_str().unwrap().contains("11 available"), "{short}");
    assert_eq!(channel(&stock(&app, "SER-30").await, "pos")["available"], 11);

    // Confirm, confirm again (409), release (units back), release again (the same answer).
    let confirmed =
        json_of(app.post_json(&format!("/v1/reservations/{id}/confirm"), Role::Service, &json!({})).await, 200).await;
    assert_eq!(confirmed["status"], "confirmed", "{confirmed}");
    assert_eq!(at(&stock(&app, "SER-30").await, &wh)["committed"], 12);
    assert_problem(
        app.post_json(
            &format!("/v1/reservations/{id}/confirm"),
            Role::Service,
            &json!({"lines": [{"sku_id": "SER-30", "quantity": 1}]}),
        )
        .await,
        409,
    )
    .await;
    let released = json_of(
        app.request(Method::DELETE, &format!("/v1/reservations/{id}"), Some(Role::Service)).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(released["status"], "released");
    json_of(
        app.request(Method::DELETE, &format!("/v1/reservations/{id}"), Some(Role::Service)).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(channel(&stock(&app, "SER-30").await, "web")["available"], 66);
    assert_problem(app.post_json("/v1/reservations/res_nope/confirm", Role::Service, &json!({})).await, 404).await;

    // A retried reservation with an Idempotency-Key is the same hold.
    let keyed = |n: i64| {
        app.request(Method::POST, "/v1/reservations", Some(Role::Service))
            .header("idempotency-key", "cart-9")
            .json(&json!({"channel": "app", "lines": [{"sku_id": "SER-30", "quantity": n}]}))
    };
    let a = json_of(keyed(2).send().await.unwrap(), 201).await;
    let b = json_of(keyed(2).send().await.unwrap(), 200).await;
    assert_eq!((a["id"].clone(), a["expires_at"].clone()), (b["id"].clone(), b["expires_at"].clone()));
    assert_problem(keyed(3).send().await.unwrap(), 422).await;
    assert_eq!(channel(&stock(&app, "SER-30").await, "app")["available"], 55 - 2);

    // A hold past its deadline stops counting at once; confirming it is a 409.
    let brief = json_of(
        reserve(&app, &json!({"channel": "web", "lines": [{"sku_id": "SER-30", "quantity": 5}], "ttl_seconds": 1}))
            .await,
        201,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(channel(&stock(&app, "SER-30").await, "web")["available"], 66 - 2);
    let late = format!("/v1/reservations/{}/confirm", brief["id"].as_str().unwrap());
    assert_problem(app.post_json(&late, Role::Service, &json!({})).await, 409).await;

    // The nearest store with stock, for pickup; a store reservation draws on it first.
    let near =
        json_of(app.get("/v1/locations/near?lat=52.50&lon=13.39&sku_id=SER-30", Role::Customer).await, 200).await;
    let codes: Vec<&str> = near.as_array().unwrap().iter().map(|s| s["location"]["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["ST-MITTE", "ST-MUC"], "{near}");
    assert_eq!(near[0]["available"], 3);
    let pickup = json_of(
        reserve(
            &app,
            &json!({"channel": "web", "lines": [{"sku_id": "SER-30", "quantity": 2}], "location_id": "ST-MITTE"}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(pickup["lines"][0]["allocations"][0]["location_id"], near_store.as_str(), "{pickup}");

    // The POS was offline: it sold 3 from the shelf, 2 of which an online pickup held. The sale
    // wins; the hold moves elsewhere or is flagged; a second sync books nothing again.
    let sync = json!({"location_id": "ST-MITTE", "receipts": [{"receipt": "R-1001", "lines": [{"sku_id": "SER-30", "quantity": 3}]}]});
    let store_token = token_for(Role::StoreAssociate, "till-1", Some("ST-MITTE"));
    let post_sync = || app.client.post(app.url("/v1/pos/sync")).bearer_auth(&store_token).json(&sync);
    let synced = json_of(post_sync().send().await.unwrap(), 200).await;
    assert_eq!(synced[0]["status"], "booked", "{synced}");
    assert_eq!(synced[0]["conflicts"].as_array().unwrap().len(), 1, "the pickup hold collided: {synced}");
    let resynced = json_of(post_sync().send().await.unwrap(), 200).await;
    assert_eq!(resynced[0]["status"], "already_booked");
    let s = stock(&app, "SER-30").await;
    assert_eq!(at(&s, &near_store)["on_hand"], 0, "{s}");
    let moved =
        json_of(app.get(&format!("/v1/reservations/{}", pickup["id"].as_str().unwrap()), Role::Service).await, 200)
            .await;
    let held: i64 =
        moved["lines"][0]["allocations"].as_array().unwrap().iter().map(|a| a["held"].as_i64().unwrap()).sum();
    assert_eq!(held + moved["lines"][0]["short"].as_i64().unwrap(), 2, "{moved}");
    // A store associate of another store cannot sync this one.
    let other = token_for(Role::StoreAssociate, "till-9", Some("ST-MUC"));
    assert_problem(app.client.post(app.url("/v1/pos/sync")).bearer_auth(other).json(&sync).send().await.unwrap(), 403)
        .await;

    // Reports: expiring lots, low stock; a lot's recall names the customers it reached.
    let expiring = json_of(app.get("/v1/inventory/reports/expiring?days=3650", Role::Analyst).await, 200).await;
    assert_eq!(expiring[0]["lot"], "L-B", "soonest first: {expiring}");
    let low =
        json_of(app.get("/v1/inventory/reports/low-stock?channel=pos&threshold=100", Role::Analyst).await, 200).await;
    assert_eq!(low[0]["sku_id"], sku_id.as_str());
    let recall = json_of(app.get("/v1/inventory/SER-30/lots/L-B/recall", Role::Admin).await, 200).await;
    // The recall names the hold's customer by keyed pseudonym: the journal never holds an id.
    let customers = recall["customer_pseudonyms"].as_array().unwrap();
    assert!(customers.len() == 1 && customers[0].as_str().unwrap().starts_with("cx_"), "{recall}");
    assert!(!recall.to_string().contains("cus_1"), "{recall}");
    assert_problem(app.get("/v1/inventory/NOPE", Role::Analyst).await, 404).await;
    // A customer holds for themselves, no longer than the channel's default, and cannot confirm
    // (that would take the units off sale for good).
    let me = token_for(Role::Customer, "cus_9", None);
    let mine = |body: Value| app.client.post(app.url("/v1/reservations")).bearer_auth(&me).json(&body);
    let long = json!({"channel": "web", "lines": [{"sku_id": "SER-30", "quantity": 1}], "ttl_seconds": 86_400});
    assert_problem(mine(long).send().await.unwrap(), 422).await;
    let held = json!({"channel": "web", "lines": [{"sku_id": "SER-30", "quantity": 1}]});
    let held = json_of(mine(held).send().await.unwrap(), 201).await;
    assert!(held["customer_pseudonym"].as_str().unwrap().starts_with("cx_"), "{held}");
    let confirm = format!("/v1/reservations/{}/confirm", held["id"].as_str().unwrap());
    let res = app.client.post(app.url(&confirm)).bearer_auth(&me).json(&json!({})).send().await.unwrap();
    assert_problem(res, 403).await;
    assert_problem(app.get("/v1/inventory/SER-30", Role::Dermatologist).await, 403).await;
}

async fn a_thousand_holds_on_a_hundred_units(app: TestApp) {
    app.product_with_sku("HOT-1").await;
    location(&app, &warehouse("WH-1")).await;
    location(&app, &store("ST-1", 52.0, 13.0)).await;
    json_of(receive(&app, "WH-1", "HOT-1", 70, "L1", "2031-01-01").await, 201).await;
    json_of(receive(&app, "ST-1", "HOT-1", 30, "L2", "2031-01-01").await, 201).await;
    let bases = [app.base.clone()];
    let (won, short) = rush(&app.client, &bases, "HOT-1", 1_000).await;
    assert_eq!((won, short), (100, 900), "exactly the 100 units were held");
    let s = stock(&app, "HOT-1").await;
    for c in ["web", "app", "pos"] {
        assert_eq!(channel(&s, c)["available"], 0, "{s}");
    }
}

/// 1,000 concurrent one-unit holds from web, app and pos, spread over the nodes: how many got a
/// 201 and how many a 409 (anything else fails the test).
async fn rush(client: &reqwest::Client, bases: &[String], sku: &str, n: usize) -> (usize, usize) {
    let token = crate::helpers::token(Role::Service);
    let channels = ["web", "app", "pos"];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let url = format!("{}/v1/reservations", bases[i % bases.len()]);
        let body = json!({"channel": channels[i % 3], "lines": [{"sku_id": sku, "quantity": 1}], "ttl_seconds": 600});
        let request = client.post(url).bearer_auth(&token).json(&body);
        tasks.spawn(async move {
            let res = request.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.text().await.unwrap())
        });
    }
    let (mut won, mut short) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        match done.unwrap() {
            (201, _) => won += 1,
            (409, _) => short += 1,
            (status, body) => panic!("a hold answered {status}: {body}"),
        }
    }
    (won, short)
}

mod multi_node {
    use super::*;

    /// Three nodes (each its own pool and ledger writer) share one PostgreSQL: the database's
    /// guards and the journal's head keep them from overselling.
    mod postgres {
        use super::*;
        #[tokio::test]
        async fn three_nodes_share_the_hundred_units() {
            let Some(app) = crate::helpers::spawn_app_on(crate::helpers::Backend::Postgres).await else { return };
            app.product_with_sku("HOT-3").await;
            location(&app, &warehouse("WH-3")).await;
            location(&app, &store("ST-3", 52.0, 13.0)).await;
            json_of(receive(&app, "WH-3", "HOT-3", 80, "L1", "2031-01-01").await, 201).await;
            json_of(receive(&app, "ST-3", "HOT-3", 20, "L2", "2031-01-01").await, 201).await;
            let (mut b, mut c) = (app.peer("node-b").await, app.peer("node-c").await);
            let bases = [app.base.clone(), b.base.clone(), c.base.clone()];
            let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
            let (won, short) = rush(&client, &bases, "HOT-3", 1_000).await;
            assert_eq!((won, short), (100, 900), "exactly the 100 units were held across three nodes");
            b.stop().await;
            c.stop().await;
        }

        /// The same with a cluster secret: the nodes keep one writer (a lease) and forward their
        /// writes to it; when its node stops, the others go on writing.
        #[tokio::test]
        async fn three_nodes_forwarding_to_one_writer_share_the_hundred_units() {
            let secret = secrecy::SecretString::from("a-cluster-secret-for-the-api-tests".to_owned());
            // The default lease (10 s): every node of a test shares one thread, and a lease
            // renewed late expires in the others' view, who then write themselves.
            let Some(mut app) = crate::helpers::spawn_with(crate::helpers::Backend::Postgres, |c| {
                c.inventory.cluster_secret = Some(secret)
            })
            .await
            else {
                return;
            };
            app.product_with_sku("HOT-4").await;
            location(&app, &warehouse("WH-4")).await;
            location(&app, &store("ST-4", 52.0, 13.0)).await;
            json_of(receive(&app, "WH-4", "HOT-4", 80, "L1", "2031-01-01").await, 201).await;
            json_of(receive(&app, "ST-4", "HOT-4", 20, "L2", "2031-01-01").await, 201).await;
            let (mut b, mut c) = (app.peer("node-b").await, app.peer("node-c").await);
            // One node holds the writer's lease, advertised at the address it listens on.
            let db = app.test_db.db().clone();
            let lease = || async {
                let row = dermis_store::sqlx::query("SELECT node_id, url FROM inventory_writer_lease")
                    .fetch_optional(db.reader())
                    .await
                    .unwrap();
                row.map(|row| {
                    use dermis_store::sqlx::Row;
                    (row.get::<String, _>(0), row.get::<String, _>(1))
                })
            };
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            let holder = loop {
                if let Some(holder) = lease().await {
                    break holder;
                }
                assert!(std::time::Instant::now() < deadline, "no node took the writer's lease");
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            let bases = [app.base.clone(), b.base.clone(), c.base.clone()];
            assert!(bases.contains(&holder.1), "the holder {holder:?} is one of {bases:?}");
            let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
            let (won, short) = rush(&client, &bases, "HOT-4", 1_000).await;
            assert_eq!((won, short), (100, 900), "exactly the 100 units were held through one writer");
            for base in &bases {
                let s = stock_at(&client, base, "HOT-4").await;
                assert_eq!(channel(&s, "web")["available"], 0, "every node reads the writer's holds: {s}");
            }
            // The two other nodes forwarded their holds, and none had to write itself (the
            // counters are the test process's: no other test forwards).
            let metrics = client.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
            let counter = |name: &str| {
                metrics.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok()).unwrap_or(0.0)
            };
            assert!(counter("inventory_forwarded_total") >= 600.0, "{metrics}");
            assert_eq!(counter("inventory_forward_fallbacks_total"), 0.0, "{metrics}");
            // The route between nodes takes bodies larger than the public limit, and only signed.
            let big = vec![b' '; 2 * 1024 * 1024];
            let res = client.post(format!("{}/internal/inventory/apply", app.base)).body(big).send().await.unwrap();
            assert_problem(res, 401).await;
            // The first node stops (it gives the lease up if it held it): the others go on.
            let token = crate::helpers::token(Role::Service);
            let more = json!({"location_id": "WH-4", "lines": [{"sku_id": "HOT-4", "quantity": 10, "lot": {"code": "L3", "expires_on": "2031-01-01"}}]});
            app.stop().await;
            if holder.1 == app.base {
                // It held the lease: another node takes it at its next renewal (a third of the
                // 10 s lease), and the last one learns of it at its own.
                let deadline = std::time::Instant::now() + Duration::from_secs(20);
                while lease().await.is_some_and(|(_, url)| url == app.base) {
                    assert!(std::time::Instant::now() < deadline, "nobody took the lease over");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(Duration::from_millis(3_500)).await;
            }
            // A write answered "unconfirmed" (503) is retried with its key, as a client would.
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                let post = client.post(b.url("/v1/inventory/receipts")).header("Idempotency-Key", "more-hot-4");
                let res = post.bearer_auth(&token).json(&more).send().await.unwrap();
                if res.status() != 503 || std::time::Instant::now() > deadline {
                    // 200 when a try answered 503 had been applied (the key's first outcome).
                    let status = res.status().as_u16();
                    assert!(status == 201 || status == 200, "{status}: {}", res.text().await.unwrap());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let (won, short) = rush(&client, &bases[1..], "HOT-4", 100).await;
            assert_eq!((won, short), (10, 90), "the two nodes left held exactly the 10 new units");
            b.stop().await;
            c.stop().await;
        }
    }
}

mod webhooks {
    //! Availability pushed to a webhook: signed, retried after a failure, dead-lettered after the
    //! last try.

    use std::sync::{Arc, Mutex};

    use axum::http::{HeaderMap, StatusCode};
    use hmac::{Hmac, Mac};

    use super::*;
    use crate::helpers::{Backend, spawn_with};

    type Received = Arc<Mutex<Vec<(HeaderMap, String)>>>;

    /// A receiver at `/ok` (fails its first call, then accepts) and `/down` (always fails).
    async fn receiver() -> (String, Received) {
        let got: Received = Arc::default();
        let ok = got.clone();
        let app = axum::Router::new()
            .route(
                "/ok",
                axum::routing::post(move |headers: HeaderMap, body: String| {
                    let got = ok.clone();
                    async move {
                        let mut got = got.lock().unwrap();
                        got.push((headers, body));
                        if got.len() == 1 { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::NO_CONTENT }
                    }
                }),
            )
            .route("/down", axum::routing::post(|| async { StatusCode::SERVICE_UNAVAILABLE }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (base, got)
    }

    async fn run(backend: Backend) {
        let Some(app) = spawn_with(backend, |c| {
            c.inventory.webhook_attempts = 3;
            c.inventory.webhook_first_backoff_ms = 100;
        })
        .await
        else {
            return;
        };
        let (hooks, got) = receiver().await;
        let sku_id = app.product_with_sku("HOOK-1").await;
        location(&app, &warehouse("WH-H")).await;
        let secret = "a-receiver-secret-0123456789";
        let body = json!({"url": format!("{hooks}/ok"), "channels": ["web", "app"], "secret": secret});
        let hook = json_of(app.post_json("/v1/webhooks", Role::Admin, &body).await, 201).await;
        assert_eq!(hook["secret"], secret, "shown once, when created");
        let down = json!({"url": format!("{hooks}/down"), "channels": ["web"]});
        let down = json_of(app.post_json("/v1/webhooks", Role::Admin, &down).await, 201).await;
        let listed = json_of(app.get("/v1/webhooks", Role::Admin).await, 200).await;
        assert!(listed.as_array().unwrap().iter().all(|h| h.get("secret").is_none()), "{listed}");
        for bad in [json!({"url": "ftp://x", "channels": ["web"]}), json!({"url": "http://x", "channels": ["fax"]})] {
            assert_problem(app.post_json("/v1/webhooks", Role::Admin, &bad).await, 422).await;
        }
        assert_problem(app.post_json("/v1/webhooks", Role::Merchandiser, &body).await, 403).await;

        json_of(receive(&app, "WH-H", "HOOK-1", 10, "L1", "2031-01-01").await, 201).await;
        // The first call failed; the retry carries the same delivery and a valid signature.
        let started = std::time::Instant::now();
        let calls = loop {
            let calls = got.lock().unwrap().clone();
            if calls.len() >= 2 {
                break calls;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "no retried delivery: {calls:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let (headers, text) = &calls[1];
        let sent: Value = serde_json::from_str(text).unwrap();
        assert_eq!(sent["type"], "inventory.availability");
        assert_eq!(sent["sku_id"], sku_id.as_str());
        assert_eq!(sent["channels"], json!({"web": 10, "app": 10}), "{sent}");
        assert!(sent["sequence"].as_u64().unwrap() >= 1);
        let first: Value = serde_json::from_str(&calls[0].1).unwrap();
        assert_eq!(first["delivery_id"], sent["delivery_id"], "a retry is the same delivery");
        let signature = headers["dermis-signature"].to_str().unwrap();
        let (t, v1) = signature.split_once(',').unwrap();
        let t = t.strip_prefix("t=").unwrap();
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.{text}").as_bytes());
        assert_eq!(v1.strip_prefix("v1=").unwrap(), hex::encode(mac.finalize().into_bytes()), "signed");

        // The receiver that is down gets three tries, then the delivery is dead.
        let path = format!("/v1/webhooks/{}/dead-letters", down["id"].as_str().unwrap());
        let dead = loop {
            let dead = json_of(app.get(&path, Role::Admin).await, 200).await;
            if !dead.as_array().unwrap().is_empty() {
                break dead;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "never dead-lettered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(dead[0]["attempts"], 3, "{dead}");
        assert!(dead[0]["last_error"].as_str().unwrap().contains("503"), "{dead}");
        let gone = format!("/v1/webhooks/{}", down["id"].as_str().unwrap());
        assert_eq!(app.request(Method::DELETE, &gone, Some(Role::Admin)).send().await.unwrap().status(), 204);
        assert_problem(app.request(Method::DELETE, &gone, Some(Role::Admin)).send().await.unwrap(), 404).await;
    }

    mod sqlite {
        #[tokio::test]
        async fn availability_is_pushed_signed_retried_and_dead_lettered() {
            super::run(super::Backend::Sqlite).await;
        }
    }

    mod postgres {
        #[tokio::test]
        async fn availability_is_pushed_signed_retried_and_dead_lettered() {
            super::run(super::Backend::Postgres).await;
        }
    }
}
