//! The consume use case against the real simulator over HTTP, on the in-memory adapters:
//! exact KlickTipp call counts, duplicates, FIFO retries and permanent rejections.

mod common;

use common::{event_for, with_interval};
use klicktipp_sim::{Knobs, ListbuildingKey, SimConfig, Simulator};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use webinar_bridge::Secret;
use webinar_bridge::adapters::memory::{MemoryContactStore, MemoryEventLog, MemoryQueue, MemoryTagDirectory};
use webinar_bridge::consume::{ApplyMode, Consumer, ConsumerOptions, Disposition, MessageResult};
use webinar_bridge::domain::{EventKind::*, Settings, WebinarEvent};
use webinar_bridge::ingest::to_message;
use webinar_bridge::klicktipp::{KlickTippAuth, KlickTippClient, KlickTippConfig};
use webinar_bridge::ports::{Claim, ClaimToken, EventLog, EventQueue, OutgoingMessage, SystemClock};
use webinar_bridge::tag_resolver::TagResolver;
use webinar_bridge::worker::{BatchSummary, process_one_batch};

struct Rig {
    sim: Simulator,
    queue: MemoryQueue,
    log: MemoryEventLog,
    consumer: Consumer,
}

async fn rig_with(config: SimConfig, mode: ApplyMode) -> Rig {
    let sim = klicktipp_sim::start(config, "127.0.0.1:0").await.expect("simulator starts");
    let auth = match mode {
        ApplyMode::Management => {
            KlickTippAuth::Session { username: "bridge".into(), password: Secret::new("sim-password") }
        }
        ApplyMode::Listbuilding => KlickTippAuth::None,
    };
    let mut config = KlickTippConfig::new(sim.url(), auth);
    config.rate_per_second = 0.0;
    config.backoff_base = Duration::from_millis(5);
    config.request_timeout = Duration::from_secs(5);
    config.listbuilding_apikey = Some(Secret::new("lb-key"));
    let client = KlickTippClient::new(config).expect("client");
    let log = MemoryEventLog::default();
    let clock = Arc::new(SystemClock);
    let tags = TagResolver::new(Arc::new(MemoryTagDirectory::default()), client.clone(), clock.clone());
    let options =
        ConsumerOptions { mode, retry_base: Duration::ZERO, retry_cap: Duration::ZERO, ..ConsumerOptions::default() };
    let consumer = Consumer::new(
        Arc::new(log.clone()),
        Arc::new(MemoryContactStore::default()),
        tags,
        client,
        Settings::default(),
        options,
        clock,
    );
    Rig { sim, queue: MemoryQueue::default(), log, consumer }
}

async fn rig() -> Rig {
    rig_with(SimConfig::default(), ApplyMode::Management).await
}

impl Rig {
    async fn enqueue(&self, events: &[WebinarEvent]) {
        let messages: Vec<OutgoingMessage> = events.iter().map(|e| to_message(e).expect("serializable")).collect();
        self.queue.send(&messages).await.expect("send");
    }

    /// Processes until the queue is empty (retries are immediately visible in this rig).
    async fn drain(&self) -> BatchSummary {
        let mut total = BatchSummary::default();
        for _ in 0..50 {
            let summary = process_one_batch(&self.queue, &self.consumer).await.expect("batch");
            total.add(&summary);
            if self.queue.pending() == 0 {
                break;
            }
        }
        total
    }

    fn calls(&self) -> BTreeMap<String, u64> {
        self.sim.calls_by_endpoint()
    }

