//! The event log's writer on both backends: concurrent requests (grouped into one commit on
//! SQLite) each learn exactly which of their messages were new, and nothing is stored twice.

use dermis_events::log::{Accepted, Append, LogWriter};
use dermis_events::message::{BatchDefaults, Kind, normalize};
use dermis_store::Db;
use dermis_store::sqlx::{self, Row};
use serde_json::json;

const ALL: &[&[dermis_store::Migration]] = &[dermis_store::MIGRATIONS, dermis_events::MIGRATIONS];

dermis_store::backend_tests!(ALL;
    concurrent_appends_store_each_message_once,
    stored_events_page_in_order_by_id_and_by_time,
    two_writers_on_one_store_never_collide,
    a_customers_events_are_found_and_erased_whether_indexed_yet_or_not,
    stored_messages_are_read_back_by_message_id,
);

fn job(ids: std::ops::Range<usize>) -> Append {
    let accepted = ids
        .map(|i| {
            let raw = json!({"userId": "u1", "event": "Product Viewed", "messageId": format!("m{i}"),
                "properties": {"product_id": "P1"}});
            Accepted {
                message: normalize(&raw, Some(Kind::Track), &BatchDefaults::default(), 1).unwrap(),
                schema: None,
            }
        })
        .collect();
    Append { write_key_id: "wk_1".into(), accepted, dead: Vec::new(), to_bus: None, received_at: 1 }
}

async fn concurrent_appends_store_each_message_once(db: Db) {
    let writer = LogWriter::new(db.clone());
    // 24 requests at once, overlapping: request k sends messages k*5 .. k*5+10, so every
    // message but the first five and last five is sent twice.
    let tasks: Vec<_> = (0..24)
        .map(|k| {
            let writer = writer.clone();
            tokio::spawn(async move { writer.append(job(k * 5..k * 5 + 10)).await.unwrap() })
        })
        .collect();
    let mut new = 0;
    for t in tasks {
        new += t.await.unwrap();
    }
    let stored: i64 = sqlx::query("SELECT COUNT(*) FROM events").fetch_one(db.reader()).await.unwrap().get(0);
    assert_eq!(stored, 23 * 5 + 10, "each distinct message stored once");
    assert_eq!(new as i64, stored, "the requests' counts of new messages add up to what was stored");
}

async fn stored_events_page_in_order_by_id_and_by_time(db: Db) {
    use dermis_events::log::{Subject, events_of, id_floor, since};
    let writer = LogWriter::new(db.clone());
    let before = dermis_core::clock::now_ms() - 1;
    for k in 0..3 {
        assert_eq!(writer.append(job(k * 4..k * 4 + 4)).await.unwrap(), 4);
    }
    let all = since(&db, &id_floor(before), 100).await.unwrap();
    assert_eq!(all.len(), 12, "everything stored since the time before the first append");
    let message_ids: Vec<&str> = all.iter().map(|l| l.message.message_id.as_str()).collect();
    let expected: Vec<String> = (0..12).map(|i| format!("m{i}")).collect();
    assert_eq!(message_ids, expected, "in the order they were stored");
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "ids increase");
    assert!(since(&db, &all[11].id, 100).await.unwrap().is_empty(), "nothing after the last id");
    let later = since(&db, &id_floor(dermis_core::clock::now_ms() + 1000), 100).await.unwrap();
    assert!(later.is_empty(), "nothing stored in the future");

    // A customer's events, paged with the last id of the previous page as the cursor.
    let who = Subject::User("u1".into());
    let first = events_of(&db, &who, None, 5).await.unwrap();
    let rest = events_of(&db, &who, Some(&first[4].id), 100).await.unwrap();
    assert_eq!(first.len() + rest.len(), 12);
    assert_eq!(first[0].id, all[0].id);
    assert_eq!(rest[0].id, all[5].id, "the second page starts right after the cursor");
    assert!(events_of(&db, &Subject::User("u2".into()), None, 5).await.unwrap().is_empty());
}

