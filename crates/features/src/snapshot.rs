//! Snapshots of the in-memory store, one per node, in the `feature_snapshots` table: a restart
//! restores the last one and replays the event log from its time instead of from 90 days back.

use dermis_store::sqlx::{self, Row};
use dermis_store::{Db, StoreError};

/// A snapshot as stored.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// When it was taken, ms since the epoch.
    pub taken_at: i64,
    /// [`crate::memory::MemoryFeatures::snapshot`]'s output.
    pub body: String,
}

/// Saves (replaces) the node's snapshot.
pub async fn save(db: &Db, node_id: &str, taken_at: i64, body: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO feature_snapshots (node_id, taken_at, body) VALUES ($1, $2, $3)
         ON CONFLICT (node_id) DO UPDATE SET taken_at = excluded.taken_at, body = excluded.body",
    )
    .bind(node_id)
    .bind(taken_at)
    .bind(body)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// The node's last snapshot.
pub async fn load(db: &Db, node_id: &str) -> Result<Option<Snapshot>, StoreError> {
    let row = sqlx::query("SELECT taken_at, body FROM feature_snapshots WHERE node_id = $1")
        .bind(node_id)
        .fetch_optional(db.reader())
        .await?;
    row.map(|r| Ok(Snapshot { taken_at: r.try_get(0)?, body: r.try_get(1)? })).transpose()
}
