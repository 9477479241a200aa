//! The deterministic identity graph on both backends: a shared tablet, a changed email, a phone
//! typo, merge then unmerge, idempotence, quiz facts under consent, and the feed from ingestion
//! (the hook on the ingesting node, the projection on another).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use dermis_bus::EventBus;
use dermis_bus::embedded::EmbeddedBus;
use dermis_bus::projection::{Projection, Projections, Settings};
use dermis_customers::crypto::LookupKind;
use dermis_customers::feed::{CustomersIngest, identity_event};
use dermis_customers::identity::{Action, Applied, IdentityEvent, Traits};
use dermis_customers::input::{FindCustomers, PutConsent};
use dermis_customers::model::{FactSource, SkinType};
use dermis_customers::{Customers, CustomersError};
use dermis_events::Pseudonyms;
use dermis_events::ingest::Ingestor;
use dermis_events::message::{Kind, Message};
use dermis_store::{Db, Migration};
use serde_json::json;

const WITH_BUS: &[&[Migration]] = &[
    dermis_store::MIGRATIONS,
    dermis_auth::MIGRATIONS,
    dermis_events::MIGRATIONS,
    dermis_bus::MIGRATIONS,
    dermis_customers::MIGRATIONS,
];

fn identify(message_id: &str, user: &str, traits: Traits) -> IdentityEvent {
    IdentityEvent {
        write_key_id: "wk_1".into(),
        message_id: message_id.into(),
        user_id: Some(user.into()),
        anonymous_id: None,
        device_id: None,
        action: Action::Identify(traits),
    }
}

fn email(e: &str) -> Traits {
    Traits { email: Some(e.into()), ..Default::default() }
}

fn phone(p: &str) -> Traits {
    Traits { phone: Some(p.into()), ..Default::default() }
}

async fn apply(c: &Customers, ev: IdentityEvent) -> Applied {
    c.apply_identity(&ev).await.expect("applied")
}

async fn by_email(c: &Customers, e: &str) -> Option<String> {
    let q = FindCustomers { email: Some(e.into()), ..Default::default() };
    c.find(&q.parse().unwrap()).await.unwrap().map(|c| c.id)
}

async fn by_phone(c: &Customers, p: &str) -> Option<String> {
    let q = FindCustomers { phone: Some(p.into()), ..Default::default() };
    c.find(&q.parse().unwrap()).await.unwrap().map(|c| c.id)
}

async fn a_shared_tablet_is_blocked_and_merges_nobody(db: Db) {
    let c = customers(&db).await;
    let tablet = "ipad-store-7-counter";
    let mut ids = Vec::new();
    for i in 1..=12 {
        let mut ev = identify(&format!("m{i}"), &format!("shop-{i}"), email(&format!("c{i}@example.org")));
        ev.device_id = Some(tablet.into());
        let done = apply(&c, ev).await;
        assert!(done.created, "customer {i} is new");
        assert!(done.merges.is_empty(), "customer {i} merged nobody");
        ids.push(done.customer_id.unwrap());
    }
    let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), 12, "twelve people, twelve customers");
    for (i, id) in ids.iter().enumerate() {
        let g = c.identity(id).await.unwrap();
        assert!(g.merges.is_empty(), "no merge recorded for customer {}", i + 1);
        assert_eq!(by_email(&c, &format!("c{}@example.org", i + 1)).await.as_ref(), Some(id));
        assert_eq!(c.get(&format!("shop-{}", i + 1)).await.unwrap().id, *id);
    }
    assert!(c.identifier_blocked(LookupKind::DeviceId, tablet).await.unwrap(), "seen with 11 customers: blocked");
    assert_eq!(c.find_identifier(LookupKind::DeviceId, tablet).await.unwrap(), None, "it finds nobody");
    let last = c.identity(&ids[11]).await.unwrap();
    assert!(last.identifiers.iter().all(|i| i.kind != LookupKind::DeviceId), "{last:?}");
    // A configured junk value never links anyone either.
    let mut ev = identify("m-junk", "shop-1", Traits::default());
    ev.anonymous_id = Some("undefined".into());
    assert_eq!(apply(&c, ev).await.blocked, 1);
    assert_eq!(c.find_identifier(LookupKind::AnonymousId, "undefined").await.unwrap(), None);
}

