//! [`Experiments`]: define, start and stop experiments; assign visitors (GrowthBook's hashing,
//! sticky across a later login) and log their exposure as a Segment `Experiment Viewed` event;
//! compute the results.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use dermis_core::clock::SharedClock;
use dermis_events::Pseudonyms;
use dermis_events::ingest::Ingestor;
use dermis_events::message::Message;
use dermis_experiments::bandit::thompson::ThompsonSampling;
use dermis_experiments::growthbook::{self};
use dermis_experiments::stats::{
    self, BayesianResult, CupedStats, SampleStats, SequentialConfig, SequentialInterval, SrmCheck, Uplift,
};
use dermis_store::{Db, StoreError};
use rand::SeedableRng;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::model::{Allocation, Attributes, Definition, Status};
use crate::pre_period::{self, PRE_PERIOD_DAYS};
use crate::store::{self, CovariateSums, CupedTotals, VariantTotals};

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    /// The definition is invalid (each problem by field).
    #[error("invalid experiment")]
    Invalid(Vec<dermis_core::FieldError>),
    /// No such experiment.
    #[error("no experiment {0}")]
    NotFound(String),
    /// The key is taken.
    #[error("experiment {0} already exists")]
    Exists(String),
    /// Its namespace share overlaps another live experiment's.
    #[error("experiment {0} shares namespace {1} with {2} on an overlapping range")]
    Overlap(String, String, String),
    /// Not allowed from the current status.
    #[error("experiment {key} is {status:?}")]
    State {
        /// The key.
        key: String,
        /// Its status.
        status: Status,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who asks for an assignment.
#[derive(Debug, Clone, Default)]
pub struct AssignRequest {
    /// The user id the shop knows (after login).
    pub user_id: Option<String>,
    /// The device's anonymous id (before login).
    pub anonymous_id: Option<String>,
    /// For targeting.
    pub attributes: Attributes,
    /// Log the exposure (an `Experiment Viewed` event).
    pub log_exposure: bool,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Assignment {
    /// The experiment.
    pub experiment: String,
    /// Whether the visitor is in it.
    pub in_experiment: bool,
    /// The variant's key (null when not in it).
    pub variant: Option<String>,
    /// The variant's index (0 is the control).
    pub variant_index: Option<usize>,
    /// The variant's configuration.
    #[schema(value_type = Object)]
    pub config: Value,
    /// Whether the visitor's id was hashed (false when an earlier assignment was kept).
    pub hash_used: bool,
    /// Why not in it, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One metric, one variant against the control.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MetricResult {
    /// The variant.
    pub variant: String,
    /// Units.
    pub units: u64,
    /// The mean per unit (a rate for binomial metrics).
    pub mean: f64,
    /// Against the control (absent for the control itself or without data).
    #[schema(value_type = Object)]
    pub uplift: Option<Uplift>,
    /// Always-valid interval of the relative uplift (safe to look at any time).
    #[schema(value_type = Object)]
    pub sequential: Option<SequentialInterval>,
    /// Chance to beat the control and expected loss.
    #[schema(value_type = Object)]
    pub bayesian: Option<BayesianResult>,
    /// The CUPED-adjusted uplift against the control, from each unit's pre-period (null for the
    /// control, for metrics without a covariate, and without pre-period data: see the metric's
    /// `cuped.unavailable`).
    pub cuped: Option<CupedResult>,
}

/// A variant's uplift adjusted by CUPED: the metric minus θ times the unit's pre-period
/// covariate (centred), which keeps the estimate unbiased and narrows the interval by about the
/// squared correlation of covariate and metric.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CupedResult {
    /// The adjusted relative uplift with its 95% interval (`control_mean` and `variant_mean` are
    /// the adjusted means; the relative uplift divides by the control's plain mean).
    #[schema(value_type = Object)]
    pub uplift: Uplift,
    /// θ: the regression coefficient of the metric on the covariate, pooled within the arms.
    pub theta: f64,
    /// `1 - Var(adjusted) / Var(plain)`: 0.3 means the interval's variance is 30% smaller.
    pub variance_reduction: f64,
}

/// How a metric's CUPED adjustment was made.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CupedInfo {
    /// The covariate, e.g. "orders in the 28 days before the unit's first exposure".
    pub covariate: String,
    /// Units whose pre-period was read from the event log (the others count as 0).
    pub units_looked_up: u64,
    /// Units with a non-zero covariate.
    pub units_with_history: u64,
    /// Why there is no adjusted result (no pre-period data), when there is none.
    pub unavailable: Option<String>,
}

