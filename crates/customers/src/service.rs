//! [`Customers`]: the domain's operations. Every write runs in one transaction that first takes
//! the customer's row lock (writes to one customer are serialized on both backends), seals what
//! it stores under the customer's data key, writes its outbox event, and after the commit
//! updates this node's profile projection (read-your-writes) and wakes the relay.

use std::sync::Arc;

use dermis_core::clock::{SharedClock, rfc3339};
use dermis_core::ids::new_id;
use dermis_store::idempotency::{self, IdempotencyKey, Prior};
use dermis_store::sqlx::AnyConnection;
use dermis_store::{Db, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::Notify;
use zeroize::Zeroizing;

use crate::CustomersError;
use crate::crypto::{DataKey, Keyring, LookupHasher, LookupKind};
use crate::input::{Change, CustomerChanges, Lookup, NewConsent, NewCustomer, SkinChanges, normalize_email};
use crate::model::{
    ConsentEvent, Consents, Consultation, Contact, Customer, Fact, HealthFacts, Identifiers, Purpose, SkinFacts,
    SkinProfile,
};
use crate::privacy::{Erasure, ErasureState, Export, PersonalDataSource, Subject};
use crate::store::{self, ConsentRow, CustomerRow};
use crate::topics::ProfileSink;

/// The owner name of the deployment's lookup secret in `customer_keys`.
const LOOKUP_OWNER: &str = "lookup";

pub use crate::topics::{CONSENT_CHANGED, ERASED, PROFILE_CHANGED};

/// An idempotency key with what it protects.
#[derive(Debug, Clone)]
pub struct Idempotent {
    /// Operation and caller the key is scoped to.
    pub scope: String,
    /// The client's key.
    pub key: IdempotencyKey,
    /// Digest of the request body.
    pub request_hash: String,
}

/// The result of a create.
#[derive(Debug, Clone)]
pub struct Created<T> {
    /// What was created (for a replay: what the first attempt created, as it is now).
    pub value: T,
    /// True when this was a retry answered from the first attempt.
    pub replayed: bool,
}

/// Who records a change (for the consent ledger).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The customer's id when the customer acts, else the credential's subject.
    pub id: String,
    /// The role.
    pub role: String,
}

/// The customers domain.
#[derive(Debug, Clone)]
pub struct Customers {
    pub(crate) db: Db,
    pub(crate) keys: Keyring,
    pub(crate) hasher: LookupHasher,
    pub(crate) clock: SharedClock,
    pub(crate) ready: Arc<Notify>,
    pub(crate) projection: Option<Arc<dyn ProfileSink>>,
    pub(crate) identity: Arc<crate::rules::IdentityRules>,
    /// Seals the subject of a running erasure.
    erasure_key: DataKey,
    /// Analytics ids per purpose.
    pub(crate) analytics: Arc<crate::analytics::AnalyticsIds>,
    personal_data: Vec<Arc<dyn PersonalDataSource>>,
}

impl std::fmt::Debug for dyn PersonalDataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

pub(crate) fn seal<T: Serialize>(dek: &DataKey, id: &str, field: &str, value: &T) -> Result<String, CustomersError> {
    let json =
        Zeroizing::new(serde_json::to_vec(value).map_err(|e| StoreError::Other(format!("serializing {field}: {e}")))?);
    Ok(dek.encrypt(id, field, &json))
}

fn unseal<T: DeserializeOwned>(dek: &DataKey, id: &str, field: &str, sealed: &str) -> Result<T, CustomersError> {
    let plain = dek.decrypt(id, field, sealed)?;
    serde_json::from_slice(&plain)
        .map_err(|e| CustomersError::Store(StoreError::Other(format!("corrupt {field}: {e}"))))
}

/// A concurrent retry with the same key won the race (PostgreSQL).
fn lost_idempotency_race(e: &CustomersError) -> bool {
    matches!(e, CustomersError::Store(s) if s.is_unique_on("idempotency_keys") || s.is_unique_on("idem_key") || s.is_unique_on("scope"))
}

/// The normalized lookup values a customer has.
pub(crate) fn lookup_values(c: &Customer) -> Vec<(LookupKind, String)> {
    let mut out = Vec::new();
    if let Some(e) = &c.contact.email {
        out.push((LookupKind::Email, normalize_email(e)));
    }
    if let Some(p) = &c.contact.phone {
        out.push((LookupKind::Phone, p.clone()));
    }
    if let Some(l) = &c.identifiers.loyalty {
        out.push((LookupKind::LoyaltyNumber, l.number.clone()));
    }
    if let Some(u) = &c.identifiers.user_id {
        out.push((LookupKind::UserId, u.clone()));
    }
    out
}

