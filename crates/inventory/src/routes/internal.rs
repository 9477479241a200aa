//! `POST /internal/inventory/apply`: requests another node forwarded to this one, the holder of
//! the writer's lease ([`crate::forward`]). Not part of the public API: only nodes sharing the
//! cluster secret can call it (the body signed with it, within five minutes), and it exists only
//! on nodes configured with one (404 otherwise).

use axum::body::Bytes;
use axum::extract::{FromRef, State};
use axum::http::HeaderMap;
use axum::{Json, Router};
use dermis_core::clock::SharedClock;
use dermis_core::{Problem, ProblemKind};

use super::{InventoryState, failed};
use crate::command::Request;
use crate::forward::{self, Forwarded};
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
    Router::new().route(forward::PATH, axum::routing::post(apply)).with_state(Internal { inventory, clock })
}

pub(super) async fn apply(
    State(s): State<Internal>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Forwarded>, Problem> {
    let Some(forwarding) = s.inventory.forwarding() else {
        return Err(Problem::not_found("this node takes no forwarded inventory writes"));
    };
    let signature = headers.get(forward::SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !forward::verify(forwarding.secret(), signature, &body, s.clock.now_ms().div_euclid(1000)) {
        return Err(Problem::new(
            ProblemKind::Unauthenticated,
            "a forwarded write must be signed with the cluster secret",
        ));
    }
    let requests: Vec<Request> =
        serde_json::from_slice(&body).map_err(|e| Problem::malformed(format!("not a list of ledger requests: {e}")))?;
    // Applied by this node's own writer, never forwarded again (two nodes that each think the
    // other holds the lease do not send a request back and forth).
    let answers = s.inventory.submit_here(requests).await.map_err(|e| failed(&e))?;
    Ok(Json(Forwarded { answers, movements: s.inventory.movements() }))
}
