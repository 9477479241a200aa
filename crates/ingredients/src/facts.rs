//! What a product's ingredients and category say about it. Recomputed whenever the ingredients,
//! the category or the knowledge base change (the knowledge base version is stored with the
//! facts). Facts that need the ingredient list are `None` when the list is unknown: "we do not
//! know" must never read as "free of".
//!
//! The same holds inside a known list: an ingredient that an entry or a note *may name* (its name
//! written as a whole word in text that does not resolve to it, see [`crate::resolve`]) counts as
//! present for every "free of" fact, the allergens and the warnings, never for the actives,
//! concerns or routine step, which are claims about what the product does.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::inci::IngredientList;
use crate::kb::{ConcernEvidence, Ingredient, KnowledgeBase, in_family};
use crate::resolve::EntryMatch;

/// Where a product sits in a skincare routine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoutineStep {
    /// Cleansers, makeup removers, wipes.
    Cleanser,
    /// Toners, essences, mists.
    Toner,
    /// Serums, treatments, face oils.
    Serum,
    /// Eye creams and treatments.
    Eye,
    /// Moisturizers and night creams.
    Moisturizer,
    /// Sunscreens (and moisturizers with UV filters sold as SPF).
    Sunscreen,
    /// Masks.
    Mask,
    /// Exfoliators and peels.
    Exfoliant,
}

impl RoutineStep {
    /// Every step, in routine order.
    pub const ALL: [RoutineStep; 8] = [
        Self::Cleanser,
        Self::Toner,
        Self::Exfoliant,
        Self::Serum,
        Self::Eye,
        Self::Moisturizer,
        Self::Sunscreen,
        Self::Mask,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cleanser => "cleanser",
            Self::Toner => "toner",
            Self::Serum => "serum",
            Self::Eye => "eye",
            Self::Moisturizer => "moisturizer",
            Self::Sunscreen => "sunscreen",
            Self::Mask => "mask",
            Self::Exfoliant => "exfoliant",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// One declared ingredient, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ResolvedEntry {
    /// Position in the declaration (0-based, across sections).
    pub position: usize,
    /// Section (variant) index.
    pub section: usize,
    /// Declared in a "May Contain" part.
    pub may_contain: bool,
    /// The declared text.
    pub text: String,
    /// The canonical ingredient, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingredient_id: Option<String>,
    /// Further ingredients the entry declares, when names were glued together
    /// (`TocopherolLimonene`, `Limonene and Fragrance/Parfum`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
    /// Ingredients whose names the entry writes as whole words without resolving to them: the
    /// product is treated as containing them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub may_name: Vec<String>,
}

/// Attributes derived from ingredients and category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProductFacts {
    /// Whether an ingredient list is known.
    pub has_ingredient_list: bool,
    /// No fragrance, essential oil or EU-labelled fragrance allergen (benzyl alcohol used as a
    /// preservative does not count).
    pub fragrance_free: Option<bool>,
    /// No essential oil.
    pub essential_oil_free: Option<bool>,
    /// No drying alcohol.
    pub drying_alcohol_free: Option<bool>,
    /// Highest published comedogenic rating among its ingredients (those it may contain
    /// included).
    pub max_comedogenic: Option<u8>,
    /// No ingredient rated 3 or more.
    pub non_comedogenic: Option<bool>,
    /// Listed allergens it contains or may contain (ingredient ids).
    pub allergens: Vec<String>,
    /// Contains an ingredient to avoid or use with caution in pregnancy (salicylic acid only when
    /// declared above 2% or without a strength).
    pub pregnancy_caution: Option<bool>,
    /// Contains a photosensitizing active.
    pub photosensitizing: Option<bool>,
    /// Actives (ingredients known to address a concern).
    pub actives: Vec<String>,
    /// Concerns the actives address, with the strongest evidence among them.
    pub concerns: Vec<ConcernEvidence>,
    /// Routine step, from category, name and ingredients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routine_step: Option<RoutineStep>,
    /// Suitable in a morning routine: not with a retinoid or a photosensitizing exfoliant acid
    /// (glycolic, lactic, mandelic, malic, tartaric acid: PM only), not a peel or exfoliant step.
    /// A sunscreen always is, whatever its ingredients. `None` for any other product whose
    /// ingredient list is unknown.
    pub am: Option<bool>,
    /// Suitable in an evening routine: not a sunscreen (known from the category even without an
    /// ingredient list). `None` for any other product whose ingredient list is unknown, since an
    /// SPF product is recognised as a sunscreen by its UV filters.
    pub pm: Option<bool>,
    /// Every declared ingredient, resolved where possible (omitted in listings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingredients: Vec<ResolvedEntry>,
    /// Declared names the knowledge base does not know.
    pub unknown_ingredients: Vec<String>,
    /// Ingredients no entry resolves to but that an entry or a note names as whole words: counted
    /// as present by every "free of" fact, the allergens and the warnings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub possible_ingredients: Vec<String>,
    /// Families an entry or a note names only generically (`Essential Oils`): the product is
    /// treated as containing a member.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub possible_families: Vec<String>,
    /// The knowledge base version these facts were derived with.
    pub kb_version: String,
}

