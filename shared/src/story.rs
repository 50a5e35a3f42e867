//! The read model of DESIGN 12, shared by the CLI (`contact`, `problems`) and the `serve`
//! console: what happened to a contact's events, what the bridge's state implies, what
//! KlickTipp holds now, where the two differ, and every problem with its reason and its fix.
//! Pure: the callers load the inputs through the ports and the KlickTipp client.

use crate::domain::{ContactRecord, Settings, withhold_refused};
use crate::ports::{HistoryEntry, HistoryOutcome, HistoryStep, ReceiptRecord, ReceivedEvent, RejectionReason};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One event in a contact's timeline: what arrived and how it ended (each may be unknown, e.g.
/// still queued, or received before history was kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineItem {
    pub event_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received: Option<ReceivedEvent>,
    /// Every outcome recorded for the event, oldest first (a redelivery adds `duplicate`).
    pub outcomes: Vec<TimelineOutcome>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineOutcome {
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub outcome: HistoryOutcome,
}

impl TimelineItem {
    /// When the event entered the story: received, else its first outcome.
    pub fn at(&self) -> Option<DateTime<Utc>> {
        self.received.as_ref().map(|received| received.received_at).or_else(|| self.outcomes.first().map(|o| o.at))
    }

    /// `pending` while no outcome is recorded, else the newest outcome's name.
    pub fn status(&self) -> &'static str {
        self.outcomes.last().map_or("pending", |outcome| outcome_name(&outcome.outcome))
    }
}

/// The short name of an outcome, as shown in tables and JSON.
pub fn outcome_name(outcome: &HistoryOutcome) -> &'static str {
    match outcome {
        HistoryOutcome::Applied => "applied",
        HistoryOutcome::Duplicate => "duplicate",
        HistoryOutcome::Rejected(_) => "rejected",
        HistoryOutcome::FieldProblem { .. } => "field_problem",
        HistoryOutcome::DeadLettered { .. } => "dead_lettered",
        HistoryOutcome::Skipped { .. } => "skipped",
        HistoryOutcome::Flagged => "flagged",
        HistoryOutcome::Erased { .. } => "erased",
    }
}

/// Groups history entries by event, in the order the events first appear.
pub fn timeline(entries: &[HistoryEntry]) -> Vec<TimelineItem> {
    let mut order: Vec<String> = Vec::new();
    let mut items: BTreeMap<String, TimelineItem> = BTreeMap::new();
    for entry in entries {
        let id = entry.event_id.as_str().to_owned();
        let item = items.entry(id.clone()).or_insert_with(|| {
            order.push(id.clone());
            TimelineItem { event_id: id, received: None, outcomes: Vec::new() }
        });
        match &entry.step {
            HistoryStep::Received(received) => item.received = Some(received.clone()),
            HistoryStep::Outcome(outcome) => {
                item.outcomes.push(TimelineOutcome { at: entry.at, outcome: outcome.clone() })
            }
        }
    }
    order.into_iter().filter_map(|id| items.remove(&id)).collect()
}

/// One webinar's merged state as the bridge holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebinarView {
    pub source: String,
    pub webinar_id: String,
    /// The state labels this webinar's state implies (`registered`, `attended`, ...).
    pub labels: Vec<String>,
    /// The full stored state.
    pub state: serde_json::Value,
}

/// What KlickTipp holds for the contact right now (tag ids already resolved to names where known).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KlickTippNow {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    pub tags: BTreeSet<String>,
    pub fields: BTreeMap<String, String>,
}

/// Where the bridge's state and KlickTipp disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Difference {
    /// The state implies the contact exists in KlickTipp, but KlickTipp has no such contact.
    ContactMissing,
    /// A tag the state implies is not on the contact (removed by hand, or never applied).
    TagMissing { tag: String },
    /// A tag the bridge manages is on the contact although the state no longer implies it.
    TagExtra { tag: String },
    /// A field the bridge sets holds another value in KlickTipp.
    FieldDiffers {
        field: String,
        expected: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        actual: Option<String>,
    },
}

