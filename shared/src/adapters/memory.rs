//! In-memory adapters: the reference behaviour of every port, used by tests and `simulate`.

use crate::adapters::claim_rule::decide_claim;
use crate::adapters::receipt_rule::{decide_receipt, new_receipt, with_rejected_reuse};
use crate::adapters::receive_plan::{ReceivePlan, Walk};
use crate::domain::{ContactRecord, Email, EventId};
use crate::ports::{
    Claim, ClaimToken, Clock, ContactAdmin, ContactStore, DeadLetters, EventErasure, EventLog, EventQueue, EventRecord,
    EventStatus, FinalOutcome, HistoryEntry, HistoryLog, HistoryStep, OutgoingMessage, ParkCap, ParkOutcome,
    ParkedWebhook, ParkedWebhooks, PortError, PortResult, QueuedMessage, Receipt, ReceiptLog, ReceiptRecord,
    RedriveMethod, RedriveSelection, Redriven, SystemClock, TagClaim, TagDirectory, Versioned,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving it.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `at + duration`, saturating at the end of time instead of overflowing on absurd durations.
fn later(at: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|delta| at.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

// ---------------------------------------------------------------------------------------------

/// Queue settings shared by the embedded queues.
#[derive(Debug, Clone, Copy)]
pub struct QueueSettings {
    /// How long a received message stays invisible before it is delivered again.
    pub visibility_timeout: Duration,
    /// Receives after which a message goes to the dead-letter store (SQS `maxReceiveCount`).
    pub max_receive_count: u32,
    /// SQS FIFO deduplicates ids for five minutes.
    pub dedup_window: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::from_secs(60),
            max_receive_count: 5,
            dedup_window: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone)]
struct StoredMessage {
    id: u64,
    group_id: String,
    body: String,
    receive_count: u32,
    visible_at: DateTime<Utc>,
    in_flight_receipt: Option<String>,
}

/// A message that used up its receives (the port's type, named here as before).
pub use crate::ports::DeadLetter;

#[derive(Default)]
struct QueueState {
    next_id: u64,
    next_receipt: u64,
    messages: VecDeque<StoredMessage>,
    dedup: HashMap<String, DateTime<Utc>>,
    /// The same ids by time sent, so expiring them costs only the expired ones, not a pass over
    /// every id remembered (which made each send O(ids in the window)).
    dedup_by_age: BTreeSet<(DateTime<Utc>, String)>,
    /// With the time each one died, to list them as SQLite does: oldest first, then by id.
    dead_letters: Vec<(DateTime<Utc>, u64, DeadLetter)>,
}

impl QueueState {
    /// Forgets the ids sent at a time `expired` says is out of the window, oldest first.
    fn forget_expired_dedup_ids(&mut self, expired: impl Fn(DateTime<Utc>) -> bool) {
        while let Some((sent_at, _)) = self.dedup_by_age.first() {
            if !expired(*sent_at) {
                break;
            }
            if let Some((_, dedup_id)) = self.dedup_by_age.pop_first() {
                self.dedup.remove(&dedup_id);
            }
        }
    }
}

/// The queue's groups in the order of their oldest message, each as indices into `messages`,
/// oldest first: what [`ReceivePlan`] walks.
fn groups_oldest_first(messages: &VecDeque<StoredMessage>) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut slot_of_group: HashMap<&str, usize> = HashMap::new();
    for (index, message) in messages.iter().enumerate() {
        let slot = *slot_of_group.entry(&message.group_id).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[slot].push(index);
    }
    groups
}

/// SQS FIFO's receive shape (see [`crate::adapters::receive_plan`]), by index into the queue.
fn plan_receive(
    messages: &VecDeque<StoredMessage>,
    now: DateTime<Utc>,
    max: usize,
    max_receives: u32,
) -> ReceivePlan<usize> {
    let mut plan = ReceivePlan::new(max, max_receives);
    'groups: for group in groups_oldest_first(messages) {
        for index in group {
            let message = &messages[index];
            match plan.offer(index, message.visible_at <= now, message.receive_count) {
                Walk::NextMessage => {}
                Walk::NextGroup => continue 'groups,
                Walk::Stop => break 'groups,
            }
        }
    }
    plan
}

