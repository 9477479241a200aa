//! Every command through the public API: what it moves, and what it refuses without changing
//! anything.

use dermis_inventory::*;

const DAY: i64 = MS_PER_DAY;
const START: TimestampMs = 20_000 * DAY + 9 * 3_600_000;
const MINUTE: i64 = 60_000;

fn location(id: &str, kind: LocationKind, latitude: f64, longitude: f64, channels: &[&str]) -> Location {
    Location {
        id: id.into(),
        kind,
        latitude,
        longitude,
        channels: channels.iter().map(|c| c.parse().unwrap()).collect(),
        details: Default::default(),
    }
}

fn setup() -> Setup {
    Setup {
        skus: vec!["serum".into(), "cream".into(), "toner".into()],
        kits: vec![Kit {
            sku: "duo".into(),
            components: vec![
                KitComponent { sku: "serum".into(), quantity: 1 },
                KitComponent { sku: "cream".into(), quantity: 2 },
            ],
        }],
        locations: vec![
            location("wh", LocationKind::Warehouse, 48.0, 2.0, &["web", "app", "marketplace:zalando"]),
            location("paris", LocationKind::Store, 48.86, 2.35, &["web", "pos"]),
            location("lyon", LocationKind::Store, 45.76, 4.84, &["web", "pos"]),
        ],
        channels: vec![
            ChannelPolicy { channel: Channel::Web, safety_stock: 0, min_shelf_life_days: 30 },
            ChannelPolicy { channel: Channel::App, safety_stock: 2, min_shelf_life_days: 0 },
            ChannelPolicy { channel: "marketplace:zalando".parse().unwrap(), safety_stock: 0, min_shelf_life_days: 90 },
        ],
    }
}

struct World {
    ledger: Ledger,
    now: TimestampMs,
    keys: u64,
}

/// What a command could change: compared before and after a refusal.
#[derive(Debug, PartialEq)]
struct Snapshot {
    balances: Balances,
    journal: usize,
    records: Records,
}

impl World {
    fn new() -> Self {
        Self { ledger: Ledger::new(setup()).unwrap(), now: START, keys: 0 }
    }

    fn run(&mut self, command: Command) -> Result<Outcome, Rejection> {
        self.keys += 1;
        let request = Request::new(format!("k{}", self.keys), "tester", command);
        self.ledger.apply(vec![request], self.now).pop().unwrap()
    }

    fn ok(&mut self, command: Command) -> Outcome {
        self.run(command.clone()).unwrap_or_else(|e| panic!("{command:?} was refused: {e}"))
    }

    /// Runs a command that must be refused, and checks that it changed nothing.
    fn refused(&mut self, command: Command) -> Rejection {
        let before = self.snapshot();
        let rejection = match self.run(command.clone()) {
            Ok(outcome) => panic!("{command:?} was applied: {outcome:?}"),
            Err(rejection) => rejection,
        };
        assert_eq!(self.snapshot(), before, "a refused command changed the ledger");
        rejection
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            balances: self.ledger.all_balances().clone(),
            journal: self.ledger.journal().len(),
            records: self.ledger.records(),
        }
    }

    fn receive(&mut self, at: &str, sku: &str, lot: &str, days_left: i64, quantity: Quantity) {
        let expires_on = day_of(self.now) + days_left;
        self.ok(receive(at, sku, lot, expires_on, quantity));
    }

    fn stock(&self, sku: &str, at: &str, state: StockState) -> Quantity {
        let account = Account::stock(&at.into(), state);
        self.ledger.balances(&sku.into()).iter().filter(|(k, _)| k.account == account).map(|(_, q)| q).sum()
    }

    fn customer(&self, sku: &str) -> Quantity {
        let account = Account::external(External::Customer);
        self.ledger.balances(&sku.into()).iter().filter(|(k, _)| k.account == account).map(|(_, q)| q).sum()
    }

    fn available(&self, sku: &str, channel: &str) -> Quantity {
        self.ledger.available(&sku.into(), &channel.parse().unwrap(), self.now).unwrap().available
    }

    fn reserve(&mut self, id: &str, channel: &str, lines: &[(&str, Quantity)]) -> Result<Reservation, Rejection> {
        let command = reserve(id, channel, lines, self.now + 15 * MINUTE, None);
        self.run(command).map(|o| match o.effect {
            Effect::Reserved(r) => r,
            other => panic!("reserve answered {other:?}"),
        })
    }
}

fn receive(at: &str, sku: &str, lot: &str, expires_on: EpochDay, quantity: Quantity) -> Command {
    Command::Receive {
        location: at.into(),
        purchase_order: None,
        lines: vec![ReceiptLine { sku: sku.into(), quantity, lot: Lot::new(lot, expires_on) }],
    }
}

