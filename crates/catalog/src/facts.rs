//! A product's derived facts: computed from its ingredients, category, name and highlights with
//! the bundled knowledge base, and stored beside it (a JSON document for reading, columns and
//! rows for filtering). Recomputed in the transaction of every change to those inputs, and for
//! every product whose facts were derived under another knowledge base version.

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

fn flag(b: Option<bool>) -> Option<i64> {
    b.map(i64::from)
}

/// Stores a product's facts and their search columns and rows (in the caller's transaction).
pub async fn store(conn: &mut AnyConnection, p: &Product, facts: &ProductFacts) -> Result<(), StoreError> {
    let types = skin_types(&p.highlights);
    let vegan = p.highlights.iter().any(|h| h.eq_ignore_ascii_case("vegan"));
    let contact_free = facts.has_ingredient_list.then(|| {
        !facts
            .allergens
            .iter()
            .any(|id| KnowledgeBase::bundled().get(id).is_some_and(|i| i.allergen_lists.iter().any(|l| l == "contact")))
    });
    sqlx::query(
        "UPDATE products SET facts = $1, kb_version = $2, routine_step = $3, skin_types = $4, has_ingredients = $5,
                fragrance_free = $6, essential_oil_free = $7, drying_alcohol_free = $8, non_comedogenic = $9,
                pregnancy_caution = $10, photosensitizing = $11, contact_allergen_free = $12, vegan = $13,
                search_text = $14
         WHERE id = $15",
    )
    .bind(serde_json::to_string(facts).map_err(|e| StoreError::Other(e.to_string()))?)
    .bind(&facts.kb_version)
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
    .bind(search_text(p))
    .bind(&p.id)
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
        "UPDATE products SET min_price_minor = (SELECT MIN(price_minor) FROM skus WHERE product_id = $1 AND status = 'active') WHERE id = $1",
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
