//! Locations (warehouses, stores, marketplace and 3PL nodes), the nearest store with stock,
//! channel policies and kits.

use super::*;

pub(super) fn router() -> OpenApiRouter<InventoryState> {
    OpenApiRouter::new()
        .routes(routes!(create_location, list_locations))
        .routes(routes!(get_location))
        .routes(routes!(near))
        .routes(routes!(set_channel, get_channel))
        .routes(routes!(define_kit))
}

// ---- locations and channels -----------------------------------------------------------------

/// A location to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLocation {
    /// The brand's code for it (unique).
    pub code: String,
    /// Its name.
    pub name: String,
    /// `warehouse`, `store`, `marketplace` or `3pl`.
    pub kind: String,
    /// Latitude in degrees.
    pub latitude: f64,
    /// Longitude in degrees.
    pub longitude: f64,
    /// The channels that may sell from it (`web`, `app`, `pos`, `marketplace:NAME`).
    #[serde(default)]
    pub channels: Vec<String>,
    /// Whether customers may collect online orders there.
    #[serde(default)]
    pub click_and_collect: bool,
    /// Opening hours by day (`mon` .. `sun`): `"09:00-19:00"`.
    #[serde(default)]
    pub opening_hours: BTreeMap<String, String>,
}

/// A location.
#[derive(Debug, Serialize, ToSchema)]
pub struct LocationView {
    /// `loc_...`.
    pub id: String,
    /// The brand's code.
    pub code: String,
    /// Its name.
    pub name: String,
    /// `warehouse`, `store`, `marketplace` or `3pl`.
    pub kind: String,
    /// Latitude.
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
    /// Channels selling from it.
    pub channels: Vec<String>,
    /// Click and collect.
    pub click_and_collect: bool,
    /// Opening hours by day.
    pub opening_hours: BTreeMap<String, String>,
}

fn kind_name(kind: LocationKind) -> &'static str {
    match kind {
        LocationKind::Warehouse => "warehouse",
        LocationKind::Store => "store",
        LocationKind::Marketplace => "marketplace",
        LocationKind::ThirdPartyLogistics => "3pl",
    }
}

fn location_view(l: &Location) -> LocationView {
    LocationView {
        id: l.id.to_string(),
        code: l.details.code.clone(),
        name: l.details.name.clone(),
        kind: kind_name(l.kind).to_owned(),
        latitude: l.latitude,
        longitude: l.longitude,
        channels: l.channels.iter().map(ToString::to_string).collect(),
        click_and_collect: l.details.click_and_collect,
        opening_hours: l.details.opening_hours.clone(),
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

pub(super) fn valid_hours(hours: &str) -> bool {
    let Some((open, close)) = hours.split_once('-') else { return false };
    let minutes = |t: &str| -> Option<u32> {
        let (h, m) = t.split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 24 && m < 60 && t.len() == 5).then_some(h * 60 + m)
    };
    matches!((minutes(open), minutes(close)), (Some(o), Some(c)) if o < c && c <= 24 * 60)
}

fn new_location(body: NewLocation, id: LocationId) -> Result<Location, Problem> {
    let mut errors = Vec::new();
    let code = body.code.trim().to_owned();
    if code.is_empty() || code.len() > 64 {
        errors.push(FieldError::new("code", "must be 1 to 64 characters"));
    }
    if body.name.trim().is_empty() || body.name.len() > 200 {
        errors.push(FieldError::new("name", "must be 1 to 200 characters"));
    }
    let kind = match body.kind.as_str() {
        "warehouse" => Some(LocationKind::Warehouse),
        "store" => Some(LocationKind::Store),
        "marketplace" => Some(LocationKind::Marketplace),
        "3pl" => Some(LocationKind::ThirdPartyLogistics),
        _ => {
            errors.push(FieldError::new("kind", "must be warehouse, store, marketplace or 3pl"));
            None
        }
    };
    if !(body.latitude.is_finite() && (-90.0..=90.0).contains(&body.latitude)) {
        errors.push(FieldError::new("latitude", "must be between -90 and 90"));
    }
    if !(body.longitude.is_finite() && (-180.0..=180.0).contains(&body.longitude)) {
        errors.push(FieldError::new("longitude", "must be between -180 and 180"));
    }
    let mut channels = Vec::new();
    for (i, raw) in body.channels.iter().enumerate() {
        match raw.parse::<Channel>() {
            Ok(c) if !channels.contains(&c) => channels.push(c),
            Ok(_) => errors.push(FieldError::new(format!("channels[{i}]"), "named twice")),
            Err(e) => errors.push(FieldError::new(format!("channels[{i}]"), e.to_string())),
        }
    }
    for (day, hours) in &body.opening_hours {
        if !DAYS.contains(&day.as_str()) || !valid_hours(hours) {
            errors.push(FieldError::new(
                format!("opening_hours.{day}"),
                "days are mon..sun, hours \"HH:MM-HH:MM\" with opening before closing",
            ));
        }
    }
    match (errors.is_empty(), kind) {
        (true, Some(kind)) => Ok(Location {
            id,
            kind,
            latitude: body.latitude,
            longitude: body.longitude,
            channels,
            details: LocationDetails {
                code,
                name: body.name.trim().to_owned(),
                click_and_collect: body.click_and_collect,
                opening_hours: body.opening_hours,
            },
        }),
        _ => Err(Problem::validation(errors)),
    }
}

/// Created.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedLocation {
    /// `loc_...`.
    pub id: String,
    /// The location.
    #[serde(flatten)]
    pub location: LocationView,
}

