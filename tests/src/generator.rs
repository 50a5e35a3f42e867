//! A seeded, deterministic webinar log: what WebinarJam and Zoom (and, when the mix asks for them,
//! EverWebinar and a tool on the generic webhook) would send the bridge for one webinar each, and
//! the ground truth of what happened (for oracles, benchmarks and the soak).
//!
//! ```
//! use webinar_bridge_tests::generator::{Config, Log};
//! let log = Log::generate(&Config { registrants: 20, ..Config::default() });
//! assert_eq!(log.contacts.len(), 20);
//! assert!(log.requests.len() >= log.event_count());
//! let expected = log.expected_tags(); // email -> tag names, DESIGN 4 applied to the truth
//! assert_eq!(expected.len(), 20);
//! ```
//!
//! The default mix (see [`Mix`]): registrants split about evenly between a WebinarJam and a Zoom
//! webinar (60 minutes each); 60% attend live (a third of them fully, a quarter of the Zoom
//! attendees rejoin), 40% do not (WebinarJam sends `/no_show`; Zoom has no no-show webhook, so
//! nothing arrives); of the WebinarJam registrants 15% watch the replay and 5% buy, and 10% of
//! the attendees get a late `/no_show` after their attendance. Deliveries: 10% of events arrive
//! twice, 20% arrive out of order (after the contact's next event).
//!
//! Requests are what the platforms send: Zoom JSON signed with `x-zm-signature` (v0 HMAC) and
//! `x-zm-request-timestamp` = the delivery time; WebinarJam JSON or form bodies with the secret
//! as `?token=` or `Authorization: Bearer`; EverWebinar form bodies; generic JSON events signed
//! the Standard Webhooks way. Off by default (so the benchmark's log stays as it was): the
//! EverWebinar and generic shares, cancellations and re-registrations (see [`Mix`]).
//!
//! The expected state is judged by the one oracle of the crate ([`crate::oracle`]), fed with the
//! ground truth written as event documents ([`Log::truth_documents`]).

mod delivery;
mod generic;
mod rng;
mod timeline;
mod webinarjam;
mod zoom;

use crate::harness::{GENERIC_SECRET, WEBINARJAM_SECRET, ZOOM_SECRET};
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use rng::SplitMix64;
use std::collections::{BTreeMap, BTreeSet};
use webinar_bridge::domain::{
    Cents, ContactInfo, Email, EventId, EventKind, Facts, Interval, Source, WebinarEvent, WebinarInfo,
};
use webinar_bridge::sources::RawRequest;

pub use crate::oracle::DEFAULT_FULL_ATTENDANCE_PERCENT as FULL_ATTENDANCE_PERCENT;

/// The `{tool}` of the generic source's deliveries (`/hooks/generic/livestorm`).
pub const GENERIC_TOOL: &str = "livestorm";
/// `BRIDGE_EVERWEBINAR_SECRET` of the log's EverWebinar deliveries.
pub const EVERWEBINAR_SECRET: &str = "ew-example-secret";

/// The brief's standard log size.
pub const DEFAULT_REGISTRANTS: usize = 2_000;

/// Which platform a registrant signed up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tool {
    WebinarJam,
    Zoom,
    EverWebinar,
    /// A tool sending the generic webhook ([`GENERIC_TOOL`]).
    Generic,
}

impl Tool {
    /// The `{tool}` of the bridge's default tag template.
    pub fn tag_name(self) -> &'static str {
        match self {
            Tool::WebinarJam => "WebinarJam",
            Tool::Zoom => "Zoom",
            Tool::EverWebinar => "EverWebinar",
            Tool::Generic => GENERIC_TOOL,
        }
    }

    /// The engine's source for the tool's deliveries.
    pub fn source(self) -> Source {
        match self {
            Tool::WebinarJam => Source::Webinarjam,
            Tool::Zoom => Source::Zoom,
            Tool::EverWebinar => Source::Everwebinar,
            Tool::Generic => Source::Generic { tool: GENERIC_TOOL.to_owned() },
        }
    }

    /// WebinarJam and EverWebinar send no event time: the bridge orders their events by arrival.
    fn is_genesis(self) -> bool {
        matches!(self, Tool::WebinarJam | Tool::EverWebinar)
    }
}

