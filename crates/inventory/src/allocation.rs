//! Where a channel's units come from: which locations in which order, which lots (FEFO, never
//! expired, enough shelf life for the channel), and how much each location can give after the
//! channel's safety stock.
//!
//! The functions here only read a [`StockView`] and return plans; they never move stock. The same
//! code answers availability reads and plans reservations, so what a read promises a reserve can
//! take.

use std::cmp::Ordering;

use crate::model::{Channel, ChannelPolicy, EpochDay, Location, LocationId, LotCode, Quantity, SkuId};
use crate::model::{TimestampMs, day_of};

/// What allocation needs to know about stock.
pub(crate) trait StockView {
    /// The expiry day of a lot registered for a SKU.
    fn expires_on(&self, sku: &SkuId, code: &LotCode) -> Option<EpochDay>;

    /// Units free to allocate at a location, per lot (on hand; a read also counts units of holds
    /// whose deadline has passed).
    fn free_lots(&self, sku: &SkuId, location: &LocationId) -> Vec<(LotCode, Quantity)>;
}

/// Units of one lot at one location that may be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) lot: LotCode,
    pub(crate) expires_on: EpochDay,
    pub(crate) units: Quantity,
}

/// One piece of a plan: `quantity` units of `lot` at `location`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Take {
    pub(crate) location: LocationId,
    pub(crate) lot: LotCode,
    pub(crate) quantity: Quantity,
}

/// The locations a channel sells from, in the order it should draw on them: the preferred one
/// first, then the others nearest to it first; without a preferred location, the setup's order.
pub(crate) fn order_sources<'a>(
    locations: &'a [Location],
    channel: &Channel,
    preferred: Option<&'a Location>,
) -> Vec<&'a Location> {
    let mut sources: Vec<&Location> = locations.iter().filter(|l| l.channels.contains(channel)).collect();
    if let Some(first) = preferred {
        sources.retain(|l| l.id != first.id);
        // A stable sort keeps the setup's order between locations at the same distance.
        sources.sort_by(|a, b| first.distance_km(a).partial_cmp(&first.distance_km(b)).unwrap_or(Ordering::Equal));
        sources.insert(0, first);
    }
    sources
}

/// A location's lots of `sku` that `policy`'s channel may sell at `now_ms`, earliest expiry first.
pub(crate) fn sellable_lots(
    view: &impl StockView,
    sku: &SkuId,
    location: &LocationId,
    policy: &ChannelPolicy,
    now_ms: TimestampMs,
) -> Vec<Candidate> {
    let mut lots: Vec<Candidate> = view
        .free_lots(sku, location)
        .into_iter()
        .filter(|(_, units)| *units > 0)
        .filter_map(|(code, units)| {
            let expires_on = view.expires_on(sku, &code)?;
            let days = expires_on - day_of(now_ms);
            (days > 0 && days >= policy.min_shelf_life_days).then_some(Candidate { lot: code, expires_on, units })
        })
        .collect();
    lots.sort_by(|a, b| (a.expires_on, &a.lot).cmp(&(b.expires_on, &b.lot)));
    lots
}

/// Units a location can give the channel: its sellable units less the safety stock, never negative.
pub(crate) fn allowance(candidates: &[Candidate], policy: &ChannelPolicy) -> Quantity {
    let sellable: Quantity = candidates.iter().map(|c| c.units).sum();
    (sellable - policy.safety_stock).max(0)
}

/// Units of `sku` the channel can have over `sources`.
pub(crate) fn available(
    view: &impl StockView,
    sku: &SkuId,
    sources: &[&Location],
    policy: &ChannelPolicy,
    now_ms: TimestampMs,
) -> Quantity {
    sources.iter().map(|l| allowance(&sellable_lots(view, sku, &l.id, policy, now_ms), policy)).sum()
}

