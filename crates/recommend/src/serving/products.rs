//! The catalog as the engine serves it: every product in memory with what each stage reads
//! (safety facts, content facts, price, a content embedding, its active SKUs' ids for stock), as
//! a projection of the catalog's events ([`CatalogView`], `recommend-catalog`, topic `catalog.`).
//! Built at start from the store, then each catalog event re-reads the product it names and a new
//! [`ProductTable`] is swapped in whole: a request holds one consistent table.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use dermis_bus::Envelope;
use dermis_bus::projection::Projection;
use dermis_catalog::Catalog;
use dermis_catalog::model::{Product, ProductStatus};
use dermis_ingredients::ProductFacts;

use crate::content::{ContentItem, ContentModel};
use crate::safety::{ProductSafetyFacts, Safety};

/// Products read per store query at a rebuild.
const PAGE: u32 = 500;

/// One product as the engine serves it.
#[derive(Debug, Clone)]
pub struct ProductEntry {
    /// `prd_...`.
    pub id: String,
    /// The id in the system it came from (what a web shop's events carry).
    pub external_id: Option<String>,
    /// Name.
    pub name: String,
    /// Brand.
    pub brand: String,
    /// Category path.
    pub category: Option<String>,
    /// Lowest active SKU price, minor units.
    pub price_minor: Option<i64>,
    /// On sale.
    pub active: bool,
    /// Merchandising highlights.
    pub highlights: Vec<String>,
    /// Skin types the highlights declare.
    pub skin_types: Vec<String>,
    /// Derived facts (without the parsed list).
    pub facts: Option<ProductFacts>,
    /// What the safety rules read.
    pub safety: ProductSafetyFacts,
    /// Concerns its actives address.
    pub concerns: Vec<String>,
    /// Ingredients in declared order (canonical ids), for the content embedding.
    ingredients: Vec<String>,
}

impl ProductEntry {
    /// From a catalog product read in full and its price.
    pub fn new(p: &Product, price_minor: Option<i64>, safety: &Safety) -> Self {
        let safety_facts = safety.product(p);
        let mut facts = p.attributes.clone();
        let mut ingredients = Vec::new();
        if let Some(f) = facts.as_mut() {
            for e in &f.ingredients {
                if let Some(id) = &e.ingredient_id
                    && !ingredients.contains(id)
                {
                    ingredients.push(id.clone());
                }
            }
            f.ingredients = Vec::new();
        }
        let concerns =
            facts.as_ref().map(|f| f.concerns.iter().map(|c| c.concern.clone()).collect()).unwrap_or_default();
        ProductEntry {
            id: p.id.clone(),
            external_id: p.external_id.clone(),
            name: p.name.clone(),
            brand: p.brand.clone(),
            category: p.category.clone(),
            price_minor,
            active: p.status == ProductStatus::Active,
            skin_types: dermis_catalog::facts::skin_types(&p.highlights).into_iter().map(str::to_owned).collect(),
            highlights: p.highlights.clone(),
            facts,
            safety: safety_facts,
            concerns,
            ingredients,
        }
    }

    /// The same product with the ids of its active SKUs (what the out-of-stock rule asks the
    /// inventory about).
    pub fn with_skus(mut self, skus: Vec<String>) -> Self {
        self.safety = self.safety.with_skus(skus);
        self
    }

    /// The ids of its active SKUs (empty when none are known).
    pub fn skus(&self) -> &[String] {
        self.safety.skus()
    }

    /// Actives (canonical ids).
    pub fn actives(&self) -> &[String] {
        self.facts.as_ref().map(|f| f.actives.as_slice()).unwrap_or_default()
    }

    /// Its routine step's wire name.
    pub fn routine_step(&self) -> Option<dermis_ingredients::RoutineStep> {
        self.facts.as_ref().and_then(|f| f.routine_step)
    }

    /// The price in major units.
    pub fn price(&self) -> Option<f64> {
        self.price_minor.map(|p| p as f64 / 100.0)
    }
}

/// A sparse vector: (dimension, weight), ascending by dimension, unit length.
pub type Sparse = Vec<(u32, f32)>;

