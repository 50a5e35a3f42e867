//! The WebinarJam/EverWebinar API (`reference/webinar-platforms.md` 1.2):
//! `POST` form-encoded with `api_key`, answers `{"status":"success", ...}`.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use serde_json::{Map, Value, json};

use crate::data::{JamProduct, JamRegistrant, JamSchedule, JamWebinar};
use crate::reply::Reply;
use crate::state::SimState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JamEndpoint {
    Webinars,
    Webinar,
    Registrants,
}

impl JamEndpoint {
    pub fn from_path(segment: &str) -> Option<Self> {
        match segment {
            "webinars" => Some(Self::Webinars),
            "webinar" => Some(Self::Webinar),
            "registrants" => Some(Self::Registrants),
            _ => None,
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Self::Webinars => "webinars",
            Self::Webinar => "webinar",
            Self::Registrants => "registrants",
        }
    }
}

/// The platform's rate-limit answer: 429, plain text, no `Retry-After`.
pub(crate) fn too_many_requests() -> Reply {
    Reply::text(429, "Too many requests")
}

fn error(status: u16, message: &str) -> Reply {
    Reply::json(status, json!({"status": "error", "message": message}))
}

pub(crate) fn handle(
    state: &mut SimState,
    product: JamProduct,
    endpoint: JamEndpoint,
    params: &BTreeMap<String, String>,
) -> Reply {
    match params.get("api_key").map(String::as_str) {
        None | Some("") => return error(401, "The api_key parameter is required."),
        Some(key) if !state.config.api_keys.iter().any(|valid| valid == key) => {
            return error(401, "Invalid API key.");
        }
        Some(_) => {}
    }
    let lenient = state.knobs.jam_lenient_types;
    if endpoint == JamEndpoint::Webinars {
        let webinars: Vec<Value> =
            state.config.data.jam(product).webinars.iter().map(|w| webinar_summary(w, product, lenient)).collect();
        return Reply::ok(json!({"status": "success", "webinars": webinars}));
    }
    let webinar_id = match params.get("webinar_id").map(|id| id.trim()) {
        None | Some("") => return error(422, "The webinar_id parameter is required."),
        Some(id) => id.to_owned(),
    };
    let Some(webinar) = state.config.data.jam(product).webinars.iter().find(|w| w.webinar_id == webinar_id) else {
        return error(404, &format!("Webinar {webinar_id} was not found."));
    };
    match endpoint {
        JamEndpoint::Webinars | JamEndpoint::Webinar => {
            Reply::ok(json!({"status": "success", "webinar": webinar_details(webinar, product, lenient)}))
        }
        JamEndpoint::Registrants => registrants(state, product, webinar, params),
    }
}

fn webinar_summary(webinar: &JamWebinar, product: JamProduct, lenient: bool) -> Value {
    json!({
        "webinar_id": id_value(&webinar.webinar_id),
        "webinar_hash": webinar.hash(),
        "name": webinar.name,
        "title": webinar.title.clone().unwrap_or_else(|| webinar.name.clone()),
        "description": webinar.description,
        "type": webinar_type(webinar, product),
        "schedules": webinar.schedules.iter().map(|s| schedule_text(s, lenient)).collect::<Vec<_>>(),
        "timezone": webinar.timezone,
    })
}

fn webinar_details(webinar: &JamWebinar, product: JamProduct, lenient: bool) -> Value {
    let schedules: Vec<Value> = webinar
        .schedules
        .iter()
        .map(|s| {
            json!({
                "date": date_text(&s.date, lenient),
                "schedule": number(s.schedule, lenient),
                "comment": s.comment.clone().unwrap_or_default(),
            })
        })
        .collect();
    let hash = webinar.hash();
    json!({
        "webinar_id": id_value(&webinar.webinar_id),
        "webinar_hash": hash,
        "name": webinar.name,
        "title": webinar.title.clone().unwrap_or_else(|| webinar.name.clone()),
        "description": webinar.description,
        "type": webinar_type(webinar, product),
        "schedules": schedules,
        "timezone": webinar.timezone,
        "presenters": webinar.presenters,
        "registration_url": format!("https://event.webinarjam.com/register/{hash}"),
        "registration_type": "free",
        "registration_fee": 0,
    })
}

