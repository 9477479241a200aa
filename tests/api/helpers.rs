//! `spawn_app()` and a typed client.

use std::time::Duration;

use dermis_auth::Role;
use dermis_server::{Application, Config};
use dermis_store::testing::TestDb;
use reqwest::{Method, RequestBuilder, Response};
use secrecy::SecretString;
use serde_json::Value;

pub const SECRET: &str = "test-secret-test-secret-test-secret!";

/// Which store a test app runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running app on its own store and port.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub test_db: TestDb,
    /// The configuration it runs with (a peer starts from it).
    pub config: Config,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Another node on a test app's store: its own port, node id and in-memory features.
pub struct Peer {
    pub base: String,
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

type Running = (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<anyhow::Result<()>>);

/// Builds and starts an application; returns its base URL and how to stop it.
async fn start(config: Config) -> Running {
    let app = Application::build(config).await.expect("build app");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    (base, stop, server)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

async fn stop_server(
    stop: &mut Option<tokio::sync::oneshot::Sender<()>>,
    server: &mut Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
) {
    if let Some(s) = stop.take() {
        let _ = s.send(());
    }
    if let Some(h) = server.take() {
        h.await.unwrap().unwrap();
    }
}

impl Peer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops it gracefully and waits.
    pub async fn stop(&mut self) {
        stop_server(&mut self.stop, &mut self.server).await;
    }
}

pub fn test_config() -> Config {
    let mut config = Config { listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() };
    config.auth.jwt_secret = Some(SecretString::from(SECRET.to_owned()));
    config.log.filter = "warn".into();
    // Every node of a deployment shares one master key (32 bytes of 0x2a, base64).
    config.customers.master_key = Some(SecretString::from("KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=".to_owned()));
    config
}

/// An app on SQLite.
pub async fn spawn_app() -> TestApp {
    spawn_app_on(Backend::Sqlite).await.expect("sqlite is always available")
}

/// An app on the given backend, or `None` when that backend is not configured (PostgreSQL
/// without `DERMIS_TEST_DATABASE_URL`).
pub async fn spawn_app_on(backend: Backend) -> Option<TestApp> {
    spawn_with(backend, |_| {}).await
}

/// An app with a tweaked configuration.
pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    let migrations = dermis_server::app::MIGRATIONS;
    let test_db = match backend {
        Backend::Sqlite => TestDb::sqlite(migrations).await,
        Backend::Postgres => TestDb::postgres(migrations).await?,
    };
    let mut config = test_config();
    config.node_id = format!("test-{}", ulid_like());
    match backend {
        Backend::Sqlite => config.data_dir = test_db.data_dir().unwrap().to_path_buf(),
        Backend::Postgres => config.database_url = Some(SecretString::from(test_db.url().to_owned())),
    }
    tweak(&mut config);
    if std::env::var("TEST_LOG").is_ok() {
        config.log.filter = "debug".into();
        dermis_server::init_tracing(&config.log);
    }
    let (base, stop, server) = start(config.clone()).await;
    Some(TestApp { base, client: client(), test_db, config, stop: Some(stop), server: Some(server) })
}

/// A unique enough suffix for node names within one test process.
fn ulid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// A bearer token for a role.
pub fn token(role: Role) -> String {
    token_for(role, "tester", (role == Role::StoreAssociate).then_some("store-1"))
}

pub fn token_for(role: Role, sub: &str, store: Option<&str>) -> String {
    dermis_auth::jwt::issue(&SecretString::from(SECRET.to_owned()), role, sub, store, Duration::from_secs(600)).unwrap()
}

