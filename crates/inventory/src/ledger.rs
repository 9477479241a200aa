//! The [`Ledger`]: one serialized state machine that applies batches of commands, keeps the journal
//! and its projections (balances, holds, transfers, purchase orders), answers reads, and checks its
//! own invariants.
//!
//! It owns no I/O and no clock. A store persists what [`Ledger::apply`] returns and rebuilds a
//! ledger with [`Ledger::restore`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::allocation::{self, StockView};
use crate::balances::Balances;
use crate::catalog::{Catalog, SetupError};
use crate::command::{Changes, Command, KeptEffect, Outcome, Rejection, Request};
use crate::draft::{Draft, Staged};
use crate::kits;
use crate::model::{
    Account, BalanceKey, Channel, ChannelPolicy, EpochDay, External, IdempotencyKey, Location, LocationId, Lot, LotCode,
};
use crate::model::{Movement, PurchaseOrderId, Quantity, Reference, ReservationId, Setup, SkuId, StockState};
use crate::model::{TimestampMs, TransferId};
use crate::records::{PurchaseOrder, Reservation, ReservationStatus, SkuLot, Transfer, TransferStatus};

/// A command applied before, kept so a repeat of its key returns the same outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedRequest {
    /// The command as first applied.
    pub command: Command,
    /// Its outcome.
    pub outcome: Outcome,
}

/// An applied command as the ledger keeps it: its movements by position in the journal (a
/// command's movements are consecutive) rather than copies, and its effect beside its changes
/// rather than a second copy of the reservation it carries. Half the memory of an
/// [`AppliedRequest`]; [`Applied::request`] rebuilds that.
#[derive(Debug, Clone)]
struct Applied {
    command: Command,
    /// The journal index of its first movement.
    first: usize,
    /// How many movements.
    movements: usize,
    changes: Changes,
    effect: KeptEffect,
}

impl Applied {
    /// `outcome` as kept; its movements must be in the journal.
    fn new(command: Command, outcome: &Outcome) -> Self {
        let changes = outcome.changes.clone();
        Self {
            command,
            first: outcome.movements.first().map_or(0, |m| (m.id as usize).saturating_sub(1)),
            movements: outcome.movements.len(),
            effect: KeptEffect::new(&outcome.effect, &changes),
            changes,
        }
    }

    /// The outcome as first answered (not marked replayed).
    fn outcome(&self, key: &IdempotencyKey, journal: &[Movement]) -> Outcome {
        let movements = journal.get(self.first..self.first + self.movements).unwrap_or_default().to_vec();
        let effect = self.effect.effect(&self.changes).expect("a kept effect names one of its own changes");
        Outcome { key: key.clone(), replayed: false, movements, changes: self.changes.clone(), effect }
    }

    fn request(&self, key: &IdempotencyKey, journal: &[Movement]) -> AppliedRequest {
        AppliedRequest { command: self.command.clone(), outcome: self.outcome(key, journal) }
    }
}

/// Everything a store keeps besides the journal, to [`Ledger::restore`] a ledger.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Records {
    /// Lots by SKU.
    pub lots: Vec<SkuLot>,
    /// Every reservation, in any status.
    pub reservations: Vec<Reservation>,
    /// Every transfer.
    pub transfers: Vec<Transfer>,
    /// Every purchase order.
    pub purchase_orders: Vec<PurchaseOrder>,
    /// Applied commands by idempotency key.
    pub applied: BTreeMap<IdempotencyKey, AppliedRequest>,
}

/// A broken invariant: a bug, or a store that lost or altered part of the journal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("inventory invariant broken: {0}")]
pub struct InvariantViolation(pub String);

/// Why a ledger could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// The setup is invalid.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The journal is not a dense sequence from 1.
    #[error("journal is not in order: movement at position {position} has id {id}")]
    JournalOrder {
        /// Expected id.
        position: u64,
        /// Found id.
        id: u64,
    },
    /// The records do not match the journal.
    #[error(transparent)]
    Invariant(#[from] InvariantViolation),
}

/// Per-location figures of one SKU for one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationAvailability {
    /// The location.
    pub location: LocationId,
    /// Units free on hand (including units of holds past their deadline).
    pub on_hand: Quantity,
    /// Units held by live holds.
    pub reserved: Quantity,
    /// Units ordered and not shipped.
    pub committed: Quantity,
    /// Units expected from purchase orders and transfers on their way.
    pub incoming: Quantity,
    /// Units the channel may reserve: sellable lots less safety stock, never negative.
    pub available: Quantity,
}

