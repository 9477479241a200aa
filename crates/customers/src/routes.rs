//! `/v1/customers...`, `/v1/customer-merges/{merge_id}`, `/v1/customer-erasures/{id}`,
//! `/v1/customer-exports/{export_id}`. Handlers translate; [`Customers`] decides.
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
//! - `dermatologist`: `POST /v1/customers/{id}/assessments` (409 without the customer's
//!   `health_data` consent) and `GET /v1/customers/{id}/skin-profile` (403 without it); nothing
//!   else of customers.
//! - Merges (`POST /v1/customers/{id}/merges`, `DELETE /v1/customer-merges/{merge_id}`) and the
//!   identity graph (`GET /v1/customers/{id}/identifiers`): `admin` and `service` only.
//! - A customer's part of the audit log (`GET /v1/customers/{id}/audit`): `admin` only.
//! - Asynchronous exports (`POST /v1/customers/{id}/exports`, `GET /v1/customer-exports/{id}`):
//!   as the synchronous export; a customer reads only exports of their own customer.
//!
//! Every handler records its access in the audit log before it answers ([`crate::access`]):
//! actor and role, purpose (`x-purpose`, else the handler's default), request id, action, the
//! resolved customer id and the names of the fields read or written. When the log cannot take
//! the entry the answer is 503, without the data.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dermis_audit::{Action, Auditor, Entry, Record, RequestId};
use dermis_auth::{AdminOnly, Auth, Authenticator, Principal, Role};
use dermis_core::problem::ProblemBody;
use dermis_core::{ApiJsonBytes, ApiPath, ApiQuery, FieldError, IdempotencyKey, IfMatch, Problem, ProblemKind, etag};
use dermis_store::idempotency::request_hash;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::CustomersError;
use crate::access::{self, AccessPurpose, changed_fields, returned_fields, skin_fields};
use crate::analytics::AnalyticsPage;
use crate::crypto::LookupKind;
use crate::exports::{CustomerExport, DEFAULT_TTL_MS};
use crate::identity::{IdentityView, Merge};
use crate::input::{
    CreateCustomer, FindCustomers, MergeRequest, OpenConsultation, PutConsent, PutSkinProfile, RecordAssessment,
    UpdateCustomer,
};
use crate::model::{Consents, Consultation, Customer};
use crate::privacy::{Erasure, Export};
use crate::service::{Actor, Created, Customers, Idempotent};
use crate::suggestions::{MatchRunReport, MatchRunRequest, MatchSuggestion};

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
    /// Who may read the pseudonymous analytics view of customers.
    AnalyticsRead, "admin, service or analyst", [Admin, Service, Analyst]
);

dermis_auth::role_policy!(
    /// Who may merge and unmerge customers and read their identity graph.
    IdentityAdmin, "admin or service", [Admin, Service]
);

/// What the customers routes need.
#[derive(Clone)]
pub struct CustomersState {
    /// The customers.
    pub customers: Customers,
    /// Authenticates callers.
    pub auth: Arc<Authenticator>,
    /// Records every access (an access it cannot record is not answered).
    pub audit: Arc<dyn Auditor>,
    /// How long an asynchronous export is kept, in milliseconds.
    pub export_ttl_ms: i64,
}

impl std::fmt::Debug for CustomersState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomersState")
            .field("customers", &self.customers)
            .field("export_ttl_ms", &self.export_ttl_ms)
            .finish_non_exhaustive()
    }
}

impl CustomersState {
    /// The routes' state; exports are kept [`DEFAULT_TTL_MS`] (7 days).
    pub fn new(customers: Customers, auth: Arc<Authenticator>, audit: Arc<dyn Auditor>) -> Self {
        Self { customers, auth, audit, export_ttl_ms: DEFAULT_TTL_MS }
    }

    /// Keeps asynchronous exports for `ttl` instead.
    pub fn with_export_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.export_ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self
    }
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
        .routes(routes!(request_export))
        .routes(routes!(get_export))
        .routes(routes!(customer_audit))
        .routes(routes!(get_erasure))
        .routes(routes!(put_skin_profile))
        .routes(routes!(get_consents))
        .routes(routes!(put_consent))
        .routes(routes!(open_consultation))
        .routes(routes!(close_consultation))
        .routes(routes!(merge_customers))
        .routes(routes!(unmerge_customers))
        .routes(routes!(customer_identifiers))
        .routes(routes!(analytics_customers))
        .routes(routes!(run_matching))
        .routes(routes!(list_suggestions))
        .routes(routes!(accept_suggestion))
        .routes(routes!(dismiss_suggestion))
        .routes(routes!(record_assessment))
        .routes(routes!(get_skin_profile))
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

