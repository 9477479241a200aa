//! Probabilistic record linkage (Fellegi–Sunter) over customers' contact fields: pure code, no
//! database and no I/O, so it runs over whatever snapshot of decrypted, normalized fields the
//! caller hands it.
//!
//! 1. [`Record`]s carry the normalized comparison fields (first and last name, date of birth,
//!    postcode, the local part of the email, the phone's digits); [`Record::normalized`] builds
//!    one from raw input.
//! 2. Blocking ([`candidate_pairs`]) forms candidate pairs only within blocks: the union of
//!    "same postcode and first letter of the last name", "same date of birth", "same last four
//!    phone digits" and "same email local part". A block larger than
//!    [`MatchConfig::block_cap`] is skipped and reported ([`SkippedBlock`]), never expanded
//!    quadratically. [`all_pairs`] is the exhaustive path, refused above
//!    [`MatchConfig::all_pairs_limit`] records.
//! 3. [`compare`] turns a pair into a [`Comparison`]: a [`Level`] per [`Field`] (exact, close,
//!    different, missing). Close is Jaro–Winkler ≥ 0.92 for names, one typo (one character
//!    inserted, deleted, replaced, or two adjacent swapped) for email local parts (not
//!    Jaro–Winkler: `ann.lee82` and `ann.lee1990` are different people's addresses more often
//!    than not, and a local part built from the name would otherwise count the name twice), a
//!    day/month swap or one-digit typo for the date of birth, one character off for postcodes
//!    and one digit off (or the same last nine digits) for phones.
//! 4. [`estimate`] fits the m and u probabilities of each field level and the prior match
//!    proportion with the classic EM (conditional independence; missing fields contribute
//!    nothing), over the counts of the 4⁶ comparison patterns, so an iteration costs the same
//!    for a thousand pairs or a million. The [`Weights`] are log2(m/u); a pair's score is their
//!    sum.
//! 5. [`find_matches`] runs all of it and returns [`Suggestion`]s: pairs at or above
//!    [`MatchConfig::review_threshold`] are for review, at or above
//!    [`MatchConfig::auto_merge_threshold`] they may be merged automatically; each carries its
//!    per-field levels and weights as the explanation.
//!
//! Everything is deterministic: blocks are iterated in key order, pairs are sorted, EM sums in
//! pattern order and suggestions are ordered by score, then ids.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// The number of compared fields.
pub const FIELDS: usize = 6;
/// The number of distinct comparison patterns (four levels per field).
const PATTERNS: usize = 1 << (2 * FIELDS);
/// Jaro–Winkler similarity at or above which two different names (or email local parts) are close.
pub const CLOSE_SIMILARITY: f64 = 0.92;

/// A compared field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// Given name.
    FirstName,
    /// Family name.
    LastName,
    /// Date of birth.
    DateOfBirth,
    /// Postal code.
    Postcode,
    /// The part of the email address before `@`.
    EmailLocal,
    /// The phone number's digits.
    Phone,
}

impl Field {
    /// All fields, in comparison-vector order.
    pub const ALL: [Field; FIELDS] =
        [Field::FirstName, Field::LastName, Field::DateOfBirth, Field::Postcode, Field::EmailLocal, Field::Phone];

    /// The field's name as it appears in explanations.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::FirstName => "first_name",
            Field::LastName => "last_name",
            Field::DateOfBirth => "date_of_birth",
            Field::Postcode => "postcode",
            Field::EmailLocal => "email_local",
            Field::Phone => "phone",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How two records compare on one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Equal after normalization.
    Exact,
    /// Not equal, but a likely typo or variant of each other.
    Close,
    /// Different.
    Different,
    /// At least one side has no value: this field says nothing.
    Missing,
}

impl Level {
    /// The levels EM estimates probabilities for (not [`Level::Missing`]).
    pub const OBSERVED: [Level; 3] = [Level::Exact, Level::Close, Level::Different];

    fn from_code(code: usize) -> Level {
        match code {
            0 => Level::Exact,
            1 => Level::Close,
            2 => Level::Different,
            _ => Level::Missing,
        }
    }
}

/// A date of birth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dob {
    /// Year.
    pub year: u16,
    /// Month, 1–12.
    pub month: u8,
    /// Day, 1–31.
    pub day: u8,
}

impl Dob {
    /// Parses `YYYY-MM-DD`; `None` when it is not a plausible date.
    pub fn parse(s: &str) -> Option<Dob> {
        let s = s.trim();
        let mut parts = s.split('-');
        let year: u16 = parts.next()?.parse().ok()?;
        let month: u8 = parts.next()?.parse().ok()?;
        let day: u8 = parts.next()?.parse().ok()?;
        if parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return None;
        }
        Some(Dob { year, month, day })
    }

    fn digits(self) -> [u8; 8] {
        let s = format!("{:04}{:02}{:02}", self.year, self.month, self.day);
        let mut out = [0u8; 8];
        out.copy_from_slice(&s.as_bytes()[..8]);
        out
    }
}

impl fmt::Display for Dob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// One customer as matching sees it: an id and normalized comparison fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The customer id.
    pub id: String,
    /// Lowercase letters only.
    pub first_name: Option<String>,
    /// Lowercase letters only.
    pub last_name: Option<String>,
    /// Date of birth.
    pub date_of_birth: Option<Dob>,
    /// Uppercase letters and digits only.
    pub postcode: Option<String>,
    /// Lowercase, without a `+tag`.
    pub email_local: Option<String>,
    /// Digits only.
    pub phone_digits: Option<String>,
}

