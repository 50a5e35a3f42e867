//! The port conformance suite: one set of behaviour checks run against every backend (memory,
//! SQLite, later SQS + DynamoDB), so the adapters cannot drift apart (DESIGN 1, "both run by the
//! same integration suite").
//!
//! A backend implements [`Backend`]: it hands out fresh, empty adapters. Time is a [`ManualClock`]
//! so leases, visibility timeouts and TTLs are tested without sleeping. Queue checks that need
//! time to pass are kept apart ([`queue_visibility_suite`], [`queue_dedup_expiry_suite`]) because
//! SQS keeps visibility on the server's clock; such a backend overrides
//! [`Backend::let_time_pass`] to sleep as well.
//!
//! Every case is a public function, so a backend can also run a selection.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use webinar_bridge::adapters::memory::{
    DeadLetter, MemoryContactStore, MemoryEventLog, MemoryHistoryLog, MemoryQueue, MemoryReceiptLog,
    MemoryTagDirectory, MemoryWebinarSettings, QueueSettings,
};
use webinar_bridge::adapters::sqlite::{
    SqliteContactStore, SqliteDb, SqliteEventLog, SqliteHistoryLog, SqliteQueue, SqliteReceiptLog, SqliteTagDirectory,
    SqliteWebinarSettings,
};
use webinar_bridge::domain::{
    Cents, ContactInfo, ContactRecord, Email, EventId, EventKind, Facts, FieldValue, Interval, Source, WebinarEvent,
    WebinarInfo,
};
use webinar_bridge::domain::{MappedTag, StateLabel, WebinarSetting};
use webinar_bridge::ports::{
    Claim, ClaimToken, Clock, ContactStore, EventLog, EventQueue, EventStatus, FinalOutcome, OutgoingMessage,
    PortError, PortResult, QueuedMessage, Receipt, ReceiptLog, RejectionReason, TagClaim, TagDirectory,
};
use webinar_bridge::ports::{DeadLetters, RedriveMethod, RedriveSelection};
use webinar_bridge::ports::{HistoryEntry, HistoryLog, HistoryOutcome, HistoryStep, WebinarSettings};
use webinar_bridge::ports::{ParkCap, ParkOutcome, ParkedWebhook, ParkedWebhooks};

// ---------------------------------------------------------------------------------------------
// Time

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// Where a default clock starts: a fixed, whole-second instant.
    pub fn start() -> DateTime<Utc> {
        DateTime::from_timestamp(1_768_478_400, 0).unwrap_or_default() // 2026-01-15T12:00:00Z
    }

    pub fn new(now: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self { now: Mutex::new(now) })
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.lock();
        *now += chrono::Duration::from_std(by).expect("a test duration fits chrono");
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self.lock() = to;
    }

    /// The same clock as the port's `Arc<dyn Clock>`.
    pub fn shared(self: &Arc<Self>) -> Arc<dyn Clock> {
        Arc::clone(self) as Arc<dyn Clock>
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}

// ---------------------------------------------------------------------------------------------
// Backends

/// What the suite needs from a queue beyond the port: a look at the dead-letter store.
#[async_trait]
pub trait InspectableQueue: EventQueue {
    /// Messages that used up their receives.
    async fn dead_letters(&self) -> PortResult<Vec<DeadLetter>>;
    /// Messages neither acknowledged nor dead-lettered.
    async fn pending(&self) -> PortResult<usize>;
}

/// A storage backend under test: every call returns fresh, empty adapters.
#[async_trait]
pub trait Backend: Send + Sync {
    async fn queue(&self, settings: QueueSettings, clock: Arc<dyn Clock>) -> Arc<dyn InspectableQueue>;
    async fn event_log(&self, clock: Arc<dyn Clock>) -> Arc<dyn EventLog>;
    async fn contact_store(&self) -> Arc<dyn ContactStore>;
    async fn tag_directory(&self) -> Arc<dyn TagDirectory>;
    async fn receipt_log(&self) -> Arc<dyn ReceiptLog>;
    /// A fresh queue and the dead-letter port beside it; `None` for a backend without one.
    async fn queue_with_dead_letters(
        &self,
        _settings: QueueSettings,
        _clock: Arc<dyn Clock>,
    ) -> Option<(Arc<dyn InspectableQueue>, Arc<dyn DeadLetters>)> {
        None
    }

    /// A fresh history log; `None` for a backend without one (its cases are skipped).
    async fn history_log(&self) -> Option<Arc<dyn HistoryLog>> {
        None
    }
    /// A fresh per-webinar settings store; `None` for a backend without one (its cases are skipped).
    async fn webinar_settings(&self) -> Option<Arc<dyn WebinarSettings>> {
        None
    }

    /// A fresh parked webhook store; `None` for a backend without one (its cases are skipped).
    async fn parked_webhooks(&self) -> Option<Arc<dyn ParkedWebhooks>> {
        None
    }

    /// Lets `duration` pass for adapters built with `clock`. A backend whose queue keeps time on
    /// a server (SQS) also sleeps here.
    async fn let_time_pass(&self, clock: &ManualClock, duration: Duration) {
        clock.advance(duration);
    }
}

/// The in-memory adapters: the reference behaviour.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryBackend;

#[async_trait]
impl InspectableQueue for MemoryQueue {
    async fn dead_letters(&self) -> PortResult<Vec<DeadLetter>> {
        Ok(MemoryQueue::dead_letters(self))
    }

    async fn pending(&self) -> PortResult<usize> {
        Ok(MemoryQueue::pending(self))
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    async fn queue(&self, settings: QueueSettings, clock: Arc<dyn Clock>) -> Arc<dyn InspectableQueue> {
        Arc::new(MemoryQueue::with_clock(settings, clock))
    }

    async fn event_log(&self, _clock: Arc<dyn Clock>) -> Arc<dyn EventLog> {
        Arc::new(MemoryEventLog::default())
    }

    async fn contact_store(&self) -> Arc<dyn ContactStore> {
        Arc::new(MemoryContactStore::default())
    }

    async fn tag_directory(&self) -> Arc<dyn TagDirectory> {
        Arc::new(MemoryTagDirectory::default())
    }

    async fn receipt_log(&self) -> Arc<dyn ReceiptLog> {
        Arc::new(MemoryReceiptLog::default())
    }

    async fn history_log(&self) -> Option<Arc<dyn HistoryLog>> {
        Some(Arc::new(MemoryHistoryLog::default()))
    }

    async fn webinar_settings(&self) -> Option<Arc<dyn WebinarSettings>> {
        Some(Arc::new(MemoryWebinarSettings::default()))
    }

    async fn queue_with_dead_letters(
        &self,
        settings: QueueSettings,
        clock: Arc<dyn Clock>,
    ) -> Option<(Arc<dyn InspectableQueue>, Arc<dyn DeadLetters>)> {
        let queue = MemoryQueue::with_clock(settings, clock);
        Some((Arc::new(queue.clone()), Arc::new(queue)))
    }

    async fn parked_webhooks(&self) -> Option<Arc<dyn ParkedWebhooks>> {
        Some(Arc::new(webinar_bridge::adapters::memory::MemoryParkedWebhooks::default()))
    }
}

/// The SQLite adapters, each on a new database: a new file in `dir`, or in memory.
#[derive(Debug)]
pub struct SqliteBackend {
    dir: Option<PathBuf>,
    opened: AtomicU64,
}

impl SqliteBackend {
    /// New database files in `dir` (which must outlive the backend, e.g. a temp dir).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self { dir: Some(dir.into()), opened: AtomicU64::new(0) }
    }

    pub fn in_memory() -> Self {
        Self { dir: None, opened: AtomicU64::new(0) }
    }

    /// A fresh, empty database.
    pub fn open(&self) -> SqliteDb {
        let opened = match &self.dir {
            Some(dir) => {
                let n = self.opened.fetch_add(1, Ordering::Relaxed);
                SqliteDb::open(dir.join(format!("suite-{n}.db")))
            }
            None => SqliteDb::open_in_memory(),
        };
        opened.expect("open a fresh SQLite database")
    }
}

#[async_trait]
impl InspectableQueue for SqliteQueue {
    async fn dead_letters(&self) -> PortResult<Vec<DeadLetter>> {
        SqliteQueue::dead_letters(self).await
    }

