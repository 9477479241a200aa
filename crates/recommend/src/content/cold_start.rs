//! The cold-start protocol (issue 14): how well a customer the interaction data has never seen is
//! served from the skin quiz alone.
//!
//! 1. Reviewers with a skin type: the 2023 review files' `skin_type` column (a reviewer's most
//!    frequent non-empty value); everyone else is left out. Only reviews of the candidate
//!    products (the catalog's skin care) count.
//! 2. Reviewers, not rows, are split by a hash of `author_id` (FNV-1a, mixed): about
//!    `test_percent` % are *test* reviewers, the rest *fit* reviewers. Deterministic, and a
//!    reviewer's rows all land on one side: test reviewers are new customers.
//! 3. Popularity, global and per skin type ([`SegmentPopularity`]), is counted on the fit
//!    reviewers' rows (each reviewed product once per reviewer, whatever the rating).
//! 4. The blend is `per-skin-type popularity / its max × (1 + w × content / its max)`: content
//!    reorders products of similar popularity, and moves a product at most by a factor 1 + w.
//!    Its weight `w` is tuned on the fit reviewers only: a second hash cuts them in
//!    `tuning_folds` parts; each part is scored with popularity counted on the others; the weight
//!    of the grid with the best NDCG@k over all fit reviewers wins (ties to the smaller weight; 0
//!    is in the grid, so the blend can become popularity per skin type). Popularity is then
//!    counted again on all fit reviewers.
//! 5. Each test reviewer is ranked over every candidate product from their skin type alone: the
//!    data has no concerns and no sensitivity, so the profile is `{skin_type}` (and `sensitive`
//!    for the `sensitive` type). Relevant = the products they rated `min_rating` (4) or more;
//!    reviewers with none are not evaluated.
//! 6. NDCG@k, Recall@k and HitRate@k ([`crate::eval::ranking_metrics`]) per skin type and
//!    overall, for global popularity, popularity per skin type, content alone and the blend.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use super::{ContentModel, ContentProfile, SKIN_TYPES, SegmentPopularity};
use crate::RecommendError;
use crate::eval::ranking_metrics;
use crate::model::top_k;

/// One review with the reviewer's declared skin type.
#[derive(Debug, Clone, PartialEq)]
pub struct SkinTypeReview {
    pub author: String,
    pub product: String,
    pub rating: f32,
    /// Wire name (`combination`), `None` when empty or not one of [`SKIN_TYPES`].
    pub skin_type: Option<String>,
}

/// Reads `author_id, rating, skin_type, product_id` (other columns ignored) from a `.csv` or
/// `.csv.gz` review file.
pub fn read_reviews(path: &Path) -> Result<Vec<SkinTypeReview>, RecommendError> {
    let file = File::open(path).map_err(|source| RecommendError::Io { path: path.to_owned(), source })?;
    let reader = BufReader::with_capacity(1 << 16, file);
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz")) {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let csv_err = |source| RecommendError::Csv { path: path.to_owned(), source };
    let mut r = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let headers = r.headers().map_err(csv_err)?.clone();
    let col = |name: &'static str| {
        headers
            .iter()
            .position(|h| h.trim().trim_start_matches('\u{feff}') == name)
            .ok_or_else(|| RecommendError::MissingColumn { path: path.to_owned(), column: name })
    };
    let (ca, cp, cr, cs) = (col("author_id")?, col("product_id")?, col("rating")?, col("skin_type")?);
    let mut out = Vec::new();
    let mut rec = csv::StringRecord::new();
    while r.read_record(&mut rec).map_err(csv_err)? {
        let line = rec.position().map_or(0, |p| p.line());
        let f = |c: usize| rec.get(c).unwrap_or("").trim();
        let (author, product) = (f(ca), f(cp));
        if author.is_empty() || product.is_empty() {
            return Err(RecommendError::BadRow {
                path: path.to_owned(),
                line,
                reason: "empty author_id or product_id".into(),
            });
        }
        let rating =
            f(cr).parse::<f32>().ok().filter(|x| x.is_finite() && (0.0..=5.0).contains(x)).ok_or_else(|| {
                RecommendError::BadRow {
                    path: path.to_owned(),
                    line,
                    reason: format!("rating {:?} is not a number from 0 to 5", f(cr)),
                }
            })?;
        let skin = f(cs).to_ascii_lowercase();
        let skin_type = SKIN_TYPES.iter().find(|t| **t == skin).map(|t| (*t).to_owned());
        out.push(SkinTypeReview { author: author.to_owned(), product: product.to_owned(), rating, skin_type });
    }
    Ok(out)
}

