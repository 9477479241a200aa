//! The seeded simulator behind `dermis simulate`: synthetic customers with hidden true
//! preferences, on which the bandits, an A/B test and off-policy evaluation are run against a
//! known truth. Pure: no I/O and no clock; the same [`SimConfig`] always gives the same
//! [`Simulation`].
//!
//! # The world
//! A visitor has a context: a skin type (dry, oily, combination, sensitive), a channel (web,
//! app, store) and a time of day (morning, evening), drawn independently with fixed shares. A
//! placement shows one of five products ([`ARMS`]), and the visitor converts with a true
//! probability that is additive in the context (see [`true_rate`]): each skin type has its own
//! best product, a vitamin C serum sells in the morning and a retinol cream in the evening, and
//! the store converts better for every product. Over the mix of visitors, one product (the
//! hydrating serum) is best on average: that is the arm a non-contextual bandit should settle on,
//! while a contextual one can do better by choosing per visitor.
//!
//! # What is run
//! - Bandits ([`SimConfig::steps`] visitors): Thompson sampling over the five arms (no context)
//!   and LinUCB over an encoding of the context ([`encode`]) on the same visitors and the same
//!   reward draws, and uniform random ([`uniform_log`]) on visitors of its own, since its log is
//!   the one off-policy evaluation must judge the others on independently. Regret is the
//!   expected conversions lost against the oracle that knows every visitor's true rates
//!   (`max_a p(a, x) - p(chosen, x)`, summed), so it is not blurred by reward noise; the regret
//!   against the best *fixed* arm is also reported.
//! - An A/B test (50/50, a control at [`SimConfig::ab_base_rate`] and a variant with the planted
//!   [`SimConfig::ab_relative_uplift`]) over [`SimConfig::ab_exposures`] exposures, with the
//!   relative uplift, its fixed-horizon interval ([`stats::relative_uplift`]) and its always-valid
//!   interval ([`stats::sequential_interval`], tuned to the planned exposures) as they accumulate.
//! - Power: the same A/B test replicated [`SimConfig::power_replicates`] times at
//!   [`SimConfig::power_per_arm`] units per arm; the share whose interval excludes 0 against the
//!   normal-approximation power of the same delta-method test; the same for A/A replicates (no
//!   uplift), whose share is the false-positive rate.
//! - Off-policy evaluation: the value of Thompson's final policy (it plays each arm with the
//!   posterior probability that the arm is best) and of LinUCB's final greedy policy, estimated
//!   by IPS and doubly robust from the log of the uniform-random policy, against their true
//!   values ([`policy_value`]). The doubly robust reward model ([`RewardModel`]) is fitted on the
//!   first [`OPE_MODEL_SHARE`] of the log; both estimators use the rest ([`estimate_policy`]).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::bandit::linucb::LinUcb;
use crate::bandit::off_policy::{self, LoggedDecision, OffPolicyEstimate};
use crate::bandit::thompson::ThompsonSampling;
use crate::special::{normal_cdf, normal_quantile};
use crate::stats::{self, SampleStats, SequentialConfig};

/// The skin types, in the order of [`Context::skin`].
pub const SKIN_TYPES: [&str; 4] = ["dry", "oily", "combination", "sensitive"];
/// The share of visitors of each skin type.
pub const SKIN_SHARES: [f64; 4] = [0.30, 0.25, 0.30, 0.15];
/// The channels, in the order of [`Context::channel`].
pub const CHANNELS: [&str; 3] = ["web", "app", "store"];
/// The share of visitors in each channel.
pub const CHANNEL_SHARES: [f64; 3] = [0.50, 0.35, 0.15];
/// The times of day, in the order of [`Context::time`].
pub const TIMES: [&str; 2] = ["morning", "evening"];
/// The share of visitors at each time of day.
pub const TIME_SHARES: [f64; 2] = [0.45, 0.55];
/// The products the placement chooses among (the arms).
pub const ARMS: [&str; 5] = ["hydrating serum", "oil-control gel", "barrier cream", "vitamin C serum", "retinol cream"];
/// The number of arms.
pub const ARM_COUNT: usize = ARMS.len();
/// The length of the context vector LinUCB sees ([`encode`]).
pub const CONTEXT_DIMENSION: usize = 7;
/// The share of the uniform-random log used to fit the doubly robust reward model; off-policy
/// estimates use the rest.
pub const OPE_MODEL_SHARE: f64 = 0.2;

