//! HTTP of the orders domain: carts (`/v1/carts...`), orders (`/v1/orders...`): checkout,
//! payment callbacks, POS and marketplace orders, fulfillment, returns, cancellation. Handlers
//! translate; [`Orders`] decides; every error is a problem+json through [`OrdersError`].
//!
//! Who may call: carts, checkout, reading and cancelling orders: `admin`, `service`,
//! `store_associate`, or a `customer` for their own (another customer's carts and orders are
//! 404 to them); payment callbacks: `admin` or `service`; POS and marketplace orders,
//! fulfillments and returns: `admin`, `service` or a `store_associate` of that store.
//!
//! Payment callbacks carry no card data: the body's fields are exactly `event`,
//! `provider_reference`, `amount_minor` and `currency`, and a body with any other field (such as
//! `card_number`) is refused with a 422 before anything is read or stored.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode};
use dermis_auth::{Auth, Authenticator, Principal, Role};
use dermis_core::problem::ProblemBody;
use dermis_core::{ApiJson, ApiPath, ApiQuery, Cursor, IdempotencyKey, Page, Problem, ProblemKind};
use dermis_inventory::LocationId;
use dermis_store::idempotency::request_hash;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::OrdersError;
use crate::input::{self, CartBody, CheckoutBody, ExternalOrderBody, FulfillmentBody, Idempotent, LinesBody};
use crate::input::{ListQuery, NewCart, NewExternalOrder, PaymentBody, ReturnBody};
use crate::model::{Cart, Order};
use crate::service::Orders;
use crate::view::{CartView, OrderSummary, OrderView, cart_view, order_summary, order_view};

dermis_auth::role_policy!(
    /// Who may fill carts, check out, read and cancel orders.
    Shoppers, "admin, service, store_associate or a customer for their own", [Admin, Service, StoreAssociate, Customer]
);
dermis_auth::role_policy!(
    /// Who may report payments.
    PaymentProviders, "admin or service (the payment provider's callback)", [Admin, Service]
);
dermis_auth::role_policy!(
    /// Who may take POS and marketplace orders, ship and book returns.
    OrderKeepers, "admin, service or a store_associate of that store", [Admin, Service, StoreAssociate]
);

/// What the routes share.
#[derive(Clone)]
pub struct OrdersState {
    /// The service.
    pub orders: Orders,
    /// Authenticates callers.
    pub auth: Arc<Authenticator>,
}

impl std::fmt::Debug for OrdersState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrdersState").field("orders", &self.orders).finish_non_exhaustive()
    }
}

impl FromRef<OrdersState> for Arc<Authenticator> {
    fn from_ref(s: &OrdersState) -> Self {
        s.auth.clone()
    }
}

/// The routes.
pub fn router() -> OpenApiRouter<OrdersState> {
    OpenApiRouter::new()
        .routes(routes!(create_cart))
        .routes(routes!(get_cart))
        .routes(routes!(replace_lines))
        .routes(routes!(checkout))
        .routes(routes!(create_order, list_orders))
        .routes(routes!(get_order))
        .routes(routes!(payment))
        .routes(routes!(fulfill))
        .routes(routes!(take_back))
        .routes(routes!(cancel))
}

fn created(done: bool) -> StatusCode {
    if done { StatusCode::CREATED } else { StatusCode::OK }
}

/// The customer a request is for: a customer only ever for themselves.
fn customer_for(who: &Principal, named: Option<String>) -> Result<Option<String>, Problem> {
    let named = input::customer_id(named)?;
    match (who.customer_id(), named) {
        (Some(me), Some(other)) if me != other => {
            Err(Problem::new(ProblemKind::Forbidden, "a customer acts only for themselves"))
        }
        (Some(me), _) => Ok(Some(me.to_owned())),
        (None, named) => Ok(named),
    }
}

/// Who the ledger records as having asked: a customer only as `customer` (the ledger keeps its
/// journal forever, and an erased customer's id must not stay in it).
fn actor(who: &Principal) -> String {
    if who.role == Role::Customer { "customer".to_owned() } else { who.subject.clone() }
}

fn location(s: &OrdersState, raw: &str) -> Result<LocationId, Problem> {
    s.orders
        .location(raw)
        .ok_or_else(|| OrdersError::invalid("location_id", format!("unknown location {raw:?}")).into())
}

