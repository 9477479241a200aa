//! Ingredient-aware search through HTTP.

use std::collections::HashSet;

use dermis_auth::Role;
use dermis_ingredients::KnowledgeBase;
use dermis_ingredients::inci::{key, parse};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app};

crate::both_backends!(exclusions_understand_synonyms_and_families_and_unknown_lists);

async fn get_json(app: &TestApp, path: &str) -> Value {
    let res = app.get(path, Role::Customer).await;
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.unwrap()
}

fn ids(page: &Value) -> HashSet<String> {
    page["items"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn fragrance_free_moisturizers_for_dry_acne_prone_skin_without_linalool_or_limonene() {
    let app = spawn_app().await;
    let report = app.load_demo().await;
    assert!(report.imported > 400, "{report:?}");
    let query = "routine_step=moisturizer&fragrance_free=true&skin_type=dry&non_comedogenic=true&exclude_ingredients=linalool,limonene&limit=500";
    let page = get_json(&app, &format!("/v1/products?{query}")).await;
    let items = page["items"].as_array().unwrap();
    assert!(!items.is_empty(), "the demo catalog has such products");
    let all_moisturizers = get_json(&app, "/v1/products?routine_step=moisturizer&limit=500").await;
    assert!(all_moisturizers["items"].as_array().unwrap().len() > items.len(), "the filters removed something");

    let kb = KnowledgeBase::bundled();
    let banned: HashSet<String> =
        ["linalool", "limonene"].iter().map(|n| kb.lookup(n).expect("known").id.clone()).collect();
    for summary in items {
        let id = summary["id"].as_str().unwrap();
        let p = get_json(&app, &format!("/v1/products/{id}")).await;
        let a = &p["attributes"];
        assert_eq!(a["routine_step"], "moisturizer", "{id}");
        assert_eq!(a["fragrance_free"], true, "{id}");
        assert_eq!(a["non_comedogenic"], true, "{id}");
        assert_eq!(a["drying_alcohol_free"], true, "{id}: dry skin gets no drying alcohol");
        // Check against the declaration itself, parsed independently of the stored facts.
        let declared = p["ingredients"].as_str().expect("an exclusion only passes products with a known list");
        let parsed = parse(declared);
        assert!(!parsed.is_empty(), "{id}");
        for entry in parsed.entries() {
            let resolved = kb.resolve(&entry.text);
            if let Some(i) = resolved {
                assert!(!banned.contains(&i.id), "{id} declares {} ({})", entry.text, i.id);
                assert!(!dermis_ingredients::kb::in_family(i, "fragrance"), "{id} declares fragrance {}", entry.text);
            }
            assert!(!["linalool", "limonene"].contains(&key(&entry.text).as_str()), "{id}: {}", entry.text);
        }
        let highlights: Vec<String> = p["highlights"]
            .as_array()
            .map(|h| h.iter().map(|v| v.as_str().unwrap().to_lowercase()).collect())
            .unwrap_or_default();
        let declared_types: Vec<&String> = highlights.iter().filter(|h| h.starts_with("best for")).collect();
        assert!(declared_types.is_empty() || declared_types.iter().any(|h| h.contains("dry")), "{id}: {highlights:?}");
    }
}

async fn exclusions_understand_synonyms_and_families_and_unknown_lists(app: TestApp) {
    let perfumed = app
        .create_product(
            json!({"name": "Perfumed Cream", "brand": "T", "ingredients": "Aqua (Water), Glycerin, Parfum, Linalool"}),
        )
        .await;
    let plain = app
        .create_product(json!({"name": "Plain Cream", "brand": "T", "ingredients": "Water, Glycerin, Tocopherol"}))
        .await;
    let unknown = app.create_product(json!({"name": "Mystery Cream", "brand": "T"})).await;
    let (perfumed, plain, unknown) =
        (perfumed["id"].as_str().unwrap(), plain["id"].as_str().unwrap(), unknown["id"].as_str().unwrap());

    let r = ids(&get_json(&app, "/v1/products?brand=T&exclude_ingredients=fragrance").await);
    assert_eq!(r, HashSet::from([plain.to_owned()]), "family, and unknown lists never pass");
    let r = ids(&get_json(&app, "/v1/products?brand=T&exclude_ingredients=vitamin%20e").await);
    assert_eq!(r, HashSet::from([perfumed.to_owned()]), "synonym of tocopherol");
    let r = ids(&get_json(&app, "/v1/products?brand=T&exclude_ingredients=Eau%20(Aqua)").await);
    assert!(r.is_empty(), "a term resolves like a label entry: Eau (Aqua) is water");
    let r = ids(&get_json(&app, "/v1/products?brand=T&include_ingredients=aqua").await);
    assert_eq!(r, HashSet::from([perfumed.to_owned(), plain.to_owned()]), "aqua = water");
    let r = ids(&get_json(&app, "/v1/products?brand=T&has_ingredients=false").await);
    assert_eq!(r, HashSet::from([unknown.to_owned()]));
    let r = get_json(&app, "/v1/products?brand=T&exclude_ingredients=unobtainium").await;
    assert_eq!(r["unknown_terms"], json!(["unobtainium"]));
    assert_eq!(ids(&r).len(), 2, "an unknown term still excludes products with unknown lists");

    let p = get_json(&app, &format!("/v1/products/{perfumed}")).await;
    assert_eq!(p["attributes"]["fragrance_free"], false);
    assert!(p["attributes"]["allergens"].as_array().unwrap().iter().any(|a| a == "linalool"));
    let m = get_json(&app, &format!("/v1/products/{unknown}")).await;
    assert_eq!(m["attributes"]["has_ingredient_list"], false);
    assert!(m["attributes"]["fragrance_free"].is_null(), "unknown is not free-of");
    assert!(m["attributes"]["am"].is_null() && m["attributes"]["pm"].is_null(), "nor suitable at any time");
    let p = get_json(&app, &format!("/v1/products/{plain}")).await;
    assert_eq!((&p["attributes"]["am"], &p["attributes"]["pm"]), (&json!(true), &json!(true)));

    // Changing the ingredients recomputes the facts.
    let res = app
        .patch_json(&format!("/v1/products/{perfumed}"), Role::Merchandiser, &json!({"ingredients": "Water, Glycerin"}))
        .await;
    assert_eq!(res.status(), 200);
    let after: Value = res.json().await.unwrap();
    assert_eq!(after["attributes"]["fragrance_free"], true);
    let r = ids(&get_json(&app, "/v1/products?brand=T&exclude_ingredients=fragrance").await);
    assert_eq!(r, HashSet::from([plain.to_owned(), perfumed.to_owned()]));
}

#[tokio::test]
async fn ingredients_resolve_by_any_name() {
    let app = spawn_app().await;
    app.create_product(
        json!({"name": "Hydrator", "brand": "T", "ingredients": "Aqua/Water/Eau, Niacinamide 5%, Glycerin"}),
    )
    .await;
    let water = get_json(&app, "/v1/ingredients/Eau").await;
    assert_eq!(water["id"], "water");
    assert_eq!(water["product_count"], 1);
    // Any label form of a name resolves, as the product's own declaration writes it.
    for label in ["Water%20(Aqua)", "Aqua%2FWater%2FEau", "WATER%20(AQUA%2C%20EAU)", "Aqua*"] {
        assert_eq!(get_json(&app, &format!("/v1/ingredients/{label}")).await["id"], "water", "{label}");
    }
    let n = get_json(&app, "/v1/ingredients/Niacinamide%205%25").await;
    assert_eq!((&n["id"], &n["product_count"]), (&json!("niacinamide"), &json!(1)));
    assert_problem(app.get("/v1/ingredients/Water%2C%20Glycerin", Role::Customer).await, 404).await;
    let n = get_json(&app, "/v1/ingredients/niacinamide").await;
    assert!(!n["concerns"].as_array().unwrap().is_empty(), "{n}");
    assert!(!n["sources"].as_array().unwrap().is_empty(), "every fact has a source");
    let linalool = get_json(&app, "/v1/ingredients/LINALOOL").await;
    assert!(linalool["allergen_lists"].as_array().unwrap().iter().any(|l| l == "eu-2003"));
    assert!(linalool["families"].as_array().unwrap().iter().any(|f| f == "fragrance-allergens"));
    assert_problem(app.get("/v1/ingredients/unobtainium", Role::Customer).await, 404).await;
}

#[tokio::test]
async fn facets_count_the_matches_and_bad_filters_are_422() {
    let app = spawn_app().await;
    app.load_demo().await;
    let page = get_json(&app, "/v1/products?category=Skincare&facets=true&limit=1").await;
    let steps = page["facets"]["routine_step"].as_object().unwrap();
    let total: i64 = steps.values().map(|v| v.as_i64().unwrap()).sum();
    let all = get_json(&app, "/v1/products?category=Skincare&limit=500").await;
    assert_eq!(total as usize, all["items"].as_array().unwrap().len());
    assert!(page["facets"]["brand"].as_object().unwrap().len() > 5);
    let q = get_json(&app, "/v1/products?q=VITAMIN%20c&limit=500").await;
    // Every word matches a whole word (or the last one a word's start) of what the product is
    // or is tagged for: never the letter `c` inside "Face".
    for p in q["items"].as_array().unwrap() {
        let text = format!("{} {} {} {}", p["name"], p["brand"], p["category"], p["highlights"]).to_lowercase();
        let words: Vec<&str> = text.split(|c: char| !c.is_alphanumeric()).collect();
        assert!(words.iter().any(|w| w.starts_with("vitamin")) && words.iter().any(|w| w.starts_with('c')), "{text}");
    }
    for bad in
        ["routine_step=lotion", "concern=wrinkles", "skin_type=scaly", "price_min=-1", "price_min=10&price_max=5"]
    {
        assert_problem(app.get(&format!("/v1/products?{bad}"), Role::Customer).await, 422).await;
    }
    let cheap = get_json(&app, "/v1/products?price_max=1500&limit=500").await;
    assert!(!cheap["items"].as_array().unwrap().is_empty());
}
