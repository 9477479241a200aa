//! A request in, events and dead letters out. Every message of a request ends in exactly one of
//! three places: the log (new), the log already (a duplicate `messageId`), or the dead letters
//! (with its reason, also in the answer).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dermis_core::clock::{SharedClock, SystemClock};
use dermis_store::Db;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Notify, Semaphore};
use utoipa::ToSchema;

use crate::EventsError;
use crate::log::{self, Accepted, Append, DeadLetter, LogWriter};
use crate::message::{BatchDefaults, Kind, Message, normalize, normalize_owned, parse_time, serialized_len};
use crate::outbox::Ingested;
use crate::pii::PiiPolicy;
use crate::pseudonym::Pseudonyms;
use crate::schemas::{Check, SchemaRegistry};
use crate::write_keys::WriteKeys;

/// Most messages in one batch.
pub const MAX_BATCH: usize = 2500;
/// Largest request body.
pub const MAX_REQUEST_BYTES: usize = 500 * 1024;

/// A projection of the event stream on this node that sees what ingestion stored before the
/// answer leaves (read-your-writes) and forgets erased customers at once. Other nodes learn the
/// same from `events.ingested` on the bus (see [`crate::outbox`]); the repeat on this node must
/// count for nothing.
///
/// Ingestion hands a hook the messages of a request before they move into the log
/// ([`Self::prepare`]: the hook takes what it needs of them), lets it keep what must not be lost
/// before they are stored ([`Prepared::before_store`]) and applies what it prepared once they
/// are stored ([`Prepared::stored`]); a failed append applies nothing more.
///
/// The hook sees each message whole: the personal traits the log does not keep (see
/// [`crate::pii`]) are only in what `prepare` is given, and the log holds markers in their place.
#[async_trait]
pub trait IngestHook: Send + Sync + 'static {
    /// Takes what the hook needs of messages the source `write_key_id` is about to store (a
    /// retried request brings its duplicates again).
    async fn prepare(&self, write_key_id: &str, messages: &[&Message]) -> Box<dyn Prepared>;

    /// Takes what the hook needs of messages stored before personal traits were moved out of
    /// the log, which the one-time rewrite ([`Ingestor::move_stored_pii`]) is about to strip
    /// (the hook may have applied them long ago). By default, as [`Self::prepare`].
    async fn prepare_stored(&self, write_key_id: &str, messages: &[&Message]) -> Box<dyn Prepared> {
        self.prepare(write_key_id, messages).await
    }

    /// Customers, as pseudonyms, whose events were just erased at `erased_at`.
    async fn erased(&self, pseudonyms: &[String], erased_at: i64);
}

/// What an [`IngestHook`] prepared from messages about to be stored.
#[async_trait]
pub trait Prepared: Send {
    /// The messages are about to be stored without their personal traits: keep what must not
    /// be lost (the customers domain applies the traits here, so no reader of the log can see
    /// the message before they are kept). A failure fails the request (the client retries)
    /// and nothing is stored.
    async fn before_store(&mut self) -> Result<(), dermis_store::StoreError> {
        Ok(())
    }

    /// The messages are stored: apply.
    async fn stored(self: Box<Self>);
}

/// The ingestion service.
#[derive(Clone)]
pub struct Ingestor {
    db: Db,
    keys: WriteKeys,
    permits: Arc<Semaphore>,
    hooks: Vec<Arc<dyn IngestHook>>,
    outbox_ready: Arc<Notify>,
    writer: LogWriter,
    pseudonyms: Pseudonyms,
    node: String,
    clock: SharedClock,
    pii: Arc<PiiPolicy>,
}

impl std::fmt::Debug for Ingestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingestor").field("node", &self.node).field("hooks", &self.hooks.len()).finish_non_exhaustive()
    }
}

