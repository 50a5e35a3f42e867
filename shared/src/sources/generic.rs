//! The generic source: any tool that can send the normalized event as JSON (DESIGN 7, schema in
//! `shared/schema/generic-event.schema.json`), signed the Standard Webhooks way
//! (`reference/anchors.md` A.1) or with the secret as a bearer token.
//!
//! A request is all or nothing: one invalid event in a batch refuses the whole batch, so the
//! sender can fix it and resend without creating half-applied duplicates.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use std::collections::BTreeMap;
use subtle::ConstantTimeEq;

use super::{RawRequest, Rejection, RejectionKind, SourceOutcome};
use super::{decode, fields};
use crate::domain::custom_fact_key;
use crate::domain::engagement_label;
use crate::domain::{
    Cents, ContactInfo, EVENT_SCHEMA_VERSION, Email, EventId, EventKind, Facts, Source, WebinarEvent, WebinarInfo,
};
use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Standard Webhooks' replay window: five minutes either way.
const MAX_CLOCK_SKEW_SECONDS: u64 = 300;

/// Most events one request may carry; larger backlogs are sent in several requests.
pub const MAX_EVENTS_PER_REQUEST: usize = 100;

/// Longest tool name, which becomes part of every tag name of the source.
pub const MAX_TOOL_NAME_CHARS: usize = 40;

/// Authenticates a generic delivery and validates every event in it.
pub fn parse(tool: &str, request: &RawRequest, secret: &Secret) -> Result<SourceOutcome, Rejection> {
    authenticate(request, secret)?;
    validate_tool(tool)?;
    fields::require_json_content_type(request)?;
    let Elements { items, from_array } = read_elements(&request.body)?;
    let source = Source::Generic { tool: tool.to_owned() };
    let batch = Batch { source: &source, request, len: items.len(), from_array };
    let events =
        items.iter().enumerate().map(|(index, element)| batch.event(index, element)).collect::<Result<Vec<_>, _>>()?;
    Ok(SourceOutcome::Events(events))
}

// ---------------------------------------------------------------------------------------------
// Authentication

/// A valid bearer secret, or a valid Standard Webhooks signature with a fresh timestamp.
fn authenticate(request: &RawRequest, secret: &Secret) -> Result<(), Rejection> {
    let bearer = fields::bearer_token(request);
    if bearer.is_some_and(|token| secret.matches(token.as_bytes())) {
        return Ok(());
    }
    if request.header("webhook-signature").is_some() {
        return verify_standard_webhook(request, secret);
    }
    if bearer.is_some() {
        return Err(Rejection::unauthorized(
            "invalid_secret",
            "The bearer token does not match BRIDGE_GENERIC_SECRET; send the configured secret exactly.",
        ));
    }
    Err(Rejection::unauthorized(
        "missing_signature",
        "Sign the request the Standard Webhooks way (webhook-id, webhook-timestamp, webhook-signature) or send 'Authorization: Bearer <secret>'.",
    ))
}

/// `webhook-signature` is a space-separated list of `v1,<base64 HMAC-SHA256>` over
/// `{webhook-id}.{webhook-timestamp}.{raw body}`; any one matching passes (key rotation).
fn verify_standard_webhook(request: &RawRequest, secret: &Secret) -> Result<(), Rejection> {
    let id = request.header("webhook-id").unwrap_or_default();
    let timestamp = request.header("webhook-timestamp").unwrap_or_default();
    let unix_seconds = fields::parse_unix_seconds(timestamp).filter(|_| !id.is_empty()).ok_or_else(|| {
        invalid_signature("A signed request also needs the headers webhook-id and webhook-timestamp (unix seconds).")
    })?;
    let mut mac = HmacSha256::new_from_slice(&signing_key(secret))
        .map_err(|_| invalid_signature("The configured generic secret cannot be used as an HMAC key."))?;
    for part in [id.as_bytes(), b".", timestamp.as_bytes(), b".", &request.body] {
        mac.update(part);
    }
    let expected = mac.finalize().into_bytes();
    let signatures = request.header("webhook-signature").unwrap_or_default();
    // Fold over every entry (no early exit) so timing does not reveal which one matched.
    let matched = v1_signatures(signatures).fold(false, |any, candidate| bool::from(candidate.ct_eq(&expected)) | any);
    if !matched {
        return Err(invalid_signature(
            "No v1 entry of webhook-signature matches; sign '{webhook-id}.{webhook-timestamp}.{body}' with the whsec_ secret configured as BRIDGE_GENERIC_SECRET.",
        ));
    }
    if !fields::timestamp_is_fresh(unix_seconds, request.received_at, MAX_CLOCK_SKEW_SECONDS) {
        return Err(Rejection::unauthorized(
            "stale_timestamp",
            "The webhook-timestamp is more than 5 minutes away from the bridge's clock; replays are refused. Check the sender's clock if this repeats.",
        ));
    }
    Ok(())
}

