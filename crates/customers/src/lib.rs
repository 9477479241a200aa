//! The customer data platform: customers' contact data, identifiers and skin profiles (each fact
//! with its source and time), the consent ledger, and the encryption that keeps personal and
//! health data unreadable at rest.
//!
//! # Layout
//! - [`analytics`]: pseudonymous analytics ids (HMAC per purpose) and the analytics view of
//!   customers who granted `analytics` (no direct identifier, no health fact).
//! - [`crypto`]: envelope encryption (AES-256-GCM; a data key per customer wrapped by a
//!   [`crypto::MasterKey`]; rotation re-wraps keys only; destroying a key shreds the customer's
//!   data) and the keyed hashes (HMAC-SHA256) that lookups use.
//! - [`model`]: what the domain stores and returns ([`Customer`], [`model::SkinProfile`],
//!   [`model::Consents`]).
//! - [`input`]: requests and their parsing ("parse, don't validate": E.164 phones, checked
//!   emails and dates, skin types, conditions, allergies resolved through the ingredient
//!   knowledge base, unknown names kept and reported).
//! - [`topics`]: the bus topics of the customers' events and [`topics::ProfileSink`] (the
//!   bottom of the crate); [`rules`]: the identity graph's limits and blocked values.
//! - [`store`]: the SQL, written once for SQLite and PostgreSQL; it only sees ciphertexts and
//!   hashes.
//! - [`service`]: [`Customers`], the operations (idempotent create, optimistic concurrency,
//!   consent enforced at write, outbox events in the same transaction, the projection updated
//!   after each commit).
//! - [`routes`]: `/v1/customers...`, `/v1/customer-erasures/{id}` and the access rules of each
//!   role (customers only their own; store associates see health facts only within an open
//!   consultation at their store; merchandisers and analysts no direct identifiers;
//!   dermatologists record assessments for, and read the skin profiles of, customers who granted
//!   `health_data`, nothing else).
//! - [`privacy`]: export (art. 15/20) and erasure (art. 17): [`privacy::PersonalDataSource`],
//!   the way every domain holding a customer's data contributes to both, and the events
//!   domain's contribution ([`privacy::EventsData`]).
//! - [`exports`]: asynchronous exports (`customer_exports`): a status resource whose document is
//!   made in the background, sealed under the customer's data key, deleted when it expires or
//!   the customer is erased.
//! - [`access`]: what the audit log is told about each request (`x-purpose`, the names of the
//!   fields read or written) and [`access::record`], which answers 503 when it cannot record.
//! - [`relay`]: the outbox as the one relay reads it ([`relay::CustomersOutbox`]).
//! - [`serving`]: [`serving::OnlineProfile`], the facts serving reads, derived from a customer
//!   under its consents.
//! - [`projection`]: [`projection::ProfileProjection`], the profile facts that serving reads
//!   (skin type, concerns, resolved allergies, pregnancy, sensitivities, consent state), in
//!   memory or, with Redis configured, in [`online::RedisProfiles`] (sealed under each
//!   customer's data key, cached per node).

//! - [`identity`]: the deterministic identity graph (identifiers of eight kinds as keyed hashes,
//!   per-kind limits, blocked values, reversible merges: [`Customers::merge`],
//!   [`Customers::unmerge`], [`Customers::apply_identity`]).
//! - [`feed`]: [`feed::CustomersIngest`], the ingestion hook and `events.ingested` projection
//!   (`customers`) that apply `identify`, `alias` and the skin quiz to the graph and the profile,
//!   and skin measurements, dermatologist assessments and consent carried in events' context
//!   (Segment `categoryPreferences`, RudderStack `consentManagement`, through a configurable
//!   [`feed::ConsentMapping`]).
//! - [`measurements`]: those steps ([`Customers::apply_feed`], idempotent per message and step):
//!   the measurements time series (readings sealed under the customer's key, stored only under
//!   `health_data`, counted when skipped), the profile's latest reading and 90-day trend per
//!   metric (source `device`), assessments (conditions and contraindicated ingredients, source
//!   `dermatologist`), consent decisions in event-time order.
//! - [`retention`]: measurements past their retention deleted
//!   ([`Customers::delete_measurements_before`], called by the server's sweeper).
//! - [`matching`]: probabilistic matching (Fellegi–Sunter, EM-estimated weights, blocking with a
//!   block-size cap) producing scored merge suggestions for review or auto-merge; pure code.
//! - [`suggestions`]: matching run over the stored customers ([`Customers::run_matching`]):
//!   suggestions stored for review (ids, scores, per-field evidence, never values), merges above
//!   the high threshold, accept and dismiss.
//!
//! This crate owns the `customers`, `customer_keys`, `customer_lookups` (the identity graph's
//! identifiers), `consent_events`, `customer_consultations`, `customer_erasures`,
//! `customer_identity_sightings`, `customer_identity_blocks`, `customer_merges`,
//! `customer_identity_applied`, `customer_suppressions`, `customer_exports`, `customer_measurements`,
//! `customer_feed_applied`, `customer_match_suggestions` and `customers_outbox` tables, and publishes
//! `customers.profile.changed`, `customers.consent.changed`, `customers.merged`,
//! `customers.unmerged` and `customers.erased` (customer ids and versions, never personal data). Other domains use [`Customers`], the projection or these
//! events, never the tables. The master key comes from the server's configuration
//! (`customers.master_key`, base64 of 32 bytes, or `customers.master_key_file`); on the
//! embedded deployment it is otherwise generated in `DATA_DIR/master.key`
//! ([`crypto::Keyring::configured`]).

