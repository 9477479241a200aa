//! HTTP of the inventory: locations and channels, receipts, reservations (cart holds), stock by
//! SKU and near a customer, reports (low stock, expiring lots, a lot's recall), transfers,
//! adjustments, returns and a store POS's offline sync. Handlers translate bodies into ledger
//! [`Command`]s and [`Rejection`]s into problems; [`Inventory`] decides.
//!
//! `sku_id` accepts the catalog's SKU id or its SKU code; the answer names the SKU id.
//!
//! Who may call: reads of stock, any role but `dermatologist`; reservations, `admin`,
//! `service`, `store_associate` or a `customer` (for themselves); stock movements (receipts,
//! transfers, adjustments, returns, POS sync), `admin`, `service` or a `store_associate` of that
//! store; locations, channels and kits, `admin` or `service`.
//!
//! Retries: a request with an `Idempotency-Key` header is applied once; a retry answers what the
//! first one did (for a reservation, the same hold and deadline). Without the header a retried
//! receipt would be booked twice, so stock movements should send one.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use dermis_auth::{Auth, Authenticator, Principal, Role};
use dermis_core::clock::{SharedClock, rfc3339};
use dermis_core::problem::ProblemBody;
use dermis_core::{ApiJson, ApiPath, ApiQuery, FieldError, IdempotencyKey as HttpKey, Problem, ProblemKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::command::{AdjustKind, Command, Effect, Line, LotLine, Outcome, ReceiptLine, Rejection, Request};
use crate::directory::{LookupError, SkuDirectory};
use crate::error::InventoryError;
use crate::model::{
    Channel, ChannelPolicy, EpochDay, Kit, KitComponent, Location, LocationDetails, LocationId, LocationKind, Lot,
    LotCode, MS_PER_DAY, Quantity, Reference, ReservationId, Setup, SkuId, StockState, TransferId,
};
use crate::records::{Reservation, ReservationStatus};
use crate::service::Inventory;

pub mod internal;
mod locations;
mod movements;
mod reservations;
mod stock;
mod webhooks;

pub use locations::{
    ChannelSettings, CreatedLocation, LocationView, NearQuery, NearStore, NewKit, NewKitComponent, NewLocation,
};
pub use movements::{
    AdjustBody, Booked, InspectBody, LotBody, PosReceipt, PosSyncBody, PosSynced, PurchaseBody, ReceiptBody,
    ReceiptLineBody, ReturnBody, TransferBody,
};
pub use reservations::{
    AllocationView, ConfirmBody, ExtendBody, ReservationView, ReserveBody, ReservedLine, hold, reservation_view,
};
pub use stock::{
    ChannelLocationStock, ChannelStock, Expiring, ExpiringQuery, LocationStock, LowStock, LowStockQuery, StockView,
    stock_view,
};
pub use webhooks::{DeadLetterView, NewWebhook, WebhookView};

dermis_auth::role_policy!(
    /// Who may read stock.
    StockReaders, "any role but dermatologist", [Admin, Merchandiser, StoreAssociate, Analyst, Customer, Service]
);
dermis_auth::role_policy!(
    /// Who may hold stock for a cart.
    Reservers, "admin, service, store_associate or a customer for themselves", [Admin, Service, StoreAssociate, Customer]
);
dermis_auth::role_policy!(
    /// Who may move stock.
    StockKeepers, "admin, service or a store_associate of that store", [Admin, Service, StoreAssociate]
);
dermis_auth::role_policy!(
    /// Who may define locations, channels and kits.
    InventorySetup, "admin or service", [Admin, Service]
);

/// Cart holds: how long they last.
#[derive(Debug, Clone)]
pub struct HoldSettings {
    /// A hold's time to live when the request names none, per channel (`web`, `pos` ...);
    /// `default` for the others.
    pub ttl_secs: BTreeMap<String, u64>,
    /// The longest hold a request may ask for.
    pub max_ttl_secs: u64,
}

impl Default for HoldSettings {
    fn default() -> Self {
        Self { ttl_secs: BTreeMap::from([("default".to_owned(), 900), ("pos".to_owned(), 300)]), max_ttl_secs: 86_400 }
    }
}

impl HoldSettings {
    fn default_ttl(&self, channel: &Channel) -> u64 {
        let name = channel.to_string();
        self.ttl_secs.get(&name).or_else(|| self.ttl_secs.get("default")).copied().unwrap_or(900)
    }
}

/// What the routes share.
#[derive(Clone)]
pub struct InventoryState {
    /// The ledger.
    pub inventory: Inventory,
    /// The catalog's SKUs.
    pub skus: SkuDirectory,
    /// Authenticates callers.
    pub auth: Arc<Authenticator>,
    /// The clock.
    pub clock: SharedClock,
    /// Hold lifetimes.
    pub holds: HoldSettings,
    /// Webhook subscriptions.
    pub webhooks: crate::webhooks::Webhooks,
    /// Customers' keyed pseudonyms (the events domain's): the ledger's journal is append-only and
    /// is never erased, so it holds no customer id.
    pub pseudonyms: dermis_events::Pseudonyms,
}

impl std::fmt::Debug for InventoryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InventoryState").field("inventory", &self.inventory).finish_non_exhaustive()
    }
}

