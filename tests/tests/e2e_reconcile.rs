//! Automatic reconciliation in `serve` (DESIGN 11): a WebinarJam/EverWebinar session that ended
//! more than BRIDGE_RECONCILE_AFTER_MINUTES ago is pulled from the platform simulator over real
//! HTTP, its contacts reach KlickTipp with no webhook at all, and after a restart the session is
//! not pulled again (done rounds live in the SQLite file).

use platform_sim::{PlatformData, PlatformSim, SimConfig};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use webinar_bridge_tests::harness::{self, BridgeEnv, ServeProcess};

const WAIT: Duration = Duration::from_secs(60);

fn platform_data() -> PlatformData {
    // Started four hours ago, one hour long: ended three hours ago, past the default 120 minutes.
    let start = (chrono::Utc::now() - chrono::Duration::hours(4)).format("%Y-%m-%d %-H:%M").to_string();
    let document = json!({"everwebinar": {"webinars": [{"webinar_id": "77", "name": "Evergreen", "timezone": "UTC",
        "duration_minutes": 60, "schedules": [{"schedule": 9, "date": start}],
        "registrants": [
            {"lead_id": 1, "email": "came@example.com", "first_name": "Came", "schedule": 9,
             "signup_date": "2026-01-01 08:00:00", "attended_live": 1, "time_live": "0:20:00"},
            {"lead_id": 2, "email": "missed@example.com", "first_name": "Missed", "schedule": 9,
             "signup_date": "2026-01-01 08:00:00", "attended_live": 2},
            {"lead_id": 3, "email": "bought@example.com", "first_name": "Bought", "schedule": 9,
             "signup_date": "2026-01-01 08:00:00", "attended_live": "4", "time_live": "0:59:00",
             "purchased_live": 1, "revenue_live": "97"}]}]}});
    PlatformData::from_json(&document.to_string()).expect("platform document")
}

