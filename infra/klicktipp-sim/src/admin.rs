//! `/_sim/*`: introspection and control. No auth, never logged, counted or rate limited.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::clock::unix_now;
use crate::knobs::Knobs;
use crate::reply::Reply;
use crate::server::Shared;
use crate::state::SimState;

const KNOWN_PATHS: [&str; 8] = [
    "/_sim",
    "/_sim/contacts",
    "/_sim/tags",
    "/_sim/requests",
    "/_sim/calls",
    "/_sim/knobs",
    "/_sim/reset",
    "/_sim/confirm",
];

pub(crate) fn handle(shared: &Shared, method: &str, path: &str, body: &[u8]) -> Reply {
    let path = path.trim_end_matches('/');
    let mut state = shared.lock();
    match (method, path) {
        ("GET", "/_sim") => Reply::html(200, overview_page(&state)),
        ("GET", "/_sim/contacts") => Reply::ok(json!(state.contact_views())),
        ("GET", "/_sim/tags") => Reply::ok(json!(state.tag_names())),
        ("GET", "/_sim/requests") => Reply::ok(json!(state.log)),
        ("GET", "/_sim/calls") => Reply::ok(calls_summary(&state)),
        ("GET", "/_sim/knobs") => Reply::ok(json!(state.knobs)),
        ("PUT", "/_sim/knobs") => match serde_json::from_slice::<Knobs>(body) {
            Ok(knobs) => {
                state.set_knobs(knobs);
                Reply::ok(json!(state.knobs))
            }
            Err(e) => bad_request(&format!("invalid knobs: {e}")),
        },
        ("PATCH", "/_sim/knobs") => {
            let merged = serde_json::from_slice::<Value>(body)
                .map_err(|e| e.to_string())
                .and_then(|patch| state.knobs.merged_with(&patch));
            match merged {
                Ok(knobs) => {
                    state.set_knobs(knobs);
                    Reply::ok(json!(state.knobs))
                }
                Err(e) => bad_request(&format!("invalid knobs patch: {e}")),
            }
        }
        ("POST", "/_sim/reset") => {
            state.reset();
            Reply::ok(json!({"reset": true}))
        }
        ("POST", "/_sim/confirm") => {
            let email = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("email").and_then(Value::as_str).map(str::to_owned));
            match email {
                Some(email) => {
                    let confirmed = state.confirm_optin(&email, unix_now());
                    Reply::ok(json!({"confirmed": confirmed}))
                }
                None => bad_request("expected {\"email\": \"...\"}"),
            }
        }
        (_, known) if KNOWN_PATHS.contains(&known) => Reply::json(
            405,
            json!({"error": "method_not_allowed", "message": format!("{method} is not supported on {known}")}),
        ),
        _ => Reply::json(404, json!({"error": "not_found", "message": format!("no simulator route {path}")})),
    }
}

fn bad_request(message: &str) -> Reply {
    Reply::json(400, json!({"error": "bad_request", "message": message}))
}

fn calls_summary(state: &SimState) -> Value {
    let by_status: serde_json::Map<String, Value> =
        state.calls_by_status.iter().map(|(status, count)| (status.to_string(), json!(count))).collect();
    json!({
        "calls_by_endpoint": state.calls_by_endpoint,
        "total": state.log.len(),
        "by_status": by_status,
    })
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// A page a person can read: contacts with tags and fields, the tag list, counters.
fn overview_page(state: &SimState) -> String {
    let contacts = state.contact_views();
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>KlickTipp simulator</title>\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}</style>\
         </head><body><h1>KlickTipp simulator</h1>",
    );
    let _ = write!(
        html,
        "<p>{} contacts, {} tags, {} API calls. JSON: <a href=\"/_sim/contacts\">contacts</a>, \
         <a href=\"/_sim/tags\">tags</a>, <a href=\"/_sim/requests\">requests</a>, \
         <a href=\"/_sim/calls\">calls</a>, <a href=\"/_sim/knobs\">knobs</a>.</p>",
        contacts.len(),
        state.tags.len(),
        state.log.len()
    );
    html.push_str(
        "<h2>Contacts</h2><table><tr><th>id</th><th>email</th><th>status</th><th>list</th><th>tags</th><th>fields</th></tr>",
    );
    for contact in &contacts {
        let tags: Vec<String> = contact.tags.iter().map(|t| escape(t)).collect();
        let fields: Vec<String> =
            contact.fields.iter().map(|(key, value)| format!("{}: {}", escape(key), escape(value))).collect();
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            contact.id,
            escape(&contact.email),
            escape(&contact.status),
            contact.listid,
            tags.join("<br>"),
            fields.join("<br>")
        );
    }
    html.push_str("</table><h2>Tags</h2><table><tr><th>id</th><th>name</th></tr>");
    for (id, name) in state.tag_names() {
        let _ = write!(html, "<tr><td>{id}</td><td>{}</td></tr>", escape(&name));
    }
    html.push_str("</table></body></html>");
    html
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("<b a=\"x\">&'"), "&lt;b a=&quot;x&quot;&gt;&amp;&#39;");
    }
}
