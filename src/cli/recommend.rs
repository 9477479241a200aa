//! `dermis eval` and `dermis recommend-batch`: the recommendation engine offline
//! (`dermis-recommend`), on interaction files, without a database.
//!
//! `dermis eval --catalog FILE [--safety-profiles SEED]` also counts safety violations against
//! random reproducible customer profiles ([`safety_audit`]), before and after the safety layer;
//! `dermis eval --cold-start` runs the cold-start protocol of `dermis_recommend::content::cold_start`.

mod safety_audit;

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use dermis_recommend::content::cold_start::{self, ColdStartConfig};
use dermis_recommend::content::{ContentItem, ContentModel, read_catalog};
use dermis_recommend::eval::{Comparison, SafetyCount, ranking_metrics, table};
use dermis_recommend::hybrid::{FEATURES, HybridConfig};
use dermis_recommend::model::top_k;
use dermis_recommend::safety::{ProductSafetyFacts, Safety};
use dermis_recommend::{
    Fit, History, Interactions, Model, ModelKind, SafetyCheck, Settings, SignalWeights, TestSet, batch, data, evaluate,
};
use safety_audit::{Checker, TestProfile};

/// The review weights by star, from `--review-weights`.
fn weights(review_weights: Option<&str>) -> anyhow::Result<SignalWeights> {
    let w = SignalWeights::default();
    Ok(match review_weights {
        Some(text) => w.with_review_weights(text)?,
        None => w,
    })
}

/// The models named in `--models` (all when empty), in the order given.
fn kinds(names: &[String]) -> anyhow::Result<Vec<ModelKind>> {
    if names.is_empty() {
        return Ok(ModelKind::ALL.to_vec());
    }
    Ok(names.iter().map(|n| ModelKind::parse(n)).collect::<Result<_, _>>()?)
}

