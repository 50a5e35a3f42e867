//! `webinar-bridge simulate` end to end (DESIGN 9): the binary as a subprocess on request files,
//! its stdout parsed as the one JSON report. The shipped example gives the expected contacts; the
//! same deliveries shuffled and repeated give the same contacts; bad input exits 2.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use webinar_bridge_tests::harness::{self, BridgeEnv, WEBINARJAM_SECRET};

fn example_file() -> PathBuf {
    harness::workspace_root().join("tests/fixtures/simulate/example.jsonl")
}

struct Simulated {
    stdout: String,
    report: Value,
}

fn simulate(file: &Path) -> Simulated {
    let run = harness::run_bridge(&BridgeEnv::with_sources(), &["simulate", &file.to_string_lossy()]);
    assert_eq!(run.code, Some(0), "simulate failed: {}", run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).expect("stdout is one JSON document");
    assert_events_add_up(&report);
    Simulated { stdout: run.stdout, report }
}

/// accepted = applied + duplicates + rejected + skipped + dead_lettered
fn assert_events_add_up(report: &Value) {
    let events = &report["events"];
    let count = |name: &str| events[name].as_u64().unwrap_or_else(|| panic!("events.{name} missing: {events}"));
    let outcomes = ["applied", "duplicates", "rejected", "skipped", "dead_lettered"].map(count);
    assert_eq!(count("accepted"), outcomes.iter().sum::<u64>(), "{events}");
}

fn write_lines(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").expect("write the request file");
    path
}

fn contact(email: &str, tags: &[&str], fields: Value) -> Value {
    json!({"email": email, "status": "Opt-In Pending", "tags": tags, "fields": fields})
}

/// The oracle for example.jsonl (DESIGN 4 applied by hand to its events).
fn expected_example_contacts() -> Value {
    let masterclass_start = "1770746400"; // 2026-02-10 19:00 GMT+1
    let masterclass_room = "https://event.webinarjam.com/live/123/45";
    let demo_start = "1768496400"; // 2026-01-15T17:00:00Z
    json!([
        contact(
            "anna@example.com",
            &["[Zoom] [Demo Webinar] Registered"],
            json!({
            "field101": demo_start, "field102": "https://us06web.zoom.us/w/85012345678?tk=reg_anna",
            "fieldFirstName": "Anna", "fieldLastName": "Beispiel"})
        ),
        // WebinarJam: 55 of 60 minutes (fully attended), bought; the late no-show changes nothing.
        // Zoom: 38 of 60 minutes (attended). Fields: the latest events (WebinarJam's) win.
        contact(
            "erika@example.com",
            &[
                "[WebinarJam] [Masterclass] Attended",
                "[WebinarJam] [Masterclass] Buyer",
                "[WebinarJam] [Masterclass] Fully Attended",
                "[WebinarJam] [Masterclass] Registered",
                "[Zoom] [Demo Webinar] Attended",
                "[Zoom] [Demo Webinar] Registered"
            ],
            json!({
            "field101": masterclass_start, "field102": masterclass_room, "field103": "55", "field104": "49700",
            "fieldFirstName": "Erika", "fieldLastName": "Muster"})
        ),
        contact(
            "lena@example.org",
            &["[WebinarJam] [Masterclass] Cancelled"],
            json!({
            "field101": masterclass_start, "field102": masterclass_room,
            "fieldFirstName": "Lena", "fieldLastName": "Schmidt"})
        ),
        contact(
            "max@example.org",
            &[
                "[WebinarJam] [Masterclass] Did Not Attend",
                "[WebinarJam] [Masterclass] Registered",
                "[WebinarJam] [Masterclass] Replay Watched"
            ],
            json!({
            "field101": masterclass_start, "field102": masterclass_room,
            "fieldFirstName": "Max", "fieldLastName": "Mustermann"})
        ),
        contact(
            "paul@example.net",
            &["[Zoom] [Demo Webinar] Cancelled"],
            json!({
            "field101": demo_start, "field102": "https://us06web.zoom.us/w/85012345678?tk=reg_paul",
            "fieldFirstName": "Paul", "fieldLastName": "Probe"})
        ),
    ])
}

#[test]
fn the_example_webinar_gives_the_expected_contacts() {
    let Simulated { report, .. } = simulate(&example_file());
    assert_eq!(report["klicktipp"]["contacts"], expected_example_contacts());
    let statuses: Vec<u64> = report["responses"]
        .as_array()
        .expect("responses")
        .iter()
        .map(|r| r["status"].as_u64().expect("status"))
        .collect();
    let mut expected_statuses = vec![200; 21];
    expected_statuses[14] = 401; // wrong token
    expected_statuses[15] = 422; // unusable address
    assert_eq!(statuses, expected_statuses);
    assert_eq!(report["responses"][0]["body"]["plainToken"], "qgg8vlvZRS6UYooatFL8Aw", "Zoom URL validation");
    assert_eq!(report["responses"][10]["body"]["status"], "ignored", "a Zoom guest without e-mail");
    assert_eq!(
        report["events"],
        json!({"accepted": 17, "applied": 15, "duplicates": 2, "rejected": 0, "skipped": 0, "dead_lettered": 0})
    );
    // Contacts + extra tag calls + tag creations + one login and one tag listing: nothing wasted.
    assert_eq!(
        report["klicktipp"]["calls_by_endpoint"],
        json!({"GET /tag": 1, "POST /account/login": 1, "POST /subscriber": 5, "POST /subscriber/tag": 2, "POST /tag": 10})
    );
    assert_eq!(report["klicktipp"]["calls"], 19);
}

