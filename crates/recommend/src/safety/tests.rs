//! One test per default rule, on hand-made products, and the rule file's checks.

use std::collections::HashSet;
use std::sync::Arc;

use dermis_customers::model::{Condition, SkinType};
use dermis_customers::projection::OnlineProfile;
use dermis_ingredients::facts::derive;
use dermis_ingredients::inci;

use super::*;

fn kb() -> &'static KnowledgeBase {
    KnowledgeBase::bundled()
}

fn safety() -> Safety {
    Safety::bundled()
}

/// A product whose facts and label are both `raw`.
fn product(id: &str, raw: &str) -> ProductSafetyFacts {
    labelled(id, raw, raw)
}

/// A product whose parse saw `parsed` while its label says `raw` (a parse that missed something).
fn labelled(id: &str, parsed: &str, raw: &str) -> ProductSafetyFacts {
    let facts = derive(kb(), Some(&inci::parse(parsed)), Some("Skincare/Moisturizers/Moisturizers"), "Cream");
    ProductSafetyFacts::from_facts(id, Some(&format!("P{id}")), Some(raw), &facts, kb())
}

fn unlisted(id: &str) -> ProductSafetyFacts {
    let facts = derive(kb(), None, Some("Skincare/Moisturizers/Moisturizers"), "Cream");
    ProductSafetyFacts::from_facts(id, None, None, &facts, kb())
}

fn allergic(names: &[&str]) -> CustomerSafety {
    CustomerSafety { allergies: IngredientSet::resolve(names, kb()), ..CustomerSafety::default() }
}

fn rule_ids(v: &Verdict) -> Vec<&str> {
    v.exclusions.iter().map(|e| e.rule_id.as_str()).collect()
}

const PLAIN: &str = "Water, Glycerin, Cetearyl Alcohol, Phenoxyethanol";

#[test]
fn the_bundled_rules_are_valid_and_documented() {
    let set = RuleSet::bundled(kb());
    assert_eq!(set.version, "safety.v1");
    let ids: Vec<&str> = set.rules.iter().map(|r| r.id.as_str()).collect();
    for id in [
        "allergen",
        "unknown-ingredients",
        "pregnancy",
        "comedogenic",
        "fragrance-sensitive",
        "sensitivity",
        "reaction",
        "contraindication",
        "photosensitizer",
        "out-of-stock",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let docs = include_str!("../../../../docs/ARCHITECTURE.md");
    for id in ids {
        assert!(docs.contains(&format!("`{id}`")), "docs/ARCHITECTURE.md does not document rule {id}");
    }
}

#[test]
fn bad_rule_files_are_refused_with_a_reason() {
    let bundled: serde_json::Value = serde_json::from_str(BUNDLED_RULES).unwrap();
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = bundled.clone();
        f(&mut v);
        RuleSet::parse(&v.to_string(), kb()).unwrap_err().to_string()
    };
    let e = with(&|v| v["rules"][1]["id"] = "allergen".into());
    assert!(e.contains("duplicate rule id"), "{e}");
    let e = with(&|v| v["rules"][4]["test"]["families"][0] = "perfumes".into());
    assert!(e.contains("unknown family"), "{e}");
    let e = with(&|v| v["rules"][3]["when"]["any_of"][2]["skin_type"][0] = "greasy".into());
    assert!(e.contains("unknown skin type"), "{e}");
    let e = with(&|v| v["rules"][3]["test"]["min_rating"] = 6.into());
    assert!(e.contains("0 to 5"), "{e}");
    let e = with(&|v| v["rules"][0]["severity"] = "high".into());
    assert!(e.contains("unknown field"), "{e}");
    let e = with(&|v| v["rules"][0]["reason"] = " ".into());
    assert!(e.contains("reason"), "{e}");
    let e = with(&|v| v["rules"][0]["when"] = "has_alergies".into());
    assert!(e.contains("unknown variant"), "{e}");
}

