//! The store conformance suite: every test runs on SQLite, and on PostgreSQL when
//! `DERMIS_TEST_DATABASE_URL` is set.

use dermis_store::idempotency::{self, IdempotencyKey, Prior};
use dermis_store::{Db, MIGRATIONS, Migration, StoreError};
use sqlx::Row;

const WIDGETS: &[Migration] = &[Migration {
    domain: "conformance",
    version: 1,
    name: "widgets",
    sqlite: "CREATE TABLE widgets (id TEXT PRIMARY KEY, code TEXT NOT NULL, qty BIGINT NOT NULL); CREATE UNIQUE INDEX widgets_code ON widgets (code);",
    postgres: "CREATE TABLE widgets (id TEXT PRIMARY KEY, code TEXT NOT NULL, qty BIGINT NOT NULL); CREATE UNIQUE INDEX widgets_code ON widgets (code);",
}];

const ALL: &[&[Migration]] = &[MIGRATIONS, WIDGETS];

dermis_store::backend_tests!(ALL;
    migrations_are_idempotent_and_append_only,
    concurrent_migrations_from_two_nodes_both_succeed,
    unique_violations_are_classified,
    idempotency_records_live_and_die_with_their_transaction,
    big_integers_round_trip,
    ping_answers,
);

async fn migrations_are_idempotent_and_append_only(db: Db) {
    db.migrate(ALL[1]).await.expect("second run is a no-op");
    let edited = [Migration { sqlite: "SELECT 1", postgres: "SELECT 1", ..WIDGETS[0] }];
    let err = db.migrate(&edited).await.unwrap_err();
    assert!(matches!(err, StoreError::Migration { version: 1, .. }), "{err}");
}

async fn concurrent_migrations_from_two_nodes_both_succeed(db: Db) {
    let more: &'static [Migration] = &[
        Migration {
            domain: "race",
            version: 1,
            name: "a",
            sqlite: "CREATE TABLE race_a (id BIGINT PRIMARY KEY)",
            postgres: "CREATE TABLE race_a (id BIGINT PRIMARY KEY)",
        },
        Migration {
            domain: "race",
            version: 2,
            name: "b",
            sqlite: "CREATE TABLE race_b (id BIGINT PRIMARY KEY)",
            postgres: "CREATE TABLE race_b (id BIGINT PRIMARY KEY)",
        },
    ];
    let other_node = db.clone();
    let (a, b) = tokio::join!(db.migrate(more), other_node.migrate(more));
    a.expect("node a");
    b.expect("node b");
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM dermis_migrations WHERE domain = 'race'")
        .fetch_one(db.reader())
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}

async fn unique_violations_are_classified(db: Db) {
    let insert = |id: &'static str| {
        sqlx::query("INSERT INTO widgets (id, code, qty) VALUES ($1, $2, $3)").bind(id).bind("SAME").bind(1_i64)
    };
    insert("w1").execute(db.writer()).await.unwrap();
    let err = StoreError::from(insert("w2").execute(db.writer()).await.unwrap_err());
    assert!(matches!(err, StoreError::Unique { .. }), "{err}");
    assert!(err.is_unique_on("code"), "{err}");
}

async fn idempotency_records_live_and_die_with_their_transaction(db: Db) {
    let key = IdempotencyKey::parse("retry-me").unwrap();
    let hash = idempotency::request_hash(b"{\"a\":1}");

    let mut tx = db.begin().await.unwrap();
    assert_eq!(idempotency::prior(&mut tx, "test.create", &key, &hash).await.unwrap(), Prior::None);
    idempotency::record(&mut tx, "test.create", &key, &hash, "w_rolled_back").await.unwrap();
    tx.rollback().await.unwrap();

    let mut tx = db.begin().await.unwrap();
    assert_eq!(idempotency::prior(&mut tx, "test.create", &key, &hash).await.unwrap(), Prior::None, "rolled back");
    idempotency::record(&mut tx, "test.create", &key, &hash, "w1").await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = db.begin().await.unwrap();
    assert_eq!(idempotency::prior(&mut tx, "test.create", &key, &hash).await.unwrap(), Prior::Created("w1".into()));
    let other = idempotency::request_hash(b"{\"a\":2}");
    assert_eq!(idempotency::prior(&mut tx, "test.create", &key, &other).await.unwrap(), Prior::Mismatch);
    assert_eq!(idempotency::prior(&mut tx, "other.scope", &key, &hash).await.unwrap(), Prior::None, "scoped");
    let dup = idempotency::record(&mut tx, "test.create", &key, &hash, "w2").await.unwrap_err();
    assert!(matches!(dup, StoreError::Unique { .. }), "{dup}");
    drop(tx);
    assert_eq!(idempotency::purge_expired(&db).await.unwrap(), 0, "fresh records are kept");
}

async fn big_integers_round_trip(db: Db) {
    for (id, qty) in [("max", i64::MAX), ("min", i64::MIN), ("zero", 0)] {
        sqlx::query("INSERT INTO widgets (id, code, qty) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(id)
            .bind(qty)
            .execute(db.writer())
            .await
            .unwrap();
        let got: i64 =
            sqlx::query("SELECT qty FROM widgets WHERE id = $1").bind(id).fetch_one(db.reader()).await.unwrap().get(0);
        assert_eq!(got, qty);
    }
}

async fn ping_answers(db: Db) {
    db.ping().await.unwrap();
    assert!(db.pool_stats().iter().all(|(_, s)| s.max >= 1));
}
