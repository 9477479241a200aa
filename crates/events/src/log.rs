//! The event log and the dead letters. Appends are multi-row inserts in one transaction;
//! `(write_key_id, messageId)` is unique, so a retried message is stored once.

use dermis_core::clock::rfc3339;
use dermis_core::ids::new_id;
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

const ROWS_PER_INSERT: usize = 200;

/// Inserts events (multi-row, duplicates of stored `messageId`s skipped); returns how many were new.
async fn insert_events(
    conn: &mut sqlx::AnyConnection,
    write_key_id: &str,
    accepted: &[Accepted],
) -> Result<usize, StoreError> {
    let mut inserted = 0;
    for chunk in accepted.chunks(ROWS_PER_INSERT) {
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

/// Appends messages, dead letters and what goes to the bus in one transaction. Returns how many
/// messages were new (the rest were duplicates of stored ones).
pub async fn append(
    db: &Db,
    write_key_id: &str,
    accepted: &[Accepted],
    dead: &[DeadLetter],
    to_bus: Option<&Ingested>,
    received_at: i64,
) -> Result<usize, StoreError> {
    let mut tx = db.begin().await?;
    let inserted = insert_events(&mut tx, write_key_id, accepted).await?;
    if let Some(i) = to_bus.filter(|_| inserted > 0) {
        outbox::append(&mut tx, i, received_at).await?;
    }
    for d in dead {
        sqlx::query(
            "INSERT INTO dead_letters (id, write_key_id, message_id, reason, errors, payload, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_id("dlq"))
        .bind(write_key_id)
        .bind(d.message_id.clone())
        .bind(&d.reason)
        .bind(serde_json::to_string(&d.errors).unwrap_or_default())
        .bind(d.payload.to_string())
        .bind(received_at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(inserted)
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
    to_bus: &Ingested,
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
    let inserted = insert_events(&mut tx, write_key_id, std::slice::from_ref(accepted)).await?;
    if inserted > 0 {
        outbox::append(&mut tx, to_bus, now).await?;
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
