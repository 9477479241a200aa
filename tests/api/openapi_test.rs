//! The OpenAPI document tells the truth about errors. Every documented operation is driven with
//! the hostile-input sweep's bodies (`errors_test.rs`) and with erroneous requests of every other
//! kind: no or bad credentials, each role, unknown and hostile ids, bad query parameters and
//! headers, reused idempotency keys, stale versions, taken unique values, wrong content types,
//! oversized and stalled bodies, saturated ingestion. Every status an operation answers must be
//! listed for it in the document; every error answer is `application/problem+json`, and every
//! documented error response has that content type with the `ProblemBody` schema.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::time::Duration;

use dermis_auth::Role;
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::errors_test::{Fixture, Route, basic, fixture, hostile_bodies};
use crate::helpers::{Backend, TestApp, spawn_with, token, token_for};

crate::both_backends!(every_status_a_route_answers_is_documented_as_a_problem);

const PROBLEM_JSON: &str = "application/problem+json";
const PROBLEM_REF: &str = "#/components/schemas/ProblemBody";

/// One operation of the document.
struct Op {
    method: Method,
    template: String,
    /// Documented responses by status code.
    responses: serde_json::Map<String, Value>,
    path_params: Vec<String>,
    query_params: Vec<String>,
    header_params: Vec<String>,
    has_body: bool,
    /// `bearer`, `writeKey`, or none for public operations.
    scheme: Option<String>,
}

impl Op {
    fn name(&self) -> String {
        format!("{} {}", self.method, self.template)
    }
}

fn operations(doc: &Value) -> Vec<Op> {
    let mut ops = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let names = |place: &str| -> Vec<String> {
                params.iter().filter(|p| p["in"] == place).map(|p| p["name"].as_str().unwrap().to_owned()).collect()
            };
            let scheme = op["security"]
                .as_array()
                .and_then(|s| s.first())
                .and_then(Value::as_object)
                .and_then(|r| r.keys().next().cloned());
            ops.push(Op {
                method: method.to_uppercase().parse().unwrap(),
                template: template.clone(),
                responses: op["responses"].as_object().cloned().unwrap_or_default(),
                path_params: names("path"),
                query_params: names("query"),
                header_params: names("header"),
                has_body: op["requestBody"].is_object(),
                scheme,
            });
        }
    }
    ops
}

/// What went wrong, deduplicated by operation, status and kind of finding (the first request
/// that showed it is kept as the example).
#[derive(Default)]
struct Findings {
    problems: BTreeMap<(String, u16, &'static str), String>,
    seen: BTreeMap<String, BTreeSet<u16>>,
}

impl Findings {
    fn record(&mut self, op: &Op, what: &str, a: &Answer) {
        self.seen.entry(op.name()).or_default().insert(a.status);
        if !op.responses.contains_key(&a.status.to_string()) {
            self.problems
                .entry((op.name(), a.status, "status not documented"))
                .or_insert_with(|| format!("{what:.100}: {:.200}", a.text));
        }
        if a.status >= 400 && a.content_type.as_deref() != Some(PROBLEM_JSON) {
            self.problems
                .entry((op.name(), a.status, "error not application/problem+json"))
                .or_insert_with(|| format!("{what:.100}: {:?}", a.content_type));
        }
    }