#[test]
fn the_same_input_gives_the_same_document() {
    let first = simulate(&example_file()).stdout;
    let second = simulate(&example_file()).stdout;
    assert_eq!(first, second);
}

#[test]
fn shuffled_and_repeated_deliveries_give_the_same_contacts() {
    let lines: Vec<String> = std::fs::read_to_string(example_file())
        .expect("read the example")
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_owned)
        .collect();
    let baseline = simulate(&example_file()).report["klicktipp"]["contacts"].clone();
    let dir = tempfile::tempdir().expect("temp dir");
    for seed in 1..=4_u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        // Platforms redeliver: about a third of the lines arrive twice, anywhere in the stream.
        let mut delivered = lines.clone();
        let repeats: Vec<String> = lines.iter().filter(|_| rand::Rng::random_bool(&mut rng, 0.35)).cloned().collect();
        delivered.extend(repeats);
        delivered.shuffle(&mut rng);
        let file = write_lines(dir.path(), &format!("shuffle-{seed}.jsonl"), &delivered);
        let report = simulate(&file).report;
        assert_eq!(report["klicktipp"]["contacts"], baseline, "seed {seed}");
        assert_eq!(report["events"]["applied"], 15, "seed {seed}: every distinct event applied once");
        assert_eq!(report["events"]["dead_lettered"], 0, "seed {seed}");
    }
}

#[test]
fn without_received_at_lines_arrive_one_second_apart_in_file_order() {
    let registered = json!({"webinar_id": "7", "webinar_name": "Clinic", "email": "kim@example.com"}).to_string();
    let line = |kind: &str| {
        json!({"method": "POST", "path": format!("/hooks/webinarjam/{kind}?token={WEBINARJAM_SECRET}"),
            "headers": {"content-type": "application/json"}, "body": registered})
        .to_string()
    };
    let dir = tempfile::tempdir().expect("temp dir");
    // Last writer wins on arrival order: registered then cancelled is a cancellation ...
    let file = write_lines(dir.path(), "cancel-last.jsonl", &[line("registered"), line("cancelled")]);
    assert_eq!(simulate(&file).report["klicktipp"]["contacts"][0]["tags"], json!(["[WebinarJam] [Clinic] Cancelled"]));
    // ... and cancelled then registered (again) is a registration.
    let file = write_lines(dir.path(), "register-last.jsonl", &[line("cancelled"), line("registered")]);
    assert_eq!(simulate(&file).report["klicktipp"]["contacts"][0]["tags"], json!(["[WebinarJam] [Clinic] Registered"]));
    // A body in base64, and one too large: refused as serve refuses it.
    let base64 = json!({"method": "POST", "path": format!("/hooks/webinarjam/registered?token={WEBINARJAM_SECRET}"),
        "body_base64": "ZW1haWw9bGVlJTQwZXhhbXBsZS5jb20md2ViaW5hcl9pZD03JndlYmluYXJfbmFtZT1DbGluaWM="})
    .to_string();
    let oversized = json!({"method": "POST", "path": "/hooks/zoom", "body": " ".repeat(256 * 1024 + 1)}).to_string();
    let file = write_lines(dir.path(), "bodies.jsonl", &[base64, oversized]);
    let report = simulate(&file).report;
    assert_eq!(report["responses"][0]["status"], 200, "{}", report["responses"][0]);
    assert_eq!(report["responses"][1]["status"], 413);
    assert_eq!(report["responses"][1]["body"]["error"], "payload_too_large");
    assert_eq!(report["klicktipp"]["contacts"][0]["email"], "lee@example.com");
}

