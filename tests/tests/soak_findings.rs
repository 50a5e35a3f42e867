//! Engine defects found while building the chaos soak, each minimized to the shortest sequence
//! that shows it and kept as a regression test now that it is fixed.

use klicktipp_sim::{Knobs, SimConfig, Simulator};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use webinar_bridge::Secret;
use webinar_bridge::adapters::memory::{
    MemoryContactStore, MemoryEventLog, MemoryQueue, MemoryTagDirectory, QueueSettings,
};
use webinar_bridge::consume::{Consumer, ConsumerOptions, CrashPoint};
use webinar_bridge::domain::{
    ContactInfo, Email, EventId, EventKind, Facts, Settings, Source, WebinarEvent, WebinarInfo,
};
use webinar_bridge::ingest::to_message;
use webinar_bridge::klicktipp::{KlickTippAuth, KlickTippClient, KlickTippConfig};
use webinar_bridge::ports::{EventQueue, SystemClock};
use webinar_bridge::tag_resolver::TagResolver;
use webinar_bridge::worker;
use webinar_bridge_tests::harness::{SIM_PASSWORD, SIM_USERNAME};
use webinar_bridge_tests::port_suite::ManualClock;

const TAG: &str = "[Zoom] [Product Demo] Attended";
const DID_NOT_ATTEND: &str = "[WebinarJam] [Masterclass] Did Not Attend";

fn client(simulator: &Simulator, request_timeout: Duration) -> KlickTippClient {
    let auth = KlickTippAuth::Session { username: SIM_USERNAME.to_owned(), password: Secret::new(SIM_PASSWORD) };
    let mut config = KlickTippConfig::new(simulator.url(), auth);
    config.rate_per_second = 0.0;
    config.request_timeout = request_timeout;
    config.backoff_base = Duration::from_millis(10);
    KlickTippClient::new(config).expect("a client")
}

/// A WebinarJam event of `email` for the "Masterclass" webinar, `minute` minutes after its start.
fn webinarjam(email: &str, kind: EventKind, minute: i64) -> WebinarEvent {
    let at = "2026-11-24T17:00:00Z".parse::<chrono::DateTime<chrono::Utc>>().expect("a valid instant")
        + chrono::Duration::minutes(minute);
    let mut webinar = WebinarInfo::new("123");
    webinar.name = Some("Masterclass".into());
    WebinarEvent {
        schema: 1,
        event_id: EventId::from_sender(&format!("{email}-{kind}")).expect("a valid id"),
        source: Source::Webinarjam,
        kind,
        occurred_at: at,
        received_at: at,
        contact: ContactInfo::new(Email::parse(email).expect("a valid email")),
        webinar,
        facts: Facts::default(),
    }
}

/// A consumer on memory adapters whose claims and deliveries come back at once (zero lease,
/// zero visibility timeout), so a crashed batch is simply redelivered by the next receive.
struct Rig {
    simulator: Simulator,
    queue: MemoryQueue,
    consumer: Consumer,
    crash_next_save: Arc<AtomicBool>,
}

impl Rig {
    async fn new(request_timeout: Duration) -> Rig {
        let simulator = klicktipp_sim::start(SimConfig::default(), "127.0.0.1:0").await.expect("start the simulator");
        let client = client(&simulator, request_timeout);
        let clock = Arc::new(SystemClock);
        let resolver = TagResolver::new(Arc::new(MemoryTagDirectory::default()), client.clone(), clock.clone());
        let options = ConsumerOptions {
            lease: Duration::ZERO,
            retry_base: Duration::ZERO,
            retry_cap: Duration::ZERO,
            ..ConsumerOptions::default()
        };
        let crash_next_save = Arc::new(AtomicBool::new(false));
        let armed = Arc::clone(&crash_next_save);
        let consumer = Consumer::new(
            Arc::new(MemoryEventLog::default()),
            Arc::new(MemoryContactStore::default()),
            resolver,
            client,
            Settings::default(),
            options,
            clock,
        )
        .with_crash_hook(Arc::new(move |point| {
            point == CrashPoint::AfterKlickTippBeforeSave && armed.swap(false, Ordering::SeqCst)
        }));
        let queue = MemoryQueue::new(QueueSettings {
            visibility_timeout: Duration::ZERO,
            max_receive_count: 50,
            ..QueueSettings::default()
        });
        Rig { simulator, queue, consumer, crash_next_save }
    }

