//! Bad input through the real `webinar-bridge serve` HTTP server (DESIGN 7 and 10, issue 8): one
//! row per refusal the API documents, each asserting the status, the JSON error body
//! `{"error","message",...}` with a sentence a person can act on, and, for the whole table, that
//! nothing was enqueued, nothing reached KlickTipp and nothing of the requests reached the logs.
//! A valid request at the end proves the same server would have accepted and applied them.
//!
//! Needs `cargo build --workspace` first (the harness says so if the binary is missing).

use chrono::Utc;
use klicktipp_sim::Simulator;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempfile::TempDir;
use webinar_bridge::adapters::memory::QueueSettings;
use webinar_bridge::adapters::sqlite::{SqliteEventLog, SqliteQueue};
use webinar_bridge::domain::EventId;
use webinar_bridge::ports::{EventLog, EventStatus, FinalOutcome};
use webinar_bridge_tests::harness::{self, BridgeEnv, GENERIC_SECRET, ServeProcess, WEBINARJAM_SECRET, ZOOM_SECRET};

const EVERWEBINAR_SECRET: &str = "ew-bad-input-secret";
const DRAIN_TIMEOUT: Duration = Duration::from_secs(45);
/// Longer than serve's idle poll (100 ms) several times over: anything enqueued would be consumed.
const CONSUMER_GRACE: Duration = Duration::from_millis(600);
/// Every address in a refused request starts with this, so the logs can be searched for it.
const REFUSED_EMAIL_PREFIX: &str = "refused-";

// ---------------------------------------------------------------------------------------------
// Requests

/// One malformed request and the refusal DESIGN 7 prescribes for it.
struct Row {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    status: u16,
    error: &'static str,
}

impl Row {
    fn post(name: &'static str, path: &str, headers: Vec<(String, String)>, body: impl Into<Vec<u8>>) -> Self {
        Self { name, method: "POST", path: path.to_owned(), headers, body: body.into(), status: 0, error: "" }
    }

    fn with_method(mut self, method: &'static str) -> Self {
        self.method = method;
        self
    }

    fn refused(mut self, status: u16, error: &'static str) -> Self {
        self.status = status;
        self.error = error;
        self
    }

    /// An authenticated WebinarJam/EverWebinar body that cannot become an event: `serve` parks it
    /// (202, issue 15) with the refusal's code instead of answering it (every such row of the
    /// table carries the secret).
    fn is_parked(&self) -> bool {
        matches!(self.status, 400 | 422)
            && (self.path.starts_with("/hooks/webinarjam/") || self.path.starts_with("/hooks/everwebinar/"))
    }
}

fn header(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_owned(), value.into())
}

fn json_type() -> (String, String) {
    header("content-type", "application/json")
}

fn bearer(secret: &str) -> (String, String) {
    header("authorization", format!("Bearer {secret}"))
}

fn refused_email(row: usize) -> String {
    format!("{REFUSED_EMAIL_PREFIX}{row}@example.com")
}

fn webinarjam_body(email: &str) -> Vec<u8> {
    json!({"email": email, "first_name": "Erika", "webinar_id": "123", "webinar_name": "Masterclass"})
        .to_string()
        .into_bytes()
}

fn zoom_body(email: &str) -> String {
    json!({
        "event": "webinar.registration_created",
        "event_ts": Utc::now().timestamp_millis(),
        "payload": {"object": {"id": 85012345678_u64, "topic": "Demo Webinar", "registrant": {"email": email}}},
    })
    .to_string()
}

fn generic_body(email: &str) -> String {
    json!({"kind": "registered", "contact": {"email": email}, "webinar": {"id": "w1", "name": "Demo"}}).to_string()
}

/// Zoom's headers signed with `secret` at now + `clock_offset` seconds.
fn zoom_signed(body: &str, clock_offset: i64) -> Vec<(String, String)> {
    harness::zoom_headers(body, Utc::now().timestamp() + clock_offset)
}

/// Correctly signed, but for a body one space longer: what a tampered body looks like.
fn zoom_signed_for_another_body(body: &str) -> Vec<(String, String)> {
    let mut headers = zoom_signed(body, 0);
    headers[2] = zoom_signed(&format!("{body} "), 0).remove(2);
    headers
}

fn standard_webhooks_signed(webhook_id: &str, body: &str, clock_offset: i64) -> Vec<(String, String)> {
    harness::standard_webhook_headers(webhook_id, Utc::now().timestamp() + clock_offset, body)
}