fn non_empty(s: String) -> Option<String> {
    if s.is_empty() { None } else { Some(s) }
}

/// Lowercase letters only (`"O'Brien-Smith"` → `"obriensmith"`).
pub fn normalize_name(s: &str) -> Option<String> {
    non_empty(s.chars().filter(|c| c.is_alphabetic()).flat_map(char::to_lowercase).collect())
}

/// Uppercase ASCII letters and digits only (`"sw1a 1aa"` → `"SW1A1AA"`).
pub fn normalize_postcode(s: &str) -> Option<String> {
    non_empty(s.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_uppercase()).collect())
}

/// The local part of an email (or the whole input when it has no `@`), lowercase, without a
/// `+tag` (`"Ann.Lee+shop@x.com"` → `"ann.lee"`).
pub fn normalize_email_local(s: &str) -> Option<String> {
    let local = s.trim().split('@').next().unwrap_or("");
    let local = local.split('+').next().unwrap_or("");
    non_empty(local.to_lowercase())
}

/// Digits only (`"+44 20 7946-0018"` → `"442079460018"`).
pub fn normalize_phone(s: &str) -> Option<String> {
    non_empty(s.chars().filter(char::is_ascii_digit).collect())
}

impl Record {
    /// A record from raw values, each normalized (empty or unparsable values become missing).
    pub fn normalized(
        id: impl Into<String>,
        first_name: Option<&str>,
        last_name: Option<&str>,
        date_of_birth: Option<&str>,
        postcode: Option<&str>,
        email: Option<&str>,
        phone: Option<&str>,
    ) -> Record {
        Record {
            id: id.into(),
            first_name: first_name.and_then(normalize_name),
            last_name: last_name.and_then(normalize_name),
            date_of_birth: date_of_birth.and_then(Dob::parse),
            postcode: postcode.and_then(normalize_postcode),
            email_local: email.and_then(normalize_email_local),
            phone_digits: phone.and_then(normalize_phone),
        }
    }
}

