//! The rules of every command, applied to a [`Draft`]: one command's movements and record changes
//! staged over the ledger without touching it. A command that fails leaves its draft behind and the
//! ledger unchanged; one that succeeds hands its draft to [`crate::Ledger`] to commit. This is what
//! makes each command all-or-nothing.
//!
//! A draft must not read a clock or anything outside the ledger: `now_ms` is given.

use std::collections::{BTreeMap, BTreeSet};

use crate::allocation::{self, StockView, Take};
use crate::command::{AdjustKind, Command, Effect, HoldConflict, Line, LotLine, ReceiptLine, Rejection, Shortage};
use crate::ledger::Ledger;
use crate::model::{
    Account, BalanceKey, Channel, EpochDay, External, Location, LocationId, Lot, LotCode, PurchaseOrderId,
};
use crate::model::{Quantity, Reason, Reference, ReservationId, SkuId, StockState, TimestampMs, TransferId};
use crate::records::{Allocation, ComponentAllocation, PurchaseOrder, PurchaseOrderLine, Reservation};
use crate::records::{ReservationLine, ReservationStatus, Transfer, TransferStatus};

/// A movement before it has an id.
#[derive(Debug, Clone)]
pub(crate) struct Posting {
    pub(crate) sku: SkuId,
    pub(crate) lot: Option<LotCode>,
    pub(crate) from: Account,
    pub(crate) to: Account,
    pub(crate) quantity: Quantity,
    pub(crate) reason: Reason,
    pub(crate) reference: Reference,
    pub(crate) reservation: Option<ReservationId>,
    pub(crate) channel: Option<Channel>,
}

/// What a successful draft hands to the ledger.
pub(crate) struct Staged {
    pub(crate) postings: Vec<Posting>,
    pub(crate) lots: BTreeMap<(SkuId, LotCode), Lot>,
    pub(crate) reservations: BTreeMap<ReservationId, Reservation>,
    pub(crate) transfers: BTreeMap<TransferId, Transfer>,
    pub(crate) purchase_orders: BTreeMap<PurchaseOrderId, PurchaseOrder>,
}

/// One command's staged changes over a ledger.
pub(crate) struct Draft<'a> {
    ledger: &'a Ledger,
    now_ms: TimestampMs,
    deltas: BTreeMap<BalanceKey, Quantity>,
    staged: Staged,
}

impl StockView for Draft<'_> {
    fn expires_on(&self, sku: &SkuId, code: &LotCode) -> Option<EpochDay> {
        self.known_lot(sku, code).map(|lot| lot.expires_on)
    }

    fn free_lots(&self, sku: &SkuId, location: &LocationId) -> Vec<(LotCode, Quantity)> {
        self.lots_in(sku, &Account::stock(location, StockState::OnHand))
    }
}

impl<'a> Draft<'a> {
    pub(crate) fn new(ledger: &'a Ledger, now_ms: TimestampMs) -> Self {
        Self {
            ledger,
            now_ms,
            deltas: BTreeMap::new(),
            staged: Staged {
                postings: Vec::new(),
                lots: BTreeMap::new(),
                reservations: BTreeMap::new(),
                transfers: BTreeMap::new(),
                purchase_orders: BTreeMap::new(),
            },
        }
    }

    pub(crate) fn finish(self) -> Staged {
        self.staged
    }

    /// Applies one command's rules.
    pub(crate) fn run(&mut self, command: &Command) -> Result<Effect, Rejection> {
        match command {
            Command::ExpectPurchase { purchase_order, location, eta_ms, lines } => {
                self.expect_purchase(purchase_order, location, *eta_ms, lines)
            }
            Command::Receive { location, purchase_order, lines } => {
                self.receive(location, purchase_order.as_ref(), lines)
            }
            Command::Reserve {
                reservation,
                channel,
                lines,
                expires_at_ms,
                preferred_location,
                reference,
                customer_id,
            } => self.reserve(
                reservation,
                channel,
                lines,
                *expires_at_ms,
                preferred_location.as_ref(),
                reference.clone(),
                customer_id.clone(),
            ),
            Command::Confirm { reservation, lines } => self.confirm(reservation, lines.as_deref()),
            Command::Release { reservation } => self.release(reservation),
            Command::Extend { reservation, expires_at_ms } => self.extend(reservation, *expires_at_ms),
            Command::ExpireDue => Ok(Effect::Expired { reservations: self.expire_due(None) }),
            Command::Ship { reservation, location } => self.ship(reservation, location.as_ref()),
            Command::TransferOut { transfer, sku, quantity, from, to, lot } => {
                self.transfer_out(transfer, sku, *quantity, from, to, lot.as_ref())
            }
            Command::TransferIn { transfer } => self.transfer_in(transfer),
            Command::Adjust { location, sku, lot, quantity, kind, reference } => {
                self.adjust(location, sku, lot, *quantity, *kind, reference)
            }
            Command::PosSale { location, receipt, lines } => self.pos_sale(location, receipt, lines),
            Command::Return { location, reference, lines } => self.return_units(location, reference, lines),
            Command::Restock { location, sku, lot, quantity } => {
                self.out_of_quarantine(location, sku, lot, *quantity, StockState::OnHand, Reason::Restock)?;
                Ok(Effect::Restocked)
            }
            Command::WriteOff { location, sku, lot, quantity } => {
                self.out_of_quarantine(location, sku, lot, *quantity, StockState::Damaged, Reason::WriteOff)?;
                Ok(Effect::WrittenOff)
            }
        }
    }

