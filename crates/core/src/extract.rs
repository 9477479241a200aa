//! Request extractors whose every rejection is a [`Problem`] that says what was wrong and where.
//!
//! - malformed JSON, an empty body or an unreadable query string: 400;
//! - a body over the route's limit: 413; a body that is not JSON: 415;
//! - well-formed JSON with a missing, unknown or wrongly typed field (including numbers out of
//!   range): 422 naming the field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, IF_MATCH};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::{FieldError, Problem, ProblemKind};

/// A JSON body, deserialized strictly (see the module docs for the rejections).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_json_body(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A JSON body with its raw bytes (to digest for idempotency keys).
#[derive(Debug, Clone)]
pub struct ApiJsonBytes<T>(pub T, pub Bytes);

impl<T, S> FromRequest<S> for ApiJsonBytes<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_json_body(req, state).await?;
        let value = parse_json(&bytes)?;
        Ok(Self(value, bytes))
    }
}

async fn read_json_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Problem> {
    if !is_json_content_type(req.headers().get(CONTENT_TYPE)) {
        return Err(Problem::new(
            ProblemKind::UnsupportedMediaType,
            "expected a body with Content-Type: application/json",
        ));
    }
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(ProblemKind::PayloadTooLarge, "the request body exceeds the limit of this route")
        } else {
            Problem::malformed(format!("the request body could not be read: {rejection}"))
        }
    })
}

/// Parses a JSON document into `T`, turning every failure into a 400 or 422 [`Problem`].
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::malformed("the request body is empty; expected a JSON document"));
    }
    if contains_nul_escape(bytes) {
        return Err(Problem::malformed("NUL characters (\\u0000) are not accepted"));
    }
    // The common case parses once, without tracking the path (which copies every key it meets);
    // a failure is parsed again with the path, to say where.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| json_problem(e, bytes))?;
    de.end().map_err(|e| Problem::malformed(format!("trailing characters after the JSON document: {e}")))?;
    Ok(value)
}

/// True when the JSON text has a `\u0000` escape outside of an escaped backslash.
fn contains_nul_escape(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i + 5 < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes[i + 1] == b'u' && bytes[i + 2..].starts_with(b"0000") {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

fn json_problem(err: serde_path_to_error::Error<serde_json::Error>, bytes: &[u8]) -> Problem {
    let path = err.path().to_string();
    let inner = err.into_inner();
    // Judge the whole document, not where streaming stopped: a malformed document is a 400 even
    // when a member before its flaw was already wrong, and a well-formed one is a 422 naming the
    // member even when serde_json calls the mismatch a syntax error (a number where an enum's
    // name belongs).
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(bytes) {
        return Problem::malformed(format!("malformed JSON: {e}"));
    }
    use serde_json::error::Category;
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io if path != "." => {
            Problem::validation(vec![FieldError::new(path, "has the wrong type")])
        }
        Category::Syntax | Category::Eof | Category::Io => Problem::malformed(format!("malformed JSON: {inner}")),
        Category::Data => {
            let message = strip_position(&inner.to_string());
            let (field, message) = locate_field(&path, message);
            Problem::validation(vec![FieldError::new(field, message)])
        }
    }
}

/// serde's messages end with " at line 1 column 17"; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// "missing field `name`" at path "." names the field `name`, not the root.
fn locate_field(path: &str, message: String) -> (String, String) {
    // serde_path_to_error's path ends at the parent for a missing field, at the field for an
    // unknown one.
    let join = |name: &str| {
        if path == "." {
            name.to_owned()
        } else if path == name || path.ends_with(&format!(".{name}")) {
            path.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    for prefix in ["missing field `", "unknown field `"] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some(end) = rest.find('`')
        {
            let name = &rest[..end];
            let what = if prefix.starts_with("missing") {
                "is required".to_owned()
            } else {
                "is not a known field".to_owned()
            };
            let tail = rest[end + 1..].trim_start_matches(',').trim();
            let what = if tail.is_empty() { what } else { format!("{what} ({tail})") };
            return (join(name), what);
        }
    }
    let field = if path == "." { "(body)".to_owned() } else { path.to_owned() };
    (field, message)
}

/// Whether a `Content-Type` is JSON (`application/json`, with parameters, or `application/*+json`).
pub fn is_json_content_type(value: Option<&axum::http::HeaderValue>) -> bool {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else { return false };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// An optional JSON body: none (or only whitespace) is `T::default()`; otherwise it must say
/// `Content-Type: application/json` (415) and parse (400/422, as [`ApiJson`]).
pub fn optional_json<T: DeserializeOwned + Default>(
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<T, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    if !is_json_content_type(headers.get(CONTENT_TYPE)) {
        return Err(Problem::new(
            ProblemKind::UnsupportedMediaType,
            "expected a body with Content-Type: application/json",
        ));
    }
    parse_json(body)
}

/// A client-chosen `Idempotency-Key` (1 to 255 visible ASCII characters). As an extractor,
/// `Option<IdempotencyKey>` is `None` without the header and a 400 with a bad one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Validates a key.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() || raw.len() > 255 {
            return Err("must be 1 to 255 characters");
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be visible ASCII characters without spaces");
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else { return Ok(None) };
        let bad = |m: &str| Problem::malformed(format!("the Idempotency-Key header {m}"));
        let text = value.to_str().map_err(|_| bad("must be visible ASCII"))?;
        Self::parse(text).map(Some).map_err(bad)
    }
}

/// The version an `If-Match` header names (`"3"` or `W/"3"`). As an extractor, `Option<IfMatch>`
/// is `None` without the header and a 400 with one that is not a version this API issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfMatch(pub i64);

impl<S: Send + Sync> OptionalFromRequestParts<S> for IfMatch {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        let Some(value) = parts.headers.get(IF_MATCH) else { return Ok(None) };
        let text = value.to_str().unwrap_or("").trim();
        let tag = text.strip_prefix("W/").unwrap_or(text);
        tag.strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .and_then(|v| v.parse::<i64>().ok())
            .map(|v| Some(IfMatch(v)))
            .ok_or_else(|| Problem::malformed("If-Match must be an ETag returned by this API, such as \"3\""))
    }
}

