//! Export (GDPR art. 15 and 20) and erasure (art. 17) across domains.
//!
//! Every domain that holds data about a customer contributes through a [`PersonalDataSource`]
//! registered with [`crate::Customers::with_personal_data`]: its part of the export document, and
//! the erasure of what it holds. [`EventsData`] is the events domain's (the customer's events,
//! their dead letters and online features, through `dermis_events`'s own erasure).
//!
//! An erasure is a status resource (`customer_erasures`): the customers domain's own rows and the
//! customer's data key go at once (the customer is 404 from then on; their identifiers stay as
//! keyed hashes in `customer_suppressions`, so re-ingested events link or create nobody); the other domains follow in
//! the background, and an erasure a crash interrupted is finished by
//! [`crate::Customers::resume_erasures`]. While it runs, the customer's ids are kept sealed in its
//! row, and cleared when it completes. The erasure also deletes the customer's asynchronous
//! exports ([`crate::exports`]), whose documents were sealed under the key it destroys.

use std::collections::BTreeMap;

use async_trait::async_trait;
use dermis_events::ingest::Ingestor;
use dermis_events::log;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::model::{Consents, Customer};

/// Whom a request about personal data is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// The customer id.
    pub customer_id: String,
    /// The user id the customer was linked with (what the shop's events carry as `userId`).
    pub user_id: Option<String>,
}

impl Subject {
    /// Every id the customer is known by.
    pub fn ids(&self) -> Vec<&str> {
        std::iter::once(self.customer_id.as_str()).chain(self.user_id.as_deref()).collect()
    }
}

/// A domain holding data about customers.
#[async_trait]
pub trait PersonalDataSource: Send + Sync + 'static {
    /// The domain's name: its key in the export document (`events`, `orders` ...).
    fn name(&self) -> &'static str;
    /// Everything the domain holds about the subject, as JSON.
    async fn export(&self, subject: &Subject) -> anyhow::Result<Value>;
    /// Erases everything the domain holds about the subject (idempotent: it may run again).
    async fn erase(&self, subject: &Subject) -> anyhow::Result<()>;
}

/// The export document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Export {
    /// The profile, with the skin profile and each fact's source.
    pub customer: Customer,
    /// Consents: current state and ledger.
    pub consents: Consents,
    /// Every skin measurement kept (the profile shows only the latest and the trend).
    #[serde(default)]
    pub measurements: Vec<crate::measurements::MeasurementPoint>,
    /// Each other domain's part, by name.
    #[schema(value_type = Object)]
    pub domains: BTreeMap<String, Value>,
    /// When it was made (RFC 3339).
    pub exported_at: String,
}

/// Where an erasure stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErasureState {
    /// The customer is gone from this domain; other domains are being erased.
    Pending,
    /// Everything is erased.
    Completed,
    /// A domain failed; it is retried.
    Failed,
}

impl ErasureState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Completed, Self::Failed].into_iter().find(|v| v.as_str() == s)
    }
}

/// An erasure request and its progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Erasure {
    /// Id (`era_...`).
    pub id: String,
    /// Where it stands.
    pub status: ErasureState,
    /// Requested (RFC 3339).
    pub requested_at: String,
    /// Completed (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// Why it failed last (it is retried).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The events domain's part: the customer's events (by user id and by customer id) for the
/// export; for the erasure, `dermis_events`'s erasure (events, dead letters, online features on
/// every node).
#[derive(Clone)]
pub struct EventsData {
    ingestor: Ingestor,
}

impl std::fmt::Debug for EventsData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventsData")
    }
}

impl EventsData {
    /// Most events exported per id.
    pub const EXPORT_LIMIT: usize = 100_000;

    /// The events domain of this node.
    pub fn new(ingestor: Ingestor) -> Self {
        Self { ingestor }
    }
}

#[async_trait]
impl PersonalDataSource for EventsData {
    fn name(&self) -> &'static str {
        "events"
    }

    async fn export(&self, subject: &Subject) -> anyhow::Result<Value> {
        let mut out = Vec::new();
        for id in subject.ids() {
            let who = log::Subject::User(id.to_owned());
            let mut after: Option<String> = None;
            let mut n = 0;
            while n < Self::EXPORT_LIMIT {
                let page = log::events_of(self.ingestor.db(), &who, after.as_deref(), 1000).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.id.clone());
                n += page.len();
                out.extend(page.into_iter().map(|e| serde_json::to_value(e).unwrap_or(Value::Null)));
            }
        }
        Ok(Value::Array(out))
    }

    async fn erase(&self, subject: &Subject) -> anyhow::Result<()> {
        for id in subject.ids() {
            self.ingestor.erase(&log::Subject::User(id.to_owned())).await?;
        }
        Ok(())
    }
}
