//! `dermis audit verify` on a data dir: exit 0 with the count while the chain is intact, exit 1
//! naming the first bad entry after a row was edited or deleted behind the server's back.

use std::process::{Command, Output};

use dermis_audit::{Action, Audit, Entry};
use dermis_store::Db;
use dermis_store::db::PoolSize;

use crate::helpers::SECRET;

fn dermis(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dermis"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .current_dir(dir)
        .env("DERMIS_AUTH__JWT_SECRET", SECRET)
        .env("DERMIS_LOG__FILTER", "warn")
        .env_remove("DERMIS_CONFIG")
        .env_remove("DERMIS_DATABASE_URL")
        .env_remove("DERMIS_BUS_URL")
        .env_remove("DERMIS_REDIS_URL")
        .output()
        .expect("run dermis")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn sql(dir: &std::path::Path, statement: &str) {
    let db = Db::open_data_dir(dir, PoolSize::default()).await.unwrap();
    dermis_store::sqlx::query(statement).execute(db.writer()).await.unwrap();
    db.close().await;
}

#[tokio::test]
async fn audit_verify_exits_0_when_intact_and_1_naming_the_entry_after_an_edit_or_a_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let migrate = dermis(dir.path(), &["migrate"]);
    assert!(migrate.status.success(), "{}", text(&migrate.stderr));

    let empty = dermis(dir.path(), &["audit", "verify"]);
    assert_eq!(empty.status.code(), Some(0), "{}", text(&empty.stderr));
    assert!(text(&empty.stdout).contains("intact: 0 entries"), "{}", text(&empty.stdout));

    let db = Db::open_data_dir(dir.path(), PoolSize::default()).await.unwrap();
    let audit = Audit::new(db.clone(), dermis_core::clock::system());
    for i in 0..5 {
        let e = Entry::new("admin-1", "admin", "support", format!("req-{i}"), Action::CUSTOMER_READ)
            .about("cust-9")
            .fields(&["email"]);
        audit.record(e).await.unwrap();
    }
    db.close().await;

    let intact = dermis(dir.path(), &["audit", "verify"]);
    assert_eq!(intact.status.code(), Some(0), "{}", text(&intact.stderr));
    assert!(text(&intact.stdout).contains("intact: 5 entries"), "{}", text(&intact.stdout));

    let export = dermis(dir.path(), &["audit", "export", "cust-9"]);
    assert!(export.status.success(), "{}", text(&export.stderr));
    let entries: serde_json::Value = serde_json::from_slice(&export.stdout).unwrap();
    assert_eq!(entries.as_array().map(Vec::len), Some(5));

    sql(dir.path(), "UPDATE audit_log SET actor = 'intruder' WHERE seq = 3").await;
    let edited = dermis(dir.path(), &["audit", "verify"]);
    assert_eq!(edited.status.code(), Some(1), "{}", text(&edited.stderr));
    assert!(edited.stdout.is_empty(), "{}", text(&edited.stdout));
    assert!(text(&edited.stderr).contains("broken at entry 3: edited"), "{}", text(&edited.stderr));

    // Put the actor back: intact again. Then drop the newest entry: the head still counts it.
    sql(dir.path(), "UPDATE audit_log SET actor = 'admin-1' WHERE seq = 3").await;
    assert_eq!(dermis(dir.path(), &["audit", "verify"]).status.code(), Some(0));
    sql(dir.path(), "DELETE FROM audit_log WHERE seq = 5").await;
    let truncated = dermis(dir.path(), &["audit", "verify"]);
    assert_eq!(truncated.status.code(), Some(1), "{}", text(&truncated.stderr));
    assert!(text(&truncated.stderr).contains("broken at entry 5: deleted"), "{}", text(&truncated.stderr));
}
