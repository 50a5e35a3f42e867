//! The AWS adapters (SQS FIFO, DynamoDB) on moto's real wire protocols: the shared port
//! conformance suite, then what only these backends have to show (conditional-write races
//! between separate clients, TTL attribute shape, redrive to the dead-letter queue, the
//! consumer's partial batch response on real SQS records).
//!
//! Needs `bash infra/local/install-tools.sh` (moto in `.tools`); each test runs its own moto,
//! serialized per request as AWS is atomic per request (see `moto::SERIALIZED_MOTO`).
//!
//! Queue cases left out, each for a documented moto difference or a wait too long for CI:
//! - `queue_ack_with_a_stale_receipt_does_not_delete` and
//!   `queue_redelivers_after_the_visibility_timeout`: moto deletes a message for any receipt it
//!   ever issued; SQS's DeleteMessage with an outdated receipt "succeeds, but the message will
//!   not be deleted" (API reference). The adapter only has to not fail, which both backends do.
//! - `queue_drops_duplicates_within_the_dedup_window`: moto compares a new dedup id only with
//!   messages still in the queue, so a resend after the original was deleted is delivered again;
//!   SQS drops it for the whole five minutes. Duplicates of a message still queued are checked
//!   below (`a_duplicate_dedup_id_within_the_window_is_delivered_once`).
//! - `queue_accepts_a_dedup_id_again_after_the_window`: SQS's window is a fixed five minutes.

use aws_lambda_events::event::sqs::SqsMessage;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use webinar_bridge::adapters::dynamodb::aws_sdk_dynamodb::types::{AttributeValue, TimeToLiveStatus};
use webinar_bridge::adapters::dynamodb::{
    CONTACTS_PARTITION_KEY, DYNAMODB_ITEM_LIMIT, DynamoContactStore, DynamoEventLog, DynamoReceiptLog,
    DynamoTagDirectory, DynamoWebinarSettings, EVENTS_PARTITION_KEY, EVENTS_TTL_ATTRIBUTE, contact_key, item_size,
};
use webinar_bridge::adapters::dynamodb_history::{DynamoHistoryLog, HISTORY_TTL_ATTRIBUTE};
use webinar_bridge::adapters::memory::QueueSettings;
use webinar_bridge::adapters::sqs::aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use webinar_bridge::consume::{Disposition, MessageOutcome, MessageResult};
use webinar_bridge::domain::EventId;
use webinar_bridge::ports::WebinarSettings;
use webinar_bridge::ports::{
    Claim, ClaimToken, Clock, ContactStore, DeadLetters, EventLog, EventQueue, EventStatus, HistoryEntry, HistoryLog,
    HistoryOutcome, OutgoingMessage, PortError, ReceiptLog, TagDirectory,
};
use webinar_bridge::tag_resolver::{TagResolveError, TagResolver};
use webinar_bridge_consumer::{Settlement, batch_response, queued_message_from_sqs_record, settle};
use webinar_bridge_tests::harness;
use webinar_bridge_tests::moto::{Moto, MotoQueue, TEMPLATE_MAX_RECEIVE_COUNT};
use webinar_bridge_tests::port_suite::{
    self, Backend, InspectableQueue, ManualClock, contact_in_webinars, realistic_contact_record,
};

const LEASE: Duration = Duration::from_secs(30);
const RETENTION: Duration = Duration::from_secs(30 * 86_400);

/// Fresh queues and tables on one moto server per test.
struct MotoBackend {
    moto: Moto,
}

impl MotoBackend {
    async fn start() -> Self {
        Self { moto: Moto::start().await }
    }
}

#[async_trait::async_trait]
impl Backend for MotoBackend {
    async fn queue(&self, settings: QueueSettings, _clock: Arc<dyn Clock>) -> Arc<dyn InspectableQueue> {
        Arc::new(self.moto.create_queue(settings).await)
    }

    async fn event_log(&self, _clock: Arc<dyn Clock>) -> Arc<dyn EventLog> {
        Arc::new(DynamoEventLog::new(self.moto.dynamodb(), self.moto.create_events_table().await))
    }

    async fn contact_store(&self) -> Arc<dyn ContactStore> {
        Arc::new(DynamoContactStore::new(self.moto.dynamodb(), self.moto.create_contacts_table().await))
    }

