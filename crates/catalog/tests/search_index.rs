//! The in-memory search index, on SQLite and PostgreSQL: what a shopper's words find and in what
//! order (whole words, the last word as a prefix, typos, accents), every filter and facet exactly
//! as the SQL search answers them (over a generated catalog with real label forms), writes seen by
//! the next search on the node that made them, and other nodes brought up to date by the events.

use std::collections::BTreeSet;

use dermis_bus::Envelope;
use dermis_bus::projection::Projection;
use dermis_catalog::index::SearchIndex;
use dermis_catalog::input::{ListProducts, NewProduct, NewSku, ProductChanges, SkuChanges};
use dermis_catalog::search::{self, SearchFilter, SearchPage};
use dermis_catalog::{Catalog, CatalogError, MIGRATIONS, Money, ProductStatus, Variant, store};
use dermis_core::Limit;
use dermis_core::page::Cursor;
use dermis_store::{Db, sqlx};

const ALL: &[&[dermis_store::Migration]] = &[dermis_store::MIGRATIONS, MIGRATIONS];

dermis_store::backend_tests!(ALL;
    words_find_whole_words_prefixes_and_typos_best_first,
    filters_and_facets_answer_as_the_sql_search,
    a_write_is_seen_by_the_next_search,
    events_bring_another_node_up_to_date,
    the_demo_catalog_answers_as_the_api_promises,
);

fn product(
    name: &str,
    brand: &str,
    category: Option<&str>,
    ingredients: Option<&str>,
    highlights: &[&str],
) -> NewProduct {
    NewProduct {
        name: name.into(),
        brand: brand.into(),
        external_id: None,
        category: category.map(str::to_owned),
        description: None,
        ingredients: ingredients.map(str::to_owned),
        highlights: highlights.iter().map(|h| (*h).to_owned()).collect(),
    }
}

fn sku(code: &str, amount: i64) -> NewSku {
    NewSku {
        code: code.into(),
        barcode: None,
        variant: Variant::default(),
        price: Money { amount_minor: amount, currency: "EUR".into() },
    }
}

/// A catalog searching a built index, and the index.
async fn indexed(db: &Db) -> (Catalog, std::sync::Arc<SearchIndex>) {
    let index = SearchIndex::new(Catalog::new(db.clone()));
    index.rebuild().await.unwrap();
    (Catalog::new(db.clone()).with_index(index.clone()), index)
}

fn query(q: &str) -> SearchFilter {
    SearchFilter::parse(&ListProducts { q: Some(q.into()), ..ListProducts::default() }).unwrap()
}

fn names(page: &SearchPage) -> Vec<String> {
    page.items
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l.json()).unwrap()["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn find(c: &Catalog, q: &str) -> Vec<String> {
    names(&c.search(&query(q), None, Limit::try_from(100).unwrap(), false).await.unwrap())
}

