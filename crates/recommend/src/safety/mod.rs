//! The safety layer: the hard first stage of the recommendation pipeline (candidates → **safety**
//! → scoring → re-ranking → explanation). It removes every product that conflicts with what a
//! customer declared (allergies, pregnancy, sensitivities, skin conditions, reactions, a
//! dermatologist's contraindications, the routine, availability), records why, and hands the
//! later stages a [`SafeCandidates`]: a list only this module can make, so no scoring, experiment,
//! bandit or business rule can bring an excluded product back (they can reorder, drop and
//! annotate, never add).
//!
//! Rules are data ([`rules`], the default `rules/safety.v1.json`, documented in
//! `docs/ARCHITECTURE.md`, "Recommendation safety"). Every test that names ingredients judges
//! twice and excludes on either: by the knowledge base (what the product declares or *may*
//! contain under the catalog's conservative rule, families named generically) and by the label
//! as written ([`label`]: every name and synonym of the ingredients as whole words of the raw
//! declaration, any case, accents folded; names the knowledge base does not know, by their
//! words), so a product whose parse missed an allergen is still excluded.
//!
//! Pure and fast: [`ProductSafetyFacts`] are built once per product, a customer is prepared once
//! per request ([`Safety::prepare`], bit sets over the knowledge base), and a check is a few set
//! lookups.
//!
//! # Layout
//! - [`rules`]: [`RuleSet`], [`Rule`], [`When`], [`Test`], [`Action`], the bundled rules.
//! - [`label`]: reading a raw declaration's words against every knowledge-base name.
//! - [`product`]: [`ProductSafetyFacts`] from a catalog [`dermis_catalog::Product`] or from facts.
//! - [`customer`]: [`CustomerSafety`] from an online profile, plus reactions, contraindications,
//!   routine and availability; [`IngredientSet`] for names resolved through the knowledge base.
//! - this module: [`Safety`] (the evaluator), [`Verdict`], [`Finding`], [`SafeCandidates`].

pub mod customer;
pub mod label;
pub mod product;
pub mod rules;

use std::collections::BTreeMap;

use dermis_ingredients::KnowledgeBase;
use dermis_ingredients::kb::in_family;
use dermis_ingredients::resolve::words;
use serde::Serialize;

pub use customer::{Availability, CustomerSafety, IngredientSet, Reaction, StockPlace, StockView};
use label::{LabelIndex, WordSig, label_has};
pub use product::ProductSafetyFacts;
pub use rules::{Action, BUNDLED_RULES, Rule, RuleSet, RulesError, Test, When};

/// The id of the one rule that is not data: a product whose facts were built under another
/// knowledge base than the evaluator's cannot be checked, and is excluded.
pub const STALE_FACTS_RULE: &str = "stale-facts";

/// Why a product was excluded or flagged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule (`allergen`).
    pub rule_id: String,
    /// In plain words.
    pub reason: String,
    /// What matched: canonical ingredient ids, families named generically on the label, or
    /// names as the customer gave them. Empty for a rule about the product itself (unknown
    /// ingredient list, out of stock, the product reacted to).
    pub ingredients: Vec<String>,
}

/// An exclusion.
pub type Exclusion = Finding;

/// One product's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// No rule excludes it.
    pub allowed: bool,
    /// Every rule that excludes it.
    pub exclusions: Vec<Exclusion>,
    /// Warnings that do not exclude it (a photosensitizer with a sunscreen in the routine).
    pub flags: Vec<Finding>,
}

/// A fixed set of knowledge-base indexes.
#[derive(Debug, Clone, Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Self(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: u32) {
        if let Some(w) = self.0.get_mut(i as usize / 64) {
            *w |= 1 << (i % 64);
        }
    }
    fn has(&self, i: u32) -> bool {
        self.0.get(i as usize / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    fn add(&mut self, other: &Bits) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (w, o) in self.0.iter_mut().zip(&other.0) {
            *w |= o;
        }
    }
}

