//! Consume use case: a batch of queued events -> one outcome per message (DESIGN 5, 6).
//!
//! Per contact (one FIFO group): claim each event, merge all claimed events into the contact
//! record, plan once, apply the plan under the rate cap, save the record, then complete the
//! events. Every step is safe to redo: claims lease out, KlickTipp calls are idempotent in
//! effect, and a redo re-plans from what was saved.

use crate::domain::{
    AppliedView, ContactRecord, EVENT_SCHEMA_VERSION, Email, EventId, EventKind, FieldProblem, FieldProblems,
    FieldValue, Plan, Settings, Unconfirmed, WebinarEvent, plan, value_fingerprint, withhold_refused,
};
use crate::domain::{DesiredContact, FieldSlot, WebinarSettingsSet};
use crate::klicktipp::{ErrorClass, KlickTippClient, KlickTippError, UPSERT_SUBSCRIBER, UpsertSubscriber, deadline};
use crate::ports::WebinarSettings;
use crate::ports::{
    Claim, ClaimToken, Clock, ContactStore, EventLog, FinalOutcome, HistoryEntry, HistoryLog, HistoryOutcome,
    HistoryStep, PortError, QueuedMessage, RejectionReason,
};
use crate::tag_resolver::{TagResolveError, TagResolver};
use crate::tags_ahead::{WebinarRef, ensure_webinar_tags};
use futures::stream::{self, StreamExt};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// KlickTipp's "tag not found" error number.
const KLICKTIPP_TAG_NOT_FOUND: i64 = 403;
/// KlickTipp's "subscriber not found" error number (also used for an unknown tag by some accounts).
const KLICKTIPP_SUBSCRIBER_NOT_FOUND: i64 = 7;
/// KlickTipp's "field validation failed" error number (a data field refused its value).
const KLICKTIPP_FIELD_REFUSED: i64 = 8;
/// The HTTP status KlickTipp refuses a request with ("processed but rejected").
const KLICKTIPP_REFUSAL_STATUS: u16 = 406;

/// Where registrations go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    /// Management API: upsert, tag, untag.
    Management,
    /// Listbuilding API key only: registrations are signed in; other kinds are skipped.
    Listbuilding,
}

#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// How long a claim keeps other workers off an event; longer than one batch can take.
    pub lease: Duration,
    /// How long event records are kept (TTL).
    pub retention: Duration,
    pub listid: Option<u64>,
    pub mode: ApplyMode,
    /// First retry delay; doubles with every receive, up to `retry_cap`. With the queue's
    /// maximum receive count this sets how long an outage or throttling is ridden out before a
    /// message reaches the dead-letter queue (see [`ride_out`]).
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// Contacts processed at the same time within one batch (the rate limiter still caps calls).
    pub group_concurrency: usize,
    /// Reload-and-redo rounds when the contact record changed concurrently.
    pub max_save_attempts: u32,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(120),
            retention: Duration::from_secs(30 * 86_400),
            listid: None,
            mode: ApplyMode::Management,
            retry_base: Duration::from_secs(2),
            retry_cap: DEFAULT_RETRY_CAP,
            group_concurrency: 8,
            max_save_attempts: 3,
        }
    }
}

/// The longest retry delay: under a KlickTipp outage or throttling the delays grow to this, so
/// the queue's receive count is spent slowly (DESIGN 6).
pub const DEFAULT_RETRY_CAP: Duration = Duration::from_secs(15 * 60);

/// The receives after which the queue dead-letters a message, as deployed (template.yaml
/// `maxReceiveCount`) and in `serve`: with the default delays a message survives
/// [`ride_out`]`(30)` of failures, about 5.5 hours.
pub const MAX_RECEIVE_COUNT: u32 = 30;

/// The retry delay after the `receive_count`-th receive of a message failed.
pub fn retry_delay(base: Duration, cap: Duration, receive_count: u32) -> Duration {
    let exponent = receive_count.saturating_sub(1).min(16);
    base.saturating_mul(1 << exponent).min(cap)
}

/// How long a message whose every attempt fails stays out of the dead-letter queue with the
/// default delays: the sum of the delays of `max_receive_count` receives (processing time not
/// counted, so the real figure is a little longer).
pub fn ride_out(max_receive_count: u32) -> Duration {
    let defaults = ConsumerOptions::default();
    (1..=max_receive_count).map(|receive| retry_delay(defaults.retry_base, defaults.retry_cap, receive)).sum()
}

/// How one message ended in this batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageResult {
    Applied,
    Duplicate,
    /// The id was seen before with a different payload; not applied.
    Flagged,
    Rejected(RejectionReason),
    Skipped(String),
    /// This consumer cannot decode the body (corrupt, an unknown schema version or kind from a
    /// newer ingest): it goes to the dead-letter queue with this reason, byte for byte, so a
    /// newer consumer can process it after a redrive. Never deleted.
    Unreadable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Finished: delete the message.
    Done(MessageResult),
    /// Make it visible again after `delay`.
    RetryLater { delay: Duration, reason: String },
    /// Leave it in flight, as a crashed process would; the queue redelivers it after the
    /// visibility timeout. Only the fault-injection build produces this.
    Abandoned,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageOutcome {
    pub message_id: String,
    pub event_id: Option<EventId>,
    pub disposition: Disposition,
}

/// Where a simulated crash can happen (fault-injection builds only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// KlickTipp calls succeeded, the contact record is not saved yet.
    AfterKlickTippBeforeSave,
    /// The record is saved, the events are not completed yet.
    AfterSaveBeforeComplete,
}

pub type CrashHook = Arc<dyn Fn(CrashPoint) -> bool + Send + Sync>;

/// Why applying one contact did not finish.
#[derive(Debug)]
enum ApplyError {
    Retry { reason: String, retry_after: Option<Duration> },
    Permanent(RejectionReason),
    Crash,
}

impl From<PortError> for ApplyError {
    fn from(error: PortError) -> Self {
        match error {
            // Retrying cannot make the contact's state smaller: reject visibly instead.
            PortError::TooLarge { .. } => ApplyError::Permanent(RejectionReason {
                operation: "save contact state".into(),
                status: None,
                error_number: None,
                field: None,
                reason: format!(
                    "{error}; this contact is in too many webinars for the bridge's contact store, so its events cannot be recorded"
                ),
            }),
            error => ApplyError::Retry { reason: error.to_string(), retry_after: None },
        }
    }
}

impl From<TagResolveError> for ApplyError {
    fn from(error: TagResolveError) -> Self {
        match error {
            TagResolveError::KlickTipp(error) => classify(error),
            TagResolveError::Port(error) => error.into(),
            TagResolveError::CreationInProgress => ApplyError::Retry {
                reason: "a tag is being created by another consumer".into(),
                retry_after: Some(Duration::from_secs(1)),
            },
        }
    }
}