async fn words_find_whole_words_prefixes_and_typos_best_first(db: Db) {
    let (c, _) = indexed(&db).await;
    let serums = "Skincare/Treatments/Face Serums";
    for p in [
        product("Vitamin Cream", "Glow", Some("Skincare/Moisturizers"), None, &[]),
        product("Face Wash", "Clean", Some("Skincare/Cleansers"), Some("Water, Glycerin"), &[]),
        product("Brightening Serum with Vitamin E", "Glow", Some(serums), None, &["Vitamin C"]),
        product("Vitamin C Brightening Serum", "Glow", Some(serums), None, &[]),
        product("Hydrating Face Cream", "Aqua", Some("Skincare/Moisturizers"), Some("Water, Hyaluronic Acid"), &[]),
        product("Hyaluronic Acid Serum", "Aqua", Some(serums), Some("Water, Sodium Hyaluronate"), &[]),
        product("Crème Riche", "Maison", Some("Skincare/Moisturizers"), None, &[]),
        product("Moisturizing Lotion", "Aqua", Some("Skincare/Moisturizers"), None, &[]),
        product("C-Firma Vitamin C Day Serum", "Elephant", Some(serums), None, &[]),
        product("Daily Serum", "Plain", Some(serums), Some("Water, Ascorbic Acid"), &[]),
    ] {
        c.create_product(None, p).await.unwrap();
    }
    // Products named for all three words come first. A word must be in the name, brand,
    // category or highlights: "Vitamin Cream" does not say "c" or "serum" as a word; a serum
    // tagged "Vitamin C" matches, after those named for it; an ingredient (ascorbic acid) only
    // ranks what matched.
    let found = find(&c, "vitamin c serum").await;
    assert_eq!(
        found[..2].iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([&"Vitamin C Brightening Serum".to_owned(), &"C-Firma Vitamin C Day Serum".to_owned()]),
        "{found:?}"
    );
    assert_eq!(found.get(2).map(String::as_str), Some("Brightening Serum with Vitamin E"), "{found:?}");
    for other in ["Vitamin Cream", "Daily Serum"] {
        assert!(!found.contains(&other.to_owned()), "{found:?}");
    }
    // A one-letter word never matches inside another ("Face").
    let c_only = find(&c, "c").await;
    assert!(!c_only.iter().any(|n| n.contains("Face")), "{c_only:?}");
    assert!(c_only.contains(&"Vitamin C Brightening Serum".to_owned()));
    // A typo.
    assert_eq!(find(&c, "hyaluronc").await, ["Hyaluronic Acid Serum"]);
    // Accents fold both ways.
    assert_eq!(find(&c, "crème").await, ["Crème Riche"]);
    assert_eq!(find(&c, "creme").await, ["Crème Riche"]);
    // The last word as a prefix (of the name first, then of the category); earlier words whole.
    let moist = find(&c, "moistur").await;
    assert_eq!(moist[0], "Moisturizing Lotion", "{moist:?}");
    assert_eq!(moist.len(), 4, "the name, and the three in Skincare/Moisturizers: {moist:?}");
    assert_eq!(find(&c, "hydra face").await, Vec::<String>::new());
    assert_eq!(find(&c, "face hydra").await, ["Hydrating Face Cream"]);
    // Every word must match somewhere (name, brand, category, highlights, ingredients).
    assert_eq!(find(&c, "glow vitamin e").await, ["Brightening Serum with Vitamin E"]);

    // Paging a ranked search: the same order, nothing twice, nothing lost.
    let all = find(&c, "serum").await;
    assert_eq!(all.len(), 5);
    let mut paged = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = c.search(&query("serum"), cursor.as_ref(), Limit::try_from(1).unwrap(), false).await.unwrap();
        paged.extend(names(&page));
        match page.next_cursor {
            Some(next) => cursor = Some(Cursor::parse(&next).unwrap()),
            None => break,
        }
    }
    assert_eq!(paged, all);
    // A ranked search continues only from its own cursors.
    let listing_cursor = Cursor::parse(&Cursor::encode("prd_0")).unwrap();
    let err = c.search(&query("serum"), Some(&listing_cursor), Limit::default(), false).await.unwrap_err();
    assert!(matches!(err, CatalogError::InvalidCursor), "{err}");
}

/// A small deterministic generator (no dependency needed for this).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

