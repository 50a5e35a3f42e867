//! The Zoom API (`reference/webinar-platforms.md` 2.3 and 2.5): Server-to-Server
//! OAuth tokens, the participants report, absentees and registrants, with
//! `next_page_token` pages.

use std::collections::BTreeMap;
use std::time::Instant;

use base64::Engine as _;
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

use crate::data::{ZoomParticipant, ZoomRegistrant, ZoomWebinar};
use crate::reply::Reply;
use crate::state::{SimState, TokenCheck};

/// Zoom's largest `page_size`.
const MAX_PAGE_SIZE: usize = 300;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ZoomEndpoint {
    Token,
    /// The raw (still percent-encoded) path segment.
    Participants(String),
    Absentees(String),
    Registrants(String),
    /// `GET /v2/users/{userId}/webinars` (the raw user id, usually `me`).
    ListWebinars(String),
    /// `GET /v2/past_webinars/{webinarId}/instances`.
    Instances(String),
}

impl ZoomEndpoint {
    pub fn template(&self) -> &'static str {
        match self {
            Self::Token => "/oauth/token",
            Self::Participants(_) => "/v2/report/webinars/{uuid}/participants",
            Self::Absentees(_) => "/v2/past_webinars/{uuid}/absentees",
            Self::Registrants(_) => "/v2/webinars/{id}/registrants",
            Self::ListWebinars(_) => "/v2/users/{userId}/webinars",
            Self::Instances(_) => "/v2/past_webinars/{id}/instances",
        }
    }
}

fn error(status: u16, code: u32, message: &str) -> Reply {
    Reply::json(status, json!({"code": code, "message": message}))
}

/// Zoom's per-second rate-limit answer, with `Retry-After`.
pub(crate) fn too_many_requests(endpoint: &ZoomEndpoint, retry_after_seconds: u64) -> Reply {
    let category = match endpoint {
        ZoomEndpoint::Participants(_) => "Heavy",
        _ => "Medium",
    };
    error(429, 429, "You have reached the maximum per-second rate limit for this API. Try again later.")
        .with_header("retry-after", retry_after_seconds.to_string())
        .with_header("x-ratelimit-category", category.to_owned())
        .with_header("x-ratelimit-type", "QPS".to_owned())
}

pub(crate) fn handle(
    state: &mut SimState,
    endpoint: &ZoomEndpoint,
    params: &BTreeMap<String, String>,
    authorization: Option<&str>,
    now: Instant,
) -> Reply {
    if *endpoint == ZoomEndpoint::Token {
        return token(state, params, authorization, now);
    }
    let bearer = authorization.and_then(|value| {
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    match bearer.map(|token| state.check_token(token, now)) {
        Some(TokenCheck::Valid) => {}
        Some(TokenCheck::Expired) => return error(401, 124, "Access token is expired."),
        Some(TokenCheck::Unknown) | None => return error(401, 124, "Invalid access token."),
    }
    match endpoint {
        ZoomEndpoint::Token => token(state, params, authorization, now),
        ZoomEndpoint::Participants(raw) => match resolve_occurrence(state, raw) {
            Ok(webinar) => {
                let with_registrant_id =
                    params.get("include_fields").is_some_and(|f| f.split(',').any(|f| f.trim() == "registrant_id"));
                let rows: Vec<Value> =
                    webinar.participants.iter().map(|p| participant_row(p, with_registrant_id)).collect();
                let scope = format!("participants:{}:{with_registrant_id}", webinar.uuid);
                page(state, params, scope, rows, "participants", now)
            }
            Err(reply) => reply,
        },
        ZoomEndpoint::Absentees(raw) => match resolve_occurrence(state, raw) {
            Ok(webinar) => {
                let rows: Vec<Value> = webinar.absentees.iter().map(|r| registrant_row(r, webinar)).collect();
                let scope = format!("absentees:{}", webinar.uuid);
                page(state, params, scope, rows, "registrants", now)
            }
            Err(reply) => reply,
        },
        ZoomEndpoint::Registrants(raw) => registrants(state, raw, params, now),
        ZoomEndpoint::ListWebinars(user) => list_webinars(state, user, params, now),
        ZoomEndpoint::Instances(raw) => instances(state, raw),
    }
}

fn oauth_error(status: u16, reason: &str, error: &str) -> Reply {
    Reply::json(status, json!({"reason": reason, "error": error}))
}

/// `POST /oauth/token` with `grant_type=account_credentials&account_id=...` (form or query)
/// and `Authorization: Basic base64(client_id:client_secret)`.
fn token(state: &mut SimState, params: &BTreeMap<String, String>, authorization: Option<&str>, now: Instant) -> Reply {
    let credentials = authorization
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, encoded)| base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let expected = &state.config.zoom;
    let client_ok = credentials
        .as_deref()
        .and_then(|c| c.split_once(':'))
        .is_some_and(|(id, secret)| id == expected.client_id && secret == expected.client_secret);
    if !client_ok {
        return oauth_error(401, "Invalid client_id or client_secret", "invalid_client");
    }
    match params.get("grant_type").map(String::as_str) {
        Some("account_credentials") => {}
        None | Some("") => return oauth_error(400, "Missing grant type", "invalid_request"),
        Some(_) => return oauth_error(400, "unsupported grant type", "unsupported_grant_type"),
    }
    match params.get("account_id") {
        Some(account) if *account == expected.account_id => {}
        Some(_) => return oauth_error(400, "Invalid account_id", "invalid_request"),
        None => return oauth_error(400, "Missing account_id", "invalid_request"),
    }
    let access_token = state.issue_token(now);
    Reply::ok(json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": state.knobs.zoom_token_ttl_seconds,
        "scope": "report:read:admin webinar:read:admin",
        "api_url": state.base_url,
    }))
}

