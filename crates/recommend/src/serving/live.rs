//! What customers did, in memory, as the engine reads it per request: each customer's recent
//! interactions (views, add-to-carts, purchases, reviews, "not for me", returns) and reported
//! reactions, review stars per product (overall and by the reviewer's skin type), products
//! bought in one order, and everything the next retrain learns from.
//!
//! Kept by [`LiveInteractions`], an ingestion hook (the node that stores an event applies it
//! before answering: the very next recommendation on that node sees it) and a projection of
//! `events.ingested` (what other nodes stored, read from the log by id; erasures). Rebuilt at
//! start from the event log. Customers are keyed by their pseudonym (the events domain's
//! keyed hash of `userId`, else `anonymousId`), never in clear; an erasure forgets them.
//! Applying is idempotent: each stored message counts once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use dermis_bus::Envelope;
use dermis_bus::projection::Projection;
use dermis_customers::projection::ProfileProjection;
use dermis_events::Pseudonyms;
use dermis_events::ingest::{IngestHook, Prepared};
use dermis_events::log;
use dermis_events::message::{Kind, Message};
use dermis_events::outbox::{Ingested, TOPIC};
use dermis_events::schemas::normalize_name;
use dermis_store::Db;
use serde_json::Value;

use crate::data::{Interactions, InteractionsBuilder, Signal, SignalWeights};

/// Message hashes remembered to count each message once.
pub const MAX_APPLIED: usize = 2_000_000;

/// Interactions kept per customer (the most recent).
pub const MAX_PER_CUSTOMER: usize = 500;
/// Log messages read per page at a rebuild.
const REBUILD_PAGE: u32 = 5000;

/// The event kinds (as [`dermis_events::outbox::kind_label`] names them) the engine learns from.
pub fn wanted(kind: &str) -> bool {
    matches!(
        kind,
        "track:product_viewed"
            | "track:product_added"
            | "track:order_completed"
            | "track:product_reviewed"
            | "track:product_not_for_me"
            | "track:product_dismissed"
            | "track:order_refunded"
            | "track:product_returned"
            | "track:reaction_reported"
    )
}

/// One thing a customer did with a product.
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction {
    /// The product as the event named it (`prd_...` or an external id).
    pub product: Arc<str>,
    /// What they did.
    pub signal: Signal,
    /// When (event time, ms).
    pub at_ms: i64,
}

/// A reaction a customer reported.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportedReaction {
    /// The product suspected (as the event named it).
    pub product: Arc<str>,
    /// When.
    pub at_ms: i64,
}

/// One customer's recent activity.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    /// Oldest first, at most [`MAX_PER_CUSTOMER`].
    pub interactions: VecDeque<Interaction>,
    /// Reactions reported (all kept: they are safety facts).
    pub reactions: Vec<ReportedReaction>,
}

/// Review stars of a product.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stars {
    /// Reviews counted.
    pub count: u32,
    /// Sum of their stars.
    pub sum: f32,
}

impl Stars {
    /// The average (0 without reviews).
    pub fn mean(&self) -> f32 {
        if self.count == 0 { 0.0 } else { self.sum / self.count as f32 }
    }
    fn add(&mut self, stars: f32) {
        self.count += 1;
        self.sum += stars;
    }
}

/// Review stars of a product, overall and by the reviewer's skin type (when their profile says).
#[derive(Debug, Clone, Default)]
pub struct ProductStars {
    /// Every review.
    pub all: Stars,
    /// By skin type (wire name).
    pub by_skin_type: HashMap<String, Stars>,
}

#[derive(Default)]
struct State {
    customers: HashMap<String, Activity>,
    stars: HashMap<Arc<str>, ProductStars>,
    /// Product → products bought in the same order, with counts.
    together: HashMap<Arc<str>, HashMap<Arc<str>, u32>>,
    /// Hashes of the messages applied (the most recent [`MAX_APPLIED`], oldest first in
    /// `applied_order`): a message comes again only soon after it was applied (a bus redelivery,
    /// a rebuild overlapping the bus), never a million messages later.
    applied: HashSet<u64>,
    applied_order: VecDeque<u64>,
    /// Interned product ids.
    products: HashSet<Arc<str>>,
    /// Actions on products listed by a recommendation, oldest first.
    attributed: VecDeque<Attributed>,
}