    async fn pending(&self) -> PortResult<usize> {
        SqliteQueue::pending(self).await
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn queue(&self, settings: QueueSettings, clock: Arc<dyn Clock>) -> Arc<dyn InspectableQueue> {
        Arc::new(SqliteQueue::with_clock(self.open(), settings, clock))
    }

    async fn event_log(&self, clock: Arc<dyn Clock>) -> Arc<dyn EventLog> {
        Arc::new(SqliteEventLog::with_clock(self.open(), clock))
    }

    async fn contact_store(&self) -> Arc<dyn ContactStore> {
        Arc::new(SqliteContactStore::new(self.open()))
    }

    async fn tag_directory(&self) -> Arc<dyn TagDirectory> {
        Arc::new(SqliteTagDirectory::new(self.open()))
    }

    async fn receipt_log(&self) -> Arc<dyn ReceiptLog> {
        Arc::new(SqliteReceiptLog::new(self.open()))
    }

    async fn history_log(&self) -> Option<Arc<dyn HistoryLog>> {
        Some(Arc::new(SqliteHistoryLog::new(self.open())))
    }

    async fn webinar_settings(&self) -> Option<Arc<dyn WebinarSettings>> {
        Some(Arc::new(SqliteWebinarSettings::new(self.open())))
    }

    async fn queue_with_dead_letters(
        &self,
        settings: QueueSettings,
        clock: Arc<dyn Clock>,
    ) -> Option<(Arc<dyn InspectableQueue>, Arc<dyn DeadLetters>)> {
        let queue = SqliteQueue::with_clock(self.open(), settings, clock);
        Some((Arc::new(queue.clone()), Arc::new(queue)))
    }

    async fn parked_webhooks(&self) -> Option<Arc<dyn ParkedWebhooks>> {
        Some(Arc::new(webinar_bridge::adapters::sqlite::SqliteParkedWebhooks::new(self.open())))
    }
}

// ---------------------------------------------------------------------------------------------
// Suites

/// Runs cases in order, naming each on stderr so a failure says which one broke.
macro_rules! run_cases {
    ($backend:expr; $($case:ident),+ $(,)?) => {{
        $(
            eprintln!("port suite case: {}", stringify!($case));
            $case($backend).await;
        )+
    }};
}

/// Every suite, for backends that support them all.
pub async fn full_suite(backend: &dyn Backend) {
    queue_suite(backend).await;
    queue_visibility_suite(backend).await;
    queue_dedup_expiry_suite(backend).await;
    event_log_suite(backend).await;
    contact_store_suite(backend).await;
    tag_directory_suite(backend).await;
    concurrency_suite(backend).await;
    receipt_log_suite(backend).await;
    history_log_suite(backend).await;
    webinar_settings_suite(backend).await;
    dead_letters_list_redrive_and_erase(backend).await;
    parked_webhooks_suite(backend).await;
}

/// Queue behaviour that needs no time to pass.
pub async fn queue_suite(backend: &dyn Backend) {
    run_cases!(backend;
        queue_delivers_a_group_in_fifo_order,
        queue_runs_groups_in_parallel,
        queue_delivers_a_groups_waiting_messages_together,
        queue_blocks_a_group_while_its_head_is_in_flight,
        queue_respects_the_receive_maximum,
        queue_ack_with_a_stale_receipt_does_not_delete,
        queue_retry_later_delays_and_blocks_the_group,
        queue_retry_later_without_delay_redelivers_at_once,
        queue_dead_letters_after_max_receives,
        queue_dead_letters_an_unreadable_message_with_its_reason,
        queue_drops_duplicates_within_the_dedup_window,
    );
}

/// Queue behaviour that needs the visibility timeout or a delay to pass.
pub async fn queue_visibility_suite(backend: &dyn Backend) {
    run_cases!(backend;
        queue_redelivers_after_the_visibility_timeout,
        queue_retry_later_becomes_visible_after_the_delay,
    );
}

/// Needs the whole dedup window (five minutes on SQS) to pass.
pub async fn queue_dedup_expiry_suite(backend: &dyn Backend) {
    run_cases!(backend; queue_accepts_a_dedup_id_again_after_the_window);
}

pub async fn event_log_suite(backend: &dyn Backend) {
    run_cases!(backend;
        event_log_claims_a_new_event,
        event_log_reports_a_completed_event_as_duplicate,
        event_log_is_busy_under_a_live_lease,
        event_log_takes_over_an_expired_lease,
        event_log_flags_a_payload_mismatch,
        event_log_release_lets_a_retry_claim_at_once,
        event_log_forgets_an_event_after_its_ttl,
        event_log_refuses_to_complete_an_unclaimed_event,
        event_log_a_taken_over_claim_stays_with_its_new_owner,
    );
}

pub async fn contact_store_suite(backend: &dyn Backend) {
    run_cases!(backend;
        contact_store_inserts_only_if_absent,
        contact_store_conflicts_on_a_stale_version,
        contact_store_round_trips_a_realistic_record,
        contact_store_keeps_contacts_apart,
        contact_store_keeps_a_contact_in_1000_webinars,
    );
}

pub async fn tag_directory_suite(backend: &dyn Backend) {
    run_cases!(backend;
        tag_directory_lets_one_writer_create_a_tag,
        tag_directory_takes_over_an_expired_claim,
        tag_directory_record_existing_never_overrides_a_known_id,
        tag_directory_forgets_a_tag,
    );
}

/// Races between tasks on one adapter. Run it on a multi-threaded runtime.
pub async fn concurrency_suite(backend: &dyn Backend) {
    run_cases!(backend;
        concurrent_event_claims_have_one_winner,
        concurrent_tag_claims_have_one_winner,
        concurrent_first_saves_have_one_winner,
        concurrent_receives_deliver_each_message_once,
    );
}

// ---------------------------------------------------------------------------------------------
// Queue cases

/// Timeless cases: long enough that nothing reappears while a real-time backend runs them.
fn timeless_settings() -> QueueSettings {
    QueueSettings {
        visibility_timeout: Duration::from_secs(60),
        max_receive_count: 3,
        dedup_window: Duration::from_secs(300),
    }
}

/// Short enough for a backend that has to sleep through them.
fn visibility_settings() -> QueueSettings {
    QueueSettings { visibility_timeout: Duration::from_secs(2), ..timeless_settings() }
}

fn outgoing(group: &str, body: &str) -> OutgoingMessage {
    OutgoingMessage { group_id: group.to_owned(), dedup_id: format!("dedup-{body}"), body: body.to_owned() }
}

fn bodies(messages: &[QueuedMessage]) -> Vec<&str> {
    messages.iter().map(|message| message.body.as_str()).collect()
}

async fn send(queue: &dyn InspectableQueue, messages: &[OutgoingMessage]) {
    queue.send(messages).await.expect("send");
}

async fn receive(queue: &dyn InspectableQueue, max: usize) -> Vec<QueuedMessage> {
    queue.receive(max).await.expect("receive")
}

/// A receive that must deliver something; a few attempts, since a real queue may answer empty.
async fn receive_some(queue: &dyn InspectableQueue, max: usize) -> Vec<QueuedMessage> {
    for _ in 0..3 {
        let received = receive(queue, max).await;
        if !received.is_empty() {
            return received;
        }
    }
    panic!("expected a delivery, the queue stayed empty");
}

async fn receive_one(queue: &dyn InspectableQueue) -> QueuedMessage {
    let mut received = receive_some(queue, 1).await;
    assert_eq!(received.len(), 1, "receive(1) returned more than one message");
    received.remove(0)
}

async fn pending(queue: &dyn InspectableQueue) -> usize {
    queue.pending().await.expect("pending")
}

async fn fresh_queue(backend: &dyn Backend, settings: QueueSettings) -> (Arc<dyn InspectableQueue>, Arc<ManualClock>) {
    let clock = ManualClock::new(ManualClock::start());
    (backend.queue(settings, clock.shared()).await, clock)
}

pub async fn queue_delivers_a_group_in_fifo_order(backend: &dyn Backend) {
    let (queue, _clock) = fresh_queue(backend, timeless_settings()).await;
    send(&*queue, &[outgoing("a", "a1"), outgoing("a", "a2")]).await;
    send(&*queue, &[outgoing("a", "a3")]).await;
    for expected in ["a1", "a2", "a3"] {
        let message = receive_one(&*queue).await;
        assert_eq!(message.body, expected);
        assert_eq!(message.group_id, "a");
        assert_eq!(message.receive_count, 1);
        queue.ack(&message).await.expect("ack");
    }
    assert!(receive(&*queue, 10).await.is_empty());
    assert_eq!(pending(&*queue).await, 0);
}

pub async fn queue_runs_groups_in_parallel(backend: &dyn Backend) {
    let (queue, _clock) = fresh_queue(backend, timeless_settings()).await;
    send(&*queue, &[outgoing("a", "a1"), outgoing("a", "a2"), outgoing("b", "b1")]).await;
    let first = receive_one(&*queue).await;
    assert_eq!(first.body, "a1");
    // Group a waits for a1; group b is independent of it.
    assert_eq!(bodies(&receive_some(&*queue, 10).await), ["b1"]);
}

/// SQS FIFO's shape (and the embedded queues'): a receive takes groups in the order of their
/// oldest message, each with every message it has waiting, so a contact's events are planned
/// once; `max` may cut the last group.
pub async fn queue_delivers_a_groups_waiting_messages_together(backend: &dyn Backend) {
    let (queue, _clock) = fresh_queue(backend, timeless_settings()).await;
    let interleaved = ["a1", "b1", "a2", "c1", "b2", "a3"].map(|body| outgoing(&body[..1], body));
    send(&*queue, &interleaved).await;
    let first = receive_some(&*queue, 4).await;
    assert_eq!(bodies(&first), ["a1", "a2", "a3", "b1"]);
    // a and b are in flight; b2 waits behind b1, and a message sent now waits behind a's.
    send(&*queue, &[outgoing("a", "a4")]).await;
    assert_eq!(bodies(&receive_some(&*queue, 10).await), ["c1"]);
    for message in &first {
        queue.ack(message).await.expect("ack");
    }
    assert_eq!(bodies(&receive_some(&*queue, 10).await), ["b2", "a4"]);
}

pub async fn queue_blocks_a_group_while_its_head_is_in_flight(backend: &dyn Backend) {
    let (queue, _clock) = fresh_queue(backend, timeless_settings()).await;
    send(&*queue, &[outgoing("a", "a1"), outgoing("a", "a2")]).await;
    let head = receive_one(&*queue).await;
    assert!(receive(&*queue, 10).await.is_empty(), "a2 overtook a1 while a1 was in flight");
    queue.ack(&head).await.expect("ack");
    assert_eq!(bodies(&receive_some(&*queue, 10).await), ["a2"]);
}

pub async fn queue_respects_the_receive_maximum(backend: &dyn Backend) {
    let (queue, _clock) = fresh_queue(backend, timeless_settings()).await;
    let groups = ["a", "b", "c", "d", "e"];
    let messages: Vec<_> = groups.iter().map(|group| outgoing(group, &format!("{group}1"))).collect();
    send(&*queue, &messages).await;
    let mut delivered = BTreeSet::new();
    while delivered.len() < groups.len() {
        let batch = receive_some(&*queue, 2).await;
        assert!(batch.len() <= 2, "receive(2) returned {} messages", batch.len());
        for message in batch {
            assert!(delivered.insert(message.body.clone()), "{} delivered twice", message.body);
        }
    }
    assert!(receive(&*queue, 10).await.is_empty());
}

pub async fn queue_ack_with_a_stale_receipt_does_not_delete(backend: &dyn Backend) {
    let (queue, _clock) = fresh_queue(backend, timeless_settings()).await;
    send(&*queue, &[outgoing("a", "a1")]).await;
    let first = receive_one(&*queue).await;
    queue.retry_later(&first, Duration::ZERO).await.expect("retry_later");
    let second = receive_one(&*queue).await;
    assert_eq!(second.message_id, first.message_id);
    assert_ne!(second.receipt, first.receipt, "each delivery needs its own receipt");
    queue.ack(&first).await.expect("a stale ack is not an error");
    assert_eq!(pending(&*queue).await, 1, "a stale receipt deleted the redelivered message");
    queue.ack(&second).await.expect("ack");
    assert_eq!(pending(&*queue).await, 0);
}

pub async fn queue_retry_later_delays_and_blocks_the_group(backend: &dyn Backend) {
    let (queue, _clock) = fresh_queue(backend, timeless_settings()).await;
    send(&*queue, &[outgoing("a", "a1"), outgoing("a", "a2")]).await;
    let head = receive_one(&*queue).await;
    queue.retry_later(&head, Duration::from_secs(60)).await.expect("retry_later");
    assert!(receive(&*queue, 10).await.is_empty(), "a delayed head must hold back its group");
    assert_eq!(pending(&*queue).await, 2);
}

pub async fn queue_retry_later_without_delay_redelivers_at_once(backend: &dyn Backend) {
    let (queue, _clock) = fresh_queue(backend, timeless_settings()).await;
    send(&*queue, &[outgoing("a", "a1"), outgoing("a", "a2")]).await;
    let first = receive_one(&*queue).await;
    queue.retry_later(&first, Duration::ZERO).await.expect("retry_later");
    let again = receive_one(&*queue).await;
    assert_eq!(again.body, "a1", "the retried head keeps its place in the group");
    assert_eq!(again.receive_count, 2);
}

pub async fn queue_dead_letters_after_max_receives(backend: &dyn Backend) {
    let settings = timeless_settings();
    let (queue, _clock) = fresh_queue(backend, settings).await;
    send(&*queue, &[outgoing("a", "poison"), outgoing("a", "next")]).await;
    for attempt in 1..=settings.max_receive_count {
        let message = receive_one(&*queue).await;
        assert_eq!((message.body.as_str(), message.receive_count), ("poison", attempt));
        queue.retry_later(&message, Duration::ZERO).await.expect("retry_later");
    }
    // The exhausted head goes to the dead letters and no longer blocks its group.
    let next = receive_one(&*queue).await;
    assert_eq!((next.body.as_str(), next.receive_count), ("next", 1));
    let dead = queue.dead_letters().await.expect("dead_letters");
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].body.as_str(), dead[0].group_id.as_str()), ("poison", "a"));
    assert_eq!(dead[0].receive_count, settings.max_receive_count);
    assert_eq!(dead[0].reason, None, "used up its receives: no consumer gave a reason");
    queue.ack(&next).await.expect("ack");
    assert_eq!(pending(&*queue).await, 0);
}

