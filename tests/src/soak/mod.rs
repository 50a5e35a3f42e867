//! The chaos soak (issue 8, DESIGN 10 "convergence"): a seeded webinar log with duplicates and
//! reordering goes through the real ingest from several tasks, a fleet of consumers drains it
//! against the KlickTipp simulator while faults are injected (5xx, HTML 502, 429 with and
//! without `Retry-After`, ambiguous timeouts, session expiry, error 12, permanent refusals,
//! crashes around the state write), and then everything is checked:
//!
//! - every accepted event id has exactly one final outcome (event log or dead-letter store);
//! - KlickTipp's final state equals the oracle (`crate::oracle`) for every contact;
//! - no effect happened twice (tag created twice, duplicate contact, untag of a tag never set);
//!   redundant but harmless calls are counted apart.
//!
//! [`run`] is the library entry (the quick CI test calls it); `src/bin/soak.rs` is the command.
//! Install [`client_fault_layer`] in the process's tracing subscriber, or timeouts and error 12
//! cannot be counted.

mod chaos;
mod client_faults;
mod config;
mod deliver;
mod effects;
mod fleet;
pub mod platform;
mod report;
mod storage;
mod verify;
mod workload;

pub use client_faults::{ClientFaultLayer, client_fault_layer};
pub use config::{BackendKind, ChaosSettings, SoakConfig};
pub use report::{Details, FaultsInjected, SoakReport};
pub use workload::Workload;

use chaos::{CrashInjector, PhaseLog};
use client_faults::ClientFaults;
use deliver::{DeliveryReport, RecordingQueue};
use fleet::FleetReport;
use klicktipp_sim::{SimConfig, Simulator};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::Storage;
use tokio::sync::watch;
use webinar_bridge::adapters::memory::QueueSettings;
use webinar_bridge::ingest::Ingest;

/// SQS FIFO's deduplication window.
const SQS_DEDUP_WINDOW: Duration = Duration::from_secs(300);
/// How often the drain is checked.
const DRAIN_POLL: Duration = Duration::from_millis(200);

/// Runs are serialized per process: the client-fault tally is process-wide.
static ONE_RUN_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What the run produced, before verification.
struct Run {
    simulator: Simulator,
    storage: Storage,
    delivery: DeliveryReport,
    recording: RecordingQueue,
    fleet: FleetReport,
    phases: PhaseLog,
    crashes: Arc<CrashInjector>,
    client_faults: Arc<ClientFaults>,
    wall: Duration,
    timed_out: bool,
    dropped_webhooks: usize,
    reconcile: Option<platform::ReconcileFigures>,
}

/// One soak run: generate, deliver, drain under chaos, verify.
pub async fn run(config: &SoakConfig) -> anyhow::Result<SoakReport> {
    let _one_run = ONE_RUN_AT_A_TIME.lock().await;
    let mut workload = Workload::for_config(config);
    let refused = workload.pick_addresses(config.chaos.rejected_contacts, config.seed);
    let requests = std::mem::take(&mut workload.requests);
    let (requests, dropped) = platform::drop_webhooks(requests, config.drop_webhooks, config.seed);
    let run = drive(config, requests, &workload, &refused).await;
    client_faults::stop_tally();
    let mut run = run?;
    run.dropped_webhooks = dropped;
    let report = verify(config, &workload, &refused, &run).await;
    run.simulator.shutdown().await;
    report
}

