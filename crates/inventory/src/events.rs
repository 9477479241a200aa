//! The inventory on the bus: every movement of the journal becomes an `inventory.movement`
//! message (keyed by SKU, with the SKU's sequence number), relayed by the one outbox relay from
//! the journal itself, so nothing is written twice. Other nodes follow with [`Follower`]: a
//! movement they have not seen means another node wrote, and their ledger reloads; a message
//! at or below what they hold is stale and dropped.
//!
//! Payloads carry what a consumer of stock needs (SKU, sequence, accounts, quantity, lot,
//! reason, channel, document) and not who did it: the actor (which may be a customer) stays in
//! the journal.

use std::sync::Arc;

use async_trait::async_trait;
use dermis_bus::projection::Projection;
use dermis_bus::relay::OutboxSource;
use dermis_bus::{Envelope, Outgoing};
use dermis_store::sqlx::{self, Row};
use dermis_store::{Db, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::model::{Account, Channel, LotCode, Movement, Quantity, Reason, Reference, SkuId, TimestampMs};
use crate::service::Inventory;

/// The topic of movements.
pub const TOPIC: &str = "inventory.movement";

/// A movement as the bus carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovementMessage {
    /// The movement's position in the journal.
    pub movement: u64,
    /// The SKU.
    pub sku: SkuId,
    /// The SKU's sequence number: a consumer drops a message at or below the last it applied.
    pub sequence: u64,
    /// Where units left.
    pub from: Account,
    /// Where they went.
    pub to: Account,
    /// Units.
    pub quantity: Quantity,
    /// The lot.
    pub lot: Option<LotCode>,
    /// Why.
    pub reason: Reason,
    /// The channel, for holds and sales.
    pub channel: Option<Channel>,
    /// The document.
    pub reference: Reference,
    /// When.
    pub at_ms: TimestampMs,
}

impl From<&Movement> for MovementMessage {
    fn from(m: &Movement) -> Self {
        Self {
            movement: m.id,
            sku: m.sku.clone(),
            sequence: m.sku_seq,
            from: m.from.clone(),
            to: m.to.clone(),
            quantity: m.quantity,
            lot: m.lot.clone(),
            reason: m.reason,
            channel: m.channel.clone(),
            reference: m.reference.clone(),
            at_ms: m.at_ms,
        }
    }
}

/// The journal as an outbox: rows after the relayed mark, oldest first.
#[derive(Debug, Clone)]
pub struct InventoryOutbox {
    db: Db,
    ready: Option<Arc<Notify>>,
}

impl InventoryOutbox {
    /// The outbox of the journal in `db`; `ready`, when given, is notified after each
    /// committed batch (else the relay looks on its own schedule).
    pub fn new(db: Db, ready: Option<Arc<Notify>>) -> Self {
        Self { db, ready }
    }
}

fn store_error(e: sqlx::Error) -> anyhow::Error {
    anyhow::Error::from(StoreError::from(e))
}

#[async_trait]
impl OutboxSource for InventoryOutbox {
    fn name(&self) -> &'static str {
        "inventory"
    }

    async fn pending(&self, limit: usize) -> anyhow::Result<Vec<Outgoing>> {
        let limit = limit.clamp(1, 1000) as i64;
        let mut conn = self.db.reader().acquire().await.map_err(store_error)?;
        let movements = crate::store::read_movements(
            &mut conn,
            "WHERE id > (SELECT relayed_through FROM inventory_relay WHERE id = 1) ORDER BY id LIMIT $1",
            Some(limit),
        )
        .await?;
        let mut out = Vec::with_capacity(movements.len());
        for movement in movements {
            out.push(Outgoing {
                topic: TOPIC.to_owned(),
                key: movement.sku.to_string(),
                id: format!("inv-{}", movement.id),
                payload: serde_json::to_string(&MovementMessage::from(&movement))?,
            });
        }
        Ok(out)
    }

    async fn relayed(&self, ids: Vec<String>) -> anyhow::Result<()> {
        // The relay hands over what it published, oldest first: the mark moves to the end of
        // the unbroken run after it (an id out of order is published again later: a no-op).
        let mut ids: Vec<i64> = ids.iter().filter_map(|id| id.strip_prefix("inv-")?.parse().ok()).collect();
        ids.sort_unstable();
        let mark: i64 = sqlx::query("SELECT relayed_through FROM inventory_relay WHERE id = 1")
            .fetch_one(self.db.reader())
            .await
            .map_err(store_error)?
            .try_get(0)
            .map_err(store_error)?;
        let mut through = mark;
        for id in ids {
            if id == through + 1 {
                through = id;
            } else if id > through + 1 {
                break;
            }
        }
        if through > mark {
            sqlx::query("UPDATE inventory_relay SET relayed_through = $1 WHERE id = 1 AND relayed_through < $1")
                .bind(through)
                .execute(self.db.writer())
                .await
                .map_err(store_error)?;
        }
        Ok(())
    }

    fn ready(&self) -> Option<Arc<Notify>> {
        self.ready.clone()
    }
}