    // ---- commands ---------------------------------------------------------------------------

    fn expect_purchase(
        &mut self,
        id: &PurchaseOrderId,
        location: &LocationId,
        eta_ms: TimestampMs,
        lines: &[Line],
    ) -> Result<Effect, Rejection> {
        if self.purchase_order(id).is_some() {
            return Err(Rejection::AlreadyExists { id: id.to_string() });
        }
        self.location(location)?;
        non_empty(lines)?;
        let mut order = PurchaseOrder { id: id.clone(), location: location.clone(), eta_ms, lines: Vec::new() };
        for line in lines {
            self.plain_sku(&line.sku)?;
            positive(&line.sku, line.quantity)?;
            match order.lines.iter_mut().find(|l| l.sku == line.sku) {
                Some(existing) => existing.expected += line.quantity,
                None => {
                    order.lines.push(PurchaseOrderLine { sku: line.sku.clone(), expected: line.quantity, arrived: 0 })
                }
            }
            self.post(Posting {
                sku: line.sku.clone(),
                lot: None,
                from: Account::external(External::Supplier),
                to: Account::stock(location, StockState::Incoming),
                quantity: line.quantity,
                reason: Reason::PurchaseOrdered,
                reference: Reference::PurchaseOrder(id.clone()),
                reservation: None,
                channel: None,
            })?;
        }
        self.staged.purchase_orders.insert(id.clone(), order.clone());
        Ok(Effect::PurchaseExpected(order))
    }

    fn receive(
        &mut self,
        location: &LocationId,
        purchase_order: Option<&PurchaseOrderId>,
        lines: &[ReceiptLine],
    ) -> Result<Effect, Rejection> {
        self.location(location)?;
        non_empty(lines)?;
        let mut order = match purchase_order {
            Some(id) => {
                let order = self
                    .purchase_order(id)
                    .ok_or_else(|| Rejection::UnknownPurchaseOrder { purchase_order: id.clone() })?;
                if &order.location != location {
                    return Err(Rejection::PurchaseOrderElsewhere {
                        purchase_order: id.clone(),
                        expected: order.location.clone(),
                        location: location.clone(),
                    });
                }
                Some(order.clone())
            }
            None => None,
        };
        let reference = purchase_order.map_or(Reference::None, |id| Reference::PurchaseOrder(id.clone()));
        for line in lines {
            self.plain_sku(&line.sku)?;
            positive(&line.sku, line.quantity)?;
            if line.lot.is_expired(self.now_ms) {
                return Err(Rejection::ExpiredLot {
                    sku: line.sku.clone(),
                    lot: line.lot.code.clone(),
                    expires_on: line.lot.expires_on,
                    today: crate::model::day_of(self.now_ms),
                });
            }
            match self.known_lot(&line.sku, &line.lot.code) {
                Some(known) if known != &line.lot => {
                    return Err(Rejection::LotMismatch { sku: line.sku.clone(), lot: line.lot.code.clone() });
                }
                Some(_) => {}
                None => {
                    self.staged.lots.insert((line.sku.clone(), line.lot.code.clone()), line.lot.clone());
                }
            }
            // Units the purchase order still expects arrive first; any surplus is received without it.
            if let Some(order) = order.as_mut()
                && let Some(expected) = order.lines.iter_mut().find(|l| l.sku == line.sku)
            {
                let arriving = (expected.expected - expected.arrived).min(line.quantity);
                if arriving > 0 {
                    expected.arrived += arriving;
                    self.post(Posting {
                        sku: line.sku.clone(),
                        lot: None,
                        from: Account::stock(location, StockState::Incoming),
                        to: Account::external(External::Supplier),
                        quantity: arriving,
                        reason: Reason::PurchaseArrived,
                        reference: reference.clone(),
                        reservation: None,
                        channel: None,
                    })?;
                }
            }
            self.post(Posting {
                sku: line.sku.clone(),
                lot: Some(line.lot.code.clone()),
                from: Account::external(External::Supplier),
                to: Account::stock(location, StockState::OnHand),
                quantity: line.quantity,
                reason: Reason::Receipt,
                reference: reference.clone(),
                reservation: None,
                channel: None,
            })?;
        }
        if let Some(order) = order {
            self.staged.purchase_orders.insert(order.id.clone(), order);
        }
        Ok(Effect::Received)
    }