/// What one channel can sell of one SKU. For a kit, only `available` is filled in: a kit has no
/// balances of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    /// The SKU (plain or kit).
    pub sku: SkuId,
    /// The channel.
    pub channel: Channel,
    /// Units over all the channel's locations.
    pub available: Quantity,
    /// Per location, in the channel's order.
    pub locations: Vec<LocationAvailability>,
}

/// A lot's trail, for a recall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recall {
    /// Every movement of the lot, in journal order.
    pub movements: Vec<Movement>,
    /// The documents on them (orders, receipts, purchase orders...), each once.
    pub references: Vec<Reference>,
    /// The reservations the lot was held or sold under, each once (they name the customer).
    pub reservations: Vec<ReservationId>,
    /// Units of the lot with customers now (sold less returned).
    pub with_customers: Quantity,
}

/// Units of a lot close to its expiry at a location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiringStock {
    /// The SKU.
    pub sku: SkuId,
    /// The lot.
    pub lot: Lot,
    /// Where.
    pub location: LocationId,
    /// Units on hand or held.
    pub quantity: Quantity,
}

/// The inventory ledger of a set of SKUs: apply batches, read, check.
#[derive(Debug, Clone)]
pub struct Ledger {
    pub(crate) catalog: Catalog,
    pub(crate) balances: Balances,
    pub(crate) lots: BTreeMap<(SkuId, LotCode), Lot>,
    pub(crate) reservations: BTreeMap<ReservationId, Reservation>,
    /// Holds with status `Held`, by deadline: the sweeper's queue.
    pub(crate) deadlines: BTreeSet<(TimestampMs, ReservationId)>,
    pub(crate) transfers: BTreeMap<TransferId, Transfer>,
    pub(crate) purchase_orders: BTreeMap<PurchaseOrderId, PurchaseOrder>,
    applied: BTreeMap<IdempotencyKey, Applied>,
    journal: Vec<Movement>,
    by_lot: BTreeMap<(SkuId, LotCode), Vec<usize>>,
    by_reference: BTreeMap<Reference, Vec<usize>>,
    sku_seq: BTreeMap<SkuId, u64>,
    /// The latest time a batch was applied at; time never runs backwards inside the ledger.
    clock_ms: TimestampMs,
}

impl Ledger {
    /// An empty ledger over a setup.
    pub fn new(setup: Setup) -> Result<Self, SetupError> {
        Ok(Self {
            catalog: Catalog::new(setup)?,
            balances: Balances::default(),
            lots: BTreeMap::new(),
            reservations: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            transfers: BTreeMap::new(),
            purchase_orders: BTreeMap::new(),
            applied: BTreeMap::new(),
            journal: Vec::new(),
            by_lot: BTreeMap::new(),
            by_reference: BTreeMap::new(),
            sku_seq: BTreeMap::new(),
            clock_ms: TimestampMs::MIN,
        })
    }

    /// Rebuilds a ledger from what a store kept: balances are recomputed from the journal, and the
    /// records must agree with them.
    pub fn restore(setup: Setup, records: Records, journal: Vec<Movement>) -> Result<Self, RestoreError> {
        let mut ledger = Self::new(setup)?;
        for (position, movement) in journal.iter().enumerate() {
            let position = position as u64 + 1;
            if movement.id != position {
                return Err(RestoreError::JournalOrder { position, id: movement.id });
            }
        }
        ledger.lots = records.lots.into_iter().map(|l| ((l.sku, l.lot.code.clone()), l.lot)).collect();
        for reservation in records.reservations {
            if reservation.status == ReservationStatus::Held {
                ledger.deadlines.insert((reservation.expires_at_ms, reservation.id.clone()));
            }
            ledger.reservations.insert(reservation.id.clone(), reservation);
        }
        ledger.transfers = records.transfers.into_iter().map(|t| (t.id.clone(), t)).collect();
        ledger.purchase_orders = records.purchase_orders.into_iter().map(|p| (p.id.clone(), p)).collect();
        for movement in journal {
            ledger.record(movement);
        }
        for (key, request) in records.applied {
            let applied = Applied::new(request.command, &request.outcome);
            let kept = ledger.journal.get(applied.first..applied.first + applied.movements);
            if kept != Some(request.outcome.movements.as_slice()) {
                return Err(
                    InvariantViolation(format!("the movements applied under {key} are not in the journal")).into()
                );
            }
            ledger.applied.insert(key, applied);
        }
        ledger.check()?;
        Ok(ledger)
    }

