//! The `dermis` command: serve the API, load the demo, issue tokens, manage API keys.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use dermis_auth::Role;
use dermis_auth::api_keys::{ApiKeys, NewApiKey};
use dermis_server::{Application, Config, app, demo, init_tracing, shutdown_signal};
use secrecy::SecretString;

/// mimalloc instead of the system allocator: a request parses, copies and frees many small JSON
/// values on one thread while the event log's writer frees others; with glibc's malloc the
/// allocator's locking and consolidation took about a sixth of the server's time under batched
/// ingestion (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Dermis: the backend of a multi-channel skincare brand.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (default: ./dermis.toml if it exists).
    #[arg(long, global = true, env = "DERMIS_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Directory of the embedded database (default ./dermis-data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (SQLite in the data dir, or PostgreSQL with DERMIS_DATABASE_URL).
    Serve {
        #[command(flatten)]
        args: ServeArgs,
        /// Load the bundled demo data first.
        #[arg(long)]
        demo: bool,
    },
    /// Serve with the bundled demo catalog loaded, and print what to try.
    Demo {
        #[command(flatten)]
        args: ServeArgs,
    },
    /// Apply database migrations and exit.
    Migrate {
        /// Directory of the embedded database.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Print a bearer token signed with the configured secret.
    Token {
        /// admin, merchandiser, store_associate, analyst, customer or service.
        #[arg(long)]
        role: String,
        /// Subject (the customer id for customers).
        #[arg(long, default_value = "local-user")]
        sub: String,
        /// Store id (required for store_associate).
        #[arg(long)]
        store: Option<String>,
        /// Lifetime: 90s, 30m, 12h, 7d (at most 366d).
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Directory holding the generated secret.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Import data.
    Import {
        #[command(subcommand)]
        what: ImportWhat,
        /// Directory of the embedded database.
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Manage write keys for event sources (web shop, app, POS).
    WriteKey {
        #[command(subcommand)]
        action: WriteKeyAction,
        /// Directory of the embedded database.
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Manage API keys for machine clients.
    ApiKey {
        #[command(subcommand)]
        action: ApiKeyAction,
        /// Directory of the embedded database.
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ImportWhat {
    /// Import products: Sephora product_info (.csv, .csv.gz) or Dermis JSON/NDJSON (.json, .ndjson).
    /// Products are matched by external id: importing again updates, never duplicates.
    Catalog {
        /// The file.
        file: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum WriteKeyAction {
    /// Create a write key and print it.
    Create {
        /// A name for people (`web-shop`).
        name: String,
    },
    /// List write keys.
    List,
    /// Revoke a write key by id.
    Revoke {
        /// The key id (wk_...).
        id: String,
    },
}

#[derive(Subcommand)]
enum ApiKeyAction {
    /// Create a key and print it (it is shown only once).
    Create {
        /// A name for people.
        #[arg(long)]
        name: String,
        /// The role the key acts with.
        #[arg(long)]
        role: String,
        /// Store the key is bound to.
        #[arg(long)]
        store: Option<String>,
        /// Channel the key is bound to.
        #[arg(long)]
        channel: Option<String>,
    },
    /// List keys.
    List,
    /// Revoke a key by id.
    Revoke {
        /// The key id (key_...).
        id: String,
    },
}

fn parse_role(s: &str) -> anyhow::Result<Role> {
    Role::parse(s).with_context(|| {
        let all: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
        format!("unknown role {s:?}; expected one of {}", all.join(", "))
    })
}

/// Parses a token lifetime (`90s`, `30m`, `12h`, `7d`; a bare number is seconds): at least one
/// second, at most [`dermis_auth::jwt::MAX_TTL`].
fn parse_ttl(s: &str) -> anyhow::Result<Duration> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let unit_secs: u64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => anyhow::bail!("invalid ttl unit in {s:?}; use s, m, h or d"),
    };
    let max = dermis_auth::jwt::MAX_TTL.as_secs();
    let too_long = || anyhow::anyhow!("ttl {s:?} is too long; a token lives at most {} days", max / 86_400);
    let n: u64 = match n.parse() {
        Ok(n) => n,
        // Only digits, yet no u64: the number is too large.
        Err(_) if !n.is_empty() => return Err(too_long()),
        Err(_) => anyhow::bail!("invalid ttl {s:?}; use a number and a unit such as 90s, 30m, 12h or 7d"),
    };
    let secs = n.checked_mul(unit_secs).filter(|&secs| secs <= max).ok_or_else(too_long)?;
    if secs == 0 {
        anyhow::bail!("ttl {s:?} is zero; a token must live at least a second");
    }
    Ok(Duration::from_secs(secs))
}

/// The HS256 secret for a command that signs tokens without serving: the configured one, or the
/// one `serve` (or `demo`) generated into the data dir. It is never created here: a secret made up
/// by `token` would sign tokens that the server refuses.
fn existing_jwt_secret(config: &Config) -> anyhow::Result<SecretString> {
    if let Some(s) = &config.auth.jwt_secret {
        return Ok(s.clone());
    }
    let path = config.data_dir.join("jwt-secret");
    let shown = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(SecretString::from(text.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "no JWT secret found: {} does not exist and DERMIS_AUTH__JWT_SECRET is not set.\n\
             `dermis serve` and `dermis demo` create that file on their first start in their data directory \
             (./dermis-data by default, relative to the folder they run in). Run this command from that folder, \
             or pass the server's data directory with --data-dir DIR, or set DERMIS_AUTH__JWT_SECRET \
             (auth.jwt_secret) to the secret the server uses.",
            shown.display()
        ),
        Err(e) => Err(e).with_context(|| format!("reading the JWT secret {}", shown.display())),
    }
}

/// How to run this binary again, for the commands the demo prints: `cargo run -q --release --`
/// when run by `cargo run` (which sets `CARGO`), else the path it was started by (`dermis` from
/// the PATH, `./target/release/dermis` ...); with the `--config` it was given.
fn invocation(config_file: Option<&std::path::Path>) -> String {
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

fn apply(config: &mut Config, args: &ServeArgs) {
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(d) = &args.data_dir {
        config.data_dir = d.clone();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref()).context("loading configuration")?;
    init_tracing(&config.log);
    match cli.command {
        Command::Serve { args, demo } => {
            apply(&mut config, &args);
            serve(config, demo, cli.config.as_deref()).await
        }
        Command::Demo { args } => {
            apply(&mut config, &args);
            serve(config, true, cli.config.as_deref()).await
        }
        Command::Migrate { data_dir } => {
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            let db = app::open_store(&config).await?;
            println!("migrations applied ({})", db.backend().name());
            Ok(())
        }
        Command::Token { role, sub, store, ttl, data_dir } => {
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            let role = parse_role(&role)?;
            if role == Role::StoreAssociate && store.is_none() {
                anyhow::bail!("a store_associate token needs --store STORE_ID");
            }
            let ttl = parse_ttl(&ttl)?;
            let secret = existing_jwt_secret(&config)?;
            // The same refusal `serve` gives: a token signed with a short secret would never verify.
            dermis_auth::jwt::check_secret(&secret).map_err(anyhow::Error::msg)?;
            let token =
                dermis_auth::jwt::issue(&secret, role, &sub, store.as_deref(), ttl).map_err(anyhow::Error::msg)?;
            println!("{token}");
            Ok(())
        }
        Command::Import { what: ImportWhat::Catalog { file, json }, data_dir } => {
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            let db = app::open_store(&config).await?;
            let rows = dermis_catalog::import::read_file(&file).map_err(anyhow::Error::msg)?;
            let report = dermis_catalog::import::import(&db, rows, 200).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
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
                    let top: Vec<_> = report
                        .unknown_ingredients
                        .iter()
                        .take(10)
                        .map(|u| format!("{} ({})", u.name, u.products))
                        .collect();
                    println!("  most frequent unknown ingredients: {}", top.join(", "));
                }
            }
            db.close().await;
            Ok(())
        }
        Command::WriteKey { action, data_dir } => {
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            let keys = dermis_events::write_keys::WriteKeys::new(app::open_store(&config).await?);
            match action {
                WriteKeyAction::Create { name } => {
                    let (info, key) = keys.create(&name).await?;
                    eprintln!("created write key {} ({})", info.id, info.name);
                    println!("{key}");
                }
                WriteKeyAction::List => {
                    for k in keys.list().await? {
                        let state = k.revoked_at.as_deref().map_or("active".to_owned(), |t| format!("revoked {t}"));
                        println!("{}\t{}\t{}", k.id, k.name, state);
                    }
                }
                WriteKeyAction::Revoke { id } => {
                    if keys.revoke(&id).await? {
                        println!("revoked {id}");
                    } else {
                        anyhow::bail!("no write key {id}");
                    }
                }
            }
            Ok(())
        }
        Command::ApiKey { action, data_dir } => {
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            let keys = ApiKeys::new(app::open_store(&config).await?);
            match action {
                ApiKeyAction::Create { name, role, store, channel } => {
                    let role = parse_role(&role)?;
                    if role == Role::StoreAssociate && store.is_none() {
                        anyhow::bail!("a store_associate key needs --store STORE_ID");
                    }
                    let (info, secret) = keys.create(NewApiKey { name, role, store_id: store, channel }).await?;
                    eprintln!("created {} ({}); the key below is shown only once:", info.id, info.role);
                    println!("{secret}");
                }
                ApiKeyAction::List => {
                    for k in keys.list().await? {
                        let state = k.revoked_at.as_deref().map_or("active".to_owned(), |t| format!("revoked {t}"));
                        println!("{}\t{}\t{}\t{}\t{}", k.id, k.name, k.role, k.store_id.unwrap_or_default(), state);
                    }
                }
                ApiKeyAction::Revoke { id } => {
                    if keys.revoke(&id).await? {
                        println!("revoked {id}");
                    } else {
                        anyhow::bail!("no API key {id}");
                    }
                }
            }
            Ok(())
        }
    }
}

async fn serve(config: Config, with_demo: bool, config_file: Option<&std::path::Path>) -> anyhow::Result<()> {
    let app = Application::build(config.clone()).await?;
    let base = format!("http://{}:{}", display_host(&config), app.port());
    if with_demo {
        let report = demo::load(app.db()).await.context("loading the demo data")?;
        let events = demo::load_customers(app.ingestor()).await.context("loading the demo customers")?;
        eprintln!("demo customers {}: {events} events stored now", demo::CUSTOMERS.join(", "));
        let secret = app::jwt_secret(&config)?;
        let token = dermis_auth::jwt::issue(
            &secret,
            Role::Merchandiser,
            "demo-merchandiser",
            None,
            Duration::from_secs(12 * 3600),
        )
        .map_err(anyhow::Error::msg)?;
        // The data dir goes after the subcommand (it is not a global flag), when not the default.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_parse_with_their_units() {
        assert_eq!(parse_ttl("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_ttl("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_ttl("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_ttl("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(parse_ttl("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_ttl("366d").unwrap(), dermis_auth::jwt::MAX_TTL);
    }

    #[test]
    fn printed_words_survive_the_shell() {
        assert_eq!(shell_word("./target/release/dermis"), "./target/release/dermis");
        assert_eq!(shell_word("my data"), "'my data'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn huge_zero_and_malformed_ttls_are_clear_errors() {
        for s in ["99999999999999999d", "18446744073709551615d", "18446744073709551616", "367d", "8785h", "31622401s"] {
            let e = parse_ttl(s).unwrap_err().to_string();
            assert!(e.contains("too long") && e.contains("366 days"), "{s}: {e}");
        }
        assert!(parse_ttl("0h").unwrap_err().to_string().contains("zero"));
        for s in ["", "h", "-1h", "1.5h", " 1h", "1w", "1hh"] {
            let e = parse_ttl(s).unwrap_err().to_string();
            assert!(e.contains("invalid ttl"), "{s:?}: {e}");
        }
    }
}
