//! What may be asked of the ledger ([`Request`], [`Command`]) and what it answers: an [`Outcome`]
//! with the movements and changed records to persist, or a [`Rejection`] that changed nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{
    Actor, BalanceKey, Channel, EpochDay, IdempotencyKey, LocationId, Lot, LotCode, Movement, PurchaseOrderId,
};
use crate::model::{Quantity, Reference, ReservationId, SkuId, StockState, TimestampMs, TransferId};
use crate::records::{PurchaseOrder, Reservation, ReservationStatus, SkuLot, Transfer};

/// A command with the key that makes it idempotent and the actor who asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// A repeat of the same key returns the first outcome; the same key with another command is
    /// rejected.
    pub key: IdempotencyKey,
    /// Who asked.
    pub actor: Actor,
    /// What to do.
    pub command: Command,
}

impl Request {
    /// A request for `command` under `key` by `actor`.
    pub fn new(key: impl Into<IdempotencyKey>, actor: impl Into<Actor>, command: Command) -> Self {
        Self { key: key.into(), actor: actor.into(), command }
    }
}

/// A SKU and a quantity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// A plain SKU or a kit.
    pub sku: SkuId,
    /// Units; must be positive.
    pub quantity: Quantity,
}

impl Line {
    /// `quantity` units of `sku`.
    pub fn new(sku: impl Into<SkuId>, quantity: Quantity) -> Self {
        Self { sku: sku.into(), quantity }
    }
}

/// A line of a receipt: units of one lot of a plain SKU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptLine {
    /// A plain SKU.
    pub sku: SkuId,
    /// Units; must be positive.
    pub quantity: Quantity,
    /// The lot, with its expiry (which must be after today).
    pub lot: Lot,
}

/// A line of a POS sale or a return, optionally naming the lot scanned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotLine {
    /// A plain SKU, or a kit (then `lot` must be `None`).
    pub sku: SkuId,
    /// Units; must be positive.
    pub quantity: Quantity,
    /// The lot, when known. Without it a sale takes FEFO and a return takes what the reference
    /// shipped.
    pub lot: Option<LotCode>,
}

/// The kinds of stock adjustment, each a fixed pair of accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdjustKind {
    /// On hand → shrinkage: lost, stolen, a count came up short.
    Lost,
    /// Shrinkage → on hand: a count found units.
    Found,
    /// On hand → damaged.
    Damaged,
    /// Damaged → shrinkage: destroyed.
    Disposed,
    /// On hand → quarantine: a suspect lot taken off sale.
    Quarantined,
}

/// Everything that changes stock. Each is applied all-or-nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// Place a purchase order: supplier → incoming at `location`, visible with its ETA.
    ExpectPurchase {
        /// New purchase order id.
        purchase_order: PurchaseOrderId,
        /// Where it will be received.
        location: LocationId,
        /// When it is expected.
        eta_ms: TimestampMs,
        /// Plain SKUs and units.
        lines: Vec<Line>,
    },
    /// Receive lots into on hand at `location` (closing the purchase order's incoming units).
    Receive {
        /// Where.
        location: LocationId,
        /// The purchase order received against, if any.
        purchase_order: Option<PurchaseOrderId>,
        /// Units per lot.
        lines: Vec<ReceiptLine>,
    },
    /// Hold a cart's lines for a channel until `expires_at_ms`: all lines or none.
    Reserve {
        /// New reservation id.
        reservation: ReservationId,
        /// The channel reserving.
        channel: Channel,
        /// The cart.
        lines: Vec<Line>,
        /// The hold's deadline (now + the channel's TTL); must be in the future.
        expires_at_ms: TimestampMs,
        /// A location to take stock from first (pickup store); others follow nearest first.
        preferred_location: Option<LocationId>,
        /// The order or marketplace order, if already known.
        reference: Option<Reference>,
        /// The customer, if known.
        customer_id: Option<String>,
    },
    /// Confirm held units (all, or `lines` by the cart's SKUs): reserved → committed.
    Confirm {
        /// The reservation.
        reservation: ReservationId,
        /// Units per cart SKU to confirm; `None` confirms everything held.
        lines: Option<Vec<Line>>,
    },
    /// Cancel a reservation: held and committed units not shipped go back on hand.
    Release {
        /// The reservation.
        reservation: ReservationId,
    },
    /// Move a live hold's deadline.
    Extend {
        /// The reservation.
        reservation: ReservationId,
        /// The new deadline; must be in the future.
        expires_at_ms: TimestampMs,
    },
    /// The sweeper: every hold past its deadline returns its held units on hand.
    ExpireDue,
    /// Ship a reservation's committed units (all, or those at `location`): committed → customer.
    Ship {
        /// The reservation.
        reservation: ReservationId,
        /// Ship only what is committed at this location.
        location: Option<LocationId>,
    },
    /// Send units from `from` to `to`: on hand at `from` → in transit at `to`.
    TransferOut {
        /// New transfer id.
        transfer: TransferId,
        /// A plain SKU.
        sku: SkuId,
        /// Units.
        quantity: Quantity,
        /// Origin.
        from: LocationId,
        /// Destination.
        to: LocationId,
        /// Send only this lot; otherwise FEFO.
        lot: Option<LotCode>,
    },
    /// The transfer arrived: in transit → on hand at its destination.
    TransferIn {
        /// The transfer.
        transfer: TransferId,
    },
    /// Correct stock for a reason.
    Adjust {
        /// Where.
        location: LocationId,
        /// A plain SKU.
        sku: SkuId,
        /// The lot.
        lot: LotCode,
        /// Units.
        quantity: Quantity,
        /// Which correction.
        kind: AdjustKind,
        /// The count or report.
        reference: Reference,
    },
    /// A till sold units off the shelf. Always succeeds while the units are on the shelf (on hand
    /// or held for an online cart); a hold it collides with is re-allocated or flagged short.
    PosSale {
        /// The store.
        location: LocationId,
        /// The receipt number.
        receipt: String,
        /// What was sold.
        lines: Vec<LotLine>,
    },
    /// A customer brought units back to `location`: customer → quarantine.
    Return {
        /// Where.
        location: LocationId,
        /// The order, marketplace order or receipt the units were sold under.
        reference: Reference,
        /// What came back.
        lines: Vec<LotLine>,
    },
    /// Returned units checked and fit to sell: quarantine → on hand.
    Restock {
        /// Where.
        location: LocationId,
        /// A plain SKU.
        sku: SkuId,
        /// The lot.
        lot: LotCode,
        /// Units.
        quantity: Quantity,
    },
    /// Returned units not fit to sell: quarantine → damaged.
    WriteOff {
        /// Where.
        location: LocationId,
        /// A plain SKU.
        sku: SkuId,
        /// The lot.
        lot: LotCode,
        /// Units.
        quantity: Quantity,
    },
}

