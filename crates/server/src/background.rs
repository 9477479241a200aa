//! Everything that runs beside the HTTP server, named in one place: the one outbox relay, the
//! registered projections of the event stream, customers' erasures and asynchronous exports
//! (made, resumed, deleted when expired), housekeeping (expired idempotency keys, bus
//! retention, product facts of an older knowledge base), and the retention sweeper (events
//! anonymized, measurements and dead letters deleted past their configured age: [`sweep`]).

use std::sync::Arc;
use std::time::Duration;

use dermis_bus::EventBus;
use dermis_bus::projection::{Monitor, Projection, ProjectionHealth, Projections, Settings};
use dermis_bus::relay::OutboxSource;
use dermis_catalog::Catalog;
use dermis_core::clock::SharedClock;
use dermis_customers::Customers;
use dermis_store::Db;
use tokio::task::JoinHandle;

use crate::config::RetentionConfig;

/// What the background needs from the application.
pub struct Parts {
    /// The store.
    pub db: Db,
    /// The bus.
    pub bus: Arc<dyn EventBus>,
    /// The catalog (for its facts refresh).
    pub catalog: Catalog,
    /// Customers (for their erasures).
    pub customers: Customers,
    /// Ingestion (for the one-time move of personal traits out of the event log).
    pub ingestor: dermis_events::ingest::Ingestor,
    /// Every domain's outbox.
    pub outboxes: Vec<Arc<dyn OutboxSource>>,
    /// Every domain's projections.
    pub projections: Vec<Arc<dyn Projection>>,
    /// How projections run.
    pub settings: Settings,
    /// How long each kind of data is kept.
    pub retention: RetentionConfig,
    /// The time the retention cutoffs are taken from.
    pub clock: SharedClock,
}

/// The running background jobs.
pub struct Background {
    jobs: Vec<(&'static str, JoinHandle<()>)>,
    projections: Projections,
}

/// How long the relay waits between looks when nothing woke it.
const RELAY_IDLE: Duration = Duration::from_millis(200);

impl Background {
    /// Starts every job.
    pub fn start(parts: Parts) -> Self {
        let Parts { db, bus, catalog, customers, ingestor, outboxes, projections, settings, retention, clock } = parts;
        let mut jobs = vec![
            ("outbox relay", tokio::spawn(dermis_bus::relay::run(bus.clone(), outboxes, RELAY_IDLE))),
            ("housekeeping", tokio::spawn(housekeeping(db, bus.clone()))),
            ("facts refresh", tokio::spawn(refresh_facts(catalog))),
            ("customer erasures", tokio::spawn(resume_erasures(customers.clone()))),
            ("customer exports", tokio::spawn(customer_exports(customers.clone()))),
            ("personal traits out of the event log", tokio::spawn(move_stored_pii(ingestor.clone()))),
        ];
        if retention.sweep_every_secs > 0 {
            let sweeper = Sweeper { ingestor, customers, retention, clock, events_after: String::new() };
            jobs.push(("retention sweeper", tokio::spawn(sweeper.run())));
        }
        let projections = Projections::start(bus, projections, settings);
        Self { jobs, projections }
    }

    /// How each projection is doing.
    pub fn health(&self) -> Vec<ProjectionHealth> {
        self.projections.health()
    }

    /// The jobs' names.
    pub fn names(&self) -> Vec<&'static str> {
        self.jobs.iter().map(|(n, _)| *n).collect()
    }

    /// Reads the projections' health while they run.
    pub fn monitor(&self) -> Monitor {
        self.projections.monitor()
    }

    /// Stops every job, then saves the projections that keep snapshots.
    pub async fn stop(self) {
        for (_, job) in &self.jobs {
            job.abort();
        }
        for (_, job) in self.jobs {
            let _ = job.await;
        }
        self.projections.stop().await;
    }
}

/// Every hour: expired idempotency keys, bus messages past retention.
async fn housekeeping(db: Db, bus: Arc<dyn EventBus>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        match dermis_store::idempotency::purge_expired(&db).await {
            Ok(n) if n > 0 => tracing::info!(purged = n, "expired idempotency keys removed"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purging idempotency keys failed"),
        }
        match bus.retain(dermis_bus::RETENTION).await {
            Ok(n) if n > 0 => tracing::info!(dropped = n, "bus messages past retention dropped"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "dropping old bus messages failed"),
        }
    }
}

/// Customer erasures not finished (a domain failed, or the node stopped mid-way) are taken up
/// again at start and every five minutes.
async fn resume_erasures(customers: Customers) {
    let mut tick = tokio::time::interval(Duration::from_secs(300));
    loop {
        tick.tick().await;
        if let Err(e) = customers.resume_erasures().await {
            tracing::warn!(error = %e, "resuming customer erasures failed");
        }
        // The feed's per-message steps (measurements, assessments, consent) are remembered 8 days.
        if let Err(e) = customers.purge_feed_steps().await {
            tracing::warn!(error = %e, "forgetting old customer feed steps failed");
        }
    }
}

