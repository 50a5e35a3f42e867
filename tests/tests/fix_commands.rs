//! The fixing commands (`redrive`, `resync`, `forget`, DESIGN 12) through the built binary, on
//! `serve`'s SQLite file and on the AWS resources (moto), with the same cases: events go in
//! through the real ingest and consumer over the backend's adapters, the KlickTipp simulator
//! answers over HTTP and counts every call, then the binary fixes what a person would fix.
//!
//! Needs `cargo build --workspace` first (the harness says so if the binary is missing) and,
//! for the moto cases, `bash infra/local/install-tools.sh`.

use bytes::Bytes;
use klicktipp_sim::Simulator;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use webinar_bridge::adapters::dynamodb::aws_sdk_dynamodb::types::AttributeValue;
use webinar_bridge::adapters::dynamodb::{
    DynamoContactStore, DynamoEventLog, DynamoParkedWebhooks, DynamoReceiptLog, DynamoTagDirectory, DynamoZoomLedger,
};
use webinar_bridge::adapters::dynamodb_history::DynamoHistoryLog;
use webinar_bridge::adapters::memory::QueueSettings;
use webinar_bridge::adapters::sqlite::{
    SqliteContactStore, SqliteDb, SqliteEventLog, SqliteHistoryLog, SqliteParkedWebhooks, SqliteQueue,
    SqliteReceiptLog, SqliteTagDirectory,
};
use webinar_bridge::config::BridgeConfig;
use webinar_bridge::consume::{Consumer, ConsumerOptions};
use webinar_bridge::ingest::Ingest;
use webinar_bridge::platforms::zoom_ledger::{SqliteZoomLedger, ZoomLedger};
use webinar_bridge::ports::{
    ContactStore, DeadLetters, EventLog, EventQueue, HistoryLog, ParkCap, ParkOutcome, ParkedWebhook, ParkedWebhooks,
    ReceiptLog, SystemClock, TagDirectory,
};
use webinar_bridge::sources::RawRequest;
use webinar_bridge::tag_resolver::TagResolver;
use webinar_bridge::worker;
use webinar_bridge_tests::harness::{self, BridgeEnv, WEBINARJAM_SECRET, calls_since};
use webinar_bridge_tests::moto::{Moto, MotoQueue};

const REGISTERED: &str = "[WebinarJam] [Masterclass] Registered";
const ATTENDED: &str = "[WebinarJam] [Masterclass] Attended";

fn masterclass(email: &str) -> Value {
    webinar(email, "123", "Masterclass")
}

fn webinar(email: &str, id: &str, name: &str) -> Value {
    json!({
        "webinar_id": id, "webinar_name": name, "schedule": "45", "date": "2026-02-10 19:00",
        "timezone": "GMT+1", "email": email, "live_room_url": "https://event.webinarjam.com/live/123/45",
    })
}

// ---------------------------------------------------------------------------------------------
// The backends

/// Every port the pipeline and the commands use, on one backend.
struct Ports {
    queue: Arc<dyn EventQueue>,
    dead_letters: Arc<dyn DeadLetters>,
    log: Arc<dyn EventLog>,
    contacts: Arc<dyn ContactStore>,
    tags: Arc<dyn TagDirectory>,
    receipts: Arc<dyn ReceiptLog>,
    history: Arc<dyn HistoryLog>,
    zoom: Arc<dyn ZoomLedger>,
    parked: Arc<dyn ParkedWebhooks>,
}

