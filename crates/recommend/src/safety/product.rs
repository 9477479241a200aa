//! [`ProductSafetyFacts`]: what the safety rules read about a product, built once per product
//! (when the catalog is loaded or a product changes), never per request: the ingredients it
//! declares or may contain (the catalog's derived facts, by the knowledge base's conservative
//! rule), the ingredients its label names as written ([`super::label`]), the families it names
//! generically, its pregnancy fact and its routine step.

use std::borrow::Cow;

use dermis_catalog::Product;
use dermis_ingredients::facts::derive;
use dermis_ingredients::inci;
use dermis_ingredients::{KnowledgeBase, ProductFacts, RoutineStep};

use super::label::{LabelIndex, LabelRead};

/// What the safety rules know about one product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductSafetyFacts {
    /// Shared with the [`super::Safe`] and [`super::Excluded`] made of it (a request copies a
    /// pointer, not the text).
    pub(crate) product_id: std::sync::Arc<str>,
    pub(crate) external_id: Option<std::sync::Arc<str>>,
    pub(crate) kb_version: String,
    /// An ingredient list is known and was read.
    pub(crate) has_list: bool,
    /// Knowledge-base indexes declared or possibly contained (ascending).
    pub(crate) present: Vec<u32>,
    /// Knowledge-base indexes declared (ascending).
    pub(crate) declared: Vec<u32>,
    /// Families named only generically (`Essential Oils`).
    pub(crate) families: Vec<String>,
    /// The label as written.
    pub(crate) label: LabelRead,
    pub(crate) pregnancy_caution: Option<bool>,
    pub(crate) routine_step: Option<RoutineStep>,
    /// The ids of its active SKUs (what the out-of-stock rule asks the inventory about).
    pub(crate) skus: Vec<String>,
}

/// Whether facts were derived under `kb` and still carry the resolved entries (a listing's
/// summary does not).
fn complete(f: &ProductFacts, kb: &KnowledgeBase) -> bool {
    f.kb_version == kb.version() && (!f.has_ingredient_list || !f.ingredients.is_empty())
}

impl ProductSafetyFacts {
    /// From a catalog product: its stored facts when they are complete and were derived under
    /// `kb` (a product read with [`dermis_catalog::Catalog::product`]), otherwise derived again
    /// from its declared ingredients (a listing, or facts from an older knowledge base).
    pub fn from_product(p: &Product, kb: &KnowledgeBase) -> Self {
        let facts = match p.attributes.as_ref().filter(|f| complete(f, kb)) {
            Some(f) => Cow::Borrowed(f),
            None => Cow::Owned(dermis_catalog::facts::compute(kb, p)),
        };
        Self::from_facts(&p.id, p.external_id.as_deref(), p.ingredients.as_deref(), &facts, kb)
    }

    /// From a product's id, its raw declared ingredient text (the label as written) and its
    /// derived facts. Facts that are incomplete or from another knowledge base are derived again
    /// from `raw` (keeping their routine step).
    pub fn from_facts(
        product_id: &str,
        external_id: Option<&str>,
        raw: Option<&str>,
        facts: &ProductFacts,
        kb: &KnowledgeBase,
    ) -> Self {
        let facts = if complete(facts, kb) {
            Cow::Borrowed(facts)
        } else {
            let parsed = raw.map(inci::parse);
            let mut f = derive(kb, parsed.as_ref(), None, "");
            f.routine_step = facts.routine_step;
            Cow::Owned(f)
        };
        let index = LabelIndex::of(kb);
        let ids = dermis_catalog::facts::ingredient_ids(&facts);
        let mut present: Vec<u32> = Vec::new();
        let mut declared: Vec<u32> = Vec::new();
        for (id, certain) in &ids {
            if let Some(i) = index.index_of(id) {
                present.push(i);
                if *certain {
                    declared.push(i);
                }
            }
        }
        present.sort_unstable();
        declared.sort_unstable();
        let label = match raw {
            Some(r) => index.read(r),
            None => LabelRead::default(),
        };
        Self {
            product_id: product_id.into(),
            external_id: external_id.map(Into::into),
            kb_version: kb.version().to_owned(),
            has_list: facts.has_ingredient_list,
            present,
            declared,
            families: facts.possible_families.clone(),
            label,
            pregnancy_caution: facts.pregnancy_caution,
            routine_step: facts.routine_step,
            skus: Vec::new(),
        }
    }

    /// The same facts with the ids of the product's active SKUs (the catalog's; the
    /// out-of-stock rule reads them).
    pub fn with_skus(mut self, skus: Vec<String>) -> Self {
        self.skus = skus;
        self
    }

    /// The ids of its active SKUs (empty when not known).
    pub fn skus(&self) -> &[String] {
        &self.skus
    }

    /// The product's id.
    pub fn product_id(&self) -> &str {
        &self.product_id
    }

    /// The id of the system it was imported from.
    pub fn external_id(&self) -> Option<&str> {
        self.external_id.as_deref()
    }

    /// Whether the ingredient list is known.
    pub fn has_ingredient_list(&self) -> bool {
        self.has_list
    }

    /// Whether it is a sunscreen (for a routine's "has sunscreen").
    pub fn is_sunscreen(&self) -> bool {
        self.routine_step == Some(RoutineStep::Sunscreen)
    }

    /// The routine step.
    pub fn routine_step(&self) -> Option<RoutineStep> {
        self.routine_step
    }

    /// Whether `reference` is this product's id or external id.
    pub fn is(&self, reference: &str) -> bool {
        &*self.product_id == reference || self.external_id.as_deref() == Some(reference)
    }

    /// The ids it declares or may contain, by the knowledge base `kb` it was built with.
    pub fn ingredient_ids<'kb>(&self, kb: &'kb KnowledgeBase) -> Vec<&'kb str> {
        self.present.iter().filter_map(|&i| kb.all().get(i as usize)).map(|g| g.id.as_str()).collect()
    }

    /// The ids its label names as words (read without the parser).
    pub fn label_ids<'kb>(&self, kb: &'kb KnowledgeBase) -> Vec<&'kb str> {
        self.label.ids.iter().filter_map(|&i| kb.all().get(i as usize)).map(|g| g.id.as_str()).collect()
    }
}
