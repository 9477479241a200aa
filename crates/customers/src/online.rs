//! [`RedisProfiles`]: the serving facts of customers ([`OnlineProfile`]) in Redis, shared by the
//! nodes of a deployment, so no node has to hold every customer in memory.
//!
//! Each profile is one hash, `PREFIX:profile:{customer_id}`: `v` (the version, in clear), `c` (the
//! profile as JSON, sealed with AES-256-GCM under the customer's own data key, associated data
//! binding it to the customer and to `online_profile`) and `u` (the keyed hash of its user id). A
//! user id finds its customer through `PREFIX:profile-alias:{keyed hash}`. Redis therefore holds
//! no plaintext fact and no plaintext identifier, and a customer's erasure, which destroys their
//! data key, leaves whatever Redis still holds (an AOF, a replica, a snapshot) unreadable. A write
//! is one Lua script: an older version never replaces a newer one, and a changed user id drops
//! the old alias.
//!
//! Reads go through a bounded in-process cache of profiles (kept current by this node's writes
//! and by the bus's customers events) and of data keys; a miss costs one Redis round trip and,
//! for a customer whose key is not cached, one database read to unwrap it.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use zeroize::Zeroizing;

use crate::CustomersError;
use crate::crypto::{DataKey, LookupKind};
use crate::service::Customers;
use crate::serving::OnlineProfile;

// KEYS: the profile, the new alias key (may be ""). ARGV: version, sealed profile, alias hash,
// alias key prefix. Returns 1 when written, 0 when a newer version is held.
const PUT: &str = r#"
local held = redis.call('HGET', KEYS[1], 'v')
if held and tonumber(held) > tonumber(ARGV[1]) then return 0 end
local old = redis.call('HGET', KEYS[1], 'u')
if old and old ~= '' and old ~= ARGV[3] then redis.call('DEL', ARGV[4] .. old) end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'c', ARGV[2], 'u', ARGV[3])
if KEYS[2] ~= '' then redis.call('SET', KEYS[2], ARGV[5]) end
return 1
"#;

// KEYS: the profile. ARGV: alias key prefix.
const FORGET: &str = r#"
local old = redis.call('HGET', KEYS[1], 'u')
if old and old ~= '' then redis.call('DEL', ARGV[1] .. old) end
redis.call('DEL', KEYS[1])
return 1
"#;

/// The field name a profile is sealed under (associated data).
const FIELD: &str = "online_profile";

/// Most profiles and data keys each node caches.
const CACHED: u64 = 100_000;

fn cache<V: Clone + Send + Sync + 'static>() -> moka::sync::Cache<String, V> {
    moka::sync::Cache::builder().max_capacity(CACHED).time_to_idle(Duration::from_secs(600)).build()
}

/// Customers' serving facts in Redis, sealed under each customer's data key.
#[derive(Clone)]
pub struct RedisProfiles {
    conn: ConnectionManager,
    prefix: String,
    loader: Customers,
    profiles: moka::sync::Cache<String, Arc<OnlineProfile>>,
    aliases: moka::sync::Cache<String, String>,
    keys: moka::sync::Cache<String, Arc<DataKey>>,
}

impl std::fmt::Debug for RedisProfiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisProfiles").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

fn redis_err(e: redis::RedisError) -> CustomersError {
    CustomersError::Store(dermis_store::StoreError::Unavailable(format!("redis: {e}")))
}

impl RedisProfiles {
    /// Connects to `url`; keys start with `prefix`. `loader` opens customers' data keys.
    pub async fn connect(url: &str, prefix: &str, loader: Customers) -> Result<Self, CustomersError> {
        let client = redis::Client::open(url).map_err(redis_err)?;
        let conn = ConnectionManager::new(client).await.map_err(redis_err)?;
        Ok(Self { conn, prefix: prefix.to_owned(), loader, profiles: cache(), aliases: cache(), keys: cache() })
    }

    fn profile_key(&self, id: &str) -> String {
        format!("{}:profile:{id}", self.prefix)
    }

    fn alias_prefix(&self) -> String {
        format!("{}:profile-alias:", self.prefix)
    }

    async fn data_key(&self, id: &str) -> Result<Arc<DataKey>, CustomersError> {
        if let Some(k) = self.keys.get(id) {
            return Ok(k);
        }
        let mut conn = self.loader.db.reader().acquire().await.map_err(dermis_store::StoreError::from)?;
        let key = Arc::new(self.loader.data_key(&mut conn, id).await?);
        self.keys.insert(id.to_owned(), key.clone());
        Ok(key)
    }

