//! [`Audit`]: record, verify, export; the [`Auditor`] trait route handlers call; [`RequestId`].

use std::convert::Infallible;

use async_trait::async_trait;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use dermis_core::clock::SharedClock;
use dermis_store::{Db, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::chain::{GENESIS, Hashed};
use crate::model::{AuditError, BadEntry, Entry, Record};
use crate::store::{self, Raw};

/// Longest actor, role, purpose, request id or subject accepted, in bytes.
const MAX_TEXT: usize = 256;
/// Most field names in one entry.
const MAX_FIELDS: usize = 128;
/// Entries read per query while verifying.
const PAGE: i64 = 1_000;

/// What a route handler needs to record an access: one call, awaited before answering. A
/// domain takes an `Arc<dyn Auditor>` so tests and simulations can hand it a fake.
#[async_trait]
pub trait Auditor: Send + Sync + 'static {
    /// Appends `entry` to the log; an access that could not be recorded must not be answered.
    async fn record(&self, entry: Entry) -> Result<Record, AuditError>;

    /// Appends `entries` in order (one request touching two customers, or writing and then
    /// returning a profile); fails when any could not be recorded.
    async fn record_all(&self, entries: Vec<Entry>) -> Result<Vec<Record>, AuditError> {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            out.push(self.record(e).await?);
        }
        Ok(out)
    }

    /// Every entry about the customer `customer_id` (or made with their own token), oldest first.
    async fn export(&self, customer_id: &str) -> Result<Vec<Record>, AuditError>;
}

/// Most entries one transaction appends.
const MAX_BATCH: usize = 256;

/// An entry waiting for the writer, and where to send it once committed.
struct Pending {
    at: i64,
    entry: Entry,
    reply: oneshot::Sender<Result<Record, StoreError>>,
}

/// The audit log over the system of record. Cheap to clone.
///
/// Appends go through one writer task per `Audit` (group commit): whatever entries wait when
/// it is free are appended in one transaction, so concurrent requests share one commit (one
/// fsync on SQLite, one round of the head row's lock on PostgreSQL) instead of queueing for
/// one each. [`Audit::record`] returns only after its entry's transaction committed.
#[derive(Debug, Clone)]
pub struct Audit {
    db: Db,
    clock: SharedClock,
    queue: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("at", &self.at).field("entry", &self.entry).finish_non_exhaustive()
    }
}

impl Audit {
    /// The log in `db` (migrated with [`crate::MIGRATIONS`]), timestamped by `clock`. Starts the
    /// writer task, so it must be called within a Tokio runtime; the task ends when the last
    /// clone of this `Audit` is dropped.
    pub fn new(db: Db, clock: SharedClock) -> Self {
        let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(writer(db.clone(), rx));
        Self { db, clock, queue }
    }

    /// Appends `entry`, chained to the entry before it; returns it as stored, once committed.
    pub async fn record(&self, entry: Entry) -> Result<Record, AuditError> {
        check(&entry)?;
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Unavailable("the audit log's writer stopped".to_owned());
        self.queue.send(Pending { at: self.clock.now_ms(), entry, reply }).await.map_err(|_| stopped())?;
        Ok(answer.await.map_err(|_| stopped())??)
    }

    /// Appends `entries` in the order given, queued together so that they usually share one
    /// transaction; returns once every one committed.
    pub async fn record_all(&self, entries: Vec<Entry>) -> Result<Vec<Record>, AuditError> {
        for e in &entries {
            check(e)?;
        }
        let stopped = || StoreError::Unavailable("the audit log's writer stopped".to_owned());
        let mut answers = Vec::with_capacity(entries.len());
        for entry in entries {
            let (reply, answer) = oneshot::channel();
            self.queue.send(Pending { at: self.clock.now_ms(), entry, reply }).await.map_err(|_| stopped())?;
            answers.push(answer);
        }
        let mut out = Vec::with_capacity(answers.len());
        for answer in answers {
            out.push(answer.await.map_err(|_| stopped())??);
        }
        Ok(out)
    }

    /// The chain head: how many entries there are and the last one's hash. Publishing it
    /// elsewhere anchors the chain against a rewrite of the whole tail.
    pub async fn head(&self) -> Result<(i64, String), AuditError> {
        let mut conn = self.db.reader().acquire().await?;
        Ok(store::head(&mut conn).await?)
    }

