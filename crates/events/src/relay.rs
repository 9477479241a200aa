//! Ingestion's outbox as the one outbox relay reads it ([`dermis_bus::relay`]): rows of
//! `events_outbox` become `events.ingested` messages, then are deleted (the event log is their
//! record). On SQLite with the embedded bus the log publishes in its own transactions and this
//! outbox only carries erasures.

use std::sync::Arc;

use async_trait::async_trait;
use dermis_bus::Outgoing;
use dermis_bus::relay::OutboxSource;
use tokio::sync::Notify;

use crate::ingest::Ingestor;
use crate::outbox::{self, KEY, TOPIC};

/// Ingestion's outbox, for the relay.
#[derive(Debug, Clone)]
pub struct IngestedOutbox {
    ingestor: Ingestor,
}

impl IngestedOutbox {
    /// The outbox `ingestor` writes.
    pub fn new(ingestor: Ingestor) -> Self {
        Self { ingestor }
    }
}

#[async_trait]
impl OutboxSource for IngestedOutbox {
    fn name(&self) -> &'static str {
        "events"
    }

    async fn pending(&self, limit: usize) -> anyhow::Result<Vec<Outgoing>> {
        let rows = outbox::pending(self.ingestor.db(), limit.min(200) as u32).await?;
        Ok(rows
            .into_iter()
            .map(|row| Outgoing { topic: TOPIC.to_owned(), key: KEY.to_owned(), id: row.id, payload: row.payload })
            .collect())
    }

    async fn relayed(&self, ids: Vec<String>) -> anyhow::Result<()> {
        Ok(self.ingestor.relayed(ids).await?)
    }

    fn ready(&self) -> Option<Arc<Notify>> {
        Some(self.ingestor.outbox_ready())
    }
}
