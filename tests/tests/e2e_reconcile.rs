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
