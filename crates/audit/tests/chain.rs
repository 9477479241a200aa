//! The audit chain on both backends: intact chains verify; an edited, deleted (middle or last),
//! rewritten or inserted entry is named; concurrent appends keep one linear chain.

use std::sync::Arc;

use dermis_audit::chain::Hashed;
use dermis_audit::{Action, Audit, Auditor, BadEntry, Entry, MIGRATIONS};
use dermis_core::clock::ManualClock;
use dermis_store::Db;
use dermis_store::sqlx;

const T0: i64 = 1_780_000_000_000;

fn audit(db: &Db) -> (Audit, Arc<ManualClock>) {
    let clock = ManualClock::at(T0);
    (Audit::new(db.clone(), clock.clone()), clock)
}

fn entry(i: usize) -> Entry {
    Entry::new(format!("staff-{}", i % 3), "store_associate", "consultation", format!("req-{i}"), Action::CUSTOMER_READ)
        .about(format!("cust-{}", i % 2))
        .fields(&["email", "allergies"])
}

async fn fill(audit: &Audit, clock: &ManualClock, n: usize) {
    for i in 0..n {
        clock.advance(7);
        audit.record(entry(i)).await.unwrap();
    }
}

async fn exec(db: &Db, sql: &str) {
    sqlx::query(sql).execute(db.writer()).await.unwrap();
}

fn bad(r: Result<u64, BadEntry>) -> BadEntry {
    r.expect_err("the chain must be reported broken")
}

async fn an_empty_log_and_an_intact_chain_verify(db: Db) {
    let (audit, clock) = audit(&db);
    assert_eq!(audit.verify().await.unwrap(), Ok(0));
    fill(&audit, &clock, 10).await;
    assert_eq!(audit.verify().await.unwrap(), Ok(10));
    let (seq, hash) = audit.head().await.unwrap();
    assert_eq!(seq, 10);
    assert_eq!(hash.len(), 64);

    // The export of one customer: their entries only, oldest first, as recorded.
    let mine = audit.export("cust-1").await.unwrap();
    assert_eq!(mine.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2, 4, 6, 8, 10]);
    assert!(mine.iter().all(|r| r.subject.as_deref() == Some("cust-1")));
    assert_eq!(mine[0].at, T0 + 14, "timestamped by the injected clock");
    assert_eq!(mine[0].fields, vec!["email", "allergies"]);
    assert_eq!(mine[0].action, "customer.read");
    assert_eq!(mine[0].request_id, "req-1");
    assert!(audit.export("nobody").await.unwrap().is_empty());
}

async fn an_edited_actor_is_named(db: Db) {
    let (audit, clock) = audit(&db);
    fill(&audit, &clock, 10).await;
    exec(&db, "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 4").await;
    let b = bad(audit.verify().await.unwrap());
    assert_eq!(b.seq, 4, "{b}");
    assert!(b.reason.starts_with("edited"), "{b}");
}

async fn an_edited_entry_with_its_hash_recomputed_is_named(db: Db) {
    let (audit, clock) = audit(&db);
    fill(&audit, &clock, 6).await;
    let r = audit.export("cust-0").await.unwrap().into_iter().find(|r| r.seq == 3).unwrap();
    let fields: Vec<String> = vec![];
    let forged = Hashed {
        seq: 3,
        at: r.at,
        actor: &r.actor,
        role: &r.role,
        purpose: &r.purpose,
        request_id: &r.request_id,
        action: &r.action,
        subject: r.subject.as_deref(),
        fields: &fields,
        prev_hash: &r.prev_hash,
    }
    .hash();
    exec(&db, &format!("UPDATE audit_log SET fields = '[]', hash = '{forged}' WHERE seq = 3")).await;
    let b = bad(audit.verify().await.unwrap());
    assert_eq!(b.seq, 3, "{b}");
    assert!(b.reason.starts_with("rewritten"), "{b}");
}

