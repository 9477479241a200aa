//! HTTP: `GET /v1/customers/{id}/recommendations`, `POST /v1/recommendations` (an anonymous
//! visitor's quiz answers), `GET /v1/products/{id}/similar`, `/dupes`, `/bought-together`,
//! `GET /v1/customers/{id}/routine`, and the model's state and retraining
//! (`GET /v1/recommendations/model`, `POST /v1/recommendations/model/retrain`). Handlers
//! translate; [`Engine`] decides.
//!
//! Who may call: a customer's recommendations and routine: `admin`, `service`,
//! `store_associate`, or the customer themselves (a customer token reaches only its own
//! customer). A store associate may not ask for `explain` (the exclusions name the customer's
//! allergies) and is not shown the unknown allergy names: in the customers domain they read
//! health facts only during an open consultation. Anonymous recommendations and related products: any authenticated role. The
//! model routes: `admin`.
//!
//! Nothing here reads the database: the profile comes from the customers' online profiles
//! (memory, or Redis when configured), the rest from the engine's memory.
//!
//! Stock: when the server wires a [`StockView`] (the inventory, in memory), a request naming a
//! `channel` or a `store` has the safety layer's `out-of-stock` rule exclude what is out of stock
//! there (the store wins when both are given: what that store holds). A request naming neither is
//! not filtered by stock. A product the inventory has no stock records for is kept, unchecked
//! (a notice counts them); a store or channel the inventory does not know filters nothing (a
//! notice says so). `{id}` is a customer id
//! or a `user_id` the identity graph knows; an unknown one is a 404.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, State};
use dermis_auth::{AdminOnly, Auth, Authenticator, Principal, Role};
use dermis_core::clock::SharedClock;
use dermis_core::problem::ProblemBody;
use dermis_core::{ApiJson, ApiPath, ApiQuery, FieldError, Problem, ProblemKind};
use dermis_customers::projection::ProfileProjection;
use dermis_ingredients::kb::CONCERNS;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::expr::BusinessRules;
use crate::safety::{Availability, StockPlace, StockView};
use crate::serving::cursor::Shown;
use crate::serving::engine::{Context, ExperimentTag, Item, Recommendations, Request, Subject, TimeOfDay, TrainReport};
use crate::serving::rerank::Rerank;
use crate::serving::routine::Routine;
use crate::serving::similar::{Related, Relation};
use crate::serving::variant::{self, ServedContext, TopOrdering};
use crate::serving::{Engine, filter};
use crate::weather::{Weather, WeatherProvider};

dermis_auth::role_policy!(
    /// Who may read a customer's recommendations (customers: only their own).
    CustomerRecommendations, "admin, service, store_associate or the customer themselves", [Admin, Service, StoreAssociate, Customer]
);

dermis_auth::role_policy!(
    /// Who may read non-personal recommendations.
    AnyRecommendations, "any role but dermatologist", [Admin, Merchandiser, StoreAssociate, Analyst, Customer, Service]
);

/// Most items per response.
pub const MAX_K: usize = 100;
/// Skin types a quiz may answer.
pub const SKIN_TYPES: [&str; 5] = ["dry", "oily", "combination", "normal", "sensitive"];

/// What the routes share.
#[derive(Clone)]
pub struct RecommendState {
    /// The engine.
    pub engine: Arc<Engine>,
    /// Customers' online profiles.
    pub profiles: Arc<ProfileProjection>,
    /// Authenticates callers.
    pub auth: Arc<Authenticator>,
    /// Weather by location, when configured.
    pub weather: Option<Arc<dyn WeatherProvider>>,
    /// The clock.
    pub clock: SharedClock,
    /// Experiments on placements, when wired.
    pub experiments: Option<Arc<dyn PlacementExperiments>>,
    /// The inventory's stock, when wired: a request's `channel` or `store` then excludes what is
    /// out of stock there.
    pub stock: Option<Arc<dyn StockView>>,
}

/// The variant of an experiment running on a placement.
#[derive(Debug, Clone)]
pub struct PlacementVariant {
    /// The experiment's key.
    pub experiment: String,
    /// The variant's key.
    pub variant: String,
    /// The variant's configuration: `{"blend": {"collaborative": 0.5, ...}}` changes the
    /// source weights.
    pub config: serde_json::Value,
    /// The variant's own business rules (`config.rules`, compiled), applied after the
    /// engine's, on the safe list only.
    pub rules: Option<Arc<BusinessRules>>,
    /// What chooses the top of the list for this variant (`config.contextual`: a contextual
    /// bandit), among the first safe items.
    pub top: Option<Arc<dyn TopOrdering>>,
}

