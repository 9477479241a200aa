//! Reads of stock: a SKU per location and channel, a lot's recall, low stock and expiring lots.

use super::*;

pub(super) fn router() -> OpenApiRouter<InventoryState> {
    OpenApiRouter::new()
        .routes(routes!(stock))
        .routes(routes!(recall))
        .routes(routes!(low_stock))
        .routes(routes!(expiring))
}

// ---- stock ------------------------------------------------------------------------------------

/// A SKU's stock at one location.
#[derive(Debug, Serialize, ToSchema)]
pub struct LocationStock {
    /// The location.
    pub location_id: String,
    /// Units on hand, held or not.
    pub on_hand: Quantity,
    /// Units held for carts (live holds).
    pub reserved: Quantity,
    /// Units ordered and not shipped.
    pub committed: Quantity,
    /// Units expected (purchase orders, transfers).
    pub incoming: Quantity,
    /// Units in quarantine (returns, suspect lots).
    pub quarantine: Quantity,
    /// Units damaged.
    pub damaged: Quantity,
}

/// What a channel can sell.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelStock {
    /// The channel.
    pub channel: String,
    /// Units it can sell now (sellable lots, less safety stock and live holds).
    pub available: Quantity,
    /// Per location it sells from.
    pub locations: Vec<ChannelLocationStock>,
}

/// What a channel can sell from one location.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelLocationStock {
    /// The location.
    pub location_id: String,
    /// Units on hand not held.
    pub on_hand: Quantity,
    /// Units held.
    pub reserved: Quantity,
    /// Units committed.
    pub committed: Quantity,
    /// Units incoming.
    pub incoming: Quantity,
    /// Units the channel can sell from here.
    pub available: Quantity,
}

/// A SKU's stock.
#[derive(Debug, Serialize, ToSchema)]
pub struct StockView {
    /// The SKU id.
    pub sku_id: String,
    /// Per location.
    pub locations: Vec<LocationStock>,
    /// Per channel.
    pub channels: Vec<ChannelStock>,
    /// The SKU's last movement's per-SKU sequence number (clients drop older answers).
    pub sequence: u64,
}