/// Cosine of two unit sparse vectors.
pub fn cosine(a: &[(u32, f32)], b: &[(u32, f32)]) -> f32 {
    let (mut i, mut j, mut s) = (0, 0, 0.0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                s += a[i].1 * b[j].1;
                i += 1;
                j += 1;
            }
        }
    }
    s
}

/// Every product, indexed, with the content model and embeddings over them.
pub struct ProductTable {
    version: u64,
    entries: Vec<Arc<ProductEntry>>,
    index: HashMap<String, u32>,
    content: ContentModel,
    embeddings: Vec<Sparse>,
}

impl std::fmt::Debug for ProductTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProductTable").field("version", &self.version).field("products", &self.entries.len()).finish()
    }
}

impl ProductTable {
    /// A table of `entries` (ids unique).
    pub fn new(version: u64, entries: Vec<Arc<ProductEntry>>) -> Self {
        let mut index = HashMap::with_capacity(entries.len() * 2);
        for (i, e) in entries.iter().enumerate() {
            if let Some(x) = &e.external_id {
                index.insert(x.clone(), i as u32);
            }
        }
        // Product ids win over an external id that happens to look the same.
        for (i, e) in entries.iter().enumerate() {
            index.insert(e.id.clone(), i as u32);
        }
        let items: Vec<ContentItem> = entries
            .iter()
            .map(|e| ContentItem {
                facts: e.facts.clone(),
                highlights: e.highlights.clone(),
                category: e.category.clone(),
            })
            .collect();
        let content = ContentModel::new(&items);
        let embeddings = embed(&entries);
        ProductTable { version, entries, index, content, embeddings }
    }

    /// Increases with every change.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// How many products.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The index of a product by id or external id.
    pub fn find(&self, reference: &str) -> Option<u32> {
        self.index.get(reference).copied()
    }

    /// A product.
    pub fn get(&self, i: u32) -> &ProductEntry {
        &self.entries[i as usize]
    }

    /// Every product.
    pub fn entries(&self) -> &[Arc<ProductEntry>] {
        &self.entries
    }

    /// The content model over the products (same indices).
    pub fn content(&self) -> &ContentModel {
        &self.content
    }

    /// A product's content embedding (ingredients by TF-IDF and position, actives weighed up).
    pub fn embedding(&self, i: u32) -> &[(u32, f32)] {
        &self.embeddings[i as usize]
    }
}

/// Content embeddings: each declared ingredient weighs its inverse document frequency over the
/// catalog divided by the square root of its position (the first ingredients make up most of a
/// product), actives twice; unit length.
fn embed(entries: &[Arc<ProductEntry>]) -> Vec<Sparse> {
    let mut dims: HashMap<&str, u32> = HashMap::new();
    let mut df: Vec<u32> = Vec::new();
    for e in entries {
        for id in &e.ingredients {
            let n = dims.len() as u32;
            let d = *dims.entry(id.as_str()).or_insert(n);
            if d as usize == df.len() {
                df.push(0);
            }
            df[d as usize] += 1;
        }
    }
    let n = entries.len().max(1) as f32;
    entries
        .iter()
        .map(|e| {
            let actives = e.actives();
            let mut v: Sparse = e
                .ingredients
                .iter()
                .enumerate()
                .map(|(pos, id)| {
                    let d = dims[id.as_str()];
                    let idf = (n / df[d as usize] as f32).ln().max(0.0) + 0.1;
                    let boost = if actives.iter().any(|a| a == id) { 2.0 } else { 1.0 };
                    (d, idf * boost / ((pos + 1) as f32).sqrt())
                })
                .collect();
            v.sort_unstable_by_key(|x| x.0);
            let norm = v.iter().map(|x| x.1 * x.1).sum::<f32>().sqrt();
            if norm > 0.0 {
                v.iter_mut().for_each(|x| x.1 /= norm);
            }
            v
        })
        .collect()
}

/// The catalog in memory on this node, as a projection of the catalog's events.
pub struct CatalogView {
    catalog: Catalog,
    safety: Arc<Safety>,
    table: RwLock<Arc<ProductTable>>,
    versions: AtomicU64,
    ready: AtomicBool,
    /// One load at a time, so a table is never replaced by an older read.
    turn: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for CatalogView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogView").field("table", &*self.table()).finish()
    }
}

