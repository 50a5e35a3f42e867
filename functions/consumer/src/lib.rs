//! The consumer Lambda's handler: an SQS FIFO batch goes through the engine's
//! [`Consumer::process_batch`] and comes back as a partial batch response
//! (`ReportBatchItemFailures`, DESIGN 1).
//!
//! - Finished messages are left for Lambda to delete; the others are reported as failures.
//! - A retry gets its delay through ChangeMessageVisibility (best effort).
//! - FIFO: once a group has a failure, every later message of that group in the batch is a failure
//!   too, or SQS would deliver them ahead of the one that failed. The engine already retries whole
//!   groups; the edge enforces it again so no engine change can break ordering.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::join_all;
use lambda_runtime::LambdaEvent;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use webinar_bridge::adapters::aws_secrets::{SdkConfig, StartupError};
use webinar_bridge::adapters::dynamodb::{DynamoContactStore, DynamoEventLog, DynamoTagDirectory};
use webinar_bridge::adapters::dynamodb_history::DynamoHistoryLog;
use webinar_bridge::adapters::sqs::SqsQueue;
use webinar_bridge::config::{BridgeConfig, ConfigError, KlickTippMode, KlickTippSettings};
use webinar_bridge::consume::{ApplyMode, Consumer, ConsumerOptions, Disposition, MessageOutcome, MessageResult};
use webinar_bridge::klicktipp::{KlickTippClient, KlickTippError};
use webinar_bridge::ports::{Clock, EventQueue, QueuedMessage, SystemClock};
use webinar_bridge::tag_resolver::TagResolver;

/// Time kept back from the invocation deadline: groups not started by then are handed back
/// untouched instead of being cut off mid-way by the Lambda timeout.
pub const SAFETY_MARGIN: Duration = Duration::from_secs(5);

const GROUP_ATTRIBUTE: &str = "MessageGroupId";
const RECEIVE_COUNT_ATTRIBUTE: &str = "ApproximateReceiveCount";

#[derive(Debug, thiserror::Error)]
pub enum ConsumerStartupError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the KlickTipp client cannot start: {0}")]
    KlickTipp(#[from] KlickTippError),
}

/// The engine's view of one SQS record; `None` when a field every FIFO delivery has is missing.
pub fn queued_message_from_sqs_record(record: &SqsMessage) -> Option<QueuedMessage> {
    Some(QueuedMessage {
        message_id: record.message_id.clone()?,
        receipt: record.receipt_handle.clone()?,
        group_id: record.attributes.get(GROUP_ATTRIBUTE)?.clone(),
        body: record.body.clone()?,
        receive_count: record.attributes.get(RECEIVE_COUNT_ATTRIBUTE).and_then(|count| count.parse().ok()).unwrap_or(1),
    })
}

/// What happens to one record after the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Finished: Lambda deletes it.
    Delete,
    /// Reported as a batch item failure. `delay` sets its visibility; `None` leaves the queue's
    /// visibility timeout (a crash-like outcome, or a record the engine never saw).
    Fail { delay: Option<Duration> },
}

/// The settlement of each record, in batch order, with the FIFO rule applied per group.
pub fn settle(records: &[SqsMessage], outcomes: &[MessageOutcome]) -> Vec<Settlement> {
    let by_id: HashMap<&str, &MessageOutcome> =
        outcomes.iter().map(|outcome| (outcome.message_id.as_str(), outcome)).collect();
    // Group -> the delay of its first failure, which every later message of the group shares.
    let mut failed_groups: HashMap<&str, Option<Duration>> = HashMap::new();
    records
        .iter()
        .map(|record| {
            let own = record.message_id.as_deref().and_then(|id| by_id.get(id)).map_or(
                Settlement::Fail { delay: None },
                |outcome| match &outcome.disposition {
                    Disposition::Done(_) => Settlement::Delete,
                    Disposition::RetryLater { delay, .. } => Settlement::Fail { delay: Some(*delay) },
                    Disposition::Abandoned => Settlement::Fail { delay: None },
                },
            );
            let Some(group) = record.attributes.get(GROUP_ATTRIBUTE) else {
                return own;
            };
            if let Some(delay) = failed_groups.get(group.as_str()) {
                return Settlement::Fail { delay: *delay };
            }
            if let Settlement::Fail { delay } = own {
                failed_groups.insert(group, delay);
            }
            own
        })
        .collect()
}