/// A metric over every variant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Metric {
    /// `click_through`, `add_to_cart`, `conversion`, `revenue_per_visitor`, `return_rate`,
    /// `adverse_reaction_rate`.
    pub metric: String,
    /// Whether it is a guardrail (it must not get worse).
    pub guardrail: bool,
    /// Per variant, control first.
    pub variants: Vec<MetricResult>,
    /// A guardrail that got worse in some variant (its 95% interval lies above 0).
    pub alert: bool,
    /// The CUPED covariate and whether there was pre-period data for it (null for metrics
    /// without one: the guardrails).
    pub cuped: Option<CupedInfo>,
}

/// An experiment's results.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Results {
    /// The experiment.
    pub experiment: String,
    /// Its status.
    pub status: Status,
    /// Units per variant, control first.
    pub units: BTreeMap<String, u64>,
    /// The sample-ratio-mismatch check against the split (flagged at p < 0.001).
    #[schema(value_type = Object)]
    pub srm: Option<SrmCheck>,
    /// Per metric.
    pub metrics: Vec<Metric>,
    /// Alerts in words (SRM, guardrails).
    pub alerts: Vec<String>,
}

/// The experiments' service. Cheap to clone.
#[derive(Clone)]
pub struct Experiments {
    db: Db,
    clock: SharedClock,
    pseudonyms: Pseudonyms,
    /// Where exposures are logged (set once the ingestor, which calls this domain's hook, is
    /// built).
    ingestor: Arc<OnceLock<Ingestor>>,
    /// Bandit weights per experiment and when they were computed.
    bandits: Arc<Mutex<BanditSplits>>,
    /// Running experiments with a placement, and when they were read (for serving from memory).
    running: Arc<RwLock<(i64, Vec<Definition>)>>,
    /// (experiment, visitor) pairs whose placement exposure this node logged in the last hour:
    /// only a visitor's first exposure counts, so a repeat is not logged again.
    exposed: moka::sync::Cache<String, ()>,
    /// Checks of variant configurations other domains own (set once by the server).
    config_check: Arc<OnceLock<Arc<dyn crate::variants::VariantConfigCheck>>>,
}

impl std::fmt::Debug for Experiments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Experiments").finish_non_exhaustive()
    }
}

/// Each bandit experiment's latest split and when it was computed (ms).
type BanditSplits = BTreeMap<String, (i64, Vec<f64>)>;

/// How long the running experiments are served from memory before they are read again.
const RUNNING_REFRESH_MS: i64 = 5_000;

/// The write key exposures are logged under.
pub const SOURCE: &str = "dermis-experiments";
/// Bandit weights are recomputed at most this often.
const BANDIT_REFRESH_MS: i64 = 1_000;

impl Experiments {
    /// Over `db`; exposures are logged once [`Experiments::log_exposures_through`] names the
    /// ingestor.
    pub fn new(db: Db, clock: SharedClock, pseudonyms: Pseudonyms) -> Self {
        let exposed = moka::sync::Cache::builder()
            .max_capacity(1_000_000)
            .time_to_live(std::time::Duration::from_secs(3600))
            .build();
        Self {
            db,
            clock,
            pseudonyms,
            ingestor: Arc::default(),
            bandits: Arc::default(),
            running: Arc::default(),
            exposed,
            config_check: Arc::default(),
        }
    }

    /// Logs exposures as events through `ingestor` (the one whose hooks include this domain's).
    pub fn log_exposures_through(&self, ingestor: Ingestor) {
        let _ = self.ingestor.set(ingestor);
    }

    /// Checks variant configurations with `check` when an experiment is created (see
    /// [`crate::variants`]).
    pub fn check_configs_with(&self, check: Arc<dyn crate::variants::VariantConfigCheck>) {
        let _ = self.config_check.set(check);
    }

    /// The store.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The keyed pseudonym a user id is kept under (the events domain's, so an erasure names it).
    pub fn id_key(&self, id: &str) -> String {
        self.pseudonyms.customer(id)
    }

