//! Who is calling, and what they may do.
//!
//! # Layout
//! - [`role`]: [`Role`] and [`Principal`], the authenticated caller every handler sees.
//! - [`jwt`]: bearer JWTs, HS256 with the configured secret, and RS256/ES256 against a JWKS (a file
//!   or an OIDC provider's URL), plus [`jwt::issue`] for `dermis token`.
//! - [`api_keys`]: long-lived keys for machine clients (POS, marketplace connectors, services),
//!   hashed at rest with argon2, scoped to a role and optionally a store or channel, revocable.
//! - [`extract`]: the [`Auth`] extractor and [`Policy`] trait, so a handler's signature says who may
//!   call it; answers 401 or 403 as problem+json.
//! - [`routes`]: `/v1/api-keys` (admin only).
//!
//! This crate owns the `api_keys` table. It must never log a token, secret or key.

pub mod api_keys;
pub mod extract;
pub mod jwt;
pub mod role;
pub mod routes;

use dermis_store::Migration;

pub use api_keys::ApiKeys;
pub use extract::{AdminOnly, AnyRole, Auth, Authenticator, Policy};
pub use role::{Credential, Principal, Role};

/// Migrations of the tables this crate owns.
pub const MIGRATIONS: &[Migration] = &[Migration {
    domain: "auth",
    version: 1,
    name: "api keys",
    sqlite: include_str!("../migrations/0001_api_keys.sql"),
    postgres: include_str!("../migrations/0001_api_keys.sql"),
}];

/// Why a caller was not authenticated (always answered 401; the reason goes to the log and, in
/// general terms, to the client).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("missing bearer token")]
    Missing,
    /// The header is not `Bearer <token>`.
    #[error("the Authorization header must be `Bearer <token>`")]
    BadScheme,
    /// A token that does not verify, has expired, or lacks required claims.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// An API key that is unknown, wrong or revoked.
    #[error("invalid or revoked API key")]
    InvalidApiKey,
    /// The key store could not be read.
    #[error(transparent)]
    Store(#[from] dermis_store::StoreError),
}
