//! The ledger's vocabulary: identifiers, time, locations and channels, lots, the accounts stock sits
//! in, and the immutable [`Movement`] record.
//!
//! Everything here is plain data. Nothing in this module decides anything: the rules live in
//! `ledger`, `draft`, `allocation` and `kits`.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Quantities of units. Signed so that external accounts can go negative (the supplier account is
/// minus everything ever received); every internal balance and every movement stays `>= 0` / `> 0`.
pub type Quantity = i64;

/// Milliseconds since the Unix epoch. The ledger never reads a clock: every call is given its time.
pub type TimestampMs = i64;

/// Days since the Unix epoch (1970-01-01 is day 0), as lots print their dates.
pub type EpochDay = i64;

/// Milliseconds in a day.
pub const MS_PER_DAY: i64 = 86_400_000;

/// The epoch day a timestamp falls on (UTC).
pub fn day_of(at_ms: TimestampMs) -> EpochDay {
    at_ms.div_euclid(MS_PER_DAY)
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// Shared text (`Arc<str>`): the ledger copies ids into every record, movement and kept
        /// outcome that names them, and a copy costs a reference count, not an allocation.
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Wraps the identifier as given.
            pub fn new(id: impl Into<String>) -> Self {
                Self(Arc::from(id.into()))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(Arc::from(id))
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(Arc::from(id))
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map(Self::from)
            }
        }
    };
}

string_id!(
    /// A stock-keeping unit, as the catalog names it (a plain SKU or a kit).
    SkuId
);
string_id!(
    /// A warehouse, store, marketplace node or 3PL node.
    LocationId
);
string_id!(
    /// A manufacturing batch code, as printed on the pack. Unique per SKU, not globally.
    LotCode
);
string_id!(
    /// A cart hold (and, once confirmed, the order's stock). Chosen by the caller.
    ReservationId
);
string_id!(
    /// A transfer of stock between two locations. Chosen by the caller.
    TransferId
);
string_id!(
    /// A purchase order expected from a supplier. Chosen by the caller.
    PurchaseOrderId
);
string_id!(
    /// The key that makes a command idempotent: a repeat returns the first outcome.
    IdempotencyKey
);
string_id!(
    /// Who asked for a change: a user, an API key, a POS terminal, `system` for the sweeper.
    Actor
);

/// A sales channel: `web`, `app`, `pos` or `marketplace:NAME`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Channel {
    /// The brand's web shop.
    Web,
    /// The brand's mobile app.
    App,
    /// A physical store's till.
    Pos,
    /// A marketplace, by name (`marketplace:zalando`).
    Marketplace(String),
}

/// A channel name that is none of `web`, `app`, `pos`, `marketplace:NAME`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown channel {0:?}: expected web, app, pos or marketplace:NAME")]
pub struct ParseChannelError(pub String);

impl FromStr for Channel {
    type Err = ParseChannelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "web" => Ok(Self::Web),
            "app" => Ok(Self::App),
            "pos" => Ok(Self::Pos),
            _ => match s.strip_prefix("marketplace:") {
                Some(name) if !name.is_empty() => Ok(Self::Marketplace(name.to_owned())),
                _ => Err(ParseChannelError(s.to_owned())),
            },
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Web => f.write_str("web"),
            Self::App => f.write_str("app"),
            Self::Pos => f.write_str("pos"),
            Self::Marketplace(name) => write!(f, "marketplace:{name}"),
        }
    }
}

impl TryFrom<String> for Channel {
    type Error = ParseChannelError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Channel> for String {
    fn from(channel: Channel) -> Self {
        channel.to_string()
    }
}

/// What a location is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocationKind {
    /// A warehouse shipping online orders.
    Warehouse,
    /// A physical store (shelf stock, POS, click-and-collect).
    Store,
    /// Stock held by a marketplace (fulfilled by the marketplace).
    Marketplace,
    /// A third-party logistics node.
    #[serde(rename = "3pl")]
    ThirdPartyLogistics,
}

