//! The outside systems the engine depends on, one small trait each (DESIGN 2).
//!
//! Adapters: `adapters::memory` (tests), `adapters::sqlite` (embedded, `serve`), `adapters::sqs`
//! and `adapters::dynamodb` (AWS). The same integration suite runs against all of them.

use crate::domain::{ContactRecord, Email, EventId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Failure of a port call. Adapters map their own errors onto these so the engine can decide
/// between retrying and giving up without knowing the backend.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The backend is unreachable, throttling or timed out: retry later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A conditional write lost against a concurrent writer: reload and redo.
    #[error("the record changed concurrently (version conflict)")]
    VersionConflict,
    /// Stored data cannot be read back (corrupt or from an incompatible version): permanent.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// The claim this worker held is gone: its lease ran out and another worker took the event
    /// over (or finished it). The new owner records the outcome; this worker must not.
    #[error("the claim on this event was taken over by another worker")]
    ClaimLost,
    /// The record is too large for the store even in its compact form: permanent, never retried.
    #[error("the stored record would be {bytes} bytes, over the store's limit of {limit} bytes")]
    TooLarge { bytes: usize, limit: usize },
}

impl PortError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self, PortError::Corrupt(_) | PortError::ClaimLost | PortError::TooLarge { .. })
    }
}

pub type PortResult<T> = Result<T, PortError>;

/// Time, injectable so lease and TTL behaviour can be tested without sleeping.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

// ---------------------------------------------------------------------------------------------
// Queue

/// A message to enqueue. FIFO: one group per contact, deduplicated by event id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub group_id: String,
    pub dedup_id: String,
    pub body: String,
}

/// A received message. `receipt` identifies this delivery (for ack / retry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub message_id: String,
    pub receipt: String,
    pub group_id: String,
    pub body: String,
    /// How many times this message has been received, this delivery included (1 = first).
    pub receive_count: u32,
}

/// A durable FIFO queue with per-group ordering, a deduplication window, visibility timeouts and
/// a dead-letter store (SQS FIFO semantics).
#[async_trait]
pub trait EventQueue: Send + Sync {
    /// Enqueues messages; a dedup id seen within the window is accepted and dropped.
    async fn send(&self, messages: &[OutgoingMessage]) -> PortResult<()>;
    /// Up to `max` visible messages. Never returns a message whose group has an earlier
    /// message in flight, so one contact's messages are processed in order, one batch at a time.
    async fn receive(&self, max: usize) -> PortResult<Vec<QueuedMessage>>;
    /// Done with it: delete.
    async fn ack(&self, message: &QueuedMessage) -> PortResult<()>;
    /// Make it visible again after `delay`. After the maximum receive count the next receive
    /// moves it to the dead-letter store instead of delivering it.
    async fn retry_later(&self, message: &QueuedMessage, delay: Duration) -> PortResult<()>;
    /// Moves a message this consumer cannot read to the dead-letter store at once, its body
    /// byte for byte and `reason` beside it, so a newer consumer can process it after a redrive
    /// (DESIGN 6: nothing is deleted unread). On error the message stays in the queue.
    async fn dead_letter(&self, message: &QueuedMessage, reason: &str) -> PortResult<()>;
}

// ---------------------------------------------------------------------------------------------
// Event log (idempotency records)

/// How an event ended (DESIGN 6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum FinalOutcome {
    Applied,
    /// Permanently refused by KlickTipp; never retried.
    Rejected(RejectionReason),
    /// Deliberately not applied (e.g. a non-registration in listbuilding mode).
    Skipped {
        reason: String,
    },
}

/// Why KlickTipp refused an event, as a user needs it to fix the cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectionReason {
    pub operation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_number: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum EventStatus {
    InProgress { lease_until: DateTime<Utc> },
    Completed(FinalOutcome),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub event_id: EventId,
    /// `WebinarEvent::fingerprint` of the first payload seen under this id.
    pub fingerprint: String,
    pub status: EventStatus,
    pub updated_at: DateTime<Utc>,
    /// When the record may be forgotten (DynamoDB TTL); after this a redelivery is new again.
    pub expires_at: DateTime<Utc>,
}

/// Result of trying to claim an event for processing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Ours until the lease ends: process it.
    Claimed,
    /// Already finished (a duplicate delivery): do nothing.
    Completed(FinalOutcome),
    /// Another worker holds a live lease: try again later.
    Busy,
    /// The id was seen with a different payload: flag it, never apply it.
    PayloadMismatch,
}

