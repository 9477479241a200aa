//! A seeded, deterministic simulation of the ledger with a fake clock (TigerBeetle's VOPR in
//! miniature): random carts from several channels, expiries as time runs, confirms, partial
//! confirms, cancels, extensions, sweeps, shipments, returns, restocks, write-offs, POS sales that
//! collide with holds, transfers, purchase orders, adjustments, bad input, replayed keys and
//! restarts (restore from the journal and records, through JSON, and carry on).
//!
//! After every step it checks: the ledger's own invariants ([`Ledger::check`]); no negative
//! availability on any channel; stock plus what left through customers and shrinkage equals what
//! was received (counted by the simulation, not the ledger), and nothing is ever reserved,
//! committed or sold beyond what was received or found in a count; a single-line cart succeeds
//! exactly when the read just before promised enough, and a till sale exactly when the shelf had
//! the units; a new hold's lots are allowed on its channel; the `reserved` a read reports equals the live holds; and the
//! balances a store would hold by applying each outcome's movements equal the live ones. Every 25
//! steps and at each restart the balances are also rebuilt from the whole journal.
//!
//! A failing run prints its seed; `SIM_SEED=<seed> cargo test -p dermis-inventory --test
//! simulation` replays it exactly. `SIM_STEPS` changes the number of steps.

use std::collections::BTreeMap;
use std::sync::Mutex;

use dermis_inventory::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const DEFAULT_SEEDS: u64 = 20;
const DEFAULT_STEPS: usize = 1000;
const MINUTE: i64 = 60_000;

#[test]
fn seeded_simulation_keeps_every_invariant() {
    let steps = std::env::var("SIM_STEPS").map_or(DEFAULT_STEPS, |s| s.parse().expect("SIM_STEPS must be a number"));
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("SIM_SEED must be a number")],
        Err(_) => (1..=DEFAULT_SEEDS).collect(),
    };
    // Seeds are independent, so they run side by side; each run is deterministic on any thread.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(seeds.len());
    let failed = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for worker in 0..workers {
            let (seeds, failed) = (&seeds, &failed);
            scope.spawn(move || {
                for &seed in seeds.iter().skip(worker).step_by(workers) {
                    if std::panic::catch_unwind(|| Sim::new(seed).run(steps)).is_err() {
                        eprintln!(
                            "simulation failed with seed {seed}; replay it with \
                             SIM_SEED={seed} cargo test -p dermis-inventory --test simulation"
                        );
                        failed.lock().unwrap().push(seed);
                    }
                }
            });
        }
    });
    let failed = failed.into_inner().unwrap();
    assert!(failed.is_empty(), "simulation failed with seeds {failed:?} (SIM_SEED=<seed> replays one)");
}

#[test]
fn the_same_seed_gives_the_same_journal() {
    let journal = |seed| {
        let mut sim = Sim::new(seed);
        sim.run(200);
        serde_json::to_string(sim.ledger.journal()).unwrap()
    };
    assert_eq!(journal(7), journal(7));
    assert_ne!(journal(7), journal(8));
}

const SKUS: [&str; 6] = ["s0", "s1", "s2", "s3", "s4", "s5"];
const KITS: [&str; 2] = ["k0", "k1"];
const LOCATIONS: [&str; 4] = ["wh1", "wh2", "st1", "st2"];
const STORES: [&str; 2] = ["st1", "st2"];
const CHANNELS: [&str; 3] = ["web", "app", "marketplace:a"];

fn setup() -> Setup {
    let location = |id: &str, kind, latitude, longitude, channels: &[&str]| Location {
        id: id.into(),
        kind,
        latitude,
        longitude,
        channels: channels.iter().map(|c| c.parse().unwrap()).collect(),
        details: Default::default(),
    };
    let kit = |sku: &str, components: &[(&str, Quantity)]| Kit {
        sku: sku.into(),
        components: components.iter().map(|(s, q)| KitComponent { sku: (*s).into(), quantity: *q }).collect(),
    };
    Setup {
        skus: SKUS.iter().map(|s| SkuId::from(*s)).collect(),
        kits: vec![kit("k0", &[("s0", 1), ("s1", 2)]), kit("k1", &[("s2", 1), ("s3", 1), ("s4", 3)])],
        locations: vec![
            location("wh1", LocationKind::Warehouse, 48.0, 2.0, &["web", "app", "marketplace:a"]),
            location("wh2", LocationKind::ThirdPartyLogistics, 50.0, 3.0, &["web", "marketplace:a"]),
            location("st1", LocationKind::Store, 48.8, 2.3, &["web", "app", "pos"]),
            location("st2", LocationKind::Store, 45.7, 4.8, &["web", "pos"]),
        ],
        channels: vec![
            ChannelPolicy { channel: Channel::Web, safety_stock: 0, min_shelf_life_days: 30 },
            ChannelPolicy { channel: Channel::App, safety_stock: 1, min_shelf_life_days: 0 },
            ChannelPolicy { channel: "marketplace:a".parse().unwrap(), safety_stock: 2, min_shelf_life_days: 60 },
        ],
    }
}

