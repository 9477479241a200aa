//! Asynchronous exports (GDPR art. 15 and 20): a status resource (`customer_exports`) whose
//! document, once made in the background, is the same as the synchronous
//! `GET /v1/customers/{id}/export`.
//!
//! - [`Customers::request_export`] records a `pending` export and starts making it at once (as
//!   an erasure starts); [`Customers::resume_exports`], run at start and every minute by the
//!   server, makes those a crash or a failing domain left behind (`failed` ones are retried).
//! - The document is personal data: it is stored sealed under the customer's data key (AES-256-GCM,
//!   associated data = the customer and `export:<export id>`), so erasing the customer (which
//!   also deletes these rows) leaves nothing readable, in backups neither.
//! - Every export expires (`expires_at`, by default 7 days after the request): from then on it is
//!   404, and [`Customers::purge_expired_exports`] deletes the row.
//!
//! The SQL of the table is here, one text for both backends.

use dermis_core::clock::rfc3339;
use dermis_core::ids::new_id;
use dermis_store::idempotency::{self, Prior};
use dermis_store::sqlx::{self, Row};
use dermis_store::{Db, StoreError};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::CustomersError;
use crate::privacy::Export;
use crate::service::{Customers, Idempotent, seal};

/// How long an export is kept by default: 7 days.
pub const DEFAULT_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

/// Where an export stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportState {
    /// Being made.
    Pending,
    /// Made: the document is included.
    Completed,
    /// A domain failed its part; it is retried.
    Failed,
}

impl ExportState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Completed, Self::Failed].into_iter().find(|v| v.as_str() == s)
    }
}

/// An export request, its progress and, once completed, its document.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CustomerExport {
    /// Id (`exp_...`).
    pub id: String,
    /// The customer exported.
    pub customer_id: String,
    /// Where it stands.
    pub status: ExportState,
    /// Requested (RFC 3339).
    pub requested_at: String,
    /// Completed (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// When it is deleted (RFC 3339); 404 from then on.
    pub expires_at: String,
    /// Why it failed last (it is retried).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The export document (as `GET /v1/customers/{id}/export` answers), once completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Export>)]
    pub document: Option<Value>,
}

/// A row of `customer_exports`.
#[derive(Debug, Clone)]
struct ExportRow {
    id: String,
    customer_id: String,
    status: String,
    requested_by: String,
    requested_at: i64,
    completed_at: Option<i64>,
    expires_at: i64,
    document: Option<String>,
    error: Option<String>,
}

const COLUMNS: &str = "id, customer_id, status, requested_by, requested_at, completed_at, expires_at, document, error";

