//! Interactions: who touched which product, how strongly, as dense indices.
//!
//! External ids (an `author_id`, a product's `external_id`) are mapped to dense `u32` indices by
//! an [`IdMap`]; the pairs are kept twice in compressed sparse rows, by user and by item, so the
//! models read a user's history and an item's users without searching. Repeated pairs are
//! merged: their signal weights add up, and the highest rating is kept.

use rustc_hash::FxHashMap as HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::RecommendError;

/// Dense indices for external ids, in first-seen order.
#[derive(Debug, Clone, Default)]
pub struct IdMap {
    ids: Vec<String>,
    index: HashMap<String, u32>,
}

impl IdMap {
    /// The index of `id`, adding it when new.
    pub fn insert(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = u32::try_from(self.ids.len()).expect("fewer than 2^32 ids");
        self.ids.push(id.to_owned());
        self.index.insert(id.to_owned(), i);
        i
    }

    /// The index of `id`, if known.
    pub fn get(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    /// The external id at `index`.
    pub fn id(&self, index: u32) -> &str {
        &self.ids[index as usize]
    }

    /// How many ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The ids in index order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }
}

/// Compressed sparse rows: for each row, its column indices (ascending) and values.
#[derive(Debug, Clone, Default)]
pub struct Csr {
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

impl Csr {
    /// Row `r`: its column indices and values.
    pub fn row(&self, r: u32) -> (&[u32], &[f32]) {
        let (a, b) = (self.indptr[r as usize], self.indptr[r as usize + 1]);
        (&self.indices[a..b], &self.values[a..b])
    }

    /// The number of rows.
    pub fn nrows(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    /// The number of stored entries.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// From `(row, column, value)` triplets sorted by row then column, without repeats.
    fn from_sorted(nrows: usize, triplets: &[(u32, u32, f32)]) -> Self {
        let mut indptr = vec![0usize; nrows + 1];
        for &(r, _, _) in triplets {
            indptr[r as usize + 1] += 1;
        }
        for r in 0..nrows {
            indptr[r + 1] += indptr[r];
        }
        Csr { indptr, indices: triplets.iter().map(|t| t.1).collect(), values: triplets.iter().map(|t| t.2).collect() }
    }
}

/// What a customer did with a product. Reviews carry their star rating.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Signal {
    /// A review with its rating (1 to 5; fractional ratings round to the nearest star).
    Review { rating: f32 },
    /// A product page view.
    View,
    /// Added to the cart.
    AddToCart,
    /// A first purchase.
    Purchase,
    /// A purchase of something bought before.
    Repurchase,
    /// "Not for me".
    NotForMe,
    /// A return.
    Return,
}

/// How much each kind of signal counts (implicit-feedback weights). Negative weights mark a
/// product the customer did not want: it stays in their history (never recommended again) but
/// adds no positive evidence to any model.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalWeights {
    /// A review's weight by star (index 0 is one star).
    pub review_by_star: [f32; 5],
    pub view: f32,
    pub add_to_cart: f32,
    pub purchase: f32,
    pub repurchase: f32,
    pub not_for_me: f32,
    pub returned: f32,
}

impl Default for SignalWeights {
    /// Every review counts 1 whatever its rating (the evaluation protocol: every reviewed pair
    /// is an interaction); view < add to cart < purchase < repurchase; "not for me" and returns
    /// negative.
    fn default() -> Self {
        SignalWeights {
            review_by_star: [1.0; 5],
            view: 0.25,
            add_to_cart: 0.5,
            purchase: 1.0,
            repurchase: 1.5,
            not_for_me: -1.0,
            returned: -1.0,
        }
    }
}

impl SignalWeights {
    /// The weight of one signal.
    pub fn weight(&self, signal: Signal) -> f32 {
        match signal {
            Signal::Review { rating } => self.review_by_star[star(rating) - 1],
            Signal::View => self.view,
            Signal::AddToCart => self.add_to_cart,
            Signal::Purchase => self.purchase,
            Signal::Repurchase => self.repurchase,
            Signal::NotForMe => self.not_for_me,
            Signal::Return => self.returned,
        }
    }

