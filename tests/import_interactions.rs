//! `dermis import interactions FILE`: reviews go through event ingestion into the event log
//! once, whatever the number of imports; malformed rows are reported with their line; the
//! outbox carries what was stored to the bus for running and later servers.
//!
//! The second test imports the real `val_df.csv.gz` from `../shared/data` and prints the rate;
//! it is skipped with a message where that folder is absent, unless
//! `DERMIS_REQUIRE_SHARED_DATA` is set (`.ci/run` sets it), then it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dermis_events::outbox::Ingested;
use dermis_server::Config;
use serde_json::Value;

/// `dermis ARGS --data-dir DATA` with nothing else configured.
fn dermis(data: &Path, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dermis"));
    c.args(args).arg("--data-dir").arg(data).current_dir(data).env("DERMIS_LOG__FILTER", "warn");
    for var in ["DERMIS_CONFIG", "DERMIS_DATABASE_URL", "DERMIS_BUS_URL", "DERMIS_REDIS_URL", "DERMIS_DATA_DIR"] {
        c.env_remove(var);
    }
    c.output().expect("run dermis")
}

fn text(o: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Runs `import interactions FILE --json` and returns its report.
fn import_json(data: &Path, file: &Path) -> Value {
    let o = dermis(data, &["import", "interactions", file.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&o)))
}

/// The store of a data dir, as a server would open it.
async fn open(data: &Path) -> dermis_store::Db {
    let config = Config { data_dir: data.to_path_buf(), ..Config::default() };
    dermis_server::app::open_store(&config).await.unwrap()
}

/// Every `Product Reviewed` event in the log.
async fn reviews_in_log(db: &dermis_store::Db) -> Vec<dermis_events::log::Logged> {
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let page = dermis_events::log::since(db, &after, 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        all.extend(page.into_iter().filter(|l| l.message.event.as_deref() == Some("Product Reviewed")));
    }
    all
}

