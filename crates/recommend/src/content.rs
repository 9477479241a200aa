//! Content-based scoring for a customer the interaction data does not know: products are scored
//! from what the customer says in the skin quiz (skin type, concerns, sensitive skin) against what
//! the knowledge base says about each product (the actives and the concerns they address with
//! their evidence grade, fragrance-free, non-comedogenic) and what the product declares in its
//! highlights (`Best for Dry, Combo Skin`). Every point of a score has a reason
//! ([`ContentModel::explain`]), so an explanation can name it.
//!
//! Also here: [`SegmentPopularity`] (popularity counted per skin type, falling back to everyone's
//! when a skin type has too little data), the catalog reader the content model is built from
//! ([`read_catalog`]), and [`cold_start`], the offline protocol that measures both on reviewers
//! the models never saw.
//!
//! It does not decide what is safe: the safety layer ([`crate::safety`]) runs first and may
//! remove anything scored here.
//!
//! # The score
//! For item `i` and a profile: Σ over the profile's concerns of the evidence weight of the
//! strongest active of `i` for that concern (strong 1.0, moderate 0.6, limited 0.3, per
//! [`evidence_weight`]), plus [`SKIN_TYPE_WEIGHT`] when `i` is declared for the customer's skin
//! type, plus [`GENTLE_WEIGHT`] when the customer is sensitive and `i` is fragrance-free, plus
//! [`GENTLE_WEIGHT`] when the skin is oily or acne is a concern and `i` is non-comedogenic.
//! Products outside skin care (a category that does not start with `Skincare`) score 0.

pub mod cold_start;

use std::collections::BTreeMap;
use std::path::Path;

use dermis_catalog::{Product, ProductStatus, import};
use dermis_ingredients::kb::Evidence;
use dermis_ingredients::{KnowledgeBase, ProductFacts};

use crate::RecommendError;

/// The customer's skin types the catalog's highlights name (wire names).
pub const SKIN_TYPES: [&str; 5] = dermis_catalog::facts::SKIN_TYPES;

/// The concerns a profile can name: the knowledge base's vocabulary.
pub const CONCERNS: [&str; 8] = dermis_ingredients::kb::CONCERNS;

/// Points for a product declared for the customer's skin type.
pub const SKIN_TYPE_WEIGHT: f32 = 1.0;

/// Points for a fragrance-free product and sensitive skin, and for a non-comedogenic one and oily
/// or acne-prone skin.
pub const GENTLE_WEIGHT: f32 = 0.5;

/// The points an active's evidence grade gives a concern it addresses.
pub fn evidence_weight(e: Evidence) -> f32 {
    match e {
        Evidence::Strong => 1.0,
        Evidence::Moderate => 0.6,
        Evidence::Limited => 0.3,
    }
}

/// What the content model reads about one product.
#[derive(Debug, Clone, Default)]
pub struct ContentItem {
    /// The catalog's derived facts (`None`: nothing known, only the highlights count).
    pub facts: Option<ProductFacts>,
    /// Merchandising highlights (`Best for Dry, Combo, Normal Skin`).
    pub highlights: Vec<String>,
    /// Category path (`Skincare/Treatments/Face Serums`); `None` is taken as skin care.
    pub category: Option<String>,
}

impl ContentItem {
    /// From a catalog product (its stored facts, or facts derived now when it has none).
    pub fn from_product(p: &Product, kb: &KnowledgeBase) -> Self {
        let facts = p.attributes.clone().unwrap_or_else(|| dermis_catalog::facts::compute(kb, p));
        ContentItem { facts: Some(facts), highlights: p.highlights.clone(), category: p.category.clone() }
    }
}

/// A new customer's quiz answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentProfile {
    /// Skin type, wire name: dry, oily, combination, normal, sensitive.
    pub skin_type: Option<String>,
    /// Concerns in the knowledge base's vocabulary ([`CONCERNS`]).
    pub concerns: Vec<String>,
    /// Sensitive skin (also true of the `sensitive` skin type).
    pub sensitive: bool,
}