/// DESIGN 6: a message the consumer cannot read is never deleted: it moves to the dead letters at
/// once, byte for byte (a newer consumer can read it after a redrive), with the reason beside it.
pub async fn queue_dead_letters_an_unreadable_message_with_its_reason(backend: &dyn Backend) {
    let (queue, _clock) = fresh_queue(backend, timeless_settings()).await;
    let body = "{\"schema\":99,\"kind\":\"from_the_future\",\"note\":\"caf\u{e9} \u{1F600}\"}  ";
    send(&*queue, &[outgoing("a", body), outgoing("a", "next")]).await;
    let unreadable = receive_one(&*queue).await;
    assert_eq!(unreadable.body, body);
    let reason = "unknown schema version 99 (this consumer reads up to 1)";
    queue.dead_letter(&unreadable, reason).await.expect("dead_letter");
    let next = receive_one(&*queue).await;
    assert_eq!((next.body.as_str(), next.receive_count), ("next", 1), "the dead letter no longer blocks its group");
    queue.ack(&next).await.expect("ack");
    assert_eq!(pending(&*queue).await, 0);
    let dead = queue.dead_letters().await.expect("dead_letters");
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].body.as_str(), dead[0].group_id.as_str()), (body, "a"), "kept byte for byte");
    assert_eq!(dead[0].reason.as_deref(), Some(reason));
}

pub async fn queue_drops_duplicates_within_the_dedup_window(backend: &dyn Backend) {
    let (queue, clock) = fresh_queue(backend, timeless_settings()).await;
    let message = outgoing("a", "a1");
    send(&*queue, &[message.clone(), message.clone()]).await;
    send(&*queue, std::slice::from_ref(&message)).await;
    let delivered = receive_some(&*queue, 10).await;
    assert_eq!(bodies(&delivered), ["a1"]);
    queue.ack(&delivered[0]).await.expect("ack");
    // Still a duplicate after the original is gone, as long as the window lasts.
    clock.advance(Duration::from_secs(60));
    send(&*queue, &[message]).await;
    assert!(receive(&*queue, 10).await.is_empty());
    assert_eq!(pending(&*queue).await, 0);
}

pub async fn queue_redelivers_after_the_visibility_timeout(backend: &dyn Backend) {
    let settings = visibility_settings();
    let (queue, clock) = fresh_queue(backend, settings).await;
    send(&*queue, &[outgoing("a", "a1")]).await;
    let first = receive_one(&*queue).await;
    assert!(receive(&*queue, 10).await.is_empty());
    backend.let_time_pass(&clock, settings.visibility_timeout + Duration::from_secs(1)).await;
    let second = receive_one(&*queue).await;
    assert_eq!((second.message_id.as_str(), second.receive_count), (first.message_id.as_str(), 2));
    queue.ack(&first).await.expect("a stale ack is not an error");
    assert_eq!(pending(&*queue).await, 1, "the first receipt went stale on redelivery");
    queue.ack(&second).await.expect("ack");
    assert_eq!(pending(&*queue).await, 0);
}

pub async fn queue_retry_later_becomes_visible_after_the_delay(backend: &dyn Backend) {
    let (queue, clock) = fresh_queue(backend, visibility_settings()).await;
    send(&*queue, &[outgoing("a", "a1")]).await;
    let first = receive_one(&*queue).await;
    queue.retry_later(&first, Duration::from_secs(3)).await.expect("retry_later");
    backend.let_time_pass(&clock, Duration::from_secs(1)).await;
    assert!(receive(&*queue, 10).await.is_empty(), "visible before its delay ended");
    backend.let_time_pass(&clock, Duration::from_secs(3)).await;
    let again = receive_one(&*queue).await;
    assert_eq!((again.body.as_str(), again.receive_count), ("a1", 2));
}

pub async fn queue_accepts_a_dedup_id_again_after_the_window(backend: &dyn Backend) {
    let settings = timeless_settings();
    let (queue, clock) = fresh_queue(backend, settings).await;
    let message = outgoing("a", "a1");
    send(&*queue, std::slice::from_ref(&message)).await;
    let first = receive_one(&*queue).await;
    queue.ack(&first).await.expect("ack");
    backend.let_time_pass(&clock, settings.dedup_window + Duration::from_secs(1)).await;
    send(&*queue, &[message]).await;
    let again = receive_one(&*queue).await;
    assert_eq!(again.body, "a1");
    assert_ne!(again.message_id, first.message_id, "a new message after the window");
}

// ---------------------------------------------------------------------------------------------
// Event log cases

const LEASE: Duration = Duration::from_secs(30);
const RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

fn event_id(name: &str) -> EventId {
    EventId::from_sender(name).expect("a valid sender id")
}

async fn fresh_event_log(backend: &dyn Backend) -> (Arc<dyn EventLog>, Arc<ManualClock>) {
    let clock = ManualClock::new(ManualClock::start());
    (backend.event_log(clock.shared()).await, clock)
}

/// The one worker of the cases that need only one.
fn worker() -> ClaimToken {
    ClaimToken::from_stored("suite-worker")
}

async fn claim(log: &dyn EventLog, id: &EventId, fingerprint: &str, now: DateTime<Utc>) -> Claim {
    log.claim(id, fingerprint, &worker(), now, LEASE, RETENTION).await.expect("claim")
}

async fn complete(log: &dyn EventLog, id: &EventId, outcome: &FinalOutcome, now: DateTime<Utc>) {
    log.complete(id, &worker(), outcome, now, RETENTION).await.expect("complete");
}

fn at(clock: &ManualClock, seconds_later: u64) -> DateTime<Utc> {
    clock.now() + chrono::Duration::seconds(seconds_later as i64)
}

fn rejection() -> FinalOutcome {
    FinalOutcome::Rejected(RejectionReason {
        operation: "POST /subscriber".into(),
        status: Some(406),
        error_number: Some(9),
        field: Some("fieldBirthday".into()),
        reason: "Das Datum ist ungültig".into(),
    })
}

pub async fn event_log_claims_a_new_event(backend: &dyn Backend) {
    let (log, clock) = fresh_event_log(backend).await;
    let id = event_id("evt-new");
    let now = clock.now();
    assert_eq!(log.get(&id).await.expect("get"), None);
    assert_eq!(claim(&*log, &id, "fp", now).await, Claim::Claimed);
    let record = log.get(&id).await.expect("get").expect("a claimed event has a record");
    assert_eq!((record.event_id, record.fingerprint.as_str()), (id, "fp"));
    assert_eq!(record.status, EventStatus::InProgress { lease_until: now + chrono::Duration::seconds(30) });
    assert_eq!(record.updated_at, now);
    assert_eq!(record.expires_at, now + chrono::Duration::days(30));
}

pub async fn event_log_reports_a_completed_event_as_duplicate(backend: &dyn Backend) {
    let (log, clock) = fresh_event_log(backend).await;
    for (name, outcome) in [
        ("evt-applied", FinalOutcome::Applied),
        ("evt-rejected", rejection()),
        ("evt-skipped", FinalOutcome::Skipped { reason: "listbuilding mode takes registrations only".into() }),
    ] {
        let id = event_id(name);
        assert_eq!(claim(&*log, &id, "fp", clock.now()).await, Claim::Claimed);
        complete(&*log, &id, &outcome, at(&clock, 1)).await;
        assert_eq!(claim(&*log, &id, "fp", at(&clock, 2)).await, Claim::Completed(outcome.clone()));
        let record = log.get(&id).await.expect("get").expect("record");
        assert_eq!(record.status, EventStatus::Completed(outcome));
        assert_eq!(record.updated_at, at(&clock, 1));
    }
}

pub async fn event_log_is_busy_under_a_live_lease(backend: &dyn Backend) {
    let (log, clock) = fresh_event_log(backend).await;
    let id = event_id("evt-busy");
    assert_eq!(claim(&*log, &id, "fp", clock.now()).await, Claim::Claimed);
    assert_eq!(claim(&*log, &id, "fp", clock.now()).await, Claim::Busy);
    assert_eq!(claim(&*log, &id, "fp", at(&clock, 29)).await, Claim::Busy);
}

pub async fn event_log_takes_over_an_expired_lease(backend: &dyn Backend) {
    let (log, clock) = fresh_event_log(backend).await;
    let id = event_id("evt-crashed");
    assert_eq!(claim(&*log, &id, "fp", clock.now()).await, Claim::Claimed);
    // The lease ends at +30 s; from then on a crashed claim is taken over.
    assert_eq!(claim(&*log, &id, "fp", at(&clock, 30)).await, Claim::Claimed);
    let record = log.get(&id).await.expect("get").expect("record");
    assert_eq!(record.status, EventStatus::InProgress { lease_until: at(&clock, 60) });
    assert_eq!(claim(&*log, &id, "fp", at(&clock, 31)).await, Claim::Busy, "the new lease is live");
}

pub async fn event_log_flags_a_payload_mismatch(backend: &dyn Backend) {
    let (log, clock) = fresh_event_log(backend).await;
    let id = event_id("evt-reused");
    assert_eq!(claim(&*log, &id, "fp-original", clock.now()).await, Claim::Claimed);
    assert_eq!(claim(&*log, &id, "fp-other", clock.now()).await, Claim::PayloadMismatch);
    complete(&*log, &id, &FinalOutcome::Applied, at(&clock, 1)).await;
    assert_eq!(claim(&*log, &id, "fp-other", at(&clock, 2)).await, Claim::PayloadMismatch);
    let record = log.get(&id).await.expect("get").expect("record");
    assert_eq!(record.fingerprint, "fp-original", "a mismatch must not overwrite the record");
}

pub async fn event_log_release_lets_a_retry_claim_at_once(backend: &dyn Backend) {
    let (log, clock) = fresh_event_log(backend).await;
    let id = event_id("evt-released");
    assert_eq!(claim(&*log, &id, "fp", clock.now()).await, Claim::Claimed);
    log.release(&id, &worker()).await.expect("release");
    assert_eq!(claim(&*log, &id, "fp", clock.now()).await, Claim::Claimed);
    // Releasing a completed event changes nothing.
    complete(&*log, &id, &FinalOutcome::Applied, clock.now()).await;
    log.release(&id, &worker()).await.expect("release");
    assert_eq!(claim(&*log, &id, "fp", clock.now()).await, Claim::Completed(FinalOutcome::Applied));
    log.release(&event_id("evt-never-seen"), &worker()).await.expect("releasing an unknown event is fine");
}