fn reserve(
    id: &str,
    channel: &str,
    lines: &[(&str, Quantity)],
    expires_at_ms: TimestampMs,
    preferred: Option<&str>,
) -> Command {
    Command::Reserve {
        reservation: id.into(),
        channel: channel.parse().unwrap(),
        lines: lines.iter().map(|(sku, q)| Line::new(*sku, *q)).collect(),
        expires_at_ms,
        preferred_location: preferred.map(LocationId::from),
        reference: None,
        customer_id: None,
    }
}

fn confirm(id: &str) -> Command {
    Command::Confirm { reservation: id.into(), lines: None }
}

/// Owned (location, lot, units) triples, to compare with [`held`].
fn triples(items: &[(&str, &str, Quantity)]) -> Vec<(String, String, Quantity)> {
    items.iter().map(|(l, lot, q)| (l.to_string(), lot.to_string(), *q)).collect()
}

/// (location, lot, held) of every allocation of a reservation.
fn held(reservation: &Reservation) -> Vec<(String, String, Quantity)> {
    reservation
        .components()
        .flat_map(|c| c.allocations.iter())
        .filter(|a| a.held > 0)
        .map(|a| (a.location.to_string(), a.lot.to_string(), a.held))
        .collect()
}

// ---- receipts and purchase orders -----------------------------------------------------------

#[test]
fn a_receipt_books_units_on_hand_and_registers_the_lot() {
    let mut world = World::new();
    world.receive("wh", "serum", "L1", 200, 10);
    assert_eq!(world.stock("serum", "wh", StockState::OnHand), 10);
    assert_eq!(world.ledger.lot(&"serum".into(), &"L1".into()).unwrap().expires_on, day_of(START) + 200);
    assert_eq!(world.available("serum", "web"), 10);
}

#[test]
fn bad_receipts_are_refused_and_change_nothing() {
    let mut world = World::new();
    world.receive("wh", "serum", "L1", 200, 10);
    let today = day_of(START);
    assert!(matches!(world.refused(receive("wh", "serum", "L2", today - 3, 5)), Rejection::ExpiredLot { .. }));
    assert!(matches!(world.refused(receive("wh", "serum", "L2", today, 5)), Rejection::ExpiredLot { .. }));
    assert!(matches!(world.refused(receive("wh", "serum", "L2", today + 9, 0)), Rejection::InvalidQuantity { .. }));
    assert!(matches!(world.refused(receive("wh", "serum", "L2", today + 9, -4)), Rejection::InvalidQuantity { .. }));
    assert!(matches!(world.refused(receive("wh", "lipstick", "L2", today + 9, 1)), Rejection::UnknownSku { .. }));
    assert!(matches!(world.refused(receive("moon", "serum", "L2", today + 9, 1)), Rejection::UnknownLocation { .. }));
    assert!(matches!(world.refused(receive("wh", "duo", "L2", today + 9, 1)), Rejection::KitHasNoStock { .. }));
    assert!(matches!(world.refused(receive("wh", "serum", "L1", today + 9, 1)), Rejection::LotMismatch { .. }));
    // One bad line refuses the whole receipt.
    let mixed = Command::Receive {
        location: "wh".into(),
        purchase_order: None,
        lines: vec![
            ReceiptLine { sku: "cream".into(), quantity: 5, lot: Lot::new("C1", today + 100) },
            ReceiptLine { sku: "toner".into(), quantity: 5, lot: Lot::new("T1", today - 1) },
        ],
    };
    assert!(matches!(world.refused(mixed), Rejection::ExpiredLot { .. }));
}

#[test]
fn a_purchase_order_shows_as_incoming_until_received() {
    let mut world = World::new();
    world.ok(Command::ExpectPurchase {
        purchase_order: "PO-1".into(),
        location: "wh".into(),
        eta_ms: START + 3 * DAY,
        lines: vec![Line::new("serum", 50)],
    });
    let wh = |w: &World| w.ledger.available(&"serum".into(), &Channel::Web, w.now).unwrap().locations[0].clone();
    assert_eq!(wh(&world).incoming, 50);
    assert_eq!(wh(&world).available, 0, "incoming units are not sellable");
    let lines = vec![ReceiptLine { sku: "serum".into(), quantity: 30, lot: Lot::new("L1", day_of(START) + 300) }];
    world.ok(Command::Receive { location: "wh".into(), purchase_order: Some("PO-1".into()), lines: lines.clone() });
    assert_eq!((wh(&world).incoming, wh(&world).on_hand), (20, 30));
    // A receipt of more than is still expected closes the order and books the surplus.
    world.ok(Command::Receive { location: "wh".into(), purchase_order: Some("PO-1".into()), lines: lines.clone() });
    assert_eq!((wh(&world).incoming, wh(&world).on_hand), (0, 60));
    let elsewhere = Command::Receive { location: "paris".into(), purchase_order: Some("PO-1".into()), lines };
    assert!(matches!(world.refused(elsewhere), Rejection::PurchaseOrderElsewhere { .. }));
}

