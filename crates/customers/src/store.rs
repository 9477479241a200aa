//! The customers domain's SQL, one text for both backends. Personal and health data arrive here
//! already sealed (base64 ciphertexts); this module never sees a plaintext.

use dermis_store::StoreError;
use dermis_store::sqlx::{self, Any, AnyConnection, AnyPool, Executor, Row, any::AnyRow};

use crate::crypto::{LookupKind, WrappedKey};

/// A customer row as stored: ciphertexts and bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRow {
    /// Id.
    pub id: String,
    /// Sealed [`crate::model::Contact`].
    pub contact: String,
    /// Sealed [`crate::model::Identifiers`].
    pub identifiers: String,
    /// Sealed [`crate::model::SkinFacts`].
    pub skin: Option<String>,
    /// Sealed [`crate::model::HealthFacts`].
    pub health: Option<String>,
    /// Version.
    pub version: i64,
    /// Created, ms.
    pub created_at: i64,
    /// Updated, ms.
    pub updated_at: i64,
}

const COLUMNS: &str = "id, contact, identifiers, skin, health, version, created_at, updated_at";

fn row(r: &AnyRow) -> Result<CustomerRow, StoreError> {
    Ok(CustomerRow {
        id: r.try_get("id")?,
        contact: r.try_get("contact")?,
        identifiers: r.try_get("identifiers")?,
        skin: r.try_get("skin")?,
        health: r.try_get("health")?,
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Inserts a customer.
pub async fn insert_customer(conn: &mut AnyConnection, c: &CustomerRow) -> Result<(), StoreError> {
    sqlx::query(&format!("INSERT INTO customers ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
        .bind(&c.id)
        .bind(&c.contact)
        .bind(&c.identifiers)
        .bind(c.skin.clone())
        .bind(c.health.clone())
        .bind(c.version)
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Reads a customer.
pub async fn get_customer<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    id: &str,
) -> Result<Option<CustomerRow>, StoreError> {
    let r = sqlx::query(&format!("SELECT {COLUMNS} FROM customers WHERE id = $1")).bind(id).fetch_optional(ex).await?;
    r.as_ref().map(row).transpose()
}

/// Customers in id order after `after` (rebuilds, rotation of nothing but keys, tests).
pub async fn list_customers<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    after: &str,
    limit: u32,
) -> Result<Vec<CustomerRow>, StoreError> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM customers WHERE id > $1 ORDER BY id LIMIT {limit}"))
        .bind(after)
        .fetch_all(ex)
        .await?;
    rows.iter().map(row).collect()
}

/// Takes the customer's row lock for the rest of the transaction (a no-op update does, on both
/// backends): every write to one customer runs one after the other. Returns whether it exists.
pub async fn lock_customer(conn: &mut AnyConnection, id: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE customers SET version = version WHERE id = $1").bind(id).execute(conn).await?;
    Ok(done.rows_affected() == 1)
}

/// Writes every sealed column of `c` if the stored version is still `expected`.
pub async fn update_customer(conn: &mut AnyConnection, c: &CustomerRow, expected: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE customers SET contact = $1, identifiers = $2, skin = $3, health = $4, version = $5, updated_at = $6
         WHERE id = $7 AND version = $8",
    )
    .bind(&c.contact)
    .bind(&c.identifiers)
    .bind(c.skin.clone())
    .bind(c.health.clone())
    .bind(c.version)
    .bind(c.updated_at)
    .bind(&c.id)
    .bind(expected)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes a customer row.
pub async fn delete_customer(conn: &mut AnyConnection, id: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM customers WHERE id = $1").bind(id).execute(conn).await?;
    Ok(done.rows_affected() == 1)
}

// ---------------------------------------------------------------- keys

/// Stores a wrapped key for `owner`; returns false when one exists already (kept).
pub async fn insert_key(conn: &mut AnyConnection, owner: &str, k: &WrappedKey, now: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO customer_keys (owner, master_key_id, wrapped, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (owner) DO NOTHING",
    )
    .bind(owner)
    .bind(&k.master_key_id)
    .bind(&k.wrapped)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Reads `owner`'s wrapped key.
pub async fn get_key<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    owner: &str,
) -> Result<Option<WrappedKey>, StoreError> {
    let r = sqlx::query("SELECT master_key_id, wrapped FROM customer_keys WHERE owner = $1")
        .bind(owner)
        .fetch_optional(ex)
        .await?;
    r.map(|r| Ok(WrappedKey { master_key_id: r.try_get(0)?, wrapped: r.try_get(1)? })).transpose()
}

/// Destroys `owner`'s key: everything sealed under it becomes unreadable.
pub async fn delete_key(conn: &mut AnyConnection, owner: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM customer_keys WHERE owner = $1").bind(owner).execute(conn).await?;
    Ok(done.rows_affected() == 1)
}

/// Keys wrapped by another master key than `current`, at most `limit`.
pub async fn keys_not_under(
    pool: &AnyPool,
    current: &str,
    limit: u32,
) -> Result<Vec<(String, WrappedKey)>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT owner, master_key_id, wrapped FROM customer_keys WHERE master_key_id <> $1 ORDER BY owner LIMIT {limit}"
    ))
    .bind(current)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, WrappedKey { master_key_id: r.try_get(1)?, wrapped: r.try_get(2)? })))
        .collect()
}

