//! [`EventQueue`] on an SQS FIFO queue (DESIGN 1): one message group per contact, the event id as
//! the deduplication id, the JSON event as the body. The dead-letter queue is SQS's own redrive
//! policy, so `retry_later` only sets the visibility timeout.

use crate::ports::{
    DeadLetter, DeadLetters, EventQueue, OutgoingMessage, PortError, PortResult, QueuedMessage, RedriveMethod,
    RedriveSelection, Redriven,
};
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    Message, MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use std::time::Duration;

pub use aws_sdk_sqs;

/// SQS accepts at most ten entries per batch call and per receive.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// Payload cap per batch call. SQS allows 1 MiB now; 256 KiB also fits queues created with the
/// older default `MaximumMessageSize`.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// The longest visibility timeout SQS accepts.
pub const MAX_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(12 * 3600);

/// Error codes meaning "this receipt is from an earlier delivery": the message is someone
/// else's now (or gone), so there is nothing left for this delivery to do.
const STALE_RECEIPT_CODES: [&str; 4] =
    ["ReceiptHandleIsInvalid", "MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight", "InvalidIdFormat"];

/// Maps any SDK failure onto [`PortError::Unavailable`] with the service's error code, never
/// the request itself. Shared by the AWS adapters.
pub(crate) fn unavailable<E, R>(operation: &str, error: &SdkError<E, R>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error.as_service_error() {
        Some(service) => PortError::Unavailable(format!(
            "{operation}: {} ({})",
            service.code().unwrap_or("unknown error"),
            service.message().unwrap_or("no message")
        )),
        // Timeouts, connection failures, unreadable answers.
        None => PortError::Unavailable(format!("{operation}: {}", DisplayErrorContext(error))),
    }
}

fn is_stale_receipt<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    error
        .as_service_error()
        .and_then(ProvideErrorMetadata::code)
        .is_some_and(|code| STALE_RECEIPT_CODES.contains(&code))
}

/// Whole seconds for SQS, rounded up so a retry never comes early, capped at 12 hours.
fn visibility_seconds(delay: Duration) -> i32 {
    let capped = delay.min(MAX_VISIBILITY_TIMEOUT);
    let seconds = capped.as_secs() + u64::from(capped.subsec_nanos() > 0);
    i32::try_from(seconds).unwrap_or(i32::MAX)
}

/// Splits messages into SendMessageBatch calls: at most ten entries and `MAX_BATCH_BYTES` each.
fn batches(messages: &[OutgoingMessage]) -> Vec<&[OutgoingMessage]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, message) in messages.iter().enumerate() {
        let size = message.body.len();
        if index > start && (index - start == MAX_BATCH_ENTRIES || bytes + size > MAX_BATCH_BYTES) {
            chunks.push(&messages[start..index]);
            (start, bytes) = (index, 0);
        }
        bytes += size;
    }
    if start < messages.len() {
        chunks.push(&messages[start..]);
    }
    chunks
}

/// The FIFO events queue.
/// The message attribute that carries why the consumer dead-lettered a message.
pub const DEAD_LETTER_REASON_ATTRIBUTE: &str = "DeadLetterReason";

/// Reasons are cut to this many characters (message attributes count against the 256 KB).
const MAX_REASON_CHARS: usize = 1000;

#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    dead_letter_url: Option<String>,
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self { client, queue_url: queue_url.into(), dead_letter_url: None }
    }

    /// The dead-letter queue [`EventQueue::dead_letter`] sends to (the redrive policy's target).
    pub fn with_dead_letter_queue(mut self, url: impl Into<String>) -> Self {
        self.dead_letter_url = Some(url.into());
        self
    }

    pub fn from_conf(config: &aws_config::SdkConfig, queue_url: impl Into<String>) -> Self {
        Self::new(Client::new(config), queue_url)
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn send_batch(&self, chunk: &[OutgoingMessage]) -> PortResult<()> {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(index, message)| {
                SendMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .message_group_id(&message.group_id)
                    .message_deduplication_id(&message.dedup_id)
                    .message_body(&message.body)
                    .build()
                    .map_err(|error| PortError::Corrupt(format!("SendMessageBatch entry: {error}")))
            })
            .collect::<PortResult<Vec<_>>>()?;
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|error| unavailable("SendMessageBatch", &error))?;
        // A partly failed batch fails the whole send: the sender retries and the dedup ids make
        // the entries that did go through duplicates.
        match output.failed().first() {
            None => Ok(()),
            Some(failed) => Err(PortError::Unavailable(format!(
                "SendMessageBatch: {} of {} entries failed, e.g. {} ({})",
                output.failed().len(),
                chunk.len(),
                failed.code(),
                failed.message().unwrap_or("no message")
            ))),
        }
    }
}

