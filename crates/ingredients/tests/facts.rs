//! Derived product attributes, on real declarations from the Sephora catalog
//! (`shared/data/sephora-products-and-skincare-reviews/product_info.csv.gz`). Each string is the
//! product's `ingredients` list items joined by new lines, as the importer joins them, with the
//! category path the importer builds; the product id is in the comment.

use dermis_ingredients::KnowledgeBase;
use dermis_ingredients::facts::{ProductFacts, derive};
use dermis_ingredients::inci::parse;

fn facts(category: &str, name: &str, declaration: &str) -> ProductFacts {
    derive(KnowledgeBase::bundled(), Some(&parse(declaration)), Some(category), name)
}

#[test]
fn allergens_of_several_variants_are_listed_once_in_first_seen_order() {
    // P473671, the first two of its seven perfumes: most allergens come back in the second.
    let f = facts(
        "Fragrance/Value & Gift Sets/Perfume Gift Sets",
        "Fragrance Discovery Set",
        "Capri Eau de Parfum:\nAlcohol Denat. (SD Alcohol 39C), Parfum (Fragrance) D-Limonene, Linalool, Benzyl Salicylate, Ethylhexyl Methoxycinnamate, Butyl Methoxydibenzoylmethane, Ethylhexyl Salicylate, Benzl Benzoate, Citral, Geraniol, Eugenol, Benzyl Alcohol, Farnesol, Citronellol, Isoeugenol.\nInvisible Post Eau de Parfum:\nAlcohol Denat. (SD Alcohol 39C), Parfum (Fragrance) Ethylhexyl Methoxycinnamate, Ethylhexyl Salicylate, Butyl Methoxydibenzoylmethane, Benzyl Benzoate, Citral, Coumarin, Limonene, Alpha-Isomethyl Ionone, Linalool.",
    );
    // "Parfum (Fragrance) D-Limonene" lost its comma: it declares limonene too, in the first
    // perfume already; "Benzl Benzoate" is a typo of benzyl benzoate.
    assert_eq!(
        f.allergens,
        [
            "fragrance",
            "limonene",
            "linalool",
            "benzyl-salicylate",
            "benzyl-benzoate",
            "citral",
            "geraniol",
            "eugenol",
            "benzyl-alcohol",
            "farnesol",
            "citronellol",
            "isoeugenol",
            "coumarin",
            "alpha-isomethyl-ionone",
        ]
    );
    assert_eq!(f.actives, ["ethylhexyl-methoxycinnamate", "butyl-methoxydibenzoylmethane", "ethylhexyl-salicylate"]);
    assert_eq!(f.ingredients[1].ingredient_id.as_deref(), Some("fragrance"));
    assert_eq!(f.ingredients[1].also, ["limonene"]);
    assert_eq!(f.ingredients[7].ingredient_id.as_deref(), Some("benzyl-benzoate"));
    assert!(f.unknown_ingredients.is_empty());
    // "SD Alcohol 39C" in the parentheses of "Alcohol Denat." names another SD alcohol.
    assert_eq!(f.possible_ingredients, ["sd-alcohol-40"]);
}

