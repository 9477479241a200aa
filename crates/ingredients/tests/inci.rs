//! INCI parsing on real declarations from the Sephora catalog
//! (`shared/data/sephora-products-and-skincare-reviews/product_info.csv.gz`): each string is a
//! product's whole `ingredients` cell, its list items joined by new lines as the importer joins
//! them, with the product id in the comment. Then property tests: parsing never panics and is
//! idempotent on its own output.

use dermis_ingredients::KnowledgeBase;
use dermis_ingredients::inci::{IngredientList, parse};
use proptest::prelude::*;

fn names(l: &IngredientList) -> Vec<String> {
    l.sections.iter().flat_map(|s| s.ingredients.iter().map(|e| e.text.clone())).collect()
}

fn may_contain(l: &IngredientList) -> Vec<String> {
    l.sections.iter().flat_map(|s| s.may_contain.iter().map(|e| e.text.clone())).collect()
}

#[test]
fn synonyms_in_parentheses_and_slashes_stay_one_ingredient() {
    // P311143: "Water (Aqua, Eau)", a comma inside parentheses.
    let l = parse(P311143);
    let n = names(&l);
    assert_eq!(n.len(), 28);
    assert_eq!(n[4], "Water (Aqua, Eau)");
    assert_eq!(n[16], "Glycyrrhiza Glabra (Licorice) Root Extract");
    assert_eq!(n[25], "Fragrance (Parfum)");
    // P393672: synonyms after slashes, with spaces around them.
    let l = parse(P393672);
    let n = names(&l);
    assert_eq!(
        n[..6],
        [
            "Aqua / Water",
            "Paraffin",
            "Potassium Cetyl Phosphate",
            "Acrylates Copolymer",
            "Cera Alba / Beeswax",
            "Copernicia Cerifera Cera / Carnauba Wax"
        ]
    );
    assert_eq!(n[11], "Acacia Senegal / Acacia Senegal Gum");
    let kb = KnowledgeBase::bundled();
    for (text, id) in [(&n[0], "water"), (&n[4], "beeswax"), (&n[11], "acacia-senegal-gum")] {
        assert_eq!(kb.resolve(text).map(|i| i.id.as_str()), Some(id), "{text}");
    }
}

#[test]
fn lines_wrapped_mid_list_are_joined() {
    // P467602: Sephora's list items break the declaration in the middle of "Pentylene Glycol" and
    // of "Pisum Sativum (Pea) Extract".
    let l = parse(P467602);
    let n = names(&l);
    assert_eq!(
        n[..7],
        [
            "Aqua (Water/Eau)",
            "Stearic Acid",
            "Isopropyl Isostearate",
            "Dimethicone",
            "Glycerin",
            "Pentylene Glycol",
            "Glyceryl Stearate SE"
        ]
    );
    assert!(n.contains(&"Pisum Sativum (Pea) Extract".to_owned()), "{n:?}");
    assert!(!n.iter().any(|x| x == "Pentylene" || x == "Glycol" || x == "Extract"), "{n:?}");
    assert_eq!(n.last().map(String::as_str), Some("Sodium Benzoate"));
    assert_eq!(l.sections.len(), 1);
}

#[test]
fn footnote_markers_and_explanations() {
    // P468637: organic markers on every ingredient and the explanation after the list.
    let l = parse(P468637);
    assert_eq!(names(&l).len(), 8);
    assert_eq!(names(&l)[7], "Fragrance");
    assert!(l.sections[0].ingredients.iter().all(|e| e.footnote));
    assert_eq!(l.notes, ["*Plant origin."]);
    // P429508: markers in front of some names.
    let l = parse(P429508);
    let e = &l.sections[0].ingredients;
    assert_eq!((e[3].text.as_str(), e[3].footnote), ("Alcohol Denat.", true));
    assert_eq!((e[4].text.as_str(), e[4].footnote), ("Glycerin", true));
    assert_eq!((e[6].text.as_str(), e[6].footnote), ("Hamamelis Virginiana (Witch Hazel) Water", false));
    assert_eq!(e.len(), 24);
}

#[test]
fn may_contain_sections_are_kept_apart() {
    // P503741: "May Contain:" at the end of a list wrapped over four items.
    let l = parse(P503741);
    let n = names(&l);
    assert_eq!(n.len(), 15);
    assert_eq!(n[6], "Silica Dimethyl Silylate");
    assert_eq!(n[14], "Flavor (Aroma)");
    assert_eq!(
        may_contain(&l),
        [
            "Titanium Dioxide (CI 77891)",
            "Iron Oxides (CI 77491, Ci 77492)",
            "Blue I Lake (CI 42090)",
            "Red 7 Lake (CI 15850)",
            "CI 45380 (Red 22 Lake)",
            "CI 45410 (Red 28 Lake)"
        ]
    );
    // P500997: "[+/- ...]" in brackets.
    let l = parse(P500997);
    assert_eq!(names(&l).last().map(String::as_str), Some("Tocopherol"));
    assert_eq!(may_contain(&l), ["CI 77491", "CI 77499 (Iron Oxides)", "CI 15850 (Red 7)", "CI 42090 (Blue 1 Lake)"]);
    // P474813: the bilingual "MAY CONTAIN/PEUT CONTENIR (+/-):".
    let l = parse(P474813);
    assert_eq!(may_contain(&l)[0], "TITANIUM DIOXIDE (CI 77891)");
    assert_eq!(may_contain(&l).len(), 6);
}

