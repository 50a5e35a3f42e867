//! The oracle against hand-written cases: the DESIGN 4 table row by row, its named rules
//! (last writer wins by (occurred_at, event_id), attendance only goes up, rejoins count once,
//! participation beats a cancellation, an empty value never erases one) and set semantics.

use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, BTreeSet};
use webinar_bridge::domain::{
    ContactInfo, Email, EventId, EventKind, Facts, Interval, Source, WebinarEvent, WebinarInfo,
};
use webinar_bridge_tests::oracle::{ExpectedContact, expected_contacts, expected_contacts_with, tag_name};

const EMAIL: &str = "erika@example.com";

fn at(minute: i64) -> DateTime<Utc> {
    "2026-03-01T17:00:00Z".parse::<DateTime<Utc>>().expect("a valid instant") + Duration::minutes(minute)
}

/// A Zoom event for webinar `w1` ("Demo Webinar", 60 minutes) at `minute`.
fn event(id: &str, kind: EventKind, minute: i64) -> WebinarEvent {
    let mut webinar = WebinarInfo::new("w1");
    webinar.name = Some("Demo Webinar".into());
    webinar.duration_minutes = Some(60);
    WebinarEvent {
        schema: 1,
        event_id: EventId::from_sender(id).expect("a valid id"),
        source: Source::Zoom,
        kind,
        occurred_at: at(minute),
        received_at: at(minute),
        contact: ContactInfo::new(Email::parse(EMAIL).expect("a valid email")),
        webinar,
        facts: Facts::default(),
    }
}

fn with_interval(mut event: WebinarEvent, from: i64, to: Option<i64>) -> WebinarEvent {
    event.facts.intervals.push(Interval { start: at(from), end: to.map(at) });
    event
}

fn tags(states: &[&str]) -> BTreeSet<String> {
    states.iter().map(|state| tag_name("Zoom", "Demo Webinar", state)).collect()
}

/// The tags the oracle expects for the one contact in `events`.
fn tags_of(events: &[WebinarEvent]) -> BTreeSet<String> {
    expected_contacts(events).remove(EMAIL).unwrap_or_default().tags
}

#[test]
fn tag_names_follow_the_default_template() {
    assert_eq!(tag_name("Zoom", "Demo Webinar", "Attended"), "[Zoom] [Demo Webinar] Attended");
    assert_eq!(tag_name(" Zoom ", "Demo   Webinar\n", "Buyer"), "[Zoom] [Demo Webinar] Buyer");
}

#[test]
fn each_row_of_the_design_table() {
    use EventKind::*;
    assert_eq!(tags_of(&[event("r", Registered, 0)]), tags(&["Registered"]));
    assert_eq!(tags_of(&[event("r", Registered, 0), event("c", Cancelled, 1)]), tags(&["Cancelled"]));
    assert_eq!(tags_of(&[event("r", Registered, 0), event("n", NoShow, 90)]), tags(&["Registered", "Did Not Attend"]));
    assert_eq!(tags_of(&[event("r", Registered, 0), event("a", Attended, 60)]), tags(&["Registered", "Attended"]));
    assert_eq!(tags_of(&[event("l", LeftEarly, 30)]), tags(&["Registered", "Attended"]));
    assert_eq!(tags_of(&[event("f", FullyAttended, 60)]), tags(&["Registered", "Attended", "Fully Attended"]));
    assert_eq!(tags_of(&[event("p", ReplayWatched, 200)]), tags(&["Registered", "Replay Watched"]));
    assert_eq!(tags_of(&[event("b", Purchased, 70)]), tags(&["Registered", "Buyer"]));
}