/// Maps a KlickTipp error onto the event's fate. Authentication failures are retried (and end in
/// the dead-letter queue) rather than rejected: the event is fine, the credentials are not.
fn classify(error: KlickTippError) -> ApplyError {
    if matches!(error, KlickTippError::AuthFailed { .. }) || !matches!(error.class(), ErrorClass::Permanent) {
        return ApplyError::Retry { reason: error.to_string(), retry_after: error.retry_after() };
    }
    // Redacted: the reason is logged and stored, and KlickTipp's text may quote the address.
    ApplyError::Permanent(RejectionReason {
        operation: error.operation().unwrap_or("klicktipp").to_owned(),
        status: error.status(),
        error_number: error.error_number(),
        field: error.field_name(),
        reason: error.redacted_reason(),
    })
}

/// What [`Consumer::resync_live`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Resynced {
    /// A contact is stored under the address (otherwise nothing was done).
    pub stored: bool,
    /// KlickTipp had no contact with this address: it was created again.
    pub contact_missing: bool,
    /// Tags the state implies that KlickTipp lacked: set again.
    pub tags_added: Vec<String>,
    /// Tags the bridge manages that KlickTipp held although the state no longer implies them.
    pub tags_removed: Vec<String>,
    /// Field keys whose value in KlickTipp differed from the state: written again.
    pub fields_written: Vec<String>,
    /// KlickTipp write calls planned (tag creations, upsert, tag, untag).
    pub writes: usize,
}

pub struct Consumer {
    log: Arc<dyn EventLog>,
    contacts: Arc<dyn ContactStore>,
    tags: TagResolver,
    klicktipp: KlickTippClient,
    settings: Settings,
    options: ConsumerOptions,
    clock: Arc<dyn Clock>,
    crash_hook: Option<CrashHook>,
    history: Option<Arc<dyn HistoryLog>>,
    /// Per-webinar settings (issue 15): read once per batch into `webinars`.
    webinar_settings: Option<Arc<dyn WebinarSettings>>,
    webinars: std::sync::RwLock<Arc<WebinarSettingsSet>>,
    /// Create a webinar's state tags when it is first seen (`BRIDGE_TAGS_AHEAD`).
    tags_ahead: bool,
    /// Webinars this process already knows as seen (saves a store read per event).
    seen: std::sync::Mutex<BTreeSet<String>>,
    /// Entries from `BRIDGE_WEBINAR_SETTINGS` still to be written (the Lambda seeds on its first batch).
    seed: std::sync::Mutex<Vec<crate::domain::WebinarSetting>>,
}

