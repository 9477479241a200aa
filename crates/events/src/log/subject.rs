//! Whose events: a customer by user id or anonymous id, and how each backend finds their events
//! (on PostgreSQL indexes on `events`; on SQLite the customer index the indexer keeps behind the
//! log, and the tail it has not indexed yet).

use dermis_store::db::Backend;

/// Which customer's events.
#[derive(Debug, Clone)]
pub enum Subject {
    /// By user id.
    User(String),
    /// By anonymous id.
    Anonymous(String),
}

impl Subject {
    /// The id.
    pub(super) fn value(&self) -> &str {
        let (Subject::User(v) | Subject::Anonymous(v)) = self;
        v
    }

    /// The `events` column holding this kind of id, and on SQLite the customer index table
    /// keyed by it.
    fn column_and_index(&self) -> (&'static str, &'static str) {
        match self {
            Subject::User(_) => BY_USER,
            Subject::Anonymous(_) => BY_ANONYMOUS,
        }
    }
}

/// The `events` column of user ids, and the SQLite customer index keyed by it.
pub(super) const BY_USER: (&str, &str) = ("user_id", "events_by_user");
/// The `events` column of anonymous ids, and the SQLite customer index keyed by it.
pub(super) const BY_ANONYMOUS: (&str, &str) = ("anonymous_id", "events_by_anonymous");

/// A condition on `events` that holds for `who`'s events after the key `$2`, with `who`'s id
/// bound as `$1`. On PostgreSQL an index on `events` answers it. On SQLite the customer index
/// answers up to its watermark (entries after it may be there, from a pass not finished yet,
/// and are not trusted), and the tail after the watermark (a second or two of events) is
/// scanned in key order; the keys are looked up in order, so a page of them needs no sort.
pub(super) fn of_customer(backend: Backend, who: &Subject) -> String {
    let (column, index) = who.column_and_index();
    match backend {
        Backend::Postgres => format!("{column} = $1 AND id > $2"),
        Backend::Sqlite => format!(
            "id IN (SELECT id FROM {index} WHERE {column} = $1 AND id > $2 AND id <= (SELECT through FROM events_indexed) \
             UNION ALL SELECT id FROM events WHERE id > MAX($2, (SELECT through FROM events_indexed)) AND {column} = $1)"
        ),
    }
}