    #[allow(clippy::too_many_arguments)]
    fn reserve(
        &mut self,
        id: &ReservationId,
        channel: &Channel,
        lines: &[Line],
        expires_at_ms: TimestampMs,
        preferred: Option<&LocationId>,
        reference: Option<Reference>,
        customer_id: Option<String>,
    ) -> Result<Effect, Rejection> {
        if id.as_str().is_empty() || self.reservation(id).is_some() {
            return Err(Rejection::AlreadyExists { id: id.to_string() });
        }
        let ledger: &'a Ledger = self.ledger;
        let catalog = &ledger.catalog;
        let policy = catalog.policy(channel).ok_or_else(|| Rejection::UnknownChannel { channel: channel.clone() })?;
        let preferred = match preferred {
            Some(id) => {
                let location = self.location(id)?;
                if !location.channels.contains(channel) {
                    return Err(Rejection::LocationNotInChannel { location: id.clone(), channel: channel.clone() });
                }
                Some(location)
            }
            None => None,
        };
        let sources = catalog.sources(channel, preferred);
        if sources.is_empty() {
            return Err(Rejection::UnknownChannel { channel: channel.clone() });
        }
        if expires_at_ms <= self.now_ms {
            return Err(Rejection::DeadlineNotInFuture { at_ms: expires_at_ms, now_ms: self.now_ms });
        }
        non_empty(lines)?;
        let mut needs = Vec::with_capacity(lines.len());
        for line in lines {
            positive(&line.sku, line.quantity)?;
            needs.push(self.components(&line.sku, line.quantity)?);
        }
        let skus = needs.iter().flatten().map(|(sku, _, _)| sku.clone()).collect();
        self.expire_due(Some(&skus));

        let reference = reference.unwrap_or_else(|| Reference::Reservation(id.clone()));
        let mut shortages = Vec::new();
        let mut reserved_lines = Vec::with_capacity(lines.len());
        for (line, components) in lines.iter().zip(needs) {
            let available = crate::kits::kit_units(components.iter().map(|(sku, per_unit, _)| {
                (allocation::available(&*self, sku, &sources, policy, self.now_ms), *per_unit)
            }));
            if available < line.quantity {
                shortages.push(Shortage { sku: line.sku.clone(), requested: line.quantity, available });
                continue;
            }
            let mut reserved = Vec::with_capacity(components.len());
            for (sku, per_unit, need) in components {
                let takes = allocation::plan(&*self, &sku, need, &sources, policy, self.now_ms);
                let mut component = ComponentAllocation { sku, per_unit, short: 0, allocations: Vec::new() };
                for take in takes {
                    self.hold(id, channel, &reference, &mut component, take, Reason::Reserve)?;
                }
                if component.held() < need {
                    // Cannot happen after the availability check above; refuse rather than hold less.
                    shortages.push(Shortage { sku: line.sku.clone(), requested: line.quantity, available });
                }
                reserved.push(component);
            }
            reserved_lines.push(ReservationLine {
                sku: line.sku.clone(),
                quantity: line.quantity,
                components: reserved,
            });
        }
        if !shortages.is_empty() {
            return Err(Rejection::InsufficientStock { shortages });
        }
        let reservation = Reservation {
            id: id.clone(),
            channel: channel.clone(),
            reference,
            customer_id,
            created_at_ms: self.now_ms,
            expires_at_ms,
            status: ReservationStatus::Held,
            lines: reserved_lines,
        };
        self.staged.reservations.insert(id.clone(), reservation.clone());
        Ok(Effect::Reserved(reservation))
    }

    fn confirm(&mut self, id: &ReservationId, lines: Option<&[Line]>) -> Result<Effect, Rejection> {
        let mut reservation = self.live_hold(id)?;
        // Units to confirm per (line index, component index).
        let mut wanted: BTreeMap<(usize, usize), Quantity> = BTreeMap::new();
        match lines {
            None => {
                for (l, line) in reservation.lines.iter().enumerate() {
                    for (c, component) in line.components.iter().enumerate() {
                        wanted.insert((l, c), component.held());
                    }
                }
            }
            Some(lines) => {
                non_empty(lines)?;
                let mut taken: BTreeMap<usize, Quantity> = BTreeMap::new();
                for asked in lines {
                    positive(&asked.sku, asked.quantity)?;
                    let mut left = asked.quantity;
                    let mut held = 0;
                    for (l, line) in reservation.lines.iter().enumerate().filter(|(_, line)| line.sku == asked.sku) {
                        let free = line.held_units() - taken.get(&l).copied().unwrap_or(0);
                        held += free;
                        let units = free.min(left);
                        if units > 0 {
                            *taken.entry(l).or_insert(0) += units;
                            for (c, component) in line.components.iter().enumerate() {
                                *wanted.entry((l, c)).or_insert(0) += units * component.per_unit;
                            }
                            left -= units;
                        }
                    }
                    if left > 0 {
                        return Err(Rejection::ConfirmExceedsHold {
                            reservation: id.clone(),
                            sku: asked.sku.clone(),
                            requested: asked.quantity,
                            held,
                        });
                    }
                }
            }
        }
        // A till took every held unit and none could be re-allocated: confirming everything still
        // closes the hold (committing nothing; its units stay flagged short for customer service),
        // as it would have had the till left one unit.
        if wanted.values().all(|&q| q == 0) && (lines.is_some() || !reservation.is_flagged()) {
            return Err(Rejection::NothingHeld { reservation: id.clone() });
        }
        for ((l, c), mut left) in wanted {
            let sku = reservation.lines[l].components[c].sku.clone();
            for allocation in &mut reservation.lines[l].components[c].allocations {
                let units = allocation.held.min(left);
                if units == 0 {
                    continue;
                }
                allocation.held -= units;
                allocation.committed += units;
                left -= units;
                self.post(Posting {
                    sku: sku.clone(),
                    lot: Some(allocation.lot.clone()),
                    from: Account::stock(&allocation.location, StockState::Reserved),
                    to: Account::stock(&allocation.location, StockState::Committed),
                    quantity: units,
                    reason: Reason::Confirm,
                    reference: reservation.reference.clone(),
                    reservation: Some(id.clone()),
                    channel: Some(reservation.channel.clone()),
                })?;
            }
        }
        reservation.status = reservation.settled_status(ReservationStatus::Confirmed);
        self.staged.reservations.insert(id.clone(), reservation.clone());
        Ok(Effect::Confirmed(reservation))
    }