/// Probabilities of the log (each in 0..=1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mix {
    /// Registrants who attend live; the rest are no-shows.
    pub attend: f64,
    /// Attendees who stay (nearly) to the end.
    pub fully_of_attendees: f64,
    /// Zoom attendees who leave and join again.
    pub rejoin_of_zoom_attendees: f64,
    /// WebinarJam registrants who watch the replay (Zoom sends no replay webhook).
    pub replay_of_webinarjam: f64,
    /// WebinarJam registrants who buy (Zoom sends no purchase webhook).
    pub purchase_of_webinarjam: f64,
    /// WebinarJam attendees who also get a `/no_show` after their attendance.
    pub late_no_show_of_webinarjam_attendees: f64,
    /// Events delivered twice.
    pub duplicate: f64,
    /// Events delivered after the contact's next event (or late, for a contact's last event).
    pub out_of_order: f64,
    /// Registrants on an EverWebinar webinar (form bodies), taken before the WebinarJam/Zoom split.
    pub everwebinar: f64,
    /// Registrants on a webinar of a tool using the generic webhook (Standard Webhooks signed).
    pub generic: f64,
    /// Registrants who cancel before the webinar (Zoom and generic; WebinarJam and EverWebinar
    /// only with `genesis_cancellations`).
    pub cancel_of_registrants: f64,
    /// Of those who cancel, the ones who register again (and then attend or not as usual).
    pub reregister_of_cancelled: f64,
    /// Cancellations and re-registrations also for WebinarJam and EverWebinar. Their webhooks
    /// carry no event time and a re-registration for the same session needs the bridge to tell
    /// it from the first registration (issue 11 item 9), so this stays off until that lands.
    pub genesis_cancellations: bool,
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            attend: 0.60,
            fully_of_attendees: 1.0 / 3.0,
            rejoin_of_zoom_attendees: 0.25,
            replay_of_webinarjam: 0.15,
            purchase_of_webinarjam: 0.05,
            late_no_show_of_webinarjam_attendees: 0.10,
            duplicate: 0.10,
            out_of_order: 0.20,
            everwebinar: 0.0,
            generic: 0.0,
            cancel_of_registrants: 0.0,
            reregister_of_cancelled: 0.0,
            genesis_cancellations: false,
        }
    }
}

/// The secrets the requests are signed or authenticated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secrets {
    /// `BRIDGE_WEBINARJAM_SECRET`.
    pub webinarjam: String,
    /// `BRIDGE_ZOOM_SECRET_TOKEN`.
    pub zoom: String,
    /// `BRIDGE_EVERWEBINAR_SECRET`.
    pub everwebinar: String,
    /// `BRIDGE_GENERIC_SECRET` (a `whsec_` Standard Webhooks secret).
    pub generic: String,
}

impl Default for Secrets {
    /// The harness's secrets, so `BridgeEnv::with_sources()` accepts the log as it is.
    fn default() -> Self {
        Self {
            webinarjam: WEBINARJAM_SECRET.to_owned(),
            zoom: ZOOM_SECRET.to_owned(),
            everwebinar: EVERWEBINAR_SECRET.to_owned(),
            generic: GENERIC_SECRET.to_owned(),
        }
    }
}

/// When the requests arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryClock {
    /// Shortly after each event happened (plus the delays of the out-of-order ones): a log that
    /// spans the week before the webinar to days after it. For in-process replays and `simulate`.
    AsHappened,
    /// Same order, but request `i` arrives at `start + i * spacing`. Zoom only accepts a
    /// signature timestamp within five minutes of its arrival, so a log sent over HTTP to a live
    /// `serve` is generated with `start` = now.
    Compressed { start: DateTime<Utc>, spacing: std::time::Duration },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub seed: u64,
    pub registrants: usize,
    /// Both webinars start here and last 60 minutes.
    pub webinar_start: DateTime<Utc>,
    pub mix: Mix,
    pub secrets: Secrets,
    pub delivery_clock: DeliveryClock,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            seed: 1,
            registrants: DEFAULT_REGISTRANTS,
            webinar_start: Utc.with_ymd_and_hms(2026, 11, 24, 17, 0, 0).single().unwrap_or_default(),
            mix: Mix::default(),
            secrets: Secrets::default(),
            delivery_clock: DeliveryClock::AsHappened,
        }
    }
}

/// One webinar per tool, as its platform describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webinar {
    pub tool: Tool,
    pub id: String,
    pub name: String,
    pub starts_at: DateTime<Utc>,
    /// What the platform tells the bridge: Zoom sends `duration`, WebinarJam does not.
    pub duration_minutes: Option<u32>,
    pub timezone: String,
}

