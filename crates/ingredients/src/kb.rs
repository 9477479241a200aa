//! The ingredient knowledge base: `data/ingredients.csv` and `data/sources.csv`, compiled into the
//! binary. Every fact names its sources; see `data/README.md` for the vocabularies.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::inci::{candidate_keys, key, parse};
use crate::resolve::{Index, RULES_VERSION, read_different_substances};

const INGREDIENTS_CSV: &str = include_str!("../data/ingredients.csv");
const SOURCES_CSV: &str = include_str!("../data/sources.csv");
const DIFFERENT_SUBSTANCES_CSV: &str = include_str!("../data/different_substances.csv");

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

/// The knowledge base, indexed for lookups.
#[derive(Debug)]
pub struct KnowledgeBase {
    pub(crate) ingredients: Vec<Ingredient>,
    by_id: HashMap<String, usize>,
    pub(crate) by_key: HashMap<String, usize>,
    pub(crate) index: Index,
    version: String,
}

#[derive(Deserialize)]
struct Row {
    id: String,
    inci: String,
    synonyms: String,
    functions: String,
    comedogenic: String,
    irritation: String,
    pregnancy: String,
    photosensitizing: String,
    allergen: String,
    concerns: String,
    sources: String,
}

fn split_bar(s: &str) -> Vec<String> {
    s.split('|').map(str::trim).filter(|x| !x.is_empty()).map(str::to_owned).collect()
}

