//! `/v1/customers...`, `/v1/customer-merges/{merge_id}`. Handlers translate; [`Customers`] decides.
//!
//! Who may do what:
//! - `admin` and `service`: everything.
//! - `store_associate`: creates, finds, reads and writes customers, but reads health facts
//!   (conditions, sensitivities, allergies, pregnancy) only while a consultation of the customer
//!   at the associate's store is open (`POST /v1/customers/{id}/consultations`, expires);
//!   otherwise they are withheld and listed in `redacted`.
//! - `customer`: only their own customer, named by the token's subject (the customer id or the
//!   linked user id); a customer may sign up once, linked to their subject.
//! - `merchandiser` and `analyst`: no access to direct identifiers (403).
//! - Merges (`POST /v1/customers/{id}/merges`, `DELETE /v1/customer-merges/{merge_id}`) and the
//!   identity graph (`GET /v1/customers/{id}/identifiers`): `admin` and `service` only.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dermis_auth::{Auth, Authenticator, Principal, Role};
use dermis_core::problem::ProblemBody;
use dermis_core::{ApiJsonBytes, ApiPath, ApiQuery, FieldError, IdempotencyKey, IfMatch, Problem, ProblemKind, etag};
use dermis_store::idempotency::request_hash;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::CustomersError;
use crate::crypto::LookupKind;
use crate::identity::{IdentityView, Merge};
use crate::input::{
    CreateCustomer, FindCustomers, MergeRequest, OpenConsultation, PutConsent, PutSkinProfile, UpdateCustomer,
};
use crate::model::{Consents, Consultation, Customer};
use crate::privacy::{Erasure, Export};
use crate::service::{Actor, Created, Customers, Idempotent};

dermis_auth::role_policy!(
    /// Who may reach a customer's data (customers: only their own).
    CustomerAccess, "admin, service, store_associate or the customer themselves", [Admin, Service, StoreAssociate, Customer]
);

dermis_auth::role_policy!(
    /// Who may export or erase a customer's data (customers: only their own).
    PrivacyRequest, "admin, service or the customer themselves", [Admin, Service, Customer]
);

dermis_auth::role_policy!(
    /// Who may open consultations.
    ConsultationOpen, "admin, service or store_associate", [Admin, Service, StoreAssociate]
);

dermis_auth::role_policy!(
    /// Who may find customers by email, phone, loyalty number or user id.
    CustomerLookup, "admin, service or store_associate", [Admin, Service, StoreAssociate]
);

dermis_auth::role_policy!(
    /// Who may merge and unmerge customers and read their identity graph.
    IdentityAdmin, "admin or service", [Admin, Service]
);

/// What the customers routes need.
#[derive(Debug, Clone)]
pub struct CustomersState {
    /// The customers.
    pub customers: Customers,
    /// Authenticates callers.
    pub auth: Arc<Authenticator>,
}

impl FromRef<CustomersState> for Arc<Authenticator> {
    fn from_ref(s: &CustomersState) -> Self {
        s.auth.clone()
    }
}

/// The routes.
pub fn router() -> OpenApiRouter<CustomersState> {
    OpenApiRouter::new()
        .routes(routes!(create_customer, find_customers))
        .routes(routes!(get_customer, update_customer, erase_customer))
        .routes(routes!(export_customer))
        .routes(routes!(get_erasure))
        .routes(routes!(put_skin_profile))
        .routes(routes!(get_consents))
        .routes(routes!(put_consent))
        .routes(routes!(open_consultation))
        .routes(routes!(close_consultation))
        .routes(routes!(merge_customers))
        .routes(routes!(unmerge_customers))
        .routes(routes!(customer_identifiers))
}

