//! Shared helpers of the customers tests.
#![allow(dead_code)]

use std::sync::Arc;

use dermis_core::clock::{ManualClock, SharedClock};
use dermis_customers::Customers;
use dermis_customers::crypto::{Keyring, LocalMasterKey, MasterKey};
use dermis_customers::input::{CreateCustomer, PutSkinProfile};
use dermis_customers::service::Actor;
use dermis_store::{Db, Migration};

/// Every table the customers domain needs.
pub const MIGRATIONS: &[&[Migration]] = &[
    dermis_store::MIGRATIONS,
    dermis_auth::MIGRATIONS,
    dermis_events::MIGRATIONS,
    dermis_customers::MIGRATIONS,
    dermis_audit::MIGRATIONS,
];

/// 2026-05-28T20:26:40Z.
pub const NOW: i64 = 1_780_000_000_000;

pub fn master(byte: u8) -> Arc<dyn MasterKey> {
    Arc::new(LocalMasterKey::from_bytes([byte; 32]))
}

pub fn clock() -> SharedClock {
    ManualClock::at(NOW)
}

pub async fn customers(db: &Db) -> Customers {
    Customers::open(db.clone(), Keyring::new(master(42)), clock()).await.expect("open customers")
}

/// The audit log in `db`, on the tests' clock.
pub fn audit(db: &Db) -> Arc<dyn dermis_audit::Auditor> {
    Arc::new(dermis_audit::Audit::new(db.clone(), clock()))
}

pub fn admin() -> Actor {
    Actor { id: "adm-1".into(), role: "admin".into() }
}

/// A create request from JSON.
pub fn create(v: serde_json::Value) -> CreateCustomer {
    serde_json::from_value(v).expect("a create request")
}

/// A skin profile request from JSON.
pub fn skin(v: serde_json::Value) -> PutSkinProfile {
    serde_json::from_value(v).expect("a skin profile request")
}

/// The bus messages the customers domain wrote and the relay has not published yet, as the bus
/// would deliver them.
pub async fn bus_messages(db: &Db) -> Vec<dermis_bus::Envelope> {
    dermis_customers::store::unpublished(db.reader(), 100)
        .await
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, e)| dermis_bus::Envelope {
            seq: i as u64,
            topic: e.event_type,
            key: e.aggregate_id,
            id: e.id,
            payload: e.payload,
        })
        .collect()
}