/// An audit entry of this request: by `actor` (a customer as their customer id), for
/// `purpose`, about nobody yet.
fn entry(actor: &Actor, purpose: String, rid: &RequestId, action: Action) -> Entry {
    Entry::new(actor.id.clone(), actor.role.clone(), purpose, rid.as_str(), action)
}

/// The default purpose of support work: `self_service` when customers act on their own data.
fn support(who: &Principal) -> &'static str {
    if who.role == Role::Customer { "self_service" } else { "support" }
}

/// The names of the fields an export document holds: the profile's, `consents`, and
/// `domains.NAME` for each other domain's part.
fn document_fields(doc: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(c) = doc.get("customer").and_then(|c| c.as_object()) {
        for (k, v) in c {
            match k.as_str() {
                "id" | "version" | "created_at" | "updated_at" | "redacted" => {}
                "skin_profile" => {
                    if let Some(p) = v.as_object() {
                        out.extend(p.keys().map(|f| format!("skin_profile.{f}")));
                    }
                }
                "unknown_allergens" if v.as_array().is_some_and(Vec::is_empty) => {}
                _ => out.push(k.clone()),
            }
        }
    }
    if doc.get("consents").is_some() {
        out.push("consents".to_owned());
    }
    if let Some(d) = doc.get("domains").and_then(|d| d.as_object()) {
        out.extend(d.keys().map(|k| format!("domains.{k}")));
    }
    out
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
    rid: RequestId,
    purpose: AccessPurpose,
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
    let written = returned_fields(&value);
    let (id, version) = (value.id.clone(), value.version);
    let shown = view(&s, &who, value).await?;
    // A customer signing up acts as the customer they now are.
    let actor = if who.role == Role::Customer { Actor { id: id.clone(), ..actor } } else { actor };
    let purpose = purpose.or(support(&who));
    let mut entries = Vec::new();
    if !replayed {
        entries.push(entry(&actor, purpose.clone(), &rid, Action::CUSTOMER_CREATE).about(&id).fields(&written));
    }
    entries.push(entry(&actor, purpose, &rid, Action::CUSTOMER_READ).about(&id).fields(&returned_fields(&shown)));
    access::record(s.audit.as_ref(), entries).await?;
    Ok(respond(StatusCode::CREATED, version, shown, Some(location), replayed))
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
    rid: RequestId,
    purpose: AccessPurpose,
    ApiQuery(q): ApiQuery<FindCustomers>,
) -> Result<Json<CustomerList>, Problem> {
    let lookup = q.parse()?;
    let mut items = Vec::new();
    if let Some(c) = s.customers.find(&lookup).await? {
        items.push(view(&s, &who, c).await?);
    }
    let mut e = entry(&actor(&s, &who).await?, purpose.or(support(&who)), &rid, Action::CUSTOMER_FIND);
    if let Some(c) = items.first() {
        e = e.about(&c.id).fields(&returned_fields(c));
    }
    access::record(s.audit.as_ref(), vec![e]).await?;
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
    rid: RequestId,
    purpose: AccessPurpose,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    authorize(&s, &who, &id).await?;
    let c = view(&s, &who, s.customers.get(&id).await?).await?;
    let e = entry(&actor(&s, &who).await?, purpose.or(support(&who)), &rid, Action::CUSTOMER_READ)
        .about(&c.id)
        .fields(&returned_fields(&c));
    access::record(s.audit.as_ref(), vec![e]).await?;
    Ok(respond(StatusCode::OK, c.version, c, None, false))
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
    rid: RequestId,
    purpose: AccessPurpose,
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
    let written = changed_fields(&changes);
    let c = view(&s, &who, s.customers.update(&id, changes, if_match.map(|m| m.0)).await?).await?;
    write_and_read(&s, &who, &rid, purpose, Action::CUSTOMER_UPDATE, &written, &c).await?;
    Ok(respond(StatusCode::OK, c.version, c, None, false))
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
    rid: RequestId,
    purpose: AccessPurpose,
    ApiPath(id): ApiPath<String>,
    if_match: Option<IfMatch>,
    JsonObject(body, _): JsonObject<PutSkinProfile>,
) -> Result<Response, Problem> {
    authorize(&s, &who, &id).await?;
    let changes = body.parse()?;
    let written = skin_fields(&changes);
    let c = view(&s, &who, s.customers.put_skin_profile(&id, changes, if_match.map(|m| m.0)).await?).await?;
    write_and_read(&s, &who, &rid, purpose, Action::SKIN_PROFILE_WRITE, &written, &c).await?;
    Ok(respond(StatusCode::OK, c.version, c, None, false))
}

