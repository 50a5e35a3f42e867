//! Per-webinar settings and tags ahead (issue 15), against the KlickTipp simulator over real
//! HTTP with exact call counts: `webinar-bridge tags ensure` (the built binary, German names),
//! and the consumer in-process applying a tag mapping, a per-webinar listid, the include filter
//! and tags created when a webinar is first seen.
//!
//! Needs `cargo build --workspace` first (the harness says so if the binary is missing).

use klicktipp_sim::{DEFAULT_DOUBLE_OPTIN_LISTID, SINGLE_OPTIN_LISTID, Simulator};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use webinar_bridge::adapters::dynamodb::DynamoWebinarSettings;
use webinar_bridge::adapters::memory::QueueSettings;
use webinar_bridge::adapters::memory::{
    MemoryContactStore, MemoryEventLog, MemoryQueue, MemoryTagDirectory, MemoryWebinarSettings,
};
use webinar_bridge::consume::{Consumer, ConsumerOptions};
use webinar_bridge::domain::{Email, EventId, MappedTag, Settings, StateLabel, WebinarSetting};
use webinar_bridge::ports::{
    EventLog, EventQueue, EventStatus, FinalOutcome, OutgoingMessage, SystemClock, WebinarSettings,
};
use webinar_bridge::tag_resolver::TagResolver;
use webinar_bridge::worker::{BatchSummary, process_one_batch};
use webinar_bridge_tests::harness::{self, BridgeEnv, calls, calls_since};
use webinar_bridge_tests::moto::Moto;

// ---------------------------------------------------------------------------------------------
// `tags ensure`

const GERMAN_TAGS: [&str; 7] = [
    "[Zoom] [Demo Webinar] Angemeldet",
    "[Zoom] [Demo Webinar] Abgemeldet",
    "[Zoom] [Demo Webinar] Nicht teilgenommen",
    "[Zoom] [Demo Webinar] Teilgenommen",
    "[Zoom] [Demo Webinar] Komplett teilgenommen",
    "[Zoom] [Demo Webinar] Aufzeichnung angesehen",
    "[Zoom] [Demo Webinar] Käufer",
];

/// (how, name) of each printed line.
fn printed(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .map(|line| {
            let mut parts = line.splitn(2, char::is_whitespace);
            let how = parts.next().unwrap_or_default().to_owned();
            let rest = parts.next().unwrap_or_default().trim_start();
            let name = rest.split_once("  ").map(|(_, name)| name).unwrap_or_default().to_owned();
            (how, name)
        })
        .collect()
}

#[tokio::test]
async fn tags_ensure_twice_creates_each_german_tag_once() {
    let simulator = harness::start_simulator().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let env = BridgeEnv::for_simulator(&simulator.url(), &dir.path().join("bridge.db")).set("BRIDGE_LANGUAGE", "de");
    let args = ["tags", "ensure", "--source", "zoom", "--webinar", "Demo Webinar"];

    let before = simulator.calls_by_endpoint();
    let first = harness::run_bridge_async(&env, &args).await;
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let expected: Vec<(String, String)> =
        GERMAN_TAGS.iter().map(|name| ("created".to_owned(), (*name).to_owned())).collect();
    assert_eq!(printed(&first.stdout), expected, "{}", first.stdout);
    assert_eq!(
        calls_since(&simulator, &before),
        calls(&[("POST /account/login", 1), ("GET /tag", 1), ("POST /tag", 7)]),
        "first run: one listing, one creation per state"
    );
    let mut in_account: Vec<String> = simulator.tags().into_values().collect();
    in_account.sort();
    let mut wanted: Vec<String> = GERMAN_TAGS.iter().map(|name| (*name).to_owned()).collect();
    wanted.sort();
    assert_eq!(in_account, wanted);

    let before = simulator.calls_by_endpoint();
    let second = harness::run_bridge_async(&env, &args).await;
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    let expected: Vec<(String, String)> =
        GERMAN_TAGS.iter().map(|name| ("existing".to_owned(), (*name).to_owned())).collect();
    assert_eq!(printed(&second.stdout), expected, "{}", second.stdout);
    let again = calls_since(&simulator, &before);
    assert_eq!(again.get("POST /tag"), None, "second run creates nothing: {again:?}");
    assert_eq!(simulator.tags().len(), 7);
    simulator.shutdown().await;
}

