//! Orders through the real server, with the stock checked in the inventory at each step: a cart
//! checked out (a hold split over two locations), paid (committed), shipped in two parts, partly
//! returned into quarantine; payments that place or cancel, repeated callbacks that change
//! nothing; an unpaid checkout that expires and gives its units back; POS and marketplace
//! orders; bad input that is a problem+json and leaves the ledger as it was; customers who see
//! only their own; an erased customer's orders that keep the sale and lose the person.

use std::time::{Duration, Instant};

use dermis_auth::Role;
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, json_of, token_for};

crate::both_backends!(
    an_order_is_held_paid_shipped_in_parts_and_returned,
    payments_place_or_cancel_and_unpaid_checkouts_expire,
    pos_and_marketplace_orders_and_bad_input_change_nothing,
    an_erased_customer_leaves_the_sale_without_the_person,
    concurrent_repeats_move_stock_once,
);

/// A location selling on web, app, pos and a marketplace; its id.
async fn location(app: &TestApp, code: &str, kind: &str, latitude: f64) -> String {
    let body = json!({"code": code, "name": format!("Location {code}"), "kind": kind, "latitude": latitude,
        "longitude": 13.4, "channels": ["web", "app", "pos", "marketplace:zalando"]});
    json_of(app.post_json("/v1/locations", Role::Admin, &body).await, 201).await["id"].as_str().unwrap().to_owned()
}

async fn receive(app: &TestApp, location: &str, sku: &str, quantity: i64) {
    let body = json!({"location_id": location, "lines": [{"sku_id": sku, "quantity": quantity,
        "lot": {"code": format!("L-{location}"), "expires_on": "2031-01-31"}}]});
    json_of(app.post_json("/v1/inventory/receipts", Role::Service, &body).await, 201).await;
}

async fn stock(app: &TestApp, sku: &str) -> Value {
    json_of(app.get(&format!("/v1/inventory/{sku}"), Role::Merchandiser).await, 200).await
}

/// A figure of one location's stock.
fn at(stock: &Value, location: &str, figure: &str) -> i64 {
    let found = stock["locations"].as_array().unwrap().iter().find(|l| l["location_id"] == location);
    found.map_or(0, |l| l[figure].as_i64().unwrap())
}

fn available(stock: &Value, channel: &str) -> i64 {
    let found = stock["channels"].as_array().unwrap().iter().find(|c| c["channel"] == channel);
    found.map_or(0, |c| c["available"].as_i64().unwrap())
}

fn customer(sub: &str) -> String {
    token_for(Role::Customer, sub, None)
}

async fn as_token(app: &TestApp, method: Method, path: &str, token: &str, body: Option<&Value>) -> Response {
    let rb = app.client.request(method, app.url(path)).bearer_auth(token);
    let rb = match body {
        Some(b) => rb.json(b),
        None => rb,
    };
    rb.send().await.unwrap()
}

async fn post(app: &TestApp, path: &str, role: Role, body: &Value) -> Response {
    app.post_json(path, role, body).await
}

fn pay(event: &str, reference: &str, amount_minor: i64) -> Value {
    json!({"event": event, "provider_reference": reference, "amount_minor": amount_minor, "currency": "EUR"})
}

/// A cart (as the service) for `customer_id`, checked out; the order.
async fn checked_out(app: &TestApp, sku: &str, quantity: i64, customer_id: &str, ttl: u64) -> Value {
    let cart = json!({"channel": "web", "customer_id": customer_id, "lines": [{"sku_id": sku, "quantity": quantity}]});
    let cart = json_of(post(app, "/v1/carts", Role::Service, &cart).await, 201).await;
    let path = format!("/v1/carts/{}/checkout", cart["id"].as_str().unwrap());
    json_of(post(app, &path, Role::Service, &json!({"ttl_seconds": ttl})).await, 201).await
}