/// A message that was not accepted.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Failure {
    /// Its index in the batch (0 for single calls).
    pub index: usize,
    /// Its `messageId`, if it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Why.
    pub reason: String,
    /// Details.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// The answer to an ingestion request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IngestResult {
    /// True when every message was stored (new or duplicate). Segment clients read this.
    pub success: bool,
    /// Messages stored now.
    pub accepted: usize,
    /// Messages already stored under the same `messageId`.
    pub duplicates: usize,
    /// Messages kept as dead letters instead, with reasons.
    pub rejected: Vec<Failure>,
}

/// A single call's type comes from its path; keep it on the dead letter so a replay knows it.
fn with_type(mut v: Value, kind: Option<Kind>) -> Value {
    if let (Value::Object(o), Some(k)) = (&mut v, kind) {
        o.entry("type").or_insert_with(|| k.as_str().into());
    }
    v
}

/// Checks a normalized message against the schema registry.
pub fn classify(m: Message) -> Result<Accepted, DeadLetter> {
    let schema = match (m.kind, m.event.as_deref()) {
        (Kind::Track, Some(event)) => {
            match SchemaRegistry::bundled().check(event, m.payload.get("properties").unwrap_or(&Value::Null)) {
                Check::Unregistered => None,
                Check::Valid(r) => Some(r),
                Check::Invalid(r, errors) => {
                    return Err(DeadLetter {
                        message_id: Some(m.message_id.clone()),
                        reason: format!("properties do not match the schema {r}"),
                        errors,
                        payload: m.payload,
                    });
                }
            }
        }
        _ => None,
    };
    Ok(Accepted { message: m, schema })
}

impl Ingestor {
    /// Ingestion into `db`, with at most `concurrency` requests writing at once (more wait up to
    /// 250 ms, then get a 429); customers named on the bus and in erasure records by their
    /// `pseudonyms`.
    pub fn new(db: Db, concurrency: usize, pseudonyms: Pseudonyms) -> Self {
        // Compile the bundled JSON Schemas now (once per process), not in the first request:
        // that made a node's first event take about 170 ms.
        SchemaRegistry::bundled();
        Self {
            keys: WriteKeys::new(db.clone()),
            writer: LogWriter::new(db.clone()),
            db,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            hooks: Vec::new(),
            outbox_ready: Arc::new(Notify::new()),
            pseudonyms,
            node: String::new(),
            clock: Arc::new(SystemClock),
            pii: Arc::new(PiiPolicy::default()),
        }
    }

    /// Moves the personal traits `policy` names out of stored messages (the default policy
    /// otherwise).
    pub fn with_pii_policy(mut self, policy: PiiPolicy) -> Self {
        self.pii = Arc::new(policy);
        self
    }

    /// What the log does not keep.
    pub fn pii_policy(&self) -> &PiiPolicy {
        &self.pii
    }

    /// Tells `hook` what is stored and erased here, before the answer leaves.
    pub fn with_hook(mut self, hook: Arc<dyn IngestHook>) -> Self {
        self.hooks.push(hook);
        self
    }

    /// Names this node in what it hands to the bus (its own projections already saw it).
    pub fn with_node(mut self, node: &str) -> Self {
        self.node = node.to_owned();
        self
    }

