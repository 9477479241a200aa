//! [`OrdersError`]: why an orders operation did not happen, and its one mapping to a problem.

use dermis_core::{FieldError, Problem, ProblemKind};
use dermis_inventory::directory::LookupError;
use dermis_inventory::{InventoryError, Rejection};
use dermis_store::StoreError;

/// What went wrong. Nothing of a failed operation was applied to the ledger unless its
/// idempotent retry would find it (every ledger command of an order has a key of its own).
#[derive(Debug, thiserror::Error)]
pub enum OrdersError {
    /// No such cart (or not the caller's).
    #[error("no cart {0}")]
    CartNotFound(String),
    /// No such order (or not the caller's).
    #[error("no order {0}")]
    OrderNotFound(String),
    /// A field of the request is invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as the body names it.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The caller may not do this to this resource.
    #[error("{0}")]
    Forbidden(String),
    /// The transition is not allowed from the order's (or cart's) current state.
    #[error("{0}")]
    WrongState(String),
    /// The `(channel, external_id)` pair names an order with other lines.
    #[error("{channel} order {external_id} already exists with other lines")]
    ExternalIdTaken {
        /// The channel.
        channel: String,
        /// The channel's id.
        external_id: String,
    },
    /// The `Idempotency-Key` was used for another request.
    #[error("this Idempotency-Key was used for another request")]
    IdempotencyKeyReused,
    /// The ledger refused the command (short stock, expired hold, more returned than sold ...).
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The ledger could not be reached or could not persist.
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    /// A SKU could not be resolved.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// The catalog could not be read.
    #[error("the catalog could not be read: {0}")]
    Catalog(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OrdersError {
    /// An invalid field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), message: message.into() }
    }
}

impl From<dermis_store::sqlx::Error> for OrdersError {
    fn from(e: dermis_store::sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

impl From<OrdersError> for Problem {
    fn from(e: OrdersError) -> Self {
        let detail = e.to_string();
        match e {
            OrdersError::CartNotFound(_) | OrdersError::OrderNotFound(_) => Problem::not_found(detail),
            OrdersError::Invalid { field, message } => Problem::validation(vec![FieldError::new(field, message)]),
            OrdersError::Forbidden(_) => Problem::new(ProblemKind::Forbidden, detail),
            OrdersError::WrongState(_) | OrdersError::ExternalIdTaken { .. } => Problem::conflict(detail),
            OrdersError::IdempotencyKeyReused => Problem::new(ProblemKind::IdempotencyKeyReused, detail),
            OrdersError::Rejected(rejection) => match rejection {
                // Orders name their own reservations: one the ledger does not know is ours to
                // explain, not the caller's.
                Rejection::UnknownReservation { .. } => Problem::conflict(detail),
                other => dermis_inventory::routes::problem(&other),
            },
            OrdersError::Inventory(InventoryError::Setup(setup)) => Problem::conflict(setup.to_string()),
            OrdersError::Inventory(e) => dermis_inventory::routes::failed(&e),
            OrdersError::Lookup(LookupError::Unknown(_)) => {
                Problem::validation(vec![FieldError::new("lines.sku_id", detail)])
            }
            OrdersError::Lookup(LookupError::Catalog(_)) => Problem::unavailable(&detail),
            OrdersError::Lookup(LookupError::Inventory(InventoryError::Setup(setup))) => {
                Problem::conflict(setup.to_string())
            }
            OrdersError::Lookup(LookupError::Inventory(e)) => Problem::unavailable(&e),
            OrdersError::Catalog(_) => Problem::unavailable(&detail),
            OrdersError::Store(e) => e.into(),
        }
    }
}