    fn tags_of(&self, email: &str) -> Vec<String> {
        self.sim.contacts().into_iter().find(|c| c.email == email).map(|c| c.tags).unwrap_or_default()
    }
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

const ERIKA: &str = "erika@example.com";

#[tokio::test]
async fn a_registration_is_one_upsert_carrying_its_tag() {
    let rig = rig().await;
    rig.enqueue(&[event_for(ERIKA, "w1", Registered, 0)]).await;
    let summary = rig.drain().await;
    assert_eq!(summary.applied, 1);
    assert_eq!(
        rig.calls(),
        counts(&[("POST /account/login", 1), ("GET /tag", 1), ("POST /tag", 1), ("POST /subscriber", 1)])
    );
    assert_eq!(rig.tags_of(ERIKA), vec!["[Zoom] [Demo Webinar] Registered"]);
    let contact = rig.sim.contacts().into_iter().find(|c| c.email == ERIKA).expect("contact exists");
    assert_eq!(contact.fields.get("fieldFirstName").map(String::as_str), Some("Erika"));
}

#[tokio::test]
async fn a_redelivered_event_costs_no_call() {
    let rig = rig().await;
    let registration = event_for(ERIKA, "w1", Registered, 0);
    rig.enqueue(std::slice::from_ref(&registration)).await;
    rig.drain().await;
    let before = rig.sim.total_calls();
    // A redelivery after the queue's dedup window: same event, new message.
    let mut message = to_message(&registration).unwrap();
    message.dedup_id.push_str("-later");
    rig.queue.send(&[message]).await.unwrap();
    let summary = rig.drain().await;
    assert_eq!(summary.duplicates, 1);
    assert_eq!(rig.sim.total_calls(), before);
}

#[tokio::test]
async fn one_contacts_events_in_a_batch_are_merged_and_planned_once() {
    let rig = rig().await;
    let attended = with_interval(event_for(ERIKA, "w1", Attended, 40), 0, Some(40));
    rig.enqueue(&[event_for(ERIKA, "w1", Registered, 0), attended, event_for(ERIKA, "w1", NoShow, 90)]).await;
    let summary = rig.drain().await;
    assert_eq!(summary.applied, 3);
    // Registered rides on the upsert; Attended goes in one tag call. The late no-show adds nothing.
    assert_eq!(rig.calls()["POST /subscriber"], 1);
    assert_eq!(rig.calls()["POST /subscriber/tag"], 1);
    assert_eq!(rig.calls()["POST /tag"], 2);
    assert!(!rig.calls().contains_key("POST /subscriber/untag"));
    assert_eq!(rig.tags_of(ERIKA), vec!["[Zoom] [Demo Webinar] Attended", "[Zoom] [Demo Webinar] Registered"]);
}

#[tokio::test]
async fn a_late_no_show_after_attendance_costs_no_call_and_attendance_replaces_no_show() {
    let rig = rig().await;
    rig.enqueue(&[event_for(ERIKA, "w1", Registered, 0), event_for(ERIKA, "w1", Attended, 30)]).await;
    rig.drain().await;
    let before = rig.sim.total_calls();
    rig.enqueue(&[event_for(ERIKA, "w1", NoShow, 90)]).await;
    rig.drain().await;
    assert_eq!(rig.sim.total_calls(), before, "a late no-show changes nothing");

    // The other way round: a no-show first, then the real attendance: untag Did Not Attend.
    let max = "max@example.com";
    rig.enqueue(&[event_for(max, "w1", Registered, 0), event_for(max, "w1", NoShow, 90)]).await;
    rig.drain().await;
    assert!(rig.tags_of(max).contains(&"[Zoom] [Demo Webinar] Did Not Attend".to_owned()));
    rig.enqueue(&[event_for(max, "w1", Attended, 30)]).await;
    rig.drain().await;
    assert_eq!(rig.tags_of(max), vec!["[Zoom] [Demo Webinar] Attended", "[Zoom] [Demo Webinar] Registered"]);
    assert_eq!(rig.calls()["POST /subscriber/untag"], 1);
}

#[tokio::test]
async fn a_permanent_klicktipp_error_rejects_only_that_contact_with_its_reason() {
    let rig = rig().await;
    rig.sim.set_knobs(Knobs { reject_emails: vec!["blocked@example.com".into()], ..Knobs::default() });
    rig.enqueue(&[event_for("blocked@example.com", "w1", Registered, 0), event_for(ERIKA, "w1", Registered, 0)]).await;
    let summary = rig.drain().await;
    assert_eq!((summary.applied, summary.rejected, summary.retried), (1, 1, 0));
    let blocked = rig
        .log
        .records()
        .into_iter()
        .find(|record| {
            matches!(
                &record.status,
                webinar_bridge::ports::EventStatus::Completed(webinar_bridge::ports::FinalOutcome::Rejected(_))
            )
        })
        .expect("a rejected record");
    let webinar_bridge::ports::EventStatus::Completed(webinar_bridge::ports::FinalOutcome::Rejected(reason)) =
        blocked.status
    else {
        unreachable!()
    };
    assert_eq!(reason.error_number, Some(5));
    assert_eq!(reason.status, Some(406));
    let upserts_for_blocked = rig
        .sim
        .request_log()
        .iter()
        .filter(|r| r.endpoint == "POST /subscriber" && r.body["email"] == "blocked@example.com")
        .count();
    assert_eq!(upserts_for_blocked, 1, "permanent errors are never retried");
    assert_eq!(rig.tags_of(ERIKA), vec!["[Zoom] [Demo Webinar] Registered"]);
}

#[tokio::test]
async fn a_busy_event_sends_its_whole_group_back_in_order_and_other_contacts_go_on() {
    let rig = rig().await;
    let first = event_for(ERIKA, "w1", Registered, 0);
    let second = event_for(ERIKA, "w1", Attended, 30);
    // Another worker holds a live lease on Erika's first event.
    let claim = rig
        .log
        .claim(
            &first.event_id,
            &first.fingerprint(),
            &ClaimToken::new(),
            chrono::Utc::now(),
            Duration::from_secs(60),
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    assert_eq!(claim, Claim::Claimed);
    rig.enqueue(&[first, second, event_for("max@example.com", "w1", Registered, 0)]).await;
    let messages = rig.queue.receive(10).await.unwrap();
    let outcomes = rig.consumer.process_batch(&messages, None).await;
    let dispositions: Vec<_> =
        outcomes.iter().map(|o| matches!(o.disposition, Disposition::RetryLater { .. })).collect();
    assert_eq!(dispositions, vec![true, true, false], "Erika's group retries as a whole; Max is applied");
    assert_eq!(outcomes[2].disposition, Disposition::Done(MessageResult::Applied));
}

#[tokio::test]
async fn retryable_faults_are_retried_and_nothing_is_applied_twice() {
    let rig = rig().await;
    rig.sim.set_knobs(Knobs {
        fault_rate_500: 0.3,
        rate_limit_per_second: Some(50),
        retry_after: true,
        session_expiry_calls: Some(7),
        seed: 11,
        ..Knobs::default()
    });
    let emails: Vec<String> = (0..12).map(|i| format!("person{i}@example.com")).collect();
    let mut events = Vec::new();
    for email in &emails {
        events.push(event_for(email, "w1", Registered, 0));
        events.push(event_for(email, "w1", Attended, 30));
        events.push(event_for(email, "w1", Purchased, 70));
    }
    rig.enqueue(&events).await;
    let summary = rig.drain().await;
    assert_eq!(summary.applied, events.len());
    for email in &emails {
        assert_eq!(
            rig.tags_of(email),
            vec!["[Zoom] [Demo Webinar] Attended", "[Zoom] [Demo Webinar] Buyer", "[Zoom] [Demo Webinar] Registered"]
        );
    }
    let created: Vec<_> =
        rig.sim.request_log().into_iter().filter(|r| r.endpoint == "POST /tag" && r.status == 200).collect();
    assert_eq!(created.len(), 3, "each tag is created exactly once");
    assert_eq!(rig.sim.contacts().len(), emails.len(), "no duplicate contact");
}

#[tokio::test]
async fn listbuilding_mode_signs_in_registrations_and_skips_the_rest() {
    let config = SimConfig {
        listbuilding_keys: vec![ListbuildingKey { apikey: "lb-key".into(), listid: 1, tagid: 0 }],
        ..SimConfig::default()
    };
    let rig = rig_with(config, ApplyMode::Listbuilding).await;
    rig.enqueue(&[event_for(ERIKA, "w1", Registered, 0), event_for(ERIKA, "w1", Attended, 30)]).await;
    let summary = rig.drain().await;
    assert_eq!((summary.applied, summary.skipped), (1, 1));
    assert_eq!(rig.calls(), counts(&[("POST /subscriber/signin", 1)]));
}

#[tokio::test]
async fn a_redelivery_queued_behind_its_original_in_one_batch_is_a_duplicate() {
    let rig = rig().await;
    let registration = event_for(ERIKA, "w1", Registered, 0);
    let original = to_message(&registration).unwrap();
    // Past the queue's dedup window the same event arrives again while the original still waits.
    let mut redelivery = original.clone();
    redelivery.dedup_id.push_str("-after-window");
    rig.queue.send(&[original, redelivery]).await.unwrap();
    let messages = rig.queue.receive(10).await.unwrap();
    assert_eq!(messages.len(), 2, "both in one batch");
    let outcomes = rig.consumer.process_batch(&messages, None).await;
    let results: Vec<_> = outcomes.into_iter().map(|o| o.disposition).collect();
    assert_eq!(results, vec![Disposition::Done(MessageResult::Applied), Disposition::Done(MessageResult::Duplicate)]);
    assert_eq!(rig.calls()["POST /subscriber"], 1);
}

/// A contact store whose record for one address has grown past the item limit.
struct FullFor {
    inner: MemoryContactStore,
    email: &'static str,
}

#[async_trait::async_trait]
impl webinar_bridge::ports::ContactStore for FullFor {
    async fn load(
        &self,
        email: &webinar_bridge::domain::Email,
    ) -> webinar_bridge::ports::PortResult<
        Option<webinar_bridge::ports::Versioned<webinar_bridge::domain::ContactRecord>>,
    > {
        self.inner.load(email).await
    }

    async fn save(
        &self,
        record: &webinar_bridge::domain::ContactRecord,
        expected: Option<u64>,
    ) -> webinar_bridge::ports::PortResult<u64> {
        if record.email.as_str() == self.email {
            return Err(webinar_bridge::ports::PortError::TooLarge { bytes: 512_000, limit: 409_600 });
        }
        self.inner.save(record, expected).await
    }
}

/// A contact whose state no longer fits the store is rejected at once with a reason a person
/// can act on, never retried into the dead-letter queue, and KlickTipp is not called for it;
/// other contacts go on.
#[tokio::test]
async fn a_contact_too_large_to_store_is_rejected_not_retried() {
    let rig = rig().await;
    let contacts = Arc::new(FullFor { inner: MemoryContactStore::default(), email: ERIKA });
    let mut config = KlickTippConfig::new(
        rig.sim.url(),
        KlickTippAuth::Session { username: "bridge".into(), password: Secret::new("sim-password") },
    );
    config.rate_per_second = 0.0;
    let client = KlickTippClient::new(config).expect("client");
    let clock = Arc::new(SystemClock);
    let tags = TagResolver::new(Arc::new(MemoryTagDirectory::default()), client.clone(), clock.clone());
    let log = MemoryEventLog::default();
    let consumer = Consumer::new(
        Arc::new(log.clone()),
        contacts,
        tags,
        client,
        Settings::default(),
        ConsumerOptions::default(),
        clock,
    );
    let erika = event_for(ERIKA, "w1", Registered, 0);
    rig.enqueue(&[erika.clone(), event_for("max@example.com", "w1", Registered, 0)]).await;
    let summary = process_one_batch(&rig.queue, &consumer).await.expect("batch");
    assert_eq!((summary.rejected, summary.applied, summary.retried), (1, 1, 0), "{summary:?}");
    assert_eq!(rig.queue.pending(), 0, "nothing goes back to the queue");
    let record = log.get(&erika.event_id).await.expect("get").expect("recorded");
    let webinar_bridge::ports::EventStatus::Completed(webinar_bridge::ports::FinalOutcome::Rejected(reason)) =
        record.status
    else {
        panic!("expected a rejection, got {:?}", record.status);
    };
    assert_eq!(reason.operation, "save contact state");
    assert!(reason.reason.contains("too many webinars"), "{}", reason.reason);
    assert!(rig.tags_of(ERIKA).is_empty(), "KlickTipp never heard of the contact that cannot be stored");
}
