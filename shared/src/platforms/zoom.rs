//! The Zoom API for the pull side (`reference/webinar-platforms.md` 2.3 and 2.5): a
//! Server-to-Server OAuth token (cached until shortly before it expires, fetched again on a
//! 401), the participants report with `registrant_id`, absentees and approved registrants,
//! all pages by `next_page_token`. Calls go through a [`FifoThrottle`]; a 429 honours
//! `Retry-After`.

use super::error::{Platform, PlatformError, short_message};
use super::http::{self, Answer, CallLog};
use super::lenient;
use super::throttle::FifoThrottle;
use crate::secret::Secret;
use base64::Engine as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The API host; paths under `/v2` are appended.
pub const DEFAULT_API_BASE_URL: &str = "https://api.zoom.us";
pub const DEFAULT_TOKEN_URL: &str = "https://zoom.us/oauth/token";
/// Largest page the report and list endpoints accept.
pub const PAGE_SIZE: u32 = 300;
/// A token is renewed this long before Zoom says it expires.
const TOKEN_EARLY: Duration = Duration::from_secs(60);
/// Upper bound on pages followed for one list.
const MAX_PAGES: u32 = 10_000;

/// The Server-to-Server OAuth app's credentials.
#[derive(Clone)]
pub struct ZoomCredentials {
    pub account_id: String,
    pub client_id: String,
    pub client_secret: Secret,
}

impl std::fmt::Debug for ZoomCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoomCredentials").field("account_id", &self.account_id).finish_non_exhaustive()
    }
}

/// The token endpoint for an API host: Zoom's own for the production API, else the same host's
/// `/oauth/token` (a simulator serves both).
pub fn token_url_for(api_base: &str) -> String {
    let host = api_host(api_base);
    if host == DEFAULT_API_BASE_URL { DEFAULT_TOKEN_URL.to_owned() } else { format!("{host}/oauth/token") }
}

/// The API host without a trailing `/` or `/v2`.
fn api_host(api_base: &str) -> &str {
    let trimmed = api_base.trim_end_matches('/');
    trimmed.strip_suffix("/v2").unwrap_or(trimmed)
}

/// An approved (or listed) registrant, or an absentee (same fields).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct ZoomRegistrant {
    #[serde(deserialize_with = "lenient::id_text")]
    pub id: String,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub email: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub first_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub last_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub phone: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub status: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub create_time: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub join_url: Option<String>,
}

/// One row of the participants report: one per join (a rejoin is another row).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct ZoomParticipant {
    #[serde(deserialize_with = "lenient::opt_text")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub user_email: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub registrant_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub join_time: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub leave_time: Option<String>,
    /// Seconds in the room for this row.
    #[serde(deserialize_with = "lenient::opt_integer")]
    pub duration: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub status: Option<String>,
}

/// A webinar as `GET /users/me/webinars` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct ZoomWebinar {
    #[serde(deserialize_with = "lenient::id_text")]
    pub id: String,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub uuid: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub topic: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub start_time: Option<String>,
    #[serde(deserialize_with = "lenient::opt_integer")]
    pub duration: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub timezone: Option<String>,
    /// 5 = webinar, 6 = recurring without a fixed time, 9 = recurring with a fixed time.
    #[serde(rename = "type", deserialize_with = "lenient::opt_integer")]
    pub webinar_type: Option<i64>,
}

struct Token {
    value: Secret,
    renew_at: Instant,
}

/// A Zoom API client for one account.
#[derive(Clone)]
pub struct ZoomClient {
    http: reqwest::Client,
    api_base: String,
    token_url: String,
    credentials: ZoomCredentials,
    token: Arc<Mutex<Option<Token>>>,
    throttle: Arc<FifoThrottle>,
    log: CallLog,
    request_timeout: std::time::Duration,
}

impl std::fmt::Debug for ZoomClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoomClient").field("api_base", &self.api_base).finish_non_exhaustive()
    }
}

