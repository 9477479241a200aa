//! Erasure of one customer's events (GDPR), the same on both backends, in one transaction with
//! the bus message that makes every node forget them and a record of the erasure (read back by
//! [`super::erasures_since`]).

use dermis_core::ids::new_id;
use dermis_store::db::Backend;
use dermis_store::sqlx::{self, Row};
use dermis_store::{Db, StoreError};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::keys::bind_after;
use super::subject::{BY_ANONYMOUS, BY_USER, Subject, of_customer};
use crate::outbox::{self, Ingested};
use crate::pseudonym::Pseudonyms;

/// What an erasure removed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Erased {
    /// The customer ids forgotten: the one asked for and, for a user id, the anonymous ids its
    /// events carried (the same person before they signed in).
    pub subjects: Vec<String>,
    /// Events deleted from the log.
    pub events: u64,
    /// Dead letters deleted.
    pub dead_letters: u64,
    /// When the erasure took effect (read inside its transaction, after its deletes), ms: an
    /// update received before it is dropped wherever it arrives later.
    #[serde(skip)]
    pub erased_at: i64,
}

/// How long erasure records are kept: the features' horizon (no snapshot older than that is
/// restored with data in it).
const ERASURE_KEPT_MS: i64 = 90 * 24 * 60 * 60 * 1000;

/// LIKE patterns (`\\` escapes) matching `"key":value` in a stored payload: the value as a JSON
/// string, and as a number when it reads as one (SDKs may send numeric ids; dead letters keep
/// the message as received). Payloads are stored compact, so a number ends at `,` or `}`.
fn json_member_patterns(key: &str, value: &str) -> Vec<String> {
    let escape = |text: &str| -> String {
        text.chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect()
    };
    let mut patterns = vec![format!("%{}%", escape(&format!("\"{key}\":{}", Value::String(value.to_owned()))))];
    if let Ok(n) = value.parse::<serde_json::Number>() {
        for end in [',', '}'] {
            patterns.push(format!("%{}{end}%", escape(&format!("\"{key}\":{n}"))));
        }
    }
    patterns
}

