//! The product catalog: products, their SKUs (variants by shade, size, scent or formula, each
//! with a price, a currency and a barcode), and the catalog's domain events.
//!
//! # Layout
//! - [`model`]: what the catalog stores and returns ([`Product`], [`Sku`], [`Money`]).
//! - [`input`]: requests as clients send them, and their parsing into validated changes
//!   ("parse, don't validate": nothing past this module sees an unchecked string).
//! - [`store`]: the SQL, written once for SQLite and PostgreSQL.
//! - [`service`]: [`Catalog`], the operations (idempotent creates, optimistic concurrency, the
//!   upsert by external id an import writes with), all made of the same steps in a transaction.
//! - [`facts`]: a product's derived facts and the search columns and rows they are stored as.
//! - [`import`]: files (Sephora `product_info` CSV, Dermis JSON/NDJSON) read into validated rows,
//!   written through [`Catalog::upsert_by_external_id`], and the import's report.
//! - [`search`]: search filters and their validation, the SQL search, pages and facets.
//! - [`index`]: the in-memory search index of each node ([`index::SearchIndex`], a projection of
//!   the catalog's events), which answers searches once built.
//! - [`routes`]: `/v1/products` and `/v1/products/{id}/skus`.
//! - [`relay`]: the catalog's outbox as the one relay reads it ([`relay::CatalogOutbox`]).
//!
//! This crate owns the `products`, `skus` and `catalog_outbox` tables. Other domains use
//! [`Catalog`] or the catalog's events, never these tables.

pub mod facts;
pub mod import;
pub mod index;
pub mod input;
pub mod model;
pub mod relay;
pub mod routes;
pub mod search;
pub mod service;
pub mod store;

use dermis_store::{Migration, StoreError};

pub use model::{Money, Product, ProductStatus, Sku, Variant};
pub use service::Catalog;

/// Migrations of the tables this crate owns.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        domain: "catalog",
        version: 1,
        name: "products, skus, outbox",
        sqlite: include_str!("../migrations/0001_catalog.sql"),
        postgres: include_str!("../migrations/0001_catalog.sql"),
    },
    Migration {
        domain: "catalog",
        version: 2,
        name: "ingredient facts and search columns",
        sqlite: include_str!("../migrations/0002_ingredients.sql"),
        postgres: include_str!("../migrations/0002_ingredients.sql"),
    },
    Migration {
        domain: "catalog",
        version: 3,
        name: "outbox publication marks",
        sqlite: include_str!("../migrations/0003_outbox_published.sql"),
        postgres: include_str!("../migrations/0003_outbox_published.sql"),
    },
    Migration {
        domain: "catalog",
        version: 4,
        name: "ingredients each product declares or may name",
        sqlite: include_str!("../migrations/0004_ingredient_ids.sql"),
        postgres: include_str!("../migrations/0004_ingredient_ids.sql"),
    },
];

/// Everything a catalog operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No product with this id.
    #[error("no product {0}")]
    ProductNotFound(String),
    /// No SKU with this id under this product.
    #[error("no SKU {sku_id} under product {product_id}")]
    SkuNotFound {
        /// The product.
        product_id: String,
        /// The SKU.
        sku_id: String,
    },
    /// A unique value is already taken.
    #[error("{field} {value:?} is already used by another {entity}")]
    Duplicate {
        /// Which kind of thing holds it.
        entity: &'static str,
        /// The field.
        field: &'static str,
        /// The value.
        value: String,
    },
    /// `If-Match` named another version than the current one.
    #[error("the {entity} is at version {actual}, not {expected}")]
    VersionMismatch {
        /// Which kind of thing.
        entity: &'static str,
        /// What the client expected.
        expected: i64,
        /// What is stored.
        actual: i64,
    },
    /// A search cursor this listing did not return (a relevance-ranked search continues only
    /// from its own cursors).
    #[error("the cursor is not one this search returned")]
    InvalidCursor,
    /// The idempotency key was used for a different request.
    #[error("the Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