#[derive(Clone)]
pub struct MemoryQueue {
    state: Arc<Mutex<QueueState>>,
    settings: QueueSettings,
    clock: Arc<dyn Clock>,
}

impl MemoryQueue {
    pub fn new(settings: QueueSettings) -> Self {
        Self::with_clock(settings, Arc::new(SystemClock))
    }

    pub fn with_clock(settings: QueueSettings, clock: Arc<dyn Clock>) -> Self {
        Self { state: Arc::default(), settings, clock }
    }

    /// Oldest first, then by message id (as `SqliteQueue::dead_letters`).
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        let mut dead = lock(&self.state).dead_letters.clone();
        dead.sort_by_key(|(dead_at, id, _)| (*dead_at, *id));
        dead.into_iter().map(|(_, _, letter)| letter).collect()
    }

    /// Messages not yet acknowledged or dead-lettered.
    pub fn pending(&self) -> usize {
        lock(&self.state).messages.len()
    }
}

impl Default for MemoryQueue {
    fn default() -> Self {
        Self::new(QueueSettings::default())
    }
}

#[async_trait]
impl EventQueue for MemoryQueue {
    async fn send(&self, messages: &[OutgoingMessage]) -> PortResult<()> {
        let now = self.clock.now();
        let window = self.settings.dedup_window;
        let mut state = lock(&self.state);
        state.forget_expired_dedup_ids(|sent_at| later(sent_at, window) <= now);
        for message in messages {
            if state.dedup.contains_key(&message.dedup_id) {
                continue;
            }
            state.dedup.insert(message.dedup_id.clone(), now);
            state.dedup_by_age.insert((now, message.dedup_id.clone()));
            state.next_id += 1;
            let id = state.next_id;
            state.messages.push_back(StoredMessage {
                id,
                group_id: message.group_id.clone(),
                body: message.body.clone(),
                receive_count: 0,
                visible_at: now,
                in_flight_receipt: None,
            });
        }
        Ok(())
    }

    async fn receive(&self, max: usize) -> PortResult<Vec<QueuedMessage>> {
        let now = self.clock.now();
        let visibility = self.settings.visibility_timeout;
        let mut state = lock(&self.state);
        let state = &mut *state;
        let plan = plan_receive(&state.messages, now, max, self.settings.max_receive_count);
        let mut received = Vec::with_capacity(plan.deliver.len());
        for index in plan.deliver {
            state.next_receipt += 1;
            let message = &mut state.messages[index];
            let receipt = format!("{}-{}", message.id, state.next_receipt);
            message.receive_count += 1;
            message.visible_at = later(now, visibility);
            message.in_flight_receipt = Some(receipt.clone());
            received.push(QueuedMessage {
                message_id: message.id.to_string(),
                receipt,
                group_id: message.group_id.clone(),
                body: message.body.clone(),
                receive_count: message.receive_count,
            });
        }
        // From the back, so the indices still to remove stay valid.
        let mut dead_indices = plan.dead;
        dead_indices.sort_unstable();
        for index in dead_indices.into_iter().rev() {
            if let Some(dead) = state.messages.remove(index) {
                let letter = DeadLetter {
                    message_id: dead.id.to_string(),
                    group_id: dead.group_id,
                    body: dead.body,
                    receive_count: dead.receive_count,
                    reason: None,
                };
                state.dead_letters.push((now, dead.id, letter));
            }
        }
        Ok(received)
    }

    async fn ack(&self, message: &QueuedMessage) -> PortResult<()> {
        let mut state = lock(&self.state);
        // A stale receipt (the message was redelivered meanwhile) must not delete it.
        state.messages.retain(|stored| stored.in_flight_receipt.as_deref() != Some(message.receipt.as_str()));
        Ok(())
    }

    async fn retry_later(&self, message: &QueuedMessage, delay: Duration) -> PortResult<()> {
        let visible_at = later(self.clock.now(), delay);
        let mut state = lock(&self.state);
        if let Some(stored) = state
            .messages
            .iter_mut()
            .find(|stored| stored.in_flight_receipt.as_deref() == Some(message.receipt.as_str()))
        {
            stored.visible_at = visible_at;
            stored.in_flight_receipt = None;
        }
        Ok(())
    }