/// Decision: a customer has one email. A new email replaces the old one, and the old one then
/// finds nobody (an abandoned or shared address must not lead to this customer); another person
/// may take it without merging anyone.
async fn a_changed_email_replaces_the_old_one(db: Db) {
    let c = customers(&db).await;
    let ana = apply(&c, identify("m1", "shop-ana", email("ana@old.example"))).await.customer_id.unwrap();
    assert_eq!(by_email(&c, "ana@old.example").await, Some(ana.clone()));
    let done = apply(&c, identify("m2", "shop-ana", email("Ana@New.example"))).await;
    assert_eq!(done.customer_id.as_ref(), Some(&ana));
    assert!(done.merges.is_empty());
    assert_eq!(by_email(&c, "ana@new.example").await, Some(ana.clone()), "the new email finds her");
    assert_eq!(by_email(&c, "ana@old.example").await, None, "the old one finds nobody");
    assert_eq!(c.get(&ana).await.unwrap().contact.email.as_deref(), Some("Ana@New.example"));
    let emails = c.identity(&ana).await.unwrap().identifiers.iter().filter(|i| i.kind == LookupKind::Email).count();
    assert_eq!(emails, 1);
    // Someone else takes the old address: linked to them, nobody merged.
    let bo = apply(&c, identify("m3", "shop-bo", email("ana@old.example"))).await;
    assert!(bo.merges.is_empty());
    assert_eq!(by_email(&c, "ana@old.example").await, bo.customer_id);
    assert_ne!(bo.customer_id.as_ref(), Some(&ana));
}

async fn a_phone_typo_does_not_merge_two_customers(db: Db) {
    let c = customers(&db).await;
    let ana = apply(&c, identify("m1", "shop-ana", phone("+33612345678"))).await.customer_id.unwrap();
    let bo = apply(&c, identify("m2", "shop-bo", phone("+33612345679"))).await.customer_id.unwrap();
    // Bo's form sends Ana's number by mistake (one digit off).
    let done = apply(&c, identify("m3", "shop-bo", phone("+33 6 12 34 56 78"))).await;
    assert!(done.merges.is_empty(), "two user ids are two people");
    assert_eq!(done.conflicts, 1);
    assert_eq!(by_phone(&c, "+33612345678").await, Some(ana.clone()), "the number stays Ana's");
    assert_eq!(by_phone(&c, "+33612345679").await, Some(bo.clone()));
    assert_eq!(c.get(&bo).await.unwrap().contact.phone.as_deref(), Some("+33612345679"), "Bo's profile unchanged");
    assert_eq!(c.get("shop-ana").await.unwrap().id, ana);
    assert_eq!(c.get("shop-bo").await.unwrap().id, bo);
}

