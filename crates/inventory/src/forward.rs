//! One writer for a database that several nodes share: the writer's lease, and writes forwarded
//! to the node that holds it.
//!
//! Every Dermis node runs a ledger writer, and each is correct on its own when several share one
//! PostgreSQL (the journal head's compare-and-set, guarded balances; see [`crate::service`]). But
//! nodes that all write take turns on the head row, and every batch pays for catching up with the
//! others first: three writers together do less than one alone (`docs/benchmarks.md`). So nodes
//! given a cluster secret compete for a lease on the ledger (a row in `inventory_writer_lease`,
//! renewed every third of its time to live); the holder's writer applies every batch, and the
//! other nodes send their requests to it (`POST /internal/inventory/apply`, signed with the
//! secret) and catch up with what it committed before they answer, so a caller still reads its own
//! write at once on the node it wrote through.
//!
//! The lease only routes; it guards nothing. When the holder cannot be reached (down, restarting,
//! partitioned) a node writes itself at once, as it did before leases, and the head's
//! compare-and-set keeps the writers from overselling while two of them write; a holder that lost
//! its lease is fenced the same way. A request forwarded and then written here again (the answer
//! was lost) is one command: its idempotency key makes the second an answer of the first.
//!
//! The ledger is one shard ([`SHARD`]): the lease is keyed by shard so the ledger could be split,
//! but one serialized state machine is what keeps a cart's lines and a kit's components atomic
//! without a protocol between writers (the reasons are in `docs/ARCHITECTURE.md`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use dermis_core::clock::SharedClock;
use dermis_store::sqlx::{self, Row};
use dermis_store::{Db, StoreError};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::command::{Outcome, Rejection, Request};

/// The ledger's one shard: the key of its writer's lease.
pub const SHARD: &str = "ledger";

/// Where forwarded requests are applied, on the lease holder.
pub const PATH: &str = "/internal/inventory/apply";

/// The header carrying a forwarded request's signature (`t=UNIX_SECONDS,v1=HEX`, an HMAC-SHA256
/// of `t.body` with the cluster secret, as webhooks are signed).
pub const SIGNATURE_HEADER: &str = "x-dermis-node-signature";

/// How far a signature's time may be from the receiver's clock, in seconds.
pub const SIGNATURE_WINDOW_SECS: i64 = 300;

/// Who holds the writer's lease, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The holding node.
    pub node_id: String,
    /// Where other nodes reach it.
    pub url: String,
    /// Until when (ms since the epoch) it holds the lease unless it renews.
    pub expires_at_ms: i64,
    /// Moves each time the lease changes hands.
    pub term: i64,
}

/// Takes the lease for `node_id` when it is free or expired, renews it when `node_id` holds it,
/// and returns whoever holds it now.
pub async fn hold_or_read(db: &Db, node_id: &str, url: &str, now_ms: i64, ttl_ms: i64) -> Result<Holder, StoreError> {
    sqlx::query(
        "INSERT INTO inventory_writer_lease (shard, node_id, url, expires_at_ms, term) VALUES ($1, $2, $3, $4, 1) \
         ON CONFLICT (shard) DO UPDATE SET node_id = excluded.node_id, url = excluded.url, \
           expires_at_ms = excluded.expires_at_ms, \
           term = CASE WHEN inventory_writer_lease.node_id = excluded.node_id \
                  THEN inventory_writer_lease.term ELSE inventory_writer_lease.term + 1 END \
         WHERE inventory_writer_lease.node_id = excluded.node_id OR inventory_writer_lease.expires_at_ms <= $5",
    )
    .bind(SHARD)
    .bind(node_id)
    .bind(url)
    .bind(now_ms.saturating_add(ttl_ms))
    .bind(now_ms)
    .execute(db.writer())
    .await?;
    let row = sqlx::query("SELECT node_id, url, expires_at_ms, term FROM inventory_writer_lease WHERE shard = $1")
        .bind(SHARD)
        .fetch_one(db.writer())
        .await?;
    Ok(Holder { node_id: row.try_get(0)?, url: row.try_get(1)?, expires_at_ms: row.try_get(2)?, term: row.try_get(3)? })
}

/// Gives the lease up when `node_id` holds it (a node stopping): another node takes it at once
/// instead of after its time to live.
pub async fn give_up(db: &Db, node_id: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE inventory_writer_lease SET expires_at_ms = 0 WHERE shard = $1 AND node_id = $2")
        .bind(SHARD)
        .bind(node_id)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// What the lease holder answers a forwarded submission.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forwarded {
    /// One answer per request, in order.
    pub answers: Vec<Result<Outcome, Rejection>>,
    /// The holder's journal length once they were committed: the forwarding node catches up to
    /// at least this before it answers.
    pub movements: u64,
}