    fn release(&mut self, id: &ReservationId) -> Result<Effect, Rejection> {
        let mut reservation = self.known_reservation(id)?;
        if matches!(
            reservation.status,
            ReservationStatus::Released | ReservationStatus::Expired | ReservationStatus::Fulfilled
        ) {
            return Err(Rejection::ReservationClosed { reservation: id.clone(), status: reservation.status });
        }
        let (reference, channel) = (reservation.reference.clone(), reservation.channel.clone());
        for component in reservation.lines.iter_mut().flat_map(|l| l.components.iter_mut()) {
            for allocation in &mut component.allocations {
                for (state, units) in
                    [(StockState::Reserved, allocation.held), (StockState::Committed, allocation.committed)]
                {
                    if units > 0 {
                        self.post(Posting {
                            sku: component.sku.clone(),
                            lot: Some(allocation.lot.clone()),
                            from: Account::stock(&allocation.location, state),
                            to: Account::stock(&allocation.location, StockState::OnHand),
                            quantity: units,
                            reason: Reason::Release,
                            reference: reference.clone(),
                            reservation: Some(id.clone()),
                            channel: Some(channel.clone()),
                        })?;
                    }
                }
                allocation.held = 0;
                allocation.committed = 0;
            }
        }
        reservation.status = reservation.settled_status(ReservationStatus::Released);
        if reservation.status != ReservationStatus::Fulfilled {
            reservation.status = ReservationStatus::Released;
        }
        self.staged.reservations.insert(id.clone(), reservation.clone());
        Ok(Effect::Released(reservation))
    }

    fn extend(&mut self, id: &ReservationId, expires_at_ms: TimestampMs) -> Result<Effect, Rejection> {
        let mut reservation = self.live_hold(id)?;
        if expires_at_ms <= self.now_ms {
            return Err(Rejection::DeadlineNotInFuture { at_ms: expires_at_ms, now_ms: self.now_ms });
        }
        reservation.expires_at_ms = expires_at_ms;
        self.staged.reservations.insert(id.clone(), reservation.clone());
        Ok(Effect::Extended(reservation))
    }

    fn ship(&mut self, id: &ReservationId, location: Option<&LocationId>) -> Result<Effect, Rejection> {
        if let Some(location) = location {
            self.location(location)?;
        }
        let mut reservation = self.known_reservation(id)?;
        if matches!(reservation.status, ReservationStatus::Released | ReservationStatus::Expired) {
            return Err(Rejection::ReservationClosed { reservation: id.clone(), status: reservation.status });
        }
        let (reference, channel) = (reservation.reference.clone(), reservation.channel.clone());
        let mut shipped = 0;
        for component in reservation.lines.iter_mut().flat_map(|l| l.components.iter_mut()) {
            for allocation in &mut component.allocations {
                if allocation.committed == 0 || location.is_some_and(|l| l != &allocation.location) {
                    continue;
                }
                self.post(Posting {
                    sku: component.sku.clone(),
                    lot: Some(allocation.lot.clone()),
                    from: Account::stock(&allocation.location, StockState::Committed),
                    to: Account::external(External::Customer),
                    quantity: allocation.committed,
                    reason: Reason::Ship,
                    reference: reference.clone(),
                    reservation: Some(id.clone()),
                    channel: Some(channel.clone()),
                })?;
                shipped += allocation.committed;
                allocation.shipped += allocation.committed;
                allocation.committed = 0;
            }
        }
        if shipped == 0 {
            return Err(Rejection::NothingToShip { reservation: id.clone() });
        }
        reservation.status = reservation.settled_status(ReservationStatus::Fulfilled);
        self.staged.reservations.insert(id.clone(), reservation.clone());
        Ok(Effect::Shipped(reservation))
    }

    fn transfer_out(
        &mut self,
        id: &TransferId,
        sku: &SkuId,
        quantity: Quantity,
        from: &LocationId,
        to: &LocationId,
        lot: Option<&LotCode>,
    ) -> Result<Effect, Rejection> {
        if id.as_str().is_empty() || self.transfer(id).is_some() {
            return Err(Rejection::AlreadyExists { id: id.to_string() });
        }
        self.location(from)?;
        self.location(to)?;
        if from == to {
            return Err(Rejection::SameLocation { location: from.clone() });
        }
        self.plain_sku(sku)?;
        positive(sku, quantity)?;
        if let Some(lot) = lot {
            self.lot_of(sku, lot)?;
        }
        self.expire_due(Some(&BTreeSet::from([sku.clone()])));
        let takes = self.shelf_lots(sku, from, StockState::OnHand, lot, quantity);
        let taken: Quantity = takes.iter().map(|(_, q)| q).sum();
        if taken < quantity {
            return Err(Rejection::NotEnough {
                sku: sku.clone(),
                location: from.clone(),
                state: StockState::OnHand,
                requested: quantity,
                available: taken,
            });
        }
        for (lot, units) in &takes {
            self.post(Posting {
                sku: sku.clone(),
                lot: Some(lot.clone()),
                from: Account::stock(from, StockState::OnHand),
                to: Account::stock(to, StockState::InTransit),
                quantity: *units,
                reason: Reason::TransferOut,
                reference: Reference::Transfer(id.clone()),
                reservation: None,
                channel: None,
            })?;
        }
        let transfer = Transfer {
            id: id.clone(),
            sku: sku.clone(),
            from: from.clone(),
            to: to.clone(),
            lots: takes,
            status: TransferStatus::InTransit,
        };
        self.staged.transfers.insert(id.clone(), transfer.clone());
        Ok(Effect::TransferSent(transfer))
    }

