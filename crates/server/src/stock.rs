//! Stock for recommendations: the recommendation routes ask through their own trait
//! ([`StockView`]); the inventory answers, from the ledger in memory (no database access, so a
//! recommendation never waits on stock). Wired here because the server is where both sides meet:
//! the recommendation crate does not depend on the inventory.
//!
//! - A channel (`web`, `app`, `pos`, `marketplace:NAME`): a product is in stock when one of its
//!   SKUs has units the channel can sell ([`dermis_inventory::Ledger::available`]: sellable lots
//!   over the channel's locations, less safety stock and live holds) — what
//!   `GET /v1/inventory/{sku_id}` shows as the channel's `available`.
//! - A store (a location's id or code): when one of its SKUs is on that location's shelf, held by
//!   nobody ([`dermis_inventory::Ledger::shelf_available`]). The store wins over the channel.
//! - A product none of whose SKUs the ledger knows (no receipt, no hold ever named them) has no
//!   stock records: it is not judged (`None`), so it is kept.
//!
//! A channel's availability costs the ledger several microseconds per SKU (its locations, lots,
//! safety stock), too much for the few hundred candidates of every request, so each answer is
//! kept per (place, SKU) with what it depends on: the SKU's last movement (its per-SKU sequence:
//! receipts, holds, releases, sales all move it), the day (lots expire, shelf life runs out), the
//! channel's policy and the number of locations. While a hold has passed its deadline and the
//! sweeper has not yet returned its units (availability changed without a movement), nothing is
//! read from or kept in the cache; nor for a kit (its components move, not it).

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use dermis_core::clock::SharedClock;
use dermis_inventory::{Channel, Inventory, Ledger, LocationId, SkuId, day_of};
use dermis_recommend::safety::{StockPlace, StockView};

/// Answers kept (place and SKU) before the cache starts afresh.
const CACHED: usize = 500_000;

/// What a kept answer depends on: it holds while all of this is the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    sequence: u64,
    day: i64,
    locations: usize,
    policy: Option<(i64, i64)>,
}

/// The inventory ledger as the recommendation engine reads it.
pub struct InventoryStock {
    inventory: Inventory,
    clock: SharedClock,
    /// `place|sku` → whether units are available there, and what that depended on.
    cache: RwLock<HashMap<String, (Stamp, bool)>>,
}

impl InventoryStock {
    /// Over `inventory`, reading availability at the clock's now.
    pub fn new(inventory: Inventory, clock: SharedClock) -> Self {
        Self { inventory, clock, cache: RwLock::default() }
    }

    /// Whether `sku` (known to the ledger) has units at `at`.
    fn available(&self, l: &Ledger, at: &At, sku: &SkuId, now_ms: i64, lapsed: bool) -> bool {
        let read = || match at {
            At::Store(location) => l.shelf_available(sku, location, now_ms) > 0,
            At::Channel(channel) => l.available(sku, channel, now_ms).is_ok_and(|a| a.available > 0),
        };
        if lapsed || l.setup().kits.iter().any(|k| &k.sku == sku) {
            return read();
        }
        let stamp = Stamp {
            sequence: l.sku_sequence(sku),
            day: day_of(now_ms),
            locations: l.setup().locations.len(),
            policy: match at {
                At::Channel(c) => {
                    l.setup().channels.iter().find(|p| &p.channel == c).map(|p| (p.safety_stock, p.min_shelf_life_days))
                }
                At::Store(_) => None,
            },
        };
        let key = match at {
            At::Store(location) => format!("s:{location}|{sku}"),
            At::Channel(channel) => format!("c:{channel}|{sku}"),
        };
        if let Some(&(kept, units)) = self.cache.read().unwrap_or_else(PoisonError::into_inner).get(&key)
            && kept == stamp
        {
            return units;
        }
        let units = read();
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHED {
            cache.clear();
        }
        cache.insert(key, (stamp, units));
        units
    }
}

/// Where stock is read, resolved against the ledger's setup.
enum At {
    Store(LocationId),
    Channel(Channel),
}

/// The place as the ledger knows it, or why it does not.
fn resolve(l: &Ledger, place: &StockPlace) -> Result<At, String> {
    match (&place.store, &place.channel) {
        (Some(store), _) => l
            .setup()
            .locations
            .iter()
            .find(|loc| loc.id.as_str() == store || loc.details.code == *store)
            .map(|loc| At::Store(loc.id.clone()))
            .ok_or_else(|| format!("the inventory has no location {store:?}")),
        (None, Some(name)) => {
            let channel: Channel = name
                .parse()
                .map_err(|_| format!("{name:?} is not a sales channel (web, app, pos or marketplace:NAME)"))?;
            if l.setup().channels.iter().any(|p| p.channel == channel) {
                Ok(At::Channel(channel))
            } else {
                Err(format!("no location of the inventory sells on {name}"))
            }
        }
        (None, None) => Err("neither a channel nor a store was named".to_owned()),
    }
}

impl StockView for InventoryStock {
    fn unknown_place(&self, place: &StockPlace) -> Option<String> {
        self.inventory.read(|l| resolve(l, place).err())
    }

    fn in_stock(&self, skus: &[String], place: &StockPlace) -> Option<bool> {
        if skus.is_empty() {
            return None;
        }
        let now_ms = self.clock.now_ms();
        // One read of the ledger per product: its SKUs until one is available.
        self.inventory.read(|l| {
            let at = resolve(l, place).ok()?;
            let lapsed = l.next_deadline().is_some_and(|deadline| deadline <= now_ms);
            let mut untracked = false;
            for sku in skus {
                let sku = SkuId::new(sku.as_str());
                if !l.knows_sku(&sku) {
                    untracked = true;
                    continue;
                }
                if self.available(l, &at, &sku, now_ms, lapsed) {
                    return Some(true);
                }
            }
            // Out only when every SKU is tracked: an untracked one might be in stock.
            (!untracked).then_some(false)
        })
    }
}