    async fn deliver(&self, event: &WebinarEvent) {
        self.queue.send(&[to_message(event).expect("the event serializes")]).await.expect("enqueue");
    }

    async fn drain(&self) {
        for _ in 0..50 {
            worker::process_one_batch(&self.queue, &self.consumer).await.expect("the queue works");
            if self.queue.pending() == 0 {
                return;
            }
        }
        panic!("the queue did not drain");
    }

    fn tags_of(&self, email: &str) -> Vec<String> {
        self.simulator
            .contacts()
            .into_iter()
            .find(|contact| contact.email == email)
            .map(|contact| contact.tags)
            .unwrap_or_default()
    }
}

/// A crash between the KlickTipp calls and the state write loses the knowledge that a tag was
/// set, so a later event that makes the tag wrong never removes it.
///
/// Sequence (`Consumer::apply_contact`): the no-show is applied (`POST /subscriber` carrying
/// "Did Not Attend", `POST /subscriber/tag` "Registered"); the process crashes at
/// `CrashPoint::AfterKlickTippBeforeSave`, so the stored `AppliedView` still holds no tags. The
/// attendance arrives before the redelivery; the redelivered batch merges both events, the plan
/// diffs the desired tags (Registered, Attended) against the stale applied view (none), and
/// "Did Not Attend", which is in KlickTipp but not in the applied view, is never untagged: the
/// bridge only removes tags its applied view says it set. Seen twice in a 20,000-request soak.
/// Fixed in `consume.rs`: the merged state is written ahead of the calls, and tags the stored
/// state wanted but the applied view does not confirm are untagged once no longer wanted.
#[tokio::test]
async fn a_crash_before_the_save_does_not_strand_a_tag_that_later_becomes_wrong() {
    let rig = Rig::new(Duration::from_secs(5)).await;
    let email = "erika@example.com";
    rig.crash_next_save.store(true, Ordering::SeqCst);
    rig.deliver(&webinarjam(email, EventKind::NoShow, 90)).await;
    let crashed = worker::process_one_batch(&rig.queue, &rig.consumer).await.expect("the queue works");
    assert_eq!(crashed.abandoned, 1, "the batch crashed after its KlickTipp calls");
    assert!(rig.tags_of(email).contains(&DID_NOT_ATTEND.to_owned()));

    rig.deliver(&webinarjam(email, EventKind::Attended, 5)).await;
    rig.drain().await;
    assert_eq!(
        rig.tags_of(email),
        vec!["[WebinarJam] [Masterclass] Attended".to_owned(), "[WebinarJam] [Masterclass] Registered".to_owned()]
    );
    rig.simulator.shutdown().await;
}

/// The same stranding without a crash: a call whose every attempt timed out after KlickTipp had
/// applied it. `Consumer::execute` records in the applied view only the calls that answered, so
/// the saved view says "no tags" while KlickTipp holds "Did Not Attend"; once the attendance
/// arrives nothing removes it. Fixed by the same change.
#[tokio::test]
async fn a_tag_set_by_a_call_that_timed_out_is_removed_when_it_becomes_wrong() {
    let rig = Rig::new(Duration::from_millis(100)).await;
    // Log in and create the webinar's tags with a healthy account.
    rig.deliver(&webinarjam("warm.up@example.com", EventKind::NoShow, 90)).await;
    rig.drain().await;
    rig.deliver(&webinarjam("warm.up@example.com", EventKind::Attended, 5)).await;
    rig.drain().await;

    let email = "erika@example.com";
    rig.simulator.set_knobs(Knobs { fault_rate_timeout: 1.0, timeout_ms: 300, ..Knobs::default() });
    rig.deliver(&webinarjam(email, EventKind::NoShow, 90)).await;
    let timed_out = worker::process_one_batch(&rig.queue, &rig.consumer).await.expect("the queue works");
    assert_eq!(timed_out.retried, 1, "every attempt timed out");
    assert!(rig.tags_of(email).contains(&DID_NOT_ATTEND.to_owned()), "yet the upsert took effect");

    rig.simulator.set_knobs(Knobs::default());
    rig.deliver(&webinarjam(email, EventKind::Attended, 5)).await;
    rig.drain().await;
    assert!(!rig.tags_of(email).contains(&DID_NOT_ATTEND.to_owned()), "{:?}", rig.tags_of(email));
    rig.simulator.shutdown().await;
}

