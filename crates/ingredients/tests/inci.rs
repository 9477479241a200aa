//! INCI parsing on real declarations from the Sephora catalog (product ids in comments), and
//! property tests: parsing never panics and is idempotent on its own output.

use dermis_ingredients::inci::{IngredientList, parse};
use proptest::prelude::*;

fn names(l: &IngredientList) -> Vec<String> {
    l.sections.iter().flat_map(|s| s.ingredients.iter().map(|e| e.text.clone())).collect()
}

#[test]
fn synonyms_in_parentheses_and_slashes_stay_one_ingredient() {
    let l =
        parse("Aqua (Water/Eau), Stearic Acid, Isopropyl Isostearate, Water (Aqua, Eau), Titanium Dioxide (CI 77891)");
    assert_eq!(
        names(&l),
        [
            "Aqua (Water/Eau)",
            "Stearic Acid",
            "Isopropyl Isostearate",
            "Water (Aqua, Eau)",
            "Titanium Dioxide (CI 77891)"
        ]
    );
}

#[test]
fn lines_wrapped_mid_list_are_joined() {
    // P467602: Sephora's list items break the declaration in the middle of "Pentylene Glycol".
    let l = parse(
        "Aqua (Water/Eau), Stearic Acid, Glycerin, Pentylene\nGlycol, Glyceryl Stearate SE, C12-15\nAlkyl Benzoate",
    );
    assert_eq!(
        names(&l),
        [
            "Aqua (Water/Eau)",
            "Stearic Acid",
            "Glycerin",
            "Pentylene Glycol",
            "Glyceryl Stearate SE",
            "C12-15 Alkyl Benzoate"
        ]
    );
}

#[test]
fn footnote_markers_and_explanations() {
    // Caudalie-style: organic markers on ingredients and the explanation after the list.
    let l = parse("Helianthus Annuus (Sunflower) Seed Oil*, Tocopherol*, Fragrance*. *Plant origin.");
    assert_eq!(names(&l), ["Helianthus Annuus (Sunflower) Seed Oil", "Tocopherol", "Fragrance"]);
    assert!(l.sections[0].ingredients.iter().all(|e| e.footnote));
    assert_eq!(l.notes, ["*Plant origin."]);
    let l = parse("Water, Propanediol, *Alcohol Denat., *Glycerin, Hamamelis Virginiana (Witch Hazel) Water");
    assert_eq!(
        names(&l),
        ["Water", "Propanediol", "Alcohol Denat.", "Glycerin", "Hamamelis Virginiana (Witch Hazel) Water"]
    );
    assert!(l.sections[0].ingredients[2].footnote);
}

#[test]
fn may_contain_sections_are_kept_apart() {
    let l = parse(
        "T-Butyl Hydroxyhydrocinnamate, Flavor (Aroma). May Contain: Titanium Dioxide (CI 77891), Iron Oxides (CI 77491, Ci 77492), Red 7 Lake (CI 15850)",
    );
    assert_eq!(names(&l), ["T-Butyl Hydroxyhydrocinnamate", "Flavor (Aroma)"]);
    let may: Vec<_> = l.sections[0].may_contain.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(may, ["Titanium Dioxide (CI 77891)", "Iron Oxides (CI 77491, Ci 77492)", "Red 7 Lake (CI 15850)"]);
    let l = parse("Mica, Talc [+/- CI 77491, CI 77492]");
    assert_eq!(l.sections[0].may_contain.len(), 2);
}

#[test]
fn variant_headers_start_sections() {
    // P473671: a discovery set with one declaration per perfume.
    let l = parse(
        "Capri Eau de Parfum:\nAlcohol Denat. (SD Alcohol 39C), Parfum (Fragrance), Linalool.\nL'Air Barbes Eau de Parfum:\nAlcohol Denat. (SD Alcohol 39C), Citral, Limonene.",
    );
    assert_eq!(l.sections.len(), 2);
    assert_eq!(l.sections[0].label.as_deref(), Some("Capri Eau de Parfum"));
    assert_eq!(l.sections[1].label.as_deref(), Some("L'Air Barbes Eau de Parfum"));
    assert_eq!(l.sections[1].ingredients.len(), 3);
    // "Step 1: ..." puts the header and the list on one line.
    let l = parse(
        "Step 1: Water/Aqua/Eau, Alcohol Denat. (SD Alcohol 40-B), Glycolic Acid, Potassium Hydroxide\nStep 2: Water/Aqua/Eau, Sodium Bicarbonate, Resveratrol, Retinol",
    );
    assert_eq!(l.sections.iter().map(|s| s.label.clone().unwrap()).collect::<Vec<_>>(), ["Step 1", "Step 2"]);
    assert_eq!(l.sections[1].ingredients[3].text, "Retinol");
}

