//! [`Features`]: the feature store as a domain service. It turns stored events into feature
//! updates (enriched from the catalog), applies them, answers reads by customer id or product
//! reference, and forgets erased customers. On the node that ingests, it is an
//! [`IngestHook`]: the updates are applied before ingestion answers (read-your-writes); other
//! nodes apply the same updates from the bus ([`crate::projection`]), with the same ids, so
//! whichever comes second counts for nothing.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use dermis_core::clock::SharedClock;
use dermis_events::Pseudonyms;
use dermis_events::ingest::{IngestHook, Prepared};
use dermis_events::message::Message;

use crate::mapping::feature_events;
use crate::{CustomerFeatures, FeatureError, FeatureEvent, FeatureStore, ProductDirectory, ProductFeatures};

/// The online feature store, as the other parts of Dermis use it.
#[derive(Clone)]
pub struct Features {
    store: Arc<dyn FeatureStore>,
    directory: Option<Arc<dyn ProductDirectory>>,
    pseudonyms: Pseudonyms,
    clock: SharedClock,
}

impl std::fmt::Debug for Features {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Features").field("store", &self.store.name()).finish_non_exhaustive()
    }
}

impl Features {
    /// Features kept in `store`, customers named by `pseudonyms`, time read from `clock`.
    pub fn new(store: Arc<dyn FeatureStore>, pseudonyms: Pseudonyms, clock: SharedClock) -> Self {
        Self { store, directory: None, pseudonyms, clock }
    }

    /// Enriches updates from the catalog (routine step, actives, brand, category) and keys
    /// products by their Dermis id.
    pub fn with_directory(mut self, directory: Arc<dyn ProductDirectory>) -> Self {
        self.directory = Some(directory);
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn FeatureStore> {
        &self.store
    }

    /// The pseudonyms customers are kept under.
    pub fn pseudonyms(&self) -> &Pseudonyms {
        &self.pseudonyms
    }

    /// The clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The feature updates of stored messages, enriched from the catalog.
    pub async fn updates<'a>(&self, messages: impl IntoIterator<Item = (&'a str, &'a Message)>) -> Vec<FeatureEvent> {
        let mut updates: Vec<FeatureEvent> = messages
            .into_iter()
            .flat_map(|(write_key_id, m)| feature_events(write_key_id, m, &self.pseudonyms))
            .collect();
        if let Some(dir) = &self.directory {
            let mut known = HashMap::new();
            for u in &mut updates {
                if !known.contains_key(&u.product_id) {
                    let traits = dir.traits(&u.product_id).await;
                    known.insert(u.product_id.clone(), traits);
                }
                if let Some(Some(t)) = known.get(&u.product_id) {
                    u.enrich(t);
                }
            }
        }
        updates
    }

    /// Applies updates, all of them even when one fails; returns the first failure.
    pub async fn apply(&self, updates: &[FeatureEvent]) -> Result<(), FeatureError> {
        let mut first = None;
        for fe in updates {
            if let Err(e) = self.store.apply(fe).await {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Forgets customers (by pseudonym) erased at `erased_at`; returns the first failure.
    pub async fn forget(&self, pseudonyms: &[String], erased_at: i64) -> Result<(), FeatureError> {
        let mut first = None;
        for p in pseudonyms {
            if let Err(e) = self.store.forget_customer(p, erased_at).await {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// A customer's online features now; `None` when the store holds nothing of them (never
    /// seen, everything older than the time-to-live, or erased).
    pub async fn customer(&self, customer_id: &str) -> Result<Option<CustomerFeatures>, FeatureError> {
        let f = self.store.customer(&self.pseudonyms.customer(customer_id), self.clock.now_ms()).await?;
        let seen = !(f.recent_views.is_empty() && f.recent_add_to_carts.is_empty() && f.recent_purchases.is_empty());
        Ok(seen.then_some(f))
    }

    /// A product's online features now, by its Dermis id or the id an event used for it (they
    /// are kept under the Dermis id); `None` when the catalog does not know the product.
    pub async fn product(&self, reference: &str) -> Result<Option<ProductFeatures>, FeatureError> {
        let id = match &self.directory {
            Some(dir) => match dir.traits(reference).await {
                Some(t) => t.id,
                None => return Ok(None),
            },
            None => reference.to_owned(),
        };
        self.store.product(&id, self.clock.now_ms()).await.map(Some)
    }
}

/// Updates computed before the messages were stored, applied once they are.
struct Pending {
    features: Features,
    updates: Vec<FeatureEvent>,
}

#[async_trait]
impl Prepared for Pending {
    async fn stored(self: Box<Self>) {
        if let Err(e) = self.features.apply(&self.updates).await {
            // The messages are in the log and on the bus: the consumer applies them again.
            tracing::warn!(error = %e, "feature update failed; the bus consumer applies it again");
        }
    }
}

#[async_trait]
impl IngestHook for Features {
    async fn prepare(&self, write_key_id: &str, messages: &[&Message]) -> Box<dyn Prepared> {
        let updates = self.updates(messages.iter().map(|m| (write_key_id, *m))).await;
        Box::new(Pending { features: self.clone(), updates })
    }

    async fn erased(&self, pseudonyms: &[String], erased_at: i64) {
        if let Err(e) = self.forget(pseudonyms, erased_at).await {
            tracing::warn!(error = %e, "forgetting erased features failed; the bus consumer forgets them again");
        }
    }
}