/// A stretch of live attendance; `end` is `None` in a Zoom `participant_joined` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
}

/// Something that happened to a registrant and was sent to the bridge (ground truth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalEvent {
    /// The bridge's kind for it (Zoom joins and leaves are `Attended`).
    pub kind: EventKind,
    pub occurred_at: DateTime<Utc>,
    /// Zoom: the attendance interval this join or leave reports.
    pub interval: Option<Span>,
    /// WebinarJam `/attended`: `time_live` in whole minutes.
    pub minutes: Option<u32>,
    /// WebinarJam `/purchased`: the revenue in cents.
    pub amount_cents: Option<i64>,
    /// Indices into [`Log::requests`] of every delivery of this event, first one first.
    pub deliveries: Vec<usize>,
}

/// One registrant and everything that was sent about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// Lower-case, as the bridge normalizes it.
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub tool: Tool,
    /// Index into [`Log::webinars`].
    pub webinar: usize,
    /// In the order they happened.
    pub events: Vec<LogicalEvent>,
}

/// One HTTP request as the platform sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Without the query, e.g. `/hooks/webinarjam/attended`.
    pub path: String,
    /// Without `?`, e.g. `token=...`.
    pub query: Option<String>,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub received_at: DateTime<Utc>,
    /// Index into [`Log::contacts`].
    pub contact: usize,
    /// Index into that contact's `events`.
    pub event: usize,
    /// A platform retry of an earlier delivery of the same event.
    pub redelivery: bool,
}

impl Request {
    /// The request as the engine's ingest takes it.
    pub fn to_raw(&self) -> RawRequest {
        RawRequest {
            method: self.method.clone(),
            path: self.path.clone(),
            query: self.query.clone(),
            headers: self.headers.clone(),
            body: Bytes::from(self.body.clone()),
            received_at: self.received_at,
        }
    }

    /// Path and query, for a URL.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(query) => format!("{}?{query}", self.path),
            None => self.path.clone(),
        }
    }
}

/// Counts describing a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogStats {
    pub registrants: usize,
    pub events: usize,
    pub requests: usize,
    pub redeliveries: usize,
    /// Events whose first delivery came after a later event of the same contact.
    pub out_of_order: usize,
}

/// A generated webinar log: the requests in delivery order plus the truth behind them.
#[derive(Debug, Clone)]
pub struct Log {
    pub seed: u64,
    pub webinars: Vec<Webinar>,
    pub contacts: Vec<Contact>,
    /// In delivery order.
    pub requests: Vec<Request>,
    pub secrets: Secrets,
}

impl Log {
    /// The same config always gives the same log, byte for byte.
    pub fn generate(config: &Config) -> Log {
        let mut rng = SplitMix64::new(config.seed);
        let webinars = timeline::webinars(config.webinar_start);
        let mut contacts: Vec<Contact> =
            (0..config.registrants).map(|index| timeline::contact(index, &webinars, &config.mix, &mut rng)).collect();
        let schedule = delivery::schedule(&contacts, &config.mix, config.delivery_clock, &mut rng);
        let requests = render(&schedule, &mut contacts, &webinars, &config.secrets, &mut rng);
        Log { seed: config.seed, webinars, contacts, requests, secrets: config.secrets.clone() }
    }

    /// Distinct events (every event is delivered at least once).
    pub fn event_count(&self) -> usize {
        self.contacts.iter().map(|contact| contact.events.len()).sum()
    }

    pub fn stats(&self) -> LogStats {
        let out_of_order = self
            .contacts
            .iter()
            .flat_map(|contact| {
                let firsts: Vec<usize> = contact.events.iter().map(|event| event.deliveries[0]).collect();
                (0..firsts.len()).filter(move |&i| firsts[i + 1..].iter().any(|later| *later < firsts[i]))
            })
            .count();
        LogStats {
            registrants: self.contacts.len(),
            events: self.event_count(),
            requests: self.requests.len(),
            redeliveries: self.requests.iter().filter(|request| request.redelivery).count(),
            out_of_order,
        }
    }

    /// What KlickTipp should show per contact: e-mail -> tag names under the default template
    /// `[{tool}] [{webinar}] {state}`: the crate's oracle (DESIGN 4, written independently of the
    /// engine's state code) applied to the ground truth's documents.
    pub fn expected_tags(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut expected: BTreeMap<String, BTreeSet<String>> =
            self.contacts.iter().map(|contact| (contact.email.clone(), BTreeSet::new())).collect();
        for (email, contact) in crate::oracle::expected_contacts(&self.truth_documents()) {
            expected.insert(email, contact.tags);
        }
        expected
    }

