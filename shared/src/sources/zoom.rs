//! Zoom webinar event subscriptions (`reference/webinar-platforms.md` 2.1-2.4).
//!
//! Every request, the URL validation challenge included, is signed:
//! `x-zm-signature = "v0=" + hex(HMAC-SHA256(secret token, "v0:" + timestamp + ":" + raw body))`.
//! Zoom retries anything but a 2xx and stops delivering after three failures, so an authentic
//! event we cannot use is acknowledged as ignored rather than refused.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::{RawRequest, Rejection, SourceOutcome};
use super::{decode, fields};
use crate::domain::{
    ContactInfo, EVENT_SCHEMA_VERSION, Email, EventId, EventKind, Facts, Interval, Source, WebinarEvent, WebinarInfo,
};
use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Zoom's and Standard Webhooks' replay window: five minutes either way.
const MAX_CLOCK_SKEW_SECONDS: u64 = 300;

/// Authenticates a Zoom delivery and maps it to events, a validation answer or an ignore.
pub fn parse(request: &RawRequest, secret: &Secret) -> Result<SourceOutcome, Rejection> {
    verify_signature(request, secret)?;
    fields::require_json_content_type(request)?;
    let (event, envelope) = read_envelope(&request.body)?;
    match event.as_str() {
        "endpoint.url_validation" => answer_url_validation(&envelope, secret),
        "webinar.registration_created" if registrant_is_pending(&envelope) => Ok(SourceOutcome::Ignored {
            reason: "registration is pending approval; it counts once Zoom sends webinar.registration_approved."
                .to_owned(),
        }),
        "webinar.registration_created" | "webinar.registration_approved" => {
            registration(EventKind::Registered, &envelope, request)
        }
        "webinar.registration_cancelled" | "webinar.registration_denied" => {
            registration(EventKind::Cancelled, &envelope, request)
        }
        "webinar.ended" => ended(&envelope, request),
        "webinar.participant_joined" => participant(Presence::Joined, &envelope, request, None),
        "webinar.participant_left" => participant(Presence::Left, &envelope, request, None),
        other => Ok(SourceOutcome::Ignored {
            reason: format!("Zoom event {} is not one the bridge acts on.", printable_event_name(other)),
        }),
    }
}

fn one_event(event: WebinarEvent) -> SourceOutcome {
    SourceOutcome::Events(vec![event])
}

/// Checks the v0 signature (constant time), then that the signed timestamp is recent.
fn verify_signature(request: &RawRequest, secret: &Secret) -> Result<(), Rejection> {
    let timestamp = request.header("x-zm-request-timestamp").map(str::trim).unwrap_or_default();
    let signature = request
        .header("x-zm-signature")
        .and_then(|value| value.trim().strip_prefix("v0="))
        .and_then(|hex_digest| hex::decode(hex_digest).ok());
    let (Some(unix_seconds), Some(signature)) = (fields::parse_unix_seconds(timestamp), signature) else {
        return Err(invalid_signature(
            "The request lacks a valid x-zm-request-timestamp (unix seconds) or x-zm-signature (v0=<hex>) header; only Zoom's signed event notifications are accepted here.",
        ));
    };
    let mut mac = keyed_mac(secret)?;
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(&request.body);
    mac.verify_slice(&signature).map_err(|_| {
        invalid_signature(
            "The x-zm-signature does not match; set BRIDGE_ZOOM_SECRET_TOKEN to the Secret Token of your Zoom app (Features > Access).",
        )
    })?;
    if !fields::timestamp_is_fresh(unix_seconds, request.received_at, MAX_CLOCK_SKEW_SECONDS) {
        return Err(Rejection::unauthorized(
            "stale_timestamp",
            "The x-zm-request-timestamp is more than 5 minutes away from the bridge's clock; replays are refused. Check the sender's clock if this repeats.",
        ));
    }
    Ok(())
}

fn keyed_mac(secret: &Secret) -> Result<HmacSha256, Rejection> {
    // HMAC takes keys of any length, so this cannot fail; no panic path either way.
    HmacSha256::new_from_slice(secret.expose().as_bytes())
        .map_err(|_| invalid_signature("The configured Zoom secret token cannot be used as an HMAC key."))
}

fn invalid_signature(message: &str) -> Rejection {
    Rejection::unauthorized("invalid_signature", message)
}