impl ContentProfile {
    /// A profile from quiz answers, checking the skin type and the concerns against the
    /// vocabularies (lower case, trimmed).
    pub fn new<S: AsRef<str>>(
        skin_type: Option<&str>,
        concerns: &[S],
        sensitive: bool,
    ) -> Result<Self, RecommendError> {
        let skin_type = skin_type.map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty());
        if let Some(s) = &skin_type
            && !SKIN_TYPES.contains(&s.as_str())
        {
            return Err(RecommendError::BadOption {
                option: "skin type",
                reason: format!("{s:?}: expected one of {}", SKIN_TYPES.join(", ")),
            });
        }
        let mut out = Vec::new();
        for c in concerns {
            let c = c.as_ref().trim().to_ascii_lowercase();
            if !CONCERNS.contains(&c.as_str()) {
                return Err(RecommendError::BadOption {
                    option: "concern",
                    reason: format!("{c:?}: expected one of {}", CONCERNS.join(", ")),
                });
            }
            if !out.contains(&c) {
                out.push(c);
            }
        }
        Ok(ContentProfile { skin_type, concerns: out, sensitive })
    }

    fn is_sensitive(&self) -> bool {
        self.sensitive || self.skin_type.as_deref() == Some("sensitive")
    }

    fn acne_prone(&self) -> bool {
        self.skin_type.as_deref() == Some("oily") || self.concerns.iter().any(|c| c == "acne")
    }
}

/// Why an item scored what it did for a profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentMatch {
    /// (active's INCI name as the knowledge base writes it, the customer's concern it addresses),
    /// strongest evidence first.
    pub actives: Vec<(String, String)>,
    /// Declared for the customer's skin type (its highlights say "Best for ... Skin").
    pub skin_type: bool,
    /// Fragrance-free, and the customer is sensitive.
    pub fragrance_free: bool,
    /// Non-comedogenic, and the skin is oily or acne is a concern.
    pub non_comedogenic: bool,
}

impl ContentMatch {
    /// Whether anything matched.
    pub fn is_empty(&self) -> bool {
        self.actives.is_empty() && !self.skin_type && !self.fragrance_free && !self.non_comedogenic
    }
}

/// One item as the model keeps it.
#[derive(Debug, Clone, Default)]
struct Entry {
    skincare: bool,
    /// Bit `t` set when declared for `SKIN_TYPES[t]`.
    skin_types: u8,
    fragrance_free: bool,
    non_comedogenic: bool,
    /// Per concern of [`CONCERNS`], the evidence weight (0 when none).
    concern: [f32; CONCERNS.len()],
    /// (INCI name, concern index, evidence), strongest first.
    actives: Vec<(String, usize, Evidence)>,
}

/// The content model of one catalog: built once, immutable, cheap to score (a pass over the
/// items). Item indices are positions in the slice it was built from.
#[derive(Debug, Clone)]
pub struct ContentModel {
    items: Vec<Entry>,
}

fn skin_index(s: &str) -> Option<usize> {
    SKIN_TYPES.iter().position(|t| *t == s)
}

fn concern_index(c: &str) -> Option<usize> {
    CONCERNS.iter().position(|x| *x == c)
}

