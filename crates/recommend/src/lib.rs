//! The recommendation engine (issue 14): interactions in memory, the collaborative and content
//! models and their evaluation (pure: no database, no clock), the safety stage, and serving —
//! the pipeline each node runs from memory, its two projections of the event stream, and its
//! routes. It owns no tables: what it serves is rebuilt from the catalog and the event log.
//!
//! A node trains a model in the background and swaps it in whole (an `Arc`), so a request holds
//! one consistent model while the next is trained; models are `Send + Sync` and immutable once
//! fitted.
//!
//! # Layout
//! - [`data`]: external ids to dense indices ([`IdMap`]), the interactions by user and by item
//!   ([`Interactions`]), signal weights by kind and rating ([`SignalWeights`]), reading
//!   `author_id,product_id,rating[,submission_time]` `.csv`/`.csv.gz` files, the held-out split
//!   used for tuning.
//! - [`model`]: the [`Model`] trait (score a history, top k without the customer's own items),
//!   [`Fit`] (settings that train a model).
//! - the models: [`popularity`], [`knn`] (item-kNN, cosine), [`ease`] (closed form with `faer`, λ
//!   tuned on held-out training data), [`als`] (implicit ALS, conjugate gradient; fold-in:
//!   `YᵀY + λI` computed at fit time, one small Cholesky solve per customer), [`hybrid`] (a learned linear re-ranking of the others' candidates
//!   over their standardized scores and ranks, liked- and disliked-history EASE scores and item
//!   features, fitted with a listwise softmax loss on held-out training data).
//! - [`settings`]: [`ModelKind`] and [`Settings`]: the models by name, for the command line and
//!   the server.
//! - [`eval`]: the protocol and metrics (NDCG, Recall, HitRate at k, coverage, and a
//!   safety-violation count fed by an optional check: `n/a` without one).
//! - [`batch`]: recommendations for a list of customers as `user_id,rank,product_id` CSV.
//! - [`safety`]: the hard first stage of serving: rules as data (`rules/safety.v1.json`) that
//!   exclude what conflicts with a customer's allergies, pregnancy, skin, reactions and
//!   contraindications, judged on the knowledge base and on the raw label; `SafeCandidates`.
//! - [`content`]: content scoring from skin type and concerns (a new customer's quiz answers),
//!   segment popularity, the cold-start evaluation.
//! - [`expr`]: filter expressions over product attributes, business rules (boost, bury, pin).
//! - [`weather`]: UV, humidity, season by location (offline, Open-Meteo).
//! - [`serving`]: the catalog view, live interactions, the pipeline, related products, routines.
//! - [`routes`]: the HTTP API.
//!
//! Each module uses only those listed above it (`ease` and `hybrid` also use `eval` to tune).

pub mod als;
pub mod batch;
pub mod content;
pub mod data;
pub mod ease;
pub mod eval;
pub mod expr;
pub mod hybrid;
pub mod knn;
pub mod model;
pub mod popularity;
pub mod routes;
pub mod safety;
pub mod serving;
pub mod settings;
pub mod weather;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

pub use data::{History, IdMap, Interactions, InteractionsBuilder, RatingRow, Signal, SignalWeights};
pub use eval::{Metrics, SafetyCheck, SafetyCount, TestSet, evaluate};
pub use model::{Fit, Model, Scored};
pub use settings::{ModelKind, Settings};

/// What can go wrong reading data or fitting a model.
#[derive(Debug, thiserror::Error)]
pub enum RecommendError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    Csv { path: PathBuf, source: csv::Error },
    #[error("{}: no {column:?} column", path.display())]
    MissingColumn { path: PathBuf, column: &'static str },
    #[error("{}, line {line}: {reason}", path.display())]
    BadRow { path: PathBuf, line: u64, reason: String },
    #[error("no interactions to learn from")]
    NoInteractions,
    #[error("not enough data: {0}")]
    NotEnoughData(&'static str),
    #[error("unknown model {name:?}; expected one of {known}")]
    UnknownModel { name: String, known: String },
    #[error("{option}: {reason}")]
    BadOption { option: &'static str, reason: String },
    #[error("numeric failure: {0}")]
    Numeric(String),
}

/// A fitted model with the interactions it serves from (ids and histories), and popularity for
/// customers with nothing to personalize from.
pub struct Trained {
    pub interactions: Interactions,
    pub model: Box<dyn Model>,
    pub popularity: popularity::Popularity,
}

impl Trained {
    /// Wraps a fitted model with its interactions (popularity is counted from them).
    pub fn new(interactions: Interactions, model: Box<dyn Model>) -> Result<Self, RecommendError> {
        let popularity = popularity::PopularityConfig.fit(&interactions)?;
        Ok(Trained { interactions, model, popularity })
    }

    /// The top `k` product ids for a customer (external id), never one they interacted with. A
    /// customer without a positive signal (unknown, or only negative ones) gets the most popular
    /// products.
    pub fn recommend(&self, user: &str, k: usize) -> Vec<(&str, f32)> {
        let history = self.interactions.users().get(user).map_or(History::EMPTY, |u| self.interactions.history(u));
        let model: &dyn Model =
            if history.weights.iter().any(|&w| w > 0.0) { self.model.as_ref() } else { &self.popularity };
        model.recommend(history, k, None).into_iter().map(|s| (self.interactions.items().id(s.item), s.score)).collect()
    }
}

/// The model a server answers with: readers take an `Arc` of the current one (cheap, never
/// blocked by training), a retrain swaps in the next whole.
pub struct ModelHandle {
    current: RwLock<Arc<Trained>>,
}

impl ModelHandle {
    pub fn new(trained: Trained) -> Self {
        ModelHandle { current: RwLock::new(Arc::new(trained)) }
    }

    /// The current model.
    pub fn current(&self) -> Arc<Trained> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Replaces the model; returns the previous one (requests still holding it finish with it).
    pub fn swap(&self, trained: Trained) -> Arc<Trained> {
        let mut guard = self.current.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *guard, Arc::new(trained))
    }
}
