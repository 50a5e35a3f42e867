//! The WebinarJam / EverWebinar API (`reference/webinar-platforms.md` 1.2): every call a
//! form-encoded `POST` with `api_key`, answers `{"status":"success", ...}`, at most 20 calls per
//! second per account. Every call goes through the account's [`FifoThrottle`].

use super::error::{Platform, PlatformError, short_message};
use super::http::{self, Answer, CallLog};
use super::lenient;
use super::throttle::FifoThrottle;
use crate::secret::Secret;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// The production API host; the product's path (`/webinarjam`, `/everwebinar`) is appended.
pub const DEFAULT_BASE_URL: &str = "https://api.webinarjam.com";

/// Upper bound on pages followed for one webinar (a paginator that never ends is a bug there).
const MAX_PAGES: u32 = 100_000;

/// A webinar as `/webinars` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WebinarSummary {
    #[serde(default, deserialize_with = "lenient::id_text")]
    pub webinar_id: String,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub timezone: Option<String>,
    /// Text like "Every day, 9:00 AM" in this listing; details come from `/webinar`.
    #[serde(default)]
    pub schedules: Vec<Value>,
}

/// One schedule of a webinar, from `/webinar`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Schedule {
    #[serde(default, deserialize_with = "lenient::id_text")]
    pub schedule: String,
    /// Local time in the webinar's zone, `YYYY-MM-DD H:MM`.
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub date: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub comment: Option<String>,
}

/// `/webinar`: details with schedules.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WebinarDetails {
    #[serde(default, deserialize_with = "lenient::id_text")]
    pub webinar_id: String,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub timezone: Option<String>,
    #[serde(default, deserialize_with = "schedules")]
    pub schedules: Vec<Schedule>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub registration_url: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub direct_live_room_url: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub direct_replay_room_url: Option<String>,
    /// Not in the real API (a webinar setting there); the simulator's `platform.json` carries it.
    #[serde(default, deserialize_with = "lenient::opt_integer")]
    pub duration_minutes: Option<i64>,
}

/// Schedules as objects; text entries (the listing's style) are skipped.
fn schedules<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<Schedule>, D::Error> {
    let values = Option::<Vec<Value>>::deserialize(deserializer)?.unwrap_or_default();
    Ok(values.into_iter().filter(Value::is_object).filter_map(|value| serde_json::from_value(value).ok()).collect())
}

/// One registrant record of `/registrants`. Types are loose on the wire; every field is read
/// leniently and an unreadable one is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct Registrant {
    #[serde(deserialize_with = "lenient::opt_text")]
    pub lead_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub email: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub first_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub last_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub phone_country_code: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub phone: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub schedule: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub date: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub signup_date: Option<String>,
    /// 0 all / 1 attended / 2 did not / 3 left early / 4 stayed.
    #[serde(deserialize_with = "lenient::opt_integer")]
    pub attended_live: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub date_live: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub entered_live: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub time_live: Option<String>,
    #[serde(deserialize_with = "lenient::opt_integer")]
    pub purchased_live: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub revenue_live: Option<String>,
    #[serde(deserialize_with = "lenient::opt_integer")]
    pub attended_replay: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub date_replay: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub time_replay: Option<String>,
    #[serde(deserialize_with = "lenient::opt_integer")]
    pub purchased_replay: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub revenue_replay: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub live_room: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub replay_room: Option<String>,
}

/// One page of `/registrants` (a Laravel-style paginator).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistrantsPage {
    pub current_page: u32,
    /// Present when the paginator tells it; lets the remaining pages be queued at once.
    pub last_page: Option<u32>,
    pub has_next: bool,
    pub registrants: Vec<Registrant>,
}

/// A client for one product (WebinarJam or EverWebinar) and one API key.
#[derive(Clone)]
pub struct GenesisClient {
    platform: Platform,
    http: reqwest::Client,
    base: String,
    api_key: Secret,
    throttle: Arc<FifoThrottle>,
    log: CallLog,
    request_timeout: std::time::Duration,
}

