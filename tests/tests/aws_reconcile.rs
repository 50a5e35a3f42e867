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

/// The AWS path of `webinar.ended`: the ingest Lambda records it in the events table
/// (`zoom#ended#<day>`), and the next reconcile run pulls exactly that occurrence, which the
/// API's webinar list no longer shows, and enqueues its no-show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zoom_webinar_ended_through_the_ingest_lambda_is_pulled_by_the_reconcile_lambda() {
    let moto = Moto::start().await;
    let queue = moto.create_queue(QueueSettings::default()).await;
    let events_table = moto.create_events_table().await;
    let start =
        chrono::DateTime::from_timestamp((chrono::Utc::now().timestamp() - 4 * 3600) / 60 * 60, 0).expect("a time");
    let at =
        |minutes: i64| (start + chrono::Duration::minutes(minutes)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let document = json!({"zoom": {"webinars": [{"id": "85012345678", "uuid": "k7Zq9XvRTn2wYb3cQp1Lmg==",
        "topic": "Demo Webinar", "start_time": at(0), "duration": 60, "unlisted": true,
        "registrants": [{"id": "reg_1", "email": "a@example.com", "first_name": "A"},
                        {"id": "reg_2", "email": "b@example.com", "first_name": "B"}],
        "participants": [{"registrant_id": "reg_1", "user_email": "", "name": "A", "join_time": at(2),
                          "leave_time": at(40), "duration": 2280}],
        "absentees": [{"id": "reg_2", "email": "b@example.com", "first_name": "B"}]}]}});
    let data = PlatformData::from_json(&document.to_string()).expect("platform document");
    let platform = PlatformSim::start(SimConfig::with_data(data)).await.expect("start platform-sim");
    let credentials = platform.zoom_credentials();
    let secret = json!({"BRIDGE_ZOOM_SECRET_TOKEN": webinar_bridge_tests::harness::ZOOM_SECRET,
        "ZOOM_ACCOUNT_ID": credentials.account_id, "ZOOM_CLIENT_ID": credentials.client_id,
        "ZOOM_CLIENT_SECRET": credentials.client_secret});
    let arn = moto.create_secret(&secret.to_string()).await;
    let vars: HashMap<String, String> = [
        ("BRIDGE_SECRETS_ARN", arn.as_str()),
        ("EVENTS_QUEUE_URL", queue.url()),
        ("EVENTS_TABLE", events_table.as_str()),
        ("ZOOM_API_BASE_URL", platform.url().as_str()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    let vars = environment_with_secrets(moto.sdk(), vars).await.expect("read the secret");
    let config = BridgeConfig::from_vars(&vars).expect("a valid configuration");
    let platforms = PlatformConfig::from_vars(&vars).expect("a valid platform configuration");
    let ingest = webinar_bridge_ingest::IngestFunction::from_config(moto.sdk(), &config).expect("ingest starts");
    let reconcile = ReconcileFunction::from_config(moto.sdk(), &config, &platforms).expect("reconcile starts");

    // Nothing is listed, so a run before the webhook pulls nothing.
    let now = chrono::Utc::now();
    assert_eq!(reconcile.run(now).await.expect("a run").sessions_pulled, 0);

    let body = json!({"event": "webinar.ended", "event_ts": now.timestamp_millis(), "payload": {"account_id": "AbCdEf123",
        "object": {"id": "85012345678", "uuid": "k7Zq9XvRTn2wYb3cQp1Lmg==", "host_id": "HoSt_1", "topic": "Demo Webinar",
            "type": 5, "start_time": at(0), "timezone": "Europe/Berlin", "duration": 60, "end_time": at(62)}}})
    .to_string();
    let mut event: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            webinar_bridge_tests::harness::workspace_root().join("tests/fixtures/aws/http_api_v2_request.json"),
        )
        .expect("the HTTP API fixture"),
    )
    .expect("JSON");
    event["rawPath"] = json!("/prod/hooks/zoom");
    event["requestContext"]["http"]["path"] = json!("/prod/hooks/zoom");
    for (name, value) in webinar_bridge_tests::harness::zoom_headers(&body, now.timestamp()) {
        event["headers"][name.as_str()] = json!(value);
    }
    event["body"] = json!(body);
    let request = lambda_http::request::from_str(&event.to_string()).expect("an HTTP API event");
    let response = ingest.handle(request).await;
    let answer: serde_json::Value = serde_json::from_slice(response.body().as_ref()).expect("a JSON answer");
    assert_eq!((response.status().as_u16(), answer["status"].as_str()), (200, Some("recorded")), "{answer}");
    let items = moto.dynamodb().scan().table_name(&events_table).send().await.expect("scan").items.unwrap_or_default();
    let keys: Vec<String> =
        items.iter().filter_map(|item| item.get(EVENTS_PARTITION_KEY)?.as_s().ok().cloned()).collect();
    assert!(keys.contains(&format!("zoom#ended#{}", start.format("%Y-%m-%d"))), "{keys:?}");

    let run = reconcile.run(now + chrono::Duration::minutes(5)).await.expect("the run after the webhook");
    assert_eq!((run.sessions_pulled, run.events_enqueued), (1, 4));
    let stats = platform.stats();
    let count =
        |part: &str| stats.calls_by_endpoint.iter().filter(|(key, _)| key.contains(part)).map(|(_, n)| *n).sum::<u64>();
    assert_eq!((count("participants"), count("absentees")), (1, 1), "{:?}", stats.calls_by_endpoint);
    let mut kinds: Vec<(String, String)> = queue
        .receive_raw(10)
        .await
        .iter()
        .map(|message| {
            let event: webinar_bridge::domain::WebinarEvent =
                serde_json::from_str(message.body().unwrap_or_default()).expect("a queued event");
            (event.contact.email.as_str().to_owned(), event.kind.as_str().to_owned())
        })
        .collect();
    kinds.sort();
    let expected = [
        ("a@example.com", "attended"),
        ("a@example.com", "registered"),
        ("b@example.com", "no_show"),
        ("b@example.com", "registered"),
    ];
    assert_eq!(kinds, expected.map(|(email, kind)| (email.to_owned(), kind.to_owned())));

    let again = reconcile.run(now + chrono::Duration::minutes(10)).await.expect("a later run");
    assert_eq!((again.sessions_pulled, again.events_enqueued), (0, 0));
    platform.shutdown().await;
}

