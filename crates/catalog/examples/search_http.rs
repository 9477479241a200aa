//! The catalog's routes alone over HTTP, searching through the in-memory index (or through SQL
//! with `--sql`), to measure searches with wrk as `scripts/bench-search.sh` does, with a product
//! read as the baseline, before the server wires the index in. No middleware: both the product
//! read and the searches pay only routing, authentication and serialization.
//!
//! ```sh
//! cargo run -p dermis-catalog --release --example search_http -- DATA_DIR PORT [--sql]
//! ```
//!
//! `DATA_DIR` holds an imported catalog (the `search_bench` example leaves one). The first line on
//! stdout is a customer token; the server runs until killed.

use std::sync::Arc;
use std::time::Duration;

use dermis_auth::jwt::{JwtConfig, JwtVerifier, issue};
use dermis_auth::{ApiKeys, Authenticator, Role};
use dermis_catalog::Catalog;
use dermis_catalog::index::SearchIndex;
use dermis_catalog::routes::{self, CatalogState};
use dermis_store::Db;
use dermis_store::db::PoolSize;
use secrecy::SecretString;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).expect("DATA_DIR");
    let port: u16 = args.get(2).and_then(|p| p.parse().ok()).expect("PORT");
    let sql = args.iter().any(|a| a == "--sql");
    let db = Db::open_data_dir(std::path::Path::new(dir), PoolSize::default()).await.unwrap();
    for set in [dermis_store::MIGRATIONS, dermis_auth::MIGRATIONS, dermis_catalog::MIGRATIONS] {
        db.migrate(set).await.unwrap();
    }
    let secret = SecretString::from("bench-secret-bench-secret-bench-secret".to_owned());
    let token = issue(&secret, Role::Customer, "bench", None, Duration::from_secs(3 * 3600)).unwrap();
    let jwt = JwtVerifier::new(JwtConfig { hs256_secret: Some(secret), ..JwtConfig::default() }).await.unwrap();
    let auth = Arc::new(Authenticator::new(jwt, ApiKeys::new(db.clone())));
    let mut catalog = Catalog::new(db.clone());
    if !sql {
        let index = SearchIndex::new(catalog.clone());
        let n = index.rebuild().await.unwrap();
        eprintln!("index built: {n} products");
        catalog = catalog.with_index(index);
    }
    let (router, _) = routes::router().with_state(CatalogState { catalog, auth }).split_for_parts();
    println!("{token}");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    axum::serve(listener, router).await.unwrap();
}