#[test]
fn salicylic_acid_is_a_pregnancy_caution_only_above_two_percent_or_without_a_strength() {
    // P469513, an OTC acne cleanser: 0.5%.
    let f = facts(
        "Skincare/Cleansers/Face Wash & Cleansers",
        "CLEAR Pore Normalizing Acne Cleanser",
        "Salicylic Acid 0.5%, Water (Aqua), Sodium Lauroyl Sarcosinate, Acrylates/Steareth-20 Methacrylate Copolymer, Glycerin, PEG-200 Hydrogenated Glyceryl Palmate, Sodium Laureth Sulfate, Arginine, Butylene Glycol, PEG-7 Glyceryl Cocoate, Panthenol (Vitamin B5), Disodium EDTA, Citric Acid, PEG-60 Hydrogenated Castor Oil, Sodium Citrate, Phenoxyethanol, Caprylyl Glycol, Chlorphenesin.",
    );
    assert_eq!(f.pregnancy_caution, Some(false));
    // P502997: exactly the 2% limit.
    let f = facts(
        "Skincare/Treatments/Face Serums",
        "Salicylic Acid Acne Treatment Serum",
        "Salicylic Acid 2.0%, Water, Propanediol, Triheptanoin, Coco-Caprylate/Caprate, Niacinamide, Isopentyldiol, Sodium Polyacryloyldimethyl Taurate, Zinc PCA, 3-O-Ethyl Ascorbic Acid, Sodium Hyaluronate, Aloe Barbadensis Leaf, Trifolium Pratense (Clover) Flower Extract, Centella Asiatica Flower/Leaf/Stem Extract, Potassium Azeloyl Diglycinate, Saccharide Isomerate, Cetearyl Olivate, Glycerin, Sorbitan Olivate, Dilinoleic Acid/Butanediol Copolymer, Decyl Glucoside, Caprylyl Glycol, Trisodium Ethylenediamine Disuccinate, Castor Oil/IPDI Copolymer, Phenoxyethanol, Tocopheryl Acetate, Sodium Hydroxide, Ethylhexylglycerin.",
    );
    assert_eq!(f.pregnancy_caution, Some(false));
    // P469514: the strength sits before a note, "2% (BHA)"; it is still salicylic acid (not BHA,
    // the antioxidant) at 2%.
    let f = facts(
        "Skincare/Cleansers/Exfoliators",
        "CLEAR Anti-Redness Exfoliating Solution with 2% Salicylic Acid",
        "Salicylic Acid 2% (BHA), Water (Aqua), Dipropylene Glycol, Pentylene Glycol, Polysorbate 20, Butylene Glycol, Glycerin, Sodium Hyaluronate, Dipotassium Glycyrrhizate, Allantoin, Panthenol, PEG/PPG-17/6 Copolymer, Methyl Gluceth-20, Glycereth-26, Bis-PEG-18 Methyl Ether Dimethyl Silane, Sodium Hydroxide, Tetrasodium EDTA, Sodium Metabisulfite.",
    );
    assert_eq!(f.ingredients[0].ingredient_id.as_deref(), Some("salicylic-acid"));
    assert_eq!(f.pregnancy_caution, Some(false));
    // P440498: no strength declared, so the cautious answer.
    let f = facts(
        "Skincare/Treatments/Blemish & Acne Treatments",
        "Drying Lotion",
        "Isopropyl Alcohol, Water, Calamine, Zinc Oxide, Titanium Dioxide, Sulfur, Camphor, Talc, Glycerin, Salicylic Acid.",
    );
    assert_eq!(f.pregnancy_caution, Some(true));
    // P503721: 0.5% salicylic acid, but also a retinoid.
    let f = facts(
        "Skincare/Treatments/Blemish & Acne Treatments",
        "Salicylic Acid Acne Day Dots",
        "Salicylic Acid 0.5%, Aloe Barbadensis (Aloe Vera) Leaf Extract, Retinyl Acetate (Vitamin A), Hydrocolloid Polymer Technology.",
    );
    assert_eq!(f.pregnancy_caution, Some(true));
}

#[test]
fn the_salicylic_acid_threshold_itself() {
    // No product in the data declares more than 2% salicylic acid, so the rule above 2% is checked
    // on the knowledge base row directly.
    use dermis_ingredients::facts::pregnancy_flag;
    let kb = KnowledgeBase::bundled();
    let sa = kb.get("salicylic-acid").unwrap();
    assert!(!pregnancy_flag(sa, Some("2")) && !pregnancy_flag(sa, Some("0.5")));
    assert!(pregnancy_flag(sa, Some("2.5")) && pregnancy_flag(sa, Some("30")) && pregnancy_flag(sa, None));
    assert!(pregnancy_flag(sa, Some("not a number")), "an unreadable strength is no strength");
    // The strength matters for salicylic acid only.
    assert!(pregnancy_flag(kb.get("retinol").unwrap(), Some("0.01")));
    assert!(!pregnancy_flag(kb.get("glycerin").unwrap(), None));
}

