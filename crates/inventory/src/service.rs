//! The inventory service: the one writer of the ledger, and in-process reads.
//!
//! Every change goes to ONE writer task through a queue. The writer takes what is queued (up to
//! [`WriterOptions::max_batch`] submissions), applies it to its in-memory [`Ledger`] as one batch,
//! persists the batch in ONE transaction ([`store::persist`]), and only then answers the callers.
//! If the transaction fails, every caller of the batch gets [`InventoryError::NotPersisted`] and
//! the writer rebuilds its ledger from the store (so a commit that failed only in its
//! acknowledgement is not lost either); until that succeeds it refuses writes. No caller is ever
//! told that something happened which is not durable.
//!
//! Reads ([`Inventory::available`], [`Inventory::read`]) come from a second in-memory copy that
//! only ever holds committed batches: after a commit the writer swaps its ledger with the readers'
//! (an O(1) swap under the lock, so a read never waits for a batch to be applied), answers, and
//! then brings the readers' old copy, now its own, up to date by replaying the batch's outcomes
//! on it ([`Ledger::replay`]: the same state as applying the commands, without running their
//! rules again) before it takes the next batch. A
//! caller that got an answer therefore reads its own write at once, and nobody reads a change
//! that may still be rolled back. The price is applying each batch once and replaying it once, and
//! holding the ledger twice in memory.
//!
//! Batches are as large as the queue allows: before taking the next batch the writer yields (up
//! to `MAX_YIELDS` times, and no more once a yield brought nobody) until as many submissions
//! wait as the last batch had, so the callers it just answered, who usually submit again at
//! once, make it into that batch.
//!
//! # One writer per database, others catching up
//! There is one writer task for all SKUs of a process, and it keeps its ledger in memory. Several
//! processes may share one database safely: every batch moves the journal's head row from the
//! last movement and the batch count this writer knows (a compare-and-set), so a stale writer's
//! batch is refused ([`InventoryError::StaleLedger`]); balances only decrease through guarded
//! updates and `CHECK` constraints; journal ids and idempotency keys are unique. A refused writer
//! catches up by replaying the batches the others committed since ([`store::load_since`]: their
//! applied commands and outcomes, numbered by batch) on both of its ledgers, and applies its
//! batch again; [`Inventory::refresh`] (called by [`crate::events::Follower`] when the bus shows
//! another process's movements) does the same for reads, taking the setup in force first when
//! another process extended it. It reloads the whole ledger only when replaying is not safe
//! (rows stored by a version before batches were numbered, rows that do not follow the journal,
//! a stored setup that is not this one extended) and, as before, after a failed transaction or a
//! balance guard's refusal. On PostgreSQL, writers that have seen each other take turns (see
//! [`store::take_writers_turn`]). A batch that writes nothing (all refused) is not fenced by the
//! head, so once another writer has been seen it is answered only after the head shows this
//! ledger is current, and as "not persisted" when that cannot be shown: no false "out of stock"
//! from a release the process has not seen. Several processes writing the same SKUs still take turns
//! on the head row: it is correct, not fast (figures in `docs/benchmarks.md`); with a cluster
//! secret they keep one writer instead and forward their writes to it ([`crate::forward`]).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use dermis_core::clock::SharedClock;
use dermis_store::sqlx::{Any, Transaction};
use dermis_store::{Backend, Db};
use tokio::sync::{mpsc, oneshot};

use crate::command::{Outcome, Rejection, Request};
use crate::error::InventoryError;
use crate::forward::{Forward, ForwardStats, Forwarding};
use crate::ledger::{Availability, Ledger};
use crate::model::{Channel, Setup, SkuId};
use crate::store;

/// How the writer batches.
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// Most submissions applied and persisted as one batch (one transaction).
    pub max_batch: usize,
    /// Submissions that may wait in the queue; further callers wait for room.
    pub queue: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self { max_batch: 256, queue: 4096 }
    }
}

