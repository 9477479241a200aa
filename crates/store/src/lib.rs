//! Storage for every Dermis domain: one [`Db`] handle that is either an embedded SQLite file
//! (the default) or a PostgreSQL server (scale-out), chosen by URL at start.
//!
//! # Layout
//! - [`db`]: [`Db`], connecting, pools (SQLite gets one writer connection and several readers,
//!   which is how SQLite serializes writes anyway), health, pool statistics.
//! - [`migrate`]: per-domain, versioned migrations with a SQL file per backend; safe to run from
//!   several nodes at once without advisory locks.
//! - [`idempotency`]: `Idempotency-Key` records, written in the same transaction as the write
//!   they protect.
//! - [`private`]: the data folder (0700) and files (0600) only their owner may read.
//! - [`error`]: [`StoreError`], which tells unique violations and outages apart from bugs.
//! - `testing` (feature): an isolated database per test on either backend.
//!
//! Domain code writes its SQL once, in the portable subset both backends share (`$1` parameters,
//! `BIGINT` integers and millisecond timestamps, `TEXT` strings, `ON CONFLICT`, `RETURNING`), and
//! runs it through `sqlx`'s `Any` driver. This crate owns the `dermis_migrations` and
//! `idempotency_keys` tables and nothing else; it knows no domain.

pub mod db;
pub mod error;
pub mod idempotency;
pub mod migrate;
pub mod private;
#[cfg(feature = "testing")]
pub mod testing;

pub use db::{Backend, Db, PoolStats};
pub use error::StoreError;
pub use migrate::Migration;
pub use sqlx;

/// Migrations of the tables this crate owns.
pub const MIGRATIONS: &[Migration] = &[Migration {
    domain: "store",
    version: 1,
    name: "idempotency keys",
    sqlite: include_str!("../migrations/0001_idempotency.sql"),
    postgres: include_str!("../migrations/0001_idempotency.sql"),
}];
