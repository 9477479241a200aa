//! The serving pipeline: candidates → safety → scoring → re-ranking → explanation, from memory
//! only (the catalog view, the live interactions, the current model, the customer's online
//! profile), and the background training that swaps a new model in whole.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use dermis_customers::projection::OnlineProfile;
use dermis_ingredients::RoutineStep;
use serde::Serialize;

use super::cursor::Shown;
use super::live::{Activity, LiveInteractions};
use super::products::{CatalogView, ProductEntry, ProductTable};
use crate::Trained;
use crate::content::{ContentProfile, SegmentPopularity};
use crate::data::{History, Signal, SignalWeights};
use crate::expr::BusinessRules;
use crate::knn::{ItemKnn, ItemKnnConfig};
use crate::model::Fit;
use crate::safety::{CustomerSafety, Excluded, Finding, IngredientSet, Reaction, SafeCandidates, Safety};
use crate::settings::{ModelKind, Settings};

use crate::weather::Weather;

/// Candidates taken from each source.
const PER_SOURCE: usize = 100;
/// Reviews a skin type needs before it has its own popularity.
const SEGMENT_MIN_REVIEWS: f32 = 50.0;
/// Most positive history items the explanation looks through.
const EXPLAIN_HISTORY: usize = 30;

/// How the sources are blended (each source's scores are scaled to [0, 1] over the candidates
/// first). The collaborative score is itself a learned blend (the hybrid model); these weights
/// mix it with what needs no training data.
#[derive(Debug, Clone, PartialEq)]
pub struct Blend {
    pub collaborative: f32,
    pub content: f32,
    pub popularity: f32,
    pub session: f32,
    pub replenishment: f32,
    pub context: f32,
    /// MMR: how much a second product of the same brand or routine step costs.
    pub diversity: f32,
}

impl Blend {
    /// These weights with the ones an experiment's variant names replaced
    /// (`{"collaborative": 0.5, "content": 1.0, ...}`; each clamped to [0, 10], others kept).
    pub fn with_overrides(&self, overrides: &serde_json::Value) -> Blend {
        let mut b = self.clone();
        for (name, slot) in [
            ("collaborative", &mut b.collaborative),
            ("content", &mut b.content),
            ("popularity", &mut b.popularity),
            ("session", &mut b.session),
            ("replenishment", &mut b.replenishment),
            ("context", &mut b.context),
            ("diversity", &mut b.diversity),
        ] {
            if let Some(v) = overrides.get(name).and_then(serde_json::Value::as_f64).filter(|v| v.is_finite()) {
                *slot = v.clamp(0.0, 10.0) as f32;
            }
        }
        b
    }
}

impl Default for Blend {
    fn default() -> Self {
        Blend {
            collaborative: 1.0,
            content: 0.35,
            popularity: 0.2,
            session: 0.3,
            replenishment: 0.6,
            context: 0.25,
            diversity: 0.15,
        }
    }
}

/// The engine's settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The collaborative model served.
    pub model: ModelKind,
    /// Seconds between retrains (when something changed).
    pub retrain_secs: u64,
    /// Fewest interactions to train on.
    pub min_interactions: usize,
    /// Signal weights by kind.
    pub weights: SignalWeights,
    /// Source weights.
    pub blend: Blend,
    /// What counts as the current session.
    pub session_minutes: i64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            model: ModelKind::Hybrid,
            retrain_secs: 600,
            min_interactions: 20,
            weights: SignalWeights::default(),
            blend: Blend::default(),
            session_minutes: 30,
        }
    }
}

/// A trained model as served: the model, item-kNN (explanations, sessions, similar products)
/// and where each model item is in the catalog table.
pub struct Served {
    pub trained: Trained,
    pub knn: ItemKnn,
    pub kind: &'static str,
    pub fitted_at_ms: i64,
    pub fit_seconds: f64,
    /// Reviews by the reviewer's skin type, by table index (where their profile said).
    pub segments: SegmentPopularity,
    /// Per table index, how much more (or less) than the average a product is clicked where
    /// it is shown, position bias removed (1: no evidence).
    pub ctr_lift: Vec<f32>,
    /// The most popular products by catalog version and segment ([`Self::popular`]).
    popular: std::sync::Mutex<HashMap<(u64, Option<String>), TopList>>,
    /// Model item → table index, for the table version it was computed for.
    to_table: RwLock<(u64, Arc<Vec<u32>>)>,
}

const NOT_IN_TABLE: u32 = u32::MAX;

/// A source's best products: (table index, score), best first.
type TopList = Arc<Vec<(u32, f32)>>;

impl Served {
    /// The most popular products (table index, score): among customers of `segment` (a skin
    /// type with its own counts), else among all, corrected by click rates; computed once per
    /// catalog version and segment.
    fn popular(&self, table: &ProductTable, segment: Option<&str>) -> Arc<Vec<(u32, f32)>> {
        let key = (table.version(), segment.map(str::to_owned));
        if let Some(v) = self.popular.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return v.clone();
        }
        let list: Vec<(u32, f32)> = match segment {
            Some(seg) => {
                let mut scores = vec![0.0; table.len()];
                self.segments.scores(Some(seg), &mut scores);
                crate::model::top_k(&scores, PER_SOURCE, &[], None)
                    .into_iter()
                    .filter(|sc| sc.score > 0.0)
                    .map(|sc| (sc.item, sc.score))
                    .collect()
            }
            None => {
                let map = self.mapping(table);
                crate::model::top_k(self.trained.popularity.counts(), PER_SOURCE, &[], None)
                    .into_iter()
                    .filter(|sc| map[sc.item as usize] != NOT_IN_TABLE && sc.score > 0.0)
                    .map(|sc| {
                        let t = map[sc.item as usize];
                        (t, sc.score * self.ctr_lift.get(t as usize).copied().unwrap_or(1.0))
                    })
                    .collect()
            }
        };
        let list = Arc::new(list);
        let mut cache = self.popular.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > 64 {
            cache.clear();
        }
        cache.insert(key, list.clone());
        list
    }

    /// Model item → table index ([`NOT_IN_TABLE`] when the catalog no longer has it).
    fn mapping(&self, table: &ProductTable) -> Arc<Vec<u32>> {
        {
            let m = self.to_table.read().unwrap_or_else(|e| e.into_inner());
            if m.0 == table.version() {
                return m.1.clone();
            }
        }
        let ids = self.trained.interactions.items();
        let map: Arc<Vec<u32>> =
            Arc::new((0..ids.len() as u32).map(|i| table.find(ids.id(i)).unwrap_or(NOT_IN_TABLE)).collect());
        *self.to_table.write().unwrap_or_else(|e| e.into_inner()) = (table.version(), map.clone());
        map
    }
}

