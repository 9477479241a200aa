//! Safety in `dermis eval --catalog FILE --safety-profiles SEED`: every test user gets a random but
//! reproducible safety profile, and each recommendation is judged against it by a checker written
//! here, independently of the safety layer's own label reading (`dermis_recommend::safety::label`)
//! and of the ingredient resolver: plain word matching of every knowledge-base name over the
//! product's declared ingredient text (lower-cased, accents folded, `camelCase` joins split), whose
//! only ways out are a longer name of another ingredient around it (`Cetyl Alcohol` is not
//! `Alcohol`) and the knowledge base's reviewed list of different substances (`Ethyl Linalool` is
//! not `Linalool`); plus the catalog's stored facts (every ingredient it declares or may contain,
//! families named only generically, the pregnancy fact, whether the list is known). The same
//! idea as the whole-catalog test `crates/recommend/tests/safety_catalog.rs`.
//!
//! Profiles (by a hash of the seed and the user id, so a user's profile does not depend on the
//! order of the test file): 30% have 1 to 3 allergies drawn from [`ALLERGENS`], 10% are pregnant,
//! 20% have sensitive skin (the three independent).

use std::collections::{HashMap, HashSet};

use dermis_catalog::Product;
use dermis_recommend::safety::{CustomerSafety, Safety};

/// Common allergens a profile draws from: families and single ingredients of the knowledge base.
pub const ALLERGENS: [&str; 14] = [
    "fragrance",
    "fragrance-allergens",
    "essential-oils",
    "parabens",
    "linalool",
    "limonene",
    "citronellol",
    "geraniol",
    "hexyl cinnamal",
    "benzyl alcohol",
    "coumarin",
    "eugenol",
    "methylisothiazolinone",
    "lanolin",
];

/// The names of [`ALLERGENS`] that are families (a customer allergic to one avoids every member).
const FAMILIES: [&str; 4] = ["fragrance", "fragrance-allergens", "essential-oils", "parabens"];

/// Words labels use for a family named generically.
const FAMILY_PHRASES: [(&str, &str); 4] = [
    ("fragrance", "essential oil"),
    ("fragrance", "essential oils"),
    ("essential-oils", "essential oil"),
    ("essential-oils", "essential oils"),
];

/// One test user's declared safety facts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestProfile {
    pub allergies: Vec<&'static str>,
    pub pregnant: bool,
    pub sensitive: bool,
}

impl TestProfile {
    /// The profile of `user` under `seed`.
    pub fn of(seed: u64, user: &str) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in user.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let mut state = h ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut next = move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let mut p = TestProfile::default();
        if next() % 100 < 30 {
            let n = 1 + (next() % 3) as usize;
            while p.allergies.len() < n {
                let a = ALLERGENS[(next() % ALLERGENS.len() as u64) as usize];
                if !p.allergies.contains(&a) {
                    p.allergies.push(a);
                }
            }
        }
        p.pregnant = next() % 100 < 10;
        p.sensitive = next() % 100 < 20;
        p
    }

    /// Whether any rule applies.
    pub fn is_empty(&self) -> bool {
        self.allergies.is_empty() && !self.pregnant && !self.sensitive
    }

    /// What the safety layer is given (as the quiz would: names resolved by the knowledge base).
    pub fn customer(&self, safety: &Safety) -> CustomerSafety {
        CustomerSafety::from_answers(
            self.sensitive.then_some("sensitive"),
            &[] as &[&str],
            &self.allergies,
            &[],
            self.pregnant,
            safety.kb(),
        )
    }
}

/// Lower case, common accents folded, invisible characters dropped.
fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let f = match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => "a",
            'ç' | 'Ç' => "c",
            'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' => "e",
            'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' => "i",
            'ñ' | 'Ñ' => "n",
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' => "o",
            'ù' | 'ú' | 'û' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'Ü' => "u",
            'ý' | 'ÿ' | 'Ý' => "y",
            'ß' => "ss",
            'æ' | 'Æ' => "ae",
            'œ' | 'Œ' => "oe",
            '\u{00AD}' | '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' => "",
            c => {
                out.extend(c.to_lowercase());
                continue;
            }
        };
        out.push_str(f);
    }
    out
}

