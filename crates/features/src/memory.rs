//! The in-process feature store (the embedded default). Same caps and windows as Redis. Its
//! state can be written out as a snapshot and read back ([`MemoryFeatures::snapshot`],
//! [`MemoryFeatures::restore`]), so a restart does not start from nothing; the event ids seen
//! are part of it, so events replayed after a restore count once.
//!
//! The state lives in persistent maps (`imbl`): a snapshot takes a copy of the whole state in
//! constant time under the lock and serializes it with the lock released, so ingestion never
//! waits for a snapshot (a 137 MB snapshot once held the lock for over a second). The copy is
//! consistent: the ids seen and the counts they made are taken at the same instant.

use std::collections::{BTreeMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Mutex;

use foldhash::HashSet;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    Action, CUSTOMER_TTL_MS, CustomerFeatures, FeatureError, FeatureEvent, FeatureStore, Interest, ProductFeatures,
    RECENT, Touch, customer_from, hour_of, product_from,
};

/// Purchases kept per customer.
pub(crate) const PURCHASES: usize = 1000;
/// Interest entries kept per customer.
pub(crate) const ACTIVITY: usize = 500;
const SEEN_MS: i64 = 8 * 24 * 3600 * 1000;
const WEEK_HOURS: i64 = 24 * 7;

#[derive(Default, Clone, Serialize, Deserialize)]
struct Customer {
    views: VecDeque<Touch>,
    carts: VecDeque<Touch>,
    purchases: VecDeque<Touch>,
    interests: VecDeque<Interest>,
}

type Map<V> = imbl::GenericHashMap<String, V, foldhash::fast::RandomState, imbl::shared_ptr::DefaultSharedPtr>;

/// What a snapshot holds; cloning it is constant-time (persistent structures).
#[derive(Default, Clone, Serialize, Deserialize)]
struct Persisted {
    customers: Map<Customer>,
    products: Map<[BTreeMap<i64, i64>; 3]>,
    /// Seen ids in the order they were applied, with when, to forget them after [`SEEN_MS`] (or
    /// beyond [`SEEN_MAX`]). The set is rebuilt from it on restore.
    seen_order: imbl::Vector<(i64, String)>,
    /// Erasure tombstones: customer (pseudonym) -> when erased. An update received before that
    /// is dropped at apply (it was in flight on the bus when the erasure happened elsewhere).
    #[serde(default)]
    erased: Map<i64>,
}

#[derive(Default)]
struct State {
    persisted: Persisted,
    /// The same ids as 64-bit hashes (this process's random seed): one lookup per event without
    /// copying its id. A new id whose hash matches one of the 2,000,000 kept (a chance of about
    /// one in 10^13 per event) would count for nothing, a risk worth taking for counters.
    seen: HashSet<u64>,
    hasher: foldhash::fast::RandomState,
}

impl State {
    fn seen_key(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }
}

impl std::ops::Deref for State {
    type Target = Persisted;
    fn deref(&self) -> &Persisted {
        &self.persisted
    }
}

impl std::ops::DerefMut for State {
    fn deref_mut(&mut self) -> &mut Persisted {
        &mut self.persisted
    }
}

/// Most event ids remembered for deduplication.
const SEEN_MAX: usize = 2_000_000;

/// The in-memory store.
#[derive(Default)]
pub struct MemoryFeatures {
    state: Mutex<State>,
}

impl MemoryFeatures {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The whole state as JSON (customers, product buckets, event ids seen, tombstones). The
    /// lock is held only to copy the state (constant time), not to serialize it.
    pub fn snapshot(&self) -> String {
        let copy = self.lock().persisted.clone();
        serde_json::to_string(&copy).unwrap_or_default()
    }

    /// Replaces the state with a snapshot. Events applied since are not lost by a restore made
    /// at start; replaying them afterwards is how a restart catches up (they count once).
    pub fn restore(&self, snapshot: &str) -> Result<(), FeatureError> {
        let persisted: Persisted =
            serde_json::from_str(snapshot).map_err(|e| FeatureError::Snapshot(format!("unreadable snapshot: {e}")))?;
        let mut state = State { persisted, ..State::default() };
        state.seen = state.persisted.seen_order.iter().map(|(_, id)| state.seen_key(id)).collect();
        *self.lock() = state;
        Ok(())
    }

