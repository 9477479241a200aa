//! `dermis eval` and `dermis recommend-batch`: the recommendation engine offline
//! (`dermis-recommend`), on interaction files, without a database.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use dermis_recommend::eval::{Comparison, table};
use dermis_recommend::hybrid::{FEATURES, HybridConfig};
use dermis_recommend::{Fit, ModelKind, Settings, SignalWeights, TestSet, batch, data, evaluate};

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
/// by part).
pub(super) fn eval(
    train: &[PathBuf],
    test: &Path,
    models: &[String],
    k: usize,
    review_weights: Option<&str>,
) -> anyhow::Result<()> {
    anyhow::ensure!((1..=1000).contains(&k), "--k must be from 1 to 1000");
    let kinds = kinds(models)?;
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
    let settings = Settings::default();
    let mut results = Vec::new();
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
        // No safety layer yet: no check is given, and the column says n/a.
        let metrics = evaluate(model.as_ref(), &data, &test, k, None);
        results.push(Comparison { model: kind.as_str(), metrics, fit_time, eval_time: t.elapsed() });
    }
    println!("\n{}", table(&results));
    if let Some((report, w)) = hybrid_report {
        print_hybrid(&settings.hybrid, &report, &w);
    }
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
