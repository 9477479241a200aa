//! Probabilistic matching (Fellegi–Sunter with EM weights and blocking) on seeded synthetic
//! populations with known duplicates: typos in names, swapped day and month of birth, changed or
//! missing emails, phone typos, moves.

use std::collections::BTreeSet;

use dermis_customers::matching::synthetic::population;
use dermis_customers::matching::{
    BlockKind, Decision, Dob, Field, Level, MatchConfig, MatchingError, Record, all_pairs, candidate_pairs, compare,
    find_matches, jaro_winkler,
};

fn found_true_pairs(
    pop: &dermis_customers::matching::synthetic::Population,
    run: &dermis_customers::matching::MatchRun,
    threshold: f64,
) -> BTreeSet<(String, String)> {
    run.suggestions
        .iter()
        .filter(|s| s.score >= threshold && pop.is_duplicate(&s.a, &s.b))
        .map(|s| (s.a.clone(), s.b.clone()))
        .collect()
}

#[test]
fn jaro_winkler_matches_the_reference_values() {
    assert!((jaro_winkler("martha", "marhta") - 0.9611).abs() < 1e-3);
    assert!((jaro_winkler("dwayne", "duane") - 0.84).abs() < 1e-3);
    assert!((jaro_winkler("dixon", "dicksonx") - 0.8133).abs() < 1e-3);
    assert_eq!(jaro_winkler("anna", "anna"), 1.0);
    assert_eq!(jaro_winkler("", "anna"), 0.0);
    assert!((jaro_winkler("zoë", "zoe") - jaro_winkler("zoa", "zoe")).abs() < 1e-9);
}

#[test]
fn raw_values_are_normalized_and_compared_by_level() {
    let a = Record::normalized(
        "c-1",
        Some(" Anne-Marie "),
        Some("O'Brien"),
        Some("1990-03-07"),
        Some("sw1a 1aa"),
        Some("Anne.OBrien+shop@example.com"),
        Some("+44 7700 900123"),
    );
    assert_eq!(a.first_name.as_deref(), Some("annemarie"));
    assert_eq!(a.last_name.as_deref(), Some("obrien"));
    assert_eq!(a.date_of_birth, Some(Dob { year: 1990, month: 3, day: 7 }));
    assert_eq!(a.postcode.as_deref(), Some("SW1A1AA"));
    assert_eq!(a.email_local.as_deref(), Some("anne.obrien"));
    assert_eq!(a.phone_digits.as_deref(), Some("447700900123"));

    // Typo in the first name, day and month swapped, moved house, no email, phone one digit off.
    let b = Record::normalized(
        "c-2",
        Some("Annemarei"),
        Some("obrien"),
        Some("1990-07-03"),
        Some("M1 1AE"),
        None,
        Some("447700900124"),
    );
    let c = compare(&a, &b);
    assert_eq!(c.level(Field::FirstName), Level::Close);
    assert_eq!(c.level(Field::LastName), Level::Exact);
    assert_eq!(c.level(Field::DateOfBirth), Level::Close);
    assert_eq!(c.level(Field::Postcode), Level::Different);
    assert_eq!(c.level(Field::EmailLocal), Level::Missing);
    assert_eq!(c.level(Field::Phone), Level::Close);

    // An email local part is close only with one typo; a shared name prefix is not enough.
    let with_email = |id: &str, email: &str| Record::normalized(id, None, None, None, None, Some(email), None);
    let close = compare(&with_email("x", "ann.lee82@a.com"), &with_email("y", "ann.le82@b.com"));
    assert_eq!(close.level(Field::EmailLocal), Level::Close);
    let swapped = compare(&with_email("x", "ann.lee82"), &with_email("y", "ann.lee28"));
    assert_eq!(swapped.level(Field::EmailLocal), Level::Close);
    let other = compare(&with_email("x", "collins.jacob814"), &with_email("y", "collins.jacob27"));
    assert_eq!(other.level(Field::EmailLocal), Level::Different);
    assert_eq!(other.level(Field::FirstName), Level::Missing);

    // The same national number with and without the country code is close, not different.
    let national = Record::normalized("c-3", None, None, Some("not a date"), Some(""), None, Some("07700 900123"));
    assert_eq!(national.date_of_birth, None);
    assert_eq!(national.postcode, None);
    assert_eq!(compare(&a, &national).level(Field::Phone), Level::Close);
}

#[test]
fn em_gives_agreement_positive_and_disagreement_negative_weights() {
    let pop = population(4_000, 0.05, 11);
    let run = find_matches(&pop.records, &MatchConfig::default()).unwrap();
    let w = &run.weights;
    assert!(w.converged, "EM did not converge in {} iterations", w.iterations);
    for field in Field::ALL {
        let exact = w.weight(field, Level::Exact);
        let different = w.weight(field, Level::Different);
        assert!(exact > 0.0, "{}: exact weight {exact}", field.as_str());
        assert!(different < 0.0, "{}: different weight {different}", field.as_str());
        assert_eq!(w.weight(field, Level::Missing), 0.0);
    }
    // The estimated match share is near the truth (true pairs over compared pairs).
    let truth = pop.true_pairs.len() as f64 / run.stats.pairs_compared as f64;
    let w_prior = w.candidate_prior;
    assert!((w_prior - truth).abs() < truth * 0.5, "prior {w_prior} vs true share {truth}");
}