/// Who the recommendations are for.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// The customer's id (none for an anonymous visitor).
    pub customer_id: Option<String>,
    /// The user id the shop knows them by, when linked.
    pub user_id: Option<String>,
    /// What the safety rules read.
    pub safety: CustomerSafety,
    /// What content scoring reads.
    pub content: ContentProfile,
    /// Pseudonyms their events are kept under.
    pub pseudonyms: Vec<String>,
    /// Personalized output allowed (the `personalization` consent, or a visitor's own answers).
    pub personalized: bool,
    /// Allergy names the knowledge base does not know (reported back; matched as label words).
    pub unknown_allergies: Vec<String>,
}

impl Subject {
    /// A known customer from their online profile.
    pub fn customer(profile: &OnlineProfile, live: &LiveInteractions) -> Self {
        let mut pseudonyms = vec![live.pseudonym(&profile.customer_id)];
        if let Some(u) = &profile.user_id {
            pseudonyms.push(live.pseudonym(u));
        }
        let safety = CustomerSafety::from_profile(profile);
        let skin = profile.skin_type.map(|s| s.as_str().to_owned());
        Subject {
            customer_id: Some(profile.customer_id.clone()),
            user_id: profile.user_id.clone(),
            content: ContentProfile {
                sensitive: skin.as_deref() == Some("sensitive")
                    || profile.concerns.iter().any(|c| c == "sensitivity")
                    || !safety.sensitivities.is_empty(),
                skin_type: skin,
                concerns: profile.concerns.clone(),
            },
            unknown_allergies: profile.unknown_allergens.clone(),
            safety,
            pseudonyms,
            personalized: profile.consents.personalization,
        }
    }

    /// An anonymous visitor from quiz answers.
    pub fn visitor(
        skin_type: Option<&str>,
        concerns: &[String],
        allergies: &[String],
        sensitivities: &[String],
        pregnant: bool,
        safety: &Safety,
    ) -> Self {
        let cs = CustomerSafety::from_answers(skin_type, concerns, allergies, sensitivities, pregnant, safety.kb());
        Subject {
            customer_id: None,
            user_id: None,
            content: ContentProfile {
                skin_type: skin_type.map(str::to_owned),
                concerns: concerns.to_vec(),
                sensitive: skin_type == Some("sensitive")
                    || concerns.iter().any(|c| c == "sensitivity")
                    || !cs.sensitivities.is_empty(),
            },
            unknown_allergies: cs.allergies.unknown.clone(),
            safety: cs,
            pseudonyms: Vec::new(),
            personalized: true,
        }
    }
}

/// Morning or evening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeOfDay {
    Am,
    Pm,
}

/// What the request says about its moment and place.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Now, ms since the epoch.
    pub now_ms: i64,
    /// Channel (`web`, `app`, `pos`, `marketplace:NAME`).
    pub channel: Option<String>,
    /// Store.
    pub store: Option<String>,
    /// Morning or evening routine.
    pub time_of_day: Option<TimeOfDay>,
    /// The weather where the customer is.
    pub weather: Option<Weather>,
}

/// A per-request filter over products (a compiled filter expression).
pub type ProductFilter = dyn Fn(&ProductEntry) -> bool + Send + Sync;

/// One request.
pub struct Request<'a> {
    /// How many.
    pub k: usize,
    /// The placement (business rules may be scoped to one).
    pub placement: Option<String>,
    /// Return the exclusions.
    pub explain: bool,
    /// Keep only products it accepts.
    pub filter: Option<&'a ProductFilter>,
    /// Product ids (or external ids) to leave out.
    pub exclude: Vec<String>,
    /// What earlier pages of this feed showed.
    pub shown: Shown,
    /// Moment and place.
    pub context: Context,
    /// Source weights for this request instead of the engine's (an experiment's variant).
    pub blend: Option<Blend>,
    /// This request's own reordering of the safe list, after the business rules (an
    /// experiment's variant: its rules, a contextual bandit); it cannot add a product.
    pub rerank: Option<&'a super::rerank::Rerank<'a>>,
}

/// Why an item is recommended, in plain words.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    /// What kind of reason (`ingredients_for_concern`, `similar_customers`, `rated_by_skin_type` ...).
    pub kind: &'static str,
    /// In plain words.
    pub text: String,
}

/// One recommended product.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub product_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub name: String,
    pub brand: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routine_step: Option<RoutineStep>,
    pub score: f32,
    pub reasons: Vec<Reason>,
    /// Warnings from the safety rules that did not exclude it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Finding>,
}

impl Item {
    /// A product as a response lists it (the score rounded to 4 decimals).
    pub fn of(e: &ProductEntry, score: f32, reasons: Vec<Reason>, warnings: Vec<Finding>) -> Self {
        Item {
            product_id: e.id.clone(),
            external_id: e.external_id.clone(),
            name: e.name.clone(),
            brand: e.brand.clone(),
            price: e.price(),
            routine_step: e.routine_step(),
            score: (score * 1e4).round() / 1e4,
            reasons,
            warnings,
        }
    }
}

/// What the engine answered.
#[derive(Debug, Clone, Serialize)]
pub struct Recommendations {
    pub recommendation_id: String,
    pub items: Vec<Item>,
    /// Products the safety layer excluded, with every rule (only with `explain`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excluded: Option<Vec<Excluded>>,
    /// Whether the list is personal.
    pub personalized: bool,
    /// What the list is based on when it is not the full pipeline (no consent, no interactions
    /// yet ...), in plain words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
    /// Allergy names the knowledge base does not know: matched as words of the label.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown_allergies: Vec<String>,
    /// The collaborative model that scored it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<&'static str>,
    /// The safety rules' version.
    pub rules_version: String,
    /// Pass back as `cursor` for the next page (no product repeats).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The experiment and variant this list was made under, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<ExperimentTag>,
}