async fn get_row(db: &Db, id: &str) -> Result<Option<ExportRow>, StoreError> {
    let r = sqlx::query(&format!("SELECT {COLUMNS} FROM customer_exports WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.reader())
        .await?;
    r.map(|r| {
        Ok(ExportRow {
            id: r.try_get(0)?,
            customer_id: r.try_get(1)?,
            status: r.try_get(2)?,
            requested_by: r.try_get(3)?,
            requested_at: r.try_get(4)?,
            completed_at: r.try_get(5)?,
            expires_at: r.try_get(6)?,
            document: r.try_get(7)?,
            error: r.try_get(8)?,
        })
    })
    .transpose()
}

/// The field name an export's document is sealed under.
fn sealed_field(export_id: &str) -> String {
    format!("export:{export_id}")
}

/// The request's identity for an idempotency key: the customer asked about.
fn request_hash(customer_id: &str) -> String {
    idempotency::request_hash(customer_id.as_bytes())
}

impl Customers {
    /// Asks for an export of `reference`'s data, kept until `ttl_ms` after now. The export is
    /// made in the background (follow [`Customers::export_status`]). With `idem`, a retry answers
    /// the export the first attempt asked for.
    pub async fn request_export(
        &self,
        reference: &str,
        requested_by: &str,
        ttl_ms: i64,
        idem: Option<Idempotent>,
    ) -> Result<(CustomerExport, bool), CustomersError> {
        let customer_id = self.resolve_or_404(reference).await?;
        let id = new_id("exp");
        let now = self.clock.now_ms();
        let mut tx = self.db.begin().await?;
        if let Some(i) = &idem {
            match idempotency::prior(&mut tx, &i.scope, &i.key, &request_hash(&customer_id)).await? {
                Prior::None => {}
                Prior::Created(prior) => {
                    drop(tx);
                    return Ok((self.export_status(&prior).await?, true));
                }
                Prior::Mismatch => return Err(CustomersError::IdempotencyKeyReused),
            }
        }
        sqlx::query(
            "INSERT INTO customer_exports (id, customer_id, status, requested_by, requested_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(&customer_id)
        .bind(ExportState::Pending.as_str())
        .bind(requested_by)
        .bind(now)
        .bind(now.saturating_add(ttl_ms.max(0)))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        if let Some(i) = &idem {
            idempotency::record(&mut tx, &i.scope, &i.key, &request_hash(&customer_id), &id).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        let this = self.clone();
        let job = id.clone();
        tokio::spawn(async move {
            if let Err(e) = this.run_export(&job).await {
                tracing::warn!(export = job, error = %e, "an export did not finish; it is resumed later");
            }
        });
        Ok((status_of(self.row(&id).await?)?, false))
    }

    /// Makes an export's document and stores it sealed under the customer's data key; records a
    /// failing domain (retried). An export already completed, gone or expired is left alone.
    pub async fn run_export(&self, id: &str) -> Result<ExportState, CustomersError> {
        let Some(row) = get_row(&self.db, id).await? else { return Ok(ExportState::Completed) };
        if row.status == ExportState::Completed.as_str() || row.expires_at <= self.clock.now_ms() {
            return Ok(ExportState::Completed);
        }
        let export = match self.export(&row.customer_id).await {
            Ok(e) => e,
            Err(CustomersError::NotFound(_)) => {
                // Erased meanwhile: nothing to export, nothing to keep.
                self.delete_export(id).await?;
                return Ok(ExportState::Completed);
            }
            Err(CustomersError::Source(domain)) => {
                let message = format!("the {domain} domain could not export its part; it is retried");
                sqlx::query(
                    "UPDATE customer_exports SET status = 'failed', error = $1 WHERE id = $2 AND status <> 'completed'",
                )
                .bind(&message)
                .bind(id)
                .execute(self.db.writer())
                .await
                .map_err(StoreError::from)?;
                return Ok(ExportState::Failed);
            }
            Err(e) => return Err(e),
        };
        let mut conn = self.db.reader().acquire().await.map_err(StoreError::from)?;
        let dek = match self.data_key(&mut conn, &export.customer.id).await {
            Ok(k) => k,
            Err(CustomersError::Crypto(crate::crypto::CryptoError::KeyDestroyed)) => {
                drop(conn);
                self.delete_export(id).await?;
                return Ok(ExportState::Completed);
            }
            Err(e) => return Err(e),
        };
        drop(conn);
        let sealed = seal(&dek, &row.customer_id, &sealed_field(id), &export)?;
        // The erasure deletes the row in its transaction: a document made just before it is
        // not stored (no row), and one stored just before it is deleted with the row.
        sqlx::query(
            "UPDATE customer_exports SET status = 'completed', document = $1, completed_at = $2, error = NULL
             WHERE id = $3 AND status <> 'completed'",
        )
        .bind(&sealed)
        .bind(self.clock.now_ms())
        .bind(id)
        .execute(self.db.writer())
        .await
        .map_err(StoreError::from)?;
        Ok(ExportState::Completed)
    }

    /// Makes the exports a crash or a failing domain left unfinished (at most 100 per call);
    /// returns how many completed now. Run at start and every so often.
    pub async fn resume_exports(&self) -> Result<usize, CustomersError> {
        let rows = sqlx::query(
            "SELECT id FROM customer_exports WHERE status <> 'completed' AND expires_at > $1 ORDER BY id LIMIT 100",
        )
        .bind(self.clock.now_ms())
        .fetch_all(self.db.reader())
        .await
        .map_err(StoreError::from)?;
        let mut done = 0;
        for r in rows {
            let id: String = r.try_get(0).map_err(StoreError::from)?;
            if self.run_export(&id).await? == ExportState::Completed {
                done += 1;
            }
        }
        Ok(done)
    }

    /// Deletes the exports whose time is up (their documents with them); returns how many.
    pub async fn purge_expired_exports(&self) -> Result<u64, CustomersError> {
        let done = sqlx::query("DELETE FROM customer_exports WHERE expires_at <= $1")
            .bind(self.clock.now_ms())
            .execute(self.db.writer())
            .await
            .map_err(StoreError::from)?;
        Ok(done.rows_affected())
    }

    /// An export's status, without its document.
    pub async fn export_status(&self, id: &str) -> Result<CustomerExport, CustomersError> {
        status_of(self.row(id).await?)
    }

    /// An export's status and, once completed, its document (opened with the customer's data
    /// key). 404 once it expired or the customer was erased.
    pub async fn export_with_document(&self, id: &str) -> Result<CustomerExport, CustomersError> {
        let row = self.row(id).await?;
        let sealed = row.document.clone();
        let mut out = status_of(row)?;
        if let Some(sealed) = sealed {
            let mut conn = self.db.reader().acquire().await.map_err(StoreError::from)?;
            let dek = match self.data_key(&mut conn, &out.customer_id).await {
                Ok(k) => k,
                Err(CustomersError::Crypto(crate::crypto::CryptoError::KeyDestroyed)) => {
                    return Err(CustomersError::NotFound(format!("export {id}")));
                }
                Err(e) => return Err(e),
            };
            let plain = dek.decrypt(&out.customer_id, &sealed_field(id), &sealed)?;
            let doc: Value = serde_json::from_slice(&plain)
                .map_err(|e| StoreError::Other(format!("corrupt export document: {e}")))?;
            out.document = Some(doc);
        }
        Ok(out)
    }

    /// The customer an export is about, and who asked for it (404 when gone or expired).
    pub async fn export_owner(&self, id: &str) -> Result<(String, String), CustomersError> {
        let row = self.row(id).await?;
        Ok((row.customer_id, row.requested_by))
    }

    async fn delete_export(&self, id: &str) -> Result<(), CustomersError> {
        sqlx::query("DELETE FROM customer_exports WHERE id = $1")
            .bind(id)
            .execute(self.db.writer())
            .await
            .map_err(StoreError::from)?;
        Ok(())
    }

    async fn row(&self, id: &str) -> Result<ExportRow, CustomersError> {
        let gone = || CustomersError::NotFound(format!("export {id}"));
        let row = get_row(&self.db, id).await?.ok_or_else(gone)?;
        if row.expires_at <= self.clock.now_ms() {
            return Err(gone());
        }
        Ok(row)
    }
}

/// Deletes every export of a customer, inside the erasure's transaction.
pub(crate) async fn delete_exports_of(
    conn: &mut dermis_store::sqlx::AnyConnection,
    customer_id: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM customer_exports WHERE customer_id = $1").bind(customer_id).execute(conn).await?;
    Ok(())
}

fn status_of(row: ExportRow) -> Result<CustomerExport, CustomersError> {
    let status = ExportState::parse(&row.status)
        .ok_or_else(|| StoreError::Other(format!("unknown export status {:?}", row.status)))?;
    Ok(CustomerExport {
        id: row.id,
        customer_id: row.customer_id,
        status,
        requested_at: rfc3339(row.requested_at),
        completed_at: row.completed_at.map(rfc3339),
        expires_at: rfc3339(row.expires_at),
        error: row.error,
        document: None,
    })
}
