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
    // A join without an e-mail, matched through the registrant id of Erika's registration.
    assert_eq!(report["responses"][10]["body"]["status"], "accepted", "a Zoom participant without e-mail");
    assert_eq!(
        report["events"],
        json!({"accepted": 18, "applied": 16, "duplicates": 2, "rejected": 0, "skipped": 0, "dead_lettered": 0})
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
        // 16: Erika's join without an e-mail is matched by her registrant id, kept first when it
        // arrives before her registration.
        assert_eq!(report["events"]["applied"], 16, "seed {seed}: every distinct event applied once");
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

// ---------------------------------------------------------------------------------------------
// `simulate --platform` (DESIGN 11): reconciliation heals lost webhooks.

/// One registrant of the truth: what happened, and which webhooks that makes.
struct Truth {
    email: String,
    first_name: String,
    /// The API's `attended_live`: 1 attended, 2 did not, 3 left early, 4 stayed.
    attended_live: u8,
    time_live: &'static str,
    replay_and_purchase: bool,
}

fn truth(count: usize) -> Vec<Truth> {
    (0..count)
        .map(|index| {
            let (attended_live, time_live) = match index % 5 {
                0 => (2, "00:00:00"),
                1 => (1, "00:30:00"),
                2 => (3, "0:10:00"),
                3 => (4, "00:55:00"),
                _ => (1, "00:50:00"),
            };
            Truth {
                email: format!("person{index:02}@example.com"),
                first_name: format!("Person{index}"),
                attended_live,
                time_live,
                replay_and_purchase: index % 5 == 4,
            }
        })
        .collect()
}

/// The webhooks the platform would send for the truth, one request line each.
fn webhook_lines(truth: &[Truth]) -> Vec<String> {
    let mut lines = Vec::new();
    for person in truth {
        let body = |extra: Value| {
            let mut body = json!({
                "webinar_id": "123", "webinar_name": "Masterclass", "email": person.email,
                "first_name": person.first_name, "schedule": 45, "date": "2026-02-10 19:00",
                "timezone": "Europe/Berlin", "live_room_url": format!("https://event.webinarjam.com/live/{}", person.email),
                "webinar_duration": 60,
            });
            if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
                body.extend(extra.clone());
            }
            body.to_string()
        };
        let mut kinds = vec![("registered", body(json!({})))];
        let live = json!({"time_live": person.time_live});
        kinds.push(match person.attended_live {
            2 => ("no_show", body(json!({}))),
            3 => ("left_early", body(live)),
            _ => ("attended", body(live)),
        });
        if person.replay_and_purchase {
            kinds.push(("replay", body(json!({}))));
            kinds.push(("purchased", body(json!({"revenue_live": "97"}))));
        }
        for (kind, body) in kinds {
            lines.push(
                json!({"method": "POST", "path": format!("/hooks/webinarjam/{kind}?token={WEBINARJAM_SECRET}"),
                       "headers": {"content-type": "application/json"}, "body": body})
                .to_string(),
            );
        }
    }
    lines
}

/// What the WebinarJam API returns for the same truth (`platform.json`).
fn platform_document(truth: &[Truth]) -> Value {
    let registrants: Vec<Value> = truth
        .iter()
        .enumerate()
        .map(|(index, person)| {
            json!({
                "lead_id": 5000 + index, "email": person.email, "first_name": person.first_name, "schedule": "45",
                "signup_date": "2026-02-01 10:12:00", "attended_live": person.attended_live.to_string(),
                "time_live": person.time_live, "purchased_live": u8::from(person.replay_and_purchase),
                "revenue_live": if person.replay_and_purchase { "97" } else { "0" },
                "attended_replay": u8::from(person.replay_and_purchase), "purchased_replay": 0,
                "live_room": format!("https://event.webinarjam.com/live/{}", person.email),
            })
        })
        .collect();
    json!({"webinarjam": {"webinars": [{"webinar_id": "123", "name": "Masterclass", "timezone": "Europe/Berlin",
        "duration_minutes": 60, "schedules": [{"schedule": 45, "date": "2026-02-10 19:00"}],
        "registrants": registrants}]}})
}

fn simulate_with(file: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["simulate".to_owned(), file.to_string_lossy().into_owned()];
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = harness::run_bridge(&BridgeEnv::with_sources(), &args);
    assert_eq!(run.code, Some(0), "simulate failed: {}", run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).expect("stdout is one JSON document");
    assert_events_add_up(&report);
    report
}

#[test]
fn reconciliation_heals_dropped_webhooks_and_a_second_pull_costs_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let truth = truth(40);
    let all = webhook_lines(&truth);
    let mut rng = StdRng::seed_from_u64(20);
    let kept: Vec<String> = all.iter().filter(|_| rand::Rng::random_bool(&mut rng, 0.8)).cloned().collect();
    assert!(kept.len() < all.len() && kept.len() > all.len() / 2, "{} of {}", kept.len(), all.len());
    let platform = dir.path().join("platform.json");
    std::fs::write(&platform, platform_document(&truth).to_string()).expect("write platform.json");
    let platform_arg = platform.to_string_lossy().into_owned();

    let oracle = simulate_with(&write_lines(dir.path(), "all.jsonl", &all), &[]);
    let lossy = write_lines(dir.path(), "kept.jsonl", &kept);
    let without_pull = simulate_with(&lossy, &[]);
    assert_ne!(without_pull["klicktipp"]["contacts"], oracle["klicktipp"]["contacts"], "the drop lost nothing");

    let healed = simulate_with(&lossy, &["--platform", &platform_arg, "--pull-rounds", "2"]);
    assert_eq!(healed["klicktipp"]["contacts"], oracle["klicktipp"]["contacts"]);
    let report = &healed["platform"];
    assert_eq!(report["http_429"], 0, "{report}");
    // One /webinar and one /registrants page per round.
    assert_eq!(report["calls_by_endpoint"]["POST /webinarjam/webinar"], 2, "{report}");
    assert_eq!(report["calls_by_endpoint"]["POST /webinarjam/registrants"], 2, "{report}");
    let rounds = report["rounds"].as_array().expect("rounds");
    assert_eq!(rounds[0]["pulled_events"], rounds[1]["pulled_events"]);
    assert!(rounds[0]["enqueued"].as_u64() > Some(0), "{report}");
    assert_eq!((&rounds[1]["enqueued"], &rounds[1]["klicktipp_calls"]), (&json!(0), &json!(0)), "{report}");
}