    /// Adds SKUs, kits, locations or channel policies. Nothing already defined may change, except
    /// a channel's policy (its safety stock and shelf life), which a new one replaces.
    pub fn extend_setup(&mut self, more: Setup) -> Result<(), SetupError> {
        self.catalog.extend(more)
    }

    /// The first outcome of an applied key (what a retry of it answers), and its command.
    pub fn applied(&self, key: &IdempotencyKey) -> Option<AppliedRequest> {
        Some(self.applied.get(key)?.request(key, &self.journal))
    }

    /// Whether a command was applied under `key`.
    pub fn is_applied(&self, key: &IdempotencyKey) -> bool {
        self.applied.contains_key(key)
    }

    /// Whether `sku` is in the setup (a plain SKU or a kit).
    pub fn knows_sku(&self, sku: &SkuId) -> bool {
        self.catalog.components(sku).is_some()
    }

    /// The earliest deadline of a live hold, if any: when the sweeper has work.
    pub fn next_deadline(&self) -> Option<TimestampMs> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// The setup in force.
    pub fn setup(&self) -> &Setup {
        self.catalog.setup()
    }

    /// Applies a batch in order, each command all-or-nothing and seeing the ones before it. A key
    /// applied before returns its first outcome (marked `replayed`). `now_ms` earlier than a
    /// previous batch's is taken as that batch's time.
    pub fn apply(&mut self, batch: Vec<Request>, now_ms: TimestampMs) -> Vec<Result<Outcome, Rejection>> {
        self.clock_ms = self.clock_ms.max(now_ms);
        let now_ms = self.clock_ms;
        let results = batch.into_iter().map(|request| self.apply_one(request, now_ms)).collect();
        if cfg!(debug_assertions) {
            self.check().unwrap_or_else(|violation| panic!("{violation}"));
        }
        results
    }

    fn apply_one(&mut self, request: Request, now_ms: TimestampMs) -> Result<Outcome, Rejection> {
        if let Some(applied) = self.applied.get(&request.key) {
            if applied.command != request.command {
                return Err(Rejection::IdempotencyConflict { key: request.key });
            }
            return Ok(Outcome { replayed: true, ..applied.outcome(&request.key, &self.journal) });
        }
        let mut draft = Draft::new(self, now_ms);
        let effect = draft.run(&request.command)?;
        let staged = draft.finish();
        let outcome = self.commit(&request, staged, effect, now_ms);
        self.applied.insert(request.key.clone(), Applied::new(request.command, &outcome));
        Ok(outcome)
    }

    /// Makes a successful draft part of the ledger.
    fn commit(
        &mut self,
        request: &Request,
        staged: Staged,
        effect: crate::command::Effect,
        now_ms: TimestampMs,
    ) -> Outcome {
        let mut movements = Vec::with_capacity(staged.postings.len());
        for (index, posting) in staged.postings.into_iter().enumerate() {
            let sku_seq = self.sku_seq.get(&posting.sku).copied().unwrap_or(0) + 1;
            let movement = Movement {
                id: self.journal.len() as u64 + 1,
                sku_seq,
                idempotency_key: format!("{}#{index}", request.key),
                sku: posting.sku,
                lot: posting.lot,
                from: posting.from,
                to: posting.to,
                quantity: posting.quantity,
                reason: posting.reason,
                reference: posting.reference,
                reservation: posting.reservation,
                actor: request.actor.clone(),
                channel: posting.channel,
                at_ms: now_ms,
            };
            self.record(movement.clone());
            movements.push(movement);
        }
        // The draft refused every overdraft; this holds in production too, cheaply: only the
        // balances this command drew from.
        for movement in &movements {
            let key = movement.from_key();
            let balance = self.balances.get(&key);
            assert!(balance >= 0 || movement.from.may_go_negative(), "balance {key:?} went negative: {balance}");
        }
        let changes = Changes {
            lots: staged.lots.into_iter().map(|((sku, _), lot)| SkuLot { sku, lot }).collect(),
            reservations: staged.reservations.into_values().collect(),
            transfers: staged.transfers.into_values().collect(),
            purchase_orders: staged.purchase_orders.into_values().collect(),
        };
        self.keep(changes.clone());
        Outcome { key: request.key.clone(), replayed: false, movements, changes, effect }
    }