/// SQLite's events table moved to integer keys (migration 3): what was stored before is kept,
/// in the same order, and reads like anything stored after.
#[tokio::test]
async fn sqlite_events_stored_before_the_integer_keys_are_kept() {
    use dermis_events::log::{Subject, events_of, id_floor, since};
    let old: &[&[dermis_store::Migration]] = &[dermis_store::MIGRATIONS, &dermis_events::MIGRATIONS[..2]];
    let t = dermis_store::testing::TestDb::sqlite(old).await;
    let db = t.db().clone();
    for (i, received) in [(0, 1_000), (1, 1_000), (2, 2_000)] {
        sqlx::query(
            "INSERT INTO events (id, write_key_id, message_id, kind, event, user_id, anonymous_id, partition_key, schema_ref, timestamp_ms, received_at, payload)
             VALUES ($1, 'wk_1', $2, 'track', 'Product Viewed', 'u1', NULL, 'u1', NULL, $3, $3, $4)",
        )
        .bind(dermis_core::ids::new_id("evt"))
        .bind(format!("old{i}"))
        .bind(received as i64)
        .bind(json!({"type": "track", "messageId": format!("old{i}")}).to_string())
        .execute(db.writer())
        .await
        .unwrap();
    }
    db.migrate(dermis_events::MIGRATIONS).await.unwrap();
    let writer = LogWriter::new(db.clone());
    assert_eq!(writer.append(job(0..2)).await.unwrap(), 2);
    let listed = events_of(&db, &Subject::User("u1".into()), None, 100).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|e| e.message["messageId"].as_str().unwrap()).collect();
    assert_eq!(ids, ["old0", "old1", "old2", "m0", "m1"], "old events first, in their order");
    let replayed = since(&db, &id_floor(1_500), 100).await.unwrap();
    assert_eq!(replayed.len(), 3, "old2 and the two new ones were stored at or after 1,500 ms");
    // A retried old message is still a duplicate.
    let again = Append {
        write_key_id: "wk_1".into(),
        accepted: vec![Accepted {
            message: normalize(
                &json!({"userId": "u1", "event": "Product Viewed", "messageId": "old1", "properties": {}}),
                Some(Kind::Track),
                &BatchDefaults::default(),
                1,
            )
            .unwrap(),
            schema: None,
        }],
        dead: Vec::new(),
        to_bus: None,
        received_at: 1,
    };
    assert_eq!(writer.append(again).await.unwrap(), 0);
}

/// Two writers on one store (two handles in a process, or two processes on one SQLite file):
/// each continues after the other's keys, so nothing fails and the order holds.
async fn two_writers_on_one_store_never_collide(db: Db) {
    use dermis_events::log::{id_floor, since};
    let (a, b) = (LogWriter::new(db.clone()), LogWriter::new(db.clone()));
    for k in 0..20 {
        let w = if k % 2 == 0 { &a } else { &b };
        assert_eq!(w.append(job(k * 3..k * 3 + 3)).await.unwrap(), 3, "append {k}");
    }
    let all = since(&db, &id_floor(0), 100).await.unwrap();
    let ids: Vec<String> = all.iter().map(|l| l.message.message_id.clone()).collect();
    assert_eq!(ids, (0..60).map(|i| format!("m{i}")).collect::<Vec<_>>(), "all stored, in the order appended");
}

