//! Configuration: built-in defaults, then an optional `dermis.toml`, then `DERMIS_*` environment
//! variables (nested keys with `__`: `DERMIS_AUTH__JWT_SECRET`). Secrets are [`SecretString`]s:
//! their `Debug` output is redacted, so logging the config never leaks them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::SecretString;
use serde::Deserialize;

/// Everything Dermis can be configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address to listen on (`DERMIS_LISTEN`).
    pub listen: SocketAddr,
    /// Directory of the embedded database and generated secrets (`DERMIS_DATA_DIR`).
    pub data_dir: PathBuf,
    /// `postgres://...` to run on PostgreSQL instead of the embedded SQLite file (`DERMIS_DATABASE_URL`).
    pub database_url: Option<SecretString>,
    /// Most database connections per node (`DERMIS_DATABASE_MAX_CONNECTIONS`).
    pub database_max_connections: u32,
    /// `nats://host:4222` to use NATS JetStream as the event bus instead of the embedded one
    /// (`DERMIS_BUS_URL`).
    pub bus_url: Option<SecretString>,
    /// `redis://host:6379` for the online feature store shared by nodes, instead of in memory
    /// (`DERMIS_REDIS_URL`).
    pub redis_url: Option<SecretString>,
    /// The JetStream stream (and subject root, in lower case) of the bus, so several
    /// environments can share one NATS (`DERMIS_BUS_STREAM`, default `DERMIS`).
    pub bus_stream: String,
    /// This node's name: its bus consumers and feature snapshot are kept under it. Give each node
    /// its own (`DERMIS_NODE_ID`; default the host name).
    pub node_id: String,
    /// HTTP limits and CORS.
    pub http: HttpConfig,
    /// Token verification.
    pub auth: AuthConfig,
    /// Logging.
    pub log: LogConfig,
    /// Event ingestion.
    pub events: EventsConfig,
    /// The online feature store.
    pub features: FeaturesConfig,
    /// Customer data.
    pub customers: CustomersConfig,
    /// How long each kind of data is kept.
    pub retention: RetentionConfig,
    /// The recommendation engine.
    pub recommend: RecommendConfig,
    /// The inventory ledger.
    pub inventory: InventoryConfig,
}

/// The inventory ledger (`DERMIS_INVENTORY__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct InventoryConfig {
    /// A cart hold's time to live in seconds when the request names none
    /// (`DERMIS_INVENTORY__HOLD_TTL_SECS`).
    pub hold_ttl_secs: u64,
    /// The same for holds of the `pos` channel.
    pub pos_hold_ttl_secs: u64,
    /// The longest hold a request may ask for.
    pub max_hold_ttl_secs: u64,
    /// Seconds between runs of the sweeper that returns expired holds to stock (expired holds
    /// stop counting at once either way).
    pub sweep_secs: u64,
    /// Tries of a webhook delivery before it is dead.
    pub webhook_attempts: u32,
    /// The pause after a webhook delivery's first failure, in ms; it doubles after each.
    pub webhook_first_backoff_ms: u64,
    /// A secret shared by the nodes of one deployment (`DERMIS_INVENTORY__CLUSTER_SECRET`, at
    /// least 16 characters). With it, nodes sharing a database keep one writer of the ledger (a
    /// lease) and forward their writes to it, instead of taking turns; unset, each node writes
    /// itself (correct, slower when several write).
    pub cluster_secret: Option<SecretString>,
    /// The base URL other nodes reach this one at (`DERMIS_INVENTORY__ADVERTISE_URL`). Needed
    /// with a cluster secret when listening on all addresses; otherwise `http://` the listening
    /// address and port.
    pub advertise_url: Option<String>,
    /// The writer lease's time to live, in ms; renewed every third of it. A holder that stops
    /// gives it up at once; one that dies is replaced after this (its peers write themselves
    /// meanwhile).
    pub lease_ttl_ms: u64,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        Self {
            hold_ttl_secs: 900,
            pos_hold_ttl_secs: 300,
            max_hold_ttl_secs: 86_400,
            sweep_secs: 5,
            webhook_attempts: 8,
            webhook_first_backoff_ms: 2_000,
            cluster_secret: None,
            advertise_url: None,
            lease_ttl_ms: 10_000,
        }
    }
}

