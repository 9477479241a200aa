//! The orders domain's SQL, one text for SQLite and PostgreSQL: `carts`, `orders`,
//! `order_payments`, `order_movements` ([`MIGRATIONS`](crate::MIGRATIONS)). Decides nothing: the
//! service decides and orders the writes.

use dermis_core::clock::rfc3339;
use dermis_store::StoreError;
use dermis_store::sqlx::{self, Any, AnyConnection, Executor, Row, any::AnyRow};

use crate::model::UnitsMoved;
use crate::model::{Cart, MovementKind, Order, OrderLine, OrderMovement, OrderStatus, Payment, PaymentEvent};

fn lines_of(row: &AnyRow) -> Result<Vec<OrderLine>, StoreError> {
    let text: String = row.try_get("lines")?;
    serde_json::from_str(&text).map_err(|e| StoreError::Other(format!("stored order lines: {e}")))
}

/// Lines as stored.
pub fn lines_json(lines: &[OrderLine]) -> String {
    serde_json::to_string(lines).unwrap_or_else(|_| "[]".to_owned())
}

const CART_COLUMNS: &str = "id, channel, customer_id, location_id, lines, order_id, created_at, updated_at, version";

fn cart_row(row: &AnyRow) -> Result<Cart, StoreError> {
    Ok(Cart {
        id: row.try_get("id")?,
        channel: row.try_get("channel")?,
        customer_id: row.try_get("customer_id")?,
        location_id: row.try_get("location_id")?,
        lines: lines_of(row)?,
        order_id: row.try_get("order_id")?,
        created_at_ms: row.try_get("created_at")?,
        updated_at_ms: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}

/// Stores a new cart.
pub async fn insert_cart(conn: &mut AnyConnection, cart: &Cart) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO carts (id, channel, customer_id, location_id, lines, status, order_id, created_at, updated_at, version)
         VALUES ($1, $2, $3, $4, $5, 'open', NULL, $6, $6, 1)",
    )
    .bind(&cart.id)
    .bind(&cart.channel)
    .bind(cart.customer_id.clone())
    .bind(cart.location_id.clone())
    .bind(lines_json(&cart.lines))
    .bind(cart.created_at_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// A cart by id.
pub async fn get_cart<'c, E: Executor<'c, Database = Any>>(ex: E, id: &str) -> Result<Option<Cart>, StoreError> {
    let sql = format!("SELECT {CART_COLUMNS} FROM carts WHERE id = $1");
    sqlx::query(&sql).bind(id).fetch_optional(ex).await?.as_ref().map(cart_row).transpose()
}

/// Replaces an open cart's lines if it is still at `version`; whether it was.
pub async fn replace_cart_lines<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    id: &str,
    version: i64,
    lines: &[OrderLine],
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE carts SET lines = $3, updated_at = $4, version = version + 1
         WHERE id = $1 AND version = $2 AND status = 'open'",
    )
    .bind(id)
    .bind(version)
    .bind(lines_json(lines))
    .bind(now)
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks an open cart at `version` checked out into `order_id`; whether it was.
pub async fn check_out_cart(
    conn: &mut AnyConnection,
    id: &str,
    version: i64,
    order_id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE carts SET status = 'checked_out', order_id = $3, updated_at = $4, version = version + 1
         WHERE id = $1 AND version = $2 AND status = 'open'",
    )
    .bind(id)
    .bind(version)
    .bind(order_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

const ORDER_COLUMNS: &str = "id, status, channel, external_id, cart_id, customer_id, location_id, reservation_id, \
    lines, total_minor, currency, payment_status, expires_at, created_at, updated_at, version";

fn order_row(row: &AnyRow) -> Result<Order, StoreError> {
    Ok(Order {
        id: row.try_get("id")?,
        stored_status: OrderStatus::parse(&row.try_get::<String, _>("status")?),
        channel: row.try_get("channel")?,
        external_id: row.try_get("external_id")?,
        cart_id: row.try_get("cart_id")?,
        customer_id: row.try_get("customer_id")?,
        location_id: row.try_get("location_id")?,
        reservation_id: row.try_get("reservation_id")?,
        lines: lines_of(row)?,
        total_minor: row.try_get("total_minor")?,
        currency: row.try_get("currency")?,
        payment_status: row.try_get("payment_status")?,
        expires_at_ms: row.try_get("expires_at")?,
        created_at_ms: row.try_get("created_at")?,
        updated_at_ms: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}

/// Stores a new order unless one with its id, cart or `(channel, external_id)` exists; whether
/// it was stored.
pub async fn insert_order<'c, E: Executor<'c, Database = Any>>(ex: E, o: &Order) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO orders (id, status, channel, external_id, cart_id, customer_id, location_id, reservation_id,
             lines, total_minor, currency, payment_status, expires_at, created_at, updated_at, version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, 1)
         ON CONFLICT DO NOTHING",
    )
    .bind(&o.id)
    .bind(o.stored_status.as_str())
    .bind(&o.channel)
    .bind(o.external_id.clone())
    .bind(o.cart_id.clone())
    .bind(o.customer_id.clone())
    .bind(o.location_id.clone())
    .bind(&o.reservation_id)
    .bind(lines_json(&o.lines))
    .bind(o.total_minor)
    .bind(&o.currency)
    .bind(&o.payment_status)
    .bind(o.expires_at_ms)
    .bind(o.created_at_ms)
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An order by id.
pub async fn get_order<'c, E: Executor<'c, Database = Any>>(ex: E, id: &str) -> Result<Option<Order>, StoreError> {
    let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1");
    sqlx::query(&sql).bind(id).fetch_optional(ex).await?.as_ref().map(order_row).transpose()
}

/// The order a channel knows by `external_id`.
pub async fn order_by_external<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    channel: &str,
    external_id: &str,
) -> Result<Option<Order>, StoreError> {
    let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE channel = $1 AND external_id = $2");
    sqlx::query(&sql).bind(channel).bind(external_id).fetch_optional(ex).await?.as_ref().map(order_row).transpose()
}

/// Deletes an order that never got stock (its reservation was refused).
pub async fn delete_unreserved<'c, E: Executor<'c, Database = Any>>(ex: E, id: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM orders WHERE id = $1 AND status = 'checkout'").bind(id).execute(ex).await?;
    Ok(())
}

/// Sets an order's status (a no-op when it has it already).
pub async fn set_status<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    id: &str,
    status: OrderStatus,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE orders SET status = $2, updated_at = $3, version = version + 1 WHERE id = $1 AND status <> $2")
        .bind(id)
        .bind(status.as_str())
        .bind(now)
        .execute(ex)
        .await?;
    Ok(())
}

/// Sets an order's payment status.
pub async fn set_payment_status<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    id: &str,
    status: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE orders SET payment_status = $2, updated_at = $3, version = version + 1
         WHERE id = $1 AND payment_status <> $2",
    )
    .bind(id)
    .bind(status)
    .bind(now)
    .execute(ex)
    .await?;
    Ok(())
}