/// An experiment's variant a list was made under.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentTag {
    /// The experiment's key.
    pub key: String,
    /// The variant's key.
    pub variant: String,
}

/// What one candidate carries through scoring.
#[derive(Debug, Clone, Copy, Default)]
struct Cand {
    collaborative: f32,
    content: f32,
    popularity: f32,
    session: f32,
    /// Days since bought, when due again.
    replenish_days: Option<i64>,
    context: f32,
    score: f32,
}

/// Lists this node served, by recommendation id (the most recent [`MAX_IMPRESSIONS`]): what a
/// later click's position is read from, and how often each product was shown where.
#[derive(Default)]
struct Impressions {
    order: std::collections::VecDeque<Arc<str>>,
    /// Table indices (stable: the catalog view only appends), in the order shown.
    lists: HashMap<Arc<str>, Vec<u32>>,
}

/// The placement the routine builder ranks under (its ranking is not shown as such).
pub const ROUTINE_PLACEMENT: &str = "routine";

/// Served lists remembered.
pub const MAX_IMPRESSIONS: usize = 100_000;

impl Impressions {
    fn log(&mut self, id: &str, products: Vec<u32>) {
        let id: Arc<str> = Arc::from(id);
        self.order.push_back(id.clone());
        self.lists.insert(id, products);
        while self.order.len() > MAX_IMPRESSIONS {
            if let Some(old) = self.order.pop_front() {
                self.lists.remove(&old);
            }
        }
    }
}

/// Prior strength (in expected looks) of the click-rate correction of popularity.
const CTR_PRIOR: f32 = 20.0;

/// The recommendation engine of a node.
pub struct Engine {
    catalog: Arc<CatalogView>,
    live: Arc<LiveInteractions>,
    safety: Arc<Safety>,
    config: EngineConfig,
    served: RwLock<Option<Arc<Served>>>,
    rules: RwLock<Option<Arc<BusinessRules>>>,
    impressions: std::sync::Mutex<Impressions>,
    /// EASE's λ as last tuned, and the interactions it was tuned on.
    ease_lambda: std::sync::Mutex<Option<(f32, usize)>>,
    /// The best products for a content profile, by catalog version ([`Self::content_top`]).
    content_cache: std::sync::Mutex<(u64, HashMap<String, TopList>)>,
    /// Pages for subjects with no activity of their own, by everything a page depends on
    /// ([`Self::page_key`]).
    pages: moka::sync::Cache<String, Arc<CachedPage>>,
    /// Moves whenever the model served or the business rules change (part of a page's key).
    epoch: std::sync::atomic::AtomicU64,
}

/// A page as computed, without its recommendation id; `listed`: its products, by table index.
struct CachedPage {
    page: Recommendations,
    listed: Vec<u32>,
}

/// How long a cached page may be served: other customers' reviews (the "rated 4.6 by ..."
/// explanations) are at most this old in it. Everything of the customer's own is in its key.
const PAGE_TTL: Duration = Duration::from_secs(10);

/// The most memory shared pages take (keys and pages, estimated).
const PAGE_CACHE_BYTES: u64 = 32 << 20;

/// Longer keys are not cached (they hold caller-given text).
const MAX_PAGE_KEY: usize = 4096;

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("catalog", &self.catalog).field("live", &self.live).finish()
    }
}

/// What a training run did.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub model: &'static str,
    pub interactions: usize,
    pub customers: usize,
    pub products: usize,
    pub seconds: f64,
}

/// How long a product of a routine step usually lasts, in days (for replenishment).
pub fn usage_days(step: Option<RoutineStep>) -> i64 {
    match step {
        Some(RoutineStep::Cleanser) => 75,
        Some(RoutineStep::Toner) => 60,
        Some(RoutineStep::Serum) => 50,
        Some(RoutineStep::Eye) => 90,
        Some(RoutineStep::Moisturizer) => 60,
        Some(RoutineStep::Sunscreen) => 45,
        Some(RoutineStep::Mask) | Some(RoutineStep::Exfoliant) => 90,
        None => 60,
    }
}

fn scale(values: impl Iterator<Item = f32>) -> f32 {
    let max = values.fold(0.0f32, f32::max);
    if max > 0.0 { 1.0 / max } else { 0.0 }
}

/// `n` in words for small counts.
fn times(n: usize) -> String {
    match n {
        1 => "once".into(),
        2 => "twice".into(),
        n => format!("{n} times"),
    }
}

/// A list in words: `a`, `a and b`, `a, b and c`.
pub fn words_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

