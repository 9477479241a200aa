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
//! # One writer per database
//! There is one writer task for all SKUs of a process, and the service assumes it is the only
//! writer of the inventory tables of its database: it keeps the ledger in memory and does not
//! read back what others write, so a second process would make it refuse writes often. It stays
//! safe, though: every batch moves the journal's head row from the last movement and the batch
//! count this writer knows (a compare-and-set), so a stale writer's batch is refused ([`InventoryError::StaleLedger`])
//! and it reloads; balances only decrease through guarded updates and `CHECK` constraints; journal
//! ids and idempotency keys are unique. The setup is not fenced this way (each writer stores the
//! whole setup it knows). Making several processes share one PostgreSQL well (SKU shards owned by
//! one process each, by hash of the SKU, with a lease; a journal head per shard) is the next step;
//! so is one writer task per shard inside a process.

use std::sync::{Arc, PoisonError, RwLock};

use dermis_core::clock::SharedClock;
use dermis_store::Db;
use tokio::sync::{mpsc, oneshot};

use crate::command::{Outcome, Rejection, Request};
use crate::error::InventoryError;
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
    Apply { requests: Vec<Request>, reply: Reply },
    ExtendSetup { more: Setup, reply: oneshot::Sender<Result<(), InventoryError>> },
    Refresh { reply: oneshot::Sender<Result<(), InventoryError>> },
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
        let ledger = stored.restore()?;
        let committed = Arc::new(RwLock::new(ledger.clone()));
        let (jobs, queue) = mpsc::channel(options.queue.max(1));
        let writer = Writer {
            db,
            clock: clock.clone(),
            working: ledger,
            committed: committed.clone(),
            stale: false,
            batches,
            max_batch: options.max_batch.max(1),
        };
        tokio::spawn(writer.run(queue));
        Ok(Self { jobs, committed, clock })
    }

    /// Applies one request durably: its outcome or rejection once the batch it went in is
    /// committed. A key applied before answers its first outcome again (`replayed`).
    pub async fn submit(&self, request: Request) -> Result<Result<Outcome, Rejection>, InventoryError> {
        let mut answers = self.submit_all(vec![request]).await?;
        answers.pop().ok_or(InventoryError::WriterStopped)
    }

    /// Applies several requests in order, in the same batch and so in the same transaction (a POS
    /// sync's receipts): all are durable, or the call fails and none was applied.
    pub async fn submit_all(&self, requests: Vec<Request>) -> Result<Answers, InventoryError> {
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
            if self.read(|l| l.next_deadline()).is_none_or(|at| at > now_ms) {
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

    /// Reloads the ledger from the store: what another process sharing the database wrote
    /// becomes visible to this one's reads (its writes see it anyway: they are fenced).
    pub async fn refresh(&self) -> Result<(), InventoryError> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job::Refresh { reply }).await.map_err(|_| InventoryError::WriterStopped)?;
        answer.await.map_err(|_| InventoryError::WriterStopped)?
    }

    /// What `channel` can sell of `sku` now, from memory (no database access). Reflects every
    /// committed batch, including the caller's own last write.
    pub fn available(&self, sku: &SkuId, channel: &Channel) -> Result<Availability, Rejection> {
        let now_ms = self.clock.now_ms();
        self.read(|ledger| ledger.available(sku, channel, now_ms))
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
    max_batch: usize,
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
                    Job::Refresh { reply } => {
                        self.apply(std::mem::take(&mut batch)).await;
                        let _ = reply.send(self.refresh().await);
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
        // refused by the journal's head row (or a balance guard), the ledger is reloaded, and
        // the batch is applied again to what the store now holds, a few times at most.
        let mut attempts = 0;
        loop {
            attempts += 1;
            if let Err(e) = self.ensure_fresh().await {
                let reason = format!("the ledger could not be reloaded from the store: {e}");
                for reply in replies {
                    let _ = reply.send(Err(InventoryError::NotPersisted { reason: reason.clone() }));
                }
                return;
            }
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
            let persisted =
                if applied.is_empty() { Ok(false) } else { self.persist(&applied, head, now_ms).await.map(|()| true) };
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
                    let mut answers = results.clone().into_iter();
                    for (size, reply) in sizes.into_iter().zip(replies) {
                        let _ = reply.send(Ok(answers.by_ref().take(size).collect()));
                    }
                    // The old copy catches up from the outcomes, without running the commands'
                    // rules again (`Ledger::replay`: the same state).
                    self.working.replay(requests, results, now_ms);
                    return;
                }
                Err(e @ (InventoryError::StaleLedger { .. } | InventoryError::Overdrawn { .. }))
                    if attempts < MAX_ATTEMPTS =>
                {
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
                    for reply in replies {
                        let _ = reply.send(Err(InventoryError::NotPersisted { reason: reason.clone() }));
                    }
                    return;
                }
            }
        }
    }

    /// Reloads both ledgers from the store now (another process wrote to it).
    async fn refresh(&mut self) -> Result<(), InventoryError> {
        self.stale = true;
        self.ensure_fresh().await
    }

    async fn persist(
        &self,
        applied: &[(&crate::Command, &Outcome)],
        head: u64,
        now_ms: i64,
    ) -> Result<(), InventoryError> {
        let mut tx = self.db.begin().await?;
        store::persist(&mut tx, applied, head, self.batches, now_ms).await?;
        tx.commit().await.map_err(dermis_store::StoreError::from)?;
        Ok(())
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
                Ok(true) => {
                    let mut committed = self.committed.write().unwrap_or_else(PoisonError::into_inner);
                    committed.extend_setup(more)?;
                    return Ok(());
                }
                // Another process changed the setup first: reload it and extend that.
                Ok(false) => self.stale = true,
                Err(e) => {
                    self.stale = true;
                    let _ = self.ensure_fresh().await;
                    return Err(InventoryError::NotPersisted { reason: e.to_string() });
                }
            }
        }
        Err(InventoryError::NotPersisted { reason: "the setup kept changing under this writer".into() })
    }

    /// After a failed transaction, rebuilds both ledgers from the store.
    async fn ensure_fresh(&mut self) -> Result<(), InventoryError> {
        if !self.stale {
            return Ok(());
        }
        let stored = store::load(&self.db).await?;
        self.batches = stored.batches;
        let ledger = stored.restore()?;
        *self.committed.write().unwrap_or_else(PoisonError::into_inner) = ledger.clone();
        self.working = ledger;
        self.stale = false;
        tracing::info!("inventory ledger reloaded from the store");
        Ok(())
    }
}
