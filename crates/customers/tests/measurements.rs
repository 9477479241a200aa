//! Skin measurements, dermatologist assessments and consent carried in events' context, fed
//! from ingestion on both backends: readings reach the profile (latest and trend) only under the
//! `health_data` consent, assessments set conditions with source `dermatologist`, consent
//! context grants and withdraws (withdrawing `health_data` deletes health facts and
//! measurements), an older decision never overrides a newer one, a message counts once.

mod common;

use std::sync::Arc;

use common::*;
use dermis_core::clock::rfc3339;
use dermis_customers::Customers;
use dermis_customers::feed::{ConsentMapping, CustomersIngest, feed_events};
use dermis_customers::input::PutConsent;
use dermis_customers::measurements::FeedOutcome;
use dermis_customers::model::{FactSource, IngredientMatch, Metric, Purpose};
use dermis_events::Pseudonyms;
use dermis_events::ingest::Ingestor;
use dermis_events::message::{Kind, Message};
use dermis_store::Db;
use dermis_store::sqlx::{self, Row};
use serde_json::{Value, json};

const DAY: i64 = 24 * 60 * 60 * 1000;

fn ingestor(db: &Db, c: &Customers) -> Ingestor {
    Ingestor::new(db.clone(), 4, Pseudonyms::with_key(b"test"))
        .with_node("a")
        .with_hook(Arc::new(CustomersIngest::new(c.clone())))
}

async fn ingest(i: &Ingestor, messages: Vec<Value>) {
    let r = i.ingest_as("wk_1".into(), None, json!({ "batch": messages })).await.expect("ingested");
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
}

fn identify(id: &str, user: &str) -> Value {
    json!({"type": "identify", "messageId": id, "userId": user, "timestamp": rfc3339(NOW - 100 * DAY),
           "traits": {"skin_type": "dry"}})
}

fn measurement(id: &str, user: &str, at: i64, hydration: f64) -> Value {
    json!({"type": "track", "event": "Skin Measurement Recorded", "messageId": id, "userId": user,
           "timestamp": rfc3339(at),
           "properties": {"device_id": "scope-1", "device_model": "SkinScope S2",
               "hydration": {"value": hydration, "unit": "%"}, "tewl": {"value": 14.5, "unit": "g/m2/h"}}})
}

async fn grant(c: &Customers, user: &str, purpose: &str, granted: bool) {
    let consent =
        PutConsent { granted, text_version: "v1".into(), channel: Some("web".into()) }.parse(purpose).unwrap();
    c.set_consent(user, consent, &admin()).await.unwrap();
}

async fn stored_readings(db: &Db) -> Vec<String> {
    sqlx::query("SELECT reading FROM customer_measurements")
        .fetch_all(db.reader())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect()
}