/// Who holds a claim: written with the claim, and checked by `complete` and `release`, so a
/// worker whose lease ran out and was taken over cannot finish or drop the new owner's claim.
/// One per processing run ([`ClaimToken::new`] is unique per process and call).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClaimToken(String);

impl ClaimToken {
    /// A token no other run uses: 128 random bits.
    pub fn new() -> Self {
        Self(format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>()))
    }

    /// A token read back from storage.
    pub fn from_stored(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ClaimToken {
    fn default() -> Self {
        Self::new()
    }
}

/// Idempotency records: claim with a lease (conditional write), then complete with a TTL.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Claims `event_id` for `owner` unless it is completed or leased by someone else. An
    /// expired lease is taken over (and its old owner loses it). `retention` sets the record's TTL.
    async fn claim(
        &self,
        event_id: &EventId,
        fingerprint: &str,
        owner: &ClaimToken,
        now: DateTime<Utc>,
        lease: Duration,
        retention: Duration,
    ) -> PortResult<Claim>;
    /// Records the final outcome of an event `owner` holds; `PortError::ClaimLost` when it does
    /// not (taken over, finished by another worker, released, or never claimed).
    async fn complete(
        &self,
        event_id: &EventId,
        owner: &ClaimToken,
        outcome: &FinalOutcome,
        now: DateTime<Utc>,
        retention: Duration,
    ) -> PortResult<()>;
    /// Gives `owner`'s claim back so a retry can take it at once (a failed run). Nothing to give
    /// back (no record, or a completed one) is fine; another worker's open claim is left alone
    /// and answered with `PortError::ClaimLost`.
    async fn release(&self, event_id: &EventId, owner: &ClaimToken) -> PortResult<()>;
    async fn get(&self, event_id: &EventId) -> PortResult<Option<EventRecord>>;
}

// ---------------------------------------------------------------------------------------------
// Contact store

/// A stored contact record and the version its next write must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

/// Merged state and what KlickTipp holds, per e-mail, with optimistic concurrency.
#[async_trait]
pub trait ContactStore: Send + Sync {
    async fn load(&self, email: &Email) -> PortResult<Option<Versioned<ContactRecord>>>;
    /// Writes the record if the stored version is still `expected` (`None` = must not exist);
    /// returns the new version, or `PortError::VersionConflict`.
    async fn save(&self, record: &ContactRecord, expected: Option<u64>) -> PortResult<u64>;
}

// ---------------------------------------------------------------------------------------------
// Tag directory

/// Result of asking to become the one writer that creates a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagClaim {
    /// The tag is known: use this id.
    Exists(u64),
    /// Ours to create until the lease ends; call `record_created` afterwards.
    Claimed,
    /// Ours, but taken over from a creator whose claim expired: it may have created the tag
    /// before it failed (e.g. its answer timed out), so look again before creating.
    TakenOver,
    /// Someone else is creating it right now: try again shortly.
    HeldByOther,
}

/// Tag name -> KlickTipp tag id, shared by every consumer so a tag is created exactly once.
#[async_trait]
pub trait TagDirectory: Send + Sync {
    async fn lookup(&self, name: &str) -> PortResult<Option<u64>>;
    /// Records tags that already exist in KlickTipp (from `GET /tag`); existing entries win.
    async fn record_existing(&self, tags: &BTreeMap<String, u64>) -> PortResult<()>;
    /// Single-writer creation: at most one live claim per name. An expired claim is taken over.
    async fn claim_creation(&self, name: &str, now: DateTime<Utc>, lease: Duration) -> PortResult<TagClaim>;
    async fn record_created(&self, name: &str, id: u64) -> PortResult<()>;
    /// Forgets a tag that KlickTipp no longer has (deleted by the user).
    async fn forget(&self, name: &str) -> PortResult<()>;
}

// ---------------------------------------------------------------------------------------------
// Receipt log (ingest-side identity)

/// What ingest learns by recording an event id with its payload's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receipt {
    /// First time this id is seen (or its earlier record has expired): accept it.
    New,
    /// A redelivery of the same payload: accept it again (enqueueing it twice is harmless).
    SamePayload,
    /// The id was first seen with a different payload at `first_seen`: refuse it (409). The
    /// refused reuse has been counted on the stored record.
    DifferentPayload { first_seen: DateTime<Utc> },
}