/// A hold that a POS sale took units from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldConflict {
    /// The hold.
    pub reservation: ReservationId,
    /// The plain SKU taken.
    pub sku: SkuId,
    /// Units the till took from the hold.
    pub taken: Quantity,
    /// Units re-allocated from other stock.
    pub reallocated: Quantity,
    /// Units left short: the order goes to the customer-service queue.
    pub short: Quantity,
}

/// What a command did, for the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Effect {
    /// A purchase order is expected.
    PurchaseExpected(PurchaseOrder),
    /// Units were received.
    Received,
    /// The cart is held.
    Reserved(Reservation),
    /// Units were confirmed.
    Confirmed(Reservation),
    /// The reservation was cancelled.
    Released(Reservation),
    /// The deadline moved.
    Extended(Reservation),
    /// These holds expired.
    Expired {
        /// The holds, earliest deadline first.
        reservations: Vec<ReservationId>,
    },
    /// Units were shipped.
    Shipped(Reservation),
    /// A transfer left.
    TransferSent(Transfer),
    /// A transfer arrived.
    TransferReceived(Transfer),
    /// Stock was adjusted.
    Adjusted,
    /// A till sale, with the online holds it collided with.
    PosSold {
        /// Holds re-allocated or flagged.
        conflicts: Vec<HoldConflict>,
    },
    /// Units are in quarantine.
    Returned,
    /// Units are back on hand.
    Restocked,
    /// Units are written off.
    WrittenOff,
}

/// The effects that carry a reservation: kept beside the changed records by naming which of
/// them it is, not as a second copy ([`KeptEffect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ReservationEffect {
    Reserved,
    Confirmed,
    Released,
    Extended,
    Shipped,
}

impl ReservationEffect {
    /// The kind and the reservation of an effect that carries one.
    pub(crate) fn of(effect: &Effect) -> Option<(Self, &Reservation)> {
        Some(match effect {
            Effect::Reserved(r) => (Self::Reserved, r),
            Effect::Confirmed(r) => (Self::Confirmed, r),
            Effect::Released(r) => (Self::Released, r),
            Effect::Extended(r) => (Self::Extended, r),
            Effect::Shipped(r) => (Self::Shipped, r),
            _ => return None,
        })
    }

    /// The effect of this kind carrying `reservation`.
    pub(crate) fn with(self, reservation: Reservation) -> Effect {
        match self {
            Self::Reserved => Effect::Reserved(reservation),
            Self::Confirmed => Effect::Confirmed(reservation),
            Self::Released => Effect::Released(reservation),
            Self::Extended => Effect::Extended(reservation),
            Self::Shipped => Effect::Shipped(reservation),
        }
    }
}