    fn document(&mut self, op: &Op, status: &str, finding: &'static str) {
        self.problems.insert((op.name(), status.parse().unwrap_or(0), finding), String::new());
    }
}

/// The document itself: error responses are problem+json with the `ProblemBody` schema, and the
/// statuses the middleware gives every route are there.
fn check_document(ops: &[Op], findings: &mut Findings) {
    for op in ops {
        for (status, response) in &op.responses {
            if status.parse::<u16>().is_ok_and(|s| s >= 400) {
                let content = response["content"].as_object();
                let types: Vec<&String> = content.map(|c| c.keys().collect()).unwrap_or_default();
                if types != [PROBLEM_JSON] {
                    findings.document(op, status, "documented error content is not only application/problem+json");
                }
                if response["content"][PROBLEM_JSON]["schema"]["$ref"] != PROBLEM_REF {
                    findings.document(op, status, "documented error has not the ProblemBody schema");
                }
            }
        }
        // The timeout layer and the panic catcher stand before every route; bearer routes
        // authenticate; bodies have a size limit and a media type.
        let mut common = vec!["500", "503"];
        if op.scheme.as_deref() == Some("bearer") {
            common.push("401");
        }
        if op.has_body {
            common.extend(["400", "413", "415"]);
        }
        for status in common {
            if !op.responses.contains_key(status) {
                findings.document(op, status, "a status every such route can answer is not documented");
            }
        }
    }
}

struct Answer {
    status: u16,
    content_type: Option<String>,
    text: String,
}

/// The credentials a request carries.
#[derive(Clone)]
enum Cred {
    None,
    Role(Role),
    Header(String),
}

struct Body {
    bytes: Vec<u8>,
    content_type: Option<&'static str>,
    encoding: Option<&'static str>,
}

fn json_body(v: &Value) -> Body {
    Body { bytes: serde_json::to_vec(v).unwrap(), content_type: Some("application/json"), encoding: None }
}

async fn call(
    app: &TestApp,
    method: &Method,
    path: &str,
    cred: &Cred,
    headers: &[(&str, String)],
    body: Option<Body>,
) -> Answer {
    let mut rb = app.client.request(method.clone(), app.url(path));
    match cred {
        Cred::None => {}
        Cred::Role(r) => rb = rb.bearer_auth(token(*r)),
        Cred::Header(h) => rb = rb.header("authorization", h),
    }
    for (name, value) in headers {
        rb = rb.header(*name, value);
    }
    if let Some(b) = body {
        if let Some(ct) = b.content_type {
            rb = rb.header("content-type", ct);
        }
        if let Some(ce) = b.encoding {
            rb = rb.header("content-encoding", ce);
        }
        rb = rb.body(b.bytes);
    }
    let res = rb.send().await.unwrap_or_else(|e| panic!("{method} {path:.80}: {e}"));
    let status = res.status().as_u16();
    let content_type = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    Answer { status, content_type, text: res.text().await.unwrap_or_default() }
}

/// What the test knows exists, to fill path templates with.
struct Known<'a> {
    fx: &'a Fixture,
    customer: &'static str,
}

fn fill(template: &str, mut value: impl FnMut(&str) -> String) -> String {
    let mut path = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let end = rest.find('}').unwrap();
        path.push_str(&rest[..start]);
        path.push_str(&value(&rest[start + 1..end]));
        rest = &rest[end + 1..];
    }
    path.push_str(rest);
    path
}

/// An existing value for a path parameter.
fn existing(known: &Known, template: &str, param: &str) -> String {
    match param {
        "sku_id" => known.fx.sku_id.clone(),
        "name" => "aqua".to_owned(),
        _ if template.starts_with("/v1/features/customers/") => known.customer.to_owned(),
        _ => known.fx.product_id.clone(),
    }
}

fn route<'a>(op: &Op, fx: &'a Fixture) -> Option<&'a Route> {
    fx.routes.iter().find(|r| r.method == op.method && r.template == op.template)
}

/// A request path that names existing things (the sweep's own paths for its write routes).
fn valid_path(op: &Op, known: &Known) -> String {
    if let Some(r) = route(op, known.fx) {
        return r.path().to_owned();
    }
    let path = fill(&op.template, |p| existing(known, &op.template, p));
    if op.query_params.iter().any(|q| q == "user_id") { format!("{path}?user_id={}", known.customer) } else { path }
}

/// A copy of a valid body whose unique values are fresh (tagged), so it creates something new.
fn fresh(valid: &Value, tag: &str) -> Value {
    let mut v = valid.clone();
    if let Some(o) = v.as_object_mut() {
        for key in ["name", "code", "external_id"] {
            if let Some(Value::String(s)) = o.get_mut(key) {
                *s = format!("{s}-{tag}");
            }
        }
        o.remove("barcode");
    }
    v
}