#[test]
fn am_and_pm() {
    // P442542, a night peel with glycolic acid and retinol.
    let f = facts(
        "Skincare/Treatments/Facial Peels",
        "Beauty Sleep Power Peel Age-Defying Night Peel",
        "10% Glycolic Acid, 0.5% Retinol, Panthenol (Vitamin B5), Papaya Enzyme, Jojoba Seed Oil, Shea Butter, Mango Seed Butter, Vitamin E",
    );
    assert_eq!((f.am, f.pm), (Some(false), Some(true)));
    // P453224, a serum with 10% lactic acid (an AHA, photosensitizing): PM only.
    let f = facts(
        "Skincare/Treatments/Face Serums",
        "Squalane + 10% Lactic Acid Resurfacing Serum",
        "Water/Aqua/Eau, Caprylic/Capric Triglyceride, Lactic Acid, Squalane, Glycerin, Sodium Hydroxide, Cetearyl Olivate, Propanediol, Sorbitan Olivate, Cetearyl Alcohol, Lespedeza Capitata Leaf/Stem Extract, Polyacrylate Crosspolymer-6, Acacia Senegal Gum, Sodium Gluconate, Xanthan Gum, Phenoxyethanol, Ethylhexylglycerin, Lavandula Angustifolia (Lavender) Oil, Linalool.",
    );
    assert_eq!((f.am, f.pm), (Some(false), Some(true)));
    // P479354, a moisturizer whose only acids are citric (a pH adjuster, not photosensitizing) and
    // oleic: morning and evening.
    let f = facts(
        "Skincare/Moisturizers/Moisturizers",
        "Omega Water Cream Moisturizer",
        "Water (Aqua/Eau), Dicaprylyl Carbonate, Glycerin, Niacinamide, Propanediol, Betaine, Polyglyceryl-4 Isostearate, Coco-Caprylate/Caprate, Magnesium Sulfate, Glycosphingolipids, Glycolipids, Sodium Benzoate, Disteardimonium Hectorite, Oleic Acid, Potassium Sorbate, Citric Acid, Polyglycerin-3.",
    );
    assert_eq!((f.am, f.pm), (Some(true), Some(true)));
    // P469514, salicylic acid (a BHA, not photosensitizing) in an exfoliant: exfoliants are PM.
    let f = facts(
        "Skincare/Cleansers/Exfoliators",
        "CLEAR Anti-Redness Exfoliating Solution with 2% Salicylic Acid",
        "Salicylic Acid 2% (BHA), Water (Aqua), Dipropylene Glycol, Pentylene Glycol, Polysorbate 20, Butylene Glycol, Glycerin, Sodium Hyaluronate, Dipotassium Glycyrrhizate, Allantoin, Panthenol, PEG/PPG-17/6 Copolymer, Methyl Gluceth-20, Glycereth-26, Bis-PEG-18 Methyl Ether Dimethyl Silane, Sodium Hydroxide, Tetrasodium EDTA, Sodium Metabisulfite.",
    );
    assert_eq!((f.am, f.pm), (Some(false), Some(true)));
    // P311143, a face sunscreen: morning only.
    let f = facts(
        "Skincare/Sunscreen/Face Sunscreen",
        "SUBLIME DEFENSE Ultra Lightweight UV Defense Fluid SPF 50",
        "Octinoxate 7.5%, Titanium Dioxide 2%, Zinc Oxide 17.1%, Cyclopentasiloxane, Water (Aqua, Eau), Alcohol Denat., Glycerin, Polyglyceryl-3 Polydimethylsiloxyethyl Dimethicone, Methyl Methacrylate Crosspolymer, PEG/PPG-18/18 Dimethicone, PEG-9 Polydimethylsiloxyethyl Dimethicone, Parachlorella Beijerinckii Exopolysaccharides, Echinacea Purpurea Extract, Tocopheryl Acetate, Camellia Oleifera Leaf Extract, Arctostaphylos Uva Ursi Leaf Extract, Glycyrrhiza Glabra (Licorice) Root Extract, Stearic Acid, Triethoxysilylethyl Polydimethylsiloxyethyl Hexyl Dimethicone, BHT, Ethylhexylglycerin, Caprylyl Glycol, Aluminum Hydroxide, Phenoxyethanol, Hexylene Glycol, Fragrance (Parfum), Hexyl Cinnamal, Linalool.",
    );
    assert_eq!(f.routine_step, Some(dermis_ingredients::RoutineStep::Sunscreen));
    assert_eq!((f.am, f.pm), (Some(true), Some(false)));
}