/// A place stock sits in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// The location's id.
    pub id: LocationId,
    /// Warehouse, store, marketplace or 3PL.
    pub kind: LocationKind,
    /// Latitude in degrees, for "nearest first".
    pub latitude: f64,
    /// Longitude in degrees.
    pub longitude: f64,
    /// The channels that may sell from this location's stock.
    pub channels: Vec<Channel>,
    /// What people see of it (code, name, opening hours); the ledger does not read it.
    #[serde(default)]
    pub details: LocationDetails,
}

/// What a location is called and when it is open: shown to customers and staff, never used by
/// the ledger's rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationDetails {
    /// The brand's own code for it (unique).
    #[serde(default)]
    pub code: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Whether customers may collect online orders there.
    #[serde(default)]
    pub click_and_collect: bool,
    /// Opening hours by day (`mon` .. `sun`), `"HH:MM-HH:MM"`.
    #[serde(default)]
    pub opening_hours: std::collections::BTreeMap<String, String>,
}

impl Location {
    /// Great-circle distance to another location in kilometres (haversine).
    pub fn distance_km(&self, other: &Location) -> f64 {
        const EARTH_RADIUS_KM: f64 = 6371.0;
        let (lat1, lat2) = (self.latitude.to_radians(), other.latitude.to_radians());
        let dlat = lat2 - lat1;
        let dlon = (other.longitude - self.longitude).to_radians();
        let a = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
    }
}

/// How a channel may draw on stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelPolicy {
    /// The channel this policy is for.
    pub channel: Channel,
    /// Units of every SKU at every location that this channel leaves untouched.
    pub safety_stock: Quantity,
    /// A lot is only sold on this channel if it has at least this many days left before expiry.
    pub min_shelf_life_days: i64,
}

/// One component of a kit: `quantity` units of `sku` per kit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KitComponent {
    /// A plain (non-kit) SKU.
    pub sku: SkuId,
    /// Units of it in one kit.
    pub quantity: Quantity,
}

/// A gift set or kit: a SKU without stock of its own, made of component SKUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kit {
    /// The kit's SKU.
    pub sku: SkuId,
    /// What one kit is made of.
    pub components: Vec<KitComponent>,
}

/// What the ledger knows before any stock moves: SKUs, kits, locations, channels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Setup {
    /// Plain SKUs that hold stock.
    pub skus: Vec<SkuId>,
    /// Kits, whose components must be plain SKUs.
    pub kits: Vec<Kit>,
    /// Locations, in the order a channel prefers them when no preferred location is given.
    pub locations: Vec<Location>,
    /// One policy per channel that may reserve stock.
    pub channels: Vec<ChannelPolicy>,
}

impl Setup {
    /// What `self` adds to `older` when `self` is `older` extended ([`crate::Ledger::extend_setup`]
    /// appends SKUs, kits and locations, and adds or replaces channel policies): `None` when
    /// `self` lost or changed anything else `older` defines.
    pub fn added_since(&self, older: &Setup) -> Option<Setup> {
        if !(self.skus.starts_with(&older.skus)
            && self.kits.starts_with(&older.kits)
            && self.locations.starts_with(&older.locations)
            && older.channels.iter().all(|p| self.channels.iter().any(|q| q.channel == p.channel)))
        {
            return None;
        }
        Some(Setup {
            skus: self.skus[older.skus.len()..].to_vec(),
            kits: self.kits[older.kits.len()..].to_vec(),
            locations: self.locations[older.locations.len()..].to_vec(),
            channels: self.channels.iter().filter(|p| !older.channels.contains(p)).cloned().collect(),
        })
    }
}

