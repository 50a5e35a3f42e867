//! The reconcile Lambda's handler invoked in-process, wired exactly as in production
//! (`from_config`, the EverWebinar API key from a Secrets Manager secret): it pulls an ended session
//! from the platform simulator over real HTTP, enqueues its events to SQS (moto), records the done
//! round in DynamoDB (moto, a `reconciled#...` item of the events table), and a second run pulls and
//! enqueues nothing.

use platform_sim::{PlatformData, PlatformSim, SimConfig};
use serde_json::json;
use std::collections::HashMap;
use webinar_bridge::adapters::aws_secrets::environment_with_secrets;
use webinar_bridge::adapters::dynamodb::{DynamoDoneSessions, EVENTS_PARTITION_KEY, RECONCILED_KEY_PREFIX};
use webinar_bridge::adapters::memory::QueueSettings;
use webinar_bridge::config::BridgeConfig;
use webinar_bridge::platforms::config::PlatformConfig;
use webinar_bridge::platforms::done_store::DoneSessionStore;
use webinar_bridge::platforms::reconcile::{Round, SessionKey};
use webinar_bridge_reconcile::ReconcileFunction;
use webinar_bridge_tests::moto::Moto;

fn platform_data() -> PlatformData {
    // Started four hours ago, one hour long: ended three hours ago, past the default 120 minutes.
    let start = (chrono::Utc::now() - chrono::Duration::hours(4)).format("%Y-%m-%d %-H:%M").to_string();
    let document = json!({"everwebinar": {"webinars": [{"webinar_id": "77", "name": "Evergreen", "timezone": "UTC",
        "duration_minutes": 60, "schedules": [{"schedule": 9, "date": start}],
        "registrants": [
            {"lead_id": 1, "email": "came@example.com", "first_name": "Came", "schedule": 9,
             "signup_date": "2026-01-01 08:00:00", "attended_live": 1, "time_live": "0:20:00"},
            {"lead_id": 2, "email": "missed@example.com", "first_name": "Missed", "schedule": 9,
             "signup_date": "2026-01-01 08:00:00", "attended_live": 2}]}]}});
    PlatformData::from_json(&document.to_string()).expect("platform document")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconcile_handler_enqueues_an_ended_session_once_and_remembers_it_in_dynamodb() {
    let moto = Moto::start().await;
    let queue = moto.create_queue(QueueSettings::default()).await;
    let events_table = moto.create_events_table().await;
    let platform = PlatformSim::start(SimConfig::with_data(platform_data())).await.expect("start platform-sim");
    let secret = json!({"BRIDGE_EVERWEBINAR_API_KEY": platform.api_key()});
    let arn = moto.create_secret(&secret.to_string()).await;
    let vars: HashMap<String, String> = [
        ("BRIDGE_SECRETS_ARN", arn.as_str()),
        ("EVENTS_QUEUE_URL", queue.url()),
        ("EVENTS_TABLE", events_table.as_str()),
        ("WEBINARJAM_API_BASE_URL", platform.url().as_str()),
        ("BRIDGE_RECONCILE_AFTER_MINUTES", "120"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    let vars = environment_with_secrets(moto.sdk(), vars).await.expect("read the secret");
    let config = BridgeConfig::from_vars(&vars).expect("a valid configuration");
    let platforms = PlatformConfig::from_vars(&vars).expect("a valid platform configuration");
    let function = ReconcileFunction::from_config(moto.sdk(), &config, &platforms).expect("reconcile starts");

    let now = chrono::Utc::now();
    let first = function.run(now).await.expect("the first run succeeds");
    assert_eq!(first.sessions_pulled, 1);
    assert_eq!(first.platform_429s, 0);
    // Each registrant is registered, and attended or missed: four events.
    assert_eq!(first.events_enqueued, 4);
    assert_eq!(queue.depth().await.expect("queue depth"), 4);
    let registrants = |sim: &PlatformSim| sim.stats().calls_by_endpoint.get("POST /everwebinar/registrants").copied();
    assert_eq!(registrants(&platform), Some(1));

    // The done round is an item under the `reconciled#` prefix, readable through the port.
    let key = SessionKey { source: "everwebinar".into(), webinar_id: "77".into(), session_id: "9".into() };
    let store = DynamoDoneSessions::new(moto.dynamodb(), events_table.clone());
    let rounds = [(key.clone(), Round::First), (key.clone(), Round::Replay)];
    assert_eq!(store.done_among(&rounds).await.unwrap().into_iter().collect::<Vec<_>>(), [(key, Round::First)]);
    let items = moto.dynamodb().scan().table_name(&events_table).send().await.expect("scan").items.unwrap_or_default();
    let keys: Vec<String> =
        items.iter().filter_map(|item| item.get(EVENTS_PARTITION_KEY)?.as_s().ok().cloned()).collect();
    assert_eq!(keys, [format!("{RECONCILED_KEY_PREFIX}everwebinar#77#9#first")]);

    // The next scheduled run lists the session again but neither pulls nor enqueues it.
    let second = function.run(now + chrono::Duration::minutes(15)).await.expect("the second run succeeds");
    assert_eq!((second.sessions_pulled, second.events_enqueued), (0, 0));
    assert!(second.platform_calls > 0, "the sessions are listed on every run");
    assert_eq!(registrants(&platform), Some(1), "a done session was pulled again");
    assert_eq!(queue.depth().await.expect("queue depth"), 4);
}
