//! [`Application`]: opens the store, runs migrations, wires the domains' routers behind the
//! middleware, and binds the listener (port 0 in tests).

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{from_fn, from_fn_with_state};
use dermis_audit::{Audit, Auditor};
use dermis_auth::Authenticator;
use dermis_auth::api_keys::ApiKeys;
use dermis_auth::jwt::{JwksSource, JwtConfig, JwtVerifier, load_or_create_secret};
use dermis_bus::EventBus;
use dermis_bus::embedded::EmbeddedBus;
use dermis_bus::nats::NatsBus;
use dermis_bus::projection::{Monitor, Projection, Settings};
use dermis_bus::relay::OutboxSource;
use dermis_catalog::Catalog;
use dermis_catalog::index::SearchIndex;
use dermis_catalog::relay::CatalogOutbox;
use dermis_catalog::routes::CatalogState;
use dermis_core::clock::SharedClock;
use dermis_customers::Customers;
use dermis_customers::crypto::Keyring;
use dermis_customers::feed::CustomersIngest;
use dermis_customers::online::RedisProfiles;
use dermis_customers::privacy::EventsData;
use dermis_customers::projection::ProfileProjection;
use dermis_customers::relay::CustomersOutbox;
use dermis_customers::routes::CustomersState;
use dermis_events::ingest::Ingestor;
use dermis_events::relay::IngestedOutbox;
use dermis_events::routes::{EventsState, INGESTION_PATHS};
use dermis_features::directory::CatalogDirectory;
use dermis_features::memory::MemoryFeatures;
use dermis_features::redis_store::RedisFeatures;
use dermis_features::routes::FeaturesState;
use dermis_features::{FeatureProjection, FeatureStore, Features};
use dermis_feedback::Experiments;
use dermis_feedback::routes::FeedbackState;
use dermis_inventory::Inventory;
use dermis_inventory::directory::SkuDirectory;
use dermis_inventory::events::{Follower, InventoryOutbox};
use dermis_inventory::routes::{HoldSettings, InventoryState};
use dermis_inventory::webhooks::{Deliverer, RetryPolicy, WebhookFeed, Webhooks};
use dermis_orders::Orders;
use dermis_orders::routes::OrdersState;
use dermis_recommend::routes::RecommendState;
use dermis_recommend::safety::Safety;
use dermis_recommend::serving::live::{LiveHook, LiveInteractions};
use dermis_recommend::serving::products::CatalogView;
use dermis_recommend::serving::{Engine, EngineConfig};
use dermis_recommend::weather::{OpenMeteo, WeatherProvider, WithFallback};
use dermis_store::db::PoolSize;
use dermis_store::{Db, Migration};
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::background::{Background, Parts};
use crate::config::Config;
use crate::ops::{self, OpsState};
use crate::{http, metrics, openapi};

/// Every domain's migrations, in the order they apply.
pub const MIGRATIONS: &[&[Migration]] = &[
    dermis_store::MIGRATIONS,
    dermis_auth::MIGRATIONS,
    dermis_catalog::MIGRATIONS,
    dermis_events::MIGRATIONS,
    dermis_bus::MIGRATIONS,
    dermis_features::MIGRATIONS,
    dermis_customers::MIGRATIONS,
    dermis_audit::MIGRATIONS,
    dermis_inventory::MIGRATIONS,
    dermis_orders::MIGRATIONS,
    dermis_feedback::MIGRATIONS,
];

/// A built, bound, not yet serving application.
pub struct Application {
    listener: TcpListener,
    router: Router,
    db: Db,
    bus: Arc<dyn EventBus>,
    ingestor: Ingestor,
    catalog: Catalog,
    features: Features,
    customers: Customers,
    engine: Arc<Engine>,
    inventory: Inventory,
    webhooks: Webhooks,
    outboxes: Vec<Arc<dyn OutboxSource>>,
    projections: Vec<Arc<dyn Projection>>,
    monitor: Arc<OnceLock<Monitor>>,
    config: Config,
}