/// Jaro similarity of two sequences (1 for equal, 0 for nothing in common).
fn jaro<T: PartialEq>(a: &[T], b: &[T]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let window = (a.len().max(b.len()) / 2).saturating_sub(1);
    let mut a_matched = vec![false; a.len()];
    let mut b_matched = vec![false; b.len()];
    let mut matches = 0usize;
    for (i, x) in a.iter().enumerate() {
        let lo = i.saturating_sub(window);
        let hi = (i + window + 1).min(b.len());
        for j in lo..hi {
            if !b_matched[j] && b[j] == *x {
                a_matched[i] = true;
                b_matched[j] = true;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    let mut transpositions = 0usize;
    let mut k = 0usize;
    for (i, x) in a.iter().enumerate() {
        if a_matched[i] {
            while !b_matched[k] {
                k += 1;
            }
            if b[k] != *x {
                transpositions += 1;
            }
            k += 1;
        }
    }
    let m = matches as f64;
    (m / a.len() as f64 + m / b.len() as f64 + (m - transpositions as f64 / 2.0) / m) / 3.0
}

fn jaro_winkler_seq<T: PartialEq>(a: &[T], b: &[T]) -> f64 {
    let j = jaro(a, b);
    let prefix = a.iter().zip(b).take(4).take_while(|(x, y)| x == y).count();
    j + prefix as f64 * 0.1 * (1.0 - j)
}

/// Jaro–Winkler similarity (prefix scale 0.1, prefix up to 4), the same definition as
/// `strsim::jaro_winkler`.
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    if a.is_ascii() && b.is_ascii() {
        jaro_winkler_seq(a.as_bytes(), b.as_bytes())
    } else {
        let a: Vec<char> = a.chars().collect();
        let b: Vec<char> = b.chars().collect();
        jaro_winkler_seq(&a, &b)
    }
}

fn hamming_one(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).filter(|(x, y)| x != y).count() == 1
}

fn compare_similar(a: &str, b: &str) -> Level {
    if a == b {
        Level::Exact
    } else if jaro_winkler(a, b) >= CLOSE_SIMILARITY {
        Level::Close
    } else {
        Level::Different
    }
}

fn compare_dob(a: Dob, b: Dob) -> Level {
    if a == b {
        Level::Exact
    } else if (a.year == b.year && a.month == b.day && a.day == b.month) || hamming_one(&a.digits(), &b.digits()) {
        Level::Close
    } else {
        Level::Different
    }
}

/// Whether `b` is `a` with one character inserted, deleted, replaced, or two adjacent ones swapped.
fn one_edit(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let (short, long) = if a.len() <= b.len() { (&a, &b) } else { (&b, &a) };
    let prefix = short.iter().zip(long.iter()).take_while(|(x, y)| x == y).count();
    match long.len() - short.len() {
        0 => {
            let rest = short.len() - prefix;
            // One substitution, or an adjacent transposition.
            short[prefix + 1..] == long[prefix + 1..]
                || (rest >= 2
                    && short[prefix] == long[prefix + 1]
                    && short[prefix + 1] == long[prefix]
                    && short[prefix + 2..] == long[prefix + 2..])
        }
        1 => short[prefix..] == long[prefix + 1..],
        _ => false,
    }
}

fn compare_email_local(a: &str, b: &str) -> Level {
    if a == b {
        Level::Exact
    } else if one_edit(a, b) {
        Level::Close
    } else {
        Level::Different
    }
}

fn compare_postcode(a: &str, b: &str) -> Level {
    if a == b {
        Level::Exact
    } else if hamming_one(a.as_bytes(), b.as_bytes()) {
        Level::Close
    } else {
        Level::Different
    }
}

fn compare_phone(a: &str, b: &str) -> Level {
    if a == b {
        return Level::Exact;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let same_national = a.len() >= 9 && b.len() >= 9 && a[a.len() - 9..] == b[b.len() - 9..];
    if same_national || hamming_one(a, b) { Level::Close } else { Level::Different }
}

fn level_of<T: ?Sized>(a: Option<&T>, b: Option<&T>, f: impl Fn(&T, &T) -> Level) -> Level {
    match (a, b) {
        (Some(a), Some(b)) => f(a, b),
        _ => Level::Missing,
    }
}

/// A pair's comparison vector: one [`Level`] per [`Field`], in [`Field::ALL`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Comparison(pub [Level; FIELDS]);

impl Comparison {
    /// The level of one field.
    pub fn level(&self, field: Field) -> Level {
        self.0[field.index()]
    }

    /// The pattern's index among the 4⁶ possible vectors.
    fn pattern(&self) -> usize {
        self.0.iter().fold(0, |acc, l| (acc << 2) | *l as usize)
    }

    fn from_pattern(mut p: usize) -> Comparison {
        let mut levels = [Level::Missing; FIELDS];
        for slot in levels.iter_mut().rev() {
            *slot = Level::from_code(p & 3);
            p >>= 2;
        }
        Comparison(levels)
    }
}

/// Compares two records field by field.
pub fn compare(a: &Record, b: &Record) -> Comparison {
    Comparison([
        level_of(a.first_name.as_deref(), b.first_name.as_deref(), compare_similar),
        level_of(a.last_name.as_deref(), b.last_name.as_deref(), compare_similar),
        level_of(a.date_of_birth.as_ref(), b.date_of_birth.as_ref(), |a, b| compare_dob(*a, *b)),
        level_of(a.postcode.as_deref(), b.postcode.as_deref(), compare_postcode),
        level_of(a.email_local.as_deref(), b.email_local.as_deref(), compare_email_local),
        level_of(a.phone_digits.as_deref(), b.phone_digits.as_deref(), compare_phone),
    ])
}

/// Settings of a matching run.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchConfig {
    /// Pairs scoring at least this are suggested for review.
    pub review_threshold: f64,
    /// Pairs scoring at least this may be merged without review (must be ≥ the review threshold).
    pub auto_merge_threshold: f64,
    /// A block with more records than this is skipped (and reported).
    pub block_cap: usize,
    /// [`all_pairs`] refuses more records than this.
    pub all_pairs_limit: usize,
    /// EM stops after this many iterations even when not converged.
    pub max_em_iterations: u32,
    /// EM has converged when no probability moves by more than this in an iteration.
    pub em_tolerance: f64,
    /// How many random record pairs EM sees besides the blocked candidates (see [`find_matches`]).
    pub u_sample_pairs: usize,
    /// Seeds the random pair sample.
    pub seed: u64,
}

impl Default for MatchConfig {
    fn default() -> Self {
        MatchConfig {
            review_threshold: 12.0,
            auto_merge_threshold: 30.0,
            block_cap: 1_000,
            all_pairs_limit: 10_000,
            max_em_iterations: 500,
            em_tolerance: 1e-7,
            u_sample_pairs: 200_000,
            seed: 0x5EED,
        }
    }
}

/// Why a run could not be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchingError {
    /// All pairs of this many records is too many to compare.
    #[error("comparing all pairs of {records} records is refused above {limit} records; use blocking")]
    TooManyForAllPairs {
        /// Records given.
        records: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The thresholds are inconsistent.
    #[error("the auto-merge threshold ({auto_merge}) is below the review threshold ({review})")]
    Thresholds {
        /// The review threshold.
        review: String,
        /// The auto-merge threshold.
        auto_merge: String,
    },
}

/// Which blocking key a block was formed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// Same postcode and first letter of the last name.
    PostcodeLastInitial,
    /// Same date of birth.
    DateOfBirth,
    /// Same last four phone digits.
    PhoneLast4,
    /// Same email local part.
    EmailLocal,
}

/// A block that was not expanded because it had more records than the cap. The key's value is
/// not included (it is personal data); the first record ids let an operator find it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedBlock {
    /// The blocking key.
    pub kind: BlockKind,
    /// How many records shared the key.
    pub size: usize,
    /// The ids of up to three records in it.
    pub sample_ids: Vec<String>,
}

/// The candidate pairs of a blocking pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocking {
    /// Pairs of record indexes `(i, j)` with `i < j`, sorted, without duplicates.
    pub pairs: Vec<(u32, u32)>,
    /// Blocks with at least two records that were expanded.
    pub blocks: usize,
    /// Blocks over the cap, skipped.
    pub skipped: Vec<SkippedBlock>,
}

fn block_keys(r: &Record) -> impl Iterator<Item = (BlockKind, String)> + '_ {
    let postcode = match (&r.postcode, r.last_name.as_deref().and_then(|n| n.chars().next())) {
        (Some(p), Some(c)) => Some((BlockKind::PostcodeLastInitial, format!("{p}|{c}"))),
        _ => None,
    };
    let dob = r.date_of_birth.map(|d| (BlockKind::DateOfBirth, d.to_string()));
    let phone = r
        .phone_digits
        .as_deref()
        .filter(|p| p.len() >= 4)
        .map(|p| (BlockKind::PhoneLast4, p[p.len() - 4..].to_string()));
    let email = r.email_local.clone().map(|e| (BlockKind::EmailLocal, e));
    [postcode, dob, phone, email].into_iter().flatten()
}

