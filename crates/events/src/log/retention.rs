//! Retention of the event log: events received before a cutoff are *anonymized* (kept for
//! aggregate analytics without the link to the person), dead letters received before theirs are
//! deleted. Both in transactions that zero what they overwrite or delete (`secure_delete`, as
//! an erasure's); the caller scrubs the store afterwards ([`dermis_store::Db::scrub`]).
//!
//! # What an anonymized event keeps
//! Its key and id, source (`write_key_id`), `messageId`, type, event name, schema, `timestamp`,
//! `receivedAt`, `properties` (personal ones already hold the `{"$moved": ...}` markers of
//! [`crate::pii`]; stripped again with the node's policy in case) and `context` apart from what
//! follows. It loses: `userId`, `anonymousId`, `previousId`, `traits`, `context.ip`,
//! `context.traits`, `context.externalIds`, `context.device.id` / `advertisingId` / `token`,
//! `context.location.latitude` / `longitude`; its `user_id` and `anonymous_id` columns become
//! NULL and its `partition_key` becomes [`ANONYMIZED`] (the mark: a marked row is skipped); on
//! SQLite its entries in the customer index go. So a customer's reads, export and erasure no
//! longer find it.

use dermis_store::db::Backend;
use dermis_store::sqlx::{self, Row};
use dermis_store::{Db, StoreError};
use serde_json::Value;

use super::keys::{bind_after, read_id};
use super::subject::{BY_ANONYMOUS, BY_USER};
use crate::pii::PiiPolicy;

/// The `partition_key` of an anonymized event.
pub const ANONYMIZED: &str = "$anonymized";

/// What one anonymization pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Anonymized {
    /// Events anonymized.
    pub rows: u64,
    /// The last event id looked at (every event up to it, before the cutoff, is anonymized):
    /// the `after` of the next pass. `None`: nothing was left.
    pub last_id: Option<String>,
}

/// Top-level members that link a message to a person.
const PERSONAL_TOP: &[&str] = &["userId", "anonymousId", "previousId", "traits", "user_id", "anonymous_id"];
/// `context` members that do.
const PERSONAL_CONTEXT: &[&str] = &["ip", "traits", "externalIds"];
/// `context.device` members that do.
const PERSONAL_DEVICE: &[&str] = &["id", "advertisingId", "token"];
/// `context.location` members that do.
const PERSONAL_LOCATION: &[&str] = &["latitude", "longitude"];

/// Removes from a stored message what links it to a person (see the module's documentation).
pub fn anonymize_payload(payload: &mut Value, pii: &PiiPolicy) {
    pii.strip(payload);
    let Value::Object(o) = payload else { return };
    for k in PERSONAL_TOP {
        o.remove(*k);
    }
    if let Some(Value::Object(c)) = o.get_mut("context") {
        for k in PERSONAL_CONTEXT {
            c.remove(*k);
        }
        for (member, keys) in [("device", PERSONAL_DEVICE), ("location", PERSONAL_LOCATION)] {
            if let Some(Value::Object(m)) = c.get_mut(member) {
                for k in keys {
                    m.remove(*k);
                }
            }
        }
    }
}

