//! The inventory service over its store, on SQLite and (with `DERMIS_TEST_DATABASE_URL`)
//! PostgreSQL: what it answers is durable, a restart restores the same ledger, it never oversells
//! under concurrency, a failed transaction answers nothing and changes nothing, and a repeated key
//! is a replay. Throughput is measured by `examples/reserve_bench.rs` (`scripts/bench-inventory.sh`).

use std::sync::Arc;

use dermis_core::clock::ManualClock;
use dermis_inventory::store;
use dermis_inventory::*;
use dermis_store::sqlx::{self, Executor, Row};
use dermis_store::{Backend, Db};

const ALL: &[&[dermis_store::Migration]] = &[MIGRATIONS];

dermis_store::backend_tests!(ALL;
    a_restart_restores_balances_journal_records_and_availability,
    one_hundred_units_never_sell_twice_under_a_thousand_concurrent_carts,
    a_failed_transaction_answers_nothing_and_changes_nothing,
    a_second_writer_cannot_drive_a_balance_negative,
    one_overdrawn_balance_among_several_fails_the_whole_batch,
    a_stale_writer_is_refused_and_catches_up,
    a_repeated_key_replays_its_first_outcome_and_stores_it_once,
    rows_in_the_older_whole_document_format_still_load,
    an_applied_outcome_pointing_at_another_commands_movements_is_corrupt,
    a_new_deadline_fences_a_writer_that_has_not_seen_it,
    a_writer_catches_up_with_a_new_setup_and_reloads_only_when_rows_cannot_be_replayed,
    writers_that_have_seen_each_other_take_turns,
    a_node_forwards_its_writes_to_the_lease_holder_and_reads_them_at_once,
    the_lease_changes_hands_only_when_it_expires_or_is_given_up,
    an_unanswered_forward_is_unconfirmed_not_written_twice,
);

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
        skus: vec!["serum".into(), "cream".into()],
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
        ],
        channels: vec![
            ChannelPolicy { channel: Channel::Web, safety_stock: 0, min_shelf_life_days: 30 },
            ChannelPolicy { channel: Channel::App, safety_stock: 0, min_shelf_life_days: 0 },
            ChannelPolicy { channel: "marketplace:zalando".parse().unwrap(), safety_stock: 0, min_shelf_life_days: 0 },
        ],
    }
}

/// A service on `db` with the test setup, its clock at [`START`].
async fn open_new(db: &Db) -> (Inventory, Arc<ManualClock>) {
    let clock = ManualClock::at(START);
    let inventory = Inventory::open(db.clone(), clock.clone()).await.unwrap();
    inventory.extend_setup(setup()).await.unwrap();
    (inventory, clock)
}

fn request(key: &str, command: Command) -> Request {
    Request::new(key, "tester", command)
}

async fn ok(inventory: &Inventory, key: &str, command: Command) -> Outcome {
    match inventory.submit(request(key, command.clone())).await {
        Ok(Ok(outcome)) => outcome,
        other => panic!("{command:?} under {key} answered {other:?}"),
    }
}

fn receive(at: &str, sku: &str, lot: &str, quantity: Quantity) -> Command {
    Command::Receive {
        location: at.into(),
        purchase_order: None,
        lines: vec![ReceiptLine { sku: sku.into(), quantity, lot: Lot::new(lot, day_of(START) + 365) }],
    }
}

fn reserve(id: &str, channel: &str, lines: &[(&str, Quantity)], expires_at_ms: TimestampMs) -> Command {
    Command::Reserve {
        reservation: id.into(),
        channel: channel.parse().unwrap(),
        lines: lines.iter().map(|(sku, q)| Line::new(*sku, *q)).collect(),
        expires_at_ms,
        preferred_location: None,
        reference: None,
        customer_id: None,
    }
}

fn available(inventory: &Inventory, sku: &str, channel: &str) -> Quantity {
    inventory.available(&sku.into(), &channel.parse().unwrap()).unwrap().available
}

/// Everything a restart must bring back.
#[derive(Debug, PartialEq)]
struct State {
    journal: Vec<Movement>,
    records: Records,
    balances: Vec<(BalanceKey, Quantity)>,
    setup: Setup,
}

fn state(inventory: &Inventory) -> State {
    inventory.read(|ledger| State {
        journal: ledger.journal().to_vec(),
        records: ledger.records(),
        balances: ledger.all_balances().iter().map(|(k, q)| (k.clone(), q)).collect(),
        setup: ledger.setup().clone(),
    })
}

/// The database holds exactly what the service's ledger holds, and restores to a ledger whose
/// invariants hold.
async fn assert_store_matches(db: &Db, inventory: &Inventory) {
    let expected = state(inventory);
    let stored = store::load(db).await.unwrap();
    assert_eq!(stored.journal, expected.journal, "journal");
    assert_eq!(stored.records, expected.records, "records");
    assert_eq!(stored.setup, expected.setup, "setup");
    assert_eq!(store::balances(db).await.unwrap(), expected.balances, "balance rows");
    let restored = stored.restore().unwrap();
    restored.check().unwrap();
}

async fn count(db: &Db, sql: &str) -> i64 {
    sqlx::query(sql).fetch_one(db.reader()).await.unwrap().get::<i64, _>(0)
}

