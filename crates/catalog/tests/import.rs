//! Import writes through the catalog's own operations: a second import of the same file touches
//! nothing, a changed row is updated with the events a client's update would write, and a row
//! refused for a value another product holds is reported without costing its batch anything.

use dermis_catalog::import::{self, ImportReport};
use dermis_catalog::index::SearchIndex;
use dermis_catalog::input::ListProducts;
use dermis_catalog::search::SearchFilter;
use dermis_catalog::store;
use dermis_catalog::{Catalog, MIGRATIONS};
use dermis_core::Limit;
use dermis_store::Db;
use serde_json::{Value, json};

const ALL: &[&[dermis_store::Migration]] = &[dermis_store::MIGRATIONS, MIGRATIONS];

dermis_store::backend_tests!(ALL;
    reimport_changes_only_what_changed_with_its_events,
    a_refused_row_costs_its_batch_nothing,
    an_import_is_seen_by_the_next_search_of_its_node,
);

fn item(ext: &str, name: &str, skus: Value) -> Value {
    json!({"external_id": ext, "name": name, "brand": "Brand", "ingredients": "Aqua, Glycerin, Niacinamide", "skus": skus})
}

fn sku(code: &str, price: i64) -> Value {
    json!({"code": code, "price": {"amount_minor": price, "currency": "USD"}})
}

async fn run(db: &Db, items: &[Value]) -> ImportReport {
    let text = serde_json::to_string(items).unwrap();
    import::import(db, import::read_json(&text).unwrap(), 2).await.unwrap()
}

/// The outbox after the first `skip` events, as (event type, aggregate id).
async fn events_after(db: &Db, skip: usize) -> Vec<(String, String)> {
    let all = store::outbox(db.reader(), 1000).await.unwrap();
    all.into_iter().skip(skip).map(|(t, id, _)| (t, id)).collect()
}

async fn min_price(db: &Db, product_id: &str) -> Option<i64> {
    dermis_store::sqlx::query_scalar("SELECT min_price_minor FROM product_search WHERE product_id = $1")
        .bind(product_id)
        .fetch_one(db.reader())
        .await
        .unwrap()
}

async fn id_of(c: &Catalog, ext: &str) -> String {
    c.product_by_reference(ext).await.unwrap().unwrap().id
}

async fn reimport_changes_only_what_changed_with_its_events(db: Db) {
    let c = Catalog::new(db.clone());
    let first = [
        item("P1", "Cleanser", json!([sku("P1-A", 1000)])),
        item("P2", "Serum", json!([sku("P2-A", 2500), sku("P2-B", 4000)])),
        item("P3", "Mask", json!([sku("P3-A", 1800)])),
    ];
    let r = run(&db, &first).await;
    assert_eq!((r.rows, r.imported, r.updated, r.unchanged, r.skus_created), (3, 3, 0, 0, 4), "{r:?}");
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    let (p1, p2) = (id_of(&c, "P1").await, id_of(&c, "P2").await);
    let created = events_after(&db, 0).await;
    let kinds: Vec<&str> = created.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "catalog.product.created").count(), 3);
    assert_eq!(kinds.iter().filter(|k| **k == "catalog.sku.created").count(), 4);
    // A product is announced before its SKUs, as a client's creates would.
    let p1_events: Vec<&str> = created.iter().filter(|(_, id)| *id == p1).map(|(t, _)| t.as_str()).collect();
    assert_eq!(p1_events, ["catalog.product.created"]);
    assert_eq!(kinds[0], "catalog.product.created");
    assert_eq!(min_price(&db, &p2).await, Some(2500));
    let facts = c.product(&p1).await.unwrap().attributes.unwrap();
    assert!(facts.has_ingredient_list, "facts are derived on import");

    // The same file again: nothing is written.
    let again = run(&db, &first).await;
    assert_eq!((again.imported, again.updated, again.unchanged, again.skus_created), (0, 0, 3, 0), "{again:?}");
    assert_eq!(events_after(&db, created.len()).await, [], "no event for an unchanged row");
    assert_eq!(c.product(&p1).await.unwrap().version, 1);

    // One product renamed, one price lowered, one new product: only those are written.
    let changed = [
        item("P1", "Gentle Cleanser", json!([sku("P1-A", 1000)])),
        item("P2", "Serum", json!([sku("P2-A", 2500), sku("P2-B", 1900)])),
        item("P3", "Mask", json!([sku("P3-A", 1800)])),
        item("P4", "Toner", json!([sku("P4-A", 1500)])),
    ];
    let r = run(&db, &changed).await;
    assert_eq!((r.imported, r.updated, r.unchanged, r.skus_created), (1, 2, 1, 1), "{r:?}");
    let p4 = id_of(&c, "P4").await;
    let after = events_after(&db, created.len()).await;
    let kinds: Vec<&str> = after.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        kinds,
        ["catalog.product.updated", "catalog.sku.updated", "catalog.product.created", "catalog.sku.created"],
        "{after:?}"
    );
    assert_eq!((after[0].1.as_str(), after[2].1.as_str()), (p1.as_str(), p4.as_str()));
    let renamed = c.product(&p1).await.unwrap();
    assert_eq!((renamed.name.as_str(), renamed.version), ("Gentle Cleanser", 2));
    assert_eq!(c.product(&p2).await.unwrap().version, 1, "a SKU's price is the SKU's change");
    assert_eq!(min_price(&db, &p2).await, Some(1900), "the product's lowest price follows its SKU");
}