async fn merge_then_unmerge_restores_both_profiles_and_identifiers(db: Db) {
    let c = customers(&db).await;
    // Ada, created at the counter (no user id, no name); Bea, known to the web shop.
    let ada = c
        .create(
            None,
            create(json!({"email": "ada@example.org", "phone": "+442079460958"})).parse(NOW).unwrap(),
            &admin(),
        )
        .await
        .unwrap()
        .value
        .id;
    let mut ev = identify(
        "m1",
        "shop-bea",
        Traits {
            email: Some("bea@example.org".into()),
            name: Some("Bea Bell".into()),
            skin_type: Some(SkinType::Oily),
            ..Default::default()
        },
    );
    ev.anonymous_id = Some("anon-bea".into());
    let bea = apply(&c, ev).await.customer_id.unwrap();
    let bea_before = c.get(&bea).await.unwrap();
    assert_eq!(bea_before.skin_profile.skin.skin_type.as_ref().unwrap().source, FactSource::SelfDeclared);

    assert!(matches!(c.merge(&ada, &ada, "adm-1").await, Err(CustomersError::Conflict(_))));
    assert!(matches!(c.merge(&ada, "shop-nobody", "adm-1").await, Err(CustomersError::NotFound(_))));
    let merge = c.merge(&ada, "shop-bea", "adm-1").await.unwrap();
    assert_eq!((merge.winner.as_str(), merge.loser.as_str()), (ada.as_str(), bea.as_str()));
    assert_eq!(merge.identifiers.len(), 3, "user id, anonymous id, email: {merge:?}");
    let merged = c.get(&bea).await.unwrap();
    assert_eq!(merged.id, ada, "Bea answers as Ada");
    assert_eq!(c.get("shop-bea").await.unwrap().id, ada);
    assert_eq!(merged.contact.name.as_deref(), Some("Bea Bell"), "empty fields filled");
    assert_eq!(merged.contact.email.as_deref(), Some("ada@example.org"), "a held field is kept");
    assert_eq!(merged.skin_profile.skin.skin_type.as_ref().map(|f| f.value), Some(SkinType::Oily));
    assert_eq!(by_email(&c, "bea@example.org").await, Some(ada.clone()));
    assert_eq!(c.find_identifier(LookupKind::AnonymousId, "anon-bea").await.unwrap(), Some(ada.clone()));
    assert!(matches!(c.merge(&ada, &bea, "adm-1").await, Err(CustomersError::Conflict(_))), "merged already");

    let undone = c.unmerge(&merge.id).await.unwrap();
    assert!(undone.unmerged_at.is_some());
    let bea_after = c.get(&bea).await.unwrap();
    assert_eq!(bea_after.id, bea);
    assert_eq!(bea_after.contact, bea_before.contact, "Bea's profile is hers again");
    assert_eq!(bea_after.skin_profile, bea_before.skin_profile);
    let ada_after = c.get(&ada).await.unwrap();
    assert_eq!(ada_after.contact.name, None, "what the merge filled is gone from Ada");
    assert_eq!(ada_after.skin_profile.skin.skin_type, None);
    assert_eq!(ada_after.contact.email.as_deref(), Some("ada@example.org"));
    assert_eq!(c.get("shop-bea").await.unwrap().id, bea, "events by Bea's user id are Bea's");
    assert_eq!(c.find_identifier(LookupKind::AnonymousId, "anon-bea").await.unwrap(), Some(bea.clone()));
    assert_eq!(by_email(&c, "bea@example.org").await, Some(bea.clone()));
    assert_eq!(by_email(&c, "ada@example.org").await, Some(ada.clone()));
    assert_eq!(by_phone(&c, "+442079460958").await, Some(ada.clone()));
    assert!(matches!(c.unmerge(&merge.id).await, Err(CustomersError::NotFound(_))), "undone once");
    assert!(matches!(c.unmerge("mrg_nothing").await, Err(CustomersError::NotFound(_))));
    assert_eq!(c.identity(&bea).await.unwrap().merges.len(), 1);

    // An identify that links an email held by a customer without a user id merges them; that
    // merge is undone the same way.
    let cleo = apply(&c, identify("m2", "shop-cleo", Traits::default())).await.customer_id.unwrap();
    let done = apply(&c, identify("m3", "shop-cleo", email("ada@example.org"))).await;
    assert_eq!(done.merges.len(), 1, "Ada (no user id) is Cleo");
    assert_eq!(by_email(&c, "ada@example.org").await, Some(cleo.clone()));
    assert_eq!(c.get(&ada).await.unwrap().id, cleo);
    c.unmerge(&done.merges[0]).await.unwrap();
    assert_eq!(by_email(&c, "ada@example.org").await, Some(ada.clone()));
    assert_eq!(c.get(&ada).await.unwrap().id, ada);
}