/// Replaces a wrapped key if it is still the one read (`old_master`).
pub async fn rewrap_key(
    conn: &mut AnyConnection,
    owner: &str,
    old_master: &str,
    k: &WrappedKey,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE customer_keys SET master_key_id = $1, wrapped = $2, rotated_at = $3 WHERE owner = $4 AND master_key_id = $5",
    )
    .bind(&k.master_key_id)
    .bind(&k.wrapped)
    .bind(now)
    .bind(owner)
    .bind(old_master)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

// ---------------------------------------------------------------- lookups

/// Records that `hash` of `kind` is `customer_id`'s (unique per kind: a second customer with the
/// same value is a unique violation on `customer_lookups`).
pub async fn insert_lookup(
    conn: &mut AnyConnection,
    kind: LookupKind,
    hash: &str,
    customer_id: &str,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO customer_lookups (kind, hash, customer_id) VALUES ($1, $2, $3)")
        .bind(kind.as_str())
        .bind(hash)
        .bind(customer_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Removes a customer's lookup of one kind (every kind with `None`).
pub async fn delete_lookups(
    conn: &mut AnyConnection,
    customer_id: &str,
    kind: Option<LookupKind>,
) -> Result<(), StoreError> {
    match kind {
        Some(k) => {
            sqlx::query("DELETE FROM customer_lookups WHERE customer_id = $1 AND kind = $2")
                .bind(customer_id)
                .bind(k.as_str())
                .execute(conn)
                .await?
        }
        None => {
            sqlx::query("DELETE FROM customer_lookups WHERE customer_id = $1").bind(customer_id).execute(conn).await?
        }
    };
    Ok(())
}

/// The customer a hash belongs to.
pub async fn find_lookup<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    kind: LookupKind,
    hash: &str,
) -> Result<Option<String>, StoreError> {
    let r = sqlx::query("SELECT customer_id FROM customer_lookups WHERE kind = $1 AND hash = $2")
        .bind(kind.as_str())
        .bind(hash)
        .fetch_optional(ex)
        .await?;
    r.map(|r| r.try_get(0).map_err(StoreError::from)).transpose()
}

// ---------------------------------------------------------------- consent ledger

/// One ledger row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRow {
    /// Id (ULID: ledger order).
    pub id: String,
    /// Customer.
    pub customer_id: String,
    /// Purpose (wire name).
    pub purpose: String,
    /// Granted.
    pub granted: bool,
    /// Text version.
    pub text_version: String,
    /// Channel.
    pub channel: String,
    /// Actor.
    pub actor: String,
    /// Actor's role.
    pub actor_role: String,
    /// When, ms.
    pub recorded_at: i64,
}

