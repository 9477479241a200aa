//! Probabilistic matching over the stored customers, on both backends: suggestions for review,
//! automatic merges only above the high threshold (and undoable), a dismissed pair never comes
//! back, and an erased customer leaves no suggestion behind.

mod common;

use common::*;
use dermis_customers::CustomersError;
use dermis_customers::matching::MatchConfig;
use dermis_customers::suggestions::MatchRunRequest;
use dermis_store::Db;
use serde_json::json;

async fn add(c: &dermis_customers::Customers, v: serde_json::Value) -> String {
    c.create(None, create(v).parse(NOW).unwrap(), &admin()).await.unwrap().value.id
}

/// A population where two people are entered twice (each email and phone belongs to one
/// customer): one with the same name, date of birth, postcode and email local part and a phone
/// typo, one with a typo in the name and no phone, among strangers.
async fn population(c: &dermis_customers::Customers) -> (String, String, String, String) {
    let addr = |pc: &str| json!({"line1": "1 High St", "city": "Leeds", "postal_code": pc, "country": "GB"});
    let ada1 = add(
        c,
        json!({"name": "Ada Lovelace", "email": "ada.lovelace@example.com", "phone": "+447700900123",
        "date_of_birth": "1985-12-10", "address": addr("LS1 4AP")}),
    )
    .await;
    let ada2 = add(
        c,
        json!({"name": "Ada Lovelace", "email": "ada.lovelace@mail.example", "phone": "+447700900132",
        "date_of_birth": "1985-12-10", "address": addr("LS1 4AP"), "user_id": "shop-ada"}),
    )
    .await;
    let bo1 = add(
        c,
        json!({"name": "Bogdan Kowalski", "date_of_birth": "1990-03-04", "address": addr("LS2 7AA"),
        "phone": "+447700900555"}),
    )
    .await;
    let bo2 =
        add(c, json!({"name": "Bogdan Kowalsky", "date_of_birth": "1990-03-04", "address": addr("LS2 7AA")})).await;
    for i in 0..40 {
        add(
            c,
            json!({"name": format!("Person{} Stranger{}", (b'a' + (i % 26) as u8) as char, i),
            "date_of_birth": format!("19{:02}-0{}-1{}", 50 + i, 1 + i % 9, i % 10),
            "address": addr(&format!("M{} {}AB", i % 7, i)), "phone": format!("+4477009{:05}", 10_000 + i * 37)}),
        )
        .await;
    }
    (ada1, ada2, bo1, bo2)
}

async fn suggests_for_review_and_merges_only_above_the_high_threshold(db: Db) {
    let c = customers(&db).await;
    let (ada1, ada2, bo1, bo2) = population(&c).await;
    // First without merging: both duplicate pairs are suggested, nothing else.
    let (review_only, _) = MatchRunRequest { auto_merge: Some(false), ..Default::default() }.config().unwrap();
    let first = c.run_matching(&review_only, false, "adm-1").await.unwrap();
    assert_eq!(first.customers, 44);
    assert!(first.pairs_compared < 44 * 43 / 2, "blocking compares fewer than all pairs: {first:?}");
    assert!(first.auto_merged.is_empty() && first.new_for_review == 2, "{first:?}");
    let scored = c.match_suggestions("pending", 100).await.unwrap();
    let text = serde_json::to_string(&scored).unwrap();
    assert!(!text.contains("Kowalsk") && !text.contains("1990"), "evidence holds levels and weights, no values");
    let find = |x: &str, y: &str| {
        scored.iter().find(|s| (s.a == x && s.b == y) || (s.a == y && s.b == x)).cloned().expect("pair suggested")
    };
    let (mut high, mut low) = (find(&ada1, &ada2), find(&bo1, &bo2));
    if high.score < low.score {
        std::mem::swap(&mut high, &mut low);
    }
    assert!(high.score > low.score);
    // Then with the high threshold between the two scores: only the higher pair is merged, the
    // older customer staying; the other pair stays for review.
    let config = MatchConfig { auto_merge_threshold: (high.score + low.score) / 2.0, ..review_only };
    let report = c.run_matching(&config, true, "adm-1").await.unwrap();
    assert_eq!(report.auto_merged.len(), 1, "only the pair above the threshold is merged: {report:?}");
    assert_eq!(c.get(&high.b).await.unwrap().id, high.a, "the newer customer answers as the older");
    assert_eq!(c.get(&low.b).await.unwrap().id, low.b, "the pair under the threshold is not merged");
    // A customer merged away is not matched again (with its winner, or anyone).
    let after_merge = c.run_matching(&config, true, "adm-1").await.unwrap();
    assert_eq!(after_merge.customers, 43, "{after_merge:?}");
    assert!(after_merge.auto_merged.is_empty() && after_merge.new_for_review == 0, "{after_merge:?}");
    let pending = c.match_suggestions("pending", 100).await.unwrap();
    assert_eq!(pending.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), [low.id.as_str()]);

    // Dismissed: never suggested again. Merged and undone: not merged again.
    c.dismiss_suggestion(&low.id).await.unwrap();
    assert!(matches!(c.dismiss_suggestion(&low.id).await, Err(CustomersError::NotFound(_))), "decided already");
    c.unmerge(&report.auto_merged[0]).await.unwrap();
    let again = c.run_matching(&config, true, "adm-1").await.unwrap();
    assert!(again.auto_merged.is_empty() && again.new_for_review == 0, "{again:?}");
    assert!(c.match_suggestions("pending", 100).await.unwrap().is_empty());
    assert_eq!(c.get(&high.b).await.unwrap().id, high.b, "the undone merge stays undone");

    // Erasing a customer drops the suggestions naming it.
    c.erase(&low.a).await.unwrap();
    let left = c.match_suggestions("dismissed", 100).await.unwrap();
    assert!(left.iter().all(|s| s.a != low.a && s.b != low.a) && left.is_empty());
}

async fn a_pending_suggestion_can_be_accepted(db: Db) {
    let c = customers(&db).await;
    let (_, _, bo1, bo2) = population(&c).await;
    let strict = MatchConfig { auto_merge_threshold: 1000.0, ..MatchConfig::default() };
    let report = c.run_matching(&strict, true, "adm-1").await.unwrap();
    assert!(report.auto_merged.is_empty());
    let pending = c.match_suggestions("pending", 100).await.unwrap();
    assert!(report.new_for_review >= 2 && pending.len() == report.new_for_review);
    let (lo, hi) = if bo1 < bo2 { (&bo1, &bo2) } else { (&bo2, &bo1) };
    let bo = pending.iter().find(|s| &s.a == lo && &s.b == hi).expect("the typo pair is pending");
    let merge = c.accept_suggestion(&bo.id, "adm-1").await.unwrap();
    assert_eq!((merge.winner.as_str(), merge.loser.as_str()), (bo.a.as_str(), bo.b.as_str()));
    assert!(matches!(c.accept_suggestion(&bo.id, "adm-1").await, Err(CustomersError::NotFound(_))), "decided");
    assert!(matches!(c.accept_suggestion("sug_nope", "adm-1").await, Err(CustomersError::NotFound(_))));
    assert_eq!(c.match_suggestions("merged", 100).await.unwrap().len(), 1);
    assert!(matches!(c.match_suggestions("maybe", 10).await, Err(CustomersError::Invalid { .. })));
}

dermis_store::backend_tests!(MIGRATIONS;
    suggests_for_review_and_merges_only_above_the_high_threshold,
    a_pending_suggestion_can_be_accepted,
);
