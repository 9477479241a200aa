//! The journal as the truth, on SQLite and (with `DERMIS_TEST_DATABASE_URL`) PostgreSQL: the
//! rebuild finds a balance row that strays from the journal and repairs it, and the writer goes
//! on after it; the journal is relayed to the bus once, in order, with per-SKU sequences.

use dermis_bus::relay::OutboxSource;
use dermis_core::clock::ManualClock;
use dermis_inventory::events::{InventoryOutbox, MovementMessage};
use dermis_inventory::rebuild::rebuild;
use dermis_inventory::*;
use dermis_store::Db;
use dermis_store::sqlx::Executor;

const ALL: &[&[dermis_store::Migration]] = &[MIGRATIONS];

dermis_store::backend_tests!(ALL;
    the_rebuild_finds_and_repairs_a_balance_that_strays_from_the_journal,
    the_journal_is_relayed_once_in_order_with_sequences,
);

const START: TimestampMs = 20_000 * MS_PER_DAY;

async fn open(db: &Db) -> Inventory {
    let inventory = Inventory::open(db.clone(), ManualClock::at(START)).await.unwrap();
    let location = Location {
        id: "wh".into(),
        kind: LocationKind::Warehouse,
        latitude: 48.0,
        longitude: 2.0,
        channels: vec![Channel::Web],
        details: Default::default(),
    };
    let setup = Setup {
        skus: vec!["serum".into(), "cream".into()],
        locations: vec![location],
        channels: vec![ChannelPolicy { channel: Channel::Web, safety_stock: 0, min_shelf_life_days: 0 }],
        ..Setup::default()
    };
    inventory.extend_setup(setup).await.unwrap();
    inventory
}

async fn ok(inventory: &Inventory, key: &str, command: Command) {
    let answer = inventory.submit(Request::new(key, "tester", command)).await;
    assert!(matches!(answer, Ok(Ok(_))), "{key}: {answer:?}");
}

fn receive(sku: &str, quantity: Quantity) -> Command {
    Command::Receive {
        location: "wh".into(),
        purchase_order: None,
        lines: vec![ReceiptLine { sku: sku.into(), quantity, lot: Lot::new("L1", START / MS_PER_DAY + 400) }],
    }
}

fn reserve(id: &str, sku: &str, quantity: Quantity) -> Command {
    Command::Reserve {
        reservation: id.into(),
        channel: Channel::Web,
        lines: vec![Line::new(sku, quantity)],
        expires_at_ms: START + 600_000,
        preferred_location: None,
        reference: None,
        customer_id: None,
    }
}

async fn the_rebuild_finds_and_repairs_a_balance_that_strays_from_the_journal(db: Db) {
    let inventory = open(&db).await;
    ok(&inventory, "r1", receive("serum", 10)).await;
    ok(&inventory, "h1", reserve("res-1", "serum", 3)).await;
    let clean = rebuild(&db, false).await.unwrap();
    assert!(clean.matched(), "{clean:?}");
    assert_eq!(clean.movements, 2);
    // Someone edits a balance row by hand: the rebuild names it, and without writing leaves it.
    db.writer().execute("UPDATE inventory_balances SET quantity = quantity + 5 WHERE state = 'on_hand'").await.unwrap();
    let found = rebuild(&db, false).await.unwrap();
    assert_eq!(found.mismatches.len(), 1, "{found:?}");
    let (_, stored, journal) = &found.mismatches[0];
    assert_eq!((*stored, *journal), (12, 7));
    assert!(!found.rewritten);
    assert!(!rebuild(&db, false).await.unwrap().matched(), "a check changes nothing");
    // Rebuilt from the journal, the rows match; the writer goes on adding to them.
    let repaired = rebuild(&db, true).await.unwrap();
    assert!(repaired.rewritten && repaired.mismatches.len() == 1);
    assert!(rebuild(&db, false).await.unwrap().matched());
    ok(&inventory, "h2", reserve("res-2", "serum", 7)).await;
    let after = rebuild(&db, false).await.unwrap();
    assert!(after.matched(), "{after:?}");
    assert_eq!(
        store::balances(&db).await.unwrap(),
        inventory.read(|l| {
            let mut b: Vec<_> = l.all_balances().iter().filter(|(_, q)| *q != 0).map(|(k, q)| (k.clone(), q)).collect();
            b.sort();
            b
        })
    );
}

async fn the_journal_is_relayed_once_in_order_with_sequences(db: Db) {
    let inventory = open(&db).await;
    let outbox = InventoryOutbox::new(db.clone(), None);
    assert!(outbox.pending(100).await.unwrap().is_empty());
    ok(&inventory, "r1", receive("serum", 10)).await;
    ok(&inventory, "r2", receive("cream", 4)).await;
    ok(&inventory, "h1", reserve("res-1", "serum", 3)).await;
    let pending = outbox.pending(100).await.unwrap();
    let messages: Vec<MovementMessage> = pending.iter().map(|o| serde_json::from_str(&o.payload).unwrap()).collect();
    assert_eq!(messages.iter().map(|m| m.movement).collect::<Vec<_>>(), [1, 2, 3]);
    let serum: Vec<u64> = messages.iter().filter(|m| m.sku.as_str() == "serum").map(|m| m.sequence).collect();
    assert_eq!(serum, [1, 2], "a dense sequence per SKU");
    assert!(pending.iter().all(|o| o.topic == events::TOPIC && o.key == o.key.trim()));
    // Only what was relayed, in an unbroken run, is marked.
    outbox.relayed(vec!["inv-1".into(), "inv-3".into()]).await.unwrap();
    let left: Vec<String> = outbox.pending(100).await.unwrap().into_iter().map(|o| o.id).collect();
    assert_eq!(left, ["inv-2", "inv-3"]);
    outbox.relayed(left).await.unwrap();
    assert!(outbox.pending(100).await.unwrap().is_empty());
}
