//! The evaluation protocol on examples small enough to work out by hand.

mod common;

use dermis_recommend::eval::{SafetyCount, ranking_metrics};
use dermis_recommend::model::Fit;
use dermis_recommend::popularity::PopularityConfig;
use dermis_recommend::{InteractionsBuilder, RatingRow, Signal, SignalWeights, TestSet, evaluate};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn ndcg_recall_and_hit_of_one_list_match_the_hand_computation() {
    // Ranked 3, 1, 7; relevant 1 and 7 plus one item training never saw.
    // DCG = 1/log2(3) + 1/log2(4); ideal: three hits on top = 1 + 1/log2(3) + 1/log2(4).
    let (ndcg, recall, hit) = ranking_metrics(&[3, 1, 7], &[1, 7], 1, 3);
    let dcg = 1.0 / 3f64.log2() + 0.5;
    assert!(close(ndcg, dcg / (1.0 + dcg)), "{ndcg}");
    assert!(close(recall, 2.0 / 3.0), "{recall}");
    assert!(close(hit, 1.0));
    // Only the first k count: at k = 1 the list is a miss.
    assert_eq!(ranking_metrics(&[3, 1, 7], &[1, 7], 1, 1), (0.0, 0.0, 0.0));
    // A perfect list.
    let (ndcg, recall, hit) = ranking_metrics(&[1, 7, 3], &[1, 7], 0, 3);
    assert!(close(ndcg, 1.0) && close(recall, 1.0) && close(hit, 1.0));
}

#[test]
fn evaluate_follows_the_protocol_on_a_worked_example() {
    // Training: a has p1; b has p1 and p2; c has p1, p2 and p3; d has p4.
    // Popularity: p1 (3) > p2 (2) > p3 (1) = p4 (1), ties to the lower index (p3 first seen).
    let mut b = InteractionsBuilder::new(SignalWeights::default());
    for (u, items) in [("a", &["p1"][..]), ("b", &["p1", "p2"]), ("c", &["p1", "p2", "p3"]), ("d", &["p4"])] {
        for i in items {
            b.add(u, i, Signal::Review { rating: 5.0 });
        }
    }
    let train = b.build();
    let row = |u: &str, i: &str, r: f32| RatingRow { user: u.into(), item: i.into(), rating: r, time: None };
    // Test: a liked p2 (relevant) and p3 (rated 3: not relevant); b liked p4; c liked p9, a
    // product training never saw; d rated p1 2 (no relevant pair: d is not evaluated).
    let rows =
        vec![row("a", "p2", 5.0), row("a", "p3", 3.0), row("b", "p4", 4.0), row("c", "p9", 4.5), row("d", "p1", 2.0)];
    let test = TestSet::from_rows(&train, &rows, 4.0);
    assert_eq!(test.users.len(), 3);
    assert_eq!((test.relevant_rows, test.other_rows), (3, 2));

    let model = PopularityConfig.fit(&train).unwrap();
    let m = evaluate(&model, &train, &test, 2, None);
    // a: top 2 without p1 = [p2, p3]: hit at rank 1, NDCG 1, recall 1.
    // b: top 2 without p1, p2 = [p3, p4]: hit at rank 2: DCG 1/log2(3), IDCG 1.
    // c: top 2 without p1..p3 = [p4]: the relevant p9 is unknown: 0.
    let ndcg = (1.0 + 1.0 / 3f64.log2() + 0.0) / 3.0;
    assert!(close(m.ndcg, ndcg), "{m:?}");
    assert!(close(m.recall, 2.0 / 3.0), "{m:?}");
    assert!(close(m.hit_rate, 2.0 / 3.0), "{m:?}");
    // Recommended: p2, p3, p4 of 4 products.
    assert!(close(m.coverage, 0.75), "{m:?}");
    // No safety check given: nothing checked, reported as n/a.
    assert_eq!(m.safety, SafetyCount::default());
    assert_eq!(m.safety.to_string(), "n/a");

    // With a check that flags p4: b's and c's lists hold it.
    let flag_p4 = |_user: &str, item: &str| item == "p4";
    let m = evaluate(&model, &train, &test, 2, Some(&flag_p4));
    assert_eq!(m.safety, SafetyCount { checks: 5, violations: 2 });
    assert_eq!(m.safety.to_string(), "2/5");
}
