//! Builders shared by the domain test suites.
#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use webinar_bridge::domain::{
    ContactInfo, Email, EventId, EventKind, Facts, Interval, Source, WebinarEvent, WebinarInfo,
};

pub fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 17, 0, 0).single().expect("valid time") + Duration::minutes(minute)
}

/// An event of `kind` for erika@example.com in the Zoom "Demo Webinar", at minute `minute`.
pub fn event(kind: EventKind, minute: i64) -> WebinarEvent {
    event_for("erika@example.com", "w1", kind, minute)
}

pub fn event_for(email: &str, webinar_id: &str, kind: EventKind, minute: i64) -> WebinarEvent {
    let id = format!("{email}/{webinar_id}/{kind}/{minute}");
    let mut webinar = WebinarInfo::new(webinar_id);
    webinar.name = Some("Demo Webinar".into());
    webinar.duration_minutes = Some(60);
    let mut contact = ContactInfo::new(Email::parse(email).expect("valid email"));
    contact.first_name = Some("Erika".into());
    WebinarEvent {
        schema: 1,
        event_id: EventId::hashed(&Source::Zoom, &[id.as_bytes()]),
        source: Source::Zoom,
        kind,
        occurred_at: at(minute),
        received_at: at(minute),
        contact,
        webinar,
        facts: Facts::default(),
    }
}

pub fn with_interval(mut event: WebinarEvent, from: i64, to: Option<i64>) -> WebinarEvent {
    event.facts.intervals.push(Interval { start: at(from), end: to.map(at) });
    let id = format!("{}-{from}-{to:?}", event.event_id);
    event.event_id = EventId::hashed(&Source::Zoom, &[id.as_bytes()]);
    event
}
