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
//! secret; what waits while a request is in flight goes together in the next) and catch up with
//! what it committed before they answer, so a caller still reads its own write at once on the
//! node it wrote through.
//!
//! The lease only routes; it guards nothing. When the holder provably did not take the requests
//! (no connection, a 4xx) a node writes them itself, as it did before leases, and the head's
//! compare-and-set keeps the writers from overselling while two of them write; a holder that lost
//! its lease is fenced the same way. When it may have taken them (a timeout, a 5xx) they are sent
//! again under the same keys (a key applied before answers its first outcome), and then, still
//! unanswered, the callers are told it is unconfirmed ([`Forward::Unknown`]) rather than
//! answered from this node's ledger: a refusal read here could contradict a success there.
//!
//! The ledger is one shard ([`SHARD`]): the lease is keyed by shard so the ledger could be split,
//! but one serialized state machine is what keeps a cart's lines and a kit's components atomic
//! without a protocol between writers (the reasons are in `docs/ARCHITECTURE.md`).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use dermis_core::clock::SharedClock;
use dermis_store::sqlx::{self, Row};
use dermis_store::{Db, StoreError};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::command::{Outcome, Rejection, Request};

/// The ledger's one shard: the key of its writer's lease.
pub const SHARD: &str = "ledger";

/// Where forwarded requests are applied, on the lease holder.
pub const PATH: &str = "/internal/inventory/apply";

/// The header carrying a forwarded request's signature (`t=UNIX_SECONDS,v1=HEX`, an HMAC-SHA256
/// of `t.body` with the cluster secret, as webhooks are signed).
pub const SIGNATURE_HEADER: &str = "x-dermis-node-signature";

/// On an error answer of the holder: nothing of the request is pending there (not applied, or its
/// batch failed and the store holds what was committed), so the sender may write it itself, fenced
/// by the head as any write. Without it, a 5xx may come while the holder's writer still has it.
pub const NOT_APPLIED_HEADER: &str = "x-dermis-not-applied";

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

/// What a node sends the lease holder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardedRequests {
    /// The requests, applied in order in one batch of the holder's writer.
    pub requests: Vec<Request>,
    /// The stored setup's version the sender has: a holder with an older one catches up first
    /// (a location or SKU just added on the sender is known when its requests are applied).
    pub setup_version: i64,
}

/// What the lease holder answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forwarded {
    /// One answer per request, in order.
    pub answers: Vec<Result<Outcome, Rejection>>,
    /// The store's batches the holder's ledger held once they were committed: the forwarding
    /// node catches up to at least this before it answers.
    pub batches: u64,
}

/// What became of a forwarded submission.
#[derive(Debug, Clone)]
pub enum Forward {
    /// The holder applied it (or answered a key's first outcome).
    Done(Forwarded),
    /// It never reached the holder, or the holder turned it away unapplied (unreachable, a
    /// refused signature, too large): the sender writes it itself.
    NotSent(String),
    /// Sent, but not answered (a timeout, a server error): the holder may have applied it.
    Unknown(String),
}

/// Most forwarded HTTP requests in flight from one node; submissions arriving meanwhile wait
/// and go together in the next one.
const MAX_IN_FLIGHT: usize = 4;

/// Most submissions sent in one HTTP request.
const MAX_SUBMISSIONS: usize = 256;