impl Difference {
    pub fn describe(&self) -> String {
        match self {
            Difference::ContactMissing => "the contact does not exist in KlickTipp".to_owned(),
            Difference::TagMissing { tag } => format!("tag `{tag}` is implied but missing in KlickTipp"),
            Difference::TagExtra { tag } => format!("tag `{tag}` is set in KlickTipp but no longer implied"),
            Difference::FieldDiffers { field, expected, actual } => match actual {
                Some(actual) => format!("field `{field}` is `{actual}` in KlickTipp, the state says `{expected}`"),
                None => format!("field `{field}` is empty in KlickTipp, the state says `{expected}`"),
            },
        }
    }
}

/// Compares what the state implies with what KlickTipp holds. Only tags the bridge manages
/// (implied now or set by it before) count as extra: tags others set are not the bridge's business.
pub fn differences(
    implied_tags: &BTreeSet<String>,
    implied_fields: &BTreeMap<String, String>,
    managed_tags: &BTreeSet<String>,
    now: Option<&KlickTippNow>,
) -> Vec<Difference> {
    let Some(now) = now else {
        return if implied_tags.is_empty() && implied_fields.is_empty() {
            Vec::new()
        } else {
            vec![Difference::ContactMissing]
        };
    };
    let mut found = Vec::new();
    for tag in implied_tags.difference(&now.tags) {
        found.push(Difference::TagMissing { tag: tag.clone() });
    }
    for tag in managed_tags.intersection(&now.tags) {
        if !implied_tags.contains(tag) {
            found.push(Difference::TagExtra { tag: tag.clone() });
        }
    }
    for (field, expected) in implied_fields {
        let actual = now.fields.get(field).filter(|value| !value.is_empty());
        if actual != Some(expected) {
            found.push(Difference::FieldDiffers {
                field: field.clone(),
                expected: expected.clone(),
                actual: actual.cloned(),
            });
        }
    }
    found
}

/// Everything a person wants to know about one contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactStory {
    pub email: String,
    pub timeline: Vec<TimelineItem>,
    pub webinars: Vec<WebinarView>,
    pub implied_tags: BTreeSet<String>,
    pub implied_fields: BTreeMap<String, String>,
    /// `None` when KlickTipp was not asked (offline) or has no such contact (see `differences`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub klicktipp_now: Option<KlickTippNow>,
    /// Whether KlickTipp was asked at all; differences are only meaningful when it was.
    pub klicktipp_checked: bool,
    pub differences: Vec<Difference>,
    pub problems: Vec<Problem>,
}

/// What KlickTipp said when asked for the contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KlickTippLookup {
    NotChecked,
    NotFound,
    Found(KlickTippNow),
}

/// Builds the story of `email` from its stored record, its history and KlickTipp's answer.
pub fn contact_story(
    email: &str,
    record: Option<&ContactRecord>,
    history: &[HistoryEntry],
    settings: &Settings,
    klicktipp: KlickTippLookup,
) -> ContactStory {
    let mut webinars = Vec::new();
    let (mut implied_tags, mut implied_fields, mut managed) = (BTreeSet::new(), BTreeMap::new(), BTreeSet::new());
    let mut problems = Vec::new();
    if let Some(record) = record {
        for (key, state) in &record.webinars {
            webinars.push(WebinarView {
                source: key.source.key(),
                webinar_id: key.webinar_id.clone(),
                labels: state
                    .desired_labels(settings.full_attendance_percent)
                    .into_iter()
                    .map(|label| label.as_str().to_owned())
                    .collect(),
                state: serde_json::to_value(state).unwrap_or(serde_json::Value::Null),
            });
        }
        let mut desired = record.desired(settings);
        withhold_refused(&mut desired, &record.field_problems);
        implied_tags = desired.tags;
        implied_fields = desired.fields.into_iter().map(|(key, value)| (key, value.to_string())).collect();
        managed = record.applied.tags.clone();
        for (field, problem) in &record.field_problems {
            problems.push(Problem::field(
                None,
                Some(problem.event_id.as_str().to_owned()),
                field,
                problem.error_number,
                &problem.reason,
            ));
        }
    }
    let timeline = timeline(history);
    for entry in history {
        if let Some(problem) = Problem::from_history(entry) {
            // Field problems still held on the record are listed once, from the record.
            if !(problem.kind == ProblemKind::FieldProblem
                && problems.iter().any(|known| known.kind == ProblemKind::FieldProblem && known.field == problem.field))
            {
                problems.push(problem);
            }
        }
    }
    let (checked, now) = match klicktipp {
        KlickTippLookup::NotChecked => (false, None),
        KlickTippLookup::NotFound => (true, None),
        KlickTippLookup::Found(now) => (true, Some(now)),
    };
    let differences =
        if checked { differences(&implied_tags, &implied_fields, &managed, now.as_ref()) } else { Vec::new() };
    ContactStory {
        email: email.to_owned(),
        timeline,
        webinars,
        implied_tags,
        implied_fields,
        klicktipp_now: now,
        klicktipp_checked: checked,
        differences,
        problems,
    }
}

