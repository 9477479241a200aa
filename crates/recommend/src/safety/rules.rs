//! The safety rules as data: [`RuleSet`] (read from JSON, checked by [`RuleSet::parse`]), each
//! [`Rule`] a condition on the customer ([`When`]), a test of the product ([`Test`]), what to do
//! when both hold ([`Action`], possibly downgraded to a flag by `flag_instead_when`) and the
//! reason in plain words. The default set is `rules/safety.v1.json`, compiled in
//! ([`RuleSet::bundled`]). The vocabulary of conditions and tests is closed (each is code); which
//! rules exist, when they apply, thresholds, families, actions and reasons are data.

use std::collections::{BTreeMap, BTreeSet};

use dermis_customers::model::{Condition, SkinType};
use dermis_ingredients::KnowledgeBase;
use dermis_ingredients::kb::{CONCERNS, FAMILIES};
use serde::{Deserialize, Serialize};

/// The bundled default rules.
pub const BUNDLED_RULES: &str = include_str!("../../rules/safety.v1.json");

/// A rule file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("safety rules: {0}")]
pub struct RulesError(pub String);

/// A set of rules and the generic words that name a family on a label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    /// Recorded with every verdict's rules (`safety.v1`).
    pub version: String,
    /// Words a label uses for a whole family without naming a member (`Essential Oils`): a
    /// product whose declaration writes them contains the family, for every test naming it.
    #[serde(default)]
    pub family_words: BTreeMap<String, Vec<String>>,
    /// The rules, checked in this order (every rule is checked; the order only orders reasons).
    pub rules: Vec<Rule>,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable id, returned with every exclusion (`allergen`).
    pub id: String,
    /// What the rule is for (documentation).
    #[serde(default)]
    pub description: String,
    /// When the rule applies to a customer.
    pub when: When,
    /// What it looks for in a product.
    pub test: Test,
    /// What a match does.
    #[serde(default)]
    pub action: Action,
    /// A match is only flagged (not excluded) when this holds for the customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag_instead_when: Option<When>,
    /// The reason in plain words; `{ingredients}` is replaced by the names matched and `{scope}`
    /// by the availability's channel or store.
    pub reason: String,
    /// The reason when the match names no ingredient (the product reacted to itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_without_ingredients: Option<String>,
}

/// What a match does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The product is removed, and the exclusion recorded.
    #[default]
    Exclude,
    /// The product stays, with a warning.
    Flag,
}

/// A condition on the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum When {
    /// Every customer.
    Always,
    /// Any allergy: an ingredient, a family or a name the knowledge base does not know.
    HasAllergies,
    /// Any declared sensitivity.
    HasSensitivities,
    /// Any reported reaction.
    HasReactions,
    /// Any contraindication from a dermatologist's assessment.
    HasContraindications,
    /// Pregnant.
    Pregnant,
    /// Breastfeeding.
    Breastfeeding,
    /// Pregnant or breastfeeding.
    PregnantOrBreastfeeding,
    /// The routine is known and has a sunscreen.
    RoutineHasSunscreen,
    /// Nothing is known about the routine.
    RoutineUnknown,
    /// Availability for a channel or store was given.
    AvailabilityKnown,
    /// The skin type is one of these (`dry`, `oily`, `combination`, `normal`, `sensitive`).
    SkinType(Vec<String>),
    /// One of these skin conditions (`acne`, `rosacea` ...).
    Condition(Vec<String>),
    /// One of these concerns (the knowledge base's vocabulary).
    Concern(Vec<String>),
    /// Any of these holds.
    AnyOf(Vec<When>),
    /// All of these hold.
    AllOf(Vec<When>),
}

/// What a rule looks for in a product. Every test that names ingredients reads both the
/// knowledge base's facts (declared and may-contain ids, families named generically) and the
/// label as written (every name of the ingredients as whole words, see [`super::label`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Test {
    /// One of the customer's allergens (ids, families, unknown names).
    CustomerAllergens,
    /// One of the customer's sensitivities.
    CustomerSensitivities,
    /// One of the ingredients a dermatologist contraindicated.
    Contraindications,
    /// The product the customer reacted to, or an ingredient suspected in the reaction.
    Reactions,
    /// A member of one of these families.
    Families {
        /// Family ids (`fragrance`, `essential-oils`, ...).
        families: Vec<String>,
    },
    /// An ingredient flagged for pregnancy (`avoid` or `caution`).
    PregnancyCaution {
        /// Ingredients flagged only above a declared strength: judged by the knowledge base's
        /// per-product fact (which reads the strength), not by their name on the label.
        #[serde(default)]
        judged_by_strength: Vec<String>,
    },
    /// An ingredient with a published comedogenic rating of at least `min_rating` (0–5).
    Comedogenic {
        /// The threshold.
        min_rating: u8,
    },
    /// A photosensitizing ingredient.
    Photosensitizer,
    /// The ingredient list is unknown, could not be read, or was derived under another knowledge
    /// base.
    IngredientsUnknown,
    /// Not in stock for the requested channel or store.
    OutOfStock,
}

