//! One ingredient and what is known about it, in the vocabularies of the knowledge base
//! (functions, concerns and the strength of their evidence, allergen lists), and the families
//! of ingredients a customer may want to avoid at once. Re-exported by [`crate::kb`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Evidence that an active addresses a concern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    /// Some studies, small or mixed.
    Limited,
    /// Consistent clinical evidence.
    Moderate,
    /// Well-established (guidelines, many trials).
    Strong,
}

/// Skin concerns an active may address.
pub const CONCERNS: [&str; 8] =
    ["acne", "hyperpigmentation", "redness", "dryness", "aging", "dullness", "pores", "sensitivity"];

/// Ingredient functions the knowledge base uses.
pub const FUNCTIONS: [&str; 30] = [
    "humectant",
    "emollient",
    "occlusive",
    "surfactant",
    "emulsifier",
    "thickener",
    "solvent",
    "preservative",
    "antioxidant",
    "chelating",
    "ph-adjuster",
    "colorant",
    "fragrance",
    "essential-oil",
    "drying-alcohol",
    "exfoliant-aha",
    "exfoliant-bha",
    "exfoliant-pha",
    "retinoid",
    "uv-filter",
    "skin-conditioning",
    "soothing",
    "brightening",
    "anti-acne",
    "barrier-repair",
    "peptide",
    "film-former",
    "absorbent",
    "astringent",
    "antimicrobial",
];

/// One canonical ingredient and what is known about it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Ingredient {
    /// Canonical id (`salicylic-acid`).
    pub id: String,
    /// Canonical INCI name.
    pub inci: String,
    /// Other names labels use.
    pub synonyms: Vec<String>,
    /// What it does in a formula.
    pub functions: Vec<String>,
    /// Published comedogenic rating, 0–5.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comedogenic: Option<u8>,
    /// Irritation potential, 0 (none) to 3 (high).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub irritation: Option<u8>,
    /// `avoid` or `caution` in pregnancy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pregnancy: Option<String>,
    /// Increases sensitivity to the sun.
    pub photosensitizing: bool,
    /// Allergen lists it is on: `eu-2003` (the 26 of Directive 2003/15/EC), `eu-2023` (added by
    /// Regulation (EU) 2023/1545), `contact` (common contact allergen).
    pub allergen_lists: Vec<String>,
    /// Concerns it addresses, with the strength of the evidence.
    pub concerns: Vec<ConcernEvidence>,
    /// Where these facts come from.
    pub sources: Vec<Source>,
}

/// A concern and how strong the evidence is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConcernEvidence {
    /// The concern.
    pub concern: String,
    /// The evidence.
    pub evidence: Evidence,
}

/// A reference.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Source {
    /// Short key.
    pub key: String,
    /// Citation.
    pub citation: String,
    /// Where to read it, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Ingredient {
    /// Whether it has a function.
    pub fn has(&self, function: &str) -> bool {
        self.functions.iter().any(|f| f == function)
    }

    /// Whether it is a labelled fragrance allergen (EU lists).
    pub fn is_fragrance_allergen(&self) -> bool {
        self.allergen_lists.iter().any(|l| l == "eu-2003" || l == "eu-2023")
    }

    /// Whether it is any kind of listed allergen.
    pub fn is_allergen(&self) -> bool {
        !self.allergen_lists.is_empty()
    }
}

/// Named groups of ingredients a customer may want to avoid all at once.
pub const FAMILIES: [(&str, &str); 12] = [
    ("fragrance", "perfume, essential oils and EU-labelled fragrance allergens, except preservatives (benzyl alcohol)"),
    ("fragrance-allergens", "the EU-labelled fragrance allergens (2003/15/EC and 2023/1545)"),
    ("essential-oils", "essential oils"),
    ("drying-alcohols", "drying alcohols (alcohol denat., SD alcohol, isopropyl alcohol)"),
    ("contact-allergens", "common contact allergens (isothiazolinones, formaldehyde releasers, lanolin ...)"),
    ("retinoids", "retinoids"),
    ("ahas", "alpha hydroxy acids"),
    ("bhas", "beta hydroxy acids"),
    ("parabens", "parabens"),
    ("sulfates", "sulfate surfactants"),
    ("silicones", "silicones (dimethicone, cyclomethicones, siloxanes)"),
    ("uv-filters", "UV filters"),
];

/// Whether an ingredient belongs to a family.
pub fn in_family(i: &Ingredient, family: &str) -> bool {
    match family {
        // An ingredient used as a preservative (benzyl alcohol) is not "fragrance" here, even when
        // CosIng also lists it as perfuming; it stays in `fragrance-allergens`.
        "fragrance" => {
            (i.has("fragrance") || i.has("essential-oil") || i.is_fragrance_allergen()) && !i.has("preservative")
        }
        "fragrance-allergens" => i.is_fragrance_allergen(),
        "essential-oils" => i.has("essential-oil"),
        "drying-alcohols" => i.has("drying-alcohol"),
        "contact-allergens" => i.allergen_lists.iter().any(|l| l == "contact"),
        "retinoids" => i.has("retinoid"),
        "ahas" => i.has("exfoliant-aha"),
        "bhas" => i.has("exfoliant-bha"),
        "parabens" => i.id.ends_with("paraben"),
        "sulfates" => i.has("surfactant") && (i.id.ends_with("sulfate")),
        "silicones" => {
            ["dimethicone", "methicone", "siloxane", "silicone", "dimethiconol"].iter().any(|s| i.id.contains(s))
        }
        "uv-filters" => i.has("uv-filter"),
        _ => false,
    }
}
