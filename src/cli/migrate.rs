//! `dermis migrate`: apply every migration and exit.

use dermis_server::{Config, app};

/// Opens the configured store, which applies the migrations, and says on which backend.
pub(super) async fn migrate(config: &Config) -> anyhow::Result<()> {
    let db = app::open_store(config).await?;
    println!("migrations applied ({})", db.backend().name());
    Ok(())
}