/// Tags ahead from the API's webinar list on AWS (issue 15): with KlickTipp credentials and the
/// contacts table, a run creates the state tags of a listed webinar (through the DynamoDB tag
/// directory, the seen mark in the contacts table where the consumer looks), and a second run
/// creates none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconcile_handler_creates_the_tags_of_a_listed_webinar_once() {
    use webinar_bridge::adapters::dynamodb::DynamoWebinarSettings;
    use webinar_bridge::ports::WebinarSettings;
    use webinar_bridge_tests::harness;

    let moto = Moto::start().await;
    let queue = moto.create_queue(QueueSettings::default()).await;
    let events_table = moto.create_events_table().await;
    let contacts_table = moto.create_contacts_table().await;
    let klicktipp = harness::start_simulator().await;
    let upcoming = (chrono::Utc::now() + chrono::Duration::days(2)).format("%Y-%m-%d %-H:%M").to_string();
    let document = json!({"everwebinar": {"webinars": [{"webinar_id": "88", "name": "Launch", "timezone": "UTC",
        "duration_minutes": 60, "schedules": [{"schedule": 1, "date": upcoming}], "registrants": []}]}});
    let data = PlatformData::from_json(&document.to_string()).expect("platform document");
    let platform = PlatformSim::start(SimConfig::with_data(data)).await.expect("start platform-sim");
    let secret = json!({"BRIDGE_EVERWEBINAR_API_KEY": platform.api_key(),
        "KLICKTIPP_USERNAME": harness::SIM_USERNAME, "KLICKTIPP_PASSWORD": harness::SIM_PASSWORD});
    let arn = moto.create_secret(&secret.to_string()).await;
    let vars: HashMap<String, String> = [
        ("BRIDGE_SECRETS_ARN", arn.as_str()),
        ("EVENTS_QUEUE_URL", queue.url()),
        ("EVENTS_TABLE", events_table.as_str()),
        ("CONTACTS_TABLE", contacts_table.as_str()),
        ("KLICKTIPP_BASE_URL", klicktipp.url().as_str()),
        ("WEBINARJAM_API_BASE_URL", platform.url().as_str()),
        ("BRIDGE_TAGS_AHEAD", "on"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    let vars = environment_with_secrets(moto.sdk(), vars).await.expect("read the secret");
    let config = BridgeConfig::from_vars(&vars).expect("a valid configuration");
    let platforms = PlatformConfig::from_vars(&vars).expect("a valid platform configuration");
    let function = ReconcileFunction::from_config(moto.sdk(), &config, &platforms).expect("reconcile starts");

    let before = klicktipp.calls_by_endpoint();
    let first = function.run(chrono::Utc::now()).await.expect("the first run succeeds");
    assert_eq!(first.sessions_pulled, 0, "an upcoming session is not pulled");
    assert_eq!(
        harness::calls_since(&klicktipp, &before),
        harness::calls(&[("POST /account/login", 1), ("GET /tag", 1), ("POST /tag", 7)])
    );
    assert!(klicktipp.tags().values().any(|name| name == "[EverWebinar] [Launch] Registered"));
    let store = DynamoWebinarSettings::new(moto.dynamodb(), &contacts_table);
    assert!(store.is_seen("everwebinar#88").await.expect("seen"), "the consumer's seen mark");

    let before = klicktipp.calls_by_endpoint();
    function.run(chrono::Utc::now()).await.expect("the second run succeeds");
    assert_eq!(harness::calls_since(&klicktipp, &before), harness::calls(&[]), "a second run creates nothing");
    klicktipp.shutdown().await;
    platform.shutdown().await;
}
