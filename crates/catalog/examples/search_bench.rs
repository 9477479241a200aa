//! Search over the real Sephora catalog: index build time and size, and the latency of each kind
//! of query through the index and through SQL, with a product read as the baseline. Each search
//! is timed as the API answers it: the search and the serialization of its page.
//!
//! ```sh
//! cargo run -p dermis-catalog --release --example search_bench -- [PRODUCT_INFO_CSV_GZ] [DATA_DIR]
//! ```
//!
//! The data dir (default: a temporary one) keeps the imported catalog between runs; `DERMIS_BENCH_URL`
//! names another store instead (`postgres://...`, imported once). `ITER` sets the searches per
//! query (default 2,000); `SHOW=1` prints the first results of the text queries. When the judged
//! queries of `crates/catalog/tests/relevance/judgements.json` are there, it also prints their
//! NDCG@10 through the index (the formula of `scripts/relevance.py`). `ONLY=QUERY` times that one
//! query and nothing else (for a profiler).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dermis_catalog::index::SearchIndex;
use dermis_catalog::input::ListProducts;
use dermis_catalog::search::SearchFilter;
use dermis_catalog::{Catalog, import};
use dermis_core::page::Limit;
use dermis_store::Db;
use dermis_store::db::PoolSize;

const QUERIES: &[(&str, &str)] = &[
    ("text", "q=vitamin c&limit=50"),
    ("text 3 words", "q=vitamin c serum&limit=50"),
    ("text typo", "q=hyaluronc acid&limit=50"),
    ("text prefix", "q=moistur&limit=50"),
    ("text broad prefix", "q=cr&limit=50"),
    ("text + filters", "q=cream&category=Skincare&fragrance_free=true&limit=50"),
    (
        "filters",
        "routine_step=moisturizer&fragrance_free=true&skin_type=dry&non_comedogenic=true&exclude_ingredients=linalool,limonene&limit=50",
    ),
    ("family exclusion", "category=Skincare&exclude_ingredients=fragrance,parabens,drying-alcohols&limit=50"),
    ("facets", "category=Skincare&facets=true&limit=20"),
    ("facets + text", "q=serum&facets=true&limit=20"),
    ("everything, facets", "facets=true&limit=50"),
];

fn parse(query: &str) -> (SearchFilter, Limit, bool) {
    let mut q = ListProducts::default();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = v.to_owned();
        match k {
            "q" => q.q = Some(v),
            "category" => q.category = Some(v),
            "routine_step" => q.routine_step = Some(v),
            "fragrance_free" => q.fragrance_free = Some(v == "true"),
            "non_comedogenic" => q.non_comedogenic = Some(v == "true"),
            "skin_type" => q.skin_type = Some(v),
            "exclude_ingredients" => q.exclude_ingredients = Some(v),
            "facets" => q.facets = Some(v == "true"),
            "limit" => q.limit = Some(Limit::try_from(v.parse::<u32>().unwrap()).unwrap()),
            other => panic!("unknown parameter {other}"),
        }
    }
    (SearchFilter::parse(&q).unwrap(), q.limit.unwrap_or_default(), q.facets.unwrap_or(false))
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| l.to_owned()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn quantiles(mut t: Vec<Duration>) -> (f64, f64, f64) {
    t.sort();
    let at = |q: f64| t[((t.len() as f64 * q) as usize).min(t.len() - 1)].as_secs_f64() * 1000.0;
    (at(0.5), at(0.99), at(1.0))
}

