//! The convergence oracle (DESIGN 10): what KlickTipp must show for each contact, computed
//! directly from a set of accepted events with the DESIGN 4 table.
//!
//! Written apart from `webinar_bridge::domain` on purpose: it never calls `ContactState`,
//! `merge` or `desired`, and it re-derives every rule from the design text in the plainest way
//! (look at all events at once, take maxima), so a bug in the engine's semilattice cannot hide
//! by being copied here. It only shares the event *type* with the engine.
//!
//! Scope: the default tag template (`[{tool}] [{webinar}] {state}`) and the default field map
//! (first and last name to `fieldFirstName` / `fieldLastName`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use webinar_bridge::domain::{EventKind, Source, WebinarEvent};

/// `BRIDGE_FULL_ATTENDANCE_PERCENT` when unset.
pub const DEFAULT_FULL_ATTENDANCE_PERCENT: u32 = 80;
pub const FIRST_NAME_FIELD: &str = "fieldFirstName";
pub const LAST_NAME_FIELD: &str = "fieldLastName";
/// KlickTipp shows tag names in lists; the bridge cuts longer names.
const MAX_TAG_NAME_CHARS: usize = 250;

/// What KlickTipp should hold for one e-mail: manual tag names and non-empty field values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExpectedContact {
    pub tags: BTreeSet<String>,
    pub fields: BTreeMap<String, String>,
}

/// Expected contacts by e-mail, with the default full-attendance threshold.
pub fn expected_contacts(events: &[WebinarEvent]) -> BTreeMap<String, ExpectedContact> {
    expected_contacts_with(events, DEFAULT_FULL_ATTENDANCE_PERCENT)
}

/// Expected contacts by e-mail. `events` is a set: a repeated event id counts once.
pub fn expected_contacts_with(
    events: &[WebinarEvent],
    full_attendance_percent: u32,
) -> BTreeMap<String, ExpectedContact> {
    let mut seen = HashSet::new();
    let mut by_email: BTreeMap<String, Vec<&WebinarEvent>> = BTreeMap::new();
    for event in events {
        if seen.insert(event.event_id.clone()) {
            by_email.entry(event.contact.email.as_str().to_owned()).or_default().push(event);
        }
    }
    by_email.into_iter().map(|(email, events)| (email, expected_contact(&events, full_attendance_percent))).collect()
}

fn expected_contact(events: &[&WebinarEvent], full_attendance_percent: u32) -> ExpectedContact {
    let mut by_webinar: BTreeMap<(String, String), Vec<&WebinarEvent>> = BTreeMap::new();
    for event in events {
        by_webinar.entry((event.source.key(), event.webinar.id.clone())).or_default().push(event);
    }
    let mut expected = ExpectedContact::default();
    for webinar_events in by_webinar.values() {
        expected.tags.extend(webinar_tags(webinar_events, full_attendance_percent));
    }
    let fields = [
        (FIRST_NAME_FIELD, last_written(events, |event| event.contact.first_name.clone())),
        (LAST_NAME_FIELD, last_written(events, |event| event.contact.last_name.clone())),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            expected.fields.insert(key.to_owned(), value);
        }
    }
    expected
}

/// Attendance levels in their DESIGN 4 order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Attendance {
    None,
    NoShow,
    Attended,
    Fully,
}

