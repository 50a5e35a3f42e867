//! Mapping logical fields to KlickTipp data fields, in KlickTipp's value formats
//! (`reference/klicktipp-api.md` section 4: Unix seconds, URLs with a scheme, integers,
//! decimals x100).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A value as KlickTipp wants it in `fields`: text, or a number for dates, counts and decimals.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FieldValue {
    Number(i64),
    Text(String),
}

impl From<&str> for FieldValue {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}

impl From<String> for FieldValue {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

impl From<i64> for FieldValue {
    fn from(number: i64) -> Self {
        Self::Number(number)
    }
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Number(number) => write!(f, "{number}"),
            FieldValue::Text(text) => f.write_str(text),
        }
    }
}

/// The bridge's own names for what it can write into KlickTipp (DESIGN 8 `BRIDGE_FIELD_MAP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogicalField {
    FirstName,
    LastName,
    Phone,
    WebinarName,
    WebinarStart,
    JoinUrl,
    ReplayUrl,
    MinutesAttended,
    PurchaseAmount,
    RescheduleUrl,
    CancelUrl,
    ThankYouUrl,
    /// The session's calendar day in the webinar's time zone (a KlickTipp Date field).
    SessionDate,
    /// The session's wall-clock start in the webinar's time zone (a KlickTipp Time field).
    SessionTime,
    /// The mobile number for SMS, for KlickTipp's global `fieldMobilePhone`.
    SmsNumber,
    UtmSource,
    UtmMedium,
    UtmCampaign,
    GdprStatus,
    GdprDate,
    Organization,
    JobTitle,
}

/// How a logical field's value must be written, which also tells the simulator the field's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldFormat {
    Line,
    UnixSeconds,
    Url,
    Integer,
    /// Hundredths as an integer.
    Decimal,
    /// A calendar day as the Unix seconds of its midnight (UTC).
    Date,
    /// Seconds since midnight, 0 to 86399.
    Time,
}

impl LogicalField {
    pub const ALL: [LogicalField; 22] = [
        LogicalField::FirstName,
        LogicalField::LastName,
        LogicalField::Phone,
        LogicalField::WebinarName,
        LogicalField::WebinarStart,
        LogicalField::JoinUrl,
        LogicalField::ReplayUrl,
        LogicalField::MinutesAttended,
        LogicalField::PurchaseAmount,
        LogicalField::RescheduleUrl,
        LogicalField::CancelUrl,
        LogicalField::ThankYouUrl,
        LogicalField::SessionDate,
        LogicalField::SessionTime,
        LogicalField::SmsNumber,
        LogicalField::UtmSource,
        LogicalField::UtmMedium,
        LogicalField::UtmCampaign,
        LogicalField::GdprStatus,
        LogicalField::GdprDate,
        LogicalField::Organization,
        LogicalField::JobTitle,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LogicalField::FirstName => "first_name",
            LogicalField::LastName => "last_name",
            LogicalField::Phone => "phone",
            LogicalField::WebinarName => "webinar_name",
            LogicalField::WebinarStart => "webinar_start",
            LogicalField::JoinUrl => "join_url",
            LogicalField::ReplayUrl => "replay_url",
            LogicalField::MinutesAttended => "minutes_attended",
            LogicalField::PurchaseAmount => "purchase_amount",
            LogicalField::RescheduleUrl => "reschedule_url",
            LogicalField::CancelUrl => "cancel_url",
            LogicalField::ThankYouUrl => "thank_you_url",
            LogicalField::SessionDate => "session_date",
            LogicalField::SessionTime => "session_time",
            LogicalField::SmsNumber => "sms_number",
            LogicalField::UtmSource => "utm_source",
            LogicalField::UtmMedium => "utm_medium",
            LogicalField::UtmCampaign => "utm_campaign",
            LogicalField::GdprStatus => "gdpr_status",
            LogicalField::GdprDate => "gdpr_date",
            LogicalField::Organization => "organization",
            LogicalField::JobTitle => "job_title",
        }
    }

    pub fn format(self) -> FieldFormat {
        match self {
            LogicalField::FirstName
            | LogicalField::LastName
            | LogicalField::Phone
            | LogicalField::WebinarName
            | LogicalField::SmsNumber
            | LogicalField::UtmSource
            | LogicalField::UtmMedium
            | LogicalField::UtmCampaign
            | LogicalField::GdprStatus
            | LogicalField::Organization
            | LogicalField::JobTitle => FieldFormat::Line,
            LogicalField::WebinarStart | LogicalField::GdprDate => FieldFormat::UnixSeconds,
            LogicalField::SessionDate => FieldFormat::Date,
            LogicalField::SessionTime => FieldFormat::Time,
            LogicalField::JoinUrl
            | LogicalField::ReplayUrl
            | LogicalField::RescheduleUrl
            | LogicalField::CancelUrl
            | LogicalField::ThankYouUrl => FieldFormat::Url,
            LogicalField::MinutesAttended => FieldFormat::Integer,
            LogicalField::PurchaseAmount => FieldFormat::Decimal,
        }
    }
}