#[test]
fn allergens_are_excluded_by_id_synonym_family_and_unknown_name() {
    let s = safety();
    // By canonical name, any case.
    let v = s.check(&product("1", "Water, LINALOOL, Glycerin"), &allergic(&["linalool"]));
    assert!(!v.allowed);
    assert_eq!(v.exclusions[0].rule_id, "allergen");
    assert_eq!(v.exclusions[0].ingredients, ["linalool"]);
    assert_eq!(v.exclusions[0].reason, "contains Linalool, which you are allergic to");
    // An allergy given by a synonym, the label writing another name.
    let v = s.check(&product("2", "Water, Tocopherol"), &allergic(&["Vitamin E"]));
    assert_eq!(rule_ids(&v), ["allergen"]);
    // A family.
    let v = s.check(&product("3", "Water, Methyl Paraben, Glycerin"), &allergic(&["parabens"]));
    assert_eq!(rule_ids(&v), ["allergen"]);
    assert!(v.exclusions[0].ingredients.contains(&"methylparaben".to_owned()));
    // A name the knowledge base does not know, matched as words of the label.
    let unknown = allergic(&["Xylofruit Extract"]);
    assert_eq!(unknown.allergies.unknown, ["Xylofruit Extract"]);
    let v = s.check(&product("4", "Water, Glycerin, xylofruit extract"), &unknown);
    assert_eq!(rule_ids(&v), ["allergen"]);
    assert_eq!(v.exclusions[0].ingredients, ["Xylofruit Extract"]);
    // A product free of them passes, and so does a longer name that is another ingredient.
    for c in [allergic(&["linalool"]), allergic(&["parabens"]), unknown] {
        assert!(s.check(&product("5", PLAIN), &c).allowed);
    }
    assert!(s.check(&product("6", "Water, Cetyl Alcohol"), &allergic(&["alcohol"])).allowed);
    assert!(!s.check(&product("7", "Water, Alcohol"), &allergic(&["alcohol"])).allowed);
}

#[test]
fn the_raw_label_excludes_what_the_parse_missed() {
    let s = safety();
    let p = labelled("1", PLAIN, &format!("{PLAIN}, Limonene"));
    assert!(p.label_ids(kb()).contains(&"limonene"));
    assert!(!p.ingredient_ids(kb()).contains(&"limonene"));
    let v = s.check(&p, &allergic(&["limonene"]));
    assert_eq!(rule_ids(&v), ["allergen"]);
    assert_eq!(v.exclusions[0].ingredients, ["limonene"]);
    // Glued names and accents on the label.
    let p = labelled("2", PLAIN, &format!("{PLAIN}, TocopherolGéraniol"));
    assert!(!s.check(&p, &allergic(&["geraniol"])).allowed);
    // A family named generically on the label only.
    let p = labelled("3", PLAIN, &format!("{PLAIN}, Natural Essential Oils"));
    let v = s.check(&p, &allergic(&["essential oils"]));
    assert_eq!(rule_ids(&v), ["allergen"]);
}

#[test]
fn an_unknown_ingredient_list_is_never_safe_for_an_allergy() {
    let s = safety();
    let v = s.check(&unlisted("1"), &allergic(&["linalool"]));
    assert_eq!(rule_ids(&v), ["unknown-ingredients"]);
    assert!(v.exclusions[0].reason.contains("ingredient list is unknown"), "{}", v.exclusions[0].reason);
    let pregnant = CustomerSafety { pregnant: true, ..CustomerSafety::default() };
    assert_eq!(rule_ids(&s.check(&unlisted("1"), &pregnant)), ["unknown-ingredients"]);
    let sensitive = CustomerSafety { skin_type: Some("sensitive".into()), ..CustomerSafety::default() };
    assert_eq!(rule_ids(&s.check(&unlisted("1"), &sensitive)), ["unknown-ingredients"]);
    // Nothing declared that an ingredient rule reads: nothing to check it against.
    let dry = CustomerSafety { skin_type: Some("dry".into()), ..CustomerSafety::default() };
    assert!(s.check(&unlisted("1"), &CustomerSafety::default()).allowed);
    assert!(s.check(&unlisted("1"), &dry).allowed);
}

