//! The catalog's search as an in-memory index on every node: a projection of the catalog's
//! tables and events.
//!
//! [`SearchIndex`] holds every product as roaring bitmaps (one per brand, category, routine step,
//! concern, skin type, flag value, price, knowledge-base version, ingredient id, declared name and
//! family: every filter of [`SearchFilter`] is a set operation with the SQL search's semantics,
//! the exclusion safety rule of [`crate::search`] included) and per-word postings over name,
//! brand, category, highlights and the names of declared ingredients, ranked with BM25F. Every
//! query word must be found in the name, brand or category (the API's promise: a `q` search lists
//! products named for its words; highlights and ingredient names only rank), as a whole word
//! ([`text`]), the last one also as a prefix, words of 5 characters or more with a typo (two from
//! 9). Facet counts come from the same match set. Each product is kept serialized as listings
//! show it, so a page costs no store read. Cursors are the last id (listing order) or its score
//! and id (relevance order; a cursor of the other kind is refused).
//!
//! As a projection ([`dermis_bus::projection::Projection`], `search`, topic `catalog.`): built at
//! start from the store ([`SearchIndex::rebuild`]), then every catalog event re-reads the product
//! it names (a SKU event names it in its payload) and replaces it (idempotent). The node that
//! writes refreshes its own index after the commit, before answering (read-your-writes,
//! [`crate::Catalog::with_index`]). Until the first build finishes, [`crate::Catalog::search`]
//! answers from SQL.
//!
//! # Layout
//! - [`text`]: words (folding, splitting) and the vocabulary (exact, prefix, typo matches).
//! - [`doc`]: what the index knows of a product, and its reading from the store.
//! - [`state`]: the bitmaps, postings, ranking, facets and pages.

pub mod doc;
pub mod state;
pub mod text;

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use async_trait::async_trait;
use dermis_bus::Envelope;
use dermis_bus::projection::Projection;
use dermis_core::page::{Cursor, Limit};
use dermis_store::{Db, StoreError};

use crate::search::{SearchFilter, SearchPage};
use crate::{Catalog, CatalogError};
use state::{After, State, Stats};

/// Products replaced per turn of the write lock, so searches run between them.
const UPSERTS_PER_LOCK: usize = 16;

/// The search index of this node.
pub struct SearchIndex {
    db: Db,
    state: RwLock<State>,
    ready: AtomicBool,
    /// One refresh or rebuild at a time: each reads the store after the previous one applied
    /// what it read, so the index never goes back to an older read of a product.
    turn: tokio::sync::Mutex<()>,
    /// While a rebuild runs: the products changed meanwhile, re-read once it is in place.
    rebuilding: Mutex<Option<BTreeSet<String>>>,
}

impl fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SearchIndex").field("ready", &self.is_ready()).field("products", &self.read().len()).finish()
    }
}