/// Erases one customer's events (GDPR): their rows in the log, found through the user-id and
/// anonymous-id indexes; for a user id also the anonymous events of the devices they used
/// (events carrying one of their anonymous ids and no other user id); their dead letters; in
/// one transaction with an outbox message that makes every node forget their features, and a
/// record of the erasure (see [`super::erasures_since`]).
pub async fn erase(
    db: &Db,
    who: &Subject,
    clock: &(dyn Fn() -> i64 + Sync),
    pseudonyms: &Pseudonyms,
) -> Result<Erased, StoreError> {
    // Who, and which dead letters, found on a reader first: the write transaction holds the
    // write turn (on SQLite, ingestion waits for it), so it only deletes.
    let backend = db.backend();
    let mut subjects: Vec<String> = match who {
        Subject::User(user) => {
            let sql = format!(
                "SELECT DISTINCT anonymous_id FROM events WHERE {} AND anonymous_id IS NOT NULL",
                of_customer(backend, who)
            );
            let anonymous: Vec<String> = bind_after(sqlx::query(&sql).bind(user), backend, None)?
                .fetch_all(db.reader())
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            std::iter::once(user.clone()).chain(anonymous).collect()
        }
        Subject::Anonymous(a) => vec![a.clone()],
    };
    let mut patterns = Vec::new();
    if let Subject::User(u) = who {
        patterns.extend(json_member_patterns("userId", u));
        patterns.extend(json_member_patterns("user_id", u));
    }
    for a in subjects.iter().skip(usize::from(matches!(who, Subject::User(_)))) {
        patterns.extend(json_member_patterns("anonymousId", a));
        patterns.extend(json_member_patterns("anonymous_id", a));
    }
    // Dead letters have no customer column: their payloads are scanned.
    let mut dead_ids = std::collections::BTreeSet::new();
    for p in &patterns {
        let rows = sqlx::query("SELECT id FROM dead_letters WHERE payload LIKE $1 ESCAPE '\\'")
            .bind(p)
            .fetch_all(db.reader())
            .await?;
        for r in rows {
            dead_ids.insert(r.try_get::<String, _>(0)?);
        }
    }

    let mut tx = db.begin().await?;
    // Every byte of what this transaction deletes is zeroed, freed pages included.
    Db::secure_deletes(&mut tx, backend, true).await?;
    if backend == Backend::Sqlite {
        // The newest events may be among those deleted: new keys must still come above every
        // key issued (see `super::sqlite`), never at or below the customer index's watermark.
        sqlx::query(
            "UPDATE events_indexed SET issued = MAX(issued, (SELECT COALESCE(MAX(id), 0) FROM events)) WHERE one = 1",
        )
        .execute(&mut *tx)
        .await?;
    }
    let (mut events, carried) = delete_events(&mut tx, backend, who, false).await?;
    if let Subject::User(_) = who {
        // A device first seen between the look-up above and this transaction is hers too.
        for a in carried {
            if !subjects.contains(&a) {
                subjects.push(a);
            }
        }
        for a in &subjects[1..] {
            events += delete_events(&mut tx, backend, &Subject::Anonymous(a.clone()), true).await?.0;
        }
    }
    let mut dead_letters = 0;
    for id in &dead_ids {
        dead_letters +=
            sqlx::query("DELETE FROM dead_letters WHERE id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
    }
    // The bus message and the record name the customers by pseudonym only: both outlive the
    // erasure (the bus keeps messages a week; the record 90 days).
    let hidden: Vec<String> = subjects.iter().map(|s| pseudonyms.customer(s)).collect();
    // The erasure's time is read now, after its deletes and before its commit: an event
    // received before it and committed before the deletes is gone with them, and its feature
    // update, if still on the bus, falls under the tombstone.
    let now = clock();
    let forget = Ingested::erasure(hidden.clone(), now);
    outbox::append(&mut tx, &forget, now).await?;
    let record = serde_json::to_string(&hidden).map_err(|e| StoreError::Other(e.to_string()))?;
    sqlx::query("INSERT INTO event_erasures (id, subjects, erased_at) VALUES ($1, $2, $3)")
        .bind(new_id("era"))
        .bind(record)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM event_erasures WHERE erased_at < $1")
        .bind(now - ERASURE_KEPT_MS)
        .execute(&mut *tx)
        .await?;
    Db::secure_deletes(&mut tx, backend, false).await?;
    tx.commit().await?;
    Ok(Erased { subjects, events, dead_letters, erased_at: now })
}

/// Deletes `who`'s events (with `without_user`, only those that carry no user id), and on
/// SQLite their entries in the customer index. Returns how many events it deleted and the
/// anonymous ids they carried.
async fn delete_events(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    who: &Subject,
    without_user: bool,
) -> Result<(u64, Vec<String>), StoreError> {
    let mut sql = format!("DELETE FROM events WHERE {}", of_customer(backend, who));
    if without_user {
        sql.push_str(" AND user_id IS NULL");
    }
    sql.push_str(" RETURNING user_id, anonymous_id");
    let deleted = bind_after(sqlx::query(&sql).bind(who.value()), backend, None)?.fetch_all(&mut *conn).await?;
    let mut carried = std::collections::BTreeSet::new();
    for r in &deleted {
        if let Some(u) = r.try_get::<Option<String>, _>(0)? {
            carried.insert((BY_USER, u));
        }
        if let Some(a) = r.try_get::<Option<String>, _>(1)? {
            carried.insert((BY_ANONYMOUS, a));
        }
    }
    if backend == Backend::Sqlite {
        // The index entries of every customer id the deleted events carried that no longer
        // point at one of that customer's events (one statement per customer id, not per event).
        for ((column, index), value) in &carried {
            sqlx::query(&format!(
                "DELETE FROM {index} WHERE {column} = $1 \
                 AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = {index}.id AND e.{column} = {index}.{column})"
            ))
            .bind(value)
            .execute(&mut *conn)
            .await?;
        }
    }
    let anonymous = carried.into_iter().filter(|(kind, _)| *kind == BY_ANONYMOUS).map(|(_, a)| a).collect();
    Ok((deleted.len() as u64, anonymous))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_patterns_escape_like_wildcards_and_match_numeric_ids() {
        assert_eq!(json_member_patterns("userId", "u_1%"), [r#"%"userId":"u\_1\%"%"#]);
        assert_eq!(json_member_patterns("userId", "a\"b"), [r#"%"userId":"a\\"b"%"#]);
        assert_eq!(
            json_member_patterns("userId", "42"),
            [r#"%"userId":"42"%"#, r#"%"userId":42,%"#, r#"%"userId":42}%"#]
        );
    }
}