#[test]
fn pregnancy_excludes_flagged_ingredients_and_strong_salicylic_acid() {
    let s = safety();
    let pregnant = CustomerSafety { pregnant: true, routine_has_sunscreen: Some(true), ..CustomerSafety::default() };
    let breastfeeding = CustomerSafety { breastfeeding: true, ..pregnant.clone() };
    let retinol = product("1", "Water, Retinol, Glycerin");
    for c in [&pregnant, &breastfeeding] {
        let v = s.check(&retinol, c);
        assert_eq!(rule_ids(&v), ["pregnancy"]);
        assert_eq!(v.exclusions[0].ingredients, ["retinol"]);
    }
    // Salicylic acid: by its declared strength.
    assert!(s.check(&product("2", "Water, Salicylic Acid 0.5%, Glycerin"), &pregnant).allowed);
    let v = s.check(&product("3", "Water, Salicylic Acid, Glycerin"), &pregnant);
    assert_eq!(rule_ids(&v), ["pregnancy"]);
    assert_eq!(v.exclusions[0].ingredients, ["salicylic-acid"]);
    // The label alone.
    let v = s.check(&labelled("4", PLAIN, &format!("{PLAIN}, Hydroquinone")), &pregnant);
    assert_eq!(rule_ids(&v), ["pregnancy"]);
    // Not pregnant: allowed (with the sun warning).
    let v = s.check(&retinol, &CustomerSafety::default());
    assert!(v.allowed);
    assert_eq!(v.flags[0].rule_id, "photosensitizer");
}

#[test]
fn comedogenic_ingredients_are_excluded_for_acne_prone_skin() {
    let s = safety();
    let p = product("1", "Water, Isopropyl Myristate, Glycerin");
    let acne = CustomerSafety { conditions: vec!["acne".into()], ..CustomerSafety::default() };
    let oily = CustomerSafety { skin_type: Some("oily".into()), ..CustomerSafety::default() };
    let concern = CustomerSafety { concerns: vec!["acne".into()], ..CustomerSafety::default() };
    for c in [&acne, &oily, &concern] {
        let v = s.check(&p, c);
        assert_eq!(rule_ids(&v), ["comedogenic"]);
        assert_eq!(v.exclusions[0].ingredients, ["isopropyl-myristate"]);
    }
    let dry = CustomerSafety { skin_type: Some("dry".into()), ..CustomerSafety::default() };
    assert!(s.check(&p, &dry).allowed);
    assert!(s.check(&product("2", PLAIN), &acne).allowed);
}

#[test]
fn fragrance_and_essential_oils_are_excluded_for_sensitive_skin() {
    let s = safety();
    let sensitive = CustomerSafety { skin_type: Some("sensitive".into()), ..CustomerSafety::default() };
    let rosacea = CustomerSafety { conditions: vec!["rosacea".into()], ..CustomerSafety::default() };
    for raw in ["Water, Parfum", "Water, Lavandula Angustifolia Oil", "Water, Essential Oil Blend"] {
        for c in [&sensitive, &rosacea] {
            let v = s.check(&product("1", raw), c);
            assert_eq!(rule_ids(&v), ["fragrance-sensitive"], "{raw}");
            assert!(v.exclusions[0].reason.ends_with("for your sensitive skin"));
        }
        assert!(s.check(&product("1", raw), &CustomerSafety::default()).allowed, "{raw}");
    }
    // Benzyl alcohol as a preservative is not fragrance.
    assert!(s.check(&product("2", "Water, Benzyl Alcohol"), &sensitive).allowed);
}

#[test]
fn sensitivities_exclude_their_ingredients_and_fragrance() {
    let s = safety();
    let c = CustomerSafety {
        sensitivities: IngredientSet::resolve(&["drying-alcohols"], kb()),
        ..CustomerSafety::default()
    };
    let v = s.check(&product("1", "Alcohol Denat., Water"), &c);
    assert_eq!(rule_ids(&v), ["sensitivity"]);
    assert_eq!(v.exclusions[0].reason, "contains Alcohol Denat., which your skin reacts to");
    assert_eq!(rule_ids(&s.check(&product("2", "Water, Fragrance"), &c)), ["fragrance-sensitive"]);
    assert!(s.check(&product("3", PLAIN), &c).allowed);
}