async fn measurements_need_consent_and_reach_the_profile_with_a_trend(db: Db) {
    let c = customers(&db).await;
    let i = ingestor(&db, &c);
    ingest(&i, vec![identify("i1", "shop-mia"), measurement("m0", "shop-mia", NOW - 40 * DAY, 30.0)]).await;
    let mia = c.get("shop-mia").await.unwrap();
    assert!(mia.skin_profile.measurements.is_empty(), "no reading without the health_data consent");
    assert!(stored_readings(&db).await.is_empty(), "nothing of it stored");

    grant(&c, "shop-mia", "health_data", true).await;
    // A reading outside the 90-day window, then four in it: +2 % every 10 days.
    let mut batch = vec![measurement("m1", "shop-mia", NOW - 200 * DAY, 10.0)];
    for (k, days) in [30, 20, 10, 0].into_iter().enumerate() {
        batch.push(measurement(&format!("m{}", k + 2), "shop-mia", NOW - days * DAY, 40.0 + 2.0 * k as f64));
    }
    ingest(&i, batch).await;
    let mia = c.get("shop-mia").await.unwrap();
    let h = &mia.skin_profile.measurements[&Metric::Hydration];
    assert_eq!((h.latest.value, h.latest.unit.as_str()), (46.0, "%"));
    assert_eq!(h.latest.measured_at, rfc3339(NOW));
    assert_eq!(h.source, FactSource::Device);
    assert_eq!(h.device_model.as_deref(), Some("SkinScope S2"));
    assert_eq!((h.trend.per_30_days, h.trend.points, h.trend.window_days), (Some(6.0), 4, 90));
    let t = &mia.skin_profile.measurements[&Metric::Tewl];
    assert_eq!((t.latest.value, t.trend.per_30_days), (14.5, Some(0.0)));
    let json = serde_json::to_value(&mia).unwrap();
    assert_eq!(json["skin_profile"]["measurements"]["hydration"]["trend"]["per_30_days"], 6.0);
    // The export holds the whole series, the reading outside the window too.
    let export = c.export("shop-mia").await.unwrap();
    let hydration: Vec<f64> =
        export.measurements.iter().filter(|m| m.metric == Metric::Hydration).map(|m| m.value).collect();
    assert_eq!(hydration.len(), 5, "{:?}", export.measurements);
    assert!(hydration.contains(&10.0) && hydration.contains(&46.0));

    // Sealed at rest; each reading stored once however often its message comes.
    let sealed = stored_readings(&db).await;
    assert_eq!(sealed.len(), 10, "five messages, two metrics each");
    assert!(
        sealed
            .iter()
            .all(|s| serde_json::from_str::<Value>(s).is_err() && !s.contains("value") && !s.contains("SkinScope")),
        "{sealed:?}"
    );
    let again = feed_events(
        "wk_1",
        &message("m5", "shop-mia", measurement("m5", "shop-mia", NOW, 46.0)),
        &ConsentMapping::default(),
    );
    assert_eq!(again.len(), 1);
    assert_eq!(c.apply_feed(&again[0]).await.unwrap(), FeedOutcome::Duplicate);
    assert_eq!(stored_readings(&db).await.len(), 10);
    assert_eq!(c.measurements("shop-mia", 0).await.unwrap().len(), 10);

    // A reading for nobody known is not stored.
    let stranger = feed_events(
        "wk_1",
        &message("x1", "shop-nobody", measurement("x1", "shop-nobody", NOW, 40.0)),
        &ConsentMapping::default(),
    );
    assert_eq!(c.apply_feed(&stranger[0]).await.unwrap(), FeedOutcome::UnknownCustomer);

    // Withdrawing health_data deletes the series.
    grant(&c, "shop-mia", "health_data", false).await;
    assert!(c.get("shop-mia").await.unwrap().skin_profile.measurements.is_empty());
    assert!(stored_readings(&db).await.is_empty());

    // So does an erasure.
    grant(&c, "shop-mia", "health_data", true).await;
    ingest(&i, vec![measurement("m9", "shop-mia", NOW, 50.0)]).await;
    assert_eq!(stored_readings(&db).await.len(), 2);
    c.erase("shop-mia").await.unwrap();
    assert!(stored_readings(&db).await.is_empty());
}

/// A stored message as ingestion makes it (for feeding one by hand).
fn message(id: &str, user: &str, body: Value) -> Message {
    let kind = Kind::parse(body["type"].as_str().unwrap()).unwrap();
    let mut m =
        dermis_events::message::normalize(&body, Some(kind), &Default::default(), NOW).expect("a valid message");
    m.message_id = id.into();
    m.user_id = Some(user.into());
    m
}

fn assessment(id: &str, user: &str) -> Value {
    json!({"type": "track", "event": "Dermatologist Assessment Recorded", "messageId": id, "userId": user,
           "timestamp": rfc3339(NOW - DAY),
           "properties": {"clinic_id": "clinic-lyon-2", "dermatologist_id": "dr-martin", "conditions": ["rosacea"],
               "contraindicated_ingredients": ["retinol", "fragrance", "snake oil"], "notes": "no strong actives"}})
}

async fn an_assessment_event_sets_conditions_from_the_dermatologist_under_consent(db: Db) {
    let c = customers(&db).await;
    let i = ingestor(&db, &c);
    ingest(&i, vec![identify("i1", "shop-ada"), assessment("a1", "shop-ada")]).await;
    assert!(c.get("shop-ada").await.unwrap().skin_profile.health.is_empty(), "nothing without health_data");

    grant(&c, "shop-ada", "health_data", true).await;
    ingest(&i, vec![assessment("a2", "shop-ada")]).await;
    let ada = c.get("shop-ada").await.unwrap();
    let h = &ada.skin_profile.health;
    let conditions = h.conditions.as_ref().unwrap();
    assert_eq!(conditions.source, FactSource::Dermatologist);
    assert_eq!(serde_json::to_value(&conditions.value).unwrap(), json!(["rosacea"]));
    let ci = h.contraindicated_ingredients.as_ref().unwrap();
    assert_eq!(ci.source, FactSource::Dermatologist);
    let matches: Vec<(&str, IngredientMatch)> = ci.value.iter().map(|r| (r.name.as_str(), r.matched)).collect();
    assert_eq!(
        matches,
        [
            ("retinol", IngredientMatch::Ingredient),
            ("fragrance", IngredientMatch::Family),
            ("snake oil", IngredientMatch::Unknown)
        ],
        "known names resolved, the unknown one kept"
    );
    let note = &h.assessment.as_ref().unwrap().value;
    assert_eq!((note.clinic_id.as_str(), note.dermatologist_id.as_deref()), ("clinic-lyon-2", Some("dr-martin")));
    // The same message again changes nothing.
    let version = ada.version;
    let again =
        feed_events("wk_1", &message("a2", "shop-ada", assessment("a2", "shop-ada")), &ConsentMapping::default());
    assert_eq!(c.apply_feed(&again[0]).await.unwrap(), FeedOutcome::Duplicate);
    assert_eq!(c.get("shop-ada").await.unwrap().version, version);
}