/// What a "contains" test looks for.
#[derive(Debug, Clone, Default)]
struct Targets {
    /// Matched against what the knowledge base says the product declares or may contain.
    kb: Bits,
    /// Matched against the names its label writes.
    label: Bits,
    /// Families matched against those the product names generically.
    families: Vec<String>,
    /// Phrases matched against the label's words: (what to report, its words, their signature).
    phrases: Vec<(String, Vec<String>, WordSig)>,
}

impl Targets {
    /// Adds everything `other` looks for: a product hits the sum if and only if it hits one of
    /// the two.
    fn add(&mut self, other: &Targets) {
        self.kb.add(&other.kb);
        self.label.add(&other.label);
        for f in &other.families {
            if !self.families.contains(f) {
                self.families.push(f.clone());
            }
        }
        self.phrases.extend(other.phrases.iter().cloned());
    }
}

/// Everything the excluding rules of one customer look for, summed: the quick verdict
/// ([`Prepared::excludes`]) walks a product's ingredients once, not once per rule.
#[derive(Debug, Default)]
struct Excluding<'s> {
    /// The ingredients, families and phrases of every excluding rule that looks for some.
    targets: Targets,
    /// An excluding pregnancy rule is active: the product's pregnancy-caution fact excludes it.
    pregnancy_caution: bool,
    /// An excluding rule refuses products whose ingredient list is unknown.
    unknown: bool,
    /// Products the customer reacted to (an excluding reaction rule is active).
    reactions: Vec<&'s str>,
    /// Where stock is checked (an excluding out-of-stock rule is active).
    stock: Vec<&'s Availability>,
}

/// The evaluator: a rule set over a knowledge base.
#[derive(Debug)]
pub struct Safety {
    kb: &'static KnowledgeBase,
    index: std::borrow::Cow<'static, LabelIndex>,
    rules: RuleSet,
    /// Per rule, the targets that do not depend on the customer.
    fixed: Vec<Option<Targets>>,
    /// Strength-judged ingredients of each pregnancy rule (indexes).
    judged: Vec<Vec<u32>>,
    family_words: BTreeMap<String, Vec<Vec<String>>>,
}

impl Safety {
    /// The bundled rules over the bundled knowledge base.
    pub fn bundled() -> Self {
        let kb = KnowledgeBase::bundled();
        Self::new(kb, RuleSet::bundled(kb))
    }

    /// An evaluator for a checked rule set.
    pub fn new(kb: &'static KnowledgeBase, rules: RuleSet) -> Self {
        let index = LabelIndex::of(kb);
        let n = kb.all().len();
        let family_words = rules
            .family_words
            .iter()
            .map(|(f, ws)| (f.clone(), ws.iter().map(|w| words(w, false)).collect()))
            .collect();
        let mut out = Self { kb, index, rules, fixed: Vec::new(), judged: Vec::new(), family_words };
        let select = |f: &dyn Fn(&dermis_ingredients::Ingredient) -> bool| {
            let mut b = Bits::new(n);
            for (i, g) in kb.all().iter().enumerate() {
                if f(g) {
                    b.set(i as u32);
                }
            }
            b
        };
        for r in &out.rules.rules {
            let (fixed, judged) = match &r.test {
                Test::Families { families } => {
                    let kb_bits = select(&|g| families.iter().any(|f| in_family(g, f)));
                    let mut t = Targets { label: kb_bits.clone(), kb: kb_bits, ..Targets::default() };
                    out.add_families(&mut t, families);
                    (Some(t), Vec::new())
                }
                Test::PregnancyCaution { judged_by_strength } => {
                    let bits = select(&|g| g.pregnancy.is_some() && !judged_by_strength.contains(&g.id));
                    let judged = judged_by_strength.iter().filter_map(|id| out.index.index_of(id)).collect();
                    (Some(Targets { label: bits.clone(), kb: bits, ..Targets::default() }), judged)
                }
                Test::Comedogenic { min_rating } => {
                    let bits = select(&|g| g.comedogenic.is_some_and(|c| c >= *min_rating));
                    (Some(Targets { label: bits.clone(), kb: bits, ..Targets::default() }), Vec::new())
                }
                Test::Photosensitizer => {
                    let bits = select(&|g| g.photosensitizing);
                    (Some(Targets { label: bits.clone(), kb: bits, ..Targets::default() }), Vec::new())
                }
                Test::CustomerAllergens
                | Test::CustomerSensitivities
                | Test::Contraindications
                | Test::Reactions
                | Test::IngredientsUnknown
                | Test::OutOfStock => (None, Vec::new()),
            };
            out.fixed.push(fixed);
            out.judged.push(judged);
        }
        out
    }