impl FromStr for LogicalField {
    type Err = FieldMapError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        LogicalField::ALL
            .into_iter()
            .find(|field| field.as_str() == raw)
            .ok_or_else(|| FieldMapError::UnknownLogicalField(raw.chars().take(40).collect()))
    }
}

/// Turns a URL as platforms send it into one KlickTipp's URL fields accept.
pub fn url_with_scheme(raw: &str) -> String {
    let trimmed = raw.trim();
    let lower = trimmed.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        trimmed.to_owned()
    } else {
        format!("https://{}", trimmed.trim_start_matches("//"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldMapError {
    #[error("is not a JSON object of logical field -> KlickTipp field key: {0}")]
    NotAnObject(String),
    #[error(
        "names an unknown logical field {0:?}; known: first_name, last_name, phone, webinar_name, webinar_start, join_url, replay_url, minutes_attended, purchase_amount, reschedule_url, cancel_url, thank_you_url, session_date, session_time, sms_number, utm_source, utm_medium, utm_campaign, gdpr_status, gdpr_date, organization, job_title, and custom.<name> for a custom value or question"
    )]
    UnknownLogicalField(String),
    #[error(
        "maps {logical} to {key:?}, which is not a KlickTipp field key (they look like fieldFirstName or field12345)"
    )]
    InvalidKey { logical: String, key: String },
    #[error("maps two logical fields to the same KlickTipp field {0:?}")]
    DuplicateKey(String),
}

/// The prefix of a logical name that writes a custom value: the generic body's `custom` map,
/// a Zoom custom question, a WebinarJam custom field.
pub const CUSTOM_PREFIX: &str = "custom.";

/// The key a custom value is stored and mapped under: its letters and digits, lower case, so
/// `custom.Company Size`, `company_size` and the Zoom question "Company size?" all meet.
pub fn custom_field_name(raw: &str) -> String {
    raw.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).take(64).collect()
}

/// The key under which an event's extra value for `field` is kept (`Facts::fields`).
pub fn custom_fact_key(raw_name: &str) -> Option<String> {
    let name = custom_field_name(raw_name);
    (!name.is_empty()).then(|| format!("{CUSTOM_PREFIX}{name}"))
}

/// Logical field -> KlickTipp field key. Only mapped fields are ever written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMap(BTreeMap<LogicalField, String>, BTreeMap<String, String>);

impl Default for FieldMap {
    /// DESIGN 8: first and last name go to KlickTipp's global name fields.
    fn default() -> Self {
        Self(
            BTreeMap::from([
                (LogicalField::FirstName, "fieldFirstName".to_owned()),
                (LogicalField::LastName, "fieldLastName".to_owned()),
            ]),
            BTreeMap::new(),
        )
    }
}

impl FieldMap {
    /// Parses `BRIDGE_FIELD_MAP`, e.g. `{"first_name":"fieldFirstName","webinar_start":"field12345"}`.
    /// A logical field mapped to `null` or `""` is not written.
    pub fn parse_json(raw: &str) -> Result<Self, FieldMapError> {
        let object: BTreeMap<String, Option<String>> =
            serde_json::from_str(raw).map_err(|error| FieldMapError::NotAnObject(error.to_string()))?;
        let mut map = BTreeMap::new();
        let mut custom = BTreeMap::new();
        for (logical, key) in object {
            let custom_name = logical
                .strip_prefix(CUSTOM_PREFIX)
                .map(|name| (name, custom_fact_key(name)))
                .map(|(name, fact_key)| fact_key.ok_or_else(|| FieldMapError::UnknownLogicalField(name.to_owned())))
                .transpose()?;
            let field = match custom_name {
                Some(_) => None,
                None => Some(logical.parse::<LogicalField>()?),
            };
            let Some(key) = key.map(|key| key.trim().to_owned()).filter(|key| !key.is_empty()) else {
                continue;
            };
            let own_sms_field = field == Some(LogicalField::SmsNumber) && key == KLICKTIPP_SMS_NUMBER;
            if !own_sms_field && !is_klicktipp_field_key(&key) {
                return Err(FieldMapError::InvalidKey { logical, key: key.chars().take(60).collect() });
            }
            if map.values().chain(custom.values()).any(|existing| existing == &key) {
                return Err(FieldMapError::DuplicateKey(key));
            }
            match (field, custom_name) {
                (Some(field), _) => {
                    map.insert(field, key);
                }
                (None, Some(fact_key)) => {
                    custom.insert(fact_key, key);
                }
                (None, None) => {}
            }
        }
        Ok(Self(map, custom))
    }

