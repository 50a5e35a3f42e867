//! Deliveries of a tool on the generic webhook (`/hooks/generic/{tool}`): one normalized event
//! as JSON, signed the Standard Webhooks way (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64 HMAC-SHA256>` with the `whsec_` secret).

use super::{Contact, GENERIC_TOOL, LogicalEvent, Request, Webinar};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// `(contact index, event index)`: the `webhook-id` is the event's, the same on every retry.
pub(super) fn request(
    contact: &Contact,
    (contact_index, event_index): (usize, usize),
    webinar: &Webinar,
    event: &LogicalEvent,
    received_at: DateTime<Utc>,
    secret: &str,
) -> Request {
    let body = body(contact, webinar, event).to_string().into_bytes();
    let webhook_id = format!("msg_{contact_index:06}_{event_index:02}");
    Request {
        method: "POST".to_owned(),
        path: format!("/hooks/generic/{GENERIC_TOOL}"),
        query: None,
        headers: headers(&webhook_id, &body, received_at, secret),
        body,
        received_at,
        contact: contact_index,
        event: event_index,
        redelivery: false,
    }
}

/// The headers of a retry: the same `webhook-id`, signed again with the retry's timestamp.
pub(super) fn resigned(
    first: &[(String, String)],
    body: &[u8],
    received_at: DateTime<Utc>,
    secret: &str,
) -> Vec<(String, String)> {
    let webhook_id = first.iter().find(|(name, _)| name == "webhook-id").map(|(_, id)| id.as_str()).unwrap_or("");
    headers(webhook_id, body, received_at, secret)
}

fn headers(webhook_id: &str, body: &[u8], received_at: DateTime<Utc>, secret: &str) -> Vec<(String, String)> {
    let timestamp = received_at.timestamp().to_string();
    let key = secret.strip_prefix("whsec_").and_then(|encoded| BASE64.decode(encoded).ok());
    let key = key.unwrap_or_else(|| secret.as_bytes().to_vec());
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
    for part in [webhook_id.as_bytes(), b".", timestamp.as_bytes(), b".", body] {
        mac.update(part);
    }
    let signature = BASE64.encode(mac.finalize().into_bytes());
    vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("webhook-id".to_owned(), webhook_id.to_owned()),
        ("webhook-timestamp".to_owned(), timestamp),
        ("webhook-signature".to_owned(), format!("v1,{signature}")),
    ]
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn body(contact: &Contact, webinar: &Webinar, event: &LogicalEvent) -> Value {
    let mut webinar_object = json!({
        "id": webinar.id,
        "name": webinar.name,
        "starts_at": rfc3339(webinar.starts_at),
        "timezone": webinar.timezone,
    });
    if let Some(minutes) = webinar.duration_minutes {
        webinar_object["duration_minutes"] = Value::from(minutes);
    }
    let mut object = json!({
        "kind": event.kind.as_str(),
        "occurred_at": rfc3339(event.occurred_at),
        "contact": {"email": contact.email, "first_name": contact.first_name, "last_name": contact.last_name},
        "webinar": webinar_object,
    });
    if let Some(minutes) = event.minutes {
        object["minutes_attended"] = Value::from(minutes);
    }
    if let Some(cents) = event.amount_cents {
        object["purchase_amount"] = Value::from(format!("{}.{:02}", cents / 100, cents % 100));
    }
    object
}
