//! The machinery under every operation: one connection pool, the shared rate limiter, the
//! credentials, and the loop that turns an operation into rate-limited, authenticated, bounded
//! HTTP attempts.

use super::auth::{self, AuthHeaders, SessionStore};
use super::config::{KlickTippAuth, KlickTippConfig};
use super::deadline;
use super::error::{ErrorClass, KlickTippError};
use super::rate_limit::RateLimiter;
use super::redact::contact_hash;
use super::response::{self, Reply};
use super::retry::{delay_before_retry, parse_retry_after};
use super::wire;
use crate::Secret;
use reqwest::header::RETRY_AFTER;
use reqwest::{Method, Url};
use serde_json::{Value, json};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

const USER_AGENT: &str = concat!("webinar-bridge/", env!("CARGO_PKG_VERSION"));
const LOGIN: &str = "login";
const MANAGEMENT_CREDENTIALS: &str = "Management API credentials (KLICKTIPP_USERNAME + KLICKTIPP_PASSWORD, or KLICKTIPP_DEVELOPER_KEY + KLICKTIPP_CUSTOMER_KEY)";

/// The KlickTipp API client. Cheap to clone; clones share the connection pool, the session and
/// the rate limiter.
#[derive(Clone)]
pub struct KlickTippClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: Url,
    credentials: Credentials,
    listbuilding_apikey: Option<Secret>,
    limiter: RateLimiter,
    max_attempts: u32,
    request_timeout: Duration,
    backoff_base: Duration,
}

enum Credentials {
    Session { username: String, password: Secret, sessions: SessionStore },
    Partner(AuthHeaders),
    None,
}

/// One HTTP request of an operation, replayable across attempts.
pub(crate) struct Call {
    pub operation: &'static str,
    method: Method,
    url: Url,
    body: Option<Value>,
    /// Hash of the contact's address, for logs.
    contact: Option<String>,
}

impl Call {
    pub(crate) fn with_body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    pub(crate) fn about(mut self, email: &str) -> Self {
        self.contact = Some(contact_hash(email));
        self
    }
}