    /// Reads the time from `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.keys = self.keys.with_clock(clock.clone());
        self.clock = clock;
        self
    }

    /// Publishes ingested events in the event log's own transactions when `bus` lives in the
    /// same SQLite file (see [`LogWriter::publish_in_log`]); otherwise they go through the
    /// outbox as before.
    pub fn with_embedded_bus(mut self, bus: &dermis_bus::embedded::EmbeddedBus) -> Self {
        if self.writer.publish_in_log(bus) {
            tracing::debug!("ingested events are published to the embedded bus by the event log's transactions");
        }
        self
    }

    /// Deletes outbox rows the relay has handed to the bus (see [`LogWriter::relayed`]).
    pub async fn relayed(&self, ids: Vec<String>) -> Result<(), EventsError> {
        Ok(self.writer.relayed(ids).await?)
    }

    /// Notified whenever ingestion wrote to the outbox, so the relay need not poll.
    pub fn outbox_ready(&self) -> Arc<Notify> {
        self.outbox_ready.clone()
    }

    /// The pseudonyms customers have on the bus and in derived state.
    pub fn pseudonyms(&self) -> &Pseudonyms {
        &self.pseudonyms
    }

    /// Wakes the relay after a write that handed something to the bus through the outbox.
    fn wrote_outbox(&self, stored: bool) {
        if stored && !self.writer.publishes_in_log() {
            self.outbox_ready.notify_one();
        }
    }

    /// What goes on the bus for messages stored now: their ids (the messages stay in the log).
    fn to_bus<'a>(&self, write_key_id: &str, stored: impl IntoIterator<Item = &'a Message>) -> Option<Ingested> {
        let mut messages = Vec::new();
        let mut kinds = std::collections::BTreeSet::new();
        for m in stored {
            messages.push(m.message_id.clone());
            kinds.insert(crate::outbox::kind_label(m));
        }
        (!messages.is_empty()).then(|| Ingested {
            write_key_id: write_key_id.to_owned(),
            node: self.node.clone(),
            messages,
            kinds: kinds.into_iter().collect(),
            erase: Vec::new(),
            erased_at: 0,
        })
    }

    /// Read-your-writes: this node's projections take what they need of messages about to be
    /// stored, and apply it once they are (see [`IngestHook`]).
    async fn prepare_hooks(&self, write_key_id: &str, messages: &[&Message]) -> Vec<Box<dyn Prepared>> {
        let mut prepared = Vec::with_capacity(self.hooks.len());
        for hook in &self.hooks {
            prepared.push(hook.prepare(write_key_id, messages).await);
        }
        prepared
    }

    /// Lets every hook keep what it must before the messages are stored without their personal
    /// traits.
    async fn before_store(prepared: &mut [Box<dyn Prepared>]) -> Result<(), EventsError> {
        for p in prepared.iter_mut() {
            p.before_store().await?;
        }
        Ok(())
    }

    async fn stored(prepared: Vec<Box<dyn Prepared>>) {
        for p in prepared {
            p.stored().await;
        }
    }

    /// The write keys.
    pub fn write_keys(&self) -> &WriteKeys {
        &self.keys
    }

    /// The store.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Ingests one request: a single call of type `kind`, or a batch (`kind = None`).
    pub async fn ingest(
        &self,
        kind: Option<Kind>,
        basic_user: Option<&str>,
        body: Value,
    ) -> Result<IngestResult, EventsError> {
        let Value::Object(obj) = &body else {
            return Err(EventsError::Malformed("the body must be a JSON object".into()));
        };
        let key = basic_user.filter(|k| !k.is_empty()).or_else(|| obj.get("writeKey").and_then(Value::as_str));
        let write_key_id = match key {
            Some(k) => self.keys.resolve(k).await?.ok_or(EventsError::BadWriteKey)?,
            None => return Err(EventsError::BadWriteKey),
        };
        self.ingest_as(write_key_id, kind, body).await
    }

    /// Ingests one request for a source already identified (`wk_...`): what [`Self::ingest`]
    /// does once the write key is resolved (the demo loader uses it directly).
    pub async fn ingest_as(
        &self,
        write_key_id: String,
        kind: Option<Kind>,
        body: Value,
    ) -> Result<IngestResult, EventsError> {
        let Value::Object(mut obj) = body else {
            return Err(EventsError::Malformed("the body must be a JSON object".into()));
        };
        let (raws, defaults): (Vec<Value>, BatchDefaults) = match kind {
            Some(_) => (vec![Value::Object(obj)], BatchDefaults::default()),
            None => {
                let Some(Value::Array(batch)) = obj.remove("batch") else {
                    return Err(EventsError::Malformed("a batch body needs a `batch` array".into()));
                };
                if batch.len() > MAX_BATCH {
                    return Err(EventsError::TooLarge(format!(
                        "{} messages in one batch; at most {MAX_BATCH}",
                        batch.len()
                    )));
                }
                let sent_at_ms = match obj.get("sentAt") {
                    Some(Value::String(s)) => parse_time(s),
                    _ => None,
                };
                let defaults = BatchDefaults {
                    context: obj.get("context").filter(|v| v.is_object()).cloned(),
                    integrations: obj.get("integrations").filter(|v| v.is_object()).cloned(),
                    sent_at_ms,
                };
                // The shared context is copied into every message: refuse a batch whose copies
                // would outgrow the request itself (one tiny-message batch with a large context
                // was once enough to write gigabytes).
                if defaults.shared_len() > 0 {
                    let request_len = batch.iter().map(serialized_len).sum::<usize>() + defaults.shared_len();
                    defaults.copies_fit(batch.len(), request_len).map_err(EventsError::TooLarge)?;
                }
                (batch, defaults)
            }
        };
        let _permit = match tokio::time::timeout(Duration::from_millis(250), self.permits.acquire()).await {
            Ok(Ok(p)) => p,
            _ => return Err(EventsError::Saturated),
        };
        let received = self.clock.now_ms();
        let mut accepted = Vec::with_capacity(raws.len());
        let mut dead = Vec::new();
        let mut failures = Vec::new();
        for (index, raw) in raws.into_iter().enumerate() {
            let outcome = normalize_owned(raw, kind, &defaults, received)
                .map_err(|(r, mut raw)| {
                    if let Value::Object(o) = &mut raw {
                        o.remove("writeKey");
                    }
                    DeadLetter {
                        message_id: raw.get("messageId").and_then(Value::as_str).map(str::to_owned),
                        reason: r.reason,
                        errors: r.errors,
                        payload: with_type(raw, kind),
                    }
                })
                .and_then(classify);
            match outcome {
                Ok(a) => accepted.push(a),
                Err(d) => {
                    failures.push(Failure {
                        index,
                        message_id: d.message_id.clone(),
                        reason: d.reason.clone(),
                        errors: d.errors.clone(),
                    });
                    dead.push(d);
                }
            }
        }
        let to_bus = self.to_bus(&write_key_id, accepted.iter().map(|a| &a.message));
        let sent = accepted.len();
        let messages: Vec<&Message> = accepted.iter().map(|a| &a.message).collect();
        let mut prepared = self.prepare_hooks(&write_key_id, &messages).await;
        drop(messages);
        Self::before_store(&mut prepared).await?;
        // The log keeps no personal trait: the hooks took them above.
        for a in &mut accepted {
            self.pii.strip(&mut a.message.payload);
        }
        for d in &mut dead {
            self.pii.strip(&mut d.payload);
        }
        let job = Append { write_key_id, accepted, dead, to_bus, received_at: received };
        let inserted = self.writer.append(job).await?;
        self.wrote_outbox(inserted > 0);
        // Read-your-writes on this node. Projections ignore what they have seen, so retries and
        // duplicates count once.
        Self::stored(prepared).await;
        Ok(IngestResult {
            success: failures.is_empty(),
            accepted: inserted,
            duplicates: sent - inserted,
            rejected: failures,
        })
    }

    /// Erases one customer's events and dead letters, and their online features here (other
    /// nodes forget them when the erasure reaches them on the bus).
    pub async fn erase(&self, who: &log::Subject) -> Result<log::Erased, EventsError> {
        let clock = self.clock.clone();
        let erased = log::erase(&self.db, who, &move || clock.now_ms(), &self.pseudonyms).await?;
        let now = erased.erased_at;
        self.outbox_ready.notify_one();
        // Nothing readable of the person may stay in the files: SQLite zeroed the deleted rows
        // (`secure_delete`); the WAL still holds their old pages until it is checkpointed and
        // truncated. On PostgreSQL, the dead row versions are vacuumed.
        match self.db.scrub(&["events", "dead_letters", "events_outbox", "event_erasures"]).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "after an erasure the WAL could not be truncated (readers kept it busy); the next checkpoints overwrite it"
            ),
            Err(e) => tracing::warn!(error = %e, "scrubbing the store after an erasure failed"),
        }
        let hidden: Vec<String> = erased.subjects.iter().map(|s| self.pseudonyms.customer(s)).collect();
        for hook in &self.hooks {
            hook.erased(&hidden, now).await;
        }
        Ok(erased)
    }

    /// Rewrites, once, the messages stored before the log stopped keeping personal traits (see
    /// [`crate::pii`]): page by page through the log, each message that still holds some is
    /// first handed to this node's hooks ([`IngestHook::prepare_stored`], then
    /// [`Prepared::before_store`] and [`Prepared::stored`]: the customers domain applies traits
    /// it had not applied yet) and then stored again without them, in a transaction that zeroes
    /// what it overwrites; then the dead letters; then, on SQLite, the WAL is checkpointed and
    /// truncated (as after an erasure). Progress is kept in `event_pii_moves`, so a restart goes
    /// on where it stopped and a finished rewrite costs one query. Returns where it stands.
    pub async fn move_stored_pii(&self) -> Result<log::PiiProgress, EventsError> {
        const PAGE: u32 = 500;
        let mut progress = log::pii_progress(&self.db).await?.unwrap_or_default();
        if progress.finished_at.is_some() {
            return Ok(progress);
        }
        let moved_before = progress.moved;
        loop {
            let page = log::since(&self.db, &progress.after_id, PAGE).await?;
            let Some(last) = page.last() else { break };
            let last_id = last.id.clone();
            let personal: Vec<&log::Logged> =
                page.iter().filter(|l| self.pii.holds_personal(&l.message.payload)).collect();
            // The hooks first, a run of one source's messages at a time, in log order.
            let mut start = 0;
            while start < personal.len() {
                let key = personal[start].write_key_id.as_str();
                let end =
                    personal[start..].iter().position(|l| l.write_key_id != key).map_or(personal.len(), |n| start + n);
                let messages: Vec<&Message> = personal[start..end].iter().map(|l| &l.message).collect();
                let mut prepared = Vec::with_capacity(self.hooks.len());
                for hook in &self.hooks {
                    prepared.push(hook.prepare_stored(key, &messages).await);
                }
                Self::before_store(&mut prepared).await?;
                Self::stored(prepared).await;
                start = end;
            }
            let rows: Vec<(String, Value)> = personal
                .iter()
                .map(|l| {
                    let mut payload = l.message.payload.clone();
                    self.pii.strip(&mut payload);
                    (l.id.clone(), payload)
                })
                .collect();
            progress.moved += log::rewrite_payloads(&self.db, &rows, false).await? as i64;
            progress.after_id = last_id;
            log::save_pii_progress(&self.db, &progress).await?;
            if page.len() < PAGE as usize {
                break;
            }
        }
        loop {
            let page = log::dead_letters(&self.db, Some(&progress.after_dead_letter), PAGE).await?;
            let Some(last) = page.last() else { break };
            let last_id = last.id.clone();
            let rows: Vec<(String, Value)> = page
                .iter()
                .filter(|d| self.pii.holds_personal(&d.payload))
                .map(|d| {
                    let mut payload = d.payload.clone();
                    self.pii.strip(&mut payload);
                    (d.id.clone(), payload)
                })
                .collect();
            progress.moved += log::rewrite_payloads(&self.db, &rows, true).await? as i64;
            progress.after_dead_letter = last_id;
            log::save_pii_progress(&self.db, &progress).await?;
            if page.len() < PAGE as usize {
                break;
            }
        }
        if progress.moved > moved_before {
            match self.db.scrub(&["events", "dead_letters"]).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(
                    "after moving personal traits out of the log the WAL could not be truncated (readers kept it busy); the next checkpoints overwrite it"
                ),
                Err(e) => tracing::warn!(error = %e, "scrubbing the store after moving personal traits failed"),
            }
        }
        progress.finished_at = Some(self.clock.now_ms());
        log::save_pii_progress(&self.db, &progress).await?;
        Ok(progress)
    }

    /// Retention: anonymizes up to `limit` events received before `cutoff_ms` with ids after
    /// `after` (`""`: from the start; pass the previous [`log::Anonymized::last_id`] to skip
    /// what is done), pages of 500 in transactions that zero what they overwrite, with this
    /// node's personal-data policy (see [`log::anonymize_before`] for what stays); then the
    /// store is scrubbed (SQLite WAL checkpointed and truncated, PostgreSQL vacuumed) when
    /// anything changed. A second run over the same events changes nothing.
    pub async fn anonymize_before(
        &self,
        cutoff_ms: i64,
        after: &str,
        limit: u32,
    ) -> Result<log::Anonymized, EventsError> {
        const PAGE: u32 = 500;
        let mut total = log::Anonymized { rows: 0, last_id: None };
        let mut cursor = after.to_owned();
        let mut left = limit;
        while left > 0 {
            let page = log::anonymize_before(&self.db, cutoff_ms, &cursor, left.min(PAGE), &self.pii).await?;
            let Some(last) = page.last_id else { break };
            total.rows += page.rows;
            left = left.saturating_sub(PAGE);
            cursor = last.clone();
            total.last_id = Some(last);
        }
        if total.rows > 0 {
            self.scrub_after("anonymizing old events", &["events"]).await;
        }
        Ok(total)
    }

    /// Retention: deletes the dead letters received before `cutoff_ms` (zeroed, then the store
    /// scrubbed). Returns how many.
    pub async fn delete_dead_letters_before(&self, cutoff_ms: i64) -> Result<u64, EventsError> {
        let n = log::delete_dead_letters_before(&self.db, cutoff_ms).await?;
        if n > 0 {
            self.scrub_after("deleting old dead letters", &["dead_letters"]).await;
        }
        Ok(n)
    }

    async fn scrub_after(&self, what: &str, tables: &[&str]) {
        match self.db.scrub(tables).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                what,
                "the WAL could not be truncated (readers kept it busy); the next checkpoints overwrite it"
            ),
            Err(e) => tracing::warn!(what, error = %e, "scrubbing the store failed"),
        }
    }

    /// Replays a dead letter (optionally with a corrected message): validates it again and, if it
    /// now passes, stores it in the log. Returns whether it was stored now (false when it was
    /// replayed before, or the log already held its `messageId`).
    pub async fn replay(&self, id: &str, corrected: Option<&Value>) -> Result<bool, EventsError> {
        let dl = log::dead_letter(&self.db, id)
            .await?
            .ok_or_else(|| EventsError::NotFound(format!("no dead letter {id}")))?;
        if dl.replayed_at.is_some() {
            return Ok(false);
        }
        let mut raw = corrected.unwrap_or(&dl.payload).clone();
        // A message without its own id gets one derived from the dead letter, so replays of it
        // can never be stored twice.
        if let Value::Object(o) = &mut raw
            && o.get("messageId").is_none_or(|m| m.as_str().is_none_or(|s| s.is_empty()))
        {
            o.insert("messageId".into(), format!("dlq-{id}").into());
        }
        let received = parse_time(&dl.received_at).unwrap_or_else(|| self.clock.now_ms());
        let kind = raw.get("type").and_then(Value::as_str).and_then(Kind::parse);
        let m = normalize(&raw, kind, &BatchDefaults::default(), received)
            .map_err(|r| EventsError::StillInvalid(r.reason))?;
        let mut accepted =
            classify(m).map_err(|d| EventsError::StillInvalid(format!("{}: {}", d.reason, d.errors.join("; "))))?;
        let to_bus = self.to_bus(&dl.write_key_id, [&accepted.message]);
        let mut prepared = self.prepare_hooks(&dl.write_key_id, &[&accepted.message]).await;
        Self::before_store(&mut prepared).await?;
        self.pii.strip(&mut accepted.message.payload);
        let stored = self.writer.replay(id, &dl.write_key_id, accepted, to_bus, self.clock.now_ms()).await?;
        self.wrote_outbox(stored);
        if stored {
            Self::stored(prepared).await;
        }
        Ok(stored)
    }
}
