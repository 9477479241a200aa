//! The embedded bus: messages are rows in the store, each consumer's position is a row too, and
//! a publish wakes waiting consumers in this process. Positions survive restarts; a message is
//! delivered again until its consumer acknowledges it.
//!
//! A consumer's acknowledgements are written at most every [`ACK_WRITE_EVERY`]: the first at
//! once, later ones within that interval folded into one write of the furthest position. Each
//! write takes SQLite's single write turn, which ingestion's group commit waits on; a consumer
//! that acknowledges every small batch would otherwise add a write per batch. A crash loses at
//! most that interval of acknowledgements, which delivers those messages again (consumers apply
//! idempotently, as they must for any at-least-once bus). In this process the position is exact
//! at once; a monitor in another process sees it up to the interval late.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dermis_core::clock::SharedClock;
use dermis_store::sqlx::{self, Row};
use dermis_store::{Db, StoreError};
use tokio::sync::Notify;

use crate::{BusError, Envelope, EventBus, Outgoing, check_name};

/// `""` and `"catalog."` select by prefix; anything else is one exact topic (as on NATS).
fn topic_pattern(prefix: &str) -> String {
    let escaped = prefix.replace('_', "\\_");
    if prefix.is_empty() || prefix.ends_with('.') { format!("{escaped}%") } else { escaped }
}

/// Whether a consumer's selection takes `topic` (as [`topic_pattern`] selects in SQL).
fn selects(selection: &str, topic: &str) -> bool {
    if selection.is_empty() || selection.ends_with('.') { topic.starts_with(selection) } else { topic == selection }
}

/// The embedded bus.
#[derive(Debug, Clone)]
pub struct EmbeddedBus {
    db: Db,
    /// One per selection a consumer of this process waits on (`""`, `"catalog."`,
    /// `"events.ingested"` ...): a publication wakes only the consumers whose selection takes
    /// one of its topics, not every idle consumer of the node.
    published: Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<Notify>>>>,
    clock: SharedClock,
    /// Each consumer's acknowledged position as this process last read or wrote it: a consumer
    /// belongs to one process (its name carries the node), so an idle consumer's look costs one
    /// query, not two. Positions only move forward; a stale one would only deliver again.
    offsets: Arc<std::sync::Mutex<std::collections::HashMap<(String, String), i64>>>,
    /// When each consumer's position was last written, and whether a later write is due.
    writes: Arc<std::sync::Mutex<std::collections::HashMap<(String, String), AckWrite>>>,
    /// Per consumer and selection, the highest sequence number a fetch has looked through and
    /// found nothing of the selection up to: the next fetch starts there rather than at the
    /// acknowledged position, so an idle consumer of a quiet topic does not scan, at every look,
    /// every message of the other topics published since its last message (after a catalog
    /// import, 8,494 rows per look for each consumer of `events.ingested`). Sequence numbers
    /// commit in order (each publication takes `MAX(seq) + 1` under the primary key), so nothing
    /// at or below a head read can appear later.
    scanned: Arc<std::sync::Mutex<std::collections::HashMap<(String, String), i64>>>,
}

/// The longest an acknowledgement waits before it is written (see the module's documentation).
pub const ACK_WRITE_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy)]
struct AckWrite {
    at: std::time::Instant,
    due: bool,
}

/// Rows per multi-row INSERT. sqlx asks SQLite for every bound parameter's name, a linear
/// lookup, so a statement's cost grows with the square of its parameters there: small
/// statements (6 parameters a row) in one transaction; PostgreSQL pays a round trip per
/// statement instead.
fn rows_per_insert(backend: dermis_store::db::Backend) -> usize {
    match backend {
        dermis_store::db::Backend::Sqlite => 10,
        dermis_store::db::Backend::Postgres => 100,
    }
}

impl EmbeddedBus {
    /// A bus in `db` (migrated with [`crate::MIGRATIONS`]).
    pub fn new(db: Db) -> Self {
        Self {
            db,
            published: Arc::default(),
            clock: dermis_core::clock::system(),
            offsets: Arc::default(),
            writes: Arc::default(),
            scanned: Arc::default(),
        }
    }