#[test]
fn variant_headers_start_sections() {
    // P473671: a discovery set with one declaration per perfume.
    let l = parse(P473671);
    let labels: Vec<_> = l.sections.iter().map(|s| s.label.clone().unwrap_or_default()).collect();
    assert_eq!(
        labels,
        [
            "Capri Eau de Parfum",
            "Invisible Post Eau de Parfum",
            "Kashbah Eau de Parfum",
            "L'Air Barbes Eau de Parfum",
            "La Habana Eau de Parfum",
            "Purple Haze Eau de Parfum",
            "Rainbow Bar Eau de Parfum"
        ]
    );
    assert!(l.sections.iter().all(|s| s.ingredients[0].text == "Alcohol Denat. (SD Alcohol 39C)"));
    // P503912: "Step 1: ..." puts the header and the list on one line; the kit's own header has
    // nothing under it and is kept as a note.
    let l = parse(P503912);
    let labels: Vec<_> = l.sections.iter().map(|s| s.label.clone().unwrap_or_default()).collect();
    assert_eq!(
        labels,
        [
            "Vitamin C Lactic 15% Vitamin C Firm & Bright Serum",
            "Vitamin C Lactic Oil-Free Radiant Moisturizer",
            "Step 1",
            "Step 2"
        ]
    );
    assert_eq!(l.notes, ["Alpha Beta Extra Strength Daily Peel:"]);
    assert_eq!(l.sections[3].ingredients[3].text, "Retinol");
    let step1 = &l.sections[2].ingredients;
    assert_eq!((step1[5].text.as_str(), step1[5].footnote), ("Salicylic Acid", true));
}

#[test]
fn marketing_lines_are_notes_not_ingredients() {
    // P481086 and P468813: a claim about an ingredient before the list.
    let l = parse(P481086);
    assert_eq!(l.notes, ["Hyaluronic Acid: Improves overall appearance by boosting radiance and moisture levels."]);
    assert_eq!(names(&l)[..3], ["Aqua", "Glycerin", "Cetearyl Ethylhexanoate"]);
    assert_eq!(names(&l).len(), 42);
    let l = parse(P468813);
    assert_eq!(l.notes, ["Vinolevure: Strengthens, moisturizes, and tones."]);
    assert_eq!(names(&l)[0], "Aqua/Water/Eau");
    assert_eq!(names(&l).len(), 11);
}

#[test]
fn percentages_and_drug_facts_labels() {
    // P311143: actives with their strengths first.
    let l = parse(P311143);
    let e = &l.sections[0].ingredients;
    assert_eq!((e[0].text.as_str(), e[0].percent.as_deref()), ("Octinoxate", Some("7.5")));
    assert_eq!((e[2].text.as_str(), e[2].percent.as_deref()), ("Zinc Oxide", Some("17.1")));
    // P442542: the strength before the name.
    let l = parse(P442542);
    assert_eq!(names(&l)[..3], ["Glycolic Acid", "Retinol", "Panthenol (Vitamin B5)"]);
    assert_eq!(l.sections[0].ingredients[1].percent.as_deref(), Some("0.5"));
    // P483078: "Avobenzone: 2.5%", a colon before the strength.
    let l = parse(P483078);
    assert_eq!(
        names(&l)[..6],
        ["Avobenzone", "Homosalate", "Octisalate", "Octocrylene", "Alcohol Denat.", "Algae Extract"]
    );
    assert_eq!(l.sections[0].ingredients[3].percent.as_deref(), Some("7.0"));
    // P500399: "Avobenzone (3%)", the strength in parentheses, at the end of the list.
    let l = parse(P500399);
    let tail: Vec<_> =
        l.sections[0].ingredients.iter().rev().take(3).map(|e| (e.text.as_str(), e.percent.as_deref())).collect();
    assert_eq!(tail, [("Octocrylene", Some("10")), ("Octisalate", Some("5")), ("Avobenzone", Some("3"))]);
}

#[test]
fn synthetic_drug_facts_headings() {
    // Synthetic: no declaration in the data set uses "Active/Inactive Ingredients:" headings, but
    // US drug-facts labels do, so the parser reads them as list labels.
    let l = parse("Active Ingredients: Zinc Oxide 20%\nInactive Ingredients: Water, Caprylic/Capric Triglyceride");
    assert_eq!(names(&l), ["Zinc Oxide", "Water", "Caprylic/Capric Triglyceride"]);
}

#[test]
fn commas_between_digits_are_locants() {
    // P393672 and P481086: commas inside chemical names.
    assert!(names(&parse(P393672)).contains(&"2-Oleamido-1,3-Octadecanediol".to_owned()));
    assert!(names(&parse(P481086)).contains(&"1,2-Hexanediol".to_owned()));
    // P284710: but ", 77492" after a colour index is another colorant.
    let may = may_contain(&parse(P284710));
    assert_eq!(may[..3], ["Ci 77491", "77492", "77499 (Iron Oxides)"]);
}