// ---------------------------------------------------------------------------------------------
// Problems

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// KlickTipp refused an event permanently.
    Rejected,
    /// KlickTipp refused one field's value; the rest was applied.
    FieldProblem,
    /// A message went to the dead-letter store.
    DeadLetter,
    /// A webhook reused an event id with other content and was refused (409).
    RefusedWebhook,
    /// An event id arrived with other content in the queue: flagged, not applied.
    Flagged,
    /// An authenticated webhook whose body could not become an event, kept to be reprocessed.
    Parked,
    /// Zoom participant events without an e-mail, kept until their registrant id is known.
    ZoomUnmatched,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Rejected => "rejected",
            ProblemKind::FieldProblem => "field_problem",
            ProblemKind::DeadLetter => "dead_letter",
            ProblemKind::RefusedWebhook => "refused_webhook",
            ProblemKind::Flagged => "flagged",
            ProblemKind::Parked => "parked",
            ProblemKind::ZoomUnmatched => "zoom_unmatched",
        }
    }
}

/// One thing a person should look at, with the reason and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub kind: ProblemKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Short hash of the contact (`Email::short_hash`), never the address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// The dead letter's message id, for `redrive <id>`; a parked webhook's id, for `reprocess <id>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_number: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub reason: String,
    pub fix: String,
}

impl Problem {
    fn base(kind: ProblemKind, reason: &str, fix: String) -> Self {
        Problem {
            kind,
            at: None,
            event_id: None,
            contact: None,
            message_id: None,
            error_number: None,
            field: None,
            reason: reason.to_owned(),
            fix,
        }
    }

    /// A refused field value.
    pub fn field(
        at: Option<DateTime<Utc>>,
        event_id: Option<String>,
        field: &str,
        error_number: Option<i64>,
        reason: &str,
    ) -> Self {
        Problem {
            at,
            event_id,
            error_number,
            field: Some(field.to_owned()),
            ..Self::base(ProblemKind::FieldProblem, reason, field_fix(field, reason))
        }
    }

    /// A rejected event.
    pub fn rejected(at: Option<DateTime<Utc>>, event_id: Option<String>, rejection: &RejectionReason) -> Self {
        Problem {
            at,
            event_id,
            error_number: rejection.error_number,
            field: rejection.field.clone(),
            ..Self::base(ProblemKind::Rejected, &rejection.reason, rejection_fix(rejection))
        }
    }

    /// A dead letter (`reason` is `None` when it used up its receives).
    pub fn dead_letter(
        at: Option<DateTime<Utc>>,
        message_id: &str,
        event_id: Option<String>,
        reason: Option<&str>,
    ) -> Self {
        let (reason, fix) = match reason {
            Some(reason) => (
                reason.to_owned(),
                "this consumer could not read the message; upgrade the bridge, then `webinar-bridge redrive`".to_owned(),
            ),
            None => (
                "it failed on every delivery until it ran out of receives".to_owned(),
                "look at the consumer's logs for this event id; once the cause (KlickTipp down, credentials) is fixed, run `webinar-bridge redrive`".to_owned(),
            ),
        };
        Problem {
            at,
            event_id,
            message_id: Some(message_id.to_owned()),
            ..Self::base(ProblemKind::DeadLetter, &reason, fix)
        }
    }

    /// A receipt with refused reuses of its event id.
    pub fn refused_webhook(receipt: &ReceiptRecord) -> Option<Self> {
        (receipt.rejected_reuses > 0).then(|| Problem {
            at: receipt.last_rejected_at.or(Some(receipt.first_seen)),
            event_id: Some(receipt.event_id.as_str().to_owned()),
            ..Self::base(
                ProblemKind::RefusedWebhook,
                &format!(
                    "the event id was reused {} time(s) with different content and answered 409",
                    receipt.rejected_reuses
                ),
                "give every distinct event its own id (webhook-id or event_id) in the sender; resend the changed event under a new id".to_owned(),
            )
        })
    }

