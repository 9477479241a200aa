//! `/v1/products` and `/v1/products/{id}/skus`. Merchandisers and admins write; any
//! authenticated role reads. Handlers translate; [`Catalog`] decides.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dermis_auth::{AnyRole, Auth, Authenticator};
use dermis_core::page::Cursor;
use dermis_core::problem::ProblemBody;
use dermis_core::{
    ApiJson, ApiJsonBytes, ApiPath, ApiQuery, FieldError, IdempotencyKey, IfMatch, Page, Problem, ProblemKind, etag,
};
use dermis_store::idempotency::request_hash;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::CatalogError;
use crate::input::{CreateProduct, CreateSku, ListProducts, ListSkus, UpdateProduct, UpdateSku};
use crate::model::{Product, Sku};
use crate::search::{SearchFilter, SearchPage};
use crate::service::{Catalog, Created, Idempotent};
use crate::store::ProductRef;
use dermis_ingredients::kb::{FAMILIES, Ingredient, KnowledgeBase, in_family};
use serde::Serialize;
use utoipa::ToSchema;

dermis_auth::role_policy!(
    /// Who may change the catalog.
    CatalogWrite, "admin or merchandiser", [Admin, Merchandiser]
);

/// What the catalog routes need.
#[derive(Debug, Clone)]
pub struct CatalogState {
    /// The catalog.
    pub catalog: Catalog,
    /// Authenticates callers.
    pub auth: Arc<Authenticator>,
}

impl FromRef<CatalogState> for Arc<Authenticator> {
    fn from_ref(s: &CatalogState) -> Self {
        s.auth.clone()
    }
}

/// The routes.
pub fn router() -> OpenApiRouter<CatalogState> {
    OpenApiRouter::new()
        .routes(routes!(create_product, list_products))
        .routes(routes!(get_product, update_product))
        .routes(routes!(create_sku, list_skus))
        .routes(routes!(get_sku, update_sku))
        .routes(routes!(get_ingredient))
}

impl From<CatalogError> for Problem {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::ProductNotFound(_) | CatalogError::SkuNotFound { .. } => Problem::not_found(e.to_string()),
            CatalogError::Duplicate { .. } => Problem::conflict(e.to_string()),
            CatalogError::VersionMismatch { .. } => Problem::new(ProblemKind::PreconditionFailed, e.to_string()),
            CatalogError::IdempotencyKeyReused => Problem::new(ProblemKind::IdempotencyKeyReused, e.to_string()),
            CatalogError::InvalidCursor => {
                Problem::validation(vec![FieldError::new("cursor", "is not a cursor returned by this search")])
            }
            CatalogError::Store(e) => e.into(),
        }
    }
}

fn with_etag<T: serde::Serialize>(
    status: StatusCode,
    version: i64,
    body: T,
    location: Option<String>,
    replayed: bool,
) -> Response {
    let mut res = (status, Json(body)).into_response();
    let headers = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        headers.insert(header::ETAG, v);
    }
    if let Some(loc) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, loc);
    }
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    res
}

fn idempotent(key: Option<IdempotencyKey>, scope: String, body: &[u8]) -> Option<Idempotent> {
    key.map(|key| Idempotent { scope, key, request_hash: request_hash(body) })
}

fn cursor(raw: Option<&str>) -> Result<Option<Cursor>, Problem> {
    raw.map(Cursor::parse).transpose()
}

/// Create a product.
///
/// Send an `Idempotency-Key` header to make retries safe: a retry with the same key and body
/// returns the product the first attempt created (with `Idempotent-Replayed: true`).
#[utoipa::path(post, path = "/v1/products", tag = "catalog", request_body = CreateProduct,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = Product), (status = 403, description = "only admins and merchandisers change the catalog", body = ProblemBody),
        (status = 409, description = "the external id is taken by another product", body = ProblemBody),
        (status = 422, description = "invalid fields, or the Idempotency-Key was used with another body", body = ProblemBody)),
    security(("bearer" = [])))]
async fn create_product(
    Auth(who, ..): Auth<CatalogWrite>,
    State(s): State<CatalogState>,
    key: Option<IdempotencyKey>,
    ApiJsonBytes(body, raw): ApiJsonBytes<CreateProduct>,
) -> Result<Response, Problem> {
    let new = body.parse()?;
    let idem = idempotent(key, format!("catalog.create_product:{}", who.subject), &raw);
    let Created { value, replayed } = s.catalog.create_product(idem, new).await?;
    let location = format!("/v1/products/{}", value.id);
    Ok(with_etag(StatusCode::CREATED, value.version, value, Some(location), replayed))
}