    /// The rules.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// The knowledge base.
    pub fn kb(&self) -> &'static KnowledgeBase {
        self.kb
    }

    /// Builds a product's facts with this evaluator's knowledge base.
    pub fn product(&self, p: &dermis_catalog::Product) -> ProductSafetyFacts {
        ProductSafetyFacts::from_product(p, self.kb)
    }

    fn add_families(&self, t: &mut Targets, families: &[String]) {
        for f in families {
            if !t.families.contains(f) {
                t.families.push(f.clone());
            }
            for w in self.family_words.get(f).into_iter().flatten() {
                t.phrases.push((f.clone(), w.clone(), WordSig::of(w)));
            }
        }
    }

    fn targets_of(&self, set: &IngredientSet) -> Targets {
        let n = self.kb.all().len();
        let mut bits = Bits::new(n);
        for id in &set.ids {
            if let Some(i) = self.index.index_of(id) {
                bits.set(i);
            }
        }
        let mut t = Targets { label: bits.clone(), kb: bits, ..Targets::default() };
        self.add_families(&mut t, &set.families);
        for name in &set.unknown {
            let w = words(name, false);
            if !w.is_empty() {
                let sig = WordSig::of(&w);
                t.phrases.push((name.clone(), w, sig));
            }
        }
        t
    }

    /// Prepares the rules that apply to a customer (once per request).
    pub fn prepare<'s>(&'s self, customer: &'s CustomerSafety) -> Prepared<'s> {
        let mut active = Vec::new();
        for (n, r) in self.rules.rules.iter().enumerate() {
            if !holds(&r.when, customer) {
                continue;
            }
            let flag = r.action == Action::Flag || r.flag_instead_when.as_ref().is_some_and(|w| holds(w, customer));
            let test = match &r.test {
                Test::CustomerAllergens => Check::Contains(Owned(self.targets_of(&customer.allergies))),
                Test::CustomerSensitivities => Check::Contains(Owned(self.targets_of(&customer.sensitivities))),
                Test::Contraindications => Check::Contains(Owned(self.targets_of(&customer.contraindications))),
                Test::Reactions => {
                    let mut all = IngredientSet::default();
                    for re in &customer.reactions {
                        all.ids.extend(re.suspects.ids.iter().cloned());
                        all.families.extend(re.suspects.families.iter().cloned());
                        all.unknown.extend(re.suspects.unknown.iter().cloned());
                    }
                    Check::Reactions(
                        customer.reactions.iter().map(|r| r.product.as_str()).collect(),
                        self.targets_of(&all),
                    )
                }
                Test::Families { .. } | Test::Comedogenic { .. } | Test::Photosensitizer => {
                    Check::Contains(Fixed(self.fixed[n].as_ref().expect("fixed targets for a fixed test")))
                }
                Test::PregnancyCaution { .. } => Check::Pregnancy(
                    self.fixed[n].as_ref().expect("fixed targets for a fixed test"),
                    self.judged[n].as_slice(),
                ),
                Test::IngredientsUnknown => Check::Unknown,
                Test::OutOfStock => match &customer.availability {
                    Some(a) => Check::OutOfStock(a),
                    None => continue,
                },
            };
            active.push(Active { rule: r, flag, test });
        }
        let flagging = active.iter().any(|a| a.flag);
        let mut excluding = Excluding::default();
        for a in active.iter().filter(|a| !a.flag) {
            match &a.test {
                Check::Contains(t) => excluding.targets.add(t.get()),
                Check::Pregnancy(t, _) => {
                    excluding.pregnancy_caution = true;
                    excluding.targets.add(t);
                }
                Check::Reactions(products, t) => {
                    excluding.reactions.extend(products.iter().copied());
                    excluding.targets.add(t);
                }
                Check::Unknown => excluding.unknown = true,
                Check::OutOfStock(a) => excluding.stock.push(a),
            }
        }
        Prepared { safety: self, active, flagging, excluding }
    }

    /// The verdict on one product for one customer.
    pub fn check(&self, product: &ProductSafetyFacts, customer: &CustomerSafety) -> Verdict {
        self.prepare(customer).check(product)
    }

    /// Checks every candidate: the allowed ones, in their order (a product given twice counts
    /// once), with their flags, and every exclusion with its rules (for `?explain=true`).
    pub fn filter<'a, C>(
        &self,
        customer: &CustomerSafety,
        candidates: impl IntoIterator<Item = (C, &'a ProductSafetyFacts)>,
    ) -> SafeCandidates<C> {
        self.prepare(customer).filter(candidates)
    }
}

