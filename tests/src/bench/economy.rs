//! Call economy (DESIGN 10): the bridge's KlickTipp calls against a naive per-event replay and
//! against the least any correct bridge could make.

use crate::stats::round3;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use webinar_bridge::domain::EventKind;
use webinar_bridge_tests::generator::Log;

/// Calls every run makes once: the login and `GET /tag`.
pub const FIXED_CALLS: u64 = 2;

#[derive(Debug, Clone, Serialize)]
pub struct Economy {
    /// Distinct events (what the consumer has to apply).
    pub events: usize,
    /// Requests, redeliveries included.
    pub deliveries: usize,
    pub contacts: usize,
    pub calls: u64,
    pub calls_per_event: f64,
    pub naive_calls: u64,
    pub ratio_to_naive: f64,
    pub lower_bound_calls: u64,
    pub ratio_to_lower_bound: f64,
    pub distinct_tags: usize,
    pub calls_by_endpoint: BTreeMap<String, u64>,
}

pub fn economy(log: &Log, calls_by_endpoint: BTreeMap<String, u64>) -> Economy {
    let calls: u64 = calls_by_endpoint.values().sum();
    let naive = naive_calls(log);
    let (lower_bound, distinct_tags) = lower_bound_calls(&log.expected_tags());
    let events = log.event_count();
    Economy {
        events,
        deliveries: log.requests.len(),
        contacts: log.contacts.len(),
        calls,
        calls_per_event: round3(calls as f64 / events.max(1) as f64),
        naive_calls: naive,
        ratio_to_naive: round3(calls as f64 / naive.max(1) as f64),
        lower_bound_calls: lower_bound,
        ratio_to_lower_bound: round3(calls as f64 / lower_bound.max(1) as f64),
        distinct_tags,
        calls_by_endpoint,
    }
}

/// The state tags a naive integration treats as one slot each: a new one replaces the old.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Registration,
    Attendance,
}

/// The tag a naive integration sets for an event, and the slot it occupies (if any).
fn naive_tag(kind: EventKind) -> (&'static str, Option<Family>) {
    match kind {
        EventKind::Registered => ("Registered", Some(Family::Registration)),
        EventKind::Cancelled => ("Cancelled", Some(Family::Registration)),
        EventKind::NoShow => ("Did Not Attend", Some(Family::Attendance)),
        EventKind::Attended | EventKind::LeftEarly => ("Attended", Some(Family::Attendance)),
        EventKind::FullyAttended => ("Fully Attended", Some(Family::Attendance)),
        EventKind::ReplayWatched => ("Replay Watched", None),
        EventKind::Purchased => ("Buyer", None),
        // The generator sends no engagements; a naive integration would tag each label once.
        EventKind::Engaged => ("Engaged", None),
    }
}

/// A per-event replay in delivery order (redeliveries skipped, as if it deduplicated): one upsert
/// and one tag call per event, plus an untag when the event's state tag replaces another of its
/// slot (e.g. a late no-show's "Did Not Attend" replacing "Attended").
pub fn naive_calls(log: &Log) -> u64 {
    let mut slots: BTreeMap<(usize, u8), &'static str> = BTreeMap::new();
    let mut calls = 0;
    for request in log.requests.iter().filter(|request| !request.redelivery) {
        calls += 2;
        let (tag, family) = naive_tag(log.contacts[request.contact].events[request.event].kind);
        if let Some(family) = family {
            let previous = slots.insert((request.contact, family as u8), tag);
            if previous.is_some_and(|previous| previous != tag) {
                calls += 1;
            }
        }
    }
    calls
}

/// Per contact one upsert carrying one tag, plus one tag call when more tags remain; one
/// creation per distinct tag; and the fixed calls. Returns (calls, distinct tags).
pub fn lower_bound_calls(expected: &BTreeMap<String, BTreeSet<String>>) -> (u64, usize) {
    let per_contact: u64 = expected.values().map(|tags| 1 + u64::from(tags.len() > 1)).sum();
    let distinct: BTreeSet<&String> = expected.values().flatten().collect();
    (per_contact + distinct.len() as u64 + FIXED_CALLS, distinct.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lower_bound_counts_contacts_extra_tag_calls_and_creations() {
        let tags = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect::<BTreeSet<_>>();
        let expected = BTreeMap::from([
            ("a@example.com".to_owned(), tags(&["R"])),
            ("b@example.com".to_owned(), tags(&["R", "A", "F"])),
        ]);
        // a: 1, b: 2, creations: R, A, F, fixed: 2.
        assert_eq!(lower_bound_calls(&expected), (1 + 2 + 3 + FIXED_CALLS, 3));
    }

    #[test]
    fn the_naive_replay_pays_two_calls_per_event_and_one_per_replaced_state_tag() {
        use webinar_bridge_tests::generator::Config;
        let log = Log::generate(&Config { registrants: 50, ..Config::default() });
        let events = log.event_count() as u64;
        let naive = naive_calls(&log);
        assert!(naive >= 2 * events);
        assert!(naive <= 3 * events);
    }
}
