//! The ledger's tables on SQLite and PostgreSQL alike (one SQL text, the portable subset): the
//! journal (`inventory_movements`), the balances it projects to (`inventory_balances`, which the
//! database itself keeps from going below zero), the records (lots, reservations, transfers,
//! purchase orders), the applied commands by idempotency key, the setup, and the journal's head
//! (`inventory_head`, which every batch moves by compare-and-set, fencing out a stale writer).
//!
//! [`persist`] writes what one batch of [`crate::Ledger::apply`] returned, inside the caller's
//! transaction; [`load`] reads everything back for [`crate::Ledger::restore`]; [`load_since`]
//! (and [`read_since`]) read the batches committed after a given one, numbered on their applied
//! rows, for a process sharing the database to replay; [`take_writers_turn`] orders writers that
//! share one PostgreSQL. Records are stored
//! as the JSON the ledger's types serialize to, with columns beside them for indexes and readers.
//! Two rows are written compactly, so a hot SKU's holds cost less each: a movement's `body` holds
//! only what its columns do not (accounts, reference, actor, channel), and an applied command's
//! `outcome` names its movements by journal position and its effect's reservation by its place
//! among the changed records instead of repeating them. Rows written whole by earlier versions
//! read the same way (no migration: the columns did not change), but an earlier version cannot
//! read the compact rows: it refuses to load them (`corrupt inventory movement`).
//! This module decides nothing: the ledger decides, the service orders the writes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use dermis_store::sqlx::any::AnyRow;
use dermis_store::sqlx::{self, AnyConnection, Row};
use dermis_store::{Backend, Db, StoreError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::command::{Changes, Command, Effect, Outcome, Request, ReservationEffect};
use crate::error::InventoryError;
use crate::ledger::{AppliedRequest, Ledger, Records, RestoreError};
use crate::model::{Account, Actor, BalanceKey, Channel, IdempotencyKey, LotCode, Movement, Quantity, Reference};
use crate::model::{ReservationId, Setup, SkuId};
use crate::records::{PurchaseOrder, Reservation, SkuLot, Transfer};

/// Most rows per multi-row statement, a power of two (10 columns at most: far below both
/// backends' parameter limits).
const ROWS_PER_STATEMENT: usize = 128;

/// Everything the store keeps, as [`Ledger::restore`] takes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stored {
    /// The setup (empty before the first one is saved).
    pub setup: Setup,
    /// Lots, reservations, transfers, purchase orders and applied commands.
    pub records: Records,
    /// The journal, in order.
    pub journal: Vec<Movement>,
    /// Batches committed so far (the journal head's counter, see [`persist`]).
    pub batches: u64,
    /// The stored setup's version (moved by every [`save_setup`]; 0 before the first).
    pub setup_version: i64,
}

impl Stored {
    /// The ledger these rows describe.
    pub fn restore(self) -> Result<Ledger, RestoreError> {
        Ledger::restore(self.setup, self.records, self.journal)
    }
}

/// Reads the setup, the records and the journal in one consistent snapshot (a read transaction;
/// `REPEATABLE READ` on PostgreSQL).
pub async fn load(db: &Db) -> Result<Stored, StoreError> {
    let mut tx = match db.backend() {
        Backend::Sqlite => db.reader().begin().await?,
        Backend::Postgres => db.reader().begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?,
    };
    let conn = &mut *tx;
    let (setup, setup_version) =
        match sqlx::query("SELECT body, version FROM inventory_setup WHERE id = 1").fetch_optional(&mut *conn).await? {
            Some(row) => (decode(&row.try_get::<String, _>(0)?, "setup")?, row.try_get(1)?),
            None => (Setup::default(), 0),
        };
    let journal = read_movements(conn, "ORDER BY id", None).await?;
    let mut lots = Vec::new();
    for row in sqlx::query("SELECT sku, body FROM inventory_lots").fetch_all(&mut *conn).await? {
        lots.push(SkuLot {
            sku: SkuId::new(row.try_get::<String, _>(0)?),
            lot: decode(&row.try_get::<String, _>(1)?, "lot")?,
        });
    }
    lots.sort_by(|a, b| (&a.sku, &a.lot.code).cmp(&(&b.sku, &b.lot.code)));
    let mut reservations: Vec<Reservation> =
        bodies(conn, "SELECT body FROM inventory_reservations", "reservation").await?;
    reservations.sort_by(|a, b| a.id.cmp(&b.id));
    let mut transfers: Vec<Transfer> = bodies(conn, "SELECT body FROM inventory_transfers", "transfer").await?;
    transfers.sort_by(|a, b| a.id.cmp(&b.id));
    let mut purchase_orders: Vec<PurchaseOrder> =
        bodies(conn, "SELECT body FROM inventory_purchase_orders", "purchase order").await?;
    purchase_orders.sort_by(|a, b| a.id.cmp(&b.id));
    let mut applied = BTreeMap::new();
    for row in
        sqlx::query("SELECT idempotency_key, command, outcome FROM inventory_applied").fetch_all(&mut *conn).await?
    {
        let key = IdempotencyKey::new(row.try_get::<String, _>(0)?);
        let command: Command = decode(&row.try_get::<String, _>(1)?, "applied command")?;
        let stored: StoredOutcome = decode(&row.try_get::<String, _>(2)?, "applied outcome")?;
        let outcome = stored.outcome(key.clone(), &journal, 0)?;
        applied.insert(key, AppliedRequest { command, outcome });
    }
    let batches = sqlx::query("SELECT batches FROM inventory_head WHERE id = 1").fetch_one(&mut *conn).await?;
    let batches = from_i64(batches.try_get(0)?)?;
    tx.commit().await?;
    let records = Records { lots, reservations, transfers, purchase_orders, applied };
    Ok(Stored { setup, records, journal, batches, setup_version })
}

