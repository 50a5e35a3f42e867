//! The normalized webinar event: what every source turns a webhook into (DESIGN 3).
//!
//! This is also the body of a queued message, so it is plain serde data with a schema version.

use super::email::Email;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// Version of the queued event document; bump when the shape changes incompatibly.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// Where an event came from. The generic source names its own tool, which is used in tag names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "platform", rename_all = "snake_case")]
pub enum Source {
    Webinarjam,
    Everwebinar,
    Zoom,
    Generic { tool: String },
}

impl Source {
    /// The `{tool}` of the tag template.
    pub fn tool_name(&self) -> &str {
        match self {
            Source::Webinarjam => "WebinarJam",
            Source::Everwebinar => "EverWebinar",
            Source::Zoom => "Zoom",
            Source::Generic { tool } => tool,
        }
    }

    /// Stable machine key, used in contact keys and event-id hashes.
    pub fn key(&self) -> String {
        match self {
            Source::Webinarjam => "webinarjam".to_owned(),
            Source::Everwebinar => "everwebinar".to_owned(),
            Source::Zoom => "zoom".to_owned(),
            Source::Generic { tool } => format!("generic:{tool}"),
        }
    }
}

/// What happened to the registrant (DESIGN 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Registered,
    Cancelled,
    Attended,
    LeftEarly,
    FullyAttended,
    NoShow,
    ReplayWatched,
    Purchased,
    /// An engagement with a short label (`Clicked Offer`): a sticky tag of its own (DESIGN 4).
    Engaged,
}

impl EventKind {
    pub const ALL: [EventKind; 9] = [
        EventKind::Registered,
        EventKind::Cancelled,
        EventKind::Attended,
        EventKind::LeftEarly,
        EventKind::FullyAttended,
        EventKind::NoShow,
        EventKind::ReplayWatched,
        EventKind::Purchased,
        EventKind::Engaged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Registered => "registered",
            EventKind::Cancelled => "cancelled",
            EventKind::Attended => "attended",
            EventKind::LeftEarly => "left_early",
            EventKind::FullyAttended => "fully_attended",
            EventKind::NoShow => "no_show",
            EventKind::ReplayWatched => "replay_watched",
            EventKind::Purchased => "purchased",
            EventKind::Engaged => "engaged",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown event kind {0:?}; expected one of registered, cancelled, attended, left_early, fully_attended, no_show, replay_watched, purchased, engaged"
)]
pub struct UnknownKind(pub String);

impl FromStr for EventKind {
    type Err = UnknownKind;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == raw)
            .ok_or_else(|| UnknownKind(raw.chars().take(64).collect()))
    }
}

/// Stable identity of one event across redeliveries; the idempotency and SQS deduplication key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    /// Maximum length SQS accepts for a deduplication id.
    pub const MAX_LEN: usize = 128;

    /// `<source>:<sha256 hex>` of the given parts, each length-prefixed so that
    /// concatenations cannot collide.
    pub fn hashed(source: &Source, parts: &[&[u8]]) -> Self {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        let prefix = match source {
            Source::Generic { .. } => "generic".to_owned(),
            other => other.key(),
        };
        Self(format!("{prefix}:{}", hex::encode(hasher.finalize())))
    }

    /// An id supplied by the sender (Standard Webhooks `webhook-id` or the body's `event_id`).
    /// Only printable ASCII that SQS accepts in a deduplication id, at most 128 characters.
    pub fn from_sender(raw: &str) -> Option<Self> {
        let valid = !raw.is_empty() && raw.len() <= Self::MAX_LEN && raw.bytes().all(|b| b.is_ascii_graphic());
        valid.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The person the event is about. Only the e-mail is required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactInfo {
    pub email: Email,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

impl ContactInfo {
    pub fn new(email: Email) -> Self {
        Self { email, first_name: None, last_name: None, phone: None }
    }
}

/// The webinar (and session) the event belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebinarInfo {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_minutes: Option<u32>,
}

impl WebinarInfo {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: None,
            session_id: None,
            starts_at: None,
            timezone: None,
            join_url: None,
            replay_url: None,
            duration_minutes: None,
        }
    }
}

