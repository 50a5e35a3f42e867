//! Table tests for DESIGN 4: every row of the desired-tags table and the named scenarios.

mod common;

use common::{event, event_for, with_interval};
use std::collections::BTreeSet;
use webinar_bridge::domain::{
    Attendance, ContactRecord, ContactState, Email, EventKind::*, FieldMap, Settings, StateLabel, StateLabel as L,
    WebinarEvent,
};

fn labels(events: &[WebinarEvent]) -> BTreeSet<StateLabel> {
    let mut state = ContactState::default();
    for event in events {
        state.apply(event);
    }
    state.desired_labels(80)
}

fn set(labels: &[StateLabel]) -> BTreeSet<StateLabel> {
    labels.iter().copied().collect()
}

#[test]
fn every_row_of_the_desired_tags_table() {
    let cases: Vec<(&str, Vec<WebinarEvent>, Vec<StateLabel>)> = vec![
        ("nothing yet", vec![], vec![]),
        ("registered", vec![event(Registered, 0)], vec![L::Registered]),
        ("cancelled", vec![event(Registered, 0), event(Cancelled, 5)], vec![L::Cancelled]),
        ("no show", vec![event(Registered, 0), event(NoShow, 90)], vec![L::Registered, L::DidNotAttend]),
        ("attended", vec![event(Registered, 0), event(Attended, 62)], vec![L::Registered, L::Attended]),
        (
            "left early counts as attended",
            vec![event(Registered, 0), event(LeftEarly, 62)],
            vec![L::Registered, L::Attended],
        ),
        (
            "fully attended",
            vec![event(Registered, 0), event(FullyAttended, 62)],
            vec![L::Registered, L::Attended, L::FullyAttended],
        ),
        (
            "replay watched",
            vec![event(Registered, 0), event(ReplayWatched, 200)],
            vec![L::Registered, L::ReplayWatched],
        ),
        ("buyer", vec![event(Registered, 0), event(Purchased, 70)], vec![L::Registered, L::Buyer]),
        (
            "cancelled but then watched the replay is a participant, not cancelled",
            vec![event(Registered, 0), event(Cancelled, 5), event(ReplayWatched, 200)],
            vec![L::Registered, L::ReplayWatched],
        ),
        (
            "cancelled then no-show stays cancelled (a no-show is not participation)",
            vec![event(Registered, 0), event(Cancelled, 5), event(NoShow, 90)],
            vec![L::Cancelled],
        ),
    ];
    for (name, events, expected) in cases {
        assert_eq!(labels(&events), set(&expected), "{name}");
    }
}

#[test]
fn a_late_no_show_after_attendance_leaves_attended() {
    let got = labels(&[event(Registered, 0), event(Attended, 62), event(NoShow, 120)]);
    assert_eq!(got, set(&[L::Registered, L::Attended]));
    assert!(!got.contains(&L::DidNotAttend));
}

#[test]
fn cancelled_then_a_later_registration_ends_registered() {
    assert_eq!(labels(&[event(Registered, 0), event(Cancelled, 5), event(Registered, 10)]), set(&[L::Registered]));
    // Arrival order does not matter: the later registration still wins.
    assert_eq!(labels(&[event(Registered, 10), event(Cancelled, 5)]), set(&[L::Registered]));
}

#[test]
fn attendance_before_registration_still_yields_registered() {
    assert_eq!(labels(&[event(Attended, 62)]), set(&[L::Registered, L::Attended]));
    assert_eq!(labels(&[event(Attended, 62), event(Registered, 0)]), set(&[L::Registered, L::Attended]));
}

#[test]
fn rejoin_intervals_count_once() {
    // 17:00-17:30 and a rejoin 17:20-17:50 overlap: 50 minutes, not 60.
    let first = with_interval(event(Attended, 30), 0, Some(30));
    let rejoin = with_interval(event(Attended, 50), 20, Some(50));
    let mut state = ContactState::default();
    for e in [&first, &rejoin, &first, &rejoin] {
        state.apply(e);
    }
    assert_eq!(state.minutes_attended(), Some(50));
    // 50 of 60 minutes is 83%: fully attended at the default 80%, not at 90%.
    assert_eq!(state.attendance_level(80), Attendance::FullyAttended);
    assert_eq!(state.attendance_level(90), Attendance::Attended);
}