/// Waits, inside the caller's transaction, for the writers' turn: an advisory lock (PostgreSQL
/// only) that writers sharing the database take once they have seen each other, so one at a time
/// catches up and commits instead of all of them racing for the journal's head and most being
/// refused. It orders them and nothing more: correctness never rests on it (the head's
/// compare-and-set and the balance guards still decide). Released at commit or rollback.
/// Waiting for the turn ends after [`TURN_TIMEOUT`] (PostgreSQL's `lock_timeout`, for this
/// transaction only) with an error, and the batch fails as not persisted: a holder that hangs
/// (a partition, a stalled node) must not stall every other writer's callers for ever.
pub async fn take_writers_turn(conn: &mut AnyConnection) -> Result<(), StoreError> {
    let sql = format!("SELECT set_config('lock_timeout', '{TURN_TIMEOUT}', true), pg_advisory_xact_lock($1)");
    sqlx::query(&sql).bind(WRITERS_TURN).execute(conn).await?;
    Ok(())
}

/// The advisory lock key of the writers' turn: a constant of Dermis's own.
pub const WRITERS_TURN: i64 = 0x1d3e_7a11_5eed_0015;

/// Longest wait for the writers' turn.
pub const TURN_TIMEOUT: &str = "5s";

/// The journal head as stored: the last movement's id and the batches committed.
pub async fn head(db: &Db) -> Result<(u64, u64), StoreError> {
    let row =
        sqlx::query("SELECT last_movement, batches FROM inventory_head WHERE id = 1").fetch_one(db.reader()).await?;
    Ok((from_i64(row.try_get(0)?)?, from_i64(row.try_get(1)?)?))
}

/// What other writers committed after a known point, as [`load_since`] reads it.
#[derive(Debug, Clone, Default)]
pub struct Since {
    /// The setup in force and its version, when it is not the version known.
    pub setup: Option<(Setup, i64)>,
    /// The batches, in order.
    pub batches: Vec<CommittedBatch>,
}

/// A batch another writer committed, as [`load_since`] reads it back: what [`Ledger::replay`]
/// takes.
#[derive(Debug, Clone)]
pub struct CommittedBatch {
    /// The time the batch was applied at.
    pub at_ms: i64,
    /// Its applied commands in order, each with its first outcome.
    pub applied: Vec<(Request, Outcome)>,
}

/// The batches committed after the first `batches` (whose movements end at `movements`), in
/// order, in one consistent snapshot: how a writer whose ledger is behind the store (another
/// process sharing the database committed since) catches up without reloading everything.
/// The setup comes with them when it is no longer the one at `setup_version`. `None` when they
/// cannot be replayed and the whole ledger must be loaded instead: a batch's commands were
/// stored by a version before they were numbered, or the rows do not add up to the head (the
/// store went back, or lost rows).
pub async fn load_since(
    db: &Db,
    movements: u64,
    batches: u64,
    setup_version: i64,
) -> Result<Option<Since>, StoreError> {
    let mut tx = match db.backend() {
        Backend::Sqlite => db.reader().begin().await?,
        Backend::Postgres => db.reader().begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?,
    };
    let read = read_since(&mut tx, movements, batches, setup_version).await?;
    tx.commit().await?;
    Ok(read)
}

/// [`load_since`] on the caller's connection, whose transaction must see one consistent state
/// (a snapshot, or the writers' turn lock held: see the service).
pub async fn read_since(
    conn: &mut AnyConnection,
    movements: u64,
    batches: u64,
    setup_version: i64,
) -> Result<Option<Since>, StoreError> {
    // The head and the setup's version in one round trip: a writer taking its turn reads this
    // before every batch.
    let head = sqlx::query(
        "SELECT last_movement, batches, COALESCE((SELECT version FROM inventory_setup WHERE id = 1), 0) \
         FROM inventory_head WHERE id = 1",
    )
    .fetch_one(&mut *conn)
    .await?;
    let (last, committed) = (from_i64(head.try_get(0)?)?, from_i64(head.try_get(1)?)?);
    let version: i64 = head.try_get(2)?;
    if committed < batches || last < movements {
        return Ok(None);
    }
    let setup = match version == setup_version {
        true => None,
        false => {
            let row =
                sqlx::query("SELECT body, version FROM inventory_setup WHERE id = 1").fetch_one(&mut *conn).await?;
            Some((decode::<Setup>(&row.try_get::<String, _>(0)?, "setup")?, row.try_get::<i64, _>(1)?))
        }
    };
    if committed == batches && last == movements {
        return Ok(Some(Since { setup, batches: Vec::new() }));
    }
    // Bounded by the head just read: on a connection without a snapshot a writer may commit
    // between these statements, and its rows are not part of what the head says.
    let sql = format!("SELECT {MOVEMENT_COLUMNS} FROM inventory_movements WHERE id > $1 AND id <= $2 ORDER BY id");
    let rows = sqlx::query(&sql).bind(as_i64(movements)?).bind(as_i64(last)?).fetch_all(&mut *conn).await?;
    let journal = rows.iter().map(movement_from_row).collect::<Result<Vec<_>, _>>()?;
    let dense = journal.iter().zip(movements + 1..).all(|(m, id)| m.id == id);
    if !dense || journal.len() as u64 != last - movements {
        return Ok(None);
    }
    let rows = sqlx::query(
        "SELECT idempotency_key, command, outcome, applied_at, batch FROM inventory_applied \
         WHERE batch > $1 AND batch <= $2 ORDER BY batch, batch_index",
    )
    .bind(as_i64(batches)?)
    .bind(as_i64(committed)?)
    .fetch_all(&mut *conn)
    .await?;
    let mut read: Vec<CommittedBatch> = Vec::new();
    let mut next_movement = movements + 1;
    for row in rows {
        let key = IdempotencyKey::new(row.try_get::<String, _>(0)?);
        let command: Command = decode(&row.try_get::<String, _>(1)?, "applied command")?;
        let stored: StoredOutcome = decode(&row.try_get::<String, _>(2)?, "applied outcome")?;
        let outcome = stored.outcome(key.clone(), &journal, movements)?;
        // The outcomes' movements must follow each other through the journal as they are
        // replayed (the replay asserts it): rows that disagree are reloaded, never replayed.
        if outcome.movements.first().is_some_and(|m| m.id != next_movement) {
            return Ok(None);
        }
        next_movement += outcome.movements.len() as u64;
        let at_ms: i64 = row.try_get(3)?;
        let batch = from_i64(row.try_get(4)?)?;
        let request = Request::new(key, "store", command);
        // Batches are numbered densely from `batches + 1`: a missing number is a batch whose
        // commands this snapshot cannot replay.
        let last_read = batches + read.len() as u64;
        match read.last_mut() {
            Some(current) if batch == last_read => current.applied.push((request, outcome)),
            _ if batch == last_read + 1 => read.push(CommittedBatch { at_ms, applied: vec![(request, outcome)] }),
            _ => return Ok(None),
        }
    }
    let replayed_movements: usize = read.iter().flat_map(|b| &b.applied).map(|(_, o)| o.movements.len()).sum();
    if read.len() as u64 != committed - batches || replayed_movements != journal.len() {
        return Ok(None);
    }
    Ok(Some(Since { setup, batches: read }))
}

