//! The topics of the customers' events on the bus, and what the service tells this node's
//! profile projection after a commit ([`ProfileSink`]): the bottom of the crate, so the service,
//! the identity graph and the projection share them without importing each other.

use crate::model::{Consents, Customer};

/// `customers.profile.changed`: a customer was created or changed (payload: id and version).
pub const PROFILE_CHANGED: &str = "customers.profile.changed";
/// `customers.consent.changed`: a consent decision was recorded.
pub const CONSENT_CHANGED: &str = "customers.consent.changed";
/// `customers.erased`: a customer was erased.
pub const ERASED: &str = "customers.erased";

/// Where the service puts a customer's serving facts after a commit (read-your-writes on this
/// node): the profile projection.
pub trait ProfileSink: Send + Sync + std::fmt::Debug + 'static {
    /// The customer as just committed, with their consents.
    fn put(&self, customer: &Customer, consents: &Consents);
    /// The customer is gone (erased, or merged into another).
    fn forget(&self, id: &str);
}