/// A received SQS message as the port's [`QueuedMessage`]; `None` when SQS left out a field a
/// FIFO delivery always has.
fn queued_message(message: &Message) -> Option<QueuedMessage> {
    let attribute =
        |name: MessageSystemAttributeName| message.attributes().and_then(|attributes| attributes.get(&name));
    Some(QueuedMessage {
        message_id: message.message_id()?.to_owned(),
        receipt: message.receipt_handle()?.to_owned(),
        group_id: attribute(MessageSystemAttributeName::MessageGroupId)?.clone(),
        body: message.body().unwrap_or_default().to_owned(),
        receive_count: attribute(MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|count| count.parse().ok())
            .unwrap_or(1),
    })
}

#[async_trait]
impl EventQueue for SqsQueue {
    async fn send(&self, messages: &[OutgoingMessage]) -> PortResult<()> {
        for chunk in batches(messages) {
            self.send_batch(chunk).await?;
        }
        Ok(())
    }

    async fn receive(&self, max: usize) -> PortResult<Vec<QueuedMessage>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.min(MAX_BATCH_ENTRIES) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .send()
            .await
            .map_err(|error| unavailable("ReceiveMessage", &error))?;
        output
            .messages()
            .iter()
            .map(|message| {
                queued_message(message).ok_or_else(|| {
                    PortError::Corrupt("ReceiveMessage: a message without id, receipt or group id".into())
                })
            })
            .collect()
    }

    async fn ack(&self, message: &QueuedMessage) -> PortResult<()> {
        let result =
            self.client.delete_message().queue_url(&self.queue_url).receipt_handle(&message.receipt).send().await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if is_stale_receipt(&error) => {
                tracing::debug!(message_id = %message.message_id, "ack with a stale receipt ignored");
                Ok(())
            }
            Err(error) => Err(unavailable("DeleteMessage", &error)),
        }
    }

    async fn retry_later(&self, message: &QueuedMessage, delay: Duration) -> PortResult<()> {
        let result = self
            .client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(&message.receipt)
            .visibility_timeout(visibility_seconds(delay))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if is_stale_receipt(&error) => {
                tracing::debug!(message_id = %message.message_id, "retry with a stale receipt ignored");
                Ok(())
            }
            Err(error) => Err(unavailable("ChangeMessageVisibility", &error)),
        }
    }

    /// Sends the same body, group and (as dedup id) message id to the dead-letter queue with the
    /// reason as a message attribute, then deletes the original. Without a dead-letter queue
    /// configured it fails, so the message stays and the redrive policy moves it in the end.
    async fn dead_letter(&self, message: &QueuedMessage, reason: &str) -> PortResult<()> {
        let Some(dead_letter_url) = &self.dead_letter_url else {
            return Err(PortError::Unavailable("no dead-letter queue configured (DEAD_LETTER_QUEUE_URL)".into()));
        };
        let reason: String = reason.chars().take(MAX_REASON_CHARS).collect();
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(if reason.is_empty() { "unreadable".to_owned() } else { reason })
            .build()
            .map_err(|error| PortError::Corrupt(format!("dead-letter reason attribute: {error}")))?;
        self.client
            .send_message()
            .queue_url(dead_letter_url)
            .message_group_id(&message.group_id)
            .message_deduplication_id(dedup_id_for(&message.message_id))
            .message_body(&message.body)
            .message_attributes(DEAD_LETTER_REASON_ATTRIBUTE, attribute)
            .send()
            .await
            .map_err(|error| unavailable("SendMessage (dead-letter queue)", &error))?;
        self.ack(message).await
    }
}

// ---------------------------------------------------------------------------------------------
// Dead letters

/// How long a listing or redrive holds the dead letters it received before giving them back.
const DEAD_LETTER_HOLD_SECONDS: i32 = 60;

/// The dead-letter queue beside the FIFO events queue: list (a peek: receive, then visible
/// again), redrive, erase.
///
/// A FIFO receive returns no more of a group while some of it is held, so a listing sees at
/// most ten messages per group; a redrive or erasure deletes what it takes, which frees the
/// group, and goes on until the queue has nothing more to give.
#[derive(Clone, Debug)]
pub struct SqsDeadLetters {
    client: Client,
    queue_url: String,
    dead_letter_url: String,
}

/// A received message and the receipt to give it back or delete it with.
struct Held {
    letter: DeadLetter,
    receipt: String,
}

