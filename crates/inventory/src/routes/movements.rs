//! Stock movements: receipts by lot, purchase orders, adjustments, transfers, returns and the
//! inspection of quarantined units, and a store POS's offline sync.

use super::*;

pub(super) fn router() -> OpenApiRouter<InventoryState> {
    OpenApiRouter::new()
        .routes(routes!(receive))
        .routes(routes!(expect_purchase))
        .routes(routes!(adjust))
        .routes(routes!(transfer))
        .routes(routes!(transfer_arrived))
        .routes(routes!(return_units))
        .routes(routes!(inspect_returned))
        .routes(routes!(pos_sync))
}

// ---- receipts and purchase orders -----------------------------------------------------------

/// A lot as printed on the pack.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LotBody {
    /// Batch code.
    pub code: String,
    /// Expiry, `YYYY-MM-DD`: the first day it may no longer be sold.
    pub expires_on: String,
    /// Manufacture date, `YYYY-MM-DD`.
    pub manufactured_on: Option<String>,
    /// Period after opening in months.
    pub period_after_opening_months: Option<u32>,
}

/// A received line.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptLineBody {
    /// SKU id or code.
    pub sku_id: String,
    /// Units.
    pub quantity: Quantity,
    /// The lot.
    pub lot: LotBody,
}

/// Goods received at a location.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptBody {
    /// Where (id or code).
    pub location_id: String,
    /// The purchase order received against, if any.
    pub purchase_order_id: Option<String>,
    /// What arrived.
    pub lines: Vec<ReceiptLineBody>,
}

/// What a stock movement did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Booked {
    /// Movements written to the journal.
    pub movements: usize,
    /// Whether this answers an earlier request with the same `Idempotency-Key`.
    pub replayed: bool,
    /// What the command did, by type.
    #[schema(value_type = Object)]
    pub effect: serde_json::Value,
}

fn booked(outcome: &Outcome) -> Booked {
    Booked {
        movements: outcome.movements.len(),
        replayed: outcome.replayed,
        effect: serde_json::to_value(&outcome.effect).unwrap_or_default(),
    }
}