/// Each arm's conversion rate for a dry-skinned web visitor in the morning.
const ARM_BASE: [f64; ARM_COUNT] = [0.09, 0.06, 0.06, 0.07, 0.06];
/// What each skin type adds to each arm's rate (rows: arms; columns: skin types).
const SKIN_EFFECT: [[f64; 4]; ARM_COUNT] = [
    [0.06, -0.03, 0.02, 0.01],
    [-0.03, 0.08, 0.02, -0.03],
    [0.02, -0.02, -0.01, 0.09],
    [0.00, 0.00, 0.03, -0.03],
    [0.00, 0.01, 0.00, -0.03],
];
/// What each channel adds to every arm's rate.
const CHANNEL_EFFECT: [f64; 3] = [0.00, 0.01, 0.03];
/// What each time of day adds to each arm's rate (rows: arms).
const TIME_EFFECT: [[f64; 2]; ARM_COUNT] = [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.03, -0.02], [-0.02, 0.06]];

/// A visitor's context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Context {
    /// Index into [`SKIN_TYPES`].
    pub skin: usize,
    /// Index into [`CHANNELS`].
    pub channel: usize,
    /// Index into [`TIMES`].
    pub time: usize,
}

impl Context {
    /// Every context with its probability.
    pub fn all() -> Vec<(Context, f64)> {
        let mut out = Vec::with_capacity(SKIN_TYPES.len() * CHANNELS.len() * TIMES.len());
        for (skin, ps) in SKIN_SHARES.iter().enumerate() {
            for (channel, pc) in CHANNEL_SHARES.iter().enumerate() {
                for (time, pt) in TIME_SHARES.iter().enumerate() {
                    out.push((Context { skin, channel, time }, ps * pc * pt));
                }
            }
        }
        out
    }

    fn draw<R: Rng + ?Sized>(rng: &mut R) -> Self {
        Context {
            skin: draw_index(&SKIN_SHARES, rng),
            channel: draw_index(&CHANNEL_SHARES, rng),
            time: draw_index(&TIME_SHARES, rng),
        }
    }
}

fn draw_index<R: Rng + ?Sized>(shares: &[f64], rng: &mut R) -> usize {
    let u: f64 = rng.r#gen();
    let mut acc = 0.0;
    for (i, s) in shares.iter().enumerate() {
        acc += s;
        if u < acc {
            return i;
        }
    }
    shares.len() - 1
}

/// The hidden true conversion rate of `arm` for a visitor in `context`:
/// `base[arm] + skin[arm][skin] + channel[channel] + time[arm][time]`, between 1% and 18%.
pub fn true_rate(arm: usize, context: &Context) -> f64 {
    ARM_BASE[arm] + SKIN_EFFECT[arm][context.skin] + CHANNEL_EFFECT[context.channel] + TIME_EFFECT[arm][context.time]
}

/// The arm with the highest true rate in `context` (what the oracle plays).
pub fn oracle_arm(context: &Context) -> usize {
    argmax((0..ARM_COUNT).map(|a| true_rate(a, context)))
}

/// Each arm's true rate averaged over the visitor mix.
pub fn mean_rates() -> [f64; ARM_COUNT] {
    let mut m = [0.0; ARM_COUNT];
    for (c, p) in Context::all() {
        for (a, slot) in m.iter_mut().enumerate() {
            *slot += p * true_rate(a, &c);
        }
    }
    m
}

/// The arm with the best average rate: the best a policy that ignores context can do.
pub fn best_fixed_arm() -> usize {
    argmax(mean_rates().into_iter())
}

/// The expected conversion rate of the oracle that plays each visitor's best arm.
pub fn oracle_rate() -> f64 {
    Context::all().into_iter().map(|(c, p)| p * true_rate(oracle_arm(&c), &c)).sum()
}

/// The context as LinUCB sees it: an intercept, then one-hot skin type, channel and time of day
/// without their first level (dry, web, morning), `CONTEXT_DIMENSION` values.
pub fn encode(context: &Context) -> [f64; CONTEXT_DIMENSION] {
    let mut x = [0.0; CONTEXT_DIMENSION];
    x[0] = 1.0;
    if context.skin > 0 {
        x[context.skin] = 1.0;
    }
    if context.channel > 0 {
        x[3 + context.channel] = 1.0;
    }
    if context.time > 0 {
        x[6] = 1.0;
    }
    x
}

