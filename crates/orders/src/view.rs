//! Carts and orders as the API (and a customer's export) shows them.

use dermis_core::clock::rfc3339;
use dermis_inventory::routes::{ReservationView, reservation_view};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::OrdersError;
use crate::model::{Cart, MovementKind, Order, OrderLine, OrderMovement, OrderStatus, Payment};
use crate::service::Orders;

/// A cart.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CartView {
    /// `crt_...`.
    pub id: String,
    /// `open`, or `checked_out` (then `order_id` names the order).
    pub status: String,
    /// The channel.
    pub channel: String,
    /// The customer, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// The preferred location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    /// The lines, priced from the catalog.
    pub lines: Vec<OrderLine>,
    /// Sum of the lines, in minor units.
    pub total_minor: i64,
    /// The order it became.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// Increases with every change.
    pub version: i64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// A cart as shown.
pub fn cart_view(cart: &Cart) -> CartView {
    CartView {
        id: cart.id.clone(),
        status: if cart.order_id.is_some() { "checked_out" } else { "open" }.to_owned(),
        channel: cart.channel.clone(),
        customer_id: cart.customer_id.clone(),
        location_id: cart.location_id.clone(),
        lines: cart.lines.clone(),
        total_minor: cart.lines.iter().map(|l| l.unit_price_minor.saturating_mul(l.quantity)).sum(),
        order_id: cart.order_id.clone(),
        version: cart.version,
        created_at: rfc3339(cart.created_at_ms),
        updated_at: rfc3339(cart.updated_at_ms),
    }
}

/// An order, with its reservation in the ledger, payments, shipments and returns.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderView {
    /// `ord_...`.
    pub id: String,
    /// Where it is in its life.
    pub status: OrderStatus,
    /// The channel.
    pub channel: String,
    /// The channel's id for it (POS and marketplace orders).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The cart it came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cart_id: Option<String>,
    /// The customer, when known (absent after the customer's erasure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// The preferred location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    /// The lines, priced when the cart was filled.
    pub lines: Vec<OrderLine>,
    /// Sum of the lines, in minor units.
    pub total_minor: i64,
    /// Currency of the total.
    pub currency: String,
    /// `none`, `authorized`, `captured`, `failed` or `refunded`.
    pub payment_status: String,
    /// When an unpaid checkout's hold ends (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Its reservation in the inventory ledger: where each unit is held, committed or shipped
    /// from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation: Option<ReservationView>,
    /// Payment callbacks.
    pub payments: Vec<Payment>,
    /// Shipments.
    pub fulfillments: Vec<OrderMovement>,
    /// Returns.
    pub returns: Vec<OrderMovement>,
    /// Increases with every change.
    pub version: i64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// An order as shown.
pub async fn order_view(orders: &Orders, order: &Order) -> Result<OrderView, OrdersError> {
    let status = orders.status(order);
    let now = orders.now_ms();
    let (fulfillments, returns): (Vec<_>, Vec<_>) =
        orders.movements(&order.id).await?.into_iter().partition(|m| m.kind == MovementKind::Fulfillment);
    Ok(OrderView {
        id: order.id.clone(),
        status,
        channel: order.channel.clone(),
        external_id: order.external_id.clone(),
        cart_id: order.cart_id.clone(),
        customer_id: order.customer_id.clone(),
        location_id: order.location_id.clone(),
        lines: order.lines.clone(),
        total_minor: order.total_minor,
        currency: order.currency.clone(),
        payment_status: order.payment_status.clone(),
        expires_at: matches!(status, OrderStatus::Checkout | OrderStatus::Expired)
            .then(|| rfc3339(order.expires_at_ms)),
        reservation: orders.reservation(order).map(|r| reservation_view(&r, now)),
        payments: orders.payments(&order.id).await?,
        fulfillments,
        returns,
        version: order.version,
        created_at: rfc3339(order.created_at_ms),
        updated_at: rfc3339(order.updated_at_ms),
    })
}

/// An order in a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderSummary {
    /// `ord_...`.
    pub id: String,
    /// Where it is in its life.
    pub status: OrderStatus,
    /// The channel.
    pub channel: String,
    /// The customer, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// The lines.
    pub lines: Vec<OrderLine>,
    /// Sum of the lines, in minor units.
    pub total_minor: i64,
    /// Currency of the total.
    pub currency: String,
    /// The payment's state.
    pub payment_status: String,
    /// RFC 3339.
    pub created_at: String,
}

/// An order as a listing shows it.
pub fn order_summary(orders: &Orders, order: &Order) -> OrderSummary {
    OrderSummary {
        id: order.id.clone(),
        status: orders.status(order),
        channel: order.channel.clone(),
        customer_id: order.customer_id.clone(),
        lines: order.lines.clone(),
        total_minor: order.total_minor,
        currency: order.currency.clone(),
        payment_status: order.payment_status.clone(),
        created_at: rfc3339(order.created_at_ms),
    }
}
