//! `dermis inventory rebuild`: the balances recomputed from the journal of movements.

use dermis_server::{Config, app};

/// Recomputes the balances from the journal, compares them with the stored rows and (with
/// `write`) replaces the rows. Prints a summary and each mismatch; matched: `Ok` (exit 0);
/// mismatched: an error naming how many (exit 1), after repairing them when writing.
pub(super) async fn rebuild(config: &Config, write: bool) -> anyhow::Result<()> {
    let db = app::open_store(config).await?;
    let report = dermis_inventory::rebuild::rebuild(&db, write).await;
    db.close().await;
    let report = report?;
    for (key, stored, journal) in &report.mismatches {
        println!("mismatch {key}: stored {stored}, journal {journal}");
    }
    println!(
        "{} movements, {} balances from the journal; {}{}",
        report.movements,
        report.balances,
        if report.matched() {
            "the stored balances match".to_owned()
        } else {
            format!("{} mismatched", report.mismatches.len())
        },
        if report.rewritten { "; balances rewritten from the journal" } else { "" },
    );
    if report.matched() {
        Ok(())
    } else if report.rewritten {
        anyhow::bail!("{} balances did not match the journal; they were repaired", report.mismatches.len())
    } else {
        anyhow::bail!("{} balances do not match the journal", report.mismatches.len())
    }
}
