//! The online feature store: what a customer just did and how products are doing, a projection
//! of the event stream updated within milliseconds and read on the recommendation hot path.
//!
//! # Layout
//! - [`mapping`]: which stored events update which features ([`FeatureEvent`]s).
//! - [`service`]: [`Features`], the domain service: updates from stored events (enriched from
//!   the catalog through [`directory`]), reads by customer id or product reference, erasure;
//!   on the node that ingests it is an [`dermis_events::ingest::IngestHook`] (read-your-writes).
//! - [`projection`]: [`FeatureProjection`], the store kept current from `events.ingested` on
//!   the bus, rebuilt at start from a snapshot and the event log, snapshotted.
//! - [`routes`]: `/v1/features/customers/{id}` and `/v1/features/products/{id}`.
//! - [`FeatureStore`]: the storage trait; [`FeatureEvent`] in, [`CustomerFeatures`] /
//!   [`ProductFeatures`] out. Applying an event twice counts it once (the bus delivers at least
//!   once). [`memory`]: in process (the embedded default); [`redis_store`]: Redis, shared by
//!   several nodes, one Lua script applies an event atomically. Both pass `tests/conformance.rs`.
//! - [`snapshot`]: the in-memory store's snapshots (`feature_snapshots` and its parts: derived
//!   state, rebuilt from the event log when missing), written in 1 MB parts so a snapshot
//!   never holds the SQLite write turn for long.
//!
//! Customers are known here only by a keyed hash of their id ([`Pseudonyms`], owned by the
//! events crate): snapshots, Redis and the bus never carry a customer id in clear.
//!
//! This crate owns the `feature_snapshots` and `feature_snapshot_parts` tables.
//!
//! Windows and time-to-live are enforced when reading: a customer's activity older than
//! [`CUSTOMER_TTL_MS`] is gone, product counts are summed over hourly buckets.

pub mod directory;
pub mod mapping;
pub mod memory;
pub mod projection;
pub mod redis_store;
pub mod routes;
pub mod service;
pub mod snapshot;

pub use dermis_events::Pseudonyms;
pub use projection::FeatureProjection;
pub use service::Features;

/// Migrations of the snapshot table.
pub const MIGRATIONS: &[dermis_store::Migration] = &[
    dermis_store::Migration {
        domain: "features",
        version: 1,
        name: "snapshots of in-memory features",
        sqlite: include_str!("../migrations/0001_feature_snapshots.sql"),
        postgres: include_str!("../migrations/0001_feature_snapshots.sql"),
    },
    dermis_store::Migration {
        domain: "features",
        version: 2,
        name: "pseudonymous customer keys, snapshots written in parts",
        sqlite: include_str!("../migrations/0002_pseudonyms_snapshot_parts.sql"),
        postgres: include_str!("../migrations/0002_pseudonyms_snapshot_parts.sql"),
    },
    dermis_store::Migration {
        domain: "features",
        version: 3,
        name: "the pseudonym key handed over to the event stream",
        sqlite: include_str!("../migrations/0003_hand_over_pseudonym_key.sql"),
        postgres: include_str!("../migrations/0003_hand_over_pseudonym_key.sql"),
    },
];

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A customer's activity is forgotten after 90 days.
pub const CUSTOMER_TTL_MS: i64 = 90 * 24 * 3600 * 1000;
/// Recent lists keep this many entries.
pub const RECENT: usize = 20;
/// A session is the views of the last 30 minutes.
pub const SESSION_MS: i64 = 30 * 60 * 1000;
const HOUR_MS: i64 = 3600 * 1000;