/// The answer to a submission: one result per request, in order.
pub type Answers = Vec<Result<Outcome, Rejection>>;

/// The inventory ledger as a service: durable writes through one batching writer, reads from
/// memory. Cheap to clone; the writer stops when the last clone is dropped.
#[derive(Clone)]
pub struct Inventory {
    jobs: mpsc::Sender<Job>,
    committed: Arc<RwLock<Ledger>>,
    clock: SharedClock,
    sync: Arc<SyncCounters>,
    /// Set when this node shares the database with others and routes its writes to the lease
    /// holder ([`Inventory::forward_through`]).
    forwarding: Arc<OnceLock<Arc<Forwarding>>>,
}

/// How this process's ledger kept up with what other processes sharing the database wrote
/// ([`Inventory::sync_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Batches of other processes replayed from the store (the cheap way: their rows only).
    pub replayed_batches: u64,
    /// Whole reloads of the ledger from the store (after a failed transaction, a changed setup,
    /// or rows that could not be replayed).
    pub reloads: u64,
}

#[derive(Debug, Default)]
struct SyncCounters {
    replayed_batches: AtomicU64,
    reloads: AtomicU64,
    /// The writer's count of committed batches (the head's), as of its last change.
    batches: AtomicU64,
    /// The writer's setup version, as of its last change.
    setup_version: AtomicI64,
    /// Check a batch of refusals against the head even before another writer was seen (set with
    /// forwarding: a node that fell back may have written what this one has not seen).
    check_refusals: AtomicBool,
}

impl std::fmt::Debug for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inventory").field("clock", &self.clock).finish_non_exhaustive()
    }
}

/// How often a batch refused because another process moved the store first is applied again.
const MAX_ATTEMPTS: u32 = 8;

/// Where the writer answers a submission.
type Reply = oneshot::Sender<Result<Answers, InventoryError>>;

/// What callers ask the writer.
enum Job {
    Apply {
        requests: Vec<Request>,
        reply: Reply,
    },
    ExtendSetup {
        more: Setup,
        reply: oneshot::Sender<Result<(), InventoryError>>,
    },
    /// Catch up with the store; with `at_least`, only when fewer batches than that are known.
    Refresh {
        at_least: Option<u64>,
        reply: oneshot::Sender<Result<(), InventoryError>>,
    },
}

impl Inventory {
    /// Loads the ledger from `db` (migrated with [`crate::MIGRATIONS`]) and starts its writer.
    /// Must be called inside a Tokio runtime.
    pub async fn open(db: Db, clock: SharedClock) -> Result<Self, InventoryError> {
        Self::open_with(db, clock, WriterOptions::default()).await
    }

    /// [`Inventory::open`] with batching options.
    pub async fn open_with(db: Db, clock: SharedClock, options: WriterOptions) -> Result<Self, InventoryError> {
        let stored = store::load(&db).await?;
        let batches = stored.batches;
        let setup_version = stored.setup_version;
        let ledger = stored.restore()?;
        let sync = Arc::new(SyncCounters::default());
        sync.batches.store(batches, Ordering::Relaxed);
        sync.setup_version.store(setup_version, Ordering::Relaxed);
        let committed = Arc::new(RwLock::new(ledger.clone()));
        let (jobs, queue) = mpsc::channel(options.queue.max(1));
        let writer = Writer {
            db,
            clock: clock.clone(),
            working: ledger,
            committed: committed.clone(),
            stale: false,
            batches,
            setup_version,
            shared: false,
            max_batch: options.max_batch.max(1),
            sync: sync.clone(),
        };
        tokio::spawn(writer.run(queue));
        Ok(Self { jobs, committed, clock, sync, forwarding: Arc::default() })
    }

    /// Applies one request durably: its outcome or rejection once the batch it went in is
    /// committed. A key applied before answers its first outcome again (`replayed`).
    pub async fn submit(&self, request: Request) -> Result<Result<Outcome, Rejection>, InventoryError> {
        let mut answers = self.submit_all(vec![request]).await?;
        answers.pop().ok_or(InventoryError::WriterStopped)
    }

