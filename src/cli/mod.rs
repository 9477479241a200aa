//! The `dermis` command line: its arguments ([`Cli`]) and one function per command.
//!
//! # Layout
//! - this module: the clap types, the global options (`--config`, `--data-dir`) and [`run`],
//!   which dispatches a parsed command.
//! - [`serve`]: the `serve` and `demo` commands (`demo` serves with the demo data loaded and says
//!   what to try).
//! - [`migrate`]: the `migrate` command (apply every migration, then exit).
//! - [`token`]: the `token` command (a bearer token signed with the server's secret).
//! - [`keys`]: the `write-key create|list|revoke` and `api-key create|list|revoke` commands.
//! - [`import`]: the `import catalog` and `import interactions` commands.
//! - [`audit`]: the `audit verify` and `audit export` commands.
//! - [`recommend`]: the `eval` and `recommend-batch` commands (the recommendation engine offline,
//!   on interaction files).
//! - [`customers`]: the `customers rotate-master-key` command.
//! - [`simulate`]: the `simulate` command (the experiments simulator: bandit regret, an A/B test
//!   with a planted uplift, power, off-policy estimates; SVG plots and a summary).
//!
//! `--config` and `--data-dir` are global: they go before or after the subcommand
//! (`dermis --data-dir DIR token ...` and `dermis token ... --data-dir DIR` are the same).

mod audit;
mod customers;
mod import;
mod inventory;
mod keys;
mod migrate;
mod recommend;
mod serve;
mod simulate;
mod token;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use dermis_auth::Role;
use dermis_server::Config;

/// Dermis: the backend of a multi-channel skincare brand.
#[derive(Parser)]
#[command(version, about)]
pub struct Cli {
    /// Configuration file (default: ./dermis.toml if it exists).
    #[arg(long, global = true, env = "DERMIS_CONFIG")]
    config: Option<PathBuf>,
    /// Directory of the embedded database and of the generated JWT secret (default ./dermis-data).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<SocketAddr>,
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
    Migrate,
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
    },
    /// Import data.
    Import {
        #[command(subcommand)]
        what: ImportWhat,
    },
    /// Manage write keys for event sources (web shop, app, POS).
    WriteKey {
        #[command(subcommand)]
        action: WriteKeyAction,
    },
    /// Manage API keys for machine clients.
    ApiKey {
        #[command(subcommand)]
        action: ApiKeyAction,
    },
    /// Check or export the audit log.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Fit the recommendation models on training interactions and compare them on held-out ones:
    /// NDCG, Recall and HitRate at k, catalog coverage, fit time (relevant = held-out pairs rated
    /// 4 or more; every product the user has not interacted with is ranked).
    Eval {
        /// Training interactions (`author_id,product_id,rating[,submission_time]`, .csv or
        /// .csv.gz); several files comma-separated or repeated.
        #[arg(long, value_delimiter = ',', required_unless_present = "cold_start")]
        train: Vec<PathBuf>,
        /// Held-out interactions, same columns.
        #[arg(long, required_unless_present = "cold_start")]
        test: Option<PathBuf>,
        /// Models to compare (default all): popularity, item-knn, ease, als, hybrid.
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// The cut-off.
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// Weight of a review by star, `w1,w2,w3,w4,w5` (default 1,1,1,1,1: every review is one
        /// interaction).
        #[arg(long)]
        review_weights: Option<String>,
        /// A catalog (Sephora product_info .csv or .csv.gz). With --train/--test: every test user
        /// gets a reproducible random safety profile (30% with 1-3 common allergies, 10% pregnant,
        /// 20% sensitive skin) and the violations in each model's top k are counted, before and
        /// after the safety layer (without it the column says n/a). With --cold-start: the
        /// products ranked are its skin care.
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// The seed of the safety profiles (needs --catalog).
        #[arg(long, requires = "catalog")]
        safety_profiles: Option<u64>,
        /// Cold start instead: reviewers with a skin type (--reviews), split 80/20 by a hash of
        /// author_id; test reviewers ranked from their skin type alone against popularity, global
        /// and per skin type, content alone and the blend (tuned on the fit reviewers only).
        #[arg(long, requires_all = ["reviews", "catalog"], conflicts_with_all = ["train", "test", "models", "review_weights", "safety_profiles"])]
        cold_start: bool,
        /// Review files with `author_id, rating, skin_type, product_id` (the 2023 skin care
        /// reviews), for --cold-start; several comma-separated or repeated.
        #[arg(long, value_delimiter = ',', requires = "cold_start")]
        reviews: Vec<PathBuf>,
    },
    /// Write the top k products for each user of a list as CSV `user_id,rank,product_id`,
    /// never one the user interacted with.
    RecommendBatch {
        /// Interactions to learn from (`author_id,product_id,rating[,submission_time]`, .csv or
        /// .csv.gz); several files comma-separated or repeated.
        #[arg(long, required = true, value_delimiter = ',')]
        interactions: Vec<PathBuf>,
        /// A catalog (Sephora product_info .csv or .csv.gz): only its products are recommended.
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// The users, one author_id per line.
        #[arg(long)]
        users: PathBuf,
        /// Products per user.
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// The output CSV.
        #[arg(long)]
        out: PathBuf,
        /// The model: popularity, item-knn, ease, als or hybrid.
        #[arg(long, default_value = "hybrid")]
        model: String,
        /// Weight of a review by star, `w1,w2,w3,w4,w5`.
        #[arg(long)]
        review_weights: Option<String>,
    },
    /// Simulate synthetic customers with hidden preferences: Thompson sampling, LinUCB and random
    /// bandits, an A/B test with a planted uplift, its power and off-policy estimates; writes
    /// regret.svg, uplift.svg, arms.svg and summary.json into --out and prints the summary. No
    /// database.
    Simulate {
        /// Visitors shown to each bandit.
        #[arg(long, default_value_t = 20_000)]
        steps: usize,
        /// The seed of every random draw (the same seed gives the same files).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// The directory the plots and summary.json are written into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Customer data administration.
    Customers {
        #[command(subcommand)]
        action: CustomersAction,
    },
    /// Inventory administration.
    Inventory {
        #[command(subcommand)]
        action: InventoryAction,
    },
}

