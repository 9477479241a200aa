//! `/v1/api-keys`: create, list and revoke API keys (admin only).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use dermis_core::{ApiJson, ApiPath, FieldError, Problem};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api_keys::{ApiKeyInfo, NewApiKey};
use crate::extract::{AdminOnly, Auth, Authenticator};
use crate::role::{Principal, Role};

/// The routes, over a state that is the authenticator itself.
pub fn router() -> OpenApiRouter<Arc<Authenticator>> {
    OpenApiRouter::new().routes(routes!(create_api_key, list_api_keys)).routes(routes!(revoke_api_key))
}

/// A request for a new API key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// A name for people, 1–100 characters.
    pub name: String,
    /// The role the key acts with.
    pub role: Role,
    /// The store it is bound to (required for `store_associate`).
    #[serde(default)]
    pub store_id: Option<String>,
    /// The channel it is bound to.
    #[serde(default)]
    pub channel: Option<String>,
}

impl CreateApiKey {
    /// Checks the request and turns it into a [`NewApiKey`].
    pub fn parse(self) -> Result<NewApiKey, Problem> {
        let mut errors = Vec::new();
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 100 {
            errors.push(FieldError::new("name", "must be 1 to 100 characters"));
        }
        let probe = Principal {
            subject: "probe".into(),
            role: self.role,
            store_id: self.store_id.clone(),
            channel: None,
            credential: crate::Credential::Jwt,
        };
        if let Err(m) = probe.check_bindings() {
            errors.push(FieldError::new("store_id", m));
        }
        for (field, v) in [("store_id", &self.store_id), ("channel", &self.channel)] {
            if v.as_ref().is_some_and(|s| s.is_empty() || s.len() > 100) {
                errors.push(FieldError::new(field, "must be 1 to 100 characters"));
            }
        }
        if !errors.is_empty() {
            return Err(Problem::validation(errors));
        }
        Ok(NewApiKey { name, role: self.role, store_id: self.store_id, channel: self.channel })
    }
}

/// A new key with its secret, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The key's description.
    #[serde(flatten)]
    pub key: ApiKeyInfo,
    /// The full key to send as `Authorization: Bearer <secret>`. It is not stored and cannot be shown again.
    pub secret: String,
}

/// A list of API keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    /// The keys, newest first.
    pub items: Vec<ApiKeyInfo>,
}

fn store_problem(e: dermis_store::StoreError) -> Problem {
    crate::extract::problem(crate::AuthError::Store(e))
}

/// Create an API key.
#[utoipa::path(post, path = "/v1/api-keys", tag = "auth", request_body = CreateApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 403, description = "admins only", body = dermis_core::problem::ProblemBody),
        (status = 422, body = dermis_core::problem::ProblemBody)),
    security(("bearer" = [])))]
async fn create_api_key(
    _auth: Auth<AdminOnly>,
    State(auth): State<Arc<Authenticator>>,
    ApiJson(body): ApiJson<CreateApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>), Problem> {
    let new = body.parse()?;
    let (key, secret) = auth.api_keys().create(new).await.map_err(store_problem)?;
    Ok((StatusCode::CREATED, Json(CreatedApiKey { key, secret })))
}

/// List API keys (without secrets).
#[utoipa::path(get, path = "/v1/api-keys", tag = "auth",
    responses((status = 200, body = ApiKeyList), (status = 403, description = "admins only", body = dermis_core::problem::ProblemBody)),
    security(("bearer" = [])))]
async fn list_api_keys(
    _auth: Auth<AdminOnly>,
    State(auth): State<Arc<Authenticator>>,
) -> Result<Json<ApiKeyList>, Problem> {
    Ok(Json(ApiKeyList { items: auth.api_keys().list().await.map_err(store_problem)? }))
}

/// Revoke an API key; it stops working at once on this node and within a minute everywhere.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "auth",
    params(("id" = String, Path, description = "The key's id")),
    responses((status = 204), (status = 403, description = "admins only", body = dermis_core::problem::ProblemBody),
        (status = 404, body = dermis_core::problem::ProblemBody)), security(("bearer" = [])))]
async fn revoke_api_key(
    _auth: Auth<AdminOnly>,
    State(auth): State<Arc<Authenticator>>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, Problem> {
    if auth.api_keys().revoke(&id).await.map_err(store_problem)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!("no API key {id}")))
    }
}
