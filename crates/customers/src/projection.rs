//! [`ProfileProjection`]: the profile facts serving reads, in memory, keyed by customer id (and by
//! the user id a customer was linked with). It is a projection of the customers' events
//! (`customers.`): the messages carry only a customer id and version, so a node that did not take
//! the write reads the customer through [`Customers`] (decrypting it) and keeps the facts; the node
//! that took the write puts them before answering (read-your-writes), and the repeat from the bus
//! counts for nothing (same or older version). Health facts are kept only while the
//! `health_data` consent is granted. In memory, nothing here is written to disk; with Redis
//! configured ([`ProfileProjection::with_redis`]) the facts live in Redis, sealed under each
//! customer's data key ([`crate::online`]), and each node caches what it reads.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use dermis_bus::Envelope;
use dermis_bus::projection::Projection;

use crate::CustomersError;
use crate::model::{Consents, Customer};
use crate::online::RedisProfiles;
use crate::service::Customers;
pub use crate::serving::{ConsentFlags, OnlineProfile};
use crate::topics::{ERASED, PROFILE_CHANGED, ProfileSink};

#[derive(Default)]
struct State {
    profiles: HashMap<String, Arc<OnlineProfile>>,
    /// User id → customer id.
    aliases: HashMap<String, String>,
    /// Customer id → user id (to drop the alias when it changes).
    user_ids: HashMap<String, String>,
}

/// A write to Redis, applied in order by one task (so two changes of one customer land in the
/// order this node made them).
enum Write {
    Put(Box<OnlineProfile>, Option<String>),
    Forget(String),
}

/// Where the facts live.
enum Backing {
    Memory(RwLock<State>),
    Redis { profiles: Box<RedisProfiles>, writes: tokio::sync::mpsc::UnboundedSender<Write> },
}

/// The profile projection of this node: in memory, or in Redis with a cache.
pub struct ProfileProjection {
    loader: Customers,
    backing: Backing,
}

impl std::fmt::Debug for ProfileProjection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backing {
            Backing::Memory(_) => f.debug_struct("ProfileProjection").field("customers", &self.len()).finish(),
            Backing::Redis { profiles, .. } => f.debug_struct("ProfileProjection").field("redis", profiles).finish(),
        }
    }
}

impl ProfileProjection {
    /// A projection in memory that reads customers through `loader` (a [`Customers`] without
    /// this projection attached: attach it afterwards with [`Customers::with_projection`]).
    pub fn new(loader: Customers) -> Self {
        Self { loader, backing: Backing::Memory(RwLock::new(State::default())) }
    }

    /// A projection in Redis (shared by the nodes; see [`crate::online`]). Starts the task that
    /// writes to Redis, so it must be called within a Tokio runtime.
    pub fn with_redis(loader: Customers, profiles: RedisProfiles) -> Self {
        let (writes, mut queue) = tokio::sync::mpsc::unbounded_channel::<Write>();
        let redis = profiles.clone();
        tokio::spawn(async move {
            while let Some(w) = queue.recv().await {
                let done = match w {
                    Write::Put(p, user_id) => redis.put(*p, user_id.as_deref()).await,
                    Write::Forget(id) => redis.forget(&id).await,
                };
                if let Err(e) = done {
                    // The bus's next event for the customer writes it again.
                    metrics::counter!("dermis_customers_online_write_failures_total").increment(1);
                    tracing::warn!(error = %e, "writing a customer's online profile to Redis failed");
                }
            }
        });
        Self { loader, backing: Backing::Redis { profiles: Box::new(profiles), writes } }
    }

    /// The facts of a customer this node holds in memory (no I/O), by customer id or linked
    /// user id. With Redis, only what this node cached: use [`ProfileProjection::profile`].
    pub fn get(&self, reference: &str) -> Option<Arc<OnlineProfile>> {
        match &self.backing {
            Backing::Memory(state) => {
                let s = state.read().unwrap_or_else(|e| e.into_inner());
                if let Some(p) = s.profiles.get(reference) {
                    return Some(p.clone());
                }
                s.aliases.get(reference).and_then(|id| s.profiles.get(id)).cloned()
            }
            Backing::Redis { profiles, .. } => profiles.cached(reference),
        }
    }

    /// The facts of a customer, by customer id or linked user id: from memory, or from Redis on a
    /// cache miss.
    pub async fn profile(&self, reference: &str) -> Result<Option<Arc<OnlineProfile>>, CustomersError> {
        match &self.backing {
            Backing::Memory(_) => Ok(self.get(reference)),
            Backing::Redis { profiles, .. } => profiles.get(reference).await,
        }
    }

