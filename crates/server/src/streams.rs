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
                ProductTraits { id: p.id, brand: Some(p.brand), category: p.category, routine_step, actives }
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

/// The consumer name for this node's features: one per node, whether each node keeps its own
/// features (memory) or they share Redis. (A shared consumer would be cheaper on Redis, but
/// with cumulative acknowledgement one node's ack would cover messages another node had
/// fetched and not yet applied.)
pub fn consumer_name(node_id: &str) -> String {
    let node: String = node_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .take(80)
        .collect();
    format!("features-{node}")
}

/// Applies `events.ingested` from the bus to this node's features until aborted. A message that
/// cannot be read is logged and counted (`bus_unreadable_total`) and acknowledged: it cannot
/// become readable by waiting, and it must not stop the stream. A batch whose updates the store
/// refused (Redis down) is not acknowledged: it comes again after a pause (applied once).
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
        let mut failed = None;
        for envelope in &batch {
            match serde_json::from_str::<Ingested>(&envelope.payload) {
                Ok(mut ingested) => {
                    ingestor.pseudonymize(&mut ingested);
                    if let Err(e) = ingestor.apply_features(&ingested.features).await {
                        failed = Some(e);
                        break;
                    }
                    for subject in &ingested.erase {
                        if let Err(e) = ingestor.features().forget_customer(subject, ingested.erased_at).await {
                            failed = Some(e);
                        }
                    }
                    if failed.is_some() {
                        break;
                    }
                }
                Err(e) => {
                    metrics::counter!("bus_unreadable_total", "consumer" => consumer.clone()).increment(1);
                    tracing::error!(error = %e, id = envelope.id, consumer, "unreadable bus message skipped");
                }
            }
        }
        if let Some(e) = failed {
            tracing::warn!(error = %e, consumer, "applying features from the bus failed; retrying the batch");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
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

/// How far before a snapshot's time the rebuild replays the log: events stored (by any node)
/// before it but applied here after the snapshot, because the relay or this consumer was behind.
/// Snapshots are not taken while the consumer is lagging, so only a relay outage longer than
/// this, followed by a crash before the next snapshot, can leave an event out.
pub const REPLAY_MARGIN_MS: i64 = 10 * 60 * 1000;

/// Brings a node's in-memory features back after a start: its last snapshot, then the event log
/// from [`REPLAY_MARGIN_MS`] before the snapshot was taken (or from the customer TTL back).
/// Replayed events the snapshot already counted are recognised by id. Returns how many log
/// messages were replayed.
pub async fn rebuild(db: &Db, memory: &MemoryFeatures, ingestor: &Ingestor, node_id: &str) -> anyhow::Result<usize> {
    let from = match dermis_features::snapshot::load(db, node_id).await? {
        Some(s) => match memory.restore(&s.body) {
            Ok(()) => {
                // Customers erased since (or just before) the snapshot: forget them before the
                // replay, which may bring back only what they did after their erasure.
                for (subject, erased_at) in
                    dermis_events::log::erasures_since(db, s.taken_at - REPLAY_MARGIN_MS).await?
                {
                    memory.forget_customer(&subject, erased_at).await?;
                }
                s.taken_at - REPLAY_MARGIN_MS
            }
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
        ingestor.apply_features(&updates).await?;
    }
    Ok(replayed)
}

/// Saves the node's in-memory features every `every` until aborted, skipping a turn while the
/// features consumer is more than `lag_alert` messages behind (see [`REPLAY_MARGIN_MS`]).
pub async fn snapshot_every(
    db: Db,
    memory: Arc<MemoryFeatures>,
    node_id: String,
    every: Duration,
    bus: Arc<dyn EventBus>,
    lag_alert: u64,
) {
    let consumer = consumer_name(&node_id);
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        match bus.lag(&consumer, TOPIC).await {
            Ok(lag) if lag <= lag_alert => {}
            Ok(lag) => {
                tracing::info!(lag, "feature snapshot skipped while the consumer catches up");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "feature snapshot skipped: the consumer lag is unknown");
                continue;
            }
        }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use dermis_bus::embedded::EmbeddedBus;
    use dermis_features::{Action, CustomerFeatures, FeatureError, FeatureEvent, FeatureStore, ProductFeatures};
    use dermis_store::testing::TestDb;

    use super::*;

    /// A store that refuses its first `failures` updates (Redis down), then works.
    struct Flaky {
        failures: AtomicUsize,
        inner: MemoryFeatures,
    }

    #[async_trait]
    impl FeatureStore for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        async fn apply(&self, e: &FeatureEvent) -> Result<(), FeatureError> {
            if self.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                return Err(FeatureError::Redis("connection refused".into()));
            }
            self.inner.apply(e).await
        }
        async fn customer(&self, id: &str, now_ms: i64) -> Result<CustomerFeatures, FeatureError> {
            self.inner.customer(id, now_ms).await
        }
        async fn product(&self, id: &str, now_ms: i64) -> Result<ProductFeatures, FeatureError> {
            self.inner.product(id, now_ms).await
        }
        async fn forget_customer(&self, id: &str, at: i64) -> Result<(), FeatureError> {
            self.inner.forget_customer(id, at).await
        }
    }

    #[tokio::test]
    async fn a_batch_the_store_refused_is_applied_when_it_comes_again() {
        let t = TestDb::sqlite(crate::app::MIGRATIONS).await;
        let bus: Arc<dyn EventBus> = Arc::new(EmbeddedBus::new(t.db().clone()));
        let store = Arc::new(Flaky { failures: AtomicUsize::new(2), inner: MemoryFeatures::new() });
        let pseudonyms = dermis_features::Pseudonyms::with_key(b"test");
        let c1 = pseudonyms.customer("c1");
        let ingestor = Ingestor::new(t.db().clone(), 4, store.clone(), pseudonyms);
        let update = FeatureEvent {
            id: "wk:m1:0".into(),
            customer_id: c1.clone(),
            product_id: "p1".into(),
            action: Action::View,
            brand: None,
            category: None,
            routine_step: None,
            actives: Vec::new(),
            amount_minor: 0,
            at_ms: now_ms(),
            received_at_ms: now_ms(),
        };
        let payload = serde_json::to_string(&Ingested {
            write_key_id: "wk".into(),
            features: vec![update],
            erase: Vec::new(),
            erased_at: 0,
        })
        .unwrap();
        bus.publish(TOPIC, "k", "ing_1", &payload).await.unwrap();
        let consumer = tokio::spawn(consume_features(bus.clone(), ingestor, "features-t".into()));
        let started = std::time::Instant::now();
        while store.customer(&c1, now_ms()).await.unwrap().recent_views.is_empty() {
            assert!(started.elapsed() < Duration::from_secs(10), "the refused batch never came again");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        while bus.lag("features-t", TOPIC).await.unwrap() > 0 {
            assert!(started.elapsed() < Duration::from_secs(10), "the batch was never acknowledged");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        consumer.abort();
        assert_eq!(store.customer(&c1, now_ms()).await.unwrap().recent_views.len(), 1);
    }
}
