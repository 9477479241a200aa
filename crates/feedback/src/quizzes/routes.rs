//! HTTP: `/v1/quizzes` (define), `/v1/quizzes/{key}` (read: open, a quiz is public content the
//! widget shows on any storefront), `.../responses` and `.../impressions` (a write key as the
//! HTTP Basic user, as the Segment SDKs send it; or an `admin` or `service` bearer for a shop's
//! backend), `.../stats`; and the widget, `/widget/dermis.js` (undocumented, like `/docs`).
//!
//! Who may call: definitions `admin` or `merchandiser`; statistics `admin`, `merchandiser` or
//! `analyst`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use base64::Engine;
use dermis_auth::{Auth, Authenticator, Role};
use dermis_core::problem::ProblemBody;
use dermis_core::{ApiJson, ApiPath, Problem, ProblemKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AnswerBody, NewResponse, QuizDefinition, QuizError, QuizStats, Quizzes, Respondent, ResponseReceipt};

dermis_auth::role_policy!(
    /// Who may define quizzes.
    QuizWriters, "admin or merchandiser", [Admin, Merchandiser]
);
dermis_auth::role_policy!(
    /// Who may read a quiz's statistics.
    QuizReaders, "admin, merchandiser or analyst", [Admin, Merchandiser, Analyst]
);

/// The widget's script.
pub const WIDGET_JS: &str = include_str!("../../assets/dermis.js");

/// What the routes share.
#[derive(Clone)]
pub struct QuizzesState {
    /// The service.
    pub quizzes: Quizzes,
    /// Authenticates bearer callers.
    pub auth: Arc<Authenticator>,
}

impl std::fmt::Debug for QuizzesState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuizzesState").finish_non_exhaustive()
    }
}

impl FromRef<QuizzesState> for Arc<Authenticator> {
    fn from_ref(s: &QuizzesState) -> Self {
        s.auth.clone()
    }
}

/// The routes.
pub fn router() -> OpenApiRouter<QuizzesState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(get))
        .routes(routes!(respond))
        .routes(routes!(impression))
        .routes(routes!(stats))
}

/// The widget's script at `/widget/dermis.js`, open to anyone (it holds no secret).
pub fn widget_router<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    axum::Router::new().route("/widget/dermis.js", axum::routing::get(widget))
}

/// Whether any origin may call `path` from a browser: a quiz, its responses and its views (the
/// widget on a brand's storefront; a write key authenticates, not a cookie). Statistics follow
/// the configured origins.
pub fn public_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/v1/quizzes/") else { return false };
    match rest.split_once('/') {
        None => !rest.is_empty(),
        Some((key, tail)) => !key.is_empty() && matches!(tail, "responses" | "impressions"),
    }
}

async fn widget() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        WIDGET_JS,
    )
}

fn problem(e: QuizError) -> Problem {
    match e {
        QuizError::Invalid(errors) => Problem::validation(errors),
        QuizError::NotFound(_) => Problem::not_found(e.to_string()),
        QuizError::Exists(_) | QuizError::Erased(_) => Problem::conflict(e.to_string()),
        QuizError::Unavailable(m) => Problem::unavailable(&m),
        QuizError::Store(e) => Problem::unavailable(&e),
    }
}

/// Who sends a response or a view: a storefront with a write key (HTTP Basic user, as the
/// Segment SDKs send it), or a bearer of role `admin` or `service` (a shop's backend; its events
/// go under the `dermis-quizzes` write key).
#[derive(Debug, Clone)]
pub enum Submitter {
    /// The write key's id.
    WriteKey(String),
    /// A bearer.
    Backend,
}

impl FromRequestParts<QuizzesState> for Submitter {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, s: &QuizzesState) -> Result<Self, Problem> {
        let header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::trim);
        let unauthenticated = || Problem::new(ProblemKind::Unauthenticated, "a write key (HTTP Basic user) is needed");
        let Some(value) = header else { return Err(unauthenticated()) };
        let Some((scheme, rest)) = value.split_once(' ') else { return Err(unauthenticated()) };
        if scheme.eq_ignore_ascii_case("basic") {
            let user = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .map(|t| t.split_once(':').map_or(t.as_str(), |(u, _)| u).to_owned())
                .ok_or_else(unauthenticated)?;
            let id = s.quizzes.ingestor().write_keys().resolve(&user).await.map_err(Problem::from)?;
            return id
                .map(Submitter::WriteKey)
                .ok_or_else(|| Problem::new(ProblemKind::Unauthenticated, "unknown or revoked write key"));
        }
        let principal = s.auth.authenticate(Some(value)).await.map_err(dermis_auth::extract::problem)?;
        if !matches!(principal.role, Role::Admin | Role::Service) {
            return Err(Problem::new(
                ProblemKind::Forbidden,
                format!(
                    "this operation requires a write key, admin or service; the caller has role {}",
                    principal.role
                ),
            ));
        }
        Ok(Submitter::Backend)
    }
}

/// Defines a quiz, poll or survey. An invalid definition (a branch to an earlier or unknown
/// question, a value an option cannot set, a poll that is not one single-choice question) is a
/// 422 naming the field; a key in use a 409.
#[utoipa::path(post, path = "/v1/quizzes", tag = "quizzes", request_body = QuizDefinition,
    responses((status = 201, body = QuizDefinition), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody),
        (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn create(
    Auth(_who, ..): Auth<QuizWriters>,
    State(s): State<QuizzesState>,
    ApiJson(body): ApiJson<QuizDefinition>,
) -> Result<(StatusCode, Json<QuizDefinition>), Problem> {
    Ok((StatusCode::CREATED, Json(s.quizzes.create(body).await.map_err(problem)?)))
}

/// A quiz's definition. Open to anyone (the widget reads it on the storefront; a definition is
/// public content) and to any origin.
#[utoipa::path(get, path = "/v1/quizzes/{key}", tag = "quizzes", params(("key" = String, Path)),
    responses((status = 200, body = QuizDefinition), (status = 404, body = ProblemBody)),
    security(()))]