    /// Reads the time (publication stamps, retention) from `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The store the bus keeps its messages in.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Wakes this process's consumers waiting on a selection that takes `topic`: call after
    /// committing a [`publish_in_sqlite_transaction`] of messages on `topic`.
    pub fn wake(&self, topic: &str) {
        self.wake_topics(std::iter::once(topic));
    }

    fn wake_topics<'a>(&self, topics: impl Iterator<Item = &'a str> + Clone) {
        let published = self.published.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (selection, notify) in published.iter() {
            if topics.clone().any(|t| selects(selection, t)) {
                notify.notify_waiters();
            }
        }
    }

    /// What a consumer of `selection` waits on.
    fn notifier(&self, selection: &str) -> Arc<Notify> {
        let mut published = self.published.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        published.entry(selection.to_owned()).or_default().clone()
    }

    /// A consumer's position for its own fetches: from memory once known.
    async fn acked(&self, consumer: &str, prefix: &str) -> Result<i64, BusError> {
        let key = (consumer.to_owned(), prefix.to_owned());
        if let Some(at) = self.offsets.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key) {
            return Ok(*at);
        }
        let at = self.stored_acked(consumer, prefix).await?;
        self.remember(key, at);
        Ok(at)
    }

    /// A consumer's position as stored (what another process, or a monitor, sees).
    async fn stored_acked(&self, consumer: &str, prefix: &str) -> Result<i64, BusError> {
        Ok(sqlx::query("SELECT acked FROM bus_offsets WHERE consumer = $1 AND selection = $2")
            .bind(consumer)
            .bind(prefix)
            .fetch_optional(self.db.reader())
            .await
            .map_err(StoreError::from)?
            .map(|r| r.get::<i64, _>(0))
            .unwrap_or(0))
    }

    /// Writes the furthest position this process knows for a consumer.
    async fn write_position(&self, key: &(String, String)) -> Result<(), BusError> {
        let Some(at) = self.offsets.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(key).copied() else {
            return Ok(());
        };
        sqlx::query(
            "INSERT INTO bus_offsets (consumer, selection, acked) VALUES ($1, $3, $2)
             ON CONFLICT (consumer, selection) DO UPDATE SET acked = CASE WHEN bus_offsets.acked > excluded.acked THEN bus_offsets.acked ELSE excluded.acked END",
        )
        .bind(&key.0)
        .bind(at)
        .bind(&key.1)
        .execute(self.db.writer())
        .await
        .map_err(StoreError::from)?;
        Ok(())
    }

    /// Keeps the furthest position known for a consumer.
    fn remember(&self, key: (String, String), at: i64) {
        let mut offsets = self.offsets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let known = offsets.entry(key).or_insert(at);
        *known = (*known).max(at);
    }

    /// Where a look for `key` starts: its acknowledged position, or further when an earlier look
    /// found nothing of its selection up to a later sequence number.
    fn look_from(&self, key: &(String, String), acked: i64) -> i64 {
        let scanned = self.scanned.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(key).copied();
        scanned.map_or(acked, |s| s.max(acked))
    }

    async fn pending(&self, consumer: &str, prefix: &str, max: usize) -> Result<Vec<Envelope>, BusError> {
        let after = self.acked(consumer, prefix).await?;
        let key = (consumer.to_owned(), prefix.to_owned());
        let from = self.look_from(&key, after);
        let head: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM bus_messages")
            .fetch_one(self.db.reader())
            .await
            .map_err(StoreError::from)?
            .get(0);
        if head <= from {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!(
            "SELECT seq, topic, msg_key, msg_id, payload FROM bus_messages WHERE seq > $1 AND seq <= $3 AND topic LIKE $2 ESCAPE '\\' ORDER BY seq LIMIT {}",
            max.clamp(1, 10_000)
        ))
        .bind(from)
        .bind(topic_pattern(prefix))
        .bind(head)
        .fetch_all(self.db.reader())
        .await
        .map_err(StoreError::from)?;
        if rows.is_empty() {
            self.scanned.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, head);
        }
        rows.iter()
            .map(|r| {
                Ok(Envelope {
                    seq: r.try_get::<i64, _>(0)? as u64,
                    topic: r.try_get(1)?,
                    key: r.try_get(2)?,
                    id: r.try_get(3)?,
                    payload: r.try_get(4)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| BusError::Store(e.into()))
    }
}

impl EmbeddedBus {
    /// One transaction for up to 100 messages: ids already published are skipped, the rest get
    /// consecutive positions after the last one. A concurrent publisher (PostgreSQL) that took
    /// a position first makes the insert fail on the key, and the chunk is retried.
    async fn publish_chunk(&self, chunk: &[Outgoing]) -> Result<(), BusError> {
        for _ in 0..10 {
            let mut tx = self.db.begin().await?;
            let params: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!("SELECT msg_id FROM bus_messages WHERE msg_id IN ({})", params.join(", "));
            let mut q = sqlx::query(&sql);
            for m in chunk {
                q = q.bind(&m.id);
            }
            let known: std::collections::HashSet<String> =
                q.fetch_all(&mut *tx).await.map_err(StoreError::from)?.iter().map(|r| r.get::<String, _>(0)).collect();
            let mut seen = std::collections::HashSet::new();
            let fresh: Vec<&Outgoing> =
                chunk.iter().filter(|m| !known.contains(&m.id) && seen.insert(m.id.as_str())).collect();
            if fresh.is_empty() {
                return Ok(());
            }
            let last: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM bus_messages")
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::from)?
                .get(0);
            let now = self.clock.now_ms();
            let mut inserted = Ok(());
            for (c, rows) in fresh.chunks(rows_per_insert(self.db.backend())).enumerate() {
                let first = last + 1 + (c * rows_per_insert(self.db.backend())) as i64;
                let values: Vec<String> = (0..rows.len())
                    .map(|i| {
                        let b = i * 6;
                        format!("(${}, ${}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6)
                    })
                    .collect();
                let sql = format!(
                    "INSERT INTO bus_messages (seq, topic, msg_key, msg_id, payload, created_at) VALUES {}",
                    values.join(", ")
                );
                let mut q = sqlx::query(&sql);
                for (i, m) in rows.iter().enumerate() {
                    q = q.bind(first + i as i64).bind(&m.topic).bind(&m.key).bind(&m.id).bind(&m.payload).bind(now);
                }
                if let Err(e) = q.execute(&mut *tx).await {
                    inserted = Err(e);
                    break;
                }
            }
            match inserted {
                Ok(_) => {
                    tx.commit().await.map_err(StoreError::from)?;
                    self.wake_topics(fresh.iter().map(|m| m.topic.as_str()));
                    return Ok(());
                }
                Err(e) => {
                    let e = StoreError::from(e);
                    if !matches!(e, StoreError::Unique { .. }) {
                        return Err(e.into());
                    }
                }
            }
        }
        Err(BusError::Store(StoreError::Unavailable("bus publish kept conflicting".into())))
    }
}

/// Publishes inside a SQLite transaction that another component holds on the bus's database
/// file (the event log's writer thread, with a connection of its own): the messages are durable
/// exactly when that transaction commits, so no outbox row has to be written, relayed and
/// deleted. The transaction must hold SQLite's write lock (`BEGIN IMMEDIATE`), which makes the
/// positions taken here safe. Ids published before are skipped. Call [`EmbeddedBus::wake`]
/// with their topic after the commit.
pub fn publish_in_sqlite_transaction(
    tx: &rusqlite::Connection,
    messages: &[Outgoing],
    now: i64,
) -> rusqlite::Result<()> {
    if let Some(bad) = messages.iter().find(|m| check_name(&m.topic).is_err()) {
        return Err(rusqlite::Error::InvalidParameterName(format!("bus topic {:?}", bad.topic)));
    }
    let mut last: i64 =
        tx.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM bus_messages")?.query_row([], |r| r.get(0))?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO bus_messages (seq, topic, msg_key, msg_id, payload, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (msg_id) DO NOTHING",
    )?;
    for m in messages {
        last += 1;
        insert.execute(rusqlite::params![last, m.topic, m.key, m.id, m.payload, now])?;
    }
    Ok(())
}