/// Appends to the ledger (nothing here updates or deletes a ledger row, except an erasure).
pub async fn append_consent(conn: &mut AnyConnection, c: &ConsentRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO consent_events (id, customer_id, purpose, granted, text_version, channel, actor, actor_role, recorded_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&c.id)
    .bind(&c.customer_id)
    .bind(&c.purpose)
    .bind(i64::from(c.granted))
    .bind(&c.text_version)
    .bind(&c.channel)
    .bind(&c.actor)
    .bind(&c.actor_role)
    .bind(c.recorded_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A customer's ledger, oldest first.
pub async fn consents<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    customer_id: &str,
) -> Result<Vec<ConsentRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, customer_id, purpose, granted, text_version, channel, actor, actor_role, recorded_at
         FROM consent_events WHERE customer_id = $1 ORDER BY id",
    )
    .bind(customer_id)
    .fetch_all(ex)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ConsentRow {
                id: r.try_get(0)?,
                customer_id: r.try_get(1)?,
                purpose: r.try_get(2)?,
                granted: r.try_get::<i64, _>(3)? != 0,
                text_version: r.try_get(4)?,
                channel: r.try_get(5)?,
                actor: r.try_get(6)?,
                actor_role: r.try_get(7)?,
                recorded_at: r.try_get(8)?,
            })
        })
        .collect()
}

// ---------------------------------------------------------------- outbox

/// Appends a domain event (its payload carries ids and versions, never personal data).
pub async fn append_event(
    conn: &mut AnyConnection,
    event_type: &str,
    customer_id: &str,
    payload: &serde_json::Value,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO customers_outbox (id, event_type, aggregate_id, payload, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(dermis_core::ids::new_id("cev"))
    .bind(event_type)
    .bind(customer_id)
    .bind(payload.to_string())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// A domain event waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// Id (also the bus message id).
    pub id: String,
    /// `customers.profile.changed` ...
    pub event_type: String,
    /// The customer id.
    pub aggregate_id: String,
    /// JSON.
    pub payload: String,
}

/// Outbox events not yet handed to the bus, oldest first.
pub async fn unpublished(pool: &AnyPool, limit: u32) -> Result<Vec<OutboxEvent>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT id, event_type, aggregate_id, payload FROM customers_outbox WHERE published_at IS NULL ORDER BY id LIMIT {limit}"
    ))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(OutboxEvent {
                id: r.try_get(0)?,
                event_type: r.try_get(1)?,
                aggregate_id: r.try_get(2)?,
                payload: r.try_get(3)?,
            })
        })
        .collect()
}

/// Every outbox event, oldest first (tests, history).
pub async fn outbox(pool: &AnyPool, limit: u32) -> Result<Vec<OutboxEvent>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT id, event_type, aggregate_id, payload FROM customers_outbox ORDER BY id LIMIT {limit}"
    ))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(OutboxEvent {
                id: r.try_get(0)?,
                event_type: r.try_get(1)?,
                aggregate_id: r.try_get(2)?,
                payload: r.try_get(3)?,
            })
        })
        .collect()
}

