//! The event log and the dead letters. `(write_key_id, messageId)` is unique, so a retried
//! message is stored once. Appends go through [`LogWriter`]: on SQLite a writer thread with
//! group commit, on PostgreSQL multi-row inserts in the request's own transaction.

use dermis_core::clock::rfc3339;
use dermis_core::ids::new_id;
use dermis_store::db::Backend;
use dermis_store::sqlx::{self, Row};
use dermis_store::{Db, StoreError};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::embedded_log::{self, COUNTER_BITS};
use crate::message::{Kind, Message};
use crate::outbox::{self, Ingested};
use dermis_features::Pseudonyms;

/// A message to append, with the schema it was validated against.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The message.
    pub message: Message,
    /// `product_viewed@1`, when a schema applied.
    pub schema: Option<String>,
}

/// A message to keep as a dead letter.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Its `messageId`, if it had a usable one.
    pub message_id: Option<String>,
    /// One line.
    pub reason: String,
    /// Details.
    pub errors: Vec<String>,
    /// The message as received (without the write key).
    pub payload: Value,
}

/// Rows per multi-row INSERT on PostgreSQL, which pays a round trip per statement.
const ROWS_PER_INSERT: usize = 200;

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

/// What one ingestion request appends: its messages, its dead letters and what goes to the bus.
#[derive(Debug, Clone)]
pub struct Append {
    /// The source.
    pub write_key_id: String,
    /// Messages to store (duplicates of stored `messageId`s are skipped).
    pub accepted: Vec<Accepted>,
    /// Messages kept as dead letters.
    pub dead: Vec<DeadLetter>,
    /// Handed to the bus through the outbox when any message was new.
    pub to_bus: Option<Ingested>,
    /// When the request arrived, ms since the epoch.
    pub received_at: i64,
}

/// Writes one request's rows in the caller's transaction; returns how many messages were new.
async fn write(conn: &mut sqlx::AnyConnection, job: &Append) -> Result<usize, StoreError> {
    let inserted = insert_events(&mut *conn, &job.write_key_id, &job.accepted).await?;
    if let Some(i) = job.to_bus.as_ref().filter(|_| inserted > 0) {
        outbox::append(&mut *conn, i, job.received_at).await?;
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
        .execute(&mut *conn)
        .await?;
    }
    Ok(inserted)
}

/// Appends one request in its own transaction (PostgreSQL).
async fn append(db: &Db, job: &Append) -> Result<usize, StoreError> {
    let mut tx = db.begin().await?;
    let inserted = write(&mut tx, job).await?;
    tx.commit().await?;
    Ok(inserted)
}

/// The log's writer. On SQLite, which has one writer anyway, a thread of its own owns the
/// appends and commits concurrent requests together (see `embedded_log`); on PostgreSQL each
/// request commits on its own connection, concurrently.
#[derive(Debug, Clone)]
pub struct LogWriter {
    db: Db,
    embedded: Option<embedded_log::Writer>,
}

impl LogWriter {
    /// A writer for `db` (on SQLite, starts the writer thread: call within a Tokio runtime).
    pub fn new(db: Db) -> Self {
        let embedded = (db.backend() == Backend::Sqlite).then(|| embedded_log::Writer::start(&db));
        Self { db, embedded }
    }

    /// On SQLite, when the embedded `bus` keeps its messages in the log's database file, the
    /// log's own transactions publish what ingestion hands to the bus (nothing goes through the
    /// outbox). Elsewhere (PostgreSQL, another file) the outbox and its relay keep doing it.
    /// Returns whether the log publishes from now on.
    pub fn publish_in_log(&mut self, bus: &dermis_bus::embedded::EmbeddedBus) -> bool {
        let same_file = self.db.sqlite_file().is_some() && self.db.sqlite_file() == bus.db().sqlite_file();
        match &mut self.embedded {
            Some(w) if same_file => {
                w.publish_in_log(bus.clone());
                true
            }
            _ => false,
        }
    }

    /// True when the log publishes to the bus itself, so the outbox relay has nothing to do
    /// after an append.
    pub fn publishes_in_log(&self) -> bool {
        self.embedded.as_ref().is_some_and(|w| w.publishes_in_log())
    }

    /// Appends one request; answers once it is committed. Returns how many messages were new
    /// (the rest were duplicates of stored ones).
    pub async fn append(&self, job: Append) -> Result<usize, StoreError> {
        match &self.embedded {
            Some(w) => w.append(job).await,
            None => append(&self.db, &job).await,
        }
    }

