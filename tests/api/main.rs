//! Behaviour of Dermis through HTTP: one binary, one isolated store and one random port per test.

mod helpers;

mod audit_cli_test;
mod auth_test;
mod catalog_test;
mod cli_test;
mod connections_test;
mod customer_audit_test;
mod customers_test;
mod demo_test;
mod errors_test;
mod event_pii_test;
mod events_test;
mod experiments_test;
mod inventory_test;
mod kill_test;
mod openapi_test;
mod ops_test;
mod orders_test;
mod placement_variants_test;
mod privacy_test;
mod quizzes_test;
mod recommend_stock_test;
mod recommend_test;
mod retention_test;
mod search_test;
mod shutdown_test;
mod skin_data_test;