    async fn tag_directory(&self) -> Arc<dyn TagDirectory> {
        Arc::new(DynamoTagDirectory::new(self.moto.dynamodb(), self.moto.create_contacts_table().await))
    }

    async fn receipt_log(&self) -> Arc<dyn ReceiptLog> {
        Arc::new(DynamoReceiptLog::new(self.moto.dynamodb(), self.moto.create_events_table().await))
    }

    async fn webinar_settings(&self) -> Option<Arc<dyn WebinarSettings>> {
        Some(Arc::new(DynamoWebinarSettings::new(self.moto.dynamodb(), self.moto.create_contacts_table().await)))
    }

    async fn parked_webhooks(&self) -> Option<Arc<dyn webinar_bridge::ports::ParkedWebhooks>> {
        Some(Arc::new(webinar_bridge::adapters::dynamodb::DynamoParkedWebhooks::new(
            self.moto.dynamodb(),
            self.moto.create_events_table().await,
        )))
    }

    async fn history_log(&self) -> Option<Arc<dyn HistoryLog>> {
        Some(Arc::new(DynamoHistoryLog::new(self.moto.dynamodb(), self.moto.create_history_table().await)))
    }

    async fn queue_with_dead_letters(
        &self,
        settings: QueueSettings,
        _clock: Arc<dyn Clock>,
    ) -> Option<(Arc<dyn InspectableQueue>, Arc<dyn DeadLetters>)> {
        let queue = self.moto.create_queue(settings).await;
        let dead_letters = queue.dead_letter_port();
        Some((Arc::new(queue), Arc::new(dead_letters)))
    }

    /// SQS keeps visibility on moto's own clock: real time has to pass too.
    async fn let_time_pass(&self, clock: &ManualClock, duration: Duration) {
        clock.advance(duration);
        tokio::time::sleep(duration).await;
    }
}

fn event_id(name: &str) -> EventId {
    EventId::from_sender(name).expect("a valid id")
}

fn outgoing(group: &str, body: &str) -> OutgoingMessage {
    OutgoingMessage { group_id: group.to_owned(), dedup_id: format!("dedup-{body}"), body: body.to_owned() }
}

// ---------------------------------------------------------------------------------------------
// The shared suite

/// Dead letters on SQS: moto 5 has no StartMessageMoveTask, so `--all` runs the fallback
/// (receive, send with the same group and a new dedup id, delete) and says why.
#[tokio::test]
async fn port_suite_dead_letters_list_redrive_and_erase() {
    let backend = MotoBackend::start().await;
    port_suite::dead_letters_list_redrive_and_erase(&backend).await;
}

#[tokio::test]
async fn port_suite_queue_without_waiting() {
    let backend = MotoBackend::start().await;
    let backend: &dyn Backend = &backend;
    port_suite::queue_delivers_a_group_in_fifo_order(backend).await;
    port_suite::queue_runs_groups_in_parallel(backend).await;
    port_suite::queue_blocks_a_group_while_its_head_is_in_flight(backend).await;
    port_suite::queue_respects_the_receive_maximum(backend).await;
    port_suite::queue_retry_later_delays_and_blocks_the_group(backend).await;
    port_suite::queue_retry_later_without_delay_redelivers_at_once(backend).await;
    port_suite::queue_dead_letters_after_max_receives(backend).await;
    port_suite::queue_dead_letters_an_unreadable_message_with_its_reason(backend).await;
}

#[tokio::test]
async fn port_suite_queue_retry_delay_on_the_server_clock() {
    let backend = MotoBackend::start().await;
    port_suite::queue_retry_later_becomes_visible_after_the_delay(&backend).await;
}

#[tokio::test]
async fn port_suite_event_log() {
    port_suite::event_log_suite(&MotoBackend::start().await).await;
}

#[tokio::test]
async fn port_suite_webinar_settings() {
    port_suite::webinar_settings_suite(&MotoBackend::start().await).await;
}

#[tokio::test]
async fn port_suite_receipt_log() {
    port_suite::receipt_log_suite(&MotoBackend::start().await).await;
}

#[tokio::test]
async fn port_suite_parked_webhooks() {
    port_suite::parked_webhooks_suite(&MotoBackend::start().await).await;
}

#[tokio::test]
async fn port_suite_history_log() {
    port_suite::history_log_suite(&MotoBackend::start().await).await;
}

#[tokio::test]
async fn port_suite_contact_store() {
    port_suite::contact_store_suite(&MotoBackend::start().await).await;
}