    /// `custom.<name>` entries: the stored fact key (`custom.<normalized name>`) -> KlickTipp key.
    pub fn custom(&self) -> impl Iterator<Item = (&str, &str)> {
        self.1.iter().map(|(name, key)| (name.as_str(), key.as_str()))
    }

    pub fn key(&self, field: LogicalField) -> Option<&str> {
        self.0.get(&field).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (LogicalField, &str)> {
        self.0.iter().map(|(field, key)| (*field, key.as_str()))
    }
}

/// KlickTipp's own SMS field: not a `field…` data field but the subscriber's `smsnumber`
/// parameter (`reference/klicktipp-api.md`). Only `sms_number` may be mapped to it; the upsert
/// sends it beside `email` ([`crate::klicktipp::UpsertSubscriber`]).
pub const KLICKTIPP_SMS_NUMBER: &str = "smsnumber";

fn is_klicktipp_field_key(key: &str) -> bool {
    key.strip_prefix("field").is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_map_writes_names_only() {
        let map = FieldMap::default();
        assert_eq!(map.key(LogicalField::FirstName), Some("fieldFirstName"));
        assert_eq!(map.key(LogicalField::LastName), Some("fieldLastName"));
        assert_eq!(map.key(LogicalField::JoinUrl), None);
    }

    #[test]
    fn parses_and_validates_the_map() {
        let map = FieldMap::parse_json(r#"{"first_name":"fieldFirstName","webinar_start":"field12345","phone":null}"#)
            .unwrap();
        assert_eq!(map.key(LogicalField::WebinarStart), Some("field12345"));
        assert_eq!(map.key(LogicalField::Phone), None);
        assert!(matches!(FieldMap::parse_json("[]"), Err(FieldMapError::NotAnObject(_))));
        assert!(matches!(FieldMap::parse_json(r#"{"nickname":"field1"}"#), Err(FieldMapError::UnknownLogicalField(_))));
        assert!(matches!(FieldMap::parse_json(r#"{"first_name":"Vorname"}"#), Err(FieldMapError::InvalidKey { .. })));
        assert!(matches!(
            FieldMap::parse_json(r#"{"first_name":"field1","last_name":"field1"}"#),
            Err(FieldMapError::DuplicateKey(_))
        ));
    }

    #[test]
    fn custom_names_and_new_fields_parse_and_unknown_names_list_the_known_ones() {
        let map = FieldMap::parse_json(
            r#"{"session_date":"field1","sms_number":"fieldMobilePhone","custom.Company Size":"field2"}"#,
        )
        .unwrap();
        assert_eq!(map.key(LogicalField::SessionDate), Some("field1"));
        assert_eq!(map.key(LogicalField::SmsNumber), Some("fieldMobilePhone"));
        let own = FieldMap::parse_json(r#"{"sms_number":"smsnumber"}"#).unwrap();
        assert_eq!(own.key(LogicalField::SmsNumber), Some(KLICKTIPP_SMS_NUMBER));
        assert!(matches!(FieldMap::parse_json(r#"{"first_name":"smsnumber"}"#), Err(FieldMapError::InvalidKey { .. })));
        assert_eq!(map.custom().collect::<Vec<_>>(), [("custom.companysize", "field2")]);
        assert!(matches!(
            FieldMap::parse_json(r#"{"custom.a":"field1","custom.b":"field1"}"#),
            Err(FieldMapError::DuplicateKey(_))
        ));
        assert!(matches!(
            FieldMap::parse_json(r#"{"custom.--":"field1"}"#),
            Err(FieldMapError::UnknownLogicalField(_))
        ));
        let message = FieldMap::parse_json(r#"{"utm_term":"field1"}"#).unwrap_err().to_string();
        for field in LogicalField::ALL {
            assert!(message.contains(field.as_str()), "{message} names {}", field.as_str());
        }
        assert!(message.contains("custom.<name>"), "{message}");
        assert_eq!(custom_fact_key("Company size?"), Some("custom.companysize".to_owned()));
        assert_eq!(LogicalField::SessionTime.format(), FieldFormat::Time);
        assert_eq!(LogicalField::GdprDate.format(), FieldFormat::UnixSeconds);
    }

    #[test]
    fn urls_get_a_scheme() {
        assert_eq!(url_with_scheme("event.webinarjam.com/live/x"), "https://event.webinarjam.com/live/x");
        assert_eq!(url_with_scheme("//zoom.us/w/1"), "https://zoom.us/w/1");
        assert_eq!(url_with_scheme("HTTP://x.example"), "HTTP://x.example");
    }

    #[test]
    fn values_serialize_as_klicktipp_expects() {
        assert_eq!(serde_json::to_string(&FieldValue::Number(1_715_603_400)).unwrap(), "1715603400");
        assert_eq!(serde_json::to_string(&FieldValue::Text("Erika".into())).unwrap(), "\"Erika\"");
    }
}