#[test]
fn registration_is_the_last_writer_by_time_then_event_id() {
    use EventKind::*;
    // Delivered late, but it happened first: the cancellation stands.
    assert_eq!(tags_of(&[event("c", Cancelled, 5), event("r", Registered, 1)]), tags(&["Cancelled"]));
    assert_eq!(tags_of(&[event("r", Registered, 5), event("c", Cancelled, 1)]), tags(&["Registered"]));
    // Same instant: the greater event id wins.
    assert_eq!(tags_of(&[event("a-reg", Registered, 3), event("b-cancel", Cancelled, 3)]), tags(&["Cancelled"]));
    assert_eq!(tags_of(&[event("b-reg", Registered, 3), event("a-cancel", Cancelled, 3)]), tags(&["Registered"]));
}

#[test]
fn participation_overrides_a_cancellation() {
    use EventKind::*;
    let attended = [event("r", Registered, 0), event("c", Cancelled, 10), event("a", Attended, 60)];
    assert_eq!(tags_of(&attended), tags(&["Registered", "Attended"]));
    let replay = [event("c", Cancelled, 10), event("p", ReplayWatched, 200)];
    assert_eq!(tags_of(&replay), tags(&["Registered", "Replay Watched"]));
    let bought = [event("c", Cancelled, 10), event("b", Purchased, 200)];
    assert_eq!(tags_of(&bought), tags(&["Registered", "Buyer"]));
    // A no-show is not participation: the cancellation stands and hides "Did Not Attend".
    assert_eq!(tags_of(&[event("c", Cancelled, 10), event("n", NoShow, 90)]), tags(&["Cancelled"]));
}

#[test]
fn attendance_only_goes_up() {
    use EventKind::*;
    // A late no-show never undoes an attendance, in either order.
    let expected = tags(&["Registered", "Attended"]);
    assert_eq!(tags_of(&[event("a", Attended, 60), event("n", NoShow, 90)]), expected);
    assert_eq!(tags_of(&[event("n", NoShow, 90), event("a", Attended, 60)]), expected);
    let full = tags(&["Registered", "Attended", "Fully Attended"]);
    assert_eq!(tags_of(&[event("f", FullyAttended, 60), event("l", LeftEarly, 61)]), full);
}

#[test]
fn full_attendance_from_the_union_of_intervals() {
    use EventKind::*;
    let full = tags(&["Registered", "Attended", "Fully Attended"]);
    let partial = tags(&["Registered", "Attended"]);
    // A rejoin: 0-30 and 20-50 cover 50 minutes of 60, over 80 %.
    let rejoin =
        [with_interval(event("j1", Attended, 0), 0, Some(30)), with_interval(event("j2", Attended, 20), 20, Some(50))];
    assert_eq!(tags_of(&rejoin), full);
    // The same 30 minutes twice count once.
    let twice =
        [with_interval(event("j1", Attended, 0), 0, Some(30)), with_interval(event("j2", Attended, 1), 0, Some(30))];
    assert_eq!(tags_of(&twice), partial);
    // Exactly 48 of 60 minutes is 80 %; 47 is not.
    assert_eq!(tags_of(&[with_interval(event("j", Attended, 0), 0, Some(48))]), full);
    assert_eq!(tags_of(&[with_interval(event("j", Attended, 0), 0, Some(47))]), partial);
    // An interval still open has no length yet.
    assert_eq!(tags_of(&[with_interval(event("j", Attended, 0), 0, None)]), partial);
    // Disjoint stretches add up: 0-25 and 30-55.
    let stretches =
        [with_interval(event("j1", Attended, 0), 0, Some(25)), with_interval(event("j2", Attended, 30), 30, Some(55))];
    assert_eq!(tags_of(&stretches), full);
}

#[test]
fn full_attendance_from_reported_minutes_and_the_threshold() {
    use EventKind::*;
    let mut reported = event("m", Attended, 60);
    reported.facts.minutes_attended = Some(48);
    assert_eq!(tags_of(std::slice::from_ref(&reported)), tags(&["Registered", "Attended", "Fully Attended"]));
    let strict = expected_contacts_with(std::slice::from_ref(&reported), 90).remove(EMAIL).unwrap_or_default();
    assert_eq!(strict.tags, tags(&["Registered", "Attended"]));
    // Without a known duration there is no threshold to reach.
    reported.webinar.duration_minutes = None;
    assert_eq!(tags_of(&[reported]), tags(&["Registered", "Attended"]));
}