#[test]
fn an_unknown_list_gives_unknown_answers() {
    let kb = KnowledgeBase::bundled();
    // P479354's product without its declaration.
    let f = derive(kb, None, Some("Skincare/Moisturizers/Moisturizers"), "Omega Water Cream Moisturizer");
    assert!(!f.has_ingredient_list);
    assert_eq!((f.am, f.pm), (None, None), "a retinoid or an AHA may be in it");
    assert_eq!(f.pregnancy_caution, None);
    assert_eq!(f.photosensitizing, None);
    assert_eq!(f.essential_oil_free, None);
    assert_eq!(f.fragrance_free, None);
    assert_eq!((f.max_comedogenic, f.non_comedogenic), (None, None));
    assert!(f.allergens.is_empty() && f.actives.is_empty() && f.concerns.is_empty());
    // An empty declaration is no declaration.
    let f = derive(kb, Some(&parse("  ")), Some("Skincare/Moisturizers/Moisturizers"), "Cream");
    assert_eq!((f.has_ingredient_list, f.am, f.pm), (false, None, None));
    // A sunscreen by its category is a morning product whatever it contains, and not an evening one.
    let f = derive(
        kb,
        None,
        Some("Skincare/Sunscreen/Face Sunscreen"),
        "SUBLIME DEFENSE Ultra Lightweight UV Defense Fluid SPF 50",
    );
    assert_eq!((f.am, f.pm), (Some(true), Some(false)));
    // "SPF" in the name of a moisturizer is recognised by its UV filters, so without a list its
    // step, and so its time of day, is unknown.
    let f = derive(kb, None, Some("Skincare/Moisturizers/Moisturizers"), "Daily Cream SPF 30");
    assert_eq!((f.am, f.pm), (None, None));
}

