//! Pulled records -> normalized events (DESIGN 11). Pure: no I/O, no clock (the caller passes
//! the time of the pull), the same input always gives the same events with the same ids.
//!
//! Ids hash (source, webinar, session, e-mail, kind) and what the record says, under a `pull`
//! tag so they never collide with a webhook's id for the same fact (a webhook and a pull saying
//! the same thing are two events that merge into the same state and cost no KlickTipp call).
//! Pulling the same records again gives the same ids, so nothing new is enqueued.

use super::genesis::{Registrant, WebinarDetails};
use super::lenient;
use super::zoom::{ZoomParticipant, ZoomRegistrant};
use crate::domain::{
    Cents, ContactInfo, EVENT_SCHEMA_VERSION, Email, EventId, EventKind, Facts, Interval, Source, WebinarEvent,
    WebinarInfo,
};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};

/// What a mapping produced, and what it left out (records without a usable e-mail, hosts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapped {
    pub events: Vec<WebinarEvent>,
    /// Records skipped because no usable e-mail could be found for them.
    pub skipped_without_email: usize,
    /// Zoom participants who match no registration (hosts, panelists, guests).
    pub skipped_unregistered: usize,
}

/// A WebinarJam/EverWebinar webinar's registrants as events. `webinar.duration_minutes` stands
/// in for the webinar length the API does not return.
pub fn genesis_events(
    source: &Source,
    webinar: &WebinarDetails,
    registrants: &[Registrant],
    pulled_at: DateTime<Utc>,
) -> Mapped {
    let mut mapped = Mapped::default();
    let schedule_dates: HashMap<&str, &str> = webinar
        .schedules
        .iter()
        .filter_map(|schedule| schedule.date.as_deref().map(|date| (schedule.schedule.as_str(), date)))
        .collect();
    let timezone = webinar.timezone.as_deref();
    for record in registrants {
        let Some(email) = record.email.as_deref().and_then(|raw| Email::parse(raw).ok()) else {
            mapped.skipped_without_email += 1;
            continue;
        };
        let session_date = record
            .schedule
            .as_deref()
            .and_then(|schedule| schedule_dates.get(schedule).copied())
            .or(record.date.as_deref());
        let starts_at = session_date.and_then(|date| lenient::local_to_utc(date, timezone));
        let info = WebinarInfo {
            id: webinar.webinar_id.clone(),
            name: webinar.name.clone().or_else(|| webinar.title.clone()),
            session_id: record.schedule.clone(),
            starts_at,
            timezone: webinar.timezone.clone(),
            join_url: record.live_room.clone(),
            replay_url: record.replay_room.clone(),
            duration_minutes: webinar.duration_minutes.and_then(|minutes| u32::try_from(minutes).ok()),
        };
        let contact = ContactInfo {
            email,
            first_name: record.first_name.clone(),
            last_name: record.last_name.clone(),
            phone: phone(record),
        };
        let at = |raw: Option<&str>| raw.and_then(|raw| lenient::local_to_utc(raw, timezone));
        let session_start = starts_at.unwrap_or(DateTime::UNIX_EPOCH);
        let lead = Facts { registrant_id: record.lead_id.clone(), ..Facts::default() };
        let mut push = |kind: EventKind, variant: &str, occurred_at: DateTime<Utc>, facts: Facts| {
            mapped.events.push(event(source, kind, variant, occurred_at, pulled_at, &contact, &info, facts));
        };

        // Listed means registered, as of the signup (never later than what a cancellation says).
        push(EventKind::Registered, "", at(record.signup_date.as_deref()).unwrap_or(session_start), lead.clone());

        let live_at = at(record.date_live.as_deref()).unwrap_or(session_start);
        let minutes = record
            .time_live
            .as_deref()
            .and_then(lenient::duration_seconds)
            .and_then(|seconds| u32::try_from(seconds / 60).ok())
            .filter(|minutes| *minutes > 0);
        match record.attended_live {
            Some(1 | 4) => push(EventKind::Attended, "", live_at, Facts { minutes_attended: minutes, ..lead.clone() }),
            Some(3) => push(EventKind::LeftEarly, "", live_at, Facts { minutes_attended: minutes, ..lead.clone() }),
            Some(0 | 2) => push(EventKind::NoShow, "", session_start, lead.clone()),
            _ => {}
        }
        let replay_at = at(record.date_replay.as_deref()).unwrap_or(session_start);
        if record.attended_replay.is_some_and(|replay| replay >= 1) {
            push(EventKind::ReplayWatched, "", replay_at, lead.clone());
        }
        if record.purchased_live.is_some_and(|purchased| purchased >= 1) {
            let amount = record.revenue_live.as_deref().and_then(Cents::parse_lenient);
            push(EventKind::Purchased, "live", live_at, Facts { purchase_amount: amount, ..lead.clone() });
        }
        if record.purchased_replay.is_some_and(|purchased| purchased >= 1) {
            let amount = record.revenue_replay.as_deref().and_then(Cents::parse_lenient);
            push(EventKind::Purchased, "replay", replay_at, Facts { purchase_amount: amount, ..lead.clone() });
        }
    }
    mapped
}