/// A manufacturing batch of one SKU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    /// The batch code printed on the pack.
    pub code: LotCode,
    /// The first day the lot may no longer be sold (epoch day). A lot expiring today is expired.
    pub expires_on: EpochDay,
    /// The manufacture date, when known (epoch day).
    pub manufactured_on: Option<EpochDay>,
    /// Period after opening in months (the open-jar symbol), when printed.
    pub period_after_opening_months: Option<u32>,
}

impl Lot {
    /// A lot with only a code and an expiry day.
    pub fn new(code: impl Into<LotCode>, expires_on: EpochDay) -> Self {
        Self { code: code.into(), expires_on, manufactured_on: None, period_after_opening_months: None }
    }

    /// Whole days left before the lot expires, as of `now_ms` (0 or less: expired).
    pub fn remaining_days(&self, now_ms: TimestampMs) -> i64 {
        self.expires_on - day_of(now_ms)
    }

    /// Whether the lot can no longer be sold at `now_ms`.
    pub fn is_expired(&self, now_ms: TimestampMs) -> bool {
        self.remaining_days(now_ms) <= 0
    }
}

/// The state of units inside a location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StockState {
    /// On the shelf and free to sell.
    OnHand,
    /// Held for a cart until the hold's deadline.
    Reserved,
    /// Ordered, not yet shipped.
    Committed,
    /// Expected from a purchase order (no lot yet).
    Incoming,
    /// On its way to this location from another one.
    InTransit,
    /// Returned or suspect; never sold until restocked.
    Quarantine,
    /// Damaged; never sold.
    Damaged,
}

/// The world outside the ledger: units enter from and leave to these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum External {
    /// Where received units come from (goes negative by what was received).
    Supplier,
    /// Where sold units go (never negative: nothing is returned that was not sold).
    Customer,
    /// Units lost, stolen or disposed of (negative when stock is found).
    Shrinkage,
}

/// One side of a movement: units in a state at a location, or an external account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Account {
    /// Units at a location in a state.
    Stock {
        /// Where the units are.
        location: LocationId,
        /// What they are for.
        state: StockState,
    },
    /// The outside world.
    External {
        /// Which side of the outside world.
        external: External,
    },
}

impl Account {
    /// Units in `state` at `location`.
    pub fn stock(location: &LocationId, state: StockState) -> Self {
        Self::Stock { location: location.clone(), state }
    }

    /// An external account.
    pub fn external(external: External) -> Self {
        Self::External { external }
    }

    /// Whether a balance of this account may be negative (the supplier and shrinkage accounts).
    pub fn may_go_negative(&self) -> bool {
        matches!(self, Self::External { external: External::Supplier | External::Shrinkage })
    }
}

/// What a balance is keyed by: (SKU, account, lot). `lot` is `None` only for incoming units of a
/// purchase order, whose lot is not known until they arrive.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BalanceKey {
    /// The SKU.
    pub sku: SkuId,
    /// Where and in which state.
    pub account: Account,
    /// The lot, when known.
    pub lot: Option<LotCode>,
}

impl BalanceKey {
    /// The smallest key of a SKU, to start a range scan from.
    pub(crate) fn first_of(sku: &SkuId) -> Self {
        Self {
            sku: sku.clone(),
            account: Account::Stock { location: LocationId::new(""), state: StockState::OnHand },
            lot: None,
        }
    }
}

/// Why a movement happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Supplier → on hand.
    Receipt,
    /// Supplier → incoming: a purchase order was placed.
    PurchaseOrdered,
    /// Incoming → supplier: expected units arrived (the receipt then books them on hand by lot).
    PurchaseArrived,
    /// On hand → reserved: a cart hold.
    Reserve,
    /// Reserved → committed: the order was placed.
    Confirm,
    /// Reserved or committed → on hand: the hold or order was cancelled.
    Release,
    /// Reserved → on hand: the hold's deadline passed.
    Expire,
    /// Committed → customer.
    Ship,
    /// On hand → in transit to another location.
    TransferOut,
    /// In transit → on hand at the destination.
    TransferIn,
    /// On hand → reserved elsewhere: a hold moved after a POS sale took its units.
    Reallocate,
    /// On hand or reserved → customer at a till.
    PosSale,
    /// Customer → quarantine.
    Return,
    /// Quarantine → on hand.
    Restock,
    /// Quarantine → damaged.
    WriteOff,
    /// On hand → shrinkage (lost, stolen, count difference).
    Lost,
    /// Shrinkage → on hand (found in a count).
    Found,
    /// On hand → damaged.
    Damaged,
    /// Damaged → shrinkage (destroyed).
    Disposed,
    /// On hand → quarantine (suspect lot, recall).
    Quarantined,
}