async fn a_restart_restores_balances_journal_records_and_availability(db: Db) {
    let (inventory, clock) = open_new(&db).await;
    ok(&inventory, "rcv-1", receive("wh", "serum", "S1", 40)).await;
    ok(&inventory, "rcv-2", receive("paris", "cream", "C1", 30)).await;
    ok(
        &inventory,
        "po-1",
        Command::ExpectPurchase {
            purchase_order: "PO1".into(),
            location: "wh".into(),
            eta_ms: START + 7 * DAY,
            lines: vec![Line::new("serum", 20)],
        },
    )
    .await;
    ok(
        &inventory,
        "tr-1",
        Command::TransferOut {
            transfer: "T1".into(),
            sku: "cream".into(),
            quantity: 5,
            from: "paris".into(),
            to: "wh".into(),
            lot: None,
        },
    )
    .await;
    let expires = START + 15 * MINUTE;
    ok(&inventory, "res-1", reserve("r1", "web", &[("serum", 3)], expires)).await;
    ok(&inventory, "res-2", reserve("r2", "app", &[("serum", 2)], expires)).await;
    ok(&inventory, "res-3", reserve("r3", "web", &[("duo", 2)], expires)).await;
    ok(&inventory, "res-4", reserve("r4", "marketplace:zalando", &[("serum", 4)], expires)).await;
    ok(&inventory, "cnf-1", Command::Confirm { reservation: "r1".into(), lines: None }).await;
    ok(&inventory, "shp-1", Command::Ship { reservation: "r1".into(), location: None }).await;
    clock.advance(16 * MINUTE);
    let expired = ok(&inventory, "sweep-1", Command::ExpireDue).await;
    assert_eq!(expired.effect, Effect::Expired { reservations: vec!["r2".into(), "r3".into(), "r4".into()] });
    ok(&inventory, "res-5", reserve("r5", "web", &[("serum", 6)], clock.advance(0) + 15 * MINUTE)).await;
    ok(&inventory, "tin-1", Command::TransferIn { transfer: "T1".into() }).await;
    assert_store_matches(&db, &inventory).await;

    let before = state(&inventory);
    let figures = |inventory: &Inventory| {
        ["serum", "cream", "duo"].map(|sku| {
            ["web", "app", "marketplace:zalando"]
                .map(|channel| inventory.available(&sku.into(), &channel.parse().unwrap()))
        })
    };
    let availability = figures(&inventory);
    assert_eq!(available(&inventory, "serum", "web"), 40 - 3 - 6);
    drop(inventory);

    let reopened = Inventory::open(db.clone(), clock.clone()).await.unwrap();
    assert_eq!(state(&reopened), before);
    assert_eq!(figures(&reopened), availability);
    assert_eq!(reopened.read(|l| l.reservation(&"r4".into()).map(|r| r.status)), Some(ReservationStatus::Expired));
    // The restored ledger goes on where the first left off: a new command, and a replay of an old key.
    let out = ok(&reopened, "res-6", reserve("r6", "app", &[("serum", 1)], clock.advance(0) + MINUTE)).await;
    assert_eq!(out.movements[0].id, before.journal.len() as u64 + 1);
    assert!(ok(&reopened, "res-5", reserve("r5", "web", &[("serum", 6)], START + 31 * MINUTE)).await.replayed);
    assert_store_matches(&db, &reopened).await;
}

async fn one_hundred_units_never_sell_twice_under_a_thousand_concurrent_carts(db: Db) {
    let (inventory, _clock) = open_new(&db).await;
    ok(&inventory, "rcv", receive("wh", "serum", "S1", 100)).await;
    let channels = ["web", "app", "marketplace:zalando"];
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let inventory = inventory.clone();
        let command = reserve(&format!("r{i}"), channels[i % 3], &[("serum", 1)], START + 15 * MINUTE);
        tasks.push(tokio::spawn(async move { inventory.submit(request(&format!("k{i}"), command)).await }));
    }
    let (mut reserved, mut short) = (0, 0);
    for task in tasks {
        match task.await.unwrap().unwrap() {
            Ok(Outcome { effect: Effect::Reserved(_), .. }) => reserved += 1,
            Err(Rejection::InsufficientStock { shortages }) => {
                assert_eq!(shortages, [Shortage { sku: "serum".into(), requested: 1, available: 0 }]);
                short += 1;
            }
            other => panic!("a reservation answered {other:?}"),
        }
    }
    assert_eq!((reserved, short), (100, 900));
    for channel in channels {
        assert_eq!(available(&inventory, "serum", channel), 0);
    }
    assert_store_matches(&db, &inventory).await;
    // In the database itself: 100 reserved, none on hand, and every unit accounted for.
    let per_state = |state: &str| {
        format!(
            "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM inventory_balances \
         WHERE sku = 'serum' AND state = '{state}'"
        )
    };
    assert_eq!(count(&db, &per_state("reserved")).await, 100);
    assert_eq!(count(&db, &per_state("on_hand")).await, 0);
    assert_eq!(
        count(&db, "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM inventory_balances WHERE sku = 'serum'")
            .await,
        0
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM inventory_reservations").await, 100);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM inventory_movements WHERE reason = 'reserve'").await, 100);
    assert_eq!(count(&db, "SELECT MIN(quantity) FROM inventory_balances WHERE location IS NOT NULL").await, 0);
}