#[test]
fn a_reaction_excludes_the_product_and_those_sharing_the_suspect() {
    let s = safety();
    let reacted = product("1", "Water, Glycerin, Methylisothiazolinone, Parfum");
    let named = CustomerSafety::default()
        .with_reactions([Reaction::new("P1", IngredientSet::resolve(&["Methylisothiazolinone"], kb()))]);
    let v = s.check(&reacted, &named);
    assert_eq!(rule_ids(&v), ["reaction"]);
    let v = s.check(&product("2", PLAIN), &named);
    assert!(v.allowed);
    let v = s.check(&product("3", "Water, Methylisothiazolinone"), &named);
    assert_eq!(v.exclusions[0].reason, "contains Methylisothiazolinone, suspected in a reaction you reported");
    // No suspect named: the product itself, and suspects inferred from what it declares.
    let bare = CustomerSafety::default().with_reactions([Reaction::new("P9", IngredientSet::default())]);
    let v = s.check(&product("9", PLAIN), &bare);
    assert_eq!(v.exclusions[0].reason, "you reported a reaction to this product");
    let inferred = Reaction::inferred(&reacted, kb());
    assert!(inferred.suspects.ids.contains("methylisothiazolinone") && inferred.suspects.ids.contains("fragrance"));
    assert!(!inferred.suspects.ids.contains("water") && !inferred.suspects.ids.contains("glycerin"));
    let c = CustomerSafety::default().with_reactions([inferred]);
    assert_eq!(rule_ids(&s.check(&product("4", "Water, Fragrance"), &c)), ["reaction"]);
    assert!(s.check(&product("5", "Water, Glycerin"), &c).allowed);
}

#[test]
fn contraindications_exclude_their_ingredients() {
    let s = safety();
    let c =
        CustomerSafety::default().with_contraindications(&["retinoids", "Benzoyl Peroxide"], kb()).with_sunscreen(true);
    let v = s.check(&product("1", "Water, Retinyl Palmitate"), &c);
    assert_eq!(rule_ids(&v), ["contraindication"]);
    assert_eq!(v.exclusions[0].reason, "contains Retinyl Palmitate, which your dermatologist advised against");
    assert_eq!(rule_ids(&s.check(&product("2", "Water, Benzoyl Peroxide 5%"), &c)), ["contraindication"]);
    assert!(s.check(&product("3", PLAIN), &c).allowed);
}

#[test]
fn photosensitizers_are_excluded_without_sunscreen_and_flagged_with_one() {
    let s = safety();
    let p = product("1", "Water, Glycolic Acid, Glycerin");
    let without = CustomerSafety::default().with_sunscreen(false);
    let v = s.check(&p, &without);
    assert_eq!(rule_ids(&v), ["photosensitizer"]);
    assert_eq!(v.exclusions[0].ingredients, ["glycolic-acid"]);
    for c in [CustomerSafety::default().with_sunscreen(true), CustomerSafety::default()] {
        let v = s.check(&p, &c);
        assert!(v.allowed && v.exclusions.is_empty());
        assert_eq!(v.flags.len(), 1);
        assert!(v.flags[0].reason.contains("daily sunscreen"), "{}", v.flags[0].reason);
    }
    assert!(s.check(&product("2", PLAIN), &without).allowed);
}

#[test]
fn out_of_stock_is_excluded_only_when_availability_is_given() {
    let s = safety();
    let p = product("1", PLAIN);
    let q = product("2", PLAIN);
    let c = CustomerSafety::default()
        .with_availability(Availability::listed("store Lyon", HashSet::from(["P2".to_owned()])));
    let v = s.check(&p, &c);
    assert_eq!(rule_ids(&v), ["out-of-stock"]);
    assert_eq!(v.exclusions[0].reason, "out of stock for store Lyon");
    assert!(s.check(&q, &c).allowed);
    assert!(s.check(&p, &CustomerSafety::default()).allowed);
}

/// An inventory in a test: SKU → units by place (`web`, `store:LYON`); SKUs not listed are not
/// tracked. Counts its reads.
struct FakeStock {
    units: std::collections::HashMap<(&'static str, &'static str), i64>,
    reads: std::sync::atomic::AtomicUsize,
}

impl StockView for FakeStock {
    fn unknown_place(&self, place: &StockPlace) -> Option<String> {
        (place.store.as_deref() == Some("NOWHERE")).then(|| "no store NOWHERE".to_owned())
    }