pub async fn event_log_forgets_an_event_after_its_ttl(backend: &dyn Backend) {
    let (log, clock) = fresh_event_log(backend).await;
    let id = event_id("evt-old");
    let other = event_id("evt-old-reused");
    for id in [&id, &other] {
        assert_eq!(claim(&*log, id, "fp", clock.now()).await, Claim::Claimed);
        complete(&*log, id, &FinalOutcome::Applied, clock.now()).await;
    }
    let just_before = at(&clock, RETENTION.as_secs() - 1);
    assert_eq!(claim(&*log, &id, "fp", just_before).await, Claim::Completed(FinalOutcome::Applied));
    clock.advance(RETENTION);
    if let Some(record) = log.get(&id).await.expect("get") {
        assert!(record.expires_at <= clock.now(), "an expired record may linger, but only as expired");
    }
    assert_eq!(claim(&*log, &id, "fp", clock.now()).await, Claim::Claimed, "after the TTL it is new again");
    assert_eq!(claim(&*log, &other, "fp-different", clock.now()).await, Claim::Claimed, "no mismatch after the TTL");
}

pub async fn event_log_refuses_to_complete_an_unclaimed_event(backend: &dyn Backend) {
    let (log, clock) = fresh_event_log(backend).await;
    let result =
        log.complete(&event_id("evt-unclaimed"), &worker(), &FinalOutcome::Applied, clock.now(), RETENTION).await;
    assert!(matches!(result, Err(PortError::ClaimLost)), "completing an unclaimed event must fail, got {result:?}");
}

/// Claims have owners: a worker whose lease ran out and was taken over can neither complete
/// nor release the new owner's claim, before or after the new owner finishes.
pub async fn event_log_a_taken_over_claim_stays_with_its_new_owner(backend: &dyn Backend) {
    let (log, clock) = fresh_event_log(backend).await;
    let id = event_id("evt-taken-over");
    let (slow, fast) = (ClaimToken::new(), ClaimToken::new());
    assert_ne!(slow, fast, "tokens are unique");
    let claimed = log.claim(&id, "fp", &slow, clock.now(), LEASE, RETENTION).await.expect("claim");
    assert_eq!(claimed, Claim::Claimed);
    // The slow worker's lease ends at +30 s; the fast one takes the event over.
    let taken = log.claim(&id, "fp", &fast, at(&clock, 30), LEASE, RETENTION).await.expect("claim");
    assert_eq!(taken, Claim::Claimed);

    let late = log.complete(&id, &slow, &FinalOutcome::Applied, at(&clock, 31), RETENTION).await;
    assert!(matches!(late, Err(PortError::ClaimLost)), "a stale owner must not complete, got {late:?}");
    let dropped = log.release(&id, &slow).await;
    assert!(matches!(dropped, Err(PortError::ClaimLost)), "a stale owner must not release, got {dropped:?}");
    let record = log.get(&id).await.expect("get").expect("the new owner's claim is still there");
    assert_eq!(record.status, EventStatus::InProgress { lease_until: at(&clock, 60) });
    assert_eq!(claim(&*log, &id, "fp", at(&clock, 31)).await, Claim::Busy, "the new owner's lease is live");

    log.complete(&id, &fast, &rejection(), at(&clock, 32), RETENTION).await.expect("the owner completes");
    let late = log.complete(&id, &slow, &FinalOutcome::Applied, at(&clock, 33), RETENTION).await;
    assert!(matches!(late, Err(PortError::ClaimLost)), "a finished event stays finished, got {late:?}");
    log.release(&id, &slow).await.expect("releasing a finished event changes nothing");
    let record = log.get(&id).await.expect("get").expect("record");
    assert_eq!(record.status, EventStatus::Completed(rejection()), "the owner's outcome stands");
    let again = log.complete(&id, &fast, &FinalOutcome::Applied, at(&clock, 34), RETENTION).await;
    assert!(matches!(again, Err(PortError::ClaimLost)), "a completed claim is not completed twice, got {again:?}");
}

// ---------------------------------------------------------------------------------------------
// Contact store cases

fn email(raw: &str) -> Email {
    Email::parse(raw).expect("a valid address")
}

fn record_for(address: &str) -> ContactRecord {
    ContactRecord::new(email(address))
}

fn is_conflict<T: std::fmt::Debug>(result: &PortResult<T>) -> bool {
    matches!(result, Err(PortError::VersionConflict))
}

fn instant(rfc3339: &str) -> DateTime<Utc> {
    rfc3339.parse().expect("a valid RFC 3339 time")
}

/// One event of Erika's history; `seq` keeps the ids apart.
fn erika_event(seq: u8, source: Source, webinar: WebinarInfo, kind: EventKind, at: &str, facts: Facts) -> WebinarEvent {
    let mut contact = ContactInfo::new(email("Erika.Mustermann@Example.com"));
    contact.first_name = Some("Erika".into());
    contact.last_name = Some("Müßtermann".into());
    contact.phone = Some("+49 30 1234567".into());
    WebinarEvent {
        schema: webinar_bridge::domain::EVENT_SCHEMA_VERSION,
        event_id: EventId::hashed(&source, &[&[seq]]),
        source,
        kind,
        occurred_at: instant(at),
        received_at: instant(at) + chrono::Duration::seconds(2),
        contact,
        webinar,
        facts,
    }
}

/// A record as the consumer leaves it: two webinars' events merged, and what KlickTipp holds.
pub fn realistic_contact_record() -> ContactRecord {
    let mut demo = WebinarInfo::new("81234567890");
    demo.name = Some("Demo Webinar".into());
    demo.starts_at = Some(instant("2026-01-15T17:00:00Z"));
    demo.timezone = Some("Europe/Berlin".into());
    demo.join_url = Some("https://zoom.us/w/81234567890?tk=abc".into());
    demo.duration_minutes = Some(60);
    let mut masterclass = WebinarInfo::new("mc-7");
    masterclass.name = Some("Masterclass \"Preise\"".into());
    masterclass.replay_url = Some("replay.example.com/mc-7".into());
    let livestorm = Source::Generic { tool: "Livestorm".into() };
    let joined = Facts {
        intervals: vec![
            Interval { start: instant("2026-01-15T17:01:00Z"), end: Some(instant("2026-01-15T17:30:00Z")) },
            Interval { start: instant("2026-01-15T17:35:00Z"), end: None },
        ],
        ..Facts::default()
    };
    let bought = Facts { purchase_amount: Some(Cents(104_900)), ..Facts::default() };
    let events = [
        erika_event(1, Source::Zoom, demo.clone(), EventKind::Registered, "2026-01-10T09:00:00Z", Facts::default()),
        erika_event(2, Source::Zoom, demo.clone(), EventKind::Attended, "2026-01-15T17:01:00Z", joined),
        erika_event(3, Source::Zoom, demo, EventKind::Purchased, "2026-01-15T18:05:00Z", bought),
        erika_event(
            4,
            livestorm.clone(),
            masterclass.clone(),
            EventKind::Registered,
            "2026-01-11T08:00:00Z",
            Facts::default(),
        ),
        erika_event(5, livestorm, masterclass, EventKind::Cancelled, "2026-01-12T08:00:00Z", Facts::default()),
    ];
    let mut record = ContactRecord::new(events[0].contact.email.clone());
    for event in &events {
        record.apply(event);
    }
    record.applied.known = true;
    record.applied.fields = BTreeMap::from([
        ("fieldFirstName".to_owned(), FieldValue::Text("Erika".into())),
        ("field1234".to_owned(), FieldValue::Number(1_768_496_400)),
    ]);
    record.applied.tags =
        BTreeSet::from(["[Zoom] [Demo Webinar] Attended".to_owned(), "[Zoom] [Demo Webinar] Buyer".to_owned()]);
    record
}

/// A loyal registrant: `webinars` WebinarJam webinars, each registered for and attended, with
/// the name, start, zone, personal room and replay links WebinarJam sends, and both tags applied.
/// The record a contact's events grow to (issue 11: a contact in 1,000 webinars).
pub fn contact_in_webinars(webinars: u32) -> ContactRecord {
    let mut contact = ContactInfo::new(email("loyal.registrant@example.com"));
    contact.first_name = Some("Lena".into());
    contact.last_name = Some("Treu".into());
    let mut record = ContactRecord::new(contact.email.clone());
    let first_start = instant("2026-01-05T18:00:00Z");
    for i in 0..webinars {
        let starts_at = first_start + chrono::Duration::hours(i64::from(i) * 7);
        let name = format!("Webinar {i}: Growth Masterclass");
        let mut webinar = WebinarInfo::new((100_000 + i).to_string());
        webinar.name = Some(name.clone());
        webinar.session_id = Some((i % 17).to_string());
        webinar.starts_at = Some(starts_at);
        webinar.timezone = Some("Europe/Berlin".into());
        // Personal rooms: unique per registrant, so they do not compress away.
        let room = EventId::hashed(&Source::Webinarjam, &[b"room", &i.to_be_bytes()]);
        let room = &room.as_str()["webinarjam:".len().."webinarjam:".len() + 16];
        webinar.join_url = Some(format!("https://event.webinarjam.com/live/{}/{room}", 100_000 + i));
        webinar.replay_url = Some(format!("https://event.webinarjam.com/replay/{}/{room}", 100_000 + i));
        webinar.duration_minutes = Some(60);
        for (kind, offset, facts) in [
            (EventKind::Registered, -72, Facts { registrant_id: Some((900_000 + i).to_string()), ..Facts::default() }),
            (EventKind::Attended, 0, Facts { minutes_attended: Some(42), ..Facts::default() }),
        ] {
            let at = starts_at + chrono::Duration::hours(offset);
            let event = WebinarEvent {
                schema: webinar_bridge::domain::EVENT_SCHEMA_VERSION,
                event_id: EventId::hashed(&Source::Webinarjam, &[kind.as_str().as_bytes(), &i.to_be_bytes()]),
                source: Source::Webinarjam,
                kind,
                occurred_at: at,
                received_at: at + chrono::Duration::seconds(1),
                contact: contact.clone(),
                webinar: webinar.clone(),
                facts,
            };
            record.apply(&event);
        }
        record.applied.tags.insert(format!("[WebinarJam] [{name}] Registered"));
        record.applied.tags.insert(format!("[WebinarJam] [{name}] Attended"));
    }
    record.applied.known = true;
    record.applied.fields = BTreeMap::from([
        ("fieldFirstName".to_owned(), FieldValue::Text("Lena".into())),
        ("fieldLastName".to_owned(), FieldValue::Text("Treu".into())),
    ]);
    record
}

