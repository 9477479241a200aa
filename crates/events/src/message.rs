//! One Segment message made canonical.
//!
//! - `type` comes from the path (`/v1/track`) or, in a batch, from the message.
//! - `userId` / `anonymousId`: strings (numbers are turned into strings, as Segment does); at least
//!   one is required; `alias` needs `userId` and `previousId`, `group` needs `groupId`, `track` needs
//!   `event`.
//! - `messageId` is kept, or made (`dmx-<ulid>`) when absent; it is the deduplication key.
//! - Batch-level `context` and `integrations` are merged into each message (the message wins).
//!   They are copied, not stored once per batch: every stored event stays whole on its own (an
//!   export, a replay or an erasure reads one row). The copy is what the limits bound: a message
//!   is limited to [`MAX_MESSAGE_BYTES`] *as stored*, context included, and the ingestion of a
//!   batch refuses a context whose copies would outgrow the request ([`BatchDefaults::copies_fit`]).
//! - Time: `originalTimestamp` is the client's `timestamp` (or `originalTimestamp`);
//!   `timestamp = receivedAt − (sentAt − originalTimestamp)` corrects the client's clock skew; with
//!   no `sentAt`, the client's timestamp is used as it is (server libraries, imports); with no client
//!   time at all, `receivedAt`.
//! - `writeKey` never stays in a stored message.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Largest message, serialized as stored (the batch's context and integrations merged in).
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;

/// What the copies of a batch's context may add in all, beyond [`COPY_FACTOR`] times the
/// request's own size: small batches are never refused for their context.
pub const COPY_ALLOWANCE_BYTES: usize = 256 * 1024;

/// The copies of a batch's context may add at most this many times the request's own size.
pub const COPY_FACTOR: usize = 4;

/// Room for the fields [`normalize`] adds (type, messageId, four timestamps, ids): a message
/// within [`MAX_MESSAGE_BYTES`] by this much is measured again only when the merge could cross it.
const ADDED_FIELDS_BYTES: usize = 512;

/// The six Segment call types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An action.
    Track,
    /// Who the user is.
    Identify,
    /// A web page view.
    Page,
    /// A mobile screen view.
    Screen,
    /// A user joins a group (account, household).
    Group,
    /// Two identities are the same person.
    Alias,
}

impl Kind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Track => "track",
            Self::Identify => "identify",
            Self::Page => "page",
            Self::Screen => "screen",
            Self::Group => "group",
            Self::Alias => "alias",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Track, Self::Identify, Self::Page, Self::Screen, Self::Group, Self::Alias]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A canonical message, ready for the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Deduplication key within its write key.
    pub message_id: String,
    /// Call type.
    pub kind: Kind,
    /// The `track` event name.
    pub event: Option<String>,
    /// Known user.
    pub user_id: Option<String>,
    /// Device / browser identity.
    pub anonymous_id: Option<String>,
    /// Corrected event time, ms since the epoch.
    pub timestamp_ms: i64,
    /// When Dermis received it, ms since the epoch.
    pub received_at_ms: i64,
    /// The whole message as stored (canonical fields set).
    pub payload: Value,
}

impl Message {
    /// The user id, else the anonymous id: one customer's events share it.
    pub fn partition_key(&self) -> &str {
        self.user_id.as_deref().or(self.anonymous_id.as_deref()).unwrap_or("")
    }
}

/// Why a message could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// One line.
    pub reason: String,
    /// Details (field paths and what is wrong).
    pub errors: Vec<String>,
}

impl Rejection {
    fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into(), errors: Vec::new() }
    }
}

/// Parses an RFC 3339 timestamp to ms since the epoch.
pub fn parse_time(s: &str) -> Option<i64> {
    OffsetDateTime::parse(s, &Rfc3339).ok().map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn id_field(obj: &Map<String, Value>, name: &str) -> Result<Option<String>, Rejection> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.len() <= 256 => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(Rejection::new(format!("{name} must be a string of at most 256 characters"))),
    }
}

fn time_field(obj: &Map<String, Value>, name: &str) -> Result<Option<i64>, Rejection> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            parse_time(s).map(Some).ok_or_else(|| Rejection::new(format!("{name} is not an ISO 8601 date-time: {s:?}")))
        }
        Some(_) => Err(Rejection::new(format!("{name} must be an ISO 8601 date-time string"))),
    }
}

