//! What one request hands the log's writer to append, on either backend.

use serde_json::Value;

use crate::message::Message;
use crate::outbox::Ingested;

/// A message to append, with the schema it was validated against.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The message.
    pub message: Message,
    /// `product_viewed@1`, when a schema applied.
    pub schema: Option<String>,
}

/// A message to keep as a dead letter.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Its `messageId`, if it had a usable one.
    pub message_id: Option<String>,
    /// One line.
    pub reason: String,
    /// Details.
    pub errors: Vec<String>,
    /// The message as received (without the write key).
    pub payload: Value,
}

/// What one ingestion request appends: its messages, its dead letters and what goes to the bus.
#[derive(Debug, Clone)]
pub struct Append {
    /// The source.
    pub write_key_id: String,
    /// Messages to store (duplicates of stored `messageId`s are skipped).
    pub accepted: Vec<Accepted>,
    /// Messages kept as dead letters.
    pub dead: Vec<DeadLetter>,
    /// Handed to the bus through the outbox when any message was new.
    pub to_bus: Option<Ingested>,
    /// When the request arrived, ms since the epoch.
    pub received_at: i64,
}