/// Every non-zero balance row, in key order: what `dermis inventory rebuild` compares with the
/// projection of the journal.
pub async fn balances(db: &Db) -> Result<Vec<(BalanceKey, Quantity)>, StoreError> {
    let rows = sqlx::query("SELECT balance_key, quantity FROM inventory_balances WHERE quantity <> 0")
        .fetch_all(db.reader())
        .await?;
    let mut balances = Vec::with_capacity(rows.len());
    for row in rows {
        balances.push((decode::<BalanceKey>(&row.try_get::<String, _>(0)?, "balance key")?, row.try_get(1)?));
    }
    balances.sort();
    Ok(balances)
}

/// Stores the whole setup in force in place of `previous` (what this writer loaded or last
/// saved), inside the caller's transaction: a compare-and-set on the stored document, so a
/// writer whose setup is stale (another process extended it since) changes nothing and gets
/// `Ok(None)`; it reloads and tries again. Saved, it answers the setup's new version.
pub async fn save_setup(
    conn: &mut AnyConnection,
    previous: &Setup,
    setup: &Setup,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let body = encode(setup, "setup")?;
    let stored =
        sqlx::query("SELECT body, version FROM inventory_setup WHERE id = 1").fetch_optional(&mut *conn).await?;
    let (done, version) = match stored {
        None if *previous == Setup::default() => {
            let done = sqlx::query(
                "INSERT INTO inventory_setup (id, body, updated_at, version) VALUES (1, $1, $2, 1) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&body)
            .bind(now_ms)
            .execute(&mut *conn)
            .await?;
            (done, 1)
        }
        None => return Ok(None),
        Some(row) => {
            // Compared as setups, not as text: a document written by an older version (without
            // a field added since) is the same setup when it reads back the same. The update is
            // conditional on the exact text and version just read, so a writer in between makes
            // it miss (even one that saved the same text: the version moved).
            let text: String = row.try_get(0)?;
            let version: i64 = row.try_get(1)?;
            if decode::<Setup>(&text, "setup")? != *previous {
                return Ok(None);
            }
            let done = sqlx::query(
                "UPDATE inventory_setup SET body = $1, updated_at = $2, version = version + 1 \
                 WHERE id = 1 AND body = $3 AND version = $4",
            )
            .bind(&body)
            .bind(now_ms)
            .bind(text)
            .bind(version)
            .execute(&mut *conn)
            .await?;
            (done, version + 1)
        }
    };
    Ok((done.rows_affected() == 1).then_some(version))
}

/// Persists the commands of one batch that the ledger applied, inside the caller's transaction.
/// `head` is the id of the last movement before the batch as this writer knows it, and `batches`
/// the number of batches committed before it: the journal's head row is moved from them to the
/// batch's last movement and one more batch (a compare-and-set; the counter fences batches
/// without movements), or the batch fails with [`InventoryError::StaleLedger`]. Then it
/// appends their movements to the journal (unique on id, on idempotency key and on per-SKU
/// sequence), adds their net balance changes to the balance rows, upserts the records they
/// changed, and stores each (key, command, outcome) for idempotency. Replayed outcomes are
/// skipped: they were stored when first applied.
///
/// A balance that may not go negative is only ever decreased by a guarded
/// `UPDATE ... WHERE quantity + change >= 0` (one statement for all of a batch's decreases, one
/// multi-row upsert for its increases); if that leaves any of its rows untouched the whole batch
/// fails with [`InventoryError::Overdrawn`] naming it (and the `CHECK` constraint backs it up). So even a second writer
/// on the same database could not drive a balance below zero; it would see its batch refused.
///
/// On PostgreSQL a batch whose tables each fit one statement is written as ONE statement
/// ([`write_as_one_statement`]); otherwise, and on SQLite (where a statement costs no round
/// trip), one statement per table. On `Err` rows may already be written: the caller must roll
/// the transaction back (drop it), as the service does.
pub async fn persist(
    conn: &mut AnyConnection,
    applied: &[(&Command, &Outcome)],
    head: u64,
    batches: u64,
    now_ms: i64,
) -> Result<(), InventoryError> {
    write(conn, prepare(applied, head, batches, now_ms)?).await
}

/// A batch's rows, encoded ([`prepare`]) and ready to [`write`].
struct Prepared {
    cas: Head,
    decreases: Vec<(String, Quantity)>,
    inserts: Vec<Insert>,
}

/// The first half of [`persist`]: encodes a batch's rows, touching no connection.
fn prepare(applied: &[(&Command, &Outcome)], head: u64, batches: u64, now_ms: i64) -> Result<Prepared, InventoryError> {
    let mut movements = Vec::new();
    let mut last = head;
    let mut deltas: BTreeMap<BalanceKey, Quantity> = BTreeMap::new();
    // Records changed twice in a batch are written once, in their last state.
    let mut lots: BTreeMap<(&SkuId, &LotCode), &SkuLot> = BTreeMap::new();
    let mut reservations = BTreeMap::new();
    let mut transfers = BTreeMap::new();
    let mut purchase_orders = BTreeMap::new();
    let mut keys = Vec::new();
    let batch = as_i64(batches.checked_add(1).ok_or_else(|| StoreError::Other("batch counter overflow".into()))?)?;
    for (command, outcome) in applied.iter().filter(|(_, outcome)| !outcome.replayed) {
        for movement in &outcome.movements {
            last = last.max(movement.id);
            movements.push(vec![
                Value::Int(as_i64(movement.id)?),
                Value::Text(movement.sku.to_string()),
                Value::Int(as_i64(movement.sku_seq)?),
                Value::Text(movement.idempotency_key.clone()),
                Value::MaybeText(movement.lot.as_ref().map(LotCode::to_string)),
                Value::Text(name(&movement.reason)),
                Value::MaybeText(movement.reservation.as_ref().map(ToString::to_string)),
                Value::Int(movement.quantity),
                Value::Int(movement.at_ms),
                Value::Text(encode(&MovementBodyRef::of(movement), "movement")?),
            ]);
        }
        for (key, delta) in outcome.balance_deltas() {
            *deltas.entry(key).or_insert(0) += delta;
        }
        for lot in &outcome.changes.lots {
            lots.insert((&lot.sku, &lot.lot.code), lot);
        }
        // Each changed reservation is encoded once, for its row and for the applied outcome.
        let encoded = outcome
            .changes
            .reservations
            .iter()
            .map(|reservation| encode(reservation, "reservation"))
            .collect::<Result<Vec<_>, _>>()?;
        let applied_outcome = applied_outcome(outcome, &encoded)?;
        for (reservation, body) in outcome.changes.reservations.iter().zip(encoded) {
            reservations.insert(&reservation.id, (reservation, body));
        }
        for transfer in &outcome.changes.transfers {
            transfers.insert(&transfer.id, transfer);
        }
        for order in &outcome.changes.purchase_orders {
            purchase_orders.insert(&order.id, order);
        }
        keys.push(vec![
            Value::Text(outcome.key.to_string()),
            Value::Text(encode(command, "command")?),
            Value::Text(applied_outcome),
            Value::Int(now_ms),
            Value::Int(batch),
            Value::Int(as_i64(keys.len() as u64)?),
        ]);
    }

    let mut decreases = Vec::new();
    let mut increases = Vec::new();
    for (key, delta) in deltas.into_iter().filter(|(_, delta)| *delta != 0) {
        let stored_key = encode(&key, "balance key")?;
        if delta < 0 && !key.account.may_go_negative() {
            decreases.push((stored_key, delta));
            continue;
        }
        let (location, state) = match &key.account {
            Account::Stock { location, state } => (Some(location.to_string()), name(state)),
            Account::External { external } => (None, name(external)),
        };
        increases.push(vec![
            Value::Text(stored_key),
            Value::Text(key.sku.to_string()),
            Value::MaybeText(location),
            Value::Text(state),
            Value::MaybeText(key.lot.as_ref().map(LotCode::to_string)),
            Value::Int(delta),
        ]);
    }
    let mut inserts = vec![
        Insert {
            table: "inventory_movements",
            columns: &[
                "id",
                "sku",
                "sku_seq",
                "idempotency_key",
                "lot",
                "reason",
                "reservation_id",
                "quantity",
                "at_ms",
                "body",
            ],
            rows: movements,
            tail: "",
        },
        Insert {
            table: "inventory_balances",
            columns: &["balance_key", "sku", "location", "state", "lot", "quantity"],
            rows: increases,
            tail: " ON CONFLICT (balance_key) DO UPDATE SET quantity = inventory_balances.quantity + excluded.quantity",
        },
    ];
    let mut rows = Vec::with_capacity(lots.len());
    for lot in lots.values() {
        rows.push(vec![
            Value::Text(lot.sku.to_string()),
            Value::Text(lot.lot.code.to_string()),
            Value::Int(lot.lot.expires_on),
            Value::Text(encode(&lot.lot, "lot")?),
        ]);
    }
    inserts.push(Insert {
        table: "inventory_lots",
        columns: &["sku", "code", "expires_on", "body"],
        rows,
        tail: " ON CONFLICT (sku, code) DO UPDATE SET expires_on = excluded.expires_on, body = excluded.body",
    });
    let mut rows = Vec::with_capacity(reservations.len());
    for (reservation, body) in reservations.into_values() {
        rows.push(vec![
            Value::Text(reservation.id.to_string()),
            Value::Text(reservation.channel.to_string()),
            Value::Text(name(&reservation.status)),
            Value::Int(reservation.expires_at_ms),
            Value::Text(body),
        ]);
    }
    inserts.push(Insert {
        table: "inventory_reservations",
        columns: &["id", "channel", "status", "expires_at_ms", "body"],
        rows,
        tail: " ON CONFLICT (id) DO UPDATE SET channel = excluded.channel, status = excluded.status, \
               expires_at_ms = excluded.expires_at_ms, body = excluded.body",
    });
    let mut rows = Vec::with_capacity(transfers.len());
    for transfer in transfers.values() {
        rows.push(vec![
            Value::Text(transfer.id.to_string()),
            Value::Text(transfer.sku.to_string()),
            Value::Text(name(&transfer.status)),
            Value::Text(encode(transfer, "transfer")?),
        ]);
    }
    inserts.push(Insert {
        table: "inventory_transfers",
        columns: &["id", "sku", "status", "body"],
        rows,
        tail: " ON CONFLICT (id) DO UPDATE SET sku = excluded.sku, status = excluded.status, body = excluded.body",
    });
    let mut rows = Vec::with_capacity(purchase_orders.len());
    for order in purchase_orders.values() {
        rows.push(vec![
            Value::Text(order.id.to_string()),
            Value::Text(order.location.to_string()),
            Value::Int(order.eta_ms),
            Value::Text(encode(order, "purchase order")?),
        ]);
    }
    inserts.push(Insert {
        table: "inventory_purchase_orders",
        columns: &["id", "location", "eta_ms", "body"],
        rows,
        tail: " ON CONFLICT (id) DO UPDATE SET location = excluded.location, eta_ms = excluded.eta_ms, body = excluded.body",
    });
    // A key stored twice is a second writer (or a bug): the primary key fails the batch.
    inserts.push(Insert {
        table: "inventory_applied",
        columns: &["idempotency_key", "command", "outcome", "applied_at", "batch", "batch_index"],
        rows: keys,
        tail: "",
    });
    let cas = Head { last: as_i64(last)?, head: as_i64(head)?, batches: as_i64(batches)? };
    Ok(Prepared { cas, decreases, inserts })
}

/// The second half of [`persist`], inside the caller's transaction.
async fn write(conn: &mut AnyConnection, prepared: Prepared) -> Result<(), InventoryError> {
    let Prepared { cas, decreases, inserts } = prepared;
    let head = u64::try_from(cas.head).unwrap_or_default();
    let fits = decreases.len() <= ROWS_PER_STATEMENT && inserts.iter().all(|i| i.rows.len() <= ROWS_PER_STATEMENT);
    if Sql::new(conn).numbered && fits {
        return write_as_one_statement(conn, &cas, &decreases, inserts).await;
    }
    // On PostgreSQL a concurrent writer's UPDATE waits for this row's lock, then sees the new
    // head and matches nothing. The batch counter fences batches that write no movement (a
    // hold's new deadline) too: the head alone would not move for them.
    let mut sql = Sql::new(conn);
    cas.push(&mut sql, false);
    let moved = bind(sqlx::query(&sql.text), sql.values).execute(&mut *conn).await.map_err(StoreError::from)?;
    if moved.rows_affected() != 1 {
        return Err(InventoryError::StaleLedger { expected: head });
    }
    // The journal first, then the guarded decreases, then the rest.
    let mut inserts = inserts.into_iter();
    if let Some(movements) = inserts.next() {
        insert_rows(conn, movements.table, movements.columns, movements.rows, movements.tail).await?;
    }
    for chunk in decreases.chunks(ROWS_PER_STATEMENT) {
        decrease_balances(conn, chunk).await?;
    }
    for insert in inserts {
        insert_rows(conn, insert.table, insert.columns, insert.rows, insert.tail).await?;
    }
    Ok(())
}

/// The compare-and-set of the journal's head row a batch starts with.
struct Head {
    /// The batch's last movement.
    last: i64,
    /// The last movement before the batch, as the writer knows it.
    head: i64,
    /// Batches committed, as the writer knows it.
    batches: i64,
}

impl Head {
    /// The `UPDATE`; `returning`: with `RETURNING 1` (as a CTE of [`write_as_one_statement`]).
    fn push(&self, sql: &mut Sql, returning: bool) {
        sql.push("UPDATE inventory_head SET last_movement = ");
        sql.param(Value::Int(self.last));
        sql.push(", batches = batches + 1 WHERE id = 1 AND last_movement = ");
        sql.param(Value::Int(self.head));
        sql.push(" AND batches = ");
        sql.param(Value::Int(self.batches));
        if sql.numbered {
            // PostgreSQL: a writer that does not take turns (it has not seen another) is refused
            // while one that does holds the turn, so it learns of the others at once instead of
            // committing between their catching up and their commit for ever. Free, the turn is
            // taken for the rest of this transaction (re-entrant for a writer that holds it).
            let _ = write!(sql.text, " AND pg_try_advisory_xact_lock({WRITERS_TURN})");
        }
        if returning {
            sql.push(" RETURNING 1");
        }
    }
}

/// Rows for one table.
struct Insert {
    table: &'static str,
    columns: &'static [&'static str],
    rows: Vec<Vec<Value>>,
    /// After the rows: `ON CONFLICT ...`.
    tail: &'static str,
}

