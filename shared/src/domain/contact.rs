//! One KlickTipp contact (one e-mail): the merged state of each of its webinars, what the bridge
//! has already applied in KlickTipp, and the desired KlickTipp view derived from both.

use super::email::Email;
use super::event::{WebinarEvent, WebinarKey};
use super::fields::{FieldFormat, FieldMap, FieldValue, LogicalField, url_with_scheme};
use super::problems::FieldProblems;
use super::state::{ContactState, FieldSlot, Stamped};
use super::tags::{TagTemplate, session_date, utc_offset};
use super::webinar_settings::WebinarSettingsSet;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub const DEFAULT_FULL_ATTENDANCE_PERCENT: u8 = 80;

/// The user's choices that shape what KlickTipp should show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub tag_template: TagTemplate,
    pub field_map: FieldMap,
    pub full_attendance_percent: u8,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            tag_template: TagTemplate::default(),
            field_map: FieldMap::default(),
            full_attendance_percent: DEFAULT_FULL_ATTENDANCE_PERCENT,
        }
    }
}

/// What the bridge knows KlickTipp holds for this contact, because it put it there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedView {
    /// The contact exists in KlickTipp (an upsert succeeded).
    #[serde(default)]
    pub known: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, FieldValue>,
    /// Names of the tags the bridge set and has not removed: the only tags it may ever remove.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub tags: BTreeSet<String>,
}

/// What KlickTipp should show for this contact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredContact {
    pub fields: BTreeMap<String, FieldValue>,
    pub tags: BTreeSet<String>,
}

/// Everything the bridge keeps per e-mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactRecord {
    pub email: Email,
    /// Keyed by (source, webinar id); stored as a list because JSON keys must be strings.
    #[serde(with = "webinar_map")]
    pub webinars: BTreeMap<WebinarKey, ContactState>,
    #[serde(default)]
    pub applied: AppliedView,
    /// Field values KlickTipp refused, by field key (DESIGN 6): shown to the user, not re-sent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub field_problems: FieldProblems,
}

impl ContactRecord {
    pub fn new(email: Email) -> Self {
        Self { email, webinars: BTreeMap::new(), applied: AppliedView::default(), field_problems: FieldProblems::new() }
    }

    /// Folds an event in. The event must belong to this contact's e-mail.
    pub fn apply(&mut self, event: &WebinarEvent) {
        debug_assert_eq!(event.contact.email, self.email);
        let key = event.contact_key().webinar;
        self.webinars.entry(key).or_default().apply(event);
    }

    /// Tags: every webinar's desired labels, named by the template. Fields: the person's fields
    /// by last writer across webinars; webinar fields from the webinar with the newest event,
    /// so the name, start and links in KlickTipp always describe one and the same webinar.
    pub fn desired(&self, settings: &Settings) -> DesiredContact {
        self.desired_with(settings, &WebinarSettingsSet::default())
    }

    /// [`Self::desired`] with per-webinar settings: a state mapped to an existing KlickTipp tag
    /// wants that tag (by its name) instead of the generated one.
    pub fn desired_with(&self, settings: &Settings, webinar_settings: &WebinarSettingsSet) -> DesiredContact {
        let mut desired = DesiredContact::default();
        for (key, state) in &self.webinars {
            let webinar_label = state.field(FieldSlot::WebinarName).unwrap_or(&key.webinar_id);
            let date = session_date(state.field(FieldSlot::WebinarStart), state.field(FieldSlot::Timezone));
            let name = state.field(FieldSlot::WebinarName);
            for label in state.desired_labels(settings.full_attendance_percent) {
                let tag = match webinar_settings.mapped_tag(&key.source.key(), &key.webinar_id, name, label) {
                    Some(mapped) => mapped.name,
                    None => settings.tag_template.render_session(key.source.tool_name(), webinar_label, date, label),
                };
                desired.tags.insert(tag);
            }
            for label in &state.engagements {
                let tag = settings.tag_template.render_engagement(key.source.tool_name(), webinar_label, date, label);
                desired.tags.insert(tag);
            }
        }
        let latest_webinar = self
            .webinars
            .iter()
            .max_by(|(key_a, a), (key_b, b)| a.last_event.cmp(&b.last_event).then_with(|| key_a.cmp(key_b)));
        for (logical, key) in settings.field_map.iter() {
            let value = match logical {
                LogicalField::FirstName => self.latest_contact_field(FieldSlot::FirstName),
                LogicalField::LastName => self.latest_contact_field(FieldSlot::LastName),
                LogicalField::Phone => self.latest_contact_field(FieldSlot::Phone),
                LogicalField::WebinarName => latest_webinar
                    .map(|(key, state)| state.field(FieldSlot::WebinarName).unwrap_or(&key.webinar_id).to_owned()),
                LogicalField::WebinarStart => {
                    latest_webinar.and_then(|(_, state)| state.field(FieldSlot::WebinarStart).map(str::to_owned))
                }
                LogicalField::JoinUrl => {
                    latest_webinar.and_then(|(_, state)| state.field(FieldSlot::JoinUrl).map(str::to_owned))
                }
                LogicalField::ReplayUrl => {
                    latest_webinar.and_then(|(_, state)| state.field(FieldSlot::ReplayUrl).map(str::to_owned))
                }
                LogicalField::MinutesAttended => {
                    latest_webinar.and_then(|(_, state)| state.minutes_attended()).map(|m| m.to_string())
                }
                LogicalField::PurchaseAmount => latest_webinar
                    .and_then(|(_, state)| state.purchase_amount.as_ref())
                    .map(|stamped| stamped.value.0.to_string()),
                LogicalField::SessionDate | LogicalField::SessionTime => latest_webinar.and_then(|(_, state)| {
                    let local =
                        session_local_start(state.field(FieldSlot::WebinarStart), state.field(FieldSlot::Timezone))?;
                    Some(if logical == LogicalField::SessionDate {
                        local.date().to_string()
                    } else {
                        local.time().format("%H:%M:%S").to_string()
                    })
                }),
                // Links belong to one session: the webinar with the newest event, like the join URL.
                LogicalField::RescheduleUrl | LogicalField::CancelUrl | LogicalField::ThankYouUrl => latest_webinar
                    .and_then(|(_, state)| state.extra_fields.get(logical.as_str()))
                    .map(|stamped| stamped.value.clone()),
                // The person's own details and consent: the newest value from any webinar.
                LogicalField::SmsNumber
                | LogicalField::UtmSource
                | LogicalField::UtmMedium
                | LogicalField::UtmCampaign
                | LogicalField::GdprStatus
                | LogicalField::GdprDate
                | LogicalField::Organization
                | LogicalField::JobTitle => self.latest_extra_field(logical.as_str()),
            };
            if let Some(formatted) = value.and_then(|raw| format_value(logical.format(), &raw)) {
                desired.fields.insert(key.to_owned(), formatted);
            }
        }
        for (name, key) in settings.field_map.custom() {
            if let Some(formatted) = self.latest_extra_field(name).and_then(|raw| format_value(FieldFormat::Line, &raw))
            {
                desired.fields.insert(key.to_owned(), formatted);
            }
        }
        desired
    }

