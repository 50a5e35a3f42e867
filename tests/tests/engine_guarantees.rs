//! Issue 11's engine guarantees, in-process against the KlickTipp simulator over real HTTP:
//! - the deadline rules every wait: under a 3-hour outage that answers every call with 429 and
//!   `Retry-After: 30`, every 60 s invocation returns in time and nothing reaches the dead letters;
//! - nothing is deleted unread: an undecodable queue message ends in the dead letters, byte for
//!   byte, with its reason (memory and SQLite here; moto in `ports_aws` and `aws_handlers`);
//! - crash recovery converges: a crash after an untag, before the state write, does not leave a
//!   contact that registers again without its tag (memory, SQLite, DynamoDB on moto).

use chrono::{DateTime, Utc};
use klicktipp_sim::Knobs;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use webinar_bridge::adapters::dynamodb::{DynamoContactStore, DynamoEventLog, DynamoTagDirectory};
use webinar_bridge::adapters::memory::{
    DeadLetter, MemoryContactStore, MemoryEventLog, MemoryQueue, MemoryTagDirectory, QueueSettings,
};
use webinar_bridge::adapters::sqlite::{SqliteContactStore, SqliteDb, SqliteEventLog, SqliteQueue, SqliteTagDirectory};
use webinar_bridge::consume::{Consumer, ConsumerOptions, CrashPoint, Disposition, MAX_RECEIVE_COUNT, MessageResult};
use webinar_bridge::domain::{
    ContactInfo, Email, EventId, EventKind, Facts, Settings, Source, WebinarEvent, WebinarInfo,
};
use webinar_bridge::ingest::to_message;
use webinar_bridge::ports::{
    Clock, ContactStore, EventLog, EventQueue, EventStatus, FinalOutcome, OutgoingMessage, QueuedMessage, TagDirectory,
};
use webinar_bridge::tag_resolver::TagResolver;
use webinar_bridge::worker::{self, BatchSummary};
use webinar_bridge_tests::harness;
use webinar_bridge_tests::moto::Moto;
use webinar_bridge_tests::port_suite::ManualClock;

/// The consumer Lambda's timeout (template.yaml) and the margin it keeps back.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(60);
const SAFETY_MARGIN: Duration = Duration::from_secs(5);

/// Wall-clock time that follows tokio's (paused) clock, so leases, visibility and retry delays
/// all run on the same simulated time.
struct TokioClock {
    started_utc: DateTime<Utc>,
    started: Instant,
}

impl TokioClock {
    fn new() -> Arc<Self> {
        Arc::new(Self { started_utc: Utc::now(), started: Instant::now() })
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.started.elapsed()).unwrap_or_default();
        self.started_utc + elapsed
    }
}

fn registration(address: &str) -> WebinarEvent {
    let source = Source::Generic { tool: "Livestorm".into() };
    let mut webinar = WebinarInfo::new("w1");
    webinar.name = Some("Spring Launch".into());
    WebinarEvent {
        schema: webinar_bridge::domain::EVENT_SCHEMA_VERSION,
        event_id: EventId::hashed(&source, &[address.as_bytes()]),
        source,
        kind: EventKind::Registered,
        occurred_at: "2026-03-01T10:00:00Z".parse().expect("a time"),
        received_at: "2026-03-01T10:00:01Z".parse().expect("a time"),
        contact: ContactInfo::new(Email::parse(address).expect("an address")),
        webinar,
        facts: Facts::default(),
    }
}

struct Ports {
    log: Arc<dyn EventLog>,
    contacts: Arc<dyn ContactStore>,
    tags: Arc<dyn TagDirectory>,
}

fn consumer(ports: &Ports, simulator: &klicktipp_sim::Simulator, clock: Arc<dyn Clock>) -> Consumer {
    let client = harness::simulator_client(simulator);
    let resolver = TagResolver::new(Arc::clone(&ports.tags), client.clone(), Arc::clone(&clock));
    Consumer::new(
        Arc::clone(&ports.log),
        Arc::clone(&ports.contacts),
        resolver,
        client,
        Settings::default(),
        ConsumerOptions::default(),
        clock,
    )
}

// ---------------------------------------------------------------------------------------------
// The deadline rules every wait