/// PostgreSQL: the whole batch as ONE statement of data-modifying CTEs, so a batch costs three
/// round trips (`BEGIN`, this, `COMMIT`) instead of one per table: the head's compare-and-set
/// first, then the guarded decreases and every insert, each conditioned on the head having
/// moved (`EXISTS (SELECT 1 FROM head)`, which also makes PostgreSQL run the head's `UPDATE`,
/// and wait for its row lock, before them). A stale writer's batch therefore writes nothing and
/// is refused as [`InventoryError::StaleLedger`]; a short decrease fails the batch as
/// [`InventoryError::Overdrawn`] and the caller's transaction is rolled back, as on the
/// statement-per-table path. The statement reports the head's count and the decreased keys.
async fn write_as_one_statement(
    conn: &mut AnyConnection,
    head: &Head,
    decreases: &[(String, Quantity)],
    inserts: Vec<Insert>,
) -> Result<(), InventoryError> {
    let mut sql = Sql::new(conn);
    sql.push("WITH head AS (");
    head.push(&mut sql, true);
    sql.push(")");
    if !decreases.is_empty() {
        sql.push(", decreased AS (");
        push_decrease(&mut sql, decreases, " AND EXISTS (SELECT 1 FROM head)");
        sql.push(")");
    }
    let mut n = 0;
    for insert in inserts.into_iter().filter(|i| !i.rows.is_empty()) {
        n += 1;
        let _ = write!(sql.text, ", w{n} AS (");
        push_insert(&mut sql, insert.table, insert.columns, insert.rows, " AND EXISTS (SELECT 1 FROM head)");
        sql.push(insert.tail);
        sql.push(")");
    }
    sql.push(" SELECT CAST(NULL AS TEXT), (SELECT count(*) FROM head)");
    if !decreases.is_empty() {
        sql.push(" UNION ALL SELECT balance_key, CAST(0 AS BIGINT) FROM decreased");
    }
    let rows = bind(sqlx::query(&sql.text), sql.values).fetch_all(&mut *conn).await.map_err(StoreError::from)?;
    let mut moved = 0;
    let mut done = std::collections::BTreeSet::new();
    for row in &rows {
        match row.try_get::<Option<String>, _>(0).map_err(StoreError::from)? {
            None => moved = row.try_get::<i64, _>(1).map_err(StoreError::from)?,
            Some(key) => {
                done.insert(key);
            }
        }
    }
    if moved != 1 {
        return Err(InventoryError::StaleLedger { expected: u64::try_from(head.head).unwrap_or_default() });
    }
    overdrawn(decreases, &done)
}