const BRANDS: &[&str] = &["Glow", "Clean", "Maison", "Aqua", "Labels", "L'Atelier"];
const CATEGORIES: &[&str] = &[
    "Skincare/Moisturizers/Face Creams",
    "Skincare/Moisturizers",
    "Skincare/Cleansers/Face Wash",
    "Skincare/Treatments/Face Serums",
    "Skincare/Sunscreen/Face Sunscreen",
    "Skincare",
    "Makeup/Face/Foundation",
    "Skincare/Moisturizers/Face Creams 2",
    "Skincare//Odd",
    "Skincare/",
];
/// Entries as labels write them: resolved, families, glued, announced, unresolved but naming an
/// ingredient, may-contain notes, unknown names.
const ENTRIES: &[&str] = &[
    "Glycerin",
    "Niacinamide",
    "Linalool",
    "Limonene",
    "Fragrance/Parfum",
    "Benzyl Alcohol",
    "Alcohol Denat.",
    "Methylparaben",
    "Sodium Laureth Sulfate",
    "Dimethicone",
    "Retinol",
    "Salicylic Acid",
    "Glycolic Acid",
    "Lavandula Angustifolia (Lavender) Oil",
    "TocopherolLimonene",
    "Mystery Linalool Blend",
    "Ethyl Linalool",
    "Zinc Oxide",
    "Hyaluronic Acid",
    "Ascorbic Acid",
    "Secret Botanical Complex",
    "Methylisothiazolinone",
    "Tocopherol",
];
const HIGHLIGHTS: &[&str] =
    &["Vegan", "Best for Dry, Combo, Normal Skin", "Best for Oily Skin", "Best for Sensitive Skin", "Good for: Pores"];

/// A generated catalog of `n` products with SKUs, statuses and facts of an older knowledge base.
async fn generate(c: &Catalog, db: &Db, rng: &mut Rng, n: usize) {
    for i in 0..n {
        let ingredients = if rng.chance(12) {
            None
        } else {
            let mut list = vec!["Water"];
            for _ in 0..rng.below(6) {
                list.push(rng.pick(ENTRIES));
            }
            let mut text = list.join(", ");
            if rng.chance(15) {
                text.push_str("\nMay Contain: Linalool, CI 77491.");
            }
            if rng.chance(10) {
                text.push_str("\nAllergens: Limonene.");
            }
            Some(text)
        };
        let highlights: Vec<&str> = HIGHLIGHTS.iter().copied().filter(|_| rng.chance(30)).collect();
        let category = (!rng.chance(8)).then(|| rng.pick(CATEGORIES));
        let kind = rng.pick(&["Cream", "Serum", "Cleanser", "Toner", "Sunscreen SPF 30", "Mask", "Eye Cream", "Oil"]);
        let name = format!("{} {kind} {i}", rng.pick(&["Daily", "Night", "Hydrating", "Calming", "Bright"]));
        let p = product(&name, rng.pick(BRANDS), category, ingredients.as_deref(), &highlights);
        let id = c.create_product(None, p).await.unwrap().value.id;
        for s in 0..rng.below(3) {
            c.create_sku(&id, None, sku(&format!("G{i}-{s}"), 500 + 250 * rng.below(12) as i64)).await.unwrap();
        }
        if rng.chance(10) {
            let ch = ProductChanges { status: Some(ProductStatus::Discontinued), ..ProductChanges::default() };
            c.update_product(&id, ch, None).await.unwrap();
        }
        if rng.chance(5) {
            sqlx::query("UPDATE products SET kb_version = 'older' WHERE id = $1")
                .bind(&id)
                .execute(db.writer())
                .await
                .unwrap();
        }
    }
}

const TERMS: &[&str] = &[
    "linalool",
    "limonene",
    "fragrance",
    "fragrance-allergens",
    "essential-oils",
    "parabens",
    "sulfates",
    "silicones",
    "drying-alcohols",
    "contact-allergens",
    "retinoids",
    "bhas",
    "ahas",
    "uv-filters",
    "vitamin e",
    "aqua",
    "niacinamide",
    "secret botanical complex",
    "alpha-isomethyl ionone",
    "unobtainium",
];

