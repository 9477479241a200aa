//! What ingestion hands to the event bus. Each ingestion request that stored messages writes one
//! [`Ingested`] row to `events_outbox` in its own transaction; the server's relay publishes it
//! on [`TOPIC`] (the row id is the bus message id, so a relay repeated after a crash is dropped
//! by the bus) and deletes it. Consumers on other nodes (their online features, later profiles
//! and analytics) read it there.

use dermis_core::ids::new_id;
use dermis_features::FeatureEvent;
use dermis_store::sqlx::{self, Row};
use dermis_store::{Db, StoreError};
use serde::{Deserialize, Serialize};

use crate::message::Message;

/// The bus topic of ingested events.
pub const TOPIC: &str = "events.ingested";

/// One ingested message, as the bus carries it (the full message stays in the log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestedMessage {
    /// `messageId`.
    pub message_id: String,
    /// `track`, `identify` ...
    pub kind: String,
    /// The `track` event name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Known user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Device / browser identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
    /// Corrected event time, ms since the epoch.
    pub timestamp_ms: i64,
}

impl From<&Message> for IngestedMessage {
    fn from(m: &Message) -> Self {
        Self {
            message_id: m.message_id.clone(),
            kind: m.kind.as_str().to_owned(),
            event: m.event.clone(),
            user_id: m.user_id.clone(),
            anonymous_id: m.anonymous_id.clone(),
            timestamp_ms: m.timestamp_ms,
        }
    }
}

/// The messages one ingestion request stored, with the feature updates they imply (already
/// enriched from the catalog, so consumers need no lookup).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ingested {
    /// The source.
    pub write_key_id: String,
    /// The messages.
    pub messages: Vec<IngestedMessage>,
    /// Their feature updates (ids are unique per message and product, so applying twice is safe).
    pub features: Vec<FeatureEvent>,
}

/// A row waiting for the relay.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    /// Also the bus message id.
    pub id: String,
    /// An [`Ingested`], as JSON.
    pub payload: String,
}

/// Appends a row in the caller's transaction.
pub(crate) async fn append(conn: &mut sqlx::AnyConnection, ingested: &Ingested, now: i64) -> Result<(), StoreError> {
    let payload = serde_json::to_string(ingested).map_err(|e| StoreError::Other(e.to_string()))?;
    sqlx::query("INSERT INTO events_outbox (id, payload, created_at) VALUES ($1, $2, $3)")
        .bind(new_id("ing"))
        .bind(payload)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The oldest rows not yet relayed.
pub async fn pending(db: &Db, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
    let rows =
        sqlx::query(&format!("SELECT id, payload FROM events_outbox ORDER BY id LIMIT {}", limit.clamp(1, 1000)))
            .fetch_all(db.reader())
            .await?;
    rows.iter().map(|r| Ok(OutboxRow { id: r.try_get(0)?, payload: r.try_get(1)? })).collect()
}

/// Removes relayed rows.
pub async fn remove(db: &Db, ids: &[String]) -> Result<(), StoreError> {
    for chunk in ids.chunks(200) {
        let params: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!("DELETE FROM events_outbox WHERE id IN ({})", params.join(", "));
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id);
        }
        q.execute(db.writer()).await?;
    }
    Ok(())
}

/// How many rows wait for the relay.
pub async fn backlog(db: &Db) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM events_outbox").fetch_one(db.reader()).await?.try_get(0)?;
    Ok(n as u64)
}