async fn a_refused_row_costs_its_batch_nothing(db: Db) {
    let c = Catalog::new(db.clone());
    let r = run(&db, &[item("P1", "Cleanser", json!([sku("SHARED", 1000)]))]).await;
    assert_eq!(r.imported, 1);
    let before = events_after(&db, 0).await.len();
    // In one batch of two: a new product whose SKU code P1's SKU holds, then a good one; and a
    // row naming one SKU code twice.
    let r = run(
        &db,
        &[
            item("P5", "Balm", json!([sku("P5-A", 900), sku("SHARED", 1000)])),
            item("P6", "Oil", json!([sku("P6-A", 3000)])),
            item("P7", "Mist", json!([sku("P7-A", 1000), sku("P7-A", 1200)])),
        ],
    )
    .await;
    assert_eq!((r.rows, r.imported, r.rejected.len()), (3, 1, 2), "{r:?}");
    assert_eq!((r.rejected[0].line, r.rejected[0].external_id.as_deref()), (1, Some("P5")));
    assert!(r.rejected[0].reason.contains("SHARED"), "{}", r.rejected[0].reason);
    assert_eq!((r.rejected[1].line, r.rejected[1].external_id.as_deref()), (3, Some("P7")));
    assert!(r.rejected[1].reason.contains("appears twice"), "{}", r.rejected[1].reason);
    // Nothing of P5 stays (neither the product nor its first SKU nor their events); P6 is whole.
    assert!(c.product_by_reference("P5").await.unwrap().is_none());
    let p6 = id_of(&c, "P6").await;
    let after = events_after(&db, before).await;
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(after.iter().all(|(t, id)| t == "catalog.sku.created" || *id == p6), "{after:?}");
    let skus: i64 = dermis_store::sqlx::query_scalar("SELECT COUNT(*) FROM skus").fetch_one(db.reader()).await.unwrap();
    assert_eq!(skus, 2);
}

/// Names the catalog's search finds for `q`.
async fn find(c: &Catalog, q: &str) -> Vec<String> {
    let filter = SearchFilter::parse(&ListProducts { q: Some(q.into()), ..ListProducts::default() }).unwrap();
    let page = c.search(&filter, None, Limit::try_from(100).unwrap(), false).await.unwrap();
    page.items
        .iter()
        .map(|l| serde_json::from_str::<Value>(l.json()).unwrap()["name"].as_str().unwrap().to_owned())
        .collect()
}

/// An import through a catalog with a search index goes through the same step after its commit
/// as a client's write: the next search on that node sees it.
async fn an_import_is_seen_by_the_next_search_of_its_node(db: Db) {
    let index = SearchIndex::new(Catalog::new(db.clone()));
    index.rebuild().await.unwrap();
    let c = Catalog::new(db.clone()).with_index(index);
    let rows = |name: &str| {
        let text = serde_json::to_string(&[item("P1", name, json!([sku("P1-A", 1000)]))]).unwrap();
        import::read_json(&text).unwrap()
    };
    assert_eq!(import::import_into(&c, rows("Tinted Balm"), 200).await.unwrap().imported, 1);
    assert_eq!(find(&c, "tinted").await, ["Tinted Balm"]);
    assert_eq!(import::import_into(&c, rows("Sheer Lip Balm"), 200).await.unwrap().updated, 1);
    assert!(find(&c, "tinted").await.is_empty());
    assert_eq!(find(&c, "sheer").await, ["Sheer Lip Balm"]);
}