    /// How many customers and products it holds.
    pub fn size(&self) -> (usize, usize) {
        let s = self.lock();
        (s.customers.len(), s.products.len())
    }
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn push<T>(list: &mut VecDeque<T>, item: T, cap: usize) {
    list.push_front(item);
    list.truncate(cap);
}

#[async_trait]
impl FeatureStore for MemoryFeatures {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn apply(&self, e: &FeatureEvent) -> Result<(), FeatureError> {
        let mut guard = self.lock();
        let s = &mut *guard;
        // An update received before its customer's erasure is dropped (see `erased`).
        if s.erased.get(&e.customer_id).is_some_and(|erased_at| e.received_at_ms <= *erased_at) {
            return Ok(());
        }
        let key = s.seen_key(&e.id);
        if !s.seen.insert(key) {
            return Ok(());
        }
        // Ids are forgotten by when they were applied (the clock here), never by the event's own
        // time: that comes from the client, and one message dated 2100 (or an import of old
        // orders) must not wipe the set that stops the bus's second copy from counting.
        let applied_at = wall_clock_ms();
        s.seen_order.push_back((applied_at, e.id.clone()));
        while let Some((at, _)) = s.seen_order.front() {
            if applied_at - *at < SEEN_MS && s.seen_order.len() <= SEEN_MAX {
                break;
            }
            if let Some((_, id)) = s.seen_order.pop_front() {
                let forgotten = s.seen_key(&id);
                s.seen.remove(&forgotten);
            }
        }
        // Look up before inserting: the id is copied only for a new customer or product.
        if !s.customers.contains_key(&e.customer_id) {
            s.customers.insert(e.customer_id.clone(), Customer::default());
        }
        let Some(c) = s.customers.get_mut(&e.customer_id) else { return Ok(()) };
        match e.action {
            Action::View => push(&mut c.views, e.touch(), RECENT),
            Action::AddToCart => push(&mut c.carts, e.touch(), RECENT),
            Action::Purchase => push(&mut c.purchases, e.touch(), PURCHASES),
        }
        for i in e.interests() {
            push(&mut c.interests, i, ACTIVITY);
        }
        if !s.products.contains_key(&e.product_id) {
            s.products.insert(e.product_id.clone(), Default::default());
        }
        let Some(p) = s.products.get_mut(&e.product_id) else { return Ok(()) };
        let hour = hour_of(e.at_ms);
        let buckets = &mut p[e.action.index()];
        *buckets.entry(hour).or_default() += 1;
        // Hours more than a week before this one: the oldest keys, at the front.
        while buckets.first_key_value().is_some_and(|(h, _)| hour - *h > WEEK_HOURS) {
            buckets.pop_first();
        }
        Ok(())
    }

    async fn customer(&self, customer_id: &str, now_ms: i64) -> Result<CustomerFeatures, FeatureError> {
        let s = self.lock();
        let Some(c) = s.customers.get(customer_id) else { return Ok(CustomerFeatures::default()) };
        Ok(customer_from(
            c.views.iter().cloned().collect(),
            c.carts.iter().cloned().collect(),
            c.purchases.iter().cloned().collect(),
            c.interests.iter().cloned().collect(),
            now_ms,
        ))
    }

    async fn product(&self, product_id: &str, now_ms: i64) -> Result<ProductFeatures, FeatureError> {
        let buckets = self.lock().products.get(product_id).cloned().unwrap_or_default();
        Ok(product_from(buckets, now_ms))
    }

    async fn forget_customer(&self, customer_id: &str, erased_at_ms: i64) -> Result<(), FeatureError> {
        let mut s = self.lock();
        s.customers.remove(customer_id);
        let at = s.erased.get(customer_id).map_or(erased_at_ms, |t| (*t).max(erased_at_ms));
        s.erased.insert(customer_id.to_owned(), at);
        // Tombstones older than anything that can still arrive go (erasures are rare: a scan
        // here costs nothing on the ingestion path).
        let horizon = wall_clock_ms() - CUSTOMER_TTL_MS;
        s.erased.retain(|_, at| *at >= horizon);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purchase(id: &str, at_ms: i64) -> FeatureEvent {
        FeatureEvent {
            id: id.into(),
            customer_id: "c1".into(),
            product_id: "p1".into(),
            action: Action::Purchase,
            brand: Some("B".into()),
            category: None,
            routine_step: Some("serum".into()),
            actives: vec!["niacinamide".into()],
            amount_minor: 1000,
            at_ms,
            received_at_ms: at_ms,
        }
    }

    #[tokio::test]
    async fn a_restored_snapshot_reads_the_same_and_still_deduplicates() {
        let now = 1_800_000_000_000;
        let a = MemoryFeatures::new();
        a.apply(&purchase("e1", now - 1000)).await.unwrap();
        let b = MemoryFeatures::new();
        b.restore(&a.snapshot()).unwrap();
        assert_eq!(b.customer("c1", now).await.unwrap(), a.customer("c1", now).await.unwrap());
        assert_eq!(b.product("p1", now).await.unwrap(), a.product("p1", now).await.unwrap());
        b.apply(&purchase("e1", now - 1000)).await.unwrap(); // replayed after the restore
        assert_eq!(
            b.customer("c1", now).await.unwrap().spend_minor,
            1000,
            "an event seen before the snapshot counts once"
        );
        assert!(b.restore("{not json").is_err(), "a damaged snapshot is refused, not half applied");
        // An event from the far future or the far past does not make the store forget ids.
        let mut future = purchase("e-future", now + 80 * 365 * 24 * 3600 * 1000);
        future.customer_id = "c2".into();
        b.apply(&future).await.unwrap();
        b.apply(&purchase("e1", now - 1000)).await.unwrap();
        assert_eq!(
            b.customer("c1", now).await.unwrap().spend_minor,
            1000,
            "e1 is still known after a dated-2106 event"
        );
        assert_eq!(b.size(), (2, 1), "customers c1 and c2, product p1");
    }
}
