//! The customers service on both backends: profiles, lookups, consent, encryption at rest,
//! rotation, erasure, the outbox and the profile projection.

mod common;

use std::sync::Arc;

use common::*;
use dermis_bus::Envelope;
use dermis_bus::projection::Projection;
use dermis_bus::relay::OutboxSource;
use dermis_core::IdempotencyKey;
use dermis_customers::crypto::{Keyring, LookupKind};
use dermis_customers::input::{FindCustomers, PutConsent, UpdateCustomer};
use dermis_customers::model::{IngredientMatch, Purpose, SkinType};
use dermis_customers::privacy::{ErasureState, EventsData, PersonalDataSource};
use dermis_customers::projection::ProfileProjection;
use dermis_customers::relay::CustomersOutbox;
use dermis_customers::service::{Actor, Idempotent};
use dermis_customers::{Customers, CustomersError, store};
use dermis_events::ingest::Ingestor;
use dermis_events::message::Kind;
use dermis_store::Db;
use serde_json::json;

fn ada() -> serde_json::Value {
    json!({
        "name": "Ada Lovelace",
        "email": "Ada.Lovelace@Example.com",
        "phone": "+44 20 7946 0958",
        "date_of_birth": "1990-12-10",
        "address": {"line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "gb"},
        "loyalty": {"number": "LOY-1815", "tier": "gold", "points": 120},
        "external_ids": {"pos": "R-1234"},
        "user_id": "shop-ada",
    })
}

async fn new_customer(c: &Customers, body: serde_json::Value) -> Result<dermis_customers::Customer, CustomersError> {
    let new = create(body).parse(NOW).expect("valid");
    c.create(None, new, &admin()).await.map(|x| x.value)
}

fn consent(granted: bool) -> dermis_customers::input::NewConsent {
    PutConsent { granted, text_version: "health-v2".into(), channel: Some("web".into()) }.parse("health_data").unwrap()
}

async fn creates_and_reads_back_by_id_and_user_id(db: Db) {
    let c = customers(&db).await;
    let made = new_customer(&c, ada()).await.unwrap();
    assert!(made.id.starts_with("cus_"));
    assert_eq!(made.version, 1);
    assert_eq!(made.contact.phone.as_deref(), Some("+442079460958"));
    assert_eq!(made.contact.address.as_ref().unwrap().country, "GB");
    let by_id = c.get(&made.id).await.unwrap();
    assert_eq!(by_id, made);
    let by_user = c.get("shop-ada").await.unwrap();
    assert_eq!(by_user.id, made.id);
    assert!(matches!(c.get("shop-nobody").await, Err(CustomersError::NotFound(_))));
    assert!(matches!(c.get("cus_01jdxxxxxxxxxxxxxxxxxxxxxx").await, Err(CustomersError::NotFound(_))));
    // The outbox says what changed, never who.
    let events = store::outbox(db.reader(), 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "customers.profile.changed");
    let payload: serde_json::Value = serde_json::from_str(&events[0].payload).unwrap();
    assert_eq!(payload, json!({"customer_id": made.id, "version": 1}));
}

async fn lookups_ignore_case_and_go_through_keyed_hashes(db: Db) {
    let c = customers(&db).await;
    let made = new_customer(&c, ada()).await.unwrap();
    for q in [
        FindCustomers { email: Some("  ADA.lovelace@example.COM ".into()), ..Default::default() },
        FindCustomers { phone: Some("+442079460958".into()), ..Default::default() },
        FindCustomers { loyalty_number: Some("LOY-1815".into()), ..Default::default() },
        FindCustomers { user_id: Some("shop-ada".into()), ..Default::default() },
    ] {
        let found = c.find(&q.parse().unwrap()).await.unwrap();
        assert_eq!(found.map(|f| f.id), Some(made.id.clone()), "{q:?}");
    }
    let none = FindCustomers { email: Some("grace@example.com".into()), ..Default::default() };
    assert!(c.find(&none.parse().unwrap()).await.unwrap().is_none());
    // What is stored is the keyed hash, not the address.
    let hash = c.lookup_hash(LookupKind::Email, "ada.lovelace@example.com");
    assert_eq!(store::find_lookup(db.reader(), LookupKind::Email, &hash).await.unwrap(), Some(made.id));
    // A hex digest can hold "ada" by chance; what must never be there is the address itself.
    assert!(!hash.contains("lovelace") && !hash.contains('@'), "{hash}");
    assert_ne!(hash, c.lookup_hash(LookupKind::Email, "grace@example.com"));
}

async fn an_identifier_of_another_customer_is_a_conflict_and_stores_nothing(db: Db) {
    let c = customers(&db).await;
    let first = new_customer(&c, ada()).await.unwrap();
    let mut twin = ada();
    twin["email"] = json!("ADA.LOVELACE@example.com");
    twin["user_id"] = json!("shop-other");
    twin["phone"] = json!(null);
    twin["loyalty"] = json!(null);
    let e = new_customer(&c, twin).await.unwrap_err();
    assert!(matches!(e, CustomersError::Duplicate { field: "email" }), "{e:?}");
    // The loser left nothing behind: its user id is free, the email still finds the first.
    assert!(matches!(c.get("shop-other").await, Err(CustomersError::NotFound(_))));
    assert_eq!(store::list_customers(db.reader(), "", 10).await.unwrap().len(), 1);
    let q = FindCustomers { email: Some("ada.lovelace@example.com".into()), ..Default::default() };
    assert_eq!(c.find(&q.parse().unwrap()).await.unwrap().unwrap().id, first.id);
}

async fn a_create_retried_with_its_idempotency_key_replays(db: Db) {
    let c = customers(&db).await;
    let key = IdempotencyKey::parse("signup-1").unwrap();
    let idem = |hash: &str| {
        Some(Idempotent { scope: "customers.create:adm-1".into(), key: key.clone(), request_hash: hash.into() })
    };
    let first = c.create(idem("h1"), create(ada()).parse(NOW).unwrap(), &admin()).await.unwrap();
    assert!(!first.replayed);
    let again = c.create(idem("h1"), create(ada()).parse(NOW).unwrap(), &admin()).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.value.id, first.value.id);
    let other = c.create(idem("h2"), create(ada()).parse(NOW).unwrap(), &admin()).await;
    assert!(matches!(other, Err(CustomersError::IdempotencyKeyReused)));
    assert_eq!(store::list_customers(db.reader(), "", 10).await.unwrap().len(), 1);
}