    /// The ground truth as the event documents a perfect ingest would accept: each event once,
    /// at the time it happened (also for WebinarJam, which sends no time), with an id of its own.
    pub fn truth_documents(&self) -> Vec<WebinarEvent> {
        let mut documents = Vec::with_capacity(self.event_count());
        for (contact_index, contact) in self.contacts.iter().enumerate() {
            let Ok(email) = Email::parse(&contact.email) else { continue };
            let webinar = &self.webinars[contact.webinar];
            for (event_index, event) in contact.events.iter().enumerate() {
                let Some(event_id) = EventId::from_sender(&format!("truth-{contact_index}-{event_index}")) else {
                    continue;
                };
                let mut info = ContactInfo::new(email.clone());
                info.first_name = Some(contact.first_name.clone());
                info.last_name = Some(contact.last_name.clone());
                let mut webinar_info = WebinarInfo::new(webinar.id.clone());
                webinar_info.name = Some(webinar.name.clone());
                webinar_info.starts_at = Some(webinar.starts_at);
                webinar_info.duration_minutes = webinar.duration_minutes;
                let facts = Facts {
                    intervals: event
                        .interval
                        .map(|span| Interval { start: span.start, end: span.end })
                        .into_iter()
                        .collect(),
                    minutes_attended: event.minutes,
                    purchase_amount: event.amount_cents.map(Cents),
                    registrant_id: None,
                    engagement: None,
                    fields: Default::default(),
                };
                documents.push(WebinarEvent {
                    schema: webinar_bridge::domain::EVENT_SCHEMA_VERSION,
                    event_id,
                    source: contact.tool.source(),
                    kind: event.kind,
                    occurred_at: event.occurred_at,
                    received_at: event.occurred_at,
                    contact: info,
                    webinar: webinar_info,
                    facts,
                });
            }
        }
        documents
    }

    /// The log in the `webinar-bridge simulate` input format (DESIGN 9): one JSON object per
    /// line with method, path, query, headers, body and received_at.
    pub fn to_simulate_jsonl(&self) -> String {
        let mut out = String::new();
        for request in &self.requests {
            let headers: BTreeMap<&str, &str> =
                request.headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
            let mut line = serde_json::json!({
                "method": request.method,
                "path": request.path,
                "headers": headers,
                "body": String::from_utf8_lossy(&request.body),
                "received_at": request.received_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            });
            if let Some(query) = &request.query {
                line["query"] = serde_json::Value::String(query.clone());
            }
            out.push_str(&line.to_string());
            out.push('\n');
        }
        out
    }
}

/// Bodies are made once per event (a retry resends the same bytes); headers per delivery.
fn render(
    schedule: &[delivery::Slot],
    contacts: &mut [Contact],
    webinars: &[Webinar],
    secrets: &Secrets,
    rng: &mut SplitMix64,
) -> Vec<Request> {
    let mut first_renders: BTreeMap<(usize, usize), Request> = BTreeMap::new();
    let mut requests = Vec::with_capacity(schedule.len());
    for (index, slot) in schedule.iter().enumerate() {
        let contact = &contacts[slot.contact];
        let webinar = &webinars[contact.webinar];
        let key = (slot.contact, slot.event);
        let request = match first_renders.get(&key) {
            Some(first) => redeliver(first, contact.tool, slot.received_at, secrets),
            None => {
                let event = &contact.events[slot.event];
                let request = match contact.tool {
                    Tool::WebinarJam => {
                        webinarjam::request(contact, slot.contact, webinar, event, &secrets.webinarjam, rng)
                    }
                    Tool::EverWebinar => {
                        webinarjam::everwebinar_request(contact, slot.contact, webinar, event, &secrets.everwebinar)
                    }
                    Tool::Zoom => zoom::request(contact, slot.contact, webinar, event, slot.received_at, &secrets.zoom),
                    Tool::Generic => generic::request(
                        contact,
                        (slot.contact, slot.event),
                        webinar,
                        event,
                        slot.received_at,
                        &secrets.generic,
                    ),
                };
                let request =
                    Request { received_at: slot.received_at, contact: slot.contact, event: slot.event, ..request };
                first_renders.insert(key, request.clone());
                request
            }
        };
        contacts[slot.contact].events[slot.event].deliveries.push(index);
        requests.push(request);
    }
    requests
}