/// Registered, cancelled, registered again for the same session (a new registrant id and room,
/// as WebinarJam sends them), then the first registration's webhook once more: the contact ends
/// Registered, and the resent webhook is a duplicate.
#[test]
fn a_webinarjam_registration_after_a_cancellation_ends_registered() {
    let body = |user_id: u32, room: &str| {
        json!({"webinar_id": "7", "webinar_name": "Clinic", "schedule": 3, "date": "2026-02-10 19:00",
            "email": "kim@example.com", "user_id": user_id, "live_room_url": format!("https://event.webinarjam.com/live/{room}")})
        .to_string()
    };
    let line = |kind: &str, body: &str| {
        json!({"method": "POST", "path": format!("/hooks/webinarjam/{kind}?token={WEBINARJAM_SECRET}"),
            "headers": {"content-type": "application/json"}, "body": body})
        .to_string()
    };
    let (first, second) = (body(501, "first"), body(502, "second"));
    let lines = [
        line("registered", &first),
        line("cancelled", &first),
        line("registered", &second),
        line("registered", &first),
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    let report = simulate(&write_lines(dir.path(), "re-register.jsonl", &lines)).report;
    assert_eq!(report["klicktipp"]["contacts"][0]["tags"], json!(["[WebinarJam] [Clinic] Registered"]), "{report}");
    assert_eq!(report["events"]["applied"], 3, "{}", report["events"]);
    assert_eq!(report["events"]["duplicates"], 1, "the first webhook sent again is a duplicate");
}

#[test]
fn a_bad_line_exits_2_naming_the_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = json!({"method": "POST", "path": "/hooks/zoom", "body": "{}"}).to_string();
    let file = write_lines(
        dir.path(),
        "bad.jsonl",
        &[good.clone(), String::new(), r#"{"method":"POST","path":"/x","bdy":""}"#.to_owned()],
    );
    let run = harness::run_bridge(&BridgeEnv::with_sources(), &["simulate", &file.to_string_lossy()]);
    assert_eq!(run.code, Some(2));
    assert_eq!(run.stdout, "", "no report for a file that cannot be replayed");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(lines[0].starts_with("line 3: unknown field `bdy`"), "{}", lines[0]);

    let missing = harness::run_bridge(&BridgeEnv::with_sources(), &["simulate", "/nonexistent/requests.jsonl"]);
    assert_eq!(missing.code, Some(2));
    assert!(missing.stderr.starts_with("cannot read /nonexistent/requests.jsonl"), "{}", missing.stderr);

    let misconfigured = BridgeEnv::with_sources().set("BRIDGE_FULL_ATTENDANCE_PERCENT", "120");
    let run = harness::run_bridge(&misconfigured, &["simulate", &file.to_string_lossy()]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.starts_with("BRIDGE_FULL_ATTENDANCE_PERCENT: "), "{}", run.stderr);
}

/// The example's contacts with each tag renamed by `rename(tool and webinar part, state word)`.
fn example_contacts_renamed(rename: impl Fn(&str, &str) -> String) -> Value {
    let mut contacts = expected_example_contacts();
    for contact in contacts.as_array_mut().expect("contacts") {
        let mut tags: Vec<String> = contact["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .map(|tag| {
                let tag = tag.as_str().expect("tag name");
                let (head, state) = tag.rsplit_once("] ").expect("[Tool] [Webinar] State");
                rename(head, state)
            })
            .collect();
        tags.sort();
        contact["tags"] = json!(tags);
    }
    contacts
}

#[test]
fn german_state_names_and_the_session_date_reach_klicktipp() {
    let german = |state: &str| match state {
        "Registered" => "Angemeldet",
        "Cancelled" => "Abgemeldet",
        "Did Not Attend" => "Nicht teilgenommen",
        "Attended" => "Teilgenommen",
        "Fully Attended" => "Komplett teilgenommen",
        "Replay Watched" => "Aufzeichnung angesehen",
        "Buyer" => "Käufer",
        other => panic!("unexpected state {other}"),
    };
    let file = example_file();
    let run = harness::run_bridge(
        &BridgeEnv::with_sources().set("BRIDGE_LANGUAGE", "de"),
        &["simulate", &file.to_string_lossy()],
    );
    assert_eq!(run.code, Some(0), "simulate failed: {}", run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).expect("stdout is one JSON document");
    assert_events_add_up(&report);
    assert_eq!(
        report["klicktipp"]["contacts"],
        example_contacts_renamed(|head, state| format!("{head}] {}", german(state)))
    );

    // One word overridden over German, and the session date in the webinar's zone: Demo Webinar
    // starts 2026-01-15T17:00:00Z, Masterclass 2026-02-10 19:00 GMT+1.
    let dated = BridgeEnv::with_sources()
        .set("BRIDGE_LANGUAGE", "de")
        .set("BRIDGE_STATE_NAMES", r#"{"Buyer":"Kunde"}"#)
        .set("BRIDGE_TAG_TEMPLATE", "[{tool}] [{webinar} {date}] {state}");
    let run = harness::run_bridge(&dated, &["simulate", &file.to_string_lossy()]);
    assert_eq!(run.code, Some(0), "simulate failed: {}", run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).expect("stdout is one JSON document");
    let expected = example_contacts_renamed(|head, state| {
        let date = if head.contains("[Masterclass") { "2026-02-10" } else { "2026-01-15" };
        let word = if state == "Buyer" { "Kunde" } else { german(state) };
        format!("{head} {date}] {word}")
    });
    assert_eq!(report["klicktipp"]["contacts"], expected);
}

#[test]
fn state_names_that_would_share_a_tag_stop_simulate_naming_the_variable() {
    let file = example_file();
    let colliding = BridgeEnv::with_sources()
        .set("BRIDGE_LANGUAGE", "de")
        .set("BRIDGE_STATE_NAMES", r#"{"Fully Attended":"Teilgenommen"}"#);
    let run = harness::run_bridge(&colliding, &["simulate", &file.to_string_lossy()]);
    assert_eq!(run.code, Some(2));
    assert_eq!(run.stdout, "");
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.starts_with("BRIDGE_STATE_NAMES: \"Attended\" and \"Fully Attended\""), "{}", run.stderr);
}
