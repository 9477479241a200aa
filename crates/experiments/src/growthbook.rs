//! Assignment compatible with GrowthBook's SDKs (`@growthbook/growthbook` 0.27, spec 0.5.0), so
//! that a visitor lands in the same variation here as in any GrowthBook SDK given the same
//! experiment and id.
//!
//! - [`hash`]: 32-bit FNV-1a (offset basis `0x811c9dc5`, prime `0x01000193`) over the string's
//!   UTF-16 code units, as the JavaScript SDK hashes `charCodeAt` (identical to bytes for ASCII).
//!   Version 1 is `fnv(value + seed) % 1000 / 1000`; version 2 is
//!   `fnv(decimal(fnv(seed + value))) % 10000 / 10000`; other versions give `None`.
//! - [`bucket_ranges`]: one `[start, end)` range per variation, with GrowthBook's fallbacks:
//!   coverage clamped to `[0, 1]`, weights replaced by [`equal_weights`] when missing, of the
//!   wrong length, or summing outside `[0.99, 1.01]`.
//! - [`choose_variation`]: the first range holding the hash.
//! - [`in_namespace`]: hash version 1 of the id with seed `"__" + namespace`, inside
//!   `[start, end)`.
//! - [`assign`]: the basic case of GrowthBook's `run` (active flag, hash value, namespace, hash,
//!   ranges). Targeting conditions, forced variations, URL overrides, QA mode and filters are
//!   not this module's business.
//! - [`Experiment::validate`] and [`find_namespace_overlap`]: the checks a service runs before
//!   saving a definition (GrowthBook's fallbacks hide mistakes an API should reject).

use serde::{Deserialize, Serialize};

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

/// 32-bit FNV-1a over the UTF-16 code units of `s` (what the JavaScript SDK hashes).
pub fn fnv1a32(s: &str) -> u32 {
    s.encode_utf16().fold(FNV_OFFSET, |h, unit| (h ^ u32::from(unit)).wrapping_mul(FNV_PRIME))
}

/// GrowthBook's hash of `value` under `seed`, a number in `[0, 1)`; `None` for a hash version
/// other than 1 or 2.
///
/// Version 1 (`fnv(value + seed) % 1000 / 1000`) is GrowthBook's original, slightly biased
/// hash; version 2 (`fnv(str(fnv(seed + value))) % 10000 / 10000`) is the unbiased one.
pub fn hash(seed: &str, value: &str, version: u32) -> Option<f64> {
    match version {
        1 => {
            let h = fnv1a32(&format!("{value}{seed}"));
            Some(f64::from(h % 1000) / 1000.0)
        }
        2 => {
            let inner = fnv1a32(&format!("{seed}{value}"));
            let h = fnv1a32(&inner.to_string());
            Some(f64::from(h % 10_000) / 10_000.0)
        }
        _ => None,
    }
}

/// A half-open interval `[start, end)` of the hash space `[0, 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BucketRange {
    /// Inclusive lower bound.
    pub start: f64,
    /// Exclusive upper bound.
    pub end: f64,
}

impl BucketRange {
    /// A range `[start, end)`.
    pub const fn new(start: f64, end: f64) -> Self {
        Self { start, end }
    }

    /// Whether `n` lies in `[start, end)`.
    pub fn contains(&self, n: f64) -> bool {
        n >= self.start && n < self.end
    }
}

/// `n` equal weights of `1 / n` (empty for `n == 0`).
pub fn equal_weights(n: usize) -> Vec<f64> {
    vec![1.0 / n as f64; n]
}

/// The bucket range of each of `n` variations: variation `i` starts at the sum of the weights
/// before it and covers `coverage * weights[i]` of the hash space.
///
/// As GrowthBook does, `coverage` is clamped to `[0, 1]` (a NaN coverage counts as 0), and
/// `weights` fall back to [`equal_weights`] when absent, not `n` long, or summing outside
/// `[0.99, 1.01]`.
pub fn bucket_ranges(n: usize, coverage: f64, weights: Option<&[f64]>) -> Vec<BucketRange> {
    let coverage = if coverage.is_nan() { 0.0 } else { coverage.clamp(0.0, 1.0) };
    let equal = equal_weights(n);
    let weights = match weights {
        Some(w) if w.len() == n => {
            let total: f64 = w.iter().sum();
            // A NaN total fails both comparisons in GrowthBook; treat it as invalid here.
            if (0.99..=1.01).contains(&total) { w } else { &equal[..] }
        }
        _ => &equal[..],
    };
    let mut cumulative = 0.0;
    weights
        .iter()
        .map(|&w| {
            let start = cumulative;
            cumulative += w;
            BucketRange::new(start, start + coverage * w)
        })
        .collect()
}