/// `whsec_<base64>` decodes to the key. A secret without the prefix (or whose remainder is not
/// base64) is used as raw bytes, which is what a hand-rolled sender would naturally do.
fn signing_key(secret: &Secret) -> Vec<u8> {
    let raw = secret.expose();
    raw.strip_prefix("whsec_")
        .and_then(|encoded| BASE64.decode(encoded).ok())
        .unwrap_or_else(|| raw.as_bytes().to_vec())
}

/// The decoded `v1` signatures of the header; other versions (`v1a`, ...) and junk are skipped.
fn v1_signatures(header: &str) -> impl Iterator<Item = Vec<u8>> + '_ {
    header
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| BASE64.decode(encoded).ok())
}

fn invalid_signature(message: &str) -> Rejection {
    Rejection::unauthorized("invalid_signature", message)
}

// ---------------------------------------------------------------------------------------------
// Request shape

/// Tool names end up in tag names: letters, digits, space, `-`, `_`, `.`, 1-40 characters,
/// not starting or ending with a space.
fn validate_tool(tool: &str) -> Result<(), Rejection> {
    let allowed = |c: char| c.is_alphabetic() || c.is_ascii_digit() || matches!(c, ' ' | '-' | '_' | '.');
    let length = tool.chars().count();
    let valid = (1..=MAX_TOOL_NAME_CHARS).contains(&length) && tool.trim() == tool && tool.chars().all(allowed);
    if valid {
        return Ok(());
    }
    Err(Rejection::unprocessable(
        "invalid_tool",
        "The tool name in /hooks/generic/{tool} must be 1 to 40 letters, digits, spaces, '-', '_' or '.', without leading or trailing spaces.",
        "tool",
    ))
}

/// The event objects of a body, and whether they came as an array (error paths then say `[i].`).
struct Elements {
    items: Vec<Map<String, Value>>,
    from_array: bool,
}

/// One event object, or a non-empty array of at most 100 of them.
fn read_elements(body: &[u8]) -> Result<Elements, Rejection> {
    let document = decode::json(body)?;
    let items = match document {
        Value::Object(object) => return Ok(Elements { items: vec![object], from_array: false }),
        Value::Array(items) => items,
        _ => return Err(Rejection::malformed("The body must be one event object or an array of event objects.")),
    };
    if items.is_empty() {
        return Err(Rejection::new(
            RejectionKind::Unprocessable,
            "no_events",
            "The array is empty; send at least one event.",
        ));
    }
    if items.len() > MAX_EVENTS_PER_REQUEST {
        return Err(Rejection::new(
            RejectionKind::Unprocessable,
            "too_many_events",
            format!(
                "A request may carry at most {MAX_EVENTS_PER_REQUEST} events; split the batch into several requests."
            ),
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::Object(object) => Ok(object),
            _ => Err(Rejection::malformed(format!("Element [{index}] of the array is not an event object."))
                .with_field(format!("[{index}]"))),
        })
        .collect::<Result<_, _>>()
        .map(|items| Elements { items, from_array: true })
}

// ---------------------------------------------------------------------------------------------
// Events

/// What every event of one request shares.
struct Batch<'a> {
    source: &'a Source,
    request: &'a RawRequest,
    len: usize,
    from_array: bool,
}