/// Makes every insert of the reservation `doomed` fail inside the database.
async fn doom_reservation(db: &Db) {
    match db.backend() {
        Backend::Sqlite => {
            db.writer()
                .execute(
                    "CREATE TRIGGER inventory_test_doom BEFORE INSERT ON inventory_reservations \
                     WHEN NEW.id = 'doomed' BEGIN SELECT RAISE(ABORT, 'doomed by the test'); END",
                )
                .await
                .unwrap();
        }
        Backend::Postgres => {
            db.writer()
                .execute(
                    "CREATE FUNCTION inventory_test_doom() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN IF NEW.id = 'doomed' THEN RAISE EXCEPTION 'doomed by the test'; END IF; RETURN NEW; END $$",
                )
                .await
                .unwrap();
            db.writer()
                .execute(
                    "CREATE TRIGGER inventory_test_doom BEFORE INSERT ON inventory_reservations \
                     FOR EACH ROW EXECUTE FUNCTION inventory_test_doom()",
                )
                .await
                .unwrap();
        }
    }
}

async fn a_failed_transaction_answers_nothing_and_changes_nothing(db: Db) {
    let (inventory, _clock) = open_new(&db).await;
    ok(&inventory, "rcv", receive("wh", "serum", "S1", 10)).await;
    doom_reservation(&db).await;
    let before = state(&inventory);
    let expires = START + 15 * MINUTE;
    let batch = vec![
        request("k-a", reserve("a", "web", &[("serum", 2)], expires)),
        request("k-doomed", reserve("doomed", "app", &[("serum", 1)], expires)),
        request("k-b", reserve("b", "web", &[("serum", 3)], expires)),
    ];
    // One transaction for the three: the database refuses the second, so none is applied.
    match inventory.submit_all(batch.clone()).await {
        Err(InventoryError::NotPersisted { reason }) => assert!(reason.contains("doomed"), "{reason}"),
        other => panic!("a failed batch answered {other:?}"),
    }
    assert_eq!(state(&inventory), before, "the ledger kept a batch that was not committed");
    assert_eq!(available(&inventory, "serum", "web"), 10);
    assert_store_matches(&db, &inventory).await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM inventory_reservations").await, 0);

    // A request on its own still goes through while the fault stays.
    ok(&inventory, "k-c", reserve("c", "web", &[("serum", 1)], expires)).await;
    assert_eq!(available(&inventory, "serum", "web"), 9);

    // Once the fault is gone, the same keys apply afresh: they were never applied before.
    let drop_trigger = match db.backend() {
        Backend::Sqlite => "DROP TRIGGER inventory_test_doom",
        Backend::Postgres => "DROP TRIGGER inventory_test_doom ON inventory_reservations",
    };
    db.writer().execute(drop_trigger).await.unwrap();
    let answers = inventory.submit_all(batch).await.unwrap();
    assert!(answers.iter().all(|a| matches!(a, Ok(outcome) if !outcome.replayed)), "{answers:?}");
    assert_eq!(available(&inventory, "serum", "web"), 10 - 1 - 2 - 1 - 3);
    assert_store_matches(&db, &inventory).await;
}

async fn a_second_writer_cannot_drive_a_balance_negative(db: Db) {
    let (inventory, _clock) = open_new(&db).await;
    ok(&inventory, "rcv", receive("wh", "serum", "S1", 10)).await;
    // The database refuses a negative internal balance outright...
    let negative = db.writer().execute("UPDATE inventory_balances SET quantity = -1 WHERE state = 'on_hand'").await;
    assert!(negative.is_err(), "a negative on-hand balance was stored");
    // ...and another writer that took the units behind this one's back makes its batch fail, not
    // the balance go below zero.
    db.writer().execute("UPDATE inventory_balances SET quantity = 0 WHERE state = 'on_hand'").await.unwrap();
    let journal = count(&db, "SELECT COUNT(*) FROM inventory_movements").await;
    match inventory.submit(request("k1", reserve("r1", "web", &[("serum", 5)], START + MINUTE))).await {
        Err(InventoryError::NotPersisted { reason }) => assert!(reason.contains("cannot take -5"), "{reason}"),
        other => panic!("an overdrawing batch answered {other:?}"),
    }
    assert_eq!(count(&db, "SELECT MIN(quantity) FROM inventory_balances WHERE location IS NOT NULL").await, 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM inventory_movements").await, journal);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM inventory_reservations").await, 0);
}