/// Marks outbox events as handed to the bus.
pub async fn mark_published(pool: &AnyPool, ids: &[String], now: i64) -> Result<(), StoreError> {
    for chunk in ids.chunks(20) {
        let params: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!("UPDATE customers_outbox SET published_at = $1 WHERE id IN ({})", params.join(", "));
        let mut q = sqlx::query(&sql).bind(now);
        for id in chunk {
            q = q.bind(id);
        }
        q.execute(pool).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------- consultations

/// A consultation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsultationRow {
    /// Id.
    pub id: String,
    /// Customer.
    pub customer_id: String,
    /// Store.
    pub store_id: String,
    /// Who opened it.
    pub opened_by: String,
    /// Opened, ms.
    pub opened_at: i64,
    /// Expires, ms.
    pub expires_at: i64,
}

/// Records a consultation.
pub async fn insert_consultation(conn: &mut AnyConnection, c: &ConsultationRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO customer_consultations (id, customer_id, store_id, opened_by, opened_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&c.id)
    .bind(&c.customer_id)
    .bind(&c.store_id)
    .bind(&c.opened_by)
    .bind(c.opened_at)
    .bind(c.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Closes a consultation before it expires; false when there is no open one with this id.
pub async fn close_consultation(
    conn: &mut AnyConnection,
    customer_id: &str,
    id: &str,
    store_id: Option<&str>,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE customer_consultations SET closed_at = $1
         WHERE id = $2 AND customer_id = $3 AND closed_at IS NULL AND expires_at > $1 AND ($4 = '' OR store_id = $4)",
    )
    .bind(now)
    .bind(id)
    .bind(customer_id)
    .bind(store_id.unwrap_or(""))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether a consultation of this customer at this store is open at `now`.
pub async fn consultation_open(
    pool: &AnyPool,
    customer_id: &str,
    store_id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let r = sqlx::query(
        "SELECT id FROM customer_consultations
         WHERE customer_id = $1 AND store_id = $2 AND expires_at > $3 AND closed_at IS NULL LIMIT 1",
    )
    .bind(customer_id)
    .bind(store_id)
    .bind(now)
    .fetch_optional(pool)
    .await?;
    Ok(r.is_some())
}

/// Deletes a customer's consultations (erasure).
pub async fn delete_consultations(conn: &mut AnyConnection, customer_id: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM customer_consultations WHERE customer_id = $1").bind(customer_id).execute(conn).await?;
    Ok(())
}

// ---------------------------------------------------------------- erasures

/// An erasure request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureRow {
    /// Id.
    pub id: String,
    /// The sealed subject while it runs.
    pub subject: Option<String>,
    /// `pending`, `completed` or `failed`.
    pub status: String,
    /// Who asked (role and subject; for a customer, a keyed hash of their subject).
    pub requested_by: String,
    /// Requested, ms.
    pub requested_at: i64,
    /// Completed, ms.
    pub completed_at: Option<i64>,
    /// Last failure.
    pub error: Option<String>,
}

/// Records an erasure request.
pub async fn insert_erasure(conn: &mut AnyConnection, e: &ErasureRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO customer_erasures (id, subject, status, requested_by, requested_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&e.id)
    .bind(e.subject.clone())
    .bind(&e.status)
    .bind(&e.requested_by)
    .bind(e.requested_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Reads an erasure request.
pub async fn get_erasure(pool: &AnyPool, id: &str) -> Result<Option<ErasureRow>, StoreError> {
    let r = sqlx::query(
        "SELECT id, subject, status, requested_by, requested_at, completed_at, error FROM customer_erasures WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    r.map(|r| {
        Ok(ErasureRow {
            id: r.try_get(0)?,
            subject: r.try_get(1)?,
            status: r.try_get(2)?,
            requested_by: r.try_get(3)?,
            requested_at: r.try_get(4)?,
            completed_at: r.try_get(5)?,
            error: r.try_get(6)?,
        })
    })
    .transpose()
}

/// Erasures not completed, oldest first.
pub async fn unfinished_erasures(pool: &AnyPool, limit: u32) -> Result<Vec<String>, StoreError> {
    let rows =
        sqlx::query(&format!("SELECT id FROM customer_erasures WHERE status <> 'completed' ORDER BY id LIMIT {limit}"))
            .fetch_all(pool)
            .await?;
    rows.iter().map(|r| r.try_get(0).map_err(StoreError::from)).collect()
}

/// Marks an erasure failed (it is retried) or completed (its subject cleared).
pub async fn finish_erasure(pool: &AnyPool, id: &str, error: Option<&str>, now: i64) -> Result<(), StoreError> {
    match error {
        Some(e) => {
            sqlx::query("UPDATE customer_erasures SET status = 'failed', error = $1 WHERE id = $2")
                .bind(e)
                .bind(id)
                .execute(pool)
                .await?
        }
        None => {
            sqlx::query(
                "UPDATE customer_erasures SET status = 'completed', subject = NULL, error = NULL, completed_at = $1 WHERE id = $2",
            )
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?
        }
    };
    Ok(())
}

// ---------------------------------------------------------------- identity graph

/// One identifier of the graph as stored: its kind and keyed hash, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifierRow {
    /// Kind (wire name).
    pub kind: String,
    /// Keyed hash.
    pub hash: String,
    /// The customer it is linked to.
    pub customer_id: String,
    /// Linked, ms (absent for identifiers linked before the graph kept the time).
    pub linked_at: Option<i64>,
    /// What linked it (`api`, `identify`, `alias`, `merge` ...).
    pub source: Option<String>,
}

/// Links `hash` of `kind` to `customer_id` (moving it if another customer had it).
pub async fn link_identifier(
    conn: &mut AnyConnection,
    kind: LookupKind,
    hash: &str,
    customer_id: &str,
    now: i64,
    source: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO customer_lookups (kind, hash, customer_id, linked_at, source) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (kind, hash) DO UPDATE SET customer_id = $3, linked_at = $4, source = $5",
    )
    .bind(kind.as_str())
    .bind(hash)
    .bind(customer_id)
    .bind(now)
    .bind(source)
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes one identifier.
pub async fn unlink_identifier(conn: &mut AnyConnection, kind: LookupKind, hash: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM customer_lookups WHERE kind = $1 AND hash = $2")
        .bind(kind.as_str())
        .bind(hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// A customer's identifiers, by kind then oldest first.
pub async fn identifiers_of<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    customer_id: &str,
) -> Result<Vec<IdentifierRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT kind, hash, customer_id, linked_at, source FROM customer_lookups WHERE customer_id = $1
         ORDER BY kind, COALESCE(linked_at, 0), hash",
    )
    .bind(customer_id)
    .fetch_all(ex)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(IdentifierRow {
                kind: r.try_get(0)?,
                hash: r.try_get(1)?,
                customer_id: r.try_get(2)?,
                linked_at: r.try_get(3)?,
                source: r.try_get(4)?,
            })
        })
        .collect()
}