/// Messages stored with personal traits before the event log stopped keeping them are rewritten
/// once (after their traits reach the customers domain); retried every minute until it finishes,
/// a finished one costs one query at each start.
async fn move_stored_pii(ingestor: dermis_events::ingest::Ingestor) {
    loop {
        match ingestor.move_stored_pii().await {
            Ok(p) => {
                if p.moved > 0 {
                    tracing::info!(messages = p.moved, "personal traits moved out of the event log");
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "moving personal traits out of the event log failed; retried in a minute")
            }
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}

/// Customer exports not made yet (a domain failed, or the node stopped mid-way) are made at
/// start and every minute; exports whose time is up are deleted with their documents.
async fn customer_exports(customers: Customers) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        if let Err(e) = customers.resume_exports().await {
            tracing::warn!(error = %e, "resuming customer exports failed");
        }
        match customers.purge_expired_exports().await {
            Ok(n) if n > 0 => tracing::info!(deleted = n, "expired customer exports deleted"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "deleting expired customer exports failed"),
        }
    }
}

/// Products derived under another knowledge base version (or before facts existed) are
/// recomputed once at start; reads keep working meanwhile.
async fn refresh_facts(catalog: Catalog) {
    match catalog.refresh_stale_facts().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(products = n, "product facts recomputed for the current knowledge base"),
        Err(e) => tracing::warn!(error = %e, "recomputing product facts failed"),
    }
}

/// The retention sweeper's state: the configuration, and how far the events are anonymized
/// (kept in memory: after a restart the first sweep reads the anonymized events once more and
/// skips them).
pub struct Sweeper {
    /// Events (anonymization, dead letters).
    pub ingestor: dermis_events::ingest::Ingestor,
    /// Measurements.
    pub customers: Customers,
    /// The ages.
    pub retention: RetentionConfig,
    /// The time cutoffs are taken from.
    pub clock: SharedClock,
    /// Every event up to this id, before the last cutoff, is anonymized.
    pub events_after: String,
}

/// What one sweep changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Events anonymized.
    pub events: u64,
    /// Measurements deleted.
    pub measurements: u64,
    /// Dead letters deleted.
    pub dead_letters: u64,
}

/// Events anonymized per sweep at most (pages of 500): a backlog (the first sweep of an old
/// store) is worked off over several sweeps instead of one long one.
const EVENTS_PER_SWEEP: u32 = 50_000;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

impl Sweeper {
    /// Sweeps every `sweep_every_secs`, the first time at start.
    async fn run(mut self) {
        let every = Duration::from_secs(self.retention.sweep_every_secs.max(1) as u64);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.sweep().await;
        }
    }

    /// One sweep: each kind of data with a retention (not 0) past its cutoff, read from the
    /// clock. A failing kind is logged and does not stop the others. Logs and counts
    /// (`dermis_retention_swept_total{data=...}`) what changed.
    pub async fn sweep(&mut self) -> Swept {
        let now = self.clock.now_ms();
        let cutoff = |days: i64| (days > 0).then(|| now - days * DAY_MS);
        let mut swept = Swept::default();
        if let Some(c) = cutoff(self.retention.events_days) {
            match self.ingestor.anonymize_before(c, &self.events_after, EVENTS_PER_SWEEP).await {
                Ok(a) => {
                    swept.events = a.rows;
                    if let Some(last) = a.last_id {
                        self.events_after = last;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "retention: anonymizing old events failed"),
            }
        }
        if let Some(c) = cutoff(self.retention.measurements_days) {
            match self.customers.delete_measurements_before(c).await {
                Ok(n) => swept.measurements = n,
                Err(e) => tracing::warn!(error = %e, "retention: deleting old measurements failed"),
            }
        }
        if let Some(c) = cutoff(self.retention.dead_letters_days) {
            match self.ingestor.delete_dead_letters_before(c).await {
                Ok(n) => swept.dead_letters = n,
                Err(e) => tracing::warn!(error = %e, "retention: deleting old dead letters failed"),
            }
        }
        for (data, n) in
            [("events", swept.events), ("measurements", swept.measurements), ("dead_letters", swept.dead_letters)]
        {
            metrics::counter!("dermis_retention_swept_total", "data" => data).increment(n);
        }
        if swept != Swept::default() {
            tracing::info!(
                events_anonymized = swept.events,
                measurements_deleted = swept.measurements,
                dead_letters_deleted = swept.dead_letters,
                "retention sweep"
            );
        }
        swept
    }
}