    /// The keys of a visitor's ids: the user id's pseudonym, then the anonymous id's (marked as
    /// such, so an anonymous id can never pass for somebody's user id).
    pub fn id_keys(&self, user_id: Option<&str>, anonymous_id: Option<&str>) -> Vec<String> {
        let mut keys = Vec::new();
        if let Some(u) = user_id.filter(|u| !u.is_empty()) {
            keys.push(self.id_key(u));
        }
        if let Some(a) = anonymous_id.filter(|a| !a.is_empty()) {
            keys.push(format!("anon:{}", self.id_key(a)));
        }
        keys
    }

    /// Defines an experiment (in `draft`).
    pub async fn create(&self, definition: Definition) -> Result<store::Stored, FeedbackError> {
        let mut problems = definition.problems();
        if let Some(check) = self.config_check.get() {
            problems.extend(crate::variants::problems(&**check, &definition));
        }
        if !problems.is_empty() {
            return Err(FeedbackError::Invalid(problems));
        }
        self.check_overlap(&definition).await?;
        if !store::insert(&self.db, &definition, self.clock.now_ms()).await? {
            return Err(FeedbackError::Exists(definition.key));
        }
        self.get(&definition.key).await
    }

    async fn check_overlap(&self, definition: &Definition) -> Result<(), FeedbackError> {
        for other in store::list(&self.db).await? {
            if other.status != Status::Stopped
                && other.definition.key != definition.key
                && definition.overlaps(&other.definition)
            {
                let ns = definition.namespace.as_ref().map(|n| n.id.clone()).unwrap_or_default();
                return Err(FeedbackError::Overlap(definition.key.clone(), ns, other.definition.key));
            }
        }
        Ok(())
    }

    /// One experiment.
    pub async fn get(&self, key: &str) -> Result<store::Stored, FeedbackError> {
        store::get(&self.db, key).await?.ok_or_else(|| FeedbackError::NotFound(key.to_owned()))
    }

    /// Every experiment, newest first.
    pub async fn list(&self) -> Result<Vec<store::Stored>, FeedbackError> {
        Ok(store::list(&self.db).await?)
    }

    /// Starts a draft (starting a running one again is a no-op).
    pub async fn start(&self, key: &str) -> Result<store::Stored, FeedbackError> {
        let current = self.get(key).await?;
        match current.status {
            Status::Running => return Ok(current),
            Status::Stopped => return Err(FeedbackError::State { key: key.to_owned(), status: current.status }),
            Status::Draft => {}
        }
        self.check_overlap(&current.definition).await?;
        store::transition(&self.db, key, Status::Draft, Status::Running, self.clock.now_ms()).await?;
        self.get(key).await
    }

    /// Stops a running experiment (stopping a stopped one again is a no-op).
    pub async fn stop(&self, key: &str) -> Result<store::Stored, FeedbackError> {
        let current = self.get(key).await?;
        match current.status {
            Status::Stopped => return Ok(current),
            Status::Draft => return Err(FeedbackError::State { key: key.to_owned(), status: current.status }),
            Status::Running => {}
        }
        store::transition(&self.db, key, Status::Running, Status::Stopped, self.clock.now_ms()).await?;
        self.get(key).await
    }