async fn an_order_is_held_paid_shipped_in_parts_and_returned(app: TestApp) {
    let sku_id = app.product_with_sku("ORD-1").await;
    let wh = location(&app, "WH-O1", "warehouse", 52.52).await;
    let st = location(&app, "ST-O1", "store", 52.50).await;
    receive(&app, &wh, "ORD-1", 5).await;
    receive(&app, &st, "ORD-1", 3).await;
    assert_eq!(available(&stock(&app, &sku_id).await, "web"), 8);
    let alice = customer("cus_alice");
    let bob = customer("cus_bob");

    // A customer's cart is hers, priced from the catalog; no stock is held yet.
    let cart = json!({"channel": "web", "lines": [{"sku_id": "ORD-1", "quantity": 2}]});
    let cart = json_of(as_token(&app, Method::POST, "/v1/carts", &alice, Some(&cart)).await, 201).await;
    assert_eq!(cart["customer_id"], "cus_alice", "{cart}");
    assert_eq!(cart["status"], "open");
    assert_eq!(cart["total_minor"], 5800, "{cart}");
    assert_eq!(cart["lines"][0]["sku_id"], sku_id.as_str());
    let cart_id = cart["id"].as_str().unwrap().to_owned();
    assert_eq!(available(&stock(&app, &sku_id).await, "web"), 8, "a cart holds nothing");
    // Another customer does not see it, nor may she fill one in another's name.
    assert_problem(as_token(&app, Method::GET, &format!("/v1/carts/{cart_id}"), &bob, None).await, 404).await;
    let theirs = json!({"channel": "web", "customer_id": "cus_alice", "lines": []});
    assert_problem(as_token(&app, Method::POST, "/v1/carts", &bob, Some(&theirs)).await, 403).await;

    // 7 units: more than the warehouse has, so the hold is split over both locations.
    let lines = json!({"lines": [{"sku_id": sku_id, "quantity": 7}]});
    let cart =
        json_of(as_token(&app, Method::PUT, &format!("/v1/carts/{cart_id}/lines"), &alice, Some(&lines)).await, 200)
            .await;
    assert_eq!(cart["total_minor"], 7 * 2900);
    let checkout = format!("/v1/carts/{cart_id}/checkout");
    let order = json_of(as_token(&app, Method::POST, &checkout, &alice, Some(&json!({}))).await, 201).await;
    assert_eq!(order["status"], "checkout", "{order}");
    assert_eq!(order["customer_id"], "cus_alice");
    assert!(order["expires_at"].is_string(), "{order}");
    assert_eq!(order["reservation"]["status"], "held", "{order}");
    let id = order["id"].as_str().unwrap().to_owned();
    let s = stock(&app, &sku_id).await;
    assert_eq!((at(&s, &wh, "reserved"), at(&s, &st, "reserved")), (5, 2), "{s}");
    assert_eq!(available(&s, "web"), 1);
    // Checking out again answers the same order and holds nothing more; the cart is closed.
    let again = json_of(as_token(&app, Method::POST, &checkout, &alice, None).await, 200).await;
    assert_eq!(again["id"], id.as_str());
    assert_eq!(available(&stock(&app, &sku_id).await, "web"), 1);
    let lines_after = as_token(&app, Method::PUT, &format!("/v1/carts/{cart_id}/lines"), &alice, Some(&lines)).await;
    assert_problem(lines_after, 409).await;

    // Nothing ships or comes back before it is placed.
    let ship = format!("/v1/orders/{id}/fulfillments");
    let returns = format!("/v1/orders/{id}/returns");
    assert_problem(post(&app, &ship, Role::Service, &json!({})).await, 409).await;
    let one_back = json!({"location_id": "WH-O1", "lines": [{"sku_id": "ORD-1", "quantity": 1}]});
    assert_problem(post(&app, &returns, Role::Service, &one_back).await, 409).await;

    // Paid: placed, its units committed; the same callback again changes nothing.
    let payments = format!("/v1/orders/{id}/payments");
    let placed = json_of(post(&app, &payments, Role::Service, &pay("authorized", "psp-1", 7 * 2900)).await, 200).await;
    assert_eq!(placed["status"], "placed", "{placed}");
    assert_eq!(placed["payment_status"], "authorized");
    let s = stock(&app, &sku_id).await;
    assert_eq!((at(&s, &wh, "committed"), at(&s, &st, "committed")), (5, 2), "{s}");
    assert_eq!((at(&s, &wh, "reserved"), at(&s, &st, "reserved")), (0, 0), "{s}");
    let repeated =
        json_of(post(&app, &payments, Role::Service, &pay("authorized", "psp-1", 7 * 2900)).await, 200).await;
    assert_eq!(repeated["status"], "placed");
    assert_eq!(repeated["payments"].as_array().unwrap().len(), 1, "{repeated}");
    assert_eq!(stock(&app, &sku_id).await, s, "a repeated callback moved stock");
    let captured = json_of(post(&app, &payments, Role::Service, &pay("captured", "psp-1", 7 * 2900)).await, 200).await;
    assert_eq!(captured["payment_status"], "captured");
    // Only the payment provider's roles may report payments.
    assert_problem(as_token(&app, Method::POST, &payments, &alice, Some(&pay("captured", "x", 7 * 2900))).await, 403)
        .await;
    // A callback for another amount or currency is refused naming the field, and stores nothing.
    let s = stock(&app, &sku_id).await;
    let short = post(&app, &payments, Role::Service, &pay("captured", "psp-2", 7 * 2900 - 1)).await;
    let p = assert_problem(short, 422).await;
    assert_eq!(p["errors"][0]["field"], "amount_minor", "{p}");
    let mut sek = pay("authorized", "psp-2", 7 * 2900);
    sek["currency"] = json!("SEK");
    let p = assert_problem(post(&app, &payments, Role::Service, &sek).await, 422).await;
    assert_eq!(p["errors"][0]["field"], "currency", "{p}");
    // Refunds add up to at most what was captured.
    let refunded = json_of(post(&app, &payments, Role::Service, &pay("refunded", "re-1", 2900)).await, 200).await;
    assert_eq!((refunded["status"].as_str(), refunded["payment_status"].as_str()), (Some("placed"), Some("refunded")));
    let over = post(&app, &payments, Role::Service, &pay("refunded", "re-2", 6 * 2900 + 1)).await;
    let p = assert_problem(over, 422).await;
    assert_eq!(p["errors"][0]["field"], "amount_minor", "{p}");
    json_of(post(&app, &payments, Role::Service, &pay("refunded", "re-2", 6 * 2900)).await, 200).await;
    let order = json_of(app.get(&format!("/v1/orders/{id}"), Role::Admin).await, 200).await;
    assert_eq!(order["payments"].as_array().unwrap().len(), 4, "{order}");
    assert_eq!(stock(&app, &sku_id).await, s, "payments after placing moved stock");

    // Shipped in two parts: the store's units, then the warehouse's; each repeat is the same.
    let part = json_of(post(&app, &ship, Role::Service, &json!({"location_id": "ST-O1"})).await, 201).await;
    assert_eq!(part["status"], "partially_fulfilled", "{part}");
    assert_eq!(part["fulfillments"][0]["lines"][0]["location_id"], st.as_str(), "{part}");
    assert_eq!(part["fulfillments"][0]["lines"][0]["quantity"], 2, "{part}");
    let s = stock(&app, &sku_id).await;
    assert_eq!((at(&s, &wh, "committed"), at(&s, &st, "committed"), at(&s, &st, "on_hand")), (5, 0, 1), "{s}");
    let same = json_of(post(&app, &ship, Role::Service, &json!({"location_id": "ST-O1"})).await, 200).await;
    assert_eq!(same["fulfillments"].as_array().unwrap().len(), 1, "{same}");
    assert_eq!(stock(&app, &sku_id).await, s);
    let done = json_of(post(&app, &ship, Role::Service, &json!({"location_id": wh})).await, 201).await;
    assert_eq!(done["status"], "fulfilled", "{done}");
    assert_eq!(done["fulfillments"].as_array().unwrap().len(), 2);
    let s = stock(&app, &sku_id).await;
    assert_eq!((at(&s, &wh, "committed"), at(&s, &wh, "on_hand")), (0, 0), "{s}");
    // A store associate of another store does not ship from here; a shipped order is not cancelled.
    let elsewhere = token_for(Role::StoreAssociate, "till-9", Some("ST-ELSEWHERE"));
    let res = as_token(&app, Method::POST, &ship, &elsewhere, Some(&json!({"location_id": "ST-O1"}))).await;
    assert_problem(res, 403).await;
    assert_problem(as_token(&app, Method::POST, &format!("/v1/orders/{id}/cancel"), &alice, None).await, 409).await;

    // One unit back at the warehouse: into quarantine; the same return again books nothing.
    let back = json_of(post(&app, &returns, Role::Service, &one_back).await, 201).await;
    assert_eq!(back["status"], "partially_returned", "{back}");
    assert_eq!(back["returns"][0]["lines"][0]["quantity"], 1, "{back}");
    let s = stock(&app, &sku_id).await;
    assert_eq!(at(&s, &wh, "quarantine"), 1, "{s}");
    assert_eq!(available(&s, "web"), 1, "returned units are not for sale: {s}");
    json_of(post(&app, &returns, Role::Service, &one_back).await, 200).await;
    assert_eq!(stock(&app, &sku_id).await, s);
    // More than was shipped: a conflict, the ledger unchanged.
    let too_many = json!({"location_id": "WH-O1", "lines": [{"sku_id": "ORD-1", "quantity": 10}]});
    assert_problem(post(&app, &returns, Role::Service, &too_many).await, 409).await;
    assert_eq!(stock(&app, &sku_id).await, s);
    // The rest comes back too (a second return of its own): returned.
    let rest = json!({"location_id": "ST-O1", "lines": [{"sku_id": "ORD-1", "quantity": 6}]});
    let all_back = json_of(post(&app, &returns, Role::Service, &rest).await, 201).await;
    assert_eq!(all_back["status"], "returned", "{all_back}");
    let s = stock(&app, &sku_id).await;
    assert_eq!((at(&s, &wh, "quarantine"), at(&s, &st, "quarantine")), (1, 6), "{s}");

    // Customers read only their own orders: another's is 404, and their listings differ.
    let own = json_of(as_token(&app, Method::GET, &format!("/v1/orders/{id}"), &alice, None).await, 200).await;
    assert_eq!(own["status"], "returned");
    assert_problem(as_token(&app, Method::GET, &format!("/v1/orders/{id}"), &bob, None).await, 404).await;
    let mine = json_of(as_token(&app, Method::GET, "/v1/orders", &alice, None).await, 200).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine["items"][0]["id"], id.as_str());
    let his = json_of(as_token(&app, Method::GET, "/v1/orders", &bob, None).await, 200).await;
    assert_eq!(his["items"], json!([]), "{his}");
    assert_problem(as_token(&app, Method::GET, "/v1/orders?customer_id=cus_alice", &bob, None).await, 403).await;
    let by_staff = json_of(app.get("/v1/orders?customer_id=cus_alice&limit=1", Role::Admin).await, 200).await;
    assert_eq!(by_staff["items"][0]["id"], id.as_str());
    assert_problem(app.get(&format!("/v1/orders/{id}"), Role::Dermatologist).await, 403).await;
}