/// Merges `base` under `over` (objects recursively; `over` wins).
pub fn merge(base: &Value, over: &Value) -> Value {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                let merged = match out.get(k) {
                    Some(existing) => merge(existing, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (_, Value::Null) => base.clone(),
        _ => over.clone(),
    }
}

/// What a batch contributes to each of its messages.
#[derive(Debug, Clone, Default)]
pub struct BatchDefaults {
    /// Batch-level `context`.
    pub context: Option<Value>,
    /// Batch-level `integrations`.
    pub integrations: Option<Value>,
    /// Batch-level `sentAt`, ms.
    pub sent_at_ms: Option<i64>,
}

impl BatchDefaults {
    /// The serialized size of what is merged into every message (context and integrations).
    pub fn shared_len(&self) -> usize {
        [&self.context, &self.integrations].into_iter().flatten().map(serialized_len).sum()
    }

    /// Whether copying the shared context into `messages` messages stays within bounds for a
    /// request of `request_len` bytes: at most [`COPY_FACTOR`] times the request plus
    /// [`COPY_ALLOWANCE_BYTES`]. The answer says how much it would have been.
    pub fn copies_fit(&self, messages: usize, request_len: usize) -> Result<(), String> {
        let shared = self.shared_len();
        if shared > MAX_MESSAGE_BYTES {
            return Err(format!(
                "the batch's context and integrations are {shared} bytes; they are merged into every message, which may be at most {MAX_MESSAGE_BYTES} bytes"
            ));
        }
        let copies = shared.saturating_mul(messages);
        let allowed = request_len.saturating_mul(COPY_FACTOR).saturating_add(COPY_ALLOWANCE_BYTES);
        if copies > allowed {
            return Err(format!(
                "the batch's context ({shared} bytes) copied into its {messages} messages would store {copies} bytes; at most {allowed} for this request: send a smaller context, or put it on the messages that need it"
            ));
        }
        Ok(())
    }
}

/// The length of `v` serialized, without building the text.
pub fn serialized_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, v) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

/// What checking a message found: everything [`finish`] needs besides the message itself.
struct Checked {
    /// The message's serialized size as sent.
    size: usize,
    kind: Kind,
    user_id: Option<String>,
    anonymous_id: Option<String>,
    event: Option<String>,
    message_id: String,
    original: Option<i64>,
    sent_at: Option<i64>,
    timestamp_ms: i64,
}

/// Makes a message canonical. `kind` is the path's type for single calls, `None` in a batch.
pub fn normalize(
    raw: &Value,
    kind: Option<Kind>,
    batch: &BatchDefaults,
    received_at_ms: i64,
) -> Result<Message, Rejection> {
    normalize_owned(raw.clone(), kind, batch, received_at_ms).map_err(|(r, _)| r)
}

/// [`normalize`] of a message the caller owns, without copying it; a rejected message comes
/// back with its reason (for the dead letters).
pub fn normalize_owned(
    raw: Value,
    kind: Option<Kind>,
    batch: &BatchDefaults,
    received_at_ms: i64,
) -> Result<Message, (Rejection, Value)> {
    match check(&raw, kind, batch, received_at_ms) {
        Ok(checked) => match raw {
            Value::Object(obj) => {
                let shared = batch.shared_len();
                if shared == 0 || checked.size + shared + ADDED_FIELDS_BYTES <= MAX_MESSAGE_BYTES {
                    return Ok(finish(checked, obj, batch, received_at_ms));
                }
                // The merge could cross the limit: measure the message as it would be stored.
                // Rare (a message near the limit with a batch context), so a copy is fine.
                let m = finish(checked, obj.clone(), batch, received_at_ms);
                let stored = serialized_len(&m.payload);
                if stored > MAX_MESSAGE_BYTES {
                    let r = Rejection::new(format!(
                        "message is {stored} bytes once the batch's context is merged; at most {MAX_MESSAGE_BYTES}"
                    ));
                    return Err((r, Value::Object(obj)));
                }
                Ok(m)
            }
            other => Err((Rejection::new("a message must be a JSON object"), other)),
        },
        Err(r) => Err((r, raw)),
    }
}