impl FromRef<InventoryState> for Arc<Authenticator> {
    fn from_ref(s: &InventoryState) -> Self {
        s.auth.clone()
    }
}

/// The routes.
pub fn router() -> OpenApiRouter<InventoryState> {
    OpenApiRouter::new()
        .merge(locations::router())
        .merge(movements::router())
        .merge(stock::router())
        .merge(reservations::router())
        .merge(webhooks::router())
        .route(crate::forward::PATH, internal::route())
}

// ---- errors -------------------------------------------------------------------------------

/// A ledger refusal as a problem: the request's content is wrong (422), the state does not
/// allow it (409), or what it names does not exist (404 for the path, 422 for the body).
pub fn problem(rejection: &Rejection) -> Problem {
    let detail = rejection.to_string();
    match rejection {
        Rejection::InvalidQuantity { .. } => Problem::validation(vec![FieldError::new("quantity", detail)]),
        Rejection::NoLines => Problem::validation(vec![FieldError::new("lines", detail)]),
        Rejection::DeadlineNotInFuture { .. } => Problem::validation(vec![FieldError::new("ttl_seconds", detail)]),
        Rejection::ExpiredLot { .. } => Problem::validation(vec![FieldError::new("lot.expires_on", detail)]),
        Rejection::LotForKit { .. } | Rejection::KitHasNoStock { .. } => {
            Problem::validation(vec![FieldError::new("sku_id", detail)])
        }
        Rejection::UnknownSku { .. } => Problem::validation(vec![FieldError::new("sku_id", detail)]),
        Rejection::UnknownLocation { .. } | Rejection::SameLocation { .. } => {
            Problem::validation(vec![FieldError::new("location_id", detail)])
        }
        Rejection::UnknownChannel { .. } | Rejection::LocationNotInChannel { .. } => {
            Problem::validation(vec![FieldError::new("channel", detail)])
        }
        Rejection::UnknownLot { .. } => Problem::validation(vec![FieldError::new("lot", detail)]),
        Rejection::UnknownPurchaseOrder { .. } => {
            Problem::validation(vec![FieldError::new("purchase_order_id", detail)])
        }
        Rejection::UnknownReservation { .. } | Rejection::UnknownTransfer { .. } => Problem::not_found(detail),
        Rejection::InsufficientStock { shortages } => {
            let mut p = Problem::conflict(format!(
                "not enough stock for {}",
                shortages
                    .iter()
                    .map(|s| format!("{} ({} requested, {} available)", s.sku, s.requested, s.available))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            p.errors = shortages
                .iter()
                .map(|s| {
                    FieldError::new(
                        format!("lines[sku_id={}]", s.sku),
                        format!("{} requested, {} available", s.requested, s.available),
                    )
                })
                .collect();
            p
        }
        Rejection::IdempotencyConflict { .. } => Problem::new(ProblemKind::IdempotencyKeyReused, detail),
        Rejection::NotEnough { .. }
        | Rejection::ReturnExceedsSold { .. }
        | Rejection::AlreadyExists { .. }
        | Rejection::LotMismatch { .. }
        | Rejection::ReservationExpired { .. }
        | Rejection::AlreadyConfirmed { .. }
        | Rejection::ReservationClosed { .. }
        | Rejection::NothingHeld { .. }
        | Rejection::ConfirmExceedsHold { .. }
        | Rejection::NothingToShip { .. }
        | Rejection::TransferAlreadyReceived { .. }
        | Rejection::PurchaseOrderElsewhere { .. } => Problem::conflict(detail),
    }
}

/// What failed around the ledger, as a problem: a setup conflict (409); a write the writer may
/// have applied without confirming it (503 saying so: retry with the same `Idempotency-Key`);
/// anything else unavailable (503).
pub fn failed(e: &InventoryError) -> Problem {
    match e {
        InventoryError::Setup(setup) => Problem::conflict(setup.to_string()),
        InventoryError::Unconfirmed { reason } => {
            tracing::warn!(%reason, "inventory write unconfirmed");
            Problem::new(
                ProblemKind::Unavailable,
                "the ledger's writer did not confirm this write in time; it may have been applied: retry with the same Idempotency-Key",
            )
            .with_retry_after(1)
        }
        _ => Problem::unavailable(e),
    }
}

fn lookup_failed(e: LookupError) -> Problem {
    match e {
        LookupError::Unknown(_) => Problem::validation(vec![FieldError::new("sku_id", e.to_string())]),
        LookupError::Catalog(_) => Problem::unavailable(&e),
        LookupError::Inventory(e) => failed(&e),
    }
}

fn field(name: &str, message: impl Into<String>) -> Problem {
    Problem::validation(vec![FieldError::new(name, message)])
}

// ---- applying commands ----------------------------------------------------------------------

/// A request key from the caller's `Idempotency-Key` (scoped to the route and the caller), or a
/// fresh one.
fn key_for(scope: &str, s: &InventoryState, who: &Principal, key: Option<&HttpKey>) -> (String, bool) {
    match key {
        Some(k) => (format!("{scope}:{}:{}", caller(s, who), k.as_str()), true),
        None => (format!("{scope}:{}", ulid::Ulid::new()), false),
    }
}

/// Who the caller is, as the journal may keep it: a customer by keyed pseudonym, staff and
/// systems by their subject.
fn caller(s: &InventoryState, who: &Principal) -> String {
    match who.customer_id() {
        Some(me) => s.pseudonyms.customer(me),
        None => who.subject.clone(),
    }
}

/// The actor a movement records: `customer` for a customer (never their id), else the subject.
fn actor(who: &Principal) -> &str {
    if who.customer_id().is_some() { "customer" } else { who.subject.as_str() }
}

/// Whether a stored command is the same request as a new one, deadlines aside (a retry of a
/// reservation computes its deadline again).
fn same_request(stored: &Command, new: &Command) -> bool {
    match (stored, new) {
        (
            Command::Reserve { channel, lines, preferred_location, reference, customer_id, .. },
            Command::Reserve { channel: c2, lines: l2, preferred_location: p2, reference: r2, customer_id: u2, .. },
        ) => channel == c2 && lines == l2 && preferred_location == p2 && reference == r2 && customer_id == u2,
        (Command::Extend { reservation, .. }, Command::Extend { reservation: r2, .. }) => reservation == r2,
        _ => stored == new,
    }
}

/// Applies one command: a replay answers the first outcome.
async fn apply(s: &InventoryState, who: &Principal, key: String, command: Command) -> Result<Outcome, Problem> {
    if let Some(first) = s.inventory.read(|l| l.applied(&key.as_str().into())) {
        if same_request(&first.command, &command) {
            return Ok(Outcome { replayed: true, ..first.outcome });
        }
        return Err(Problem::new(
            ProblemKind::IdempotencyKeyReused,
            "this Idempotency-Key was used for another request",
        ));
    }
    let request = Request::new(key.as_str(), actor(who), command.clone());
    match s.inventory.submit(request).await.map_err(|e| failed(&e))? {
        Ok(outcome) => Ok(outcome),
        // Two retries raced: the first one's outcome is the answer.
        Err(Rejection::IdempotencyConflict { .. }) => match s.inventory.read(|l| l.applied(&key.as_str().into())) {
            Some(first) if same_request(&first.command, &command) => Ok(Outcome { replayed: true, ..first.outcome }),
            _ => Err(Problem::new(
                ProblemKind::IdempotencyKeyReused,
                "this Idempotency-Key was used for another request",
            )),
        },
        Err(rejection) => Err(problem(&rejection)),
    }
}

fn status(outcome: &Outcome) -> StatusCode {
    if outcome.replayed { StatusCode::OK } else { StatusCode::CREATED }
}

/// A known location a caller may move stock at (a store associate: only their store).
fn stock_location(s: &InventoryState, who: &Principal, name: &str, id: &str) -> Result<LocationId, Problem> {
    let location = known_location(s, name, id)?;
    check_store(who, s, &location)?;
    Ok(location)
}

// ---- parsing ------------------------------------------------------------------------------

fn parse_channel(name: &str, raw: &str) -> Result<Channel, Problem> {
    raw.parse().map_err(|e: crate::model::ParseChannelError| field(name, e.to_string()))
}

/// `YYYY-MM-DD` as an epoch day.
fn parse_day(name: &str, raw: &str) -> Result<EpochDay, Problem> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(raw, &format).map_err(|_| field(name, format!("{raw:?} is not a YYYY-MM-DD date")))?;
    Ok(i64::from(date.to_julian_day())
        - i64::from(
            time::Date::from_calendar_date(1970, time::Month::January, 1)
                .map(|d| d.to_julian_day())
                .unwrap_or(2_440_588),
        ))
}

fn format_day(day: EpochDay) -> String {
    rfc3339(day * MS_PER_DAY).chars().take(10).collect()
}

fn positive(name: &str, quantity: Quantity) -> Result<Quantity, Problem> {
    if quantity <= 0 {
        return Err(field(name, format!("must be a positive number of units, got {quantity}")));
    }
    if quantity > 1_000_000_000 {
        return Err(field(name, format!("{quantity} units is more than one request may move")));
    }
    Ok(quantity)
}

fn known_location(s: &InventoryState, name: &str, id: &str) -> Result<LocationId, Problem> {
    let found = s.inventory.read(|l| {
        l.setup().locations.iter().find(|loc| loc.id.as_str() == id || loc.details.code == id).map(|loc| loc.id.clone())
    });
    found.ok_or_else(|| field(name, format!("unknown location {id:?}")))
}

/// A store associate acts only on their own store.
fn check_store(who: &Principal, s: &InventoryState, location: &LocationId) -> Result<(), Problem> {
    if who.role != Role::StoreAssociate {
        return Ok(());
    }
    let store = who.store_id.as_deref().unwrap_or_default();
    let code = s
        .inventory
        .read(|l| l.setup().locations.iter().find(|loc| &loc.id == location).map(|loc| loc.details.code.clone()));
    if store == location.as_str() || code.as_deref() == Some(store) {
        Ok(())
    } else {
        Err(Problem::new(
            ProblemKind::Forbidden,
            format!("a store associate of {store} cannot move stock at {location}"),
        ))
    }
}

const MAX_LINES: usize = 200;

fn check_lines<T>(lines: &[T]) -> Result<(), Problem> {
    if lines.is_empty() {
        return Err(field("lines", "at least one line is needed"));
    }
    if lines.len() > MAX_LINES {
        return Err(field("lines", format!("at most {MAX_LINES} lines per request")));
    }
    Ok(())
}

// ---- request lines ------------------------------------------------------------------------------

/// A line sold or returned, optionally naming the lot scanned.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LotLineBody {
    /// SKU id or code.
    pub sku_id: String,
    /// Units.
    pub quantity: Quantity,
    /// The lot, when scanned.
    pub lot: Option<String>,
}