// ---- reservations ---------------------------------------------------------------------------

#[test]
fn a_cart_is_reserved_whole_or_not_at_all() {
    let mut world = World::new();
    world.receive("wh", "serum", "S1", 200, 5);
    world.receive("wh", "cream", "C1", 200, 1);
    let before = world.snapshot();
    let refused = world.reserve("r1", "web", &[("serum", 2), ("cream", 3), ("toner", 1)]).unwrap_err();
    let Rejection::InsufficientStock { shortages } = refused else { panic!("{refused:?}") };
    let short: Vec<(&str, Quantity, Quantity)> =
        shortages.iter().map(|s| (s.sku.as_str(), s.requested, s.available)).collect();
    assert_eq!(short, vec![("cream", 3, 1), ("toner", 1, 0)]);
    assert_eq!(world.snapshot(), before);

    let outcome = world.ok(reserve("r1", "web", &[("serum", 2), ("cream", 1)], START + 15 * MINUTE, None));
    let Effect::Reserved(reservation) = &outcome.effect else { panic!() };
    assert_eq!(reservation.expires_at_ms, START + 15 * MINUTE);
    assert_eq!(outcome.changes.reservations, vec![reservation.clone()]);
    let deltas: Vec<(String, Quantity)> = outcome
        .balance_deltas()
        .into_iter()
        .map(|(key, delta)| (format!("{}/{:?}", key.sku, key.account), delta))
        .collect();
    let wh = |state| format!("{:?}", Account::stock(&"wh".into(), state));
    assert_eq!(
        deltas,
        vec![
            (format!("cream/{}", wh(StockState::OnHand)), -1),
            (format!("cream/{}", wh(StockState::Reserved)), 1),
            (format!("serum/{}", wh(StockState::OnHand)), -2),
            (format!("serum/{}", wh(StockState::Reserved)), 2),
        ]
    );
    assert_eq!(world.stock("serum", "wh", StockState::Reserved), 2);
    assert_eq!(world.available("serum", "web"), 3);
    assert_eq!(world.available("cream", "web"), 0);
}

#[test]
fn allocation_is_fefo_and_respects_each_channels_shelf_life() {
    let mut world = World::new();
    world.receive("wh", "serum", "late", 400, 5);
    world.receive("wh", "serum", "mid", 100, 2);
    world.receive("wh", "serum", "soon", 10, 9);
    // Web needs 30 days left: "soon" is never offered to it.
    assert_eq!(world.available("serum", "web"), 7);
    let web = world.reserve("r1", "web", &[("serum", 3)]).unwrap();
    assert_eq!(held(&web), triples(&[("wh", "mid", 2), ("wh", "late", 1)]));
    // The marketplace needs 90 days: only "late" is left for it.
    assert_eq!(world.available("serum", "marketplace:zalando"), 4);
    // The app takes anything not expired, earliest first, keeping 2 units of safety stock.
    assert_eq!(world.available("serum", "app"), 13 - 2);
    let app = world.reserve("r2", "app", &[("serum", 10)]).unwrap();
    assert_eq!(held(&app), triples(&[("wh", "soon", 9), ("wh", "late", 1)]));
    assert!(matches!(world.reserve("r3", "app", &[("serum", 2)]), Err(Rejection::InsufficientStock { .. })));
}

#[test]
fn a_line_is_split_across_locations_and_the_preferred_one_comes_first() {
    let mut world = World::new();
    world.receive("wh", "serum", "A", 200, 2);
    world.receive("paris", "serum", "B", 200, 2);
    world.receive("lyon", "serum", "C", 200, 5);
    let split = world.reserve("r1", "web", &[("serum", 5)]).unwrap();
    assert_eq!(held(&split), triples(&[("wh", "A", 2), ("paris", "B", 2), ("lyon", "C", 1)]));
    let pickup = world.ok(reserve("r2", "web", &[("serum", 2)], START + MINUTE, Some("lyon")));
    let Effect::Reserved(pickup) = pickup.effect else { panic!() };
    assert_eq!(held(&pickup), triples(&[("lyon", "C", 2)]));
    let not_sold_there = reserve("r3", "marketplace:zalando", &[("serum", 1)], START + MINUTE, Some("lyon"));
    assert!(matches!(world.refused(not_sold_there), Rejection::LocationNotInChannel { .. }));
}