fn phone(record: &Registrant) -> Option<String> {
    let phone = record.phone.clone()?;
    match record.phone_country_code.as_deref() {
        Some(code) if !phone.starts_with('+') => Some(format!("+{} {phone}", code.trim_start_matches('+'))),
        _ => Some(phone),
    }
}

/// One ended Zoom occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoomSession {
    /// The webinar id (the number), as webhooks carry it.
    pub webinar_id: String,
    /// The occurrence's uuid.
    pub uuid: String,
    pub topic: Option<String>,
    pub start_time: Option<DateTime<Utc>>,
    pub duration_minutes: Option<u32>,
    pub timezone: Option<String>,
    /// The occurrence id of a recurring webinar with a fixed time (type 9,
    /// [`crate::sources::zoom::occurrence_id_at`] of its start): its events key state by
    /// `<webinar id>@<occurrence id>`, as that occurrence's webhooks do. `None` for a single webinar.
    pub occurrence_id: Option<String>,
}

impl ZoomSession {
    /// The webinar id its events carry: `<id>@<occurrence id>` for a recurring occurrence.
    pub fn state_webinar_id(&self) -> String {
        match &self.occurrence_id {
            Some(occurrence) => format!("{}@{occurrence}", self.webinar_id),
            None => self.webinar_id.clone(),
        }
    }
}

