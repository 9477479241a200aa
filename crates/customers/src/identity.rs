//! The deterministic identity graph: which identifiers (email, phone, loyalty number, customer
//! number, user id, anonymous id, device id, POS receipt id) belong to which customer, linked in
//! real time from `identify`, `alias` and the skin quiz (see [`crate::feed`]), and the merges it
//! records when a link joins two customers, each reversible ([`Customers::unmerge`]).
//!
//! Identifiers are the keyed hashes of `customer_lookups` (never a value in clear), one customer
//! per identifier. The rules ([`IdentityRules`]):
//! - Per-kind limits. Email, phone, loyalty number, customer number and user id: one per
//!   customer. A customer's new email (or phone) replaces the old one, which then finds nobody
//!   (an address given up may be someone else's next: it must not lead to this customer).
//!   Anonymous ids (50), device ids (10) and POS receipts (1,000): the oldest goes first.
//! - Merges. A link that would join two customers merges them only if the merged customer keeps
//!   within the one-per-customer limits: two customers with different user ids, emails or phones
//!   are two people, so a phone typo or a shared device never merges them. A weak identifier
//!   (anonymous or device id) then moves to the customer who used it last; a strong one stays
//!   with its owner and is not written into the other's profile (counted as a conflict).
//!   `alias` and a manual merge are explicit: they merge regardless of the limits.
//! - Blocked values: a configured list (junk such as `undefined`, `0`, the nil UUID), and any
//!   identifier seen with more than [`IdentityRules::max_customers_per_identifier`] customers (a
//!   shared in-store tablet), blocked automatically: it is unlinked and never links or merges
//!   anyone again.
//!
//! - Suppressed values: every identifier of an erased customer but device ids is kept as a
//!   keyed hash in `customer_suppressions`; a message that carries one (user id, anonymous id,
//!   alias' previous id, email or phone) is not applied at all (`customers_feed_suppressed_total`),
//!   so events re-ingested for that identity re-create or re-link nobody. Nothing lifts a
//!   suppression through the API (a database administrator may delete the row).
//!
//! A merge moves the loser's identifiers to the winner (so the events carrying them, found by
//! their user and anonymous ids, are the winner's), fills the winner's empty contact and skin
//! fields from the loser (health facts stay in the loser's row, under the loser's consent), marks
//! the loser `merged_into` the winner (requests naming the loser are answered by the winner), and
//! records all of it in `customer_merges`. An unmerge moves back the identifiers the winner still
//! holds, clears the filled fields the winner still has unchanged, and makes the loser its own
//! customer again.

use std::collections::{BTreeSet, HashMap};

use dermis_core::clock::rfc3339;
use dermis_core::ids::new_id;
use dermis_store::StoreError;
use dermis_store::sqlx::{Any, Transaction};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::CustomersError;
use crate::crypto::{DataKey, LookupKind};
use crate::input::{SkinChanges, normalize_email};
use crate::model::{Address, Customer, FactSource, Identifiers, IngredientRef, Purpose, SkinProfile, SkinType};
use crate::service::{Customers, apply_skin};
use crate::store;
use crate::topics::PROFILE_CHANGED;

/// `customers.merged`: two customers were merged (payload: the loser's id, the winner, the merge).
pub const MERGED: &str = "customers.merged";
/// `customers.unmerged`: a merge was undone.
pub const UNMERGED: &str = "customers.unmerged";

type Tx = Transaction<'static, Any>;

/// How long the graph remembers which ingested messages it applied: 8 days (the buses keep a
/// message a week, so none of them can come again after that).
pub const APPLIED_KEPT_MS: i64 = 8 * 24 * 60 * 60 * 1000;

pub use crate::rules::IdentityRules;

/// Kinds a device or browser shares between people: they may move from one customer to another,
/// and are blocked when seen with too many.
fn shareable(kind: LookupKind) -> bool {
    matches!(kind, LookupKind::AnonymousId | LookupKind::DeviceId)
}

/// One identifier as the API shows it: its kind and keyed hash, never the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IdentifierRef {
    /// Kind.
    pub kind: LookupKind,
    /// Keyed hash (HMAC-SHA256, hex) of the normalized value.
    pub hash: String,
}

