//! [`CustomersIngest`]: the identity graph and the profile fed by the event stream. `identify`
//! (user id, anonymous id, device id; traits `email`, `phone`, `name` or first and last name,
//! `skin_type`: facts with source `self_declared`), `alias` (`previousId` → `userId`) and the
//! registered skin quiz (`Skin Quiz Completed`: skin type, concerns, and the health facts
//! sensitivities and pregnancy, with source `quiz`, the latter only under the `health_data`
//! consent) are applied by [`Customers::apply_identity`].
//!
//! It is an [`IngestHook`] (the node that stores a message applies it before answering:
//! read-your-writes) and a [`Projection`] of `events.ingested` named `customers` (every node reads
//! the messages named on the bus from the log, `log::messages`, and applies them). The graph is
//! in the shared database and each message is recorded as applied in the transaction that applies
//! it, so the hook, this node's consumer and every other node's may all see it: it counts once.

use async_trait::async_trait;
use dermis_bus::Envelope;
use dermis_bus::projection::Projection;
use dermis_events::ingest::{IngestHook, Prepared};
use dermis_events::log;
use dermis_events::message::{Kind, Message};
use dermis_events::outbox::{Ingested, TOPIC};
use dermis_events::schemas::normalize_name;
use dermis_store::Db;
use serde_json::{Value, json};

use crate::CustomersError;
use crate::identity::{Action, IdentityEvent, Traits};
use crate::input::{PutSkinProfile, parse_email, parse_phone};
use crate::model::SkinType;
use crate::service::Customers;

/// The registered quiz events whose answers become skin facts (`schemas/skin_quiz_completed.v1.json`).
pub const QUIZ_EVENTS: &[&str] = &["Skin Quiz Completed", "skin_quiz_completed"];

fn text<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|k| v.get(*k).and_then(Value::as_str)).map(str::trim).filter(|s| !s.is_empty())
}

/// Whether messages of this kind (as [`dermis_events::outbox::kind_label`] names it) may
/// carry identities or profile facts.
pub fn identity_kind(kind: &str) -> bool {
    kind == "identify"
        || kind == "alias"
        || QUIZ_EVENTS.iter().any(|q| kind.strip_prefix("track:") == Some(normalize_name(q).as_str()))
}

/// What the identity graph takes of a stored message (`None`: nothing).
pub fn identity_event(write_key_id: &str, m: &Message) -> Option<IdentityEvent> {
    let p = &m.payload;
    let action = match m.kind {
        Kind::Identify => {
            let t = p.get("traits").unwrap_or(&Value::Null);
            let name = text(t, &["name"]).map(str::to_owned).or_else(|| {
                let first = text(t, &["first_name", "firstName"]);
                let last = text(t, &["last_name", "lastName"]);
                match (first, last) {
                    (None, None) => None,
                    (f, l) => Some([f, l].into_iter().flatten().collect::<Vec<_>>().join(" ")),
                }
            });
            let traits = Traits {
                email: text(t, &["email"]).and_then(|e| parse_email(e).ok()),
                phone: text(t, &["phone"]).and_then(|e| parse_phone(e).ok()),
                name: name.filter(|n| n.chars().count() <= 200),
                skin_type: text(t, &["skin_type", "skinType"]).and_then(|s| SkinType::parse(&s.to_lowercase())),
            };
            Action::Identify(traits)
        }
        Kind::Alias => Action::Alias { previous_id: text(p, &["previousId"])?.to_owned() },
        Kind::Track if m.event.as_deref().is_some_and(|e| QUIZ_EVENTS.contains(&e)) => {
            let props = p.get("properties").unwrap_or(&Value::Null);
            let mut body = serde_json::Map::new();
            body.insert("source".into(), json!("quiz"));
            for key in ["skin_type", "concerns", "sensitivities", "pregnant"] {
                if let Some(v) = props.get(key).filter(|v| !v.is_null()) {
                    body.insert(key.into(), v.clone());
                }
            }
            let put: PutSkinProfile = serde_json::from_value(Value::Object(body)).ok()?;
            match put.parse() {
                Ok(changes) => Action::Quiz(changes),
                Err(_) => {
                    metrics::counter!("customers_feed_unusable_total", "event" => "quiz").increment(1);
                    return None;
                }
            }
        }
        _ => return None,
    };
    let device = p.pointer("/context/device/id").and_then(Value::as_str).map(str::to_owned);
    if m.user_id.is_none() && m.anonymous_id.is_none() && device.is_none() {
        return None;
    }
    Some(IdentityEvent {
        write_key_id: write_key_id.to_owned(),
        message_id: m.message_id.clone(),
        user_id: m.user_id.clone(),
        anonymous_id: m.anonymous_id.clone(),
        device_id: device,
        action,
    })
}