/// Experiments running on placements, as the recommendation routes ask them: from memory (an
/// assignment and its exposure are recorded in the background).
pub trait PlacementExperiments: Send + Sync + 'static {
    /// The variant `unit` sees on `placement`, if an experiment runs there and takes them.
    fn variant(
        &self,
        placement: &str,
        unit: &str,
        channel: Option<&str>,
        skin_type: Option<&str>,
    ) -> Option<PlacementVariant>;
}

impl std::fmt::Debug for RecommendState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecommendState").field("engine", &self.engine).finish()
    }
}

impl FromRef<RecommendState> for Arc<Authenticator> {
    fn from_ref(s: &RecommendState) -> Self {
        s.auth.clone()
    }
}

/// The routes.
pub fn router() -> OpenApiRouter<RecommendState> {
    OpenApiRouter::new()
        .routes(routes!(customer_recommendations))
        .routes(routes!(visitor_recommendations))
        .routes(routes!(similar))
        .routes(routes!(dupes))
        .routes(routes!(bought_together))
        .routes(routes!(customer_routine))
        .routes(routes!(model_state))
        .routes(routes!(retrain))
}

/// Query of a recommendation request.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecommendQuery {
    /// How many (1 to 100, default 10).
    pub k: Option<usize>,
    /// The placement (`home`, `pdp`, `cart` ...): business rules may be scoped to one.
    pub placement: Option<String>,
    /// Channel (`web`, `app`, `pos`, `marketplace:NAME`): products out of stock for it are
    /// excluded (rule `out-of-stock`); without `channel` or `store`, stock is not checked.
    pub channel: Option<String>,
    /// Store (the inventory's location id or code): only what that store holds (wins over
    /// `channel` for stock).
    pub store: Option<String>,
    /// Also return every product the safety layer excluded and why.
    pub explain: Option<bool>,
    /// A filter expression over product attributes, e.g.
    /// `category = "Skincare" and price <= 40 and (concerns has "acne" or fragrance_free)`.
    pub filter: Option<String>,
    /// Product ids or external ids to leave out, comma-separated.
    pub exclude: Option<String>,
    /// The `cursor` of the previous page: nothing it showed is shown again.
    pub cursor: Option<String>,
    /// Latitude and longitude, for the weather (UV index, humidity) and season.
    pub lat: Option<f64>,
    /// Longitude.
    pub lon: Option<f64>,
    /// `am` or `pm`: the routine the products are for.
    pub time_of_day: Option<String>,
}

/// A visitor's declared profile.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitorProfile {
    /// `dry`, `oily`, `combination`, `normal` or `sensitive`.
    pub skin_type: Option<String>,
    /// Concerns (`acne`, `hyperpigmentation`, `redness`, `dryness`, `aging`, `dullness`,
    /// `pores`, `sensitivity`).
    #[serde(default)]
    pub concerns: Vec<String>,
    /// Ingredients or families they are allergic to (names as they write them).
    #[serde(default)]
    pub allergies: Vec<String>,
    /// Pregnant or breastfeeding.
    #[serde(default)]
    pub pregnant: bool,
    /// Ingredients their skin reacts to.
    #[serde(default)]
    pub sensitivities: Vec<String>,
}

/// An anonymous visitor's request.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitorRequest {
    /// Their quiz answers.
    pub profile: VisitorProfile,
    /// How many (1 to 100, default 10).
    pub k: Option<usize>,
    /// The placement.
    pub placement: Option<String>,
    /// Channel: products out of stock for it are excluded.
    pub channel: Option<String>,
    /// Store (location id or code): only what it holds.
    pub store: Option<String>,
    /// Return the exclusions.
    #[serde(default)]
    pub explain: bool,
    /// A filter expression.
    pub filter: Option<String>,
    /// Product ids to leave out.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// The previous page's cursor.
    pub cursor: Option<String>,
    /// `am` or `pm`.
    pub time_of_day: Option<String>,
}