impl From<CustomersError> for Problem {
    fn from(e: CustomersError) -> Self {
        match e {
            CustomersError::NotFound(_) => Problem::not_found(e.to_string()),
            CustomersError::Duplicate { .. } => Problem::conflict(e.to_string()),
            CustomersError::VersionMismatch { .. } => Problem::new(ProblemKind::PreconditionFailed, e.to_string()),
            CustomersError::ConsentRequired(purpose) => Problem {
                errors: vec![FieldError::new(format!("consents.{}", purpose.as_str()), "is not granted")],
                ..Problem::conflict(e.to_string())
            },
            CustomersError::Invalid { field, message } => Problem::validation(vec![FieldError::new(field, message)]),
            CustomersError::Forbidden(m) => Problem::new(ProblemKind::Forbidden, m),
            CustomersError::Conflict(m) => Problem::conflict(m),
            CustomersError::IdempotencyKeyReused => Problem::new(ProblemKind::IdempotencyKeyReused, e.to_string()),
            CustomersError::Source(_) => Problem::unavailable(&e),
            CustomersError::Crypto(c) => Problem::internal(&c),
            CustomersError::Store(s) => s.into(),
        }
    }
}

/// A JSON object body, with its raw bytes (serde would also take a struct's fields from an
/// array, so `[]` would pass for an empty object).
pub struct JsonObject<T>(pub T, pub Bytes);

impl<T, S> FromRequest<S> for JsonObject<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ApiJsonBytes(value, raw) = ApiJsonBytes::<T>::from_request(req, state).await?;
        if raw.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(Problem::malformed("the body must be a JSON object"));
        }
        Ok(Self(value, raw))
    }
}

/// Customers found by a lookup (none or one).
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerList {
    /// The customers.
    pub items: Vec<Customer>,
}

fn respond<T: Serialize>(
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

/// Checks that the caller may act on the customer `reference` names.
async fn authorize(s: &CustomersState, who: &Principal, reference: &str) -> Result<(), Problem> {
    if who.role != Role::Customer || reference == who.subject {
        return Ok(());
    }
    let own = s.customers.resolve(&who.subject).await?;
    if own.as_deref() == Some(reference) {
        return Ok(());
    }
    Err(CustomersError::Forbidden("a customer token reaches only its own customer".into()).into())
}

/// What this caller may see of a customer.
async fn view(s: &CustomersState, who: &Principal, mut c: Customer) -> Result<Customer, Problem> {
    if who.role == Role::StoreAssociate {
        let open = match who.store_id.as_deref() {
            Some(store) => s.customers.consultation_open(&c.id, store).await?,
            None => false,
        };
        if !open {
            c.redact_health();
        }
    }
    Ok(c)
}

async fn actor(s: &CustomersState, who: &Principal) -> Result<Actor, Problem> {
    let id = if who.role == Role::Customer {
        s.customers.resolve(&who.subject).await?.unwrap_or_else(|| who.subject.clone())
    } else {
        who.subject.clone()
    };
    Ok(Actor { id, role: who.role.as_str().to_owned() })
}

/// Create a customer.
///
/// Contact data, identifiers and the skin profile are stored encrypted. Health facts
/// (conditions, sensitivities, allergies, pregnancy) need the `health_data` consent, which may
/// be given in `consents` of the same request. Send an `Idempotency-Key` to make retries safe.
#[utoipa::path(post, path = "/v1/customers", tag = "customers", request_body = CreateCustomer,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = Customer, headers(("ETag" = String))),
        (status = 403, description = "the role may not create customers, or a customer signs up for another user id", body = ProblemBody),
        (status = 409, description = "an identifier belongs to another customer, or health facts without the `health_data` consent", body = ProblemBody),
        (status = 422, description = "invalid fields, or the Idempotency-Key was used with another body", body = ProblemBody)),
    security(("bearer" = [])))]
async fn create_customer(
    Auth(who, ..): Auth<CustomerAccess>,
    State(s): State<CustomersState>,
    key: Option<IdempotencyKey>,
    JsonObject(mut body, raw): JsonObject<CreateCustomer>,
) -> Result<Response, Problem> {
    if who.role == Role::Customer {
        if who.subject.starts_with("cus_") || body.user_id.as_ref().is_some_and(|u| u.trim() != who.subject) {
            return Err(
                CustomersError::Forbidden("a customer signs up only as the user id of their token".into()).into()
            );
        }
        body.user_id = Some(who.subject.clone());
    }
    let new = body.parse(s.customers.now_ms())?;
    let actor = actor(&s, &who).await?;
    let idem = key.map(|key| Idempotent {
        scope: format!("customers.create:{}", who.subject),
        key,
        request_hash: request_hash(&raw),
    });
    let Created { value, replayed } = s.customers.create(idem, new, &actor).await?;
    let location = format!("/v1/customers/{}", value.id);
    Ok(respond(StatusCode::CREATED, value.version, view(&s, &who, value).await?, Some(location), replayed))
}

