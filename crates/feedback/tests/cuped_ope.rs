//! CUPED from real pre-period data and off-policy evaluation from logged propensities, end to
//! end on both backends: events ingested through the event log, exposures logged by the service
//! as `Experiment Viewed` events and counted by the ingestion hook, results and estimates read
//! through the service and through HTTP.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use dermis_auth::jwt::{JwtConfig, JwtVerifier, issue};
use dermis_auth::{ApiKeys, Authenticator, Role};
use dermis_core::clock::{ManualClock, rfc3339};
use dermis_events::Pseudonyms;
use dermis_events::ingest::Ingestor;
use dermis_events::log::{Subject, events_of};
use dermis_experiments::stats::{self, CupedStats, SampleStats};
use dermis_feedback::off_policy::TargetPolicy;
use dermis_feedback::routes::{FeedbackState, router};
use dermis_feedback::service::Results;
use dermis_feedback::{AssignRequest, Definition, Experiments, FeedbackError};
use dermis_store::testing::TestDb;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use secrecy::SecretString;
use serde_json::{Value, json};
use tower::ServiceExt;

const SECRET: &str = "a-test-secret-of-at-least-thirty-two-bytes-0123456789";
const DAY_MS: i64 = 86_400_000;

struct Setup {
    _db: TestDb,
    experiments: Experiments,
    ingestor: Ingestor,
    write_key: String,
    clock: Arc<ManualClock>,
    router: Router,
}

async fn setup(db: TestDb) -> Setup {
    let pseudonyms = Pseudonyms::with_key(b"feedback-test-key");
    let clock = ManualClock::at(dermis_core::clock::now_ms());
    let experiments = Experiments::new(db.db().clone(), clock.clone(), pseudonyms.clone());
    let ingestor =
        Ingestor::new(db.db().clone(), 4, pseudonyms).with_hook(dermis_feedback::hook::hook(experiments.clone()));
    experiments.log_exposures_through(ingestor.clone());
    let write_key = ingestor.write_keys().create("shop").await.unwrap().0.id;
    let jwt =
        JwtVerifier::new(JwtConfig { hs256_secret: Some(SecretString::from(SECRET.to_owned())), ..Default::default() })
            .await
            .unwrap();
    let auth = Arc::new(Authenticator::new(jwt, ApiKeys::new(db.db().clone())));
    let (router, _doc) =
        router().with_state(FeedbackState { experiments: experiments.clone(), auth }).split_for_parts();
    Setup { _db: db, experiments, ingestor, write_key, clock, router }
}

const MIGRATIONS: &[&[dermis_store::Migration]] =
    &[dermis_events::MIGRATIONS, dermis_auth::MIGRATIONS, dermis_feedback::MIGRATIONS];

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::setup(dermis_store::testing::TestDb::sqlite(super::MIGRATIONS).await).await).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(db) = dermis_store::testing::TestDb::postgres(super::MIGRATIONS).await else { return };
                super::$name(super::setup(db).await).await;
            })*
        }
    };
}

both_backends!(
    cuped_narrows_the_interval_with_a_pre_period_that_predicts_the_outcome,
    without_pre_period_data_cuped_says_so,
    off_policy_estimates_of_the_control_cover_its_observed_rate_on_fixed_traffic,
    off_policy_estimates_on_bandit_traffic_use_the_logged_allocation,
);

fn definition(key: &str, allocation: Value) -> Definition {
    serde_json::from_value(
        json!({"key": key, "variants": [{"key": "control", "weight": 0.5}, {"key": "ease", "weight": 0.5}],
        "allocation": allocation}),
    )
    .unwrap()
}

impl Setup {
    async fn ingest(&self, messages: Vec<Value>) {
        for chunk in messages.chunks(500) {
            let r = self.ingestor.ingest_as(self.write_key.clone(), None, json!({"batch": chunk})).await.unwrap();
            assert!(r.rejected.is_empty(), "{} rejected, e.g. {:?}", r.rejected.len(), r.rejected.first());
        }
    }

