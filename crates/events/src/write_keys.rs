//! Write keys: which source sent an event. SDKs send them as the HTTP Basic user name or as
//! `writeKey` in the body; browsers expose them, so they are identifiers, not secrets. Lookups are
//! cached for a minute; revoking evicts the cache on this node at once.

use std::time::Duration;

use dermis_core::clock::{SharedClock, rfc3339};
use dermis_store::sqlx::{self, Row};
use dermis_store::{Db, StoreError};
use rand::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// A write key as listed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WriteKeyInfo {
    /// `wk_...`.
    pub id: String,
    /// A name for people (`web-shop`, `ios-app`).
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, when revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// The write key store.
#[derive(Clone)]
pub struct WriteKeys {
    db: Db,
    clock: SharedClock,
    cache: moka::sync::Cache<[u8; 32], Option<String>>,
}

impl std::fmt::Debug for WriteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteKeys").finish_non_exhaustive()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl WriteKeys {
    /// Keys stored in `db`.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            clock: dermis_core::clock::system(),
            cache: moka::sync::Cache::builder().max_capacity(10_000).time_to_live(Duration::from_secs(60)).build(),
        }
    }

    /// Reads the time from `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Creates a key; returns it (the key itself is shown only now).
    pub async fn create(&self, name: &str) -> Result<(WriteKeyInfo, String), StoreError> {
        let id = dermis_core::ids::new_id("wk");
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rngs::OsRng;
        let secret: String = (0..32).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
        let key = format!("dwk_{secret}");
        let now = self.clock.now_ms();
        sqlx::query("INSERT INTO write_keys (id, name, key_hash, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&id)
            .bind(name)
            .bind(hex::encode(digest(&key)))
            .bind(now)
            .execute(self.db.writer())
            .await?;
        Ok((WriteKeyInfo { id, name: name.to_owned(), created_at: rfc3339(now), revoked_at: None }, key))
    }

    /// Every key, newest first.
    pub async fn list(&self) -> Result<Vec<WriteKeyInfo>, StoreError> {
        let rows = sqlx::query("SELECT id, name, created_at, revoked_at FROM write_keys ORDER BY id DESC")
            .fetch_all(self.db.reader())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(WriteKeyInfo {
                    id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    created_at: rfc3339(r.try_get(2)?),
                    revoked_at: r.try_get::<Option<i64>, _>(3)?.map(rfc3339),
                })
            })
            .collect()
    }

    /// Revokes a key; false when there is none with this id.
    pub async fn revoke(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE write_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
            .bind(self.clock.now_ms())
            .bind(id)
            .execute(self.db.writer())
            .await?;
        self.cache.invalidate_all();
        Ok(done.rows_affected() > 0)
    }

    /// The id of an active key, or `None`.
    pub async fn resolve(&self, key: &str) -> Result<Option<String>, StoreError> {
        if key.is_empty() || key.len() > 200 {
            return Ok(None);
        }
        let d = digest(key);
        if let Some(hit) = self.cache.get(&d) {
            return Ok(hit);
        }
        let id: Option<String> = sqlx::query("SELECT id FROM write_keys WHERE key_hash = $1 AND revoked_at IS NULL")
            .bind(hex::encode(d))
            .fetch_optional(self.db.reader())
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        self.cache.insert(d, id.clone());
        Ok(id)
    }
}