/// The protocol's settings.
#[derive(Debug, Clone)]
pub struct ColdStartConfig {
    /// The cut-off.
    pub k: usize,
    /// Share of reviewers (percent) that are test reviewers.
    pub test_percent: u64,
    /// The fit reviewers are cut in this many parts (by a hash) to tune the blend: each part is
    /// scored with popularity counted on the others.
    pub tuning_folds: usize,
    /// The blend weights tried (content's weight against popularity per skin type's).
    pub blend_grid: Vec<f32>,
    /// A skin type with less weight than this falls back to global popularity.
    pub min_segment_weight: f32,
    /// Relevant = rated at least this.
    pub min_rating: f32,
    /// The split's hash seed.
    pub seed: u64,
}

impl Default for ColdStartConfig {
    fn default() -> Self {
        ColdStartConfig {
            k: 10,
            test_percent: 20,
            tuning_folds: 4,
            blend_grid: vec![0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0],
            min_segment_weight: 200.0,
            min_rating: 4.0,
            seed: 14,
        }
    }
}

/// The methods compared, in report order.
pub const METHODS: [&str; 4] = ["global popularity", "popularity per skin type", "content alone", "blend"];

/// One method's figures on one skin type (or `all`).
#[derive(Debug, Clone, PartialEq)]
pub struct ColdStartRow {
    pub method: &'static str,
    /// A skin type, or `all`.
    pub segment: String,
    pub users: usize,
    pub ndcg: f64,
    pub recall: f64,
    pub hit_rate: f64,
}

/// What the protocol found.
#[derive(Debug, Clone, Default)]
pub struct ColdStartReport {
    /// Every method per skin type (in [`SKIN_TYPES`] order) and `all`.
    pub rows: Vec<ColdStartRow>,
    /// Reviewers with a skin type who reviewed a candidate product.
    pub reviewers: usize,
    /// Fit and test reviewers.
    pub fit_reviewers: usize,
    pub test_reviewers: usize,
    /// Test reviewers evaluated (with at least one relevant review).
    pub evaluated: usize,
    /// Review rows used (with a skin type, on a candidate product).
    pub rows_used: usize,
    /// Rows left out: no skin type for the reviewer.
    pub rows_without_skin_type: usize,
    /// Rows left out: the product is not a candidate.
    pub rows_off_catalog: usize,
    /// NDCG@k of each blend weight on the set-aside fit reviewers.
    pub tuning: Vec<(f32, f64)>,
    /// The weight chosen.
    pub blend_weight: f32,
    /// Fit reviewers (with a relevant review) the weight was tuned on.
    pub tuning_reviewers: usize,
}

impl ColdStartReport {
    /// The row of a method and segment.
    pub fn get(&self, method: &str, segment: &str) -> Option<&ColdStartRow> {
        self.rows.iter().find(|r| r.method == method && r.segment == segment)
    }

    /// The figures as a Markdown table (method × skin type).
    pub fn table(&self, k: usize) -> String {
        use std::fmt::Write;
        let mut s = format!(
            "| method | skin type | reviewers | NDCG@{k} | Recall@{k} | HitRate@{k} |\n|---|---|---:|---:|---:|---:|\n"
        );
        let mut segments: Vec<&str> = Vec::new();
        for r in &self.rows {
            if !segments.contains(&r.segment.as_str()) {
                segments.push(&r.segment);
            }
        }
        for seg in segments {
            for r in self.rows.iter().filter(|r| r.segment == seg) {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.4} | {:.4} | {:.4} |",
                    r.method, r.segment, r.users, r.ndcg, r.recall, r.hit_rate
                );
            }
        }
        s
    }
}

/// A reviewer's bucket in 0..100 under a salt: FNV-1a of the id, mixed (SplitMix64's finalizer).
pub fn bucket(id: &str, salt: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = h ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % 100
}

/// One reviewer: skin type, the candidate products reviewed (ascending) and those rated
/// relevant (ascending).
#[derive(Debug, Clone)]
struct Reviewer {
    id: String,
    skin: String,
    reviewed: Vec<u32>,
    relevant: Vec<u32>,
}

fn popularity(n: usize, reviewers: &[&Reviewer], min_weight: f32) -> SegmentPopularity {
    let mut p = SegmentPopularity::new(n, min_weight);
    for r in reviewers {
        for &i in &r.reviewed {
            p.add(Some(&r.skin), i, 1.0);
        }
    }
    p
}

