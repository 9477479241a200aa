//! What an audit entry says, as a caller records it and as it is stored.

use std::borrow::Cow;
use std::fmt;

use dermis_auth::Principal;
use dermis_store::StoreError;
use serde::Serialize;

/// What was done: `domain.verb` in lower case (`customer.read`). The common ones are constants;
/// [`Action::new`] names any other (admin actions such as `api_key.create`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Action(Cow<'static, str>);

impl Action {
    /// A customer's profile or contact fields were read.
    pub const CUSTOMER_READ: Self = Self(Cow::Borrowed("customer.read"));
    /// A customer's profile or contact fields were changed.
    pub const CUSTOMER_UPDATE: Self = Self(Cow::Borrowed("customer.update"));
    /// A customer was created.
    pub const CUSTOMER_CREATE: Self = Self(Cow::Borrowed("customer.create"));
    /// Health fields (the skin profile) were written.
    pub const SKIN_PROFILE_WRITE: Self = Self(Cow::Borrowed("skin_profile.write"));
    /// Health fields (the skin profile) were read.
    pub const SKIN_PROFILE_READ: Self = Self(Cow::Borrowed("skin_profile.read"));
    /// A consent was granted, denied or withdrawn.
    pub const CONSENT_WRITE: Self = Self(Cow::Borrowed("consent.write"));
    /// A customer's data was exported (GDPR art. 15/20).
    pub const CUSTOMER_EXPORT: Self = Self(Cow::Borrowed("customer.export"));
    /// A customer's erasure was requested or carried out (GDPR art. 17).
    pub const CUSTOMER_ERASE: Self = Self(Cow::Borrowed("customer.erase"));
    /// Two profiles were merged.
    pub const CUSTOMER_MERGE: Self = Self(Cow::Borrowed("customer.merge"));
    /// A merge was undone.
    pub const CUSTOMER_UNMERGE: Self = Self(Cow::Borrowed("customer.unmerge"));
    /// Customers were looked up by email, phone, loyalty number or user id.
    pub const CUSTOMER_FIND: Self = Self(Cow::Borrowed("customer.find"));
    /// A customer's consents (state and ledger) were read.
    pub const CONSENT_READ: Self = Self(Cow::Borrowed("consent.read"));
    /// A consultation was opened (a store's associates read health facts while it is open).
    pub const CONSULTATION_OPEN: Self = Self(Cow::Borrowed("consultation.open"));
    /// A consultation was closed.
    pub const CONSULTATION_CLOSE: Self = Self(Cow::Borrowed("consultation.close"));
    /// An asynchronous export was requested (the document is made in the background).
    pub const CUSTOMER_EXPORT_REQUEST: Self = Self(Cow::Borrowed("customer.export_request"));
    /// An export's status was read while it had no document (pending, failed).
    pub const CUSTOMER_EXPORT_STATUS: Self = Self(Cow::Borrowed("customer.export_status"));
    /// An erasure's status was read.
    pub const CUSTOMER_ERASURE_STATUS: Self = Self(Cow::Borrowed("customer.erasure_status"));
    /// A customer's identifiers in the identity graph (kinds and keyed hashes) were read.
    pub const IDENTITY_READ: Self = Self(Cow::Borrowed("identity.read"));
    /// A customer's part of the audit log was read.
    pub const AUDIT_READ: Self = Self(Cow::Borrowed("audit.read"));
    /// The master key was rotated: every data key re-wrapped under the new one.
    pub const MASTER_KEY_ROTATE: Self = Self(Cow::Borrowed("master_key.rotate"));

    /// Any other action; `name` must be lower-case ASCII letters, digits, `_` and `.`, with a
    /// dot, at most 64 bytes (`api_key.create`).
    pub fn new(name: impl Into<Cow<'static, str>>) -> Result<Self, AuditError> {
        let name = name.into();
        let ok = !name.is_empty()
            && name.len() <= 64
            && name.contains('.')
            && !name.starts_with('.')
            && !name.ends_with('.')
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
        if ok { Ok(Self(name)) } else { Err(AuditError::Invalid(format!("not an action name: {name:?}"))) }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One access to record: who, in which role, why, in which request, what, about whom, which
/// fields. Built with [`Entry::new`] or [`Entry::by`] and the builder methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The caller's subject (a token's `sub`, an API key's id, `system` for jobs).
    pub actor: String,
    /// The caller's role (`admin`, `store_associate`, ...).
    pub role: String,
    /// Why: the purpose of the access (`support`, `personalization`, `gdpr_export`, ...).
    pub purpose: String,
    /// The request's `x-request-id`, or a job's run id.
    pub request_id: String,
    /// What was done.
    pub action: Action,
    /// The customer concerned, if any (their customer id, as given).
    pub subject: Option<String>,
    /// Names of the fields read or written (`email`, `allergies`); never their values.
    pub fields: Vec<String>,
}

impl Entry {
    /// An entry with no customer and no fields.
    pub fn new(
        actor: impl Into<String>,
        role: impl Into<String>,
        purpose: impl Into<String>,
        request_id: impl Into<String>,
        action: Action,
    ) -> Self {
        Self {
            actor: actor.into(),
            role: role.into(),
            purpose: purpose.into(),
            request_id: request_id.into(),
            action,
            subject: None,
            fields: Vec::new(),
        }
    }

    /// An entry for an authenticated caller: actor and role from the principal.
    pub fn by(
        principal: &Principal,
        purpose: impl Into<String>,
        request_id: impl Into<String>,
        action: Action,
    ) -> Self {
        Self::new(principal.subject.clone(), principal.role.as_str(), purpose, request_id, action)
    }

    /// The customer concerned.
    pub fn about(mut self, customer_id: impl Into<String>) -> Self {
        self.subject = Some(customer_id.into());
        self
    }

    /// The names of the fields touched.
    pub fn fields<S: AsRef<str>>(mut self, fields: &[S]) -> Self {
        self.fields = fields.iter().map(|f| f.as_ref().to_owned()).collect();
        self
    }
}

/// A stored entry, as [`crate::Audit::export`] returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Record {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// When, in milliseconds since the Unix epoch.
    pub at: i64,
    /// Who.
    pub actor: String,
    /// In which role.
    pub role: String,
    /// Why.
    pub purpose: String,
    /// In which request.
    pub request_id: String,
    /// What.
    pub action: String,
    /// About which customer.
    pub subject: Option<String>,
    /// Which fields.
    pub fields: Vec<String>,
    /// Hash of the entry before (hex), or 64 zeros for the first.
    pub prev_hash: String,
    /// This entry's hash (hex).
    pub hash: String,
}

/// The first entry at which the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadEntry {
    /// Its seq (for a deleted entry: the seq that is missing).
    pub seq: i64,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for BadEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entry {}: {}", self.seq, self.reason)
    }
}

/// Why recording, verifying or exporting failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The entry cannot be recorded as given (a caller's bug).
    #[error("invalid audit entry: {0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<dermis_store::sqlx::Error> for AuditError {
    fn from(e: dermis_store::sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// An access that could not be recorded is not answered: invalid entries are our bug (500),
/// store errors map as everywhere else (an outage is 503).
impl From<AuditError> for dermis_core::Problem {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Invalid(m) => dermis_core::Problem::internal(&m),
            AuditError::Store(s) => s.into(),
        }
    }
}