#[test]
fn bad_reservations_are_refused_and_change_nothing() {
    let mut world = World::new();
    world.receive("wh", "serum", "A", 200, 5);
    let later = START + MINUTE;
    assert!(matches!(
        world.refused(reserve("r", "web", &[("serum", 0)], later, None)),
        Rejection::InvalidQuantity { .. }
    ));
    assert!(matches!(
        world.refused(reserve("r", "web", &[("serum", -1)], later, None)),
        Rejection::InvalidQuantity { .. }
    ));
    assert!(matches!(world.refused(reserve("r", "web", &[("nope", 1)], later, None)), Rejection::UnknownSku { .. }));
    assert!(matches!(world.refused(reserve("r", "web", &[], later, None)), Rejection::NoLines));
    assert!(matches!(
        world.refused(reserve("r", "pos", &[("serum", 1)], later, None)),
        Rejection::UnknownChannel { .. }
    ));
    assert!(matches!(
        world.refused(reserve("r", "web", &[("serum", 1)], START, None)),
        Rejection::DeadlineNotInFuture { .. }
    ));
    assert!(matches!(
        world.refused(reserve("r", "web", &[("serum", 1)], later, Some("moon"))),
        Rejection::UnknownLocation { .. }
    ));
    world.reserve("r", "web", &[("serum", 1)]).unwrap();
    assert!(matches!(
        world.refused(reserve("r", "web", &[("serum", 1)], later, None)),
        Rejection::AlreadyExists { .. }
    ));
}

#[test]
fn confirm_commits_held_units_fully_or_partly_and_only_once() {
    let mut world = World::new();
    world.receive("wh", "serum", "A", 200, 10);
    world.receive("wh", "cream", "C", 200, 10);
    world.reserve("r1", "web", &[("serum", 4), ("cream", 2)]).unwrap();
    let partial = Command::Confirm { reservation: "r1".into(), lines: Some(vec![Line::new("serum", 3)]) };
    let Effect::Confirmed(r) = world.ok(partial).effect else { panic!() };
    assert_eq!(r.status, ReservationStatus::Held);
    assert_eq!(world.stock("serum", "wh", StockState::Committed), 3);
    assert_eq!(world.stock("serum", "wh", StockState::Reserved), 1);
    let too_many = Command::Confirm { reservation: "r1".into(), lines: Some(vec![Line::new("serum", 2)]) };
    assert!(matches!(world.refused(too_many), Rejection::ConfirmExceedsHold { held: 1, .. }));
    let Effect::Confirmed(r) = world.ok(confirm("r1")).effect else { panic!() };
    assert_eq!(r.status, ReservationStatus::Confirmed);
    assert_eq!(world.stock("serum", "wh", StockState::Committed), 4);
    assert_eq!(world.stock("cream", "wh", StockState::Committed), 2);
    assert!(matches!(world.refused(confirm("r1")), Rejection::AlreadyConfirmed { .. }));
    assert!(matches!(world.refused(confirm("nope")), Rejection::UnknownReservation { .. }));
}

#[test]
fn an_expired_hold_stops_counting_at_once_and_cannot_be_confirmed() {
    let mut world = World::new();
    world.receive("wh", "serum", "A", 200, 3);
    world.reserve("r1", "web", &[("serum", 3)]).unwrap();
    assert_eq!(world.available("serum", "web"), 0);
    world.now += 15 * MINUTE;
    // No sweep yet: the units are still in `reserved`, but reads and reserves no longer count them.
    assert_eq!(world.stock("serum", "wh", StockState::Reserved), 3);
    assert_eq!(world.available("serum", "web"), 3);
    assert!(matches!(world.refused(confirm("r1")), Rejection::ReservationExpired { .. }));
    let extend = Command::Extend { reservation: "r1".into(), expires_at_ms: world.now + MINUTE };
    assert!(matches!(world.refused(extend), Rejection::ReservationExpired { .. }));
    let r2 = world.ok(reserve("r2", "web", &[("serum", 2)], world.now + MINUTE, None));
    let expired: Vec<Reason> = r2.movements.iter().map(|m| m.reason).collect();
    assert_eq!(expired, vec![Reason::Expire, Reason::Reserve]);
    assert_eq!(world.ledger.reservation(&"r1".into()).unwrap().status, ReservationStatus::Expired);
    assert_eq!(world.stock("serum", "wh", StockState::Reserved), 2);
}

