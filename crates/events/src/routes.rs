//! HTTP: the Segment-compatible ingestion endpoints (write key auth) and the admin routes.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRef, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use base64::Engine;
use dermis_auth::{AdminOnly, Auth, Authenticator};
use dermis_core::page::{Cursor, Limit};
use dermis_core::problem::ProblemBody;
use dermis_core::{ApiJson, ApiPath, ApiQuery, FieldError, Page, Problem, ProblemKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tower_http::decompression::RequestDecompressionLayer;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::EventsError;
use crate::ingest::{IngestResult, Ingestor, MAX_REQUEST_BYTES};
use crate::log::{self, StoredDeadLetter, StoredEvent, Subject};
use crate::message::Kind;
use crate::write_keys::WriteKeyInfo;

/// What the events routes need.
#[derive(Debug, Clone)]
pub struct EventsState {
    /// Ingestion.
    pub ingestor: Arc<Ingestor>,
    /// Authenticates admins.
    pub auth: Arc<Authenticator>,
}

impl FromRef<EventsState> for Arc<Authenticator> {
    fn from_ref(s: &EventsState) -> Self {
        s.auth.clone()
    }
}

/// Paths that take Segment calls; browsers post to them from any origin.
pub const INGESTION_PATHS: [&str; 15] = [
    "/v1/track",
    "/v1/identify",
    "/v1/page",
    "/v1/screen",
    "/v1/group",
    "/v1/alias",
    "/v1/batch",
    "/v1/import",
    "/v1/t",
    "/v1/i",
    "/v1/p",
    "/v1/s",
    "/v1/g",
    "/v1/a",
    "/v1/b",
];

impl From<EventsError> for Problem {
    fn from(e: EventsError) -> Self {
        match e {
            EventsError::BadWriteKey => Problem::new(ProblemKind::Unauthenticated, e.to_string()),
            EventsError::Malformed(_) => Problem::malformed(e.to_string()),
            EventsError::TooLarge(_) => Problem::new(ProblemKind::PayloadTooLarge, e.to_string()),
            EventsError::Saturated => Problem::new(ProblemKind::RateLimited, e.to_string()).with_retry_after(1),
            EventsError::NotFound(_) => Problem::not_found(e.to_string()),
            EventsError::StillInvalid(_) => Problem::validation(vec![FieldError::new("message", e.to_string())]),
            EventsError::Store(e) => e.into(),
        }
    }
}

/// The ingestion routes (not in the OpenAPI document's security scheme: they take write keys).
pub fn ingestion_router() -> axum::Router<EventsState> {
    let mut r = axum::Router::new();
    for (path, kind) in [
        ("track", Some(Kind::Track)),
        ("identify", Some(Kind::Identify)),
        ("page", Some(Kind::Page)),
        ("screen", Some(Kind::Screen)),
        ("group", Some(Kind::Group)),
        ("alias", Some(Kind::Alias)),
        ("batch", None),
        ("import", None),
    ] {
        let handler =
            move |state: State<EventsState>, headers: HeaderMap, body: Bytes| ingest(state, headers, body, kind);
        r = r.route(&format!("/v1/{path}"), post(handler));
        if path != "import" {
            r = r.route(&format!("/v1/{}", &path[..1]), post(handler));
        }
    }
    r.layer(RequestDecompressionLayer::new().gzip(true)).layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
}

/// Adds the ingestion routes to the OpenAPI document: they are plain axum routes (one handler
/// for fifteen paths), so their operations are built here, with the `writeKey` scheme (HTTP
/// Basic, the write key as user name; or `writeKey` in the body).
pub fn document_ingestion(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{HttpMethod, OperationBuilder};
    use utoipa::openapi::request_body::RequestBodyBuilder;
    use utoipa::openapi::response::ResponseBuilder;
    use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
    use utoipa::openapi::{ContentBuilder, Ref, Required};
    let components = doc.components.get_or_insert_with(Default::default);
    let mut schemas = vec![(IngestResult::name().into_owned(), <IngestResult as utoipa::PartialSchema>::schema())];
    <IngestResult as ToSchema>::schemas(&mut schemas);
    components.schemas.extend(schemas);
    components.add_security_scheme("writeKey", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
    let json = |name: &str| ContentBuilder::new().schema(Some(Ref::from_schema_name(name))).build();
    let problem = |what: &str| {
        ResponseBuilder::new().description(what).content("application/problem+json", json("ProblemBody")).build()
    };
    for path in INGESTION_PATHS {
        let call = path.trim_start_matches("/v1/");
        let (summary, body) = match call {
            "batch" | "b" | "import" => (
                format!("Segment-compatible batch ({path}): up to 2,500 messages, 32 KB each, 500 KB in all"),
                "`{\"batch\": [messages], \"context\": {...}, \"sentAt\": ...}`; `writeKey` may be in the body",
            ),
            _ => (
                format!("Segment-compatible `{}` call ({path})", long_name(call)),
                "one Segment message; `writeKey` may be in the body; any content type is read as JSON (the browser library sends text/plain), gzip accepted",
            ),
        };
        let operation = OperationBuilder::new()
            .tag("ingestion")
            .summary(Some(summary))
            .description(Some("Messages that fail their event's JSON Schema are kept as dead letters and listed in `rejected`; duplicates of a stored `messageId` are counted, not stored again."))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .description(Some(body))
                    .required(Some(Required::True))
                    .content("application/json", ContentBuilder::new().build())
                    .build(),
            ))
            .response("200", ResponseBuilder::new().description("stored (see `rejected` for dead letters)").content("application/json", json("IngestResult")).build())
            .response("400", problem("malformed body"))
            .response("401", problem("missing, unknown or revoked write key"))
            .response("413", problem("over the size or batch limits"))
            .response("429", problem("ingestion saturated; retry after `Retry-After`"))
            .security(SecurityRequirement::new("writeKey", Vec::<String>::new()))
            .build();
        doc.paths.add_path_operation(path, vec![HttpMethod::Post], operation);
    }
}