/// Moves one identifier from `from` to `to` if `from` still has it; whether it moved.
pub async fn move_identifier(
    conn: &mut AnyConnection,
    kind: &str,
    hash: &str,
    from: &str,
    to: &str,
) -> Result<bool, StoreError> {
    let done =
        sqlx::query("UPDATE customer_lookups SET customer_id = $1 WHERE kind = $2 AND hash = $3 AND customer_id = $4")
            .bind(to)
            .bind(kind)
            .bind(hash)
            .bind(from)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Records that an identifier was seen with a customer; returns with how many distinct
/// customers it has been seen.
pub async fn sighting(
    conn: &mut AnyConnection,
    kind: LookupKind,
    hash: &str,
    customer_id: &str,
    now: i64,
) -> Result<i64, StoreError> {
    sqlx::query(
        "INSERT INTO customer_identity_sightings (kind, hash, customer_id, seen_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (kind, hash, customer_id) DO UPDATE SET seen_at = $4",
    )
    .bind(kind.as_str())
    .bind(hash)
    .bind(customer_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let r = sqlx::query("SELECT COUNT(*) FROM customer_identity_sightings WHERE kind = $1 AND hash = $2")
        .bind(kind.as_str())
        .bind(hash)
        .fetch_one(&mut *conn)
        .await?;
    Ok(r.try_get(0)?)
}

/// Blocks an identifier (kept if blocked already).
pub async fn block_identifier(
    conn: &mut AnyConnection,
    kind: LookupKind,
    hash: &str,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO customer_identity_blocks (kind, hash, reason, blocked_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (kind, hash) DO NOTHING",
    )
    .bind(kind.as_str())
    .bind(hash)
    .bind(reason)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether an identifier was blocked.
pub async fn is_blocked<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    kind: LookupKind,
    hash: &str,
) -> Result<bool, StoreError> {
    let r = sqlx::query("SELECT reason FROM customer_identity_blocks WHERE kind = $1 AND hash = $2")
        .bind(kind.as_str())
        .bind(hash)
        .fetch_optional(ex)
        .await?;
    Ok(r.is_some())
}

/// The customer `id` was merged into, if it was.
pub async fn merged_into<'c, E: Executor<'c, Database = Any>>(ex: E, id: &str) -> Result<Option<String>, StoreError> {
    let r = sqlx::query("SELECT merged_into FROM customers WHERE id = $1").bind(id).fetch_optional(ex).await?;
    Ok(match r {
        Some(r) => r.try_get(0)?,
        None => None,
    })
}

/// Marks `id` merged into `winner` (`None`: not merged).
pub async fn set_merged_into(conn: &mut AnyConnection, id: &str, winner: Option<&str>) -> Result<(), StoreError> {
    sqlx::query("UPDATE customers SET merged_into = $1 WHERE id = $2")
        .bind(winner.map(str::to_owned))
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A merge as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeRow {
    /// Id (`mrg_...`).
    pub id: String,
    /// The customer that stayed.
    pub winner: String,
    /// The customer merged into it.
    pub loser: String,
    /// JSON list of `[kind, hash]` moved.
    pub identifiers: String,
    /// JSON list of the winner's fields the loser's values filled.
    pub filled: String,
    /// Why.
    pub reason: String,
    /// When, ms.
    pub merged_at: i64,
    /// When it was undone, ms.
    pub unmerged_at: Option<i64>,
}

const MERGE_COLUMNS: &str = "id, winner, loser, identifiers, filled, reason, merged_at, unmerged_at";

fn merge_row(r: &AnyRow) -> Result<MergeRow, StoreError> {
    Ok(MergeRow {
        id: r.try_get(0)?,
        winner: r.try_get(1)?,
        loser: r.try_get(2)?,
        identifiers: r.try_get(3)?,
        filled: r.try_get(4)?,
        reason: r.try_get(5)?,
        merged_at: r.try_get(6)?,
        unmerged_at: r.try_get(7)?,
    })
}

/// Records a merge.
pub async fn insert_merge(conn: &mut AnyConnection, m: &MergeRow) -> Result<(), StoreError> {
    sqlx::query(&format!("INSERT INTO customer_merges ({MERGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
        .bind(&m.id)
        .bind(&m.winner)
        .bind(&m.loser)
        .bind(&m.identifiers)
        .bind(&m.filled)
        .bind(&m.reason)
        .bind(m.merged_at)
        .bind(m.unmerged_at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Reads a merge.
pub async fn get_merge<'c, E: Executor<'c, Database = Any>>(ex: E, id: &str) -> Result<Option<MergeRow>, StoreError> {
    let r = sqlx::query(&format!("SELECT {MERGE_COLUMNS} FROM customer_merges WHERE id = $1"))
        .bind(id)
        .fetch_optional(ex)
        .await?;
    r.as_ref().map(merge_row).transpose()
}

/// The merges a customer took part in (as winner or loser), oldest first.
pub async fn merges_of<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    customer_id: &str,
) -> Result<Vec<MergeRow>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {MERGE_COLUMNS} FROM customer_merges WHERE winner = $1 OR loser = $1 ORDER BY id LIMIT 1000"
    ))
    .bind(customer_id)
    .fetch_all(ex)
    .await?;
    rows.iter().map(merge_row).collect()
}

/// Marks a merge undone; false when it was undone already.
pub async fn mark_unmerged(conn: &mut AnyConnection, id: &str, now: i64) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE customer_merges SET unmerged_at = $1 WHERE id = $2 AND unmerged_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Records that an ingested message was applied; false when it had been already.
pub async fn mark_applied(
    conn: &mut AnyConnection,
    write_key_id: &str,
    message_id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO customer_identity_applied (write_key_id, message_id, applied_at) VALUES ($1, $2, $3)
         ON CONFLICT (write_key_id, message_id) DO NOTHING",
    )
    .bind(write_key_id)
    .bind(message_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether an ingested message was applied.
pub async fn was_applied(pool: &AnyPool, write_key_id: &str, message_id: &str) -> Result<bool, StoreError> {
    let r = sqlx::query("SELECT applied_at FROM customer_identity_applied WHERE write_key_id = $1 AND message_id = $2")
        .bind(write_key_id)
        .bind(message_id)
        .fetch_optional(pool)
        .await?;
    Ok(r.is_some())
}

/// Forgets applied messages recorded before `before` (the bus keeps messages a week).
pub async fn purge_applied(pool: &AnyPool, before: i64) -> Result<u64, StoreError> {
    let done =
        sqlx::query("DELETE FROM customer_identity_applied WHERE applied_at < $1").bind(before).execute(pool).await?;
    Ok(done.rows_affected())
}

/// Deletes a customer's sightings and merge records (erasure).
pub async fn delete_identity_records(conn: &mut AnyConnection, customer_id: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM customer_identity_sightings WHERE customer_id = $1")
        .bind(customer_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM customer_merges WHERE winner = $1 OR loser = $1")
        .bind(customer_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE customers SET merged_into = NULL WHERE merged_into = $1")
        .bind(customer_id)
        .execute(conn)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------- measurements and the feed

/// One measurement as stored: the metric and times in clear, the reading sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasurementRow {
    /// Id (`msr_...`; also bound into the reading's associated data).
    pub id: String,
    /// Customer.
    pub customer_id: String,
    /// Metric (wire name).
    pub metric: String,
    /// Measured, ms.
    pub measured_at: i64,
    /// Sealed reading.
    pub reading: String,
    /// Source of the message.
    pub write_key_id: String,
    /// The message.
    pub message_id: String,
    /// Stored, ms.
    pub recorded_at: i64,
}

const MEASUREMENT_COLUMNS: &str =
    "id, customer_id, metric, measured_at, reading, write_key_id, message_id, recorded_at";

fn measurement_row(r: &AnyRow) -> Result<MeasurementRow, StoreError> {
    Ok(MeasurementRow {
        id: r.try_get(0)?,
        customer_id: r.try_get(1)?,
        metric: r.try_get(2)?,
        measured_at: r.try_get(3)?,
        reading: r.try_get(4)?,
        write_key_id: r.try_get(5)?,
        message_id: r.try_get(6)?,
        recorded_at: r.try_get(7)?,
    })
}

/// Stores a measurement; false when this message's reading of this metric is stored already.
pub async fn insert_measurement(conn: &mut AnyConnection, m: &MeasurementRow) -> Result<bool, StoreError> {
    let done = sqlx::query(&format!(
        "INSERT INTO customer_measurements ({MEASUREMENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (write_key_id, message_id, metric) DO NOTHING"
    ))
    .bind(&m.id)
    .bind(&m.customer_id)
    .bind(&m.metric)
    .bind(m.measured_at)
    .bind(&m.reading)
    .bind(&m.write_key_id)
    .bind(&m.message_id)
    .bind(m.recorded_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A customer's measurements taken at or after `since` (every metric), oldest first, at most
/// `limit`.
pub async fn measurements_since<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    customer_id: &str,
    since: i64,
    limit: u32,
) -> Result<Vec<MeasurementRow>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {MEASUREMENT_COLUMNS} FROM customer_measurements WHERE customer_id = $1 AND measured_at >= $2
         ORDER BY measured_at, id LIMIT {limit}"
    ))
    .bind(customer_id)
    .bind(since)
    .fetch_all(ex)
    .await?;
    rows.iter().map(measurement_row).collect()
}

/// A customer's latest measurement of every metric (ties: every row at the latest time).
pub async fn latest_measurements<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    customer_id: &str,
) -> Result<Vec<MeasurementRow>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {MEASUREMENT_COLUMNS} FROM customer_measurements m WHERE customer_id = $1 AND measured_at =
           (SELECT MAX(measured_at) FROM customer_measurements WHERE customer_id = $1 AND metric = m.metric)
         ORDER BY metric, id"
    ))
    .bind(customer_id)
    .fetch_all(ex)
    .await?;
    rows.iter().map(measurement_row).collect()
}

