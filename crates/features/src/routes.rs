//! HTTP: `/v1/features/customers/{id}` and `/v1/features/products/{id}`, as the recommendation
//! path and the store associates' tools read them.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, State};
use dermis_auth::{AnyRole, Auth, Authenticator, Role};
use dermis_core::problem::ProblemBody;
use dermis_core::{ApiPath, Problem, ProblemKind};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::service::Features;
use crate::{CustomerFeatures, FeatureError, ProductFeatures};

/// What the features routes need.
#[derive(Debug, Clone)]
pub struct FeaturesState {
    /// The feature store.
    pub features: Features,
    /// Authenticates callers.
    pub auth: Arc<Authenticator>,
}

impl FromRef<FeaturesState> for Arc<Authenticator> {
    fn from_ref(s: &FeaturesState) -> Self {
        s.auth.clone()
    }
}

impl From<FeatureError> for Problem {
    fn from(e: FeatureError) -> Self {
        match e {
            // The store is away (Redis down): retry shortly.
            FeatureError::Redis(_) => Problem::unavailable(&e),
            FeatureError::Snapshot(_) => Problem::internal(&e),
        }
    }
}

/// The features routes.
pub fn router() -> OpenApiRouter<FeaturesState> {
    OpenApiRouter::new().routes(routes!(customer_features)).routes(routes!(product_features))
}

/// A customer's online features (what they just did), as the recommendation path reads them.
/// Admins, services, analysts and store associates may read any customer's; a customer only
/// their own.
#[utoipa::path(get, path = "/v1/features/customers/{id}", tag = "features",
    params(("id" = String, Path, description = "User id (or anonymous id)")),
    responses((status = 200, body = CustomerFeatures), (status = 403, body = ProblemBody),
        (status = 404, description = "nothing is known of this customer (never seen, expired or erased)", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn customer_features(
    Auth(who, ..): Auth<AnyRole>,
    State(s): State<FeaturesState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CustomerFeatures>, Problem> {
    let allowed = match who.role {
        Role::Admin | Role::Service | Role::Analyst | Role::StoreAssociate => true,
        Role::Customer => who.customer_id() == Some(id.as_str()),
        Role::Merchandiser | Role::Dermatologist => false,
    };
    if !allowed {
        return Err(Problem::new(
            ProblemKind::Forbidden,
            "customers may read only their own features; merchandisers none",
        ));
    }
    let f = s
        .features
        .customer(&id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no online features for customer {id:?}")))?;
    Ok(Json(f))
}

/// A product's online features: views, add-to-carts, purchases over 1 h / 24 h / 7 d, conversion, trend.
#[utoipa::path(get, path = "/v1/features/products/{id}", tag = "features",
    params(("id" = String, Path, description = "The product's Dermis id, or the id events use for it (its external id)")),
    responses((status = 200, body = ProductFeatures),
        (status = 404, description = "the catalog has no such product", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn product_features(
    _a: Auth<AnyRole>,
    State(s): State<FeaturesState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ProductFeatures>, Problem> {
    let f = s
        .features
        .product(&id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("the catalog has no product {id:?}")))?;
    Ok(Json(f))
}