/// Candidate pairs: every pair of records sharing at least one blocking key, from blocks of at
/// most `block_cap` records. Larger blocks are skipped and listed in [`Blocking::skipped`].
pub fn candidate_pairs(records: &[Record], block_cap: usize) -> Blocking {
    let mut blocks: BTreeMap<(BlockKind, String), Vec<u32>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        for key in block_keys(r) {
            blocks.entry(key).or_default().push(i as u32);
        }
    }
    let mut pairs = Vec::new();
    let mut expanded = 0;
    let mut skipped = Vec::new();
    for ((kind, _), members) in blocks {
        if members.len() < 2 {
            continue;
        }
        if members.len() > block_cap {
            skipped.push(SkippedBlock {
                kind,
                size: members.len(),
                sample_ids: members.iter().take(3).map(|&i| records[i as usize].id.clone()).collect(),
            });
            continue;
        }
        expanded += 1;
        for (x, &i) in members.iter().enumerate() {
            for &j in &members[x + 1..] {
                pairs.push((i, j));
            }
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    skipped.sort_by(|a, b| b.size.cmp(&a.size).then(a.kind.cmp(&b.kind)));
    Blocking { pairs, blocks: expanded, skipped }
}

/// The fitted model: m (given a match) and u (given a non-match) probabilities of each observed
/// level of each field, and the match proportion among the compared pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    /// `m[field][level]`, levels in [`Level::OBSERVED`] order.
    pub m: [[f64; 3]; FIELDS],
    /// `u[field][level]`, levels in [`Level::OBSERVED`] order.
    pub u: [[f64; 3]; FIELDS],
    /// The share of matches EM estimated over the pairs it saw (candidates and random sample).
    pub prior: f64,
    /// The estimated share of matches among the compared (candidate) pairs: the sum of their
    /// posterior match probabilities over their number.
    pub candidate_prior: f64,
    /// EM iterations run.
    pub iterations: u32,
    /// Whether EM converged before the iteration cap.
    pub converged: bool,
}

impl Weights {
    /// The weight log2(m/u) of a field at a level (0 for [`Level::Missing`]).
    pub fn weight(&self, field: Field, level: Level) -> f64 {
        match level {
            Level::Missing => 0.0,
            l => {
                let (f, l) = (field.index(), l as usize);
                (self.m[f][l] / self.u[f][l]).log2()
            }
        }
    }

    /// A comparison's score: the sum of its fields' weights.
    pub fn score(&self, c: &Comparison) -> f64 {
        Field::ALL.iter().map(|&f| self.weight(f, c.level(f))).sum()
    }

    /// The posterior probability that a compared pair with this score is a match, given
    /// [`Weights::candidate_prior`].
    pub fn match_probability(&self, score: f64) -> f64 {
        let p = self.candidate_prior.clamp(P_MIN, 1.0 - P_MIN);
        let log_odds = score + (p / (1.0 - p)).log2();
        1.0 / (1.0 + (-log_odds).exp2())
    }
}

const P_MIN: f64 = 1e-6;

fn normalize3(v: [f64; 3]) -> [f64; 3] {
    let sum: f64 = v.iter().sum();
    let clamped = v.map(|x| (x / sum).max(P_MIN));
    let sum: f64 = clamped.iter().sum();
    clamped.map(|x| x / sum)
}

/// Fits the Fellegi–Sunter model by EM over the counts of comparison patterns (index = pattern,
/// see [`Comparison`]; `counts.len()` must be 4⁶). The u probabilities start at the observed
/// level frequencies (most compared pairs are non-matches), the m probabilities at 0.9 exact /
/// 0.05 close / 0.05 different, the prior at 1%.
fn estimate_counts(counts: &[u64], config: &MatchConfig) -> Weights {
    let patterns: Vec<(Comparison, f64)> = counts
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(p, &n)| (Comparison::from_pattern(p), n as f64))
        .collect();
    let total: f64 = patterns.iter().map(|(_, n)| n).sum();

    let mut freq = [[0.0f64; 3]; FIELDS];
    for (c, n) in &patterns {
        for (f, l) in c.0.iter().enumerate() {
            if *l != Level::Missing {
                freq[f][*l as usize] += n;
            }
        }
    }
    let mut u = [[0.0; 3]; FIELDS];
    for f in 0..FIELDS {
        u[f] = if freq[f].iter().sum::<f64>() > 0.0 { normalize3(freq[f]) } else { [1.0 / 3.0; 3] };
    }
    let mut m = [[0.9, 0.05, 0.05]; FIELDS];
    let mut prior = 0.01;
    let mut iterations = 0;
    let mut converged = false;
    if total == 0.0 {
        return Weights { m, u, prior, candidate_prior: prior, iterations, converged: true };
    }

    while iterations < config.max_em_iterations {
        iterations += 1;
        let mut m_acc = [[0.0f64; 3]; FIELDS];
        let mut u_acc = [[0.0f64; 3]; FIELDS];
        let mut g_sum = 0.0;
        for (c, n) in &patterns {
            // E-step in log space for stability.
            let mut log_m = prior.ln();
            let mut log_u = (1.0 - prior).ln();
            for (f, l) in c.0.iter().enumerate() {
                if *l != Level::Missing {
                    log_m += m[f][*l as usize].ln();
                    log_u += u[f][*l as usize].ln();
                }
            }
            let g = 1.0 / (1.0 + (log_u - log_m).exp());
            g_sum += g * n;
            for (f, l) in c.0.iter().enumerate() {
                if *l != Level::Missing {
                    m_acc[f][*l as usize] += g * n;
                    u_acc[f][*l as usize] += (1.0 - g) * n;
                }
            }
        }
        let new_prior = (g_sum / total).clamp(P_MIN, 1.0 - P_MIN);
        let mut delta = (new_prior - prior).abs();
        for f in 0..FIELDS {
            let new_m = if m_acc[f].iter().sum::<f64>() > 0.0 { normalize3(m_acc[f]) } else { m[f] };
            let new_u = if u_acc[f].iter().sum::<f64>() > 0.0 { normalize3(u_acc[f]) } else { u[f] };
            for l in 0..3 {
                delta = delta.max((new_m[l] - m[f][l]).abs()).max((new_u[l] - u[f][l]).abs());
            }
            m[f] = new_m;
            u[f] = new_u;
        }
        prior = new_prior;
        if delta < config.em_tolerance {
            converged = true;
            break;
        }
    }
    Weights { m, u, prior, candidate_prior: prior, iterations, converged }
}

