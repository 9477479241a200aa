//! [`CustomersIngest`]: the identity graph and the profile fed by the event stream. `identify`
//! (user id, anonymous id, device id; traits `email`, `phone`, `name` or first and last name,
//! `birthday`, `address` (Segment's `street`, `city`, `postalCode`, `state`, `country`),
//! `skin_type` and `allergies` (health: only under the `health_data` consent): facts with source
//! `self_declared`), `alias` (`previousId` → `userId`) and the
//! registered skin quiz (`Skin Quiz Completed`: skin type, concerns, and the health facts
//! sensitivities, allergies, pregnancy and breastfeeding, with source `quiz`, the latter only
//! under the `health_data` consent) are applied by [`Customers::apply_identity`].
//!
//! It is an [`IngestHook`] (the node that stores a message applies it before answering:
//! read-your-writes) and a [`Projection`] of `events.ingested` named `customers` (every node reads
//! the messages named on the bus from the log, `log::messages`, and applies them). The graph is
//! in the shared database and each message is recorded as applied in the transaction that applies
//! it, so the hook, this node's consumer and every other node's may all see it: it counts once.
//!
//! The event log does not keep personal traits nor the health properties of the quiz, measurement
//! and assessment events (`dermis_events::pii`): the hook is the only place they reach this
//! domain, so it applies identity events and then the feed's steps (measurements, assessments,
//! consents) before the messages are stored (`Prepared::before_store`; a store failure fails
//! the request, which the client retries), and a consumer reading a message from the log later
//! finds it applied already (the graph's and `customer_feed_applied`'s records, by message id).
//! A stripped property (a `{"$moved": ...}` marker) is never applied: the quiz's other answers
//! are, a measurement or assessment whose values were moved is skipped without counting it
//! unusable. A message carrying an identifier of an erased customer is not applied (see
//! [`crate::identity`]: suppressions).
//!
//! Beyond the graph ([`crate::measurements`], [`Customers::apply_feed`], after the identity
//! events of the same batch): `Skin Measurement Recorded` readings (a time series, under the
//! `health_data` consent; otherwise counted in `customers_measurements_skipped_total`),
//! `Dermatologist Assessment Recorded` (conditions and contraindicated ingredients, source
//! `dermatologist`, under `health_data`), and consent carried in an event's context, through a
//! [`ConsentMapping`]:
//! - Segment: `context.consent.categoryPreferences` (`{"Analytics": true, ...}`);
//! - RudderStack: `context.consentManagement` (`allowedConsentIds`, `deniedConsentIds`: arrays,
//!   or objects keyed by id).
//!
//! Category names and consent ids are compared lower-cased without spaces, `_` or `-`. Default
//! mapping (both sources): `analytics`, `performance`, OneTrust's `C0002` → `analytics`;
//! `personalization`, `functional`, OneTrust's `C0003` → `personalization`; `marketing`,
//! `email`, `email_marketing` → `marketing_email`; `sms`, `sms_marketing` → `marketing_sms`;
//! `health`, `health_data` → `health_data`; every purpose's own name → itself. `Advertising`
//! (ad cookies, OneTrust's `C0004` targeting) is not mapped: it is not consent to email. When
//! several categories of one event map to one purpose, a denial wins. The text version is
//! `context.consent.textVersion` (or `version`; RudderStack: `context.consentManagement
//! .textVersion`), else `unspecified`. The ingestion hook reads consent from every message;
//! the bus consumer (other nodes, and recovery when the hook failed) from the kinds it reads
//! anyway: `identify`, measurement and assessment events, and Segment's `Segment Consent
//! Preference Updated`. A decision is recorded only when it is newer than the latest one for
//! its purpose and changes it (or comes in a consent-change event).

