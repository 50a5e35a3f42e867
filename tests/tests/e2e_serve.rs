//! `webinar-bridge serve` end to end: the built binary as a subprocess on a free port, a KlickTipp
//! simulator in this process (so faults can be injected and calls counted), webhooks over HTTP,
//! outcomes read back from the simulator and from serve's SQLite file. Also the discovery
//! commands, and the same use cases in-process over the memory and the SQLite adapters.
//!
//! Needs `cargo build --workspace` first (the harness says so if the binary is missing).

use chrono::{DateTime, Utc};
use klicktipp_sim::{Knobs, Simulator};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;
use tempfile::TempDir;
use webinar_bridge::adapters::memory::QueueSettings;
use webinar_bridge::adapters::sqlite::{SqliteDb, SqliteEventLog, SqliteQueue};
use webinar_bridge::domain::EventId;
use webinar_bridge::ports::{EventLog, EventStatus, FinalOutcome};
use webinar_bridge::sources::{MAX_BODY_BYTES, RawRequest};
use webinar_bridge_tests::harness::{
    self, Backend, BridgeEnv, GENERIC_SECRET, Pipeline, ServeProcess, WEBINARJAM_SECRET, ZOOM_SECRET, calls,
    calls_since,
};

/// 2026-02-10 19:00 at GMT+1, the WebinarJam Masterclass.
const MASTERCLASS_START: &str = "1770746400";
const MASTERCLASS_ROOM: &str = "https://event.webinarjam.com/live/123/45";
/// 2026-01-15T17:00:00Z, the Zoom Demo Webinar.
const DEMO_START: &str = "1768496400";
const DRAIN_TIMEOUT: Duration = Duration::from_secs(45);

// ---------------------------------------------------------------------------------------------
// A running bridge

struct Reply {
    status: u16,
    content_type: Option<String>,
    body: Value,
}

impl Reply {
    fn event_id(&self) -> String {
        assert_eq!((self.status, self.body["status"].as_str()), (200, Some("accepted")), "{}", self.body);
        self.body["event_id"].as_str().expect("an event id").to_owned()
    }

    fn error(&self) -> (u16, &str) {
        (self.status, self.body["error"].as_str().unwrap_or("(no error code)"))
    }
}

/// serve + its simulator + a second connection to its database.
struct Bridge {
    simulator: Simulator,
    serve: ServeProcess,
    db: SqliteDb,
    db_path: PathBuf,
    env: BridgeEnv,
    http: reqwest::Client,
    _dir: TempDir,
}

impl Bridge {
    async fn start(knobs: Knobs, rps: &str, serve_args: &[&str]) -> Self {
        let simulator = harness::start_simulator().await;
        simulator.set_knobs(knobs);
        let dir = tempfile::tempdir().expect("temp dir");
        let db_path = dir.path().join("bridge.db");
        let env = BridgeEnv::for_simulator(&simulator.url(), &db_path).set("BRIDGE_KLICKTIPP_RPS", rps);
        let serve = ServeProcess::start(&env, serve_args).await;
        let db = harness::open_db(&db_path);
        Self { simulator, serve, db, db_path, env, http: reqwest::Client::new(), _dir: dir }
    }

    async fn post(&self, path: &str, headers: &[(String, String)], body: impl Into<reqwest::Body>) -> Reply {
        let mut request = self.http.post(self.serve.url(path)).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        read_reply(request.send().await.expect("serve answers")).await
    }

    async fn webinarjam_json(&self, kind: &str, body: &Value) -> Reply {
        let headers = [
            header("content-type", "application/json"),
            header("authorization", &format!("Bearer {WEBINARJAM_SECRET}")),
        ];
        self.post(&format!("/hooks/webinarjam/{kind}"), &headers, body.to_string()).await
    }

    async fn webinarjam_form(&self, kind: &str, body: &Value) -> Reply {
        let headers = [header("content-type", "application/x-www-form-urlencoded")];
        self.post(&format!("/hooks/webinarjam/{kind}?token={WEBINARJAM_SECRET}"), &headers, form(body)).await
    }

    /// Signed now, as Zoom would.
    async fn zoom(&self, body: &Value) -> Reply {
        let body = body.to_string();
        self.post("/hooks/zoom", &harness::zoom_headers(&body, Utc::now().timestamp()), body).await
    }

    async fn generic(&self, tool: &str, webhook_id: &str, body: &Value) -> Reply {
        let body = body.to_string();
        let headers = harness::standard_webhook_headers(webhook_id, Utc::now().timestamp(), &body);
        self.post(&format!("/hooks/generic/{tool}"), &headers, body).await
    }

    async fn settle(&self) {
        harness::wait_until_drained(&self.db, DRAIN_TIMEOUT).await;
    }

    /// Settles, then compares the KlickTipp calls made since `before` with `expected`.
    async fn expect_calls(&self, before: &BTreeMap<String, u64>, expected: &[(&str, u64)], step: &str) {
        self.settle().await;
        assert_eq!(calls_since(&self.simulator, before), calls(expected), "KlickTipp calls for: {step}");
    }