async fn sweep(app: &TestApp, op: &Op, known: &Known<'_>, findings: &mut Findings) {
    let fx = known.fx;
    let fixture_route = route(op, fx);
    assert!(!op.has_body || fixture_route.is_some(), "{}: a route with a body the sweep does not know", op.name());
    let valid = fixture_route.map(|r| r.valid.clone());
    let valid_body = || valid.as_ref().map(json_body);
    let good = match op.scheme.as_deref() {
        Some("bearer") => Cred::Role(Role::Admin),
        Some("writeKey") => Cred::Header(basic(&fx.write_key)),
        _ => Cred::None,
    };
    let mut send = async |what: &str, path: &str, cred: &Cred, headers: &[(&str, String)], body: Option<Body>| {
        let a = call(app, &op.method, path, cred, headers, body).await;
        findings.record(op, what, &a);
    };

    send("a valid request", &valid_path(op, known), &good, &[], valid_body()).await;

    // Credentials: none, unreadable, unknown, signed with another secret, the wrong scheme, and
    // every role.
    let foreign = dermis_auth::jwt::issue(
        &SecretString::from("another-secret-another-secret-another!".to_owned()),
        Role::Admin,
        "intruder",
        None,
        Duration::from_secs(600),
    )
    .unwrap();
    let mut creds = vec![
        ("no credentials", Cred::None),
        ("a bearer token that is no token", Cred::Header("Bearer nope".into())),
        ("an unknown API key", Cred::Header("Bearer dmk_nope_nope".into())),
        ("a token signed with another secret", Cred::Header(format!("Bearer {foreign}"))),
        ("an unknown write key", Cred::Header(basic("wk_nope"))),
        ("an unreadable Basic header", Cred::Header("Basic !!!".into())),
        ("another scheme", Cred::Header("Digest x".into())),
    ];
    for role in Role::ALL {
        creds.push((role.as_str(), Cred::Role(role)));
    }
    let own = token_for(Role::Customer, known.customer, None);
    creds.push(("the customer whose features these are", Cred::Header(format!("Bearer {own}"))));
    for (what, cred) in &creds {
        send(&format!("as {what}"), &valid_path(op, known), cred, &[], valid_body()).await;
    }

    // Unknown and hostile ids, one parameter at a time.
    for param in &op.path_params {
        for id in ["does-not-exist", &"x".repeat(5000), "%00", "%ff%fe", "..%2F..%2Fetc", "%20", "%C3%A9"] {
            let path =
                fill(
                    &op.template,
                    |p| if p == param.as_str() { id.to_owned() } else { existing(known, &op.template, p) },
                );
            send(&format!("{param} = {id:.20}"), &path, &good, &[], valid_body()).await;
        }
    }

    // Query parameters: wrong types, out of range, NUL, unknown.
    let base = fill(&op.template, |p| existing(known, &op.template, p));
    for q in &op.query_params {
        for v in ["", "zzz", "-1", "0", "501", "18446744073709551616", "true", "1.5", "%00", "%ff", "a,b,,c"] {
            send(&format!("?{q}={v}"), &format!("{base}?{q}={v}"), &good, &[], valid_body()).await;
        }
        send(&format!("?{q} twice"), &format!("{base}?{q}=a&{q}=b"), &good, &[], valid_body()).await;
    }
    send("an unknown query parameter", &format!("{base}?definitely_not_a_param=1"), &good, &[], valid_body()).await;

    // Header parameters: malformed, stale, reused.
    for h in &op.header_params {
        let values: Vec<String> = match h.to_ascii_lowercase().as_str() {
            "idempotency-key" => vec!["has space".into(), "k".repeat(300), String::new()],
            "if-match" => {
                ["garbage", "\"0\"", "W/\"0\"", "*", "\"99999999999999999999\"", "\"\""].map(String::from).to_vec()
            }
            _ => vec![String::new(), "\u{7f}".into()],
        };
        for v in values {
            send(&format!("{h}: {v:.20}"), &valid_path(op, known), &good, &[(h.as_str(), v.clone())], valid_body())
                .await;
        }
        if h.eq_ignore_ascii_case("idempotency-key")
            && let Some(valid) = &valid
        {
            let key = format!("reused-{}", op.template.len());
            for tag in ["reuse-a", "reuse-b"] {
                let body = json_body(&fresh(valid, tag));
                send(
                    &format!("{h} reused ({tag})"),
                    &valid_path(op, known),
                    &good,
                    &[(h.as_str(), key.clone())],
                    Some(body),
                )
                .await;
            }
        }
    }

    let Some(r) = fixture_route else {
        // No body expected: a stray one is ignored.
        let stray = Body { bytes: b"{\"x\": 1}".to_vec(), content_type: Some("text/plain"), encoding: None };
        send("a stray body", &valid_path(op, known), &good, &[], Some(stray)).await;
        return;
    };
    let valid = r.valid.clone();

    // Unique values another record holds, and fresh ones.
    if op.template.starts_with("/v1/products") {
        let mut taken = valid.clone();
        if op.template.contains("skus") {
            taken["code"] = json!("TAKEN-CODE");
        } else {
            taken["external_id"] = json!("taken-ext");
        }
        send("a unique value another record holds", &valid_path(op, known), &good, &[], Some(json_body(&taken))).await;
        send("fresh unique values", &valid_path(op, known), &good, &[], Some(json_body(&fresh(&valid, "fresh")))).await;
    }

    // The hostile-input sweep's bodies.
    for h in hostile_bodies(r) {
        let body = Body { bytes: h.body, content_type: Some("application/json"), encoding: h.content_encoding };
        send(&h.what, &valid_path(op, known), &good, &[], Some(body)).await;
    }
    let valid_text = serde_json::to_vec(&valid).unwrap();
    for (ct, bytes) in [
        (None, valid_text.clone()),
        (Some("text/plain"), valid_text.clone()),
        (Some("application/x-www-form-urlencoded"), b"name=x".to_vec()),
        (Some("application/xml"), b"<a/>".to_vec()),
        (Some("application/json; charset=latin1"), valid_text.clone()),
    ] {
        let body = Body { bytes, content_type: ct, encoding: None };
        send(&format!("content type {ct:?}"), &valid_path(op, known), &good, &[], Some(body)).await;
    }
    for encoding in ["br", "deflate", "gzip", "identity, gzip"] {
        let body = Body { bytes: valid_text.clone(), content_type: Some("application/json"), encoding: Some(encoding) };
        send(&format!("content encoding {encoding}, not applied"), &valid_path(op, known), &good, &[], Some(body))
            .await;
    }
}

