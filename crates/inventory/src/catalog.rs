//! The validated [`Setup`]: SKUs, kits, locations and channel policies, indexed for the ledger.
//!
//! It holds no stock and changes only through [`crate::Ledger::extend_setup`].

use std::collections::{BTreeMap, BTreeSet};

use crate::allocation;
use crate::kits;
use crate::model::{Channel, ChannelPolicy, Kit, Location, LocationId, Quantity, Setup, SkuId};

/// A setup that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid inventory setup: {0}")]
pub struct SetupError(pub String);

/// The setup, indexed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Catalog {
    setup: Setup,
    skus: BTreeSet<SkuId>,
    kits: BTreeMap<SkuId, Kit>,
    locations: BTreeMap<LocationId, usize>,
    policies: BTreeMap<Channel, ChannelPolicy>,
}

impl Catalog {
    /// Validates and indexes a setup.
    pub(crate) fn new(setup: Setup) -> Result<Self, SetupError> {
        let mut catalog = Self::default();
        catalog.extend(setup)?;
        Ok(catalog)
    }

    /// Adds SKUs, kits, locations and channel policies; nothing already there may be redefined
    /// but a channel's policy, which a new one replaces.
    /// On error the catalog is unchanged.
    pub(crate) fn extend(&mut self, more: Setup) -> Result<(), SetupError> {
        let mut next = self.clone();
        for sku in more.skus {
            if sku.as_str().is_empty() || !next.skus.insert(sku.clone()) {
                return Err(SetupError(format!("SKU {sku:?} is empty or defined twice")));
            }
            next.setup.skus.push(sku);
        }
        for kit in &more.kits {
            if next.skus.contains(&kit.sku) || next.kits.contains_key(&kit.sku) {
                return Err(SetupError(format!("kit {} is already defined as a SKU or kit", kit.sku)));
            }
            if let Some(problem) = kits::kit_problem(kit, |sku| next.skus.contains(sku)) {
                return Err(SetupError(problem));
            }
            next.kits.insert(kit.sku.clone(), kit.clone());
            next.setup.kits.push(kit.clone());
        }
        for location in more.locations {
            if location.id.as_str().is_empty() || next.locations.contains_key(&location.id) {
                return Err(SetupError(format!("location {:?} is empty or defined twice", location.id)));
            }
            if !(location.latitude.is_finite() && location.longitude.is_finite()) {
                return Err(SetupError(format!("location {} has no finite coordinates", location.id)));
            }
            next.locations.insert(location.id.clone(), next.setup.locations.len());
            next.setup.locations.push(location);
        }
        for policy in more.channels {
            if policy.safety_stock < 0 || policy.min_shelf_life_days < 0 {
                return Err(SetupError(format!(
                    "channel {} has a negative safety stock or shelf life",
                    policy.channel
                )));
            }
            // A policy is a setting, not an identity: a new one for a known channel replaces it.
            match next.policies.insert(policy.channel.clone(), policy.clone()) {
                Some(_) => {
                    let slot = next.setup.channels.iter_mut().find(|p| p.channel == policy.channel);
                    if let Some(slot) = slot {
                        *slot = policy;
                    }
                }
                None => next.setup.channels.push(policy),
            }
        }
        *self = next;
        Ok(())
    }

    /// The setup as given.
    pub(crate) fn setup(&self) -> &Setup {
        &self.setup
    }

    /// Whether `sku` is a plain SKU (holds stock).
    pub(crate) fn is_plain(&self, sku: &SkuId) -> bool {
        self.skus.contains(sku)
    }

    /// The plain SKUs one unit of `sku` takes, or `None` for an unknown SKU.
    pub(crate) fn components(&self, sku: &SkuId) -> Option<Vec<(SkuId, Quantity)>> {
        let kit = self.kits.get(sku);
        (kit.is_some() || self.skus.contains(sku)).then(|| kits::components(sku, kit))
    }

    /// A location by id.
    pub(crate) fn location(&self, id: &LocationId) -> Option<&Location> {
        self.locations.get(id).map(|&i| &self.setup.locations[i])
    }

    /// The policy of a channel that may reserve.
    pub(crate) fn policy(&self, channel: &Channel) -> Option<&ChannelPolicy> {
        self.policies.get(channel)
    }

    /// The locations `channel` sells from, in allocation order (`preferred` first, when given and
    /// known to sell on the channel).
    pub(crate) fn sources<'a>(&'a self, channel: &Channel, preferred: Option<&'a Location>) -> Vec<&'a Location> {
        allocation::order_sources(&self.setup.locations, channel, preferred)
    }
}