    /// The variant of a visitor: an id assigned before keeps its variant (an anonymous visitor
    /// who logs in keeps theirs: pass both ids); otherwise the user id (or else the anonymous
    /// id) is hashed GrowthBook's way, over the split (the bandit's split for a bandit
    /// experiment), after targeting, namespace and coverage. With `log_exposure`, an
    /// `Experiment Viewed` event is ingested for the visitor.
    pub async fn assign(&self, key: &str, request: &AssignRequest) -> Result<Assignment, FeedbackError> {
        let stored = self.get(key).await?;
        let d = &stored.definition;
        let out = |reason: &str| Assignment {
            experiment: key.to_owned(),
            in_experiment: false,
            variant: None,
            variant_index: None,
            config: Value::Null,
            hash_used: false,
            reason: Some(reason.to_owned()),
        };
        if stored.status != Status::Running {
            return Ok(out("the experiment is not running"));
        }
        let ids: Vec<&str> = [request.user_id.as_deref(), request.anonymous_id.as_deref()]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect();
        let Some(&hash_id) = ids.first() else { return Ok(out("no user_id or anonymous_id")) };
        let id_keys = self.id_keys(request.user_id.as_deref(), request.anonymous_id.as_deref());
        let mut kept = None;
        for id_key in &id_keys {
            if let Some(found) = store::assignment_with_propensity(&self.db, key, id_key).await? {
                kept = Some(found);
                break;
            }
        }
        // The propensity: the chance the variant had of being chosen for this visitor when it was
        // (a kept assignment keeps its own).
        let (variant, unit_key, hash_used, propensity) = match kept {
            Some((variant, unit, propensity)) => (variant, unit, false, propensity),
            None => {
                if !d.targeting.admits(&request.attributes) {
                    return Ok(out("not targeted"));
                }
                let weights = self.split(key, d).await?;
                match growthbook::assign(&d.growthbook(Some(weights.clone())), hash_id) {
                    Some(v) => (v, id_keys.last().cloned().unwrap_or_default(), true, propensity(&weights, v)),
                    None => return Ok(out("outside the namespace or coverage")),
                }
            }
        };
        store::assign_with_propensity(&self.db, key, &id_keys, &unit_key, variant, propensity, self.clock.now_ms())
            .await?;
        let chosen = &d.variants[variant.min(d.variants.len() - 1)];
        if request.log_exposure {
            self.log_exposure(d, &chosen.key, propensity, request).await;
        }
        Ok(Assignment {
            experiment: key.to_owned(),
            in_experiment: true,
            variant: Some(chosen.key.clone()),
            variant_index: Some(variant),
            config: chosen.config.clone(),
            hash_used,
            reason: None,
        })
    }

    /// The variant `unit` (a user id) sees on `placement`, from memory: the running experiment
    /// on the placement (read again in the background every few seconds, so an experiment
    /// started on another node takes effect within them), GrowthBook's hash of the unit over the
    /// split (a bandit's latest split), after targeting. The assignment and its exposure (an
    /// `Experiment Viewed` event) are recorded in the background, once per visitor and hour on
    /// this node (only the first exposure counts); nothing here waits on the database.
    pub fn placement_variant(
        &self,
        placement: &str,
        unit: &str,
        attributes: &Attributes,
    ) -> Option<(String, String, Value)> {
        let now = self.clock.now_ms();
        let (read_at, definitions) = self.running.read().unwrap_or_else(PoisonError::into_inner).clone();
        if now - read_at > RUNNING_REFRESH_MS {
            // Claim the refresh so one task reads at a time.
            self.running.write().unwrap_or_else(PoisonError::into_inner).0 = now;
            let this = self.clone();
            tokio::spawn(async move {
                match store::list(&this.db).await {
                    Ok(all) => {
                        let running: Vec<Definition> = all
                            .into_iter()
                            .filter(|e| e.status == Status::Running && e.definition.placement.is_some())
                            .map(|e| e.definition)
                            .collect();
                        // A bandit's split follows its results here too (at most once a second).
                        for d in running.iter().filter(|d| matches!(d.allocation, Allocation::Bandit { .. })) {
                            if let Err(e) = this.split(&d.key, d).await {
                                tracing::warn!(error = %e, experiment = d.key, "bandit split not recomputed");
                            }
                        }
                        *this.running.write().unwrap_or_else(PoisonError::into_inner) = (this.clock.now_ms(), running);
                    }
                    Err(e) => tracing::warn!(error = %e, "running experiments not read"),
                }
            });
        }
        let d =
            definitions.iter().find(|d| d.placement.as_deref() == Some(placement) && d.targeting.admits(attributes))?;
        let weights = match d.allocation {
            Allocation::Fixed => None,
            Allocation::Bandit { .. } => {
                self.bandits.lock().unwrap_or_else(PoisonError::into_inner).get(&d.key).map(|(_, w)| w.clone())
            }
        };
        let weights = weights.unwrap_or_else(|| d.variants.iter().map(|v| v.weight).collect());
        let index = growthbook::assign(&d.growthbook(Some(weights.clone())), unit)?;
        let variant = d.variants.get(index)?;
        let chance = propensity(&weights, index);
        let seen = format!("{}\u{0}{unit}", d.key);
        if self.exposed.contains_key(&seen) {
            return Some((d.key.clone(), variant.key.clone(), variant.config.clone()));
        }
        self.exposed.insert(seen, ());
        let this = self.clone();
        let (definition, key, user) = (d.clone(), variant.key.clone(), unit.to_owned());
        tokio::spawn(async move {
            let id_key = this.id_key(&user);
            if let Err(e) = store::assign_with_propensity(
                &this.db,
                &definition.key,
                std::slice::from_ref(&id_key),
                &id_key,
                index,
                chance,
                this.clock.now_ms(),
            )
            .await
            {
                tracing::warn!(error = %e, "experiment assignment not recorded");
            }
            let request = AssignRequest { user_id: Some(user), ..AssignRequest::default() };
            this.log_exposure(&definition, &key, chance, &request).await;
        });
        Some((d.key.clone(), variant.key.clone(), variant.config.clone()))
    }

