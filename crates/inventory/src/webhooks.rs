//! Channel availability pushed to webhooks: a subscription names a URL and the channels it
//! follows; when a SKU's stock moves, the SKU's availability on those channels is POSTed there,
//! signed, retried with backoff, and kept on a dead-letter list when every try failed.
//!
//! - Enqueue: [`WebhookFeed`] follows `inventory.movement` on every node and writes one delivery
//!   row per (subscription, SKU, sequence); the row's id makes several nodes' rows one.
//! - Deliver: [`Deliverer::run`] on every node claims due rows one at a time (a conditional
//!   update: one node wins each), sends the SKU's availability as this node's ledger has it
//!   then (so a burst of movements of one SKU sends its latest state, and older pending rows of
//!   the SKU are superseded), and records the answer.
//! - Sign: `Dermis-Signature: t=UNIX_SECONDS,v1=HEX` where `HEX` is HMAC-SHA256 of
//!   `UNIX_SECONDS.BODY` under the subscription's secret (the receiver recomputes it and checks
//!   the time to refuse replays). The body carries the SKU's per-SKU `sequence`: a receiver keeps
//!   the highest and drops older deliveries that arrive late.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use dermis_bus::Envelope;
use dermis_bus::projection::Projection;
use dermis_core::clock::SharedClock;
use dermis_store::sqlx::{self, Row};
use dermis_store::{Db, StoreError};
use serde::{Deserialize, Serialize};

use crate::events::{MovementMessage, TOPIC};
use crate::model::{Channel, Quantity, SkuId};
use crate::service::Inventory;

/// A subscription as stored (the secret is never shown again after creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// `whk_...`.
    pub id: String,
    /// Where deliveries go.
    pub url: String,
    /// The channels whose availability it receives.
    pub channels: Vec<Channel>,
    /// When it was created (ms).
    pub created_at_ms: i64,
}

/// A delivery that failed every try.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The delivery's id.
    pub id: String,
    /// The SKU whose change it announced.
    pub sku: String,
    /// The SKU's sequence then.
    pub sequence: i64,
    /// Tries made.
    pub attempts: i64,
    /// The last failure.
    pub last_error: Option<String>,
}

/// What a webhook receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailabilityChanged {
    /// Always `inventory.availability`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The delivery's id (the same on every retry).
    pub delivery_id: String,
    /// The SKU.
    pub sku_id: SkuId,
    /// The SKU's per-SKU sequence number as sent: keep the highest.
    pub sequence: u64,
    /// Units each followed channel can sell now.
    pub channels: BTreeMap<String, Quantity>,
    /// When it was sent (RFC 3339).
    pub sent_at: String,
}

/// How deliveries are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries before a delivery is dead.
    pub attempts: u32,
    /// The pause after the first failure; it doubles after each (at most an hour).
    pub first_backoff: Duration,
    /// How long one try may take.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { attempts: 8, first_backoff: Duration::from_secs(2), timeout: Duration::from_secs(10) }
    }
}

fn err(e: sqlx::Error) -> StoreError {
    StoreError::from(e)
}

/// The subscriptions' store.
#[derive(Debug, Clone)]
pub struct Webhooks {
    db: Db,
    clock: SharedClock,
}

impl Webhooks {
    /// Over `db`.
    pub fn new(db: Db, clock: SharedClock) -> Self {
        Self { db, clock }
    }

    /// Adds a subscription.
    pub async fn create(&self, url: &str, channels: &[Channel], secret: &str) -> Result<Webhook, StoreError> {
        let hook = Webhook {
            id: dermis_core::ids::new_id("whk"),
            url: url.to_owned(),
            channels: channels.to_vec(),
            created_at_ms: self.clock.now_ms(),
        };
        let names = serde_json::to_string(&hook.channels).map_err(|e| StoreError::InvalidInput(e.to_string()))?;
        sqlx::query(
            "INSERT INTO inventory_webhooks (id, url, channels, secret, created_at, active) VALUES ($1, $2, $3, $4, $5, 1)",
        )
        .bind(&hook.id)
        .bind(&hook.url)
        .bind(names)
        .bind(secret)
        .bind(hook.created_at_ms)
        .execute(self.db.writer())
        .await
        .map_err(err)?;
        Ok(hook)
    }