#[test]
fn the_sweeper_returns_expired_holds_and_keeps_confirmed_units() {
    let mut world = World::new();
    world.receive("wh", "serum", "A", 200, 10);
    world.reserve("r1", "web", &[("serum", 3)]).unwrap();
    world.reserve("r2", "web", &[("serum", 4)]).unwrap();
    world.ok(Command::Confirm { reservation: "r2".into(), lines: Some(vec![Line::new("serum", 1)]) });
    world.ok(Command::Extend { reservation: "r1".into(), expires_at_ms: START + DAY });
    world.now += 20 * MINUTE;
    let Effect::Expired { reservations } = world.ok(Command::ExpireDue).effect else { panic!() };
    assert_eq!(reservations, vec![ReservationId::from("r2")]);
    assert_eq!(world.ledger.reservation(&"r2".into()).unwrap().status, ReservationStatus::Confirmed);
    assert_eq!(world.stock("serum", "wh", StockState::Reserved), 3);
    assert_eq!(world.stock("serum", "wh", StockState::Committed), 1);
    assert_eq!(world.stock("serum", "wh", StockState::OnHand), 6);
}

#[test]
fn release_returns_held_and_committed_units_once() {
    let mut world = World::new();
    world.receive("wh", "serum", "A", 200, 10);
    world.reserve("r1", "web", &[("serum", 5)]).unwrap();
    world.ok(Command::Confirm { reservation: "r1".into(), lines: Some(vec![Line::new("serum", 2)]) });
    let Effect::Released(r) = world.ok(Command::Release { reservation: "r1".into() }).effect else { panic!() };
    assert_eq!(r.status, ReservationStatus::Released);
    assert_eq!(world.stock("serum", "wh", StockState::OnHand), 10);
    let again = world.refused(Command::Release { reservation: "r1".into() });
    assert!(matches!(again, Rejection::ReservationClosed { status: ReservationStatus::Released, .. }));
    assert!(matches!(world.refused(confirm("r1")), Rejection::ReservationClosed { .. }));
}

#[test]
fn shipping_sends_committed_units_to_the_customer_per_location() {
    let mut world = World::new();
    world.receive("wh", "serum", "A", 200, 1);
    world.receive("paris", "serum", "B", 200, 1);
    world.reserve("r1", "web", &[("serum", 2)]).unwrap();
    let ship =
        |location: Option<&str>| Command::Ship { reservation: "r1".into(), location: location.map(LocationId::from) };
    assert!(matches!(world.refused(ship(None)), Rejection::NothingToShip { .. }));
    world.ok(confirm("r1"));
    let Effect::Shipped(r) = world.ok(ship(Some("paris"))).effect else { panic!() };
    assert_eq!(r.status, ReservationStatus::Confirmed);
    assert_eq!(world.customer("serum"), 1);
    let Effect::Shipped(r) = world.ok(ship(None)).effect else { panic!() };
    assert_eq!(r.status, ReservationStatus::Fulfilled);
    assert_eq!(world.customer("serum"), 2);
    assert!(matches!(world.refused(ship(None)), Rejection::NothingToShip { .. }));
    assert!(matches!(
        world.refused(Command::Release { reservation: "r1".into() }),
        Rejection::ReservationClosed { .. }
    ));
}

// ---- transfers and adjustments --------------------------------------------------------------

#[test]
fn a_transfer_goes_through_in_transit_and_arrives_once() {
    let mut world = World::new();
    world.receive("wh", "serum", "late", 300, 5);
    world.receive("wh", "serum", "early", 100, 2);
    let out = |id: &str, quantity| Command::TransferOut {
        transfer: id.into(),
        sku: "serum".into(),
        quantity,
        from: "wh".into(),
        to: "paris".into(),
        lot: None,
    };
    let Effect::TransferSent(t) = world.ok(out("t1", 3)).effect else { panic!() };
    assert_eq!(t.lots, vec![(LotCode::from("early"), 2), (LotCode::from("late"), 1)]);
    assert_eq!(world.stock("serum", "paris", StockState::InTransit), 3);
    assert_eq!(world.ledger.available(&"serum".into(), &Channel::Web, world.now).unwrap().locations[1].incoming, 3);
    assert!(matches!(world.refused(out("t2", 5)), Rejection::NotEnough { available: 4, .. }));
    world.ok(Command::TransferIn { transfer: "t1".into() });
    assert_eq!(world.stock("serum", "paris", StockState::OnHand), 3);
    assert!(matches!(
        world.refused(Command::TransferIn { transfer: "t1".into() }),
        Rejection::TransferAlreadyReceived { .. }
    ));
    assert!(matches!(world.refused(out("t1", 1)), Rejection::AlreadyExists { .. }));
    let same = Command::TransferOut {
        transfer: "t3".into(),
        sku: "serum".into(),
        quantity: 1,
        from: "wh".into(),
        to: "wh".into(),
        lot: None,
    };
    assert!(matches!(world.refused(same), Rejection::SameLocation { .. }));
}

