//! HTTP glue: one fallback handler that routes, rate-limits, injects faults,
//! dispatches and logs. The state lock is never held across an await.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};

use crate::admin;
use crate::data::JamProduct;
use crate::jam::{self, JamEndpoint};
use crate::reply::Reply;
use crate::state::{CallRecord, Fault, SimState};
use crate::zoom::{self, ZoomEndpoint};

/// The APIs take small form bodies; `PUT /_sim/data` can be larger.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

pub(crate) struct Shared {
    state: Mutex<SimState>,
}

impl Shared {
    pub fn new(state: SimState) -> Self {
        Self { state: Mutex::new(state) }
    }

    pub fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().expect("platform-sim state lock poisoned")
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, MAX_BODY_BYTES).await;
    let path = parts.uri.path().to_owned();
    if path == "/_sim" || path.starts_with("/_sim/") {
        let bytes = bytes.unwrap_or_default();
        return admin::handle(&shared, parts.method.as_str(), &path, &bytes).into_response();
    }
    let incoming = Incoming {
        method: parts.method.as_str().to_owned(),
        path,
        authorization: parts.headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned),
        params: bytes
            .map_err(|e| format!("unreadable body: {e}"))
            .and_then(|b| params(parts.uri.query(), &parts.headers, &b)),
    };
    let (reply, stall) = {
        let mut state = shared.lock();
        answer(&mut state, &incoming)
    };
    if let Some(stall) = stall {
        tokio::time::sleep(stall).await;
    }
    reply.into_response()
}

/// Query parameters, then body parameters (form or JSON object) over them.
fn params(query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    if let Some(query) = query {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query).map_err(|e| format!("the query string is not valid: {e}"))?;
        params.extend(pairs);
    }
    if body.is_empty() {
        return Ok(params);
    }
    let content_type =
        headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    if content_type.starts_with("application/json") {
        let Value::Object(object) =
            serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?
        else {
            return Err("the JSON body must be an object".to_owned());
        };
        for (key, value) in object {
            let value = match value {
                Value::String(text) => text,
                Value::Null => String::new(),
                other => other.to_string(),
            };
            params.insert(key, value);
        }
    } else {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_bytes(body).map_err(|e| format!("the form body is not valid: {e}"))?;
        params.extend(pairs);
    }
    Ok(params)
}

/// Everything known about a request before it is answered.
pub(crate) struct Incoming {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub params: Result<BTreeMap<String, String>, String>,
}

impl Incoming {
    fn api_key(&self) -> Option<String> {
        self.params.as_ref().ok().and_then(|params| params.get("api_key").cloned())
    }