    fn transfer_in(&mut self, id: &TransferId) -> Result<Effect, Rejection> {
        let mut transfer =
            self.transfer(id).cloned().ok_or_else(|| Rejection::UnknownTransfer { transfer: id.clone() })?;
        if transfer.status == TransferStatus::Received {
            return Err(Rejection::TransferAlreadyReceived { transfer: id.clone() });
        }
        for (lot, units) in &transfer.lots {
            self.post(Posting {
                sku: transfer.sku.clone(),
                lot: Some(lot.clone()),
                from: Account::stock(&transfer.to, StockState::InTransit),
                to: Account::stock(&transfer.to, StockState::OnHand),
                quantity: *units,
                reason: Reason::TransferIn,
                reference: Reference::Transfer(id.clone()),
                reservation: None,
                channel: None,
            })?;
        }
        transfer.status = TransferStatus::Received;
        self.staged.transfers.insert(id.clone(), transfer.clone());
        Ok(Effect::TransferReceived(transfer))
    }

    fn adjust(
        &mut self,
        location: &LocationId,
        sku: &SkuId,
        lot: &LotCode,
        quantity: Quantity,
        kind: AdjustKind,
        reference: &Reference,
    ) -> Result<Effect, Rejection> {
        self.location(location)?;
        self.plain_sku(sku)?;
        positive(sku, quantity)?;
        self.lot_of(sku, lot)?;
        let stock = |state| Account::stock(location, state);
        let shrinkage = Account::external(External::Shrinkage);
        let (from, to, reason) = match kind {
            AdjustKind::Lost => (stock(StockState::OnHand), shrinkage, Reason::Lost),
            AdjustKind::Found => (shrinkage, stock(StockState::OnHand), Reason::Found),
            AdjustKind::Damaged => (stock(StockState::OnHand), stock(StockState::Damaged), Reason::Damaged),
            AdjustKind::Disposed => (stock(StockState::Damaged), shrinkage, Reason::Disposed),
            AdjustKind::Quarantined => (stock(StockState::OnHand), stock(StockState::Quarantine), Reason::Quarantined),
        };
        if from == stock(StockState::OnHand) {
            self.expire_due(Some(&BTreeSet::from([sku.clone()])));
        }
        self.post(Posting {
            sku: sku.clone(),
            lot: Some(lot.clone()),
            from,
            to,
            quantity,
            reason,
            reference: reference.clone(),
            reservation: None,
            channel: None,
        })?;
        Ok(Effect::Adjusted)
    }

    fn pos_sale(&mut self, location: &LocationId, receipt: &str, lines: &[LotLine]) -> Result<Effect, Rejection> {
        self.location(location)?;
        non_empty(lines)?;
        let reference = Reference::PosReceipt(receipt.to_owned());
        let mut needs = Vec::with_capacity(lines.len());
        for line in lines {
            positive(&line.sku, line.quantity)?;
            needs.push((self.lot_line(line)?, self.components(&line.sku, line.quantity)?));
        }
        let skus = needs.iter().flat_map(|(_, c)| c).map(|(sku, _, _)| sku.clone()).collect();
        self.expire_due(Some(&skus));

        let mut conflicts = Vec::new();
        for (lot, components) in needs {
            for (sku, _, need) in components {
                let mut left = need;
                // The shelf first: free units, FEFO (a sold unit is sold, even past its date).
                for (code, units) in self.shelf_lots(&sku, location, StockState::OnHand, lot.as_ref(), left) {
                    self.post(Posting {
                        sku: sku.clone(),
                        lot: Some(code),
                        from: Account::stock(location, StockState::OnHand),
                        to: Account::external(External::Customer),
                        quantity: units,
                        reason: Reason::PosSale,
                        reference: reference.clone(),
                        reservation: None,
                        channel: Some(Channel::Pos),
                    })?;
                    left -= units;
                }
                // Then units an online cart holds on this shelf: the till wins, the hold moves.
                if left > 0 {
                    left = self.take_from_holds(&sku, location, lot.as_ref(), left, &reference, &mut conflicts)?;
                }
                if left > 0 {
                    return Err(Rejection::NotEnough {
                        sku,
                        location: location.clone(),
                        state: StockState::OnHand,
                        requested: need,
                        available: need - left,
                    });
                }
            }
        }
        Ok(Effect::PosSold { conflicts })
    }

    fn return_units(
        &mut self,
        location: &LocationId,
        reference: &Reference,
        lines: &[LotLine],
    ) -> Result<Effect, Rejection> {
        self.location(location)?;
        non_empty(lines)?;
        let mut needs = Vec::with_capacity(lines.len());
        for line in lines {
            positive(&line.sku, line.quantity)?;
            needs.push((self.lot_line(line)?, self.components(&line.sku, line.quantity)?));
        }
        for (lot, components) in needs {
            for (sku, _, need) in components {
                let lots = match &lot {
                    Some(code) => vec![(code.clone(), need)],
                    None => {
                        let sold = self.sold_under(&sku, reference);
                        let returnable: Quantity = sold.iter().map(|(_, q)| q).sum();
                        if returnable < need {
                            return Err(Rejection::ReturnExceedsSold {
                                sku,
                                reference: reference.clone(),
                                requested: need,
                                returnable,
                            });
                        }
                        take_in_order(sold, need)
                    }
                };
                for (code, units) in lots {
                    self.post(Posting {
                        sku: sku.clone(),
                        lot: Some(code),
                        from: Account::external(External::Customer),
                        to: Account::stock(location, StockState::Quarantine),
                        quantity: units,
                        reason: Reason::Return,
                        reference: reference.clone(),
                        reservation: None,
                        channel: None,
                    })?;
                }
            }
        }
        Ok(Effect::Returned)
    }