fn apply<T: PartialEq>(slot: &mut Option<Fact<T>>, change: Change<T>, source: crate::model::FactSource, now: &str) {
    match change {
        None => {}
        Some(None) => *slot = None,
        Some(Some(value)) => {
            if slot.as_ref().is_some_and(|f| f.value == value && f.source == source) {
                return; // the same fact again: keep when it was first recorded
            }
            *slot = Some(Fact { value, source, recorded_at: now.to_owned() });
        }
    }
}

pub(crate) fn apply_skin(profile: &mut SkinProfile, c: SkinChanges, now: &str) {
    let s = c.source;
    apply(&mut profile.skin.skin_type, c.skin_type, s, now);
    apply(&mut profile.skin.skin_tone, c.skin_tone, s, now);
    apply(&mut profile.skin.concerns, c.concerns, s, now);
    apply(&mut profile.skin.lifestyle, c.lifestyle, s, now);
    apply(&mut profile.health.conditions, c.conditions, s, now);
    apply(&mut profile.health.sensitivities, c.sensitivities, s, now);
    apply(&mut profile.health.allergies, c.allergies, s, now);
    apply(&mut profile.health.pregnant, c.pregnant, s, now);
    apply(&mut profile.health.breastfeeding, c.breastfeeding, s, now);
    apply(&mut profile.health.contraindicated_ingredients, c.contraindicated_ingredients, s, now);
    apply(&mut profile.health.assessment, c.assessment, s, now);
}

fn set<T>(slot: &mut Option<T>, change: Change<T>) {
    if let Some(v) = change {
        *slot = v;
    }
}

fn consent_event(r: ConsentRow) -> Option<ConsentEvent> {
    Some(ConsentEvent {
        purpose: Purpose::parse(&r.purpose)?,
        granted: r.granted,
        text_version: r.text_version,
        channel: r.channel,
        actor: r.actor,
        actor_role: r.actor_role,
        recorded_at: rfc3339(r.recorded_at),
    })
}

impl Customers {
    /// The customers stored in `db`, sealed under keys from `keys`. Loads the deployment's
    /// lookup secret, creating it on first start (two nodes starting at once agree on one).
    pub async fn open(db: Db, keys: Keyring, clock: SharedClock) -> Result<Self, CustomersError> {
        let secret = match store::get_key(db.reader(), LOOKUP_OWNER).await? {
            Some(w) => keys.unwrap(LOOKUP_OWNER, &w).await?,
            None => {
                let fresh = DataKey::generate();
                let wrapped = keys.wrap(LOOKUP_OWNER, &fresh).await?;
                let mut tx = db.begin().await?;
                store::insert_key(&mut tx, LOOKUP_OWNER, &wrapped, clock.now_ms()).await?;
                tx.commit().await.map_err(StoreError::from)?;
                let stored = store::get_key(db.reader(), LOOKUP_OWNER)
                    .await?
                    .ok_or_else(|| StoreError::Other("the lookup secret vanished".into()))?;
                keys.unwrap(LOOKUP_OWNER, &stored).await?
            }
        };
        let hasher = LookupHasher::new(&secret);
        let erasure_key = secret.derive("erasures");
        let analytics = Arc::new(crate::analytics::AnalyticsIds::new(secret.derive("analytics")));
        Ok(Self {
            db,
            keys,
            hasher,
            clock,
            ready: Arc::new(Notify::new()),
            projection: None,
            identity: Arc::new(crate::rules::IdentityRules::default()),
            erasure_key,
            analytics,
            personal_data: Vec::new(),
        })
    }

    /// The same service, exporting and erasing `source`'s data with the customer's.
    pub fn with_personal_data(mut self, source: Arc<dyn PersonalDataSource>) -> Self {
        self.personal_data.push(source);
        self
    }

    /// The same service, resolving identities under `rules` (limits, blocked values).
    pub fn with_identity_rules(mut self, rules: crate::rules::IdentityRules) -> Self {
        self.identity = Arc::new(rules);
        self
    }

    /// The same service, keeping `projection` current after each of its commits.
    pub fn with_projection(mut self, projection: Arc<dyn ProfileSink>) -> Self {
        self.projection = Some(projection);
        self
    }

    /// Notified after each commit that wrote outbox events (for the relay).
    pub fn outbox_ready(&self) -> Arc<Notify> {
        self.ready.clone()
    }