    /// The split new visitors get: the definition's weights, or for a bandit the chance each
    /// variant is the best on conversion (equal until every variant has its minimum).
    async fn split(&self, key: &str, d: &Definition) -> Result<Vec<f64>, FeedbackError> {
        let Allocation::Bandit { min_units } = d.allocation else {
            return Ok(d.variants.iter().map(|v| v.weight).collect());
        };
        let now = self.clock.now_ms();
        if let Some((at, weights)) = self.bandits.lock().unwrap_or_else(PoisonError::into_inner).get(key)
            && now - at < BANDIT_REFRESH_MS
        {
            return Ok(weights.clone());
        }
        let totals = store::totals(&self.db, key).await?;
        let arms = d.variants.len();
        let mut bandit = ThompsonSampling::new(arms, min_units).map_err(|e| StoreError::InvalidInput(e.to_string()))?;
        for (variant, t) in &totals {
            if *variant < arms {
                bandit.record(*variant, t.units, t.converted).map_err(|e| StoreError::InvalidInput(e.to_string()))?;
            }
        }
        if bandit.in_warmup() {
            // Not kept: the next visitor may end the warm-up.
            return Ok(vec![1.0 / arms as f64; arms]);
        }
        let weights: Vec<f64> = {
            let mut rng = rand::rngs::StdRng::seed_from_u64(now as u64);
            let mut w = bandit.probability_best(2_000, &mut rng);
            // Every arm keeps a little traffic, so a loser can still recover.
            for x in &mut w {
                *x = x.max(0.01);
            }
            let sum: f64 = w.iter().sum();
            w.iter().map(|x| x / sum).collect()
        };
        self.bandits.lock().unwrap_or_else(PoisonError::into_inner).insert(key.to_owned(), (now, weights.clone()));
        Ok(weights)
    }