/// The table: every status of DESIGN 7, most with several causes. Signatures are made at the
/// moment the table is built, well inside the five-minute window of the run.
fn table() -> Vec<Row> {
    let oversized_invalid_json = b"{\"email\": [".repeat(300 * 1024 / 11);
    let mut rows = vec![
        // 400: the body cannot be read as what the source expects.
        Row::post(
            "WebinarJam JSON cut off",
            "/hooks/webinarjam/registered",
            vec![json_type(), bearer(WEBINARJAM_SECRET)],
            format!("{{\"email\": \"{}\",", refused_email(0)),
        )
        .refused(400, "malformed_json"),
        Row::post(
            "WebinarJam JSON array instead of an object",
            "/hooks/webinarjam/registered",
            vec![json_type(), bearer(WEBINARJAM_SECRET)],
            format!("[{{\"email\": \"{}\"}}]", refused_email(1)),
        )
        .refused(400, "malformed_body"),
        {
            let body = "{\"payload\": {\"object\": {}}}";
            Row::post("Zoom JSON without an event name", "/hooks/zoom", zoom_signed(body, 0), body)
                .refused(400, "malformed_body")
        },
        {
            let body = format!("[{}", generic_body(&refused_email(3)));
            let headers = standard_webhooks_signed("msg_bad_400", &body, 0);
            Row::post("generic JSON array never closed", "/hooks/generic/Livestorm", headers, body)
                .refused(400, "malformed_json")
        },
        // Broken escapes are kept as text, so such a form lacks fields and is a 422; an escape
        // that decodes to invalid UTF-8 is a 400 naming the field (issue 12).
        Row::post(
            "WebinarJam form with broken escapes and no e-mail",
            "/hooks/webinarjam/registered",
            vec![header("content-type", "application/x-www-form-urlencoded"), bearer(WEBINARJAM_SECRET)],
            "em%ZZail=%&webinar_id=123&&=",
        )
        .refused(422, "missing_email"),
        Row::post(
            "WebinarJam form with invalid UTF-8",
            "/hooks/webinarjam/registered",
            vec![header("content-type", "application/x-www-form-urlencoded"), bearer(WEBINARJAM_SECRET)],
            "email=refused-utf8%40example.com&webinar_id=%E2%28",
        )
        .refused(400, "invalid_utf8"),
        // 401: no or wrong secret, signature or timestamp.
        Row::post(
            "WebinarJam without a secret",
            "/hooks/webinarjam/registered",
            vec![json_type()],
            webinarjam_body(&refused_email(5)),
        )
        .refused(401, "missing_secret"),
        Row::post(
            "WebinarJam with a wrong bearer secret",
            "/hooks/webinarjam/registered",
            vec![json_type(), bearer("not-the-secret")],
            webinarjam_body(&refused_email(6)),
        )
        .refused(401, "invalid_secret"),
        Row::post(
            "EverWebinar with a wrong ?token=",
            "/hooks/everwebinar/registered?token=not-the-secret",
            vec![json_type()],
            webinarjam_body(&refused_email(7)),
        )
        .refused(401, "invalid_secret"),
        {
            let body = zoom_body(&refused_email(8));
            Row::post("Zoom unsigned", "/hooks/zoom", vec![json_type()], body).refused(401, "invalid_signature")
        },
        {
            let body = zoom_body(&refused_email(9));
            Row::post("Zoom signature of another body", "/hooks/zoom", zoom_signed_for_another_body(&body), body)
                .refused(401, "invalid_signature")
        },
        {
            let body = zoom_body(&refused_email(10));
            Row::post("Zoom timestamp 10 minutes old", "/hooks/zoom", zoom_signed(&body, -600), body)
                .refused(401, "stale_timestamp")
        },
        {
            let body = zoom_body(&refused_email(11));
            Row::post("Zoom timestamp 10 minutes ahead", "/hooks/zoom", zoom_signed(&body, 600), body)
                .refused(401, "stale_timestamp")
        },
        {
            let body = generic_body(&refused_email(12));
            let mut headers = standard_webhooks_signed("msg_bad_401", &body, 0);
            headers[3] = header("webhook-signature", "v1,c2lnbmVkIHdpdGggYW5vdGhlciBrZXkgYnkgbWFsbG9yeQ==");
            Row::post("Standard Webhooks signature of another key", "/hooks/generic/Livestorm", headers, body)
                .refused(401, "invalid_signature")
        },
        {
            let body = generic_body(&refused_email(13));
            let headers = standard_webhooks_signed("msg_stale", &body, -600);
            Row::post("Standard Webhooks timestamp 10 minutes old", "/hooks/generic/Livestorm", headers, body)
                .refused(401, "stale_timestamp")
        },
        Row::post("generic unsigned", "/hooks/generic/Livestorm", vec![json_type()], generic_body(&refused_email(14)))
            .refused(401, "missing_signature"),
        // 404: no such route.
        Row::post(
            "unknown platform",
            "/hooks/unknown/registered",
            vec![json_type()],
            webinarjam_body(&refused_email(15)),
        )
        .refused(404, "not_found"),
        Row::post("path below Zoom's", "/hooks/zoom/extra", vec![json_type()], "{}").refused(404, "not_found"),
        Row::post("outside /hooks", "/webhooks/zoom", vec![json_type()], "{}").refused(404, "not_found"),
        // 405: hooks take POST only.
        Row::post("GET on the Zoom hook", "/hooks/zoom", vec![], "")
            .with_method("GET")
            .refused(405, "method_not_allowed"),
        Row::post(
            "PUT on a WebinarJam hook",
            "/hooks/webinarjam/registered",
            vec![json_type(), bearer(WEBINARJAM_SECRET)],
            webinarjam_body(&refused_email(20)),
        )
        .with_method("PUT")
        .refused(405, "method_not_allowed"),
        Row::post("POST on /health", "/health", vec![json_type()], "{}").refused(405, "method_not_allowed"),
        // 413: the size is checked before anything is parsed, even before routing.
        Row::post(
            "300 KiB of invalid JSON, authenticated",
            "/hooks/webinarjam/registered",
            vec![json_type(), bearer(WEBINARJAM_SECRET)],
            oversized_invalid_json.clone(),
        )
        .refused(413, "payload_too_large"),
        Row::post(
            "300 KiB of invalid JSON, unsigned",
            "/hooks/generic/Livestorm",
            vec![json_type()],
            oversized_invalid_json.clone(),
        )
        .refused(413, "payload_too_large"),
        Row::post("300 KiB to an unknown route", "/hooks/unknown/x", vec![json_type()], oversized_invalid_json)
            .refused(413, "payload_too_large"),
        // 415: a content type the source does not read.
        Row::post(
            "WebinarJam as XML",
            "/hooks/webinarjam/registered",
            vec![header("content-type", "application/xml"), bearer(WEBINARJAM_SECRET)],
            format!("<email>{}</email>", refused_email(24)),
        )
        .refused(415, "unsupported_media_type"),
        {
            let body = zoom_body(&refused_email(25));
            let mut headers = zoom_signed(&body, 0);
            headers[0] = header("content-type", "text/plain");
            Row::post("Zoom as text/plain", "/hooks/zoom", headers, body).refused(415, "unsupported_media_type")
        },
        {
            let body = generic_body(&refused_email(26));
            let mut headers = standard_webhooks_signed("msg_bad_415", &body, 0);
            headers[0] = header("content-type", "application/x-www-form-urlencoded");
            Row::post("generic as a form", "/hooks/generic/Livestorm", headers, body)
                .refused(415, "unsupported_media_type")
        },
        // 422: readable, authentic, but not a usable event.
        Row::post(
            "WebinarJam without an e-mail",
            "/hooks/webinarjam/registered",
            vec![json_type(), bearer(WEBINARJAM_SECRET)],
            json!({"first_name": "Erika", "webinar_id": "123"}).to_string(),
        )
        .refused(422, "missing_email"),
        Row::post(
            "WebinarJam with an invalid e-mail",
            "/hooks/webinarjam/registered",
            vec![json_type(), bearer(WEBINARJAM_SECRET)],
            webinarjam_body(&format!("{REFUSED_EMAIL_PREFIX}28@@example")),
        )
        .refused(422, "invalid_email"),
        Row::post(
            "WebinarJam unknown kind",
            "/hooks/webinarjam/subscribed_to_newsletter",
            vec![json_type(), bearer(WEBINARJAM_SECRET)],
            webinarjam_body(&refused_email(29)),
        )
        .refused(422, "unknown_kind"),
        {
            let body = zoom_body(&format!("{REFUSED_EMAIL_PREFIX}30 at example.com"));
            Row::post("Zoom registrant with an invalid e-mail", "/hooks/zoom", zoom_signed(&body, 0), body)
                .refused(422, "invalid_email")
        },
        {
            let body = json!({"kind": "subscribed", "contact": {"email": refused_email(31)}, "webinar": {"id": "w1"}})
                .to_string();
            let headers = standard_webhooks_signed("msg_bad_kind", &body, 0);
            Row::post("generic unknown kind", "/hooks/generic/Livestorm", headers, body).refused(422, "unknown_kind")
        },
        {
            let body = json!({"kind": "registered", "contact": {}, "webinar": {"id": "w1"}}).to_string();
            let headers = standard_webhooks_signed("msg_no_email", &body, 0);
            Row::post("generic without an e-mail", "/hooks/generic/Livestorm", headers, body)
                .refused(422, "missing_email")
        },
    ];
    // EverWebinar has its own secret on this bridge, so its refusal comes from the body check.
    rows.push(
        Row::post(
            "EverWebinar missing e-mail",
            &format!("/hooks/everwebinar/registered?token={EVERWEBINAR_SECRET}"),
            vec![json_type()],
            json!({"webinar_id": "9"}).to_string(),
        )
        .refused(422, "missing_email"),
    );
    rows
}

