//! [`Orders`]: the operations of the orders domain. Every stock effect is a command to the
//! inventory ledger under a key of its own (`order:ID:reserve`, `:confirm`, `:release`,
//! `:ship:LOCATION`, `:return:DIGEST`), so a repeated transition replays the ledger's first
//! outcome instead of moving stock twice; the order's row follows what the ledger says
//! ([`Orders::settle`]), so a transition interrupted between the ledger and the row is completed
//! by its retry.
//!
//! The ledger is told the order (`Reference::Order(id)`), never the customer: the customer link
//! lives only in the orders tables, where erasure removes it.

use std::collections::BTreeMap;
use std::sync::Arc;

use dermis_catalog::Catalog;
use dermis_core::clock::SharedClock;
use dermis_core::ids::new_id;
use dermis_events::ingest::Ingestor;
use dermis_inventory::directory::SkuDirectory;
use dermis_inventory::routes::HoldSettings;
use dermis_inventory::{Account, Channel, Command, Effect, IdempotencyKey, Line, LocationId, LotLine, Outcome};
use dermis_inventory::{Inventory, Reference, Rejection, Request, Reservation, ReservationId, ReservationStatus};
use dermis_inventory::{SkuId, StockState};
use dermis_store::Db;
use dermis_store::idempotency::{self, Prior};
use serde_json::{Value, json};

use crate::error::OrdersError;
use crate::input::{Idempotent, LineRequest, NewCart, NewExternalOrder, NewPayment};
use crate::model::{Cart, MovementKind, Order, OrderLine, OrderStatus, PaymentEvent, UnitsMoved};
use crate::store;

/// Most units one line may ask for.
const MAX_QUANTITY: i64 = 1_000_000_000;
/// Most lines of a cart or an order.
pub const MAX_LINES: usize = 200;

/// The orders domain as a service. Cheap to clone.
#[derive(Clone)]
pub struct Orders {
    db: Db,
    inventory: Inventory,
    skus: SkuDirectory,
    holds: HoldSettings,
    catalog: Catalog,
    clock: SharedClock,
    purchases: Option<Arc<Purchases>>,
}

impl std::fmt::Debug for Orders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orders").field("purchases", &self.purchases.is_some()).finish_non_exhaustive()
    }
}

/// Where placed orders of known customers go as `Order Completed` track events (so they reach
/// the customer's features like a shop's own event would).
struct Purchases {
    ingestor: Ingestor,
    write_key_id: tokio::sync::OnceCell<String>,
}

/// A created-or-found answer: `created` is false when a repeat found what the first call made.
#[derive(Debug, Clone)]
pub struct Done<T> {
    /// The resource.
    pub value: T,
    /// Whether this call created it (201) rather than found it (200).
    pub created: bool,
}

impl Orders {
    /// The service over `db` (migrated with [`crate::MIGRATIONS`]), the inventory ledger, the
    /// catalog's SKUs as the ledger resolves them, the channels' hold lifetimes, and the catalog
    /// (for prices).
    pub fn new(
        db: Db,
        inventory: Inventory,
        skus: SkuDirectory,
        holds: HoldSettings,
        catalog: Catalog,
        clock: SharedClock,
    ) -> Self {
        Self { db, inventory, skus, holds, catalog, clock, purchases: None }
    }

    /// The same service, sending an `Order Completed` event through `ingestor` when an order of a
    /// known customer is placed (under a write key named `orders`).
    pub fn with_purchases(mut self, ingestor: Ingestor) -> Self {
        self.purchases = Some(Arc::new(Purchases { ingestor, write_key_id: tokio::sync::OnceCell::new() }));
        self
    }

    fn ledger(&self) -> &Inventory {
        &self.inventory
    }

    /// The store.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Now, by the service's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    // ---- reading -----------------------------------------------------------------------------

    /// A cart.
    pub async fn cart(&self, id: &str) -> Result<Option<Cart>, OrdersError> {
        Ok(store::get_cart(self.db.reader(), id).await?)
    }

    /// An order.
    pub async fn order(&self, id: &str) -> Result<Option<Order>, OrdersError> {
        Ok(store::get_order(self.db.reader(), id).await?)
    }