#[tokio::test]
async fn reviews_are_stored_once_and_malformed_rows_are_reported_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let catalog = data.join("catalog.json");
    std::fs::write(
        &catalog,
        r#"[{"external_id": "P1", "name": "Calming Cream", "brand": "Dermis"},
            {"external_id": "P2", "name": "Gentle Cleanser", "brand": "Dermis"}]"#,
    )
    .unwrap();
    let o = dermis(data, &["import", "catalog", catalog.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));

    let file = data.join("reviews.csv");
    std::fs::write(
        &file,
        "author_id,product_id,rating,submission_time\n\
         a1,P1,5.0,2019-03-21\n\
         a1,P2,4,2019-03-22 10:00:00\n\
         a2,P1,3.0,\n\
         a2,P9,2.0,2023-01-01\n\
         a3,P2,five,2023-01-02\n\
         a3,P1,4.0,2023-02-30\n",
    )
    .unwrap();

    let first = import_json(data, &file);
    assert_eq!(first["rows"], 6, "{first}");
    assert_eq!((first["sent"].as_u64(), first["stored"].as_u64()), (Some(4), Some(4)), "{first}");
    assert_eq!((first["duplicates"].as_u64(), first["rejected"].as_u64()), (Some(0), Some(2)), "{first}");
    let rejected = first["rejected_rows"].as_array().unwrap();
    assert_eq!(rejected[0]["line"], 6, "{first}");
    assert!(rejected[0]["reason"].as_str().unwrap().contains("\"five\""), "{first}");
    assert_eq!(rejected[1]["line"], 7, "{first}");
    assert!(rejected[1]["reason"].as_str().unwrap().contains("2023-02-30"), "{first}");
    assert_eq!((first["unknown_product_rows"].as_u64(), first["catalog_products"].as_u64()), (Some(1), Some(2)));

    // Again, in the plain form: everything valid is a duplicate, the same rows are refused.
    let o = dermis(data, &["import", "interactions", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for needle in ["6 rows: 4 sent, 0 stored, 4 duplicates", "2 rejected", "rejected line 6:", "rejected line 7:"] {
        assert!(out.contains(needle), "{needle:?} missing from:\n{}", text(&o));
    }

    let db = open(data).await;
    let logged = reviews_in_log(&db).await;
    assert_eq!(logged.len(), 4, "each valid row once: {logged:#?}");
    let source = first["source"].as_str().unwrap();
    assert!(logged.iter().all(|l| l.write_key_id == source));
    let a1 = logged
        .iter()
        .find(|l| l.message.user_id.as_deref() == Some("a1") && l.message.payload["properties"]["product_id"] == "P1")
        .expect("a1's review of P1");
    assert_eq!(a1.message.payload["properties"]["rating"], 5.0);
    // 2019-03-21T00:00:00Z: historical reviews keep their time.
    assert_eq!(a1.message.timestamp_ms, 1_553_126_400_000);
    let without_time = logged.iter().find(|l| l.message.user_id.as_deref() == Some("a2")).unwrap();
    assert_eq!(without_time.message.payload["properties"]["product_id"], "P1");
    let unknown = logged.iter().any(|l| l.message.payload["properties"]["product_id"] == "P9");
    assert!(unknown, "a product the catalog lacks is stored all the same");

    // One outbox row, from the first import, naming the four stored messages.
    let outbox = dermis_events::outbox::pending(&db, 100).await.unwrap();
    let handed: Vec<Ingested> = outbox.iter().map(|r| serde_json::from_str(&r.payload).unwrap()).collect();
    let reviews: Vec<&Ingested> = handed.iter().filter(|i| i.write_key_id == source).collect();
    assert_eq!(reviews.len(), 1, "{handed:?}");
    let mut ids: Vec<&str> = reviews[0].messages.iter().map(String::as_str).collect();
    let mut stored: Vec<&str> = logged.iter().map(|l| l.message.message_id.as_str()).collect();
    ids.sort_unstable();
    stored.sort_unstable();
    assert_eq!(ids, stored);
    assert!(reviews[0].node.is_empty(), "no server may take them as already seen");
    db.close().await;
}

#[test]
fn a_file_without_the_columns_is_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wrong.csv");
    std::fs::write(&file, "user,item\nu1,P1\n").unwrap();
    let o = dermis(dir.path(), &["import", "interactions", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("author_id"), "{}", text(&o));
}

/// The shared validation split, or `None` (with a message) where `../shared` is absent.
fn shared_val_file() -> Option<PathBuf> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    let path = PathBuf::from(manifest).join(
        "../shared/data/sephora-products-and-skincare-reviews/derived/ishitasingh23-skincare-10core-splits/val_df.csv.gz",
    );
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("DERMIS_REQUIRE_SHARED_DATA").is_err(),
        "DERMIS_REQUIRE_SHARED_DATA is set but {} is missing",
        path.display()
    );
    eprintln!("skipped: {} not found (the shared data set is not part of the repository)", path.display());
    None
}

#[tokio::test]
async fn the_shared_validation_split_imports_once_and_the_rate_is_printed() {
    let Some(file) = shared_val_file() else { return };
    let dir = tempfile::tempdir().unwrap();
    let first = import_json(dir.path(), &file);
    let rows = first["rows"].as_u64().unwrap();
    assert!(rows > 20_000, "{first}");
    assert_eq!(first["rejected"], 0, "{first}");
    assert_eq!(first["sent"].as_u64(), Some(rows), "{first}");
    let stored = first["stored"].as_u64().unwrap();
    // Rows repeating an (author, product) pair without a time are one review.
    assert_eq!(stored + first["duplicates"].as_u64().unwrap(), rows, "{first}");
    eprintln!(
        "import interactions {}: {rows} rows, {stored} stored in {:.1} s: {:.0} rows/s",
        file.display(),
        first["seconds"].as_f64().unwrap(),
        first["rows_per_second"].as_f64().unwrap()
    );
    let again = import_json(dir.path(), &file);
    assert_eq!((again["stored"].as_u64(), again["duplicates"].as_u64()), (Some(0), Some(rows)), "{again}");
    eprintln!(
        "again: all {rows} duplicates in {:.1} s: {:.0} rows/s",
        again["seconds"].as_f64().unwrap(),
        again["rows_per_second"].as_f64().unwrap()
    );
    let db = open(dir.path()).await;
    assert_eq!(reviews_in_log(&db).await.len() as u64, stored);
    db.close().await;
}
