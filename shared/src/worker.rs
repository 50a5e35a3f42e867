//! The embedded consumer loop: receive a batch, process it, acknowledge or delay each message.

use crate::consume::{Consumer, Disposition, MessageResult};
use crate::ports::{EventQueue, OutgoingMessage, PortResult, QueuedMessage};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// SQS allows at most ten messages per receive; the embedded queue follows the same shape.
pub const BATCH_SIZE: usize = 10;

/// Counts of what one or more batches did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchSummary {
    pub received: usize,
    pub applied: usize,
    pub duplicates: usize,
    pub flagged: usize,
    pub rejected: usize,
    pub skipped: usize,
    pub unreadable: usize,
    pub retried: usize,
    pub abandoned: usize,
}

impl BatchSummary {
    pub fn add(&mut self, other: &BatchSummary) {
        self.received += other.received;
        self.applied += other.applied;
        self.duplicates += other.duplicates;
        self.flagged += other.flagged;
        self.rejected += other.rejected;
        self.skipped += other.skipped;
        self.unreadable += other.unreadable;
        self.retried += other.retried;
        self.abandoned += other.abandoned;
    }
}

/// Receives and processes one batch. `received == 0` means nothing was visible.
pub async fn process_one_batch(queue: &dyn EventQueue, consumer: &Consumer) -> PortResult<BatchSummary> {
    process_one_batch_before(queue, consumer, None).await
}

/// [`process_one_batch`] within `deadline` (as a Lambda invocation runs): no KlickTipp call or
/// wait runs past it, and unfinished groups go back to the queue with a delay.
pub async fn process_one_batch_before(
    queue: &dyn EventQueue,
    consumer: &Consumer,
    deadline: Option<Instant>,
) -> PortResult<BatchSummary> {
    let messages = queue.receive(BATCH_SIZE).await?;
    let mut summary = BatchSummary { received: messages.len(), ..BatchSummary::default() };
    if messages.is_empty() {
        return Ok(summary);
    }
    let outcomes = consumer.process_batch(&messages, deadline).await;
    for (message, outcome) in messages.iter().zip(outcomes) {
        match outcome.disposition {
            // Never deleted unread: kept byte for byte with its reason, for a redrive.
            Disposition::Done(MessageResult::Unreadable(reason)) => {
                summary.unreadable += 1;
                queue.dead_letter(message, &reason).await?;
            }
            Disposition::Done(result) => {
                match result {
                    MessageResult::Applied => summary.applied += 1,
                    MessageResult::Duplicate => summary.duplicates += 1,
                    MessageResult::Flagged => summary.flagged += 1,
                    MessageResult::Rejected(_) => summary.rejected += 1,
                    MessageResult::Skipped(_) => summary.skipped += 1,
                    MessageResult::Unreadable(_) => summary.unreadable += 1,
                }
                queue.ack(message).await?;
            }
            Disposition::RetryLater { delay, .. } => {
                summary.retried += 1;
                queue.retry_later(message, delay).await?;
            }
            Disposition::Abandoned => summary.abandoned += 1,
        }
    }
    Ok(summary)
}

/// Runs until `shutdown` turns true; the batch in flight is always finished first.
pub async fn run(queue: &dyn EventQueue, consumer: &Consumer, shutdown: watch::Receiver<bool>, idle_wait: Duration) {
    run_woken(queue, consumer, shutdown, idle_wait, &Notify::new()).await;
}

/// [`run`], and an idle loop also wakes as soon as `wake` is notified (by a [`WakingQueue`] in
/// the same process), instead of waiting out `idle_wait`. The idle poll stays as the fallback
/// for messages another process enqueued and for delayed retries coming due.
pub async fn run_woken(
    queue: &dyn EventQueue,
    consumer: &Consumer,
    mut shutdown: watch::Receiver<bool>,
    idle_wait: Duration,
    wake: &Notify,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let wait = match process_one_batch(queue, consumer).await {
            Ok(summary) if summary.received > 0 => continue,
            Ok(_) => idle_wait,
            Err(error) => {
                tracing::error!(%error, "consumer loop: queue error");
                idle_wait * 5
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// An [`EventQueue`] that notifies `wake` after every successful send, so the consumer loop in
/// the same process ([`run_woken`]) starts at once. A send that lands while the loop is busy
/// leaves one stored permit: the loop then looks once more before it sleeps.
pub struct WakingQueue {
    inner: Arc<dyn EventQueue>,
    wake: Arc<Notify>,
}

impl WakingQueue {
    pub fn new(inner: Arc<dyn EventQueue>, wake: Arc<Notify>) -> Self {
        Self { inner, wake }
    }
}

#[async_trait]
impl EventQueue for WakingQueue {
    async fn send(&self, messages: &[OutgoingMessage]) -> PortResult<()> {
        self.inner.send(messages).await?;
        self.wake.notify_one();
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
