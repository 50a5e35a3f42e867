//! The `platform.json` document (DESIGN 11): what each platform's API would
//! return. Public so the CLI's `simulate --platform` and tests load the same
//! file. Unknown fields are ignored; ids and numbers are read leniently
//! (a number or a string holding one), as the real APIs send them.

use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// The whole document. Every platform is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PlatformData {
    pub webinarjam: JamAccount,
    pub everwebinar: JamAccount,
    pub zoom: ZoomAccount,
}

impl PlatformData {
    /// Parses a `platform.json` document.
    pub fn from_json(text: &str) -> anyhow::Result<Self> {
        serde_json::from_str(text).context("platform.json is not a valid platform document")
    }

    /// Reads and parses a `platform.json` file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read platform file {}", path.display()))?;
        Self::from_json(&text).with_context(|| format!("in {}", path.display()))
    }

    /// The account of a WebinarJam-API product.
    pub fn jam(&self, product: JamProduct) -> &JamAccount {
        match product {
            JamProduct::WebinarJam => &self.webinarjam,
            JamProduct::EverWebinar => &self.everwebinar,
        }
    }
}

/// The two products that share the WebinarJam API (base paths `/webinarjam`, `/everwebinar`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JamProduct {
    WebinarJam,
    EverWebinar,
}

impl JamProduct {
    pub const ALL: [JamProduct; 2] = [JamProduct::WebinarJam, JamProduct::EverWebinar];

    /// The base path segment, `webinarjam` or `everwebinar`.
    pub fn path(self) -> &'static str {
        match self {
            Self::WebinarJam => "webinarjam",
            Self::EverWebinar => "everwebinar",
        }
    }

    pub fn from_path(segment: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|product| product.path() == segment)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JamAccount {
    pub webinars: Vec<JamWebinar>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JamWebinar {
    #[serde(deserialize_with = "lenient_string")]
    pub webinar_id: String,
    /// Derived from the id when absent.
    #[serde(deserialize_with = "lenient_opt_string")]
    pub webinar_hash: Option<String>,
    pub name: String,
    /// Defaults to `name`.
    #[serde(deserialize_with = "lenient_opt_string")]
    pub title: Option<String>,
    pub description: String,
    /// `live` (WebinarJam) or `automated` (EverWebinar) when absent.
    #[serde(deserialize_with = "lenient_opt_string")]
    pub r#type: Option<String>,
    pub timezone: String,
    /// The webinar length the API does not return (a setting in real use); never served.
    #[serde(deserialize_with = "lenient_opt_u64")]
    pub duration_minutes: Option<u64>,
    pub schedules: Vec<JamSchedule>,
    pub presenters: Vec<Value>,
    pub registrants: Vec<JamRegistrant>,
}

impl JamWebinar {
    pub fn hash(&self) -> String {
        self.webinar_hash.clone().unwrap_or_else(|| format!("h{:0>8}", self.webinar_id))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JamSchedule {
    #[serde(deserialize_with = "lenient_u64")]
    pub schedule: u64,
    /// `YYYY-MM-DD HH:MM` in the webinar's time zone.
    pub date: String,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub comment: Option<String>,
}

/// A registrant record (`reference/webinar-platforms.md` 1.2). Absent
/// optional fields are not served.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JamRegistrant {
    #[serde(deserialize_with = "lenient_u64")]
    pub lead_id: u64,
    pub email: String,
    pub first_name: String,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub last_name: Option<String>,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub phone_country_code: Option<String>,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub phone: Option<String>,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub ip: Option<String>,
    #[serde(deserialize_with = "lenient_u64")]
    pub schedule: u64,
    /// `YYYY-MM-DD HH:MM:SS`.
    pub signup_date: String,
    /// 0 no, 1 attended, 2 did not attend, 3 left before, 4 stayed after the set time.
    #[serde(deserialize_with = "lenient_u64")]
    pub attended_live: u64,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub date_live: Option<String>,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub entered_live: Option<String>,
    /// `HH:MM:SS` in the room.
    #[serde(deserialize_with = "lenient_opt_string")]
    pub time_live: Option<String>,
    #[serde(deserialize_with = "lenient_u64")]
    pub purchased_live: u64,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub revenue_live: Option<String>,
    #[serde(deserialize_with = "lenient_u64")]
    pub attended_replay: u64,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub date_replay: Option<String>,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub time_replay: Option<String>,
    #[serde(deserialize_with = "lenient_u64")]
    pub purchased_replay: u64,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub revenue_replay: Option<String>,
    #[serde(deserialize_with = "lenient_opt_u64")]
    pub subscribed: Option<u64>,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub live_room: Option<String>,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub replay_room: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ZoomAccount {
    /// One entry per occurrence (`uuid`); occurrences of a recurring webinar share `id`.
    pub webinars: Vec<ZoomWebinar>,
}

impl ZoomAccount {
    /// The type the API reports for webinar `id`: the first explicit `type` of its occurrences,
    /// else 9 (recurring with a fixed time) when several occurrences share the id, else 5.
    pub fn webinar_type(&self, id: &str) -> u64 {
        let occurrences = || self.webinars.iter().filter(|webinar| webinar.id == id);
        occurrences().find_map(|webinar| webinar.webinar_type).unwrap_or(if occurrences().count() > 1 { 9 } else { 5 })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ZoomWebinar {
    #[serde(deserialize_with = "lenient_string")]
    pub id: String,
    pub uuid: String,
    pub topic: String,
    /// RFC 3339, UTC.
    pub start_time: String,
    /// Minutes.
    #[serde(deserialize_with = "lenient_u64")]
    pub duration: u64,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub timezone: Option<String>,
    /// Zoom's webinar type (5 single, 9 recurring with a fixed time); when absent, 9 for an id
    /// that several occurrences share and 5 otherwise ([`ZoomAccount::webinar_type`]).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub webinar_type: Option<u64>,
    /// Left out of `GET /users/me/webinars`, as Zoom lists scheduled webinars only: a webinar
    /// that ran is then found through its `webinar.ended` webhook alone.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unlisted: bool,
    pub registrants: Vec<ZoomRegistrant>,
    pub participants: Vec<ZoomParticipant>,
    pub absentees: Vec<ZoomRegistrant>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ZoomRegistrant {
    #[serde(deserialize_with = "lenient_string")]
    pub id: String,
    pub email: String,
    pub first_name: String,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub last_name: Option<String>,
    /// `approved` (the default), `pending` or `denied`.
    #[serde(deserialize_with = "lenient_opt_string")]
    pub status: Option<String>,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub create_time: Option<String>,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub join_url: Option<String>,
}

impl ZoomRegistrant {
    pub fn status(&self) -> &str {
        self.status.as_deref().unwrap_or("approved")
    }
}

/// One row per join (a rejoin is a second row).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ZoomParticipant {
    #[serde(deserialize_with = "lenient_opt_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub user_id: Option<String>,
    pub name: String,
    /// Empty when the participant was neither a registrant nor signed in.
    pub user_email: String,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub registrant_id: Option<String>,
    pub join_time: String,
    pub leave_time: String,
    /// Seconds.
    #[serde(deserialize_with = "lenient_u64")]
    pub duration: u64,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub status: Option<String>,
}

fn value_to_string(value: Value) -> Result<Option<String>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text)),
        Value::Number(number) => Ok(Some(number.to_string())),
        Value::Bool(flag) => Ok(Some(flag.to_string())),
        other => Err(format!("expected a string or a number, found {other}")),
    }
}

fn value_to_u64(value: Value) -> Result<Option<u64>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Number(number) => number
            .as_u64()
            .or_else(|| number.as_f64().filter(|f| *f >= 0.0 && f.fract() == 0.0).map(|f| f as u64))
            .map(Some)
            .ok_or_else(|| format!("expected a whole number >= 0, found {number}")),
        Value::String(text) if text.trim().is_empty() => Ok(None),
        Value::String(text) => {
            text.trim().parse().map(Some).map_err(|_| format!("expected a whole number >= 0, found {text:?}"))
        }
        Value::Bool(flag) => Ok(Some(u64::from(flag))),
        other => Err(format!("expected a number, found {other}")),
    }
}

