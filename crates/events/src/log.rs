//! The event log and the dead letters. Appends are multi-row inserts in one transaction;
//! `(write_key_id, messageId)` is unique, so a retried message is stored once.

use dermis_core::clock::rfc3339;
use dermis_core::ids::new_id;
use dermis_store::db::Backend;
use dermis_store::sqlx::{self, Row};
use dermis_store::{Db, StoreError};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::message::{Kind, Message};
use crate::outbox::{self, Ingested};

/// A message to append, with the schema it was validated against.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The message.
    pub message: Message,
    /// `product_viewed@1`, when a schema applied.
    pub schema: Option<String>,
}

/// A message to keep as a dead letter.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Its `messageId`, if it had a usable one.
    pub message_id: Option<String>,
    /// One line.
    pub reason: String,
    /// Details.
    pub errors: Vec<String>,
    /// The message as received (without the write key).
    pub payload: Value,
}

/// Rows per multi-row INSERT. PostgreSQL pays a round trip per statement, so it gets many;
/// SQLite pays nothing per statement but looks bound parameters up by a linear scan (sqlx asks
/// for each one's name), which makes a statement quadratic in its parameters: at 200 rows
/// (2,400 parameters) that scan was a third of the embedded insert time. Measured with the
/// `insert_rate` example, 100-message batches: 1 row 11.9 k/s, 5 rows 14.8 k/s, 10 rows 16.7 k/s,
/// 20 rows 13.9 k/s, 200 rows 11.5 k/s.
fn rows_per_insert(backend: Backend) -> usize {
    match backend {
        Backend::Sqlite => 10,
        Backend::Postgres => 200,
    }
}

/// Inserts events (multi-row, duplicates of stored `messageId`s skipped); returns how many were new.
async fn insert_events(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    write_key_id: &str,
    accepted: &[Accepted],
) -> Result<usize, StoreError> {
    let mut inserted = 0;
    for chunk in accepted.chunks(rows_per_insert(backend)) {
        let mut sql = String::from(
            "INSERT INTO events (id, write_key_id, message_id, kind, event, user_id, anonymous_id, partition_key, schema_ref, timestamp_ms, received_at, payload) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = i * 12;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            sql.push_str(&(1..=12).map(|k| format!("${}", b + k)).collect::<Vec<_>>().join(", "));
            sql.push(')');
        }
        sql.push_str(" ON CONFLICT (write_key_id, message_id) DO NOTHING");
        let mut q = sqlx::query(&sql);
        for a in chunk {
            let m = &a.message;
            q = q
                .bind(new_id("evt"))
                .bind(write_key_id)
                .bind(&m.message_id)
                .bind(m.kind.as_str())
                .bind(m.event.clone())
                .bind(m.user_id.clone())
                .bind(m.anonymous_id.clone())
                .bind(m.partition_key().to_owned())
                .bind(a.schema.clone())
                .bind(m.timestamp_ms)
                .bind(m.received_at_ms)
                .bind(m.payload.to_string());
        }
        inserted += q.execute(&mut *conn).await?.rows_affected() as usize;
    }
    Ok(inserted)
}

/// What one ingestion request appends: its messages, its dead letters and what goes to the bus.
#[derive(Debug, Clone)]
pub struct Append {
    /// The source.
    pub write_key_id: String,
    /// Messages to store (duplicates of stored `messageId`s are skipped).
    pub accepted: Vec<Accepted>,
    /// Messages kept as dead letters.
    pub dead: Vec<DeadLetter>,
    /// Handed to the bus through the outbox when any message was new.
    pub to_bus: Option<Ingested>,
    /// When the request arrived, ms since the epoch.
    pub received_at: i64,
}

impl Append {
    fn rows(&self) -> usize {
        self.accepted.len() + self.dead.len() + 1
    }
}