async fn health_facts_without_consent_are_refused_and_nothing_is_stored(db: Db) {
    let c = customers(&db).await;
    let made = new_customer(&c, ada()).await.unwrap();
    let before = store::get_customer(db.reader(), &made.id).await.unwrap().unwrap();
    let e = c
        .put_skin_profile(&made.id, skin(json!({"skin_type": "dry", "allergies": ["limonene"]})).parse().unwrap(), None)
        .await
        .unwrap_err();
    assert!(matches!(e, CustomersError::ConsentRequired(Purpose::HealthData)), "{e:?}");
    assert_eq!(store::get_customer(db.reader(), &made.id).await.unwrap().unwrap(), before, "nothing stored");
    assert_eq!(store::outbox(db.reader(), 10).await.unwrap().len(), 1, "no event");
    // Facts that are not health data need no consent.
    let ok = c.put_skin_profile(&made.id, skin(json!({"skin_type": "dry"})).parse().unwrap(), None).await.unwrap();
    assert_eq!(ok.skin_profile.skin.skin_type.as_ref().unwrap().value, SkinType::Dry);
    assert_eq!(ok.version, 2);
    // A sign-up with health facts and no consent stores no customer at all.
    let mut body = ada();
    body["email"] = json!("grace@example.com");
    body["user_id"] = json!("shop-grace");
    body["phone"] = json!(null);
    body["loyalty"] = json!(null);
    body["skin_profile"] = json!({"pregnant": true});
    assert!(matches!(new_customer(&c, body.clone()).await, Err(CustomersError::ConsentRequired(Purpose::HealthData))));
    assert!(matches!(c.get("shop-grace").await, Err(CustomersError::NotFound(_))));
    // With the consent in the same request it is stored.
    body["consents"] = json!([{"purpose": "health_data", "granted": true, "text_version": "v1"}]);
    let grace = new_customer(&c, body).await.unwrap();
    assert!(grace.skin_profile.health.pregnant.as_ref().unwrap().value);
}

