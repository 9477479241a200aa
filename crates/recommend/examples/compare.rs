//! Development loop for the models: `cargo run --release -p dermis-recommend --example compare
//! -- TRAIN TEST|holdout [MODEL,...]` (the `dermis eval` command is the supported way).
//! `holdout` evaluates on 20% of each training history held out with its own seed, so model
//! choices are made without looking at the validation file. Overrides for experiments:
//! `ALS_F`, `ALS_REG`, `ALS_ALPHA`, `ALS_IT`, `HYB_CAND` (candidates per base model) and
//! `REVIEW_W` (review weights by star, `w1,...,w5`).

use std::path::PathBuf;
use std::time::Instant;

use dermis_recommend::eval::{Comparison, table};
use dermis_recommend::{Fit, ModelKind, Settings, SignalWeights, TestSet, data, evaluate};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [train, test, rest @ ..] = args.as_slice() else {
        return Err("usage: compare TRAIN TEST [MODEL,...]".into());
    };
    let weights = match std::env::var("REVIEW_W") {
        Ok(w) => SignalWeights::default().with_review_weights(&w)?,
        Err(_) => SignalWeights::default(),
    };
    let data = data::load_interactions(&[PathBuf::from(train)], &weights)?;
    // `holdout` instead of a test file: develop on a part of the training data held out with
    // another seed than the models' own tuning split, never on the validation file.
    let (data, test) = if test == "holdout" {
        let (fit, held) = data.holdout(0.2, 5, 99);
        let test = TestSet::from_holdout(&fit, &held, 4.0);
        (fit, test)
    } else {
        let rows = data::read_ratings(&PathBuf::from(test))?;
        let test = TestSet::from_rows(&data, &rows, 4.0);
        (data, test)
    };
    let kinds: Vec<ModelKind> = match rest.first() {
        Some(list) => list.split(',').map(ModelKind::parse).collect::<Result<_, _>>()?,
        None => ModelKind::ALL.to_vec(),
    };
    let mut settings = Settings::default();
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f32>().ok());
    if let Some(v) = env("ALS_F") {
        settings.als.factors = v as usize;
    }
    if let Some(v) = env("ALS_REG") {
        settings.als.regularization = v;
    }
    if let Some(v) = env("ALS_ALPHA") {
        settings.als.alpha = v;
    }
    if let Some(v) = env("ALS_IT") {
        settings.als.iterations = v as usize;
    }
    settings.hybrid.als = settings.als.clone();
    if let Some(v) = env("HYB_CAND") {
        settings.hybrid.candidates = v as usize;
    }
    let mut out = Vec::new();
    for kind in kinds {
        let (model, fit_time) = if kind == ModelKind::Hybrid {
            let t = Instant::now();
            let h = settings.hybrid.fit(&data)?;
            eprintln!("{:?}\n{:?}", h.report(), h.weights());
            (Box::new(h) as Box<dyn dermis_recommend::Model>, t.elapsed())
        } else {
            settings.fit(kind, &data)?
        };
        let t = Instant::now();
        let metrics = evaluate(model.as_ref(), &data, &test, 10, None);
        out.push(Comparison { model: kind.as_str(), metrics, fit_time, eval_time: t.elapsed() });
        eprintln!("{}", table(&out[out.len() - 1..]));
    }
    println!("{}", table(&out));
    Ok(())
}
