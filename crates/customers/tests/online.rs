//! The profile projection's conformance suite: the same behaviour in memory and in Redis
//! (`DERMIS_TEST_REDIS_URL`; `.ci/run` sets it and requires it): read-your-writes, lookups by user
//! id, consent changes from another node, a new node, erasure. In Redis, nothing readable of a
//! customer is stored, and a node with an empty cache reads what another wrote.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use dermis_bus::Envelope;
use dermis_bus::projection::Projection;
use dermis_customers::Customers;
use dermis_customers::input::PutConsent;
use dermis_customers::model::SkinType;
use dermis_customers::online::RedisProfiles;
use dermis_customers::projection::{OnlineProfile, ProfileProjection};
use dermis_store::testing::TestDb;
use serde_json::json;

/// Where a node keeps the facts.
#[derive(Clone)]
enum Backing {
    Memory,
    Redis { url: String, prefix: String },
}

impl Backing {
    fn redis() -> Option<Self> {
        match std::env::var("DERMIS_TEST_REDIS_URL") {
            Ok(url) if !url.is_empty() => {
                Some(Backing::Redis { url, prefix: format!("t{}", ulid::Ulid::new().to_string().to_lowercase()) })
            }
            _ => {
                assert!(
                    std::env::var("DERMIS_REQUIRE_SERVICES").is_err(),
                    "DERMIS_REQUIRE_SERVICES is set but DERMIS_TEST_REDIS_URL is not"
                );
                eprintln!("skipped: set DERMIS_TEST_REDIS_URL=redis://... to run the Redis variant");
                None
            }
        }
    }

    /// A node's projection (a new cache each time).
    async fn node(&self, loader: &Customers) -> Arc<ProfileProjection> {
        Arc::new(match self {
            Backing::Memory => ProfileProjection::new(loader.clone()),
            Backing::Redis { url, prefix } => ProfileProjection::with_redis(
                loader.clone(),
                RedisProfiles::connect(url, prefix, loader.clone()).await.expect("Redis is reachable"),
            ),
        })
    }

    /// Every value Redis holds under this test's prefix.
    async fn stored(&self) -> Vec<u8> {
        let Backing::Redis { url, prefix } = self else { return Vec::new() };
        let mut conn = ::redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = ::redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(&mut conn).await.unwrap();
        let mut all = Vec::new();
        for k in keys {
            all.extend_from_slice(k.as_bytes());
            let kind: String = ::redis::cmd("TYPE").arg(&k).query_async(&mut conn).await.unwrap();
            let values: Vec<Vec<u8>> = if kind == "hash" {
                ::redis::cmd("HVALS").arg(&k).query_async(&mut conn).await.unwrap()
            } else {
                vec![::redis::cmd("GET").arg(&k).query_async(&mut conn).await.unwrap()]
            };
            for v in values {
                all.extend_from_slice(&v);
            }
        }
        all
    }

    async fn cleanup(&self) {
        if let Backing::Redis { url, prefix } = self {
            let mut conn =
                ::redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> =
                ::redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(&mut conn).await.unwrap();
            if !keys.is_empty() {
                let _: i64 = ::redis::cmd("DEL").arg(keys).query_async(&mut conn).await.unwrap();
            }
        }
    }
}

fn consent(granted: bool) -> dermis_customers::input::NewConsent {
    PutConsent { granted, text_version: "health-v2".into(), channel: Some("web".into()) }.parse("health_data").unwrap()
}

/// Polls until `f` holds (Redis writes land from a queue, within milliseconds).
async fn eventually<F: AsyncFn() -> bool>(what: &str, f: F) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}");
}

async fn lookup(p: &ProfileProjection, reference: &str) -> Option<Arc<OnlineProfile>> {
    p.profile(reference).await.expect("the online store answers")
}