#[test]
fn marketing_lines_are_notes_not_ingredients() {
    let l = parse(
        "Hyaluronic Acid: Improves overall appearance by boosting radiance and moisture levels.\nVinolevure: Strengthens, moisturizes, and tones.\nWater, Glycerin, Sodium Hyaluronate.\nPlease be aware that ingredient lists may change or vary from time to time.",
    );
    assert_eq!(names(&l), ["Water", "Glycerin", "Sodium Hyaluronate"]);
    assert_eq!(l.notes.len(), 3);
}

#[test]
fn percentages_and_drug_facts_labels() {
    let l = parse("Octinoxate 7.5%, Titanium Dioxide 2%, Zinc Oxide 17.1%, Cyclopentasiloxane, Water (Aqua, Eau)");
    let e = &l.sections[0].ingredients;
    assert_eq!((e[0].text.as_str(), e[0].percent.as_deref()), ("Octinoxate", Some("7.5")));
    assert_eq!((e[2].text.as_str(), e[2].percent.as_deref()), ("Zinc Oxide", Some("17.1")));
    let l = parse("10% Glycolic Acid, 0.5% Retinol, Panthenol (Vitamin B5)");
    assert_eq!(names(&l), ["Glycolic Acid", "Retinol", "Panthenol (Vitamin B5)"]);
    let l = parse("Avobenzone: 2.5%, Homosalate: 6.0%, Octisalate: 5.0%, Alcohol Denat., Algae Extract");
    assert_eq!(names(&l), ["Avobenzone", "Homosalate", "Octisalate", "Alcohol Denat.", "Algae Extract"]);
    let l = parse("Active Ingredients: Zinc Oxide 20%\nInactive Ingredients: Water, Caprylic/Capric Triglyceride");
    assert_eq!(names(&l), ["Zinc Oxide", "Water", "Caprylic/Capric Triglyceride"]);
}

#[test]
fn commas_between_digits_are_locants() {
    let l = parse("Water, 1,2-Hexanediol, 2-Oleamido-1,3-Octadecanediol, CI 77491, 77492");
    assert_eq!(names(&l), ["Water", "1,2-Hexanediol", "2-Oleamido-1,3-Octadecanediol", "CI 77491", "77492"]);
}

#[test]
fn odd_characters_and_separators() {
    let l = parse("Water/Eau/Aqua, Helianthus Annuus (Sunﬂower) Seed Oil; Tocophérol • Glycerin,, , and Citric Acid.");
    assert_eq!(
        names(&l),
        ["Water/Eau/Aqua", "Helianthus Annuus (Sunflower) Seed Oil", "Tocophérol", "Glycerin", "Citric Acid"]
    );
}

#[test]
fn render_normalizes_and_reparses_to_the_same() {
    let raw = "Capri Eau de Parfum:\nAlcohol Denat., Parfum*, Zinc Oxide 20% May Contain: CI 77491\nStep 2: Water, Glycerin, Niacinamide, Retinol";
    let once = parse(raw);
    assert_eq!(parse(&once.render()), once);
}

fn declaration() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("Water (Aqua, Eau)".to_owned()),
        Just("Alcohol Denat.".to_owned()),
        Just("Glycerin*".to_owned()),
        Just("Zinc Oxide 20%".to_owned()),
        Just("10% Glycolic Acid".to_owned()),
        Just("May Contain:".to_owned()),
        Just("[+/- CI 77491".to_owned()),
        Just("Variant A:\n".to_owned()),
        Just("Step 1: ".to_owned()),
        Just("*Organic.".to_owned()),
        Just("Tocophérol".to_owned()),
        "[A-Za-z0-9 ()/.,:;*%+\\-\\[\\]éﬂ’•\n]{0,40}",
    ];
    prop::collection::vec(token, 0..12).prop_map(|t| t.join(", "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn parsing_never_panics(s in "\\PC{0,300}") {
        let _ = parse(&s);
    }

    #[test]
    fn parsing_is_idempotent_on_its_own_output(s in declaration()) {
        let once = parse(&s);
        let twice = parse(&once.render());
        prop_assert_eq!(&once.sections, &twice.sections, "render: {:?}", once.render());
    }

    #[test]
    fn parsing_random_text_is_idempotent_too(s in "[A-Za-z0-9 ()/.,:;*%+\\-\\n]{0,120}") {
        let once = parse(&s);
        let twice = parse(&once.render());
        prop_assert_eq!(&once.sections, &twice.sections, "render: {:?}", once.render());
    }
}
