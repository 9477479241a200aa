//! Behaviour of API keys (on both backends) and of JWKS-verified tokens.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use dermis_auth::api_keys::NewApiKey;
use dermis_auth::jwt::{JwksSource, JwtConfig, JwtVerifier};
use dermis_auth::{ApiKeys, Credential, MIGRATIONS, Role};
use dermis_store::Db;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

const ALL: &[&[dermis_store::Migration]] = &[dermis_store::MIGRATIONS, MIGRATIONS];

dermis_store::backend_tests!(ALL; api_keys_verify_until_revoked, tampered_and_unknown_keys_are_refused);

async fn api_keys_verify_until_revoked(db: Db) {
    let keys = ApiKeys::new(db.clone());
    let (info, secret) = keys
        .create(NewApiKey {
            name: "pos-paris".into(),
            role: Role::StoreAssociate,
            store_id: Some("paris-1".into()),
            channel: Some("pos".into()),
        })
        .await
        .unwrap();
    assert!(secret.starts_with("dmk_"));
    let p = keys.verify(&secret).await.unwrap();
    assert_eq!(
        (p.role, p.store_id.as_deref(), p.channel.as_deref()),
        (Role::StoreAssociate, Some("paris-1"), Some("pos"))
    );
    assert_eq!(p.credential, Credential::ApiKey { key_id: info.id.clone() });

    // The secret is not stored: only its argon2 hash.
    let stored: String = dermis_store::sqlx::query_scalar("SELECT secret_hash FROM api_keys WHERE id = $1")
        .bind(&info.id)
        .fetch_one(db.reader())
        .await
        .unwrap();
    // The key reads dmk_<26-char id>_<secret>; the secret may itself contain '_'.
    let secret_part = &secret["dmk_".len() + 26 + 1..];
    assert!(stored.starts_with("$argon2id$") && !stored.contains(secret_part));

    assert!(keys.revoke(&info.id).await.unwrap());
    assert!(keys.verify(&secret).await.is_err(), "revoked keys stop working at once on this node");
    // Another node (fresh cache) refuses it too.
    assert!(ApiKeys::new(db.clone()).verify(&secret).await.is_err());
    assert!(!keys.revoke("key_nope").await.unwrap());
    let listed = keys.list().await.unwrap();
    assert!(listed[0].revoked_at.is_some());
}

async fn tampered_and_unknown_keys_are_refused(db: Db) {
    let keys = ApiKeys::new(db);
    let (_, secret) = keys
        .create(NewApiKey { name: "svc".into(), role: Role::Service, store_id: None, channel: None })
        .await
        .unwrap();
    let mut tampered = secret.clone();
    tampered.pop();
    tampered.push(if secret.ends_with('A') { 'B' } else { 'A' });
    assert!(keys.verify(&tampered).await.is_err());
    assert!(keys.verify("dmk_").await.is_err());
    assert!(keys.verify("dmk_01jd0000000000000000000000_x").await.is_err());
}

fn fixture(name: &str) -> PathBuf {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    PathBuf::from(manifest).join("tests/fixtures").join(name)
}

fn token(alg: Algorithm, kid: &str, key: EncodingKey, role: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    let claims = serde_json::json!({"sub": "oidc-user", "role": [ "unknown", role ], "exp": now + 60, "iss": "https://id.example", "aud": "dermis"});
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

#[tokio::test]
async fn oidc_tokens_verify_against_the_jwks() {
    let v = JwtVerifier::new(JwtConfig {
        jwks: Some(JwksSource::File(fixture("jwks.json"))),
        issuer: Some("https://id.example".into()),
        audience: Some("dermis".into()),
        ..JwtConfig::default()
    })
    .await
    .unwrap();
    let es = EncodingKey::from_ec_pem(&std::fs::read(fixture("es256-private.pem")).unwrap()).unwrap();
    let rs = EncodingKey::from_rsa_pem(&std::fs::read(fixture("rs256-private.pem")).unwrap()).unwrap();

    let p = v.verify(&token(Algorithm::ES256, "test-es256", es.clone(), "analyst")).await.unwrap();
    assert_eq!((p.role, p.subject.as_str()), (Role::Analyst, "oidc-user"));
    let p = v.verify(&token(Algorithm::RS256, "test-rs256", rs, "merchandiser")).await.unwrap();
    assert_eq!(p.role, Role::Merchandiser);

    // A key id the JWKS does not have, a key of the wrong family, and HS256 without a secret all fail.
    assert!(v.verify(&token(Algorithm::ES256, "other", es.clone(), "admin")).await.is_err());
    assert!(v.verify(&token(Algorithm::ES256, "test-rs256", es, "admin")).await.is_err());
    let hs =
        token(Algorithm::HS256, "test-es256", EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"), "admin");
    assert!(v.verify(&hs).await.is_err());
}

#[tokio::test]
async fn jwks_is_fetched_from_a_url_and_refetched_for_unknown_keys() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = Arc::new(AtomicUsize::new(0));
    let served = hits.clone();
    let jwks = std::fs::read_to_string(fixture("jwks.json")).unwrap();
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            served.fetch_add(1, Ordering::SeqCst);
            let body = jwks.clone();
            async move { body }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let v = JwtVerifier::new(JwtConfig { jwks: Some(JwksSource::Url(url)), ..JwtConfig::default() }).await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1, "fetched at start");
    let es = EncodingKey::from_ec_pem(&std::fs::read(fixture("es256-private.pem")).unwrap()).unwrap();
    let claims_token = |kid: &str| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, &serde_json::json!({"sub": "u", "role": "customer", "exp": now + 60}), &es)
            .unwrap()
    };
    let p = v.verify(&claims_token("test-es256")).await.unwrap();
    assert_eq!(p.customer_id(), Some("u"));
    assert_eq!(hits.load(Ordering::SeqCst), 1, "known keys need no fetch");
    // An unknown kid triggers at most one refetch per 30 s.
    assert!(v.verify(&claims_token("rotated")).await.is_err());
    assert!(v.verify(&claims_token("rotated")).await.is_err());
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the start-up fetch is recent, so no refetch yet");
}
