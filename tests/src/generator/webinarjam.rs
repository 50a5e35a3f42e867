//! WebinarJam "Custom Webhook" deliveries: one automation rule URL per kind, a JSON or form body
//! with the platform's field names, the secret as `?token=` or a bearer token.

use super::rng::SplitMix64;
use super::{Contact, LogicalEvent, Request, Webinar, form_encode};
use chrono::Duration;
use serde_json::{Map, Value, json};
use webinar_bridge::domain::EventKind;

/// The schedule (session) id WebinarJam gives the webinar's one session.
const SCHEDULE: u64 = 45;

pub(super) fn request(
    contact: &Contact,
    contact_index: usize,
    webinar: &Webinar,
    event: &LogicalEvent,
    secret: &str,
    rng: &mut SplitMix64,
) -> Request {
    let fields = body_fields(contact, contact_index, webinar, event);
    let as_json = rng.chance(0.5);
    let as_bearer = rng.chance(0.5);
    let (content_type, body) = if as_json {
        ("application/json", Value::Object(fields).to_string().into_bytes())
    } else {
        ("application/x-www-form-urlencoded", form_body(&fields).into_bytes())
    };
    let mut headers = vec![("content-type".to_owned(), content_type.to_owned())];
    let query = if as_bearer {
        headers.push(("authorization".to_owned(), format!("Bearer {secret}")));
        None
    } else {
        Some(format!("token={}", form_encode(secret)))
    };
    Request {
        method: "POST".to_owned(),
        path: format!("/hooks/webinarjam/{}", event.kind.as_str()),
        query,
        headers,
        body,
        received_at: event.occurred_at,
        contact: contact_index,
        event: 0,
        redelivery: false,
    }
}

/// An EverWebinar delivery: the same Genesis webhook format as WebinarJam's, always as a form
/// body, with the secret as `?token=`.
pub(super) fn everwebinar_request(
    contact: &Contact,
    contact_index: usize,
    webinar: &Webinar,
    event: &LogicalEvent,
    secret: &str,
) -> Request {
    let fields = body_fields(contact, contact_index, webinar, event);
    Request {
        method: "POST".to_owned(),
        path: format!("/hooks/everwebinar/{}", event.kind.as_str()),
        query: Some(format!("token={}", form_encode(secret))),
        headers: vec![("content-type".to_owned(), "application/x-www-form-urlencoded".to_owned())],
        body: form_body(&fields).into_bytes(),
        received_at: event.occurred_at,
        contact: contact_index,
        event: 0,
        redelivery: false,
    }
}

/// The fields of the API's register response (the platform's likely vocabulary), numbers as
/// numbers, plus `time_live` on attendance and `revenue` on a purchase.
fn body_fields(contact: &Contact, contact_index: usize, webinar: &Webinar, event: &LogicalEvent) -> Map<String, Value> {
    // The session date in the webinar's zone; Europe/Berlin is UTC+1 in November.
    let local_start = (webinar.starts_at + Duration::hours(1)).format("%Y-%m-%d %H:%M").to_string();
    let user_id = 98_765 + contact_index as u64;
    let Value::Object(mut fields) = json!({
        "webinar_id": webinar.id.parse::<u64>().map(Value::from).unwrap_or_else(|_| Value::from(webinar.id.clone())),
        "webinar_name": webinar.name,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "email": contact.email,
        "phone_country_code": "+49",
        "phone": format!("151{:08}", contact_index),
        "schedule": SCHEDULE,
        "date": local_start,
        "timezone": webinar.timezone,
        "user_id": user_id,
        "live_room_url": format!("https://event.webinarjam.com/live/{}/{user_id}", webinar.id),
        "replay_room_url": format!("https://event.webinarjam.com/replay/{}/{user_id}", webinar.id),
    }) else {
        return Map::new();
    };
    // A registration carries its own sign-up time, as WebinarJam sends it: a registration after a
    // cancellation is a new one, not a resend of the first.
    if event.kind == EventKind::Registered {
        let signed_up = (event.occurred_at + Duration::hours(1)).format("%Y-%m-%d %H:%M:%S").to_string();
        fields.insert("signup_date".to_owned(), Value::from(signed_up));
    }
    if let (EventKind::Attended, Some(minutes)) = (event.kind, event.minutes) {
        fields.insert("time_live".to_owned(), Value::from(format!("00:{minutes:02}:{:02}", contact_index % 60)));
    }
    if let (EventKind::Purchased, Some(cents)) = (event.kind, event.amount_cents) {
        fields.insert("revenue".to_owned(), Value::from(format!("{}.{:02}", cents / 100, cents % 100)));
    }
    fields
}

fn form_body(fields: &Map<String, Value>) -> String {
    fields
        .iter()
        .map(|(key, value)| {
            let text = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            format!("{}={}", form_encode(key), form_encode(&text))
        })
        .collect::<Vec<_>>()
        .join("&")
}