/// Salicylic acid gets a pregnancy caution only above this declared strength (percent). 2% is the
/// upper limit of the US OTC acne monograph (21 CFR 333.310, source `fda-acne-333`) and of Annex III
/// entry 98 of Regulation (EC) No 1223/2009 outside rinse-off hair care (`eu-1223-2009`); pregnancy
/// guidance treats such low-strength topical use as acceptable and cautions against peels and high
/// strengths (`bozzo-2011`, `murase-2014`). These are the sources of the `salicylic-acid` row.
/// Without a declared strength the cautious answer stands.
pub const SALICYLIC_ACID_PREGNANCY_MAX_PERCENT: f64 = 2.0;

/// Whether a declared ingredient calls for caution in pregnancy, given its declared strength.
pub fn pregnancy_flag(ingredient: &Ingredient, percent: Option<&str>) -> bool {
    if ingredient.pregnancy.is_none() {
        return false;
    }
    if ingredient.id == "salicylic-acid" {
        let strength = percent.and_then(|p| p.trim().parse::<f64>().ok());
        return strength.is_none_or(|p| p > SALICYLIC_ACID_PREGNANCY_MAX_PERCENT);
    }
    true
}

/// Whether an ingredient makes a product PM only: a retinoid, or an exfoliant acid that the
/// knowledge base flags as photosensitizing (the AHAs of the FDA sunburn alert; citric acid, a pH
/// adjuster in most products, is not flagged). Phototoxic citrus oils raise `photosensitizing` but
/// are not exfoliants, and their use in leave-on products is limited by the IFRA standards
/// (`ifra-standards`).
fn pm_only(i: &Ingredient) -> bool {
    i.has("retinoid")
        || i.photosensitizing && (i.has("exfoliant-aha") || i.has("exfoliant-bha") || i.has("exfoliant-pha"))
}

/// The ids in first-seen order, each once (a product with several variants declares many
/// ingredients more than once, and not next to each other).
fn unique_in_order<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = HashSet::new();
    ids.filter(|id| seen.insert(*id)).map(str::to_owned).collect()
}

/// Adds what an entry or a note declares or may name.
fn take<'kb>(m: &EntryMatch<'kb>, present: &mut Vec<&'kb Ingredient>, families: &mut Vec<&'static str>) {
    present.extend(m.declared.iter().chain(&m.may_name).copied());
    for f in &m.families {
        if !families.contains(f) {
            families.push(f);
        }
    }
}

