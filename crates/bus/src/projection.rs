//! Projections of the event stream: state a domain keeps current from bus messages (a node's
//! online features, its search index; later customers' profiles, stock per channel, experiment
//! totals). A domain implements [`Projection`]; the server hands every registered projection to
//! [`Projections::start`], which rebuilds each one, then feeds it its topic, snapshots it, and
//! reports its lag and health. The domain decides what a message means; this module decides
//! nothing about the business.
//!
//! The contract a projection keeps:
//! - [`Projection::apply`] is idempotent: a batch whose acknowledgement was lost, or that failed
//!   half way, comes again. Returning an error leaves the batch unacknowledged: it comes again
//!   after a pause (so return an error only for what waiting can fix, such as a store that is
//!   down; a message that cannot be read is logged, counted and skipped by the projection).
//! - [`Projection::rebuild`] brings the state back at start (a snapshot and the log since, or a
//!   read of the domain's tables) before any message is applied; messages published meanwhile
//!   wait on the bus.
//! - Read-your-writes stays with the domain: the node that took a write updates its own
//!   projection before answering; the bus brings every other node up to date, and the repeat on
//!   the writing node counts for nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::{Envelope, EventBus};

/// State kept current from the bus.
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// A short name (`features`, `search`): the bus consumer is `NAME-NODE`, one per node.
    fn name(&self) -> &'static str;

    /// What it consumes: one exact topic (`events.ingested`) or a prefix ending in `.`
    /// (`catalog.`).
    fn topic(&self) -> &'static str;

    /// Brings the state back at start, before any message is applied; returns how many records
    /// it read. Retried with a growing pause until it succeeds.
    async fn rebuild(&self) -> anyhow::Result<u64>;

    /// Applies messages in bus order (see the module's contract).
    async fn apply(&self, batch: &[Envelope]) -> anyhow::Result<()>;

    /// Whether [`Self::rebuild`] reads a state that already holds what every message published
    /// before it began says (the domain publishes only after its data is durable, and the
    /// rebuild reads that data). Then those messages are acknowledged without being applied: a
    /// node started after a catalog import does not re-read the ~17,000 products its rebuild
    /// has just read. A projection whose messages carry what its rebuild does not read (the
    /// identity graph from other nodes' ingestion) keeps the default, `false`.
    fn rebuild_covers_published(&self) -> bool {
        false
    }

    /// How often to save a snapshot, for projections that keep one.
    fn snapshot_every(&self) -> Option<Duration> {
        None
    }

    /// Saves a snapshot: every [`Self::snapshot_every`] while the consumer is caught up, and at
    /// shutdown once rebuilt.
    async fn snapshot(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// How one projection is doing, as `/health/ready` and the metrics show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProjectionHealth {
    /// The projection's name.
    pub name: &'static str,
    /// Whether the rebuild at start has finished.
    pub rebuilt: bool,
    /// Messages on its topic it has not applied yet (at the last look).
    pub lag: u64,
    /// Whether the lag is over the alert threshold.
    pub lagging: bool,
    /// When it last applied a batch, ms since the epoch (0: not yet).
    pub last_applied_ms: i64,
}

#[derive(Default)]
struct Status {
    rebuilt: AtomicBool,
    lag: AtomicU64,
    lagging: AtomicBool,
    last_applied_ms: AtomicI64,
}

struct Running {
    projection: Arc<dyn Projection>,
    status: Arc<Status>,
}

/// The running projections of this node.
pub struct Projections {
    running: Monitor,
    tasks: Vec<JoinHandle<()>>,
}

/// Reads how this node's projections are doing (for readiness and ops tools).
#[derive(Clone)]
pub struct Monitor(Arc<Vec<Running>>);

