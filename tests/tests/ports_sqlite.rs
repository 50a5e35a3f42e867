//! The port conformance suite against the SQLite adapters (on files and in memory), plus what
//! only a durable backend has to show: restarts, WAL, migrations, several connections on one
//! file, redrive and TTL purge.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use webinar_bridge::adapters::memory::QueueSettings;
use webinar_bridge::adapters::sqlite::{SqliteContactStore, SqliteDb, SqliteEventLog, SqliteQueue, SqliteTagDirectory};
use webinar_bridge::domain::EventId;
use webinar_bridge::ports::ReceiptLog;
use webinar_bridge::ports::{
    Claim, ClaimToken, Clock, ContactStore, EventLog, EventQueue, FinalOutcome, OutgoingMessage, QueuedMessage,
    TagDirectory,
};
use webinar_bridge_tests::port_suite::{self, ManualClock, SqliteBackend, realistic_contact_record};

fn temp_dir() -> TempDir {
    tempfile::tempdir().expect("create a temp dir")
}

fn open(path: &Path) -> SqliteDb {
    SqliteDb::open(path).expect("open the database file")
}

fn outgoing(group: &str, body: &str) -> OutgoingMessage {
    OutgoingMessage { group_id: group.to_owned(), dedup_id: format!("dedup-{body}"), body: body.to_owned() }
}