use async_trait::async_trait;
use dermis_bus::Envelope;
use dermis_bus::projection::Projection;
use dermis_events::ingest::{IngestHook, Prepared};
use dermis_events::log;
use dermis_events::message::{Kind, Message};
use dermis_events::outbox::{Ingested, TOPIC};
use dermis_events::pii::PiiPolicy;
use dermis_events::schemas::normalize_name;
use dermis_store::Db;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::CustomersError;
use crate::identity::{APPLIED_KEPT_MS, Action, IdentityEvent, Traits};
use crate::input::{PutSkinProfile, RecordAssessment, parse_date_of_birth, parse_email, parse_phone};
use crate::measurements::{EventConsents, FeedAction, FeedEvent, parse_measurement};
use crate::model::{Address, IngredientRef, Purpose, SkinType};
use crate::service::Customers;

/// The registered quiz events whose answers become skin facts (`schemas/skin_quiz_completed.v1.json`).
pub const QUIZ_EVENTS: &[&str] = &["Skin Quiz Completed", "skin_quiz_completed"];

/// The registered measurement events (`schemas/skin_measurement_recorded.v1.json`).
pub const MEASUREMENT_EVENTS: &[&str] = &["Skin Measurement Recorded", "skin_measurement_recorded"];

/// The registered assessment events (`schemas/dermatologist_assessment_recorded.v1.json`).
pub const ASSESSMENT_EVENTS: &[&str] = &["Dermatologist Assessment Recorded", "dermatologist_assessment_recorded"];

/// Segment's consent-change event (sent by its consent management when preferences change).
pub const CONSENT_EVENTS: &[&str] = &["Segment Consent Preference Updated"];

fn is_event(m: &Message, names: &[&str]) -> bool {
    m.kind == Kind::Track
        && m.event.as_deref().is_some_and(|e| {
            let e = normalize_name(e);
            names.iter().any(|n| normalize_name(n) == e)
        })
}

fn key(raw: &str) -> String {
    raw.trim().to_lowercase().replace([' ', '_', '-'], "")
}

/// Which purposes consent categories (Segment) and consent ids (RudderStack) stand for. Keys
/// are compared lower-cased without spaces, `_` or `-`; see the module's documentation for the
/// defaults. Configured as `customers.consent_mapping` (`{"segment": {"Ads": ["marketing_email"]},
/// "rudderstack": {...}}`, replacing the defaults of that source).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ConsentMapping {
    /// Segment `categoryPreferences` names.
    pub segment: BTreeMap<String, Vec<Purpose>>,
    /// RudderStack consent ids.
    pub rudderstack: BTreeMap<String, Vec<Purpose>>,
}

impl Default for ConsentMapping {
    fn default() -> Self {
        let mut common: BTreeMap<String, Vec<Purpose>> = BTreeMap::new();
        for (k, p) in [
            ("analytics", Purpose::Analytics),
            ("performance", Purpose::Analytics),
            ("personalization", Purpose::Personalization),
            ("personalisation", Purpose::Personalization),
            ("functional", Purpose::Personalization),
            ("marketing", Purpose::MarketingEmail),
            ("email", Purpose::MarketingEmail),
            ("email_marketing", Purpose::MarketingEmail),
            ("sms", Purpose::MarketingSms),
            ("sms_marketing", Purpose::MarketingSms),
            ("health", Purpose::HealthData),
        ] {
            common.entry(key(k)).or_default().push(p);
        }
        for p in Purpose::ALL {
            common.entry(key(p.as_str())).or_default().push(*p);
        }
        let mut rudderstack = common.clone();
        rudderstack.insert(key("C0002"), vec![Purpose::Analytics]);
        rudderstack.insert(key("C0003"), vec![Purpose::Personalization]);
        Self { segment: common, rudderstack }
    }
}

impl ConsentMapping {
    fn normalized(map: &BTreeMap<String, Vec<Purpose>>) -> BTreeMap<String, Vec<Purpose>> {
        map.iter().map(|(k, v)| (key(k), v.clone())).collect()
    }

    /// The same mapping with its keys normalized (as configuration gives them).
    pub fn normalize(self) -> Self {
        Self { segment: Self::normalized(&self.segment), rudderstack: Self::normalized(&self.rudderstack) }
    }