async fn alias_links_and_merges_and_a_message_counts_once(db: Db) {
    let c = customers(&db).await;
    // An identify with an anonymous id links it to the user id.s customer.
    let mut first = identify("m1", "shop-old", Traits::default());
    first.anonymous_id = Some("anon-1".into());
    let old = apply(&c, first.clone()).await.customer_id.unwrap();
    let again = apply(&c, first).await;
    assert!(again.duplicate, "the same message applied twice changes nothing");
    assert_eq!(c.get(&old).await.unwrap().version, 1);
    let new = apply(&c, identify("m2", "shop-new", Traits::default())).await.customer_id.unwrap();
    let alias = IdentityEvent {
        write_key_id: "wk_1".into(),
        message_id: "m3".into(),
        user_id: Some("shop-new".into()),
        anonymous_id: None,
        device_id: None,
        action: Action::Alias { previous_id: "shop-old".into() },
    };
    let done = apply(&c, alias).await;
    assert_eq!(done.merges.len(), 1, "alias says they are one person");
    assert_eq!(c.get("shop-old").await.unwrap().id, new);
    assert_eq!(c.find_identifier(LookupKind::AnonymousId, "anon-1").await.unwrap(), Some(new.clone()));
    // An alias from an unknown anonymous id links it.
    let alias = IdentityEvent {
        write_key_id: "wk_1".into(),
        message_id: "m4".into(),
        user_id: Some("shop-new".into()),
        anonymous_id: None,
        device_id: None,
        action: Action::Alias { previous_id: "anon-2".into() },
    };
    assert!(apply(&c, alias).await.merges.is_empty());
    assert_eq!(c.find_identifier(LookupKind::AnonymousId, "anon-2").await.unwrap(), Some(new.clone()));
    c.unmerge(&done.merges[0]).await.unwrap();
    assert_eq!(c.get("shop-old").await.unwrap().id, old);

    // A batch, in one transaction: a new user id twice (one customer), and a repeated message.
    let batch = [
        identify("b1", "shop-batch", email("batch@example.org")),
        identify("b2", "shop-batch", phone("+33700000001")),
        identify("b1", "shop-batch", email("batch@example.org")),
    ];
    let done = c.apply_identities(&batch).await.unwrap();
    assert!(done[0].created && !done[1].created && done[2].duplicate, "{done:?}");
    assert_eq!(done[0].customer_id, done[1].customer_id);
    assert_eq!(by_phone(&c, "+33700000001").await, done[0].customer_id);
    assert_eq!(by_email(&c, "batch@example.org").await, done[0].customer_id);
}

fn message(kind: Kind, event: Option<&str>, user: &str, payload: serde_json::Value) -> Message {
    Message {
        message_id: "q1".into(),
        kind,
        event: event.map(str::to_owned),
        user_id: Some(user.into()),
        anonymous_id: None,
        timestamp_ms: NOW,
        received_at_ms: NOW,
        payload,
    }
}

async fn quiz_health_answers_need_the_health_data_consent(db: Db) {
    let c = customers(&db).await;
    let props = json!({"properties": {"quiz_id": "quiz_v3", "skin_type": "combination", "concerns": ["acne"],
        "sensitivities": ["fragrance"], "pregnant": true}});
    let quiz = |id: &str| {
        let mut m = message(Kind::Track, Some("Skin Quiz Completed"), "shop-quinn", props.clone());
        m.message_id = id.into();
        identity_event("wk_1", &m).expect("a quiz is an identity event")
    };
    let done = apply(&c, quiz("q1")).await;
    assert_eq!(done.health_skipped, 2, "sensitivities and pregnancy skipped");
    let quinn = c.get("shop-quinn").await.unwrap();
    let skin = &quinn.skin_profile.skin;
    assert_eq!(skin.skin_type.as_ref().map(|f| (f.value, f.source)), Some((SkinType::Combination, FactSource::Quiz)));
    assert_eq!(skin.concerns.as_ref().map(|f| f.value.clone()), Some(vec!["acne".to_owned()]));
    assert!(quinn.skin_profile.health.is_empty(), "no health fact without consent");

    let consent = PutConsent { granted: true, text_version: "health-v2".into(), channel: Some("web".into()) }
        .parse("health_data")
        .unwrap();
    c.set_consent("shop-quinn", consent, &admin()).await.unwrap();
    assert_eq!(apply(&c, quiz("q2")).await.health_skipped, 0);
    let health = c.get("shop-quinn").await.unwrap().skin_profile.health;
    assert_eq!(health.pregnant.as_ref().map(|f| (f.value, f.source)), Some((true, FactSource::Quiz)));
    assert_eq!(health.sensitivities.as_ref().unwrap().value[0].id.as_deref(), Some("fragrance"));

    // An identify's traits, as ingestion stores them.
    let m = message(
        Kind::Identify,
        None,
        "shop-quinn",
        json!({"traits": {"firstName": "Quinn", "lastName": "Q", "email": "Quinn@Example.org", "skin_type": "oily"},
               "context": {"device": {"id": "phone-9"}}}),
    );
    let mut ev = identity_event("wk_1", &m).unwrap();
    ev.message_id = "i1".into();
    assert_eq!(ev.device_id.as_deref(), Some("phone-9"));
    apply(&c, ev).await;
    let q = c.get("shop-quinn").await.unwrap();
    assert_eq!(q.contact.name.as_deref(), Some("Quinn Q"));
    assert_eq!(by_email(&c, "quinn@example.org").await, Some(q.id.clone()));
    assert_eq!(
        q.skin_profile.skin.skin_type.as_ref().map(|f| (f.value, f.source)),
        Some((SkinType::Oily, FactSource::SelfDeclared))
    );
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < Duration::from_secs(10), "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn identify_json(message_id: &str, user: &str, email: &str) -> serde_json::Value {
    json!({"batch": [{"type": "identify", "userId": user, "messageId": message_id, "anonymousId": format!("anon-{user}"),
           "traits": {"email": email, "name": "Someone"}}]})
}

