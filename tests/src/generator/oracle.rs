//! The expected KlickTipp tags of a contact: DESIGN 4 applied to the ground truth, written
//! without the engine's state code so it can judge it.

use super::{Contact, Span, Webinar};
use std::collections::BTreeSet;
use webinar_bridge::domain::EventKind;

/// `BRIDGE_FULL_ATTENDANCE_PERCENT`'s default.
pub const FULL_ATTENDANCE_PERCENT: u32 = 80;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Attendance {
    None,
    NoShow,
    Attended,
    FullyAttended,
}

pub(super) fn expected_tags(contact: &Contact, webinar: &Webinar) -> BTreeSet<String> {
    let events = &contact.events;
    let has = |kind: EventKind| events.iter().any(|event| event.kind == kind);
    // Registration is last-writer-wins by time; the generator never cancels, but a log edited
    // by hand may.
    let registration = events
        .iter()
        .filter(|event| matches!(event.kind, EventKind::Registered | EventKind::Cancelled))
        .max_by_key(|event| event.occurred_at)
        .map(|event| event.kind);
    let mut attendance = events
        .iter()
        .map(|event| match event.kind {
            EventKind::NoShow => Attendance::NoShow,
            EventKind::Attended | EventKind::LeftEarly => Attendance::Attended,
            EventKind::FullyAttended => Attendance::FullyAttended,
            _ => Attendance::None,
        })
        .max()
        .unwrap_or(Attendance::None);
    let spans: Vec<Span> = events.iter().filter_map(|event| event.interval).collect();
    let minutes =
        (union_seconds(&spans) / 60).max(events.iter().filter_map(|event| event.minutes).max().unwrap_or(0).into());
    if let Some(duration) = webinar.duration_minutes
        && duration > 0
        && minutes * 100 >= i64::from(duration) * i64::from(FULL_ATTENDANCE_PERCENT)
    {
        attendance = Attendance::FullyAttended;
    }
    let replay = has(EventKind::ReplayWatched);
    let purchased = has(EventKind::Purchased);
    let participated = attendance >= Attendance::Attended || replay || purchased;
    let cancelled = registration == Some(EventKind::Cancelled) && !participated;

    let labels = [
        (
            !cancelled
                && (registration == Some(EventKind::Registered)
                    || attendance != Attendance::None
                    || replay
                    || purchased),
            "Registered",
        ),
        (cancelled, "Cancelled"),
        (!cancelled && attendance == Attendance::NoShow, "Did Not Attend"),
        (attendance >= Attendance::Attended, "Attended"),
        (attendance == Attendance::FullyAttended, "Fully Attended"),
        (replay, "Replay Watched"),
        (purchased, "Buyer"),
    ];
    labels
        .into_iter()
        .filter(|(present, _)| *present)
        .map(|(_, label)| format!("[{}] [{}] {label}", contact.tool.tag_name(), webinar.name))
        .collect()
}

/// Seconds covered by the closed spans; an open one (a join without its leave) adds nothing.
fn union_seconds(spans: &[Span]) -> i64 {
    let mut closed: Vec<(i64, i64)> = spans
        .iter()
        .filter_map(|span| span.end.map(|end| (span.start.timestamp(), end.timestamp().max(span.start.timestamp()))))
        .collect();
    closed.sort();
    let mut total = 0;
    let mut current: Option<(i64, i64)> = None;
    for (start, end) in closed {
        current = match current {
            Some((open, until)) if start <= until => Some((open, until.max(end))),
            Some((open, until)) => {
                total += until - open;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    total + current.map_or(0, |(open, until)| until - open)
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Log, Tool};
    use super::*;

    #[test]
    fn overlapping_and_repeated_spans_count_once() {
        let at = |minute: i64| chrono::DateTime::from_timestamp(minute * 60, 0).expect("valid time");
        let spans = [
            Span { start: at(0), end: Some(at(30)) },
            Span { start: at(0), end: Some(at(30)) },
            Span { start: at(20), end: Some(at(40)) },
            Span { start: at(50), end: None },
            Span { start: at(50), end: Some(at(55)) },
        ];
        assert_eq!(union_seconds(&spans), 45 * 60);
    }

    #[test]
    fn every_contact_is_registered_and_tags_follow_the_tool() {
        let log = Log::generate(&Config { registrants: 200, ..Config::default() });
        let expected = log.expected_tags();
        assert_eq!(expected.len(), log.contacts.len(), "one entry per contact");
        for contact in &log.contacts {
            let tags = &expected[&contact.email];
            let prefix = format!("[{}] ", contact.tool.tag_name());
            assert!(tags.iter().all(|tag| tag.starts_with(&prefix)), "{tags:?}");
            assert!(tags.iter().any(|tag| tag.ends_with("] Registered")), "{tags:?}");
            if contact.tool == Tool::Zoom {
                assert!(!tags.iter().any(|tag| tag.ends_with("Did Not Attend")), "Zoom sends no no-show");
            }
        }
    }
}
