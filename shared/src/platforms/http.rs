//! The one way every platform call leaves: through its FIFO throttle, with the retry rules of
//! DESIGN 11 (429: wait, then go again at the head of the queue; 5xx and broken connections: a
//! short backoff, then again at the head) and a count of calls per endpoint.

use super::error::{Platform, PlatformError, transport_detail};
use super::throttle::{Departure, FifoThrottle};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Consecutive 429 answers one call accepts before it gives up (as retryable).
pub const MAX_RATE_LIMITED: u32 = 10;
/// Attempts for a call that meets a server error or a broken connection.
pub const MAX_ATTEMPTS: u32 = 3;
/// Backoff before the second attempt; doubled for each further one.
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Per-request timeout, unless a client is given another (`with_request_timeout`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Calls made, by endpoint (`POST /everwebinar/registrants`), and 429 answers seen. Shared by
/// every client that reports into the same figures.
#[derive(Debug, Clone, Default)]
pub struct CallLog {
    inner: Arc<Mutex<CallCounts>>,
    /// Every departure from the throttle, when asked for ([`CallLog::trace_departures`]).
    departures: Arc<Mutex<Option<Vec<DepartureRecord>>>>,
}

/// One call leaving its throttle, as the client saw it: the order the bridge controls (the
/// platform may stamp two calls on two connections the other way round).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepartureRecord {
    /// The throttle's departure number (0, 1, 2, ... per throttle): the order calls left in.
    pub number: u64,
    pub endpoint: String,
    /// The call's parameters without any credential (`webinar_id=4242&page=3`).
    pub label: String,
    /// Which attempt of the call this was (1 = first; later ones went again at the head).
    pub attempt: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallCounts {
    pub calls: u64,
    pub by_endpoint: BTreeMap<String, u64>,
    pub http_429: u64,
    /// Attempts that got no answer (timeout, broken connection).
    pub transport_errors: u64,
}

impl CallLog {
    pub fn snapshot(&self) -> CallCounts {
        self.lock().clone()
    }

    /// From now on, keeps a record of every departure (for benchmarks and tests; off by
    /// default, so a long-running process does not grow a list).
    pub fn trace_departures(&self) {
        let mut departures = self.departures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        departures.get_or_insert_with(Vec::new);
    }

    /// The departures recorded since [`CallLog::trace_departures`], in the order they were
    /// recorded (sort by `number` for the throttle's order); empty when not tracing.
    pub fn departures(&self) -> Vec<DepartureRecord> {
        let departures = self.departures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        departures.clone().unwrap_or_default()
    }

    fn record_departure(&self, departure: &Departure<'_>, endpoint: &str, label: &str, attempt: u32) {
        let mut departures = self.departures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(departures) = departures.as_mut() {
            departures.push(DepartureRecord {
                number: departure.number(),
                endpoint: endpoint.to_owned(),
                label: label.to_owned(),
                attempt,
            });
        }
    }

    fn record(&self, endpoint: &str, status: Option<u16>) {
        let mut counts = self.lock();
        counts.calls += 1;
        *counts.by_endpoint.entry(endpoint.to_owned()).or_default() += 1;
        match status {
            Some(429) => counts.http_429 += 1,
            None => counts.transport_errors += 1,
            Some(_) => {}
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CallCounts> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A finished HTTP exchange.
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: Bytes,
}

pub(crate) fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("webinar-bridge/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Sends what `build` makes, through `throttle`, retrying per the rules above. Returns the last
/// answer, whatever its status, unless the transport failed every time.
pub(crate) async fn send(
    platform: Platform,
    operation: &'static str,
    endpoint: &str,
    throttle: &FifoThrottle,
    log: &CallLog,
    timeout: Duration,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Answer, PlatformError> {
    send_labelled(platform, operation, endpoint, "", throttle, log, timeout, build).await
}

/// [`send`], with `label` (the call's parameters, no credential) in the departure trace.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn send_labelled(
    platform: Platform,
    operation: &'static str,
    endpoint: &str,
    label: &str,
    throttle: &FifoThrottle,
    log: &CallLog,
    timeout: Duration,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Answer, PlatformError> {
    let mut departure = throttle.acquire().await;
    let mut rate_limited = 0;
    let mut attempt = 1;
    let mut attempts = 0;
    loop {
        attempts += 1;
        log.record_departure(&departure, endpoint, label, attempts);
        let outcome = exchange(build().timeout(timeout), departure).await;
        log.record(endpoint, outcome.as_ref().ok().map(|answer| answer.status));
        match outcome {
            Ok(answer) if answer.status == 429 => {
                rate_limited += 1;
                tracing::info!(
                    platform = platform.name(),
                    operation,
                    rate_limited,
                    "rate limited; waiting to retry at the head of the queue"
                );
                if rate_limited >= MAX_RATE_LIMITED {
                    return Err(PlatformError::RateLimited { platform, operation, retry_after: answer.retry_after });
                }
                departure = throttle.acquire_after_rate_limit(answer.retry_after).await;
            }
            Ok(answer) if answer.status >= 500 && attempt < MAX_ATTEMPTS => {
                tracing::info!(
                    platform = platform.name(),
                    operation,
                    status = answer.status,
                    attempt,
                    "server error; retrying"
                );
                departure = throttle.acquire_at_head(BACKOFF_BASE * 2u32.pow(attempt - 1)).await;
                attempt += 1;
            }
            Ok(answer) => return Ok(answer),
            Err(error) if attempt < MAX_ATTEMPTS => {
                tracing::info!(platform = platform.name(), operation, %error, attempt, "transport error; retrying");
                departure = throttle.acquire_at_head(BACKOFF_BASE * 2u32.pow(attempt - 1)).await;
                attempt += 1;
            }
            Err(error) => {
                return Err(PlatformError::Transport { platform, operation, detail: error });
            }
        }
    }
}

/// Sends one request on a task of its own, so it leaves at once and its answer is stamped the
/// moment it arrives, even when the caller's task is busy (e.g. parsing earlier pages). The
/// stamp goes to `departure`: the throttle's window counts this call as arrived by then. An
/// error is returned as a sentence (no secret, no URL query).
async fn exchange(request: reqwest::RequestBuilder, departure: Departure<'_>) -> Result<Answer, String> {
    let exchange = tokio::spawn(async move {
        let response = request.send().await;
        let answered = tokio::time::Instant::now();
        let answer = match response {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.trim().parse::<f64>().ok())
                    .filter(|seconds| seconds.is_finite() && *seconds >= 0.0 && *seconds <= 3600.0)
                    .map(Duration::from_secs_f64);
                response
                    .bytes()
                    .await
                    .map(|body| Answer { status, retry_after, body })
                    .map_err(|error| transport_detail(&error))
            }
            Err(error) => Err(transport_detail(&error)),
        };
        (answer, answered)
    });
    match exchange.await {
        Ok((answer, answered)) => {
            departure.answered_at(answered);
            answer
        }
        Err(error) => Err(format!("the request task ended early ({error})")),
    }
}

/// Form-encodes pairs (`application/x-www-form-urlencoded`).
pub(crate) fn form_body(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}