    fn record(&self, state: &mut SimState, at: Instant, endpoint: &str, reply: &Reply) {
        tracing::debug!(method = %self.method, endpoint, status = reply.status, "platform-sim request");
        let mut params = self.params.clone().unwrap_or_default();
        let api_key = params.remove("api_key");
        let entry = CallRecord {
            at_ms: state.elapsed_ms(at),
            method: self.method.clone(),
            path: self.path.clone(),
            endpoint: endpoint.to_owned(),
            api_key,
            params,
            status: reply.status,
        };
        state.log.push(entry);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Jam(JamProduct, JamEndpoint),
    Zoom(ZoomEndpoint),
}

enum Matched {
    Found(Route, String),
    WrongMethod(&'static str, String),
    NotFound,
}

fn match_route(method: &str, path: &str) -> Matched {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (route, allowed) = match segments.as_slice() {
        [product, endpoint] if JamProduct::from_path(product).is_some() => {
            match (JamProduct::from_path(product), JamEndpoint::from_path(endpoint)) {
                (Some(product), Some(endpoint)) => (Route::Jam(product, endpoint), "POST"),
                _ => return Matched::NotFound,
            }
        }
        ["oauth", "token"] => (Route::Zoom(ZoomEndpoint::Token), "POST"),
        ["v2", "report", "webinars", id, "participants"] => {
            (Route::Zoom(ZoomEndpoint::Participants((*id).to_owned())), "GET")
        }
        ["v2", "past_webinars", id, "absentees"] => (Route::Zoom(ZoomEndpoint::Absentees((*id).to_owned())), "GET"),
        ["v2", "webinars", id, "registrants"] => (Route::Zoom(ZoomEndpoint::Registrants((*id).to_owned())), "GET"),
        ["v2", "users", user, "webinars"] => (Route::Zoom(ZoomEndpoint::ListWebinars((*user).to_owned())), "GET"),
        ["v2", "past_webinars", id, "instances"] => (Route::Zoom(ZoomEndpoint::Instances((*id).to_owned())), "GET"),
        _ => return Matched::NotFound,
    };
    let label = format!("{allowed} {}", route_template(&route));
    if method != allowed {
        return Matched::WrongMethod(allowed, label);
    }
    Matched::Found(route, label)
}

fn route_template(route: &Route) -> String {
    match route {
        Route::Jam(product, endpoint) => format!("/{}/{}", product.path(), endpoint.path()),
        Route::Zoom(endpoint) => endpoint.template().to_owned(),
    }
}

/// Routing, rate limit, fault draw and the endpoint, under one lock; the call
/// is logged before the (possibly stalled) answer leaves.
fn answer(state: &mut SimState, incoming: &Incoming) -> (Reply, Option<Duration>) {
    let now = Instant::now();
    let (route, label) = match match_route(&incoming.method, &incoming.path) {
        Matched::Found(route, label) => (route, label),
        Matched::WrongMethod(allowed, label) => {
            let reply = Reply::json(
                405,
                json!({"status": "error", "message": format!("The {} method is not supported for this route. Supported methods: {allowed}.", incoming.method)}),
            )
            .with_header("allow", allowed.to_owned());
            incoming.record(state, now, &label, &reply);
            return (reply, None);
        }
        Matched::NotFound => {
            let label = format!("{} (unknown)", incoming.method);
            let reply = if incoming.path.starts_with("/v2/") {
                Reply::json(404, json!({"code": 404, "message": "Not Found"}))
            } else {
                Reply::json(404, json!({"status": "error", "message": "Not found"}))
            };
            incoming.record(state, now, &label, &reply);
            return (reply, None);
        }
    };
    let admitted = match &route {
        Route::Jam(..) => state.admit_jam(incoming.api_key().as_deref().unwrap_or_default(), now),
        Route::Zoom(ZoomEndpoint::Token) => true,
        Route::Zoom(_) => state.admit_zoom(now),
    };
    if !admitted || state.take_forced_429(&incoming.path) {
        let reply = match &route {
            Route::Jam(..) => jam::too_many_requests(),
            Route::Zoom(endpoint) => zoom::too_many_requests(endpoint, state.knobs.zoom_retry_after_seconds),
        };
        incoming.record(state, now, &label, &reply);
        return (reply, None);
    }
    let stall = match state.draw_fault(&incoming.path) {
        Some(Fault::Status(status)) => {
            let reply = server_error(status);
            incoming.record(state, now, &label, &reply);
            return (reply, None);
        }
        Some(Fault::Stall(stall)) => Some(stall),
        None => None,
    };
    let reply = match (&route, &incoming.params) {
        (Route::Jam(..), Err(problem)) => Reply::json(400, json!({"status": "error", "message": problem})),
        (Route::Zoom(_), Err(problem)) => Reply::json(400, json!({"code": 300, "message": problem})),
        (Route::Jam(product, endpoint), Ok(params)) => jam::handle(state, *product, *endpoint, params),
        (Route::Zoom(endpoint), Ok(params)) => {
            zoom::handle(state, endpoint, params, incoming.authorization.as_deref(), now)
        }
    };
    incoming.record(state, now, &label, &reply);
    (reply, stall)
}

/// What a load balancer in front of the API answers when the backend fails.
fn server_error(status: u16) -> Reply {
    let reason = match status {
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        _ => "Server Error",
    };
    Reply::html(
        status,
        format!(
            "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n</body>\r\n</html>\r\n"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_both_products_and_zoom() {
        assert!(matches!(
            match_route("POST", "/everwebinar/registrants"),
            Matched::Found(Route::Jam(JamProduct::EverWebinar, JamEndpoint::Registrants), label)
                if label == "POST /everwebinar/registrants"
        ));
        assert!(matches!(match_route("GET", "/webinarjam/webinars"), Matched::WrongMethod("POST", _)));
        assert!(matches!(match_route("POST", "/gotowebinar/webinars"), Matched::NotFound));
        assert!(matches!(
            match_route("GET", "/v2/report/webinars/abc%3D%3D/participants"),
            Matched::Found(Route::Zoom(ZoomEndpoint::Participants(id)), label)
                if id == "abc%3D%3D" && label == "GET /v2/report/webinars/{uuid}/participants"
        ));
    }
}
