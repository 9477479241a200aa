//! `Idempotency-Key` records: a retried create with the same key and the same request returns the
//! resource the first attempt created instead of creating another.
//!
//! The record is written in the transaction of the write it protects, so either both exist or
//! neither does. Keys are scoped (by operation and caller), kept at least [`RETENTION_MS`], and a
//! key reused with a different request is reported, not silently replayed.

use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

pub use dermis_core::IdempotencyKey;

use crate::db::Db;
use crate::error::StoreError;

/// How long a key is remembered: 24 hours.
pub const RETENTION_MS: i64 = 24 * 3600 * 1000;

/// What an earlier attempt with the same key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prior {
    /// No earlier attempt: go ahead.
    None,
    /// The same request already created this resource.
    Created(String),
    /// The key was used for a different request.
    Mismatch,
}

/// Digest of a request body, to tell a retry from a different request under the same key.
pub fn request_hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// Looks up an earlier attempt, inside the caller's transaction.
pub async fn prior(
    conn: &mut AnyConnection,
    scope: &str,
    key: &IdempotencyKey,
    hash: &str,
) -> Result<Prior, StoreError> {
    let row = sqlx::query(
        "SELECT request_hash, resource_id FROM idempotency_keys WHERE scope = $1 AND idem_key = $2 AND created_at > $3",
    )
    .bind(scope)
    .bind(key.as_str())
    .bind(dermis_core::clock::now_ms() - RETENTION_MS)
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        None => Prior::None,
        Some(r) if r.get::<String, _>(0) == hash => Prior::Created(r.get(1)),
        Some(_) => Prior::Mismatch,
    })
}

/// Records that this key created `resource_id`, inside the caller's transaction. An expired
/// record under the same key is replaced.
pub async fn record(
    conn: &mut AnyConnection,
    scope: &str,
    key: &IdempotencyKey,
    hash: &str,
    resource_id: &str,
) -> Result<(), StoreError> {
    let now = dermis_core::clock::now_ms();
    sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND idem_key = $2 AND created_at <= $3")
        .bind(scope)
        .bind(key.as_str())
        .bind(now - RETENTION_MS)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO idempotency_keys (scope, idem_key, request_hash, resource_id, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(scope)
    .bind(key.as_str())
    .bind(hash)
    .bind(resource_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes records older than the retention; returns how many.
pub async fn purge_expired(db: &Db) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at <= $1")
        .bind(dermis_core::clock::now_ms() - RETENTION_MS)
        .execute(db.writer())
        .await?;
    Ok(done.rows_affected())
}
