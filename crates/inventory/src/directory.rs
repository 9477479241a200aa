//! Which SKUs exist: the catalog's, by id or by code, behind a cache. The ledger keys stock by
//! the catalog's SKU id; a SKU the ledger has not seen yet is added to its setup the first time
//! a request names it.

use std::time::Duration;

use dermis_catalog::Catalog;

use crate::error::InventoryError;
use crate::model::{Setup, SkuId};
use crate::service::Inventory;

/// The catalog's SKUs as the inventory resolves them.
#[derive(Clone)]
pub struct SkuDirectory {
    catalog: Catalog,
    /// A reference (id or code) to the SKU's id. Only hits are kept: a SKU created a moment ago
    /// is found on the next request.
    cache: moka::sync::Cache<String, SkuId>,
}

impl std::fmt::Debug for SkuDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkuDirectory").field("cached", &self.cache.entry_count()).finish()
    }
}

/// Why a SKU reference could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// Neither a SKU id nor a SKU code of the catalog.
    #[error("unknown SKU {0:?}: neither a SKU id nor a SKU code of the catalog")]
    Unknown(String),
    /// The catalog could not be read.
    #[error("the catalog could not be read: {0}")]
    Catalog(String),
    /// The ledger could not add the SKU.
    #[error(transparent)]
    Inventory(#[from] InventoryError),
}

impl SkuDirectory {
    /// A directory over `catalog`.
    pub fn new(catalog: Catalog) -> Self {
        let cache = moka::sync::Cache::builder().max_capacity(200_000).time_to_idle(Duration::from_secs(3600)).build();
        Self { catalog, cache }
    }

    /// The SKU a reference (id or code) names.
    pub async fn resolve(&self, reference: &str) -> Result<SkuId, LookupError> {
        if let Some(hit) = self.cache.get(reference) {
            return Ok(hit);
        }
        let sku = self
            .catalog
            .sku_by_reference(reference)
            .await
            .map_err(|e| LookupError::Catalog(e.to_string()))?
            .ok_or_else(|| LookupError::Unknown(reference.to_owned()))?;
        let id = SkuId::new(sku.id);
        self.cache.insert(reference.to_owned(), id.clone());
        Ok(id)
    }

    /// Resolves references and makes sure the ledger knows each SKU (adding the new ones to its
    /// setup, durably), in the order given.
    pub async fn resolve_all(&self, inventory: &Inventory, references: &[&str]) -> Result<Vec<SkuId>, LookupError> {
        let mut ids = Vec::with_capacity(references.len());
        for reference in references {
            ids.push(self.resolve(reference).await?);
        }
        let mut missing: Vec<SkuId> = inventory.read(|l| ids.iter().filter(|id| !l.knows_sku(id)).cloned().collect());
        missing.sort();
        missing.dedup();
        if !missing.is_empty() {
            let added = inventory.extend_setup(Setup { skus: missing.clone(), ..Setup::default() }).await;
            // Another request may have added the same SKU a moment before: that is as good.
            if let Err(e) = added
                && !inventory.read(|l| missing.iter().all(|id| l.knows_sku(id)))
            {
                return Err(e.into());
            }
        }
        Ok(ids)
    }
}