impl Batch<'_> {
    fn event(&self, index: usize, element: &Map<String, Value>) -> Result<WebinarEvent, Rejection> {
        let at = FieldPath { prefix: self.path_prefix(index) };
        let kind = read_kind(element, &at)?;
        let contact = read_contact(element, &at)?;
        let webinar = read_webinar(element, &at)?;
        let mut facts = read_facts(element, &at)?;
        if kind == EventKind::Engaged {
            facts.engagement = Some(read_engagement(element, &at)?);
        }
        let occurred_at = optional_time(element, "occurred_at", &at)?.unwrap_or(self.request.received_at);
        Ok(WebinarEvent {
            schema: EVENT_SCHEMA_VERSION,
            event_id: self.event_id(index, element, &at)?,
            source: self.source.clone(),
            kind,
            occurred_at,
            received_at: self.request.received_at,
            contact,
            webinar,
            facts,
        })
    }

    /// `[2].` for element 2 of an array body (even a one-element one), nothing for an object.
    fn path_prefix(&self, index: usize) -> String {
        if self.from_array { format!("[{index}].") } else { String::new() }
    }

    /// The element's `event_id`; else the `webhook-id` header (`:{index}` appended in a batch
    /// of several); else a hash of the element's canonical JSON. All three are stable across
    /// redeliveries of the same request, and a sender's id is scoped to the tool
    /// (`generic:<tool>:<id>`): two tools that happen to use the same id send two events.
    fn event_id(&self, index: usize, element: &Map<String, Value>, at: &FieldPath) -> Result<EventId, Rejection> {
        if let Some(raw) = element.get("event_id").filter(|value| !value.is_null()) {
            return raw.as_str().and_then(EventId::from_sender).map(|id| self.scoped(id.as_str())).ok_or_else(|| {
                Rejection::unprocessable(
                    "invalid_event_id",
                    format!("{} must be 1 to 128 printable ASCII characters without spaces.", at.show("event_id")),
                    at.of("event_id"),
                )
            });
        }
        if let Some(webhook_id) = self.request.header("webhook-id").map(str::trim).filter(|id| !id.is_empty()) {
            let per_element = if self.len > 1 { format!("{webhook_id}:{index}") } else { webhook_id.to_owned() };
            return Ok(self.scoped(&per_element));
        }
        // The tool is part of the hash so the same body sent for two tools stays two events.
        let canonical = canonical_json(&Value::Object(element.clone()));
        Ok(EventId::hashed(self.source, &[self.source.key().as_bytes(), canonical.as_bytes()]))
    }
}

/// Characters a tool name keeps in a scoped id; everything else is percent-encoded, so the
/// mapping is one-to-one and the id stays printable ASCII (what SQS takes as a dedup id).
const TOOL_ID_ESCAPES: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

impl Batch<'_> {
    /// `generic:<tool>:<sender id>`; one too long (or odd) for SQS is hashed with the tool
    /// instead, which is just as stable and just as scoped.
    fn scoped(&self, sender_id: &str) -> EventId {
        let tool = percent_encoding::utf8_percent_encode(self.source.tool_name(), TOOL_ID_ESCAPES);
        EventId::from_sender(&format!("generic:{tool}:{sender_id}")).unwrap_or_else(|| {
            EventId::hashed(self.source, &[self.source.key().as_bytes(), b"sender-id", sender_id.as_bytes()])
        })
    }
}

/// Names a body field in errors: `contact.email`, or `[2].contact.email` inside an array.
struct FieldPath {
    prefix: String,
}

impl FieldPath {
    fn of(&self, field: &str) -> String {
        format!("{}{field}", self.prefix)
    }

    /// The field for a message: "'contact.email'" or "'[2].contact.email'".
    fn show(&self, field: &str) -> String {
        format!("'{}'", self.of(field))
    }
}