    /// Active subscriptions, oldest first, with their secrets.
    async fn active_with_secrets(&self) -> Result<Vec<(Webhook, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, url, channels, secret, created_at FROM inventory_webhooks WHERE active = 1 ORDER BY created_at, id",
        )
        .fetch_all(self.db.reader())
        .await
        .map_err(err)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let channels: String = row.try_get(2).map_err(err)?;
            out.push((
                Webhook {
                    id: row.try_get(0).map_err(err)?,
                    url: row.try_get(1).map_err(err)?,
                    channels: serde_json::from_str(&channels).map_err(|e| StoreError::InvalidInput(e.to_string()))?,
                    created_at_ms: row.try_get(4).map_err(err)?,
                },
                row.try_get(3).map_err(err)?,
            ));
        }
        Ok(out)
    }

    /// Active subscriptions, oldest first.
    pub async fn list(&self) -> Result<Vec<Webhook>, StoreError> {
        Ok(self.active_with_secrets().await?.into_iter().map(|(hook, _)| hook).collect())
    }

    /// Stops a subscription (its pending deliveries are dropped); `false` if there was none.
    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.db.begin().await?;
        let done = sqlx::query("UPDATE inventory_webhooks SET active = 0 WHERE id = $1 AND active = 1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        sqlx::query(
            "UPDATE inventory_webhook_deliveries SET status = 'dropped' WHERE webhook_id = $1 AND status = 'pending'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether an active subscription has this id.
    pub async fn exists(&self, id: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query("SELECT 1 FROM inventory_webhooks WHERE id = $1 AND active = 1")
            .bind(id)
            .fetch_optional(self.db.reader())
            .await
            .map_err(err)?
            .is_some())
    }

    /// Deliveries of a subscription that failed every try, newest first.
    pub async fn dead_letters(&self, id: &str) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, sku, sequence, attempts, last_error FROM inventory_webhook_deliveries \
             WHERE webhook_id = $1 AND status = 'dead' ORDER BY created_at DESC, id LIMIT 1000",
        )
        .bind(id)
        .fetch_all(self.db.reader())
        .await
        .map_err(err)?;
        rows.into_iter()
            .map(|row| {
                Ok(DeadLetter {
                    id: row.try_get(0).map_err(err)?,
                    sku: row.try_get(1).map_err(err)?,
                    sequence: row.try_get(2).map_err(err)?,
                    attempts: row.try_get(3).map_err(err)?,
                    last_error: row.try_get(4).map_err(err)?,
                })
            })
            .collect()
    }

    /// Enqueues one delivery per active subscription for each SKU change (idempotent: the same
    /// change enqueued by several nodes is one row).
    pub async fn enqueue(&self, changes: &[(SkuId, u64)]) -> Result<usize, StoreError> {
        let hooks = self.active_with_secrets().await?;
        if hooks.is_empty() || changes.is_empty() {
            return Ok(0);
        }
        let now = self.clock.now_ms();
        let mut made = 0;
        let mut tx = self.db.begin().await?;
        for (hook, _) in &hooks {
            for (sku, sequence) in changes {
                let id = format!("{}:{}:{}", hook.id, sku, sequence);
                let done = sqlx::query(
                    "INSERT INTO inventory_webhook_deliveries \
                     (id, webhook_id, sku, sequence, attempts, next_at, claimed_until, status, last_error, created_at) \
                     VALUES ($1, $2, $3, $4, 0, $5, 0, 'pending', NULL, $5) ON CONFLICT (id) DO NOTHING",
                )
                .bind(&id)
                .bind(&hook.id)
                .bind(sku.as_str())
                .bind(*sequence as i64)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
                made += done.rows_affected() as usize;
            }
        }
        tx.commit().await.map_err(err)?;
        Ok(made)
    }
}