    /// How many customers it holds in memory (with Redis: 0, the facts are there).
    pub fn len(&self) -> usize {
        match &self.backing {
            Backing::Memory(state) => state.read().unwrap_or_else(|e| e.into_inner()).profiles.len(),
            Backing::Redis { .. } => 0,
        }
    }

    /// Whether it holds none in memory.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps a customer's facts, unless a newer version is held already.
    pub fn put(&self, c: &Customer, consents: &Consents) {
        let profile = OnlineProfile::of(c, consents);
        let state = match &self.backing {
            Backing::Memory(state) => state,
            Backing::Redis { profiles, writes } => {
                profiles.remember(&profile, c.identifiers.user_id.as_deref());
                let _ = writes.send(Write::Put(Box::new(profile), c.identifiers.user_id.clone()));
                return;
            }
        };
        let profile = Arc::new(profile);
        let mut s = state.write().unwrap_or_else(|e| e.into_inner());
        if s.profiles.get(&c.id).is_some_and(|held| held.version > c.version) {
            return;
        }
        s.profiles.insert(c.id.clone(), profile);
        let old = match &c.identifiers.user_id {
            Some(u) => s.user_ids.insert(c.id.clone(), u.clone()),
            None => s.user_ids.remove(&c.id),
        };
        if let Some(old) = old
            && Some(&old) != c.identifiers.user_id.as_ref()
        {
            s.aliases.remove(&old);
        }
        if let Some(u) = &c.identifiers.user_id {
            s.aliases.insert(u.clone(), c.id.clone());
        }
    }

    /// Forgets a customer (erased).
    pub fn forget(&self, id: &str) {
        match &self.backing {
            Backing::Memory(state) => {
                let mut s = state.write().unwrap_or_else(|e| e.into_inner());
                s.profiles.remove(id);
                if let Some(u) = s.user_ids.remove(id) {
                    s.aliases.remove(&u);
                }
            }
            Backing::Redis { profiles, writes } => {
                profiles.evict(id);
                let _ = writes.send(Write::Forget(id.to_owned()));
            }
        }
    }

    async fn reload(&self, id: &str) -> anyhow::Result<()> {
        match self.loader.get(id).await {
            Ok(c) => {
                // A customer merged into another answers as the winner: its own entry goes.
                if c.id != id {
                    self.forget(id);
                }
                let consents = self.loader.consents(&c.id).await?;
                self.put(&c, &consents);
                Ok(())
            }
            Err(CustomersError::NotFound(_)) => {
                self.forget(id);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[derive(serde::Deserialize)]
struct Payload {
    customer_id: String,
    #[serde(default)]
    version: Option<i64>,
}

#[async_trait]
impl Projection for ProfileProjection {
    fn name(&self) -> &'static str {
        "customer-profiles"
    }

    fn topic(&self) -> &'static str {
        "customers."
    }

    async fn rebuild(&self) -> anyhow::Result<u64> {
        let mut after = String::new();
        let mut n = 0;
        loop {
            let page = self.loader.page(&after, 500).await?;
            let Some((last, _)) = page.last() else { return Ok(n) };
            after = last.id.clone();
            for (c, consents) in &page {
                self.put(c, consents);
            }
            n += page.len() as u64;
        }
    }

    /// The rebuild reads every customer; the customers domain publishes after its commits.
    fn rebuild_covers_published(&self) -> bool {
        true
    }

    async fn apply(&self, batch: &[Envelope]) -> anyhow::Result<()> {
        for m in batch {
            let Ok(p) = serde_json::from_str::<Payload>(&m.payload) else {
                tracing::warn!(topic = m.topic, id = m.id, "unreadable customers event; skipped");
                continue;
            };
            if m.topic == ERASED {
                self.forget(&p.customer_id);
                continue;
            }
            let held = self.get(&p.customer_id).map(|h| h.version);
            // A profile change this node already holds counts for nothing; consent changes keep
            // the version, so they are always read again.
            if m.topic == PROFILE_CHANGED && held.is_some() && held >= p.version {
                continue;
            }
            self.reload(&p.customer_id).await?;
        }
        Ok(())
    }
}

impl ProfileSink for ProfileProjection {
    fn put(&self, customer: &Customer, consents: &Consents) {
        ProfileProjection::put(self, customer, consents);
    }

    fn forget(&self, id: &str) {
        ProfileProjection::forget(self, id);
    }
}
