//! [`Experiments`]: define, start and stop experiments; assign visitors (GrowthBook's hashing,
//! sticky across a later login) and log their exposure as a Segment `Experiment Viewed` event;
//! compute the results.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use dermis_core::clock::SharedClock;
use dermis_events::Pseudonyms;
use dermis_events::ingest::Ingestor;
use dermis_experiments::bandit::thompson::ThompsonSampling;
use dermis_experiments::growthbook::{self};
use dermis_experiments::stats::{
    self, BayesianResult, SampleStats, SequentialConfig, SequentialInterval, SrmCheck, Uplift,
};
use dermis_store::{Db, StoreError};
use rand::SeedableRng;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::model::{Allocation, Attributes, Definition, Status};
use crate::store::{self, VariantTotals};

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
        }
    }

    /// Logs exposures as events through `ingestor` (the one whose hooks include this domain's).
    pub fn log_exposures_through(&self, ingestor: Ingestor) {
        let _ = self.ingestor.set(ingestor);
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
        let problems = definition.problems();
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
            if let Some(found) = store::assignment(&self.db, key, id_key).await? {
                kept = Some(found);
                break;
            }
        }
        let (variant, unit_key, hash_used) = match kept {
            Some((variant, unit)) => (variant, unit, false),
            None => {
                if !d.targeting.admits(&request.attributes) {
                    return Ok(out("not targeted"));
                }
                let weights = self.split(key, d).await?;
                match growthbook::assign(&d.growthbook(Some(weights)), hash_id) {
                    Some(v) => (v, id_keys.last().cloned().unwrap_or_default(), true),
                    None => return Ok(out("outside the namespace or coverage")),
                }
            }
        };
        store::assign(&self.db, key, &id_keys, &unit_key, variant, self.clock.now_ms()).await?;
        let chosen = &d.variants[variant.min(d.variants.len() - 1)];
        if request.log_exposure {
            self.log_exposure(d, &chosen.key, request).await;
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
        let index = growthbook::assign(&d.growthbook(weights), unit)?;
        let variant = d.variants.get(index)?;
        let seen = format!("{}\u{0}{unit}", d.key);
        if self.exposed.contains_key(&seen) {
            return Some((d.key.clone(), variant.key.clone(), variant.config.clone()));
        }
        self.exposed.insert(seen, ());
        let this = self.clone();
        let (definition, key, user) = (d.clone(), variant.key.clone(), unit.to_owned());
        tokio::spawn(async move {
            let id_key = this.id_key(&user);
            if let Err(e) = store::assign(
                &this.db,
                &definition.key,
                std::slice::from_ref(&id_key),
                &id_key,
                index,
                this.clock.now_ms(),
            )
            .await
            {
                tracing::warn!(error = %e, "experiment assignment not recorded");
            }
            let request = AssignRequest { user_id: Some(user), ..AssignRequest::default() };
            this.log_exposure(&definition, &key, &request).await;
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

    async fn log_exposure(&self, d: &Definition, variant: &str, request: &AssignRequest) {
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

    /// The results: units per variant, SRM, and per metric the uplift of each variant over the
    /// control (fixed-horizon and always-valid intervals, Bayesian chance to win), guardrail
    /// alerts.
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
        let mut metrics = vec![
            metric(d, "click_through", false, &proportion(|t| t.clicked)),
            metric(d, "add_to_cart", false, &proportion(|t| t.added)),
            metric(d, "conversion", false, &proportion(|t| t.converted)),
            metric(
                d,
                "revenue_per_visitor",
                false,
                &totals.iter().map(|t| SampleStats::new(t.units, t.revenue, t.revenue_squares)).collect::<Vec<_>>(),
            ),
            metric(d, "return_rate", true, &proportion(|t| t.returned)),
            metric(d, "adverse_reaction_rate", true, &proportion(|t| t.reacted)),
        ];
        for m in &mut metrics {
            if m.alert {
                alerts.push(format!("guardrail {} is worse in a variant", m.metric));
            }
        }
        Ok(Results { experiment: key.to_owned(), status: stored.status, units, srm, metrics, alerts })
    }
}

/// One metric: each variant against the control.
fn metric(d: &Definition, name: &str, guardrail: bool, per_variant: &[SampleStats]) -> Metric {
    let control = per_variant[0];
    let mut alert = false;
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
            MetricResult {
                variant: v.key.clone(),
                units: s.n,
                mean: if s.n > 0 { s.mean() } else { 0.0 },
                bayesian: uplift.as_ref().map(|u| stats::bayesian(u, None)),
                uplift,
                sequential,
            }
        })
        .collect();
    Metric { metric: name.to_owned(), guardrail, variants, alert }
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
