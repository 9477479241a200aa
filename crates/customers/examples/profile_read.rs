//! In-process read latency of the online profile projection (the recommendation hot path):
//! 100,000 customers in memory, 1,000,000 reads by customer id or linked user id, each timed.
//! Also times writes through the service on a SQLite file (create + skin profile), each of which
//! updates the projection before it answers, and the read that follows each write.
//!
//! `cargo run -p dermis-customers --example profile_read [CUSTOMERS] [READS]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use dermis_core::clock::{self, rfc3339};
use dermis_customers::Customers;
use dermis_customers::crypto::{Keyring, LocalMasterKey};
use dermis_customers::input::{CreateCustomer, PutSkinProfile};
use dermis_customers::model::{
    Consents, Contact, Customer, Fact, FactSource, HealthFacts, Identifiers, IngredientMatch, IngredientRef, SkinFacts,
    SkinProfile, SkinType,
};
use dermis_customers::projection::ProfileProjection;
use dermis_customers::service::Actor;
use dermis_store::Db;
use dermis_store::db::PoolSize;

fn percentiles(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    println!(
        "{name:<34} n={:>9}  p50={:>9.2?}  p99={:>9.2?}  p99.9={:>9.2?}  max={:>9.2?}",
        v.len(),
        at(0.50),
        at(0.99),
        at(0.999),
        v[v.len() - 1]
    );
}

fn synthetic(i: usize) -> Customer {
    let fact = |value| Fact { value, source: FactSource::Quiz, recorded_at: rfc3339(0) };
    let types = [SkinType::Dry, SkinType::Oily, SkinType::Combination, SkinType::Normal, SkinType::Sensitive];
    let allergies = vec![
        IngredientRef { name: "limonene".into(), matched: IngredientMatch::Ingredient, id: Some("limonene".into()) },
        IngredientRef { name: "parabens".into(), matched: IngredientMatch::Family, id: Some("parabens".into()) },
    ];
    Customer {
        id: format!("cus_{i:026}"),
        version: 1,
        contact: Contact::default(),
        identifiers: Identifiers { user_id: Some(format!("shop-{i}")), ..Default::default() },
        skin_profile: SkinProfile {
            skin: SkinFacts {
                skin_type: Some(fact(types[i % 5])),
                concerns: Some(Fact { value: vec!["acne".into()], source: FactSource::Quiz, recorded_at: rfc3339(0) }),
                ..Default::default()
            },
            health: HealthFacts {
                allergies: Some(Fact { value: allergies, source: FactSource::SelfDeclared, recorded_at: rfc3339(0) }),
                pregnant: Some(Fact {
                    value: i.is_multiple_of(7),
                    source: FactSource::SelfDeclared,
                    recorded_at: rfc3339(0),
                }),
                ..Default::default()
            },
            ..Default::default()
        },
        unknown_allergens: Vec::new(),
        redacted: Vec::new(),
        created_at: rfc3339(0),
        updated_at: rfc3339(0),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let n = args.first().copied().unwrap_or(100_000);
    let reads = args.get(1).copied().unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let db = Db::open_data_dir(dir.path(), PoolSize::default()).await?;
    db.migrate(dermis_store::MIGRATIONS).await?;
    db.migrate(dermis_customers::MIGRATIONS).await?;
    let keys = Keyring::new(Arc::new(LocalMasterKey::from_bytes([5; 32])));
    let loader = Customers::open(db.clone(), keys, clock::system()).await?;
    let projection = Arc::new(ProfileProjection::new(loader.clone()));

    let all_granted = Consents::from_history(String::new(), Vec::new());
    let mut consents = all_granted.clone();
    for c in &mut consents.current {
        c.granted = true;
    }
    let start = Instant::now();
    for i in 0..n {
        projection.put(&synthetic(i), &consents);
    }
    println!("loaded {n} profiles in {:.2?}", start.elapsed());

    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut times = Vec::with_capacity(reads);
    let mut found = 0usize;
    let wall = Instant::now();
    for r in 0..reads {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = (x % n as u64) as usize;
        let key = if r.is_multiple_of(2) { format!("cus_{i:026}") } else { format!("shop-{i}") };
        let t = Instant::now();
        let p = projection.get(&key);
        times.push(t.elapsed());
        found += usize::from(p.is_some_and(|p| !p.allergy_ids.is_empty()));
    }
    let wall = wall.elapsed();
    assert_eq!(found, reads, "every read finds its profile");
    percentiles("projection read (id or user id)", times);
    println!("  {:.0} reads/s on one thread (key formatting included)", reads as f64 / wall.as_secs_f64());

    // Writes through the service, with the projection attached (read-your-writes).
    let service = loader.with_projection(projection.clone());
    let actor = Actor { id: "bench".into(), role: "admin".into() };
    let (mut creates, mut puts, mut after) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..300 {
        let body: CreateCustomer = serde_json::from_value(serde_json::json!({
            "email": format!("bench{i}@example.com"), "user_id": format!("bench-{i}"),
            "consents": [{"purpose": "health_data", "granted": true, "text_version": "v1"}],
        }))?;
        let t = Instant::now();
        let made =
            service.create(None, body.parse(clock::now_ms()).map_err(|p| anyhow::anyhow!(p.detail))?, &actor).await?;
        creates.push(t.elapsed());
        let skin: PutSkinProfile =
            serde_json::from_value(serde_json::json!({"skin_type": "oily", "allergies": ["fragrance", "limonene"]}))?;
        let t = Instant::now();
        service.put_skin_profile(&made.value.id, skin.parse().map_err(|p| anyhow::anyhow!(p.detail))?, None).await?;
        puts.push(t.elapsed());
        let t = Instant::now();
        let p = projection.get(&made.value.id).expect("read-your-writes");
        after.push(t.elapsed());
        assert_eq!(p.skin_type, Some(SkinType::Oily));
    }
    percentiles("service create (SQLite, sealed)", creates);
    percentiles("service skin-profile put (SQLite)", puts);
    percentiles("projection read after a write", after);
    Ok(())
}