impl State {
    fn intern(&mut self, id: &str) -> Arc<str> {
        if let Some(p) = self.products.get(id) {
            return p.clone();
        }
        let p: Arc<str> = Arc::from(id);
        self.products.insert(p.clone());
        p
    }
}

/// The interactions of this node, live.
pub struct LiveInteractions {
    state: RwLock<State>,
    pseudonyms: Pseudonyms,
    db: Db,
    node_id: String,
    profiles: Option<Arc<ProfileProjection>>,
    /// Messages applied since the last [`Self::training_data`].
    changed: AtomicU64,
    /// Increases with every change (a cache key).
    generation: AtomicU64,
    rebuilt: AtomicBool,
}

impl std::fmt::Debug for LiveInteractions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.read();
        f.debug_struct("LiveInteractions").field("customers", &s.customers.len()).finish()
    }
}

/// What a stored message means to the engine.
#[derive(Debug, Clone, PartialEq)]
enum Parsed {
    /// Products and what was done with them, and the recommendation that led there (its id and
    /// the position the product was shown at, when the event says).
    Did(Vec<(String, Signal)>, Option<(String, Option<u32>)>),
    Reaction(String),
}

/// A product a customer acted on from a recommendation list.
#[derive(Debug, Clone, PartialEq)]
pub struct Attributed {
    /// The customer (pseudonym).
    pub who: Arc<str>,
    /// The `recommendation_id` of the response that listed it.
    pub recommendation_id: Arc<str>,
    /// The product.
    pub product: Arc<str>,
    /// The position it was shown at (1-based), when the event says.
    pub position: Option<u32>,
    /// What was done.
    pub signal: Signal,
}

/// The largest inverse-propensity weight of an action on a recommended product.
pub const MAX_IPS: f32 = 10.0;

/// Attributions kept (the most recent).
pub const MAX_ATTRIBUTED: usize = 200_000;

fn text(v: &Value, k: &str) -> Option<String> {
    let x = v.get(k)?;
    let s = x.as_str().map(str::to_owned).or_else(|| x.as_number().map(|n| n.to_string()))?;
    let s = s.trim();
    (!s.is_empty() && s.len() <= 512).then(|| s.to_owned())
}

/// The products of a message and what was done with them.
fn parse(m: &Message) -> Option<Parsed> {
    let (Kind::Track, Some(event)) = (m.kind, m.event.as_deref()) else { return None };
    let props = m.payload.get("properties").unwrap_or(&Value::Null);
    let from = text(props, "recommendation_id").map(|r| {
        let position = props.get("position").and_then(Value::as_u64).filter(|p| (1..=10_000).contains(p));
        (r, position.map(|p| p as u32))
    });
    let one = |signal: Signal| text(props, "product_id").map(|p| Parsed::Did(vec![(p, signal)], from.clone()));
    let many = |signal: Signal| {
        let list: Vec<(String, Signal)> = props
            .get("products")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|p| text(p, "product_id")).map(|p| (p, signal)).collect())
            .unwrap_or_default();
        if list.is_empty() { one(signal) } else { Some(Parsed::Did(list, from.clone())) }
    };
    match normalize_name(event).as_str() {
        "product_viewed" | "product_clicked" => one(Signal::View),
        "product_added" => one(Signal::AddToCart),
        "order_completed" => many(Signal::Purchase),
        "product_reviewed" => {
            let rating = props.get("rating").and_then(Value::as_f64)?;
            (1.0..=5.0).contains(&rating).then_some(())?;
            one(Signal::Review { rating: rating as f32 })
        }
        "product_not_for_me" | "product_dismissed" => one(Signal::NotForMe),
        "order_refunded" | "product_returned" => many(Signal::Return),
        "reaction_reported" => text(props, "product_id").map(Parsed::Reaction),
        _ => None,
    }
}

fn message_hash(write_key_id: &str, message_id: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    write_key_id.hash(&mut h);
    0u8.hash(&mut h);
    message_id.hash(&mut h);
    h.finish()
}

