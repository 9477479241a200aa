//! The ledger's records besides balances: reservations (holds and the orders they became), transfers
//! and purchase orders. A store persists each one a command changed (see [`crate::Changes`]) next to
//! the command's movements, in the same transaction.
//!
//! These types only count; the ledger decides when they change.

use serde::{Deserialize, Serialize};

use crate::model::{Channel, LocationId, Lot, LotCode, PurchaseOrderId, Quantity, Reference, ReservationId, SkuId};
use crate::model::{TimestampMs, TransferId};

/// Where a reservation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    /// Some units are still held until `expires_at_ms` (some may already be confirmed).
    Held,
    /// Nothing is held any more; confirmed units wait to be shipped.
    Confirmed,
    /// Everything confirmed was shipped.
    Fulfilled,
    /// Cancelled: every unit not shipped went back on hand.
    Released,
    /// The deadline passed before anything was confirmed.
    Expired,
}

/// Units of one lot at one location that a reservation line drew.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// Where the units are.
    pub location: LocationId,
    /// Which lot.
    pub lot: LotCode,
    /// Units still held (in the `reserved` state).
    pub held: Quantity,
    /// Units confirmed and not yet shipped (in the `committed` state).
    pub committed: Quantity,
    /// Units shipped to the customer.
    pub shipped: Quantity,
}

/// One plain SKU a reservation line needs: the line's own SKU, or a kit's component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentAllocation {
    /// The plain SKU.
    pub sku: SkuId,
    /// Units of it per unit of the line (1 for a plain SKU).
    pub per_unit: Quantity,
    /// Units a POS sale took from this hold that could not be re-allocated elsewhere.
    pub short: Quantity,
    /// Where the units come from.
    pub allocations: Vec<Allocation>,
}

impl ComponentAllocation {
    /// Units still held.
    pub fn held(&self) -> Quantity {
        self.allocations.iter().map(|a| a.held).sum()
    }

    /// Units confirmed and not yet shipped.
    pub fn committed(&self) -> Quantity {
        self.allocations.iter().map(|a| a.committed).sum()
    }
}

/// One line of a cart as reserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationLine {
    /// The SKU the customer asked for (plain or kit).
    pub sku: SkuId,
    /// How many of it.
    pub quantity: Quantity,
    /// The plain SKUs it takes, with their allocations.
    pub components: Vec<ComponentAllocation>,
}

impl ReservationLine {
    /// Whole units of the line still held: for a kit, what its scarcest held component allows.
    pub fn held_units(&self) -> Quantity {
        self.components.iter().map(|c| c.held() / c.per_unit).min().unwrap_or(0)
    }
}

/// A cart hold with a deadline, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// The caller's id for it.
    pub id: ReservationId,
    /// The channel that reserved.
    pub channel: Channel,
    /// The order it belongs to, or [`Reference::Reservation`] with its own id.
    pub reference: Reference,
    /// The customer, when known.
    pub customer_id: Option<String>,
    /// When it was made.
    pub created_at_ms: TimestampMs,
    /// When its held units stop counting.
    pub expires_at_ms: TimestampMs,
    /// Where it is in its life.
    pub status: ReservationStatus,
    /// The cart's lines.
    pub lines: Vec<ReservationLine>,
}

impl Reservation {
    /// Whether its held units count against availability at `now_ms`.
    pub fn is_live(&self, now_ms: TimestampMs) -> bool {
        self.status == ReservationStatus::Held && self.expires_at_ms > now_ms
    }

    /// Whether any of its units are flagged short after a POS sale took them.
    pub fn is_flagged(&self) -> bool {
        self.components().any(|c| c.short > 0)
    }

    /// Every component of every line.
    pub fn components(&self) -> impl Iterator<Item = &ComponentAllocation> {
        self.lines.iter().flat_map(|l| l.components.iter())
    }

    /// Units still held, over all lines.
    pub fn held(&self) -> Quantity {
        self.components().map(ComponentAllocation::held).sum()
    }

    /// Units confirmed and not yet shipped, over all lines.
    pub fn committed(&self) -> Quantity {
        self.components().map(ComponentAllocation::committed).sum()
    }

    /// Units shipped, over all lines.
    pub fn shipped(&self) -> Quantity {
        self.components().flat_map(|c| c.allocations.iter()).map(|a| a.shipped).sum()
    }

    /// The status its counts imply once nothing is held: confirmed, fulfilled or `otherwise`.
    pub(crate) fn settled_status(&self, otherwise: ReservationStatus) -> ReservationStatus {
        if self.held() > 0 {
            ReservationStatus::Held
        } else if self.committed() > 0 {
            ReservationStatus::Confirmed
        } else if self.shipped() > 0 {
            ReservationStatus::Fulfilled
        } else {
            otherwise
        }
    }
}

/// Where a transfer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatus {
    /// Left the origin, not yet arrived.
    InTransit,
    /// Arrived and on hand at the destination.
    Received,
}

/// Units of one SKU moving between two locations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The caller's id for it.
    pub id: TransferId,
    /// The SKU.
    pub sku: SkuId,
    /// Where it left.
    pub from: LocationId,
    /// Where it goes.
    pub to: LocationId,
    /// Units per lot.
    pub lots: Vec<(LotCode, Quantity)>,
    /// In transit or received.
    pub status: TransferStatus,
}

/// One SKU of a purchase order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseOrderLine {
    /// The SKU.
    pub sku: SkuId,
    /// Units ordered.
    pub expected: Quantity,
    /// Units received against it so far (at most `expected`; surplus is received without it).
    pub arrived: Quantity,
}

/// Stock expected from a supplier at a location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseOrder {
    /// The caller's id for it.
    pub id: PurchaseOrderId,
    /// Where it will be received.
    pub location: LocationId,
    /// When it is expected.
    pub eta_ms: TimestampMs,
    /// What is expected.
    pub lines: Vec<PurchaseOrderLine>,
}

/// A lot as the ledger registered it for a SKU (on its first receipt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuLot {
    /// The SKU.
    pub sku: SkuId,
    /// The lot.
    pub lot: Lot,
}
