//! `dermis customers rotate-master-key`: re-wrap every customer's data key under the configured
//! master key, after `customers.master_key` was changed.

use anyhow::Context;
use dermis_audit::{Action, Audit, Entry};
use dermis_customers::Customers;
use dermis_server::{Config, app};

/// Re-wraps every data key (and the lookup secret) wrapped by another master key than
/// `customers.master_key` with it; no field's ciphertext is touched. The old key must still be
/// listed in `customers.previous_master_keys`. Each batch of keys commits on its own, so a run
/// that was interrupted is finished by running the command again; a run with nothing left to do
/// re-wraps 0 keys. Recorded in the audit log (`master_key.rotate`) before it starts.
pub(super) async fn rotate_master_key(config: &Config) -> anyhow::Result<()> {
    let db = app::open_store(config).await?;
    let result = rotate(config, &db).await;
    db.close().await;
    let (n, current) = result?;
    println!("re-wrapped {n} data keys under master key {current}");
    Ok(())
}

async fn rotate(config: &Config, db: &dermis_store::Db) -> anyhow::Result<(usize, String)> {
    let keys = app::customers_keyring(config)?;
    let current = keys.current_id().to_owned();
    let clock = dermis_core::clock::system();
    let customers = Customers::open(db.clone(), keys, clock.clone()).await.context(
        "opening customers: is the master key that wrapped the data keys listed in customers.previous_master_keys?",
    )?;
    let actor = std::env::var("USER").ok().filter(|u| !u.is_empty()).map_or("cli".to_owned(), |u| format!("cli:{u}"));
    let run = format!("rotate-master-key-{}", clock.now_ms());
    Audit::new(db.clone(), clock)
        .record(Entry::new(actor, "admin", "key_management", run, Action::MASTER_KEY_ROTATE))
        .await
        .context("recording the rotation in the audit log")?;
    let n = customers.rotate_master_key().await.context(
        "re-wrapping data keys (keys re-wrapped so far stay so; run the command again once the cause is fixed). \
         Is the old master key listed in customers.previous_master_keys?",
    )?;
    Ok((n, current))
}