    fn in_stock(&self, skus: &[String], place: &StockPlace) -> Option<bool> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let at = match (&place.store, &place.channel) {
            (Some(s), _) => format!("store:{s}"),
            (None, Some(c)) => c.clone(),
            (None, None) => return None,
        };
        let tracked = |sku: &String| self.units.keys().any(|(k, _)| k == sku);
        let units = |sku: &String| self.units.iter().find(|((k, p), _)| k == sku && *p == at).map_or(0, |(_, &n)| n);
        if skus.iter().any(|sku| tracked(sku) && units(sku) > 0) {
            Some(true)
        } else if skus.iter().all(tracked) {
            Some(false)
        } else {
            None
        }
    }
}

#[test]
fn stock_read_from_the_inventory_excludes_only_what_it_tracks_as_out() {
    let s = safety();
    let stock = Arc::new(FakeStock {
        units: [(("sku-a", "web"), 0), (("sku-b", "web"), 4), (("sku-a", "store:LYON"), 2)].into(),
        reads: Default::default(),
    });
    let out = product("1", PLAIN).with_skus(vec!["sku-a".into()]);
    let two = product("2", PLAIN).with_skus(vec!["sku-a".into(), "sku-b".into()]);
    let untracked = product("3", PLAIN).with_skus(vec!["sku-z".into()]);
    let no_skus = product("4", PLAIN);
    let web = StockPlace::of(Some("web"), None).unwrap();
    let c = CustomerSafety::default().with_availability(Availability::from_stock(stock.clone(), web));
    let v = s.check(&out, &c);
    assert_eq!(rule_ids(&v), ["out-of-stock"]);
    assert_eq!(v.exclusions[0].reason, "out of stock for channel web");
    assert!(v.exclusions[0].ingredients.is_empty());
    // One SKU available is enough; a product the inventory does not track, or whose SKUs are
    // not known, is kept.
    for p in [&two, &untracked, &no_skus] {
        assert!(s.check(p, &c).allowed, "{}", p.product_id());
    }
    // The store wins over the channel: sku-a is on its shelf.
    let lyon = StockPlace::of(Some("web"), Some(" LYON ")).unwrap();
    assert_eq!(lyon.scope(), "store LYON");
    let at_lyon = CustomerSafety::default().with_availability(Availability::from_stock(stock.clone(), lyon));
    assert!(s.check(&out, &at_lyon).allowed);
    let only_web = product("5", PLAIN).with_skus(vec!["sku-b".into()]);
    assert_eq!(rule_ids(&s.check(&only_web, &at_lyon)), ["out-of-stock"], "sku-b is tracked, not at Lyon");
    // Filtering judges each product once, recorded or quiet, and both agree.
    let before = stock.reads.load(std::sync::atomic::Ordering::Relaxed);
    let fresh = CustomerSafety::default()
        .with_availability(Availability::from_stock(stock.clone(), StockPlace::of(Some("web"), None).unwrap()));
    let all = [&out, &two, &untracked, &no_skus];
    let prepared = s.prepare(&fresh);
    let quiet = prepared.filter_quiet(all.iter().map(|p| (p.product_id().to_owned(), *p)));
    let kept: Vec<&str> = quiet.iter().map(|x| x.product_id()).collect();
    assert_eq!(kept, ["2", "3", "4"]);
    let loud = prepared.filter(all.iter().map(|p| (p.product_id().to_owned(), *p)));
    assert_eq!(loud.iter().map(|x| x.product_id()).collect::<Vec<_>>(), kept);
    assert_eq!(loud.excluded().len(), 1);
    assert_eq!(loud.excluded()[0].exclusions[0].rule_id, "out-of-stock");
    assert_eq!(stock.reads.load(std::sync::atomic::Ordering::Relaxed) - before, 3, "one read per product with SKUs");
    // Neither a channel nor a store: nothing to filter.
    assert_eq!(StockPlace::of(Some(" "), None), None);
}

#[test]
fn facts_from_another_knowledge_base_are_not_trusted() {
    let s = safety();
    let mut p = product("1", PLAIN);
    p.kb_version = "older".into();
    assert_eq!(rule_ids(&s.check(&p, &CustomerSafety::default())), [STALE_FACTS_RULE]);
}