/// A Zoom occurrence as events: approved registrants -> registered; participant rows ->
/// attended with their interval (e-mail, else the registrant id matched to a registration);
/// absentees -> no_show. Participants who match no registration (hosts, panelists) are left out.
pub fn zoom_events(
    session: &ZoomSession,
    registrants: &[ZoomRegistrant],
    participants: &[ZoomParticipant],
    absentees: &[ZoomRegistrant],
    pulled_at: DateTime<Utc>,
) -> Mapped {
    let mut mapped = Mapped::default();
    let source = Source::Zoom;
    let info = WebinarInfo {
        id: session.state_webinar_id(),
        name: session.topic.clone(),
        session_id: Some(session.uuid.clone()),
        starts_at: session.start_time,
        timezone: session.timezone.clone(),
        join_url: None,
        replay_url: None,
        duration_minutes: session.duration_minutes,
    };
    let session_start = session.start_time.unwrap_or(DateTime::UNIX_EPOCH);
    let rfc3339 = |raw: Option<&str>| {
        raw.and_then(|raw| DateTime::parse_from_rfc3339(raw.trim()).ok()).map(|at| at.with_timezone(&Utc))
    };

    // Everyone known to have registered, by registrant id and by e-mail.
    let mut by_id: HashMap<&str, (Email, &ZoomRegistrant)> = HashMap::new();
    let mut by_email: BTreeMap<Email, &ZoomRegistrant> = BTreeMap::new();
    for registrant in registrants.iter().chain(absentees) {
        if let Some(email) = registrant.email.as_deref().and_then(|raw| Email::parse(raw).ok()) {
            if !registrant.id.is_empty() {
                by_id.entry(registrant.id.as_str()).or_insert((email.clone(), registrant));
            }
            by_email.entry(email).or_insert(registrant);
        }
    }
    let contact_of = |email: &Email, registrant: &ZoomRegistrant| ContactInfo {
        email: email.clone(),
        first_name: registrant.first_name.clone(),
        last_name: registrant.last_name.clone(),
        phone: registrant.phone.clone(),
    };
    let facts_of = |registrant: &ZoomRegistrant| Facts {
        registrant_id: (!registrant.id.is_empty()).then(|| registrant.id.clone()),
        ..Facts::default()
    };

    for registrant in registrants {
        if registrant.status.as_deref().is_some_and(|status| !status.eq_ignore_ascii_case("approved")) {
            continue;
        }
        let Some(email) = registrant.email.as_deref().and_then(|raw| Email::parse(raw).ok()) else {
            mapped.skipped_without_email += 1;
            continue;
        };
        let mut webinar = info.clone();
        webinar.join_url = registrant.join_url.clone();
        let occurred_at = rfc3339(registrant.create_time.as_deref()).unwrap_or(session_start);
        mapped.events.push(event(
            &source,
            EventKind::Registered,
            "",
            occurred_at,
            pulled_at,
            &contact_of(&email, registrant),
            &webinar,
            facts_of(registrant),
        ));
    }

    for row in participants {
        let by_registrant = row.registrant_id.as_deref().filter(|id| !id.is_empty()).and_then(|id| by_id.get(id));
        let row_email = row.user_email.as_deref().and_then(|raw| Email::parse(raw).ok());
        let matched = match (by_registrant, &row_email) {
            (Some((email, registrant)), _) => Some((email.clone(), *registrant)),
            (None, Some(email)) => by_email.get(email).map(|registrant| (email.clone(), *registrant)),
            (None, None) => None,
        };
        let Some((email, registrant)) = matched else {
            if row_email.is_none() && row.registrant_id.as_deref().is_none_or(str::is_empty) {
                mapped.skipped_without_email += 1;
            } else {
                mapped.skipped_unregistered += 1;
            }
            continue;
        };
        let join = rfc3339(row.join_time.as_deref());
        let leave = rfc3339(row.leave_time.as_deref());
        let interval = match (join, leave, row.duration) {
            (Some(start), Some(end), _) => Some(Interval { start: start.min(end), end: Some(end) }),
            (Some(start), None, Some(seconds)) if seconds > 0 => {
                Some(Interval { start, end: Some(start + chrono::Duration::seconds(seconds)) })
            }
            _ => None,
        };
        let facts = Facts { intervals: interval.into_iter().collect(), ..facts_of(registrant) };
        // One event per row: a rejoin is another row, another interval of the same contact.
        let variant = row.join_time.clone().unwrap_or_default();
        mapped.events.push(event(
            &source,
            EventKind::Attended,
            &variant,
            join.unwrap_or(session_start),
            pulled_at,
            &contact_of(&email, registrant),
            &info,
            facts,
        ));
    }

    for absentee in absentees {
        let Some(email) = absentee.email.as_deref().and_then(|raw| Email::parse(raw).ok()) else {
            mapped.skipped_without_email += 1;
            continue;
        };
        mapped.events.push(event(
            &source,
            EventKind::NoShow,
            "",
            session_start,
            pulled_at,
            &contact_of(&email, absentee),
            &info,
            facts_of(absentee),
        ));
    }
    mapped
}

