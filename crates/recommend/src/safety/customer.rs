//! [`CustomerSafety`]: what the safety rules read about a customer: the skin facts of the
//! online profile ([`OnlineProfile`], health facts only under the `health_data` consent, as the
//! profile projection keeps them, a dermatologist's contraindicated ingredients among them), plus
//! inputs other parts of the system provide: reactions the customer reported, further
//! contraindications, whether the routine has a sunscreen, and availability for the requested
//! channel or store.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use dermis_customers::projection::OnlineProfile;
use dermis_ingredients::KnowledgeBase;
use dermis_ingredients::kb::{FAMILIES, in_family};
use serde::Serialize;

use super::product::ProductSafetyFacts;

/// Ingredients named by a customer, a dermatologist or a reaction report, resolved through the
/// knowledge base: canonical ids (families expanded), families, and names it does not know
/// (matched as words of the label).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngredientSet {
    /// Canonical ingredient ids, families expanded.
    pub ids: BTreeSet<String>,
    /// Families named (`fragrance`, `parabens` ...).
    pub families: Vec<String>,
    /// Names the knowledge base does not know, as given.
    pub unknown: Vec<String>,
}

impl IngredientSet {
    /// Resolves names as the customers domain does: a family, else an ingredient by any of its
    /// names or label forms, else kept as an unknown name.
    pub fn resolve<S: AsRef<str>>(names: &[S], kb: &KnowledgeBase) -> Self {
        let mut out = Self::default();
        for n in names {
            out.add(n.as_ref(), kb);
        }
        out
    }

    /// Adds one name.
    pub fn add(&mut self, name: &str, kb: &KnowledgeBase) {
        let name = name.trim();
        if name.is_empty() {
            return;
        }
        let family = name.to_lowercase().replace([' ', '_'], "-");
        if FAMILIES.iter().any(|(f, _)| *f == family) {
            self.ids.extend(kb.all().iter().filter(|i| in_family(i, &family)).map(|i| i.id.clone()));
            if !self.families.contains(&family) {
                self.families.push(family);
            }
        } else if let Some(i) = kb.resolve_label(name) {
            self.ids.insert(i.id.clone());
        } else if !self.unknown.iter().any(|u| u.eq_ignore_ascii_case(name)) {
            self.unknown.push(name.to_owned());
        }
    }

    /// Whether nothing is named.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.families.is_empty() && self.unknown.is_empty()
    }
}

/// A reaction the customer reported to a product, and the ingredients suspected of causing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reaction {
    /// The product reacted to: its id or external id.
    pub product: String,
    /// Ingredients suspected: every product containing one is excluded too.
    pub suspects: IngredientSet,
}

impl Reaction {
    /// A reaction with the suspects the report (or an advisor) named.
    pub fn new(product: impl Into<String>, suspects: IngredientSet) -> Self {
        Self { product: product.into(), suspects }
    }

    /// A reaction to a product when no ingredient was named: the suspects are what it declares
    /// that is a listed allergen, fragrance, an essential oil, a drying alcohol, or rated as a
    /// moderate or high irritant (2 or more), the usual causes of a reaction to a cosmetic.
    pub fn inferred(reacted: &ProductSafetyFacts, kb: &KnowledgeBase) -> Self {
        let mut suspects = IngredientSet::default();
        for &i in &reacted.declared {
            let Some(g) = kb.all().get(i as usize) else { continue };
            let suspect = g.is_allergen()
                || in_family(g, "fragrance")
                || g.has("essential-oil")
                || g.has("drying-alcohol")
                || g.irritation.is_some_and(|r| r >= 2);
            if suspect {
                suspects.ids.insert(g.id.clone());
            }
        }
        Self { product: reacted.product_id().to_owned(), suspects }
    }
}

/// Where a request asks about stock: a sales channel, a store, or both (the store wins: what
/// that store holds, whatever the channel).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct StockPlace {
    /// A sales channel (`web`, `app`, `pos`, `marketplace:NAME`).
    pub channel: Option<String>,
    /// A store: the inventory's location id or code.
    pub store: Option<String>,
}

