//! The online feature store: what a customer just did and how products are doing, updated from
//! the event stream within milliseconds and read on the recommendation hot path.
//!
//! # Layout
//! - [`FeatureStore`]: the trait; [`FeatureEvent`] in, [`CustomerFeatures`] / [`ProductFeatures`]
//!   out. Applying an event twice counts it once (the bus delivers at least once).
//! - [`memory`]: in process (the embedded default).
//! - [`redis_store`]: Redis, shared by several nodes; one Lua script applies an event atomically.
//!
//! Windows and time-to-live are enforced when reading: a customer's activity older than
//! [`CUSTOMER_TTL_MS`] is gone, product counts are summed over hourly buckets.

pub mod memory;
pub mod redis_store;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;
use utoipa::ToSchema;

/// A customer's activity is forgotten after 90 days.
pub const CUSTOMER_TTL_MS: i64 = 90 * 24 * 3600 * 1000;
/// Recent lists keep this many entries.
pub const RECENT: usize = 20;
/// A session is the views of the last 30 minutes.
pub const SESSION_MS: i64 = 30 * 60 * 1000;
const HOUR_MS: i64 = 3600 * 1000;

/// What a customer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Viewed a product.
    View,
    /// Added it to the cart.
    AddToCart,
    /// Bought it.
    Purchase,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::AddToCart => "cart",
            Self::Purchase => "purchase",
        }
    }

    /// How much it says about taste (for affinities).
    fn weight(self) -> i64 {
        match self {
            Self::View => 1,
            Self::AddToCart => 3,
            Self::Purchase => 5,
        }
    }
}

/// One event, as the feature store needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureEvent {
    /// Unique id (the event's): applying it twice counts once.
    pub id: String,
    /// The customer (user id, else anonymous id).
    pub customer_id: String,
    /// The product.
    pub product_id: String,
    /// What happened.
    pub action: Action,
    /// The product's brand, if known.
    pub brand: Option<String>,
    /// The product's category, if known.
    pub category: Option<String>,
    /// Money spent (purchases), minor units.
    pub amount_minor: i64,
    /// When, ms since the epoch.
    pub at_ms: i64,
}

/// A product and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Recent {
    /// Product id.
    pub product_id: String,
    /// When, ms since the epoch.
    pub at_ms: i64,
}

/// What is known about a customer now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct CustomerFeatures {
    /// Latest views, newest first.
    pub recent_views: Vec<Recent>,
    /// Latest add-to-carts, newest first.
    pub recent_add_to_carts: Vec<Recent>,
    /// Latest purchases, newest first.
    pub recent_purchases: Vec<Recent>,
    /// Products viewed in the last 30 minutes, newest first (the session).
    pub session: Vec<String>,
    /// Days since the last purchase of each product bought.
    pub days_since_purchase: BTreeMap<String, i64>,
    /// Total spend (minor units) within the time-to-live.
    pub spend_minor: i64,
    /// Weighted interest per brand (view 1, cart 3, purchase 5).
    pub brand_affinity: BTreeMap<String, i64>,
    /// Weighted interest per category.
    pub category_affinity: BTreeMap<String, i64>,
}

/// How a product is doing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct ProductFeatures {
    /// Views in the last hour / 24 hours / 7 days.
    pub views: [i64; 3],
    /// Add-to-carts in the same windows.
    pub add_to_carts: [i64; 3],
    /// Purchases in the same windows.
    pub purchases: [i64; 3],
    /// Purchases per view over 7 days.
    pub conversion_7d: f64,
    /// Views in the last 24 hours against the daily average of the 7 days (above 1: trending).
    pub trending: f64,
}

/// Feature store failures.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    /// Redis failed.
    #[error("redis: {0}")]
    Redis(String),
}

/// The feature store.
#[async_trait]
pub trait FeatureStore: Send + Sync + 'static {
    /// Which implementation.
    fn name(&self) -> &'static str;
    /// Applies an event (a second application of the same id is ignored).
    async fn apply(&self, event: &FeatureEvent) -> Result<(), FeatureError>;
    /// A customer's features as of `now_ms`.
    async fn customer(&self, customer_id: &str, now_ms: i64) -> Result<CustomerFeatures, FeatureError>;
    /// A product's features as of `now_ms`.
    async fn product(&self, product_id: &str, now_ms: i64) -> Result<ProductFeatures, FeatureError>;
    /// Forgets everything about a customer (erasure).
    async fn forget_customer(&self, customer_id: &str) -> Result<(), FeatureError>;
}

/// Builds customer features from raw lists (shared by both implementations so they agree).
pub(crate) fn customer_from(
    views: Vec<Recent>,
    carts: Vec<Recent>,
    purchases: Vec<(Recent, i64)>,
    affinities: Vec<(String, String, i64, i64)>,
    now_ms: i64,
) -> CustomerFeatures {
    let live = |r: &Recent| now_ms - r.at_ms <= CUSTOMER_TTL_MS;
    let mut f = CustomerFeatures {
        recent_views: views.into_iter().filter(live).take(RECENT).collect(),
        recent_add_to_carts: carts.into_iter().filter(live).take(RECENT).collect(),
        ..CustomerFeatures::default()
    };
    f.session =
        f.recent_views.iter().filter(|r| now_ms - r.at_ms <= SESSION_MS).map(|r| r.product_id.clone()).collect();
    for (r, amount) in purchases.into_iter().filter(|(r, _)| live(r)) {
        // Amounts come from client-sent prices: a huge one saturates rather than overflows.
        f.spend_minor = f.spend_minor.saturating_add(amount);
        f.days_since_purchase.entry(r.product_id.clone()).or_insert((now_ms - r.at_ms) / (24 * HOUR_MS));
        if f.recent_purchases.len() < RECENT {
            f.recent_purchases.push(r);
        }
    }
    for (kind, name, weight, at_ms) in affinities {
        if now_ms - at_ms > CUSTOMER_TTL_MS {
            continue;
        }
        let map = if kind == "brand" { &mut f.brand_affinity } else { &mut f.category_affinity };
        *map.entry(name).or_default() += weight;
    }
    f
}

/// Builds product features from hourly buckets (`hour index → count` per action).
pub(crate) fn product_from(buckets: [BTreeMap<i64, i64>; 3], now_ms: i64) -> ProductFeatures {
    let hour = now_ms / HOUR_MS;
    let sum = |b: &BTreeMap<i64, i64>, hours: i64| b.range(hour - hours + 1..=hour).map(|(_, c)| *c).sum::<i64>();
    let windows = |b: &BTreeMap<i64, i64>| [sum(b, 1), sum(b, 24), sum(b, 24 * 7)];
    let views = windows(&buckets[0]);
    let purchases = windows(&buckets[2]);
    ProductFeatures {
        views,
        add_to_carts: windows(&buckets[1]),
        purchases,
        conversion_7d: if views[2] > 0 { purchases[2] as f64 / views[2] as f64 } else { 0.0 },
        trending: if views[2] > 0 { views[1] as f64 / (views[2] as f64 / 7.0) } else { 0.0 },
    }
}

/// The hour bucket of a time.
pub(crate) fn hour_of(at_ms: i64) -> i64 {
    at_ms / HOUR_MS
}