/// Keeps this node's ledger up with what other nodes sharing the database wrote: a movement
/// beyond this node's journal makes it catch up (once per batch of messages) by replaying the
/// batches committed since ([`Inventory::refresh`]). Reads on this
/// node then reflect another node's reservation within the relay's delay; writes never needed
/// it (every batch is fenced by the journal's head).
#[derive(Debug, Clone)]
pub struct Follower {
    inventory: Inventory,
}

impl Follower {
    /// Follows for `inventory`.
    pub fn new(inventory: Inventory) -> Self {
        Self { inventory }
    }
}

/// Whether any message of a batch is news to a ledger whose journal holds `head` movements.
pub fn is_news(batch: &[Envelope], head: u64) -> bool {
    batch.iter().any(|e| {
        serde_json::from_str::<MovementMessage>(&e.payload).map(|m| m.movement > head).unwrap_or_else(|err| {
            tracing::warn!(error = %err, id = e.id, "unreadable inventory movement on the bus");
            false
        })
    })
}

#[async_trait]
impl Projection for Follower {
    fn name(&self) -> &'static str {
        "inventory"
    }

    fn topic(&self) -> &'static str {
        TOPIC
    }

    async fn rebuild(&self) -> anyhow::Result<u64> {
        // The ledger was loaded when the service opened.
        Ok(self.inventory.read(|l| l.journal().len() as u64))
    }

    fn rebuild_covers_published(&self) -> bool {
        true
    }

    async fn apply(&self, batch: &[Envelope]) -> anyhow::Result<()> {
        let head = self.inventory.read(|l| l.journal().len() as u64);
        if is_news(batch, head) {
            self.inventory.refresh().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(movement: u64) -> Envelope {
        let m = MovementMessage {
            movement,
            sku: "sku_1".into(),
            sequence: movement,
            from: Account::Stock { location: "wh".into(), state: crate::StockState::OnHand },
            to: Account::Stock { location: "wh".into(), state: crate::StockState::Reserved },
            quantity: 1,
            lot: None,
            reason: Reason::Reserve,
            channel: Some(Channel::Web),
            reference: Reference::None,
            at_ms: 0,
        };
        Envelope {
            seq: movement,
            topic: TOPIC.into(),
            key: "sku_1".into(),
            id: format!("inv-{movement}"),
            payload: serde_json::to_string(&m).unwrap(),
        }
    }

    #[test]
    fn only_a_movement_beyond_the_journal_is_news() {
        assert!(!is_news(&[envelope(3), envelope(5)], 5), "stale: already applied here");
        assert!(is_news(&[envelope(5), envelope(6)], 5));
        let garbage = Envelope { payload: "{".into(), ..envelope(9) };
        assert!(!is_news(&[garbage], 5));
    }

    #[test]
    fn the_message_says_nothing_of_the_actor() {
        let movement = Movement {
            id: 1,
            sku_seq: 1,
            idempotency_key: "reserve:cus_42:k#0".into(),
            sku: "sku_1".into(),
            lot: Some("L1".into()),
            from: Account::Stock { location: "wh".into(), state: crate::StockState::OnHand },
            to: Account::Stock { location: "wh".into(), state: crate::StockState::Reserved },
            quantity: 2,
            reason: Reason::Reserve,
            reference: Reference::None,
            reservation: Some("res_1".into()),
            actor: "cus_42".into(),
            channel: Some(Channel::Web),
            at_ms: 5,
        };
        let text = serde_json::to_string(&MovementMessage::from(&movement)).unwrap();
        assert!(!text.contains("cus_42"), "{text}");
        assert!(text.contains("\"sequence\":1"), "{text}");
    }
}