    /// The store.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Now, on the service's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub(crate) async fn data_key(&self, conn: &mut AnyConnection, id: &str) -> Result<DataKey, CustomersError> {
        let w = store::get_key(&mut *conn, id)
            .await?
            .ok_or(CustomersError::Crypto(crate::crypto::CryptoError::KeyDestroyed))?;
        Ok(self.keys.unwrap(id, &w).await?)
    }

    /// Opens a stored row with the customer's data key.
    pub fn open_row(&self, dek: &DataKey, row: &CustomerRow) -> Result<Customer, CustomersError> {
        let contact: Contact = unseal(dek, &row.id, "contact", &row.contact)?;
        let identifiers: Identifiers = unseal(dek, &row.id, "identifiers", &row.identifiers)?;
        let skin: SkinFacts = match &row.skin {
            Some(s) => unseal(dek, &row.id, "skin", s)?,
            None => SkinFacts::default(),
        };
        let health: HealthFacts = match &row.health {
            Some(s) => unseal(dek, &row.id, "health", s)?,
            None => HealthFacts::default(),
        };
        let mut c = Customer {
            id: row.id.clone(),
            version: row.version,
            contact,
            identifiers,
            skin_profile: SkinProfile { skin, health, measurements: Default::default() },
            unknown_allergens: Vec::new(),
            redacted: Vec::new(),
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
        };
        c.refresh_unknown();
        Ok(c)
    }

    pub(crate) fn seal_row(
        &self,
        dek: &DataKey,
        c: &Customer,
        created_at: i64,
        now: i64,
    ) -> Result<CustomerRow, CustomersError> {
        let p = &c.skin_profile;
        Ok(CustomerRow {
            id: c.id.clone(),
            contact: seal(dek, &c.id, "contact", &c.contact)?,
            identifiers: seal(dek, &c.id, "identifiers", &c.identifiers)?,
            skin: (p.skin != SkinFacts::default()).then(|| seal(dek, &c.id, "skin", &p.skin)).transpose()?,
            health: (!p.health.is_empty()).then(|| seal(dek, &c.id, "health", &p.health)).transpose()?,
            version: c.version,
            created_at,
            updated_at: now,
        })
    }

    pub(crate) async fn read_in(
        &self,
        conn: &mut AnyConnection,
        id: &str,
    ) -> Result<(Customer, CustomerRow), CustomersError> {
        let row = store::get_customer(&mut *conn, id).await?.ok_or_else(|| CustomersError::NotFound(id.to_owned()))?;
        let dek = self.data_key(conn, id).await?;
        Ok((self.open_row(&dek, &row)?, row))
    }

    /// The keyed hash of a lookup value.
    pub fn lookup_hash(&self, kind: LookupKind, normalized: &str) -> String {
        self.hasher.hash(kind, normalized)
    }

    /// The customer id a reference names: a customer id, or a user id the customer was linked
    /// with. `None` when neither.
    pub async fn resolve(&self, reference: &str) -> Result<Option<String>, CustomersError> {
        if reference.starts_with("cus_") && store::get_customer(self.db.reader(), reference).await?.is_some() {
            return Ok(Some(self.surviving(reference).await?));
        }
        let hash = self.hasher.hash(LookupKind::UserId, reference.trim());
        Ok(store::find_lookup(self.db.reader(), LookupKind::UserId, &hash).await?)
    }

    /// The customer that answers for `id`: itself, or the customer it was merged into (followed
    /// through successive merges).
    pub async fn surviving(&self, id: &str) -> Result<String, CustomersError> {
        let mut current = id.to_owned();
        for _ in 0..16 {
            match store::merged_into(self.db.reader(), &current).await? {
                Some(next) if next != current => current = next,
                _ => break,
            }
        }
        Ok(current)
    }

    pub(crate) async fn resolve_or_404(&self, reference: &str) -> Result<String, CustomersError> {
        self.resolve(reference).await?.ok_or_else(|| CustomersError::NotFound(reference.to_owned()))
    }

    /// Reads a customer by id or user id.
    pub async fn get(&self, reference: &str) -> Result<Customer, CustomersError> {
        let id = self.resolve_or_404(reference).await?;
        let mut conn = self.db.reader().acquire().await.map_err(StoreError::from)?;
        let mut c = self.read_in(&mut conn, &id).await?.0;
        self.load_measurements(&mut conn, &mut c).await?;
        Ok(c)
    }

    /// Finds the customer an email, phone, loyalty number or user id belongs to.
    pub async fn find(&self, lookup: &Lookup) -> Result<Option<Customer>, CustomersError> {
        let hash = self.hasher.hash(lookup.kind, &lookup.value);
        let Some(id) = store::find_lookup(self.db.reader(), lookup.kind, &hash).await? else { return Ok(None) };
        match self.get(&id).await {
            Ok(c) => Ok(Some(c)),
            Err(CustomersError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn write_lookups(
        &self,
        conn: &mut AnyConnection,
        id: &str,
        before: &[(LookupKind, String)],
        after: &[(LookupKind, String)],
    ) -> Result<(), CustomersError> {
        for kind in LookupKind::ALL {
            let old = before.iter().find(|(k, _)| *k == kind).map(|(_, v)| v);
            let new = after.iter().find(|(k, _)| *k == kind).map(|(_, v)| v);
            if old == new {
                continue;
            }
            if old.is_some() {
                store::delete_lookups(&mut *conn, id, Some(kind)).await?;
            }
            if let Some(v) = new {
                store::insert_lookup(&mut *conn, kind, &self.hasher.hash(kind, v), id).await.map_err(|e| {
                    if e.is_unique_on("customer_lookups") {
                        CustomersError::Duplicate { field: kind.as_str() }
                    } else {
                        CustomersError::Store(e)
                    }
                })?;
            }
        }
        Ok(())
    }

    pub(crate) async fn append_consent(
        &self,
        conn: &mut AnyConnection,
        id: &str,
        c: &NewConsent,
        actor: &Actor,
        now: i64,
    ) -> Result<(), CustomersError> {
        let row = ConsentRow {
            id: new_id("cns"),
            customer_id: id.to_owned(),
            purpose: c.purpose.as_str().to_owned(),
            granted: c.granted,
            text_version: c.text_version.clone(),
            channel: c.channel.clone(),
            actor: actor.id.clone(),
            actor_role: actor.role.clone(),
            recorded_at: now,
        };
        store::append_consent(conn, &row).await?;
        Ok(())
    }

    pub(crate) async fn consents_in(&self, conn: &mut AnyConnection, id: &str) -> Result<Consents, CustomersError> {
        let rows = store::consents(conn, id).await?;
        Ok(Consents::from_history(id.to_owned(), rows.into_iter().filter_map(consent_event).collect()))
    }

    /// After a commit: wake the relay, bring this node's projection up to date.
    pub(crate) async fn committed(&self, customer: &Customer, consents: Option<&Consents>) {
        self.ready.notify_one();
        let Some(p) = &self.projection else { return };
        match consents {
            Some(c) => p.put(customer, c),
            None => match self.consents(&customer.id).await {
                Ok(c) => p.put(customer, &c),
                Err(e) => {
                    tracing::warn!(error = %e, "refreshing the profile projection after a write failed; the bus will")
                }
            },
        }
    }

    /// Creates a customer (with its consents, then its skin profile, in one transaction).
    pub async fn create(
        &self,
        idem: Option<Idempotent>,
        new: NewCustomer,
        actor: &Actor,
    ) -> Result<Created<Customer>, CustomersError> {
        match self.try_create(idem.as_ref(), &new, actor).await {
            Err(e)
                if lost_idempotency_race(&e) || (idem.is_some() && matches!(e, CustomersError::Duplicate { .. })) =>
            {
                self.try_create(idem.as_ref(), &new, actor).await
            }
            other => other,
        }
    }

    async fn try_create(
        &self,
        idem: Option<&Idempotent>,
        new: &NewCustomer,
        actor: &Actor,
    ) -> Result<Created<Customer>, CustomersError> {
        // The key is wrapped before the transaction starts: a KMS call must not hold the write lock.
        let id = new_id("cus");
        let dek = DataKey::generate();
        let wrapped = self.keys.wrap(&id, &dek).await?;
        let mut tx = self.db.begin().await?;
        if let Some(i) = idem {
            match idempotency::prior(&mut tx, &i.scope, &i.key, &i.request_hash).await? {
                Prior::None => {}
                Prior::Created(id) => {
                    drop(tx);
                    let value = self.get(&id).await?;
                    return Ok(Created { value, replayed: true });
                }
                Prior::Mismatch => return Err(CustomersError::IdempotencyKeyReused),
            }
        }
        let now = self.clock.now_ms();
        let stamp = rfc3339(now);
        store::insert_key(&mut tx, &id, &wrapped, now).await?;
        for c in &new.consents {
            self.append_consent(&mut tx, &id, c, actor, now).await?;
        }
        let health_granted = new.consents.iter().any(|c| c.purpose == Purpose::HealthData && c.granted);
        let mut profile = SkinProfile::default();
        if let Some(skin) = &new.skin {
            if skin.sets_health() && !health_granted {
                return Err(CustomersError::ConsentRequired(Purpose::HealthData));
            }
            apply_skin(&mut profile, skin.clone(), &stamp);
        }
        let mut customer = Customer {
            id: id.clone(),
            version: 1,
            contact: new.contact.clone(),
            identifiers: Identifiers {
                user_id: new.user_id.clone(),
                loyalty: new.loyalty.clone(),
                external_ids: new.external_ids.clone(),
            },
            skin_profile: profile,
            unknown_allergens: Vec::new(),
            redacted: Vec::new(),
            created_at: stamp.clone(),
            updated_at: stamp,
        };
        customer.refresh_unknown();
        self.write_lookups(&mut tx, &id, &[], &lookup_values(&customer)).await?;
        store::insert_customer(&mut tx, &self.seal_row(&dek, &customer, now, now)?).await?;
        if let Some(i) = idem {
            idempotency::record(&mut tx, &i.scope, &i.key, &i.request_hash, &id).await?;
        }
        store::append_event(&mut tx, PROFILE_CHANGED, &id, &json!({"customer_id": id, "version": 1}), now).await?;
        for c in &new.consents {
            let payload = json!({"customer_id": id, "version": 1, "purpose": c.purpose, "granted": c.granted});
            store::append_event(&mut tx, CONSENT_CHANGED, &id, &payload, now).await?;
        }
        let consents = self.consents_in(&mut tx, &id).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.committed(&customer, Some(&consents)).await;
        Ok(Created { value: customer, replayed: false })
    }

    /// Changes contact data and identifiers. With `if_version`, refuses if the customer moved on.
    pub async fn update(
        &self,
        reference: &str,
        changes: CustomerChanges,
        if_version: Option<i64>,
    ) -> Result<Customer, CustomersError> {
        let id = self.resolve_or_404(reference).await?;
        let mut tx = self.db.begin().await?;
        if !store::lock_customer(&mut tx, &id).await? {
            return Err(CustomersError::NotFound(reference.to_owned()));
        }
        let (current, row) = self.read_in(&mut tx, &id).await?;
        if let Some(expected) = if_version
            && expected != current.version
        {
            return Err(CustomersError::VersionMismatch { expected, actual: current.version });
        }
        let mut next = current.clone();
        let ch = changes;
        set(&mut next.contact.name, ch.name);
        set(&mut next.contact.email, ch.email);
        set(&mut next.contact.phone, ch.phone);
        set(&mut next.contact.date_of_birth, ch.date_of_birth);
        set(&mut next.contact.address, ch.address);
        set(&mut next.identifiers.loyalty, ch.loyalty);
        set(&mut next.identifiers.user_id, ch.user_id);
        for (channel, value) in ch.external_ids {
            match value {
                Some(v) => next.identifiers.external_ids.insert(channel, v),
                None => next.identifiers.external_ids.remove(&channel),
            };
        }
        if next.identifiers.external_ids.len() > 20 {
            return Err(CustomersError::Invalid { field: "external_ids", message: "at most 20 channels".into() });
        }
        if next == current {
            return Ok(current);
        }
        self.write_lookups(&mut tx, &id, &lookup_values(&current), &lookup_values(&next)).await?;
        let saved = self.save(&mut tx, next, &row).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.committed(&saved, None).await;
        Ok(saved)
    }

    /// Stores `next` (a changed `row`) with a new version, its event, and commits.
    /// Deletes the health facts and the measurements (the `health_data` consent is withdrawn or
    /// denied), inside `tx`; returns the customer as it is now.
    pub(crate) async fn withdraw_health_in(
        &self,
        tx: &mut dermis_store::sqlx::Transaction<'static, dermis_store::sqlx::Any>,
        current: Customer,
        row: &CustomerRow,
    ) -> Result<Customer, CustomersError> {
        store::delete_measurements(tx, &current.id).await?;
        if current.skin_profile.health.is_empty() {
            return Ok(current);
        }
        let mut next = current;
        next.skin_profile.health = HealthFacts::default();
        self.save(tx, next, row).await
    }

    pub(crate) async fn save(
        &self,
        tx: &mut dermis_store::sqlx::Transaction<'static, dermis_store::sqlx::Any>,
        mut next: Customer,
        row: &CustomerRow,
    ) -> Result<Customer, CustomersError> {
        let now = self.clock.now_ms();
        next.version = row.version + 1;
        next.updated_at = rfc3339(now);
        next.refresh_unknown();
        let dek = self.data_key(tx, &next.id).await?;
        let sealed = self.seal_row(&dek, &next, row.created_at, now)?;
        if !store::update_customer(tx, &sealed, row.version).await? {
            return Err(CustomersError::Store(StoreError::Unavailable(
                "the customer changed concurrently; retry".into(),
            )));
        }
        let payload = json!({"customer_id": next.id, "version": next.version});
        store::append_event(tx, PROFILE_CHANGED, &next.id, &payload, now).await?;
        Ok(next)
    }

    /// Sets or removes skin facts. Setting a health fact needs the `health_data` consent: without
    /// it nothing is stored.
    pub async fn put_skin_profile(
        &self,
        reference: &str,
        changes: SkinChanges,
        if_version: Option<i64>,
    ) -> Result<Customer, CustomersError> {
        let id = self.resolve_or_404(reference).await?;
        let mut tx = self.db.begin().await?;
        if !store::lock_customer(&mut tx, &id).await? {
            return Err(CustomersError::NotFound(reference.to_owned()));
        }
        let (current, row) = self.read_in(&mut tx, &id).await?;
        if let Some(expected) = if_version
            && expected != current.version
        {
            return Err(CustomersError::VersionMismatch { expected, actual: current.version });
        }
        let consents = self.consents_in(&mut tx, &id).await?;
        if changes.sets_health() && !consents.granted(Purpose::HealthData) {
            return Err(CustomersError::ConsentRequired(Purpose::HealthData));
        }
        let mut next = current.clone();
        apply_skin(&mut next.skin_profile, changes, &rfc3339(self.clock.now_ms()));
        if next.skin_profile == current.skin_profile {
            return Ok(current);
        }
        let saved = self.save(&mut tx, next, &row).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.committed(&saved, Some(&consents)).await;
        Ok(saved)
    }

    /// Records a consent decision. Withdrawing (or denying) `health_data` deletes the health
    /// facts in the same transaction.
    pub async fn set_consent(
        &self,
        reference: &str,
        consent: NewConsent,
        actor: &Actor,
    ) -> Result<Consents, CustomersError> {
        let id = self.resolve_or_404(reference).await?;
        let mut tx = self.db.begin().await?;
        if !store::lock_customer(&mut tx, &id).await? {
            return Err(CustomersError::NotFound(reference.to_owned()));
        }
        let (current, row) = self.read_in(&mut tx, &id).await?;
        let now = self.clock.now_ms();
        self.append_consent(&mut tx, &id, &consent, actor, now).await?;
        let mut customer = current.clone();
        if consent.purpose == Purpose::HealthData && !consent.granted {
            customer = self.withdraw_health_in(&mut tx, current, &row).await?;
        }
        let payload = json!({
            "customer_id": id, "version": customer.version, "purpose": consent.purpose, "granted": consent.granted,
        });
        store::append_event(&mut tx, CONSENT_CHANGED, &id, &payload, now).await?;
        let consents = self.consents_in(&mut tx, &id).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.committed(&customer, Some(&consents)).await;
        Ok(consents)
    }

    /// A customer's consents: the current state of every purpose and the ledger.
    pub async fn consents(&self, reference: &str) -> Result<Consents, CustomersError> {
        let id = self.resolve_or_404(reference).await?;
        let mut conn = self.db.reader().acquire().await.map_err(StoreError::from)?;
        self.consents_in(&mut conn, &id).await
    }

    /// Customers in id order after `after` (for rebuilding projections).
    pub async fn page(&self, after: &str, limit: u32) -> Result<Vec<(Customer, Consents)>, CustomersError> {
        let rows = store::list_customers(self.db.reader(), after, limit).await?;
        let mut out = Vec::with_capacity(rows.len());
        let mut conn = self.db.reader().acquire().await.map_err(StoreError::from)?;
        for row in rows {
            let dek = self.data_key(&mut conn, &row.id).await?;
            let c = self.open_row(&dek, &row)?;
            let consents = self.consents_in(&mut conn, &row.id).await?;
            out.push((c, consents));
        }
        Ok(out)
    }

    /// Opens a consultation of `reference` at `store_id` for `duration_ms`.
    pub async fn open_consultation(
        &self,
        reference: &str,
        store_id: &str,
        opened_by: &str,
        duration_ms: i64,
    ) -> Result<Consultation, CustomersError> {
        let id = self.resolve_or_404(reference).await?;
        let now = self.clock.now_ms();
        let row = store::ConsultationRow {
            id: new_id("cst"),
            customer_id: id,
            store_id: store_id.to_owned(),
            opened_by: opened_by.to_owned(),
            opened_at: now,
            expires_at: now + duration_ms,
        };
        let mut tx = self.db.begin().await?;
        if !store::lock_customer(&mut tx, &row.customer_id).await? {
            return Err(CustomersError::NotFound(reference.to_owned()));
        }
        store::insert_consultation(&mut tx, &row).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(Consultation {
            id: row.id,
            customer_id: row.customer_id,
            store_id: row.store_id,
            opened_by: row.opened_by,
            opened_at: rfc3339(row.opened_at),
            expires_at: rfc3339(row.expires_at),
        })
    }

    /// Closes a consultation early (only one of `store_id`'s, when given).
    pub async fn close_consultation(
        &self,
        reference: &str,
        consultation_id: &str,
        store_id: Option<&str>,
    ) -> Result<(), CustomersError> {
        let id = self.resolve_or_404(reference).await?;
        let mut tx = self.db.begin().await?;
        if !store::close_consultation(&mut tx, &id, consultation_id, store_id, self.clock.now_ms()).await? {
            return Err(CustomersError::NotFound(format!("open consultation {consultation_id}")));
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }

    /// Whether a consultation of customer `id` at `store_id` is open now.
    pub async fn consultation_open(&self, id: &str, store_id: &str) -> Result<bool, CustomersError> {
        Ok(store::consultation_open(self.db.reader(), id, store_id, self.clock.now_ms()).await?)
    }

    /// Erases a customer now: their identifiers suppressed (keyed hashes: see
    /// [`crate::identity`]), their rows, lookups and consent ledger deleted and their data
    /// key destroyed (every copy of their ciphertexts, in backups too, becomes unreadable), in one
    /// transaction with `customers.erased`; then the SQLite WAL is checkpointed.
    pub async fn erase(&self, reference: &str) -> Result<(), CustomersError> {
        let id = self.resolve_or_404(reference).await?;
        let mut tx = self.db.begin().await?;
        Db::secure_deletes(&mut tx, self.db.backend(), true).await?;
        if !store::lock_customer(&mut tx, &id).await? {
            return Err(CustomersError::NotFound(reference.to_owned()));
        }
        // Events ingested later for this identity must not link or create anyone again.
        store::suppress_identifiers(&mut tx, &id, self.clock.now_ms()).await?;
        store::delete_lookups(&mut tx, &id, None).await?;
        store::delete_identity_records(&mut tx, &id).await?;
        store::delete_consultations(&mut tx, &id).await?;
        store::delete_match_suggestions(&mut tx, &id).await?;
        store::delete_measurements(&mut tx, &id).await?;
        dermis_store::sqlx::query("DELETE FROM consent_events WHERE customer_id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        crate::exports::delete_exports_of(&mut tx, &id).await?;
        store::delete_key(&mut tx, &id).await?;
        store::delete_customer(&mut tx, &id).await?;
        let now = self.clock.now_ms();
        store::append_event(&mut tx, ERASED, &id, &json!({"customer_id": id}), now).await?;
        Db::secure_deletes(&mut tx, self.db.backend(), false).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.ready.notify_one();
        if let Some(p) = &self.projection {
            p.forget(&id);
        }
        self.db
            .scrub(&[
                "customers",
                "customer_keys",
                "customer_lookups",
                "consent_events",
                "customer_consultations",
                "customer_measurements",
                "customer_identity_sightings",
                "customer_merges",
                "customer_exports",
            ])
            .await?;
        Ok(())
    }

    /// Everything held about a customer: profile, consents, and each registered domain's part.
    pub async fn export(&self, reference: &str) -> Result<Export, CustomersError> {
        let customer = self.get(reference).await?;
        let consents = self.consents(&customer.id).await?;
        let subject = Subject { customer_id: customer.id.clone(), user_id: customer.identifiers.user_id.clone() };
        let mut domains = std::collections::BTreeMap::new();
        for source in &self.personal_data {
            let part = source.export(&subject).await.map_err(|e| {
                tracing::warn!(domain = source.name(), error = %e, "a domain failed its part of an export");
                CustomersError::Source(source.name())
            })?;
            domains.insert(source.name().to_owned(), part);
        }
        let measurements = self.measurements(&customer.id, 0).await?;
        Ok(Export { customer, consents, measurements, domains, exported_at: rfc3339(self.clock.now_ms()) })
    }

    /// Asks for a customer's erasure: the customer is gone from this domain (and their data key
    /// destroyed) when this returns; the other domains are erased in the background. `requested_by`
    /// is recorded with the request.
    pub async fn request_erasure(&self, reference: &str, requested_by: &str) -> Result<Erasure, CustomersError> {
        let customer = self.get(reference).await?;
        let subject = Subject { customer_id: customer.id.clone(), user_id: customer.identifiers.user_id.clone() };
        let id = new_id("era");
        let now = self.clock.now_ms();
        let row = store::ErasureRow {
            id: id.clone(),
            subject: Some(seal(&self.erasure_key, &id, "subject", &subject)?),
            status: ErasureState::Pending.as_str().to_owned(),
            requested_by: requested_by.to_owned(),
            requested_at: now,
            completed_at: None,
            error: None,
        };
        let mut tx = self.db.begin().await?;
        store::insert_erasure(&mut tx, &row).await?;
        tx.commit().await.map_err(StoreError::from)?;
        match self.erase(&customer.id).await {
            Ok(()) | Err(CustomersError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let this = self.clone();
        let job = id.clone();
        tokio::spawn(async move {
            if let Err(e) = this.finish_erasure(&job).await {
                tracing::warn!(erasure = job, error = %e, "an erasure did not finish; it is resumed later");
            }
        });
        self.erasure(&id).await
    }

    /// Runs the rest of an erasure: this domain's part again (in case a crash interrupted it),
    /// then every registered domain's; completes it, or records which domain failed.
    pub async fn finish_erasure(&self, id: &str) -> Result<ErasureState, CustomersError> {
        let row = store::get_erasure(self.db.reader(), id)
            .await?
            .ok_or_else(|| CustomersError::NotFound(format!("erasure {id}")))?;
        let Some(sealed) = row.subject else { return Ok(ErasureState::Completed) };
        let subject: Subject = unseal(&self.erasure_key, id, "subject", &sealed)?;
        match self.erase(&subject.customer_id).await {
            Ok(()) | Err(CustomersError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        for source in &self.personal_data {
            if let Err(e) = source.erase(&subject).await {
                tracing::warn!(erasure = id, domain = source.name(), error = %e, "a domain failed its part of an erasure");
                let message = format!("the {} domain failed; it is retried", source.name());
                store::finish_erasure(self.db.writer(), id, Some(&message), self.clock.now_ms()).await?;
                return Ok(ErasureState::Failed);
            }
        }
        store::finish_erasure(self.db.writer(), id, None, self.clock.now_ms()).await?;
        Ok(ErasureState::Completed)
    }

    /// Finishes the erasures a crash or a failing domain left unfinished; returns how many
    /// completed now. Run at start and every so often.
    pub async fn resume_erasures(&self) -> Result<usize, CustomersError> {
        let mut done = 0;
        for id in store::unfinished_erasures(self.db.reader(), 100).await? {
            if self.finish_erasure(&id).await? == ErasureState::Completed {
                done += 1;
            }
        }
        Ok(done)
    }

    /// An erasure request's status.
    pub async fn erasure(&self, id: &str) -> Result<Erasure, CustomersError> {
        let row = self.erasure_row(id).await?;
        Ok(Erasure {
            id: row.id,
            status: ErasureState::parse(&row.status)
                .ok_or_else(|| StoreError::Other(format!("unknown erasure status {:?}", row.status)))?,
            requested_at: rfc3339(row.requested_at),
            completed_at: row.completed_at.map(rfc3339),
            error: row.error,
        })
    }

    /// Who asked for an erasure (as recorded).
    pub async fn erasure_requested_by(&self, id: &str) -> Result<String, CustomersError> {
        Ok(self.erasure_row(id).await?.requested_by)
    }

    async fn erasure_row(&self, id: &str) -> Result<store::ErasureRow, CustomersError> {
        store::get_erasure(self.db.reader(), id).await?.ok_or_else(|| CustomersError::NotFound(format!("erasure {id}")))
    }

    /// Re-wraps every data key (and the lookup secret) wrapped by another master key than the
    /// current one; no field is re-encrypted. Returns how many keys were re-wrapped.
    pub async fn rotate_master_key(&self) -> Result<usize, CustomersError> {
        let mut done = 0;
        loop {
            let batch = store::keys_not_under(self.db.reader(), self.keys.current_id(), 200).await?;
            if batch.is_empty() {
                return Ok(done);
            }
            let mut tx = self.db.begin().await?;
            let now = self.clock.now_ms();
            for (owner, old) in &batch {
                if let Some(new) = self.keys.rewrap(owner, old).await? {
                    store::rewrap_key(&mut tx, owner, &old.master_key_id, &new, now).await?;
                }
            }
            tx.commit().await.map_err(StoreError::from)?;
            done += batch.len();
        }
    }
}
