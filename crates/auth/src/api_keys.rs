//! API keys for machine clients.
//!
//! A key reads `dmk_<26-char id>_<secret>`. Only an argon2id hash of the secret is stored; the
//! whole key is shown once, at creation. Verifying a key costs one argon2 hash, so successful
//! verifications are cached in memory for [`CACHE_TTL`] under the SHA-256 of the key. Revoking a
//! key evicts it from this node's cache at once; other nodes stop accepting it within the TTL.

use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dermis_core::clock::{SharedClock, rfc3339};
use dermis_store::{Db, StoreError};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use utoipa::ToSchema;

use dermis_store::sqlx;

use crate::AuthError;
use crate::role::{Credential, Principal, Role};

/// How long a verified key is trusted without re-checking the database.
pub const CACHE_TTL: Duration = Duration::from_secs(60);

const PREFIX: &str = "dmk_";

/// An API key as listed (never with its secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyInfo {
    /// The key's id, `key_...`.
    pub id: String,
    /// A name for people (`pos-paris-opera`).
    pub name: String,
    /// The role the key acts with.
    pub role: Role,
    /// The store it is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
    /// The channel it is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it was revoked (RFC 3339), if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// What a new key is for.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// A name for people.
    pub name: String,
    /// The role it acts with.
    pub role: Role,
    /// The store it is bound to (required for `store_associate`).
    pub store_id: Option<String>,
    /// The channel it is bound to.
    pub channel: Option<String>,
}

/// The key store.
#[derive(Clone)]
pub struct ApiKeys {
    db: Db,
    clock: SharedClock,
    verified: moka::sync::Cache<[u8; 32], Principal>,
    /// Bumped by every revocation: a verification that read the key before a revocation must
    /// not put it back into the cache after.
    revocations: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys").finish_non_exhaustive()
    }
}

fn argon2() -> Argon2<'static> {
    Argon2::default()
}

impl ApiKeys {
    /// Keys stored in `db`.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            clock: dermis_core::clock::system(),
            verified: moka::sync::Cache::builder().max_capacity(10_000).time_to_live(CACHE_TTL).build(),
            revocations: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    /// Reads the time from `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Creates a key and returns it with its full secret, which is not stored and cannot be shown again.
    pub async fn create(&self, new: NewApiKey) -> Result<(ApiKeyInfo, String), StoreError> {
        let ulid = ulid::Ulid::new().to_string().to_ascii_lowercase();
        let id = format!("key_{ulid}");
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let secret = URL_SAFE_NO_PAD.encode(raw);
        let salt = SaltString::generate(&mut OsRng);
        let hash = argon2()
            .hash_password(secret.as_bytes(), &salt)
            .map_err(|e| StoreError::Other(format!("argon2: {e}")))?
            .to_string();
        let created = self.clock.now_ms();
        sqlx::query(
            "INSERT INTO api_keys (id, name, role, store_id, channel, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(&new.name)
        .bind(new.role.as_str())
        .bind(new.store_id.clone())
        .bind(new.channel.clone())
        .bind(&hash)
        .bind(created)
        .execute(self.db.writer())
        .await?;
        let info = ApiKeyInfo {
            id,
            name: new.name,
            role: new.role,
            store_id: new.store_id,
            channel: new.channel,
            created_at: rfc3339(created),
            revoked_at: None,
        };
        Ok((info, format!("{PREFIX}{ulid}_{secret}")))
    }

    /// Every key, newest first.
    pub async fn list(&self) -> Result<Vec<ApiKeyInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, role, store_id, channel, created_at, revoked_at FROM api_keys ORDER BY id DESC",
        )
        .fetch_all(self.db.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.get(2);
                Ok(ApiKeyInfo {
                    id: r.get(0),
                    name: r.get(1),
                    role: Role::parse(&role)
                        .ok_or_else(|| StoreError::Other(format!("unknown role {role} in api_keys")))?,
                    store_id: r.get(3),
                    channel: r.get(4),
                    created_at: rfc3339(r.get(5)),
                    revoked_at: r.get::<Option<i64>, _>(6).map(rfc3339),
                })
            })
            .collect()
    }

    /// Revokes a key. Returns false when no such key exists; revoking twice is not an error.
    pub async fn revoke(&self, id: &str) -> Result<bool, StoreError> {
        self.revocations.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let done = sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
            .bind(self.clock.now_ms())
            .bind(id)
            .execute(self.db.writer())
            .await?;
        // Evict every cached verification of this key on this node.
        let credential = Credential::ApiKey { key_id: id.to_owned() };
        let stale: Vec<_> = self.verified.iter().filter(|(_, p)| p.credential == credential).map(|(k, _)| *k).collect();
        for digest in stale {
            self.verified.invalidate(&digest);
        }
        Ok(done.rows_affected() > 0)
    }

    /// True when `token` looks like an API key rather than a JWT.
    pub fn is_api_key(token: &str) -> bool {
        token.starts_with(PREFIX)
    }

    /// Verifies a presented key.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(p) = self.verified.get(&digest) {
            return Ok(p);
        }
        let generation = self.revocations.load(std::sync::atomic::Ordering::SeqCst);
        let rest = token.strip_prefix(PREFIX).ok_or(AuthError::InvalidApiKey)?;
        let (ulid, secret) = rest.split_once('_').ok_or(AuthError::InvalidApiKey)?;
        if ulid.len() != 26 || secret.is_empty() || secret.len() > 128 {
            return Err(AuthError::InvalidApiKey);
        }
        let row = sqlx::query("SELECT role, store_id, channel, secret_hash, revoked_at FROM api_keys WHERE id = $1")
            .bind(format!("key_{ulid}"))
            .fetch_optional(self.db.reader())
            .await
            .map_err(StoreError::from)?
            .ok_or(AuthError::InvalidApiKey)?;
        if row.get::<Option<i64>, _>(4).is_some() {
            return Err(AuthError::InvalidApiKey);
        }
        let hash: String = row.get(3);
        let secret = secret.to_owned();
        // argon2 is deliberately slow: keep it off the async workers.
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|h| argon2().verify_password(secret.as_bytes(), &h).is_ok())
        })
        .await
        .unwrap_or(false);
        if !ok {
            return Err(AuthError::InvalidApiKey);
        }
        let role: String = row.get(0);
        let p = Principal {
            subject: format!("key_{ulid}"),
            role: Role::parse(&role).ok_or(AuthError::InvalidApiKey)?,
            store_id: row.get(1),
            channel: row.get(2),
            credential: Credential::ApiKey { key_id: format!("key_{ulid}") },
        };
        if self.revocations.load(std::sync::atomic::Ordering::SeqCst) == generation {
            self.verified.insert(digest, p.clone());
        }
        Ok(p)
    }
}
