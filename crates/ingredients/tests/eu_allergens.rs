//! The `fragrance-allergens` family covers the labelled fragrance allergens of Annex III to
//! Regulation (EC) No 1223/2009 as amended by Commission Regulation (EU) 2023/1545: the entries
//! that regulation made labellable and the ones it added (entries 327-371). Each entry is looked up
//! by several of its names, as the annex prints them and as labels in the Sephora data write them.

use std::collections::BTreeSet;

use dermis_ingredients::KnowledgeBase;

/// (annex entry, names that must all resolve to a member of the family).
const ENTRIES_2023_1545: &[(&str, &[&str])] = &[
    // Entries already in Annex III that became labellable.
    ("46", &["6-Methyl Coumarin", "6-methylcoumarin"]),
    ("109", &["Pinus Mugo Leaf Oil", "Pinus Mugo Twig Oil", "Pinus Mugo Twig Leaf Extract", "Pinus Mugo"]),
    ("114", &["Pinus Pumila Needle Extract", "Pinus Pumila Twig Leaf Extract", "Pinus Pumila Twig Leaf Oil"]),
    (
        "122",
        &[
            "Cedrus Atlantica Bark Oil",
            "Cedrus Atlantica Wood Oil",
            "Cedrus Atlantica Bark Extract",
            "Cedrus Atlantica Bark Water",
            "Cedrus Atlantica Leaf Extract",
            "Cedrus Atlantica Wood Extract",
            "Cedrus Atlantica Oil/Extract",
            "Cedrus Atlantica (Cedarwood) Bark Oil*",
        ],
    ),
    ("124", &["Turpentine", "Turpentine Oil"]),
    ("131", &["Alpha-Terpinene", "alpha-terpinene"]),
    ("133", &["Terpinolene"]),
    (
        "154",
        &[
            "Myroxylon Pereirae Oil",
            "Myroxylon Pereirae Resin",
            "Myroxylon Balsamum Pereirae Balsam Oil",
            "Myroxylon Balsamum Pereirae Balsam Extract",
            "Myroxylon Pereirae Resin Extract",
            "Balsam Peru",
            "Myroxylon Pereira (Balsam Peru) Oil",
        ],
    ),
    (
        "157",
        &[
            "Rose Ketones",
            "ROSE KETONES",
            "Alpha-Damascone",
            "cis-Rose Ketone 1",
            "Beta-Damascone",
            "trans-Rose Ketone 2",
            "Delta-Damascone",
            "Rose Ketone 3",
            "Damascenone",
            "Rose Ketone 4",
        ],
    ),
    ("175", &["3-Propylidenephthalide", "Propylidene Phthalide"]),
    ("196", &["Lippia Citriodora Absolute", "Lemon Verbena Absolute"]),
    ("324", &["Methyl Salicylate", "METHYL SALICYLATE"]),
    // Entries added by Regulation (EU) 2023/1545.
    ("327", &["Acetyl Cedrene"]),
    ("328", &["Amyl Salicylate"]),
    ("329", &["Anethole", "trans-Anethole"]),
    ("330", &["Benzaldehyde"]),
    ("331", &["Camphor"]),
    ("332", &["Beta-Caryophyllene", "Caryophyllene"]),
    ("333", &["Carvone", "l-Carvone"]),
    ("334", &["Dimethyl Phenethyl Acetate", "Dimethylbenzyl Carbinyl Acetate"]),
    ("335", &["Hexadecanolactone"]),
    ("336", &["Hexamethylindanopyran"]),
    ("337", &["Linalyl Acetate"]),
    ("338", &["Menthol", "L-Menthol", "MENTHOL"]),
    ("339", &["Trimethylcyclopentenyl Methylisopentenol"]),
    ("340", &["Salicylaldehyde"]),
    ("341", &["Santalol"]),
    ("342", &["Sclareol"]),
    ("343", &["Terpineol", "Alpha-Terpineol"]),
    ("344", &["Tetramethyl Acetyloctahydronaphthalenes"]),
    ("345", &["Trimethylbenzenepropanol"]),
    ("346", &["Vanillin"]),
    (
        "347",
        &["Cananga Odorata Flower Oil", "Cananga Odorata Flower Extract", "Cananga Odorata (Ylang Ylang) Flower Oil"],
    ),
    ("348", &["Cinnamomum Cassia Leaf Oil"]),
    ("349", &["Cinnamomum Zeylanicum Bark Oil"]),
    ("350", &["Citrus Aurantium Amara Flower Oil", "Citrus Aurantium Dulcis Flower Oil"]),
    (
        "351",
        &[
            "Citrus Aurantium Amara Peel Oil",
            "Citrus Aurantium Dulcis Peel Oil",
            "Citrus Sinensis Peel Oil",
            "Citrus Aurantium Amara (Bitter Orange) Peel Oil",
        ],
    ),
    ("352", &["Citrus Aurantium Bergamia Peel Oil", "Citrus Aurantium Bergamia (Bergamot) Fruit Oil"]),
    ("353", &["Citrus Limon Peel Oil", "Citrus Limon (Lemon) Peel Oil"]),
    (
        "354",
        &[
            "Cymbopogon Schoenanthus Oil",
            "Cymbopogon Flexuosus Oil",
            "Cymbopogon Citratus Leaf Oil",
            "Cymbopogon Flexuosus (Lemongrass) Oil",
        ],
    ),
    ("355", &["Eucalyptus Globulus Leaf Oil", "Eucalyptus Globulus Leaf/Twig Oil", "Eucalyptus Globulus Oil"]),
    (
        "356",
        &[
            "Eugenia Caryophyllus Leaf Oil",
            "Eugenia Caryophyllus Flower Oil",
            "Eugenia Caryophyllus Stem Oil",
            "Eugenia Caryophyllus Bud Oil",
            "Eugenia Caryophyllus (Clove) Oil",
        ],
    ),
    (
        "357",
        &[
            "Jasminum Grandiflorum Flower Extract",
            "Jasminum Officinale Oil",
            "Jasminum Officinale Flower Extract",
            "Jasminum Officinale (Jasmine) Flower Extract",
        ],
    ),
    ("358", &["Juniperus Virginiana Oil", "Juniperus Virginiana Wood Oil"]),
    ("359", &["Laurus Nobilis Leaf Oil"]),
    (
        "360",
        &[
            "Lavandula Hybrida Oil",
            "Lavandula Hybrida Extract",
            "Lavandula Hybrida Flower Extract",
            "Lavandula Intermedia Flower/Leaf/Stem Extract",
            "Lavandula Intermedia Flower/Leaf/Stem Oil",
            "Lavandula Intermedia Oil",
            "Lavandula Angustifolia Oil",
            "Lavandula Angustifolia Flower/Leaf/Stem Extract",
            "Lavandula Angustifolia (Lavender) Oil",
        ],
    ),
    ("361", &["Mentha Piperita Oil", "Mentha Piperita (Peppermint) Oil"]),
    ("362", &["Mentha Viridis Leaf Oil", "Mentha Viridis (Spearmint) Leaf Oil"]),
    (
        "363",
        &[
            "Narcissus Poeticus Extract",
            "Narcissus Pseudonarcissus Flower Extract",
            "Narcissus Jonquilla Extract",
            "Narcissus Tazetta Extract",
        ],
    ),
    ("364", &["Pelargonium Graveolens Oil", "Pelargonium Graveolens Flower Oil", "Pelargonium Graveolens Leaf Oil"]),
    ("365", &["Pogostemon Cablin Oil", "Pogostemon Cablin Leaf Oil"]),
    (
        "366",
        &[
            "Rosa Damascena Flower Oil",
            "Rosa Damascena Flower Extract",
            "Rosa Alba Flower Oil",
            "Rosa Alba Flower Extract",
            "Rosa Canina Flower Oil",
            "Rosa Centifolia Flower Oil",
            "Rosa Centifolia Flower Extract",
            "Rosa Gallica Flower Oil",
            "Rosa Moschata Flower Oil",
            "Rosa Rugosa Flower Oil",
        ],
    ),
    ("367", &["Santalum Album Oil", "Santalum Album (Sandalwood) Oil"]),
    ("368", &["Eugenyl Acetate", "Acetyl Eugenol"]),
    ("369", &["Geranyl Acetate", "GERANYL ACETATE"]),
    ("370", &["Isoeugenyl Acetate", "Acetyl Isoeugenol"]),
    ("371", &["Pinene", "Alpha-Pinene", "Beta-Pinene", "Alpha-Pinenes"]),
];