fn check(raw: &Value, kind: Option<Kind>, batch: &BatchDefaults, received_at_ms: i64) -> Result<Checked, Rejection> {
    let size = serialized_len(raw);
    if size > MAX_MESSAGE_BYTES {
        return Err(Rejection::new(format!("message is {size} bytes; at most {MAX_MESSAGE_BYTES}")));
    }
    let Value::Object(obj) = raw else { return Err(Rejection::new("a message must be a JSON object")) };
    let kind = match kind {
        Some(k) => k,
        None => match obj.get("type").and_then(Value::as_str) {
            Some(t) => Kind::parse(t).ok_or_else(|| Rejection::new(format!("unknown type {t:?}")))?,
            None => return Err(Rejection::new("type is required in a batch")),
        },
    };
    let user_id = id_field(obj, "userId")?;
    let anonymous_id = id_field(obj, "anonymousId")?;
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(Rejection::new("userId or anonymousId is required"));
    }
    let event = match obj.get("event") {
        Some(Value::String(e)) if !e.is_empty() && e.len() <= 200 => Some(e.clone()),
        None | Some(Value::Null) => None,
        Some(_) => return Err(Rejection::new("event must be a string of 1 to 200 characters")),
    };
    match kind {
        Kind::Track if event.is_none() => return Err(Rejection::new("track needs an event name")),
        Kind::Alias if user_id.is_none() || id_field(obj, "previousId")?.is_none() => {
            return Err(Rejection::new("alias needs userId and previousId"));
        }
        Kind::Group if id_field(obj, "groupId")?.is_none() => return Err(Rejection::new("group needs groupId")),
        _ => {}
    }
    for (name, want_object) in [("properties", true), ("traits", true), ("context", true), ("integrations", true)] {
        if let Some(v) = obj.get(name)
            && want_object
            && !(v.is_object() || v.is_null())
        {
            return Err(Rejection::new(format!("{name} must be an object")));
        }
    }
    let message_id = match obj.get("messageId") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => s.clone(),
        None | Some(Value::Null) => format!("dmx-{}", dermis_core::ids::new_id("msg")),
        Some(_) => return Err(Rejection::new("messageId must be a string of 1 to 256 characters")),
    };
    let original = match time_field(obj, "originalTimestamp")? {
        Some(t) => Some(t),
        None => time_field(obj, "timestamp")?,
    };
    let sent_at = match time_field(obj, "sentAt")? {
        Some(t) => Some(t),
        None => batch.sent_at_ms,
    };
    let timestamp_ms = match (original, sent_at) {
        (Some(o), Some(s)) => received_at_ms - (s - o),
        (Some(o), None) => o,
        (None, _) => received_at_ms,
    };
    Ok(Checked { size, kind, user_id, anonymous_id, event, message_id, original, sent_at, timestamp_ms })
}

