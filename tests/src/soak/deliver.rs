//! Delivery: the webinar log through the real `Ingest::handle`, from several tasks at once, the
//! way platforms hit the ingest Lambda; and a record of exactly which event documents the queue
//! took, which is what the oracle must judge.

use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use webinar_bridge::domain::WebinarEvent;
use webinar_bridge::ingest::Ingest;
use webinar_bridge::ports::{EventQueue, OutgoingMessage, PortResult, QueuedMessage};
use webinar_bridge::sources::RawRequest;

/// A platform retries a 5xx; this many times here.
const SENDER_ATTEMPTS: u32 = 5;
const SENDER_BACKOFF: Duration = Duration::from_millis(50);

/// The queue as ingest sees it, remembering the first document enqueued under each event id.
///
/// Sends are serialized so "first recorded" is "first the queue kept": a duplicate delivery of a
/// WebinarJam event carries a different time (those events are stamped on receipt), and the
/// queue's deduplication keeps whichever came first.
#[derive(Clone)]
pub struct RecordingQueue {
    inner: Arc<dyn EventQueue>,
    sending: Arc<tokio::sync::Mutex<()>>,
    first_documents: Arc<Mutex<HashMap<String, String>>>,
}

impl RecordingQueue {
    pub fn new(inner: Arc<dyn EventQueue>) -> Self {
        Self { inner, sending: Arc::default(), first_documents: Arc::default() }
    }

    /// Event id -> the event document the queue kept, parsed.
    pub fn documents(&self) -> anyhow::Result<BTreeMap<String, WebinarEvent>> {
        let documents = self.first_documents.lock().unwrap_or_else(PoisonError::into_inner);
        documents.iter().map(|(id, body)| Ok((id.clone(), serde_json::from_str(body)?))).collect()
    }
}

#[async_trait]
impl EventQueue for RecordingQueue {
    async fn send(&self, messages: &[OutgoingMessage]) -> PortResult<()> {
        let _one_at_a_time = self.sending.lock().await;
        self.inner.send(messages).await?;
        let mut documents = self.first_documents.lock().unwrap_or_else(PoisonError::into_inner);
        for message in messages {
            documents.entry(message.dedup_id.clone()).or_insert_with(|| message.body.clone());
        }
        Ok(())
    }

    async fn receive(&self, max: usize) -> PortResult<Vec<QueuedMessage>> {
        self.inner.receive(max).await
    }

    async fn ack(&self, message: &QueuedMessage) -> PortResult<()> {
        self.inner.ack(message).await
    }

    async fn retry_later(&self, message: &QueuedMessage, delay: Duration) -> PortResult<()> {
        self.inner.retry_later(message, delay).await
    }

    async fn dead_letter(&self, message: &QueuedMessage, reason: &str) -> PortResult<()> {
        self.inner.dead_letter(message, reason).await
    }
}

/// What the senders saw.
#[derive(Debug, Clone, Default)]
pub struct DeliveryReport {
    pub requests: usize,
    /// Event ids ingest answered 200 "accepted" for (each once).
    pub accepted_ids: BTreeSet<String>,
    /// Accepted event ids counted per delivery (duplicates included).
    pub accepted_deliveries: usize,
    /// 200 "ignored" (Zoom events the bridge does not use).
    pub ignored: usize,
    /// Final non-200 answers by status.
    pub refused: BTreeMap<u16, usize>,
    /// 503s that a sender retry got through.
    pub sender_retries: usize,
}

impl DeliveryReport {
    fn merge(&mut self, other: DeliveryReport) {
        self.requests += other.requests;
        self.accepted_ids.extend(other.accepted_ids);
        self.accepted_deliveries += other.accepted_deliveries;
        self.ignored += other.ignored;
        for (status, count) in other.refused {
            *self.refused.entry(status).or_default() += count;
        }
        self.sender_retries += other.sender_retries;
    }
}

/// Delivers `requests` from `tasks` concurrent senders. Requests are dealt round-robin, so each
/// sender keeps the log's order for its share while the shares interleave freely. With a `rate`,
/// request `i` is sent no earlier than `i / rate` seconds after the start.
pub async fn deliver(ingest: Ingest, requests: Vec<RawRequest>, tasks: usize, rate: Option<f64>) -> DeliveryReport {
    let tasks = tasks.max(1);
    let start = tokio::time::Instant::now();
    let spacing = rate.filter(|rate| *rate > 0.0).map(|rate| Duration::from_secs_f64(1.0 / rate)).unwrap_or_default();
    let mut shares: Vec<Vec<Scheduled>> = vec![Vec::new(); tasks];
    for (index, request) in requests.into_iter().enumerate() {
        let not_before = start + spacing.saturating_mul(u32::try_from(index).unwrap_or(u32::MAX));
        shares[index % tasks].push(Scheduled { not_before, request });
    }
    let mut senders = tokio::task::JoinSet::new();
    for share in shares {
        let ingest = ingest.clone();
        senders.spawn(async move { send_all(&ingest, share).await });
    }
    let mut report = DeliveryReport::default();
    while let Some(share) = senders.join_next().await {
        report.merge(share.expect("a sender task never panics"));
    }
    report
}

#[derive(Clone)]
struct Scheduled {
    not_before: tokio::time::Instant,
    request: RawRequest,
}

async fn send_all(ingest: &Ingest, requests: Vec<Scheduled>) -> DeliveryReport {
    let mut report = DeliveryReport::default();
    for Scheduled { not_before, request } in requests {
        tokio::time::sleep_until(not_before).await;
        report.requests += 1;
        let mut attempt = 1;
        let response = loop {
            let response = ingest.handle(&request).await;
            if response.status < 500 || attempt == SENDER_ATTEMPTS {
                break response;
            }
            report.sender_retries += 1;
            tokio::time::sleep(SENDER_BACKOFF * attempt).await;
            attempt += 1;
        };
        if response.status != 200 {
            *report.refused.entry(response.status).or_default() += 1;
            continue;
        }
        let ids = accepted_ids(&response.body);
        if ids.is_empty() {
            report.ignored += 1;
        }
        report.accepted_deliveries += ids.len();
        report.accepted_ids.extend(ids);
    }
    report
}

/// `{"status":"accepted","event_id":..}` or `{.., "event_ids":[..]}`; nothing otherwise.
fn accepted_ids(body: &serde_json::Value) -> Vec<String> {
    if body.get("status").and_then(|status| status.as_str()) != Some("accepted") {
        return Vec::new();
    }
    let text = |value: &serde_json::Value| value.as_str().map(str::to_owned);
    match body.get("event_ids").and_then(|ids| ids.as_array()) {
        Some(ids) => ids.iter().filter_map(text).collect(),
        None => body.get("event_id").and_then(text).into_iter().collect(),
    }
}