impl SqsDeadLetters {
    pub fn new(client: Client, queue_url: impl Into<String>, dead_letter_url: impl Into<String>) -> Self {
        Self { client, queue_url: queue_url.into(), dead_letter_url: dead_letter_url.into() }
    }

    /// One receive of up to ten messages from `url`, held for `DEAD_LETTER_HOLD_SECONDS`.
    async fn receive_held(&self, url: &str) -> PortResult<Vec<Held>> {
        let output = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(MAX_BATCH_ENTRIES as i32)
            .visibility_timeout(DEAD_LETTER_HOLD_SECONDS)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_attribute_names(DEAD_LETTER_REASON_ATTRIBUTE)
            .send()
            .await
            .map_err(|error| unavailable("ReceiveMessage (dead letters)", &error))?;
        Ok(output
            .messages()
            .iter()
            .filter_map(|message| {
                let queued = queued_message(message)?;
                let reason = message
                    .message_attributes()
                    .and_then(|attributes| attributes.get(DEAD_LETTER_REASON_ATTRIBUTE))
                    .and_then(|value| value.string_value())
                    .map(str::to_owned);
                Some(Held {
                    letter: DeadLetter {
                        message_id: queued.message_id,
                        group_id: queued.group_id,
                        body: queued.body,
                        // This peek is itself a receive.
                        receive_count: queued.receive_count.saturating_sub(1),
                        reason,
                    },
                    receipt: queued.receipt,
                })
            })
            .collect())
    }

    /// Makes held messages visible again at once.
    async fn give_back(&self, url: &str, held: &[Held]) {
        for message in held {
            let result = self
                .client
                .change_message_visibility()
                .queue_url(url)
                .receipt_handle(&message.receipt)
                .visibility_timeout(0)
                .send()
                .await;
            if let Err(error) = result {
                // It becomes visible by itself when the hold ends.
                tracing::warn!(error = %DisplayErrorContext(&error), "could not release a held message");
            }
        }
    }

    async fn delete(&self, url: &str, receipt: &str) -> PortResult<()> {
        self.client
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|error| unavailable("DeleteMessage", &error))?;
        Ok(())
    }

    /// Receives everything `url` gives, handing each message to `take`: messages it takes
    /// (returns true for) are deleted; the others are given back at the end.
    async fn sweep<F, Fut>(&self, url: &str, mut take: F) -> PortResult<Vec<DeadLetter>>
    where
        F: FnMut(&DeadLetter) -> Fut + Send,
        Fut: std::future::Future<Output = PortResult<bool>> + Send,
    {
        let (mut taken, mut kept) = (Vec::new(), Vec::new());
        let result = async {
            loop {
                let batch = self.receive_held(url).await?;
                if batch.is_empty() {
                    return Ok(());
                }
                for held in batch {
                    if take(&held.letter).await? {
                        self.delete(url, &held.receipt).await?;
                        taken.push(held.letter);
                    } else {
                        kept.push(held);
                    }
                }
            }
        }
        .await;
        self.give_back(url, &kept).await;
        result.map(|()| taken)
    }

    /// The queue's ARN, for the message-move task.
    async fn arn(&self, url: &str) -> PortResult<String> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|error| unavailable("GetQueueAttributes", &error))?;
        output
            .attributes()
            .and_then(|attributes| attributes.get(&QueueAttributeName::QueueArn))
            .cloned()
            .ok_or_else(|| PortError::Corrupt("GetQueueAttributes: no QueueArn".into()))
    }

    /// Starts SQS's message-move task from the dead-letter queue back to its source queue; the
    /// error text when the service refuses (moto does not implement it).
    async fn start_move_task(&self) -> PortResult<Result<(), String>> {
        let source = self.arn(&self.dead_letter_url).await?;
        let destination = self.arn(&self.queue_url).await?;
        let result = self.client.start_message_move_task().source_arn(source).destination_arn(destination).send().await;
        Ok(match result {
            Ok(_) => Ok(()),
            Err(error) => Err(match error.as_service_error() {
                Some(service) => format!(
                    "StartMessageMoveTask: {} ({})",
                    service.code().unwrap_or("unsupported"),
                    service.message().unwrap_or("no message")
                ),
                None => format!("StartMessageMoveTask: {}", DisplayErrorContext(&error)),
            }),
        })
    }

    /// Receive, send to the queue (same group, a new deduplication id so the queue's window
    /// does not drop it) and delete, for each selected dead letter.
    async fn resend(&self, selection: &RedriveSelection) -> PortResult<Vec<DeadLetter>> {
        let queue_url = self.queue_url.clone();
        let client = self.client.clone();
        self.sweep(&self.dead_letter_url, |letter| {
            let selected = selection.selects(letter);
            let (client, queue_url, letter) = (client.clone(), queue_url.clone(), letter.clone());
            async move {
                if !selected {
                    return Ok(false);
                }
                client
                    .send_message()
                    .queue_url(queue_url)
                    .message_group_id(&letter.group_id)
                    .message_deduplication_id(dedup_id_for(&format!(
                        "redrive-{}-{}",
                        letter.message_id,
                        rand::random::<u64>()
                    )))
                    .message_body(&letter.body)
                    .send()
                    .await
                    .map_err(|error| unavailable("SendMessage (redrive)", &error))?;
                Ok(true)
            }
        })
        .await
    }
}

