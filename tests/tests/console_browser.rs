//! The console in a real browser (issue 14): Debian's chromium driven by Playwright for Python
//! (`tests/browser/console.py`, installed by `infra/local/install-browser.sh`) against
//! `webinar-bridge serve` and the KlickTipp simulator over real HTTP.
//!
//! 1. serve maps `webinar_name` to `field101`, a number field: KlickTipp refuses "Spring Launch".
//!    The browser signs in, finds the contact, reads its timeline and sees the field problem.
//! 2. serve stops; a second contact's event is dead-lettered (as after a KlickTipp outage).
//! 3. serve restarts mapping `webinar_name` to `field102`, a text field. The browser resyncs the
//!    contact from the problems list and sees the problem gone, then redrives the dead letter.
//!
//! A second test (issue 15) drives the settings page: an existing tag for `Attended`, "Create tag"
//! for a missing one, Save; the next attended event lands on the existing tag.
//!
//! A third (issue 15) parks a WebinarJam body, sees it listed, restarts serve with the alias and
//! reprocesses it from the problems page.
//!
//! Exact KlickTipp calls are asserted for the resync, the redrive and the mapped event. Screenshots go to
//! `target/screenshots/`; with `UPDATE_SCREENSHOTS=1` they replace the README illustrations in
//! `functions/cli/screenshots/` (so a test run leaves the work tree as it was).
//!
//! Needs `cargo build --workspace` first and `bash infra/local/install-browser.sh`.

use bytes::Bytes;
use klicktipp_sim::{FieldType, SimConfig};
use serde_json::{Value, json};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use webinar_bridge::adapters::memory::QueueSettings;
use webinar_bridge::adapters::sqlite::{SqliteContactStore, SqliteDb, SqliteQueue};
use webinar_bridge::domain::Email;
use webinar_bridge::ingest::Ingest;
use webinar_bridge::ports::{ContactStore, EventQueue};
use webinar_bridge::sources::RawRequest;
use webinar_bridge_tests::harness::{self, BridgeEnv, ServeProcess, WEBINARJAM_SECRET, calls, calls_since};

const TOKEN: &str = "console-token-for-the-browser-test";
const ERIKA: &str = "erika@example.com";
const MAX: &str = "max@example.com";
const NUMBER_MAP: &str = r#"{"first_name":"fieldFirstName","webinar_name":"field101"}"#;
const TEXT_MAP: &str = r#"{"first_name":"fieldFirstName","webinar_name":"field102"}"#;

fn registration(email: &str) -> Value {
    json!({
        "webinar_id": "321", "webinar_name": "Spring Launch", "schedule": "7", "date": "2026-04-14 18:00",
        "timezone": "GMT+2", "email": email, "first_name": "Erika",
    })
}

fn browser(phase: &str, serve: &ServeProcess, email: &str) {
    browser_with(phase, serve, email, &["--field", "field101"]);
}

fn browser_with(phase: &str, serve: &ServeProcess, email: &str, extra: &[&str]) {
    let root = harness::workspace_root();
    let python = root.join(".tools/bin/python");
    assert!(
        python.exists() && std::path::Path::new("/usr/bin/chromium").exists(),
        "the browser test needs chromium and Playwright: run `bash infra/local/install-browser.sh`"
    );
    let hash = Email::parse(email).expect("an address").short_hash();
    let output = Command::new(python)
        .arg(root.join("tests/browser/console.py"))
        .args([phase, "--url", serve.url("").trim_end_matches('/'), "--token", TOKEN, "--email", email])
        .args(["--contact-hash", &hash])
        .args(extra)
        .arg("--screenshots")
        .arg(screenshot_folder(&root))
        .output()
        .expect("run the browser script");
    assert!(
        output.status.success(),
        "browser phase {phase} failed:\n{}\n{}\nserve stderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        serve.stderr_text()
    );
}

/// Where the screenshots go: the committed README illustrations only when asked for.
fn screenshot_folder(root: &std::path::Path) -> std::path::PathBuf {
    let folder = if std::env::var_os("UPDATE_SCREENSHOTS").is_some_and(|value| value == "1") {
        root.join("functions/cli/screenshots")
    } else {
        root.join("target/screenshots")
    };
    std::fs::create_dir_all(&folder).expect("create the screenshot folder");
    folder
}

async fn post_registration(serve: &ServeProcess, email: &str) {
    post_event(serve, "registered", email).await;
}

async fn post_event(serve: &ServeProcess, kind: &str, email: &str) {
    let answer = reqwest::Client::new()
        .post(serve.url(&format!("/hooks/webinarjam/{kind}")))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {WEBINARJAM_SECRET}"))
        .body(registration(email).to_string())
        .send()
        .await
        .expect("serve answers");
    assert!(answer.status().is_success(), "{}", answer.status());
}