/// Query of a related-products request.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RelatedQuery {
    /// How many (1 to 100, default 10).
    pub k: Option<usize>,
    /// A customer (id or user id) the list must be safe for.
    pub customer: Option<String>,
    /// Channel: products out of stock for it are left out.
    pub channel: Option<String>,
    /// Store (location id or code): only what it holds.
    pub store: Option<String>,
    /// With `customer`, `channel` or `store`: also return the exclusions.
    pub explain: Option<bool>,
}

/// Query of a routine request.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoutineQuery {
    /// Concerns to address, comma-separated (default: the profile's).
    pub goals: Option<String>,
    /// Most the routine's products may cost together, in major units (`120.00`).
    pub budget: Option<f64>,
    /// Also return the exclusions.
    pub explain: Option<bool>,
    /// Latitude, for the weather.
    pub lat: Option<f64>,
    /// Longitude.
    pub lon: Option<f64>,
    /// Channel: products out of stock for it are left out.
    pub channel: Option<String>,
    /// Store (location id or code): only what it holds.
    pub store: Option<String>,
}

/// What a request's `channel` and `store` ask of the stock.
enum StockCheck {
    /// Nothing: neither was given, or no inventory is wired.
    None,
    /// The inventory does not know the place (in words): nothing is filtered.
    Unknown(String),
    /// Out of stock at the place is excluded.
    At(Arc<dyn StockView>, StockPlace),
}

impl StockCheck {
    fn of(s: &RecommendState, channel: Option<&str>, store: Option<&str>) -> Self {
        let (Some(view), Some(place)) = (&s.stock, StockPlace::of(channel, store)) else { return Self::None };
        match view.unknown_place(&place) {
            Some(why) => Self::Unknown(why),
            None => Self::At(view.clone(), place),
        }
    }

    /// What the safety layer's `out-of-stock` rule reads.
    fn availability(&self) -> Option<Availability> {
        match self {
            Self::At(view, place) => Some(Availability::from_stock(view.clone(), place.clone())),
            _ => None,
        }
    }

    /// Notices for a list: the place the inventory does not know, or how many of the products
    /// listed (each once) it has no stock records for (kept, unchecked).
    fn notices(&self, s: &RecommendState, items: &[Item]) -> Vec<String> {
        match self {
            Self::None => Vec::new(),
            Self::Unknown(why) => vec![format!("not filtered by stock: {why}")],
            Self::At(view, place) => {
                let mut ids: Vec<&str> = items.iter().map(|i| i.product_id.as_str()).collect();
                ids.sort_unstable();
                ids.dedup();
                let table = s.engine.catalog().table();
                let untracked = ids
                    .iter()
                    .filter(|id| table.find(id).is_none_or(|t| view.in_stock(table.get(t).skus(), place).is_none()))
                    .count();
                match untracked {
                    0 => Vec::new(),
                    n => vec![format!(
                        "{n} of these products {} no stock records for {}: listed without a stock check",
                        if n == 1 { "has" } else { "have" },
                        place.scope()
                    )],
                }
            }
        }
    }
}

/// The model being served.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelState {
    /// The collaborative model (`hybrid`, `ease` ...), none before the first training.
    pub model: Option<String>,
    /// When it was trained, ms since the epoch.
    pub fitted_at_ms: Option<i64>,
    /// How long the training took.
    pub fit_seconds: Option<f64>,
    /// Interactions it learned from.
    pub interactions: usize,
    /// Customers and interactions held live now.
    pub live_customers: usize,
    /// Interactions held live now.
    pub live_interactions: usize,
    /// Products in the catalog view.
    pub products: usize,
}

fn k_of(k: Option<usize>) -> Result<usize, Problem> {
    let k = k.unwrap_or(10);
    if !(1..=MAX_K).contains(&k) {
        return Err(Problem::validation(vec![FieldError::new("k", format!("must be from 1 to {MAX_K}; got {k}"))]));
    }
    Ok(k)
}

fn time_of_day(v: Option<&str>) -> Result<Option<TimeOfDay>, Problem> {
    match v.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") => Ok(None),
        Some("am") | Some("morning") => Ok(Some(TimeOfDay::Am)),
        Some("pm") | Some("evening") => Ok(Some(TimeOfDay::Pm)),
        Some(other) => {
            Err(Problem::validation(vec![FieldError::new("time_of_day", format!("must be am or pm; got {other:?}"))]))
        }
    }
}