/// Sends headers and part of a body, then nothing: the request runs out of time.
fn stalled_body(base: &str, method: &Method, path: &str, authorization: &str) -> Answer {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: {authorization}\r\n\
         content-type: application/json\r\ncontent-length: 1000\r\nconnection: close\r\n\r\n{{\"name\":"
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the answer's head and its body are in (the connection may stay open).
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&raw);
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok());
            if len.is_some_and(|len| raw.len() >= end + 4 + len) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no answer: {text:?}"));
    let content_type = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-type")))
        .map(|(_, v)| v.trim().to_owned());
    Answer { status, content_type, text: body.to_owned() }
}

/// On a node with a one-second request timeout and one ingestion writer: every body that stalls
/// runs out of time, and ingestion that cannot get the writer is refused.
async fn sweep_limits(ops: &[Op], findings: &mut Findings) {
    let app = spawn_with(Backend::Sqlite, |c| {
        c.http.request_timeout_secs = 1;
        c.events.ingest_concurrency = 1;
    })
    .await
    .unwrap();
    let wk: Value =
        app.post_json("/v1/write-keys", Role::Admin, &json!({"name": "limits"})).await.json().await.unwrap();
    let write_key = wk["write_key"].as_str().unwrap().to_owned();

    let mut stalled = tokio::task::JoinSet::new();
    for (i, op) in ops.iter().enumerate().filter(|(_, op)| op.has_body) {
        let authorization = match op.scheme.as_deref() {
            Some("writeKey") => basic(&write_key),
            _ => format!("Bearer {}", token(Role::Admin)),
        };
        let (base, method, path) = (app.base.clone(), op.method.clone(), fill(&op.template, |_| "x".to_owned()));
        stalled.spawn_blocking(move || (i, stalled_body(&base, &method, &path, &authorization)));
    }
    while let Some(r) = stalled.join_next().await {
        let (i, a) = r.unwrap();
        findings.record(&ops[i], "a body that stalls", &a);
    }

    // Large batches take the one writer; while they hold it, every ingestion path asks for it.
    let ingestion: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].scheme.as_deref() == Some("writeKey")).collect();
    let is_batch = |op: &Op| ["/v1/b", "/v1/batch", "/v1/import"].contains(&op.template.as_str());
    let big_batch: Vec<Value> = (0..2500)
        .map(|i| {
            json!({"type": "track", "userId": format!("sat-{}", i % 50), "event": "Product Viewed",
            "properties": {"product_id": format!("P{}", i % 100), "price": 1}})
        })
        .collect();
    let mut saturated = tokio::task::JoinSet::new();
    let mut post = |i: usize, body: Value| {
        let (client, url, key) = (app.client.clone(), app.url(&ops[i].template), basic(&write_key));
        saturated.spawn(async move {
            let res = client.post(url).header("authorization", key).json(&body).send().await.unwrap();
            let status = res.status().as_u16();
            let content_type = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
            (i, Answer { status, content_type, text: res.text().await.unwrap_or_default() })
        });
    };
    let batch_op = *ingestion.iter().find(|&&i| is_batch(&ops[i])).expect("a batch route");
    for _ in 0..12 {
        post(batch_op, json!({"batch": big_batch}));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    for &i in &ingestion {
        let body = if is_batch(&ops[i]) {
            json!({"batch": [{"type": "identify", "userId": "sat"}]})
        } else {
            json!({"userId": "sat", "event": "E", "groupId": "g", "previousId": "p"})
        };
        post(i, body);
    }
    while let Some(r) = saturated.join_next().await {
        let (i, a) = r.unwrap();
        findings.record(&ops[i], "ingestion while the writer is busy", &a);
    }
}

