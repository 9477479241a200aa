//! Requests, and their parsing into validated values ("parse, don't validate"): bodies as the
//! API reads them (strict: unknown fields are refused) and what the service takes.

use dermis_inventory::{Channel, LocationId};
use dermis_store::idempotency::IdempotencyKey;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::OrdersError;
use crate::model::PaymentEvent;

/// A line asked for: a SKU (id or code) and units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineRequest {
    /// The catalog's SKU id or SKU code.
    pub sku_id: String,
    /// Units; must be positive.
    pub quantity: i64,
}

/// `POST /v1/carts`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CartBody {
    /// `web`, `app`, `pos` or `marketplace:NAME`.
    pub channel: String,
    /// The customer (a customer's own carts are always theirs).
    pub customer_id: Option<String>,
    /// A location to take stock from first (a pickup store), id or code.
    pub location_id: Option<String>,
    /// The lines (may be empty; a checkout needs one).
    pub lines: Vec<LineRequest>,
}

/// `PUT /v1/carts/{id}/lines`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinesBody {
    /// The cart's new lines, replacing all of them.
    pub lines: Vec<LineRequest>,
}

/// `POST /v1/carts/{id}/checkout` (the body is optional).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutBody {
    /// How long to hold the stock for payment (default: the channel's hold TTL).
    pub ttl_seconds: Option<u64>,
}

/// `POST /v1/orders`: an order taken at a till or on a marketplace.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExternalOrderBody {
    /// `pos`, `marketplace:NAME` (or any channel).
    pub channel: String,
    /// The channel's id for the order (receipt number, marketplace order id): once per channel.
    pub external_id: String,
    /// The lines (at least one).
    pub lines: Vec<LineRequest>,
    /// The store or node it was taken at (id or code); stock is taken there first.
    pub location_id: Option<String>,
    /// The customer, when known.
    pub customer_id: Option<String>,
}

/// `POST /v1/orders/{id}/payments`: a payment provider's callback. Only these fields are read;
/// any other (a card number, a CVC ...) makes the request a 422, so no card data can be sent or
/// stored.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentBody {
    /// `authorized`, `captured`, `failed` or `refunded`.
    pub event: PaymentEvent,
    /// The provider's id of the payment.
    pub provider_reference: String,
    /// Amount, in minor units.
    pub amount_minor: i64,
    /// ISO 4217 currency, upper case.
    pub currency: String,
}

/// `POST /v1/orders/{id}/fulfillments` (the body is optional).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FulfillmentBody {
    /// Ship only what is committed at this location (id or code); absent ships everything.
    pub location_id: Option<String>,
}

/// `POST /v1/orders/{id}/returns`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnBody {
    /// Where the units came back (id or code).
    pub location_id: String,
    /// What came back.
    pub lines: Vec<LineRequest>,
}

/// `GET /v1/orders`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this customer's orders (a customer always sees only their own).
    pub customer_id: Option<String>,
    /// Page size, 1–500 (default 50).
    #[param(value_type = Option<u32>)]
    pub limit: Option<dermis_core::Limit>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A validated new cart.
#[derive(Debug, Clone)]
pub struct NewCart {
    /// The channel.
    pub channel: Channel,
    /// The customer.
    pub customer_id: Option<String>,
    /// The preferred location.
    pub location_id: Option<LocationId>,
    /// Lines as asked (the service resolves and prices them).
    pub lines: Vec<LineRequest>,
}

/// A validated POS or marketplace order.
#[derive(Debug, Clone)]
pub struct NewExternalOrder {
    /// The channel.
    pub channel: Channel,
    /// The channel's id for it.
    pub external_id: String,
    /// Lines as asked.
    pub lines: Vec<LineRequest>,
    /// Where it was taken.
    pub location_id: Option<LocationId>,
    /// The customer.
    pub customer_id: Option<String>,
}

/// A validated payment callback.
#[derive(Debug, Clone)]
pub struct NewPayment {
    /// What happened.
    pub event: PaymentEvent,
    /// The provider's id.
    pub provider_reference: String,
    /// Amount, in minor units.
    pub amount_minor: i64,
    /// Currency.
    pub currency: String,
}

/// An `Idempotency-Key` with its scope and the request's digest.
#[derive(Debug, Clone)]
pub struct Idempotent {
    /// Operation and caller.
    pub scope: String,
    /// The key.
    pub key: IdempotencyKey,
    /// Digest of the request.
    pub request_hash: String,
}

/// A channel name.
pub fn channel(raw: &str) -> Result<Channel, OrdersError> {
    raw.parse().map_err(|e: dermis_inventory::model::ParseChannelError| OrdersError::invalid("channel", e.to_string()))
}

/// A customer id as given: 1 to 128 characters.
pub fn customer_id(raw: Option<String>) -> Result<Option<String>, OrdersError> {
    match raw {
        Some(c) if c.is_empty() || c.len() > 128 => {
            Err(OrdersError::invalid("customer_id", "must be 1 to 128 characters"))
        }
        other => Ok(other),
    }
}

/// An external id: 1 to 128 characters.
pub fn external_id(raw: String) -> Result<String, OrdersError> {
    if raw.is_empty() || raw.len() > 128 {
        return Err(OrdersError::invalid("external_id", "must be 1 to 128 characters"));
    }
    Ok(raw)
}

impl PaymentBody {
    /// The validated callback.
    pub fn parse(self) -> Result<NewPayment, OrdersError> {
        if self.provider_reference.is_empty() || self.provider_reference.len() > 128 {
            return Err(OrdersError::invalid("provider_reference", "must be 1 to 128 characters"));
        }
        if self.amount_minor < 0 {
            return Err(OrdersError::invalid("amount_minor", "must not be negative"));
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(OrdersError::invalid("currency", "must be an ISO 4217 code in upper case, such as EUR"));
        }
        Ok(NewPayment {
            event: self.event,
            provider_reference: self.provider_reference,
            amount_minor: self.amount_minor,
            currency: self.currency,
        })
    }
}
