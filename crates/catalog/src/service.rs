//! [`Catalog`]: the catalog's operations. Creates take an optional idempotency key and are
//! recorded with it in one transaction; updates use optimistic concurrency on `version`; every
//! change appends its domain event to the outbox in the same transaction. After each commit that
//! changed products or their SKUs, [`Catalog::committed`] brings this node's search index up to
//! date before the operation answers (read-your-writes); other nodes learn of it from the event.

use std::sync::Arc;

use dermis_core::clock::SharedClock;
use dermis_core::ids::new_id;
use dermis_core::page::{Cursor, Limit, Page};
use dermis_store::idempotency::{self, IdempotencyKey, Prior};
use dermis_store::sqlx::{AnyConnection, Connection};
use dermis_store::{Db, StoreError};
use serde_json::json;
use tokio::sync::Notify;

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
    /// Where time is read.
    clock: SharedClock,
    /// Woken after each write: the outbox has rows for the relay.
    written: Arc<Notify>,
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

// The writes, each in the caller's transaction: every operation below (create, update, upsert)
// is made of these, so validation of unique values, derived facts and events are one code. The
// caller commits and then runs `Catalog::committed`.

/// What one attempt at a change did.
enum Applied<T> {
    /// Nothing to change; nothing was written.
    Unchanged(T),
    /// No new version, but the product's facts were derived again (and announced).
    Refreshed(T),
    /// A new version was written, with its event.
    Changed(T),
    /// Another writer changed it since it was read (PostgreSQL): read again.
    Conflict,
}

fn kept_changing(entity: &str) -> CatalogError {
    CatalogError::Store(StoreError::Unavailable(format!("the {entity} kept changing; retry")))
}

/// Inserts a product, derives its facts and appends `catalog.product.created`.
async fn insert_product_in(conn: &mut AnyConnection, new: &NewProduct, now: i64) -> Result<Product, CatalogError> {
    let id = new_id("prd");
    store::insert_product(conn, &id, new, now).await.map_err(|e| duplicate(e, Some(new), None))?;
    let product = derive_facts(conn, &id).await?;
    store::append_event(conn, "catalog.product.created", &id, &event_payload(&product), now).await?;
    Ok(product)
}

/// Applies `changes` to a product as it is now; derives its facts again when anything changed or
/// they were derived under another knowledge base, and appends the event.
async fn update_product_in(
    conn: &mut AnyConnection,
    id: &str,
    changes: &ProductChanges,
    if_version: Option<i64>,
    now: i64,
) -> Result<Applied<Product>, CatalogError> {
    let current =
        store::get_product(&mut *conn, id).await?.ok_or_else(|| CatalogError::ProductNotFound(id.to_owned()))?;
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
        return Ok(Applied::Unchanged(current));
    }
    if next != current {
        next.version += 1;
    }
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
        && !store::update_product(conn, &next, now).await.map_err(|e| duplicate(e, Some(&probe), None))?
    {
        return Ok(Applied::Conflict);
    }
    // Any change can move the product in search (brand, status ...): refresh its row.
    let updated = derive_facts(conn, id).await?;
    if next == current {
        // Only the derived facts were refreshed: no new version; the event tells other
        // nodes' search indexes.
        store::append_event(conn, "catalog.product.updated", id, &event_payload(&updated), now).await?;
        return Ok(Applied::Refreshed(updated));
    }
    let event = if was_active && updated.status == ProductStatus::Discontinued {
        "catalog.product.discontinued"
    } else {
        "catalog.product.updated"
    };
    store::append_event(conn, event, id, &event_payload(&updated), now).await?;
    Ok(Applied::Changed(updated))
}

/// Inserts a SKU under a product, refreshes the product's lowest price and appends
/// `catalog.sku.created`.
async fn insert_sku_in(
    conn: &mut AnyConnection,
    product_id: &str,
    new: &NewSku,
    now: i64,
) -> Result<Sku, CatalogError> {
    let id = new_id("sku");
    store::insert_sku(conn, &id, product_id, new, now)
        .await
        .map_err(|e| duplicate(e, None, Some((&new.barcode, &new.code))))?;
    facts::refresh_min_price(conn, product_id).await?;
    let sku = store::get_sku(&mut *conn, product_id, &id)
        .await?
        .ok_or_else(|| CatalogError::ProductNotFound(product_id.to_owned()))?;
    store::append_event(conn, "catalog.sku.created", &id, &json!(sku), now).await?;
    Ok(sku)
}