/// A signature of `body` at `unix_seconds` with `secret`.
pub fn sign(secret: &str, unix_seconds: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={unix_seconds},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` signs `body` with `secret` within [`SIGNATURE_WINDOW_SECS`] of `now_secs`
/// (compared in constant time).
pub fn verify(secret: &str, header: &str, body: &[u8], now_secs: i64) -> bool {
    let (mut at, mut tag) = (None, None);
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => at = v.parse::<i64>().ok(),
            Some(("v1", v)) => tag = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(at), Some(tag)) = (at, tag) else { return false };
    if (now_secs - at).abs() > SIGNATURE_WINDOW_SECS {
        return false;
    }
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(at.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

/// How this node routes its writes: the lease it competes for, the holder it last saw, and the
/// client it forwards with.
pub struct Forwarding {
    db: Db,
    clock: SharedClock,
    node_id: String,
    url: String,
    secret: String,
    ttl_ms: i64,
    client: reqwest::Client,
    holder: RwLock<Option<Holder>>,
    forwarded: AtomicU64,
    fallbacks: AtomicU64,
}

impl std::fmt::Debug for Forwarding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarding")
            .field("node_id", &self.node_id)
            .field("url", &self.url)
            .field("ttl_ms", &self.ttl_ms)
            .finish_non_exhaustive()
    }
}

/// How many submissions this node forwarded, and how many it wrote itself because the holder
/// could not be reached ([`crate::Inventory::forwarding_stats`]; in `/metrics` as
/// `inventory_forwarded_total` and `inventory_forward_fallbacks_total`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardStats {
    /// Submissions the lease holder applied for this node.
    pub forwarded: u64,
    /// Submissions written here after forwarding failed.
    pub fallbacks: u64,
}

impl Forwarding {
    /// A node `node_id`, reached by other nodes at `url` (its base URL), sharing `secret` with
    /// them; its lease lives `ttl` unless renewed. Nothing runs until [`Forwarding::run`].
    pub fn new(db: Db, clock: SharedClock, node_id: &str, url: &str, secret: &str, ttl: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(2))
            .pool_max_idle_per_host(64)
            .build()
            .expect("a reqwest client with timeouts builds");
        Self {
            db,
            clock,
            node_id: node_id.to_owned(),
            url: url.trim_end_matches('/').to_owned(),
            secret: secret.to_owned(),
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1),
            client,
            holder: RwLock::new(None),
            forwarded: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
        }
    }

    /// Takes or renews the lease (or learns who holds it) once.
    pub async fn renew(&self) -> Result<Holder, StoreError> {
        let holder = hold_or_read(&self.db, &self.node_id, &self.url, self.clock.now_ms(), self.ttl_ms).await?;
        *self.holder.write().unwrap_or_else(PoisonError::into_inner) = Some(holder.clone());
        Ok(holder)
    }

    /// Renews every third of the lease's time to live, until the task is dropped or aborted.
    pub async fn run(&self) {
        let every = Duration::from_millis(u64::try_from(self.ttl_ms / 3).unwrap_or(1).max(1));
        loop {
            match self.renew().await {
                Ok(holder) if holder.node_id == self.node_id => {
                    tracing::trace!(term = holder.term, "inventory writer lease held")
                }
                Ok(holder) => tracing::trace!(holder = holder.node_id, "inventory writes go to the lease holder"),
                // What was last seen stays good until it expires.
                Err(e) => tracing::warn!(error = %e, "inventory writer lease not renewed"),
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Gives the lease up if this node holds it (when stopping).
    pub async fn step_down(&self) {
        *self.holder.write().unwrap_or_else(PoisonError::into_inner) = None;
        if let Err(e) = give_up(&self.db, &self.node_id).await {
            tracing::warn!(error = %e, "inventory writer lease not given up; it expires by itself");
        }
    }

    /// Where writes go now: another node's base URL while it holds an unexpired lease, `None` when
    /// this node writes itself (it holds the lease, nobody does, or it is unknown).
    pub fn leader(&self) -> Option<String> {
        let now_ms = self.clock.now_ms();
        let holder = self.holder.read().unwrap_or_else(PoisonError::into_inner);
        holder.as_ref().filter(|h| h.node_id != self.node_id && h.expires_at_ms > now_ms).map(|h| h.url.clone())
    }

    /// The shared secret forwarded requests are signed with.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Counts of forwarded submissions and fallbacks so far.
    pub fn stats(&self) -> ForwardStats {
        ForwardStats {
            forwarded: self.forwarded.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
        }
    }

    /// Counts a submission written here because forwarding it failed.
    pub(crate) fn fell_back(&self) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("inventory_forward_fallbacks_total").increment(1);
    }

    /// Sends `requests` to the holder at `url` and returns its answers, one per request; an error
    /// (unreachable, refused, not persisted there, an answer of the wrong shape) when the caller
    /// should write them itself.
    pub async fn send(&self, url: &str, requests: &[Request]) -> Result<Forwarded, String> {
        let body = serde_json::to_vec(requests).map_err(|e| e.to_string())?;
        let signature = sign(&self.secret, self.clock.now_ms().div_euclid(1000), &body);
        let response = self
            .client
            .post(format!("{url}{PATH}"))
            .header(SIGNATURE_HEADER, signature)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("the lease holder at {url} could not be reached: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(format!(
                "the lease holder at {url} answered {status}: {}",
                text.chars().take(300).collect::<String>()
            ));
        }
        let forwarded: Forwarded =
            response.json().await.map_err(|e| format!("the lease holder at {url} answered an unreadable body: {e}"))?;
        if forwarded.answers.len() != requests.len() {
            return Err(format!(
                "the lease holder at {url} answered {} results for {} requests",
                forwarded.answers.len(),
                requests.len()
            ));
        }
        self.forwarded.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("inventory_forwarded_total").increment(1);
        Ok(forwarded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_with_its_secret_body_and_time() {
        let header = sign("s3cret", 1_000, b"[1]");
        assert!(verify("s3cret", &header, b"[1]", 1_000));
        assert!(verify("s3cret", &header, b"[1]", 1_000 + SIGNATURE_WINDOW_SECS));
        assert!(!verify("s3cret", &header, b"[2]", 1_000), "another body");
        assert!(!verify("other", &header, b"[1]", 1_000), "another secret");
        assert!(!verify("s3cret", &header, b"[1]", 1_000 + SIGNATURE_WINDOW_SECS + 1), "too old");
        assert!(!verify("s3cret", "t=1000", b"[1]", 1_000), "no tag");
        assert!(!verify("s3cret", "v1=zz,t=1000", b"[1]", 1_000), "a tag that is not hex");
    }
}