async fn consent_ledger_enforces_health_facts_and_withdrawal_deletes_them(db: Db) {
    let c = customers(&db).await;
    let made = new_customer(&c, ada()).await.unwrap();
    let shop = Actor { id: made.id.clone(), role: "customer".into() };
    let consents = c.set_consent("shop-ada", consent(true), &shop).await.unwrap();
    assert!(consents.granted(Purpose::HealthData));
    assert!(!consents.granted(Purpose::MarketingEmail));
    let body = skin(json!({
        "source": "quiz",
        "allergies": ["Fragrance", "Vitamin E", "Zorblax Extract"],
        "sensitivities": ["parabens"],
        "conditions": ["rosacea"],
        "pregnant": false,
    }));
    let with = c.put_skin_profile(&made.id, body.parse().unwrap(), Some(1)).await.unwrap();
    assert_eq!(with.unknown_allergens, ["Zorblax Extract"], "an unknown name is kept and reported");
    let allergies = &with.skin_profile.health.allergies.as_ref().unwrap();
    assert_eq!(allergies.source.as_str(), "quiz");
    assert_eq!(allergies.value.len(), 3);
    assert_eq!(allergies.value[1].matched, IngredientMatch::Ingredient);
    assert_eq!(allergies.value[1].id.as_deref(), Some("tocopherol"));
    assert_eq!(c.get(&made.id).await.unwrap(), with);

    let after = c.set_consent(&made.id, consent(false), &admin()).await.unwrap();
    assert!(!after.granted(Purpose::HealthData));
    let now = c.get(&made.id).await.unwrap();
    assert!(now.skin_profile.health.is_empty(), "withdrawing health_data deletes the health facts");
    assert!(now.unknown_allergens.is_empty());
    assert_eq!(now.version, with.version + 1);
    assert!(store::get_customer(db.reader(), &made.id).await.unwrap().unwrap().health.is_none());
    // The ledger keeps both decisions, with text version, channel, actor and time.
    assert_eq!(after.history.len(), 2);
    assert_eq!(after.history[0].actor, made.id);
    assert_eq!(after.history[0].actor_role, "customer");
    assert_eq!(after.history[1].actor, "adm-1");
    assert_eq!(after.history[1].channel, "web");
    assert_eq!(after.history[1].text_version, "health-v2");
    assert_eq!(after.history[1].recorded_at, "2026-05-28T20:26:40Z");
    assert_eq!(after.current.len(), Purpose::ALL.len());
    assert_eq!(c.consents(&made.id).await.unwrap(), after);
    let topics: Vec<String> = store::outbox(db.reader(), 10).await.unwrap().into_iter().map(|e| e.event_type).collect();
    assert_eq!(
        topics,
        [
            "customers.profile.changed",
            "customers.consent.changed",
            "customers.profile.changed",
            "customers.profile.changed",
            "customers.consent.changed"
        ]
    );
}

async fn updates_use_optimistic_concurrency_and_move_lookups(db: Db) {
    let c = customers(&db).await;
    let made = new_customer(&c, ada()).await.unwrap();
    let patch: UpdateCustomer = serde_json::from_value(
        json!({"email": "countess@example.com", "phone": null, "external_ids": {"pos": null, "app": "A-9"}}),
    )
    .unwrap();
    let changed = c.update(&made.id, patch.parse(NOW).unwrap(), Some(1)).await.unwrap();
    assert_eq!(changed.version, 2);
    assert_eq!(changed.contact.email.as_deref(), Some("countess@example.com"));
    assert_eq!(changed.contact.phone, None);
    assert_eq!(changed.identifiers.external_ids.get("app").map(String::as_str), Some("A-9"));
    assert!(!changed.identifiers.external_ids.contains_key("pos"));
    let find = |email: &str| FindCustomers { email: Some(email.into()), ..Default::default() }.parse().unwrap();
    assert!(c.find(&find("ada.lovelace@example.com")).await.unwrap().is_none(), "the old email no longer finds her");
    assert_eq!(c.find(&find("COUNTESS@example.com")).await.unwrap().unwrap().id, made.id);
    let phone = FindCustomers { phone: Some("+442079460958".into()), ..Default::default() }.parse().unwrap();
    assert!(c.find(&phone).await.unwrap().is_none());

    let stale: UpdateCustomer = serde_json::from_value(json!({"name": "A. L."})).unwrap();
    let e = c.update(&made.id, stale.parse(NOW).unwrap(), Some(1)).await.unwrap_err();
    assert!(matches!(e, CustomersError::VersionMismatch { expected: 1, actual: 2 }), "{e:?}");
    // The same values again change nothing.
    let same: UpdateCustomer = serde_json::from_value(json!({"email": "countess@example.com"})).unwrap();
    assert_eq!(c.update(&made.id, same.parse(NOW).unwrap(), None).await.unwrap().version, 2);
}