fn long_name(call: &str) -> &str {
    match call {
        "t" => "track",
        "i" => "identify",
        "p" => "page",
        "s" => "screen",
        "g" => "group",
        "a" => "alias",
        other => other,
    }
}

fn basic_user(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(text.split_once(':').map_or(text.as_str(), |(u, _)| u).to_owned())
}

/// Any content type is read as JSON: the browser library sends `text/plain` to avoid a CORS
/// preflight.
async fn ingest(
    State(s): State<EventsState>,
    headers: HeaderMap,
    body: Bytes,
    kind: Option<Kind>,
) -> Result<Json<IngestResult>, Problem> {
    let value: Value = dermis_core::extract::parse_json(&body)?;
    let user = basic_user(&headers);
    Ok(Json(s.ingestor.ingest(kind, user.as_deref(), value).await?))
}

/// The admin routes.
pub fn admin_router() -> OpenApiRouter<EventsState> {
    OpenApiRouter::new()
        .routes(routes!(list_events, erase_events))
        .routes(routes!(list_dead_letters))
        .routes(routes!(replay_dead_letter))
        .routes(routes!(create_write_key, list_write_keys))
        .routes(routes!(revoke_write_key))
}

/// Whose events.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The customer's user id.
    pub user_id: Option<String>,
    /// Or a device's anonymous id.
    pub anonymous_id: Option<String>,
    /// Page size, 1–500.
    #[param(value_type = Option<u32>)]
    pub limit: Option<Limit>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// One customer's stored events, in arrival order.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventsQuery),
    responses((status = 200, body = Page<StoredEvent>), (status = 403, description = "admins only", body = ProblemBody),
        (status = 422, description = "not exactly one of `user_id` and `anonymous_id`, or an invalid cursor", body = ProblemBody)),
    security(("bearer" = [])))]
async fn list_events(
    _a: Auth<AdminOnly>,
    State(s): State<EventsState>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Json<Page<StoredEvent>>, Problem> {
    let who = subject(q.user_id, q.anonymous_id)?;
    let limit = q.limit.unwrap_or_default();
    let after = q.cursor.as_deref().map(Cursor::parse).transpose()?;
    let rows = log::events_of(s.ingestor.db(), &who, after.as_ref().map(|c| c.0.as_str()), limit.get() + 1)
        .await
        .map_err(EventsError::from)?;
    Ok(Json(Page::from_rows(rows, limit, |e| e.id.clone())))
}

/// Whose events to erase.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EraseQuery {
    /// The customer's user id.
    pub user_id: Option<String>,
    /// Or a device's anonymous id.
    pub anonymous_id: Option<String>,
}

fn subject(user_id: Option<String>, anonymous_id: Option<String>) -> Result<Subject, Problem> {
    match (user_id, anonymous_id) {
        (Some(u), None) if !u.is_empty() => Ok(Subject::User(u)),
        (None, Some(a)) if !a.is_empty() => Ok(Subject::Anonymous(a)),
        _ => Err(Problem::validation(vec![FieldError::new("user_id", "give exactly one of user_id and anonymous_id")])),
    }
}

/// Erase one customer's events (GDPR): their stored events (for a user id, also the anonymous
/// events of the devices they used), their dead letters, and their online features on every
/// node. Idempotent: erasing again removes nothing more.
#[utoipa::path(delete, path = "/v1/events", tag = "events", params(EraseQuery),
    responses((status = 200, body = log::Erased), (status = 403, description = "admins only", body = ProblemBody),
        (status = 422, description = "not exactly one of `user_id` and `anonymous_id`", body = ProblemBody)),
    security(("bearer" = [])))]
