//! Cart holds: reserve (all lines or none), read, confirm (fully or partly), extend, release.

use super::*;

pub(super) fn router() -> OpenApiRouter<InventoryState> {
    OpenApiRouter::new()
        .routes(routes!(reserve))
        .routes(routes!(get_reservation, release))
        .routes(routes!(confirm))
        .routes(routes!(extend))
}

// ---- reservations -------------------------------------------------------------------------------

/// A cart to hold.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveBody {
    /// `web`, `app`, `pos` or `marketplace:NAME`.
    pub channel: String,
    /// The cart.
    pub lines: Vec<LineBody>,
    /// How long to hold (default per channel, at most the configured maximum).
    pub ttl_seconds: Option<u64>,
    /// A location to take stock from first (pickup store), id or code.
    pub location_id: Option<String>,
    /// The customer, when known.
    pub customer_id: Option<String>,
    /// The order it is for, when already known.
    pub order_id: Option<String>,
}

/// Units of one lot at one location.
#[derive(Debug, Serialize, ToSchema)]
pub struct AllocationView {
    /// The plain SKU (a kit line lists its components).
    pub sku_id: String,
    /// Where.
    pub location_id: String,
    /// Which lot.
    pub lot: String,
    /// Units held.
    pub held: Quantity,
    /// Units confirmed, not shipped.
    pub committed: Quantity,
    /// Units shipped.
    pub shipped: Quantity,
}

/// A reserved line.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReservedLine {
    /// The SKU asked for.
    pub sku_id: String,
    /// Units asked for.
    pub quantity: Quantity,
    /// Units a till sale took from this hold that could not be found elsewhere (the order
    /// goes to customer service).
    pub short: Quantity,
    /// Where the units come from, with lot.
    pub allocations: Vec<AllocationView>,
}

/// A reservation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReservationView {
    /// The id.
    pub id: String,
    /// `held`, `confirmed`, `fulfilled`, `released` or `expired`.
    pub status: String,
    /// The channel.
    pub channel: String,
    /// The customer's keyed pseudonym, when known (the ledger never holds a customer id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_pseudonym: Option<String>,
    /// The lines.
    pub lines: Vec<ReservedLine>,
    /// When the hold ends (RFC 3339).
    pub expires_at: String,
    /// When it was made.
    pub created_at: String,
}

/// A reservation as the API shows it.
pub fn reservation_view(r: &Reservation, now_ms: i64) -> ReservationView {
    let status = match r.status {
        ReservationStatus::Held if r.expires_at_ms <= now_ms => "expired",
        ReservationStatus::Held => "held",
        ReservationStatus::Confirmed => "confirmed",
        ReservationStatus::Fulfilled => "fulfilled",
        ReservationStatus::Released => "released",
        ReservationStatus::Expired => "expired",
    };
    ReservationView {
        id: r.id.to_string(),
        status: status.to_owned(),
        channel: r.channel.to_string(),
        customer_pseudonym: r.customer_id.clone(),
        lines: r
            .lines
            .iter()
            .map(|line| ReservedLine {
                sku_id: line.sku.to_string(),
                quantity: line.quantity,
                short: line.components.iter().map(|c| c.short).sum(),
                allocations: line
                    .components
                    .iter()
                    .flat_map(|c| {
                        c.allocations.iter().map(|a| AllocationView {
                            sku_id: c.sku.to_string(),
                            location_id: a.location.to_string(),
                            lot: a.lot.to_string(),
                            held: a.held,
                            committed: a.committed,
                            shipped: a.shipped,
                        })
                    })
                    .collect(),
            })
            .collect(),
        expires_at: rfc3339(r.expires_at_ms),
        created_at: rfc3339(r.created_at_ms),
    }
}

fn reservation_of(outcome: &Outcome) -> Option<&Reservation> {
    match &outcome.effect {
        Effect::Reserved(r) | Effect::Confirmed(r) | Effect::Released(r) | Effect::Extended(r) | Effect::Shipped(r) => {
            Some(r)
        }
        _ => None,
    }
}