#[test]
fn odd_characters_and_separators() {
    // P479628: the "ﬂ" ligature, twice.
    let n = names(&parse(P479628));
    assert_eq!(n[6], "Helianthus Annuus (Sunflower) Seed Oil");
    assert!(n.contains(&"Passiflora Edulis Seed Oil".to_owned()));
    // P398965: semicolons between ingredients and inside the "[+/- ...]" part.
    let l = parse(P398965);
    assert_eq!(names(&l)[..3], ["Polybutene", "Hydrogenated Polyisobutene", "Dextrin Palmitate"]);
    assert_eq!(names(&l).len(), 14);
    assert_eq!(may_contain(&l)[..2], ["Titanium Dioxide (Ci 77891)", "Iron Oxides (Ci 77491, Ci 77492, Ci 77499)"]);
    // P473262: an empty item (", ,").
    let n = names(&parse(P473262));
    assert_eq!(n[4..6], ["Microcrystalline Wax", "Bis-Diglyceryl Polyacyladipate-2"]);
    assert!(n.iter().all(|x| !x.trim().is_empty()));
    // P428696: middle dots as separators.
    let n = names(&parse(P428696));
    assert_eq!(n[3..6], ["Tocopherol", "Limonene", "Alpha-Isomethyl Ionone"]);
    assert_eq!(n[7..9], ["Hydroxycitronellal", "Linalool"]);
    assert_eq!(n[9], "Coumarin");
    // P458962: "and" before the last ingredient.
    assert_eq!(names(&parse(P458962)).last().map(String::as_str), Some("Sodium Benzoate"));
    // P454033: non-ASCII in a header, a curly apostrophe in a name.
    let l = parse(P454033);
    assert_eq!(l.sections[1].label.as_deref(), Some("Champagne Rosé Luminizer"));
    assert_eq!(l.sections[0].ingredients[2].text, "Cera Alba (Beeswax) (Cire d'abeille)");
    assert_eq!(
        KnowledgeBase::bundled().resolve(&l.sections[0].ingredients[2].text).map(|i| i.id.as_str()),
        Some("beeswax")
    );
}

#[test]
fn mixed_and_upper_case_names_resolve_to_canonical_ids() {
    // P474813: a declaration in capitals, with slashes, parentheses, a locant and a bilingual
    // "May Contain" part.
    let kb = KnowledgeBase::bundled();
    let l = parse(P474813);
    let ids: Vec<Option<&str>> = l.entries().map(|e| kb.resolve(&e.text).map(|i| i.id.as_str())).collect();
    assert_eq!(
        ids,
        [
            // The shade name is glued to the first ingredient; it stays, unknown.
            None,
            Some("butylene-glycol-dicaprylate-dicaprate"),
            Some("dimethicone"),
            None, // ISOTRIDECYL ISONONANOATE: not in the knowledge base
            Some("polymethylsilsesquioxane"),
            Some("mica"),
            Some("paraffin"),
            Some("polyisobutene"),
            Some("silica"),
            Some("microcrystalline-wax"),
            Some("polyethylene"),
            Some("sorbitan-sesquioleate"),
            Some("euphorbia-cerifera-wax"),
            Some("1-2-hexanediol"),
            None, // CAPRYLIC/CAPRIC GLYCERIDES: not in the knowledge base
            Some("tocopheryl-acetate"),
            Some("polyglyceryl-2-triisostearate"),
            Some("titanium-dioxide"),
            Some("iron-oxides"),
            Some("ci-15850"),
            Some("ci-19140"),
            Some("ci-42090"),
            Some("ci-15985"),
        ]
    );
    let first = l.entries().next().unwrap();
    assert_eq!(first.text, "NECTARINE DIISOSTEARYL MALATE");
    // The same names in title case (P500997) and lower case resolve the same way.
    for (a, b) in [
        ("TOCOPHERYL ACETATE", "Tocopheryl Acetate"),
        ("1,2-HEXANEDIOL", "1,2-hexanediol"),
        ("IRON OXIDES (CI 77491, CI 77492)", "iron oxides"),
    ] {
        assert_eq!(kb.resolve(a).map(|i| &i.id), kb.resolve(b).map(|i| &i.id), "{a}");
    }
}

#[test]
fn render_normalizes_and_reparses_to_the_same() {
    // P503912: variants, a "Step n:" header with its list, a footnote marker and an orphan header.
    // The rendering keeps the lists, not the notes.
    let once = parse(P503912);
    assert_eq!(parse(&once.render()).sections, once.sections);
    // P474813: a "May Contain" part.
    let once = parse(P474813);
    assert_eq!(parse(&once.render()).sections, once.sections);
}

fn declaration() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("Water (Aqua, Eau)".to_owned()),
        Just("Alcohol Denat.".to_owned()),
        Just("Glycerin*".to_owned()),
        Just("Zinc Oxide 20%".to_owned()),
        Just("10% Glycolic Acid".to_owned()),
        Just("Salicylic Acid 2% (BHA)".to_owned()),
        Just("May Contain:".to_owned()),
        Just("MAY CONTAIN/PEUT CONTENIR (+/-):".to_owned()),
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

