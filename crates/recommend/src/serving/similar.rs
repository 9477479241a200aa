//! Products related to a product: similar (content embedding and what customers did), dupes
//! (cheaper, the same key actives, no added risk) and bought together. Exact nearest-neighbour
//! search over the in-memory embeddings: a catalog of this size (8,494 products) is scanned in
//! well under a millisecond.

use std::collections::HashMap;

use serde::Serialize;

use super::engine::{Engine, Item, Reason, Subject, words_list};
use super::products::{ProductEntry, ProductTable, cosine};
use crate::safety::{Excluded, SafeCandidates};

/// What a related-products request answered.
#[derive(Debug, Clone, Serialize)]
pub struct Related {
    pub recommendation_id: String,
    /// The product asked about.
    pub product_id: String,
    pub items: Vec<Item>,
    /// What the list is based on, in words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
    /// Exclusions by the safety layer, when a customer was named and `explain` asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excluded: Option<Vec<Excluded>>,
}

/// The kind of related products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Similar,
    Dupes,
    BoughtTogether,
}

/// Ingredient ids as names (the first four).
fn names(ids: &[String], engine: &Engine) -> Vec<String> {
    ids.iter().filter_map(|id| engine.safety().kb().get(id).map(|g| g.inci.to_lowercase())).take(4).collect()
}

/// Whether `q` adds a risk `p` does not have: an allergen, fragrance where `p` is free of it, a
/// pregnancy caution, a photosensitizer, a higher comedogenic rating, an unknown ingredient list.
fn adds_risk(p: &ProductEntry, q: &ProductEntry) -> bool {
    let (Some(pf), Some(qf)) = (&p.facts, &q.facts) else { return true };
    if !qf.has_ingredient_list {
        return true;
    }
    if qf.allergens.iter().any(|a| !pf.allergens.contains(a)) {
        return true;
    }
    let worse = |a: Option<bool>, b: Option<bool>| a == Some(true) && b != Some(true);
    if worse(pf.fragrance_free, qf.fragrance_free) || worse(pf.essential_oil_free, qf.essential_oil_free) {
        return true;
    }
    if qf.pregnancy_caution == Some(true) && pf.pregnancy_caution != Some(true) {
        return true;
    }
    if qf.photosensitizing == Some(true) && pf.photosensitizing != Some(true) {
        return true;
    }
    qf.max_comedogenic.unwrap_or(0) > pf.max_comedogenic.unwrap_or(0)
}