/// The partial batch response: every failed record's message id.
pub fn batch_response(records: &[SqsMessage], settlements: &[Settlement]) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for (record, settlement) in records.iter().zip(settlements) {
        if matches!(settlement, Settlement::Fail { .. }) {
            match &record.message_id {
                Some(id) => response.add_failure(id.clone()),
                None => tracing::error!("a failed SQS record has no message id and cannot be reported"),
            }
        }
    }
    response
}

/// When to stop starting new groups: the invocation deadline less `margin`.
pub fn work_deadline(deadline: Option<SystemTime>, margin: Duration) -> Option<Instant> {
    let remaining = deadline?.duration_since(SystemTime::now()).unwrap_or_default().saturating_sub(margin);
    Some(Instant::now() + remaining)
}

/// How far in the past a deadline may lie and still be taken as one (clock skew).
const DEADLINE_SKEW: Duration = Duration::from_secs(60);

/// The invocation deadline (epoch milliseconds), or `None` when there is no usable one.
///
/// Lambda never starts an invocation past its deadline, so one far in the past is not an epoch
/// time: `cargo lambda watch` sends the timeout itself (600000). Believing it would hand every
/// batch back untouched until the messages reach the dead-letter queue; running without a cut-off
/// is the safe reading.
pub fn plausible_deadline(deadline_ms: u64, now: SystemTime) -> Option<SystemTime> {
    let deadline = SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms);
    if deadline_ms > 0 && deadline + DEADLINE_SKEW >= now {
        return Some(deadline);
    }
    if deadline_ms > 0 {
        tracing::warn!(deadline_ms, "ignoring an invocation deadline that lies in the past");
    }
    None
}

/// The invocation deadline of a runtime context (see [`plausible_deadline`]).
pub fn invocation_deadline(context: &lambda_runtime::Context) -> Option<SystemTime> {
    plausible_deadline(context.deadline, SystemTime::now())
}

fn apply_mode(klicktipp: &KlickTippSettings) -> Result<ApplyMode, ConfigError> {
    match klicktipp.mode() {
        KlickTippMode::Management => Ok(ApplyMode::Management),
        KlickTippMode::Listbuilding => Ok(ApplyMode::Listbuilding),
        KlickTippMode::Unconfigured => Err(ConfigError {
            variable: "KLICKTIPP_USERNAME",
            problem: "the consumer needs KlickTipp credentials (KLICKTIPP_USERNAME + KLICKTIPP_PASSWORD, the developer and customer keys, or KLICKTIPP_LISTBUILDING_APIKEY)".into(),
        }),
    }
}

/// The consumer function: built once per cold start, then called per batch.
pub struct ConsumerFunction {
    consumer: Consumer,
    queue: Arc<dyn EventQueue>,
    safety_margin: Duration,
}

impl ConsumerFunction {
    /// `queue` is only used to delay retries (ChangeMessageVisibility); Lambda deletes the rest.
    pub fn new(consumer: Consumer, queue: Arc<dyn EventQueue>) -> Self {
        Self { consumer, queue, safety_margin: SAFETY_MARGIN }
    }

    pub fn with_safety_margin(mut self, margin: Duration) -> Self {
        self.safety_margin = margin;
        self
    }

    /// Production wiring: DynamoDB tables, the SQS queue, and a KlickTipp client whose token
    /// bucket holds this instance's share of the account's rate (`BRIDGE_KLICKTIPP_RPS` divided
    /// by `BRIDGE_CONSUMER_CONCURRENCY`).
    pub fn from_config(sdk: &SdkConfig, config: &BridgeConfig) -> Result<Self, ConsumerStartupError> {
        let queue_url = BridgeConfig::require(&config.events_queue_url, "EVENTS_QUEUE_URL")?;
        let events_table = BridgeConfig::require(&config.events_table, "EVENTS_TABLE")?;
        let contacts_table = BridgeConfig::require(&config.contacts_table, "CONTACTS_TABLE")?;
        let mode = apply_mode(&config.klicktipp)?;
        let klicktipp = KlickTippClient::new(config.klicktipp.client_config(config.consumer_concurrency))?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let directory = Arc::new(DynamoTagDirectory::from_conf(sdk, contacts_table));
        let tags = TagResolver::new(directory, klicktipp.clone(), Arc::clone(&clock));
        let options = ConsumerOptions {
            retention: config.retention,
            listid: config.klicktipp.listid,
            mode,
            ..ConsumerOptions::default()
        };
        let mut consumer = Consumer::new(
            Arc::new(DynamoEventLog::from_conf(sdk, events_table)),
            Arc::new(DynamoContactStore::from_conf(sdk, contacts_table)),
            tags,
            klicktipp,
            config.settings.clone(),
            options,
            clock,
        );
        // Each event's outcome (DESIGN 12), in the history table.
        match &config.history_table {
            Some(table) => consumer = consumer.with_history(Arc::new(DynamoHistoryLog::from_conf(sdk, table))),
            None => tracing::warn!("HISTORY_TABLE is not set: contact stories are not recorded"),
        }
        let mut queue = SqsQueue::from_conf(sdk, queue_url);
        match &config.dead_letter_queue_url {
            Some(url) => queue = queue.with_dead_letter_queue(url),
            None => tracing::warn!(
                "DEAD_LETTER_QUEUE_URL is not set: unreadable messages stay in the queue until the redrive policy moves them"
            ),
        }
        Ok(Self::new(consumer, Arc::new(queue)))
    }