/// Creates a location. The same body again (same code) answers 200 with the same id; another
/// body with a code in use is a 409. Each channel it names gets a policy (no safety stock) if it
/// has none.
#[utoipa::path(post, path = "/v1/locations", tag = "inventory", request_body = NewLocation,
    responses((status = 201, body = CreatedLocation), (status = 200, description = "the same location existed", body = CreatedLocation),
        (status = 409, body = ProblemBody), (status = 422, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn create_location(
    Auth(_who, ..): Auth<InventorySetup>,
    State(s): State<InventoryState>,
    ApiJson(body): ApiJson<NewLocation>,
) -> Result<(StatusCode, Json<CreatedLocation>), Problem> {
    let location = new_location(body, LocationId::new(dermis_core::ids::new_id("loc")))?;
    let existing =
        s.inventory.read(|l| l.setup().locations.iter().find(|x| x.details.code == location.details.code).cloned());
    if let Some(existing) = existing {
        let same = Location { id: existing.id.clone(), ..location };
        return if same == existing {
            Ok((
                StatusCode::OK,
                Json(CreatedLocation { id: existing.id.to_string(), location: location_view(&existing) }),
            ))
        } else {
            Err(Problem::conflict(format!("location code {:?} is used by {}", existing.details.code, existing.id)))
        };
    }
    let known: Vec<Channel> = s.inventory.read(|l| l.setup().channels.iter().map(|p| p.channel.clone()).collect());
    let policies = location
        .channels
        .iter()
        .filter(|c| !known.contains(c))
        .map(|c| ChannelPolicy { channel: c.clone(), safety_stock: 0, min_shelf_life_days: 0 })
        .collect();
    let more = Setup { locations: vec![location.clone()], channels: policies, ..Setup::default() };
    s.inventory.extend_setup(more).await.map_err(|e| failed(&e))?;
    Ok((StatusCode::CREATED, Json(CreatedLocation { id: location.id.to_string(), location: location_view(&location) })))
}

/// Every location.
#[utoipa::path(get, path = "/v1/locations", tag = "inventory",
    responses((status = 200, body = [LocationView]), (status = 403, body = ProblemBody)), security(("bearer" = [])))]
async fn list_locations(
    Auth(_who, ..): Auth<StockReaders>,
    State(s): State<InventoryState>,
) -> Json<Vec<LocationView>> {
    Json(s.inventory.read(|l| l.setup().locations.iter().map(location_view).collect()))
}