// ---------------------------------------------------------------------------------------------
// A running bridge

struct Reply {
    status: u16,
    content_type: Option<String>,
    body: Value,
}

async fn send(http: &reqwest::Client, serve: &ServeProcess, row: &Row) -> Reply {
    let method = reqwest::Method::from_bytes(row.method.as_bytes()).expect("a method");
    let mut request = http.request(method, serve.url(&row.path)).body(row.body.clone());
    for (name, value) in &row.headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap_or_else(|error| panic!("{}: serve did not answer: {error}", row.name));
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|value| value.to_str().ok()).map(str::to_owned);
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{}: the body is not JSON: {text}", row.name));
    Reply { status, content_type, body }
}

/// DESIGN 7's error body: `error` is a code, `message` a sentence a person can act on, `field`
/// (when present) names a body field.
fn assert_error_body(row: &Row, reply: &Reply) {
    let context = format!("{} -> {} {}", row.name, reply.status, reply.body);
    assert_eq!((reply.status, reply.body["error"].as_str()), (row.status, Some(row.error)), "{context}");
    assert_eq!(reply.content_type.as_deref(), Some("application/json"), "{context}");
    let message = reply.body["message"].as_str().unwrap_or_default();
    assert!(
        message.split_whitespace().count() >= 4
            // A sentence may open with the field it is about: "'kind' is not a known event kind; ...".
            && message.starts_with(|c: char| c.is_uppercase() || c == '\'')
            && message.ends_with('.'),
        "not a sentence: {context}"
    );
    let keys: Vec<&String> = reply.body.as_object().map(|object| object.keys().collect()).unwrap_or_default();
    assert!(keys.iter().all(|key| ["error", "message", "field"].contains(&key.as_str())), "{context}");
    if let Some(field) = reply.body.get("field") {
        assert!(field.as_str().is_some_and(|field| !field.is_empty()), "{context}");
    }
}

