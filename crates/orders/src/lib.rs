//! Orders across channels: carts, checkout, payment, fulfillment in parts, returns and
//! cancellation, and orders taken at a till or on a marketplace. Owns the tables `carts`,
//! `orders`, `order_payments` and `order_movements`, and the routes `/v1/carts...` and
//! `/v1/orders...`.
//!
//! An order's stock is the inventory ledger's: checkout is a reservation (a hold with the
//! channel's TTL), placing it confirms the hold (reserved → committed), a fulfillment ships
//! (committed → customer, per location when it was allocated across several), a return books
//! units into quarantine under `Reference::Order(id)`, a cancellation releases. Each transition is
//! one ledger command under a key of its own, so repeating it answers the same; a transition the
//! order's state does not allow is a conflict. An unpaid checkout's hold expires by itself in the
//! ledger, and the order then reads as `expired`.
//!
//! Payment state comes from the payment provider's callback and never includes card data. An
//! order of a known customer is part of the customer's export and erasure (the customer's id is
//! removed; the sales record stays), and, once placed, reaches the customer's features as an
//! `Order Completed` event when the service is given the event ingestion
//! ([`Orders::with_purchases`]). The ledger is never told who the customer is.
//!
//! Must not: touch the inventory's tables (it goes through [`dermis_inventory::Inventory`]), or
//! store anything about a payment but its event, provider reference, amount and currency.
//!
//! # Layout
//! - [`model`]: carts, orders, lines, payments, shipments and returns.
//! - [`input`]: request bodies and their parsing.
//! - [`store`]: the SQL ([`MIGRATIONS`]).
//! - [`service`]: [`Orders`], the operations and the ledger commands they issue.
//! - [`view`]: carts and orders as shown.
//! - [`routes`]: the HTTP API.
//! - [`error`]: [`OrdersError`] and its mapping to problems.

#![warn(missing_docs)]

pub mod error;
pub mod input;
pub mod model;
pub mod routes;
pub mod service;
pub mod store;
pub mod view;

pub use error::OrdersError;
pub use model::{Cart, Order, OrderLine, OrderStatus, PaymentEvent};
pub use service::Orders;

/// Migrations of the orders tables.
pub const MIGRATIONS: &[dermis_store::Migration] = &[dermis_store::Migration {
    domain: "orders",
    version: 1,
    name: "carts, orders, payments, shipments and returns",
    sqlite: include_str!("../migrations/0001_orders.sql"),
    postgres: include_str!("../migrations/0001_orders.sql"),
}];
