//! The feature store as a projection of the event stream: what one node stores, another learns
//! from the bus (reading the messages from the log); a batch the store refused comes again; an
//! erasure on the bus makes every node forget.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dermis_bus::EventBus;
use dermis_bus::embedded::EmbeddedBus;
use dermis_bus::projection::{Projection, Projections, Settings};
use dermis_events::Pseudonyms;
use dermis_events::ingest::Ingestor;
use dermis_events::outbox::TOPIC;
use dermis_features::memory::MemoryFeatures;
use dermis_features::{
    CustomerFeatures, FeatureError, FeatureEvent, FeatureProjection, FeatureStore, Features, ProductFeatures,
};
use dermis_store::testing::TestDb;
use serde_json::json;

const MIGRATIONS: &[&[dermis_store::Migration]] =
    &[dermis_store::MIGRATIONS, dermis_events::MIGRATIONS, dermis_bus::MIGRATIONS, dermis_features::MIGRATIONS];

/// A store that refuses its first `failures` updates (Redis down), then works.
struct Flaky {
    failures: AtomicUsize,
    inner: MemoryFeatures,
}

#[async_trait]
impl FeatureStore for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    async fn apply(&self, e: &FeatureEvent) -> Result<(), FeatureError> {
        if self.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(FeatureError::Redis("connection refused".into()));
        }
        self.inner.apply(e).await
    }
    async fn customer(&self, id: &str, now_ms: i64) -> Result<CustomerFeatures, FeatureError> {
        self.inner.customer(id, now_ms).await
    }
    async fn product(&self, id: &str, now_ms: i64) -> Result<ProductFeatures, FeatureError> {
        self.inner.product(id, now_ms).await
    }
    async fn forget_customer(&self, id: &str, at: i64) -> Result<(), FeatureError> {
        self.inner.forget_customer(id, at).await
    }
}

fn settings(node: &str) -> Settings {
    Settings { node_id: node.into(), lag_alert: 1000, lag_every: Duration::from_millis(50), batch: 100 }
}

fn view(message_id: &str, user: &str, product: &str) -> serde_json::Value {
    json!({"type": "track", "userId": user, "event": "Product Viewed", "messageId": message_id,
           "properties": {"product_id": product}})
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < Duration::from_secs(10), "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn another_node_learns_from_the_bus_what_one_node_stored() {
    let t = TestDb::sqlite(MIGRATIONS).await;
    let db = t.db().clone();
    let bus: Arc<dyn EventBus> = Arc::new(EmbeddedBus::new(db.clone()));
    let pseudonyms = Pseudonyms::with_key(b"test");
    let clock = dermis_core::clock::system();
    // Node A ingests (its own features see the events before it answers); node B only consumes.
    let a = Features::new(Arc::new(MemoryFeatures::new()), pseudonyms.clone(), clock.clone());
    let b_memory = Arc::new(MemoryFeatures::new());
    let b = Features::new(b_memory.clone(), pseudonyms.clone(), clock.clone());
    let ingestor = Ingestor::new(db.clone(), 4, pseudonyms.clone()).with_node("a").with_hook(Arc::new(a.clone()));
    let outbox = dermis_events::relay::IngestedOutbox::new(ingestor.clone());
    let relay = tokio::spawn(dermis_bus::relay::run(bus.clone(), vec![Arc::new(outbox)], Duration::from_millis(20)));
    let projection: Arc<dyn Projection> =
        Arc::new(FeatureProjection::new(b.clone(), db.clone(), "b", Some(b_memory), None));
    let running = Projections::start(bus.clone(), vec![projection], settings("b"));

    let batch = json!({"batch": [view("m1", "ana", "P1"), view("m2", "ana", "P2"), view("m3", "bo", "P1")]});
    assert_eq!(ingestor.ingest_as("wk_1".into(), None, batch).await.unwrap().accepted, 3);
    assert_eq!(a.customer("ana").await.unwrap().unwrap().recent_views.len(), 2, "read-your-writes on node A");
    eventually("node B never learned of ana's views", async || {
        b.customer("ana").await.unwrap().is_some_and(|f| f.recent_views.len() == 2)
    })
    .await;
    assert_eq!(b.customer("bo").await.unwrap().unwrap().recent_views.len(), 1);

    // An erasure on node A reaches node B through the bus.
    let erased = ingestor.erase(&dermis_events::log::Subject::User("ana".into())).await.unwrap();
    assert_eq!(erased.events, 2);
    assert!(a.customer("ana").await.unwrap().is_none(), "node A forgot at once");
    eventually("node B never forgot ana", async || b.customer("ana").await.unwrap().is_none()).await;
    assert!(running.health().iter().all(|h| h.rebuilt && h.name == "features"));
    relay.abort();
    running.stop().await;
}

