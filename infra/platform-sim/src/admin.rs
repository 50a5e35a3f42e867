//! `/_sim` introspection and control (no auth; never logged, counted or rate limited).
//!
//! - `GET /_sim`: an index of these routes.
//! - `GET /_sim/calls`: counters and the per-second call log ([`CallStats`]).
//! - `GET /_sim/log`: every API call ([`crate::CallRecord`]), in order.
//! - `GET|PUT|PATCH /_sim/knobs`: read, replace or merge the knobs.
//! - `GET|PUT /_sim/data`: read or replace the platform document.
//! - `POST /_sim/expire-tokens`: every Zoom token issued so far expires now.
//! - `POST /_sim/reset`: log, counters, windows and tokens cleared.

use std::time::Instant;

use serde_json::{Value, json};

use crate::data::PlatformData;
use crate::knobs::Knobs;
use crate::reply::Reply;
use crate::server::Shared;
use crate::state::CallStats;

fn bad_request(message: String) -> Reply {
    Reply::json(400, json!({"error": "bad_request", "message": message}))
}

pub(crate) fn handle(shared: &Shared, method: &str, path: &str, body: &[u8]) -> Reply {
    let route = path.trim_end_matches('/');
    match (method, route) {
        ("GET", "/_sim") => Reply::ok(json!({
            "routes": [
                "GET /_sim/calls", "GET /_sim/log", "GET|PUT|PATCH /_sim/knobs", "GET|PUT /_sim/data",
                "POST /_sim/expire-tokens", "POST /_sim/reset"
            ],
            "knobs": shared.lock().knobs,
        })),
        ("GET", "/_sim/calls") => {
            let state = shared.lock();
            Reply::ok(json!(CallStats::from_log(&state.log)))
        }
        ("GET", "/_sim/log") => Reply::ok(json!(shared.lock().log)),
        ("GET", "/_sim/knobs") => Reply::ok(json!(shared.lock().knobs)),
        ("PUT" | "PATCH", "/_sim/knobs") => {
            let patch: Value = match serde_json::from_slice(body) {
                Ok(patch) => patch,
                Err(e) => return bad_request(format!("the knobs are not valid JSON: {e}")),
            };
            let mut state = shared.lock();
            let base = if method == "PUT" { Knobs::default() } else { state.knobs.clone() };
            match base.merged_with(&patch) {
                Ok(knobs) => {
                    state.set_knobs(knobs);
                    Reply::ok(json!(state.knobs))
                }
                Err(message) => bad_request(format!("knobs not applied: {message}")),
            }
        }
        ("GET", "/_sim/data") => Reply::ok(json!(shared.lock().config.data)),
        ("PUT", "/_sim/data") => match std::str::from_utf8(body)
            .map_err(|e| e.to_string())
            .and_then(|text| PlatformData::from_json(text).map_err(|e| format!("{e:#}")))
        {
            Ok(data) => {
                shared.lock().config.data = data;
                Reply::empty(204)
            }
            Err(message) => bad_request(message),
        },
        ("POST", "/_sim/expire-tokens") => {
            let expired = shared.lock().expire_tokens(Instant::now());
            Reply::ok(json!({"expired": expired}))
        }
        ("POST", "/_sim/reset") => {
            shared.lock().reset();
            Reply::empty(204)
        }
        _ => Reply::json(
            404,
            json!({"error": "not_found", "message": format!("no admin route {method} {path}; GET /_sim lists them")}),
        ),
    }
}