/// Storage stays bounded per contact: one in 1,000 webinars saves, loads back whole and updates.
pub async fn contact_store_keeps_a_contact_in_1000_webinars(backend: &dyn Backend) {
    let store = fresh_contact_store(backend).await;
    let mut record = contact_in_webinars(1_000);
    assert_eq!(record.webinars.len(), 1_000);
    let version = store.save(&record, None).await.expect("a contact in 1,000 webinars fits");
    let loaded = store.load(&record.email).await.expect("load").expect("saved");
    assert_eq!(loaded.value, record);
    record.applied.tags.insert("[WebinarJam] [Webinar 0: Growth Masterclass] Buyer".into());
    store.save(&record, Some(version)).await.expect("and updates");
}

async fn fresh_contact_store(backend: &dyn Backend) -> Arc<dyn ContactStore> {
    backend.contact_store().await
}

pub async fn contact_store_inserts_only_if_absent(backend: &dyn Backend) {
    let store = fresh_contact_store(backend).await;
    let record = record_for("first@example.com");
    assert_eq!(store.load(&record.email).await.expect("load"), None);
    assert_eq!(store.save(&record, None).await.expect("first save"), 1);
    assert!(is_conflict(&store.save(&record, None).await), "a second insert must conflict");
    let loaded = store.load(&record.email).await.expect("load").expect("saved");
    assert_eq!((loaded.value, loaded.version), (record, 1));
}

pub async fn contact_store_conflicts_on_a_stale_version(backend: &dyn Backend) {
    let store = fresh_contact_store(backend).await;
    let mut record = record_for("stale@example.com");
    let first = store.save(&record, None).await.expect("insert");
    record.applied.known = true;
    let second = store.save(&record, Some(first)).await.expect("update");
    assert!(second > first, "versions must grow");
    let mut stale = record.clone();
    stale.applied.known = false;
    assert!(is_conflict(&store.save(&stale, Some(first)).await), "a stale version must conflict");
    assert!(is_conflict(&store.save(&stale, Some(second + 5)).await), "a future version must conflict");
    assert!(is_conflict(&store.save(&record_for("nobody@example.com"), Some(1)).await), "no record, no version");
    let loaded = store.load(&record.email).await.expect("load").expect("saved");
    assert_eq!((loaded.value, loaded.version), (record, second));
}

pub async fn contact_store_round_trips_a_realistic_record(backend: &dyn Backend) {
    let store = fresh_contact_store(backend).await;
    let record = realistic_contact_record();
    assert_eq!(record.webinars.len(), 2, "the fixture should cover two webinars");
    let version = store.save(&record, None).await.expect("save");
    let loaded = store.load(&record.email).await.expect("load").expect("saved");
    assert_eq!(loaded.value, record);
    assert_eq!(loaded.version, version);
}

pub async fn contact_store_keeps_contacts_apart(backend: &dyn Backend) {
    let store = fresh_contact_store(backend).await;
    let (a, b) = (record_for("a@example.com"), record_for("b@example.com"));
    let version_a = store.save(&a, None).await.expect("save a");
    store.save(&b, None).await.expect("save b is independent of a");
    store.save(&a, Some(version_a)).await.expect("a's version is its own");
    assert_eq!(store.load(&email("c@example.com")).await.expect("load"), None);
}

// ---------------------------------------------------------------------------------------------
// Tag directory cases

const TAG_LEASE: Duration = Duration::from_secs(10);

async fn fresh_tag_directory(backend: &dyn Backend) -> (Arc<dyn TagDirectory>, Arc<ManualClock>) {
    (backend.tag_directory().await, ManualClock::new(ManualClock::start()))
}

async fn claim_tag(tags: &dyn TagDirectory, name: &str, now: DateTime<Utc>) -> TagClaim {
    tags.claim_creation(name, now, TAG_LEASE).await.expect("claim_creation")
}

async fn lookup(tags: &dyn TagDirectory, name: &str) -> Option<u64> {
    tags.lookup(name).await.expect("lookup")
}

pub async fn tag_directory_lets_one_writer_create_a_tag(backend: &dyn Backend) {
    let (tags, clock) = fresh_tag_directory(backend).await;
    let name = "[Zoom] [Demo Webinar] Attended";
    assert_eq!(lookup(&*tags, name).await, None);
    assert_eq!(claim_tag(&*tags, name, clock.now()).await, TagClaim::Claimed);
    assert_eq!(claim_tag(&*tags, name, at(&clock, 1)).await, TagClaim::HeldByOther);
    assert_eq!(lookup(&*tags, name).await, None, "a claim is not a tag");
    tags.record_created(name, 7).await.expect("record_created");
    assert_eq!(lookup(&*tags, name).await, Some(7));
    assert_eq!(claim_tag(&*tags, name, at(&clock, 2)).await, TagClaim::Exists(7));
}

pub async fn tag_directory_takes_over_an_expired_claim(backend: &dyn Backend) {
    let (tags, clock) = fresh_tag_directory(backend).await;
    let name = "[Zoom] [Demo Webinar] Registered";
    assert_eq!(claim_tag(&*tags, name, clock.now()).await, TagClaim::Claimed);
    assert_eq!(claim_tag(&*tags, name, at(&clock, 9)).await, TagClaim::HeldByOther);
    assert_eq!(claim_tag(&*tags, name, at(&clock, 10)).await, TagClaim::TakenOver, "the lease ended at +10 s");
    assert_eq!(claim_tag(&*tags, name, at(&clock, 11)).await, TagClaim::HeldByOther, "the new claim is live");
}

pub async fn tag_directory_record_existing_never_overrides_a_known_id(backend: &dyn Backend) {
    let (tags, clock) = fresh_tag_directory(backend).await;
    tags.record_created("known", 1).await.expect("record_created");
    assert_eq!(claim_tag(&*tags, "pending", clock.now()).await, TagClaim::Claimed);
    let listed = BTreeMap::from([("known".to_owned(), 2), ("new".to_owned(), 3), ("pending".to_owned(), 4)]);
    tags.record_existing(&listed).await.expect("record_existing");
    assert_eq!(lookup(&*tags, "known").await, Some(1), "a known id wins");
    assert_eq!(lookup(&*tags, "new").await, Some(3));
    assert_eq!(lookup(&*tags, "pending").await, Some(4), "KlickTipp's id replaces a pending claim");
    assert_eq!(claim_tag(&*tags, "new", clock.now()).await, TagClaim::Exists(3));
    tags.record_existing(&BTreeMap::new()).await.expect("an empty listing is fine");
}

pub async fn tag_directory_forgets_a_tag(backend: &dyn Backend) {
    let (tags, clock) = fresh_tag_directory(backend).await;
    tags.record_created("deleted by the user", 5).await.expect("record_created");
    tags.forget("deleted by the user").await.expect("forget");
    assert_eq!(lookup(&*tags, "deleted by the user").await, None);
    assert_eq!(claim_tag(&*tags, "deleted by the user", clock.now()).await, TagClaim::Claimed);
    tags.forget("never known").await.expect("forgetting an unknown tag is fine");
}

// ---------------------------------------------------------------------------------------------
// Concurrency cases

const RACERS: usize = 16;