/// The customers domain's view of the event stream: an ingestion hook and a projection.
#[derive(Debug, Clone)]
pub struct CustomersIngest {
    customers: Customers,
    db: Db,
}

impl CustomersIngest {
    /// Feeds `customers` (whose store holds the event log too).
    pub fn new(customers: Customers) -> Self {
        let db = customers.db().clone();
        Self { customers, db }
    }

    /// Applies events, all in one transaction; if that fails, one by one: a store failure is
    /// returned (the batch comes again), anything else is logged, counted and passed (it cannot
    /// get better by waiting).
    async fn apply_all(&self, events: &[IdentityEvent]) -> Result<(), CustomersError> {
        if events.is_empty() {
            return Ok(());
        }
        match self.customers.apply_identities(events).await {
            Ok(_) => return Ok(()),
            Err(e) => tracing::debug!(error = %e, "a batch of identity events failed; applying them one by one"),
        }
        for ev in events {
            match self.customers.apply_identity(ev).await {
                Ok(_) => {}
                Err(e @ CustomersError::Store(_)) => return Err(e),
                Err(e) => {
                    metrics::counter!("customers_feed_failed_total").increment(1);
                    tracing::warn!(error = %e, message_id = ev.message_id, "an identity event could not be applied; skipped");
                }
            }
        }
        Ok(())
    }
}

struct Pending {
    feed: CustomersIngest,
    events: Vec<IdentityEvent>,
}

#[async_trait]
impl Prepared for Pending {
    async fn stored(self: Box<Self>) {
        if let Err(e) = self.feed.apply_all(&self.events).await {
            tracing::warn!(error = %e, "applying identity events at ingestion failed; the bus consumer applies them");
        }
    }
}

#[async_trait]
impl IngestHook for CustomersIngest {
    async fn prepare(&self, write_key_id: &str, messages: &[&Message]) -> Box<dyn Prepared> {
        let events = messages.iter().filter_map(|m| identity_event(write_key_id, m)).collect();
        Box::new(Pending { feed: self.clone(), events })
    }

    /// The customers domain erases its own data (`Customers::erase`); an erasure of events
    /// leaves the identity graph as it is.
    async fn erased(&self, _pseudonyms: &[String], _erased_at: i64) {}
}

#[async_trait]
impl Projection for CustomersIngest {
    fn name(&self) -> &'static str {
        "customers"
    }

    fn topic(&self) -> &'static str {
        TOPIC
    }

    /// The graph is data of record in the database: nothing to rebuild.
    async fn rebuild(&self) -> anyhow::Result<u64> {
        Ok(0)
    }

    async fn apply(&self, batch: &[Envelope]) -> anyhow::Result<()> {
        for envelope in batch {
            let ingested = match serde_json::from_str::<Ingested>(&envelope.payload) {
                Ok(i) => i,
                Err(e) => {
                    metrics::counter!("bus_unreadable_total", "consumer" => "customers").increment(1);
                    tracing::error!(error = %e, id = envelope.id, "unreadable bus message skipped");
                    continue;
                }
            };
            if !ingested.has_any(identity_kind) {
                continue;
            }
            let stored = log::messages(&self.db, &ingested.write_key_id, &ingested.messages).await?;
            let events: Vec<IdentityEvent> =
                stored.iter().filter_map(|l| identity_event(&l.write_key_id, &l.message)).collect();
            self.apply_all(&events).await?;
        }
        Ok(())
    }
}