/// The tag names one (source, webinar) key implies for one contact.
fn webinar_tags(events: &[&WebinarEvent], full_attendance_percent: u32) -> Vec<String> {
    // Registration: the registered/cancelled event with the greatest (occurred_at, event_id).
    let registration = events
        .iter()
        .filter(|event| matches!(event.kind, EventKind::Registered | EventKind::Cancelled))
        .max_by_key(|event| (event.occurred_at, event.event_id.clone()))
        .map(|event| event.kind);
    let replay_watched = events.iter().any(|event| event.kind == EventKind::ReplayWatched);
    let purchased = events.iter().any(|event| event.kind == EventKind::Purchased);
    let attendance = attendance(events, full_attendance_percent);

    let participated = attendance >= Attendance::Attended || replay_watched || purchased;
    let cancelled = registration == Some(EventKind::Cancelled) && !participated;
    let registered = !cancelled
        && (registration == Some(EventKind::Registered)
            || attendance != Attendance::None
            || replay_watched
            || purchased);
    let states = [
        (registered, "Registered"),
        (cancelled, "Cancelled"),
        (!cancelled && attendance == Attendance::NoShow, "Did Not Attend"),
        (attendance >= Attendance::Attended, "Attended"),
        (attendance == Attendance::Fully, "Fully Attended"),
        (replay_watched, "Replay Watched"),
        (purchased, "Buyer"),
    ];
    let first = events[0];
    let webinar = last_written(events, |event| event.webinar.name.clone()).unwrap_or_else(|| first.webinar.id.clone());
    let tool = tool_name(&first.source);
    states.iter().filter(|(present, _)| *present).map(|(_, state)| tag_name(tool, &webinar, state)).collect()
}

/// The highest level any event states, raised to full by attended minutes.
fn attendance(events: &[&WebinarEvent], full_attendance_percent: u32) -> Attendance {
    let stated = events
        .iter()
        .map(|event| match event.kind {
            EventKind::NoShow => Attendance::NoShow,
            EventKind::Attended | EventKind::LeftEarly => Attendance::Attended,
            EventKind::FullyAttended => Attendance::Fully,
            _ => Attendance::None,
        })
        .max()
        .unwrap_or(Attendance::None);
    let duration = last_written(events, |event| event.webinar.duration_minutes.map(|minutes| minutes.to_string()))
        .and_then(|minutes| minutes.parse::<u64>().ok())
        .unwrap_or(0);
    let minutes = attended_minutes(events);
    let full_by_minutes = duration > 0 && minutes * 100 >= duration * u64::from(full_attendance_percent);
    if full_by_minutes { Attendance::Fully } else { stated }
}

/// Whole minutes of the union of all live intervals, or the largest count a platform reported,
/// whichever is more. An interval without an end has no length yet.
fn attended_minutes(events: &[&WebinarEvent]) -> u64 {
    let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = events
        .iter()
        .flat_map(|event| &event.facts.intervals)
        .filter_map(|interval| interval.end.filter(|end| *end > interval.start).map(|end| (interval.start, end)))
        .collect();
    spans.sort();
    let mut covered_seconds = 0i64;
    let mut open: Option<(DateTime<Utc>, DateTime<Utc>)> = None;
    for (start, end) in spans {
        open = match open {
            Some((open_start, open_end)) if start <= open_end => Some((open_start, open_end.max(end))),
            Some((open_start, open_end)) => {
                covered_seconds += (open_end - open_start).num_seconds();
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    if let Some((start, end)) = open {
        covered_seconds += (end - start).num_seconds();
    }
    let from_intervals = u64::try_from(covered_seconds / 60).unwrap_or(0);
    let reported = events.iter().filter_map(|event| event.facts.minutes_attended).map(u64::from).max().unwrap_or(0);
    from_intervals.max(reported)
}

/// The value of the latest event (by `(occurred_at, event_id)`) that has a non-blank one.
fn last_written(events: &[&WebinarEvent], value: impl Fn(&WebinarEvent) -> Option<String>) -> Option<String> {
    events
        .iter()
        .filter_map(|event| {
            let text = value(event)?.trim().to_owned();
            (!text.is_empty()).then(|| ((event.occurred_at, event.event_id.clone()), text))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, text)| text)
}

fn tool_name(source: &Source) -> &str {
    match source {
        Source::Webinarjam => "WebinarJam",
        Source::Everwebinar => "EverWebinar",
        Source::Zoom => "Zoom",
        Source::Generic { tool } => tool,
    }
}

/// `[{tool}] [{webinar}] {state}` with both names trimmed, whitespace runs collapsed, cut at
/// KlickTipp's display length.
pub fn tag_name(tool: &str, webinar: &str, state: &str) -> String {
    let raw = format!("[{}] [{}] {state}", tool.trim(), webinar.trim());
    raw.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(MAX_TAG_NAME_CHARS).collect()
}