    /// Review weights from `w1,w2,w3,w4,w5` (one to five stars).
    pub fn with_review_weights(mut self, text: &str) -> Result<Self, RecommendError> {
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        let bad = || RecommendError::BadOption {
            option: "review weights",
            reason: format!("{text:?}: expected five numbers w1,w2,w3,w4,w5"),
        };
        if parts.len() != 5 {
            return Err(bad());
        }
        for (slot, p) in self.review_by_star.iter_mut().zip(&parts) {
            *slot = p.parse::<f32>().ok().filter(|w| w.is_finite()).ok_or_else(bad)?;
        }
        Ok(self)
    }
}

/// The star (1 to 5) of a possibly fractional rating.
fn star(rating: f32) -> usize {
    if rating.is_finite() { rating.round().clamp(1.0, 5.0) as usize } else { 1 }
}

/// The user-item interactions, both ways, with dense indices.
#[derive(Debug, Clone)]
pub struct Interactions {
    users: IdMap,
    items: IdMap,
    by_user: Csr,
    by_item: Csr,
    /// The highest rating of each pair in `by_user` order (NaN when the pair has no rating).
    ratings: Vec<f32>,
}

/// One user's interactions: item indices (ascending) and weights.
#[derive(Debug, Clone, Copy)]
pub struct History<'a> {
    pub items: &'a [u32],
    pub weights: &'a [f32],
    /// The ratings, aligned with `items` (NaN where a pair has none), or empty when unknown.
    pub ratings: &'a [f32],
}

impl History<'_> {
    /// A history with nothing in it (a new customer).
    pub const EMPTY: History<'static> = History { items: &[], weights: &[], ratings: &[] };

    /// The number of products in it.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl Interactions {
    /// The users' ids.
    pub fn users(&self) -> &IdMap {
        &self.users
    }

    /// The items' ids.
    pub fn items(&self) -> &IdMap {
        &self.items
    }

    /// The number of users.
    pub fn n_users(&self) -> usize {
        self.users.len()
    }

    /// The number of items.
    pub fn n_items(&self) -> usize {
        self.items.len()
    }

    /// The number of (user, item) pairs.
    pub fn nnz(&self) -> usize {
        self.by_user.nnz()
    }

    /// A user's history.
    pub fn history(&self, user: u32) -> History<'_> {
        let (items, weights) = self.by_user.row(user);
        History { items, weights, ratings: self.ratings(user) }
    }

    /// A user's ratings, aligned with [`Interactions::history`] (NaN where a pair has none).
    pub fn ratings(&self, user: u32) -> &[f32] {
        let (a, b) = (self.by_user.indptr[user as usize], self.by_user.indptr[user as usize + 1]);
        &self.ratings[a..b]
    }

    /// An item's users and their weights.
    pub fn item_users(&self, item: u32) -> (&[u32], &[f32]) {
        self.by_item.row(item)
    }

    /// Splits off a random part of each user's history (`fraction` of it, for users with at
    /// least `min_history` items, keeping at least one item in the rest) for tuning. Both parts
    /// keep these id maps, so indices agree. Deterministic for a seed.
    pub fn holdout(&self, fraction: f64, min_history: usize, seed: u64) -> (Interactions, Vec<HeldOut>) {
        let mut rng = SplitMix64::new(seed);
        let mut kept = Vec::with_capacity(self.nnz());
        let mut held = Vec::new();
        for u in 0..self.n_users() as u32 {
            let h = self.history(u);
            let ratings = self.ratings(u);
            let n = h.len();
            let take =
                if n >= min_history.max(2) { ((n as f64 * fraction).round() as usize).clamp(1, n - 1) } else { 0 };
            let mut order: Vec<usize> = (0..n).collect();
            rng.shuffle(&mut order);
            let mut out = vec![false; n];
            for &k in &order[..take] {
                out[k] = true;
            }
            for k in 0..n {
                if out[k] {
                    held.push(HeldOut { user: u, item: h.items[k], rating: ratings[k], weight: h.weights[k] });
                } else {
                    kept.push((u, h.items[k], h.weights[k], ratings[k]));
                }
            }
        }
        (Interactions::from_merged(self.users.clone(), self.items.clone(), kept), held)
    }

    /// The same pairs and id maps with each weight replaced by `f(weight, rating)` (rating NaN
    /// when the pair has none).
    pub fn reweighted(&self, f: impl Fn(f32, f32) -> f32) -> Interactions {
        let mut out = self.clone();
        for (w, &r) in out.by_user.values.iter_mut().zip(&self.ratings) {
            *w = f(*w, r);
        }
        let mut t: Vec<(u32, u32, f32)> = Vec::with_capacity(out.nnz());
        for u in 0..out.n_users() as u32 {
            let (items, weights) = out.by_user.row(u);
            t.extend(items.iter().zip(weights).map(|(&i, &w)| (i, u, w)));
        }
        t.sort_unstable_by_key(|p| (p.0, p.1));
        out.by_item = Csr::from_sorted(out.n_items(), &t);
        out
    }

    /// The same pairs and id maps, with weight 0 on the pairs not liked: rated below
    /// `min_rating`, or without a rating and a signal that was not positive. Models skip weights
    /// of 0, so this is "what customers liked" over the same histories.
    pub fn liked(&self, min_rating: f32) -> Interactions {
        self.reweighted(|w, r| {
            let liked = if r.is_nan() { w > 0.0 } else { r >= min_rating };
            if liked { w } else { 0.0 }
        })
    }

    /// From `(user, item, weight, rating)` with unique pairs in any order.
    fn from_merged(users: IdMap, items: IdMap, mut pairs: Vec<(u32, u32, f32, f32)>) -> Self {
        pairs.sort_unstable_by_key(|p| (p.0, p.1));
        let by_user_t: Vec<(u32, u32, f32)> = pairs.iter().map(|p| (p.0, p.1, p.2)).collect();
        let ratings = pairs.iter().map(|p| p.3).collect();
        let mut by_item_t: Vec<(u32, u32, f32)> = pairs.iter().map(|p| (p.1, p.0, p.2)).collect();
        by_item_t.sort_unstable_by_key(|p| (p.0, p.1));
        Interactions {
            by_user: Csr::from_sorted(users.len(), &by_user_t),
            by_item: Csr::from_sorted(items.len(), &by_item_t),
            users,
            items,
            ratings,
        }
    }
}

