//! The feature store on Redis, for several nodes. An event is applied by one Lua script, so the
//! duplicate check and every update happen atomically; keys expire with the customer TTL and
//! the 7-day product window.

use std::collections::BTreeMap;

use async_trait::async_trait;
use redis::aio::ConnectionManager;

use crate::memory::{ACTIVITY, PURCHASES};
use crate::{
    Action, CUSTOMER_TTL_MS, CustomerFeatures, FeatureError, FeatureEvent, FeatureStore, ProductFeatures, RECENT,
    Recent, customer_from, hour_of, product_from,
};

const APPLY: &str = r#"
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
redis.call('PEXPIRE', KEYS[2], ARGV[4])
for i = 5, 6 do
  if ARGV[i] ~= '' then redis.call('LPUSH', KEYS[3], ARGV[i]) end
end
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[9]) - 1)
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('HINCRBY', KEYS[4], ARGV[7], 1)
redis.call('PEXPIRE', KEYS[4], ARGV[8])
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
        Ok(Self { conn, prefix: prefix.to_owned(), script: redis::Script::new(APPLY) })
    }

    fn customer_key(&self, id: &str, what: &str) -> String {
        format!("{}:c:{id}:{what}", self.prefix)
    }

    fn product_key(&self, id: &str, action: Action) -> String {
        format!("{}:p:{id}:{}", self.prefix, action.as_str())
    }
}

fn recent(entry: &str) -> Option<(Recent, i64)> {
    let mut parts = entry.rsplitn(3, '|');
    let third = parts.next()?;
    let second = parts.next()?;
    match parts.next() {
        Some(pid) => Some((Recent { product_id: pid.to_owned(), at_ms: second.parse().ok()? }, third.parse().ok()?)),
        None => Some((Recent { product_id: second.to_owned(), at_ms: third.parse().ok()? }, 0)),
    }
}

#[async_trait]
impl FeatureStore for RedisFeatures {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn apply(&self, e: &FeatureEvent) -> Result<(), FeatureError> {
        let entry = match e.action {
            Action::Purchase => format!("{}|{}|{}", e.product_id, e.at_ms, e.amount_minor),
            _ => format!("{}|{}", e.product_id, e.at_ms),
        };
        let cap = if e.action == Action::Purchase { PURCHASES } else { RECENT };
        let activity = |kind: &str, name: &Option<String>| {
            name.as_ref().map(|n| format!("{kind}|{}|{}|{n}", e.action.weight(), e.at_ms)).unwrap_or_default()
        };
        let mut conn = self.conn.clone();
        let _: i64 = self
            .script
            .key(format!("{}:seen:{}", self.prefix, e.id))
            .key(self.customer_key(&e.customer_id, e.action.as_str()))
            .key(self.customer_key(&e.customer_id, "activity"))
            .key(self.product_key(&e.product_id, e.action))
            .arg(SEEN_MS)
            .arg(entry)
            .arg(cap)
            .arg(CUSTOMER_TTL_MS)
            .arg(activity("brand", &e.brand))
            .arg(activity("category", &e.category))
            .arg(hour_of(e.at_ms))
            .arg(PRODUCT_MS)
            .arg(ACTIVITY)
            .invoke_async(&mut conn)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn customer(&self, customer_id: &str, now_ms: i64) -> Result<CustomerFeatures, FeatureError> {
        let mut conn = self.conn.clone();
        let (views, carts, purchases, activity): (Vec<String>, Vec<String>, Vec<String>, Vec<String>) = redis::pipe()
            .lrange(self.customer_key(customer_id, "view"), 0, -1)
            .lrange(self.customer_key(customer_id, "cart"), 0, -1)
            .lrange(self.customer_key(customer_id, "purchase"), 0, -1)
            .lrange(self.customer_key(customer_id, "activity"), 0, -1)
            .query_async(&mut conn)
            .await
            .map_err(err)?;
        let list = |v: Vec<String>| v.iter().filter_map(|s| recent(s)).map(|(r, _)| r).collect::<Vec<_>>();
        let affinities = activity
            .iter()
            .filter_map(|a| {
                let mut p = a.splitn(4, '|');
                let kind = p.next()?.to_owned();
                let weight: i64 = p.next()?.parse().ok()?;
                let at: i64 = p.next()?.parse().ok()?;
                Some((kind, p.next()?.to_owned(), weight, at))
            })
            .collect();
        Ok(customer_from(
            list(views),
            list(carts),
            purchases.iter().filter_map(|s| recent(s)).collect(),
            affinities,
            now_ms,
        ))
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

    async fn forget_customer(&self, customer_id: &str) -> Result<(), FeatureError> {
        let mut conn = self.conn.clone();
        let keys: Vec<String> =
            ["view", "cart", "purchase", "activity"].iter().map(|w| self.customer_key(customer_id, w)).collect();
        let _: i64 = redis::cmd("DEL").arg(keys).query_async(&mut conn).await.map_err(err)?;
        Ok(())
    }
}
