//! HTTP glue: one fallback handler that logs, rate-limits, injects faults,
//! authenticates and dispatches. The state lock is never held across an await.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::Response;
use serde_json::{Value, json};

use crate::admin;
use crate::api::{self, Call, Caller};
use crate::auth::{cookie_value, partner_headers_valid};
use crate::body::parse_body;
use crate::clock::unix_now;
use crate::faults::{Fault, fault_reply};
use crate::messages::Msg;
use crate::reply::Reply;
use crate::routes::{Access, RouteMatch, match_route};
use crate::state::{LoggedRequest, SimState};

/// Bodies above this are refused; the API takes small JSON documents.
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

pub(crate) struct Shared {
    state: Mutex<SimState>,
}

impl Shared {
    pub fn new(state: SimState) -> Self {
        Self { state: Mutex::new(state) }
    }

    pub fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().expect("simulator state lock poisoned")
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, MAX_BODY_BYTES).await.map_err(|e| format!("unreadable body: {e}"));
    let path = parts.uri.path();
    if path == "/_sim" || path.starts_with("/_sim/") {
        let bytes = bytes.unwrap_or_default();
        return admin::handle(&shared, parts.method.as_str(), path, &bytes).into_response();
    }
    api_call(&shared, &parts, bytes).await.into_response()
}

/// Query parameters as a JSON object of strings (`Null` when there are none or they do not parse).
fn query_object(query: &str) -> Value {
    match serde_urlencoded::from_str::<Vec<(String, String)>>(query) {
        Ok(pairs) if !pairs.is_empty() => {
            Value::Object(pairs.into_iter().map(|(key, value)| (key, Value::String(value))).collect())
        }
        _ => Value::Null,
    }
}

/// Lower-case names; repeated headers joined (`; ` for cookies, as browsers do).
fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        let separator = if name == "cookie" { "; " } else { ", " };
        map.entry(name.as_str().to_owned())
            .and_modify(|existing| {
                existing.push_str(separator);
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    map
}

/// A live session cookie first, then partner headers.
fn resolve_caller(
    state: &mut SimState,
    headers: &BTreeMap<String, String>,
    counts_as_session_call: bool,
    now: Instant,
) -> Caller {
    let session_name = state.session_name.clone();
    if let Some(sessid) = headers.get("cookie").and_then(|cookie| cookie_value(cookie, &session_name)) {
        let alive =
            if counts_as_session_call { state.use_session(sessid, now) } else { state.session_alive(sessid, now) };
        if alive {
            return Caller::Session(sessid.to_owned());
        }
    }
    if let (Some(partner), Some(x_un), Some(x_ci)) = (&state.config.partner, headers.get("x-un"), headers.get("x-ci"))
        && partner_headers_valid(partner, x_un, x_ci)
    {
        return Caller::Partner;
    }
    Caller::Anonymous
}

/// Everything known about a request before it is answered.
struct Incoming {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: Result<Value, String>,
}

impl Incoming {
    fn record(&self, state: &mut SimState, at: Instant, endpoint: String, reply: &Reply) {
        tracing::debug!(
            method = %self.method,
            path = %self.path,
            endpoint = %endpoint,
            status = reply.status,
            "klicktipp-sim request"
        );
        let entry = LoggedRequest {
            at_ms: state.elapsed_ms(at),
            method: self.method.clone(),
            path: self.path.clone(),
            endpoint,
            body: self.body.clone().unwrap_or(Value::Null),
            status: reply.status,
            headers: self.headers.clone(),
        };
        state.record(entry);
    }
}

async fn api_call(shared: &Shared, parts: &Parts, bytes: Result<bytes::Bytes, String>) -> Reply {
    let headers = header_map(&parts.headers);
    let body = bytes.and_then(|b| parse_body(headers.get("content-type").map(String::as_str), &b)).map(|body| {
        // GET filters (`GET /subscriber?status=...`) come in the query string.
        match (body, parts.uri.query()) {
            (Value::Null, Some(query)) => query_object(query),
            (body, _) => body,
        }
    });
    let incoming =
        Incoming { method: parts.method.as_str().to_owned(), path: parts.uri.path().to_owned(), headers, body };

    let (reply, delay) = {
        let mut state = shared.lock();
        answer(&mut state, &incoming)
    };
    // A timeout fault delays only the answer: the effect has already happened,
    // as it would on a slow server whose client gave up.
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    reply
}

/// Admission, routing, fault draw, authentication and the endpoint, under one
/// lock; the request is logged before the (possibly delayed) answer leaves.
fn answer(state: &mut SimState, incoming: &Incoming) -> (Reply, Option<Duration>) {
    // Taken under the lock, so the log is in `at_ms` order and the rate window
    // sees requests in the order they were admitted.
    let now = Instant::now();
    let route = match_route(&incoming.method, &incoming.path);
    if !state.admit(now) {
        let label = match &route {
            RouteMatch::Found { label, .. }
            | RouteMatch::MethodNotAllowed { label, .. }
            | RouteMatch::NotFound { label } => label.clone(),
        };
        let reply = state.too_many_requests();
        incoming.record(state, now, label, &reply);
        return (reply, None);
    }
    let (endpoint, id, label) = match route {
        RouteMatch::Found { endpoint, id, label } => (endpoint, id, label),
        RouteMatch::NotFound { label } => {
            let reply =
                Reply::json(404, json!([format!("No route found for \"{} {}\"", incoming.method, incoming.path)]));
            incoming.record(state, now, label, &reply);
            return (reply, None);
        }
        RouteMatch::MethodNotAllowed { allowed, label } => {
            let reply = Reply::json(
                405,
                Value::String(format!(
                    "No route found for \"{} {}\": Method Not Allowed (Allow: {})",
                    incoming.method,
                    incoming.path,
                    allowed.join(", ")
                )),
            )
            .with_header("allow", allowed.join(", "));
            incoming.record(state, now, label, &reply);
            return (reply, None);
        }
    };
    let fault = state.draw_fault();
    if let Some(reply) = fault.and_then(fault_reply) {
        incoming.record(state, now, label, &reply);
        return (reply, None);
    }
    let delay = match fault {
        Some(Fault::Delay(delay)) => Some(delay),
        _ => None,
    };
    let reply = match &incoming.body {
        Err(problem) => {
            tracing::debug!(%problem, "klicktipp-sim could not parse a request body");
            Reply::message(400, Msg::UnreadableBody, state.knobs.language)
        }
        Ok(body) => {
            let access = endpoint.access();
            let caller = resolve_caller(state, &incoming.headers, access == Access::Management, now);
            if access == Access::Management && caller == Caller::Anonymous {
                Reply::message(403, Msg::AccessDenied, state.knobs.language)
            } else {
                let https =
                    incoming.headers.get("x-forwarded-proto").is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
                let call = Call { endpoint, id: id.as_deref(), body, caller, now_unix: unix_now(), now, https };
                api::handle(state, &call)
            }
        }
    };
    incoming.record(state, now, label, &reply);
    (reply, delay)
}
