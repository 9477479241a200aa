//! The feedback loop: experiments a brand runs on its placements, who sees which variant, and what
//! the variants did. It owns the `feedback_*` tables and `/v1/experiments...`; the algorithms
//! (GrowthBook-compatible hashing, statistics, bandits) are the pure crate `dermis-experiments`.
//!
//! - [`model`]: an experiment's definition (variants with their configuration, split, coverage,
//!   namespace, targeting, fixed or bandit allocation), parsed and checked.
//! - [`store`]: its SQL.
//! - [`service`]: [`Experiments`]: define, start, stop; assign a visitor (sticky, across a later
//!   login) and log the exposure as a Segment `Experiment Viewed` event through ingestion;
//!   results per metric.
//! - [`hook`]: the ingestion hook that turns `Experiment Viewed` events into units and later
//!   events of exposed visitors into outcomes (click-through, add-to-cart, conversion, revenue,
//!   returns, adverse reactions), each message counted once.
//! - [`pre_period`]: a unit's pre-period (what the visitor did in the 28 days before their first
//!   exposure, read from the event log), the covariates of CUPED in the results.
//! - [`off_policy`]: off-policy evaluation of a target policy (a variant, or a probability per
//!   variant) on the logged units and their propensities: IPS and doubly robust estimates.
//! - [`contextual`]: the contextual bandit (LinUCB over skin type, channel, time of day and UV)
//!   a variant may use to order the top of a recommendation list, learning from the clicks,
//!   adds and purchases that name the response; in memory, per node.
//! - [`variants`]: checks of a variant's configuration that other domains own (its `rules`).
//! - [`routes`]: the HTTP routes.
//! - [`quizzes`]: quizzes, polls and surveys, their responses as events, statistics, and the
//!   embeddable widget.
//!
//! Visitors are kept under keyed pseudonyms (the events domain's), never under their ids; an
//! erasure in the event log removes the erased customer's units and assignments here too.

pub mod contextual;
pub mod hook;
pub mod model;
pub mod off_policy;
pub mod pre_period;
pub mod quizzes;
pub mod routes;
pub mod service;
pub mod store;
pub mod variants;

pub use model::{Allocation, Definition, Status, Targeting, VariantDef};
pub use service::{AssignRequest, Assignment, Experiments, FeedbackError, Results};

/// Migrations of the feedback tables.
pub const MIGRATIONS: &[dermis_store::Migration] = &[
    dermis_store::Migration {
        domain: "feedback",
        version: 1,
        name: "experiments, sticky assignments, units and their outcomes",
        sqlite: include_str!("../migrations/0001_feedback.sql"),
        postgres: include_str!("../migrations/0001_feedback.sql"),
    },
    dermis_store::Migration {
        domain: "feedback",
        version: 2,
        name: "quizzes, polls and surveys, their responses and views",
        sqlite: include_str!("../migrations/0002_quizzes.sql"),
        postgres: include_str!("../migrations/0002_quizzes.sql"),
    },
    dermis_store::Migration {
        domain: "feedback",
        version: 3,
        name: "propensities of assignments, units' pre-period covariates (CUPED)",
        sqlite: include_str!("../migrations/0003_cuped_propensities.sql"),
        postgres: include_str!("../migrations/0003_cuped_propensities.sql"),
    },
];