fn posterior(w: &Weights, c: &Comparison) -> f64 {
    let mut log_m = w.prior.ln();
    let mut log_u = (1.0 - w.prior).ln();
    for (f, l) in c.0.iter().enumerate() {
        if *l != Level::Missing {
            log_m += w.m[f][*l as usize].ln();
            log_u += w.u[f][*l as usize].ln();
        }
    }
    1.0 / (1.0 + (log_u - log_m).exp())
}

/// Fits the model by EM to a set of comparison vectors.
pub fn estimate<'a>(comparisons: impl IntoIterator<Item = &'a Comparison>, config: &MatchConfig) -> Weights {
    let mut counts = vec![0u64; PATTERNS];
    for c in comparisons {
        counts[c.pattern()] += 1;
    }
    estimate_counts(&counts, config)
}

/// What to do with a suggested pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Above the auto-merge threshold.
    AutoMerge,
    /// Between the review and the auto-merge thresholds: a person decides.
    Review,
}

/// One field's part in a suggestion's score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FieldEvidence {
    /// The field.
    pub field: Field,
    /// How the two records compare on it.
    pub level: Level,
    /// Its weight in the score.
    pub weight: f64,
}

/// A suggested merge.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestion {
    /// One customer id (the smaller record index of the pair).
    pub a: String,
    /// The other customer id.
    pub b: String,
    /// The sum of the field weights.
    pub score: f64,
    /// The posterior match probability under the fitted prior.
    pub probability: f64,
    /// Auto-merge or review.
    pub decision: Decision,
    /// The explanation: each field's level and weight.
    pub evidence: Vec<FieldEvidence>,
}

/// Figures of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatchStats {
    /// Records given.
    pub records: usize,
    /// Pairs compared.
    pub pairs_compared: usize,
    /// Blocks expanded (0 for all pairs).
    pub blocks: usize,
    /// Blocks skipped for being over the cap.
    pub skipped_blocks: Vec<SkippedBlock>,
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchRun {
    /// Pairs at or above the review threshold, best first.
    pub suggestions: Vec<Suggestion>,
    /// The fitted model.
    pub weights: Weights,
    /// What was compared.
    pub stats: MatchStats,
}

fn check_thresholds(config: &MatchConfig) -> Result<(), MatchingError> {
    if config.auto_merge_threshold < config.review_threshold || config.review_threshold.is_nan() {
        return Err(MatchingError::Thresholds {
            review: config.review_threshold.to_string(),
            auto_merge: config.auto_merge_threshold.to_string(),
        });
    }
    Ok(())
}