fn shown(cursor: Option<&str>) -> Result<Shown, Problem> {
    match cursor.filter(|c| !c.is_empty()) {
        Some(c) => Shown::decode(c).map_err(Problem::malformed),
        None => Ok(Shown::default()),
    }
}

async fn weather(
    s: &RecommendState,
    lat: Option<f64>,
    lon: Option<f64>,
    now_ms: i64,
) -> Result<Option<Weather>, Problem> {
    let (lat, lon) = match (lat, lon) {
        (Some(a), Some(o)) => (a, o),
        (None, None) => return Ok(None),
        _ => return Err(Problem::validation(vec![FieldError::new("lat", "give both lat and lon, or neither")])),
    };
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return Err(Problem::validation(vec![FieldError::new(
            "lat",
            "lat must be in [-90, 90] and lon in [-180, 180]",
        )]));
    }
    let provider: Arc<dyn WeatherProvider> = match &s.weather {
        Some(p) => p.clone(),
        None => Arc::new(crate::weather::OfflineWeather),
    };
    match provider.weather(lat, lon, now_ms).await {
        Ok(w) => Ok(Some(w)),
        Err(e) => {
            tracing::warn!(error = %e, "weather unavailable; recommending without it");
            Ok(None)
        }
    }
}

/// The subject a customer reference names (404 when unknown).
async fn customer_subject(s: &RecommendState, who: &Principal, reference: &str) -> Result<Subject, Problem> {
    let profile = s
        .profiles
        .profile(reference)
        .await
        .map_err(|e| Problem::unavailable(&e))?
        .ok_or_else(|| Problem::not_found(format!("no customer {reference}")))?;
    if who.role == Role::Customer
        && who.subject != profile.customer_id
        && profile.user_id.as_deref() != Some(who.subject.as_str())
    {
        return Err(Problem::new(ProblemKind::Forbidden, "a customer token reaches only its own customer"));
    }
    Ok(Subject::customer(&profile, s.engine.live()))
}

/// Health facts (allergies, through the exclusions and the unknown allergy names) are shown only
/// to those who may read them: a store associate reads them in the customers domain only during
/// an open consultation, which this domain does not see, so `explain` is refused to them and the
/// unknown allergy names are left out.
fn health_visible(who: &Principal, explain: bool) -> Result<bool, Problem> {
    if who.role == Role::StoreAssociate {
        if explain {
            return Err(Problem::new(
                ProblemKind::Forbidden,
                "explain reveals the customer's allergies: a store associate reads health facts only through the customer's profile during a consultation",
            ));
        }
        return Ok(false);
    }
    Ok(true)
}

fn excluded_ids(list: Option<&str>) -> Vec<String> {
    list.map(|l| l.split(',').map(str::trim).filter(|x| !x.is_empty()).take(1000).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Recommendations for a customer.
#[utoipa::path(get, path = "/v1/customers/{id}/recommendations", tag = "recommendations",
    params(("id" = String, Path, description = "Customer id or linked user id"), RecommendQuery),
    responses((status = 200, description = "`{recommendation_id, items: [{product_id, external_id, name, score, reasons}], excluded}`", body = Object),
        (status = 400, body = ProblemBody), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody),
        (status = 422, description = "k out of range, a bad filter expression", body = ProblemBody)),
    security(("bearer" = [])))]