/// With serve stopped: ingests an event for `email` into serve's queue and dead-letters it,
/// as the consumer does when KlickTipp kept failing.
async fn dead_letter(db: &SqliteDb, env: &BridgeEnv, email: &str) {
    let queue = Arc::new(SqliteQueue::new(db.clone(), QueueSettings::default()));
    let ingest = Ingest::new(queue.clone(), env.config().secrets);
    let request = RawRequest {
        method: "POST".into(),
        path: "/hooks/webinarjam/registered".into(),
        query: None,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("authorization".into(), format!("Bearer {WEBINARJAM_SECRET}")),
        ],
        body: Bytes::from(registration(email).to_string()),
        received_at: chrono::Utc::now(),
    };
    let answer = ingest.handle(&request).await;
    assert!(answer.status < 300, "{:?}", answer.body);
    let received = queue.receive(10).await.expect("receive");
    assert_eq!(received.len(), 1);
    queue.dead_letter(&received[0], "KlickTipp was unreachable (browser test)").await.expect("dead-letter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_finds_fixes_and_redrives_in_the_browser() {
    let config = SimConfig::default()
        .with_custom_field("field101", "Webinar Name", FieldType::Number)
        .with_custom_field("field102", "Webinar Title", FieldType::Line);
    let simulator = klicktipp_sim::start(config, "127.0.0.1:0").await.expect("start the simulator");
    let dir = tempfile::tempdir().expect("temp dir");
    let db_path = dir.path().join("bridge.db");
    let env = BridgeEnv::for_simulator(&simulator.url(), &db_path)
        .set("BRIDGE_CONSOLE_TOKEN", TOKEN)
        .set("BRIDGE_KLICKTIPP_RPS", "50");
    let db = harness::open_db(&db_path);

    // 1. The refused field, seen in the browser.
    let serve = ServeProcess::start(&env.clone_with("BRIDGE_FIELD_MAP", NUMBER_MAP), &[]).await;
    post_registration(&serve, ERIKA).await;
    harness::wait_until_drained(&db, Duration::from_secs(45)).await;
    let erika = Email::parse(ERIKA).expect("an address");
    let contacts = SqliteContactStore::new(db.clone());
    let record = contacts.load(&erika).await.expect("load").expect("a record").value;
    assert!(record.field_problems.contains_key("field101"), "{:?}", record.field_problems);
    tokio::task::block_in_place(|| browser("problem", &serve, ERIKA));
    serve.terminate().await;

    // 2. A dead letter while serve is down.
    dead_letter(&db, &env, MAX).await;

    // 3. The mapping fixed: resync and redrive in the browser.
    let serve = ServeProcess::start(&env.clone_with("BRIDGE_FIELD_MAP", TEXT_MAP), &[]).await;
    let before = simulator.calls_by_endpoint();
    tokio::task::block_in_place(|| browser("fix", &serve, ERIKA));
    harness::wait_until_drained(&db, Duration::from_secs(45)).await;
    // A new process logs in once. Resync: one upsert carrying the webinar name in field102 and
    // the registration tag (its id is stored, so no tag lookup); the redriven registration: one
    // upsert with the same tag.
    let expected = [("POST /account/login", 1), ("POST /subscriber", 2)];
    assert_eq!(calls_since(&simulator, &before), calls(&expected), "KlickTipp calls for the resync and the redrive");
    let record = contacts.load(&erika).await.expect("load").expect("a record").value;
    assert!(record.field_problems.is_empty(), "{:?}", record.field_problems);
    let in_klicktipp = simulator.contacts().into_iter().find(|contact| contact.email == ERIKA).expect("erika");
    assert_eq!(in_klicktipp.fields.get("field102").map(String::as_str), Some("Spring Launch"));
    assert!(simulator.contacts().iter().any(|contact| contact.email == MAX), "the redriven event was applied");
    let queue = SqliteQueue::new(db.clone(), QueueSettings::default());
    assert!(queue.dead_letters().await.expect("dead letters").is_empty());
    let output = format!("{}\n{}", serve.stdout_text(), serve.stderr_text());
    assert!(!output.contains(ERIKA) && !output.contains(MAX), "an address in serve's output");
    serve.terminate().await;
}