async fn payments_place_or_cancel_and_unpaid_checkouts_expire(app: TestApp) {
    let sku_id = app.product_with_sku("ORD-2").await;
    let wh = location(&app, "WH-O2", "warehouse", 50.0).await;
    receive(&app, &wh, "ORD-2", 10).await;

    // A failed payment cancels the checkout: its units are available again.
    let order = checked_out(&app, "ORD-2", 3, "cus_p", 600).await;
    let id = order["id"].as_str().unwrap();
    assert_eq!(available(&stock(&app, &sku_id).await, "web"), 7);
    let payments = format!("/v1/orders/{id}/payments");
    let failed = json_of(post(&app, &payments, Role::Service, &pay("failed", "psp-f", 3 * 2900)).await, 200).await;
    assert_eq!(failed["status"], "cancelled", "{failed}");
    assert_eq!(failed["payment_status"], "failed");
    assert_eq!(available(&stock(&app, &sku_id).await, "web"), 10);
    let again = json_of(post(&app, &payments, Role::Service, &pay("failed", "psp-f", 3 * 2900)).await, 200).await;
    assert_eq!(again["status"], "cancelled");
    // An authorization after the cancellation is recorded, but does not revive it.
    assert_problem(post(&app, &payments, Role::Service, &pay("authorized", "psp-late", 3 * 2900)).await, 409).await;
    assert_eq!(available(&stock(&app, &sku_id).await, "web"), 10);

    // Card data is refused before anything is read: no payment recorded, nothing moved.
    let order = checked_out(&app, "ORD-2", 2, "cus_p", 600).await;
    let id = order["id"].as_str().unwrap().to_owned();
    let payments = format!("/v1/orders/{id}/payments");
    let s = stock(&app, &sku_id).await;
    let mut card = pay("captured", "psp-c", 2 * 2900);
    card["card_number"] = json!("4111111111111111");
    let p = assert_problem(post(&app, &payments, Role::Service, &card).await, 422).await;
    assert_eq!(p["errors"][0]["field"], "card_number", "{p}");
    for bad in [
        json!({"event": "authorized", "provider_reference": "x", "amount_minor": 1, "currency": "eur"}),
        json!({"event": "authorized", "provider_reference": "", "amount_minor": 1, "currency": "EUR"}),
        json!({"event": "authorized", "provider_reference": "x", "amount_minor": -1, "currency": "EUR"}),
        json!({"event": "paid", "provider_reference": "x", "amount_minor": 1, "currency": "EUR"}),
    ] {
        assert_problem(post(&app, &payments, Role::Service, &bad).await, 422).await;
    }
    let unchanged = json_of(app.get(&format!("/v1/orders/{id}"), Role::Admin).await, 200).await;
    assert_eq!(unchanged["status"], "checkout");
    assert_eq!(unchanged["payments"], json!([]), "{unchanged}");
    assert_eq!(stock(&app, &sku_id).await, s);
    assert_problem(
        post(&app, "/v1/orders/ord_nope/payments", Role::Service, &pay("captured", "x", 7 * 2900)).await,
        404,
    )
    .await;
    // The customer cancels her own checkout; cancelling again answers the same.
    let cancel = format!("/v1/orders/{id}/cancel");
    let p_token = customer("cus_p");
    let cancelled = json_of(as_token(&app, Method::POST, &cancel, &p_token, None).await, 200).await;
    assert_eq!(cancelled["status"], "cancelled");
    json_of(as_token(&app, Method::POST, &cancel, &p_token, None).await, 200).await;
    assert_eq!(available(&stock(&app, &sku_id).await, "web"), 10);

    // Unpaid, a short hold expires by itself: the order reads as expired, the units are back,
    // and neither a late authorization nor a cancellation changes that.
    let brief = checked_out(&app, "ORD-2", 4, "cus_p", 1).await;
    let brief_id = brief["id"].as_str().unwrap();
    assert_eq!(available(&stock(&app, &sku_id).await, "web"), 6);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let expired = json_of(app.get(&format!("/v1/orders/{brief_id}"), Role::Admin).await, 200).await;
    assert_eq!(expired["status"], "expired", "{expired}");
    assert_eq!(available(&stock(&app, &sku_id).await, "web"), 10);
    let late =
        post(&app, &format!("/v1/orders/{brief_id}/payments"), Role::Service, &pay("captured", "psp-x", 4 * 2900))
            .await;
    assert_problem(late, 409).await;
    assert_problem(post(&app, &format!("/v1/orders/{brief_id}/cancel"), Role::Service, &json!({})).await, 409).await;
    let listed = json_of(app.get("/v1/orders?customer_id=cus_p", Role::Admin).await, 200).await;
    let statuses: Vec<&str> =
        listed["items"].as_array().unwrap().iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["cancelled", "cancelled", "expired"], "{listed}");

    // Captured on a live checkout places it.
    let order = checked_out(&app, "ORD-2", 1, "cus_p", 600).await;
    let path = format!("/v1/orders/{}/payments", order["id"].as_str().unwrap());
    let placed = json_of(post(&app, &path, Role::Service, &pay("captured", "psp-ok", 2900)).await, 200).await;
    assert_eq!(placed["status"], "placed");
    assert_eq!(at(&stock(&app, &sku_id).await, &wh, "committed"), 1);
}

