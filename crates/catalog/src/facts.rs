//! A product's derived facts: computed from its ingredients, category, name and highlights with
//! the bundled knowledge base, and stored beside it (a JSON document for reading, columns and
//! rows for filtering). Recomputed in the transaction of every change to those inputs, and for
//! every product whose facts were derived under another knowledge base version.

use std::collections::BTreeMap;

use dermis_ingredients::facts::derive;
use dermis_ingredients::inci::{self, key};
use dermis_ingredients::{KnowledgeBase, ProductFacts};
use dermis_store::StoreError;
use dermis_store::sqlx::{self, AnyConnection};

use crate::model::Product;

/// Skin types a product can be declared for.
pub const SKIN_TYPES: [&str; 5] = ["dry", "oily", "combination", "normal", "sensitive"];

/// Computes the facts of a product.
pub fn compute(kb: &KnowledgeBase, p: &Product) -> ProductFacts {
    let parsed = p.ingredients.as_deref().map(inci::parse);
    derive(kb, parsed.as_ref(), p.category.as_deref(), &p.name)
}

/// Skin types named by highlights such as "Best for Dry, Combo, Normal Skin".
pub fn skin_types(highlights: &[String]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for h in highlights {
        let l = h.to_lowercase();
        let Some(rest) = l.strip_prefix("best for ") else { continue };
        for word in rest.trim_end_matches(" skin").split([',', '&', '/']).map(str::trim) {
            let t = match word {
                "dry" => "dry",
                "oily" => "oily",
                "combo" | "combination" => "combination",
                "normal" => "normal",
                "sensitive" => "sensitive",
                _ => continue,
            };
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

/// The lower-case, accent-folded text `q` searches (name and brand).
pub fn search_text(p: &Product) -> String {
    key(&format!("{} {}", p.name, p.brand))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Other(e.to_string()))
}

fn flag(b: Option<bool>) -> Option<i64> {
    b.map(i64::from)
}

/// Every ingredient a product declares (`true`) or may contain (`false`: an entry or a note names
/// it without resolving to it), each once; declared wins.
pub fn ingredient_ids(facts: &ProductFacts) -> BTreeMap<&str, bool> {
    let mut out: BTreeMap<&str, bool> = BTreeMap::new();
    for e in &facts.ingredients {
        for id in e.ingredient_id.iter().chain(&e.also) {
            out.insert(id, true);
        }
    }
    for id in facts.ingredients.iter().flat_map(|e| &e.may_name).chain(&facts.possible_ingredients) {
        out.entry(id).or_insert(false);
    }
    out
}

/// Stores a product's facts and their search columns and rows (in the caller's transaction).
pub async fn store(conn: &mut AnyConnection, p: &Product, facts: &ProductFacts) -> Result<(), StoreError> {
    let types = skin_types(&p.highlights);
    let vegan = p.highlights.iter().any(|h| h.eq_ignore_ascii_case("vegan"));
    let kb = KnowledgeBase::bundled();
    let ids = ingredient_ids(facts);
    let families = facts.has_ingredient_list.then(|| {
        let present: Vec<&str> = dermis_ingredients::kb::FAMILIES
            .iter()
            .map(|(f, _)| *f)
            .filter(|f| {
                facts.possible_families.iter().any(|p| p == f)
                    || ids.keys().filter_map(|id| kb.get(id)).any(|i| dermis_ingredients::kb::in_family(i, f))
            })
            .collect();
        format!("|{}|", present.join("|"))
    });
    let contact_free = facts.has_ingredient_list.then(|| {
        !facts
            .allergens
            .iter()
            .any(|id| KnowledgeBase::bundled().get(id).is_some_and(|i| i.allergen_lists.iter().any(|l| l == "contact")))
    });
    let mut summary = facts.clone();
    let entries = std::mem::take(&mut summary.ingredients);
    sqlx::query("UPDATE products SET facts = $1, ingredient_entries = $2, kb_version = $3 WHERE id = $4")
        .bind(to_json(&summary)?)
        .bind(to_json(&entries)?)
        .bind(&facts.kb_version)
        .bind(&p.id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO product_search (product_id, status, brand, category, search_text, routine_step, skin_types, families,
                has_ingredients, fragrance_free, essential_oil_free, drying_alcohol_free, non_comedogenic,
                pregnancy_caution, photosensitizing, contact_allergen_free, vegan, min_price_minor)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $17, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                 (SELECT MIN(price_minor) FROM skus WHERE product_id = $1 AND status = 'active'))
         ON CONFLICT (product_id) DO UPDATE SET status = excluded.status, brand = excluded.brand,
                category = excluded.category, search_text = excluded.search_text,
                routine_step = excluded.routine_step, skin_types = excluded.skin_types, families = excluded.families,
                has_ingredients = excluded.has_ingredients, fragrance_free = excluded.fragrance_free,
                essential_oil_free = excluded.essential_oil_free, drying_alcohol_free = excluded.drying_alcohol_free,
                non_comedogenic = excluded.non_comedogenic, pregnancy_caution = excluded.pregnancy_caution,
                photosensitizing = excluded.photosensitizing, contact_allergen_free = excluded.contact_allergen_free,
                vegan = excluded.vegan, min_price_minor = excluded.min_price_minor",
    )
    .bind(&p.id)
    .bind(p.status.as_str())
    .bind(&p.brand)
    .bind(p.category.clone())
    .bind(search_text(p))
    .bind(facts.routine_step.map(|s| s.as_str()))
    .bind((!types.is_empty()).then(|| format!("|{}|", types.join("|"))))
    .bind(i64::from(facts.has_ingredient_list))
    .bind(flag(facts.fragrance_free))
    .bind(flag(facts.essential_oil_free))
    .bind(flag(facts.drying_alcohol_free))
    .bind(flag(facts.non_comedogenic))
    .bind(flag(facts.pregnancy_caution))
    .bind(flag(facts.photosensitizing))
    .bind(flag(contact_free))
    .bind(i64::from(vegan))
    .bind(families)
    .execute(&mut *conn)
    .await?;

    sqlx::query("DELETE FROM product_ingredients WHERE product_id = $1").bind(&p.id).execute(&mut *conn).await?;
    for chunk in facts.ingredients.chunks(100) {
        let mut sql = String::from(
            "INSERT INTO product_ingredients (product_id, position, ingredient_id, name_key, may_contain) VALUES ",
        );
        for (i, _) in chunk.iter().enumerate() {
            let b = i * 5;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("(${}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 5));
        }
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = q
                .bind(&p.id)
                .bind(e.position as i64)
                .bind(e.ingredient_id.clone())
                .bind(key(&e.text))
                .bind(i64::from(e.may_contain));
        }
        q.execute(&mut *conn).await?;
    }
    sqlx::query("DELETE FROM product_ingredient_ids WHERE product_id = $1").bind(&p.id).execute(&mut *conn).await?;
    let ids: Vec<(&str, bool)> = ids.into_iter().collect();
    for chunk in ids.chunks(200) {
        let mut sql = String::from("INSERT INTO product_ingredient_ids (product_id, ingredient_id, certain) VALUES ");
        for (i, _) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("($1, ${}, ${})", 2 * i + 2, 2 * i + 3));
        }
        let mut q = sqlx::query(&sql).bind(&p.id);
        for (id, certain) in chunk {
            q = q.bind(*id).bind(i64::from(*certain));
        }
        q.execute(&mut *conn).await?;
    }
    sqlx::query("DELETE FROM product_concerns WHERE product_id = $1").bind(&p.id).execute(&mut *conn).await?;
    for c in &facts.concerns {
        let evidence =
            serde_json::to_value(c.evidence).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        sqlx::query("INSERT INTO product_concerns (product_id, concern, evidence) VALUES ($1, $2, $3)")
            .bind(&p.id)
            .bind(&c.concern)
            .bind(evidence)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Recomputes the lowest active SKU price of a product.
pub async fn refresh_min_price(conn: &mut AnyConnection, product_id: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE product_search SET min_price_minor = (SELECT MIN(price_minor) FROM skus WHERE product_id = $1 AND status = 'active') WHERE product_id = $1",
    )
    .bind(product_id)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skin_types_from_sephora_highlights() {
        let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(skin_types(&h(&["Best for Dry, Combo, Normal Skin", "Vegan"])), ["dry", "combination", "normal"]);
        assert_eq!(skin_types(&h(&["Best for Oily Skin"])), ["oily"]);
        assert!(skin_types(&h(&["Good for: Pores"])).is_empty());
    }
}
