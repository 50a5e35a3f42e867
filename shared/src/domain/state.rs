//! Per-(source, webinar, email) contact state: a join-semilattice (DESIGN 4).
//!
//! Every component merges by max, union, boolean or, or last-writer-wins on a total order, so
//! `merge` is commutative, associative and idempotent: any order and any duplication of the
//! same events converge to the same state. Anything derived (attendance level, minutes, tags)
//! is computed from the state on read and never stored.

use super::event::{Cents, EventId, EventKind, Interval, WebinarEvent};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Total order for last-writer-wins: when it happened, then the event id to break ties.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    pub at: DateTime<Utc>,
    pub event_id: EventId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped<T> {
    pub stamp: Stamp,
    pub value: T,
}

/// Keeps whichever side has the later stamp.
fn last_writer_wins<T: Clone>(mine: &mut Option<Stamped<T>>, theirs: &Option<Stamped<T>>) {
    if let Some(theirs) = theirs
        && mine.as_ref().is_none_or(|mine| theirs.stamp > mine.stamp)
    {
        *mine = Some(theirs.clone());
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Registration {
    Registered,
    Cancelled,
}

/// Attendance only ever goes up: a late no-show can never undo an attendance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attendance {
    #[default]
    None,
    NoShow,
    Attended,
    FullyAttended,
}

/// Values that are last-writer-wins per slot; an empty value never erases one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldSlot {
    FirstName,
    LastName,
    Phone,
    WebinarName,
    SessionId,
    /// RFC 3339 UTC.
    WebinarStart,
    Timezone,
    JoinUrl,
    ReplayUrl,
    DurationMinutes,
}

/// The merged knowledge about one registrant of one webinar.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration: Option<Stamped<Registration>>,
    /// Highest attendance an event stated explicitly; minutes may raise it further on read.
    #[serde(default)]
    pub attendance: Attendance,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub intervals: BTreeSet<Interval>,
    /// Highest minute count a platform reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_minutes: Option<u32>,
    #[serde(default)]
    pub replay_watched: bool,
    #[serde(default)]
    pub purchased: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_amount: Option<Stamped<Cents>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<FieldSlot, Stamped<String>>,
    /// Engagement labels (`Clicked Offer`): a grow-only set, each a sticky tag.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub engagements: BTreeSet<String>,
    /// Further mappable values by logical name (`Facts::fields`), last writer wins.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_fields: BTreeMap<String, Stamped<String>>,
    /// The newest event folded in; decides which webinar's fields a contact shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event: Option<Stamp>,
}