/// Scale so the maximum is 1 (all zeros stay zeros).
fn normalized(v: &mut [f32]) {
    let max = v.iter().copied().fold(0.0f32, f32::max);
    if max > 0.0 {
        v.iter_mut().for_each(|x| *x /= max);
    }
}

/// The scores of each method for one skin type (computed once per skin type: the profile is the
/// skin type alone).
struct Rankers {
    global: Vec<f32>,
    segment: Vec<f32>,
    content: Vec<f32>,
}

fn rankers(pop: &SegmentPopularity, content: &ContentModel, skin: &str) -> Rankers {
    let n = content.n_items();
    let mut global = vec![0.0; n];
    pop.scores(None, &mut global);
    let mut segment = vec![0.0; n];
    pop.scores(Some(skin), &mut segment);
    normalized(&mut segment);
    let mut c = vec![0.0; n];
    let profile =
        ContentProfile { skin_type: Some(skin.to_owned()), concerns: Vec::new(), sensitive: skin == "sensitive" };
    content.score(&profile, &mut c);
    normalized(&mut c);
    Rankers { global, segment, content: c }
}

fn blend(r: &Rankers, w: f32) -> Vec<f32> {
    r.segment.iter().zip(&r.content).map(|(p, c)| p * (1.0 + w * c)).collect()
}

/// Sums of (ndcg, recall, hit) and a count.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    users: usize,
    ndcg: f64,
    recall: f64,
    hits: f64,
}

impl Sums {
    fn add(&mut self, ranked: &[u32], relevant: &[u32], k: usize) {
        let (n, r, h) = ranking_metrics(ranked, relevant, 0, k);
        self.users += 1;
        self.ndcg += n;
        self.recall += r;
        self.hits += h;
    }

    fn row(&self, method: &'static str, segment: &str) -> ColdStartRow {
        let per = |x: f64| if self.users == 0 { 0.0 } else { x / self.users as f64 };
        ColdStartRow {
            method,
            segment: segment.to_owned(),
            users: self.users,
            ndcg: per(self.ndcg),
            recall: per(self.recall),
            hit_rate: per(self.hits),
        }
    }
}

fn ranked(scores: &[f32], k: usize) -> Vec<u32> {
    top_k(scores, k, &[], None).into_iter().map(|s| s.item).collect()
}