impl std::fmt::Debug for GenesisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenesisClient")
            .field("platform", &self.platform)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl GenesisClient {
    /// `base_url` is the API host (`https://api.webinarjam.com` or a simulator); the product's
    /// path is appended. Clients sharing an API key must share `throttle`.
    pub fn new(
        platform: Platform,
        base_url: &str,
        api_key: Secret,
        throttle: Arc<FifoThrottle>,
        log: CallLog,
    ) -> Result<Self, PlatformError> {
        let product = match platform {
            Platform::WebinarJam => "webinarjam",
            Platform::EverWebinar => "everwebinar",
            Platform::Zoom => return Err(PlatformError::NotConfigured { platform }),
        };
        let http = http::http_client().map_err(|error| PlatformError::Transport {
            platform,
            operation: "build client",
            detail: super::error::transport_detail(&error),
        })?;
        let base = format!("{}/{product}", base_url.trim_end_matches('/'));
        Ok(Self { platform, http, base, api_key, throttle, log, request_timeout: http::REQUEST_TIMEOUT })
    }

    /// Gives up on a call that has no answer after `timeout` (and retries it as a broken
    /// connection); 30 s by default.
    pub fn with_request_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    pub fn platform(&self) -> Platform {
        self.platform
    }

    pub fn call_log(&self) -> &CallLog {
        &self.log
    }

    /// `/webinars`: every webinar of the account.
    pub async fn webinars(&self) -> Result<Vec<WebinarSummary>, PlatformError> {
        let body = self.call("webinars", "webinars", &[], None).await?;
        let list = body.get("webinars").cloned().unwrap_or(Value::Array(Vec::new()));
        let values: Vec<Value> =
            serde_json::from_value(list).map_err(|_| self.invalid("webinars", "no webinars list"))?;
        Ok(values.into_iter().filter_map(|value| serde_json::from_value(value).ok()).collect())
    }

    /// `/webinar`: one webinar with its schedules.
    pub async fn webinar(&self, webinar_id: &str) -> Result<WebinarDetails, PlatformError> {
        let body = self.call("webinar", "webinar", &[("webinar_id", webinar_id)], Some(webinar_id)).await?;
        let details = body.get("webinar").cloned().ok_or_else(|| self.invalid("webinar", "no webinar object"))?;
        serde_json::from_value(details).map_err(|_| self.invalid("webinar", "the webinar object is not readable"))
    }

    /// One page (from 1) of `/registrants`, optionally for one schedule.
    pub async fn registrants_page(
        &self,
        webinar_id: &str,
        schedule: Option<&str>,
        page: u32,
    ) -> Result<RegistrantsPage, PlatformError> {
        let page_text = page.to_string();
        let mut params = vec![("webinar_id", webinar_id), ("page", page_text.as_str())];
        if let Some(schedule) = schedule {
            params.push(("schedule_id", schedule));
        }
        let body = self.call("registrants", "registrants", &params, Some(webinar_id)).await?;
        let paginator = body.get("registrants").ok_or_else(|| self.invalid("registrants", "no registrants object"))?;
        let data = match paginator {
            // Some answers put the records straight under `registrants`.
            Value::Array(records) => records.clone(),
            Value::Object(object) => match object.get("data") {
                Some(Value::Array(records)) => records.clone(),
                _ => Vec::new(),
            },
            _ => return Err(self.invalid("registrants", "registrants is neither a list nor a paginator")),
        };
        let current_page = paginator
            .get("current_page")
            .and_then(lenient::integer)
            .and_then(|page| u32::try_from(page).ok())
            .unwrap_or(page);
        let last_page = paginator.get("last_page").and_then(lenient::integer).and_then(|page| u32::try_from(page).ok());
        let has_next = match paginator.get("next_page_url") {
            Some(Value::String(url)) => !url.trim().is_empty(),
            Some(Value::Null) | None => last_page.is_some_and(|last| current_page < last),
            Some(_) => false,
        };
        let registrants = data.into_iter().filter_map(|record| serde_json::from_value(record).ok()).collect();
        Ok(RegistrantsPage { current_page, last_page, has_next, registrants })
    }

    /// Every registrant of a webinar (or one schedule), all pages. When the paginator names its
    /// last page, the remaining pages are queued at once (the throttle sends them in order at
    /// the full rate); otherwise pages are followed one after another.
    pub async fn registrants(
        &self,
        webinar_id: &str,
        schedule: Option<&str>,
        mut on_page: impl FnMut(&RegistrantsPage),
    ) -> Result<Vec<Registrant>, PlatformError> {
        let first = self.registrants_page(webinar_id, schedule, 1).await?;
        on_page(&first);
        let mut all = first.registrants.clone();
        if !first.has_next {
            return Ok(all);
        }
        if let Some(last) = first.last_page.filter(|last| *last > 1 && *last <= MAX_PAGES) {
            let pages = (2..=last).map(|page| self.registrants_page(webinar_id, schedule, page));
            for page in futures::future::join_all(pages).await {
                let page = page?;
                on_page(&page);
                all.extend(page.registrants);
            }
            return Ok(all);
        }
        let mut page_number = 1;
        loop {
            page_number += 1;
            if page_number > MAX_PAGES {
                return Err(self.invalid("registrants", "the paginator never ends"));
            }
            let page = self.registrants_page(webinar_id, schedule, page_number).await?;
            on_page(&page);
            let done = !page.has_next || page.registrants.is_empty();
            all.extend(page.registrants);
            if done {
                return Ok(all);
            }
        }
    }

    async fn call(
        &self,
        operation: &'static str,
        path: &str,
        params: &[(&str, &str)],
        webinar: Option<&str>,
    ) -> Result<Value, PlatformError> {
        let url = format!("{}/{path}", self.base);
        let endpoint = format!("POST /{}/{path}", self.platform.name().to_ascii_lowercase());
        let mut pairs = vec![("api_key", self.api_key.expose())];
        pairs.extend_from_slice(params);
        let body = http::form_body(&pairs);
        let label = http::form_body(params);
        let answer = http::send_labelled(
            self.platform,
            operation,
            &endpoint,
            &label,
            &self.throttle,
            &self.log,
            self.request_timeout,
            || {
                self.http
                    .post(&url)
                    .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(reqwest::header::ACCEPT, "application/json")
                    .body(body.clone())
            },
        )
        .await?;
        self.read(operation, webinar, answer)
    }

    /// Status first, then the `status` field: only `success` is success.
    fn read(&self, operation: &'static str, webinar: Option<&str>, answer: Answer) -> Result<Value, PlatformError> {
        let platform = self.platform;
        let status = answer.status;
        let parsed: Option<Value> = serde_json::from_slice(&answer.body).ok();
        let message = parsed
            .as_ref()
            .and_then(|body| body.get("message").or_else(|| body.get("error")))
            .and_then(lenient::text)
            .map(|text| short_message(&text))
            .unwrap_or_else(|| short_message(&String::from_utf8_lossy(&answer.body)));
        match status {
            200..=299 => {}
            401 | 403 => return Err(PlatformError::Unauthorized { platform, operation, status }),
            404 => {
                return Err(PlatformError::NotFound {
                    platform,
                    operation,
                    webinar: webinar.unwrap_or_default().to_owned(),
                    status,
                });
            }
            500..=599 => return Err(PlatformError::Server { platform, operation, status }),
            _ => return Err(PlatformError::Rejected { platform, operation, status, message }),
        }
        let body = parsed.ok_or_else(|| self.invalid_status(operation, status, "the answer is not JSON"))?;
        match body.get("status").and_then(lenient::text).as_deref() {
            Some("success") => Ok(body),
            _ => Err(PlatformError::Rejected { platform, operation, status, message }),
        }
    }

    fn invalid(&self, operation: &'static str, detail: &str) -> PlatformError {
        self.invalid_status(operation, 200, detail)
    }

    fn invalid_status(&self, operation: &'static str, status: u16, detail: &str) -> PlatformError {
        PlatformError::InvalidResponse { platform: self.platform, operation, status, detail: detail.to_owned() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn registrant_records_read_leniently() {
        let record: Registrant = serde_json::from_value(json!({
            "lead_id": 5551, "email": "erika@example.com", "first_name": "Erika", "schedule": "45",
            "signup_date": "2026-02-01 10:12:00", "attended_live": "1", "time_live": "0:42:10",
            "purchased_live": 0, "revenue_live": 0, "attended_replay": null, "unknown": {"x": 1}
        }))
        .unwrap();
        assert_eq!(record.lead_id.as_deref(), Some("5551"));
        assert_eq!(record.schedule.as_deref(), Some("45"));
        assert_eq!(record.attended_live, Some(1));
        assert_eq!(record.revenue_live.as_deref(), Some("0"));
        assert_eq!(record.attended_replay, None);
    }

    #[test]
    fn webinar_details_keep_object_schedules_only() {
        let details: WebinarDetails = serde_json::from_value(json!({
            "webinar_id": 123, "name": "Masterclass", "timezone": "Europe/Berlin",
            "schedules": [{"schedule": 45, "date": "2026-02-10 9:00"}, "Every day, 9:00 AM"]
        }))
        .unwrap();
        assert_eq!(details.webinar_id, "123");
        assert_eq!(details.schedules.len(), 1);
        assert_eq!(details.schedules[0].schedule, "45");
    }
}