fn argmax(values: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

/// What to simulate. [`SimConfig::new`] gives the defaults of `dermis simulate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    /// Visitors shown to each bandit (at least 100).
    pub steps: usize,
    /// The seed of every random draw.
    pub seed: u64,
    /// Thompson sampling's minimum trials per arm before it exploits.
    pub thompson_min_trials: u64,
    /// LinUCB's exploration weight α.
    pub linucb_alpha: f64,
    /// The A/B test's control conversion rate.
    pub ab_base_rate: f64,
    /// The planted relative uplift of the A/B variant (0.10: 10% above the control).
    pub ab_relative_uplift: f64,
    /// Exposures (both arms) of the A/B test whose estimate is followed over time.
    pub ab_exposures: u64,
    /// How many times the A/B test is replicated for the power estimate.
    pub power_replicates: usize,
    /// Units per arm in each power replicate.
    pub power_per_arm: u64,
    /// The confidence level of every interval.
    pub confidence: f64,
}

impl SimConfig {
    /// The defaults with `steps` bandit visitors and `seed`: Thompson with 20 trials per arm
    /// first, LinUCB with α = 0.5, an A/B test of a 5% base rate with +10% planted over 200,000
    /// exposures, and 1,000 power replicates of 31,000 units per arm (about 76% power by the
    /// normal approximation).
    pub fn new(steps: usize, seed: u64) -> Self {
        Self {
            steps,
            seed,
            thompson_min_trials: 20,
            linucb_alpha: 0.5,
            ab_base_rate: 0.05,
            ab_relative_uplift: 0.10,
            ab_exposures: 200_000,
            power_replicates: 1_000,
            power_per_arm: 31_000,
            confidence: 0.95,
        }
    }

    fn check(&self) -> Result<(), SimError> {
        let variant = self.ab_base_rate * (1.0 + self.ab_relative_uplift);
        if self.steps < 100 {
            return Err(SimError::Config("steps must be at least 100"));
        }
        if !(self.ab_base_rate > 0.0 && variant > 0.0 && self.ab_base_rate < 1.0 && variant < 1.0) {
            return Err(SimError::Config("the A/B control and variant rates must lie in (0, 1)"));
        }
        if self.ab_exposures < 1_000 {
            return Err(SimError::Config("the A/B test needs at least 1,000 exposures"));
        }
        if self.power_replicates == 0 || self.power_per_arm < 100 {
            return Err(SimError::Config("power needs at least 1 replicate of 100 units per arm"));
        }
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(SimError::Config("confidence must lie in (0, 1)"));
        }
        if !(self.linucb_alpha >= 0.0 && self.linucb_alpha.is_finite()) {
            return Err(SimError::Config("the LinUCB alpha must be finite and non-negative"));
        }
        Ok(())
    }
}

/// Why a simulation could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    /// A setting outside its range (named in the message).
    #[error("invalid simulation setting: {0}")]
    Config(&'static str),
    /// A bandit refused an input (a bug in the simulator if it happens).
    #[error(transparent)]
    Bandit(#[from] crate::bandit::BanditError),
}

/// Cumulative regret after each step, one entry per step, for each policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegretSeries {
    /// Thompson sampling (no context).
    pub thompson: Vec<f64>,
    /// LinUCB (with context).
    pub linucb: Vec<f64>,
    /// Uniform random.
    pub random: Vec<f64>,
}

/// Thompson's share of pulls per arm in one window of steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmShares {
    /// The last step of the window (1-based).
    pub step: usize,
    /// The share of the window's pulls that went to each arm (sums to 1).
    pub shares: Vec<f64>,
}

/// The A/B test's result after some exposures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AbPoint {
    /// Exposures so far, both arms.
    pub exposures: u64,
    /// The estimated relative uplift.
    pub relative: f64,
    /// Lower end of the fixed-horizon interval.
    pub ci_low: f64,
    /// Upper end of the fixed-horizon interval.
    pub ci_high: f64,
    /// Lower end of the always-valid interval.
    pub sequential_low: f64,
    /// Upper end of the always-valid interval.
    pub sequential_high: f64,
}