/// Decodes a webinar id or uuid path segment as Zoom does: a uuid that starts
/// with `/` or contains `//` is only found when double-encoded; sent encoded
/// once, its `%2F` splits the path and nothing is found.
pub fn decode_uuid(raw: &str) -> Option<String> {
    let once = percent_decode_str(raw).decode_utf8().ok()?.into_owned();
    if once.contains('/') {
        return None;
    }
    if once.contains('%') {
        return Some(percent_decode_str(&once).decode_utf8().ok()?.into_owned());
    }
    Some(once)
}

fn not_found(id: &str) -> Reply {
    error(404, 3001, &format!("Webinar does not exist or has expired: {id}."))
}

/// A past occurrence by uuid, or by webinar id (then the latest occurrence).
fn resolve_occurrence<'a>(state: &'a SimState, raw: &str) -> Result<&'a ZoomWebinar, Reply> {
    let Some(id) = decode_uuid(raw) else {
        return Err(not_found(raw));
    };
    let webinars = &state.config.data.zoom.webinars;
    if let Some(webinar) = webinars.iter().find(|w| w.uuid == id) {
        return Ok(webinar);
    }
    webinars.iter().filter(|w| w.id == id).max_by(|a, b| a.start_time.cmp(&b.start_time)).ok_or_else(|| not_found(&id))
}

fn page_size(state: &SimState, params: &BTreeMap<String, String>) -> Result<usize, Reply> {
    match params.get("page_size").map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(state.knobs.zoom_default_page_size.min(MAX_PAGE_SIZE)),
        Some(raw) => match raw.parse::<usize>() {
            Ok(size) if size >= 1 => Ok(size.min(MAX_PAGE_SIZE)),
            _ => Err(error(400, 300, &format!("Invalid field: page_size {raw:?}."))),
        },
    }
}

/// One page of `rows` under `key`, with Zoom's page fields.
fn page(
    state: &mut SimState,
    params: &BTreeMap<String, String>,
    scope: String,
    rows: Vec<Value>,
    key: &str,
    now: Instant,
) -> Reply {
    let size = match page_size(state, params) {
        Ok(size) => size,
        Err(reply) => return reply,
    };
    let offset = match params.get("next_page_token").map(|t| t.trim()).filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => match state.page_offset(token, &scope, now) {
            Some(offset) => offset,
            None => return error(400, 300, "The next page token is invalid or expired."),
        },
    };
    let total = rows.len();
    let end = offset.saturating_add(size).min(total);
    let next_page_token = if end < total { state.issue_page_token(scope, end, now) } else { String::new() };
    let items: Vec<Value> = rows.into_iter().skip(offset).take(size).collect();
    let mut body = serde_json::Map::new();
    body.insert("page_count".to_owned(), Value::from(total.div_ceil(size)));
    body.insert("page_size".to_owned(), Value::from(size));
    body.insert("total_records".to_owned(), Value::from(total));
    body.insert("next_page_token".to_owned(), Value::String(next_page_token));
    body.insert(key.to_owned(), Value::Array(items));
    Reply::ok(Value::Object(body))
}

fn participant_row(participant: &ZoomParticipant, with_registrant_id: bool) -> Value {
    let mut row = json!({
        "id": participant.id.clone().unwrap_or_default(),
        "user_id": participant.user_id.clone().unwrap_or_default(),
        "name": participant.name,
        "user_email": participant.user_email,
        "join_time": participant.join_time,
        "leave_time": participant.leave_time,
        "duration": participant.duration,
        "failover": false,
        "status": participant.status.clone().unwrap_or_else(|| "in_meeting".to_owned()),
        "customer_key": "",
        "participant_user_id": "",
    });
    if with_registrant_id && let Value::Object(row) = &mut row {
        row.insert("registrant_id".to_owned(), Value::String(participant.registrant_id.clone().unwrap_or_default()));
    }
    row
}