#[test]
fn photosensitizing() {
    // P453224: lactic acid, an AHA of the FDA sunburn alert.
    let f = facts(
        "Skincare/Treatments/Face Serums",
        "Squalane + 10% Lactic Acid Resurfacing Serum",
        "Water/Aqua/Eau, Caprylic/Capric Triglyceride, Lactic Acid, Squalane, Glycerin, Sodium Hydroxide, Cetearyl Olivate, Propanediol, Sorbitan Olivate, Cetearyl Alcohol, Lespedeza Capitata Leaf/Stem Extract, Polyacrylate Crosspolymer-6, Acacia Senegal Gum, Sodium Gluconate, Xanthan Gum, Phenoxyethanol, Ethylhexylglycerin, Lavandula Angustifolia (Lavender) Oil, Linalool.",
    );
    assert_eq!(f.photosensitizing, Some(true));
    // P232902: bergamot oil (furocoumarins) in a cleanser. Photosensitizing, but not an exfoliant
    // acid, so it does not make the product PM only.
    let f = facts(
        "Skincare/Cleansers/Face Wash & Cleansers",
        "Gentle Daily Wash",
        "Water, Sodium C14-16 Olefin Sulfonate, Cocamidopropyl Betaine, PEG/PPG-8/3 Diisostearate, Glycerin, Acrylates Copolymer, Silicone Quaternium-8, Saponins, Butylene Glycol, Chlorphenesin, Sodium Hydroxide, Citrus Aurantium Bergamia (Bergamot) Fruit Oil, Lavandula Angustifolia (Lavender) Oil, Disodium EDTA, Potassium Sorbate, Sodium Benzoate, Salvia Officinalis (Sage) Oil, Zinc PCA, Citric Acid, Limonene, Linalool.",
    );
    assert_eq!((f.photosensitizing, f.am), (Some(true), Some(true)));
    // P469514: salicylic acid (a BHA) is not flagged; P479354: citric acid is not either.
    let f = facts(
        "Skincare/Cleansers/Exfoliators",
        "CLEAR Anti-Redness Exfoliating Solution with 2% Salicylic Acid",
        "Salicylic Acid 2% (BHA), Water (Aqua), Dipropylene Glycol, Pentylene Glycol, Polysorbate 20, Butylene Glycol, Glycerin, Sodium Hyaluronate, Dipotassium Glycyrrhizate, Allantoin, Panthenol, PEG/PPG-17/6 Copolymer, Methyl Gluceth-20, Glycereth-26, Bis-PEG-18 Methyl Ether Dimethyl Silane, Sodium Hydroxide, Tetrasodium EDTA, Sodium Metabisulfite.",
    );
    assert_eq!(f.photosensitizing, Some(false));
    let f = facts(
        "Skincare/Moisturizers/Moisturizers",
        "Omega Water Cream Moisturizer",
        "Water (Aqua/Eau), Dicaprylyl Carbonate, Glycerin, Niacinamide, Propanediol, Betaine, Polyglyceryl-4 Isostearate, Coco-Caprylate/Caprate, Magnesium Sulfate, Glycosphingolipids, Glycolipids, Sodium Benzoate, Disteardimonium Hectorite, Oleic Acid, Potassium Sorbate, Citric Acid, Polyglycerin-3.",
    );
    assert_eq!(f.photosensitizing, Some(false));
}

#[test]
fn pregnancy_caution_from_retinoids_and_essential_oils() {
    // P442542: retinol.
    let f = facts(
        "Skincare/Treatments/Facial Peels",
        "Beauty Sleep Power Peel Age-Defying Night Peel",
        "10% Glycolic Acid, 0.5% Retinol, Panthenol (Vitamin B5), Papaya Enzyme, Jojoba Seed Oil, Shea Butter, Mango Seed Butter, Vitamin E",
    );
    assert_eq!(f.pregnancy_caution, Some(true));
    // P232902: sage oil.
    let f = facts(
        "Skincare/Cleansers/Face Wash & Cleansers",
        "Gentle Daily Wash",
        "Water, Sodium C14-16 Olefin Sulfonate, Cocamidopropyl Betaine, PEG/PPG-8/3 Diisostearate, Glycerin, Acrylates Copolymer, Silicone Quaternium-8, Saponins, Butylene Glycol, Chlorphenesin, Sodium Hydroxide, Citrus Aurantium Bergamia (Bergamot) Fruit Oil, Lavandula Angustifolia (Lavender) Oil, Disodium EDTA, Potassium Sorbate, Sodium Benzoate, Salvia Officinalis (Sage) Oil, Zinc PCA, Citric Acid, Limonene, Linalool.",
    );
    assert_eq!(f.pregnancy_caution, Some(true));
    // P479354: nothing flagged.
    let f = facts(
        "Skincare/Moisturizers/Moisturizers",
        "Omega Water Cream Moisturizer",
        "Water (Aqua/Eau), Dicaprylyl Carbonate, Glycerin, Niacinamide, Propanediol, Betaine, Polyglyceryl-4 Isostearate, Coco-Caprylate/Caprate, Magnesium Sulfate, Glycosphingolipids, Glycolipids, Sodium Benzoate, Disteardimonium Hectorite, Oleic Acid, Potassium Sorbate, Citric Acid, Polyglycerin-3.",
    );
    assert_eq!(f.pregnancy_caution, Some(false));
}