/// A stretch of live attendance. `end` is unknown while the participant is still in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Interval {
    pub start: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTime<Utc>>,
}

/// An amount of money in hundredths, which is also KlickTipp's decimal field format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cents(pub i64);

impl Cents {
    /// Parses amounts as platforms send them: `49`, `49.9`, `49.99`, `"49,99"`, `"$1,049.00"`,
    /// `"1.049,00 €"`. `None` for anything that is not clearly an amount.
    pub fn parse_lenient(raw: &str) -> Option<Self> {
        let cleaned: String =
            raw.trim().chars().filter(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | '-')).collect();
        if cleaned.is_empty() || !cleaned.chars().any(|c| c.is_ascii_digit()) {
            return None;
        }
        let negative = cleaned.starts_with('-');
        let unsigned = cleaned.trim_start_matches('-');
        if unsigned.contains('-') {
            return None;
        }
        // The last separator followed by one or two digits is the decimal point; every other
        // separator groups thousands.
        let (whole, fraction) = match unsigned.rfind(['.', ',']) {
            Some(pos) if (1..=2).contains(&(unsigned.len() - pos - 1)) => (&unsigned[..pos], &unsigned[pos + 1..]),
            _ => (unsigned, ""),
        };
        let whole_digits: String = whole.chars().filter(char::is_ascii_digit).collect();
        let whole_value: i64 = if whole_digits.is_empty() { 0 } else { whole_digits.parse().ok()? };
        let fraction_value: i64 = match fraction.len() {
            0 => 0,
            1 => fraction.parse::<i64>().ok()? * 10,
            _ => fraction.parse().ok()?,
        };
        let cents = whole_value.checked_mul(100)?.checked_add(fraction_value)?;
        Some(Cents(if negative { -cents } else { cents }))
    }
}

/// Measurements that come with some kinds of event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intervals: Vec<Interval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutes_attended: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_amount: Option<Cents>,
    /// The platform's registrant id (Zoom), kept so a later join can be matched to its registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registrant_id: Option<String>,
    /// The label of an `engaged` event (`Clicked Offer`), validated by [`engagement_label`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engagement: Option<String>,
    /// Further values a marketer may map (`reschedule_url`, `utm_source`, `gdpr_date` as RFC 3339,
    /// `custom.<name>` ...), keyed by their logical name (domain::fields).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub fields: std::collections::BTreeMap<String, String>,
}

/// Longest engagement label: it is the last part of a tag name, like a state word.
pub const MAX_ENGAGEMENT_LABEL_CHARS: usize = 60;

/// Why an engagement label cannot name a tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngagementLabelError {
    #[error("the engagement label is empty; name what the person did, for example \"Clicked Offer\"")]
    Empty,
    #[error(
        "the engagement label is longer than {MAX_ENGAGEMENT_LABEL_CHARS} characters; use a short label such as \"Clicked Offer\""
    )]
    TooLong,
    #[error("the engagement label may not contain ']' or control characters, since it becomes part of a tag name")]
    Forbidden,
}

/// An engagement label as it names a tag: trimmed, whitespace runs collapsed, at most
/// [`MAX_ENGAGEMENT_LABEL_CHARS`] characters, no `]` (it closes the template's brackets) and no
/// control characters.
pub fn engagement_label(raw: &str) -> Result<String, EngagementLabelError> {
    let label = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if label.is_empty() {
        return Err(EngagementLabelError::Empty);
    }
    if label.chars().count() > MAX_ENGAGEMENT_LABEL_CHARS {
        return Err(EngagementLabelError::TooLong);
    }
    if label.chars().any(|c| c == ']' || c.is_control()) {
        return Err(EngagementLabelError::Forbidden);
    }
    Ok(label)
}

/// One normalized webinar event (DESIGN 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebinarEvent {
    #[serde(default = "schema_version")]
    pub schema: u32,
    pub event_id: EventId,
    pub source: Source,
    pub kind: EventKind,
    /// When it happened according to the platform, or when we received it if the platform
    /// sends no time (WebinarJam, EverWebinar).
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub contact: ContactInfo,
    pub webinar: WebinarInfo,
    #[serde(default)]
    pub facts: Facts,
}

