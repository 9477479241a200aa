//! `dermis audit verify` and `dermis audit export`: check the audit log's hash chain, or print
//! one customer's entries.

use dermis_audit::Audit;
use dermis_server::{Config, app};

/// Opens the configured store and recomputes the whole chain. Intact: prints the number of
/// entries and returns `Ok` (exit 0). Broken: prints nothing on stdout and returns an error
/// naming the first bad entry (exit 1).
pub(super) async fn verify(config: &Config) -> anyhow::Result<()> {
    let db = app::open_store(config).await?;
    let audit = Audit::new(db.clone(), dermis_core::clock::system());
    let result = audit.verify().await;
    db.close().await;
    match result? {
        Ok(n) => {
            println!("audit log intact: {n} entries");
            Ok(())
        }
        Err(bad) => anyhow::bail!("audit log broken at entry {}: {}", bad.seq, bad.reason),
    }
}

/// Prints the entries about `customer_id` (and those made with their own token) as a JSON
/// array, oldest first.
pub(super) async fn export(config: &Config, customer_id: &str) -> anyhow::Result<()> {
    let db = app::open_store(config).await?;
    let audit = Audit::new(db.clone(), dermis_core::clock::system());
    let records = audit.export(customer_id).await;
    db.close().await;
    println!("{}", serde_json::to_string_pretty(&records?)?);
    Ok(())
}