#[test]
fn adjustments_move_between_on_hand_damaged_quarantine_and_shrinkage() {
    let mut world = World::new();
    world.receive("wh", "serum", "A", 200, 10);
    let adjust = |kind, quantity| Command::Adjust {
        location: "wh".into(),
        sku: "serum".into(),
        lot: "A".into(),
        quantity,
        kind,
        reference: Reference::Count("count-7".into()),
    };
    world.ok(adjust(AdjustKind::Lost, 2));
    world.ok(adjust(AdjustKind::Damaged, 3));
    world.ok(adjust(AdjustKind::Disposed, 1));
    world.ok(adjust(AdjustKind::Quarantined, 1));
    world.ok(adjust(AdjustKind::Found, 1));
    assert_eq!(world.stock("serum", "wh", StockState::OnHand), 5);
    assert_eq!(world.stock("serum", "wh", StockState::Damaged), 2);
    assert_eq!(world.stock("serum", "wh", StockState::Quarantine), 1);
    assert!(matches!(world.refused(adjust(AdjustKind::Lost, 6)), Rejection::NotEnough { available: 5, .. }));
    assert!(matches!(world.refused(adjust(AdjustKind::Disposed, 3)), Rejection::NotEnough { .. }));
    assert!(matches!(world.refused(adjust(AdjustKind::Lost, 0)), Rejection::InvalidQuantity { .. }));
    let unknown_lot = Command::Adjust {
        location: "wh".into(),
        sku: "serum".into(),
        lot: "ZZ".into(),
        quantity: 1,
        kind: AdjustKind::Found,
        reference: Reference::None,
    };
    assert!(matches!(world.refused(unknown_lot), Rejection::UnknownLot { .. }));
}

// ---- POS, returns ---------------------------------------------------------------------------

fn pos_sale(at: &str, receipt: &str, sku: &str, quantity: Quantity) -> Command {
    Command::PosSale {
        location: at.into(),
        receipt: receipt.into(),
        lines: vec![LotLine { sku: sku.into(), quantity, lot: None }],
    }
}

#[test]
fn a_till_sale_takes_the_shelf_and_moves_a_colliding_hold_elsewhere() {
    let mut world = World::new();
    world.receive("paris", "serum", "P", 200, 3);
    world.receive("lyon", "serum", "L", 200, 1);
    world.ok(reserve("r1", "web", &[("serum", 3)], START + 15 * MINUTE, Some("paris")));
    // The shelf in Paris has 3 units, all held online; the till sells 2 of them anyway.
    let sale = world.ok(pos_sale("paris", "R-1", "serum", 2));
    let Effect::PosSold { conflicts } = sale.effect else { panic!() };
    assert_eq!(
        conflicts,
        vec![HoldConflict { reservation: "r1".into(), sku: "serum".into(), taken: 2, reallocated: 1, short: 1 }]
    );
    let r1 = world.ledger.reservation(&"r1".into()).unwrap();
    assert!(r1.is_flagged());
    assert_eq!(held(r1), triples(&[("paris", "P", 1), ("lyon", "L", 1)]));
    assert_eq!(world.customer("serum"), 2);
    // What is not on the shelf cannot be sold, and the refusal changes nothing.
    assert!(matches!(world.refused(pos_sale("paris", "R-2", "serum", 2)), Rejection::NotEnough { .. }));
    // A flagged hold still confirms what it holds.
    let Effect::Confirmed(r1) = world.ok(confirm("r1")).effect else { panic!() };
    assert_eq!(r1.committed(), 2);
}

#[test]
fn returns_go_to_quarantine_then_back_on_sale_or_written_off() {
    let mut world = World::new();
    world.receive("paris", "serum", "P", 200, 5);
    world.ok(pos_sale("paris", "R-1", "serum", 3));
    let receipt = Reference::PosReceipt("R-1".into());
    let back = |quantity| Command::Return {
        location: "paris".into(),
        reference: receipt.clone(),
        lines: vec![LotLine { sku: "serum".into(), quantity, lot: None }],
    };
    assert!(matches!(world.refused(back(4)), Rejection::ReturnExceedsSold { returnable: 3, .. }));
    world.ok(back(2));
    assert!(matches!(world.refused(back(2)), Rejection::ReturnExceedsSold { returnable: 1, .. }));
    assert_eq!(world.stock("serum", "paris", StockState::Quarantine), 2);
    assert_eq!(world.available("serum", "web"), 2, "quarantined units are not sold");
    let restock = Command::Restock { location: "paris".into(), sku: "serum".into(), lot: "P".into(), quantity: 1 };
    world.ok(restock);
    let write_off = Command::WriteOff { location: "paris".into(), sku: "serum".into(), lot: "P".into(), quantity: 1 };
    world.ok(write_off.clone());
    assert!(matches!(world.refused(write_off), Rejection::NotEnough { .. }));
    assert_eq!(world.stock("serum", "paris", StockState::OnHand), 3);
    assert_eq!(world.stock("serum", "paris", StockState::Damaged), 1);
    let unsold = Command::Return {
        location: "paris".into(),
        reference: Reference::None,
        lines: vec![LotLine { sku: "serum".into(), quantity: 2, lot: Some("P".into()) }],
    };
    assert!(matches!(world.refused(unsold), Rejection::ReturnExceedsSold { returnable: 1, .. }));
}

