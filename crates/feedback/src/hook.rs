//! The ingestion hook: `Experiment Viewed` events make units (the first exposure counts), and
//! later events of an exposed visitor are outcomes of their unit, each message counted once:
//! `Product Clicked` (click-through), `Product Added` (add-to-cart), `Order Completed`
//! (conversion and revenue), `Order Refunded` / `Product Returned` (returns), `Reaction
//! Reported` (the adverse-reaction guardrail).
//!
//! It runs on the node that stores the events (each stored message passes one hook once), and
//! does nothing while no experiment runs.

use std::sync::Arc;

use async_trait::async_trait;
use dermis_events::ingest::{IngestHook, Prepared};
use dermis_events::message::Message;
use serde_json::Value;

use crate::model::Status;
use crate::service::Experiments;
use crate::store::{self, Outcome};

/// The hook.
#[derive(Debug, Clone)]
pub struct FeedbackHook {
    experiments: Experiments,
}

impl FeedbackHook {
    /// For `experiments`.
    pub fn new(experiments: Experiments) -> Self {
        Self { experiments }
    }
}

/// What one event means for experiments.
#[derive(Debug, Clone, PartialEq)]
enum Meaning {
    /// An exposure to a variant (by key).
    Exposure { experiment: String, variant: String },
    /// An outcome.
    Outcome(Outcome),
}

fn meaning(m: &Message) -> Option<Meaning> {
    let event = m.event.as_deref()?;
    let properties = m.payload.get("properties").cloned().unwrap_or(Value::Null);
    let normalized = event.to_ascii_lowercase().replace('_', " ");
    let outcome = match normalized.as_str() {
        "experiment viewed" => {
            let experiment = properties.get("experiment_id")?.as_str()?.to_owned();
            let variant = properties.get("variation_id")?.as_str()?.to_owned();
            return Some(Meaning::Exposure { experiment, variant });
        }
        "product clicked" => Outcome { clicks: 1, ..Outcome::default() },
        "product added" => Outcome { add_to_carts: 1, ..Outcome::default() },
        "order completed" => {
            Outcome { conversions: 1, revenue: crate::model::revenue(&properties), ..Outcome::default() }
        }
        "order refunded" | "product returned" => Outcome { returns: 1, ..Outcome::default() },
        "reaction reported" => Outcome { reactions: 1, ..Outcome::default() },
        _ => return None,
    };
    Some(Meaning::Outcome(outcome))
}

struct Pending {
    experiments: Experiments,
    write_key_id: String,
    messages: Vec<(Message, Meaning)>,
}

#[async_trait]
impl IngestHook for FeedbackHook {
    async fn prepare(&self, write_key_id: &str, messages: &[&Message]) -> Box<dyn Prepared> {
        let messages = messages.iter().filter_map(|m| Some(((*m).clone(), meaning(m)?))).collect();
        Box::new(Pending { experiments: self.experiments.clone(), write_key_id: write_key_id.to_owned(), messages })
    }

    async fn erased(&self, pseudonyms: &[String], _erased_at: i64) {
        if let Err(e) = store::forget(self.experiments.db(), pseudonyms).await {
            tracing::error!(error = %e, "erased visitors not forgotten by experiments");
        }
    }
}

#[async_trait]
impl Prepared for Pending {
    async fn stored(self: Box<Self>) {
        if self.messages.is_empty() {
            return;
        }
        if let Err(e) = apply(&self.experiments, &self.write_key_id, self.messages).await {
            tracing::error!(error = %e, "experiment outcomes not counted");
        }
    }
}

async fn apply(experiments: &Experiments, write_key_id: &str, messages: Vec<(Message, Meaning)>) -> anyhow::Result<()> {
    let running = experiments.list().await?.into_iter().filter(|e| e.status == Status::Running).collect::<Vec<_>>();
    if running.is_empty() {
        return Ok(());
    }
    let db = experiments.db();
    let now = dermis_core::clock::now_ms();
    for (m, meaning) in messages {
        let message_key = format!("{write_key_id}:{}", m.message_id);
        if !store::first_sight(db, &message_key, now).await? {
            continue;
        }
        if let Err(e) = count(experiments, &running, &m, meaning, now).await {
            // Not counted: forget the sighting, so the client's retry counts it.
            let _ = store::unsee(db, &message_key).await;
            return Err(e);
        }
    }
    Ok(())
}

/// Counts one message not seen before.
async fn count(
    experiments: &Experiments,
    running: &[store::Stored],
    m: &Message,
    meaning: Meaning,
    now: i64,
) -> anyhow::Result<()> {
    let db = experiments.db();
    let id_keys = experiments.id_keys(m.user_id.as_deref(), m.anonymous_id.as_deref());
    if id_keys.is_empty() {
        return Ok(());
    }
    match meaning {
        Meaning::Exposure { experiment, variant } => {
            let Some(def) = running.iter().find(|e| e.definition.key == experiment) else { return Ok(()) };
            let Some(index) = def.definition.variants.iter().position(|v| v.key == variant) else { return Ok(()) };
            // The unit and variant are the visitor's stored assignment when there is one (what
            // they were shown); else (an exposure an SDK logged without asking Dermis) this
            // event's.
            let mut found = None;
            for key in &id_keys {
                if let Some(stored) = store::assignment(db, &experiment, key).await? {
                    found = Some(stored);
                    break;
                }
            }
            let (index, unit) = match found {
                Some(stored) => stored,
                None => {
                    let unit = id_keys.last().cloned().unwrap_or_default();
                    store::assign(db, &experiment, &id_keys, &unit, index, now).await?;
                    (index, unit)
                }
            };
            if store::expose(db, &experiment, &unit, index, m.timestamp_ms).await? {
                // A new unit: its propensity and pre-period (CUPED).
                experiments.describe_unit(&def.definition, &id_keys, &unit, index, m).await;
            }
        }
        Meaning::Outcome(outcome) => {
            for (experiment, unit) in store::units_of(db, &id_keys).await? {
                store::add_outcome(db, &experiment, &unit, m.timestamp_ms, outcome).await?;
            }
        }
    }
    Ok(())
}

/// The hook as the ingestor takes it.
pub fn hook(experiments: Experiments) -> Arc<dyn IngestHook> {
    Arc::new(FeedbackHook::new(experiments))
}
