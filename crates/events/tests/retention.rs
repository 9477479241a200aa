//! Retention of the event log on both backends: events received before the cutoff are
//! anonymized (no user id, anonymous id, traits or IP; no longer found, exported or erased by
//! customer; event name, time and properties kept), newer ones untouched, a second run changes
//! nothing; old dead letters deleted; on SQLite the files (WAL included) no longer hold the old
//! ids in clear.

use std::time::Duration;

use dermis_events::ingest::Ingestor;
use dermis_events::log::{self, Accepted, Append, LogWriter, Subject};
use dermis_events::message::{BatchDefaults, Kind, normalize};
use dermis_events::pseudonym::Pseudonyms;
use dermis_store::Db;
use dermis_store::sqlx::{self, Row};
use dermis_store::testing::TestDb;
use serde_json::json;

const ALL: &[&[dermis_store::Migration]] = &[dermis_store::MIGRATIONS, dermis_events::MIGRATIONS];

/// A user id and IP unlikely to appear by chance in the files.
const OLD_USER: &str = "retention-old-user-4f7d2a";
const OLD_IP: &str = "198.51.100.173";

fn append(user: &str, anonymous: &str, ip: &str, range: std::ops::Range<usize>) -> Append {
    let accepted = range
        .map(|i| {
            let raw = json!({"userId": user, "anonymousId": anonymous, "event": "Order Completed",
                "messageId": format!("m-{}-{i}", user.len()), "timestamp": "2025-01-01T10:00:00Z",
                "traits": {"plan": "gold-plan-x"},
                "properties": {"product_id": "P1", "price": 12.5, "quantity": 2},
                "context": {"ip": ip, "traits": {"tier": "vip-tier-x"}, "locale": "fr-FR"}});
            Accepted {
                message: normalize(&raw, Some(Kind::Track), &BatchDefaults::default(), 1).unwrap(),
                schema: None,
            }
        })
        .collect();
    Append {
        write_key_id: "wk_1".into(),
        accepted,
        dead: Vec::new(),
        to_bus: None,
        received_at: dermis_core::clock::now_ms(),
    }
}

async fn dead_letter(db: &Db, id: &str, received_at: i64) {
    sqlx::query(
        "INSERT INTO dead_letters (id, write_key_id, message_id, reason, errors, payload, received_at) \
         VALUES ($1, 'wk_1', $2, 'invalid', '[]', $3, $4)",
    )
    .bind(id)
    .bind(format!("{id}-m"))
    .bind(json!({"userId": "dead-letter-user", "event": 42}).to_string())
    .bind(received_at)
    .execute(db.writer())
    .await
    .unwrap();
}

async fn count(db: &Db, sql: &str) -> i64 {
    sqlx::query(sql).fetch_one(db.reader()).await.unwrap().get(0)
}