    /// The consent decisions a message's context carries, mapped to purposes (a denial wins
    /// over a grant of the same purpose); `None` when it carries none that map.
    pub fn decisions(&self, m: &Message) -> Option<EventConsents> {
        let ctx = m.payload.get("context")?;
        let mut out: BTreeMap<Purpose, bool> = BTreeMap::new();
        let mut put = |purposes: &[Purpose], granted: bool| {
            for p in purposes {
                let slot = out.entry(*p).or_insert(granted);
                *slot = *slot && granted;
            }
        };
        let mut text_version = None;
        if let Some(consent) = ctx.get("consent") {
            if let Some(Value::Object(prefs)) = consent.get("categoryPreferences") {
                for (category, v) in prefs {
                    if let (Some(granted), Some(purposes)) = (v.as_bool(), self.segment.get(&key(category))) {
                        put(purposes, granted);
                    }
                }
            }
            text_version = text(consent, &["textVersion", "text_version", "version"]);
        }
        if let Some(cm) = ctx.get("consentManagement") {
            let ids = |v: Option<&Value>| -> Vec<String> {
                match v {
                    Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
                    Some(Value::Object(o)) => o.keys().cloned().collect(),
                    _ => Vec::new(),
                }
            };
            for (list, granted) in [("allowedConsentIds", true), ("deniedConsentIds", false)] {
                for id in ids(cm.get(list)) {
                    if let Some(purposes) = self.rudderstack.get(&key(&id)) {
                        put(purposes, granted);
                    }
                }
            }
            text_version = text_version.or_else(|| text(cm, &["textVersion", "text_version", "version"]));
        }
        if out.is_empty() {
            return None;
        }
        let text_version = text_version
            .filter(|t| t.chars().count() <= 50 && !t.chars().any(char::is_control))
            .unwrap_or("unspecified")
            .to_owned();
        Some(EventConsents {
            decisions: out.into_iter().collect(),
            text_version,
            explicit: is_event(m, CONSENT_EVENTS),
        })
    }
}

/// What the feed applies of a stored message beyond the identity graph: its consent context,
/// and a measurement or an assessment. A registered event that does not parse (it passed its
/// schema, so this is rare) is counted and skipped.
pub fn feed_events(write_key_id: &str, m: &Message, mapping: &ConsentMapping) -> Vec<FeedEvent> {
    if m.user_id.is_none() && m.anonymous_id.is_none() {
        return Vec::new();
    }
    let mut actions = Vec::new();
    if let Some(c) = mapping.decisions(m) {
        actions.push(FeedAction::Consent(c));
    }
    let props = m.payload.get("properties").unwrap_or(&Value::Null);
    // Moved out of the log (applied at ingestion, before the message was stored): nothing here.
    let moved = props.as_object().is_some_and(|p| p.values().any(PiiPolicy::is_moved));
    if moved && (is_event(m, MEASUREMENT_EVENTS) || is_event(m, ASSESSMENT_EVENTS)) {
        tracing::debug!(message_id = m.message_id, "health properties moved out of the log; applied at ingestion");
    } else if is_event(m, MEASUREMENT_EVENTS) {
        match parse_measurement(props) {
            Ok(n) => actions.push(FeedAction::Measurement(n)),
            Err(errors) => {
                metrics::counter!("customers_measurements_skipped_total", "reason" => "invalid").increment(1);
                tracing::warn!(message_id = m.message_id, ?errors, "an unusable skin measurement was skipped");
            }
        }
    } else if is_event(m, ASSESSMENT_EVENTS) {
        let known: serde_json::Map<String, Value> = RecordAssessment::MEMBERS
            .iter()
            .filter_map(|k| props.get(*k).filter(|v| !v.is_null()).map(|v| ((*k).to_owned(), v.clone())))
            .collect();
        let parsed =
            serde_json::from_value::<RecordAssessment>(Value::Object(known)).map_err(|e| e.to_string()).and_then(|a| {
                a.parse().map_err(|p| format!("{:?}", p.errors.iter().map(|e| &e.field).collect::<Vec<_>>()))
            });
        match parsed {
            Ok(changes) => actions.push(FeedAction::Assessment(changes)),
            Err(error) => {
                metrics::counter!("customers_feed_unusable_total", "event" => "assessment").increment(1);
                tracing::warn!(message_id = m.message_id, error, "an unusable dermatologist assessment was skipped");
            }
        }
    }
    actions
        .into_iter()
        .map(|action| FeedEvent {
            write_key_id: write_key_id.to_owned(),
            message_id: m.message_id.clone(),
            user_id: m.user_id.clone(),
            anonymous_id: m.anonymous_id.clone(),
            at_ms: m.timestamp_ms,
            action,
        })
        .collect()
}