impl Monitor {
    /// How each projection is doing.
    pub fn health(&self) -> Vec<ProjectionHealth> {
        self.0
            .iter()
            .map(|r| ProjectionHealth {
                name: r.projection.name(),
                rebuilt: r.status.rebuilt.load(Ordering::SeqCst),
                lag: r.status.lag.load(Ordering::Relaxed),
                lagging: r.status.lagging.load(Ordering::Relaxed),
                last_applied_ms: r.status.last_applied_ms.load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// How projections run on this node.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node's id (consumer names are `NAME-NODE`).
    pub node_id: String,
    /// Above this many unapplied messages a projection is lagging (warning, gauge, no snapshot).
    pub lag_alert: u64,
    /// How often the lag is measured.
    pub lag_every: Duration,
    /// Most messages applied in one batch.
    pub batch: usize,
}

/// The bus consumer of `projection` on `node_id`: one per node and projection, so one node's
/// acknowledgement never covers messages another node fetched and has not applied.
pub fn consumer_name(projection: &str, node_id: &str) -> String {
    let node: String = node_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .take(80)
        .collect();
    format!("{projection}-{node}")
}

impl Projections {
    /// Starts every projection: rebuild (retried), then its consumer and its snapshots; and one
    /// lag watch each.
    pub fn start(bus: Arc<dyn EventBus>, projections: Vec<Arc<dyn Projection>>, settings: Settings) -> Self {
        let mut running = Vec::new();
        let mut tasks = Vec::new();
        for projection in projections {
            let status = Arc::new(Status::default());
            let consumer = consumer_name(projection.name(), &settings.node_id);
            tasks.push(tokio::spawn(watch_lag(
                bus.clone(),
                projection.clone(),
                consumer.clone(),
                status.clone(),
                settings.clone(),
            )));
            tasks.push(tokio::spawn(run(bus.clone(), projection.clone(), consumer, status.clone(), settings.clone())));
            running.push(Running { projection, status });
        }
        Self { running: Monitor(Arc::new(running)), tasks }
    }

    /// How each projection is doing.
    pub fn health(&self) -> Vec<ProjectionHealth> {
        self.running.health()
    }

    /// A handle that reads the projections' health while they run.
    pub fn monitor(&self) -> Monitor {
        self.running.clone()
    }

    /// Stops consuming, then saves a last snapshot of each projection that keeps them and was
    /// rebuilt (a snapshot of a half-rebuilt state would make the next start skip the rest).
    pub async fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
        for r in self.running.0.iter() {
            if r.projection.snapshot_every().is_some() && r.status.rebuilt.load(Ordering::SeqCst) {
                match r.projection.snapshot().await {
                    Ok(()) => tracing::info!(projection = r.projection.name(), "projection saved"),
                    Err(e) => tracing::warn!(
                        error = %e,
                        projection = r.projection.name(),
                        "saving the projection failed; the next start rebuilds more"
                    ),
                }
            }
        }
    }
}

/// Rebuilds, then consumes and snapshots until aborted.
async fn run(
    bus: Arc<dyn EventBus>,
    projection: Arc<dyn Projection>,
    consumer: String,
    status: Arc<Status>,
    settings: Settings,
) {
    let name = projection.name();
    let mut pause = Duration::from_secs(1);
    let mut covered = 0;
    loop {
        let started = std::time::Instant::now();
        // Read before the rebuild: what was published by then, the rebuild holds.
        if projection.rebuild_covers_published() {
            covered = match bus.head().await {
                Ok(head) => head,
                Err(e) => {
                    tracing::warn!(error = %e, projection = name, "the bus head is unknown; every message will be applied");
                    0
                }
            };
        }
        match projection.rebuild().await {
            Ok(n) => {
                tracing::info!(
                    projection = name,
                    records = n,
                    ms = started.elapsed().as_millis() as u64,
                    "projection rebuilt"
                );
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, projection = name, retry_in_secs = pause.as_secs(), "rebuilding a projection failed");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(60));
            }
        }
    }
    status.rebuilt.store(true, Ordering::SeqCst);
    let snapshots = async {
        let Some(every) = projection.snapshot_every() else { return };
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            // Not while behind: the snapshot would claim messages the consumer has not applied.
            match bus.lag(&consumer, projection.topic()).await {
                Ok(lag) if lag <= settings.lag_alert => {}
                Ok(lag) => {
                    tracing::info!(projection = name, lag, "snapshot skipped while the consumer catches up");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, projection = name, "snapshot skipped: the consumer lag is unknown");
                    continue;
                }
            }
            if let Err(e) = projection.snapshot().await {
                tracing::warn!(error = %e, projection = name, "saving a projection snapshot failed");
            }
        }
    };
    let feed = consume(bus.as_ref(), projection.as_ref(), &consumer, &status, settings.batch, covered);
    tokio::join!(snapshots, feed);
}

/// Feeds `projection` its topic until aborted; messages at or before `covered` (held by the
/// rebuild) are acknowledged without being applied.
async fn consume(
    bus: &dyn EventBus,
    projection: &dyn Projection,
    consumer: &str,
    status: &Status,
    batch: usize,
    covered: u64,
) {
    let topic = projection.topic();
    loop {
        let messages = match bus.fetch(consumer, topic, batch.max(1), Duration::from_millis(100)).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, consumer, "fetching from the bus failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some(last) = messages.last() else { continue };
        let fresh = messages.partition_point(|m| m.seq <= covered);
        if fresh > 0 {
            metrics::counter!("projection_skipped_total", "consumer" => consumer.to_owned()).increment(fresh as u64);
        }
        if fresh < messages.len()
            && let Err(e) = projection.apply(&messages[fresh..]).await
        {
            tracing::warn!(error = %e, consumer, "applying a batch failed; it comes again");
            metrics_failed(consumer);
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        status.last_applied_ms.store(dermis_core::clock::now_ms(), Ordering::Relaxed);
        metrics::counter!("bus_consumed_total", "consumer" => consumer.to_owned()).increment(messages.len() as u64);
        if let Err(e) = bus.ack(consumer, topic, last).await {
            tracing::warn!(error = %e, consumer, "acknowledging failed; the batch comes again (applied once)");
        }
    }
}

fn metrics_failed(consumer: &str) {
    metrics::counter!("projection_failed_batches_total", "consumer" => consumer.to_owned()).increment(1);
}

/// Reports a consumer's lag every `settings.lag_every`: the `bus_consumer_lag` gauge, and above
/// the alert the `bus_consumer_lagging` gauge at 1 and a warning (once per crossing).
async fn watch_lag(
    bus: Arc<dyn EventBus>,
    projection: Arc<dyn Projection>,
    consumer: String,
    status: Arc<Status>,
    settings: Settings,
) {
    loop {
        match bus.lag(&consumer, projection.topic()).await {
            Ok(lag) => {
                let was = status.lagging.load(Ordering::Relaxed);
                let now = lag > settings.lag_alert;
                status.lag.store(lag, Ordering::Relaxed);
                status.lagging.store(now, Ordering::Relaxed);
                metrics::gauge!("bus_consumer_lag", "consumer" => consumer.clone()).set(lag as f64);
                metrics::gauge!("bus_consumer_lagging", "consumer" => consumer.clone()).set(if now {
                    1.0
                } else {
                    0.0
                });
                if now && !was {
                    tracing::warn!(consumer, lag, alert = settings.lag_alert, "bus consumer is lagging");
                } else if !now && was {
                    tracing::info!(consumer, lag, "bus consumer caught up");
                }
            }
            Err(e) => tracing::warn!(error = %e, consumer, "reading the consumer lag failed"),
        }
        tokio::time::sleep(settings.lag_every).await;
    }
}