async fn conformance(backing: Backing) {
    let t = TestDb::sqlite(MIGRATIONS).await;
    let db = t.db().clone();
    let loader = customers(&db).await;
    let here_node = backing.node(&loader).await;
    let here = loader.clone().with_projection(here_node.clone());
    let new =
        create(json!({"name": "Ada Lovelace", "email": "ada@example.com", "user_id": "shop-ada"})).parse(NOW).unwrap();
    let made = here.create(None, new, &admin()).await.unwrap().value;
    assert_eq!(here_node.get(&made.id).expect("read-your-writes, no I/O").version, 1);
    here.set_consent(&made.id, consent(true), &admin()).await.unwrap();
    let body = skin(json!({"skin_type": "oily", "allergies": ["fragrance", "zorblax"], "pregnant": true}));
    here.put_skin_profile("shop-ada", body.parse().unwrap(), None).await.unwrap();
    let p = lookup(&here_node, "shop-ada").await.expect("by user id too");
    assert_eq!(p.skin_type, Some(SkinType::Oily));
    assert!(p.pregnant && p.consents.health_data && p.allergy_ids.contains("limonene"));
    assert_eq!(p.unknown_allergens, ["zorblax"]);
    // Sensitivities and a dermatologist's contraindications: resolved, unknown names kept.
    let body = skin(json!({"sensitivities": ["parabens", "glorpweed"]}));
    here.put_skin_profile("shop-ada", body.parse().unwrap(), None).await.unwrap();
    let assessment: dermis_customers::input::RecordAssessment = serde_json::from_value(
        json!({"contraindicated_ingredients": ["retinol", "fragrance", "snake oil"], "clinic_id": "c1"}),
    )
    .unwrap();
    here.put_skin_profile("shop-ada", assessment.parse().unwrap(), None).await.unwrap();
    let p = lookup(&here_node, "shop-ada").await.unwrap();
    assert_eq!(p.unknown_sensitivities, ["glorpweed"], "an unknown sensitivity is kept");
    assert_eq!(p.sensitivity_families, ["parabens"]);
    assert!(p.sensitivity_ids.contains("methylparaben"), "{:?}", p.sensitivity_ids);
    assert!(p.contraindicated_ids.contains("retinol") && p.contraindicated_ids.contains("limonene"));
    assert_eq!(p.contraindicated_families, ["fragrance"]);
    assert_eq!(p.unknown_contraindicated, ["snake oil"]);

    // Another node withdraws the consent: the bus message (an id only) reaches this one.
    let elsewhere = customers(&db).await;
    elsewhere.set_consent(&made.id, consent(false), &admin()).await.unwrap();
    let messages = bus_messages(&db).await;
    here_node.apply(&messages).await.unwrap();
    here_node.apply(&messages).await.unwrap(); // idempotent
    let p = lookup(&here_node, &made.id).await.unwrap();
    assert!(!p.pregnant && p.allergy_ids.is_empty() && !p.consents.health_data);
    assert!(
        p.unknown_sensitivities.is_empty() && p.contraindicated_ids.is_empty() && p.unknown_contraindicated.is_empty()
    );

    // A new node: rebuilt from the store, it holds the same facts.
    let fresh = backing.node(&loader).await;
    fresh.rebuild().await.unwrap();
    assert_eq!(lookup(&fresh, "shop-ada").await.unwrap().as_ref(), p.as_ref());
    if let Backing::Redis { .. } = backing {
        // A node with an empty cache and no rebuild reads Redis; Redis holds nothing readable.
        let cold = backing.node(&loader).await;
        let expected = p.clone();
        eventually("a cold node reads what the others wrote", async || {
            lookup(&cold, "shop-ada").await.is_some_and(|q| q.as_ref() == expected.as_ref())
        })
        .await;
        let raw = backing.stored().await;
        assert!(!raw.is_empty());
        for secret in ["shop-ada", "oily", "zorblax", "limonene", "ada@example.com"] {
            assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} in clear in Redis");
        }
    }

    // An erasure elsewhere reaches every node through the bus message.
    elsewhere.erase(&made.id).await.unwrap();
    let erased = Envelope {
        seq: 99,
        topic: "customers.erased".into(),
        key: made.id.clone(),
        id: "x".into(),
        payload: json!({"customer_id": made.id}).to_string(),
    };
    here_node.apply(std::slice::from_ref(&erased)).await.unwrap();
    assert!(lookup(&here_node, &made.id).await.is_none() && lookup(&here_node, "shop-ada").await.is_none());
    if let Backing::Redis { .. } = backing {
        let cold = backing.node(&loader).await;
        eventually("Redis forgets an erased customer", async || {
            lookup(&cold, &made.id).await.is_none() && lookup(&cold, "shop-ada").await.is_none()
        })
        .await;
        eventually("nothing of the customer stays in Redis", async || backing.stored().await.is_empty()).await;
    }
    backing.cleanup().await;
}

#[tokio::test]
async fn memory_profiles_read_their_writes_follow_the_bus_and_forget_erasures() {
    conformance(Backing::Memory).await;
}

/// The Redis variants (`.ci/run` selects them with `redis::`).
mod redis {
    use super::*;

    #[tokio::test]
    async fn redis_profiles_read_their_writes_follow_the_bus_and_forget_erasures() {
        let Some(backing) = Backing::redis() else { return };
        conformance(backing).await;
    }

    /// An older version never replaces a newer one in Redis, whatever order writes arrive in.
    #[tokio::test]
    async fn redis_keeps_the_newest_version() {
        let Some(backing) = Backing::redis() else { return };
        let Backing::Redis { url, prefix } = backing.clone() else { unreachable!() };
        let t = TestDb::sqlite(MIGRATIONS).await;
        let loader = customers(t.db()).await;
        let new = create(json!({"name": "Bo", "user_id": "shop-bo"})).parse(NOW).unwrap();
        let made = loader.create(None, new, &admin()).await.unwrap().value;
        let redis = RedisProfiles::connect(&url, &prefix, loader.clone()).await.unwrap();
        let v = |version: i64, oily: bool| OnlineProfile {
            customer_id: made.id.clone(),
            version,
            skin_type: Some(if oily { SkinType::Oily } else { SkinType::Dry }),
            ..Default::default()
        };
        redis.put(v(3, true), Some("shop-bo")).await.unwrap();
        redis.put(v(2, false), Some("shop-bo")).await.unwrap();
        let cold = RedisProfiles::connect(&url, &prefix, loader.clone()).await.unwrap();
        let got = cold.get("shop-bo").await.unwrap().unwrap();
        assert_eq!((got.version, got.skin_type), (3, Some(SkinType::Oily)));
        backing.cleanup().await;
    }
}