/// The balances a batch decreases are guarded together in one statement: one balance taken
/// behind the writer's back fails the whole batch, names that balance, and stores nothing.
async fn one_overdrawn_balance_among_several_fails_the_whole_batch(db: Db) {
    let (inventory, _clock) = open_new(&db).await;
    ok(&inventory, "rcv-s", receive("wh", "serum", "S1", 10)).await;
    ok(&inventory, "rcv-c", receive("wh", "cream", "C1", 10)).await;
    db.writer()
        .execute("UPDATE inventory_balances SET quantity = 0 WHERE state = 'on_hand' AND sku = 'cream'")
        .await
        .unwrap();
    let journal = count(&db, "SELECT COUNT(*) FROM inventory_movements").await;
    let batch = vec![
        request("k1", reserve("r1", "web", &[("serum", 3)], START + MINUTE)),
        request("k2", reserve("r2", "web", &[("cream", 2)], START + MINUTE)),
    ];
    match inventory.submit_all(batch).await {
        Err(InventoryError::NotPersisted { reason }) => {
            assert!(reason.contains("cream") && reason.contains("cannot take -2"), "{reason}")
        }
        other => panic!("an overdrawing batch answered {other:?}"),
    }
    let serum = "SELECT quantity FROM inventory_balances WHERE state = 'on_hand' AND sku = 'serum'";
    assert_eq!(count(&db, serum).await, 10, "the serum's decrease was rolled back");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM inventory_movements").await, journal);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM inventory_reservations").await, 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM inventory_applied WHERE idempotency_key IN ('k1', 'k2')").await, 0);
}

async fn a_stale_writer_is_refused_and_catches_up(db: Db) {
    let (first, clock) = open_new(&db).await;
    ok(&first, "rcv", receive("wh", "serum", "S1", 10)).await;
    let second = Inventory::open(db.clone(), clock.clone()).await.unwrap();
    ok(&first, "k1", reserve("r1", "web", &[("serum", 5)], START + 15 * MINUTE)).await;
    let journal = count(&db, "SELECT COUNT(*) FROM inventory_movements").await;
    // The second writer still believes 10 units are free: the store refuses its batch (the
    // journal's head moved), it catches up and applies the request to what the store holds.
    let greedy = request("k2", reserve("r2", "app", &[("serum", 8)], START + 15 * MINUTE));
    match second.submit(greedy).await.unwrap() {
        Err(Rejection::InsufficientStock { shortages }) => assert_eq!(shortages[0].available, 5),
        other => panic!("the stale writer answered {other:?}"),
    }
    assert_eq!(count(&db, "SELECT COUNT(*) FROM inventory_movements").await, journal, "nothing of it was stored");
    // What fits is applied.
    ok(&second, "k2b", reserve("r2", "app", &[("serum", 5)], START + 15 * MINUTE)).await;
    // A command that moves no stock is fenced too: the hold was confirmed meanwhile.
    ok(&first, "k3", Command::Confirm { reservation: "r1".into(), lines: None }).await;
    let extend = Command::Extend { reservation: "r1".into(), expires_at_ms: START + 30 * MINUTE };
    assert!(matches!(second.submit(request("k4", extend)).await, Ok(Err(_))), "it sees the confirmation");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM inventory_reservations WHERE status = 'confirmed'").await, 1);
    // The first writer is stale now: reading after a refresh shows the second one's hold.
    first.refresh().await.unwrap();
    assert_store_matches(&db, &first).await;
    assert_store_matches(&db, &second).await;
    // Both kept up by replaying the other's batches from the store, never by reloading it all.
    assert_eq!(second.sync_stats(), SyncStats { replayed_batches: 2, reloads: 0 });
    assert_eq!(first.sync_stats(), SyncStats { replayed_batches: 1, reloads: 0 });
    // And both write on from the replayed ledgers: the first releases the second's hold, the
    // second (refused, caught up) sees the units back.
    ok(&first, "k5", Command::Release { reservation: "r2".into() }).await;
    assert_eq!(available(&first, "serum", "app"), 5);
    ok(&second, "k6", reserve("r3", "app", &[("serum", 5)], START + 15 * MINUTE)).await;
    assert_eq!(available(&second, "serum", "app"), 0);
    assert_store_matches(&db, &second).await;
    assert_eq!(second.sync_stats(), SyncStats { replayed_batches: 3, reloads: 0 });
}

async fn a_repeated_key_replays_its_first_outcome_and_stores_it_once(db: Db) {
    let (inventory, clock) = open_new(&db).await;
    ok(&inventory, "rcv", receive("wh", "serum", "S1", 10)).await;
    let command = reserve("r1", "web", &[("serum", 2)], START + 15 * MINUTE);
    let first = ok(&inventory, "k-res", command.clone()).await;
    assert!(!first.replayed);
    clock.advance(MINUTE);
    let again = ok(&inventory, "k-res", command.clone()).await;
    assert_eq!(again, Outcome { replayed: true, ..first.clone() });
    // Twice in one batch: the second is a replay of the first.
    let twice = inventory
        .submit_all(vec![request("k-two", reserve("r2", "app", &[("serum", 1)], START + 15 * MINUTE)); 2])
        .await
        .unwrap();
    let (one, two) = (twice[0].clone().unwrap(), twice[1].clone().unwrap());
    assert_eq!(two, Outcome { replayed: true, ..one });
    // The key with another command is refused.
    let other = reserve("r9", "web", &[("serum", 1)], START + 15 * MINUTE);
    assert_eq!(
        inventory.submit(request("k-res", other)).await.unwrap(),
        Err(Rejection::IdempotencyConflict { key: "k-res".into() })
    );
    assert_eq!(available(&inventory, "serum", "web"), 10 - 2 - 1);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM inventory_movements WHERE idempotency_key LIKE 'k-res#%'").await, 1);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM inventory_movements WHERE idempotency_key LIKE 'k-two#%'").await, 1);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM inventory_applied").await, 3);
    assert_store_matches(&db, &inventory).await;
    // After a restart the key still answers its first outcome.
    drop(inventory);
    let reopened = Inventory::open(db.clone(), clock.clone()).await.unwrap();
    assert_eq!(ok(&reopened, "k-res", command).await, Outcome { replayed: true, ..first });
    assert_eq!(count(&db, "SELECT COUNT(*) FROM inventory_movements WHERE idempotency_key LIKE 'k-res#%'").await, 1);
}

