//! The `dermis` command's own input: token lifetimes and secrets are refused with clear errors,
//! never a panic.

use std::process::{Command, Output};

use crate::helpers::SECRET;

fn dermis(dir: &std::path::Path, secret: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dermis"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .current_dir(dir)
        .env("DERMIS_AUTH__JWT_SECRET", secret)
        .env("DERMIS_LOG__FILTER", "warn")
        .env("DERMIS_HTTP__SHUTDOWN_GRACE_SECS", "0")
        .env_remove("DERMIS_CONFIG")
        .env_remove("DERMIS_DATABASE_URL")
        .env_remove("DERMIS_BUS_URL")
        .env_remove("DERMIS_REDIS_URL")
        .output()
        .expect("run dermis")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn token_refuses_short_secrets_like_serve_and_overlong_ttls() {
    let dir = tempfile::tempdir().unwrap();
    let short = "only-31-bytes-long-secret-12345";
    assert_eq!(short.len(), 31);
    const MESSAGE: &str = "the JWT secret must be at least 32 bytes";
    let token = dermis(dir.path(), short, &["token", "--role", "admin"]);
    assert_eq!(token.status.code(), Some(1), "{}", stderr(&token));
    assert!(token.stdout.is_empty(), "no token is printed");
    assert!(stderr(&token).contains(MESSAGE), "{}", stderr(&token));
    let serve = dermis(dir.path(), short, &["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(serve.status.code(), Some(1), "{}", stderr(&serve));
    assert!(stderr(&serve).contains(MESSAGE), "{}", stderr(&serve));

    // A lifetime whose seconds overflow is an error (exit 1), not a panic (exit 101).
    for ttl in ["99999999999999999d", "367d", "0s", "1w"] {
        let o = dermis(dir.path(), SECRET, &["token", "--role", "admin", "--ttl", ttl]);
        assert_eq!(o.status.code(), Some(1), "--ttl {ttl}: {}", stderr(&o));
        assert!(stderr(&o).contains("ttl"), "--ttl {ttl}: {}", stderr(&o));
    }
    let ok = dermis(dir.path(), SECRET, &["token", "--role", "admin", "--ttl", "366d"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(String::from_utf8(ok.stdout).unwrap().trim().split('.').count(), 3, "a JWT");
}

/// `dermis` with nothing configured: no secret, no data dir, no config in the environment.
fn bare(cwd: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dermis"));
    c.current_dir(cwd).env("DERMIS_LOG__FILTER", "warn").env("DERMIS_HTTP__SHUTDOWN_GRACE_SECS", "0");
    for var in [
        "DERMIS_AUTH__JWT_SECRET",
        "DERMIS_DATA_DIR",
        "DERMIS_CONFIG",
        "DERMIS_DATABASE_URL",
        "DERMIS_BUS_URL",
        "DERMIS_REDIS_URL",
        "DERMIS_LISTEN",
    ] {
        c.env_remove(var);
    }
    c
}

/// The server, killed when dropped.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `dermis token` away from the server's data dir used to make up a secret of its own and print
/// a token the server refused; now it refuses, says where it looked and what to do, and creates
/// nothing. Pointed at the server's data dir it prints a token the server accepts.
#[tokio::test]
async fn token_without_the_servers_secret_refuses_and_says_where_it_looked() {
    let server_dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = Server(
        bare(server_dir.path())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
        assert!(std::time::Instant::now() < deadline, "dermis serve did not become ready");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let data_dir = server_dir.path().join("dermis-data");
    assert!(data_dir.join("jwt-secret").is_file(), "serve generated the secret");

    // From another folder: a refusal naming the path it looked at and the ways out.
    let o = bare(elsewhere.path()).args(["token", "--role", "admin"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "no token is printed: {}", String::from_utf8_lossy(&o.stdout));
    let looked = std::path::absolute(elsewhere.path().join("dermis-data").join("jwt-secret")).unwrap();
    for needle in [looked.to_str().unwrap(), "--data-dir", "DERMIS_AUTH__JWT_SECRET"] {
        assert!(stderr(&o).contains(needle), "the message says {needle:?}: {}", stderr(&o));
    }
    assert!(!elsewhere.path().join("dermis-data").exists(), "nothing is created");
    // The same with a --data-dir that holds no secret.
    let empty = elsewhere.path().join("empty");
    let o = bare(elsewhere.path()).args(["token", "--role", "admin", "--data-dir"]).arg(&empty).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(empty.join("jwt-secret").to_str().unwrap()), "{}", stderr(&o));
    assert!(!empty.exists(), "nothing is created");

    // With the server's data dir, or from its folder: tokens the server accepts.
    let with_dir = bare(elsewhere.path()).args(["token", "--role", "admin", "--data-dir"]).arg(&data_dir).output();
    let in_folder = bare(server_dir.path()).args(["token", "--role", "admin"]).output();
    for o in [with_dir.unwrap(), in_folder.unwrap()] {
        assert!(o.status.success(), "{}", stderr(&o));
        let token = String::from_utf8(o.stdout).unwrap().trim().to_owned();
        let res = client.get(format!("{base}/v1/write-keys")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(res.status(), 200, "the server accepts the token");
    }

    // The README's `export WRITE_KEY=$(dermis write-key create web-shop)`: only the key on stdout,
    // and the running server takes events with it.
    let o = bare(server_dir.path()).args(["write-key", "create", "web-shop"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(out.lines().count(), 1, "one line: {out:?}");
    let res = client
        .post(format!("{base}/v1/track"))
        .basic_auth(out.trim(), Some(""))
        .json(&serde_json::json!({"userId": "c-readme", "event": "Product Viewed", "properties": {"product_id": "P1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}
