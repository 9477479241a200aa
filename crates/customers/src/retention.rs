//! Retention of measurements: readings recorded before a cutoff are deleted (zeroed, as a
//! customer's erasure deletes them), then the store scrubbed. The server's sweeper calls it on
//! its schedule (`retention.measurements_days`).

use dermis_store::sqlx;
use dermis_store::{Db, StoreError};

use crate::CustomersError;
use crate::service::Customers;

impl Customers {
    /// Deletes the measurements recorded before `cutoff_ms` (by `recorded_at`, when Dermis stored
    /// them), in a transaction that zeroes what it deletes; then the SQLite WAL is checkpointed
    /// (PostgreSQL: vacuumed). Returns how many rows went.
    pub async fn delete_measurements_before(&self, cutoff_ms: i64) -> Result<u64, CustomersError> {
        let backend = self.db.backend();
        let mut tx = self.db.begin().await?;
        Db::secure_deletes(&mut tx, backend, true).await?;
        let n = sqlx::query("DELETE FROM customer_measurements WHERE recorded_at < $1")
            .bind(cutoff_ms)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?
            .rows_affected();
        Db::secure_deletes(&mut tx, backend, false).await?;
        tx.commit().await.map_err(StoreError::from)?;
        if n > 0 {
            self.db.scrub(&["customer_measurements"]).await?;
        }
        Ok(n)
    }
}