    async fn assign(&self, key: &str, user: &str) -> usize {
        let request = AssignRequest { user_id: Some(user.to_owned()), log_exposure: true, ..AssignRequest::default() };
        let a = self.experiments.assign(key, &request).await.unwrap();
        assert!(a.in_experiment, "{a:?}");
        a.variant_index.unwrap()
    }

    async fn get(&self, uri: &str) -> (StatusCode, String, Value, String) {
        let token = issue(&SecretString::from(SECRET.to_owned()), Role::Analyst, "ana", None, Duration::from_secs(600))
            .unwrap();
        let req = Request::builder()
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let content_type =
            res.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, content_type, body, text)
    }
}

fn order(user: &str, id: &str, revenue: f64, at: Option<i64>) -> Value {
    let mut m = json!({"type": "track", "event": "Order Completed", "userId": user, "messageId": id,
        "properties": {"order_id": id, "revenue": revenue,
            "products": [{"product_id": "P1", "price": revenue, "quantity": 1}]}});
    if let Some(at) = at {
        m["timestamp"] = json!(rfc3339(at));
    }
    m
}

fn metric<'a>(r: &'a Results, name: &str) -> &'a dermis_feedback::service::Metric {
    r.metrics.iter().find(|m| m.metric == name).unwrap()
}

/// One visitor of the CUPED experiment: their orders before and during it.
struct Visitor {
    variant: usize,
    pre_orders: u32,
    orders: u32,
    revenue_per_order: f64,
}