    /// Keeps `profile` in this node's cache (unless a newer version is cached): what this node
    /// wrote, it reads at once.
    pub fn remember(&self, profile: &OnlineProfile, user_id: Option<&str>) {
        let id = &profile.customer_id;
        if self.profiles.get(id).is_none_or(|h| h.version <= profile.version) {
            self.profiles.insert(id.clone(), Arc::new(profile.clone()));
        }
        if let Some(u) = user_id {
            self.aliases.insert(u.to_owned(), id.clone());
        }
    }

    /// Writes `profile` to Redis (unless Redis holds a newer version) and caches it.
    pub async fn put(&self, profile: OnlineProfile, user_id: Option<&str>) -> Result<(), CustomersError> {
        self.remember(&profile, user_id);
        let id = profile.customer_id.clone();
        let alias = user_id.map(|u| self.loader.lookup_hash(LookupKind::UserId, u)).unwrap_or_default();
        let key = self.data_key(&id).await?;
        let json = Zeroizing::new(
            serde_json::to_vec(&profile)
                .map_err(|e| dermis_store::StoreError::Other(format!("serializing a profile: {e}")))?,
        );
        let sealed = key.encrypt(&id, FIELD, &json);
        let version = profile.version;
        let alias_key = if alias.is_empty() { String::new() } else { format!("{}{alias}", self.alias_prefix()) };
        let mut conn = self.conn.clone();
        let _: i64 = redis::Script::new(PUT)
            .key(self.profile_key(&id))
            .key(alias_key)
            .arg(version)
            .arg(sealed)
            .arg(&alias)
            .arg(self.alias_prefix())
            .arg(&id)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(())
    }

    /// Drops a customer from this node's caches (another node changed or erased them).
    pub fn evict(&self, id: &str) {
        // An alias to it stays cached but finds no profile here, so Redis answers for it.
        self.profiles.invalidate(id);
        self.keys.invalidate(id);
    }

    /// Forgets a customer everywhere (erased, or merged into another).
    pub async fn forget(&self, id: &str) -> Result<(), CustomersError> {
        self.evict(id);
        let mut conn = self.conn.clone();
        let _: i64 = redis::Script::new(FORGET)
            .key(self.profile_key(id))
            .arg(self.alias_prefix())
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(())
    }

    /// What this node holds in its cache (no I/O).
    pub fn cached(&self, reference: &str) -> Option<Arc<OnlineProfile>> {
        if let Some(p) = self.profiles.get(reference) {
            return Some(p);
        }
        self.aliases.get(reference).and_then(|id| self.profiles.get(&id))
    }

    /// The facts of a customer, by customer id or linked user id: from the cache, else Redis.
    /// A profile sealed under a destroyed key (erased) is dropped and answers `None`.
    pub async fn get(&self, reference: &str) -> Result<Option<Arc<OnlineProfile>>, CustomersError> {
        if let Some(p) = self.cached(reference) {
            return Ok(Some(p));
        }
        let mut conn = self.conn.clone();
        let hashed = format!("{}{}", self.alias_prefix(), self.loader.lookup_hash(LookupKind::UserId, reference));
        let aliased: Option<String> = redis::cmd("GET").arg(&hashed).query_async(&mut conn).await.map_err(redis_err)?;
        let id = aliased.unwrap_or_else(|| reference.to_owned());
        let sealed: Option<String> =
            redis::cmd("HGET").arg(self.profile_key(&id)).arg("c").query_async(&mut conn).await.map_err(redis_err)?;
        let Some(sealed) = sealed else { return Ok(None) };
        let key = match self.data_key(&id).await {
            Ok(k) => k,
            Err(CustomersError::Crypto(crate::crypto::CryptoError::KeyDestroyed)) => {
                self.forget(&id).await?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let plain = key.decrypt(&id, FIELD, &sealed)?;
        let profile: OnlineProfile = serde_json::from_slice(&plain)
            .map_err(|e| dermis_store::StoreError::Other(format!("corrupt online profile: {e}")))?;
        let profile = Arc::new(profile);
        self.profiles.insert(id.clone(), profile.clone());
        if id != reference {
            self.aliases.insert(reference.to_owned(), id);
        }
        Ok(Some(profile))
    }

    /// Removes every profile and alias under this prefix (tests).
    pub async fn clear(&self) -> Result<(), CustomersError> {
        let mut conn = self.conn.clone();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:profile*", self.prefix))
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL").arg(keys).query_async(&mut conn).await.map_err(redis_err)?;
        }
        self.profiles.invalidate_all();
        self.aliases.invalidate_all();
        self.keys.invalidate_all();
        Ok(())
    }
}