async fn pos_and_marketplace_orders_and_bad_input_change_nothing(app: TestApp) {
    let sku_id = app.product_with_sku("ORD-3").await;
    let wh = location(&app, "WH-O3", "warehouse", 51.0).await;
    let st = location(&app, "ST-O3", "store", 52.0).await;
    receive(&app, &wh, "ORD-3", 10).await;
    receive(&app, &st, "ORD-3", 4).await;

    // A till sale enters as a placed order at its store, once per receipt.
    let till = token_for(Role::StoreAssociate, "till-1", Some("ST-O3"));
    let sale = json!({"channel": "pos", "external_id": "R-1", "location_id": "ST-O3",
        "lines": [{"sku_id": "ORD-3", "quantity": 2}]});
    let pos = json_of(as_token(&app, Method::POST, "/v1/orders", &till, Some(&sale)).await, 201).await;
    assert_eq!(pos["status"], "placed", "{pos}");
    assert_eq!(pos["channel"], "pos");
    assert_eq!(pos["external_id"], "R-1");
    let s = stock(&app, &sku_id).await;
    assert_eq!(at(&s, &st, "committed"), 2, "{s}");
    let again = json_of(as_token(&app, Method::POST, "/v1/orders", &till, Some(&sale)).await, 200).await;
    assert_eq!(again["id"], pos["id"]);
    assert_eq!(stock(&app, &sku_id).await, s, "a repeated POS order moved stock");
    let mut other = sale.clone();
    other["lines"][0]["quantity"] = json!(3);
    assert_problem(as_token(&app, Method::POST, "/v1/orders", &till, Some(&other)).await, 409).await;
    let elsewhere = token_for(Role::StoreAssociate, "till-9", Some("ST-ELSEWHERE"));
    assert_problem(as_token(&app, Method::POST, "/v1/orders", &elsewhere, Some(&sale)).await, 403).await;
    // Shipped (handed over) at the till.
    let hand_over = format!("/v1/orders/{}/fulfillments", pos["id"].as_str().unwrap());
    let handed = json_of(post(&app, &hand_over, Role::Service, &json!({})).await, 201).await;
    assert_eq!(handed["status"], "fulfilled", "{handed}");

    // A marketplace order, the same way.
    let market = json!({"channel": "marketplace:zalando", "external_id": "Z-77", "customer_id": "cus_m",
        "lines": [{"sku_id": sku_id, "quantity": 3}]});
    let z = json_of(post(&app, "/v1/orders", Role::Service, &market).await, 201).await;
    assert_eq!(z["status"], "placed", "{z}");
    assert_eq!(z["total_minor"], 3 * 2900);
    let s = stock(&app, &sku_id).await;
    assert_eq!(at(&s, &wh, "committed") + at(&s, &st, "committed"), 3, "{s}");

    // Bad input: problem+json each time, and the ledger exactly as it was.
    let before = stock(&app, &sku_id).await;
    for (body, status) in [
        (json!({"channel": "web", "lines": [{"sku_id": "ORD-3", "quantity": 0}]}), 422),
        (json!({"channel": "web", "lines": [{"sku_id": "ORD-3", "quantity": -2}]}), 422),
        (json!({"channel": "web", "lines": [{"sku_id": "NOPE", "quantity": 1}]}), 422),
        (json!({"channel": "fax", "lines": [{"sku_id": "ORD-3", "quantity": 1}]}), 422),
        (json!({"channel": "web", "location_id": "nowhere", "lines": [{"sku_id": "ORD-3", "quantity": 1}]}), 422),
        (json!({"channel": "web", "lines": [{"sku_id": "ORD-3", "quantity": "one"}]}), 422),
        (json!({"channel": "web"}), 422),
    ] {
        assert_problem(post(&app, "/v1/carts", Role::Service, &body).await, status).await;
    }
    for (body, status) in [
        (
            json!({"channel": "pos", "external_id": "R-2", "location_id": "ST-O3", "lines": [{"sku_id": "ORD-3", "quantity": 0}]}),
            422,
        ),
        (json!({"channel": "pos", "external_id": "R-3", "location_id": "ST-O3", "lines": []}), 422),
        (
            json!({"channel": "pos", "external_id": "", "location_id": "ST-O3", "lines": [{"sku_id": "ORD-3", "quantity": 1}]}),
            422,
        ),
        (json!({"channel": "pos", "external_id": "R-4", "lines": [{"sku_id": "NOPE", "quantity": 1}]}), 422),
        (
            json!({"channel": "pos", "external_id": "R-5", "location_id": "ST-O3", "lines": [{"sku_id": "ORD-3", "quantity": 500}]}),
            409,
        ),
    ] {
        assert_problem(post(&app, "/v1/orders", Role::Service, &body).await, status).await;
    }
    // A cart wanting more than there is: a 409 naming the line, the cart still open.
    let cart = json!({"channel": "web", "lines": [{"sku_id": "ORD-3", "quantity": 50}]});
    let cart = json_of(post(&app, "/v1/carts", Role::Service, &cart).await, 201).await;
    let cart_id = cart["id"].as_str().unwrap();
    let short =
        assert_problem(post(&app, &format!("/v1/carts/{cart_id}/checkout"), Role::Service, &json!({})).await, 409)
            .await;
    assert!(short["detail"].as_str().unwrap().contains(&sku_id), "{short}");
    assert!(short["errors"][0]["field"].as_str().unwrap().contains(&sku_id), "{short}");
    let still = json_of(app.get(&format!("/v1/carts/{cart_id}"), Role::Service).await, 200).await;
    assert_eq!(still["status"], "open");
    let ttl0 = post(&app, &format!("/v1/carts/{cart_id}/checkout"), Role::Service, &json!({"ttl_seconds": 0})).await;
    assert_problem(ttl0, 422).await;
    let empty =
        json_of(post(&app, "/v1/carts", Role::Service, &json!({"channel": "web", "lines": []})).await, 201).await;
    let path = format!("/v1/carts/{}/checkout", empty["id"].as_str().unwrap());
    assert_problem(post(&app, &path, Role::Service, &json!({})).await, 422).await;
    assert_problem(post(&app, "/v1/carts/crt_nope/checkout", Role::Service, &json!({})).await, 404).await;
    assert_problem(app.get("/v1/orders/ord_nope", Role::Service).await, 404).await;
    assert_problem(post(&app, "/v1/orders/ord_nope/cancel", Role::Service, &json!({})).await, 404).await;
    assert_problem(post(&app, "/v1/orders/ord_nope/fulfillments", Role::Service, &json!({})).await, 404).await;
    // Transitions from the wrong state.
    let z_id = z["id"].as_str().unwrap();
    let back = json!({"location_id": "WH-O3", "lines": [{"sku_id": "ORD-3", "quantity": 1}]});
    assert_problem(post(&app, &format!("/v1/orders/{z_id}/returns"), Role::Service, &back).await, 409).await;
    let nowhere = json!({"location_id": "nowhere"});
    assert_problem(post(&app, &format!("/v1/orders/{z_id}/fulfillments"), Role::Service, &nowhere).await, 422).await;
    assert_eq!(stock(&app, &sku_id).await, before, "refused requests changed the ledger");
    // Cancelling the placed marketplace order gives its units back.
    let cancelled =
        json_of(post(&app, &format!("/v1/orders/{z_id}/cancel"), Role::Service, &json!({})).await, 200).await;
    assert_eq!(cancelled["status"], "cancelled");
    let s = stock(&app, &sku_id).await;
    assert_eq!(at(&s, &wh, "committed") + at(&s, &st, "committed"), 0, "{s}");
    assert_problem(post(&app, &format!("/v1/orders/{z_id}/fulfillments"), Role::Service, &json!({})).await, 409).await;
}