/// The index of the first range holding `n`, or `None` when `n` is in no range (outside the
/// experiment's coverage).
pub fn choose_variation(n: f64, ranges: &[BucketRange]) -> Option<usize> {
    ranges.iter().position(|r| r.contains(n))
}

/// A GrowthBook namespace: experiments sharing a namespace id and holding disjoint
/// `[start, end)` ranges of it are mutually exclusive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Namespace {
    /// The namespace's name, hashed as seed `"__" + id`.
    pub id: String,
    /// Inclusive start of the experiment's share of the namespace, in `[0, 1]`.
    pub start: f64,
    /// Exclusive end of the experiment's share of the namespace, in `[0, 1]`.
    pub end: f64,
}

impl Namespace {
    /// The share `[start, end)` of namespace `id`.
    pub fn new(id: impl Into<String>, start: f64, end: f64) -> Self {
        Self { id: id.into(), start, end }
    }
}

/// Whether unit `id` falls in the namespace's share: hash version 1 of `id` with seed
/// `"__" + namespace.id`, inside `[start, end)`.
pub fn in_namespace(id: &str, namespace: &Namespace) -> bool {
    match hash(&format!("__{}", namespace.id), id, 1) {
        Some(n) => n >= namespace.start && n < namespace.end,
        None => false,
    }
}

/// What [`assign`] needs of an experiment: GrowthBook's experiment fields for the basic case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// The experiment key (the hash seed when `seed` is absent).
    pub key: String,
    /// An explicit hash seed; `None` hashes with `key`.
    pub seed: Option<String>,
    /// The hash version, 1 or 2. [`Experiment::new`] uses 2 (unbiased); GrowthBook's default for
    /// an experiment that does not say is 1.
    pub hash_version: u32,
    /// The number of variations (index 0 is the control). Fewer than 2 assigns no one.
    pub variations: usize,
    /// The traffic split, one weight per variation summing to 1; `None` splits equally.
    pub weights: Option<Vec<f64>>,
    /// The share of units (after the namespace) that enter the experiment, in `[0, 1]`.
    pub coverage: f64,
    /// The namespace share this experiment holds, if any.
    pub namespace: Option<Namespace>,
    /// Explicit bucket ranges, overriding `weights` and `coverage` (as GrowthBook's `ranges`).
    pub ranges: Option<Vec<BucketRange>>,
    /// An inactive experiment assigns no one.
    pub active: bool,
}

impl Experiment {
    /// An active experiment `key` with `variations` equally weighted variations, full coverage,
    /// no namespace, hash version 2.
    pub fn new(key: impl Into<String>, variations: usize) -> Self {
        Self {
            key: key.into(),
            seed: None,
            hash_version: 2,
            variations,
            weights: None,
            coverage: 1.0,
            namespace: None,
            ranges: None,
            active: true,
        }
    }

    /// The bucket ranges [`assign`] uses: `ranges` if set, else [`bucket_ranges`] of the
    /// weights and coverage.
    pub fn effective_ranges(&self) -> Vec<BucketRange> {
        match &self.ranges {
            Some(r) => r.clone(),
            None => bucket_ranges(self.variations, self.coverage, self.weights.as_deref()),
        }
    }

    /// Rejects a definition that GrowthBook would silently repair or that could never assign
    /// anyone as intended: fewer than 2 variations, weights of the wrong length, negative or
    /// not summing to 1 (within 1e-6), coverage outside `[0, 1]`, a namespace range outside
    /// `[0, 1]` or empty, explicit ranges of the wrong length or overlapping, an unknown hash
    /// version.
    pub fn validate(&self) -> Result<(), ExperimentError> {
        if self.variations < 2 {
            return Err(ExperimentError::TooFewVariations(self.variations));
        }
        if !matches!(self.hash_version, 1 | 2) {
            return Err(ExperimentError::HashVersion(self.hash_version));
        }
        if let Some(w) = &self.weights {
            if w.len() != self.variations {
                return Err(ExperimentError::WeightsLength { variations: self.variations, weights: w.len() });
            }
            if w.iter().any(|x| !x.is_finite() || *x < 0.0) {
                return Err(ExperimentError::NegativeWeight);
            }
            let total: f64 = w.iter().sum();
            if (total - 1.0).abs() > 1e-6 {
                return Err(ExperimentError::WeightsSum(total));
            }
        }
        if !(0.0..=1.0).contains(&self.coverage) {
            return Err(ExperimentError::Coverage(self.coverage));
        }
        if let Some(ns) = &self.namespace
            && !(0.0 <= ns.start && ns.start < ns.end && ns.end <= 1.0)
        {
            return Err(ExperimentError::NamespaceRange { start: ns.start, end: ns.end });
        }
        if let Some(ranges) = &self.ranges {
            if ranges.len() != self.variations {
                return Err(ExperimentError::RangesLength { variations: self.variations, ranges: ranges.len() });
            }
            let mut sorted: Vec<BucketRange> = ranges.clone();
            sorted.sort_by(|a, b| a.start.total_cmp(&b.start));
            let bad_range = |r: &BucketRange| !(0.0 <= r.start && r.start <= r.end && r.end <= 1.0);
            if sorted.iter().any(bad_range) || sorted.windows(2).any(|p| p[0].end > p[1].start) {
                return Err(ExperimentError::Ranges);
            }
        }
        Ok(())
    }
}