/// A store associate acts only at their own store.
fn check_store(s: &OrdersState, who: &Principal, location: Option<&LocationId>) -> Result<(), Problem> {
    if who.role != Role::StoreAssociate {
        return Ok(());
    }
    let store = who.store_id.as_deref().unwrap_or_default();
    let ok = location.is_some_and(|l| l.as_str() == store || s.orders.location_code(l).as_deref() == Some(store));
    if ok {
        Ok(())
    } else {
        Err(Problem::new(ProblemKind::Forbidden, format!("a store associate of {store} acts only at that store")))
    }
}

async fn visible_cart(s: &OrdersState, who: &Principal, id: &str) -> Result<Cart, Problem> {
    let cart = s.orders.cart(id).await?.ok_or_else(|| OrdersError::CartNotFound(id.to_owned()))?;
    if let Some(me) = who.customer_id()
        && cart.customer_id.as_deref() != Some(me)
    {
        return Err(OrdersError::CartNotFound(id.to_owned()).into());
    }
    Ok(cart)
}

async fn visible_order(s: &OrdersState, who: &Principal, id: &str) -> Result<Order, Problem> {
    let order = s.orders.order(id).await?.ok_or_else(|| OrdersError::OrderNotFound(id.to_owned()))?;
    if let Some(me) = who.customer_id()
        && order.customer_id.as_deref() != Some(me)
    {
        return Err(OrdersError::OrderNotFound(id.to_owned()).into());
    }
    Ok(order)
}

async fn view(s: &OrdersState, order: &Order) -> Result<Json<OrderView>, Problem> {
    Ok(Json(order_view(&s.orders, order).await?))
}

// ---- carts ---------------------------------------------------------------------------------------

/// Starts a cart. Its lines are priced from the catalog; no stock is held until checkout.
#[utoipa::path(post, path = "/v1/carts", tag = "orders", request_body = CartBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retry safe: the same cart is answered")),
    responses((status = 201, body = CartView), (status = 200, description = "a retry", body = CartView),
        (status = 403, description = "a customer naming another customer", body = ProblemBody),
        (status = 422, description = "invalid lines, channel, location or customer; an Idempotency-Key reused for another request", body = ProblemBody)),
    security(("bearer" = [])))]
async fn create_cart(
    Auth(who, ..): Auth<Shoppers>,
    State(s): State<OrdersState>,
    key: Option<IdempotencyKey>,
    ApiJson(body): ApiJson<CartBody>,
) -> Result<(StatusCode, Json<CartView>), Problem> {
    let hash = request_hash(&serde_json::to_vec(&body).unwrap_or_default());
    let channel = input::channel(&body.channel)?;
    let customer_id = customer_for(&who, body.customer_id)?;
    let location_id = body.location_id.as_deref().map(|l| location(&s, l)).transpose()?;
    let idem =
        key.map(|key| Idempotent { scope: format!("orders.create_cart:{}", who.subject), key, request_hash: hash });
    let new = NewCart { channel, customer_id, location_id, lines: body.lines };
    let done = s.orders.create_cart(new, idem).await?;
    Ok((created(done.created), Json(cart_view(&done.value))))
}