/// The event name and the whole envelope; anything that is not `{"event": "<name>", ...}` is 400.
fn read_envelope(body: &[u8]) -> Result<(String, Map<String, Value>), Rejection> {
    let document = decode::json(body)?;
    let Value::Object(envelope) = document else {
        return Err(Rejection::malformed("The body must be a Zoom event notification: a JSON object with 'event'."));
    };
    match envelope.get("event") {
        Some(Value::String(event)) => Ok((event.clone(), envelope)),
        _ => Err(Rejection::malformed("The body has no 'event' name; it is not a Zoom event notification.")
            .with_field("event")),
    }
}

/// Zoom's CRC challenge: echo `plainToken` with its HMAC under the secret token.
fn answer_url_validation(envelope: &Map<String, Value>, secret: &Secret) -> Result<SourceOutcome, Rejection> {
    let plain_token = path(envelope, &["payload", "plainToken"])
        .and_then(Value::as_str)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            Rejection::malformed("The URL validation request has no 'payload.plainToken' to answer.")
                .with_field("payload.plainToken")
        })?;
    let mut mac = keyed_mac(secret)?;
    mac.update(plain_token.as_bytes());
    Ok(SourceOutcome::UrlValidation {
        plain_token: plain_token.to_owned(),
        encrypted_token: hex::encode(mac.finalize().into_bytes()),
    })
}

/// A registration that waits for the host's approval (`registrant.status` = `pending`).
fn registrant_is_pending(envelope: &Map<String, Value>) -> bool {
    path(envelope, &["payload", "object", "registrant"])
        .and_then(|registrant| text(registrant, "status"))
        .is_some_and(|status| status.eq_ignore_ascii_case("pending"))
}

/// `webinar.ended`: the occurrence is over, so its attendance report can be pulled
/// (`reference/webinar-platforms.md` 2.3). Ingest records it ([`crate::platforms::zoom_ledger`])
/// and reconciliation pulls that occurrence `BRIDGE_RECONCILE_AFTER_MINUTES` after `end_time`.
fn ended(envelope: &Map<String, Value>, request: &RawRequest) -> Result<SourceOutcome, Rejection> {
    let object = payload_object(envelope);
    let field_text = |key: &str| {
        object.and_then(|object| object.get(key)).and_then(fields::scalar_text).and_then(|raw| non_empty(&raw))
    };
    let id = field_text("id").filter(|id| id.len() <= 64 && id.bytes().all(|b| b.is_ascii_digit()));
    let uuid = field_text("uuid").filter(|uuid| uuid.len() <= 64 && uuid.bytes().all(|b| b.is_ascii_graphic()));
    // Acknowledged either way: a refusal would only make Zoom retry and then stop delivering.
    let (Some(id), Some(uuid)) = (id, uuid) else {
        return Ok(SourceOutcome::Ignored {
            reason: "webinar.ended without a numeric webinar id and an occurrence uuid; nothing to pull.".to_owned(),
        });
    };
    let webinar = read_webinar(object)?;
    let occurrence_id = occurrences(object).into_iter().next().map(|(occurrence, _)| occurrence);
    let ended_at = field_text("end_time").and_then(|raw| rfc3339(&raw)).unwrap_or(request.received_at);
    tracing::info!(webinar_id = %id, occurrence_uuid = %uuid, "zoom webinar ended; its report is pulled after the reconcile delay");
    Ok(SourceOutcome::ZoomEnded(crate::platforms::zoom_ledger::EndedOccurrence {
        webinar_id: id,
        uuid,
        occurrence_id,
        topic: webinar.name,
        start_time: webinar.starts_at,
        duration_minutes: webinar.duration_minutes,
        timezone: webinar.timezone,
        ended_at,
    }))
}

/// Zoom's webinar type 9 (recurring, fixed time): each occurrence keeps its own state. The pull
/// (`platforms::pull`) keys a pulled occurrence the same way.
pub const RECURRING_WITH_FIXED_TIME: u64 = 9;

/// Zoom's occurrence id of an occurrence starting at `start` (its start in epoch milliseconds):
/// the `@<occurrence>` suffix of a recurring webinar's state key, for webhooks and pulls alike.
pub fn occurrence_id_at(start: DateTime<Utc>) -> String {
    start.timestamp_millis().to_string()
}