/// Adds each (stored key, negative delta) to its balance row in one statement, each row guarded
/// (`quantity + delta >= 0`): if any row is missing or would go below zero, the batch fails with
/// [`InventoryError::Overdrawn`] naming the first such balance. The keys are distinct.
async fn decrease_balances(conn: &mut AnyConnection, changes: &[(String, Quantity)]) -> Result<(), InventoryError> {
    let mut sql = Sql::new(conn);
    push_decrease(&mut sql, changes, "");
    let rows = bind(sqlx::query(&sql.text), sql.values).fetch_all(&mut *conn).await.map_err(StoreError::from)?;
    let mut done = std::collections::BTreeSet::new();
    for row in &rows {
        done.insert(row.try_get::<String, _>(0).map_err(StoreError::from)?);
    }
    overdrawn(changes, &done)
}

/// [`InventoryError::Overdrawn`] naming the first change not in `done` (the keys the guarded
/// `UPDATE` returned), if any.
fn overdrawn(changes: &[(String, Quantity)], done: &std::collections::BTreeSet<String>) -> Result<(), InventoryError> {
    match changes.iter().find(|(key, _)| !done.contains(key)) {
        None => Ok(()),
        Some((balance, delta)) => Err(InventoryError::Overdrawn { balance: balance.clone(), delta: *delta }),
    }
}

