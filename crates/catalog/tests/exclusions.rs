//! Exclusions and "free of" facts on declarations as real labels write them, the same on SQLite
//! and PostgreSQL: an entry that resolves only after cleaning, names glued together, a name split
//! by a stray comma, an allergen announced on its own line, and an entry that does not resolve but
//! names the ingredient as a word all keep a product out of an exclusion.

use std::collections::BTreeSet;

use dermis_catalog::input::{ListProducts, NewProduct};
use dermis_catalog::search::SearchFilter;
use dermis_catalog::{Catalog, MIGRATIONS};
use dermis_core::Limit;
use dermis_store::Db;
use dermis_store::sqlx;

const ALL: &[&[dermis_store::Migration]] = &[dermis_store::MIGRATIONS, MIGRATIONS];

dermis_store::backend_tests!(ALL;
    unreadable_entries_never_pass_an_exclusion,
    facts_derived_under_older_rules_never_say_free_of,
);

/// The products, by name, and their declarations.
const PRODUCTS: &[(&str, &str)] = &[
    ("plain", "Water, Glycerin, Tocopherol"),
    ("cas", "Water, Glycerin, Linalool 78-70-6"),
    ("glued", "Water, Glycerin, TocopherolLimonene"),
    ("and", "Water, Glycerin, Limonene and Fragrance/Parfum"),
    ("announced", "Water, Glycerin.\nAllergens: Linalool."),
    ("unknown", "Water, Glycerin, Mystery Linalool Blend"),
    ("split", "Water, Alpha-Isomethyl, Ionone"),
    ("typo", "Water, Glycerin, Linalooll"),
    ("ethyl", "Water, Glycerin, Ethyl Linalool"),
    ("oils", "Water, Glycerin, Natural Essential Oils"),
];

async fn create_all(c: &Catalog) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, ingredients) in PRODUCTS {
        let p = NewProduct {
            name: (*name).into(),
            brand: "Labels".into(),
            external_id: None,
            category: Some("Skincare/Moisturizers/Moisturizers".into()),
            description: None,
            ingredients: Some((*ingredients).into()),
            highlights: Vec::new(),
        };
        let created = c.create_product(None, p).await.unwrap().value;
        out.push((created.id, (*name).to_owned()));
    }
    out
}

async fn names(c: &Catalog, ids: &[(String, String)], q: ListProducts) -> BTreeSet<String> {
    let f = SearchFilter::parse(&ListProducts { brand: Some("Labels".into()), ..q }).unwrap();
    let page = c.search(&f, None, Limit::try_from(500).unwrap(), false).await.unwrap();
    page.items.iter().map(|p| ids.iter().find(|(id, _)| *id == p.id).unwrap().1.clone()).collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

fn exclude(terms: &str) -> ListProducts {
    ListProducts { exclude_ingredients: Some(terms.into()), ..ListProducts::default() }
}

async fn unreadable_entries_never_pass_an_exclusion(db: Db) {
    let c = Catalog::new(db.clone());
    let ids = create_all(&c).await;
    assert_eq!(names(&c, &ids, exclude("linalool,limonene")).await, set(&["plain", "split", "ethyl", "oils"]));
    assert!(!names(&c, &ids, exclude("alpha-isomethyl ionone")).await.contains("split"));
    assert_eq!(names(&c, &ids, exclude("fragrance")).await, set(&["plain"]));
    assert_eq!(names(&c, &ids, exclude("fragrance-allergens")).await, set(&["plain", "ethyl", "oils"]));
    assert!(!names(&c, &ids, exclude("essential-oils")).await.contains("oils"));
    let free = ListProducts { fragrance_free: Some(true), ..ListProducts::default() };
    assert_eq!(names(&c, &ids, free).await, set(&["plain"]));
    // Inclusion is a claim: only what an entry declares counts, never what it may name.
    let include = ListProducts { include_ingredients: Some("linalool".into()), ..ListProducts::default() };
    assert_eq!(names(&c, &ids, include).await, set(&["cas", "announced", "typo"]));
    let (_, count) = c.products_containing("linalool", 10).await.unwrap();
    assert_eq!(count, 3, "products containing linalool: declared only");
    let include = ListProducts { include_ingredients: Some("fragrance".into()), ..ListProducts::default() };
    assert!(!names(&c, &ids, include).await.contains("unknown"));
    // What the product page says.
    let unknown = &ids.iter().find(|(_, n)| n == "unknown").unwrap().0;
    let p = c.product(unknown).await.unwrap();
    let facts = p.attributes.unwrap();
    assert_eq!(facts.fragrance_free, Some(false));
    assert!(facts.allergens.contains(&"linalool".to_owned()));
    assert_eq!(facts.possible_ingredients, ["linalool"]);
}

async fn facts_derived_under_older_rules_never_say_free_of(db: Db) {
    let c = Catalog::new(db.clone());
    let ids = create_all(&c).await;
    let plain = ids.iter().find(|(_, n)| n == "plain").unwrap().0.clone();
    sqlx::query("UPDATE products SET kb_version = 'older' WHERE id = $1")
        .bind(&plain)
        .execute(db.writer())
        .await
        .unwrap();
    assert!(!names(&c, &ids, exclude("linalool")).await.contains("plain"));
    let free = ListProducts { fragrance_free: Some(true), ..ListProducts::default() };
    assert!(names(&c, &ids, free).await.is_empty());
    assert!(names(&c, &ids, ListProducts::default()).await.contains("plain"), "still listed");
    assert_eq!(c.refresh_stale_facts().await.unwrap(), 1);
    assert!(names(&c, &ids, exclude("linalool")).await.contains("plain"));
}
