//! The [`Auth`] extractor: `Auth<CatalogWrite>` in a handler's signature means "only callers the
//! `CatalogWrite` policy allows reach this code". Missing or bad credentials answer 401, a
//! credential without the right role 403, both as problem+json.

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use dermis_core::{Problem, ProblemKind};

use crate::AuthError;
use crate::api_keys::ApiKeys;
use crate::jwt::JwtVerifier;
use crate::role::Principal;

/// Turns credentials into a [`Principal`].
#[derive(Debug)]
pub struct Authenticator {
    jwt: JwtVerifier,
    keys: ApiKeys,
}

impl Authenticator {
    /// An authenticator over a JWT verifier and an API key store.
    pub fn new(jwt: JwtVerifier, keys: ApiKeys) -> Self {
        Self { jwt, keys }
    }

    /// The API key store.
    pub fn api_keys(&self) -> &ApiKeys {
        &self.keys
    }

    /// The JWT verifier.
    pub fn jwt(&self) -> &JwtVerifier {
        &self.jwt
    }

    /// Authenticates the value of an `Authorization` header.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        let value = authorization.ok_or(AuthError::Missing)?;
        let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::BadScheme)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::BadScheme);
        }
        let token = token.trim();
        if ApiKeys::is_api_key(token) { self.keys.verify(token).await } else { self.jwt.verify(token).await }
    }
}

/// Who may call a handler.
pub trait Policy: Send + Sync + 'static {
    /// Who is allowed, for error messages and the API docs (`admin or merchandiser`).
    const REQUIRES: &'static str;
    /// Whether this caller is allowed.
    fn allows(principal: &Principal) -> bool;
}

/// Declares a [`Policy`] that allows a set of roles.
///
/// ```text
/// dermis_auth::role_policy!(/// Catalog writers.
///     CatalogWrite, "admin or merchandiser", [Admin, Merchandiser]);
/// ```
#[macro_export]
macro_rules! role_policy {
    ($(#[$meta:meta])* $name:ident, $requires:literal, [$($role:ident),+ $(,)?]) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;
        impl $crate::Policy for $name {
            const REQUIRES: &'static str = $requires;
            fn allows(p: &$crate::Principal) -> bool {
                matches!(p.role, $($crate::Role::$role)|+)
            }
        }
    };
}

role_policy!(
    /// Only administrators.
    AdminOnly, "admin", [Admin]
);

/// Any authenticated caller, whatever the role.
#[derive(Debug, Clone, Copy)]
pub struct AnyRole;

impl Policy for AnyRole {
    const REQUIRES: &'static str = "any authenticated role";
    fn allows(_: &Principal) -> bool {
        true
    }
}

/// An authenticated caller that policy `P` allows.
#[derive(Debug, Clone)]
pub struct Auth<P>(pub Principal, pub PhantomData<fn() -> P>);

impl<P> Auth<P> {
    /// The caller.
    pub fn principal(&self) -> &Principal {
        &self.0
    }
}

impl<P, S> FromRequestParts<S> for Auth<P>
where
    P: Policy,
    S: Send + Sync,
    Arc<Authenticator>: FromRef<S>,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let authenticator = Arc::<Authenticator>::from_ref(state);
        let header = match parts.headers.get(AUTHORIZATION) {
            Some(v) => Some(v.to_str().map_err(|_| problem(AuthError::BadScheme))?),
            None => None,
        };
        let principal = authenticator.authenticate(header).await.map_err(problem)?;
        tracing::Span::current().record("subject", principal.subject.as_str());
        if !P::allows(&principal) {
            return Err(Problem::new(
                ProblemKind::Forbidden,
                format!("this operation requires {}; the caller has role {}", P::REQUIRES, principal.role),
            ));
        }
        Ok(Self(principal, PhantomData))
    }
}

/// The problem an authentication failure is answered with.
pub fn problem(e: AuthError) -> Problem {
    match e {
        AuthError::Missing | AuthError::BadScheme | AuthError::InvalidToken(_) | AuthError::InvalidApiKey => {
            tracing::debug!(reason = %e, "authentication failed");
            Problem::new(ProblemKind::Unauthenticated, e.to_string())
        }
        AuthError::Store(e) => e.into(),
    }
}