fn webinar_type(webinar: &JamWebinar, product: JamProduct) -> String {
    webinar.r#type.clone().unwrap_or_else(|| {
        match product {
            JamProduct::WebinarJam => "live",
            JamProduct::EverWebinar => "automated",
        }
        .to_owned()
    })
}

/// `"Tue, 10 Feb 2026, 7:00 PM"` for `2026-02-10 19:00`, as the list endpoint writes schedules.
fn schedule_text(schedule: &JamSchedule, lenient: bool) -> String {
    match NaiveDateTime::parse_from_str(&schedule.date, "%Y-%m-%d %H:%M") {
        Ok(at) => at.format("%a, %-d %b %Y, %-I:%M %p").to_string(),
        Err(_) => date_text(&schedule.date, lenient),
    }
}

/// A numeric id as a number (as the API sends `webinar_id`), otherwise as given.
fn id_value(id: &str) -> Value {
    id.parse::<u64>().map_or_else(|_| Value::String(id.to_owned()), Value::from)
}

/// A number, or the string of it when the API's loose typing is on.
fn number(value: u64, lenient: bool) -> Value {
    if lenient { Value::String(value.to_string()) } else { Value::from(value) }
}

/// `2026-02-10 09:00` -> `2026-02-10 9:00` when the loose typing is on.
pub(crate) fn date_text(date: &str, lenient: bool) -> String {
    if !lenient {
        return date.to_owned();
    }
    match date.split_once(' ') {
        Some((day, time)) if time.len() > 1 && time.starts_with('0') && time.as_bytes()[1].is_ascii_digit() => {
            format!("{day} {}", &time[1..])
        }
        _ => date.to_owned(),
    }
}

fn registrant_record(registrant: &JamRegistrant, webinar: &JamWebinar, lenient: bool) -> Value {
    let mut record = Map::new();
    let mut put = |key: &str, value: Value| {
        record.insert(key.to_owned(), value);
    };
    let text = |value: &Option<String>| value.clone().map_or(Value::Null, Value::String);
    put("lead_id", Value::from(registrant.lead_id));
    put("first_name", Value::String(registrant.first_name.clone()));
    put("last_name", Value::String(registrant.last_name.clone().unwrap_or_default()));
    put("phone_country_code", text(&registrant.phone_country_code));
    put("phone", text(&registrant.phone));
    put("email", Value::String(registrant.email.clone()));
    put("ip", text(&registrant.ip));
    put("webinar", Value::String(webinar.name.clone()));
    put("schedule", number(registrant.schedule, lenient));
    put("signup_date", Value::String(date_text(&registrant.signup_date, lenient)));
    put("attended_live", number(registrant.attended_live, lenient));
    put("date_live", registrant.date_live.as_deref().map_or(Value::Null, |d| Value::String(date_text(d, lenient))));
    put("entered_live", text(&registrant.entered_live));
    put("time_live", text(&registrant.time_live));
    put("purchased_live", number(registrant.purchased_live, lenient));
    put("revenue_live", Value::String(registrant.revenue_live.clone().unwrap_or_else(|| "0".to_owned())));
    put("attended_replay", number(registrant.attended_replay, lenient));
    put("date_replay", registrant.date_replay.as_deref().map_or(Value::Null, |d| Value::String(date_text(d, lenient))));
    put("time_replay", text(&registrant.time_replay));
    put("purchased_replay", number(registrant.purchased_replay, lenient));
    put("revenue_replay", Value::String(registrant.revenue_replay.clone().unwrap_or_else(|| "0".to_owned())));
    put("subscribed", number(registrant.subscribed.unwrap_or(1), lenient));
    put("live_room", text(&registrant.live_room));
    put("replay_room", text(&registrant.replay_room));
    Value::Object(record)
}

/// Parses an optional whole-number filter; `Err` names the parameter.
fn filter(params: &BTreeMap<String, String>, name: &str, max: u64) -> Result<u64, Reply> {
    match params.get(name).map(|v| v.trim()) {
        None | Some("") => Ok(0),
        Some(raw) => raw.parse::<u64>().ok().filter(|v| *v <= max).ok_or_else(|| {
            error(422, &format!("The {name} parameter must be a whole number from 0 to {max}, not {raw:?}."))
        }),
    }
}

/// 0 all, 1 attended (1, 3, 4), 2 did not (0, 2), 3 left before, 4 stayed after.
fn attendance_matches(filter: u64, attended: u64) -> bool {
    match filter {
        1 => matches!(attended, 1 | 3 | 4),
        2 => matches!(attended, 0 | 2),
        3 | 4 => attended == filter,
        _ => true,
    }
}