/// Writes one request's rows in the caller's transaction; returns how many messages were new.
async fn write(conn: &mut sqlx::AnyConnection, backend: Backend, job: &Append) -> Result<usize, StoreError> {
    let inserted = insert_events(&mut *conn, backend, &job.write_key_id, &job.accepted).await?;
    if let Some(i) = job.to_bus.as_ref().filter(|_| inserted > 0) {
        outbox::append(&mut *conn, i, job.received_at).await?;
    }
    for d in &job.dead {
        sqlx::query(
            "INSERT INTO dead_letters (id, write_key_id, message_id, reason, errors, payload, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_id("dlq"))
        .bind(&job.write_key_id)
        .bind(d.message_id.clone())
        .bind(&d.reason)
        .bind(serde_json::to_string(&d.errors).unwrap_or_default())
        .bind(d.payload.to_string())
        .bind(job.received_at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(inserted)
}

/// Appends one request in its own transaction. Returns how many messages were new (the rest
/// were duplicates of stored ones).
pub async fn append(db: &Db, job: &Append) -> Result<usize, StoreError> {
    let mut tx = db.begin().await?;
    let inserted = write(&mut tx, db.backend(), job).await?;
    tx.commit().await?;
    Ok(inserted)
}

type Reply = tokio::sync::oneshot::Sender<Result<usize, StoreError>>;

/// Most rows one group commit carries.
const GROUP_ROWS: usize = 2500;

/// The log's writer. On SQLite, which has one writer anyway, concurrent requests are committed
/// together (group commit): one task takes every append waiting, writes them in one
/// transaction and answers each after the commit, so the per-transaction cost (dirty index
/// pages written to the WAL, the fsync) is shared. A group that fails is retried one request
/// per transaction, so one bad request never fails the others. On PostgreSQL each request
/// commits on its own connection, concurrently.
#[derive(Debug, Clone)]
pub struct LogWriter {
    db: Db,
    group: Option<tokio::sync::mpsc::Sender<(Append, Reply)>>,
}

impl LogWriter {
    /// A writer for `db` (on SQLite, starts the group-commit task: call within a runtime).
    pub fn new(db: Db) -> Self {
        let group = (db.backend() == Backend::Sqlite).then(|| {
            let (tx, rx) = tokio::sync::mpsc::channel(1024);
            tokio::spawn(group_commit(db.clone(), rx));
            tx
        });
        Self { db, group }
    }

    /// Appends one request; answers once it is committed.
    pub async fn append(&self, job: Append) -> Result<usize, StoreError> {
        let Some(group) = &self.group else { return append(&self.db, &job).await };
        let (reply, answer) = tokio::sync::oneshot::channel();
        group.send((job, reply)).await.map_err(|_| StoreError::Unavailable("the event log writer stopped".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("the event log writer stopped".into()))?
    }
}

async fn group_commit(db: Db, mut rx: tokio::sync::mpsc::Receiver<(Append, Reply)>) {
    while let Some(first) = rx.recv().await {
        let mut rows = first.0.rows();
        let mut group = vec![first];
        while rows < GROUP_ROWS {
            match rx.try_recv() {
                Ok(next) => {
                    rows += next.0.rows();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        metrics::histogram!("events_group_commit_requests").record(group.len() as f64);
        match write_group(&db, &group).await {
            Ok(counts) => {
                for ((_, reply), n) in group.into_iter().zip(counts) {
                    let _ = reply.send(Ok(n));
                }
            }
            Err(e) if group.len() == 1 => {
                if let Some((_, reply)) = group.pop() {
                    let _ = reply.send(Err(e));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, requests = group.len(), "group commit failed; committing one by one");
                for (job, reply) in group {
                    let _ = reply.send(append(&db, &job).await);
                }
            }
        }
    }
}

async fn write_group(db: &Db, group: &[(Append, Reply)]) -> Result<Vec<usize>, StoreError> {
    let mut tx = db.begin().await?;
    let mut counts = Vec::with_capacity(group.len());
    for (job, _) in group {
        counts.push(write(&mut tx, db.backend(), job).await?);
    }
    tx.commit().await?;
    Ok(counts)
}

/// A stored event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoredEvent {
    /// `evt_...`, in arrival order.
    pub id: String,
    /// The source.
    pub write_key_id: String,
    /// The schema it was validated against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The canonical message.
    #[schema(value_type = Object)]
    pub message: Value,
}

/// Which customer's events.
#[derive(Debug, Clone)]
pub enum Subject {
    /// By user id.
    User(String),
    /// By anonymous id.
    Anonymous(String),
}

/// Lists one customer's events in arrival order after `after`.
pub async fn events_of(
    db: &Db,
    who: &Subject,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<StoredEvent>, StoreError> {
    let (column, value) = match who {
        Subject::User(u) => ("user_id", u),
        Subject::Anonymous(a) => ("anonymous_id", a),
    };
    let rows = sqlx::query(&format!(
        "SELECT id, write_key_id, schema_ref, payload FROM events WHERE {column} = $1 AND id > $2 ORDER BY id LIMIT {limit}"
    ))
    .bind(value)
    .bind(after.unwrap_or(""))
    .fetch_all(db.reader())
    .await?;
    rows.iter()
        .map(|r| {
            let payload: String = r.try_get(3)?;
            Ok(StoredEvent {
                id: r.try_get(0)?,
                write_key_id: r.try_get(1)?,
                schema: r.try_get(2)?,
                message: serde_json::from_str(&payload).map_err(|e| StoreError::Other(e.to_string()))?,
            })
        })
        .collect()
}

/// A dead letter as listed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoredDeadLetter {
    /// `dlq_...`.
    pub id: String,
    /// The source.
    pub write_key_id: String,
    /// The message's `messageId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Why it was rejected.
    pub reason: String,
    /// Details.
    pub errors: Vec<String>,
    /// The message as received.
    #[schema(value_type = Object)]
    pub payload: Value,
    /// RFC 3339.
    pub received_at: String,
    /// RFC 3339, once replayed into the log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replayed_at: Option<String>,
}

fn dead_letter_row(r: &dermis_store::sqlx::any::AnyRow) -> Result<StoredDeadLetter, StoreError> {
    let errors: String = r.try_get(4)?;
    let payload: String = r.try_get(5)?;
    Ok(StoredDeadLetter {
        id: r.try_get(0)?,
        write_key_id: r.try_get(1)?,
        message_id: r.try_get(2)?,
        reason: r.try_get(3)?,
        errors: serde_json::from_str(&errors).unwrap_or_default(),
        payload: serde_json::from_str(&payload).map_err(|e| StoreError::Other(e.to_string()))?,
        received_at: rfc3339(r.try_get(6)?),
        replayed_at: r.try_get::<Option<i64>, _>(7)?.map(rfc3339),
    })
}

const DEAD_COLUMNS: &str = "id, write_key_id, message_id, reason, errors, payload, received_at, replayed_at";

/// Lists dead letters in arrival order after `after` (replayed ones too, marked).
pub async fn dead_letters(db: &Db, after: Option<&str>, limit: u32) -> Result<Vec<StoredDeadLetter>, StoreError> {
    let rows = sqlx::query(&format!("SELECT {DEAD_COLUMNS} FROM dead_letters WHERE id > $1 ORDER BY id LIMIT {limit}"))
        .bind(after.unwrap_or(""))
        .fetch_all(db.reader())
        .await?;
    rows.iter().map(dead_letter_row).collect()
}

/// One dead letter.
pub async fn dead_letter(db: &Db, id: &str) -> Result<Option<StoredDeadLetter>, StoreError> {
    let row = sqlx::query(&format!("SELECT {DEAD_COLUMNS} FROM dead_letters WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(dead_letter_row).transpose()
}

/// Stores a replayed dead letter's message and marks the dead letter replayed, in one transaction.
pub async fn replay(
    db: &Db,
    dead_letter_id: &str,
    write_key_id: &str,
    accepted: &Accepted,
    to_bus: Option<&Ingested>,
    now: i64,
) -> Result<bool, StoreError> {
    let mut tx = db.begin().await?;
    // Claim the dead letter first: a second replay (or a concurrent one) claims nothing and
    // stores nothing.
    let claimed = sqlx::query("UPDATE dead_letters SET replayed_at = $1 WHERE id = $2 AND replayed_at IS NULL")
        .bind(now)
        .bind(dead_letter_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if claimed == 0 {
        return Ok(false);
    }
    let inserted = insert_events(&mut tx, db.backend(), write_key_id, std::slice::from_ref(accepted)).await?;
    if let Some(i) = to_bus.filter(|_| inserted > 0) {
        outbox::append(&mut tx, i, now).await?;
    }
    tx.commit().await?;
    Ok(inserted > 0)
}

/// A stored message with its source, as a rebuild reads it.
#[derive(Debug, Clone)]
pub struct Logged {
    /// `evt_...` (time-ordered).
    pub id: String,
    /// The source.
    pub write_key_id: String,
    /// The message.
    pub message: Message,
}

/// Messages stored after `after` (an event id, or the id prefix [`id_floor`] makes of a time),
/// oldest first: what a node replays into its online features after a restart.
pub async fn since(db: &Db, after: &str, limit: u32) -> Result<Vec<Logged>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT id, write_key_id, message_id, kind, event, user_id, anonymous_id, timestamp_ms, received_at, payload
         FROM events WHERE id > $1 ORDER BY id LIMIT {}",
        limit.clamp(1, 5000)
    ))
    .bind(after)
    .fetch_all(db.reader())
    .await?;
    rows.iter()
        .map(|r| {
            let kind: String = r.try_get(3)?;
            let payload: String = r.try_get(9)?;
            Ok(Logged {
                id: r.try_get(0)?,
                write_key_id: r.try_get(1)?,
                message: Message {
                    message_id: r.try_get(2)?,
                    kind: Kind::parse(&kind).ok_or_else(|| StoreError::Other(format!("stored kind {kind:?}")))?,
                    event: r.try_get(4)?,
                    user_id: r.try_get(5)?,
                    anonymous_id: r.try_get(6)?,
                    timestamp_ms: r.try_get(7)?,
                    received_at_ms: r.try_get(8)?,
                    payload: serde_json::from_str(&payload).map_err(|e| StoreError::Other(e.to_string()))?,
                },
            })
        })
        .collect()
}

/// An id below every event stored at or after `ms`: `since(db, &id_floor(t), ..)` starts at
/// time `t`.
pub fn id_floor(ms: i64) -> String {
    dermis_core::ids::floor_at("evt", ms)
}