    /// A parked webhook (its id in `message_id`): the refusal's sentence and how to run it again.
    pub fn parked(id: &str, source: &str, received_at: DateTime<Utc>, reason: &str) -> Self {
        Problem {
            at: Some(received_at),
            message_id: Some(id.to_owned()),
            ..Self::base(
                ProblemKind::Parked,
                &format!("a {source} webhook was parked: {reason}"),
                format!(
                    "teach the bridge the body's keys (BRIDGE_FIELD_ALIASES, see `webinar-bridge parked --show {id}`) or fix the rule URL, then run `webinar-bridge reprocess {id}`"
                ),
            )
        }
    }

    /// Zoom participant events without an e-mail kept for `registrant_id` (since `oldest`).
    pub fn zoom_unmatched(registrant_id: &str, count: usize, oldest: DateTime<Utc>) -> Self {
        Problem {
            at: Some(oldest),
            message_id: Some(registrant_id.to_owned()),
            ..Self::base(
                ProblemKind::ZoomUnmatched,
                &format!(
                    "{count} Zoom participant event(s) without an e-mail are kept for registrant {registrant_id}, whose registration the bridge has not seen"
                ),
                "the registration has not arrived; the reconcile pull after the webinar settles it (or the registration webhook, when it comes)".to_owned(),
            )
        }
    }

    /// The problem an outcome in the history records, if any.
    pub fn from_history(entry: &HistoryEntry) -> Option<Self> {
        let HistoryStep::Outcome(outcome) = &entry.step else { return None };
        let at = Some(entry.at);
        let event_id = Some(entry.event_id.as_str().to_owned());
        let problem = match outcome {
            HistoryOutcome::Rejected(rejection) => Problem::rejected(at, event_id, rejection),
            HistoryOutcome::FieldProblem { field, error_number, reason } => {
                Problem::field(at, event_id, field, *error_number, reason)
            }
            HistoryOutcome::DeadLettered { reason } => Problem {
                at,
                event_id,
                ..Self::base(
                    ProblemKind::DeadLetter,
                    reason,
                    "run `webinar-bridge redrive` once the cause is fixed".to_owned(),
                )
            },
            HistoryOutcome::Flagged => Problem {
                at,
                event_id,
                ..Self::base(
                    ProblemKind::Flagged,
                    "the event id was seen before with different content; this event was not applied",
                    "give every distinct event its own id in the sender".to_owned(),
                )
            },
            HistoryOutcome::Applied
            | HistoryOutcome::Duplicate
            | HistoryOutcome::Skipped { .. }
            | HistoryOutcome::Erased { .. } => return None,
        };
        Some(problem)
    }

    /// `self` with the contact's short hash attached.
    pub fn for_contact(mut self, short_hash: impl Into<String>) -> Self {
        self.contact = Some(short_hash.into());
        self
    }
}

/// What to do about a refused field value.
pub fn field_fix(field: &str, reason: &str) -> String {
    let lower = reason.to_ascii_lowercase();
    if lower.contains("numeric") || lower.contains("number") || lower.contains("zahl") {
        format!("map `{field}` to a text field in KlickTipp (or send a number), then `webinar-bridge resync`")
    } else if lower.contains("date") || lower.contains("datum") {
        format!(
            "map `{field}` to a text field, or make it a KlickTipp date field with a valid date, then `webinar-bridge resync`"
        )
    } else if lower.contains("url") {
        format!("map `{field}` to a text field, or send a complete URL, then `webinar-bridge resync`")
    } else {
        format!("map `{field}` to a text field (or a field whose type fits the value), then `webinar-bridge resync`")
    }
}