/// Records a write of `written` and the read of what the answer shows.
async fn write_and_read(
    s: &CustomersState,
    who: &Principal,
    rid: &RequestId,
    purpose: AccessPurpose,
    action: Action,
    written: &[String],
    shown: &Customer,
) -> Result<(), Problem> {
    let actor = actor(s, who).await?;
    let purpose = purpose.or(support(who));
    let entries = vec![
        entry(&actor, purpose.clone(), rid, action).about(&shown.id).fields(written),
        entry(&actor, purpose, rid, Action::CUSTOMER_READ).about(&shown.id).fields(&returned_fields(shown)),
    ];
    access::record(s.audit.as_ref(), entries).await
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
    rid: RequestId,
    why: AccessPurpose,
    ApiPath((id, purpose)): ApiPath<(String, String)>,
    JsonObject(body, _): JsonObject<PutConsent>,
) -> Result<Json<Consents>, Problem> {
    let consent = body.parse(&purpose)?;
    authorize(&s, &who, &id).await?;
    let actor = actor(&s, &who).await?;
    let written = format!("consents.{}", consent.purpose.as_str());
    let consents = s.customers.set_consent(&id, consent, &actor).await?;
    let why = why.or(support(&who));
    let entries = vec![
        entry(&actor, why.clone(), &rid, Action::CONSENT_WRITE).about(&consents.customer_id).fields(&[written]),
        entry(&actor, why, &rid, Action::CONSENT_READ).about(&consents.customer_id).fields(&["consents"]),
    ];
    access::record(s.audit.as_ref(), entries).await?;
    Ok(Json(consents))
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
    rid: RequestId,
    purpose: AccessPurpose,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Consents>, Problem> {
    authorize(&s, &who, &id).await?;
    let consents = s.customers.consents(&id).await?;
    let e = entry(&actor(&s, &who).await?, purpose.or(support(&who)), &rid, Action::CONSENT_READ)
        .about(&consents.customer_id)
        .fields(&["consents"]);
    access::record(s.audit.as_ref(), vec![e]).await?;
    Ok(Json(consents))
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
    rid: RequestId,
    purpose: AccessPurpose,
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
    let e = entry(&actor(&s, &who).await?, purpose.or(support(&who)), &rid, Action::CONSULTATION_OPEN)
        .about(&c.customer_id);
    access::record(s.audit.as_ref(), vec![e]).await?;
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
    rid: RequestId,
    purpose: AccessPurpose,
    ApiPath((id, consultation_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, Problem> {
    let store = if who.role == Role::StoreAssociate { who.store_id.as_deref() } else { None };
    s.customers.close_consultation(&id, &consultation_id, store).await?;
    let mut e = entry(&actor(&s, &who).await?, purpose.or(support(&who)), &rid, Action::CONSULTATION_CLOSE);
    if let Some(customer_id) = s.customers.resolve(&id).await? {
        e = e.about(customer_id);
    }
    access::record(s.audit.as_ref(), vec![e]).await?;
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
    rid: RequestId,
    purpose: AccessPurpose,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Export>, Problem> {
    authorize(&s, &who, &id).await?;
    let export = s.customers.export(&id).await?;
    let fields = serde_json::to_value(&export).map(|v| document_fields(&v)).unwrap_or_default();
    let e = entry(&actor(&s, &who).await?, purpose.or("gdpr_export"), &rid, Action::CUSTOMER_EXPORT)
        .about(&export.customer.id)
        .fields(&fields);
    access::record(s.audit.as_ref(), vec![e]).await?;
    Ok(Json(export))
}

/// Ask for an export of everything held about a customer (GDPR art. 15 and 20), made in the
/// background: 202 with the status resource in `Location`
/// (`GET /v1/customer-exports/{export_id}`), whose `document` once `completed` is what
/// `GET /v1/customers/{id}/export` answers. The document is stored sealed under the customer's
/// data key and deleted at `expires_at` (7 days by default) or when the customer is erased.
/// Send an `Idempotency-Key` to make retries safe.
#[utoipa::path(post, path = "/v1/customers/{id}/exports", tag = "customers",
    params(("id" = String, Path, description = "Customer id or linked user id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 202, body = CustomerExport, headers(("Location" = String))),
        (status = 403, description = "not this caller's customer, or a role without access", body = ProblemBody),
        (status = 404, body = ProblemBody),
        (status = 422, description = "the Idempotency-Key was used for another customer", body = ProblemBody),
        (status = 503, description = "the access could not be recorded in the audit log", body = ProblemBody)),
    security(("bearer" = [])))]
async fn request_export(
    Auth(who, ..): Auth<PrivacyRequest>,
    State(s): State<CustomersState>,
    rid: RequestId,
    purpose: AccessPurpose,
    key: Option<IdempotencyKey>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    authorize(&s, &who, &id).await?;
    let customer_id = s.customers.resolve(&id).await?.ok_or_else(|| CustomersError::NotFound(id.clone()))?;
    let e = entry(&actor(&s, &who).await?, purpose.or("gdpr_export"), &rid, Action::CUSTOMER_EXPORT_REQUEST)
        .about(&customer_id);
    access::record(s.audit.as_ref(), vec![e]).await?;
    let idem = key.map(|key| Idempotent {
        scope: format!("customers.export:{}", who.subject),
        key,
        request_hash: String::new(),
    });
    let (export, replayed) =
        s.customers.request_export(&customer_id, &requester(&s, &who), s.export_ttl_ms, idem).await?;
    let location = format!("/v1/customer-exports/{}", export.id);
    let mut res = (StatusCode::ACCEPTED, Json(export)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    if replayed {
        res.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(res)
}

/// An export's status: `pending`, `completed` (with the `document`), or `failed` (a domain
/// failed its part; retried). 404 once it expired or the customer was erased.
#[utoipa::path(get, path = "/v1/customer-exports/{export_id}", tag = "customers",
    params(("export_id" = String, Path, description = "The export (`exp_...`)")),
    responses((status = 200, body = CustomerExport),
        (status = 403, description = "a customer reads only their own exports", body = ProblemBody),
        (status = 404, description = "no such export, expired, or the customer was erased", body = ProblemBody),
        (status = 503, description = "the access could not be recorded in the audit log", body = ProblemBody)),
    security(("bearer" = [])))]
async fn get_export(
    Auth(who, ..): Auth<PrivacyRequest>,
    State(s): State<CustomersState>,
    rid: RequestId,
    purpose: AccessPurpose,
    ApiPath(export_id): ApiPath<String>,
) -> Result<Json<CustomerExport>, Problem> {
    let (customer_id, _) = s.customers.export_owner(&export_id).await?;
    authorize(&s, &who, &customer_id).await?;
    let export = s.customers.export_with_document(&export_id).await?;
    let e = match &export.document {
        Some(doc) => entry(&actor(&s, &who).await?, purpose.or("gdpr_export"), &rid, Action::CUSTOMER_EXPORT)
            .about(&customer_id)
            .fields(&document_fields(doc)),
        None => entry(&actor(&s, &who).await?, purpose.or("gdpr_export"), &rid, Action::CUSTOMER_EXPORT_STATUS)
            .about(&customer_id),
    };
    access::record(s.audit.as_ref(), vec![e]).await?;
    Ok(Json(export))
}

/// A customer's entries in the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntries {
    /// The customer.
    pub customer_id: String,
    /// Every entry about the customer (or made with their own token), oldest first; this
    /// request's own entry is the last.
    pub items: Vec<Record>,
}

/// A customer's part of the audit log: every recorded read and write of their data (who, role,
/// purpose, request id, action, field names), oldest first. Kept after an erasure: ask by
/// customer id then.
#[utoipa::path(get, path = "/v1/customers/{id}/audit", tag = "customers",
    params(("id" = String, Path, description = "Customer id (also of an erased customer) or linked user id")),
    responses((status = 200, body = AuditEntries),
        (status = 403, description = "admins only", body = ProblemBody),
        (status = 404, description = "a user id no customer is linked with", body = ProblemBody),
        (status = 503, description = "the audit log is unavailable", body = ProblemBody)),
    security(("bearer" = [])))]
async fn customer_audit(
    Auth(who, ..): Auth<AdminOnly>,
    State(s): State<CustomersState>,
    rid: RequestId,
    purpose: AccessPurpose,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AuditEntries>, Problem> {
    let customer_id = match s.customers.resolve(&id).await? {
        Some(c) => c,
        None if id.starts_with("cus_") && id.len() <= 64 => id,
        None => return Err(CustomersError::NotFound(id).into()),
    };
    let e = entry(&actor(&s, &who).await?, purpose.or("audit"), &rid, Action::AUDIT_READ).about(&customer_id);
    access::record(s.audit.as_ref(), vec![e]).await?;
    let items = s.audit.export(&customer_id).await.map_err(|e| Problem::unavailable(&e))?;
    Ok(Json(AuditEntries { customer_id, items }))
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
    rid: RequestId,
    purpose: AccessPurpose,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    authorize(&s, &who, &id).await?;
    // Recorded before: an erasure the log could not record is not carried out.
    let customer_id = s.customers.resolve(&id).await?.ok_or_else(|| CustomersError::NotFound(id.clone()))?;
    let e =
        entry(&actor(&s, &who).await?, purpose.or("gdpr_erasure"), &rid, Action::CUSTOMER_ERASE).about(&customer_id);
    access::record(s.audit.as_ref(), vec![e]).await?;
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
    rid: RequestId,
    purpose: AccessPurpose,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Erasure>, Problem> {
    if who.role == Role::Customer && s.customers.erasure_requested_by(&id).await? != requester(&s, &who) {
        return Err(CustomersError::Forbidden("a customer reads only the erasure they asked for".into()).into());
    }
    let erasure = s.customers.erasure(&id).await?;
    // The erased customer's id is not kept with the erasure: the entry names no customer.
    let actor = if who.role == Role::Customer {
        Actor { id: requester(&s, &who), role: who.role.as_str().to_owned() }
    } else {
        actor(&s, &who).await?
    };
    let e = entry(&actor, purpose.or("gdpr_erasure"), &rid, Action::CUSTOMER_ERASURE_STATUS);
    access::record(s.audit.as_ref(), vec![e]).await?;
    Ok(Json(erasure))
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
    rid: RequestId,
    purpose: AccessPurpose,
    ApiPath(id): ApiPath<String>,
    JsonObject(body, _): JsonObject<MergeRequest>,
) -> Result<Response, Problem> {
    let other = body.parse()?;
    let merge = s.customers.merge(&id, &other, &who.subject).await?;
    record_merge(&s, &who, &rid, purpose, Action::CUSTOMER_MERGE, &merge).await?;
    Ok((StatusCode::CREATED, Json(merge)).into_response())
}

/// A merge or unmerge touches both customers: one entry about each, naming the fields filled
/// and the identifier kinds moved.
async fn record_merge(
    s: &CustomersState,
    who: &Principal,
    rid: &RequestId,
    purpose: AccessPurpose,
    action: Action,
    merge: &Merge,
) -> Result<(), Problem> {
    let actor = actor(s, who).await?;
    let purpose = purpose.or("identity_admin");
    let mut fields: Vec<String> = merge.filled.clone();
    for i in &merge.identifiers {
        let name = format!("identifiers.{}", i.kind.as_str());
        if !fields.contains(&name) {
            fields.push(name);
        }
    }
    let entries = vec![
        entry(&actor, purpose.clone(), rid, action.clone()).about(&merge.winner).fields(&fields),
        entry(&actor, purpose, rid, action).about(&merge.loser).fields(&fields),
    ];
    access::record(s.audit.as_ref(), entries).await
}

/// Undo a merge: both customers are restored, each with its identifiers (and so its events).
#[utoipa::path(delete, path = "/v1/customer-merges/{merge_id}", tag = "customers",
    params(("merge_id" = String, Path, description = "The merge (`mrg_...`)")),
    responses((status = 200, body = Merge),
        (status = 403, description = "a role other than admin or service", body = ProblemBody),
        (status = 404, description = "no such merge, or undone already", body = ProblemBody)),
    security(("bearer" = [])))]
async fn unmerge_customers(
    Auth(who, ..): Auth<IdentityAdmin>,
    State(s): State<CustomersState>,
    rid: RequestId,
    purpose: AccessPurpose,
    ApiPath(merge_id): ApiPath<String>,
) -> Result<Json<Merge>, Problem> {
    let merge = s.customers.unmerge(&merge_id).await?;
    record_merge(&s, &who, &rid, purpose, Action::CUSTOMER_UNMERGE, &merge).await?;
    Ok(Json(merge))
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
    Auth(who, ..): Auth<IdentityAdmin>,
    State(s): State<CustomersState>,
    rid: RequestId,
    purpose: AccessPurpose,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<IdentityView>, Problem> {
    let view = s.customers.identity(&id).await?;
    let mut kinds: Vec<String> = Vec::new();
    for i in &view.identifiers {
        let name = format!("identifiers.{}", i.kind.as_str());
        if !kinds.contains(&name) {
            kinds.push(name);
        }
    }
    let e = entry(&actor(&s, &who).await?, purpose.or("identity_admin"), &rid, Action::IDENTITY_READ)
        .about(&view.customer_id)
        .fields(&kinds);
    access::record(s.audit.as_ref(), vec![e]).await?;
    Ok(Json(view))
}

dermis_auth::role_policy!(
    /// Who may record a dermatologist's assessment.
    AssessmentWrite, "admin, service or dermatologist", [Admin, Service, Dermatologist]
);

dermis_auth::role_policy!(
    /// Who may read a skin profile (dermatologists: customers who granted `health_data`).
    SkinProfileRead, "admin, service, store_associate, dermatologist or the customer themselves",
    [Admin, Service, StoreAssociate, Customer, Dermatologist]
);

/// A customer's skin profile: the facts with their sources, and per measured metric the latest
/// reading and the trend.
#[derive(Debug, Serialize, ToSchema)]
pub struct SkinProfileView {
    /// The customer.
    pub customer_id: String,
    /// The customer's version (also the `ETag`).
    pub version: i64,
    /// The skin profile.
    pub skin_profile: crate::model::SkinProfile,
    /// Allergy names the knowledge base does not know.
    pub unknown_allergens: Vec<String>,
    /// Contraindicated ingredient names the knowledge base does not know (kept, reported).
    pub unknown_ingredients: Vec<String>,
    /// Fields withheld from this caller.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub redacted: Vec<String>,
}

impl SkinProfileView {
    fn of(c: Customer) -> Self {
        let unknown_ingredients = c
            .skin_profile
            .health
            .contraindicated_ingredients
            .iter()
            .flat_map(|f| f.value.iter())
            .filter(|i| i.matched == crate::model::IngredientMatch::Unknown)
            .map(|i| i.name.clone())
            .collect();
        Self {
            customer_id: c.id,
            version: c.version,
            skin_profile: c.skin_profile,
            unknown_allergens: c.unknown_allergens,
            unknown_ingredients,
            redacted: c.redacted,
        }
    }
}

/// A dermatologist reaches only customers who granted `health_data` (403 otherwise); others
/// as [`authorize`] says.
async fn authorize_skin(s: &CustomersState, who: &Principal, reference: &str) -> Result<(), Problem> {
    authorize(s, who, reference).await?;
    if who.role == Role::Dermatologist
        && !s.customers.consents(reference).await?.granted(crate::model::Purpose::HealthData)
    {
        return Err(CustomersError::Forbidden(
            "a dermatologist reads only the skin profiles of customers who granted the `health_data` consent".into(),
        )
        .into());
    }
    Ok(())
}

/// Get a customer's skin profile: each fact with its source and time, and per measured metric
/// (device readings) the latest value and the 90-day trend.
///
/// Dermatologists read the profiles of customers who granted `health_data` only; store
/// associates see health facts only within an open consultation.
#[utoipa::path(get, path = "/v1/customers/{id}/skin-profile", tag = "customers",
    params(("id" = String, Path, description = "Customer id or linked user id")),
    responses((status = 200, body = SkinProfileView, headers(("ETag" = String))),
        (status = 403, description = "not this caller's customer, a dermatologist without the customer's `health_data` consent, or a role without access", body = ProblemBody),
        (status = 404, body = ProblemBody)),
    security(("bearer" = [])))]