    /// Takes a command's changed records into the ledger (and a hold's deadline into the
    /// sweeper's queue).
    fn keep(&mut self, changes: Changes) {
        for lot in changes.lots {
            self.lots.insert((lot.sku, lot.lot.code.clone()), lot.lot);
        }
        for reservation in changes.reservations {
            if let Some(old) = self.reservations.get(&reservation.id) {
                self.deadlines.remove(&(old.expires_at_ms, reservation.id.clone()));
            }
            if reservation.status == ReservationStatus::Held {
                self.deadlines.insert((reservation.expires_at_ms, reservation.id.clone()));
            }
            self.reservations.insert(reservation.id.clone(), reservation);
        }
        for transfer in changes.transfers {
            self.transfers.insert(transfer.id.clone(), transfer);
        }
        for order in changes.purchase_orders {
            self.purchase_orders.insert(order.id.clone(), order);
        }
    }

    /// Brings this ledger to the state [`Self::apply`] of `batch` at `now_ms` would, from the
    /// `results` that apply gave on another ledger in the same state as this one, without running
    /// the commands' rules again: a command's draft only reads the ledger, and all it changes is
    /// in its outcome (its movements, its changed records, its key). This is how the readers'
    /// copy catches up with the writer's (`service`); the simulation test (`tests/simulation.rs`)
    /// holds it to that over every kind of command.
    pub fn replay(&mut self, batch: Vec<Request>, results: Vec<Result<Outcome, Rejection>>, now_ms: TimestampMs) {
        assert_eq!(batch.len(), results.len(), "a result for every request");
        self.clock_ms = self.clock_ms.max(now_ms);
        for (request, result) in batch.into_iter().zip(results) {
            let Ok(outcome) = result else { continue };
            if outcome.replayed {
                continue;
            }
            let applied = Applied::new(request.command, &outcome);
            for movement in outcome.movements {
                assert_eq!(movement.id, self.journal.len() as u64 + 1, "replay out of step with the journal");
                self.record(movement);
            }
            self.keep(outcome.changes);
            assert!(self.applied.insert(request.key, applied).is_none(), "replayed a key applied before");
        }
        if cfg!(debug_assertions) {
            self.check().unwrap_or_else(|violation| panic!("{violation}"));
        }
    }

    /// Appends a movement to the journal and its projections.
    fn record(&mut self, movement: Movement) {
        let position = self.journal.len();
        self.balances.apply(&movement);
        // `get_mut` first: the SKU is almost always known, and `entry` would copy its id.
        match self.sku_seq.get_mut(&movement.sku) {
            Some(seq) => *seq = (*seq).max(movement.sku_seq),
            None => {
                self.sku_seq.insert(movement.sku.clone(), movement.sku_seq);
            }
        }
        if let Some(lot) = &movement.lot {
            self.by_lot.entry((movement.sku.clone(), lot.clone())).or_default().push(position);
        }
        if movement.reference != Reference::None {
            self.by_reference.entry(movement.reference.clone()).or_default().push(position);
        }
        self.clock_ms = self.clock_ms.max(movement.at_ms);
        self.journal.push(movement);
    }

    // ---- reads ------------------------------------------------------------------------------