/// The `ETag` header value for a version.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// A query string deserialized into `T`; a bad parameter is a 400 naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        if query.to_ascii_lowercase().contains("%00") {
            return Err(Problem::malformed("NUL characters are not accepted in the query string"));
        }
        serde_urlencoded::from_str(query)
            .map(ApiQuery)
            .map_err(|e| Problem::malformed(format!("invalid query string: {e}")))
    }
}

/// Path parameters; a parameter that does not parse is a 400.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.path().to_ascii_lowercase().contains("%00") {
            return Err(Problem::malformed("NUL characters are not accepted in the path"));
        }
        <axum::extract::Path<T> as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|e| Problem::malformed(format!("invalid path parameter: {}", e.body_text())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Price {
        amount_minor: i64,
        currency: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    #[allow(dead_code)]
    enum Status {
        Active,
        Archived,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        price: Price,
        #[serde(default)]
        status: Option<Status>,
    }

    fn err(json: &str) -> Problem {
        parse_json::<Body>(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn rejections_name_the_field() {
        let p = err(r#"{"price":{"amount_minor":1,"currency":"EUR"}}"#);
        assert_eq!((p.kind, p.errors[0].field.as_str()), (ProblemKind::ValidationFailed, "name"));
        let p = err(r#"{"name":"a","price":{"amount_minor":"x","currency":"EUR"}}"#);
        assert_eq!(p.errors[0].field, "price.amount_minor");
        let p = err(r#"{"name":"a","price":{"amount_minor":1e400,"currency":"EUR"}}"#);
        assert!(matches!(p.kind, ProblemKind::ValidationFailed | ProblemKind::MalformedRequest), "{p:?}");
        let p = err(r#"{"name":"a","price":{"amount_minor":99999999999999999999999,"currency":"EUR"}}"#);
        assert_eq!(p.kind.status().as_u16() / 100, 4);
        let p = err(r#"{"name":"a","nope":1,"price":{"amount_minor":1,"currency":"EUR"}}"#);
        assert_eq!(p.errors[0].field, "nope");
        let p = err(r#"{"name":"a","price":{"amount_minor":1,"currency":"EUR","x":2}}"#);
        assert_eq!(p.errors[0].field, "price.x");
        let p = err(r#"{"name":"a","price":{"currency":"EUR"}}"#);
        assert_eq!(p.errors[0].field, "price.amount_minor");
        assert_eq!(err("{\"name\":").kind, ProblemKind::MalformedRequest);
        assert_eq!(err("  ").kind, ProblemKind::MalformedRequest);
        assert_eq!(err(r#"{"name":"a\u0000b"}"#).kind, ProblemKind::MalformedRequest);
        assert!(!contains_nul_escape(br#"{"name":"a\\u0000b"}"#), "an escaped backslash is not a NUL");
        // serde_json calls a number where an enum belongs a syntax error; it is a wrong type.
        for status in ["12345", "[1]", "true", "{}"] {
            let p = err(&format!(r#"{{"name":"a","price":{{"amount_minor":1,"currency":"EUR"}},"status":{status}}}"#));
            assert_eq!((p.kind, p.errors[0].field.as_str()), (ProblemKind::ValidationFailed, "status"), "{status}");
        }
        let p = err(r#"{"name":"a","price":{"amount_minor":1,"currency":"EUR"},"status":1e400}"#);
        assert_eq!(p.kind, ProblemKind::MalformedRequest, "a number out of any range is not JSON we read");
        let p = err(r#"{"name":"a","price":{"amount_minor":1,"currency":"EUR"},"status":"active""#);
        assert_eq!(p.kind, ProblemKind::MalformedRequest, "a truncated document stays malformed");
        // A flaw after a wrong member: the document is malformed, whatever streaming saw first.
        assert_eq!(err(r#"{"nope": 1, "name": "#).kind, ProblemKind::MalformedRequest);
        assert_eq!(err(r#"{"name": 1, "price": {"amount_minor": 1e400}}"#).kind, ProblemKind::MalformedRequest);
        assert_eq!(parse_json::<Body>(b"[[1], \"\xff\"]").unwrap_err().kind, ProblemKind::MalformedRequest);
        let trailing = r#"{"name":"a","price":{"amount_minor":1,"currency":"EUR"}} x"#;
        assert_eq!(err(trailing).kind, ProblemKind::MalformedRequest);
    }

    #[test]
    fn keys_are_bounded_visible_ascii() {
        assert!(IdempotencyKey::parse("order-123_ABC").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse("é").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
    }

    #[test]
    fn json_content_types() {
        use axum::http::HeaderValue;
        let ok = |s: &'static str| is_json_content_type(Some(&HeaderValue::from_static(s)));
        assert!(ok("application/json"));
        assert!(ok("Application/JSON; charset=utf-8"));
        assert!(ok("application/merge-patch+json"));
        assert!(!ok("text/plain"));
        assert!(!is_json_content_type(None));
    }
}