fn read_kind(element: &Map<String, Value>, at: &FieldPath) -> Result<EventKind, Rejection> {
    const KINDS: &str =
        "registered, cancelled, attended, left_early, fully_attended, no_show, replay_watched, purchased, engaged";
    let Some(raw) = element.get("kind").and_then(Value::as_str) else {
        return Err(Rejection::unprocessable(
            "missing_kind",
            format!("{} is required and must be one of {KINDS}.", at.show("kind")),
            at.of("kind"),
        ));
    };
    raw.trim().parse().map_err(|_| {
        Rejection::unprocessable(
            "unknown_kind",
            format!("{} is not a known event kind; use one of {KINDS}.", at.show("kind")),
            at.of("kind"),
        )
    })
}

fn read_contact(element: &Map<String, Value>, at: &FieldPath) -> Result<ContactInfo, Rejection> {
    let contact = required_object(element, "contact", "contact.email", at)?;
    let email_field = at.of("contact.email");
    let raw_email = optional_text(contact, "email", "contact.email", at)?.ok_or_else(|| {
        Rejection::unprocessable(
            "missing_email",
            format!("{} is required: the contact's e-mail address.", at.show("contact.email")),
            email_field.clone(),
        )
    })?;
    let email = Email::parse(&raw_email).map_err(|error| {
        Rejection::unprocessable(
            "invalid_email",
            format!("{} is not a usable e-mail address: {error}.", at.show("contact.email")),
            email_field,
        )
    })?;
    Ok(ContactInfo {
        email,
        first_name: optional_text(contact, "first_name", "contact.first_name", at)?,
        last_name: optional_text(contact, "last_name", "contact.last_name", at)?,
        phone: optional_text(contact, "phone", "contact.phone", at)?,
    })
}

fn read_webinar(element: &Map<String, Value>, at: &FieldPath) -> Result<WebinarInfo, Rejection> {
    let webinar = required_object(element, "webinar", "webinar.id", at)?;
    let id = optional_text(webinar, "id", "webinar.id", at)?.ok_or_else(|| {
        Rejection::unprocessable(
            "missing_webinar",
            format!("{} is required: the webinar's id in your tool (a string or a number).", at.show("webinar.id")),
            at.of("webinar.id"),
        )
    })?;
    Ok(WebinarInfo {
        id,
        name: optional_text(webinar, "name", "webinar.name", at)?,
        session_id: optional_text(webinar, "session_id", "webinar.session_id", at)?,
        starts_at: optional_time(webinar, "starts_at", &FieldPath { prefix: at.of("webinar.") })?,
        timezone: optional_text(webinar, "timezone", "webinar.timezone", at)?,
        join_url: optional_text(webinar, "join_url", "webinar.join_url", at)?,
        replay_url: optional_text(webinar, "replay_url", "webinar.replay_url", at)?,
        duration_minutes: optional_minutes(webinar, "duration_minutes", "webinar.duration_minutes", at)?,
    })
}

fn read_facts(element: &Map<String, Value>, at: &FieldPath) -> Result<Facts, Rejection> {
    Ok(Facts {
        intervals: Vec::new(),
        minutes_attended: optional_minutes(element, "minutes_attended", "minutes_attended", at)?,
        purchase_amount: optional_amount(element, at)?,
        registrant_id: None,
        fields: read_extra_fields(element, at)?,
        engagement: None,
    })
}

/// The `label` an `engaged` event requires: it names a tag of its own.
fn read_engagement(element: &Map<String, Value>, at: &FieldPath) -> Result<String, Rejection> {
    let raw = optional_text(element, "label", "label", at)?.ok_or_else(|| {
        Rejection::unprocessable(
            "missing_label",
            format!(
                "{} is required for kind engaged: a short name of what the person did, for example \"Clicked Offer\".",
                at.show("label")
            ),
            at.of("label"),
        )
    })?;
    engagement_label(&raw).map_err(|error| {
        Rejection::unprocessable("invalid_label", format!("{}: {error}.", at.show("label")), at.of("label"))
    })
}