/// On SQLite the embedded bus lives in the log's file: ingestion publishes in the log's own
/// transaction (no outbox row for the relay), once per request that stored something new, and
/// wakes a consumer that waits.
#[tokio::test]
async fn the_sqlite_log_publishes_to_the_embedded_bus_in_its_own_transaction() {
    use std::time::{Duration, Instant};

    use dermis_bus::EventBus;
    use dermis_bus::embedded::EmbeddedBus;
    use dermis_events::ingest::Ingestor;
    use dermis_events::outbox::{Ingested, TOPIC};

    let t = dermis_store::testing::TestDb::sqlite(&[
        dermis_store::MIGRATIONS,
        dermis_events::MIGRATIONS,
        dermis_bus::MIGRATIONS,
    ])
    .await;
    let bus = EmbeddedBus::new(t.db().clone());
    let ingestor = Ingestor::new(t.db().clone(), 4, dermis_events::Pseudonyms::with_key(b"test"))
        .with_node("n1")
        .with_embedded_bus(&bus);
    let batch = json!({"batch": [
        {"type": "track", "userId": "u1", "event": "Product Viewed", "messageId": "m1", "properties": {"product_id": "P1"}},
        {"type": "track", "userId": "u2", "event": "Product Viewed", "messageId": "m2", "properties": {"product_id": "P2"}},
        {"type": "identify", "userId": "u1", "messageId": "m3", "traits": {"skin_type": "dry"}},
    ]});

    // A consumer already waiting is woken by the commit, not by its timeout.
    let waiting = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let got = bus.fetch("c", TOPIC, 10, Duration::from_secs(20)).await.unwrap();
            (got, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let result = ingestor.ingest_as("wk_1".into(), None, batch.clone()).await.unwrap();
    assert_eq!(result.accepted, 3);
    let (got, waited) = waiting.await.unwrap();
    assert!(waited < Duration::from_secs(10), "the waiting consumer slept until its timeout ({waited:?})");
    assert_eq!(got.len(), 1, "one bus message per request");
    let ingested: Ingested = serde_json::from_str(&got[0].payload).unwrap();
    assert_eq!(ingested.messages, ["m1", "m2", "m3"], "the ids of what was stored, for every projection");
    assert_eq!(ingested.node, "n1", "the node that stored them");
    assert!(!got[0].payload.contains("u1") && !got[0].payload.contains("dry"), "no personal data on the bus");
    let stored = dermis_events::log::messages(t.db(), "wk_1", &ingested.messages).await.unwrap();
    assert_eq!(stored.len(), 3, "a projection reads the messages from the log");
    assert!(
        dermis_events::outbox::pending(t.db(), 10).await.unwrap().is_empty(),
        "nothing left in the outbox for the relay"
    );

    // The same request again stores nothing new and publishes nothing.
    let again = ingestor.ingest_as("wk_1".into(), None, batch).await.unwrap();
    assert_eq!((again.accepted, again.duplicates), (0, 3));
    assert_eq!(bus.lag("c", TOPIC).await.unwrap(), 1, "still the one message");
}

/// One message of `user` and/or `anonymous`.
fn seen(message_id: &str, user: Option<&str>, anonymous: Option<&str>) -> Accepted {
    let mut raw = json!({"event": "Product Viewed", "messageId": message_id, "properties": {"product_id": "P1"}});
    if let Some(u) = user {
        raw["userId"] = u.into();
    }
    if let Some(a) = anonymous {
        raw["anonymousId"] = a.into();
    }
    Accepted { message: normalize(&raw, Some(Kind::Track), &BatchDefaults::default(), 1).unwrap(), schema: None }
}

fn request(messages: Vec<Accepted>) -> Append {
    Append { write_key_id: "wk_1".into(), accepted: messages, dead: Vec::new(), to_bus: None, received_at: 1 }
}

/// On SQLite the customer index is written behind the log (about once a second): a customer's
/// events are listed and erased alike whether they are indexed yet or still in the tail, and an
/// erasure leaves no index entry of theirs behind. The same on PostgreSQL, where the index is
/// on the table.
async fn a_customers_events_are_found_and_erased_whether_indexed_yet_or_not(db: Db) {
    use dermis_events::log::{Subject, erase, events_of};
    let writer = LogWriter::new(db.clone());
    // Before she signed in, signed in on that device, and someone else on the same device.
    let round = |k: usize| {
        vec![
            seen(&format!("anon-{k}"), None, Some("a1")),
            seen(&format!("her-{k}"), Some("u1"), Some("a1")),
            seen(&format!("his-{k}"), Some("u2"), Some("a1")),
            seen(&format!("app-{k}"), Some("u1"), None),
        ]
    };
    let sqlite = db.backend() == dermis_store::db::Backend::Sqlite;
    let count = |sql: &'static str| {
        let db = db.clone();
        async move { sqlx::query(sql).fetch_one(db.reader()).await.unwrap().get::<i64, _>(0) }
    };
    const ENTRIES: &str = "SELECT (SELECT COUNT(*) FROM events_by_user) + (SELECT COUNT(*) FROM events_by_anonymous)";
    writer.append(request(round(0))).await.unwrap();
    writer.append(request(round(1))).await.unwrap();
    writer.index_tail().await.unwrap();
    if sqlite {
        assert_eq!(count(ENTRIES).await, 6 + 6, "two rounds of three user ids and three anonymous ids");
        assert_eq!(writer.index_tail().await.unwrap(), 0, "nothing new to index");
    }
    // These stay in the tail.
    writer.append(request(round(2))).await.unwrap();

    let ids = |events: Vec<dermis_events::log::StoredEvent>| -> Vec<String> {
        events.iter().map(|e| e.message["messageId"].as_str().unwrap().to_owned()).collect()
    };
    let hers = ids(events_of(&db, &Subject::User("u1".into()), None, 100).await.unwrap());
    assert_eq!(hers, ["her-0", "app-0", "her-1", "app-1", "her-2", "app-2"], "indexed ones, then the tail");
    // Paging across the watermark: the cursor is the last of the indexed ones.
    let first = events_of(&db, &Subject::User("u1".into()), None, 4).await.unwrap();
    let rest = ids(events_of(&db, &Subject::User("u1".into()), Some(&first[3].id), 4).await.unwrap());
    assert_eq!(rest, ["her-2", "app-2"]);
    let device = ids(events_of(&db, &Subject::Anonymous("a1".into()), None, 100).await.unwrap());
    assert_eq!(device.len(), 9, "{device:?}");

    let erased =
        erase(&db, &Subject::User("u1".into()), &|| 10, &dermis_events::Pseudonyms::with_key(b"test")).await.unwrap();
    assert_eq!(erased.subjects, ["u1", "a1"]);
    assert_eq!(erased.events, 9, "her six, and the three anonymous ones of her device");
    assert!(events_of(&db, &Subject::User("u1".into()), None, 100).await.unwrap().is_empty());
    let left = ids(events_of(&db, &Subject::Anonymous("a1".into()), None, 100).await.unwrap());
    assert_eq!(left, ["his-0", "his-1", "his-2"], "his events on the shared device are kept");
    assert_eq!(ids(events_of(&db, &Subject::User("u2".into()), None, 100).await.unwrap()), left);

    if sqlite {
        // Her entries are gone; what the next pass indexes is his alone.
        assert_eq!(count("SELECT COUNT(*) FROM events_by_user WHERE user_id = 'u1'").await, 0);
        writer.index_tail().await.unwrap();
        assert_eq!(count("SELECT COUNT(*) FROM events_by_user").await, 3, "his user id of the three rounds");
        assert_eq!(
            count("SELECT COUNT(*) FROM events_by_anonymous WHERE id NOT IN (SELECT id FROM events)").await,
            0,
            "no index entry points at an erased event"
        );
        assert_eq!(count("SELECT COUNT(*) FROM events_by_anonymous").await, 3);
    }
    assert_eq!(
        erase(&db, &Subject::User("u1".into()), &|| 11, &dermis_events::Pseudonyms::with_key(b"test"))
            .await
            .unwrap()
            .events,
        0,
        "erasing again removes nothing"
    );
}