struct Sim {
    seed: u64,
    rng: StdRng,
    ledger: Ledger,
    /// A second ledger kept by [`Ledger::replay`] of the first one's outcomes, as the service
    /// keeps its readers' copy: it must reach the same state.
    replica: Ledger,
    now: TimestampMs,
    counter: u64,
    /// What the simulation itself counted as received, per SKU.
    received: BTreeMap<SkuId, Quantity>,
    /// Units a stock count found (shrinkage → on hand), per SKU.
    found: BTreeMap<SkuId, Quantity>,
    /// Balances as a store would have them: the movements of every outcome, applied in order.
    persisted: Balances,
    persisted_movements: u64,
    reservations: Vec<ReservationId>,
    transfers: Vec<TransferId>,
    purchase_orders: Vec<PurchaseOrderId>,
    /// Documents units were sold under (orders, receipts), for returns.
    sold_under: Vec<Reference>,
    /// Successful requests, to replay their keys.
    applied: Vec<Request>,
}

impl Sim {
    fn new(seed: u64) -> Self {
        Self {
            seed,
            rng: StdRng::seed_from_u64(seed),
            ledger: Ledger::new(setup()).unwrap(),
            replica: Ledger::new(setup()).unwrap(),
            now: 20_000 * MS_PER_DAY,
            counter: 0,
            received: BTreeMap::new(),
            found: BTreeMap::new(),
            persisted: Balances::default(),
            persisted_movements: 0,
            reservations: Vec::new(),
            transfers: Vec::new(),
            purchase_orders: Vec::new(),
            sold_under: Vec::new(),
            applied: Vec::new(),
        }
    }

    fn run(&mut self, steps: usize) {
        for step in 0..steps {
            self.now += self.rng.gen_range(0..=3 * MINUTE);
            if self.rng.gen_ratio(1, 100) {
                self.now += MS_PER_DAY * self.rng.gen_range(1..=5);
            }
            self.step();
            self.check(step);
        }
        self.rebuild_check("the end");
    }

    fn next(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{}", self.counter)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.choose(&mut self.rng)
    }

    fn sku(&mut self) -> SkuId {
        SkuId::from(*self.pick(&SKUS).unwrap())
    }

    fn location(&mut self) -> LocationId {
        LocationId::from(*self.pick(&LOCATIONS).unwrap())
    }

    /// Applies a batch and records what a store would persist.
    fn apply(&mut self, batch: Vec<Request>) -> Vec<Result<Outcome, Rejection>> {
        let results = self.ledger.apply(batch.clone(), self.now);
        assert_eq!(results.len(), batch.len());
        self.replica.replay(batch.clone(), results.clone(), self.now);
        assert_eq!(
            self.replica.journal().len(),
            self.ledger.journal().len(),
            "seed {}: the replica's journal",
            self.seed
        );
        for (request, result) in batch.into_iter().zip(&results) {
            let Ok(outcome) = result else { continue };
            if outcome.replayed {
                continue;
            }
            for movement in &outcome.movements {
                assert_eq!(movement.id, self.persisted_movements + 1, "movement ids are dense");
                self.persisted_movements += 1;
                self.persisted.apply(movement);
            }
            self.note(&request.command, outcome);
            self.applied.push(request);
        }
        results
    }

    fn apply_one(&mut self, command: Command) -> Result<Outcome, Rejection> {
        let key = self.next("key-");
        self.apply(vec![Request::new(key, "sim", command)]).pop().unwrap()
    }

