//! `dermis serve` and `dermis demo`: the HTTP API, with the demo data loaded on request.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use dermis_auth::Role;
use dermis_server::{Application, Config, app, demo, shutdown_signal};

/// Serves until a shutdown signal; with `with_demo`, loads the demo data first and prints what
/// to try. `config_file` is the `--config` given, repeated in the printed commands.
pub(super) async fn serve(config: Config, with_demo: bool, config_file: Option<&Path>) -> anyhow::Result<()> {
    let app = Application::build(config.clone()).await?;
    let base = format!("http://{}:{}", display_host(&config), app.port());
    if with_demo {
        let report = demo::load(app.db()).await.context("loading the demo data")?;
        let events = demo::load_customers(app.ingestor()).await.context("loading the demo customers")?;
        // The customers exist once their `identify` is applied (at ingestion, on this node).
        let profiles = demo::load_profiles(app.customers()).await.context("loading the demo customers' profiles")?;
        let units = demo::load_stock(app.db(), app.inventory()).await.context("loading the demo stock")?;
        eprintln!("demo stock: a warehouse and two stores, {units} units received now");
        eprintln!(
            "demo customers {}: {events} events stored now, {profiles} profiles given consents and skin facts",
            demo::CUSTOMERS.join(", ")
        );
        let secret = app::jwt_secret(&config)?;
        let token = dermis_auth::jwt::issue(
            &secret,
            Role::Merchandiser,
            "demo-merchandiser",
            None,
            Duration::from_secs(12 * 3600),
        )
        .map_err(anyhow::Error::msg)?;
        // `--data-dir` is global, so it may follow the subcommand the printed lines end with;
        // nothing is printed for the default.
        let data_dir = if config.data_dir == Config::default().data_dir {
            String::new()
        } else {
            format!(" --data-dir {}", shell_word(&config.data_dir.display().to_string()))
        };
        demo::print_welcome(&base, &report, &token, &invocation(config_file), &data_dir);
    } else {
        eprintln!("Dermis listening on {base} ({} store); API reference at {base}/docs", app.db().backend().name());
    }
    app.run_until(shutdown_signal()).await
}

fn display_host(config: &Config) -> String {
    let ip = config.listen.ip();
    if ip.is_unspecified() { "127.0.0.1".into() } else { ip.to_string() }
}

/// How to run this binary again, for the commands the demo prints: `cargo run -q --release --`
/// when run by `cargo run` (which sets `CARGO`), else the path it was started by (`dermis` from
/// the PATH, `./target/release/dermis` ...); with the `--config` it was given.
fn invocation(config_file: Option<&Path>) -> String {
    let exe = std::env::current_exe().ok();
    let profile = exe.as_deref().and_then(|e| e.parent()).and_then(|d| d.file_name()).and_then(|d| d.to_str());
    let mut command = match (std::env::var_os("CARGO"), profile) {
        (Some(_), Some("release")) => "cargo run -q --release --".to_owned(),
        (Some(_), Some("debug")) => "cargo run -q --".to_owned(),
        (Some(_), Some(other)) => format!("cargo run -q --profile {other} --"),
        _ => shell_word(&std::env::args().next().unwrap_or_else(|| "dermis".to_owned())),
    };
    if let Some(file) = config_file {
        command.push_str(" --config ");
        command.push_str(&shell_word(&file.display().to_string()));
    }
    command
}

/// A word as a shell reads it back.
fn shell_word(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "_-./=:@%+,".contains(c)) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_words_survive_the_shell() {
        assert_eq!(shell_word("./target/release/dermis"), "./target/release/dermis");
        assert_eq!(shell_word("my data"), "'my data'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
