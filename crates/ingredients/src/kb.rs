//! The ingredient knowledge base: `data/ingredients.csv`, `data/sources.csv` and the reviewed
//! `data/different_substances.csv`, compiled into the binary, checked and indexed. Every fact
//! names its sources; see `data/README.md` for the vocabularies. What one ingredient is
//! ([`Ingredient`], its families) is re-exported here; reading labels against the knowledge base
//! is [`crate::resolve`]'s.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::inci::{candidate_keys, key};
pub use crate::ingredient::{CONCERNS, ConcernEvidence, Evidence, FAMILIES, FUNCTIONS, Ingredient, Source, in_family};
use crate::phrases::{DifferentSubstance, Index, read_different_substances};

const INGREDIENTS_CSV: &str = include_str!("../data/ingredients.csv");
const SOURCES_CSV: &str = include_str!("../data/sources.csv");
const DIFFERENT_SUBSTANCES_CSV: &str = include_str!("../data/different_substances.csv");

/// Version of the rules that read labels: part of [`KnowledgeBase::version`], so products derived
/// under older rules are derived again (on start, in the background). Bump it with any change to
/// what an entry resolves to or may name, in [`crate::resolve`] (and the phrase index it reads),
/// in [`crate::inci`] parsing or in [`crate::facts`].
const RULES_VERSION: &str = "resolution-1";

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

    /// The reviewed list of different substances.
    pub fn different_substances(&self) -> &[DifferentSubstance] {
        &self.index.different
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
}
