//! [`Catalog`]: the catalog's operations. Creates take an optional idempotency key and are
//! recorded with it in one transaction; updates use optimistic concurrency on `version`; every
//! change appends its domain event to the outbox in the same transaction. After each commit that
//! changed products or their SKUs, [`Catalog::committed`] brings this node's search index up to
//! date before the operation answers (read-your-writes); other nodes learn of it from the event.

use std::sync::Arc;

use dermis_core::clock::now_ms;
use dermis_core::ids::new_id;
use dermis_core::page::{Cursor, Limit, Page};
use dermis_store::idempotency::{self, IdempotencyKey, Prior};
use dermis_store::sqlx::AnyConnection;
use dermis_store::{Db, StoreError};
use serde_json::json;

use crate::CatalogError;
use crate::facts;
use crate::index::SearchIndex;
use crate::input::{NewProduct, NewSku, ProductChanges, SkuChanges};
use crate::model::{Product, ProductStatus, Sku};
use crate::search::{self, Listed, SearchFilter, SearchPage};
use crate::store::{self, ProductFilter, ProductRef};

/// An idempotency key with what it protects.
#[derive(Debug, Clone)]
pub struct Idempotent {
    /// Operation and caller the key is scoped to.
    pub scope: String,
    /// The client's key.
    pub key: IdempotencyKey,
    /// Digest of the request body.
    pub request_hash: String,
}

/// The result of a create.
#[derive(Debug, Clone)]
pub struct Created<T> {
    /// What was created (or, for a replay, what the first attempt created, as it is now).
    pub value: T,
    /// True when this was a retry answered from the first attempt.
    pub replayed: bool,
}

/// The catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    db: Db,
    /// This node's search index, when attached: searched once built, refreshed after each write.
    index: Option<Arc<SearchIndex>>,
}

fn duplicate(
    e: StoreError,
    new_product: Option<&NewProduct>,
    new_sku: Option<(&Option<String>, &str)>,
) -> CatalogError {
    if e.is_unique_on("barcode") {
        let value = new_sku.and_then(|(b, _)| b.clone()).unwrap_or_default();
        return CatalogError::Duplicate { entity: "SKU", field: "barcode", value };
    }
    if e.is_unique_on("code") {
        let value = new_sku.map(|(_, c)| c.to_owned()).unwrap_or_default();
        return CatalogError::Duplicate { entity: "SKU", field: "code", value };
    }
    if e.is_unique_on("external_id") {
        let value = new_product.and_then(|p| p.external_id.clone()).unwrap_or_default();
        return CatalogError::Duplicate { entity: "product", field: "external_id", value };
    }
    CatalogError::Store(e)
}

/// A concurrent retry with the same key won the race (PostgreSQL): answer from its result.
fn lost_idempotency_race(e: &CatalogError) -> bool {
    matches!(e, CatalogError::Store(s) if s.is_unique_on("idempotency_keys") || s.is_unique_on("idem_key") || s.is_unique_on("scope"))
}