use Targeted::{Fixed, Owned};

/// Targets built for one customer, or fixed with the rule set.
#[derive(Debug)]
enum Targeted<'s> {
    Fixed(&'s Targets),
    Owned(Targets),
}

impl Targeted<'_> {
    fn get(&self) -> &Targets {
        match self {
            Fixed(t) => t,
            Owned(t) => t,
        }
    }
}

#[derive(Debug)]
enum Check<'s> {
    Contains(Targeted<'s>),
    Pregnancy(&'s Targets, &'s [u32]),
    Reactions(Vec<&'s str>, Targets),
    Unknown,
    OutOfStock(&'s Availability),
}

#[derive(Debug)]
struct Active<'s> {
    rule: &'s Rule,
    flag: bool,
    test: Check<'s>,
}

/// The rules that apply to one customer, ready to check products.
#[derive(Debug)]
pub struct Prepared<'s> {
    safety: &'s Safety,
    active: Vec<Active<'s>>,
    /// Whether any active rule only flags.
    flagging: bool,
    /// The excluding rules, summed for the quick verdict.
    excluding: Excluding<'s>,
}

fn holds(w: &When, c: &CustomerSafety) -> bool {
    match w {
        When::Always => true,
        When::HasAllergies => !c.allergies.is_empty(),
        When::HasSensitivities => !c.sensitivities.is_empty(),
        When::HasReactions => !c.reactions.is_empty(),
        When::HasContraindications => !c.contraindications.is_empty(),
        When::Pregnant => c.pregnant,
        When::Breastfeeding => c.breastfeeding,
        When::PregnantOrBreastfeeding => c.pregnant || c.breastfeeding,
        When::RoutineHasSunscreen => c.routine_has_sunscreen == Some(true),
        When::RoutineUnknown => c.routine_has_sunscreen.is_none(),
        When::AvailabilityKnown => c.availability.is_some(),
        When::SkinType(v) => c.skin_type.as_ref().is_some_and(|s| v.contains(s)),
        When::Condition(v) => c.conditions.iter().any(|x| v.contains(x)),
        When::Concern(v) => c.concerns.iter().any(|x| v.contains(x)),
        When::AnyOf(v) => v.iter().any(|w| holds(w, c)),
        When::AllOf(v) => v.iter().all(|w| holds(w, c)),
    }
}

