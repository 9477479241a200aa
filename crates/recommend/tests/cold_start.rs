//! Content-based scoring for new customers ([`dermis_recommend::content`]) on hand-made products,
//! and the cold-start protocol on the real 2023 review files and catalog of `../shared/data`
//! (skipped with a message where they are absent, unless `DERMIS_REQUIRE_SHARED_DATA` is set).

use std::path::PathBuf;

use dermis_catalog::{Product, ProductStatus};
use dermis_ingredients::KnowledgeBase;
use dermis_recommend::content::cold_start::{self, ColdStartConfig};
use dermis_recommend::content::{
    ContentItem, ContentModel, ContentProfile, SegmentPopularity, is_skincare, read_catalog,
};

fn product(name: &str, category: &str, ingredients: Option<&str>, highlights: &[&str]) -> ContentItem {
    let p = Product {
        id: format!("prd_{name}"),
        external_id: None,
        name: name.to_owned(),
        brand: "Test".into(),
        category: Some(category.to_owned()),
        description: None,
        ingredients: ingredients.map(str::to_owned),
        highlights: highlights.iter().map(|h| (*h).to_owned()).collect(),
        attributes: None,
        status: ProductStatus::Active,
        version: 1,
        created_at: String::new(),
        updated_at: String::new(),
    };
    ContentItem::from_product(&p, KnowledgeBase::bundled())
}

/// 0: a niacinamide serum; 1: a plain cream; 2: a fragranced lotion; 3: a cream declared for dry
/// skin without an ingredient list; 4: a niacinamide foundation (makeup).
fn catalog() -> Vec<ContentItem> {
    vec![
        product(
            "serum",
            "Skincare/Treatments/Face Serums",
            Some("Water, Niacinamide, Pentylene Glycol, Phenoxyethanol"),
            &[],
        ),
        product(
            "cream",
            "Skincare/Moisturizers/Moisturizers",
            Some("Water, Caprylic/Capric Triglyceride, Cetearyl Alcohol"),
            &[],
        ),
        product(
            "lotion",
            "Skincare/Moisturizers/Moisturizers",
            Some("Water, Caprylic/Capric Triglyceride, Fragrance, Linalool"),
            &[],
        ),
        product("dry", "Skincare/Moisturizers/Moisturizers", None, &["Best for Dry, Combo Skin", "Vegan"]),
        product("foundation", "Makeup/Face/Foundation", Some("Water, Niacinamide, Dimethicone"), &[]),
    ]
}

fn scores(model: &ContentModel, profile: &ContentProfile) -> Vec<f32> {
    let mut out = vec![0.0; model.n_items()];
    model.score(profile, &mut out);
    out
}

#[test]
fn a_niacinamide_serum_ranks_first_for_acne_and_the_explanation_names_niacinamide() {
    let model = ContentModel::new(&catalog());
    let profile = ContentProfile::new(None, &["acne"], false).unwrap();
    let s = scores(&model, &profile);
    assert!(s[0] > 0.0, "{s:?}");
    assert!(s[1..].iter().all(|&x| x < s[0]), "the serum is first: {s:?}");
    assert_eq!(s[4], 0.0, "makeup is not recommended from a skin quiz: {s:?}");
    let m = model.explain(0, &profile);
    assert_eq!(m.actives, [("Niacinamide".to_owned(), "acne".to_owned())]);
    // A concern niacinamide does not address gives the serum nothing.
    let dryness = ContentProfile::new(None, &["sensitivity"], false).unwrap();
    assert!(model.explain(0, &dryness).actives.is_empty());
}

#[test]
fn skin_type_and_sensitive_skin_are_matched_and_explained() {
    let model = ContentModel::new(&catalog());
    let dry = ContentProfile::new(Some("dry"), &[] as &[&str], false).unwrap();
    let s = scores(&model, &dry);
    assert!(s[3] > 0.0 && s.iter().enumerate().all(|(i, &x)| i == 3 || x == 0.0), "{s:?}");
    assert!(model.explain(3, &dry).skin_type);
    assert!(!model.explain(0, &dry).skin_type);

    let sensitive = ContentProfile::new(Some("Sensitive"), &[] as &[&str], false).unwrap();
    let s = scores(&model, &sensitive);
    assert!(s[0] > 0.0 && s[1] > 0.0, "fragrance-free products get points: {s:?}");
    assert_eq!(s[2], 0.0, "the fragranced lotion gets none: {s:?}");
    assert!(model.explain(1, &sensitive).fragrance_free);
    assert!(!model.explain(2, &sensitive).fragrance_free);
    // The same products for a customer who is not sensitive: nothing matches.
    assert!(scores(&model, &ContentProfile::default()).iter().all(|&x| x == 0.0));
    assert!(model.explain(1, &ContentProfile::default()).is_empty());
    assert!(model.explain(99, &sensitive).is_empty());
}

