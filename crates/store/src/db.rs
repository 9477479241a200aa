//! The database handle: which backend, and the pools to read and write through.

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyPool, Executor, Transaction};

use crate::error::StoreError;

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file (WAL mode).
    Sqlite,
    /// A PostgreSQL server (or a wire-compatible one).
    Postgres,
}

impl Backend {
    /// Lower-case name, as used in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// How many connections to keep.
#[derive(Debug, Clone, Copy)]
pub struct PoolSize {
    /// Most connections to a PostgreSQL server, or reader connections to a SQLite file.
    pub max_connections: u32,
    /// How long a request waits for a connection before the store reports itself unavailable.
    pub acquire_timeout: Duration,
}

impl Default for PoolSize {
    fn default() -> Self {
        Self { max_connections: 16, acquire_timeout: Duration::from_secs(5) }
    }
}

/// Connection counts of a pool, for the `/metrics` page.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    /// Open connections.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// Most connections the pool may open.
    pub max: u32,
}

/// A handle on the system of record. Cheap to clone.
///
/// Reads go through [`Db::reader`]; writes through [`Db::begin`] (or [`Db::writer`]). On SQLite the
/// writer pool has exactly one connection: SQLite allows one writer at a time, and queueing in the
/// pool is cheaper and fairer than spinning on `SQLITE_BUSY`. On PostgreSQL both are one pool.
#[derive(Debug, Clone)]
pub struct Db {
    backend: Backend,
    read: AnyPool,
    write: AnyPool,
    max_read: u32,
    file: Option<std::path::PathBuf>,
    /// While any clone lives, the SQLite checkpoint task runs.
    _alive: std::sync::Arc<()>,
}

impl Db {
    /// Opens (creating if needed) the SQLite file `dermis.sqlite` in `dir`. The folder is made
    /// private to its owner (0700) and the file is created 0600 before SQLite opens it: it
    /// holds personal data and key hashes, and SQLite gives its WAL and shared-memory files the
    /// database file's mode.
    pub async fn open_data_dir(dir: &Path, size: PoolSize) -> Result<Self, StoreError> {
        crate::private::private_dir(dir)
            .map_err(|e| StoreError::Unavailable(format!("cannot create data dir {}: {e}", dir.display())))?;
        let file = dir.join("dermis.sqlite");
        for f in [file.clone(), dir.join("dermis.sqlite-wal"), dir.join("dermis.sqlite-shm")] {
            crate::private::private_file(&f, f == file)
                .map_err(|e| StoreError::Unavailable(format!("cannot make {} private: {e}", f.display())))?;
        }
        Self::connect(&format!("sqlite://{}?mode=rwc", url_path(&file)), size).await
    }

    /// On SQLite, whether deletes on `conn` zero every byte they free, freed pages included
    /// (`secure_delete = ON`: for an erasure), or only where no extra write is needed (`FAST`,
    /// every connection's default: freeing a large outbox row's overflow pages would otherwise
    /// write them all again). Nothing on PostgreSQL (see [`Db::scrub`]).
    pub async fn secure_deletes(conn: &mut sqlx::AnyConnection, backend: Backend, all: bool) -> Result<(), StoreError> {
        if backend == Backend::Sqlite {
            conn.execute(if all { "PRAGMA secure_delete = ON" } else { "PRAGMA secure_delete = FAST" }).await?;
        }
        Ok(())
    }