async fn lot_lines(s: &InventoryState, lines: &[LotLineBody]) -> Result<Vec<LotLine>, Problem> {
    check_lines(lines)?;
    let references: Vec<&str> = lines.iter().map(|l| l.sku_id.as_str()).collect();
    let skus = s.skus.resolve_all(&s.inventory, &references).await.map_err(lookup_failed)?;
    lines
        .iter()
        .zip(skus)
        .enumerate()
        .map(|(i, (line, sku))| {
            Ok(LotLine {
                sku,
                quantity: positive(&format!("lines[{i}].quantity"), line.quantity)?,
                lot: line.lot.clone().map(LotCode::new),
            })
        })
        .collect()
}

async fn lines(s: &InventoryState, lines: &[LineBody]) -> Result<Vec<Line>, Problem> {
    check_lines(lines)?;
    let references: Vec<&str> = lines.iter().map(|l| l.sku_id.as_str()).collect();
    let skus = s.skus.resolve_all(&s.inventory, &references).await.map_err(lookup_failed)?;
    lines
        .iter()
        .zip(skus)
        .enumerate()
        .map(|(i, (line, sku))| Ok(Line::new(sku, positive(&format!("lines[{i}].quantity"), line.quantity)?)))
        .collect()
}

/// A cart line.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineBody {
    /// SKU id or code (a kit reserves its components).
    pub sku_id: String,
    /// Units.
    pub quantity: Quantity,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_parse_and_print_as_the_calendar_says() {
        assert_eq!(parse_day("d", "1970-01-02").unwrap(), 1);
        assert_eq!(parse_day("d", "2026-12-06").unwrap(), 20_793);
        assert_eq!(format_day(20_793), "2026-12-06");
        assert!(parse_day("d", "2026-13-01").is_err());
        assert!(parse_day("d", "06/12/2026").is_err());
    }

    #[test]
    fn opening_hours_must_open_before_they_close() {
        assert!(locations::valid_hours("09:00-19:30"));
        assert!(!locations::valid_hours("19:00-09:00"));
        assert!(!locations::valid_hours("9-17"));
        assert!(!locations::valid_hours("09:00-25:00"));
    }

    #[test]
    fn a_short_cart_names_each_short_line() {
        let p = problem(&Rejection::InsufficientStock {
            shortages: vec![crate::Shortage { sku: "sku_a".into(), requested: 3, available: 1 }],
        });
        assert_eq!(p.kind, ProblemKind::Conflict);
        assert!(p.detail.contains("sku_a (3 requested, 1 available)"), "{}", p.detail);
        assert_eq!(p.errors.len(), 1);
    }
}