impl Engine {
    /// Products related to `product` (an id or external id); `None` when the catalog has no such
    /// product. With a subject, the safety layer judges the list for them.
    pub fn related(
        &self,
        product: &str,
        relation: Relation,
        k: usize,
        subject: Option<&Subject>,
        explain: bool,
    ) -> Option<Related> {
        let table = self.catalog().table();
        let p = table.find(product)?;
        let pe = table.get(p);
        let mut notices = Vec::new();
        let mut scored: HashMap<u32, (f32, Vec<Reason>)> = HashMap::new();
        match relation {
            Relation::Similar => {
                let emb = table.embedding(p);
                let behaviour = self.behaviour_neighbours(&table, p);
                if emb.is_empty() {
                    notices.push("its ingredient list is unknown: similar by what customers did only".into());
                }
                if behaviour.is_empty() {
                    notices.push("no interactions with it yet: similar by ingredients only".into());
                }
                for (t, e) in table.entries().iter().enumerate() {
                    let t = t as u32;
                    if t == p || !e.active || emb.is_empty() {
                        continue;
                    }
                    let c = cosine(emb, table.embedding(t));
                    if c > 0.05 {
                        scored.insert(t, (0.6 * c, Vec::new()));
                    }
                }
                for (t, s) in behaviour {
                    let x = scored.entry(t).or_insert((0.0, Vec::new()));
                    x.0 += 0.4 * s;
                    x.1.push(Reason {
                        kind: "similar_customers",
                        text: format!("customers who liked {} also liked it", pe.name),
                    });
                }
                let actives = pe.actives().to_vec();
                for (t, (_, reasons)) in scored.iter_mut() {
                    let shared: Vec<String> =
                        table.get(*t).actives().iter().filter(|a| actives.contains(a)).cloned().collect();
                    if !shared.is_empty() {
                        reasons.insert(
                            0,
                            Reason {
                                kind: "shared_actives",
                                text: format!("also contains {}", words_list(&names(&shared, self))),
                            },
                        );
                    } else if !table.embedding(*t).is_empty() && !table.embedding(p).is_empty() {
                        reasons.insert(0, Reason { kind: "similar_formula", text: "a similar ingredient list".into() });
                    }
                }
            }
            Relation::Dupes => {
                let actives = pe.actives();
                if actives.is_empty() {
                    notices.push("it has no known key actives to match".into());
                }
                let Some(price) = pe.price_minor else {
                    notices.push("it has no price to compare with".into());
                    return Some(self.finish(&table, pe, scored, k, subject, explain, notices));
                };
                let emb = table.embedding(p);
                for (t, e) in table.entries().iter().enumerate() {
                    let t = t as u32;
                    if t == p || !e.active || actives.is_empty() || e.routine_step() != pe.routine_step() {
                        continue;
                    }
                    let Some(q) = e.price_minor.filter(|&q| q < price) else { continue };
                    if !actives.iter().all(|a| e.actives().contains(a)) || adds_risk(pe, e) {
                        continue;
                    }
                    let sim = cosine(emb, table.embedding(t));
                    let saving = (price - q) as f32 / price as f32;
                    let text = format!(
                        "the same key actives ({}) for {} less, with no added allergen, fragrance or caution",
                        words_list(&names(actives, self)),
                        money(price - q)
                    );
                    scored.insert(t, (0.7 * sim + 0.3 * saving, vec![Reason { kind: "dupe", text }]));
                }
            }
            Relation::BoughtTogether => {
                let ids: Vec<&str> = std::iter::once(pe.id.as_str()).chain(pe.external_id.as_deref()).collect();
                let together = self.live().bought_with(&ids, 100);
                let total: u32 = together.iter().map(|x| x.1).sum();
                for (q, n) in together {
                    if let Some(t) = table.find(&q).filter(|&t| t != p && table.get(t).active) {
                        let text = format!(
                            "bought in the same order {}",
                            if n == 1 { "once".into() } else { format!("{n} times") }
                        );
                        scored.entry(t).or_insert((0.0, vec![Reason { kind: "bought_together", text }])).0 +=
                            n as f32 / total.max(1) as f32;
                    }
                }
                if scored.is_empty() {
                    notices.push("no orders with it yet: products customers who liked it also liked".into());
                    for (t, s) in self.behaviour_neighbours(&table, p) {
                        let text = format!("customers who liked {} also liked it", pe.name);
                        scored.insert(t, (s, vec![Reason { kind: "similar_customers", text }]));
                    }
                }
            }
        }
        Some(self.finish(&table, pe, scored, k, subject, explain, notices))
    }

    /// Item-kNN neighbours of a product (table index, similarity).
    fn behaviour_neighbours(&self, table: &ProductTable, p: u32) -> Vec<(u32, f32)> {
        let Some(s) = self.served() else { return Vec::new() };
        let items = s.trained.interactions.items();
        let Some(m) = items.get(&table.get(p).id) else { return Vec::new() };
        s.knn
            .neighbours(m)
            .iter()
            .filter_map(|n| table.find(items.id(n.item)).filter(|&t| table.get(t).active).map(|t| (t, n.score)))
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        table: &ProductTable,
        pe: &ProductEntry,
        scored: HashMap<u32, (f32, Vec<Reason>)>,
        k: usize,
        subject: Option<&Subject>,
        explain: bool,
        notices: Vec<String>,
    ) -> Related {
        let mut list: Vec<(u32, (f32, Vec<Reason>))> = scored.into_iter().collect();
        list.sort_by(|a, b| b.1.0.total_cmp(&a.1.0).then(a.0.cmp(&b.0)));
        // Judge enough of them that k pass for most customers.
        list.truncate((k * 10).max(100));
        // The customer's reported reactions (in their activity) count here as in their list.
        let customer = subject.map(|s| self.safety_of(s, &self.activity_of(s), table)).unwrap_or_default();
        let prepared = self.safety().prepare(&customer);
        let candidates = list.into_iter().map(|(t, (s, r))| ((t, s, r), &table.get(t).safety));
        let mut safe: SafeCandidates<(u32, f32, Vec<Reason>)> =
            if explain { prepared.filter(candidates) } else { prepared.filter_quiet(candidates) };
        safe.truncate(k);
        let (items, excluded) = safe.into_parts();
        Related {
            recommendation_id: self.new_recommendation_id(),
            product_id: pe.id.clone(),
            items: items
                .into_iter()
                .map(|s| {
                    let warnings = prepared.warnings(&s, &table.get(s.value.0).safety);
                    let (t, score, reasons) = s.value;
                    Item::of(table.get(t), score, reasons, warnings)
                })
                .collect(),
            notices,
            excluded: (explain && subject.is_some()).then_some(excluded),
        }
    }
}

/// Minor units as money (`12.50`).
fn money(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}
