//! The safety property on the whole real catalog: the Sephora `product_info.csv.gz` of
//! `../shared/data` is imported through the catalog's own import (into a temporary SQLite
//! catalog), every product is read back as the catalog serves it, and for random customer
//! profiles (allergies drawn from knowledge-base names, synonyms, families and names it does not
//! know; pregnancy and breastfeeding; sensitivities; skin types and conditions; reactions to real
//! products; a routine with or without sunscreen) not one product the safety layer allows breaks
//! a default rule, checked two ways:
//!
//! - against the **raw declared text** (the CSV's `ingredients` column, not our parse), with a
//!   checker written here independently of the resolution code and of `safety::label`: plain
//!   word matching over lower-cased, accent-folded text, whose only ways out are a longer name the
//!   knowledge base lists as another ingredient (`Cetyl Alcohol` is not `Alcohol`) and the
//!   reviewed list of different substances;
//! - against the **knowledge base**: the facts the catalog stored for the product (every id it
//!   declares or may contain, families named generically, the pregnancy fact, whether the list is
//!   known).
//!
//! Skipped with a message where the shared data is absent, unless `DERMIS_REQUIRE_SHARED_DATA` is
//! set. `SAFETY_CASES` changes the number of profiles (default 16).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::path::PathBuf;

use dermis_catalog::store::ProductFilter;
use dermis_catalog::{Catalog, Product, import};
use dermis_core::page::{Cursor, Limit};
use dermis_customers::input::resolve_ingredient;
use dermis_customers::model::{Condition, IngredientMatch, SkinType};
use dermis_customers::projection::OnlineProfile;
use dermis_ingredients::KnowledgeBase;
use dermis_ingredients::kb::{FAMILIES, in_family};
use dermis_recommend::content::ContentProfile;
use dermis_recommend::safety::{CustomerSafety, IngredientSet, ProductSafetyFacts, Reaction, Safety};
use dermis_recommend::serving::live::LiveInteractions;
use dermis_recommend::serving::products::CatalogView;
use dermis_recommend::serving::{Context, Engine, EngineConfig, Request, Subject};
use dermis_store::testing::TestDb;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rayon::prelude::*;

const DIFFERENT_SUBSTANCES: &str = include_str!("../../ingredients/data/different_substances.csv");

fn product_info() -> Option<PathBuf> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    let path =
        PathBuf::from(manifest).join("../../../shared/data/sephora-products-and-skincare-reviews/product_info.csv.gz");
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("DERMIS_REQUIRE_SHARED_DATA").is_err(),
        "DERMIS_REQUIRE_SHARED_DATA is set but {} is missing",
        path.display()
    );
    eprintln!("skipped: {} not found (the shared data set is not part of the repository)", path.display());
    None
}

// ---- the independent raw-text checker --------------------------------------------------------

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

#[derive(Clone, Copy)]
enum Phrase {
    Name(usize),
    Not(usize),
}

struct Phrases {
    by_words: HashMap<Vec<String>, Vec<Phrase>>,
    /// Proper prefixes of every phrase (a scan stops extending past anything else).
    prefixes: HashSet<Vec<String>>,
    longest: usize,
}

impl Phrases {
    fn new(kb: &KnowledgeBase) -> Self {
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
        for rec in csv::Reader::from_reader(DIFFERENT_SUBSTANCES.as_bytes()).records() {
            let rec = rec.unwrap();
            let i = index[rec.get(1).unwrap().trim()];
            by_words.entry(words(rec.get(0).unwrap())).or_default().push(Phrase::Not(i));
        }
        let longest = by_words.keys().map(Vec::len).max().unwrap_or(1);
        let prefixes = by_words.keys().flat_map(|k| (1..k.len()).map(|n| k[..n].to_vec())).collect();
        Self { by_words, prefixes, longest }
    }
}

/// A raw declaration: its words and each ingredient's occurrences not excused by a longer name of
/// another ingredient (or of a reviewed different substance), with the ingredients enclosing it.
struct Declaration {
    words: Vec<String>,
    /// Ingredient → for each occurrence, the other ingredients whose longer names enclose it (an
    /// occurrence counts for a target set unless one of those is outside the set).
    names: HashMap<usize, Vec<Vec<usize>>>,
}

