//! Isolated databases for tests: every test gets its own, so tests run in parallel.
//!
//! - SQLite: a file in a fresh temporary directory, removed when the [`TestDb`] drops.
//! - PostgreSQL: a fresh database `dermis_test_<ulid>` on the server named by
//!   `DERMIS_TEST_DATABASE_URL`, dropped when the [`TestDb`] drops.
//!
//! When `DERMIS_TEST_DATABASE_URL` is unset, [`TestDb::postgres`] returns `None` and the test says
//! it was skipped. CI sets it, and sets `DERMIS_REQUIRE_SERVICES=1` so a missing server fails
//! instead of skipping.

use sqlx::Executor;
use sqlx::any::AnyPoolOptions;

use crate::db::{Db, PoolSize};

/// Environment variable naming the PostgreSQL server tests may create databases on.
pub const DATABASE_URL_VAR: &str = "DERMIS_TEST_DATABASE_URL";

/// A database that exists for one test.
pub struct TestDb {
    db: Db,
    _dir: Option<tempfile::TempDir>,
    pg_drop: Option<(String, String)>,
    url: String,
}

impl TestDb {
    /// A migrated SQLite database in a temporary directory.
    pub async fn sqlite(migrations: &[&[crate::Migration]]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open_data_dir(dir.path(), PoolSize::default()).await.expect("open sqlite");
        for set in migrations {
            db.migrate(set).await.expect("migrate sqlite");
        }
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("dermis.sqlite").display());
        Self { db, _dir: Some(dir), pg_drop: None, url }
    }

    /// A migrated, fresh PostgreSQL database, or `None` (with a message) when no server is configured.
    pub async fn postgres(migrations: &[&[crate::Migration]]) -> Option<Self> {
        let admin_url = match std::env::var(DATABASE_URL_VAR) {
            Ok(url) if !url.is_empty() => url,
            _ => {
                assert!(
                    std::env::var("DERMIS_REQUIRE_SERVICES").is_err(),
                    "DERMIS_REQUIRE_SERVICES is set but {DATABASE_URL_VAR} is not"
                );
                eprintln!("skipped: set {DATABASE_URL_VAR}=postgres://... to run the PostgreSQL variant");
                return None;
            }
        };
        sqlx::any::install_default_drivers();
        let name = format!("dermis_test_{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
        let admin = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("{DATABASE_URL_VAR} is set but PostgreSQL is unreachable: {e}"));
        admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create test database");
        admin.close().await;
        let url = with_database(&admin_url, &name);
        let db = Db::connect(&url, PoolSize { max_connections: 4, ..PoolSize::default() })
            .await
            .expect("connect test database");
        for set in migrations {
            db.migrate(set).await.expect("migrate postgres");
        }
        Some(Self { db, _dir: None, pg_drop: Some((admin_url, name)), url })
    }

    /// The handle.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The URL of this database, to start a server on it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The data directory of a SQLite test database.
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self._dir.as_ref().map(|d| d.path())
    }
}

/// Replaces the database name (the URL path) of a PostgreSQL URL.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..].find('/').map(|i| i + scheme_end).unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.pg_drop.take() else { return };
        // Drop may run inside the test's runtime, which must not be blocked on: use a thread with
        // its own small runtime, and let the server end the test's connections (WITH (FORCE)).
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                if let Ok(admin) = AnyPoolOptions::new().max_connections(1).connect(&admin_url).await {
                    let _ = admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

/// Generates one `#[tokio::test]` per backend for each listed async test function, which takes a
/// [`Db`] migrated with `$migrations` (an expression of type `&[&[Migration]]`).
///
/// ```text
/// dermis_store::backend_tests!(MIGRATIONS; creates_product, lists_products);
/// ```
#[macro_export]
macro_rules! backend_tests {
    ($migrations:expr; $($name:ident),+ $(,)?) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let t = $crate::testing::TestDb::sqlite($migrations).await;
                    super::$name(t.db().clone()).await;
                }
            )+
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(t) = $crate::testing::TestDb::postgres($migrations).await else { return };
                    super::$name(t.db().clone()).await;
                }
            )+
        }
    };
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(with_database("postgres://u@h:5432", "x"), "postgres://u@h:5432/x");
        assert_eq!(with_database("postgres://u@h/db?sslmode=disable", "x"), "postgres://u@h/x?sslmode=disable");
    }
}