/// A random search without words.
fn random_filter(rng: &mut Rng) -> ListProducts {
    let mut q = ListProducts::default();
    let b = |rng: &mut Rng| Some(rng.chance(50));
    if rng.chance(15) {
        q.brand = Some(rng.pick(BRANDS).to_owned());
    }
    if rng.chance(20) {
        q.category = Some(
            rng.pick(&[
                "Skincare",
                "Skincare/Moisturizers",
                "Makeup",
                "Skincare/Moisturizers/Face Creams",
                "Skin",
                "Skincare/",
                "Skincare//Odd",
            ])
            .to_owned(),
        );
    }
    if rng.chance(15) {
        q.status = Some(if rng.chance(50) { ProductStatus::Active } else { ProductStatus::Discontinued });
    }
    if rng.chance(15) {
        q.routine_step = Some(rng.pick(&["moisturizer", "serum", "cleanser", "sunscreen", "eye", "mask"]).to_owned());
    }
    if rng.chance(15) {
        q.concern = Some(rng.pick(&["acne", "hyperpigmentation", "aging", "dryness", "acne,aging"]).to_owned());
    }
    if rng.chance(15) {
        q.skin_type = Some(rng.pick(&["dry", "oily", "combination", "normal", "sensitive"]).to_owned());
    }
    if rng.chance(15) {
        q.price_min = Some(250 * rng.below(14) as i64);
    }
    if rng.chance(15) {
        q.price_max = Some(q.price_min.unwrap_or(0) + 250 * rng.below(14) as i64);
    }
    for flag in [
        &mut q.fragrance_free,
        &mut q.essential_oil_free,
        &mut q.drying_alcohol_free,
        &mut q.non_comedogenic,
        &mut q.pregnancy_safe,
        &mut q.vegan,
        &mut q.has_ingredients,
    ] {
        if rng.chance(8) {
            *flag = b(rng);
        }
    }
    let terms = |rng: &mut Rng| {
        let n = 1 + rng.below(3);
        Some((0..n).map(|_| rng.pick(TERMS)).collect::<Vec<_>>().join(","))
    };
    if rng.chance(35) {
        q.exclude_ingredients = terms(rng);
    }
    if rng.chance(15) {
        q.include_ingredients = terms(rng);
    }
    q
}

/// Every product id a search returns, page by page.
async fn all_pages(c: &Catalog, f: &SearchFilter, limit: u32) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = c.search(f, cursor.as_ref(), Limit::try_from(limit).unwrap(), false).await.unwrap();
        out.extend(page.items.iter().map(|l| l.id.clone()));
        match page.next_cursor {
            Some(next) => cursor = Some(Cursor::parse(&next).unwrap()),
            None => return out,
        }
    }
}

async fn filters_and_facets_answer_as_the_sql_search(db: Db) {
    let sql = Catalog::new(db.clone());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    generate(&sql, &db, &mut rng, 150).await;
    let (c, index) = indexed(&db).await;
    assert!(index.is_ready());
    let mut nonempty = 0;
    for round in 0..300 {
        let q = random_filter(&mut rng);
        let Ok(f) = SearchFilter::parse(&q) else { continue };
        let expected = search::search_ids(db.reader(), &f).await.unwrap();
        let got = all_pages(&c, &f, 1 + (round % 9) as u32 * 7).await;
        assert_eq!(got, expected, "ids differ for {q:?}");
        assert_eq!(index.filter_ids(&f).unwrap(), expected, "filter_ids differ for {q:?}");
        let with_facets = c.search(&f, None, Limit::try_from(3).unwrap(), true).await.unwrap();
        let sql_facets = search::facets(&db, &f).await.unwrap();
        assert_eq!(with_facets.facets.as_ref(), Some(&sql_facets), "facets differ for {q:?}");
        // The SQL path of a catalog without an index answers the same page.
        let sql_page = sql.search(&f, None, Limit::try_from(3).unwrap(), true).await.unwrap();
        let json = |p: &SearchPage| serde_json::to_string(p).unwrap();
        assert_eq!(json(&with_facets), json(&sql_page), "pages differ for {q:?}");
        nonempty += usize::from(!expected.is_empty());
    }
    assert!(nonempty > 100, "the generated searches should mostly find something: {nonempty}");
}