    /// Deletes outbox rows the relay handed to the bus: on SQLite in the writer's next group
    /// commit (not in a write transaction of their own, which queued ingestion behind it), on
    /// PostgreSQL in a transaction of their own.
    pub async fn relayed(&self, ids: Vec<String>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        match &self.embedded {
            Some(w) => w.relayed(ids).await.map(|_| ()),
            None => outbox::remove(&self.db, &ids).await,
        }
    }

    /// On SQLite, brings the customer index up to date with the log now instead of at the
    /// indexer's next pass (about once a second); returns how many index entries it wrote.
    /// Reads are exact either way (they scan what is not indexed yet): this is for tests and
    /// tools that want the tail empty. Never call it while holding a write transaction of the
    /// store (the pass needs the writer, which waits for the write turn). Nothing to do on
    /// PostgreSQL.
    pub async fn index_tail(&self) -> Result<usize, StoreError> {
        match &self.embedded {
            Some(w) => w.index_tail().await,
            None => Ok(0),
        }
    }

    /// Stores a replayed dead letter's message and marks the dead letter replayed, in one
    /// transaction. Returns whether the message was stored now (false when the dead letter was
    /// replayed before, or the log already held its `messageId`).
    pub async fn replay(
        &self,
        dead_letter_id: &str,
        write_key_id: &str,
        accepted: Accepted,
        to_bus: Option<Ingested>,
        now: i64,
    ) -> Result<bool, StoreError> {
        if let Some(w) = &self.embedded {
            return w.replay(dead_letter_id, write_key_id, accepted, to_bus, now).await;
        }
        let mut tx = self.db.begin().await?;
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
}

/// How an event id shows through the API: on PostgreSQL the stored text id; on SQLite the
/// integer key (`ms << 20 | counter`) written as `evt_<ULID>` with the key's milliseconds as
/// the ULID's time and its counter as the ULID's low bits, so ids sort alike on both.
fn key_to_id(key: i64) -> String {
    let ms = (key >> COUNTER_BITS) as u64;
    let counter = (key & ((1 << COUNTER_BITS) - 1)) as u128;
    format!("evt_{}", ulid::Ulid::from_parts(ms, counter).to_string().to_ascii_lowercase())
}

/// The largest SQLite key that sorts at or before the id (or id prefix, as [`id_floor`] makes)
/// `after`: keys greater than it are the events after `after`.
fn key_after(after: &str) -> Result<i64, StoreError> {
    let bad = || StoreError::InvalidInput(format!("{after:?} is not an event id"));
    let Some(rest) = after.strip_prefix("evt_") else {
        return if after.is_empty() { Ok(-1) } else { Err(bad()) };
    };
    if rest.len() > 26 || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(bad());
    }
    let padded = format!("{:0<26}", rest.to_ascii_uppercase());
    let u = ulid::Ulid::from_string(&padded).map_err(|_| bad())?;
    let ms = u.timestamp_ms();
    if ms >= 1 << (63 - COUNTER_BITS) {
        return Ok(i64::MAX);
    }
    let counter = u.random().min((1 << COUNTER_BITS) - 1) as i64;
    let key = ((ms as i64) << COUNTER_BITS) | counter;
    // A prefix sorts before every id that starts with it, the zero-padded one included.
    Ok(if rest.len() < 26 { key - 1 } else { key })
}

/// Binds the "after this id" bound of a scan in the backend's key type.
fn bind_after<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    backend: Backend,
    after: Option<&str>,
) -> Result<sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>, StoreError> {
    Ok(match backend {
        Backend::Sqlite => q.bind(key_after(after.unwrap_or(""))?),
        Backend::Postgres => q.bind(after.unwrap_or("").to_owned()),
    })
}

fn read_id(r: &dermis_store::sqlx::any::AnyRow, i: usize, backend: Backend) -> Result<String, StoreError> {
    Ok(match backend {
        Backend::Sqlite => key_to_id(r.try_get(i)?),
        Backend::Postgres => r.try_get(i)?,
    })
}

/// A stored event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoredEvent {
    /// `evt_...`, in arrival order.
    pub id: String,
    /// The source.
    pub write_key_id: String,
    /// The schema it was validated against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The canonical message.
    #[schema(value_type = Object)]
    pub message: Value,
}

/// Which customer's events.
#[derive(Debug, Clone)]
pub enum Subject {
    /// By user id.
    User(String),
    /// By anonymous id.
    Anonymous(String),
}

impl Subject {
    /// The id.
    fn value(&self) -> &str {
        let (Subject::User(v) | Subject::Anonymous(v)) = self;
        v
    }

    /// The `events` column holding this kind of id, and on SQLite the customer index table
    /// keyed by it (see `embedded_log`).
    fn column_and_index(&self) -> (&'static str, &'static str) {
        match self {
            Subject::User(_) => BY_USER,
            Subject::Anonymous(_) => BY_ANONYMOUS,
        }
    }
}