/// The recommendation engine (`DERMIS_RECOMMEND__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RecommendConfig {
    /// The collaborative model served: `hybrid` (default), `ease`, `als`, `item-knn`,
    /// `popularity`.
    pub model: String,
    /// Seconds between retrains while interactions change (`DERMIS_RECOMMEND__RETRAIN_SECS`).
    pub retrain_secs: u64,
    /// A JSON file of business rules (boost, bury, pin by expression), see docs/api.md.
    pub rules_file: Option<PathBuf>,
    /// Weather: `offline` (season and typical UV from latitude and date, the default) or
    /// `open-meteo` (the Open-Meteo API, falling back to offline when it fails).
    pub weather: String,
    /// The Open-Meteo forecast API's base URL (another host serving the same format).
    pub open_meteo_url: Option<String>,
    /// The Open-Meteo air-quality API's base URL.
    pub open_meteo_air_quality_url: Option<String>,
}

impl Default for RecommendConfig {
    fn default() -> Self {
        Self {
            model: "hybrid".into(),
            retrain_secs: 600,
            rules_file: None,
            weather: "offline".into(),
            open_meteo_url: None,
            open_meteo_air_quality_url: None,
        }
    }
}

/// How long each kind of data is kept, in days (0: kept for ever), and how often the sweeper
/// applies it (see `crate::background`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RetentionConfig {
    /// Events received longer ago are anonymized: what links them to a person goes, the event
    /// name, time and non-personal properties stay (`DERMIS_RETENTION__EVENTS_DAYS`; default
    /// 395, about 13 months).
    pub events_days: i64,
    /// Skin measurements recorded longer ago are deleted (`DERMIS_RETENTION__MEASUREMENTS_DAYS`;
    /// default 730).
    pub measurements_days: i64,
    /// Dead letters received longer ago are deleted (`DERMIS_RETENTION__DEAD_LETTERS_DAYS`;
    /// default 30).
    pub dead_letters_days: i64,
    /// Seconds between sweeps (`DERMIS_RETENTION__SWEEP_EVERY_SECS`; default 3600; 0 turns the
    /// sweeper off).
    pub sweep_every_secs: i64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self { events_days: 395, measurements_days: 730, dead_letters_days: 30, sweep_every_secs: 3600 }
    }
}

/// The longest retention accepted, in days (100 years): more is a typo.
pub const RETENTION_MAX_DAYS: i64 = 36_500;

impl RetentionConfig {
    /// Refuses negative or absurd values, naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        for (name, days) in [
            ("events_days", self.events_days),
            ("measurements_days", self.measurements_days),
            ("dead_letters_days", self.dead_letters_days),
        ] {
            if !(0..=RETENTION_MAX_DAYS).contains(&days) {
                return Err(format!(
                    "retention.{name} (DERMIS_RETENTION__{}) must be between 0 (keep for ever) and {RETENTION_MAX_DAYS} days, not {days}",
                    name.to_ascii_uppercase()
                ));
            }
        }
        if !(0..=7 * 24 * 3600).contains(&self.sweep_every_secs) {
            return Err(format!(
                "retention.sweep_every_secs (DERMIS_RETENTION__SWEEP_EVERY_SECS) must be between 0 (off) and 604800 (a week), not {}",
                self.sweep_every_secs
            ));
        }
        Ok(())
    }
}

/// Customer data: the master key that wraps every customer's data key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CustomersConfig {
    /// The master key, base64 of 32 random bytes (`DERMIS_CUSTOMERS__MASTER_KEY`). Every node of
    /// a deployment needs the same one; on the embedded default without one, a key is created in
    /// `DATA_DIR/master.key` (back it up apart from the database: losing it loses every
    /// customer's personal data).
    pub master_key: Option<SecretString>,
    /// Or a file holding it (`DERMIS_CUSTOMERS__MASTER_KEY_FILE`).
    pub master_key_file: Option<PathBuf>,
    /// Earlier master keys (base64), still accepted while data keys are re-wrapped after a
    /// rotation (`DERMIS_CUSTOMERS__PREVIOUS_MASTER_KEYS`, comma-separated).
    pub previous_master_keys: Option<SecretString>,
    /// How long an asynchronous export's document is kept, in seconds
    /// (`DERMIS_CUSTOMERS__EXPORT_TTL_SECS`; default 7 days).
    pub export_ttl_secs: Option<u64>,
    /// Which consent categories (Segment `context.consent.categoryPreferences`) and consent ids
    /// (RudderStack `context.consentManagement`) stand for which purposes, per source
    /// (`{"segment": {"Ads": ["marketing_email"]}, "rudderstack": {"C0004": [...]}}`); a source
    /// given replaces that source's defaults (see `dermis_customers::feed`).
    pub consent_mapping: Option<dermis_customers::feed::ConsentMapping>,
}