    async fn outcome(&self, event_id: &str) -> EventStatus {
        let id = EventId::from_sender(event_id).expect("a valid event id");
        let record = SqliteEventLog::new(self.db.clone()).get(&id).await.expect("read the event log");
        record.unwrap_or_else(|| panic!("no event log record for {event_id}")).status
    }

    async fn dead_letters(&self) -> usize {
        SqliteQueue::new(self.db.clone(), QueueSettings::default()).dead_letters().await.expect("dead letters").len()
    }

    /// Logs and banner must never show a secret or a contact's address.
    fn assert_output_is_clean(&self, emails: &[&str]) {
        let output = format!("{}\n{}", self.serve.stdout_text(), self.serve.stderr_text());
        for secret in [WEBINARJAM_SECRET, ZOOM_SECRET, GENERIC_SECRET, harness::SIM_PASSWORD] {
            assert!(!output.contains(secret), "a secret appeared in serve's output");
        }
        for email in emails {
            assert!(!output.contains(email), "{email} appeared in serve's output");
        }
    }
}

async fn read_reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|value| value.to_str().ok()).map(str::to_owned);
    let body = response.json::<Value>().await.expect("a JSON body");
    Reply { status, content_type, body }
}

fn header(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

/// A flat JSON object as `application/x-www-form-urlencoded`.
fn form(body: &Value) -> String {
    let object = body.as_object().expect("a flat object");
    let pairs: Vec<String> = object
        .iter()
        .map(|(key, value)| {
            let text = value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string());
            format!("{}={}", percent_encode(key), percent_encode(&text))
        })
        .collect();
    pairs.join("&")
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Requests

/// A WebinarJam Masterclass webhook for `email` with `extra` fields.
fn masterclass(email: &str, extra: Value) -> Value {
    let mut body = json!({
        "webinar_id": "123", "webinar_name": "Masterclass", "schedule": "45", "date": "2026-02-10 19:00",
        "timezone": "GMT+1", "email": email, "live_room_url": MASTERCLASS_ROOM,
    });
    merge(&mut body, extra);
    body
}

fn merge(body: &mut Value, extra: Value) {
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
}

fn demo_webinar(extra: Value) -> Value {
    let mut object = json!({
        "uuid": "k7Zq9XvRTn2wYb3cQp1Lmg==", "id": 85012345678_u64, "host_id": "HoSt_1", "topic": "Demo Webinar",
        "type": 5, "start_time": "2026-01-15T17:00:00Z", "duration": 60, "timezone": "Europe/Berlin",
    });
    merge(&mut object, extra);
    object
}

fn zoom_registration(event: &str, event_ts: i64, first: &str, last: &str, email: &str) -> Value {
    let registrant = json!({"id": format!("reg_{first}"), "first_name": first, "last_name": last, "email": email,
        "join_url": format!("https://us06web.zoom.us/w/85012345678?tk={first}")});
    json!({"event": event, "event_ts": event_ts, "payload": {"account_id": "AbCdEf123",
        "object": demo_webinar(json!({"registrant": registrant}))}})
}

fn zoom_participant(event: &str, event_ts: i64, email: &str, join: &str, leave: Option<&str>) -> Value {
    let mut participant = json!({"user_id": "16778240", "user_name": "Someone", "email": email, "join_time": join});
    if let Some(leave) = leave {
        merge(&mut participant, json!({"leave_time": leave}));
    }
    json!({"event": event, "event_ts": event_ts, "payload": {"account_id": "AbCdEf123",
        "object": demo_webinar(json!({"id": "85012345678", "participant": participant}))}})
}

fn generic_registration(email: &str, first: &str, last: &str) -> Value {
    json!({"kind": "registered", "occurred_at": "2026-01-10T09:15:00Z",
        "contact": {"email": email, "first_name": first, "last_name": last},
        "webinar": {"id": "4711", "name": "Product Tour", "starts_at": "2026-01-20T16:00:00Z",
            "join_url": "https://app.livestorm.co/p/4711/live", "duration_minutes": 45}})
}

fn tags(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect()
}

// ---------------------------------------------------------------------------------------------
// The webinar lifecycle, call by call

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webinar_lifecycle_makes_exactly_the_needed_calls() {
    let bridge = Bridge::start(Knobs::default(), "50", &[]).await;
    let sim = &bridge.simulator;
    let stdout = bridge.serve.stdout_text();
    assert!(
        stdout.contains(&format!(
            "WebinarJam: POST {}",
            bridge.serve.url("/hooks/webinarjam/{kind}?token=<BRIDGE_WEBINARJAM_SECRET>")
        )),
        "{stdout}"
    );
    assert!(stdout.contains("EverWebinar: disabled; set BRIDGE_EVERWEBINAR_SECRET to enable it"), "{stdout}");

    let before = sim.calls_by_endpoint();
    let erika = masterclass("erika@example.com", json!({"first_name": "Erika", "last_name": "Muster"}));
    let first = bridge.webinarjam_form("registered", &erika).await.event_id();
    let first_registration = [("POST /account/login", 1), ("GET /tag", 1), ("POST /tag", 1), ("POST /subscriber", 1)];
    bridge.expect_calls(&before, &first_registration, "first registration").await;

    let before = sim.calls_by_endpoint();
    assert_eq!(bridge.webinarjam_form("registered", &erika).await.event_id(), first, "same webhook, same id");
    bridge.expect_calls(&before, &[], "the identical webhook again").await;

    let before = sim.calls_by_endpoint();
    let max = masterclass("max@example.org", json!({"first_name": "Max", "last_name": "Mustermann"}));
    bridge.webinarjam_json("registered", &max).await.event_id();
    bridge.expect_calls(&before, &[("POST /subscriber", 1)], "a second registration (tag known)").await;

    let before = sim.calls_by_endpoint();
    bridge
        .zoom(&zoom_registration(
            "webinar.registration_created",
            1_767_088_800_000,
            "Paul",
            "Probe",
            "paul@example.net",
        ))
        .await
        .event_id();
    bridge.expect_calls(&before, &[("POST /tag", 1), ("POST /subscriber", 1)], "Zoom registration").await;

    let before = sim.calls_by_endpoint();
    bridge
        .zoom(&zoom_registration(
            "webinar.registration_created",
            1_767_175_200_000,
            "Anna",
            "Beispiel",
            "anna@example.com",
        ))
        .await
        .event_id();
    bridge.expect_calls(&before, &[("POST /subscriber", 1)], "second Zoom registration").await;

    let before = sim.calls_by_endpoint();
    bridge
        .zoom(&zoom_registration(
            "webinar.registration_cancelled",
            1_767_261_600_000,
            "Anna",
            "Beispiel",
            "anna@example.com",
        ))
        .await
        .event_id();
    let cancel = [("POST /tag", 1), ("POST /subscriber/tag", 1), ("POST /subscriber/untag", 1)];
    bridge.expect_calls(&before, &cancel, "Zoom cancellation").await;

    let before = sim.calls_by_endpoint();
    let attended = masterclass("erika@example.com", json!({"webinar_duration": 60, "time_live": "00:55:00"}));
    bridge.webinarjam_json("attended", &attended).await.event_id();
    let attended_calls = [("POST /tag", 2), ("POST /subscriber", 1), ("POST /subscriber/tag", 1)];
    bridge.expect_calls(&before, &attended_calls, "attended 55 of 60 minutes (minutes field changed)").await;

    let before = sim.calls_by_endpoint();
    bridge.webinarjam_json("no_show", &masterclass("max@example.org", json!({}))).await.event_id();
    bridge.expect_calls(&before, &[("POST /tag", 1), ("POST /subscriber/tag", 1)], "no-show").await;

    let before = sim.calls_by_endpoint();
    bridge.webinarjam_json("no_show", &masterclass("erika@example.com", json!({}))).await.event_id();
    bridge.expect_calls(&before, &[], "a late no-show after attendance").await;

    let before = sim.calls_by_endpoint();
    bridge
        .webinarjam_json("replay_watched", &masterclass("max@example.org", json!({"time_replay": "00:25:00"})))
        .await
        .event_id();
    bridge.expect_calls(&before, &[("POST /tag", 1), ("POST /subscriber/tag", 1)], "replay").await;

    let before = sim.calls_by_endpoint();
    bridge
        .webinarjam_form("purchased", &masterclass("erika@example.com", json!({"revenue_live": "$497.00"})))
        .await
        .event_id();
    bridge.expect_calls(&before, &[("POST /tag", 1), ("POST /subscriber", 1)], "purchase (amount field changed)").await;

    let before = sim.calls_by_endpoint();
    let joined = zoom_participant(
        "webinar.participant_joined",
        1_768_496_520_000,
        "paul@example.net",
        "2026-01-15T17:02:00Z",
        None,
    );
    bridge.zoom(&joined).await.event_id();
    bridge.expect_calls(&before, &[("POST /tag", 1), ("POST /subscriber/tag", 1)], "Zoom participant joined").await;

    let before = sim.calls_by_endpoint();
    let left = zoom_participant(
        "webinar.participant_left",
        1_768_499_520_000,
        "paul@example.net",
        "2026-01-15T17:02:00Z",
        Some("2026-01-15T17:52:00Z"),
    );
    bridge.zoom(&left).await.event_id();
    bridge
        .expect_calls(
            &before,
            &[("POST /tag", 1), ("POST /subscriber", 1)],
            "Zoom participant left after 50 of 60 minutes",
        )
        .await;

    let before = sim.calls_by_endpoint();
    let lena = generic_registration("lena@example.org", "Lena", "Schmidt");
    let generic_id = bridge.generic("Livestorm", "msg_lena_1", &lena).await.event_id();
    bridge.expect_calls(&before, &[("POST /tag", 1), ("POST /subscriber", 1)], "generic signed registration").await;

    let before = sim.calls_by_endpoint();
    assert_eq!(
        bridge.generic("Livestorm", "msg_lena_1", &lena).await.event_id(),
        generic_id,
        "redelivery keeps its id"
    );
    let disabled = bridge
        .post("/hooks/everwebinar/registered?token=x", &[], masterclass("x@example.com", json!({})).to_string())
        .await;
    assert_eq!(disabled.error(), (404, "source_disabled"));
    bridge.expect_calls(&before, &[], "a redelivered generic event and a disabled source").await;

    let expected = BTreeMap::from([
        (
            "anna@example.com",
            (
                tags(&["[Zoom] [Demo Webinar] Cancelled"]),
                fields(&[
                    ("fieldFirstName", "Anna"),
                    ("fieldLastName", "Beispiel"),
                    ("field101", DEMO_START),
                    ("field102", "https://us06web.zoom.us/w/85012345678?tk=Anna"),
                ]),
            ),
        ),
        (
            "erika@example.com",
            (
                tags(&[
                    "[WebinarJam] [Masterclass] Registered",
                    "[WebinarJam] [Masterclass] Attended",
                    "[WebinarJam] [Masterclass] Fully Attended",
                    "[WebinarJam] [Masterclass] Buyer",
                ]),
                fields(&[
                    ("fieldFirstName", "Erika"),
                    ("fieldLastName", "Muster"),
                    ("field101", MASTERCLASS_START),
                    ("field102", MASTERCLASS_ROOM),
                    ("field103", "55"),
                    ("field104", "49700"),
                ]),
            ),
        ),
        (
            "lena@example.org",
            (
                tags(&["[Livestorm] [Product Tour] Registered"]),
                fields(&[
                    ("fieldFirstName", "Lena"),
                    ("fieldLastName", "Schmidt"),
                    ("field101", "1768924800"),
                    ("field102", "https://app.livestorm.co/p/4711/live"),
                ]),
            ),
        ),
        (
            "max@example.org",
            (
                tags(&[
                    "[WebinarJam] [Masterclass] Registered",
                    "[WebinarJam] [Masterclass] Did Not Attend",
                    "[WebinarJam] [Masterclass] Replay Watched",
                ]),
                fields(&[
                    ("fieldFirstName", "Max"),
                    ("fieldLastName", "Mustermann"),
                    ("field101", MASTERCLASS_START),
                    ("field102", MASTERCLASS_ROOM),
                ]),
            ),
        ),
        (
            "paul@example.net",
            (
                tags(&[
                    "[Zoom] [Demo Webinar] Registered",
                    "[Zoom] [Demo Webinar] Attended",
                    "[Zoom] [Demo Webinar] Fully Attended",
                ]),
                fields(&[
                    ("fieldFirstName", "Paul"),
                    ("fieldLastName", "Probe"),
                    ("field101", DEMO_START),
                    ("field102", "https://us06web.zoom.us/w/85012345678?tk=Paul"),
                    ("field103", "50"),
                ]),
            ),
        ),
    ]);
    let actual: BTreeMap<String, (BTreeSet<String>, BTreeMap<String, String>)> = sim
        .contacts()
        .into_iter()
        .map(|contact| (contact.email, (contact.tags.into_iter().collect(), contact.fields)))
        .collect();
    let expected: BTreeMap<String, _> = expected.into_iter().map(|(email, state)| (email.to_owned(), state)).collect();
    assert_eq!(actual, expected);
    assert_eq!(bridge.dead_letters().await, 0);
    bridge.assert_output_is_clean(&[
        "erika@example.com",
        "max@example.org",
        "paul@example.net",
        "anna@example.com",
        "lena@example.org",
    ]);
    assert!(bridge.serve.terminate().await.success(), "serve exits 0 on SIGTERM");
}

// ---------------------------------------------------------------------------------------------
// The HTTP contract, on a serve without KlickTipp credentials (in-process simulator)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_a_json_error_and_enqueues_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db_path = dir.path().join("bridge.db");
    let env = BridgeEnv::with_sources().set("BRIDGE_DB", &db_path.to_string_lossy());
    let serve = ServeProcess::start(&env, &[]).await;
    let stdout = serve.stdout_text();
    assert!(
        stdout.contains("No KlickTipp credentials are configured: started the KlickTipp simulator in-process"),
        "{stdout}"
    );
    let inspection = stdout
        .lines()
        .find_map(|line| line.strip_prefix("Inspect the simulated KlickTipp contacts at "))
        .expect("the inspection URL")
        .to_owned();
    assert!(inspection.ends_with("/_sim/"), "{inspection}");
    let http = reqwest::Client::new();

    let health = read_reply(http.get(serve.url("/health")).send().await.expect("health")).await;
    assert_eq!(
        (health.status, health.content_type.as_deref(), &health.body),
        (200, Some("application/json"), &json!({"status": "ok"}))
    );

    let post = |path: &str, content_type: &str, body: Vec<u8>| {
        let request = http.post(serve.url(path)).header("content-type", content_type).body(body);
        async move { read_reply(request.send().await.expect("serve answers")).await }
    };
    let token = format!("?token={WEBINARJAM_SECRET}");
    let registered = masterclass("erika@example.com", json!({})).to_string().into_bytes();
    let cases: Vec<(Reply, (u16, &str))> = vec![
        (read_reply(http.get(serve.url("/hooks/zoom")).send().await.expect("GET")).await, (405, "method_not_allowed")),
        (post("/nowhere", "application/json", b"{}".to_vec()).await, (404, "not_found")),
        (
            post("/hooks/everwebinar/registered?token=x", "application/json", registered.clone()).await,
            (404, "source_disabled"),
        ),
        (
            post("/hooks/webinarjam/registered?token=wrong", "application/json", registered.clone()).await,
            (401, "invalid_secret"),
        ),
        (post("/hooks/webinarjam/registered", "application/json", registered.clone()).await, (401, "missing_secret")),
        (
            post(&format!("/hooks/webinarjam/registered{token}"), "application/json", vec![b' '; MAX_BODY_BYTES + 1])
                .await,
            (413, "payload_too_large"),
        ),
        (
            post(&format!("/hooks/webinarjam/registered{token}"), "application/json", vec![b' '; MAX_BODY_BYTES]).await,
            (400, "malformed_json"),
        ),
        (
            post(&format!("/hooks/webinarjam/registered{token}"), "text/plain", registered.clone()).await,
            (415, "unsupported_media_type"),
        ),
        (
            post(
                &format!("/hooks/webinarjam/registered{token}"),
                "application/json",
                masterclass("typo@@example.com", json!({})).to_string().into_bytes(),
            )
            .await,
            (422, "invalid_email"),
        ),
        (
            post(&format!("/hooks/webinarjam/nonsense{token}"), "application/json", registered.clone()).await,
            (422, "unknown_kind"),
        ),
        (
            post(&format!("/hooks/webinarjam/registered{token}"), "application/json", b"{\"email\":".to_vec()).await,
            (400, "malformed_json"),
        ),
    ];
    for (reply, expected) in &cases {
        assert_eq!(reply.content_type.as_deref(), Some("application/json"));
        if matches!(expected.0, 400 | 422) {
            // An authenticated WebinarJam body that cannot become an event is parked (issue 15),
            // with the refusal's code and sentence.
            assert_eq!(
                (reply.status, reply.body["status"].as_str(), reply.body["code"].as_str()),
                (202, Some("parked"), Some(expected.1)),
                "{}",
                reply.body
            );
            assert!(reply.body["reason"].as_str().is_some_and(|reason| !reason.is_empty()), "{}", reply.body);
            continue;
        }
        assert_eq!(reply.error(), *expected, "{}", reply.body);
        assert!(reply.body["message"].as_str().is_some_and(|message| !message.is_empty()), "{}", reply.body);
    }
    let stale = json!({"event": "webinar.registration_created", "payload": {}}).to_string();
    let headers = harness::zoom_headers(&stale, Utc::now().timestamp() - 600);
    let mut request = http.post(serve.url("/hooks/zoom")).body(stale);
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    assert_eq!(read_reply(request.send().await.expect("zoom")).await.error(), (401, "stale_timestamp"));

    let db = harness::open_db(&db_path);
    assert_eq!(
        SqliteQueue::new(db.clone(), QueueSettings::default()).pending().await.expect("pending"),
        0,
        "refusals enqueue nothing"
    );
    let contacts: Value =
        http.get(format!("{inspection}contacts")).send().await.expect("sim").json().await.expect("json");
    assert_eq!(contacts, json!([]), "refusals reach no KlickTipp contact");

    // One good request reaches the in-process simulator.
    let accepted = post(&format!("/hooks/webinarjam/registered{token}"), "application/json", registered).await;
    accepted.event_id();
    harness::wait_until_drained(&db, DRAIN_TIMEOUT).await;
    let contacts: Value =
        http.get(format!("{inspection}contacts")).send().await.expect("sim").json().await.expect("json");
    assert_eq!(contacts[0]["tags"], json!(["[WebinarJam] [Masterclass] Registered"]));
    assert!(serve.terminate().await.success());
}

