//! Prometheus metrics: requests by route, method and status, a latency histogram, and the
//! database pools. One recorder per process (tests start many apps in one process).

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use dermis_store::Db;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process's recorder, installed on first use.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full("http_request_duration_seconds".into()), LATENCY_BUCKETS)
                .expect("valid buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed already, in which case metrics go there.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Middleware: counts and times every request under its route template (never the raw path,
/// which would make one series per product id).
pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(start.elapsed().as_secs_f64());
    res
}

/// Renders the Prometheus text page, with the database pool gauges refreshed.
pub fn render(db: &Db) -> String {
    let backend = db.backend().name();
    for (pool, stats) in db.pool_stats() {
        let gauge = |state: &'static str, v: u32| {
            metrics::gauge!("db_pool_connections", "backend" => backend, "pool" => pool, "state" => state)
                .set(f64::from(v));
        };
        gauge("open", stats.size);
        gauge("idle", stats.idle);
        gauge("max", stats.max);
    }
    let h = handle();
    h.run_upkeep();
    h.render()
}
