//! Serving: the recommendation pipeline a node runs per request, from memory only.
//!
//! candidates → **safety** → scoring → re-ranking → explanation:
//! - candidates: the collaborative model over the customer's *live* history (so an event changes
//!   the next response before any retrain), content (skin profile and concerns against actives
//!   and attributes: a new customer's quiz answers are enough), the session (item-kNN
//!   neighbours of what was viewed in the last minutes), popularity, replenishment (bought long
//!   enough ago to be running out);
//! - safety: [`crate::safety`] judges every candidate; what it excludes is gone for good (the
//!   later stages hold a [`crate::safety::SafeCandidates`], which nothing can add to);
//! - scoring: a blend of the sources ([`engine::Blend`]) with the request's context (time of
//!   day, weather);
//! - re-ranking: MMR across brands and routine steps, business rules (boost, bury, pin), the
//!   request's filter expression, ids to exclude, the feed's cursor ([`cursor`]);
//! - explanation: plain words with the data behind them, per item.
//!
//! # Layout
//! - [`products`]: the catalog in memory ([`products::CatalogView`], a projection of `catalog.`).
//! - [`live`]: what customers did ([`live::LiveInteractions`], an ingestion hook and a projection
//!   of `events.ingested`).
//! - [`engine`]: the pipeline, the explanations and the background training.
//! - [`similar`]: similar products, dupes, bought together.
//! - [`routine`]: the AM/PM routine builder.
//! - [`cursor`]: what an endless feed already showed.

pub mod cursor;
pub mod engine;
pub mod filter;
pub mod live;
pub mod products;
pub mod rerank;
pub mod routine;
pub mod similar;
pub mod variant;

pub use engine::{Context, Engine, EngineConfig, Recommendations, Request, Subject, TimeOfDay};