async fn cuped_narrows_the_interval_with_a_pre_period_that_predicts_the_outcome(s: Setup) {
    let now = dermis_core::clock::now_ms();
    let mut rng = StdRng::seed_from_u64(16);
    // 400 visitors; half ordered 1 to 4 times in the pre-period (10 and 20 days ago, 30 each) and
    // one ordered 40 days ago (outside the 28-day window: it must not count).
    let history: Vec<u32> = (0..400).map(|_| if rng.gen_bool(0.5) { 0 } else { rng.gen_range(1..=4) }).collect();
    let mut pre = Vec::new();
    for (i, k) in history.iter().enumerate() {
        for j in 0..*k {
            let at = now - (10 + 10 * (j as i64 % 2)) * DAY_MS - j as i64 * 1000;
            pre.push(order(&format!("v-{i}"), &format!("pre-{i}-{j}"), 30.0, Some(at)));
        }
    }
    pre.push(order("v-0", "ancient", 500.0, Some(now - 40 * DAY_MS)));
    s.ingest(pre).await;

    s.experiments.create(definition("cuped", json!({"kind": "fixed"}))).await.unwrap();
    s.experiments.start("cuped").await.unwrap();
    let mut visitors = Vec::new();
    for (i, k) in history.iter().enumerate() {
        let variant = s.assign("cuped", &format!("v-{i}")).await;
        // Buyers keep buying (as often as before: a unit's outcome grows over several orders),
        // others seldom; the variant lifts the chance to order and the basket.
        let lift = if variant == 1 { 0.05 } else { 0.0 };
        let p = if *k > 0 { 0.9 + lift } else { 0.05 + lift };
        let orders = if rng.gen_bool(p) { (*k).max(1) } else { 0 };
        visitors.push(Visitor { variant, pre_orders: *k, orders, revenue_per_order: 30.0 + 3.0 * variant as f64 });
    }
    // Some exposure events of the service itself carry the propensity of the fixed split.
    let viewed = events_of(s.experiments.db(), &Subject::User("v-1".into()), None, 100).await.unwrap();
    let exposure = viewed.iter().find(|e| e.message["event"] == "Experiment Viewed").expect("exposure logged");
    assert_eq!(exposure.message["properties"]["propensity"], json!(0.5), "{}", exposure.message);
    let mut outcomes = Vec::new();
    for (i, v) in visitors.iter().enumerate() {
        for j in 0..v.orders {
            outcomes.push(order(&format!("v-{i}"), &format!("in-{i}-{j}"), v.revenue_per_order, None));
        }
    }
    s.ingest(outcomes.clone()).await;
    s.ingest(outcomes).await; // a retry counts nothing twice

    let results = s.experiments.results("cuped").await.unwrap();
    // The same statistics from what this test knows of each visitor, independently of the store.
    let arm = |variant: usize, y: &dyn Fn(&Visitor) -> f64, x: &dyn Fn(&Visitor) -> f64| {
        let units: Vec<&Visitor> = visitors.iter().filter(|v| v.variant == variant).collect();
        let ys: Vec<f64> = units.iter().map(|v| y(v)).collect();
        let xs: Vec<f64> = units.iter().map(|v| x(v)).collect();
        CupedStats {
            post: SampleStats::from_values(&ys),
            pre: SampleStats::from_values(&xs),
            sum_products: xs.iter().zip(&ys).map(|(x, y)| x * y).sum(),
        }
    };
    let converted = |v: &Visitor| if v.orders > 0 { 1.0 } else { 0.0 };
    let revenue = |v: &Visitor| v.orders as f64 * v.revenue_per_order;
    let pre_orders = |v: &Visitor| v.pre_orders as f64;
    let pre_revenue = |v: &Visitor| v.pre_orders as f64 * 30.0;
    for (name, y, x) in [
        ("conversion", &converted as &dyn Fn(&Visitor) -> f64, &pre_orders as &dyn Fn(&Visitor) -> f64),
        ("revenue_per_visitor", &revenue, &pre_revenue),
    ] {
        let m = metric(&results, name);
        let info = m.cuped.as_ref().expect("a covariate");
        assert_eq!(info.units_looked_up, 400, "{info:?}");
        assert_eq!(info.units_with_history as usize, history.iter().filter(|k| **k > 0).count(), "{info:?}");
        assert!(info.unavailable.is_none(), "{info:?}");
        assert!(m.variants[0].cuped.is_none(), "the control has no uplift of its own");
        let plain = m.variants[1].uplift.expect("plain uplift");
        let cuped = m.variants[1].cuped.as_ref().expect("CUPED uplift");
        let expected = stats::cuped_uplift(&arm(0, y, x), &arm(1, y, x), 0.95).unwrap();
        assert!((cuped.uplift.relative - expected.uplift.relative).abs() < 1e-9, "{name}: {cuped:?} {expected:?}");
        assert!((cuped.uplift.ci_low - expected.uplift.ci_low).abs() < 1e-9, "{name}");
        assert!((plain.relative - expected.unadjusted.relative).abs() < 1e-9, "{name}");
        // The pre-period predicts the outcome: the interval is much narrower, around the same effect.
        let (plain_width, cuped_width) = (plain.ci_high - plain.ci_low, cuped.uplift.ci_high - cuped.uplift.ci_low);
        assert!(cuped_width < 0.85 * plain_width, "{name}: CUPED {cuped_width} against plain {plain_width}");
        assert!(cuped.variance_reduction > 0.3, "{name}: {cuped:?}");
        assert!(cuped.theta > 0.0, "{name}: {cuped:?}");
    }
    // Guardrails have no covariate.
    assert!(metric(&results, "return_rate").cuped.is_none());

    // Through HTTP: the JSON's `cuped` and the CSV's columns.
    let (status, _, body, _) = s.get("/v1/experiments/cuped/results").await;
    assert_eq!(status, StatusCode::OK);
    let conversion = body["metrics"].as_array().unwrap().iter().find(|m| m["metric"] == "conversion").unwrap();
    assert!(conversion["variants"][1]["cuped"]["uplift"]["ci_low"].is_f64(), "{conversion}");
    assert!(conversion["variants"][0]["cuped"].is_null());
    let (status, content_type, _, csv) = s.get("/v1/experiments/cuped/results.csv").await;
    assert_eq!((status, content_type.starts_with("text/csv")), (StatusCode::OK, true));
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = csv.lines().find(|l| l.starts_with("conversion,ease,")).unwrap().split(',').collect();
    let column = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    let cuped = metric(&results, "conversion").variants[1].cuped.as_ref().unwrap();
    assert_eq!(column("cuped_ci_low"), format!("{:.6}", cuped.uplift.ci_low), "{csv}");
    assert_eq!(column("cuped_variance_reduction"), format!("{:.6}", cuped.variance_reduction));
}