/// Whether the bus consumer reads messages of this kind for the feed's steps.
fn feed_kind(kind: &str) -> bool {
    let track = |names: &[&str]| names.iter().any(|n| kind.strip_prefix("track:") == Some(normalize_name(n).as_str()));
    kind == "identify" || track(MEASUREMENT_EVENTS) || track(ASSESSMENT_EVENTS) || track(CONSENT_EVENTS)
}

fn text<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|k| v.get(*k).and_then(Value::as_str)).map(str::trim).filter(|s| !s.is_empty())
}

/// Segment's `address` trait (`street`, `city`, `postalCode`, `state`, `country` as an ISO
/// alpha-2 code) as a postal address; `None` when it is not a usable one.
fn address_trait(a: &Value) -> Option<Address> {
    let within =
        |s: &str, max: usize| (s.chars().count() <= max && !s.chars().any(char::is_control)).then(|| s.to_owned());
    let line1 = text(a, &["street", "line1"]).and_then(|s| within(s, 200))?;
    let city = text(a, &["city"]).and_then(|s| within(s, 100))?;
    let country = text(a, &["country"]).filter(|c| c.len() == 2 && c.chars().all(|c| c.is_ascii_alphabetic()))?;
    Some(Address {
        line1,
        line2: text(a, &["line2"]).and_then(|s| within(s, 200)),
        city,
        postal_code: text(a, &["postalCode", "postal_code", "zip"]).and_then(|s| within(s, 20)),
        region: text(a, &["state", "region"]).and_then(|s| within(s, 100)),
        country: country.to_ascii_uppercase(),
    })
}

