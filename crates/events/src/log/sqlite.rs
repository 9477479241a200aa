//! Appends on SQLite: one writer thread with a connection of its own on the database file,
//! prepared statements, and group commit.
//!
//! SQLite has one writer at a time anyway. Going through the async pool cost a hand-off to the
//! driver's worker thread for every statement and a scan of the parameter names for every bound
//! value; here the thread that owns the connection runs the inserts back to back. Concurrent
//! requests are committed together: the thread takes every job waiting (up to [`GROUP_ROWS`]
//! rows), writes them in one transaction and answers each after the commit, so the cost of a
//! commit (dirty index pages to the WAL, the fsync) is shared. A group that fails is retried
//! one job per transaction, so one bad request never fails the others (unless the database
//! itself is unavailable: then the whole group gets that answer at once).
//!
//! The writer issues the event keys ([`Keys`]): each group continues above every key stored,
//! the customer index's watermark and what an erasure recorded as issued.
//!
//! The customer index is written here too, but not with each event: the indexer
//! (`super::indexer`) hands the writer slices of entries ([`IndexRows`]) that ride along in the
//! group commits like any job.

use std::path::Path;
use std::time::{Duration, Instant};

use dermis_bus::Outgoing;
use dermis_bus::embedded::EmbeddedBus;
use dermis_store::{Db, StoreError};
use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use super::job::{Accepted, Append};
use super::keys::Keys;
use crate::outbox::Ingested;

/// Most rows one group commit carries.
pub(super) const GROUP_ROWS: usize = 2500;

/// How long the writer keeps the write turn while jobs keep coming, before it queues again
/// behind the rest of the process (handing the turn over costs a wake-up of a runtime task).
const HOLD_TURN: Duration = Duration::from_millis(20);

const INSERT_EVENT: &str = "INSERT INTO events (id, write_key_id, message_id, kind, event, user_id, anonymous_id, \
     partition_key, schema_ref, timestamp_ms, received_at, payload) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT (write_key_id, message_id) DO NOTHING";
const INSERT_DEAD_LETTER: &str = "INSERT INTO dead_letters (id, write_key_id, message_id, reason, errors, payload, \
     received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const INSERT_OUTBOX: &str = "INSERT INTO events_outbox (id, payload, created_at) VALUES (?1, ?2, ?3)";
const DELETE_OUTBOX: &str = "DELETE FROM events_outbox WHERE id = ?1";
// OR IGNORE: a pass that a crash interrupted wrote some entries already. The event must still
// be there, the same customer's: it may have been erased since the indexer read it.
const INDEX_USER: &str = "INSERT OR IGNORE INTO events_by_user (user_id, id) \
     SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM events WHERE id = ?2 AND user_id = ?1)";
const INDEX_ANONYMOUS: &str = "INSERT OR IGNORE INTO events_by_anonymous (anonymous_id, id) \
     SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM events WHERE id = ?2 AND anonymous_id = ?1)";
// Keys continue above every stored key, the customer index's watermark and what an erasure
// recorded as issued (it may have deleted the newest events): an event keyed at or below the
// watermark would never be indexed, so never listed nor erased.
const KEY_FLOOR: &str = "SELECT MAX(COALESCE((SELECT MAX(id) FROM events), 0), through, issued) \
     FROM events_indexed WHERE one = 1";

/// An event as its row: everything serialized on the request's task, so the one writer thread
/// only binds and inserts (and the parsed JSON is freed where it was made).
struct EventRow {
    message_id: String,
    kind: &'static str,
    event: Option<String>,
    user_id: Option<String>,
    anonymous_id: Option<String>,
    partition_key: String,
    schema: Option<String>,
    timestamp_ms: i64,
    received_at_ms: i64,
    payload: String,
}

impl EventRow {
    fn new(a: Accepted) -> Self {
        let m = a.message;
        Self {
            payload: m.payload.to_string(),
            partition_key: m.partition_key().to_owned(),
            message_id: m.message_id,
            kind: m.kind.as_str(),
            event: m.event,
            user_id: m.user_id,
            anonymous_id: m.anonymous_id,
            schema: a.schema,
            timestamp_ms: m.timestamp_ms,
            received_at_ms: m.received_at_ms,
        }
    }
}

struct DeadRow {
    message_id: Option<String>,
    reason: String,
    errors: String,
    payload: String,
}

/// What a job hands to the bus when it stores anything new: the bus message, written to the
/// embedded bus in the same transaction (`in_log`) or else to the outbox for the relay.
struct Handoff {
    message: Outgoing,
    in_log: bool,
}