/// One identifier of a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Identifier {
    /// Kind.
    pub kind: LookupKind,
    /// Keyed hash of the normalized value.
    pub hash: String,
    /// When it was linked (RFC 3339); absent for identifiers linked before the graph kept it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linked_at: Option<String>,
    /// What linked it (`identify`, `alias`, `quiz`, `merge` ...; absent: the profile API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// A merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Merge {
    /// `mrg_...`.
    pub id: String,
    /// The customer that stayed.
    pub winner: String,
    /// The customer merged into it.
    pub loser: String,
    /// The identifiers moved from the loser to the winner.
    pub identifiers: Vec<IdentifierRef>,
    /// The winner's fields the loser's values filled (`contact.email`, `skin.skin_type` ...).
    pub filled: Vec<String>,
    /// Why (`identify:email`, `alias`, `manual:<actor>` ...).
    pub reason: String,
    /// RFC 3339.
    pub merged_at: String,
    /// RFC 3339, once undone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unmerged_at: Option<String>,
}

/// A customer's identifiers and merges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct IdentityView {
    /// The customer.
    pub customer_id: String,
    /// Its identifiers, by kind, oldest first.
    pub identifiers: Vec<Identifier>,
    /// The merges it took part in, oldest first.
    pub merges: Vec<Merge>,
}

fn merge_view(r: store::MergeRow) -> Result<Merge, CustomersError> {
    let corrupt = |e: serde_json::Error| CustomersError::Store(StoreError::Other(format!("corrupt merge record: {e}")));
    Ok(Merge {
        identifiers: serde_json::from_str(&r.identifiers).map_err(corrupt)?,
        filled: serde_json::from_str(&r.filled).map_err(corrupt)?,
        id: r.id,
        winner: r.winner,
        loser: r.loser,
        reason: r.reason,
        merged_at: rfc3339(r.merged_at),
        unmerged_at: r.unmerged_at.map(rfc3339),
    })
}

/// Profile facts an `identify` declares (already validated).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Traits {
    /// Email (as given, checked).
    pub email: Option<String>,
    /// Phone (E.164).
    pub phone: Option<String>,
    /// Name (`name`, or first and last name).
    pub name: Option<String>,
    /// Skin type.
    pub skin_type: Option<SkinType>,
    /// Date of birth (`YYYY-MM-DD`, checked).
    pub date_of_birth: Option<String>,
    /// Postal address (checked).
    pub address: Option<Address>,
    /// Allergies, resolved (health: kept only under the `health_data` consent).
    pub allergies: Option<Vec<IngredientRef>>,
}

/// What an ingested message asks of the identity graph.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `identify`: link the ids and traits to the user id's customer, keep the traits.
    Identify(Traits),
    /// `alias`: `previous_id` (an earlier user id or an anonymous id) is the user id's customer.
    Alias {
        /// The previous id.
        previous_id: String,
    },
    /// A skin quiz: its answers become facts with source `quiz` (health facts only under the
    /// `health_data` consent).
    Quiz(SkinChanges),
}

/// One ingested message, as the identity graph applies it.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityEvent {
    /// Its source.
    pub write_key_id: String,
    /// Its `messageId` (with the source: what makes applying it twice change nothing).
    pub message_id: String,
    /// `userId`.
    pub user_id: Option<String>,
    /// `anonymousId`.
    pub anonymous_id: Option<String>,
    /// `context.device.id`.
    pub device_id: Option<String>,
    /// What to do.
    pub action: Action,
}

/// What applying an event did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The message had been applied already: nothing changed.
    pub duplicate: bool,
    /// The customer it was applied to (none: no identifier named a customer).
    pub customer_id: Option<String>,
    /// A customer was created for its user id.
    pub created: bool,
    /// Merges it made.
    pub merges: Vec<String>,
    /// Identifiers newly linked or moved to the customer.
    pub linked: usize,
    /// Identifiers ignored because they are blocked (configured or automatic).
    pub blocked: usize,
    /// Strong identifiers that belong to another customer who cannot be merged (kept there).
    pub conflicts: usize,
    /// Health facts skipped for want of the `health_data` consent.
    pub health_skipped: usize,
    /// Not applied: the message carries an identifier of an erased customer.
    pub suppressed: bool,
}

/// A customer created inside an identity transaction: its key is wrapped before it starts.
struct Fresh {
    id: String,
    dek: DataKey,
    wrapped: crate::crypto::WrappedKey,
}

impl Customers {
    /// The identity rules in force.
    pub fn identity_rules(&self) -> &IdentityRules {
        &self.identity
    }

    async fn owner_in(&self, tx: &mut Tx, kind: LookupKind, value: &str) -> Result<Option<String>, CustomersError> {
        let hash = self.hasher.hash(kind, value);
        Ok(store::find_lookup(&mut **tx, kind, &hash).await?)
    }