/// A process that stops before its writer's next pass leaves a tail: the next writer on the
/// file indexes it, and it is listed meanwhile.
#[tokio::test]
async fn the_next_writer_indexes_the_tail_a_stopped_one_left() {
    use dermis_events::log::{Subject, events_of};
    let t = dermis_store::testing::TestDb::sqlite(ALL).await;
    let db = t.db().clone();
    {
        let writer = LogWriter::new(db.clone());
        writer.append(request(vec![seen("m1", Some("u1"), None), seen("m2", Some("u1"), Some("a1"))])).await.unwrap();
    }
    assert_eq!(events_of(&db, &Subject::User("u1".into()), None, 10).await.unwrap().len(), 2);
    let next = LogWriter::new(db.clone());
    next.index_tail().await.unwrap();
    let entries: i64 =
        sqlx::query("SELECT (SELECT COUNT(*) FROM events_by_user) + (SELECT COUNT(*) FROM events_by_anonymous)")
            .fetch_one(db.reader())
            .await
            .unwrap()
            .get(0);
    assert_eq!(entries, 3, "two user entries and one anonymous entry");
    assert_eq!(events_of(&db, &Subject::User("u1".into()), None, 10).await.unwrap().len(), 2);
    assert_eq!(events_of(&db, &Subject::Anonymous("a1".into()), None, 10).await.unwrap().len(), 1);
}

/// An erasure may delete the newest events: a writer started after it must still key new events
/// above the customer index's watermark, or they would never be indexed, listed nor erased.
#[tokio::test]
async fn keys_stay_above_the_watermark_after_the_newest_events_are_erased() {
    use dermis_events::log::{Subject, erase, events_of};
    let t = dermis_store::testing::TestDb::sqlite(ALL).await;
    let db = t.db().clone();
    // An event keyed a day ahead (stored by a writer whose clock ran fast), indexed, erased.
    let ahead = (dermis_core::clock::now_ms() + 86_400_000) << 20;
    sqlx::query(
        "INSERT INTO events (id, write_key_id, message_id, kind, user_id, partition_key, timestamp_ms, received_at, payload)
         VALUES ($1, 'wk_1', 'ahead', 'track', 'u9', 'u9', 0, 0, '{}')",
    )
    .bind(ahead)
    .execute(db.writer())
    .await
    .unwrap();
    LogWriter::new(db.clone()).index_tail().await.unwrap();
    assert_eq!(
        erase(&db, &Subject::User("u9".into()), &|| 1, &dermis_events::Pseudonyms::with_key(b"test"))
            .await
            .unwrap()
            .events,
        1
    );

    let next = LogWriter::new(db.clone());
    assert_eq!(next.append(request(vec![seen("m1", Some("u1"), None)])).await.unwrap(), 1);
    assert_eq!(events_of(&db, &Subject::User("u1".into()), None, 10).await.unwrap().len(), 1, "listed");
    next.index_tail().await.unwrap();
    assert_eq!(events_of(&db, &Subject::User("u1".into()), None, 10).await.unwrap().len(), 1, "listed once indexed");
    assert_eq!(
        erase(&db, &Subject::User("u1".into()), &|| 2, &dermis_events::Pseudonyms::with_key(b"test"))
            .await
            .unwrap()
            .events,
        1,
        "and erased"
    );
}