impl KlickTippClient {
    pub fn new(config: KlickTippConfig) -> Result<Self, KlickTippError> {
        let base_url = parse_base_url(&config.base_url)?;
        let credentials = match config.auth {
            KlickTippAuth::Session { username, password } => {
                Credentials::Session { username, password, sessions: SessionStore::default() }
            }
            KlickTippAuth::Partner { username, developer_key, customer_key } => {
                Credentials::Partner(auth::partner_headers(&username, developer_key.expose(), customer_key.expose())?)
            }
            KlickTippAuth::None => Credentials::None,
        };
        let http = reqwest::Client::builder()
            // KlickTipp does not redirect; following one would turn a POST into a GET.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.request_timeout)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|error| transport_error("build client", error))?;
        let inner = Inner {
            http,
            base_url,
            credentials,
            listbuilding_apikey: config.listbuilding_apikey,
            limiter: RateLimiter::new(config.rate_per_second),
            max_attempts: config.max_attempts.max(1),
            request_timeout: config.request_timeout,
            backoff_base: config.backoff_base,
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// The limiter every HTTP attempt of this client (and its clones) waits on.
    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.inner.limiter
    }

    pub(crate) fn listbuilding_apikey(&self) -> Result<&Secret, KlickTippError> {
        self.inner
            .listbuilding_apikey
            .as_ref()
            .ok_or(KlickTippError::NotConfigured { what: "KLICKTIPP_LISTBUILDING_APIKEY" })
    }

    /// A call to `base_url/segment/...`; segments are percent-encoded.
    pub(crate) fn call(&self, operation: &'static str, method: Method, segments: &[&str]) -> Call {
        let mut url = self.inner.base_url.clone();
        // Cannot fail: `parse_base_url` only accepts URLs that can be a base.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        Call { operation, method, url, body: None, contact: None }
    }

    /// Run `attempt` until it succeeds, fails permanently, or `max_attempts` are used up, waiting
    /// between attempts as `retry::delay_before_retry` says. Returns the last error.
    ///
    /// `attempt` is a plain closure returning a future (not an async closure) so the futures of
    /// the public operations stay `Send`.
    pub(crate) async fn with_retries<T, F, Fut>(&self, call: &Call, mut attempt: F) -> Result<T, KlickTippError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, KlickTippError>>,
    {
        let mut number = 1;
        loop {
            let error = match attempt(number).await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            // `Relogin` only surfaces here when a fresh session was refused after others used it.
            let worth_retrying = error.is_retryable() || error.class() == ErrorClass::Relogin;
            let delay = (worth_retrying && number < self.inner.max_attempts)
                .then(|| delay_before_retry(&error, number, self.inner.backoff_base))
                .flatten()
                // No wait runs past the invocation deadline: the caller requeues instead.
                .filter(|delay| deadline::allows(*delay));
            let Some(delay) = delay else {
                let error = refusal_is_final(call.operation, error);
                warn!(
                    operation = call.operation,
                    contact = call.contact.as_deref(),
                    attempt = number,
                    status = error.status(),
                    error_number = error.error_number(),
                    class = ?error.class(),
                    %error,
                    "KlickTipp call failed"
                );
                return Err(error);
            };
            warn!(
                operation = call.operation,
                contact = call.contact.as_deref(),
                attempt = number,
                status = error.status(),
                error_number = error.error_number(),
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "KlickTipp call failed; retrying"
            );
            tokio::time::sleep(delay).await;
            number += 1;
        }
    }

    /// A Management API call with retries, its answer decoded by `decode`.
    pub(crate) async fn managed<T>(
        &self,
        call: &Call,
        decode: fn(&'static str, &Reply) -> Result<T, KlickTippError>,
    ) -> Result<T, KlickTippError> {
        self.with_retries(call, |_| async move { decode(call.operation, &self.management(call).await?) }).await
    }

    /// One attempt of a Management API call with the configured credentials. A session that is
    /// refused (401/403) is renewed once and the call replayed once.
    pub(crate) async fn management(&self, call: &Call) -> Result<Reply, KlickTippError> {
        match &self.inner.credentials {
            Credentials::Session { username, password, sessions } => {
                self.with_session(call, sessions, username, password).await
            }
            Credentials::Partner(headers) => {
                self.send(call, headers).await.map_err(|error| refusal_is_final(call.operation, error))
            }
            Credentials::None => Err(KlickTippError::NotConfigured { what: MANAGEMENT_CREDENTIALS }),
        }
    }

    /// One attempt of a Listbuilding API call (the key travels in the body).
    pub(crate) async fn listbuilding(&self, call: &Call) -> Result<Reply, KlickTippError> {
        self.send(call, &[]).await.map_err(|error| refusal_is_final(call.operation, error))
    }

    async fn with_session(
        &self,
        call: &Call,
        sessions: &SessionStore,
        username: &str,
        password: &Secret,
    ) -> Result<Reply, KlickTippError> {
        let login = || self.login(username, password);
        let session = sessions.get_or_login(None, login).await?;
        let error = match self.send(call, session.headers_for_request()).await {
            Err(error) if error.class() == ErrorClass::Relogin => error,
            other => return other,
        };
        debug!(
            operation = call.operation,
            status = error.status(),
            generation = session.generation,
            "KlickTipp session refused; logging in again"
        );
        let renewed = sessions.get_or_login(Some(session.generation), login).await?;
        match self.send(call, renewed.headers_for_request()).await {
            Err(error) if error.class() == ErrorClass::Relogin && renewed.refusal_is_conclusive() => {
                Err(refusal_is_final(call.operation, error))
            }
            // Refused after other requests shared the new session: it may simply be used up
            // already. The error stays `Relogin` so `with_retries` tries again (bounded).
            other => other,
        }
    }

    async fn login(&self, username: &str, password: &Secret) -> Result<AuthHeaders, KlickTippError> {
        let call = self
            .call(LOGIN, Method::POST, &["account", "login"])
            .with_body(json!({"username": username, "password": password.expose()}));
        let reply = self.send(&call, &[]).await.map_err(|error| match error.class() {
            ErrorClass::Retryable => error,
            _ => KlickTippError::AuthFailed { operation: LOGIN, status: error.status().unwrap_or_default() },
        })?;
        let (session_name, sessid) = wire::session(LOGIN, &reply)?;
        let headers = auth::session_cookie(&session_name, &sessid).ok_or(KlickTippError::InvalidResponse {
            operation: LOGIN,
            status: reply.status,
            detail: "session cookie is not a valid header value".into(),
        })?;
        info!("logged in to KlickTipp");
        Ok(headers)
    }

    /// Forget the session and close it on the server (no-op without a session).
    pub(crate) async fn end_session(&self, call: &Call) -> Result<(), KlickTippError> {
        let Credentials::Session { sessions, .. } = &self.inner.credentials else { return Ok(()) };
        let Some(session) = sessions.take().await else { return Ok(()) };
        let session = &session;
        self.with_retries(call, |_| async move {
            match self.send(call, session.headers()).await {
                Ok(_) => Ok(()),
                // The server no longer knew the session (refused, or "not logged in"): it is gone.
                Err(KlickTippError::Rejected { status: 401 | 403 | 406, .. }) => Ok(()),
                Err(error) => Err(error),
            }
        })
        .await
    }

    /// One HTTP exchange: wait for a rate slot, send, interpret the answer.
    async fn send(
        &self,
        call: &Call,
        auth: &[(reqwest::header::HeaderName, reqwest::header::HeaderValue)],
    ) -> Result<Reply, KlickTippError> {
        let deadline_reached = KlickTippError::DeadlineReached { operation: call.operation };
        if deadline::remaining() == Some(Duration::ZERO)
            || !self.inner.limiter.acquire_before(deadline::current()).await
        {
            return Err(deadline_reached);
        }
        // The answer is not awaited past the deadline either (the effect may still happen; every
        // call the consumer makes is idempotent in effect).
        let timeout =
            deadline::remaining().map_or(self.inner.request_timeout, |left| left.min(self.inner.request_timeout));
        if timeout.is_zero() {
            return Err(deadline_reached);
        }
        let started = Instant::now();
        let mut request = self.inner.http.request(call.method.clone(), call.url.clone()).timeout(timeout);
        for (name, value) in auth {
            request = request.header(name.clone(), value.clone());
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let result = match request.send().await {
            Ok(answer) => read(call.operation, answer).await,
            Err(error) => Err(transport_error(call.operation, error)),
        };
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let Err(KlickTippError::RateLimited { retry_after, .. }) = &result {
            // Over the cap after all (another client on the account, jitter): slow this instance.
            self.inner.limiter.slow_down(*retry_after);
        }
        match &result {
            Ok(reply) => debug!(
                operation = call.operation,
                contact = call.contact.as_deref(),
                status = reply.status,
                elapsed_ms,
                "KlickTipp answered"
            ),
            Err(error) => debug!(
                operation = call.operation,
                contact = call.contact.as_deref(),
                status = error.status(),
                error_number = error.error_number(),
                class = ?error.class(),
                elapsed_ms,
                "KlickTipp refused or failed"
            ),
        }
        result
    }
}

async fn read(operation: &'static str, answer: reqwest::Response) -> Result<Reply, KlickTippError> {
    let status = answer.status().as_u16();
    let retry_after =
        answer.headers().get(RETRY_AFTER).and_then(|value| value.to_str().ok()).and_then(parse_retry_after);
    let body = answer.bytes().await.map_err(|error| transport_error(operation, error))?;
    response::interpret(operation, status, retry_after, &body)
}

/// With partner or listbuilding credentials, and after a fresh login, 401/403 is final.
fn refusal_is_final(operation: &'static str, error: KlickTippError) -> KlickTippError {
    match error.class() {
        ErrorClass::Relogin => KlickTippError::AuthFailed { operation, status: error.status().unwrap_or_default() },
        _ => error,
    }
}

/// The error chain without the URL (it is ours, not news, and could carry a path id).
fn transport_error(operation: &'static str, error: reqwest::Error) -> KlickTippError {
    let detail = if error.is_timeout() {
        "timed out".to_owned()
    } else {
        let error = error.without_url();
        let mut detail = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            detail.push_str(": ");
            detail.push_str(&cause.to_string());
            source = cause.source();
        }
        detail
    };
    KlickTippError::Transport { operation, detail }
}

fn parse_base_url(raw: &str) -> Result<Url, KlickTippError> {
    let invalid = KlickTippError::NotConfigured { what: "KLICKTIPP_BASE_URL must be an http(s) URL" };
    let url = Url::parse(raw.trim()).map_err(|_| invalid.clone())?;
    let usable = matches!(url.scheme(), "http" | "https") && !url.cannot_be_a_base() && url.query().is_none();
    if usable { Ok(url) } else { Err(invalid) }
}

impl fmt::Debug for KlickTippClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match self.inner.credentials {
            Credentials::Session { .. } => "session",
            Credentials::Partner(_) => "partner",
            Credentials::None => "none",
        };
        f.debug_struct("KlickTippClient")
            .field("base_url", &self.inner.base_url.as_str())
            .field("auth", &auth)
            .field("listbuilding", &self.inner.listbuilding_apikey.is_some())
            .field("rate_per_second", &self.inner.limiter.rate())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base_url: &str) -> Result<KlickTippClient, KlickTippError> {
        KlickTippClient::new(KlickTippConfig::new(base_url, KlickTippAuth::None))
    }