// The declarations, exactly as in product_info.csv (list items joined by new lines).
const P284710: &str = r#"Talc, Mica, Silica, Lauroyl Lysine, Calcium Sodium Borosilicate, Cellulose, Bis-Behenyl/Isostearyl/Phytosteryl Dimer Dilinoleyl Dimer Dilinoleate, Octyldodecyl Stearoyl Stearate, Dicaprylyl Ether, Zinc Stearate, Parfum (Fragrance), Caprylyl Glycol, Pentylene Glycol, Ethylhexylglycerin, Sodium Dehydroacetate, Limonene, Linalool, Hexyl Cinnamal, Tocopherol, Argania Spinosa Kernel Oil, C10-18 Triglycerides, Butylene Glycol, Aqua (Water), Alpha-Isomethyl Ionone, Coumarin, Sodium Hyaluronate, Citral, Eugenol, Geraniol, Triolein, Hydroxycitronellal, Glyceryl Dioleate, Butyrospermum Parkii (Shea) Seedcake Extract, [+/- Ci 77491, 77492, 77499 (Iron Oxides), Ci 77163 (Bismuth Oxychloride), Ci 77891 (Titanium Dioxide)]."#;
const P311143: &str = r#"Octinoxate 7.5%, Titanium Dioxide 2%, Zinc Oxide 17.1%, Cyclopentasiloxane, Water (Aqua, Eau), Alcohol Denat., Glycerin, Polyglyceryl-3 Polydimethylsiloxyethyl Dimethicone, Methyl Methacrylate Crosspolymer, PEG/PPG-18/18 Dimethicone, PEG-9 Polydimethylsiloxyethyl Dimethicone, Parachlorella Beijerinckii Exopolysaccharides, Echinacea Purpurea Extract, Tocopheryl Acetate, Camellia Oleifera Leaf Extract, Arctostaphylos Uva Ursi Leaf Extract, Glycyrrhiza Glabra (Licorice) Root Extract, Stearic Acid, Triethoxysilylethyl Polydimethylsiloxyethyl Hexyl Dimethicone, BHT, Ethylhexylglycerin, Caprylyl Glycol, Aluminum Hydroxide, Phenoxyethanol, Hexylene Glycol, Fragrance (Parfum), Hexyl Cinnamal, Linalool."#;
const P393672: &str = r#"Aqua / Water, Paraffin, Potassium Cetyl Phosphate, Acrylates Copolymer, Cera Alba / Beeswax, Copernicia Cerifera Cera / Carnauba Wax, Ethylene/Acrylic Acid Copolymer, Steareth-2, Cetyl Alcohol, Phenoxyethanol, Hydroxyethylcellulose, Acacia Senegal / Acacia Senegal Gum, Ethylenediamine/Stearyl Dimer Dilinoleate Copolymer, Sodium Dehydroacetate, Caprylyl Glycol, Hydrogenated Jojoba Oil, Hydrogenated Palm Oil, Propylene Glycol, Disodium Edta, Pentaerythrityl Tetraisostearate, Sodium Hyaluronate, 2-Oleamido-1,3-Octadecanediol, Panthenol, Soluble Collagen, Sodium Chondroitin Sulfate, Atelocollagen."#;
const P398965: &str = r#"Polybutene; Hydrogenated Polyisobutene; Dextrin Palmitate; Bis-Diglyceryl Polyacyladipate-2; Polydecene; Magnolia Officinalis Bark Extract; Limnanthes Alba (Meadowfoam) Seed Oil; Lecithin; Caprylyl Glycol; Simethicone; Pentaerythrityl Tetra-Di-T-Butyl Hydroxyhydrocinnamate; Hexylene Glycol; Fragrance (Parfum); Phenoxyethanol; [+/- Titanium Dioxide (Ci 77891); Iron Oxides (Ci 77491, Ci 77492, Ci 77499); Red 7 Lake (Ci 15850); Blue 1 Lake (Ci 42090); Manganese Violet (Ci 77742); Yellow 5 Lake (Ci 19140); Red 22 Lake (Ci 45380); Red 30 Lake (Ci 73360); Mica; Red 6 (Ci 15850); Yellow 6 Lake (Ci 15985); Carmine (Ci 75470); Bismuth Oxychloride (Ci 77163); Red 33 Lake (Ci 17200); Orange 5 (Ci 45370); Red 28 Lake (Ci 45410)]."#;
const P428696: &str = r#"Alcohol Denat., Fragrance, Water, Tocopherol ·Limonene, Alpha-Isomethyl Ionone, Benzylsalicylate, Hydroxycitronellal, Linalool· Coumarin, Benzyl Benzoate, Benzylcinnamate, Citral, Evernia Prunastri(Oakmoss) Extract, Farnesol, Benzylalcohol, Geraniol, Citronellol, Isoeugenol, Eugenol, Pentaerythrityl Tetradi-T-Butyl Hydroxyhydrocinnamate, Bht, Benzoic Acid."#;
const P429508: &str = r#"Water, Propanediol, Dihydroxyacetone, *Alcohol Denat., *Glycerin, *Aloe Barbadensis Leaf Powder, Hamamelis Virginiana (Witch Hazel) Water, *Hibiscus Sabdariffa Flower Extract, Chamomilla Recutita (Matricaria) Flower Extract, *Argania Spinosa Kernel Oil, Citrus Aurantium Bergamia (Bergamot) Fruit Oil, Ascorbyl Palmitate, Heptyl Undecylenate, Caprylic/Capric Glycerides Polyglycerin-10 Esters, Polyglyceryl-6 Caprylate, Polyglyceryl-6 Ricinoleate, Polyglyceryl-4 Caprate, Polyglyceryl-3 Cocoate, Alcohol, Caramel, Flavor, Gluconolactone, Potassium Sorbate, Sodium Benzoate."#;
const P442542: &str = r#"10% Glycolic Acid, 0.5% Retinol, Panthenol (Vitamin B5), Papaya Enzyme, Jojoba Seed Oil, Shea Butter, Mango Seed Butter, Vitamin E"#;
const P454033: &str = r#"Buriti Bronzer:
Mica, *Cocos Nucifera (Coconut) Oil, *Cera Alba (Beeswax) (Cire d’abeille), *Simmondsia Chinensis (Jojoba) Seed Oil, *Theobroma Cacao (Cocoa) Seed Butter, Tocopherol (non-GMO), *Mauritia Flexuosa (Buriti) Fruit Oil, *Rosmarinus Officinalis (Rosemary) Extract, Titanium Dioxide (CI 77891), Iron Oxides (CI 77491, CI 77492, CI 77499).
Champagne Rosé Luminizer:
Ricinus Communis (Castor) Seed Oil, *Cocos Nucifera (Coconut) Oil, *Cera Alba (Beeswax) (Cire d’abeille), Mica, Tocopherol (non-GMO), *Helianthus Annus (Sunflower) Seed Oil, *Rosmarinus Officinalis (Rosemary) Leaf Extract, Silica, Tin Oxide, Titanium Dioxide (CI 77891), Iron Oxides (CI 77491, CI 77499).
Magic Luminizer:
Cocos Nucifera (Coconut) Oil, Mica, *Cera Alba (Beeswax) (Cire d’abeille), *Simmondsia Chinensis (Jojoba) Seed Oil, *Theobroma Cacao (Cocoa) Seed Butter, *Ricinus Communis (Castor) Seed Oil, Tocopherol (non-GMO), *Helianthus Annuus (Sunflower) Seed Oil, *Rosmarinus Officinalis (Rosemary) Leaf Extract, Silica, Titanium Dioxide (CI 77891), Iron Oxides (CI 77489, CI 77491, CI 77492, CI 77499).
Living Luminizer:
Ricinus Communis (Castor) Seed Oil, *Cocos Nucifera (Coconut) Oil, *Cera Alba (Beeswax) (Cire d’abeille), Mica, Titanium Dioxide (CI 77891), Tocopherol (non-GMO), *Rosmarinus Officinalis (Rosemary) Leaf Extract."#;
const P458962: &str = r#"Water (Aqua, Eau), Glycolic Acid, Rosmarinus Officinalis (Rosemary) Flower/Leaf/Stem Water, Sodium Hydroxide, Phytic Acid, Niacinamide, Pelargonium Graveolens Flower/Leaf/Stem Water, Citrus Limon Fruit Water, Propanediol, Glycerin, Sea Water, Heptapeptide-7, Ectoin, Malachite Extract, Hydrolyzed Sodium Hyaluronate, Bellis Perennis (Daisy) Flower Extract, Helichrysum Italicum (Immortelle) Extract, Spondias Mombin Pulp Extract, Mangifera Indica (Mango) Pulp Extract, Musa Sapientum (Banana) Pulp Extract, Caffeine, Xanthan Gum, Citric Acid, Sodium Chloride, Pentylene Glycol, Hydroxyectoin, Phenethyl Alcohol, Trisodium Ethylenediamine Disuccinate, Potassium Sorbate, Carnosine, Lecithin, and Sodium Benzoate."#;
const P467602: &str = r#"Aqua (Water/Eau), Stearic Acid, Isopropyl Isostearate, Dimethicone, Glycerin, Pentylene
Glycol, Glyceryl Stearate SE, Cetearyl Alcohol, Butyrospermum Parkii (Shea) Butter, C12-15 Alkyl Benzoate, Limnanthes Alba (Meadowfoam) Seed Oil, Parachlorella Beijerinckii Exopolysaccharides, Corallina Officinalis Extract, Dunaliella Salina Extract, Undaria Pinnatifida Extract, Dipeptide-2, Palmitoyl Tetrapeptide-7, Palmitoyl Hexapeptide-12, Palmitoyl Tripeptide-5, Sodium Hyaluronate, Caffeine, Coffea Arabica (Coffee) Seed Oil, Tribehenin, Ceramide NG, PEG-10 Phytosterol, Tetrahexyldecyl Ascorbate, Aloe Barbadensis Leaf Juice, Tocopheryl Acetate, Bambusa Vulgaris Leaf/Stem Extract, Pisum Sativum (Pea)
Extract, Glucosamine HCl, Leuconostoc/Radish Root Ferment Filtrate, Camellia Sinensis Leaf Extract, Cucumis Sativus (Cucumber) Fruit Extract, Dimethicone Crosspolymer, Panthenol, Pantolactone, Caprylyl/Capryl Glucoside, Pfaffia Paniculata Root Extract, Ptychopetalum Olacoides Bark/Stem Extract, Lilium Candidum Flower Extract, Rubus Idaeus (Raspberry) Leaf Extract, Aloe Barbadensis Leaf Juice Powder, Vinyl Dimethicone/Methicone Silsesquioxane Crosspolymer, Phospholipids, Ceteareth-20, Acrylates/C10-30 Alkyl Acrylate Crosspolymer, Disodium EDTA, Aminomethyl Propanol, Caprylyl Glycol, Lactic Acid, Ethylhexylglycerin, Hexylene Glycol, Hesperidin Methyl Chalcone, Steareth-20, Citric Acid, Sodium Citrate, Chlorhexidine Digluconate, Phenoxyethanol, Potassium Sorbate, Benzyl Alcohol, Sodium Benzoate."#;
const P468637: &str = r#"Helianthus Annuus (Sunflower) Seed Oil*, Polyglyceryl-4 Oleate*, Caprylic/Capric Triglyceride*, Ricinus Communis (Castor) Seed Oil*, Prunus Amygdalus Dulcis (Sweet Almond) Oil*, Vitis Vinifera (Grape) Seed Oil*, Tocopherol*, Fragrance*. *Plant origin."#;
const P468813: &str = r#"Vinolevure: Strengthens, moisturizes, and tones.
Aqua/Water/Eau, Butylene Glycol, Rosa Damascena Flower Water, Saccharide Isomerate, Methylpropanediol, Sodium Benzoate, Caprylyl Glycol, Citric Acid, Phenylpropanol, Sodium Carboxymethyl Betaglucan, Sodium Citrate."#;
const P473262: &str = r#"Isononyl Isononanoate, Hydrogenated Polyisobutene, Polybutene, Bis-Behenyl/Isostearyl/Phytosteryl Dimer Dilinoleyl Dimer Dilinoleate, Microcrystalline Wax, , Bis-Diglyceryl Polyacyladipate-2, Tocopheryl Acetate, Glyceryl Behenate/Eicosadioate, Ethylene/Propylene/Styrene Copolymer, Silica, Silica Silylate, Phenoxyethanol, Fragrance, Dehydroacetic Acid, Polyglyceryl-2 Triisostearate, Titanium Dioxide, Butylene/Ethylene/Styrene Copolymer, Bht, Benzyl Alcohol, Benzyl Benzoate."#;
const P473671: &str = r#"Capri Eau de Parfum:
Alcohol Denat. (SD Alcohol 39C), Parfum (Fragrance) D-Limonene, Linalool, Benzyl Salicylate, Ethylhexyl Methoxycinnamate, Butyl Methoxydibenzoylmethane, Ethylhexyl Salicylate, Benzl Benzoate, Citral, Geraniol, Eugenol, Benzyl Alcohol, Farnesol, Citronellol, Isoeugenol.
Invisible Post Eau de Parfum:
Alcohol Denat. (SD Alcohol 39C), Parfum (Fragrance) Ethylhexyl Methoxycinnamate, Ethylhexyl Salicylate, Butyl Methoxydibenzoylmethane, Benzyl Benzoate, Citral, Coumarin, Limonene, Alpha-Isomethyl Ionone, Linalool.
Kashbah Eau de Parfum:
Alcohol Denat. (SD Alcohol 39C), Parfum (Fragrance) Coumarin, Ethylhexyl Methoxycinnamate, Butyl Methoxydibenzoylmethane, Ethylhexyl Salicylate, D-Limonene, Eugenol, Linalool, Citronellol, Geraniol, Cinnamal, Citral.
L’Air Barbes Eau de Parfum:
Alcohol Denat. (SD Alcohol 39C), Parfum (Fragrance) Benzyl Salicylate, D-Limonene, Ethylhexyl Methoxycinnamate, Butyl Methoxydibenzoylmethane, Ethylhexyl Salicylate, Linalool Citral, Alphaisomethyl Ionone, Benzyl Benzoate, Geraniol Farnesol, Isoeugenol, Eugenol.
La Habana Eau de Parfum:
Alcohol Denat. (SD Alcohol 39C), Parfum (Fragrance) Ethylhexyl Methoxycinnamate, Ethylhexyl Salicylate, Butyl Methoxydibenzoylmethane, Benzyl Alcohol, Benzyl Benzoate, Benzyl Cinnamate, Cinnamal, Citral, Coumarin Limonene, Eugenol, Alpha-Isomethyl Ionone, Linalool.
Purple Haze Eau de Parfum:
Alcohol Denat. (SD Alcohol 39C), Parfum (Fragrance) Octoxynol-10, D-Limonene, Ethylhexyl Methoxycinnamate, Butyl Methoxydibenzoylmethane, Ethylhexyl Salicylate, Geraniol, Linalool, Coumarin, Farnesol, Eugenol, Citral.
Rainbow Bar Eau de Parfum:
Alcohol Denat. (SD Alcohol 39C), Parfum (Fragrance) D-Limonene, Ethylhexyl Methoxycinnamate, Butyl Methoxydibenzoylmethane, Ethylhexyl Salicylate, Hexyl Cinnamal, Citronellol, Linalool, Coumarin, Eugenol, Citral, Isoeugenol, Geraniol."#;
const P474813: &str = r#"NECTARINE DIISOSTEARYL MALATE, BUTYLENE GLYCOL DICAPRYLATE/DICAPRATE, DIMETHICONE, ISOTRIDECYL ISONONANOATE, POLYMETHYLSILSESQUIOXANE, MICA, PARAFFIN, POLYISOBUTENE, SILICA, MICROCRYSTALLINE WAX/CERA MICROCRISTALLINA/CIRE MICROCRISTALLINE, POLYETHYLENE, SORBITAN SESQUIOLEATE, EUPHORBIA CERIFERA (CANDELILLA) CERA/EUPHORBIA CERIFERA (CANDELILLA) WAX, 1,2-HEXANEDIOL, CAPRYLIC/CAPRIC GLYCERIDES, TOCOPHERYL ACETATE, POLYGLYCERYL-2 TRIISOSTEARATE, MAY CONTAIN/PEUT CONTENIR (+/-): TITANIUM DIOXIDE (CI 77891), IRON OXIDES (CI 77491, CI 77492), RED 7 LAKE (CI 15850), YELLOW 5 LAKE (CI 19140), BLUE 1 LAKE (CI 42090), YELLOW 6 LAKE (CI 15985)"#;
const P479628: &str = r#"Aqua/Water/Eau, Cetearyl Alcohol, Behentrimonium Chloride, Glycerin, Dimethicone, Cocos Nucifera (Coconut) Oil, Helianthus Annuus (Sunﬂower) Seed Oil, Polyquaternium-37, Behentrimonium Methosulfate, Phenoxyethanol, Cetyl Alcohol, Propylene Glycol Dicaprylate/Dicaprate, Isopropyl Alcohol, Stearamidopropyl Dimethylamine, Parfum/Fragrance, Hydroxypropyl Guar Hydroxypropyltrimonium Chloride, Guar Hydroxypropyltrimonium Chloride, Cetrimonium Chloride, Hexyl Cinnamal, Sodium Benzoate, PPG-1 Trideceth-6, Butylene Glycol, Citric Acid, Hydrolyzed Vegetable Protein PG-Propyl Silanetriol, Linalool, Limonene, Geraniol, Disodium EDTA, Potassium Sorbate, Butyrospermum Parkii (Shea) Butter, Superoxide Dismutase, Tocopheryl Acetate, Jojoba Esters, Passiﬂora Edulis Seed Oil, Caprylic/Capric Triglyceride, Alaria Esculenta Extract, Saccharomyces/Copper Ferment, Saccharomyces/Iron Ferment, Saccharomyces/Magnesium Ferment, Saccharomyces/Silicon Ferment, Saccharomyces/ Zinc Ferment, Caviar Extract, Leuconostoc/Radish Root Ferment Filtrate, Tocopherol."#;
const P481086: &str = r#"Hyaluronic Acid: Improves overall appearance by boosting radiance and moisture levels.
Aqua, Glycerin, Cetearyl Ethylhexanoate, Propanediol, Helianthus Annuus (Sunflower) Seed Oil, Niacinamide, Betaine, Ammonium Acryloyldimethyltaurate/Vp Copolymer, Xylitylglucoside, Ascorbyl Tetraisopalmitate, Maltodextrin, Anhydroxylitol, Xylitol, Glycogen, Sodium Stearoyl Glutamate, Hydrolyzed Jojoba Esters, Sodium Pca, Glucose, Hyaluronic Acid, Lupinus Albus Seed Extract, Pca, Sucrose, Plankton Extract, Tocopherol, Serine, Alanine, Glycine, 1,2-Hexanediol, Lecithin, Bacillus Ferment, Glutamic Acid, Lysine Hcl, Threonine, Biosaccharide Gum-4, Arginine, Proline, Succinic Acid, Sodium Lactate, Citric Acid, Parfum, Phenoxyethanol, Hydroxyacetophenone."#;
const P483078: &str = r#"Avobenzone: 2.5%, Homosalate: 6.0%, Octisalate: 5.0%, Octocrylene: 7.0%, Alcohol Denat., Algae Extract, C12-15 Alkyl Benzoate, Centella Asiatica Extract, Cinnamidopropyltrimonium Chloride, Citrus Aurantium Bergamia (Bergamot) Fruit Oil, Elaeis Guineensis (Palm) Fruit Extract, Flavor, Glycerin, Glycine Soja (Soybean) Seed Extract, Oryza Sativa (Rice) Extract, Panthenol, Plumeria Acutifolia Flower Extract, Water (Aqua), Xylitol."#;
const P500399: &str = r#"Water, C12-15 Alkyl Benzoate, Butyloctyl Salicylate, Sodium Potassium Aluminum Silicate, Diisopropyl Sebacate, Diisopropyl Adipate, Lauryl Lactate, Mica, Propanediol, Glyceryl Stearate, VP/Eicosene Copolymer, Chondrus Crispus Extract, Limonium Gerberi Extract, Ferulic Acid, Citrullus Lanatus (Watermelon) Fruit Extract, Pyrus Malus (Apple) Fruit Extract, Lens Esculenta (Lentil) Fruit Extract, Helianthus Annuus (Sunflower) Seed Oil, Theobroma Cacao (Cocoa) Seed Butter, Glycerin, Caprylic/Capric Triglyceride, Cetyl Phosphate, Glyceryl Stearate Citrate, Silica, Ethylene Brassylate, Caprylyl Glycol, 1,2-Hexanediol, Acrylates/C10-30 Alkyl Acrylate Crosspolymer, Aminomethyl Propanol, Sodium Lactate, Sodium PCA, Sodium Benzoate, Potassium Sorbate, Disodium EDTA, Chlorphenesin, Synthetic Fluorphlogopite, Tin Oxide, CI 77891 (Titanium Dioxide), CI 77491 (Iron Oxides), Avobenzone (3%), Octisalate (5%), Octocrylene (10%)"#;
const P500997: &str = r#"C9-12 Alkane, Isododecane, Helianthus Annuus (Sunflower) Seed Wax, Bis-Hydroxypropyl Dimethicone/SMDI Copolymer, Silica, Jojoba Esters, Aluminum Hydroxide, Cera Carnauba (Copernicia Cerifera (Carnauba) Wax), Cera Alba (Beeswax), Lauryl PEG-10 Tris(Trimethylsiloxy)Silylethyl Dimethicone, Prunus Amygdalus Dulcis (Sweet Almond) Oil, Simmondsia Chinensis (Jojoba) Seed Oil, Parfum (Fragrance), Sodium Myristoyl Glutamate, Punica Granatum Flower Extract, Lauroyl Lysine, Polyglyceryl-3 Diisostearate, Disteardimonium Hectorite, Caprylic/Capric Triglyceride, Polyhydroxystearic Acid, Ammonium Glycyrrhizate, Propylene Carbonate, Pentaerythrityl Tetra-Di-T-Butyl Hydroxyhydrocinnamate, Isostearic Acid, Lecithin, Polyglyceryl-3 Polyricinoleate, Paeonia Officinalis Flower Extract, Tocopherol, [+/- CI 77491, CI 77499 (Iron Oxides), CI 15850 (Red 7), CI 42090 (Blue 1 Lake)]."#;
const P503741: &str = r#"Triisostearoyl Polyglyceryl-3 Dimer Dilinoleate, Polybutene, Diisostearyl Malate, Octyldodecanol, Polyglyceryl-2 Triisostearate, VP/Hexadecene Copolymer, Silica Dimethyl
Silylate, Adansonia Digitata Seed Oil, Camellia Japonica Seed Oil, Passiflora Incarnata Seed
Oil, Pentaclethra Macroloba Seed Oil, Tocopherol, Hexadecene, Pentaerythrityl Tetra-Di-
T-Butyl Hydroxyhydrocinnamate, Flavor (Aroma). May Contain: Titanium Dioxide (CI 77891), Iron Oxides (CI 77491, Ci 77492), Blue I Lake (CI 42090), Red 7 Lake (CI 15850), CI 45380 (Red 22 Lake), CI 45410 (Red 28 Lake)."#;
const P503912: &str = r#"Vitamin C Lactic 15% Vitamin C Firm & Bright Serum:
Water/Aqua/Eau, Dipropylene Glycol, Ascorbic Acid, Dimethyl Isosorbide, Ricinoleth-40, Aminomethyl Propanol, Lactic Acid, Tocopherol, Glycyrrhiza Glabra (Licorice) Root Extract, Ferulic Acid, Morus Alba Fruit Extract, Sodium Hyaluronate, Glycolic Acid, Adenosine, Glycerin, Phenoxyethanol.
Vitamin C Lactic Oil-Free Radiant Moisturizer:
Water/Aqua/Eau, Squalane, Glycerin, 3-O-Ethyl Ascorbic Acid, Tetrahexyldecyl Ascorbate, Ascorbic Acid, Lactic Acid, Silybum Marianum Fruit Extract, Niacinamide, Centella Asiatica Extract, Ceramide NG, Superoxide Dismutase, Quercetin, Phospholipids, Sodium Hyaluronate, Hydrolyzed Sodium Hyaluronate, Sodium Carboxymethyl Beta-Glucan, Inonotus Obliquus (Mushroom) Extract, Saccharide Isomerate, Ferulic Acid, Ubiquinone, Soy Isoflavones, Aloe Barbadensis Leaf Juice, Phytosphingosine, Leuconostoc/Radish Root Ferment Filtrate, Methyl Gluceth-20, Propylene Glycol, Sodium PCA, Myristyl Myristate, Butylene Glycol, Polyglyceryl-10 Laurate, Pentylene Glycol, Caprylyl Glycol, Adenosine, Carbomer, Cetearyl Olivate, Polyacrylate Crosspolymer-6, Lauryl Laurate, Sodium Hydroxide, Potassium Hydroxide, Sodium Glycolate, C13-15 Alkane, Sorbitan Olivate, Phytic Acid, Citric Acid, Sodium Citrate, Tetrasodium Glutamate Diacetate, Pentasodium Pentetate, Camellia Sinensis Leaf Extract, Cucumis Sativus (Cucumber) Fruit Extract, Triethyl Citrate, Lavandula Angustifolia (Lavender) Flower/Leaf/Stem Extract, Elettaria Cardamomum Seed Extract, Pyrus Malus (Apple) Fruit Extract, Rubus Idaeus (Raspberry) Fruit Extract, Cananga Odorata Flower Extract, Citrus Auranitum Bergamia (Bergamot) Fruit Extract, Citrus Aurantium Amara (Bitter Orange) Flower Extract, Coffea Arabica (Coffee) Seed Extract, Cucumis Melo (Melon) Fruit Extract, Cupressus Sempervirens Leaf/Stem Extract, Fucus Vesiculosus Extract, Jasminum Officinale (Jasmine) Flower Extract, Rose Extract, Rosmarinus Officinalis (Rosemary) Leaf Extract, Salvia Officinalis (Sage) Leaf Extract, Santalum Album (Sandalwood) Wood Extract, Phenoxyethanol, Sorbic Acid, Potassium Sorbate.
Alpha Beta Extra Strength Daily Peel:
Step 1: Water/Aqua/Eau, Alcohol Denat. (SD Alcohol 40-B), Glycolic Acid, Potassium Hydroxide, Hamamelis Virginiana (Witch Hazel) Water, Salicylic Acid*, Polysorbate 20, Lactic Acid, Mandelic Acid, Malic Acid, Citric Acid, Salix Alba (Willow) Bark Extract, Camellia Sinensis Leaf Extract, Achillea Millefolium Extract, Chamomilla Recutita (Matricaria) Flower Extract, Soy Isoflavones, Anthemis Nobilis Flower Extract, Glycerin, Copper PCA, Zinc PCA, Lecithin, Alcohol, Polysorbate 80, Disodium EDTA, Menthone Glycerin Acetal, Fragrance (Parfum), Phenoxyethanol, Benzoic Acid, Sodium Benzoate, Potassium Sorbate (* - exfoliant)
Step 2: Water/Aqua/Eau, Sodium Bicarbonate, Resveratrol, Retinol, Ascorbic Acid, Ubiquinone, Phospholipids, Adenosine, Tocopheryl Acetate, Soy Isoflavones, Achillea Millefolium Extract, Camellia Sinensis Leaf Extract, Leuconostoc/Radish Root Ferment Filtrate, Copper PCA, Sodium PCA, Zinc PCA, Glycerin, Polysorbate 20, Octoxynol-9, Tetrasodium EDTA, Phenoxyethanol, Sodium Benzoate, Potassium Sorbate."#;