    /// A page of orders (of one customer, or all) after the order id `after`.
    pub async fn list(
        &self,
        customer_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Order>, OrdersError> {
        Ok(store::list_orders(self.db.reader(), customer_id, after, limit).await?)
    }

    /// An order's reservation in the ledger, as it stands now.
    pub fn reservation(&self, order: &Order) -> Option<Reservation> {
        let id = ReservationId::new(order.reservation_id.as_str());
        self.ledger().read(|l| l.reservation(&id).cloned())
    }

    /// An order's status now: a checkout whose hold is no longer live reads as expired.
    pub fn status(&self, order: &Order) -> OrderStatus {
        if order.stored_status != OrderStatus::Checkout {
            return order.stored_status;
        }
        match self.reservation(order) {
            Some(r)
                if matches!(r.status, ReservationStatus::Held | ReservationStatus::Expired)
                    && !r.is_live(self.clock.now_ms()) =>
            {
                OrderStatus::Expired
            }
            _ => OrderStatus::Checkout,
        }
    }

    /// An order's payment callbacks.
    pub async fn payments(&self, order_id: &str) -> Result<Vec<crate::model::Payment>, OrdersError> {
        Ok(store::payments(self.db.reader(), order_id).await?)
    }

    /// An order's shipments and returns.
    pub async fn movements(&self, order_id: &str) -> Result<Vec<crate::model::OrderMovement>, OrdersError> {
        Ok(store::movements(self.db.reader(), order_id).await?)
    }

    /// The location an id or code names, if the ledger knows it.
    pub fn location(&self, id_or_code: &str) -> Option<LocationId> {
        self.ledger().read(|l| {
            l.setup()
                .locations
                .iter()
                .find(|loc| loc.id.as_str() == id_or_code || loc.details.code == id_or_code)
                .map(|loc| loc.id.clone())
        })
    }

    /// The code of a location (a store associate's token names their store by id or code).
    pub fn location_code(&self, id: &LocationId) -> Option<String> {
        self.ledger().read(|l| l.setup().locations.iter().find(|loc| &loc.id == id).map(|loc| loc.details.code.clone()))
    }

    // ---- carts ---------------------------------------------------------------------------------

    /// Creates a cart (an `Idempotency-Key` retry answers the cart the first call made).
    pub async fn create_cart(&self, new: NewCart, idem: Option<Idempotent>) -> Result<Done<Cart>, OrdersError> {
        let lines = self.price_lines(&new.lines, false).await?;
        let now = self.clock.now_ms();
        let cart = Cart {
            id: new_id("crt"),
            channel: new.channel.to_string(),
            customer_id: new.customer_id,
            location_id: new.location_id.map(|l| l.to_string()),
            lines,
            order_id: None,
            created_at_ms: now,
            updated_at_ms: now,
            version: 1,
        };
        let mut tx = self.db.begin().await?;
        if let Some(i) = &idem {
            match idempotency::prior(&mut tx, &i.scope, &i.key, &i.request_hash).await? {
                Prior::None => {}
                Prior::Created(id) => {
                    drop(tx);
                    let found = self.cart(&id).await?.ok_or(OrdersError::CartNotFound(id))?;
                    return Ok(Done { value: found, created: false });
                }
                Prior::Mismatch => return Err(OrdersError::IdempotencyKeyReused),
            }
        }
        store::insert_cart(&mut tx, &cart).await?;
        if let Some(i) = &idem {
            idempotency::record(&mut tx, &i.scope, &i.key, &i.request_hash, &cart.id).await?;
        }
        tx.commit().await?;
        Ok(Done { value: cart, created: true })
    }

    /// Replaces an open cart's lines.
    pub async fn replace_lines(&self, cart: Cart, lines: &[LineRequest]) -> Result<Cart, OrdersError> {
        let priced = self.price_lines(lines, false).await?;
        let mut cart = cart;
        for _ in 0..3 {
            if let Some(order) = &cart.order_id {
                return Err(OrdersError::WrongState(format!(
                    "cart {} was checked out into order {order}: its lines no longer change",
                    cart.id
                )));
            }
            let now = self.clock.now_ms();
            if store::replace_cart_lines(self.db.writer(), &cart.id, cart.version, &priced, now).await? {
                return self.cart(&cart.id).await?.ok_or(OrdersError::CartNotFound(cart.id));
            }
            cart = self.cart(&cart.id).await?.ok_or_else(|| OrdersError::CartNotFound(cart.id.clone()))?;
        }
        Err(OrdersError::WrongState(format!("cart {} keeps changing; try again", cart.id)))
    }

    /// Checks a cart out: holds its lines in the ledger (all or none, for the channel's hold
    /// TTL or `ttl_secs`) and makes an order in `checkout`. A cart checked out before answers its
    /// order; short stock is a rejection naming the short lines, and the cart stays open.
    pub async fn checkout(&self, cart: Cart, ttl_secs: Option<u64>, actor: &str) -> Result<Done<Order>, OrdersError> {
        if let Some(order_id) = &cart.order_id {
            let order = self.order(order_id).await?.ok_or_else(|| OrdersError::OrderNotFound(order_id.clone()))?;
            return Ok(Done { value: order, created: false });
        }
        if cart.lines.is_empty() {
            return Err(OrdersError::invalid("lines", "an empty cart cannot be checked out"));
        }
        let channel: Channel = cart
            .channel
            .parse()
            .map_err(|e: dermis_inventory::model::ParseChannelError| OrdersError::invalid("channel", e.to_string()))?;
        let ttl = self.ttl(&channel, ttl_secs)?;
        let order_id = format!("ord_{}", cart.id.trim_start_matches("crt_"));
        // The cart's version is in the hold's id and key: lines replaced while a checkout runs make
        // another hold, and the stale one is released below.
        let reservation = format!("res_{}_v{}", order_id, cart.version);
        let key = format!("order:{order_id}:reserve:v{}", cart.version);
        let now = self.clock.now_ms();
        let outcome = self
            .command(
                &key,
                actor,
                Command::Reserve {
                    reservation: ReservationId::new(reservation.as_str()),
                    channel,
                    lines: ledger_lines(&cart.lines),
                    expires_at_ms: now + ttl as i64 * 1000,
                    preferred_location: cart.location_id.as_deref().map(LocationId::new),
                    reference: Some(Reference::Order(order_id.clone())),
                    customer_id: None,
                },
            )
            .await?;
        let expires_at_ms = match &outcome.effect {
            Effect::Reserved(r) => r.expires_at_ms,
            _ => now + ttl as i64 * 1000,
        };
        let (total_minor, currency) = totals(&cart.lines);
        let order = Order {
            id: order_id.clone(),
            stored_status: OrderStatus::Checkout,
            channel: cart.channel.clone(),
            external_id: None,
            cart_id: Some(cart.id.clone()),
            customer_id: cart.customer_id.clone(),
            location_id: cart.location_id.clone(),
            reservation_id: reservation.clone(),
            lines: cart.lines.clone(),
            total_minor,
            currency,
            payment_status: "none".to_owned(),
            expires_at_ms,
            created_at_ms: now,
            updated_at_ms: now,
            version: 1,
        };
        let mut tx = self.db.begin().await?;
        store::insert_order(&mut *tx, &order).await?;
        if store::check_out_cart(&mut tx, &cart.id, cart.version, &order_id, now).await? {
            tx.commit().await?;
            return Ok(Done { value: order, created: true });
        }
        tx.rollback().await?;
        // Another request changed the cart first: it checked it out with the same hold, or
        // replaced its lines (then this hold is not the cart's any more).
        let current = self.cart(&cart.id).await?.ok_or_else(|| OrdersError::CartNotFound(cart.id.clone()))?;
        if current.order_id.is_some() && current.version == cart.version + 1 {
            let order = self.order(&order_id).await?.ok_or_else(|| OrdersError::OrderNotFound(order_id.clone()))?;
            if order.reservation_id == reservation {
                return Ok(Done { value: order, created: false });
            }
        }
        let release = format!("order:{order_id}:release:v{}", cart.version);
        self.command(&release, actor, Command::Release { reservation: ReservationId::new(reservation.as_str()) })
            .await?;
        Err(OrdersError::WrongState(format!("cart {} changed while it was checked out; check it out again", cart.id)))
    }

    fn ttl(&self, channel: &Channel, asked: Option<u64>) -> Result<u64, OrdersError> {
        let holds = &self.holds;
        let default =
            holds.ttl_secs.get(&channel.to_string()).or_else(|| holds.ttl_secs.get("default")).copied().unwrap_or(900);
        let ttl = asked.unwrap_or(default);
        if ttl == 0 || ttl > holds.max_ttl_secs {
            return Err(OrdersError::invalid("ttl_seconds", format!("must be 1 to {}", holds.max_ttl_secs)));
        }
        Ok(ttl)
    }

    // ---- orders from other channels --------------------------------------------------------------

    /// Takes a POS or marketplace order: placed at once (held and committed in the ledger), once
    /// per `(channel, external_id)`; the same pair with the same lines answers the same order.
    pub async fn place_external(&self, new: NewExternalOrder, actor: &str) -> Result<Done<Order>, OrdersError> {
        let lines = self.price_lines(&new.lines, true).await?;
        let channel = new.channel.to_string();
        let same = |found: &Order| -> Result<(), OrdersError> {
            // The same SKUs and quantities (a price that changed since is not another order).
            let units =
                |l: &[crate::model::OrderLine]| l.iter().map(|x| (x.sku_id.clone(), x.quantity)).collect::<Vec<_>>();
            if units(&found.lines) == units(&lines)
                && found.location_id == new.location_id.as_ref().map(|l| l.to_string())
            {
                Ok(())
            } else {
                Err(OrdersError::ExternalIdTaken { channel: channel.clone(), external_id: new.external_id.clone() })
            }
        };
        if let Some(found) = store::order_by_external(self.db.reader(), &channel, &new.external_id).await? {
            same(&found)?;
            let placed = self.complete_external(found, &new.channel, actor).await?;
            return Ok(Done { value: placed, created: false });
        }
        let now = self.clock.now_ms();
        let id = new_id("ord");
        let (total_minor, currency) = totals(&lines);
        let order = Order {
            id: id.clone(),
            stored_status: OrderStatus::Checkout,
            channel: channel.clone(),
            external_id: Some(new.external_id.clone()),
            cart_id: None,
            customer_id: new.customer_id.clone(),
            location_id: new.location_id.as_ref().map(|l| l.to_string()),
            reservation_id: format!("res_{id}"),
            lines: lines.clone(),
            total_minor,
            currency,
            payment_status: "none".to_owned(),
            expires_at_ms: now,
            created_at_ms: now,
            updated_at_ms: now,
            version: 1,
        };
        let inserted = store::insert_order(self.db.writer(), &order).await?;
        let found = store::order_by_external(self.db.writer(), &channel, &new.external_id)
            .await?
            .ok_or_else(|| OrdersError::OrderNotFound(new.external_id.clone()))?;
        same(&found)?;
        let placed = self.complete_external(found, &new.channel, actor).await?;
        Ok(Done { value: placed, created: inserted })
    }

    /// Holds and confirms an external order's lines (each step once, by its key).
    async fn complete_external(&self, order: Order, channel: &Channel, actor: &str) -> Result<Order, OrdersError> {
        let reservation = ReservationId::new(order.reservation_id.as_str());
        let reserve = format!("order:{}:reserve", order.id);
        let ttl = self.ttl(channel, None)?;
        let reserved = self
            .command(
                &reserve,
                actor,
                Command::Reserve {
                    reservation: reservation.clone(),
                    channel: channel.clone(),
                    lines: ledger_lines(&order.lines),
                    expires_at_ms: self.clock.now_ms() + ttl as i64 * 1000,
                    preferred_location: order.location_id.as_deref().map(LocationId::new),
                    reference: Some(Reference::Order(order.id.clone())),
                    customer_id: None,
                },
            )
            .await;
        if let Err(e) = reserved {
            if matches!(e, OrdersError::Rejected(_)) {
                // Nothing was held: the order never existed for the ledger; forget it.
                store::delete_unreserved(self.db.writer(), &order.id).await?;
            }
            return Err(e);
        }
        let confirm = format!("order:{}:confirm", order.id);
        if let Err(e) =
            self.command(&confirm, actor, Command::Confirm { reservation: reservation.clone(), lines: None }).await
        {
            if matches!(e, OrdersError::Rejected(_)) {
                // A till took the held units in between: give back what is left.
                let release = format!("order:{}:release", order.id);
                self.command(&release, actor, Command::Release { reservation }).await?;
                self.settle(&order).await?;
            }
            return Err(e);
        }
        let placed = self.settle(&order).await?;
        self.announce_purchase(&placed).await;
        Ok(placed)
    }

    // ---- transitions -------------------------------------------------------------------------------

    /// Places a checkout (reserved → committed). Placing a placed order again changes nothing.
    pub async fn place(&self, order: Order, actor: &str) -> Result<Order, OrdersError> {
        let key = format!("order:{}:confirm", order.id);
        if !self.applied(&key) {
            match self.status(&order) {
                OrderStatus::Checkout => {}
                OrderStatus::Expired => return Err(expired(&order)),
                OrderStatus::Cancelled => {
                    return Err(OrdersError::WrongState(format!("order {} is cancelled", order.id)));
                }
                OrderStatus::Placed
                | OrderStatus::PartiallyFulfilled
                | OrderStatus::Fulfilled
                | OrderStatus::PartiallyReturned
                | OrderStatus::Returned => return Ok(order),
            }
        }
        let reservation = ReservationId::new(order.reservation_id.as_str());
        let outcome = match self.command(&key, actor, Command::Confirm { reservation, lines: None }).await {
            Err(OrdersError::Rejected(Rejection::ReservationExpired { .. })) => return Err(expired(&order)),
            other => other?,
        };
        let placed = self.settle(&order).await?;
        if placed.stored_status == OrderStatus::Cancelled {
            // Placed once and cancelled since: the confirmation's key replays, but a payment
            // arriving now does not make it an order again.
            return Err(OrdersError::WrongState(format!("order {} is cancelled", order.id)));
        }
        if !outcome.replayed {
            self.announce_purchase(&placed).await;
        }
        Ok(placed)
    }

    /// Cancels a checkout or a placed order: every unit it holds or has committed goes back on
    /// hand. Cancelling a cancelled order changes nothing.
    pub async fn cancel(&self, order: Order, actor: &str) -> Result<Order, OrdersError> {
        let key = format!("order:{}:release", order.id);
        if !self.applied(&key) {
            match self.status(&order) {
                OrderStatus::Checkout | OrderStatus::Placed => {}
                OrderStatus::Cancelled => return self.settle(&order).await,
                OrderStatus::Expired => return Err(expired(&order)),
                status @ (OrderStatus::PartiallyFulfilled
                | OrderStatus::Fulfilled
                | OrderStatus::PartiallyReturned
                | OrderStatus::Returned) => {
                    return Err(OrdersError::WrongState(format!(
                        "order {} is {}: shipped units come back as a return, not a cancellation",
                        order.id,
                        status.as_str()
                    )));
                }
            }
        }
        let reservation = ReservationId::new(order.reservation_id.as_str());
        self.command(&key, actor, Command::Release { reservation }).await?;
        self.settle(&order).await
    }

    /// Ships what a placed order has committed (all of it, or what is at `location`): committed →
    /// customer. The same shipment asked again answers the same.
    pub async fn fulfill(
        &self,
        order: Order,
        location: Option<LocationId>,
        actor: &str,
    ) -> Result<Done<Order>, OrdersError> {
        let at = location.as_ref().map_or("all", LocationId::as_str);
        let key = format!("order:{}:ship:{at}", order.id);
        if !self.applied(&key) {
            match self.status(&order) {
                OrderStatus::Placed | OrderStatus::PartiallyFulfilled => {}
                // Shipped in part, some of it back already: the rest still ships.
                OrderStatus::PartiallyReturned if self.reservation(&order).is_some_and(|r| r.committed() > 0) => {}
                status => {
                    return Err(OrdersError::WrongState(format!(
                        "order {} is {}: only a placed order ships",
                        order.id,
                        status.as_str()
                    )));
                }
            }
        }
        let reservation = ReservationId::new(order.reservation_id.as_str());
        let outcome = self.command(&key, actor, Command::Ship { reservation, location: location.clone() }).await?;
        let units = units_moved(&outcome, |account| match account {
            Account::Stock { location, state: StockState::Committed } => Some(location.clone()),
            _ => None,
        });
        let now = self.clock.now_ms();
        store::insert_movement(
            self.db.writer(),
            &order.id,
            &key,
            MovementKind::Fulfillment,
            location.as_ref().map(LocationId::as_str),
            &units,
            now,
        )
        .await?;
        let value = self.settle(&order).await?;
        Ok(Done { value, created: !outcome.replayed })
    }

    /// Books units of a shipped order coming back at `location`, into quarantine. `digest` names
    /// the return: the same one again answers the same.
    pub async fn take_back(
        &self,
        order: Order,
        location: LocationId,
        lines: &[LineRequest],
        digest: &str,
        actor: &str,
    ) -> Result<Done<Order>, OrdersError> {
        let key = format!("order:{}:return:{digest}", order.id);
        if !self.applied(&key) {
            match self.status(&order) {
                OrderStatus::PartiallyFulfilled | OrderStatus::Fulfilled | OrderStatus::PartiallyReturned => {}
                status => {
                    return Err(OrdersError::WrongState(format!(
                        "order {} is {}: only shipped units come back",
                        order.id,
                        status.as_str()
                    )));
                }
            }
        }
        let skus = self.resolve(lines).await?;
        let lot_lines =
            lines.iter().zip(skus).map(|(line, sku)| LotLine { sku, quantity: line.quantity, lot: None }).collect();
        let command = Command::Return {
            location: location.clone(),
            reference: Reference::Order(order.id.clone()),
            lines: lot_lines,
        };
        let outcome = self.command(&key, actor, command).await?;
        let units = units_moved(&outcome, |account| match account {
            Account::Stock { location, state: StockState::Quarantine } => Some(location.clone()),
            _ => None,
        });
        store::insert_movement(
            self.db.writer(),
            &order.id,
            &key,
            MovementKind::Return,
            Some(location.as_str()),
            &units,
            self.clock.now_ms(),
        )
        .await?;
        let value = self.settle(&order).await?;
        Ok(Done { value, created: !outcome.replayed })
    }

    /// Records a payment provider's callback (once per order, reference and event) and moves the
    /// order: authorized or captured places a checkout, failed cancels it. Repeating a callback
    /// changes nothing.
    ///
    /// The amounts are checked before anything is recorded ([`check_amount`]): an authorization
    /// or a capture must be for the order's total in its currency (a capture once), a refund
    /// may not take the refunds past what was captured, and a repeated callback must carry the
    /// amount and currency of the first. Otherwise the callback is refused (a 422 naming
    /// `amount_minor` or `currency`), nothing is stored and the order does not move.
    pub async fn record_payment(&self, order: Order, payment: NewPayment, actor: &str) -> Result<Order, OrdersError> {
        let now = self.clock.now_ms();
        let mut tx = self.db.begin().await?;
        store::lock_order(&mut tx, &order.id).await?;
        let current =
            store::get_order(&mut *tx, &order.id).await?.ok_or_else(|| OrdersError::OrderNotFound(order.id.clone()))?;
        let prior = store::payments(&mut *tx, &order.id).await?;
        let first =
            prior.iter().find(|p| p.event == payment.event && p.provider_reference == payment.provider_reference);
        match first {
            Some(first) => {
                // A repeat: the same callback again, or another one reusing its reference (a
                // failure carries no money to compare).
                let event = payment.event.as_str();
                if payment.event != PaymentEvent::Failed && first.currency != payment.currency {
                    return Err(OrdersError::invalid(
                        "currency",
                        format!(
                            "{} differs from the first {event} callback of this payment ({})",
                            payment.currency, first.currency
                        ),
                    ));
                }
                if payment.event != PaymentEvent::Failed && first.amount_minor != payment.amount_minor {
                    return Err(OrdersError::invalid(
                        "amount_minor",
                        format!(
                            "{} differs from the first {event} callback of this payment ({})",
                            payment.amount_minor, first.amount_minor
                        ),
                    ));
                }
                tx.rollback().await?;
            }
            None => {
                check_amount(&current, &prior, &payment)?;
                store::insert_payment(
                    &mut *tx,
                    &order.id,
                    payment.event,
                    &payment.provider_reference,
                    payment.amount_minor,
                    &payment.currency,
                    now,
                )
                .await?;
                if payment_rank(payment.event.as_str()) > payment_rank(&current.payment_status) {
                    store::set_payment_status(&mut *tx, &order.id, payment.event.as_str(), now).await?;
                }
                tx.commit().await?;
            }
        }
        let order = self.order(&order.id).await?.ok_or_else(|| OrdersError::OrderNotFound(order.id.clone()))?;
        match payment.event {
            PaymentEvent::Authorized | PaymentEvent::Captured => self.place(order, actor).await,
            PaymentEvent::Failed if self.status(&order) == OrderStatus::Checkout => self.cancel(order, actor).await,
            PaymentEvent::Failed | PaymentEvent::Refunded => Ok(order),
        }
    }

    /// Brings the order's row in line with its reservation in the ledger and its returns; the
    /// order as it now stands.
    pub async fn settle(&self, order: &Order) -> Result<Order, OrdersError> {
        if let Some(r) = self.reservation(order) {
            let returned: i64 = self
                .movements(&order.id)
                .await?
                .iter()
                .filter(|m| m.kind == MovementKind::Return)
                .flat_map(|m| m.lines.iter().map(|l| l.quantity))
                .sum();
            let status = settled(&r, returned);
            if status != order.stored_status {
                store::set_status(self.db.writer(), &order.id, status, self.clock.now_ms()).await?;
            }
        }
        store::get_order(self.db.writer(), &order.id).await?.ok_or_else(|| OrdersError::OrderNotFound(order.id.clone()))
    }

    // ---- the ledger --------------------------------------------------------------------------------

    fn applied(&self, key: &str) -> bool {
        let key = IdempotencyKey::new(key);
        self.ledger().read(|l| l.applied(&key).is_some())
    }

    /// Applies one command under `key`; a key applied before answers its first outcome.
    async fn command(&self, key: &str, actor: &str, command: Command) -> Result<Outcome, OrdersError> {
        let k = IdempotencyKey::new(key);
        let first = || self.ledger().read(|l| l.applied(&k).map(|a| Outcome { replayed: true, ..a.outcome.clone() }));
        if let Some(outcome) = first() {
            return Ok(outcome);
        }
        match self.ledger().submit(Request::new(key, actor, command)).await? {
            Ok(outcome) => Ok(outcome),
            // A concurrent repeat applied it first: its outcome is the answer.
            Err(rejection @ Rejection::IdempotencyConflict { .. }) => first().ok_or(OrdersError::Rejected(rejection)),
            Err(rejection) => Err(rejection.into()),
        }
    }

    // ---- lines ---------------------------------------------------------------------------------------

    /// SKU ids for line references (ids or codes), each made known to the ledger.
    async fn resolve(&self, lines: &[LineRequest]) -> Result<Vec<SkuId>, OrdersError> {
        for (i, line) in lines.iter().enumerate() {
            if line.quantity <= 0 || line.quantity > MAX_QUANTITY {
                return Err(OrdersError::invalid(
                    format!("lines[{i}].quantity"),
                    format!("must be 1 to {MAX_QUANTITY} units, got {}", line.quantity),
                ));
            }
            if line.sku_id.is_empty() || line.sku_id.len() > 128 {
                return Err(OrdersError::invalid(format!("lines[{i}].sku_id"), "must be 1 to 128 characters"));
            }
        }
        let references: Vec<&str> = lines.iter().map(|l| l.sku_id.as_str()).collect();
        Ok(self.skus.resolve_all(&self.inventory, &references).await?)
    }

    /// Lines priced from the catalog, the same SKU merged into one line. `required`: at least one.
    async fn price_lines(&self, lines: &[LineRequest], required: bool) -> Result<Vec<OrderLine>, OrdersError> {
        if required && lines.is_empty() {
            return Err(OrdersError::invalid("lines", "at least one line is needed"));
        }
        if lines.len() > MAX_LINES {
            return Err(OrdersError::invalid("lines", format!("at most {MAX_LINES} lines")));
        }
        let skus = self.resolve(lines).await?;
        let mut merged: BTreeMap<String, OrderLine> = BTreeMap::new();
        let mut order: Vec<String> = Vec::new();
        for (line, sku) in lines.iter().zip(skus) {
            if let Some(existing) = merged.get_mut(sku.as_str()) {
                existing.quantity = existing.quantity.saturating_add(line.quantity).min(MAX_QUANTITY);
                continue;
            }
            let found = self
                .catalog
                .sku_by_reference(sku.as_str())
                .await
                .map_err(|e| OrdersError::Catalog(e.to_string()))?
                .ok_or_else(|| OrdersError::invalid("lines.sku_id", format!("unknown SKU {sku}")))?;
            order.push(found.id.clone());
            merged.insert(
                found.id.clone(),
                OrderLine {
                    sku_id: found.id,
                    product_id: found.product_id,
                    quantity: line.quantity,
                    unit_price_minor: found.price.amount_minor,
                    currency: found.price.currency,
                },
            );
        }
        let priced: Vec<OrderLine> = order.iter().filter_map(|id| merged.remove(id)).collect();
        if priced.windows(2).any(|w| w[0].currency != w[1].currency) {
            return Err(OrdersError::invalid("lines", "the lines are priced in different currencies"));
        }
        Ok(priced)
    }

    // ---- features ----------------------------------------------------------------------------------

    /// Sends `Order Completed` for a placed order of a known customer (once: the message id is
    /// the order's). A failure is logged, not the caller's: the order is placed either way.
    async fn announce_purchase(&self, order: &Order) {
        let (Some(purchases), Some(customer)) = (&self.purchases, &order.customer_id) else { return };
        let key = purchases
            .write_key_id
            .get_or_try_init(|| async {
                let keys = purchases.ingestor.write_keys();
                let existing = keys.list().await?.into_iter().find(|k| k.name == "orders" && k.revoked_at.is_none());
                Ok::<_, dermis_events::EventsError>(match existing {
                    Some(k) => k.id,
                    None => keys.create("orders").await?.0.id,
                })
            })
            .await;
        let key = match key {
            Ok(k) => k.clone(),
            Err(e) => {
                tracing::warn!(error = %e, order = %order.id, "no write key for order events");
                return;
            }
        };
        let products: Vec<Value> = order
            .lines
            .iter()
            .map(|l| {
                json!({"product_id": l.product_id, "sku": l.sku_id, "quantity": l.quantity,
                    "price": l.unit_price_minor as f64 / 100.0})
            })
            .collect();
        let body = json!({"batch": [{
            "type": "track", "userId": customer, "event": "Order Completed",
            "messageId": format!("order-completed:{}", order.id),
            "properties": {"order_id": order.id, "channel": order.channel, "total": order.total_minor as f64 / 100.0,
                "currency": order.currency, "products": products},
        }]});
        match purchases.ingestor.ingest_as(key, None, body).await {
            Ok(r) if r.success => {}
            Ok(r) => tracing::warn!(order = %order.id, rejected = ?r.rejected, "order event rejected"),
            Err(e) => tracing::warn!(error = %e, order = %order.id, "order event not ingested"),
        }
    }

    // ---- personal data ---------------------------------------------------------------------------

    /// Every order and cart of a customer known by any of `ids`.
    pub async fn of_customer(&self, ids: &[&str]) -> Result<(Vec<Order>, Vec<Cart>), OrdersError> {
        let (mut orders, mut carts) = (Vec::new(), Vec::new());
        for id in ids {
            orders.extend(store::orders_of(self.db.reader(), id).await?);
            carts.extend(store::carts_of(self.db.reader(), id).await?);
        }
        Ok((orders, carts))
    }

    /// Removes a customer known by any of `ids` from their orders and carts: the orders keep
    /// their lines, amounts and channel, not the person. Idempotent; rows changed.
    /// On SQLite the rows' old bytes are zeroed (`secure_delete`) and the WAL checkpointed, so
    /// the id is not left in the files either.
    pub async fn forget_customer(&self, ids: &[&str]) -> Result<u64, OrdersError> {
        let mut tx = self.db.begin().await?;
        Db::secure_deletes(&mut tx, self.db.backend(), true).await?;
        let mut changed = 0;
        for id in ids {
            changed += store::forget_customer(&mut tx, id, self.clock.now_ms()).await?;
        }
        Db::secure_deletes(&mut tx, self.db.backend(), false).await?;
        tx.commit().await?;
        if changed > 0 && !self.db.scrub(&["orders", "carts"]).await? {
            tracing::warn!(
                "the WAL was busy: an erased customer's old order rows stay in it until the next checkpoint"
            );
        }
        Ok(changed)
    }
}

fn expired(order: &Order) -> OrdersError {
    OrdersError::WrongState(format!("order {} expired: its hold ended before it was paid", order.id))
}

/// Whether a new payment callback's amount fits the order and the callbacks before it (`prior`):
/// an authorization or a capture is for the order's total in its currency, and only one capture
/// is taken; refunds never add up to more than was captured. A failure carries no money to check.
///
/// Refusing, rather than recording and flagging, is deliberate: the callback comes from the
/// shop's payment adapter, and an amount that is not the order's means the payment was made for
/// another basket (lines changed after the payment session was created), converted wrongly
/// (minor units, currency) or tampered with. Placing the order would ship goods for money that was
/// not taken; recording it would show the order as paid. The 422 names the field, so the adapter
/// can void or refund at the provider, and the hold still expires by itself if nothing else comes.
pub fn check_amount(order: &Order, prior: &[crate::model::Payment], payment: &NewPayment) -> Result<(), OrdersError> {
    if payment.event == PaymentEvent::Failed {
        return Ok(());
    }
    if payment.currency != order.currency {
        return Err(OrdersError::invalid(
            "currency",
            format!(
                "the order is in {}, the {} payment in {}",
                order.currency,
                payment.event.as_str(),
                payment.currency
            ),
        ));
    }
    let sum = |event: PaymentEvent| -> i64 {
        prior.iter().filter(|p| p.event == event).map(|p| p.amount_minor).fold(0, i64::saturating_add)
    };
    let captured = sum(PaymentEvent::Captured);
    match payment.event {
        PaymentEvent::Authorized | PaymentEvent::Captured if payment.amount_minor != order.total_minor => {
            Err(OrdersError::invalid(
                "amount_minor",
                format!(
                    "the order's total is {} {}, the {} payment is for {}",
                    order.total_minor,
                    order.currency,
                    payment.event.as_str(),
                    payment.amount_minor
                ),
            ))
        }
        PaymentEvent::Captured if captured > 0 => Err(OrdersError::invalid(
            "amount_minor",
            format!("the order's total was captured already ({captured} {}): this would take it twice", order.currency),
        )),
        PaymentEvent::Refunded if sum(PaymentEvent::Refunded).saturating_add(payment.amount_minor) > captured => {
            let refunded = sum(PaymentEvent::Refunded);
            Err(OrdersError::invalid(
                "amount_minor",
                format!(
                    "a refund of {} would take the refunds past what was captured ({captured} {}, {refunded} refunded)",
                    payment.amount_minor, order.currency
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// A payment status's precedence: a later callback of lower rank does not undo a higher one.
fn payment_rank(status: &str) -> u8 {
    match status {
        "failed" => 1,
        "authorized" => 2,
        "captured" => 3,
        "refunded" => 4,
        _ => 0,
    }
}

/// The order status a reservation and the units returned so far imply.
fn settled(r: &Reservation, returned: i64) -> OrderStatus {
    match r.status {
        ReservationStatus::Held | ReservationStatus::Expired => OrderStatus::Checkout,
        ReservationStatus::Released => OrderStatus::Cancelled,
        ReservationStatus::Confirmed | ReservationStatus::Fulfilled => {
            let shipped = r.shipped();
            if returned > 0 {
                if returned >= shipped && r.committed() == 0 {
                    OrderStatus::Returned
                } else {
                    OrderStatus::PartiallyReturned
                }
            } else if r.status == ReservationStatus::Fulfilled {
                OrderStatus::Fulfilled
            } else if shipped > 0 {
                OrderStatus::PartiallyFulfilled
            } else {
                OrderStatus::Placed
            }
        }
    }
}

fn ledger_lines(lines: &[OrderLine]) -> Vec<Line> {
    lines.iter().map(|l| Line::new(SkuId::new(l.sku_id.as_str()), l.quantity)).collect()
}

/// Sum of the lines and their currency (`EUR` for no lines).
fn totals(lines: &[OrderLine]) -> (i64, String) {
    let total = lines.iter().map(|l| l.unit_price_minor.saturating_mul(l.quantity)).fold(0_i64, i64::saturating_add);
    (total, lines.first().map_or_else(|| "EUR".to_owned(), |l| l.currency.clone()))
}

/// The units an outcome moved out of (or into) the accounts `side` picks, per SKU, location
/// and lot.
fn units_moved(outcome: &Outcome, side: impl Fn(&Account) -> Option<LocationId>) -> Vec<UnitsMoved> {
    let mut units: BTreeMap<(String, String, Option<String>), i64> = BTreeMap::new();
    for m in &outcome.movements {
        let location = side(&m.from).or_else(|| side(&m.to));
        if let Some(location) = location {
            let lot = m.lot.as_ref().map(|l| l.to_string());
            *units.entry((m.sku.to_string(), location.to_string(), lot)).or_insert(0) += m.quantity;
        }
    }
    units
        .into_iter()
        .map(|((sku_id, location_id, lot), quantity)| UnitsMoved { sku_id, location_id, lot, quantity })
        .collect()
}

#[cfg(test)]
mod tests {
    use dermis_inventory::{Allocation, ComponentAllocation, LotCode, ReservationLine};

    use super::*;

    fn reservation(status: ReservationStatus, held: i64, committed: i64, shipped: i64) -> Reservation {
        let allocation =
            Allocation { location: LocationId::new("loc_a"), lot: LotCode::new("L1"), held, committed, shipped };
        Reservation {
            id: ReservationId::new("res_1"),
            channel: Channel::Web,
            reference: Reference::Order("ord_1".into()),
            customer_id: None,
            created_at_ms: 0,
            expires_at_ms: 1_000,
            status,
            lines: vec![ReservationLine {
                sku: SkuId::new("sku_1"),
                quantity: 3,
                components: vec![ComponentAllocation {
                    sku: SkuId::new("sku_1"),
                    per_unit: 1,
                    short: 0,
                    allocations: vec![allocation],
                }],
            }],
        }
    }

    #[test]
    fn an_orders_status_follows_its_reservation_and_its_returns() {
        use ReservationStatus as R;
        let cases = [
            (R::Held, (3, 0, 0), 0, OrderStatus::Checkout),
            (R::Expired, (0, 0, 0), 0, OrderStatus::Checkout),
            (R::Confirmed, (0, 3, 0), 0, OrderStatus::Placed),
            (R::Confirmed, (0, 1, 2), 0, OrderStatus::PartiallyFulfilled),
            (R::Fulfilled, (0, 0, 3), 0, OrderStatus::Fulfilled),
            (R::Fulfilled, (0, 0, 3), 1, OrderStatus::PartiallyReturned),
            (R::Fulfilled, (0, 0, 3), 3, OrderStatus::Returned),
            (R::Confirmed, (0, 1, 2), 2, OrderStatus::PartiallyReturned),
            (R::Released, (0, 0, 0), 0, OrderStatus::Cancelled),
        ];
        for (status, (held, committed, shipped), returned, expected) in cases {
            let r = reservation(status, held, committed, shipped);
            assert_eq!(settled(&r, returned), expected, "{status:?} {held}/{committed}/{shipped}, {returned} back");
        }
    }

    #[test]
    fn a_late_callback_of_lower_rank_does_not_undo_a_payment() {
        assert!(payment_rank("captured") > payment_rank("authorized"));
        assert!(payment_rank("authorized") > payment_rank("failed"));
        assert!(payment_rank("refunded") > payment_rank("captured"));
        assert_eq!(payment_rank("none"), 0);
    }

    #[test]
    fn a_payment_must_be_for_the_orders_total_and_refunds_stay_within_the_capture() {
        let order = Order {
            id: "ord_1".into(),
            stored_status: OrderStatus::Checkout,
            channel: "web".into(),
            external_id: None,
            cart_id: None,
            customer_id: None,
            location_id: None,
            reservation_id: "res_1".into(),
            lines: Vec::new(),
            total_minor: 5000,
            currency: "EUR".into(),
            payment_status: "none".into(),
            expires_at_ms: 0,
            created_at_ms: 0,
            updated_at_ms: 0,
            version: 1,
        };
        let new = |event, amount_minor, currency: &str| NewPayment {
            event,
            provider_reference: "psp".into(),
            amount_minor,
            currency: currency.into(),
        };
        let recorded = |event, amount_minor| crate::model::Payment {
            event,
            provider_reference: "psp".into(),
            amount_minor,
            currency: "EUR".into(),
            received_at: String::new(),
        };
        let field = |r: Result<(), OrdersError>| match r {
            Err(OrdersError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        use PaymentEvent::*;
        for event in [Authorized, Captured] {
            assert!(check_amount(&order, &[], &new(event, 5000, "EUR")).is_ok());
            assert_eq!(field(check_amount(&order, &[], &new(event, 4999, "EUR"))), "amount_minor");
            assert_eq!(field(check_amount(&order, &[], &new(event, 5001, "EUR"))), "amount_minor");
            assert_eq!(field(check_amount(&order, &[], &new(event, 5000, "SEK"))), "currency");
        }
        // A failure carries no money to check.
        assert!(check_amount(&order, &[], &new(Failed, 1, "SEK")).is_ok());
        // Nothing captured: nothing to refund (an authorization is voided at the provider).
        assert_eq!(
            field(check_amount(&order, &[recorded(Authorized, 5000)], &new(Refunded, 1, "EUR"))),
            "amount_minor"
        );
        let captured = [recorded(Authorized, 5000), recorded(Captured, 5000)];
        assert_eq!(field(check_amount(&order, &captured, &new(Captured, 5000, "EUR"))), "amount_minor");
        assert!(check_amount(&order, &captured, &new(Refunded, 5000, "EUR")).is_ok());
        assert_eq!(field(check_amount(&order, &captured, &new(Refunded, 5001, "EUR"))), "amount_minor");
        assert_eq!(field(check_amount(&order, &captured, &new(Refunded, 10, "USD"))), "currency");
        let part = [recorded(Captured, 5000), recorded(Refunded, 3000)];
        assert!(check_amount(&order, &part, &new(Refunded, 2000, "EUR")).is_ok());
        assert_eq!(field(check_amount(&order, &part, &new(Refunded, 2001, "EUR"))), "amount_minor");
    }

    #[test]
    fn totals_sum_the_lines_in_their_currency() {
        let line = |sku: &str, quantity, price| OrderLine {
            sku_id: sku.into(),
            product_id: "p".into(),
            quantity,
            unit_price_minor: price,
            currency: "SEK".into(),
        };
        assert_eq!(totals(&[line("a", 2, 1250), line("b", 1, 99)]), (2599, "SEK".to_owned()));
        assert_eq!(totals(&[]), (0, "EUR".to_owned()));
    }
}