/// Anonymizes up to `limit` events (at most 5,000) received before `cutoff_ms` (by their key,
/// which is the time the log stored them) with ids after `after` (`""`: from the start), oldest
/// first, in one transaction that zeroes what it overwrites. Already anonymized events are
/// skipped. On SQLite only events the customer index covers are touched (older than a second
/// or two, always so for a cutoff in the past), so the indexer never indexes one afterwards.
pub async fn anonymize_before(
    db: &Db,
    cutoff_ms: i64,
    after: &str,
    limit: u32,
    pii: &PiiPolicy,
) -> Result<Anonymized, StoreError> {
    let backend = db.backend();
    let indexed = match backend {
        Backend::Sqlite => " AND id <= (SELECT through FROM events_indexed)",
        Backend::Postgres => "",
    };
    let sql = format!(
        "SELECT id, user_id, anonymous_id, payload FROM events WHERE id > $1 AND id <= $2{indexed} \
         AND partition_key <> $3 ORDER BY id LIMIT {}",
        limit.clamp(1, 5000)
    );
    let floor = super::id_floor(cutoff_ms);
    let q = bind_after(sqlx::query(&sql), backend, Some(after))?;
    let rows = bind_after(q, backend, Some(&floor))?.bind(ANONYMIZED).fetch_all(db.reader()).await?;
    let Some(last) = rows.last() else { return Ok(Anonymized::default()) };
    let last_id = read_id(last, 0, backend)?;

    let mut tx = db.begin().await?;
    Db::secure_deletes(&mut tx, backend, true).await?;
    let mut n = 0;
    for r in &rows {
        let id = read_id(r, 0, backend)?;
        let user: Option<String> = r.try_get(1)?;
        let anonymous: Option<String> = r.try_get(2)?;
        let text: String = r.try_get(3)?;
        let mut payload: Value = serde_json::from_str(&text).map_err(|e| StoreError::Other(e.to_string()))?;
        anonymize_payload(&mut payload, pii);
        let text = serde_json::to_string(&payload).map_err(|e| StoreError::Other(e.to_string()))?;
        // An erasure meanwhile deleted it, or another node anonymized it: skipped.
        let q = sqlx::query(
            "UPDATE events SET user_id = NULL, anonymous_id = NULL, partition_key = $1, payload = $2 \
             WHERE id = $3 AND partition_key <> $1",
        )
        .bind(ANONYMIZED)
        .bind(text);
        let done = bind_after(q, backend, Some(&id))?.execute(&mut *tx).await?.rows_affected();
        n += done;
        if done > 0 && backend == Backend::Sqlite {
            for ((column, index), value) in [(BY_USER, user), (BY_ANONYMOUS, anonymous)] {
                let Some(value) = value else { continue };
                let sql = format!("DELETE FROM {index} WHERE {column} = $1 AND id = $2");
                let q = sqlx::query(&sql).bind(value);
                bind_after(q, backend, Some(&id))?.execute(&mut *tx).await?;
            }
        }
    }
    Db::secure_deletes(&mut tx, backend, false).await?;
    tx.commit().await?;
    Ok(Anonymized { rows: n, last_id: Some(last_id) })
}

/// Deletes the dead letters received before `cutoff_ms`, zeroing what it deletes. Returns how
/// many.
pub async fn delete_dead_letters_before(db: &Db, cutoff_ms: i64) -> Result<u64, StoreError> {
    let backend = db.backend();
    let mut tx = db.begin().await?;
    Db::secure_deletes(&mut tx, backend, true).await?;
    let n = sqlx::query("DELETE FROM dead_letters WHERE received_at < $1")
        .bind(cutoff_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    Db::secure_deletes(&mut tx, backend, false).await?;
    tx.commit().await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_anonymized_message_keeps_what_analytics_needs_and_nothing_that_names_the_person() {
        let mut p = json!({"type": "track", "event": "Order Completed", "userId": "u1", "anonymousId": "a1",
            "messageId": "m1", "timestamp": "2025-01-01T00:00:00Z", "traits": {"plan": "gold"},
            "properties": {"product_id": "P1", "price": 12.5, "quantity": 2, "email": "x@example.com"},
            "context": {"ip": "1.2.3.4", "traits": {"email": "x@example.com"}, "locale": "fr-FR",
                "device": {"id": "d1", "type": "ios"}, "location": {"city": "Lyon", "latitude": 45.7}}});
        anonymize_payload(&mut p, &PiiPolicy::default());
        let text = p.to_string();
        for gone in ["u1", "a1", "1.2.3.4", "x@example.com", "d1", "45.7", "gold"] {
            assert!(!text.contains(gone), "{gone} left in {text}");
        }
        assert_eq!(p["event"], "Order Completed");
        assert_eq!(p["timestamp"], "2025-01-01T00:00:00Z");
        assert_eq!(p["properties"]["product_id"], "P1");
        assert_eq!(p["properties"]["price"], 12.5);
        assert_eq!(p["properties"]["quantity"], 2);
        assert_eq!(p["context"]["locale"], "fr-FR");
        assert_eq!(p["context"]["device"]["type"], "ios");
        assert_eq!(p["context"]["location"]["city"], "Lyon");
    }
}