/// An `allergies` trait (a list of names, or one comma-separated text) resolved as the API
/// resolves them; `None` when absent or unusable.
fn allergies_trait(v: Option<&Value>) -> Option<Vec<IngredientRef>> {
    let names: Vec<String> = match v? {
        Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Value::String(s) => s.split(',').map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()).collect(),
        _ => return None,
    };
    let put = PutSkinProfile { allergies: Some(Some(names)), ..Default::default() };
    match put.parse() {
        Ok(changes) => changes.allergies.flatten(),
        Err(_) => {
            metrics::counter!("customers_feed_unusable_total", "event" => "identify").increment(1);
            None
        }
    }
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
                date_of_birth: text(t, &["birthday", "date_of_birth", "dateOfBirth"])
                    .and_then(|d| parse_date_of_birth(d.get(..10).unwrap_or(d), m.received_at_ms).ok()),
                address: t.get("address").and_then(address_trait),
                allergies: allergies_trait(t.get("allergies")),
            };
            Action::Identify(traits)
        }
        Kind::Alias => Action::Alias { previous_id: text(p, &["previousId"])?.to_owned() },
        Kind::Track if m.event.as_deref().is_some_and(|e| QUIZ_EVENTS.contains(&e)) => {
            let props = p.get("properties").unwrap_or(&Value::Null);
            let mut body = serde_json::Map::new();
            body.insert("source".into(), json!("quiz"));
            for key in ["skin_type", "concerns", "sensitivities", "allergies", "pregnant", "breastfeeding"] {
                if let Some(v) = props.get(key).filter(|v| !v.is_null() && !PiiPolicy::is_moved(v)) {
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
    consent_mapping: Arc<ConsentMapping>,
}

impl CustomersIngest {
    /// Feeds `customers` (whose store holds the event log too).
    pub fn new(customers: Customers) -> Self {
        let db = customers.db().clone();
        Self { customers, db, consent_mapping: Arc::new(ConsentMapping::default()) }
    }

    /// The same feed, mapping consent categories and ids to purposes with `mapping`.
    pub fn with_consent_mapping(mut self, mapping: ConsentMapping) -> Self {
        self.consent_mapping = Arc::new(mapping.normalize());
        self
    }

    /// Applies feed events one by one, in order: a store failure is returned (the batch comes
    /// again; what was applied counts once), anything else is logged, counted and passed.
    async fn apply_feed(&self, events: &[FeedEvent]) -> Result<(), CustomersError> {
        for ev in events {
            match self.customers.apply_feed(ev).await {
                Ok(_) => {}
                Err(e @ CustomersError::Store(_)) => return Err(e),
                Err(e) => {
                    metrics::counter!("customers_feed_failed_total").increment(1);
                    tracing::warn!(error = %e, message_id = ev.message_id, step = ev.action.step(), "a feed event could not be applied; skipped");
                }
            }
        }
        Ok(())
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
    /// Measurements, assessments and consents: applied once the messages are stored.
    steps: Vec<FeedEvent>,
}

#[async_trait]
impl Prepared for Pending {
    /// The log keeps no personal trait nor health property (`dermis_events::pii`): the
    /// identity events and then the feed's steps (measurements, assessments, consents: after
    /// the identities of the same batch, which may create their customer) are applied here,
    /// before the messages are stored, so neither this node's consumer nor another node's can
    /// apply them from the log first (without their values; they then count for nothing). A
    /// store failure fails the request, which the client retries.
    async fn before_store(&mut self) -> Result<(), dermis_store::StoreError> {
        let events = std::mem::take(&mut self.events);
        let steps = std::mem::take(&mut self.steps);
        for result in [self.feed.apply_all(&events).await, self.feed.apply_feed(&steps).await] {
            match result {
                Ok(()) => {}
                Err(CustomersError::Store(e)) => return Err(e),
                Err(e) => tracing::warn!(error = %e, "applying the customers feed at ingestion failed"),
            }
        }
        Ok(())
    }

    /// Everything was applied before the messages were stored.
    async fn stored(self: Box<Self>) {}
}

#[async_trait]
impl IngestHook for CustomersIngest {
    async fn prepare(&self, write_key_id: &str, messages: &[&Message]) -> Box<dyn Prepared> {
        let events = messages.iter().filter_map(|m| identity_event(write_key_id, m)).collect();
        let steps = messages.iter().flat_map(|m| feed_events(write_key_id, m, &self.consent_mapping)).collect();
        Box::new(Pending { feed: self.clone(), events, steps })
    }

    /// Messages stored with their traits or health properties before the log stopped keeping
    /// them: those within the 8 days the graph and the feed remember what they applied are
    /// applied now if they were not yet (their values are about to leave the log); older ones
    /// were applied long ago (the bus keeps a week) or came before the graph, and applying them
    /// again could bring back a value the customer has changed since.
    async fn prepare_stored(&self, write_key_id: &str, messages: &[&Message]) -> Box<dyn Prepared> {
        let now = self.customers.now_ms();
        let events = messages
            .iter()
            .filter(|m| m.received_at_ms >= now - APPLIED_KEPT_MS)
            .filter_map(|m| identity_event(write_key_id, m))
            .collect();
        let steps = messages
            .iter()
            .filter(|m| m.received_at_ms >= now - APPLIED_KEPT_MS)
            .flat_map(|m| feed_events(write_key_id, m, &self.consent_mapping))
            .filter(|ev| !matches!(ev.action, FeedAction::Consent(_)))
            .collect();
        Box::new(Pending { feed: self.clone(), events, steps })
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
            if !ingested.has_any(|k| identity_kind(k) || feed_kind(k)) {
                continue;
            }
            let stored = log::messages(&self.db, &ingested.write_key_id, &ingested.messages).await?;
            let events: Vec<IdentityEvent> =
                stored.iter().filter_map(|l| identity_event(&l.write_key_id, &l.message)).collect();
            self.apply_all(&events).await?;
            let steps: Vec<FeedEvent> = stored
                .iter()
                .filter(|l| feed_kind(&dermis_events::outbox::kind_label(&l.message)))
                .flat_map(|l| feed_events(&l.write_key_id, &l.message, &self.consent_mapping))
                .collect();
            self.apply_feed(&steps).await?;
        }
        Ok(())
    }
}