#[test]
fn every_2023_1545_entry_is_in_the_fragrance_allergens_family_by_each_of_its_names() {
    let kb = KnowledgeBase::bundled();
    let family = kb.expand("fragrance-allergens").expect("a family");
    let mut missing = Vec::new();
    for (entry, names) in ENTRIES_2023_1545 {
        let mut ids = BTreeSet::new();
        for name in *names {
            match kb.resolve(name) {
                Some(i) if family.contains(&i.id) => {
                    assert!(
                        i.allergen_lists.iter().any(|l| l == "eu-2023"),
                        "entry {entry}: {name} ({}) is marked eu-2023",
                        i.id
                    );
                    assert!(
                        i.sources.iter().any(|s| s.key == "eu-2023-1545"),
                        "entry {entry}: {} cites the regulation",
                        i.id
                    );
                    ids.insert(i.id.clone());
                }
                Some(i) => missing.push(format!("entry {entry}: {name} resolves to {}, not in the family", i.id)),
                None => missing.push(format!("entry {entry}: {name} does not resolve")),
            }
        }
        assert!(!ids.is_empty(), "entry {entry}");
    }
    assert!(missing.is_empty(), "{missing:#?}");
}

#[test]
fn the_26_of_2003_are_still_there_and_the_counts_add_up() {
    let kb = KnowledgeBase::bundled();
    let on = |list: &str| kb.all().iter().filter(|i| i.allergen_lists.iter().any(|l| l == list)).count();
    assert_eq!(on("eu-2003"), 26);
    assert!(on("eu-2023") >= 90, "{}", on("eu-2023"));
    let family = kb.expand("fragrance-allergens").unwrap();
    assert_eq!(family.len(), on("eu-2003") + on("eu-2023"), "no row is on both lists");
}

#[test]
fn materials_the_annex_does_not_name_stay_out() {
    let kb = KnowledgeBase::bundled();
    let family = kb.expand("fragrance-allergens").unwrap();
    for name in [
        // Another species than the annex's jasmines.
        "Jasminum Sambac (Jasmine) Flower Extract",
        // A different molecule from entry 339 (Polysantol, not Ebanol).
        "Trimethylcyclopentenyl Dimethylisopentenol",
        // Bulb extracts are not the narcissus absolutes of entry 363.
        "Narcissus Tazetta Bulb Extract",
        // Seed and fruit oils of roses are not the flower oils of entry 366.
        "Rosa Moschata Seed Oil",
        "Rosa Canina Fruit Oil",
        "Melaleuca Alternifolia (Tea Tree) Leaf Oil",
        // Marked by mistake in an earlier version; on none of the annex transcriptions.
        "Hexyl Salicylate",
        "Cinnamomum Zeylanicum Leaf Oil",
    ] {
        if let Some(i) = kb.resolve(name) {
            assert!(!family.contains(&i.id), "{name} ({}) is not on the EU lists", i.id);
        }
    }
}