#[test]
fn actives_and_concerns_take_the_strongest_evidence() {
    use dermis_ingredients::kb::Evidence;
    // P442542: glycolic acid (hyperpigmentation: moderate) and retinol (hyperpigmentation:
    // limited, aging: strong).
    let f = facts(
        "Skincare/Treatments/Facial Peels",
        "Beauty Sleep Power Peel Age-Defying Night Peel",
        "10% Glycolic Acid, 0.5% Retinol, Panthenol (Vitamin B5), Papaya Enzyme, Jojoba Seed Oil, Shea Butter, Mango Seed Butter, Vitamin E",
    );
    assert_eq!(f.actives, ["glycolic-acid", "retinol", "panthenol"]);
    let concern = |c: &str| f.concerns.iter().find(|x| x.concern == c).map(|x| x.evidence);
    assert_eq!(concern("hyperpigmentation"), Some(Evidence::Moderate));
    assert_eq!(concern("aging"), Some(Evidence::Strong));
    assert_eq!(concern("acne"), Some(Evidence::Limited));
    assert_eq!(concern("pores"), None);
    let names: Vec<&str> = f.concerns.iter().map(|c| c.concern.as_str()).collect();
    assert!(names.windows(2).all(|w| w[0] < w[1]), "one entry per concern, sorted: {names:?}");
    // P469513: salicylic acid at 0.5% still counts as the acne active it is.
    let f = facts(
        "Skincare/Cleansers/Face Wash & Cleansers",
        "CLEAR Pore Normalizing Acne Cleanser",
        "Salicylic Acid 0.5%, Water (Aqua), Sodium Lauroyl Sarcosinate, Acrylates/Steareth-20 Methacrylate Copolymer, Glycerin, PEG-200 Hydrogenated Glyceryl Palmate, Sodium Laureth Sulfate, Arginine, Butylene Glycol, PEG-7 Glyceryl Cocoate, Panthenol (Vitamin B5), Disodium EDTA, Citric Acid, PEG-60 Hydrogenated Castor Oil, Sodium Citrate, Phenoxyethanol, Caprylyl Glycol, Chlorphenesin.",
    );
    assert_eq!(f.actives.first().map(String::as_str), Some("salicylic-acid"));
    let concern = |c: &str| f.concerns.iter().find(|x| x.concern == c).map(|x| x.evidence);
    assert_eq!((concern("acne"), concern("pores")), (Some(Evidence::Moderate), Some(Evidence::Limited)));
}

#[test]
fn essential_oils_and_fragrance() {
    // P440494: lavender oil in a vitamin C serum.
    let f = facts(
        "Skincare/Treatments/Face Serums",
        "Vitamin C Serum",
        "Propylene Glycol, Water, Ascorbic Acid, Cucumis Sativus (Cucumber) Fruit Extract, Panax Ginseng Root Extract, Sodium Hyaluronate, Collagen, Aloe Barbadensis Leaf Juice, Lavandula Angustifolia (Lavender) Oil, Caprylyl Glycol, Phenoxyethanol, Hexylene Glycol.",
    );
    assert_eq!((f.essential_oil_free, f.fragrance_free), (Some(false), Some(false)));
    assert!(f.allergens.contains(&"lavandula-angustifolia-oil".to_owned()), "lavender oil is an EU 2023 allergen");
    // P440492: perfume, but no essential oil.
    let f = facts(
        "Skincare/Moisturizers/Moisturizers",
        "Buttermilk Moisturizer",
        "Aqua (Water, Eau),Isopropyl Myristate,Propylene Glycol,Paraffinum Liquidum (Mineral Oil, Huile Minérale),Glyceryl Stearate,Cetyl Alcohol,Allantoin,Chamomilla Recutita (Matricaria) Flower Extract,Thymus Vulgaris (Thyme) Leaf Extract,Tocopherol,Lactic Acid,Cetrimonium Bromide,Parfum (Fragrance),Triethanolamine,Methylparaben,Propylparaben,Sodium Chloride,Citronellol,CI 42090 (Blue 1),CI 19140 (Yellow 5).",
    );
    assert_eq!((f.essential_oil_free, f.fragrance_free), (Some(true), Some(false)));
    // P479354: neither.
    let f = facts(
        "Skincare/Moisturizers/Moisturizers",
        "Omega Water Cream Moisturizer",
        "Water (Aqua/Eau), Dicaprylyl Carbonate, Glycerin, Niacinamide, Propanediol, Betaine, Polyglyceryl-4 Isostearate, Coco-Caprylate/Caprate, Magnesium Sulfate, Glycosphingolipids, Glycolipids, Sodium Benzoate, Disteardimonium Hectorite, Oleic Acid, Potassium Sorbate, Citric Acid, Polyglycerin-3.",
    );
    assert_eq!((f.essential_oil_free, f.fragrance_free), (Some(true), Some(true)));
    assert!(f.allergens.is_empty());
}