async fn a_deleted_middle_entry_is_named(db: Db) {
    let (audit, clock) = audit(&db);
    fill(&audit, &clock, 10).await;
    exec(&db, "DELETE FROM audit_log WHERE seq = 5").await;
    let b = bad(audit.verify().await.unwrap());
    assert_eq!(b.seq, 5, "{b}");
    assert!(b.reason.starts_with("deleted"), "{b}");
}

async fn a_deleted_last_entry_is_named(db: Db) {
    let (audit, clock) = audit(&db);
    fill(&audit, &clock, 10).await;
    exec(&db, "DELETE FROM audit_log WHERE seq >= 9").await;
    let b = bad(audit.verify().await.unwrap());
    assert_eq!(b.seq, 9, "{b}");
    assert!(b.reason.starts_with("deleted") && b.reason.contains("counts 10"), "{b}");
    // Everything deleted: still caught, at the first entry.
    exec(&db, "DELETE FROM audit_log").await;
    assert_eq!(bad(audit.verify().await.unwrap()).seq, 1);
}

async fn an_inserted_entry_is_named(db: Db) {
    let (audit, clock) = audit(&db);
    fill(&audit, &clock, 3).await;
    let (_, head) = audit.head().await.unwrap();
    exec(
        &db,
        &format!(
            "INSERT INTO audit_log (seq, at, actor, role, purpose, request_id, action, subject, fields, prev_hash, hash)
             VALUES (4, {T0}, 'ghost', 'admin', 'x', 'r', 'customer.read', NULL, '[]', '{head}', '{head}')"
        ),
    )
    .await;
    let b = bad(audit.verify().await.unwrap());
    assert_eq!(b.seq, 4, "{b}");
    assert!(b.reason.starts_with("inserted"), "{b}");
}

async fn concurrent_appends_keep_one_linear_chain(db: Db) {
    let (audit, _clock) = audit(&db);
    let auditor: Arc<dyn Auditor> = Arc::new(audit.clone());
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let auditor = auditor.clone();
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..50 {
                    seqs.push(auditor.record(entry(t * 50 + i)).await.unwrap().seq);
                }
                seqs
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=400).collect::<Vec<i64>>(), "every append got its own seq, without gaps");
    assert_eq!(audit.verify().await.unwrap(), Ok(400));
}

async fn a_chain_longer_than_one_page_verifies_and_breaks_on_a_later_page(db: Db) {
    let (audit, clock) = audit(&db);
    fill(&audit, &clock, 2_050).await;
    assert_eq!(audit.verify().await.unwrap(), Ok(2_050));
    exec(&db, "UPDATE audit_log SET purpose = 'marketing' WHERE seq = 1500").await;
    exec(&db, "DELETE FROM audit_log WHERE seq = 1800").await;
    let b = bad(audit.verify().await.unwrap());
    assert_eq!(b.seq, 1500, "the first bad entry, not a later one: {b}");
}

async fn bad_entries_are_refused_and_nothing_is_stored(db: Db) {
    let (audit, _clock) = audit(&db);
    let empty_actor = Entry::new("", "admin", "support", "r", Action::CUSTOMER_READ);
    assert!(audit.record(empty_actor).await.is_err());
    let nul = Entry::new("a", "admin", "support", "r", Action::CUSTOMER_READ).about("c\0");
    assert!(audit.record(nul).await.is_err());
    assert!(Action::new("Customer Read").is_err());
    assert_eq!(Action::new("api_key.create").unwrap().as_str(), "api_key.create");
    assert_eq!(audit.verify().await.unwrap(), Ok(0));
}

dermis_store::backend_tests!(&[dermis_store::MIGRATIONS, MIGRATIONS];
    an_empty_log_and_an_intact_chain_verify,
    an_edited_actor_is_named,
    an_edited_entry_with_its_hash_recomputed_is_named,
    a_deleted_middle_entry_is_named,
    a_deleted_last_entry_is_named,
    an_inserted_entry_is_named,
    concurrent_appends_keep_one_linear_chain,
    a_chain_longer_than_one_page_verifies_and_breaks_on_a_later_page,
    bad_entries_are_refused_and_nothing_is_stored,
);