/// The final figures of the bandits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BanditSummary {
    /// Cumulative regret against the per-visitor oracle: Thompson.
    pub regret_thompson: f64,
    /// Cumulative regret against the per-visitor oracle: LinUCB.
    pub regret_linucb: f64,
    /// Cumulative regret against the per-visitor oracle: uniform random.
    pub regret_random: f64,
    /// Cumulative regret against always playing the best fixed arm: Thompson.
    pub fixed_regret_thompson: f64,
    /// Cumulative regret against always playing the best fixed arm: uniform random.
    pub fixed_regret_random: f64,
    /// The arm with the best average rate.
    pub best_arm: usize,
    /// Its name.
    pub best_arm_name: String,
    /// Each arm's true average rate.
    pub arm_mean_rates: Vec<f64>,
    /// The oracle's expected rate.
    pub oracle_rate: f64,
    /// The share of Thompson's pulls that went to the best arm over the last 10% of steps.
    pub thompson_best_arm_share_last_10pct: f64,
    /// The share of LinUCB's choices that were the visitor's best arm over the last 10% of steps.
    pub linucb_oracle_share_last_10pct: f64,
}

/// The A/B test's final figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbSummary {
    /// The control's true rate.
    pub base_rate: f64,
    /// The planted relative uplift.
    pub true_uplift: f64,
    /// Exposures, both arms.
    pub exposures: u64,
    /// The result after every exposure.
    pub last: AbPoint,
    /// The first checkpoint at which the always-valid interval excluded 0 (a decision that is
    /// valid however often the results were looked at).
    pub first_sequential_detection: Option<u64>,
    /// The first checkpoint at which the fixed-horizon interval excluded 0: looking at it that
    /// often is what inflates false positives, so it is reported only for comparison.
    pub first_fixed_detection: Option<u64>,
}

/// Observed against theoretical power.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PowerSummary {
    /// Replicates run.
    pub replicates: usize,
    /// Units per arm in each.
    pub per_arm: u64,
    /// The normal-approximation power of the two-sided delta-method test of the relative uplift.
    pub theoretical: f64,
    /// The share of replicates whose fixed interval excluded 0 (and on the right side).
    pub observed: f64,
    /// The share whose always-valid interval (tuned to the replicate's size) excluded 0.
    pub observed_sequential: f64,
    /// The share of A/A replicates (no uplift) whose fixed interval excluded 0.
    pub false_positive_rate: f64,
}

/// Off-policy estimates of one target policy against its true value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpeResult {
    /// The target policy's true expected reward.
    pub truth: f64,
    /// The inverse-propensity estimate.
    pub ips: OffPolicyEstimate,
    /// The doubly robust estimate.
    pub doubly_robust: OffPolicyEstimate,
}

/// Off-policy evaluation from the uniform-random log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpeSummary {
    /// The value of the uniform logging policy itself (for scale).
    pub logging_policy_value: f64,
    /// Thompson's final policy (each arm with its posterior probability of being best).
    pub thompson: OpeResult,
    /// LinUCB's final greedy policy (the arm with the highest predicted reward per context).
    pub linucb_greedy: OpeResult,
}

/// The summary numbers of a run (what `summary.json` holds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The settings.
    pub config: SimConfig,
    /// Bandits.
    pub bandits: BanditSummary,
    /// The A/B test.
    pub ab: AbSummary,
    /// Power.
    pub power: PowerSummary,
    /// Off-policy evaluation.
    pub off_policy: OpeSummary,
}

/// Everything a run produces: the series to plot and the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Simulation {
    /// Cumulative regret per step.
    pub regret: RegretSeries,
    /// Thompson's share of pulls per arm, by window of steps.
    pub thompson_arm_shares: Vec<ArmShares>,
    /// The A/B test's estimate as exposures accumulate.
    pub ab_path: Vec<AbPoint>,
    /// The summary numbers.
    pub summary: Summary,
}