/// The pattern counts of `sample` random pairs of distinct records (seeded).
fn sample_counts(records: &[Record], sample: usize, seed: u64) -> Vec<u64> {
    use rand::{Rng, SeedableRng};
    let mut counts = vec![0u64; PATTERNS];
    let n = records.len();
    if n < 2 {
        return counts;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for _ in 0..sample {
        let i = rng.gen_range(0..n);
        let mut j = rng.gen_range(0..n - 1);
        if j >= i {
            j += 1;
        }
        counts[compare(&records[i], &records[j]).pattern()] += 1;
    }
    counts
}

fn run_pairs(
    records: &[Record],
    pairs: &[(u32, u32)],
    sample: usize,
    config: &MatchConfig,
) -> (Vec<Suggestion>, Weights) {
    let compared: Vec<u16> =
        pairs.iter().map(|&(i, j)| compare(&records[i as usize], &records[j as usize]).pattern() as u16).collect();
    let mut counts = vec![0u64; PATTERNS];
    for &p in &compared {
        counts[p as usize] += 1;
    }
    let mut em_counts = sample_counts(records, sample, config.seed);
    for (e, c) in em_counts.iter_mut().zip(&counts) {
        *e += c;
    }
    let mut weights = estimate_counts(&em_counts, config);
    if !pairs.is_empty() {
        let expected: f64 = (0..PATTERNS)
            .filter(|&p| counts[p] > 0)
            .map(|p| counts[p] as f64 * posterior(&weights, &Comparison::from_pattern(p)))
            .sum();
        weights.candidate_prior = expected / pairs.len() as f64;
    }
    let scores: Vec<f64> =
        (0..PATTERNS).map(|p| if counts[p] > 0 { weights.score(&Comparison::from_pattern(p)) } else { 0.0 }).collect();
    let mut suggestions: Vec<Suggestion> = pairs
        .iter()
        .zip(&compared)
        .filter(|(_, p)| scores[**p as usize] >= config.review_threshold)
        .map(|(&(i, j), &p)| {
            let score = scores[p as usize];
            let c = Comparison::from_pattern(p as usize);
            Suggestion {
                a: records[i as usize].id.clone(),
                b: records[j as usize].id.clone(),
                score,
                probability: weights.match_probability(score),
                decision: if score >= config.auto_merge_threshold { Decision::AutoMerge } else { Decision::Review },
                evidence: Field::ALL
                    .iter()
                    .map(|&field| FieldEvidence {
                        field,
                        level: c.level(field),
                        weight: weights.weight(field, c.level(field)),
                    })
                    .collect(),
            }
        })
        .collect();
    suggestions.sort_by(|x, y| y.score.total_cmp(&x.score).then_with(|| x.a.cmp(&y.a)).then_with(|| x.b.cmp(&y.b)));
    (suggestions, weights)
}

/// Blocks, compares, fits the weights by EM and returns the merge suggestions.
///
/// Blocking only keeps pairs that agree on a blocking key, so among the candidates most
/// non-matches share a postcode (or a date of birth): u estimated from them alone would make
/// agreeing on a blocking field look uninformative, or even count against a match. EM therefore
/// sees, besides the candidates, [`MatchConfig::u_sample_pairs`] seeded random pairs of records
/// (almost all non-matches, agreeing at population rates); only candidates are scored and
/// suggested.
pub fn find_matches(records: &[Record], config: &MatchConfig) -> Result<MatchRun, MatchingError> {
    check_thresholds(config)?;
    let blocking = candidate_pairs(records, config.block_cap);
    let (suggestions, weights) = run_pairs(records, &blocking.pairs, config.u_sample_pairs, config);
    Ok(MatchRun {
        suggestions,
        weights,
        stats: MatchStats {
            records: records.len(),
            pairs_compared: blocking.pairs.len(),
            blocks: blocking.blocks,
            skipped_blocks: blocking.skipped,
        },
    })
}

/// The same as [`find_matches`] over every pair (n·(n−1)/2 comparisons), for small sets and for
/// measuring what blocking misses; refused above [`MatchConfig::all_pairs_limit`] records.
pub fn all_pairs(records: &[Record], config: &MatchConfig) -> Result<MatchRun, MatchingError> {
    check_thresholds(config)?;
    if records.len() > config.all_pairs_limit {
        return Err(MatchingError::TooManyForAllPairs { records: records.len(), limit: config.all_pairs_limit });
    }
    let n = records.len() as u32;
    let pairs: Vec<(u32, u32)> = (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))).collect();
    let (suggestions, weights) = run_pairs(records, &pairs, 0, config);
    Ok(MatchRun {
        suggestions,
        weights,
        stats: MatchStats {
            records: records.len(),
            pairs_compared: pairs.len(),
            blocks: 0,
            skipped_blocks: Vec::new(),
        },
    })
}

/// A seeded synthetic population with known duplicates, for tests and benchmarks.
pub mod synthetic {
    use std::collections::BTreeSet;

    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    use super::{Dob, MatchRun, Record};

