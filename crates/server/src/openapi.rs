//! The OpenAPI document's frame; paths and schemas come from the handlers' annotations, and
//! [`document_errors`] completes every operation with the errors the shared layers answer.

use dermis_core::ProblemKind;
use dermis_core::problem::{PROBLEM_JSON, ProblemBody};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr};
use utoipa::{Modify, PartialSchema, ToSchema};

/// The API document.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Dermis",
        description = "Backend for multi-channel skincare and cosmetics brands. Errors are RFC 9457 `application/problem+json`; see docs/api.md for the problem types.",
        license(name = "Apache-2.0")
    ),
    modifiers(&Security),
    tags(
        (name = "ops", description = "Health and readiness"),
        (name = "auth", description = "API keys for machine clients"),
        (name = "catalog", description = "Products, SKUs, ingredients and search"),
        (name = "features", description = "Online features of customers and products, updated from ingested events"),
        (name = "events", description = "Event log, dead letters and write keys"),
        (name = "ingestion", description = "Segment/RudderStack-compatible ingestion with a write key (HTTP Basic user name, or `writeKey` in the body)"),
        (name = "experiments", description = "A/B tests and bandits on placements: definitions, sticky GrowthBook-compatible assignment, exposures, results"),
        (name = "inventory", description = "Locations and channels, the stock ledger, cart reservations, lots, reports and POS sync"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT or dmk_ API key".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// Completes the document's error responses; run once every route is in it (the annotated
/// routes and the ingestion routes).
///
/// - Statuses that the middleware, the authentication extractor and the shared extractors give
///   are added to each operation they apply to, so the annotations list only what their own
///   route decides (403 of a role policy, 404, 409, 412, 422, 429):
///   - every operation: 500 (a panic, caught) and 503 (the request timeout; a database that
///     does not answer);
///   - operations with the `bearer` scheme: 401 (no, invalid, expired or revoked credentials);
///   - operations with path, query or header parameters or a body: 400 (unreadable parameters,
///     header or JSON);
///   - operations with a body: 413 (the body limit) and 415 (a body that is not JSON where JSON
///     is required, or a content encoding that cannot be read).
/// - An annotation's own response for a status is kept, with its description.
/// - Every error response is `application/problem+json` with the `ProblemBody` schema (the
///   annotations' `body = ProblemBody` says `application/json`), described by its problem's
///   title when the annotation gave no description; 401 documents `WWW-Authenticate`, 429 and
///   503 `Retry-After`.
pub fn document_errors(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    let mut schemas = vec![(ProblemBody::name().into_owned(), <ProblemBody as PartialSchema>::schema())];
    <ProblemBody as ToSchema>::schemas(&mut schemas);
    for (name, schema) in schemas {
        components.schemas.entry(name).or_insert(schema);
    }
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            complete(operation);
        }
    }
}

fn complete(op: &mut Operation) {
    let parameters = op.parameters.as_deref().unwrap_or_default();
    let has = |place: ParameterIn| parameters.iter().any(|p| p.parameter_in == place);
    let parameterized = has(ParameterIn::Path) || has(ParameterIn::Query) || has(ParameterIn::Header);
    let body = op.request_body.is_some();
    let bearer = op
        .security
        .iter()
        .flatten()
        .any(|requirement| serde_json::to_value(requirement).is_ok_and(|v| v.get("bearer").is_some()));
    let mut common: Vec<(u16, &str)> = Vec::new();
    if parameterized || body {
        common.push((400, "a parameter, header or body could not be read"));
    }
    if bearer {
        common.push((401, "no, invalid, expired or revoked credentials"));
    }
    if body {
        common.push((413, "the body is larger than this route accepts"));
        common.push((415, "the body's content type or content encoding is not one this route reads"));
    }
    common.push((500, "a failure on our side; the detail is in the server log under the request's `x-request-id`"));
    common.push((503, "the request ran out of time, or the database is unavailable; retry later"));
    for (status, description) in common {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(ResponseBuilder::new().description(description).build()));
    }
    for (status, response) in op.responses.responses.iter_mut() {
        let Some(status) = status.parse::<u16>().ok().filter(|s| *s >= 400) else { continue };
        if let RefOr::T(response) = response {
            as_problem(status, response);
        }
    }
}

/// Makes an error response a problem document.
fn as_problem(status: u16, response: &mut Response) {
    if response.description.trim().is_empty() {
        let kind = ProblemKind::from_status(axum::http::StatusCode::from_u16(status).unwrap_or_default());
        response.description = kind.title().to_owned();
    }
    response.content.clear();
    response.content.insert(PROBLEM_JSON.to_owned(), Content::new(Some(Ref::from_schema_name(ProblemBody::name()))));
    let header = |name: &str, description: &str, schema_type: Type| {
        (
            name.to_owned(),
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(schema_type))
                .description(Some(description))
                .build(),
        )
    };
    match status {
        401 => {
            let (name, h) = header("WWW-Authenticate", "`Bearer`", Type::String);
            response.headers.entry(name).or_insert(h);
        }
        429 | 503 => {
            let (name, h) = header("Retry-After", "seconds after which a retry may succeed", Type::Integer);
            response.headers.entry(name).or_insert(h);
        }
        _ => {}
    }
}
