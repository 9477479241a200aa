//! The demo: a bundled subset of a real skincare catalog (see `demo/ATTRIBUTION.md`), loaded
//! through the catalog's own import, so it obeys every rule real data does. Loading twice changes
//! nothing: products are matched by their external id.
//!
//! Locations, stock and demo customers arrive with the inventory and customer domains.

use dermis_catalog::import::{self, ImportReport};
use dermis_store::Db;

const CATALOG_JSON: &str = include_str!("../demo/catalog.json");

/// Loads the demo catalog into `db`.
pub async fn load(db: &Db) -> anyhow::Result<ImportReport> {
    let rows = import::read_json(CATALOG_JSON).map_err(anyhow::Error::msg)?;
    Ok(import::import(db, rows, 200).await?)
}

/// Prints where to look and what to try.
pub fn print_welcome(base: &str, report: &ImportReport, token: &str) {
    eprintln!(
        "\nDermis demo is running at {base}\n\
         - demo catalog: {} products imported now, {} already there (Sephora subset, CC BY 4.0, Nady Inky / Kaggle)\n\
         - API reference: {base}/docs    health: {base}/healthz    metrics: {base}/metrics\n\
         - a merchandiser token (12 h) is in $TOKEN below; `dermis token --role admin` prints others\n\n\
         export TOKEN={token}\n\
         # fragrance-free moisturizers for dry, acne-prone skin, without linalool or limonene:\n\
         curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/v1/products?routine_step=moisturizer&fragrance_free=true&skin_type=dry&non_comedogenic=true&exclude_ingredients=linalool,limonene&limit=5'\n\
         # what is niacinamide, and which products have it:\n\
         curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/v1/ingredients/niacinamide'\n\
         # search with facet counts:\n\
         curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/v1/products?q=vitamin%20c&facets=true&limit=3'\n",
        report.imported,
        report.unchanged + report.updated
    );
}
