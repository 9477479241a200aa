//! The feature store on Redis, for several nodes. An event is applied by one Lua script, so the
//! duplicate check and every update happen atomically; keys expire with the customer TTL and
//! the 7-day product window.

use std::collections::BTreeMap;

use async_trait::async_trait;
use redis::aio::ConnectionManager;

use crate::memory::{ACTIVITY, PURCHASES};
use crate::{
    Action, CUSTOMER_TTL_MS, CustomerFeatures, FeatureError, FeatureEvent, FeatureStore, ProductFeatures, RECENT,
    customer_from, hour_of, product_from,
};

/// A list entry as stored: JSON.
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

// KEYS: seen id, the customer's list for the action, the customer's interests, the product's
// buckets for the action, the customer's erasure tombstone. ARGV: seen TTL, list entry, list
// cap, customer TTL, hour, product TTL, interest cap, received at, then one interest entry per
// remaining argument. An update received before the customer's erasure is dropped.
const APPLY: &str = r#"
local erased = redis.call('GET', KEYS[5])
if erased and tonumber(ARGV[8]) <= tonumber(erased) then return 0 end
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
redis.call('PEXPIRE', KEYS[2], ARGV[4])
for i = 9, #ARGV do
  redis.call('LPUSH', KEYS[3], ARGV[i])
end
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[7]) - 1)
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('HINCRBY', KEYS[4], ARGV[5], 1)
redis.call('PEXPIRE', KEYS[4], ARGV[6])
return 1
"#;

// KEYS: the customer's four lists, their tombstone. ARGV: erased at, tombstone TTL. The
// tombstone keeps the latest erasure time.
const FORGET: &str = r#"
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
local prev = redis.call('GET', KEYS[5])
if (not prev) or tonumber(prev) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[5], ARGV[1], 'PX', ARGV[2])
end
return 1
"#;

const SEEN_MS: i64 = 8 * 24 * 3600 * 1000;
const PRODUCT_MS: i64 = 8 * 24 * 3600 * 1000;

fn err(e: redis::RedisError) -> FeatureError {
    FeatureError::Redis(e.to_string())
}

/// The Redis store.
#[derive(Clone)]
pub struct RedisFeatures {
    conn: ConnectionManager,
    prefix: String,
    script: redis::Script,
    forget: redis::Script,
}

impl std::fmt::Debug for RedisFeatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisFeatures").field("prefix", &self.prefix).finish()
    }
}

impl RedisFeatures {
    /// Connects; every key starts with `prefix` (`dermis`).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, FeatureError> {
        let client = redis::Client::open(url).map_err(err)?;
        let conn = client.get_connection_manager().await.map_err(err)?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            script: redis::Script::new(APPLY),
            forget: redis::Script::new(FORGET),
        })
    }

    /// Deletes customer keys that name a customer in clear (written by a release before
    /// pseudonyms; no erasure could find them any more). Run once at start; returns how many.
    pub async fn forget_clear_customers(&self) -> Result<u64, FeatureError> {
        let mut conn = self.conn.clone();
        let pattern = format!("{}:c:*", self.prefix);
        let head = format!("{}:c:", self.prefix);
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(err)?;
            let clear: Vec<&String> = keys
                .iter()
                .filter(|k| {
                    let id = k.strip_prefix(&head).and_then(|rest| rest.rsplit_once(':')).map_or("", |(id, _)| id);
                    !crate::Pseudonyms::is_pseudonym(id)
                })
                .collect();
            if !clear.is_empty() {
                let n: u64 = redis::cmd("DEL").arg(&clear).query_async(&mut conn).await.map_err(err)?;
                removed += n;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    fn customer_key(&self, id: &str, what: &str) -> String {
        format!("{}:c:{id}:{what}", self.prefix)
    }

    fn product_key(&self, id: &str, action: Action) -> String {
        format!("{}:p:{id}:{}", self.prefix, action.as_str())
    }
}

/// Entries are JSON (ids may contain any character); an unreadable one is skipped.
fn entries<T: serde::de::DeserializeOwned>(list: &[String]) -> Vec<T> {
    list.iter().filter_map(|e| serde_json::from_str(e).ok()).collect()
}

#[async_trait]
impl FeatureStore for RedisFeatures {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn apply(&self, e: &FeatureEvent) -> Result<(), FeatureError> {
        let cap = if e.action == Action::Purchase { PURCHASES } else { RECENT };
        let mut conn = self.conn.clone();
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(format!("{}:seen:{}", self.prefix, e.id))
            .key(self.customer_key(&e.customer_id, e.action.as_str()))
            .key(self.customer_key(&e.customer_id, "interests"))
            .key(self.product_key(&e.product_id, e.action))
            .key(self.customer_key(&e.customer_id, "erased"))
            .arg(SEEN_MS)
            .arg(json(&e.touch()))
            .arg(cap)
            .arg(CUSTOMER_TTL_MS)
            .arg(hour_of(e.at_ms))
            .arg(PRODUCT_MS)
            .arg(ACTIVITY)
            .arg(e.received_at_ms);
        for i in e.interests() {
            invocation.arg(json(&i));
        }
        let _: i64 = invocation.invoke_async(&mut conn).await.map_err(err)?;
        Ok(())
    }

    async fn customer(&self, customer_id: &str, now_ms: i64) -> Result<CustomerFeatures, FeatureError> {
        let mut conn = self.conn.clone();
        let (views, carts, purchases, interests): (Vec<String>, Vec<String>, Vec<String>, Vec<String>) = redis::pipe()
            .lrange(self.customer_key(customer_id, "view"), 0, -1)
            .lrange(self.customer_key(customer_id, "cart"), 0, -1)
            .lrange(self.customer_key(customer_id, "purchase"), 0, -1)
            .lrange(self.customer_key(customer_id, "interests"), 0, -1)
            .query_async(&mut conn)
            .await
            .map_err(err)?;
        Ok(customer_from(entries(&views), entries(&carts), entries(&purchases), entries(&interests), now_ms))
    }

    async fn product(&self, product_id: &str, now_ms: i64) -> Result<ProductFeatures, FeatureError> {
        let mut conn = self.conn.clone();
        let (v, c, p): (BTreeMap<i64, i64>, BTreeMap<i64, i64>, BTreeMap<i64, i64>) = redis::pipe()
            .hgetall(self.product_key(product_id, Action::View))
            .hgetall(self.product_key(product_id, Action::AddToCart))
            .hgetall(self.product_key(product_id, Action::Purchase))
            .query_async(&mut conn)
            .await
            .map_err(err)?;
        Ok(product_from([v, c, p], now_ms))
    }

    async fn forget_customer(&self, customer_id: &str, erased_at_ms: i64) -> Result<(), FeatureError> {
        let mut conn = self.conn.clone();
        let keys: Vec<String> =
            ["view", "cart", "purchase", "interests"].iter().map(|w| self.customer_key(customer_id, w)).collect();
        let _: i64 = self
            .forget
            .key(&keys[0])
            .key(&keys[1])
            .key(&keys[2])
            .key(&keys[3])
            .key(self.customer_key(customer_id, "erased"))
            .arg(erased_at_ms)
            .arg(CUSTOMER_TTL_MS)
            .invoke_async(&mut conn)
            .await
            .map_err(err)?;
        Ok(())
    }
}
