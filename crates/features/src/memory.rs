//! The in-process feature store (the embedded default). Same caps and windows as Redis.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::{
    Action, CustomerFeatures, FeatureError, FeatureEvent, FeatureStore, ProductFeatures, RECENT, Recent, customer_from,
    hour_of, product_from,
};

/// Purchases kept per customer.
pub(crate) const PURCHASES: usize = 1000;
/// Affinity entries kept per customer.
pub(crate) const ACTIVITY: usize = 200;
const SEEN_MS: i64 = 8 * 24 * 3600 * 1000;
const WEEK_HOURS: i64 = 24 * 7;

#[derive(Default)]
struct Customer {
    views: VecDeque<Recent>,
    carts: VecDeque<Recent>,
    purchases: VecDeque<(Recent, i64)>,
    activity: VecDeque<(String, String, i64, i64)>,
}

#[derive(Default)]
struct State {
    customers: HashMap<String, Customer>,
    products: HashMap<String, [BTreeMap<i64, i64>; 3]>,
    seen: HashMap<String, i64>,
    /// Seen ids in arrival order, to forget them after [`SEEN_MS`] (or beyond [`SEEN_MAX`]).
    seen_order: VecDeque<(i64, String)>,
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
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.seen.contains_key(&e.id) {
            return Ok(());
        }
        s.seen.insert(e.id.clone(), e.at_ms);
        s.seen_order.push_back((e.at_ms, e.id.clone()));
        while let Some((at, _)) = s.seen_order.front() {
            if e.at_ms - *at < SEEN_MS && s.seen_order.len() <= SEEN_MAX {
                break;
            }
            if let Some((_, id)) = s.seen_order.pop_front() {
                s.seen.remove(&id);
            }
        }
        let c = s.customers.entry(e.customer_id.clone()).or_default();
        let r = Recent { product_id: e.product_id.clone(), at_ms: e.at_ms };
        match e.action {
            Action::View => push(&mut c.views, r, RECENT),
            Action::AddToCart => push(&mut c.carts, r, RECENT),
            Action::Purchase => push(&mut c.purchases, (r, e.amount_minor), PURCHASES),
        }
        for (kind, name) in [("brand", &e.brand), ("category", &e.category)] {
            if let Some(n) = name {
                push(&mut c.activity, (kind.to_owned(), n.clone(), e.action.weight(), e.at_ms), ACTIVITY);
            }
        }
        let p = s.products.entry(e.product_id.clone()).or_default();
        let i = match e.action {
            Action::View => 0,
            Action::AddToCart => 1,
            Action::Purchase => 2,
        };
        let hour = hour_of(e.at_ms);
        *p[i].entry(hour).or_default() += 1;
        p[i].retain(|h, _| hour - *h <= WEEK_HOURS);
        Ok(())
    }

    async fn customer(&self, customer_id: &str, now_ms: i64) -> Result<CustomerFeatures, FeatureError> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(c) = s.customers.get(customer_id) else { return Ok(CustomerFeatures::default()) };
        Ok(customer_from(
            c.views.iter().cloned().collect(),
            c.carts.iter().cloned().collect(),
            c.purchases.iter().cloned().collect(),
            c.activity.iter().cloned().collect(),
            now_ms,
        ))
    }

    async fn product(&self, product_id: &str, now_ms: i64) -> Result<ProductFeatures, FeatureError> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let buckets = s.products.get(product_id).cloned().unwrap_or_default();
        Ok(product_from(buckets, now_ms))
    }

    async fn forget_customer(&self, customer_id: &str) -> Result<(), FeatureError> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).customers.remove(customer_id);
        Ok(())
    }
}
