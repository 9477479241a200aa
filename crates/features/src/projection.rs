//! The feature store as a projection of the event stream ([`dermis_bus::projection`]): it
//! applies `events.ingested` from the bus (the messages other nodes stored, read from the log by
//! id, and erasures), rebuilds a node's in-memory features at start from its last snapshot and
//! the log, and saves snapshots.
//!
//! A message the node stored itself was applied when it was stored (read-your-writes, see
//! [`crate::service`]); with features in memory, where applying cannot fail, it is not read again.
//! With Redis (shared, and able to fail) every node applies every message: the ids make the
//! repeats count for nothing, and an update that failed at ingestion is applied here.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dermis_bus::Envelope;
use dermis_bus::projection::Projection;
use dermis_events::log;
use dermis_events::outbox::{Ingested, TOPIC};
use dermis_store::Db;
use serde::Deserialize;

use crate::memory::MemoryFeatures;
use crate::service::Features;
use crate::{CUSTOMER_TTL_MS, FeatureEvent};

/// How far before a snapshot's time the rebuild replays the log: events stored (by any node)
/// before it but applied here after the snapshot, because the relay or this consumer was behind.
/// Snapshots are not taken while the consumer is lagging, so only a relay outage longer than
/// this, followed by a crash before the next snapshot, can leave an event out.
pub const REPLAY_MARGIN_MS: i64 = 10 * 60 * 1000;

/// An `events.ingested` message as any release wrote it: nodes of the previous release put the
/// feature updates themselves on the bus.
#[derive(Deserialize)]
struct Incoming {
    #[serde(flatten)]
    ingested: Ingested,
    #[serde(default)]
    features: Vec<FeatureEvent>,
}

/// The online features of this node, as a projection.
pub struct FeatureProjection {
    features: Features,
    db: Db,
    node_id: String,
    memory: Option<Arc<MemoryFeatures>>,
    snapshot_every: Option<Duration>,
}

impl FeatureProjection {
    /// The projection of `features` on node `node_id`; `memory` when the store is this node's
    /// memory (then rebuilt and snapshotted every `snapshot_every`, if set).
    pub fn new(
        features: Features,
        db: Db,
        node_id: &str,
        memory: Option<Arc<MemoryFeatures>>,
        snapshot_every: Option<Duration>,
    ) -> Self {
        Self { features, db, node_id: node_id.to_owned(), memory, snapshot_every }
    }

    /// Applies one bus message.
    async fn apply_one(&self, incoming: Incoming) -> anyhow::Result<()> {
        let Incoming { ingested, mut features } = incoming;
        let pseudonyms = self.features.pseudonyms();
        // A node of an earlier release, or a message written before the upgrade, may name
        // customers in clear: what is applied in clear could never be erased.
        for f in &mut features {
            pseudonyms.ensure(&mut f.customer_id);
        }
        let seen_here = self.memory.is_some() && !ingested.node.is_empty() && ingested.node == self.node_id;
        if !seen_here && ingested.has_any(crate::mapping::updates_features) {
            let stored = log::messages(&self.db, &ingested.write_key_id, &ingested.messages).await?;
            features.extend(self.features.updates(stored.iter().map(|l| (l.write_key_id.as_str(), &l.message))).await);
        }
        self.features.apply(&features).await?;
        if !ingested.erase.is_empty() {
            let mut erase = ingested.erase;
            for s in &mut erase {
                pseudonyms.ensure(s);
            }
            self.features.forget(&erase, ingested.erased_at).await?;
        }
        Ok(())
    }

    /// Brings the in-memory features back: the last snapshot, then the event log from
    /// [`REPLAY_MARGIN_MS`] before it was taken (or from the customer TTL back). Replayed events
    /// the snapshot already counted are recognised by id. Returns how many log messages were
    /// replayed.
    async fn rebuild_memory(&self, memory: &MemoryFeatures) -> anyhow::Result<u64> {
        let now = self.features.clock().now_ms();
        let from = match crate::snapshot::load(&self.db, &self.node_id).await? {
            Some(s) => match memory.restore(&s.body) {
                Ok(()) => {
                    // Customers erased since (or just before) the snapshot: forget them before
                    // the replay, which may bring back only what they did after their erasure.
                    for (subject, erased_at) in log::erasures_since(&self.db, s.taken_at - REPLAY_MARGIN_MS).await? {
                        crate::FeatureStore::forget_customer(memory, &subject, erased_at).await?;
                    }
                    s.taken_at - REPLAY_MARGIN_MS
                }
                Err(e) => {
                    tracing::warn!(error = %e, "feature snapshot unreadable; rebuilding from the event log");
                    now - CUSTOMER_TTL_MS
                }
            },
            None => now - CUSTOMER_TTL_MS,
        };
        let mut after = log::id_floor(from);
        let mut replayed = 0;
        loop {
            let page = log::since(&self.db, &after, 2000).await?;
            let Some(last) = page.last() else { break };
            after = last.id.clone();
            replayed += page.len() as u64;
            let updates = self.features.updates(page.iter().map(|l| (l.write_key_id.as_str(), &l.message))).await;
            self.features.apply(&updates).await?;
        }
        Ok(replayed)
    }
}

#[async_trait]
impl Projection for FeatureProjection {
    fn name(&self) -> &'static str {
        "features"
    }

    fn topic(&self) -> &'static str {
        TOPIC
    }

    async fn rebuild(&self) -> anyhow::Result<u64> {
        match &self.memory {
            Some(memory) => self.rebuild_memory(memory).await,
            // Redis keeps its state across restarts.
            None => Ok(0),
        }
    }

    /// A message that cannot be read is logged and counted (`bus_unreadable_total`) and
    /// skipped: it cannot become readable by waiting, and it must not stop the stream. Updates
    /// the store refused (Redis down) fail the batch: it comes again (applied once).
    async fn apply(&self, batch: &[Envelope]) -> anyhow::Result<()> {
        for envelope in batch {
            match serde_json::from_str::<Incoming>(&envelope.payload) {
                Ok(incoming) => self.apply_one(incoming).await?,
                Err(e) => {
                    metrics::counter!("bus_unreadable_total", "consumer" => "features").increment(1);
                    tracing::error!(error = %e, id = envelope.id, "unreadable bus message skipped");
                }
            }
        }
        Ok(())
    }

    fn snapshot_every(&self) -> Option<Duration> {
        self.memory.as_ref().and(self.snapshot_every)
    }

    async fn snapshot(&self) -> anyhow::Result<()> {
        let Some(memory) = self.memory.clone() else { return Ok(()) };
        let taken_at = self.features.clock().now_ms();
        let body = tokio::task::spawn_blocking(move || memory.snapshot()).await?;
        crate::snapshot::save(&self.db, &self.node_id, taken_at, &body).await?;
        Ok(())
    }
}