    #[test]
    fn builds_urls_below_the_base() {
        let plain = client("https://api.klicktipp.com").expect("valid");
        let call = plain.call("get subscriber", Method::GET, &["subscriber", "a b/c"]);
        assert_eq!(call.url.as_str(), "https://api.klicktipp.com/subscriber/a%20b%2Fc");
        let prefixed = client("http://127.0.0.1:9000/api/").expect("valid");
        assert_eq!(prefixed.call("list tags", Method::GET, &["tag"]).url.as_str(), "http://127.0.0.1:9000/api/tag");
    }

    #[test]
    fn rejects_unusable_base_urls() {
        for url in ["", "api.klicktipp.com", "ftp://x.example", "mailto:a@b.example", "https://x.example/?a=1"] {
            assert!(matches!(client(url), Err(KlickTippError::NotConfigured { .. })), "{url}");
        }
    }

    #[tokio::test]
    async fn management_calls_need_credentials() {
        let listbuilding_only = client("https://api.klicktipp.com").expect("valid");
        let error = listbuilding_only.list_tags().await.unwrap_err();
        assert!(matches!(error, KlickTippError::NotConfigured { .. }));
        let error = listbuilding_only.signin("a@b.example", &Default::default()).await.unwrap_err();
        assert_eq!(error, KlickTippError::NotConfigured { what: "KLICKTIPP_LISTBUILDING_APIKEY" });
        assert!(listbuilding_only.logout().await.is_ok());
    }

    #[test]
    fn debug_output_hides_credentials() {
        let mut config = KlickTippConfig::new(
            "https://api.klicktipp.com",
            KlickTippAuth::Partner {
                username: "user".into(),
                developer_key: Secret::new("0123456789abcdef"),
                customer_key: Secret::new("customer-key"),
            },
        );
        config.listbuilding_apikey = Some(Secret::new("lb-key"));
        let debug = format!("{:?}", KlickTippClient::new(config).expect("valid"));
        for secret in ["0123456789abcdef", "customer-key", "lb-key", "cZkWFoPs"] {
            assert!(!debug.contains(secret), "{debug}");
        }
    }

    #[test]
    fn operation_futures_are_send() {
        fn assert_send<T: Send>(_: T) {}
        let client = client("https://api.klicktipp.com").expect("valid");
        let request = super::super::UpsertSubscriber::new("a@b.example");
        assert_send(client.upsert_subscriber(&request));
        assert_send(client.create_tag("x", None));
        assert_send(client.search_subscriber("a@b.example"));
        assert_send(client.logout());
    }
}
