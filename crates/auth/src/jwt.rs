//! Bearer JWTs: HS256 signed with the configured secret (what `dermis token` issues), and
//! RS256/ES256 (and their 384/512 and PSS siblings) verified against a JWKS, so an OIDC provider
//! can issue tokens. An algorithm is only ever checked with a key of its own family: a token that
//! claims HS256 is checked with the secret, never with a public key from the JWKS.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::AuthError;
use crate::role::{Credential, Principal, Role};

/// Shortest HS256 secret accepted (bytes), per RFC 7518 §3.2.
pub const MIN_SECRET_LEN: usize = 32;

/// Longest lifetime [`issue`] signs a token for: 366 days.
pub const MAX_TTL: Duration = Duration::from_secs(366 * 86_400);

/// Refuses an HS256 secret shorter than [`MIN_SECRET_LEN`], with the message `serve` and
/// `dermis token` both show.
pub fn check_secret(secret: &SecretString) -> Result<(), String> {
    if secret.expose_secret().len() < MIN_SECRET_LEN {
        return Err(format!("the JWT secret must be at least {MIN_SECRET_LEN} bytes"));
    }
    Ok(())
}

/// Where the public keys of an OIDC provider come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// A JWKS document on disk.
    File(PathBuf),
    /// A JWKS URL (`https://issuer/.well-known/jwks.json`), refreshed periodically and when a token
    /// names an unknown key id.
    Url(String),
}

/// How tokens are verified.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// The HS256 secret.
    pub hs256_secret: Option<SecretString>,
    /// The JWKS for RS256/ES256 tokens.
    pub jwks: Option<JwksSource>,
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Required `aud`, if set.
    pub audience: Option<String>,
    /// The claim holding the role (default `role`; a string, or an array whose first known role wins).
    pub role_claim: String,
    /// The claim holding the store id (default `store`).
    pub store_claim: String,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            hs256_secret: None,
            jwks: None,
            issuer: None,
            audience: None,
            role_claim: "role".into(),
            store_claim: "store".into(),
        }
    }
}

const ASYMMETRIC: [Algorithm; 7] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Verifies bearer JWTs.
pub struct JwtVerifier {
    cfg: JwtConfig,
    hs: Option<DecodingKey>,
    keys: RwLock<HashMap<String, DecodingKey>>,
    http: reqwest::Client,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    /// Tokens verified in full, by their exact text, so a client sending the same token with
    /// every request is not decoded and checked again each time ([`VERIFIED_TTL`]). A hit still
    /// checks `exp` and `nbf` against the clock; a reload of the JWKS forgets them all (a key
    /// taken out of the set stops vouching at once). Failures are never kept.
    verified: moka::sync::Cache<String, Verified>,
    /// Moves with every reload of the key set (under its lock). A token is kept only if no
    /// reload happened while it was checked, and a kept one counts only under the key set it
    /// was checked with: a reload racing a verification cannot leave a removed key vouching.
    generation: std::sync::atomic::AtomicU64,
}

/// How long a verified token is kept before it is verified in full again.
pub const VERIFIED_TTL: Duration = Duration::from_secs(300);

/// Longest token kept verified (bytes); longer ones are verified every time.
const MAX_KEPT_TOKEN: usize = 4096;

/// A token verified in full: whom it names and the times it is valid between.
#[derive(Debug, Clone)]
struct Verified {
    principal: Principal,
    /// `exp`, seconds since the epoch.
    expires: u64,
    /// `nbf`, if given.
    not_before: Option<u64>,
    /// The key set's generation it was checked under.
    generation: u64,
}

impl Verified {
    /// With the same leeway as the full check.
    fn valid_at(&self, now: u64) -> bool {
        now <= self.expires.saturating_add(LEEWAY_SECS)
            && self.not_before.is_none_or(|nbf| nbf <= now.saturating_add(LEEWAY_SECS))
    }