/// Applies `changes` to a SKU as it is now, refreshes the product's lowest price and appends
/// `catalog.sku.updated`.
async fn update_sku_in(
    conn: &mut AnyConnection,
    product_id: &str,
    id: &str,
    changes: &SkuChanges,
    if_version: Option<i64>,
    now: i64,
) -> Result<Applied<Sku>, CatalogError> {
    let not_found = || CatalogError::SkuNotFound { product_id: product_id.to_owned(), sku_id: id.to_owned() };
    let current = store::get_sku(&mut *conn, product_id, id).await?.ok_or_else(not_found)?;
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
        return Ok(Applied::Unchanged(current));
    }
    next.version += 1;
    if !store::update_sku(conn, &next, now).await.map_err(|e| duplicate(e, None, Some((&next.barcode, &next.code))))? {
        return Ok(Applied::Conflict);
    }
    facts::refresh_min_price(conn, product_id).await?;
    let updated = store::get_sku(&mut *conn, product_id, id).await?.ok_or_else(not_found)?;
    store::append_event(conn, "catalog.sku.updated", id, &json!(updated), now).await?;
    Ok(Applied::Changed(updated))
}

/// A product with its SKUs as the system it comes from knows them: what
/// [`Catalog::upsert_by_external_id`] writes.
#[derive(Debug, Clone, Copy)]
pub struct ProductRecord<'a> {
    /// The product; matched by its `external_id` (one without is always created).
    pub product: &'a NewProduct,
    /// Its SKUs, matched by code among the product's SKUs.
    pub skus: &'a [NewSku],
}

/// What an upsert did to one product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertOutcome {
    /// The product was created (with its SKUs).
    Created,
    /// It existed, and it or one of its SKUs changed.
    Updated,
    /// It existed as given (its facts may have been derived again under a new knowledge base).
    Unchanged,
}

/// The result of an upsert of one product.
#[derive(Debug, Clone)]
pub struct Upserted {
    /// What happened.
    pub outcome: UpsertOutcome,
    /// The product as stored, with its facts.
    pub product: Product,
    /// SKUs created.
    pub skus_created: usize,
    /// Whether anything was written (a new version, a SKU, or facts derived again).
    written: bool,
}

/// Writes one record with the operations above: creates the product or applies its fields as
/// changes (a description the source does not give is kept; the status is the catalog's), then
/// creates or changes each SKU.
async fn upsert_in(conn: &mut AnyConnection, record: ProductRecord<'_>, now: i64) -> Result<Upserted, CatalogError> {
    let new = record.product;
    let existing = match &new.external_id {
        Some(ext) => store::product_id_by_external_id(&mut *conn, ext).await?,
        None => None,
    };
    let (product, mut outcome, mut written) = match existing {
        None => (insert_product_in(conn, new, now).await?, UpsertOutcome::Created, true),
        Some(id) => {
            let changes = ProductChanges {
                name: Some(new.name.clone()),
                brand: Some(new.brand.clone()),
                external_id: None,
                category: Some(new.category.clone()),
                description: new.description.clone().map(Some),
                ingredients: Some(new.ingredients.clone()),
                highlights: Some(new.highlights.clone()),
                status: None,
            };
            let mut attempts = 0;
            loop {
                match update_product_in(conn, &id, &changes, None, now).await? {
                    Applied::Unchanged(p) => break (p, UpsertOutcome::Unchanged, false),
                    Applied::Refreshed(p) => break (p, UpsertOutcome::Unchanged, true),
                    Applied::Changed(p) => break (p, UpsertOutcome::Updated, true),
                    Applied::Conflict if attempts < 2 => attempts += 1,
                    Applied::Conflict => return Err(kept_changing("product")),
                }
            }
        }
    };
    let mut skus_created = 0;
    for s in record.skus {
        let sku_changed = match store::sku_id_by_code(&mut *conn, &product.id, &s.code).await? {
            None => {
                insert_sku_in(conn, &product.id, s, now).await?;
                skus_created += 1;
                true
            }
            Some(sku_id) => {
                let changes = SkuChanges {
                    code: None,
                    barcode: Some(s.barcode.clone()),
                    variant: Some(s.variant.clone()),
                    price: Some(s.price.clone()),
                    status: None,
                };
                let mut attempts = 0;
                loop {
                    match update_sku_in(conn, &product.id, &sku_id, &changes, None, now).await? {
                        Applied::Unchanged(_) => break false,
                        Applied::Refreshed(_) | Applied::Changed(_) => break true,
                        Applied::Conflict if attempts < 2 => attempts += 1,
                        Applied::Conflict => return Err(kept_changing("SKU")),
                    }
                }
            }
        };
        if sku_changed {
            written = true;
            if outcome == UpsertOutcome::Unchanged {
                outcome = UpsertOutcome::Updated;
            }
        }
    }
    Ok(Upserted { outcome, product, skus_created, written })
}

/// Whether an upsert's error concerns only its record (a value another product or SKU holds, a
/// value the database refuses), rather than the store.
fn rejects_record(e: &CatalogError) -> bool {
    matches!(
        e,
        CatalogError::Duplicate { .. } | CatalogError::Store(StoreError::Unique { .. } | StoreError::InvalidInput(_))
    )
}

impl Catalog {
    /// The catalog stored in `db`.
    pub fn new(db: Db) -> Self {
        Self { db, index: None, clock: dermis_core::clock::system(), written: Arc::new(Notify::new()) }
    }