// ---------------------------------------------------------------------------------------------
// KlickTipp faults

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn klicktipp_faults_are_retried_rejections_recorded_and_nothing_applied_twice() {
    let knobs = Knobs {
        rate_limit_per_second: Some(6),
        retry_after: true,
        fault_rate_500: 0.15,
        session_expiry_calls: Some(6),
        reject_emails: vec!["rejected@example.com".to_owned()],
        seed: 7,
        ..Knobs::default()
    };
    // The bridge may send 25 calls/s, the account allows 6: 429s with Retry-After are certain
    // (seven calls in a row are enough, even when the consumer wakes per webhook).
    let bridge = Bridge::start(knobs, "25", &[]).await;
    let people = ["ada", "ben", "cem", "dua", "eli", "fay"];
    let mut applied_ids = Vec::new();
    for name in people {
        let body = masterclass(&format!("{name}@example.com"), json!({"first_name": name}));
        applied_ids.push(bridge.webinarjam_json("registered", &body).await.event_id());
    }
    let rejected = [
        bridge.webinarjam_json("registered", &masterclass("rejected@example.com", json!({}))).await.event_id(),
        bridge.webinarjam_json("attended", &masterclass("rejected@example.com", json!({}))).await.event_id(),
    ];
    for name in &people[..3] {
        let body = masterclass(&format!("{name}@example.com"), json!({}));
        applied_ids.push(bridge.webinarjam_json("attended", &body).await.event_id());
    }
    bridge.settle().await;

    let sim = &bridge.simulator;
    assert!(sim.count_status(429) > 0, "the rate limit was hit");
    assert!(sim.count_status(500) > 0, "server errors happened");
    assert!(
        sim.calls_by_endpoint().get("POST /account/login").copied().unwrap_or(0) > 1,
        "sessions expired and were renewed"
    );
    assert_eq!(bridge.dead_letters().await, 0);
    for id in &applied_ids {
        assert_eq!(bridge.outcome(id).await, EventStatus::Completed(FinalOutcome::Applied), "{id}");
    }
    for id in &rejected {
        match bridge.outcome(id).await {
            EventStatus::Completed(FinalOutcome::Rejected(reason)) => {
                assert_eq!(reason.error_number, Some(5), "{reason:?}")
            }
            other => panic!("{id}: expected a rejection, got {other:?}"),
        }
    }

    let registered = "[WebinarJam] [Masterclass] Registered";
    let attended = "[WebinarJam] [Masterclass] Attended";
    let expected: BTreeMap<String, BTreeSet<String>> = people
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let state = if index < 3 { tags(&[registered, attended]) } else { tags(&[registered]) };
            (format!("{name}@example.com"), state)
        })
        .collect();
    assert_eq!(harness::tags_by_email(sim), expected, "the rejected contact does not exist, the others are complete");
    let tag_names: Vec<String> = sim.tags().into_values().collect();
    assert_eq!(
        tag_names.len(),
        tag_names.iter().collect::<BTreeSet<_>>().len(),
        "no tag was created twice: {tag_names:?}"
    );
    assert_each_tag_set_once(sim);
    bridge.assert_output_is_clean(&["ada@example.com", "rejected@example.com"]);
}