#[tokio::test]
async fn port_suite_tag_directory() {
    port_suite::tag_directory_suite(&MotoBackend::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn port_suite_concurrency() {
    port_suite::concurrency_suite(&MotoBackend::start().await).await;
}

// ---------------------------------------------------------------------------------------------
// DynamoDB

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_consumers_claiming_one_event_yield_exactly_one_claim() {
    let moto = Moto::start().await;
    let table = moto.create_events_table().await;
    // Separate SDK clients, as two Lambda instances would have.
    let logs: Vec<Arc<DynamoEventLog>> =
        (0..8).map(|_| Arc::new(DynamoEventLog::from_conf(moto.sdk(), &table))).collect();
    let now = ManualClock::start();
    let claims = futures::future::join_all(logs.iter().map(|log| {
        let log = Arc::clone(log);
        tokio::spawn(async move {
            log.claim(&event_id("evt-shared"), "fp", &ClaimToken::new(), now, LEASE, RETENTION).await
        })
    }))
    .await;
    let claims: Vec<Claim> = claims.into_iter().map(|joined| joined.expect("task").expect("claim")).collect();
    assert_eq!(claims.iter().filter(|claim| **claim == Claim::Claimed).count(), 1, "{claims:?}");
    assert!(claims.iter().all(|claim| matches!(claim, Claim::Claimed | Claim::Busy)), "{claims:?}");
}

#[tokio::test]
async fn a_crashed_claim_is_taken_over_by_another_consumer_after_its_lease() {
    let moto = Moto::start().await;
    let table = moto.create_events_table().await;
    let (crashed, survivor) =
        (DynamoEventLog::from_conf(moto.sdk(), &table), DynamoEventLog::from_conf(moto.sdk(), &table));
    let clock = ManualClock::new(ManualClock::start());
    let id = event_id("evt-crashed");
    let survivor_token = ClaimToken::new();
    assert_eq!(
        crashed.claim(&id, "fp", &ClaimToken::new(), clock.now(), LEASE, RETENTION).await.expect("claim"),
        Claim::Claimed
    );
    clock.advance(LEASE - Duration::from_millis(1));
    assert_eq!(
        survivor.claim(&id, "fp", &survivor_token, clock.now(), LEASE, RETENTION).await.expect("claim"),
        Claim::Busy
    );
    clock.advance(Duration::from_millis(1));
    assert_eq!(
        survivor.claim(&id, "fp", &survivor_token, clock.now(), LEASE, RETENTION).await.expect("claim"),
        Claim::Claimed
    );
    let record = survivor.get(&id).await.expect("get").expect("record");
    let expected_lease = clock.now() + chrono::Duration::from_std(LEASE).expect("fits");
    assert_eq!(record.status, EventStatus::InProgress { lease_until: expected_lease });
}

#[tokio::test]
async fn a_contact_version_conflict_is_detected_and_a_reload_succeeds() {
    let moto = Moto::start().await;
    let table = moto.create_contacts_table().await;
    let (first, second) =
        (DynamoContactStore::from_conf(moto.sdk(), &table), DynamoContactStore::from_conf(moto.sdk(), &table));
    let mut record = realistic_contact_record();
    let v1 = first.save(&record, None).await.expect("insert");
    let loaded_by_first = first.load(&record.email).await.expect("load").expect("saved");
    // The second consumer writes in between.
    record.applied.known = false;
    let v2 = second.save(&record, Some(v1)).await.expect("second consumer's update");
    let mut stale = loaded_by_first.value.clone();
    stale.applied.tags.clear();
    assert!(matches!(first.save(&stale, Some(loaded_by_first.version)).await, Err(PortError::VersionConflict)));
    // Reload and redo, as the consumer does.
    let reloaded = first.load(&record.email).await.expect("load").expect("saved");
    assert_eq!((reloaded.version, reloaded.value.applied.known), (v2, false));
    let v3 = first.save(&stale, Some(reloaded.version)).await.expect("the retry succeeds");
    assert_eq!(v3, v2 + 1);
}

/// Bounded storage: a contact in 1,000 webinars is one item far below DynamoDB's 400 KB limit.
#[tokio::test]
async fn a_contact_in_1000_webinars_is_stored_far_below_the_item_limit() {
    let moto = Moto::start().await;
    let table = moto.create_contacts_table().await;
    let store = DynamoContactStore::new(moto.dynamodb(), &table);
    let record = contact_in_webinars(1_000);
    store.save(&record, None).await.expect("save");
    let raw = moto
        .dynamodb()
        .get_item()
        .table_name(&table)
        .key(CONTACTS_PARTITION_KEY, AttributeValue::S(contact_key(&record.email)))
        .send()
        .await
        .expect("get the raw item");
    let item: HashMap<String, AttributeValue> = raw.item().expect("saved").clone();
    let stored = item_size(&item);
    let json = serde_json::to_vec(&record).expect("json").len();
    println!("a contact in 1,000 webinars: {stored} bytes stored ({json} bytes of JSON before compression)");
    // The floor is the two SHA-256 event ids each webinar's stamps keep (about 64 bytes of pure
    // entropy per webinar); everything else compresses away. Measured: 157,552 bytes.
    assert!(stored < DYNAMODB_ITEM_LIMIT * 2 / 5, "{stored} bytes is not far below the 400 KB item limit");
    assert_eq!(store.load(&record.email).await.expect("load").expect("saved").value, record);
}

/// A record that does not fit even compressed is refused as permanent, before DynamoDB is asked.
#[tokio::test]
async fn a_contact_record_too_large_for_an_item_is_a_permanent_error() {
    let moto = Moto::start().await;
    let table = moto.create_contacts_table().await;
    let store = DynamoContactStore::new(moto.dynamodb(), &table);
    let record = contact_in_webinars(12_000);
    let result = store.save(&record, None).await;
    match &result {
        Err(error @ PortError::TooLarge { bytes, limit }) => {
            assert!(bytes > limit && *limit == DYNAMODB_ITEM_LIMIT, "{error}");
            assert!(!error.is_retryable(), "never retried");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(store.load(&record.email).await.expect("load"), None, "nothing was written");
}

#[tokio::test]
async fn event_records_carry_the_ttl_attribute_in_epoch_seconds() {
    let moto = Moto::start().await;
    let table = moto.create_events_table().await;
    let log = DynamoEventLog::new(moto.dynamodb(), &table);
    let now = ManualClock::start() + chrono::Duration::milliseconds(250);
    let id = event_id("evt-ttl");
    log.claim(&id, "fp", &ClaimToken::new(), now, LEASE, RETENTION).await.expect("claim");
    let raw = moto
        .dynamodb()
        .get_item()
        .table_name(&table)
        .key(EVENTS_PARTITION_KEY, AttributeValue::S(id.as_str().to_owned()))
        .send()
        .await
        .expect("get the raw item");
    let item = raw.item().expect("the claim wrote an item");
    // Rounded up to whole seconds, so the record never lapses early.
    let expected = ManualClock::start().timestamp() + RETENTION.as_secs() as i64 + 1;
    assert_eq!(item.get(EVENTS_TTL_ATTRIBUTE), Some(&AttributeValue::N(expected.to_string())));
    assert_eq!(item.get("status"), Some(&AttributeValue::S("in_progress".into())));
    assert_eq!(item.get("lease_until"), Some(&AttributeValue::N((now.timestamp_millis() + 30_000).to_string())));
    let ttl = moto.dynamodb().describe_time_to_live().table_name(&table).send().await.expect("describe TTL");
    let description = ttl.time_to_live_description().expect("a TTL description");
    assert_eq!(description.attribute_name(), Some(EVENTS_TTL_ATTRIBUTE));
    assert_eq!(description.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
}

/// Resolves a tag, waiting while the other consumer holds the creation claim.
async fn resolve_patiently(resolver: &TagResolver, name: &str) -> u64 {
    for _ in 0..100 {
        match resolver.resolve(name).await {
            Ok((id, _)) => return id,
            Err(TagResolveError::CreationInProgress) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(error) => panic!("resolve {name}: {error}"),
        }
    }
    panic!("the tag creation claim was never released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tag_creation_race_between_two_consumers_creates_one_tag() {
    let moto = Moto::start().await;
    let simulator = harness::start_simulator().await;
    let table = moto.create_contacts_table().await;
    let resolver = || {
        let directory = Arc::new(DynamoTagDirectory::from_conf(moto.sdk(), &table));
        Arc::new(TagResolver::new(
            directory,
            harness::simulator_client(&simulator),
            Arc::new(webinar_bridge::ports::SystemClock),
        ))
    };
    let (a, b) = (resolver(), resolver());
    let name = "[Zoom] [Demo Webinar] Registered";
    let (id_a, id_b) = tokio::join!(resolve_patiently(&a, name), resolve_patiently(&b, name));
    assert_eq!(id_a, id_b);
    let named: Vec<u64> = simulator.tags().into_iter().filter(|(_, tag)| tag == name).map(|(id, _)| id).collect();
    assert_eq!(named, [id_a], "exactly one tag of that name in KlickTipp");
    assert_eq!(simulator.calls_by_endpoint().get("POST /tag").copied(), Some(1));
    simulator.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// SQS

#[tokio::test]
async fn a_duplicate_dedup_id_within_the_window_is_delivered_once() {
    let moto = Moto::start().await;
    let queue = moto.create_queue(QueueSettings::default()).await;
    // Ingest answering the same webhook twice (the platform retried) sends the same event twice.
    let message = outgoing("contact-hash", "zoom:event-1");
    queue.send(std::slice::from_ref(&message)).await.expect("first send");
    queue.send(&[message.clone(), message]).await.expect("resends are accepted");
    let delivered = queue.receive(10).await.expect("receive");
    assert_eq!(delivered.len(), 1);
    queue.ack(&delivered[0]).await.expect("ack");
    assert!(queue.receive(10).await.expect("receive").is_empty());
    assert_eq!(queue.depth().await.expect("depth"), 0);
}

#[tokio::test]
async fn a_message_that_keeps_failing_lands_in_the_dead_letter_queue() {
    let moto = Moto::start().await;
    let settings = QueueSettings { max_receive_count: TEMPLATE_MAX_RECEIVE_COUNT, ..QueueSettings::default() };
    let queue = moto.create_queue(settings).await;
    queue.send(&[outgoing("g", "poison"), outgoing("g", "behind-it")]).await.expect("send");
    for attempt in 1..=TEMPLATE_MAX_RECEIVE_COUNT {
        let received = queue.receive(1).await.expect("receive");
        assert_eq!(received.len(), 1, "attempt {attempt}");
        assert_eq!((received[0].body.as_str(), received[0].receive_count), ("poison", attempt));
        queue.retry_later(&received[0], Duration::ZERO).await.expect("retry_later");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The next receive moves it to the DLQ and unblocks its group.
    let next = queue.receive(10).await.expect("receive");
    assert_eq!(next.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["behind-it"]);
    let dead = queue.dead_letters().await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].body.as_str(), dead[0].group_id.as_str()), ("poison", "g"));
    assert_eq!(dead[0].receive_count, TEMPLATE_MAX_RECEIVE_COUNT);
    assert_eq!(queue.dlq_depth().await.expect("DLQ depth"), 1, "peeking leaves it there");
}

/// A Lambda SQS record for a message received from moto (what the event source mapping sends).
fn lambda_record(message: &Message, queue: &MotoQueue) -> SqsMessage {
    let attributes: HashMap<String, String> = message
        .attributes()
        .map(|attributes| attributes.iter().map(|(name, value)| (name.as_str().to_owned(), value.clone())).collect())
        .unwrap_or_default();
    serde_json::from_value(serde_json::json!({
        "messageId": message.message_id(),
        "receiptHandle": message.receipt_handle(),
        "body": message.body(),
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": message.md5_of_body(),
        "eventSource": "aws:sqs",
        "eventSourceARN": format!("arn:aws:sqs:eu-central-1:123456789012:{}", queue.url().rsplit('/').next().unwrap_or("")),
        "awsRegion": "eu-central-1"
    }))
    .expect("a Lambda SQS record")
}

#[tokio::test]
async fn a_partial_batch_response_reports_the_failed_groups_later_messages() {
    let moto = Moto::start().await;
    let queue = moto.create_queue(QueueSettings::default()).await;
    let messages = [outgoing("a", "a1"), outgoing("b", "b1"), outgoing("a", "a2"), outgoing("b", "b2")];
    queue.send(&messages).await.expect("send");
    let received = queue.receive_raw(10).await;
    assert_eq!(received.len(), 4, "one receive returns both groups in order");
    let records: Vec<SqsMessage> = received.iter().map(|message| lambda_record(message, &queue)).collect();
    let queued: Vec<_> =
        records.iter().map(|record| queued_message_from_sqs_record(record).expect("complete")).collect();
    assert_eq!(
        queued.iter().map(|m| (m.group_id.as_str(), m.receive_count)).collect::<Vec<_>>(),
        [("a", 1), ("b", 1), ("a", 1), ("b", 1)]
    );
    assert!(
        received
            .iter()
            .all(|m| m.attributes().is_some_and(|a| a.contains_key(&MessageSystemAttributeName::SequenceNumber)))
    );
    // Group a's head is retried; a2 is reported too, even though the engine calls it done.
    let outcome = |index: usize, disposition: Disposition| MessageOutcome {
        message_id: queued[index].message_id.clone(),
        event_id: None,
        disposition,
    };
    let outcomes = [
        outcome(0, Disposition::RetryLater { delay: Duration::from_secs(1), reason: "KlickTipp 429".into() }),
        outcome(1, Disposition::Done(MessageResult::Applied)),
        outcome(2, Disposition::Done(MessageResult::Applied)),
        outcome(3, Disposition::Done(MessageResult::Applied)),
    ];
    let settlements = settle(&records, &outcomes);
    let response = batch_response(&records, &settlements);
    let failed: Vec<&str> =
        response.batch_item_failures.iter().map(|failure| failure.item_identifier.as_str()).collect();
    assert_eq!(failed, [queued[0].message_id.as_str(), queued[2].message_id.as_str()]);
    assert_eq!(settlements[2], Settlement::Fail { delay: Some(Duration::from_secs(1)) });
    // What Lambda does with that answer: delete the successes, leave the failures.
    for index in [1, 3] {
        queue.ack(&queued[index]).await.expect("delete a success");
    }
    for index in [0, 2] {
        queue.retry_later(&queued[index], Duration::from_secs(1)).await.expect("delay the retry");
    }
    assert_eq!(queue.depth().await.expect("depth"), 2, "only group a is left");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // Redelivered after the delay. (SQS returns a1 then a2; moto may hand out a2 alone first
    // when several in-flight messages of a group turn visible at once, so only the group is
    // checked here.)
    let again = queue.receive(10).await.expect("receive");
    assert!(!again.is_empty());
    assert!(again.iter().all(|m| m.group_id == "a" && m.receive_count == 2), "{again:?}");
}

#[tokio::test]
async fn port_suite_zoom_ledger() {
    let moto = Moto::start().await;
    let table = moto.create_events_table().await;
    let ledger = webinar_bridge::adapters::dynamodb::DynamoZoomLedger::new(moto.dynamodb(), table);
    port_suite::zoom_ledger_suite(&ledger).await;
}

// ---------------------------------------------------------------------------------------------
// History table

/// A story longer than one delete batch (25) reads back in order, steps at the same instant in
/// append order, each item carrying its TTL and no address; `forget_contact` removes it all.
#[tokio::test]
async fn a_long_story_reads_back_in_order_and_is_forgotten_completely() {
    let moto = Moto::start().await;
    let table = moto.create_history_table().await;
    let log = DynamoHistoryLog::new(moto.dynamodb(), table.clone());
    let email = webinar_bridge::domain::Email::parse("long.story@example.com").expect("valid");
    let t0 = ManualClock::start();
    let mut written = Vec::new();
    for n in 0..30_i64 {
        let id = event_id(&format!("zoom-long-{n:02}"));
        // Received and applied at the same instant: append order decides.
        let at = t0 + chrono::Duration::seconds(n);
        for outcome in [HistoryOutcome::Duplicate, HistoryOutcome::Applied] {
            let entry = HistoryEntry::outcome(&email, &id, at, outcome);
            log.append(&entry, RETENTION).await.expect("append");
            written.push(entry);
        }
    }
    assert_eq!(log.for_contact(&email.group_hash(), t0).await.expect("story"), written);

    let items = moto.dynamodb().scan().table_name(&table).send().await.expect("scan").items.unwrap_or_default();
    assert_eq!(items.len(), 60);
    let expected_ttl = (t0 + chrono::Duration::from_std(RETENTION).expect("retention")).timestamp().to_string();
    assert!(items.iter().any(|item| item.get(HISTORY_TTL_ATTRIBUTE) == Some(&AttributeValue::N(expected_ttl.clone()))));
    assert!(!format!("{items:?}").contains("long.story@example.com"), "items hold the contact hash only");

    assert_eq!(log.forget_contact(&email.group_hash()).await.expect("forget"), 60);
    let left = moto.dynamodb().scan().table_name(&table).send().await.expect("scan").items.unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}
