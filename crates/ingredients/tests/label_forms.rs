//! Entries as real labels write them (issue 11, item 8): each form below let a product declaring
//! linalool or limonene pass `exclude_ingredients=linalool,limonene` on the Sephora catalog
//! before resolution learnt to read it. The product ids are those of the catalog.

use dermis_ingredients::KnowledgeBase;
use dermis_ingredients::facts::{ProductFacts, derive};
use dermis_ingredients::inci::parse;

fn kb() -> &'static KnowledgeBase {
    KnowledgeBase::bundled()
}

/// The ids an entry declares.
fn declared(text: &str) -> Vec<String> {
    kb().resolve_entry(text).declared.iter().map(|i| i.id.clone()).collect()
}

/// The ids an entry may name without declaring them.
fn may_name(text: &str) -> Vec<String> {
    kb().resolve_entry(text).may_name.iter().map(|i| i.id.clone()).collect()
}

fn facts(declaration: &str) -> ProductFacts {
    derive(kb(), Some(&parse(declaration)), Some("Skincare/Moisturizers/Moisturizers"), "Cream")
}

#[test]
fn registry_numbers_are_not_part_of_the_name() {
    // P435108, P455588: a CAS number after each allergen.
    assert_eq!(declared("Linalool 78-70-6"), ["linalool"]);
    assert_eq!(declared("Limonene 5989-27-5"), ["limonene"]);
    assert_eq!(declared("Hexyl Cinnamal 101-86-0"), ["hexyl-cinnamal"]);
    assert_eq!(declared("Linalool (CAS 78-70-6)"), ["linalool"]);
    assert_eq!(declared("Linalool78-70-6"), ["linalool"]);
    // An EC number.
    assert_eq!(declared("Linalool EC 201-134-4"), ["linalool"]);
    assert_eq!(declared("Limonene 227-813-5"), ["limonene"]);
}

#[test]
fn strengths_and_notes_come_off() {
    // P450176: "Limonene : 0.4272%".
    let l = parse("Parfum (Fragrance),\nLimonene : 0.4272%,\nLinalool : 0.57204%");
    let ids: Vec<Vec<String>> = l.entries().map(|e| declared(&e.text)).collect();
    assert_eq!(ids, [vec!["fragrance"], vec!["limonene"], vec!["linalool"]]);
    // P501695: "Linalool. 80% Vol".
    assert_eq!(declared("Linalool. 80% Vol"), ["linalool"]);
    // P474810: a translated note after a footnote mark.
    assert_eq!(declared("Limonene *antistatic agent/agent antistatique"), ["limonene"]);
    assert_eq!(declared("Limonene antistatic agent/agent antistatique"), Vec::<String>::new());
    assert_eq!(may_name("Limonene antistatic agent/agent antistatique"), ["limonene"]);
}

#[test]
fn isomer_prefixes_name_the_same_ingredient() {
    for text in ["D-Limonene", "d-limonene", "D'Limonene", "d'Limonene", "dl-Limonene", "l-Limonene", "I-Limonene"] {
        assert_eq!(declared(text), ["limonene"], "{text}");
    }
    assert_eq!(declared("dl-Panthenol"), ["panthenol"]);
    assert_eq!(declared("L-Menthol"), ["menthol"]);
}

#[test]
fn names_glued_together_are_each_declared() {
    // P504134: no comma, no space.
    assert_eq!(declared("TocopherolLimonene"), ["tocopherol", "limonene"]);
    assert_eq!(declared("LinaloolGeraniol"), ["linalool", "geraniol"]);
    // A space only, or a full stop (P461184).
    assert_eq!(declared("Limonene Linalool"), ["limonene", "linalool"]);
    assert_eq!(declared("Hexyl Cinnamal. Linalool"), ["hexyl-cinnamal", "linalool"]);
    assert_eq!(declared("Coumarin Eugenol. Farnesol"), ["coumarin", "eugenol", "farnesol"]);
    // P473671: "Parfum (Fragrance) D-Limonene" used to be fragrance only.
    assert_eq!(declared("Parfum (Fragrance) D-Limonene"), ["fragrance", "limonene"]);
    // "X and Y" (P473148: resolved to fragrance only).
    assert_eq!(declared("Limonene and Fragrance/Parfum"), ["limonene", "fragrance"]);
    assert_eq!(declared("Cetearyl Alcohol (and) Ceteareth-20"), ["cetearyl-alcohol", "ceteareth-20"]);
    assert_eq!(declared("Cholesterol And Ceramide 3"), ["cholesterol", "ceramide-np"]);
    // One name is never cut into others ("Benzyl Alcohol" is not "Benzyl" + "Alcohol"), and a
    // PEG prefix belongs to what follows it.
    assert_eq!(declared("Benzyl Alcohol"), ["benzyl-alcohol"]);
    assert!(!declared("PEG-75 Lanolin").contains(&"peg-75".to_owned()));
}