async fn get(State(s): State<QuizzesState>, ApiPath(key): ApiPath<String>) -> Result<Json<QuizDefinition>, Problem> {
    Ok(Json(s.quizzes.get(&key).await.map_err(problem)?))
}

/// The context of a response.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponseContext {
    /// The product a post-purchase survey is about (needed when an answer reports a reaction).
    pub product_id: Option<String>,
}

/// A visitor's answers.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponseBody {
    /// The device's anonymous id (the widget's, or the Segment SDK's).
    pub anonymous_id: Option<String>,
    /// The user id the shop knows (after login).
    pub user_id: Option<String>,
    /// One per answered question.
    pub answers: Vec<AnswerBody>,
    /// A client id: a retry with the same one is stored and ingested once.
    pub message_id: Option<String>,
    /// The product a post-purchase survey is about.
    pub context: Option<ResponseContext>,
}

/// Answers a quiz (a write key as the HTTP Basic user, as the SDKs send it; or an `admin` or
/// `service` bearer). Checked against the definition (unknown questions or options, a question
/// the branching skipped, a missing required answer, a rating outside 1 to 5: 422 naming the
/// field, nothing stored); an erased customer's response is a 409. Then stored and ingested: a
/// quiz as `Skin Quiz Completed` (the profile takes its skin type and concerns with source
/// `quiz`), a survey as `Survey Response` (and `Reaction Reported` when an option reports one),
/// a poll as `Poll Answer`.
#[utoipa::path(post, path = "/v1/quizzes/{key}/responses", tag = "quizzes", params(("key" = String, Path)),
    request_body = ResponseBody,
    responses((status = 201, body = ResponseReceipt), (status = 401, body = ProblemBody), (status = 403, body = ProblemBody),
        (status = 404, body = ProblemBody), (status = 409, description = "an erased customer", body = ProblemBody),
        (status = 422, body = ProblemBody), (status = 503, body = ProblemBody)),
    security(("writeKey" = []), ("bearer" = [])))]
async fn respond(
    who: Submitter,
    State(s): State<QuizzesState>,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<ResponseBody>,
) -> Result<(StatusCode, Json<ResponseReceipt>), Problem> {
    let write_key = match who {
        Submitter::WriteKey(id) => Some(id),
        Submitter::Backend => None,
    };
    let response = NewResponse {
        respondent: Respondent { user_id: body.user_id, anonymous_id: body.anonymous_id },
        answers: body.answers,
        message_id: body.message_id,
        product_id: body.context.and_then(|c| c.product_id),
    };
    let receipt = s.quizzes.respond(&key, write_key, response).await.map_err(problem)?;
    Ok((StatusCode::CREATED, Json(receipt)))
}

/// A widget view.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImpressionBody {
    /// The device's anonymous id.
    pub anonymous_id: String,
}

/// Views counted.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImpressionReceipt {
    /// The quiz.
    pub quiz: String,
}

/// Counts a widget view (the denominator of the response rate); a write key or an `admin` or
/// `service` bearer.
#[utoipa::path(post, path = "/v1/quizzes/{key}/impressions", tag = "quizzes", params(("key" = String, Path)),
    request_body = ImpressionBody,
    responses((status = 202, body = ImpressionReceipt), (status = 401, body = ProblemBody), (status = 403, body = ProblemBody),
        (status = 404, body = ProblemBody), (status = 422, body = ProblemBody)),
    security(("writeKey" = []), ("bearer" = [])))]
async fn impression(
    _who: Submitter,
    State(s): State<QuizzesState>,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<ImpressionBody>,
) -> Result<(StatusCode, Json<ImpressionReceipt>), Problem> {
    if body.anonymous_id.trim().is_empty() || body.anonymous_id.len() > 256 {
        return Err(Problem::validation(vec![dermis_core::FieldError::new("anonymous_id", "1 to 256 characters")]));
    }
    s.quizzes.impression(&key).await.map_err(problem)?;
    Ok((StatusCode::ACCEPTED, Json(ImpressionReceipt { quiz: key })))
}

/// Responses, views and the response rate, each question's answer distribution, and the same
/// per skin type (the answer to the question that sets it).
#[utoipa::path(get, path = "/v1/quizzes/{key}/stats", tag = "quizzes", params(("key" = String, Path)),
    responses((status = 200, body = QuizStats), (status = 404, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn stats(
    Auth(_who, ..): Auth<QuizReaders>,
    State(s): State<QuizzesState>,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<QuizStats>, Problem> {
    Ok(Json(s.quizzes.stats(&key).await.map_err(problem)?))
}

#[cfg(test)]
mod tests {
    use super::public_path;

    #[test]
    fn only_the_widgets_paths_are_public() {
        assert!(public_path("/v1/quizzes/skin"));
        assert!(public_path("/v1/quizzes/skin/responses"));
        assert!(public_path("/v1/quizzes/skin/impressions"));
        assert!(!public_path("/v1/quizzes/skin/stats"));
        assert!(!public_path("/v1/quizzes/"));
        assert!(!public_path("/v1/quizzes"));
        assert!(!public_path("/v1/experiments/x"));
    }
}