async fn an_erased_customer_leaves_the_sale_without_the_person(app: TestApp) {
    let sku_id = app.product_with_sku("ORD-4").await;
    let wh = location(&app, "WH-O4", "warehouse", 50.0).await;
    receive(&app, &wh, "ORD-4", 10).await;
    let created = json_of(
        post(&app, "/v1/customers", Role::Admin, &json!({"name": "Erin", "user_id": "shop-erin-7c1f"})).await,
        201,
    )
    .await;
    let cid = created["id"].as_str().unwrap().to_owned();
    // She orders as herself (her token's subject is her user id); paid, it is placed.
    let erin = customer("shop-erin-7c1f");
    let cart = json!({"channel": "web", "lines": [{"sku_id": "ORD-4", "quantity": 2}]});
    let cart = json_of(as_token(&app, Method::POST, "/v1/carts", &erin, Some(&cart)).await, 201).await;
    let path = format!("/v1/carts/{}/checkout", cart["id"].as_str().unwrap());
    let order = json_of(as_token(&app, Method::POST, &path, &erin, None).await, 201).await;
    let id = order["id"].as_str().unwrap().to_owned();
    json_of(
        post(&app, &format!("/v1/orders/{id}/payments"), Role::Service, &pay("captured", "psp-e", 2 * 2900)).await,
        200,
    )
    .await;

    // The purchase reached her online features.
    let features = json_of(app.get("/v1/features/customers/shop-erin-7c1f", Role::Admin).await, 200).await;
    let purchases = features["recent_purchases"].as_array().unwrap();
    assert_eq!(purchases.len(), 1, "{features}");
    assert_eq!(features["spend_minor"], 5800, "{features}");

    // Her export lists the order.
    let export = json_of(app.get(&format!("/v1/customers/{cid}/export"), Role::Admin).await, 200).await;
    let orders = export["domains"]["orders"]["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 1, "{export}");
    assert_eq!(orders[0]["id"], id.as_str());
    assert_eq!(orders[0]["status"], "placed");

    // Erased: the order stays (lines, amounts, channel) without her id, in the rows themselves.
    let res = app.request(Method::DELETE, &format!("/v1/customers/{cid}"), Some(Role::Admin)).send().await.unwrap();
    let erasure = res.headers()["location"].to_str().unwrap().to_owned();
    json_of(res, 202).await;
    let started = Instant::now();
    loop {
        let e = json_of(app.get(&erasure, Role::Admin).await, 200).await;
        if e["status"] == "completed" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the erasure never completed: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    use dermis_store::sqlx::{self, Row};
    let db = app.test_db.db();
    let rows = sqlx::query("SELECT customer_id, channel, total_minor, lines FROM orders")
        .fetch_all(db.reader())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "the sales record stays");
    let customer: Option<String> = rows[0].get(0);
    assert_eq!(customer, None, "the order still names her");
    assert_eq!(rows[0].get::<String, _>(1), "web");
    assert_eq!(rows[0].get::<i64, _>(2), 5800);
    assert!(rows[0].get::<String, _>(3).contains(&sku_id));
    let carts = sqlx::query("SELECT customer_id FROM carts").fetch_all(db.reader()).await.unwrap();
    assert!(carts.iter().all(|r| r.get::<Option<String>, _>(0).is_none()), "a cart still names her");
    for table in ["orders", "carts", "order_payments", "order_movements"] {
        let all = sqlx::query(&format!("SELECT * FROM {table}")).fetch_all(db.reader()).await.unwrap();
        for row in &all {
            for i in 0..row.len() {
                let text: Option<String> = row.try_get(i).ok().flatten();
                assert!(
                    !text.as_deref().is_some_and(|t| t.contains("shop-erin-7c1f") || t.contains(&cid)),
                    "{table} still holds her id: {text:?}"
                );
            }
        }
    }
    // On SQLite, no file of the store holds the id her orders were made under any more (old
    // row images included).
    if let Some(dir) = app.test_db.data_dir() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if !path.is_file() {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            // (Her customer id, which orders never held, may stay in other domains' records.)
            let needle = "shop-erin-7c1f";
            let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
            assert!(!found, "{} holds {needle}", path.display());
        }
    }
    let kept = json_of(app.get(&format!("/v1/orders/{id}"), Role::Admin).await, 200).await;
    assert_eq!(kept["status"], "placed");
    assert!(kept.get("customer_id").is_none(), "{kept}");
    assert_eq!(at(&stock(&app, &sku_id).await, &wh, "committed"), 2, "the ledger keeps the order's units");
}

