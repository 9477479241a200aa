//! The serving pipeline in process, without HTTP: the whole Sephora catalog, the 10-core training
//! split as `Product Reviewed` events, the model trained as a node trains it, then recommendation
//! requests for random customers (with a history from the split, and new ones with a random
//! declared profile), one thread. Prints the time per request (p50, p99) and the retrain time.
//!
//!     cargo run --release -p dermis-recommend --example serve_bench -- PRODUCT_INFO TRAIN [N]

use std::sync::Arc;
use std::time::Instant;

use dermis_catalog::Catalog;
use dermis_events::message::{Kind, Message};
use dermis_recommend::content::{ContentProfile, read_catalog};
use dermis_recommend::safety::{CustomerSafety, Safety};
use dermis_recommend::serving::live::LiveInteractions;
use dermis_recommend::serving::products::CatalogView;
use dermis_recommend::serving::{Context, Engine, EngineConfig, Request, Subject};
use dermis_store::testing::TestDb;
use rand::{Rng, SeedableRng};
use serde_json::json;

fn percentiles(mut v: Vec<f64>) -> String {
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    format!("p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms", at(0.5), at(0.99), at(1.0))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() >= 3, "usage: serve_bench PRODUCT_INFO TRAIN [N]");
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5000);
    let t = Instant::now();
    let (products, _) = read_catalog(args[1].as_ref(), false)?;
    let rows = dermis_recommend::data::read_ratings(args[2].as_ref())?;
    eprintln!("{} products, {} interactions read in {:.1} s", products.len(), rows.len(), t.elapsed().as_secs_f64());

    let db = TestDb::sqlite(&[dermis_store::MIGRATIONS, dermis_events::MIGRATIONS]).await;
    let safety = Arc::new(Safety::bundled());
    let view = CatalogView::new(Catalog::new(db.db().clone()), safety.clone());
    let priced: Vec<_> =
        products.iter().enumerate().map(|(i, p)| (p.clone(), Some(1000 + (i as i64 % 60) * 100))).collect();
    let t = Instant::now();
    view.load_products(&priced);
    eprintln!("catalog view built in {:.2} s", t.elapsed().as_secs_f64());
    let live = LiveInteractions::new(db.db().clone(), dermis_events::Pseudonyms::with_key(b"bench"), "n", None);
    let messages: Vec<Message> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| Message {
            message_id: format!("m{i}"),
            kind: Kind::Track,
            event: Some("Product Reviewed".into()),
            user_id: Some(r.user.clone()),
            anonymous_id: None,
            timestamp_ms: 1_700_000_000_000 + i as i64,
            received_at_ms: 1_700_000_000_000 + i as i64,
            payload: json!({"properties": {"product_id": r.item, "rating": r.rating}}),
        })
        .collect();
    live.apply_messages(messages.iter().map(|m| ("wk", m)));
    let engine = Engine::new(view, live.clone(), safety.clone(), EngineConfig::default());
    let t = Instant::now();
    let report = engine.train(1_800_000_000_000).await?.expect("trained");
    println!(
        "first training: {} on {} interactions in {:.2} s (wall {:.2} s; EASE's λ tuned)",
        report.model,
        report.interactions,
        report.seconds,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let report = engine.train(1_800_000_000_000).await?.expect("trained");
    println!("retrain: {} in {:.2} s (wall {:.2} s; λ kept)", report.model, report.seconds, t.elapsed().as_secs_f64());

    let users: Vec<String> = {
        let mut u: Vec<String> = rows.iter().map(|r| r.user.clone()).collect();
        u.sort();
        u.dedup();
        u
    };
    let allergens = ["linalool", "limonene", "fragrance", "parabens", "citronellol", "lanolin", "niacinamide"];
    let skin = ["dry", "oily", "combination", "normal", "sensitive"];
    let concerns = ["acne", "hyperpigmentation", "redness", "dryness", "aging", "dullness", "pores", "sensitivity"];
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let kb = safety.kb();
    for history in [true, false] {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let allergies: Vec<String> = if rng.gen_bool(0.3) {
                (0..rng.gen_range(1..4)).map(|_| allergens[rng.gen_range(0..allergens.len())].to_owned()).collect()
            } else {
                Vec::new()
            };
            let st = skin[rng.gen_range(0..skin.len())];
            let cs: Vec<String> =
                (0..rng.gen_range(0..3)).map(|_| concerns[rng.gen_range(0..concerns.len())].to_owned()).collect();
            let pregnant = rng.gen_bool(0.1);
            let pseudonyms =
                if history { vec![live.pseudonym(&users[rng.gen_range(0..users.len())])] } else { Vec::new() };
            let subject = Subject {
                user_id: None,
                customer_id: Some("cus_x".into()),
                safety: CustomerSafety::from_answers(Some(st), &cs, &allergies, &[], pregnant, kb),
                content: ContentProfile {
                    skin_type: Some(st.into()),
                    concerns: cs.clone(),
                    sensitive: st == "sensitive",
                },
                pseudonyms,
                personalized: true,
                unknown_allergies: Vec::new(),
            };
            let req = Request {
                k: 10,
                placement: None,
                explain: false,
                filter: None,
                exclude: Vec::new(),
                shown: Default::default(),
                context: Context { now_ms: 1_800_000_000_000, ..Context::default() },
                blend: None,
                rerank: None,
            };
            let t = Instant::now();
            let r = engine.recommend(&subject, &req);
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(r.items.len(), 10);
        }
        let total: f64 = times.iter().sum();
        println!(
            "{} customers: {n} requests, {} ({:.0} requests/s on one thread)",
            if history { "with a history" } else { "new" },
            percentiles(times),
            n as f64 / (total / 1000.0)
        );
    }
    Ok(())
}