/// Every (email, tag id) pair appears in exactly one successful tagging call: a retry never
/// re-sends what already took effect (no timeouts are injected, so nothing is ambiguous).
fn assert_each_tag_set_once(sim: &Simulator) {
    let mut applications: BTreeMap<(String, u64), usize> = BTreeMap::new();
    for request in sim.request_log().into_iter().filter(|request| request.status == 200) {
        let email = request.body["email"].as_str().unwrap_or_default().to_owned();
        let tag_ids: Vec<u64> = match request.endpoint.as_str() {
            "POST /subscriber" => request.body["tagid"].as_u64().into_iter().collect(),
            "POST /subscriber/tag" => {
                request.body["tagids"].as_array().into_iter().flatten().filter_map(Value::as_u64).collect()
            }
            _ => Vec::new(),
        };
        for tag_id in tag_ids {
            *applications.entry((email.clone(), tag_id)).or_default() += 1;
        }
    }
    assert!(!applications.is_empty());
    let repeated: Vec<_> = applications.iter().filter(|(_, count)| **count > 1).collect();
    assert!(repeated.is_empty(), "tags applied more than once: {repeated:?}");
}

// ---------------------------------------------------------------------------------------------
// Restart safety

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_serve_resumes_its_backlog_and_applies_every_event_once() {
    // The account allows 20 calls/s, so a 200-event backlog takes seconds to drain.
    let knobs = Knobs { rate_limit_per_second: Some(20), ..Knobs::default() };
    let visibility = ["--visibility-timeout", "2"];
    let bridge = Bridge::start(knobs, "20", &visibility).await;
    let kinds = ["registered", "attended", "replay_watched", "purchased"];
    let mut accepted = Vec::new();
    for kind in kinds {
        for index in 0..50 {
            let extra = if kind == "purchased" { json!({"revenue_live": "97.00"}) } else { json!({}) };
            let reply =
                bridge.webinarjam_json(kind, &masterclass(&format!("person{index:02}@example.com"), extra)).await;
            accepted.push(reply.event_id());
        }
    }
    assert_eq!(accepted.len(), 200);
    wait_for_calls(&bridge.simulator, 40).await;
    let pending = SqliteQueue::new(bridge.db.clone(), QueueSettings::default()).pending().await.expect("pending");
    assert!(pending > 0, "the backlog must still be draining when serve is killed");
    let Bridge { simulator, serve, db, db_path, env, _dir, .. } = bridge;
    serve.kill();

    let restarted = ServeProcess::start(&env, &visibility).await;
    harness::wait_until_drained(&db, DRAIN_TIMEOUT).await;
    assert!(restarted.terminate().await.success(), "serve exits 0 on SIGTERM");
    drop(db);

    // Read the outcome from the file serve left behind, with serve stopped.
    let db = harness::open_db(&db_path);
    let log = SqliteEventLog::new(db.clone());
    for id in &accepted {
        let record = log.get(&EventId::from_sender(id).expect("valid id")).await.expect("read").expect("a record");
        assert_eq!(record.status, EventStatus::Completed(FinalOutcome::Applied), "{id}");
    }
    assert_eq!(
        SqliteQueue::new(db.clone(), QueueSettings::default()).dead_letters().await.expect("dead letters").len(),
        0
    );
    let every_state = tags(&kinds.map(|kind| match kind {
        "registered" => "[WebinarJam] [Masterclass] Registered",
        "attended" => "[WebinarJam] [Masterclass] Attended",
        "replay_watched" => "[WebinarJam] [Masterclass] Replay Watched",
        _ => "[WebinarJam] [Masterclass] Buyer",
    }));
    let contacts = harness::tags_by_email(&simulator);
    assert_eq!(contacts.len(), 50, "one KlickTipp contact per person");
    for (email, tags) in &contacts {
        assert_eq!(tags, &every_state, "{email}");
    }
}