    /// After an erasure. On SQLite: copies the whole WAL into the database file and truncates
    /// it (`wal_checkpoint(TRUNCATE)`), so the erased rows' old page images are gone from the
    /// WAL too (the file's own pages were zeroed by `secure_delete`). It runs on a reader
    /// connection with a 100 ms busy wait, never on the write pool: a TRUNCATE checkpoint holds
    /// SQLite's write lock while it waits for readers, and ingestion's writer must not wait
    /// longer than that; between attempts (at most 30, about 5 s) nothing is held. Returns
    /// whether it completed. On PostgreSQL: starts a `VACUUM` of `tables` in the background
    /// (their dead row versions become reusable; PostgreSQL does not zero them, and its WAL
    /// keeps what it logged) and returns at once.
    pub async fn scrub(&self, tables: &[&str]) -> Result<bool, StoreError> {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = self.read.acquire().await?;
                conn.execute("PRAGMA busy_timeout = 100").await?;
                let mut done = false;
                for attempt in 0..30u64 {
                    let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&mut *conn).await;
                    if let Ok(row) = row
                        && sqlx::Row::try_get::<i64, _>(&row, 0).is_ok_and(|busy| busy == 0)
                    {
                        done = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20 * (attempt + 1).min(10))).await;
                }
                conn.execute("PRAGMA busy_timeout = 5000").await?;
                Ok(done)
            }
            Backend::Postgres => {
                let mut statements = Vec::new();
                for t in tables {
                    if !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        return Err(StoreError::InvalidInput(format!("not a table name: {t:?}")));
                    }
                    statements.push(format!("VACUUM {t}"));
                }
                let pool = self.write.clone();
                tokio::spawn(async move {
                    for s in statements {
                        if let Err(e) = pool.execute(s.as_str()).await {
                            tracing::warn!(error = %e, statement = s, "vacuum after an erasure failed");
                        }
                    }
                });
                Ok(true)
            }
        }
    }

    /// Connects to `sqlite://PATH?mode=rwc` or `postgres://...`.
    pub async fn connect(url: &str, size: PoolSize) -> Result<Self, StoreError> {
        install_default_drivers();
        if url.starts_with("sqlite:") {
            let read = sqlite_pool(url, size.max_connections.clamp(1, 64), size).await?;
            let write = sqlite_pool(url, 1, size).await?;
            let alive = std::sync::Arc::new(());
            tokio::spawn(checkpoints(read.clone(), std::sync::Arc::downgrade(&alive)));
            // The file as sqlx reads the URL (percent-decoding included); an in-memory database
            // has none, and a domain that needs its own connection refuses it.
            let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(url)?;
            let name = options.get_filename();
            let in_memory = name.as_os_str().is_empty() || name.to_string_lossy().contains(":memory:");
            let file = (!in_memory).then(|| name.to_owned());
            Ok(Self {
                backend: Backend::Sqlite,
                read,
                write,
                max_read: size.max_connections.clamp(1, 64),
                file,
                _alive: alive,
            })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = AnyPoolOptions::new()
                .max_connections(size.max_connections)
                .acquire_timeout(size.acquire_timeout)
                .connect(url)
                .await?;
            Ok(Self {
                backend: Backend::Postgres,
                read: pool.clone(),
                write: pool,
                max_read: size.max_connections,
                file: None,
                _alive: std::sync::Arc::new(()),
            })
        } else {
            Err(StoreError::Unavailable("database URL must start with sqlite:// or postgres://".to_owned()))
        }
    }

    /// The backend behind this handle.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The SQLite file, for a domain that keeps a connection of its own on it (the event log's
    /// writer); `None` on PostgreSQL and for an in-memory SQLite database.
    pub fn sqlite_file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Pool for reads.
    pub fn reader(&self) -> &AnyPool {
        &self.read
    }

    /// Pool for writes (one connection on SQLite).
    pub fn writer(&self) -> &AnyPool {
        &self.write
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`):
    /// a deferred transaction that reads first and writes later fails without waiting when
    /// another process (a `dermis import` beside a running server) wrote in between.
    pub async fn begin(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.write.begin().await?,
        })
    }

    /// Checks that the database answers a query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.read.execute("SELECT 1").await?;
        Ok(())
    }

    /// Statistics of the read and write pools (the same pool on PostgreSQL).
    pub fn pool_stats(&self) -> [(&'static str, PoolStats); 2] {
        let stats = |p: &AnyPool, max: u32| PoolStats { size: p.size(), idle: p.num_idle() as u32, max };
        [
            ("read", stats(&self.read, self.max_read)),
            ("write", stats(&self.write, if self.backend == Backend::Sqlite { 1 } else { self.max_read })),
        ]
    }

    /// Closes every connection (on shutdown, after in-flight requests finished).
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

/// A file path as the path of a `sqlite://` URL: bytes other than letters, digits and `/._-~`
/// percent-encoded (sqlx decodes them), so a folder named `my data` or `a#b` opens as itself.
fn url_path(path: &Path) -> String {
    let mut out = String::new();
    for b in path.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"/._-~".contains(b) {
            out.push(char::from(*b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How often the WAL is copied back into the database file: small, frequent passive
/// checkpoints kept the p99 of batched ingestion at 56-139 ms where every 250 ms it was 183 ms
/// (a writer then met a large WAL).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);

/// Checkpoints the WAL from a reader connection, off the writers' path. A PASSIVE checkpoint
/// copies what no reader still needs and never waits for (or blocks) a writer. Writers' own
/// automatic checkpoints are raised to 8,192 pages (32 MB of WAL) so that they only step in if
/// this task falls behind: a writer that checkpoints after its commit does so while it still
/// holds the process's write turn (see the event log's writer). Stops when the pool closes or
/// the last [`Db`] handle is dropped.
async fn checkpoints(read: AnyPool, alive: std::sync::Weak<()>) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if read.is_closed() || alive.strong_count() == 0 {
            return;
        }
        if let Err(e) = read.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
            if read.is_closed() {
                return;
            }
            tracing::debug!(error = %e, "WAL checkpoint failed; retrying at the next tick");
        }
    }
}

async fn sqlite_pool(url: &str, max: u32, size: PoolSize) -> Result<AnyPool, StoreError> {
    Ok(AnyPoolOptions::new()
        .max_connections(max)
        .min_connections(1)
        .test_before_acquire(false)
        .acquire_timeout(size.acquire_timeout)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                // WAL: readers never block the writer. synchronous=FULL: a commit that returned is on
                // disk even if the machine loses power (orders and stock must not be lost).
                // busy_timeout: wait for a checkpoint instead of failing.
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA synchronous = FULL").await?;
                conn.execute("PRAGMA busy_timeout = 5000").await?;
                conn.execute("PRAGMA wal_autocheckpoint = 8192").await?;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                // Deleted content is overwritten with zeros where that costs no extra write (the
                // page is written anyway). An erasure switches to `ON` for its deletes, which also
                // zeroes the pages it frees (see `Db::secure_deletes`).
                conn.execute("PRAGMA secure_delete = FAST").await?;
                // LIKE compares case as PostgreSQL does, so filters answer alike on both.
                conn.execute("PRAGMA case_sensitive_like = ON").await?;
                Ok(())
            })
        })
        .connect(url)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_data_dir_with_spaces_and_url_characters_opens_as_itself() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("my data #1 ?x=%20");
        let db = Db::open_data_dir(&dir, PoolSize::default()).await.unwrap();
        db.ping().await.unwrap();
        assert!(dir.join("dermis.sqlite").exists());
        assert_eq!(db.sqlite_file(), Some(dir.join("dermis.sqlite").as_path()));
        db.close().await;
    }
}