/// The stored receipt of an event id: the first payload seen and every refused reuse, so a
/// person can find out later why a delivery got 409.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptRecord {
    pub event_id: EventId,
    /// `WebinarEvent::fingerprint` of the first payload accepted under this id.
    pub fingerprint: String,
    pub first_seen: DateTime<Utc>,
    /// When the receipt may be forgotten (`BRIDGE_EVENT_RETENTION_DAYS` after it was first seen).
    pub expires_at: DateTime<Utc>,
    /// How many deliveries reused this id with a different payload (each answered 409).
    pub rejected_reuses: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rejected_at: Option<DateTime<Utc>>,
    /// Fingerprint of the most recent refused payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rejected_fingerprint: Option<String>,
}

/// Event id -> fingerprint of the first payload, written by ingest before it enqueues, so a
/// reused id with another payload is refused at the door instead of being dropped silently by
/// the queue's deduplication window.
#[async_trait]
pub trait ReceiptLog: Send + Sync {
    /// Records `event_id` with `fingerprint` unless a live record exists (conditional write);
    /// an existing record with another fingerprint gets the refused reuse counted.
    async fn record(
        &self,
        event_id: &EventId,
        fingerprint: &str,
        now: DateTime<Utc>,
        retention: Duration,
    ) -> PortResult<Receipt>;
    /// The live record of `event_id` at `now` (an expired one is `None`).
    async fn get(&self, event_id: &EventId, now: DateTime<Utc>) -> PortResult<Option<ReceiptRecord>>;
    /// Live receipts with refused reuses whose last refusal was at or after `since`, oldest
    /// refusal first (the `problems` command's refused webhooks).
    async fn refused_since(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> PortResult<Vec<ReceiptRecord>>;
}

// ---------------------------------------------------------------------------------------------
// History log (the story of each contact's events, DESIGN 12)

/// Where an event came from and what it said: written by ingest when it accepts the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedEvent {
    /// `Source::key` of the platform.
    pub source: String,
    /// `EventKind` as text (`registered`, `attended`, ...).
    pub kind: String,
    pub webinar_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webinar_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
}

/// How processing an event ended, as the history shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum HistoryOutcome {
    Applied,
    /// A redelivery of an event already finished: nothing was done again.
    Duplicate,
    /// KlickTipp refused the event permanently (its number, field and reason).
    Rejected(RejectionReason),
    /// The contact and tags were applied but KlickTipp refused one field's value.
    FieldProblem {
        field: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error_number: Option<i64>,
        reason: String,
    },
    /// Moved to the dead-letter store (unreadable, or out of receives).
    DeadLettered {
        reason: String,
    },
    /// Deliberately not applied (e.g. listbuilding mode).
    Skipped {
        reason: String,
    },
    /// The event id was seen before with a different payload: flagged, never applied.
    Flagged,
    /// A contact was erased (`forget`): written under a random key, without the address, as
    /// the record that an erasure happened and how many stored items it deleted.
    Erased {
        items: usize,
    },
}

impl HistoryOutcome {
    /// True for outcomes a person has to look at.
    pub fn is_problem(&self) -> bool {
        matches!(
            self,
            HistoryOutcome::Rejected(_)
                | HistoryOutcome::FieldProblem { .. }
                | HistoryOutcome::DeadLettered { .. }
                | HistoryOutcome::Flagged
        )
    }
}

/// One step in an event's story.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum HistoryStep {
    Received(ReceivedEvent),
    Outcome(HistoryOutcome),
}

/// One history line, stored under the contact's key (`Email::group_hash`, never the address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// `Email::group_hash` of the contact's address.
    pub contact: String,
    pub event_id: EventId,
    /// When this step happened.
    pub at: DateTime<Utc>,
    pub step: HistoryStep,
}

/// The history of every contact's events, kept `BRIDGE_EVENT_RETENTION_DAYS`.
#[async_trait]
pub trait HistoryLog: Send + Sync {
    /// Appends one step; `retention` sets when it may be forgotten.
    async fn append(&self, entry: &HistoryEntry, retention: Duration) -> PortResult<()>;
    /// The live entries of one contact, oldest first (ties in append order).
    async fn for_contact(&self, contact: &str, now: DateTime<Utc>) -> PortResult<Vec<HistoryEntry>>;
    /// Live outcome entries that are problems, at or after `since`, oldest first.
    async fn problems_since(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> PortResult<Vec<HistoryEntry>>;
    /// Erases every entry of one contact; returns how many were removed.
    async fn forget_contact(&self, contact: &str) -> PortResult<usize>;
}

impl HistoryEntry {
    /// The `received` step of an event ingest accepted.
    pub fn received(event: &crate::domain::WebinarEvent) -> Self {
        HistoryEntry {
            contact: event.contact.email.group_hash(),
            event_id: event.event_id.clone(),
            at: event.received_at,
            step: HistoryStep::Received(ReceivedEvent {
                source: event.source.key(),
                kind: event.kind.as_str().to_owned(),
                webinar_id: event.webinar.id.clone(),
                webinar_name: event.webinar.name.clone(),
                session_id: event.webinar.session_id.clone(),
                occurred_at: event.occurred_at,
                received_at: event.received_at,
            }),
        }
    }

