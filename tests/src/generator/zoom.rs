//! Zoom webinar event notifications (`reference/webinar-platforms.md` 2.1-2.4), signed with the
//! app's secret token.

use super::{Contact, LogicalEvent, Request, Webinar};
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use webinar_bridge::domain::EventKind;

const ACCOUNT_ID: &str = "AbCdEf123";
const HOST_ID: &str = "HoSt_1";
/// The occurrence's uuid (changes per occurrence; one occurrence here).
const OCCURRENCE_UUID: &str = "k7Zq9XvRTn2wYb3cQp1Lmg==";
/// Zoom's `type` for a webinar.
const WEBINAR_TYPE: u64 = 5;

pub(super) fn request(
    contact: &Contact,
    contact_index: usize,
    webinar: &Webinar,
    event: &LogicalEvent,
    received_at: DateTime<Utc>,
    secret: &str,
) -> Request {
    let body = body(contact, contact_index, webinar, event).to_string().into_bytes();
    Request {
        method: "POST".to_owned(),
        path: "/hooks/zoom".to_owned(),
        query: None,
        headers: headers(&body, received_at, secret),
        body,
        received_at,
        contact: contact_index,
        event: 0,
        redelivery: false,
    }
}

/// The headers of one delivery: the v0 signature over `v0:{timestamp}:{body}` with the
/// delivery's own timestamp, and a tracking id unique to the delivery.
pub(super) fn headers(body: &[u8], received_at: DateTime<Utc>, secret: &str) -> Vec<(String, String)> {
    let timestamp = received_at.timestamp().to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    let signature = hex::encode(mac.finalize().into_bytes());
    let tracking = Sha256::new().chain_update(timestamp.as_bytes()).chain_update(body).finalize();
    vec![
        ("content-type".to_owned(), "application/json; charset=utf-8".to_owned()),
        ("user-agent".to_owned(), "Zoom Marketplace/1.0a".to_owned()),
        ("x-zm-request-timestamp".to_owned(), timestamp),
        ("x-zm-signature".to_owned(), format!("v0={signature}")),
        ("x-zm-trackingid".to_owned(), format!("v=2.0&s={}", hex::encode(&tracking[..12]))),
    ]
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn body(contact: &Contact, contact_index: usize, webinar: &Webinar, event: &LogicalEvent) -> Value {
    let registrant_id = format!("reg_{contact_index:06}");
    let mut object = json!({
        "uuid": OCCURRENCE_UUID,
        "host_id": HOST_ID,
        "topic": webinar.name,
        "type": WEBINAR_TYPE,
        "start_time": rfc3339(webinar.starts_at),
        "duration": webinar.duration_minutes.unwrap_or(60),
        "timezone": webinar.timezone,
    });
    let name = match (event.kind, event.interval) {
        (EventKind::Attended, Some(span)) => {
            // `id` is a string in participant events and a number in registration events.
            object["id"] = Value::from(webinar.id.clone());
            let mut participant = json!({
                "user_id": (16_778_240 + contact_index).to_string(),
                "user_name": format!("{} {}", contact.first_name, contact.last_name),
                "id": "",
                "email": contact.email,
                "join_time": rfc3339(span.start),
                "registrant_id": registrant_id,
                "participant_uuid": format!("pu-{contact_index:06}-{}", span.start.timestamp()),
            });
            match span.end {
                Some(end) => {
                    participant["leave_time"] = Value::from(rfc3339(end));
                    participant["leave_reason"] = Value::from("left the webinar");
                    object["participant"] = participant;
                    "webinar.participant_left"
                }
                None => {
                    object["participant"] = participant;
                    "webinar.participant_joined"
                }
            }
        }
        _ => {
            object["id"] =
                webinar.id.parse::<u64>().map(Value::from).unwrap_or_else(|_| Value::from(webinar.id.clone()));
            object["registrant"] = json!({
                "id": registrant_id,
                "first_name": contact.first_name,
                "last_name": contact.last_name,
                "email": contact.email,
                "status": "approved",
                "join_url": format!("https://us06web.zoom.us/w/{}?tk=bench{contact_index:06}", webinar.id),
            });
            if event.kind == EventKind::Cancelled {
                object["registrant"]["status"] = Value::from("cancelled");
                "webinar.registration_cancelled"
            } else {
                "webinar.registration_created"
            }
        }
    };
    json!({
        "event": name,
        "event_ts": event.occurred_at.timestamp_millis(),
        "payload": {"account_id": ACCOUNT_ID, "object": object},
    })
}