impl KnowledgeBase {
    /// The knowledge base shipped with this build.
    pub fn bundled() -> &'static KnowledgeBase {
        static KB: OnceLock<KnowledgeBase> = OnceLock::new();
        KB.get_or_init(|| {
            Self::from_data(INGREDIENTS_CSV, SOURCES_CSV, DIFFERENT_SUBSTANCES_CSV)
                .expect("the bundled knowledge base is valid")
        })
    }

    /// Loads and checks a knowledge base, without a list of different substances.
    pub fn from_csv(ingredients: &str, sources: &str) -> Result<Self, String> {
        Self::from_data(ingredients, sources, "phrase,not,why\n")
    }

    /// Loads and checks a knowledge base and its reviewed list of different substances
    /// (`phrase,not,why`: a phrase that contains an ingredient's name but is another substance;
    /// see [`crate::resolve`]).
    pub fn from_data(ingredients: &str, sources: &str, different_substances: &str) -> Result<Self, String> {
        let mut refs = HashMap::new();
        for rec in csv::Reader::from_reader(sources.as_bytes()).records() {
            let rec = rec.map_err(|e| format!("sources.csv: {e}"))?;
            let key = rec.get(0).unwrap_or_default().trim().to_owned();
            let citation = rec.get(1).unwrap_or_default().trim().to_owned();
            let url = rec.get(2).map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned);
            refs.insert(key.clone(), Source { key, citation, url });
        }
        let mut kb = Self {
            ingredients: Vec::new(),
            by_id: HashMap::new(),
            by_key: HashMap::new(),
            index: Index::default(),
            version: String::new(),
        };
        for (line, row) in csv::Reader::from_reader(ingredients.as_bytes()).deserialize::<Row>().enumerate() {
            let row = row.map_err(|e| format!("ingredients.csv row {}: {e}", line + 2))?;
            let bad = |what: String| format!("ingredients.csv {}: {what}", row.id);
            let functions = split_bar(&row.functions);
            if let Some(f) = functions.iter().find(|f| !FUNCTIONS.contains(&f.as_str())) {
                return Err(bad(format!("unknown function {f}")));
            }
            let small = |s: &str, max: u8| -> Result<Option<u8>, String> {
                if s.trim().is_empty() {
                    return Ok(None);
                }
                s.trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|v| *v <= max)
                    .map(Some)
                    .ok_or_else(|| bad(format!("bad rating {s}")))
            };
            let mut concerns = Vec::new();
            for pair in split_bar(&row.concerns) {
                let (c, e) = pair.split_once(':').ok_or_else(|| bad(format!("bad concern {pair}")))?;
                if !CONCERNS.contains(&c) {
                    return Err(bad(format!("unknown concern {c}")));
                }
                let evidence = match e {
                    "strong" => Evidence::Strong,
                    "moderate" => Evidence::Moderate,
                    "limited" => Evidence::Limited,
                    _ => return Err(bad(format!("unknown evidence {e}"))),
                };
                concerns.push(ConcernEvidence { concern: c.to_owned(), evidence });
            }
            let mut sources = Vec::new();
            for k in split_bar(&row.sources) {
                sources.push(refs.get(&k).cloned().ok_or_else(|| bad(format!("unknown source {k}")))?);
            }
            let allergen_lists = split_bar(&row.allergen);
            if let Some(a) = allergen_lists.iter().find(|a| !["eu-2003", "eu-2023", "contact"].contains(&a.as_str())) {
                return Err(bad(format!("unknown allergen list {a}")));
            }
            let pregnancy = Some(row.pregnancy.trim().to_owned()).filter(|p| !p.is_empty());
            if pregnancy.as_deref().is_some_and(|p| p != "avoid" && p != "caution") {
                return Err(bad("pregnancy must be avoid or caution".into()));
            }
            let ing = Ingredient {
                id: row.id.trim().to_owned(),
                inci: row.inci.trim().to_owned(),
                synonyms: split_bar(&row.synonyms),
                functions,
                comedogenic: small(&row.comedogenic, 5)?,
                irritation: small(&row.irritation, 3)?,
                pregnancy,
                photosensitizing: row.photosensitizing.trim() == "yes",
                allergen_lists,
                concerns,
                sources,
            };
            let i = kb.ingredients.len();
            if kb.by_id.insert(ing.id.clone(), i).is_some() {
                return Err(format!("ingredients.csv: duplicate id {}", ing.id));
            }
            for name in std::iter::once(&ing.inci).chain(ing.synonyms.iter()).chain(std::iter::once(&ing.id)) {
                let k = key(name);
                if let Some(j) = kb.by_key.insert(k.clone(), i)
                    && j != i
                {
                    return Err(format!(
                        "ingredients.csv: name {k:?} belongs to both {} and {}",
                        kb.ingredients[j].id, ing.id
                    ));
                }
            }
            // Ids are written with dashes; labels with spaces.
            kb.by_key.entry(ing.id.replace('-', " ")).or_insert(i);
            kb.ingredients.push(ing);
        }
        let different = read_different_substances(different_substances, &kb.by_id)?;
        kb.index = Index::new(&kb.ingredients, &kb.by_key, different);
        // The rules that read labels are part of the version: products derived under other rules
        // are derived again, as under other data.
        kb.version = hex::encode(
            &Sha256::digest(format!("{ingredients}\n{sources}\n{different_substances}\n{RULES_VERSION}").as_bytes())
                [..8],
        );
        Ok(kb)
    }

    /// A digest of the data and of the resolution rules: products derived under another version
    /// must be recomputed.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Every ingredient.
    pub fn all(&self) -> &[Ingredient] {
        &self.ingredients
    }

    /// The ingredient with this id.
    pub fn get(&self, id: &str) -> Option<&Ingredient> {
        self.by_id.get(id).map(|&i| &self.ingredients[i])
    }

    /// Resolves any name (INCI, synonym, id; any case, accents, spacing) to an ingredient.
    pub fn lookup(&self, name: &str) -> Option<&Ingredient> {
        self.by_key.get(&key(name)).map(|&i| &self.ingredients[i])
    }

    /// Resolves a declared entry's text, trying its parenthesised and slash-separated alternatives
    /// (exact names only; [`KnowledgeBase::resolve_entry`] reads labels as they really are).
    pub fn resolve(&self, text: &str) -> Option<&Ingredient> {
        candidate_keys(text).iter().find_map(|k| self.by_key.get(k)).map(|&i| &self.ingredients[i])
    }

    /// Resolves one ingredient written any way a label writes it: any name or synonym, with its
    /// alternatives in parentheses or after slashes (`Water (Aqua)`, `Aqua/Water/Eau`), a footnote
    /// marker (`Glycerin*`) or a declared strength (`Niacinamide 5%`, `Salicylic Acid 2% (BHA)`).
    /// Text that parses as several ingredients is not one ingredient. Failing the exact names, the
    /// label forms of [`KnowledgeBase::resolve_entry`] are read (`Linalool 78-70-6`, `d-Limonene`,
    /// `Linalooll`) when they give one ingredient and name nothing else.
    pub fn resolve_label(&self, text: &str) -> Option<&Ingredient> {
        if let Some(i) = self.lookup(text) {
            return Some(i);
        }
        // Cleaned as a declared entry first, so that a strength or a marker does not hide the name
        // ("Salicylic Acid 2% (BHA)" is salicylic acid, not the BHA in its note).
        let parsed = parse(text);
        let mut entries = parsed.entries();
        let one = match (entries.next(), entries.next()) {
            (Some(only), None) => only.text.clone(),
            (Some(_), Some(_)) => return None,
            (None, _) => text.to_owned(),
        };
        self.resolve(&one).or_else(|| self.resolve(text)).or_else(|| {
            let m = self.resolve_entry(&one);
            match m.declared.as_slice() {
                [only] if m.may_name.is_empty() => Some(*only),
                _ => None,
            }
        })
    }

    /// The ids a search term stands for: a family name, or one ingredient by any of its names or
    /// label forms ([`KnowledgeBase::resolve_label`]). `None` when the term is neither.
    pub fn expand(&self, term: &str) -> Option<BTreeSet<String>> {
        let t = key(term).replace(' ', "-");
        if FAMILIES.iter().any(|(f, _)| *f == t) {
            return Some(self.ingredients.iter().filter(|i| in_family(i, &t)).map(|i| i.id.clone()).collect());
        }
        self.resolve_label(term).map(|i| BTreeSet::from([i.id.clone()]))
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_knowledge_base_loads_and_resolves_synonyms() {
        let kb = KnowledgeBase::bundled();
        assert!(kb.all().len() > 300, "{}", kb.all().len());
        for (name, id) in [("Aqua", "water"), ("EAU", "water"), ("Parfum", "fragrance"), ("Vitamin E", "tocopherol")] {
            assert_eq!(kb.lookup(name).map(|i| i.id.as_str()), Some(id), "{name}");
        }
        assert_eq!(kb.resolve("Water (Aqua, Eau)").map(|i| i.id.as_str()), Some("water"));
        assert_eq!(kb.resolve("Aqua/Water/Eau").map(|i| i.id.as_str()), Some("water"));
        let linalool = kb.lookup("linalool").unwrap();
        assert!(linalool.is_fragrance_allergen() && !linalool.sources.is_empty());
        assert!(kb.lookup("retinol").unwrap().has("retinoid"));
        assert_eq!(kb.lookup("retinol").unwrap().pregnancy.as_deref(), Some("avoid"));
    }

    #[test]
    fn families_expand_to_their_members() {
        let kb = KnowledgeBase::bundled();
        let eu26 = kb.all().iter().filter(|i| i.allergen_lists.iter().any(|l| l == "eu-2003")).count();
        assert!(eu26 >= 26, "the 26 allergens of 2003/15/EC: {eu26}");
        let fragrance = kb.expand("fragrance").unwrap();
        assert!(fragrance.contains("linalool") && fragrance.contains("fragrance"));
        assert!(!fragrance.contains("benzyl-alcohol"), "a preservative is not fragrance");
        assert!(kb.expand("fragrance-allergens").unwrap().contains("benzyl-alcohol"));
        assert_eq!(kb.expand("aqua").unwrap().into_iter().collect::<Vec<_>>(), ["water"]);
        assert!(kb.expand("unobtainium").is_none());
    }

    #[test]
    fn any_label_form_resolves() {
        let kb = KnowledgeBase::bundled();
        let id = |t: &str| kb.resolve_label(t).map(|i| i.id.as_str());
        for (text, want) in [
            ("Water (Aqua)", "water"),
            ("Water (Aqua, Eau)", "water"),
            ("Aqua/Water/Eau", "water"),
            ("WATER/EAU", "water"),
            ("water", "water"),
            ("Glycerin*", "glycerin"),
            ("Niacinamide 5%", "niacinamide"),
            ("10% Glycolic Acid", "glycolic-acid"),
            ("Salicylic Acid 2% (BHA)", "salicylic-acid"),
            ("Zinc Oxide (20%)", "zinc-oxide"),
            ("Titanium Dioxide (CI 77891)", "titanium-dioxide"),
            ("Helianthus Annuus (Sunflower) Seed Oil", "helianthus-annuus-seed-oil"),
            ("Tocophérol", "tocopherol"),
            ("1,2-Hexanediol", "1-2-hexanediol"),
            ("alcohol-denat", "alcohol-denat"),
        ] {
            assert_eq!(id(text), Some(want), "{text}");
        }
        assert_eq!(id("Water, Glycerin"), None, "two ingredients are not one");
        assert_eq!(id("unobtainium (aqua-free)"), None);
    }
}