#[test]
fn suggestions_reach_recall_and_precision_at_the_review_threshold() {
    let config = MatchConfig::default();
    let pop = population(4_000, 0.05, 11);
    assert!(pop.true_pairs.len() > 150, "{} true pairs", pop.true_pairs.len());
    let run = find_matches(&pop.records, &config).unwrap();
    let q = pop.quality(&run, config.review_threshold);
    assert!(q.recall >= 0.9, "{q:?}");
    assert!(q.precision >= 0.95, "{q:?}");

    // Auto-merge only above the high threshold, and those are (nearly) all true.
    let auto: Vec<_> = run.suggestions.iter().filter(|s| s.decision == Decision::AutoMerge).collect();
    assert!(!auto.is_empty());
    assert!(auto.iter().all(|s| s.score >= config.auto_merge_threshold));
    assert!(
        run.suggestions
            .iter()
            .filter(|s| s.decision == Decision::Review)
            .all(|s| s.score < config.auto_merge_threshold && s.score >= config.review_threshold)
    );
    let auto_q = pop.quality(&run, config.auto_merge_threshold);
    assert!(auto_q.precision >= 0.995, "{auto_q:?}");

    // Suggestions come best first, and each explains its score field by field.
    assert!(run.suggestions.windows(2).all(|w| w[0].score >= w[1].score));
    for s in &run.suggestions {
        assert_eq!(s.evidence.len(), 6);
        let sum: f64 = s.evidence.iter().map(|e| e.weight).sum();
        assert!((sum - s.score).abs() < 1e-9);
        assert!(s.probability > 0.0 && s.probability <= 1.0);
    }
}

#[test]
fn blocking_finds_nearly_all_the_true_pairs_that_all_pairs_finds() {
    let config = MatchConfig::default();
    let pop = population(1_500, 0.05, 5);
    let blocked = find_matches(&pop.records, &config).unwrap();
    let exhaustive = all_pairs(&pop.records, &config).unwrap();
    assert_eq!(exhaustive.stats.pairs_compared, 1_500 * 1_499 / 2);
    assert!(blocked.stats.pairs_compared * 20 < exhaustive.stats.pairs_compared, "{:?}", blocked.stats);

    let by_all = found_true_pairs(&pop, &exhaustive, config.review_threshold);
    let by_blocks = found_true_pairs(&pop, &blocked, config.review_threshold);
    assert!(by_all.len() as f64 >= 0.9 * pop.true_pairs.len() as f64, "{} of {}", by_all.len(), pop.true_pairs.len());
    let kept = by_all.intersection(&by_blocks).count();
    assert!(kept as f64 >= 0.95 * by_all.len() as f64, "blocking kept {kept} of {}", by_all.len());
}

#[test]
fn a_block_over_the_cap_is_skipped_and_reported() {
    // 60 people share a placeholder date of birth (a shop default); two of them are one person.
    let mut records: Vec<Record> = (0..60)
        .map(|i| {
            Record::normalized(
                format!("c{i:02}"),
                Some(&format!("name{}", char::from(b'a' + (i % 26) as u8))),
                Some(&format!("family{}", char::from(b'a' + (i / 3) as u8))),
                Some("1900-01-01"),
                Some(&format!("PC{i:03}")),
                Some(&format!("user{i}@example.com")),
                Some(&format!("4477009{i:05}")),
            )
        })
        .collect();
    let mut twin = records[7].clone();
    twin.id = "c99".into();
    records.push(twin);

    let config = MatchConfig { block_cap: 20, ..MatchConfig::default() };
    let blocking = candidate_pairs(&records, config.block_cap);
    assert_eq!(blocking.skipped.len(), 1, "{:?}", blocking.skipped);
    let skipped = &blocking.skipped[0];
    assert_eq!(skipped.kind, BlockKind::DateOfBirth);
    assert_eq!(skipped.size, 61);
    assert_eq!(skipped.sample_ids, ["c00", "c01", "c02"]);
    // Not quadratic: only the small blocks were expanded, and the twin is still found through them.
    assert!(blocking.pairs.len() < 61 * 60 / 2 / 10, "{} pairs", blocking.pairs.len());
    assert!(blocking.pairs.contains(&(7, 60)));

    let run = find_matches(&records, &config).unwrap();
    assert_eq!(run.stats.skipped_blocks, blocking.skipped);
    assert_eq!(run.stats.pairs_compared, blocking.pairs.len());
}

#[test]
fn runs_are_deterministic_for_a_seed() {
    let config = MatchConfig::default();
    let a = population(2_000, 0.05, 42);
    let b = population(2_000, 0.05, 42);
    assert_eq!(a.records, b.records);
    let run_a = find_matches(&a.records, &config).unwrap();
    let run_b = find_matches(&b.records, &config).unwrap();
    assert_eq!(run_a, run_b);

    let c = population(2_000, 0.05, 43);
    assert_ne!(a.records, c.records);
}

#[test]
fn bad_settings_are_refused_rather_than_run() {
    let pop = population(300, 0.05, 1);
    let small = MatchConfig { all_pairs_limit: 200, ..MatchConfig::default() };
    assert_eq!(
        all_pairs(&pop.records, &small).unwrap_err(),
        MatchingError::TooManyForAllPairs { records: 300, limit: 200 }
    );
    let inverted = MatchConfig { review_threshold: 20.0, auto_merge_threshold: 10.0, ..MatchConfig::default() };
    assert!(matches!(find_matches(&pop.records, &inverted), Err(MatchingError::Thresholds { .. })));
    // Nothing to compare is not an error.
    let run = find_matches(&[], &MatchConfig::default()).unwrap();
    assert!(run.suggestions.is_empty());
    assert_eq!(run.stats.pairs_compared, 0);
}
