//! [`ProfileProjection`]: the profile facts serving reads, in memory, keyed by customer id (and by
//! the user id a customer was linked with). It is a projection of the customers' events
//! (`customers.`): the messages carry only a customer id and version, so a node that did not take
//! the write reads the customer through [`Customers`] (decrypting it) and keeps the facts; the node
//! that took the write puts them before answering (read-your-writes), and the repeat from the bus
//! counts for nothing (same or older version). Health facts are kept only while the
//! `health_data` consent is granted. Nothing here is written to disk.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock, RwLock};

use async_trait::async_trait;
use dermis_bus::Envelope;
use dermis_bus::projection::Projection;
use dermis_ingredients::KnowledgeBase;
use dermis_ingredients::kb::FAMILIES;
use serde::Serialize;

use crate::CustomersError;
use crate::model::{Condition, Consents, Customer, IngredientMatch, IngredientRef, Purpose, SkinType};
use crate::service::Customers;
use crate::topics::{ERASED, PROFILE_CHANGED, ProfileSink};

/// Which purposes are granted now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ConsentFlags {
    /// Personalized output.
    pub personalization: bool,
    /// Marketing email.
    pub marketing_email: bool,
    /// Marketing SMS.
    pub marketing_sms: bool,
    /// Analytics.
    pub analytics: bool,
    /// Health data.
    pub health_data: bool,
}

/// What serving needs to know about a customer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OnlineProfile {
    /// Customer id.
    pub customer_id: String,
    /// The profile's version.
    pub version: i64,
    /// Skin type.
    pub skin_type: Option<SkinType>,
    /// Concerns (the catalog's vocabulary).
    pub concerns: Vec<String>,
    /// Skin conditions (health).
    pub conditions: Vec<Condition>,
    /// Canonical ingredient ids the customer is allergic to, families expanded (health).
    pub allergy_ids: BTreeSet<String>,
    /// Families named as allergies (health).
    pub allergy_families: Vec<String>,
    /// Allergy names the knowledge base does not know (health): match them by name.
    pub unknown_allergens: Vec<String>,
    /// Canonical ingredient ids the skin reacts to, families expanded (health).
    pub sensitivity_ids: BTreeSet<String>,
    /// Pregnant (health).
    pub pregnant: bool,
    /// Breastfeeding (health).
    pub breastfeeding: bool,
    /// Consent state.
    pub consents: ConsentFlags,
}

/// The ingredient ids of each family, computed once (a family scans the whole knowledge base).
fn family_ids(family: &str) -> Option<&'static BTreeSet<String>> {
    static FAMILY_IDS: OnceLock<HashMap<&'static str, BTreeSet<String>>> = OnceLock::new();
    FAMILY_IDS
        .get_or_init(|| {
            let kb = KnowledgeBase::bundled();
            FAMILIES.iter().map(|(f, _)| (*f, kb.expand(f).unwrap_or_default())).collect()
        })
        .get(family)
}

fn expand(refs: &[IngredientRef], ids: &mut BTreeSet<String>, families: &mut Vec<String>, unknown: &mut Vec<String>) {
    for r in refs {
        match (r.matched, &r.id) {
            (IngredientMatch::Family, Some(f)) => {
                families.push(f.clone());
                ids.extend(family_ids(f).into_iter().flatten().cloned());
            }
            (IngredientMatch::Ingredient, Some(id)) => {
                ids.insert(id.clone());
            }
            _ => unknown.push(r.name.clone()),
        }
    }
}

impl OnlineProfile {
    /// The facts of a customer under its consents.
    pub fn of(c: &Customer, consents: &Consents) -> Self {
        let flags = ConsentFlags {
            personalization: consents.granted(Purpose::Personalization),
            marketing_email: consents.granted(Purpose::MarketingEmail),
            marketing_sms: consents.granted(Purpose::MarketingSms),
            analytics: consents.granted(Purpose::Analytics),
            health_data: consents.granted(Purpose::HealthData),
        };
        let skin = &c.skin_profile.skin;
        let mut p = OnlineProfile {
            customer_id: c.id.clone(),
            version: c.version,
            skin_type: skin.skin_type.as_ref().map(|f| f.value),
            concerns: skin.concerns.as_ref().map(|f| f.value.clone()).unwrap_or_default(),
            consents: flags,
            ..Default::default()
        };
        if flags.health_data {
            let h = &c.skin_profile.health;
            p.conditions = h.conditions.as_ref().map(|f| f.value.clone()).unwrap_or_default();
            if let Some(a) = &h.allergies {
                expand(&a.value, &mut p.allergy_ids, &mut p.allergy_families, &mut p.unknown_allergens);
            }
            if let Some(s) = &h.sensitivities {
                let (mut fams, mut unknown) = (Vec::new(), Vec::new());
                expand(&s.value, &mut p.sensitivity_ids, &mut fams, &mut unknown);
            }
            p.pregnant = h.pregnant.as_ref().is_some_and(|f| f.value);
            p.breastfeeding = h.breastfeeding.as_ref().is_some_and(|f| f.value);
        }
        p
    }
}

#[derive(Default)]
struct State {
    profiles: HashMap<String, Arc<OnlineProfile>>,
    /// User id → customer id.
    aliases: HashMap<String, String>,
    /// Customer id → user id (to drop the alias when it changes).
    user_ids: HashMap<String, String>,
}

/// The in-memory profile projection of this node.
pub struct ProfileProjection {
    loader: Customers,
    state: RwLock<State>,
}

impl std::fmt::Debug for ProfileProjection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileProjection").field("customers", &self.len()).finish()
    }
}

impl ProfileProjection {
    /// A projection that reads customers through `loader` (a [`Customers`] without this
    /// projection attached: attach it afterwards with [`Customers::with_projection`]).
    pub fn new(loader: Customers) -> Self {
        Self { loader, state: RwLock::new(State::default()) }
    }

    /// The facts of a customer, by customer id or linked user id.
    pub fn get(&self, reference: &str) -> Option<Arc<OnlineProfile>> {
        let s = self.state.read().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = s.profiles.get(reference) {
            return Some(p.clone());
        }
        s.aliases.get(reference).and_then(|id| s.profiles.get(id)).cloned()
    }

    /// How many customers it holds.
    pub fn len(&self) -> usize {
        self.state.read().unwrap_or_else(|e| e.into_inner()).profiles.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps a customer's facts, unless a newer version is held already.
    pub fn put(&self, c: &Customer, consents: &Consents) {
        let profile = Arc::new(OnlineProfile::of(c, consents));
        let mut s = self.state.write().unwrap_or_else(|e| e.into_inner());
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
        let mut s = self.state.write().unwrap_or_else(|e| e.into_inner());
        s.profiles.remove(id);
        if let Some(u) = s.user_ids.remove(id) {
            s.aliases.remove(&u);
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