impl SearchIndex {
    /// An empty index of `catalog`'s products (it reads them through the catalog's store). Build
    /// it with [`Self::rebuild`] (the projection runner does), and attach it to the catalog that
    /// serves requests with [`Catalog::with_index`].
    pub fn new(catalog: Catalog) -> Arc<Self> {
        Arc::new(Self {
            db: catalog.db().clone(),
            state: RwLock::new(State::new()),
            ready: AtomicBool::new(false),
            turn: tokio::sync::Mutex::new(()),
            rebuilding: Mutex::new(None),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the first build has finished (before it, searches go to SQL).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Sizes of the index.
    pub fn stats(&self) -> Stats {
        self.read().stats()
    }

    /// Reads every product from the store and replaces the index with them; returns how many.
    /// Products changed meanwhile are re-read once it is in place. If it fails, the index keeps
    /// what it had (re-reading those products into it) and the call can be made again.
    pub async fn rebuild(&self) -> Result<u64, StoreError> {
        self.rebuilding.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert_with(BTreeSet::new);
        let _turn = self.turn.lock().await;
        let built = self.rebuild_in_turn().await;
        if built.is_err() {
            let pending = self.rebuilding.lock().unwrap_or_else(PoisonError::into_inner).take().unwrap_or_default();
            if !pending.is_empty() {
                let pending: Vec<String> = pending.into_iter().collect();
                if let Err(e) = self.load_into(&pending).await {
                    tracing::warn!(error = %e, "re-reading products changed during a failed index rebuild failed; their events will");
                }
            }
        }
        built
    }

    async fn rebuild_in_turn(&self) -> Result<u64, StoreError> {
        let docs = doc::load(&self.db, None).await?;
        let state = tokio::task::spawn_blocking(move || State::build(docs))
            .await
            .map_err(|e| StoreError::Other(format!("building the search index: {e}")))?;
        let n = state.len();
        *self.write() = state;
        loop {
            let pending: Vec<String> = {
                let mut r = self.rebuilding.lock().unwrap_or_else(PoisonError::into_inner);
                let p = r.as_mut().map(std::mem::take).unwrap_or_default();
                if p.is_empty() {
                    *r = None;
                    break;
                }
                p.into_iter().collect()
            };
            if let Err(e) = self.load_into(&pending).await {
                if let Some(p) = self.rebuilding.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
                    p.extend(pending);
                }
                return Err(e);
            }
        }
        self.ready.store(true, Ordering::Release);
        metrics::gauge!("search_index_products").set(self.read().len() as f64);
        Ok(n)
    }

    /// Re-reads these products from the store and replaces them in the index (a product no
    /// longer stored leaves it). Idempotent. While a rebuild runs, they are re-read when it ends.
    pub async fn refresh(&self, product_ids: &[String]) -> Result<(), StoreError> {
        if product_ids.is_empty() {
            return Ok(());
        }
        if let Some(pending) = self.rebuilding.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
            pending.extend(product_ids.iter().cloned());
            return Ok(());
        }
        let _turn = self.turn.lock().await;
        self.load_into(product_ids).await
    }

    async fn load_into(&self, ids: &[String]) -> Result<(), StoreError> {
        let docs = doc::load(&self.db, Some(ids)).await?;
        let found: HashSet<&str> = docs.iter().map(|d| d.id.as_str()).collect();
        let gone: Vec<&String> = ids.iter().filter(|id| !found.contains(id.as_str())).collect();
        drop(found);
        if !gone.is_empty() {
            let mut state = self.write();
            for id in gone {
                state.remove(id);
            }
        }
        let mut docs = docs.into_iter().peekable();
        while docs.peek().is_some() {
            let mut state = self.write();
            for d in docs.by_ref().take(UPSERTS_PER_LOCK) {
                state.upsert(d);
            }
        }
        Ok(())
    }

    /// Answers a search, or `None` while the index is not built yet.
    pub fn search(
        &self,
        filter: &SearchFilter,
        cursor: Option<&Cursor>,
        limit: Limit,
        with_facets: bool,
    ) -> Option<Result<SearchPage, CatalogError>> {
        if !self.is_ready() {
            return None;
        }
        let ranked = filter.words.iter().any(|w| {
            let mut any = false;
            text::for_each_word(w, |_| any = true);
            any
        });
        let after = match cursor {
            Some(c) => match After::decode(&c.0, ranked) {
                Some(a) => Some(a),
                None => return Some(Err(CatalogError::InvalidCursor)),
            },
            None => None,
        };
        let found = self.read().search(filter, after.as_ref(), limit.get() as usize, with_facets);
        Some(Ok(SearchPage {
            items: found.items,
            next_cursor: found.next.map(|a| Cursor::encode(&a.encode())),
            facets: found.facets,
            unknown_terms: filter.unknown_terms(),
        }))
    }

    /// The ids of every product matching `filter`'s filters (its words aside), in id order: the
    /// index's counterpart of [`crate::search::search_ids`]. `None` while not built.
    pub fn filter_ids(&self, filter: &SearchFilter) -> Option<Vec<String>> {
        if !self.is_ready() {
            return None;
        }
        let mut ids = self.read().filter_ids(filter);
        ids.sort_unstable();
        Some(ids)
    }
}

/// The product a catalog event is about: the key of a product event, the `product_id` of a SKU
/// event's payload. `Ok(None)`: an event that changes no product.
pub fn product_of(e: &Envelope) -> Result<Option<String>, String> {
    if e.topic.starts_with("catalog.product.") {
        return Ok(Some(e.key.clone()));
    }
    if e.topic.starts_with("catalog.sku.") {
        #[derive(serde::Deserialize)]
        struct Sku {
            product_id: String,
        }
        return serde_json::from_str::<Sku>(&e.payload)
            .map(|s| Some(s.product_id))
            .map_err(|err| format!("a SKU event without its product: {err}"));
    }
    Ok(None)
}

#[async_trait]
impl Projection for SearchIndex {
    fn name(&self) -> &'static str {
        "search"
    }

    fn topic(&self) -> &'static str {
        "catalog."
    }

    async fn rebuild(&self) -> anyhow::Result<u64> {
        Ok(SearchIndex::rebuild(self).await?)
    }

    /// The rebuild reads every product; the catalog publishes after its commits.
    fn rebuild_covers_published(&self) -> bool {
        true
    }

    async fn apply(&self, batch: &[Envelope]) -> anyhow::Result<()> {
        let mut seen = HashSet::new();
        let mut ids = Vec::new();
        for e in batch {
            match product_of(e) {
                Ok(Some(id)) => {
                    if seen.insert(id.clone()) {
                        ids.push(id);
                    }
                }
                Ok(None) => {}
                Err(err) => {
                    metrics::counter!("bus_unreadable_total", "consumer" => "search").increment(1);
                    tracing::error!(error = %err, id = e.id, topic = e.topic, "unreadable catalog event skipped by the search index");
                }
            }
        }
        self.refresh(&ids).await?;
        metrics::gauge!("search_index_products").set(self.read().len() as f64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::input::{ListProducts, NewProduct};
    use dermis_store::testing::TestDb;

    #[tokio::test]
    async fn a_write_during_a_rebuild_is_remembered_not_waited_for() {
        let t = TestDb::sqlite(&[dermis_store::MIGRATIONS, crate::MIGRATIONS]).await;
        let index = SearchIndex::new(Catalog::new(t.db().clone()));
        let c = Catalog::new(t.db().clone()).with_index(index.clone());
        // A rebuild is under way (it holds the turn while it reads the store).
        let turn = index.turn.lock().await;
        index.rebuilding.lock().unwrap().get_or_insert_with(BTreeSet::new);
        let new = NewProduct {
            name: "Rebuild Balm".into(),
            brand: "B".into(),
            external_id: None,
            category: None,
            description: None,
            ingredients: None,
            highlights: Vec::new(),
        };
        let created = tokio::time::timeout(Duration::from_secs(5), c.create_product(None, new)).await;
        let id = created.expect("the write does not wait for the rebuild").unwrap().value.id;
        assert!(index.rebuilding.lock().unwrap().as_ref().unwrap().contains(&id));
        drop(turn);
        index.rebuild().await.unwrap();
        assert!(index.rebuilding.lock().unwrap().is_none());
        let f =
            SearchFilter::parse(&ListProducts { q: Some("rebuild balm".into()), ..ListProducts::default() }).unwrap();
        let page = c.search(&f, None, Limit::default(), false).await.unwrap();
        assert_eq!(page.items.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
    }
}