/// The parked answer: `202 {"status":"parked","reason","code","field"?,"id"}`, the reason being
/// the sentence the refusal would have had.
fn assert_parked_body(row: &Row, reply: &Reply) {
    let context = format!("{} -> {} {}", row.name, reply.status, reply.body);
    assert_eq!(
        (reply.status, reply.body["status"].as_str(), reply.body["code"].as_str()),
        (202, Some("parked"), Some(row.error)),
        "{context}"
    );
    assert_eq!(reply.content_type.as_deref(), Some("application/json"), "{context}");
    let reason = reply.body["reason"].as_str().unwrap_or_default();
    assert!(reason.split_whitespace().count() >= 4 && reason.ends_with('.'), "not a sentence: {context}");
    assert!(reply.body["id"].as_str().is_some_and(|id| !id.is_empty()), "{context}");
}

struct Bridge {
    serve: ServeProcess,
    db_path: PathBuf,
    _dir: TempDir,
}

impl Bridge {
    async fn start(simulator: &Simulator, configure: impl FnOnce(BridgeEnv) -> BridgeEnv) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db_path = dir.path().join("bridge.db");
        let env = configure(
            BridgeEnv::for_simulator(&simulator.url(), &db_path).set("BRIDGE_EVERWEBINAR_SECRET", EVERWEBINAR_SECRET),
        );
        let serve = ServeProcess::start(&env, &[]).await;
        Self { serve, db_path, _dir: dir }
    }

    async fn pending_and_dead_letters(&self) -> (usize, usize) {
        pending_and_dead_letters(&self.db_path).await
    }

    /// SIGTERM (serve must exit 0), then the queue as serve left it in its file.
    async fn stop(self) -> (usize, usize) {
        let Bridge { serve, db_path, _dir } = self;
        assert!(serve.terminate().await.success(), "serve exits 0 on SIGTERM");
        pending_and_dead_letters(&db_path).await
    }

    /// serve's banner and JSON logs must not show a refused request's address, nor a secret.
    fn assert_output_is_clean(&self) {
        let output = format!("{}\n{}", self.serve.stdout_text(), self.serve.stderr_text());
        for secret in [WEBINARJAM_SECRET, EVERWEBINAR_SECRET, ZOOM_SECRET, GENERIC_SECRET, harness::SIM_PASSWORD] {
            assert!(!output.contains(secret), "a secret appeared in serve's output");
        }
        assert!(!output.contains(REFUSED_EMAIL_PREFIX), "a refused request's address appeared in serve's output");
    }
}