/// Runs `RACERS` copies of `race` at once and returns their results.
async fn race<T, F, Fut>(race: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let handles: Vec<_> = (0..RACERS)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            let run = race();
            tokio::spawn(async move {
                barrier.wait().await;
                run.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(RACERS);
    for handle in handles {
        results.push(handle.await.expect("a racing task panicked"));
    }
    results
}

pub async fn concurrent_event_claims_have_one_winner(backend: &dyn Backend) {
    let (log, clock) = fresh_event_log(backend).await;
    let (id, now) = (event_id("evt-contended"), clock.now());
    let claims = race(|| {
        let (log, id) = (Arc::clone(&log), id.clone());
        async move { log.claim(&id, "fp", &ClaimToken::new(), now, LEASE, RETENTION).await.expect("claim") }
    })
    .await;
    assert_eq!(claims.iter().filter(|claim| **claim == Claim::Claimed).count(), 1, "{claims:?}");
    assert_eq!(claims.iter().filter(|claim| **claim == Claim::Busy).count(), RACERS - 1, "{claims:?}");
}

pub async fn concurrent_tag_claims_have_one_winner(backend: &dyn Backend) {
    let (tags, clock) = fresh_tag_directory(backend).await;
    let now = clock.now();
    let claims = race(|| {
        let tags = Arc::clone(&tags);
        async move { tags.claim_creation("[Zoom] [Demo Webinar] Buyer", now, TAG_LEASE).await.expect("claim") }
    })
    .await;
    assert_eq!(claims.iter().filter(|claim| **claim == TagClaim::Claimed).count(), 1, "{claims:?}");
    assert_eq!(claims.iter().filter(|claim| **claim == TagClaim::HeldByOther).count(), RACERS - 1, "{claims:?}");
}

pub async fn concurrent_first_saves_have_one_winner(backend: &dyn Backend) {
    let store = fresh_contact_store(backend).await;
    let saves = race(|| {
        let store = Arc::clone(&store);
        async move { store.save(&record_for("race@example.com"), None).await }
    })
    .await;
    assert_eq!(saves.iter().filter(|save| save.is_ok()).count(), 1, "{saves:?}");
    assert_eq!(saves.iter().filter(|save| is_conflict(save)).count(), RACERS - 1, "{saves:?}");
}

pub async fn concurrent_receives_deliver_each_message_once(backend: &dyn Backend) {
    let (queue, _clock) = fresh_queue(backend, timeless_settings()).await;
    let messages: Vec<_> = (0..RACERS * 2).map(|n| outgoing(&format!("group-{n}"), &format!("m{n}"))).collect();
    send(&*queue, &messages).await;
    let batches = race(|| {
        let queue = Arc::clone(&queue);
        async move { queue.receive(3).await.expect("receive") }
    })
    .await;
    let mut seen = HashSet::new();
    let mut record = |message: QueuedMessage| {
        assert!(seen.insert(message.message_id.clone()), "{} delivered to two receivers", message.body);
    };
    batches.into_iter().flatten().for_each(&mut record);
    // Whatever the racers left is still there, exactly once.
    loop {
        let rest = receive(&*queue, 10).await;
        if rest.is_empty() {
            break;
        }
        rest.into_iter().for_each(&mut record);
    }
    assert_eq!(seen.len(), messages.len(), "every message is delivered exactly once");
}

// ---------------------------------------------------------------------------------------------
// Receipt log (ingest-side identity)

/// Ingest receipts: event id -> first payload's fingerprint, refused reuses counted.
pub async fn receipt_log_suite(backend: &dyn Backend) {
    run_cases!(backend;
        receipt_log_records_a_new_id_and_recognizes_a_redelivery,
        receipt_log_refuses_and_records_a_reuse_with_another_payload,
        receipt_log_forgets_an_id_after_its_retention,
        receipt_log_keeps_scoped_ids_apart,
        receipt_log_has_one_winner_under_concurrent_deliveries,
        receipt_log_lists_refused_reuses_since_a_time,
    );
}

/// The refused webhooks `problems` lists: receipts with a refused reuse at or after `since`,
/// oldest refusal first; accepted-only and expired receipts are left out.
pub async fn receipt_log_lists_refused_reuses_since_a_time(backend: &dyn Backend) {
    let receipts = backend.receipt_log().await;
    let now = ManualClock::start();
    let at = |seconds: i64| now + chrono::Duration::seconds(seconds);
    let short = Duration::from_secs(60);
    for (raw, retention) in [("generic:a:late", RECEIPT_RETENTION), ("generic:a:early", RECEIPT_RETENTION)] {
        receipts.record(&event_id(raw), "fp-1", now, retention).await.expect("record");
    }
    receipts.record(&event_id("generic:a:expiring"), "fp-1", now, short).await.expect("record");
    receipts.record(&event_id("generic:a:fine"), "fp-1", now, RECEIPT_RETENTION).await.expect("record");
    receipts.record(&event_id("generic:a:old"), "fp-1", now, RECEIPT_RETENTION).await.expect("record");
    for (raw, second) in
        [("generic:a:old", 1), ("generic:a:late", 30), ("generic:a:early", 20), ("generic:a:expiring", 25)]
    {
        let receipt = receipts.record(&event_id(raw), "fp-2", at(second), RECEIPT_RETENTION).await.expect("record");
        assert!(matches!(receipt, Receipt::DifferentPayload { .. }), "{raw}: {receipt:?}");
    }
    let refused = receipts.refused_since(at(10), at(90)).await.expect("refused_since");
    let ids: Vec<&str> = refused.iter().map(|record| record.event_id.as_str()).collect();
    assert_eq!(ids, ["generic:a:early", "generic:a:late"], "only refusals since the time, live ones, oldest first");
    assert_eq!(refused[0].last_rejected_fingerprint.as_deref(), Some("fp-2"));
    assert_eq!(refused[0].rejected_reuses, 1);
    assert!(receipts.refused_since(at(31), at(90)).await.expect("refused_since").is_empty());
}

const RECEIPT_RETENTION: Duration = Duration::from_secs(86_400);

pub async fn receipt_log_records_a_new_id_and_recognizes_a_redelivery(backend: &dyn Backend) {
    let receipts = backend.receipt_log().await;
    let now = ManualClock::start();
    let id = event_id("generic:Livestorm:msg_1");
    assert_eq!(receipts.get(&id, now).await.expect("get"), None);
    assert_eq!(receipts.record(&id, "fp-1", now, RECEIPT_RETENTION).await.expect("record"), Receipt::New);
    let later = now + chrono::Duration::seconds(5);
    assert_eq!(receipts.record(&id, "fp-1", later, RECEIPT_RETENTION).await.expect("record"), Receipt::SamePayload);
    let record = receipts.get(&id, later).await.expect("get").expect("a recorded id has a receipt");
    assert_eq!((record.event_id, record.fingerprint.as_str(), record.first_seen), (id, "fp-1", now));
    assert_eq!((record.rejected_reuses, record.last_rejected_at, record.last_rejected_fingerprint), (0, None, None));
    assert!(record.expires_at >= now + chrono::Duration::days(1), "kept for the retention");
}

pub async fn receipt_log_refuses_and_records_a_reuse_with_another_payload(backend: &dyn Backend) {
    let receipts = backend.receipt_log().await;
    let now = ManualClock::start();
    let id = event_id("generic:Livestorm:msg_reused");
    assert_eq!(receipts.record(&id, "fp-registered", now, RECEIPT_RETENTION).await.expect("record"), Receipt::New);
    for (seconds, fingerprint) in [(10, "fp-cancelled"), (20, "fp-attended")] {
        let at = now + chrono::Duration::seconds(seconds);
        assert_eq!(
            receipts.record(&id, fingerprint, at, RECEIPT_RETENTION).await.expect("record"),
            Receipt::DifferentPayload { first_seen: now }
        );
    }
    let record = receipts.get(&id, now + chrono::Duration::seconds(30)).await.expect("get").expect("receipt");
    assert_eq!(record.fingerprint, "fp-registered", "a refused reuse never replaces the first payload");
    assert_eq!(record.rejected_reuses, 2, "every refused reuse is recorded");
    assert_eq!(record.last_rejected_at, Some(now + chrono::Duration::seconds(20)));
    assert_eq!(record.last_rejected_fingerprint.as_deref(), Some("fp-attended"));
    let at = now + chrono::Duration::seconds(40);
    assert_eq!(
        receipts.record(&id, "fp-registered", at, RECEIPT_RETENTION).await.expect("record"),
        Receipt::SamePayload,
        "the original payload is still a redelivery"
    );
}

pub async fn receipt_log_forgets_an_id_after_its_retention(backend: &dyn Backend) {
    let receipts = backend.receipt_log().await;
    let now = ManualClock::start();
    let id = event_id("generic:Livestorm:msg_old");
    assert_eq!(receipts.record(&id, "fp-old", now, RECEIPT_RETENTION).await.expect("record"), Receipt::New);
    let after = now + chrono::Duration::days(1) + chrono::Duration::seconds(1);
    assert_eq!(receipts.get(&id, after).await.expect("get"), None, "an expired receipt behaves as absent");
    assert_eq!(receipts.record(&id, "fp-new", after, RECEIPT_RETENTION).await.expect("record"), Receipt::New);
    let record = receipts.get(&id, after).await.expect("get").expect("receipt");
    assert_eq!((record.fingerprint.as_str(), record.first_seen, record.rejected_reuses), ("fp-new", after, 0));
}

pub async fn receipt_log_keeps_scoped_ids_apart(backend: &dyn Backend) {
    let receipts = backend.receipt_log().await;
    let now = ManualClock::start();
    for tool in ["toola", "toolb"] {
        let id = event_id(&format!("generic:{tool}:msg_shared"));
        assert_eq!(receipts.record(&id, tool, now, RECEIPT_RETENTION).await.expect("record"), Receipt::New, "{tool}");
    }
}

pub async fn receipt_log_has_one_winner_under_concurrent_deliveries(backend: &dyn Backend) {
    let receipts = backend.receipt_log().await;
    let now = ManualClock::start();
    let id = event_id("generic:Livestorm:msg_raced");
    let tasks: Vec<_> = (0..6)
        .map(|n| {
            let (receipts, id) = (Arc::clone(&receipts), id.clone());
            tokio::spawn(async move { receipts.record(&id, &format!("fp-{n}"), now, RECEIPT_RETENTION).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("task").expect("record"));
    }
    let new = outcomes.iter().filter(|receipt| **receipt == Receipt::New).count();
    assert_eq!(new, 1, "exactly one delivery wins: {outcomes:?}");
    assert!(outcomes.iter().all(|receipt| matches!(receipt, Receipt::New | Receipt::DifferentPayload { .. })));
    let record = receipts.get(&id, now).await.expect("get").expect("receipt");
    assert_eq!(record.rejected_reuses, 5, "each loser's refused reuse is counted");
}

// ---------------------------------------------------------------------------------------------
// History log

/// History: per contact in time order, problems across contacts, retention, erasure.
pub async fn history_log_suite(backend: &dyn Backend) {
    run_cases!(backend;
        history_log_returns_a_contacts_steps_in_time_order,
        history_log_lists_problems_since_a_time,
        history_log_forgets_expired_entries_and_erased_contacts,
    );
}

fn history_event(email: &str, id: &str, at: DateTime<Utc>) -> WebinarEvent {
    let mut event = webinar_event(email, id, EventKind::Registered);
    event.received_at = at;
    event.occurred_at = at;
    event
}

fn webinar_event(email: &str, id: &str, kind: EventKind) -> WebinarEvent {
    WebinarEvent {
        schema: webinar_bridge::domain::EVENT_SCHEMA_VERSION,
        event_id: EventId::from_sender(id).expect("valid id"),
        source: Source::Zoom,
        kind,
        occurred_at: ManualClock::start(),
        received_at: ManualClock::start(),
        contact: ContactInfo::new(Email::parse(email).expect("valid e-mail")),
        webinar: WebinarInfo::new("w1"),
        facts: Facts::default(),
    }
}

pub async fn history_log_returns_a_contacts_steps_in_time_order(backend: &dyn Backend) {
    let Some(log) = backend.history_log().await else { return eprintln!("  (no history log: skipped)") };
    let t0 = ManualClock::start();
    let retention = Duration::from_secs(86_400);
    let ana = Email::parse("ana@example.com").expect("valid");
    let first = history_event("ana@example.com", "h1", t0);
    let second = history_event("ana@example.com", "h2", t0 + chrono::Duration::seconds(5));
    let other = history_event("bob@example.com", "h3", t0 + chrono::Duration::seconds(1));
    // Appended out of time order: the log answers in time order.
    log.append(&HistoryEntry::received(&second), retention).await.expect("append");
    log.append(&HistoryEntry::received(&first), retention).await.expect("append");
    log.append(&HistoryEntry::received(&other), retention).await.expect("append");
    let applied =
        HistoryEntry::outcome(&ana, &first.event_id, t0 + chrono::Duration::seconds(2), HistoryOutcome::Applied);
    log.append(&applied, retention).await.expect("append");

    let entries = log.for_contact(&ana.group_hash(), t0).await.expect("for_contact");
    let ids: Vec<(&str, bool)> =
        entries.iter().map(|entry| (entry.event_id.as_str(), matches!(entry.step, HistoryStep::Received(_)))).collect();
    assert_eq!(ids, [("h1", true), ("h1", false), ("h2", true)]);
    assert_eq!(entries[0], HistoryEntry::received(&first), "an entry reads back exactly as written");
    assert_eq!(entries[1], applied);
    assert!(entries.iter().all(|entry| entry.contact == ana.group_hash()));
    assert!(log.for_contact("nobody", t0).await.expect("for_contact").is_empty());
}

pub async fn history_log_lists_problems_since_a_time(backend: &dyn Backend) {
    let Some(log) = backend.history_log().await else { return eprintln!("  (no history log: skipped)") };
    let t0 = ManualClock::start();
    let retention = Duration::from_secs(86_400);
    let ana = Email::parse("ana@example.com").expect("valid");
    let id = |raw: &str| EventId::from_sender(raw).expect("valid id");
    let rejected = HistoryOutcome::Rejected(RejectionReason {
        operation: "subscriber.signin".into(),
        status: Some(406),
        error_number: Some(8),
        field: Some("fieldWebinar".into()),
        reason: "must be a numeric value".into(),
    });
    let steps = [
        (0, "p1", HistoryOutcome::DeadLettered { reason: "unreadable".into() }),
        (10, "p2", HistoryOutcome::Applied),
        (20, "p3", rejected.clone()),
        (30, "p4", HistoryOutcome::Duplicate),
        (
            40,
            "p5",
            HistoryOutcome::FieldProblem { field: "fieldCity".into(), error_number: Some(8), reason: "bad".into() },
        ),
    ];
    for (second, raw, outcome) in steps {
        let entry = HistoryEntry::outcome(&ana, &id(raw), t0 + chrono::Duration::seconds(second), outcome);
        log.append(&entry, retention).await.expect("append");
    }
    let problems = log.problems_since(t0 + chrono::Duration::seconds(5), t0).await.expect("problems");
    let ids: Vec<&str> = problems.iter().map(|entry| entry.event_id.as_str()).collect();
    assert_eq!(ids, ["p3", "p5"], "only problems, only since the given time, oldest first");
    assert_eq!(problems[0].step, HistoryStep::Outcome(rejected));
}

pub async fn history_log_forgets_expired_entries_and_erased_contacts(backend: &dyn Backend) {
    let Some(log) = backend.history_log().await else { return eprintln!("  (no history log: skipped)") };
    let t0 = ManualClock::start();
    let ana = Email::parse("ana@example.com").expect("valid");
    let bob = Email::parse("bob@example.com").expect("valid");
    let short = Duration::from_secs(60);
    log.append(&HistoryEntry::received(&history_event("ana@example.com", "f1", t0)), short).await.expect("append");
    log.append(&HistoryEntry::received(&history_event("ana@example.com", "f2", t0)), Duration::from_secs(3_600))
        .await
        .expect("append");
    log.append(&HistoryEntry::received(&history_event("bob@example.com", "f3", t0)), short).await.expect("append");

    let later = t0 + chrono::Duration::seconds(120);
    let left = log.for_contact(&ana.group_hash(), later).await.expect("for_contact");
    assert_eq!(
        left.iter().map(|entry| entry.event_id.as_str()).collect::<Vec<_>>(),
        ["f2"],
        "expired entries are gone"
    );

    assert_eq!(log.forget_contact(&ana.group_hash()).await.expect("forget"), 2);
    assert!(log.for_contact(&ana.group_hash(), t0).await.expect("for_contact").is_empty());
    assert_eq!(log.for_contact(&bob.group_hash(), t0).await.expect("for_contact").len(), 1, "others are kept");
}

// ---------------------------------------------------------------------------------------------
// Zoom ledger (ended occurrences, registrant ids, kept participants)

/// The Zoom ledger's contract, run on memory, SQLite and DynamoDB (moto) alike: ended occurrences
/// are found by end time (a repeat replaces, an expired one is gone), registrant ids resolve to
/// their e-mail until they expire, and kept participant events are taken exactly once, in order,
/// up to the cap.
pub async fn zoom_ledger_suite(ledger: &dyn webinar_bridge::platforms::zoom_ledger::ZoomLedger) {
    use webinar_bridge::platforms::zoom_ledger::{
        EndedOccurrence, KeptParticipant, KeptSummary, MAX_KEPT_PER_REGISTRANT,
    };
    let now = ManualClock::start();
    let retention = Duration::from_secs(30 * 86_400);
    let ended = |uuid: &str, hours_ago: i64| EndedOccurrence {
        webinar_id: "85012345678".into(),
        uuid: uuid.into(),
        occurrence_id: Some("1768496400000".into()),
        topic: Some("Demo Webinar".into()),
        start_time: Some(now - chrono::Duration::hours(hours_ago + 1)),
        duration_minutes: Some(60),
        timezone: Some("Europe/Berlin".into()),
        ended_at: now - chrono::Duration::hours(hours_ago),
    };
    let (recent, older, long_ago) = (ended("recent==", 3), ended("older//x==", 30), ended("old==", 24 * 10));
    for occurrence in [&recent, &older, &long_ago] {
        ledger.record_ended(occurrence, retention).await.expect("record ended");
    }
    ledger.record_ended(&recent, retention).await.expect("a repeat replaces");
    let week = now - chrono::Duration::days(7);
    assert_eq!(ledger.ended_since(week, now).await.expect("ended since"), [older.clone(), recent.clone()]);
    let short = EndedOccurrence { uuid: "short==".into(), ..ended("short==", 2) };
    ledger.record_ended(&short, Duration::from_secs(3600)).await.expect("record ended");
    let listed = ledger.ended_since(week, now).await.expect("ended since");
    assert_eq!(listed, [older, recent], "an ended occurrence past its retention is gone");

    let erika = Email::parse("erika@example.com").expect("an address");
    assert_eq!(ledger.registrant_email("reg_1", now).await.expect("read"), None);
    ledger.record_registrant("reg_1", &erika, now, retention).await.expect("record registrant");
    assert_eq!(ledger.registrant_email("reg_1", now).await.expect("read"), Some(erika.clone()));
    let later = now + chrono::Duration::days(31);
    assert_eq!(ledger.registrant_email("reg_1", later).await.expect("read"), None, "expired");

    let kept = |n: i64| KeptParticipant {
        body: format!(r#"{{"event":"webinar.participant_joined","n":{n}}}"#),
        received_at: now + chrono::Duration::seconds(n),
    };
    assert!(ledger.take_unmatched("reg_2", now).await.expect("take").is_empty());
    for n in 0..3 {
        assert!(ledger.keep_unmatched("reg_2", &kept(n), retention).await.expect("keep"));
    }
    assert!(ledger.keep_unmatched("reg_4", &kept(-5), retention).await.expect("keep"));
    // `problems` reads a summary per registrant id: how many, since when, oldest first.
    let summary = |registrant_id: &str, count: usize, oldest: i64| KeptSummary {
        registrant_id: registrant_id.into(),
        count,
        oldest: now + chrono::Duration::seconds(oldest),
    };
    assert_eq!(ledger.kept_summary(now).await.expect("summary"), [summary("reg_4", 1, -5), summary("reg_2", 3, 0)]);
    assert!(ledger.kept_summary(later).await.expect("summary").is_empty(), "expired with the retention");
    assert_eq!(ledger.take_unmatched("reg_2", now).await.expect("take"), [kept(0), kept(1), kept(2)]);
    assert!(ledger.take_unmatched("reg_2", now).await.expect("take").is_empty(), "taken once");
    assert_eq!(ledger.kept_summary(now).await.expect("summary"), [summary("reg_4", 1, -5)], "taken: not listed");
    assert_eq!(ledger.take_unmatched("reg_4", now).await.expect("take").len(), 1);
    for n in 0..i64::try_from(MAX_KEPT_PER_REGISTRANT).expect("small") {
        assert!(ledger.keep_unmatched("reg_3", &kept(n), retention).await.expect("keep"));
    }
    assert!(!ledger.keep_unmatched("reg_3", &kept(999), retention).await.expect("keep"), "capped");
    assert_eq!(
        ledger.kept_summary(now).await.expect("summary"),
        [summary("reg_3", MAX_KEPT_PER_REGISTRANT, 0)],
        "the capped event is not counted"
    );
    assert_eq!(ledger.take_unmatched("reg_3", now).await.expect("take").len(), MAX_KEPT_PER_REGISTRANT);
    assert!(ledger.kept_summary(now).await.expect("summary").is_empty());

    // `forget`: every registrant id of the address goes (an expired one too), another's stays.
    let max = Email::parse("max@example.com").expect("an address");
    ledger.record_registrant("reg_5", &erika, now, retention).await.expect("record registrant");
    ledger.record_registrant("reg_6", &max, now, retention).await.expect("record registrant");
    ledger.record_registrant("reg_7", &erika, now - chrono::Duration::days(40), retention).await.expect("record");
    assert_eq!(ledger.forget_email(&erika).await.expect("forget"), 3, "reg_1, reg_5 and the expired reg_7");
    for registrant_id in ["reg_1", "reg_5"] {
        assert_eq!(ledger.registrant_email(registrant_id, now).await.expect("read"), None, "{registrant_id} forgotten");
    }
    assert_eq!(ledger.registrant_email("reg_6", now).await.expect("read"), Some(max.clone()), "another's stays");
    assert_eq!(ledger.forget_email(&erika).await.expect("forget again"), 0, "nothing left to forget");
    assert_eq!(ledger.forget_email(&max).await.expect("forget"), 1);
}

// ---------------------------------------------------------------------------------------------
// Per-webinar settings

/// Per-webinar settings: entries round-trip, replace and remove; the `*` default applies; seen
/// webinars are remembered.
pub async fn webinar_settings_suite(backend: &dyn Backend) {
    run_cases!(backend;
        webinar_settings_round_trip_replace_and_remove,
        webinar_settings_remember_seen_webinars,
    );
}

pub async fn webinar_settings_round_trip_replace_and_remove(backend: &dyn Backend) {
    let Some(store) = backend.webinar_settings().await else { return eprintln!("  (no settings store: skipped)") };
    assert!(store.all().await.expect("all").is_empty(), "a fresh store is empty");
    let mut global = WebinarSetting::new("*", "*");
    global.include = Some(false);
    global.listid = Some(11);
    let mut demo = WebinarSetting::new("zoom", "811");
    demo.include = Some(true);
    demo.tags.insert(StateLabel::Registered, MappedTag { id: 42, name: "VIP angemeldet".into() });
    demo.tags.insert(StateLabel::DidNotAttend, MappedTag { id: 43, name: "VIP verpasst".into() });
    store.put(&global).await.expect("put *");
    store.put(&demo).await.expect("put demo");
    let all = store.all().await.expect("all");
    assert_eq!(all.entries().cloned().collect::<Vec<_>>(), [global.clone(), demo.clone()]);
    let effective = all.effective("zoom", "811", None);
    assert!(effective.included);
    assert_eq!(effective.listid, Some(11), "inherited from *");
    assert_eq!(effective.tags.get(&StateLabel::DidNotAttend).map(|tag| tag.id), Some(43));
    assert!(!all.effective("zoom", "812", None).included, "excluded by *");

    demo.listid = Some(12);
    demo.tags.remove(&StateLabel::DidNotAttend);
    store.put(&demo).await.expect("replace demo");
    let effective = store.all().await.expect("all").effective("zoom", "811", None);
    assert_eq!(effective.listid, Some(12));
    assert_eq!(effective.tags.len(), 1, "the replaced entry, not a merge");

    assert!(store.remove("zoom", "811").await.expect("remove"));
    assert!(!store.remove("zoom", "811").await.expect("remove again"));
    assert_eq!(store.all().await.expect("all").entries().count(), 1);
}

pub async fn webinar_settings_remember_seen_webinars(backend: &dyn Backend) {
    let Some(store) = backend.webinar_settings().await else { return eprintln!("  (no settings store: skipped)") };
    let at = ManualClock::start();
    assert!(!store.is_seen("zoom#811").await.expect("is_seen"));
    store.mark_seen("zoom#811", at).await.expect("mark");
    store.mark_seen("zoom#811", at).await.expect("mark again is harmless");
    assert!(store.is_seen("zoom#811").await.expect("is_seen"));
    assert!(!store.is_seen("zoom#812").await.expect("another webinar"));
    assert!(!store.is_seen("zoom#811#2026-01-15").await.expect("another session"));
}

// ---------------------------------------------------------------------------------------------
// Dead letters (list, redrive, erase)

fn event_body(event_id: &str) -> String {
    format!("{{\"event_id\":\"{event_id}\"}}")
}

/// DESIGN 12: dead letters are listed without being consumed, moved back one by one (by message
/// or event id) or all together, and erased with their contact's group. The embedded stores put
/// a redriven message back at its place in its group; SQS appends it to the group.
pub async fn dead_letters_list_redrive_and_erase(backend: &dyn Backend) {
    eprintln!("port suite case: dead_letters_list_redrive_and_erase");
    let clock = ManualClock::new(ManualClock::start());
    let Some((queue, dead)) = backend.queue_with_dead_letters(timeless_settings(), clock.shared()).await else {
        eprintln!("  (skipped: no dead-letter port)");
        return;
    };
    let queue = &*queue;
    send(
        queue,
        &[outgoing("a", &event_body("e-a1")), outgoing("a", &event_body("e-a2")), outgoing("b", &event_body("e-b1"))],
    )
    .await;
    let a1 = receive_one(queue).await;
    assert_eq!(a1.body, event_body("e-a1"));
    queue.dead_letter(&a1, "unreadable a1").await.expect("dead_letter a1");
    let mut rest = receive_some(queue, 10).await;
    while rest.len() < 2 {
        rest.extend(receive_some(queue, 10).await);
    }
    let b1 = rest.iter().find(|message| message.body == event_body("e-b1")).expect("b1 delivered").clone();
    let a2 = rest.iter().find(|message| message.body == event_body("e-a2")).expect("a2 delivered").clone();
    queue.dead_letter(&b1, "unreadable b1").await.expect("dead_letter b1");
    queue.retry_later(&a2, Duration::ZERO).await.expect("a2 back to the queue");

    // Listing leaves them where they are.
    for _ in 0..2 {
        let mut listed: Vec<(String, Option<String>)> = dead
            .list(10)
            .await
            .expect("list")
            .into_iter()
            .map(|letter| (letter.event_id().unwrap_or_default(), letter.reason))
            .collect();
        listed.sort();
        assert_eq!(
            listed,
            [
                ("e-a1".to_owned(), Some("unreadable a1".to_owned())),
                ("e-b1".to_owned(), Some("unreadable b1".to_owned()))
            ]
        );
    }
    assert_eq!(dead.list(1).await.expect("list 1").len(), 1, "the limit holds");

    // One by message id: it comes back with a fresh receive count, in its group.
    let listed = dead.list(10).await.expect("list");
    let a1_letter = listed.iter().find(|letter| letter.event_id().as_deref() == Some("e-a1")).expect("a1 listed");
    let redriven = dead.redrive(&RedriveSelection::Message(a1_letter.message_id.clone())).await.expect("redrive a1");
    assert_eq!(redriven.moved.len(), 1);
    assert_eq!(redriven.moved[0].body, event_body("e-a1"));
    let mut group_a = receive_some(queue, 10).await;
    while group_a.len() < 2 {
        group_a.extend(receive_some(queue, 10).await);
    }
    let got: Vec<&str> = bodies(&group_a);
    if redriven.method == RedriveMethod::InPlace {
        assert_eq!(got, [event_body("e-a1"), event_body("e-a2")], "back at its place in its group");
    } else {
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, [event_body("e-a1"), event_body("e-a2")]);
    }
    assert!(group_a.iter().all(|message| message.receive_count == 1 || message.body == event_body("e-a2")));
    for message in &group_a {
        queue.ack(message).await.expect("ack");
    }

    // One by event id.
    let redriven = dead.redrive(&RedriveSelection::Event("e-b1".into())).await.expect("redrive b1");
    assert_eq!(redriven.moved.len(), 1);
    assert!(dead.list(10).await.expect("list").is_empty());
    let b1_again = receive_one(queue).await;
    assert_eq!(b1_again.body, event_body("e-b1"));
    queue.ack(&b1_again).await.expect("ack");
    let nothing = dead.redrive(&RedriveSelection::Event("e-unknown".into())).await.expect("redrive unknown");
    assert!(nothing.moved.is_empty());

    // All of them.
    send(queue, &[outgoing("c", &event_body("e-c1"))]).await;
    let c1 = receive_one(queue).await;
    queue.dead_letter(&c1, "unreadable c1").await.expect("dead_letter c1");
    let all = dead.redrive(&RedriveSelection::All).await.expect("redrive all");
    assert_eq!(all.moved.len(), 1, "{all:?}");
    if all.method == RedriveMethod::Resend {
        assert!(all.note.is_some(), "the fallback says why the move task did not run");
    }
    let c1_again = receive_one(queue).await;
    assert_eq!(c1_again.body, event_body("e-c1"));
    queue.ack(&c1_again).await.expect("ack");

    // Erasure takes a group's queued messages and dead letters, and nothing else.
    send(
        queue,
        &[outgoing("d", &event_body("e-d1")), outgoing("d", &event_body("e-d2")), outgoing("e", &event_body("e-e1"))],
    )
    .await;
    let d1 = receive_one(queue).await;
    assert_eq!(d1.body, event_body("e-d1"));
    queue.dead_letter(&d1, "unreadable d1").await.expect("dead_letter d1");
    assert_eq!(dead.erase_group("d").await.expect("erase_group"), 2);
    assert!(dead.list(10).await.expect("list").is_empty());
    let left = receive_some(queue, 10).await;
    assert_eq!(bodies(&left), [event_body("e-e1")]);
    queue.ack(&left[0]).await.expect("ack");
    assert_eq!(pending(queue).await, 0);
}

// ---------------------------------------------------------------------------------------------
// Parked webhooks

pub async fn parked_webhooks_suite(backend: &dyn Backend) {
    run_cases!(backend;
        parked_webhooks_keep_a_body_byte_for_byte_until_removed,
        parked_webhooks_refuse_a_new_body_when_full_and_keep_the_old_ones,
        parked_webhooks_expire_with_the_retention,
    );
}

const PARK_RETENTION: Duration = Duration::from_secs(86_400);

/// A parked body of `size` bytes received at `at`; `n` makes the id and body distinct.
pub fn parked_body(n: u32, at: DateTime<Utc>, size: usize) -> ParkedWebhook {
    let mut body = format!("{{\"e_mail\":\"p{n}@example.com\",\"webinar_id\":\"w\"}}").into_bytes();
    body.resize(size.max(body.len()), b' ');
    ParkedWebhook {
        id: ParkedWebhook::new_id(at + chrono::Duration::microseconds(i64::from(n))),
        source: "webinarjam".into(),
        path: "/hooks/webinarjam/registered".into(),
        query: n.is_multiple_of(2).then(|| "label=Clicked%20Offer".into()),
        content_type: Some("application/json".into()),
        body,
        received_at: at,
        reason: "The body has no e-mail address.".into(),
        updated_at: at,
        expires_at: at + chrono::Duration::from_std(PARK_RETENTION).unwrap_or_default(),
    }
}

pub async fn parked_webhooks_keep_a_body_byte_for_byte_until_removed(backend: &dyn Backend) {
    let Some(store) = backend.parked_webhooks().await else { return };
    let now = ManualClock::start();
    let cap = ParkCap::default();
    let mut first = parked_body(1, now, 0);
    first.body.extend_from_slice(&[0xFF, 0x00, b'\n']);
    let second = parked_body(2, now + chrono::Duration::seconds(1), 300);
    assert_eq!(store.park(&second, cap, now).await.expect("park"), ParkOutcome::Parked);
    assert_eq!(store.park(&first, cap, now).await.expect("park"), ParkOutcome::Parked);
    let later = now + chrono::Duration::seconds(5);
    assert_eq!(store.list(later).await.expect("list"), vec![first.clone(), second.clone()], "oldest first, as stored");
    assert_eq!(store.get(&second.id, later).await.expect("get"), Some(second.clone()));
    assert_eq!(store.get("nope", later).await.expect("get"), None);

    assert!(store.set_reason(&first.id, "Still no e-mail.", later).await.expect("set_reason"));
    let updated = store.get(&first.id, later).await.expect("get").expect("still parked");
    assert_eq!((updated.reason.as_str(), updated.updated_at, &updated.body), ("Still no e-mail.", later, &first.body));
    assert!(!store.set_reason("nope", "x", later).await.expect("set_reason of a missing id"));

    assert!(store.remove(&first.id).await.expect("remove"));
    assert!(!store.remove(&first.id).await.expect("remove again"));
    assert_eq!(store.list(later).await.expect("list"), vec![second]);
}

pub async fn parked_webhooks_refuse_a_new_body_when_full_and_keep_the_old_ones(backend: &dyn Backend) {
    let Some(store) = backend.parked_webhooks().await else { return };
    let now = ManualClock::start();
    let by_count = ParkCap { max_count: 2, max_bytes: 1_000_000 };
    let bodies: Vec<_> = (1..=3).map(|n| parked_body(n, now, 100)).collect();
    assert_eq!(store.park(&bodies[0], by_count, now).await.expect("park"), ParkOutcome::Parked);
    assert_eq!(store.park(&bodies[1], by_count, now).await.expect("park"), ParkOutcome::Parked);
    assert_eq!(
        store.park(&bodies[2], by_count, now).await.expect("park"),
        ParkOutcome::Full { count: 2, bytes: 200 },
        "a third body is refused, never an older one dropped"
    );
    let ids: Vec<_> = store.list(now).await.expect("list").into_iter().map(|parked| parked.id).collect();
    assert_eq!(ids, vec![bodies[0].id.clone(), bodies[1].id.clone()]);

    let by_bytes = ParkCap { max_count: 100, max_bytes: 250 };
    assert_eq!(store.park(&bodies[2], by_bytes, now).await.expect("park"), ParkOutcome::Full { count: 2, bytes: 200 });
    // Room again once one is reprocessed.
    assert!(store.remove(&bodies[0].id).await.expect("remove"));
    assert_eq!(store.park(&bodies[2], by_count, now).await.expect("park"), ParkOutcome::Parked);
    assert_eq!(store.list(now).await.expect("list").len(), 2);
}

pub async fn parked_webhooks_expire_with_the_retention(backend: &dyn Backend) {
    let Some(store) = backend.parked_webhooks().await else { return };
    let now = ManualClock::start();
    let cap = ParkCap { max_count: 1, max_bytes: 1_000_000 };
    let old = parked_body(1, now, 10);
    assert_eq!(store.park(&old, cap, now).await.expect("park"), ParkOutcome::Parked);
    let expired = old.expires_at + chrono::Duration::seconds(1);
    assert_eq!(store.list(expired).await.expect("list"), Vec::new(), "gone after the retention");
    assert_eq!(store.get(&old.id, expired).await.expect("get"), None);
    // An expired body no longer counts against the cap.
    let new = parked_body(2, expired, 10);
    assert_eq!(store.park(&new, cap, expired).await.expect("park"), ParkOutcome::Parked);
    assert_eq!(store.list(expired).await.expect("list"), vec![new]);
}