    pub fn consumer(&self) -> &Consumer {
        &self.consumer
    }

    /// The runtime's entry point.
    pub async fn handle_event(&self, event: LambdaEvent<SqsEvent>) -> SqsBatchResponse {
        let deadline = invocation_deadline(&event.context);
        self.handle(event.payload, deadline).await
    }

    /// Processes one batch. Never fails as a whole: every problem is a per-record failure.
    pub async fn handle(&self, event: SqsEvent, deadline: Option<SystemTime>) -> SqsBatchResponse {
        let records = event.records;
        let messages: Vec<Option<QueuedMessage>> = records.iter().map(queued_message_from_sqs_record).collect();
        let readable: Vec<QueuedMessage> = messages.iter().flatten().cloned().collect();
        if readable.len() < records.len() {
            tracing::error!(
                records = records.len(),
                readable = readable.len(),
                "SQS records without id, receipt, body or group"
            );
        }
        let remaining = deadline.map(|deadline| deadline.duration_since(SystemTime::now()).unwrap_or_default());
        tracing::debug!(
            records = records.len(),
            remaining_ms = remaining.map(|r| r.as_millis() as u64),
            "batch received"
        );
        let mut outcomes = self.consumer.process_batch(&readable, work_deadline(deadline, self.safety_margin)).await;
        self.dead_letter_unreadable(&readable, &mut outcomes).await;
        let settlements = settle(&records, &outcomes);
        self.delay_retries(&messages, &settlements).await;
        log_summary(&outcomes, &settlements);
        batch_response(&records, &settlements)
    }

    /// Moves each unreadable message to the dead-letter queue with its reason (DESIGN 6: never
    /// deleted unread). One that cannot be moved stays in the queue (reported as a failure with
    /// the queue's visibility timeout), so the redrive policy moves it in the end.
    async fn dead_letter_unreadable(&self, messages: &[QueuedMessage], outcomes: &mut [MessageOutcome]) {
        for outcome in outcomes.iter_mut() {
            let Disposition::Done(MessageResult::Unreadable(reason)) = &outcome.disposition else { continue };
            let Some(message) = messages.iter().find(|message| message.message_id == outcome.message_id) else {
                continue;
            };
            if let Err(error) = self.queue.dead_letter(message, reason).await {
                tracing::error!(message_id = %message.message_id, %error, "could not dead-letter an unreadable message; it stays in the queue");
                outcome.disposition = Disposition::Abandoned;
            }
        }
    }

    /// Sets each retry's visibility. Best effort: without it the message returns after the
    /// queue's visibility timeout instead, a different delay but never a lost message.
    async fn delay_retries(&self, messages: &[Option<QueuedMessage>], settlements: &[Settlement]) {
        let retries =
            messages.iter().zip(settlements).filter_map(|(message, settlement)| match (message, settlement) {
                (Some(message), Settlement::Fail { delay: Some(delay) }) => Some((message, *delay)),
                _ => None,
            });
        let results = join_all(
            retries.map(|(message, delay)| async move { (message, self.queue.retry_later(message, delay).await) }),
        )
        .await;
        for (message, result) in results {
            if let Err(error) = result {
                tracing::warn!(message_id = %message.message_id, %error, "could not set the retry delay");
            }
        }
    }
}