/// A platform retry: the same body; Zoom and the generic sender sign it again with the retry's
/// own timestamp (the generic one keeps its `webhook-id`).
fn redeliver(first: &Request, tool: Tool, received_at: DateTime<Utc>, secrets: &Secrets) -> Request {
    let headers = match tool {
        Tool::WebinarJam | Tool::EverWebinar => first.headers.clone(),
        Tool::Zoom => zoom::headers(&first.body, received_at, &secrets.zoom),
        Tool::Generic => generic::resigned(&first.headers, &first.body, received_at, &secrets.generic),
    };
    Request { headers, received_at, redelivery: true, ..first.clone() }
}

/// `application/x-www-form-urlencoded` encoding of one key or value.
fn form_encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(char::from(byte)),
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Config {
        Config { registrants: 300, seed: 42, ..Config::default() }
    }

    #[test]
    fn a_seed_gives_the_same_log_and_another_seed_a_different_one() {
        let a = Log::generate(&small());
        let b = Log::generate(&small());
        assert_eq!(a.requests, b.requests);
        assert_eq!(a.contacts, b.contacts);
        let c = Log::generate(&Config { seed: 43, ..small() });
        assert_ne!(a.requests, c.requests);
    }

    #[test]
    fn every_event_is_delivered_and_every_delivery_belongs_to_its_event() {
        let log = Log::generate(&small());
        for (index, request) in log.requests.iter().enumerate() {
            assert!(log.contacts[request.contact].events[request.event].deliveries.contains(&index));
        }
        for contact in &log.contacts {
            for event in &contact.events {
                assert!(!event.deliveries.is_empty());
                assert!(event.deliveries.windows(2).all(|pair| pair[0] < pair[1]));
            }
        }
        let stats = log.stats();
        assert_eq!(stats.requests, stats.events + stats.redeliveries);
        assert!(log.requests.windows(2).all(|pair| pair[0].received_at <= pair[1].received_at));
    }

    #[test]
    fn the_mix_is_roughly_the_one_asked_for() {
        let log = Log::generate(&Config { registrants: 2_000, ..Config::default() });
        let stats = log.stats();
        let zoom = log.contacts.iter().filter(|contact| contact.tool == Tool::Zoom).count();
        assert!((900..=1100).contains(&zoom), "{zoom} Zoom registrants of 2000");
        let share = |part: usize, whole: usize| part as f64 / whole as f64;
        assert!((0.07..0.13).contains(&share(stats.redeliveries, stats.events)), "{stats:?}");
        assert!((0.12..0.25).contains(&share(stats.out_of_order, stats.events)), "{stats:?}");
        let live = |event: &LogicalEvent| matches!(event.kind, EventKind::Attended | EventKind::FullyAttended);
        let attendees = log.contacts.iter().filter(|contact| contact.events.iter().any(live)).count();
        assert!((0.55..0.65).contains(&share(attendees, 2_000)), "{attendees} attendees");
    }

    #[test]
    fn compressed_delivery_spaces_requests_evenly_from_the_start() {
        let start = Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).single().expect("valid time");
        let spacing = std::time::Duration::from_millis(5);
        let log = Log::generate(&Config { delivery_clock: DeliveryClock::Compressed { start, spacing }, ..small() });
        assert_eq!(log.requests[0].received_at, start);
        assert_eq!(log.requests[10].received_at, start + chrono::Duration::milliseconds(50));
    }

    #[test]
    fn simulate_lines_carry_what_the_cli_needs() {
        let log = Log::generate(&Config { registrants: 5, ..small() });
        let jsonl = log.to_simulate_jsonl();
        let lines: Vec<serde_json::Value> =
            jsonl.lines().map(|line| serde_json::from_str(line).expect("one JSON object per line")).collect();
        assert_eq!(lines.len(), log.requests.len());
        for line in &lines {
            for key in ["method", "path", "headers", "body", "received_at"] {
                assert!(line.get(key).is_some(), "{key} missing in {line}");
            }
        }
    }

    /// Every tool, cancellations and re-registrations.
    fn full_mix() -> Config {
        let mix = Mix {
            everwebinar: 0.2,
            generic: 0.2,
            cancel_of_registrants: 0.2,
            reregister_of_cancelled: 0.5,
            ..Mix::default()
        };
        Config { registrants: 400, seed: 7, mix, ..Config::default() }
    }

    #[test]
    fn every_contact_without_a_cancellation_is_registered_and_tags_follow_the_tool() {
        let log = Log::generate(&full_mix());
        let expected = log.expected_tags();
        assert_eq!(expected.len(), log.contacts.len(), "one entry per contact");
        for contact in &log.contacts {
            let tags = &expected[&contact.email];
            let prefix = format!("[{}] ", contact.tool.tag_name());
            assert!(tags.iter().all(|tag| tag.starts_with(&prefix)), "{tags:?}");
            let last_registration = contact
                .events
                .iter()
                .rfind(|event| matches!(event.kind, EventKind::Registered | EventKind::Cancelled))
                .map(|event| event.kind);
            let state = if last_registration == Some(EventKind::Cancelled) { "] Cancelled" } else { "] Registered" };
            assert!(tags.iter().any(|tag| tag.ends_with(state)), "{tags:?} for {:?}", contact.events);
            if contact.tool == Tool::Zoom {
                assert!(!tags.iter().any(|tag| tag.ends_with("Did Not Attend")), "Zoom sends no no-show");
            }
        }
        for tool in [Tool::WebinarJam, Tool::Zoom, Tool::EverWebinar, Tool::Generic] {
            assert!(log.contacts.iter().any(|contact| contact.tool == tool), "no {tool:?} registrant");
        }
        let cancelled = |tool: Tool| {
            log.contacts
                .iter()
                .filter(|contact| contact.tool == tool)
                .any(|contact| contact.events.iter().any(|event| event.kind == EventKind::Cancelled))
        };
        assert!(cancelled(Tool::Zoom) && cancelled(Tool::Generic));
        assert!(!cancelled(Tool::WebinarJam) && !cancelled(Tool::EverWebinar), "off without genesis_cancellations");
    }

    #[tokio::test]
    async fn ingest_accepts_every_request_and_its_documents_give_the_truth() {
        use webinar_bridge::Secret;
        use webinar_bridge::adapters::memory::MemoryQueue;
        use webinar_bridge::ingest::Ingest;
        use webinar_bridge::ports::EventQueue;
        use webinar_bridge::sources::SourceSecrets;

        let log = Log::generate(&full_mix());
        let queue = MemoryQueue::default();
        let secrets = SourceSecrets {
            webinarjam: Some(Secret::new(log.secrets.webinarjam.clone())),
            everwebinar: Some(Secret::new(log.secrets.everwebinar.clone())),
            zoom: Some(Secret::new(log.secrets.zoom.clone())),
            generic: Some(Secret::new(log.secrets.generic.clone())),
        };
        let ingest = Ingest::new(std::sync::Arc::new(queue.clone()), secrets);
        for request in &log.requests {
            let response = ingest.handle(&request.to_raw()).await;
            assert_eq!(response.status, 200, "{} {}: {}", request.method, request.path, response.body);
        }
        let mut documents: BTreeMap<String, WebinarEvent> = BTreeMap::new();
        loop {
            let messages = queue.receive(10).await.expect("receive");
            if messages.is_empty() {
                break;
            }
            for message in messages {
                let document: WebinarEvent = serde_json::from_str(&message.body).expect("a document");
                documents.entry(document.event_id.as_str().to_owned()).or_insert(document);
                queue.ack(&message).await.expect("ack");
            }
        }
        let events: Vec<WebinarEvent> = documents.into_values().collect();
        let from_ingest = crate::oracle::expected_contacts(&events);
        let truth = log.expected_tags();
        let differing: Vec<String> = log
            .contacts
            .iter()
            .filter(|contact| {
                from_ingest.get(&contact.email).map(|expected| &expected.tags) != Some(&truth[&contact.email])
            })
            .map(|contact| {
                format!(
                    "{:?} {:?}: truth {:?}, documents {:?}",
                    contact.tool,
                    contact.events.iter().map(|event| event.kind).collect::<Vec<_>>(),
                    truth[&contact.email],
                    from_ingest.get(&contact.email).map(|expected| &expected.tags)
                )
            })
            .collect();
        assert!(differing.is_empty(), "{} contacts differ:\n{}", differing.len(), differing.join("\n"));
    }

    #[test]
    fn form_encoding_escapes_what_it_must() {
        assert_eq!(form_encode("a b@c.de/ü"), "a+b%40c.de%2F%C3%BC");
    }
}
