//! Event ingestion: the endpoints Segment and RudderStack SDKs send to, write keys, validation
//! against versioned JSON Schemas, the append-only event log and the dead-letter store.
//!
//! # Layout
//! - [`write_keys`]: sources and their keys (`dermis write-key create`, `/v1/write-keys`).
//! - [`message`]: one Segment message made canonical: type, ids, `messageId`, batch context
//!   merged, timestamps corrected for client clock skew as Segment does.
//! - [`schemas`]: the registry of JSON Schemas (`schemas/*.vN.json`) for e-commerce v2 and
//!   skincare events.
//! - [`log`]: the event log (deduplicated by write key and `messageId`) and dead letters, one
//!   folder of parts over shared job, key and customer types: [`log::LogWriter`] picks the
//!   backend; on SQLite one writer thread owns the appends (`log/sqlite.rs`: group commit over a
//!   prepared-statement connection of its own) and an indexer thread keeps the customer index
//!   behind it (`log/indexer.rs`); on PostgreSQL each request commits on its own connection
//!   (`log/postgres.rs`); reads (`log/read.rs`) and erasure (`log/erase.rs`) are the same SQL on
//!   both.
//! - [`ingest`]: a request body in, stored events and dead letters out, with per-message results;
//!   this node's projections of the stream ([`ingest::IngestHook`]) see what was stored before
//!   the answer leaves (read-your-writes).
//! - [`outbox`]: what ingestion hands to the event bus ([`outbox::Ingested`] on
//!   `events.ingested`: the ids of what was stored, never its content), written in the
//!   ingestion transaction and relayed by the one outbox relay ([`relay::IngestedOutbox`]).
//! - [`pii`]: [`pii::PiiPolicy`], the personal traits and the skincare events' health properties
//!   the log does not keep (moved out to this node's hooks before a message is stored, a
//!   `{"$moved": ...}` marker left in their place).
//! - [`pseudonym`]: the keyed hash that names customers everywhere the stream is projected.
//! - [`routes`]: `/v1/track|identify|page|screen|group|alias|batch|import`, the short forms, and the
//!   admin routes for events, dead letters and write keys.
//!
//! This crate owns the `write_keys`, `events`, `dead_letters`, `events_outbox`,
//! `event_erasures`, `event_pii_moves` and `pseudonym_keys` tables, and on SQLite the customer index written behind the log
//! (`events_by_user`, `events_by_anonymous`, `events_indexed`). Nothing is dropped silently: a
//! message is either in the log, or in the dead letters with its reason.

pub mod ingest;
pub mod log;
pub mod message;
pub mod outbox;
pub mod pii;
pub mod pseudonym;
pub mod relay;
pub mod routes;
pub mod schemas;
pub mod write_keys;

use dermis_store::{Migration, StoreError};

pub use pseudonym::Pseudonyms;

/// Migrations of the tables this crate owns.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        domain: "events",
        version: 1,
        name: "write keys, event log, dead letters",
        sqlite: include_str!("../migrations/0001_events.sql"),
        postgres: include_str!("../migrations/0001_events.sql"),
    },
    Migration {
        domain: "events",
        version: 2,
        name: "outbox to the event bus",
        sqlite: include_str!("../migrations/0002_events_outbox.sql"),
        postgres: include_str!("../migrations/0002_events_outbox.sql"),
    },
    Migration {
        domain: "events",
        version: 3,
        name: "integer event keys on SQLite",
        sqlite: include_str!("../migrations/0003_events_integer_keys.sqlite.sql"),
        postgres: include_str!("../migrations/0003_events_integer_keys.postgres.sql"),
    },
    Migration {
        domain: "events",
        version: 4,
        name: "erasures of customers' events",
        sqlite: include_str!("../migrations/0004_event_erasures.sql"),
        postgres: include_str!("../migrations/0004_event_erasures.sql"),
    },
    Migration {
        domain: "events",
        version: 5,
        name: "the customer index written behind the log on SQLite",
        sqlite: include_str!("../migrations/0005_events_customer_index.sqlite.sql"),
        postgres: include_str!("../migrations/0005_events_customer_index.postgres.sql"),
    },
    Migration {
        domain: "events",
        version: 6,
        name: "erasure records by pseudonym",
        sqlite: include_str!("../migrations/0006_erasures_by_pseudonym.sql"),
        postgres: include_str!("../migrations/0006_erasures_by_pseudonym.sql"),
    },
    Migration {
        domain: "events",
        version: 7,
        name: "the pseudonym key",
        sqlite: include_str!("../migrations/0007_pseudonym_keys.sql"),
        postgres: include_str!("../migrations/0007_pseudonym_keys.sql"),
    },
    Migration {
        domain: "events",
        version: 8,
        name: "the rewrite of stored messages without personal traits",
        sqlite: include_str!("../migrations/0008_event_pii_moves.sql"),
        postgres: include_str!("../migrations/0008_event_pii_moves.sql"),
    },
];

/// What an events operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// No write key, or an unknown or revoked one.
    #[error("missing, unknown or revoked write key")]
    BadWriteKey,
    /// The body is not a JSON object of the expected shape.
    #[error("{0}")]
    Malformed(String),
    /// The batch is over the limits.
    #[error("{0}")]
    TooLarge(String),
    /// Too many requests are being ingested at once.
    #[error("ingestion is saturated; retry shortly")]
    Saturated,
    /// No such dead letter or write key.
    #[error("{0}")]
    NotFound(String),
    /// A replayed dead letter is still invalid.
    #[error("the message is still invalid: {0}")]
    StillInvalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