/// Find a customer by exactly one of email (any case), phone (E.164), loyalty number or user id.
///
/// The values are compared through keyed hashes; none is stored in clear.
#[utoipa::path(get, path = "/v1/customers", tag = "customers", params(FindCustomers),
    responses((status = 200, body = CustomerList), (status = 403, description = "the role may not look customers up", body = ProblemBody),
        (status = 422, description = "not exactly one identifier, or an invalid one", body = ProblemBody)),
    security(("bearer" = [])))]
async fn find_customers(
    Auth(who, ..): Auth<CustomerLookup>,
    State(s): State<CustomersState>,
    ApiQuery(q): ApiQuery<FindCustomers>,
) -> Result<Json<CustomerList>, Problem> {
    let lookup = q.parse()?;
    let mut items = Vec::new();
    if let Some(c) = s.customers.find(&lookup).await? {
        items.push(view(&s, &who, c).await?);
    }
    Ok(Json(CustomerList { items }))
}

/// Get a customer, by customer id or by the user id it was linked with.
#[utoipa::path(get, path = "/v1/customers/{id}", tag = "customers",
    params(("id" = String, Path, description = "Customer id or linked user id")),
    responses((status = 200, body = Customer, headers(("ETag" = String))),
        (status = 403, description = "not this caller's customer, or a role without access", body = ProblemBody),
        (status = 404, body = ProblemBody)),
    security(("bearer" = [])))]
async fn get_customer(
    Auth(who, ..): Auth<CustomerAccess>,
    State(s): State<CustomersState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    authorize(&s, &who, &id).await?;
    let c = s.customers.get(&id).await?;
    Ok(respond(StatusCode::OK, c.version, view(&s, &who, c).await?, None, false))
}

/// Change contact data and identifiers (JSON merge patch). Send `If-Match` with the ETag you
/// read to refuse overwriting someone else's change (412).
#[utoipa::path(patch, path = "/v1/customers/{id}", tag = "customers", request_body = UpdateCustomer,
    params(("id" = String, Path, description = "Customer id or linked user id"),
        ("If-Match" = Option<String>, Header, description = "ETag of the version you read")),
    responses((status = 200, body = Customer, headers(("ETag" = String))),
        (status = 403, description = "not this caller's customer, or a role without access", body = ProblemBody),
        (status = 404, body = ProblemBody), (status = 409, description = "an identifier belongs to another customer", body = ProblemBody),
        (status = 412, description = "`If-Match` names a version that is no longer current", body = ProblemBody),
        (status = 422, body = ProblemBody)),
    security(("bearer" = [])))]
async fn update_customer(
    Auth(who, ..): Auth<CustomerAccess>,
    State(s): State<CustomersState>,
    ApiPath(id): ApiPath<String>,
    if_match: Option<IfMatch>,
    JsonObject(body, _): JsonObject<UpdateCustomer>,
) -> Result<Response, Problem> {
    authorize(&s, &who, &id).await?;
    let changes = body.parse(s.customers.now_ms())?;
    if who.role == Role::Customer && changes.user_id.is_some() {
        return Err(
            CustomersError::Forbidden("a customer cannot change the user id they are linked with".into()).into()
        );
    }
    let c = s.customers.update(&id, changes, if_match.map(|m| m.0)).await?;
    Ok(respond(StatusCode::OK, c.version, view(&s, &who, c).await?, None, false))
}