fn with_context(id: &str, user: &str, at: i64, context: Value) -> Value {
    json!({"type": "track", "event": "Product Viewed", "messageId": id, "userId": user, "timestamp": rfc3339(at),
           "properties": {"product_id": "p1"}, "context": context})
}

async fn consent_in_event_context_grants_withdraws_and_respects_time(db: Db) {
    let c = customers(&db).await;
    let i = ingestor(&db, &c);
    ingest(&i, vec![identify("i1", "shop-lea")]).await;
    // Segment: categories mapped to purposes (Advertising maps to nothing).
    let segment = json!({"consent": {"categoryPreferences":
        {"Analytics": true, "Personalization": true, "Functional": true, "Health Data": true, "Advertising": false},
        "textVersion": "cmp-2026-11"}});
    ingest(&i, vec![with_context("s1", "shop-lea", NOW - 10 * 60_000, segment)]).await;
    let consents = c.consents("shop-lea").await.unwrap();
    for p in [Purpose::Analytics, Purpose::Personalization, Purpose::HealthData] {
        assert!(consents.granted(p), "{p:?}");
    }
    assert!(!consents.granted(Purpose::MarketingEmail));
    assert_eq!(consents.history.len(), 3, "one ledger row per purpose the event decided");
    let e = &consents.history[0];
    assert_eq!((e.channel.as_str(), e.actor.as_str(), e.actor_role.as_str()), ("event", "wk_1", "write_key"));
    assert_eq!(e.text_version, "cmp-2026-11");
    assert_eq!(e.recorded_at, rfc3339(NOW - 10 * 60_000), "the event's time");

    // Health facts exist; a RudderStack event denies health_data: they are deleted.
    ingest(&i, vec![assessment("a1", "shop-lea")]).await;
    assert!(c.get("shop-lea").await.unwrap().skin_profile.health.conditions.is_some());
    let rudder = json!({"consentManagement": {"provider": "custom", "allowedConsentIds": ["C0002"],
        "deniedConsentIds": ["health_data"]}});
    ingest(&i, vec![with_context("r1", "shop-lea", NOW - 60_000, rudder)]).await;
    let consents = c.consents("shop-lea").await.unwrap();
    assert!(!consents.granted(Purpose::HealthData));
    assert!(consents.granted(Purpose::Analytics));
    assert!(c.get("shop-lea").await.unwrap().skin_profile.health.is_empty(), "withdrawal deletes health facts");

    // An older event, arriving later, overrides nothing.
    let stale = json!({"consent": {"categoryPreferences": {"Health Data": true}}});
    ingest(&i, vec![with_context("s0", "shop-lea", NOW - 5 * 60_000, stale.clone())]).await;
    assert!(!c.consents("shop-lea").await.unwrap().granted(Purpose::HealthData), "the newer denial stands");
    // Nor does one older than a decision made through the API.
    grant(&c, "shop-lea", "marketing_email", true).await;
    let deny = json!({"consent": {"categoryPreferences": {"Marketing": false}}});
    ingest(&i, vec![with_context("s2", "shop-lea", NOW - 60_000, deny)]).await;
    assert!(c.consents("shop-lea").await.unwrap().granted(Purpose::MarketingEmail));
    // A newer one does; and counts once.
    let newer = with_context("s3", "shop-lea", NOW, stale);
    let before = c.consents("shop-lea").await.unwrap().history.len();
    ingest(&i, vec![newer.clone()]).await;
    let consents = c.consents("shop-lea").await.unwrap();
    assert!(consents.granted(Purpose::HealthData));
    assert_eq!(consents.history.len(), before + 1);
    let ev = feed_events("wk_1", &message("s3", "shop-lea", newer), &ConsentMapping::default());
    assert_eq!(c.apply_feed(&ev[0]).await.unwrap(), FeedOutcome::Duplicate);

    // A customer nobody knows gets no ledger.
    let unknown =
        with_context("u1", "shop-ghost", NOW, json!({"consent": {"categoryPreferences": {"Analytics": true}}}));
    let ev = feed_events("wk_1", &message("u1", "shop-ghost", unknown), &ConsentMapping::default());
    assert_eq!(c.apply_feed(&ev[0]).await.unwrap(), FeedOutcome::UnknownCustomer);
}