impl Handoff {
    fn new(ingested: Option<Ingested>, in_log: bool) -> Result<Option<Self>, StoreError> {
        Ok(match ingested {
            Some(i) => Some(Self { message: crate::outbox::message(&i)?, in_log }),
            None => None,
        })
    }
}

pub(super) struct AppendRows {
    write_key_id: String,
    events: Vec<EventRow>,
    dead: Vec<DeadRow>,
    to_bus: Option<Handoff>,
    received_at: i64,
}

impl AppendRows {
    fn new(job: Append, bus_in_log: bool) -> Result<Self, StoreError> {
        Ok(Self {
            write_key_id: job.write_key_id,
            events: job.accepted.into_iter().map(EventRow::new).collect(),
            dead: job
                .dead
                .into_iter()
                .map(|d| DeadRow {
                    message_id: d.message_id,
                    reason: d.reason,
                    errors: serde_json::to_string(&d.errors).unwrap_or_default(),
                    payload: d.payload.to_string(),
                })
                .collect(),
            to_bus: Handoff::new(job.to_bus, bus_in_log)?,
            received_at: job.received_at,
        })
    }
}

pub(super) struct ReplayRows {
    dead_letter_id: String,
    write_key_id: String,
    event: EventRow,
    to_bus: Option<Handoff>,
    now: i64,
}

/// A slice of a pass of the indexer: (customer id, event key) pairs, sorted; or, once every
/// slice of the pass is committed, the watermark to move to.
pub(super) enum IndexRows {
    Entries { by_user: Vec<(String, i64)>, by_anonymous: Vec<(String, i64)> },
    Through(i64),
}

/// Answers how many rows a job wrote (messages stored, a replay: 0 or 1; index entries).
pub(super) type Reply = oneshot::Sender<Result<usize, StoreError>>;

/// What the writer thread is asked to commit.
pub(super) enum Job {
    Append(AppendRows, Reply),
    Replay(ReplayRows, Reply),
    Index(IndexRows, Reply),
    /// Outbox rows the relay handed to the bus: deleted in a group commit, not in a write
    /// transaction of their own (see [`Writer::relayed`]).
    Relayed(Vec<String>, Reply),
}

impl Job {
    fn rows(&self) -> usize {
        match self {
            Job::Append(a, _) => a.events.len() + a.dead.len() + 1,
            Job::Replay(..) => 2,
            Job::Index(IndexRows::Entries { by_user, by_anonymous }, _) => by_user.len() + by_anonymous.len(),
            Job::Index(IndexRows::Through(_), _) => 1,
            Job::Relayed(ids, _) => ids.len(),
        }
    }

    fn answer(self, outcome: Result<usize, StoreError>) {
        let (Job::Append(_, reply) | Job::Replay(_, reply) | Job::Index(_, reply) | Job::Relayed(_, reply)) = self;
        let _ = reply.send(outcome);
    }
}

/// The handle on the writer thread. Cheap to clone; the thread stops when the last handle drops.
#[derive(Debug, Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
    /// The embedded bus, when it lives in the same database: then the log's transactions
    /// publish to it directly (see [`Writer::publish_in_log`]).
    bus: Option<EmbeddedBus>,
}

pub(super) fn stopped() -> StoreError {
    StoreError::Unavailable("the event log writer stopped".into())
}

impl Writer {
    /// Starts the writer thread on `db`'s SQLite file. Call within a Tokio runtime: the thread
    /// takes its turns at writing from `db`'s write pool (see [`run`]).
    pub(super) fn start(db: &Db) -> Self {
        let (jobs, rx) = mpsc::channel(1024);
        let runtime = tokio::runtime::Handle::current();
        let writer_db = db.clone();
        let spawned =
            std::thread::Builder::new().name("event-log-writer".into()).spawn(move || run(&writer_db, &runtime, rx));
        if let Err(e) = spawned {
            // Every append then answers "unavailable" (the receiver is gone), never silently.
            tracing::error!(error = %e, "cannot start the event log writer thread");
        }
        Self { jobs, bus: None }
    }

    /// A handle that does not keep the thread running: the indexer's, which stops with the
    /// writer.
    pub(super) fn downgrade(&self) -> mpsc::WeakSender<Job> {
        self.jobs.downgrade()
    }

    /// Publishes what ingestion hands to the bus in the log's own transactions, instead of
    /// through the outbox and the relay: `bus` must keep its messages in this database file.
    /// One write of the message instead of three (outbox row, bus row, outbox delete).
    pub(super) fn publish_in_log(&mut self, bus: EmbeddedBus) {
        self.bus = Some(bus);
    }