fn registrant_row(registrant: &ZoomRegistrant, webinar: &ZoomWebinar) -> Value {
    json!({
        "id": registrant.id,
        "email": registrant.email,
        "first_name": registrant.first_name,
        "last_name": registrant.last_name.clone().unwrap_or_default(),
        "address": "", "city": "", "country": "", "zip": "", "state": "", "phone": "",
        "industry": "", "org": "", "job_title": "", "purchasing_time_frame": "",
        "role_in_purchase_process": "", "no_of_employees": "", "comments": "",
        "custom_questions": [],
        "status": registrant.status(),
        "create_time": registrant.create_time.clone().unwrap_or_else(|| webinar.start_time.clone()),
        "join_url": registrant.join_url.clone().unwrap_or_else(|| format!("https://zoom.us/w/{}?tk={}", webinar.id, registrant.id)),
    })
}

/// `GET /v2/webinars/{id}/registrants?status=approved`: the registrants of every
/// occurrence of the webinar (a uuid is not accepted here), once each.
fn registrants(state: &mut SimState, raw: &str, params: &BTreeMap<String, String>, now: Instant) -> Reply {
    let Some(id) = decode_uuid(raw) else {
        return not_found(raw);
    };
    let status = params.get("status").map(|s| s.trim()).filter(|s| !s.is_empty()).unwrap_or("approved").to_owned();
    if !matches!(status.as_str(), "approved" | "pending" | "denied") {
        return error(400, 300, &format!("Invalid field: status {status:?}; use approved, pending or denied."));
    }
    let occurrences: Vec<&ZoomWebinar> = state.config.data.zoom.webinars.iter().filter(|w| w.id == id).collect();
    if occurrences.is_empty() {
        return not_found(&id);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut rows = Vec::new();
    for webinar in &occurrences {
        for registrant in &webinar.registrants {
            if registrant.status() == status && seen.insert(registrant.id.clone()) {
                rows.push(registrant_row(registrant, webinar));
            }
        }
    }
    let scope = format!("registrants:{id}:{status}");
    page(state, params, scope, rows, "registrants", now)
}

/// `GET /v2/users/me/webinars`: one entry per webinar id (its latest occurrence).
fn list_webinars(state: &mut SimState, user: &str, params: &BTreeMap<String, String>, now: Instant) -> Reply {
    if user != "me" && user != state.config.zoom.account_id {
        return error(404, 1001, &format!("User does not exist: {user}."));
    }
    let mut latest: BTreeMap<&str, &ZoomWebinar> = BTreeMap::new();
    for webinar in state.config.data.zoom.webinars.iter().filter(|webinar| !webinar.unlisted) {
        let entry = latest.entry(webinar.id.as_str()).or_insert(webinar);
        if webinar.start_time > entry.start_time {
            *entry = webinar;
        }
    }
    let rows: Vec<Value> = latest
        .values()
        .map(|w| {
            json!({
                "uuid": w.uuid,
                "id": w.id.parse::<u64>().map_or_else(|_| Value::String(w.id.clone()), Value::from),
                "host_id": "sim-host",
                "topic": w.topic,
                "type": state.config.data.zoom.webinar_type(&w.id),
                "start_time": w.start_time,
                "duration": w.duration,
                "timezone": w.timezone.clone().unwrap_or_else(|| "UTC".to_owned()),
                "created_at": w.start_time,
                "join_url": format!("https://zoom.us/j/{}", w.id),
            })
        })
        .collect();
    page(state, params, format!("webinars:{user}"), rows, "webinars", now)
}

/// `GET /v2/past_webinars/{id}/instances`: the occurrences (uuid, start time) of a webinar.
fn instances(state: &SimState, raw: &str) -> Reply {
    let Some(id) = decode_uuid(raw) else {
        return not_found(raw);
    };
    let mut occurrences: Vec<&ZoomWebinar> = state.config.data.zoom.webinars.iter().filter(|w| w.id == id).collect();
    if occurrences.is_empty() {
        return not_found(&id);
    }
    occurrences.sort_by(|a, b| a.start_time.cmp(&b.start_time));
    let webinars: Vec<Value> =
        occurrences.iter().map(|w| json!({"uuid": w.uuid, "start_time": w.start_time})).collect();
    Reply::ok(json!({ "webinars": webinars }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_decode_as_zoom_does() {
        assert_eq!(decode_uuid("k7Zq9XvRTn2wYb3cQp1Lmg==").as_deref(), Some("k7Zq9XvRTn2wYb3cQp1Lmg=="));
        assert_eq!(decode_uuid("k7Zq9XvRTn2wYb3cQp1Lmg%3D%3D").as_deref(), Some("k7Zq9XvRTn2wYb3cQp1Lmg=="));
        // Starts with `/`: only the double-encoded form is found.
        assert_eq!(decode_uuid("%252Fab%252F%252Fc%253D%253D").as_deref(), Some("/ab//c=="));
        assert_eq!(decode_uuid("%2Fab%2F%2Fc%3D%3D"), None);
    }
}