#[test]
fn an_open_join_counts_as_attended_but_adds_no_minutes() {
    let joined = with_interval(event(Attended, 2), 2, None);
    let mut state = ContactState::default();
    state.apply(&joined);
    assert_eq!(state.minutes_attended(), None);
    assert_eq!(state.attendance_level(80), Attendance::Attended);
    let left = with_interval(event(Attended, 52), 2, Some(52));
    state.apply(&left);
    assert_eq!(state.minutes_attended(), Some(50));
}

#[test]
fn platform_minutes_reach_full_attendance() {
    let mut attended = event(Attended, 62);
    attended.facts.minutes_attended = Some(55);
    let mut state = ContactState::default();
    state.apply(&attended);
    assert_eq!(state.attendance_level(80), Attendance::FullyAttended);
}

#[test]
fn empty_values_never_erase_and_later_values_win() {
    let mut early = event(Registered, 0);
    early.contact.first_name = Some("Erika".into());
    let mut late_blank = event(Attended, 62);
    late_blank.contact.first_name = Some("   ".into());
    let mut later = event(Purchased, 70);
    later.contact.first_name = Some("Erika-Maria".into());
    let mut state = ContactState::default();
    state.apply(&early);
    state.apply(&late_blank);
    assert_eq!(state.field(webinar_bridge::domain::FieldSlot::FirstName), Some("Erika"));
    state.apply(&later);
    state.apply(&early);
    assert_eq!(state.field(webinar_bridge::domain::FieldSlot::FirstName), Some("Erika-Maria"));
}

#[test]
fn contact_record_names_tags_per_webinar_and_fields_from_the_latest_webinar() {
    let email = Email::parse("erika@example.com").unwrap();
    let mut record = ContactRecord::new(email);
    let mut a = event_for("erika@example.com", "w1", Registered, 0);
    a.webinar.join_url = Some("zoom.us/w/1".into());
    let mut b = event_for("erika@example.com", "w2", Registered, 10);
    b.webinar.name = Some("Masterclass".into());
    b.webinar.join_url = Some("https://zoom.us/w/2".into());
    record.apply(&a);
    record.apply(&b);
    let settings = Settings {
        field_map: FieldMap::parse_json(
            r#"{"first_name":"fieldFirstName","join_url":"field1","webinar_name":"field2","webinar_start":"field3"}"#,
        )
        .unwrap(),
        ..Settings::default()
    };
    let desired = record.desired(&settings);
    assert_eq!(
        desired.tags,
        ["[Zoom] [Demo Webinar] Registered", "[Zoom] [Masterclass] Registered"].iter().map(|s| s.to_string()).collect()
    );
    assert_eq!(desired.fields["field1"].to_string(), "https://zoom.us/w/2");
    assert_eq!(desired.fields["field2"].to_string(), "Masterclass");
    assert_eq!(desired.fields["fieldFirstName"].to_string(), "Erika");
    assert!(!desired.fields.contains_key("field3"), "no start time known, nothing written");
}

#[test]
fn a_webinar_without_a_name_is_tagged_by_its_id() {
    let mut unnamed = event(Registered, 0);
    unnamed.webinar.name = None;
    let mut record = ContactRecord::new(unnamed.contact.email.clone());
    record.apply(&unnamed);
    assert_eq!(
        record.desired(&Settings::default()).tags.into_iter().collect::<Vec<_>>(),
        vec!["[Zoom] [w1] Registered"]
    );
}

#[test]
fn contact_records_round_trip_through_json() {
    let mut record = ContactRecord::new(Email::parse("erika@example.com").unwrap());
    record.apply(&with_interval(event(Attended, 30), 0, Some(30)));
    record.apply(&event_for("erika@example.com", "w2", Purchased, 70));
    let json = serde_json::to_string(&record).unwrap();
    assert_eq!(serde_json::from_str::<ContactRecord>(&json).unwrap(), record);
}

#[test]
fn only_a_purchase_sets_the_purchase_amount() {
    use webinar_bridge::domain::Cents;
    let mut purchase = event(Purchased, 70);
    purchase.facts.purchase_amount = Some(Cents(4999));
    let mut later_attended = event(Attended, 80);
    later_attended.facts.purchase_amount = Some(Cents(0));
    let mut state = ContactState::default();
    state.apply(&purchase);
    state.apply(&later_attended);
    assert_eq!(state.purchase_amount.map(|stamped| stamped.value), Some(Cents(4999)));
}
