//! The event bus: domain events and ingested events travel on it from the writer to every
//! consumer (feature store, projections, analytics).
//!
//! # Layout
//! - [`EventBus`]: the one trait; at-least-once delivery to named, durable consumers; messages
//!   carry an id, and publishing an id twice stores it once.
//! - [`embedded`]: the default, in the store (`bus_messages`, `bus_offsets`) with in-process
//!   wake-ups: durable across restarts, nothing else to run.
//! - [`nats`]: NATS JetStream (`DERMIS_BUS_URL=nats://...`) for several nodes.
//! - [`relay`]: the one outbox relay; a domain registers its outbox as an [`relay::OutboxSource`].
//! - [`projection`]: state kept current from the bus ([`projection::Projection`]): rebuilt at
//!   start, fed its topic, snapshotted, its lag and health reported.
//!
//! Both pass the same conformance suite (`tests/conformance.rs`). Consumers must be idempotent:
//! a message whose acknowledgement was lost is delivered again.

pub mod embedded;
pub mod nats;
pub mod projection;
pub mod relay;

use std::time::Duration;

use async_trait::async_trait;
use dermis_store::{Migration, StoreError};

/// Migrations of the embedded bus's tables.
pub const MIGRATIONS: &[Migration] = &[Migration {
    domain: "bus",
    version: 1,
    name: "embedded bus log and offsets",
    sqlite: include_str!("../migrations/0001_bus.sql"),
    postgres: include_str!("../migrations/0001_bus.sql"),
}];

/// A message on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Position in the bus (increasing in publish order).
    pub seq: u64,
    /// Topic (`catalog.product.created`, `events.track`).
    pub topic: String,
    /// Partition key (a customer or product id): messages of one key keep their order.
    pub key: String,
    /// Unique id; publishing it again is a no-op.
    pub id: String,
    /// JSON payload.
    pub payload: String,
}

/// A message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Topic.
    pub topic: String,
    /// Partition key.
    pub key: String,
    /// Unique id; publishing it again is a no-op.
    pub id: String,
    /// JSON payload.
    pub payload: String,
}

/// Bus failures.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The embedded store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// NATS failed.
    #[error("nats: {0}")]
    Nats(String),
    /// A consumer or topic name that the bus cannot use.
    #[error("invalid name: {0}")]
    InvalidName(String),
}

/// The bus.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Which implementation (`embedded`, `nats`).
    fn name(&self) -> &'static str;

    /// Publishes a message; returns once it is durable. A message whose id was published before
    /// is not stored again.
    async fn publish(&self, topic: &str, key: &str, id: &str, payload: &str) -> Result<(), BusError>;

    /// Publishes several messages in order; returns once all are durable. The embedded bus
    /// writes them in one transaction; the default publishes one by one.
    async fn publish_all(&self, messages: &[Outgoing]) -> Result<(), BusError> {
        for m in messages {
            self.publish(&m.topic, &m.key, &m.id, &m.payload).await?;
        }
        Ok(())
    }

    /// Up to `max` messages that `consumer` has not acknowledged, in publish order, waiting up
    /// to `wait` when there are none. `prefix` selects topics: `""` all, `"catalog."` those under
    /// it, anything else one exact topic.
    async fn fetch(&self, consumer: &str, prefix: &str, max: usize, wait: Duration) -> Result<Vec<Envelope>, BusError>;

    /// Acknowledges `last` and every message `consumer` fetched before it.
    async fn ack(&self, consumer: &str, prefix: &str, last: &Envelope) -> Result<(), BusError>;

    /// How many messages on `prefix` `consumer` has not acknowledged (its lag).
    async fn lag(&self, consumer: &str, prefix: &str) -> Result<u64, BusError>;

    /// The position of the last message published (0 when none): every message published
    /// later has a greater [`Envelope::seq`]. The default, 0, claims nothing.
    async fn head(&self) -> Result<u64, BusError> {
        Ok(0)
    }

    /// Drops messages older than `max_age` (consumers behind by more lose them); positions keep
    /// increasing. Returns how many were dropped now (NATS drops them by itself: the stream has
    /// a maximum age, and this returns 0).
    async fn retain(&self, max_age: Duration) -> Result<u64, BusError>;
}

/// How long messages stay on the bus (the NATS stream's maximum age, the embedded bus's pruning).
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Checks a consumer or topic name: 1–100 of `A-Z a-z 0-9 - _ .`, not starting or ending with `.`.
pub fn check_name(name: &str) -> Result<(), BusError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && !name.ends_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok { Ok(()) } else { Err(BusError::InvalidName(name.to_owned())) }
}
