//! The catalog as the feature store's [`ProductDirectory`], through the catalog's public API,
//! behind a one-minute cache (products the catalog does not know are cached as unknown too, so
//! a flood of bad ids costs one query per id a minute).

use std::time::Duration;

use async_trait::async_trait;
use dermis_catalog::Catalog;

use crate::{ProductDirectory, ProductTraits};

/// The catalog, as the feature store looks products up.
pub struct CatalogDirectory {
    catalog: Catalog,
    cache: moka::sync::Cache<String, Option<ProductTraits>>,
}

impl CatalogDirectory {
    /// A directory over `catalog`.
    pub fn new(catalog: Catalog) -> Self {
        let cache = moka::sync::Cache::builder().max_capacity(100_000).time_to_live(Duration::from_secs(60)).build();
        Self { catalog, cache }
    }
}

#[async_trait]
impl ProductDirectory for CatalogDirectory {
    async fn traits(&self, product_id: &str) -> Option<ProductTraits> {
        if let Some(hit) = self.cache.get(product_id) {
            return hit;
        }
        let traits = match self.catalog.product_by_reference(product_id).await {
            Ok(p) => p.map(|p| {
                let (routine_step, actives) = p
                    .attributes
                    .map(|f| (f.routine_step.map(|s| s.as_str().to_owned()), f.actives))
                    .unwrap_or_default();
                ProductTraits { id: p.id, brand: Some(p.brand), category: p.category, routine_step, actives }
            }),
            // Not cached: the next event asks again.
            Err(e) => {
                tracing::warn!(error = %e, "catalog lookup for features failed");
                return None;
            }
        };
        self.cache.insert(product_id.to_owned(), traits.clone());
        traits
    }
}