    /// Keeps the simulation's own books from what succeeded.
    fn note(&mut self, command: &Command, outcome: &Outcome) {
        match command {
            Command::Receive { lines, .. } => {
                for line in lines {
                    *self.received.entry(line.sku.clone()).or_insert(0) += line.quantity;
                }
            }
            Command::Reserve { reservation, .. } => self.reservations.push(reservation.clone()),
            Command::ExpectPurchase { purchase_order, .. } => self.purchase_orders.push(purchase_order.clone()),
            Command::TransferOut { transfer, .. } => self.transfers.push(transfer.clone()),
            Command::Ship { reservation, .. } => {
                let reference = self.ledger.reservation(reservation).unwrap().reference.clone();
                self.sold_under.push(reference);
            }
            Command::PosSale { receipt, .. } => self.sold_under.push(Reference::PosReceipt(receipt.clone())),
            Command::Adjust { sku, quantity, kind: AdjustKind::Found, .. } => {
                *self.found.entry(sku.clone()).or_insert(0) += quantity;
            }
            _ => {}
        }
        if let Effect::Reserved(reservation) = &outcome.effect {
            self.check_allocation(reservation);
        }
    }

    fn step(&mut self) {
        match self.rng.gen_range(0..100) {
            0..=9 => self.receive(),
            10..=11 => self.purchase(),
            12..=36 => self.reserve(),
            37..=39 => self.pos_sale_checked(),
            40..=41 => self.replay(),
            42 if self.rng.gen_ratio(1, 3) => self.restart(),
            43 => self.bad_input(),
            _ => {
                let mut batch = Vec::new();
                for _ in 0..self.rng.gen_range(1..=3) {
                    if let Some(command) = self.random_command() {
                        batch.push(Request::new(self.next("key-"), "sim", command));
                    }
                }
                if !batch.is_empty() {
                    self.apply(batch);
                }
            }
        }
    }

    fn receive(&mut self) {
        let sku = self.sku();
        let lot_code = self.next("L");
        let days = self.rng.gen_range(-3..400);
        let quantity = self.rng.gen_range(1..=20);
        let purchase_order =
            if self.rng.gen_ratio(1, 3) { self.pick(&self.purchase_orders.clone()).cloned() } else { None };
        let location = match purchase_order.as_ref().and_then(|po| self.ledger.purchase_order(po)) {
            Some(order) => order.location.clone(),
            None => self.location(),
        };
        let lot = Lot::new(lot_code, day_of(self.now) + days);
        let result = self.apply_one(Command::Receive {
            location,
            purchase_order,
            lines: vec![ReceiptLine { sku, quantity, lot }],
        });
        match result {
            Ok(_) => assert!(days > 0, "a lot with {days} days left was received"),
            Err(Rejection::ExpiredLot { .. }) => assert!(days <= 0),
            Err(other) => panic!("receipt refused: {other}"),
        }
    }

    fn purchase(&mut self) {
        let id = PurchaseOrderId::from(self.next("PO-"));
        let (location, sku) = (self.location(), self.sku());
        let quantity = self.rng.gen_range(1..=30);
        let command = Command::ExpectPurchase {
            purchase_order: id,
            location,
            eta_ms: self.now + 3 * MS_PER_DAY,
            lines: vec![Line::new(sku, quantity)],
        };
        self.apply_one(command).expect("a purchase order is always accepted");
    }

    /// A cart, alone in its batch, so that what a read promised just before can be checked.
    fn reserve(&mut self) {
        let channel: Channel = self.pick(&CHANNELS).unwrap().parse().unwrap();
        let lines: Vec<Line> = (0..self.rng.gen_range(1..=3))
            .map(|_| {
                let sku = if self.rng.gen_ratio(1, 5) { SkuId::from(*self.pick(&KITS).unwrap()) } else { self.sku() };
                Line::new(sku, self.rng.gen_range(1..=4))
            })
            .collect();
        let sells: Vec<LocationId> =
            setup().locations.into_iter().filter(|l| l.channels.contains(&channel)).map(|l| l.id).collect();
        let preferred = if self.rng.gen_ratio(1, 3) { self.pick(&sells).cloned() } else { None };
        let promised = self.ledger.available(&lines[0].sku, &channel, self.now).unwrap().available;
        let command = Command::Reserve {
            reservation: self.next("R-").into(),
            channel,
            lines: lines.clone(),
            expires_at_ms: self.now + self.rng.gen_range(1..=30) * MINUTE,
            preferred_location: preferred,
            reference: self.rng.gen_ratio(1, 2).then(|| Reference::Order(format!("O-{}", self.counter))),
            customer_id: None,
        };
        let result = self.apply_one(command);
        if lines.len() == 1 {
            // Checking and reserving are one operation: a read's promise is exactly what a cart gets.
            assert_eq!(
                result.is_ok(),
                lines[0].quantity <= promised,
                "{lines:?} with {promised} available: {result:?}"
            );
        }
        if let Err(rejection) = result {
            assert!(matches!(rejection, Rejection::InsufficientStock { .. }), "{rejection}");
        }
    }