/// Holds a cart's lines for a channel, all or none, from the best locations (the preferred
/// store first, then nearest; FEFO within a location). Checking and holding are one step.
#[utoipa::path(post, path = "/v1/reservations", tag = "inventory", request_body = ReserveBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retry safe: the same hold is answered")),
    responses((status = 201, body = ReservationView), (status = 200, description = "a retry", body = ReservationView),
        (status = 409, description = "not enough stock: `errors` names the short lines", body = ProblemBody),
        (status = 422, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn reserve(
    Auth(who, ..): Auth<Reservers>,
    State(s): State<InventoryState>,
    key: Option<HttpKey>,
    ApiJson(body): ApiJson<ReserveBody>,
) -> Result<(StatusCode, Json<ReservationView>), Problem> {
    let (outcome, now_ms) = hold(&s, &who, key.as_ref(), body).await?;
    let reservation = reservation_of(&outcome).ok_or_else(|| Problem::internal(&"a hold without a reservation"))?;
    Ok((status(&outcome), Json(reservation_view(reservation, now_ms))))
}

/// Holds a cart (the reservation route's work; orders' checkout uses it too).
pub async fn hold(
    s: &InventoryState,
    who: &Principal,
    key: Option<&HttpKey>,
    body: ReserveBody,
) -> Result<(Outcome, i64), Problem> {
    let channel = parse_channel("channel", &body.channel)?;
    let customer_id = match (who.customer_id(), body.customer_id) {
        (Some(me), Some(named)) if me != named => {
            return Err(Problem::new(ProblemKind::Forbidden, "a customer reserves only for themselves"));
        }
        (Some(me), _) => Some(me.to_owned()),
        (None, named) => named,
    };
    if customer_id.as_ref().is_some_and(|c| c.is_empty() || c.len() > 128) {
        return Err(field("customer_id", "must be 1 to 128 characters"));
    }
    let ttl = body.ttl_seconds.unwrap_or_else(|| s.holds.default_ttl(&channel));
    let longest = longest_hold(s, who, &channel);
    if ttl == 0 || ttl > longest {
        return Err(field("ttl_seconds", format!("must be 1 to {longest}")));
    }
    // The ledger keeps the customer by keyed pseudonym only.
    let customer_id = customer_id.map(|c| s.pseudonyms.customer(&c));
    let preferred_location = body.location_id.as_deref().map(|id| known_location(s, "location_id", id)).transpose()?;
    let lines = lines(s, &body.lines).await?;
    let (key, keyed) = key_for("reserve", s, who, key);
    let reservation = if keyed {
        // The same key names the same hold, so a retry after a lost answer finds it.
        ReservationId::new(format!("res_{}", &ulid_of(&key)))
    } else {
        ReservationId::new(dermis_core::ids::new_id("res"))
    };
    let now_ms = s.clock.now_ms();
    let command = Command::Reserve {
        reservation,
        channel,
        lines,
        expires_at_ms: now_ms + (ttl as i64) * 1000,
        preferred_location,
        reference: body.order_id.map(Reference::Order),
        customer_id,
    };
    let outcome = apply(s, who, key, command).await?;
    Ok((outcome, s.clock.now_ms()))
}

/// A stable id from a key (hex of a 64-bit FNV-1a; collisions only matter within one caller).
fn ulid_of(key: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let mut second: u64 = 0x8422_2325_cbf2_9ce4;
    for byte in key.bytes().rev() {
        second ^= u64::from(byte);
        second = second.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}{second:016x}")
}

/// The longest hold a caller may ask for: a customer gets the channel's default (so no customer
/// can keep stock off sale for long), others the configured maximum.
fn longest_hold(s: &InventoryState, who: &Principal, channel: &crate::model::Channel) -> u64 {
    if who.customer_id().is_some() {
        s.holds.default_ttl(channel).min(s.holds.max_ttl_secs)
    } else {
        s.holds.max_ttl_secs
    }
}

fn reservation_for(s: &InventoryState, who: &Principal, id: &str) -> Result<Reservation, Problem> {
    let found = s.inventory.read(|l| l.reservation(&ReservationId::new(id)).cloned());
    let found = found.ok_or_else(|| Problem::not_found(format!("no reservation {id}")))?;
    if let Some(me) = who.customer_id()
        && found.customer_id.as_deref() != Some(s.pseudonyms.customer(me).as_str())
    {
        return Err(Problem::not_found(format!("no reservation {id}")));
    }
    Ok(found)
}

/// A reservation.
#[utoipa::path(get, path = "/v1/reservations/{id}", tag = "inventory", params(("id" = String, Path)),
    responses((status = 200, body = ReservationView), (status = 404, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn get_reservation(
    Auth(who, ..): Auth<Reservers>,
    State(s): State<InventoryState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ReservationView>, Problem> {
    let r = reservation_for(&s, &who, &id)?;
    Ok(Json(reservation_view(&r, s.clock.now_ms())))
}

/// Lines to confirm.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    /// Units per cart SKU; absent confirms everything held.
    pub lines: Option<Vec<LineBody>>,
}

/// Confirms held units (all, or some per line): they become committed to the order.
#[utoipa::path(post, path = "/v1/reservations/{id}/confirm", tag = "inventory", params(("id" = String, Path)),
    request_body(content = ConfirmBody, description = "optional: partial confirmation"),
    responses((status = 200, body = ReservationView), (status = 404, body = ProblemBody),
        (status = 409, description = "expired, released, already confirmed", body = ProblemBody),
        (status = 422, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn confirm(
    Auth(who, ..): Auth<Reservers>,
    State(s): State<InventoryState>,
    ApiPath(id): ApiPath<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<ReservationView>, Problem> {
    // Confirming commits units for good (no deadline): the shop's backend does it once the order
    // is paid, not a customer.
    if who.customer_id().is_some() {
        return Err(Problem::new(
            ProblemKind::Forbidden,
            "a customer cannot confirm a hold; the shop confirms it when the order is paid",
        ));
    }
    let r = reservation_for(&s, &who, &id)?;
    // The body is optional: none (or `{}`) confirms everything held.
    let body: ConfirmBody = dermis_core::extract::optional_json(&headers, &body)?;
    let lines = match body.lines {
        Some(l) => Some(lines(&s, &l).await?),
        None => None,
    };
    let key = format!("confirm:{}:{}", r.id, serde_json::to_string(&lines).unwrap_or_default());
    let outcome = apply(&s, &who, key, Command::Confirm { reservation: r.id, lines }).await?;
    let r = reservation_of(&outcome).ok_or_else(|| Problem::internal(&"a confirmation without a reservation"))?;
    Ok(Json(reservation_view(r, s.clock.now_ms())))
}

/// Cancels a reservation: held and committed units not shipped go back on hand. Repeating it
/// answers the same.
#[utoipa::path(delete, path = "/v1/reservations/{id}", tag = "inventory", params(("id" = String, Path)),
    responses((status = 200, body = ReservationView), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn release(
    Auth(who, ..): Auth<Reservers>,
    State(s): State<InventoryState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ReservationView>, Problem> {
    let r = reservation_for(&s, &who, &id)?;
    let outcome = apply(&s, &who, format!("release:{}", r.id), Command::Release { reservation: r.id }).await?;
    let r = reservation_of(&outcome).ok_or_else(|| Problem::internal(&"a release without a reservation"))?;
    Ok(Json(reservation_view(r, s.clock.now_ms())))
}

/// A new deadline.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendBody {
    /// Seconds from now.
    pub ttl_seconds: u64,
}

/// Moves a live hold's deadline to now + `ttl_seconds`.
#[utoipa::path(post, path = "/v1/reservations/{id}/extend", tag = "inventory", params(("id" = String, Path)),
    request_body = ExtendBody,
    responses((status = 200, body = ReservationView), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody),
        (status = 422, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn extend(
    Auth(who, ..): Auth<Reservers>,
    State(s): State<InventoryState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ExtendBody>,
) -> Result<Json<ReservationView>, Problem> {
    let r = reservation_for(&s, &who, &id)?;
    let longest = longest_hold(&s, &who, &r.channel);
    if body.ttl_seconds == 0 || body.ttl_seconds > longest {
        return Err(field("ttl_seconds", format!("must be 1 to {longest}")));
    }
    let expires_at_ms = s.clock.now_ms() + body.ttl_seconds as i64 * 1000;
    let key = format!("extend:{}:{}", r.id, ulid::Ulid::new());
    let outcome = apply(&s, &who, key, Command::Extend { reservation: r.id, expires_at_ms }).await?;
    let r = reservation_of(&outcome).ok_or_else(|| Problem::internal(&"an extension without a reservation"))?;
    Ok(Json(reservation_view(r, s.clock.now_ms())))
}