// ---- kits -----------------------------------------------------------------------------------

#[test]
fn a_kit_moves_its_components_and_is_as_available_as_the_scarcest() {
    let mut world = World::new();
    world.receive("wh", "serum", "S", 200, 10);
    world.receive("wh", "cream", "C", 200, 7);
    assert_eq!(world.available("duo", "web"), 3);
    let kit = world.reserve("k1", "web", &[("duo", 2), ("cream", 1)]).unwrap();
    assert_eq!(kit.lines[0].components.len(), 2);
    assert_eq!(world.stock("serum", "wh", StockState::Reserved), 2);
    assert_eq!(world.stock("cream", "wh", StockState::Reserved), 5);
    assert_eq!(world.available("duo", "web"), 1);
    assert!(matches!(world.reserve("k2", "web", &[("duo", 2)]), Err(Rejection::InsufficientStock { .. })));
    let partial = Command::Confirm { reservation: "k1".into(), lines: Some(vec![Line::new("duo", 1)]) };
    world.ok(partial);
    assert_eq!(world.stock("cream", "wh", StockState::Committed), 2);
    world.ok(confirm("k1"));
    world.ok(Command::Ship { reservation: "k1".into(), location: None });
    let back = Command::Return {
        location: "wh".into(),
        reference: Reference::Reservation("k1".into()),
        lines: vec![LotLine { sku: "duo".into(), quantity: 1, lot: None }],
    };
    world.ok(back);
    assert_eq!(world.stock("serum", "wh", StockState::Quarantine), 1);
    assert_eq!(world.stock("cream", "wh", StockState::Quarantine), 2);
    let with_lot = Command::PosSale {
        location: "wh".into(),
        receipt: "R".into(),
        lines: vec![LotLine { sku: "duo".into(), quantity: 1, lot: Some("S".into()) }],
    };
    assert!(matches!(world.refused(with_lot), Rejection::LotForKit { .. }));
}

// ---- idempotency, recall, rebuild -----------------------------------------------------------

#[test]
fn a_repeated_key_returns_the_first_outcome_and_a_reused_key_is_refused() {
    let mut world = World::new();
    world.receive("wh", "serum", "A", 200, 5);
    let request = Request::new("cart-1", "web-shop", reserve("r1", "web", &[("serum", 2)], START + MINUTE, None));
    let first = world.ledger.apply(vec![request.clone()], START).pop().unwrap().unwrap();
    let journal = world.ledger.journal().len();
    let again = world.ledger.apply(vec![request], START + 1).pop().unwrap().unwrap();
    assert!(again.replayed && !first.replayed);
    assert_eq!(Outcome { replayed: false, ..again }, first);
    assert_eq!(world.ledger.journal().len(), journal);
    let other = Request::new("cart-1", "web-shop", confirm("r1"));
    let refused = world.ledger.apply(vec![other], START + 2).pop().unwrap();
    assert!(matches!(refused, Err(Rejection::IdempotencyConflict { .. })));
    // A refused key is not remembered: the same command succeeds once stock allows it.
    let big = Request::new("cart-2", "web-shop", reserve("r2", "web", &[("serum", 4)], START + MINUTE, None));
    assert!(world.ledger.apply(vec![big.clone()], START).pop().unwrap().is_err());
    world.receive("wh", "serum", "B", 200, 1);
    assert!(world.ledger.apply(vec![big], START).pop().unwrap().is_ok());
}

