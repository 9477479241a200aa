//! The bus on NATS JetStream: one stream (subjects `<root>.>`), topics as subjects under the
//! root, durable pull consumers with cumulative acknowledgement, and JetStream's duplicate
//! window (`Nats-Msg-Id`) for idempotent publishing. A message fetched by a consumer that then
//! goes away is delivered again after `ack_wait`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer::AckPolicy, consumer::pull, stream};
use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::sync::Mutex;

use crate::{BusError, Envelope, EventBus, check_name};

fn nats<E: std::fmt::Display>(e: E) -> BusError {
    BusError::Nats(e.to_string())
}

/// The JetStream bus.
pub struct NatsBus {
    js: jetstream::Context,
    stream: String,
    root: String,
    ack_wait: Duration,
    inflight: Mutex<HashMap<String, BTreeMap<u64, jetstream::Message>>>,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBus").field("stream", &self.stream).field("root", &self.root).finish()
    }
}

impl NatsBus {
    /// Connects and makes sure the stream exists. `stream` names it (`DERMIS`); its subjects
    /// are `<stream in lower case>.>`.
    pub async fn connect(url: &str, stream: &str, ack_wait: Duration) -> Result<Self, BusError> {
        check_name(stream)?;
        let client = async_nats::connect(url).await.map_err(nats)?;
        let js = jetstream::new(client);
        let root = stream.to_lowercase();
        js.get_or_create_stream(stream::Config {
            name: stream.to_owned(),
            subjects: vec![format!("{root}.>")],
            duplicate_window: Duration::from_secs(120),
            // Consumers are minutes behind at worst; a week bounds the disk a stream takes.
            max_age: crate::RETENTION,
            ..Default::default()
        })
        .await
        .map_err(nats)?;
        Ok(Self { js, stream: stream.to_owned(), root, ack_wait, inflight: Mutex::new(HashMap::new()) })
    }

    /// Deletes the stream (tests).
    pub async fn delete_stream(&self) -> Result<(), BusError> {
        self.js.delete_stream(&self.stream).await.map_err(nats)?;
        Ok(())
    }

    fn filter(&self, prefix: &str) -> String {
        if prefix.is_empty() {
            format!("{}.>", self.root)
        } else if let Some(p) = prefix.strip_suffix('.') {
            format!("{}.{p}.>", self.root)
        } else {
            format!("{}.{prefix}", self.root)
        }
    }

    fn durable(consumer: &str, prefix: &str) -> String {
        format!("{}__{}", consumer, if prefix.is_empty() { "all" } else { prefix }).replace('.', "_")
    }

    async fn consumer(&self, consumer: &str, prefix: &str) -> Result<jetstream::consumer::PullConsumer, BusError> {
        let name = Self::durable(consumer, prefix);
        let stream = self.js.get_stream(&self.stream).await.map_err(nats)?;
        stream
            .get_or_create_consumer(
                &name,
                pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: self.filter(prefix),
                    ack_policy: AckPolicy::All,
                    ack_wait: self.ack_wait,
                    ..Default::default()
                },
            )
            .await
            .map_err(nats)
    }
}

#[async_trait]
impl EventBus for NatsBus {
    fn name(&self) -> &'static str {
        "nats"
    }

    async fn publish(&self, topic: &str, key: &str, id: &str, payload: &str) -> Result<(), BusError> {
        check_name(topic)?;
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
        headers.insert("Dermis-Key", key);
        self.js
            .publish_with_headers(format!("{}.{topic}", self.root), headers, payload.to_owned().into())
            .await
            .map_err(nats)?
            .await
            .map_err(nats)?;
        Ok(())
    }

    async fn fetch(&self, consumer: &str, prefix: &str, max: usize, wait: Duration) -> Result<Vec<Envelope>, BusError> {
        check_name(consumer)?;
        let c = self.consumer(consumer, prefix).await?;
        let max = max.clamp(1, 10_000);
        // Take what is there without waiting; only when nothing is, wait for one message and
        // then take what else arrived. (Waiting for `max` could outlast the ack wait and collect
        // redeliveries of the same messages.)
        let mut msgs = Vec::new();
        let mut now = c.fetch().max_messages(max).messages().await.map_err(nats)?;
        while let Some(m) = now.next().await {
            msgs.push(m.map_err(nats)?);
        }
        if msgs.is_empty() && !wait.is_zero() {
            let mut one = c
                .batch()
                .max_messages(1)
                .expires(wait.max(Duration::from_millis(10)))
                .messages()
                .await
                .map_err(nats)?;
            while let Some(m) = one.next().await {
                msgs.push(m.map_err(nats)?);
            }
            if !msgs.is_empty() && max > 1 {
                let mut rest = c.fetch().max_messages(max - 1).messages().await.map_err(nats)?;
                while let Some(m) = rest.next().await {
                    msgs.push(m.map_err(nats)?);
                }
            }
        }
        let mut out: Vec<Envelope> = Vec::new();
        let mut held = Vec::new();
        for m in msgs {
            let seq = m.info().map_err(nats)?.stream_sequence;
            if out.iter().any(|e| e.seq == seq) {
                continue;
            }
            let topic =
                m.subject.as_str().strip_prefix(&format!("{}.", self.root)).unwrap_or(m.subject.as_str()).to_owned();
            let headers = m.headers.as_ref();
            // The message id must be read with the standard header name: a string key is a
            // custom header to async-nats and does not match.
            let id = headers.and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID)).map(|v| v.as_str().to_owned());
            let key = headers.and_then(|h| h.get("Dermis-Key")).map(|v| v.as_str().to_owned());
            out.push(Envelope {
                seq,
                topic,
                key: key.unwrap_or_default(),
                id: id.unwrap_or_default(),
                payload: String::from_utf8_lossy(&m.payload).into_owned(),
            });
            held.push((seq, m));
        }
        let mut inflight = self.inflight.lock().await;
        let mine = inflight.entry(Self::durable(consumer, prefix)).or_default();
        mine.extend(held);
        Ok(out)
    }

    async fn ack(&self, consumer: &str, prefix: &str, last: &Envelope) -> Result<(), BusError> {
        let mut inflight = self.inflight.lock().await;
        let Some(mine) = inflight.get_mut(&Self::durable(consumer, prefix)) else { return Ok(()) };
        if let Some(m) = mine.get(&last.seq) {
            m.double_ack().await.map_err(nats)?;
        }
        mine.retain(|seq, _| *seq > last.seq);
        Ok(())
    }

    async fn lag(&self, consumer: &str, prefix: &str) -> Result<u64, BusError> {
        let mut c = self.consumer(consumer, prefix).await?;
        let info = c.info().await.map_err(nats)?;
        Ok(info.num_pending + info.num_ack_pending as u64)
    }

    async fn head(&self) -> Result<u64, BusError> {
        let mut stream = self.js.get_stream(&self.stream).await.map_err(nats)?;
        Ok(stream.info().await.map_err(nats)?.state.last_sequence)
    }

    async fn retain(&self, _max_age: Duration) -> Result<u64, BusError> {
        Ok(0)
    }
}