impl ContactState {
    /// The state that one event alone implies.
    pub fn from_event(event: &WebinarEvent) -> Self {
        let stamp = Stamp { at: event.occurred_at, event_id: event.event_id.clone() };
        let mut state = ContactState { last_event: Some(stamp.clone()), ..Default::default() };
        match event.kind {
            EventKind::Registered => {
                state.registration = Some(Stamped { stamp: stamp.clone(), value: Registration::Registered })
            }
            EventKind::Cancelled => {
                state.registration = Some(Stamped { stamp: stamp.clone(), value: Registration::Cancelled })
            }
            EventKind::Attended | EventKind::LeftEarly => state.attendance = Attendance::Attended,
            EventKind::FullyAttended => state.attendance = Attendance::FullyAttended,
            EventKind::NoShow => state.attendance = Attendance::NoShow,
            EventKind::ReplayWatched => state.replay_watched = true,
            EventKind::Purchased => state.purchased = true,
            EventKind::Engaged => state.engagements.extend(event.facts.engagement.clone()),
        }
        state.intervals = event.facts.intervals.iter().copied().collect();
        state.platform_minutes = event.facts.minutes_attended;
        // Only a purchase says what was paid; other kinds may echo a stale `revenue` of 0.
        if event.kind == EventKind::Purchased {
            state.purchase_amount = event.facts.purchase_amount.map(|value| Stamped { stamp: stamp.clone(), value });
        }

        let contact = &event.contact;
        let webinar = &event.webinar;
        let candidates = [
            (FieldSlot::FirstName, contact.first_name.clone()),
            (FieldSlot::LastName, contact.last_name.clone()),
            (FieldSlot::Phone, contact.phone.clone()),
            (FieldSlot::WebinarName, webinar.name.clone()),
            (FieldSlot::SessionId, webinar.session_id.clone()),
            (FieldSlot::WebinarStart, webinar.starts_at.map(|at| at.to_rfc3339())),
            (FieldSlot::Timezone, webinar.timezone.clone()),
            (FieldSlot::JoinUrl, webinar.join_url.clone()),
            (FieldSlot::ReplayUrl, webinar.replay_url.clone()),
            (FieldSlot::DurationMinutes, webinar.duration_minutes.map(|minutes| minutes.to_string())),
        ];
        for (slot, value) in candidates {
            if let Some(value) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
                state.fields.insert(slot, Stamped { stamp: stamp.clone(), value });
            }
        }
        for (name, value) in &event.facts.fields {
            let value = value.trim();
            if !value.is_empty() {
                state.extra_fields.insert(name.clone(), Stamped { stamp: stamp.clone(), value: value.to_owned() });
            }
        }
        state
    }

    /// Folds one event in.
    pub fn apply(&mut self, event: &WebinarEvent) {
        self.merge(&ContactState::from_event(event));
    }

    /// The semilattice join.
    pub fn merge(&mut self, other: &ContactState) {
        last_writer_wins(&mut self.registration, &other.registration);
        self.attendance = self.attendance.max(other.attendance);
        self.intervals.extend(other.intervals.iter().copied());
        self.platform_minutes = self.platform_minutes.max(other.platform_minutes);
        self.replay_watched |= other.replay_watched;
        self.purchased |= other.purchased;
        self.engagements.extend(other.engagements.iter().cloned());
        last_writer_wins(&mut self.purchase_amount, &other.purchase_amount);
        for (slot, theirs) in &other.fields {
            let mine = self.fields.entry(*slot).or_insert_with(|| theirs.clone());
            if theirs.stamp > mine.stamp {
                *mine = theirs.clone();
            }
        }
        for (name, theirs) in &other.extra_fields {
            let mine = self.extra_fields.entry(name.clone()).or_insert_with(|| theirs.clone());
            if theirs.stamp > mine.stamp {
                *mine = theirs.clone();
            }
        }
        self.last_event = self.last_event.clone().max(other.last_event.clone());
    }

    pub fn field(&self, slot: FieldSlot) -> Option<&str> {
        self.fields.get(&slot).map(|stamped| stamped.value.as_str())
    }

    pub fn duration_minutes(&self) -> Option<u32> {
        self.field(FieldSlot::DurationMinutes).and_then(|raw| raw.parse().ok())
    }

    /// Minutes attended: the union of live intervals (rejoins and duplicates count once), or
    /// what the platform reported, whichever is larger.
    pub fn minutes_attended(&self) -> Option<u32> {
        let from_intervals = union_seconds(&self.intervals) / 60;
        let from_intervals = u32::try_from(from_intervals).ok().filter(|minutes| *minutes > 0);
        match (from_intervals, self.platform_minutes) {
            (None, None) => None,
            (a, b) => a.max(b),
        }
    }

    /// Attendance including full attendance reached through minutes.
    pub fn attendance_level(&self, full_attendance_percent: u8) -> Attendance {
        let by_minutes = match (self.minutes_attended(), self.duration_minutes()) {
            (Some(minutes), Some(duration))
                if duration > 0
                    && u64::from(minutes) * 100 >= u64::from(duration) * u64::from(full_attendance_percent) =>
            {
                Attendance::FullyAttended
            }
            _ => Attendance::None,
        };
        self.attendance.max(by_minutes)
    }

    /// The state labels whose tags this contact should carry (DESIGN 4 table).
    pub fn desired_labels(&self, full_attendance_percent: u8) -> BTreeSet<StateLabel> {
        let attendance = self.attendance_level(full_attendance_percent);
        let registration = self.registration.as_ref().map(|stamped| stamped.value);
        let participated = attendance >= Attendance::Attended || self.replay_watched || self.purchased;
        let cancelled = registration == Some(Registration::Cancelled) && !participated;

        let mut labels = BTreeSet::new();
        let mut add = |present: bool, label| {
            if present {
                labels.insert(label);
            }
        };
        add(
            !cancelled
                && (registration == Some(Registration::Registered)
                    || attendance != Attendance::None
                    || self.replay_watched
                    || self.purchased),
            StateLabel::Registered,
        );
        add(cancelled, StateLabel::Cancelled);
        add(!cancelled && attendance == Attendance::NoShow, StateLabel::DidNotAttend);
        add(attendance >= Attendance::Attended, StateLabel::Attended);
        add(attendance == Attendance::FullyAttended, StateLabel::FullyAttended);
        add(self.replay_watched, StateLabel::ReplayWatched);
        add(self.purchased, StateLabel::Buyer);
        labels
    }
}

/// Length of the union of the intervals, in seconds. An interval whose end is not known yet
/// (the participant is still in the room) contributes nothing until its end arrives.
fn union_seconds(intervals: &BTreeSet<Interval>) -> i64 {
    let mut total = 0;
    let mut current: Option<(DateTime<Utc>, DateTime<Utc>)> = None;
    // BTreeSet iterates by start, so one sweep merges overlaps.
    for interval in intervals {
        let end = interval.end.unwrap_or(interval.start).max(interval.start);
        match current {
            Some((start, current_end)) if interval.start <= current_end => {
                current = Some((start, current_end.max(end)))
            }
            _ => {
                if let Some((start, current_end)) = current {
                    total += (current_end - start).num_seconds();
                }
                current = Some((interval.start, end));
            }
        }
    }
    if let Some((start, end)) = current {
        total += (end - start).num_seconds();
    }
    total
}

/// The `{state}` of a tag name (DESIGN 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum StateLabel {
    Registered,
    Cancelled,
    DidNotAttend,
    Attended,
    FullyAttended,
    ReplayWatched,
    Buyer,
}

impl StateLabel {
    pub const ALL: [StateLabel; 7] = [
        StateLabel::Registered,
        StateLabel::Cancelled,
        StateLabel::DidNotAttend,
        StateLabel::Attended,
        StateLabel::FullyAttended,
        StateLabel::ReplayWatched,
        StateLabel::Buyer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StateLabel::Registered => "Registered",
            StateLabel::Cancelled => "Cancelled",
            StateLabel::DidNotAttend => "Did Not Attend",
            StateLabel::Attended => "Attended",
            StateLabel::FullyAttended => "Fully Attended",
            StateLabel::ReplayWatched => "Replay Watched",
            StateLabel::Buyer => "Buyer",
        }
    }
}