/// The same checkout, callback, POS order and shipment sent many times at once: each moves
/// stock once and every answer names the same order.
async fn concurrent_repeats_move_stock_once(app: TestApp) {
    let sku_id = app.product_with_sku("ORD-5").await;
    let wh = location(&app, "WH-O5", "warehouse", 50.0).await;
    receive(&app, &wh, "ORD-5", 20).await;
    let token = crate::helpers::token(Role::Service);
    let burst = |path: String, body: Value| {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..12 {
            let request = app.client.post(app.url(&path)).bearer_auth(&token).json(&body);
            tasks.spawn(async move {
                let res = request.send().await.unwrap();
                let status = res.status().as_u16();
                (status, res.json::<Value>().await.unwrap())
            });
        }
        tasks
    };
    let answers = |mut tasks: tokio::task::JoinSet<(u16, Value)>| async move {
        let mut out = Vec::new();
        while let Some(done) = tasks.join_next().await {
            out.push(done.unwrap());
        }
        out
    };
    let cart = json!({"channel": "web", "lines": [{"sku_id": "ORD-5", "quantity": 3}]});
    let cart = json_of(post(&app, "/v1/carts", Role::Service, &cart).await, 201).await;
    let got = answers(burst(format!("/v1/carts/{}/checkout", cart["id"].as_str().unwrap()), json!({}))).await;
    assert_eq!(got.iter().filter(|(s, _)| *s == 201).count(), 1, "{got:?}");
    assert!(got.iter().all(|(s, o)| (*s == 201 || *s == 200) && o["id"] == got[0].1["id"]), "{got:?}");
    let id = got[0].1["id"].as_str().unwrap().to_owned();
    assert_eq!(at(&stock(&app, &sku_id).await, &wh, "reserved"), 3);

    let got = answers(burst(format!("/v1/orders/{id}/payments"), pay("captured", "psp-burst", 3 * 2900))).await;
    assert!(got.iter().all(|(s, o)| *s == 200 && o["status"] == "placed"), "{got:?}");
    let order = json_of(app.get(&format!("/v1/orders/{id}"), Role::Admin).await, 200).await;
    assert_eq!(order["payments"].as_array().unwrap().len(), 1, "{order}");
    assert_eq!(at(&stock(&app, &sku_id).await, &wh, "committed"), 3);

    let got = answers(burst(format!("/v1/orders/{id}/fulfillments"), json!({}))).await;
    assert_eq!(got.iter().filter(|(s, _)| *s == 201).count(), 1, "{got:?}");
    assert!(got.iter().all(|(s, o)| (*s == 201 || *s == 200) && o["status"] == "fulfilled"), "{got:?}");
    let s = stock(&app, &sku_id).await;
    assert_eq!((at(&s, &wh, "committed"), at(&s, &wh, "on_hand")), (0, 17), "{s}");

    let sale = json!({"channel": "pos", "external_id": "R-BURST", "location_id": "WH-O5",
        "lines": [{"sku_id": "ORD-5", "quantity": 2}]});
    let got = answers(burst("/v1/orders".to_owned(), sale)).await;
    assert_eq!(got.iter().filter(|(s, _)| *s == 201).count(), 1, "{got:?}");
    assert!(got.iter().all(|(s, o)| (*s == 201 || *s == 200) && o["id"] == got[0].1["id"]), "{got:?}");
    assert_eq!(at(&stock(&app, &sku_id).await, &wh, "committed"), 2);
}