/// Recomputes and stores a product's facts; returns the product as stored.
async fn derive_facts(conn: &mut AnyConnection, id: &str) -> Result<Product, CatalogError> {
    // Lock the row first (a no-op update does, on both backends), so facts are never derived
    // from a version another transaction is replacing.
    dermis_store::sqlx::query("UPDATE products SET version = version WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::from)?;
    let mut p =
        store::get_product(&mut *conn, id).await?.ok_or_else(|| CatalogError::ProductNotFound(id.to_owned()))?;
    let f = facts::compute(dermis_ingredients::KnowledgeBase::bundled(), &p);
    facts::store(conn, &p, &f).await?;
    p.attributes = Some(f);
    Ok(p)
}

/// Drops the parsed ingredient list from a product read in full (for event payloads; listings never load it).
pub fn summarize(p: &mut Product) {
    if let Some(a) = p.attributes.as_mut() {
        a.ingredients.clear();
    }
}

fn event_payload(p: &Product) -> serde_json::Value {
    let mut p = p.clone();
    summarize(&mut p);
    json!(p)
}

/// Runs an idempotent create, and once more if it lost a race with a concurrent retry of the same
/// key: the second run finds the winner's record and replays it. The loser may fail on the
/// idempotency key itself or, first, on a unique value the winner just took (SKU code, external
/// id); with a key, both mean "look again".
async fn retry_lost_race<T, F, Fut>(has_key: bool, attempt: F) -> Result<T, CatalogError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, CatalogError>>,
{
    match attempt().await {
        Err(e) if lost_idempotency_race(&e) || (has_key && matches!(e, CatalogError::Duplicate { .. })) => {
            attempt().await
        }
        other => other,
    }
}

async fn check_prior(conn: &mut AnyConnection, idem: Option<&Idempotent>) -> Result<Option<String>, CatalogError> {
    let Some(i) = idem else { return Ok(None) };
    match idempotency::prior(conn, &i.scope, &i.key, &i.request_hash).await? {
        Prior::None => Ok(None),
        Prior::Created(id) => Ok(Some(id)),
        Prior::Mismatch => Err(CatalogError::IdempotencyKeyReused),
    }
}

async fn record(conn: &mut AnyConnection, idem: Option<&Idempotent>, id: &str) -> Result<(), CatalogError> {
    if let Some(i) = idem {
        idempotency::record(conn, &i.scope, &i.key, &i.request_hash, id).await?;
    }
    Ok(())
}

impl Catalog {
    /// The catalog stored in `db`.
    pub fn new(db: Db) -> Self {
        Self { db, index: None }
    }

    /// The same catalog, searching `index` (once it is built) and refreshing it after each of its
    /// writes. Build the index from a catalog first: `SearchIndex::new(catalog.clone())`.
    pub fn with_index(mut self, index: Arc<SearchIndex>) -> Self {
        self.index = Some(index);
        self
    }

    /// The search index attached, if any.
    pub fn index(&self) -> Option<&Arc<SearchIndex>> {
        self.index.as_ref()
    }

    /// The store.
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// The one step after every commit that changed these products (their fields, facts or
    /// SKUs): re-reads them into this node's search index before the operation answers. The
    /// commit stands whatever happens here; if the read fails, the change's event brings the
    /// index up to date when this node consumes it.
    async fn committed(&self, product_ids: &[&str]) {
        let Some(index) = &self.index else { return };
        let ids: Vec<String> = product_ids.iter().map(|s| (*s).to_owned()).collect();
        if let Err(e) = index.refresh(&ids).await {
            tracing::warn!(error = %e, products = ?ids, "refreshing the search index after a write failed; the bus will");
        }
    }

    /// Creates a product.
    pub async fn create_product(
        &self,
        idem: Option<Idempotent>,
        new: NewProduct,
    ) -> Result<Created<Product>, CatalogError> {
        retry_lost_race(idem.is_some(), || self.try_create_product(idem.as_ref(), &new)).await
    }

    async fn try_create_product(
        &self,
        idem: Option<&Idempotent>,
        new: &NewProduct,
    ) -> Result<Created<Product>, CatalogError> {
        let mut tx = self.db.begin().await?;
        if let Some(id) = check_prior(&mut tx, idem).await? {
            drop(tx);
            let value = self.product(&id).await?;
            return Ok(Created { value, replayed: true });
        }
        let id = new_id("prd");
        let now = now_ms();
        store::insert_product(&mut tx, &id, new, now).await.map_err(|e| duplicate(e, Some(new), None))?;
        record(&mut tx, idem, &id).await?;
        let product = derive_facts(&mut tx, &id).await?;
        store::append_event(&mut tx, "catalog.product.created", &id, &event_payload(&product), now).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.committed(&[&id]).await;
        Ok(Created { value: product, replayed: false })
    }

    /// Reads a product.
    pub async fn product(&self, id: &str) -> Result<Product, CatalogError> {
        store::get_product(self.db.reader(), id).await?.ok_or_else(|| CatalogError::ProductNotFound(id.to_owned()))
    }

    /// A product by its Dermis id or by the id of the system it was imported from
    /// (`external_id`, such as Sephora's `P473671`, which is what a web shop's events carry).
    pub async fn product_by_reference(&self, reference: &str) -> Result<Option<Product>, CatalogError> {
        if let Some(p) = store::get_product(self.db.reader(), reference).await? {
            return Ok(Some(p));
        }
        let filter = store::ProductFilter { external_id: Some(reference.to_owned()), ..Default::default() };
        Ok(store::list_products(self.db.reader(), &filter, None, 1).await?.into_iter().next())
    }

    /// Lists products (without the parsed ingredient list in `attributes`, to keep pages small).
    pub async fn products(
        &self,
        filter: &ProductFilter,
        cursor: Option<&Cursor>,
        limit: Limit,
    ) -> Result<Page<Product>, CatalogError> {
        let rows =
            store::list_products(self.db.reader(), filter, cursor.map(|c| c.0.as_str()), limit.get() + 1).await?;
        Ok(Page::from_rows(rows, limit, |p| p.id.clone()))
    }

    /// Searches products (see [`crate::search`]): through the index when one is attached and
    /// built, otherwise in SQL.
    pub async fn search(
        &self,
        filter: &SearchFilter,
        cursor: Option<&Cursor>,
        limit: Limit,
        with_facets: bool,
    ) -> Result<SearchPage, CatalogError> {
        if let Some(index) = &self.index
            && let Some(page) = index.search(filter, cursor, limit, with_facets)
        {
            return page;
        }
        // No index, or not built yet: SQL.
        let rows = search::search(self.db.reader(), filter, cursor.map(|c| c.0.as_str()), limit.get() + 1).await?;
        let page = Page::from_rows(rows, limit, |p| p.id.clone());
        let facets = if with_facets { Some(search::facets(&self.db, filter).await?) } else { None };
        let items = page
            .items
            .iter()
            .map(Listed::new)
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::Other(format!("serializing a product: {e}")))?;
        Ok(SearchPage {
            items,
            next_cursor: page.next_cursor,
            facets,
            unknown_terms: filter.unknown_terms(),
        })
    }

    /// Products whose declaration contains an ingredient: the first `limit` and how many in all.
    pub async fn products_containing(
        &self,
        ingredient_id: &str,
        limit: u32,
    ) -> Result<(Vec<ProductRef>, i64), CatalogError> {
        Ok(store::products_containing(self.db.reader(), ingredient_id, limit).await?)
    }

    /// Recomputes the facts of every product derived under another knowledge base version (or
    /// never), in batches; returns how many were recomputed.
    pub async fn refresh_stale_facts(&self) -> Result<usize, CatalogError> {
        let kb = dermis_ingredients::KnowledgeBase::bundled();
        let mut done = 0;
        loop {
            let ids = store::stale_fact_ids(self.db.reader(), kb.version(), 200).await?;
            if ids.is_empty() {
                return Ok(done);
            }
            let mut tx = self.db.begin().await?;
            let now = now_ms();
            for id in &ids {
                let p = derive_facts(&mut tx, id).await?;
                // No new version, but what searches and listings say changed: other nodes' search
                // indexes learn it from this event.
                store::append_event(&mut tx, "catalog.product.updated", id, &event_payload(&p), now).await?;
            }
            tx.commit().await.map_err(StoreError::from)?;
            let refreshed: Vec<&str> = ids.iter().map(String::as_str).collect();
            self.committed(&refreshed).await;
            done += ids.len();
        }
    }

    /// Applies changes to a product. With `if_version`, refuses if the product has moved on.
    pub async fn update_product(
        &self,
        id: &str,
        changes: ProductChanges,
        if_version: Option<i64>,
    ) -> Result<Product, CatalogError> {
        for _ in 0..3 {
            let mut tx = self.db.begin().await?;
            let current =
                store::get_product(&mut *tx, id).await?.ok_or_else(|| CatalogError::ProductNotFound(id.to_owned()))?;
            if let Some(expected) = if_version
                && expected != current.version
            {
                return Err(CatalogError::VersionMismatch { entity: "product", expected, actual: current.version });
            }
            let was_active = current.status == ProductStatus::Active;
            let kb_version = dermis_ingredients::KnowledgeBase::bundled().version();
            let stale = current.attributes.as_ref().is_none_or(|a| a.kb_version != kb_version);
            let mut next = current.clone();
            let ch = changes.clone();
            if let Some(v) = ch.name {
                next.name = v
            }
            if let Some(v) = ch.brand {
                next.brand = v
            }
            if let Some(v) = ch.external_id {
                next.external_id = v
            }
            if let Some(v) = ch.category {
                next.category = v
            }
            if let Some(v) = ch.description {
                next.description = v
            }
            if let Some(v) = ch.ingredients {
                next.ingredients = v
            }
            if let Some(v) = ch.highlights {
                next.highlights = v;
            }
            if let Some(v) = ch.status {
                next.status = v
            }
            if next == current && !stale {
                return Ok(current);
            }
            let inputs_changed = next.name != current.name
                || next.category != current.category
                || next.ingredients != current.ingredients
                || next.highlights != current.highlights;
            if next != current {
                next.version += 1;
            }
            let now = now_ms();
            let probe = NewProduct {
                name: String::new(),
                brand: String::new(),
                external_id: next.external_id.clone(),
                category: None,
                description: None,
                ingredients: None,
                highlights: Vec::new(),
            };
            if next != current
                && !store::update_product(&mut tx, &next, now).await.map_err(|e| duplicate(e, Some(&probe), None))?
            {
                continue; // changed under us (PostgreSQL): read again
            }
            // Any change can move the product in search (brand, status ...): refresh its row.
            let updated = if inputs_changed || stale || next != current {
                derive_facts(&mut tx, id).await?
            } else {
                store::get_product(&mut *tx, id).await?.ok_or_else(|| CatalogError::ProductNotFound(id.to_owned()))?
            };
            if next == current {
                // Only the derived facts were refreshed: no new version; the event tells other
                // nodes' search indexes.
                store::append_event(&mut tx, "catalog.product.updated", id, &event_payload(&updated), now).await?;
                tx.commit().await.map_err(StoreError::from)?;
                self.committed(&[id]).await;
                return Ok(updated);
            }
            let event = if was_active && updated.status == ProductStatus::Discontinued {
                "catalog.product.discontinued"
            } else {
                "catalog.product.updated"
            };
            store::append_event(&mut tx, event, id, &event_payload(&updated), now).await?;
            tx.commit().await.map_err(StoreError::from)?;
            self.committed(&[id]).await;
            return Ok(updated);
        }
        Err(CatalogError::Store(StoreError::Unavailable("the product kept changing; retry".into())))
    }

    /// Creates a SKU under a product.
    pub async fn create_sku(
        &self,
        product_id: &str,
        idem: Option<Idempotent>,
        new: NewSku,
    ) -> Result<Created<Sku>, CatalogError> {
        retry_lost_race(idem.is_some(), || self.try_create_sku(product_id, idem.as_ref(), &new)).await
    }

    async fn try_create_sku(
        &self,
        product_id: &str,
        idem: Option<&Idempotent>,
        new: &NewSku,
    ) -> Result<Created<Sku>, CatalogError> {
        let mut tx = self.db.begin().await?;
        if store::get_product(&mut *tx, product_id).await?.is_none() {
            return Err(CatalogError::ProductNotFound(product_id.to_owned()));
        }
        if let Some(id) = check_prior(&mut tx, idem).await? {
            drop(tx);
            let value = self.sku(product_id, &id).await?;
            return Ok(Created { value, replayed: true });
        }
        let id = new_id("sku");
        let now = now_ms();
        store::insert_sku(&mut tx, &id, product_id, new, now)
            .await
            .map_err(|e| duplicate(e, None, Some((&new.barcode, &new.code))))?;
        record(&mut tx, idem, &id).await?;
        facts::refresh_min_price(&mut tx, product_id).await?;
        let sku = store::get_sku(&mut *tx, product_id, &id)
            .await?
            .ok_or_else(|| CatalogError::ProductNotFound(product_id.to_owned()))?;
        store::append_event(&mut tx, "catalog.sku.created", &id, &json!(sku), now).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.committed(&[product_id]).await;
        Ok(Created { value: sku, replayed: false })
    }

    /// Reads a SKU of a product.
    pub async fn sku(&self, product_id: &str, id: &str) -> Result<Sku, CatalogError> {
        store::get_sku(self.db.reader(), product_id, id)
            .await?
            .ok_or_else(|| CatalogError::SkuNotFound { product_id: product_id.to_owned(), sku_id: id.to_owned() })
    }

    /// Lists a product's SKUs (404 if the product does not exist).
    pub async fn skus(
        &self,
        product_id: &str,
        cursor: Option<&Cursor>,
        limit: Limit,
    ) -> Result<Page<Sku>, CatalogError> {
        if store::get_product(self.db.reader(), product_id).await?.is_none() {
            return Err(CatalogError::ProductNotFound(product_id.to_owned()));
        }
        let rows =
            store::list_skus(self.db.reader(), product_id, cursor.map(|c| c.0.as_str()), limit.get() + 1).await?;
        Ok(Page::from_rows(rows, limit, |s| s.id.clone()))
    }

    /// Applies changes to a SKU.
    pub async fn update_sku(
        &self,
        product_id: &str,
        id: &str,
        changes: SkuChanges,
        if_version: Option<i64>,
    ) -> Result<Sku, CatalogError> {
        let not_found = || CatalogError::SkuNotFound { product_id: product_id.to_owned(), sku_id: id.to_owned() };
        for _ in 0..3 {
            let mut tx = self.db.begin().await?;
            let current = store::get_sku(&mut *tx, product_id, id).await?.ok_or_else(not_found)?;
            if let Some(expected) = if_version
                && expected != current.version
            {
                return Err(CatalogError::VersionMismatch { entity: "SKU", expected, actual: current.version });
            }
            let mut next = current.clone();
            let ch = changes.clone();
            if let Some(v) = ch.code {
                next.code = v
            }
            if let Some(v) = ch.barcode {
                next.barcode = v
            }
            if let Some(v) = ch.variant {
                next.variant = v
            }
            if let Some(v) = ch.price {
                next.price = v
            }
            if let Some(v) = ch.status {
                next.status = v
            }
            if next == current {
                return Ok(current);
            }
            next.version += 1;
            let now = now_ms();
            if !store::update_sku(&mut tx, &next, now)
                .await
                .map_err(|e| duplicate(e, None, Some((&next.barcode, &next.code))))?
            {
                continue;
            }
            facts::refresh_min_price(&mut tx, product_id).await?;
            let updated = store::get_sku(&mut *tx, product_id, id).await?.ok_or_else(not_found)?;
            store::append_event(&mut tx, "catalog.sku.updated", id, &json!(updated), now).await?;
            tx.commit().await.map_err(StoreError::from)?;
            self.committed(&[product_id]).await;
            return Ok(updated);
        }
        Err(CatalogError::Store(StoreError::Unavailable("the SKU kept changing; retry".into())))
    }
}
