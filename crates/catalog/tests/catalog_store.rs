//! The catalog's conformance suite: the same behaviour on SQLite and PostgreSQL.

use dermis_catalog::input::{NewProduct, NewSku, ProductChanges};
use dermis_catalog::service::Idempotent;
use dermis_catalog::store::{self, ProductFilter};
use dermis_catalog::{Catalog, CatalogError, MIGRATIONS, Money, ProductStatus, Variant};
use dermis_core::{IdempotencyKey, Limit};
use dermis_store::Db;

const ALL: &[&[dermis_store::Migration]] = &[dermis_store::MIGRATIONS, MIGRATIONS];

dermis_store::backend_tests!(ALL;
    changes_write_events_in_the_same_transaction,
    stale_versions_are_refused,
    concurrent_updates_never_lose_a_change,
    idempotent_creates_replay_and_detect_mismatch,
    failed_writes_leave_no_trace,
);

fn product(name: &str) -> NewProduct {
    NewProduct {
        name: name.into(),
        brand: "Brand".into(),
        external_id: None,
        category: None,
        description: None,
        ingredients: None,
        highlights: Vec::new(),
    }
}

fn sku(code: &str) -> NewSku {
    NewSku {
        code: code.into(),
        barcode: None,
        variant: Variant::default(),
        price: Money { amount_minor: 1000, currency: "EUR".into() },
    }
}

async fn changes_write_events_in_the_same_transaction(db: Db) {
    let c = Catalog::new(db.clone());
    let p = c.create_product(None, product("Cleanser")).await.unwrap().value;
    c.create_sku(&p.id, None, sku("CL-1")).await.unwrap();
    c.update_product(&p.id, ProductChanges { status: Some(ProductStatus::Discontinued), ..Default::default() }, None)
        .await
        .unwrap();
    let events = store::outbox(db.reader(), 10).await.unwrap();
    let types: Vec<_> = events.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(types, ["catalog.product.created", "catalog.sku.created", "catalog.product.discontinued"]);
    assert_eq!(events[2].2["status"], "discontinued");
    assert_eq!(events[0].1, p.id);
}

async fn stale_versions_are_refused(db: Db) {
    let c = Catalog::new(db);
    let p = c.create_product(None, product("Serum")).await.unwrap().value;
    let rename = |n: &str| ProductChanges { name: Some(n.into()), ..Default::default() };
    let p2 = c.update_product(&p.id, rename("Serum 2"), Some(1)).await.unwrap();
    assert_eq!(p2.version, 2);
    let err = c.update_product(&p.id, rename("Serum 3"), Some(1)).await.unwrap_err();
    assert!(matches!(err, CatalogError::VersionMismatch { expected: 1, actual: 2, .. }), "{err}");
    assert_eq!(c.product(&p.id).await.unwrap().name, "Serum 2");
}

async fn concurrent_updates_never_lose_a_change(db: Db) {
    let c = Catalog::new(db);
    let p = c.create_product(None, product("Mask")).await.unwrap().value;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let c = c.clone();
            let id = p.id.clone();
            tokio::spawn(async move {
                let ch = ProductChanges { description: Some(Some(format!("edit {i}"))), ..Default::default() };
                c.update_product(&id, ch, None).await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            // Under heavy contention an update may give up and ask for a retry, never silently.
            Err(CatalogError::Store(dermis_store::StoreError::Unavailable(_))) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let final_version = c.product(&p.id).await.unwrap().version;
    assert_eq!(final_version, 1 + ok, "every acknowledged update bumped the version exactly once");
}

async fn idempotent_creates_replay_and_detect_mismatch(db: Db) {
    let c = Catalog::new(db);
    let idem = |hash: &str| Idempotent {
        scope: "test".into(),
        key: IdempotencyKey::parse("k").unwrap(),
        request_hash: hash.into(),
    };
    let a = c.create_product(Some(idem("h1")), product("Toner")).await.unwrap();
    let b = c.create_product(Some(idem("h1")), product("Toner")).await.unwrap();
    assert!(!a.replayed && b.replayed);
    assert_eq!(a.value.id, b.value.id);
    let err = c.create_product(Some(idem("h2")), product("Other")).await.unwrap_err();
    assert!(matches!(err, CatalogError::IdempotencyKeyReused));
    let page = c.products(&ProductFilter::default(), None, Limit::default()).await.unwrap();
    assert_eq!(page.items.len(), 1);
}

async fn failed_writes_leave_no_trace(db: Db) {
    let c = Catalog::new(db.clone());
    let p = c.create_product(None, product("Balm")).await.unwrap().value;
    c.create_sku(&p.id, None, sku("B-1")).await.unwrap();
    let idem = Idempotent { scope: "s".into(), key: IdempotencyKey::parse("dup").unwrap(), request_hash: "h".into() };
    assert!(matches!(
        c.create_sku(&p.id, Some(idem.clone()), sku("B-1")).await,
        Err(CatalogError::Duplicate { field: "code", .. })
    ));
    // The failed create recorded neither its key nor an event, so a corrected retry with the same key works.
    let ok = c.create_sku(&p.id, Some(Idempotent { request_hash: "h".into(), ..idem }), sku("B-2")).await.unwrap();
    assert!(!ok.replayed);
    assert_eq!(store::outbox(db.reader(), 10).await.unwrap().len(), 3);
}