    async fn log_exposure(&self, d: &Definition, variant: &str, propensity: Option<f64>, request: &AssignRequest) {
        let Some(ingestor) = self.ingestor.get() else { return };
        let source = match exposure_source(ingestor).await {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(error = %e, "no write key for exposures; exposure not logged");
                return;
            }
        };
        let mut event = json!({
            "type": "track",
            "event": "Experiment Viewed",
            "messageId": dermis_core::ids::new_id("exp"),
            "properties": {"experiment_id": d.key, "variation_id": variant},
            "context": {"library": {"name": SOURCE}},
        });
        if !d.name.is_empty() {
            event["properties"]["experiment_name"] = json!(d.name);
        }
        if let Some(p) = propensity {
            event["properties"]["propensity"] = json!(p);
        }
        if let Some(u) = &request.user_id {
            event["userId"] = json!(u);
        }
        if let Some(a) = &request.anonymous_id {
            event["anonymousId"] = json!(a);
        }
        if let Err(e) = ingestor.ingest_as(source, None, json!({ "batch": [event] })).await {
            tracing::warn!(error = %e, experiment = d.key, "exposure not logged");
        }
    }

    /// Records what is known of a unit the exposure `m` just made (variant `index`): the
    /// propensity of its variant (its ids' stored assignment's; else the one the exposure event
    /// carries as `properties.propensity`; else, for a fixed split, the variant's weight) and its
    /// pre-period from the event log (see [`crate::pre_period`]). A failure leaves them unknown
    /// (the unit still counts; without a pre-period its covariates count as 0).
    pub(crate) async fn describe_unit(
        &self,
        d: &Definition,
        id_keys: &[String],
        unit: &str,
        index: usize,
        m: &Message,
    ) {
        let mut chance = None;
        for id_key in id_keys {
            match store::assignment_with_propensity(&self.db, &d.key, id_key).await {
                Ok(Some((_, _, p))) => {
                    chance = p;
                    break;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, experiment = d.key, "propensity not read"),
            }
        }
        let logged = m
            .payload
            .get("properties")
            .and_then(|p| p.get("propensity"))
            .and_then(Value::as_f64)
            .filter(|p| *p > 0.0 && *p <= 1.0);
        let fixed = match d.allocation {
            Allocation::Fixed => propensity(&d.variants.iter().map(|v| v.weight).collect::<Vec<_>>(), index),
            Allocation::Bandit { .. } => None,
        };
        let chance = chance.or(logged).or(fixed);
        let pre = match pre_period::of_visitor(
            &self.db,
            m.user_id.as_deref(),
            m.anonymous_id.as_deref(),
            m.timestamp_ms,
        )
        .await
        {
            Ok(pre) => Some(pre),
            Err(e) => {
                tracing::warn!(error = %e, experiment = d.key, "pre-period not read; the unit's covariates count as 0");
                None
            }
        };
        if let Err(e) = store::describe_unit(&self.db, &d.key, unit, chance, pre, self.clock.now_ms()).await {
            tracing::warn!(error = %e, experiment = d.key, "unit's propensity and pre-period not recorded");
        }
    }

    /// The results: units per variant, SRM, and per metric the uplift of each variant over the
    /// control (fixed-horizon and always-valid intervals, Bayesian chance to win, and the
    /// CUPED-adjusted uplift where the metric has a pre-period covariate), guardrail alerts.
    pub async fn results(&self, key: &str) -> Result<Results, FeedbackError> {
        let stored = self.get(key).await?;
        let d = &stored.definition;
        let mut totals = vec![VariantTotals::default(); d.variants.len()];
        for (variant, t) in store::totals(&self.db, key).await? {
            if variant < totals.len() {
                totals[variant] = t;
            }
        }
        let units: BTreeMap<String, u64> =
            d.variants.iter().zip(&totals).map(|(v, t)| (v.key.clone(), t.units)).collect();
        let observed: Vec<u64> = totals.iter().map(|t| t.units).collect();
        let weights: Vec<f64> = d.variants.iter().map(|v| v.weight.max(1e-9)).collect();
        // A bandit shifts its split on purpose: the check applies to fixed splits only.
        let srm = match d.allocation {
            Allocation::Fixed => stats::sample_ratio_mismatch(&observed, &weights).ok(),
            Allocation::Bandit { .. } => None,
        };
        let mut alerts = Vec::new();
        if srm.is_some_and(|s| s.mismatch) {
            alerts.push(format!(
                "sample ratio mismatch: units {observed:?} against the split {weights:?} (p = {:.2e}); do not trust the results until the cause is found",
                srm.map(|s| s.p_value).unwrap_or_default()
            ));
        }
        let proportion = |f: fn(&VariantTotals) -> u64| -> Vec<SampleStats> {
            totals.iter().map(|t| SampleStats::proportion(t.units, f(t))).collect()
        };
        let mut pre = vec![CupedTotals::default(); d.variants.len()];
        for (variant, t) in store::cuped_totals(&self.db, key).await? {
            if variant < pre.len() {
                pre[variant] = t;
            }
        }
        let looked_up: u64 = pre.iter().map(|t| t.looked_up).sum();
        let covariate = |description: &'static str, f: fn(&CupedTotals) -> CovariateSums| Covariate {
            description,
            per_variant: pre.iter().map(f).collect(),
            looked_up,
        };
        let mut metrics = vec![
            metric(
                d,
                "click_through",
                false,
                &proportion(|t| t.clicked),
                Some(covariate("product clicks", |t| t.clicks)),
            ),
            metric(
                d,
                "add_to_cart",
                false,
                &proportion(|t| t.added),
                Some(covariate("add-to-carts", |t| t.add_to_carts)),
            ),
            metric(d, "conversion", false, &proportion(|t| t.converted), Some(covariate("orders", |t| t.conversions))),
            metric(
                d,
                "revenue_per_visitor",
                false,
                &totals.iter().map(|t| SampleStats::new(t.units, t.revenue, t.revenue_squares)).collect::<Vec<_>>(),
                Some(covariate("revenue", |t| t.revenue)),
            ),
            metric(d, "return_rate", true, &proportion(|t| t.returned), None),
            metric(d, "adverse_reaction_rate", true, &proportion(|t| t.reacted), None),
        ];
        for m in &mut metrics {
            if m.alert {
                alerts.push(format!("guardrail {} is worse in a variant", m.metric));
            }
        }
        Ok(Results { experiment: key.to_owned(), status: stored.status, units, srm, metrics, alerts })
    }
}