/// Books received goods on hand, by lot (expiry required, and after today).
#[utoipa::path(post, path = "/v1/inventory/receipts", tag = "inventory", request_body = ReceiptBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retry safe")),
    responses((status = 201, body = Booked), (status = 200, description = "a retry", body = Booked),
        (status = 409, body = ProblemBody), (status = 422, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn receive(
    Auth(who, ..): Auth<StockKeepers>,
    State(s): State<InventoryState>,
    key: Option<HttpKey>,
    ApiJson(body): ApiJson<ReceiptBody>,
) -> Result<(StatusCode, Json<Booked>), Problem> {
    check_lines(&body.lines)?;
    let location = stock_location(&s, &who, "location_id", &body.location_id)?;
    let references: Vec<&str> = body.lines.iter().map(|l| l.sku_id.as_str()).collect();
    let skus = s.skus.resolve_all(&s.inventory, &references).await.map_err(lookup_failed)?;
    let mut lines = Vec::with_capacity(body.lines.len());
    for (i, (line, sku)) in body.lines.into_iter().zip(skus).enumerate() {
        let code = line.lot.code.trim();
        if code.is_empty() || code.len() > 64 {
            return Err(field(&format!("lines[{i}].lot.code"), "must be 1 to 64 characters"));
        }
        let lot = Lot {
            code: LotCode::new(code),
            expires_on: parse_day(&format!("lines[{i}].lot.expires_on"), &line.lot.expires_on)?,
            manufactured_on: line
                .lot
                .manufactured_on
                .as_deref()
                .map(|d| parse_day(&format!("lines[{i}].lot.manufactured_on"), d))
                .transpose()?,
            period_after_opening_months: line.lot.period_after_opening_months,
        };
        lines.push(ReceiptLine { sku, quantity: positive(&format!("lines[{i}].quantity"), line.quantity)?, lot });
    }
    let purchase_order = body.purchase_order_id.map(crate::model::PurchaseOrderId::new);
    let (key, _) = key_for("receipt", &s, &who, key.as_ref());
    let outcome = apply(&s, &who, key, Command::Receive { location, purchase_order, lines }).await?;
    Ok((status(&outcome), Json(booked(&outcome))))
}

/// A purchase order to expect.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseBody {
    /// The purchase order's id (the brand's own).
    pub id: String,
    /// Where it will be received (id or code).
    pub location_id: String,
    /// When it is expected, RFC 3339.
    pub eta: String,
    /// What is ordered.
    pub lines: Vec<LineBody>,
}

/// Books a purchase order's units as incoming at a location, with its ETA.
#[utoipa::path(post, path = "/v1/inventory/purchase-orders", tag = "inventory", request_body = PurchaseBody,
    responses((status = 201, body = Booked), (status = 200, description = "a retry", body = Booked),
        (status = 409, body = ProblemBody), (status = 422, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn expect_purchase(
    Auth(who, ..): Auth<StockKeepers>,
    State(s): State<InventoryState>,
    ApiJson(body): ApiJson<PurchaseBody>,
) -> Result<(StatusCode, Json<Booked>), Problem> {
    check_lines(&body.lines)?;
    let location = stock_location(&s, &who, "location_id", &body.location_id)?;
    let eta = time::OffsetDateTime::parse(&body.eta, &time::format_description::well_known::Rfc3339)
        .map_err(|_| field("eta", "must be an RFC 3339 time"))?;
    let eta_ms = i64::try_from(eta.unix_timestamp_nanos() / 1_000_000).map_err(|_| field("eta", "out of range"))?;
    let lines = lines(&s, &body.lines).await?;
    if body.id.trim().is_empty() || body.id.len() > 64 {
        return Err(field("id", "must be 1 to 64 characters"));
    }
    // The purchase order's own id makes a retry safe.
    let key = format!("po:{}", body.id);
    let command = Command::ExpectPurchase { purchase_order: body.id.as_str().into(), location, eta_ms, lines };
    let outcome = apply(&s, &who, key, command).await?;
    Ok((status(&outcome), Json(booked(&outcome))))
}

// ---- adjustments, transfers, returns ----------------------------------------------------------

/// A stock correction.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustBody {
    /// Where (id or code).
    pub location_id: String,
    /// SKU id or code.
    pub sku_id: String,
    /// The lot.
    pub lot: String,
    /// Units.
    pub quantity: Quantity,
    /// `lost`, `found`, `damaged`, `disposed` or `quarantined`.
    pub reason: String,
    /// The count or report it comes from.
    pub reference: String,
}

/// Corrects stock for a reason (a count, a breakage, a suspect lot).
#[utoipa::path(post, path = "/v1/inventory/adjustments", tag = "inventory", request_body = AdjustBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retry safe")),
    responses((status = 201, body = Booked), (status = 200, description = "a retry", body = Booked),
        (status = 409, body = ProblemBody), (status = 422, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn adjust(
    Auth(who, ..): Auth<StockKeepers>,
    State(s): State<InventoryState>,
    key: Option<HttpKey>,
    ApiJson(body): ApiJson<AdjustBody>,
) -> Result<(StatusCode, Json<Booked>), Problem> {
    let location = stock_location(&s, &who, "location_id", &body.location_id)?;
    let kind = match body.reason.as_str() {
        "lost" => AdjustKind::Lost,
        "found" => AdjustKind::Found,
        "damaged" => AdjustKind::Damaged,
        "disposed" => AdjustKind::Disposed,
        "quarantined" => AdjustKind::Quarantined,
        _ => return Err(field("reason", "must be lost, found, damaged, disposed or quarantined")),
    };
    let sku = s.skus.resolve_all(&s.inventory, &[body.sku_id.as_str()]).await.map_err(lookup_failed)?.remove(0);
    let command = Command::Adjust {
        location,
        sku,
        lot: LotCode::new(body.lot),
        quantity: positive("quantity", body.quantity)?,
        kind,
        reference: Reference::Count(body.reference),
    };
    let (key, _) = key_for("adjust", &s, &who, key.as_ref());
    let outcome = apply(&s, &who, key, command).await?;
    Ok((status(&outcome), Json(booked(&outcome))))
}

/// Units to send from one location to another.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// The transfer's id (the brand's own).
    pub id: String,
    /// SKU id or code.
    pub sku_id: String,
    /// Units.
    pub quantity: Quantity,
    /// Origin (id or code).
    pub from_location_id: String,
    /// Destination (id or code).
    pub to_location_id: String,
    /// Send only this lot (otherwise FEFO).
    pub lot: Option<String>,
}

/// Sends units: on hand at the origin → in transit to the destination.
#[utoipa::path(post, path = "/v1/inventory/transfers", tag = "inventory", request_body = TransferBody,
    responses((status = 201, body = Booked), (status = 200, description = "a retry", body = Booked),
        (status = 409, body = ProblemBody), (status = 422, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn transfer(
    Auth(who, ..): Auth<StockKeepers>,
    State(s): State<InventoryState>,
    ApiJson(body): ApiJson<TransferBody>,
) -> Result<(StatusCode, Json<Booked>), Problem> {
    let from = known_location(&s, "from_location_id", &body.from_location_id)?;
    let to = known_location(&s, "to_location_id", &body.to_location_id)?;
    check_store(&who, &s, &from)?;
    if body.id.trim().is_empty() || body.id.len() > 64 {
        return Err(field("id", "must be 1 to 64 characters"));
    }
    let sku = s.skus.resolve_all(&s.inventory, &[body.sku_id.as_str()]).await.map_err(lookup_failed)?.remove(0);
    let command = Command::TransferOut {
        transfer: TransferId::new(body.id.as_str()),
        sku,
        quantity: positive("quantity", body.quantity)?,
        from,
        to,
        lot: body.lot.map(LotCode::new),
    };
    let outcome = apply(&s, &who, format!("transfer:{}", body.id), command).await?;
    Ok((status(&outcome), Json(booked(&outcome))))
}

/// A transfer arrived: in transit → on hand at its destination.
#[utoipa::path(post, path = "/v1/inventory/transfers/{id}/arrived", tag = "inventory", params(("id" = String, Path)),
    responses((status = 201, body = Booked), (status = 200, description = "a retry", body = Booked),
        (status = 404, body = ProblemBody), (status = 409, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn transfer_arrived(
    Auth(who, ..): Auth<StockKeepers>,
    State(s): State<InventoryState>,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<Booked>), Problem> {
    let transfer = TransferId::new(id.as_str());
    let destination = s.inventory.read(|l| l.transfer(&transfer).map(|t| t.to.clone()));
    let destination = destination.ok_or_else(|| Problem::not_found(format!("no transfer {id}")))?;
    check_store(&who, &s, &destination)?;
    let outcome = apply(&s, &who, format!("transfer-in:{id}"), Command::TransferIn { transfer }).await?;
    Ok((status(&outcome), Json(booked(&outcome))))
}

/// Units a customer brought back.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnBody {
    /// Where they came back (id or code).
    pub location_id: String,
    /// What they were sold under: `{"kind": "order" | "marketplace_order" | "pos_receipt", "id"}`.
    #[schema(value_type = Object)]
    pub reference: Reference,
    /// What came back.
    pub lines: Vec<LotLineBody>,
}

/// Books a return into quarantine at a location (then restock or write off).
#[utoipa::path(post, path = "/v1/inventory/returns", tag = "inventory", request_body = ReturnBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retry safe")),
    responses((status = 201, body = Booked), (status = 200, description = "a retry", body = Booked),
        (status = 409, body = ProblemBody), (status = 422, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn return_units(
    Auth(who, ..): Auth<StockKeepers>,
    State(s): State<InventoryState>,
    key: Option<HttpKey>,
    ApiJson(body): ApiJson<ReturnBody>,
) -> Result<(StatusCode, Json<Booked>), Problem> {
    let location = stock_location(&s, &who, "location_id", &body.location_id)?;
    if matches!(body.reference, Reference::None) {
        return Err(field("reference", "a return names the order or receipt it was sold under"));
    }
    let lines = lot_lines(&s, &body.lines).await?;
    let (key, _) = key_for("return", &s, &who, key.as_ref());
    let outcome = apply(&s, &who, key, Command::Return { location, reference: body.reference, lines }).await?;
    Ok((status(&outcome), Json(booked(&outcome))))
}

/// Returned units inspected.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InspectBody {
    /// Where (id or code).
    pub location_id: String,
    /// SKU id or code.
    pub sku_id: String,
    /// The lot.
    pub lot: String,
    /// Units.
    pub quantity: Quantity,
    /// `restock` (fit to sell: back on hand) or `write_off` (damaged).
    pub decision: String,
}

/// Decides on quarantined units: back on hand, or written off.
#[utoipa::path(post, path = "/v1/inventory/quarantine", tag = "inventory", request_body = InspectBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retry safe")),
    responses((status = 201, body = Booked), (status = 200, description = "a retry", body = Booked),
        (status = 409, body = ProblemBody), (status = 422, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn inspect_returned(
    Auth(who, ..): Auth<StockKeepers>,
    State(s): State<InventoryState>,
    key: Option<HttpKey>,
    ApiJson(body): ApiJson<InspectBody>,
) -> Result<(StatusCode, Json<Booked>), Problem> {
    let location = stock_location(&s, &who, "location_id", &body.location_id)?;
    let sku = s.skus.resolve_all(&s.inventory, &[body.sku_id.as_str()]).await.map_err(lookup_failed)?.remove(0);
    let (lot, quantity) = (LotCode::new(body.lot), positive("quantity", body.quantity)?);
    let command = match body.decision.as_str() {
        "restock" => Command::Restock { location, sku, lot, quantity },
        "write_off" => Command::WriteOff { location, sku, lot, quantity },
        _ => return Err(field("decision", "must be restock or write_off")),
    };
    let (key, _) = key_for("inspect", &s, &who, key.as_ref());
    let outcome = apply(&s, &who, key, command).await?;
    Ok((status(&outcome), Json(booked(&outcome))))
}

// ---- POS ----------------------------------------------------------------------------------------

/// A till receipt recorded offline.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PosReceipt {
    /// The receipt number (unique per store): a receipt synced twice is booked once.
    pub receipt: String,
    /// What was sold.
    #[serde(default)]
    pub lines: Vec<LotLineBody>,
    /// What was brought back (returns at the till, into quarantine).
    #[serde(default)]
    pub returns: Vec<LotLineBody>,
    /// When the sale happened (RFC 3339), for the record.
    pub sold_at: Option<String>,
}

/// A POS's offline receipts.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PosSyncBody {
    /// The store (id or code).
    pub location_id: String,
    /// The receipts, in the order they were rung up.
    pub receipts: Vec<PosReceipt>,
}

/// What became of one receipt.
#[derive(Debug, Serialize, ToSchema)]
pub struct PosSynced {
    /// The receipt number.
    pub receipt: String,
    /// `booked`, `already_booked` or `refused`.
    pub status: String,
    /// Online holds the sale took units from: re-allocated elsewhere or flagged short.
    #[schema(value_type = Vec<Object>)]
    pub conflicts: Vec<serde_json::Value>,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Syncs a store POS's receipts recorded while it was offline. A sale always wins (the unit left
/// the shop): a hold it collides with is re-allocated from another location or flagged short for
/// customer service, and reported here; no balance goes negative. Each receipt is booked once,
/// however often it is synced.
#[utoipa::path(post, path = "/v1/pos/sync", tag = "inventory", request_body = PosSyncBody,
    responses((status = 200, body = [PosSynced]), (status = 422, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn pos_sync(
    Auth(who, ..): Auth<StockKeepers>,
    State(s): State<InventoryState>,
    ApiJson(body): ApiJson<PosSyncBody>,
) -> Result<Json<Vec<PosSynced>>, Problem> {
    let location = stock_location(&s, &who, "location_id", &body.location_id)?;
    if body.receipts.is_empty() || body.receipts.len() > 1000 {
        return Err(field("receipts", "1 to 1000 receipts per sync"));
    }
    let mut requests = Vec::new();
    let mut index = Vec::new();
    for (i, receipt) in body.receipts.iter().enumerate() {
        if receipt.receipt.trim().is_empty() || receipt.receipt.len() > 64 {
            return Err(field(&format!("receipts[{i}].receipt"), "must be 1 to 64 characters"));
        }
        if receipt.lines.is_empty() && receipt.returns.is_empty() {
            return Err(field(&format!("receipts[{i}].lines"), "a receipt sells or takes back something"));
        }
        let base = format!("pos:{location}:{}", receipt.receipt);
        if !receipt.lines.is_empty() {
            let lines = lot_lines(&s, &receipt.lines).await?;
            let command = Command::PosSale { location: location.clone(), receipt: receipt.receipt.clone(), lines };
            requests.push(Request::new(format!("{base}:sale"), who.subject.as_str(), command));
            index.push(i);
        }
        if !receipt.returns.is_empty() {
            let lines = lot_lines(&s, &receipt.returns).await?;
            let reference = Reference::PosReceipt(receipt.receipt.clone());
            let command = Command::Return { location: location.clone(), reference, lines };
            requests.push(Request::new(format!("{base}:return"), who.subject.as_str(), command));
            index.push(i);
        }
    }
    let answers = s.inventory.submit_all(requests).await.map_err(|e| failed(&e))?;
    let mut synced: Vec<PosSynced> = body
        .receipts
        .iter()
        .map(|r| PosSynced {
            receipt: r.receipt.clone(),
            status: "booked".into(),
            conflicts: Vec::new(),
            problem: None,
        })
        .collect();
    for (answer, i) in answers.into_iter().zip(index) {
        let entry = &mut synced[i];
        match answer {
            Ok(outcome) => {
                if outcome.replayed && entry.status == "booked" {
                    entry.status = "already_booked".into();
                }
                if let Effect::PosSold { conflicts } = &outcome.effect {
                    entry.conflicts.extend(conflicts.iter().filter_map(|c| serde_json::to_value(c).ok()));
                }
            }
            Err(rejection) => {
                entry.status = "refused".into();
                entry.problem = Some(problem(&rejection).detail);
            }
        }
    }
    Ok(Json(synced))
}