impl CustomersConfig {
    /// How long an asynchronous export is kept.
    pub fn export_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.export_ttl_secs.unwrap_or(7 * 24 * 3600))
    }
}

/// The online feature store.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct FeaturesConfig {
    /// Seconds between snapshots of the in-memory features to the store; 0 turns them off
    /// (`DERMIS_FEATURES__SNAPSHOT_SECS`).
    pub snapshot_secs: u64,
}

impl Default for FeaturesConfig {
    fn default() -> Self {
        Self { snapshot_secs: 60 }
    }
}

/// Event ingestion.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct EventsConfig {
    /// Ingestion requests writing at once; more wait 250 ms, then get a 429
    /// (`DERMIS_EVENTS__INGEST_CONCURRENCY`).
    pub ingest_concurrency: usize,
    /// A bus consumer this many messages behind is reported (`bus_consumer_lagging` = 1 and a
    /// warning in the log) (`DERMIS_EVENTS__LAG_ALERT`).
    pub lag_alert: u64,
    /// Trait keys moved out of stored messages besides the bundled ones (email, phone, names,
    /// address, birthday, allergies and health traits: see `dermis_events::pii`)
    /// (`DERMIS_EVENTS__PERSONAL_TRAITS=loyalty_card,passport`).
    #[serde(deserialize_with = "list")]
    pub personal_traits: Vec<String>,
    /// `track` properties moved out besides `email`, `phone` and `allergies`
    /// (`DERMIS_EVENTS__PERSONAL_PROPERTIES`).
    #[serde(deserialize_with = "list")]
    pub personal_properties: Vec<String>,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self { ingest_concurrency: 64, lag_alert: 1000, personal_traits: Vec::new(), personal_properties: Vec::new() }
    }
}

/// HTTP limits and CORS.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes (`DERMIS_HTTP__BODY_LIMIT_BYTES`).
    pub body_limit_bytes: usize,
    /// Longest a request may take, in seconds (`DERMIS_HTTP__REQUEST_TIMEOUT_SECS`).
    pub request_timeout_secs: u64,
    /// Origins allowed by CORS; empty = no cross-origin access; `["*"]` = any
    /// (`DERMIS_HTTP__CORS_ORIGINS=https://shop.example,https://app.example`).
    #[serde(deserialize_with = "list")]
    pub cors_origins: Vec<String>,
    /// Seconds in-flight requests get to finish after SIGTERM (`DERMIS_HTTP__SHUTDOWN_GRACE_SECS`).
    pub shutdown_grace_secs: u64,
    /// Seconds a connection has to send a request's complete headers, from connecting and from
    /// its previous answer (so it also closes idle keep-alive connections)
    /// (`DERMIS_HTTP__HEADER_READ_TIMEOUT_SECS`). Behind a load balancer that keeps idle
    /// connections open longer, set it above the balancer's idle timeout.
    pub header_read_timeout_secs: u64,
    /// Connections open at once; more are closed as they arrive (`DERMIS_HTTP__MAX_CONNECTIONS`).
    pub max_connections: usize,
}

/// Token verification.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// HS256 secret (at least 32 bytes). When unset, one is generated into `DATA_DIR/jwt-secret`
    /// (`DERMIS_AUTH__JWT_SECRET`).
    pub jwt_secret: Option<SecretString>,
    /// JWKS file of an OIDC provider (`DERMIS_AUTH__JWKS_FILE`).
    pub jwks_file: Option<PathBuf>,
    /// JWKS URL of an OIDC provider (`DERMIS_AUTH__JWKS_URL`).
    pub jwks_url: Option<String>,
    /// Required `iss` (`DERMIS_AUTH__ISSUER`).
    pub issuer: Option<String>,
    /// Required `aud` (`DERMIS_AUTH__AUDIENCE`).
    pub audience: Option<String>,
    /// Claim with the role (`DERMIS_AUTH__ROLE_CLAIM`, default `role`).
    pub role_claim: String,
    /// Claim with the store id (`DERMIS_AUTH__STORE_CLAIM`, default `store`).
    pub store_claim: String,
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// `text` or `json` (`DERMIS_LOG__FORMAT`).
    pub format: String,
    /// A tracing filter such as `info,dermis=debug` (`DERMIS_LOG__FILTER`; `RUST_LOG` wins if set).
    pub filter: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("dermis-data"),
            database_url: None,
            database_max_connections: 16,
            bus_url: None,
            redis_url: None,
            bus_stream: "DERMIS".into(),
            node_id: default_node_id(),
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
            log: LogConfig::default(),
            events: EventsConfig::default(),
            features: FeaturesConfig::default(),
            customers: CustomersConfig::default(),
            retention: RetentionConfig::default(),
            recommend: RecommendConfig::default(),
            inventory: InventoryConfig::default(),
        }
    }
}

