//! Roles and the authenticated caller.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a caller is allowed to do, broadly. Finer checks (which store, which customer) use the
/// bindings on [`Principal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including keys and configuration.
    Admin,
    /// Catalog and merchandising: products, prices, rules.
    Merchandiser,
    /// Staff at a store counter; bound to one store.
    StoreAssociate,
    /// Read-only access to reports and exports.
    Analyst,
    /// An end customer; bound to one customer id (the token's subject).
    Customer,
    /// Another system acting on its own behalf (connectors, jobs).
    Service,
    /// A dermatologist of an integrated clinic: records assessments for, and reads the skin
    /// profiles of, customers who granted the `health_data` consent; nothing else.
    Dermatologist,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 7] = [
        Role::Admin,
        Role::Merchandiser,
        Role::StoreAssociate,
        Role::Analyst,
        Role::Customer,
        Role::Service,
        Role::Dermatologist,
    ];

    /// The wire name (`store_associate`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Merchandiser => "merchandiser",
            Self::StoreAssociate => "store_associate",
            Self::Analyst => "analyst",
            Self::Customer => "customer",
            Self::Service => "service",
            Self::Dermatologist => "dermatologist",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A bearer JWT.
    Jwt,
    /// An API key, by its id.
    ApiKey {
        /// The key's id (never its secret).
        key_id: String,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's subject, or the API key's id.
    pub subject: String,
    /// The role.
    pub role: Role,
    /// The store a `store_associate` (or a store-scoped key) is bound to.
    pub store_id: Option<String>,
    /// The sales channel a key is bound to, if any.
    pub channel: Option<String>,
    /// How the caller authenticated.
    pub credential: Credential,
}

impl Principal {
    /// The customer this caller is bound to (customers only).
    pub fn customer_id(&self) -> Option<&str> {
        (self.role == Role::Customer).then_some(self.subject.as_str())
    }

    /// Checks the bindings a role requires: a store for store associates.
    pub fn check_bindings(&self) -> Result<(), String> {
        if self.role == Role::StoreAssociate && self.store_id.as_deref().is_none_or(str::is_empty) {
            return Err("a store_associate credential must name its store".into());
        }
        if self.subject.is_empty() {
            return Err("the credential has no subject".into());
        }
        Ok(())
    }
}