/// An effect kept beside the [`Changes`] of the same outcome: the effect itself, or, when it
/// carries one of the changed reservations, which one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum KeptEffect {
    /// Any effect.
    Whole(Effect),
    /// `kind` of `changes.reservations[position]`.
    Of(ReservationEffect, usize),
}

impl KeptEffect {
    /// `effect` as kept beside `changes` (copied only when it is not one of them).
    pub(crate) fn new(effect: &Effect, changes: &Changes) -> Self {
        match ReservationEffect::of(effect)
            .and_then(|(kind, r)| Some((kind, changes.reservations.iter().position(|c| c == r)?)))
        {
            Some((kind, position)) => Self::Of(kind, position),
            None => Self::Whole(effect.clone()),
        }
    }

    /// The effect, given the changes it was kept beside (`None` if they do not have it).
    pub(crate) fn effect(&self, changes: &Changes) -> Option<Effect> {
        match self {
            Self::Whole(effect) => Some(effect.clone()),
            Self::Of(kind, position) => Some(kind.with(changes.reservations.get(*position)?.clone())),
        }
    }
}

/// The records a command changed, in their new state: a store upserts them with the movements.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// Lots registered by this command's receipts.
    pub lots: Vec<SkuLot>,
    /// Reservations created or changed.
    pub reservations: Vec<Reservation>,
    /// Transfers created or changed.
    pub transfers: Vec<Transfer>,
    /// Purchase orders created or changed.
    pub purchase_orders: Vec<PurchaseOrder>,
}

/// An applied command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The request's key.
    pub key: IdempotencyKey,
    /// `true` when the key was applied before and this is its first outcome again: nothing new to
    /// persist.
    pub replayed: bool,
    /// The movements, in journal order (ids are dense and increasing).
    pub movements: Vec<Movement>,
    /// Records changed besides balances.
    pub changes: Changes,
    /// What it did.
    pub effect: Effect,
}

impl Outcome {
    /// The net change of every balance this outcome's movements touched (zero changes left out):
    /// what a store adds to its balance rows in the batch's transaction.
    pub fn balance_deltas(&self) -> BTreeMap<BalanceKey, Quantity> {
        let mut deltas = BTreeMap::new();
        for movement in &self.movements {
            *deltas.entry(movement.from_key()).or_insert(0) -= movement.quantity;
            *deltas.entry(movement.to_key()).or_insert(0) += movement.quantity;
        }
        deltas.retain(|_, delta| *delta != 0);
        deltas
    }
}

/// A line that could not be reserved, and what the channel could have had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shortage {
    /// The cart's SKU (plain or kit).
    pub sku: SkuId,
    /// Units asked for.
    pub requested: Quantity,
    /// Units available to the channel at that point of the cart.
    pub available: Quantity,
}