async fn wait_for_calls(sim: &Simulator, at_least: u64) {
    let started = std::time::Instant::now();
    while sim.total_calls() < at_least {
        assert!(started.elapsed() < DRAIN_TIMEOUT, "KlickTipp saw only {} calls", sim.total_calls());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration and discovery commands

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configuration_stops_serve_with_one_line() {
    let env = BridgeEnv::with_sources().set("BRIDGE_FIELD_MAP", r#"{"nickname":"field1"}"#);
    let run = harness::run_bridge_async(&env, &["serve", "--listen", "127.0.0.1:0"]).await;
    assert_eq!(run.code, Some(2));
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(lines[0].starts_with("BRIDGE_FIELD_MAP: "), "{}", lines[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_check_config_read_the_account() {
    let sim = harness::start_simulator().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let env = BridgeEnv::for_simulator(&sim.url(), &dir.path().join("unused.db"));

    let fields = harness::run_bridge_async(&env, &["klicktipp", "fields"]).await;
    assert_eq!(fields.code, Some(0), "{}", fields.stderr);
    assert!(fields.stdout.lines().any(|line| line == "field101\twebinar_start"), "{}", fields.stdout);
    assert!(fields.stdout.lines().any(|line| line == "fieldFirstName\tFirst name"), "{}", fields.stdout);

    let optins = harness::run_bridge_async(&env, &["klicktipp", "optins", "--json"]).await;
    let optins: Value = serde_json::from_str(&optins.stdout).expect("JSON");
    assert_eq!(optins[0], json!({"id": 1, "name": "(default double opt-in)"}));

    let tags = harness::run_bridge_async(&env, &["klicktipp", "tags"]).await;
    assert_eq!((tags.code, tags.stdout.as_str()), (Some(0), ""), "a new account has no tags");

    let ok = harness::run_bridge_async(&env.clone().set("KLICKTIPP_LISTID", "2"), &["check-config"]).await;
    assert_eq!(ok.code, Some(0), "{}{}", ok.stdout, ok.stderr);
    assert!(
        ok.stdout.starts_with("Tag names of a webinar, for example: [Zoom] [Demo Webinar] Registered | "),
        "{}",
        ok.stdout
    );

    let wrong = env
        .clone()
        .set("KLICKTIPP_LISTID", "999")
        .set("BRIDGE_FIELD_MAP", r#"{"first_name":"fieldFirstName","join_url":"field999"}"#);
    let problems = harness::run_bridge_async(&wrong, &["check-config"]).await;
    assert_eq!(problems.code, Some(1), "{}", problems.stdout);
    let lines: Vec<&str> = problems.stdout.lines().collect();
    assert!(lines.iter().any(|line| line.starts_with("BRIDGE_FIELD_MAP: join_url maps to field999")), "{lines:?}");
    assert!(lines.iter().any(|line| line.starts_with("KLICKTIPP_LISTID: 999 is not an opt-in process")), "{lines:?}");

    let unconfigured = BridgeEnv::with_sources();
    for args in [&["klicktipp", "tags"][..], &["check-config"][..]] {
        let run = harness::run_bridge_async(&unconfigured, args).await;
        assert_eq!(run.code, Some(2), "{args:?}");
        assert!(run.stderr.starts_with("KlickTipp credentials are missing"), "{}", run.stderr);
    }
}

// ---------------------------------------------------------------------------------------------
// The same use cases over memory and SQLite, in-process

/// A KlickTipp contact as the use cases compare it: email, status, tags, fields.
type ContactSnapshot = (String, String, Vec<String>, BTreeMap<String, String>);

/// What a backend leaves behind after the use cases; must not depend on the backend.
#[derive(Debug, PartialEq)]
struct UseCaseResult {
    responses: Vec<(u16, Value)>,
    consumed: [usize; 6],
    contacts: Vec<ContactSnapshot>,
    calls: BTreeMap<String, u64>,
    outcomes: Vec<Option<EventStatus>>,
}

async fn use_cases(backend: Backend) -> UseCaseResult {
    let sim = harness::start_simulator().await;
    sim.set_knobs(Knobs { reject_emails: vec!["rejected@example.com".to_owned()], ..Knobs::default() });
    let pipeline = Pipeline::new(backend, &sim, &BridgeEnv::with_sources().config());
    let mut responses = Vec::new();
    let mut consumed = Vec::new();
    // Two rounds: the second one's events meet contacts that KlickTipp already has.
    for round in [use_case_requests_first_round(), use_case_requests_second_round()] {
        for request in &round {
            let response = pipeline.ingest.handle(request).await;
            responses.push((response.status, response.body));
        }
        consumed.push(pipeline.drain().await);
    }
    let mut outcomes = Vec::new();
    for (_, body) in &responses {
        if let Some(id) = body["event_id"].as_str() {
            let id = EventId::from_sender(id).expect("valid id");
            outcomes.push(pipeline.log.get(&id).await.expect("read").map(|record| record.status));
        }
    }
    let total = consumed.iter().fold(webinar_bridge::worker::BatchSummary::default(), |mut total, batch| {
        total.add(batch);
        total
    });
    UseCaseResult {
        responses,
        consumed: [total.applied, total.duplicates, total.flagged, total.rejected, total.skipped, total.retried],
        contacts: sim.contacts().into_iter().map(|c| (c.email, c.status, c.tags, c.fields)).collect(),
        calls: sim.calls_by_endpoint(),
        outcomes,
    }
}

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).expect("valid time").with_timezone(&Utc)
}

fn raw(path: &str, query: Option<&str>, headers: Vec<(String, String)>, body: String, received_at: &str) -> RawRequest {
    RawRequest {
        method: "POST".to_owned(),
        path: path.to_owned(),
        query: query.map(str::to_owned),
        headers,
        body: body.into(),
        received_at: at(received_at),
    }
}

fn webinarjam(kind: &str, body: &Value, received_at: &str) -> RawRequest {
    let headers = vec![
        header("content-type", "application/json"),
        header("authorization", &format!("Bearer {WEBINARJAM_SECRET}")),
    ];
    raw(&format!("/hooks/webinarjam/{kind}"), None, headers, body.to_string(), received_at)
}

fn zoom(body: &Value, received_at: &str) -> RawRequest {
    let body = body.to_string();
    raw("/hooks/zoom", None, harness::zoom_headers(&body, at(received_at).timestamp()), body, received_at)
}

fn use_case_requests_first_round() -> Vec<RawRequest> {
    let erika = masterclass("erika@example.com", json!({"first_name": "Erika"}));
    vec![
        webinarjam("registered", &erika, "2026-02-01T10:00:00Z"),
        webinarjam("registered", &erika, "2026-02-01T10:00:30Z"),
        webinarjam("registered", &masterclass("max@example.org", json!({"first_name": "Max"})), "2026-02-01T11:00:00Z"),
        webinarjam("registered", &masterclass("rejected@example.com", json!({})), "2026-02-01T11:30:00Z"),
        zoom(
            &zoom_registration("webinar.registration_created", 1_767_088_800_000, "Paul", "Probe", "paul@example.net"),
            "2026-01-01T10:00:00Z",
        ),
        zoom(
            &zoom_registration(
                "webinar.registration_created",
                1_767_175_200_000,
                "Anna",
                "Beispiel",
                "anna@example.com",
            ),
            "2026-01-02T10:00:00Z",
        ),
        webinarjam("registered", &masterclass("bad@@example.com", json!({})), "2026-02-01T12:00:00Z"),
    ]
}

fn use_case_requests_second_round() -> Vec<RawRequest> {
    vec![
        webinarjam(
            "attended",
            &masterclass("erika@example.com", json!({"webinar_duration": 60, "time_live": "00:50:00"})),
            "2026-02-10T19:10:00Z",
        ),
        webinarjam("no_show", &masterclass("erika@example.com", json!({})), "2026-02-10T21:00:00Z"),
        webinarjam("no_show", &masterclass("max@example.org", json!({})), "2026-02-10T21:00:00Z"),
        webinarjam(
            "purchased",
            &masterclass("max@example.org", json!({"revenue_live": "$97"})),
            "2026-02-11T09:00:00Z",
        ),
        zoom(
            &zoom_registration(
                "webinar.registration_cancelled",
                1_767_261_600_000,
                "Anna",
                "Beispiel",
                "anna@example.com",
            ),
            "2026-01-03T10:00:00Z",
        ),
        zoom(
            &zoom_participant(
                "webinar.participant_left",
                1_768_499_520_000,
                "paul@example.net",
                "2026-01-15T17:02:00Z",
                Some("2026-01-15T17:30:00Z"),
            ),
            "2026-01-15T17:52:00Z",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn use_cases_behave_the_same_on_memory_and_sqlite() {
    let memory = use_cases(Backend::Memory).await;
    let sqlite = use_cases(Backend::Sqlite).await;
    assert_eq!(memory, sqlite);

    // And they did what the use cases are about.
    let tags: BTreeMap<&str, &[String]> =
        memory.contacts.iter().map(|(email, _, tags, _)| (email.as_str(), tags.as_slice())).collect();
    assert_eq!(
        tags["erika@example.com"],
        [
            "[WebinarJam] [Masterclass] Attended",
            "[WebinarJam] [Masterclass] Fully Attended",
            "[WebinarJam] [Masterclass] Registered"
        ]
    );
    assert_eq!(
        tags["max@example.org"],
        [
            "[WebinarJam] [Masterclass] Buyer",
            "[WebinarJam] [Masterclass] Did Not Attend",
            "[WebinarJam] [Masterclass] Registered"
        ]
    );
    assert_eq!(tags["anna@example.com"], ["[Zoom] [Demo Webinar] Cancelled"]);
    assert_eq!(tags["paul@example.net"], ["[Zoom] [Demo Webinar] Attended", "[Zoom] [Demo Webinar] Registered"]);
    assert!(!tags.contains_key("rejected@example.com"));
    let statuses: Vec<u16> = memory.responses.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 422, 200, 200, 200, 200, 200, 200]);
    // applied, duplicates (the repeated registration was dropped by the queue), flagged, rejected, skipped, retried
    assert_eq!(memory.consumed, [10, 0, 0, 1, 0, 0]);
    assert!(memory.outcomes.iter().all(|outcome| matches!(outcome, Some(EventStatus::Completed(_)))));
}