/// Set skin facts: members sent replace those facts (recorded with `source` and the time),
/// `null` removes one, absent ones stay.
///
/// Health facts (conditions, sensitivities, allergies, pregnant, breastfeeding) need the
/// customer's `health_data` consent: without it the answer is 409 naming it, and nothing is
/// stored. Allergy names the ingredient knowledge base does not know are kept and listed in
/// `unknown_allergens`.
#[utoipa::path(put, path = "/v1/customers/{id}/skin-profile", tag = "customers", request_body = PutSkinProfile,
    params(("id" = String, Path, description = "Customer id or linked user id"),
        ("If-Match" = Option<String>, Header, description = "ETag of the version you read")),
    responses((status = 200, body = Customer, headers(("ETag" = String))),
        (status = 403, description = "not this caller's customer, or a role without access", body = ProblemBody),
        (status = 404, body = ProblemBody),
        (status = 409, description = "health facts without the `health_data` consent (nothing stored)", body = ProblemBody),
        (status = 412, description = "`If-Match` names a version that is no longer current", body = ProblemBody),
        (status = 422, description = "an unknown skin type, condition, concern or source", body = ProblemBody)),
    security(("bearer" = [])))]
async fn put_skin_profile(
    Auth(who, ..): Auth<CustomerAccess>,
    State(s): State<CustomersState>,
    ApiPath(id): ApiPath<String>,
    if_match: Option<IfMatch>,
    JsonObject(body, _): JsonObject<PutSkinProfile>,
) -> Result<Response, Problem> {
    authorize(&s, &who, &id).await?;
    let changes = body.parse()?;
    let c = s.customers.put_skin_profile(&id, changes, if_match.map(|m| m.0)).await?;
    Ok(respond(StatusCode::OK, c.version, view(&s, &who, c).await?, None, false))
}

/// Record a consent decision for a purpose: `personalization`, `marketing_email`,
/// `marketing_sms`, `analytics` or `health_data`.
///
/// Every decision is appended to the customer's consent ledger (text version, channel, actor,
/// time). Withdrawing `health_data` deletes the customer's health facts.
#[utoipa::path(put, path = "/v1/customers/{id}/consents/{purpose}", tag = "customers", request_body = PutConsent,
    params(("id" = String, Path, description = "Customer id or linked user id"), ("purpose" = String, Path, description = "The purpose")),
    responses((status = 200, body = Consents),
        (status = 403, description = "not this caller's customer, or a role without access", body = ProblemBody),
        (status = 404, body = ProblemBody), (status = 422, description = "an unknown purpose or an invalid field", body = ProblemBody)),
    security(("bearer" = [])))]
async fn put_consent(
    Auth(who, ..): Auth<CustomerAccess>,
    State(s): State<CustomersState>,
    ApiPath((id, purpose)): ApiPath<(String, String)>,
    JsonObject(body, _): JsonObject<PutConsent>,
) -> Result<Json<Consents>, Problem> {
    let consent = body.parse(&purpose)?;
    authorize(&s, &who, &id).await?;
    let actor = actor(&s, &who).await?;
    Ok(Json(s.customers.set_consent(&id, consent, &actor).await?))
}

/// A customer's consents: the current state of every purpose, and the ledger oldest first.
#[utoipa::path(get, path = "/v1/customers/{id}/consents", tag = "customers",
    params(("id" = String, Path, description = "Customer id or linked user id")),
    responses((status = 200, body = Consents),
        (status = 403, description = "not this caller's customer, or a role without access", body = ProblemBody),
        (status = 404, body = ProblemBody)),
    security(("bearer" = [])))]
async fn get_consents(
    Auth(who, ..): Auth<CustomerAccess>,
    State(s): State<CustomersState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Consents>, Problem> {
    authorize(&s, &who, &id).await?;
    Ok(Json(s.customers.consents(&id).await?))
}

/// Open a consultation of a customer at a store: while it is open (5–240 minutes, default 30),
/// the store's associates read the customer's health facts (allergies, sensitivities,
/// conditions, pregnancy) to advise them.
#[utoipa::path(post, path = "/v1/customers/{id}/consultations", tag = "customers", request_body = OpenConsultation,
    params(("id" = String, Path, description = "Customer id or linked user id")),
    responses((status = 201, body = Consultation),
        (status = 403, description = "only admins, services and store associates (at their own store)", body = ProblemBody),
        (status = 404, body = ProblemBody), (status = 422, description = "a duration out of range, or no store named", body = ProblemBody)),
    security(("bearer" = [])))]