/// A pair taken out of the training data by [`Interactions::holdout`].
#[derive(Debug, Clone, Copy)]
pub struct HeldOut {
    pub user: u32,
    pub item: u32,
    /// NaN when the pair had no rating.
    pub rating: f32,
    pub weight: f32,
}

/// Collects signals into [`Interactions`].
#[derive(Debug, Default)]
pub struct InteractionsBuilder {
    users: IdMap,
    items: IdMap,
    pairs: HashMap<(u32, u32), (f32, f32)>,
    weights: SignalWeights,
}

impl InteractionsBuilder {
    /// A builder weighting signals with `weights`.
    pub fn new(weights: SignalWeights) -> Self {
        InteractionsBuilder { weights, ..Default::default() }
    }

    /// Adds one signal.
    pub fn add(&mut self, user: &str, item: &str, signal: Signal) {
        let (u, i) = (self.users.insert(user), self.items.insert(item));
        let w = self.weights.weight(signal);
        let rating = match signal {
            Signal::Review { rating } => rating,
            _ => f32::NAN,
        };
        let e = self.pairs.entry((u, i)).or_insert((0.0, f32::NAN));
        e.0 += w;
        // `max` ignores a NaN side: the highest rating wins, a rating beats none.
        e.1 = e.1.max(rating);
    }

    /// Adds `weight` to a pair as it is (an importance-weighted signal: a click corrected for the
    /// position it was shown at).
    pub fn add_weight(&mut self, user: &str, item: &str, weight: f32) {
        if !weight.is_finite() {
            return;
        }
        let (u, i) = (self.users.insert(user), self.items.insert(item));
        self.pairs.entry((u, i)).or_insert((0.0, f32::NAN)).0 += weight;
    }

    /// Adds every row of a rating file as a review.
    pub fn add_rows(&mut self, rows: &[RatingRow]) {
        for r in rows {
            self.add(&r.user, &r.item, Signal::Review { rating: r.rating });
        }
    }

    /// The interactions.
    pub fn build(self) -> Interactions {
        let pairs = self.pairs.into_iter().map(|((u, i), (w, r))| (u, i, w, r)).collect();
        Interactions::from_merged(self.users, self.items, pairs)
    }
}

/// One row of an interactions file.
#[derive(Debug, Clone, PartialEq)]
pub struct RatingRow {
    pub user: String,
    pub item: String,
    pub rating: f32,
    /// `submission_time` when the file has it.
    pub time: Option<String>,
}

/// Opens a file, decompressing it when its name ends in `.gz`.
fn open(path: &Path) -> Result<Box<dyn Read>, RecommendError> {
    let file = File::open(path).map_err(|source| RecommendError::Io { path: path.to_owned(), source })?;
    let reader = BufReader::with_capacity(1 << 16, file);
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz")) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(reader)))
    } else {
        Ok(Box::new(reader))
    }
}