fn log_summary(outcomes: &[MessageOutcome], settlements: &[Settlement]) {
    let done = |wanted: fn(&MessageResult) -> bool| {
        outcomes.iter().filter(|o| matches!(&o.disposition, Disposition::Done(result) if wanted(result))).count()
    };
    tracing::info!(
        records = settlements.len(),
        applied = done(|r| matches!(r, MessageResult::Applied)),
        duplicates = done(|r| matches!(r, MessageResult::Duplicate)),
        rejected = done(|r| matches!(r, MessageResult::Rejected(_))),
        skipped = done(|r| matches!(r, MessageResult::Skipped(_))),
        flagged = done(|r| matches!(r, MessageResult::Flagged)),
        unreadable = done(|r| matches!(r, MessageResult::Unreadable(_))),
        failed = settlements.iter().filter(|s| matches!(s, Settlement::Fail { .. })).count(),
        "batch"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, group: &str) -> SqsMessage {
        let mut record = SqsMessage::default();
        record.message_id = Some(id.into());
        record.receipt_handle = Some(format!("receipt-{id}"));
        record.body = Some("{}".into());
        record.attributes = HashMap::from([
            (GROUP_ATTRIBUTE.to_owned(), group.to_owned()),
            (RECEIVE_COUNT_ATTRIBUTE.to_owned(), "2".to_owned()),
        ]);
        record
    }

    fn outcome(id: &str, disposition: Disposition) -> MessageOutcome {
        MessageOutcome { message_id: id.into(), event_id: None, disposition }
    }

    fn retry(seconds: u64) -> Disposition {
        Disposition::RetryLater { delay: Duration::from_secs(seconds), reason: "test".into() }
    }

    #[test]
    fn a_record_becomes_a_queued_message() {
        let message = queued_message_from_sqs_record(&record("m1", "g")).expect("complete record");
        assert_eq!((message.message_id.as_str(), message.group_id.as_str(), message.receive_count), ("m1", "g", 2));
        let mut without_group = record("m2", "g");
        without_group.attributes.clear();
        assert_eq!(queued_message_from_sqs_record(&without_group), None);
    }

    #[test]
    fn later_messages_of_a_failed_group_fail_too_even_if_the_engine_finished_them() {
        let records = [record("a1", "a"), record("b1", "b"), record("a2", "a"), record("b2", "b")];
        let outcomes = [
            outcome("a1", retry(4)),
            outcome("b1", Disposition::Done(MessageResult::Applied)),
            outcome("a2", Disposition::Done(MessageResult::Applied)),
            outcome("b2", Disposition::Done(MessageResult::Duplicate)),
        ];
        let settlements = settle(&records, &outcomes);
        let four = Settlement::Fail { delay: Some(Duration::from_secs(4)) };
        assert_eq!(settlements, [four.clone(), Settlement::Delete, four, Settlement::Delete]);
        let failures: Vec<String> = batch_response(&records, &settlements)
            .batch_item_failures
            .into_iter()
            .map(|failure| failure.item_identifier)
            .collect();
        assert_eq!(failures, ["a1", "a2"]);
    }

    #[test]
    fn abandoned_and_unknown_records_fail_without_a_delay() {
        let records = [record("a1", "a"), record("a2", "a"), record("c1", "c")];
        let outcomes = [outcome("a1", Disposition::Abandoned), outcome("a2", retry(1))];
        assert_eq!(settle(&records, &outcomes), vec![Settlement::Fail { delay: None }; 3]);
    }

    #[test]
    fn no_deadline_means_no_cut_off_and_a_past_one_means_now() {
        assert_eq!(work_deadline(None, SAFETY_MARGIN), None);
        let past = work_deadline(Some(SystemTime::now()), SAFETY_MARGIN).expect("a deadline");
        assert!(past <= Instant::now());
        let later =
            work_deadline(Some(SystemTime::now() + Duration::from_secs(60)), SAFETY_MARGIN).expect("a deadline");
        assert!(later > Instant::now() + Duration::from_secs(50));
        assert_eq!(invocation_deadline(&lambda_runtime::Context::default()), None);
    }

    #[test]
    fn only_a_plausible_epoch_deadline_is_believed() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_768_478_400);
        let in_a_minute = 1_768_478_460_000;
        assert_eq!(
            plausible_deadline(in_a_minute, now),
            Some(SystemTime::UNIX_EPOCH + Duration::from_millis(in_a_minute))
        );
        // Just missed (skew): still a deadline, so the batch is handed back at once.
        assert!(plausible_deadline(1_768_478_399_000, now).is_some());
        // A duration (cargo lambda's 600000) or nothing at all: no cut-off.
        assert_eq!(plausible_deadline(600_000, now), None);
        assert_eq!(plausible_deadline(0, now), None);
    }
}
