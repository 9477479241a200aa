//! Cross-cutting HTTP behaviour: every error response is problem+json, whoever produced it (a
//! handler, the router's 404/405, a body limit, a timeout, a panic).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dermis_core::problem::PROBLEM_JSON;
use dermis_core::{Problem, ProblemKind};

/// Middleware: an error status whose body is not problem+json gets one.
pub async fn problem_bodies(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_problem = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    if is_problem {
        return res;
    }
    let kind = ProblemKind::from_status(status);
    let detail = match kind {
        ProblemKind::MethodNotAllowed => "this route does not accept this method".to_owned(),
        ProblemKind::PayloadTooLarge => "the request body exceeds the limit of this route".to_owned(),
        ProblemKind::Timeout => "the request took too long and was abandoned".to_owned(),
        ProblemKind::Unavailable => "the request could not be served in time; retry shortly".to_owned(),
        ProblemKind::NotFound => "no such route".to_owned(),
        _ => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    let (mut parts, _) = res.into_parts();
    let mut fresh = Problem::new(kind, detail).into_response();
    // Keep the headers the producer set (Allow on 405, request id), but not its body's type,
    // length or encoding.
    parts.headers.remove(header::CONTENT_LENGTH);
    // The replaced body may have been compressed by an inner layer; the new one is not.
    parts.headers.remove(header::CONTENT_ENCODING);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    *fresh.headers_mut() = parts.headers;
    *fresh.status_mut() = status;
    fresh
}

/// Fallback for unknown routes.
pub async fn not_found() -> Problem {
    Problem::not_found("no such route")
}

/// Turns a panic in a handler into a problem (the panic is logged by the trace layer).
pub fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("panic");
    tracing::error!(panic = msg, "handler panicked");
    let mut res = Problem::new(ProblemKind::Internal, "an internal error occurred; it has been logged").into_response();
    *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    res
}
