//! The outbox relay: hands the domains' outbox rows to the event bus, oldest first: the catalog's
//! domain events (then marked published) and ingestion's [`Ingested`] batches (then deleted:
//! the event log is their record). A crash between publishing and marking publishes again; the
//! bus drops the repeat (the outbox id is the message id), so consumers see each event at least
//! once and usually once.
//!
//! [`Ingested`]: dermis_events::outbox::Ingested

use std::sync::Arc;
use std::time::Duration;

use dermis_bus::{EventBus, Outgoing};
use dermis_events::ingest::Ingestor;
use dermis_store::Db;

/// Relays until the task is aborted. Ingestion wakes it through `ready`; otherwise it looks
/// every `idle` (catalog changes, rows another node wrote).
pub async fn run(db: Db, bus: Arc<dyn EventBus>, ingestor: Ingestor, idle: Duration) {
    let ready = ingestor.outbox_ready();
    loop {
        match relay_once(&db, bus.as_ref(), &ingestor).await {
            Ok(0) => {
                let _ = tokio::time::timeout(idle, ready.notified()).await;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "outbox relay failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Relays one batch of each outbox; returns how many rows were handed over.
pub async fn relay_once(db: &Db, bus: &dyn EventBus, ingestor: &Ingestor) -> anyhow::Result<usize> {
    let batch = dermis_catalog::store::unpublished(db.reader(), 500).await?;
    let outgoing: Vec<Outgoing> = batch
        .iter()
        .map(|e| Outgoing {
            topic: e.event_type.clone(),
            key: e.aggregate_id.clone(),
            id: e.id.clone(),
            payload: e.payload.clone(),
        })
        .collect();
    bus.publish_all(&outgoing).await?;
    let done: Vec<String> = batch.into_iter().map(|e| e.id).collect();
    dermis_catalog::store::mark_published(db.writer(), &done, dermis_core::clock::now_ms()).await?;
    metrics::counter!("bus_relayed_total", "source" => "catalog").increment(done.len() as u64);

    let ingested = dermis_events::outbox::pending(db, 200).await?;
    let outgoing: Vec<Outgoing> = ingested
        .iter()
        .map(|row| Outgoing {
            topic: dermis_events::outbox::TOPIC.to_owned(),
            key: dermis_events::outbox::KEY.to_owned(),
            id: row.id.clone(),
            payload: row.payload.clone(),
        })
        .collect();
    bus.publish_all(&outgoing).await?;
    let relayed: Vec<String> = ingested.into_iter().map(|r| r.id).collect();
    let count = relayed.len();
    ingestor.relayed(relayed).await?;
    metrics::counter!("bus_relayed_total", "source" => "events").increment(count as u64);
    Ok(done.len() + count)
}