#[test]
fn and_inside_a_name_is_kept() {
    // No name in the bundled knowledge base contains " and "; one that did resolves whole.
    assert!(
        kb().all()
            .iter()
            .all(|i| { std::iter::once(&i.inci).chain(&i.synonyms).all(|n| !n.to_lowercase().contains(" and ")) })
    );
    let ingredients = "id,inci,synonyms,functions,comedogenic,irritation,pregnancy,photosensitizing,allergen,concerns,sources\n\
        honey,Honey,,humectant,,,,,,,cosing\n\
        oat-and-honey-extract,Oat And Honey Extract,,skin-conditioning,,,,,,,cosing\n\
        oat-extract,Oat Extract,,skin-conditioning,,,,,,,cosing\n";
    let sources = "key,citation,url\ncosing,CosIng,\n";
    let small = KnowledgeBase::from_csv(ingredients, sources).unwrap();
    let ids = |t: &str| small.resolve_entry(t).declared.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids("Oat And Honey Extract"), ["oat-and-honey-extract"]);
    assert_eq!(ids("Oat Extract and Honey"), ["oat-extract", "honey"]);
}

#[test]
fn one_letter_typos_on_long_names() {
    assert_eq!(declared("Linalooll"), ["linalool"]);
    assert_eq!(declared("Limonen"), ["limonene"]);
    assert_eq!(declared("Limolene"), ["limonene"]);
    assert_eq!(declared("Arnesol"), ["farnesol"]);
    assert_eq!(declared("Benzl Benzoate"), ["benzyl-benzoate"]);
    assert_eq!(declared("Courmarin"), ["coumarin"]);
    // Not on short names, numbers, or words that are themselves names of something else.
    assert!(declared("Linalol").contains(&"linalool".to_owned()), "a synonym, not a typo");
    assert!(declared("Methyl Anthranilate").is_empty(), "not menthyl anthranilate");
    assert!(declared("PPG-12 Dimethicone").is_empty(), "PPG is not PEG");
    assert_ne!(declared("Sea Silt"), ["sea-salt"]);
    assert!(declared("PEG-60 Lanolin").is_empty());
    // Nor on reviewed different substances.
    assert!(declared("Citronellal").is_empty() && may_name("Citronellal").is_empty());
    assert!(declared("Maleic Acid").is_empty() && may_name("Maleic Acid").is_empty());
}

#[test]
fn control_and_invisible_characters() {
    assert_eq!(declared("Limonene\r"), ["limonene"]);
    assert_eq!(declared("\tLinalool"), ["linalool"]);
    assert_eq!(declared("Lina\u{200B}lool"), ["linalool"]);
    assert_eq!(declared("Limo\u{FEFF}nene"), ["limonene"]);
    // A "\r" whose backslash was lost on the way (imported before the importer read escapes).
    assert_eq!(declared("rLimonene"), ["limonene"]);
    assert_eq!(declared("rParfum (Fragrance)"), ["fragrance"]);
    // In a whole declaration: a carriage return is a space, a line separator a new line (here
    // read as a list wrapped mid-list: the two names are glued, and both declared).
    let l = parse("Water, Glycerin,\rLimonene\u{2028}Linalool");
    let ids: Vec<String> = l.entries().flat_map(|e| declared(&e.text)).collect();
    assert_eq!(ids, ["water", "glycerin", "limonene", "linalool"]);
}

#[test]
fn announcements_before_allergens() {
    // P451243: "Allergens: Linalool." on its own line is a list, not a note.
    let f = facts("Caprylic/Capric Triglyceride, Linalyl Acetate.\nAllergens: Linalool.");
    assert!(f.allergens.contains(&"linalool".to_owned()), "{:?}", f.allergens);
    assert_eq!(f.fragrance_free, Some(false));
    // Inside an entry.
    assert_eq!(declared("Allergens Linalool"), ["linalool"]);
    assert_eq!(declared("Contains: Limonene"), ["limonene"]);
    assert_eq!(declared("Fragrance Allergens: Limonene"), ["limonene"]);
}