/// The guarded `UPDATE ... RETURNING balance_key` of [`decrease_balances`]; `guard`: more of
/// its `WHERE`.
fn push_decrease(sql: &mut Sql, changes: &[(String, Quantity)], guard: &str) {
    // `key IN (...)` so both backends go through the primary key; the CASE picks each row's delta.
    // Padded to a power of two with NULL keys, which match no row (one statement text per size
    // class: see `insert_rows`).
    let padded = changes.len().next_power_of_two();
    let key = |i: usize| Value::MaybeText(changes.get(i).map(|(key, _)| key.clone()));
    let delta = |sql: &mut Sql| {
        sql.push("(CASE balance_key");
        for i in 0..padded {
            sql.push(" WHEN ");
            sql.param(key(i));
            sql.push(" THEN ");
            sql.param(Value::MaybeInt(changes.get(i).map(|(_, delta)| *delta)));
        }
        sql.push(" END)");
    };
    sql.push("UPDATE inventory_balances SET quantity = quantity + ");
    delta(sql);
    sql.push(" WHERE balance_key IN (");
    for i in 0..padded {
        sql.push(if i == 0 { "" } else { ", " });
        sql.param(key(i));
    }
    sql.push(") AND quantity + ");
    delta(sql);
    sql.push(" >= 0");
    sql.push(guard);
    sql.push(" RETURNING balance_key");
}

/// The columns of `inventory_movements` a movement is read from, in the order
/// [`movement_from_row`] takes them.
pub(crate) const MOVEMENT_COLUMNS: &str =
    "id, sku, sku_seq, idempotency_key, lot, reason, reservation_id, quantity, at_ms, body";

/// Reads movements: `SELECT MOVEMENT_COLUMNS FROM inventory_movements {tail}` (`tail` orders and
/// limits; `limit`, when given, is bound as its one parameter).
pub(crate) async fn read_movements(
    conn: &mut AnyConnection,
    tail: &str,
    limit: Option<i64>,
) -> Result<Vec<Movement>, StoreError> {
    let sql = format!("SELECT {MOVEMENT_COLUMNS} FROM inventory_movements {tail}");
    let mut query = sqlx::query(&sql);
    if let Some(limit) = limit {
        query = query.bind(limit);
    }
    let rows = query.fetch_all(conn).await?;
    rows.iter().map(movement_from_row).collect()
}

/// A movement from its row ([`MOVEMENT_COLUMNS`]): the columns, and the body for what no column
/// holds. A body written before bodies were compact holds the whole movement; its extra fields
/// equal the columns (both were written from the same movement) and are ignored.
pub(crate) fn movement_from_row(row: &AnyRow) -> Result<Movement, StoreError> {
    let body: MovementBody = decode(&row.try_get::<String, _>(9)?, "movement")?;
    Ok(Movement {
        id: from_i64(row.try_get(0)?)?,
        sku: SkuId::new(row.try_get::<String, _>(1)?),
        sku_seq: from_i64(row.try_get(2)?)?,
        idempotency_key: row.try_get(3)?,
        lot: row.try_get::<Option<String>, _>(4)?.map(LotCode::new),
        reason: unit_variant(&row.try_get::<String, _>(5)?, "movement reason")?,
        reservation: row.try_get::<Option<String>, _>(6)?.map(ReservationId::new),
        quantity: row.try_get(7)?,
        at_ms: row.try_get(8)?,
        from: body.from,
        to: body.to,
        reference: body.reference,
        actor: body.actor,
        channel: body.channel,
    })
}