/// What a customer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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

    /// Its slot in a product's bucket arrays.
    pub(crate) fn index(self) -> usize {
        match self {
            Self::View => 0,
            Self::AddToCart => 1,
            Self::Purchase => 2,
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

/// One event, as the feature store needs it. It travels on the bus (`events.ingested`), so it
/// is serializable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// The product's category, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The product's routine step (`moisturizer`), from the catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routine_step: Option<String>,
    /// The product's actives (canonical ingredient ids), from the catalog.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actives: Vec<String>,
    /// Money spent (purchases), minor units.
    /// (Always written: nodes of the previous release require the field, and a rolling
    /// deployment has both on the bus.)
    #[serde(default)]
    pub amount_minor: i64,
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// When Dermis received the event, ms since the epoch: an update received before its
    /// customer's erasure is dropped where it is applied (0 from nodes of the previous release:
    /// dropped too when its customer was erased, the safe side).
    #[serde(default)]
    pub received_at_ms: i64,
}

/// What the catalog says about a product, to enrich events whose properties do not say it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductTraits {
    /// The product's Dermis id (`prd_...`), whatever id the event used for it.
    pub id: String,
    /// Brand.
    pub brand: Option<String>,
    /// Category path.
    pub category: Option<String>,
    /// Routine step.
    pub routine_step: Option<String>,
    /// Actives (canonical ingredient ids).
    pub actives: Vec<String>,
}

/// Where the catalog's knowledge of a product comes from (the catalog, through its public API,
/// behind a cache). Lookups must be cheap: they happen on the ingestion path.
#[async_trait]
pub trait ProductDirectory: Send + Sync + 'static {
    /// The product's traits, by Dermis id or by the id of the system it came from; `None` when
    /// the catalog does not know it (the event still counts, without catalog features).
    async fn traits(&self, product_id: &str) -> Option<ProductTraits>;
}

impl FeatureEvent {
    /// Keys the event by the product's Dermis id (an event may name it by the id of the system
    /// it came from, `P12045`), and fills what the event did not say from the catalog (the
    /// event's own brand and category win).
    pub fn enrich(&mut self, t: &ProductTraits) {
        if !t.id.is_empty() {
            self.product_id.clone_from(&t.id);
        }
        if self.brand.is_none() {
            self.brand.clone_from(&t.brand);
        }
        if self.category.is_none() {
            self.category.clone_from(&t.category);
        }
        if self.routine_step.is_none() {
            self.routine_step.clone_from(&t.routine_step);
        }
        if self.actives.is_empty() {
            self.actives = t.actives.iter().take(MAX_ACTIVES).cloned().collect();
        }
    }

    /// The interests this event expresses: its brand, category and actives, weighted by action.
    pub(crate) fn interests(&self) -> Vec<Interest> {
        let w = self.action.weight();
        let mut out = Vec::with_capacity(2 + self.actives.len());
        for (kind, name) in [(InterestKind::Brand, &self.brand), (InterestKind::Category, &self.category)] {
            if let Some(n) = name {
                out.push(Interest { kind, name: n.clone(), weight: w, at_ms: self.at_ms });
            }
        }
        for a in self.actives.iter().take(MAX_ACTIVES) {
            out.push(Interest { kind: InterestKind::Ingredient, name: a.clone(), weight: w, at_ms: self.at_ms });
        }
        out
    }

    /// What the customer's lists keep of it.
    pub(crate) fn touch(&self) -> Touch {
        Touch {
            product_id: self.product_id.clone(),
            at_ms: self.at_ms,
            amount_minor: self.amount_minor,
            routine_step: self.routine_step.clone(),
        }
    }
}

/// Actives counted per event (a product lists a handful; the cap bounds a hostile one).
pub const MAX_ACTIVES: usize = 8;

/// A product a customer touched, as the lists keep it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Touch {
    #[serde(rename = "p")]
    pub product_id: String,
    #[serde(rename = "t")]
    pub at_ms: i64,
    #[serde(rename = "a", default)]
    pub amount_minor: i64,
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub routine_step: Option<String>,
}

/// What an interest is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum InterestKind {
    #[serde(rename = "b")]
    Brand,
    #[serde(rename = "c")]
    Category,
    #[serde(rename = "i")]
    Ingredient,
}

/// One weighted sign of interest, kept in a capped list and summed at read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Interest {
    #[serde(rename = "k")]
    pub kind: InterestKind,
    #[serde(rename = "n")]
    pub name: String,
    #[serde(rename = "w")]
    pub weight: i64,
    #[serde(rename = "t")]
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