/// Runs the protocol. `candidates` are the external ids of the content model's items (position
/// = item index): every test reviewer is ranked over all of them.
pub fn evaluate(
    candidates: &[String],
    content: &ContentModel,
    reviews: &[SkinTypeReview],
    config: &ColdStartConfig,
) -> Result<ColdStartReport, RecommendError> {
    if candidates.len() != content.n_items() {
        return Err(RecommendError::BadOption {
            option: "cold start",
            reason: format!("{} candidate ids for {} content items", candidates.len(), content.n_items()),
        });
    }
    if !(1..=1000).contains(&config.k) {
        return Err(RecommendError::BadOption { option: "k", reason: "must be from 1 to 1000".into() });
    }
    if config.test_percent == 0 || config.test_percent >= 100 || !(2..=20).contains(&config.tuning_folds) {
        return Err(RecommendError::BadOption {
            option: "cold start split",
            reason: "the test share must be from 1 to 99 percent, the tuning folds from 2 to 20".into(),
        });
    }
    let n = candidates.len();
    let index: HashMap<&str, u32> = candidates.iter().enumerate().map(|(i, id)| (id.as_str(), i as u32)).collect();
    let mut report = ColdStartReport::default();

    // Each reviewer's most frequent skin type (ties: the first seen).
    let mut skin_counts: HashMap<&str, Vec<(&str, usize)>> = HashMap::new();
    for r in reviews {
        if let Some(s) = &r.skin_type {
            let e = skin_counts.entry(&r.author).or_default();
            match e.iter_mut().find(|(t, _)| t == s) {
                Some(x) => x.1 += 1,
                None => e.push((s, 1)),
            }
        }
    }
    let mut by_author: HashMap<&str, usize> = HashMap::new();
    let mut reviewers: Vec<Reviewer> = Vec::new();
    for r in reviews {
        let Some(counts) = skin_counts.get(r.author.as_str()) else {
            report.rows_without_skin_type += 1;
            continue;
        };
        let Some(&item) = index.get(r.product.as_str()) else {
            report.rows_off_catalog += 1;
            continue;
        };
        report.rows_used += 1;
        let at = *by_author.entry(&r.author).or_insert_with(|| {
            let skin = counts.iter().fold(counts[0], |best, c| if c.1 > best.1 { *c } else { best }).0;
            reviewers.push(Reviewer {
                id: r.author.clone(),
                skin: skin.to_owned(),
                reviewed: Vec::new(),
                relevant: Vec::new(),
            });
            reviewers.len() - 1
        });
        let rev = &mut reviewers[at];
        rev.reviewed.push(item);
        if r.rating >= config.min_rating {
            rev.relevant.push(item);
        }
    }
    for r in &mut reviewers {
        r.reviewed.sort_unstable();
        r.reviewed.dedup();
        r.relevant.sort_unstable();
        r.relevant.dedup();
    }
    report.reviewers = reviewers.len();
    let (test, fit): (Vec<&Reviewer>, Vec<&Reviewer>) =
        reviewers.iter().partition(|r| bucket(&r.id, config.seed) < config.test_percent);
    report.fit_reviewers = fit.len();
    report.test_reviewers = test.len();
    if fit.is_empty() || test.is_empty() {
        return Err(RecommendError::NotEnoughData("cold start needs reviewers with a skin type on both sides"));
    }

    // Tune the blend on fit reviewers only: in each of `folds` parts (by a second hash),
    // popularity counted on the other parts, NDCG@k summed over every fit reviewer.
    let salt = config.seed ^ 0x05EE_D0FB_1E4D;
    let folds = config.tuning_folds.max(2) as u64;
    let fold_of = |r: &Reviewer| bucket(&r.id, salt) * folds / 100;
    let mut tuning = vec![Sums::default(); config.blend_grid.len()];
    for &w in &config.blend_grid {
        if !w.is_finite() || w < 0.0 {
            return Err(RecommendError::BadOption { option: "blend grid", reason: format!("{w}: not a weight") });
        }
    }
    for f in 0..folds {
        let (held, rest): (Vec<&Reviewer>, Vec<&Reviewer>) = fit.iter().copied().partition(|r| fold_of(r) == f);
        let pop = popularity(n, &rest, config.min_segment_weight);
        let mut lists: HashMap<&str, Vec<Vec<u32>>> = HashMap::new();
        for r in held.iter().filter(|r| !r.relevant.is_empty()) {
            let per_weight = lists.entry(&r.skin).or_insert_with(|| {
                let rk = rankers(&pop, content, &r.skin);
                config.blend_grid.iter().map(|&w| ranked(&blend(&rk, w), config.k)).collect()
            });
            for (sums, list) in tuning.iter_mut().zip(per_weight.iter()) {
                sums.add(list, &r.relevant, config.k);
            }
        }
    }
    report.tuning_reviewers = tuning.first().map_or(0, |s| s.users);
    let mut best = (0.0f32, f64::NEG_INFINITY);
    for (&w, sums) in config.blend_grid.iter().zip(&tuning) {
        let ndcg = sums.row("blend", "tuning").ndcg;
        report.tuning.push((w, ndcg));
        if ndcg > best.1 || (ndcg == best.1 && w < best.0) {
            best = (w, ndcg);
        }
    }
    report.blend_weight = best.0;

    // Evaluate on the test reviewers, popularity counted on every fit reviewer. The profile is
    // the skin type alone, so each method gives one list per skin type.
    let pop = popularity(n, &fit, config.min_segment_weight);
    let mut lists: HashMap<&str, [Vec<u32>; 4]> = HashMap::new();
    let mut sums: HashMap<(&'static str, String), Sums> = HashMap::new();
    for r in test.iter().filter(|r| !r.relevant.is_empty()) {
        report.evaluated += 1;
        let l = lists.entry(&r.skin).or_insert_with(|| {
            let rk = rankers(&pop, content, &r.skin);
            [
                ranked(&rk.global, config.k),
                ranked(&rk.segment, config.k),
                ranked(&rk.content, config.k),
                ranked(&blend(&rk, report.blend_weight), config.k),
            ]
        });
        for (method, list) in METHODS.iter().zip(l.iter()) {
            for seg in [r.skin.as_str(), "all"] {
                sums.entry((method, seg.to_owned())).or_default().add(list, &r.relevant, config.k);
            }
        }
    }
    for seg in SKIN_TYPES.iter().copied().chain(["all"]) {
        for method in METHODS {
            if let Some(s) = sums.get(&(method, seg.to_owned())) {
                report.rows.push(s.row(method, seg));
            }
        }
    }
    Ok(report)
}