    /// An outcome step of `event_id` for the contact `email`.
    pub fn outcome(email: &Email, event_id: &EventId, at: DateTime<Utc>, outcome: HistoryOutcome) -> Self {
        HistoryEntry {
            contact: email.group_hash(),
            event_id: event_id.clone(),
            at,
            step: HistoryStep::Outcome(outcome),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Per-webinar settings (issue 15)

/// Per-webinar settings (tag mapping, listid, include filter) and which webinars the bridge has
/// seen, shared by the console, the command line and both Lambdas.
#[async_trait]
pub trait WebinarSettings: Send + Sync {
    /// Every stored entry, the `*` defaults included.
    async fn all(&self) -> PortResult<crate::domain::WebinarSettingsSet>;
    /// Stores `setting`, replacing the entry of the same source and webinar.
    async fn put(&self, setting: &crate::domain::WebinarSetting) -> PortResult<()>;
    /// Removes the entry of `source` and `webinar`; returns whether there was one.
    async fn remove(&self, source: &str, webinar: &str) -> PortResult<bool>;
    /// Whether `mark_seen` was called for this key (`source#webinar[#date]`).
    async fn is_seen(&self, key: &str) -> PortResult<bool>;
    /// Remembers that the webinar `key` was seen (and its tags were created ahead) at `at`.
    /// Repeating it is harmless.
    async fn mark_seen(&self, key: &str, at: DateTime<Utc>) -> PortResult<()>;
}

// ---------------------------------------------------------------------------------------------
// Dead letters (DESIGN 12: problems and redrive)

/// A message in the dead-letter store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub message_id: String,
    pub group_id: String,
    pub body: String,
    pub receive_count: u32,
    /// Why the consumer gave it up (an unreadable body); `None` when it used up its receives.
    pub reason: Option<String>,
}

impl DeadLetter {
    /// The event id the body carries, when the body is a readable event.
    pub fn event_id(&self) -> Option<String> {
        serde_json::from_str::<serde_json::Value>(&self.body).ok()?.get("event_id")?.as_str().map(str::to_owned)
    }
}

/// Which dead letters to move back to the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedriveSelection {
    All,
    /// The dead letter with this message id.
    Message(String),
    /// The dead letters whose body carries this event id.
    Event(String),
}

impl RedriveSelection {
    pub fn selects(&self, letter: &DeadLetter) -> bool {
        match self {
            RedriveSelection::All => true,
            RedriveSelection::Message(id) => letter.message_id == *id,
            RedriveSelection::Event(id) => letter.event_id().as_deref() == Some(id.as_str()),
        }
    }
}

/// How a redrive moved the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RedriveMethod {
    /// Within the embedded store: each message back at its original place in its group.
    InPlace,
    /// SQS's message-move task from the dead-letter queue to its source queue (asynchronous).
    MoveTask,
    /// Received from the dead-letter queue, sent to the queue (same group, new deduplication id)
    /// and deleted from the dead-letter queue.
    Resend,
}

/// What a redrive did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redriven {
    pub method: RedriveMethod,
    /// The messages moved (for a move task: the dead letters listed when it started).
    pub moved: Vec<DeadLetter>,
    /// Why the move task was not used, when it was tried first.
    pub note: Option<String>,
}

/// The dead-letter store beside the queue: list without consuming, move back, erase.
#[async_trait]
pub trait DeadLetters: Send + Sync {
    /// Up to `limit` dead letters, oldest first where the store knows the order; they stay.
    async fn list(&self, limit: usize) -> PortResult<Vec<DeadLetter>>;
    /// Moves the selected dead letters back to the queue with a fresh receive count.
    async fn redrive(&self, selection: &RedriveSelection) -> PortResult<Redriven>;
    /// Deletes every message of `group_id` (one contact) from the dead letters and from the
    /// queue (erasure); returns how many were deleted.
    async fn erase_group(&self, group_id: &str) -> PortResult<usize>;
}