async fn customer_recommendations(
    Auth(who, ..): Auth<CustomerRecommendations>,
    State(s): State<RecommendState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<RecommendQuery>,
) -> Result<Json<Recommendations>, Problem> {
    let k = k_of(q.k)?;
    let health = health_visible(&who, q.explain.unwrap_or(false))?;
    let mut subject = customer_subject(&s, &who, &id).await?;
    let stock = StockCheck::of(&s, q.channel.as_deref(), q.store.as_deref());
    subject.safety.availability = stock.availability();
    let filter = q.filter.as_deref().map(filter::compile).transpose()?;
    let now = s.clock.now_ms();
    let context = Context {
        now_ms: now,
        channel: q.channel,
        store: q.store,
        time_of_day: time_of_day(q.time_of_day.as_deref())?,
        weather: weather(&s, q.lat, q.lon, now).await?,
    };
    // An experiment on the placement picks the variant: its source weights, its rules and the
    // order of the top of the list; safety stays first (they only reorder the safe list).
    let variant =
        match (&s.experiments, q.placement.as_deref(), subject.user_id.as_ref().or(subject.customer_id.as_ref())) {
            (Some(experiments), Some(placement), Some(unit)) => {
                experiments.variant(placement, unit, context.channel.as_deref(), subject.content.skin_type.as_deref())
            }
            _ => None,
        };
    let served = variant.as_ref().and_then(|v| v.top.as_ref()).map(|top| {
        let context = ServedContext {
            skin_type: subject.content.skin_type.clone(),
            channel: context.channel.clone(),
            time_of_day: context.time_of_day,
            uv_index: context.weather.as_ref().map(|w| w.uv_index),
        };
        (top.clone(), context)
    });
    let rerank = variant.as_ref().filter(|v| v.rules.is_some() || served.is_some()).map(|v| {
        variant::rerank(
            v.rules.as_deref(),
            q.placement.as_deref(),
            served.as_ref().map(|(top, c)| (&**top as &dyn TopOrdering, c)),
        )
    });
    let req = Request {
        k,
        placement: q.placement.clone(),
        explain: q.explain.unwrap_or(false),
        filter: filter.as_deref(),
        exclude: excluded_ids(q.exclude.as_deref()),
        shown: shown(q.cursor.as_deref())?,
        context,
        blend: variant
            .as_ref()
            .and_then(|v| v.config.get("blend"))
            .map(|blend| s.engine.config().blend.with_overrides(blend)),
        rerank: rerank.as_ref().map(|r| r as &Rerank),
    };
    let mut out = s.engine.recommend(&subject, &req);
    out.notices.extend(stock.notices(&s, &out.items));
    if let Some((top, context)) = &served {
        let shown: Vec<(&str, Option<&str>)> =
            out.items.iter().map(|i| (i.product_id.as_str(), i.external_id.as_deref())).collect();
        top.served(&out.recommendation_id, context, &shown);
    }
    out.experiment = variant.as_ref().map(|v| ExperimentTag { key: v.experiment.clone(), variant: v.variant.clone() });
    if !health {
        out.unknown_allergies.clear();
    }
    Ok(Json(out))
}

fn check_profile(p: &VisitorProfile) -> Result<(), Problem> {
    let mut errors = Vec::new();
    if let Some(t) = &p.skin_type
        && !SKIN_TYPES.contains(&t.as_str())
    {
        errors
            .push(FieldError::new("profile.skin_type", format!("must be one of {}; got {t:?}", SKIN_TYPES.join(", "))));
    }
    for (i, c) in p.concerns.iter().enumerate() {
        if !CONCERNS.contains(&c.as_str()) {
            errors.push(FieldError::new(
                format!("profile.concerns[{i}]"),
                format!("must be one of {}; got {c:?}", CONCERNS.join(", ")),
            ));
        }
    }
    for (field, list) in [("allergies", &p.allergies), ("sensitivities", &p.sensitivities)] {
        if list.len() > 100 {
            errors.push(FieldError::new(format!("profile.{field}"), "at most 100 names"));
        }
        for (i, a) in list.iter().enumerate() {
            if a.trim().is_empty() || a.len() > 200 {
                errors.push(FieldError::new(format!("profile.{field}[{i}]"), "a name of 1 to 200 characters"));
            }
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(Problem::validation(errors)) }
}

/// Recommendations for an anonymous visitor from their quiz answers.
#[utoipa::path(post, path = "/v1/recommendations", tag = "recommendations", request_body = VisitorRequest,
    responses((status = 200, description = "as for a customer; unknown allergy names are reported in `unknown_allergies` and matched as words of the label", body = Object),
        (status = 400, body = ProblemBody), (status = 403, description = "a dermatologist token", body = ProblemBody),
        (status = 422, body = ProblemBody)),
    security(("bearer" = [])))]