/// Rows as versions before the compact encoding wrote them (each movement, reservation and
/// applied outcome a whole JSON document) restore the same ledger, and a replay after a restart
/// answers the first outcome even when the reservation changed since.
async fn rows_in_the_older_whole_document_format_still_load(db: Db) {
    let (inventory, clock) = open_new(&db).await;
    ok(&inventory, "rcv", receive("wh", "serum", "S1", 10)).await;
    let command = reserve("r1", "web", &[("serum", 2)], START + 15 * MINUTE);
    let first = ok(&inventory, "k-res", command.clone()).await;
    ok(&inventory, "k-conf", Command::Confirm { reservation: "r1".into(), lines: None }).await;
    let compact = inventory.read(|l| l.journal().to_vec());
    // Stored compactly, the replay rebuilds the first outcome (a hold) though r1 is confirmed now.
    drop(inventory);
    let reopened = Inventory::open(db.clone(), clock.clone()).await.unwrap();
    assert_eq!(ok(&reopened, "k-res", command.clone()).await, Outcome { replayed: true, ..first.clone() });
    assert_store_matches(&db, &reopened).await;
    let before = state(&reopened);
    drop(reopened);

    let records = before.records.clone();
    for movement in &compact {
        sqlx::query("UPDATE inventory_movements SET body = $1 WHERE id = $2")
            .bind(serde_json::to_string(movement).unwrap())
            .bind(movement.id as i64)
            .execute(db.writer())
            .await
            .unwrap();
    }
    for reservation in &records.reservations {
        sqlx::query("UPDATE inventory_reservations SET body = $1 WHERE id = $2")
            .bind(serde_json::to_string(reservation).unwrap())
            .bind(reservation.id.to_string())
            .execute(db.writer())
            .await
            .unwrap();
    }
    for (key, applied) in &records.applied {
        sqlx::query("UPDATE inventory_applied SET outcome = $1 WHERE idempotency_key = $2")
            .bind(serde_json::to_string(&applied.outcome).unwrap())
            .bind(key.to_string())
            .execute(db.writer())
            .await
            .unwrap();
    }
    let old = Inventory::open(db.clone(), clock.clone()).await.unwrap();
    assert_eq!(state(&old), before);
    assert_eq!(ok(&old, "k-res", command).await, Outcome { replayed: true, ..first });
    assert_store_matches(&db, &old).await;
}

/// A compact applied outcome names its movements by journal position; a position that names
/// another command's movements is refused at load, never replayed as this key's answer.
async fn an_applied_outcome_pointing_at_another_commands_movements_is_corrupt(db: Db) {
    let (inventory, _clock) = open_new(&db).await;
    ok(&inventory, "rcv", receive("wh", "serum", "S1", 10)).await;
    ok(&inventory, "k-res", reserve("r1", "web", &[("serum", 2)], START + 15 * MINUTE)).await;
    drop(inventory);
    let row = sqlx::query("SELECT outcome FROM inventory_applied WHERE idempotency_key = 'k-res'")
        .fetch_one(db.writer())
        .await
        .unwrap();
    let mut outcome: serde_json::Value = serde_json::from_str(&row.get::<String, _>(0)).unwrap();
    let first = outcome["first_movement"].as_u64().expect("stored compactly");
    assert!(first > 1, "the receipt's movements come first: {outcome}");
    outcome["first_movement"] = 1.into();
    sqlx::query("UPDATE inventory_applied SET outcome = $1 WHERE idempotency_key = 'k-res'")
        .bind(outcome.to_string())
        .execute(db.writer())
        .await
        .unwrap();
    let err = Inventory::open(db.clone(), ManualClock::at(START)).await.unwrap_err();
    assert!(err.to_string().contains("corrupt inventory applied outcome of k-res"), "{err}");
}

/// A batch that moves no stock (a hold's new deadline) fences a second writer as one that moves
/// stock does: the second writer, which still sees the old deadline, must not expire the hold.
async fn a_new_deadline_fences_a_writer_that_has_not_seen_it(db: Db) {
    let (first, clock) = open_new(&db).await;
    ok(&first, "rcv", receive("wh", "serum", "S1", 10)).await;
    ok(&first, "k1", reserve("r1", "web", &[("serum", 5)], START + 15 * MINUTE)).await;
    let second = Inventory::open(db.clone(), clock.clone()).await.unwrap();
    let extend = Command::Extend { reservation: "r1".into(), expires_at_ms: START + 60 * MINUTE };
    ok(&first, "k2", extend).await;
    clock.advance(20 * MINUTE);
    // The second writer's sweep is refused by the store; it reloads and finds nothing due.
    ok(&second, "sweep", Command::ExpireDue).await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM inventory_reservations WHERE status = 'held'").await, 1);
    assert_store_matches(&db, &second).await;
    first.refresh().await.unwrap();
    assert_store_matches(&db, &first).await;
}

