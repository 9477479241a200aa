//! Operations endpoints: liveness, readiness, metrics, the OpenAPI document and its reference page.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use dermis_bus::projection::Monitor;
use dermis_core::Problem;
use dermis_store::Db;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What the ops endpoints need.
#[derive(Clone)]
pub struct OpsState {
    /// The database, for readiness and pool metrics.
    pub db: Db,
    /// The projections of the event stream, once they run.
    pub projections: Arc<OnceLock<Monitor>>,
}

/// The documented ops routes.
pub fn router() -> OpenApiRouter<OpsState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz))
}

/// Routes that are not part of the API document itself: metrics, the document, the docs page.
pub fn undocumented(db: Db, openapi_json: Arc<String>) -> Router {
    let doc = openapi_json.clone();
    Router::new()
        .route("/metrics", get(metrics).with_state(OpsState { db, projections: Arc::default() }))
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], doc.as_str().to_owned()) }
            }),
        )
        .route("/docs", get(|| async { Html(DOCS_HTML) }))
        .route("/docs/", get(|| async { Html(DOCS_HTML) }))
        .route("/docs/swagger-ui-bundle.js", get(|| async { asset("application/javascript", SWAGGER_JS) }))
        .route("/docs/swagger-ui.css", get(|| async { asset("text/css", SWAGGER_CSS) }))
}

/// Liveness and readiness answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
    /// The storage backend (`sqlite` or `postgres`), for `/readyz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<&'static str>,
    /// How the projections of the event stream are doing, for `/readyz`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub projections: Vec<ProjectionStatus>,
}

/// How one projection of the event stream is doing on this node.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectionStatus {
    /// Its name (`features`, `search`).
    pub name: &'static str,
    /// Whether its rebuild at start has finished (before, it answers from what it has so far).
    pub rebuilt: bool,
    /// Messages on its topic not applied yet (at the last look, every few seconds).
    pub lag: u64,
    /// Whether the lag is over `events.lag_alert`.
    pub lagging: bool,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok", backend: None, projections: Vec::new() })
}

/// The process can serve: its store answers.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200, body = Health), (status = 503, body = dermis_core::problem::ProblemBody)))]
async fn readyz(State(s): State<OpsState>) -> Result<Json<Health>, Problem> {
    s.db.ping().await.map_err(|e| Problem::unavailable(&e))?;
    let projections = s
        .projections
        .get()
        .map(|m| {
            m.health()
                .into_iter()
                .map(|h| ProjectionStatus { name: h.name, rebuilt: h.rebuilt, lag: h.lag, lagging: h.lagging })
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(Health { status: "ok", backend: Some(s.db.backend().name()), projections }))
}

async fn metrics(State(s): State<OpsState>) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::metrics::render(&s.db))
        .into_response()
}

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=86400")], body).into_response()
}

const SWAGGER_JS: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js");
const SWAGGER_CSS: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui.css");
const DOCS_HTML: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Dermis API reference</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
      persistAuthorization: true, validatorUrl: null });
  </script>
</body>
</html>
"##;
