//! Issue 11's reproduction through `webinar-bridge serve` and the KlickTipp simulator: the
//! account's `field101` ('Webinar Name') is a number field, `BRIDGE_FIELD_MAP` sends the webinar
//! name to it, and KlickTipp refuses "Spring Launch" (406, error 8). The contact is applied all
//! the same with every tag, the field problem is recorded on the contact, and later events for
//! that contact apply with zero rejections (DESIGN 6). Exact KlickTipp call counts are asserted.
//!
//! Needs `cargo build --workspace` first (the harness says so if the binary is missing).

use klicktipp_sim::{FieldType, SimConfig, Simulator};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use webinar_bridge::adapters::sqlite::{SqliteContactStore, SqliteDb, SqliteEventLog};
use webinar_bridge::domain::{Email, EventId};
use webinar_bridge::ports::{ContactStore, EventLog, EventStatus, FinalOutcome};
use webinar_bridge_tests::harness::{self, BridgeEnv, ServeProcess, WEBINARJAM_SECRET, calls, calls_since};

const ERIKA: &str = "erika@example.com";
const FIELD_MAP: &str = r#"{"first_name":"fieldFirstName","webinar_name":"field101"}"#;

struct Bridge {
    simulator: Simulator,
    serve: ServeProcess,
    db: SqliteDb,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Bridge {
    async fn start() -> Self {
        let config = SimConfig::default().with_custom_field("field101", "Webinar Name", FieldType::Number);
        let simulator = klicktipp_sim::start(config, "127.0.0.1:0").await.expect("start the simulator");
        let dir = tempfile::tempdir().expect("temp dir");
        let db_path = dir.path().join("bridge.db");
        let env = BridgeEnv::for_simulator(&simulator.url(), &db_path)
            .set("BRIDGE_FIELD_MAP", FIELD_MAP)
            .set("BRIDGE_KLICKTIPP_RPS", "50");
        let serve = ServeProcess::start(&env, &[]).await;
        let db = harness::open_db(&db_path);
        Self { simulator, serve, db, http: reqwest::Client::new(), _dir: dir }
    }

    /// A WebinarJam webhook as JSON; returns the event id serve accepted it under.
    async fn webinarjam(&self, kind: &str, body: &Value) -> String {
        let response = self
            .http
            .post(self.serve.url(&format!("/hooks/webinarjam/{kind}")))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {WEBINARJAM_SECRET}"))
            .body(body.to_string())
            .send()
            .await
            .expect("serve answers");
        let reply: Value = response.json().await.expect("a JSON body");
        assert_eq!(reply["status"], "accepted", "{reply}");
        reply["event_id"].as_str().expect("an event id").to_owned()
    }

    async fn expect_calls(&self, before: &BTreeMap<String, u64>, expected: &[(&str, u64)], step: &str) {
        harness::wait_until_drained(&self.db, Duration::from_secs(45)).await;
        assert_eq!(calls_since(&self.simulator, before), calls(expected), "KlickTipp calls for: {step}");
    }

    async fn outcome(&self, event_id: &str) -> EventStatus {
        let id = EventId::from_sender(event_id).expect("a valid event id");
        let record = SqliteEventLog::new(self.db.clone()).get(&id).await.expect("read the event log");
        record.unwrap_or_else(|| panic!("no event log record for {event_id}")).status
    }

    fn tags_of(&self, email: &str) -> Vec<String> {
        let mut names: Vec<String> =
            harness::tags_by_email(&self.simulator).get(email).cloned().unwrap_or_default().into_iter().collect();
        names.sort();
        names
    }
}

fn webinar(name: &str, id: &str, extra: Value) -> Value {
    let mut body = json!({
        "webinar_id": id, "webinar_name": name, "schedule": "7", "date": "2026-04-14 18:00",
        "timezone": "GMT+2", "email": ERIKA, "first_name": "Erika",
    });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_field_never_blocks_the_contact() {
    let bridge = Bridge::start().await;
    let sim = &bridge.simulator;

    // Registration: the upsert is refused for field101, repeated without it, and carries the tag.
    let before = sim.calls_by_endpoint();
    let registered = bridge.webinarjam("registered", &webinar("Spring Launch", "321", json!({}))).await;
    let first = [("POST /account/login", 1), ("GET /tag", 1), ("POST /tag", 1), ("POST /subscriber", 2)];
    bridge.expect_calls(&before, &first, "registration (field101 refused once)").await;

    // Attendance: the refused value is not sent again, so no upsert at all, only the tag.
    let before = sim.calls_by_endpoint();
    let attended = bridge
        .webinarjam(
            "attended",
            &webinar("Spring Launch", "321", json!({"webinar_duration": 60, "time_live": "00:55:00"})),
        )
        .await;
    let tags_after_attendance = bridge.tags_of(ERIKA);
    bridge.expect_calls(&before, &[("POST /tag", 2), ("POST /subscriber/tag", 1)], "attendance").await;
    let tags = bridge.tags_of(ERIKA);
    assert!(tags_after_attendance.len() <= tags.len());
    assert_eq!(tags.len(), 3, "registered, attended and fully attended: {tags:?}");
    assert!(tags.iter().all(|tag| tag.contains("Spring Launch")), "{tags:?}");
    for event_id in [&registered, &attended] {
        assert_eq!(bridge.outcome(event_id).await, EventStatus::Completed(FinalOutcome::Applied), "{event_id}");
    }

    // The field problem is recorded on the contact: key, number, reason, event, fingerprint.
    let email = Email::parse(ERIKA).expect("an address");
    let record = SqliteContactStore::new(bridge.db.clone()).load(&email).await.expect("load").expect("a record").value;
    let problem = record.field_problems.get("field101").expect("a field problem for field101");
    assert_eq!(problem.error_number, Some(8));
    assert_eq!(problem.event_id.as_str(), registered);
    assert!(!problem.reason.is_empty());
    assert!(problem.refused(&webinar_bridge::domain::FieldValue::Text("Spring Launch".into())));
    assert_eq!(record.field_problems.len(), 1, "fieldFirstName was accepted");
    let contact = sim.contacts().into_iter().find(|contact| contact.email == ERIKA).expect("the contact exists");
    assert_eq!(contact.fields.get("fieldFirstName").map(String::as_str), Some("Erika"));

    // A searchable WARN line names the field and the number, never the address.
    let output = format!("{}\n{}", bridge.serve.stdout_text(), bridge.serve.stderr_text());
    let line = output.lines().find(|line| line.contains("field refused")).expect("a 'field refused' log line");
    assert!(line.contains("WARN") && line.contains("field101") && line.contains("\"error_number\":8"), "{line}");
    assert!(!output.contains(ERIKA), "the address appeared in serve's output");

    // Later events for that contact, for this and for another webinar, apply with no rejection.
    let before = sim.calls_by_endpoint();
    let replay =
        bridge.webinarjam("replay_watched", &webinar("Spring Launch", "321", json!({"time_replay": "00:10:00"}))).await;
    bridge.expect_calls(&before, &[("POST /tag", 1), ("POST /subscriber/tag", 1)], "replay (value unchanged)").await;
    let before = sim.calls_by_endpoint();
    let autumn = bridge.webinarjam("registered", &webinar("Autumn Talk", "654", json!({}))).await;
    // A new value is tried once more: refused again, dropped again, the tag still set.
    let autumn_calls = [("POST /tag", 1), ("POST /subscriber", 2)];
    bridge.expect_calls(&before, &autumn_calls, "another webinar (new value, refused again)").await;
    for event_id in [&replay, &autumn] {
        assert_eq!(bridge.outcome(event_id).await, EventStatus::Completed(FinalOutcome::Applied), "{event_id}");
    }
    assert_eq!(bridge.tags_of(ERIKA).len(), 5, "{:?}", bridge.tags_of(ERIKA));
    assert_eq!(sim.count_status(406), 2, "only the two refused upserts");
    let record = SqliteContactStore::new(bridge.db.clone()).load(&email).await.expect("load").expect("a record").value;
    assert_eq!(record.field_problems["field101"].event_id.as_str(), autumn, "the problem names the latest refusal");
    bridge.serve.kill();
}