impl<'s> Prepared<'s> {
    /// The ids of the rules that apply to this customer.
    pub fn rules_applied(&self) -> Vec<&'s str> {
        self.active.iter().map(|a| a.rule.id.as_str()).collect()
    }

    fn contains(&self, t: &Targets, p: &ProductSafetyFacts, out: &mut Vec<String>) {
        let kb = self.safety.kb.all();
        let mut push = |s: &str| {
            if !out.iter().any(|o| o == s) {
                out.push(s.to_owned());
            }
        };
        for &i in &p.present {
            if t.kb.has(i) {
                push(&kb[i as usize].id);
            }
        }
        for &i in &p.label.ids {
            if t.label.has(i) {
                push(&kb[i as usize].id);
            }
        }
        for f in &p.families {
            if t.families.contains(f) {
                push(f);
            }
        }
        for (what, w, sig) in &t.phrases {
            if label_has(&p.label, w, sig) {
                push(what);
            }
        }
    }

    /// Whether anything of `t` is in the product (what [`Self::contains`] would report, without
    /// collecting it).
    fn hits(&self, t: &Targets, p: &ProductSafetyFacts) -> bool {
        p.present.iter().any(|&i| t.kb.has(i))
            || p.label.ids.iter().any(|&i| t.label.has(i))
            || p.families.iter().any(|f| t.families.contains(f))
            || t.phrases.iter().any(|(_, w, sig)| label_has(&p.label, w, sig))
    }

    /// Whether a rule that excludes (not one that only flags) excludes the product: the verdict
    /// of [`Self::check`] on `allowed`, without building the reasons.
    fn excludes(&self, p: &ProductSafetyFacts) -> bool {
        if p.kb_version != self.safety.kb.version() {
            return true;
        }
        // Each excluding rule's test is "one of its targets, or its own condition": the sum of
        // the targets, then the conditions (stock last: it may read the inventory).
        let x = &self.excluding;
        // The pregnancy fact excludes whatever judged ingredient is named.
        (x.pregnancy_caution && p.pregnancy_caution == Some(true))
            || (x.unknown && !p.has_list)
            || x.reactions.iter().any(|r| p.is(r))
            || self.hits(&x.targets, p)
            || x.stock.iter().any(|a| a.out_of_stock(p))
    }

    /// Plain words for what matched: INCI names for ingredients, families in words, names as
    /// given.
    fn display(&self, matched: &[String]) -> String {
        let names: Vec<String> = matched
            .iter()
            .map(|m| match self.safety.kb.get(m) {
                Some(g) => g.inci.clone(),
                None => m.replace('-', " "),
            })
            .collect();
        match names.as_slice() {
            [] => String::new(),
            [one] => one.clone(),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
        }
    }

    /// The verdict on one product.
    pub fn check(&self, p: &ProductSafetyFacts) -> Verdict {
        let mut v = Verdict { allowed: true, exclusions: Vec::new(), flags: Vec::new() };
        if p.kb_version != self.safety.kb.version() {
            v.allowed = false;
            v.exclusions.push(Finding {
                rule_id: STALE_FACTS_RULE.to_owned(),
                reason: "its ingredient facts were derived under another knowledge base and cannot be checked".into(),
                ingredients: Vec::new(),
            });
            return v;
        }
        self.findings(p, &mut v, |_| true);
        v
    }

    /// The warnings of the rules that only flag, for a product [`Self::excludes`] allowed: what
    /// [`Self::check`] puts in `flags`, without judging the excluding rules again. Nothing to do
    /// (and nothing allocated) for a customer no flagging rule applies to.
    fn flags_of(&self, p: &ProductSafetyFacts) -> Vec<Finding> {
        let mut v = Verdict { allowed: true, exclusions: Vec::new(), flags: Vec::new() };
        if self.flagging {
            self.findings(p, &mut v, |a| a.flag);
        }
        v.flags
    }

    /// Adds the findings of the active rules `which` selects to `v`.
    fn findings(&self, p: &ProductSafetyFacts, v: &mut Verdict, which: impl Fn(&Active<'_>) -> bool) {
        for a in self.active.iter().filter(|a| which(a)) {
            let mut matched = Vec::new();
            let mut scope = "";
            let hit = match &a.test {
                Check::Contains(t) => {
                    self.contains(t.get(), p, &mut matched);
                    !matched.is_empty()
                }
                Check::Pregnancy(t, judged) => {
                    self.contains(t, p, &mut matched);
                    if p.pregnancy_caution == Some(true) {
                        let kb = self.safety.kb.all();
                        for &i in judged.iter().filter(|i| p.present.binary_search(i).is_ok()) {
                            let id = &kb[i as usize].id;
                            if !matched.contains(id) {
                                matched.push(id.clone());
                            }
                        }
                        if matched.is_empty() {
                            matched.push("an ingredient flagged for pregnancy".into());
                        }
                    }
                    !matched.is_empty()
                }
                Check::Reactions(products, t) => {
                    self.contains(t, p, &mut matched);
                    products.iter().any(|r| p.is(r)) || !matched.is_empty()
                }
                Check::Unknown => !p.has_list,
                Check::OutOfStock(a) => {
                    scope = a.scope.as_str();
                    a.out_of_stock(p)
                }
            };
            if !hit {
                continue;
            }
            let template = match (&a.rule.reason_without_ingredients, matched.is_empty()) {
                (Some(r), true) => r.as_str(),
                _ => a.rule.reason.as_str(),
            };
            let reason = template.replace("{ingredients}", &self.display(&matched)).replace("{scope}", scope);
            let finding = Finding { rule_id: a.rule.id.clone(), reason, ingredients: matched };
            if a.flag {
                v.flags.push(finding);
            } else {
                v.allowed = false;
                v.exclusions.push(finding);
            }
        }
    }

    /// [`Safety::filter`] for a prepared customer.
    pub fn filter<'a, C>(
        &self,
        candidates: impl IntoIterator<Item = (C, &'a ProductSafetyFacts)>,
    ) -> SafeCandidates<C> {
        self.filter_with(candidates, true)
    }

    /// [`Self::filter`] without recording the exclusions (`excluded()` is empty): for a request
    /// that does not ask why. What is allowed is the same, and so are its warnings, found by
    /// [`Self::warnings`] for the products shown; an excluded product costs a quick verdict, not
    /// its reasons.
    pub fn filter_quiet<'a, C>(
        &self,
        candidates: impl IntoIterator<Item = (C, &'a ProductSafetyFacts)>,
    ) -> SafeCandidates<C> {
        self.filter_with(candidates, false)
    }

    /// The warnings to show with an allowed product: those found when it was judged, or, after
    /// [`Self::filter_quiet`] (which leaves them for the few products shown), what its flagging
    /// rules find now. `p` is the facts it was judged on.
    pub fn warnings<C>(&self, s: &Safe<C>, p: &ProductSafetyFacts) -> Vec<Finding> {
        debug_assert_eq!(s.product_id, p.product_id, "the warnings of a product are found on its own facts");
        match &s.flags {
            Some(flags) => flags.clone(),
            None => self.flags_of(p),
        }
    }

    fn filter_with<'a, C>(
        &self,
        candidates: impl IntoIterator<Item = (C, &'a ProductSafetyFacts)>,
        record: bool,
    ) -> SafeCandidates<C> {
        let candidates = candidates.into_iter();
        let mut out = SafeCandidates {
            items: Vec::with_capacity(candidates.size_hint().0),
            excluded: Vec::new(),
            rules_version: self.safety.rules.version.clone(),
        };
        let mut seen: rustc_hash::FxHashSet<&str> = rustc_hash::FxHashSet::default();
        for (value, p) in candidates {
            if !seen.insert(&*p.product_id) {
                continue;
            }
            // Quiet: the quick verdict only. The warnings of the flagging rules are found for the
            // few products shown ([`Self::warnings`]), not for every candidate.
            if !record {
                if self.excludes(p) {
                    continue;
                }
                debug_assert!(self.check(p).allowed, "the quick verdict allowed what the full one excludes");
                out.items.push(Safe {
                    product_id: p.product_id.clone(),
                    external_id: p.external_id.clone(),
                    flags: None,
                    value,
                });
                continue;
            }
            let v = self.check(p);
            if v.allowed {
                out.items.push(Safe {
                    product_id: p.product_id.clone(),
                    external_id: p.external_id.clone(),
                    flags: Some(v.flags),
                    value,
                });
            } else {
                out.excluded.push(Excluded {
                    product_id: p.product_id.to_string(),
                    external_id: p.external_id.as_deref().map(str::to_owned),
                    exclusions: v.exclusions,
                });
            }
        }
        out
    }
}

