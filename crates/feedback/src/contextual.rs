//! The contextual bandit an experiment's variant may use to order the top of a recommendation
//! list: `{"contextual": {"top": 3, "pool": 6, "alpha": 1.0}}` in the variant's config puts in
//! the list's first `top` positions the products LinUCB ([`dermis_experiments::bandit::linucb`])
//! scores best among the first `pool` (default `2 × top`) of the list the engine made, which is
//! already safe: the bandit only reorders what the safety layer let through.
//!
//! # Context and arms
//! The context is a vector of [`DIMENSION`] features: an intercept, the skin type (one-hot:
//! dry, oily, combination, normal, sensitive), the channel (web, app, pos, marketplace), the
//! time of day when the request gives it (am, pm) and the UV band when it gives a location (UV
//! index below 3, 3 to 6, 6 and above). An unknown value sets none of its features. Arms are
//! products (disjoint LinUCB, one ridge regression per product): simple and exact for a
//! catalog of thousands, but a new product learns nothing from similar ones.
//!
//! # Rewards
//! Each placed product is one observation, recorded when the response is served with reward 0
//! (`A += x xᵀ`). A click, add-to-cart or purchase event whose `properties.recommendation_id`
//! names the response and whose product (`product_id`, or `products[].product_id`; product id
//! or external id) was placed by the bandit turns that same observation into reward 1
//! (`b += x`, [`LinUcb::reward`]), once per response and product, however many events follow:
//! the reward is "acted on", not a count. Events arriving after [`WINDOW`] (the response is
//! forgotten) leave it at 0.
//!
//! # Scope
//! The models live in memory on each node, one per experiment variant, and learn from the
//! responses this node served and the events this node ingested; they are not shared across
//! nodes nor kept across restarts. At most [`MAX_SERVED`] responses are remembered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use dermis_events::ingest::{IngestHook, Prepared};
use dermis_events::message::Message;
use dermis_experiments::bandit::linucb::LinUcb;
use serde_json::Value;

/// Context features: intercept, 5 skin types, 4 channels, am/pm, 3 UV bands.
pub const DIMENSION: usize = 15;
/// Most top positions a variant may order.
pub const MAX_TOP: usize = 20;
/// Most candidates a variant may choose among.
pub const MAX_POOL: usize = 60;
/// How long a served response waits for its rewards.
pub const WINDOW: Duration = Duration::from_secs(3600);
/// Most served responses remembered.
pub const MAX_SERVED: u64 = 50_000;

const SKIN_TYPES: [&str; 5] = ["dry", "oily", "combination", "normal", "sensitive"];
const CHANNELS: [&str; 4] = ["web", "app", "pos", "marketplace"];

/// A variant's `contextual` configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContextualConfig {
    /// Positions the bandit fills, from the first.
    pub top: usize,
    /// Candidates it chooses among: the first `pool` of the list.
    pub pool: usize,
    /// Exploration weight (0 is greedy).
    pub alpha: f64,
}

impl ContextualConfig {
    /// The `contextual` of a variant's config (`None` without one); errors name the field under
    /// the config.
    pub fn from_config(config: &Value) -> Result<Option<Self>, Vec<(String, String)>> {
        let Some(c) = config.get("contextual") else { return Ok(None) };
        let Some(obj) = c.as_object() else {
            return Err(vec![("contextual".into(), "an object: {top, pool, alpha}".into())]);
        };
        let mut errors = Vec::new();
        for key in obj.keys().filter(|k| !["top", "pool", "alpha"].contains(&k.as_str())) {
            errors.push((format!("contextual.{key}"), "unknown field: use top, pool, alpha".to_owned()));
        }
        let top = match obj.get("top").map(Value::as_u64) {
            None => 3,
            Some(Some(t)) if (1..=MAX_TOP as u64).contains(&t) => t as usize,
            Some(_) => {
                errors.push(("contextual.top".into(), format!("a whole number from 1 to {MAX_TOP}")));
                3
            }
        };
        let pool = match obj.get("pool").map(Value::as_u64) {
            None => (2 * top).min(MAX_POOL),
            Some(Some(p)) if (top as u64..=MAX_POOL as u64).contains(&p) => p as usize,
            Some(_) => {
                errors.push(("contextual.pool".into(), format!("a whole number from top to {MAX_POOL}")));
                top
            }
        };
        let alpha = match obj.get("alpha").map(Value::as_f64) {
            None => 1.0,
            Some(Some(a)) if (0.0..=10.0).contains(&a) => a,
            Some(_) => {
                errors.push(("contextual.alpha".into(), "a number from 0 to 10".into()));
                1.0
            }
        };
        if errors.is_empty() { Ok(Some(Self { top, pool, alpha })) } else { Err(errors) }
    }
}