/// The values a marketer may map beyond the basics (domain::fields): links in `webinar`, the
/// person's SMS number, UTM source, consent and job in `contact`, and the `custom` map.
fn read_extra_fields(element: &Map<String, Value>, at: &FieldPath) -> Result<BTreeMap<String, String>, Rejection> {
    let mut out = BTreeMap::new();
    if let Some(Value::Object(webinar)) = element.get("webinar") {
        for name in ["reschedule_url", "cancel_url", "thank_you_url"] {
            if let Some(value) = optional_text(webinar, name, &format!("webinar.{name}"), at)? {
                out.insert(name.to_owned(), value);
            }
        }
    }
    if let Some(Value::Object(contact)) = element.get("contact") {
        for name in
            ["sms_number", "utm_source", "utm_medium", "utm_campaign", "gdpr_status", "organization", "job_title"]
        {
            if let Some(value) = optional_text(contact, name, &format!("contact.{name}"), at)? {
                out.insert(name.to_owned(), value);
            }
        }
        if let Some(date) = optional_time(contact, "gdpr_date", &FieldPath { prefix: at.of("contact.") })? {
            out.insert("gdpr_date".to_owned(), date.to_rfc3339());
        }
    }
    match element.get("custom") {
        None | Some(Value::Null) => {}
        Some(Value::Object(custom)) => {
            for (name, value) in custom {
                let field = format!("custom.{name}");
                let text = match value {
                    Value::Null => None,
                    Value::String(_) | Value::Number(_) | Value::Bool(_) => fields::scalar_text(value),
                    _ => {
                        return Err(Rejection::unprocessable(
                            "invalid_field",
                            format!("{} must be a string, a number or a boolean.", at.show(&field)),
                            at.of(&field),
                        ));
                    }
                };
                let Some(key) = custom_fact_key(name) else {
                    return Err(Rejection::unprocessable(
                        "invalid_field",
                        format!("{} needs a name with at least one letter or digit.", at.show(&field)),
                        at.of(&field),
                    ));
                };
                if let Some(text) = text.map(|text| text.trim().to_owned()).filter(|text| !text.is_empty()) {
                    out.insert(key, text);
                }
            }
        }
        Some(_) => {
            return Err(Rejection::unprocessable(
                "invalid_field",
                format!("{} must be an object of name -> value.", at.show("custom")),
                at.of("custom"),
            ));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Typed field readers: absent or null means "not given"; a wrong type is a 422 naming the field.

fn required_object<'a>(
    element: &'a Map<String, Value>,
    key: &str,
    missing_field: &str,
    at: &FieldPath,
) -> Result<&'a Map<String, Value>, Rejection> {
    match element.get(key) {
        Some(Value::Object(object)) => Ok(object),
        None | Some(Value::Null) => Err(missing_object(key, missing_field, at)),
        Some(_) => {
            Err(Rejection::unprocessable("invalid_field", format!("{} must be an object.", at.show(key)), at.of(key)))
        }
    }
}

fn missing_object(key: &str, missing_field: &str, at: &FieldPath) -> Rejection {
    let code = if key == "contact" { "missing_email" } else { "missing_webinar" };
    Rejection::unprocessable(code, format!("{} is required.", at.show(missing_field)), at.of(missing_field))
}

/// A trimmed, non-empty string; numbers are accepted and written as decimal text.
fn optional_text(
    object: &Map<String, Value>,
    key: &str,
    field: &str,
    at: &FieldPath,
) -> Result<Option<String>, Rejection> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.trim().to_owned()).filter(|text| !text.is_empty())),
        Some(Value::Number(number)) => Ok(Some(fields::number_text(number))),
        Some(_) => Err(Rejection::unprocessable(
            "invalid_field",
            format!("{} must be a string.", at.show(field)),
            at.of(field),
        )),
    }
}