/// A SKU's stock per location and per channel, from memory.
#[utoipa::path(get, path = "/v1/inventory/{sku_id}", tag = "inventory",
    params(("sku_id" = String, Path, description = "the catalog's SKU id or SKU code")),
    responses((status = 200, body = StockView), (status = 404, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn stock(
    Auth(_who, ..): Auth<StockReaders>,
    State(s): State<InventoryState>,
    ApiPath(sku_id): ApiPath<String>,
) -> Result<Json<StockView>, Problem> {
    let sku = match s.skus.resolve(&sku_id).await {
        Ok(sku) => sku,
        Err(LookupError::Unknown(_)) => return Err(Problem::not_found(format!("no SKU {sku_id}"))),
        Err(e) => return Err(lookup_failed(e)),
    };
    let now_ms = s.clock.now_ms();
    Ok(Json(s.inventory.read(|l| stock_view(l, &sku, now_ms))))
}

/// The stock view of a SKU (a SKU the ledger never saw has none).
pub fn stock_view(l: &crate::Ledger, sku: &SkuId, now_ms: i64) -> StockView {
    // Every location, in the setup's order, zeros included.
    let mut per_location: Vec<LocationStock> = l
        .setup()
        .locations
        .iter()
        .map(|x| LocationStock {
            location_id: x.id.to_string(),
            on_hand: 0,
            reserved: 0,
            committed: 0,
            incoming: 0,
            quarantine: 0,
            damaged: 0,
        })
        .collect();
    for (key, quantity) in l.balances(sku) {
        let crate::Account::Stock { location, state } = &key.account else { continue };
        let Some(entry) = per_location.iter_mut().find(|x| x.location_id == location.as_str()) else { continue };
        match state {
            StockState::OnHand => entry.on_hand += quantity,
            StockState::Reserved => entry.reserved += quantity,
            StockState::Committed => entry.committed += quantity,
            StockState::Incoming | StockState::InTransit => entry.incoming += quantity,
            StockState::Quarantine => entry.quarantine += quantity,
            StockState::Damaged => entry.damaged += quantity,
        }
    }
    let channels = l
        .setup()
        .channels
        .iter()
        .filter_map(|p| l.available(sku, &p.channel, now_ms).ok())
        .map(|a| ChannelStock {
            channel: a.channel.to_string(),
            available: a.available,
            locations: a
                .locations
                .into_iter()
                .map(|x| ChannelLocationStock {
                    location_id: x.location.to_string(),
                    on_hand: x.on_hand,
                    reserved: x.reserved,
                    committed: x.committed,
                    incoming: x.incoming,
                    available: x.available,
                })
                .collect(),
        })
        .collect();
    StockView { sku_id: sku.to_string(), locations: per_location, channels, sequence: l.sku_sequence(sku) }
}

/// A lot's trail for a recall: its movements, the documents and reservations (and so the
/// customers) it went to, and the units still with customers.
#[utoipa::path(get, path = "/v1/inventory/{sku_id}/lots/{lot}/recall", tag = "inventory",
    params(("sku_id" = String, Path, description = "SKU id or code"), ("lot" = String, Path, description = "batch code")),
    responses((status = 200, body = Object), (status = 404, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn recall(
    Auth(_who, ..): Auth<InventorySetup>,
    State(s): State<InventoryState>,
    ApiPath((sku_id, lot)): ApiPath<(String, String)>,
) -> Result<Json<serde_json::Value>, Problem> {
    let sku = s.skus.resolve(&sku_id).await.map_err(|_| Problem::not_found(format!("no SKU {sku_id}")))?;
    let lot = LotCode::new(lot);
    let (found, recall, customers) = s.inventory.read(|l| {
        let recall = l.recall(&sku, &lot);
        let customers: Vec<String> = recall
            .reservations
            .iter()
            .filter_map(|r| l.reservation(r).and_then(|r| r.customer_id.clone()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        (l.lot(&sku, &lot).cloned(), recall, customers)
    });
    let Some(found) = found else { return Err(Problem::not_found(format!("no lot {lot} of {sku}"))) };
    Ok(Json(serde_json::json!({
        "sku_id": sku,
        "lot": {"code": found.code, "expires_on": format_day(found.expires_on)},
        "movements": recall.movements,
        "references": recall.references,
        "reservations": recall.reservations,
        "customer_pseudonyms": customers,
        "with_customers": recall.with_customers,
    })))
}

/// Query of the low-stock report.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LowStockQuery {
    /// The channel (default `web`).
    pub channel: Option<String>,
    /// Report SKUs with at most this many available (default 5).
    pub threshold: Option<Quantity>,
}

/// A SKU running low.
#[derive(Debug, Serialize, ToSchema)]
pub struct LowStock {
    /// The SKU.
    pub sku_id: String,
    /// Units the channel can sell.
    pub available: Quantity,
    /// Units expected.
    pub incoming: Quantity,
}

/// SKUs a channel has at most `threshold` of, scarcest first.
#[utoipa::path(get, path = "/v1/inventory/reports/low-stock", tag = "inventory", params(LowStockQuery),
    responses((status = 200, body = [LowStock]), (status = 422, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn low_stock(
    Auth(_who, ..): Auth<StockReaders>,
    State(s): State<InventoryState>,
    ApiQuery(q): ApiQuery<LowStockQuery>,
) -> Result<Json<Vec<LowStock>>, Problem> {
    let channel = parse_channel("channel", q.channel.as_deref().unwrap_or("web"))?;
    let threshold = q.threshold.unwrap_or(5);
    let now_ms = s.clock.now_ms();
    let mut low: Vec<LowStock> = s.inventory.read(|l| {
        l.setup()
            .skus
            .iter()
            .filter_map(|sku| l.available(sku, &channel, now_ms).ok())
            .filter(|a| a.available <= threshold)
            .map(|a| LowStock {
                sku_id: a.sku.to_string(),
                available: a.available,
                incoming: a.locations.iter().map(|x| x.incoming).sum(),
            })
            .collect()
    });
    low.sort_by(|a, b| (a.available, &a.sku_id).cmp(&(b.available, &b.sku_id)));
    Ok(Json(low))
}

/// Query of the expiry report.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExpiringQuery {
    /// Lots with at most this many days left (default 30).
    pub days: Option<i64>,
}

/// Units of a lot near expiry.
#[derive(Debug, Serialize, ToSchema)]
pub struct Expiring {
    /// The SKU.
    pub sku_id: String,
    /// The lot.
    pub lot: String,
    /// Its expiry, `YYYY-MM-DD`.
    pub expires_on: String,
    /// Days left (negative: expired).
    pub days_left: i64,
    /// Where.
    pub location_id: String,
    /// Units on hand or held.
    pub quantity: Quantity,
}

/// Lots expiring within `days`, soonest first (expired ones included).
#[utoipa::path(get, path = "/v1/inventory/reports/expiring", tag = "inventory", params(ExpiringQuery),
    responses((status = 200, body = [Expiring]), (status = 422, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn expiring(
    Auth(_who, ..): Auth<StockReaders>,
    State(s): State<InventoryState>,
    ApiQuery(q): ApiQuery<ExpiringQuery>,
) -> Result<Json<Vec<Expiring>>, Problem> {
    let days = q.days.unwrap_or(30);
    if !(0..=3650).contains(&days) {
        return Err(field("days", "must be 0 to 3650"));
    }
    let now_ms = s.clock.now_ms();
    Ok(Json(s.inventory.read(|l| {
        l.expiring(now_ms, days)
            .into_iter()
            .map(|e| Expiring {
                sku_id: e.sku.to_string(),
                lot: e.lot.code.to_string(),
                expires_on: format_day(e.lot.expires_on),
                days_left: e.lot.remaining_days(now_ms),
                location_id: e.location.to_string(),
                quantity: e.quantity,
            })
            .collect()
    })))
}
