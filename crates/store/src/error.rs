//! Storage errors, classified so callers can answer 409 for a duplicate and 503 for an outage.

/// What went wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint rejected the write; `constraint` names it (PostgreSQL) or its columns
    /// (SQLite: `table.column`).
    #[error("unique constraint violated: {constraint}")]
    Unique {
        /// The constraint or columns.
        constraint: String,
    },
    /// The database could not be reached or the pool is exhausted.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A migration could not be applied.
    #[error("migration {domain}/{version} failed: {reason}")]
    Migration {
        /// Domain that owns the migration.
        domain: String,
        /// Its version.
        version: i64,
        /// Why.
        reason: String,
    },
    /// The database refused a value the request carried (a character or length it cannot
    /// store); the client's fault, answered 400-class.
    #[error("the database refused a value: {0}")]
    InvalidInput(String),
    /// Anything else: a bug or a corrupt row.
    #[error("database error: {0}")]
    Other(String),
}

/// The one mapping of storage errors to answers, used by every domain's error mapping (each
/// variant named, no catch-all, so a new variant is a compile error here and nowhere else):
/// a unique violation no domain turned into its own answer is a conflict (409), an outage 503,
/// a value the database refused 400, a failed migration or anything else 500 (logged, never
/// shown).
impl From<StoreError> for dermis_core::Problem {
    fn from(e: StoreError) -> Self {
        use dermis_core::Problem;
        match e {
            StoreError::Unique { .. } => {
                Problem::conflict("the request conflicts with a stored value that must be unique")
            }
            StoreError::Unavailable(m) => Problem::unavailable(&m),
            StoreError::InvalidInput(m) => Problem::malformed(m),
            e @ (StoreError::Migration { .. } | StoreError::Other(_)) => Problem::internal(&e),
        }
    }
}

impl StoreError {
    /// True when this is a unique violation on a constraint whose name or columns contain `hint`.
    pub fn is_unique_on(&self, hint: &str) -> bool {
        matches!(self, Self::Unique { constraint } if constraint.contains(hint))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                let constraint = db.constraint().map(str::to_owned).unwrap_or_else(|| {
                    // SQLite: "UNIQUE constraint failed: products.external_id"
                    db.message().rsplit(": ").next().unwrap_or_default().to_owned()
                });
                Self::Unique { constraint }
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(e.to_string()),
            sqlx::Error::Database(db) if is_busy(db.code().as_deref()) => Self::Unavailable(e.to_string()),
            // PostgreSQL: NUL or untranslatable characters, values too long for a column.
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("22021" | "22P05" | "22001" | "22003")) =>
            {
                Self::InvalidInput(db.message().to_owned())
            }
            _ => Self::Other(e.to_string()),
        }
    }
}

/// SQLITE_BUSY / SQLITE_LOCKED, PostgreSQL connection and serialization failures.
fn is_busy(code: Option<&str>) -> bool {
    matches!(code, Some("5" | "6" | "517" | "40001" | "40P01" | "57P01" | "57P03"))
        || code.is_some_and(|c| c.starts_with("08"))
}