fn event_id(name: &str) -> EventId {
    EventId::from_sender(name).expect("a valid id")
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

async fn receive(queue: &SqliteQueue, max: usize) -> Vec<QueuedMessage> {
    queue.receive(max).await.expect("receive")
}

// ---------------------------------------------------------------------------------------------
// The shared suite

#[tokio::test]
async fn queue_on_a_file() {
    let dir = temp_dir();
    port_suite::queue_suite(&SqliteBackend::in_dir(dir.path())).await;
}

#[tokio::test]
async fn queue_visibility_on_a_file() {
    let dir = temp_dir();
    port_suite::queue_visibility_suite(&SqliteBackend::in_dir(dir.path())).await;
}

#[tokio::test]
async fn queue_dedup_expiry_on_a_file() {
    let dir = temp_dir();
    port_suite::queue_dedup_expiry_suite(&SqliteBackend::in_dir(dir.path())).await;
}

#[tokio::test]
async fn receipt_log_on_a_file() {
    let dir = temp_dir();
    port_suite::receipt_log_suite(&SqliteBackend::in_dir(dir.path())).await;
}

#[tokio::test]
async fn webinar_settings_on_a_file() {
    let dir = temp_dir();
    port_suite::webinar_settings_suite(&SqliteBackend::in_dir(dir.path())).await;
}

#[tokio::test]
async fn dead_letters_on_a_file() {
    let dir = temp_dir();
    port_suite::dead_letters_list_redrive_and_erase(&SqliteBackend::in_dir(dir.path())).await;
}

#[tokio::test]
async fn parked_webhooks_on_a_file() {
    let dir = temp_dir();
    port_suite::parked_webhooks_suite(&SqliteBackend::in_dir(dir.path())).await;
}

/// `serve`'s periodic purge drops parked bodies past their retention (the rest stay).
#[tokio::test]
async fn the_database_purge_drops_expired_parked_webhooks() {
    use webinar_bridge::ports::{ParkCap, ParkOutcome, ParkedWebhooks};
    let db = SqliteDb::open_in_memory().expect("open");
    let store = webinar_bridge::adapters::sqlite::SqliteParkedWebhooks::new(db.clone());
    let now = port_suite::ManualClock::start();
    let short = port_suite::parked_body(1, now, 10);
    let mut long = port_suite::parked_body(2, now, 10);
    long.expires_at = short.expires_at + chrono::Duration::hours(2);
    for body in [&short, &long] {
        assert_eq!(store.park(body, ParkCap::default(), now).await.expect("park"), ParkOutcome::Parked);
    }
    let after = short.expires_at + chrono::Duration::hours(1);
    let purged = db.purge(after, Duration::from_secs(86_400), Duration::from_secs(300)).await.expect("purge");
    assert_eq!(purged.parked, 1);
    assert_eq!(store.list(now).await.expect("list"), vec![long]);
}

#[tokio::test]
async fn history_log_on_a_file() {
    let dir = temp_dir();
    port_suite::history_log_suite(&SqliteBackend::in_dir(dir.path())).await;
}

#[tokio::test]
async fn event_log_on_a_file() {
    let dir = temp_dir();
    port_suite::event_log_suite(&SqliteBackend::in_dir(dir.path())).await;
}

#[tokio::test]
async fn contact_store_on_a_file() {
    let dir = temp_dir();
    port_suite::contact_store_suite(&SqliteBackend::in_dir(dir.path())).await;
}

#[tokio::test]
async fn tag_directory_on_a_file() {
    let dir = temp_dir();
    port_suite::tag_directory_suite(&SqliteBackend::in_dir(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_on_a_file() {
    let dir = temp_dir();
    port_suite::concurrency_suite(&SqliteBackend::in_dir(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_suite_in_memory() {
    port_suite::full_suite(&SqliteBackend::in_memory()).await;
}

// ---------------------------------------------------------------------------------------------
// Durability

#[tokio::test]
async fn a_restart_loses_nothing_and_redelivers_in_flight_messages() {
    let dir = temp_dir();
    let path = dir.path().join("bridge.db");
    let clock = ManualClock::new(ManualClock::start());
    let settings = QueueSettings::default();
    let record = realistic_contact_record();
    {
        let db = open(&path);
        let queue = SqliteQueue::with_clock(db.clone(), settings, clock.shared());
        queue.send(&[outgoing("a", "a1"), outgoing("b", "b1")]).await.expect("send");
        let in_flight = receive(&queue, 1).await;
        assert_eq!((in_flight[0].body.as_str(), in_flight[0].receive_count), ("a1", 1));
        let log = SqliteEventLog::with_clock(db.clone(), clock.shared());
        let (lease, retention) = (Duration::from_secs(30), Duration::from_secs(3600));
        let claimed = log
            .claim(&event_id("evt-1"), "fp", &ClaimToken::new(), clock.now(), lease, retention)
            .await
            .expect("claim");
        assert_eq!(claimed, Claim::Claimed);
        SqliteContactStore::new(db.clone()).save(&record, None).await.expect("save");
        SqliteTagDirectory::new(db).record_created("[Zoom] [Demo Webinar] Buyer", 42).await.expect("record_created");
        assert!(sidecar(&path, "-wal").exists(), "WAL mode keeps a -wal file beside the database");
        assert!(sidecar(&path, "-shm").exists(), "WAL mode keeps a -shm file beside the database");
    } // every handle dropped: the process is gone, a1 was never acknowledged

    let db = open(&path);
    let queue = SqliteQueue::with_clock(db.clone(), settings, clock.shared());
    assert_eq!(queue.pending().await.expect("pending"), 2);
    let before_timeout: Vec<_> = receive(&queue, 10).await.into_iter().map(|message| message.body).collect();
    assert_eq!(before_timeout, ["b1"], "a1 stays invisible until its visibility timeout");
    clock.advance(settings.visibility_timeout + Duration::from_secs(1));
    let redelivered = receive(&queue, 10).await;
    assert_eq!(redelivered.len(), 2, "a1 and b1 both timed out: {redelivered:?}");
    assert_eq!((redelivered[0].body.as_str(), redelivered[0].receive_count), ("a1", 2));

    let log = SqliteEventLog::with_clock(db.clone(), clock.shared());
    assert!(log.get(&event_id("evt-1")).await.expect("get").is_some(), "the claim survived");
    let loaded = SqliteContactStore::new(db.clone()).load(&record.email).await.expect("load").expect("saved");
    assert_eq!((loaded.value, loaded.version), (record, 1));
    let tags = SqliteTagDirectory::new(db);
    assert_eq!(tags.lookup("[Zoom] [Demo Webinar] Buyer").await.expect("lookup"), Some(42));
}

#[tokio::test]
async fn committed_writes_are_readable_by_a_new_connection_before_any_checkpoint() {
    let dir = temp_dir();
    let path = dir.path().join("bridge.db");
    let crashed = open(&path);
    SqliteTagDirectory::new(crashed.clone()).record_created("tag", 7).await.expect("record_created");
    // A crash never closes the connection, so nothing is checkpointed: the write lives in the WAL.
    std::mem::forget(crashed);
    let tags = SqliteTagDirectory::new(open(&path));
    assert_eq!(tags.lookup("tag").await.expect("lookup"), Some(7));
}

#[tokio::test]
async fn migrations_run_once_and_reopening_keeps_the_schema() {
    let dir = temp_dir();
    let path = dir.path().join("bridge.db");
    let first = open(&path);
    assert_eq!(first.schema_version().await.expect("schema_version"), SqliteDb::SCHEMA_VERSION);
    assert_eq!(first.path(), Some(path.as_path()));
    SqliteTagDirectory::new(first.clone()).record_created("tag", 1).await.expect("record_created");
    // A second open while the first is live (another process) and a reopen after it closed.
    let second = open(&path);
    drop(first);
    drop(second);
    let reopened = open(&path);
    assert_eq!(reopened.schema_version().await.expect("schema_version"), SqliteDb::SCHEMA_VERSION);
    assert_eq!(SqliteTagDirectory::new(reopened).lookup("tag").await.expect("lookup"), Some(1));
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused() {
    let dir = temp_dir();
    let path = dir.path().join("notes.db");
    std::fs::write(&path, "this is not a SQLite database, just some text that is long enough".repeat(20))
        .expect("write");
    assert!(SqliteDb::open(&path).is_err());
}

// ---------------------------------------------------------------------------------------------
// Several connections on one file (several processes)

/// One claim per connection, all released at once by a barrier.
async fn race_claims_over(logs: &[Arc<SqliteEventLog>], id: &EventId) -> Vec<Claim> {
    let barrier = Arc::new(tokio::sync::Barrier::new(logs.len()));
    let tasks: Vec<_> = logs
        .iter()
        .map(|log| {
            let (log, id, barrier) = (Arc::clone(log), id.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                log.claim(
                    &id,
                    "fp",
                    &ClaimToken::new(),
                    ManualClock::start(),
                    Duration::from_secs(30),
                    Duration::from_secs(3600),
                )
                .await
            })
        })
        .collect();
    let mut claims = Vec::new();
    for task in tasks {
        claims.push(task.await.expect("task").expect("claim"));
    }
    claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn claims_through_separate_connections_have_one_winner() {
    let dir = temp_dir();
    let path = dir.path().join("bridge.db");
    let logs: Vec<Arc<SqliteEventLog>> = (0..8).map(|_| Arc::new(SqliteEventLog::new(open(&path)))).collect();
    // Many rounds, because a race between processes is only sometimes close enough to matter.
    for round in 0..50 {
        let claims = race_claims_over(&logs, &event_id(&format!("evt-shared-{round}"))).await;
        assert_eq!(claims.iter().filter(|claim| **claim == Claim::Claimed).count(), 1, "{claims:?}");
        assert_eq!(claims.iter().filter(|claim| **claim == Claim::Busy).count(), logs.len() - 1, "{claims:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receives_through_separate_connections_deliver_each_message_once() {
    let dir = temp_dir();
    let path = dir.path().join("bridge.db");
    let queues: Vec<Arc<SqliteQueue>> =
        (0..4).map(|_| Arc::new(SqliteQueue::new(open(&path), QueueSettings::default()))).collect();
    let messages: Vec<_> = (0..40).map(|n| outgoing(&format!("group-{n}"), &format!("m{n}"))).collect();
    queues[0].send(&messages).await.expect("send");
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let queue = Arc::clone(&queues[n % queues.len()]);
            tokio::spawn(async move { queue.receive(3).await })
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for task in tasks {
        for message in task.await.expect("task").expect("receive") {
            assert!(seen.insert(message.message_id), "{} delivered twice", message.body);
        }
    }
    assert_eq!(seen.len(), messages.len());
}

// ---------------------------------------------------------------------------------------------
// Operator tools

#[tokio::test]
async fn redrive_moves_dead_letters_back_in_place() {
    let clock = ManualClock::new(ManualClock::start());
    let settings = QueueSettings { max_receive_count: 1, ..QueueSettings::default() };
    let queue = SqliteQueue::with_clock(SqliteDb::open_in_memory().expect("open"), settings, clock.shared());
    queue.send(&[outgoing("a", "poison"), outgoing("a", "next")]).await.expect("send");
    let poison = receive(&queue, 1).await;
    queue.retry_later(&poison[0], Duration::ZERO).await.expect("retry_later");
    let next = receive(&queue, 10).await;
    assert_eq!(next.iter().map(|message| message.body.as_str()).collect::<Vec<_>>(), ["next"]);
    queue.ack(&next[0]).await.expect("ack");
    assert_eq!(queue.dead_letters().await.expect("dead_letters").len(), 1);

    assert_eq!(queue.redrive_dead_letters().await.expect("redrive"), 1);
    assert!(queue.dead_letters().await.expect("dead_letters").is_empty());
    assert_eq!(queue.pending().await.expect("pending"), 1);
    let again = receive(&queue, 10).await;
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].body.as_str(), again[0].receive_count), ("poison", 1), "a fresh receive count");
    assert_ne!(again[0].receipt, poison[0].receipt);
    queue.ack(&poison[0]).await.expect("a receipt from before the redrive is stale");
    assert_eq!(queue.pending().await.expect("pending"), 1);
    assert_eq!(queue.redrive_dead_letters().await.expect("redrive"), 0);
}

#[tokio::test]
async fn expired_event_records_are_hidden_and_purged() {
    let clock = ManualClock::new(ManualClock::start());
    let log = SqliteEventLog::with_clock(SqliteDb::open_in_memory().expect("open"), clock.shared());
    let hour = Duration::from_secs(3600);
    for (name, retention) in [("evt-short", hour), ("evt-long", hour * 2)] {
        let id = event_id(name);
        let owner = ClaimToken::new();
        assert_eq!(log.claim(&id, "fp", &owner, clock.now(), hour, retention).await.expect("claim"), Claim::Claimed);
        log.complete(&id, &owner, &FinalOutcome::Applied, clock.now(), retention).await.expect("complete");
    }
    clock.advance(hour);
    assert_eq!(log.get(&event_id("evt-short")).await.expect("get"), None, "expired records behave as absent");
    assert!(log.get(&event_id("evt-long")).await.expect("get").is_some());
    assert_eq!(log.purge_expired(clock.now()).await.expect("purge"), 1);
    clock.advance(hour);
    assert_eq!(log.purge_expired(clock.now()).await.expect("purge"), 1);
    assert_eq!(log.purge_expired(clock.now()).await.expect("purge"), 0);
}

#[tokio::test]
async fn expired_ingest_receipts_are_purged_and_reuses_survive_a_reopen() {
    let dir = temp_dir();
    let path = dir.path().join("receipts.db");
    let receipts = webinar_bridge::adapters::sqlite::SqliteReceiptLog::new(SqliteDb::open(&path).expect("open"));
    let now = ManualClock::start();
    let hour = Duration::from_secs(3600);
    for (name, retention) in [("generic:a:short", hour), ("generic:a:long", hour * 2)] {
        receipts.record(&event_id(name), "fp", now, retention).await.expect("record");
    }
    receipts.record(&event_id("generic:a:long"), "fp-other", now, hour).await.expect("record");
    // A second process on the same file sees the refused reuse.
    let reopened_db = SqliteDb::open(&path).expect("reopen");
    let reopened = webinar_bridge::adapters::sqlite::SqliteReceiptLog::new(reopened_db.clone());
    let record = reopened.get(&event_id("generic:a:long"), now).await.expect("get").expect("receipt");
    assert_eq!((record.rejected_reuses, record.last_rejected_fingerprint.as_deref()), (1, Some("fp-other")));
    let purge = |at| {
        let db = reopened_db.clone();
        async move { db.purge(at, hour * 24, Duration::ZERO).await.expect("purge").receipts }
    };
    let later = now + chrono::Duration::hours(1);
    assert_eq!(purge(later).await, 1);
    assert_eq!(purge(later + chrono::Duration::hours(1)).await, 1);
    assert_eq!(purge(later + chrono::Duration::hours(1)).await, 0);
}

/// `serve`'s periodic purge also drops ingest receipts past their retention, so one row per
/// accepted event does not make the file grow for ever.
#[tokio::test]
async fn the_database_purge_drops_expired_ingest_receipts() {
    let dir = temp_dir();
    let db = SqliteDb::open(dir.path().join("purge.db")).expect("open");
    let receipts = webinar_bridge::adapters::sqlite::SqliteReceiptLog::new(db.clone());
    let now = ManualClock::start();
    let hour = Duration::from_secs(3600);
    receipts.record(&event_id("generic:a:short"), "fp", now, hour).await.expect("record");
    receipts.record(&event_id("generic:a:long"), "fp", now, hour * 3).await.expect("record");
    let later = now + chrono::Duration::hours(2);
    let purged = db.purge(later, hour, hour).await.expect("purge");
    assert_eq!(purged.receipts, 1);
    assert!(receipts.get(&event_id("generic:a:short"), now).await.expect("get").is_none());
    assert!(receipts.get(&event_id("generic:a:long"), now).await.expect("get").is_some());
}

// ---------------------------------------------------------------------------------------------
// Differential check: the SQLite queue against the reference on random histories

mod differential {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::Index;
    use webinar_bridge::adapters::memory::{DeadLetter, MemoryQueue};

    #[derive(Debug, Clone)]
    enum Op {
        /// (group, dedup id) pairs.
        Send(Vec<(u8, u8)>),
        Receive(usize),
        Ack(Index),
        RetryLater(Index, u64),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            prop::collection::vec((0..3u8, 0..12u8), 1..4).prop_map(Op::Send),
            (0..5usize).prop_map(Op::Receive),
            any::<Index>().prop_map(Op::Ack),
            (any::<Index>(), prop_oneof![Just(0u64), Just(5)]).prop_map(|(which, delay)| Op::RetryLater(which, delay)),
            prop_oneof![Just(1u64), Just(31), Just(200)].prop_map(Op::Advance),
        ]
    }

    /// What a delivery says, without the receipt (each backend makes its own).
    fn seen(messages: &[QueuedMessage]) -> Vec<(String, String, String, u32)> {
        messages.iter().map(|m| (m.message_id.clone(), m.group_id.clone(), m.body.clone(), m.receive_count)).collect()
    }

    struct Pair {
        memory: MemoryQueue,
        sqlite: SqliteQueue,
        clock: Arc<ManualClock>,
        /// Every delivery so far, as (memory's, SQLite's), for acks and retries of any age.
        deliveries: Vec<(QueuedMessage, QueuedMessage)>,
    }

    impl Pair {
        fn new() -> Self {
            let settings = QueueSettings {
                visibility_timeout: Duration::from_secs(30),
                max_receive_count: 2,
                dedup_window: Duration::from_secs(120),
            };
            let clock = ManualClock::new(ManualClock::start());
            let db = SqliteDb::open_in_memory().expect("open");
            Self {
                memory: MemoryQueue::with_clock(settings, clock.shared()),
                sqlite: SqliteQueue::with_clock(db, settings, clock.shared()),
                clock,
                deliveries: Vec::new(),
            }
        }

        fn delivery(&self, which: &Index) -> Option<(QueuedMessage, QueuedMessage)> {
            (!self.deliveries.is_empty()).then(|| self.deliveries[which.index(self.deliveries.len())].clone())
        }

        async fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
            match op {
                Op::Send(pairs) => {
                    let messages: Vec<_> = pairs
                        .iter()
                        .map(|(group, dedup)| OutgoingMessage {
                            group_id: format!("g{group}"),
                            dedup_id: format!("d{dedup}"),
                            body: format!("g{group}-d{dedup}"),
                        })
                        .collect();
                    self.memory.send(&messages).await.expect("memory send");
                    self.sqlite.send(&messages).await.expect("sqlite send");
                }
                Op::Receive(max) => {
                    let from_memory = self.memory.receive(*max).await.expect("memory receive");
                    let from_sqlite = self.sqlite.receive(*max).await.expect("sqlite receive");
                    prop_assert_eq!(seen(&from_sqlite), seen(&from_memory));
                    self.deliveries.extend(from_memory.into_iter().zip(from_sqlite));
                }
                Op::Ack(which) => {
                    if let Some((memory, sqlite)) = self.delivery(which) {
                        self.memory.ack(&memory).await.expect("memory ack");
                        self.sqlite.ack(&sqlite).await.expect("sqlite ack");
                    }
                }
                Op::RetryLater(which, delay) => {
                    if let Some((memory, sqlite)) = self.delivery(which) {
                        let delay = Duration::from_secs(*delay);
                        self.memory.retry_later(&memory, delay).await.expect("memory retry_later");
                        self.sqlite.retry_later(&sqlite, delay).await.expect("sqlite retry_later");
                    }
                }
                Op::Advance(seconds) => self.clock.advance(Duration::from_secs(*seconds)),
            }
            prop_assert_eq!(self.sqlite.pending().await.expect("pending"), self.memory.pending());
            let dead: Vec<DeadLetter> = self.sqlite.dead_letters().await.expect("dead_letters");
            prop_assert_eq!(dead, self.memory.dead_letters());
            Ok(())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn sqlite_queue_matches_the_memory_queue(ops in prop::collection::vec(op(), 1..40)) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                let mut pair = Pair::new();
                for op in &ops {
                    pair.apply(op).await?;
                }
                Ok::<(), TestCaseError>(())
            })?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bounded storage

/// `serve` purges event records past `BRIDGE_EVENT_RETENTION_DAYS`, old dead letters and dedup
/// ids. Under a steady load across simulated weeks (a test clock), the database stops growing:
/// row counts stay bounded by what one retention period holds, and the page count levels off
/// because SQLite reuses freed pages (no VACUUM).
#[tokio::test]
async fn a_steady_load_across_weeks_keeps_the_database_bounded() {
    const EVENTS_PER_DAY: u32 = 100;
    const DEAD_PER_DAY: u32 = 2;
    const WEEKS: u32 = 8;
    let retention = Duration::from_secs(7 * 86_400);
    let dir = temp_dir();
    let db = open(&dir.path().join("bridge.db"));
    let clock = ManualClock::new(ManualClock::start());
    let settings = QueueSettings { max_receive_count: 1, ..QueueSettings::default() };
    let queue = SqliteQueue::with_clock(db.clone(), settings, clock.shared());
    let log = SqliteEventLog::with_clock(db.clone(), clock.shared());
    let contacts = SqliteContactStore::new(db.clone());
    let body = format!("{{\"event\":\"{}\"}}", "x".repeat(600)); // about a queued event's size
    let mut pages_by_week = Vec::new();
    let mut sequence = 0_u64;
    for week in 1..=WEEKS {
        for _day in 0..7 {
            for n in 0..EVENTS_PER_DAY {
                sequence += 1;
                let group = format!("contact-{}", n % 40);
                let dedup_id = format!("evt-{sequence}");
                queue
                    .send(&[OutgoingMessage { group_id: group, dedup_id: dedup_id.clone(), body: body.clone() }])
                    .await
                    .expect("send");
                let [message] = <[QueuedMessage; 1]>::try_from(receive(&queue, 1).await).expect("one message");
                if n < DEAD_PER_DAY {
                    // Poison: its one receive is used up, the next receive dead-letters it.
                    queue.retry_later(&message, Duration::ZERO).await.expect("retry_later");
                    assert!(receive(&queue, 1).await.is_empty());
                    continue;
                }
                let owner = ClaimToken::new();
                let id = event_id(&dedup_id);
                log.claim(&id, "fp", &owner, clock.now(), Duration::from_secs(60), retention).await.expect("claim");
                log.complete(&id, &owner, &FinalOutcome::Applied, clock.now(), retention).await.expect("complete");
                queue.ack(&message).await.expect("ack");
                clock.advance(Duration::from_secs(86_400 / u64::from(EVENTS_PER_DAY)));
            }
            let mut record = realistic_contact_record();
            record.applied.known = sequence.is_multiple_of(2);
            let version = contacts.load(&record.email).await.expect("load").map(|stored| stored.version);
            contacts.save(&record, version).await.expect("save");
            // serve's background purge, here once a simulated day.
            db.purge(clock.now(), retention, settings.dedup_window).await.expect("purge");
        }
        let stats = db.stats().await.expect("stats");
        println!("week {week}: {} pages of {} bytes, rows {:?}", stats.pages, stats.page_size, stats.rows);
        let per_retention = u64::from(EVENTS_PER_DAY) * 8;
        assert!(stats.rows["event_log"] <= per_retention, "week {week}: {:?}", stats.rows);
        assert!(stats.rows["dead_letters"] <= u64::from(DEAD_PER_DAY) * 8, "week {week}: {:?}", stats.rows);
        assert_eq!(stats.rows["queue_dedup"], 0, "week {week}: dedup ids outlive their window");
        assert_eq!(stats.rows["queue_messages"], 0);
        pages_by_week.push(stats.pages);
    }
    // From week 3 on the retention window is full; from then on the file stops growing.
    let plateau = pages_by_week[2];
    for (week, pages) in pages_by_week.iter().enumerate().skip(3) {
        assert!(
            *pages <= plateau + plateau / 20,
            "week {}: {pages} pages, up from {plateau}: {pages_by_week:?}",
            week + 1
        );
    }
}

#[tokio::test]
async fn zoom_ledger_on_a_file() {
    let dir = temp_dir();
    let ledger = webinar_bridge::platforms::zoom_ledger::SqliteZoomLedger::open(&dir.path().join("bridge.db"))
        .expect("open the ledger");
    port_suite::zoom_ledger_suite(&ledger).await;
}

/// `contact` reads one contact's story by the `history_by_contact` index and `problems` by the
/// partial `history_problems` index: never a scan of the whole history, and no sort step.
#[tokio::test]
async fn history_reads_use_their_indexes() {
    let dir = temp_dir();
    let log = webinar_bridge::adapters::sqlite::SqliteHistoryLog::new(open(&dir.path().join("plan.db")));
    let plans: std::collections::BTreeMap<&str, String> = log.query_plans().await.expect("plans").into_iter().collect();
    assert!(plans["for_contact"].contains("USING INDEX history_by_contact (contact=?)"), "{plans:?}");
    assert!(plans["problems_since"].contains("USING INDEX history_problems (at>?)"), "{plans:?}");
    for plan in plans.values() {
        assert!(!plan.contains("SCAN history") && !plan.contains("TEMP B-TREE"), "{plans:?}");
    }
}