async fn get_skin_profile(
    Auth(who, ..): Auth<SkinProfileRead>,
    State(s): State<CustomersState>,
    rid: RequestId,
    purpose: AccessPurpose,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    authorize_skin(&s, &who, &id).await?;
    let c = view(&s, &who, s.customers.get(&id).await?).await?;
    let default = if who.role == Role::Dermatologist { "care" } else { support(&who) };
    let fields: Vec<String> = returned_fields(&c)
        .into_iter()
        .filter(|f| f.starts_with("skin_profile.") || f == "unknown_allergens")
        .collect();
    let e = entry(&actor(&s, &who).await?, purpose.or(default), &rid, Action::SKIN_PROFILE_READ)
        .about(&c.id)
        .fields(&fields);
    access::record(s.audit.as_ref(), vec![e]).await?;
    Ok(respond(StatusCode::OK, c.version, SkinProfileView::of(c), None, false))
}

/// Record a dermatologist's assessment: `conditions` replace the conditions held and
/// `contraindicated_ingredients` (resolved through the ingredient knowledge base; unknown names
/// kept and listed in `unknown_ingredients`) are set, both with source `dermatologist`. The
/// body is the properties of the `Dermatologist Assessment Recorded` event.
///
/// Needs the customer's `health_data` consent: without it 409 naming it, nothing stored. A
/// `dermatologist` caller is recorded as the assessment's `dermatologist_id`.
#[utoipa::path(post, path = "/v1/customers/{id}/assessments", tag = "customers", request_body = RecordAssessment,
    params(("id" = String, Path, description = "Customer id or linked user id")),
    responses((status = 201, body = SkinProfileView, headers(("ETag" = String))),
        (status = 403, description = "a role other than admin, service or dermatologist", body = ProblemBody),
        (status = 404, body = ProblemBody),
        (status = 409, description = "the customer has not granted `health_data` (nothing stored)", body = ProblemBody),
        (status = 422, description = "an unknown condition, a missing clinic, or neither conditions nor ingredients", body = ProblemBody)),
    security(("bearer" = [])))]
