//! Reads of the log, the same on both backends: one customer's events, messages by `messageId`,
//! everything after a point (a node's replay), dead letters, and the erasures a restored
//! snapshot must apply again.

use std::collections::BTreeSet;

use dermis_core::clock::rfc3339;
use dermis_store::sqlx::{self, Row};
use dermis_store::{Db, StoreError};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::keys::{bind_after, read_id};
use super::subject::{Subject, of_customer};
use crate::message::{Kind, Message};

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

/// Lists one customer's events in arrival order after `after`.
pub async fn events_of(
    db: &Db,
    who: &Subject,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<StoredEvent>, StoreError> {
    let sql = format!(
        "SELECT id, write_key_id, schema_ref, payload FROM events WHERE {} ORDER BY id LIMIT {limit}",
        of_customer(db.backend(), who)
    );
    let q = sqlx::query(&sql).bind(who.value());
    let rows = bind_after(q, db.backend(), after)?.fetch_all(db.reader()).await?;
    rows.iter()
        .map(|r| {
            let payload: String = r.try_get(3)?;
            Ok(StoredEvent {
                id: read_id(r, 0, db.backend())?,
                write_key_id: r.try_get(1)?,
                schema: r.try_get(2)?,
                message: serde_json::from_str(&payload).map_err(|e| StoreError::Other(e.to_string()))?,
            })
        })
        .collect()
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

/// The columns [`logged`] reads.
const LOGGED_COLUMNS: &str =
    "id, write_key_id, message_id, kind, event, user_id, anonymous_id, timestamp_ms, received_at, payload";

fn logged(r: &sqlx::any::AnyRow, db: &Db) -> Result<Logged, StoreError> {
    let kind: String = r.try_get(3)?;
    let payload: String = r.try_get(9)?;
    Ok(Logged {
        id: read_id(r, 0, db.backend())?,
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
}

/// Messages stored after `after` (an event id, or the id prefix [`super::id_floor`] makes of a
/// time), oldest first: what a node replays into its online features after a restart.
pub async fn since(db: &Db, after: &str, limit: u32) -> Result<Vec<Logged>, StoreError> {
    let sql = format!("SELECT {LOGGED_COLUMNS} FROM events WHERE id > $1 ORDER BY id LIMIT {}", limit.clamp(1, 5000));
    let q = sqlx::query(&sql);
    let rows = bind_after(q, db.backend(), Some(after))?.fetch_all(db.reader()).await?;
    rows.iter().map(|r| logged(r, db)).collect()
}

/// `messageId`s looked up per statement: well under both backends' limits on bound parameters,
/// and few enough that sqlx's lookup of each parameter's name on SQLite stays cheap.
const IDS_PER_QUERY: usize = 200;

/// The stored messages of one source with these `messageId`s, in the order they were stored,
/// each once. Ids the log does not hold (never stored, or erased since) are left out. Found
/// through the unique index on (write key, `messageId`).
pub async fn messages(db: &Db, write_key_id: &str, message_ids: &[String]) -> Result<Vec<Logged>, StoreError> {
    let wanted: BTreeSet<&str> = message_ids.iter().map(String::as_str).collect();
    let wanted: Vec<&str> = wanted.into_iter().collect();
    let mut found = Vec::new();
    for chunk in wanted.chunks(IDS_PER_QUERY) {
        let list = (2..chunk.len() + 2).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let sql = format!("SELECT {LOGGED_COLUMNS} FROM events WHERE write_key_id = $1 AND message_id IN ({list})");
        let mut q = sqlx::query(&sql).bind(write_key_id);
        for id in chunk {
            q = q.bind(*id);
        }
        for r in q.fetch_all(db.reader()).await? {
            found.push(logged(&r, db)?);
        }
    }
    // Ids sort as the keys do on both backends (see `super::keys`): the chunks' rows merged in
    // log order.
    found.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(found)
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

fn dead_letter_row(r: &sqlx::any::AnyRow) -> Result<StoredDeadLetter, StoreError> {
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

/// The customers (pseudonyms) erased at or after `ms`, with when: what a node restoring a
/// feature snapshot taken after `ms` must forget again (see [`super::erase`]).
pub async fn erasures_since(db: &Db, ms: i64) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = sqlx::query("SELECT subjects, erased_at FROM event_erasures WHERE erased_at >= $1 ORDER BY erased_at")
        .bind(ms)
        .fetch_all(db.reader())
        .await?;
    let mut subjects = Vec::new();
    for r in rows {
        let list: String = r.try_get(0)?;
        let at: i64 = r.try_get(1)?;
        let list = serde_json::from_str::<Vec<String>>(&list).map_err(|e| StoreError::Other(e.to_string()))?;
        subjects.extend(list.into_iter().map(|s| (s, at)));
    }
    Ok(subjects)
}