    /// Applies several requests in order, in the same batch and so in the same transaction (a POS
    /// sync's receipts): all are durable, or the call fails and none was applied (but for
    /// [`InventoryError::Unconfirmed`], which may have been: retry with the same keys).
    ///
    /// When another node holds the writer's lease ([`crate::forward`]), they are sent to it, and
    /// this node catches up with what it committed before answering (a caller reads its own write
    /// at once here too); when it cannot be reached, they are applied here.
    pub async fn submit_all(&self, requests: Vec<Request>) -> Result<Answers, InventoryError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(forwarding) = self.forwarding.get()
            && forwarding.leader().is_some()
        {
            let setup_version = self.sync.setup_version.load(Ordering::Acquire);
            match forwarding.forward(requests.clone(), setup_version).await {
                Forward::Done(forwarded) => {
                    if let Err(e) = self.catch_up_to(forwarded.batches).await {
                        // Durable on the holder all the same: the answer stands, and this node's
                        // reads catch up with the next refresh.
                        tracing::warn!(error = %e, "inventory reads not caught up after a forwarded write");
                    }
                    return Ok(forwarded.answers);
                }
                Forward::NotSent(reason) => {
                    // The holder never applied them: this node writes them itself (the head's
                    // compare-and-set keeps two writers correct).
                    forwarding.fell_back();
                    tracing::warn!(%reason, "inventory write not forwarded; writing it here");
                }
                Forward::Unknown(reason) => {
                    // Sent, and not answered: the holder may have applied them. Written here too,
                    // a refusal read from this node's ledger could contradict what the holder
                    // did (refusals are not kept under their keys); the caller retries instead.
                    return Err(InventoryError::Unconfirmed { reason });
                }
            }
        }
        self.submit_here(requests).await
    }

    /// Applies requests with this node's own writer, never forwarding them (what the lease holder
    /// does with requests forwarded to it).
    pub async fn submit_here(&self, requests: Vec<Request>) -> Result<Answers, InventoryError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job::Apply { requests, reply }).await.map_err(|_| InventoryError::WriterStopped)?;
        answer.await.map_err(|_| InventoryError::WriterStopped)?
    }

    /// Adds SKUs, kits, locations or channel policies, durably (nothing already defined may
    /// change but a channel's policy, which a new one replaces).
    pub async fn extend_setup(&self, more: Setup) -> Result<(), InventoryError> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job::ExtendSetup { more, reply }).await.map_err(|_| InventoryError::WriterStopped)?;
        answer.await.map_err(|_| InventoryError::WriterStopped)?
    }

    /// The sweeper: every `every`, when a live hold's deadline has passed, returns what expired
    /// holds kept to stock (an `ExpireDue` command). Reads ignore expired holds before that; the
    /// sweep makes the journal and the balances say so too. Runs until the writer stops.
    pub async fn run_sweeper(self, every: std::time::Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now_ms = self.clock.now_ms();
            // Another node holds the writer's lease: its sweeper does the sweeping.
            let elsewhere = self.forwarding.get().is_some_and(|f| f.leader().is_some());
            if elsewhere || self.read(|l| l.next_deadline()).is_none_or(|at| at > now_ms) {
                continue;
            }
            let key = format!("sweep:{now_ms}:{}", ulid::Ulid::new());
            match self.submit(Request::new(key, "sweeper", crate::Command::ExpireDue)).await {
                Ok(Ok(outcome)) => {
                    if let crate::Effect::Expired { reservations } = &outcome.effect {
                        tracing::debug!(expired = reservations.len(), "inventory holds expired");
                    }
                }
                Ok(Err(rejection)) => tracing::warn!(%rejection, "inventory sweep refused"),
                Err(InventoryError::WriterStopped) => return,
                Err(e) => tracing::warn!(error = %e, "inventory sweep not persisted; trying again later"),
            }
        }
    }

    /// Brings the ledger up to the store: what another process sharing the database wrote
    /// becomes visible to this one's reads (its writes see it anyway: they are fenced). The
    /// batches committed since are replayed from their rows; only when they cannot be (the
    /// setup changed, rows from an older version) is the whole ledger reloaded.
    pub async fn refresh(&self) -> Result<(), InventoryError> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job::Refresh { at_least: None, reply }).await.map_err(|_| InventoryError::WriterStopped)?;
        answer.await.map_err(|_| InventoryError::WriterStopped)?
    }

    /// [`Inventory::refresh`] unless the readers' ledger already holds the first `batches`
    /// batches of the store (many forwarded answers arriving together cost one read of it).
    pub async fn catch_up_to(&self, batches: u64) -> Result<(), InventoryError> {
        if self.batches() >= batches {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Refresh { at_least: Some(batches), reply })
            .await
            .map_err(|_| InventoryError::WriterStopped)?;
        answer.await.map_err(|_| InventoryError::WriterStopped)?
    }

    /// How many batches of the store this node's ledger holds (the journal head's counter as the
    /// writer knows it): a write answered by the writer is in the batches up to this.
    pub fn batches(&self) -> u64 {
        self.sync.batches.load(Ordering::Acquire)
    }

    /// The version of the stored setup this node's ledger has.
    pub fn setup_version(&self) -> i64 {
        self.sync.setup_version.load(Ordering::Acquire)
    }

    /// Routes this node's writes to the holder of the writer's lease from now on (set once; the
    /// caller runs [`Forwarding::run`] to keep the lease). `false` when already set.
    pub fn forward_through(&self, forwarding: Arc<Forwarding>) -> bool {
        // Another node may write (one that could not reach the holder): a batch of refusals is
        // checked against the store's head before it is answered.
        self.sync.check_refusals.store(true, Ordering::Release);
        self.forwarding.set(forwarding).is_ok()
    }

    /// This node's forwarding, when it shares the database with others.
    pub fn forwarding(&self) -> Option<&Arc<Forwarding>> {
        self.forwarding.get()
    }

    /// How many submissions went to the lease holder, and how many were written here because it
    /// could not be reached (zeros without forwarding).
    pub fn forwarding_stats(&self) -> ForwardStats {
        self.forwarding.get().map(|f| f.stats()).unwrap_or_default()
    }

    /// What `channel` can sell of `sku` now, from memory (no database access). Reflects every
    /// committed batch, including the caller's own last write.
    pub fn available(&self, sku: &SkuId, channel: &Channel) -> Result<Availability, Rejection> {
        let now_ms = self.clock.now_ms();
        self.read(|ledger| ledger.available(sku, channel, now_ms))
    }

    /// How often this process caught up with other processes' batches, and how.
    pub fn sync_stats(&self) -> SyncStats {
        SyncStats {
            replayed_batches: self.sync.replayed_batches.load(Ordering::Relaxed),
            reloads: self.sync.reloads.load(Ordering::Relaxed),
        }
    }

    /// Reads the committed ledger (balances, records, journal, recall, expiry...). `read` holds a
    /// lock the writer needs after each commit: keep `f` short.
    pub fn read<T>(&self, f: impl FnOnce(&Ledger) -> T) -> T {
        f(&self.committed.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The writer task's state.
struct Writer {
    db: Db,
    clock: SharedClock,
    /// The ledger batches are applied to before they are persisted.
    working: Ledger,
    /// The readers' ledger: committed batches only.
    committed: Arc<RwLock<Ledger>>,
    /// A transaction failed and the ledger has not been rebuilt from the store since.
    stale: bool,
    /// Batches committed to the store, as this writer knows it (the head row's counter).
    batches: u64,
    /// The stored setup's version this writer's setup is.
    setup_version: i64,
    /// Another process has been seen writing the same tables (its batches replayed here, or this
    /// writer fenced out by it).
    shared: bool,
    max_batch: usize,
    sync: Arc<SyncCounters>,
}

/// Most yields of the writer waiting for the last batch's callers to submit again.
const MAX_YIELDS: usize = 8;

impl Writer {
    async fn run(mut self, mut queue: mpsc::Receiver<Job>) {
        let mut jobs = Vec::with_capacity(self.max_batch);
        let mut last = 0;
        loop {
            // The callers the last batch answered usually submit again at once: yielding lets
            // them queue before the next batch is taken, so batches stay large when busy. It
            // yields until as many submissions wait as the last batch had (at most
            // [`MAX_YIELDS`] times, and not again after a yield that brought nobody: no timer,
            // and on a runtime busy with other work a yield may cost many other tasks' turns).
            for _ in 0..MAX_YIELDS {
                let waiting = queue.len();
                if waiting >= last.min(self.max_batch) && waiting > 0 {
                    break;
                }
                tokio::task::yield_now().await;
                if queue.len() == waiting {
                    // Nobody came during that yield: the rest are not coming at once.
                    break;
                }
            }
            last = queue.recv_many(&mut jobs, self.max_batch).await;
            if last == 0 {
                break;
            }
            let mut batch = Vec::new();
            for job in jobs.drain(..) {
                match job {
                    Job::Apply { requests, reply } => batch.push((requests, reply)),
                    Job::ExtendSetup { more, reply } => {
                        // Requests queued before the setup change are applied before it.
                        self.apply(std::mem::take(&mut batch)).await;
                        let _ = reply.send(self.extend_setup(more).await);
                    }
                    Job::Refresh { at_least, reply } => {
                        self.apply(std::mem::take(&mut batch)).await;
                        // Several forwarded answers catching up at once: the first one's read
                        // brings the ledger past the others'.
                        let current = at_least.is_some_and(|n| self.batches >= n && !self.stale);
                        let _ = reply.send(if current { Ok(()) } else { self.refresh().await });
                    }
                }
            }
            self.apply(batch).await;
        }
    }

    /// Applies a batch, persists it, then answers.
    async fn apply(&mut self, batch: Vec<(Vec<Request>, Reply)>) {
        if batch.is_empty() {
            return;
        }
        let mut sizes = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        let mut requests = Vec::new();
        for (submitted, reply) in batch {
            sizes.push(submitted.len());
            replies.push(reply);
            requests.extend(submitted);
        }
        // Another process writing the same tables makes this writer's ledger stale: its batch is
        // refused by the journal's head row (or a balance guard), the ledger catches up (or is
        // reloaded), and the batch is applied again to what the store now holds, a few times at
        // most. Once another writer has been seen, on PostgreSQL, the batch's transaction first
        // waits for the writers' turn and catches up inside it, so it is not refused at all.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let turn = match self.ensure_fresh().await {
                Ok(()) if self.shared && self.db.backend() == Backend::Postgres => self.take_turn().await,
                Ok(()) => Ok(None),
                Err(e) => Err(e),
            };
            let turn = match turn {
                Ok(turn) => turn,
                Err(e) => {
                    let reason = format!("the ledger could not be brought up to the store: {e}");
                    not_persisted(replies, &reason);
                    return;
                }
            };
            let now_ms = self.clock.now_ms();
            let head = self.working.journal().len() as u64;
            let results = self.working.apply(requests.clone(), now_ms);
            let applied: Vec<_> = requests
                .iter()
                .zip(&results)
                .filter_map(|(request, result)| match result {
                    Ok(outcome) if !outcome.replayed => Some((&request.command, outcome)),
                    _ => None,
                })
                .collect();
            // A batch that writes nothing is not fenced by the head: on a database another
            // process writes too, a refusal read from a ledger behind the store (a release it has
            // not seen) would be a false "out of stock". So, once another writer has been seen,
            // such a batch is answered only after the head shows the ledger is current; when
            // that cannot be shown, its callers are told nothing was done rather than refused.
            let others = self.shared || self.sync.check_refusals.load(Ordering::Acquire);
            if applied.is_empty() && others && turn.is_none() && results.iter().any(Result::is_err) {
                let unshown = match store::head(&self.db).await {
                    Ok(stored) if stored == (head, self.batches) => None,
                    Ok(_) if attempts < MAX_ATTEMPTS => {
                        self.start_over();
                        self.catch_up_or_reload().await;
                        continue;
                    }
                    Ok(_) => Some("the store kept moving while the refusals were checked".to_owned()),
                    Err(e) => Some(format!("the refusals could not be checked against the store: {e}")),
                };
                if let Some(reason) = unshown {
                    // The working copy applied refusals only (no change but its clock): it starts
                    // again from the readers' copy all the same.
                    self.start_over();
                    not_persisted(replies, &reason);
                    return;
                }
            }
            let persisted = match (applied.is_empty(), turn) {
                (true, Some(tx)) => {
                    // Nothing to write: the turn is given back at once (see `persist_in`).
                    let _ = tx.rollback().await;
                    Ok(false)
                }
                (true, None) => Ok(false),
                (false, Some(tx)) => self.persist_in(tx, &applied, head, now_ms).await.map(|()| true),
                (false, None) => self.persist(&applied, head, now_ms).await.map(|()| true),
            };
            drop(applied);
            match persisted {
                Ok(wrote) => {
                    if wrote {
                        self.batches += 1;
                    }
                    // The working ledger now holds exactly what is committed: the readers get it
                    // by a swap under the lock (readers never wait for a batch to be applied),
                    // then the callers are answered. The readers' old copy, one batch behind,
                    // becomes the working ledger and catches up by replaying the batch's outcomes
                    // before the next batch is taken.
                    std::mem::swap(
                        &mut *self.committed.write().unwrap_or_else(PoisonError::into_inner),
                        &mut self.working,
                    );
                    self.publish();
                    let mut answers = results.clone().into_iter();
                    for (size, reply) in sizes.into_iter().zip(replies) {
                        let _ = reply.send(Ok(answers.by_ref().take(size).collect()));
                    }
                    // The old copy catches up from the outcomes, without running the commands'
                    // rules again (`Ledger::replay`: the same state).
                    self.working.replay(requests, results, now_ms);
                    return;
                }
                Err(e @ InventoryError::StaleLedger { .. }) if attempts < MAX_ATTEMPTS => {
                    // Another process committed first. The working ledger holds the refused batch:
                    // it starts again from the readers' copy (what this writer committed), both
                    // catch up with the store by replaying the other's batches, and the batch is
                    // applied again to that.
                    tracing::debug!(error = %e, attempts, "inventory batch refused by the store; catching up and retrying");
                    self.shared = true;
                    self.start_over();
                    self.catch_up_or_reload().await;
                }
                Err(e @ InventoryError::Overdrawn { .. }) if attempts < MAX_ATTEMPTS => {
                    tracing::debug!(error = %e, attempts, "inventory batch refused by the store; reloading and retrying");
                    self.stale = true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, requests = requests.len(), "inventory batch not persisted; reloading the ledger");
                    self.stale = true;
                    if let Err(reload) = self.ensure_fresh().await {
                        tracing::warn!(error = %reload, "inventory ledger not reloaded; writes wait for the store");
                    }
                    let reason = e.to_string();
                    not_persisted(replies, &reason);
                    return;
                }
            }
        }
    }

    /// Brings both ledgers up to the store now (another process wrote to it).
    async fn refresh(&mut self) -> Result<(), InventoryError> {
        self.ensure_fresh().await?;
        self.catch_up_or_reload().await;
        self.ensure_fresh().await
    }

    /// The working copy starts again from the readers' copy (what this writer committed): after
    /// a batch was refused, or answered without being written.
    fn start_over(&mut self) {
        self.working = self.committed.read().unwrap_or_else(PoisonError::into_inner).clone();
    }

    /// [`Writer::catch_up`], or, when the store could not be read, the ledger marked for a whole
    /// reload before the next batch.
    async fn catch_up_or_reload(&mut self) {
        if let Err(e) = self.catch_up().await {
            tracing::warn!(error = %e, "inventory ledger could not catch up; reloading it");
            self.stale = true;
        }
    }

    /// Replays on both ledgers, which must both hold exactly this writer's committed batches,
    /// the batches other processes committed since ([`store::load_since`]); marks the ledger
    /// stale (for a whole reload) when the store cannot give them as batches to replay.
    async fn catch_up(&mut self) -> Result<(), InventoryError> {
        let movements = self.working.journal().len() as u64;
        let read = store::load_since(&self.db, movements, self.batches, self.setup_version).await?;
        if !read.is_some_and(|since| self.replay_committed(since)) {
            self.stale = true;
        }
        Ok(())
    }

    /// Brings both ledgers to what other processes committed since (`since`, from the store):
    /// the setup in force first (it only ever grows), then their batches replayed in order.
    /// `false` when that is not safe, and then the caller reloads everything: the stored setup is
    /// not this one extended, or a batch holds a key this ledger applied itself.
    fn replay_committed(&mut self, since: store::Since) -> bool {
        let store::Since { setup, batches } = since;
        if setup.is_none() && batches.is_empty() {
            return true;
        }
        let known = batches.iter().flat_map(|b| &b.applied).any(|(request, _)| self.working.is_applied(&request.key));
        if known {
            return false;
        }
        let more = match &setup {
            None => None,
            Some((stored, _)) => match stored.added_since(self.working.setup()) {
                Some(more) => Some(more),
                None => return false,
            },
        };
        self.shared = true;
        // One copy, then the other: the readers get the caught-up copy by a swap, as after a
        // commit. A setup that does not extend cleanly leaves the copies to the reload.
        for copy in 0..2 {
            if let Some(more) = &more {
                let extended = self.working.extend_setup(more.clone());
                if extended.is_err() || setup.as_ref().is_some_and(|(stored, _)| self.working.setup() != stored) {
                    tracing::warn!("inventory setup in the store does not extend this one; reloading");
                    return false;
                }
            }
            for batch in &batches {
                let (requests, results) =
                    batch.applied.iter().cloned().map(|(request, outcome)| (request, Ok(outcome))).unzip();
                self.working.replay(requests, results, batch.at_ms);
            }
            if copy == 0 {
                std::mem::swap(&mut *self.committed.write().unwrap_or_else(PoisonError::into_inner), &mut self.working);
            }
        }
        if let Some((_, version)) = setup {
            self.setup_version = version;
        }
        let count = batches.len() as u64;
        self.batches += count;
        self.publish();
        self.sync.replayed_batches.fetch_add(count, Ordering::Relaxed);
        tracing::debug!(batches = count, "inventory ledger caught up with the store");
        true
    }

    async fn persist(
        &self,
        applied: &[(&crate::Command, &Outcome)],
        head: u64,
        now_ms: i64,
    ) -> Result<(), InventoryError> {
        self.persist_in(self.db.begin().await?, applied, head, now_ms).await
    }

    async fn persist_in(
        &self,
        mut tx: Transaction<'static, Any>,
        applied: &[(&crate::Command, &Outcome)],
        head: u64,
        now_ms: i64,
    ) -> Result<(), InventoryError> {
        if let Err(e) = store::persist(&mut tx, applied, head, self.batches, now_ms).await {
            // Rolled back before the next batch, not by the pool's background task when the
            // connection goes back to it: until then the transaction keeps the writers' turn
            // (taken by the head's update on PostgreSQL), and a test saw the next batch refused.
            let _ = tx.rollback().await;
            return Err(e);
        }
        tx.commit().await.map_err(dermis_store::StoreError::from)?;
        Ok(())
    }

    /// Opens the batch's transaction in the writers' turn ([`store::take_writers_turn`]) and
    /// catches up inside it with what the others committed, so the batch about to be applied
    /// sees the store as it is and no other writer commits before it. `None` (no turn) when the
    /// rows cannot be replayed: the ledger is marked stale and the batch goes the refused way.
    async fn take_turn(&mut self) -> Result<Option<Transaction<'static, Any>>, InventoryError> {
        let mut tx = self.db.begin().await?;
        let movements = self.working.journal().len() as u64;
        let read = match store::take_writers_turn(&mut tx).await {
            Ok(()) => store::read_since(&mut tx, movements, self.batches, self.setup_version).await,
            Err(e) => Err(e),
        };
        let read = match read {
            Ok(read) => read,
            Err(e) => {
                // As after a failed catch-up: the next batch starts from a reload.
                let _ = tx.rollback().await;
                self.stale = true;
                return Err(e.into());
            }
        };
        if read.is_some_and(|since| self.replay_committed(since)) {
            return Ok(Some(tx));
        }
        let _ = tx.rollback().await;
        self.stale = true;
        self.ensure_fresh().await?;
        Ok(None)
    }

    async fn extend_setup(&mut self, more: Setup) -> Result<(), InventoryError> {
        for _ in 0..MAX_ATTEMPTS {
            self.ensure_fresh().await?;
            let previous = self.working.setup().clone();
            self.working.extend_setup(more.clone())?;
            let saved = async {
                let mut tx = self.db.begin().await?;
                let saved = store::save_setup(&mut tx, &previous, self.working.setup(), self.clock.now_ms()).await?;
                tx.commit().await.map_err(dermis_store::StoreError::from)?;
                Ok::<_, dermis_store::StoreError>(saved)
            }
            .await;
            match saved {
                Ok(Some(version)) => {
                    self.setup_version = version;
                    self.publish();
                    let mut committed = self.committed.write().unwrap_or_else(PoisonError::into_inner);
                    committed.extend_setup(more)?;
                    return Ok(());
                }
                // Another process changed the setup first: reload it and extend that.
                Ok(None) => self.stale = true,
                Err(e) => {
                    self.stale = true;
                    let _ = self.ensure_fresh().await;
                    return Err(InventoryError::NotPersisted { reason: e.to_string() });
                }
            }
        }
        Err(InventoryError::NotPersisted { reason: "the setup kept changing under this writer".into() })
    }

    /// Shows the batches and setup version this writer's ledger is at to [`Inventory::batches`]
    /// and [`Inventory::setup_version`] (before the callers of a batch are answered).
    fn publish(&self) {
        self.sync.batches.store(self.batches, Ordering::Release);
        self.sync.setup_version.store(self.setup_version, Ordering::Release);
    }

    /// When the ledger is marked stale (a failed transaction, rows that could not be replayed),
    /// rebuilds both copies from the store.
    async fn ensure_fresh(&mut self) -> Result<(), InventoryError> {
        if !self.stale {
            return Ok(());
        }
        let stored = store::load(&self.db).await?;
        self.batches = stored.batches;
        self.setup_version = stored.setup_version;
        let ledger = stored.restore()?;
        self.sync.reloads.fetch_add(1, Ordering::Relaxed);
        *self.committed.write().unwrap_or_else(PoisonError::into_inner) = ledger.clone();
        self.working = ledger;
        self.stale = false;
        // Only now: a forwarded answer's catching up must not take a count the readers' copy
        // does not hold yet.
        self.publish();
        tracing::info!("inventory ledger reloaded from the store");
        Ok(())
    }
}

/// Tells every caller of a batch that nothing of it was done.
fn not_persisted(replies: Vec<Reply>, reason: &str) {
    for reply in replies {
        let _ = reply.send(Err(InventoryError::NotPersisted { reason: reason.to_owned() }));
    }
}