    /// What to keep of a token verified in full, if its times are whole seconds.
    fn of(principal: &Principal, claims: &Map<String, Value>, generation: u64) -> Option<Self> {
        let expires = claims.get("exp")?.as_u64()?;
        let not_before = match claims.get("nbf") {
            None => None,
            Some(nbf) => Some(nbf.as_u64()?),
        };
        Some(Self { principal: principal.clone(), expires, not_before, generation })
    }
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier").field("hs256", &self.hs.is_some()).field("jwks", &self.cfg.jwks).finish()
    }
}

impl JwtVerifier {
    /// Builds a verifier, loading the JWKS if one is configured.
    pub async fn new(cfg: JwtConfig) -> Result<Self, String> {
        let hs = match &cfg.hs256_secret {
            Some(s) => {
                check_secret(s)?;
                Some(DecodingKey::from_secret(s.expose_secret().as_bytes()))
            }
            None => None,
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        let v = Self {
            cfg,
            hs,
            keys: RwLock::new(HashMap::new()),
            http,
            last_fetch: tokio::sync::Mutex::new(None),
            verified: moka::sync::Cache::builder().max_capacity(10_000).time_to_live(VERIFIED_TTL).build(),
            generation: std::sync::atomic::AtomicU64::new(0),
        };
        if v.cfg.jwks.is_some() {
            v.refresh().await?;
        }
        Ok(v)
    }

    /// Reloads the JWKS. Keys without a `kid` are stored under the empty id.
    pub async fn refresh(&self) -> Result<usize, String> {
        let text = match &self.cfg.jwks {
            None => {
                self.forget_verified();
                return Ok(0);
            }
            Some(JwksSource::File(path)) => {
                std::fs::read_to_string(path).map_err(|e| format!("cannot read JWKS file {}: {e}", path.display()))?
            }
            Some(JwksSource::Url(url)) => {
                *self.last_fetch.lock().await = Some(Instant::now());
                let res = self.http.get(url).send().await.map_err(|e| format!("JWKS fetch from {url}: {e}"))?;
                res.error_for_status()
                    .map_err(|e| format!("JWKS fetch from {url}: {e}"))?
                    .text()
                    .await
                    .map_err(|e| format!("JWKS fetch from {url}: {e}"))?
            }
        };
        let set: JwkSet = serde_json::from_str(&text).map_err(|e| format!("invalid JWKS: {e}"))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(jwk.common.key_id.clone().unwrap_or_default(), key);
                }
                Err(e) => tracing::warn!(kid = ?jwk.common.key_id, error = %e, "skipping unusable JWK"),
            }
        }
        let n = keys.len();
        {
            let mut held = self.keys.write().expect("jwks lock");
            *held = keys;
            self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.verified.invalidate_all();
        Ok(n)
    }

    /// Forgets every kept token (a reload without a key set).
    fn forget_verified(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.verified.invalidate_all();
    }

    fn key_for(&self, kid: Option<&str>) -> Option<DecodingKey> {
        let keys = self.keys.read().expect("jwks lock");
        match kid {
            Some(kid) => keys.get(kid).cloned(),
            None if keys.len() == 1 => keys.values().next().cloned(),
            None => keys.get("").cloned(),
        }
    }

    /// Verifies a token and returns the caller it names.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        // Read before the key is chosen: a reload after this point makes the token not kept.
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        if let Some(kept) = self.verified.get(token) {
            if kept.generation == generation && kept.valid_at(unix_now()) {
                return Ok(kept.principal);
            }
            // Expired since, or checked under another key set: the full check below decides.
            self.verified.invalidate(token);
        }
        let bad = |m: String| AuthError::InvalidToken(m);
        let header = jsonwebtoken::decode_header(token).map_err(|e| bad(e.to_string()))?;
        let key = if header.alg == Algorithm::HS256 {
            self.hs.clone().ok_or_else(|| bad("HS256 tokens are not accepted: no secret is configured".into()))?
        } else if ASYMMETRIC.contains(&header.alg) {
            match self.key_for(header.kid.as_deref()) {
                Some(k) => k,
                None => {
                    self.refresh_if_stale().await;
                    self.key_for(header.kid.as_deref()).ok_or_else(|| bad("unknown signing key".into()))?
                }
            }
        } else {
            return Err(bad(format!("algorithm {:?} is not accepted", header.alg)));
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        // `nbf` (not before) with the same leeway as `exp`: an external identity provider may
        // issue tokens that become valid later.
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        if let Some(iss) = &self.cfg.issuer {
            validation.set_issuer(&[iss]);
        }
        match &self.cfg.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(|e| bad(e.to_string()))?;
        check_issued_at(&data.claims, unix_now())?;
        let principal = self.principal(&data.claims)?;
        if token.len() <= MAX_KEPT_TOKEN
            && self.generation.load(std::sync::atomic::Ordering::SeqCst) == generation
            && let Some(kept) = Verified::of(&principal, &data.claims, generation)
        {
            self.verified.insert(token.to_owned(), kept);
        }
        Ok(principal)
    }

    /// An unknown `kid` may mean the provider rotated keys: refetch, at most every 30 seconds.
    async fn refresh_if_stale(&self) {
        if !matches!(self.cfg.jwks, Some(JwksSource::Url(_))) {
            return;
        }
        let recent = self.last_fetch.lock().await.is_some_and(|t| t.elapsed() < Duration::from_secs(30));
        if !recent && let Err(e) = self.refresh().await {
            tracing::warn!(error = %e, "JWKS refresh failed");
        }
    }

    fn principal(&self, claims: &Map<String, Value>) -> Result<Principal, AuthError> {
        let bad = |m: &str| AuthError::InvalidToken(m.to_owned());
        let subject = claims.get("sub").and_then(Value::as_str).ok_or_else(|| bad("`sub` must be a string"))?;
        let role = match claims.get(&self.cfg.role_claim) {
            Some(Value::String(s)) => Role::parse(s),
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).find_map(Role::parse),
            _ => None,
        }
        .ok_or_else(|| bad("the token carries no known role"))?;
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let p = Principal {
            subject: subject.to_owned(),
            role,
            store_id: text(&self.cfg.store_claim),
            channel: text("channel"),
            credential: Credential::Jwt,
        };
        p.check_bindings().map_err(AuthError::InvalidToken)?;
        Ok(p)
    }
}

/// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `iat` (issued at), when present, must be a number of seconds and not in the future (beyond
/// the leeway): a token issued "later" comes from a wrong clock or a forger's hand.
fn check_issued_at(claims: &Map<String, Value>, now: u64) -> Result<(), AuthError> {
    match claims.get("iat") {
        None => Ok(()),
        Some(v) => match v.as_f64() {
            Some(iat) if iat.is_finite() && iat >= 0.0 && iat <= (now + LEEWAY_SECS) as f64 => Ok(()),
            Some(_) => Err(AuthError::InvalidToken("the token is issued in the future (`iat`)".into())),
            None => Err(AuthError::InvalidToken("`iat` must be a number of seconds".into())),
        },
    }
}

/// Signs an HS256 token for `dermis token` and tests. Refuses a secret shorter than
/// [`MIN_SECRET_LEN`] and a lifetime longer than [`MAX_TTL`].
pub fn issue(
    secret: &SecretString,
    role: Role,
    subject: &str,
    store: Option<&str>,
    ttl: Duration,
) -> Result<String, String> {
    check_secret(secret)?;
    if ttl > MAX_TTL {
        return Err(format!("a token lives at most {} days", MAX_TTL.as_secs() / 86_400));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs();
    let exp = now.checked_add(ttl.as_secs()).ok_or("the token's expiry overflows")?;
    let mut claims = Map::new();
    claims.insert("sub".into(), subject.into());
    claims.insert("role".into(), role.as_str().into());
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), exp.into());
    if let Some(store) = store {
        claims.insert("store".into(), store.into());
    }
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose_secret().as_bytes()),
    )
    .map_err(|e| e.to_string())
}