    /// The same catalog, reading time from `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Notified after each write that put events in the outbox (the relay waits on it).
    pub fn outbox_ready(&self) -> Arc<Notify> {
        self.written.clone()
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
        self.written.notify_one();
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
        let product = insert_product_in(&mut tx, new, self.clock.now_ms()).await?;
        record(&mut tx, idem, &product.id).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.committed(&[&product.id]).await;
        Ok(Created { value: product, replayed: false })
    }

    /// Reads a product.
    pub async fn product(&self, id: &str) -> Result<Product, CatalogError> {
        store::get_product(self.db.reader(), id).await?.ok_or_else(|| CatalogError::ProductNotFound(id.to_owned()))
    }

    /// Products in full (resolved ingredient lists included) in id order after `after`, each with
    /// its lowest active SKU price in minor units: for projections that keep the whole catalog
    /// in memory.
    pub async fn full_products(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(Product, Option<i64>)>, CatalogError> {
        Ok(store::list_full_products(self.db.reader(), after, None, limit).await?)
    }

    /// The ids of the active SKUs of the products whose ids are `from` through `through` (both
    /// included; a page of [`Self::full_products`] is its first and last id): (product id, SKU
    /// id), by product then SKU. For projections that need each product's SKUs (stock).
    pub async fn active_sku_ids(&self, from: &str, through: &str) -> Result<Vec<(String, String)>, CatalogError> {
        Ok(store::active_sku_ids(self.db.reader(), from, through).await?)
    }

    /// One product in full with its lowest active SKU price (`None`: no such product).
    pub async fn full_product(&self, id: &str) -> Result<Option<(Product, Option<i64>)>, CatalogError> {
        Ok(store::list_full_products(self.db.reader(), None, Some(id), 1).await?.into_iter().next())
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
        Ok(SearchPage { items, next_cursor: page.next_cursor, facets, unknown_terms: filter.unknown_terms() })
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
            let now = self.clock.now_ms();
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
            match update_product_in(&mut tx, id, &changes, if_version, self.clock.now_ms()).await? {
                Applied::Unchanged(p) => return Ok(p),
                Applied::Refreshed(p) | Applied::Changed(p) => {
                    tx.commit().await.map_err(StoreError::from)?;
                    self.committed(&[id]).await;
                    return Ok(p);
                }
                Applied::Conflict => continue, // changed under us (PostgreSQL): read again
            }
        }
        Err(kept_changing("product"))
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
        let sku = insert_sku_in(&mut tx, product_id, new, self.clock.now_ms()).await?;
        record(&mut tx, idem, &sku.id).await?;
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

    /// A SKU of any product by its id (`sku_...`) or its code; `None` when neither is known.
    pub async fn sku_by_reference(&self, reference: &str) -> Result<Option<Sku>, CatalogError> {
        Ok(store::find_sku(self.db.reader(), reference).await?)
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
        for _ in 0..3 {
            let mut tx = self.db.begin().await?;
            match update_sku_in(&mut tx, product_id, id, &changes, if_version, self.clock.now_ms()).await? {
                Applied::Unchanged(s) => return Ok(s),
                Applied::Refreshed(s) | Applied::Changed(s) => {
                    tx.commit().await.map_err(StoreError::from)?;
                    self.committed(&[product_id]).await;
                    return Ok(s);
                }
                Applied::Conflict => continue,
            }
        }
        Err(kept_changing("SKU"))
    }

    /// Creates or updates products by external id, with their SKUs by code, in one transaction:
    /// an import's write. Each record is written with the operations a client's create and
    /// update use (the same checks of unique values, derived facts and events), in a savepoint
    /// of its own, so a record refused for a value another product or SKU holds (or one the
    /// database cannot store) is rolled back alone and answered as that error; any other
    /// failure fails the whole call and writes nothing. A record as stored is left untouched
    /// (its facts are derived again if the knowledge base changed).
    pub async fn upsert_by_external_id(
        &self,
        records: &[ProductRecord<'_>],
    ) -> Result<Vec<Result<Upserted, CatalogError>>, CatalogError> {
        let mut tx = self.db.begin().await?;
        let mut results = Vec::with_capacity(records.len());
        let mut written: Vec<String> = Vec::new();
        for record in records {
            let mut savepoint = Connection::begin(&mut *tx).await.map_err(StoreError::from)?;
            match upsert_in(&mut savepoint, *record, self.clock.now_ms()).await {
                Ok(done) => {
                    savepoint.commit().await.map_err(StoreError::from)?;
                    if done.written {
                        written.push(done.product.id.clone());
                    }
                    results.push(Ok(done));
                }
                Err(e) if rejects_record(&e) => {
                    savepoint.rollback().await.map_err(StoreError::from)?;
                    results.push(Err(e));
                }
                Err(e) => return Err(e),
            }
        }
        tx.commit().await.map_err(StoreError::from)?;
        let ids: Vec<&str> = written.iter().map(String::as_str).collect();
        self.committed(&ids).await;
        Ok(results)
    }
}
