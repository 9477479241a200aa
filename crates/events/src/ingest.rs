//! A request in, events and dead letters out. Every message of a request ends in exactly one of
//! three places: the log (new), the log already (a duplicate `messageId`), or the dead letters
//! (with its reason, also in the answer).

use std::sync::Arc;
use std::time::Duration;

use dermis_core::clock::now_ms;
use dermis_store::Db;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Notify, Semaphore};
use utoipa::ToSchema;

use crate::EventsError;
use crate::log::{self, Accepted, Append, DeadLetter, LogWriter};
use crate::message::{BatchDefaults, Kind, Message, normalize, normalize_owned, parse_time, serialized_len};
use crate::outbox::Ingested;
use crate::schemas::{Check, SchemaRegistry};
use crate::write_keys::WriteKeys;
use dermis_features::{Action, FeatureEvent, FeatureStore, ProductDirectory, Pseudonyms};

/// Most messages in one batch.
pub const MAX_BATCH: usize = 2500;
/// Largest request body.
pub const MAX_REQUEST_BYTES: usize = 500 * 1024;

/// The ingestion service.
#[derive(Clone)]
pub struct Ingestor {
    db: Db,
    keys: WriteKeys,
    permits: Arc<Semaphore>,
    features: Arc<dyn FeatureStore>,
    directory: Option<Arc<dyn ProductDirectory>>,
    outbox_ready: Arc<Notify>,
    writer: LogWriter,
    pseudonyms: Pseudonyms,
}

impl std::fmt::Debug for Ingestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingestor").field("features", &self.features.name()).finish_non_exhaustive()
    }
}