impl Consumer {
    pub fn new(
        log: Arc<dyn EventLog>,
        contacts: Arc<dyn ContactStore>,
        tags: TagResolver,
        klicktipp: KlickTippClient,
        settings: Settings,
        options: ConsumerOptions,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            log,
            contacts,
            tags,
            klicktipp,
            settings,
            options,
            clock,
            crash_hook: None,
            history: None,
            webinar_settings: None,
            webinars: std::sync::RwLock::default(),
            tags_ahead: false,
            seen: std::sync::Mutex::default(),
            seed: std::sync::Mutex::default(),
        }
    }

    /// Writes `entries` (from `BRIDGE_WEBINAR_SETTINGS`) to the settings store before the first
    /// batch reads it; each replaces the stored entry of its source and webinar. For processes
    /// without a start-up step of their own (the consumer Lambda).
    pub fn with_settings_seed(self, entries: Vec<crate::domain::WebinarSetting>) -> Self {
        if let Ok(mut seed) = self.seed.lock() {
            *seed = entries;
        }
        self
    }

    /// Applies the per-webinar settings in `store` (tag mapping, listid, include filter), read at
    /// the start of every batch; with `tags_ahead`, creates a webinar's state tags the first
    /// time one of its events arrives (remembered in `store`, so once per deployment).
    pub fn with_webinar_settings(mut self, store: Arc<dyn WebinarSettings>, tags_ahead: bool) -> Self {
        self.webinar_settings = Some(store);
        self.tags_ahead = tags_ahead;
        self
    }

    /// The per-webinar settings of the current batch.
    fn webinars(&self) -> Arc<WebinarSettingsSet> {
        self.webinars.read().map(|set| Arc::clone(&set)).unwrap_or_default()
    }

    /// Reads the per-webinar settings afresh; the mapped tags become known to the resolver.
    async fn refresh_webinar_settings(&self) -> Result<(), PortError> {
        let Some(store) = &self.webinar_settings else { return Ok(()) };
        let pending = self.seed.lock().map(|seed| seed.clone()).unwrap_or_default();
        if !pending.is_empty() {
            crate::tags_ahead::seed_webinar_settings(store.as_ref(), &pending).await?;
            if let Ok(mut seed) = self.seed.lock() {
                seed.clear();
            }
        }
        let set = store.all().await?;
        self.tags.pin_known(&set.mapped_ids());
        if let Ok(mut current) = self.webinars.write() {
            *current = Arc::new(set);
        }
        Ok(())
    }

    /// What KlickTipp should show for `record`, mapped states named by their existing tags.
    fn desired(&self, record: &ContactRecord) -> DesiredContact {
        record.desired_with(&self.settings, &self.webinars())
    }

    /// The opt-in process for `record`: that of the webinar with its newest event, else the
    /// configured one.
    fn listid_for(&self, record: &ContactRecord) -> Option<u64> {
        let latest = record
            .webinars
            .iter()
            .max_by(|(key_a, a), (key_b, b)| a.last_event.cmp(&b.last_event).then_with(|| key_a.cmp(key_b)));
        latest
            .and_then(|(key, state)| {
                self.webinars()
                    .effective(&key.source.key(), &key.webinar_id, state.field(FieldSlot::WebinarName))
                    .listid
            })
            .or(self.options.listid)
    }

    /// Creates the state tags of each webinar of `events` not seen before (`BRIDGE_TAGS_AHEAD`).
    /// Best effort: a failure is logged and tried again with the webinar's next event; the
    /// events themselves are applied either way.
    async fn tags_ahead(&self, events: &[WebinarEvent]) {
        let Some(store) = self.webinar_settings.as_ref().filter(|_| self.tags_ahead) else { return };
        if self.options.mode != ApplyMode::Management {
            return;
        }
        let webinars = self.webinars();
        for event in events {
            let webinar = WebinarRef::of_event(event);
            let key = webinar.seen_key(&self.settings);
            if self.seen.lock().map(|seen| seen.contains(&key)).unwrap_or(false) {
                continue;
            }
            let result = match store.is_seen(&key).await {
                Ok(true) => Ok(()),
                Ok(false) => match ensure_webinar_tags(&self.tags, &self.settings, &webinars, &webinar).await {
                    Ok(tags) => {
                        let created = tags.iter().filter(|tag| tag.how == crate::tags_ahead::Ensured::Created).count();
                        tracing::info!(webinar = %key, created, "created the webinar's tags ahead");
                        store.mark_seen(&key, self.clock.now()).await.map_err(|error| error.to_string())
                    }
                    Err(error) => Err(error.to_string()),
                },
                Err(error) => Err(error.to_string()),
            };
            match result {
                Ok(()) => {
                    if let Ok(mut seen) = self.seen.lock() {
                        seen.insert(key);
                    }
                }
                Err(error) => {
                    tracing::warn!(webinar = %key, %error, "creating the webinar's tags ahead failed; will try again")
                }
            }
        }
    }

    /// Records each event's outcome in `history` (DESIGN 12). A failed write is logged, never
    /// fatal: the event has been processed either way.
    pub fn with_history(mut self, history: Arc<dyn HistoryLog>) -> Self {
        self.history = Some(history);
        self
    }

    /// Installs a crash hook (the chaos soak uses it; production never does).
    #[cfg(feature = "fault-injection")]
    pub fn with_crash_hook(mut self, hook: CrashHook) -> Self {
        self.crash_hook = Some(hook);
        self
    }

    /// Processes a batch within `deadline`: groups not started by then are handed back untouched,
    /// and no KlickTipp call or wait of a started group runs past it (unfinished groups release
    /// their claims and go back to the queue with a delay). Outcomes come back in the order of
    /// `messages`.
    pub async fn process_batch(&self, messages: &[QueuedMessage], deadline: Option<Instant>) -> Vec<MessageOutcome> {
        if let Err(error) = self.refresh_webinar_settings().await {
            // Without them an excluded webinar could be applied: hand the batch back.
            tracing::warn!(%error, "cannot read the per-webinar settings; will retry");
            let group: Vec<&QueuedMessage> = messages.iter().collect();
            let reason = format!("cannot read the per-webinar settings: {error}");
            return self.retry_group(&group, initial_outcomes(&group), None, &reason);
        }
        let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (index, message) in messages.iter().enumerate() {
            groups.entry(message.group_id.as_str()).or_default().push(index);
        }
        let results: Vec<(Vec<usize>, Vec<MessageOutcome>)> = stream::iter(groups.into_values())
            .map(|indices| async move {
                let group: Vec<&QueuedMessage> = indices.iter().map(|&i| &messages[i]).collect();
                let outcomes = if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    let outcomes = initial_outcomes(&group);
                    self.retry_group(&group, outcomes, None, "the invocation is about to time out")
                } else {
                    deadline::within(deadline, self.process_group(&group)).await
                };
                (indices, outcomes)
            })
            .buffer_unordered(self.options.group_concurrency.max(1))
            .collect()
            .await;
        let mut ordered: Vec<Option<MessageOutcome>> = vec![None; messages.len()];
        for (indices, outcomes) in results {
            for (index, outcome) in indices.into_iter().zip(outcomes) {
                ordered[index] = Some(outcome);
            }
        }
        ordered.into_iter().flatten().collect()
    }

    /// One FIFO group: every message of one contact in this batch, in order. Claim the events,
    /// apply them together, record how they ended.
    async fn process_group(&self, group: &[&QueuedMessage]) -> Vec<MessageOutcome> {
        let mut outcomes = initial_outcomes(group);
        // This run's claims: complete and release only succeed while no other worker took them over.
        let owner = ClaimToken::new();
        let claimed = match self.claim_group(group, &owner, &mut outcomes).await {
            Ok(claimed) => claimed,
            Err(GroupRetry { reason, retry_after }) => return self.retry_group(group, outcomes, retry_after, &reason),
        };
        let Some((_, first)) = claimed.first() else {
            self.record_history(group, &outcomes, &[]).await;
            return outcomes;
        };
        let email = first.contact.email.clone();
        let events: Vec<WebinarEvent> = claimed.iter().map(|(_, event)| event.clone()).collect();
        self.tags_ahead(&events).await;
        let mut field_problems = Vec::new();
        let result = self.apply_contact(&email, &events, &mut field_problems).await;
        let finished = match result {
            Ok(skipped) => self.complete_applied(&email, &claimed, &owner, &skipped, &mut outcomes).await,
            Err(ApplyError::Permanent(reason)) => {
                self.complete_rejected(&email, &claimed, &owner, &reason, &mut outcomes).await
            }
            Err(ApplyError::Retry { reason, retry_after }) => {
                tracing::warn!(contact = %email.short_hash(), %reason, "will retry");
                self.release(&claimed, &owner).await;
                Err(GroupRetry { reason, retry_after })
            }
            Err(ApplyError::Crash) => {
                outcomes.iter_mut().for_each(|outcome| outcome.disposition = Disposition::Abandoned);
                Ok(())
            }
        };
        match finished {
            Ok(()) => {
                self.record_history(group, &outcomes, &field_problems).await;
                outcomes
            }
            Err(GroupRetry { reason, retry_after }) => self.retry_group(group, outcomes, retry_after, &reason),
        }
    }

    /// Decodes and claims each message of the group. Messages that need no work (unreadable,
    /// duplicates, flagged) get their outcome here; the claimed events come back with their index.
    /// When one event cannot be claimed now, the claims taken so far are released.
    async fn claim_group(
        &self,
        group: &[&QueuedMessage],
        owner: &ClaimToken,
        outcomes: &mut [MessageOutcome],
    ) -> Result<Vec<(usize, WebinarEvent)>, GroupRetry> {
        let now = self.clock.now();
        let mut claimed: Vec<(usize, WebinarEvent)> = Vec::new();
        for (index, message) in group.iter().enumerate() {
            let event = match decode_event(&message.body) {
                Ok(event) => event,
                Err(reason) => {
                    tracing::error!(message_id = %message.message_id, %reason, "unreadable queue message; to the dead-letter queue");
                    outcomes[index].disposition = Disposition::Done(MessageResult::Unreadable(reason));
                    continue;
                }
            };
            outcomes[index].event_id = Some(event.event_id.clone());
            // A redelivery queued behind its original (possible once the queue's dedup window has
            // passed) must not run into the lease this very batch just took.
            if let Some((_, original)) = claimed.iter().find(|(_, claimed)| claimed.event_id == event.event_id) {
                let result = if original.fingerprint() == event.fingerprint() {
                    MessageResult::Duplicate
                } else {
                    MessageResult::Flagged
                };
                outcomes[index].disposition = Disposition::Done(result);
                continue;
            }
            let claim = self
                .log
                .claim(&event.event_id, &event.fingerprint(), owner, now, self.options.lease, self.options.retention)
                .await;
            let retry = match claim {
                Ok(Claim::Claimed) => {
                    claimed.push((index, event));
                    continue;
                }
                Ok(Claim::Completed(_)) => {
                    tracing::info!(event_id = %event.event_id, "duplicate");
                    outcomes[index].disposition = Disposition::Done(MessageResult::Duplicate);
                    continue;
                }
                Ok(Claim::PayloadMismatch) => {
                    tracing::warn!(event_id = %event.event_id, contact = %event.contact.email.short_hash(), "event id reused with a different payload; not applied");
                    outcomes[index].disposition = Disposition::Done(MessageResult::Flagged);
                    continue;
                }
                // Wait out the other worker's lease instead of spending receives on it: short
                // backoffs would reach the dead-letter queue before a crashed lease expires.
                Ok(Claim::Busy) => GroupRetry {
                    reason: "another worker holds this event".into(),
                    retry_after: Some(self.options.lease),
                },
                Err(error) => GroupRetry { reason: error.to_string(), retry_after: None },
            };
            self.release(&claimed, owner).await;
            return Err(retry);
        }
        Ok(claimed)
    }

    /// Records `applied` (or `skipped`) for every claimed event.
    async fn complete_applied(
        &self,
        email: &Email,
        claimed: &[(usize, WebinarEvent)],
        owner: &ClaimToken,
        skipped: &BTreeMap<EventId, String>,
        outcomes: &mut [MessageOutcome],
    ) -> Result<(), GroupRetry> {
        let now = self.clock.now();
        for (index, event) in claimed {
            let (result, outcome) = match skipped.get(&event.event_id) {
                Some(reason) => {
                    (MessageResult::Skipped(reason.clone()), FinalOutcome::Skipped { reason: reason.clone() })
                }
                None => (MessageResult::Applied, FinalOutcome::Applied),
            };
            // On failure the effect is saved; a redelivery re-plans to nothing and completes.
            self.log
                .complete(&event.event_id, owner, &outcome, now, self.options.retention)
                .await
                .map_err(|error| completion_failed(event, error))?;
            outcomes[*index].disposition = Disposition::Done(result);
        }
        tracing::info!(contact = %email.short_hash(), events = claimed.len(), "applied");
        Ok(())
    }

    /// Records the permanent rejection for every claimed event.
    async fn complete_rejected(
        &self,
        email: &Email,
        claimed: &[(usize, WebinarEvent)],
        owner: &ClaimToken,
        reason: &RejectionReason,
        outcomes: &mut [MessageOutcome],
    ) -> Result<(), GroupRetry> {
        tracing::warn!(contact = %email.short_hash(), operation = %reason.operation, error_number = reason.error_number, field = reason.field.as_deref(), reason = %reason.reason, "rejected by KlickTipp");
        let now = self.clock.now();
        let outcome = FinalOutcome::Rejected(reason.clone());
        for (index, event) in claimed {
            self.log
                .complete(&event.event_id, owner, &outcome, now, self.options.retention)
                .await
                .map_err(|error| completion_failed(event, error))?;
            outcomes[*index].disposition = Disposition::Done(MessageResult::Rejected(reason.clone()));
        }
        Ok(())
    }

    /// FIFO: when one message of a group fails, the whole group goes back, in order.
    fn retry_group(
        &self,
        group: &[&QueuedMessage],
        mut outcomes: Vec<MessageOutcome>,
        retry_after: Option<Duration>,
        reason: &str,
    ) -> Vec<MessageOutcome> {
        let attempts = group.iter().map(|message| message.receive_count).max().unwrap_or(1);
        let delay = self.backoff(attempts).max(retry_after.unwrap_or_default());
        for outcome in &mut outcomes {
            outcome.disposition = Disposition::RetryLater { delay, reason: reason.to_owned() };
        }
        outcomes
    }

    fn backoff(&self, receive_count: u32) -> Duration {
        retry_delay(self.options.retry_base, self.options.retry_cap, receive_count)
    }

    /// Appends each finished message's outcome (and field problems found) to the history, under
    /// the message's group: the contact's `Email::group_hash`.
    async fn record_history(
        &self,
        group: &[&QueuedMessage],
        outcomes: &[MessageOutcome],
        field_problems: &[(String, FieldProblem)],
    ) {
        let Some(history) = &self.history else { return };
        let now = self.clock.now();
        let mut entries = Vec::new();
        for (message, outcome) in group.iter().zip(outcomes) {
            let (Some(event_id), Disposition::Done(result)) = (&outcome.event_id, &outcome.disposition) else {
                continue;
            };
            let step = match result {
                MessageResult::Applied => HistoryOutcome::Applied,
                MessageResult::Duplicate => HistoryOutcome::Duplicate,
                MessageResult::Flagged => HistoryOutcome::Flagged,
                MessageResult::Rejected(reason) => HistoryOutcome::Rejected(reason.clone()),
                MessageResult::Skipped(reason) => HistoryOutcome::Skipped { reason: reason.clone() },
                MessageResult::Unreadable(reason) => HistoryOutcome::DeadLettered { reason: reason.clone() },
            };
            let contact = message.group_id.clone();
            for (field, problem) in field_problems.iter().filter(|(_, problem)| &problem.event_id == event_id) {
                let step = HistoryOutcome::FieldProblem {
                    field: field.clone(),
                    error_number: problem.error_number,
                    reason: problem.reason.clone(),
                };
                entries.push(HistoryEntry {
                    contact: contact.clone(),
                    event_id: event_id.clone(),
                    at: now,
                    step: HistoryStep::Outcome(step),
                });
            }
            entries.push(HistoryEntry {
                contact,
                event_id: event_id.clone(),
                at: now,
                step: HistoryStep::Outcome(step),
            });
        }
        for entry in entries {
            if let Err(error) = history.append(&entry, self.options.retention).await {
                tracing::warn!(%error, event_id = %entry.event_id, "recording the event's history failed");
            }
        }
    }

    async fn release(&self, claimed: &[(usize, WebinarEvent)], owner: &ClaimToken) {
        for (_, event) in claimed {
            match self.log.release(&event.event_id, owner).await {
                Ok(()) => {}
                // Taken over after our lease ran out: the claim is the new owner's to keep.
                Err(PortError::ClaimLost) => {
                    tracing::info!(event_id = %event.event_id, "claim already taken over by another worker");
                }
                // The lease expires on its own; releasing only makes the retry faster.
                Err(error) => tracing::warn!(event_id = %event.event_id, %error, "could not release claim"),
            }
        }
    }

    fn crash_at(&self, point: CrashPoint) -> bool {
        self.crash_hook.as_ref().is_some_and(|hook| hook(point))
    }

    /// Merges, plans, applies and saves one contact; redone from a fresh read when the record
    /// changed concurrently. Returns the events that were deliberately skipped, with why.
    async fn apply_contact(
        &self,
        email: &Email,
        events: &[WebinarEvent],
        field_problems: &mut Vec<(String, FieldProblem)>,
    ) -> Result<BTreeMap<EventId, String>, ApplyError> {
        // Events of webinars the per-webinar settings exclude: recorded as skipped, no call.
        let webinars = self.webinars();
        let mut excluded = BTreeMap::new();
        let mut included = Vec::with_capacity(events.len());
        for event in events {
            let effective = webinars.effective(&event.source.key(), &event.webinar.id, event.webinar.name.as_deref());
            if effective.included {
                included.push(event.clone());
            } else {
                let by = effective.excluded_by.unwrap_or_default();
                excluded.insert(
                    event.event_id.clone(),
                    format!("the webinar is excluded by the per-webinar settings (entry {by})"),
                );
            }
        }
        if included.is_empty() {
            return Ok(excluded);
        }
        let events = included.as_slice();
        let newest_event = events.last().map(|event| &event.event_id);
        for _ in 0..self.options.max_save_attempts.max(1) {
            let loaded = self.contacts.load(email).await?;
            let mut version = loaded.as_ref().map(|versioned| versioned.version);
            let mut record =
                loaded.map(|versioned| versioned.value).unwrap_or_else(|| ContactRecord::new(email.clone()));
            let unconfirmed = self.unconfirmed(&record);
            for event in events {
                record.apply(event);
            }
            if !self.unconfirmed(&record).is_empty() {
                // Write ahead: store the state this attempt acts on before KlickTipp hears of it, so
                // after a crash before the final save every tag it may add or remove, and every
                // field it may overwrite, is unconfirmed rather than unknown.
                match self.contacts.save(&record, version).await {
                    Ok(saved) => version = Some(saved),
                    Err(PortError::VersionConflict) => continue,
                    Err(error) => return Err(error.into()),
                }
            }
            let (result, skipped) = match self.options.mode {
                ApplyMode::Management => {
                    (self.apply_management(&mut record, &unconfirmed, newest_event).await, BTreeMap::new())
                }
                ApplyMode::Listbuilding => self.apply_listbuilding(&mut record, events).await,
            };
            if self.crash_at(CrashPoint::AfterKlickTippBeforeSave) {
                return Err(ApplyError::Crash);
            }
            match self.contacts.save(&record, version).await {
                Ok(_) => {}
                Err(PortError::VersionConflict) => continue,
                Err(error) => return Err(error.into()),
            }
            if self.crash_at(CrashPoint::AfterSaveBeforeComplete) {
                return Err(ApplyError::Crash);
            }
            // Field problems this batch found (they name one of its events), for the history.
            field_problems.extend(
                record
                    .field_problems
                    .iter()
                    .filter(|(_, problem)| events.iter().any(|event| event.event_id == problem.event_id))
                    .map(|(key, problem)| (key.clone(), problem.clone())),
            );
            return result.map(|()| skipped.into_iter().chain(excluded).collect());
        }
        Err(ApplyError::Retry { reason: "the contact record kept changing concurrently".into(), retry_after: None })
    }

    /// Resync (issue 14): re-applies a stored contact's desired view from scratch, as if KlickTipp
    /// held nothing the bridge set. Upserts and tags are idempotent in KlickTipp, so this heals
    /// drift (a managed tag removed by hand) and retries field values refused before (after the
    /// field map was fixed); a value still refused is recorded again. Returns `Ok(false)` when no
    /// contact is stored under `email`.
    pub async fn resync_contact(&self, email: &Email) -> Result<bool, String> {
        if self.options.mode != ApplyMode::Management {
            return Err("resync needs the Management API (KlickTipp username and password)".to_owned());
        }
        for _ in 0..self.options.max_save_attempts.max(1) {
            let Some(loaded) = self.contacts.load(email).await.map_err(|error| error.to_string())? else {
                return Ok(false);
            };
            let version = Some(loaded.version);
            let mut record = loaded.value;
            let desired = self.desired(&record);
            let event = record.field_problems.values().next().map(|problem| problem.event_id.clone());
            record.field_problems.clear();
            record.applied.fields.clear();
            record.applied.tags.retain(|name| !desired.tags.contains(name));
            let result = self.apply_management(&mut record, &Unconfirmed::default(), event.as_ref()).await;
            match self.contacts.save(&record, version).await {
                Ok(_) => {}
                Err(PortError::VersionConflict) => continue,
                Err(error) => return Err(error.to_string()),
            }
            tracing::info!(contact = %email.short_hash(), ok = result.is_ok(), "resynced");
            return match result {
                Ok(()) => Ok(true),
                Err(ApplyError::Retry { reason, .. }) => {
                    Err(format!("KlickTipp did not answer in time ({reason}); try again"))
                }
                Err(ApplyError::Permanent(reason)) => Err(format!("KlickTipp refused: {}", reason.reason)),
                Err(ApplyError::Crash) => Err("interrupted".to_owned()),
            };
        }
        Err("the contact record kept changing concurrently; try again".to_owned())
    }

    /// Resync against KlickTipp's actual contact (`webinar-bridge resync`, issue 14): reads the
    /// contact live (search + get), takes what KlickTipp really holds as the applied view, and
    /// applies the plan from the stored state against it. Heals drift (a managed tag removed or
    /// added by hand, a field changed by hand, a deleted contact) with only the writes that
    /// drift needs; a contact without drift costs the two reads and no write. Values KlickTipp
    /// refused before are offered once more (the field may have been fixed in KlickTipp).
    pub async fn resync_live(&self, email: &Email) -> Result<Resynced, String> {
        if self.options.mode != ApplyMode::Management {
            return Err("resync needs the Management API (KlickTipp username and password)".to_owned());
        }
        for _ in 0..self.options.max_save_attempts.max(1) {
            let Some(loaded) = self.contacts.load(email).await.map_err(|error| error.to_string())? else {
                return Ok(Resynced::default());
            };
            let version = Some(loaded.version);
            let mut record = loaded.value;
            let id = self
                .klicktipp
                .search_subscriber(email.as_str())
                .await
                .map_err(|error| format!("KlickTipp: searching the contact: {error}"))?;
            let live = match id {
                Some(id) => Some(
                    self.klicktipp
                        .get_subscriber(&id)
                        .await
                        .map_err(|error| format!("KlickTipp: reading the contact: {error}"))?,
                ),
                None => None,
            };
            let event = record.field_problems.values().next().map(|problem| problem.event_id.clone());
            record.field_problems.clear();
            let desired = record.desired(&self.settings);
            let mut actual = AppliedView::default();
            if let Some(live) = &live {
                actual.known = true;
                for (key, value) in &desired.fields {
                    if live.fields.get(key).is_some_and(|held| *held == value.to_string()) {
                        actual.fields.insert(key.clone(), value.clone());
                    }
                }
                for name in record.applied.tags.union(&desired.tags) {
                    let id = self.tags.existing(name).await.map_err(|error| format!("KlickTipp tags: {error}"))?;
                    if id.is_some_and(|id| live.tags.contains(&id)) {
                        actual.tags.insert(name.clone());
                    }
                }
            }
            let planned = plan(&desired, &actual, |name| self.tags.is_cached(name));
            let resynced = Resynced {
                stored: true,
                contact_missing: live.is_none(),
                tags_added: desired.tags.difference(&actual.tags).cloned().collect(),
                tags_removed: actual.tags.difference(&desired.tags).cloned().collect(),
                fields_written: desired
                    .fields
                    .keys()
                    .filter(|key| !actual.fields.contains_key(*key))
                    .cloned()
                    .collect(),
                writes: planned.call_count(),
            };
            record.applied = actual;
            let result = self.apply_management(&mut record, &Unconfirmed::default(), event.as_ref()).await;
            match self.contacts.save(&record, version).await {
                Ok(_) => {}
                Err(PortError::VersionConflict) => continue,
                Err(error) => return Err(error.to_string()),
            }
            tracing::info!(contact = %email.short_hash(), writes = resynced.writes, ok = result.is_ok(), "resynced live");
            return match result {
                Ok(()) => Ok(resynced),
                Err(ApplyError::Retry { reason, .. }) => {
                    Err(format!("KlickTipp did not answer in time ({reason}); try again"))
                }
                Err(ApplyError::Permanent(reason)) => Err(format!("KlickTipp refused: {}", reason.reason)),
                Err(ApplyError::Crash) => Err("interrupted".to_owned()),
            };
        }
        Err("the contact record kept changing concurrently; try again".to_owned())
    }

    /// Where the stored state and the applied view disagree: an earlier attempt may have set or
    /// removed those tags, or overwritten those fields, without recording it (it crashed before
    /// the save, or the answers were lost). Empty after every fully applied plan.
    fn unconfirmed(&self, record: &ContactRecord) -> Unconfirmed {
        if self.options.mode != ApplyMode::Management {
            return Unconfirmed::default();
        }
        let mut desired = self.desired(record);
        withhold_refused(&mut desired, &record.field_problems);
        Unconfirmed::between(&desired, &record.applied)
    }

    /// `unconfirmed`: [`Self::unconfirmed`] of the record as loaded, before this batch.
    /// `event`: the newest event of the batch, named in a field problem found on the way.
    async fn apply_management(
        &self,
        record: &mut ContactRecord,
        unconfirmed: &Unconfirmed,
        event: Option<&EventId>,
    ) -> Result<(), ApplyError> {
        let mut desired = self.desired(record);
        withhold_refused(&mut desired, &record.field_problems);
        // A tag an interrupted attempt may have removed (or a field it may have overwritten) is
        // set again when this batch wants it: the applied view cannot vouch for it.
        record.applied.doubt(unconfirmed, &desired);
        let mut plan = plan(&desired, &record.applied, |name| self.tags.is_cached(name));
        // One that is no longer wanted may be in KlickTipp all the same: remove it (untag is
        // idempotent; a tag the account does not have is skipped).
        let stray = unconfirmed.tags.difference(&desired.tags).filter(|name| !record.applied.tags.contains(*name));
        plan.untag.extend(stray.cloned());
        if plan.is_empty() {
            return Ok(());
        }
        tracing::debug!(contact = %record.email.short_hash(), calls = plan.call_count(), "plan");
        let email = record.email.clone();
        let found_by = FoundBy { email: &email, event, listid: self.listid_for(record) };
        let result = self.execute(&found_by, &plan, &mut record.applied, &mut record.field_problems).await;
        if let Err(ApplyError::Permanent(reason)) = &result
            && let Some(rejection) = self.deleted_mapped_tag(reason, &plan).await
        {
            return Err(ApplyError::Permanent(rejection));
        }
        if let Err(ApplyError::Permanent(reason)) = &result
            && self.recover_stale_view(reason, &plan, &mut record.applied).await
        {
            let reason = format!("KlickTipp no longer had what the bridge set ({}); re-applying", reason.reason);
            return Err(ApplyError::Retry { reason, retry_after: None });
        }
        result
    }

    /// A state mapped (per-webinar settings) to a tag the user has since deleted in KlickTipp:
    /// the bridge must not create a tag in its place (the marketer chose that one) and retrying
    /// cannot bring it back, so the events are rejected visibly with a reason naming the mapping
    /// to fix, instead of retrying into the dead-letter queue. `None` when the refusal is not
    /// about a mapped tag, or the account still has every mapped tag of the plan.
    async fn deleted_mapped_tag(&self, reason: &RejectionReason, plan: &Plan) -> Option<RejectionReason> {
        if reason.error_number != Some(KLICKTIPP_TAG_NOT_FOUND) {
            return None;
        }
        let webinars = self.webinars();
        let mapped = webinars.mapped_ids();
        let planned: Vec<(&String, u64)> = plan
            .upsert
            .iter()
            .filter_map(|upsert| upsert.tag.as_ref())
            .chain(&plan.tag)
            .filter_map(|name| mapped.get(name).map(|id| (name, *id)))
            .collect();
        if planned.is_empty() {
            return None;
        }
        let account = match self.klicktipp.list_tags().await {
            Ok(account) => account,
            Err(error) => {
                tracing::warn!(%error, "could not list the tags to check the mapped ones");
                return None;
            }
        };
        let gone: Vec<(&String, u64)> = planned.into_iter().filter(|(_, id)| !account.contains_key(id)).collect();
        if gone.is_empty() {
            return None;
        }
        let described: Vec<String> =
            gone.iter()
                .map(|(name, id)| {
                    let mappings: Vec<String> =
                        webinars
                            .entries()
                            .flat_map(|entry| {
                                entry.tags.iter().filter(|(_, tag)| tag.id == *id).map(move |(state, _)| {
                                    format!("{}/{} {}", entry.source, entry.webinar, state.as_str())
                                })
                            })
                            .collect();
                    format!("tag {id} {name:?} (mapped by {})", mappings.join(", "))
                })
                .collect();
        tracing::warn!(tags = ?gone.iter().map(|(_, id)| id).collect::<Vec<_>>(), "a mapped tag no longer exists in KlickTipp");
        Some(RejectionReason {
            operation: reason.operation.clone(),
            status: reason.status,
            error_number: reason.error_number,
            field: None,
            reason: format!(
                "KlickTipp no longer has {}; map the state to an existing tag in the per-webinar settings (BRIDGE_WEBINAR_SETTINGS or the console; `webinar-bridge klicktipp tags` lists the account's tags) or remove the mapping, then run `webinar-bridge resync <address>` (or `resync --webinar <name>`)",
                described.join("; ")
            ),
        })
    }

    /// The applied view is stale when the user deleted the contact or a tag in KlickTipp:
    /// forget what is gone so the retry creates it again instead of rejecting the event.
    async fn recover_stale_view(&self, reason: &RejectionReason, plan: &Plan, applied: &mut AppliedView) -> bool {
        let touches_tags = plan.upsert.as_ref().is_some_and(|upsert| upsert.tag.is_some()) || !plan.tag.is_empty();
        match reason.error_number {
            Some(KLICKTIPP_TAG_NOT_FOUND) if touches_tags => {}
            Some(KLICKTIPP_SUBSCRIBER_NOT_FOUND) if applied.known && reason.operation != UPSERT_SUBSCRIBER => {}
            _ => return false,
        }
        applied.known = false;
        for name in plan.upsert.iter().filter_map(|upsert| upsert.tag.as_ref()).chain(&plan.tag) {
            if let Err(error) = self.tags.forget(name).await {
                tracing::warn!(%error, "could not forget a stale tag");
            }
        }
        true
    }

    /// Runs the plan, recording in `applied` each call that succeeded (and in `problems` each
    /// field KlickTipp refused), so a failure part-way saves the progress and the retry plans
    /// only what is left.
    async fn execute(
        &self,
        found_by: &FoundBy<'_>,
        plan: &Plan,
        applied: &mut AppliedView,
        problems: &mut FieldProblems,
    ) -> Result<(), ApplyError> {
        let email = found_by.email;
        for name in &plan.create_tags {
            self.tags.resolve(name).await?;
        }
        if let Some(upsert) = &plan.upsert {
            let tagid = match &upsert.tag {
                Some(name) => Some(self.tags.resolve(name).await?.0),
                None => None,
            };
            let accepted = self.upsert_without_refused(found_by, upsert.fields.clone(), tagid, problems).await?;
            applied.known = true;
            for key in accepted.keys() {
                problems.remove(key);
            }
            applied.fields.extend(accepted);
            applied.tags.extend(upsert.tag.clone());
        }
        if !plan.tag.is_empty() {
            let mut ids = Vec::with_capacity(plan.tag.len());
            for name in &plan.tag {
                ids.push(self.tags.resolve(name).await?.0);
            }
            self.klicktipp.tag(email.as_str(), &ids).await.map_err(classify)?;
            applied.tags.extend(plan.tag.iter().cloned());
        }
        for name in &plan.untag {
            // A tag the account no longer has is on no contact: nothing to remove.
            if let Some(id) = self.tags.existing(name).await? {
                self.klicktipp.untag(email.as_str(), id).await.map_err(classify)?;
            }
            applied.tags.remove(name);
        }
        Ok(())
    }

    /// `POST /subscriber`, repeated without each data field whose value KlickTipp refuses
    /// (DESIGN 6): the contact and its tag are applied all the same, and the refusal is recorded
    /// in `problems`. Returns the fields KlickTipp accepted. Each round drops a field, so this
    /// makes at most one call more than there are fields.
    async fn upsert_without_refused(
        &self,
        found_by: &FoundBy<'_>,
        mut fields: BTreeMap<String, FieldValue>,
        tagid: Option<u64>,
        problems: &mut FieldProblems,
    ) -> Result<BTreeMap<String, FieldValue>, ApplyError> {
        let email = found_by.email;
        loop {
            let request = UpsertSubscriber {
                email: email.as_str().to_owned(),
                listid: found_by.listid,
                tagid,
                fields: fields.clone(),
            };
            let error = match self.klicktipp.upsert_subscriber(&request).await {
                Ok(_) => return Ok(fields),
                Err(error) => error,
            };
            let refused = refused_fields(&error, &fields);
            if refused.is_empty() {
                return Err(classify(error));
            }
            let reason = error.redacted_reason();
            for key in refused {
                let Some(value) = fields.remove(&key) else { continue };
                tracing::warn!(
                    contact = %email.short_hash(),
                    field = %key,
                    error_number = error.error_number(),
                    reason = %reason,
                    event_id = found_by.event.map(|id| id.as_str()),
                    "field refused"
                );
                let Some(event_id) = found_by.event.cloned() else { continue };
                let problem = FieldProblem {
                    error_number: error.error_number(),
                    reason: reason.clone(),
                    event_id,
                    value_fingerprint: value_fingerprint(&value),
                };
                problems.insert(key, problem);
            }
        }
    }

    /// Listbuilding: one sign-in per contact, on its first registration; other kinds are
    /// recorded as skipped because the Listbuilding API cannot tag or update.
    async fn apply_listbuilding(
        &self,
        record: &mut ContactRecord,
        events: &[WebinarEvent],
    ) -> (Result<(), ApplyError>, BTreeMap<EventId, String>) {
        let skipped: BTreeMap<EventId, String> = events
            .iter()
            .filter(|event| event.kind != EventKind::Registered)
            .map(|event| {
                (event.event_id.clone(), format!("listbuilding mode applies registrations only, not {}", event.kind))
            })
            .collect();
        if record.applied.known || skipped.len() == events.len() {
            return (Ok(()), skipped);
        }
        let desired = self.desired(record);
        let result = match self.klicktipp.signin(record.email.as_str(), &desired.fields).await {
            Ok(_) => {
                record.applied.known = true;
                record.applied.fields = desired.fields;
                Ok(())
            }
            Err(error) => Err(classify(error)),
        };
        (result, skipped)
    }
}

