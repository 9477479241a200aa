//! `POST /internal/inventory/apply`: requests another node forwarded to this one, the holder of
//! the writer's lease ([`crate::forward`]). Not part of the public API: only nodes sharing the
//! cluster secret can call it (the body signed with it, within five minutes), and it exists only
//! on nodes configured with one (404 otherwise).

use axum::body::Bytes;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use dermis_core::clock::SharedClock;
use dermis_core::{Problem, ProblemKind};

use super::{InventoryState, failed};
use crate::error::InventoryError;
use crate::forward::{self, Forwarded, ForwardedRequests};
use crate::service::Inventory;

/// What the route needs: the ledger and the clock signatures are checked against.
#[derive(Clone)]
pub struct Internal {
    /// The ledger.
    pub inventory: Inventory,
    /// The clock.
    pub clock: SharedClock,
}

impl FromRef<InventoryState> for Internal {
    fn from_ref(s: &InventoryState) -> Self {
        Self { inventory: s.inventory.clone(), clock: s.clock.clone() }
    }
}

/// The route alone, for a process that serves nothing else of the inventory (benchmarks, tests).
pub fn router(inventory: Inventory, clock: SharedClock) -> Router {
    Router::new().route(forward::PATH, route()).with_state(Internal { inventory, clock })
}

/// The most a forwarded body may hold: several nodes' submissions go in one request, each as
/// large as the public body limit allows.
pub const BODY_LIMIT: usize = 32 * 1024 * 1024;

/// The route's handler with its body limit.
pub(super) fn route<S>() -> axum::routing::MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Internal: FromRef<S>,
{
    axum::routing::post(apply).layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
}

async fn apply(State(s): State<Internal>, headers: HeaderMap, body: Bytes) -> Result<Json<Forwarded>, Response> {
    let Some(forwarding) = s.inventory.forwarding() else {
        return Err(Problem::not_found("this node takes no forwarded inventory writes").into_response());
    };
    let signature = headers.get(forward::SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !forward::verify(forwarding.secret(), signature, &body, s.clock.now_ms().div_euclid(1000)) {
        let problem =
            Problem::new(ProblemKind::Unauthenticated, "a forwarded write must be signed with the cluster secret");
        return Err(problem.into_response());
    }
    let ForwardedRequests { requests, setup_version } = serde_json::from_slice(&body)
        .map_err(|e| Problem::malformed(format!("not forwarded ledger requests: {e}")).into_response())?;
    // The sender knows a newer setup (a location or SKU it just added): this ledger takes it
    // before applying, or its requests would name what this one does not know yet.
    if setup_version > s.inventory.setup_version() {
        s.inventory.refresh().await.map_err(|e| not_applied(&e))?;
    }
    // Applied by this node's own writer, never forwarded again (two nodes that each think the
    // other holds the lease do not send a request back and forth).
    let answers = s.inventory.submit_here(requests).await.map_err(|e| match e {
        // The writer answers "not persisted" only when nothing of the batch was.
        InventoryError::NotPersisted { .. } => not_applied(&e),
        e => failed(&e).into_response(),
    })?;
    Ok(Json(Forwarded { answers, batches: s.inventory.batches() }))
}

/// `e` as a problem that tells the sender nothing of its request was applied.
fn not_applied(e: &InventoryError) -> Response {
    let mut response = failed(e).into_response();
    response.headers_mut().insert(forward::NOT_APPLIED_HEADER, HeaderValue::from_static("1"));
    response
}