/// Search and list products, with cursor pagination: by relevance when `q` is given, otherwise in
/// creation order.
///
/// Every filter narrows the result. Ingredient exclusions understand synonyms (`aqua` = `water`,
/// `vitamin e` = `tocopherol`) and families (`fragrance`, `parabens` ...), and never let through a
/// product whose ingredient list is unknown.
#[utoipa::path(get, path = "/v1/products", tag = "catalog", params(ListProducts),
    responses((status = 200, body = SearchPage), (status = 422, description = "an invalid filter or cursor", body = ProblemBody)), security(("bearer" = [])))]
async fn list_products(
    _auth: Auth<AnyRole>,
    State(s): State<CatalogState>,
    ApiQuery(q): ApiQuery<ListProducts>,
) -> Result<Json<SearchPage>, Problem> {
    let filter = SearchFilter::parse(&q)?;
    let after = cursor(q.cursor.as_deref())?;
    Ok(Json(s.catalog.search(&filter, after.as_ref(), q.limit.unwrap_or_default(), q.facets.unwrap_or(false)).await?))
}

/// An ingredient, what it does, and the products that contain it.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngredientInfo {
    /// The ingredient.
    #[serde(flatten)]
    pub ingredient: Ingredient,
    /// Search families it belongs to (usable in `exclude_ingredients`).
    pub families: Vec<&'static str>,
    /// How many products declare it.
    pub product_count: i64,
    /// The first 50 of them.
    pub products: Vec<ProductRef>,
}

/// Look up an ingredient by any of its names (INCI, synonym, id; any case), written as a label
/// writes it: `Water (Aqua)`, `Aqua/Water/Eau` (slashes percent-encoded), `Niacinamide 5%`.
#[utoipa::path(get, path = "/v1/ingredients/{name}", tag = "catalog",
    params(("name" = String, Path, description = "INCI name, synonym or id, or a label entry such as `Water (Aqua)`")),
    responses((status = 200, body = IngredientInfo), (status = 404, body = ProblemBody)), security(("bearer" = [])))]
async fn get_ingredient(
    _auth: Auth<AnyRole>,
    State(s): State<CatalogState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<IngredientInfo>, Problem> {
    let kb = KnowledgeBase::bundled();
    let ingredient = kb
        .resolve_label(&name)
        .cloned()
        .ok_or_else(|| Problem::not_found(format!("no ingredient named {name:?} in the knowledge base")))?;
    let families = FAMILIES.iter().map(|(f, _)| *f).filter(|f| in_family(&ingredient, f)).collect();
    let (products, product_count) = s.catalog.products_containing(&ingredient.id, 50).await?;
    Ok(Json(IngredientInfo { ingredient, families, product_count, products }))
}

/// Get a product.
#[utoipa::path(get, path = "/v1/products/{id}", tag = "catalog",
    params(("id" = String, Path, description = "Product id")),
    responses((status = 200, body = Product, headers(("ETag" = String))), (status = 404, body = ProblemBody)),
    security(("bearer" = [])))]
async fn get_product(
    _auth: Auth<AnyRole>,
    State(s): State<CatalogState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    let p = s.catalog.product(&id).await?;
    Ok(with_etag(StatusCode::OK, p.version, p, None, false))
}

/// Change a product (JSON merge patch). Send `If-Match` with the ETag you read to refuse
/// overwriting someone else's change (412).
#[utoipa::path(patch, path = "/v1/products/{id}", tag = "catalog", request_body = UpdateProduct,
    params(("id" = String, Path, description = "Product id"), ("If-Match" = Option<String>, Header, description = "ETag of the version you read")),
    responses((status = 200, body = Product), (status = 403, description = "only admins and merchandisers change the catalog", body = ProblemBody),
        (status = 404, body = ProblemBody), (status = 409, description = "the external id is taken by another product", body = ProblemBody),
        (status = 412, description = "`If-Match` names a version that is no longer current", body = ProblemBody),
        (status = 422, body = ProblemBody)),
    security(("bearer" = [])))]