async fn open_consultation(
    Auth(who, ..): Auth<ConsultationOpen>,
    State(s): State<CustomersState>,
    ApiPath(id): ApiPath<String>,
    JsonObject(body, _): JsonObject<OpenConsultation>,
) -> Result<Response, Problem> {
    let duration = body.duration_ms()?;
    let store = match (who.role, who.store_id.as_deref(), body.store_id.as_deref()) {
        (Role::StoreAssociate, Some(own), Some(asked)) if own != asked => {
            return Err(
                CustomersError::Forbidden("an associate opens consultations only at their own store".into()).into()
            );
        }
        (_, Some(own), _) => own.to_owned(),
        (_, None, Some(asked)) if !asked.trim().is_empty() && asked.len() <= 100 => asked.trim().to_owned(),
        _ => return Err(Problem::validation(vec![FieldError::new("store_id", "name the store (1–100 characters)")])),
    };
    let c = s.customers.open_consultation(&id, &store, &who.subject, duration).await?;
    let location = format!("/v1/customers/{}/consultations/{}", c.customer_id, c.id);
    let mut res = (StatusCode::CREATED, Json(c)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// Close a consultation before it expires.
#[utoipa::path(delete, path = "/v1/customers/{id}/consultations/{consultation_id}", tag = "customers",
    params(("id" = String, Path, description = "Customer id or linked user id"), ("consultation_id" = String, Path, description = "The consultation")),
    responses((status = 204, description = "closed"),
        (status = 403, description = "only admins, services and store associates", body = ProblemBody),
        (status = 404, description = "no open consultation with this id (at the associate's store)", body = ProblemBody)),
    security(("bearer" = [])))]
async fn close_consultation(
    Auth(who, ..): Auth<ConsultationOpen>,
    State(s): State<CustomersState>,
    ApiPath((id, consultation_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, Problem> {
    let store = if who.role == Role::StoreAssociate { who.store_id.as_deref() } else { None };
    s.customers.close_consultation(&id, &consultation_id, store).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who asked for an erasure, as recorded: a customer by a keyed hash of their token's subject
/// (the erasure removes every other trace of it).
fn requester(s: &CustomersState, who: &Principal) -> String {
    if who.role == Role::Customer {
        format!("customer:{}", s.customers.lookup_hash(LookupKind::UserId, &who.subject))
    } else {
        format!("{}:{}", who.role, who.subject)
    }
}

/// Export everything held about a customer (GDPR art. 15 and 20) as one JSON document: profile,
/// skin profile with each fact's source, consents with their history, and every other domain's
/// part (events ...).
#[utoipa::path(get, path = "/v1/customers/{id}/export", tag = "customers",
    params(("id" = String, Path, description = "Customer id or linked user id")),
    responses((status = 200, body = Export),
        (status = 403, description = "not this caller's customer, or a role without access", body = ProblemBody),
        (status = 404, body = ProblemBody), (status = 503, description = "a domain could not export its part", body = ProblemBody)),
    security(("bearer" = [])))]
async fn export_customer(
    Auth(who, ..): Auth<PrivacyRequest>,
    State(s): State<CustomersState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Export>, Problem> {
    authorize(&s, &who, &id).await?;
    Ok(Json(s.customers.export(&id).await?))
}

/// Erase a customer (GDPR art. 17). The customer is gone (404) and their data key destroyed when
/// this answers; the other domains (events, features ...) follow in the background: follow the
/// status resource in `Location`.
#[utoipa::path(delete, path = "/v1/customers/{id}", tag = "customers",
    params(("id" = String, Path, description = "Customer id or linked user id")),
    responses((status = 202, body = Erasure, headers(("Location" = String))),
        (status = 403, description = "not this caller's customer, or a role without access", body = ProblemBody),
        (status = 404, description = "no such customer (or erased already)", body = ProblemBody)),
    security(("bearer" = [])))]
async fn erase_customer(
    Auth(who, ..): Auth<PrivacyRequest>,
    State(s): State<CustomersState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    authorize(&s, &who, &id).await?;
    let erasure = s.customers.request_erasure(&id, &requester(&s, &who)).await?;
    let location = format!("/v1/customer-erasures/{}", erasure.id);
    let mut res = (StatusCode::ACCEPTED, Json(erasure)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// An erasure's status: `pending` (the customer is gone from the customers domain; other
/// domains are being erased), `completed`, or `failed` (retried).
#[utoipa::path(get, path = "/v1/customer-erasures/{id}", tag = "customers",
    params(("id" = String, Path, description = "The erasure")),
    responses((status = 200, body = Erasure),
        (status = 403, description = "a customer reads only the erasure they asked for", body = ProblemBody),
        (status = 404, body = ProblemBody)),
    security(("bearer" = [])))]
async fn get_erasure(
    Auth(who, ..): Auth<PrivacyRequest>,
    State(s): State<CustomersState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Erasure>, Problem> {
    if who.role == Role::Customer && s.customers.erasure_requested_by(&id).await? != requester(&s, &who) {
        return Err(CustomersError::Forbidden("a customer reads only the erasure they asked for".into()).into());
    }
    Ok(Json(s.customers.erasure(&id).await?))
}

/// Merge customer `other` into this one (by hand): `other`'s identifiers (and so its events) move
/// here, this customer's empty contact and skin fields take `other`'s values, and `other` answers
/// as this customer until the merge is undone (`DELETE /v1/customer-merges/{merge_id}`).
#[utoipa::path(post, path = "/v1/customers/{id}/merges", tag = "customers", request_body = MergeRequest,
    params(("id" = String, Path, description = "Customer id or linked user id: the customer that stays")),
    responses((status = 201, body = Merge),
        (status = 403, description = "a role other than admin or service", body = ProblemBody),
        (status = 404, description = "either customer is unknown", body = ProblemBody),
        (status = 409, description = "a merge of a customer with itself", body = ProblemBody),
        (status = 422, description = "an invalid body", body = ProblemBody)),
    security(("bearer" = [])))]
