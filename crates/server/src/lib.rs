//! The Dermis server: configuration, the assembly of every domain's routes behind one middleware
//! stack, and the operations endpoints.
//!
//! # Layout
//! - [`config`]: layered configuration (defaults → `dermis.toml` → `DERMIS_*`).
//! - [`app`]: [`Application`]: store, migrations, auth, router, listener, graceful shutdown.
//! - [`http`]: the problem+json guarantee for errors produced outside handlers.
//! - [`listen`]: the accept loop: header-read / idle timeouts and a connection cap.
//! - [`metrics`]: Prometheus request metrics and pool gauges.
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs`.
//! - [`openapi`]: the document's frame.
//! - [`personal_data`]: the features domain's part of a customer's export (wired here, where
//!   customers and features meet).
//! - [`admin_audit`]: the layer that records admin actions (API keys, write keys, a customer's
//!   events, dead letters) in the audit log before their handlers run.
//! - [`stock`]: the inventory's stock as the recommendation routes read it (wired here, where
//!   recommendations and inventory meet): `channel` and `store` exclude what is out of stock.
//! - [`background`]: everything that runs beside the HTTP server, named in one place: the one
//!   outbox relay over every domain's registered outbox, the registered projections of the
//!   event stream, housekeeping.
//!
//! This crate owns no tables and decides nothing about the business: handlers live in the
//! domain crates.

pub mod admin_audit;
pub mod app;
pub mod background;
pub mod config;
pub mod demo;
pub mod http;
pub mod listen;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod personal_data;
pub mod placements;
pub mod stock;

pub use app::{Application, shutdown_signal};
pub use config::Config;

/// Installs the log subscriber (`RUST_LOG` wins over the configured filter).
pub fn init_tracing(log: &config::LogConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if log.format == "json" { builder.json().try_init() } else { builder.try_init() };
}