/// Deletes a customer's measurements (erasure, or the `health_data` consent withdrawn).
pub async fn delete_measurements(conn: &mut AnyConnection, customer_id: &str) -> Result<u64, StoreError> {
    let done =
        sqlx::query("DELETE FROM customer_measurements WHERE customer_id = $1").bind(customer_id).execute(conn).await?;
    Ok(done.rows_affected())
}

/// Records that a step of the feed applied a message; false when it had already.
pub async fn mark_feed_applied(
    conn: &mut AnyConnection,
    write_key_id: &str,
    message_id: &str,
    step: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO customer_feed_applied (write_key_id, message_id, step, applied_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (write_key_id, message_id, step) DO NOTHING",
    )
    .bind(write_key_id)
    .bind(message_id)
    .bind(step)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether a step of the feed applied a message.
pub async fn feed_applied(
    pool: &AnyPool,
    write_key_id: &str,
    message_id: &str,
    step: &str,
) -> Result<bool, StoreError> {
    let r = sqlx::query(
        "SELECT applied_at FROM customer_feed_applied WHERE write_key_id = $1 AND message_id = $2 AND step = $3",
    )
    .bind(write_key_id)
    .bind(message_id)
    .bind(step)
    .fetch_optional(pool)
    .await?;
    Ok(r.is_some())
}

/// Forgets feed steps applied before `before`.
pub async fn purge_feed_applied(pool: &AnyPool, before: i64) -> Result<u64, StoreError> {
    let done =
        sqlx::query("DELETE FROM customer_feed_applied WHERE applied_at < $1").bind(before).execute(pool).await?;
    Ok(done.rows_affected())
}

/// Suppresses every identifier `customer_id` holds but device ids (shared by people more than
/// any other): events that carry one later are not applied (see [`crate::identity`]). Keyed
/// hashes only. Returns how many were new.
pub async fn suppress_identifiers(conn: &mut AnyConnection, customer_id: &str, now: i64) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "INSERT INTO customer_suppressions (kind, hash, suppressed_at) \
         SELECT kind, hash, $2 FROM customer_lookups WHERE customer_id = $1 AND kind <> 'device_id' \
         ON CONFLICT (kind, hash) DO NOTHING",
    )
    .bind(customer_id)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Whether the identifier `hash` of `kind` belonged to an erased customer.
pub async fn is_suppressed<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    kind: LookupKind,
    hash: &str,
) -> Result<bool, StoreError> {
    let r = sqlx::query("SELECT 1 FROM customer_suppressions WHERE kind = $1 AND hash = $2")
        .bind(kind.as_str())
        .bind(hash)
        .fetch_optional(ex)
        .await?;
    Ok(r.is_some())
}

/// Drops the merge suggestions naming `customer_id` (its erasure).
pub async fn delete_match_suggestions(conn: &mut AnyConnection, customer_id: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM customer_match_suggestions WHERE a = $1 OR b = $1")
        .bind(customer_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The ids of customers merged into another (their rows stay, for an unmerge).
pub async fn merged_away<'c, E: Executor<'c, Database = Any>>(
    ex: E,
) -> Result<std::collections::HashSet<String>, StoreError> {
    let rows = sqlx::query("SELECT id FROM customers WHERE merged_into IS NOT NULL").fetch_all(ex).await?;
    rows.iter().map(|r| r.try_get::<String, _>(0).map_err(StoreError::from)).collect()
}