impl ZoomClient {
    pub fn new(
        api_base: &str,
        token_url: Option<&str>,
        credentials: ZoomCredentials,
        throttle: Arc<FifoThrottle>,
        log: CallLog,
    ) -> Result<Self, PlatformError> {
        let http = http::http_client().map_err(|error| PlatformError::Transport {
            platform: Platform::Zoom,
            operation: "build client",
            detail: super::error::transport_detail(&error),
        })?;
        let api_base = format!("{}/v2", api_host(api_base));
        let token_url = token_url.map_or_else(|| token_url_for(&api_base), str::to_owned);
        Ok(Self {
            http,
            api_base,
            token_url,
            credentials,
            token: Arc::new(Mutex::new(None)),
            throttle,
            log,
            request_timeout: http::REQUEST_TIMEOUT,
        })
    }

    /// Gives up on a call that has no answer after `timeout` (and retries it as a broken
    /// connection); 30 s by default.
    pub fn with_request_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    pub fn call_log(&self) -> &CallLog {
        &self.log
    }

    /// The participants report of one ended occurrence (by uuid), every page.
    pub async fn participants(&self, webinar_uuid: &str) -> Result<Vec<ZoomParticipant>, PlatformError> {
        let path = format!("/report/webinars/{}/participants", encode_uuid(webinar_uuid));
        self.all_pages(
            "participants report",
            &path,
            &[("include_fields", "registrant_id")],
            "participants",
            webinar_uuid,
        )
        .await
    }

    /// Registrants who did not attend one ended occurrence (by uuid), every page.
    pub async fn absentees(&self, webinar_uuid: &str) -> Result<Vec<ZoomRegistrant>, PlatformError> {
        let path = format!("/past_webinars/{}/absentees", encode_uuid(webinar_uuid));
        self.all_pages("absentees", &path, &[], "registrants", webinar_uuid).await
    }

    /// Approved registrants of a webinar (by id), every page; of one occurrence of a recurring
    /// webinar when `occurrence_id` is given.
    pub async fn registrants(
        &self,
        webinar_id: &str,
        occurrence_id: Option<&str>,
    ) -> Result<Vec<ZoomRegistrant>, PlatformError> {
        let path = format!("/webinars/{}/registrants", encode_uuid(webinar_id));
        let mut query = vec![("status", "approved")];
        if let Some(occurrence) = occurrence_id {
            query.push(("occurrence_id", occurrence));
        }
        self.all_pages("registrants", &path, &query, "registrants", webinar_id).await
    }

    /// The ended occurrences of a webinar (uuid and start time each).
    pub async fn past_instances(&self, webinar_id: &str) -> Result<Vec<ZoomWebinar>, PlatformError> {
        let path = format!("/past_webinars/{}/instances", encode_uuid(webinar_id));
        self.all_pages("past instances", &path, &[], "webinars", webinar_id).await
    }

    /// The account owner's webinars.
    pub async fn webinars(&self) -> Result<Vec<ZoomWebinar>, PlatformError> {
        self.all_pages("webinars", "/users/me/webinars", &[], "webinars", "").await
    }