impl Declaration {
    fn new(raw: &str, phrases: &Phrases) -> Self {
        let words = words(raw);
        let mut found = Vec::new();
        for start in 0..words.len() {
            for len in 1..=phrases.longest.min(words.len() - start) {
                let w = &words[start..start + len];
                if let Some(ps) = phrases.by_words.get(w) {
                    found.extend(ps.iter().map(|p| (start, len, *p)));
                }
                if !phrases.prefixes.contains(w) {
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
            let by: Vec<usize> =
                enclosing.filter_map(|&(_, _, q)| if let Phrase::Name(j) = q { Some(j) } else { None }).collect();
            names.entry(i).or_default().push(by);
        }
        Self { words, names }
    }

    /// The ingredients of `targets` the label names (the catalog checker's rule).
    fn named(&self, targets: &HashSet<usize>) -> Vec<usize> {
        self.names
            .iter()
            .filter(|(i, occ)| targets.contains(i) && occ.iter().any(|by| by.iter().all(|j| targets.contains(j))))
            .map(|(i, _)| *i)
            .collect()
    }

    fn has_phrase(&self, phrase: &str) -> bool {
        let p = words(phrase);
        !p.is_empty() && self.words.windows(p.len()).any(|w| w == p.as_slice())
    }
}

/// Reads the Python escapes of the raw column.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'r' | 't') => out.push(' '),
            Some(e @ ('x' | 'u')) => {
                let hex: String = chars.by_ref().take(if e == 'x' { 2 } else { 4 }).collect();
                out.push(u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32).unwrap_or(' '));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn raw_declarations(path: &std::path::Path) -> HashMap<String, String> {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap()).read_to_string(&mut text).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let col = |n: &str| headers.iter().position(|h| h == n).unwrap();
    let (pid, ingredients) = (col("product_id"), col("ingredients"));
    reader.records().map(|r| r.unwrap()).map(|r| (r[pid].to_owned(), unescape(&r[ingredients]))).collect()
}

// ---- the catalog --------------------------------------------------------------------------------

struct Item {
    product: Product,
    facts: ProductSafetyFacts,
    raw: Declaration,
    /// Ingredient indexes the catalog's facts say it declares or may contain.
    kb_ids: HashSet<usize>,
}

fn item(product: Product, raw: &HashMap<String, String>, phrases: &Phrases, index: &HashMap<&str, usize>) -> Item {
    let kb = KnowledgeBase::bundled();
    let facts = ProductSafetyFacts::from_product(&product, kb);
    let stored = product.attributes.as_ref().expect("the catalog derives facts for every product");
    let kb_ids = dermis_catalog::facts::ingredient_ids(stored).keys().map(|id| index[id]).collect();
    let declared = raw.get(product.external_id.as_deref().unwrap()).map_or("", String::as_str);
    Item { raw: Declaration::new(declared, phrases), facts, kb_ids, product }
}

/// The catalog as its import builds it: the file read by the catalog's importer
/// ([`import::read_file`], the rows `dermis import catalog` writes) and each product's facts
/// derived by the catalog ([`dermis_catalog::facts::compute`], what its upsert stores), in memory.
/// With `DERMIS_SAFETY_VIA_SQLITE=1` the rows are imported into a temporary SQLite catalog instead
/// and read back in full with [`Catalog::product`], as a server loads them (slower in a debug
/// build: about 100 s on the 2-core machine).
async fn catalog_items(path: &std::path::Path) -> Vec<Item> {
    let kb = KnowledgeBase::bundled();
    let index: HashMap<&str, usize> = kb.all().iter().enumerate().map(|(i, g)| (g.id.as_str(), i)).collect();
    let phrases = Phrases::new(kb);
    let raw = raw_declarations(path);
    let started = std::time::Instant::now();
    let products: Vec<Product> = if std::env::var("DERMIS_SAFETY_VIA_SQLITE").is_ok() {
        let rows = import::read_file(path).unwrap();
        let t = TestDb::sqlite(&[dermis_store::MIGRATIONS, dermis_catalog::MIGRATIONS]).await;
        let report = import::import(t.db(), rows, 500).await.unwrap();
        assert!(report.imported > 8400, "{report:?}");
        let catalog = Catalog::new(t.db().clone());
        let mut products = Vec::new();
        let mut cursor: Option<Cursor> = None;
        loop {
            let page = catalog
                .products(&ProductFilter::default(), cursor.as_ref(), Limit::try_from(500).unwrap())
                .await
                .unwrap();
            for listed in page.items {
                products.push(catalog.product(&listed.id).await.unwrap());
            }
            match page.next_cursor {
                Some(c) => cursor = Some(Cursor::parse(&c).unwrap()),
                None => break,
            }
        }
        products
    } else {
        // As the catalog's import builds them, facts derived (what `dermis eval --catalog` reads).
        dermis_recommend::content::read_catalog(path, false).unwrap().0
    };
    assert!(products.len() > 8400, "{} products", products.len());
    let derived = started.elapsed().as_secs_f64();
    let items: Vec<Item> = products.into_par_iter().map(|p| item(p, &raw, &phrases, &index)).collect();
    eprintln!(
        "{} products: catalog facts in {derived:.1} s, safety facts and the test's raw reading in {:.1} s",
        items.len(),
        started.elapsed().as_secs_f64() - derived
    );
    items
}

// ---- random profiles ------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Profile {
    allergies: Vec<String>,
    sensitivities: Vec<String>,
    pregnant: bool,
    breastfeeding: bool,
    skin_type: Option<SkinType>,
    conditions: Vec<Condition>,
    /// (product index, suspect ingredient ids drawn from what it declares).
    reactions: Vec<(usize, Vec<usize>)>,
    sunscreen: Option<bool>,
}