/// Fits each model on `train`, evaluates it on `test` by the protocol and prints one
/// table (Markdown), then what the hybrid learned (EASE's λ, the blend's weights, its fit time
/// by part). With `catalog`, every test user gets a safety profile drawn with `safety_seed`
/// ([`safety_audit`]): the table's safety column counts the top-k items of the model's own list
/// that break a rule, and a second table gives the figures after the safety layer.
pub(super) fn eval(
    train: &[PathBuf],
    test: &Path,
    models: &[String],
    k: usize,
    review_weights: Option<&str>,
    catalog: Option<&Path>,
    safety_seed: u64,
) -> anyhow::Result<()> {
    anyhow::ensure!((1..=1000).contains(&k), "--k must be from 1 to 1000");
    let kinds = kinds(models)?;
    let audit = catalog.map(Audit::load).transpose()?;
    let t = Instant::now();
    let data = data::load_interactions(train, &weights(review_weights)?)?;
    let rows = data::read_ratings(test)?;
    let test = TestSet::from_rows(&data, &rows, 4.0);
    let unknown_users = test.users.iter().filter(|u| u.user.is_none()).count();
    let unknown_items: usize = test.users.iter().map(|u| u.unknown_relevant).sum();
    println!(
        "train: {} interactions, {} users, {} products; test: {} rows, {} relevant (rating >= 4) for {} users ({} unknown to train, {} relevant products unknown to train); loaded in {:.2} s",
        data.nnz(),
        data.n_users(),
        data.n_items(),
        rows.len(),
        test.relevant_rows,
        test.users.len(),
        unknown_users,
        unknown_items,
        t.elapsed().as_secs_f64()
    );
    let profiles: Vec<TestProfile> = test.users.iter().map(|u| TestProfile::of(safety_seed, &u.id)).collect();
    if let Some(a) = &audit {
        let n = profiles.len().max(1) as f64;
        println!(
            "safety profiles (seed {safety_seed}): {:.1}% with allergies, {:.1}% pregnant, {:.1}% sensitive skin, {:.1}% with no rule; catalog: {} products",
            profiles.iter().filter(|p| !p.allergies.is_empty()).count() as f64 * 100.0 / n,
            profiles.iter().filter(|p| p.pregnant).count() as f64 * 100.0 / n,
            profiles.iter().filter(|p| p.sensitive).count() as f64 * 100.0 / n,
            profiles.iter().filter(|p| p.is_empty()).count() as f64 * 100.0 / n,
            a.facts.len()
        );
    }
    let by_user: std::collections::HashMap<&str, &TestProfile> =
        test.users.iter().map(|u| u.id.as_str()).zip(&profiles).collect();
    let settings = Settings::default();
    let mut results = Vec::new();
    let mut after = Vec::new();
    let mut hybrid_report = None;
    for kind in kinds {
        let start = Instant::now();
        let model: Box<dyn dermis_recommend::Model> = if kind == ModelKind::Hybrid {
            let h = settings.hybrid.fit(&data)?;
            hybrid_report = Some((h.report().clone(), h.weights().to_vec()));
            Box::new(h)
        } else {
            settings.fit(kind, &data)?.0
        };
        let fit_time = start.elapsed();
        let t = Instant::now();
        // Without a catalog no check is given, and the column says n/a.
        let check = |user: &str, product: &str| {
            audit.as_ref().is_some_and(|a| by_user.get(user).is_some_and(|p| a.checker.violates(p, product)))
        };
        let check: Option<SafetyCheck<'_>> = audit.as_ref().map(|_| &check as SafetyCheck<'_>);
        let metrics = evaluate(model.as_ref(), &data, &test, k, check);
        results.push(Comparison { model: kind.as_str(), metrics, fit_time, eval_time: t.elapsed() });
        if let Some(a) = &audit {
            let t = Instant::now();
            let m = a.after_safety(model.as_ref(), &data, &test, &profiles, k);
            after.push((kind.as_str(), metrics.ndcg, m, t.elapsed()));
        }
    }
    println!("\n{}", table(&results));
    if !after.is_empty() {
        println!(
            "After the safety layer (Safety::bundled().prepare(customer).filter(the model's ranking), then top {k}); violations judged by the independent label checker:\n"
        );
        println!(
            "| model | NDCG@{k} raw | NDCG@{k} after safety | Recall@{k} after | HitRate@{k} after | violations raw top {k} | violations after safety | time |\n|---|---:|---:|---:|---:|---:|---:|---:|"
        );
        for ((name, raw_ndcg, m, time), r) in after.iter().zip(&results) {
            println!(
                "| {name} | {raw_ndcg:.4} | {:.4} | {:.4} | {:.4} | {} | {} | {:.2} s |",
                m.ndcg,
                m.recall,
                m.hit_rate,
                r.metrics.safety,
                m.safety,
                time.as_secs_f64()
            );
        }
    }
    if let Some((report, w)) = hybrid_report {
        print_hybrid(&settings.hybrid, &report, &w);
    }
    Ok(())
}

/// The catalog's safety facts and the independent checker, for `eval --catalog`.
struct Audit {
    safety: Safety,
    /// By external id.
    facts: std::collections::HashMap<String, ProductSafetyFacts>,
    checker: Checker,
}

/// One model's figures after the safety layer.
#[derive(Debug, Clone, Copy, Default)]
struct AfterSafety {
    ndcg: f64,
    recall: f64,
    hit_rate: f64,
    safety: SafetyCount,
}

impl Audit {
    fn load(path: &Path) -> anyhow::Result<Self> {
        let (products, _) = read_catalog(path, false)?;
        anyhow::ensure!(!products.is_empty(), "{}: no product", path.display());
        let safety = Safety::bundled();
        let checker = Checker::new(&safety, &products)?;
        let facts = products.iter().filter_map(|p| p.external_id.clone().map(|e| (e, safety.product(p)))).collect();
        Ok(Audit { safety, facts, checker })
    }