/// What a request says about its visitor and moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Features<'a> {
    /// Skin type.
    pub skin_type: Option<&'a str>,
    /// Channel (`marketplace:NAME` counts as `marketplace`).
    pub channel: Option<&'a str>,
    /// `Some(false)` morning, `Some(true)` evening.
    pub pm: Option<bool>,
    /// UV index.
    pub uv_index: Option<f64>,
}

impl Features<'_> {
    /// The context vector (see the module docs).
    pub fn encode(&self) -> Vec<f64> {
        let mut x = vec![0.0; DIMENSION];
        x[0] = 1.0;
        if let Some(i) = self.skin_type.and_then(|s| SKIN_TYPES.iter().position(|t| t.eq_ignore_ascii_case(s.trim()))) {
            x[1 + i] = 1.0;
        }
        let channel = self.channel.map(|c| c.split(':').next().unwrap_or("").trim().to_ascii_lowercase());
        if let Some(i) = channel.and_then(|c| CHANNELS.iter().position(|t| *t == c)) {
            x[6 + i] = 1.0;
        }
        match self.pm {
            Some(false) => x[10] = 1.0,
            Some(true) => x[11] = 1.0,
            None => {}
        }
        match self.uv_index.filter(|u| u.is_finite()) {
            Some(u) if u < 3.0 => x[12] = 1.0,
            Some(u) if u < 6.0 => x[13] = 1.0,
            Some(_) => x[14] = 1.0,
            None => {}
        }
        x
    }
}

/// One variant's model.
#[derive(Debug)]
struct Model {
    config: ContextualConfig,
    bandit: Mutex<LinUcb<String>>,
}

/// A served response, waiting for its rewards.
#[derive(Debug)]
struct Served {
    model: Arc<Model>,
    context: Vec<f64>,
    /// What the bandit placed: product id and external id.
    placed: Vec<(String, Option<String>)>,
    rewarded: Mutex<Vec<bool>>,
}

/// Models by (experiment, variant).
type Models = HashMap<(String, String), Arc<Model>>;

/// The contextual bandits of this node: one model per experiment variant, and the responses
/// served in the last [`WINDOW`]. Cheap to clone.
#[derive(Clone)]
pub struct Contextual {
    models: Arc<Mutex<Models>>,
    served: moka::sync::Cache<String, Arc<Served>>,
}

impl std::fmt::Debug for Contextual {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contextual").field("served", &self.served.entry_count()).finish_non_exhaustive()
    }
}

impl Default for Contextual {
    fn default() -> Self {
        Self::new()
    }
}

impl Contextual {
    /// No models yet.
    pub fn new() -> Self {
        Self {
            models: Arc::default(),
            served: moka::sync::Cache::builder().max_capacity(MAX_SERVED).time_to_live(WINDOW).build(),
        }
    }

    /// The bandit of `experiment`'s `variant` (made on first use; a changed configuration starts
    /// a new one).
    pub fn variant(&self, experiment: &str, variant: &str, config: ContextualConfig) -> VariantBandit {
        let mut models = self.models.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (experiment.to_owned(), variant.to_owned());
        let model = match models.get(&key) {
            Some(m) if m.config == config => m.clone(),
            _ => {
                let bandit = LinUcb::new(DIMENSION, config.alpha, 1.0).unwrap_or_else(|_| {
                    // The configuration was checked; an out-of-range alpha falls back to 1.
                    LinUcb::new(DIMENSION, 1.0, 1.0).expect("a valid LinUCB")
                });
                let m = Arc::new(Model { config, bandit: Mutex::new(bandit) });
                models.insert(key, m.clone());
                m
            }
        };
        VariantBandit { contextual: self.clone(), model }
    }

    /// Reward 1 for `product` in the response `recommendation_id`, if the bandit placed it there
    /// and it was not rewarded yet; whether it counted.
    pub fn reward(&self, recommendation_id: &str, product: &str) -> bool {
        let Some(served) = self.served.get(recommendation_id) else { return false };
        let Some(i) = served.placed.iter().position(|(id, ext)| id == product || ext.as_deref() == Some(product))
        else {
            return false;
        };
        {
            let mut rewarded = served.rewarded.lock().unwrap_or_else(PoisonError::into_inner);
            if rewarded[i] {
                return false;
            }
            rewarded[i] = true;
        }
        let mut bandit = served.model.bandit.lock().unwrap_or_else(PoisonError::into_inner);
        bandit.reward(served.placed[i].0.clone(), &served.context, 1.0).is_ok()
    }