/// The stored messages of given `messageId`s of one source: in the order they were stored
/// whatever the order asked, each once, across as many statements as the list needs; unknown
/// ids, another source's messages and erased ones are left out.
async fn stored_messages_are_read_back_by_message_id(db: Db) {
    use dermis_events::log::{Logged, Subject, erase, messages};
    let writer = LogWriter::new(db.clone());
    // 1,000 messages in one request (m999 of u2, the rest of u1), indexed; then m1000.. of u2,
    // left in the tail; another source stores its own m5.
    let user = |i: usize| if i == 999 { "u2" } else { "u1" };
    let mut first: Vec<Accepted> = (0..1000).map(|i| seen(&format!("m{i}"), Some(user(i)), None)).collect();
    first.push(seen("a0", None, Some("a1")));
    assert_eq!(writer.append(request(first)).await.unwrap(), 1001);
    writer.index_tail().await.unwrap();
    let second = (1000..1003).map(|i| seen(&format!("m{i}"), Some("u2"), None)).collect();
    assert_eq!(writer.append(request(second)).await.unwrap(), 3);
    let other = Append { write_key_id: "wk_2".into(), ..request(vec![seen("m5", Some("u3"), None)]) };
    assert_eq!(writer.append(other).await.unwrap(), 1);
    let message_ids =
        |found: &[Logged]| -> Vec<String> { found.iter().map(|l| l.message.message_id.clone()).collect() };

    // Asked newest first, with repeats and ids never stored.
    let mut asked: Vec<String> = (0..1003).rev().map(|i| format!("m{i}")).collect();
    asked.extend(["m7", "nope", "m1002", "a0"].map(String::from));
    let found = messages(&db, "wk_1", &asked).await.unwrap();
    let mut expected: Vec<String> = (0..1000).map(|i| format!("m{i}")).collect();
    expected.push("a0".into());
    expected.extend((1000..1003).map(|i| format!("m{i}")));
    assert_eq!(message_ids(&found), expected, "each once, in the order stored");
    assert!(found.windows(2).all(|w| w[0].id < w[1].id), "in log order");
    assert!(found.iter().all(|l| l.write_key_id == "wk_1"));
    let m1001 = &found[1002];
    assert_eq!((m1001.message.message_id.as_str(), m1001.message.user_id.as_deref()), ("m1001", Some("u2")));
    assert_eq!(m1001.message.payload["properties"]["product_id"], "P1", "the stored message as it was");

    // One source's messages only.
    let theirs = messages(&db, "wk_2", &["m5".into(), "m6".into()]).await.unwrap();
    assert_eq!(message_ids(&theirs), ["m5"]);
    assert_eq!(theirs[0].message.user_id.as_deref(), Some("u3"));
    assert_ne!(theirs[0].id, found[5].id, "another source's m5 is another event");
    assert!(messages(&db, "wk_1", &[]).await.unwrap().is_empty());
    assert!(messages(&db, "wk_9", &asked).await.unwrap().is_empty(), "an unknown source has none");

    // Erased messages are gone, whether indexed yet or in the tail.
    let erased =
        erase(&db, &Subject::User("u2".into()), &|| 10, &dermis_events::Pseudonyms::with_key(b"test")).await.unwrap();
    assert_eq!(erased.events, 4);
    let asked = ["m998", "m999", "m1000", "m1002", "a0"].map(String::from);
    let left = messages(&db, "wk_1", &asked).await.unwrap();
    assert_eq!(message_ids(&left), ["m998", "a0"], "u2's erased messages are not returned");
}