async fn a_write_is_seen_by_the_next_search(db: Db) {
    let (c, _) = indexed(&db).await;
    let by = |q: ListProducts| SearchFilter::parse(&q).unwrap();
    let count = |c: Catalog, f: SearchFilter| async move {
        c.search(&f, None, Limit::try_from(500).unwrap(), false).await.unwrap().items.len()
    };
    let p = c
        .create_product(None, product("Tinted Balm", "Fresh", Some("Skincare/Lip"), Some("Shea Butter, Linalool"), &[]))
        .await
        .unwrap()
        .value;
    assert_eq!(find(&c, "tinted").await, ["Tinted Balm"]);
    assert_eq!(
        count(c.clone(), by(ListProducts { exclude_ingredients: Some("linalool".into()), ..Default::default() })).await,
        0
    );

    let renamed = ProductChanges {
        name: Some("Sheer Lip Balm".into()),
        ingredients: Some(Some("Shea Butter, Tocopherol".into())),
        ..ProductChanges::default()
    };
    c.update_product(&p.id, renamed, None).await.unwrap();
    assert!(find(&c, "tinted").await.is_empty());
    assert_eq!(find(&c, "sheer").await, ["Sheer Lip Balm"]);
    assert_eq!(
        count(c.clone(), by(ListProducts { exclude_ingredients: Some("linalool".into()), ..Default::default() })).await,
        1
    );

    let price = |min: i64, max: i64| ListProducts { price_min: Some(min), price_max: Some(max), ..Default::default() };
    let s = c.create_sku(&p.id, None, sku("BALM-1", 1200)).await.unwrap().value;
    assert_eq!(count(c.clone(), by(price(1000, 1500))).await, 1);
    let cheaper =
        SkuChanges { price: Some(Money { amount_minor: 800, currency: "EUR".into() }), ..SkuChanges::default() };
    c.update_sku(&p.id, &s.id, cheaper, None).await.unwrap();
    assert_eq!(count(c.clone(), by(price(1000, 1500))).await, 0);
    assert_eq!(count(c.clone(), by(price(500, 900))).await, 1);

    let gone = ProductChanges { status: Some(ProductStatus::Discontinued), ..ProductChanges::default() };
    c.update_product(&p.id, gone, None).await.unwrap();
    let discontinued =
        by(ListProducts { status: Some(ProductStatus::Discontinued), facets: Some(true), ..Default::default() });
    let page = c.search(&discontinued, None, Limit::default(), true).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.facets.unwrap()["brand"]["Fresh"], 1);
    // What the page shows is the product as it is now.
    let shown: serde_json::Value = serde_json::from_str(page.items[0].json()).unwrap();
    assert_eq!(shown["status"], "discontinued");
    assert_eq!(shown["version"], 3);
}

/// The catalog's outbox as the bus would deliver it.
async fn delivered(db: &Db) -> Vec<Envelope> {
    store::outbox(db.reader(), 10_000)
        .await
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, (topic, key, payload))| Envelope {
            seq: i as u64 + 1,
            topic,
            key,
            id: format!("m{i}"),
            payload: payload.to_string(),
        })
        .collect()
}

