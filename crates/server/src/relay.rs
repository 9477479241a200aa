//! The outbox relay: hands the domains' outbox rows to the event bus, oldest first: the catalog's
//! domain events (then marked published) and ingestion's [`Ingested`] batches (then deleted:
//! the event log is their record). A crash between publishing and marking publishes again; the
//! bus drops the repeat (the outbox id is the message id), so consumers see each event at least
//! once and usually once.
//!
//! [`Ingested`]: dermis_events::outbox::Ingested

use std::sync::Arc;
use std::time::Duration;

use dermis_bus::EventBus;
use dermis_store::Db;
use tokio::sync::Notify;

/// Relays until the task is aborted. Ingestion wakes it through `ready`; otherwise it looks
/// every `idle` (catalog changes, rows another node wrote).
pub async fn run(db: Db, bus: Arc<dyn EventBus>, ready: Arc<Notify>, idle: Duration) {
    loop {
        match relay_once(&db, bus.as_ref()).await {
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
pub async fn relay_once(db: &Db, bus: &dyn EventBus) -> anyhow::Result<usize> {
    let batch = dermis_catalog::store::unpublished(db.reader(), 500).await?;
    let mut done = Vec::with_capacity(batch.len());
    for e in &batch {
        bus.publish(&e.event_type, &e.aggregate_id, &e.id, &e.payload).await?;
        done.push(e.id.clone());
    }
    dermis_catalog::store::mark_published(db.writer(), &done, dermis_core::clock::now_ms()).await?;
    metrics::counter!("bus_relayed_total", "source" => "catalog").increment(done.len() as u64);

    let ingested = dermis_events::outbox::pending(db, 200).await?;
    let mut relayed = Vec::with_capacity(ingested.len());
    for row in &ingested {
        bus.publish(dermis_events::outbox::TOPIC, "ingestion", &row.id, &row.payload).await?;
        relayed.push(row.id.clone());
    }
    dermis_events::outbox::remove(db, &relayed).await?;
    metrics::counter!("bus_relayed_total", "source" => "events").increment(relayed.len() as u64);
    Ok(done.len() + relayed.len())
}