#[allow(clippy::too_many_arguments)]
fn event(
    source: &Source,
    kind: EventKind,
    variant: &str,
    occurred_at: DateTime<Utc>,
    pulled_at: DateTime<Utc>,
    contact: &ContactInfo,
    webinar: &WebinarInfo,
    facts: Facts,
) -> WebinarEvent {
    let mut event = WebinarEvent {
        schema: EVENT_SCHEMA_VERSION,
        // Replaced below, once the content is known.
        event_id: EventId::hashed(source, &[]),
        source: source.clone(),
        kind,
        occurred_at,
        received_at: pulled_at,
        contact: contact.clone(),
        webinar: webinar.clone(),
        facts,
    };
    // What the record says is part of the id: a record that changed between two pulls (more
    // minutes, a purchase) is a new event, never a conflicting payload under an old id.
    let content = event.fingerprint();
    event.event_id = EventId::hashed(
        source,
        &[
            b"pull",
            kind.as_str().as_bytes(),
            event.contact.email.as_str().as_bytes(),
            event.webinar.id.as_bytes(),
            event.webinar.session_id.as_deref().unwrap_or_default().as_bytes(),
            variant.as_bytes(),
            content.as_bytes(),
        ],
    );
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platforms::genesis::Schedule;
    use proptest::prelude::*;

    fn pulled_at() -> DateTime<Utc> {
        "2026-03-01T00:00:00Z".parse().unwrap()
    }

    fn masterclass() -> WebinarDetails {
        WebinarDetails {
            webinar_id: "123".into(),
            name: Some("Masterclass".into()),
            title: None,
            timezone: Some("Europe/Berlin".into()),
            schedules: vec![Schedule { schedule: "45".into(), date: Some("2026-02-10 19:00".into()), comment: None }],
            registration_url: None,
            direct_live_room_url: None,
            direct_replay_room_url: None,
            duration_minutes: Some(60),
        }
    }

    fn registrant(email: &str, attended_live: i64) -> Registrant {
        Registrant {
            lead_id: Some("5551".into()),
            email: Some(email.into()),
            first_name: Some("Erika".into()),
            schedule: Some("45".into()),
            signup_date: Some("2026-02-01 10:12:00".into()),
            attended_live: Some(attended_live),
            time_live: Some("0:42:10".into()),
            ..Registrant::default()
        }
    }

    fn kinds(mapped: &Mapped) -> Vec<(String, EventKind)> {
        mapped.events.iter().map(|event| (event.contact.email.as_str().to_owned(), event.kind)).collect()
    }

    #[test]
    fn genesis_records_follow_design_11() {
        let mut buyer = registrant("c@example.com", 4);
        buyer.attended_replay = Some(1);
        buyer.purchased_live = Some(1);
        buyer.revenue_live = Some("49,99".into());
        let records = [
            registrant("a@example.com", 1),
            registrant("b@example.com", 3),
            buyer,
            registrant("d@example.com", 2),
            registrant("e@example.com", 0),
            registrant("not an address", 1),
        ];
        let mapped = genesis_events(&Source::Everwebinar, &masterclass(), &records, pulled_at());
        use EventKind::*;
        let expected = [
            ("a@example.com", Registered),
            ("a@example.com", Attended),
            ("b@example.com", Registered),
            ("b@example.com", LeftEarly),
            ("c@example.com", Registered),
            ("c@example.com", Attended),
            ("c@example.com", ReplayWatched),
            ("c@example.com", Purchased),
            ("d@example.com", Registered),
            ("d@example.com", NoShow),
            ("e@example.com", Registered),
            ("e@example.com", NoShow),
        ];
        assert_eq!(kinds(&mapped), expected.map(|(email, kind)| (email.to_owned(), kind)).to_vec());
        assert_eq!(mapped.skipped_without_email, 1);
        let attended = &mapped.events[1];
        assert_eq!(attended.facts.minutes_attended, Some(42));
        assert_eq!(attended.webinar.starts_at.unwrap().to_rfc3339(), "2026-02-10T18:00:00+00:00");
        assert_eq!(attended.webinar.duration_minutes, Some(60));
        assert_eq!(mapped.events[0].occurred_at.to_rfc3339(), "2026-02-01T09:12:00+00:00");
        assert_eq!(mapped.events[7].facts.purchase_amount, Some(Cents(4999)));
        assert!(mapped.events.iter().all(|event| event.event_id.as_str().starts_with("everwebinar:")));
    }

    #[test]
    fn a_changed_record_is_a_new_event_and_an_unchanged_one_is_not() {
        let first = genesis_events(&Source::Webinarjam, &masterclass(), &[registrant("a@example.com", 2)], pulled_at());
        let later = "2026-03-02T00:00:00Z".parse().unwrap();
        let again = genesis_events(&Source::Webinarjam, &masterclass(), &[registrant("a@example.com", 2)], later);
        let ids = |mapped: &Mapped| mapped.events.iter().map(|event| event.event_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&first), ids(&again));
        let changed = genesis_events(&Source::Webinarjam, &masterclass(), &[registrant("a@example.com", 1)], later);
        assert_eq!(ids(&first)[0], ids(&changed)[0]);
        assert_ne!(ids(&first)[1], ids(&changed)[1]);
    }

    fn zoom_session() -> ZoomSession {
        ZoomSession {
            webinar_id: "85012345678".into(),
            uuid: "k7Zq9XvRTn2wYb3cQp1Lmg==".into(),
            topic: Some("Demo Webinar".into()),
            start_time: Some("2026-01-15T17:00:00Z".parse().unwrap()),
            duration_minutes: Some(60),
            timezone: None,
            occurrence_id: None,
        }
    }

    fn zoom_registrant(id: &str, email: &str) -> ZoomRegistrant {
        ZoomRegistrant {
            id: id.into(),
            email: Some(email.into()),
            first_name: Some("A".into()),
            status: Some("approved".into()),
            ..ZoomRegistrant::default()
        }
    }

    fn row(registrant_id: &str, email: &str, join: &str, leave: &str) -> ZoomParticipant {
        ZoomParticipant {
            registrant_id: Some(registrant_id.into()),
            user_email: Some(email.into()),
            join_time: Some(join.into()),
            leave_time: Some(leave.into()),
            ..ZoomParticipant::default()
        }
    }

    #[test]
    fn zoom_participants_match_registrations_and_hosts_are_left_out() {
        let registrants = [zoom_registrant("reg_1", "a@example.com"), zoom_registrant("reg_2", "b@example.com")];
        let participants = [
            // No e-mail: matched through the registrant id.
            row("reg_1", "", "2026-01-15T17:02:00Z", "2026-01-15T17:20:00Z"),
            // A rejoin of the same person.
            row("reg_1", "", "2026-01-15T17:25:00Z", "2026-01-15T17:40:00Z"),
            // The host, signed in, never registered.
            row("", "host@example.com", "2026-01-15T16:55:00Z", "2026-01-15T18:05:00Z"),
            // A guest without any identity.
            row("", "", "2026-01-15T17:05:00Z", "2026-01-15T17:06:00Z"),
        ];
        let absentees = [zoom_registrant("reg_2", "b@example.com")];
        let mapped = zoom_events(&zoom_session(), &registrants, &participants, &absentees, pulled_at());
        use EventKind::*;
        let expected = [
            ("a@example.com", Registered),
            ("b@example.com", Registered),
            ("a@example.com", Attended),
            ("a@example.com", Attended),
            ("b@example.com", NoShow),
        ];
        assert_eq!(kinds(&mapped), expected.map(|(email, kind)| (email.to_owned(), kind)).to_vec());
        assert_eq!((mapped.skipped_unregistered, mapped.skipped_without_email), (1, 1));
        assert_eq!(mapped.events[2].facts.intervals.len(), 1);
        assert_ne!(mapped.events[2].event_id, mapped.events[3].event_id);
        assert_eq!(mapped.events[2].webinar.id, "85012345678");
        assert_eq!(mapped.events[2].webinar.session_id.as_deref(), Some("k7Zq9XvRTn2wYb3cQp1Lmg=="));
    }

    #[test]
    fn a_recurring_occurrence_keys_state_as_its_webhooks_do() {
        let first = ZoomSession { occurrence_id: Some("1768496400000".into()), ..zoom_session() };
        let second = ZoomSession {
            uuid: "Qm9vbXNlc3Npb24xMjM=".into(),
            start_time: Some("2026-01-22T17:00:00Z".parse().unwrap()),
            occurrence_id: Some("1769101200000".into()),
            ..zoom_session()
        };
        let registrants = [zoom_registrant("reg_1", "a@example.com")];
        let absentees = [zoom_registrant("reg_1", "a@example.com")];
        let one = zoom_events(&first, &registrants, &[], &absentees, pulled_at());
        let two = zoom_events(&second, &registrants, &[], &absentees, pulled_at());
        let webinar_ids = |mapped: &Mapped| mapped.events.iter().map(|e| e.webinar.id.clone()).collect::<Vec<_>>();
        assert_eq!(webinar_ids(&one), ["85012345678@1768496400000"; 2]);
        assert_eq!(webinar_ids(&two), ["85012345678@1769101200000"; 2]);
        assert_ne!(one.events[0].event_id, two.events[0].event_id);
        // The webhook's key for the same occurrence.
        assert_eq!(crate::sources::zoom::occurrence_id_at("2026-01-15T17:00:00Z".parse().unwrap()), "1768496400000");
    }

    proptest! {
        /// The same records pulled at any two times give the same events with the same ids.
        #[test]
        fn pulling_twice_gives_the_same_ids(
            live in proptest::collection::vec(0i64..5, 1..20),
            replay in proptest::collection::vec(0i64..2, 20),
            hours in 0i64..10_000,
        ) {
            let records: Vec<Registrant> = live
                .iter()
                .zip(&replay)
                .enumerate()
                .map(|(index, (live, replay))| Registrant {
                    attended_replay: Some(*replay),
                    ..registrant(&format!("p{index}@example.com"), *live)
                })
                .collect();
            let first = genesis_events(&Source::Webinarjam, &masterclass(), &records, pulled_at());
            let later = pulled_at() + chrono::Duration::hours(hours);
            let second = genesis_events(&Source::Webinarjam, &masterclass(), &records, later);
            let ids = |mapped: &Mapped| mapped.events.iter().map(|event| event.event_id.clone()).collect::<Vec<_>>();
            prop_assert_eq!(ids(&first), ids(&second));
            let unique: std::collections::BTreeSet<_> = ids(&first).into_iter().collect();
            prop_assert_eq!(unique.len(), first.events.len());
        }
    }
}