async fn drive(
    config: &SoakConfig,
    requests: Vec<webinar_bridge::sources::RawRequest>,
    workload: &Workload,
    refused: &[String],
) -> anyhow::Result<Run> {
    let simulator = klicktipp_sim::start(simulator_config(config), "127.0.0.1:0").await?;
    let dedup_window = match config.backend {
        BackendKind::Sqlite => config.queue_dedup_window,
        BackendKind::Aws => SQS_DEDUP_WINDOW,
    };
    let queue_settings = QueueSettings {
        visibility_timeout: config.visibility_timeout,
        max_receive_count: config.max_receive_count,
        dedup_window,
    };
    let storage = Storage::open(config.backend, queue_settings).await?;
    let client_faults = client_faults::start_tally(config.chaos.client_timeout);
    let crashes = CrashInjector::new(&config.chaos, config.seed);
    let (stop, stopped) = watch::channel(false);

    let started = Instant::now();
    let chaos = chaos::start_cycling(&simulator, config, refused, stopped.clone());
    let fleet = fleet::start(config, &storage, &simulator.url(), &crashes, &stopped)?;
    let recording = RecordingQueue::new(storage.ports()?.queue);
    let ingest = Ingest::new(Arc::new(recording.clone()), workload.secrets.clone());
    let mut delivery = deliver::deliver(ingest, requests, config.ingest_tasks, config.delivery_rate).await;
    let reconcile = if config.reconcile {
        let figures = platform::reconcile(&recording, &workload.log, config.seed).await?;
        // What reconciliation enqueued is accepted too: each needs exactly one outcome.
        delivery.accepted_ids.extend(recording.documents()?.into_keys());
        Some(figures)
    } else {
        None
    };
    let timed_out = !drained(&storage, started, config.time_limit).await;
    let _ = stop.send(true);
    let fleet = fleet::join(fleet).await;
    let phases = chaos.await?;
    let wall = started.elapsed();
    Ok(Run {
        simulator,
        storage,
        delivery,
        recording,
        fleet,
        phases,
        crashes,
        client_faults,
        wall,
        timed_out,
        dropped_webhooks: 0,
        reconcile,
    })
}

/// The simulator's account; with `refused_fields`, the field the webinar name is mapped to
/// ([`fleet::REFUSED_FIELD`]) takes numbers only, so KlickTipp refuses every contact's value.
fn simulator_config(config: &SoakConfig) -> SimConfig {
    let sim = SimConfig::default();
    if config.refused_fields {
        sim.with_custom_field(fleet::REFUSED_FIELD, "Webinar Name", klicktipp_sim::FieldType::Number)
    } else {
        sim
    }
}