    /// Kinds limited to one per customer that both customers hold (apart from `except`).
    async fn clashes(
        &self,
        tx: &mut Tx,
        a: &str,
        b: &str,
        except: Option<LookupKind>,
    ) -> Result<Vec<LookupKind>, CustomersError> {
        let ka: BTreeSet<String> = store::identifiers_of(&mut **tx, a).await?.into_iter().map(|r| r.kind).collect();
        let kb: BTreeSet<String> = store::identifiers_of(&mut **tx, b).await?.into_iter().map(|r| r.kind).collect();
        Ok(LookupKind::ALL
            .into_iter()
            .filter(|k| Some(*k) != except && self.identity.limit(*k) == 1)
            .filter(|k| ka.contains(k.as_str()) && kb.contains(k.as_str()))
            .collect())
    }

    /// Makes room for one more identifier of `kind` on `customer`: a one-per-customer kind loses
    /// its current value (a changed email), a limited kind its oldest.
    async fn make_room(&self, tx: &mut Tx, customer: &str, kind: LookupKind) -> Result<(), CustomersError> {
        let held: Vec<store::IdentifierRow> =
            store::identifiers_of(&mut **tx, customer).await?.into_iter().filter(|r| r.kind == kind.as_str()).collect();
        let limit = self.identity.limit(kind);
        if held.len() >= limit {
            for r in &held[..held.len() + 1 - limit] {
                store::unlink_identifier(tx, kind, &r.hash).await?;
            }
        }
        Ok(())
    }

    /// Links one identifier to `anchor` under the rules; true when `anchor` holds it afterwards.
    #[allow(clippy::too_many_arguments)]
    async fn link(
        &self,
        tx: &mut Tx,
        anchor: &str,
        kind: LookupKind,
        value: &str,
        source: &str,
        force: bool,
        out: &mut Applied,
    ) -> Result<bool, CustomersError> {
        let now = self.clock.now_ms();
        let hash = self.hasher.hash(kind, value);
        if self.identity.listed(kind, value) || store::is_blocked(&mut **tx, kind, &hash).await? {
            out.blocked += 1;
            metrics::counter!("customers_identity_blocked_total", "kind" => kind.as_str()).increment(1);
            return Ok(false);
        }
        if shareable(kind) && !force {
            let seen = store::sighting(tx, kind, &hash, anchor, now).await?;
            if seen > self.identity.max_customers_per_identifier {
                store::block_identifier(tx, kind, &hash, &format!("seen with {seen} customers"), now).await?;
                store::unlink_identifier(tx, kind, &hash).await?;
                out.blocked += 1;
                metrics::counter!("customers_identity_blocked_total", "kind" => kind.as_str()).increment(1);
                tracing::info!(
                    kind = kind.as_str(),
                    customers = seen,
                    "an identifier shared by many customers is blocked"
                );
                return Ok(false);
            }
        }
        match store::find_lookup(&mut **tx, kind, &hash).await? {
            Some(owner) if owner == anchor => Ok(true),
            Some(owner) => {
                let clashes = self.clashes(tx, anchor, &owner, Some(kind)).await?;
                if force || clashes.is_empty() {
                    if self.identity.limit(kind) == 1 && !force {
                        // The anchor's own value of this kind gives way to the one declared now.
                        self.make_room(tx, anchor, kind).await?;
                    }
                    let reason = format!("{source}:{}", kind.as_str());
                    let merge = self.merge_in(tx, anchor, &owner, &reason).await?;
                    out.merges.push(merge.id);
                    out.linked += 1;
                    Ok(true)
                } else if shareable(kind) {
                    self.make_room(tx, anchor, kind).await?;
                    store::link_identifier(tx, kind, &hash, anchor, now, source).await?;
                    out.linked += 1;
                    Ok(true)
                } else {
                    out.conflicts += 1;
                    metrics::counter!("customers_identity_conflicts_total", "kind" => kind.as_str()).increment(1);
                    Ok(false)
                }
            }
            None => {
                self.make_room(tx, anchor, kind).await?;
                store::link_identifier(tx, kind, &hash, anchor, now, source).await?;
                out.linked += 1;
                Ok(true)
            }
        }
    }