/// A product the safety layer allowed, with what a later stage attached to it (`value`: a
/// score, features ...). Only this module makes one: the product it names cannot be changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Safe<C> {
    product_id: std::sync::Arc<str>,
    external_id: Option<std::sync::Arc<str>>,
    /// Its warnings, when judged with them (`None` after a quiet filter: see
    /// [`Prepared::warnings`]).
    flags: Option<Vec<Finding>>,
    /// What the later stages carry with the product.
    pub value: C,
}

impl<C> Safe<C> {
    /// The product's id.
    pub fn product_id(&self) -> &str {
        &self.product_id
    }

    /// Its external id.
    pub fn external_id(&self) -> Option<&str> {
        self.external_id.as_deref()
    }

    /// The same product with another value.
    pub fn map<D>(self, f: impl FnOnce(C) -> D) -> Safe<D> {
        Safe { product_id: self.product_id, external_id: self.external_id, flags: self.flags, value: f(self.value) }
    }
}

/// A product the safety layer excluded, and every rule that excluded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Excluded {
    /// The product's id.
    pub product_id: String,
    /// Its external id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Why.
    pub exclusions: Vec<Exclusion>,
}

/// The candidates that passed safety, and the exclusions recorded. Later stages can reorder,
/// drop, truncate and annotate; nothing can add a product to it.
#[derive(Debug, Clone, PartialEq)]
pub struct SafeCandidates<C> {
    items: Vec<Safe<C>>,
    excluded: Vec<Excluded>,
    rules_version: String,
}

