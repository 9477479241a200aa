//! The demo: a bundled subset of a real skincare catalog (see `demo/ATTRIBUTION.md`), loaded
//! through the catalog's own API so it obeys every rule real data does. Loading twice changes
//! nothing: products are matched by their external id.

use dermis_catalog::Catalog;
use dermis_catalog::input::{CreateProduct, CreateSku};
use dermis_catalog::store::ProductFilter;
use dermis_core::Limit;
use dermis_store::Db;
use serde::Deserialize;

const CATALOG_JSON: &str = include_str!("../demo/catalog.json");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoProduct {
    external_id: String,
    name: String,
    brand: String,
    category: String,
    ingredients: String,
    sku: CreateSku,
}

/// What loading the demo did.
#[derive(Debug, Default, Clone, Copy)]
pub struct DemoReport {
    /// Products created now.
    pub created: usize,
    /// Products that were already there.
    pub existing: usize,
}

/// Loads the demo catalog into `db`.
pub async fn load(db: &Db) -> anyhow::Result<DemoReport> {
    let items: Vec<DemoProduct> = serde_json::from_str(CATALOG_JSON)?;
    let catalog = Catalog::new(db.clone());
    let mut report = DemoReport::default();
    for p in items {
        let filter = ProductFilter { external_id: Some(p.external_id.clone()), ..ProductFilter::default() };
        if !catalog.products(&filter, None, Limit::default()).await?.items.is_empty() {
            report.existing += 1;
            continue;
        }
        let new = CreateProduct {
            name: p.name,
            brand: p.brand,
            external_id: Some(p.external_id),
            category: Some(p.category),
            description: None,
            ingredients: Some(p.ingredients),
        }
        .parse()?;
        let product = catalog.create_product(None, new).await?.value;
        catalog.create_sku(&product.id, None, p.sku.parse()?).await?;
        report.created += 1;
    }
    Ok(report)
}

/// Prints where to look and what to try.
pub fn print_welcome(base: &str, report: &DemoReport, token: &str) {
    eprintln!(
        "\nDermis demo is running at {base}\n\
         - demo catalog: {} products loaded now, {} already there (Sephora subset, CC BY 4.0, Nady Inky / Kaggle)\n\
         - API reference: {base}/docs    health: {base}/healthz    metrics: {base}/metrics\n\
         - a merchandiser token (12 h) is in $TOKEN below; `dermis token --role admin` prints others\n\n\
         export TOKEN={token}\n\
         curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/v1/products?limit=3'\n\
         curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/v1/products?category=Skincare/Moisturizers/Moisturizers&limit=5'\n\
         curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -H 'Idempotency-Key: try-1' \\\n\
              -d '{{\"name\":\"Barrier Cream\",\"brand\":\"Dermis Labs\"}}' {base}/v1/products\n",
        report.created, report.existing
    );
}