#[test]
fn quiz_answers_outside_the_vocabularies_are_refused() {
    let e = ContentProfile::new(None, &["wrinkles"], false).unwrap_err().to_string();
    assert!(e.contains("wrinkles") && e.contains("aging"), "{e}");
    assert!(ContentProfile::new(Some("greasy"), &[] as &[&str], false).is_err());
}

#[test]
fn segment_popularity_falls_back_to_everyones_counts_for_a_small_segment() {
    let mut p = SegmentPopularity::new(3, 3.0);
    for _ in 0..3 {
        p.add(Some("dry"), 2, 1.0);
    }
    for _ in 0..5 {
        p.add(Some("oily"), 0, 1.0);
    }
    p.add(Some("normal"), 1, 1.0);
    let mut out = [0.0; 3];
    p.scores(Some("dry"), &mut out);
    assert!(out[2] > out[0] && out[0] > out[1], "dry's own counts, ties broken by everyone's: {out:?}");
    p.scores(Some("normal"), &mut out);
    assert_eq!(out, [5.0, 1.0, 3.0], "one review is too few: everyone's counts");
    p.scores(None, &mut out);
    assert_eq!(out, [5.0, 1.0, 3.0]);
}

fn shared() -> Option<PathBuf> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/sephora-products-and-skincare-reviews");
    if dir.join("product_info.csv.gz").exists() {
        return Some(dir);
    }
    assert!(std::env::var_os("DERMIS_REQUIRE_SHARED_DATA").is_none(), "{} is missing", dir.display());
    eprintln!("skipped: {} is absent (set DERMIS_REQUIRE_SHARED_DATA to require it)", dir.display());
    None
}

#[test]
fn on_the_2023_reviews_the_blend_does_not_lose_to_popularity_per_skin_type() {
    let Some(dir) = shared() else { return };
    let started = std::time::Instant::now();
    let (products, _) = read_catalog(&dir.join("product_info.csv.gz"), true).unwrap();
    assert!(products.len() > 2000 && products.iter().all(is_skincare), "{} skin care products", products.len());
    let kb = KnowledgeBase::bundled();
    let items: Vec<ContentItem> = products.iter().map(|p| ContentItem::from_product(p, kb)).collect();
    let ids: Vec<String> = products.iter().map(|p| p.external_id.clone().unwrap()).collect();
    let model = ContentModel::new(&items);
    let mut reviews = Vec::new();
    for f in ["sc_reviews_250-500.csv.gz", "sc_reviews_500-750.csv.gz", "sc_reviews_1250-end.csv.gz"] {
        reviews.extend(cold_start::read_reviews(&dir.join("derived/shuuheialb-skincare-2023").join(f)).unwrap());
    }
    assert_eq!(reviews.len(), 22_961, "SOURCE.md's row count");
    let config = ColdStartConfig::default();
    let report = cold_start::evaluate(&ids, &model, &reviews, &config).unwrap();
    eprintln!(
        "{} reviewers with a skin type ({} fit, {} test, {} evaluated); blend weight {} (tuning {:?}); {:.1} s\n{}",
        report.reviewers,
        report.fit_reviewers,
        report.test_reviewers,
        report.evaluated,
        report.blend_weight,
        report.tuning,
        started.elapsed().as_secs_f64(),
        report.table(config.k)
    );
    // About a fifth of the reviewers are test reviewers, and no row is off the catalog.
    let share = report.test_reviewers as f64 / report.reviewers as f64;
    assert!((0.17..0.23).contains(&share), "{share}");
    assert_eq!(report.rows_off_catalog, 0);
    assert!(report.evaluated > 1000, "{}", report.evaluated);
    let all = |m: &str| report.get(m, "all").unwrap().ndcg;
    let (global, segment, content, blend) =
        (all("global popularity"), all("popularity per skin type"), all("content alone"), all("blend"));
    assert!(global > 0.0 && segment > 0.0 && content > 0.0, "{global} {segment} {content}");
    assert!(blend >= segment, "blend {blend} < popularity per skin type {segment}");
    for skin in ["dry", "oily", "combination", "normal"] {
        assert!(report.get("blend", skin).is_some_and(|r| r.users > 0), "{skin} has test reviewers");
    }
}
