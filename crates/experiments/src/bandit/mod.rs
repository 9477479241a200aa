//! Bandits: traffic that shifts toward what works while an experiment runs, and the means to
//! judge a new policy on logged traffic before it goes live.
//!
//! - [`sampling`]: standard normal, Gamma (Marsaglia–Tsang) and Beta draws on any
//!   [`rand::Rng`], so a seeded generator makes every run reproducible.
//! - [`thompson`]: Thompson sampling over a placement's variants with Beta posteriors on a
//!   binary reward, a minimum number of trials per arm (round robin until every arm has it),
//!   and the probability that each arm is best as traffic weights, recomputed at most once per
//!   interval ([`thompson::BanditWeights`]).
//! - [`linucb`]: disjoint LinUCB (Li et al. 2010) over a context vector (skin type, channel,
//!   time of day, weather ... encoded by the caller, at most [`linucb::MAX_DIMENSION`] features),
//!   ordering candidate items; `A⁻¹` kept up to date by Sherman–Morrison.
//! - [`off_policy`]: inverse-propensity and doubly robust estimates of a target policy's value
//!   from logged (context, action, propensity, reward) records.
//!
//! Bandits only choose among the candidates they are given: the caller passes what the safety
//! stage let through, so exploration can never add a product the safety layer removed.

pub mod linucb;
pub mod off_policy;
pub mod sampling;
pub mod thompson;

/// Why a bandit operation was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BanditError {
    /// An arm index beyond the arms configured.
    #[error("arm {arm} does not exist ({arms} arms)")]
    UnknownArm {
        /// The arm asked for.
        arm: usize,
        /// The number of arms.
        arms: usize,
    },
    /// A context vector of the wrong length.
    #[error("context has {got} features, the model {expected}")]
    Dimension {
        /// The model's dimension.
        expected: usize,
        /// The context's length.
        got: usize,
    },
    /// The dimension is 0 or above [`linucb::MAX_DIMENSION`].
    #[error("dimension {0} is outside 1..={max}", max = linucb::MAX_DIMENSION)]
    DimensionRange(usize),
    /// A parameter outside its range (named in the message).
    #[error("invalid parameter: {0}")]
    Parameter(&'static str),
    /// A NaN or infinite context value or reward.
    #[error("values must be finite")]
    NotFinite,
    /// A logged propensity outside (0, 1].
    #[error("logged record {index} has propensity {propensity}, outside (0, 1]")]
    Propensity {
        /// The record's position in the log.
        index: usize,
        /// Its propensity.
        propensity: f64,
    },
    /// Off-policy evaluation needs at least two records.
    #[error("at least 2 logged records are needed, got {0}")]
    TooFewRecords(usize),
}