impl ContentModel {
    /// Builds the model of `items` with the bundled knowledge base (for the actives' names).
    pub fn new(items: &[ContentItem]) -> Self {
        let kb = KnowledgeBase::bundled();
        let items = items
            .iter()
            .map(|it| {
                let mut e = Entry {
                    skincare: it.category.as_deref().is_none_or(|c| c.trim_start().starts_with("Skincare")),
                    ..Entry::default()
                };
                for t in dermis_catalog::facts::skin_types(&it.highlights) {
                    if let Some(i) = skin_index(t) {
                        e.skin_types |= 1 << i;
                    }
                }
                if let Some(f) = &it.facts {
                    e.fragrance_free = f.fragrance_free == Some(true);
                    e.non_comedogenic = f.non_comedogenic == Some(true);
                    for c in &f.concerns {
                        if let Some(ci) = concern_index(&c.concern) {
                            e.concern[ci] = e.concern[ci].max(evidence_weight(c.evidence));
                        }
                    }
                    for id in &f.actives {
                        let Some(g) = kb.get(id) else { continue };
                        for c in &g.concerns {
                            if let Some(ci) = concern_index(&c.concern) {
                                e.actives.push((g.inci.clone(), ci, c.evidence));
                            }
                        }
                    }
                    e.actives.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
                    e.actives.dedup();
                }
                e
            })
            .collect();
        ContentModel { items }
    }

    /// The number of items.
    pub fn n_items(&self) -> usize {
        self.items.len()
    }

    /// Scores every item (`out.len() == n_items()`), higher is better; 0 when nothing matches.
    pub fn score(&self, profile: &ContentProfile, out: &mut [f32]) {
        assert_eq!(out.len(), self.items.len(), "one score per item");
        let concerns: Vec<usize> = profile.concerns.iter().filter_map(|c| concern_index(c)).collect();
        let skin = profile.skin_type.as_deref().and_then(skin_index);
        let (sensitive, acne) = (profile.is_sensitive(), profile.acne_prone());
        for (e, o) in self.items.iter().zip(out.iter_mut()) {
            if !e.skincare {
                *o = 0.0;
                continue;
            }
            let mut s: f32 = concerns.iter().map(|&c| e.concern[c]).sum();
            if skin.is_some_and(|t| e.skin_types & (1 << t) != 0) {
                s += SKIN_TYPE_WEIGHT;
            }
            if sensitive && e.fragrance_free {
                s += GENTLE_WEIGHT;
            }
            if acne && e.non_comedogenic {
                s += GENTLE_WEIGHT;
            }
            *o = s;
        }
    }

    /// What matched, for explanations (nothing for an index out of range).
    pub fn explain(&self, item: u32, profile: &ContentProfile) -> ContentMatch {
        let Some(e) = self.items.get(item as usize).filter(|e| e.skincare) else { return ContentMatch::default() };
        let wanted: Vec<usize> = profile.concerns.iter().filter_map(|c| concern_index(c)).collect();
        ContentMatch {
            actives: e
                .actives
                .iter()
                .filter(|(_, c, _)| wanted.contains(c))
                .map(|(name, c, _)| (name.clone(), CONCERNS[*c].to_owned()))
                .collect(),
            skin_type: profile.skin_type.as_deref().and_then(skin_index).is_some_and(|t| e.skin_types & (1 << t) != 0),
            fragrance_free: profile.is_sensitive() && e.fragrance_free,
            non_comedogenic: profile.acne_prone() && e.non_comedogenic,
        }
    }
}

/// Popularity counted per segment (a skin type), for customers of whom nothing else is known.
/// A segment with less than `min_weight` in all falls back to everyone's counts.
#[derive(Debug, Clone)]
pub struct SegmentPopularity {
    global: Vec<f32>,
    segments: BTreeMap<String, Vec<f32>>,
    min_weight: f32,
    /// Sums kept as counts are added (read per request: summing thousands of counts each time
    /// showed in profiles).
    global_total: f32,
    segment_totals: BTreeMap<String, f32>,
}

impl SegmentPopularity {
    /// Counts over `n_items` items; segments lighter than `min_weight` fall back to the global
    /// counts.
    pub fn new(n_items: usize, min_weight: f32) -> Self {
        SegmentPopularity {
            global: vec![0.0; n_items],
            segments: BTreeMap::new(),
            min_weight,
            global_total: 0.0,
            segment_totals: BTreeMap::new(),
        }
    }