impl RuleSet {
    /// The rules shipped with this build (checked by a test; a broken file fails the build's
    /// tests, never a request).
    pub fn bundled(kb: &KnowledgeBase) -> Self {
        Self::parse(BUNDLED_RULES, kb).expect("the bundled safety rules are valid")
    }

    /// Reads and checks a rule file: unique non-empty ids, known families, skin types,
    /// conditions, concerns and ingredient ids, ratings within 0–5, a reason for every rule.
    pub fn parse(json: &str, kb: &KnowledgeBase) -> Result<Self, RulesError> {
        let set: RuleSet = serde_json::from_str(json).map_err(|e| RulesError(e.to_string()))?;
        set.check(kb)?;
        Ok(set)
    }

    fn check(&self, kb: &KnowledgeBase) -> Result<(), RulesError> {
        let bad = |m: String| Err(RulesError(m));
        if self.version.trim().is_empty() {
            return bad("a version is required".into());
        }
        let known_family = |f: &str| FAMILIES.iter().any(|(k, _)| *k == f);
        for (family, words) in &self.family_words {
            if !known_family(family) {
                return bad(format!("family_words: unknown family {family:?}"));
            }
            if words.iter().any(|w| dermis_ingredients::resolve::words(w, false).is_empty()) {
                return bad(format!("family_words.{family}: a word list has an empty phrase"));
            }
        }
        let mut ids = BTreeSet::new();
        for r in &self.rules {
            let at = |m: String| RulesError(format!("rule {:?}: {m}", r.id));
            if r.id.trim().is_empty() || !r.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return bad(format!("rule id {:?} must be lower-case letters, digits and dashes", r.id));
            }
            if !ids.insert(r.id.as_str()) {
                return bad(format!("duplicate rule id {:?}", r.id));
            }
            if r.reason.trim().is_empty() {
                return Err(at("a reason is required".into()));
            }
            check_when(&r.when).map_err(at)?;
            if let Some(w) = &r.flag_instead_when {
                check_when(w).map_err(at)?;
            }
            match &r.test {
                Test::Families { families } => {
                    if families.is_empty() {
                        return Err(at("families: at least one".into()));
                    }
                    if let Some(f) = families.iter().find(|f| !known_family(f)) {
                        return Err(at(format!("unknown family {f:?}")));
                    }
                }
                Test::PregnancyCaution { judged_by_strength } => {
                    if let Some(id) = judged_by_strength.iter().find(|id| kb.get(id).is_none()) {
                        return Err(at(format!("unknown ingredient id {id:?}")));
                    }
                }
                Test::Comedogenic { min_rating } => {
                    if *min_rating > 5 {
                        return Err(at("min_rating is 0 to 5".into()));
                    }
                }
                Test::CustomerAllergens
                | Test::CustomerSensitivities
                | Test::Contraindications
                | Test::Reactions
                | Test::Photosensitizer
                | Test::IngredientsUnknown
                | Test::OutOfStock => {}
            }
        }
        Ok(())
    }
}

fn check_when(w: &When) -> Result<(), String> {
    match w {
        When::SkinType(v) => {
            if let Some(s) = v.iter().find(|s| SkinType::parse(s).is_none()) {
                return Err(format!("unknown skin type {s:?}; expected one of {}", SkinType::names()));
            }
        }
        When::Condition(v) => {
            if let Some(s) = v.iter().find(|s| Condition::parse(s).is_none()) {
                return Err(format!("unknown condition {s:?}; expected one of {}", Condition::names()));
            }
        }
        When::Concern(v) => {
            if let Some(s) = v.iter().find(|s| !CONCERNS.contains(&s.as_str())) {
                return Err(format!("unknown concern {s:?}; expected one of {}", CONCERNS.join(", ")));
            }
        }
        When::AnyOf(v) | When::AllOf(v) => {
            if v.is_empty() {
                return Err("any_of and all_of need at least one condition".into());
            }
            v.iter().try_for_each(check_when)?;
        }
        When::Always
        | When::HasAllergies
        | When::HasSensitivities
        | When::HasReactions
        | When::HasContraindications
        | When::Pregnant
        | When::Breastfeeding
        | When::PregnantOrBreastfeeding
        | When::RoutineHasSunscreen
        | When::RoutineUnknown
        | When::AvailabilityKnown => {}
    }
    Ok(())
}