impl CatalogView {
    /// An empty view of `catalog` (built by [`Projection::rebuild`]).
    pub fn new(catalog: Catalog, safety: Arc<Safety>) -> Arc<Self> {
        Arc::new(CatalogView {
            catalog,
            safety,
            table: RwLock::new(Arc::new(ProductTable::new(0, Vec::new()))),
            versions: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            turn: tokio::sync::Mutex::new(()),
        })
    }

    /// The current table.
    pub fn table(&self) -> Arc<ProductTable> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the first load finished.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn swap(&self, entries: Vec<Arc<ProductEntry>>) {
        let version = self.versions.fetch_add(1, Ordering::AcqRel) + 1;
        let table = Arc::new(ProductTable::new(version, entries));
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = table;
    }

    /// Reads every product from the store.
    pub async fn load_all(&self) -> anyhow::Result<u64> {
        let _turn = self.turn.lock().await;
        let mut entries = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.catalog.full_products(after.as_deref(), PAGE).await?;
            let (Some((first, _)), Some((last, _))) = (page.first(), page.last()) else { break };
            let mut skus = skus_by_product(self.catalog.active_sku_ids(&first.id, &last.id).await?);
            after = Some(last.id.clone());
            let safety = self.safety.clone();
            let built = tokio::task::spawn_blocking(move || {
                page.iter()
                    .map(|(p, price)| {
                        let skus = skus.remove(&p.id).unwrap_or_default();
                        Arc::new(ProductEntry::new(p, *price, &safety).with_skus(skus))
                    })
                    .collect::<Vec<_>>()
            })
            .await?;
            entries.extend(built);
        }
        let n = entries.len() as u64;
        self.swap(entries);
        self.ready.store(true, Ordering::Release);
        Ok(n)
    }

    /// Replaces the table with these products (read elsewhere: a file, a test), as if loaded
    /// from the store.
    pub fn load_products(&self, products: &[(Product, Option<i64>)]) {
        let entries = products.iter().map(|(p, price)| Arc::new(ProductEntry::new(p, *price, &self.safety))).collect();
        self.swap(entries);
        self.ready.store(true, Ordering::Release);
    }

    /// Re-reads the products named and swaps in a table with them.
    pub async fn refresh(&self, ids: &[String]) -> anyhow::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let _turn = self.turn.lock().await;
        let mut read = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some((p, price)) = self.catalog.full_product(id).await? {
                let skus = self.catalog.active_sku_ids(id, id).await?.into_iter().map(|(_, sku)| sku).collect();
                read.push(Arc::new(ProductEntry::new(&p, price, &self.safety).with_skus(skus)));
            }
        }
        let current = self.table();
        let mut entries = current.entries().to_vec();
        for e in read {
            match current.index.get(&e.id) {
                Some(&i) if entries[i as usize].id == e.id => entries[i as usize] = e,
                _ => entries.push(e),
            }
        }
        self.swap(entries);
        Ok(())
    }
}

/// (product id, SKU id) pairs grouped by product.
fn skus_by_product(pairs: Vec<(String, String)>) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (product, sku) in pairs {
        out.entry(product).or_default().push(sku);
    }
    out
}

#[async_trait]
impl Projection for CatalogView {
    fn name(&self) -> &'static str {
        "recommend-catalog"
    }

    fn topic(&self) -> &'static str {
        "catalog."
    }

    async fn rebuild(&self) -> anyhow::Result<u64> {
        self.load_all().await
    }

    fn rebuild_covers_published(&self) -> bool {
        true
    }

    async fn apply(&self, batch: &[Envelope]) -> anyhow::Result<()> {
        let mut ids: Vec<String> = Vec::new();
        for e in batch {
            match dermis_catalog::index::product_of(e) {
                Ok(Some(id)) if !ids.contains(&id) => ids.push(id),
                Ok(_) => {}
                Err(err) => {
                    tracing::error!(error = %err, id = e.id, topic = e.topic, "unreadable catalog event skipped by the recommendation engine");
                }
            }
        }
        self.refresh(&ids).await
    }
}