const BY_USER: (&str, &str) = ("user_id", "events_by_user");
const BY_ANONYMOUS: (&str, &str) = ("anonymous_id", "events_by_anonymous");

/// A condition on `events` that holds for `who`'s events after the key `$2`, with `who`'s id
/// bound as `$1`. On PostgreSQL an index on `events` answers it. On SQLite the customer index
/// answers up to its watermark (entries after it may be there, from a pass not finished yet,
/// and are not trusted), and the tail after the watermark (a second or two of events) is
/// scanned in key order; the keys are looked up in order, so a page of them needs no sort.
fn of_customer(backend: Backend, who: &Subject) -> String {
    let (column, index) = who.column_and_index();
    match backend {
        Backend::Postgres => format!("{column} = $1 AND id > $2"),
        Backend::Sqlite => format!(
            "id IN (SELECT id FROM {index} WHERE {column} = $1 AND id > $2 AND id <= (SELECT through FROM events_indexed) \
             UNION ALL SELECT id FROM events WHERE id > MAX($2, (SELECT through FROM events_indexed)) AND {column} = $1)"
        ),
    }
}

/// Lists one customer's events in arrival order after `after`.
pub async fn events_of(
    db: &Db,
    who: &Subject,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<StoredEvent>, StoreError> {
    let sql = format!(
        "SELECT id, write_key_id, schema_ref, payload FROM events WHERE {} ORDER BY id LIMIT {limit}",
        of_customer(db.backend(), who)
    );
    let q = sqlx::query(&sql).bind(who.value());
    let rows = bind_after(q, db.backend(), after)?.fetch_all(db.reader()).await?;
    rows.iter()
        .map(|r| {
            let payload: String = r.try_get(3)?;
            Ok(StoredEvent {
                id: read_id(r, 0, db.backend())?,
                write_key_id: r.try_get(1)?,
                schema: r.try_get(2)?,
                message: serde_json::from_str(&payload).map_err(|e| StoreError::Other(e.to_string()))?,
            })
        })
        .collect()
}

/// A dead letter as listed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoredDeadLetter {
    /// `dlq_...`.
    pub id: String,
    /// The source.
    pub write_key_id: String,
    /// The message's `messageId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Why it was rejected.
    pub reason: String,
    /// Details.
    pub errors: Vec<String>,
    /// The message as received.
    #[schema(value_type = Object)]
    pub payload: Value,
    /// RFC 3339.
    pub received_at: String,
    /// RFC 3339, once replayed into the log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replayed_at: Option<String>,
}

fn dead_letter_row(r: &dermis_store::sqlx::any::AnyRow) -> Result<StoredDeadLetter, StoreError> {
    let errors: String = r.try_get(4)?;
    let payload: String = r.try_get(5)?;
    Ok(StoredDeadLetter {
        id: r.try_get(0)?,
        write_key_id: r.try_get(1)?,
        message_id: r.try_get(2)?,
        reason: r.try_get(3)?,
        errors: serde_json::from_str(&errors).unwrap_or_default(),
        payload: serde_json::from_str(&payload).map_err(|e| StoreError::Other(e.to_string()))?,
        received_at: rfc3339(r.try_get(6)?),
        replayed_at: r.try_get::<Option<i64>, _>(7)?.map(rfc3339),
    })
}

const DEAD_COLUMNS: &str = "id, write_key_id, message_id, reason, errors, payload, received_at, replayed_at";

/// Lists dead letters in arrival order after `after` (replayed ones too, marked).
pub async fn dead_letters(db: &Db, after: Option<&str>, limit: u32) -> Result<Vec<StoredDeadLetter>, StoreError> {
    let rows = sqlx::query(&format!("SELECT {DEAD_COLUMNS} FROM dead_letters WHERE id > $1 ORDER BY id LIMIT {limit}"))
        .bind(after.unwrap_or(""))
        .fetch_all(db.reader())
        .await?;
    rows.iter().map(dead_letter_row).collect()
}