/// What to do about an event KlickTipp refused.
pub fn rejection_fix(rejection: &RejectionReason) -> String {
    let lower = rejection.reason.to_ascii_lowercase();
    if lower.contains("unsubscri") || lower.contains("abgemeldet") {
        return "the address is unsubscribed in KlickTipp; only the contact can subscribe again (a new opt-in)"
            .to_owned();
    }
    if lower.contains("bounce") {
        return "the address bounces in KlickTipp; ask the contact for a working address".to_owned();
    }
    if let Some(field) = &rejection.field {
        return field_fix(field, &rejection.reason);
    }
    match rejection.error_number {
        Some(7) => "KlickTipp does not know the contact or the tag; run `webinar-bridge resync <email>`".to_owned(),
        Some(9) => {
            "the contact has not confirmed the opt-in yet; it is applied once they do (`webinar-bridge resync <email>`)"
                .to_owned()
        }
        Some(31) => "a smart tag cannot be removed through the API; use a manual tag in the tag template".to_owned(),
        _ => {
            "check the KlickTipp account (list, tags, fields) against the reason, then `webinar-bridge resync <email>`"
                .to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EventId;

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_770_000_000 + second, 0).expect("valid time")
    }

    fn received(id: &str, second: i64) -> HistoryEntry {
        HistoryEntry {
            contact: "c".into(),
            event_id: EventId::from_sender(id).expect("id"),
            at: at(second),
            step: HistoryStep::Received(ReceivedEvent {
                source: "zoom".into(),
                kind: "registered".into(),
                webinar_id: "w1".into(),
                webinar_name: Some("Demo".into()),
                session_id: None,
                occurred_at: at(second - 1),
                received_at: at(second),
            }),
        }
    }

    fn outcome(id: &str, second: i64, outcome: HistoryOutcome) -> HistoryEntry {
        HistoryEntry {
            contact: "c".into(),
            event_id: EventId::from_sender(id).expect("id"),
            at: at(second),
            step: HistoryStep::Outcome(outcome),
        }
    }

    #[test]
    fn timeline_groups_steps_by_event_in_arrival_order() {
        let rejection = RejectionReason {
            operation: "subscriber.signin".into(),
            status: Some(406),
            error_number: Some(8),
            field: Some("fieldWebinar".into()),
            reason: "must be a numeric value".into(),
        };
        let entries = vec![
            received("e1", 1),
            received("e2", 2),
            outcome("e1", 3, HistoryOutcome::Applied),
            outcome("e2", 4, HistoryOutcome::Rejected(rejection.clone())),
            outcome("e1", 5, HistoryOutcome::Duplicate),
            received("e3", 6),
        ];
        let items = timeline(&entries);
        assert_eq!(items.iter().map(|item| item.event_id.as_str()).collect::<Vec<_>>(), ["e1", "e2", "e3"]);
        assert_eq!(items[0].outcomes.len(), 2);
        assert_eq!(items[0].status(), "duplicate");
        assert_eq!(items[1].status(), "rejected");
        assert_eq!(items[2].status(), "pending");
        let problem = Problem::from_history(&entries[3]).expect("a problem");
        assert_eq!(problem.kind, ProblemKind::Rejected);
        assert_eq!(problem.field.as_deref(), Some("fieldWebinar"));
        assert!(problem.fix.contains("map `fieldWebinar` to a text field"), "{}", problem.fix);
        assert!(Problem::from_history(&entries[2]).is_none());
    }

    #[test]
    fn differences_mark_missing_and_extra_managed_tags_and_fields() {
        let implied: BTreeSet<String> = ["A".to_owned(), "B".to_owned()].into();
        let managed: BTreeSet<String> = ["A".to_owned(), "Old".to_owned()].into();
        let fields: BTreeMap<String, String> = [("fieldCity".to_owned(), "Berlin".to_owned())].into();
        let now = KlickTippNow {
            id: "1".into(),
            status: Some("Subscribed".into()),
            tags: ["A".to_owned(), "Old".to_owned(), "Foreign".to_owned()].into(),
            fields: [("fieldCity".to_owned(), "Bonn".to_owned())].into(),
        };
        let found = differences(&implied, &fields, &managed, Some(&now));
        assert_eq!(
            found,
            vec![
                Difference::TagMissing { tag: "B".into() },
                Difference::TagExtra { tag: "Old".into() },
                Difference::FieldDiffers {
                    field: "fieldCity".into(),
                    expected: "Berlin".into(),
                    actual: Some("Bonn".into())
                },
            ]
        );
        assert_eq!(differences(&implied, &fields, &managed, None), vec![Difference::ContactMissing]);
        assert!(differences(&BTreeSet::new(), &BTreeMap::new(), &managed, None).is_empty());
    }

    #[test]
    fn unsubscribed_rejection_says_so() {
        let rejection = RejectionReason {
            operation: "subscriber.tag".into(),
            status: Some(406),
            error_number: None,
            field: None,
            reason: "The contact is unsubscribed".into(),
        };
        assert!(rejection_fix(&rejection).contains("unsubscribed in KlickTipp"));
    }
}