#[test]
fn fields_are_last_writer_wins_and_blank_never_erases() {
    use EventKind::*;
    let mut first = event("r", Registered, 0);
    first.contact.first_name = Some("Erika".into());
    first.contact.last_name = Some("Muster".into());
    let mut renamed = event("a", Attended, 60);
    renamed.contact.first_name = Some("  Erika Maria ".into());
    renamed.contact.last_name = Some("   ".into());
    let mut older = event("c", Cancelled, 30);
    older.contact.first_name = Some("Old".into());
    let contact = expected_contacts(&[renamed, older, first]).remove(EMAIL).expect("a contact");
    let fields = BTreeMap::from([
        ("fieldFirstName".to_owned(), "Erika Maria".to_owned()),
        ("fieldLastName".to_owned(), "Muster".to_owned()),
    ]);
    assert_eq!(contact.fields, fields);
}

#[test]
fn each_webinar_contributes_its_own_tags_and_names_come_from_the_latest_event() {
    use EventKind::*;
    let mut other = event("o", Registered, 5);
    other.source = Source::Generic { tool: "Livestorm".into() };
    other.webinar = WebinarInfo::new("w2");
    other.contact.first_name = Some("Later".into());
    let mut renamed = event("r2", Registered, 2);
    renamed.webinar.name = Some("Demo Webinar (Spring)".into());
    let mut first = event("r1", Registered, 1);
    first.contact.first_name = Some("Earlier".into());
    let contact = expected_contacts(&[first, other, renamed]).remove(EMAIL).expect("a contact");
    let expected_tags = BTreeSet::from([
        "[Zoom] [Demo Webinar (Spring)] Registered".to_owned(),
        // No name known: the webinar id stands in.
        "[Livestorm] [w2] Registered".to_owned(),
    ]);
    assert_eq!(contact.tags, expected_tags);
    assert_eq!(contact.fields.get("fieldFirstName").map(String::as_str), Some("Later"));
}

#[test]
fn the_same_webinar_id_on_two_sources_is_two_webinars() {
    use EventKind::*;
    let mut jam = event("j", Cancelled, 9);
    jam.source = Source::Webinarjam;
    let contact = expected_contacts(&[event("z", Registered, 1), jam]).remove(EMAIL).expect("a contact");
    let expected = BTreeSet::from([
        "[Zoom] [Demo Webinar] Registered".to_owned(),
        "[WebinarJam] [Demo Webinar] Cancelled".to_owned(),
    ]);
    assert_eq!(contact.tags, expected);
}

#[test]
fn a_set_of_events_gives_one_answer_whatever_the_order_or_duplication() {
    use EventKind::*;
    let events = vec![
        event("r", Registered, 0),
        event("c", Cancelled, 10),
        with_interval(event("j1", Attended, 0), 0, Some(30)),
        with_interval(event("j2", Attended, 40), 25, Some(55)),
        event("n", NoShow, 90),
        event("b", Purchased, 100),
    ];
    let expected = expected_contacts(&events);
    let mut reversed = events.clone();
    reversed.reverse();
    assert_eq!(expected_contacts(&reversed), expected);
    let mut doubled = events.clone();
    doubled.extend(events.iter().rev().cloned());
    assert_eq!(expected_contacts(&doubled), expected);
    // Every rotation too.
    for shift in 0..events.len() {
        let mut rotated = events.clone();
        rotated.rotate_left(shift);
        assert_eq!(expected_contacts(&rotated), expected, "rotation {shift}");
    }
    assert_eq!(
        expected[EMAIL].tags,
        tags(&["Registered", "Attended", "Fully Attended", "Buyer"]),
        "participation beats the cancellation; 55 minutes of 60 is full attendance"
    );
}

#[test]
fn no_events_means_no_contacts() {
    assert_eq!(expected_contacts(&[]), BTreeMap::<String, ExpectedContact>::new());
}