    async fn dead_letter(&self, message: &QueuedMessage, reason: &str) -> PortResult<()> {
        let now = self.clock.now();
        let mut state = lock(&self.state);
        let position = state
            .messages
            .iter()
            .position(|stored| stored.in_flight_receipt.as_deref() == Some(message.receipt.as_str()));
        // A stale receipt: the message was redelivered meanwhile and is someone else's now.
        let Some(dead) = position.and_then(|index| state.messages.remove(index)) else { return Ok(()) };
        let letter = DeadLetter {
            message_id: dead.id.to_string(),
            group_id: dead.group_id,
            body: dead.body,
            receive_count: dead.receive_count,
            reason: Some(reason.to_owned()),
        };
        state.dead_letters.push((now, dead.id, letter));
        Ok(())
    }
}

#[async_trait]
impl DeadLetters for MemoryQueue {
    async fn list(&self, limit: usize) -> PortResult<Vec<DeadLetter>> {
        Ok(MemoryQueue::dead_letters(self).into_iter().take(limit).collect())
    }

    /// Each message goes back at its original place (by id), so its group's order holds.
    async fn redrive(&self, selection: &RedriveSelection) -> PortResult<Redriven> {
        let now = self.clock.now();
        let mut state = lock(&self.state);
        let (chosen, kept): (Vec<_>, Vec<_>) =
            std::mem::take(&mut state.dead_letters).into_iter().partition(|(_, _, letter)| selection.selects(letter));
        state.dead_letters = kept;
        let mut chosen = chosen;
        chosen.sort_by_key(|(dead_at, id, _)| (*dead_at, *id));
        let mut moved = Vec::with_capacity(chosen.len());
        for (_, id, letter) in chosen {
            let position = state.messages.iter().position(|message| message.id > id).unwrap_or(state.messages.len());
            state.messages.insert(
                position,
                StoredMessage {
                    id,
                    group_id: letter.group_id.clone(),
                    body: letter.body.clone(),
                    receive_count: 0,
                    visible_at: now,
                    in_flight_receipt: None,
                },
            );
            moved.push(letter);
        }
        Ok(Redriven { method: RedriveMethod::InPlace, moved, note: None })
    }

    async fn erase_group(&self, group_id: &str) -> PortResult<usize> {
        let mut state = lock(&self.state);
        let before = state.messages.len() + state.dead_letters.len();
        state.messages.retain(|message| message.group_id != group_id);
        state.dead_letters.retain(|(_, _, letter)| letter.group_id != group_id);
        Ok(before - state.messages.len() - state.dead_letters.len())
    }
}

// ---------------------------------------------------------------------------------------------

/// An event record and the token of the claim that wrote it.
#[derive(Clone)]
struct OwnedRecord {
    record: EventRecord,
    owner: ClaimToken,
}

impl OwnedRecord {
    /// A claim not finished yet (in progress).
    fn is_open(&self) -> bool {
        matches!(self.record.status, EventStatus::InProgress { .. })
    }
}

#[derive(Clone, Default)]
pub struct MemoryEventLog {
    records: Arc<Mutex<HashMap<EventId, OwnedRecord>>>,
}

impl MemoryEventLog {
    pub fn records(&self) -> Vec<EventRecord> {
        lock(&self.records).values().map(|owned| owned.record.clone()).collect()
    }
}

#[async_trait]
impl EventLog for MemoryEventLog {
    async fn claim(
        &self,
        event_id: &EventId,
        fingerprint: &str,
        owner: &ClaimToken,
        now: DateTime<Utc>,
        lease: Duration,
        retention: Duration,
    ) -> PortResult<Claim> {
        let mut records = lock(&self.records);
        let claim = decide_claim(records.get(event_id).map(|owned| &owned.record), fingerprint, now);
        if claim == Claim::Claimed {
            let record = EventRecord {
                event_id: event_id.clone(),
                fingerprint: fingerprint.to_owned(),
                status: EventStatus::InProgress { lease_until: later(now, lease) },
                updated_at: now,
                expires_at: later(now, retention),
            };
            records.insert(event_id.clone(), OwnedRecord { record, owner: owner.clone() });
        }
        Ok(claim)
    }