    /// What `channel` can sell of `sku` at `now_ms`, per location and in total. Holds past their
    /// deadline no longer count, whether or not the sweeper has run.
    pub fn available(&self, sku: &SkuId, channel: &Channel, now_ms: TimestampMs) -> Result<Availability, Rejection> {
        let components = self.catalog.components(sku).ok_or_else(|| Rejection::UnknownSku { sku: sku.clone() })?;
        let policy =
            self.catalog.policy(channel).ok_or_else(|| Rejection::UnknownChannel { channel: channel.clone() })?;
        let sources = self.catalog.sources(channel, None);
        let view = ReadView::new(self, now_ms, components.iter().map(|(component, _)| component).collect());
        // What each location can give of each component; a kit is what its scarcest one allows.
        let mut totals = vec![0; components.len()];
        let mut locations = Vec::with_capacity(sources.len());
        for location in &sources {
            let mut per_component = Vec::with_capacity(components.len());
            for (i, (component, per_unit)) in components.iter().enumerate() {
                let lots = allocation::sellable_lots(&view, component, &location.id, policy, now_ms);
                let allowance = allocation::allowance(&lots, policy);
                totals[i] += allowance;
                per_component.push((allowance, *per_unit));
            }
            let available = kits::kit_units(per_component);
            let figures = if self.catalog.is_plain(sku) {
                self.location_figures(&view, sku, location, available)
            } else {
                LocationAvailability {
                    location: location.id.clone(),
                    on_hand: 0,
                    reserved: 0,
                    committed: 0,
                    incoming: 0,
                    available,
                }
            };
            locations.push(figures);
        }
        let available = kits::kit_units(totals.into_iter().zip(components.iter().map(|(_, per_unit)| *per_unit)));
        Ok(Availability { sku: sku.clone(), channel: channel.clone(), available, locations })
    }

    /// Units of `sku` on the shelf at `location` that nobody holds (holds past their deadline do
    /// not count), in unexpired lots, with no channel's safety stock taken off: what a customer
    /// walking in could buy. A kit: what its scarcest component allows.
    pub fn shelf_available(&self, sku: &SkuId, location: &LocationId, now_ms: TimestampMs) -> Quantity {
        let Some(components) = self.catalog.components(sku) else { return 0 };
        let policy = ChannelPolicy { channel: Channel::Pos, safety_stock: 0, min_shelf_life_days: 0 };
        let view = ReadView::new(self, now_ms, components.iter().map(|(component, _)| component).collect());
        let per_component = components.iter().map(|(component, per_unit)| {
            let lots = allocation::sellable_lots(&view, component, location, &policy, now_ms);
            (allocation::allowance(&lots, &policy), *per_unit)
        });
        kits::kit_units(per_component.collect::<Vec<_>>())
    }

    /// The per-SKU sequence number of the SKU's last movement (0 before any).
    pub fn sku_sequence(&self, sku: &SkuId) -> u64 {
        self.sku_seq.get(sku).copied().unwrap_or(0)
    }

    fn location_figures(
        &self,
        view: &ReadView<'_>,
        sku: &SkuId,
        location: &Location,
        available: Quantity,
    ) -> LocationAvailability {
        let total = |state| -> Quantity {
            self.balances.of_account(sku, &Account::stock(&location.id, state)).map(|(_, q)| q).sum()
        };
        let lapsed: Quantity =
            view.lapsed.iter().filter(|((s, l, _), _)| s == sku && l == &location.id).map(|(_, q)| q).sum();
        LocationAvailability {
            location: location.id.clone(),
            on_hand: total(StockState::OnHand) + lapsed,
            reserved: total(StockState::Reserved) - lapsed,
            committed: total(StockState::Committed),
            incoming: total(StockState::Incoming) + total(StockState::InTransit),
            available,
        }
    }

    /// Every non-zero balance of a SKU, external accounts included.
    pub fn balances(&self, sku: &SkuId) -> Vec<(BalanceKey, Quantity)> {
        self.balances.of_sku(sku).map(|(k, q)| (k.clone(), q)).collect()
    }

    /// Every non-zero balance.
    pub fn all_balances(&self) -> &Balances {
        &self.balances
    }

    /// A reservation by id.
    pub fn reservation(&self, id: &ReservationId) -> Option<&Reservation> {
        self.reservations.get(id)
    }

    /// A transfer by id.
    pub fn transfer(&self, id: &TransferId) -> Option<&Transfer> {
        self.transfers.get(id)
    }

    /// A purchase order by id.
    pub fn purchase_order(&self, id: &PurchaseOrderId) -> Option<&PurchaseOrder> {
        self.purchase_orders.get(id)
    }

    /// A lot of a SKU, once received.
    pub fn lot(&self, sku: &SkuId, code: &LotCode) -> Option<&Lot> {
        self.lots.get(&(sku.clone(), code.clone()))
    }