fn tags(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| format!("[EverWebinar] [Evergreen] {name}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reconciles_an_ended_session_once_without_any_webhook() {
    let klicktipp = harness::start_simulator().await;
    let platform = PlatformSim::start(SimConfig::with_data(platform_data())).await.expect("start platform-sim");
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("bridge.db");
    let env = BridgeEnv::for_simulator(&klicktipp.url(), &db)
        .set("WEBINARJAM_API_BASE_URL", &platform.url())
        .set("BRIDGE_EVERWEBINAR_API_KEY", &platform.api_key());

    let serve = ServeProcess::start(&env, &[]).await;
    let expected = [
        // The API does not return the webinar's length, so 59 minutes cannot count as full attendance.
        ("bought@example.com".to_owned(), tags(&["Attended", "Buyer", "Registered"])),
        ("came@example.com".to_owned(), tags(&["Attended", "Registered"])),
        ("missed@example.com".to_owned(), tags(&["Did Not Attend", "Registered"])),
    ]
    .into_iter()
    .collect();
    let started = Instant::now();
    while harness::tags_by_email(&klicktipp) != expected {
        assert!(
            started.elapsed() < WAIT,
            "not reconciled: {:?}\n{}",
            harness::tags_by_email(&klicktipp),
            serve.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(serve.terminate().await.success());
    let registrant_calls =
        |sim: &PlatformSim| sim.stats().calls_by_endpoint.get("POST /everwebinar/registrants").copied();
    assert_eq!(registrant_calls(&platform), Some(1));

    // After a restart the session is listed again but not pulled again.
    let klicktipp_calls = klicktipp.total_calls();
    let listed =
        |sim: &PlatformSim| sim.stats().calls_by_endpoint.get("POST /everwebinar/webinar").copied().unwrap_or(0);
    let serve = ServeProcess::start(&env, &[]).await;
    let started = Instant::now();
    while listed(&platform) < 2 {
        assert!(started.elapsed() < WAIT, "no second pass: {}", serve.stderr_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(serve.terminate().await.success());
    assert_eq!(registrant_calls(&platform), Some(1), "the done session was pulled again");
    assert_eq!(klicktipp.total_calls(), klicktipp_calls);
    platform.shutdown().await;
}

/// A webinar that ran long ago: outside automatic reconciliation, a case for `backfill`.
fn past_data() -> PlatformData {
    let document = json!({"everwebinar": {"webinars": [{"webinar_id": "77", "name": "Evergreen",
        "timezone": "Europe/Berlin", "duration_minutes": 45, "schedules": [{"schedule": 9, "date": "2026-02-11 9:00"}],
        "registrants": [
            {"lead_id": 1, "email": "max@example.com", "first_name": "Max", "schedule": 9,
             "signup_date": "2026-02-02 08:00:00", "attended_live": 0, "attended_replay": 1, "purchased_replay": 1,
             "revenue_replay": "97.00"},
            {"lead_id": 2, "email": "eva@example.com", "first_name": "Eva", "schedule": 9,
             "signup_date": "2026-02-02 08:00:00", "attended_live": 3, "time_live": "0:10:00"}]}]}});
    PlatformData::from_json(&document.to_string()).expect("platform document")
}

async fn pending(db: &std::path::Path) -> usize {
    let queue = webinar_bridge::adapters::sqlite::SqliteQueue::new(
        harness::open_db(db),
        webinar_bridge::adapters::memory::QueueSettings::default(),
    );
    harness::pending_messages(&queue).await
}

// Every wait here is bounded and fails with what it waited for: each CLI run (killed after
// `harness::RUN_TIMEOUT`, its output pipes too), serve's start, health checks and stop, each look
// at the database, and the drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_dry_run_shows_changes_then_backfill_feeds_serve_and_a_repeat_costs_nothing() {
    let klicktipp = harness::start_simulator().await;
    let platform = PlatformSim::start(SimConfig::with_data(past_data())).await.expect("start platform-sim");
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("bridge.db");
    let env = BridgeEnv::for_simulator(&klicktipp.url(), &db)
        .set("WEBINARJAM_API_BASE_URL", &platform.url())
        .set("BRIDGE_EVERWEBINAR_API_KEY", &platform.api_key());
    let backfill = ["backfill", "--source", "everwebinar", "--webinar", "77"];

    let dry = harness::run_bridge_async(&env, &[&backfill[..], &["--dry-run"]].concat()).await;
    assert_eq!(dry.code, Some(0), "{}", dry.stderr);
    for line in [
        "max@example.com",
        "  + [EverWebinar] [Evergreen] Buyer",
        "  + [EverWebinar] [Evergreen] Did Not Attend",
        "  + [EverWebinar] [Evergreen] Replay Watched",
        "eva@example.com",
        "  + [EverWebinar] [Evergreen] Attended",
        "  field fieldFirstName=Eva",
    ] {
        assert!(dry.stdout.lines().any(|printed| printed == line), "{line:?} missing:\n{}", dry.stdout);
    }
    assert!(dry.stdout.contains("nothing was enqueued"), "{}", dry.stdout);
    assert_eq!(pending(&db).await, 0);
    assert_eq!(klicktipp.total_calls(), 0);

    let run = harness::run_bridge_async(&env, &backfill).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let enqueued = pending(&db).await;
    assert!(
        enqueued > 0 && run.stdout.contains(&format!("enqueued {enqueued} events for 2 contacts")),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("pulled 2 records in 1 pages"), "{}", run.stderr);

    let serve = ServeProcess::start(&env, &[]).await;
    harness::wait_until_drained(&harness::open_db(&db), WAIT).await;
    let tags_now = harness::tags_by_email(&klicktipp);
    // Left early is attended; 10 of 45 minutes is not full attendance.
    assert_eq!(tags_now["eva@example.com"], tags(&["Attended", "Registered"]), "{tags_now:?}");
    assert_eq!(
        tags_now["max@example.com"],
        tags(&["Buyer", "Did Not Attend", "Registered", "Replay Watched"]),
        "{tags_now:?}"
    );

    // The same backfill again: the queue or the event log knows every event; KlickTipp hears nothing.
    let calls = klicktipp.total_calls();
    let again = harness::run_bridge_async(&env, &backfill).await;
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    harness::wait_until_drained(&harness::open_db(&db), WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(klicktipp.total_calls(), calls, "a repeated backfill reached KlickTipp");
    assert!(serve.terminate().await.success());

    let refused = harness::run_bridge_async(&env.clone().set("BRIDGE_EVERWEBINAR_API_KEY", "old-key"), &backfill).await;
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert!(refused.stderr.contains("regenerated") && !refused.stderr.contains("old-key"), "{}", refused.stderr);
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reconciles_an_ended_zoom_occurrence_and_absentees_get_did_not_attend() {
    let start = chrono::Utc::now() - chrono::Duration::hours(4);
    let at =
        |minutes: i64| (start + chrono::Duration::minutes(minutes)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let document = json!({"zoom": {"webinars": [{"id": "85012345678", "uuid": "k7Zq9XvRTn2wYb3cQp1Lmg==",
        "topic": "Demo Webinar", "start_time": at(0), "duration": 60,
        "registrants": [{"id": "reg_1", "email": "a@example.com", "first_name": "A", "status": "approved"},
                        {"id": "reg_2", "email": "b@example.com", "first_name": "B", "status": "approved"}],
        "participants": [{"registrant_id": "reg_1", "user_email": "", "name": "A", "join_time": at(2),
                          "leave_time": at(40), "duration": 2280}],
        "absentees": [{"id": "reg_2", "email": "b@example.com", "first_name": "B"}]}]}});
    let data = PlatformData::from_json(&document.to_string()).expect("platform document");
    let platform = PlatformSim::start(SimConfig::with_data(data)).await.expect("start platform-sim");
    let klicktipp = harness::start_simulator().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let credentials = platform.zoom_credentials();
    let env = BridgeEnv::for_simulator(&klicktipp.url(), &dir.path().join("bridge.db"))
        .set("ZOOM_API_BASE_URL", &platform.url())
        .set("ZOOM_ACCOUNT_ID", &credentials.account_id)
        .set("ZOOM_CLIENT_ID", &credentials.client_id)
        .set("ZOOM_CLIENT_SECRET", &credentials.client_secret);

    let serve = ServeProcess::start(&env, &[]).await;
    let zoom = |names: &[&str]| -> BTreeSet<String> {
        names.iter().map(|name| format!("[Zoom] [Demo Webinar] {name}")).collect()
    };
    let expected = [
        ("a@example.com".to_owned(), zoom(&["Attended", "Registered"])),
        ("b@example.com".to_owned(), zoom(&["Did Not Attend", "Registered"])),
    ]
    .into_iter()
    .collect();
    let started = Instant::now();
    while harness::tags_by_email(&klicktipp) != expected {
        assert!(
            started.elapsed() < WAIT,
            "not reconciled: {:?}\n{}",
            harness::tags_by_email(&klicktipp),
            serve.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(serve.terminate().await.success());
    platform.shutdown().await;
}

/// Tags ahead from the API's webinar list (issue 15): a reconciliation pass that lists an
/// upcoming EverWebinar webinar creates its state tags in KlickTipp before anyone registers
/// (a mapped state creates none), under the consumer's seen key; a second pass creates nothing.
#[tokio::test]
async fn a_listed_webinar_gets_its_tags_once_before_the_first_registrant() {
    use std::sync::Arc;
    use webinar_bridge::adapters::memory::{MemoryQueue, MemoryTagDirectory, MemoryWebinarSettings};
    use webinar_bridge::domain::{MappedTag, Settings, StateLabel, WebinarSetting};
    use webinar_bridge::platforms::config::PlatformConfig;
    use webinar_bridge::platforms::done_store::MemoryDoneSessions;
    use webinar_bridge::platforms::pull::Puller;
    use webinar_bridge::ports::{SystemClock, WebinarSettings};
    use webinar_bridge::tag_resolver::TagResolver;
    use webinar_bridge::tags_ahead::ListedWebinars;

    let upcoming = (chrono::Utc::now() + chrono::Duration::days(3)).format("%Y-%m-%d %-H:%M").to_string();
    let document = json!({"everwebinar": {"webinars": [{"webinar_id": "88", "name": "Launch", "timezone": "UTC",
        "duration_minutes": 60, "schedules": [{"schedule": 1, "date": upcoming}], "registrants": []}]}});
    let data = PlatformData::from_json(&document.to_string()).expect("platform document");
    let platform = PlatformSim::start(SimConfig::with_data(data)).await.expect("start platform-sim");
    let klicktipp = harness::start_simulator().await;
    let existing = harness::simulator_client(&klicktipp).create_tag("Launch-Käufer", None).await.expect("create");
    let store = Arc::new(MemoryWebinarSettings::default());
    let mut mapping = WebinarSetting::new("everwebinar", "88");
    mapping.tags.insert(StateLabel::Buyer, MappedTag { id: existing, name: "Launch-Käufer".into() });
    store.put(&mapping).await.expect("put");

    let vars = [("BRIDGE_EVERWEBINAR_API_KEY", platform.api_key()), ("WEBINARJAM_API_BASE_URL", platform.url())]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    let platforms = PlatformConfig::from_vars(&vars).expect("platform configuration");
    let client = harness::simulator_client(&klicktipp);
    let resolver = TagResolver::new(Arc::new(MemoryTagDirectory::default()), client, Arc::new(SystemClock));
    let listed = ListedWebinars::new(resolver, Settings::default(), Arc::clone(&store) as Arc<dyn WebinarSettings>);
    let puller = Puller::from_config(&platforms).expect("puller").with_tags_ahead(Arc::new(listed));
    let done = MemoryDoneSessions::default();
    let queue = MemoryQueue::default();
    let after = Duration::from_secs(7200);

    let before = klicktipp.calls_by_endpoint();
    let first = puller.reconcile_due(&done, &queue, chrono::Utc::now(), after).await;
    assert_eq!((first.failures, first.sessions_pulled), (0, 0), "an upcoming session is not pulled");
    assert_eq!(
        harness::calls_since(&klicktipp, &before),
        harness::calls(&[("POST /account/login", 1), ("GET /tag", 1), ("POST /tag", 6)]),
        "six state tags created, the mapped Buyer state not"
    );
    let mut names: Vec<String> = klicktipp.tags().into_values().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "Launch-Käufer",
            "[EverWebinar] [Launch] Attended",
            "[EverWebinar] [Launch] Cancelled",
            "[EverWebinar] [Launch] Did Not Attend",
            "[EverWebinar] [Launch] Fully Attended",
            "[EverWebinar] [Launch] Registered",
            "[EverWebinar] [Launch] Replay Watched",
        ]
    );
    // The consumer's key: its first event of this webinar creates nothing again.
    assert!(store.is_seen("everwebinar#88").await.expect("seen"));

    let before = klicktipp.calls_by_endpoint();
    let second = puller.reconcile_due(&done, &queue, chrono::Utc::now(), after).await;
    assert_eq!(second.failures, 0);
    assert_eq!(harness::calls_since(&klicktipp, &before), harness::calls(&[]), "a second pass creates nothing");
    klicktipp.shutdown().await;
    platform.shutdown().await;
}