/// An RFC 3339 time (`2026-01-15T17:00:00Z` or with an offset).
fn optional_time(object: &Map<String, Value>, key: &str, at: &FieldPath) -> Result<Option<DateTime<Utc>>, Rejection> {
    let invalid = || {
        Rejection::unprocessable(
            if key == "occurred_at" { "invalid_occurred_at" } else { "invalid_time" },
            format!("{} must be an RFC 3339 time such as 2026-01-15T17:00:00Z.", at.show(key)),
            at.of(key),
        )
    };
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(raw)) => {
            DateTime::parse_from_rfc3339(raw.trim()).map(|time| Some(time.with_timezone(&Utc))).map_err(|_| invalid())
        }
        Some(_) => Err(invalid()),
    }
}

/// A whole number of minutes, as a JSON number or a string of digits.
fn optional_minutes(
    object: &Map<String, Value>,
    key: &str,
    field: &str,
    at: &FieldPath,
) -> Result<Option<u32>, Rejection> {
    let minutes = match object.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(number)) => number.as_u64(),
        Some(Value::String(raw)) => raw.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    minutes.and_then(|minutes| u32::try_from(minutes).ok()).map(Some).ok_or_else(|| {
        Rejection::unprocessable(
            "invalid_minutes",
            format!("{} must be a whole, non-negative number of minutes.", at.show(field)),
            at.of(field),
        )
    })
}

/// `purchase_amount`: a number (`49.9`) or a string (`"49,90 €"`), kept in cents.
fn optional_amount(element: &Map<String, Value>, at: &FieldPath) -> Result<Option<Cents>, Rejection> {
    let cents = match element.get("purchase_amount") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(number)) => number_to_cents(number),
        Some(Value::String(raw)) => Cents::parse_lenient(raw),
        Some(_) => None,
    };
    cents.map(Some).ok_or_else(|| {
        Rejection::unprocessable(
            "invalid_purchase_amount",
            format!("{} must be an amount such as 49.90 or \"49,90 €\".", at.show("purchase_amount")),
            at.of("purchase_amount"),
        )
    })
}

/// Exact for integers; fractions round to the nearest cent (49.99 is not exact in binary).
fn number_to_cents(number: &serde_json::Number) -> Option<Cents> {
    if let Some(whole) = number.as_i64() {
        return whole.checked_mul(100).map(Cents);
    }
    let cents = number.as_f64()? * 100.0;
    // Beyond 2^53 a float no longer holds whole cents exactly; such amounts are not real.
    (cents.is_finite() && cents.abs() < 9.0e15).then(|| Cents(cents.round() as i64))
}

/// JSON with object keys sorted at every level, so the same event hashes the same whatever
/// key order the sender's serializer used.
fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(object) => {
            let mut entries: Vec<(&String, &Value)> = object.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (position, (key, item)) in entries.into_iter().enumerate() {
                if position > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (position, item) in items.iter().enumerate() {
                if position > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names_are_checked() {
        for tool in ["Livestorm", "Webinar Geek", "go-to_webinar.v2", "Webinaris Ü", &"x".repeat(40)] {
            assert!(validate_tool(tool).is_ok(), "{tool}");
        }
        for tool in ["", " lead", "trail ", "a/b", "<b>", &"x".repeat(41), "a\tb"] {
            assert_eq!(validate_tool(tool).unwrap_err().code, "invalid_tool", "{tool:?}");
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"d":[1,{"y":2,"x":1}],"c":"é"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"c":"é","d":[1,{"x":1,"y":2}]},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(canonical_json(&a), r#"{"a":{"c":"é","d":[1,{"x":1,"y":2}]},"b":1}"#);
    }

    #[test]
    fn numeric_amounts_become_cents() {
        let cents = |raw: &str| number_to_cents(&serde_json::from_str(raw).unwrap());
        assert_eq!(cents("49"), Some(Cents(4900)));
        assert_eq!(cents("49.99"), Some(Cents(4999)));
        assert_eq!(cents("0.1"), Some(Cents(10)));
        assert_eq!(cents("1e300"), None);
    }

    #[test]
    fn keys_without_the_whsec_prefix_are_raw_bytes() {
        assert_eq!(signing_key(&Secret::new("whsec_aGVsbG8=")), b"hello");
        assert_eq!(signing_key(&Secret::new("plain-secret")), b"plain-secret");
    }
}
