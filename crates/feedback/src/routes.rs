//! HTTP: `/v1/experiments` (define, list), `/v1/experiments/{key}` (read), `.../start`,
//! `.../stop`, `.../assignments` (a visitor's variant, logging the exposure), `.../results`,
//! `.../results.csv` and `.../ope` (off-policy estimates of a target policy on the logged units).
//!
//! Who may call: definitions, start and stop `admin` or `merchandiser`; results and off-policy
//! estimates `admin`,
//! `merchandiser` or `analyst`; assignments `admin`, `service` or a `customer` (for their own
//! user id).

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use dermis_auth::{Auth, Authenticator};
use dermis_core::problem::ProblemBody;
use dermis_core::{ApiJson, ApiPath, ApiQuery, FieldError, Problem, ProblemKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::model::{Attributes, Definition, Status};
use crate::off_policy::{OffPolicyReport, TargetPolicy};
use crate::service::{AssignRequest, Assignment, Experiments, FeedbackError, Results};
use crate::store::Stored;

dermis_auth::role_policy!(
    /// Who may define, start and stop experiments.
    ExperimentWriters, "admin or merchandiser", [Admin, Merchandiser]
);
dermis_auth::role_policy!(
    /// Who may read experiments and results.
    ExperimentReaders, "admin, merchandiser or analyst", [Admin, Merchandiser, Analyst]
);
dermis_auth::role_policy!(
    /// Who may ask for a visitor's variant.
    Assigners, "admin, service or a customer for themselves", [Admin, Service, Customer]
);

/// What the routes share.
#[derive(Clone)]
pub struct FeedbackState {
    /// The service.
    pub experiments: Experiments,
    /// Authenticates callers.
    pub auth: Arc<Authenticator>,
}

impl std::fmt::Debug for FeedbackState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedbackState").finish_non_exhaustive()
    }
}

impl FromRef<FeedbackState> for Arc<Authenticator> {
    fn from_ref(s: &FeedbackState) -> Self {
        s.auth.clone()
    }
}

/// The routes.
pub fn router() -> OpenApiRouter<FeedbackState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get))
        .routes(routes!(start))
        .routes(routes!(stop))
        .routes(routes!(assign))
        .routes(routes!(results))
        .routes(routes!(results_csv))
        .routes(routes!(off_policy))
}

fn problem(e: FeedbackError) -> Problem {
    match e {
        FeedbackError::Invalid(errors) => Problem::validation(errors),
        FeedbackError::NotFound(_) => Problem::not_found(e.to_string()),
        FeedbackError::Exists(_) | FeedbackError::Overlap(..) | FeedbackError::State { .. } => {
            Problem::conflict(e.to_string())
        }
        FeedbackError::Store(e) => Problem::unavailable(&e),
    }
}

/// An experiment.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExperimentView {
    /// The definition.
    #[serde(flatten)]
    pub definition: Definition,
    /// `draft`, `running` or `stopped`.
    pub status: Status,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it started.
    pub started_at: Option<String>,
    /// When it stopped.
    pub stopped_at: Option<String>,
}

fn view(s: Stored) -> ExperimentView {
    let time = dermis_core::clock::rfc3339;
    ExperimentView {
        definition: s.definition,
        status: s.status,
        created_at: time(s.created_at),
        started_at: s.started_at.map(time),
        stopped_at: s.stopped_at.map(time),
    }
}

/// Defines an experiment (a draft). A split that does not sum to 1 is a 422; a namespace share
/// overlapping a live experiment's in the same namespace, or a key in use, a 409.
#[utoipa::path(post, path = "/v1/experiments", tag = "experiments", request_body = Definition,
    responses((status = 201, body = ExperimentView), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody),
        (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn create(
    Auth(_who, ..): Auth<ExperimentWriters>,
    State(s): State<FeedbackState>,
    ApiJson(body): ApiJson<Definition>,
) -> Result<(StatusCode, Json<ExperimentView>), Problem> {
    let stored = s.experiments.create(body).await.map_err(problem)?;
    Ok((StatusCode::CREATED, Json(view(stored))))
}

/// Every experiment, newest first.
#[utoipa::path(get, path = "/v1/experiments", tag = "experiments",
    responses((status = 200, body = [ExperimentView]), (status = 403, body = ProblemBody)), security(("bearer" = [])))]
async fn list(
    Auth(_who, ..): Auth<ExperimentReaders>,
    State(s): State<FeedbackState>,
) -> Result<Json<Vec<ExperimentView>>, Problem> {
    Ok(Json(s.experiments.list().await.map_err(problem)?.into_iter().map(view).collect()))
}