async fn record_assessment(
    Auth(who, ..): Auth<AssessmentWrite>,
    State(s): State<CustomersState>,
    rid: RequestId,
    purpose: AccessPurpose,
    ApiPath(id): ApiPath<String>,
    JsonObject(mut body, _): JsonObject<RecordAssessment>,
) -> Result<Response, Problem> {
    if who.role == Role::Dermatologist {
        body.dermatologist_id = Some(who.subject.clone());
    }
    let changes = body.parse()?;
    let written = skin_fields(&changes);
    let c = s.customers.put_skin_profile(&id, changes, None).await?;
    let e = entry(&actor(&s, &who).await?, purpose.or("care"), &rid, Action::SKIN_PROFILE_WRITE)
        .about(&c.id)
        .fields(&written);
    access::record(s.audit.as_ref(), vec![e]).await?;
    Ok(respond(StatusCode::CREATED, c.version, SkinProfileView::of(c), None, false))
}

/// Run probabilistic matching over every customer (Fellegi–Sunter over name, date of birth,
/// postcode, email local part and phone; weights estimated by EM; blocking). Pairs at or above
/// the review threshold become suggestions (`GET /v1/customer-merge-suggestions`); with
/// `auto_merge` (default) those at or above the high threshold are merged at once, as undoable
/// merges. A pair dismissed or merged before is not suggested again.
#[utoipa::path(post, path = "/v1/customer-match-runs", tag = "customers", request_body = MatchRunRequest,
    responses((status = 200, body = MatchRunReport),
        (status = 403, description = "a role other than admin or service", body = ProblemBody),
        (status = 422, description = "thresholds out of range or inconsistent", body = ProblemBody),
        (status = 503, description = "the access could not be recorded in the audit log", body = ProblemBody)),
    security(("bearer" = [])))]