async fn every_status_a_route_answers_is_documented_as_a_problem(app: TestApp) {
    let doc: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let ops = operations(&doc);
    assert!(ops.len() >= 30, "the document lists the operations: {}", ops.len());
    let mut findings = Findings::default();
    check_document(&ops, &mut findings);

    let fx = fixture(&app).await;
    let known = Known { fx: &fx, customer: "c-contract" };
    // A customer with online features, a product external id and a SKU code to collide with.
    let res = app
        .client
        .post(app.url("/v1/track"))
        .header("authorization", basic(&fx.write_key))
        .json(
            &json!({"userId": known.customer, "event": "Product Viewed", "properties": {"product_id": fx.product_id}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    app.create_product(json!({"name": "Taken", "brand": "B", "external_id": "taken-ext"})).await;
    app.create_sku(&fx.product_id, json!({"code": "TAKEN-CODE", "price": {"amount_minor": 1, "currency": "EUR"}}))
        .await;

    for op in &ops {
        sweep(&app, op, &known, &mut findings).await;
    }
    sweep_limits(&ops, &mut findings).await;

    let seen: Vec<String> = findings.seen.iter().map(|(op, s)| format!("  {op}: {s:?}")).collect();
    eprintln!("statuses seen:\n{}", seen.join("\n"));
    let problems: Vec<String> = findings
        .problems
        .iter()
        .map(|((op, status, finding), example)| format!("  {op} {status}: {finding} ({example})"))
        .collect();
    assert!(
        problems.is_empty(),
        "{} disagreement(s) between the document and the server:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