impl StockPlace {
    /// The place a request names; `None` when it names neither a channel nor a store (then
    /// nothing is filtered by stock).
    pub fn of(channel: Option<&str>, store: Option<&str>) -> Option<Self> {
        let clean = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        let place = Self { channel: clean(channel), store: clean(store) };
        (place.channel.is_some() || place.store.is_some()).then_some(place)
    }

    /// In words, as the out-of-stock rule's `{scope}` (`store ST-MITTE`, `channel web`).
    pub fn scope(&self) -> String {
        match (&self.store, &self.channel) {
            (Some(store), _) => format!("store {store}"),
            (None, Some(channel)) => format!("channel {channel}"),
            (None, None) => "no channel or store".to_owned(),
        }
    }
}

/// The inventory as the safety layer reads it: from memory, never the database (a request does
/// not wait on stock). This crate does not depend on the inventory: the server implements it
/// over the inventory's public API.
pub trait StockView: Send + Sync + 'static {
    /// Why stock cannot be judged at `place`, in plain words (a store or channel the inventory
    /// does not know); `None` when it can. Where it cannot, nothing is excluded for stock.
    fn unknown_place(&self, place: &StockPlace) -> Option<String>;

    /// Whether a product with these SKU ids is in stock at `place`: `Some(true)` when one of
    /// them is available there, `Some(false)` when the inventory tracks them and none is,
    /// `None` when it has no stock records for them (or only for some, none available): such a
    /// product is never excluded for stock. That is how recommendations degrade when the
    /// inventory is absent or covers only part of the catalog.
    fn in_stock(&self, skus: &[String], place: &StockPlace) -> Option<bool>;
}

/// What "in stock" means for one request: a fixed list, or the inventory read at a place.
#[derive(Clone)]
enum Source {
    /// Only these products (ids or external ids) are in stock.
    Listed(Arc<HashSet<String>>),
    /// Read from the inventory, once per product per request.
    Stock { view: Arc<dyn StockView>, place: StockPlace, memo: Arc<Mutex<HashMap<String, bool>>> },
}

/// The products available for the requested channel or store.
#[derive(Clone)]
pub struct Availability {
    /// The channel or store, in words (`channel web`, `store Paris Opéra`).
    pub scope: String,
    source: Source,
}

impl Availability {
    /// Only the products listed (ids or external ids) are in stock for `scope`.
    pub fn listed(scope: impl Into<String>, in_stock: HashSet<String>) -> Self {
        Self { scope: scope.into(), source: Source::Listed(Arc::new(in_stock)) }
    }

    /// What `view` says at `place`; a product it does not track is in stock.
    pub fn from_stock(view: Arc<dyn StockView>, place: StockPlace) -> Self {
        Self { scope: place.scope(), source: Source::Stock { view, place, memo: Arc::default() } }
    }

    /// Whether the product is out of stock here (one the inventory does not track never is).
    pub fn out_of_stock(&self, p: &ProductSafetyFacts) -> bool {
        match &self.source {
            Source::Listed(in_stock) => {
                !in_stock.contains(&*p.product_id) && !p.external_id.as_deref().is_some_and(|e| in_stock.contains(e))
            }
            Source::Stock { view, place, memo } => {
                if p.skus.is_empty() {
                    return false;
                }
                if let Some(&out) = memo.lock().unwrap_or_else(|e| e.into_inner()).get(&*p.product_id) {
                    return out;
                }
                let out = view.in_stock(&p.skus, place) == Some(false);
                memo.lock().unwrap_or_else(|e| e.into_inner()).insert(p.product_id.to_string(), out);
                out
            }
        }
    }
}

impl std::fmt::Debug for Availability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Availability");
        d.field("scope", &self.scope);
        match &self.source {
            Source::Listed(l) => d.field("in_stock", l),
            Source::Stock { place, .. } => d.field("place", place),
        };
        d.finish()
    }
}

impl PartialEq for Availability {
    fn eq(&self, other: &Self) -> bool {
        self.scope == other.scope
            && match (&self.source, &other.source) {
                (Source::Listed(a), Source::Listed(b)) => a == b,
                (Source::Stock { view: a, place: pa, .. }, Source::Stock { view: b, place: pb, .. }) => {
                    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b)) && pa == pb
                }
                _ => false,
            }
    }
}

