//! The customers' outbox as the one outbox relay reads it ([`dermis_bus::relay`]): each row of
//! `customers_outbox` becomes a message on its event type (`customers.profile.changed` ...),
//! keyed by the customer id, and is then marked published. Payloads carry ids and versions only.

use std::sync::Arc;

use async_trait::async_trait;
use dermis_bus::Outgoing;
use dermis_bus::relay::OutboxSource;
use dermis_core::clock::SharedClock;
use dermis_store::Db;
use tokio::sync::Notify;

use crate::service::Customers;
use crate::store;

/// The customers' outbox, for the relay.
#[derive(Debug, Clone)]
pub struct CustomersOutbox {
    db: Db,
    clock: SharedClock,
    ready: Option<Arc<Notify>>,
}

impl CustomersOutbox {
    /// The outbox in `db`; `ready` is notified by the domain's writes (else the relay looks on
    /// its own schedule).
    pub fn new(db: Db, clock: SharedClock, ready: Option<Arc<Notify>>) -> Self {
        Self { db, clock, ready }
    }

    /// The outbox of `customers`, woken by its writes.
    pub fn of(customers: &Customers) -> Self {
        Self::new(customers.db().clone(), customers.clock().clone(), Some(customers.outbox_ready()))
    }
}

#[async_trait]
impl OutboxSource for CustomersOutbox {
    fn name(&self) -> &'static str {
        "customers"
    }

    async fn pending(&self, limit: usize) -> anyhow::Result<Vec<Outgoing>> {
        let batch = store::unpublished(self.db.reader(), limit.min(1000) as u32).await?;
        Ok(batch
            .into_iter()
            .map(|e| Outgoing { topic: e.event_type, key: e.aggregate_id, id: e.id, payload: e.payload })
            .collect())
    }

    async fn relayed(&self, ids: Vec<String>) -> anyhow::Result<()> {
        Ok(store::mark_published(self.db.writer(), &ids, self.clock.now_ms()).await?)
    }

    fn ready(&self) -> Option<Arc<Notify>> {
        self.ready.clone()
    }
}
