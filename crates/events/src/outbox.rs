//! What ingestion hands to the event bus. Each ingestion request that stored messages writes one
//! [`Ingested`] message in its own transaction: on SQLite with the embedded bus straight into the
//! bus (see [`crate::log::LogWriter::publish_in_log`]); otherwise as a row of `events_outbox`,
//! which the server's relay publishes on [`TOPIC`] (the row id is the bus message id, so a relay
//! repeated after a crash is dropped by the bus) and deletes. Consumers on other nodes (their
//! online features, later profiles and analytics) read it there.

use dermis_bus::Outgoing;
use dermis_core::ids::new_id;
use dermis_store::sqlx::{self, Row};
use dermis_store::{Db, StoreError};
use serde::{Deserialize, Serialize};

/// The bus topic of ingested events.
pub const TOPIC: &str = "events.ingested";

/// The bus key (partition) of ingested events.
pub const KEY: &str = "ingestion";

/// What one ingestion request stored, for every projection of the stream on every node: the
/// `messageId`s of the messages it stored. The messages themselves stay in the log, where a
/// projection reads them ([`crate::log::messages`]): the bus carries no personal data, which an
/// erasure could not reach there, and a message erased before a projection reads it is gone
/// for that projection too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ingested {
    /// The source.
    pub write_key_id: String,
    /// The node that stored them (its own projections saw them before it answered); empty for
    /// erasures, which every node applies.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// The `messageId`s stored (with duplicates of a retried request: projections count each
    /// message once).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<String>,
    /// What the messages are, each kind once (see [`kind_label`]): `identify`, `alias`,
    /// `track:product_viewed` ... A projection that needs none of them skips the message
    /// without reading the log. Empty from an earlier release: then read them all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    /// Customers whose events were erased, as their pseudonyms (never in clear): every node
    /// forgets their features and drops updates for them received before `erased_at`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub erase: Vec<String>,
    /// When the erasure happened, ms since the epoch (with `erase`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub erased_at: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// A message's kind as [`Ingested::kinds`] names it: its type, and for `track` its event name
/// normalized (`track:product_viewed`).
pub fn kind_label(m: &crate::message::Message) -> String {
    match (m.kind, m.event.as_deref()) {
        (crate::message::Kind::Track, Some(event)) => format!("track:{}", crate::schemas::normalize_name(event)),
        (kind, _) => kind.as_str().to_owned(),
    }
}

impl Ingested {
    /// Whether a projection interested in the kinds `wanted` (as [`kind_label`] names them)
    /// must read this message's stored messages: some of its kinds are wanted, or its kinds are
    /// not known (an earlier release).
    pub fn has_any(&self, wanted: impl Fn(&str) -> bool) -> bool {
        !self.messages.is_empty() && (self.kinds.is_empty() || self.kinds.iter().any(|k| wanted(k)))
    }

    /// The message of an erasure: every node forgets `pseudonyms` as of `erased_at`.
    pub fn erasure(pseudonyms: Vec<String>, erased_at: i64) -> Self {
        Self { erase: pseudonyms, erased_at, ..Self::default() }
    }
}

/// A row waiting for the relay.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    /// Also the bus message id.
    pub id: String,
    /// An [`Ingested`], as JSON.
    pub payload: String,
}

/// An [`Ingested`] as the bus message it becomes (its id is also its outbox row's id).
pub(crate) fn message(ingested: &Ingested) -> Result<Outgoing, StoreError> {
    let payload = serde_json::to_string(ingested).map_err(|e| StoreError::Other(e.to_string()))?;
    Ok(Outgoing { topic: TOPIC.to_owned(), key: KEY.to_owned(), id: new_id("ing"), payload })
}

/// Appends a row in the caller's transaction.
pub(crate) async fn append(conn: &mut sqlx::AnyConnection, ingested: &Ingested, now: i64) -> Result<(), StoreError> {
    let m = message(ingested)?;
    sqlx::query("INSERT INTO events_outbox (id, payload, created_at) VALUES ($1, $2, $3)")
        .bind(m.id)
        .bind(m.payload)
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
    // Small statements on SQLite: sqlx looks every bound parameter's name up linearly.
    let per_statement = match db.backend() {
        dermis_store::db::Backend::Sqlite => 20,
        dermis_store::db::Backend::Postgres => 200,
    };
    if ids.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin().await?;
    for chunk in ids.chunks(per_statement) {
        let params: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!("DELETE FROM events_outbox WHERE id IN ({})", params.join(", "));
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}