/// A submission waiting to be forwarded.
struct Pending {
    requests: Vec<Request>,
    setup_version: i64,
    reply: oneshot::Sender<Forward>,
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
    if now_secs.abs_diff(at) > SIGNATURE_WINDOW_SECS.unsigned_abs() {
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
    /// Until when (ms) the holder is taken as unreachable after it could not be reached or did
    /// not answer: this node writes itself meanwhile instead of waiting on it for every write.
    unreachable_until: AtomicI64,
    queue: mpsc::Sender<Pending>,
    /// The queue's other end, until the task sending what it holds starts.
    waiting: Mutex<Option<mpsc::Receiver<Pending>>>,
    forwarded: AtomicU64,
    fallbacks: AtomicU64,
    unknown: AtomicU64,
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
/// `inventory_forwarded_total`, `inventory_forward_fallbacks_total` and
/// `inventory_forward_unknown_total`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardStats {
    /// Submissions the lease holder applied for this node.
    pub forwarded: u64,
    /// Submissions written here after forwarding failed.
    pub fallbacks: u64,
    /// Submissions sent and not answered (the caller was told to retry).
    pub unknown: u64,
}

impl Forwarding {
    /// A node `node_id`, reached by other nodes at `url` (its base URL), sharing `secret` with
    /// them; its lease lives `ttl` unless renewed. Nothing runs until [`Forwarding::run`].
    /// The holder's answer is awaited 10 s at most.
    pub fn new(db: Db, clock: SharedClock, node_id: &str, url: &str, secret: &str, ttl: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(2))
            // Under the server's idle limit (`http.header_read_timeout_secs`, 20 s), so a kept
            // connection is not reused just as the holder closes it.
            .pool_idle_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(MAX_IN_FLIGHT)
            .build()
            .expect("a reqwest client with timeouts builds");
        let (queue, waiting) = mpsc::channel(4096);
        Self {
            db,
            clock,
            node_id: node_id.to_owned(),
            url: url.trim_end_matches('/').to_owned(),
            secret: secret.to_owned(),
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1),
            client,
            holder: RwLock::new(None),
            unreachable_until: AtomicI64::new(0),
            queue,
            waiting: Mutex::new(Some(waiting)),
            forwarded: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            unknown: AtomicU64::new(0),
        }
    }

    /// Takes or renews the lease (or learns who holds it) once.
    pub async fn renew(&self) -> Result<Holder, StoreError> {
        let holder = hold_or_read(&self.db, &self.node_id, &self.url, self.clock.now_ms(), self.ttl_ms).await?;
        let previous = self.holder.write().unwrap_or_else(PoisonError::into_inner).replace(holder.clone());
        if previous.is_some_and(|p| p.term != holder.term) {
            // A new holder: reachable until shown otherwise.
            self.unreachable_until.store(0, Ordering::Relaxed);
        }
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
        {
            let mut holder = self.holder.write().unwrap_or_else(PoisonError::into_inner);
            if holder.as_ref().is_some_and(|h| h.node_id == self.node_id) {
                // This node no longer writes as the holder; another holder is still forwarded to.
                *holder = None;
            }
        }
        // Given up in the store whatever the cache says (a no-op unless this node holds it).
        match tokio::time::timeout(Duration::from_secs(2), give_up(&self.db, &self.node_id)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "inventory writer lease not given up; it expires by itself"),
            Err(_) => tracing::warn!("inventory writer lease not given up in 2 s; it expires by itself"),
        }
    }

    /// Where writes go now: another node's base URL while it holds an unexpired lease, `None` when
    /// this node writes itself (it holds the lease, nobody does, or it is unknown).
    /// Also `None` for a while after the holder could not be reached.
    pub fn leader(&self) -> Option<String> {
        let now_ms = self.clock.now_ms();
        if self.unreachable_until.load(Ordering::Relaxed) > now_ms {
            return None;
        }
        let holder = self.holder.read().unwrap_or_else(PoisonError::into_inner);
        holder.as_ref().filter(|h| h.node_id != self.node_id && h.expires_at_ms > now_ms).map(|h| h.url.clone())
    }

    /// Takes the holder as unreachable for a third of the lease's time to live (the next renewal
    /// may show another holder): after a connection to it failed.
    fn unreachable(&self) {
        let until = self.clock.now_ms().saturating_add(self.ttl_ms / 3);
        self.unreachable_until.store(until, Ordering::Relaxed);
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
            unknown: self.unknown.load(Ordering::Relaxed),
        }
    }

    /// Counts a submission written here because forwarding it failed.
    pub(crate) fn fell_back(&self) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("inventory_forward_fallbacks_total").increment(1);
    }

    /// Sends a submission to the holder (with others waiting at the same time, in one HTTP
    /// request; at most [`MAX_IN_FLIGHT`] at once), `setup_version` being the sender's.
    pub async fn forward(self: &Arc<Self>, requests: Vec<Request>, setup_version: i64) -> Forward {
        let waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(waiting) = waiting {
            tokio::spawn(Arc::clone(self).pump(waiting));
        }
        let (reply, answer) = oneshot::channel();
        if self.queue.send(Pending { requests, setup_version, reply }).await.is_err() {
            return Forward::NotSent("forwarding has stopped".into());
        }
        answer.await.unwrap_or_else(|_| Forward::Unknown("the forwarding task stopped".into()))
    }

    /// Sends what waits in the queue: once a request slot is free, everything waiting by then
    /// goes in one HTTP request.
    async fn pump(self: Arc<Self>, mut waiting: mpsc::Receiver<Pending>) {
        let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut batch = Vec::with_capacity(MAX_SUBMISSIONS);
        loop {
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
            if waiting.recv_many(&mut batch, MAX_SUBMISSIONS).await == 0 {
                return;
            }
            let this = Arc::clone(&self);
            let pending = std::mem::take(&mut batch);
            tokio::spawn(async move {
                this.send_all(pending).await;
                drop(slot);
            });
        }
    }

    /// Sends `pending` as one request (once more when it went unanswered: the same keys answer
    /// their first outcome if it was applied) and answers each submission its part.
    async fn send_all(&self, pending: Vec<Pending>) {
        let Some(url) = self.leader() else {
            for p in pending {
                let _ = p.reply.send(Forward::NotSent("no other node holds the writer's lease now".into()));
            }
            return;
        };
        let sizes: Vec<usize> = pending.iter().map(|p| p.requests.len()).collect();
        let setup_version = pending.iter().map(|p| p.setup_version).max().unwrap_or(0);
        let (mut requests, mut replies) = (Vec::with_capacity(sizes.iter().sum()), Vec::with_capacity(pending.len()));
        for p in pending {
            requests.extend(p.requests);
            replies.push(p.reply);
        }
        let body = ForwardedRequests { requests, setup_version };
        let mut sent = self.send(&url, &body).await;
        if let Forward::Unknown(first) = &sent {
            tracing::warn!(reason = %first, "inventory writes forwarded and not answered; sending them again");
            sent = match self.send(&url, &body).await {
                // The first try may still be applied there: once unknown, never "not sent" (a
                // write here could answer a refusal the holder contradicts).
                Forward::NotSent(again) => Forward::Unknown(format!("{first}; then {again}")),
                other => other,
            };
        }
        match sent {
            Forward::Done(Forwarded { answers, batches }) => {
                self.forwarded.fetch_add(replies.len() as u64, Ordering::Relaxed);
                metrics::counter!("inventory_forwarded_total").increment(replies.len() as u64);
                let mut answers = answers.into_iter();
                for (size, reply) in sizes.into_iter().zip(replies) {
                    let part = answers.by_ref().take(size).collect();
                    let _ = reply.send(Forward::Done(Forwarded { answers: part, batches }));
                }
            }
            other => {
                if matches!(other, Forward::Unknown(_)) {
                    self.unknown.fetch_add(replies.len() as u64, Ordering::Relaxed);
                    metrics::counter!("inventory_forward_unknown_total").increment(replies.len() as u64);
                }
                for reply in replies {
                    let _ = reply.send(other.clone());
                }
            }
        }
    }

    /// One HTTP request to the holder at `url`.
    async fn send(&self, url: &str, body: &ForwardedRequests) -> Forward {
        let expected = body.requests.len();
        let body = match serde_json::to_vec(body) {
            Ok(body) => body,
            Err(e) => return Forward::NotSent(format!("the requests could not be serialized: {e}")),
        };
        let signature = sign(&self.secret, self.clock.now_ms().div_euclid(1000), &body);
        let response = self
            .client
            .post(format!("{url}{PATH}"))
            .header(SIGNATURE_HEADER, signature)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(e) if e.is_connect() => {
                self.unreachable();
                return Forward::NotSent(format!("the lease holder at {url} could not be reached: {e}"));
            }
            Err(e) => return Forward::Unknown(format!("the lease holder at {url} did not answer: {e}")),
        };
        let status = response.status();
        let not_applied = response.headers().contains_key(NOT_APPLIED_HEADER);
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let said =
                format!("the lease holder at {url} answered {status}: {}", text.chars().take(300).collect::<String>());
            // A 4xx is the holder turning the request away before applying anything; a 408 (its
            // own timeout) or a 5xx may come after its writer took the requests.
            return if not_applied || (status.is_client_error() && status != reqwest::StatusCode::REQUEST_TIMEOUT) {
                Forward::NotSent(said)
            } else {
                Forward::Unknown(said)
            };
        }
        match response.json::<Forwarded>().await {
            Ok(forwarded) if forwarded.answers.len() == expected => Forward::Done(forwarded),
            Ok(_) => Forward::Unknown(format!("the lease holder at {url} answered the wrong number of results")),
            Err(e) => Forward::Unknown(format!("the lease holder at {url} answered an unreadable body: {e}")),
        }
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