impl<C> SafeCandidates<C> {
    /// How many passed.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether none passed.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The allowed products, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Safe<C>> {
        self.items.iter()
    }

    /// The allowed products, to change what they carry.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Safe<C>> {
        self.items.iter_mut()
    }

    /// The excluded products and why.
    pub fn excluded(&self) -> &[Excluded] {
        &self.excluded
    }

    /// The version of the rules that judged them.
    pub fn rules_version(&self) -> &str {
        &self.rules_version
    }

    /// Keeps the products `f` keeps (a filter expression, ids to exclude, owned items).
    pub fn retain(&mut self, f: impl FnMut(&Safe<C>) -> bool) {
        self.items.retain(f);
    }

    /// Orders them.
    pub fn sort_by(&mut self, f: impl FnMut(&Safe<C>, &Safe<C>) -> std::cmp::Ordering) {
        self.items.sort_by(f);
    }

    /// Keeps the first `k`.
    pub fn truncate(&mut self, k: usize) {
        self.items.truncate(k);
    }

    /// The same products with other values.
    pub fn map<D>(self, mut f: impl FnMut(&str, C) -> D) -> SafeCandidates<D> {
        SafeCandidates {
            items: self
                .items
                .into_iter()
                .map(|s| {
                    let id = s.product_id.clone();
                    s.map(|v| f(&id, v))
                })
                .collect(),
            excluded: self.excluded,
            rules_version: self.rules_version,
        }
    }

    /// The allowed products and the exclusions.
    pub fn into_parts(self) -> (Vec<Safe<C>>, Vec<Excluded>) {
        (self.items, self.excluded)
    }
}

impl<C> IntoIterator for SafeCandidates<C> {
    type Item = Safe<C>;
    type IntoIter = std::vec::IntoIter<Safe<C>>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

#[cfg(test)]
mod tests;