/// The body of a movement row: the fields no column holds.
#[derive(Serialize)]
struct MovementBodyRef<'a> {
    from: &'a Account,
    to: &'a Account,
    reference: &'a Reference,
    actor: &'a Actor,
    channel: &'a Option<Channel>,
}

impl<'a> MovementBodyRef<'a> {
    fn of(m: &'a Movement) -> Self {
        Self { from: &m.from, to: &m.to, reference: &m.reference, actor: &m.actor, channel: &m.channel }
    }
}

#[derive(Deserialize)]
struct MovementBody {
    from: Account,
    to: Account,
    reference: Reference,
    actor: Actor,
    channel: Option<Channel>,
}

/// An applied command's first outcome as `inventory_applied.outcome` keeps it: its movements by
/// journal position (a command's movements are consecutive), the records it changed in the state
/// it left them (`reservations` is spliced in by [`applied_outcome`]), and its effect, which names
/// the changed reservation it carries by position rather than repeating it. The key is the row's
/// key; a stored outcome is never a replay.
#[derive(Serialize)]
struct AppliedOutcomeRef<'a> {
    /// The id of the first movement (0 without movements).
    first_movement: u64,
    /// How many movements.
    movements: usize,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    lots: &'a [SkuLot],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    transfers: &'a [Transfer],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    purchase_orders: &'a [PurchaseOrder],
    /// The effect, unless it is `effect_of`.
    #[serde(skip_serializing_if = "Option::is_none")]
    effect: Option<&'a Effect>,
    /// The effect as (its kind, the position of its reservation among `reservations`).
    #[serde(skip_serializing_if = "Option::is_none")]
    effect_of: Option<(ReservationEffect, usize)>,
}

impl<'a> AppliedOutcomeRef<'a> {
    fn of(outcome: &'a Outcome) -> Self {
        let changes = &outcome.changes;
        let effect_of = ReservationEffect::of(&outcome.effect)
            .and_then(|(kind, r)| Some((kind, changes.reservations.iter().position(|c| c == r)?)));
        Self {
            first_movement: outcome.movements.first().map_or(0, |m| m.id),
            movements: outcome.movements.len(),
            lots: &changes.lots,
            transfers: &changes.transfers,
            purchase_orders: &changes.purchase_orders,
            effect: if effect_of.is_some() { None } else { Some(&outcome.effect) },
            effect_of,
        }
    }
}

/// `inventory_applied.outcome` of `outcome`, whose changed reservations are already encoded (as
/// their rows store them): spliced in as `reservations`, not encoded again.
fn applied_outcome(outcome: &Outcome, reservations: &[String]) -> Result<String, StoreError> {
    let mut text = encode(&AppliedOutcomeRef::of(outcome), "outcome")?;
    if !reservations.is_empty() {
        // The object always has a first field (`first_movement`): drop its `}`, add one more.
        text.pop();
        text.push_str(",\"reservations\":[");
        for (i, reservation) in reservations.iter().enumerate() {
            text.push_str(if i == 0 { "" } else { "," });
            text.push_str(reservation);
        }
        text.push_str("]}");
    }
    Ok(text)
}

/// `inventory_applied.outcome` as read: the compact form, or a whole [`Outcome`] as versions
/// before it stored (still read).
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredOutcome {
    Compact(AppliedOutcome),
    Full(Outcome),
}

#[derive(Deserialize)]
struct AppliedOutcome {
    first_movement: u64,
    movements: usize,
    #[serde(default)]
    lots: Vec<SkuLot>,
    #[serde(default)]
    reservations: Vec<Reservation>,
    #[serde(default)]
    transfers: Vec<Transfer>,
    #[serde(default)]
    purchase_orders: Vec<PurchaseOrder>,
    #[serde(default)]
    effect: Option<Effect>,
    #[serde(default)]
    effect_of: Option<(ReservationEffect, usize)>,
}

impl StoredOutcome {
    /// The outcome as first answered, its movements taken from `journal`, which starts after the
    /// first `base` movements.
    fn outcome(self, key: IdempotencyKey, journal: &[Movement], base: u64) -> Result<Outcome, StoreError> {
        let stored = match self {
            Self::Full(outcome) => return Ok(outcome),
            Self::Compact(stored) => stored,
        };
        let corrupt = || StoreError::Other(format!("corrupt inventory applied outcome of {key}"));
        let movements = match stored.movements {
            0 => Vec::new(),
            n => {
                let first = stored.first_movement.checked_sub(base).ok_or_else(corrupt)?;
                let first = usize::try_from(first).map_err(|_| corrupt())?;
                let slice = first.checked_sub(1).and_then(|start| journal.get(start..start.checked_add(n)?));
                let slice = slice.ok_or_else(corrupt)?;
                // The positions must name this key's own movements (`{key}#{index}`, as the
                // ledger makes them): a wrong pointer is corruption, not another command's answer.
                let own = slice.iter().enumerate().all(|(i, m)| {
                    m.idempotency_key.strip_prefix(key.as_str()).and_then(|rest| rest.strip_prefix('#'))
                        == Some(i.to_string().as_str())
                });
                if !own {
                    return Err(corrupt());
                }
                slice.to_vec()
            }
        };
        let effect = match (stored.effect, stored.effect_of) {
            (Some(effect), None) => effect,
            (None, Some((kind, position))) => kind.with(stored.reservations.get(position).ok_or_else(corrupt)?.clone()),
            _ => return Err(corrupt()),
        };
        let changes = Changes {
            lots: stored.lots,
            reservations: stored.reservations,
            transfers: stored.transfers,
            purchase_orders: stored.purchase_orders,
        };
        Ok(Outcome { key, replayed: false, movements, changes, effect })
    }
}