#[derive(Subcommand)]
enum InventoryAction {
    /// Recompute every balance from the journal of movements and compare with the stored balance
    /// rows; the rows are replaced by the journal's figures. Exits 0 when they matched, 1 when
    /// they did not (and were repaired). `--check` compares without writing.
    Rebuild {
        /// Compare only; change nothing.
        #[arg(long)]
        check: bool,
    },
}

#[derive(Subcommand)]
enum CustomersAction {
    /// Re-wrap every customer's data key under `customers.master_key` (the old key listed in
    /// `customers.previous_master_keys`); no data is re-encrypted. Safe to run again: an
    /// interrupted run is finished, a finished one re-wraps nothing. Prints how many keys were
    /// re-wrapped.
    RotateMasterKey,
}

#[derive(Subcommand)]
enum AuditAction {
    /// Recompute the hash chain: prints the entry count and exits 0 when intact; names the first
    /// edited, deleted or inserted entry and exits 1 otherwise.
    Verify,
    /// Print the entries about one customer as JSON.
    Export {
        /// The customer id.
        customer_id: String,
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
    /// Import reviews (`author_id,product_id,rating[,submission_time]`, .csv or .csv.gz;
    /// `product_id` is the catalog's external id) as `Product Reviewed` events through event
    /// ingestion. Importing again stores nothing twice.
    Interactions {
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

impl Cli {
    /// The configuration: defaults, then the file, then `DERMIS_*`, then the global options.
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref()).context("loading configuration")?;
        if let Some(d) = &self.data_dir {
            config.data_dir = d.clone();
        }
        Ok(config)
    }
}

/// Runs the parsed command with the configuration [`Cli::load_config`] gave.
pub async fn run(cli: Cli, mut config: Config) -> anyhow::Result<()> {
    let config_file = cli.config.as_deref();
    match cli.command {
        Command::Serve { args, demo } => {
            args.apply(&mut config);
            serve::serve(config, demo, config_file).await
        }
        Command::Demo { args } => {
            args.apply(&mut config);
            serve::serve(config, true, config_file).await
        }
        Command::Migrate => migrate::migrate(&config).await,
        Command::Token { role, sub, store, ttl } => token::token(&config, &role, &sub, store.as_deref(), &ttl),
        Command::Import { what: ImportWhat::Catalog { file, json } } => import::catalog(&config, &file, json).await,
        Command::Import { what: ImportWhat::Interactions { file, json } } => {
            import::interactions::run(&config, &file, json).await
        }
        Command::WriteKey { action } => keys::write_key(&config, action).await,
        Command::ApiKey { action } => keys::api_key(&config, action).await,
        Command::Audit { action: AuditAction::Verify } => audit::verify(&config).await,
        Command::Audit { action: AuditAction::Export { customer_id } } => audit::export(&config, &customer_id).await,
        Command::Eval { train, test, models, k, review_weights, catalog, safety_profiles, cold_start, reviews } => {
            match (cold_start, test, catalog) {
                (true, _, Some(catalog)) => recommend::cold_start(&reviews, &catalog, k),
                (false, Some(test), catalog) => recommend::eval(
                    &train,
                    &test,
                    &models,
                    k,
                    review_weights.as_deref(),
                    catalog.as_deref(),
                    safety_profiles.unwrap_or(14),
                ),
                _ => anyhow::bail!("eval needs --train and --test, or --cold-start with --reviews and --catalog"),
            }
        }
        Command::RecommendBatch { interactions, catalog, users, k, out, model, review_weights } => {
            recommend::recommend_batch(
                &interactions,
                catalog.as_deref(),
                &users,
                k,
                &out,
                &model,
                review_weights.as_deref(),
            )
        }
        Command::Simulate { steps, seed, out } => simulate::simulate(steps, seed, &out),
        Command::Customers { action: CustomersAction::RotateMasterKey } => customers::rotate_master_key(&config).await,
        Command::Inventory { action: InventoryAction::Rebuild { check } } => inventory::rebuild(&config, !check).await,
    }
}

impl ServeArgs {
    fn apply(&self, config: &mut Config) {
        if let Some(l) = self.listen {
            config.listen = l;
        }
    }
}

/// A role by name, or an error listing the roles.
fn parse_role(s: &str) -> anyhow::Result<Role> {
    Role::parse(s).with_context(|| {
        let all: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
        format!("unknown role {s:?}; expected one of {}", all.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("dermis").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn data_dir_is_accepted_before_and_after_every_subcommand() {
        let forms: &[&[&str]] = &[
            &["token", "--role", "customer", "--sub", "bench", "--data-dir", "D"],
            &["--data-dir", "D", "token", "--role", "customer"],
            &["import", "catalog", "F.csv", "--data-dir", "D"],
            &["import", "--data-dir", "D", "catalog", "F.csv", "--json"],
            &["--data-dir", "D", "import", "catalog", "F.csv"],
            &["serve", "--listen", "127.0.0.1:0", "--data-dir", "D"],
            &["demo", "--data-dir", "D"],
            &["migrate", "--data-dir", "D"],
            &["write-key", "create", "web-shop", "--data-dir", "D"],
            &["write-key", "--data-dir", "D", "list"],
            &["api-key", "create", "--name", "n", "--role", "service", "--data-dir", "D"],
            &["audit", "verify", "--data-dir", "D"],
            &["--data-dir", "D", "audit", "export", "c1"],
            &["customers", "rotate-master-key", "--data-dir", "D"],
        ];
        for args in forms {
            assert_eq!(parse(args).data_dir, Some(PathBuf::from("D")), "{args:?}");
        }
        assert_eq!(parse(&["token", "--role", "admin"]).data_dir, None);
    }

    #[test]
    fn unknown_roles_name_the_known_ones() {
        let e = parse_role("root").unwrap_err().to_string();
        assert!(e.contains("root") && e.contains("store_associate"), "{e}");
        assert_eq!(parse_role("customer").unwrap(), Role::Customer);
    }

    #[test]
    fn eval_and_recommend_batch_take_lists_of_files() {
        let cli = parse(&["eval", "--train", "a.csv,b.csv.gz", "--test", "v.csv", "--data-dir", "D"]);
        let Command::Eval { train, test, models, k, .. } = cli.command else { panic!("not eval") };
        assert_eq!(train, [PathBuf::from("a.csv"), PathBuf::from("b.csv.gz")]);
        assert_eq!((test, models.len(), k), (Some(PathBuf::from("v.csv")), 0, 10));
        let cli = parse(&[
            "recommend-batch",
            "--interactions",
            "a.csv",
            "--interactions",
            "b.csv",
            "--users",
            "u.txt",
            "--k",
            "5",
            "--out",
            "r.csv",
        ]);
        let Command::RecommendBatch { interactions, catalog, k, model, .. } = cli.command else {
            panic!("not recommend-batch")
        };
        assert_eq!((interactions.len(), catalog, k, model.as_str()), (2, None, 5, "hybrid"));
    }
}