/// Follows `inventory.movement` and enqueues deliveries.
#[derive(Debug, Clone)]
pub struct WebhookFeed {
    webhooks: Webhooks,
}

impl WebhookFeed {
    /// Enqueues into `webhooks`.
    pub fn new(webhooks: Webhooks) -> Self {
        Self { webhooks }
    }
}

#[async_trait]
impl Projection for WebhookFeed {
    fn name(&self) -> &'static str {
        "inventory-webhooks"
    }

    fn topic(&self) -> &'static str {
        TOPIC
    }

    async fn rebuild(&self) -> anyhow::Result<u64> {
        Ok(0)
    }

    fn rebuild_covers_published(&self) -> bool {
        // What was published before this node started was enqueued by the node that was
        // running then (or is announced by the next change of the SKU).
        true
    }

    async fn apply(&self, batch: &[Envelope]) -> anyhow::Result<()> {
        // The last sequence of each SKU in the batch: one delivery announces its latest state.
        let mut latest: BTreeMap<SkuId, u64> = BTreeMap::new();
        for e in batch {
            match serde_json::from_str::<MovementMessage>(&e.payload) {
                Ok(m) => {
                    let seq = latest.entry(m.sku).or_insert(0);
                    *seq = (*seq).max(m.sequence);
                }
                Err(error) => tracing::warn!(%error, id = e.id, "unreadable inventory movement skipped by webhooks"),
            }
        }
        let changes: Vec<(SkuId, u64)> = latest.into_iter().collect();
        self.webhooks.enqueue(&changes).await?;
        Ok(())
    }
}

/// The signature header's value for `body` sent at `unix_seconds`.
pub fn signature(secret: &str, unix_seconds: i64, body: &str) -> String {
    crate::forward::sign(secret, unix_seconds, body.as_bytes())
}