async fn run_matching(
    Auth(who, ..): Auth<IdentityAdmin>,
    State(s): State<CustomersState>,
    rid: RequestId,
    purpose: AccessPurpose,
    JsonObject(body, _): JsonObject<MatchRunRequest>,
) -> Result<Json<MatchRunReport>, Problem> {
    let (config, auto_merge) = body.config()?;
    let action = Action::new("customer.match_run").map_err(|e| Problem::internal(&e))?;
    let e = entry(&actor(&s, &who).await?, purpose.or("identity_admin"), &rid, action).fields(&[
        "name",
        "date_of_birth",
        "address.postal_code",
        "email",
        "phone",
    ]);
    access::record(s.audit.as_ref(), vec![e]).await?;
    Ok(Json(s.customers.run_matching(&config, auto_merge, &who.subject).await?))
}

/// Merge suggestions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuggestionList {
    /// Best first.
    pub items: Vec<MatchSuggestion>,
}

/// Which suggestions to list.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SuggestionQuery {
    /// `pending` (default), `merged` or `dismissed`.
    #[serde(default)]
    pub status: Option<String>,
    /// 1–1000, default 100.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Merge suggestions of probabilistic matching, best score first: the two customers, the score,
/// and each field's level and weight (never the values).
#[utoipa::path(get, path = "/v1/customer-merge-suggestions", tag = "customers", params(SuggestionQuery),
    responses((status = 200, body = SuggestionList),
        (status = 403, description = "a role other than admin or service", body = ProblemBody),
        (status = 422, description = "an unknown status", body = ProblemBody)),
    security(("bearer" = [])))]