/// A page of orders (of one customer, or all), by id, after `after`.
pub async fn list_orders<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    customer_id: Option<&str>,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Order>, StoreError> {
    let filter = if customer_id.is_some() { "AND customer_id = $3" } else { "" };
    let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id > $1 {filter} ORDER BY id LIMIT $2");
    let mut q = sqlx::query(&sql).bind(after.unwrap_or("")).bind(i64::from(limit));
    if let Some(c) = customer_id {
        q = q.bind(c);
    }
    q.fetch_all(ex).await?.iter().map(order_row).collect()
}

/// Every order of a customer.
pub async fn orders_of<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    customer_id: &str,
) -> Result<Vec<Order>, StoreError> {
    let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE customer_id = $1 ORDER BY id");
    sqlx::query(&sql).bind(customer_id).fetch_all(ex).await?.iter().map(order_row).collect()
}

/// Every cart of a customer.
pub async fn carts_of<'c, E: Executor<'c, Database = Any>>(ex: E, customer_id: &str) -> Result<Vec<Cart>, StoreError> {
    let sql = format!("SELECT {CART_COLUMNS} FROM carts WHERE customer_id = $1 ORDER BY id");
    sqlx::query(&sql).bind(customer_id).fetch_all(ex).await?.iter().map(cart_row).collect()
}