impl LiveInteractions {
    /// An empty state; `profiles` (when given) tells a reviewer's skin type.
    pub fn new(db: Db, pseudonyms: Pseudonyms, node_id: &str, profiles: Option<Arc<ProfileProjection>>) -> Arc<Self> {
        Arc::new(LiveInteractions {
            state: RwLock::new(State::default()),
            pseudonyms,
            db,
            node_id: node_id.to_owned(),
            profiles,
            changed: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            rebuilt: AtomicBool::new(false),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The pseudonym of a `userId`, `anonymousId` or customer id.
    pub fn pseudonym(&self, id: &str) -> String {
        self.pseudonyms.customer(id)
    }

    /// Increases with every change.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Messages applied since training data was last taken.
    pub fn changed(&self) -> u64 {
        self.changed.load(Ordering::Acquire)
    }

    /// Whether the rebuild at start finished.
    pub fn is_rebuilt(&self) -> bool {
        self.rebuilt.load(Ordering::Acquire)
    }

    /// The activity of the customers these pseudonyms name, merged, oldest first.
    pub fn activity(&self, pseudonyms: &[String]) -> Activity {
        let s = self.read();
        let mut out = Activity::default();
        for p in pseudonyms {
            if let Some(a) = s.customers.get(p) {
                out.interactions.extend(a.interactions.iter().cloned());
                out.reactions.extend(a.reactions.iter().cloned());
            }
        }
        if pseudonyms.len() > 1 {
            out.interactions.make_contiguous().sort_by_key(|i| i.at_ms);
        }
        out
    }

    /// A product's review stars (by any of its ids).
    pub fn stars(&self, ids: &[&str]) -> Option<ProductStars> {
        let s = self.read();
        ids.iter().find_map(|id| s.stars.get(*id).cloned())
    }

    /// Reviews per (product, reviewer's skin type), where the reviewer's profile said.
    pub fn reviews_by_skin_type(&self) -> Vec<(Arc<str>, String, u32)> {
        let s = self.read();
        s.stars
            .iter()
            .flat_map(|(p, st)| st.by_skin_type.iter().map(move |(k, v)| (p.clone(), k.clone(), v.count)))
            .collect()
    }

    /// Products bought in the same order as a product (by any of its ids), most often first.
    pub fn bought_with(&self, ids: &[&str], limit: usize) -> Vec<(Arc<str>, u32)> {
        let s = self.read();
        let mut out: HashMap<Arc<str>, u32> = HashMap::new();
        for id in ids {
            for (p, n) in s.together.get(*id).into_iter().flatten() {
                *out.entry(p.clone()).or_default() += n;
            }
        }
        let mut v: Vec<_> = out.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(limit);
        v
    }

    /// Everything to learn from: each customer's interactions, weighted by `weights` (each
    /// interaction once; a repeated purchase counts as a repurchase).
    /// Products are named as `product` maps them (the catalog's id); those it maps to `None`
    /// (not in the catalog) are left out.
    ///
    /// An action on a product a recommendation listed is weighted up by the inverse of the
    /// chance its position was looked at (position-based model: 1/position, the weight capped at
    /// [`MAX_IPS`]): a click at position 8 says more than one at position 1, which is looked at
    /// anyway. The position is the event's `position`, else where `position_of(recommendation
    /// id, product)` finds it in the list served.
    pub fn training_data(
        &self,
        weights: &SignalWeights,
        product: impl Fn(&str) -> Option<String>,
        position_of: impl Fn(&str, &str) -> Option<u32>,
    ) -> Interactions {
        self.changed.store(0, Ordering::Release);
        let s = self.read();
        let mut b = InteractionsBuilder::new(weights.clone());
        let mut names: HashMap<&str, Option<String>> = HashMap::new();
        for (who, a) in &s.customers {
            for i in &a.interactions {
                let name = names.entry(&i.product).or_insert_with(|| product(&i.product));
                if let Some(id) = name {
                    b.add(who, id, i.signal);
                }
            }
        }
        for a in &s.attributed {
            if !s.customers.contains_key(&*a.who) {
                continue;
            }
            let Some(Some(id)) = names.get(&*a.product) else { continue };
            let Some(position) = a.position.or_else(|| position_of(&a.recommendation_id, id)) else { continue };
            let ips = (position as f32).min(MAX_IPS);
            let w = weights.weight(a.signal);
            if w > 0.0 && ips > 1.0 {
                b.add_weight(&a.who, id, w * (ips - 1.0));
            }
        }
        drop(s);
        b.build()
    }

    /// How many customers and interactions it holds.
    pub fn counts(&self) -> (usize, usize) {
        let s = self.read();
        (s.customers.len(), s.customers.values().map(|a| a.interactions.len()).sum())
    }

    /// Applies stored messages (each once); returns how many changed something.
    pub fn apply_messages<'a>(&self, messages: impl IntoIterator<Item = (&'a str, &'a Message)>) -> usize {
        let parsed: Vec<(u64, String, i64, Parsed, Option<String>)> = messages
            .into_iter()
            .filter_map(|(key, m)| {
                let p = parse(m)?;
                let who = m.partition_key();
                if who.is_empty() {
                    return None;
                }
                // The reviewer's skin type, when their profile is held here.
                let skin = match (&p, &self.profiles) {
                    (Parsed::Did(list, _), Some(profiles))
                        if list.iter().any(|(_, s)| matches!(s, Signal::Review { .. })) =>
                    {
                        m.user_id
                            .as_deref()
                            .and_then(|u| profiles.get(u))
                            .and_then(|p| p.skin_type)
                            .map(|s| s.as_str().to_owned())
                    }
                    _ => None,
                };
                Some((message_hash(key, &m.message_id), self.pseudonyms.customer(who), m.timestamp_ms, p, skin))
            })
            .collect();
        if parsed.is_empty() {
            return 0;
        }
        let mut s = self.write();
        let mut n = 0;
        for (hash, who, at_ms, p, skin) in parsed {
            if !s.applied.insert(hash) {
                continue;
            }
            s.applied_order.push_back(hash);
            if s.applied_order.len() > MAX_APPLIED
                && let Some(old) = s.applied_order.pop_front()
            {
                s.applied.remove(&old);
            }
            n += 1;
            match p {
                Parsed::Reaction(product) => {
                    let product = s.intern(&product);
                    s.customers.entry(who).or_default().reactions.push(ReportedReaction { product, at_ms });
                }
                Parsed::Did(list, from) => {
                    let products: Vec<Arc<str>> = list.iter().map(|(p, _)| s.intern(p)).collect();
                    if let Some((rec, position)) = from {
                        let (who_arc, rec): (Arc<str>, Arc<str>) = (Arc::from(who.as_str()), Arc::from(rec.as_str()));
                        for (p, (_, signal)) in products.iter().zip(&list) {
                            s.attributed.push_back(Attributed {
                                who: who_arc.clone(),
                                recommendation_id: rec.clone(),
                                product: p.clone(),
                                position,
                                signal: *signal,
                            });
                        }
                        while s.attributed.len() > MAX_ATTRIBUTED {
                            s.attributed.pop_front();
                        }
                    }
                    let purchase = list.iter().any(|(_, sig)| *sig == Signal::Purchase);
                    if purchase && products.len() > 1 {
                        for a in &products {
                            for b in &products {
                                if a != b {
                                    *s.together.entry(a.clone()).or_default().entry(b.clone()).or_default() += 1;
                                }
                            }
                        }
                    }
                    for ((_, signal), product) in list.into_iter().zip(products) {
                        if let Signal::Review { rating } = signal {
                            let stars = s.stars.entry(product.clone()).or_default();
                            stars.all.add(rating);
                            if let Some(skin) = &skin {
                                stars.by_skin_type.entry(skin.clone()).or_default().add(rating);
                            }
                        }
                        let a = s.customers.entry(who.clone()).or_default();
                        let signal = if signal == Signal::Purchase
                            && a.interactions.iter().any(|i| {
                                i.product == product && matches!(i.signal, Signal::Purchase | Signal::Repurchase)
                            }) {
                            Signal::Repurchase
                        } else {
                            signal
                        };
                        // Keep event-time order (an import may bring older events late).
                        let at = a.interactions.iter().rposition(|i| i.at_ms <= at_ms).map_or(0, |p| p + 1);
                        a.interactions.insert(at, Interaction { product, signal, at_ms });
                        if a.interactions.len() > MAX_PER_CUSTOMER {
                            a.interactions.pop_front();
                        }
                    }
                }
            }
        }
        drop(s);
        if n > 0 {
            self.changed.fetch_add(n as u64, Ordering::AcqRel);
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        n
    }

    /// Actions on products listed by a recommendation (the most recent).
    pub fn attributed(&self) -> Vec<Attributed> {
        self.read().attributed.iter().cloned().collect()
    }

    /// Forgets customers (pseudonyms) entirely.
    pub fn forget(&self, pseudonyms: &[String]) {
        let mut s = self.write();
        for p in pseudonyms {
            s.customers.remove(p);
        }
        let gone: HashSet<&str> = pseudonyms.iter().map(String::as_str).collect();
        s.attributed.retain(|a| !gone.contains(&*a.who));
        drop(s);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Reads the whole event log.
    pub async fn rebuild_from_log(&self) -> anyhow::Result<u64> {
        let mut after = String::new();
        let mut read = 0u64;
        loop {
            let page = log::since(&self.db, &after, REBUILD_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.id.clone();
            read += page.len() as u64;
            self.apply_messages(page.iter().map(|l| (l.write_key_id.as_str(), &l.message)));
        }
        self.rebuilt.store(true, Ordering::Release);
        Ok(read)
    }
}

/// Messages about to be stored, applied once they are.
struct Pending {
    live: Arc<LiveInteractions>,
    write_key_id: String,
    messages: Vec<Message>,
}

#[async_trait]
impl Prepared for Pending {
    async fn stored(self: Box<Self>) {
        self.live.apply_messages(self.messages.iter().map(|m| (self.write_key_id.as_str(), m)));
    }
}

/// The hook on this node's ingestion (the engine keeps an `Arc` of the state).
pub struct LiveHook(pub Arc<LiveInteractions>);

#[async_trait]
impl IngestHook for LiveHook {
    async fn prepare(&self, write_key_id: &str, messages: &[&Message]) -> Box<dyn Prepared> {
        let messages: Vec<Message> = messages.iter().filter(|m| parse(m).is_some()).map(|m| (*m).clone()).collect();
        Box::new(Pending { live: self.0.clone(), write_key_id: write_key_id.to_owned(), messages })
    }

    async fn erased(&self, pseudonyms: &[String], _erased_at: i64) {
        self.0.forget(pseudonyms);
    }
}

#[async_trait]
impl Projection for LiveInteractions {
    fn name(&self) -> &'static str {
        "recommend-interactions"
    }

    fn topic(&self) -> &'static str {
        TOPIC
    }

    async fn rebuild(&self) -> anyhow::Result<u64> {
        self.rebuild_from_log().await
    }

    fn rebuild_covers_published(&self) -> bool {
        true
    }

    async fn apply(&self, batch: &[Envelope]) -> anyhow::Result<()> {
        for e in batch {
            let ingested: Ingested = match serde_json::from_str(&e.payload) {
                Ok(i) => i,
                Err(err) => {
                    tracing::error!(error = %err, id = e.id, "unreadable events.ingested message skipped by the recommendation engine");
                    continue;
                }
            };
            if !ingested.erase.is_empty() {
                let mut erase = ingested.erase.clone();
                for p in &mut erase {
                    self.pseudonyms.ensure(p);
                }
                self.forget(&erase);
            }
            // What this node stored, it applied before answering.
            let here = !ingested.node.is_empty() && ingested.node == self.node_id;
            if here || !ingested.has_any(wanted) {
                continue;
            }
            let stored = log::messages(&self.db, &ingested.write_key_id, &ingested.messages).await?;
            self.apply_messages(stored.iter().map(|l| (l.write_key_id.as_str(), &l.message)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn track(id: &str, user: &str, event: &str, props: Value, at: i64) -> Message {
        Message {
            message_id: id.into(),
            kind: Kind::Track,
            event: Some(event.into()),
            user_id: Some(user.into()),
            anonymous_id: None,
            timestamp_ms: at,
            received_at_ms: at,
            payload: json!({ "properties": props }),
        }
    }

    async fn live() -> (dermis_store::testing::TestDb, Arc<LiveInteractions>) {
        let t = dermis_store::testing::TestDb::sqlite(&[dermis_events::MIGRATIONS]).await;
        let live = LiveInteractions::new(t.db().clone(), Pseudonyms::with_key(b"test-key"), "n1", None);
        (t, live)
    }

    #[tokio::test]
    async fn each_message_counts_once_and_purchases_pair_products() {
        let (_db, live) = live().await;
        let order =
            track("m1", "u1", "Order Completed", json!({"products": [{"product_id": "P1"}, {"product_id": "P2"}]}), 10);
        let view = track("m2", "u1", "Product Viewed", json!({"product_id": "P3"}), 5);
        assert_eq!(live.apply_messages([("wk", &order), ("wk", &view)]), 2);
        assert_eq!(live.apply_messages([("wk", &order)]), 0, "a repeat counts for nothing");
        let who = live.pseudonym("u1");
        let a = live.activity(std::slice::from_ref(&who));
        let got: Vec<_> = a.interactions.iter().map(|i| (&*i.product, i.signal)).collect();
        assert_eq!(got, [("P3", Signal::View), ("P1", Signal::Purchase), ("P2", Signal::Purchase)]);
        assert_eq!(live.bought_with(&["P1"], 5), vec![(Arc::from("P2"), 1)]);
        // Bought again: a repurchase.
        let again = track("m3", "u1", "Order Completed", json!({"products": [{"product_id": "P1"}]}), 20);
        live.apply_messages([("wk", &again)]);
        assert_eq!(
            live.activity(std::slice::from_ref(&who)).interactions.back().map(|i| i.signal),
            Some(Signal::Repurchase)
        );
        let data = live.training_data(&SignalWeights::default(), |p| Some(p.to_owned()), |_, _| None);
        assert_eq!(data.n_users(), 1);
        assert_eq!(data.n_items(), 3);
        live.forget(std::slice::from_ref(&who));
        assert!(live.activity(&[who]).interactions.is_empty(), "erased customers are forgotten");
    }

    #[tokio::test]
    async fn a_click_deep_in_a_list_weighs_more_than_one_at_the_top() {
        let (_db, live) = live().await;
        let top = track(
            "c1",
            "u3",
            "Product Clicked",
            json!({"product_id": "A", "recommendation_id": "rec_1", "position": 1}),
            1,
        );
        let deep = track("c2", "u3", "Product Clicked", json!({"product_id": "B", "recommendation_id": "rec_1"}), 2);
        let plain = track("c3", "u3", "Product Viewed", json!({"product_id": "C"}), 3);
        live.apply_messages([("wk", &top), ("wk", &deep), ("wk", &plain)]);
        assert_eq!(live.attributed().len(), 2);
        // B was shown at position 8 (the served list says; the event does not).
        let data = live.training_data(
            &SignalWeights::default(),
            |p| Some(p.to_owned()),
            |rec, p| (rec == "rec_1" && p == "B").then_some(8),
        );
        let u = data.users().get(&live.pseudonym("u3")).unwrap();
        let h = data.history(u);
        let w = |p: &str| h.weights[h.items.iter().position(|&i| i == data.items().get(p).unwrap()).unwrap()];
        assert_eq!(w("A"), w("C"), "a click at the top counts as a view");
        assert!((w("B") - 8.0 * w("C")).abs() < 1e-6, "a click at position 8 counts 8 views: {}", w("B"));
    }

    #[tokio::test]
    async fn reviews_reactions_and_bad_events() {
        let (_db, live) = live().await;
        let review = track("r1", "u2", "Product Reviewed", json!({"product_id": "P9", "rating": 4}), 1);
        let bad = track("r2", "u2", "Product Reviewed", json!({"product_id": "P9", "rating": 11}), 2);
        let no_product = track("r3", "u2", "Product Viewed", json!({}), 3);
        let reaction = track("r4", "u2", "Reaction Reported", json!({"product_id": "P7", "severity": "mild"}), 4);
        assert_eq!(live.apply_messages([("wk", &review), ("wk", &bad), ("wk", &no_product), ("wk", &reaction)]), 2);
        assert_eq!(live.stars(&["P9"]).map(|s| s.all), Some(Stars { count: 1, sum: 4.0 }));
        let a = live.activity(&[live.pseudonym("u2")]);
        assert_eq!(a.reactions.len(), 1);
        assert_eq!(&*a.reactions[0].product, "P7");
    }
}