    async fn complete(
        &self,
        event_id: &EventId,
        owner: &ClaimToken,
        outcome: &FinalOutcome,
        now: DateTime<Utc>,
        retention: Duration,
    ) -> PortResult<()> {
        let mut records = lock(&self.records);
        let Some(owned) = records.get_mut(event_id).filter(|owned| owned.is_open() && owned.owner == *owner) else {
            return Err(PortError::ClaimLost);
        };
        owned.record.status = EventStatus::Completed(outcome.clone());
        owned.record.updated_at = now;
        owned.record.expires_at = later(now, retention);
        Ok(())
    }

    async fn release(&self, event_id: &EventId, owner: &ClaimToken) -> PortResult<()> {
        let mut records = lock(&self.records);
        match records.get(event_id) {
            Some(owned) if owned.is_open() && owned.owner == *owner => {
                records.remove(event_id);
                Ok(())
            }
            Some(owned) if owned.is_open() => Err(PortError::ClaimLost),
            _ => Ok(()),
        }
    }

    async fn get(&self, event_id: &EventId) -> PortResult<Option<EventRecord>> {
        Ok(lock(&self.records).get(event_id).map(|owned| owned.record.clone()))
    }
}

// ---------------------------------------------------------------------------------------------

#[derive(Clone, Default)]
pub struct MemoryContactStore {
    records: Arc<Mutex<BTreeMap<Email, Versioned<ContactRecord>>>>,
}

#[async_trait]
impl ContactStore for MemoryContactStore {
    async fn load(&self, email: &Email) -> PortResult<Option<Versioned<ContactRecord>>> {
        Ok(lock(&self.records).get(email).cloned())
    }

    async fn save(&self, record: &ContactRecord, expected: Option<u64>) -> PortResult<u64> {
        let mut records = lock(&self.records);
        let current = records.get(&record.email).map(|versioned| versioned.version);
        if current != expected {
            return Err(PortError::VersionConflict);
        }
        let version = current.unwrap_or(0) + 1;
        records.insert(record.email.clone(), Versioned { value: record.clone(), version });
        Ok(version)
    }
}

#[async_trait]
impl ContactAdmin for MemoryContactStore {
    async fn emails(&self) -> PortResult<Vec<Email>> {
        Ok(lock(&self.records).keys().cloned().collect())
    }

    async fn erase(&self, email: &Email) -> PortResult<bool> {
        Ok(lock(&self.records).remove(email).is_some())
    }
}

#[async_trait]
impl EventErasure for MemoryEventLog {
    async fn erase_events(&self, event_ids: &[EventId]) -> PortResult<usize> {
        let mut records = lock(&self.records);
        Ok(event_ids.iter().filter(|id| records.remove(*id).is_some()).count())
    }
}

// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum TagEntry {
    Known(u64),
    Creating { lease_until: DateTime<Utc> },
}

#[derive(Clone, Default)]
pub struct MemoryTagDirectory {
    entries: Arc<Mutex<HashMap<String, TagEntry>>>,
}

#[async_trait]
impl TagDirectory for MemoryTagDirectory {
    async fn lookup(&self, name: &str) -> PortResult<Option<u64>> {
        Ok(match lock(&self.entries).get(name) {
            Some(TagEntry::Known(id)) => Some(*id),
            _ => None,
        })
    }

    async fn record_existing(&self, tags: &BTreeMap<String, u64>) -> PortResult<()> {
        let mut entries = lock(&self.entries);
        for (name, id) in tags {
            if !matches!(entries.get(name), Some(TagEntry::Known(_))) {
                entries.insert(name.clone(), TagEntry::Known(*id));
            }
        }
        Ok(())
    }

    async fn claim_creation(&self, name: &str, now: DateTime<Utc>, lease: Duration) -> PortResult<TagClaim> {
        let mut entries = lock(&self.entries);
        match entries.get(name) {
            Some(TagEntry::Known(id)) => Ok(TagClaim::Exists(*id)),
            Some(TagEntry::Creating { lease_until }) if *lease_until > now => Ok(TagClaim::HeldByOther),
            expired => {
                let claim = if expired.is_some() { TagClaim::TakenOver } else { TagClaim::Claimed };
                entries.insert(name.to_owned(), TagEntry::Creating { lease_until: later(now, lease) });
                Ok(claim)
            }
        }
    }