fn schema_version() -> u32 {
    EVENT_SCHEMA_VERSION
}

impl WebinarEvent {
    /// The state this event belongs to: (source, webinar id, email).
    pub fn contact_key(&self) -> ContactKey {
        ContactKey {
            email: self.contact.email.clone(),
            webinar: WebinarKey { source: self.source.clone(), webinar_id: self.webinar.id.clone() },
        }
    }

    /// Fingerprint of what the event says, without the times we stamp on receipt, so a redelivery
    /// matches and a different payload under a reused id is caught.
    pub fn fingerprint(&self) -> String {
        let content = serde_json::json!({
            "source": self.source,
            "kind": self.kind,
            "contact": self.contact,
            "webinar": self.webinar,
            "facts": self.facts,
        });
        hex::encode(Sha256::digest(content.to_string().as_bytes()))
    }
}

/// A webinar as seen by one source: half of the contact key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WebinarKey {
    pub source: Source,
    pub webinar_id: String,
}

/// The key state is kept under (DESIGN 3): (source, webinar id, email).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContactKey {
    pub email: Email,
    pub webinar: WebinarKey,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>().unwrap(), kind);
        }
        assert!("attendeded".parse::<EventKind>().is_err());
    }

    #[test]
    fn engagement_labels_are_short_and_bracket_free() {
        assert_eq!(engagement_label("  Clicked \t Offer ").as_deref(), Ok("Clicked Offer"));
        assert_eq!(engagement_label("   "), Err(EngagementLabelError::Empty));
        assert_eq!(engagement_label(&"x".repeat(61)), Err(EngagementLabelError::TooLong));
        assert!(engagement_label(&"ä".repeat(60)).is_ok(), "characters, not bytes");
        assert_eq!(engagement_label("Offer] [x"), Err(EngagementLabelError::Forbidden));
    }

    #[test]
    fn hashed_ids_are_prefixed_and_stable() {
        let a = EventId::hashed(&Source::Zoom, &[b"body"]);
        let b = EventId::hashed(&Source::Zoom, &[b"body"]);
        assert_eq!(a, b);
        assert!(a.as_str().starts_with("zoom:"));
        assert_eq!(a.as_str().len(), 5 + 64);
        assert_ne!(EventId::hashed(&Source::Zoom, &[b"ab", b"c"]), EventId::hashed(&Source::Zoom, &[b"a", b"bc"]));
    }

    #[test]
    fn sender_ids_must_fit_sqs() {
        assert!(EventId::from_sender("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W").is_some());
        assert!(EventId::from_sender("").is_none());
        assert!(EventId::from_sender("has space").is_none());
        assert!(EventId::from_sender(&"x".repeat(129)).is_none());
    }

    #[test]
    fn amounts_parse_as_platforms_send_them() {
        for (raw, cents) in [
            ("49", 4900),
            ("49.9", 4990),
            ("49.99", 4999),
            ("49,99", 4999),
            ("$1,049.00", 104_900),
            ("1.049,00 €", 104_900),
            ("0", 0),
            ("1,000", 100_000),
        ] {
            assert_eq!(Cents::parse_lenient(raw), Some(Cents(cents)), "{raw}");
        }
        assert_eq!(Cents::parse_lenient("free"), None);
        assert_eq!(Cents::parse_lenient(""), None);
    }

    #[test]
    fn event_document_round_trips() {
        let event = WebinarEvent {
            schema: EVENT_SCHEMA_VERSION,
            event_id: EventId::hashed(&Source::Zoom, &[b"x"]),
            source: Source::Generic { tool: "Livestorm".into() },
            kind: EventKind::Attended,
            occurred_at: "2026-01-15T17:02:00Z".parse().unwrap(),
            received_at: "2026-01-15T17:02:01Z".parse().unwrap(),
            contact: ContactInfo::new(Email::parse("erika@example.com").unwrap()),
            webinar: WebinarInfo::new("w1"),
            facts: Facts::default(),
        };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<WebinarEvent>(&json).unwrap(), event);
    }
}
