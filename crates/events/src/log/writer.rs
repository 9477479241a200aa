//! [`LogWriter`], the front all appends and dead-letter replays go through: it picks the
//! backend's way of writing, the SQLite writer thread (`super::sqlite`, with the indexer behind
//! it, `super::indexer`) or PostgreSQL's own transactions (`super::postgres`).

use dermis_store::db::Backend;
use dermis_store::{Db, StoreError};

use super::indexer::Indexer;
use super::job::{Accepted, Append};
use super::postgres;
use super::sqlite::Writer;
use crate::outbox::Ingested;

/// The log's writer. On SQLite, which has one writer anyway, a thread of its own owns the
/// appends and commits concurrent requests together, and an indexer thread keeps the customer
/// index behind it; on PostgreSQL each request commits on its own connection, concurrently.
#[derive(Debug, Clone)]
pub struct LogWriter {
    db: Db,
    /// On SQLite: the writer thread and the indexer behind it.
    embedded: Option<Embedded>,
}

#[derive(Debug, Clone)]
struct Embedded {
    writer: Writer,
    indexer: Indexer,
}

impl LogWriter {
    /// A writer for `db` (on SQLite, starts the writer and indexer threads: call within a Tokio
    /// runtime).
    pub fn new(db: Db) -> Self {
        let embedded = (db.backend() == Backend::Sqlite).then(|| {
            let writer = Writer::start(&db);
            let indexer = Indexer::start(&db, &writer);
            Embedded { writer, indexer }
        });
        Self { db, embedded }
    }

    /// On SQLite, when the embedded `bus` keeps its messages in the log's database file, the
    /// log's own transactions publish what ingestion hands to the bus (nothing goes through the
    /// outbox). Elsewhere (PostgreSQL, another file) the outbox and its relay keep doing it.
    /// Returns whether the log publishes from now on.
    pub fn publish_in_log(&mut self, bus: &dermis_bus::embedded::EmbeddedBus) -> bool {
        let same_file = self.db.sqlite_file().is_some() && self.db.sqlite_file() == bus.db().sqlite_file();
        match &mut self.embedded {
            Some(e) if same_file => {
                e.writer.publish_in_log(bus.clone());
                true
            }
            _ => false,
        }
    }

    /// True when the log publishes to the bus itself, so the outbox relay has nothing to do
    /// after an append.
    pub fn publishes_in_log(&self) -> bool {
        self.embedded.as_ref().is_some_and(|e| e.writer.publishes_in_log())
    }

    /// Appends one request; answers once it is committed. Returns how many messages were new
    /// (the rest were duplicates of stored ones).
    pub async fn append(&self, job: Append) -> Result<usize, StoreError> {
        match &self.embedded {
            Some(e) => e.writer.append(job).await,
            None => postgres::append(&self.db, &job).await,
        }
    }

    /// Deletes outbox rows the relay handed to the bus: on SQLite in the writer's next group
    /// commit (not in a write transaction of their own, which queued ingestion behind it), on
    /// PostgreSQL in a transaction of their own.
    pub async fn relayed(&self, ids: Vec<String>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        match &self.embedded {
            Some(e) => e.writer.relayed(ids).await.map(|_| ()),
            None => postgres::relayed(&self.db, &ids).await,
        }
    }

    /// On SQLite, brings the customer index up to date with the log now instead of at the
    /// indexer's next pass (about once a second); returns how many index entries it wrote.
    /// Reads are exact either way (they scan what is not indexed yet): this is for tests and
    /// tools that want the tail empty. Never call it while holding a write transaction of the
    /// store (the pass needs the writer, which waits for the write turn). Nothing to do on
    /// PostgreSQL.
    pub async fn index_tail(&self) -> Result<usize, StoreError> {
        match &self.embedded {
            Some(e) => e.indexer.index_tail().await,
            None => Ok(0),
        }
    }

    /// Stores a replayed dead letter's message and marks the dead letter replayed, in one
    /// transaction. Returns whether the message was stored now (false when the dead letter was
    /// replayed before, or the log already held its `messageId`).
    pub async fn replay(
        &self,
        dead_letter_id: &str,
        write_key_id: &str,
        accepted: Accepted,
        to_bus: Option<Ingested>,
        now: i64,
    ) -> Result<bool, StoreError> {
        match &self.embedded {
            Some(e) => e.writer.replay(dead_letter_id, write_key_id, accepted, to_bus, now).await,
            None => postgres::replay(&self.db, dead_letter_id, write_key_id, accepted, to_bus, now).await,
        }
    }
}