/// The feature updates a stored message implies: views, add-to-carts and purchases of products,
/// for the customer's pseudonym (features never hold a customer id in clear).
pub fn feature_events(write_key_id: &str, m: &Message, pseudonyms: &Pseudonyms) -> Vec<FeatureEvent> {
    let (Kind::Track, Some(event)) = (m.kind, m.event.as_deref()) else { return Vec::new() };
    let action = match crate::schemas::normalize_name(event).as_str() {
        "product_viewed" => Action::View,
        "product_added" => Action::AddToCart,
        "order_completed" => Action::Purchase,
        _ => return Vec::new(),
    };
    let props = m.payload.get("properties").unwrap_or(&Value::Null);
    let products: Vec<&Value> = match action {
        Action::Purchase => {
            props.get("products").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default()
        }
        _ => vec![props],
    };
    let customer = pseudonyms.customer(m.partition_key());
    let text = |v: &Value, k: &str| {
        v.get(k).and_then(|x| x.as_str().map(str::to_owned).or_else(|| x.as_number().map(|n| n.to_string())))
    };
    products
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let product_id = text(p, "product_id")?;
            let price = p.get("price").and_then(Value::as_f64).unwrap_or(0.0);
            let quantity = p.get("quantity").and_then(Value::as_f64).unwrap_or(1.0);
            Some(FeatureEvent {
                id: format!("{write_key_id}:{}:{i}", m.message_id),
                customer_id: customer.clone(),
                product_id,
                action,
                brand: text(p, "brand"),
                category: text(p, "category"),
                routine_step: None,
                actives: Vec::new(),
                amount_minor: if action == Action::Purchase { (price * quantity * 100.0).round() as i64 } else { 0 },
                at_ms: m.timestamp_ms,
                received_at_ms: m.received_at_ms,
            })
        })
        .collect()
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
    /// 250 ms, then get a 429); features of customers under `pseudonyms`.
    pub fn new(db: Db, concurrency: usize, features: Arc<dyn FeatureStore>, pseudonyms: Pseudonyms) -> Self {
        // Compile the bundled JSON Schemas now (once per process), not in the first request:
        // that made a node's first event take about 170 ms.
        SchemaRegistry::bundled();
        Self {
            keys: WriteKeys::new(db.clone()),
            writer: LogWriter::new(db.clone()),
            db,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            features,
            directory: None,
            outbox_ready: Arc::new(Notify::new()),
            pseudonyms,
        }
    }

    /// Enriches feature updates from the catalog (routine step, actives, brand, category).
    pub fn with_directory(mut self, directory: Arc<dyn ProductDirectory>) -> Self {
        self.directory = Some(directory);
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

    /// Makes sure an `events.ingested` message from the bus names customers by pseudonym only:
    /// a node of the previous release, or a message written before the upgrade, named them in
    /// clear, and what is applied in clear could never be erased.
    pub fn pseudonymize(&self, ingested: &mut crate::outbox::Ingested) {
        for f in &mut ingested.features {
            self.pseudonyms.ensure(&mut f.customer_id);
        }
        for s in &mut ingested.erase {
            self.pseudonyms.ensure(s);
        }
    }

    /// Deletes outbox rows the relay has handed to the bus (see [`LogWriter::relayed`]).
    pub async fn relayed(&self, ids: Vec<String>) -> Result<(), EventsError> {
        Ok(self.writer.relayed(ids).await?)
    }

    /// Notified whenever ingestion wrote to the outbox, so the relay need not poll.
    pub fn outbox_ready(&self) -> Arc<Notify> {
        self.outbox_ready.clone()
    }

    /// The feature updates of stored messages, enriched from the catalog: what ingestion applies
    /// and hands to the bus, and what a restarting node replays from the log.
    pub async fn feature_updates<'a>(
        &self,
        messages: impl IntoIterator<Item = (&'a str, &'a Message)>,
    ) -> Vec<FeatureEvent> {
        let mut updates: Vec<FeatureEvent> = messages
            .into_iter()
            .flat_map(|(write_key_id, m)| feature_events(write_key_id, m, &self.pseudonyms))
            .collect();
        if let Some(dir) = &self.directory {
            let mut known = std::collections::HashMap::new();
            for u in &mut updates {
                if !known.contains_key(&u.product_id) {
                    let traits = dir.traits(&u.product_id).await;
                    known.insert(u.product_id.clone(), traits);
                }
                if let Some(Some(t)) = known.get(&u.product_id) {
                    u.enrich(t);
                }
            }
        }
        updates
    }

    /// Applies feature updates, all of them even when one fails; returns the first failure. At
    /// ingestion a failure is logged (the event is in the log and on the bus, whose consumer
    /// applies it again); the consumer does not acknowledge a batch that failed.
    pub async fn apply_features(&self, updates: &[FeatureEvent]) -> Result<(), dermis_features::FeatureError> {
        let mut first = None;
        for fe in updates {
            if let Err(e) = self.features.apply(fe).await {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Wakes the relay after a write that handed something to the bus through the outbox.
    fn wrote_outbox(&self, stored: bool) {
        if stored && !self.writer.publishes_in_log() {
            self.outbox_ready.notify_one();
        }
    }

    async fn apply_now(&self, updates: &[FeatureEvent]) {
        if let Err(e) = self.apply_features(updates).await {
            tracing::warn!(error = %e, "feature update failed; the bus consumer applies it again");
        }
    }

    /// The online feature store the ingested events update.
    pub fn features(&self) -> &Arc<dyn FeatureStore> {
        &self.features
    }

    /// A product's online features, by its Dermis id or the id an event used for it (they are
    /// kept under the Dermis id); `None` when the catalog does not know the product.
    pub async fn product_features(
        &self,
        reference: &str,
        now_ms: i64,
    ) -> Result<Option<dermis_features::ProductFeatures>, dermis_features::FeatureError> {
        let id = match &self.directory {
            Some(dir) => match dir.traits(reference).await {
                Some(t) => t.id,
                None => return Ok(None),
            },
            None => reference.to_owned(),
        };
        self.features.product(&id, now_ms).await.map(Some)
    }

    /// A customer's online features; `None` when the store holds nothing of them (never seen,
    /// everything older than the time-to-live, or erased).
    pub async fn customer_features(
        &self,
        customer_id: &str,
        now_ms: i64,
    ) -> Result<Option<dermis_features::CustomerFeatures>, dermis_features::FeatureError> {
        let f = self.features.customer(&self.pseudonyms.customer(customer_id), now_ms).await?;
        let seen = !(f.recent_views.is_empty() && f.recent_add_to_carts.is_empty() && f.recent_purchases.is_empty());
        Ok(seen.then_some(f))
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
        let received = now_ms();
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
        let features = self.feature_updates(accepted.iter().map(|a| (write_key_id.as_str(), &a.message))).await;
        // Only what other nodes must apply goes to the bus (identify, page ... have no features).
        let to_bus = (!features.is_empty()).then(|| Ingested {
            write_key_id: write_key_id.clone(),
            features: features.clone(),
            erase: Vec::new(),
            erased_at: 0,
        });
        let sent = accepted.len();
        let job = Append { write_key_id, accepted, dead, to_bus, received_at: received };
        let inserted = self.writer.append(job).await?;
        self.wrote_outbox(inserted > 0);
        // Read-your-writes on this node: features reflect the events before the answer leaves.
        // The store ignores an event id it has seen, so retries and duplicates count once.
        self.apply_now(&features).await;
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
        let erased = log::erase(&self.db, who, &now_ms, &self.pseudonyms).await?;
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
        for subject in &erased.subjects {
            if let Err(e) = self.features.forget_customer(&self.pseudonyms.customer(subject), now).await {
                tracing::warn!(error = %e, "forgetting erased features failed; the bus consumer forgets them again");
            }
        }
        Ok(erased)
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
        let received = parse_time(&dl.received_at).unwrap_or_else(now_ms);
        let kind = raw.get("type").and_then(Value::as_str).and_then(Kind::parse);
        let m = normalize(&raw, kind, &BatchDefaults::default(), received)
            .map_err(|r| EventsError::StillInvalid(r.reason))?;
        let accepted =
            classify(m).map_err(|d| EventsError::StillInvalid(format!("{}: {}", d.reason, d.errors.join("; "))))?;
        let features = self.feature_updates([(dl.write_key_id.as_str(), &accepted.message)]).await;
        let to_bus = (!features.is_empty()).then(|| Ingested {
            write_key_id: dl.write_key_id.clone(),
            features: features.clone(),
            erase: Vec::new(),
            erased_at: 0,
        });
        let stored = self.writer.replay(id, &dl.write_key_id, accepted, to_bus, now_ms()).await?;
        self.wrote_outbox(stored);
        if stored {
            self.apply_now(&features).await;
        }
        Ok(stored)
    }
}