/// Why [`Experiment::validate`] rejected a definition.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExperimentError {
    /// An experiment needs a control and at least one variant.
    #[error("an experiment needs at least 2 variations, got {0}")]
    TooFewVariations(usize),
    /// Only hash versions 1 and 2 exist.
    #[error("unknown hash version {0} (1 or 2)")]
    HashVersion(u32),
    /// One weight per variation.
    #[error("{weights} weights for {variations} variations")]
    WeightsLength {
        /// Number of variations.
        variations: usize,
        /// Number of weights given.
        weights: usize,
    },
    /// Weights are finite and non-negative.
    #[error("weights must be finite and non-negative")]
    NegativeWeight,
    /// The split must sum to 1.
    #[error("weights sum to {0}, not 1")]
    WeightsSum(f64),
    /// Coverage is a share.
    #[error("coverage {0} is outside [0, 1]")]
    Coverage(f64),
    /// A namespace share is a non-empty part of `[0, 1]`.
    #[error("namespace range [{start}, {end}) is not a non-empty part of [0, 1]")]
    NamespaceRange {
        /// Start of the share.
        start: f64,
        /// End of the share.
        end: f64,
    },
    /// One explicit range per variation.
    #[error("{ranges} ranges for {variations} variations")]
    RangesLength {
        /// Number of variations.
        variations: usize,
        /// Number of ranges given.
        ranges: usize,
    },
    /// Explicit ranges lie in `[0, 1]` and do not overlap.
    #[error("bucket ranges must lie in [0, 1] and not overlap")]
    Ranges,
}

/// The first pair of experiments (indices into `experiments`, in order) that share a namespace
/// id and whose shares of it overlap, so a unit could be in both; `None` when all are exclusive.
/// Inactive experiments are ignored.
pub fn find_namespace_overlap(experiments: &[Experiment]) -> Option<(usize, usize)> {
    for (i, a) in experiments.iter().enumerate() {
        let Some(na) = a.namespace.as_ref().filter(|_| a.active) else { continue };
        for (j, b) in experiments.iter().enumerate().skip(i + 1) {
            let Some(nb) = b.namespace.as_ref().filter(|_| b.active) else { continue };
            if na.id == nb.id && na.start < nb.end && nb.start < na.end {
                return Some((i, j));
            }
        }
    }
    None
}