/// The occurrences an event belongs to, as (occurrence id, start). A registration for a
/// recurring webinar lists them in `occurrences`; a participant event of a recurring webinar with
/// a fixed time names its occurrence by `start_time` (Zoom's occurrence id is that start in epoch
/// milliseconds). Empty for single webinars.
fn occurrences(object: Option<&Map<String, Value>>) -> Vec<(String, Option<DateTime<Utc>>)> {
    let listed: Vec<(String, Option<DateTime<Utc>>)> = object
        .and_then(|object| object.get("occurrences"))
        .and_then(Value::as_array)
        .map(|occurrences| {
            occurrences
                .iter()
                .filter_map(|occurrence| {
                    let start = text(occurrence, "start_time").and_then(|raw| rfc3339(&raw));
                    let id = text(occurrence, "occurrence_id")
                        .filter(|id| id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric()))
                        .or_else(|| start.map(occurrence_id_at))?;
                    Some((id, start))
                })
                .collect()
        })
        .unwrap_or_default();
    if !listed.is_empty() {
        return listed;
    }
    let recurring =
        object.and_then(|object| object.get("type")).and_then(Value::as_u64) == Some(RECURRING_WITH_FIXED_TIME);
    let start = object.and_then(|object| object.get("start_time")).and_then(Value::as_str).and_then(rfc3339);
    match (recurring, start) {
        (true, Some(start)) => vec![(occurrence_id_at(start), Some(start))],
        _ => Vec::new(),
    }
}

/// One event per occurrence (the webinar id becomes `<id>@<occurrence id>`), or the event as it
/// is for a single webinar. A registration for several occurrences hashes each occurrence into
/// its own event id.
fn per_occurrence(event: WebinarEvent, object: Option<&Map<String, Value>>, request: &RawRequest) -> SourceOutcome {
    let occurrences = occurrences(object);
    if occurrences.is_empty() {
        return one_event(event);
    }
    let several = occurrences.len() > 1;
    let events = occurrences
        .into_iter()
        .map(|(occurrence_id, start)| {
            let mut event = event.clone();
            event.webinar.id = format!("{}@{occurrence_id}", event.webinar.id);
            if start.is_some() {
                event.webinar.starts_at = start;
            }
            if several {
                event.event_id = EventId::hashed(&Source::Zoom, &[&request.body, occurrence_id.as_bytes()]);
            }
            event
        })
        .collect();
    SourceOutcome::Events(events)
}

/// `webinar.registration_*`: the registrant's details and join URL.
fn registration(
    kind: EventKind,
    envelope: &Map<String, Value>,
    request: &RawRequest,
) -> Result<SourceOutcome, Rejection> {
    const EMAIL_FIELD: &str = "payload.object.registrant.email";
    let object = payload_object(envelope);
    let registrant = object.and_then(|object| object.get("registrant"));
    let raw_email = registrant.and_then(|registrant| text(registrant, "email")).ok_or_else(|| {
        Rejection::unprocessable("missing_email", "The registration has no registrant e-mail address.", EMAIL_FIELD)
    })?;
    let email = Email::parse(&raw_email).map_err(|error| {
        Rejection::unprocessable(
            "invalid_email",
            format!("The registrant e-mail is not a usable address: {error}."),
            EMAIL_FIELD,
        )
    })?;
    let mut webinar = read_webinar(object)?;
    webinar.join_url = registrant.and_then(|registrant| text(registrant, "join_url"));
    let contact = ContactInfo {
        email,
        first_name: registrant.and_then(|registrant| text(registrant, "first_name")),
        last_name: registrant.and_then(|registrant| text(registrant, "last_name")),
        phone: registrant.and_then(|registrant| text(registrant, "phone")),
    };
    let facts = Facts {
        registrant_id: registrant.and_then(|registrant| text(registrant, "id")),
        fields: registrant.map(registrant_extra_fields).unwrap_or_default(),
        ..Facts::default()
    };
    Ok(per_occurrence(build_event(kind, contact, webinar, facts, envelope, request), object, request))
}

#[derive(Clone, Copy)]
enum Presence {
    Joined,
    Left,
}