/// Up to `need` units of `sku` for the channel: location by location in `sources` order, FEFO
/// within each, splitting across locations when one cannot fill it. Returns less than `need` when
/// the channel cannot have that many; the caller decides whether that is a refusal.
pub(crate) fn plan(
    view: &impl StockView,
    sku: &SkuId,
    need: Quantity,
    sources: &[&Location],
    policy: &ChannelPolicy,
    now_ms: TimestampMs,
) -> Vec<Take> {
    let mut takes = Vec::new();
    let mut left = need;
    for location in sources {
        if left == 0 {
            break;
        }
        let candidates = sellable_lots(view, sku, &location.id, policy, now_ms);
        let mut room = allowance(&candidates, policy).min(left);
        for candidate in candidates {
            if room == 0 {
                break;
            }
            let quantity = candidate.units.min(room);
            takes.push(Take { location: location.id.clone(), lot: candidate.lot, quantity });
            room -= quantity;
            left -= quantity;
        }
    }
    takes
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{LocationKind, Lot, MS_PER_DAY};

    struct Shelf {
        lots: BTreeMap<LotCode, Lot>,
        units: BTreeMap<(LocationId, LotCode), Quantity>,
    }

    impl StockView for Shelf {
        fn expires_on(&self, _sku: &SkuId, code: &LotCode) -> Option<EpochDay> {
            self.lots.get(code).map(|lot| lot.expires_on)
        }

        fn free_lots(&self, _sku: &SkuId, location: &LocationId) -> Vec<(LotCode, Quantity)> {
            self.units.iter().filter(|((l, _), _)| l == location).map(|((_, lot), q)| (lot.clone(), *q)).collect()
        }
    }

    fn location(id: &str, latitude: f64, longitude: f64) -> Location {
        Location {
            id: id.into(),
            kind: LocationKind::Store,
            latitude,
            longitude,
            channels: vec![Channel::Web],
            details: Default::default(),
        }
    }

    fn policy(safety_stock: Quantity, min_shelf_life_days: i64) -> ChannelPolicy {
        ChannelPolicy { channel: Channel::Web, safety_stock, min_shelf_life_days }
    }

    fn shelf(stock: &[(&str, &str, EpochDay, Quantity)]) -> Shelf {
        let mut lots = BTreeMap::new();
        let mut units = BTreeMap::new();
        for (location, lot, expires_on, quantity) in stock {
            lots.insert(LotCode::new(*lot), Lot::new(*lot, *expires_on));
            units.insert((LocationId::new(*location), LotCode::new(*lot)), *quantity);
        }
        Shelf { lots, units }
    }

    const TODAY: TimestampMs = 1000 * MS_PER_DAY;

    #[test]
    fn takes_the_earliest_expiry_first_and_skips_expired_and_short_lived_lots() {
        let view =
            shelf(&[("A", "late", 1400, 5), ("A", "early", 1100, 2), ("A", "gone", 1000, 9), ("A", "soon", 1010, 9)]);
        let a = location("A", 0.0, 0.0);
        let takes = plan(&view, &"S".into(), 4, &[&a], &policy(0, 30), TODAY);
        let got: Vec<(&str, Quantity)> = takes.iter().map(|t| (t.lot.as_str(), t.quantity)).collect();
        assert_eq!(got, vec![("early", 2), ("late", 2)]);
    }

    #[test]
    fn splits_across_locations_and_keeps_the_safety_stock() {
        let view = shelf(&[("A", "a1", 1100, 3), ("B", "b1", 1100, 10)]);
        let (a, b) = (location("A", 0.0, 0.0), location("B", 0.0, 1.0));
        let takes = plan(&view, &"S".into(), 8, &[&a, &b], &policy(2, 0), TODAY);
        let got: Vec<(&str, Quantity)> = takes.iter().map(|t| (t.location.as_str(), t.quantity)).collect();
        assert_eq!(got, vec![("A", 1), ("B", 7)]);
        assert_eq!(available(&view, &"S".into(), &[&a, &b], &policy(2, 0), TODAY), 9);
        assert_eq!(available(&view, &"S".into(), &[&a, &b], &policy(20, 0), TODAY), 0);
    }

    #[test]
    fn the_preferred_location_comes_first_then_the_nearest() {
        let far = location("far", 0.0, 10.0);
        let near = location("near", 0.0, 1.0);
        let home = location("home", 0.0, 0.0);
        let mut elsewhere = location("pos-only", 0.0, 0.5);
        elsewhere.channels = vec![Channel::Pos];
        let all = vec![far, near, home.clone(), elsewhere];
        let order: Vec<&str> =
            order_sources(&all, &Channel::Web, Some(&all[2])).iter().map(|l| l.id.as_str()).collect();
        assert_eq!(order, vec!["home", "near", "far"]);
        let order: Vec<&str> = order_sources(&all, &Channel::Web, None).iter().map(|l| l.id.as_str()).collect();
        assert_eq!(order, vec!["far", "near", "home"]);
    }
}
