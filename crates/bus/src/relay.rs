//! The outbox relay: one for every domain. A domain that writes events in its own transactions
//! (an outbox table) registers an [`OutboxSource`]; the relay hands each source's rows to the
//! bus, oldest first, then tells the source they were handed over (it marks or deletes them). A
//! crash between publishing and that call publishes again; the bus drops the repeat (the row id
//! is the message id), so consumers see each event at least once and usually once.
//!
//! Adding a domain's events is one registration: `relay::run(bus, vec![catalog, events, ...])`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::{EventBus, Outgoing};

/// A domain's outbox, as the relay reads it.
#[async_trait]
pub trait OutboxSource: Send + Sync + 'static {
    /// A short name for logs and metrics (`catalog`, `events`).
    fn name(&self) -> &'static str;

    /// Up to `limit` rows not yet handed to the bus, oldest first, as the messages they become
    /// (each row's id is its message id).
    async fn pending(&self, limit: usize) -> anyhow::Result<Vec<Outgoing>>;

    /// The rows with these ids are on the bus now.
    async fn relayed(&self, ids: Vec<String>) -> anyhow::Result<()>;

    /// Notified when the domain wrote rows, so the relay need not wait for its next look.
    fn ready(&self) -> Option<Arc<Notify>> {
        None
    }
}

/// Most rows relayed from one source per turn.
pub const BATCH: usize = 500;

/// Relays until the task is aborted: wakes when a source says it wrote, otherwise looks every
/// `idle` (rows another node wrote, or whose notification was missed).
pub async fn run(bus: Arc<dyn EventBus>, sources: Vec<Arc<dyn OutboxSource>>, idle: Duration) {
    let wake = Arc::new(Notify::new());
    let forwards: Vec<_> = sources
        .iter()
        .filter_map(|s| s.ready())
        .map(|ready| {
            let wake = wake.clone();
            tokio::spawn(async move {
                loop {
                    ready.notified().await;
                    wake.notify_one();
                }
            })
        })
        .collect();
    struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            for t in &self.0 {
                t.abort();
            }
        }
    }
    let _forwards = AbortOnDrop(forwards);
    loop {
        match relay_once(bus.as_ref(), &sources).await {
            Ok(0) => {
                let _ = tokio::time::timeout(idle, wake.notified()).await;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "outbox relay failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Relays one batch of each source; returns how many rows were handed over.
pub async fn relay_once(bus: &dyn EventBus, sources: &[Arc<dyn OutboxSource>]) -> anyhow::Result<usize> {
    let mut total = 0;
    for source in sources {
        let batch = source.pending(BATCH).await?;
        if batch.is_empty() {
            continue;
        }
        bus.publish_all(&batch).await?;
        let ids: Vec<String> = batch.into_iter().map(|m| m.id).collect();
        let n = ids.len();
        source.relayed(ids).await?;
        metrics::counter!("bus_relayed_total", "source" => source.name()).increment(n as u64);
        total += n;
    }
    Ok(total)
}