/// Who a field problem concerns: the contact and the newest event of its batch.
struct FoundBy<'a> {
    email: &'a Email,
    event: Option<&'a EventId>,
    /// The opt-in process of a new contact (per webinar, else `KLICKTIPP_LISTID`).
    listid: Option<u64>,
}

/// The data fields of a refused upsert that KlickTipp refused: on 406 error 8, the named field
/// when it was sent, else every field sent (KlickTipp did not say which). Empty for any other
/// error, a refusal of the address itself included. Matches status and number, never text.
fn refused_fields(error: &KlickTippError, sent: &BTreeMap<String, FieldValue>) -> Vec<String> {
    if error.status() != Some(KLICKTIPP_REFUSAL_STATUS) {
        return Vec::new();
    }
    // KlickTipp's own SMS field: error 9 (the number belongs to another contact), 11 (invalid
    // phone number), or 10 with one of those subcodes. The number is dropped, never the contact.
    let sms_refused = matches!(
        error,
        KlickTippError::Rejected { error: Some(9 | 11), .. }
            | KlickTippError::Rejected { error: Some(10), code: Some(9..=11), .. }
    );
    if sms_refused && sent.contains_key(crate::domain::KLICKTIPP_SMS_NUMBER) {
        return vec![crate::domain::KLICKTIPP_SMS_NUMBER.to_owned()];
    }
    if error.error_number() != Some(KLICKTIPP_FIELD_REFUSED) {
        return Vec::new();
    }
    match error.field_error().and_then(|field| field.key.as_deref()) {
        Some(key) if sent.contains_key(key) => vec![key.to_owned()],
        _ => sent.keys().cloned().collect(),
    }
}