    /// A till sale of one SKU, alone in its batch: it succeeds exactly when the shelf has the units
    /// (free or held for online carts).
    fn pos_sale_checked(&mut self) {
        let location = LocationId::from(*self.pick(&STORES).unwrap());
        let sku = self.sku();
        let quantity = self.rng.gen_range(1..=6);
        let shelf: Quantity = self
            .ledger
            .balances(&sku)
            .iter()
            .filter(|(k, _)| {
                k.account == Account::stock(&location, StockState::OnHand)
                    || k.account == Account::stock(&location, StockState::Reserved)
            })
            .map(|(_, q)| q)
            .sum();
        let receipt = self.next("T-");
        let result =
            self.apply_one(Command::PosSale { location, receipt, lines: vec![LotLine { sku, quantity, lot: None }] });
        assert_eq!(result.is_ok(), quantity <= shelf, "sold {quantity} off a shelf of {shelf}: {result:?}");
    }

    /// A key applied before, sent again.
    fn replay(&mut self) {
        if self.applied.is_empty() {
            return;
        }
        let request = self.applied[self.rng.gen_range(0..self.applied.len())].clone();
        let journal = self.ledger.journal().len();
        let outcome = self.apply(vec![request]).pop().unwrap().expect("a replayed key is never refused");
        assert!(outcome.replayed);
        assert_eq!(self.ledger.journal().len(), journal, "a replayed key moved stock");
    }

    /// A restart: the store hands back what it persisted, through its serialized form.
    fn restart(&mut self) {
        let records = serde_json::to_string(&self.ledger.records()).unwrap();
        let journal = serde_json::to_string(self.ledger.journal()).unwrap();
        let restored =
            Ledger::restore(setup(), serde_json::from_str(&records).unwrap(), serde_json::from_str(&journal).unwrap())
                .unwrap_or_else(|e| panic!("restore failed: {e}"));
        assert_eq!(restored.all_balances(), self.ledger.all_balances());
        assert_eq!(restored.records(), self.ledger.records());
        self.ledger = restored;
        self.replica = self.ledger.clone();
        self.rebuild_check("a restart");
    }

    fn bad_input(&mut self) {
        let sku = self.sku();
        let bad = match self.rng.gen_range(0..6) {
            0 => Command::Reserve {
                reservation: self.next("R-").into(),
                channel: Channel::Web,
                lines: vec![Line::new(sku, -self.rng.gen_range(0..3))],
                expires_at_ms: self.now + MINUTE,
                preferred_location: None,
                reference: None,
                customer_id: None,
            },
            1 => Command::Reserve {
                reservation: self.next("R-").into(),
                channel: Channel::App,
                lines: vec![Line::new("no-such-sku", 1)],
                expires_at_ms: self.now + MINUTE,
                preferred_location: None,
                reference: None,
                customer_id: None,
            },
            2 => Command::Receive {
                location: "no-such-place".into(),
                purchase_order: None,
                lines: vec![ReceiptLine { sku, quantity: 1, lot: Lot::new("X", day_of(self.now) + 100) }],
            },
            3 => Command::Receive {
                location: "wh1".into(),
                purchase_order: None,
                lines: vec![ReceiptLine { sku, quantity: 5, lot: Lot::new(self.next("L"), day_of(self.now)) }],
            },
            4 => Command::Confirm { reservation: "no-such-cart".into(), lines: None },
            _ => Command::PosSale { location: "st1".into(), receipt: "bad".into(), lines: vec![] },
        };
        let balances = self.ledger.all_balances().clone();
        let (journal, records) = (self.ledger.journal().len(), self.ledger.records());
        assert!(self.apply_one(bad.clone()).is_err(), "{bad:?} was accepted");
        assert_eq!(self.ledger.all_balances(), &balances);
        assert_eq!(self.ledger.journal().len(), journal);
        assert_eq!(self.ledger.records(), records);
    }

