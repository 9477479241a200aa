//! The event log and the dead letters. `(write_key_id, messageId)` is unique, so a retried
//! message is stored once. Appends go through [`LogWriter`]; reads and erasure are the same
//! SQL on both backends.
//!
//! # Parts
//! - `job`: what one request appends ([`Append`]: its [`Accepted`] messages, its [`DeadLetter`]s
//!   and what goes to the bus).
//! - `keys`: event keys and ids. On SQLite an integer `milliseconds << 20 | counter`, issued
//!   strictly increasing by the writer thread and shown as `evt_<ULID>`; on PostgreSQL the text
//!   id. Cursors ([`id_floor`], "after this id") read alike on both.
//! - `subject`: whose events ([`Subject`]), and how each backend finds them: indexes on
//!   `events` on PostgreSQL; on SQLite the customer index up to its watermark, then a scan of
//!   the short tail after it.
//! - `writer`: [`LogWriter`], which picks the backend's way of appending.
//! - `sqlite`: the writer thread: a connection of its own on the file, prepared statements,
//!   group commit (every job waiting, up to 2,500 rows, in one transaction, answered after the
//!   commit), publishing to the embedded bus in the same transaction when it lives in the file.
//! - `indexer`: the SQLite customer index (`events_by_user`, `events_by_anonymous`) kept behind
//!   the log: about once a second a thread reads the events after the watermark, sorts their
//!   customer ids and hands them to the writer in slices that ride in its group commits.
//! - `postgres`: appends on PostgreSQL, each request in a transaction of its own on its own
//!   connection, multi-row inserts.
//! - `read`: one customer's events ([`events_of`]), messages by `messageId` ([`messages`]),
//!   everything after a point ([`since`]), dead letters, and the erasures a restored snapshot
//!   applies again ([`erasures_since`]).
//! - `pii`: the one-time rewrite of messages stored with personal traits ([`rewrite_payloads`],
//!   its progress in `event_pii_moves`).
//! - `erase`: erasure of one customer's events ([`erase`]), with the bus message that makes
//!   every node forget them.
//! - `retention`: events received before a cutoff anonymized ([`anonymize_before`]: what stays
//!   and what goes is listed there), old dead letters deleted.
//!
//! The parts import the shared ones (`job`, `keys`, `subject`) and never one another in both
//! directions: `writer` uses `sqlite`, `indexer` and `postgres`; `indexer` uses `sqlite`.

mod erase;
mod indexer;
mod job;
mod keys;
mod pii;
mod postgres;
mod read;
mod retention;
mod sqlite;
mod subject;
mod writer;

pub use erase::{Erased, erase};
pub use job::{Accepted, Append, DeadLetter};
pub use keys::id_floor;
pub use pii::{PiiProgress, pii_progress, rewrite_payloads, save_pii_progress};
pub use read::{
    Logged, StoredDeadLetter, StoredEvent, dead_letter, dead_letters, erasures_since, events_of, messages, since,
};
pub use retention::{ANONYMIZED, Anonymized, anonymize_before, anonymize_payload, delete_dead_letters_before};
pub use subject::Subject;
pub use writer::LogWriter;