    fn out_of_quarantine(
        &mut self,
        location: &LocationId,
        sku: &SkuId,
        lot: &LotCode,
        quantity: Quantity,
        to: StockState,
        reason: Reason,
    ) -> Result<(), Rejection> {
        self.location(location)?;
        self.plain_sku(sku)?;
        positive(sku, quantity)?;
        self.lot_of(sku, lot)?;
        self.post(Posting {
            sku: sku.clone(),
            lot: Some(lot.clone()),
            from: Account::stock(location, StockState::Quarantine),
            to: Account::stock(location, to),
            quantity,
            reason,
            reference: Reference::None,
            reservation: None,
            channel: None,
        })
    }

    // ---- holds ------------------------------------------------------------------------------

    /// Returns the held units of every hold past its deadline (touching `skus`, when given) to on
    /// hand. Commands that draw on free stock call it first, so stock an expired hold still
    /// counts is never refused, even before the sweeper runs.
    fn expire_due(&mut self, skus: Option<&BTreeSet<SkuId>>) -> Vec<ReservationId> {
        let due: Vec<ReservationId> = self
            .ledger
            .deadlines
            .iter()
            .take_while(|(deadline, _)| *deadline <= self.now_ms)
            .map(|(_, id)| id.clone())
            .collect();
        let mut expired = Vec::new();
        for id in due {
            let Some(mut reservation) = self.reservation(&id).cloned() else { continue };
            if reservation.status != ReservationStatus::Held
                || skus.is_some_and(|skus| !reservation.components().any(|c| skus.contains(&c.sku)))
            {
                continue;
            }
            let (reference, channel) = (reservation.reference.clone(), reservation.channel.clone());
            for component in reservation.lines.iter_mut().flat_map(|l| l.components.iter_mut()) {
                for allocation in component.allocations.iter_mut().filter(|a| a.held > 0) {
                    let posted = self.post(Posting {
                        sku: component.sku.clone(),
                        lot: Some(allocation.lot.clone()),
                        from: Account::stock(&allocation.location, StockState::Reserved),
                        to: Account::stock(&allocation.location, StockState::OnHand),
                        quantity: allocation.held,
                        reason: Reason::Expire,
                        reference: reference.clone(),
                        reservation: Some(id.clone()),
                        channel: Some(channel.clone()),
                    });
                    // Reserved balances equal the holds' allocations (checked after every batch),
                    // so returning a hold's units cannot overdraw.
                    assert!(posted.is_ok(), "expiring hold {id} overdrew a reserved balance: {posted:?}");
                    allocation.held = 0;
                }
            }
            reservation.status = reservation.settled_status(ReservationStatus::Expired);
            self.staged.reservations.insert(id.clone(), reservation);
            expired.push(id);
        }
        expired
    }

    /// Takes up to `need` units of `sku` at `location` from live holds, latest deadline first,
    /// re-allocating each hold from the channel's other stock or flagging it short. Returns what
    /// is still missing.
    fn take_from_holds(
        &mut self,
        sku: &SkuId,
        location: &LocationId,
        lot: Option<&LotCode>,
        need: Quantity,
        reference: &Reference,
        conflicts: &mut Vec<HoldConflict>,
    ) -> Result<Quantity, Rejection> {
        let holds: Vec<ReservationId> = self.ledger.deadlines.iter().rev().map(|(_, id)| id.clone()).collect();
        let mut left = need;
        for id in holds {
            if left == 0 {
                break;
            }
            let Some(mut hold) = self.reservation(&id).cloned() else { continue };
            if hold.status != ReservationStatus::Held {
                continue;
            }
            let (channel, hold_reference) = (hold.channel.clone(), hold.reference.clone());
            for component in hold.lines.iter_mut().flat_map(|l| l.components.iter_mut()).filter(|c| &c.sku == sku) {
                let mut taken = 0;
                for allocation in &mut component.allocations {
                    let matches = &allocation.location == location && lot.is_none_or(|l| l == &allocation.lot);
                    let units = if matches { allocation.held.min(left) } else { 0 };
                    if units == 0 {
                        continue;
                    }
                    self.post(Posting {
                        sku: sku.clone(),
                        lot: Some(allocation.lot.clone()),
                        from: Account::stock(location, StockState::Reserved),
                        to: Account::external(External::Customer),
                        quantity: units,
                        reason: Reason::PosSale,
                        reference: reference.clone(),
                        reservation: Some(id.clone()),
                        channel: Some(Channel::Pos),
                    })?;
                    allocation.held -= units;
                    taken += units;
                    left -= units;
                }
                if taken == 0 {
                    continue;
                }
                component.allocations.retain(|a| a.held + a.committed + a.shipped > 0);
                let reallocated = self.reallocate(&id, &channel, &hold_reference, component, taken)?;
                component.short += taken - reallocated;
                conflicts.push(HoldConflict {
                    reservation: id.clone(),
                    sku: sku.clone(),
                    taken,
                    reallocated,
                    short: taken - reallocated,
                });
            }
            self.staged.reservations.insert(id.clone(), hold);
        }
        Ok(left)
    }