    /// Ranks every product for each test user, keeps what the safety layer allows for their
    /// profile (a product the catalog does not have cannot be checked and is left out), takes
    /// the top `k` and scores it.
    fn after_safety(
        &self,
        model: &dyn Model,
        train: &Interactions,
        test: &TestSet,
        profiles: &[TestProfile],
        k: usize,
    ) -> AfterSafety {
        let facts: Vec<Option<&ProductSafetyFacts>> = train.items().ids().iter().map(|id| self.facts.get(id)).collect();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).max(1);
        let chunk = test.users.len().div_ceil(threads).max(1);
        let parts: Vec<AfterSafety> = std::thread::scope(|s| {
            let handles: Vec<_> = test
                .users
                .chunks(chunk)
                .zip(profiles.chunks(chunk))
                .map(|(users, profiles)| {
                    let facts = &facts;
                    s.spawn(move || {
                        let mut acc = AfterSafety::default();
                        let mut scores = vec![0.0f32; model.n_items()];
                        for (tu, profile) in users.iter().zip(profiles) {
                            let history = tu.user.map_or(History::EMPTY, |u| train.history(u));
                            model.score(history, &mut scores);
                            let order = top_k(&scores, scores.len(), history.items, None);
                            let customer = profile.customer(&self.safety);
                            let prepared = self.safety.prepare(&customer);
                            let mut kept: Vec<u32> = Vec::with_capacity(k);
                            for part in order.chunks(4 * k) {
                                let candidates =
                                    part.iter().filter_map(|s| facts[s.item as usize].map(|f| (s.item, f)));
                                kept.extend(prepared.filter(candidates).iter().map(|s| s.value));
                                if kept.len() >= k {
                                    break;
                                }
                            }
                            kept.truncate(k);
                            let (n, r, h) = ranking_metrics(&kept, &tu.relevant, tu.unknown_relevant, k);
                            acc.ndcg += n;
                            acc.recall += r;
                            acc.hit_rate += h;
                            for &i in &kept {
                                acc.safety.checks += 1;
                                if self.checker.violates(profile, train.items().id(i)) {
                                    acc.safety.violations += 1;
                                }
                            }
                        }
                        acc
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("an evaluation thread panicked")).collect()
        });
        let users = test.users.len().max(1) as f64;
        let mut out = AfterSafety::default();
        for p in parts {
            out.ndcg += p.ndcg / users;
            out.recall += p.recall / users;
            out.hit_rate += p.hit_rate / users;
            out.safety.checks += p.safety.checks;
            out.safety.violations += p.safety.violations;
        }
        out
    }
}

/// `dermis eval --cold-start`: the protocol of `dermis_recommend::content::cold_start` on review
/// files with a `skin_type` column, over the catalog's skin care; prints the split, the blend's
/// tuning and one Markdown table (method × skin type).
pub(super) fn cold_start(reviews: &[PathBuf], catalog: &Path, k: usize) -> anyhow::Result<()> {
    anyhow::ensure!((1..=1000).contains(&k), "--k must be from 1 to 1000");
    anyhow::ensure!(!reviews.is_empty(), "--reviews: give at least one review file");
    let t = Instant::now();
    let (products, rejected) = read_catalog(catalog, true)?;
    anyhow::ensure!(!products.is_empty(), "{}: no skin care product", catalog.display());
    let kb = Safety::bundled().kb();
    let items: Vec<ContentItem> = products.iter().map(|p| ContentItem::from_product(p, kb)).collect();
    let ids: Vec<String> = products.iter().map(|p| p.external_id.clone().unwrap_or_else(|| p.id.clone())).collect();
    let model = ContentModel::new(&items);
    let mut rows = Vec::new();
    for f in reviews {
        rows.extend(cold_start::read_reviews(f)?);
    }
    let config = ColdStartConfig { k, ..ColdStartConfig::default() };
    let report = cold_start::evaluate(&ids, &model, &rows, &config)?;
    println!(
        "catalog: {} skin care products ({} rows rejected by the import); reviews: {} rows, {} used ({} without a skin type, {} off the catalog's skin care); loaded and evaluated in {:.2} s",
        products.len(),
        rejected,
        rows.len(),
        report.rows_used,
        report.rows_without_skin_type,
        report.rows_off_catalog,
        t.elapsed().as_secs_f64()
    );
    println!(
        "reviewers with a skin type: {} ({} fit, {} test by a hash of author_id; {} test reviewers with a review rated >= 4 evaluated); ranked over all {} products from the skin type alone (the data has no concerns)",
        report.reviewers,
        report.fit_reviewers,
        report.test_reviewers,
        report.evaluated,
        products.len()
    );
    let grid: Vec<String> = report.tuning.iter().map(|(w, n)| format!("{w}: {n:.4}")).collect();
    println!(
        "blend = popularity per skin type × (1 + w × content), w by NDCG@{k} over {} fit reviewers ({} folds): {} -> w = {}",
        report.tuning_reviewers,
        config.tuning_folds,
        grid.join(", "),
        report.blend_weight
    );
    println!("\n{}", report.table(k));
    Ok(())
}

fn print_hybrid(config: &HybridConfig, report: &dermis_recommend::hybrid::HybridReport, weights: &[f32]) {
    let grid: Vec<String> = report.ease_grid.iter().map(|(l, n)| format!("{l}: {n:.4}")).collect();
    println!(
        "hybrid: held out {:.0}% of each training history (users with 5+); EASE λ by NDCG@10 there: {} -> λ = {}",
        config.holdout_fraction * 100.0,
        grid.join(", "),
        report.ease_lambda
    );
    let w: Vec<String> = FEATURES.iter().zip(weights).map(|(f, w)| format!("{f} {w:+.3}")).collect();
    println!(
        "hybrid: blend learned on {} held-out customers' {} candidates, {} of them relevant (loss {:.4}): {}",
        report.customers,
        report.candidates,
        report.relevant,
        report.loss,
        w.join(", ")
    );
    let total: f64 = report.timings.iter().map(|(_, d)| d.as_secs_f64()).sum();
    let parts: Vec<String> = report.timings.iter().map(|(p, d)| format!("{p} {:.2} s", d.as_secs_f64())).collect();
    println!("hybrid fit {total:.2} s: {}", parts.join(", "));
}

/// Fits `model` on the interactions and writes `user_id,rank,product_id` for each user of
/// `users` to `out`, never a product the user interacted with and, with `catalog`, only products
/// in it.
pub(super) fn recommend_batch(
    interactions: &[PathBuf],
    catalog: Option<&Path>,
    users: &Path,
    k: usize,
    out: &Path,
    model: &str,
    review_weights: Option<&str>,
) -> anyhow::Result<()> {
    anyhow::ensure!((1..=1000).contains(&k), "--k must be from 1 to 1000");
    let kind = ModelKind::parse(model)?;
    let data = data::load_interactions(interactions, &weights(review_weights)?)?;
    let catalog: Option<HashSet<String>> =
        catalog.map(data::read_catalog_ids).transpose()?.map(|ids| ids.into_iter().collect());
    let users = data::read_user_list(users)?;
    let t = Instant::now();
    let settings = Settings::default();
    let (model, fit_time) = settings.fit(kind, &data)?;
    let popularity = settings.popularity.fit(&data)?;
    let file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = BufWriter::new(file);
    let summary =
        batch::write_recommendations(model.as_ref(), Some(&popularity), &data, &users, k, catalog.as_ref(), &mut w)
            .and_then(|s| w.flush().map(|()| s))
            .with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "{}: fitted in {:.2} s; {} users ({} unknown to the interactions; {} without a positive signal, given the most popular products), {} rows written to {} in {:.2} s",
        kind.as_str(),
        fit_time.as_secs_f64(),
        summary.users,
        summary.unknown_users,
        summary.non_personal,
        summary.rows,
        out.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