/// Issue 15's settings page in the browser: the person maps `Attended` of a webinar to a tag the
/// account already has, creates the missing tag of another state, and saves; the next attended
/// event lands on the existing tag (checked through KlickTipp's API over HTTP), and no tag with
/// the generated name is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_maps_a_state_to_an_existing_tag_in_the_browser() {
    const EXISTING: &str = "Webinar attendees (all)";
    const GENERATED_ATTENDED: &str = "[WebinarJam] [Spring Launch] Attended";
    const CREATED: &str = "[WebinarJam] [Spring Launch] Replay Watched";
    let simulator = klicktipp_sim::start(SimConfig::default(), "127.0.0.1:0").await.expect("start the simulator");
    let klicktipp = harness::simulator_client(&simulator);
    let existing = klicktipp.create_tag(EXISTING, None).await.expect("the account's own tag");
    let dir = tempfile::tempdir().expect("temp dir");
    let db_path = dir.path().join("bridge.db");
    let env = BridgeEnv::for_simulator(&simulator.url(), &db_path)
        .set("BRIDGE_CONSOLE_TOKEN", TOKEN)
        .set("BRIDGE_KLICKTIPP_RPS", "50")
        // Tags are created as events need them, so the page offers "Create tag" for the rest.
        .set("BRIDGE_TAGS_AHEAD", "off");
    let db = harness::open_db(&db_path);
    let serve = ServeProcess::start(&env, &[]).await;
    post_registration(&serve, ERIKA).await;
    harness::wait_until_drained(&db, Duration::from_secs(45)).await;

    let extra = [
        "--webinar",
        "Spring Launch",
        "--generated-prefix",
        "[WebinarJam] [Spring Launch]",
        "--existing-tag",
        EXISTING,
        "--create-state",
        "ReplayWatched",
    ];
    tokio::task::block_in_place(|| browser_with("settings", &serve, ERIKA, &extra));
    let tags = simulator.tags();
    assert_eq!(tags.values().filter(|name| name.as_str() == CREATED).count(), 1, "Create tag made it once: {tags:?}");

    // The next attended event: only a tag changes, so one tag call with the existing tag's id;
    // no tag created or looked up.
    let before = simulator.calls_by_endpoint();
    post_event(&serve, "attended", ERIKA).await;
    harness::wait_until_drained(&db, Duration::from_secs(45)).await;
    assert_eq!(
        calls_since(&simulator, &before),
        calls(&[("POST /subscriber/tag", 1)]),
        "KlickTipp calls for the event"
    );
    assert!(!simulator.tags().values().any(|name| name == GENERATED_ATTENDED), "no generated Attended tag");
    let id = klicktipp.search_subscriber(ERIKA).await.expect("search").expect("erika is a contact");
    let contact = klicktipp.get_subscriber(&id).await.expect("the contact over HTTP");
    assert!(contact.tags.contains(&existing), "the chosen tag {existing} on the contact: {:?}", contact.tags);
    let output = format!("{}\n{}", serve.stdout_text(), serve.stderr_text());
    assert!(!output.contains(ERIKA), "an address in serve's output");
    serve.terminate().await;
}

/// Issue 15's parked webhooks in the browser: an authenticated WebinarJam body with the e-mail
/// under an unknown key is parked; the overview counts it and the problems page lists it (no
/// body, no address). serve restarts with the alias (`BRIDGE_FIELD_ALIASES` is read at start);
/// Reprocess turns it into the contact's registration tag, with exact KlickTipp calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_reprocesses_a_parked_webhook_in_the_browser() {
    const PETRA: &str = "petra.parked@example.com";
    const REGISTERED: &str = "[WebinarJam] [Masterclass] Registered";
    // The harness simulator has the fields BridgeEnv maps, as in e2e_parked.rs.
    let simulator = harness::start_simulator().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let db_path = dir.path().join("bridge.db");
    let env = BridgeEnv::for_simulator(&simulator.url(), &db_path)
        .set("BRIDGE_CONSOLE_TOKEN", TOKEN)
        .set("BRIDGE_KLICKTIPP_RPS", "50");
    let db = harness::open_db(&db_path);
    let serve = ServeProcess::start(&env, &[]).await;
    let body = json!({"webinar_id": "123", "webinar_name": "Masterclass", "schedule": "45",
                      "date": "2026-02-10 19:00", "Mail Adresse": PETRA, "first_name": "Petra"});
    let answer = reqwest::Client::new()
        .post(serve.url("/hooks/webinarjam/registered"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {WEBINARJAM_SECRET}"))
        .body(body.to_string())
        .send()
        .await
        .expect("serve answers");
    assert_eq!(answer.status().as_u16(), 202, "parked");
    tokio::task::block_in_place(|| browser_with("parked", &serve, PETRA, &[]));
    serve.terminate().await;
    assert_eq!(simulator.total_calls(), 0, "nothing reached KlickTipp while parked");

    let serve =
        ServeProcess::start(&env.clone_with("BRIDGE_FIELD_ALIASES", r#"{"email":["Mail Adresse"]}"#), &[]).await;
    tokio::task::block_in_place(|| browser_with("reprocess", &serve, PETRA, &[]));
    harness::wait_until_drained(&db, Duration::from_secs(45)).await;
    let tags = harness::tags_by_email(&simulator);
    assert_eq!(tags.get(PETRA).cloned().unwrap_or_default(), [REGISTERED.to_owned()].into());
    // The restarted serve logs in once, finds no tag, creates the registration tag and upserts
    // the contact with it (the same calls as `webinar-bridge reprocess` in e2e_parked.rs).
    let expected = calls(&[("GET /tag", 1), ("POST /account/login", 1), ("POST /subscriber", 1), ("POST /tag", 1)]);
    assert_eq!(simulator.calls_by_endpoint(), expected, "KlickTipp calls for the reprocessed body");
    let output = format!("{}\n{}", serve.stdout_text(), serve.stderr_text());
    assert!(!output.contains(PETRA), "an address in serve's output");
    serve.terminate().await;
}

trait CloneWith {
    fn clone_with(&self, name: &str, value: &str) -> BridgeEnv;
}

impl CloneWith for BridgeEnv {
    fn clone_with(&self, name: &str, value: &str) -> BridgeEnv {
        self.clone().set(name, value)
    }
}