#[test]
fn a_profile_becomes_a_customer_the_rules_read() {
    let kb = kb();
    let allergies = IngredientSet::resolve(&["fragrance", "Unobtainium Oil"], kb);
    let profile = OnlineProfile {
        customer_id: "cus_1".into(),
        skin_type: Some(SkinType::Sensitive),
        conditions: vec![Condition::Acne],
        allergy_ids: allergies.ids.clone(),
        allergy_families: allergies.families.clone(),
        unknown_allergens: allergies.unknown.clone(),
        pregnant: true,
        ..OnlineProfile::default()
    };
    let c = CustomerSafety::from_profile(&profile);
    assert_eq!(c.skin_type.as_deref(), Some("sensitive"));
    assert_eq!(c.conditions, ["acne"]);
    assert_eq!(c.allergies, allergies);
    let s = safety();
    let applied: Vec<&str> = s.prepare(&c).rules_applied();
    assert_eq!(
        applied,
        ["allergen", "unknown-ingredients", "pregnancy", "comedogenic", "fragrance-sensitive", "photosensitizer"]
    );
    let v = s.check(&product("1", "Water, Unobtainium Oil, Parfum, Retinol"), &c);
    assert_eq!(rule_ids(&v), ["allergen", "pregnancy", "fragrance-sensitive"]);
    assert!(v.exclusions[0].ingredients.contains(&"Unobtainium Oil".to_owned()));
}

#[test]
fn a_profiles_contraindications_and_unknown_sensitivities_reach_the_rules() {
    let kb = kb();
    let contra = IngredientSet::resolve(&["retinol", "Vexalin Resin"], kb);
    let sens = IngredientSet::resolve(&["Glimmerroot Oil"], kb);
    let profile = OnlineProfile {
        customer_id: "cus_2".into(),
        contraindicated_ids: contra.ids.clone(),
        contraindicated_families: contra.families.clone(),
        unknown_contraindicated: contra.unknown.clone(),
        sensitivity_ids: sens.ids.clone(),
        sensitivity_families: sens.families.clone(),
        unknown_sensitivities: sens.unknown.clone(),
        ..OnlineProfile::default()
    };
    let c = CustomerSafety::from_profile(&profile).with_sunscreen(true);
    assert_eq!(c.contraindications, contra);
    assert_eq!(c.sensitivities.unknown, ["Glimmerroot Oil"]);
    let s = safety();
    let v = s.check(&product("1", "Water, Retinol"), &c);
    assert_eq!(rule_ids(&v), ["contraindication"]);
    let v = s.check(&product("2", "Water, Vexalin Resin"), &c);
    assert!(rule_ids(&v).contains(&"contraindication"), "an unknown name is matched as words of the label");
}

#[test]
fn filter_keeps_the_allowed_in_order_and_records_every_exclusion() {
    let s = safety();
    let products =
        [product("1", PLAIN), product("2", "Water, Linalool"), product("3", "Water, Squalane"), unlisted("4")];
    let c = allergic(&["linalool"]);
    let scored = products.iter().enumerate().map(|(i, p)| (i as f32, p));
    let safe = s.filter(&c, scored.clone().chain(scored.take(1)));
    let ids: Vec<&str> = safe.iter().map(|x| x.product_id()).collect();
    assert_eq!(ids, ["1", "3"]);
    let excluded: Vec<(&str, &str)> =
        safe.excluded().iter().map(|e| (e.product_id.as_str(), e.exclusions[0].rule_id.as_str())).collect();
    assert_eq!(excluded, [("2", "allergen"), ("4", "unknown-ingredients")]);
    assert_eq!(safe.rules_version(), "safety.v1");
    // Later stages reorder, annotate and drop; the products stay those allowed.
    let mut ranked = safe.map(|id, score| (id.to_owned(), score * 2.0));
    ranked.sort_by(|a, b| b.value.1.total_cmp(&a.value.1));
    assert_eq!(ranked.iter().map(|x| x.product_id()).collect::<Vec<_>>(), ["3", "1"]);
    ranked.truncate(1);
    let json = serde_json::to_value(ranked.excluded()).unwrap();
    assert_eq!(json[0]["exclusions"][0]["ingredients"][0], "linalool");
    assert_eq!(ranked.into_iter().map(|x| x.value.0).collect::<Vec<_>>(), ["3"]);
}