    /// A lot's movements, the documents they name and the units now with customers.
    pub fn recall(&self, sku: &SkuId, lot: &LotCode) -> Recall {
        let positions = self.by_lot.get(&(sku.clone(), lot.clone())).map(Vec::as_slice).unwrap_or_default();
        let movements: Vec<Movement> = positions.iter().map(|&i| self.journal[i].clone()).collect();
        let references: BTreeSet<Reference> =
            movements.iter().map(|m| m.reference.clone()).filter(|r| r != &Reference::None).collect();
        let reservations: BTreeSet<ReservationId> = movements.iter().filter_map(|m| m.reservation.clone()).collect();
        let with_customers = self.balances.get(&BalanceKey {
            sku: sku.clone(),
            account: Account::external(External::Customer),
            lot: Some(lot.clone()),
        });
        Recall {
            movements,
            references: references.into_iter().collect(),
            reservations: reservations.into_iter().collect(),
            with_customers,
        }
    }

    /// Units on hand or held of lots with at most `within_days` left at `now_ms` (expired ones
    /// included), soonest first: the expiry alert.
    pub fn expiring(&self, now_ms: TimestampMs, within_days: i64) -> Vec<ExpiringStock> {
        let mut found = Vec::new();
        for ((sku, code), lot) in &self.lots {
            if lot.remaining_days(now_ms) > within_days {
                continue;
            }
            let mut at: BTreeMap<&LocationId, Quantity> = BTreeMap::new();
            for (key, quantity) in self.balances.of_sku(sku) {
                let Account::Stock { location, state } = &key.account else { continue };
                if matches!(state, StockState::OnHand | StockState::Reserved) && key.lot.as_ref() == Some(code) {
                    *at.entry(location).or_insert(0) += quantity;
                }
            }
            for (location, quantity) in at {
                found.push(ExpiringStock { sku: sku.clone(), lot: lot.clone(), location: location.clone(), quantity });
            }
        }
        found.sort_by(|a, b| (a.lot.expires_on, &a.sku, &a.lot.code).cmp(&(b.lot.expires_on, &b.sku, &b.lot.code)));
        found
    }

    /// The journal, in order.
    pub fn journal(&self) -> &[Movement] {
        &self.journal
    }

    /// Movements naming a document, in journal order.
    pub(crate) fn movements_with(&self, reference: &Reference) -> impl Iterator<Item = &Movement> {
        self.by_reference.get(reference).into_iter().flatten().map(|&i| &self.journal[i])
    }

    /// Everything besides the journal that [`Ledger::restore`] needs.
    pub fn records(&self) -> Records {
        Records {
            lots: self.lots.iter().map(|((sku, _), lot)| SkuLot { sku: sku.clone(), lot: lot.clone() }).collect(),
            reservations: self.reservations.values().cloned().collect(),
            transfers: self.transfers.values().cloned().collect(),
            purchase_orders: self.purchase_orders.values().cloned().collect(),
            applied: self
                .applied
                .iter()
                .map(|(key, applied)| (key.clone(), applied.request(key, &self.journal)))
                .collect(),
        }
    }

    // ---- invariants -------------------------------------------------------------------------