async fn time_search(c: &Catalog, query: &str, iter: usize) -> (f64, f64, f64, usize, usize) {
    let (f, limit, facets) = parse(query);
    let mut times = Vec::with_capacity(iter);
    let (mut items, mut bytes) = (0, 0);
    for _ in 0..iter {
        let t = Instant::now();
        let page = c.search(&f, None, limit, facets).await.unwrap();
        let body = serde_json::to_vec(&page).unwrap();
        times.push(t.elapsed());
        items = page.items.len();
        bytes = body.len();
    }
    let (p50, p99, max) = quantiles(times);
    (p50, p99, max, items, bytes)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let data = args.get(1).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data/sephora-products-and-skincare-reviews/product_info.csv.gz")
    });
    let iter: usize = std::env::var("ITER").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let tmp;
    let db = match std::env::var("DERMIS_BENCH_URL") {
        Ok(url) => Db::connect(&url, PoolSize::default()).await.unwrap(),
        Err(_) => {
            let dir = match args.get(2) {
                Some(d) => PathBuf::from(d),
                None => {
                    tmp = std::env::temp_dir().join(format!("dermis-search-bench-{}", std::process::id()));
                    tmp.clone()
                }
            };
            Db::open_data_dir(&dir, PoolSize::default()).await.unwrap()
        }
    };
    db.migrate(dermis_store::MIGRATIONS).await.unwrap();
    db.migrate(dermis_catalog::MIGRATIONS).await.unwrap();
    let sql = Catalog::new(db.clone());
    let have = sql.search(&parse("limit=1").0, None, Limit::try_from(1).unwrap(), false).await.unwrap();
    if have.items.is_empty() {
        let report = import::import(&db, import::read_file(&data).unwrap(), 500).await.unwrap();
        println!("imported {} products in {:.1} s", report.imported, report.seconds);
    }

    let before = rss_kb();
    let index = SearchIndex::new(sql.clone());
    let t = Instant::now();
    let n = index.rebuild().await.unwrap();
    let build = t.elapsed();
    let stats = index.stats();
    println!(
        "index: {n} products built in {:.0} ms (store read included); RSS +{:.1} MB; {} words, {} postings, listings {:.1} MB, bitmaps {:.1} MB",
        build.as_secs_f64() * 1000.0,
        (rss_kb().saturating_sub(before)) as f64 / 1024.0,
        stats.words,
        stats.postings,
        stats.listing_bytes as f64 / 1e6,
        stats.bitmap_bytes as f64 / 1e6,
    );
    let t = Instant::now();
    let n2 = index.rebuild().await.unwrap();
    println!("second rebuild: {n2} products in {:.0} ms", t.elapsed().as_secs_f64() * 1000.0);
    let t = Instant::now();
    let docs = dermis_catalog::index::doc::load(&db, None).await.unwrap();
    let read = t.elapsed();
    let t = Instant::now();
    let state = dermis_catalog::index::state::State::build(docs);
    println!(
        "  of which: store read {:.0} ms, indexing {:.0} ms; estimated size of the index {:.1} MB",
        read.as_secs_f64() * 1000.0,
        t.elapsed().as_secs_f64() * 1000.0,
        state.stats().approx_bytes as f64 / 1e6
    );
    drop(state);
    let indexed = sql.clone().with_index(index.clone());
    if let Ok(only) = std::env::var("ONLY") {
        // One query in a loop (for a profiler).
        let (p50, p99, max, items, bytes) = time_search(&indexed, &only, iter).await;
        println!("{only}: p50 {p50:.3} ms, p99 {p99:.3} ms, max {max:.3} ms, {items} items, {bytes} bytes");
        return;
    }

    // Baseline: one product read and its serialization, as GET /v1/products/{id} does.
    let id = have_first(&sql).await;
    let mut times = Vec::new();
    for _ in 0..iter {
        let t = Instant::now();
        let p = sql.product(&id).await.unwrap();
        let _ = serde_json::to_vec(&p).unwrap();
        times.push(t.elapsed());
    }
    let (p50, p99, max) = quantiles(times);
    println!("\n{:<22} {:>9} {:>9} {:>9} {:>6} {:>8}", "query", "p50 ms", "p99 ms", "max ms", "items", "bytes");
    println!("{:<22} {p50:>9.3} {p99:>9.3} {max:>9.3}", "product read");
    for (name, q) in QUERIES {
        let (p50, p99, max, items, bytes) = time_search(&indexed, q, iter).await;
        println!("{name:<22} {p50:>9.3} {p99:>9.3} {max:>9.3} {items:>6} {bytes:>8}");
    }
    println!("\nSQL (the same searches without the index):");
    for (name, q) in QUERIES {
        let (p50, p99, max, items, bytes) = time_search(&sql, q, (iter / 20).max(5)).await;
        println!("{name:<22} {p50:>9.3} {p99:>9.3} {max:>9.3} {items:>6} {bytes:>8}");
    }

    let t = Instant::now();
    let ids: Vec<String> = sql
        .search(&parse("limit=200").0, None, Limit::try_from(200).unwrap(), false)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|l| l.id)
        .collect();
    for id in &ids {
        index.refresh(std::slice::from_ref(id)).await.unwrap();
    }
    println!(
        "\nrefresh of one product (after a write): {:.3} ms on average over {}",
        t.elapsed().as_secs_f64() * 1000.0 / ids.len() as f64,
        ids.len()
    );

    relevance(&indexed).await;

    if std::env::var("SHOW").is_ok() {
        for q in ["vitamin c", "vitamin c serum", "hyaluronc", "creme", "retinol", "spf 30", "c", "niacinamide serum"] {
            let f = SearchFilter::parse(&ListProducts { q: Some(q.into()), ..Default::default() }).unwrap();
            let page = indexed.search(&f, None, Limit::try_from(8).unwrap(), false).await.unwrap();
            println!("\n{q}:");
            for l in &page.items {
                let v: serde_json::Value = serde_json::from_str(l.json()).unwrap();
                println!("  {} | {} | {}", v["name"], v["brand"], v["category"]);
            }
        }
    }
}