/// On SQLite: whether the database file or its WAL holds `needle` in clear.
fn in_sqlite_files(dir: &std::path::Path, needle: &str) -> bool {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".sqlite") || name.ends_with(".sqlite-wal") {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

async fn run(t: TestDb) {
    let db = t.db().clone();
    let ingestor = Ingestor::new(db.clone(), 4, Pseudonyms::with_key(b"test"));
    let writer = LogWriter::new(db.clone());
    let now = dermis_core::clock::now_ms();
    dead_letter(&db, "dlq_old", now - 40 * 86_400_000).await;
    dead_letter(&db, "dlq_new", now).await;
    assert_eq!(writer.append(append(OLD_USER, "anon-old", OLD_IP, 0..3)).await.unwrap(), 3);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cutoff = dermis_core::clock::now_ms();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(writer.append(append(OLD_USER, "anon-later", "203.0.113.77", 3..5)).await.unwrap(), 2);
    assert_eq!(writer.append(append("new-user", "anon-new", "203.0.113.9", 0..2)).await.unwrap(), 2);

    // On SQLite only indexed events are anonymized: the indexer catches up within a second or two.
    let mut total = 0;
    let mut after = String::new();
    let started = std::time::Instant::now();
    while total < 3 {
        assert!(started.elapsed() < Duration::from_secs(15), "only {total} of 3 old events anonymized");
        let a = ingestor.anonymize_before(cutoff, &after, 1000).await.unwrap();
        total += a.rows;
        if let Some(last) = a.last_id {
            after = last;
        }
        if total < 3 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_eq!(total, 3, "exactly the events received before the cutoff");

    // Idempotent: from the start again, nothing changes.
    let again = ingestor.anonymize_before(cutoff, "", 1000).await.unwrap();
    assert_eq!(again.rows, 0, "a second run changes nothing");

    // The old events are no one's now; the newer ones still the customer's.
    let mine = log::events_of(&db, &Subject::User(OLD_USER.into()), None, 100).await.unwrap();
    let ids: Vec<&str> = mine.iter().map(|e| e.message["messageId"].as_str().unwrap()).collect();
    let n = OLD_USER.len();
    assert_eq!(ids, [format!("m-{n}-3"), format!("m-{n}-4")], "only the newer events are found");
    assert_eq!(mine[0].message["context"]["ip"], "203.0.113.77", "newer events untouched");
    assert_eq!(mine[0].message["anonymousId"], "anon-later");
    assert_eq!(mine[0].message["traits"]["plan"], "gold-plan-x");
    let by_device = log::events_of(&db, &Subject::Anonymous("anon-old".into()), None, 100).await.unwrap();
    assert!(by_device.is_empty(), "nor found by the anonymous id");
    assert_eq!(log::events_of(&db, &Subject::User("new-user".into()), None, 100).await.unwrap().len(), 2);

    // What is kept of an old event.
    let all = log::since(&db, "", 100).await.unwrap();
    assert_eq!(all.len(), 7, "anonymized, not deleted");
    for old in &all[..3] {
        let m = &old.message;
        assert_eq!((m.user_id.as_deref(), m.anonymous_id.as_deref()), (None, None));
        assert_eq!(m.event.as_deref(), Some("Order Completed"));
        assert_eq!(m.payload["properties"], json!({"product_id": "P1", "price": 12.5, "quantity": 2}));
        assert_eq!(m.payload["timestamp"], "2025-01-01T10:00:00Z", "{}", m.payload);
        assert_eq!(m.payload["context"]["locale"], "fr-FR");
        let text = m.payload.to_string();
        for gone in [OLD_USER, "anon-old", OLD_IP, "gold-plan-x", "vip-tier-x"] {
            assert!(!text.contains(gone), "{gone} left in {text}");
        }
    }
    assert_eq!(count(&db, "SELECT COUNT(*) FROM events WHERE partition_key = '$anonymized'").await, 3);

    // SQLite: the old events' IP and device id are not readable in the file or its WAL any
    // more (the pass zeroed what it overwrote, then checkpointed and truncated the WAL), while
    // the newer events' still are (the scan finds what is there).
    if let Some(dir) = t.data_dir() {
        assert!(in_sqlite_files(dir, "anon-later"), "the scan reads the files");
        for needle in [OLD_IP, "anon-old"] {
            assert!(!in_sqlite_files(dir, needle), "{needle} still readable in the SQLite files");
        }
    }

    // An erasure of the customer removes only what is still theirs.
    let erased = ingestor.erase(&Subject::User(OLD_USER.into())).await.unwrap();
    assert_eq!(erased.events, 2, "the anonymized events are not the customer's any more");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM events").await, 5);

    // Dead letters past their age.
    assert_eq!(ingestor.delete_dead_letters_before(now - 30 * 86_400_000).await.unwrap(), 1);
    let left: Vec<String> = sqlx::query("SELECT id FROM dead_letters")
        .fetch_all(db.reader())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, ["dlq_new"]);
    assert_eq!(ingestor.delete_dead_letters_before(now - 30 * 86_400_000).await.unwrap(), 0);
}

#[tokio::test]
async fn old_events_are_anonymized_and_old_dead_letters_deleted_on_sqlite() {
    run(TestDb::sqlite(ALL).await).await;
}

#[tokio::test]
async fn old_events_are_anonymized_and_old_dead_letters_deleted_on_postgres() {
    let Some(t) = TestDb::postgres(ALL).await else { return };
    run(t).await;
}