/// A tag whose creation ended in doubt is created a second time.
///
/// `TagResolver::resolve` claims the name in the directory and calls `create_tag`. If the first
/// `POST /tag` times out after KlickTipp created the tag and the look-ups of the retries fail as
/// well, the claim is left unrecorded. Once its 30 s lease has passed, the next `resolve` (in this
/// or any other process) takes the claim over, finds nothing in its once-per-process `GET /tag`
/// listing (fetched before the doubtful creation), and the first attempt of `create_tag` posts
/// the name again without looking: two tags of one name.
#[tokio::test]
async fn a_tag_whose_creation_timed_out_is_not_created_twice() {
    let simulator = klicktipp_sim::start(SimConfig::default(), "127.0.0.1:0").await.expect("start the simulator");
    let client = client(&simulator, Duration::from_millis(100));
    let clock = ManualClock::new(ManualClock::start());
    let resolver = TagResolver::new(Arc::new(MemoryTagDirectory::default()), client, clock.shared());

    // Logged in, and the account's (empty) tag listing cached.
    assert_eq!(resolver.existing(TAG).await.expect("list the tags"), None);

    // Every answer now comes too late: the creation happens, the client never learns of it.
    simulator.set_knobs(Knobs { fault_rate_timeout: 1.0, timeout_ms: 400, ..Knobs::default() });
    assert!(resolver.resolve(TAG).await.is_err(), "every attempt times out");
    assert_eq!(simulator.tags().values().filter(|name| name.as_str() == TAG).count(), 1);

    // KlickTipp recovers; the creation claim's lease runs out.
    simulator.set_knobs(Knobs::default());
    clock.advance(Duration::from_secs(31));
    resolver.resolve(TAG).await.expect("the tag resolves");
    let twins = simulator.tags().values().filter(|name| name.as_str() == TAG).count();
    assert_eq!(twins, 1, "the tag was created {twins} times");
    simulator.shutdown().await;
}

/// A crash after an untag strands a re-registration without its tag (the moto quick soak, about
/// one run in three).
///
/// Sequence: the contact is Registered. Its cancellation is applied (`POST /subscriber/tag`
/// "Cancelled", `POST /subscriber/untag` "Registered") and the process crashes at
/// `CrashPoint::AfterKlickTippBeforeSave`: the write-ahead record holds the cancelled state, but
/// its applied view still says "Registered" is set. The re-registration arrives before the
/// redelivery, and the redelivered batch merges both: the desired tags ("Registered") equal the
/// stale applied view, so nothing is tagged, and "Cancelled" (set but unconfirmed) is untagged:
/// the contact ends with no tag at all. Fixed in `consume.rs`: a tag the stored state no longer
/// wanted while the applied view still held it may be gone, so it is set again when wanted.
#[tokio::test]
async fn a_crash_after_an_untag_does_not_strand_a_re_registration_without_its_tag() {
    let rig = Rig::new(Duration::from_secs(5)).await;
    let email = "erika@example.com";
    let registered = "[WebinarJam] [Masterclass] Registered".to_owned();
    rig.deliver(&webinarjam(email, EventKind::Registered, -60)).await;
    rig.drain().await;
    assert_eq!(rig.tags_of(email), vec![registered.clone()]);

    rig.crash_next_save.store(true, Ordering::SeqCst);
    rig.deliver(&webinarjam(email, EventKind::Cancelled, -30)).await;
    let crashed = worker::process_one_batch(&rig.queue, &rig.consumer).await.expect("the queue works");
    assert_eq!(crashed.abandoned, 1, "the batch crashed after its KlickTipp calls");
    assert_eq!(rig.tags_of(email), vec!["[WebinarJam] [Masterclass] Cancelled".to_owned()]);

    let mut again = webinarjam(email, EventKind::Registered, -10);
    again.event_id = EventId::from_sender(&format!("{email}-registered-again")).expect("a valid id");
    rig.deliver(&again).await;
    rig.drain().await;
    assert_eq!(rig.tags_of(email), vec![registered], "the re-registration's tag is set");
    rig.simulator.shutdown().await;
}