/// The domain services of one application, as the router serves them.
#[derive(Clone)]
pub struct Domains {
    /// The catalog.
    pub catalog: Catalog,
    /// Event ingestion.
    pub ingestor: Ingestor,
    /// The online feature store.
    pub features: Features,
    /// Customers and their profiles.
    pub customers: Customers,
    /// The audit log every access to personal data and every admin action is recorded in.
    pub audit: Arc<dyn Auditor>,
    /// The recommendation engine and what it reads per request.
    pub recommend: RecommendState,
    /// The inventory ledger and what its routes need.
    pub inventory: InventoryState,
    /// Carts and orders.
    pub orders: Orders,
    /// Experiments and their results.
    pub experiments: Experiments,
}

/// The recommendation engine's settings from the configuration.
pub fn engine_config(config: &Config) -> anyhow::Result<EngineConfig> {
    let model = dermis_recommend::ModelKind::parse(&config.recommend.model).context("recommend.model")?;
    Ok(EngineConfig { model, retrain_secs: config.recommend.retrain_secs.max(1), ..EngineConfig::default() })
}

/// The weather provider `recommend.weather` names (`None`: the offline one, per request).
pub fn weather_provider(config: &Config) -> anyhow::Result<Option<Arc<dyn WeatherProvider>>> {
    let r = &config.recommend;
    Ok(match r.weather.as_str() {
        "offline" => None,
        "open-meteo" => {
            let api = OpenMeteo::new(
                r.open_meteo_url.clone().unwrap_or_else(|| "https://api.open-meteo.com".into()),
                r.open_meteo_air_quality_url.clone().unwrap_or_else(|| "https://air-quality-api.open-meteo.com".into()),
            );
            Some(Arc::new(WithFallback::new(Arc::new(api))))
        }
        other => anyhow::bail!("recommend.weather must be offline or open-meteo, not {other:?}"),
    })
}

/// The event bus when `DERMIS_BUS_URL` names NATS JetStream; `None` for the embedded one (which
/// the application opens on its store).
pub async fn open_nats(config: &Config) -> anyhow::Result<Option<Arc<dyn EventBus>>> {
    // The URL may carry credentials: it is never printed.
    Ok(match config.bus_url.as_ref().map(|u| u.expose_secret()) {
        Some(url) if url.starts_with("nats://") || url.starts_with("tls://") => {
            Some(Arc::new(NatsBus::connect(url, &config.bus_stream, Duration::from_secs(30)).await.map_err(|e| {
                anyhow::anyhow!("connecting to DERMIS_BUS_URL failed ({})", redact(&e.to_string(), url))
            })?))
        }
        Some(_) => anyhow::bail!("DERMIS_BUS_URL must start with nats:// or tls://"),
        None => None,
    })
}

/// The online feature store: Redis for `redis://` URLs (shared by nodes), else in memory (then
/// also returned as such, for its snapshots).
pub async fn open_features(config: &Config) -> anyhow::Result<(Arc<dyn FeatureStore>, Option<Arc<MemoryFeatures>>)> {
    Ok(match config.redis_url.as_ref().map(|u| u.expose_secret()) {
        Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
            let redis = RedisFeatures::connect(url, "dermis").await.map_err(|e| {
                anyhow::anyhow!("connecting to DERMIS_REDIS_URL failed ({})", redact(&e.to_string(), url))
            })?;
            match redis.forget_clear_customers().await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(keys = n, "customer keys of an earlier release (ids in clear) removed from Redis")
                }
                Err(e) => tracing::warn!(error = %e, "removing customer keys with ids in clear from Redis failed"),
            }
            (Arc::new(redis), None)
        }
        Some(_) => anyhow::bail!("DERMIS_REDIS_URL must start with redis:// or rediss://"),
        None => {
            let memory = Arc::new(MemoryFeatures::new());
            (memory.clone(), Some(memory))
        }
    })
}

/// Customers: their master key from the configuration (on the embedded default, created in the
/// data folder when none is configured), their personal data in other domains (the event log)
/// reached by export and erasure.
/// The customers' serving facts: in Redis when `redis_url` is set (sealed under each customer's
/// data key, shared by the nodes), else in this node's memory.
pub async fn open_profiles(config: &Config, customers: &Customers) -> anyhow::Result<ProfileProjection> {
    Ok(match config.redis_url.as_ref().map(|u| u.expose_secret()) {
        Some(url) => {
            let redis = RedisProfiles::connect(url, "dermis", customers.clone())
                .await
                .map_err(|e| anyhow::anyhow!("connecting to Redis for customers' profiles: {e}"))?;
            ProfileProjection::with_redis(customers.clone(), redis)
        }
        None => ProfileProjection::new(customers.clone()),
    })
}