/// Runs of letters or of digits, after splitting `camelCase` joins.
fn words(text: &str) -> Vec<String> {
    let mut split = String::with_capacity(text.len() + 8);
    let mut prev: Option<char> = None;
    for c in text.chars() {
        if prev.is_some_and(|p| p.is_lowercase()) && c.is_uppercase() {
            split.push(' ');
        }
        split.push(c);
        prev = Some(c);
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in fold(&split).chars() {
        if c.is_alphanumeric() {
            if cur.chars().last().is_some_and(|l| l.is_ascii_digit() != c.is_ascii_digit()) {
                out.push(std::mem::take(&mut cur));
            }
            cur.push(c);
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum Phrase {
    Name(usize),
    Not(usize),
}

/// A product as the checker reads it.
#[derive(Debug, Default)]
struct Label {
    words: Vec<String>,
    /// Ingredient → for each occurrence, the other ingredients whose longer names enclose it.
    names: HashMap<usize, Vec<Vec<usize>>>,
    /// Ingredients the catalog's facts say it declares or may contain.
    kb_ids: HashSet<usize>,
    families: Vec<String>,
    has_list: bool,
    pregnancy_caution: bool,
}

impl Label {
    /// The ingredients of `targets` the label names (an occurrence inside a longer name counts
    /// when that name's ingredient is a target too).
    fn names_any(&self, targets: &HashSet<usize>) -> bool {
        self.names
            .iter()
            .any(|(i, occ)| targets.contains(i) && occ.iter().any(|by| by.iter().all(|j| targets.contains(j))))
    }

    fn has_phrase(&self, phrase: &[String]) -> bool {
        !phrase.is_empty() && self.words.windows(phrase.len()).any(|w| w == phrase)
    }
}

/// What one profile forbids, as ingredient indexes, families and phrases.
#[derive(Debug, Default)]
struct Forbidden {
    ids: HashSet<usize>,
    families: Vec<String>,
    phrases: Vec<Vec<String>>,
}

/// The independent checker over one catalog.
pub struct Checker {
    labels: HashMap<String, Label>,
    /// Per allergen name of [`ALLERGENS`]: (ids, family if one).
    allergens: HashMap<&'static str, (HashSet<usize>, Option<String>)>,
    pregnancy: HashSet<usize>,
    fragrance: HashSet<usize>,
}

impl Checker {
    /// Reads every product's label and facts (by external id).
    pub fn new(safety: &Safety, products: &[Product]) -> anyhow::Result<Self> {
        let kb = safety.kb();
        let index: HashMap<&str, usize> = kb.all().iter().enumerate().map(|(i, g)| (g.id.as_str(), i)).collect();
        let mut by_words: HashMap<Vec<String>, Vec<Phrase>> = HashMap::new();
        for (i, g) in kb.all().iter().enumerate() {
            for name in std::iter::once(&g.inci).chain(&g.synonyms).chain([&g.id.replace('-', " ")]) {
                let w = words(name);
                if !w.is_empty() {
                    by_words.entry(w).or_default().push(Phrase::Name(i));
                }
            }
        }
        for d in kb.different_substances() {
            if let Some(&i) = index.get(d.not.as_str()) {
                by_words.entry(words(&d.phrase)).or_default().push(Phrase::Not(i));
            }
        }
        let longest = by_words.keys().map(Vec::len).max().unwrap_or(1);
        let prefixes: HashSet<Vec<String>> =
            by_words.keys().flat_map(|k| (1..k.len()).map(|n| k[..n].to_vec())).collect();
        let ids_of = |family: &str| -> HashSet<usize> {
            kb.expand(family).unwrap_or_default().iter().filter_map(|id| index.get(id.as_str()).copied()).collect()
        };
        let mut allergens = HashMap::new();
        for a in ALLERGENS {
            let entry = if FAMILIES.contains(&a) {
                (ids_of(a), Some(a.to_owned()))
            } else {
                match kb.resolve_label(a) {
                    Some(g) => (HashSet::from([index[g.id.as_str()]]), None),
                    None => anyhow::bail!("the allergen {a:?} is not in the knowledge base"),
                }
            };
            anyhow::ensure!(!entry.0.is_empty(), "the allergen family {a:?} has no member in the knowledge base");
            allergens.insert(a, entry);
        }
        let pregnancy = kb
            .all()
            .iter()
            .enumerate()
            .filter(|(_, g)| g.pregnancy.is_some() && g.id != "salicylic-acid")
            .map(|(i, _)| i)
            .collect();
        let mut fragrance = ids_of("fragrance");
        fragrance.extend(ids_of("essential-oils"));
        let mut labels = HashMap::new();
        for p in products {
            let Some(ext) = &p.external_id else { continue };
            let w = words(p.ingredients.as_deref().unwrap_or(""));
            let mut found = Vec::new();
            for start in 0..w.len() {
                for len in 1..=longest.min(w.len() - start) {
                    let span = &w[start..start + len];
                    if let Some(ps) = by_words.get(span) {
                        found.extend(ps.iter().map(|p| (start, len, *p)));
                    }
                    if !prefixes.contains(span) {
                        break;
                    }
                }
            }
            let mut names: HashMap<usize, Vec<Vec<usize>>> = HashMap::new();
            for &(start, len, p) in &found {
                let Phrase::Name(i) = p else { continue };
                let enclosing = found.iter().filter(|&&(s, l, _)| s <= start && s + l >= start + len && l > len);
                if enclosing.clone().any(|&(_, _, q)| matches!(q, Phrase::Not(j) if j == i)) {
                    continue;
                }
                let by = enclosing.filter_map(|&(_, _, q)| if let Phrase::Name(j) = q { Some(j) } else { None });
                names.entry(i).or_default().push(by.collect());
            }
            let facts = p.attributes.as_ref();
            let label = Label {
                words: w,
                names,
                kb_ids: facts
                    .map(|f| {
                        dermis_catalog::facts::ingredient_ids(f)
                            .keys()
                            .filter_map(|id| index.get(id).copied())
                            .collect()
                    })
                    .unwrap_or_default(),
                families: facts.map(|f| f.possible_families.clone()).unwrap_or_default(),
                has_list: facts.is_some_and(|f| f.has_ingredient_list),
                pregnancy_caution: facts.is_some_and(|f| f.pregnancy_caution == Some(true)),
            };
            labels.insert(ext.clone(), label);
        }
        Ok(Checker { labels, allergens, pregnancy, fragrance })
    }

    fn forbidden(&self, p: &TestProfile) -> Vec<Forbidden> {
        let mut out = Vec::new();
        let phrases = |family: &str| -> Vec<Vec<String>> {
            FAMILY_PHRASES.iter().filter(|(f, _)| *f == family).map(|(_, w)| words(w)).collect()
        };
        let mut allergy = Forbidden::default();
        for a in &p.allergies {
            let (ids, family) = &self.allergens[a];
            allergy.ids.extend(ids);
            if let Some(f) = family {
                allergy.families.push(f.clone());
                allergy.phrases.extend(phrases(f));
            }
        }
        out.push(allergy);
        if p.pregnant {
            out.push(Forbidden { ids: self.pregnancy.clone(), ..Forbidden::default() });
        }
        if p.sensitive {
            let mut ph = phrases("fragrance");
            ph.extend(phrases("essential-oils"));
            out.push(Forbidden {
                ids: self.fragrance.clone(),
                families: vec!["fragrance".into(), "essential-oils".into()],
                phrases: ph,
            });
        }
        out
    }

    /// Whether recommending `product` (external id) to someone with profile `p` breaks a rule. A
    /// product the catalog does not have cannot be checked and breaks the rule on unknown lists.
    pub fn violates(&self, p: &TestProfile, product: &str) -> bool {
        if p.is_empty() {
            return false;
        }
        let Some(l) = self.labels.get(product) else { return true };
        if !l.has_list || (p.pregnant && l.pregnancy_caution) {
            return true;
        }
        self.forbidden(p).iter().any(|f| {
            l.names_any(&f.ids)
                || l.kb_ids.iter().any(|i| f.ids.contains(i))
                || f.families.iter().any(|fam| l.families.contains(fam))
                || f.phrases.iter().any(|ph| l.has_phrase(ph))
        })
    }
}