async fn rotating_the_master_key_rewraps_keys_and_keeps_data_and_lookups(db: Db) {
    let old = customers(&db).await;
    let made = new_customer(&old, ada()).await.unwrap();
    let before = store::get_customer(db.reader(), &made.id).await.unwrap().unwrap();
    let rotating =
        Customers::open(db.clone(), Keyring::new(master(7)).with_previous(master(42)), clock()).await.unwrap();
    assert_eq!(rotating.rotate_master_key().await.unwrap(), 2, "the customer's key and the lookup secret");
    assert_eq!(rotating.rotate_master_key().await.unwrap(), 0);
    // Fields were not re-encrypted.
    assert_eq!(store::get_customer(db.reader(), &made.id).await.unwrap().unwrap(), before);
    // The old master key is no longer needed.
    let new = Customers::open(db.clone(), Keyring::new(master(7)), clock()).await.unwrap();
    assert_eq!(new.get(&made.id).await.unwrap(), made);
    let q = FindCustomers { email: Some("ada.lovelace@example.com".into()), ..Default::default() };
    assert_eq!(new.find(&q.parse().unwrap()).await.unwrap().unwrap().id, made.id);
    // And the old one no longer opens anything.
    assert!(Customers::open(db.clone(), Keyring::new(master(42)), clock()).await.is_err());
}

async fn erasure_destroys_the_key_so_copies_stay_unreadable(db: Db) {
    let c = customers(&db).await;
    let made = new_customer(&c, ada()).await.unwrap();
    let backup = store::get_customer(db.reader(), &made.id).await.unwrap().unwrap();
    c.erase("shop-ada").await.unwrap();
    assert!(matches!(c.get(&made.id).await, Err(CustomersError::NotFound(_))));
    assert!(matches!(c.get("shop-ada").await, Err(CustomersError::NotFound(_))));
    assert!(matches!(c.erase(&made.id).await, Err(CustomersError::NotFound(_))), "an erasure twice is a 404");
    assert!(store::get_key(db.reader(), &made.id).await.unwrap().is_none());
    // A copy of the row (a backup) opens with no key now, not even a new key of the same id.
    let other = dermis_customers::crypto::DataKey::generate();
    assert!(matches!(c.open_row(&other, &backup), Err(CustomersError::Crypto(_))));
    let last = store::outbox(db.reader(), 10).await.unwrap().pop().unwrap();
    assert_eq!(last.event_type, "customers.erased");
    assert_eq!(last.payload, json!({"customer_id": made.id}).to_string());
}

async fn the_outbox_is_relayed_once(db: Db) {
    let c = customers(&db).await;
    let made = new_customer(&c, ada()).await.unwrap();
    c.set_consent(&made.id, consent(true), &admin()).await.unwrap();
    let outbox = CustomersOutbox::of(&c);
    let pending = outbox.pending(100).await.unwrap();
    assert_eq!(pending.len(), 2);
    assert!(pending.iter().all(|m| m.key == made.id));
    assert_eq!(pending[1].topic, "customers.consent.changed");
    let p: serde_json::Value = serde_json::from_str(&pending[1].payload).unwrap();
    assert_eq!(p, json!({"customer_id": made.id, "version": 1, "purpose": "health_data", "granted": true}));
    outbox.relayed(pending.iter().map(|m| m.id.clone()).collect()).await.unwrap();
    assert!(outbox.pending(100).await.unwrap().is_empty());
}