async fn without_pre_period_data_cuped_says_so(s: Setup) {
    s.experiments.create(definition("fresh", json!({"kind": "fixed"}))).await.unwrap();
    s.experiments.start("fresh").await.unwrap();
    let mut outcomes = Vec::new();
    for i in 0..200 {
        let variant = s.assign("fresh", &format!("new-{i}")).await;
        if i % (3 + variant) == 0 {
            outcomes.push(order(&format!("new-{i}"), &format!("o-{i}"), 25.0, None));
        }
    }
    s.ingest(outcomes).await;
    let results = s.experiments.results("fresh").await.unwrap();
    for name in ["conversion", "revenue_per_visitor", "click_through"] {
        let m = metric(&results, name);
        let info = m.cuped.as_ref().unwrap();
        assert_eq!((info.units_looked_up, info.units_with_history), (200, 0), "{name}: {info:?}");
        assert!(info.unavailable.as_deref().unwrap().contains("no pre-period data"), "{info:?}");
        assert!(m.variants.iter().all(|v| v.cuped.is_none()), "{name}: no invented numbers");
    }
    assert!(metric(&results, "conversion").variants[1].uplift.is_some(), "the plain uplift stays");
    let (_, _, body, _) = s.get("/v1/experiments/fresh/results").await;
    let conversion = body["metrics"].as_array().unwrap().iter().find(|m| m["metric"] == "conversion").unwrap();
    assert!(conversion["variants"][1]["cuped"].is_null(), "{conversion}");
    assert!(conversion["cuped"]["unavailable"].as_str().unwrap().contains("no pre-period data"));
    let (_, _, _, csv) = s.get("/v1/experiments/fresh/results.csv").await;
    let row = csv.lines().find(|l| l.starts_with("conversion,ease,")).unwrap();
    assert!(row.ends_with(",,,,,"), "empty CUPED columns: {row}");
}

/// Runs visitors through `key`: each is assigned, then orders with its variant's chance.
async fn traffic(s: &Setup, key: &str, visitors: usize, rates: [f64; 2], seed: u64, tick_ms: i64) -> [(u64, u64); 2] {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seen = [(0, 0); 2];
    for i in 0..visitors {
        s.clock.advance(tick_ms);
        let user = format!("{key}-{seed}-{i}");
        let variant = s.assign(key, &user).await;
        seen[variant].0 += 1;
        if rng.gen_bool(rates[variant]) {
            seen[variant].1 += 1;
            s.ingest(vec![order(&user, &format!("{key}-o-{i}"), 20.0, None)]).await;
        }
    }
    seen
}