/// One dead letter.
pub async fn dead_letter(db: &Db, id: &str) -> Result<Option<StoredDeadLetter>, StoreError> {
    let row = sqlx::query(&format!("SELECT {DEAD_COLUMNS} FROM dead_letters WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(dead_letter_row).transpose()
}

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
/// record of the erasure (see [`erasures_since`]).
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
        // key issued (see `embedded_log`), never at or below the customer index's watermark.
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
    let forget = Ingested { write_key_id: String::new(), features: Vec::new(), erase: hidden.clone(), erased_at: now };
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

/// The customers (pseudonyms) erased at or after `ms`, with when: what a node restoring a
/// feature snapshot taken after `ms` must forget again.
pub async fn erasures_since(db: &Db, ms: i64) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = sqlx::query("SELECT subjects, erased_at FROM event_erasures WHERE erased_at >= $1 ORDER BY erased_at")
        .bind(ms)
        .fetch_all(db.reader())
        .await?;
    let mut subjects = Vec::new();
    for r in rows {
        let list: String = r.try_get(0)?;
        let at: i64 = r.try_get(1)?;
        let list = serde_json::from_str::<Vec<String>>(&list).map_err(|e| StoreError::Other(e.to_string()))?;
        subjects.extend(list.into_iter().map(|s| (s, at)));
    }
    Ok(subjects)
}

/// A stored message with its source, as a rebuild reads it.
#[derive(Debug, Clone)]
pub struct Logged {
    /// `evt_...` (time-ordered).
    pub id: String,
    /// The source.
    pub write_key_id: String,
    /// The message.
    pub message: Message,
}

/// Messages stored after `after` (an event id, or the id prefix [`id_floor`] makes of a time),
/// oldest first: what a node replays into its online features after a restart.
pub async fn since(db: &Db, after: &str, limit: u32) -> Result<Vec<Logged>, StoreError> {
    let sql = format!(
        "SELECT id, write_key_id, message_id, kind, event, user_id, anonymous_id, timestamp_ms, received_at, payload
         FROM events WHERE id > $1 ORDER BY id LIMIT {}",
        limit.clamp(1, 5000)
    );
    let q = sqlx::query(&sql);
    let rows = bind_after(q, db.backend(), Some(after))?.fetch_all(db.reader()).await?;
    rows.iter()
        .map(|r| {
            let kind: String = r.try_get(3)?;
            let payload: String = r.try_get(9)?;
            Ok(Logged {
                id: read_id(r, 0, db.backend())?,
                write_key_id: r.try_get(1)?,
                message: Message {
                    message_id: r.try_get(2)?,
                    kind: Kind::parse(&kind).ok_or_else(|| StoreError::Other(format!("stored kind {kind:?}")))?,
                    event: r.try_get(4)?,
                    user_id: r.try_get(5)?,
                    anonymous_id: r.try_get(6)?,
                    timestamp_ms: r.try_get(7)?,
                    received_at_ms: r.try_get(8)?,
                    payload: serde_json::from_str(&payload).map_err(|e| StoreError::Other(e.to_string()))?,
                },
            })
        })
        .collect()
}

/// An id below every event stored at or after `ms`: `since(db, &id_floor(t), ..)` starts at
/// time `t`.
pub fn id_floor(ms: i64) -> String {
    dermis_core::ids::floor_at("evt", ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_keys_show_as_ids_that_sort_like_the_keys_and_read_back() {
        let ms = 1_764_000_000_123_i64;
        let keys =
            [ms << COUNTER_BITS, (ms << COUNTER_BITS) + 1, (ms << COUNTER_BITS) + 70_000, (ms + 1) << COUNTER_BITS];
        let ids: Vec<String> = keys.iter().map(|k| key_to_id(*k)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert!(ids.iter().all(|id| dermis_core::ids::is_id("evt", id)), "{ids:?}");
        for (k, id) in keys.iter().zip(&ids) {
            assert_eq!(key_after(id).unwrap(), *k, "the events after {id} start after its key");
        }
    }

    #[test]
    fn a_time_floor_starts_at_the_first_event_of_that_millisecond() {
        let ms = 1_764_000_000_123_i64;
        let first = ms << COUNTER_BITS;
        let after = key_after(&id_floor(ms)).unwrap();
        assert!(after < first, "the first key of {ms} ({first}) is after the floor ({after})");
        assert!(after >= ((ms - 1) << COUNTER_BITS), "events of the millisecond before are not replayed");
        assert_eq!(key_after("").unwrap(), -1, "no cursor: from the start");
    }

    #[test]
    fn payload_patterns_escape_like_wildcards_and_match_numeric_ids() {
        assert_eq!(json_member_patterns("userId", "u_1%"), [r#"%"userId":"u\_1\%"%"#]);
        assert_eq!(json_member_patterns("userId", "a\"b"), [r#"%"userId":"a\\"b"%"#]);
        assert_eq!(
            json_member_patterns("userId", "42"),
            [r#"%"userId":"42"%"#, r#"%"userId":42,%"#, r#"%"userId":42}%"#]
        );
    }

    #[test]
    fn a_cursor_that_is_not_an_event_id_is_refused_as_bad_input() {
        for bad in ["prd_01jd0000000000000000000000", "evt_!!", "evt_zzzzzzzzzzzzzzzzzzzzzzzzzzzz"] {
            assert!(matches!(key_after(bad), Err(StoreError::InvalidInput(_))), "{bad}");
        }
    }
}