    fn latest_extra_field(&self, name: &str) -> Option<String> {
        self.webinars
            .values()
            .filter_map(|state| state.extra_fields.get(name))
            .max_by(|a: &&Stamped<String>, b| a.stamp.cmp(&b.stamp))
            .map(|stamped| stamped.value.clone())
    }

    fn latest_contact_field(&self, slot: FieldSlot) -> Option<String> {
        self.webinars
            .values()
            .filter_map(|state| state.fields.get(&slot))
            .max_by(|a: &&Stamped<String>, b| a.stamp.cmp(&b.stamp))
            .map(|stamped| stamped.value.clone())
    }
}

/// Values in the state are kept as text; this is where they take KlickTipp's format.
fn format_value(format: FieldFormat, raw: &str) -> Option<FieldValue> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    match format {
        FieldFormat::Line => Some(FieldValue::Text(raw.to_owned())),
        FieldFormat::Url => Some(FieldValue::Text(url_with_scheme(raw))),
        FieldFormat::UnixSeconds => raw.parse::<DateTime<Utc>>().ok().map(|at| FieldValue::Number(at.timestamp())),
        FieldFormat::Integer | FieldFormat::Decimal => raw.parse::<i64>().ok().map(FieldValue::Number),
        FieldFormat::Date => raw
            .parse::<NaiveDate>()
            .ok()
            .map(|day| FieldValue::Number(day.and_time(NaiveTime::MIN).and_utc().timestamp())),
        FieldFormat::Time => {
            raw.parse::<NaiveTime>().ok().map(|time| FieldValue::Number(i64::from(time.num_seconds_from_midnight())))
        }
    }
}

/// The session's start as wall-clock time in the webinar's time zone (UTC when it has none).
fn session_local_start(start: Option<&str>, timezone: Option<&str>) -> Option<NaiveDateTime> {
    let start = DateTime::parse_from_rfc3339(start?.trim()).ok()?.with_timezone(&Utc);
    let Some(timezone) = timezone.map(str::trim).filter(|zone| !zone.is_empty()) else {
        return Some(start.naive_utc());
    };
    if let Ok(zone) = timezone.parse::<chrono_tz::Tz>() {
        return Some(start.with_timezone(&zone).naive_local());
    }
    Some(match utc_offset(timezone) {
        Some(offset) => start.with_timezone(&offset).naive_local(),
        None => start.naive_utc(),
    })
}

mod webinar_map {
    use super::{ContactState, WebinarKey};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    #[derive(Serialize, Deserialize)]
    struct Entry {
        webinar: WebinarKey,
        state: ContactState,
    }

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<WebinarKey, ContactState>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let entries: Vec<Entry> =
            map.iter().map(|(webinar, state)| Entry { webinar: webinar.clone(), state: state.clone() }).collect();
        entries.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<WebinarKey, ContactState>, D::Error> {
        let entries = Vec::<Entry>::deserialize(deserializer)?;
        let mut map: BTreeMap<WebinarKey, ContactState> = BTreeMap::new();
        for entry in entries {
            map.entry(entry.webinar).or_default().merge(&entry.state);
        }
        Ok(map)
    }
}