fn registrants(
    state: &SimState,
    product: JamProduct,
    webinar: &JamWebinar,
    params: &BTreeMap<String, String>,
) -> Reply {
    // `date_range` (0 all-time ... 8 last 30 days) is validated; every record counts as recent.
    let filters = [("attended_live", 4), ("attended_replay", 4), ("purchased", 2), ("date_range", 8)]
        .map(|(name, max)| filter(params, name, max));
    let [attended_live, attended_replay, purchased, _date_range] = match filters {
        [Ok(a), Ok(b), Ok(c), Ok(d)] => [a, b, c, d],
        [Err(reply), ..] | [_, Err(reply), ..] | [_, _, Err(reply), _] | [.., Err(reply)] => return reply,
    };
    let page = match params.get("page").map(|v| v.trim()) {
        None | Some("") => 1,
        Some(raw) => match raw.parse::<usize>() {
            Ok(page) if page >= 1 => page,
            _ => return error(422, &format!("The page parameter must be a whole number of at least 1, not {raw:?}.")),
        },
    };
    let schedule = match params.get("schedule_id").map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => None,
        Some(raw) => match raw.parse::<u64>() {
            Ok(schedule) => Some(schedule),
            Err(_) => return error(422, &format!("The schedule_id parameter must be a number, not {raw:?}.")),
        },
    };
    let search = params.get("search").map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty());
    let matching: Vec<&JamRegistrant> = webinar
        .registrants
        .iter()
        .filter(|r| schedule.is_none_or(|s| r.schedule == s))
        .filter(|r| attendance_matches(attended_live, r.attended_live))
        .filter(|r| attendance_matches(attended_replay, r.attended_replay))
        .filter(|r| {
            let bought = r.purchased_live > 0 || r.purchased_replay > 0;
            match purchased {
                1 => bought,
                2 => !bought,
                _ => true,
            }
        })
        .filter(|r| {
            search.as_ref().is_none_or(|needle| {
                r.email.to_lowercase().contains(needle)
                    || r.first_name.to_lowercase().contains(needle)
                    || r.last_name.as_deref().unwrap_or_default().to_lowercase().contains(needle)
            })
        })
        .collect();
    let per_page = state.knobs.jam_page_size;
    let lenient = state.knobs.jam_lenient_types;
    let start = (page - 1).saturating_mul(per_page);
    let data: Vec<Value> =
        matching.iter().skip(start).take(per_page).map(|r| registrant_record(r, webinar, lenient)).collect();
    let last_page = matching.len().div_ceil(per_page).max(1);
    let base = format!("{}/{}/registrants", state.base_url, product.path());
    let next_page_url = if page < last_page { Value::String(format!("{base}?page={}", page + 1)) } else { Value::Null };
    let prev_page_url = if page > 1 { Value::String(format!("{base}?page={}", page - 1)) } else { Value::Null };
    let from = if data.is_empty() { Value::Null } else { Value::from(start + 1) };
    let to = if data.is_empty() { Value::Null } else { Value::from(start + data.len()) };
    Reply::ok(json!({
        "status": "success",
        "registrants": {
            "current_page": page,
            "data": data,
            "first_page_url": format!("{base}?page=1"),
            "from": from,
            "last_page": last_page,
            "last_page_url": format!("{base}?page={last_page}"),
            "next_page_url": next_page_url,
            "path": base,
            "per_page": per_page,
            "prev_page_url": prev_page_url,
            "to": to,
            "total": matching.len(),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_lose_their_leading_zero_only_when_lenient() {
        assert_eq!(date_text("2026-02-10 09:00", true), "2026-02-10 9:00");
        assert_eq!(date_text("2026-02-10 19:00", true), "2026-02-10 19:00");
        assert_eq!(date_text("2026-02-10 09:00", false), "2026-02-10 09:00");
        assert_eq!(date_text("2026-02-01 00:12:00", true), "2026-02-01 0:12:00");
    }

    #[test]
    fn schedules_are_written_out_in_the_list() {
        let schedule = JamSchedule { schedule: 45, date: "2026-02-10 19:00".to_owned(), comment: None };
        assert_eq!(schedule_text(&schedule, true), "Tue, 10 Feb 2026, 7:00 PM");
    }
}