async fn list_suggestions(
    _auth: Auth<IdentityAdmin>,
    State(s): State<CustomersState>,
    ApiQuery(q): ApiQuery<SuggestionQuery>,
) -> Result<Json<SuggestionList>, Problem> {
    let items = s.customers.match_suggestions(q.status.as_deref().unwrap_or("pending"), q.limit.unwrap_or(100)).await?;
    Ok(Json(SuggestionList { items }))
}

/// Accept a pending suggestion: its two customers are merged (the older one stays), as an
/// undoable merge.
#[utoipa::path(post, path = "/v1/customer-merge-suggestions/{suggestion_id}/accept", tag = "customers",
    params(("suggestion_id" = String, Path, description = "The suggestion (`sug_...`)")),
    responses((status = 201, body = Merge),
        (status = 403, description = "a role other than admin or service", body = ProblemBody),
        (status = 404, description = "no pending suggestion with this id (decided already), or one of its customers is gone", body = ProblemBody),
        (status = 409, description = "the two are one customer already", body = ProblemBody),
        (status = 503, description = "the access could not be recorded in the audit log", body = ProblemBody)),
    security(("bearer" = [])))]
async fn accept_suggestion(
    Auth(who, ..): Auth<IdentityAdmin>,
    State(s): State<CustomersState>,
    rid: RequestId,
    purpose: AccessPurpose,
    ApiPath(suggestion_id): ApiPath<String>,
) -> Result<Response, Problem> {
    let merge = s.customers.accept_suggestion(&suggestion_id, &who.subject).await?;
    record_merge(&s, &who, &rid, purpose, Action::CUSTOMER_MERGE, &merge).await?;
    Ok((StatusCode::CREATED, Json(merge)).into_response())
}