#[tokio::test(start_paused = true)]
async fn a_three_hour_outage_answering_429_retry_after_30_loses_nothing() {
    let simulator = harness::start_simulator().await;
    let outage = Knobs { fault_rate_429: 1.0, retry_after: true, retry_after_seconds: 30, ..Knobs::default() };
    simulator.set_knobs(outage);
    let clock = TokioClock::new();
    let settings = QueueSettings {
        visibility_timeout: Duration::from_secs(360),
        max_receive_count: MAX_RECEIVE_COUNT,
        ..QueueSettings::default()
    };
    let queue = MemoryQueue::with_clock(settings, clock.clone());
    let ports = Ports {
        log: Arc::new(MemoryEventLog::default()),
        contacts: Arc::new(MemoryContactStore::default()),
        tags: Arc::new(MemoryTagDirectory::default()),
    };
    let consumer = consumer(&ports, &simulator, clock.clone());
    let addresses: Vec<String> = (0..14).map(|n| format!("outage-{n}@example.com")).collect();
    let messages: Vec<OutgoingMessage> =
        addresses.iter().map(|address| to_message(&registration(address)).expect("a message")).collect();
    queue.send(&messages).await.expect("send");

    let start = Instant::now();
    let outage_length = Duration::from_secs(3 * 3600);
    let (mut outage_over, mut invocations, mut longest) = (false, 0u32, Duration::ZERO);
    let mut total = BatchSummary::default();
    loop {
        if !outage_over && start.elapsed() >= outage_length {
            simulator.set_knobs(Knobs::default());
            outage_over = true;
        }
        let invoked = Instant::now();
        let deadline = invoked + INVOCATION_TIMEOUT - SAFETY_MARGIN;
        let summary = worker::process_one_batch_before(&queue, &consumer, Some(deadline)).await.expect("queue");
        let took = invoked.elapsed();
        assert!(took <= INVOCATION_TIMEOUT - SAFETY_MARGIN, "invocation {invocations} ran {took:?}, past its deadline");
        if summary.received > 0 {
            invocations += 1;
            longest = longest.max(took);
            total.add(&summary);
            continue;
        }
        if outage_over && queue.pending() == 0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(12 * 3600), "still not drained after 12 simulated hours");
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    let dead: Vec<DeadLetter> = queue.dead_letters();
    assert!(dead.is_empty(), "{} messages reached the dead letters", dead.len());
    assert_eq!(total.applied, addresses.len(), "{total:?}");
    assert_eq!(total.unreadable + total.rejected, 0, "{total:?}");
    assert!(total.retried >= addresses.len() * 10, "the outage was ridden out by retries: {total:?}");
    assert!(longest >= Duration::from_secs(30), "a Retry-After of 30 s fits into an invocation and is waited out");
    let tagged: BTreeSet<String> = harness::tags_by_email(&simulator)
        .into_iter()
        .filter(|(_, tags)| !tags.is_empty())
        .map(|(email, _)| email)
        .collect();
    assert_eq!(tagged, addresses.iter().cloned().collect::<BTreeSet<_>>(), "every contact got its tag");
    eprintln!(
        "outage: {invocations} invocations, drained {:?} after the start, longest invocation {longest:?}",
        start.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Nothing is deleted unread

/// A corrupt body, a schema version from a newer ingest, an unknown kind from a newer ingest.
fn unreadable_messages() -> Vec<(OutgoingMessage, &'static str)> {
    let mut newer_schema = serde_json::to_value(registration("newer@example.com")).expect("a document");
    newer_schema["schema"] = serde_json::json!(2);
    let mut newer_kind = serde_json::to_value(registration("kind@example.com")).expect("a document");
    newer_kind["kind"] = serde_json::json!("bought_the_replay_bundle");
    let message = |group: &str, body: String| OutgoingMessage {
        group_id: group.to_owned(),
        dedup_id: format!("dedup-{group}"),
        body,
    };
    vec![
        (message("corrupt", "{\"event_id\": \"abc\", trunc".to_owned()), "corrupt body"),
        (message("schema", newer_schema.to_string()), "unknown schema version 2"),
        (message("kind", newer_kind.to_string()), "not an event this consumer can read"),
    ]
}

async fn check_dead_letters(dead: &[DeadLetter], sent: &[(OutgoingMessage, &str)]) {
    assert_eq!(dead.len(), sent.len(), "{dead:?}");
    for (message, reason) in sent {
        let letter = dead.iter().find(|letter| letter.group_id == message.group_id).expect("dead-lettered");
        assert_eq!(letter.body, message.body, "kept byte for byte");
        let recorded = letter.reason.as_deref().unwrap_or_default();
        assert!(recorded.starts_with(reason), "{recorded:?} should start with {reason:?}");
    }
}

#[tokio::test]
async fn an_undecodable_message_ends_in_the_dead_letters_with_its_reason() {
    let simulator = harness::start_simulator().await;
    let sent = unreadable_messages();
    let readable = to_message(&registration("fine@example.com")).expect("a message");
    let outgoing: Vec<OutgoingMessage> =
        sent.iter().map(|(message, _)| message.clone()).chain([readable.clone()]).collect();
    let clock: Arc<dyn Clock> = Arc::new(webinar_bridge::ports::SystemClock);

    let memory = MemoryQueue::new(QueueSettings::default());
    let ports = Ports {
        log: Arc::new(MemoryEventLog::default()),
        contacts: Arc::new(MemoryContactStore::default()),
        tags: Arc::new(MemoryTagDirectory::default()),
    };
    let memory_consumer = consumer(&ports, &simulator, Arc::clone(&clock));
    memory.send(&outgoing).await.expect("send");
    let summary = worker::process_one_batch(&memory, &memory_consumer).await.expect("a batch");
    assert_eq!((summary.unreadable, summary.applied), (3, 1), "{summary:?}");
    assert_eq!(memory.pending(), 0, "nothing left in flight");
    check_dead_letters(&memory.dead_letters(), &sent).await;

    let db = SqliteDb::open_in_memory().expect("a database");
    let sqlite = SqliteQueue::new(db.clone(), QueueSettings::default());
    let ports = Ports {
        log: Arc::new(SqliteEventLog::new(db.clone())),
        contacts: Arc::new(SqliteContactStore::new(db.clone())),
        tags: Arc::new(SqliteTagDirectory::new(db.clone())),
    };
    let sqlite_consumer = consumer(&ports, &simulator, clock);
    sqlite.send(&outgoing).await.expect("send");
    let summary = worker::process_one_batch(&sqlite, &sqlite_consumer).await.expect("a batch");
    assert_eq!((summary.unreadable, summary.applied), (3, 1), "{summary:?}");
    assert_eq!(sqlite.pending().await.expect("pending"), 0);
    check_dead_letters(&sqlite.dead_letters().await.expect("dead letters"), &sent).await;
    let fine = registration("fine@example.com").event_id;
    let status = ports.log.get(&fine).await.expect("read").map(|record| record.status);
    assert_eq!(status, Some(EventStatus::Completed(FinalOutcome::Applied)), "the readable one was applied");

    // A redrive puts them back unchanged (a newer consumer would read them).
    assert_eq!(sqlite.redrive_dead_letters().await.expect("redrive"), 3);
    let again = sqlite.receive(10).await.expect("receive");
    let bodies: BTreeSet<String> = again.into_iter().map(|message| message.body).collect();
    assert_eq!(bodies, sent.iter().map(|(message, _)| message.body.clone()).collect::<BTreeSet<_>>());
}

// ---------------------------------------------------------------------------------------------
// Crash recovery converges

/// One of `address`'s Zoom events for webinar "w9" (Product Demo), `minute` minutes into the day.
fn zoom_event(address: &str, kind: EventKind, minute: i64, id: &str) -> WebinarEvent {
    let source = Source::Zoom;
    let mut webinar = WebinarInfo::new("w9");
    webinar.name = Some("Product Demo".into());
    let at = "2026-03-01T08:00:00Z".parse::<DateTime<Utc>>().expect("a time") + chrono::Duration::minutes(minute);
    WebinarEvent {
        schema: webinar_bridge::domain::EVENT_SCHEMA_VERSION,
        event_id: EventId::hashed(&source, &[address.as_bytes(), id.as_bytes()]),
        source,
        kind,
        occurred_at: at,
        received_at: at,
        contact: ContactInfo::new(Email::parse(address).expect("an address")),
        webinar,
        facts: Facts::default(),
    }
}

/// The events as one delivery of their (one) FIFO group would hand them to the consumer.
fn delivery(events: &[&WebinarEvent], receive_count: u32) -> Vec<QueuedMessage> {
    events
        .iter()
        .map(|event| {
            let message = to_message(event).expect("a message");
            QueuedMessage {
                message_id: event.event_id.to_string(),
                receipt: format!("receipt-{}-{receive_count}", event.event_id),
                group_id: message.group_id,
                body: message.body,
                receive_count,
            }
        })
        .collect()
}

/// Register, cancel (crashing after its KlickTipp calls, before the state write), then the
/// redelivered cancellation together with a re-registration: the contact ends Registered, as the
/// oracle says. The moto quick soak once ended this contact with no tag at all: the write-ahead
/// record confirmed only tags being added, so the crashed untag of "Registered" still counted as
/// applied and the re-registration planned nothing. On memory, SQLite and DynamoDB (moto).
async fn a_crash_after_an_untag_converges_on(ports: Ports, backend: &str) {
    let simulator = harness::start_simulator().await;
    let clock = ManualClock::new(ManualClock::start());
    let crash_next = Arc::new(AtomicBool::new(false));
    let armed = Arc::clone(&crash_next);
    let consumer = consumer(&ports, &simulator, clock.shared()).with_crash_hook(Arc::new(move |point| {
        point == CrashPoint::AfterKlickTippBeforeSave && armed.swap(false, Ordering::SeqCst)
    }));
    let address = "re.registered@example.com";
    let registered = zoom_event(address, EventKind::Registered, 0, "registered");
    let cancelled = zoom_event(address, EventKind::Cancelled, 30, "cancelled");
    let again = zoom_event(address, EventKind::Registered, 60, "registered-again");
    let tags_of = || harness::tags_by_email(&simulator).remove(address).unwrap_or_default();
    let tag = |state: &str| BTreeSet::from([format!("[Zoom] [Product Demo] {state}")]);
    let lease = ConsumerOptions::default().lease;

    let outcomes = consumer.process_batch(&delivery(&[&registered], 1), None).await;
    assert_eq!(outcomes[0].disposition, Disposition::Done(MessageResult::Applied), "{backend}");
    assert_eq!(tags_of(), tag("Registered"), "{backend}");

    crash_next.store(true, Ordering::SeqCst);
    let outcomes = consumer.process_batch(&delivery(&[&cancelled], 1), None).await;
    assert_eq!(outcomes[0].disposition, Disposition::Abandoned, "{backend}: crashed after the calls");
    assert_eq!(tags_of(), tag("Cancelled"), "{backend}: untagged and tagged before the crash");

    // The crashed claim's lease runs out; the queue hands the cancellation back with the
    // re-registration queued behind it.
    clock.advance(lease + Duration::from_secs(1));
    let calls_before = simulator.total_calls();
    let outcomes = consumer.process_batch(&delivery(&[&cancelled, &again], 2), None).await;
    for outcome in &outcomes {
        assert_eq!(outcome.disposition, Disposition::Done(MessageResult::Applied), "{backend}");
    }
    assert_eq!(tags_of(), tag("Registered"), "{backend}: the re-registration's tag is set");
    // Tag "Registered" again, untag the unconfirmed "Cancelled": exactly two calls.
    assert_eq!(simulator.total_calls() - calls_before, 2, "{backend}");

    // Settled: a redelivery of everything costs nothing.
    let calls_settled = simulator.total_calls();
    let outcomes = consumer.process_batch(&delivery(&[&registered, &cancelled, &again], 3), None).await;
    for outcome in &outcomes {
        assert_eq!(outcome.disposition, Disposition::Done(MessageResult::Duplicate), "{backend}");
    }
    assert_eq!(simulator.total_calls(), calls_settled, "{backend}");
    simulator.shutdown().await;
}

#[tokio::test]
async fn a_crash_after_an_untag_converges_on_memory_and_sqlite() {
    let memory = Ports {
        log: Arc::new(MemoryEventLog::default()),
        contacts: Arc::new(MemoryContactStore::default()),
        tags: Arc::new(MemoryTagDirectory::default()),
    };
    a_crash_after_an_untag_converges_on(memory, "memory").await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = SqliteDb::open(dir.path().join("bridge.db")).expect("a database");
    let sqlite = Ports {
        log: Arc::new(SqliteEventLog::new(db.clone())),
        contacts: Arc::new(SqliteContactStore::new(db.clone())),
        tags: Arc::new(SqliteTagDirectory::new(db)),
    };
    a_crash_after_an_untag_converges_on(sqlite, "sqlite").await;
}

#[tokio::test]
async fn a_crash_after_an_untag_converges_on_dynamodb() {
    let moto = Moto::start().await;
    let ports = Ports {
        log: Arc::new(DynamoEventLog::new(moto.dynamodb(), moto.create_events_table().await)),
        contacts: Arc::new(DynamoContactStore::new(moto.dynamodb(), moto.create_contacts_table().await)),
        tags: Arc::new(DynamoTagDirectory::new(moto.dynamodb(), moto.create_contacts_table().await)),
    };
    a_crash_after_an_untag_converges_on(ports, "dynamodb").await;
}