/// A unit enum variant from its serde name (`reserve`, `held`).
fn unit_variant<T: DeserializeOwned>(name: &str, what: &str) -> Result<T, StoreError> {
    use serde::de::IntoDeserializer as _;
    T::deserialize(name.into_deserializer())
        .map_err(|e: serde::de::value::Error| StoreError::Other(format!("corrupt inventory {what}: {e}")))
}

fn from_i64(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Other(format!("corrupt inventory row: {n} is negative")))
}

/// A value of a multi-row statement.
#[derive(Clone)]
enum Value {
    Int(i64),
    MaybeInt(Option<i64>),
    Text(String),
    MaybeText(Option<String>),
}

impl Value {
    /// A NULL of the same SQL type (PostgreSQL types the parameters of padding rows too).
    fn null_of(&self) -> Self {
        match self {
            Self::Int(_) | Self::MaybeInt(_) => Self::MaybeInt(None),
            Self::Text(_) | Self::MaybeText(_) => Self::MaybeText(None),
        }
    }
}

/// A statement with many parameters, written for the connection's backend: `$1, $2...` on
/// PostgreSQL, anonymous `?` on SQLite. (sqlx looks up the name of every numbered SQLite
/// parameter, and SQLite finds a name by scanning a list: numbered parameters cost time
/// quadratic in their count, anonymous ones do not.)
struct Sql {
    text: String,
    values: Vec<Value>,
    numbered: bool,
}

impl Sql {
    fn new(conn: &AnyConnection) -> Self {
        let numbered = !conn.backend_name().eq_ignore_ascii_case("sqlite");
        Self { text: String::with_capacity(256), values: Vec::new(), numbered }
    }

    fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    fn param(&mut self, value: Value) {
        self.values.push(value);
        if self.numbered {
            let _ = write!(self.text, "${}", self.values.len());
        } else {
            self.text.push('?');
        }
    }
}

/// Binds `values` in order.
fn bind<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    values: Vec<Value>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for value in values {
        query = match value {
            Value::Int(v) => query.bind(v),
            Value::MaybeInt(v) => query.bind(v),
            Value::Text(v) => query.bind(v),
            Value::MaybeText(v) => query.bind(v),
        };
    }
    query
}

/// `INSERT INTO table (columns) SELECT * FROM (VALUES (...), (...)) ... tail`, at most
/// [`ROWS_PER_STATEMENT`] rows at a time, each statement padded to a power of two rows with rows
/// of NULLs that its `WHERE` leaves out. So a table is written by one of a few statement texts
/// whatever the batch's size, and the connection's prepared-statement cache (keyed by text) keeps
/// them all: a statement is parsed (and, on PostgreSQL, described in a round trip) once per
/// connection instead of once per batch size. The first column of a real row is never NULL.
async fn insert_rows(
    conn: &mut AnyConnection,
    table: &str,
    columns: &[&str],
    rows: Vec<Vec<Value>>,
    tail: &str,
) -> Result<(), StoreError> {
    let mut rows = rows.into_iter().peekable();
    let mut left = rows.len();
    while rows.peek().is_some() {
        let take = left.min(ROWS_PER_STATEMENT);
        left -= take;
        let mut sql = Sql::new(conn);
        push_insert(&mut sql, table, columns, rows.by_ref().take(take).collect(), "");
        sql.push(tail);
        let (text, values) = (sql.text, sql.values);
        bind(sqlx::query(&text), values).execute(&mut *conn).await?;
    }
    Ok(())
}

/// `INSERT INTO table (columns) SELECT * FROM (VALUES ...) AS v WHERE column1 IS NOT NULL`, the
/// rows padded to a power of two with NULL rows ([`insert_rows`]); `guard`: more of the `WHERE`.
/// `rows` must not be empty.
fn push_insert(sql: &mut Sql, table: &str, columns: &[&str], rows: Vec<Vec<Value>>, guard: &str) {
    let take = rows.len();
    let padded = take.next_power_of_two();
    let _ = write!(sql.text, "INSERT INTO {table} ({}) SELECT * FROM (VALUES ", columns.join(", "));
    let nulls: Vec<Value> = rows.first().map(|row| row.iter().map(Value::null_of).collect()).unwrap_or_default();
    let mut rows = rows.into_iter();
    for i in 0..padded {
        sql.push(if i == 0 { "(" } else { ", (" });
        let row = if i < take { rows.next().unwrap_or_default() } else { nulls.clone() };
        for (column, value) in row.into_iter().enumerate() {
            sql.push(if column == 0 { "" } else { ", " });
            sql.param(value);
        }
        sql.push(")");
    }
    sql.push(") AS v WHERE column1 IS NOT NULL");
    sql.push(guard);
}

/// Decodes the JSON body of every row of a one-column query.
async fn bodies<T: DeserializeOwned>(conn: &mut AnyConnection, sql: &str, what: &str) -> Result<Vec<T>, StoreError> {
    let rows = sqlx::query(sql).fetch_all(conn).await?;
    rows.iter().map(|row| decode(&row.try_get::<String, _>(0)?, what)).collect()
}

fn decode<T: DeserializeOwned>(text: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Other(format!("corrupt inventory {what}: {e}")))
}

fn encode<T: Serialize>(value: &T, what: &str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::InvalidInput(format!("cannot store the {what}: {e}")))
}

/// The serde name of a unit enum variant (`on_hand`, `receipt`, `held`).
fn name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

fn as_i64(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::InvalidInput(format!("{n} does not fit a BIGINT")))
}