/// Reads the HS256 secret from `path`, or creates one there (readable by the owner only) and
/// says so. Returns the secret and whether it was created.
pub fn load_or_create_secret(path: &std::path::Path) -> std::io::Result<(SecretString, bool)> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return Ok((SecretString::from(text.trim().to_owned()), false));
    }
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        // The data folder is private to its owner (as dermis-store makes it).
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)?;
    }
    write_private(path, &secret)?;
    Ok((SecretString::from(secret), true))
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SecretString {
        SecretString::from("0123456789abcdef0123456789abcdef".to_owned())
    }

    async fn verifier() -> JwtVerifier {
        JwtVerifier::new(JwtConfig { hs256_secret: Some(secret()), ..JwtConfig::default() }).await.unwrap()
    }

    #[tokio::test]
    async fn issued_tokens_verify_with_their_bindings() {
        let v = verifier().await;
        let t = issue(&secret(), Role::StoreAssociate, "anna", Some("paris-1"), Duration::from_secs(60)).unwrap();
        let p = v.verify(&t).await.unwrap();
        assert_eq!(
            (p.role, p.subject.as_str(), p.store_id.as_deref()),
            (Role::StoreAssociate, "anna", Some("paris-1"))
        );
    }

    #[tokio::test]
    async fn rejects_wrong_secret_expired_unbound_and_short_secrets() {
        let v = verifier().await;
        let other = SecretString::from("another-secret-another-secret-xx".to_owned());
        let t = issue(&other, Role::Admin, "x", None, Duration::from_secs(60)).unwrap();
        assert!(v.verify(&t).await.is_err());
        let t = issue(&secret(), Role::StoreAssociate, "x", None, Duration::from_secs(60)).unwrap();
        assert!(v.verify(&t).await.is_err(), "store associates need a store");
        let mut claims = Map::new();
        claims.insert("sub".into(), "x".into());
        claims.insert("role".into(), "admin".into());
        claims.insert("exp".into(), 1_000_000.into());
        let t = jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        assert!(v.verify(&t).await.is_err(), "expired");
        assert!(v.verify("not.a.jwt").await.is_err());
        let now = unix_now();
        let signed = |extra: &[(&str, Value)]| {
            let mut claims = Map::new();
            claims.insert("sub".into(), "x".into());
            claims.insert("role".into(), "admin".into());
            claims.insert("exp".into(), (now + 7200).into());
            for (k, val) in extra {
                claims.insert((*k).into(), val.clone());
            }
            jsonwebtoken::encode(
                &Header::default(),
                &claims,
                &EncodingKey::from_secret(secret().expose_secret().as_bytes()),
            )
            .unwrap()
        };
        assert!(v.verify(&signed(&[])).await.is_ok());
        let err = v.verify(&signed(&[("nbf", (now + 3600).into())])).await.unwrap_err();
        assert!(err.to_string().contains("ImmatureSignature"), "nbf an hour ahead: {err}");
        assert!(v.verify(&signed(&[("nbf", (now + 10).into())])).await.is_ok(), "within the leeway");
        assert!(v.verify(&signed(&[("nbf", (now - 10).into())])).await.is_ok());
        assert!(v.verify(&signed(&[("iat", (now + 3600).into())])).await.is_err(), "issued in the future");
        assert!(v.verify(&signed(&[("iat", "yesterday".into())])).await.is_err());
        assert!(v.verify(&signed(&[("iat", (now - 60).into())])).await.is_ok());
        let short = JwtConfig { hs256_secret: Some(SecretString::from("short".to_owned())), ..JwtConfig::default() };
        assert_eq!(JwtVerifier::new(short).await.unwrap_err(), "the JWT secret must be at least 32 bytes");
    }

    #[tokio::test]
    async fn a_kept_token_is_still_held_to_its_times_and_a_jwks_reload_forgets_it() {
        let v = verifier().await;
        let t = issue(&secret(), Role::Admin, "kept", None, Duration::from_secs(60)).unwrap();
        assert_eq!(v.verify(&t).await.unwrap().subject, "kept");
        let kept = v.verified.get(&t).expect("a verified token is kept");
        // A hit is not checked again in full (what the cache is for)...
        v.verified.insert("kept.but.unsigned".into(), kept.clone());
        assert_eq!(v.verify("kept.but.unsigned").await.unwrap().subject, "kept");
        // ...but still against the clock: tokens kept while valid whose time is now up.
        let now = unix_now();
        let signed = |claim: &str, at: u64| {
            let mut claims = Map::new();
            claims.insert("sub".into(), "kept".into());
            claims.insert("role".into(), "admin".into());
            claims.insert("exp".into(), (now + 7200).into());
            claims.insert(claim.into(), at.into());
            jsonwebtoken::encode(
                &Header::default(),
                &claims,
                &EncodingKey::from_secret(secret().expose_secret().as_bytes()),
            )
            .unwrap()
        };
        let expired = signed("exp", now - 1000);
        v.verified.insert(expired.clone(), Verified { expires: now - 1000, ..kept.clone() });
        assert!(v.verify(&expired).await.is_err(), "a kept token past exp + leeway is refused");
        assert!(v.verified.get(&expired).is_none(), "and forgotten");
        let early = signed("nbf", now + 3600);
        v.verified.insert(early.clone(), Verified { not_before: Some(now + 3600), ..kept.clone() });
        assert!(v.verify(&early).await.is_err(), "a kept token before nbf - leeway is refused");
        // Reloading the key set forgets every kept token.
        assert_eq!(v.refresh().await.unwrap(), 0);
        assert!(v.verified.get(&t).is_none());
        // A token kept under the key set before a reload (a verification that raced it) no
        // longer counts: the unsigned one from above is refused now.
        v.verified.insert("kept.but.unsigned".into(), kept.clone());
        assert!(v.verify("kept.but.unsigned").await.is_err());
        // Failures are never kept.
        let other = SecretString::from("another-secret-another-secret-xx".to_owned());
        let forged = issue(&other, Role::Admin, "kept", None, Duration::from_secs(60)).unwrap();
        assert!(v.verify(&forged).await.is_err());
        assert!(v.verified.get(&forged).is_none());
        // The times as the full check reads them, with its leeway.
        let at = Verified { principal: kept.principal.clone(), expires: 1000, not_before: Some(900), generation: 0 };
        assert!(at.valid_at(1000 + LEEWAY_SECS) && !at.valid_at(1001 + LEEWAY_SECS));
        assert!(at.valid_at(900 - LEEWAY_SECS) && !at.valid_at(899 - LEEWAY_SECS));
    }

    #[test]
    fn issue_refuses_short_secrets_and_overlong_lifetimes() {
        let short = SecretString::from("x".repeat(MIN_SECRET_LEN - 1));
        let err = issue(&short, Role::Admin, "x", None, Duration::from_secs(60)).unwrap_err();
        assert_eq!(err, "the JWT secret must be at least 32 bytes");
        assert!(issue(&secret(), Role::Admin, "x", None, MAX_TTL).is_ok());
        for ttl in [MAX_TTL + Duration::from_secs(1), Duration::from_secs(u64::MAX), Duration::MAX] {
            let err = issue(&secret(), Role::Admin, "x", None, ttl).unwrap_err();
            assert!(err.contains("at most 366 days"), "{err}");
        }
    }

    #[test]
    fn created_secret_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwt-secret");
        let (a, created) = load_or_create_secret(&path).unwrap();
        assert!(created);
        let (b, created) = load_or_create_secret(&path).unwrap();
        assert!(!created);
        assert_eq!(a.expose_secret(), b.expose_secret());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