    /// Merges `loser` into `winner` inside `tx` (both exist, neither merged already).
    async fn merge_in(&self, tx: &mut Tx, winner: &str, loser: &str, reason: &str) -> Result<Merge, CustomersError> {
        let now = self.clock.now_ms();
        // Row locks in id order: two merges of the same pair cannot wait on each other.
        let (first, second) = if winner < loser { (winner, loser) } else { (loser, winner) };
        for id in [first, second] {
            if !store::lock_customer(tx, id).await? {
                return Err(CustomersError::NotFound(id.to_owned()));
            }
        }
        let moved = store::identifiers_of(&mut **tx, loser).await?;
        let mut refs = Vec::with_capacity(moved.len());
        for r in &moved {
            if store::move_identifier(tx, &r.kind, &r.hash, loser, winner).await?
                && let Some(kind) = LookupKind::parse(&r.kind)
            {
                refs.push(IdentifierRef { kind, hash: r.hash.clone() });
            }
        }
        let (w, wrow) = self.read_in(tx, winner).await?;
        let (l, _) = self.read_in(tx, loser).await?;
        let mut next = w.clone();
        let filled = fill(&mut next, &l);
        if next != w {
            self.save(tx, next, &wrow).await?;
        }
        store::set_merged_into(tx, loser, Some(winner)).await?;
        let row = store::MergeRow {
            id: new_id("mrg"),
            winner: winner.to_owned(),
            loser: loser.to_owned(),
            identifiers: serde_json::to_string(&refs).map_err(|e| StoreError::Other(e.to_string()))?,
            filled: serde_json::to_string(&filled).map_err(|e| StoreError::Other(e.to_string()))?,
            reason: reason.to_owned(),
            merged_at: now,
            unmerged_at: None,
        };
        store::insert_merge(tx, &row).await?;
        let payload = json!({"customer_id": loser, "winner": winner, "merge_id": row.id});
        store::append_event(tx, MERGED, loser, &payload, now).await?;
        metrics::counter!("customers_merges_total").increment(1);
        merge_view(row)
    }

    /// Merges customer `other` into `reference` (both a customer id or a user id), by hand.
    pub async fn merge(&self, reference: &str, other: &str, actor: &str) -> Result<Merge, CustomersError> {
        let winner = self.resolve_or_404(reference).await?;
        let loser = self.resolve_or_404(other).await?;
        if winner == loser {
            return Err(CustomersError::Conflict(format!(
                "{other} is customer {winner} already: a customer cannot be merged with itself"
            )));
        }
        let mut tx = self.db.begin().await?;
        let merge = self.merge_in(&mut tx, &winner, &loser, &format!("manual:{actor}")).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.after_identity(&[winner, loser]).await;
        Ok(merge)
    }

