//! RFC 9457 problem details: the one shape every Dermis error has on the wire.
//!
//! A [`Problem`] carries a [`ProblemKind`] (which fixes the stable `type` URI, the `title` and the
//! HTTP status), a human `detail`, and for validation errors the offending fields. Internal errors
//! are logged with their cause; the client only learns that something failed on our side.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The kinds of problem Dermis reports. The `type` URI of each is stable: clients may match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The request could not be read (malformed JSON, bad query string, bad header).
    MalformedRequest,
    /// No or invalid credentials.
    Unauthenticated,
    /// Valid credentials without the right to do this.
    Forbidden,
    /// No such resource or route.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The request conflicts with the current state (duplicate unique value, ...).
    Conflict,
    /// An `If-Match` precondition did not hold.
    PreconditionFailed,
    /// The body is larger than the route accepts.
    PayloadTooLarge,
    /// The body's content type is not one the route accepts.
    UnsupportedMediaType,
    /// The request was read but its content is invalid; `errors` names the fields.
    ValidationFailed,
    /// An `Idempotency-Key` was reused with a different request.
    IdempotencyKeyReused,
    /// Too many requests; retry after the `Retry-After` header.
    RateLimited,
    /// The request took longer than the server allows.
    Timeout,
    /// A dependency (database, bus) is unreachable; retry later.
    Unavailable,
    /// A failure on our side; the detail is in the server log under the request id.
    Internal,
}

impl ProblemKind {
    /// Short stable name, the last segment of the `type` URI.
    pub fn slug(self) -> &'static str {
        match self {
            Self::MalformedRequest => "malformed-request",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::Conflict => "conflict",
            Self::PreconditionFailed => "precondition-failed",
            Self::PayloadTooLarge => "payload-too-large",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::ValidationFailed => "validation-failed",
            Self::IdempotencyKeyReused => "idempotency-key-reused",
            Self::RateLimited => "rate-limited",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status this kind is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            Self::MalformedRequest => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::ValidationFailed => StatusCode::UNPROCESSABLE_ENTITY,
            Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Short human summary, the same for every occurrence of this kind.
    pub fn title(self) -> &'static str {
        match self {
            Self::MalformedRequest => "The request could not be read",
            Self::Unauthenticated => "Authentication required",
            Self::Forbidden => "Not allowed",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::Conflict => "Conflict with the current state",
            Self::PreconditionFailed => "Precondition failed",
            Self::PayloadTooLarge => "Request body too large",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::ValidationFailed => "Validation failed",
            Self::IdempotencyKeyReused => "Idempotency key reused with a different request",
            Self::RateLimited => "Too many requests",
            Self::Timeout => "Request timed out",
            Self::Unavailable => "Service unavailable",
            Self::Internal => "Internal error",
        }
    }

    /// The kind for an HTTP error status produced outside our handlers (by the router or a layer).
    pub fn from_status(status: StatusCode) -> Self {
        match status.as_u16() {
            400 => Self::MalformedRequest,
            401 => Self::Unauthenticated,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            405 => Self::MethodNotAllowed,
            408 => Self::Timeout,
            409 => Self::Conflict,
            412 => Self::PreconditionFailed,
            413 => Self::PayloadTooLarge,
            415 => Self::UnsupportedMediaType,
            422 => Self::ValidationFailed,
            429 => Self::RateLimited,
            503 => Self::Unavailable,
            s if (400..500).contains(&s) => Self::MalformedRequest,
            _ => Self::Internal,
        }
    }

    /// The `type` URI (relative; every kind is described in `docs/api.md`).
    pub fn type_uri(self) -> String {
        format!("/problems/{}", self.slug())
    }
}

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Dotted path of the field in the request (`price.amount_minor`, `skus[2].barcode`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// An RFC 9457 problem, ready to be answered.
#[derive(Debug, Clone)]
pub struct Problem {
    /// What kind of problem this is.
    pub kind: ProblemKind,
    /// Human explanation of this occurrence.
    pub detail: String,
    /// Offending fields, for validation problems.
    pub errors: Vec<FieldError>,
    /// Seconds after which a retry may succeed (429, 503).
    pub retry_after: Option<u64>,
}

/// The wire form of a [`Problem`].
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemBody {
    /// Stable URI naming the kind of problem.
    #[serde(rename = "type")]
    pub type_: String,
    /// Summary of the kind.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// Explanation of this occurrence.
    pub detail: String,
    /// Offending fields (validation problems only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    /// A problem of `kind` with a detail.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Self { kind, detail: detail.into(), errors: Vec::new(), retry_after: None }
    }
    /// 400.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::MalformedRequest, detail)
    }
    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::NotFound, detail)
    }
    /// 409.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::Conflict, detail)
    }
    /// 422 with the offending fields.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        Self { errors, ..Self::new(ProblemKind::ValidationFailed, detail) }
    }
    /// 500: the cause is logged here and not shown to the client.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing_log_internal(cause);
        Self::new(ProblemKind::Internal, "an internal error occurred; it has been logged")
    }
    /// 503: the cause is logged here and not shown to the client.
    pub fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing_log_internal(cause);
        Self {
            retry_after: Some(1),
            ..Self::new(ProblemKind::Unavailable, "a dependency is unavailable; retry shortly")
        }
    }
    /// Sets `Retry-After`.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
    /// The wire form.
    pub fn body(&self) -> ProblemBody {
        ProblemBody {
            type_: self.kind.type_uri(),
            title: self.kind.title().to_owned(),
            status: self.kind.status().as_u16(),
            detail: self.detail.clone(),
            errors: self.errors.clone(),
        }
    }
}

fn tracing_log_internal(cause: &dyn std::fmt::Display) {
    tracing::error!(%cause, "request failed on our side");
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.kind.title(), self.kind.status(), self.detail)
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.kind.status();
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut res = (status, body).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.kind == ProblemKind::Unauthenticated {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_maps_back_from_its_status() {
        use ProblemKind::*;
        for kind in [
            MalformedRequest,
            Unauthenticated,
            Forbidden,
            NotFound,
            MethodNotAllowed,
            Conflict,
            PreconditionFailed,
            PayloadTooLarge,
            UnsupportedMediaType,
            ValidationFailed,
            RateLimited,
            Timeout,
            Unavailable,
            Internal,
        ] {
            assert_eq!(ProblemKind::from_status(kind.status()), kind, "{kind:?}");
        }
    }

    #[test]
    fn validation_detail_names_the_single_field() {
        let p = Problem::validation(vec![FieldError::new("name", "must not be empty")]);
        assert_eq!(p.detail, "name: must not be empty");
        assert_eq!(p.body().status, 422);
        assert_eq!(p.body().type_, "/problems/validation-failed");
    }
}