    fn random_command(&mut self) -> Option<Command> {
        let reservation = self.pick(&self.reservations.clone()).cloned();
        Some(match self.rng.gen_range(0..14) {
            0 | 1 => {
                let reservation = reservation?;
                let partial = self.rng.gen_ratio(1, 3);
                let lines = match self.ledger.reservation(&reservation) {
                    Some(r) if partial => {
                        let line = &r.lines[self.rng.gen_range(0..r.lines.len())];
                        Some(vec![Line::new(line.sku.clone(), self.rng.gen_range(1..=line.quantity))])
                    }
                    _ => None,
                };
                Command::Confirm { reservation, lines }
            }
            2 => Command::Release { reservation: reservation? },
            3 => Command::Extend {
                reservation: reservation?,
                expires_at_ms: self.now + self.rng.gen_range(1..=20) * MINUTE,
            },
            4 => Command::ExpireDue,
            5 | 6 => {
                let location = if self.rng.gen_ratio(1, 3) { Some(self.location()) } else { None };
                Command::Ship { reservation: reservation?, location }
            }
            7 => Command::TransferOut {
                transfer: self.next("TR-").into(),
                sku: self.sku(),
                quantity: self.rng.gen_range(1..=5),
                from: self.location(),
                to: self.location(),
                lot: None,
            },
            8 => Command::TransferIn { transfer: self.pick(&self.transfers.clone()).cloned()? },
            9 => {
                let (sku, location) = (self.sku(), self.location());
                let lot = self.ledger.balances(&sku).into_iter().find_map(|(k, _)| k.lot)?;
                let kind = *self.pick(&[
                    AdjustKind::Lost,
                    AdjustKind::Found,
                    AdjustKind::Damaged,
                    AdjustKind::Disposed,
                    AdjustKind::Quarantined,
                ])?;
                Command::Adjust {
                    location,
                    sku,
                    lot,
                    quantity: self.rng.gen_range(1..=3),
                    kind,
                    reference: Reference::Count(format!("count-{}", self.counter)),
                }
            }
            10 | 11 => {
                let lines = (0..self.rng.gen_range(1..=2))
                    .map(|_| {
                        let sku =
                            if self.rng.gen_ratio(1, 6) { SkuId::from(*self.pick(&KITS).unwrap()) } else { self.sku() };
                        LotLine { sku, quantity: self.rng.gen_range(1..=3), lot: None }
                    })
                    .collect();
                Command::PosSale {
                    location: LocationId::from(*self.pick(&STORES).unwrap()),
                    receipt: self.next("T-"),
                    lines,
                }
            }
            12 => {
                let reference = self.pick(&self.sold_under.clone()).cloned()?;
                Command::Return {
                    location: self.location(),
                    reference,
                    lines: vec![LotLine { sku: self.sku(), quantity: self.rng.gen_range(1..=2), lot: None }],
                }
            }
            _ => {
                // Restock or write off something in quarantine.
                let sku = self.sku();
                let (key, units) = self
                    .ledger
                    .balances(&sku)
                    .into_iter()
                    .find(|(k, _)| matches!(k.account, Account::Stock { state: StockState::Quarantine, .. }))?;
                let Account::Stock { location, .. } = key.account else { return None };
                let quantity = self.rng.gen_range(1..=units);
                let lot = key.lot?;
                if self.rng.gen_ratio(1, 2) {
                    Command::Restock { location, sku, lot, quantity }
                } else {
                    Command::WriteOff { location, sku, lot, quantity }
                }
            }
        })
    }

    /// A new hold's allocations follow the channel's rules.
    fn check_allocation(&self, reservation: &Reservation) {
        let setup = setup();
        let policy = setup.channels.iter().find(|p| p.channel == reservation.channel).unwrap();
        for line in &reservation.lines {
            for component in &line.components {
                assert_eq!(component.held(), line.quantity * component.per_unit, "{} is not fully held", line.sku);
                for allocation in &component.allocations {
                    let location = setup.locations.iter().find(|l| l.id == allocation.location).unwrap();
                    assert!(location.channels.contains(&reservation.channel), "{} sells nothing on it", location.id);
                    let lot = self.ledger.lot(&component.sku, &allocation.lot).unwrap();
                    let days = lot.remaining_days(self.now);
                    assert!(days > 0 && days >= policy.min_shelf_life_days, "lot with {days} days allocated");
                }
            }
        }
    }