    /// Recomputes the whole chain in one snapshot. `Ok(Ok(n))`: the `n` entries are intact.
    /// `Ok(Err(bad))`: the first entry that was edited, deleted or inserted. `Err`: the
    /// database failed.
    pub async fn verify(&self) -> Result<Result<u64, BadEntry>, AuditError> {
        let mut tx = store::snapshot(&self.db).await?;
        let (head_seq, head_hash) = store::head(&mut tx).await?;
        let mut walk = Walk { expected: 1, prev: GENESIS.to_owned(), head_seq };
        loop {
            let rows = store::page(&mut tx, walk.expected - 1, PAGE).await?;
            let done = (rows.len() as i64) < PAGE;
            for row in &rows {
                if let Err(bad) = walk.step(row) {
                    return Ok(Err(bad));
                }
            }
            if done {
                break;
            }
        }
        tx.commit().await?;
        let count = walk.expected - 1;
        if count < head_seq {
            let reason = if count + 1 == head_seq {
                format!("deleted: the chain head counts {head_seq} entries but the log ends at entry {count}")
            } else {
                format!(
                    "deleted: the chain head counts {head_seq} entries but the log ends at entry {count} \
                     (entries {} to {head_seq} are missing)",
                    count + 1
                )
            };
            return Ok(Err(BadEntry { seq: count + 1, reason }));
        }
        if walk.prev != head_hash {
            return Ok(Err(BadEntry {
                seq: count,
                reason: "rewritten: the last entry's hash differs from the one the chain head recorded".to_owned(),
            }));
        }
        Ok(Ok(count as u64))
    }

    /// Every entry about the customer `customer_id` (or made with their own token), oldest
    /// first: their part of the audit log, for an export.
    pub async fn export(&self, customer_id: &str) -> Result<Vec<Record>, AuditError> {
        let rows = store::of_customer(&self.db, customer_id).await?;
        rows.into_iter()
            .map(|r| {
                let fields = serde_json::from_str(&r.fields)
                    .map_err(|e| AuditError::Invalid(format!("entry {} has damaged fields: {e}", r.seq)))?;
                Ok(Record {
                    seq: r.seq,
                    at: r.at,
                    actor: r.actor,
                    role: r.role,
                    purpose: r.purpose,
                    request_id: r.request_id,
                    action: r.action,
                    subject: r.subject,
                    fields,
                    prev_hash: r.prev_hash,
                    hash: r.hash,
                })
            })
            .collect()
    }
}

#[async_trait]
impl Auditor for Audit {
    async fn record(&self, entry: Entry) -> Result<Record, AuditError> {
        Audit::record(self, entry).await
    }

    async fn record_all(&self, entries: Vec<Entry>) -> Result<Vec<Record>, AuditError> {
        Audit::record_all(self, entries).await
    }

    async fn export(&self, customer_id: &str) -> Result<Vec<Record>, AuditError> {
        Audit::export(self, customer_id).await
    }
}

/// Appends what waits in `rx`, up to [`MAX_BATCH`] entries per transaction, until every
/// sender is gone.
async fn writer(db: Db, mut rx: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let entries: Vec<(i64, &Entry)> = batch.iter().map(|p| (p.at, &p.entry)).collect();
        match store::append(&db, &entries).await {
            Ok(records) => {
                for (p, r) in batch.drain(..).zip(records) {
                    let _ = p.reply.send(Ok(r));
                }
            }
            Err(e) => {
                for p in batch.drain(..) {
                    let _ = p.reply.send(Err(copy(&e)));
                }
            }
        }
    }
}

/// The same error for each waiter of a failed batch.
fn copy(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unique { constraint } => StoreError::Unique { constraint: constraint.clone() },
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Migration { domain, version, reason } => {
            StoreError::Migration { domain: domain.clone(), version: *version, reason: reason.clone() }
        }
        StoreError::InvalidInput(m) => StoreError::InvalidInput(m.clone()),
        StoreError::Other(m) => StoreError::Other(m.clone()),
    }
}

/// Where a verification is in the chain.
struct Walk {
    expected: i64,
    prev: String,
    head_seq: i64,
}