    async fn record_created(&self, name: &str, id: u64) -> PortResult<()> {
        lock(&self.entries).insert(name.to_owned(), TagEntry::Known(id));
        Ok(())
    }

    async fn forget(&self, name: &str) -> PortResult<()> {
        lock(&self.entries).remove(name);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Receipt log

/// Ingest receipts in memory (tests, `simulate`).
#[derive(Clone, Default)]
pub struct MemoryReceiptLog {
    records: Arc<Mutex<HashMap<EventId, ReceiptRecord>>>,
}

#[async_trait]
impl EventErasure for MemoryReceiptLog {
    async fn erase_events(&self, event_ids: &[EventId]) -> PortResult<usize> {
        let mut records = lock(&self.records);
        Ok(event_ids.iter().filter(|id| records.remove(*id).is_some()).count())
    }
}

#[async_trait]
impl ReceiptLog for MemoryReceiptLog {
    async fn record(
        &self,
        event_id: &EventId,
        fingerprint: &str,
        now: DateTime<Utc>,
        retention: Duration,
    ) -> PortResult<Receipt> {
        let mut records = lock(&self.records);
        let receipt = decide_receipt(records.get(event_id), fingerprint, now);
        let updated = match (&receipt, records.get(event_id)) {
            (Receipt::New, _) => Some(new_receipt(event_id, fingerprint, now, retention)),
            (Receipt::DifferentPayload { .. }, Some(existing)) => Some(with_rejected_reuse(existing, fingerprint, now)),
            _ => None,
        };
        if let Some(updated) = updated {
            records.insert(event_id.clone(), updated);
        }
        Ok(receipt)
    }

    async fn get(&self, event_id: &EventId, now: DateTime<Utc>) -> PortResult<Option<ReceiptRecord>> {
        Ok(lock(&self.records).get(event_id).filter(|record| record.expires_at > now).cloned())
    }

    async fn refused_since(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> PortResult<Vec<ReceiptRecord>> {
        let mut refused: Vec<ReceiptRecord> = lock(&self.records)
            .values()
            .filter(|record| {
                record.expires_at > now
                    && record.rejected_reuses > 0
                    && record.last_rejected_at.is_some_and(|at| at >= since)
            })
            .cloned()
            .collect();
        refused.sort_by_key(|record| record.last_rejected_at);
        Ok(refused)
    }
}

// ---------------------------------------------------------------------------------------------

/// A history entry and when it expires.
type ExpiringEntry = (HistoryEntry, DateTime<Utc>);

/// History in memory: every entry with its expiry, in append order.
#[derive(Debug, Clone, Default)]
pub struct MemoryHistoryLog {
    entries: Arc<Mutex<Vec<ExpiringEntry>>>,
}

impl MemoryHistoryLog {
    /// Drops entries that expired at or before `now`; returns how many.
    pub fn purge_expired(&self, now: DateTime<Utc>) -> usize {
        let mut entries = lock(&self.entries);
        let before = entries.len();
        entries.retain(|(_, expires_at)| *expires_at > now);
        before - entries.len()
    }
}

/// Oldest first by time; equal times keep append order (a stable sort).
fn by_time(mut entries: Vec<HistoryEntry>) -> Vec<HistoryEntry> {
    entries.sort_by_key(|entry| entry.at);
    entries
}

#[async_trait]
impl HistoryLog for MemoryHistoryLog {
    async fn append(&self, entry: &HistoryEntry, retention: Duration) -> PortResult<()> {
        lock(&self.entries).push((entry.clone(), later(entry.at, retention)));
        Ok(())
    }

    async fn for_contact(&self, contact: &str, now: DateTime<Utc>) -> PortResult<Vec<HistoryEntry>> {
        let entries = lock(&self.entries);
        Ok(by_time(
            entries
                .iter()
                .filter(|(entry, expires_at)| entry.contact == contact && *expires_at > now)
                .map(|(entry, _)| entry.clone())
                .collect(),
        ))
    }

    async fn problems_since(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> PortResult<Vec<HistoryEntry>> {
        let entries = lock(&self.entries);
        Ok(by_time(
            entries
                .iter()
                .filter(|(entry, expires_at)| {
                    *expires_at > now
                        && entry.at >= since
                        && matches!(&entry.step, HistoryStep::Outcome(outcome) if outcome.is_problem())
                })
                .map(|(entry, _)| entry.clone())
                .collect(),
        ))
    }

    async fn forget_contact(&self, contact: &str) -> PortResult<usize> {
        let mut entries = lock(&self.entries);
        let before = entries.len();
        entries.retain(|(entry, _)| entry.contact != contact);
        Ok(before - entries.len())
    }
}

// ---------------------------------------------------------------------------------------------
// Per-webinar settings

/// Per-webinar settings and seen webinars in memory.
#[derive(Clone, Default)]
pub struct MemoryWebinarSettings {
    entries: Arc<Mutex<BTreeMap<String, crate::domain::WebinarSetting>>>,
    seen: Arc<Mutex<BTreeMap<String, DateTime<Utc>>>>,
}

#[async_trait]
impl crate::ports::WebinarSettings for MemoryWebinarSettings {
    async fn all(&self) -> PortResult<crate::domain::WebinarSettingsSet> {
        Ok(crate::domain::WebinarSettingsSet::new(lock(&self.entries).values().cloned()))
    }

    async fn put(&self, setting: &crate::domain::WebinarSetting) -> PortResult<()> {
        lock(&self.entries).insert(setting.key(), setting.clone());
        Ok(())
    }

    async fn remove(&self, source: &str, webinar: &str) -> PortResult<bool> {
        Ok(lock(&self.entries).remove(&crate::domain::setting_key(source, webinar)).is_some())
    }

    async fn is_seen(&self, key: &str) -> PortResult<bool> {
        Ok(lock(&self.seen).contains_key(key))
    }

    async fn mark_seen(&self, key: &str, at: DateTime<Utc>) -> PortResult<()> {
        lock(&self.seen).entry(key.to_owned()).or_insert(at);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Parked webhooks

/// Parked webhook bodies in memory (tests).
#[derive(Clone, Default)]
pub struct MemoryParkedWebhooks {
    parked: Arc<Mutex<BTreeMap<String, ParkedWebhook>>>,
}

/// The rule every parked store follows: the live bodies at `now` (count and bytes) plus the new
/// one must stay within `cap`.
pub fn decide_park<'a>(
    live: impl Iterator<Item = &'a ParkedWebhook>,
    incoming: &ParkedWebhook,
    cap: ParkCap,
    now: DateTime<Utc>,
) -> ParkOutcome {
    let (count, bytes) = live
        .filter(|parked| parked.expires_at > now && parked.id != incoming.id)
        .fold((0usize, 0usize), |(count, bytes), parked| (count + 1, bytes + parked.size()));
    if count + 1 > cap.max_count || bytes + incoming.size() > cap.max_bytes {
        ParkOutcome::Full { count, bytes }
    } else {
        ParkOutcome::Parked
    }
}

#[async_trait]
impl ParkedWebhooks for MemoryParkedWebhooks {
    async fn park(&self, webhook: &ParkedWebhook, cap: ParkCap, now: DateTime<Utc>) -> PortResult<ParkOutcome> {
        let mut parked = lock(&self.parked);
        let outcome = decide_park(parked.values(), webhook, cap, now);
        if outcome == ParkOutcome::Parked {
            parked.retain(|_, stored| stored.expires_at > now);
            parked.insert(webhook.id.clone(), webhook.clone());
        }
        Ok(outcome)
    }

    async fn list(&self, now: DateTime<Utc>) -> PortResult<Vec<ParkedWebhook>> {
        Ok(lock(&self.parked).values().filter(|parked| parked.expires_at > now).cloned().collect())
    }

    async fn get(&self, id: &str, now: DateTime<Utc>) -> PortResult<Option<ParkedWebhook>> {
        Ok(lock(&self.parked).get(id).filter(|parked| parked.expires_at > now).cloned())
    }

    async fn set_reason(&self, id: &str, reason: &str, at: DateTime<Utc>) -> PortResult<bool> {
        Ok(lock(&self.parked)
            .get_mut(id)
            .map(|parked| {
                parked.reason = reason.to_owned();
                parked.updated_at = at;
            })
            .is_some())
    }

    async fn remove(&self, id: &str) -> PortResult<bool> {
        Ok(lock(&self.parked).remove(id).is_some())
    }
}