#[test]
fn quiet_filtering_allows_and_flags_exactly_what_recorded_filtering_does() {
    let s = safety();
    let products = [
        product("1", PLAIN),
        product("2", "Water, Glycolic Acid, Glycerin"),
        product("3", "Water, Retinol, Linalool"),
        product("4", "Water, Salicylic Acid, Parfum"),
        product("5", "Water, Lavandula Angustifolia Oil, Coconut Oil"),
        unlisted("6"),
    ];
    let mut stale = product("7", PLAIN);
    stale.kb_version = "older".into();
    let sold_out = product("8", "Water, Glycolic Acid").with_skus(vec!["sku-a".into()]);
    let in_stock = product("9", PLAIN).with_skus(vec!["sku-b".into()]);
    let all: Vec<&ProductSafetyFacts> = products.iter().chain([&stale, &sold_out, &in_stock]).collect();
    let stock =
        Arc::new(FakeStock { units: [(("sku-a", "web"), 0), (("sku-b", "web"), 4)].into(), reads: Default::default() });
    let web = || Availability::from_stock(stock.clone(), StockPlace::of(Some("web"), None).unwrap());
    let customers = [
        CustomerSafety::default(),
        CustomerSafety::default().with_sunscreen(true),
        CustomerSafety::default().with_sunscreen(false),
        CustomerSafety { pregnant: true, ..allergic(&["linalool"]) }.with_sunscreen(true),
        CustomerSafety { skin_type: Some("sensitive".into()), ..allergic(&["fragrance", "Unobtainium Oil"]) },
        CustomerSafety { concerns: vec!["acne".into()], breastfeeding: true, ..CustomerSafety::default() },
        allergic(&["coconut oil"])
            .with_reactions([Reaction::new("P1", IngredientSet::resolve(&["Linalool"], kb()))])
            .with_sunscreen(false),
        CustomerSafety::default().with_availability(web()),
        allergic(&["linalool"]).with_availability(web()).with_sunscreen(true),
    ];
    let mut flagged = 0;
    for c in &customers {
        let prepared = s.prepare(c);
        let view = |f: &SafeCandidates<usize>| -> Vec<(String, Vec<Finding>)> {
            f.iter().map(|x| (x.product_id().to_owned(), prepared.warnings(x, all[x.value]))).collect()
        };
        let quiet = prepared.filter_quiet(all.iter().copied().enumerate());
        let loud = prepared.filter(all.iter().copied().enumerate());
        assert_eq!(view(&quiet), view(&loud), "{c:?}");
        assert_eq!(quiet.iter().map(|x| x.value).collect::<Vec<_>>(), loud.iter().map(|x| x.value).collect::<Vec<_>>());
        assert!(quiet.excluded().is_empty());
        assert_eq!(loud.len() + loud.excluded().len(), all.len(), "every product judged once: {c:?}");
        for p in &all {
            assert_eq!(prepared.excludes(p), !prepared.check(p).allowed, "{} for {c:?}", p.product_id());
        }
        flagged += view(&quiet).iter().filter(|(_, flags)| !flags.is_empty()).count();
    }
    assert!(flagged > 0, "some customer saw a warning, so the flags were compared");
}

#[test]
fn quiz_answers_are_judged_like_a_profile_and_unknown_names_are_kept() {
    let s = safety();
    let c = CustomerSafety::from_answers(Some("sensitive"), &["redness"], &["Linalool", "Zorblax"], &[], false, kb());
    assert_eq!(c.allergies.unknown, ["Zorblax"]);
    assert!(c.allergies.ids.contains("linalool"));
    let v = s.check(&product("1", "Water, Zorblax Leaf Extract"), &c);
    assert_eq!(rule_ids(&v), ["allergen"]);
    assert_eq!(rule_ids(&s.check(&product("2", "Water, Parfum"), &c)), ["fragrance-sensitive"]);
    assert!(s.check(&product("3", PLAIN), &c).allowed);
}
