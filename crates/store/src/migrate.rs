//! Versioned migrations (a portable SQL file, or one per backend where dialects differ), tracked
//! per domain in `dermis_migrations`.
//!
//! Each migration is applied in its own transaction together with the row that records it. Two
//! nodes starting at once both try; the loser's transaction fails on the primary key (or on the
//! DDL it races), is rolled back, and the loser then sees the migration applied. So no advisory
//! lock is needed, which keeps this runnable on CockroachDB and YugabyteDB. A migration whose
//! text changed after it was applied is refused: migrations are append-only.

use sha2::{Digest, Sha256};
use sqlx::{Executor, Row};

use crate::db::{Backend, Db};
use crate::error::StoreError;

/// One schema change of one domain. Where the portable subset suffices (so far, always), both
/// backends use the same file; a dialect difference gets a file per backend.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The domain that owns the tables (`catalog`, `auth`, ...).
    pub domain: &'static str,
    /// Increasing version within the domain.
    pub version: i64,
    /// What it does.
    pub name: &'static str,
    /// The SQL for SQLite.
    pub sqlite: &'static str,
    /// The SQL for PostgreSQL.
    pub postgres: &'static str,
}

impl Migration {
    fn sql(&self, backend: Backend) -> &'static str {
        match backend {
            Backend::Sqlite => self.sqlite,
            Backend::Postgres => self.postgres,
        }
    }

    fn checksum(&self, backend: Backend) -> String {
        hex::encode(Sha256::digest(self.sql(backend).as_bytes()))
    }
}

const BOOKKEEPING: &str = "CREATE TABLE IF NOT EXISTS dermis_migrations (
    domain     TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    name       TEXT   NOT NULL,
    checksum   TEXT   NOT NULL,
    applied_at BIGINT NOT NULL,
    PRIMARY KEY (domain, version)
)";

impl Db {
    /// Applies the given migrations that are not applied yet, in order. (Here, not in `db`:
    /// migrations know the handle, the handle does not know migrations.)
    pub async fn migrate(&self, migrations: &[Migration]) -> Result<(), StoreError> {
        run(self, migrations).await
    }
}

async fn run(db: &Db, migrations: &[Migration]) -> Result<(), StoreError> {
    // Two nodes creating the table at once can collide on PostgreSQL's catalog even with
    // IF NOT EXISTS; the loser's retry finds the table.
    let mut created = db.writer().execute(BOOKKEEPING).await;
    for _ in 0..3 {
        if created.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        created = db.writer().execute(BOOKKEEPING).await;
    }
    created?;
    for m in migrations {
        apply_one(db, m).await?;
    }
    Ok(())
}

async fn applied_checksum(db: &Db, m: &Migration) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT checksum FROM dermis_migrations WHERE domain = $1 AND version = $2")
        .bind(m.domain)
        .bind(m.version)
        .fetch_optional(db.writer())
        .await?;
    Ok(row.map(|r| r.get::<String, _>(0)))
}

async fn apply_one(db: &Db, m: &Migration) -> Result<(), StoreError> {
    let backend = db.backend();
    let fail = |reason: String| StoreError::Migration { domain: m.domain.to_owned(), version: m.version, reason };
    for attempt in 0..3 {
        match applied_checksum(db, m).await? {
            Some(sum) if sum == m.checksum(backend) => return Ok(()),
            Some(_) => return Err(fail("its SQL changed after it was applied; add a new migration instead".into())),
            None => {}
        }
        let result: Result<(), StoreError> = async {
            let mut tx = db.begin().await?;
            tx.execute(sqlx::raw_sql(m.sql(backend))).await?;
            sqlx::query(
                "INSERT INTO dermis_migrations (domain, version, name, checksum, applied_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(m.domain)
            .bind(m.version)
            .bind(m.name)
            .bind(m.checksum(backend))
            .bind(dermis_core::clock::now_ms())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                tracing::info!(domain = m.domain, version = m.version, name = m.name, "migration applied");
                return Ok(());
            }
            // Another node may have applied it concurrently: look again before giving up.
            Err(e) if attempt < 2 => {
                tracing::warn!(domain = m.domain, version = m.version, error = %e, "migration attempt failed; re-checking")
            }
            Err(e) => return Err(fail(e.to_string())),
        }
    }
    Err(fail("gave up after 3 attempts".into()))
}