    fn check(&self, step: usize) {
        let context = format!("seed {} step {step}", self.seed);
        if let Err(violation) = self.ledger.check() {
            panic!("{context}: {violation}");
        }
        assert_eq!(&self.persisted, self.ledger.all_balances(), "{context}: persisted movements differ from balances");
        if step.is_multiple_of(25) {
            self.rebuild_check(&context);
        }
        let customer = Account::external(External::Customer);
        let shrinkage = Account::external(External::Shrinkage);
        for sku in SKUS.iter().map(|s| SkuId::from(*s)) {
            let balances = self.ledger.balances(&sku);
            let sum = |f: &dyn Fn(&BalanceKey) -> bool| -> Quantity {
                balances.iter().filter(|(k, _)| f(k)).map(|(_, q)| q).sum()
            };
            let stock = sum(&|k| matches!(&k.account, Account::Stock { state, .. } if *state != StockState::Incoming));
            let out = sum(&|k| k.account == customer || k.account == shrinkage);
            let received = self.received.get(&sku).copied().unwrap_or(0);
            assert_eq!(stock + out, received, "{context}: {sku}: units in stock and gone differ from units received");
            let held_or_sold = sum(&|k| {
                matches!(&k.account, Account::Stock { state: StockState::Reserved | StockState::Committed, .. })
                    || k.account == customer
            });
            let found = self.found.get(&sku).copied().unwrap_or(0);
            assert!(
                held_or_sold <= received + found,
                "{context}: {sku}: {held_or_sold} reserved, committed or sold of {received} received and {found} found"
            );
        }
        let live_held = self.live_held();
        for sku in SKUS.iter().chain(KITS.iter()).map(|s| SkuId::from(*s)) {
            for channel in CHANNELS.iter().map(|c| c.parse::<Channel>().unwrap()) {
                let availability = self.ledger.available(&sku, &channel, self.now).unwrap();
                assert!(availability.available >= 0, "{context}: {sku} on {channel}: negative availability");
                for location in &availability.locations {
                    assert!(
                        location.available >= 0 && location.on_hand >= 0 && location.reserved >= 0,
                        "{context}: {location:?}"
                    );
                    if SKUS.contains(&sku.as_str()) {
                        assert!(location.available <= location.on_hand, "{context}: {location:?}");
                        assert_eq!(
                            location.reserved,
                            live_held.get(&(sku.clone(), location.location.clone())).copied().unwrap_or(0),
                            "{context}: {sku} at {}: reserved is not the live holds",
                            location.location
                        );
                    }
                }
                if SKUS.contains(&sku.as_str()) {
                    let total: Quantity = availability.locations.iter().map(|l| l.available).sum();
                    assert_eq!(total, availability.available, "{context}");
                }
            }
        }
    }

    /// Units held by holds that are live now, per (SKU, location).
    fn live_held(&self) -> BTreeMap<(SkuId, LocationId), Quantity> {
        let mut held = BTreeMap::new();
        for reservation in self.reservations.iter().filter_map(|id| self.ledger.reservation(id)) {
            if !reservation.is_live(self.now) {
                continue;
            }
            for component in reservation.components() {
                for allocation in &component.allocations {
                    let key = (component.sku.clone(), allocation.location.clone());
                    *held.entry(key).or_insert(0) += allocation.held;
                }
            }
        }
        held
    }

    fn rebuild_check(&self, context: &str) {
        assert_eq!(
            &Balances::rebuild(self.ledger.journal()),
            self.ledger.all_balances(),
            "seed {}, {context}: the journal does not rebuild the balances",
            self.seed
        );
        // The replica, every field of it (its `Debug` prints them all: journal, balances,
        // records, indexes, deadlines, applied keys, clock).
        assert!(
            format!("{:?}", self.replica) == format!("{:?}", self.ledger),
            "seed {}, {context}: replaying the outcomes did not reach the state of applying the commands",
            self.seed
        );
    }
}