#[test]
fn what_does_not_resolve_may_still_name_an_ingredient() {
    // A whole word of an unresolved entry names the ingredient, in any case, with accents.
    assert!(
        may_name("PPG-5- Ceteth-20 Linalool CI 60730 (D&C Violet 2) FORMULA# 502-2").contains(&"linalool".to_owned())
    );
    assert!(may_name("Natural LIMONÈNE Fraction").contains(&"limonene".to_owned()));
    assert!(may_name("Linalool FORMULA #302-1").contains(&"linalool".to_owned()));
    // A longer name of another ingredient, or a reviewed different substance, is not it.
    assert!(!may_name("Organic Benzyl Alcohol Blend").contains(&"alcohol".to_owned()));
    assert!(!may_name("Ethyl Linalool (Floral Note/Safe Synthetic)").contains(&"linalool".to_owned()));
    assert!(!may_name("Brassica Alcohol").contains(&"alcohol".to_owned()));
    // Unknown never reads as "free of".
    let f = facts("Water, Glycerin, Mystery Fragrance Blend, Tocopherol");
    assert_eq!(f.fragrance_free, Some(false));
    assert!(f.possible_ingredients.contains(&"fragrance".to_owned()));
    assert!(f.unknown_ingredients.contains(&"Mystery Fragrance Blend".to_owned()));
    let f = facts("Water, Glycerin, Natural Essential Oils");
    assert_eq!((f.essential_oil_free, f.fragrance_free), (Some(false), Some(false)));
    assert_eq!(f.possible_families, ["essential-oils", "fragrance"]);
    // Ethyl linalool is another substance (a fragrance, not an EU-labelled allergen): the
    // product is not fragrance-free, but it does not contain linalool.
    let f = facts("Alcohol Denat., Ethyl Linalool");
    assert!(!f.allergens.contains(&"linalool".to_owned()));
    assert_eq!(f.fragrance_free, Some(false));
}

#[test]
fn names_split_by_a_stray_comma() {
    // P6463, P481991, P455839.
    let f = facts("Water, Alpha-Isomethyl, Ionone, Glycerin");
    assert!(f.allergens.contains(&"alpha-isomethyl-ionone".to_owned()), "{:?}", f.allergens);
    let f = facts("Water, Benzyl, Benzoate, Glycerin");
    assert!(f.allergens.contains(&"benzyl-benzoate".to_owned()), "{:?}", f.allergens);
    let f = facts("Water, Salicylic, Acid");
    assert!(f.possible_ingredients.contains(&"salicylic-acid".to_owned()));
    // Two entries that resolve are two ingredients, whatever their words spell together.
    let f = facts("Water, Benzyl Alcohol, Glycerin");
    assert!(f.possible_ingredients.is_empty(), "{:?}", f.possible_ingredients);
}

#[test]
fn a_header_and_a_note_say_what_is_inside() {
    let f = facts("Leila Lou Eau de Parfum:\nCane Sugar Alcohol, Water, Geraniol.");
    assert!(f.possible_ingredients.contains(&"fragrance".to_owned()), "{:?}", f.possible_ingredients);
    assert!(!f.possible_ingredients.contains(&"water".to_owned()), "Eau de Parfum is not water");
    // A list printed without commas is a note; what it names still counts.
    let f = facts(
        "Water, Glycerin,\nTalc Mica Octyldodecyl Stearoyl Stearate Titanium Dioxide Ci 77891 Alumina Diisostearyl Malate Zinc Stearate Iron Oxides Ci 77491 Caprylyl Glycol Ethylhexylglycerin Synthetic Fluorphlogopite Silica Tin Oxide Tocopherol Calcium Aluminum Borosilicate Limonene Linalool Magnesium Stearate Octyldodecanol Polyethylene Sorbitan Sesquioleate Boron Nitride Zinc Oxide Calcium Sodium Borosilicate",
    );
    assert!(f.allergens.contains(&"linalool".to_owned()) && f.allergens.contains(&"limonene".to_owned()));
}

#[test]
fn the_safety_layer_asks_one_entry() {
    let kb = kb();
    assert!(kb.entry_ids("Limonene and Fragrance/Parfum").contains("limonene"));
    assert!(kb.entry_ids("Linalool 78-70-6").contains("linalool"));
    assert!(kb.entry_may_contain("TocopherolLimonene", "limonene"));
    assert!(kb.entry_may_contain("TocopherolLimonene", "d-limonene"));
    assert!(kb.entry_may_contain("TocopherolLimonene", "fragrance-allergens"));
    assert!(kb.entry_may_contain("TocopherolLimonene", "fragrance"));
    assert!(!kb.entry_may_contain("TocopherolLimonene", "parabens"));
    assert!(kb.entry_may_contain("Natural Essential Oils", "essential-oils"));
    assert!(kb.entry_may_contain("Mystery Linalool Blend", "linalool"));
    assert!(!kb.entry_may_contain("Ethyl Linalool", "linalool"));
    // A term the knowledge base does not know is matched as a whole-word phrase.
    assert!(kb.entry_may_contain("Unobtainium Extract", "unobtainium"));
    assert!(!kb.entry_may_contain("Unobtainiums", "unobtainium"));
    // The reviewed list is readable, each entry with its reason.
    assert!(kb.different_substances().iter().all(|d| kb.get(&d.not).is_some() && !d.why.is_empty()));
}
