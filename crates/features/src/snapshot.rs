//! Snapshots of the in-memory store, one per node: a restart restores the last one and replays
//! the event log from its time instead of from 90 days back.
//!
//! A snapshot is written in parts of about [`PART_BYTES`] (`feature_snapshot_parts`), each in a
//! statement of its own, then made current in one small transaction (`feature_snapshots` names
//! the complete one). On SQLite every write takes the process's one write turn: a single 137 MB
//! row once held it for up to 1.9 s, stalling ingestion; a 1 MB part holds it for milliseconds
//! and ingestion's commits go between them. A crash mid-way leaves the previous snapshot
//! current (the unfinished parts are removed by the next save).

use dermis_store::sqlx::{self, Row};
use dermis_store::{Db, StoreError};

/// Size of one stored part of a snapshot.
pub const PART_BYTES: usize = 1024 * 1024;

/// A snapshot as stored.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// When it was taken, ms since the epoch.
    pub taken_at: i64,
    /// [`crate::memory::MemoryFeatures::snapshot`]'s output.
    pub body: String,
}

/// Splits `body` into parts of at most `size` bytes, on character boundaries.
fn parts(body: &str, size: usize) -> Vec<&str> {
    let mut out = Vec::with_capacity(body.len() / size.max(1) + 1);
    let mut rest = body;
    while !rest.is_empty() {
        let mut end = size.min(rest.len());
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (part, tail) = rest.split_at(end.max(rest.chars().next().map_or(1, char::len_utf8).min(rest.len())));
        out.push(part);
        rest = tail;
    }
    out
}

/// Saves the node's snapshot, part by part, then makes it the current one. (Its time is moved
/// past the current snapshot's when the clock gives the same millisecond or stepped back, so the
/// new parts never collide with the current ones.)
pub async fn save(db: &Db, node_id: &str, taken_at: i64, body: &str) -> Result<(), StoreError> {
    let current: Option<i64> = sqlx::query("SELECT taken_at FROM feature_snapshots WHERE node_id = $1")
        .bind(node_id)
        .fetch_optional(db.writer())
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    let taken_at = current.map_or(taken_at, |c| taken_at.max(c + 1));
    // Parts of an earlier save that did not finish (a crash), and any left at this time.
    sqlx::query(
        "DELETE FROM feature_snapshot_parts WHERE node_id = $1 AND taken_at NOT IN \
         (SELECT taken_at FROM feature_snapshots WHERE node_id = $1)",
    )
    .bind(node_id)
    .execute(db.writer())
    .await?;
    for (seq, part) in parts(body, PART_BYTES).into_iter().enumerate() {
        sqlx::query("INSERT INTO feature_snapshot_parts (node_id, taken_at, seq, body) VALUES ($1, $2, $3, $4)")
            .bind(node_id)
            .bind(taken_at)
            .bind(seq as i64)
            .bind(part)
            .execute(db.writer())
            .await?;
    }
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO feature_snapshots (node_id, taken_at, body) VALUES ($1, $2, '')
         ON CONFLICT (node_id) DO UPDATE SET taken_at = excluded.taken_at, body = excluded.body",
    )
    .bind(node_id)
    .bind(taken_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    // The previous snapshot's parts, in small statements (a delete of a large snapshot is as
    // long a write as its insert).
    loop {
        let gone = sqlx::query(
            "DELETE FROM feature_snapshot_parts WHERE node_id = $1 AND taken_at <> $2 AND seq IN \
             (SELECT seq FROM feature_snapshot_parts WHERE node_id = $1 AND taken_at <> $2 ORDER BY seq LIMIT 4)",
        )
        .bind(node_id)
        .bind(taken_at)
        .execute(db.writer())
        .await?
        .rows_affected();
        if gone == 0 {
            return Ok(());
        }
    }
}

/// The node's last complete snapshot.
pub async fn load(db: &Db, node_id: &str) -> Result<Option<Snapshot>, StoreError> {
    let Some(row) = sqlx::query("SELECT taken_at, body FROM feature_snapshots WHERE node_id = $1")
        .bind(node_id)
        .fetch_optional(db.reader())
        .await?
    else {
        return Ok(None);
    };
    let taken_at: i64 = row.try_get(0)?;
    let mut body: String = row.try_get(1)?;
    let rows = sqlx::query("SELECT body FROM feature_snapshot_parts WHERE node_id = $1 AND taken_at = $2 ORDER BY seq")
        .bind(node_id)
        .bind(taken_at)
        .fetch_all(db.reader())
        .await?;
    for r in rows {
        body.push_str(&r.try_get::<String, _>(0)?);
    }
    Ok(Some(Snapshot { taken_at, body }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_split_on_character_boundaries_and_join_back() {
        let body = "aé€😀".repeat(1000);
        for size in [1, 2, 3, 5, 7, 1024] {
            let p = parts(&body, size);
            assert_eq!(p.concat(), body);
            assert!(p.iter().all(|x| !x.is_empty() && (x.len() <= size || x.chars().count() == 1)));
        }
        assert!(parts("", 10).is_empty());
    }
}
