//! Zoom through `serve` (issues 13 and 15): a `webinar.ended` webhook is recorded and schedules
//! the pull of exactly that occurrence from the platform simulator over real HTTP; a recurring
//! webinar keeps one state per occurrence for webhooks and pulls alike, so a fact seen by both
//! costs no second KlickTipp call; participants without an e-mail are matched through the
//! registrant id recorded at registration (or kept until it arrives); a host is never a contact.

use chrono::{DateTime, Utc};
use platform_sim::{PlatformData, PlatformSim, SimConfig};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use webinar_bridge_tests::harness::{self, BridgeEnv, ServeProcess};

const WAIT: Duration = Duration::from_secs(60);
const WEBINAR: &str = "85012345678";

struct Serve {
    serve: ServeProcess,
    db: webinar_bridge::adapters::sqlite::SqliteDb,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Serve {
    async fn start(env: BridgeEnv, dir: tempfile::TempDir) -> Self {
        let serve = ServeProcess::start(&env, &[]).await;
        let db = harness::open_db(&dir.path().join("bridge.db"));
        Self { serve, db, http: reqwest::Client::new(), _dir: dir }
    }

    /// Signed now, as Zoom would; the status and the JSON answer.
    async fn zoom(&self, body: &Value) -> (u16, Value) {
        let body = body.to_string();
        let mut request = self.http.post(self.serve.url("/hooks/zoom")).body(body.clone());
        for (name, value) in harness::zoom_headers(&body, Utc::now().timestamp()) {
            request = request.header(name, value);
        }
        let response = request.send().await.expect("serve answers");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON answer"))
    }

    async fn settle(&self) {
        harness::wait_until_drained(&self.db, WAIT).await;
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn envelope(event: &str, object: Value) -> Value {
    json!({"event": event, "event_ts": Utc::now().timestamp_millis(),
        "payload": {"account_id": "AbCdEf123", "object": object}})
}

fn tagged(date: DateTime<Utc>, names: &[&str]) -> BTreeSet<String> {
    let day = date.format("%Y-%m-%d");
    names.iter().map(|name| format!("[Zoom] [Recurring Demo {day}] {name}")).collect()
}

async fn wait_for_tags(
    klicktipp: &klicktipp_sim::Simulator,
    expected: &BTreeMap<String, BTreeSet<String>>,
    serve: &Serve,
) {
    let started = Instant::now();
    while harness::tags_by_email(klicktipp) != *expected {
        assert!(
            started.elapsed() < WAIT,
            "tags are {:?}\n{}",
            harness::tags_by_email(klicktipp),
            serve.serve.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webinar_ended_schedules_the_pull_of_exactly_that_recurring_occurrence() {
    // A recurring webinar (type 9) with two occurrences that ran; the API's webinar list shows
    // neither (Zoom lists scheduled webinars only), so only a webhook can tell the bridge.
    // Whole minutes: the occurrence id is the start in milliseconds.
    let first = DateTime::from_timestamp((Utc::now().timestamp() - 4 * 3600) / 60 * 60, 0).expect("a time");
    let second = first - chrono::Duration::days(1);
    let join_url = |id: &str| format!("https://us06web.zoom.us/w/{WEBINAR}?tk={id}");
    let registrants = json!([
        {"id": "reg_a", "email": "anna@example.com", "first_name": "Anna", "last_name": "A", "join_url": join_url("reg_a"),
         "create_time": rfc3339(second - chrono::Duration::days(3))},
        {"id": "reg_b", "email": "ben@example.com", "first_name": "Ben", "last_name": "B", "join_url": join_url("reg_b"),
         "create_time": rfc3339(second - chrono::Duration::days(3))}]);
    let at = |start: DateTime<Utc>, minutes: i64| rfc3339(start + chrono::Duration::minutes(minutes));
    let document = json!({"zoom": {"webinars": [
        {"id": WEBINAR, "uuid": "occ1+first==", "topic": "Recurring Demo", "start_time": rfc3339(first), "duration": 60,
         "timezone": "UTC", "type": 9, "unlisted": true, "registrants": registrants,
         // Anna joined without an e-mail (not signed in): matched through her registrant id.
         "participants": [{"registrant_id": "reg_a", "user_email": "", "name": "Anna", "join_time": at(first, 2),
                           "leave_time": at(first, 40), "duration": 2280}],
         "absentees": [{"id": "reg_b", "email": "ben@example.com", "first_name": "Ben", "last_name": "B"}]},
        {"id": WEBINAR, "uuid": "occ2+second==", "topic": "Recurring Demo", "start_time": rfc3339(second), "duration": 60,
         "timezone": "UTC", "type": 9, "unlisted": true, "registrants": registrants,
         "participants": [{"registrant_id": "reg_b", "user_email": "ben@example.com", "name": "Ben",
                           "join_time": at(second, 1), "leave_time": at(second, 59), "duration": 3480}],
         "absentees": [{"id": "reg_a", "email": "anna@example.com", "first_name": "Anna", "last_name": "A"}]}]}});
    let platform =
        PlatformSim::start(SimConfig::with_data(PlatformData::from_json(&document.to_string()).expect("data")))
            .await
            .expect("start platform-sim");
    let klicktipp = harness::start_simulator().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let credentials = platform.zoom_credentials();
    let env = BridgeEnv::for_simulator(&klicktipp.url(), &dir.path().join("bridge.db"))
        .set("BRIDGE_TAG_TEMPLATE", "[{tool}] [{webinar} {date}] {state}")
        .set("ZOOM_API_BASE_URL", &platform.url())
        .set("ZOOM_ACCOUNT_ID", &credentials.account_id)
        .set("ZOOM_CLIENT_ID", &credentials.client_id)
        .set("ZOOM_CLIENT_SECRET", &credentials.client_secret);
    let serve = Serve::start(env, dir).await;

    // Webhooks: both register for both occurrences; Anna's attendance of the first arrives too.
    let webinar = |start: DateTime<Utc>, extra: Value| {
        let mut object = json!({"uuid": "occ1+first==", "id": WEBINAR, "host_id": "HoSt_1", "topic": "Recurring Demo",
            "type": 9, "start_time": rfc3339(start), "duration": 60, "timezone": "UTC"});
        if let (Value::Object(object), Value::Object(extra)) = (&mut object, extra) {
            object.extend(extra);
        }
        object
    };
    let occurrences = json!([{"occurrence_id": first.timestamp_millis().to_string(), "start_time": rfc3339(first)},
                             {"occurrence_id": second.timestamp_millis().to_string(), "start_time": rfc3339(second)}]);
    for (id, email, name, last) in
        [("reg_a", "anna@example.com", "Anna", "A"), ("reg_b", "ben@example.com", "Ben", "B")]
    {
        let registrant = json!({"id": id, "email": email, "first_name": name, "last_name": last,
            "status": "approved", "join_url": join_url(id)});
        let body = envelope(
            "webinar.registration_created",
            webinar(second, json!({"registrant": registrant, "occurrences": occurrences})),
        );
        assert_eq!(serve.zoom(&body).await.0, 200);
    }
    let participant = json!({"user_id": "16778240", "user_name": "Anna", "email": "anna@example.com",
        "registrant_id": "reg_a", "join_time": at(first, 2), "leave_time": at(first, 40)});
    let left = envelope("webinar.participant_left", webinar(first, json!({"participant": participant})));
    assert_eq!(serve.zoom(&left).await.0, 200);
    serve.settle().await;
    let people = |anna: BTreeSet<String>, ben: BTreeSet<String>| -> BTreeMap<String, BTreeSet<String>> {
        [("anna@example.com".to_owned(), anna), ("ben@example.com".to_owned(), ben)].into_iter().collect()
    };
    let union = |a: BTreeSet<String>, b: BTreeSet<String>| a.union(&b).cloned().collect::<BTreeSet<_>>();
    let before_pull = people(
        union(tagged(first, &["Registered", "Attended"]), tagged(second, &["Registered"])),
        union(tagged(first, &["Registered"]), tagged(second, &["Registered"])),
    );
    wait_for_tags(&klicktipp, &before_pull, &serve).await;
    assert_eq!(platform.stats().calls_by_endpoint.keys().filter(|key| key.contains("participants")).count(), 0);
    let klicktipp_before = klicktipp.calls_by_endpoint();

    // The first occurrence ends: recorded, and its pull is due (it ended over 120 minutes ago).
    let ended = envelope("webinar.ended", webinar(first, json!({"end_time": at(first, 65)})));
    let (status, answer) = serve.zoom(&ended).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("recorded")), "{answer}");
    let after_pull = people(
        union(tagged(first, &["Registered", "Attended"]), tagged(second, &["Registered"])),
        union(tagged(first, &["Registered", "Did Not Attend"]), tagged(second, &["Registered"])),
    );
    wait_for_tags(&klicktipp, &after_pull, &serve).await;
    serve.settle().await;

    // Exactly that occurrence was pulled: one report and one absentee list, and the second
    // occurrence's facts (Ben attended, Anna missed it) never arrived.
    let stats = platform.stats();
    let count =
        |part: &str| stats.calls_by_endpoint.iter().filter(|(key, _)| key.contains(part)).map(|(_, n)| *n).sum::<u64>();
    assert_eq!((count("participants"), count("absentees")), (1, 1), "{:?}", stats.calls_by_endpoint);
    // What webhooks already said (both registrations, Anna's attendance) cost nothing again:
    // only Ben's new no-show tag was created and added.
    let added = harness::calls_since(&klicktipp, &klicktipp_before);
    assert_eq!(added, harness::calls(&[("POST /tag", 1), ("POST /subscriber/tag", 1)]), "{added:?}");

    // The same webhook again (Zoom retries): the occurrence is done, nothing is pulled again.
    assert_eq!(serve.zoom(&ended).await.0, 200);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        platform
            .stats()
            .calls_by_endpoint
            .iter()
            .filter(|(key, _)| key.contains("participants"))
            .map(|(_, n)| *n)
            .sum::<u64>(),
        1
    );
    assert!(serve.serve.terminate().await.success());
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_without_an_e_mail_are_matched_by_registrant_id_and_a_host_is_no_contact() {
    let klicktipp = harness::start_simulator().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let env = BridgeEnv::for_simulator(&klicktipp.url(), &dir.path().join("bridge.db"));
    let serve = Serve::start(env, dir).await;
    let webinar = |extra: Value| {
        let mut object = json!({"uuid": "k7Zq9XvRTn2wYb3cQp1Lmg==", "id": WEBINAR, "host_id": "HoSt_1",
            "topic": "Demo Webinar", "type": 5, "start_time": "2026-01-15T17:00:00Z", "duration": 60,
            "timezone": "Europe/Berlin"});
        if let (Value::Object(object), Value::Object(extra)) = (&mut object, extra) {
            object.extend(extra);
        }
        object
    };
    let participant = |event: &str, registrant_id: &str, email: &str, id: &str| {
        envelope(
            event,
            webinar(json!({"participant": {"user_id": id, "id": id, "user_name": "Someone", "email": email,
                "registrant_id": registrant_id, "join_time": "2026-01-15T17:02:00Z",
                "leave_time": "2026-01-15T17:40:00Z"}})),
        )
    };
    let registration = |id: &str, email: &str| {
        envelope(
            "webinar.registration_created",
            webinar(json!({"registrant": {"id": id, "email": email, "first_name": "Erika", "last_name": "Muster",
                "status": "approved", "join_url": format!("https://us06web.zoom.us/w/{WEBINAR}?tk={id}")}})),
        )
    };

    // Joined before the registration is known: kept, not lost.
    let (status, answer) = serve.zoom(&participant("webinar.participant_joined", "reg_late", "", "")).await;
    assert_eq!((status, answer["status"].as_str()), (202, Some("kept")), "{answer}");
    // Its registration arrives: the kept attendance is handed on with it.
    assert_eq!(serve.zoom(&registration("reg_late", "late@example.com")).await.0, 200);
    // A known registrant leaves without an e-mail: matched at once.
    assert_eq!(serve.zoom(&registration("reg_known", "known@example.com")).await.0, 200);
    serve.settle().await;
    let (status, answer) = serve.zoom(&participant("webinar.participant_left", "reg_known", "", "")).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("accepted")), "{answer}");
    // The host joins with an e-mail but no registration; a guest has neither.
    let (status, answer) =
        serve.zoom(&participant("webinar.participant_joined", "", "host@example.com", "HoSt_1")).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("ignored")), "{answer}");
    let (status, answer) = serve.zoom(&participant("webinar.participant_joined", "", "", "")).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("ignored")), "{answer}");
    serve.settle().await;

    let tags = |names: &[&str]| names.iter().map(|name| format!("[Zoom] [Demo Webinar] {name}")).collect();
    let expected: BTreeMap<String, BTreeSet<String>> = [
        ("known@example.com".to_owned(), tags(&["Attended", "Registered"])),
        ("late@example.com".to_owned(), tags(&["Attended", "Registered"])),
    ]
    .into_iter()
    .collect();
    wait_for_tags(&klicktipp, &expected, &serve).await;
    assert!(klicktipp.contacts().iter().all(|contact| contact.email != "host@example.com"));
    assert!(serve.serve.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_of_a_recurring_occurrence_finds_its_start_and_occurrence() {
    let first = DateTime::from_timestamp((Utc::now().timestamp() - 30 * 3600) / 60 * 60, 0).expect("a time");
    let next = first + chrono::Duration::days(7);
    let occurrence = |uuid: &str, start: DateTime<Utc>| {
        json!({"id": WEBINAR, "uuid": uuid, "topic": "Recurring Demo", "start_time": rfc3339(start), "duration": 60,
            "type": 9, "registrants": [{"id": "reg_b", "email": "ben@example.com", "first_name": "Ben"}],
            "absentees": [{"id": "reg_b", "email": "ben@example.com", "first_name": "Ben"}]})
    };
    let document = json!({"zoom": {"webinars": [occurrence("occ1==", first), occurrence("occ2==", next)]}});
    let platform =
        PlatformSim::start(SimConfig::with_data(PlatformData::from_json(&document.to_string()).expect("data")))
            .await
            .expect("start platform-sim");
    let credentials = platform.zoom_credentials();
    let dir = tempfile::tempdir().expect("temp dir");
    let env = BridgeEnv::for_simulator("http://127.0.0.1:9", &dir.path().join("bridge.db"))
        .set("BRIDGE_TAG_TEMPLATE", "[{tool}] [{webinar} {date}] {state}")
        .set("ZOOM_API_BASE_URL", &platform.url())
        .set("ZOOM_ACCOUNT_ID", &credentials.account_id)
        .set("ZOOM_CLIENT_ID", &credentials.client_id)
        .set("ZOOM_CLIENT_SECRET", &credentials.client_secret);
    let args =
        ["backfill", "--source", "zoom", "--webinar", WEBINAR, "--session", "occ1==", "--name", "Recurring Demo"];
    let dry = harness::run_bridge_async(&env, &[&args[..], &["--dry-run"]].concat()).await;
    assert_eq!(dry.code, Some(0), "{}", dry.stderr);
    let line = format!("  + [Zoom] [Recurring Demo {}] Did Not Attend", first.format("%Y-%m-%d"));
    assert!(dry.stdout.lines().any(|printed| printed == line), "{line:?} missing:\n{}", dry.stdout);
    platform.shutdown().await;
}