async fn open_customers(
    config: &Config,
    db: &Db,
    clock: &SharedClock,
    ingestor: &Ingestor,
    features: &Features,
    orders: &Arc<OnceLock<Orders>>,
) -> anyhow::Result<Customers> {
    let keys = customers_keyring(config)?;
    let customers = Customers::open(db.clone(), keys, clock.clone()).await.context("opening customers")?;
    Ok(customers
        .with_personal_data(Arc::new(EventsData::new(ingestor.clone())))
        .with_personal_data(Arc::new(crate::personal_data::FeaturesData(features.clone())))
        .with_personal_data(Arc::new(crate::personal_data::OrdersData(orders.clone()))))
}

/// The customers' master keys from the configuration: `customers.master_key` (or
/// `master_key_file`; on the embedded default, `DATA_DIR/master.key`, created when missing) wraps,
/// `customers.previous_master_keys` still unwrap (a rotation).
pub fn customers_keyring(config: &Config) -> anyhow::Result<Keyring> {
    let key = config.customers.master_key.as_ref().map(|k| k.expose_secret().to_owned());
    let previous: Vec<String> = config
        .customers
        .previous_master_keys
        .as_ref()
        .map(|p| p.expose_secret().split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let (keys, created) = Keyring::configured(
        key.as_deref(),
        config.customers.master_key_file.as_deref(),
        &previous,
        &config.data_dir,
        config.database_url.is_none(),
    )
    .context("loading the customers' master key")?;
    if let Some(path) = created {
        tracing::warn!(path = %path.display(), "created the customers' master key: back it up apart from the database");
    }
    Ok(keys)
}

/// Removes a secret URL from a message that might quote it.
fn redact(message: &str, url: &str) -> String {
    message.replace(url, "<DERMIS_BUS_URL>")
}

/// Opens the configured store (PostgreSQL if `database_url` is set, else SQLite in the data dir)
/// and applies every migration.
pub async fn open_store(config: &Config) -> anyhow::Result<Db> {
    let size = PoolSize { max_connections: config.database_max_connections, ..PoolSize::default() };
    let db = match &config.database_url {
        Some(url) => Db::connect(url.expose_secret(), size).await.context("connecting to DERMIS_DATABASE_URL")?,
        None => Db::open_data_dir(&config.data_dir, size)
            .await
            .with_context(|| format!("opening the embedded database in {}", config.data_dir.display()))?,
    };
    for set in MIGRATIONS {
        db.migrate(set).await.context("applying migrations")?;
    }
    Ok(db)
}

/// The HS256 secret: configured, or read from / generated into `DATA_DIR/jwt-secret`.
pub fn jwt_secret(config: &Config) -> anyhow::Result<SecretString> {
    if let Some(s) = &config.auth.jwt_secret {
        return Ok(s.clone());
    }
    let path: PathBuf = config.data_dir.join("jwt-secret");
    let (secret, created) =
        load_or_create_secret(&path).with_context(|| format!("JWT secret file {}", path.display()))?;
    if created {
        eprintln!("generated a JWT signing secret in {} (mode 0600)", path.display());
    }
    Ok(secret)
}

impl Application {
    /// Builds everything from `config` and binds `config.listen`.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let db = open_store(&config).await?;
        let jwks = match (&config.auth.jwks_file, &config.auth.jwks_url) {
            (Some(f), _) => Some(JwksSource::File(f.clone())),
            (None, Some(u)) => Some(JwksSource::Url(u.clone())),
            (None, None) => None,
        };
        let jwt = JwtVerifier::new(JwtConfig {
            hs256_secret: Some(jwt_secret(&config)?),
            jwks,
            issuer: config.auth.issuer.clone(),
            audience: config.auth.audience.clone(),
            role_claim: config.auth.role_claim.clone(),
            store_claim: config.auth.store_claim.clone(),
        })
        .await
        .map_err(anyhow::Error::msg)
        .context("configuring token verification")?;
        let clock: SharedClock = dermis_core::clock::system();
        let auth = Arc::new(Authenticator::new(jwt, ApiKeys::new(db.clone()).with_clock(clock.clone())));
        let (store, memory) = open_features(&config).await?;
        // The catalog's search index: rebuilt at start, then a projection of the catalog's
        // events; this node's writes refresh it before they answer.
        let search = SearchIndex::new(Catalog::new(db.clone()));
        let catalog = Catalog::new(db.clone()).with_clock(clock.clone()).with_index(search.clone());
        let pseudonyms = dermis_events::Pseudonyms::load(&db).await.context("loading the pseudonym key")?;
        let features = Features::new(store, pseudonyms.clone(), clock.clone())
            .with_directory(Arc::new(CatalogDirectory::new(catalog.clone())));
        let mut ingestor = Ingestor::new(db.clone(), config.events.ingest_concurrency, pseudonyms.clone())
            .with_node(&config.node_id)
            .with_clock(clock.clone())
            .with_pii_policy(
                dermis_events::pii::PiiPolicy::default()
                    .with_extra(&config.events.personal_traits, &config.events.personal_properties),
            )
            .with_hook(Arc::new(features.clone()));
        let bus: Arc<dyn EventBus> = match open_nats(&config).await? {
            Some(nats) => nats,
            None => {
                let embedded = EmbeddedBus::new(db.clone()).with_clock(clock.clone());
                ingestor = ingestor.with_embedded_bus(&embedded);
                Arc::new(embedded)
            }
        };
        // The orders service needs the inventory, opened below; the customers' export and
        // erasure reach it once it is built.
        let orders_slot = Arc::new(OnceLock::new());
        let customers = open_customers(&config, &db, &clock, &ingestor, &features, &orders_slot).await?;
        let profiles = Arc::new(open_profiles(&config, &customers).await?);
        let customers = customers.with_projection(profiles.clone());
        let profiles_for_routes = profiles.clone();
        // The identity graph and profile facts from `identify`, `alias` and quiz events: at
        // ingestion on this node, from the bus for what other nodes stored.
        let customers_feed = Arc::new(
            CustomersIngest::new(customers.clone())
                .with_consent_mapping(config.customers.consent_mapping.clone().unwrap_or_default()),
        );
        // The recommendation engine: the catalog in memory, what customers did (applied at
        // ingestion on this node, from the bus for the others), the model trained in the
        // background.
        let safety = Arc::new(Safety::bundled());
        let rec_catalog = CatalogView::new(Catalog::new(db.clone()), safety.clone());
        let live = LiveInteractions::new(db.clone(), pseudonyms.clone(), &config.node_id, Some(profiles.clone()));
        let engine = Arc::new(Engine::new(rec_catalog.clone(), live.clone(), safety, engine_config(&config)?));
        if let Some(path) = &config.recommend.rules_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading recommend.rules_file {}", path.display()))?;
            let rules = dermis_recommend::serving::filter::rules(&text)
                .with_context(|| format!("recommend.rules_file {}", path.display()))?;
            engine.set_rules(Some(rules));
        }
        // Experiments: exposures and outcomes counted at ingestion; exposures the service
        // assigns are logged through the same ingestor.
        let experiments = Experiments::new(db.clone(), clock.clone(), pseudonyms.clone());
        experiments.check_configs_with(Arc::new(crate::placements::VariantChecks));
        // Variants' contextual bandits: in memory on this node, rewarded by what it ingests.
        let contextual = dermis_feedback::contextual::Contextual::new();
        let ingestor = ingestor
            .with_hook(customers_feed.clone())
            .with_hook(Arc::new(LiveHook(live.clone())))
            .with_hook(dermis_feedback::hook::hook(experiments.clone()))
            .with_hook(contextual.hook());
        experiments.log_exposures_through(ingestor.clone());
        // The inventory ledger: loaded into memory, one batching writer; its journal is its
        // outbox; other nodes' movements reload it; webhooks follow availability.
        let inventory = Inventory::open(db.clone(), clock.clone()).await.context("opening the inventory ledger")?;
        let webhooks = Webhooks::new(db.clone(), clock.clone());
        // Every domain's outbox, relayed by the one relay; every projection of the stream.
        let outboxes: Vec<Arc<dyn OutboxSource>> = vec![
            Arc::new(CatalogOutbox::new(db.clone(), clock.clone(), Some(catalog.outbox_ready()))),
            Arc::new(IngestedOutbox::new(ingestor.clone())),
            Arc::new(CustomersOutbox::of(&customers)),
            Arc::new(InventoryOutbox::new(db.clone(), None)),
        ];
        let snapshot_every =
            (config.features.snapshot_secs > 0).then(|| Duration::from_secs(config.features.snapshot_secs));
        let projections: Vec<Arc<dyn Projection>> = vec![
            Arc::new(FeatureProjection::new(features.clone(), db.clone(), &config.node_id, memory, snapshot_every)),
            profiles,
            customers_feed,
            search,
            rec_catalog,
            live,
            Arc::new(Follower::new(inventory.clone())),
            Arc::new(WebhookFeed::new(webhooks.clone())),
        ];
        let holds = HoldSettings {
            ttl_secs: [
                ("default".to_owned(), config.inventory.hold_ttl_secs),
                ("pos".to_owned(), config.inventory.pos_hold_ttl_secs),
            ]
            .into(),
            max_ttl_secs: config.inventory.max_hold_ttl_secs.max(1),
        };
        // Orders: carts and orders over the inventory ledger; placed orders of known customers
        // reach their features as `Order Completed` events.
        let orders = Orders::new(
            db.clone(),
            inventory.clone(),
            SkuDirectory::new(catalog.clone()),
            holds.clone(),
            catalog.clone(),
            clock.clone(),
        )
        .with_purchases(ingestor.clone());
        let _ = orders_slot.set(orders.clone());
        let domains = Domains {
            orders,
            experiments: experiments.clone(),
            catalog: catalog.clone(),
            ingestor: ingestor.clone(),
            features: features.clone(),
            customers: customers.clone(),
            audit: Arc::new(Audit::new(db.clone(), clock.clone())),
            recommend: RecommendState {
                engine: engine.clone(),
                profiles: profiles_for_routes,
                auth: auth.clone(),
                weather: weather_provider(&config)?,
                clock: clock.clone(),
                experiments: Some(Arc::new(crate::placements::Placements::new(
                    experiments.clone(),
                    contextual.clone(),
                ))),
                // `channel` and `store` exclude what the inventory has out of stock there.
                stock: Some(Arc::new(crate::stock::InventoryStock::new(inventory.clone(), clock.clone()))),
            },
            inventory: InventoryState {
                inventory: inventory.clone(),
                skus: SkuDirectory::new(catalog.clone()),
                auth: auth.clone(),
                clock: clock.clone(),
                holds,
                webhooks: webhooks.clone(),
                pseudonyms: pseudonyms.clone(),
            },
        };
        let monitor = Arc::new(OnceLock::new());
        let router = build_router(&config, db.clone(), auth, domains, monitor.clone())?;
        let listener = TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
        // Nodes sharing the database keep one writer of the ledger and forward writes to it.
        if let Some(forwarding) = inventory_forwarding(&config, &db, &clock, &listener)? {
            // Who holds the lease is known before the first request (then renewed in the
            // background): a node that does not know writes itself, correct but contending.
            if let Err(e) = forwarding.renew().await {
                tracing::warn!(error = %e, "inventory writer lease not read; writing here until it is");
            }
            inventory.forward_through(forwarding);
        }
        Ok(Self {
            listener,
            router,
            db,
            bus,
            ingestor,
            catalog,
            features,
            customers,
            engine,
            inventory,
            webhooks,
            outboxes,
            projections,
            monitor,
            config,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The store.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Event ingestion (the demo loads its customers through it).
    pub fn ingestor(&self) -> &Ingestor {
        &self.ingestor
    }

    /// The customers (the demo gives its customers profiles through it).
    pub fn customers(&self) -> &Customers {
        &self.customers
    }

    /// The recommendation engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The inventory ledger.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// The online feature store.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish (up to the grace
    /// period) and closes the store.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Self {
            listener,
            router,
            db,
            bus,
            ingestor,
            catalog,
            features,
            customers,
            engine,
            inventory,
            webhooks,
            outboxes,
            projections,
            monitor,
            config,
        } = self;
        let grace = Duration::from_secs(config.http.shutdown_grace_secs);
        tracing::info!(bus = bus.name(), features = features.store().name(), node = config.node_id, "event bus ready");
        let settings = Settings {
            node_id: config.node_id.clone(),
            lag_alert: config.events.lag_alert,
            lag_every: Duration::from_secs(5),
            batch: 100,
        };
        let background = Background::start(Parts {
            db: db.clone(),
            bus,
            catalog,
            customers,
            ingestor,
            outboxes,
            projections,
            settings,
            retention: config.retention.clone(),
            // The application runs on the system clock (as its services do).
            clock: dermis_core::clock::system(),
        });
        let _ = monitor.set(background.monitor());
        let trainer = tokio::spawn(engine.run_trainer(dermis_core::clock::system()));
        let policy = RetryPolicy {
            attempts: config.inventory.webhook_attempts.max(1),
            first_backoff: Duration::from_millis(config.inventory.webhook_first_backoff_ms.max(1)),
            timeout: Duration::from_secs(10),
        };
        let deliverer = Deliverer::new(webhooks, inventory.clone(), policy);
        let deliveries = tokio::spawn(deliverer.run(Duration::from_millis(500)));
        let lease = inventory.forwarding().cloned().map(|f| {
            let renewing = f.clone();
            (f, tokio::spawn(async move { renewing.run().await }))
        });
        let sweeper = tokio::spawn(inventory.run_sweeper(Duration::from_secs(config.inventory.sweep_secs.max(1))));
        tracing::debug!(jobs = ?background.names(), "background jobs started");
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let limits = crate::listen::ConnectionLimits {
            header_read_timeout: Duration::from_secs(config.http.header_read_timeout_secs.max(1)),
            max_connections: config.http.max_connections,
        };
        let server = crate::listen::serve(listener, router, limits, async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            if let Some((forwarding, renewing)) = lease {
                // The listener closes now: another node takes the writer's lease at once rather
                // than after its time to live (the renewal stopped first, so it cannot take the
                // lease back). Requests still in flight here are written here, fenced as ever.
                renewing.abort();
                let _ = renewing.await;
                forwarding.step_down().await;
            }
            let _ = stopping_tx.send(());
        });
        let deadline = async move {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = server => {}
            () = deadline => tracing::warn!(grace_secs = grace.as_secs(), "grace period over; abandoning remaining connections"),
        }
        trainer.abort();
        sweeper.abort();
        deliveries.abort();
        background.stop().await;
        db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The inventory's forwarding to the writer's lease holder, when `inventory.cluster_secret` is
/// set: this node advertised at `inventory.advertise_url`, or at the address it listens on.
fn inventory_forwarding(
    config: &Config,
    db: &Db,
    clock: &SharedClock,
    listener: &TcpListener,
) -> anyhow::Result<Option<Arc<dermis_inventory::forward::Forwarding>>> {
    let Some(secret) = &config.inventory.cluster_secret else { return Ok(None) };
    let secret = secret.expose_secret();
    if secret.chars().count() < 16 {
        anyhow::bail!("inventory.cluster_secret (DERMIS_INVENTORY__CLUSTER_SECRET) must be at least 16 characters");
    }
    let url = match &config.inventory.advertise_url {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => url.clone(),
        Some(url) => anyhow::bail!("inventory.advertise_url must be an http:// or https:// URL, not {url:?}"),
        None => {
            let bound = listener.local_addr().context("reading the bound address")?;
            if bound.ip().is_unspecified() {
                anyhow::bail!(
                    "inventory.advertise_url (DERMIS_INVENTORY__ADVERTISE_URL) is needed with a cluster secret when listening on {bound}: other nodes must know where to reach this one"
                );
            }
            format!("http://{bound}")
        }
    };
    let ttl = Duration::from_millis(config.inventory.lease_ttl_ms.max(300));
    Ok(Some(Arc::new(dermis_inventory::forward::Forwarding::new(
        db.clone(),
        clock.clone(),
        &config.node_id,
        &url,
        secret,
        ttl,
    ))))
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

fn cors(config: &Config) -> anyhow::Result<CorsLayer> {
    let origins = &config.http.cors_origins;
    let any = origins.iter().any(|o| o == "*");
    let list = origins
        .iter()
        .filter(|o| *o != "*")
        .map(|o| HeaderValue::from_str(o).with_context(|| format!("CORS origin {o:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Segment ingestion is called by browser SDKs on the brand's sites: any origin may post
    // events (they authenticate with a write key, not cookies). Other routes follow the config.
    let allow = AllowOrigin::predicate(move |origin: &HeaderValue, parts: &axum::http::request::Parts| {
        any || list.contains(origin)
            || INGESTION_PATHS.contains(&parts.uri.path())
            || dermis_feedback::quizzes::public_path(parts.uri.path())
    });
    Ok(CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::PUT, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-purpose"),
        ])
        .expose_headers([header::ETAG, header::LOCATION, HeaderName::from_static("x-request-id")])
        .max_age(Duration::from_secs(600)))
}

/// The whole router: API, ops and docs, behind the middleware.
pub fn build_router(
    config: &Config,
    db: Db,
    auth: Arc<Authenticator>,
    domains: Domains,
    projections: Arc<OnceLock<Monitor>>,
) -> anyhow::Result<Router> {
    // Install the recorder before the first request records anything.
    let _ = metrics::handle();
    let Domains { catalog, ingestor, features, customers, audit, recommend, inventory, orders, experiments } = domains;
    let catalog = CatalogState { catalog, auth: auth.clone() };
    // Admin actions of the auth and events domains are recorded before their handlers run.
    let admin_audit =
        crate::admin_audit::AdminAudit { auth: auth.clone(), audit: audit.clone(), customers: customers.clone() };
    let customers = CustomersState::new(customers, auth.clone(), audit).with_export_ttl(config.customers.export_ttl());
    let features = FeaturesState { features, auth: auth.clone() };
    let quizzes = dermis_feedback::quizzes::QuizzesState {
        quizzes: dermis_feedback::quizzes::Quizzes::new(
            db.clone(),
            dermis_core::clock::system(),
            ingestor.clone(),
            customers.customers.clone(),
        ),
        auth: auth.clone(),
    };
    let events = EventsState { ingestor: Arc::new(ingestor), auth: auth.clone() };
    let orders = OrdersState { orders, auth: auth.clone() };
    let experiments = FeedbackState { experiments, auth: auth.clone() };
    let (api, doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(ops::router().with_state(OpsState { db: db.clone(), projections }))
        .merge(
            dermis_auth::routes::router()
                .route_layer(from_fn_with_state(admin_audit.clone(), crate::admin_audit::record))
                .with_state(auth),
        )
        .merge(dermis_catalog::routes::router().with_state(catalog))
        .merge(
            dermis_events::routes::admin_router()
                .route_layer(from_fn_with_state(admin_audit, crate::admin_audit::record))
                .with_state(events.clone()),
        )
        .merge(dermis_features::routes::router().with_state(features))
        .merge(dermis_customers::routes::router().with_state(customers))
        .merge(dermis_recommend::routes::router().with_state(recommend))
        .merge(dermis_inventory::routes::router().with_state(inventory))
        .merge(dermis_orders::routes::router().with_state(orders))
        .merge(dermis_feedback::routes::router().with_state(experiments))
        .merge(dermis_feedback::quizzes::router().with_state(quizzes))
        .split_for_parts();
    let mut doc = doc;
    dermis_events::routes::document_ingestion(&mut doc);
    openapi::document_errors(&mut doc);
    let doc_json = Arc::new(doc.to_pretty_json().context("serializing the OpenAPI document")?);

    let request_id = HeaderName::from_static("x-request-id");
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &axum::http::Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id, subject = tracing::field::Empty)
        })
        .on_response(DefaultOnResponse::new().level(Level::INFO));
    let middleware = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, header::COOKIE]))
        .layer(trace)
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(cors(config)?)
        .layer(from_fn(metrics::track))
        .layer(from_fn(http::problem_bodies))
        .layer(CatchPanicLayer::custom(http::panic_response))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(config.http.request_timeout_secs),
        ))
        .layer(CompressionLayer::new().gzip(true))
        .layer(DefaultBodyLimit::max(config.http.body_limit_bytes));

    Ok(api
        .merge(dermis_events::routes::ingestion_router().with_state(events))
        .merge(ops::undocumented(db, doc_json))
        .merge(dermis_feedback::quizzes::widget_router())
        .fallback(http::not_found)
        .layer(middleware))
}
