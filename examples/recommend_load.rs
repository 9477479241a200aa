//! Load for the recommendation benchmark (`scripts/bench-recommend.sh`, issue 14):
//!
//!     recommend_load seed URL TOKEN N USERS_FILE OUT     # N customers (the first with the user ids
//!                                                        # of USERS_FILE), ids written to OUT
//!     recommend_load rate URL TOKEN IDS_FILE RATE SECS [PATH]
//!                                                        # open loop at RATE req/s
//!     recommend_load reflect URL TOKEN WRITE_KEY IDS_FILE N
//!                                                        # event → next response
//!
//! `rate` sends GET `/v1/customers/{id}/recommendations?k=10` (or PATH, e.g. `/healthz`) for
//! random ids at a fixed rate whatever the answers take (open loop: latency counts from when the
//! request was due, so a stall is not hidden) and prints p50/p99/max latency, the rate reached
//! and errors. `reflect` buys a customer's top recommendation and measures, from the moment the
//! event is sent, until a recommendation response no longer lists it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

fn percentiles(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "no samples".into();
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    format!("p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)", at(0.5), at(0.99), at(1.0), v.len())
}

fn lines(path: &str) -> anyhow::Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)?.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect())
}

const CONCERNS: [&str; 8] =
    ["acne", "hyperpigmentation", "redness", "dryness", "aging", "dullness", "pores", "sensitivity"];
const SKIN: [&str; 5] = ["dry", "oily", "combination", "normal", "sensitive"];
const ALLERGENS: [&str; 8] =
    ["linalool", "limonene", "fragrance", "parabens", "citronellol", "geraniol", "lanolin", "niacinamide"];

fn profile(rng: &mut impl Rng) -> Value {
    let mut p = json!({"source": "quiz", "skin_type": SKIN[rng.gen_range(0..SKIN.len())]});
    let n = rng.gen_range(0..3);
    let concerns: Vec<&str> = CONCERNS.choose_multiple(rng, n).copied().collect();
    p["concerns"] = json!(concerns);
    if rng.gen_bool(0.3) {
        let n = rng.gen_range(1..4);
        let a: Vec<&str> = ALLERGENS.choose_multiple(rng, n).copied().collect();
        p["allergies"] = json!(a);
    }
    if rng.gen_bool(0.1) {
        p["pregnant"] = json!(true);
    }
    p
}