/// The variation unit `unit_id` is assigned in `experiment`, or `None` when it is not in the
/// experiment: fewer than 2 variations, inactive, an empty id, outside the namespace share, an
/// unknown hash version, or outside the coverage.
///
/// This is GrowthBook's `run` for an experiment without targeting conditions, forced
/// variations, URL overrides, QA mode or filters: hash `unit_id` with `seed` (or `key`) at
/// `hash_version`, then [`choose_variation`] over [`Experiment::effective_ranges`].
pub fn assign(experiment: &Experiment, unit_id: &str) -> Option<usize> {
    if experiment.variations < 2 || !experiment.active || unit_id.is_empty() {
        return None;
    }
    if let Some(ns) = &experiment.namespace
        && !in_namespace(unit_id, ns)
    {
        return None;
    }
    let seed = experiment.seed.as_deref().filter(|s| !s.is_empty()).unwrap_or(&experiment.key);
    let n = hash(seed, unit_id, experiment.hash_version)?;
    choose_variation(n, &experiment.effective_ranges())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fnv_matches_the_published_test_vectors() {
        // FNV-1a 32 reference vectors (Fowler, Noll, Vo): "" and "a" and "foobar".
        assert_eq!(fnv1a32(""), 0x811c_9dc5);
        assert_eq!(fnv1a32("a"), 0xe40c_292c);
        assert_eq!(fnv1a32("foobar"), 0xbf9c_f968);
    }

    #[test]
    fn validation_rejects_bad_splits() {
        let mut e = Experiment::new("x", 2);
        assert_eq!(e.validate(), Ok(()));
        e.weights = Some(vec![0.5, 0.6]);
        assert!(matches!(e.validate(), Err(ExperimentError::WeightsSum(_))));
        e.weights = Some(vec![0.5, 0.25, 0.25]);
        assert!(matches!(e.validate(), Err(ExperimentError::WeightsLength { .. })));
        e.weights = Some(vec![1.5, -0.5]);
        assert_eq!(e.validate(), Err(ExperimentError::NegativeWeight));
        e.weights = Some(vec![0.3, 0.7]);
        e.coverage = 1.2;
        assert!(matches!(e.validate(), Err(ExperimentError::Coverage(_))));
        e.coverage = 0.5;
        e.namespace = Some(Namespace::new("ns", 0.6, 0.4));
        assert!(matches!(e.validate(), Err(ExperimentError::NamespaceRange { .. })));
        e.namespace = Some(Namespace::new("ns", 0.0, 0.4));
        e.ranges = Some(vec![BucketRange::new(0.0, 0.6), BucketRange::new(0.5, 1.0)]);
        assert_eq!(e.validate(), Err(ExperimentError::Ranges));
        e.ranges = None;
        assert_eq!(e.validate(), Ok(()));
        assert_eq!(Experiment::new("x", 1).validate(), Err(ExperimentError::TooFewVariations(1)));
    }

    #[test]
    fn overlapping_namespace_shares_are_found() {
        let mut a = Experiment::new("a", 2);
        a.namespace = Some(Namespace::new("home", 0.0, 0.5));
        let mut b = Experiment::new("b", 2);
        b.namespace = Some(Namespace::new("home", 0.5, 1.0));
        let mut c = Experiment::new("c", 2);
        c.namespace = Some(Namespace::new("other", 0.2, 0.8));
        assert_eq!(find_namespace_overlap(&[a.clone(), b.clone(), c.clone()]), None);
        let mut d = Experiment::new("d", 2);
        d.namespace = Some(Namespace::new("home", 0.4, 0.6));
        assert_eq!(find_namespace_overlap(&[a.clone(), b.clone(), c, d.clone()]), Some((0, 3)));
        d.active = false;
        assert_eq!(find_namespace_overlap(&[a, b, d]), None);
    }

    #[test]
    fn assignment_splits_traffic_by_weight_and_coverage() {
        let mut e = Experiment::new("checkout-copy", 3);
        e.weights = Some(vec![0.2, 0.3, 0.5]);
        e.coverage = 0.8;
        let mut counts = [0usize; 4];
        let n = 100_000;
        for i in 0..n {
            match assign(&e, &format!("cus_{i}")) {
                Some(v) => counts[v] += 1,
                None => counts[3] += 1,
            }
        }
        let share = |c: usize| c as f64 / n as f64;
        for (i, expected) in [0.16, 0.24, 0.40, 0.20].into_iter().enumerate() {
            assert!((share(counts[i]) - expected).abs() < 0.01, "slot {i}: {counts:?}");
        }
        // Deterministic and sticky.
        assert_eq!(assign(&e, "cus_42"), assign(&e, "cus_42"));
    }

    proptest! {
        #[test]
        fn hashes_lie_in_the_unit_interval(seed in ".{0,12}", value in ".{0,24}") {
            for v in [1, 2] {
                let h = hash(&seed, &value, v).unwrap();
                prop_assert!((0.0..1.0).contains(&h));
            }
        }

        #[test]
        fn ranges_are_ordered_disjoint_and_cover_the_coverage(
            raw in proptest::collection::vec(0.01f64..1.0, 2..8),
            coverage in 0.0f64..=1.0,
        ) {
            let total: f64 = raw.iter().sum();
            let weights: Vec<f64> = raw.iter().map(|w| w / total).collect();
            let ranges = bucket_ranges(weights.len(), coverage, Some(&weights));
            prop_assert_eq!(ranges.len(), weights.len());
            let covered: f64 = ranges.iter().map(|r| r.end - r.start).sum();
            prop_assert!((covered - coverage).abs() < 1e-9);
            for pair in ranges.windows(2) {
                prop_assert!(pair[0].end <= pair[1].start + 1e-12);
            }
            for (i, r) in ranges.iter().enumerate() {
                if r.end > r.start {
                    prop_assert_eq!(choose_variation(r.start, &ranges), Some(i));
                }
            }
        }
    }
}
