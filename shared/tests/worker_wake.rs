//! The embedded consumer loop wakes on an enqueue in its own process (`WakingQueue`), and still
//! finds work another process enqueued through its idle poll. Against the real simulator.

mod common;

use common::event_for;
use klicktipp_sim::{SimConfig, Simulator};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use webinar_bridge::Secret;
use webinar_bridge::adapters::memory::{MemoryContactStore, MemoryEventLog, MemoryQueue, MemoryTagDirectory};
use webinar_bridge::consume::{Consumer, ConsumerOptions};
use webinar_bridge::domain::{EventKind::Registered, Settings};
use webinar_bridge::ingest::to_message;
use webinar_bridge::klicktipp::{KlickTippAuth, KlickTippClient, KlickTippConfig};
use webinar_bridge::ports::{EventQueue, SystemClock};
use webinar_bridge::tag_resolver::TagResolver;
use webinar_bridge::worker::{WakingQueue, run_woken};

/// Far longer than any test may wait: a loop that only polls would never be seen to pick up.
const NEVER: Duration = Duration::from_secs(3600);
/// The bound of every wait here.
const PATIENCE: Duration = Duration::from_secs(30);

async fn consumer(sim: &Simulator) -> Consumer {
    let auth = KlickTippAuth::Session { username: "bridge".into(), password: Secret::new("sim-password") };
    let mut config = KlickTippConfig::new(sim.url(), auth);
    config.rate_per_second = 0.0;
    let client = KlickTippClient::new(config).expect("client");
    let clock = Arc::new(SystemClock);
    let tags = TagResolver::new(Arc::new(MemoryTagDirectory::default()), client.clone(), clock.clone());
    Consumer::new(
        Arc::new(MemoryEventLog::default()),
        Arc::new(MemoryContactStore::default()),
        tags,
        client,
        Settings::default(),
        ConsumerOptions::default(),
        clock,
    )
}

async fn wait_for_contact(sim: &Simulator, email: &str) -> bool {
    let waited = tokio::time::timeout(PATIENCE, async {
        while !sim.contacts().iter().any(|contact| contact.email == email) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    waited.is_ok()
}

/// Starts the loop on `queue` (idle poll `idle_wait`), woken by `wake`.
fn start_loop(
    queue: Arc<dyn EventQueue>,
    consumer: Consumer,
    idle_wait: Duration,
    wake: Arc<Notify>,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = watch::channel(false);
    let task =
        tokio::spawn(async move { run_woken(queue.as_ref(), &consumer, stopped, idle_wait, wake.as_ref()).await });
    (stop, task)
}

#[tokio::test]
async fn an_enqueue_in_the_same_process_wakes_the_idle_loop() {
    let sim = klicktipp_sim::start(SimConfig::default(), "127.0.0.1:0").await.expect("simulator starts");
    let wake = Arc::new(Notify::new());
    let queue: Arc<dyn EventQueue> = Arc::new(WakingQueue::new(Arc::new(MemoryQueue::default()), Arc::clone(&wake)));
    let (stop, task) = start_loop(Arc::clone(&queue), consumer(&sim).await, NEVER, wake);
    for (round, email) in ["first@example.com", "second@example.com"].into_iter().enumerate() {
        // Let the loop find the queue empty and go to sleep for (what would be) an hour.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let message = to_message(&event_for(email, "w1", Registered, 0)).expect("serializable");
        queue.send(&[message]).await.expect("send");
        assert!(wait_for_contact(&sim, email).await, "round {round}: the loop did not wake for {email}");
    }
    stop.send_replace(true);
    task.await.expect("the loop ends on stop");
    sim.shutdown().await;
}

#[tokio::test]
async fn messages_from_another_process_are_found_by_the_idle_poll() {
    let sim = klicktipp_sim::start(SimConfig::default(), "127.0.0.1:0").await.expect("simulator starts");
    let shared = MemoryQueue::default();
    let wake = Arc::new(Notify::new());
    let ours: Arc<dyn EventQueue> = Arc::new(WakingQueue::new(Arc::new(shared.clone()), Arc::clone(&wake)));
    let (stop, task) = start_loop(ours, consumer(&sim).await, Duration::from_millis(20), wake);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Sent past the waking wrapper, as a second process on the same file would.
    let message = to_message(&event_for("other@example.com", "w1", Registered, 0)).expect("serializable");
    shared.send(&[message]).await.expect("send");
    assert!(wait_for_contact(&sim, "other@example.com").await, "the idle poll did not find the message");
    stop.send_replace(true);
    task.await.expect("the loop ends on stop");
    sim.shutdown().await;
}