async fn events_bring_another_node_up_to_date(db: Db) {
    // Node A writes through its own index; node B only hears the events.
    let (a, _) = indexed(&db).await;
    let b_index = SearchIndex::new(Catalog::new(db.clone()));
    Projection::rebuild(b_index.as_ref()).await.unwrap();
    assert_eq!(Projection::name(b_index.as_ref()), "search");
    assert_eq!(Projection::topic(b_index.as_ref()), "catalog.");
    let b = Catalog::new(db.clone()).with_index(b_index.clone());
    let p = a
        .create_product(None, product("Night Cream", "Moon", Some("Skincare/Moisturizers"), Some("Water"), &[]))
        .await
        .unwrap()
        .value;
    a.create_sku(&p.id, None, sku("MOON-1", 3000)).await.unwrap();
    a.update_product(&p.id, ProductChanges { name: Some("Midnight Cream".into()), ..ProductChanges::default() }, None)
        .await
        .unwrap();
    assert!(find(&b, "midnight").await.is_empty(), "B has heard nothing yet");
    let events = delivered(&db).await;
    b_index.apply(&events).await.unwrap();
    assert_eq!(find(&b, "midnight").await, ["Midnight Cream"]);
    assert!(find(&b, "night").await.is_empty(), "whole words: 'night' is not 'midnight'");
    let priced = SearchFilter::parse(&ListProducts { price_max: Some(3000), ..Default::default() }).unwrap();
    assert_eq!(b.search(&priced, None, Limit::default(), false).await.unwrap().items.len(), 1);
    // Delivered again (a lost acknowledgement): nothing changes.
    b_index.apply(&events).await.unwrap();
    let everything = SearchFilter::parse(&ListProducts { facets: Some(true), ..Default::default() }).unwrap();
    let page_a = a.search(&everything, None, Limit::default(), true).await.unwrap();
    let page_b = b.search(&everything, None, Limit::default(), true).await.unwrap();
    assert_eq!(serde_json::to_string(&page_a).unwrap(), serde_json::to_string(&page_b).unwrap());
    // A SKU event whose payload names no product is skipped, not retried forever.
    let bad = Envelope {
        seq: 999,
        topic: "catalog.sku.updated".into(),
        key: "sku_x".into(),
        id: "bad".into(),
        payload: "{}".into(),
    };
    b_index.apply(&[bad]).await.unwrap();

    // Facts refreshed for a new knowledge base (no new version) still reach other nodes.
    sqlx::query("UPDATE products SET kb_version = 'older' WHERE id = $1")
        .bind(&p.id)
        .execute(db.writer())
        .await
        .unwrap();
    b_index.rebuild().await.unwrap();
    let free = SearchFilter::parse(&ListProducts { fragrance_free: Some(true), ..Default::default() }).unwrap();
    assert!(b.search(&free, None, Limit::default(), false).await.unwrap().items.is_empty(), "older facts say nothing");
    let before = delivered(&db).await.len();
    assert_eq!(a.refresh_stale_facts().await.unwrap(), 1);
    let events = delivered(&db).await;
    assert_eq!(events.len(), before + 1);
    assert_eq!(events[before].topic, "catalog.product.updated");
    b_index.apply(&events[before..]).await.unwrap();
    assert_eq!(b.search(&free, None, Limit::default(), false).await.unwrap().items.len(), 1);
}

/// What the API tests (`tests/api/search_test.rs`) ask of the demo catalog, through the index:
/// every product a `q` search lists says its words (name, brand, category or highlights), and
/// facet counts add up to the listing.
async fn the_demo_catalog_answers_as_the_api_promises(db: Db) {
    let demo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../server/demo/catalog.json")).unwrap();
    dermis_catalog::import::import(&db, dermis_catalog::import::read_json(&demo).unwrap(), 200).await.unwrap();
    let (c, _) = indexed(&db).await;
    let found = c.search(&query("VITAMIN c"), None, Limit::try_from(500).unwrap(), false).await.unwrap();
    assert!(found.items.len() > 5, "{}", found.items.len());
    for l in &found.items {
        let p: serde_json::Value = serde_json::from_str(l.json()).unwrap();
        let text = format!("{} {} {} {}", p["name"], p["brand"], p["category"], p["highlights"]).to_lowercase();
        let words: Vec<&str> = text.split(|c: char| !c.is_alphanumeric()).collect();
        assert!(words.iter().any(|w| w.starts_with("vitamin")) && words.iter().any(|w| w.starts_with('c')), "{text}");
    }
    let skincare = ListProducts { category: Some("Skincare".into()), facets: Some(true), ..ListProducts::default() };
    let f = SearchFilter::parse(&skincare).unwrap();
    let page = c.search(&f, None, Limit::try_from(1).unwrap(), true).await.unwrap();
    let steps: i64 = page.facets.as_ref().unwrap()["routine_step"].values().sum();
    assert_eq!(steps as usize, all_pages(&c, &f, 500).await.len());
    assert_eq!(page.facets, Some(search::facets(&db, &f).await.unwrap()));
}