async fn pending_and_dead_letters(db_path: &Path) -> (usize, usize) {
    let queue = SqliteQueue::new(harness::open_db(db_path), QueueSettings::default());
    (queue.pending().await.expect("pending"), queue.dead_letters().await.expect("dead letters").len())
}

fn calls_since(simulator: &Simulator, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    harness::calls_since(simulator, before)
}

// ---------------------------------------------------------------------------------------------
// The test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_request_is_a_json_4xx_and_enqueues_nothing() {
    let simulator = harness::start_simulator().await;
    let bridge = Bridge::start(&simulator, |env| env).await;
    let http = reqwest::Client::new();
    let calls_before = simulator.calls_by_endpoint();

    let rows = table();
    let statuses: std::collections::BTreeSet<u16> = rows.iter().map(|row| row.status).collect();
    assert_eq!(statuses.into_iter().collect::<Vec<_>>(), [400, 401, 404, 405, 413, 415, 422], "one row per status");
    for row in &rows {
        let reply = send(&http, &bridge.serve, row).await;
        if row.is_parked() {
            assert_parked_body(row, &reply);
        } else {
            assert_error_body(row, &reply);
        }
    }

    // A source whose secret is not set does not exist: a second serve without the generic one.
    let without_generic = Bridge::start(&simulator, |env| env.remove("BRIDGE_GENERIC_SECRET")).await;
    let body = generic_body(&refused_email(99));
    let disabled = Row::post(
        "generic on a bridge without BRIDGE_GENERIC_SECRET",
        "/hooks/generic/Livestorm",
        standard_webhooks_signed("msg_disabled", &body, 0),
        body,
    )
    .refused(404, "source_disabled");
    let reply = send(&http, &without_generic.serve, &disabled).await;
    assert_error_body(&disabled, &reply);
    assert!(reply.body["message"].as_str().is_some_and(|message| message.contains("BRIDGE_GENERIC_SECRET")));

    // Nothing was enqueued: the consumers had time to act on anything, yet KlickTipp saw no call
    // and both queues are empty, without dead letters.
    tokio::time::sleep(CONSUMER_GRACE).await;
    assert_eq!(calls_since(&simulator, &calls_before), BTreeMap::new(), "a refused request reached KlickTipp");
    assert!(simulator.contacts().is_empty());
    assert_eq!(bridge.pending_and_dead_letters().await, (0, 0), "a refused request was enqueued");
    assert_eq!(without_generic.pending_and_dead_letters().await, (0, 0), "a refused request was enqueued");
    without_generic.assert_output_is_clean();
    assert_eq!(without_generic.stop().await, (0, 0));

    // The same server accepts and applies a valid request.
    let valid = Row::post(
        "valid WebinarJam registration",
        "/hooks/webinarjam/registered",
        vec![json_type(), bearer(WEBINARJAM_SECRET)],
        webinarjam_body("accepted@example.com"),
    );
    let reply = send(&http, &bridge.serve, &valid).await;
    assert_eq!((reply.status, reply.body["status"].as_str()), (200, Some("accepted")), "{}", reply.body);
    let event_id = reply.body["event_id"].as_str().expect("an event id").to_owned();
    let db = harness::open_db(&bridge.db_path);
    harness::wait_until_drained(&db, DRAIN_TIMEOUT).await;
    let tags = harness::tags_by_email(&simulator);
    assert_eq!(tags.keys().collect::<Vec<_>>(), ["accepted@example.com"], "only the valid request reached KlickTipp");
    let record =
        SqliteEventLog::new(db).get(&EventId::from_sender(&event_id).expect("an id")).await.expect("event log");
    assert_eq!(record.map(|record| record.status), Some(EventStatus::Completed(FinalOutcome::Applied)));

    bridge.assert_output_is_clean();
    assert_eq!(bridge.stop().await, (0, 0), "after the valid request: applied, nothing pending, no dead letter");
    simulator.shutdown().await;
}
