//! The bus conformance suite: every test runs on the embedded bus, and on NATS JetStream when
//! `DERMIS_TEST_NATS_URL` is set (`.ci/run` sets it and requires it).

use std::sync::Arc;
use std::time::Duration;

use dermis_bus::embedded::EmbeddedBus;
use dermis_bus::nats::NatsBus;
use dermis_bus::{EventBus, MIGRATIONS};
use dermis_store::testing::TestDb;

/// Opens bus instances on one backing store: a second `open` is a restarted node.
enum Factory {
    Embedded(TestDb),
    Nats { url: String, stream: String },
}

impl Factory {
    async fn embedded() -> Self {
        Factory::Embedded(TestDb::sqlite(&[dermis_store::MIGRATIONS, MIGRATIONS]).await)
    }

    fn nats() -> Option<Self> {
        match std::env::var("DERMIS_TEST_NATS_URL") {
            Ok(url) if !url.is_empty() => {
                let stream = format!("T{}", ulid::Ulid::new().to_string().to_ascii_uppercase());
                Some(Factory::Nats { url, stream })
            }
            _ => {
                assert!(
                    std::env::var("DERMIS_REQUIRE_SERVICES").is_err(),
                    "DERMIS_REQUIRE_SERVICES is set but DERMIS_TEST_NATS_URL is not"
                );
                eprintln!("skipped: set DERMIS_TEST_NATS_URL=nats://... to run the NATS JetStream variant");
                None
            }
        }
    }

    async fn open(&self) -> Arc<dyn EventBus> {
        match self {
            Factory::Embedded(t) => Arc::new(EmbeddedBus::new(t.db().clone())),
            Factory::Nats { url, stream } => {
                Arc::new(NatsBus::connect(url, stream, Duration::from_secs(1)).await.expect("NATS is reachable"))
            }
        }
    }

    async fn cleanup(&self) {
        if let Factory::Nats { url, stream } = self {
            let _ = NatsBus::connect(url, stream, Duration::from_secs(1)).await.unwrap().delete_stream().await;
        }
    }
}

macro_rules! bus_tests {
    ($($name:ident),+ $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $name() {
                    let f = super::Factory::embedded().await;
                    super::$name(&f).await;
                }
            )+
        }
        mod nats {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(f) = super::Factory::nats() else { return };
                    super::$name(&f).await;
                    f.cleanup().await;
                }
            )+
        }
    };
}

bus_tests!(
    delivers_in_order_until_acknowledged,
    publishing_an_id_twice_stores_it_once,
    consumers_are_independent_and_prefixes_select,
    unacknowledged_messages_return_after_a_restart,
    bad_names_are_refused,
    old_messages_go_and_positions_continue,
    batches_publish_in_order_once,
    rapid_acknowledgements_reach_a_restarted_node,
    the_head_is_the_last_position,
    a_waiting_consumer_wakes_for_its_own_topics,
);

const WAIT: Duration = Duration::from_secs(3);

