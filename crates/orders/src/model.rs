//! What the orders domain stores and returns: carts, orders, their lines, payments, and the units
//! each shipment or return moved. Stock itself is the inventory ledger's: an order names its
//! reservation there and reads it back.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Stock is held for it until the hold's deadline; waiting for payment.
    Checkout,
    /// The hold's deadline passed before the order was placed: nothing is held any more.
    Expired,
    /// Paid (or taken at a till or on a marketplace): its units are committed.
    Placed,
    /// Some committed units shipped, others not yet.
    PartiallyFulfilled,
    /// Everything shipped.
    Fulfilled,
    /// Some shipped units came back.
    PartiallyReturned,
    /// Every shipped unit came back.
    Returned,
    /// Cancelled: its units went back on hand.
    Cancelled,
}

impl OrderStatus {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Checkout => "checkout",
            Self::Expired => "expired",
            Self::Placed => "placed",
            Self::PartiallyFulfilled => "partially_fulfilled",
            Self::Fulfilled => "fulfilled",
            Self::PartiallyReturned => "partially_returned",
            Self::Returned => "returned",
            Self::Cancelled => "cancelled",
        }
    }

    /// A stored name back (an unknown one reads as `checkout`, which the ledger then corrects).
    pub fn parse(s: &str) -> Self {
        match s {
            "expired" => Self::Expired,
            "placed" => Self::Placed,
            "partially_fulfilled" => Self::PartiallyFulfilled,
            "fulfilled" => Self::Fulfilled,
            "partially_returned" => Self::PartiallyReturned,
            "returned" => Self::Returned,
            "cancelled" => Self::Cancelled,
            _ => Self::Checkout,
        }
    }
}

/// What a payment provider reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentEvent {
    /// The payment failed: a checkout is cancelled.
    Failed,
    /// The amount is reserved on the customer's means of payment: a checkout is placed.
    Authorized,
    /// The amount was taken: a checkout is placed.
    Captured,
    /// The amount was given back (stock moves only through returns).
    Refunded,
}

impl PaymentEvent {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Authorized => "authorized",
            Self::Captured => "captured",
            Self::Refunded => "refunded",
        }
    }

    /// A stored name back.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "failed" => Some(Self::Failed),
            "authorized" => Some(Self::Authorized),
            "captured" => Some(Self::Captured),
            "refunded" => Some(Self::Refunded),
            _ => None,
        }
    }
}

/// A cart's or an order's line, priced from the catalog when it was added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderLine {
    /// The catalog's SKU id.
    pub sku_id: String,
    /// The product the SKU belongs to.
    pub product_id: String,
    /// Units.
    pub quantity: i64,
    /// List price of one unit, in minor units.
    pub unit_price_minor: i64,
    /// ISO 4217 currency of the price.
    pub currency: String,
}

/// A cart: lines put together before any stock is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cart {
    /// `crt_...`.
    pub id: String,
    /// The channel it sells on (`web`, `app`, `pos`, `marketplace:NAME`).
    pub channel: String,
    /// The customer, when known.
    pub customer_id: Option<String>,
    /// A location to take stock from first (a pickup store).
    pub location_id: Option<String>,
    /// The lines.
    pub lines: Vec<OrderLine>,
    /// The order it became, once checked out.
    pub order_id: Option<String>,
    /// When it was made (ms).
    pub created_at_ms: i64,
    /// When it last changed (ms).
    pub updated_at_ms: i64,
    /// Increases with every change.
    pub version: i64,
}

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// `ord_...`.
    pub id: String,
    /// What the last transition left (a checkout past its hold reads as expired: see
    /// [`crate::Orders::status`]).
    pub stored_status: OrderStatus,
    /// The channel.
    pub channel: String,
    /// The channel's own id for it (POS receipt, marketplace order id).
    pub external_id: Option<String>,
    /// The cart it came from.
    pub cart_id: Option<String>,
    /// The customer; `None` for anonymous orders and after the customer's erasure.
    pub customer_id: Option<String>,
    /// The preferred location.
    pub location_id: Option<String>,
    /// Its reservation in the inventory ledger.
    pub reservation_id: String,
    /// The lines.
    pub lines: Vec<OrderLine>,
    /// Sum of the lines, in minor units.
    pub total_minor: i64,
    /// Currency of the total.
    pub currency: String,
    /// The payment's state (`none` until a callback arrives).
    pub payment_status: String,
    /// When the checkout's hold ends (ms).
    pub expires_at_ms: i64,
    /// When it was made (ms).
    pub created_at_ms: i64,
    /// When it last changed (ms).
    pub updated_at_ms: i64,
    /// Increases with every change.
    pub version: i64,
}

/// A payment provider's callback as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Payment {
    /// What happened.
    pub event: PaymentEvent,
    /// The provider's id of the payment.
    pub provider_reference: String,
    /// Amount, in minor units.
    pub amount_minor: i64,
    /// ISO 4217 currency.
    pub currency: String,
    /// When it arrived (RFC 3339).
    pub received_at: String,
}

/// Units of one SKU and lot that moved at one location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UnitsMoved {
    /// The plain SKU (a kit moves its components).
    pub sku_id: String,
    /// Where.
    pub location_id: String,
    /// Which lot.
    pub lot: Option<String>,
    /// Units.
    pub quantity: i64,
}

/// Whether units left for the customer or came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    /// Shipped to the customer.
    Fulfillment,
    /// Came back into quarantine.
    Return,
}

impl MovementKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fulfillment => "fulfillment",
            Self::Return => "return",
        }
    }
}

/// A shipment or a return of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OrderMovement {
    /// Shipped or returned.
    pub kind: MovementKind,
    /// The location asked for (a shipment without one shipped from everywhere).
    pub location_id: Option<String>,
    /// The units, per SKU, location and lot.
    pub lines: Vec<UnitsMoved>,
    /// When (RFC 3339).
    pub at: String,
}