/// The host name (`HOSTNAME`, else `/etc/hostname`), else `local`.
fn default_node_id() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "local".into())
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            cors_origins: Vec::new(),
            shutdown_grace_secs: 30,
            header_read_timeout_secs: 20,
            max_connections: 1000,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            jwks_file: None,
            jwks_url: None,
            issuer: None,
            audience: None,
            role_claim: "role".into(),
            store_claim: "store".into(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: "text".into(), filter: "info".into() }
    }
}

/// Accepts a list either as a TOML/JSON array or as one comma-separated string (from the environment).
fn list<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Either::deserialize(de)? {
        Either::One(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        Either::Many(v) => v,
    })
}

impl Config {
    /// Loads the layers: defaults, then `file` (or `./dermis.toml` if it exists), then `DERMIS_*`.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let toml = file.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("dermis.toml"));
        if file.is_some() && !toml.exists() {
            return Err(Box::new(figment::Error::from(format!("config file {} does not exist", toml.display()))));
        }
        Figment::new()
            .merge(Toml::file(toml))
            .merge(Env::prefixed("DERMIS_").split("__").ignore(&[
                "test_database_url",
                "test_redis_url",
                "test_nats_url",
                "require_services",
            ]))
            .extract::<Self>()
            .map_err(Box::new)
            .and_then(|c| {
                c.retention.validate().map_err(|e| Box::new(figment::Error::from(e)))?;
                Ok(c)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the closure's error type
    fn layers_apply_in_order_and_secrets_stay_hidden() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("dermis.toml", "listen = \"0.0.0.0:9000\"\n[http]\nbody_limit_bytes = 2048\n")?;
            jail.set_env("DERMIS_HTTP__BODY_LIMIT_BYTES", "4096");
            jail.set_env("DERMIS_AUTH__JWT_SECRET", "a-very-secret-value-that-is-long-enough");
            jail.set_env("DERMIS_HTTP__CORS_ORIGINS", "https://shop.example, https://app.example");
            let c = Config::load(None).expect("config");
            assert_eq!(c.listen.port(), 9000, "file over defaults");
            assert_eq!(c.http.body_limit_bytes, 4096, "environment over file");
            assert_eq!(c.http.cors_origins, ["https://shop.example", "https://app.example"]);
            assert_eq!(c.auth.jwt_secret.as_ref().unwrap().expose_secret(), "a-very-secret-value-that-is-long-enough");
            assert!(!format!("{c:?}").contains("a-very-secret"), "Debug output redacts secrets");
            assert_eq!(c.data_dir, PathBuf::from("dermis-data"), "defaults fill the rest");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the closure's error type
    fn retention_has_defaults_reads_the_environment_and_refuses_bad_values() {
        figment::Jail::expect_with(|jail| {
            let c = Config::load(None).expect("config");
            assert_eq!(
                (c.retention.events_days, c.retention.measurements_days, c.retention.dead_letters_days),
                (395, 730, 30)
            );
            assert_eq!(c.retention.sweep_every_secs, 3600);
            jail.set_env("DERMIS_RETENTION__EVENTS_DAYS", "0");
            jail.set_env("DERMIS_RETENTION__MEASUREMENTS_DAYS", "365");
            let c = Config::load(None).expect("config");
            assert_eq!((c.retention.events_days, c.retention.measurements_days), (0, 365), "0 keeps events for ever");
            jail.set_env("DERMIS_RETENTION__MEASUREMENTS_DAYS", "-1");
            let e = Config::load(None).expect_err("a negative retention is refused").to_string();
            assert!(e.contains("retention.measurements_days") && e.contains("-1"), "{e}");
            jail.set_env("DERMIS_RETENTION__MEASUREMENTS_DAYS", "730");
            jail.set_env("DERMIS_RETENTION__DEAD_LETTERS_DAYS", "99999999");
            let e = Config::load(None).expect_err("an absurd retention is refused").to_string();
            assert!(e.contains("retention.dead_letters_days"), "{e}");
            jail.set_env("DERMIS_RETENTION__DEAD_LETTERS_DAYS", "30");
            jail.set_env("DERMIS_RETENTION__SWEEP_EVERY_SECS", "-5");
            let e = Config::load(None).expect_err("a negative period is refused").to_string();
            assert!(e.contains("sweep_every_secs"), "{e}");
            Ok(())
        });
    }
}