    const FIRST: &[&str] = &[
        "emma",
        "olivia",
        "sophia",
        "isabella",
        "charlotte",
        "amelia",
        "mia",
        "harper",
        "evelyn",
        "abigail",
        "emily",
        "elizabeth",
        "sofia",
        "ella",
        "madison",
        "scarlett",
        "victoria",
        "aria",
        "grace",
        "chloe",
        "camila",
        "penelope",
        "riley",
        "layla",
        "lillian",
        "nora",
        "zoey",
        "mila",
        "aubrey",
        "hannah",
        "lily",
        "addison",
        "eleanor",
        "natalie",
        "luna",
        "savannah",
        "brooklyn",
        "leah",
        "zoe",
        "stella",
        "hazel",
        "ellie",
        "paisley",
        "audrey",
        "skylar",
        "violet",
        "claire",
        "bella",
        "aurora",
        "lucy",
        "anna",
        "samantha",
        "caroline",
        "genesis",
        "aaliyah",
        "kennedy",
        "kinsley",
        "allison",
        "maya",
        "sarah",
        "madelyn",
        "adeline",
        "alexa",
        "ariana",
        "elena",
        "gabriella",
        "naomi",
        "alice",
        "sadie",
        "hailey",
        "eva",
        "emilia",
        "autumn",
        "quinn",
        "nevaeh",
        "piper",
        "ruby",
        "serenity",
        "willow",
        "everly",
        "cora",
        "kaylee",
        "lydia",
        "aubree",
        "arianna",
        "eliana",
        "peyton",
        "melanie",
        "gianna",
        "isabelle",
        "julia",
        "valentina",
        "nova",
        "clara",
        "vivian",
        "reagan",
        "mackenzie",
        "madeline",
        "liam",
        "noah",
        "william",
        "james",
        "oliver",
        "benjamin",
        "elijah",
        "lucas",
        "mason",
        "logan",
        "alexander",
        "ethan",
        "jacob",
        "michael",
        "daniel",
        "henry",
        "jackson",
        "sebastian",
        "aiden",
        "matthew",
        "samuel",
        "david",
        "joseph",
        "carter",
        "owen",
        "wyatt",
        "john",
        "jack",
        "luke",
        "jayden",
        "dylan",
        "grayson",
        "levi",
        "isaac",
        "gabriel",
        "julian",
        "mateo",
        "anthony",
        "jaxon",
        "lincoln",
        "joshua",
        "christopher",
        "andrew",
        "theodore",
        "caleb",
        "ryan",
        "asher",
        "nathan",
        "thomas",
    ];
    const LAST: &[&str] = &[
        "smith",
        "johnson",
        "williams",
        "brown",
        "jones",
        "garcia",
        "miller",
        "davis",
        "rodriguez",
        "martinez",
        "hernandez",
        "lopez",
        "gonzalez",
        "wilson",
        "anderson",
        "thomas",
        "taylor",
        "moore",
        "jackson",
        "martin",
        "lee",
        "perez",
        "thompson",
        "white",
        "harris",
        "sanchez",
        "clark",
        "ramirez",
        "lewis",
        "robinson",
        "walker",
        "young",
        "allen",
        "king",
        "wright",
        "scott",
        "torres",
        "nguyen",
        "hill",
        "flores",
        "green",
        "adams",
        "nelson",
        "baker",
        "hall",
        "rivera",
        "campbell",
        "mitchell",
        "carter",
        "roberts",
        "gomez",
        "phillips",
        "evans",
        "turner",
        "diaz",
        "parker",
        "cruz",
        "edwards",
        "collins",
        "reyes",
        "stewart",
        "morris",
        "morales",
        "murphy",
        "cook",
        "rogers",
        "gutierrez",
        "ortiz",
        "morgan",
        "cooper",
        "peterson",
        "bailey",
        "reed",
        "kelly",
        "howard",
        "ramos",
        "kim",
        "cox",
        "ward",
        "richardson",
        "watson",
        "brooks",
        "chavez",
        "wood",
        "james",
        "bennett",
        "gray",
        "mendoza",
        "ruiz",
        "hughes",
        "price",
        "alvarez",
        "castillo",
        "sanders",
        "patel",
        "myers",
        "long",
        "ross",
        "foster",
        "jimenez",
        "powell",
        "jenkins",
        "perry",
        "russell",
        "sullivan",
        "bell",
        "coleman",
        "butler",
        "henderson",
        "barnes",
        "gonzales",
        "fisher",
        "vasquez",
        "simmons",
        "romero",
        "jordan",
        "patterson",
        "alexander",
        "hamilton",
        "graham",
        "reynolds",
        "griffin",
        "wallace",
        "moreno",
        "west",
        "cole",
        "hayes",
        "bryant",
        "herrera",
        "gibson",
        "ellis",
        "tran",
        "medina",
        "aguilar",
        "stevens",
        "murray",
        "ford",
        "castro",
        "marshall",
        "owens",
        "harrison",
        "fernandez",
        "mcdonald",
        "woods",
        "washington",
        "kennedy",
        "wells",
        "vargas",
        "henry",
        "chen",
        "freeman",
        "webb",
        "tucker",
        "guzman",
        "burns",
        "crawford",
        "olson",
        "simpson",
        "porter",
        "hunter",
        "gordon",
        "mendez",
        "silva",
        "shaw",
        "snyder",
        "mason",
        "dixon",
        "munoz",
        "hunt",
        "hicks",
        "holmes",
        "palmer",
        "wagner",
        "black",
        "robertson",
        "boyd",
        "rose",
        "stone",
        "salazar",
        "fox",
        "warren",
        "mills",
        "meyer",
        "rice",
        "schmidt",
        "garza",
        "daniels",
        "ferguson",
        "nichols",
        "stephens",
        "soto",
        "weaver",
        "ryan",
        "gardner",
        "payne",
        "grant",
        "dunn",
        "kelley",
        "spencer",
        "hawkins",
        "arnold",
        "pierce",
        "vazquez",
        "hansen",
        "peters",
    ];

    /// A generated population: the records (duplicates interleaved) and the true duplicate pairs.
    #[derive(Debug, Clone)]
    pub struct Population {
        /// The records, ids `p0`, `p1`, ...
        pub records: Vec<Record>,
        /// The id pairs `(smaller, larger)` of records that are the same person.
        pub true_pairs: BTreeSet<(String, String)>,
    }

