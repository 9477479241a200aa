//! The audit log of Dermis: an append-only, hash-chained record of every read and write of a
//! customer's personal or health data and of every admin action — who (subject and role), why
//! (purpose), in which request, what (action, customer, field names) and when.
//!
//! It owns the tables `audit_log` (one row per entry) and `audit_head` (one row: the last
//! entry's seq and hash). Entries are only ever inserted: this crate has no UPDATE or DELETE
//! of `audit_log`, and exposes none. Each entry carries `prev_hash`, the hash of the entry
//! before it, and `hash`, SHA-256 over a canonical encoding of all its columns (see
//! [`chain`]). Appends serialize on the chain head (one `UPDATE audit_head ... RETURNING` in the
//! entry's transaction: on SQLite under the single writer's `BEGIN IMMEDIATE`, on PostgreSQL
//! under the head row's lock), so the chain stays linear with any number of writers or nodes.
//! [`Audit::verify`] recomputes the chain and names the first entry that was edited, deleted
//! (a gap in `seq`, a broken `prev_hash`, or an entry missing at the end that the head still
//! counts) or inserted.
//!
//! # Erasure
//! A customer's erasure keeps their audit entries, with the customer id as given. The log is
//! the record of who accessed whose data: the controller must be able to demonstrate it
//! (GDPR art. 5(2), accountability), and art. 17(3)(b) and (e) exempt data kept for a legal
//! obligation or for legal claims. Pseudonymizing or deleting the id at erasure would mean
//! rewriting entries, which the chain exists to forbid. The entries hold no personal data
//! beyond that opaque id and the actor's subject: field *names* (`email`), never values. Callers
//! pass the resolved customer id (a ULID), not a shop's `user_id` or an email.
//!
//! # Limits
//! The chain is unkeyed: someone with write access to the database who rewrites an entry and
//! recomputes every later hash and the head is not detected. Publishing the head
//! ([`Audit::head`]) elsewhere from time to time (a log line, a ticket, a WORM bucket) anchors
//! it.
//!
//! # Layout
//! - [`model`]: [`Entry`] (what a caller records), [`Action`], [`Record`] (a stored entry),
//!   [`BadEntry`], [`AuditError`].
//! - [`chain`]: the canonical encoding and hash of an entry, and the genesis hash.
//! - `store`: the SQL (one text for both backends): append under the head, page through the
//!   log in one snapshot, per-customer export.
//! - [`service`]: [`Audit`] (takes a `SharedClock`; its group-commit writer task), the
//!   [`Auditor`] trait route handlers call (`record`, `record_all` for the entries of one
//!   request queued together, `export`), and [`RequestId`], an axum extractor for the
//!   `x-request-id` the server sets.
//! - `examples/append_bench.rs`: appends per second and p99, sequential and 16 writers, on
//!   SQLite and PostgreSQL; verification time.

pub mod chain;
pub mod model;
pub mod service;
mod store;

pub use model::{Action, AuditError, BadEntry, Entry, Record};
pub use service::{Audit, Auditor, RequestId};

use dermis_store::Migration;

/// Migrations of the tables this crate owns (`audit_log`, `audit_head`).
pub const MIGRATIONS: &[Migration] = &[Migration {
    domain: "audit",
    version: 1,
    name: "hash-chained audit log and its head",
    sqlite: include_str!("../migrations/0001_audit_log.sql"),
    postgres: include_str!("../migrations/0001_audit_log.sql"),
}];