fn lenient_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    value_to_string(Value::deserialize(deserializer)?).map(Option::unwrap_or_default).map_err(serde::de::Error::custom)
}

fn lenient_opt_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    value_to_string(Value::deserialize(deserializer)?).map_err(serde::de::Error::custom)
}

fn lenient_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    value_to_u64(Value::deserialize(deserializer)?).map(Option::unwrap_or_default).map_err(serde::de::Error::custom)
}

fn lenient_opt_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    value_to_u64(Value::deserialize(deserializer)?).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_numbers_as_strings_and_ignores_unknown_fields() {
        let data = PlatformData::from_json(
            r#"{"webinarjam":{"webinars":[{"webinar_id":123,"name":"M","schedules":[{"schedule":"45","date":"2026-02-10 9:00"}],
                "registrants":[{"lead_id":"5551","email":"e@x.de","first_name":"E","schedule":45,"attended_live":"1",
                "revenue_live":0,"whatever":[1]}]}]},"later":true}"#,
        )
        .expect("lenient document");
        let webinar = &data.webinarjam.webinars[0];
        assert_eq!(webinar.webinar_id, "123");
        assert_eq!(webinar.schedules[0].schedule, 45);
        let registrant = &webinar.registrants[0];
        assert_eq!((registrant.lead_id, registrant.attended_live), (5551, 1));
        assert_eq!(registrant.revenue_live.as_deref(), Some("0"));
    }

    #[test]
    fn refuses_a_word_where_a_number_belongs() {
        let error = PlatformData::from_json(r#"{"zoom":{"webinars":[{"id":"1","duration":"long"}]}}"#)
            .expect_err("not a number");
        assert!(format!("{error:#}").contains("long"), "{error:#}");
    }
}