async fn off_policy_estimates_of_the_control_cover_its_observed_rate_on_fixed_traffic(s: Setup) {
    s.experiments.create(definition("split", json!({"kind": "fixed"}))).await.unwrap();
    s.experiments.start("split").await.unwrap();
    let seen = traffic(&s, "split", 400, [0.2, 0.35], 3, 10).await;
    let control_rate = seen[0].1 as f64 / seen[0].0 as f64;
    let report = s.experiments.off_policy("split", &TargetPolicy::Variant("control".into())).await.unwrap();
    assert_eq!((report.units, report.units_without_propensity), (400, 0));
    let conversion = &report.metrics[0];
    assert_eq!(conversion.metric, "conversion");
    assert!((conversion.observed.unwrap() - control_rate).abs() < 1e-12);
    for e in [conversion.ips.unwrap(), conversion.doubly_robust.unwrap()] {
        assert!(e.ci_low <= control_rate && control_rate <= e.ci_high, "{e:?} against {control_rate}");
        assert!(e.ci_high - e.ci_low < 0.2, "{e:?}");
    }
    // Revenue per visitor under "always the variant": 20 per order.
    let ease = s.experiments.off_policy("split", &TargetPolicy::Variant("ease".into())).await.unwrap();
    let rpv = &ease.metrics[1];
    let observed = 20.0 * seen[1].1 as f64 / seen[1].0 as f64;
    let dr = rpv.doubly_robust.unwrap();
    assert!(dr.ci_low <= observed && observed <= dr.ci_high, "{dr:?} against {observed}");

    // Through HTTP, and bad policies as problems.
    let (status, _, body, _) = s.get("/v1/experiments/split/ope?policy=control").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["policy"],
        json!([{"variant": "control", "probability": 1.0}, {"variant": "ease", "probability": 0.0}])
    );
    assert!(body["metrics"][0]["ips"]["ci_low"].is_f64(), "{body}");
    let (status, _, body, _) = s.get("/v1/experiments/split/ope?weights=0.5,0.5").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let logged = body["metrics"][0]["logged_mean"].as_f64().unwrap();
    assert!((body["metrics"][0]["ips"]["value"].as_f64().unwrap() - logged).abs() < 1e-9, "the logging policy itself");
    for (uri, status, field) in [
        ("/v1/experiments/split/ope?policy=nope", 422, Some("policy")),
        ("/v1/experiments/split/ope", 422, Some("policy")),
        ("/v1/experiments/split/ope?weights=0.5,0.6", 422, Some("weights")),
        ("/v1/experiments/split/ope?weights=1", 422, Some("weights")),
        ("/v1/experiments/split/ope?weights=a,b", 422, Some("weights")),
        ("/v1/experiments/split/ope?policy=control&weights=1,0", 422, Some("policy")),
        ("/v1/experiments/none/ope?policy=control", 404, None),
        ("/v1/experiments/split/ope?policy=control&other=1", 400, None),
    ] {
        let (got, content_type, body, _) = s.get(uri).await;
        assert_eq!(got.as_u16(), status, "{uri}: {body}");
        assert_eq!(content_type, "application/problem+json", "{uri}");
        if let Some(field) = field {
            assert_eq!(body["errors"][0]["field"], field, "{uri}: {body}");
        }
    }
    assert!(matches!(
        s.experiments.off_policy("split", &TargetPolicy::Variant("nope".into())).await,
        Err(FeedbackError::Invalid(_))
    ));
}

async fn off_policy_estimates_on_bandit_traffic_use_the_logged_allocation(s: Setup) {
    s.experiments.create(definition("arms", json!({"kind": "bandit", "min_units": 40}))).await.unwrap();
    s.experiments.start("arms").await.unwrap();
    // The split is recomputed at most once a second: a tick of 1.1 s lets every visitor see the
    // bandit's latest allocation.
    let seen = traffic(&s, "arms", 500, [0.3, 0.4], 11, 1_100).await;
    let units = dermis_feedback::store::logged_units(s.experiments.db(), "arms").await.unwrap().0;
    assert_eq!(units.len(), 500);
    let control: BTreeSet<u64> =
        units.iter().filter(|u| u.variant == 0).map(|u| (u.propensity * 1e6).round() as u64).collect();
    assert!(control.len() > 5, "the allocation moved: {control:?}");
    assert!(control.contains(&500_000), "equal during warm-up: {control:?}");
    assert!(units.iter().any(|u| u.variant == 0 && u.propensity < 0.2), "the bandit left the control behind");
    assert!(seen[1].0 > 2 * seen[0].0, "{seen:?}");
    let control_rate = seen[0].1 as f64 / seen[0].0 as f64;
    let report = s.experiments.off_policy("arms", &TargetPolicy::Variant("control".into())).await.unwrap();
    let conversion = &report.metrics[0];
    for e in [conversion.ips.unwrap(), conversion.doubly_robust.unwrap()] {
        assert!(e.ci_low <= control_rate && control_rate <= e.ci_high, "{e:?} against {control_rate}");
        assert!(e.effective_sample_size < 500.0, "{e:?}");
    }
    // The logged exposure carries the allocation the visitor was assigned under.
    let last = events_of(s.experiments.db(), &Subject::User("arms-11-499".into()), None, 10).await.unwrap();
    let exposure = last.iter().find(|e| e.message["event"] == "Experiment Viewed").unwrap();
    let logged = exposure.message["properties"]["propensity"].as_f64().unwrap();
    assert!(logged > 0.0 && logged < 1.0 && logged != 0.5, "{}", exposure.message);
}