/// Sends due deliveries.
#[derive(Clone)]
pub struct Deliverer {
    webhooks: Webhooks,
    inventory: Inventory,
    client: reqwest::Client,
    policy: RetryPolicy,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl Deliverer {
    /// Delivers `webhooks`' rows with availability read from `inventory`.
    pub fn new(webhooks: Webhooks, inventory: Inventory, policy: RetryPolicy) -> Self {
        let client = reqwest::Client::builder()
            .timeout(policy.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self { webhooks, inventory, client, policy }
    }

    /// Looks for due deliveries every `every` until aborted.
    pub async fn run(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.deliver_due().await {
                tracing::warn!(error = %e, "webhook deliveries failed; trying again");
            }
        }
    }

    /// Sends every due delivery once; returns how many were sent successfully.
    pub async fn deliver_due(&self) -> Result<usize, StoreError> {
        let db = &self.webhooks.db;
        let now = self.webhooks.clock.now_ms();
        let due = sqlx::query(
            "SELECT d.id, d.webhook_id, d.sku, d.attempts, d.sequence FROM inventory_webhook_deliveries d \
             WHERE d.status = 'pending' AND d.next_at <= $1 AND d.claimed_until < $1 ORDER BY d.next_at, d.id LIMIT 100",
        )
        .bind(now)
        .fetch_all(db.reader())
        .await
        .map_err(err)?;
        if due.is_empty() {
            return Ok(0);
        }
        let hooks: BTreeMap<String, (Webhook, String)> =
            self.webhooks.active_with_secrets().await?.into_iter().map(|(h, s)| (h.id.clone(), (h, s))).collect();
        let mut sent = 0;
        for row in due {
            let (id, hook_id, sku, attempts): (String, String, String, i64) = (
                row.try_get(0).map_err(err)?,
                row.try_get(1).map_err(err)?,
                row.try_get(2).map_err(err)?,
                row.try_get(3).map_err(err)?,
            );
            let sequence: i64 = row.try_get(4).map_err(err)?;
            // This node may not have seen the change yet (another node made it): catch up first,
            // so what is sent is at least that state.
            let known = self.inventory.read(|l| l.sku_sequence(&SkuId::new(sku.as_str())));
            if (known as i64) < sequence && self.inventory.refresh().await.is_err() {
                continue;
            }
            // Claim it: exactly one node wins each row.
            let lease = now + self.policy.timeout.as_millis() as i64 + 5_000;
            let claimed = sqlx::query(
                "UPDATE inventory_webhook_deliveries SET claimed_until = $1 \
                 WHERE id = $2 AND status = 'pending' AND claimed_until < $3",
            )
            .bind(lease)
            .bind(&id)
            .bind(now)
            .execute(db.writer())
            .await
            .map_err(err)?;
            if claimed.rows_affected() != 1 {
                continue;
            }
            let Some((hook, secret)) = hooks.get(&hook_id) else { continue };
            let outcome = self.send(&id, hook, secret, &SkuId::new(sku.as_str())).await;
            let now = self.webhooks.clock.now_ms();
            match outcome {
                Ok(sequence) => {
                    sent += 1;
                    sqlx::query("UPDATE inventory_webhook_deliveries SET status = 'delivered', attempts = attempts + 1 WHERE id = $1")
                        .bind(&id)
                        .execute(db.writer())
                        .await
                        .map_err(err)?;
                    // What this delivery sent covers every older change of the SKU.
                    sqlx::query(
                        "UPDATE inventory_webhook_deliveries SET status = 'superseded' \
                         WHERE webhook_id = $1 AND sku = $2 AND status = 'pending' AND sequence <= $3",
                    )
                    .bind(&hook_id)
                    .bind(&sku)
                    .bind(sequence as i64)
                    .execute(db.writer())
                    .await
                    .map_err(err)?;
                }
                Err(reason) => {
                    let tries = attempts + 1;
                    let dead = tries >= i64::from(self.policy.attempts);
                    let backoff = self.policy.first_backoff.as_millis() as i64 * (1_i64 << (tries - 1).clamp(0, 20));
                    sqlx::query(
                        "UPDATE inventory_webhook_deliveries SET attempts = $1, status = $2, last_error = $3, \
                         next_at = $4, claimed_until = 0 WHERE id = $5",
                    )
                    .bind(tries)
                    .bind(if dead { "dead" } else { "pending" })
                    .bind(reason.chars().take(500).collect::<String>())
                    .bind(now + backoff.min(3_600_000))
                    .bind(&id)
                    .execute(db.writer())
                    .await
                    .map_err(err)?;
                    if dead {
                        tracing::warn!(
                            webhook = hook_id,
                            delivery = id,
                            "webhook delivery dead after {tries} tries: {reason}"
                        );
                    }
                }
            }
        }
        Ok(sent)
    }

    /// One try: the SKU's availability on the hook's channels, signed. Returns the sequence sent.
    async fn send(&self, delivery: &str, hook: &Webhook, secret: &str, sku: &SkuId) -> Result<u64, String> {
        let now_ms = self.webhooks.clock.now_ms();
        let (sequence, channels) = self.inventory.read(|l| {
            let channels = hook
                .channels
                .iter()
                .map(|c| (c.to_string(), l.available(sku, c, now_ms).map(|a| a.available).unwrap_or(0)))
                .collect();
            (l.sku_sequence(sku), channels)
        });
        let body = AvailabilityChanged {
            type_: "inventory.availability".into(),
            delivery_id: delivery.to_owned(),
            sku_id: sku.clone(),
            sequence,
            channels,
            sent_at: dermis_core::clock::rfc3339(now_ms),
        };
        let body = serde_json::to_string(&body).map_err(|e| e.to_string())?;
        let res = self
            .client
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("dermis-signature", signature(secret, now_ms.div_euclid(1000), &body))
            .header("dermis-delivery", delivery)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if res.status().is_success() { Ok(sequence) } else { Err(format!("answered {}", res.status())) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_time_and_body() {
        // Reference: python3 -c "import hmac,hashlib;print(hmac.new(b'k',b'1700000000.{}',hashlib.sha256).hexdigest())"
        assert_eq!(
            signature("k", 1_700_000_000, "{}"),
            "t=1700000000,v1=c6ef4734033cee2367414a0939385eca0397754aa7a59716da7463a9298b5146"
        );
    }
}