impl TestApp {
    /// Loads the demo catalog straight into the store, as `dermis import` in another process
    /// would, and waits until this node's search index (a projection of the catalog's events)
    /// lists every product.
    pub async fn load_demo(&self) -> dermis_catalog::import::ImportReport {
        let report = dermis_server::demo::load(self.test_db.db()).await.unwrap();
        let expected = report.imported + report.updated + report.unchanged;
        let started = std::time::Instant::now();
        loop {
            let res = self.get("/v1/products?limit=500", Role::Customer).await;
            let page: serde_json::Value = res.json().await.unwrap();
            let listed = page["items"].as_array().map_or(0, Vec::len);
            if listed >= expected.min(500) {
                return report;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the search index never caught up: {listed} of {expected}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: Method, path: &str, role: Option<Role>) -> RequestBuilder {
        let rb = self.client.request(method, self.url(path));
        match role {
            Some(r) => rb.bearer_auth(token(r)),
            None => rb,
        }
    }

    pub async fn get(&self, path: &str, role: Role) -> Response {
        self.request(Method::GET, path, Some(role)).send().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, role: Role, body: &Value) -> Response {
        self.request(Method::POST, path, Some(role)).json(body).send().await.unwrap()
    }

    pub async fn patch_json(&self, path: &str, role: Role, body: &Value) -> Response {
        self.request(Method::PATCH, path, Some(role)).json(body).send().await.unwrap()
    }

    /// Creates a product as a merchandiser and returns its JSON.
    pub async fn create_product(&self, body: Value) -> Value {
        let res = self.post_json("/v1/products", Role::Merchandiser, &body).await;
        assert_eq!(res.status(), 201, "create product: {}", res.text().await.unwrap());
        res.json().await.unwrap()
    }

    /// Creates a SKU as a merchandiser and returns its JSON.
    pub async fn create_sku(&self, product_id: &str, body: Value) -> Value {
        let res = self.post_json(&format!("/v1/products/{product_id}/skus"), Role::Merchandiser, &body).await;
        assert_eq!(res.status(), 201, "create sku: {}", res.text().await.unwrap());
        res.json().await.unwrap()
    }

    /// A product with one SKU of this code at 29.00 EUR; returns the SKU's id.
    pub async fn product_with_sku(&self, code: &str) -> String {
        let product =
            self.create_product(serde_json::json!({"name": format!("Serum {code}"), "brand": "Dermis Lab"})).await;
        let body = serde_json::json!({"code": code, "price": {"amount_minor": 2900, "currency": "EUR"}});
        let sku = self.create_sku(product["id"].as_str().unwrap(), body).await;
        sku["id"].as_str().unwrap().to_owned()
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(&mut self) {
        stop_server(&mut self.stop, &mut self.server).await;
    }

    /// Starts the server again on the same store (a restart), on a new port.
    pub async fn restart(&mut self) {
        self.stop().await;
        let (base, stop, server) = start(self.config.clone()).await;
        (self.base, self.stop, self.server) = (base, Some(stop), Some(server));
    }

    /// Another node on the same store, named `node_id`.
    pub async fn peer(&self, node_id: &str) -> Peer {
        let mut config = self.config.clone();
        config.node_id = node_id.to_owned();
        let (base, stop, server) = start(config).await;
        Peer { base, client: client(), stop: Some(stop), server: Some(server) }
    }
}

/// Asserts an answer's status and returns its JSON body (the URL and body in any failure).
pub async fn json_of(res: Response, status: u16) -> Value {
    let url = res.url().to_string();
    let got = res.status().as_u16();
    let text = res.text().await.unwrap();
    assert_eq!(got, status, "{url}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"))
}

/// Asserts a problem+json answer with this status and returns its body.
pub async fn assert_problem(res: Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status, "status of {}", res.url());
    let ct = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(ct.as_deref(), Some("application/problem+json"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(body["type"].as_str().unwrap().starts_with("/problems/"), "{body}");
    assert!(body["title"].is_string() && body["detail"].is_string(), "{body}");
    body
}

/// Generates a SQLite and a PostgreSQL variant of each test, which takes a `TestApp`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let app = $crate::helpers::spawn_app_on($crate::helpers::Backend::Sqlite).await.unwrap();
                    super::$name(app).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(app) = $crate::helpers::spawn_app_on($crate::helpers::Backend::Postgres).await else { return };
                    super::$name(app).await;
                }
            )+
        }
    };
}