#[test]
fn zoom_absentees_get_did_not_attend_and_hosts_are_not_contacts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let platform = dir.path().join("platform.json");
    let document = json!({"zoom": {"webinars": [{"id": "85012345678", "uuid": "/k7Zq//9XvRTn2wYb3cQp1Lmg==",
        "topic": "Demo Webinar", "start_time": "2026-01-15T17:00:00Z", "duration": 60,
        "registrants": [{"id": "reg_1", "email": "a@example.com", "first_name": "A", "status": "approved"},
                        {"id": "reg_2", "email": "b@example.com", "first_name": "B", "status": "approved"}],
        "participants": [
            {"registrant_id": "reg_1", "user_email": "", "name": "A", "join_time": "2026-01-15T17:02:00Z",
             "leave_time": "2026-01-15T17:40:00Z", "duration": 2280},
            {"registrant_id": "", "user_email": "host@example.com", "name": "Host",
             "join_time": "2026-01-15T16:55:00Z", "leave_time": "2026-01-15T18:05:00Z", "duration": 4200}],
        "absentees": [{"id": "reg_2", "email": "b@example.com", "first_name": "B"}]}]}});
    std::fs::write(&platform, document.to_string()).expect("write platform.json");
    let empty = write_lines(dir.path(), "none.jsonl", &[]);
    let report = simulate_with(&empty, &["--platform", &platform.to_string_lossy()]);
    let contacts = report["klicktipp"]["contacts"].as_array().expect("contacts");
    let tags = |email: &str| -> Vec<String> {
        let contact = contacts.iter().find(|contact| contact["email"] == email).unwrap_or_else(|| panic!("{email}"));
        serde_json::from_value(contact["tags"].clone()).expect("tags")
    };
    assert_eq!(contacts.len(), 2, "{contacts:?}");
    assert_eq!(tags("a@example.com"), ["[Zoom] [Demo Webinar] Attended", "[Zoom] [Demo Webinar] Registered"]);
    assert_eq!(tags("b@example.com"), ["[Zoom] [Demo Webinar] Did Not Attend", "[Zoom] [Demo Webinar] Registered"]);
    assert_eq!(report["platform"]["calls_by_endpoint"]["POST /oauth/token"], 1, "{report}");
}

/// Issue 15 item 7: an engagement label from a WebinarJam rule URL becomes its own sticky tag
/// (translated through BRIDGE_STATE_NAMES where a word is given); the same webhook again is a
/// duplicate that costs no KlickTipp call; a label with `]` is refused with 422.
#[test]
fn an_engagement_label_reaches_klicktipp_as_its_own_tag_once() {
    let body = json!({"webinar_id": "7", "webinar_name": "Clinic", "schedule": 3, "date": "2026-02-10 19:00",
        "email": "kim@example.com", "user_id": 501})
    .to_string();
    let line = |path: &str| {
        let separator = if path.contains('?') { '&' } else { '?' };
        json!({"method": "POST", "path": format!("/hooks/webinarjam/{path}{separator}token={WEBINARJAM_SECRET}"),
            "headers": {"content-type": "application/json"}, "body": body})
        .to_string()
    };
    let lines = [
        line("registered"),
        line("engaged?label=Clicked%20Offer"),
        line("engaged?label=Clicked%20Offer"),
        line("engaged?label=Asked%20Question"),
        line("engaged?label=Offer%5D%20%5Bx"),
        line("engaged"),
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write_lines(dir.path(), "engaged.jsonl", &lines);
    let env = BridgeEnv::with_sources().set("BRIDGE_STATE_NAMES", r#"{"asked question":"Frage gestellt"}"#);
    let run = harness::run_bridge(&env, &["simulate", &file.to_string_lossy()]);
    assert_eq!(run.code, Some(0), "simulate failed: {}", run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).expect("stdout is one JSON document");
    assert_events_add_up(&report);
    let statuses: Vec<u64> =
        report["responses"].as_array().expect("responses").iter().map(|r| r["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 422, 422], "{}", report["responses"]);
    assert_eq!(report["responses"][4]["body"]["field"], "label");
    assert_eq!(report["responses"][5]["body"]["error"], "missing_label");
    assert_eq!(
        report["klicktipp"]["contacts"][0]["tags"],
        json!([
            "[WebinarJam] [Clinic] Clicked Offer",
            "[WebinarJam] [Clinic] Frage gestellt",
            "[WebinarJam] [Clinic] Registered"
        ]),
        "{report}"
    );
    assert_eq!(report["events"]["duplicates"], 1, "{}", report["events"]);
    // One tag creation per tag, one upsert carrying the first tag, one tag call for the two
    // labels; the repeated "Clicked Offer" webhook and the refused ones cost nothing.
    assert_eq!(
        report["klicktipp"]["calls_by_endpoint"],
        json!({"GET /tag": 1, "POST /account/login": 1, "POST /subscriber": 1, "POST /subscriber/tag": 1, "POST /tag": 3}),
        "{}",
        report["klicktipp"]
    );
    assert_eq!(report["klicktipp"]["calls"], 7);
}