/// A backend under test: its ports for the in-process pipeline, the environment that points
/// the binary at the same storage, and a full dump of what it stores (for the no-trace check).
struct Stack {
    name: &'static str,
    ports: Ports,
    env: BridgeEnv,
    sqlite_path: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

/// The AWS resources on moto: what the binary reaches through the Lambdas' variables.
struct MotoResources {
    moto: Moto,
    queue: MotoQueue,
    tables: Vec<String>,
}

async fn moto_stack(simulator: &Simulator) -> (Stack, MotoResources) {
    let moto = Moto::start().await;
    let queue = moto.create_queue(QueueSettings::default()).await;
    let events = moto.create_events_table().await;
    let contacts = moto.create_contacts_table().await;
    let history = moto.create_history_table().await;
    let dynamodb = moto.dynamodb();
    let ports = Ports {
        queue: Arc::new(queue.queue.clone()),
        dead_letters: Arc::new(queue.dead_letter_port()),
        log: Arc::new(DynamoEventLog::new(dynamodb.clone(), &events)),
        contacts: Arc::new(DynamoContactStore::new(dynamodb.clone(), &contacts)),
        tags: Arc::new(DynamoTagDirectory::new(dynamodb.clone(), &contacts)),
        receipts: Arc::new(DynamoReceiptLog::new(dynamodb.clone(), &events)),
        zoom: Arc::new(DynamoZoomLedger::new(dynamodb.clone(), &events)),
        parked: Arc::new(DynamoParkedWebhooks::new(dynamodb.clone(), &events)),
        history: Arc::new(DynamoHistoryLog::new(dynamodb, &history)),
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut env = BridgeEnv::for_simulator(&simulator.url(), &dir.path().join("unused.db"))
        .set("BRIDGE_KLICKTIPP_RPS", "50")
        .set("EVENTS_QUEUE_URL", queue.url())
        .set("DEAD_LETTER_QUEUE_URL", &queue.dlq_url)
        .set("EVENTS_TABLE", &events)
        .set("CONTACTS_TABLE", &contacts)
        .set("HISTORY_TABLE", &history);
    for (name, value) in moto.aws_env() {
        env = env.set(name, &value);
    }
    let stack = Stack { name: "moto", ports, env, sqlite_path: None, _dir: dir };
    (stack, MotoResources { moto, queue, tables: vec![events, contacts, history] })
}

/// An item as text: its attributes, with every binary one as its bytes (compressed records
/// unpacked, raw bodies as they are).
fn item_text(item: &std::collections::HashMap<String, AttributeValue>) -> String {
    let mut text = format!("{item:?}");
    for value in item.values() {
        if let AttributeValue::B(blob) = value {
            match zstd::decode_all(blob.as_ref()) {
                Ok(unpacked) => text.push_str(&String::from_utf8_lossy(&unpacked)),
                Err(_) => text.push_str(&String::from_utf8_lossy(blob.as_ref())),
            }
        }
    }
    text
}

impl MotoResources {
    /// The keys of the items of `table` holding any of `needles` (with the needle).
    async fn holding_in_table(&self, table: &str, needles: &[&str]) -> Vec<String> {
        let mut found = Vec::new();
        let dynamodb = self.moto.dynamodb();
        let mut start = None;
        loop {
            let page =
                dynamodb.scan().table_name(table).set_exclusive_start_key(start.take()).send().await.expect("scan");
            for item in page.items() {
                let text = item_text(item);
                let key = item
                    .get(webinar_bridge::adapters::dynamodb::EVENTS_PARTITION_KEY)
                    .and_then(|value| value.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                found.extend(
                    needles.iter().filter(|needle| text.contains(*needle)).map(|needle| format!("{key}: {needle}")),
                );
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        found
    }

    /// Where the needles occur: every item of every table (compressed records unpacked) and
    /// every message in both queues (taken off them: this is the last look).
    async fn holding(&self, needles: &[&str]) -> Vec<String> {
        let mut found = Vec::new();
        let dynamodb = self.moto.dynamodb();
        for table in &self.tables {
            let mut start = None;
            loop {
                let page =
                    dynamodb.scan().table_name(table).set_exclusive_start_key(start.take()).send().await.expect("scan");
                for item in page.items() {
                    let text = item_text(item);
                    for needle in needles {
                        if text.contains(needle) {
                            found.push(format!("{table}: {needle}"));
                        }
                    }
                }
                match page.last_evaluated_key() {
                    Some(key) if !key.is_empty() => start = Some(key.clone()),
                    _ => break,
                }
            }
        }
        let sqs = self.moto.sqs();
        for url in [self.queue.url(), self.queue.dlq_url.as_str()] {
            for _ in 0..100 {
                let output = sqs
                    .receive_message()
                    .queue_url(url)
                    .max_number_of_messages(10)
                    .visibility_timeout(60)
                    .message_attribute_names("All")
                    .send()
                    .await
                    .expect("receive");
                let messages = output.messages.unwrap_or_default();
                if messages.is_empty() {
                    break;
                }
                for message in &messages {
                    let text = format!("{message:?}");
                    for needle in needles {
                        if text.contains(needle) {
                            found.push(format!("{url}: {needle}"));
                        }
                    }
                    if let Some(receipt) = message.receipt_handle() {
                        sqs.delete_message().queue_url(url).receipt_handle(receipt).send().await.expect("delete");
                    }
                }
            }
        }
        found
    }
}

fn sqlite_stack(simulator: &Simulator) -> Stack {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bridge.db");
    let db = SqliteDb::open(&path).expect("open the database");
    let queue = SqliteQueue::new(db.clone(), QueueSettings::default());
    let ports = Ports {
        queue: Arc::new(queue.clone()),
        dead_letters: Arc::new(queue),
        log: Arc::new(SqliteEventLog::new(db.clone())),
        contacts: Arc::new(SqliteContactStore::new(db.clone())),
        tags: Arc::new(SqliteTagDirectory::new(db.clone())),
        receipts: Arc::new(SqliteReceiptLog::new(db.clone())),
        zoom: Arc::new(SqliteZoomLedger::open(&path).expect("open the Zoom ledger")),
        parked: Arc::new(SqliteParkedWebhooks::new(db.clone())),
        history: Arc::new(SqliteHistoryLog::new(db)),
    };
    let env = BridgeEnv::for_simulator(&simulator.url(), &path).set("BRIDGE_KLICKTIPP_RPS", "50");
    Stack { name: "sqlite", ports, env, sqlite_path: Some(path), _dir: dir }
}

impl Stack {
    fn config(&self) -> BridgeConfig {
        self.env.config()
    }

    fn ingest(&self) -> Ingest {
        let config = self.config();
        Ingest::new(Arc::clone(&self.ports.queue), config.secrets.clone())
            .with_receipts(Arc::clone(&self.ports.receipts), config.retention)
            .with_history(Arc::clone(&self.ports.history))
    }

    fn consumer(&self, simulator: &Simulator) -> Consumer {
        let config = self.config();
        let client = harness::simulator_client(simulator);
        let clock = Arc::new(SystemClock);
        let tags = TagResolver::new(Arc::clone(&self.ports.tags), client.clone(), clock.clone());
        let options = ConsumerOptions {
            group_concurrency: 1,
            retention: config.retention,
            listid: config.klicktipp.listid,
            ..ConsumerOptions::default()
        };
        Consumer::new(
            Arc::clone(&self.ports.log),
            Arc::clone(&self.ports.contacts),
            tags,
            client,
            config.settings.clone(),
            options,
            clock,
        )
        .with_history(Arc::clone(&self.ports.history))
    }

    /// A WebinarJam webhook through the real ingest; returns the event id.
    async fn webinarjam(&self, kind: &str, email: &str) -> String {
        self.webinarjam_body(kind, &masterclass(email)).await
    }

    async fn webinarjam_body(&self, kind: &str, body: &Value) -> String {
        let request = RawRequest {
            method: "POST".into(),
            path: format!("/hooks/webinarjam/{kind}"),
            query: None,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("authorization".into(), format!("Bearer {WEBINARJAM_SECRET}")),
            ],
            body: Bytes::from(body.to_string()),
            received_at: chrono::Utc::now(),
        };
        let answer = self.ingest().handle(&request).await;
        assert!(answer.status < 300, "{}: {:?}", self.name, answer.body);
        answer.body["event_id"].as_str().expect("an event id").to_owned()
    }

    /// Runs the consumer until the queue gives nothing more.
    async fn drain(&self, simulator: &Simulator) {
        let consumer = self.consumer(simulator);
        for _ in 0..50 {
            let batch = worker::process_one_batch(self.ports.queue.as_ref(), &consumer).await.expect("the queue works");
            if batch.received == 0 {
                return;
            }
        }
        panic!("{}: the queue did not drain", self.name);
    }

    /// Takes the next message off the queue and dead-letters it, as the consumer does when
    /// KlickTipp kept failing.
    async fn dead_letter_next(&self) {
        let mut received = Vec::new();
        for _ in 0..5 {
            received = self.ports.queue.receive(1).await.expect("receive");
            if !received.is_empty() {
                break;
            }
        }
        assert_eq!(received.len(), 1, "{}: one message to dead-letter", self.name);
        self.ports.queue.dead_letter(&received[0], "KlickTipp kept failing (test)").await.expect("dead-letter");
    }

    async fn run(&self, args: &[&str]) -> harness::Finished {
        let run = harness::run_bridge_async(&self.env, args).await;
        eprintln!("[{}] webinar-bridge {}\n{}{}", self.name, args.join(" "), run.stdout, run.stderr);
        run
    }
}

/// KlickTipp's write endpoints among `calls` (reads and sign-in left out).
fn writes(calls: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    calls
        .iter()
        .filter(|(endpoint, _)| {
            !endpoint.starts_with("GET ")
                && !endpoint.contains("/search")
                && !endpoint.contains("/account/")
                && !endpoint.contains("login")
                && !endpoint.contains("logout")
        })
        .map(|(endpoint, count)| (endpoint.clone(), *count))
        .collect()
}

fn tags_of(simulator: &Simulator, email: &str) -> Vec<String> {
    harness::tags_by_email(simulator).get(email).map(|tags| tags.iter().cloned().collect()).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The cases, each on any backend

/// A managed tag removed by hand in KlickTipp: `resync` reads the contact live and sets exactly
/// that tag again (one tag call); a second resync finds nothing to write.
async fn resync_heals_a_tag_removed_by_hand(stack: &Stack, simulator: &Simulator) {
    let email = "resync.person@example.com";
    stack.webinarjam("registered", email).await;
    stack.webinarjam("attended", email).await;
    stack.drain(simulator).await;
    assert_eq!(tags_of(simulator, email), [ATTENDED, REGISTERED]);

    let attended_id = simulator.tags().into_iter().find(|(_, name)| name == ATTENDED).expect("the tag exists").0;
    harness::simulator_client(simulator).untag(email, attended_id).await.expect("untag by hand");
    assert_eq!(tags_of(simulator, email), [REGISTERED]);

    let before = simulator.calls_by_endpoint();
    let run = stack.run(&["resync", email]).await;
    assert_eq!(run.code, Some(0), "{}: {}", stack.name, run.stderr);
    assert!(run.stdout.contains(&format!("tag `{ATTENDED}` set")), "{}", run.stdout);
    let made = calls_since(simulator, &before);
    assert_eq!(writes(&made), harness::calls(&[("POST /subscriber/tag", 1)]), "{}: {made:?}", stack.name);
    assert_eq!(made.get("POST /subscriber/search"), Some(&1), "{made:?}");
    assert_eq!(tags_of(simulator, email), [ATTENDED, REGISTERED]);

    let before = simulator.calls_by_endpoint();
    let run = stack.run(&["resync", email]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("nothing written"), "{}", run.stdout);
    let made = calls_since(simulator, &before);
    assert!(writes(&made).is_empty(), "{}: a second resync writes nothing: {made:?}", stack.name);

    // In bulk: every stored contact, and the contacts of one webinar.
    for args in [&["resync", "--all"][..], &["resync", "--webinar", "Masterclass"][..]] {
        let before = simulator.calls_by_endpoint();
        let run = stack.run(args).await;
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(run.stdout.contains("0 healed with 0 write call(s), 1 already matched"), "{}", run.stdout);
        assert!(writes(&calls_since(simulator, &before)).is_empty());
    }
    let run = stack.run(&["resync", "--webinar", "No Such Webinar"]).await;
    assert!(run.stdout.contains("Resynced 0 contact(s)"), "{}", run.stdout);
}

/// A dead letter: `redrive <event id>` moves it back, the consumer applies it (exact calls).
async fn redrive_moves_a_dead_letter_back_for_the_consumer(stack: &Stack, simulator: &Simulator) {
    let email = "redrive.person@example.com";
    let event_id = stack.webinarjam("registered", email).await;
    stack.dead_letter_next().await;
    assert_eq!(stack.ports.dead_letters.list(10).await.expect("list").len(), 1);

    let run = stack.run(&["redrive", "no-such-id"]).await;
    assert_eq!(run.code, Some(1));
    assert!(run.stdout.contains("No dead letter has the message or event id no-such-id"), "{}", run.stdout);

    let run = stack.run(&["redrive", &event_id]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("Redrove 1 dead letter(s)"), "{}", run.stdout);
    assert!(run.stdout.contains(&event_id), "{}", run.stdout);
    assert!(stack.ports.dead_letters.list(10).await.expect("list").is_empty());

    let before = simulator.calls_by_endpoint();
    stack.drain(simulator).await;
    let made = calls_since(simulator, &before);
    assert_eq!(
        writes(&made),
        harness::calls(&[("POST /subscriber", 1), ("POST /tag", 1)]),
        "{}: one upsert with the tag, created first: {made:?}",
        stack.name
    );
    assert_eq!(tags_of(simulator, email), [REGISTERED]);

    // --all, with one more and then with none.
    stack.webinarjam("attended", email).await;
    stack.dead_letter_next().await;
    let run = stack.run(&["redrive", "--all"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("Redrove 1 dead letter(s)"), "{}", run.stdout);
    stack.drain(simulator).await;
    assert_eq!(tags_of(simulator, email), [ATTENDED, REGISTERED]);
    let run = stack.run(&["redrive", "--all"]).await;
    assert!(run.stdout.contains("No dead letters to redrive."), "{}", run.stdout);
}

/// `forget --klicktipp`: the KlickTipp contact is deleted (search + DELETE) and the address is
/// nowhere in the stores afterwards; another contact stays; the erasure is recorded.
const FORGET_EMAIL: &str = "Forget.Me@Example.COM";
const FORGET_NEEDLES: [&str; 4] = [FORGET_EMAIL, "forget.me@example.com", "Forget.Me", "forget.me%40example.com"];
/// Zoom registrant ids (recorded in the ledger when a registration is accepted).
const FORGET_REGISTRANT: &str = "reg_forget_me";
const OTHER_REGISTRANT: &str = "reg_stays";

/// The contact to forget, with a pending message and a dead letter, and another contact.
async fn prepare_forget(stack: &Stack, simulator: &Simulator) {
    let email = FORGET_EMAIL;
    let other = "stays@example.com";
    stack.webinarjam("registered", email).await;
    stack.webinarjam("attended", email).await;
    stack.webinarjam("registered", other).await;
    stack.drain(simulator).await;
    // A pending message and a dead letter carrying the address too.
    stack.webinarjam_body("registered", &webinar("forget.me@example.com", "124", "Second Class")).await;
    stack.dead_letter_next().await;
    assert!(harness::tags_by_email(simulator).contains_key("forget.me@example.com"));

    // A Zoom registration of each (the ledger's registrant id -> e-mail record) and parked
    // WebinarJam bodies: the address as JSON in its own case, and form-encoded (`%40`).
    let now = chrono::Utc::now();
    let retention = stack.config().retention;
    for (registrant_id, address) in [(FORGET_REGISTRANT, email), (OTHER_REGISTRANT, other)] {
        let address = webinar_bridge::domain::Email::parse(address).expect("an address");
        stack.ports.zoom.record_registrant(registrant_id, &address, now, retention).await.expect("record registrant");
    }
    let bodies = [
        ("application/json", webinar(email, "125", "Parked Class").to_string()),
        ("application/x-www-form-urlencoded", "webinar_id=126&email=forget.me%40example.com".to_owned()),
        ("application/json", webinar(other, "125", "Parked Class").to_string()),
    ];
    for (content_type, body) in bodies {
        let webhook = ParkedWebhook {
            id: ParkedWebhook::new_id(now),
            source: "webinarjam".into(),
            path: "/hooks/webinarjam/registered".into(),
            query: None,
            content_type: Some(content_type.into()),
            body: body.into_bytes(),
            received_at: now,
            reason: "webinar_id: no alias (test)".into(),
            updated_at: now,
            expires_at: now + chrono::Duration::from_std(retention).expect("a retention"),
        };
        let parked = stack.ports.parked.park(&webhook, ParkCap::default(), now).await.expect("park");
        assert_eq!(parked, ParkOutcome::Parked);
    }
}

/// The other contact's Zoom record and parked body stay.
async fn others_zoom_and_parked_stay(stack: &Stack) {
    let now = chrono::Utc::now();
    let recorded = stack.ports.zoom.registrant_email(OTHER_REGISTRANT, now).await.expect("read");
    assert_eq!(recorded.as_ref().map(webinar_bridge::domain::Email::as_str), Some("stays@example.com"));
    assert_eq!(stack.ports.zoom.registrant_email(FORGET_REGISTRANT, now).await.expect("read"), None);
    let parked = stack.ports.parked.list(now).await.expect("list");
    assert_eq!(parked.len(), 1, "{}: the other contact's parked body stays", stack.name);
    assert!(String::from_utf8_lossy(&parked[0].body).contains("stays@example.com"));
}

async fn forget_erases_a_contact_everywhere(stack: &Stack, simulator: &Simulator) {
    let (email, other) = (FORGET_EMAIL, "stays@example.com");
    let before = simulator.calls_by_endpoint();
    let run = stack.run(&["forget", email, "--klicktipp"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("KlickTipp: contact deleted"), "{}", run.stdout);
    assert!(run.stdout.contains("contact record: 1"), "{}", run.stdout);
    assert!(run.stdout.contains("queued messages and dead letters: 1"), "{}", run.stdout);
    assert!(run.stdout.contains("Zoom registrant records: 1"), "{}", run.stdout);
    assert!(run.stdout.contains("parked webhooks: 2"), "{}", run.stdout);
    let made = calls_since(simulator, &before);
    assert_eq!(writes(&made), harness::calls(&[("DELETE /subscriber/{id}", 1)]), "{made:?}");
    assert!(!harness::tags_by_email(simulator).contains_key("forget.me@example.com"));
    assert!(harness::tags_by_email(simulator).contains_key(other));
    assert!(
        stack
            .ports
            .contacts
            .load(&webinar_bridge::domain::Email::parse(other).expect("an address"))
            .await
            .expect("load")
            .is_some()
    );
    assert!(
        !run.stderr.to_ascii_lowercase().contains("forget.me@example.com"),
        "no address in the logs: {}",
        run.stderr
    );

    // Forgetting again finds nothing and says so.
    let run = stack.run(&["forget", email]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("0 stored item(s) erased"), "{}", run.stdout);
}

// ---------------------------------------------------------------------------------------------
// No trace on SQLite: every table and column, and the bytes of the files

fn sqlite_holds(path: &Path, needles: &[&str]) -> Vec<String> {
    let connection = rusqlite::Connection::open(path).expect("open the database");
    let tables: Vec<String> = connection
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .expect("list tables")
        .query_map([], |row| row.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("names");
    let mut found = Vec::new();
    for table in tables {
        let mut statement = connection.prepare(&format!("SELECT * FROM \"{table}\"")).expect("select");
        let columns = statement.column_count();
        let mut rows = statement.query([]).expect("rows");
        while let Some(row) = rows.next().expect("row") {
            for column in 0..columns {
                let text = match row.get_ref(column).expect("value") {
                    rusqlite::types::ValueRef::Text(bytes) | rusqlite::types::ValueRef::Blob(bytes) => {
                        String::from_utf8_lossy(bytes).into_owned()
                    }
                    _ => continue,
                };
                for needle in needles {
                    if text.contains(needle) {
                        found.push(format!("{table} column {column}"));
                    }
                }
            }
        }
    }
    found
}

fn files_hold(path: &Path, needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        let Ok(bytes) = std::fs::read(&file) else { continue };
        for needle in needles {
            if bytes.windows(needle.len()).any(|window| window == needle.as_bytes()) {
                found.push(format!("{} holds {needle}", file.display()));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_resync_heals_a_tag_removed_by_hand() {
    let simulator = harness::start_simulator().await;
    let stack = sqlite_stack(&simulator);
    resync_heals_a_tag_removed_by_hand(&stack, &simulator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_redrive_moves_a_dead_letter_back() {
    let simulator = harness::start_simulator().await;
    let stack = sqlite_stack(&simulator);
    redrive_moves_a_dead_letter_back_for_the_consumer(&stack, &simulator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_forget_leaves_no_trace_in_any_table_or_byte() {
    let simulator = harness::start_simulator().await;
    let stack = sqlite_stack(&simulator);
    let path = stack.sqlite_path.clone().expect("a file");
    let needles = FORGET_NEEDLES;
    prepare_forget(&stack, &simulator).await;
    let held = sqlite_holds(&path, &needles);
    assert!(held.iter().any(|place| place.starts_with("contacts")), "the search finds the address: {held:?}");
    assert!(held.iter().any(|place| place.starts_with("dead_letters")), "{held:?}");
    assert!(held.iter().any(|place| place.starts_with("zoom_registrants")), "{held:?}");
    assert!(held.iter().any(|place| place.starts_with("parked_webhooks")), "{held:?}");
    forget_erases_a_contact_everywhere(&stack, &simulator).await;
    // The erasure is recorded, without the address.
    let connection = rusqlite::Connection::open(&path).expect("open");
    let erasures: i64 = connection
        .query_row("SELECT COUNT(*) FROM history WHERE step LIKE '%\"erased\"%'", [], |row| row.get(0))
        .expect("count");
    assert_eq!(erasures, 2, "one record per forget run");
    drop(connection);
    others_zoom_and_parked_stay(&stack).await;
    assert_eq!(sqlite_holds(&path, &needles), Vec::<String>::new());
    drop(stack.ports);
    assert_eq!(files_hold(&path, &needles), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// The same cases on the AWS resources (moto)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_resync_heals_a_tag_removed_by_hand() {
    let simulator = harness::start_simulator().await;
    let (stack, _resources) = moto_stack(&simulator).await;
    resync_heals_a_tag_removed_by_hand(&stack, &simulator).await;
}

/// moto has no StartMessageMoveTask: `--all` runs the receive-send-delete fallback and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_redrive_moves_a_dead_letter_back() {
    let simulator = harness::start_simulator().await;
    let (stack, _resources) = moto_stack(&simulator).await;
    redrive_moves_a_dead_letter_back_for_the_consumer(&stack, &simulator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_forget_leaves_no_trace_in_any_item_or_message() {
    let simulator = harness::start_simulator().await;
    let (stack, resources) = moto_stack(&simulator).await;
    prepare_forget(&stack, &simulator).await;
    let events_table = resources.tables.first().expect("the events table");
    let held = resources.holding_in_table(events_table, &FORGET_NEEDLES).await;
    assert!(held.iter().any(|item| item.contains("zoom#registrant#")), "the scan finds the registrant: {held:?}");
    assert!(held.iter().any(|item| item.contains("parked#")), "the scan finds the parked bodies: {held:?}");
    let erased_before = erasure_records(&resources).await;
    forget_erases_a_contact_everywhere(&stack, &simulator).await;
    assert_eq!(erasure_records(&resources).await - erased_before, 2, "one erasure record per forget run");
    others_zoom_and_parked_stay(&stack).await;
    assert_eq!(resources.holding(&FORGET_NEEDLES).await, Vec::<String>::new());
}

/// History items recording an erasure.
async fn erasure_records(resources: &MotoResources) -> usize {
    let history = resources.tables.last().expect("the history table");
    let page = resources.moto.dynamodb().scan().table_name(history).send().await.expect("scan");
    page.items().iter().filter(|item| format!("{item:?}").contains("erased")).count()
}