async fn visitor_recommendations(
    Auth(_who, ..): Auth<AnyRecommendations>,
    State(s): State<RecommendState>,
    ApiJson(body): ApiJson<VisitorRequest>,
) -> Result<Json<Recommendations>, Problem> {
    let k = k_of(body.k)?;
    check_profile(&body.profile)?;
    let p = &body.profile;
    let mut subject = Subject::visitor(
        p.skin_type.as_deref(),
        &p.concerns,
        &p.allergies,
        &p.sensitivities,
        p.pregnant,
        s.engine.safety(),
    );
    let stock = StockCheck::of(&s, body.channel.as_deref(), body.store.as_deref());
    subject.safety.availability = stock.availability();
    let filter = body.filter.as_deref().map(filter::compile).transpose()?;
    let req = Request {
        k,
        placement: body.placement,
        explain: body.explain,
        filter: filter.as_deref(),
        exclude: body.exclude.into_iter().take(1000).collect(),
        shown: shown(body.cursor.as_deref())?,
        context: Context {
            now_ms: s.clock.now_ms(),
            channel: body.channel,
            store: body.store,
            time_of_day: time_of_day(body.time_of_day.as_deref())?,
            weather: None,
        },
        blend: None,
        rerank: None,
    };
    let mut out = s.engine.recommend(&subject, &req);
    out.notices.extend(stock.notices(&s, &out.items));
    Ok(Json(out))
}

async fn related(
    s: &RecommendState,
    who: &Principal,
    id: &str,
    q: RelatedQuery,
    relation: Relation,
) -> Result<Json<Related>, Problem> {
    let k = k_of(q.k)?;
    health_visible(who, q.explain.unwrap_or(false) && q.customer.is_some())?;
    let mut subject = match q.customer.as_deref() {
        Some(c) => {
            if !matches!(who.role, Role::Admin | Role::Service | Role::StoreAssociate | Role::Customer) {
                return Err(Problem::new(
                    ProblemKind::Forbidden,
                    "naming a customer requires admin, service, store_associate or the customer themselves",
                ));
            }
            Some(customer_subject(s, who, c).await?)
        }
        None => None,
    };
    let stock = StockCheck::of(s, q.channel.as_deref(), q.store.as_deref());
    if let Some(availability) = stock.availability() {
        // Without a customer, the list is judged for stock alone (an anonymous subject).
        subject.get_or_insert_with(Subject::default).safety.availability = Some(availability);
    }
    let mut out = s
        .engine
        .related(id, relation, k, subject.as_ref(), q.explain.unwrap_or(false))
        .ok_or_else(|| Problem::not_found(format!("no product {id}")))?;
    out.notices.extend(stock.notices(s, &out.items));
    Ok(Json(out))
}

/// Products similar to a product: by ingredients (content embedding) and by what customers did.
#[utoipa::path(get, path = "/v1/products/{id}/similar", tag = "recommendations",
    params(("id" = String, Path, description = "Product id or external id"), RelatedQuery),
    responses((status = 200, body = Object), (status = 403, description = "a dermatologist token, or naming a customer this caller may not reach", body = ProblemBody),
        (status = 404, body = ProblemBody), (status = 422, body = ProblemBody)),
    security(("bearer" = [])))]
async fn similar(
    Auth(who, ..): Auth<AnyRecommendations>,
    State(s): State<RecommendState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<RelatedQuery>,
) -> Result<Json<Related>, Problem> {
    related(&s, &who, &id, q, Relation::Similar).await
}

/// Dupes: cheaper products of the same routine step with every key active of the product and
/// no added risk (allergen, fragrance, pregnancy caution, photosensitizer, comedogenicity).
#[utoipa::path(get, path = "/v1/products/{id}/dupes", tag = "recommendations",
    params(("id" = String, Path, description = "Product id or external id"), RelatedQuery),
    responses((status = 200, body = Object), (status = 403, description = "a dermatologist token, or naming a customer this caller may not reach", body = ProblemBody),
        (status = 404, body = ProblemBody), (status = 422, body = ProblemBody)),
    security(("bearer" = [])))]
async fn dupes(
    Auth(who, ..): Auth<AnyRecommendations>,
    State(s): State<RecommendState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<RelatedQuery>,
) -> Result<Json<Related>, Problem> {
    related(&s, &who, &id, q, Relation::Dupes).await
}

/// Products bought in the same orders (falling back to what customers who liked it also liked).
#[utoipa::path(get, path = "/v1/products/{id}/bought-together", tag = "recommendations",
    params(("id" = String, Path, description = "Product id or external id"), RelatedQuery),
    responses((status = 200, body = Object), (status = 403, description = "a dermatologist token, or naming a customer this caller may not reach", body = ProblemBody),
        (status = 404, body = ProblemBody), (status = 422, body = ProblemBody)),
    security(("bearer" = [])))]
