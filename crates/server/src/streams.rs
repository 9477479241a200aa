//! What runs beside the HTTP server on the event stream: the online features of this node kept
//! current from the bus (events ingested by other nodes), their snapshots and rebuild at start,
//! the bus consumers' lag, and the catalog lookup that enriches feature updates.
//!
//! Ingestion applies the features of what it stores before answering (read-your-writes on the
//! node that took the request); the consumer here brings every other node up to date from
//! `events.ingested`. Both paths apply the same updates with the same ids, so whichever comes
//! second counts for nothing.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dermis_bus::EventBus;
use dermis_catalog::Catalog;
use dermis_core::clock::now_ms;
use dermis_events::ingest::Ingestor;
use dermis_events::outbox::{Ingested, TOPIC};
use dermis_features::memory::MemoryFeatures;
use dermis_features::{CUSTOMER_TTL_MS, FeatureStore, ProductDirectory, ProductTraits};
use dermis_store::Db;

/// The catalog as the feature store's product directory, behind a one-minute cache (products
/// the catalog does not know are cached as unknown too, so a flood of bad ids costs one query
/// per id a minute).
pub struct CatalogDirectory {
    catalog: Catalog,
    cache: moka::sync::Cache<String, Option<ProductTraits>>,
}

impl CatalogDirectory {
    /// A directory over `catalog`.
    pub fn new(catalog: Catalog) -> Self {
        let cache = moka::sync::Cache::builder().max_capacity(100_000).time_to_live(Duration::from_secs(60)).build();
        Self { catalog, cache }
    }
}

#[async_trait]
impl ProductDirectory for CatalogDirectory {
    async fn traits(&self, product_id: &str) -> Option<ProductTraits> {
        if let Some(hit) = self.cache.get(product_id) {
            return hit;
        }
        let traits = match self.catalog.product_by_reference(product_id).await {
            Ok(p) => p.map(|p| {
                let (routine_step, actives) = p
                    .attributes
                    .map(|f| (f.routine_step.map(|s| s.as_str().to_owned()), f.actives))
                    .unwrap_or_default();
                ProductTraits { brand: Some(p.brand), category: p.category, routine_step, actives }
            }),
            // Not cached: the next event asks again.
            Err(e) => {
                tracing::warn!(error = %e, "catalog lookup for features failed");
                return None;
            }
        };
        self.cache.insert(product_id.to_owned(), traits.clone());
        traits
    }
}

/// The consumer name for this node's features: one shared consumer when the store is shared
/// (Redis), one per node when each node keeps its own (memory).
pub fn consumer_name(features: &dyn FeatureStore, node_id: &str) -> String {
    if features.name() == "memory" {
        let node: String = node_id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
            .take(80)
            .collect();
        format!("features-{node}")
    } else {
        "features".to_owned()
    }
}

/// Applies `events.ingested` from the bus to this node's features until aborted. A message that
/// cannot be read is logged and counted (`bus_unreadable_total`) and acknowledged: it cannot
/// become readable by waiting, and it must not stop the stream.
pub async fn consume_features(bus: Arc<dyn EventBus>, ingestor: Ingestor, consumer: String) {
    loop {
        let batch = match bus.fetch(&consumer, TOPIC, 100, Duration::from_millis(100)).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, consumer, "fetching from the bus failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some(last) = batch.last() else { continue };
        for envelope in &batch {
            match serde_json::from_str::<Ingested>(&envelope.payload) {
                Ok(ingested) => ingestor.apply_features(&ingested.features).await,
                Err(e) => {
                    metrics::counter!("bus_unreadable_total", "consumer" => consumer.clone()).increment(1);
                    tracing::error!(error = %e, id = envelope.id, consumer, "unreadable bus message skipped");
                }
            }
        }
        metrics::counter!("bus_consumed_total", "consumer" => consumer.clone()).increment(batch.len() as u64);
        if let Err(e) = bus.ack(&consumer, TOPIC, last).await {
            tracing::warn!(error = %e, consumer, "acknowledging failed; the batch comes again (applied once)");
        }
    }
}

/// Reports a consumer's lag every `every`: the `bus_consumer_lag` gauge, and above `alert`
/// messages the `bus_consumer_lagging` gauge at 1 and a warning (once per crossing).
pub async fn watch_lag(bus: Arc<dyn EventBus>, consumer: String, alert: u64, every: Duration) {
    let mut lagging = false;
    loop {
        match bus.lag(&consumer, TOPIC).await {
            Ok(lag) => {
                metrics::gauge!("bus_consumer_lag", "consumer" => consumer.clone()).set(lag as f64);
                let now = lag > alert;
                metrics::gauge!("bus_consumer_lagging", "consumer" => consumer.clone()).set(if now {
                    1.0
                } else {
                    0.0
                });
                if now && !lagging {
                    tracing::warn!(consumer, lag, alert, "bus consumer is lagging");
                } else if !now && lagging {
                    tracing::info!(consumer, lag, "bus consumer caught up");
                }
                lagging = now;
            }
            Err(e) => tracing::warn!(error = %e, consumer, "reading the consumer lag failed"),
        }
        tokio::time::sleep(every).await;
    }
}

/// Brings a node's in-memory features back after a start: its last snapshot, then the event log
/// from a minute before the snapshot was taken (or from the customer TTL back, without one).
/// Replayed events the snapshot already counted are recognised by id. Returns how many log
/// messages were replayed.
pub async fn rebuild(db: &Db, memory: &MemoryFeatures, ingestor: &Ingestor, node_id: &str) -> anyhow::Result<usize> {
    let from = match dermis_features::snapshot::load(db, node_id).await? {
        Some(s) => match memory.restore(&s.body) {
            Ok(()) => s.taken_at - 60_000,
            Err(e) => {
                tracing::warn!(error = %e, "feature snapshot unreadable; rebuilding from the event log");
                now_ms() - CUSTOMER_TTL_MS
            }
        },
        None => now_ms() - CUSTOMER_TTL_MS,
    };
    let mut after = dermis_events::log::id_floor(from);
    let mut replayed = 0;
    loop {
        let page = dermis_events::log::since(db, &after, 2000).await?;
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        replayed += page.len();
        let updates = ingestor.feature_updates(page.iter().map(|l| (l.write_key_id.as_str(), &l.message))).await;
        ingestor.apply_features(&updates).await;
    }
    Ok(replayed)
}

/// Saves the node's in-memory features every `every` until aborted.
pub async fn snapshot_every(db: Db, memory: Arc<MemoryFeatures>, node_id: String, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = save_snapshot(&db, &memory, &node_id).await {
            tracing::warn!(error = %e, "saving the feature snapshot failed");
        }
    }
}

/// Saves the node's in-memory features now.
pub async fn save_snapshot(db: &Db, memory: &Arc<MemoryFeatures>, node_id: &str) -> anyhow::Result<()> {
    let taken_at = now_ms();
    let memory = memory.clone();
    let body = tokio::task::spawn_blocking(move || memory.snapshot()).await?;
    dermis_features::snapshot::save(db, node_id, taken_at, &body).await?;
    Ok(())
}