    /// Undoes a merge (once: then it is [`CustomersError::NotFound`]): the loser is its own customer again, with the identifiers the winner
    /// still holds of those it took, and the winner loses the fields the merge filled (where
    /// it still has the loser's value).
    pub async fn unmerge(&self, merge_id: &str) -> Result<Merge, CustomersError> {
        let m = store::get_merge(self.db.reader(), merge_id)
            .await?
            .ok_or_else(|| CustomersError::NotFound(format!("merge {merge_id}")))?;
        // A merge undone is gone, as a revoked key is: undoing it again finds nothing (404).
        let already = || CustomersError::NotFound(format!("merge {merge_id} (undone already)"));
        if m.unmerged_at.is_some() {
            return Err(already());
        }
        // The identifiers went wherever the winner went since.
        let holder = self.surviving(&m.winner).await?;
        let now = self.clock.now_ms();
        let mut tx = self.db.begin().await?;
        if !store::mark_unmerged(&mut tx, merge_id, now).await? {
            return Err(already());
        }
        let mut ids: Vec<&str> = vec![&m.winner, &m.loser, &holder];
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            if !store::lock_customer(&mut tx, id).await? {
                return Err(CustomersError::NotFound(id.to_owned()));
            }
        }
        let moved: Vec<IdentifierRef> =
            serde_json::from_str(&m.identifiers).map_err(|e| StoreError::Other(format!("corrupt merge: {e}")))?;
        for r in &moved {
            store::move_identifier(&mut tx, r.kind.as_str(), &r.hash, &holder, &m.loser).await?;
        }
        let filled: Vec<String> =
            serde_json::from_str(&m.filled).map_err(|e| StoreError::Other(format!("corrupt merge: {e}")))?;
        let (w, wrow) = self.read_in(&mut tx, &m.winner).await?;
        let (l, _) = self.read_in(&mut tx, &m.loser).await?;
        let mut next = w.clone();
        unfill(&mut next, &l, &filled);
        if next != w {
            self.save(&mut tx, next, &wrow).await?;
        }
        store::set_merged_into(&mut tx, &m.loser, None).await?;
        let payload = json!({"customer_id": m.loser, "winner": m.winner, "merge_id": m.id});
        store::append_event(&mut tx, UNMERGED, &m.loser, &payload, now).await?;
        // The winner's profile is read again by every node's projection.
        let payload = json!({"customer_id": m.winner});
        store::append_event(&mut tx, UNMERGED, &m.winner, &payload, now).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.after_identity(&[m.winner.clone(), m.loser.clone(), holder]).await;
        let row = store::get_merge(self.db.reader(), merge_id)
            .await?
            .ok_or_else(|| CustomersError::NotFound(format!("merge {merge_id}")))?;
        merge_view(row)
    }

    /// A customer's identifiers (kinds and keyed hashes) and merges.
    pub async fn identity(&self, reference: &str) -> Result<IdentityView, CustomersError> {
        let id = self.resolve_or_404(reference).await?;
        let identifiers = store::identifiers_of(self.db.reader(), &id)
            .await?
            .into_iter()
            .filter_map(|r| {
                Some(Identifier {
                    kind: LookupKind::parse(&r.kind)?,
                    hash: r.hash,
                    linked_at: r.linked_at.map(rfc3339),
                    source: r.source,
                })
            })
            .collect();
        let merges =
            store::merges_of(self.db.reader(), &id).await?.into_iter().map(merge_view).collect::<Result<_, _>>()?;
        Ok(IdentityView { customer_id: id, identifiers, merges })
    }

    /// The customer an identifier of `kind` (a raw value, normalized here) belongs to.
    pub async fn find_identifier(&self, kind: LookupKind, value: &str) -> Result<Option<String>, CustomersError> {
        let Some(v) = normalize(kind, value) else { return Ok(None) };
        Ok(store::find_lookup(self.db.reader(), kind, &self.hasher.hash(kind, &v)).await?)
    }

    /// Whether an identifier is blocked (configured or automatically).
    pub async fn identifier_blocked(&self, kind: LookupKind, value: &str) -> Result<bool, CustomersError> {
        let Some(v) = normalize(kind, value) else { return Ok(true) };
        Ok(self.identity.listed(kind, &v)
            || store::is_blocked(self.db.reader(), kind, &self.hasher.hash(kind, &v)).await?)
    }

    /// Whether an identifier (a raw value, normalized here) belonged to an erased customer.
    pub async fn identifier_suppressed(&self, kind: LookupKind, value: &str) -> Result<bool, CustomersError> {
        let Some(v) = normalize(kind, value) else { return Ok(false) };
        Ok(store::is_suppressed(self.db.reader(), kind, &self.hasher.hash(kind, &v)).await?)
    }

    /// Whether a message carries an identifier of an erased customer.
    async fn suppressed_in(&self, tx: &mut Tx, ev: &IdentityEvent) -> Result<bool, CustomersError> {
        let mut carried: Vec<(LookupKind, Option<String>)> = vec![
            (LookupKind::UserId, ev.user_id.as_deref().and_then(|u| normalize(LookupKind::UserId, u))),
            (LookupKind::AnonymousId, ev.anonymous_id.as_deref().and_then(|a| normalize(LookupKind::AnonymousId, a))),
        ];
        match &ev.action {
            Action::Identify(t) => {
                carried.push((LookupKind::Email, t.email.as_deref().map(normalize_email)));
                carried.push((LookupKind::Phone, t.phone.as_deref().and_then(|p| normalize(LookupKind::Phone, p))));
            }
            Action::Alias { previous_id } => {
                for kind in [LookupKind::UserId, LookupKind::AnonymousId] {
                    carried.push((kind, normalize(kind, previous_id)));
                }
            }
            Action::Quiz(_) => {}
        }
        for (kind, value) in carried {
            if let Some(v) = value
                && store::is_suppressed(&mut **tx, kind, &self.hasher.hash(kind, &v)).await?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Forgets which ingested messages were applied more than 8 days ago (the buses keep a
    /// message a week, so none of them can come again); returns how many. Run every so often.
    pub async fn purge_applied_messages(&self) -> Result<u64, CustomersError> {
        Ok(store::purge_applied(self.db.writer(), self.clock.now_ms() - APPLIED_KEPT_MS).await?)
    }

    /// After an identity commit: wake the relay, refresh this node's projection.
    async fn after_identity(&self, ids: &[String]) {
        self.ready.notify_one();
        let Some(p) = &self.projection else { return };
        for id in ids {
            let surviving = match self.surviving(id).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "refreshing the profile projection failed; the bus will");
                    continue;
                }
            };
            if surviving != *id {
                p.forget(id);
                continue;
            }
            let mut conn = match self.db.reader().acquire().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "refreshing the profile projection failed; the bus will");
                    continue;
                }
            };
            match self.read_in(&mut conn, id).await {
                Ok((c, _)) => self.committed(&c, None).await,
                Err(e) => tracing::warn!(error = %e, "refreshing the profile projection failed; the bus will"),
            }
        }
    }

    async fn fresh(&self) -> Result<Fresh, CustomersError> {
        let id = new_id("cus");
        let dek = DataKey::generate();
        let wrapped = self.keys.wrap(&id, &dek).await?;
        Ok(Fresh { id, dek, wrapped })
    }

    async fn create_in(&self, tx: &mut Tx, f: &Fresh, user_id: &str) -> Result<(), CustomersError> {
        let now = self.clock.now_ms();
        let stamp = rfc3339(now);
        store::insert_key(tx, &f.id, &f.wrapped, now).await?;
        let customer = Customer {
            id: f.id.clone(),
            version: 1,
            contact: Default::default(),
            identifiers: Identifiers { user_id: Some(user_id.to_owned()), ..Default::default() },
            skin_profile: SkinProfile::default(),
            unknown_allergens: Vec::new(),
            redacted: Vec::new(),
            created_at: stamp.clone(),
            updated_at: stamp,
        };
        store::insert_customer(tx, &self.seal_row(&f.dek, &customer, now, now)?).await?;
        store::append_event(tx, PROFILE_CHANGED, &f.id, &json!({"customer_id": f.id, "version": 1}), now).await?;
        Ok(())
    }

    /// Applies one ingested message to the identity graph and the profile, in one transaction.
    /// Applying a message again (same source and `messageId`) changes nothing.
    pub async fn apply_identity(&self, ev: &IdentityEvent) -> Result<Applied, CustomersError> {
        let mut done = self.apply_identities(std::slice::from_ref(ev)).await?;
        Ok(done.pop().unwrap_or_default())
    }

    /// Applies ingested messages in order, in one transaction (all or none); returns what each
    /// did, in the same order. A message applied before counts for nothing.
    pub async fn apply_identities(&self, events: &[IdentityEvent]) -> Result<Vec<Applied>, CustomersError> {
        let mut out: Vec<Applied> = Vec::with_capacity(events.len());
        let mut pending = Vec::new();
        // Customers created for unknown user ids need wrapped keys, made before the write lock.
        let mut fresh = HashMap::new();
        for (i, ev) in events.iter().enumerate() {
            out.push(Applied::default());
            if store::was_applied(self.db.reader(), &ev.write_key_id, &ev.message_id).await? {
                out[i].duplicate = true;
                continue;
            }
            pending.push(i);
            if let Some(u) = self.user_of(ev)
                && !fresh.contains_key(&u)
                && self.find_identifier(LookupKind::UserId, &u).await?.is_none()
            {
                let f = self.fresh().await?;
                fresh.insert(u, f);
            }
        }
        if pending.is_empty() {
            return Ok(out);
        }
        let mut tx = self.db.begin().await?;
        for &i in &pending {
            out[i] = self.apply_in(&mut tx, &events[i], &mut fresh).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        let mut touched = Vec::new();
        for a in &out {
            touched.extend(a.customer_id.clone());
            for m in &a.merges {
                if let Some(r) = store::get_merge(self.db.reader(), m).await? {
                    touched.push(r.loser);
                }
            }
        }
        touched.sort();
        touched.dedup();
        self.after_identity(&touched).await;
        Ok(out)
    }

    /// The user id a message names, unless it is a blocked value.
    fn user_of(&self, ev: &IdentityEvent) -> Option<String> {
        let user = ev.user_id.as_deref().and_then(|u| normalize(LookupKind::UserId, u));
        user.filter(|u| !self.identity.listed(LookupKind::UserId, u))
    }

    /// Applies one message inside `tx`.
    async fn apply_in(
        &self,
        tx: &mut Tx,
        ev: &IdentityEvent,
        fresh: &mut HashMap<String, Fresh>,
    ) -> Result<Applied, CustomersError> {
        if !store::mark_applied(tx, &ev.write_key_id, &ev.message_id, self.clock.now_ms()).await? {
            return Ok(Applied { duplicate: true, ..Default::default() });
        }
        if self.suppressed_in(tx, ev).await? {
            metrics::counter!("customers_feed_suppressed_total").increment(1);
            return Ok(Applied { suppressed: true, ..Default::default() });
        }
        let user = self.user_of(ev);
        let mut out = Applied::default();
        let source = match ev.action {
            Action::Identify(_) => "identify",
            Action::Alias { .. } => "alias",
            Action::Quiz(_) => "quiz",
        };
        let anon = ev.anonymous_id.as_deref().and_then(|a| normalize(LookupKind::AnonymousId, a));
        let device = ev.device_id.as_deref().and_then(|d| normalize(LookupKind::DeviceId, d));
        let traits = match &ev.action {
            Action::Identify(t) => t.clone(),
            _ => Traits::default(),
        };
        let email = traits.email.as_deref().map(normalize_email);
        let phone = traits.phone.as_deref().and_then(|p| normalize(LookupKind::Phone, p));

        // The customer the message is about.
        let mut anchor: Option<String> = None;
        if let Some(u) = &user {
            anchor = self.owner_in(tx, LookupKind::UserId, u).await?;
            if anchor.is_none() {
                // A customer known by this email or phone but without a user id is this one.
                for (kind, v) in [(LookupKind::Email, &email), (LookupKind::Phone, &phone)] {
                    let Some(v) = v else { continue };
                    if anchor.is_some() || self.identity.listed(kind, v) {
                        continue;
                    }
                    if let Some(o) = self.owner_in(tx, kind, v).await?
                        && !store::identifiers_of(&mut **tx, &o).await?.iter().any(|r| r.kind == "user_id")
                    {
                        anchor = Some(o);
                    }
                }
                if let Some(a) = &anchor {
                    self.link(tx, a, LookupKind::UserId, u, source, false, &mut out).await?;
                } else if let Some(f) = fresh.remove(u) {
                    self.create_in(tx, &f, u).await?;
                    let id = f.id.clone();
                    self.link(tx, &id, LookupKind::UserId, u, source, false, &mut out).await?;
                    anchor = Some(id);
                    out.created = true;
                }
            }
        } else {
            for (kind, v) in
                [(LookupKind::AnonymousId, &anon), (LookupKind::DeviceId, &device), (LookupKind::Email, &email)]
            {
                let Some(v) = v else { continue };
                if anchor.is_none() && !self.identity.listed(kind, v) {
                    let hash = self.hasher.hash(kind, v);
                    if !store::is_blocked(&mut **tx, kind, &hash).await? {
                        anchor = store::find_lookup(&mut **tx, kind, &hash).await?;
                    }
                }
            }
        }
        let Some(anchor) = anchor else {
            // The user id's customer went away since it was looked up (erased): try again later.
            if user.is_some() {
                return Err(CustomersError::Store(StoreError::Unavailable(
                    "the user id's customer changed; retry".into(),
                )));
            }
            // Nobody known.
            return Ok(out);
        };
        if !store::lock_customer(tx, &anchor).await? {
            return Err(CustomersError::NotFound(anchor));
        }

        // The identifiers the message carries.
        if let Action::Alias { previous_id } = &ev.action
            && let Some(prev) = normalize(LookupKind::UserId, previous_id)
        {
            if self.owner_in(tx, LookupKind::UserId, &prev).await?.is_some() {
                self.link(tx, &anchor, LookupKind::UserId, &prev, source, true, &mut out).await?;
            } else {
                self.link(tx, &anchor, LookupKind::AnonymousId, &prev, source, false, &mut out).await?;
            }
        }
        if let Some(a) = &anon {
            self.link(tx, &anchor, LookupKind::AnonymousId, a, source, false, &mut out).await?;
        }
        if let Some(d) = &device {
            self.link(tx, &anchor, LookupKind::DeviceId, d, source, false, &mut out).await?;
        }
        let email_ok = match &email {
            Some(e) => self.link(tx, &anchor, LookupKind::Email, e, source, false, &mut out).await?,
            None => false,
        };
        let phone_ok = match &phone {
            Some(p) => self.link(tx, &anchor, LookupKind::Phone, p, source, false, &mut out).await?,
            None => false,
        };

        // The facts.
        let (current, row) = self.read_in(tx, &anchor).await?;
        let mut next = current.clone();
        let stamp = rfc3339(self.clock.now_ms());
        match &ev.action {
            Action::Identify(t) => {
                if email_ok {
                    next.contact.email = t.email.clone();
                }
                if phone_ok {
                    next.contact.phone = phone.clone();
                }
                if t.name.is_some() {
                    next.contact.name = t.name.clone();
                }
                if t.date_of_birth.is_some() {
                    next.contact.date_of_birth = t.date_of_birth.clone();
                }
                if t.address.is_some() {
                    next.contact.address = t.address.clone();
                }
                if t.skin_type.is_some() || t.allergies.is_some() {
                    let mut changes = SkinChanges {
                        source: FactSource::SelfDeclared,
                        skin_type: t.skin_type.map(Some),
                        allergies: t.allergies.clone().map(Some),
                        ..Default::default()
                    };
                    if changes.sets_health() && !self.consents_in(tx, &anchor).await?.granted(Purpose::HealthData) {
                        out.health_skipped = strip_health(&mut changes);
                        metrics::counter!("customers_health_facts_skipped_total", "source" => "identify")
                            .increment(out.health_skipped as u64);
                    }
                    apply_skin(&mut next.skin_profile, changes, &stamp);
                }
            }
            Action::Alias { .. } => {}
            Action::Quiz(changes) => {
                let mut changes = changes.clone();
                if changes.sets_health() && !self.consents_in(tx, &anchor).await?.granted(Purpose::HealthData) {
                    out.health_skipped = strip_health(&mut changes);
                    metrics::counter!("customers_health_facts_skipped_total", "source" => "quiz")
                        .increment(out.health_skipped as u64);
                }
                apply_skin(&mut next.skin_profile, changes, &stamp);
            }
        }
        if next.identifiers.user_id.is_none() {
            next.identifiers.user_id = user.clone();
        }
        if next != current {
            self.save(tx, next, &row).await?;
        }
        out.customer_id = Some(anchor);
        Ok(out)
    }
}