/// One experiment.
#[utoipa::path(get, path = "/v1/experiments/{key}", tag = "experiments", params(("key" = String, Path)),
    responses((status = 200, body = ExperimentView), (status = 404, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn get(
    Auth(_who, ..): Auth<ExperimentReaders>,
    State(s): State<FeedbackState>,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<ExperimentView>, Problem> {
    Ok(Json(view(s.experiments.get(&key).await.map_err(problem)?)))
}

/// Starts a draft (again: the same answer); a stopped experiment cannot restart (409).
#[utoipa::path(post, path = "/v1/experiments/{key}/start", tag = "experiments", params(("key" = String, Path)),
    responses((status = 200, body = ExperimentView), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody),
        (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn start(
    Auth(_who, ..): Auth<ExperimentWriters>,
    State(s): State<FeedbackState>,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<ExperimentView>, Problem> {
    Ok(Json(view(s.experiments.start(&key).await.map_err(problem)?)))
}

/// Stops a running experiment (again: the same answer); a draft cannot stop (409).
#[utoipa::path(post, path = "/v1/experiments/{key}/stop", tag = "experiments", params(("key" = String, Path)),
    responses((status = 200, body = ExperimentView), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody),
        (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn stop(
    Auth(_who, ..): Auth<ExperimentWriters>,
    State(s): State<FeedbackState>,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<ExperimentView>, Problem> {
    Ok(Json(view(s.experiments.stop(&key).await.map_err(problem)?)))
}

/// A visitor asking for their variant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    /// The user id the shop knows (after login).
    pub user_id: Option<String>,
    /// The device's anonymous id (before login; send both after login to keep the variant).
    pub anonymous_id: Option<String>,
    /// For targeting.
    #[serde(default)]
    pub attributes: Attributes,
    /// Log the exposure as an `Experiment Viewed` event (default true).
    pub log_exposure: Option<bool>,
}

/// A visitor's variant: sticky (an id assigned before keeps its variant, so an anonymous
/// visitor who logs in keeps theirs when both ids are sent), GrowthBook-compatible hashing
/// otherwise; the exposure is logged as a Segment `Experiment Viewed` event.
#[utoipa::path(post, path = "/v1/experiments/{key}/assignments", tag = "experiments", params(("key" = String, Path)),
    request_body = AssignBody,
    responses((status = 200, body = Assignment), (status = 404, body = ProblemBody), (status = 422, body = ProblemBody),
        (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn assign(
    Auth(who, ..): Auth<Assigners>,
    State(s): State<FeedbackState>,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<AssignBody>,
) -> Result<Json<Assignment>, Problem> {
    for (name, id) in [("user_id", &body.user_id), ("anonymous_id", &body.anonymous_id)] {
        if id.as_ref().is_some_and(|v| v.is_empty() || v.len() > 256) {
            return Err(Problem::validation(vec![FieldError::new(name, "1 to 256 characters")]));
        }
    }
    if body.user_id.is_none() && body.anonymous_id.is_none() {
        return Err(Problem::validation(vec![FieldError::new("user_id", "a user_id or an anonymous_id is needed")]));
    }
    // A customer asks for themselves, by their own user id (an anonymous id could name anyone).
    if let Some(me) = who.customer_id()
        && body.user_id.as_deref() != Some(me)
    {
        return Err(Problem::new(
            ProblemKind::Forbidden,
            "a customer asks only for themselves, with their own user_id",
        ));
    }
    let request = AssignRequest {
        user_id: body.user_id,
        anonymous_id: body.anonymous_id,
        attributes: body.attributes,
        log_exposure: body.log_exposure.unwrap_or(true),
    };
    Ok(Json(s.experiments.assign(&key, &request).await.map_err(problem)?))
}

/// Results: units per variant, the sample-ratio check, each metric's uplift over the control
/// (95% interval, an always-valid interval safe to look at any time, Bayesian chance to win and
/// expected loss), guardrail alerts.
#[utoipa::path(get, path = "/v1/experiments/{key}/results", tag = "experiments", params(("key" = String, Path)),
    responses((status = 200, body = Results), (status = 404, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn results(
    Auth(_who, ..): Auth<ExperimentReaders>,
    State(s): State<FeedbackState>,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<Results>, Problem> {
    Ok(Json(s.experiments.results(&key).await.map_err(problem)?))
}

/// The results as CSV: one row per metric and variant (the CUPED columns empty where there is
/// no adjusted result).
#[utoipa::path(get, path = "/v1/experiments/{key}/results.csv", tag = "experiments", params(("key" = String, Path)),
    responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn results_csv(
    Auth(_who, ..): Auth<ExperimentReaders>,
    State(s): State<FeedbackState>,
    ApiPath(key): ApiPath<String>,
) -> Result<impl IntoResponse, Problem> {
    let r = s.experiments.results(&key).await.map_err(problem)?;
    let mut csv = String::from(
        "metric,variant,units,mean,relative_uplift,ci_low,ci_high,p_value,sequential_low,sequential_high,chance_to_win,expected_loss,\
         cuped_relative_uplift,cuped_ci_low,cuped_ci_high,cuped_p_value,cuped_variance_reduction\n",
    );
    let num = |x: Option<f64>| x.map(|v| format!("{v:.6}")).unwrap_or_default();
    for m in &r.metrics {
        for v in &m.variants {
            let cuped = v.cuped.as_ref();
            csv.push_str(&format!(
                "{},{},{},{:.6},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                m.metric,
                v.variant.replace([',', '"', '\n'], " "),
                v.units,
                v.mean,
                num(v.uplift.map(|u| u.relative)),
                num(v.uplift.map(|u| u.ci_low)),
                num(v.uplift.map(|u| u.ci_high)),
                num(v.uplift.map(|u| u.p_value)),
                num(v.sequential.map(|q| q.low)),
                num(v.sequential.map(|q| q.high)),
                num(v.bayesian.map(|b| b.chance_to_win)),
                num(v.bayesian.map(|b| b.expected_loss)),
                num(cuped.map(|c| c.uplift.relative)),
                num(cuped.map(|c| c.uplift.ci_low)),
                num(cuped.map(|c| c.uplift.ci_high)),
                num(cuped.map(|c| c.uplift.p_value)),
                num(cuped.map(|c| c.variance_reduction)),
            ));
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv))
}

/// The target policy of an off-policy estimate: `policy` (a variant's key: always that variant)
/// or `weights` (a probability per variant in the experiment's order, comma-separated, summing
/// to 1), not both.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OffPolicyQuery {
    /// Always this variant, e.g. `control`.
    pub policy: Option<String>,
    /// A probability per variant, e.g. `0.2,0.8`.
    pub weights: Option<String>,
}

/// Off-policy evaluation: the conversion rate and revenue per visitor a target policy would have
/// had, estimated from the units the experiment logged (each with the propensity its variant
/// had when it was chosen: a fixed split's weight, a bandit's allocation then) by inverse
/// propensity scoring and doubly robust estimation (variant means as the reward model,
/// cross-fitted), each with a 95% interval and the importance weights' effective sample size.
/// An unknown variant or weights that are not one probability per variant summing to 1: 422.
#[utoipa::path(get, path = "/v1/experiments/{key}/ope", tag = "experiments",
    params(("key" = String, Path), OffPolicyQuery),
    responses((status = 200, body = OffPolicyReport),
        (status = 400, description = "an unreadable or unknown query parameter", body = ProblemBody),
        (status = 404, body = ProblemBody),
        (status = 422, description = "no policy, an unknown variant, or weights that are not one probability per variant summing to 1", body = ProblemBody),
        (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn off_policy(
    Auth(_who, ..): Auth<ExperimentReaders>,
    State(s): State<FeedbackState>,
    ApiPath(key): ApiPath<String>,
    ApiQuery(q): ApiQuery<OffPolicyQuery>,
) -> Result<Json<OffPolicyReport>, Problem> {
    // The experiment first: an unknown one is a 404 whatever the policy.
    s.experiments.get(&key).await.map_err(problem)?;
    let target = match (q.policy, q.weights) {
        (Some(p), None) if !p.is_empty() && p.len() <= 64 => TargetPolicy::Variant(p),
        (None, Some(w)) if !w.is_empty() && w.len() <= 1_000 => {
            let parsed: Result<Vec<f64>, _> = w.split(',').map(|x| x.trim().parse::<f64>()).collect();
            match parsed {
                Ok(shares) => TargetPolicy::Shares(shares),
                Err(_) => {
                    return Err(Problem::validation(vec![FieldError::new(
                        "weights",
                        "comma-separated probabilities, one per variant",
                    )]));
                }
            }
        }
        (Some(_), Some(_)) => {
            return Err(Problem::validation(vec![FieldError::new("policy", "either policy or weights, not both")]));
        }
        (Some(_), None) => {
            return Err(Problem::validation(vec![FieldError::new("policy", "a variant key of 1 to 64 characters")]));
        }
        (None, Some(_)) => return Err(Problem::validation(vec![FieldError::new("weights", "1 to 1000 characters")])),
        (None, None) => {
            return Err(Problem::validation(vec![FieldError::new(
                "policy",
                "a target policy is needed: policy=<variant key> or weights=<p1,p2,...>",
            )]));
        }
    };
    Ok(Json(s.experiments.off_policy(&key, &target).await.map_err(problem)?))
}