async fn erase_events(
    _a: Auth<AdminOnly>,
    State(s): State<EventsState>,
    ApiQuery(q): ApiQuery<EraseQuery>,
) -> Result<Json<log::Erased>, Problem> {
    let who = subject(q.user_id, q.anonymous_id)?;
    Ok(Json(s.ingestor.erase(&who).await?))
}

/// Paging.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1–500.
    #[param(value_type = Option<u32>)]
    pub limit: Option<Limit>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// Messages that failed validation, with their reasons, in arrival order.
#[utoipa::path(get, path = "/v1/events/dead-letters", tag = "events", params(PageQuery),
    responses((status = 200, body = Page<StoredDeadLetter>), (status = 403, description = "admins only", body = ProblemBody),
        (status = 422, description = "an invalid cursor", body = ProblemBody)),
    security(("bearer" = [])))]
async fn list_dead_letters(
    _a: Auth<AdminOnly>,
    State(s): State<EventsState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Page<StoredDeadLetter>>, Problem> {
    let limit = q.limit.unwrap_or_default();
    let after = q.cursor.as_deref().map(Cursor::parse).transpose()?;
    let rows = log::dead_letters(s.ingestor.db(), after.as_ref().map(|c| c.0.as_str()), limit.get() + 1)
        .await
        .map_err(EventsError::from)?;
    Ok(Json(Page::from_rows(rows, limit, |d| d.id.clone())))
}

/// An optional corrected message for a replay.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// The message to store instead of the one kept.
    #[schema(value_type = Option<Object>)]
    pub message: Option<Value>,
}

/// The result of a replay.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayResult {
    /// False when the log already held this `messageId`.
    pub stored: bool,
}

/// Validate a dead letter again (or a corrected version of it) and store it in the log.
#[utoipa::path(post, path = "/v1/events/dead-letters/{id}/replay", tag = "events",
    params(("id" = String, Path, description = "Dead letter id")), request_body = Option<ReplayRequest>,
    responses((status = 200, body = ReplayResult), (status = 403, description = "admins only", body = ProblemBody),
        (status = 404, body = ProblemBody), (status = 422, description = "the message still fails validation", body = ProblemBody)),
    security(("bearer" = [])))]
async fn replay_dead_letter(
    _a: Auth<AdminOnly>,
    State(s): State<EventsState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ReplayResult>, Problem> {
    let req: ReplayRequest = dermis_core::extract::optional_json(&headers, &body)?;
    let stored = s.ingestor.replay(&id, req.message.as_ref()).await?;
    Ok(Json(ReplayResult { stored }))
}

/// A new write key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWriteKey {
    /// A name for people, 1–100 characters.
    pub name: String,
}

/// A new write key and the key itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWriteKey {
    /// The key's description.
    #[serde(flatten)]
    pub info: WriteKeyInfo,
    /// The write key to configure in the SDK.
    pub write_key: String,
}

/// A list of write keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct WriteKeyList {
    /// Newest first.
    pub items: Vec<WriteKeyInfo>,
}

/// Create a write key for a source (web shop, app, POS).
#[utoipa::path(post, path = "/v1/write-keys", tag = "events", request_body = CreateWriteKey,
    responses((status = 201, body = CreatedWriteKey), (status = 403, description = "admins only", body = ProblemBody),
        (status = 422, body = ProblemBody)),
    security(("bearer" = [])))]
async fn create_write_key(
    _a: Auth<AdminOnly>,
    State(s): State<EventsState>,
    ApiJson(body): ApiJson<CreateWriteKey>,
) -> Result<(StatusCode, Json<CreatedWriteKey>), Problem> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Problem::validation(vec![FieldError::new("name", "must be 1 to 100 characters")]));
    }
    let (info, write_key) = s.ingestor.write_keys().create(name).await.map_err(EventsError::from)?;
    Ok((StatusCode::CREATED, Json(CreatedWriteKey { info, write_key })))
}

/// List write keys.
#[utoipa::path(get, path = "/v1/write-keys", tag = "events",
    responses((status = 200, body = WriteKeyList), (status = 403, description = "admins only", body = ProblemBody)),
    security(("bearer" = [])))]
async fn list_write_keys(_a: Auth<AdminOnly>, State(s): State<EventsState>) -> Result<Json<WriteKeyList>, Problem> {
    Ok(Json(WriteKeyList { items: s.ingestor.write_keys().list().await.map_err(EventsError::from)? }))
}

/// Revoke a write key: its events are refused from now on (within a minute on other nodes).
#[utoipa::path(delete, path = "/v1/write-keys/{id}", tag = "events", params(("id" = String, Path, description = "Write key id")),
    responses((status = 204), (status = 403, description = "admins only", body = ProblemBody), (status = 404, body = ProblemBody)),
    security(("bearer" = [])))]
async fn revoke_write_key(
    _a: Auth<AdminOnly>,
    State(s): State<EventsState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, Problem> {
    if s.ingestor.write_keys().revoke(&id).await.map_err(EventsError::from)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!("no write key {id}")))
    }
}