#[tokio::test]
async fn a_batch_the_store_refused_is_applied_when_it_comes_again() {
    let t = TestDb::sqlite(MIGRATIONS).await;
    let bus: Arc<dyn EventBus> = Arc::new(EmbeddedBus::new(t.db().clone()));
    let store = Arc::new(Flaky { failures: AtomicUsize::new(2), inner: MemoryFeatures::new() });
    let pseudonyms = Pseudonyms::with_key(b"test");
    let c1 = pseudonyms.customer("c1");
    let features = Features::new(store.clone(), pseudonyms, dermis_core::clock::system());
    // A message of the previous release, which carried the feature updates themselves.
    let now = dermis_core::clock::now_ms();
    let payload = json!({"write_key_id": "wk", "features": [{
        "id": "wk:m1:0", "customer_id": "c1", "product_id": "p1", "action": "view",
        "amount_minor": 0, "at_ms": now, "received_at_ms": now}]});
    bus.publish(TOPIC, "k", "ing_1", &payload.to_string()).await.unwrap();
    let projection: Arc<dyn Projection> = Arc::new(FeatureProjection::new(features, t.db().clone(), "n", None, None));
    let running = Projections::start(bus.clone(), vec![projection], settings("n"));
    eventually("the refused batch never came again", async || {
        !store.customer(&c1, dermis_core::clock::now_ms()).await.unwrap().recent_views.is_empty()
    })
    .await;
    eventually("the batch was never acknowledged", async || bus.lag("features-n", TOPIC).await.unwrap() == 0).await;
    running.stop().await;
    assert_eq!(
        store.customer(&c1, dermis_core::clock::now_ms()).await.unwrap().recent_views.len(),
        1,
        "applied once, under the customer's pseudonym (the old message named them in clear)"
    );
}

/// A deployment upgraded from the release where the feature store kept the pseudonym key: its
/// customers keep their pseudonyms (else their features, snapshots and erasure records would
/// name someone else).
async fn upgrade_keeps_the_pseudonym_key(t: TestDb) {
    let db = t.db();
    dermis_store::sqlx::query("INSERT INTO feature_keys (name, secret) VALUES ('customer-pseudonyms', $1)")
        .bind(hex_key())
        .execute(db.writer())
        .await
        .unwrap();
    for set in MIGRATIONS {
        db.migrate(set).await.unwrap();
    }
    let loaded = Pseudonyms::load(db).await.unwrap();
    assert_eq!(loaded.customer("ana"), Pseudonyms::with_key(&[7u8; 32]).customer("ana"));
    let left = dermis_store::sqlx::query("SELECT COUNT(*) FROM feature_keys").fetch_one(db.reader()).await;
    assert!(left.is_err(), "the old table is gone");
}

fn hex_key() -> String {
    [7u8; 32].iter().map(|b| format!("{b:02x}")).collect()
}

/// The migrations of the release before the hand-over.
const BEFORE: &[&[dermis_store::Migration]] = &[
    dermis_store::MIGRATIONS,
    dermis_events::MIGRATIONS.split_at(6).0,
    dermis_bus::MIGRATIONS,
    dermis_features::MIGRATIONS.split_at(2).0,
];

#[tokio::test]
async fn an_upgrade_keeps_every_customers_pseudonym() {
    upgrade_keeps_the_pseudonym_key(TestDb::sqlite(BEFORE).await).await;
}

mod postgres {
    use super::*;

    #[tokio::test]
    async fn an_upgrade_keeps_every_customers_pseudonym() {
        let Some(t) = TestDb::postgres(BEFORE).await else { return };
        upgrade_keeps_the_pseudonym_key(t).await;
    }
}
