//! Appends on PostgreSQL: several nodes write concurrently, so each request commits on a
//! connection of its own, its events in multi-row inserts (duplicates of stored `messageId`s
//! skipped by the unique index), in one transaction with its dead letters and its outbox row.

use dermis_core::ids::new_id;
use dermis_store::sqlx;
use dermis_store::{Db, StoreError};

use super::job::{Accepted, Append};
use crate::outbox::{self, Ingested};

/// Rows per multi-row INSERT, which pays a round trip per statement.
const ROWS_PER_INSERT: usize = 200;

/// Appends one request in its own transaction; returns how many messages were new.
pub(super) async fn append(db: &Db, job: &Append) -> Result<usize, StoreError> {
    let mut tx = db.begin().await?;
    let inserted = insert_events(&mut tx, &job.write_key_id, &job.accepted).await?;
    if let Some(i) = job.to_bus.as_ref().filter(|_| inserted > 0) {
        outbox::append(&mut tx, i, job.received_at).await?;
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
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(inserted)
}

/// Claims a dead letter and stores its message, in one transaction; true if it was stored.
pub(super) async fn replay(
    db: &Db,
    dead_letter_id: &str,
    write_key_id: &str,
    accepted: Accepted,
    to_bus: Option<Ingested>,
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
    let inserted = insert_events(&mut tx, write_key_id, std::slice::from_ref(&accepted)).await?;
    if let Some(i) = to_bus.as_ref().filter(|_| inserted > 0) {
        outbox::append(&mut tx, i, now).await?;
    }
    tx.commit().await?;
    Ok(inserted > 0)
}

/// Deletes outbox rows the relay handed to the bus, in a transaction of their own.
pub(super) async fn relayed(db: &Db, ids: &[String]) -> Result<(), StoreError> {
    outbox::remove(db, ids).await
}

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