impl Eq for Availability {}

/// Everything the safety rules read about a customer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerSafety {
    /// Skin type, wire name (`oily`).
    pub skin_type: Option<String>,
    /// Concerns (the knowledge base's vocabulary).
    pub concerns: Vec<String>,
    /// Skin conditions, wire names (`acne`).
    pub conditions: Vec<String>,
    /// Allergies.
    pub allergies: IngredientSet,
    /// Sensitivities (ingredients the skin reacts to).
    pub sensitivities: IngredientSet,
    /// Pregnant.
    pub pregnant: bool,
    /// Breastfeeding.
    pub breastfeeding: bool,
    /// Reactions reported.
    pub reactions: Vec<Reaction>,
    /// Contraindications from a dermatologist's assessment.
    pub contraindications: IngredientSet,
    /// Whether the routine has a sunscreen: `None` when nothing is known of the routine.
    pub routine_has_sunscreen: Option<bool>,
    /// Availability for the requested channel or store; `None` when not asked or not known.
    pub availability: Option<Availability>,
}

impl CustomerSafety {
    /// From the online profile (the health facts it holds are those the customer consented to
    /// share), the dermatologist's contraindicated ingredients among them.
    pub fn from_profile(p: &OnlineProfile) -> Self {
        Self {
            skin_type: p.skin_type.map(|s| s.as_str().to_owned()),
            concerns: p.concerns.clone(),
            conditions: p.conditions.iter().map(|c| c.as_str().to_owned()).collect(),
            allergies: IngredientSet {
                ids: p.allergy_ids.clone(),
                families: p.allergy_families.clone(),
                unknown: p.unknown_allergens.clone(),
            },
            sensitivities: IngredientSet {
                ids: p.sensitivity_ids.clone(),
                families: p.sensitivity_families.clone(),
                unknown: p.unknown_sensitivities.clone(),
            },
            contraindications: IngredientSet {
                ids: p.contraindicated_ids.clone(),
                families: p.contraindicated_families.clone(),
                unknown: p.unknown_contraindicated.clone(),
            },
            pregnant: p.pregnant,
            breastfeeding: p.breastfeeding,
            ..Self::default()
        }
    }

    /// From an anonymous visitor's quiz answers (`POST /v1/recommendations`): allergies and
    /// sensitivities as names, resolved through the knowledge base; names it does not know stay
    /// in `allergies.unknown` (to report back) and are matched as words of the label.
    pub fn from_answers<S: AsRef<str>>(
        skin_type: Option<&str>,
        concerns: &[S],
        allergies: &[S],
        sensitivities: &[S],
        pregnant: bool,
        kb: &KnowledgeBase,
    ) -> Self {
        Self {
            skin_type: skin_type.map(str::to_owned),
            concerns: concerns.iter().map(|c| c.as_ref().to_owned()).collect(),
            allergies: IngredientSet::resolve(allergies, kb),
            sensitivities: IngredientSet::resolve(sensitivities, kb),
            pregnant,
            ..Self::default()
        }
    }

    /// Adds reported reactions.
    pub fn with_reactions(mut self, reactions: impl IntoIterator<Item = Reaction>) -> Self {
        self.reactions.extend(reactions);
        self
    }

    /// Adds contraindicated ingredients (names, families or ids) from a dermatologist.
    pub fn with_contraindications<S: AsRef<str>>(mut self, names: &[S], kb: &KnowledgeBase) -> Self {
        for n in names {
            self.contraindications.add(n.as_ref(), kb);
        }
        self
    }

    /// Says whether the routine has a sunscreen.
    pub fn with_sunscreen(mut self, has_sunscreen: bool) -> Self {
        self.routine_has_sunscreen = Some(has_sunscreen);
        self
    }

    /// Restricts to the products available for a channel or store.
    pub fn with_availability(mut self, availability: Availability) -> Self {
        self.availability = Some(availability);
        self
    }
}