async fn seed(url: &str, token: &str, n: usize, users: &str, out: &str) -> anyhow::Result<()> {
    let mut ids = lines(users)?;
    ids.truncate(n);
    let have = ids.len();
    ids.extend((have..n).map(|i| format!("synthetic-{i}")));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let started = Instant::now();
    let ids = Arc::new(ids);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (client, ids, next, url, token) =
            (client.clone(), ids.clone(), next.clone(), url.to_owned(), token.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::from_entropy();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(user) = ids.get(i) else { return anyhow::Ok(()) };
                let body = json!({"user_id": user, "consents": [
                    {"purpose": "personalization", "granted": true, "text_version": "v1", "channel": "web"},
                    {"purpose": "health_data", "granted": true, "text_version": "v1", "channel": "web"}],
                    "skin_profile": profile(&mut rng)});
                let res = client.post(format!("{url}/v1/customers")).bearer_auth(&token).json(&body).send().await?;
                let status = res.status().as_u16();
                anyhow::ensure!(status == 201 || status == 409, "creating {user}: {status} {}", res.text().await?);
                if i % 10_000 == 0 && i > 0 {
                    eprintln!("  {i} customers");
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    std::fs::write(out, ids.join("\n"))?;
    let secs = started.elapsed().as_secs_f64();
    println!("{n} customers created in {secs:.1} s ({:.0}/s); {have} with the user ids of {users}", n as f64 / secs);
    Ok(())
}

async fn rate(url: &str, token: &str, ids: &str, rate: f64, secs: f64, path: Option<&str>) -> anyhow::Result<()> {
    let ids = Arc::new(lines(ids)?);
    anyhow::ensure!(!ids.is_empty(), "no ids");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).pool_max_idle_per_host(256).build()?;
    let total = (rate * secs) as usize;
    let every = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<f64, String>>();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for i in 0..total {
        let due = started + every * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let id = ids[rng.gen_range(0..ids.len())].clone();
        let target = match path {
            Some(p) => format!("{url}{p}"),
            None => format!("{url}/v1/customers/{id}/recommendations?k=10"),
        };
        let (client, tx, token) = (client.clone(), tx.clone(), token.to_owned());
        tokio::spawn(async move {
            let r = match client.get(&target).bearer_auth(&token).send().await {
                Ok(res) if res.status().is_success() => match res.bytes().await {
                    Ok(_) => Ok(due.elapsed().as_secs_f64() * 1000.0),
                    Err(e) => Err(e.to_string()),
                },
                Ok(res) => Err(format!("{} {}", res.status(), res.text().await.unwrap_or_default())),
                Err(e) => Err(e.to_string()),
            };
            let _ = tx.send(r);
        });
    }
    drop(tx);
    let (mut ok, mut errors) = (Vec::with_capacity(total), Vec::new());
    while let Some(r) = rx.recv().await {
        match r {
            Ok(ms) => ok.push(ms),
            Err(e) => errors.push(e),
        }
    }
    let wall = started.elapsed().as_secs_f64();
    println!(
        "{} at {rate:.0}/s for {secs:.0} s: {:.0} req/s answered, {} errors; latency {}",
        path.unwrap_or("recommendations"),
        ok.len() as f64 / wall,
        errors.len(),
        percentiles(ok)
    );
    if let Some(e) = errors.first() {
        println!("  first error: {e}");
    }
    Ok(())
}

async fn reflect(url: &str, token: &str, key: &str, ids: &str, n: usize) -> anyhow::Result<()> {
    let ids = lines(ids)?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut samples = Vec::with_capacity(n);
    let run = std::process::id();
    for i in 0..n {
        let id = &ids[rng.gen_range(0..ids.len())];
        let recs = format!("{url}/v1/customers/{id}/recommendations?k=10");
        let before: Value = client.get(&recs).bearer_auth(token).send().await?.json().await?;
        let Some(top) = before["items"][0]["product_id"].as_str().map(str::to_owned) else { continue };
        let event = json!({"userId": id, "event": "Order Completed", "messageId": format!("reflect-{run}-{i}"),
            "properties": {"order_id": format!("reflect-{run}-{i}"), "products": [{"product_id": top, "price": 10, "quantity": 1}]}});
        let started = Instant::now();
        let res = client.post(format!("{url}/v1/track")).basic_auth(key, Some("")).json(&event).send().await?;
        anyhow::ensure!(res.status() == 200, "ingestion answered {}", res.status());
        loop {
            let after: Value = client.get(&recs).bearer_auth(token).send().await?.json().await?;
            let listed = after["items"].as_array().is_some_and(|a| a.iter().any(|x| x["product_id"] == top.as_str()));
            if !listed {
                break;
            }
            anyhow::ensure!(started.elapsed() < Duration::from_secs(10), "purchase {i} not reflected after 10 s");
        }
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    println!("purchase → next response without it: {}", percentiles(samples));
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize| {
        a.get(i).map(String::as_str).ok_or_else(|| anyhow::anyhow!("missing argument {i}; see the file's doc"))
    };
    match a.get(1).map(String::as_str) {
        Some("seed") => seed(arg(2)?, arg(3)?, arg(4)?.parse()?, arg(5)?, arg(6)?).await,
        Some("rate") => {
            rate(arg(2)?, arg(3)?, arg(4)?, arg(5)?.parse()?, arg(6)?.parse()?, a.get(7).map(String::as_str)).await
        }
        Some("reflect") => reflect(arg(2)?, arg(3)?, arg(4)?, arg(5)?, arg(6)?.parse()?).await,
        _ => anyhow::bail!("usage: recommend_load seed|rate|reflect ... (see the file's doc)"),
    }
}