    /// Checks every invariant over the whole ledger: no internal balance negative and no customer
    /// balance negative; conservation per SKU (all balances, external ones included, sum to zero);
    /// reserved and committed balances equal the reservations' held and unshipped units; in-transit
    /// and incoming balances equal open transfers and purchase orders; the sweeper's queue holds
    /// exactly the `Held` reservations. Runs after every batch in debug builds; tests call it.
    pub fn check(&self) -> Result<(), InvariantViolation> {
        let fail = |message: String| Err(InvariantViolation(message));
        let mut per_sku: BTreeMap<&SkuId, Quantity> = BTreeMap::new();
        for (key, quantity) in self.balances.iter() {
            if quantity < 0 && !key.account.may_go_negative() {
                return fail(format!("balance {key:?} is negative: {quantity}"));
            }
            *per_sku.entry(&key.sku).or_insert(0) += quantity;
        }
        if let Some((sku, sum)) = per_sku.iter().find(|(_, sum)| **sum != 0) {
            return fail(format!("units of {sku} do not sum to zero over all accounts: {sum}"));
        }

        let mut expected: BTreeMap<BalanceKey, Quantity> = BTreeMap::new();
        let mut expect = |sku: &SkuId, location: &LocationId, state, lot: Option<&LotCode>, quantity: Quantity| {
            if quantity != 0 {
                let key = BalanceKey { sku: sku.clone(), account: Account::stock(location, state), lot: lot.cloned() };
                *expected.entry(key).or_insert(0) += quantity;
            }
        };
        for reservation in self.reservations.values() {
            for component in reservation.components() {
                for a in &component.allocations {
                    if a.held < 0 || a.committed < 0 || a.shipped < 0 {
                        return fail(format!("reservation {} has a negative allocation", reservation.id));
                    }
                    expect(&component.sku, &a.location, StockState::Reserved, Some(&a.lot), a.held);
                    expect(&component.sku, &a.location, StockState::Committed, Some(&a.lot), a.committed);
                }
            }
            if reservation.status != ReservationStatus::Held && reservation.held() != 0 {
                return fail(format!("reservation {} is {:?} but holds units", reservation.id, reservation.status));
            }
        }
        for transfer in self.transfers.values().filter(|t| t.status == TransferStatus::InTransit) {
            for (lot, quantity) in &transfer.lots {
                expect(&transfer.sku, &transfer.to, StockState::InTransit, Some(lot), *quantity);
            }
        }
        for order in self.purchase_orders.values() {
            for line in &order.lines {
                expect(&line.sku, &order.location, StockState::Incoming, None, line.expected - line.arrived);
            }
        }
        let tracked = |key: &BalanceKey| {
            matches!(
                key.account,
                Account::Stock {
                    state: StockState::Reserved | StockState::Committed | StockState::InTransit | StockState::Incoming,
                    ..
                }
            )
        };
        let actual: BTreeMap<&BalanceKey, Quantity> = self.balances.iter().filter(|(k, _)| tracked(k)).collect();
        if actual.len() != expected.len() || expected.iter().any(|(k, q)| actual.get(k) != Some(q)) {
            let differing = expected
                .iter()
                .map(|(k, q)| (k, *q, actual.get(k).copied().unwrap_or(0)))
                .chain(actual.iter().filter(|(k, _)| !expected.contains_key(**k)).map(|(k, q)| (*k, 0, *q)))
                .find(|(_, want, have)| want != have);
            return fail(format!("records and balances disagree (key, records, balance): {differing:?}"));
        }

        let held: BTreeSet<(TimestampMs, ReservationId)> = self
            .reservations
            .values()
            .filter(|r| r.status == ReservationStatus::Held)
            .map(|r| (r.expires_at_ms, r.id.clone()))
            .collect();
        if held != self.deadlines {
            return fail("the sweeper's queue does not list exactly the held reservations".to_owned());
        }
        Ok(())
    }
}

/// Stock of some SKUs as a read sees it at `now_ms`: on hand plus the units of holds whose deadline
/// passed.
struct ReadView<'a> {
    ledger: &'a Ledger,
    /// Units of lapsed holds by (SKU, location, lot).
    lapsed: BTreeMap<(SkuId, LocationId, LotCode), Quantity>,
}

impl<'a> ReadView<'a> {
    /// The view of `skus` at `now_ms`.
    fn new(ledger: &'a Ledger, now_ms: TimestampMs, skus: BTreeSet<&SkuId>) -> Self {
        let mut lapsed = BTreeMap::new();
        for (_, id) in ledger.deadlines.iter().take_while(|(deadline, _)| *deadline <= now_ms) {
            for component in ledger.reservations[id].components().filter(|c| skus.contains(&c.sku)) {
                for a in component.allocations.iter().filter(|a| a.held > 0) {
                    *lapsed.entry((component.sku.clone(), a.location.clone(), a.lot.clone())).or_insert(0) += a.held;
                }
            }
        }
        Self { ledger, lapsed }
    }
}

impl StockView for ReadView<'_> {
    fn expires_on(&self, sku: &SkuId, code: &LotCode) -> Option<EpochDay> {
        self.ledger.lots.get(&(sku.clone(), code.clone())).map(|lot| lot.expires_on)
    }

    fn free_lots(&self, sku: &SkuId, location: &LocationId) -> Vec<(LotCode, Quantity)> {
        let mut lots: BTreeMap<LotCode, Quantity> = self
            .ledger
            .balances
            .of_account(sku, &Account::stock(location, StockState::OnHand))
            .filter_map(|(key, units)| Some((key.lot.clone()?, units)))
            .collect();
        for ((s, l, lot), units) in &self.lapsed {
            if s == sku && l == location {
                *lots.entry(lot.clone()).or_insert(0) += units;
            }
        }
        lots.into_iter().collect()
    }
}