#[async_trait]
impl EventBus for EmbeddedBus {
    fn name(&self) -> &'static str {
        "embedded"
    }

    async fn publish(&self, topic: &str, key: &str, id: &str, payload: &str) -> Result<(), BusError> {
        check_name(topic)?;
        let message = Outgoing { topic: topic.into(), key: key.into(), id: id.into(), payload: payload.into() };
        self.publish_chunk(std::slice::from_ref(&message)).await
    }

    async fn publish_all(&self, messages: &[Outgoing]) -> Result<(), BusError> {
        for m in messages {
            check_name(&m.topic)?;
        }
        for chunk in messages.chunks(100) {
            self.publish_chunk(chunk).await?;
        }
        Ok(())
    }

    async fn fetch(&self, consumer: &str, prefix: &str, max: usize, wait: Duration) -> Result<Vec<Envelope>, BusError> {
        check_name(consumer)?;
        let notifier = self.notifier(prefix);
        let notified = notifier.notified();
        let got = self.pending(consumer, prefix, max).await?;
        if !got.is_empty() || wait.is_zero() {
            return Ok(got);
        }
        let _ = tokio::time::timeout(wait, notified).await;
        self.pending(consumer, prefix, max).await
    }

    async fn ack(&self, consumer: &str, prefix: &str, last: &Envelope) -> Result<(), BusError> {
        check_name(consumer)?;
        let key = (consumer.to_owned(), prefix.to_owned());
        self.remember(key.clone(), last.seq as i64);
        let now = std::time::Instant::now();
        let wait = {
            let mut writes = self.writes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match writes.get_mut(&key) {
                Some(w) if w.due => return Ok(()),
                Some(w) if now.duration_since(w.at) < ACK_WRITE_EVERY => {
                    w.due = true;
                    Some(ACK_WRITE_EVERY - now.duration_since(w.at))
                }
                _ => {
                    writes.insert(key.clone(), AckWrite { at: now, due: false });
                    None
                }
            }
        };
        let Some(wait) = wait else {
            return self.write_position(&key).await;
        };
        let bus = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if let Some(w) = bus.writes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_mut(&key) {
                *w = AckWrite { at: std::time::Instant::now(), due: false };
            }
            if let Err(e) = bus.write_position(&key).await {
                // The position stays in memory; the consumer's next acknowledgement writes it.
                tracing::warn!(consumer = %key.0, error = %e, "writing a bus position failed");
            }
        });
        Ok(())
    }

    async fn lag(&self, consumer: &str, prefix: &str) -> Result<u64, BusError> {
        // As stored, or as this process knows it when further (a write may be pending): the lag
        // is read by monitors, possibly in another process.
        let stored = self.stored_acked(consumer, prefix).await?;
        let known = self
            .offsets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(consumer.to_owned(), prefix.to_owned()))
            .copied();
        let after = known.map_or(stored, |k| k.max(stored));
        // Nothing of the selection lies between the position and where this process last
        // looked through (see `scanned`).
        let after = self.look_from(&(consumer.to_owned(), prefix.to_owned()), after);
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM bus_messages WHERE seq > $1 AND topic LIKE $2 ESCAPE '\\'")
            .bind(after)
            .bind(topic_pattern(prefix))
            .fetch_one(self.db.reader())
            .await
            .map_err(StoreError::from)?
            .get(0);
        Ok(n as u64)
    }

    async fn head(&self) -> Result<u64, BusError> {
        let last: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM bus_messages")
            .fetch_one(self.db.reader())
            .await
            .map_err(StoreError::from)?
            .get(0);
        Ok(last as u64)
    }

    async fn retain(&self, max_age: Duration) -> Result<u64, BusError> {
        // The newest message stays whatever its age: positions continue from it.
        let cutoff = self.clock.now_ms() - max_age.as_millis() as i64;
        let dropped =
            sqlx::query("DELETE FROM bus_messages WHERE created_at < $1 AND seq < (SELECT MAX(seq) FROM bus_messages)")
                .bind(cutoff)
                .execute(self.db.writer())
                .await
                .map_err(StoreError::from)?
                .rows_affected();
        Ok(dropped)
    }
}