/// Independent random streams derived from one seed.
fn stream(seed: u64, index: u64) -> StdRng {
    StdRng::seed_from_u64(seed ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Runs the whole simulation.
pub fn run(config: &SimConfig) -> Result<Simulation, SimError> {
    config.check()?;
    let bandits = run_bandits(config)?;
    let (ab_path, ab) = run_ab(config)?;
    let power = run_power(config);
    let off_policy = run_off_policy(config, &bandits)?;
    let summary = Summary { config: config.clone(), bandits: bandits.summary, ab, power, off_policy };
    Ok(Simulation { regret: bandits.regret, thompson_arm_shares: bandits.shares, ab_path, summary })
}

struct BanditRun {
    regret: RegretSeries,
    shares: Vec<ArmShares>,
    summary: BanditSummary,
    thompson: ThompsonSampling,
    linucb: LinUcb<usize>,
    /// The uniform-random policy's decisions.
    log: Vec<LoggedDecision<Context>>,
}

fn run_bandits(config: &SimConfig) -> Result<BanditRun, SimError> {
    let n = config.steps;
    let mut world = stream(config.seed, 0);
    let mut thompson_rng = stream(config.seed, 1);
    // The random policy is the logging policy of off-policy evaluation: its own visitors and
    // reward draws, so the log is independent of what the learning policies saw.
    let log = uniform_log(n, &mut stream(config.seed, 2));
    let mut thompson = ThompsonSampling::new(ARM_COUNT, config.thompson_min_trials)?;
    let mut linucb = LinUcb::new(CONTEXT_DIMENSION, config.linucb_alpha, 1.0)?;
    let arms: Vec<usize> = (0..ARM_COUNT).collect();
    let means = mean_rates();
    let best = best_fixed_arm();

    let mut regret =
        RegretSeries { thompson: Vec::with_capacity(n), linucb: Vec::with_capacity(n), random: Vec::with_capacity(n) };
    let (mut r_t, mut r_l, mut r_r) = (0.0, 0.0, 0.0);
    let (mut f_t, mut f_r) = (0.0, 0.0);
    let window = (n / 50).max(1);
    let mut shares = Vec::new();
    let mut counts = [0u64; ARM_COUNT];
    let tail_start = n - n / 10;
    let (mut tail_best, mut tail_oracle) = (0u64, 0u64);

    for (step, logged) in log.iter().enumerate() {
        let context = Context::draw(&mut world);
        // One uniform per visitor decides the reward of whichever arm is shown: the policies
        // face the same visitors and the same luck.
        let u: f64 = world.r#gen();
        let rates: [f64; ARM_COUNT] = std::array::from_fn(|a| true_rate(a, &context));
        let oracle = rates[oracle_arm(&context)];
        let x = encode(&context);

        let a_t = thompson.choose(&mut thompson_rng);
        thompson.update(a_t, u < rates[a_t])?;
        let a_l = linucb.choose(&x, &arms)?.unwrap_or(0);
        linucb.update(a_l, &x, f64::from(u8::from(u < rates[a_l])))?;
        let random_oracle = true_rate(oracle_arm(&logged.context), &logged.context);
        let random_rate = true_rate(logged.action, &logged.context);

        r_t += oracle - rates[a_t];
        r_l += oracle - rates[a_l];
        r_r += random_oracle - random_rate;
        f_t += means[best] - means[a_t];
        f_r += means[best] - means[logged.action];
        regret.thompson.push(r_t);
        regret.linucb.push(r_l);
        regret.random.push(r_r);

        counts[a_t] += 1;
        if (step + 1) % window == 0 || step + 1 == n {
            let total: u64 = counts.iter().sum();
            shares
                .push(ArmShares { step: step + 1, shares: counts.iter().map(|&c| c as f64 / total as f64).collect() });
            counts = [0; ARM_COUNT];
        }
        if step >= tail_start {
            tail_best += u64::from(a_t == best);
            tail_oracle += u64::from(rates[a_l] == oracle);
        }
    }
    let tail = (n - tail_start) as f64;
    let summary = BanditSummary {
        regret_thompson: r_t,
        regret_linucb: r_l,
        regret_random: r_r,
        fixed_regret_thompson: f_t,
        fixed_regret_random: f_r,
        best_arm: best,
        best_arm_name: ARMS[best].to_string(),
        arm_mean_rates: means.to_vec(),
        oracle_rate: oracle_rate(),
        thompson_best_arm_share_last_10pct: tail_best as f64 / tail,
        linucb_oracle_share_last_10pct: tail_oracle as f64 / tail,
    };
    Ok(BanditRun { regret, shares, summary, thompson, linucb, log })
}

/// A Binomial(`n`, `p`) draw by skipping from one success to the next (geometric gaps), so it
/// costs about `n·p` uniforms instead of `n`.
fn binomial<R: Rng + ?Sized>(n: u64, p: f64, rng: &mut R) -> u64 {
    if p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    let log_q = (1.0 - p).ln();
    let (mut position, mut successes) = (0u64, 0u64);
    loop {
        let u: f64 = 1.0 - rng.r#gen::<f64>();
        let gap = (u.ln() / log_q).floor();
        if !gap.is_finite() || gap >= (n - position) as f64 {
            return successes;
        }
        position += gap as u64 + 1;
        successes += 1;
        if position >= n {
            return successes;
        }
    }
}

fn uplift(
    control: (u64, u64),
    variant: (u64, u64),
    confidence: f64,
    tuning: f64,
) -> Option<(stats::Uplift, stats::SequentialInterval)> {
    let u = stats::relative_uplift(
        &SampleStats::proportion(control.0, control.1),
        &SampleStats::proportion(variant.0, variant.1),
        confidence,
    )
    .ok()?;
    Some((u, stats::sequential_interval(&u, &SequentialConfig { tuning })))
}

fn run_ab(config: &SimConfig) -> Result<(Vec<AbPoint>, AbSummary), SimError> {
    let mut rng = stream(config.seed, 3);
    let p_c = config.ab_base_rate;
    let p_v = p_c * (1.0 + config.ab_relative_uplift);
    let tuning = config.ab_exposures as f64;
    let checkpoint = (config.ab_exposures / 400).max(1);
    let (mut control, mut variant) = ((0u64, 0u64), (0u64, 0u64));
    let mut path = Vec::new();
    let (mut first_seq, mut first_fixed) = (None, None);
    for i in 1..=config.ab_exposures {
        if rng.r#gen::<bool>() {
            variant.0 += 1;
            variant.1 += u64::from(rng.r#gen::<f64>() < p_v);
        } else {
            control.0 += 1;
            control.1 += u64::from(rng.r#gen::<f64>() < p_c);
        }
        if (i % checkpoint == 0 || i == config.ab_exposures)
            && i >= 1_000
            && let Some((u, s)) = uplift(control, variant, config.confidence, tuning)
        {
            if s.significant && first_seq.is_none() {
                first_seq = Some(i);
            }
            if (u.ci_low > 0.0 || u.ci_high < 0.0) && first_fixed.is_none() {
                first_fixed = Some(i);
            }
            path.push(AbPoint {
                exposures: i,
                relative: u.relative,
                ci_low: u.ci_low,
                ci_high: u.ci_high,
                sequential_low: s.low,
                sequential_high: s.high,
            });
        }
    }
    let last = *path.last().ok_or(SimError::Config("the A/B test had no conversions"))?;
    let summary = AbSummary {
        base_rate: p_c,
        true_uplift: config.ab_relative_uplift,
        exposures: config.ab_exposures,
        last,
        first_sequential_detection: first_seq,
        first_fixed_detection: first_fixed,
    };
    Ok((path, summary))
}

/// The normal-approximation power of the two-sided test at `confidence` that the relative
/// uplift of a variant at `p_v` over a control at `p_c` is 0, with `n` units per arm, using the
/// delta-method standard error [`stats::relative_uplift`] uses.
pub fn theoretical_power(p_c: f64, p_v: f64, n: u64, confidence: f64) -> f64 {
    let n = n as f64;
    let relative = p_v / p_c - 1.0;
    let se = (p_v * (1.0 - p_v) / (n * p_c * p_c) + p_v * p_v * p_c * (1.0 - p_c) / (n * p_c.powi(4))).sqrt();
    let z = normal_quantile(1.0 - (1.0 - confidence) / 2.0);
    normal_cdf(relative.abs() / se - z) + normal_cdf(-relative.abs() / se - z)
}

fn run_power(config: &SimConfig) -> PowerSummary {
    let mut rng = stream(config.seed, 4);
    let n = config.power_per_arm;
    let p_c = config.ab_base_rate;
    let p_v = p_c * (1.0 + config.ab_relative_uplift);
    let tuning = 2.0 * n as f64;
    let (mut detected, mut detected_seq, mut false_positives) = (0usize, 0usize, 0usize);
    for _ in 0..config.power_replicates {
        let c = (n, binomial(n, p_c, &mut rng));
        let v = (n, binomial(n, p_v, &mut rng));
        if let Some((u, s)) = uplift(c, v, config.confidence, tuning) {
            // Detection means an interval excluding 0 on the side of the planted effect.
            let right_side =
                |low: f64, high: f64| if config.ab_relative_uplift >= 0.0 { low > 0.0 } else { high < 0.0 };
            detected += usize::from(right_side(u.ci_low, u.ci_high));
            detected_seq += usize::from(right_side(s.low, s.high));
        }
        let a = (n, binomial(n, p_c, &mut rng));
        let b = (n, binomial(n, p_c, &mut rng));
        if let Some((u, _)) = uplift(a, b, config.confidence, tuning) {
            false_positives += usize::from(u.ci_low > 0.0 || u.ci_high < 0.0);
        }
    }
    let r = config.power_replicates as f64;
    PowerSummary {
        replicates: config.power_replicates,
        per_arm: n,
        theoretical: theoretical_power(p_c, p_v, n, config.confidence),
        observed: detected as f64 / r,
        observed_sequential: detected_seq as f64 / r,
        false_positive_rate: false_positives as f64 / r,
    }
}

/// `n` decisions of the uniform-random policy on fresh visitors: each arm with propensity
/// `1 / ARM_COUNT`, rewarded with the arm's true rate. The log off-policy evaluation starts from.
pub fn uniform_log<R: Rng + ?Sized>(n: usize, rng: &mut R) -> Vec<LoggedDecision<Context>> {
    (0..n)
        .map(|_| {
            let context = Context::draw(rng);
            let action = rng.gen_range(0..ARM_COUNT);
            let rewarded = rng.r#gen::<f64>() < true_rate(action, &context);
            LoggedDecision {
                context,
                action,
                propensity: 1.0 / ARM_COUNT as f64,
                reward: f64::from(u8::from(rewarded)),
            }
        })
        .collect()
}

/// The true expected reward of `target` (`π(context, arm)`, a probability) over the visitor
/// mix: `Σₓ P(x) Σₐ π(x, a) p(a, x)`.
pub fn policy_value(target: impl Fn(&Context, usize) -> f64) -> f64 {
    Context::all().iter().map(|(c, p)| p * (0..ARM_COUNT).map(|a| target(c, a) * true_rate(a, c)).sum::<f64>()).sum()
}

/// The doubly robust estimator's reward model: the mean reward per skin type and arm, shrunk
/// toward the arm's mean by 10 pseudo-observations. It ignores channel and time of day, so it is
/// knowingly imperfect (the estimator stays unbiased through its propensity term).
#[derive(Debug, Clone, PartialEq)]
pub struct RewardModel {
    /// (Σ reward, count) per skin type and arm.
    cells: [[(f64, f64); ARM_COUNT]; SKIN_TYPES.len()],
    /// (Σ reward, count) per arm.
    arms: [(f64, f64); ARM_COUNT],
}

impl RewardModel {
    /// Fits the model on logged decisions.
    pub fn fit(records: &[LoggedDecision<Context>]) -> Self {
        let mut m = Self { cells: [[(0.0, 0.0); ARM_COUNT]; SKIN_TYPES.len()], arms: [(0.0, 0.0); ARM_COUNT] };
        for r in records.iter().filter(|r| r.action < ARM_COUNT && r.context.skin < SKIN_TYPES.len()) {
            let cell = &mut m.cells[r.context.skin][r.action];
            cell.0 += r.reward;
            cell.1 += 1.0;
            m.arms[r.action].0 += r.reward;
            m.arms[r.action].1 += 1.0;
        }
        m
    }

    /// The predicted reward of `arm` in `context` (0 for an arm never logged).
    pub fn predict(&self, context: &Context, arm: usize) -> f64 {
        let Some(&(sum, n)) = self.arms.get(arm) else { return 0.0 };
        let prior = if n > 0.0 { sum / n } else { 0.0 };
        let (sum, n) = self.cells[context.skin.min(SKIN_TYPES.len() - 1)][arm];
        (sum + 10.0 * prior) / (n + 10.0)
    }
}

/// The IPS and doubly robust estimates of `target`'s value from a uniform-random `log`: the
/// reward model is fitted on its first [`OPE_MODEL_SHARE`], both estimates use the rest.
pub fn estimate_policy(
    log: &[LoggedDecision<Context>],
    target: impl Fn(&Context, usize) -> f64,
) -> Result<(OffPolicyEstimate, OffPolicyEstimate), SimError> {
    let split = (log.len() as f64 * OPE_MODEL_SHARE) as usize;
    let (fit, eval) = log.split_at(split);
    let model = RewardModel::fit(fit);
    let ips = off_policy::ips(eval, &target)?;
    let dr = off_policy::doubly_robust(eval, ARM_COUNT, &target, |c, a| model.predict(c, a))?;
    Ok((ips, dr))
}

fn run_off_policy(config: &SimConfig, bandits: &BanditRun) -> Result<OpeSummary, SimError> {
    let mut rng = stream(config.seed, 5);
    // Thompson's policy: each arm with its posterior probability of being best.
    let pi_thompson = bandits.thompson.probability_best(20_000, &mut rng);
    let pi_t = |_: &Context, a: usize| pi_thompson[a];
    // LinUCB's greedy policy: the arm with the highest predicted reward in each context.
    let greedy = |c: &Context| -> usize {
        let x = encode(c);
        argmax((0..ARM_COUNT).map(|a| bandits.linucb.expected_reward(&a, &x).unwrap_or(f64::NEG_INFINITY)))
    };
    let pi_g = |c: &Context, a: usize| if a == greedy(c) { 1.0 } else { 0.0 };
    let (ips_t, dr_t) = estimate_policy(&bandits.log, pi_t)?;
    let (ips_g, dr_g) = estimate_policy(&bandits.log, pi_g)?;
    Ok(OpeSummary {
        logging_policy_value: policy_value(|_, _| 1.0 / ARM_COUNT as f64),
        thompson: OpeResult { truth: policy_value(pi_t), ips: ips_t, doubly_robust: dr_t },
        linucb_greedy: OpeResult { truth: policy_value(pi_g), ips: ips_g, doubly_robust: dr_g },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_world_has_the_structure_the_docs_claim() {
        // Each skin type has its own best product, so context matters.
        let best: Vec<usize> = (0..4).map(|skin| oracle_arm(&Context { skin, channel: 0, time: 0 })).collect();
        assert_eq!(best, [0, 1, 3, 2]);
        assert_eq!(best_fixed_arm(), 0);
        let probabilities: f64 = Context::all().iter().map(|(_, p)| p).sum();
        assert!((probabilities - 1.0).abs() < 1e-12);
        for (c, _) in Context::all() {
            for a in 0..ARM_COUNT {
                let p = true_rate(a, &c);
                assert!((0.009..=0.181).contains(&p), "{a} {c:?} {p}");
            }
        }
        assert!(oracle_rate() > mean_rates()[0] + 0.03);
    }

    #[test]
    fn binomial_draws_have_the_right_mean_and_variance() {
        let mut rng = StdRng::seed_from_u64(3);
        let (n, p) = (2_000u64, 0.05);
        let draws: Vec<f64> = (0..4_000).map(|_| binomial(n, p, &mut rng) as f64).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (draws.len() - 1) as f64;
        // Mean 100 (s.e. 0.15), variance 95 (s.e. about 2.2).
        assert!((mean - 100.0).abs() < 0.6, "{mean}");
        assert!((var - 95.0).abs() < 8.0, "{var}");
        assert_eq!(binomial(10, 0.0, &mut rng), 0);
        assert_eq!(binomial(10, 1.0, &mut rng), 10);
    }

    #[test]
    fn theoretical_power_is_alpha_at_no_effect_and_grows_with_n() {
        assert!((theoretical_power(0.05, 0.05, 10_000, 0.95) - 0.05).abs() < 1e-9);
        let small = theoretical_power(0.05, 0.055, 10_000, 0.95);
        let large = theoretical_power(0.05, 0.055, 31_000, 0.95);
        assert!(small < large && (0.75..0.85).contains(&large), "{small} {large}");
    }

    #[test]
    fn bad_settings_are_refused() {
        let bad = |f: fn(&mut SimConfig)| {
            let mut c = SimConfig::new(1_000, 1);
            f(&mut c);
            matches!(run(&c), Err(SimError::Config(_)))
        };
        assert!(bad(|c| c.steps = 10));
        assert!(bad(|c| c.ab_base_rate = 0.0));
        assert!(bad(|c| c.ab_relative_uplift = 100.0));
        assert!(bad(|c| c.power_replicates = 0));
        assert!(bad(|c| c.confidence = 1.0));
    }
}