impl Walk {
    fn step(&mut self, row: &Raw) -> Result<(), BadEntry> {
        let seq = row.seq;
        if seq != self.expected {
            let last = self.expected - 1;
            let reason = if seq == self.expected + 1 {
                format!("deleted: the log goes from entry {last} to entry {seq}")
            } else {
                format!(
                    "deleted: the log goes from entry {last} to entry {seq} (entries {} to {} are missing)",
                    self.expected,
                    seq - 1
                )
            };
            return Err(BadEntry { seq: self.expected, reason });
        }
        if seq > self.head_seq {
            return Err(BadEntry {
                seq,
                reason: format!("inserted: beyond the chain head, which counts {} entries", self.head_seq),
            });
        }
        let fields: Vec<String> = serde_json::from_str(&row.fields).map_err(|_| BadEntry {
            seq,
            reason: "edited: its fields column is not a list of field names".to_owned(),
        })?;
        let computed = Hashed {
            seq,
            at: row.at,
            actor: &row.actor,
            role: &row.role,
            purpose: &row.purpose,
            request_id: &row.request_id,
            action: &row.action,
            subject: row.subject.as_deref(),
            fields: &fields,
            prev_hash: &row.prev_hash,
        }
        .hash();
        if computed != row.hash {
            return Err(BadEntry { seq, reason: "edited: its content does not match its hash".to_owned() });
        }
        if row.prev_hash != self.prev {
            return Err(if seq == 1 {
                BadEntry { seq, reason: "replaced: the first entry does not start from the genesis hash".to_owned() }
            } else {
                BadEntry {
                    seq: seq - 1,
                    reason: format!(
                        "rewritten: its hash differs from the one entry {seq} chained to (edited with its hash recomputed, or replaced)"
                    ),
                }
            });
        }
        self.prev.clone_from(&row.hash);
        self.expected += 1;
        Ok(())
    }
}

fn check(entry: &Entry) -> Result<(), AuditError> {
    let texts = [
        ("actor", Some(entry.actor.as_str())),
        ("role", Some(entry.role.as_str())),
        ("purpose", Some(entry.purpose.as_str())),
        ("request_id", Some(entry.request_id.as_str())),
        ("subject", entry.subject.as_deref()),
    ];
    for (name, value) in texts {
        let Some(v) = value else { continue };
        if name != "request_id" && v.is_empty() {
            return Err(AuditError::Invalid(format!("{name} is empty")));
        }
        if v.len() > MAX_TEXT || v.contains('\0') {
            return Err(AuditError::Invalid(format!("{name} is longer than {MAX_TEXT} bytes or holds a NUL")));
        }
    }
    if entry.fields.len() > MAX_FIELDS {
        return Err(AuditError::Invalid(format!("more than {MAX_FIELDS} fields")));
    }
    if let Some(f) = entry.fields.iter().find(|f| f.is_empty() || f.len() > 64 || f.contains('\0')) {
        return Err(AuditError::Invalid(format!("not a field name: {f:?}")));
    }
    Ok(())
}

/// The request's `x-request-id` (set by the server's request-id layer before any handler
/// runs), or an empty string outside a server. Never rejects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let id = parts.headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
        Ok(Self(id.chars().take(MAX_TEXT).collect()))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    #[tokio::test]
    async fn the_request_id_is_the_servers_header_or_empty() {
        let (mut parts, ()) = Request::builder().header("x-request-id", "abc-1").body(()).unwrap().into_parts();
        assert_eq!(RequestId::from_request_parts(&mut parts, &()).await.unwrap().as_str(), "abc-1");
        let (mut parts, ()) = Request::builder().body(()).unwrap().into_parts();
        assert_eq!(RequestId::from_request_parts(&mut parts, &()).await.unwrap().as_str(), "");
    }

    #[test]
    fn entries_with_empty_or_oversized_values_are_refused() {
        let ok = Entry::new("a", "admin", "support", "", crate::Action::CUSTOMER_READ).fields(&["email"]);
        assert!(check(&ok).is_ok(), "a job has no request id");
        assert!(check(&Entry { purpose: String::new(), ..ok.clone() }).is_err());
        assert!(check(&Entry { actor: "x".repeat(257), ..ok.clone() }).is_err());
        assert!(check(&ok.clone().fields(&[""])).is_err());
    }
}