    /// The ingestion hook that turns attributed clicks, adds and purchases into rewards.
    pub fn hook(&self) -> Arc<dyn IngestHook> {
        Arc::new(RewardHook(self.clone()))
    }
}

/// One variant's bandit.
#[derive(Debug, Clone)]
pub struct VariantBandit {
    contextual: Contextual,
    model: Arc<Model>,
}

impl VariantBandit {
    /// Its configuration.
    pub fn config(&self) -> ContextualConfig {
        self.model.config
    }

    /// Indices into `candidates` (product ids in ranked order) for the top positions, best
    /// first: the `top` best by upper confidence bound among the first `pool`; ties keep the
    /// ranked order.
    pub fn order(&self, features: &Features<'_>, candidates: &[&str]) -> Vec<usize> {
        let c = self.model.config;
        let pool = c.pool.min(candidates.len());
        let x = features.encode();
        let bandit = self.model.bandit.lock().unwrap_or_else(PoisonError::into_inner);
        let mut scored: Vec<(usize, f64)> = candidates[..pool]
            .iter()
            .enumerate()
            .map(|(i, id)| (i, bandit.score(&(*id).to_owned(), &x).unwrap_or(f64::NEG_INFINITY)))
            .collect();
        drop(bandit);
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.into_iter().take(c.top).map(|(i, _)| i).collect()
    }

    /// The response `recommendation_id` showed `shown` (product id, external id), its first
    /// `top` placed by [`Self::order`] in `features`: each is counted at reward 0 now and
    /// remembered for [`WINDOW`] for its reward.
    pub fn served(&self, recommendation_id: &str, features: &Features<'_>, shown: &[(&str, Option<&str>)]) {
        let c = self.model.config;
        let placed: Vec<(String, Option<String>)> =
            shown.iter().take(c.top.min(c.pool)).map(|(id, ext)| ((*id).to_owned(), ext.map(str::to_owned))).collect();
        if placed.is_empty() {
            return;
        }
        let context = features.encode();
        {
            let mut bandit = self.model.bandit.lock().unwrap_or_else(PoisonError::into_inner);
            for (id, _) in &placed {
                let _ = bandit.update(id.clone(), &context, 0.0);
            }
        }
        let rewarded = Mutex::new(vec![false; placed.len()]);
        self.contextual.served.insert(
            recommendation_id.to_owned(),
            Arc::new(Served { model: self.model.clone(), context, placed, rewarded }),
        );
    }
}

/// The (recommendation id, product) pairs a click, add-to-cart or purchase names.
fn rewards(m: &Message) -> Vec<(String, String)> {
    let Some(event) = m.event.as_deref() else { return Vec::new() };
    let props = m.payload.get("properties").unwrap_or(&Value::Null);
    let text = |v: &Value, k: &str| -> Option<String> {
        let x = v.get(k)?;
        let s = x.as_str().map(str::to_owned).or_else(|| x.as_number().map(|n| n.to_string()))?;
        let s = s.trim();
        (!s.is_empty() && s.len() <= 512).then(|| s.to_owned())
    };
    let Some(rec) = text(props, "recommendation_id") else { return Vec::new() };
    match event.to_ascii_lowercase().replace('_', " ").as_str() {
        "product clicked" | "product added" => text(props, "product_id").map(|p| vec![(rec, p)]).unwrap_or_default(),
        "order completed" => {
            let mut products: Vec<String> = props
                .get("products")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|p| text(p, "product_id")).collect())
                .unwrap_or_default();
            if products.is_empty() {
                products.extend(text(props, "product_id"));
            }
            products.into_iter().map(|p| (rec.clone(), p)).collect()
        }
        _ => Vec::new(),
    }
}

struct RewardHook(Contextual);

struct Pending {
    contextual: Contextual,
    rewards: Vec<(String, String)>,
}

#[async_trait]
impl IngestHook for RewardHook {
    async fn prepare(&self, _write_key_id: &str, messages: &[&Message]) -> Box<dyn Prepared> {
        let rewards = if self.0.served.entry_count() == 0 && self.0.models.lock().map_or(true, |m| m.is_empty()) {
            Vec::new()
        } else {
            messages.iter().flat_map(|m| rewards(m)).collect()
        };
        Box::new(Pending { contextual: self.0.clone(), rewards })
    }