/// Derives the facts of a product.
pub fn derive(kb: &KnowledgeBase, list: Option<&IngredientList>, category: Option<&str>, name: &str) -> ProductFacts {
    let list = list.filter(|l| !l.is_empty());
    let mut entries = Vec::new();
    let mut unknown = Vec::new();
    // Every resolved declaration with its declared strength, in label order.
    let mut declared: Vec<(&Ingredient, Option<&str>)> = Vec::new();
    // Everything the product contains or may contain, in label order.
    let mut present: Vec<&Ingredient> = Vec::new();
    let mut families: Vec<&'static str> = Vec::new();
    if let Some(l) = list {
        let mut position = 0;
        for (si, s) in l.sections.iter().enumerate() {
            // A section's header ("Leila Lou Eau de Parfum:", "Lavender Oil:") says something
            // about what follows, like a note.
            if let Some(label) = &s.label {
                take(&kb.may_name(label), &mut present, &mut families);
            }
            for (may, part) in [(false, &s.ingredients), (true, &s.may_contain)] {
                let mut matches: Vec<EntryMatch<'_>> = part.iter().map(|e| kb.resolve_entry(&e.text)).collect();
                let texts: Vec<&str> = part.iter().map(|e| e.text.as_str()).collect();
                let resolved: Vec<bool> = matches.iter().map(|m| !m.declared.is_empty()).collect();
                for (n, i) in kb.may_name_across(&texts, &resolved) {
                    let m = &mut matches[n];
                    if !m.declared.iter().chain(&m.may_name).any(|d| d.id == i.id) {
                        m.may_name.push(i);
                    }
                }
                for (e, m) in part.iter().zip(&matches) {
                    for (n, i) in m.declared.iter().enumerate() {
                        // A declared strength belongs to the entry's first name.
                        declared.push((i, if n == 0 { e.percent.as_deref() } else { None }));
                    }
                    if m.declared.is_empty() && !unknown.contains(&e.text) {
                        unknown.push(e.text.clone());
                    }
                    take(m, &mut present, &mut families);
                    entries.push(ResolvedEntry {
                        position,
                        section: si,
                        may_contain: may,
                        text: e.text.clone(),
                        ingredient_id: m.declared.first().map(|i| i.id.clone()),
                        also: m.declared.iter().skip(1).map(|i| i.id.clone()).collect(),
                        may_name: m.may_name.iter().map(|i| i.id.clone()).collect(),
                    });
                    position += 1;
                }
            }
        }
        // Notes are not entries, but "Allergens: Linalool." or a list printed without commas
        // still says what is in the product.
        for n in &l.notes {
            take(&kb.may_name(n), &mut present, &mut families);
        }
    }
    let known: Vec<&Ingredient> = declared.iter().map(|(i, _)| *i).collect();
    let known_ids: HashSet<&str> = known.iter().map(|i| i.id.as_str()).collect();
    let possible = unique_in_order(present.iter().map(|i| i.id.as_str()).filter(|id| !known_ids.contains(id)));
    let known_list = list.is_some();
    let free_of = |family: &str, f: &dyn Fn(&Ingredient) -> bool| {
        known_list.then(|| !present.iter().any(|i| f(i)) && !families.contains(&family))
    };
    let any_of = |f: &dyn Fn(&Ingredient) -> bool| known_list.then(|| present.iter().any(|i| f(i)));

    let max_comedogenic = present.iter().filter_map(|i| i.comedogenic).max();
    let allergens = unique_in_order(present.iter().filter(|i| i.is_allergen()).map(|i| i.id.as_str()));
    let actives = unique_in_order(known.iter().filter(|i| !i.concerns.is_empty()).map(|i| i.id.as_str()));
    let mut concerns: BTreeMap<String, crate::kb::Evidence> = BTreeMap::new();
    for i in known.iter().filter(|i| !i.concerns.is_empty()) {
        for c in &i.concerns {
            let e = concerns.entry(c.concern.clone()).or_insert(c.evidence);
            *e = (*e).max(c.evidence);
        }
    }
    let has_uv = known.iter().any(|i| i.has("uv-filter"));
    let step =
        routine_step(category, name, has_uv, known.iter().any(|i| i.has("exfoliant-aha") || i.has("exfoliant-bha")));
    let sunscreen = step == Some(RoutineStep::Sunscreen);
    let (am, pm) = if sunscreen {
        (Some(true), Some(false))
    } else if known_list {
        (Some(!present.iter().any(|i| pm_only(i)) && step != Some(RoutineStep::Exfoliant)), Some(true))
    } else {
        (None, None)
    };
    let possible_caution = present.iter().any(|i| !known_ids.contains(i.id.as_str()) && i.pregnancy.is_some());
    ProductFacts {
        has_ingredient_list: known_list,
        fragrance_free: free_of("fragrance", &|i| in_family(i, "fragrance")),
        essential_oil_free: free_of("essential-oils", &|i| i.has("essential-oil")),
        drying_alcohol_free: free_of("drying-alcohols", &|i| i.has("drying-alcohol")),
        max_comedogenic: if known_list { max_comedogenic } else { None },
        non_comedogenic: known_list.then(|| max_comedogenic.is_none_or(|m| m < 3)),
        allergens,
        pregnancy_caution: known_list.then(|| possible_caution || declared.iter().any(|(i, p)| pregnancy_flag(i, *p))),
        photosensitizing: any_of(&|i| i.photosensitizing),
        actives,
        concerns: concerns.into_iter().map(|(concern, evidence)| ConcernEvidence { concern, evidence }).collect(),
        routine_step: step,
        am,
        pm,
        ingredients: entries,
        unknown_ingredients: unknown,
        possible_ingredients: possible,
        possible_families: families.iter().map(|f| (*f).to_owned()).collect(),
        kb_version: kb.version().to_owned(),
    }
}