async fn have_first(c: &Catalog) -> String {
    let page = c.search(&parse("limit=1").0, None, Limit::try_from(1).unwrap(), false).await.unwrap();
    page.items[0].id.clone()
}

/// NDCG@10 of the judged queries, as `scripts/relevance.py` computes it.
async fn relevance(c: &Catalog) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/relevance/judgements.json");
    let Ok(text) = std::fs::read_to_string(&path) else { return };
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let show = std::env::var("SHOW").is_ok();
    let mut sum = 0.0;
    let mut n = 0;
    println!("\nrelevance (NDCG@10):");
    for q in doc["queries"].as_array().unwrap() {
        let query = q["query"].as_str().unwrap();
        let grades: std::collections::HashMap<&str, i64> = q["judgements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| (j["external_id"].as_str().unwrap(), j["grade"].as_i64().unwrap()))
            .collect();
        let f = SearchFilter::parse(&ListProducts { q: Some(query.into()), ..Default::default() }).unwrap();
        let page = c.search(&f, None, Limit::try_from(10).unwrap(), false).await.unwrap();
        let gain = |g: i64| 2f64.powi(g as i32) - 1.0;
        let mut dcg = 0.0;
        let mut lines = Vec::new();
        for (i, l) in page.items.iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(l.json()).unwrap();
            let g = v["external_id"].as_str().and_then(|e| grades.get(e)).copied().unwrap_or(0);
            dcg += gain(g) / ((i + 2) as f64).log2();
            lines.push(format!("    {g} {} | {}", v["name"].as_str().unwrap_or(""), v["brand"].as_str().unwrap_or("")));
        }
        let mut ideal: Vec<i64> = grades.values().copied().collect();
        ideal.sort_unstable_by(|a, b| b.cmp(a));
        let idcg: f64 = ideal.iter().take(10).enumerate().map(|(i, g)| gain(*g) / ((i + 2) as f64).log2()).sum();
        let ndcg = if idcg > 0.0 { dcg / idcg } else { 0.0 };
        println!("  {:<4} {query:<28} {ndcg:.3}", q["id"].as_str().unwrap_or(""));
        if show {
            for l in lines {
                println!("{l}");
            }
        }
        sum += ndcg;
        n += 1;
    }
    println!("  mean {:.3} over {n} queries", sum / n.max(1) as f64);
}
