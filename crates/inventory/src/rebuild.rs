//! `dermis inventory rebuild`: the balances recomputed from the journal, compared with the stored
//! balance rows, and written in their place. The journal is the truth; balances are its
//! projection and must match it.
//!
//! The rebuild runs in one transaction that first takes the journal's head row, so no batch of a
//! running writer commits in between (its compare-and-set on the head waits, then goes on adding
//! its changes to the rebuilt rows).

use std::collections::BTreeMap;

use dermis_store::sqlx::{self, Row};
use dermis_store::{Db, StoreError};
use serde::Serialize;

use crate::balances::Balances;
use crate::model::{Account, BalanceKey, Quantity};

/// What a rebuild found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RebuildReport {
    /// Movements in the journal.
    pub movements: u64,
    /// Non-zero balances the journal implies.
    pub balances: u64,
    /// Balances whose stored row differed from the journal's: (key, stored, from the journal).
    pub mismatches: Vec<(String, Quantity, Quantity)>,
    /// Whether the stored rows were replaced.
    pub rewritten: bool,
}

impl RebuildReport {
    /// Whether the stored balances matched the journal.
    pub fn matched(&self) -> bool {
        self.mismatches.is_empty()
    }
}

fn canonical(key: &BalanceKey) -> Result<String, StoreError> {
    serde_json::to_string(key).map_err(|e| StoreError::InvalidInput(format!("balance key: {e}")))
}

fn state_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

/// Recomputes the balances from the journal and compares them with the stored rows; with
/// `write`, replaces the rows with the recomputed ones (in the same transaction).
pub async fn rebuild(db: &Db, write: bool) -> Result<RebuildReport, StoreError> {
    let mut tx = db.begin().await?;
    // Take the head row first: batches of running writers wait until this commits.
    sqlx::query("UPDATE inventory_head SET last_movement = last_movement WHERE id = 1").execute(&mut *tx).await?;
    let journal = crate::store::read_movements(&mut tx, "ORDER BY id", None).await?;
    let projected = Balances::rebuild(&journal);
    let mut expected: BTreeMap<String, (BalanceKey, Quantity)> = BTreeMap::new();
    for (key, quantity) in projected.iter() {
        if quantity != 0 {
            expected.insert(canonical(key)?, (key.clone(), quantity));
        }
    }
    let mut stored: BTreeMap<String, Quantity> = BTreeMap::new();
    for row in sqlx::query("SELECT balance_key, quantity FROM inventory_balances").fetch_all(&mut *tx).await? {
        let quantity: i64 = row.try_get(1)?;
        if quantity != 0 {
            stored.insert(row.try_get(0)?, quantity);
        }
    }
    let mut report =
        RebuildReport { movements: journal.len() as u64, balances: expected.len() as u64, ..Default::default() };
    for (key, (_, quantity)) in &expected {
        let have = stored.get(key).copied().unwrap_or(0);
        if have != *quantity {
            report.mismatches.push((key.clone(), have, *quantity));
        }
    }
    for (key, have) in &stored {
        if !expected.contains_key(key) {
            report.mismatches.push((key.clone(), *have, 0));
        }
    }
    if write {
        sqlx::query("DELETE FROM inventory_balances").execute(&mut *tx).await?;
        for (stored_key, (key, quantity)) in &expected {
            let (location, state) = match &key.account {
                Account::Stock { location, state } => (Some(location.to_string()), state_name(state)),
                Account::External { external } => (None, state_name(external)),
            };
            sqlx::query(
                "INSERT INTO inventory_balances (balance_key, sku, location, state, lot, quantity) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(stored_key)
            .bind(key.sku.to_string())
            .bind(location)
            .bind(state)
            .bind(key.lot.as_ref().map(ToString::to_string))
            .bind(*quantity)
            .execute(&mut *tx)
            .await?;
        }
        report.rewritten = true;
    }
    tx.commit().await?;
    Ok(report)
}
