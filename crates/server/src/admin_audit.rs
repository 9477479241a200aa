//! The audit of admin actions: API keys (`/v1/api-keys...`), write keys (`/v1/write-keys...`),
//! a customer's stored events and their erasure (`/v1/events`), dead letters
//! (`/v1/events/dead-letters...`). Their routes belong to `dermis-auth` and `dermis-events`; this
//! layer, put on those routers in `app.rs`, records each call by an admin in the audit log before
//! the handler runs (actor, role, purpose from `x-purpose` or `administration`, request id, an
//! action such as `api_key.create`), and answers 503 when the log cannot take it: an admin action
//! that was not recorded is not carried out. `/v1/events?user_id=...` reads (or erases) a
//! customer's events: the entry names the customer id the user id resolves to, never the user id.
//!
//! Callers other than admins are left to the handler (401 or 403, nothing done): there is no
//! action to record.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dermis_audit::{Action, Auditor, Entry, RequestId};
use dermis_auth::{Authenticator, Role};
use dermis_core::Problem;
use dermis_customers::Customers;
use dermis_customers::access::AccessPurpose;

/// What the layer needs.
#[derive(Clone)]
pub struct AdminAudit {
    /// Authenticates the caller (as the handler will).
    pub auth: Arc<Authenticator>,
    /// The audit log.
    pub audit: Arc<dyn Auditor>,
    /// Resolves a user id to the customer id the entry names.
    pub customers: Customers,
}

/// The action an admin route performs, by method and route.
fn action_of(method: &Method, route: &str) -> Option<&'static str> {
    Some(match (method.as_str(), route) {
        ("POST", "/v1/api-keys") => "api_key.create",
        ("GET", "/v1/api-keys") => "api_key.list",
        ("DELETE", "/v1/api-keys/{id}") => "api_key.revoke",
        ("POST", "/v1/write-keys") => "write_key.create",
        ("GET", "/v1/write-keys") => "write_key.list",
        ("DELETE", "/v1/write-keys/{id}") => "write_key.revoke",
        ("GET", "/v1/events") => "events.read",
        ("DELETE", "/v1/events") => "events.erase",
        ("GET", "/v1/events/dead-letters") => "dead_letter.list",
        ("POST", "/v1/events/dead-letters/{id}/replay") => "dead_letter.replay",
        _ => return None,
    })
}

/// The `user_id` of a query string, percent-decoded.
fn user_id(query: Option<&str>) -> Option<String> {
    let q = query?;
    q.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == "user_id").map(|(_, v)| decode(v))
}

fn decode(v: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() && hex(bytes[i + 1]).is_some() && hex(bytes[i + 2]).is_some() => {
                out.push(hex(bytes[i + 1]).unwrap_or(0) * 16 + hex(bytes[i + 2]).unwrap_or(0));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Records an admin's call before the handler runs it.
pub async fn record(State(a): State<AdminAudit>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()).unwrap_or_default();
    let Some(name) = action_of(req.method(), &route) else { return next.run(req).await };
    let authorization = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Ok(principal) = a.auth.authenticate(authorization).await else { return next.run(req).await };
    if principal.role != Role::Admin {
        return next.run(req).await;
    }
    let purpose = match req.headers().get("x-purpose") {
        None => AccessPurpose::default(),
        Some(v) => match v.to_str().map_err(|_| AccessPurpose::parse("").unwrap_err()).and_then(AccessPurpose::parse) {
            Ok(p) => p,
            Err(problem) => return problem.into_response(),
        },
    };
    let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Ok(action) = Action::new(name) else { return Problem::internal(&format!("bad action {name}")).into_response() };
    let mut entry =
        Entry::by(&principal, purpose.or("administration"), RequestId(request_id.to_owned()).as_str(), action);
    if route == "/v1/events" {
        entry = entry.fields(&["events"]);
        if let Some(user) = user_id(req.uri().query()) {
            match a.customers.resolve(&user).await {
                Ok(Some(customer_id)) => entry = entry.about(customer_id),
                Ok(None) => {}
                Err(e) => return Problem::from(e).into_response(),
            }
        }
    }
    if let Err(e) = a.audit.record(entry).await {
        tracing::error!(error = %e, action = name, "the audit log refused an admin action; it is not carried out");
        return Problem::unavailable(&e).into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_routes_have_actions_and_user_ids_are_decoded() {
        assert_eq!(action_of(&Method::POST, "/v1/api-keys"), Some("api_key.create"));
        assert_eq!(action_of(&Method::DELETE, "/v1/write-keys/{id}"), Some("write_key.revoke"));
        assert_eq!(action_of(&Method::GET, "/v1/products"), None);
        for name in ["api_key.create", "events.read", "dead_letter.replay"] {
            assert!(Action::new(name).is_ok());
        }
        assert_eq!(user_id(Some("limit=5&user_id=shop%2Dada+x")).as_deref(), Some("shop-ada x"));
        assert_eq!(user_id(Some("anonymous_id=a")), None);
        assert_eq!(decode("100%"), "100%");
    }
}