async fn the_profile_projection_reads_its_writes_and_follows_other_nodes(db: Db) {
    let loader = customers(&db).await;
    let projection = Arc::new(ProfileProjection::new(loader.clone()));
    let here = loader.clone().with_projection(projection.clone());
    let made = new_customer(&here, ada()).await.unwrap();
    assert_eq!(projection.get(&made.id).unwrap().version, 1, "read-your-writes after the create");
    here.set_consent(&made.id, consent(true), &admin()).await.unwrap();
    let body = skin(
        json!({"skin_type": "oily", "concerns": ["acne"], "allergies": ["fragrance", "zorblax"], "pregnant": true}),
    );
    here.put_skin_profile("shop-ada", body.parse().unwrap(), None).await.unwrap();
    let p = projection.get("shop-ada").expect("by user id too");
    assert_eq!(p.skin_type, Some(SkinType::Oily));
    assert_eq!(p.concerns, ["acne"]);
    assert!(p.pregnant && p.consents.health_data);
    assert!(p.allergy_ids.contains("limonene"), "the fragrance family is expanded to ingredient ids");
    assert_eq!(p.allergy_families, ["fragrance"]);
    assert_eq!(p.unknown_allergens, ["zorblax"]);

    // Another node (no projection attached here) withdraws the consent; this node learns it from
    // the bus message, which carries only the id.
    let elsewhere = customers(&db).await;
    elsewhere.set_consent(&made.id, consent(false), &admin()).await.unwrap();
    assert!(projection.get(&made.id).unwrap().pregnant, "not yet applied");
    let envelopes = bus_messages(&db).await;
    projection.apply(&envelopes).await.unwrap();
    projection.apply(&envelopes).await.unwrap(); // idempotent
    let p = projection.get(&made.id).unwrap();
    assert!(!p.pregnant && p.allergy_ids.is_empty() && !p.consents.health_data);
    assert_eq!(p.skin_type, Some(SkinType::Oily));

    // A new node rebuilds from the store.
    let fresh = ProfileProjection::new(loader.clone());
    assert_eq!(fresh.rebuild().await.unwrap(), 1);
    assert_eq!(fresh.get("shop-ada").unwrap().as_ref(), p.as_ref());
    // An erasure elsewhere reaches it through the bus message.
    elsewhere.erase(&made.id).await.unwrap();
    let erased = Envelope {
        seq: 99,
        topic: "customers.erased".into(),
        key: made.id.clone(),
        id: "x".into(),
        payload: json!({"customer_id": made.id}).to_string(),
    };
    projection.apply(&[erased]).await.unwrap();
    assert!(projection.get(&made.id).is_none() && projection.get("shop-ada").is_none());
}

async fn a_consultation_expires(db: Db) {
    let clock = dermis_core::clock::ManualClock::at(NOW);
    let c = Customers::open(db.clone(), Keyring::new(master(42)), clock.clone()).await.unwrap();
    let made = new_customer(&c, ada()).await.unwrap();
    let open = c.open_consultation("shop-ada", "store-1", "sa-1", 15 * 60_000).await.unwrap();
    assert_eq!(open.expires_at, "2026-05-28T20:41:40Z");
    assert!(c.consultation_open(&made.id, "store-1").await.unwrap());
    assert!(!c.consultation_open(&made.id, "store-2").await.unwrap(), "only at its store");
    clock.advance(15 * 60_000);
    assert!(!c.consultation_open(&made.id, "store-1").await.unwrap(), "expired");
    assert!(matches!(c.close_consultation(&made.id, &open.id, None).await, Err(CustomersError::NotFound(_))));
    assert!(matches!(
        c.open_consultation("shop-nobody", "store-1", "sa-1", 60_000).await,
        Err(CustomersError::NotFound(_))
    ));
}

