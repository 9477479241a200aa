//! Shared vocabulary of every Dermis domain.
//!
//! # Layout
//! - [`problem`]: RFC 9457 `application/problem+json` errors with stable `type` URIs. Every error
//!   that leaves the process goes through [`Problem`].
//! - [`extract`]: request extractors ([`ApiJson`], [`ApiQuery`], [`ApiPath`]) whose rejections are
//!   problems that name the offending field, never a 5xx.
//! - [`page`]: cursor pagination ([`Cursor`], [`Limit`], [`Page`]).
//! - [`ids`] and [`clock`]: identifiers and time as the domains store them.
//! - [`patch`]: JSON merge-patch fields (absent / `null` / value).
//! - [`process`]: settings of the process (transparent huge pages off).
//!
//! This crate owns no tables and no routes; it must not depend on any domain.

pub mod clock;
pub mod extract;
pub mod ids;
pub mod page;
pub mod patch;
pub mod problem;
pub mod process;

pub use extract::{ApiJson, ApiJsonBytes, ApiPath, ApiQuery, IdempotencyKey, IfMatch, etag};
pub use page::{Cursor, Limit, Page};
pub use problem::{FieldError, Problem, ProblemKind};