async fn merge_customers(
    Auth(who, ..): Auth<IdentityAdmin>,
    State(s): State<CustomersState>,
    ApiPath(id): ApiPath<String>,
    JsonObject(body, _): JsonObject<MergeRequest>,
) -> Result<Response, Problem> {
    let other = body.parse()?;
    let merge = s.customers.merge(&id, &other, &who.subject).await?;
    Ok((StatusCode::CREATED, Json(merge)).into_response())
}

/// Undo a merge: both customers are restored, each with its identifiers (and so its events).
#[utoipa::path(delete, path = "/v1/customer-merges/{merge_id}", tag = "customers",
    params(("merge_id" = String, Path, description = "The merge (`mrg_...`)")),
    responses((status = 200, body = Merge),
        (status = 403, description = "a role other than admin or service", body = ProblemBody),
        (status = 404, description = "no such merge, or undone already", body = ProblemBody)),
    security(("bearer" = [])))]
async fn unmerge_customers(
    _auth: Auth<IdentityAdmin>,
    State(s): State<CustomersState>,
    ApiPath(merge_id): ApiPath<String>,
) -> Result<Json<Merge>, Problem> {
    Ok(Json(s.customers.unmerge(&merge_id).await?))
}

/// A customer's identifiers in the identity graph (kinds and keyed hashes, never the values) and
/// the merges it took part in.
#[utoipa::path(get, path = "/v1/customers/{id}/identifiers", tag = "customers",
    params(("id" = String, Path, description = "Customer id or linked user id")),
    responses((status = 200, body = IdentityView),
        (status = 403, description = "a role other than admin or service", body = ProblemBody),
        (status = 404, body = ProblemBody)),
    security(("bearer" = [])))]
async fn customer_identifiers(
    _auth: Auth<IdentityAdmin>,
    State(s): State<CustomersState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<IdentityView>, Problem> {
    Ok(Json(s.customers.identity(&id).await?))
}