/// A loyalty tier, from spend within the customer TTL (90 days): `gold` from 400.00,
/// `silver` from 150.00, `bronze` from the first purchase (amounts in the major unit of whatever
/// currency was sent; Dermis does not convert).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoyaltyTier {
    /// No purchase within the TTL.
    #[default]
    Prospect,
    /// At least one purchase.
    Bronze,
    /// 150.00 or more.
    Silver,
    /// 400.00 or more.
    Gold,
}

impl LoyaltyTier {
    /// The tier for a spend (minor units) and number of purchases.
    pub fn from_spend(spend_minor: i64, purchases: usize) -> Self {
        match spend_minor {
            s if s >= 40_000 => Self::Gold,
            s if s >= 15_000 => Self::Silver,
            _ if purchases > 0 => Self::Bronze,
            _ => Self::Prospect,
        }
    }
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
    /// Purchases per routine step (`cleanser`, `moisturizer` ...), for products the catalog knows.
    pub purchases_by_step: BTreeMap<String, i64>,
    /// Total spend (minor units) within the time-to-live.
    pub spend_minor: i64,
    /// Loyalty tier from that spend.
    pub loyalty_tier: LoyaltyTier,
    /// Weighted interest per brand (view 1, cart 3, purchase 5).
    pub brand_affinity: BTreeMap<String, i64>,
    /// Weighted interest per category.
    pub category_affinity: BTreeMap<String, i64>,
    /// Weighted interest per active ingredient (canonical id), from the catalog's facts.
    pub ingredient_affinity: BTreeMap<String, i64>,
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
    /// A snapshot could not be read or written.
    #[error("{0}")]
    Snapshot(String),
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
    /// Forgets everything about a customer (erasure), and leaves a tombstone: an update for them
    /// received before `erased_at_ms` that arrives later (it was on the bus) is dropped.
    async fn forget_customer(&self, customer_id: &str, erased_at_ms: i64) -> Result<(), FeatureError>;
}

/// Builds customer features from raw lists, newest first (shared by both implementations so
/// they agree).
pub(crate) fn customer_from(
    views: Vec<Touch>,
    carts: Vec<Touch>,
    purchases: Vec<Touch>,
    interests: Vec<Interest>,
    now_ms: i64,
) -> CustomerFeatures {
    let live = |at_ms: i64| now_ms - at_ms <= CUSTOMER_TTL_MS;
    let recent = |list: Vec<Touch>| {
        list.into_iter()
            .filter(|t| live(t.at_ms))
            .take(RECENT)
            .map(|t| Recent { product_id: t.product_id, at_ms: t.at_ms })
            .collect::<Vec<_>>()
    };
    let mut f =
        CustomerFeatures { recent_views: recent(views), recent_add_to_carts: recent(carts), ..Default::default() };
    f.session =
        f.recent_views.iter().filter(|r| now_ms - r.at_ms <= SESSION_MS).map(|r| r.product_id.clone()).collect();
    let mut bought = 0;
    for t in purchases.into_iter().filter(|t| live(t.at_ms)) {
        bought += 1;
        // Amounts come from client-sent prices: a huge one saturates rather than overflows.
        f.spend_minor = f.spend_minor.saturating_add(t.amount_minor);
        f.days_since_purchase.entry(t.product_id.clone()).or_insert((now_ms - t.at_ms) / (24 * HOUR_MS));
        if let Some(step) = &t.routine_step {
            *f.purchases_by_step.entry(step.clone()).or_default() += 1;
        }
        if f.recent_purchases.len() < RECENT {
            f.recent_purchases.push(Recent { product_id: t.product_id, at_ms: t.at_ms });
        }
    }
    f.loyalty_tier = LoyaltyTier::from_spend(f.spend_minor, bought);
    for i in interests.into_iter().filter(|i| live(i.at_ms)) {
        let map = match i.kind {
            InterestKind::Brand => &mut f.brand_affinity,
            InterestKind::Category => &mut f.category_affinity,
            InterestKind::Ingredient => &mut f.ingredient_affinity,
        };
        *map.entry(i.name).or_default() += i.weight;
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