/// An ingested `identify` reaches the profile on the node that stored it before ingestion
/// answers (the hook), and its identifiers through the bus on a node that did not (the
/// projection: the log it reads holds no trait).
async fn an_ingested_identify_reaches_the_profile_by_hook_and_by_projection(db: Db) {
    let bus: Arc<dyn EventBus> = Arc::new(EmbeddedBus::new(db.clone()));
    let pseudonyms = Pseudonyms::with_key(b"test");
    // Node A ingests with the hook; node C ingests without one (its message reaches the profile
    // only through node B's consumer).
    let a = customers(&db).await;
    let b = customers(&db).await;
    let ingest_a = Ingestor::new(db.clone(), 4, pseudonyms.clone())
        .with_node("a")
        .with_hook(Arc::new(CustomersIngest::new(a.clone())));
    let ingest_c = Ingestor::new(db.clone(), 4, pseudonyms.clone()).with_node("c");
    let outboxes: Vec<Arc<dyn dermis_bus::relay::OutboxSource>> = vec![
        Arc::new(dermis_events::relay::IngestedOutbox::new(ingest_a.clone())),
        Arc::new(dermis_events::relay::IngestedOutbox::new(ingest_c.clone())),
    ];
    let relay = tokio::spawn(dermis_bus::relay::run(bus.clone(), outboxes, Duration::from_millis(20)));

    let r = ingest_a.ingest_as("wk_1".into(), None, identify_json("m1", "shop-ana", "Ana@Example.org")).await.unwrap();
    assert_eq!(r.accepted, 1);
    let ana = by_email(&a, "ana@example.org").await.expect("read-your-writes on the ingesting node");
    assert_eq!(a.get("shop-ana").await.unwrap().id, ana);
    let version = a.get(&ana).await.unwrap().version;

    let r = ingest_c.ingest_as("wk_1".into(), None, identify_json("m2", "shop-bo", "bo@example.org")).await.unwrap();
    assert_eq!(r.accepted, 1);
    assert_eq!(by_email(&b, "bo@example.org").await, None, "nobody applied it yet");

    let projection: Arc<dyn Projection> = Arc::new(CustomersIngest::new(b.clone()));
    assert_eq!(projection.name(), "customers");
    let settings = Settings { node_id: "b".into(), lag_alert: 1000, lag_every: Duration::from_millis(50), batch: 100 };
    let running = Projections::start(bus.clone(), vec![projection], settings);
    eventually("node B never applied Bo's identify", async || b.get("shop-bo").await.is_ok()).await;
    let bo = b.get("shop-bo").await.unwrap();
    assert_eq!(b.find_identifier(LookupKind::AnonymousId, "anon-shop-bo").await.unwrap(), Some(bo.id.clone()));
    // The log keeps no personal trait (`dermis_events::pii`): a node without the customers hook
    // stores the link, never the email, which only that hook could have taken.
    assert_eq!(bo.contact.email, None);
    assert_eq!(by_email(&b, "bo@example.org").await, None);
    eventually("node B's consumer never caught up", async || {
        bus.lag("customers-b", dermis_events::outbox::TOPIC).await.unwrap() == 0
    })
    .await;
    assert_eq!(a.get(&ana).await.unwrap().version, version, "Ana's message, seen again on the bus, counted once");
    relay.abort();
    running.stop().await;
}

dermis_store::backend_tests!(MIGRATIONS;
    a_shared_tablet_is_blocked_and_merges_nobody,
    a_changed_email_replaces_the_old_one,
    a_phone_typo_does_not_merge_two_customers,
    merge_then_unmerge_restores_both_profiles_and_identifiers,
    alias_links_and_merges_and_a_message_counts_once,
    quiz_health_answers_need_the_health_data_consent,
);

mod ingestion {
    use super::*;
    dermis_store::backend_tests!(WITH_BUS; an_ingested_identify_reaches_the_profile_by_hook_and_by_projection);
}
