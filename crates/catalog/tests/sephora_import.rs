//! Importing the real Sephora catalog from `../shared/data` (skipped with a message where that
//! folder is absent, as on a user's machine; `.ci/run` sets `DERMIS_REQUIRE_SHARED_DATA=1` so it
//! fails there instead).

mod common;

use common::product_info;
use dermis_catalog::import;
use dermis_store::testing::TestDb;

const ALL: &[&[dermis_store::Migration]] = &[dermis_store::MIGRATIONS, dermis_catalog::MIGRATIONS];

#[tokio::test]
async fn full_catalog_imports_once_and_reimports_as_unchanged() {
    let Some(path) = product_info() else { return };
    let t = TestDb::sqlite(ALL).await;
    let rows = import::read_file(&path).unwrap();
    assert_eq!(rows.len(), 8494);
    let first = import::import(t.db(), rows, 500).await.unwrap();
    assert_eq!(first.imported + first.rejected.len(), 8494, "{:?}", first.rejected.first());
    assert!(first.rejected.len() < 20, "{:?}", first.rejected);
    assert!(first.without_ingredients >= 900, "945 rows have no ingredient list: {}", first.without_ingredients);
    assert!(first.unknown_ingredients.len() <= 50);
    let again = import::import(t.db(), import::read_file(&path).unwrap(), 500).await.unwrap();
    assert_eq!(
        (again.imported, again.updated, again.unchanged),
        (0, 0, first.imported),
        "a second import changes nothing"
    );
    let products: i64 =
        dermis_store::sqlx::query_scalar("SELECT COUNT(*) FROM products").fetch_one(t.db().reader()).await.unwrap();
    let skus: i64 =
        dermis_store::sqlx::query_scalar("SELECT COUNT(*) FROM skus").fetch_one(t.db().reader()).await.unwrap();
    assert_eq!((products as usize, skus as usize), (first.imported, first.imported));
}

#[test]
fn every_real_declaration_parses_idempotently() {
    let Some(path) = product_info() else { return };
    let rows = import::read_file(&path).unwrap();
    let mut checked = 0;
    for row in rows.into_iter().flatten() {
        let Some(text) = row.product.ingredients else { continue };
        let once = dermis_ingredients::inci::parse(&text);
        let twice = dermis_ingredients::inci::parse(&once.render());
        assert_eq!(once.sections, twice.sections, "{}", row.product.external_id.unwrap_or_default());
        checked += 1;
    }
    assert!(checked > 7000, "{checked}");
}