async fn bought_together(
    Auth(who, ..): Auth<AnyRecommendations>,
    State(s): State<RecommendState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<RelatedQuery>,
) -> Result<Json<Related>, Problem> {
    related(&s, &who, &id, q, Relation::BoughtTogether).await
}

/// A morning and an evening routine for the customer's goals and budget.
#[utoipa::path(get, path = "/v1/customers/{id}/routine", tag = "recommendations",
    params(("id" = String, Path, description = "Customer id or linked user id"), RoutineQuery),
    responses((status = 200, description = "`{recommendation_id, am: [{step, product}], pm: [...], total_price, notes}`", body = Object),
        (status = 403, body = ProblemBody), (status = 404, body = ProblemBody), (status = 422, body = ProblemBody)),
    security(("bearer" = [])))]
async fn customer_routine(
    Auth(who, ..): Auth<CustomerRecommendations>,
    State(s): State<RecommendState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<RoutineQuery>,
) -> Result<Json<Routine>, Problem> {
    health_visible(&who, q.explain.unwrap_or(false))?;
    let mut subject = customer_subject(&s, &who, &id).await?;
    let stock = StockCheck::of(&s, q.channel.as_deref(), q.store.as_deref());
    subject.safety.availability = stock.availability();
    let goals = excluded_ids(q.goals.as_deref());
    if let Some(g) = goals.iter().find(|g| !CONCERNS.contains(&g.as_str())) {
        return Err(Problem::validation(vec![FieldError::new(
            "goals",
            format!("must be among {}; got {g:?}", CONCERNS.join(", ")),
        )]));
    }
    let budget = match q.budget {
        Some(b) if !(b.is_finite() && b > 0.0 && b < 1e9) => {
            return Err(Problem::validation(vec![FieldError::new("budget", "a positive amount")]));
        }
        Some(b) => Some((b * 100.0).round() as i64),
        None => None,
    };
    let now = s.clock.now_ms();
    let ctx = Context {
        now_ms: now,
        weather: weather(&s, q.lat, q.lon, now).await?,
        channel: q.channel.clone(),
        store: q.store.clone(),
        ..Context::default()
    };
    let mut routine = s.engine.routine(&subject, &goals, budget, ctx, q.explain.unwrap_or(false));
    let listed: Vec<Item> = routine.am.iter().chain(&routine.pm).map(|step| step.product.clone()).collect();
    routine.notes.extend(stock.notices(&s, &listed));
    Ok(Json(routine))
}

fn state(s: &RecommendState) -> ModelState {
    let served = s.engine.served();
    let (live_customers, live_interactions) = s.engine.live().counts();
    ModelState {
        model: served.as_ref().map(|m| m.kind.to_owned()),
        fitted_at_ms: served.as_ref().map(|m| m.fitted_at_ms),
        fit_seconds: served.as_ref().map(|m| m.fit_seconds),
        interactions: served.as_ref().map_or(0, |m| m.trained.interactions.nnz()),
        live_customers,
        live_interactions,
        products: s.engine.catalog().table().len(),
    }
}

/// The model being served.
#[utoipa::path(get, path = "/v1/recommendations/model", tag = "recommendations",
    responses((status = 200, body = ModelState), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn model_state(Auth(_who, ..): Auth<AdminOnly>, State(s): State<RecommendState>) -> Json<ModelState> {
    Json(state(&s))
}

/// Trains now on what the node holds and swaps the model in; answers when it is serving.
#[utoipa::path(post, path = "/v1/recommendations/model/retrain", tag = "recommendations",
    responses((status = 200, body = ModelState), (status = 403, body = ProblemBody), (status = 409, description = "too few interactions to train on", body = ProblemBody)),
    security(("bearer" = [])))]
async fn retrain(
    Auth(_who, ..): Auth<AdminOnly>,
    State(s): State<RecommendState>,
) -> Result<Json<ModelState>, Problem> {
    let report: Option<TrainReport> = s.engine.train(s.clock.now_ms()).await.map_err(|e| Problem::internal(&e))?;
    match report {
        Some(_) => Ok(Json(state(&s))),
        None => Err(Problem::conflict(format!(
            "too few interactions to train on (at least {} are needed)",
            s.engine.config().min_interactions
        ))),
    }
}
