//! The outbox relay: hands the catalog's domain events to the event bus, oldest first, and marks
//! them. A crash between publishing and marking publishes again; the bus drops the repeat (the
//! outbox id is the message id), so consumers see each event at least once and usually once.

use std::sync::Arc;
use std::time::Duration;

use dermis_bus::EventBus;
use dermis_store::Db;

/// Relays until the task is aborted; `idle` is the pause when the outbox is empty.
pub async fn run(db: Db, bus: Arc<dyn EventBus>, idle: Duration) {
    loop {
        match relay_once(&db, bus.as_ref()).await {
            Ok(0) => tokio::time::sleep(idle).await,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "outbox relay failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Relays one batch; returns how many events were handed over.
pub async fn relay_once(db: &Db, bus: &dyn EventBus) -> anyhow::Result<usize> {
    let batch = dermis_catalog::store::unpublished(db.reader(), 500).await?;
    let mut done = Vec::with_capacity(batch.len());
    for e in &batch {
        bus.publish(&e.event_type, &e.aggregate_id, &e.id, &e.payload).await?;
        done.push(e.id.clone());
    }
    dermis_catalog::store::mark_published(db.writer(), &done, dermis_core::clock::now_ms()).await?;
    metrics::counter!("bus_relayed_total", "source" => "catalog").increment(done.len() as u64);
    Ok(done.len())
}