/// `webinar.participant_joined` / `_left`: attendance with the interval Zoom reports.
fn participant(
    presence: Presence,
    envelope: &Map<String, Value>,
    request: &RawRequest,
    matched_email: Option<&Email>,
) -> Result<SourceOutcome, Rejection> {
    let object = payload_object(envelope);
    let participant = object.and_then(|object| object.get("participant"));
    if is_unregistered_staff(object, participant) {
        return Ok(SourceOutcome::Ignored {
            reason:
                "participant is the host, a co-host or a panelist without a registration; staff never become contacts."
                    .to_owned(),
        });
    }
    // Zoom must get a 2xx or it retries and then stops delivering, so a participant we cannot
    // identify (a guest without e-mail) is acknowledged and ignored, never refused. One with a
    // registrant id is matched by ingest through the registration it recorded.
    let raw_email = participant.and_then(|participant| text(participant, "email"));
    let email = match (matched_email, raw_email) {
        (Some(email), _) => email.clone(),
        (None, Some(raw_email)) => match Email::parse(&raw_email) {
            Ok(email) => email,
            Err(_) => {
                return Ok(SourceOutcome::Ignored {
                    reason: "participant e-mail is not a valid address; the attendance cannot be matched to a contact."
                        .to_owned(),
                });
            }
        },
        (None, None) => {
            return Ok(
                match participant
                    .and_then(|participant| text(participant, "registrant_id"))
                    .filter(|id| usable_registrant_id(id))
                {
                    Some(registrant_id) => SourceOutcome::ZoomUnidentifiedParticipant { registrant_id },
                    None => SourceOutcome::Ignored {
                        reason: "participant has no e-mail; Zoom only sends one for registrants and signed-in users."
                            .to_owned(),
                    },
                },
            );
        }
    };
    let webinar = read_webinar(object)?;
    let occurred_at = occurred_at(envelope, request);
    let facts = Facts {
        intervals: vec![attendance_interval(presence, participant, occurred_at)],
        registrant_id: participant.and_then(|participant| text(participant, "registrant_id")),
        ..Facts::default()
    };
    // No names from `user_name`: it is a display name and would overwrite the registration's.
    let contact = ContactInfo::new(email);
    Ok(per_occurrence(build_event(EventKind::Attended, contact, webinar, facts, envelope, request), object, request))
}

/// A registrant id the ledger can key on: short, printable, no separators.
fn usable_registrant_id(id: &str) -> bool {
    id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A participant event (`webinar.participant_joined/left`) that arrived without an e-mail, read
/// again with the e-mail its registrant id was matched to. The body was authenticated when it
/// arrived (kept ones were stored only after their signature checked); the events get the same
/// ids as if the e-mail had been in the body's first delivery.
pub fn participant_with_email(
    body: &[u8],
    received_at: DateTime<Utc>,
    email: &Email,
) -> Result<Vec<WebinarEvent>, Rejection> {
    let request = RawRequest {
        method: "POST".to_owned(),
        path: "/hooks/zoom".to_owned(),
        query: None,
        headers: Vec::new(),
        body: body.to_vec().into(),
        received_at,
    };
    let (event, envelope) = read_envelope(&request.body)?;
    let presence = match event.as_str() {
        "webinar.participant_joined" => Presence::Joined,
        "webinar.participant_left" => Presence::Left,
        _ => return Err(Rejection::malformed("Only Zoom participant events are matched by registrant id.")),
    };
    match participant(presence, &envelope, &request, Some(email))? {
        SourceOutcome::Events(events) => Ok(events),
        _ => Ok(Vec::new()),
    }
}

/// Roles Zoom gives the people who run a webinar (`participant.role`, where the app sends it).
const STAFF_ROLES: [&str; 4] = ["host", "co-host", "cohost", "panelist"];

/// The host (`participant.id` or `user_id` equal to the webinar's `host_id`), or anyone Zoom marks
/// as host, co-host or panelist, unless they registered like an attendee (a `registrant_id`).
fn is_unregistered_staff(object: Option<&Map<String, Value>>, participant: Option<&Value>) -> bool {
    let Some(participant) = participant else {
        return false;
    };
    if text(participant, "registrant_id").is_some() {
        return false;
    }
    let host_id = object.and_then(|object| object.get("host_id")).and_then(fields::scalar_text);
    let is_host = host_id.as_deref().map(str::trim).filter(|host| !host.is_empty()).is_some_and(|host| {
        ["id", "user_id", "participant_user_id"].iter().any(|key| text(participant, key).as_deref() == Some(host))
    });
    let has_staff_role = text(participant, "role").is_some_and(|role| {
        let role = role.to_ascii_lowercase().replace(['_', ' '], "-");
        STAFF_ROLES.contains(&role.as_str())
    });
    is_host || has_staff_role
}

/// Joined: open interval from `join_time`. Left: `join_time`..`leave_time`, or a point at
/// `leave_time` when the join is unknown. Missing times fall back to the event time.
fn attendance_interval(presence: Presence, participant: Option<&Value>, occurred_at: DateTime<Utc>) -> Interval {
    let time_of = |key: &str| participant.and_then(|participant| text(participant, key)).and_then(|raw| rfc3339(&raw));
    let join_time = time_of("join_time");
    match presence {
        Presence::Joined => Interval { start: join_time.unwrap_or(occurred_at), end: None },
        Presence::Left => {
            let leave_time = time_of("leave_time").unwrap_or(occurred_at);
            let start = join_time.unwrap_or(leave_time).min(leave_time);
            Interval { start, end: Some(leave_time) }
        }
    }
}

/// The webinar fields every webinar event object carries.
fn read_webinar(object: Option<&Map<String, Value>>) -> Result<WebinarInfo, Rejection> {
    let field = |key: &str| object.and_then(|object| object.get(key));
    let field_text = |key: &str| field(key).and_then(fields::scalar_text).and_then(|raw| non_empty(&raw));
    // `id` is a number in registration events and a string in participant events.
    let id = field_text("id").ok_or_else(|| {
        Rejection::unprocessable("missing_webinar", "The Zoom event has no webinar id.", "payload.object.id")
    })?;
    Ok(WebinarInfo {
        id,
        name: field_text("topic"),
        session_id: field_text("uuid"),
        starts_at: field_text("start_time").and_then(|raw| rfc3339(&raw)),
        timezone: field_text("timezone"),
        join_url: None,
        replay_url: None,
        duration_minutes: field("duration").and_then(Value::as_u64).and_then(|minutes| u32::try_from(minutes).ok()),
    })
}

fn build_event(
    kind: EventKind,
    contact: ContactInfo,
    webinar: WebinarInfo,
    facts: Facts,
    envelope: &Map<String, Value>,
    request: &RawRequest,
) -> WebinarEvent {
    WebinarEvent {
        schema: EVENT_SCHEMA_VERSION,
        // DESIGN 3: the hash of the raw body, which Zoom resends byte for byte on a retry.
        event_id: EventId::hashed(&Source::Zoom, &[&request.body]),
        source: Source::Zoom,
        kind,
        occurred_at: occurred_at(envelope, request),
        received_at: request.received_at,
        contact,
        webinar,
        facts,
    }
}

/// `event_ts` (milliseconds) when present, else arrival.
fn occurred_at(envelope: &Map<String, Value>, request: &RawRequest) -> DateTime<Utc> {
    envelope
        .get("event_ts")
        .and_then(fields::scalar_text)
        .and_then(|raw| raw.trim().parse::<i64>().ok())
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or(request.received_at)
}

fn payload_object(envelope: &Map<String, Value>) -> Option<&Map<String, Value>> {
    path(envelope, &["payload", "object"]).and_then(Value::as_object)
}

fn path<'a>(envelope: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a Value> {
    let (first, rest) = keys.split_first()?;
    rest.iter().try_fold(envelope.get(*first)?, |value, key| value.get(key))
}

