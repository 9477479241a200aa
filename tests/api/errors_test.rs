//! Malformed, mistyped, incomplete, oversized and random input to every write route: always a
//! 4xx problem+json, never a 5xx, and nothing stored is lost.

use dermis_auth::Role;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

struct Route {
    method: Method,
    path: String,
    valid: Value,
    /// A member the route cannot do without (none for merge patches).
    required: Option<&'static str>,
}

async fn write_routes(app: &TestApp) -> Vec<Route> {
    let p = app.create_product(json!({"name": "Fuzz Cream", "brand": "B"})).await;
    let pid = p["id"].as_str().unwrap().to_owned();
    let s = app.create_sku(&pid, json!({"code": "FZ-1", "price": {"amount_minor": 100, "currency": "EUR"}})).await;
    let sid = s["id"].as_str().unwrap().to_owned();
    vec![
        Route {
            method: Method::POST,
            path: "/v1/products".into(),
            valid: json!({"name": "N", "brand": "B", "external_id": "E1", "category": "C", "description": "D", "ingredients": "Aqua"}),
            required: Some("brand"),
        },
        Route {
            method: Method::PATCH,
            path: format!("/v1/products/{pid}"),
            valid: json!({"name": "N2", "category": null, "status": "active"}),
            required: None,
        },
        Route {
            method: Method::POST,
            path: format!("/v1/products/{pid}/skus"),
            valid: json!({"code": "C-9", "barcode": "4006381333931", "variant": {"size": "50 mL"}, "price": {"amount_minor": 1250, "currency": "EUR"}}),
            required: Some("price"),
        },
        Route {
            method: Method::PATCH,
            path: format!("/v1/products/{pid}/skus/{sid}"),
            valid: json!({"price": {"amount_minor": 1300, "currency": "EUR"}, "barcode": null}),
            required: None,
        },
        Route {
            method: Method::POST,
            path: "/v1/api-keys".into(),
            valid: json!({"name": "svc", "role": "service"}),
            required: Some("role"),
        },
    ]
}

