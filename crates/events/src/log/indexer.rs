//! The SQLite customer index (`events_by_user`, `events_by_anonymous`), kept behind the log.
//!
//! Indexing each event as it was stored dirtied one random 4 KB leaf page per event, written
//! twice (to the WAL, then by the checkpoint): the embedded log's sustained limit. Instead an
//! indexer thread, about once every [`INDEX_EVERY`], reads the events stored after the watermark
//! (`events_indexed.through`) on a connection of its own, sorts their customer ids, and hands
//! them to the writer (`super::sqlite`) in slices of [`INDEX_SLICE`] entries, which ride along
//! in the group commits like any job (no pause of a whole pass; each leaf page written about
//! once per pass). Once every slice is committed, the watermark moves. Reads of one customer's
//! events use the index up to the watermark and scan the tail after it (`super::subject`). A
//! crash loses no index entry: the next pass, of this process or the next, starts again from the
//! watermark.

use std::path::Path;
use std::time::{Duration, Instant};

use dermis_store::{Db, StoreError};
use rusqlite::{Connection, params};
use tokio::sync::{mpsc, oneshot};

use super::sqlite::{GROUP_ROWS, IndexRows, Job, Reply, Writer, connect, stopped, store_error};

/// How often the indexer looks for events to index.
const INDEX_EVERY: Duration = Duration::from_secs(1);

/// Index entries per job handed to the writer: about one group commit's worth of rows.
const INDEX_SLICE: usize = GROUP_ROWS;

/// The handle on the indexer thread: asks it for a pass now. Cheap to clone; the thread stops
/// with the writer it hands its slices to, or when the last handle drops.
#[derive(Debug, Clone)]
pub(super) struct Indexer {
    index_now: std::sync::mpsc::Sender<Reply>,
}

impl Indexer {
    /// Starts the indexer thread on `db`'s SQLite file, behind `writer`. Without a file (an
    /// in-memory database, which the writer cannot open either) or a thread, no pass is ever
    /// made: reads stay exact (they scan what is not indexed), only slower as the tail grows,
    /// and [`Indexer::index_tail`] answers that the indexer stopped.
    pub(super) fn start(db: &Db, writer: &Writer) -> Self {
        let (index_now, requests) = std::sync::mpsc::channel();
        if let Some(file) = db.sqlite_file().map(Path::to_path_buf) {
            let to_writer = writer.downgrade();
            let spawned = std::thread::Builder::new()
                .name("event-log-indexer".into())
                .spawn(move || run(&file, &to_writer, &requests));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start the event log indexer thread");
            }
        }
        Self { index_now }
    }

    /// Has the indexer index the events not yet in the customer index now, instead of at its
    /// next pass; returns how many index entries it wrote. Never call it while holding a write
    /// transaction of the store: the pass needs the writer, which waits for the write turn.
    pub(super) async fn index_tail(&self) -> Result<usize, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.index_now.send(reply).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Most events one pass of the indexer reads (after a long stop, the rest waits for the next).
const PASS_EVENTS: usize = 250_000;

/// The indexer's loop: a pass every [`INDEX_EVERY`], and one whenever asked. Stops with the
/// last handle on the writer.
fn run(file: &Path, writer: &mpsc::WeakSender<Job>, requests: &std::sync::mpsc::Receiver<Reply>) {
    use std::sync::mpsc::RecvTimeoutError;
    let mut conn = None;
    loop {
        let asked = match requests.recv_timeout(INDEX_EVERY) {
            Ok(reply) => Some(reply),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let Some(jobs) = writer.upgrade() else { return };
        let started = Instant::now();
        let outcome = index_pass(file, &mut conn, &jobs);
        drop(jobs);
        match &outcome {
            Ok(0) => {}
            Ok(entries) => {
                metrics::histogram!("events_index_pass_seconds").record(started.elapsed().as_secs_f64());
                tracing::debug!(entries, took = ?started.elapsed(), "customer index pass");
            }
            Err(e) => {
                // The watermark did not move: the next pass covers these events again, and reads
                // scan them meanwhile.
                tracing::warn!(error = %e, "the customer index could not catch up with the event log");
                conn = None;
            }
        }
        if let Some(reply) = asked {
            let _ = reply.send(outcome);
        }
    }
}

/// One pass: reads the events after the watermark (a snapshot, on the indexer's connection:
/// the writer goes on meanwhile), sorts their customer ids, has the writer commit them slice by
/// slice, then move the watermark. Returns the entries written.
fn index_pass(file: &Path, conn: &mut Option<Connection>, jobs: &mpsc::Sender<Job>) -> Result<usize, StoreError> {
    if conn.is_none() {
        *conn = Some(connect(file).map_err(store_error)?);
    }
    let Some(c) = conn.as_mut() else { return Ok(0) };
    let (mut by_user, mut by_anonymous, mut last) = (Vec::new(), Vec::new(), None);
    {
        let tx = c.transaction().map_err(store_error)?;
        let through: i64 =
            tx.query_row("SELECT through FROM events_indexed WHERE one = 1", [], |r| r.get(0)).map_err(store_error)?;
        let mut tail = tx
            .prepare_cached("SELECT id, user_id, anonymous_id FROM events WHERE id > ?1 ORDER BY id LIMIT ?2")
            .map_err(store_error)?;
        let mut rows = tail.query(params![through, PASS_EVENTS as i64]).map_err(store_error)?;
        while let Some(r) = rows.next().map_err(store_error)? {
            let key: i64 = r.get(0).map_err(store_error)?;
            if let Some(u) = r.get::<_, Option<String>>(1).map_err(store_error)? {
                by_user.push((u, key));
            }
            if let Some(a) = r.get::<_, Option<String>>(2).map_err(store_error)? {
                by_anonymous.push((a, key));
            }
            last = Some(key);
        }
    }
    let Some(last) = last else { return Ok(0) };
    by_user.sort_unstable();
    by_anonymous.sort_unstable();
    // One slice at a time: each waits in the writer's queue behind the appends that came
    // first, so no append waits for more than one slice.
    let commit = |rows: IndexRows| -> Result<usize, StoreError> {
        let (reply, answer) = oneshot::channel();
        jobs.blocking_send(Job::Index(rows, reply)).map_err(|_| stopped())?;
        answer.blocking_recv().map_err(|_| stopped())?
    };
    let mut written = 0;
    let (mut users, mut anonymous) = (by_user.into_iter(), by_anonymous.into_iter());
    loop {
        let by_user: Vec<_> = users.by_ref().take(INDEX_SLICE).collect();
        let by_anonymous: Vec<_> = anonymous.by_ref().take(INDEX_SLICE - by_user.len()).collect();
        if by_user.is_empty() && by_anonymous.is_empty() {
            break;
        }
        written += commit(IndexRows::Entries { by_user, by_anonymous })?;
    }
    // Every entry up to `last` is committed: only now may reads skip the scan of them.
    commit(IndexRows::Through(last))?;
    Ok(written)
}