/// Sets the health facts of `c` aside; returns how many there were.
fn strip_health(c: &mut SkinChanges) -> usize {
    let mut n = 0;
    let mut take = |set: bool| n += usize::from(set);
    take(matches!(c.conditions, Some(Some(_))));
    take(matches!(c.sensitivities, Some(Some(_))));
    take(matches!(c.allergies, Some(Some(_))));
    take(matches!(c.pregnant, Some(Some(_))));
    take(matches!(c.breastfeeding, Some(Some(_))));
    c.conditions = None;
    c.sensitivities = None;
    c.allergies = None;
    c.pregnant = None;
    c.breastfeeding = None;
    n
}

/// A raw identifier as the graph hashes it (`None`: empty or too long to be an identifier).
pub fn normalize(kind: LookupKind, raw: &str) -> Option<String> {
    let t = raw.trim();
    if t.is_empty() || t.chars().count() > 200 || t.chars().any(char::is_control) {
        return None;
    }
    Some(match kind {
        LookupKind::Email => normalize_email(t),
        LookupKind::Phone => crate::input::parse_phone(t).ok()?,
        _ => t.to_owned(),
    })
}

/// Fills `w`'s empty contact and skin fields from `l`; returns their names.
fn fill(w: &mut Customer, l: &Customer) -> Vec<String> {
    let mut filled = Vec::new();
    macro_rules! take {
        ($($path:ident).+, $name:literal) => {
            if w.$($path).+.is_none() && l.$($path).+.is_some() {
                w.$($path).+ = l.$($path).+.clone();
                filled.push($name.to_owned());
            }
        };
    }
    take!(contact.name, "contact.name");
    take!(contact.email, "contact.email");
    take!(contact.phone, "contact.phone");
    take!(contact.date_of_birth, "contact.date_of_birth");
    take!(contact.address, "contact.address");
    take!(identifiers.loyalty, "identifiers.loyalty");
    take!(skin_profile.skin.skin_type, "skin.skin_type");
    take!(skin_profile.skin.skin_tone, "skin.skin_tone");
    take!(skin_profile.skin.concerns, "skin.concerns");
    take!(skin_profile.skin.lifestyle, "skin.lifestyle");
    filled
}

/// Clears the fields a merge filled, where `w` still holds `l`'s value.
fn unfill(w: &mut Customer, l: &Customer, filled: &[String]) {
    macro_rules! back {
        ($($path:ident).+, $name:literal) => {
            if filled.iter().any(|f| f == $name) && w.$($path).+ == l.$($path).+ {
                w.$($path).+ = None;
            }
        };
    }
    back!(contact.name, "contact.name");
    back!(contact.email, "contact.email");
    back!(contact.phone, "contact.phone");
    back!(contact.date_of_birth, "contact.date_of_birth");
    back!(contact.address, "contact.address");
    back!(identifiers.loyalty, "identifiers.loyalty");
    back!(skin_profile.skin.skin_type, "skin.skin_type");
    back!(skin_profile.skin.skin_tone, "skin.skin_tone");
    back!(skin_profile.skin.concerns, "skin.concerns");
    back!(skin_profile.skin.lifestyle, "skin.lifestyle");
}