fn names_pool(kb: &KnowledgeBase, items: &[Item]) -> Vec<String> {
    let mut pool: Vec<String> = Vec::new();
    for g in kb.all() {
        pool.push(g.inci.clone());
        pool.extend(g.synonyms.iter().take(2).cloned());
    }
    // Families, several times so they come up often.
    for _ in 0..20 {
        pool.extend(FAMILIES.iter().map(|(f, _)| (*f).to_owned()));
    }
    // Names the knowledge base does not know, as labels write them, and some no label writes.
    let mut unknown: BTreeSet<String> = BTreeSet::new();
    for it in items {
        if let Some(f) = &it.product.attributes {
            unknown.extend(f.unknown_ingredients.iter().filter(|n| n.len() < 40).take(2).cloned());
        }
    }
    pool.extend(unknown.into_iter().step_by(7).take(400));
    pool.extend(["Unobtainium", "Dragon Scale Extract", "Mango"].map(str::to_owned));
    pool
}

fn profiles(pool: Vec<String>, declared: Vec<Vec<usize>>) -> impl Strategy<Value = Profile> {
    let n = declared.len();
    let names = proptest::collection::vec(proptest::sample::select(pool.clone()), 0..4);
    let sens = proptest::collection::vec(proptest::sample::select(pool), 0..3);
    let reactions =
        proptest::collection::vec((0..n, any::<proptest::sample::Index>(), 0..3usize), 0..3).prop_map(move |rs| {
            rs.into_iter()
                .map(|(p, pick, k)| {
                    let d = &declared[p];
                    let suspects = if d.is_empty() {
                        Vec::new()
                    } else {
                        (0..k).map(|j| d[(pick.index(d.len()) + j) % d.len()]).collect()
                    };
                    (p, suspects)
                })
                .collect::<Vec<_>>()
        });
    (
        names,
        sens,
        any::<(bool, bool)>(),
        proptest::option::of(proptest::sample::select(SkinType::ALL.to_vec())),
        proptest::sample::subsequence(Condition::ALL.to_vec(), 0..3),
        reactions,
        proptest::option::of(any::<bool>()),
    )
        .prop_map(
            |(allergies, sensitivities, (pregnant, breastfeeding), skin_type, conditions, reactions, sunscreen)| {
                Profile {
                    allergies,
                    sensitivities,
                    pregnant,
                    breastfeeding,
                    skin_type,
                    conditions,
                    reactions,
                    sunscreen,
                }
            },
        )
}

/// The online profile the customers domain would hold (its own resolution of names).
fn online_profile(p: &Profile, kb: &KnowledgeBase) -> OnlineProfile {
    let mut o = OnlineProfile {
        customer_id: "cus_prop".into(),
        skin_type: p.skin_type,
        conditions: p.conditions.clone(),
        pregnant: p.pregnant,
        breastfeeding: p.breastfeeding,
        ..OnlineProfile::default()
    };
    for (names, ids, families, unknown) in [
        (&p.allergies, &mut o.allergy_ids, Some(&mut o.allergy_families), Some(&mut o.unknown_allergens)),
        (&p.sensitivities, &mut o.sensitivity_ids, None, None),
    ] {
        let (mut fams, mut unk) = (Vec::new(), Vec::new());
        for n in names {
            let r = resolve_ingredient(kb, n);
            match (r.matched, r.id) {
                (IngredientMatch::Family, Some(f)) => {
                    ids.extend(kb.expand(&f).unwrap_or_default());
                    fams.push(f);
                }
                (IngredientMatch::Ingredient, Some(id)) => {
                    ids.insert(id);
                }
                _ => unk.push(n.clone()),
            }
        }
        if let Some(f) = families {
            *f = fams;
        }
        if let Some(u) = unknown {
            *u = unk;
        }
    }
    o
}

