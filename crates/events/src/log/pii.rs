//! The one-time rewrite of messages stored before the log stopped keeping personal traits (see
//! [`crate::pii`]): its progress (`event_pii_moves`, one row per version of the policy: the row
//! keyed [`crate::pii::VERSION`] is the current one, so a log rewritten under an older policy
//! is rewritten once more) and the rewrite of a page of events or dead letters, in one
//! transaction that zeroes what it overwrites.

use dermis_store::sqlx::{self, Row};
use dermis_store::{Db, StoreError};
use serde_json::Value;

use super::keys::bind_after;
use crate::pii::VERSION;

/// How far the rewrite got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PiiProgress {
    /// The last event id looked at (`""`: none yet).
    pub after_id: String,
    /// The last dead letter id looked at.
    pub after_dead_letter: String,
    /// Messages rewritten so far.
    pub moved: i64,
    /// When it finished, ms.
    pub finished_at: Option<i64>,
}

/// Where the rewrite under the current policy stands (`None`: it never ran).
pub async fn pii_progress(db: &Db) -> Result<Option<PiiProgress>, StoreError> {
    let row = sqlx::query("SELECT after_id, after_dead_letter, moved, finished_at FROM event_pii_moves WHERE one = $1")
        .bind(VERSION as i32)
        .fetch_optional(db.reader())
        .await?;
    row.map(|r| {
        Ok(PiiProgress {
            after_id: r.try_get(0)?,
            after_dead_letter: r.try_get(1)?,
            moved: r.try_get(2)?,
            finished_at: r.try_get(3)?,
        })
    })
    .transpose()
}

/// Records how far the rewrite under the current policy got.
pub async fn save_pii_progress(db: &Db, p: &PiiProgress) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO event_pii_moves (one, after_id, after_dead_letter, moved, finished_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (one) DO UPDATE SET after_id = excluded.after_id, after_dead_letter = excluded.after_dead_letter, \
         moved = excluded.moved, finished_at = excluded.finished_at",
    )
    .bind(VERSION as i32)
    .bind(&p.after_id)
    .bind(&p.after_dead_letter)
    .bind(p.moved)
    .bind(p.finished_at)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Replaces the payloads of stored events (by event id) or dead letters (`dead_letters`), in
/// one transaction whose overwritten bytes are zeroed (`secure_delete`, as an erasure's). A row
/// erased meanwhile is skipped. Returns how many rows it rewrote.
pub async fn rewrite_payloads(db: &Db, rows: &[(String, Value)], dead_letters: bool) -> Result<u64, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let backend = db.backend();
    let mut tx = db.begin().await?;
    Db::secure_deletes(&mut tx, backend, true).await?;
    let mut n = 0;
    for (id, payload) in rows {
        let text = serde_json::to_string(payload).map_err(|e| StoreError::Other(e.to_string()))?;
        let done = if dead_letters {
            sqlx::query("UPDATE dead_letters SET payload = $1 WHERE id = $2")
                .bind(text)
                .bind(id)
                .execute(&mut *tx)
                .await?
        } else {
            let q = sqlx::query("UPDATE events SET payload = $1 WHERE id = $2").bind(text);
            bind_after(q, backend, Some(id))?.execute(&mut *tx).await?
        };
        n += done.rows_affected();
    }
    Db::secure_deletes(&mut tx, backend, false).await?;
    tx.commit().await?;
    Ok(n)
}
