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