/// Catching up takes another process's new setup (a new SKU) and its batches, without a reload;
/// it stops where replaying would be unsafe: a command's row without a batch number (stored by a
/// version before them). There the whole ledger is reloaded; numbered batches replay again after.
async fn a_writer_catches_up_with_a_new_setup_and_reloads_only_when_rows_cannot_be_replayed(db: Db) {
    let (first, clock) = open_new(&db).await;
    ok(&first, "rcv", receive("wh", "serum", "S1", 10)).await;
    let second = Inventory::open(db.clone(), clock.clone()).await.unwrap();
    first.extend_setup(Setup { skus: vec!["toner".into()], ..Default::default() }).await.unwrap();
    ok(&first, "rcv-t", receive("wh", "toner", "T1", 4)).await;
    second.refresh().await.unwrap();
    assert_eq!(second.sync_stats(), SyncStats { replayed_batches: 1, reloads: 0 });
    assert_eq!(available(&second, "toner", "app"), 4, "the new SKU and its stock, replayed");
    assert_store_matches(&db, &second).await;
    // Its next setup change starts from the one it caught up with.
    second
        .extend_setup(Setup { skus: vec!["mask".into()], ..Default::default() })
        .await
        .expect("the second extends the setup it caught up with");
    first.refresh().await.unwrap();
    assert_eq!(first.sync_stats(), SyncStats { replayed_batches: 0, reloads: 0 });
    assert!(first.read(|l| l.knows_sku(&"mask".into())), "the first took the second's SKU");

    ok(&first, "k1", reserve("r1", "app", &[("toner", 1)], START + 15 * MINUTE)).await;
    db.writer().execute("UPDATE inventory_applied SET batch = NULL WHERE idempotency_key = 'k1'").await.unwrap();
    second.refresh().await.unwrap();
    assert_eq!(second.sync_stats(), SyncStats { replayed_batches: 1, reloads: 1 });
    assert_eq!(available(&second, "toner", "app"), 3);

    ok(&first, "k2", reserve("r2", "app", &[("toner", 1)], START + 15 * MINUTE)).await;
    ok(&first, "k3", Command::Confirm { reservation: "r2".into(), lines: None }).await;
    second.refresh().await.unwrap();
    assert_eq!(second.sync_stats(), SyncStats { replayed_batches: 3, reloads: 1 });
    assert_eq!(available(&second, "toner", "app"), 2);
    assert_store_matches(&db, &second).await;
    ok(&second, "k4", reserve("r3", "app", &[("toner", 2)], START + 15 * MINUTE)).await;
    assert_eq!(available(&second, "toner", "app"), 0);
    assert_store_matches(&db, &second).await;
    assert_eq!(second.sync_stats().reloads, 1, "its own batch needed no catching up");
}