    /// Holds up to `need` more units for a hold's component from its channel's stock; returns how
    /// many it found.
    fn reallocate(
        &mut self,
        id: &ReservationId,
        channel: &Channel,
        reference: &Reference,
        component: &mut ComponentAllocation,
        need: Quantity,
    ) -> Result<Quantity, Rejection> {
        let ledger: &'a Ledger = self.ledger;
        let Some(policy) = ledger.catalog.policy(channel) else { return Ok(0) };
        let sources = ledger.catalog.sources(channel, None);
        let takes = allocation::plan(&*self, &component.sku, need, &sources, policy, self.now_ms);
        let mut found = 0;
        for take in takes {
            found += take.quantity;
            self.hold(id, channel, reference, component, take, Reason::Reallocate)?;
        }
        Ok(found)
    }

    /// Moves a planned take on hand → reserved and records it on the component.
    fn hold(
        &mut self,
        id: &ReservationId,
        channel: &Channel,
        reference: &Reference,
        component: &mut ComponentAllocation,
        take: Take,
        reason: Reason,
    ) -> Result<(), Rejection> {
        self.post(Posting {
            sku: component.sku.clone(),
            lot: Some(take.lot.clone()),
            from: Account::stock(&take.location, StockState::OnHand),
            to: Account::stock(&take.location, StockState::Reserved),
            quantity: take.quantity,
            reason,
            reference: reference.clone(),
            reservation: Some(id.clone()),
            channel: Some(channel.clone()),
        })?;
        match component.allocations.iter_mut().find(|a| a.location == take.location && a.lot == take.lot) {
            Some(allocation) => allocation.held += take.quantity,
            None => component.allocations.push(Allocation {
                location: take.location,
                lot: take.lot,
                held: take.quantity,
                committed: 0,
                shipped: 0,
            }),
        }
        Ok(())
    }

    /// A reservation whose units can still be confirmed or extended.
    fn live_hold(&self, id: &ReservationId) -> Result<Reservation, Rejection> {
        let reservation = self.known_reservation(id)?;
        match reservation.status {
            ReservationStatus::Held if reservation.expires_at_ms > self.now_ms => Ok(reservation),
            ReservationStatus::Held | ReservationStatus::Expired => {
                Err(Rejection::ReservationExpired { reservation: id.clone(), expired_at_ms: reservation.expires_at_ms })
            }
            ReservationStatus::Confirmed => Err(Rejection::AlreadyConfirmed { reservation: id.clone() }),
            status @ (ReservationStatus::Fulfilled | ReservationStatus::Released) => {
                Err(Rejection::ReservationClosed { reservation: id.clone(), status })
            }
        }
    }

    // ---- reading through the draft ----------------------------------------------------------

    fn balance(&self, key: &BalanceKey) -> Quantity {
        self.ledger.balances.get(key) + self.deltas.get(key).copied().unwrap_or(0)
    }

    /// Non-zero balances of one SKU in one account, by lot (lot-less balances left out).
    fn lots_in(&self, sku: &SkuId, account: &Account) -> Vec<(LotCode, Quantity)> {
        let mut lots: BTreeMap<LotCode, Quantity> = self
            .ledger
            .balances
            .of_account(sku, account)
            .filter_map(|(key, units)| Some((key.lot.clone()?, units)))
            .collect();
        let start = BalanceKey { sku: sku.clone(), account: account.clone(), lot: None };
        for (key, delta) in self.deltas.range(start..).take_while(|(k, _)| &k.sku == sku && &k.account == account) {
            if let Some(lot) = &key.lot {
                *lots.entry(lot.clone()).or_insert(0) += delta;
            }
        }
        lots.into_iter().filter(|(_, units)| *units != 0).collect()
    }

    /// Up to `need` units of `sku` in `state` at `location` (only `lot`, when given): lots that
    /// have not expired first, each group earliest expiry first.
    fn shelf_lots(
        &self,
        sku: &SkuId,
        location: &LocationId,
        state: StockState,
        lot: Option<&LotCode>,
        need: Quantity,
    ) -> Vec<(LotCode, Quantity)> {
        let mut lots: Vec<(bool, i64, LotCode, Quantity)> = self
            .lots_in(sku, &Account::stock(location, state))
            .into_iter()
            .filter(|(code, units)| *units > 0 && lot.is_none_or(|l| l == code))
            .map(|(code, units)| {
                let known = self.known_lot(sku, &code);
                let expires_on = known.map_or(i64::MAX, |l| l.expires_on);
                let expired = known.is_some_and(|l| l.is_expired(self.now_ms));
                (expired, expires_on, code, units)
            })
            .collect();
        lots.sort();
        take_in_order(lots.into_iter().map(|(_, _, code, units)| (code, units)).collect(), need)
    }

    /// Units of `sku` sold (shipped or sold at a till) under `reference` and not yet returned, by lot.
    fn sold_under(&self, sku: &SkuId, reference: &Reference) -> Vec<(LotCode, Quantity)> {
        let customer = Account::external(External::Customer);
        let mut sold: BTreeMap<LotCode, Quantity> = BTreeMap::new();
        let journal = self.ledger.movements_with(reference).map(|m| (&m.sku, &m.lot, &m.from, &m.to, m.quantity));
        let staged = self.staged.postings.iter().filter(|p| &p.reference == reference);
        let staged = staged.map(|p| (&p.sku, &p.lot, &p.from, &p.to, p.quantity));
        for (moved_sku, lot, from, to, quantity) in journal.chain(staged) {
            let (Some(lot), true) = (lot, moved_sku == sku) else { continue };
            if to == &customer {
                *sold.entry(lot.clone()).or_insert(0) += quantity;
            } else if from == &customer {
                *sold.entry(lot.clone()).or_insert(0) -= quantity;
            }
        }
        sold.into_iter().filter(|(_, units)| *units > 0).collect()
    }