/// The business document a movement belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Reference {
    /// No document.
    None,
    /// An order of the brand's own channels.
    Order(String),
    /// A marketplace's order.
    MarketplaceOrder(String),
    /// A till receipt.
    PosReceipt(String),
    /// A purchase order.
    PurchaseOrder(PurchaseOrderId),
    /// A transfer between locations.
    Transfer(TransferId),
    /// A cart hold not (yet) tied to an order.
    Reservation(ReservationId),
    /// A stock count or other adjustment document.
    Count(String),
}

/// An immutable record of units moving from one balance to another. The journal of movements is
/// the truth; balances are its projection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Movement {
    /// Position in the ledger's journal, from 1, dense.
    pub id: u64,
    /// Position among this SKU's movements, from 1, dense (for consumers that drop stale updates).
    pub sku_seq: u64,
    /// Unique per movement: the command's idempotency key and the movement's index in it.
    pub idempotency_key: String,
    /// The SKU that moved (always a plain SKU; kits move their components).
    pub sku: SkuId,
    /// The lot that moved (`None` only for purchase-order incoming units).
    pub lot: Option<LotCode>,
    /// Where the units left.
    pub from: Account,
    /// Where the units went.
    pub to: Account,
    /// How many units; always positive.
    pub quantity: Quantity,
    /// Why.
    pub reason: Reason,
    /// The business document.
    pub reference: Reference,
    /// The hold the units belong to, for movements of a reservation's life.
    pub reservation: Option<ReservationId>,
    /// Who asked.
    pub actor: Actor,
    /// The channel that caused it, when one did.
    pub channel: Option<Channel>,
    /// When it was applied.
    pub at_ms: TimestampMs,
}

impl Movement {
    /// The balance this movement takes units from.
    pub fn from_key(&self) -> BalanceKey {
        BalanceKey { sku: self.sku.clone(), account: self.from.clone(), lot: self.lot.clone() }
    }

    /// The balance this movement adds units to.
    pub fn to_key(&self) -> BalanceKey {
        BalanceKey { sku: self.sku.clone(), account: self.to.clone(), lot: self.lot.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_parse_and_print() {
        for text in ["web", "app", "pos", "marketplace:zalando"] {
            let channel: Channel = text.parse().unwrap();
            assert_eq!(channel.to_string(), text);
        }
        assert!("marketplace:".parse::<Channel>().is_err());
        assert!("shop".parse::<Channel>().is_err());
    }

    #[test]
    fn a_lot_expiring_today_is_expired() {
        let lot = Lot::new("L1", 100);
        assert!(!lot.is_expired(99 * MS_PER_DAY + 5));
        assert!(lot.is_expired(100 * MS_PER_DAY));
        assert_eq!(lot.remaining_days(90 * MS_PER_DAY), 10);
    }

    #[test]
    fn first_of_sorts_before_every_key_of_the_sku() {
        let sku = SkuId::new("S");
        let key = BalanceKey {
            sku: sku.clone(),
            account: Account::stock(&LocationId::new("A"), StockState::OnHand),
            lot: None,
        };
        assert!(BalanceKey::first_of(&sku) <= key);
        let external = BalanceKey { sku, account: Account::external(External::Supplier), lot: None };
        assert!(BalanceKey::first_of(&external.sku) < external);
    }
}