/// The probability of variant `index` under a split of these weights (`None` when it had none).
pub fn propensity(weights: &[f64], index: usize) -> Option<f64> {
    let total: f64 = weights.iter().filter(|w| w.is_finite() && **w > 0.0).sum();
    let w = *weights.get(index)?;
    (w.is_finite() && w > 0.0 && total > 0.0).then(|| (w / total).min(1.0))
}

/// A metric's pre-period covariate per variant, for CUPED.
struct Covariate {
    /// What it counts (in the 28 days before each unit's first exposure).
    description: &'static str,
    /// Its sums per variant, control first.
    per_variant: Vec<CovariateSums>,
    /// Units whose pre-period was read, over all variants.
    looked_up: u64,
}

/// One metric: each variant against the control.
fn metric(
    d: &Definition,
    name: &str,
    guardrail: bool,
    per_variant: &[SampleStats],
    covariate: Option<Covariate>,
) -> Metric {
    let control = per_variant[0];
    let mut alert = false;
    let units: u64 = per_variant.iter().map(|s| s.n).sum();
    let cuped_info = covariate.as_ref().map(|c| {
        let with_history: u64 = c.per_variant.iter().map(|x| x.with_history).sum();
        let unavailable = if c.looked_up == 0 {
            Some(format!(
                "no pre-period data: the pre-period of none of the {units} units was read (units exposed before \
                 pre-periods were recorded, or reads that failed)"
            ))
        } else if with_history == 0 {
            Some(format!(
                "no pre-period data: none of the {units} units has {} in the {PRE_PERIOD_DAYS} days before its \
                 first exposure",
                c.description
            ))
        } else {
            None
        };
        CupedInfo {
            covariate: format!("{} in the {PRE_PERIOD_DAYS} days before the unit's first exposure", c.description),
            units_looked_up: c.looked_up,
            units_with_history: with_history,
            unavailable,
        }
    });
    let adjustable = cuped_info.as_ref().is_some_and(|i| i.unavailable.is_none());
    let arm = |i: usize| -> Option<CupedStats> {
        let c = covariate.as_ref()?;
        let x = c.per_variant.get(i)?;
        let post = per_variant[i];
        Some(CupedStats { post, pre: SampleStats::new(post.n, x.sum, x.sum_squares), sum_products: x.sum_products })
    };
    let variants = d
        .variants
        .iter()
        .zip(per_variant)
        .enumerate()
        .map(|(i, (v, s))| {
            let uplift = if i == 0 { None } else { stats::relative_uplift(&control, s, 0.95).ok() };
            let sequential = uplift.as_ref().map(|u| stats::sequential_interval(u, &SequentialConfig::default()));
            // A guardrail is a safety signal: it alerts as soon as the 95% interval lies above 0
            // (erring on the side of alarm; the always-valid interval is far more cautious).
            if guardrail && uplift.as_ref().is_some_and(|u| u.ci_low > 0.0) {
                alert = true;
            }
            let cuped = match (i, adjustable, arm(0), arm(i)) {
                (1.., true, Some(c), Some(v)) => stats::cuped_uplift(&c, &v, 0.95).ok().map(|r| CupedResult {
                    uplift: r.uplift,
                    theta: r.theta,
                    variance_reduction: r.variance_reduction,
                }),
                _ => None,
            };
            MetricResult {
                variant: v.key.clone(),
                units: s.n,
                mean: if s.n > 0 { s.mean() } else { 0.0 },
                bayesian: uplift.as_ref().map(|u| stats::bayesian(u, None)),
                uplift,
                sequential,
                cuped,
            }
        })
        .collect();
    Metric { metric: name.to_owned(), guardrail, variants, alert, cuped: cuped_info }
}

/// The write key exposures are stored under: the oldest named [`SOURCE`], else a new one.
async fn exposure_source(ingestor: &Ingestor) -> anyhow::Result<String> {
    let keys = ingestor.write_keys();
    let existing = keys.list().await?.into_iter().rfind(|k| k.name == SOURCE);
    Ok(match existing {
        Some(k) => k.id,
        None => keys.create(SOURCE).await?.0.id,
    })
}