/// PostgreSQL: a writer that has not seen another yet is refused while another holds the writers'
/// turn (the head's update tries the turn's lock), learns of it, and from then on waits for the
/// turn instead of racing: its batch is written once the holder lets go, not refused.
async fn writers_that_have_seen_each_other_take_turns(db: Db) {
    if db.backend() != Backend::Postgres {
        // The turn is a PostgreSQL advisory lock; SQLite serializes writers by its own lock.
        return;
    }
    let (inventory, _clock) = open_new(&db).await;
    ok(&inventory, "rcv", receive("wh", "serum", "S1", 10)).await;
    assert_eq!(inventory.sync_stats(), SyncStats::default());
    let mut holder = db.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(store::WRITERS_TURN).execute(&mut *holder).await.unwrap();
    let submit = {
        let inventory = inventory.clone();
        tokio::spawn(async move {
            inventory.submit(request("k1", reserve("r1", "web", &[("serum", 2)], START + MINUTE))).await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!submit.is_finished(), "the batch waits for the turn (it was refused once, and learned)");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM inventory_reservations").await, 0);
    holder.commit().await.unwrap();
    let answer =
        tokio::time::timeout(std::time::Duration::from_secs(10), submit).await.expect("written once the turn is free");
    assert!(matches!(answer.unwrap(), Ok(Ok(_))), "the hold was made");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM inventory_reservations").await, 1);
    assert_eq!(available(&inventory, "serum", "web"), 8);
    // A failed batch gives the turn back at once: the next one is not refused for it.
    db.writer().execute("UPDATE inventory_balances SET quantity = 0 WHERE state = 'on_hand'").await.unwrap();
    let overdrawn = inventory.submit(request("k2", reserve("r2", "web", &[("serum", 3)], START + MINUTE))).await;
    assert!(matches!(overdrawn, Err(InventoryError::NotPersisted { .. })), "{overdrawn:?}");
    let mut other = db.begin().await.unwrap();
    let free: bool = sqlx::query("SELECT pg_try_advisory_xact_lock($1)")
        .bind(store::WRITERS_TURN)
        .fetch_one(&mut *other)
        .await
        .unwrap()
        .get(0);
    assert!(free, "the failed batch's transaction still holds the turn");
    other.rollback().await.unwrap();
    assert_eq!(count(&db, "SELECT COUNT(*) FROM inventory_reservations").await, 1);
}

const CLUSTER_SECRET: &str = "a-cluster-secret-for-tests";

/// Serves `inventory`'s forwarded-writes route on a free port: its base URL and the server task.
async fn serve_forwarded(inventory: &Inventory, clock: Arc<ManualClock>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = routes::internal::router(inventory.clone(), clock);
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (url, server)
}

fn forwarding(db: &Db, clock: &Arc<ManualClock>, node: &str, url: &str) -> Arc<forward::Forwarding> {
    let ttl = std::time::Duration::from_secs(10);
    Arc::new(forward::Forwarding::new(db.clone(), clock.clone(), node, url, CLUSTER_SECRET, ttl))
}

async fn a_node_forwards_its_writes_to_the_lease_holder_and_reads_them_at_once(db: Db) {
    let (a, clock) = open_new(&db).await;
    let b = Inventory::open(db.clone(), clock.clone()).await.unwrap();
    let (url_a, server_a) = serve_forwarded(&a, clock.clone()).await;
    let (fa, fb) = (forwarding(&db, &clock, "node-a", &url_a), forwarding(&db, &clock, "node-b", "http://127.0.0.1:9"));
    assert!(a.forward_through(fa.clone()) && b.forward_through(fb.clone()));
    assert_eq!(fa.renew().await.unwrap().node_id, "node-a");
    assert_eq!(fb.renew().await.unwrap().node_id, "node-a", "the lease is held");
    assert_eq!((fa.leader(), fb.leader()), (None, Some(url_a.clone())));

    // Written through B, applied by A's writer, read on B at once.
    ok(&b, "rcv", receive("wh", "serum", "S1", 50)).await;
    ok(&b, "k1", reserve("r1", "web", &[("serum", 3)], START + 15 * MINUTE)).await;
    assert_eq!(available(&b, "serum", "web"), 47, "B reads its own write");
    assert_eq!(available(&a, "serum", "web"), 47, "A applied it");
    // A write that moves no stock (a new deadline) is read at once too.
    ok(&b, "k1x", Command::Extend { reservation: "r1".into(), expires_at_ms: START + 20 * MINUTE }).await;
    let deadline = |node: &Inventory| node.read(|l| l.reservation(&"r1".into()).map(|r| r.expires_at_ms));
    assert_eq!(deadline(&b), Some(START + 20 * MINUTE));
    // A location B adds is known to A when B's receipt there arrives.
    let lyon = location("lyon", LocationKind::Store, 45.76, 4.84, &["web", "pos"]);
    b.extend_setup(Setup { locations: vec![lyon], ..Setup::default() }).await.unwrap();
    ok(&b, "rcv-lyon", receive("lyon", "cream", "C1", 4)).await;
    assert_eq!(available(&a, "cream", "web"), 4);
    // A retried request is one command, wherever it is retried.
    let again = b.submit(request("k1", reserve("r1", "web", &[("serum", 3)], START + 15 * MINUTE))).await;
    assert!(matches!(again, Ok(Ok(ref outcome)) if outcome.replayed), "{again:?}");
    let again = a.submit(request("k1", reserve("r1", "web", &[("serum", 3)], START + 15 * MINUTE))).await;
    assert!(matches!(again, Ok(Ok(ref outcome)) if outcome.replayed), "{again:?}");

    // 400 one-unit holds spread over both nodes on the 47 left: exactly 47 are held.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..400 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move {
            let hold =
                request(&format!("rush-{i}"), reserve(&format!("h{i}"), "web", &[("serum", 1)], START + 15 * MINUTE));
            node.submit(hold).await.unwrap().is_ok()
        });
    }
    let mut held = 0;
    while let Some(done) = tasks.join_next().await {
        held += usize::from(done.unwrap());
    }
    assert_eq!(held, 47, "no unit held twice, none refused while free");
    assert_eq!(available(&b, "serum", "web"), 0);
    // A alone wrote: it never caught up with another writer, and B never fell back.
    assert_eq!(a.sync_stats().replayed_batches, 0);
    assert_eq!(a.sync_stats().reloads, 0);
    let stats = b.forwarding_stats();
    assert_eq!(stats.fallbacks, 0);
    assert!(stats.forwarded >= 4, "{stats:?}");
    assert_store_matches(&db, &a).await;
    assert_store_matches(&db, &b).await;

    // Only a node with the secret can write through A.
    let client = reqwest::Client::new();
    let evil = forward::ForwardedRequests {
        requests: vec![request("evil", receive("wh", "serum", "S9", 1_000))],
        setup_version: 0,
    };
    let body = serde_json::to_vec(&evil).unwrap();
    let now_s = START / 1000;
    for signature in [
        None,
        Some(forward::sign("not-the-secret", now_s, &body)),
        Some(forward::sign(CLUSTER_SECRET, now_s - 3_600, &body)),
    ] {
        let mut post = client.post(format!("{url_a}{}", forward::PATH)).body(body.clone());
        if let Some(signature) = signature {
            post = post.header(forward::SIGNATURE_HEADER, signature);
        }
        let res = post.send().await.unwrap();
        assert_eq!(res.status().as_u16(), 401);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
    assert_eq!(available(&a, "serum", "web"), 0, "nothing was received");

    // A is gone (it still holds the lease): C writes itself at once (the head keeps the writers
    // correct), and does not try A again for every write.
    server_a.abort();
    let _ = server_a.await;
    let c = Inventory::open(db.clone(), clock.clone()).await.unwrap();
    let fc = forwarding(&db, &clock, "node-c", "http://127.0.0.1:9");
    c.forward_through(fc.clone());
    assert_eq!(fc.renew().await.unwrap().node_id, "node-a");
    ok(&c, "rcv2", receive("wh", "serum", "S2", 5)).await;
    ok(&c, "rcv3", receive("wh", "serum", "S3", 5)).await;
    assert_eq!(c.forwarding_stats().fallbacks, 1, "one try, then A is left alone for a while");
    assert_eq!(fc.leader(), None);
    assert_eq!(available(&c, "serum", "web"), 10);
    a.refresh().await.unwrap();
    assert_eq!(available(&a, "serum", "web"), 10);
    assert_store_matches(&db, &a).await;
    assert_store_matches(&db, &c).await;
}