#[async_trait]
impl DeadLetters for SqsDeadLetters {
    async fn list(&self, limit: usize) -> PortResult<Vec<DeadLetter>> {
        let mut held = Vec::new();
        let result = async {
            while held.len() < limit {
                let batch = self.receive_held(&self.dead_letter_url).await?;
                if batch.is_empty() {
                    break;
                }
                held.extend(batch);
            }
            Ok::<_, PortError>(())
        }
        .await;
        self.give_back(&self.dead_letter_url, &held).await;
        result?;
        Ok(held.into_iter().take(limit).map(|held| held.letter).collect())
    }

    /// `All` tries the message-move task first and falls back to receive, send and delete when
    /// SQS refuses it; a single message always goes by receive, send and delete.
    async fn redrive(&self, selection: &RedriveSelection) -> PortResult<Redriven> {
        if *selection == RedriveSelection::All {
            let listed = self.list(usize::MAX).await?;
            if listed.is_empty() {
                return Ok(Redriven { method: RedriveMethod::MoveTask, moved: Vec::new(), note: None });
            }
            match self.start_move_task().await? {
                Ok(()) => return Ok(Redriven { method: RedriveMethod::MoveTask, moved: listed, note: None }),
                Err(refused) => {
                    tracing::info!(%refused, "message-move task unavailable; redriving by receive, send and delete");
                    let moved = self.resend(selection).await?;
                    return Ok(Redriven { method: RedriveMethod::Resend, moved, note: Some(refused) });
                }
            }
        }
        let moved = self.resend(selection).await?;
        Ok(Redriven { method: RedriveMethod::Resend, moved, note: None })
    }

    /// Sweeps the dead-letter queue and then the queue itself. Messages of other contacts the
    /// sweep held are given back at once (their receive count on the queue goes up by one).
    async fn erase_group(&self, group_id: &str) -> PortResult<usize> {
        let mut erased = 0;
        for url in [&self.dead_letter_url, &self.queue_url] {
            let group = group_id.to_owned();
            erased += self.sweep(url, move |letter| std::future::ready(Ok(letter.group_id == group))).await?.len();
        }
        Ok(erased)
    }
}

/// A FIFO deduplication id (at most 128 characters) from a message id.
fn dedup_id_for(message_id: &str) -> String {
    message_id.chars().filter(|c| c.is_ascii_graphic()).take(128).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(size: usize) -> OutgoingMessage {
        OutgoingMessage { group_id: "g".into(), dedup_id: "d".into(), body: "x".repeat(size) }
    }

    #[test]
    fn batches_hold_at_most_ten_entries() {
        let messages: Vec<_> = (0..23).map(|_| message(10)).collect();
        let sizes: Vec<usize> = batches(&messages).iter().map(|chunk| chunk.len()).collect();
        assert_eq!(sizes, [10, 10, 3]);
        assert!(batches(&[]).is_empty());
    }

    #[test]
    fn batches_stay_under_the_payload_cap() {
        let messages: Vec<_> = (0..4).map(|_| message(100 * 1024)).collect();
        let sizes: Vec<usize> = batches(&messages).iter().map(|chunk| chunk.len()).collect();
        assert_eq!(sizes, [2, 2]);
        // A single oversized body still goes alone; SQS decides.
        assert_eq!(batches(&[message(300 * 1024)]).len(), 1);
    }

    #[test]
    fn visibility_rounds_up_and_caps_at_twelve_hours() {
        assert_eq!(visibility_seconds(Duration::ZERO), 0);
        assert_eq!(visibility_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(visibility_seconds(Duration::from_secs(60)), 60);
        assert_eq!(visibility_seconds(Duration::from_secs(86_400)), 43_200);
    }
}