/// Every message of the group as applied, until the steps say otherwise.
fn initial_outcomes(group: &[&QueuedMessage]) -> Vec<MessageOutcome> {
    group
        .iter()
        .map(|message| MessageOutcome {
            message_id: message.message_id.clone(),
            event_id: None,
            disposition: Disposition::Done(MessageResult::Applied),
        })
        .collect()
}

/// Why a group goes back to the queue.
struct GroupRetry {
    reason: String,
    retry_after: Option<Duration>,
}

/// A completion that failed sends the group back; a lost claim is normal after a takeover.
fn completion_failed(event: &WebinarEvent, error: PortError) -> GroupRetry {
    if matches!(error, PortError::ClaimLost) {
        // Our lease ran out and another worker took the event over: it records the outcome, and
        // the redelivery of this message finds it completed (a duplicate), so nothing applies twice.
        tracing::info!(event_id = %event.event_id, "claim taken over by another worker; leaving the outcome to it");
    } else {
        tracing::warn!(event_id = %event.event_id, %error, "could not record the outcome; will retry");
    }
    GroupRetry::from(error)
}

impl From<PortError> for GroupRetry {
    fn from(error: PortError) -> Self {
        GroupRetry { reason: error.to_string(), retry_after: None }
    }
}

/// Reads a queue body as an event, or says why this consumer cannot: the reason is kept with
/// the dead letter. A body without a schema version is version 1.
pub fn decode_event(body: &str) -> Result<WebinarEvent, String> {
    let document: serde_json::Value =
        serde_json::from_str(body).map_err(|error| format!("corrupt body: not JSON ({error})"))?;
    let Some(object) = document.as_object() else {
        return Err("corrupt body: not a JSON object".to_owned());
    };
    if let Some(schema) = object.get("schema") {
        match schema.as_u64() {
            Some(version) if version <= u64::from(EVENT_SCHEMA_VERSION) => {}
            Some(version) => {
                return Err(format!(
                    "unknown schema version {version} (this consumer reads up to {EVENT_SCHEMA_VERSION}): \
                     redrive it once every consumer runs the newer version"
                ));
            }
            None => return Err(format!("corrupt body: schema version {schema} is not a number")),
        }
    }
    serde_json::from_value::<WebinarEvent>(document)
        .map_err(|error| format!("not an event this consumer can read (e.g. a kind from a newer ingest): {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::klicktipp::FieldError;

    fn refusal(error: i64, key: Option<&str>) -> KlickTippError {
        KlickTippError::Rejected {
            operation: UPSERT_SUBSCRIBER,
            status: 406,
            error: Some(error),
            code: None,
            field: Some(Box::new(FieldError { key: key.map(str::to_owned), ..FieldError::default() })),
            messages: Vec::new(),
        }
    }

    fn sent(keys: &[&str]) -> BTreeMap<String, FieldValue> {
        keys.iter().map(|key| ((*key).to_owned(), FieldValue::Text("x".into()))).collect()
    }

    #[test]
    fn only_error_8_refuses_fields_and_the_named_one_when_it_was_sent() {
        let fields = sent(&["field101", "fieldFirstName"]);
        assert_eq!(refused_fields(&refusal(8, Some("field101")), &fields), ["field101"]);
        assert_eq!(refused_fields(&refusal(8, None), &fields), ["field101", "fieldFirstName"], "unnamed: all");
        assert_eq!(refused_fields(&refusal(8, Some("field999")), &fields).len(), 2, "named but not sent: all");
        for address_refused in [4, 5, 9] {
            assert!(refused_fields(&refusal(address_refused, None), &fields).is_empty(), "error {address_refused}");
        }
        assert!(refused_fields(&refusal(8, None), &BTreeMap::new()).is_empty(), "nothing to drop");
    }

    #[test]
    fn bodies_this_consumer_cannot_read_say_why() {
        assert!(decode_event("{\"event_id\": ").unwrap_err().starts_with("corrupt body: not JSON"));
        assert!(decode_event("[1,2]").unwrap_err().starts_with("corrupt body: not a JSON object"));
        let newer = decode_event("{\"schema\": 2}").unwrap_err();
        assert!(newer.starts_with("unknown schema version 2"), "{newer}");
        let kind = decode_event("{\"schema\": 1, \"kind\": \"bought\"}").unwrap_err();
        assert!(kind.starts_with("not an event this consumer can read"), "{kind}");
    }

    #[test]
    fn a_version_less_body_is_read_as_version_1() {
        let document = serde_json::json!({
            "event_id": "e1", "source": {"platform": "zoom"}, "kind": "registered",
            "occurred_at": "2026-01-15T17:02:00Z", "received_at": "2026-01-15T17:02:01Z",
            "contact": {"email": "erika@example.com"}, "webinar": {"id": "w1"},
        });
        match decode_event(&document.to_string()) {
            Ok(event) => assert_eq!(event.schema, EVENT_SCHEMA_VERSION),
            Err(reason) => panic!("{reason}"),
        }
    }

    #[test]
    fn the_default_delays_ride_out_more_than_three_hours_before_the_dead_letters() {
        let defaults = ConsumerOptions::default();
        assert_eq!(retry_delay(defaults.retry_base, defaults.retry_cap, 1), Duration::from_secs(2));
        assert_eq!(retry_delay(defaults.retry_base, defaults.retry_cap, 40), DEFAULT_RETRY_CAP);
        assert_eq!(ride_out(MAX_RECEIVE_COUNT), Duration::from_secs(1022 + 21 * 900));
        assert!(ride_out(MAX_RECEIVE_COUNT) > Duration::from_secs(5 * 3600));
    }
}