// ---------------------------------------------------------------------------------------------
// Erasure and enumeration (DESIGN 12: `forget`, `resync --all`)

/// The stored contacts as a whole: enumeration for bulk resyncs, and erasure.
#[async_trait]
pub trait ContactAdmin: Send + Sync {
    /// Every stored contact's address.
    async fn emails(&self) -> PortResult<Vec<Email>>;
    /// Deletes the contact's record; false when there was none.
    async fn erase(&self, email: &Email) -> PortResult<bool>;
}

/// Deletes per-event records (idempotency records, ingest receipts) by event id.
#[async_trait]
pub trait EventErasure: Send + Sync {
    /// Returns how many records were deleted.
    async fn erase_events(&self, event_ids: &[EventId]) -> PortResult<usize>;
}

// ---------------------------------------------------------------------------------------------
// Parked webhooks (authenticated bodies that could not become an event)

/// An authenticated webhook whose body could not be turned into an event (an unknown shape, no
/// e-mail): kept so it can be run again after an alias or configuration fix, since WebinarJam
/// and EverWebinar never resend a refused delivery. Holds the body as sent, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedWebhook {
    /// Sortable by time: `<received_at micros, hex>-<random>`.
    pub id: String,
    /// `Source::key` of the platform (`webinarjam`, `everwebinar`).
    pub source: String,
    /// The rule URL's path (`/hooks/webinarjam/registered`).
    pub path: String,
    /// The rule URL's query without `token` (`label=Clicked%20Offer`), if anything remains.
    pub query: Option<String>,
    pub content_type: Option<String>,
    /// The body byte for byte (at most `sources::MAX_BODY_BYTES`).
    pub body: Vec<u8>,
    pub received_at: DateTime<Utc>,
    /// The sentence the refusal had (what a person must fix), the latest one after a reprocess.
    pub reason: String,
    /// When `reason` was last decided (the arrival, or the latest reprocess).
    pub updated_at: DateTime<Utc>,
    /// When it may be forgotten (`BRIDGE_EVENT_RETENTION_DAYS` after arrival).
    pub expires_at: DateTime<Utc>,
}

impl ParkedWebhook {
    /// A new id for a body received at `at`: ordered by arrival, unique by its random part.
    pub fn new_id(at: DateTime<Utc>) -> String {
        format!("{:013x}-{:08x}", at.timestamp_micros().max(0), rand::random::<u32>())
    }

    pub fn size(&self) -> usize {
        self.body.len()
    }
}

/// How much a parked store may hold. When it is full a new body is refused (503), never an
/// older one dropped: every parked body was promised to the sender with a 202.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParkCap {
    pub max_count: usize,
    pub max_bytes: usize,
}

impl Default for ParkCap {
    /// 1,000 bodies or 64 MiB, whichever is reached first.
    fn default() -> Self {
        Self { max_count: 1_000, max_bytes: 64 * 1024 * 1024 }
    }
}

/// What [`ParkedWebhooks::park`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParkOutcome {
    Parked,
    /// The store holds `count` live bodies of `bytes` bytes; this one would exceed the cap.
    Full {
        count: usize,
        bytes: usize,
    },
}

/// Parked webhook bodies, kept until reprocessed or `BRIDGE_EVENT_RETENTION_DAYS` old.
#[async_trait]
pub trait ParkedWebhooks: Send + Sync {
    /// Stores `webhook` unless the live bodies at `now` plus this one would exceed `cap`.
    async fn park(&self, webhook: &ParkedWebhook, cap: ParkCap, now: DateTime<Utc>) -> PortResult<ParkOutcome>;
    /// Every live parked body at `now`, oldest first.
    async fn list(&self, now: DateTime<Utc>) -> PortResult<Vec<ParkedWebhook>>;
    /// One live parked body.
    async fn get(&self, id: &str, now: DateTime<Utc>) -> PortResult<Option<ParkedWebhook>>;
    /// Records the reason a reprocess refused it again; `false` when it is gone.
    async fn set_reason(&self, id: &str, reason: &str, at: DateTime<Utc>) -> PortResult<bool>;
    /// Forgets it (reprocessed into events); `false` when it was not there.
    async fn remove(&self, id: &str) -> PortResult<bool>;
}