/// The canonical message: `out` is the checked message's object, completed in place.
fn finish(c: Checked, mut out: Map<String, Value>, batch: &BatchDefaults, received_at_ms: i64) -> Message {
    out.remove("writeKey");
    out.insert("type".into(), c.kind.as_str().into());
    out.insert("messageId".into(), c.message_id.clone().into());
    for (name, default) in [("context", &batch.context), ("integrations", &batch.integrations)] {
        if let Some(d) = default {
            let own = out.remove(name).unwrap_or(Value::Null);
            out.insert(name.into(), merge(d, &own));
        }
    }
    let fmt = |ms: i64| dermis_core::clock::rfc3339(ms);
    if let Some(o) = c.original {
        out.insert("originalTimestamp".into(), fmt(o).into());
    }
    out.insert("timestamp".into(), fmt(c.timestamp_ms).into());
    out.insert("receivedAt".into(), fmt(received_at_ms).into());
    if let Some(s) = c.sent_at {
        out.insert("sentAt".into(), fmt(s).into());
    }
    if let Some(u) = &c.user_id {
        out.insert("userId".into(), u.clone().into());
    }
    if let Some(a) = &c.anonymous_id {
        out.insert("anonymousId".into(), a.clone().into());
    }
    Message {
        message_id: c.message_id,
        kind: c.kind,
        event: c.event,
        user_id: c.user_id,
        anonymous_id: c.anonymous_id,
        timestamp_ms: c.timestamp_ms,
        received_at_ms,
        payload: Value::Object(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RECEIVED: &str = "2026-11-23T10:00:10Z";

    fn received() -> i64 {
        parse_time(RECEIVED).unwrap()
    }

    #[test]
    fn clock_skew_is_corrected_like_segment() {
        // The device clock is 1 hour behind: it says the event happened at 09:00:00 and was sent
        // at 09:00:05; we received it at 10:00:10, so it happened at 10:00:05.
        let m = normalize(
            &json!({"userId": "u1", "event": "Product Viewed", "timestamp": "2026-11-23T09:00:00Z", "sentAt": "2026-11-23T09:00:05Z"}),
            Some(Kind::Track),
            &BatchDefaults::default(),
            received(),
        )
        .unwrap();
        assert_eq!(dermis_core::clock::rfc3339(m.timestamp_ms), "2026-11-23T10:00:05Z");
        assert_eq!(m.payload["originalTimestamp"], "2026-11-23T09:00:00Z");
        // Server libraries send no sentAt: the timestamp is taken as it is.
        let m = normalize(
            &json!({"userId": "u1", "event": "X", "timestamp": "2020-01-01T00:00:00Z"}),
            Some(Kind::Track),
            &BatchDefaults::default(),
            received(),
        )
        .unwrap();
        assert_eq!(dermis_core::clock::rfc3339(m.timestamp_ms), "2020-01-01T00:00:00Z");
    }

    #[test]
    fn batch_context_is_merged_and_the_message_wins() {
        let batch = BatchDefaults {
            context: Some(json!({"library": {"name": "analytics-node"}, "locale": "fr-FR"})),
            integrations: Some(json!({"All": true})),
            sent_at_ms: None,
        };
        let m = normalize(
            &json!({"type": "identify", "userId": 42, "context": {"locale": "en-GB"}, "writeKey": "secret"}),
            None,
            &batch,
            received(),
        )
        .unwrap();
        assert_eq!(m.payload["context"], json!({"library": {"name": "analytics-node"}, "locale": "en-GB"}));
        assert_eq!(m.payload["integrations"], json!({"All": true}));
        assert_eq!(m.user_id.as_deref(), Some("42"), "numeric ids become strings");
        assert!(m.payload.get("writeKey").is_none(), "write keys are never stored");
        assert!(m.message_id.starts_with("dmx-"));
    }

    #[test]
    fn invalid_messages_say_why() {
        let r = |v: Value, k: Option<Kind>| normalize(&v, k, &BatchDefaults::default(), received()).unwrap_err().reason;
        assert!(r(json!({"event": "X"}), Some(Kind::Track)).contains("userId or anonymousId"));
        assert!(r(json!({"userId": "u"}), Some(Kind::Track)).contains("event name"));
        assert!(r(json!({"userId": "u"}), Some(Kind::Alias)).contains("previousId"));
        assert!(r(json!({"userId": "u", "type": "nope"}), None).contains("unknown type"));
        assert!(
            r(json!({"userId": "u", "event": "X", "timestamp": "yesterday"}), Some(Kind::Track)).contains("ISO 8601")
        );
        assert!(r(json!({"userId": "u", "event": "X", "properties": [1]}), Some(Kind::Track)).contains("object"));
        let big = json!({"userId": "u", "event": "X", "properties": {"blob": "x".repeat(40_000)}});
        assert!(r(big, Some(Kind::Track)).contains("bytes"));
    }

    #[test]
    fn the_limit_holds_on_the_message_as_stored() {
        // 20 KB of batch context and a 20 KB message: each is under the limit, the stored message
        // is not.
        let batch = BatchDefaults { context: Some(json!({"blob": "c".repeat(20_000)})), ..Default::default() };
        let raw = json!({"type": "track", "userId": "u", "event": "X", "properties": {"blob": "p".repeat(20_000)}});
        let (rejection, kept) = normalize_owned(raw.clone(), None, &batch, received()).unwrap_err();
        assert!(rejection.reason.contains("once the batch's context is merged"), "{}", rejection.reason);
        assert_eq!(kept, raw, "the dead letter keeps the message as sent, not the merged copy");
        // Just under: stored, and really within the limit.
        let small = json!({"type": "track", "userId": "u", "event": "X", "properties": {"blob": "p".repeat(11_000)}});
        let m = normalize_owned(small, None, &batch, received()).unwrap();
        assert!(serialized_len(&m.payload) <= MAX_MESSAGE_BYTES);
        assert_eq!(m.payload["context"]["blob"].as_str().map(str::len), Some(20_000));
    }

    #[test]
    fn a_context_copied_beyond_the_request_is_refused() {
        let ctx = |n: usize| BatchDefaults { context: Some(json!({"blob": "c".repeat(n)})), ..Default::default() };
        // The shape that once wrote 2.2 GB: 2,500 tiny messages and a 380 KB context.
        let err = ctx(380_000).copies_fit(2500, 499_000).unwrap_err();
        assert!(err.contains("merged into every message"), "{err}");
        // A 30 KB context in 2,500 tiny messages (~120 KB): 75 MB of copies, refused.
        let err = ctx(30_000).copies_fit(2500, 150_000).unwrap_err();
        assert!(err.contains("would store"), "{err}");
        // What SDKs send: a library/device context of a few hundred bytes.
        assert!(ctx(300).copies_fit(2500, 150_000).is_ok());
        assert!(ctx(30_000).copies_fit(5, 31_000).is_ok(), "a small batch is never refused for its context");
        assert!(BatchDefaults::default().copies_fit(2500, 10).is_ok());
    }
}
