//! The inventory ledger: one serialized, deterministic state machine that owns every rule about
//! stock (movements between balances, lots and expiry, cart holds with deadlines, FEFO allocation
//! across a channel's locations, kits, POS sales, returns, transfers, adjustments) and checks its
//! own invariants: no internal balance below zero, conservation of units per SKU, and reserved
//! stock equal to the live holds. It never oversells by construction.
//!
//! The core ([`Ledger`] and the modules it uses) owns no I/O, no clock and no randomness: time is
//! passed in, so a seeded simulation drives it exactly as production does. Around it, [`store`]
//! persists what each [`Ledger::apply`] returns on SQLite or PostgreSQL — every [`Outcome`]'s
//! `movements` appended to the journal, its balance changes added under guards, its `changes`
//! upserted, in one transaction per batch — and reads it back for [`Ledger::restore`]; and
//! [`service::Inventory`] is the one writer that batches requests, commits each batch before
//! answering, and serves availability from memory; [`routes`] puts HTTP in front of it.
//!
//! # Layout
//! - [`model`]: identifiers, time, locations and channels, lots, accounts and the [`Movement`] record.
//! - [`records`]: reservations, transfers and purchase orders as the ledger keeps them.
//! - [`command`]: [`Request`]s and [`Command`]s in; [`Outcome`]s or [`Rejection`]s out.
//! - [`balances`]: the projection of the journal, [`Balances::rebuild`].
//! - [`ledger`]: the [`Ledger`] itself: apply, read, check, restore.
//! - `draft`: the rules of each command, staged so a refused command changes nothing.
//! - `allocation`: which locations and lots a channel draws on (FEFO, shelf life, safety stock).
//! - [`kits`]: kits move their components; a kit is as available as its scarcest component.
//! - `catalog`: the validated [`Setup`].
//! - [`store`]: the tables ([`MIGRATIONS`]), [`store::persist`] of a batch, [`store::load`], and
//!   [`store::load_since`] (the batches other processes committed, to replay).
//! - [`service`]: [`Inventory`], the batching writer and in-memory reads.
//! - [`forward`]: the writer's lease, and writes forwarded to the node holding it when several
//!   nodes share one database.
//! - [`events`]: movements on the bus (`inventory.movement`) from the journal, and the
//!   [`events::Follower`] that keeps other nodes' ledgers up.
//! - [`webhooks`]: channel availability pushed to subscribers, signed, retried, dead-lettered.
//! - [`rebuild`]: balances recomputed from the journal (`dermis inventory rebuild`).
//! - [`directory`]: the catalog's SKUs by id or code ([`directory::SkuDirectory`]).
//! - [`routes`]: the HTTP API (locations, channels, receipts, reservations, stock, reports, POS).
//! - [`error`]: [`InventoryError`], what can fail around the ledger.

mod allocation;
pub mod balances;
mod catalog;
pub mod command;
pub mod directory;
mod draft;
pub mod error;
pub mod events;
pub mod forward;
pub mod kits;
pub mod ledger;
pub mod model;
pub mod rebuild;
pub mod records;
pub mod routes;
pub mod service;
pub mod store;
pub mod webhooks;

pub use balances::Balances;
pub use catalog::SetupError;
pub use command::{AdjustKind, Changes, Command, Effect, HoldConflict, Line, LotLine, Outcome, ReceiptLine};
pub use command::{Rejection, Request, Shortage};
pub use error::InventoryError;
pub use ledger::{AppliedRequest, Availability, ExpiringStock, InvariantViolation, Ledger, LocationAvailability};
pub use ledger::{Recall, Records, RestoreError};
pub use model::{Account, Actor, BalanceKey, Channel, ChannelPolicy, EpochDay, External, IdempotencyKey, Kit};
pub use model::{
    KitComponent, Location, LocationDetails, LocationId, LocationKind, Lot, LotCode, MS_PER_DAY, Movement,
};
pub use model::{PurchaseOrderId, Quantity, Reason, Reference, ReservationId, Setup, SkuId, StockState};
pub use model::{TimestampMs, TransferId, day_of};
pub use records::{Allocation, ComponentAllocation, PurchaseOrder, PurchaseOrderLine, Reservation};
pub use records::{ReservationLine, ReservationStatus, SkuLot, Transfer, TransferStatus};
pub use service::{Inventory, SyncStats, WriterOptions};

/// Migrations of the inventory tables (journal, balances, records, applied commands, setup; the
/// relay's mark and webhooks).
pub const MIGRATIONS: &[dermis_store::Migration] = &[
    dermis_store::Migration {
        domain: "inventory",
        version: 1,
        name: "ledger journal, balances, records, idempotency, setup",
        sqlite: include_str!("../migrations/0001_inventory.sql"),
        postgres: include_str!("../migrations/0001_inventory.sql"),
    },
    dermis_store::Migration {
        domain: "inventory",
        version: 2,
        name: "the relay's mark, webhook subscriptions and deliveries",
        sqlite: include_str!("../migrations/0002_inventory_relay.sql"),
        postgres: include_str!("../migrations/0002_inventory_relay.sql"),
    },
    dermis_store::Migration {
        domain: "inventory",
        version: 3,
        name: "batches counted on the journal's head",
        sqlite: include_str!("../migrations/0003_inventory_head_batches.sql"),
        postgres: include_str!("../migrations/0003_inventory_head_batches.sql"),
    },
    dermis_store::Migration {
        domain: "inventory",
        version: 4,
        name: "applied commands by batch, the setup's version (catching up by replay)",
        sqlite: include_str!("../migrations/0004_inventory_applied_batches.sql"),
        postgres: include_str!("../migrations/0004_inventory_applied_batches.sql"),
    },
    dermis_store::Migration {
        domain: "inventory",
        version: 5,
        name: "the writer's lease (writes forwarded to one node)",
        sqlite: include_str!("../migrations/0005_inventory_writer_lease.sql"),
        postgres: include_str!("../migrations/0005_inventory_writer_lease.sql"),
    },
];