    fn known_lot(&self, sku: &SkuId, code: &LotCode) -> Option<&Lot> {
        let key = (sku.clone(), code.clone());
        self.staged.lots.get(&key).or_else(|| self.ledger.lots.get(&key))
    }

    fn reservation(&self, id: &ReservationId) -> Option<&Reservation> {
        self.staged.reservations.get(id).or_else(|| self.ledger.reservations.get(id))
    }

    fn known_reservation(&self, id: &ReservationId) -> Result<Reservation, Rejection> {
        self.reservation(id).cloned().ok_or_else(|| Rejection::UnknownReservation { reservation: id.clone() })
    }

    fn transfer(&self, id: &TransferId) -> Option<&Transfer> {
        self.staged.transfers.get(id).or_else(|| self.ledger.transfers.get(id))
    }

    fn purchase_order(&self, id: &PurchaseOrderId) -> Option<&PurchaseOrder> {
        self.staged.purchase_orders.get(id).or_else(|| self.ledger.purchase_orders.get(id))
    }

    fn location(&self, id: &LocationId) -> Result<&'a Location, Rejection> {
        self.ledger.catalog.location(id).ok_or_else(|| Rejection::UnknownLocation { location: id.clone() })
    }

    fn plain_sku(&self, sku: &SkuId) -> Result<(), Rejection> {
        match self.ledger.catalog.components(sku) {
            None => Err(Rejection::UnknownSku { sku: sku.clone() }),
            Some(_) if !self.ledger.catalog.is_plain(sku) => Err(Rejection::KitHasNoStock { sku: sku.clone() }),
            Some(_) => Ok(()),
        }
    }

    fn lot_of(&self, sku: &SkuId, lot: &LotCode) -> Result<(), Rejection> {
        match self.known_lot(sku, lot) {
            Some(_) => Ok(()),
            None => Err(Rejection::UnknownLot { sku: sku.clone(), lot: lot.clone() }),
        }
    }

    /// The lot a sale or return line names, checked: only plain SKUs may name one, and it must be
    /// known.
    fn lot_line(&self, line: &LotLine) -> Result<Option<LotCode>, Rejection> {
        let Some(lot) = &line.lot else { return Ok(None) };
        if self.ledger.catalog.components(&line.sku).is_some() && !self.ledger.catalog.is_plain(&line.sku) {
            return Err(Rejection::LotForKit { sku: line.sku.clone() });
        }
        self.plain_sku(&line.sku)?;
        self.lot_of(&line.sku, lot)?;
        Ok(Some(lot.clone()))
    }

    /// (plain SKU, units per line unit, units needed) for `quantity` of `sku`.
    fn components(&self, sku: &SkuId, quantity: Quantity) -> Result<Vec<(SkuId, Quantity, Quantity)>, Rejection> {
        let components =
            self.ledger.catalog.components(sku).ok_or_else(|| Rejection::UnknownSku { sku: sku.clone() })?;
        components
            .into_iter()
            .map(|(component, per_unit)| match per_unit.checked_mul(quantity) {
                Some(need) => Ok((component, per_unit, need)),
                None => Err(Rejection::InvalidQuantity { sku: sku.clone(), quantity }),
            })
            .collect()
    }

    // ---- writing ----------------------------------------------------------------------------

    /// Stages one movement, refusing it if it would overdraw a balance that may not go negative.
    fn post(&mut self, posting: Posting) -> Result<(), Rejection> {
        if posting.quantity <= 0 {
            return Err(Rejection::InvalidQuantity { sku: posting.sku, quantity: posting.quantity });
        }
        let from = BalanceKey { sku: posting.sku.clone(), account: posting.from.clone(), lot: posting.lot.clone() };
        let there = self.balance(&from);
        if there < posting.quantity && !posting.from.may_go_negative() {
            return Err(match &posting.from {
                Account::Stock { location, state } => Rejection::NotEnough {
                    sku: posting.sku,
                    location: location.clone(),
                    state: *state,
                    requested: posting.quantity,
                    available: there,
                },
                Account::External { .. } => Rejection::ReturnExceedsSold {
                    sku: posting.sku,
                    reference: posting.reference,
                    requested: posting.quantity,
                    returnable: there,
                },
            });
        }
        let to = BalanceKey { sku: posting.sku.clone(), account: posting.to.clone(), lot: posting.lot.clone() };
        *self.deltas.entry(from).or_insert(0) -= posting.quantity;
        *self.deltas.entry(to).or_insert(0) += posting.quantity;
        self.staged.postings.push(posting);
        Ok(())
    }
}

fn positive(sku: &SkuId, quantity: Quantity) -> Result<(), Rejection> {
    if quantity > 0 { Ok(()) } else { Err(Rejection::InvalidQuantity { sku: sku.clone(), quantity }) }
}

fn non_empty<T>(lines: &[T]) -> Result<(), Rejection> {
    if lines.is_empty() { Err(Rejection::NoLines) } else { Ok(()) }
}

/// The first `need` units of `lots`, in their order.
fn take_in_order(lots: Vec<(LotCode, Quantity)>, need: Quantity) -> Vec<(LotCode, Quantity)> {
    let mut left = need;
    let mut takes = Vec::new();
    for (code, units) in lots {
        if left == 0 {
            break;
        }
        let units = units.min(left);
        if units > 0 {
            takes.push((code, units));
            left -= units;
        }
    }
    takes
}