/// A location by id or code.
#[utoipa::path(get, path = "/v1/locations/{id}", tag = "inventory", params(("id" = String, Path, description = "id or code")),
    responses((status = 200, body = LocationView), (status = 404, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn get_location(
    Auth(_who, ..): Auth<StockReaders>,
    State(s): State<InventoryState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<LocationView>, Problem> {
    s.inventory
        .read(|l| l.setup().locations.iter().find(|x| x.id.as_str() == id || x.details.code == id).map(location_view))
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no location {id}")))
}

/// Query of the nearest stores.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NearQuery {
    /// Latitude of the customer.
    pub lat: f64,
    /// Longitude of the customer.
    pub lon: f64,
    /// The SKU (id or code) wanted.
    pub sku_id: String,
    /// How many stores (default 5, at most 50).
    pub limit: Option<usize>,
    /// Only stores offering click and collect.
    pub click_and_collect: Option<bool>,
}

/// A store with stock.
#[derive(Debug, Serialize, ToSchema)]
pub struct NearStore {
    /// The store.
    pub location: LocationView,
    /// Distance in km.
    pub distance_km: f64,
    /// Units on the shelf that nobody holds (less the POS channel's safety stock).
    pub available: Quantity,
}

/// Stores with the SKU in stock, nearest first.
#[utoipa::path(get, path = "/v1/locations/near", tag = "inventory", params(NearQuery),
    responses((status = 200, body = [NearStore]), (status = 400, body = ProblemBody), (status = 422, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn near(
    Auth(_who, ..): Auth<StockReaders>,
    State(s): State<InventoryState>,
    ApiQuery(q): ApiQuery<NearQuery>,
) -> Result<Json<Vec<NearStore>>, Problem> {
    if !(q.lat.is_finite() && (-90.0..=90.0).contains(&q.lat)) {
        return Err(field("lat", "must be between -90 and 90"));
    }
    if !(q.lon.is_finite() && (-180.0..=180.0).contains(&q.lon)) {
        return Err(field("lon", "must be between -180 and 180"));
    }
    let sku = s.skus.resolve(&q.sku_id).await.map_err(lookup_failed)?;
    let here = Location {
        id: LocationId::new("here"),
        kind: LocationKind::Store,
        latitude: q.lat,
        longitude: q.lon,
        channels: Vec::new(),
        details: LocationDetails::default(),
    };
    let now_ms = s.clock.now_ms();
    let mut stores: Vec<NearStore> = s.inventory.read(|l| {
        let stores = l.setup().locations.iter().filter(|x| x.kind == LocationKind::Store);
        let stores = stores.filter(|x| !q.click_and_collect.unwrap_or(false) || x.details.click_and_collect);
        stores
            .filter_map(|store| {
                let available = l.shelf_available(&sku, &store.id, now_ms);
                (available > 0).then(|| NearStore {
                    location: location_view(store),
                    distance_km: (here.distance_km(store) * 1000.0).round() / 1000.0,
                    available,
                })
            })
            .collect()
    });
    stores.sort_by(|a, b| a.distance_km.total_cmp(&b.distance_km));
    stores.truncate(q.limit.unwrap_or(5).clamp(1, 50));
    Ok(Json(stores))
}

/// A channel's policy.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelSettings {
    /// Units of every SKU at every location the channel leaves untouched.
    pub safety_stock: Quantity,
    /// A lot is sold on the channel only with at least this many days before expiry.
    #[serde(default)]
    pub min_shelf_life_days: i64,
}

/// Sets a channel's safety stock and minimum shelf life.
#[utoipa::path(put, path = "/v1/channels/{channel}", tag = "inventory", request_body = ChannelSettings,
    params(("channel" = String, Path, description = "web, app, pos or marketplace:NAME")),
    responses((status = 200, body = ChannelSettings), (status = 404, description = "not a channel name", body = ProblemBody),
        (status = 422, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn set_channel(
    Auth(_who, ..): Auth<InventorySetup>,
    State(s): State<InventoryState>,
    ApiPath(channel): ApiPath<String>,
    ApiJson(body): ApiJson<ChannelSettings>,
) -> Result<Json<ChannelSettings>, Problem> {
    // A channel is a resource named by the path: an unknown name is not found.
    let channel: Channel =
        channel.parse().map_err(|e: crate::model::ParseChannelError| Problem::not_found(e.to_string()))?;
    if !(0..=1_000_000).contains(&body.safety_stock) {
        return Err(field("safety_stock", "must be 0 to 1,000,000"));
    }
    if !(0..=3650).contains(&body.min_shelf_life_days) {
        return Err(field("min_shelf_life_days", "must be 0 to 3650"));
    }
    let policy =
        ChannelPolicy { channel, safety_stock: body.safety_stock, min_shelf_life_days: body.min_shelf_life_days };
    s.inventory.extend_setup(Setup { channels: vec![policy], ..Setup::default() }).await.map_err(|e| failed(&e))?;
    Ok(Json(body))
}

/// A channel's policy.
#[utoipa::path(get, path = "/v1/channels/{channel}", tag = "inventory",
    params(("channel" = String, Path, description = "web, app, pos or marketplace:NAME")),
    responses((status = 200, body = ChannelSettings), (status = 404, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn get_channel(
    Auth(_who, ..): Auth<StockReaders>,
    State(s): State<InventoryState>,
    ApiPath(channel): ApiPath<String>,
) -> Result<Json<ChannelSettings>, Problem> {
    let channel =
        parse_channel("channel", &channel).map_err(|_| Problem::not_found(format!("no channel {channel}")))?;
    s.inventory
        .read(|l| l.setup().channels.iter().find(|p| p.channel == channel).cloned())
        .map(|p| Json(ChannelSettings { safety_stock: p.safety_stock, min_shelf_life_days: p.min_shelf_life_days }))
        .ok_or_else(|| Problem::not_found(format!("channel {channel} has no policy: no location sells on it")))
}

/// A kit to define.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKit {
    /// The kit's SKU (id or code).
    pub sku_id: String,
    /// What one kit is made of.
    pub components: Vec<NewKitComponent>,
}

/// One component of a kit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKitComponent {
    /// A plain SKU (id or code).
    pub sku_id: String,
    /// Units of it per kit.
    pub quantity: Quantity,
}

/// Declares a gift set or kit: it holds no stock and reserves, sells and returns its components.
#[utoipa::path(post, path = "/v1/inventory/kits", tag = "inventory", request_body = NewKit,
    responses((status = 201, description = "defined"), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn define_kit(
    Auth(_who, ..): Auth<InventorySetup>,
    State(s): State<InventoryState>,
    ApiJson(body): ApiJson<NewKit>,
) -> Result<StatusCode, Problem> {
    check_lines(&body.components)?;
    let kit_sku = s.skus.resolve(&body.sku_id).await.map_err(lookup_failed)?;
    if s.inventory.read(|l| l.knows_sku(&kit_sku)) {
        return Err(Problem::conflict(format!("{kit_sku} already holds stock or is a kit")));
    }
    let references: Vec<&str> = body.components.iter().map(|c| c.sku_id.as_str()).collect();
    let ids = s.skus.resolve_all(&s.inventory, &references).await.map_err(lookup_failed)?;
    let mut components = Vec::new();
    for (i, (c, sku)) in body.components.iter().zip(ids).enumerate() {
        components.push(KitComponent { sku, quantity: positive(&format!("components[{i}].quantity"), c.quantity)? });
    }
    let kit = Kit { sku: kit_sku, components };
    s.inventory.extend_setup(Setup { kits: vec![kit], ..Setup::default() }).await.map_err(|e| failed(&e))?;
    Ok(StatusCode::CREATED)
}