    /// Every page of a list endpoint, following `next_page_token`.
    async fn all_pages<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        path: &str,
        params: &[(&str, &str)],
        list_key: &str,
        webinar: &str,
    ) -> Result<Vec<T>, PlatformError> {
        let mut all = Vec::new();
        let mut next_token = String::new();
        for _ in 0..MAX_PAGES {
            let page_size = PAGE_SIZE.to_string();
            let mut query: Vec<(&str, &str)> = params.to_vec();
            query.push(("page_size", &page_size));
            if !next_token.is_empty() {
                query.push(("next_page_token", &next_token));
            }
            let body = self.get(operation, path, &query, webinar).await?;
            if let Some(Value::Array(records)) = body.get(list_key) {
                all.extend(records.iter().filter_map(|record| serde_json::from_value(record.clone()).ok()));
            }
            next_token = body.get("next_page_token").and_then(lenient::text).unwrap_or_default();
            if next_token.is_empty() {
                return Ok(all);
            }
        }
        Err(PlatformError::InvalidResponse {
            platform: Platform::Zoom,
            operation,
            status: 200,
            detail: "the page tokens never end".to_owned(),
        })
    }

    /// One GET with a bearer token; a 401 fetches a new token once and tries again.
    async fn get(
        &self,
        operation: &'static str,
        path: &str,
        query: &[(&str, &str)],
        webinar: &str,
    ) -> Result<Value, PlatformError> {
        let query_text = serde_urlencoded::to_string(query).unwrap_or_default();
        let url = if query_text.is_empty() {
            format!("{}{path}", self.api_base)
        } else {
            format!("{}{path}?{query_text}", self.api_base)
        };
        let endpoint = format!("GET {}", endpoint_label(path));
        let mut renewed = false;
        loop {
            let token = self.token(renewed).await?;
            let answer = http::send(
                Platform::Zoom,
                operation,
                &endpoint,
                &self.throttle,
                &self.log,
                self.request_timeout,
                || self.http.get(&url).bearer_auth(token.expose()).header(reqwest::header::ACCEPT, "application/json"),
            )
            .await?;
            if answer.status == 401 && !renewed {
                renewed = true;
                continue;
            }
            return read(operation, webinar, answer);
        }
    }

    /// The cached token, or a new one when there is none, it is about to expire, or `renew`.
    async fn token(&self, renew: bool) -> Result<Secret, PlatformError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && !renew
            && Instant::now() < token.renew_at
        {
            return Ok(token.value.clone());
        }
        let token = self.fetch_token().await?;
        let value = token.value.clone();
        *cached = Some(token);
        Ok(value)
    }

    async fn fetch_token(&self) -> Result<Token, PlatformError> {
        let operation = "token";
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            self.credentials.client_id,
            self.credentials.client_secret.expose()
        ));
        let body =
            http::form_body(&[("grant_type", "account_credentials"), ("account_id", &self.credentials.account_id)]);
        let answer = http::send(
            Platform::Zoom,
            operation,
            "POST /oauth/token",
            &self.throttle,
            &self.log,
            self.request_timeout,
            || {
                self.http
                    .post(&self.token_url)
                    .header(reqwest::header::AUTHORIZATION, format!("Basic {basic}"))
                    .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body.clone())
            },
        )
        .await?;
        let status = answer.status;
        if matches!(status, 400 | 401 | 403) {
            return Err(PlatformError::Unauthorized { platform: Platform::Zoom, operation, status });
        }
        let body = read(operation, "", answer)?;
        let value = body.get("access_token").and_then(lenient::text).ok_or_else(|| PlatformError::InvalidResponse {
            platform: Platform::Zoom,
            operation,
            status,
            detail: "no access_token in the answer".to_owned(),
        })?;
        let lifetime = body.get("expires_in").and_then(lenient::integer).unwrap_or(3600).clamp(0, 86_400) as u64;
        let renew_at = Instant::now() + Duration::from_secs(lifetime).saturating_sub(TOKEN_EARLY);
        Ok(Token { value: Secret::new(value), renew_at })
    }
}

/// Statuses and Zoom's error codes to classes.
fn read(operation: &'static str, webinar: &str, answer: Answer) -> Result<Value, PlatformError> {
    let platform = Platform::Zoom;
    let status = answer.status;
    let parsed: Option<Value> = serde_json::from_slice(&answer.body).ok();
    let code = parsed.as_ref().and_then(|body| body.get("code")).and_then(lenient::integer);
    let message = parsed
        .as_ref()
        .and_then(|body| body.get("message"))
        .and_then(lenient::text)
        .map(|text| short_message(&text))
        .unwrap_or_default();
    match (status, code) {
        (200..=299, _) => parsed.ok_or_else(|| PlatformError::InvalidResponse {
            platform,
            operation,
            status,
            detail: "the answer is not JSON".to_owned(),
        }),
        (_, Some(4700)) => Err(PlatformError::MissingScope { operation }),
        (404, _) | (_, Some(3001)) => {
            Err(PlatformError::NotFound { platform, operation, webinar: webinar.to_owned(), status })
        }
        (401 | 403, _) => Err(PlatformError::Unauthorized { platform, operation, status }),
        (500..=599, _) => Err(PlatformError::Server { platform, operation, status }),
        (429, _) => Err(PlatformError::RateLimited { platform, operation, retry_after: answer.retry_after }),
        _ => Err(PlatformError::Rejected { platform, operation, status, message }),
    }
}