#[tokio::test]
async fn tags_ensure_leaves_a_mapped_state_on_its_existing_tag() {
    let simulator = harness::start_simulator().await;
    let existing = harness::simulator_client(&simulator).create_tag("Webinar-Käufer", None).await.expect("create");
    let dir = tempfile::tempdir().expect("temp dir");
    let seed = json!({"webinars": [
        {"source": "*", "webinar": "*", "tags": {"Buyer": {"id": existing, "name": "Webinar-Käufer"}}}
    ]});
    let env = BridgeEnv::for_simulator(&simulator.url(), &dir.path().join("bridge.db"))
        .set("BRIDGE_LANGUAGE", "de")
        .set("BRIDGE_WEBINAR_SETTINGS", &seed.to_string());
    let before = simulator.calls_by_endpoint();
    let run =
        harness::run_bridge_async(&env, &["tags", "ensure", "--source", "zoom", "--webinar", "Demo Webinar"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let lines = printed(&run.stdout);
    assert_eq!(lines.len(), 7);
    assert_eq!(lines[6], ("mapped".to_owned(), "Webinar-Käufer".to_owned()));
    assert!(run.stdout.contains(&format!(" {existing}  Webinar-Käufer")), "{}", run.stdout);
    assert_eq!(calls_since(&simulator, &before).get("POST /tag"), Some(&6), "six created, the mapped one not");
    simulator.shutdown().await;
}

/// On a deployed stack (here moto, reached through the Lambdas' variables as `--stack` would
/// set them) `tags ensure` seeds the DynamoDB settings store, creates through the stack's tag
/// directory and marks the webinar seen there; serve's database is never created.
#[tokio::test]
async fn tags_ensure_on_the_aws_stack_uses_its_settings_store_and_tag_directory() {
    let simulator = harness::start_simulator().await;
    let existing = harness::simulator_client(&simulator).create_tag("Webinar-Käufer", None).await.expect("create");
    let moto = Moto::start().await;
    let queue = moto.create_queue(QueueSettings::default()).await;
    let events = moto.create_events_table().await;
    let contacts = moto.create_contacts_table().await;
    let history = moto.create_history_table().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let unused_db = dir.path().join("unused.db");
    let seed = json!({"webinars": [
        {"source": "*", "webinar": "*", "tags": {"Buyer": {"id": existing, "name": "Webinar-Käufer"}}}
    ]});
    let mut env = BridgeEnv::for_simulator(&simulator.url(), &unused_db)
        .set("BRIDGE_LANGUAGE", "de")
        .set("BRIDGE_WEBINAR_SETTINGS", &seed.to_string())
        .set("EVENTS_QUEUE_URL", queue.url())
        .set("EVENTS_TABLE", &events)
        .set("CONTACTS_TABLE", &contacts)
        .set("HISTORY_TABLE", &history);
    for (name, value) in moto.aws_env() {
        env = env.set(name, &value);
    }
    let args = ["tags", "ensure", "--source", "zoom", "--webinar", "Demo Webinar"];

    let before = simulator.calls_by_endpoint();
    let first = harness::run_bridge_async(&env, &args).await;
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let lines = printed(&first.stdout);
    assert_eq!(lines.len(), 7, "{}", first.stdout);
    assert!(lines[..6].iter().all(|(how, _)| how == "created"), "{}", first.stdout);
    assert_eq!(lines[6], ("mapped".to_owned(), "Webinar-Käufer".to_owned()));
    assert_eq!(calls_since(&simulator, &before).get("POST /tag"), Some(&6), "six created, the mapped one not");

    let before = simulator.calls_by_endpoint();
    let second = harness::run_bridge_async(&env, &args).await;
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    let lines = printed(&second.stdout);
    assert!(lines[..6].iter().all(|(how, _)| how == "existing"), "{}", second.stdout);
    assert_eq!(calls_since(&simulator, &before).get("POST /tag"), None, "second run creates nothing");
    assert_eq!(simulator.tags().len(), 7);

    // The stack's own stores hold the mapping and the seen mark; no SQLite file appeared.
    let store = DynamoWebinarSettings::new(moto.dynamodb(), &contacts);
    let stored = store.all().await.expect("settings");
    assert_eq!(
        stored.mapped_tag("zoom", "Demo Webinar", Some("Demo Webinar"), StateLabel::Buyer).map(|tag| tag.id),
        Some(existing)
    );
    assert!(store.is_seen("zoom#Demo Webinar").await.expect("seen"), "marked seen in DynamoDB");
    assert!(!unused_db.exists(), "serve's database is not touched on the AWS backend");
    simulator.shutdown().await;
}

#[tokio::test]
async fn tags_ensure_refuses_bad_input_in_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = BridgeEnv::for_simulator("http://127.0.0.1:9", &dir.path().join("bridge.db"));
    let bad_source = harness::run_bridge(&env, &["tags", "ensure", "--source", "teams", "--webinar", "Demo"]);
    assert_eq!(bad_source.code, Some(2));
    assert!(bad_source.stderr.contains("--source"), "{}", bad_source.stderr);
    let dated = env.clone().set("BRIDGE_TAG_TEMPLATE", "[{tool}] [{webinar}] [{date}] {state}");
    let no_session = harness::run_bridge(&dated, &["tags", "ensure", "--source", "zoom", "--webinar", "Demo"]);
    assert_eq!(no_session.code, Some(2));
    assert!(no_session.stderr.contains("--session"), "{}", no_session.stderr);
    let bad_seed = env.set("BRIDGE_WEBINAR_SETTINGS", r#"[{"source":"zoom","webinar":"1","listid":"two"}]"#);
    let refused = harness::run_bridge(&bad_seed, &["tags", "ensure", "--source", "zoom", "--webinar", "Demo"]);
    assert_eq!(refused.code, Some(2));
    assert!(refused.stderr.contains("BRIDGE_WEBINAR_SETTINGS: webinars[0].listid"), "{}", refused.stderr);
}

#[tokio::test]
async fn check_config_shows_the_webinar_settings_and_checks_them_against_the_account() {
    let simulator = harness::start_simulator().await;
    let existing = harness::simulator_client(&simulator).create_tag("VIP angemeldet", None).await.expect("create");
    let dir = tempfile::tempdir().expect("temp dir");
    let env = BridgeEnv::for_simulator(&simulator.url(), &dir.path().join("bridge.db"));
    let good = json!([{"source": "zoom", "webinar": "811", "listid": SINGLE_OPTIN_LISTID,
        "tags": {"Registered": {"id": existing, "name": "VIP angemeldet"}}}]);
    let ok =
        harness::run_bridge_async(&env.clone().set("BRIDGE_WEBINAR_SETTINGS", &good.to_string()), &["check-config"])
            .await;
    assert_eq!(ok.code, Some(0), "{}{}", ok.stdout, ok.stderr);
    assert!(ok.stdout.contains("Tags ahead (BRIDGE_TAGS_AHEAD): off"), "{}", ok.stdout);
    let shown = format!("Webinar settings zoom/811: Registered -> tag {existing} \"VIP angemeldet\", listid 2");
    assert!(ok.stdout.contains(&shown), "{}", ok.stdout);

    let wrong = json!([{"source": "zoom", "webinar": "811", "listid": 999,
        "tags": {"Registered": {"id": existing + 100, "name": "VIP angemeldet"}}}]);
    let problems =
        harness::run_bridge_async(&env.set("BRIDGE_WEBINAR_SETTINGS", &wrong.to_string()), &["check-config"]).await;
    assert_eq!(problems.code, Some(1), "{}", problems.stdout);
    let lines: Vec<&str> = problems.stdout.lines().collect();
    assert!(
        lines.iter().any(|line| line.starts_with("BRIDGE_WEBINAR_SETTINGS: zoom/811 maps Registered to tag")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|line| line.starts_with("BRIDGE_WEBINAR_SETTINGS: zoom/811 has listid 999")), "{lines:?}");
    simulator.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The consumer with per-webinar settings

struct Rig {
    simulator: Simulator,
    queue: Arc<MemoryQueue>,
    log: Arc<MemoryEventLog>,
    store: Arc<MemoryWebinarSettings>,
    consumer: Consumer,
    sent: std::sync::atomic::AtomicU64,
}

impl Rig {
    async fn start(tags_ahead: bool) -> Self {
        let simulator = harness::start_simulator().await;
        let store = Arc::new(MemoryWebinarSettings::default());
        let rig = Self::with(simulator, Arc::clone(&store), tags_ahead);
        rig.simulator.reset();
        rig
    }

    /// A consumer (a new process) over `store` and fresh other ports.
    fn with(simulator: Simulator, store: Arc<MemoryWebinarSettings>, tags_ahead: bool) -> Self {
        let client = harness::simulator_client(&simulator);
        let clock = Arc::new(SystemClock);
        let resolver = TagResolver::new(Arc::new(MemoryTagDirectory::default()), client.clone(), clock.clone());
        let queue = Arc::new(MemoryQueue::default());
        let log = Arc::new(MemoryEventLog::default());
        let consumer = Consumer::new(
            Arc::clone(&log) as Arc<dyn EventLog>,
            Arc::new(MemoryContactStore::default()),
            resolver,
            client,
            Settings::default(),
            ConsumerOptions { group_concurrency: 1, ..ConsumerOptions::default() },
            clock,
        )
        .with_webinar_settings(Arc::clone(&store) as Arc<dyn WebinarSettings>, tags_ahead);
        Self { simulator, queue, log, store, consumer, sent: std::sync::atomic::AtomicU64::new(0) }
    }

    /// Enqueues a Zoom registration of `email` for webinar `webinar_id` ("Demo"); returns its id.
    async fn register(&self, email: &str, webinar_id: &str) -> EventId {
        let n = self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("zoom-reg-{n}");
        let body = json!({
            "event_id": id, "source": {"platform": "zoom"}, "kind": "registered",
            "occurred_at": "2026-01-15T17:02:00Z", "received_at": "2026-01-15T17:02:01Z",
            "contact": {"email": email}, "webinar": {"id": webinar_id, "name": "Demo"},
        });
        let group = Email::parse(email).expect("valid").group_hash();
        let message = OutgoingMessage { group_id: group, dedup_id: id.clone(), body: body.to_string() };
        self.queue.send(&[message]).await.expect("enqueue");
        EventId::from_sender(&id).expect("valid id")
    }

    async fn drain(&self) -> BatchSummary {
        let mut total = BatchSummary::default();
        loop {
            let batch = process_one_batch(self.queue.as_ref(), &self.consumer).await.expect("queue works");
            if batch.received == 0 {
                return total;
            }
            total.add(&batch);
        }
    }

    fn contact(&self, email: &str) -> Option<klicktipp_sim::ContactView> {
        self.simulator.contacts().into_iter().find(|contact| contact.email == email)
    }
}

fn mapped(source: &str, webinar: &str, label: StateLabel, id: u64, name: &str) -> WebinarSetting {
    let mut setting = WebinarSetting::new(source, webinar);
    setting.tags.insert(label, MappedTag { id, name: name.to_owned() });
    setting
}

#[tokio::test]
async fn a_mapped_state_lands_on_the_existing_tag_without_creating_one() {
    let rig = Rig::start(false).await;
    let existing = harness::simulator_client(&rig.simulator).create_tag("VIP angemeldet", None).await.expect("create");
    rig.store.put(&mapped("zoom", "811", StateLabel::Registered, existing, "VIP angemeldet")).await.expect("put");
    let before = rig.simulator.calls_by_endpoint();
    rig.register("ana@example.com", "811").await;
    assert_eq!(rig.drain().await.applied, 1);
    assert_eq!(
        calls_since(&rig.simulator, &before),
        calls(&[("POST /account/login", 1), ("POST /subscriber", 1)]),
        "the mapped tag goes with the upsert: no listing, no creation"
    );
    let contact = rig.contact("ana@example.com").expect("subscribed");
    assert_eq!(contact.tags, ["VIP angemeldet"]);
    assert!(!rig.simulator.tags().values().any(|name| name.contains("[Zoom]")), "no generated tag");

    // Another webinar keeps the generated names.
    let before = rig.simulator.calls_by_endpoint();
    rig.register("ben@example.com", "812").await;
    rig.drain().await;
    assert_eq!(
        calls_since(&rig.simulator, &before),
        calls(&[("GET /tag", 1), ("POST /tag", 1), ("POST /subscriber", 1)])
    );
    assert_eq!(rig.contact("ben@example.com").expect("subscribed").tags, ["[Zoom] [Demo] Registered"]);
    rig.simulator.shutdown().await;
}

#[tokio::test]
async fn the_listid_of_the_webinar_reaches_post_subscriber() {
    let rig = Rig::start(false).await;
    let mut single = WebinarSetting::new("zoom", "811");
    single.listid = Some(SINGLE_OPTIN_LISTID);
    rig.store.put(&single).await.expect("put");
    rig.register("ana@example.com", "811").await;
    rig.register("ben@example.com", "812").await;
    rig.drain().await;
    let listed: BTreeMap<String, u64> = rig.simulator.contacts().into_iter().map(|c| (c.email, c.listid)).collect();
    assert_eq!(listed.get("ana@example.com"), Some(&SINGLE_OPTIN_LISTID));
    assert_eq!(listed.get("ben@example.com"), Some(&DEFAULT_DOUBLE_OPTIN_LISTID), "no listid: the account's default");
    let sent: Vec<(String, Option<u64>)> = rig
        .simulator
        .request_log()
        .into_iter()
        .filter(|request| request.endpoint == "POST /subscriber")
        .map(|request| (request.body["email"].as_str().unwrap_or_default().to_owned(), request.body["listid"].as_u64()))
        .collect();
    assert_eq!(
        sent,
        [("ana@example.com".to_owned(), Some(SINGLE_OPTIN_LISTID)), ("ben@example.com".to_owned(), None)],
        "the per-webinar listid is sent, none where no listid is set"
    );
    rig.simulator.shutdown().await;
}

#[tokio::test]
async fn an_excluded_webinar_is_skipped_at_no_cost() {
    let rig = Rig::start(false).await;
    let mut nothing = WebinarSetting::new("*", "*");
    nothing.include = Some(false);
    let mut only = WebinarSetting::new("zoom", "811");
    only.include = Some(true);
    rig.store.put(&nothing).await.expect("put");
    rig.store.put(&only).await.expect("put");
    let before = rig.simulator.calls_by_endpoint();
    let skipped = rig.register("ana@example.com", "999").await;
    let summary = rig.drain().await;
    assert_eq!((summary.skipped, summary.applied), (1, 0));
    assert_eq!(calls_since(&rig.simulator, &before), calls(&[]), "an excluded webinar costs no call");
    let record = rig.log.get(&skipped).await.expect("read").expect("recorded");
    match record.status {
        EventStatus::Completed(FinalOutcome::Skipped { reason }) => {
            assert!(reason.contains("excluded by the per-webinar settings (entry *#*)"), "{reason}")
        }
        other => panic!("expected skipped, got {other:?}"),
    }
    rig.register("ben@example.com", "811").await;
    assert_eq!(rig.drain().await.applied, 1, "the included webinar is applied");
    rig.simulator.shutdown().await;
}

#[tokio::test]
async fn tags_ahead_create_every_state_tag_once_when_a_webinar_is_first_seen() {
    let rig = Rig::start(true).await;
    let before = rig.simulator.calls_by_endpoint();
    rig.register("ana@example.com", "811").await;
    rig.drain().await;
    assert_eq!(
        calls_since(&rig.simulator, &before),
        calls(&[("POST /account/login", 1), ("GET /tag", 1), ("POST /tag", 7), ("POST /subscriber", 1)]),
        "first sight: every state tag, then the registration"
    );
    assert!(rig.store.is_seen("zoom#811").await.expect("read"));

    let before = rig.simulator.calls_by_endpoint();
    rig.register("ben@example.com", "811").await;
    rig.drain().await;
    assert_eq!(calls_since(&rig.simulator, &before), calls(&[("POST /subscriber", 1)]));

    // A new process over the same store: the webinar is known as seen, nothing is created again.
    let Rig { simulator, store, .. } = rig;
    let restarted = Rig::with(simulator, store, true);
    let before = restarted.simulator.calls_by_endpoint();
    restarted.register("cleo@example.com", "811").await;
    restarted.drain().await;
    let made = calls_since(&restarted.simulator, &before);
    assert_eq!(made.get("POST /tag"), None, "{made:?}");
    assert_eq!(restarted.simulator.tags().len(), 7);
    restarted.simulator.shutdown().await;
}

#[tokio::test]
async fn without_tags_ahead_only_the_needed_tag_is_created() {
    let rig = Rig::start(false).await;
    let before = rig.simulator.calls_by_endpoint();
    rig.register("ana@example.com", "811").await;
    rig.drain().await;
    assert_eq!(
        calls_since(&rig.simulator, &before),
        calls(&[("POST /account/login", 1), ("GET /tag", 1), ("POST /tag", 1), ("POST /subscriber", 1)])
    );
    rig.simulator.shutdown().await;
}

/// A state mapped to a tag the user has since deleted in KlickTipp: the event is rejected at
/// once, naming the mapping to fix, instead of retrying into the dead-letter queue; no tag is
/// created in its place.
#[tokio::test]
async fn a_state_mapped_to_a_deleted_tag_is_rejected_naming_the_mapping() {
    let rig = Rig::start(false).await;
    let deleted = 987_654;
    rig.store.put(&mapped("zoom", "811", StateLabel::Registered, deleted, "VIP angemeldet")).await.expect("put");
    let before = rig.simulator.calls_by_endpoint();
    let event = rig.register("ana@example.com", "811").await;
    let summary = rig.drain().await;
    assert_eq!((summary.rejected, summary.retried, summary.applied), (1, 0, 0), "{summary:?}");
    assert_eq!(
        calls_since(&rig.simulator, &before),
        calls(&[("POST /account/login", 1), ("POST /subscriber", 1), ("GET /tag", 1)]),
        "one refused upsert, one listing to name the missing tag, no retry and no creation"
    );
    assert!(!rig.simulator.tags().values().any(|name| name.contains("[Zoom]")), "no tag created in its place");
    let record = rig.log.get(&event).await.expect("read").expect("recorded");
    match record.status {
        EventStatus::Completed(FinalOutcome::Rejected(reason)) => {
            assert!(reason.reason.contains("tag 987654 \"VIP angemeldet\""), "{}", reason.reason);
            assert!(reason.reason.contains("mapped by zoom/811 Registered"), "{}", reason.reason);
            assert!(reason.reason.contains("per-webinar settings"), "{}", reason.reason);
        }
        other => panic!("expected rejected, got {other:?}"),
    }
    rig.simulator.shutdown().await;
}
