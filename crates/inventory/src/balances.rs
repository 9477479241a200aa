//! Balances: the projection of the journal, one signed quantity per (SKU, account, lot).
//!
//! Only movements change balances, so `Balances::rebuild(journal)` must always equal the live ones.
//! Zero balances are dropped, so two projections of the same journal compare equal.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use serde::{Deserialize, Serialize};

use crate::model::{Account, BalanceKey, Movement, Quantity, SkuId};

/// Quantity per balance key; absent keys are zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balances(BTreeMap<BalanceKey, Quantity>);

impl Balances {
    /// Recomputes balances from a journal of movements.
    pub fn rebuild<'a>(journal: impl IntoIterator<Item = &'a Movement>) -> Self {
        let mut balances = Self::default();
        for movement in journal {
            balances.apply(movement);
        }
        balances
    }

    /// Books one movement.
    pub fn apply(&mut self, movement: &Movement) {
        self.add(movement.from_key(), -movement.quantity);
        self.add(movement.to_key(), movement.quantity);
    }

    /// The balance of a key (zero when it never moved).
    pub fn get(&self, key: &BalanceKey) -> Quantity {
        self.0.get(key).copied().unwrap_or(0)
    }

    /// Every non-zero balance, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&BalanceKey, Quantity)> {
        self.0.iter().map(|(k, q)| (k, *q))
    }

    /// Every non-zero balance of one SKU.
    pub fn of_sku<'a>(&'a self, sku: &'a SkuId) -> impl Iterator<Item = (&'a BalanceKey, Quantity)> + 'a {
        self.0.range(BalanceKey::first_of(sku)..).take_while(move |(k, _)| &k.sku == sku).map(|(k, q)| (k, *q))
    }

    /// Every non-zero balance of one SKU in one account, by lot.
    pub fn of_account<'a>(
        &'a self,
        sku: &'a SkuId,
        account: &'a Account,
    ) -> impl Iterator<Item = (&'a BalanceKey, Quantity)> + 'a {
        let start = BalanceKey { sku: sku.clone(), account: account.clone(), lot: None };
        self.0.range(start..).take_while(move |(k, _)| &k.sku == sku && &k.account == account).map(|(k, q)| (k, *q))
    }

    /// Adds `delta` to a balance, dropping it when it reaches zero.
    pub(crate) fn add(&mut self, key: BalanceKey, delta: Quantity) {
        match self.0.entry(key) {
            Entry::Occupied(mut entry) => {
                *entry.get_mut() += delta;
                if *entry.get() == 0 {
                    entry.remove();
                }
            }
            Entry::Vacant(entry) => {
                if delta != 0 {
                    entry.insert(delta);
                }
            }
        }
    }
}