async fn update_product(
    _auth: Auth<CatalogWrite>,
    State(s): State<CatalogState>,
    ApiPath(id): ApiPath<String>,
    if_match: Option<IfMatch>,
    ApiJson(body): ApiJson<UpdateProduct>,
) -> Result<Response, Problem> {
    let changes = body.parse()?;
    let p = s.catalog.update_product(&id, changes, if_match.map(|m| m.0)).await?;
    Ok(with_etag(StatusCode::OK, p.version, p, None, false))
}

/// Create a SKU under a product.
#[utoipa::path(post, path = "/v1/products/{id}/skus", tag = "catalog", request_body = CreateSku,
    params(("id" = String, Path, description = "Product id"), ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = Sku), (status = 403, description = "only admins and merchandisers change the catalog", body = ProblemBody),
        (status = 404, body = ProblemBody), (status = 409, description = "the code or barcode is taken by another SKU", body = ProblemBody),
        (status = 422, description = "invalid fields, or the Idempotency-Key was used with another body", body = ProblemBody)),
    security(("bearer" = [])))]
async fn create_sku(
    Auth(who, ..): Auth<CatalogWrite>,
    State(s): State<CatalogState>,
    ApiPath(product_id): ApiPath<String>,
    key: Option<IdempotencyKey>,
    ApiJsonBytes(body, raw): ApiJsonBytes<CreateSku>,
) -> Result<Response, Problem> {
    let new = body.parse()?;
    let idem = idempotent(key, format!("catalog.create_sku:{}:{product_id}", who.subject), &raw);
    let Created { value, replayed } = s.catalog.create_sku(&product_id, idem, new).await?;
    let location = format!("/v1/products/{product_id}/skus/{}", value.id);
    Ok(with_etag(StatusCode::CREATED, value.version, value, Some(location), replayed))
}

/// List a product's SKUs.
#[utoipa::path(get, path = "/v1/products/{id}/skus", tag = "catalog",
    params(("id" = String, Path, description = "Product id"), ListSkus),
    responses((status = 200, body = Page<Sku>), (status = 404, body = ProblemBody), (status = 422, description = "an invalid cursor", body = ProblemBody)),
    security(("bearer" = [])))]
async fn list_skus(
    _auth: Auth<AnyRole>,
    State(s): State<CatalogState>,
    ApiPath(product_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListSkus>,
) -> Result<Json<Page<Sku>>, Problem> {
    let after = cursor(q.cursor.as_deref())?;
    Ok(Json(s.catalog.skus(&product_id, after.as_ref(), q.limit.unwrap_or_default()).await?))
}

/// Get a SKU.
#[utoipa::path(get, path = "/v1/products/{id}/skus/{sku_id}", tag = "catalog",
    params(("id" = String, Path, description = "Product id"), ("sku_id" = String, Path, description = "SKU id")),
    responses((status = 200, body = Sku), (status = 404, body = ProblemBody)), security(("bearer" = [])))]
async fn get_sku(
    _auth: Auth<AnyRole>,
    State(s): State<CatalogState>,
    ApiPath((product_id, sku_id)): ApiPath<(String, String)>,
) -> Result<Response, Problem> {
    let sku = s.catalog.sku(&product_id, &sku_id).await?;
    Ok(with_etag(StatusCode::OK, sku.version, sku, None, false))
}

/// Change a SKU (JSON merge patch).
#[utoipa::path(patch, path = "/v1/products/{id}/skus/{sku_id}", tag = "catalog", request_body = UpdateSku,
    params(("id" = String, Path, description = "Product id"), ("sku_id" = String, Path, description = "SKU id"),
        ("If-Match" = Option<String>, Header, description = "ETag of the version you read")),
    responses((status = 200, body = Sku), (status = 403, description = "only admins and merchandisers change the catalog", body = ProblemBody),
        (status = 404, body = ProblemBody), (status = 409, description = "the code or barcode is taken by another SKU", body = ProblemBody),
        (status = 412, description = "`If-Match` names a version that is no longer current", body = ProblemBody),
        (status = 422, body = ProblemBody)),
    security(("bearer" = [])))]
async fn update_sku(
    _auth: Auth<CatalogWrite>,
    State(s): State<CatalogState>,
    ApiPath((product_id, sku_id)): ApiPath<(String, String)>,
    if_match: Option<IfMatch>,
    ApiJson(body): ApiJson<UpdateSku>,
) -> Result<Response, Problem> {
    let changes = body.parse()?;
    let sku = s.catalog.update_sku(&product_id, &sku_id, changes, if_match.map(|m| m.0)).await?;
    Ok(with_etag(StatusCode::OK, sku.version, sku, None, false))
}