    /// True when the bus messages are written by the log itself (nothing goes to the outbox).
    pub(super) fn publishes_in_log(&self) -> bool {
        self.bus.is_some()
    }

    /// Appends one request; answers once it is committed.
    pub(super) async fn append(&self, job: Append) -> Result<usize, StoreError> {
        let in_log = self.publishes_in_log();
        let stored = self.send(|reply| Ok(Job::Append(AppendRows::new(job, in_log)?, reply))).await?;
        self.published(stored);
        Ok(stored)
    }

    /// Wakes the bus's consumers after a commit that published in the log.
    fn published(&self, stored: usize) {
        if let Some(bus) = self.bus.as_ref().filter(|_| stored > 0) {
            bus.wake(crate::outbox::TOPIC);
        }
    }

    /// Claims a dead letter and stores its message, in one transaction; true if it was stored.
    pub(super) async fn replay(
        &self,
        dead_letter_id: &str,
        write_key_id: &str,
        accepted: Accepted,
        to_bus: Option<Ingested>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let rows = ReplayRows {
            dead_letter_id: dead_letter_id.to_owned(),
            write_key_id: write_key_id.to_owned(),
            event: EventRow::new(accepted),
            to_bus: Handoff::new(to_bus, self.publishes_in_log())?,
            now,
        };
        let stored = self.send(|reply| Ok(Job::Replay(rows, reply))).await?;
        self.published(stored);
        Ok(stored > 0)
    }

    /// Deletes outbox rows the relay published, in the writer's next group commit. With the
    /// NATS bus every ingestion request leaves an outbox row (its feature updates, tens of KB
    /// on overflow pages); deleting them in a transaction of the relay's own took the process's
    /// write turn and an fsync of its own each round, and ingestion's commits queued behind it.
    pub(super) async fn relayed(&self, ids: Vec<String>) -> Result<usize, StoreError> {
        self.send(|reply| Ok(Job::Relayed(ids, reply))).await
    }

    async fn send(&self, job: impl FnOnce(Reply) -> Result<Job, StoreError>) -> Result<usize, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(job(reply)?).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

pub(super) fn store_error(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Unavailable(e.to_string()),
        Some(ErrorCode::ConstraintViolation) if e.to_string().contains("UNIQUE") => {
            StoreError::Unique { constraint: e.to_string().rsplit(": ").next().unwrap_or_default().to_owned() }
        }
        Some(ErrorCode::TooBig) => StoreError::InvalidInput(e.to_string()),
        _ => StoreError::Other(e.to_string()),
    }
}

struct Log {
    conn: Connection,
    keys: Keys,
}

impl Log {
    fn open(file: &Path) -> rusqlite::Result<Self> {
        // Keys continue after the stored ones: `commit` reads the largest in each transaction.
        Ok(Self { conn: connect(file)?, keys: Keys { last: 0 } })
    }

    fn commit(&mut self, group: &[Job]) -> Result<Vec<usize>, StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(store_error)?;
        // Another writer on the file (a second process, another handle) may have issued keys:
        // continue after the largest (a rowid lookup and a one-row read, cheap).
        let stored: i64 =
            tx.prepare_cached(KEY_FLOOR).and_then(|mut s| s.query_row([], |r| r.get(0))).map_err(store_error)?;
        self.keys.last = self.keys.last.max(stored);
        let mut stored = Vec::with_capacity(group.len());
        for job in group {
            stored.push(
                match job {
                    Job::Append(a, _) => write(&tx, &mut self.keys, a),
                    Job::Replay(r, _) => replay(&tx, &mut self.keys, r),
                    Job::Index(i, _) => index(&tx, i),
                    Job::Relayed(ids, _) => relayed(&tx, ids),
                }
                .map_err(store_error)?,
            );
        }
        tx.commit().map_err(store_error)?;
        Ok(stored)
    }
}

/// Deletes relayed outbox rows; answers how many were there.
fn relayed(tx: &Transaction<'_>, ids: &[String]) -> rusqlite::Result<usize> {
    let mut delete = tx.prepare_cached(DELETE_OUTBOX)?;
    let mut gone = 0;
    for id in ids {
        gone += delete.execute(params![id])?;
    }
    Ok(gone)
}

/// A connection of the writer's or the indexer's own on the store's file.
pub(super) fn connect(file: &Path) -> rusqlite::Result<Connection> {
    // The store created and migrated the file: never create an empty one here.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(file, flags)?;
    // The same settings as the pool's connections (dermis-store): WAL, a commit is on disk
    // when it returns, wait for a checkpoint or another writer instead of failing.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 8192; PRAGMA secure_delete = FAST;",
    )?;
    Ok(conn)
}