pub mod access;
pub mod analytics;
pub mod crypto;
pub mod exports;
pub mod feed;
pub mod identity;
pub mod input;
pub mod matching;
pub mod measurements;
pub mod model;
pub mod online;
pub mod privacy;
pub mod projection;
pub mod relay;
pub mod retention;
pub mod routes;
pub mod rules;
pub mod service;
pub mod serving;
pub mod store;
pub mod suggestions;
pub mod topics;

use dermis_store::{Migration, StoreError};

pub use model::{Customer, Purpose};
pub use service::Customers;

/// Migrations of the tables this crate owns.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        domain: "customers",
        version: 1,
        name: "customers, keys, lookups, consent ledger, outbox",
        sqlite: include_str!("../migrations/0001_customers.sql"),
        postgres: include_str!("../migrations/0001_customers.sql"),
    },
    Migration {
        domain: "customers",
        version: 2,
        name: "store consultations",
        sqlite: include_str!("../migrations/0002_consultations.sql"),
        postgres: include_str!("../migrations/0002_consultations.sql"),
    },
    Migration {
        domain: "customers",
        version: 3,
        name: "erasure requests",
        sqlite: include_str!("../migrations/0003_erasures.sql"),
        postgres: include_str!("../migrations/0003_erasures.sql"),
    },
    Migration {
        domain: "customers",
        version: 4,
        name: "identity graph: identifiers' time and source, sightings, blocks, merges",
        sqlite: include_str!("../migrations/0004_identity.sql"),
        postgres: include_str!("../migrations/0004_identity.sql"),
    },
    Migration {
        domain: "customers",
        version: 5,
        name: "asynchronous exports",
        sqlite: include_str!("../migrations/0005_exports.sql"),
        postgres: include_str!("../migrations/0005_exports.sql"),
    },
    Migration {
        domain: "customers",
        version: 6,
        name: "measurements time series, feed steps applied",
        sqlite: include_str!("../migrations/0006_measurements.sql"),
        postgres: include_str!("../migrations/0006_measurements.sql"),
    },
    Migration {
        domain: "customers",
        version: 8,
        name: "suppressed identifiers of erased customers",
        sqlite: include_str!("../migrations/0008_suppressions.sql"),
        postgres: include_str!("../migrations/0008_suppressions.sql"),
    },
    Migration {
        domain: "customers",
        version: 9,
        name: "merge suggestions of probabilistic matching",
        sqlite: include_str!("../migrations/0009_match_suggestions.sql"),
        postgres: include_str!("../migrations/0009_match_suggestions.sql"),
    },
];

/// Everything a customers operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CustomersError {
    /// No customer with this id or user id.
    #[error("no customer {0}")]
    NotFound(String),
    /// A lookup value (email, phone, loyalty number, user id) belongs to another customer.
    #[error("this {field} is already used by another customer")]
    Duplicate {
        /// Which identifier.
        field: &'static str,
    },
    /// `If-Match` named another version than the current one.
    #[error("the customer is at version {actual}, not {expected}")]
    VersionMismatch {
        /// What the client expected.
        expected: i64,
        /// What is stored.
        actual: i64,
    },
    /// The write needs a consent the customer has not given; nothing was stored.
    #[error("storing these fields needs the customer's `{}` consent, which is not granted", .0.as_str())]
    ConsentRequired(Purpose),
    /// A value is invalid once combined with what is stored.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The request conflicts with the state of the identity graph (a merge of a customer with
    /// itself, or with a customer merged into it already).
    #[error("{0}")]
    Conflict(String),
    /// The caller may not act on this customer.
    #[error("{0}")]
    Forbidden(String),
    /// The idempotency key was used for a different request.
    #[error("the Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    /// Another domain failed its part of an export.
    #[error("the {0} domain could not export its part; retry")]
    Source(&'static str),
    /// A stored ciphertext or key did not open (a wrong master key, or a destroyed data key).
    #[error("customer data could not be decrypted: {0}")]
    Crypto(#[from] crypto::CryptoError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