/// A webinar uuid in a path: encoded once, or twice when it starts with `/` or contains `//`
/// (Zoom's rule; otherwise its router splits the path).
pub fn encode_uuid(uuid: &str) -> String {
    let once = percent_encode(uuid);
    if uuid.starts_with('/') || uuid.contains("//") { percent_encode(&once) } else { once }
}

fn percent_encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() * 3);
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The endpoint's template for counts: ids replaced by placeholders.
fn endpoint_label(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["", "report", "webinars", _, rest] => format!("/v2/report/webinars/{{uuid}}/{rest}"),
        ["", "past_webinars", _, "instances"] => "/v2/past_webinars/{id}/instances".to_owned(),
        ["", "past_webinars", _, rest] => format!("/v2/past_webinars/{{uuid}}/{rest}"),
        ["", "webinars", _, rest] => format!("/v2/webinars/{{id}}/{rest}"),
        _ => format!("/v2{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_that_need_it_are_encoded_twice() {
        assert_eq!(encode_uuid("k7Zq9XvRTn2wYb3cQp1Lmg=="), "k7Zq9XvRTn2wYb3cQp1Lmg%3D%3D");
        assert_eq!(encode_uuid("/abc=="), "%252Fabc%253D%253D");
        assert_eq!(encode_uuid("ab//c"), "ab%252F%252Fc");
        assert_eq!(encode_uuid("ab/c"), "ab%2Fc");
        assert_eq!(encode_uuid("85012345678"), "85012345678");
    }

    #[test]
    fn the_token_endpoint_follows_the_api_host() {
        assert_eq!(token_url_for("https://api.zoom.us/v2"), DEFAULT_TOKEN_URL);
        assert_eq!(token_url_for("https://api.zoom.us/"), DEFAULT_TOKEN_URL);
        assert_eq!(token_url_for("http://127.0.0.1:4000/v2"), "http://127.0.0.1:4000/oauth/token");
        assert_eq!(token_url_for("http://127.0.0.1:4000"), "http://127.0.0.1:4000/oauth/token");
    }

    #[test]
    fn zoom_codes_classify() {
        let answer = |status: u16, body: &str| Answer { status, retry_after: None, body: body.to_owned().into() };
        assert!(matches!(
            read("x", "w", answer(404, r#"{"code":3001,"message":"Webinar does not exist"}"#)),
            Err(PlatformError::NotFound { .. })
        ));
        assert!(matches!(read("x", "w", answer(400, r#"{"code":3001}"#)), Err(PlatformError::NotFound { .. })));
        assert!(matches!(read("x", "w", answer(400, r#"{"code":4700}"#)), Err(PlatformError::MissingScope { .. })));
        assert!(matches!(read("x", "w", answer(401, r#"{"code":124}"#)), Err(PlatformError::Unauthorized { .. })));
        assert!(read("x", "w", answer(503, "")).unwrap_err().is_retryable());
        assert!(read("x", "w", answer(200, r#"{"participants":[]}"#)).is_ok());
    }

    #[test]
    fn endpoint_labels_hide_ids() {
        assert_eq!(endpoint_label("/report/webinars/abc%3D/participants"), "/v2/report/webinars/{uuid}/participants");
        assert_eq!(endpoint_label("/past_webinars/abc/absentees"), "/v2/past_webinars/{uuid}/absentees");
        assert_eq!(endpoint_label("/users/me/webinars"), "/v2/users/me/webinars");
    }
}
