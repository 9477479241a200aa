//! `dermis import catalog FILE`: products from a Sephora `product_info` file or Dermis JSON.

use std::path::Path;

use dermis_catalog::import::{self, ImportReport};
use dermis_server::{Config, app};

/// Imports the file into the configured store and prints the report (as JSON with `json`).
pub(super) async fn catalog(config: &Config, file: &Path, json: bool) -> anyhow::Result<()> {
    let db = app::open_store(config).await?;
    let rows = import::read_file(file).map_err(anyhow::Error::msg)?;
    let report = import::import(&db, rows, 200).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    db.close().await;
    Ok(())
}

/// One summary line, the first rejected rows and the most frequent unknown ingredients.
fn print_report(report: &ImportReport) {
    println!(
        "{} rows: {} imported, {} updated, {} unchanged, {} rejected; {} SKUs created; {} without ingredient list; {} unknown ingredient names; {:.1} s",
        report.rows,
        report.imported,
        report.updated,
        report.unchanged,
        report.rejected.len(),
        report.skus_created,
        report.without_ingredients,
        report.unknown_ingredient_names,
        report.seconds
    );
    for r in report.rejected.iter().take(20) {
        println!("  rejected line {} ({}): {}", r.line, r.external_id.as_deref().unwrap_or("-"), r.reason);
    }
    if !report.unknown_ingredients.is_empty() {
        let top: Vec<_> =
            report.unknown_ingredients.iter().take(10).map(|u| format!("{} ({})", u.name, u.products)).collect();
        println!("  most frequent unknown ingredients: {}", top.join(", "));
    }
}
