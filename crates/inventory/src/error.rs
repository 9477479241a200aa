//! [`InventoryError`]: why the inventory service could not do what it was asked, as opposed to a
//! [`crate::Rejection`], which is the ledger refusing a command (and is an answer, not an error).

use dermis_store::StoreError;

use crate::catalog::SetupError;
use crate::ledger::RestoreError;
use crate::model::Quantity;

/// What went wrong around the ledger: storage, the setup, a stored ledger that does not restore,
/// or the writer. When a submission ends in an error, nothing of it was applied (but after
/// [`InventoryError::Unconfirmed`], which may have been): retry it with the same idempotency keys.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The database failed (outage, constraint, corrupt row).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A balance row would have gone below zero: the database refused the batch. Only another
    /// writer changing the balances behind this one's back can cause it.
    #[error("balance {balance} cannot take {delta}: the database refused the batch")]
    Overdrawn {
        /// The balance key, as stored.
        balance: String,
        /// The change refused.
        delta: Quantity,
    },
    /// Another writer appended to the journal since this one loaded it, or (PostgreSQL) holds
    /// the writers' turn: the batch was refused.
    #[error("the journal's head is not movement {expected}, or another writer holds the turn: the batch was refused")]
    StaleLedger {
        /// The last movement id this writer knows.
        expected: u64,
    },
    /// The setup given, or the one stored, is invalid.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The stored journal and records do not make a consistent ledger.
    #[error("the stored inventory ledger cannot be restored: {0}")]
    Restore(#[from] RestoreError),
    /// The batch this submission was part of could not be made durable, so none of it was
    /// applied (the ledger was restored from the store). Retry with the same keys.
    #[error("not persisted, nothing was applied: {reason}")]
    NotPersisted {
        /// The underlying failure.
        reason: String,
    },
    /// The submission was sent to the node holding the writer's lease, which did not answer (a
    /// timeout, an error after it was sent): it may or may not have been applied. Retry with the
    /// same keys: a key applied before answers its first outcome.
    #[error(
        "not confirmed by the ledger's writer; it may have been applied, retry with the same idempotency keys: {reason}"
    )]
    Unconfirmed {
        /// What happened.
        reason: String,
    },
    /// The writer task has stopped (the runtime is shutting down).
    #[error("the inventory writer has stopped")]
    WriterStopped,
}