/// Waits until the queue holds nothing (every message acknowledged or dead-lettered); false when
/// the time limit came first.
async fn drained(storage: &Storage, started: Instant, limit: Duration) -> bool {
    loop {
        if matches!(storage.pending().await, Ok(0)) {
            return true;
        }
        if started.elapsed() >= limit {
            return false;
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

async fn verify(config: &SoakConfig, workload: &Workload, refused: &[String], run: &Run) -> anyhow::Result<SoakReport> {
    let (dead_letters, dead_letter_messages) = run.storage.dead_letters().await?;
    let log = run.storage.ports()?.log;
    let outcomes = verify::outcomes(log, &run.delivery.accepted_ids, &dead_letters).await?;
    let counts = verify::count(&outcomes);
    let documents = run.recording.documents()?;
    let refused: BTreeSet<String> = refused.iter().cloned().collect();
    let convergence = verify::convergence(&run.simulator, &documents, &outcomes, &refused);
    let (duplicates, redundant) = effects::examine(&run.simulator);
    let calls = run.simulator.request_log();
    let faults = faults_injected(&calls, config.consumers, &run.phases, &run.crashes, &run.client_faults);
    let wall_seconds = run.wall.as_secs_f64();
    let fleet = &run.fleet;
    let ground_truth_differences = ground_truth_differences(workload, &documents, &refused);
    Ok(SoakReport {
        events: run.delivery.requests,
        accepted: run.delivery.accepted_ids.len(),
        lost: counts.lost + counts.twice,
        mismatched_contacts: convergence.mismatched,
        duplicate_effects: duplicates.total(),
        redundant_calls: redundant.total(),
        dead_lettered: counts.dead_lettered,
        rejected: counts.rejected,
        faults_injected: faults,
        klicktipp_calls: calls.len(),
        wall_seconds: (wall_seconds * 10.0).round() / 10.0,
        backend: config.backend.name().to_owned(),
        details: Details {
            seed: config.seed,
            consumers: config.consumers,
            ingest_tasks: config.ingest_tasks,
            rps: config.rps,
            lease_ms: millis(config.lease),
            visibility_timeout_ms: millis(config.visibility_timeout),
            max_receive_count: config.max_receive_count,
            accepted_deliveries: run.delivery.accepted_deliveries,
            ignored_requests: run.delivery.ignored,
            refused_requests: run.delivery.refused.values().sum(),
            contacts: workload.emails.len(),
            refused_addresses: refused.len(),
            outcomes: counts,
            dead_letter_messages,
            requests_by_kind: workload.requests_by_kind.clone(),
            reregistrations: workload.reregistrations,
            refused_fields: config.refused_fields,
            genesis_reregistration: config.genesis_reregistration,
            duplicate_deliveries_seen_by_consumers: fleet.summary.duplicates,
            redelivered_or_retried: fleet.summary.retried,
            abandoned_by_crashes: fleet.summary.abandoned,
            batches: fleet.batches,
            batches_over_lease: fleet.batches_over_lease,
            slowest_batch_ms: millis(fleet.slowest_batch),
            queue_errors: fleet.queue_errors,
            calls_by_endpoint: run.simulator.calls_by_endpoint(),
            refused_for_dead_session: calls.iter().filter(|call| call.status == 403).count(),
            calls_per_second: (calls.len() as f64 / wall_seconds.max(0.001) * 10.0).round() / 10.0,
            ground_truth_differences,
            duplicate_effect_details: duplicates,
            tag_creations_answered_200_twice: effects::creations_answered_200_twice(&run.simulator),
            redundant_call_details: redundant,
            convergence,
            timed_out: run.timed_out,
            dropped_webhooks: run.dropped_webhooks,
            reconcile: run.reconcile.clone(),
        },
    })
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Server-side counts where the simulator's answer names the fault; the client's tally for
/// timeouts and error 12, which only the client can tell apart.
fn faults_injected(
    calls: &[klicktipp_sim::LoggedRequest],
    consumers: usize,
    phases: &PhaseLog,
    crashes: &CrashInjector,
    client: &ClientFaults,
) -> FaultsInjected {
    let with_status = |status: u16| calls.iter().filter(|call| call.status == status).count() as u64;
    let logins =
        calls.iter().filter(|call| call.endpoint == "POST /account/login" && call.status == 200).count() as u64;
    let retry_after_429 =
        calls.iter().enumerate().filter(|(index, call)| call.status == 429 && phases.retry_after_at(*index)).count();
    FaultsInjected {
        http_500: with_status(500),
        http_502: with_status(502),
        http_429: with_status(429),
        http_429_retry_after: retry_after_429 as u64,
        timeouts: ClientFaults::get(&client.timeouts),
        // Each consumer logs in once; every further login renewed a session that had expired
        // (its calls were refused with 403).
        session_expiries: logins.saturating_sub(consumers as u64),
        error_12: ClientFaults::get(&client.error_12),
        error_in_200: ClientFaults::get(&client.error_in_200),
        crashes_before_save: crashes.crashes_before_save(),
        crashes_before_complete: crashes.crashes_before_complete(),
    }
}

/// Contacts (KlickTipp did not refuse) whose oracle tags over the accepted documents differ from
/// the generator's ground truth: zero unless ingest parsed something wrongly.
fn ground_truth_differences(
    workload: &Workload,
    documents: &std::collections::BTreeMap<String, webinar_bridge::domain::WebinarEvent>,
    refused: &BTreeSet<String>,
) -> usize {
    let events: Vec<_> = documents.values().cloned().collect();
    let expected = crate::oracle::expected_contacts(&events);
    workload
        .ground_truth
        .iter()
        .filter(|(email, _)| !refused.contains(*email))
        .filter(|(email, tags)| expected.get(*email).map(|contact| &contact.tags) != Some(tags))
        .count()
}