/// Removes a customer from their orders and carts (the sales records stay); rows changed.
pub async fn forget_customer(conn: &mut AnyConnection, customer_id: &str, now: i64) -> Result<u64, StoreError> {
    let orders = sqlx::query(
        "UPDATE orders SET customer_id = NULL, updated_at = $2, version = version + 1 WHERE customer_id = $1",
    )
    .bind(customer_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let carts = sqlx::query(
        "UPDATE carts SET customer_id = NULL, updated_at = $2, version = version + 1 WHERE customer_id = $1",
    )
    .bind(customer_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(orders.rows_affected() + carts.rows_affected())
}

/// Takes an order's row for the rest of the caller's transaction (its callbacks are checked and
/// recorded one at a time: two refunds cannot both pass the check of what was captured).
pub async fn lock_order(conn: &mut AnyConnection, id: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE orders SET version = version WHERE id = $1").bind(id).execute(conn).await?;
    Ok(())
}

/// Records a payment callback unless this (order, reference, event) was recorded; whether it was
/// new.
pub async fn insert_payment<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    order_id: &str,
    event: PaymentEvent,
    provider_reference: &str,
    amount_minor: i64,
    currency: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO order_payments (order_id, provider_reference, event, amount_minor, currency, received_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(order_id)
    .bind(provider_reference)
    .bind(event.as_str())
    .bind(amount_minor)
    .bind(currency)
    .bind(now)
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An order's payment callbacks, in arrival order.
pub async fn payments<'c, E: Executor<'c, Database = Any>>(ex: E, order_id: &str) -> Result<Vec<Payment>, StoreError> {
    let rows = sqlx::query(
        "SELECT provider_reference, event, amount_minor, currency, received_at FROM order_payments
         WHERE order_id = $1 ORDER BY received_at, provider_reference, event",
    )
    .bind(order_id)
    .fetch_all(ex)
    .await?;
    rows.iter()
        .map(|r| {
            let event: String = r.try_get("event")?;
            Ok(Payment {
                event: PaymentEvent::parse(&event)
                    .ok_or_else(|| StoreError::Other(format!("stored payment event {event:?}")))?,
                provider_reference: r.try_get("provider_reference")?,
                amount_minor: r.try_get("amount_minor")?,
                currency: r.try_get("currency")?,
                received_at: rfc3339(r.try_get("received_at")?),
            })
        })
        .collect()
}

/// Records a shipment or a return (once per ledger command key).
pub async fn insert_movement<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    order_id: &str,
    command_key: &str,
    kind: MovementKind,
    location_id: Option<&str>,
    lines: &[UnitsMoved],
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO order_movements (order_id, command_key, kind, location_id, lines, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(order_id)
    .bind(command_key)
    .bind(kind.as_str())
    .bind(location_id.map(str::to_owned))
    .bind(serde_json::to_string(lines).unwrap_or_else(|_| "[]".to_owned()))
    .bind(now)
    .execute(ex)
    .await?;
    Ok(())
}

/// An order's shipments and returns, oldest first.
pub async fn movements<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    order_id: &str,
) -> Result<Vec<OrderMovement>, StoreError> {
    let rows = sqlx::query(
        "SELECT kind, location_id, lines, created_at FROM order_movements WHERE order_id = $1
         ORDER BY created_at, command_key",
    )
    .bind(order_id)
    .fetch_all(ex)
    .await?;
    rows.iter()
        .map(|r| {
            let kind: String = r.try_get("kind")?;
            let lines: String = r.try_get("lines")?;
            Ok(OrderMovement {
                kind: if kind == "return" { MovementKind::Return } else { MovementKind::Fulfillment },
                location_id: r.try_get("location_id")?,
                lines: serde_json::from_str(&lines)
                    .map_err(|e| StoreError::Other(format!("stored order movement: {e}")))?,
                at: rfc3339(r.try_get("created_at")?),
            })
        })
        .collect()
}