/// A holder that applies requests and then fails to answer (here: its answer replaced by a 500)
/// may have applied them: the sender sends them once more (the key answers its first outcome
/// there), then neither writes them itself nor refuses them: it answers "unconfirmed". A retry
/// with the same key, written here once the holder is gone, is the same command.
async fn an_unanswered_forward_is_unconfirmed_not_written_twice(db: Db) {
    let (a, clock) = open_new(&db).await;
    ok(&a, "rcv", receive("wh", "serum", "S1", 10)).await;
    let b = Inventory::open(db.clone(), clock.clone()).await.unwrap();
    // C opens now: its ledger will not know what A applies.
    let c = Inventory::open(db.clone(), clock.clone()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let failing = routes::internal::router(a.clone(), clock.clone()).layer(axum::middleware::map_response(
        |_: axum::response::Response| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom") },
    ));
    let server = tokio::spawn(async move { axum::serve(listener, failing).await.unwrap() });
    let fa = forwarding(&db, &clock, "node-a", &url);
    let fb = forwarding(&db, &clock, "node-b", "http://127.0.0.1:9");
    assert!(a.forward_through(fa.clone()) && b.forward_through(fb.clone()));
    fa.renew().await.unwrap();
    assert_eq!(fb.renew().await.unwrap().node_id, "node-a");
    let hold = || request("k1", reserve("r1", "web", &[("serum", 2)], START + 15 * MINUTE));
    match b.submit(hold()).await {
        Err(InventoryError::Unconfirmed { reason }) => assert!(reason.contains("500"), "{reason}"),
        other => panic!("an unanswered forward answered {other:?}"),
    }
    // Sent twice, applied once, by A; B wrote nothing itself.
    assert_eq!(count(&db, "SELECT COUNT(*) FROM inventory_reservations").await, 1);
    assert_eq!(available(&a, "serum", "web"), 8);
    assert_eq!(fb.stats(), forward::ForwardStats { forwarded: 0, fallbacks: 0, unknown: 1 });
    // A is gone: the retry is written by C, whose ledger is behind (fenced by the head, it
    // catches up and finds the key), and is the same command.
    server.abort();
    let _ = server.await;
    let fc = forwarding(&db, &clock, "node-c", "http://127.0.0.1:9");
    c.forward_through(fc.clone());
    fc.renew().await.unwrap();
    match c.submit(hold()).await {
        Ok(Ok(outcome)) => assert!(outcome.replayed, "{outcome:?}"),
        other => panic!("the retry answered {other:?}"),
    }
    assert_eq!(c.forwarding_stats().fallbacks, 1);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM inventory_reservations").await, 1);
    assert_eq!(available(&c, "serum", "web"), 8);
    assert_store_matches(&db, &c).await;
}

async fn the_lease_changes_hands_only_when_it_expires_or_is_given_up(db: Db) {
    let clock = ManualClock::at(START);
    let (fa, fb) = (forwarding(&db, &clock, "node-a", "http://a:1"), forwarding(&db, &clock, "node-b", "http://b:1"));
    let first = fa.renew().await.unwrap();
    assert_eq!((first.node_id.as_str(), first.term, first.expires_at_ms), ("node-a", 1, START + 10_000));
    clock.advance(6_000);
    assert_eq!(fb.renew().await.unwrap(), first, "B cannot take a live lease");
    assert_eq!(fb.leader().as_deref(), Some("http://a:1"));
    // Renewing keeps the term and moves the deadline.
    let renewed = fa.renew().await.unwrap();
    assert_eq!((renewed.term, renewed.expires_at_ms), (1, START + 16_000));
    // Expired: B takes it.
    clock.advance(11_000);
    assert_eq!(fb.leader(), None, "B does not forward to an expired holder");
    let taken = fb.renew().await.unwrap();
    assert_eq!((taken.node_id.as_str(), taken.term), ("node-b", 2));
    assert_eq!(fa.renew().await.unwrap().node_id, "node-b");
    assert_eq!(fa.leader().as_deref(), Some("http://b:1"));
    // Given up: A takes it at once.
    fb.step_down().await;
    let back = fa.renew().await.unwrap();
    assert_eq!((back.node_id.as_str(), back.term), ("node-a", 3));
}