/// A trimmed, non-empty text (or number) value of an object.
/// A registrant's organisation, job title and answers to custom questions (`custom.<title>`),
/// the values a marketer may map (domain::fields).
fn registrant_extra_fields(registrant: &Value) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for (key, name) in [("org", "organization"), ("job_title", "job_title")] {
        if let Some(value) = text(registrant, key) {
            out.insert(name.to_owned(), value);
        }
    }
    let questions = registrant.get("custom_questions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    for question in questions {
        let key = question.get("title").and_then(Value::as_str).and_then(crate::domain::custom_fact_key);
        if let (Some(key), Some(value)) = (key, text(question, "value")) {
            out.insert(key, value);
        }
    }
    out
}

fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(fields::scalar_text).and_then(|raw| non_empty(&raw))
}

fn non_empty(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

fn rfc3339(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw.trim()).ok().map(|time| time.with_timezone(&Utc))
}

/// The event name for the ignore reason, only if it looks like one of Zoom's (`a.b_c`).
fn printable_event_name(event: &str) -> &str {
    let looks_like_zoom = event.len() <= 64
        && !event.is_empty()
        && event.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_');
    if looks_like_zoom { event } else { "(unrecognized name)" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_without_join_is_a_point_at_leave_time() {
        let participant = serde_json::json!({"leave_time": "2026-01-15T17:40:00Z"});
        let now = "2026-01-15T18:00:00Z".parse().unwrap();
        let interval = attendance_interval(Presence::Left, Some(&participant), now);
        let leave = "2026-01-15T17:40:00Z".parse().unwrap();
        assert_eq!(interval, Interval { start: leave, end: Some(leave) });
    }

    #[test]
    fn a_join_after_the_leave_is_clamped() {
        let participant =
            serde_json::json!({"join_time": "2026-01-15T17:50:00Z", "leave_time": "2026-01-15T17:40:00Z"});
        let interval = attendance_interval(Presence::Left, Some(&participant), Utc::now());
        assert!(interval.end.is_some_and(|end| interval.start <= end));
    }

    #[test]
    fn odd_event_names_are_not_echoed() {
        assert_eq!(printable_event_name("webinar.started"), "webinar.started");
        assert_eq!(printable_event_name("<b>hi</b>"), "(unrecognized name)");
    }
}