/// Concurrent grants, withdrawals and health writes on one customer: writes are serialized by
/// the customer's row lock, so health facts are never left behind a withdrawal.
async fn health_facts_never_outlive_a_concurrent_withdrawal(db: Db) {
    let c = customers(&db).await;
    let made = new_customer(&c, ada()).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..24 {
        let c = c.clone();
        let id = made.id.clone();
        tasks.push(tokio::spawn(async move {
            match i % 3 {
                0 => c.set_consent(&id, consent(true), &admin()).await.map(|_| ()),
                1 => c.set_consent(&id, consent(false), &admin()).await.map(|_| ()),
                _ => {
                    let body = skin(json!({"allergies": ["limonene"], "pregnant": i % 2 == 0}));
                    match c.put_skin_profile(&id, body.parse().unwrap(), None).await {
                        Err(CustomersError::ConsentRequired(_)) => Ok(()),
                        other => other.map(|_| ()),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let now = c.get(&made.id).await.unwrap();
    let consents = c.consents(&made.id).await.unwrap();
    assert_eq!(consents.history.len(), 16);
    if !consents.granted(Purpose::HealthData) {
        assert!(now.skin_profile.health.is_empty(), "health facts outlived the withdrawal");
    }
}

/// A domain that records what it was asked, and can be told to fail.
#[derive(Default)]
struct Recorder {
    erased: std::sync::Mutex<Vec<dermis_customers::privacy::Subject>>,
    fail: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl PersonalDataSource for Recorder {
    fn name(&self) -> &'static str {
        "orders"
    }
    async fn export(&self, subject: &dermis_customers::privacy::Subject) -> anyhow::Result<serde_json::Value> {
        Ok(json!([{"order": "ord_1", "customer": subject.customer_id}]))
    }
    async fn erase(&self, subject: &dermis_customers::privacy::Subject) -> anyhow::Result<()> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            anyhow::bail!("orders store down");
        }
        self.erased.lock().unwrap().push(subject.clone());
        Ok(())
    }
}

async fn wait_for(c: &Customers, erasure: &str, state: ErasureState) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if c.erasure(erasure).await.unwrap().status == state {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("erasure {erasure} never reached {state:?}");
}

async fn export_and_erasure_reach_every_domain_and_the_event_log(db: Db) {
    let orders = Arc::new(Recorder::default());
    let ingestor = Ingestor::new(db.clone(), 4, dermis_events::Pseudonyms::load(&db).await.unwrap());
    let c = customers(&db)
        .await
        .with_personal_data(orders.clone())
        .with_personal_data(Arc::new(EventsData::new(ingestor.clone())));
    let made = new_customer(&c, ada()).await.unwrap();
    let track = json!({"type": "track", "userId": "shop-ada", "event": "Product Viewed", "messageId": "m-1",
                       "properties": {"product_id": "P1", "marker": "ada-marker-7781"}});
    let stored = ingestor.ingest_as("wk_test".into(), Some(Kind::Track), track).await.unwrap();
    assert_eq!(stored.accepted, 1);

    let export = c.export("shop-ada").await.unwrap();
    assert_eq!(export.customer, made);
    assert_eq!(export.consents.customer_id, made.id);
    assert_eq!(export.domains["orders"][0]["customer"], made.id.as_str());
    let events = export.domains["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["message"]["properties"]["marker"], "ada-marker-7781");

    // The orders domain is down: the customer is gone from here at once, the erasure fails and
    // is resumed later.
    orders.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let erasure = c.request_erasure(&made.id, "admin:adm-1").await.unwrap();
    assert!(matches!(c.get(&made.id).await, Err(CustomersError::NotFound(_))), "404 at once");
    wait_for(&c, &erasure.id, ErasureState::Failed).await;
    assert_eq!(c.erasure(&erasure.id).await.unwrap().error.as_deref(), Some("the orders domain failed; it is retried"));
    assert!(matches!(c.request_erasure(&made.id, "admin:adm-1").await, Err(CustomersError::NotFound(_))));
    orders.fail.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(c.resume_erasures().await.unwrap(), 1);
    let done = c.erasure(&erasure.id).await.unwrap();
    assert_eq!(done.status, ErasureState::Completed);
    assert!(done.completed_at.is_some());
    assert_eq!(
        orders.erased.lock().unwrap().as_slice(),
        [dermis_customers::privacy::Subject { customer_id: made.id.clone(), user_id: Some("shop-ada".into()) }]
    );
    let left = dermis_events::log::events_of(&db, &dermis_events::log::Subject::User("shop-ada".into()), None, 10)
        .await
        .unwrap();
    assert!(left.is_empty(), "the customer's events are erased");
    assert!(
        store::get_erasure(db.reader(), &erasure.id).await.unwrap().unwrap().subject.is_none(),
        "the ids are cleared"
    );
    assert_eq!(c.resume_erasures().await.unwrap(), 0);
}

dermis_store::backend_tests!(MIGRATIONS;
    export_and_erasure_reach_every_domain_and_the_event_log,
    health_facts_never_outlive_a_concurrent_withdrawal,
    a_consultation_expires,
    creates_and_reads_back_by_id_and_user_id,
    lookups_ignore_case_and_go_through_keyed_hashes,
    an_identifier_of_another_customer_is_a_conflict_and_stores_nothing,
    a_create_retried_with_its_idempotency_key_replays,
    health_facts_without_consent_are_refused_and_nothing_is_stored,
    consent_ledger_enforces_health_facts_and_withdrawal_deletes_them,
    updates_use_optimistic_concurrency_and_move_lookups,
    rotating_the_master_key_rewraps_keys_and_keeps_data_and_lookups,
    erasure_destroys_the_key_so_copies_stay_unreadable,
    the_outbox_is_relayed_once,
    the_profile_projection_reads_its_writes_and_follows_other_nodes,
);

/// The SQLite file and its WAL hold none of the customer's personal or health data in clear.
#[tokio::test]
async fn the_sqlite_files_hold_no_plaintext_of_a_customer() {
    let t = dermis_store::testing::TestDb::sqlite(MIGRATIONS).await;
    let c = customers(t.db()).await;
    let body = json!({
        "name": "Zephyrine Quartermain",
        "email": "zephyrine.quartermain@example.org",
        "phone": "+33 6 98 76 54 32",
        "address": {"line1": "7 Rue Oberkampf", "city": "Paris", "country": "FR"},
        "user_id": "shop-zq",
        "consents": [{"purpose": "health_data", "granted": true, "text_version": "v1"}],
        "skin_profile": {"allergies": ["Methylisothiazolinone", "Quillaiabark Extractum"], "conditions": ["eczema"]},
    });
    let made = c.create(None, create(body).parse(NOW).unwrap(), &admin()).await.unwrap().value;
    assert_eq!(made.unknown_allergens, ["Quillaiabark Extractum"]);
    let patch: UpdateCustomer = serde_json::from_value(json!({"name": "Zephyrine Q. Quartermain"})).unwrap();
    c.update(&made.id, patch.parse(NOW).unwrap(), None).await.unwrap();
    let dir = t.data_dir().unwrap();
    let mut bytes = std::fs::read(dir.join("dermis.sqlite")).unwrap();
    if let Ok(wal) = std::fs::read(dir.join("dermis.sqlite-wal")) {
        assert!(!wal.is_empty(), "the WAL was read");
        bytes.extend(wal);
    }
    assert!(
        bytes.windows(made.id.len()).any(|w| w == made.id.as_bytes()),
        "the scan sees the stored rows (the id is in clear)"
    );
    for secret in [
        "Zephyrine",
        "Quartermain",
        "zephyrine.quartermain@example.org",
        "+33698765432",
        "98765432",
        "Oberkampf",
        "Methylisothiazolinone",
        "methylisothiazolinone",
        "Quillaiabark",
        "eczema",
    ] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret:?} is in the database files in clear"
        );
    }
    // The customer is there, readable through the service.
    assert_eq!(c.get("shop-zq").await.unwrap().contact.name.as_deref(), Some("Zephyrine Q. Quartermain"));

    // After an erasure, the wrapped data key is gone from the file and its WAL (crypto-shredding),
    // and so are the ciphertexts.
    let key = store::get_key(t.db().reader(), &made.id).await.unwrap().unwrap().wrapped;
    let sealed = store::get_customer(t.db().reader(), &made.id).await.unwrap().unwrap().contact;
    let files = || {
        let mut b = std::fs::read(dir.join("dermis.sqlite")).unwrap();
        b.extend(std::fs::read(dir.join("dermis.sqlite-wal")).unwrap_or_default());
        b
    };
    let before = files();
    assert!(before.windows(key.len()).any(|w| w == key.as_bytes()), "the scan finds the key while it exists");
    c.erase(&made.id).await.unwrap();
    let mut bytes = std::fs::read(dir.join("dermis.sqlite")).unwrap();
    bytes.extend(std::fs::read(dir.join("dermis.sqlite-wal")).unwrap_or_default());
    for gone in [&key[..], &sealed[..40]] {
        assert!(!bytes.windows(gone.len()).any(|w| w == gone.as_bytes()), "{gone:?} is still in the files");
    }
}