impl Engine {
    /// An engine over the catalog view and the live interactions.
    pub fn new(
        catalog: Arc<CatalogView>,
        live: Arc<LiveInteractions>,
        safety: Arc<Safety>,
        config: EngineConfig,
    ) -> Self {
        Engine {
            catalog,
            live,
            safety,
            config,
            served: RwLock::new(None),
            rules: RwLock::new(None),
            impressions: std::sync::Mutex::new(Impressions::default()),
            content_cache: std::sync::Mutex::new((u64::MAX, HashMap::default())),
            ease_lambda: std::sync::Mutex::new(None),
            pages: moka::sync::Cache::builder()
                .max_capacity(PAGE_CACHE_BYTES)
                .weigher(|key: &String, page: &Arc<CachedPage>| {
                    // A few hundred bytes of names and reasons per item, generously.
                    u32::try_from(key.len() + 256 + page.page.items.len() * 1024).unwrap_or(u32::MAX)
                })
                .time_to_live(PAGE_TTL)
                .build(),
            epoch: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Business rules applied after scoring (boost, bury, pin).
    pub fn set_rules(&self, rules: Option<BusinessRules>) {
        *self.rules.write().unwrap_or_else(|e| e.into_inner()) = rules.map(Arc::new);
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// The catalog view.
    pub fn catalog(&self) -> &Arc<CatalogView> {
        &self.catalog
    }

    /// The live interactions.
    pub fn live(&self) -> &Arc<LiveInteractions> {
        &self.live
    }

    /// The safety evaluator.
    pub fn safety(&self) -> &Arc<Safety> {
        &self.safety
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The model served now.
    pub fn served(&self) -> Option<Arc<Served>> {
        self.served.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A new `rec_...` id.
    pub fn new_recommendation_id(&self) -> String {
        dermis_core::ids::new_id("rec")
    }

    /// Trains on what the live interactions hold now and swaps the model in (the previous one
    /// serves until then). `None` when there is too little to learn from.
    pub async fn train(&self, now_ms: i64) -> anyhow::Result<Option<TrainReport>> {
        let table = self.catalog.table();
        let (data, ctr_lift) = {
            let impressions = self.impressions.lock().unwrap_or_else(|e| e.into_inner());
            let data = self.live.training_data(
                &self.config.weights,
                |p| table.find(p).map(|i| table.get(i).id.clone()),
                |rec, p| {
                    let t = table.find(p)?;
                    impressions.lists.get(rec).and_then(|l| l.iter().position(|&x| x == t)).map(|i| i as u32 + 1)
                },
            );
            let ctr_lift = self.ctr_lift(&table, &impressions);
            (data, ctr_lift)
        };
        if data.nnz() < self.config.min_interactions || data.n_items() < 2 {
            return Ok(None);
        }
        let kind = self.config.model;
        let mut segments = SegmentPopularity::new(table.len(), SEGMENT_MIN_REVIEWS);
        for (product, skin, n) in self.live.reviews_by_skin_type() {
            if let Some(t) = table.find(&product) {
                segments.add(Some(&skin), t, n as f32);
            }
        }
        let start = Instant::now();
        // EASE's λ is tuned (three fits on a held-out part) at the first training and again
        // when the data grew or shrank by a fifth; in between, the retrain reuses it.
        let tuned = *self.ease_lambda.lock().unwrap_or_else(|e| e.into_inner());
        let reuse = tuned.filter(|&(_, n)| {
            let now = data.nnz() as f64;
            (now - n as f64).abs() <= 0.2 * n as f64
        });
        let (served, lambda) = tokio::task::spawn_blocking(move || -> anyhow::Result<(Served, Option<f32>)> {
            let mut settings = Settings::default();
            if let Some((l, _)) = reuse {
                settings.hybrid.ease.tune = None;
                settings.hybrid.ease.lambda = l;
                settings.ease.tune = None;
                settings.ease.lambda = l;
            }
            // A richer model needs held-out data to tune on: fall back to simpler ones on a
            // small log.
            let mut chain = vec![kind, ModelKind::Ease, ModelKind::ItemKnn, ModelKind::Popularity];
            chain.dedup();
            let mut last_err = None;
            for k in chain {
                let fitted: Result<(Box<dyn crate::Model>, Option<f32>), crate::RecommendError> = match k {
                    ModelKind::Hybrid => settings.hybrid.fit(&data).map(|h| {
                        let l = h.report().ease_lambda;
                        (Box::new(h) as Box<dyn crate::Model>, Some(l))
                    }),
                    ModelKind::Ease => settings.ease.fit(&data).map(|e| {
                        let l = e.lambda();
                        (Box::new(e) as Box<dyn crate::Model>, Some(l))
                    }),
                    other => settings.fit(other, &data).map(|(m, _)| (m, None)),
                };
                match fitted {
                    Ok((model, lambda)) => {
                        let knn = ItemKnnConfig::default().fit(&data)?;
                        let trained = Trained::new(data, model)?;
                        let served = Served {
                            trained,
                            knn,
                            kind: k.as_str(),
                            fitted_at_ms: now_ms,
                            fit_seconds: start.elapsed().as_secs_f64(),
                            segments,
                            ctr_lift,
                            popular: Default::default(),
                            to_table: RwLock::new((u64::MAX, Arc::new(Vec::new()))),
                        };
                        return Ok((served, lambda));
                    }
                    Err(e) => {
                        tracing::info!(model = k.as_str(), error = %e, "model not trained; trying a simpler one");
                        last_err = Some(e);
                    }
                }
            }
            Err(last_err.map(anyhow::Error::from).unwrap_or_else(|| anyhow::anyhow!("no model")))
        })
        .await??;
        if reuse.is_none()
            && let Some(l) = lambda
        {
            *self.ease_lambda.lock().unwrap_or_else(|e| e.into_inner()) = Some((l, served.trained.interactions.nnz()));
        }
        let report = TrainReport {
            model: served.kind,
            interactions: served.trained.interactions.nnz(),
            customers: served.trained.interactions.n_users(),
            products: served.trained.interactions.n_items(),
            seconds: served.fit_seconds,
        };
        *self.served.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(served));
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tracing::info!(
            model = report.model,
            interactions = report.interactions,
            seconds = report.seconds,
            "recommendation model swapped in"
        );
        Ok(Some(report))
    }

    /// The best products for a content profile (skin type, concerns, sensitivity): a few
    /// hundred distinct profiles cover every customer, so each is scored over the catalog once
    /// per catalog version.
    fn content_top(&self, table: &ProductTable, profile: &ContentProfile) -> Arc<Vec<(u32, f32)>> {
        let mut concerns = profile.concerns.clone();
        concerns.sort();
        let key =
            format!("{}|{}|{}", profile.skin_type.as_deref().unwrap_or(""), concerns.join(","), profile.sensitive);
        {
            let cache = self.content_cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.0 == table.version()
                && let Some(v) = cache.1.get(&key)
            {
                return v.clone();
            }
        }
        let mut scores = vec![0.0; table.len()];
        table.content().score(profile, &mut scores);
        let list: Arc<Vec<(u32, f32)>> = Arc::new(
            crate::model::top_k(&scores, PER_SOURCE, &[], None)
                .into_iter()
                .filter(|sc| sc.score > 0.0)
                .map(|sc| (sc.item, sc.score))
                .collect(),
        );
        let mut cache = self.content_cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.0 != table.version() || cache.1.len() > 10_000 {
            *cache = (table.version(), HashMap::default());
        }
        cache.1.insert(key, list.clone());
        list
    }

    /// Click rates from the lists served, position bias removed: each showing counts the chance
    /// its position is looked at (1/position), each action on a listed product one click; a
    /// product's rate is shrunk towards the mean by [`CTR_PRIOR`] expected looks, and given as
    /// a ratio to the mean.
    fn ctr_lift(&self, table: &ProductTable, impressions: &Impressions) -> Vec<f32> {
        let mut looks = vec![0.0f32; table.len()];
        let mut clicks = vec![0.0f32; table.len()];
        for list in impressions.lists.values() {
            for (pos, &t) in list.iter().enumerate() {
                if let Some(l) = looks.get_mut(t as usize) {
                    *l += 1.0 / (pos + 1) as f32;
                }
            }
        }
        for a in self.live.attributed() {
            if impressions.lists.contains_key(&a.recommendation_id)
                && let Some(t) = table.find(&a.product)
            {
                clicks[t as usize] += 1.0;
            }
        }
        let (l, c): (f32, f32) = (looks.iter().sum(), clicks.iter().sum());
        if l <= 0.0 || c <= 0.0 {
            return vec![1.0; table.len()];
        }
        let mean = c / l;
        looks.iter().zip(&clicks).map(|(l, c)| ((c + CTR_PRIOR * mean) / (l + CTR_PRIOR)) / mean).collect()
    }

    /// Retrains every `retrain_secs` while something changed, from the moment the catalog and
    /// interactions are loaded; runs until the task is dropped.
    pub async fn run_trainer(self: Arc<Self>, clock: dermis_core::clock::SharedClock) {
        loop {
            if self.catalog.is_ready() && self.live.is_rebuilt() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        loop {
            if (self.served().is_none() || self.live.changed() > 0)
                && let Err(e) = self.train(clock.now_ms()).await
            {
                tracing::warn!(error = %e, "training the recommendation model failed; the previous one keeps serving");
            }
            tokio::time::sleep(Duration::from_secs(self.config.retrain_secs.max(1))).await;
        }
    }

    /// The customer's safety facts with their reported reactions and whether their routine has
    /// a sunscreen (from what they bought).
    pub(super) fn safety_of(&self, subject: &Subject, activity: &Activity, table: &ProductTable) -> CustomerSafety {
        let mut cs = subject.safety.clone();
        for r in &activity.reactions {
            match table.find(&r.product) {
                Some(i) => cs.reactions.push(Reaction::inferred(&table.get(i).safety, self.safety.kb())),
                None => cs.reactions.push(Reaction::new(r.product.to_string(), IngredientSet::default())),
            }
        }
        let bought: Vec<u32> = activity
            .interactions
            .iter()
            .filter(|i| matches!(i.signal, Signal::Purchase | Signal::Repurchase))
            .filter_map(|i| table.find(&i.product))
            .collect();
        if !bought.is_empty() && cs.routine_has_sunscreen.is_none() {
            cs.routine_has_sunscreen = Some(bought.iter().any(|&i| table.get(i).safety.is_sunscreen()));
        }
        cs
    }

    /// Recommendations for a subject.
    ///
    /// A subject with no activity of their own (a new customer, a quiz visitor) gets the page
    /// computed for the same facts: the key holds every input of the pipeline (the whole safety
    /// profile, content profile, consent, the request, the catalog version and the model and
    /// rules epoch), compared in full, so two subjects share a page only when the pipeline could
    /// not tell them apart. Any event of their own takes them off this path at once. Not cached:
    /// requests with a filter expression, a re-ranking hook or a stock check (stock moves).
    pub fn recommend(&self, subject: &Subject, req: &Request<'_>) -> Recommendations {
        // Read once: the page is computed from exactly the activity its key was judged on (an
        // event arriving meanwhile must not put a personal page under a shared key).
        let activity = self.activity_of(subject);
        let Some(key) = self.page_key(subject, req, &activity) else {
            return self.recommend_from(subject, req, &activity, false);
        };
        let page = match self.pages.get(&key) {
            Some(hit) => hit,
            None => {
                let page = self.recommend_from(subject, req, &activity, false);
                let table = self.catalog.table();
                let listed = page.items.iter().filter_map(|i| table.find(&i.product_id)).collect();
                let page = Arc::new(CachedPage { page, listed });
                self.pages.insert(key, page.clone());
                // This computation logged its own impressions.
                return page.page.clone();
            }
        };
        let mut out = page.page.clone();
        out.recommendation_id = self.new_recommendation_id();
        if req.placement.as_deref() != Some(ROUTINE_PLACEMENT) {
            self.impressions.lock().unwrap_or_else(|e| e.into_inner()).log(&out.recommendation_id, page.listed.clone());
        }
        out
    }

    /// What the subject did (nothing for a visitor).
    pub(super) fn activity_of(&self, subject: &Subject) -> Activity {
        if subject.pseudonyms.is_empty() { Activity::default() } else { self.live.activity(&subject.pseudonyms) }
    }

    /// The key of a page that may be shared ([`Self::recommend`]), or `None` when it may not:
    /// the subject did something, the request has a filter, a re-ranking hook, a stock check, an
    /// `explain` (its exclusions are long) or ids to leave out, or the key is long (it holds
    /// caller-given text: the cache's memory stays bounded by [`PAGE_CACHE_BYTES`]).
    fn page_key(&self, subject: &Subject, req: &Request<'_>, activity: &Activity) -> Option<String> {
        if req.filter.is_some()
            || req.rerank.is_some()
            || subject.safety.availability.is_some()
            || req.explain
            || !req.exclude.is_empty()
            || !activity.interactions.is_empty()
            || !activity.reactions.is_empty()
        {
            return None;
        }
        let c = &req.context;
        let key = format!(
            "{}|{}|{:?}|{:?}|{}|{:?}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
            self.catalog.table().version(),
            self.epoch.load(std::sync::atomic::Ordering::SeqCst),
            subject.safety,
            subject.content,
            subject.personalized,
            subject.unknown_allergies,
            req.k,
            req.placement,
            req.shown,
            c.channel,
            c.store,
            c.time_of_day,
            c.weather,
            req.blend,
        );
        (key.len() <= MAX_PAGE_KEY).then_some(key)
    }

    /// The pipeline; `everything`: every product of the catalog is a candidate (when the
    /// sources' candidates left a page short: a narrow filter, many exclusions).
    fn recommend_from(
        &self,
        subject: &Subject,
        req: &Request<'_>,
        activity: &Activity,
        everything: bool,
    ) -> Recommendations {
        let table = self.catalog.table();
        let served = self.served();
        let b = req.blend.as_ref().unwrap_or(&self.config.blend);
        let mut notices = Vec::new();
        let customer_safety = self.safety_of(subject, activity, &table);
        let personal = subject.personalized;
        if !personal {
            notices.push(
                "not personalized: the customer has not granted the personalization consent; popular products, safe for their declared profile".to_owned(),
            );
        }
        let now = req.context.now_ms;

        // What the customer did, by table index.
        let mut weight: HashMap<u32, f32> = HashMap::default();
        let mut rating: HashMap<u32, f32> = HashMap::default();
        let mut views_week: HashMap<u32, usize> = HashMap::default();
        let mut bought: HashMap<u32, i64> = HashMap::default();
        let mut negative: HashSet<u32> = HashSet::default();
        let mut session: Vec<u32> = Vec::new();
        if personal {
            for i in &activity.interactions {
                let Some(t) = table.find(&i.product) else { continue };
                *weight.entry(t).or_default() += self.config.weights.weight(i.signal);
                if let Signal::Review { rating: r } = i.signal {
                    let x = rating.entry(t).or_insert(r);
                    *x = x.max(r);
                }
                match i.signal {
                    Signal::View if now - i.at_ms <= 7 * 86_400_000 => *views_week.entry(t).or_default() += 1,
                    Signal::Purchase | Signal::Repurchase => {
                        bought.insert(t, i.at_ms);
                    }
                    Signal::NotForMe | Signal::Return => {
                        negative.insert(t);
                    }
                    _ => {}
                }
                if matches!(i.signal, Signal::View | Signal::AddToCart)
                    && now - i.at_ms <= self.config.session_minutes * 60_000
                    && !session.contains(&t)
                {
                    session.push(t);
                }
            }
        }

        let mut cands: HashMap<u32, Cand> = HashMap::default();
        // Collaborative: the model scores the live history (events since the last training
        // count at once).
        let mut model_name = None;
        if let Some(s) = served.as_ref().filter(|_| personal) {
            let map = s.mapping(&table);
            let items = s.trained.interactions.items();
            let mut hist: Vec<(u32, f32, f32)> = weight
                .iter()
                .filter_map(|(&t, &w)| {
                    items.get(&table.get(t).id).map(|m| (m, w, rating.get(&t).copied().unwrap_or(f32::NAN)))
                })
                .collect();
            hist.sort_unstable_by_key(|h| h.0);
            if hist.iter().any(|h| h.1 > 0.0) {
                let hi: Vec<u32> = hist.iter().map(|h| h.0).collect();
                let hw: Vec<f32> = hist.iter().map(|h| h.1).collect();
                let hr: Vec<f32> = hist.iter().map(|h| h.2).collect();
                let history = History { items: &hi, weights: &hw, ratings: &hr };
                for sc in s.trained.model.recommend(history, PER_SOURCE, None) {
                    let t = map[sc.item as usize];
                    if t != NOT_IN_TABLE {
                        cands.entry(t).or_default().collaborative = sc.score.max(0.0);
                    }
                }
                model_name = Some(s.kind);
                // Session: neighbours of what was viewed in the last minutes.
                for &t in &session {
                    if let Some(m) = items.get(&table.get(t).id) {
                        for n in s.knn.neighbours(m).iter().take(50) {
                            let tn = map[n.item as usize];
                            if tn != NOT_IN_TABLE {
                                cands.entry(tn).or_default().session += n.score;
                            }
                        }
                    }
                }
            }
        }
        // Content: skin profile and concerns against actives and attributes (works from quiz
        // answers alone). Not without consent: it is personal.
        if personal {
            for &(t, score) in self.content_top(&table, &subject.content).iter() {
                cands.entry(t).or_default().content = score;
            }
        }
        // Popularity: among customers of the same skin type when enough of them reviewed,
        // else among all.
        let segment = subject.content.skin_type.as_deref().filter(|_| personal);
        let by_segment = served.as_ref().zip(segment).filter(|(s, seg)| {
            s.segments.has_own(seg) && s.segments.total(None) > 0.0 && table.len() == s.segments.len()
        });
        if let Some(s) = served.as_ref() {
            for &(t, score) in s.popular(&table, by_segment.map(|x| x.1)).iter() {
                cands.entry(t).or_default().popularity = score;
            }
        } else {
            notices.push(
                "no interactions to learn from yet: ranked by the skin profile and the catalog's facts".to_owned(),
            );
        }
        // Replenishment: bought long enough ago to be running out.
        for (&t, &at) in &bought {
            let days = (now - at) / 86_400_000;
            if days * 10 >= usage_days(table.get(t).routine_step()) * 8 {
                cands.entry(t).or_default().replenish_days = Some(days);
            }
        }
        // Too few: the rest of the catalog, in its order, so a page is never short for lack of
        // candidates.
        let want = if everything {
            usize::MAX - PER_SOURCE
        } else {
            req.k * 3 + req.shown.len() + req.exclude.len() + bought.len() + negative.len()
        };
        if cands.len() < want {
            for (t, e) in table.entries().iter().enumerate() {
                if cands.len() >= want + PER_SOURCE {
                    break;
                }
                if e.active {
                    cands.entry(t as u32).or_default();
                }
            }
        }

        // Safety first: nothing it excludes comes back.
        let prepared = self.safety.prepare(&customer_safety);
        let mut ordered: Vec<(u32, Cand)> = cands.into_iter().collect();
        ordered.sort_unstable_by_key(|c| c.0);
        let judged = ordered.len();
        let candidates = ordered.into_iter().map(|(t, c)| ((t, c), &table.get(t).safety));
        let mut safe: SafeCandidates<(u32, Cand)> =
            if req.explain { prepared.filter(candidates) } else { prepared.filter_quiet(candidates) };

        // Business filters.
        let exclude: HashSet<u32> = req.exclude.iter().filter_map(|x| table.find(x)).collect();
        safe.retain(|s| {
            let (t, c) = s.value;
            let e = table.get(t);
            e.active
                && !negative.contains(&t)
                && (!bought.contains_key(&t) || c.replenish_days.is_some())
                && !exclude.contains(&t)
                && !req.shown.contains(&e.id)
                && req.filter.is_none_or(|f| f(e))
        });
        if safe.len() < req.k && !everything && cands_were_partial(&table, judged) {
            return self.recommend_from(subject, req, activity, true);
        }

        // Scoring.
        let (cf, ct, po, se) = (
            scale(safe.iter().map(|s| s.value.1.collaborative)),
            scale(safe.iter().map(|s| s.value.1.content)),
            scale(safe.iter().map(|s| s.value.1.popularity)),
            scale(safe.iter().map(|s| s.value.1.session)),
        );
        let weather = req.context.weather.as_ref();
        for s in safe.iter_mut() {
            let (t, c) = &mut s.value;
            let e = table.get(*t);
            let mut ctx = 0.0;
            let sunscreen = e.safety.is_sunscreen();
            if let Some(w) = weather {
                if w.high_uv() && sunscreen {
                    ctx += 1.0;
                }
                if w.dry_air() && e.concerns.iter().any(|x| x == "dryness") {
                    ctx += 0.6;
                }
            }
            let mut factor = 1.0;
            match req.context.time_of_day {
                Some(TimeOfDay::Am) if e.facts.as_ref().and_then(|f| f.am) == Some(false) => factor = 0.5,
                Some(TimeOfDay::Pm) if sunscreen => factor = 0.3,
                _ => {}
            }
            c.context = ctx;
            let base = if personal {
                b.collaborative * c.collaborative * cf
                    + b.content * c.content * ct
                    + b.popularity * c.popularity * po
                    + b.session * c.session * se
                    + if c.replenish_days.is_some() { b.replenishment } else { 0.0 }
                    + b.context * ctx
            } else {
                c.popularity * po + b.context * ctx
            };
            // A tiny, stable tie-break so equal scores keep catalog order.
            c.score = base * factor + 1e-6 / (1.0 + *t as f32);
        }
        safe.sort_by(|a, b| b.value.1.score.total_cmp(&a.value.1.score).then(a.value.0.cmp(&b.value.0)));

        // Re-ranking: MMR over brands and routine steps, then business rules.
        let depth = (req.k * 3).max(50);
        let order = mmr(&safe, &table, depth, b.diversity);
        let pos: HashMap<u32, (usize, f32)> = order.iter().enumerate().map(|(r, &(t, sc))| (t, (r, sc))).collect();
        safe.retain(|s| pos.contains_key(&s.value.0));
        for s in safe.iter_mut() {
            s.value.1.score = pos[&s.value.0].1;
        }
        safe.sort_by(|a, b| pos[&a.value.0].0.cmp(&pos[&b.value.0].0));
        // Business rules reorder what safety allowed (a `Safe` cannot be made here: nothing
        // excluded comes back).
        let (items, excluded) = safe.into_parts();
        let mut items: Vec<_> =
            items.into_iter().map(|s| s.map(|(t, c)| (t, c, table.entries()[t as usize].clone()))).collect();
        if let Some(rules) = self.rules.read().unwrap_or_else(|e| e.into_inner()).clone() {
            rules.apply(
                req.placement.as_deref(),
                &mut items,
                |s| s.value.1.score,
                |s, v| s.value.1.score = v,
                |s| &*s.value.2 as &dyn crate::expr::Attributes,
            );
        }
        if let Some(rerank) = req.rerank {
            let order = rerank(&items.iter().map(|s| (&*s.value.2, s.value.1.score)).collect::<Vec<_>>());
            super::rerank::reorder(&mut items, order, |s, v| s.value.1.score = v);
        }
        items.truncate(req.k);

        // Explanations.
        let mut shown = req.shown.clone();
        let out: Vec<Item> = items
            .into_iter()
            .map(|s| {
                let warnings = prepared.warnings(&s, &table.get(s.value.0).safety);
                let (t, c, _) = s.value;
                let e = table.get(t);
                shown.push(&e.id);
                let reasons = self.explain(
                    t,
                    &c,
                    subject,
                    &table,
                    served.as_deref(),
                    &weight,
                    &views_week,
                    weather,
                    req,
                    by_segment.map(|x| x.1),
                );
                Item::of(e, c.score, reasons, warnings)
            })
            .collect();
        let cursor = (!out.is_empty()).then(|| shown.encode());
        let recommendation_id = self.new_recommendation_id();
        // What a customer is shown (not the routine builder's internal ranking).
        if req.placement.as_deref() != Some(ROUTINE_PLACEMENT) {
            let listed: Vec<u32> = out.iter().filter_map(|i| table.find(&i.product_id)).collect();
            self.impressions.lock().unwrap_or_else(|e| e.into_inner()).log(&recommendation_id, listed);
        }
        Recommendations {
            recommendation_id,
            items: out,
            excluded: req.explain.then_some(excluded),
            personalized: personal,
            notices,
            unknown_allergies: subject.unknown_allergies.clone(),
            model: model_name,
            rules_version: self.safety.rules().version.clone(),
            cursor,
            experiment: None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn explain(
        &self,
        t: u32,
        c: &Cand,
        subject: &Subject,
        table: &ProductTable,
        served: Option<&Served>,
        weight: &HashMap<u32, f32>,
        views: &HashMap<u32, usize>,
        weather: Option<&Weather>,
        req: &Request<'_>,
        segment: Option<&str>,
    ) -> Vec<Reason> {
        let e = table.get(t);
        let mut out = Vec::new();
        if let Some(days) = c.replenish_days {
            out.push(Reason {
                kind: "replenishment",
                text: format!(
                    "you bought it {days} days ago; it usually lasts about {} days",
                    usage_days(e.routine_step())
                ),
            });
        }
        if subject.personalized {
            let m = table.content().explain(t, &subject.content);
            let mut by_concern: Vec<(String, Vec<String>)> = Vec::new();
            for (active, concern) in m.actives {
                match by_concern.iter_mut().find(|(c, _)| *c == concern) {
                    Some((_, a)) if !a.contains(&active) => a.push(active),
                    Some(_) => {}
                    None => by_concern.push((concern, vec![active])),
                }
            }
            for (concern, actives) in by_concern.into_iter().take(2) {
                let actives: Vec<String> = actives.into_iter().take(3).map(|a| a.to_lowercase()).collect();
                out.push(Reason {
                    kind: "ingredients_for_concern",
                    text: format!("contains {} for your {}", words_list(&actives), concern_words(&concern)),
                });
            }
            if m.fragrance_free {
                out.push(Reason { kind: "fragrance_free", text: "fragrance-free for your sensitive skin".into() });
            }
            if m.non_comedogenic {
                out.push(Reason {
                    kind: "non_comedogenic",
                    text: "no pore-clogging ingredients (comedogenic rating under 3)".into(),
                });
            }
            if m.skin_type
                && let Some(s) = &subject.content.skin_type
            {
                out.push(Reason { kind: "skin_type", text: format!("made for {s} skin") });
            }
            if let Some(&n) = views.get(&t) {
                out.push(Reason { kind: "viewed", text: format!("you viewed it {} this week", times(n)) });
            }
            // The product of their history it is most like, in what customers did.
            if (c.collaborative > 0.0 || c.session > 0.0)
                && let Some((name, _)) = served.and_then(|s| because_of(s, table, t, weight))
            {
                out.push(Reason {
                    kind: "similar_customers",
                    text: format!("customers who liked {name} also liked it"),
                });
            }
        }
        let ids: Vec<&str> = std::iter::once(e.id.as_str()).chain(e.external_id.as_deref()).collect();
        if let Some(stars) = self.live.stars(&ids) {
            let seg = subject.content.skin_type.as_ref().and_then(|s| stars.by_skin_type.get(s).map(|x| (s, x)));
            match seg {
                Some((s, x)) if x.count >= 3 => out.push(Reason {
                    kind: "rated_by_skin_type",
                    text: format!("rated {:.1} by {} customers with {s} skin", x.mean(), x.count),
                }),
                _ if stars.all.count >= 3 => out.push(Reason {
                    kind: "rated",
                    text: format!("rated {:.1} by {} customers", stars.all.mean(), stars.all.count),
                }),
                _ => {}
            }
        }
        if let Some(w) = weather {
            if w.high_uv() && e.safety.is_sunscreen() {
                out.push(Reason {
                    kind: "weather",
                    text: format!("sun protection for today's high UV (index {:.0})", w.uv_index),
                });
            }
            if w.dry_air()
                && e.concerns.iter().any(|x| x == "dryness")
                && let Some(h) = w.relative_humidity
            {
                out.push(Reason { kind: "weather", text: format!("hydration for dry air ({h:.0}% humidity)") });
            }
        }
        if req.context.time_of_day == Some(TimeOfDay::Am) && e.safety.is_sunscreen() {
            out.push(Reason { kind: "time_of_day", text: "the last step of a morning routine".into() });
        }
        if out.is_empty() && c.popularity > 0.0 {
            out.push(Reason {
                kind: "popular",
                text: match segment {
                    Some(s) => format!("popular with customers with {s} skin"),
                    None => "popular with customers".into(),
                },
            });
        }
        if out.is_empty() {
            out.push(Reason { kind: "safe_for_profile", text: "passes every safety rule for your profile".into() });
        }
        out
    }
}

/// The history product most like `t` (item-kNN), by name.
fn because_of(s: &Served, table: &ProductTable, t: u32, weight: &HashMap<u32, f32>) -> Option<(String, f32)> {
    let items = s.trained.interactions.items();
    let target = items.get(&table.get(t).id)?;
    let mut best: Option<(String, f32)> = None;
    let mut liked: Vec<(&u32, &f32)> = weight.iter().filter(|(_, w)| **w > 0.0).collect();
    liked.sort_by(|a, b| b.1.total_cmp(a.1));
    for (&h, _) in liked.into_iter().take(EXPLAIN_HISTORY) {
        let Some(m) = items.get(&table.get(h).id) else { continue };
        if let Some(n) = s.knn.neighbours(m).iter().find(|n| n.item == target)
            && best.as_ref().is_none_or(|b| n.score > b.1)
        {
            best = Some((table.get(h).name.clone(), n.score));
        }
    }
    best
}

/// Whether the candidates judged were fewer than the catalog's products (so a second pass over
/// all of them may find more).
fn cands_were_partial(table: &ProductTable, judged: usize) -> bool {
    judged < table.entries().iter().filter(|e| e.active).count()
}

/// A concern in words (`acne` → `acne-prone skin`).
pub fn concern_words(concern: &str) -> String {
    match concern {
        "acne" => "acne-prone skin".into(),
        "hyperpigmentation" => "dark spots".into(),
        "redness" => "redness".into(),
        "dryness" => "dry skin".into(),
        "aging" => "fine lines".into(),
        "dullness" => "dull skin".into(),
        "pores" => "visible pores".into(),
        "sensitivity" => "sensitive skin".into(),
        other => other.replace('-', " "),
    }
}

/// Greedy maximal marginal relevance over the first `depth` picks: each next pick maximizes
/// its score minus `diversity` × (products of the same brand + products of the same routine step
/// already picked) × the top score. Returns (table index, adjusted score), adjusted scores
/// non-increasing.
fn mmr(safe: &SafeCandidates<(u32, Cand)>, table: &ProductTable, depth: usize, diversity: f32) -> Vec<(u32, f32)> {
    // Only the best few hundred can be picked into `depth` places.
    let limit = (depth * 4).max(200);
    let mut brand_of: HashMap<&str, u16> = HashMap::default();
    // (table index, score, brand index, routine step index or none)
    let mut rest: Vec<(u32, f32, u16, Option<u8>)> = safe
        .iter()
        .take(limit)
        .map(|s| {
            let e = table.get(s.value.0);
            let n = brand_of.len() as u16;
            let b = *brand_of.entry(e.brand.as_str()).or_insert(n);
            (s.value.0, s.value.1.score, b, e.routine_step().map(|st| st as u8))
        })
        .collect();
    let top = rest.first().map_or(0.0, |r| r.1).max(1e-6);
    let mut brands = vec![0u32; brand_of.len()];
    let mut steps = [0u32; 16];
    let mut out = Vec::with_capacity(depth.min(rest.len()));
    while out.len() < depth && !rest.is_empty() {
        let mut best = 0;
        let mut best_score = f32::NEG_INFINITY;
        for (i, &(_, s, b, st)) in rest.iter().enumerate() {
            let same = brands[b as usize] + st.map_or(0, |st| steps[st as usize]);
            let adjusted = s - diversity * same as f32 * top;
            if adjusted > best_score {
                best_score = adjusted;
                best = i;
            }
        }
        let (t, _, b, st) = rest.remove(best);
        brands[b as usize] += 1;
        if let Some(st) = st {
            steps[st as usize] += 1;
        }
        out.push((t, best_score));
    }
    out
}
