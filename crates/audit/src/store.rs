//! The audit log's SQL, one text for both backends. The only writes are the INSERT of a new
//! entry and the UPDATE of the head row in the same transaction; nothing updates or deletes
//! `audit_log`.

use dermis_store::sqlx::{self, Any, AnyConnection, Row, Transaction, any::AnyRow};
use dermis_store::{Backend, Db, StoreError};

use crate::chain::Hashed;
use crate::model::{Entry, Record};

/// A row as stored, `fields` still as its JSON text (verification reports a damaged one).
pub(crate) struct Raw {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub role: String,
    pub purpose: String,
    pub request_id: String,
    pub action: String,
    pub subject: Option<String>,
    pub fields: String,
    pub prev_hash: String,
    pub hash: String,
}

const COLUMNS: &str = "seq, at, actor, role, purpose, request_id, action, subject, fields, prev_hash, hash";

fn raw(row: &AnyRow) -> Result<Raw, sqlx::Error> {
    Ok(Raw {
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        role: row.try_get("role")?,
        purpose: row.try_get("purpose")?,
        request_id: row.try_get("request_id")?,
        action: row.try_get("action")?,
        subject: row.try_get("subject")?,
        fields: row.try_get("fields")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Appends `entries` (each with its time) in one transaction, in the order given, and returns
/// them as stored. Taking the next seqs is one UPDATE of the head row, which serializes
/// appends: on SQLite the transaction already holds the one write lock (`BEGIN IMMEDIATE`); on
/// PostgreSQL another appender (another node) waits on the head row's lock and then reads the
/// committed seq and hash.
pub(crate) async fn append(db: &Db, entries: &[(i64, &Entry)]) -> Result<Vec<Record>, StoreError> {
    let n = entries.len() as i64;
    let mut tx = db.begin().await?;
    let head = sqlx::query("UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash")
        .bind(n)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::Other("the audit chain head row is missing".to_owned()))?;
    let last: i64 = head.try_get("seq")?;
    let mut prev_hash: String = head.try_get("hash")?;
    let mut out = Vec::with_capacity(entries.len());
    for (i, (at, entry)) in entries.iter().enumerate() {
        let seq = last - n + 1 + i as i64;
        let fields_json = serde_json::to_string(&entry.fields).map_err(|e| StoreError::Other(e.to_string()))?;
        let hash = Hashed {
            seq,
            at: *at,
            actor: &entry.actor,
            role: &entry.role,
            purpose: &entry.purpose,
            request_id: &entry.request_id,
            action: entry.action.as_str(),
            subject: entry.subject.as_deref(),
            fields: &entry.fields,
            prev_hash: &prev_hash,
        }
        .hash();
        sqlx::query(
            "INSERT INTO audit_log (seq, at, actor, role, purpose, request_id, action, subject, fields, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(seq)
        .bind(*at)
        .bind(&entry.actor)
        .bind(&entry.role)
        .bind(&entry.purpose)
        .bind(&entry.request_id)
        .bind(entry.action.as_str())
        .bind(entry.subject.as_deref())
        .bind(&fields_json)
        .bind(&prev_hash)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
        let prev = std::mem::replace(&mut prev_hash, hash.clone());
        out.push(Record {
            seq,
            at: *at,
            actor: entry.actor.clone(),
            role: entry.role.clone(),
            purpose: entry.purpose.clone(),
            request_id: entry.request_id.clone(),
            action: entry.action.as_str().to_owned(),
            subject: entry.subject.clone(),
            fields: entry.fields.clone(),
            prev_hash: prev,
            hash,
        });
    }
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1").bind(&prev_hash).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(out)
}

/// A read-only transaction that sees one snapshot throughout (PostgreSQL: REPEATABLE READ;
/// SQLite: a read transaction is a snapshot from its first read).
pub(crate) async fn snapshot(db: &Db) -> Result<Transaction<'static, Any>, StoreError> {
    let mut tx = db.reader().begin().await?;
    if db.backend() == Backend::Postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    }
    Ok(tx)
}

/// The chain head: the last entry's seq and hash (0 and the genesis hash when empty).
pub(crate) async fn head(conn: &mut AnyConnection) -> Result<(i64, String), StoreError> {
    let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| StoreError::Other("the audit chain head row is missing".to_owned()))?;
    Ok((row.try_get("seq")?, row.try_get("hash")?))
}

/// Up to `limit` entries after `after`, in seq order.
pub(crate) async fn page(conn: &mut AnyConnection, after: i64, limit: i64) -> Result<Vec<Raw>, StoreError> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"))
        .bind(after)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    Ok(rows.iter().map(raw).collect::<Result<_, _>>()?)
}

/// Every entry about `customer_id` or made by them with a customer token, in seq order.
pub(crate) async fn of_customer(db: &Db, customer_id: &str) -> Result<Vec<Raw>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM audit_log WHERE subject = $1 OR (actor = $1 AND role = 'customer') ORDER BY seq"
    ))
    .bind(customer_id)
    .fetch_all(db.reader())
    .await?;
    Ok(rows.iter().map(raw).collect::<Result<_, _>>()?)
}