#[test]
fn a_batch_applies_in_order_and_each_command_on_its_own() {
    let mut world = World::new();
    let today = day_of(START);
    let batch = vec![
        Request::new("a", "t", receive("wh", "serum", "A", today + 100, 2)),
        Request::new("b", "t", reserve("r1", "web", &[("serum", 2)], START + MINUTE, None)),
        Request::new("c", "t", reserve("r2", "web", &[("serum", 1)], START + MINUTE, None)),
        Request::new("d", "t", confirm("r1")),
    ];
    let results = world.ledger.apply(batch, START);
    let ok: Vec<bool> = results.iter().map(Result::is_ok).collect();
    assert_eq!(ok, vec![true, true, false, true]);
    let ids: Vec<u64> = results.iter().flatten().flat_map(|o| o.movements.iter().map(|m| m.id)).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
}

#[test]
fn a_recall_finds_every_movement_and_document_of_a_lot() {
    let mut world = World::new();
    world.receive("wh", "serum", "BAD", 200, 5);
    world.receive("wh", "serum", "GOOD", 300, 5);
    let order = Command::Reserve {
        reservation: "r1".into(),
        channel: Channel::Web,
        lines: vec![Line::new("serum", 2)],
        expires_at_ms: START + MINUTE,
        preferred_location: None,
        reference: Some(Reference::Order("ORD-9".into())),
        customer_id: Some("cust-1".into()),
    };
    world.ok(order);
    world.ok(confirm("r1"));
    world.ok(Command::Ship { reservation: "r1".into(), location: None });
    world.ok(pos_sale("wh", "R-5", "serum", 1));
    let recall = world.ledger.recall(&"serum".into(), &"BAD".into());
    assert_eq!(recall.with_customers, 3);
    assert_eq!(recall.references, vec![Reference::Order("ORD-9".into()), Reference::PosReceipt("R-5".into())]);
    assert_eq!(recall.reservations, vec![ReservationId::from("r1")]);
    assert_eq!(world.ledger.reservation(&"r1".into()).unwrap().customer_id.as_deref(), Some("cust-1"));
    let reasons: Vec<Reason> = recall.movements.iter().map(|m| m.reason).collect();
    assert_eq!(reasons, vec![Reason::Receipt, Reason::Reserve, Reason::Confirm, Reason::Ship, Reason::PosSale]);
    assert!(world.ledger.recall(&"serum".into(), &"GOOD".into()).references.is_empty());
    let expiring = world.ledger.expiring(START, 250);
    assert_eq!(expiring.len(), 1);
    assert_eq!((expiring[0].lot.code.as_str(), expiring[0].quantity), ("BAD", 2));
}

#[test]
fn the_journal_rebuilds_the_balances_and_restores_the_ledger() {
    let mut world = World::new();
    world.receive("wh", "serum", "A", 200, 10);
    world.receive("paris", "cream", "C", 200, 10);
    world.reserve("r1", "web", &[("duo", 2)]).unwrap();
    world.ok(confirm("r1"));
    world.ok(pos_sale("paris", "R-1", "cream", 1));
    world.reserve("r2", "app", &[("serum", 1)]).unwrap();
    assert_eq!(&Balances::rebuild(world.ledger.journal()), world.ledger.all_balances());

    let records = serde_json::to_string(&world.ledger.records()).unwrap();
    let journal = serde_json::to_string(world.ledger.journal()).unwrap();
    let restored =
        Ledger::restore(setup(), serde_json::from_str(&records).unwrap(), serde_json::from_str(&journal).unwrap())
            .unwrap();
    assert_eq!(restored.all_balances(), world.ledger.all_balances());
    assert_eq!(restored.reservation(&"r2".into()), world.ledger.reservation(&"r2".into()));

    // A journal that lost its last movement (r2's hold) disagrees with the records; one that lost
    // its first is out of order.
    let mut short: Vec<Movement> = serde_json::from_str(&journal).unwrap();
    short.pop();
    let broken = Ledger::restore(setup(), serde_json::from_str(&records).unwrap(), short.clone());
    assert!(matches!(broken, Err(RestoreError::Invariant(_))), "{broken:?}");
    short.remove(0);
    let broken = Ledger::restore(setup(), serde_json::from_str(&records).unwrap(), short);
    assert!(matches!(broken, Err(RestoreError::JournalOrder { position: 1, id: 2 })), "{broken:?}");
}

#[test]
fn invalid_setups_are_refused() {
    let mut twice = setup();
    twice.skus.push("serum".into());
    assert!(Ledger::new(twice).is_err());
    let mut bad_kit = setup();
    bad_kit.kits[0].components[0].sku = "nothing".into();
    assert!(Ledger::new(bad_kit).is_err());
    let mut ledger = Ledger::new(setup()).unwrap();
    let more = Setup { skus: vec!["mask".into()], ..Setup::default() };
    ledger.extend_setup(more.clone()).unwrap();
    assert!(ledger.extend_setup(more).is_err());
    assert_eq!(ledger.setup().skus.len(), 4);
}
