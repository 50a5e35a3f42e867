//! The history commands (`contact`, `problems`) against `serve`'s SQLite database: the built
//! binary runs serve with a KlickTipp simulator in this process, webhooks go in over HTTP, then
//! the commands read the story back and compare it with what KlickTipp holds (DESIGN 12).
//!
//! Needs `cargo build --workspace` first (the harness says so if the binary is missing).

use serde_json::{Value, json};
use std::time::Duration;
use webinar_bridge_tests::harness::{self, BridgeEnv, ServeProcess, WEBINARJAM_SECRET};

const DRAIN_TIMEOUT: Duration = Duration::from_secs(45);
const EMAIL: &str = "history.person@example.com";
const REGISTERED: &str = "[WebinarJam] [Masterclass] Registered";
const ATTENDED: &str = "[WebinarJam] [Masterclass] Attended";

fn masterclass(email: &str) -> Value {
    json!({
        "webinar_id": "123", "webinar_name": "Masterclass", "schedule": "45", "date": "2026-02-10 19:00",
        "timezone": "GMT+1", "email": email, "live_room_url": "https://event.webinarjam.com/live/123/45",
    })
}

async fn webinarjam(serve: &ServeProcess, kind: &str, body: &Value) -> String {
    let response = reqwest::Client::new()
        .post(serve.url(&format!("/hooks/webinarjam/{kind}")))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {WEBINARJAM_SECRET}"))
        .body(body.to_string())
        .send()
        .await
        .expect("serve answers");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    body["event_id"].as_str().expect("an event id").to_owned()
}

fn json_of(run: &harness::Finished) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|error| panic!("{error}: {}\n{}", run.stdout, run.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_and_problems_tell_the_story_and_mark_differences() {
    let simulator = harness::start_simulator().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let db_path = dir.path().join("bridge.db");
    let env = BridgeEnv::for_simulator(&simulator.url(), &db_path);
    let serve = ServeProcess::start(&env, &[]).await;
    let db = harness::open_db(&db_path);
    let registered = webinarjam(&serve, "registered", &masterclass(EMAIL)).await;
    let attended = webinarjam(&serve, "attended", &masterclass(EMAIL)).await;
    harness::wait_until_drained(&db, DRAIN_TIMEOUT).await;
    // A redelivery of the registration within the queue's deduplication window: dropped by the
    // queue, so the story shows it applied once.
    assert_eq!(webinarjam(&serve, "registered", &masterclass(EMAIL)).await, registered);
    harness::wait_until_drained(&db, DRAIN_TIMEOUT).await;
    assert!(serve.terminate().await.success());
    drop(db);

    let run = harness::run_bridge_async(&env, &["contact", EMAIL, "--json"]).await;
    assert_eq!(run.code, Some(0), "no differences, no problems: {}\n{}", run.stdout, run.stderr);
    let story = json_of(&run);
    let timeline = story["timeline"].as_array().expect("a timeline");
    let ids: Vec<&str> = timeline.iter().map(|item| item["event_id"].as_str().expect("id")).collect();
    assert_eq!(ids, [registered.as_str(), attended.as_str()]);
    assert_eq!(timeline[0]["received"]["kind"], "registered");
    assert_eq!(timeline[0]["received"]["source"], "webinarjam");
    assert_eq!(timeline[0]["received"]["webinar_name"], "Masterclass");
    let outcomes = |index: usize| -> Vec<String> {
        timeline[index]["outcomes"]
            .as_array()
            .expect("outcomes")
            .iter()
            .map(|outcome| outcome["outcome"].as_str().expect("outcome").to_owned())
            .collect()
    };
    assert_eq!(outcomes(0), ["applied"]);
    assert_eq!(outcomes(1), ["applied"]);
    assert_eq!(story["implied_tags"], json!([ATTENDED, REGISTERED]));
    assert_eq!(story["klicktipp_checked"], true);
    let mut held: Vec<String> = story["klicktipp_now"]["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|tag| tag.as_str().expect("name").to_owned())
        .collect();
    held.sort();
    assert_eq!(held, [ATTENDED, REGISTERED]);
    assert_eq!(story["differences"], json!([]));
    assert_eq!(story["webinars"][0]["webinar_id"], "123");

    // Someone removes a managed tag by hand in KlickTipp: the story marks it.
    let client = harness::simulator_client(&simulator);
    let tag_ids = client.list_tags().await.expect("tags");
    let attended_id = tag_ids.iter().find(|(_, name)| name.as_str() == ATTENDED).map(|(id, _)| *id).expect("tag");
    client.untag(EMAIL, attended_id).await.expect("untag by hand");
    let run = harness::run_bridge_async(&env, &["contact", EMAIL, "--json"]).await;
    assert_eq!(run.code, Some(1), "a difference exits 1");
    assert_eq!(json_of(&run)["differences"], json!([{"kind": "tag_missing", "tag": ATTENDED}]));
    let text = harness::run_bridge_async(&env, &["contact", EMAIL]).await;
    assert!(text.stdout.contains(&format!("{ATTENDED}  <- missing in KlickTipp")), "{}", text.stdout);
    assert!(text.stdout.contains(&format!("fix: webinar-bridge resync {EMAIL}")), "{}", text.stdout);

    // Offline: no KlickTipp call, so no differences either.
    let calls_before = simulator.total_calls();
    let offline = harness::run_bridge_async(&env, &["contact", EMAIL, "--json", "--offline"]).await;
    assert_eq!((offline.code, json_of(&offline)["klicktipp_checked"].clone()), (Some(0), json!(false)));
    assert_eq!(simulator.total_calls(), calls_before);

    // An unknown contact has an empty story; a bad address is a one-line error.
    let unknown = harness::run_bridge_async(&env, &["contact", "nobody@example.com", "--json", "--offline"]).await;
    assert_eq!(json_of(&unknown)["timeline"], json!([]));
    let bad = harness::run_bridge_async(&env, &["contact", "not-an-address"]).await;
    assert_eq!(bad.code, Some(2));
    assert_eq!(bad.stderr.lines().count(), 1, "{}", bad.stderr);

    let problems = harness::run_bridge_async(&env, &["problems", "--json"]).await;
    assert_eq!((problems.code, json_of(&problems)), (Some(0), json!([])), "{}", problems.stderr);
    let bad_since = harness::run_bridge_async(&env, &["problems", "--since", "soon"]).await;
    assert_eq!(bad_since.code, Some(2));
    assert!(bad_since.stderr.starts_with("--since: "), "{}", bad_since.stderr);
}