#[test]
fn max_comedogenic_and_non_comedogenic() {
    // P440492: isopropyl myristate, rated 5.
    let f = facts(
        "Skincare/Moisturizers/Moisturizers",
        "Buttermilk Moisturizer",
        "Aqua (Water, Eau),Isopropyl Myristate,Propylene Glycol,Paraffinum Liquidum (Mineral Oil, Huile Minérale),Glyceryl Stearate,Cetyl Alcohol,Allantoin,Chamomilla Recutita (Matricaria) Flower Extract,Thymus Vulgaris (Thyme) Leaf Extract,Tocopherol,Lactic Acid,Cetrimonium Bromide,Parfum (Fragrance),Triethanolamine,Methylparaben,Propylparaben,Sodium Chloride,Citronellol,CI 42090 (Blue 1),CI 19140 (Yellow 5).",
    );
    assert_eq!((f.max_comedogenic, f.non_comedogenic), (Some(5), Some(false)));
    // P442841: coconut oil, rated 4, ahead of petrolatum (0) and jojoba (2).
    let f = facts(
        "Skincare/Lip Balms & Treatments",
        "Barrier+ Lip Repair Balm",
        "Petrolatum, Cocos Nucifera (Coconut) Oil, Beeswax (Cera Alba), Glycine Soja (Soybean) Oil, Simmondsia Chinensis (Jojoba) Seed Oil, Allantoin.",
    );
    assert_eq!((f.max_comedogenic, f.non_comedogenic), (Some(4), Some(false)));
    // P479354: oleic acid (2) at most.
    let f = facts(
        "Skincare/Moisturizers/Moisturizers",
        "Omega Water Cream Moisturizer",
        "Water (Aqua/Eau), Dicaprylyl Carbonate, Glycerin, Niacinamide, Propanediol, Betaine, Polyglyceryl-4 Isostearate, Coco-Caprylate/Caprate, Magnesium Sulfate, Glycosphingolipids, Glycolipids, Sodium Benzoate, Disteardimonium Hectorite, Oleic Acid, Potassium Sorbate, Citric Acid, Polyglycerin-3.",
    );
    assert_eq!((f.max_comedogenic, f.non_comedogenic), (Some(2), Some(true)));
    // P503721: no rated ingredient at all: no maximum, and nothing rated 3 or more.
    let f = facts(
        "Skincare/Treatments/Blemish & Acne Treatments",
        "Salicylic Acid Acne Day Dots",
        "Salicylic Acid 0.5%, Aloe Barbadensis (Aloe Vera) Leaf Extract, Retinyl Acetate (Vitamin A), Hydrocolloid Polymer Technology.",
    );
    assert_eq!((f.max_comedogenic, f.non_comedogenic), (None, Some(true)));
}