fn hostile_bodies(valid: &Value, required: Option<&str>) -> Vec<(&'static str, Vec<u8>)> {
    let obj = valid.as_object().unwrap();
    let mut wrong_types = Vec::new();
    for (k, v) in obj {
        let wrong = match v {
            Value::String(_) => json!(12345),
            Value::Number(_) => json!("twelve"),
            Value::Object(_) => json!([1, 2]),
            Value::Null => json!({"x": 1}),
            _ => json!("x"),
        };
        let mut o = obj.clone();
        o.insert(k.clone(), wrong);
        wrong_types.push(serde_json::to_vec(&o).unwrap());
    }
    let mut missing = obj.clone();
    if let Some(field) = required {
        missing.remove(field);
    }
    let mut unknown = obj.clone();
    unknown.insert("definitely_not_a_field".into(), json!(true));
    let mut bodies: Vec<(&'static str, Vec<u8>)> = vec![
        ("malformed", b"{\"name\": \"x\",".to_vec()),
        ("trailing garbage", [serde_json::to_vec(valid).unwrap(), b"}}".to_vec()].concat()),
        ("empty", Vec::new()),
        ("null", b"null".to_vec()),
        ("array", b"[1,2,3]".to_vec()),
        ("string", b"\"hello\"".to_vec()),
        ("invalid utf-8", b"{\"name\": \"\xff\xfe\"}".to_vec()),
        ("deep nesting", format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes()),
        ("missing field", serde_json::to_vec(&missing).unwrap()),
        ("unknown field", serde_json::to_vec(&unknown).unwrap()),
        ("huge number", br#"{"price": {"amount_minor": 99999999999999999999999999999, "currency": "EUR"}, "name": 1e400, "code": -1e400}"#.to_vec()),
        ("negative price", br#"{"code": "X", "price": {"amount_minor": -5, "currency": "EUR"}}"#.to_vec()),
        ("huge string", serde_json::to_vec(&json!({"name": "x".repeat(900_000), "brand": "b", "code": "c", "role": "service"})).unwrap()),
        ("huge body", vec![b' '; 3 * 1024 * 1024]),
        ("control chars", serde_json::to_vec(&json!({"name": "a\u{0}b", "brand": "\u{7}", "code": "\u{1b}", "role": "service"})).unwrap()),
    ];
    bodies.extend(wrong_types.into_iter().map(|b| ("wrong type", b)));
    bodies
}

fn assert_4xx_problem(what: &str, route: &Route, status: u16, content_type: Option<&str>) {
    assert!((400..500).contains(&status), "{what} to {} {} answered {status}", route.method, route.path);
    assert_eq!(content_type, Some("application/problem+json"), "{what} to {} {}", route.method, route.path);
}

#[tokio::test]
async fn hostile_bodies_on_every_write_route_are_4xx_problems() {
    let app = spawn_app().await;
    let routes = write_routes(&app).await;
    let before: Value = app.get("/v1/products?limit=500", Role::Admin).await.json().await.unwrap();
    for route in &routes {
        for (what, body) in hostile_bodies(&route.valid, route.required) {
            if what == "missing field" && route.required.is_none() {
                continue; // every member of a merge patch is optional
            }
            let res = app
                .request(route.method.clone(), &route.path, Some(Role::Admin))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{what} to {}: {e}", route.path));
            let (status, ct) =
                (res.status().as_u16(), res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()));
            let text = res.text().await.unwrap();
            assert_4xx_problem(what, route, status, ct.as_deref());
            let problem: Value = serde_json::from_str(&text).unwrap();
            if matches!(what, "missing field" | "unknown field" | "wrong type") && status == 422 {
                assert!(problem["errors"][0]["field"].is_string(), "{what}: {problem}");
            }
        }
        for (ct, body) in
            [(None, "{}"), (Some("text/plain"), "{}"), (Some("application/x-www-form-urlencoded"), "name=x")]
        {
            let mut rb = app.request(route.method.clone(), &route.path, Some(Role::Admin)).body(body);
            if let Some(ct) = ct {
                rb = rb.header("content-type", ct);
            }
            let res = rb.send().await.unwrap();
            assert_eq!(res.status(), 415, "{ct:?} to {}", route.path);
        }
    }
    // Nothing stored was lost or changed by the rejected requests.
    let after: Value = app.get("/v1/products?limit=500", Role::Admin).await.json().await.unwrap();
    assert_eq!(before, after);
}

#[tokio::test]
async fn random_mutations_of_valid_bodies_never_cause_5xx() {
    let app = spawn_app().await;
    let routes = write_routes(&app).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x0de7_0415);
    const ALPHABET: &[u8] = b"{}[]\",:0123456789-+.eE truefalsnul\\\x00\xff";
    for route in &routes {
        let valid = serde_json::to_vec(&route.valid).unwrap();
        for _ in 0..150 {
            let mut body = valid.clone();
            for _ in 0..rng.gen_range(1..6) {
                let i = rng.gen_range(0..=body.len());
                match rng.gen_range(0..4) {
                    0 if i < body.len() => {
                        body.remove(i);
                    }
                    1 => body.insert(i, ALPHABET[rng.gen_range(0..ALPHABET.len())]),
                    2 if i < body.len() => body[i] = ALPHABET[rng.gen_range(0..ALPHABET.len())],
                    _ => {
                        let j = rng.gen_range(0..=body.len());
                        let (a, b) = (i.min(j), i.max(j));
                        let chunk = body[a..b].to_vec();
                        body.splice(a..a, chunk);
                    }
                }
            }
            let res = app
                .request(route.method.clone(), &route.path, Some(Role::Admin))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            assert!(
                status < 500,
                "{} {} with {:?} answered {status}",
                route.method,
                route.path,
                String::from_utf8_lossy(&body)
            );
            if status >= 400 {
                assert_eq!(res.headers()["content-type"], "application/problem+json");
            }
        }
    }
}

#[tokio::test]
async fn bad_headers_and_paths_are_4xx() {
    let app = spawn_app().await;
    let p = app.create_product(json!({"name": "H", "brand": "B"})).await;
    let path = format!("/v1/products/{}", p["id"].as_str().unwrap());
    for if_match in ["garbage", "\"\"", "\"99999999999999999999999\"", "*"] {
        let res = app
            .request(Method::PATCH, &path, Some(Role::Admin))
            .header("if-match", if_match)
            .json(&json!({"name": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "If-Match {if_match}");
    }
    let long_key = "k".repeat(300);
    let res = app
        .request(Method::POST, "/v1/products", Some(Role::Admin))
        .header("idempotency-key", long_key)
        .json(&json!({"name": "x", "brand": "y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = app.get(&format!("/v1/products/{}", "x".repeat(5000)), Role::Admin).await;
    assert_eq!(res.status(), 404);
    let res = app.get("/v1/products/%ff%fe", Role::Admin).await;
    assert!(res.status().is_client_error());
    // NUL characters, which PostgreSQL cannot store, are refused at the door on every backend.
    for path in ["/v1/products/a%00b", "/v1/products?brand=%00", "/v1/products?cursor=AA"] {
        let res = app.get(path, Role::Admin).await;
        assert!(matches!(res.status().as_u16(), 400 | 422), "{path}: {}", res.status());
    }
    let res = app.post_json("/v1/products", Role::Admin, &json!({"name": "a\u{0}b", "brand": "b"})).await;
    assert_eq!(res.status(), 400);
}