fn csv_error(path: &Path, source: csv::Error) -> RecommendError {
    RecommendError::Csv { path: path.to_owned(), source }
}

/// The position of `name` in a header row.
fn column(path: &Path, headers: &csv::StringRecord, name: &'static str) -> Result<usize, RecommendError> {
    headers
        .iter()
        .position(|h| h.trim().trim_start_matches('\u{feff}') == name)
        .ok_or_else(|| RecommendError::MissingColumn { path: path.to_owned(), column: name })
}

/// Reads `author_id,product_id,rating[,submission_time]` rows (any column order, other columns
/// ignored) from a `.csv` or `.csv.gz` file. Ids are kept as text.
pub fn read_ratings(path: &Path) -> Result<Vec<RatingRow>, RecommendError> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(open(path)?);
    let headers = reader.headers().map_err(|e| csv_error(path, e))?.clone();
    let (cu, ci, cr) = (
        column(path, &headers, "author_id")?,
        column(path, &headers, "product_id")?,
        column(path, &headers, "rating")?,
    );
    let ct = column(path, &headers, "submission_time").ok();
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).map_err(|e| csv_error(path, e))? {
        let line = record.position().map_or(0, |p| p.line());
        let field = |c: usize| record.get(c).unwrap_or("").trim();
        let (user, item, rating) = (field(cu), field(ci), field(cr));
        if user.is_empty() || item.is_empty() {
            return Err(RecommendError::BadRow {
                path: path.to_owned(),
                line,
                reason: "empty author_id or product_id".into(),
            });
        }
        let rating =
            rating.parse::<f32>().ok().filter(|r| r.is_finite() && (0.0..=5.0).contains(r)).ok_or_else(|| {
                RecommendError::BadRow {
                    path: path.to_owned(),
                    line,
                    reason: format!("rating {rating:?} is not a number from 0 to 5"),
                }
            })?;
        rows.push(RatingRow {
            user: user.to_owned(),
            item: item.to_owned(),
            rating,
            time: ct.map(|c| field(c).to_owned()).filter(|t| !t.is_empty()),
        });
    }
    Ok(rows)
}

/// Loads interactions from one or several rating files, weighting reviews with `weights`.
pub fn load_interactions(paths: &[PathBuf], weights: &SignalWeights) -> Result<Interactions, RecommendError> {
    let mut builder = InteractionsBuilder::new(weights.clone());
    for path in paths {
        builder.add_rows(&read_ratings(path)?);
    }
    let data = builder.build();
    if data.nnz() == 0 {
        return Err(RecommendError::NoInteractions);
    }
    Ok(data)
}

/// The `product_id` column of a catalog file (Sephora's `product_info.csv`, or `.csv.gz`).
pub fn read_catalog_ids(path: &Path) -> Result<Vec<String>, RecommendError> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(open(path)?);
    let headers = reader.headers().map_err(|e| csv_error(path, e))?.clone();
    let c = column(path, &headers, "product_id")?;
    let mut ids = Vec::new();
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).map_err(|e| csv_error(path, e))? {
        if let Some(id) = record.get(c).map(str::trim).filter(|id| !id.is_empty()) {
            ids.push(id.to_owned());
        }
    }
    Ok(ids)
}

/// Reads one user id per line (blank lines and a `author_id`/`user_id` header skipped).
pub fn read_user_list(path: &Path) -> Result<Vec<String>, RecommendError> {
    let mut text = String::new();
    open(path)?.read_to_string(&mut text).map_err(|source| RecommendError::Io { path: path.to_owned(), source })?;
    Ok(text
        .lines()
        .enumerate()
        .map(|(n, l)| (n, l.trim().trim_start_matches('\u{feff}')))
        .filter(|(n, l)| !l.is_empty() && !(*n == 0 && (*l == "author_id" || *l == "user_id")))
        .map(|(_, l)| l.to_owned())
        .collect())
}

/// A small deterministic generator (SplitMix64): splits and sampling must not change with a
/// dependency's version.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * n as f64) as usize % n
    }

    /// Uniform in `[-0.5, 0.5)`.
    pub(crate) fn centered(&mut self) -> f32 {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 - 0.5) as f32
    }

    pub(crate) fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}