    /// Nothing personal is kept: responses are remembered by their random id with the
    /// context's features only.
    async fn erased(&self, _pseudonyms: &[String], _erased_at: i64) {}
}

#[async_trait]
impl Prepared for Pending {
    async fn stored(self: Box<Self>) {
        for (rec, product) in &self.rewards {
            self.contextual.reward(rec, product);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn configurations_are_checked() {
        assert_eq!(ContextualConfig::from_config(&json!({"blend": {}})).unwrap(), None);
        let c = ContextualConfig::from_config(&json!({"contextual": {"top": 2}})).unwrap().unwrap();
        assert_eq!((c.top, c.pool, c.alpha), (2, 4, 1.0));
        let e = ContextualConfig::from_config(&json!({"contextual": {"top": 0, "alpha": -1, "seed": 3}})).unwrap_err();
        let fields: Vec<&str> = e.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, vec!["contextual.seed", "contextual.top", "contextual.alpha"]);
        let e = ContextualConfig::from_config(&json!({"contextual": {"top": 4, "pool": 2}})).unwrap_err();
        assert_eq!(e[0].0, "contextual.pool");
    }

    #[test]
    fn features_are_one_hot() {
        let x = Features {
            skin_type: Some("Dry"),
            channel: Some("marketplace:zalando"),
            pm: Some(true),
            uv_index: Some(7.0),
        }
        .encode();
        let on: Vec<usize> = x.iter().enumerate().filter(|(_, v)| **v == 1.0).map(|(i, _)| i).collect();
        assert_eq!(on, vec![0, 1, 9, 11, 14]);
        assert_eq!(Features::default().encode().iter().sum::<f64>(), 1.0, "only the intercept");
    }

    #[test]
    fn the_clicked_product_rises_for_its_skin_type_only_within_the_pool() {
        let contextual = Contextual::new();
        let config = ContextualConfig { top: 2, pool: 4, alpha: 1.0 };
        let bandit = contextual.variant("exp", "v", config);
        let candidates = ["a", "b", "c", "d", "e"];
        let dry = Features { skin_type: Some("dry"), ..Features::default() };
        // The untried come first, in ranked order.
        assert_eq!(bandit.order(&dry, &candidates), vec![0, 1]);
        for round in 0..12 {
            let order = bandit.order(&dry, &candidates);
            assert!(order.iter().all(|&i| i < 4), "only the pool's first 4 are chosen: {order:?}");
            let shown: Vec<(&str, Option<&str>)> = order.iter().map(|&i| (candidates[i], None)).collect();
            let rec = format!("rec_{round}");
            bandit.served(&rec, &dry, &shown);
            if shown.iter().any(|(id, _)| *id == "c") {
                assert!(contextual.reward(&rec, "c"));
                assert!(!contextual.reward(&rec, "c"), "once per response and product");
            }
            assert!(!contextual.reward(&rec, "e"), "not placed: no reward");
        }
        assert_eq!(bandit.order(&dry, &candidates)[0], 2, "the clicked product leads for dry skin");
        // The same model in another variant learns nothing.
        let other = contextual.variant("exp", "w", config);
        assert_eq!(other.order(&dry, &candidates), vec![0, 1]);
    }

    #[test]
    fn attributed_events_name_their_products() {
        let m = |event: &str, props: Value| Message {
            message_id: "m1".into(),
            kind: dermis_events::message::Kind::Track,
            event: Some(event.into()),
            user_id: Some("u".into()),
            anonymous_id: None,
            timestamp_ms: 0,
            received_at_ms: 0,
            payload: json!({ "properties": props }),
        };
        assert_eq!(
            rewards(&m("Product Clicked", json!({"product_id": "p1", "recommendation_id": "rec_1"}))),
            vec![("rec_1".to_owned(), "p1".to_owned())]
        );
        assert!(rewards(&m("Product Clicked", json!({"product_id": "p1"}))).is_empty());
        assert!(rewards(&m("Product Viewed", json!({"product_id": "p1", "recommendation_id": "r"}))).is_empty());
        let order = m(
            "order_completed",
            json!({"recommendation_id": "r", "products": [{"product_id": "a"}, {"product_id": "b"}]}),
        );
        assert_eq!(rewards(&order).len(), 2);
    }
}