/// A cart.
#[utoipa::path(get, path = "/v1/carts/{id}", tag = "orders", params(("id" = String, Path)),
    responses((status = 200, body = CartView), (status = 404, description = "no such cart (or not the customer's)", body = ProblemBody),
        (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn get_cart(
    Auth(who, ..): Auth<Shoppers>,
    State(s): State<OrdersState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CartView>, Problem> {
    Ok(Json(cart_view(&visible_cart(&s, &who, &id).await?)))
}

/// Replaces an open cart's lines.
#[utoipa::path(put, path = "/v1/carts/{id}/lines", tag = "orders", params(("id" = String, Path)),
    request_body = LinesBody,
    responses((status = 200, body = CartView), (status = 404, body = ProblemBody),
        (status = 409, description = "the cart was checked out", body = ProblemBody),
        (status = 422, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn replace_lines(
    Auth(who, ..): Auth<Shoppers>,
    State(s): State<OrdersState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<LinesBody>,
) -> Result<Json<CartView>, Problem> {
    let cart = visible_cart(&s, &who, &id).await?;
    Ok(Json(cart_view(&s.orders.replace_lines(cart, &body.lines).await?)))
}

/// Checks a cart out: holds every line in the inventory ledger (all or none, until the hold's
/// deadline: the channel's hold TTL or `ttl_seconds`) and answers the order, in `checkout` with
/// its reservation. Unpaid, the hold expires by itself and the order reads as `expired`. A cart
/// checked out before answers its order (200).
#[utoipa::path(post, path = "/v1/carts/{id}/checkout", tag = "orders", params(("id" = String, Path)),
    request_body(content = CheckoutBody, description = "optional: the hold's time to live"),
    responses((status = 201, body = OrderView), (status = 200, description = "checked out before", body = OrderView),
        (status = 404, body = ProblemBody),
        (status = 409, description = "not enough stock (`errors` names the short lines; the cart stays open), or the cart changed meanwhile", body = ProblemBody),
        (status = 422, description = "an empty cart, a bad `ttl_seconds`, a location not selling on the channel", body = ProblemBody),
        (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn checkout(
    Auth(who, ..): Auth<Shoppers>,
    State(s): State<OrdersState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<OrderView>), Problem> {
    let body: CheckoutBody = dermis_core::extract::optional_json(&headers, &body)?;
    let cart = visible_cart(&s, &who, &id).await?;
    let done = s.orders.checkout(cart, body.ttl_seconds, &actor(&who)).await?;
    Ok((created(done.created), view(&s, &done.value).await?))
}

// ---- orders --------------------------------------------------------------------------------------

/// Takes a POS or marketplace order: placed at once (its units held and committed in the
/// ledger). Once per `(channel, external_id)`: the same again answers the same order (200).
#[utoipa::path(post, path = "/v1/orders", tag = "orders", request_body = ExternalOrderBody,
    responses((status = 201, body = OrderView), (status = 200, description = "the same order again", body = OrderView),
        (status = 403, description = "a store associate of another store", body = ProblemBody),
        (status = 409, description = "not enough stock (naming the lines), or the external id names an order with other lines", body = ProblemBody),
        (status = 422, body = ProblemBody)),
    security(("bearer" = [])))]
async fn create_order(
    Auth(who, ..): Auth<OrderKeepers>,
    State(s): State<OrdersState>,
    ApiJson(body): ApiJson<ExternalOrderBody>,
) -> Result<(StatusCode, Json<OrderView>), Problem> {
    let channel = input::channel(&body.channel)?;
    let external_id = input::external_id(body.external_id)?;
    let customer_id = input::customer_id(body.customer_id)?;
    let location_id = body.location_id.as_deref().map(|l| location(&s, l)).transpose()?;
    check_store(&s, &who, location_id.as_ref())?;
    let new = NewExternalOrder { channel, external_id, lines: body.lines, location_id, customer_id };
    let done = s.orders.place_external(new, &actor(&who)).await?;
    Ok((created(done.created), view(&s, &done.value).await?))
}

/// Orders, newest last, a page at a time: a customer's own, or (staff) one customer's or all.
#[utoipa::path(get, path = "/v1/orders", tag = "orders", params(ListQuery),
    responses((status = 200, body = Page<OrderSummary>),
        (status = 403, description = "a customer naming another customer", body = ProblemBody),
        (status = 422, description = "an invalid cursor or customer id", body = ProblemBody)),
    security(("bearer" = [])))]
async fn list_orders(
    Auth(who, ..): Auth<Shoppers>,
    State(s): State<OrdersState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Page<OrderSummary>>, Problem> {
    let customer = customer_for(&who, q.customer_id)?;
    let after = q.cursor.as_deref().map(Cursor::parse).transpose()?;
    let limit = q.limit.unwrap_or_default();
    let rows = s.orders.list(customer.as_deref(), after.as_ref().map(|c| c.0.as_str()), limit.get() + 1).await?;
    let page = Page::from_rows(rows, limit, |o| o.id.clone());
    Ok(Json(Page {
        items: page.items.iter().map(|o| order_summary(&s.orders, o)).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// An order, with its reservation, payments, shipments and returns.
#[utoipa::path(get, path = "/v1/orders/{id}", tag = "orders", params(("id" = String, Path)),
    responses((status = 200, body = OrderView), (status = 404, description = "no such order (or not the customer's)", body = ProblemBody),
        (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn get_order(
    Auth(who, ..): Auth<Shoppers>,
    State(s): State<OrdersState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<OrderView>, Problem> {
    let order = visible_order(&s, &who, &id).await?;
    view(&s, &order).await
}

/// The payment provider's callback. `authorized` or `captured` places a checkout (its units
/// become committed), `failed` cancels it (its units go back); `refunded` is recorded. Recorded
/// once per `(order, provider_reference, event)`: a repeated callback changes nothing. An
/// authorization or capture for another amount or currency than the order's total, a second
/// capture, or refunds past what was captured are refused with a 422 naming the field, and
/// nothing is recorded. The body has exactly these four fields: any other (a card number, a CVC)
/// is refused with a 422, so no card data is ever read or stored.
#[utoipa::path(post, path = "/v1/orders/{id}/payments", tag = "orders", params(("id" = String, Path)),
    request_body = PaymentBody,
    responses((status = 200, body = OrderView), (status = 404, body = ProblemBody),
        (status = 409, description = "the order's state does not allow it (an authorization after the hold expired, after a cancellation: recorded, the order not revived)", body = ProblemBody),
        (status = 422, description = "an invalid field; an amount or currency other than the order's total (`amount_minor`, `currency`), a second capture, a refund past what was captured, a repeat with another amount; or a field that is not one of the four (card data)", body = ProblemBody),
        (status = 403, description = "admin or service only", body = ProblemBody)),
    security(("bearer" = [])))]
async fn payment(
    Auth(who, ..): Auth<PaymentProviders>,
    State(s): State<OrdersState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<PaymentBody>,
) -> Result<Json<OrderView>, Problem> {
    let payment = body.parse()?;
    let order = visible_order(&s, &who, &id).await?;
    let order = s.orders.record_payment(order, payment, &actor(&who)).await?;
    view(&s, &order).await
}

/// Ships a placed order's committed units: all, or those at `location_id` (an order allocated
/// across locations ships in parts). The same shipment asked again answers the same (200).
#[utoipa::path(post, path = "/v1/orders/{id}/fulfillments", tag = "orders", params(("id" = String, Path)),
    request_body(content = FulfillmentBody, description = "optional: ship from one location only"),
    responses((status = 201, body = OrderView), (status = 200, description = "shipped before", body = OrderView),
        (status = 404, body = ProblemBody),
        (status = 409, description = "not placed, or nothing committed there", body = ProblemBody),
        (status = 422, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn fulfill(
    Auth(who, ..): Auth<OrderKeepers>,
    State(s): State<OrdersState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<OrderView>), Problem> {
    let body: FulfillmentBody = dermis_core::extract::optional_json(&headers, &body)?;
    let location_id = body.location_id.as_deref().map(|l| location(&s, l)).transpose()?;
    check_store(&s, &who, location_id.as_ref())?;
    let order = visible_order(&s, &who, &id).await?;
    let done = s.orders.fulfill(order, location_id, &actor(&who)).await?;
    Ok((created(done.created), view(&s, &done.value).await?))
}

/// Books units of a shipped order that came back at a location: they go into quarantine (then
/// restock or write off through the inventory). The same body again is the same return (200);
/// a second, identical return needs its own `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/orders/{id}/returns", tag = "orders", params(("id" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "names the return: the same key is the same return")),
    request_body = ReturnBody,
    responses((status = 201, body = OrderView), (status = 200, description = "booked before", body = OrderView),
        (status = 404, body = ProblemBody),
        (status = 409, description = "nothing shipped yet, or more than was shipped", body = ProblemBody),
        (status = 422, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn take_back(
    Auth(who, ..): Auth<OrderKeepers>,
    State(s): State<OrdersState>,
    ApiPath(id): ApiPath<String>,
    key: Option<IdempotencyKey>,
    ApiJson(body): ApiJson<ReturnBody>,
) -> Result<(StatusCode, Json<OrderView>), Problem> {
    let location_id = location(&s, &body.location_id)?;
    check_store(&s, &who, Some(&location_id))?;
    if body.lines.is_empty() {
        return Err(OrdersError::invalid("lines", "at least one line is needed").into());
    }
    let digest = match &key {
        Some(k) => request_hash(format!("key:{}", k.as_str()).as_bytes()),
        None => request_hash(&serde_json::to_vec(&body).unwrap_or_default()),
    };
    let order = visible_order(&s, &who, &id).await?;
    let done = s.orders.take_back(order, location_id, &body.lines, &digest[..32], &actor(&who)).await?;
    Ok((created(done.created), view(&s, &done.value).await?))
}

/// Cancels a checkout or a placed order: its units go back on hand. Cancelling again answers
/// the same; a shipped order is not cancelled (409: book a return).
#[utoipa::path(post, path = "/v1/orders/{id}/cancel", tag = "orders", params(("id" = String, Path)),
    responses((status = 200, body = OrderView), (status = 404, body = ProblemBody),
        (status = 409, description = "shipped or expired", body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn cancel(
    Auth(who, ..): Auth<Shoppers>,
    State(s): State<OrdersState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<OrderView>, Problem> {
    let order = visible_order(&s, &who, &id).await?;
    let order = s.orders.cancel(order, &actor(&who)).await?;
    view(&s, &order).await
}