    /// Adds `weight` to `item`, globally and in `segment` (when given). Out-of-range items and
    /// non-finite weights are ignored.
    pub fn add(&mut self, segment: Option<&str>, item: u32, weight: f32) {
        let i = item as usize;
        if i >= self.global.len() || !weight.is_finite() {
            return;
        }
        self.global[i] += weight;
        self.global_total += weight;
        if let Some(s) = segment {
            let n = self.global.len();
            self.segments.entry(s.to_owned()).or_insert_with(|| vec![0.0; n])[i] += weight;
            *self.segment_totals.entry(s.to_owned()).or_default() += weight;
        }
    }

    /// How many items it counts.
    pub fn len(&self) -> usize {
        self.global.len()
    }

    /// Whether it counts no item.
    pub fn is_empty(&self) -> bool {
        self.global.is_empty()
    }

    /// The total weight counted in a segment (everyone's with `None`).
    pub fn total(&self, segment: Option<&str>) -> f32 {
        match segment {
            None => self.global_total,
            Some(s) => self.segment_totals.get(s).copied().unwrap_or(0.0),
        }
    }

    /// Whether `segment` has its own counts (enough weight), rather than everyone's.
    pub fn has_own(&self, segment: &str) -> bool {
        self.total(Some(segment)) >= self.min_weight && self.segments.contains_key(segment)
    }

    /// Scores every item for a customer of `segment`: the segment's counts with everyone's as a
    /// tie-break below one count (global / (global total + 1)), or everyone's counts when the
    /// segment is unknown or small.
    pub fn scores(&self, segment: Option<&str>, out: &mut [f32]) {
        assert_eq!(out.len(), self.global.len(), "one score per item");
        match segment.filter(|s| self.has_own(s)).and_then(|s| self.segments.get(s)) {
            Some(counts) => {
                let scale = 1.0 / (self.total(None) + 1.0);
                for ((o, &c), &g) in out.iter_mut().zip(counts).zip(&self.global) {
                    *o = c + g * scale;
                }
            }
            None => out.copy_from_slice(&self.global),
        }
    }
}

/// Every product of a catalog file (Sephora `product_info.csv[.gz]`, or what
/// [`dermis_catalog::import::read_file`] reads), as the catalog's import builds it, with its facts
/// derived ([`dermis_catalog::facts::compute`]); rows the import rejects are left out (their
/// count is returned). `id` is `prd_` + the external id. With `only_skincare`, products outside
/// skin care ([`is_skincare`]) are left out before their facts are derived.
pub fn read_catalog(path: &Path, only_skincare: bool) -> Result<(Vec<Product>, usize), RecommendError> {
    use rayon::prelude::*;
    let rows = import::read_file(path)
        .map_err(|e| RecommendError::Io { path: path.to_owned(), source: std::io::Error::other(e) })?;
    let rejected = rows.iter().filter(|r| r.is_err()).count();
    let kb = KnowledgeBase::bundled();
    let products = rows
        .into_par_iter()
        .filter_map(Result::ok)
        .filter(|r| !only_skincare || skincare_category(r.product.category.as_deref()))
        .map(|r| {
            let n = r.product;
            let ext = n.external_id.unwrap_or_else(|| format!("line-{}", r.line));
            let mut p = Product {
                id: format!("prd_{ext}"),
                external_id: Some(ext),
                name: n.name,
                brand: n.brand,
                category: n.category,
                description: n.description,
                ingredients: n.ingredients,
                highlights: n.highlights,
                attributes: None,
                status: ProductStatus::Active,
                version: 1,
                created_at: String::new(),
                updated_at: String::new(),
            };
            p.attributes = Some(dermis_catalog::facts::compute(kb, &p));
            p
        })
        .collect();
    Ok((products, rejected))
}

/// Whether a product is skin care (its category path starts with `Skincare`).
pub fn is_skincare(p: &Product) -> bool {
    skincare_category(p.category.as_deref())
}

fn skincare_category(c: Option<&str>) -> bool {
    c.is_some_and(|c| c.trim_start().starts_with("Skincare"))
}