async fn delivers_in_order_until_acknowledged(f: &Factory) {
    let bus = f.open().await;
    for i in 0..5 {
        bus.publish("events.track", &format!("u{i}"), &format!("m{i}"), &format!("{{\"n\":{i}}}")).await.unwrap();
    }
    let got = bus.fetch("features", "events.", 3, WAIT).await.unwrap();
    assert_eq!(got.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["m0", "m1", "m2"]);
    assert!(got.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(
        (got[1].topic.as_str(), got[1].key.as_str(), got[1].payload.as_str()),
        ("events.track", "u1", "{\"n\":1}")
    );
    bus.ack("features", "events.", &got[2]).await.unwrap();
    assert_eq!(bus.lag("features", "events.").await.unwrap(), 2);
    let rest = bus.fetch("features", "events.", 10, WAIT).await.unwrap();
    assert_eq!(rest.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["m3", "m4"]);
    bus.ack("features", "events.", &rest[1]).await.unwrap();
    assert_eq!(bus.lag("features", "events.").await.unwrap(), 0);
    assert!(bus.fetch("features", "events.", 10, Duration::from_millis(200)).await.unwrap().is_empty());
}

async fn publishing_an_id_twice_stores_it_once(f: &Factory) {
    let bus = f.open().await;
    bus.publish("catalog.product.created", "p1", "same", "{}").await.unwrap();
    bus.publish("catalog.product.created", "p1", "same", "{}").await.unwrap();
    bus.publish("catalog.product.created", "p1", "other", "{}").await.unwrap();
    let got = bus.fetch("c", "catalog.", 10, WAIT).await.unwrap();
    assert_eq!(got.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["same", "other"]);
}

async fn consumers_are_independent_and_prefixes_select(f: &Factory) {
    let bus = f.open().await;
    bus.publish("catalog.product.created", "p1", "c1", "{}").await.unwrap();
    bus.publish("events.track", "u1", "e1", "{}").await.unwrap();
    bus.publish("events.identify", "u1", "e2", "{}").await.unwrap();
    let a = bus.fetch("a", "", 10, WAIT).await.unwrap();
    assert_eq!(a.len(), 3);
    bus.ack("a", "", &a[2]).await.unwrap();
    let b = bus.fetch("b", "events.", 10, WAIT).await.unwrap();
    assert_eq!(b.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["e1", "e2"], "b is not affected by a's acks");
    let exact = bus.fetch("x", "events.track", 10, WAIT).await.unwrap();
    assert_eq!(exact.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["e1"]);
    // One consumer name on two selections keeps two positions.
    bus.ack("x", "events.track", &exact[0]).await.unwrap();
    let other = bus.fetch("x", "catalog.", 10, WAIT).await.unwrap();
    assert_eq!(other.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["c1"]);
}

async fn unacknowledged_messages_return_after_a_restart(f: &Factory) {
    let first = f.open().await;
    for i in 0..3 {
        first.publish("events.track", "u", &format!("r{i}"), "{}").await.unwrap();
    }
    let got = first.fetch("proj", "events.", 10, WAIT).await.unwrap();
    assert_eq!(got.len(), 3);
    first.ack("proj", "events.", &got[0]).await.unwrap();
    drop(first);
    // A new node (or a restarted one) takes over the durable consumer: what was not acknowledged
    // comes back (at once on the embedded bus, after the ack wait on JetStream).
    let second = f.open().await;
    let mut again = Vec::new();
    for _ in 0..10 {
        again = second.fetch("proj", "events.", 10, WAIT).await.unwrap();
        if !again.is_empty() {
            break;
        }
    }
    assert_eq!(again.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["r1", "r2"]);
}

async fn bad_names_are_refused(f: &Factory) {
    let bus = f.open().await;
    assert!(bus.publish("bad topic", "k", "i", "{}").await.is_err());
    assert!(bus.publish(".lead", "k", "i", "{}").await.is_err());
    assert!(bus.fetch("has space", "", 1, Duration::ZERO).await.is_err());
}

async fn old_messages_go_and_positions_continue(f: &Factory) {
    let bus = f.open().await;
    bus.publish("events.track", "u", "r0", "{}").await.unwrap();
    bus.publish("events.track", "u", "r1", "{}").await.unwrap();
    let first = bus.fetch("features", "events.", 1, WAIT).await.unwrap();
    bus.ack("features", "events.", &first[0]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    bus.retain(Duration::ZERO).await.unwrap();
    bus.publish("events.track", "u", "r2", "{}").await.unwrap();
    let rest = bus.fetch("features", "events.", 10, WAIT).await.unwrap();
    assert_eq!(
        rest.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["r1", "r2"],
        "nothing after the position is lost"
    );
    assert!(rest[0].seq > first[0].seq && rest[1].seq > rest[0].seq, "positions keep increasing");
}

async fn batches_publish_in_order_once(f: &Factory) {
    let bus = f.open().await;
    let out = |id: &str| dermis_bus::Outgoing {
        topic: "events.ingested".into(),
        key: "k".into(),
        id: id.into(),
        payload: format!("{{\"id\":\"{id}\"}}"),
    };
    bus.publish("events.ingested", "k", "b0", "{}").await.unwrap();
    // b0 was published before, b2 twice in the batch: each is stored once, in order.
    bus.publish_all(&[out("b0"), out("b1"), out("b2"), out("b2"), out("b3")]).await.unwrap();
    bus.publish_all(&[out("b3"), out("b4")]).await.unwrap(); // a relay repeated after a crash
    let got = bus.fetch("relay-test", "events.ingested", 10, WAIT).await.unwrap();
    assert_eq!(got.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["b0", "b1", "b2", "b3", "b4"]);
    assert!(got.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(got[2].payload, "{\"id\":\"b2\"}");
}

/// A consumer that acknowledges one message at a time, fast (the embedded bus folds such
/// writes together): its own lag is exact at once, and a node that takes over soon after starts
/// after the last acknowledged message, not somewhere before it.
async fn rapid_acknowledgements_reach_a_restarted_node(f: &Factory) {
    let bus = f.open().await;
    for i in 0..20 {
        bus.publish("events.track", "u", &format!("q{i}"), "{}").await.unwrap();
    }
    for _ in 0..20 {
        let one = bus.fetch("rapid", "events.", 1, WAIT).await.unwrap();
        bus.ack("rapid", "events.", &one[0]).await.unwrap();
    }
    assert_eq!(bus.lag("rapid", "events.").await.unwrap(), 0, "exact in the acknowledging process");
    bus.publish("events.track", "u", "q20", "{}").await.unwrap();
    let other = f.open().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while other.lag("rapid", "events.").await.unwrap() > 1 {
        assert!(std::time::Instant::now() < deadline, "the last acknowledgement was never written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(bus);
    let again = other.fetch("rapid", "events.", 10, WAIT).await.unwrap();
    assert_eq!(again.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["q20"]);
}

async fn the_head_is_the_last_position(f: &Factory) {
    let bus = f.open().await;
    bus.publish("catalog.product.created", "p", "h0", "{}").await.unwrap();
    bus.publish("events.track", "u", "h1", "{}").await.unwrap();
    let all = bus.fetch("head", "", 10, WAIT).await.unwrap();
    assert_eq!(bus.head().await.unwrap(), all.last().unwrap().seq, "across topics");
    bus.publish("events.track", "u", "h2", "{}").await.unwrap();
    assert!(bus.head().await.unwrap() > all.last().unwrap().seq);
}

/// A consumer waiting for messages answers as soon as one of its selection arrives, whatever was
/// published on other topics meanwhile.
async fn a_waiting_consumer_wakes_for_its_own_topics(f: &Factory) {
    let bus = f.open().await;
    let waiting = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let got = bus.fetch("waker", "catalog.", 10, Duration::from_secs(5)).await.unwrap();
            (got, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    bus.publish("events.track", "u", "w-other", "{}").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    bus.publish("catalog.product.created", "p", "w-mine", "{}").await.unwrap();
    let (got, took) = waiting.await.unwrap();
    let ids: Vec<&str> = got.iter().map(|e| e.id.as_str()).collect();
    assert!(ids.is_empty() || ids == ["w-mine"], "{ids:?}");
    if ids.is_empty() {
        // NATS may answer the first wait empty; the message is there on the next fetch.
        let again = bus.fetch("waker", "catalog.", 10, WAIT).await.unwrap();
        assert_eq!(again.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["w-mine"]);
    } else {
        assert!(took < Duration::from_secs(2), "woken by its message, not by the timeout: {took:?}");
    }
}

mod projections {
    //! The projection runner on the embedded bus: what a rebuild covers is not applied again.

    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use async_trait::async_trait;
    use dermis_bus::embedded::EmbeddedBus;
    use dermis_bus::projection::{Projection, Projections, Settings};
    use dermis_bus::{Envelope, EventBus};

    struct Recorder {
        covers: bool,
        applied: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Projection for Recorder {
        fn name(&self) -> &'static str {
            if self.covers { "covering" } else { "replaying" }
        }
        fn topic(&self) -> &'static str {
            "catalog."
        }
        async fn rebuild(&self) -> anyhow::Result<u64> {
            Ok(3)
        }
        async fn apply(&self, batch: &[Envelope]) -> anyhow::Result<()> {
            self.applied.lock().unwrap().extend(batch.iter().map(|e| e.id.clone()));
            Ok(())
        }
        fn rebuild_covers_published(&self) -> bool {
            self.covers
        }
    }

    #[tokio::test]
    async fn a_rebuild_that_covers_the_published_messages_skips_them() {
        let t = dermis_store::testing::TestDb::sqlite(&[dermis_store::MIGRATIONS, dermis_bus::MIGRATIONS]).await;
        let bus: Arc<dyn EventBus> = Arc::new(EmbeddedBus::new(t.db().clone()));
        for i in 0..3 {
            bus.publish("catalog.product.created", "p", &format!("old{i}"), "{}").await.unwrap();
        }
        assert_eq!(bus.head().await.unwrap(), 3);
        let covering = Arc::new(Recorder { covers: true, applied: Mutex::default() });
        let replaying = Arc::new(Recorder { covers: false, applied: Mutex::default() });
        let settings =
            Settings { node_id: "n1".into(), lag_alert: 1000, lag_every: Duration::from_millis(50), batch: 100 };
        let running = Projections::start(bus.clone(), vec![covering.clone(), replaying.clone()], settings);
        // Published once both are rebuilt (each read the head before its rebuild), not after a
        // guess at how long that takes.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !running.health().iter().all(|h| h.rebuilt) {
            assert!(std::time::Instant::now() < deadline, "the projections never rebuilt");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bus.publish("catalog.product.updated", "p", "new", "{}").await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while replaying.applied.lock().unwrap().len() < 4 || covering.applied.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "the new message never arrived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(*covering.applied.lock().unwrap(), ["new"], "what the rebuild held is not applied again");
        assert_eq!(*replaying.applied.lock().unwrap(), ["old0", "old1", "old2", "new"]);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while bus.lag("covering-n1", "catalog.").await.unwrap() > 0 {
            assert!(std::time::Instant::now() < deadline, "the skipped messages were not acknowledged");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        running.stop().await;
    }
}