/// The routine step a category path (`Skincare/Treatments/Face Serums`) and name suggest.
pub fn routine_step(category: Option<&str>, name: &str, has_uv_filter: bool, has_acid: bool) -> Option<RoutineStep> {
    let c = category.unwrap_or("").to_lowercase();
    let n = name.to_lowercase();
    let spf = n.contains("spf") || n.contains("sunscreen") || n.contains("sun screen");
    let step = if c.contains("sunscreen") || (spf && has_uv_filter) {
        RoutineStep::Sunscreen
    } else if c.contains("exfoliat") || c.contains("peel") {
        RoutineStep::Exfoliant
    } else if c.contains("toner") || c.contains("mists") || c.contains("essence") {
        if has_acid && (n.contains("exfoliat") || n.contains("peel")) {
            RoutineStep::Exfoliant
        } else {
            RoutineStep::Toner
        }
    } else if c.contains("cleans") || c.contains("makeup remover") || c.contains("face wipes") {
        RoutineStep::Cleanser
    } else if c.contains("eye") {
        RoutineStep::Eye
    } else if c.contains("mask") {
        RoutineStep::Mask
    } else if c.contains("serum") || c.contains("treatment") || c.contains("face oil") {
        RoutineStep::Serum
    } else if c.contains("moistur") || c.contains("night cream") || c.contains("bb & cc") || c.contains("neck cream") {
        RoutineStep::Moisturizer
    } else {
        // No telling category: fall back on the name.
        let by_name = [
            ("cleanser", RoutineStep::Cleanser),
            ("face wash", RoutineStep::Cleanser),
            ("toner", RoutineStep::Toner),
            ("essence", RoutineStep::Toner),
            ("serum", RoutineStep::Serum),
            ("eye cream", RoutineStep::Eye),
            ("moisturizer", RoutineStep::Moisturizer),
            ("moisturiser", RoutineStep::Moisturizer),
            ("cream", RoutineStep::Moisturizer),
            ("mask", RoutineStep::Mask),
            ("peel", RoutineStep::Exfoliant),
            ("exfoliat", RoutineStep::Exfoliant),
        ];
        return by_name.iter().find(|(w, _)| n.contains(w)).map(|(_, s)| *s);
    };
    Some(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routine_steps_from_sephora_categories() {
        let s = |c: &str, n: &str| routine_step(Some(c), n, false, false);
        assert_eq!(s("Skincare/Treatments/Face Serums", "C-Firma"), Some(RoutineStep::Serum));
        assert_eq!(s("Skincare/Cleansers/Toners", "Glow Tonic"), Some(RoutineStep::Toner));
        assert_eq!(s("Skincare/Cleansers/Exfoliators", "Scrub"), Some(RoutineStep::Exfoliant));
        assert_eq!(s("Skincare/Cleansers/Face Wash & Cleansers", "Gel"), Some(RoutineStep::Cleanser));
        assert_eq!(s("Skincare/Sunscreen/Face Sunscreen", "Unseen"), Some(RoutineStep::Sunscreen));
        assert_eq!(s("Skincare/Eye Care/Eye Creams & Treatments", "Eye"), Some(RoutineStep::Eye));
        assert_eq!(s("Skincare/Masks/Sheet Masks", "Mask"), Some(RoutineStep::Mask));
        assert_eq!(s("Skincare/Moisturizers/Night Creams", "Night"), Some(RoutineStep::Moisturizer));
        assert_eq!(
            routine_step(Some("Skincare/Moisturizers/Moisturizers"), "Daily Cream SPF 30", true, false),
            Some(RoutineStep::Sunscreen)
        );
        assert_eq!(routine_step(None, "Hydrating Face Serum", false, false), Some(RoutineStep::Serum));
        assert_eq!(routine_step(Some("Makeup/Lip"), "Lipstick", false, false), None);
    }
}
