//! The pure core of experiments (issue 16): who sees which variant, what the results say, and how
//! bandits shift traffic. No HTTP, no storage, no clock and no I/O: callers pass in counts, sums,
//! timestamps and random number generators, so every function is deterministic given its inputs
//! and easy to test and simulate.
//!
//! It owns the *algorithms* of experimentation; the tables, routes, exposure events and the
//! attribution of outcomes belong to the service that wires this crate in.
//!
//! # Layout
//! - [`growthbook`]: assignment compatible with GrowthBook's SDKs: FNV-1a 32 hashing (versions 1
//!   and 2), bucket ranges, variation choice, namespaces, equal weights, and [`growthbook::assign`]
//!   for a basic experiment (key, seed, coverage, weights, namespace, hash version); checks of an
//!   experiment definition (splits that do not sum to 1, overlapping namespace ranges).
//! - [`special`]: the special functions the statistics need, written here and tested against
//!   reference values: log-gamma, the regularized incomplete gamma functions, the normal CDF and
//!   quantile, the chi-square survival function.
//! - [`stats`]: per-metric results for a control against a variant: relative uplift with a
//!   delta-method confidence interval (binomial and continuous metrics), CUPED variance
//!   reduction from pre-period data, Bayesian chance to win and expected loss (normal
//!   approximation), the sample-ratio-mismatch check, and always-valid (sequential) intervals
//!   that are safe to peek at.
//! - [`bandit`]: Thompson sampling over a placement's variants (Beta posteriors, a minimum
//!   sample per arm, probability-of-best weights refreshed at a bounded frequency), LinUCB over
//!   a context vector for ordering candidates, and off-policy evaluation (IPS and doubly robust)
//!   from logged propensities.
//!
//! - [`simulate`]: the seeded simulator of `dermis simulate` (synthetic customers with hidden true
//!   preferences; bandit regret, an A/B test with a planted uplift, observed against theoretical
//!   power, off-policy estimates against the truth), pure like the rest.
//! - [`plot`]: the simulator's SVG plots (plotters, SVG backend only) and `summary.json`; the one
//!   module that writes files.
//!
//! Each module uses only those listed above it.

#![warn(missing_docs)]

pub mod bandit;
pub mod growthbook;
pub mod plot;
pub mod simulate;
pub mod special;
pub mod stats;
