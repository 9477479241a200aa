//! What the models must do whatever their quality: recover obvious structure, never recommend
//! what the customer already has.

mod common;

use dermis_recommend::als::AlsConfig;
use dermis_recommend::ease::{Ease, EaseConfig};
use dermis_recommend::hybrid::HybridConfig;
use dermis_recommend::knn::ItemKnnConfig;
use dermis_recommend::{History, InteractionsBuilder, ModelKind, Settings, Signal, SignalWeights, TestSet, evaluate};

/// Settings small enough for a debug build.
fn small() -> Settings {
    let als = AlsConfig { factors: 8, iterations: 4, ..AlsConfig::default() };
    let ease = EaseConfig { tune: Some(vec![5.0, 50.0]), ..EaseConfig::default() };
    let knn = ItemKnnConfig { neighbours: 20, shrink: 1.0 };
    Settings {
        knn: knn.clone(),
        ease: ease.clone(),
        als: als.clone(),
        hybrid: HybridConfig { knn, ease, als, candidates: 10, ..HybridConfig::default() },
        ..Settings::default()
    }
}

#[test]
fn ease_recovers_an_obvious_co_occurrence() {
    // Cleanser C and toner T are always bought together; serum S goes with nothing in
    // particular. A customer with only the cleanser should be shown the toner first.
    let mut b = InteractionsBuilder::new(SignalWeights::default());
    let review = Signal::Review { rating: 5.0 };
    for u in 0..30 {
        let user = format!("u{u}");
        b.add(&user, "C", review);
        b.add(&user, "T", review);
        if u % 3 == 0 {
            b.add(&user, "S", review);
        }
        b.add(&user, &format!("x{}", u % 7), review);
    }
    // S is more popular than T overall: popularity alone would get it wrong.
    for u in 0..40 {
        b.add(&format!("s{u}"), "S", review);
        b.add(&format!("s{u}"), &format!("x{}", u % 7), review);
    }
    b.add("newcomer", "C", review);
    let data = b.build();
    let model = Ease::fit_lambda(&data, 10.0).unwrap();
    let (c, t, s) = (data.items().get("C").unwrap(), data.items().get("T").unwrap(), data.items().get("S").unwrap());
    assert!(model.weight(c, t) > 0.3, "B[C,T] = {}", model.weight(c, t));
    assert!(model.weight(c, t) > 5.0 * model.weight(c, s).abs());
    let newcomer = data.users().get("newcomer").unwrap();
    use dermis_recommend::Model;
    let top = model.recommend(data.history(newcomer), 1, None);
    assert_eq!(data.items().id(top[0].item), "T");
}

#[test]
fn no_model_recommends_what_the_customer_already_has() {
    let data = common::clustered(120, 40, 4, 8);
    let settings = small();
    for kind in ModelKind::ALL {
        let (model, _) = settings.fit(kind, &data).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        for u in 0..data.n_users() as u32 {
            let h = data.history(u);
            let recs = model.recommend(h, 10, None);
            assert_eq!(recs.len(), 10, "{kind:?}");
            for r in &recs {
                assert!(!h.items.contains(&r.item), "{kind:?} recommended user {u}'s own item {}", r.item);
            }
            let mut items: Vec<u32> = recs.iter().map(|r| r.item).collect();
            items.sort_unstable();
            items.dedup();
            assert_eq!(items.len(), 10, "{kind:?}: repeats");
        }
        // A "not for me" keeps the product out too.
        let mut b = InteractionsBuilder::new(SignalWeights::default());
        b.add("x", "p1", Signal::Review { rating: 5.0 });
        b.add("x", "p2", Signal::NotForMe);
        b.add("y", "p2", Signal::Review { rating: 5.0 });
        b.add("y", "p3", Signal::Review { rating: 5.0 });
        let tiny = b.build();
        let (pop, _) = settings.fit(ModelKind::Popularity, &tiny).unwrap();
        let recs = pop.recommend(tiny.history(tiny.users().get("x").unwrap()), 5, None);
        assert_eq!(recs.iter().map(|r| tiny.items().id(r.item)).collect::<Vec<_>>(), ["p3"]);
    }
}

#[test]
fn collaborative_models_find_the_customers_taste_group() {
    // Each customer's held-out liked products are in their own group: every collaborative model
    // must beat popularity by a wide margin, and the hybrid must not lose to the baselines.
    let data = common::clustered(200, 40, 4, 8);
    let (fit, held) = data.holdout(0.25, 5, 7);
    let test = TestSet::from_holdout(&fit, &held, 4.0);
    assert!(test.users.len() > 150);
    let settings = small();
    let ndcg = |kind| {
        let (model, _) = settings.fit(kind, &fit).unwrap();
        evaluate(model.as_ref(), &fit, &test, 5, None).ndcg
    };
    let pop = ndcg(ModelKind::Popularity);
    for kind in [ModelKind::ItemKnn, ModelKind::Ease, ModelKind::Als, ModelKind::Hybrid] {
        let n = ndcg(kind);
        assert!(n > pop + 0.2, "{kind:?}: {n} vs popularity {pop}");
    }
}

#[test]
fn an_empty_history_scores_without_panicking() {
    let data = common::clustered(60, 20, 2, 5);
    let settings = small();
    for kind in ModelKind::ALL {
        let (model, _) = settings.fit(kind, &data).unwrap();
        assert_eq!(model.recommend(History::EMPTY, 3, None).len(), 3, "{kind:?}");
    }
}

#[test]
fn a_model_handle_swaps_whole_models_while_readers_keep_theirs() {
    use dermis_recommend::{ModelHandle, Trained};
    let data = common::clustered(60, 20, 2, 5);
    let settings = small();
    let (pop, _) = settings.fit(ModelKind::Popularity, &data).unwrap();
    let handle = ModelHandle::new(Trained::new(data.clone(), pop).unwrap());
    let before = handle.current();
    let (ease, _) = settings.fit(ModelKind::Ease, &data).unwrap();
    let old = handle.swap(Trained::new(data, ease).unwrap());
    assert_eq!(before.model.name(), "popularity");
    assert_eq!(old.model.name(), "popularity");
    assert_eq!(handle.current().model.name(), "ease");
    // The reader still answers from the model it took.
    let recs = before.recommend("u1", 3);
    assert_eq!(recs.len(), 3);
    let owned = before.interactions.history(before.interactions.users().get("u1").unwrap());
    // A stranger gets the most popular products, from either model.
    let current = handle.current();
    let top: Vec<&str> = current.recommend("stranger", 2).into_iter().map(|(id, _)| id).collect();
    assert_eq!(top, before.recommend("stranger", 2).into_iter().map(|(id, _)| id).collect::<Vec<_>>());
    assert!(recs.iter().all(|(id, _)| !owned.items.contains(&before.interactions.items().get(id).unwrap())));
}
