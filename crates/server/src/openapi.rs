//! The OpenAPI document's frame; paths and schemas come from the handlers' annotations.

use utoipa::Modify;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

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