#[test]
fn the_consent_mapping_is_configurable() {
    let mapping: ConsentMapping =
        serde_json::from_value(json!({"segment": {"Ads": ["marketing_email", "marketing_sms"]}})).unwrap();
    let mapping = mapping.normalize();
    let m = message(
        "c1",
        "u",
        with_context("c1", "u", NOW, json!({"consent": {"categoryPreferences": {"ADS": true, "Analytics": true}}})),
    );
    let c = mapping.decisions(&m).unwrap();
    assert_eq!(c.decisions, vec![(Purpose::MarketingEmail, true), (Purpose::MarketingSms, true)]);
    assert_eq!(c.text_version, "unspecified");
    // RudderStack keeps its defaults; a denial wins over a grant of the same purpose.
    let m = message(
        "c2",
        "u",
        with_context(
            "c2",
            "u",
            NOW,
            json!({"consentManagement": {"allowedConsentIds": {"C0003": "Functional"},
            "deniedConsentIds": ["personalization"]}}),
        ),
    );
    assert_eq!(mapping.decisions(&m).unwrap().decisions, vec![(Purpose::Personalization, false)]);
}

dermis_store::backend_tests!(MIGRATIONS;
    measurements_need_consent_and_reach_the_profile_with_a_trend,
    an_assessment_event_sets_conditions_from_the_dermatologist_under_consent,
    consent_in_event_context_grants_withdraws_and_respects_time,
);

const WITH_BUS: &[&[dermis_store::Migration]] = &[
    dermis_store::MIGRATIONS,
    dermis_auth::MIGRATIONS,
    dermis_events::MIGRATIONS,
    dermis_bus::MIGRATIONS,
    dermis_customers::MIGRATIONS,
];

/// A node that did not ingest the messages applies from the bus what the log keeps: the consent
/// of Segment's consent event. A reading's values never reach the log (moved out before the
/// store, `dermis_events::pii`): ingested by a node without the customers hook they are lost;
/// ingested through the hook they are applied before the store, and the other node's consumer
/// finds them applied (counted once).
async fn another_node_applies_measurements_and_consent_from_the_bus(db: Db) {
    use dermis_bus::EventBus;
    use dermis_bus::projection::{Projection, Projections, Settings};
    use std::time::{Duration, Instant};

    let bus: Arc<dyn EventBus> = Arc::new(dermis_bus::embedded::EmbeddedBus::new(db.clone()));
    let a = customers(&db).await;
    let b = customers(&db).await;
    // The customer exists (made through node A's hook); node C ingests without a hook.
    ingest(&ingestor(&db, &a), vec![identify("i1", "shop-bea")]).await;
    let ingest_c = Ingestor::new(db.clone(), 4, Pseudonyms::with_key(b"test")).with_node("c");
    let outboxes: Vec<Arc<dyn dermis_bus::relay::OutboxSource>> =
        vec![Arc::new(dermis_events::relay::IngestedOutbox::new(ingest_c.clone()))];
    let relay = tokio::spawn(dermis_bus::relay::run(bus.clone(), outboxes, Duration::from_millis(20)));
    let consent = json!({"type": "track", "event": "Segment Consent Preference Updated", "messageId": "cp1",
        "userId": "shop-bea", "timestamp": rfc3339(NOW - DAY),
        "context": {"consent": {"categoryPreferences": {"Health Data": true}}}});
    ingest(&ingest_c, vec![consent, measurement("bm1", "shop-bea", NOW - 120_000, 51.0)]).await;
    assert!(!a.consents("shop-bea").await.unwrap().granted(Purpose::HealthData), "nobody applied it yet");

    let projection: Arc<dyn Projection> = Arc::new(CustomersIngest::new(b.clone()));
    let settings = Settings { node_id: "b".into(), lag_alert: 1000, lag_every: Duration::from_millis(50), batch: 100 };
    let running = Projections::start(bus.clone(), vec![projection], settings);
    let started = Instant::now();
    while !b.consents("shop-bea").await.unwrap().granted(Purpose::HealthData) {
        assert!(started.elapsed() < Duration::from_secs(20), "node B never applied the consent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stored_readings(&db).await.is_empty(), "the log copy of bm1 holds markers, not readings");

    // Through node A's hook: applied before the message is stored.
    ingest(&ingestor(&db, &a), vec![measurement("bm2", "shop-bea", NOW - 60_000, 52.0)]).await;
    assert_eq!(stored_readings(&db).await.len(), 2, "read-your-writes");
    let bea = b.get("shop-bea").await.unwrap();
    assert_eq!(bea.skin_profile.measurements[&Metric::Hydration].latest.value, 52.0);
    // Node B's consumer reads bm2 from the log (stripped) and finds it applied.
    tokio::time::sleep(Duration::from_millis(500)).await;
    relay.abort();
    running.stop().await;
    assert_eq!(stored_readings(&db).await.len(), 2, "counted once");
}

mod bus {
    use super::*;
    dermis_store::backend_tests!(WITH_BUS; another_node_applies_measurements_and_consent_from_the_bus);
}