/// Holding the one connection of the store's SQLite write pool is the process's turn to write.
type Turn = dermis_store::sqlx::pool::PoolConnection<dermis_store::sqlx::Any>;

/// The writer's loop. Groups are written in the process's write turn: the writer holds the one
/// connection of the store's SQLite write pool (unused) while it writes, so the rest of the
/// process (the relay, bus acknowledgements, catalog writes) queues fairly in the pool instead
/// of polling for SQLite's lock: SQLite's busy handler sleeps up to 100 ms between tries, and
/// against a writer that commits back to back it starved for seconds (measured: a bus
/// acknowledgement waited 1.04 s). The writer keeps the turn for consecutive groups up to
/// [`HOLD_TURN`], and gives it back as soon as nothing is waiting.
fn run(db: &Db, runtime: &tokio::runtime::Handle, mut rx: mpsc::Receiver<Job>) {
    // Returning the pool's connection spawns a task: that needs the runtime's context.
    let _context = runtime.enter();
    let file = db.sqlite_file().unwrap_or_else(|| Path::new(""));
    let open = || match Log::open(file) {
        Ok(log) => Some(log),
        Err(e) => {
            tracing::error!(error = %e, file = %file.display(), "the event log writer cannot open the database");
            None
        }
    };
    let mut log = open();
    let mut turn: Option<(Turn, Instant)> = None;
    loop {
        if rx.is_empty() {
            // Nothing waiting: give the turn back before sleeping on the channel.
            turn = None;
        }
        let Some(first) = rx.blocking_recv() else { break };
        if log.is_none() {
            log = open();
        }
        let Some(log) = log.as_mut() else {
            first.answer(Err(StoreError::Unavailable("the event log writer cannot open the database".into())));
            continue;
        };
        let mut rows = first.rows();
        let mut group = vec![first];
        while rows < GROUP_ROWS {
            match rx.try_recv() {
                Ok(next) => {
                    rows += next.rows();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        metrics::histogram!("events_group_commit_requests").record(group.len() as f64);
        // A runtime shut down under us (the process is stopping) panics the timer of the wait.
        if turn.as_ref().is_none_or(|(_, since)| since.elapsed() > HOLD_TURN) {
            // Queue behind whoever waits (the pool is fair) before taking it again.
            turn = None;
            let acquired =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(db.writer().acquire())));
            match acquired {
                Ok(Ok(connection)) => turn = Some((connection, Instant::now())),
                Ok(Err(e)) => {
                    let reason = format!("waiting for the write turn: {e}");
                    for job in group {
                        job.answer(Err(StoreError::Unavailable(reason.clone())));
                    }
                    continue;
                }
                Err(_) => {
                    for job in group {
                        job.answer(Err(stopped()));
                    }
                    continue;
                }
            }
        }
        match log.commit(&group) {
            Ok(outcomes) => {
                for (job, outcome) in group.into_iter().zip(outcomes) {
                    job.answer(Ok(outcome));
                }
            }
            Err(e) if group.len() == 1 => {
                if let Some(job) = group.pop() {
                    job.answer(Err(e));
                }
            }
            // The database is busy or gone: no single job caused it, and retrying each would
            // wait out the busy timeout once per job while holding the turn.
            Err(e @ StoreError::Unavailable(_)) => {
                let reason = e.to_string();
                for job in group {
                    job.answer(Err(StoreError::Unavailable(reason.clone())));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, requests = group.len(), "group commit failed; committing one by one");
                for job in group {
                    let outcome = log.commit(std::slice::from_ref(&job)).map(|mut o| o.remove(0));
                    job.answer(outcome);
                }
            }
        }
    }
}

fn now() -> i64 {
    dermis_core::clock::now_ms()
}

/// Inserts one event unless its `messageId` is stored already; returns 1 if it was new.
fn insert_event(tx: &Transaction<'_>, keys: &mut Keys, write_key_id: &str, e: &EventRow) -> rusqlite::Result<usize> {
    tx.prepare_cached(INSERT_EVENT)?.execute(params![
        keys.next(now()),
        write_key_id,
        e.message_id,
        e.kind,
        e.event,
        e.user_id,
        e.anonymous_id,
        e.partition_key,
        e.schema,
        e.timestamp_ms,
        e.received_at_ms,
        e.payload,
    ])
}

fn hand_over(tx: &Transaction<'_>, h: &Handoff, now: i64) -> rusqlite::Result<()> {
    if h.in_log {
        dermis_bus::embedded::publish_in_sqlite_transaction(tx, std::slice::from_ref(&h.message), now)
    } else {
        tx.prepare_cached(INSERT_OUTBOX)?.execute(params![h.message.id, h.message.payload, now])?;
        Ok(())
    }
}

fn write(tx: &Transaction<'_>, keys: &mut Keys, job: &AppendRows) -> rusqlite::Result<usize> {
    let mut inserted = 0;
    for e in &job.events {
        inserted += insert_event(tx, keys, &job.write_key_id, e)?;
    }
    if let Some(h) = job.to_bus.as_ref().filter(|_| inserted > 0) {
        hand_over(tx, h, job.received_at)?;
    }
    for d in &job.dead {
        tx.prepare_cached(INSERT_DEAD_LETTER)?.execute(params![
            dermis_core::ids::new_id("dlq"),
            job.write_key_id,
            d.message_id,
            d.reason,
            d.errors,
            d.payload,
            job.received_at,
        ])?;
    }
    Ok(inserted)
}

fn replay(tx: &Transaction<'_>, keys: &mut Keys, r: &ReplayRows) -> rusqlite::Result<usize> {
    // Claim the dead letter first: a second replay (or a concurrent one) claims nothing and
    // stores nothing.
    let claimed = tx.execute(
        "UPDATE dead_letters SET replayed_at = ?1 WHERE id = ?2 AND replayed_at IS NULL",
        params![r.now, r.dead_letter_id],
    )?;
    if claimed == 0 {
        return Ok(0);
    }
    let inserted = insert_event(tx, keys, &r.write_key_id, &r.event)?;
    if let Some(h) = r.to_bus.as_ref().filter(|_| inserted > 0) {
        hand_over(tx, h, r.now)?;
    }
    Ok(inserted)
}

/// Writes a slice of an indexer's pass, or moves the watermark; returns the entries written.
fn index(tx: &Transaction<'_>, rows: &IndexRows) -> rusqlite::Result<usize> {
    match rows {
        IndexRows::Entries { by_user, by_anonymous } => {
            let mut written = 0;
            for (sql, entries) in [(INDEX_USER, by_user), (INDEX_ANONYMOUS, by_anonymous)] {
                let mut insert = tx.prepare_cached(sql)?;
                for (customer, key) in entries {
                    written += insert.execute(params![customer, key])?;
                }
            }
            Ok(written)
        }
        // Never back: another writer on the file may have moved it further.
        IndexRows::Through(key) => {
            tx.execute("UPDATE events_indexed SET through = MAX(through, ?1) WHERE one = 1", params![key])?;
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An indexer's slice is written after it read the events: an event erased in between
    /// gets no entry (nothing of an erased customer's is left behind, even if its key now holds
    /// someone else's event), and the watermark only moves forward.
    #[test]
    fn a_slice_indexes_only_events_still_stored_and_the_watermark_never_moves_back() {
        let mut conn = Connection::open_in_memory().unwrap();
        for m in crate::MIGRATIONS {
            conn.execute_batch(m.sqlite).unwrap();
        }
        conn.execute(
            "INSERT INTO events (id, write_key_id, message_id, kind, user_id, anonymous_id, partition_key, timestamp_ms, received_at, payload) \
             VALUES (7, 'wk', 'm7', 'track', 'u1', 'a1', 'u1', 0, 0, '{}')",
            [],
        )
        .unwrap();
        let tx = conn.transaction().unwrap();
        let slice = IndexRows::Entries {
            by_user: vec![("u1".into(), 7), ("u8".into(), 7), ("u9".into(), 8)],
            by_anonymous: vec![("a1".into(), 7), ("a9".into(), 8)],
        };
        assert_eq!(index(&tx, &slice).unwrap(), 2, "only event 7's own: event 8 was erased, 7 is not u8's");
        assert_eq!(index(&tx, &slice).unwrap(), 0, "a slice written again adds nothing");
        index(&tx, &IndexRows::Through(8)).unwrap();
        index(&tx, &IndexRows::Through(5)).unwrap();
        let through: i64 = tx.query_row("SELECT through FROM events_indexed", [], |r| r.get(0)).unwrap();
        assert_eq!(through, 8);
        let erased: i64 = tx
            .query_row(
                "SELECT (SELECT COUNT(*) FROM events_by_user WHERE id = 8) + (SELECT COUNT(*) FROM events_by_anonymous WHERE id = 8)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(erased, 0);
    }
}
