//! Health, readiness, metrics, the OpenAPI document, the docs page, and errors from the router.

use dermis_auth::Role;
use serde_json::Value;

use crate::helpers::{TestApp, assert_problem};

crate::both_backends!(ready_reports_the_backend, metrics_count_requests_by_route);

async fn ready_reports_the_backend(app: TestApp) {
    let health: Value = app.client.get(app.url("/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    let ready: Value = app.client.get(app.url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ok");
    assert!(matches!(ready["backend"].as_str(), Some("sqlite" | "postgres")));
    // Each projection of the event stream reports whether it is rebuilt and how far behind it is.
    let started = std::time::Instant::now();
    loop {
        let ready: Value = app.client.get(app.url("/readyz")).send().await.unwrap().json().await.unwrap();
        let features =
            ready["projections"].as_array().and_then(|p| p.iter().find(|p| p["name"] == "features")).cloned();
        if let Some(f) = features.filter(|f| f["rebuilt"] == true) {
            assert_eq!(f["lagging"], false, "{ready}");
            break;
        }
        assert!(started.elapsed().as_secs() < 10, "the features projection never reported itself rebuilt: {ready}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn metrics_count_requests_by_route(app: TestApp) {
    let p = app.create_product(serde_json::json!({"name": "Gel", "brand": "B"})).await;
    let id = p["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/v1/products/{id}"), Role::Analyst).await.status(), 200);
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("http_requests_total"), "{text}");
    assert!(text.contains(r#"route="/v1/products/{id}""#), "routes are labelled by template, not by id");
    assert!(!text.contains(id), "no per-id series");
    assert!(text.contains("http_request_duration_seconds_bucket"));
    assert!(text.contains("db_pool_connections"));
}

#[tokio::test]
async fn openapi_documents_the_api_and_docs_work_offline() {
    let app = crate::helpers::spawn_app().await;
    let doc: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    for path in [
        "/v1/products",
        "/v1/products/{id}",
        "/v1/products/{id}/skus",
        "/v1/products/{id}/skus/{sku_id}",
        "/v1/api-keys",
        "/healthz",
        "/readyz",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert!(doc["paths"]["/v1/products"]["post"]["requestBody"].is_object());
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let html = app.client.get(app.url("/docs")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("/docs/swagger-ui-bundle.js") && !html.contains("https://"), "no external assets");
    let js = app.client.get(app.url("/docs/swagger-ui-bundle.js")).send().await.unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.bytes().await.unwrap().len() > 100_000);
}

#[tokio::test]
async fn router_errors_are_problems_and_requests_have_ids() {
    let app = crate::helpers::spawn_app().await;
    assert_problem(app.client.get(app.url("/nope")).send().await.unwrap(), 404).await;
    assert_problem(
        app.client.get(app.url("/v1/nope")).bearer_auth(crate::helpers::token(Role::Admin)).send().await.unwrap(),
        404,
    )
    .await;
    let res = app
        .client
        .delete(app.url("/v1/products"))
        .bearer_auth(crate::helpers::token(Role::Admin))
        .send()
        .await
        .unwrap();
    assert!(res.headers().contains_key("allow"));
    assert_problem(res, 405).await;

    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert!(res.headers().get("x-request-id").is_some_and(|v| !v.is_empty()));
    let res = app.client.get(app.url("/healthz")).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
}

#[tokio::test]
async fn responses_are_gzipped_when_asked_and_cors_follows_config() {
    let app = crate::helpers::spawn_with(crate::helpers::Backend::Sqlite, |c| {
        c.http.cors_origins = vec!["https://shop.example".into()];
    })
    .await
    .unwrap();
    for i in 0..30 {
        app.create_product(serde_json::json!({"name": format!("Serum {i}"), "brand": "Brand", "description": "A long description. ".repeat(20)})).await;
    }
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let res = raw
        .get(app.url("/v1/products?limit=30"))
        .bearer_auth(crate::helpers::token(Role::Analyst))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-encoding"], "gzip");

    let pre = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/products"))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization,content-type,idempotency-key")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.headers()["access-control-allow-origin"], "https://shop.example");
    let other = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/products"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}