/// Why a command was refused. A refused command changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Rejection {
    /// Zero or negative units.
    #[error("quantity must be positive, got {quantity} for {sku}")]
    InvalidQuantity {
        /// The line's SKU.
        sku: SkuId,
        /// What was given.
        quantity: Quantity,
    },
    /// A command without lines.
    #[error("the command has no lines")]
    NoLines,
    /// The SKU is not in the setup.
    #[error("unknown SKU {sku}")]
    UnknownSku {
        /// The SKU.
        sku: SkuId,
    },
    /// A kit was given where only a plain SKU holds stock (receipts, transfers, adjustments).
    #[error("{sku} is a kit and holds no stock of its own")]
    KitHasNoStock {
        /// The kit.
        sku: SkuId,
    },
    /// The location is not in the setup.
    #[error("unknown location {location}")]
    UnknownLocation {
        /// The location.
        location: LocationId,
    },
    /// The channel has no policy or sells from no location.
    #[error("channel {channel} may not reserve stock")]
    UnknownChannel {
        /// The channel.
        channel: Channel,
    },
    /// The preferred location does not sell for the channel.
    #[error("location {location} does not sell on channel {channel}")]
    LocationNotInChannel {
        /// The location.
        location: LocationId,
        /// The channel.
        channel: Channel,
    },
    /// The lot was never received for this SKU.
    #[error("unknown lot {lot} of {sku}")]
    UnknownLot {
        /// The SKU.
        sku: SkuId,
        /// The lot.
        lot: LotCode,
    },
    /// A receipt's lot has expired (or expires today).
    #[error("lot {lot} of {sku} expired on day {expires_on}, today is day {today}")]
    ExpiredLot {
        /// The SKU.
        sku: SkuId,
        /// The lot.
        lot: LotCode,
        /// Its expiry day.
        expires_on: EpochDay,
        /// Today.
        today: EpochDay,
    },
    /// The lot code is known for this SKU with other dates.
    #[error("lot {lot} of {sku} is already known with other dates")]
    LotMismatch {
        /// The SKU.
        sku: SkuId,
        /// The lot.
        lot: LotCode,
    },
    /// A lot was named for a kit line; kits take their components' lots.
    #[error("a lot cannot be named for kit {sku}")]
    LotForKit {
        /// The kit.
        sku: SkuId,
    },
    /// Not enough stock for the cart; names every short line.
    #[error("not enough stock for {} line(s)", shortages.len())]
    InsufficientStock {
        /// The short lines.
        shortages: Vec<Shortage>,
    },
    /// A balance holds fewer units than the command moves.
    #[error("{sku} at {location} ({state:?}): {requested} requested, {available} there")]
    NotEnough {
        /// The SKU.
        sku: SkuId,
        /// Where.
        location: LocationId,
        /// In which state.
        state: StockState,
        /// Units asked for.
        requested: Quantity,
        /// Units there.
        available: Quantity,
    },
    /// More units returned than the reference sold (or than were ever sold of the lot).
    #[error("{requested} of {sku} returned under {reference:?}, at most {returnable} can be")]
    ReturnExceedsSold {
        /// The SKU.
        sku: SkuId,
        /// The document.
        reference: Reference,
        /// Units returned.
        requested: Quantity,
        /// Units sold and not yet returned.
        returnable: Quantity,
    },
    /// The id is already used by another reservation, transfer or purchase order.
    #[error("{id} already exists")]
    AlreadyExists {
        /// The id.
        id: String,
    },
    /// No such reservation.
    #[error("unknown reservation {reservation}")]
    UnknownReservation {
        /// The id.
        reservation: ReservationId,
    },
    /// The hold's deadline has passed.
    #[error("reservation {reservation} expired at {expired_at_ms}")]
    ReservationExpired {
        /// The id.
        reservation: ReservationId,
        /// Its deadline.
        expired_at_ms: TimestampMs,
    },
    /// Everything held was already confirmed.
    #[error("reservation {reservation} is already confirmed")]
    AlreadyConfirmed {
        /// The id.
        reservation: ReservationId,
    },
    /// The reservation is released, expired or fulfilled: nothing can change it.
    #[error("reservation {reservation} is {status:?}")]
    ReservationClosed {
        /// The id.
        reservation: ReservationId,
        /// Its status.
        status: ReservationStatus,
    },
    /// Nothing is held to confirm. (A hold a till took every unit of, none re-allocated, is
    /// flagged short: confirming all of it succeeds, committing nothing.)
    #[error("reservation {reservation} holds nothing to confirm")]
    NothingHeld {
        /// The id.
        reservation: ReservationId,
    },
    /// A partial confirm asked for more than is held of a cart line.
    #[error("reservation {reservation}: {requested} of {sku} to confirm, {held} held")]
    ConfirmExceedsHold {
        /// The id.
        reservation: ReservationId,
        /// The cart's SKU.
        sku: SkuId,
        /// Units asked for.
        requested: Quantity,
        /// Units held.
        held: Quantity,
    },
    /// Nothing committed to ship (at that location).
    #[error("reservation {reservation} has nothing committed to ship")]
    NothingToShip {
        /// The id.
        reservation: ReservationId,
    },
    /// A deadline or ETA that is not in the future.
    #[error("deadline {at_ms} is not after now ({now_ms})")]
    DeadlineNotInFuture {
        /// The deadline given.
        at_ms: TimestampMs,
        /// Now.
        now_ms: TimestampMs,
    },
    /// No such transfer.
    #[error("unknown transfer {transfer}")]
    UnknownTransfer {
        /// The id.
        transfer: TransferId,
    },
    /// The transfer already arrived.
    #[error("transfer {transfer} was already received")]
    TransferAlreadyReceived {
        /// The id.
        transfer: TransferId,
    },
    /// A transfer to where it comes from.
    #[error("a transfer needs two different locations, got {location} twice")]
    SameLocation {
        /// The location.
        location: LocationId,
    },
    /// No such purchase order.
    #[error("unknown purchase order {purchase_order}")]
    UnknownPurchaseOrder {
        /// The id.
        purchase_order: PurchaseOrderId,
    },
    /// A receipt against a purchase order of another location.
    #[error("purchase order {purchase_order} is for {expected}, not {location}")]
    PurchaseOrderElsewhere {
        /// The id.
        purchase_order: PurchaseOrderId,
        /// Its location.
        expected: LocationId,
        /// The receipt's location.
        location: LocationId,
    },
    /// The key was used before for another command.
    #[error("idempotency key {key} was already used for another command")]
    IdempotencyConflict {
        /// The key.
        key: IdempotencyKey,
    },
}