    /// Recall and precision of suggestions at a threshold.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct Quality {
        /// The score threshold.
        pub threshold: f64,
        /// Suggested pairs at or above it.
        pub suggested: usize,
        /// Of which true duplicates.
        pub true_positives: usize,
        /// True positives over all true pairs.
        pub recall: f64,
        /// True positives over suggested pairs.
        pub precision: f64,
    }

    fn key(a: &str, b: &str) -> (String, String) {
        if a <= b { (a.to_string(), b.to_string()) } else { (b.to_string(), a.to_string()) }
    }

    impl Population {
        /// Recall and precision of a run's suggestions scoring at least `threshold`.
        pub fn quality(&self, run: &MatchRun, threshold: f64) -> Quality {
            let suggested: Vec<_> = run.suggestions.iter().filter(|s| s.score >= threshold).collect();
            let tp = suggested.iter().filter(|s| self.true_pairs.contains(&key(&s.a, &s.b))).count();
            Quality {
                threshold,
                suggested: suggested.len(),
                true_positives: tp,
                recall: if self.true_pairs.is_empty() { 1.0 } else { tp as f64 / self.true_pairs.len() as f64 },
                precision: if suggested.is_empty() { 1.0 } else { tp as f64 / suggested.len() as f64 },
            }
        }

        /// Whether two ids are a true duplicate pair.
        pub fn is_duplicate(&self, a: &str, b: &str) -> bool {
            self.true_pairs.contains(&key(a, b))
        }
    }

    fn typo(rng: &mut StdRng, s: &str) -> String {
        let mut c: Vec<char> = s.chars().collect();
        if c.len() < 3 {
            return s.to_string();
        }
        // Never the first letter: keeps the typo a typo rather than another name.
        let i = rng.gen_range(1..c.len());
        match rng.gen_range(0..3) {
            0 if i + 1 < c.len() => c.swap(i, i + 1),
            1 => {
                c.remove(i);
            }
            _ => c[i] = (b'a' + rng.gen_range(0..26u8)) as char,
        }
        c.into_iter().collect()
    }

    fn person(rng: &mut StdRng, postcodes: &[String]) -> Record {
        let first = *FIRST.choose(rng).expect("names");
        let last = *LAST.choose(rng).expect("names");
        let dob = Dob { year: rng.gen_range(1950..2006), month: rng.gen_range(1..=12), day: rng.gen_range(1..=28) };
        let email = match rng.gen_range(0..4) {
            0 => format!("{first}.{last}{}", rng.gen_range(1..1000)),
            1 => format!("{}{last}{}", &first[..1], rng.gen_range(1..10_000)),
            2 => format!("{first}{}", rng.gen_range(1..100_000)),
            _ => format!("{last}.{first}{}", rng.gen_range(1..1000)),
        };
        let phone = format!("447{:09}", rng.gen_range(0..1_000_000_000u32));
        Record {
            id: String::new(),
            first_name: Some(first.to_string()),
            last_name: Some(last.to_string()),
            date_of_birth: Some(dob),
            postcode: Some(postcodes.choose(rng).expect("postcodes").clone()),
            email_local: Some(email),
            phone_digits: if rng.gen_bool(0.9) { Some(phone) } else { None },
        }
    }

    /// A duplicate of `r` with one to three realistic differences.
    fn duplicate(rng: &mut StdRng, r: &Record, postcodes: &[String]) -> Record {
        let mut d = r.clone();
        let changes = rng.gen_range(1..=3);
        for _ in 0..changes {
            match rng.gen_range(0..8) {
                0 => d.first_name = d.first_name.as_deref().map(|s| typo(rng, s)),
                1 => d.last_name = d.last_name.as_deref().map(|s| typo(rng, s)),
                2 => {
                    d.date_of_birth = d.date_of_birth.map(|b| {
                        if b.day <= 12 && b.day != b.month {
                            Dob { year: b.year, month: b.day, day: b.month }
                        } else {
                            Dob { year: b.year, month: b.month, day: if b.day >= 20 { b.day - 10 } else { b.day + 10 } }
                        }
                    })
                }
                3 => {
                    d.email_local =
                        Some(format!("{}{}", d.first_name.clone().unwrap_or_default(), rng.gen_range(1..100_000)))
                }
                4 => d.email_local = None,
                5 => {
                    d.phone_digits = d.phone_digits.as_deref().map(|p| {
                        let mut b = p.as_bytes().to_vec();
                        let i = rng.gen_range(3..b.len());
                        b[i] = b'0' + (b[i] - b'0' + rng.gen_range(1..10u8)) % 10;
                        String::from_utf8(b).expect("digits")
                    })
                }
                6 => d.phone_digits = None,
                _ => d.postcode = Some(postcodes.choose(rng).expect("postcodes").clone()),
            }
        }
        d
    }

    /// `n` records of which about `duplicate_share` are duplicates of another record (the same
    /// seed gives the same population).
    pub fn population(n: usize, duplicate_share: f64, seed: u64) -> Population {
        let mut rng = StdRng::seed_from_u64(seed);
        let postcodes: Vec<String> = (0..(n / 40).max(20))
            .map(|_| {
                let area = (b'A' + rng.gen_range(0..26u8)) as char;
                let letter = (b'A' + rng.gen_range(0..26u8)) as char;
                format!("{area}{}{}{letter}{}", rng.gen_range(1..20), rng.gen_range(0..10), rng.gen_range(10..100))
            })
            .collect();
        let mut records: Vec<Record> = Vec::with_capacity(n);
        let mut true_pairs = BTreeSet::new();
        let mut origin: Vec<usize> = Vec::with_capacity(n);
        let mut copies: Vec<Vec<usize>> = Vec::with_capacity(n);
        while records.len() < n {
            let i = records.len();
            if i > 10 && rng.gen_bool(duplicate_share) {
                // Duplicate an original (not a duplicate) so each duplicate pairs with one record.
                let mut j = rng.gen_range(0..i);
                while origin[j] != j {
                    j = origin[j];
                }
                let mut d = duplicate(&mut rng, &records[j], &postcodes);
                d.id = format!("p{i}");
                true_pairs.insert(key(&records[j].id, &d.id));
                // Other duplicates of the same original are the same person too.
                for &k in &copies[j] {
                    true_pairs.insert(key(&records[k].id, &d.id));
                }
                copies[j].push(i);
                records.push(d);
                origin.push(j);
                copies.push(Vec::new());
            } else {
                let mut r = person(&mut rng, &postcodes);
                r.id = format!("p{i}");
                records.push(r);
                origin.push(i);
                copies.push(Vec::new());
            }
        }
        Population { records, true_pairs }
    }
}