/// Dismiss a pending suggestion: the pair is not suggested again.
#[utoipa::path(delete, path = "/v1/customer-merge-suggestions/{suggestion_id}", tag = "customers",
    params(("suggestion_id" = String, Path, description = "The suggestion (`sug_...`)")),
    responses((status = 204, description = "dismissed"),
        (status = 403, description = "a role other than admin or service", body = ProblemBody),
        (status = 404, description = "no pending suggestion with this id (decided already)", body = ProblemBody)),
    security(("bearer" = [])))]
async fn dismiss_suggestion(
    _auth: Auth<IdentityAdmin>,
    State(s): State<CustomersState>,
    ApiPath(suggestion_id): ApiPath<String>,
) -> Result<StatusCode, Problem> {
    s.customers.dismiss_suggestion(&suggestion_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which analytics page to read.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsQuery {
    /// What the ids are for (`analytics` by default): 1–32 of a-z, 0-9 and _. Each purpose gets
    /// its own, unlinkable ids.
    #[serde(default)]
    pub purpose: Option<String>,
    /// `next_cursor` of the page before.
    #[serde(default)]
    pub cursor: Option<String>,
    /// 1–500, default 100.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Customers as analysts may see them: only those who granted the `analytics` consent, under a
/// pseudonymous id per purpose (`anl_...`, HMAC of the customer id), with no direct identifier
/// and no health fact: skin type and tone, concerns, lifestyle, loyalty tier, an age band, the
/// channels they are known on, their consents.
#[utoipa::path(get, path = "/v1/analytics/customers", tag = "customers", params(AnalyticsQuery),
    responses((status = 200, body = AnalyticsPage),
        (status = 403, description = "a role other than admin, service or analyst", body = ProblemBody),
        (status = 422, description = "an invalid purpose, cursor or limit", body = ProblemBody),
        (status = 503, description = "the access could not be recorded in the audit log", body = ProblemBody)),
    security(("bearer" = [])))]
async fn analytics_customers(
    Auth(who, ..): Auth<AnalyticsRead>,
    State(s): State<CustomersState>,
    rid: RequestId,
    ApiQuery(q): ApiQuery<AnalyticsQuery>,
) -> Result<Json<AnalyticsPage>, Problem> {
    let purpose = q.purpose.unwrap_or_else(|| "analytics".to_owned());
    let page = s.customers.analytics_page(&purpose, q.cursor.as_deref(), q.limit.unwrap_or(100)).await?;
    let action = Action::new("analytics.read").map_err(|e| Problem::internal(&e))?;
    let e = entry(&actor(&s, &who).await?, purpose.clone(), &rid, action).fields(&[
        "skin_type",
        "skin_tone",
        "concerns",
        "lifestyle",
        "loyalty.tier",
        "age_band",
        "external_ids",
    ]);
    access::record(s.audit.as_ref(), vec![e]).await?;
    Ok(Json(page))
}