// ---- the property -------------------------------------------------------------------------------

/// What the customer's names stand for, by the test's own reading: ingredient indexes, families,
/// unknown names.
fn targets(
    names: &[String],
    kb: &KnowledgeBase,
    index: &HashMap<&str, usize>,
) -> (HashSet<usize>, Vec<String>, Vec<String>) {
    let (mut ids, mut fams, mut unknown) = (HashSet::new(), Vec::new(), Vec::new());
    for n in names {
        let family = n.trim().to_lowercase().replace([' ', '_'], "-");
        if FAMILIES.iter().any(|(f, _)| *f == family) {
            ids.extend(kb.all().iter().enumerate().filter(|(_, g)| in_family(g, &family)).map(|(i, _)| i));
            fams.push(family);
        } else if let Some(g) = kb.resolve_label(n) {
            ids.insert(index[g.id.as_str()]);
        } else {
            unknown.push(n.clone());
        }
    }
    (ids, fams, unknown)
}

/// One thing an allowed product must not contain: (what, ingredient indexes, families named
/// generically, phrases the label must not write).
type Forbidden = (&'static str, HashSet<usize>, Vec<String>, Vec<String>);

/// The default rules for one profile, as the test reads them.
struct Expected {
    forbidden: Vec<Forbidden>,
    /// The knowledge base's per-product pregnancy fact must not be set.
    pregnant: bool,
    /// The ingredient list must be known.
    needs_list: bool,
    /// Products reacted to (ids).
    reacted: Vec<String>,
}

fn expected(p: &Profile, items: &[Item], kb: &KnowledgeBase, index: &HashMap<&str, usize>) -> Expected {
    let select = |f: &dyn Fn(&dermis_ingredients::Ingredient) -> bool| -> HashSet<usize> {
        kb.all().iter().enumerate().filter(|(_, g)| f(g)).map(|(i, _)| i).collect()
    };
    let mut forbidden: Vec<Forbidden> = Vec::new();
    let (a_ids, a_fams, a_unknown) = targets(&p.allergies, kb, index);
    let allergic = !a_ids.is_empty() || !a_fams.is_empty() || !a_unknown.is_empty();
    forbidden.push(("allergy", a_ids, a_fams, a_unknown));
    // The profile keeps sensitivities as ids only (families expanded; unknown names dropped).
    let (s_ids, _, _) = targets(&p.sensitivities, kb, index);
    let sensitivities = !s_ids.is_empty();
    forbidden.push(("sensitivity", s_ids, Vec::new(), Vec::new()));
    let pregnant = p.pregnant || p.breastfeeding;
    if pregnant {
        let flagged = select(&|g| g.pregnancy.is_some() && g.id != "salicylic-acid");
        forbidden.push(("pregnancy", flagged, Vec::new(), Vec::new()));
    }
    let reactive = [
        Condition::Eczema,
        Condition::Rosacea,
        Condition::Dermatitis,
        Condition::PerioralDermatitis,
        Condition::SeborrheicDermatitis,
    ];
    let sensitive_skin = p.skin_type == Some(SkinType::Sensitive) || p.conditions.iter().any(|c| reactive.contains(c));
    let acne_prone = p.conditions.contains(&Condition::Acne) || p.skin_type == Some(SkinType::Oily);
    if sensitive_skin || sensitivities {
        forbidden.push((
            "sensitive skin",
            select(&|g| in_family(g, "fragrance") || in_family(g, "essential-oils")),
            vec!["fragrance".to_owned(), "essential-oils".to_owned()],
            vec!["essential oils".to_owned(), "essential oil".to_owned()],
        ));
    }
    if acne_prone {
        forbidden.push(("acne-prone", select(&|g| g.comedogenic.is_some_and(|c| c >= 3)), Vec::new(), Vec::new()));
    }
    if p.sunscreen == Some(false) {
        forbidden.push(("photosensitizer, no sunscreen", select(&|g| g.photosensitizing), Vec::new(), Vec::new()));
    }
    for (_, suspects) in &p.reactions {
        forbidden.push(("reaction", suspects.iter().copied().collect(), Vec::new(), Vec::new()));
    }
    Expected {
        forbidden,
        pregnant,
        needs_list: allergic || sensitivities || pregnant || !p.reactions.is_empty() || sensitive_skin || acne_prone,
        reacted: p.reactions.iter().map(|(r, _)| items[*r].product.id.clone()).collect(),
    }
}

/// Every way an allowed product breaks a default rule.
fn violations(e: &Expected, item: &Item, kb: &KnowledgeBase) -> Vec<String> {
    let mut out = Vec::new();
    let stored = item.product.attributes.as_ref().unwrap();
    for (what, ids, families, phrases) in &e.forbidden {
        for i in item.raw.named(ids) {
            out.push(format!("{what}: the label names {}", kb.all()[i].id));
        }
        for i in item.kb_ids.intersection(ids) {
            out.push(format!("{what}: the knowledge base says it contains {}", kb.all()[*i].id));
        }
        for f in families.iter().filter(|f| stored.possible_families.contains(f)) {
            out.push(format!("{what}: it names the family {f}"));
        }
        for u in phrases.iter().filter(|u| item.raw.has_phrase(u)) {
            out.push(format!("{what}: the label writes {u:?}"));
        }
    }
    if e.pregnant && stored.pregnancy_caution == Some(true) {
        out.push("pregnancy: the knowledge base flags it".into());
    }
    if e.reacted.contains(&item.product.id) {
        out.push("reaction: it is the product reacted to".into());
    }
    if e.needs_list && !stored.has_ingredient_list {
        out.push("its ingredient list is unknown".into());
    }
    out
}

#[tokio::test]
async fn no_allowed_product_breaks_a_rule_for_random_profiles_on_the_whole_catalog() {
    let Some(path) = product_info() else { return };
    let started = std::time::Instant::now();
    let items = catalog_items(&path).await;
    let kb = KnowledgeBase::bundled();
    let index: HashMap<&str, usize> = kb.all().iter().enumerate().map(|(i, g)| (g.id.as_str(), i)).collect();
    let safety = Safety::bundled();
    // What reading the label adds to the parsed facts: listed allergens a label names that the
    // parse neither resolved nor counted as possibly contained.
    let added: usize = items
        .iter()
        .map(|it| {
            let parsed = it.facts.ingredient_ids(kb);
            let label = it.facts.label_ids(kb);
            label.iter().filter(|id| !parsed.contains(id) && kb.get(id).is_some_and(|g| g.is_allergen())).count()
        })
        .sum();
    eprintln!("the raw labels name {added} (product, listed allergen) pairs the parsed facts do not have");
    let declared: Vec<Vec<usize>> =
        items.iter().map(|it| it.facts.ingredient_ids(kb).iter().map(|id| index[id]).collect()).collect();
    let pool = names_pool(kb, &items);
    let cases = std::env::var("SAFETY_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(16);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let allowed_total = std::cell::Cell::new(0usize);
    let excluded_total = std::cell::Cell::new(0usize);
    let filtering = std::cell::Cell::new(0f64);
    let flagged_total = std::cell::Cell::new(0usize);
    // The serving pipeline over the same catalog: what it recommends and the routines it builds
    // are checked by the same raw-label checker.
    let t = TestDb::sqlite(&[dermis_store::MIGRATIONS, dermis_events::MIGRATIONS]).await;
    let view = CatalogView::new(Catalog::new(t.db().clone()), std::sync::Arc::new(Safety::bundled()));
    let priced: Vec<(Product, Option<i64>)> =
        items.iter().enumerate().map(|(i, it)| (it.product.clone(), Some(500 + (i as i64 % 40) * 100))).collect();
    view.load_products(&priced);
    let live = LiveInteractions::new(t.db().clone(), dermis_events::Pseudonyms::with_key(b"k"), "n", None);
    let engine = Engine::new(view, live, std::sync::Arc::new(Safety::bundled()), EngineConfig::default());
    let by_product: HashMap<&str, &Item> = items.iter().map(|it| (it.product.id.as_str(), it)).collect();
    let served_total = std::cell::Cell::new(0usize);
    let checked = std::time::Instant::now();
    runner
        .run(&profiles(pool, declared), |p| {
            let mut customer = CustomerSafety::from_profile(&online_profile(&p, kb));
            customer.reactions = p
                .reactions
                .iter()
                .map(|(r, suspects)| {
                    let ids = suspects.iter().map(|&i| kb.all()[i].id.clone()).collect();
                    let reacted = items[*r].product.external_id.clone().unwrap();
                    Reaction::new(reacted, IngredientSet { ids, ..IngredientSet::default() })
                })
                .collect();
            customer.routine_has_sunscreen = p.sunscreen;
            let t = std::time::Instant::now();
            let safe = safety.filter(&customer, items.iter().map(|it| (it, &it.facts)));
            filtering.set(filtering.get() + t.elapsed().as_secs_f64());
            let e = expected(&p, &items, kb, &index);
            for s in safe.iter() {
                let broken = violations(&e, s.value, kb);
                if !broken.is_empty() {
                    return Err(TestCaseError::fail(format!(
                        "{} ({}) is allowed but: {}",
                        s.value.product.external_id.as_deref().unwrap_or_default(),
                        s.value.product.name,
                        broken.join("; ")
                    )));
                }
            }
            // The checker is not vacuous: it finds what broke a rule in the excluded products
            // (a sample of them).
            let by_id: HashMap<&str, &Item> = items.iter().map(|it| (it.product.id.as_str(), it)).collect();
            let caught = safe
                .excluded()
                .iter()
                .step_by(5)
                .filter(|x| !violations(&e, by_id[x.product_id.as_str()], kb).is_empty())
                .count();
            flagged_total.set(flagged_total.get() + caught);
            // What the engine serves: recommendations and both routines.
            let subject = Subject {
                user_id: None,
                customer_id: Some("cus_test".into()),
                content: ContentProfile {
                    skin_type: p.skin_type.map(|s| s.as_str().to_owned()),
                    concerns: Vec::new(),
                    sensitive: !p.sensitivities.is_empty(),
                },
                safety: customer.clone(),
                pseudonyms: Vec::new(),
                personalized: true,
                unknown_allergies: Vec::new(),
            };
            let req = Request {
                k: 100,
                placement: None,
                explain: false,
                filter: None,
                exclude: Vec::new(),
                shown: Default::default(),
                context: Context::default(),
                blend: None,
                rerank: None,
            };
            let recs = engine.recommend(&subject, &req);
            let routine = engine.routine(&subject, &[], None, Context::default(), false);
            // A routine the builder gave a sunscreen is judged as a routine with one (its
            // photosensitizers are allowed, with a warning).
            let with_sunscreen = routine.am.iter().any(|s| s.step == dermis_ingredients::RoutineStep::Sunscreen);
            let e_routine = if with_sunscreen {
                expected(&Profile { sunscreen: Some(true), ..p.clone() }, &items, kb, &index)
            } else {
                expected(&p, &items, kb, &index)
            };
            let served = recs
                .items
                .iter()
                .map(|i| (i, &e))
                .chain(routine.am.iter().chain(&routine.pm).map(|s| (&s.product, &e_routine)));
            for (item, expect) in served {
                served_total.set(served_total.get() + 1);
                let id = item.product_id.as_str();
                let broken = violations(expect, by_product[id], kb);
                if !broken.is_empty() {
                    return Err(TestCaseError::fail(format!("the engine served {id}: {}", broken.join("; "))));
                }
            }
            allowed_total.set(allowed_total.get() + safe.len());
            excluded_total.set(excluded_total.get() + safe.excluded().len());
            Ok(())
        })
        .unwrap();
    eprintln!(
        "{cases} profiles over {} products: {:.0} allowed and {:.0} excluded on average; {:.0} ms per filter of the \
         whole catalog; checked in {:.1} s; {:.1} s in all",
        items.len(),
        allowed_total.get() as f64 / f64::from(cases),
        excluded_total.get() as f64 / f64::from(cases),
        filtering.get() * 1000.0 / f64::from(cases),
        checked.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    eprintln!(
        "the test's own checker finds a broken rule in {:.0} of every 100 excluded products (sampled)",
        flagged_total.get() as f64 * 500.0 / excluded_total.get().max(1) as f64
    );
    eprintln!("the engine served {} recommendations and routine steps, none breaking a rule", served_total.get());
    assert!(served_total.get() > 0, "the engine served nothing at all");
    assert!(allowed_total.get() > 0, "the safety layer allowed nothing at all");
    assert!(flagged_total.get() > 0, "the test's checker never finds anything: it checks nothing");
}
