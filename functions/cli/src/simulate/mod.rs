//! `webinar-bridge simulate <requests.jsonl>` (DESIGN 9): an offline replay. Recorded requests go
//! through the real ingest and consumer, in file order, with in-memory storage, a simulated clock
//! and the in-process KlickTipp simulator; one JSON report goes to stdout.
//!
//! Each request "arrives" at its `received_at`, else at the time its signing header carries
//! (so recorded Zoom and Standard Webhooks signatures still verify), else at a synthetic time:
//! 2026-01-01T00:00:00Z plus one second per line. The queue is drained only after the whole file
//! is fed; retry delays pass on the simulated clock, not in real time.

mod clock;
mod input;
mod platform;
mod report;

use crate::{exit, http, wiring};
use anyhow::Context as _;
use clock::ManualClock;
use input::RecordedRequest;
use klicktipp_sim::{DEFAULT_DOUBLE_OPTIN_LISTID, SINGLE_OPTIN_LISTID, Simulator};
use report::{EventCounts, KlickTippReport, Report, ResponseLine};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use webinar_bridge::adapters::memory::{MemoryQueue, QueueSettings};
use webinar_bridge::config::{BridgeConfig, KlickTippMode};
use webinar_bridge::consume::{ApplyMode, Consumer, ConsumerOptions};
use webinar_bridge::ingest::Ingest;
use webinar_bridge::klicktipp::KlickTippClient;
use webinar_bridge::ports::Clock as _;
use webinar_bridge::sources::MAX_BODY_BYTES;
use webinar_bridge::worker::{self, BatchSummary};

/// How far the clock moves when only delayed retries are left.
const RETRY_STEP: Duration = Duration::from_secs(1);
/// A replay whose retries have not settled after this much simulated time is stuck.
const MAX_SIMULATED_WAIT: Duration = Duration::from_secs(7 * 86_400);
/// Everything is fed before anything is consumed, so the queue remembers every id for the whole
/// replay: a repeat is dropped there (and counted as a duplicate) however far apart the two
/// arrivals are. SQS's five minutes would let both copies wait side by side in the queue.
const REPLAY_DEDUP_WINDOW: Duration = Duration::from_secs(3650 * 86_400);

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// The recorded requests, one JSON object per line.
    requests: PathBuf,
    /// What the platforms' APIs return (`platform.json`, DESIGN 11): after the requests, every
    /// session in it is reconciled as if it ended long ago, through the real API clients against
    /// an in-process platform simulator; the report gains a "platform" part.
    #[arg(long, value_name = "PLATFORM_JSON")]
    platform: Option<PathBuf>,
    /// How many times to reconcile (with --platform); later rounds show what a repeated pull
    /// costs (nothing new is enqueued, no KlickTipp call).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10), requires = "platform")]
    pull_rounds: u32,
}

pub async fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let config = wiring::load_config()?;
    let content = std::fs::read(&args.requests)
        .map_err(|error| exit::unusable(format!("cannot read {}: {error}", args.requests.display())))?;
    let requests = input::parse_file(&content).map_err(|error| exit::unusable(error.to_string()))?;

    let platform = match &args.platform {
        None => None,
        Some(path) => {
            let rate = webinar_bridge::platforms::config::PlatformConfig::from_env()?.rate_per_second;
            Some(
                platform::PlatformSide::start(path, rate)
                    .await
                    .map_err(|error| exit::unusable(format!("{error:#}")))?,
            )
        }
    };
    let simulator = start_simulator(&config).await?;
    let report = replay(&config, &simulator, &requests, platform.as_ref().map(|side| (side, args.pull_rounds))).await;
    simulator.shutdown().await;
    if let Some(side) = platform {
        side.sim.shutdown().await;
    }
    println!("{}", serde_json::to_string_pretty(&report?)?);
    Ok(ExitCode::SUCCESS)
}

/// The simulated account: the field map's custom fields and, in listbuilding mode, its key.
async fn start_simulator(config: &BridgeConfig) -> anyhow::Result<Simulator> {
    let mut account = wiring::simulator_config(&config.settings);
    if let Some(apikey) = &config.klicktipp.listbuilding_apikey {
        account = wiring::with_listbuilding_key(account, apikey);
    }
    wiring::start_simulator(account, "127.0.0.1:0").await
}

async fn replay(
    config: &BridgeConfig,
    simulator: &Simulator,
    requests: &[RecordedRequest],
    platform: Option<(&platform::PlatformSide, u32)>,
) -> anyhow::Result<Report> {
    let first_arrival = requests.iter().map(|recorded| recorded.request.received_at).min().unwrap_or_default();
    let clock = Arc::new(ManualClock::new(first_arrival));
    let queue_settings = QueueSettings { dedup_window: REPLAY_DEDUP_WINDOW, ..QueueSettings::default() };
    let (ports, queue) = wiring::memory_ports(queue_settings, clock.clone());
    let (ingest, consumer) =
        wiring::assemble(&ports, simulated_client(config, simulator)?, config, replay_options(config), clock.clone());
    // The mapping, listid and filter of BRIDGE_WEBINAR_SETTINGS shape the replay; tags ahead do
    // not: simulate shows what each event costs, not a one-off set-up step.
    let consumer = consumer.with_webinar_settings(Arc::clone(&ports.webinar_settings), false);
    webinar_bridge::tags_ahead::seed_webinar_settings(ports.webinar_settings.as_ref(), &config.webinar_settings_seed)
        .await?;

    let fed = feed(&ingest, &queue, &clock, requests).await;
    let last_arrival = requests.iter().map(|recorded| recorded.request.received_at).max().unwrap_or_default();
    clock.set(last_arrival);
    let mut consumed = drain(&queue, &consumer, &clock).await?;
    let (mut accepted, mut dropped_by_queue) = (fed.accepted, fed.dropped_by_queue);
    let mut platform_report = None;
    if let Some((side, rounds)) = platform {
        // "As if it ended long ago": a day after the last request.
        clock.set(last_arrival + chrono::Duration::days(1));
        let mut round_reports = Vec::new();
        for _ in 0..rounds {
            let events = side.pull_everything(clock.now()).await?;
            let pending_before = queue.pending();
            webinar_bridge::platforms::pull::enqueue(&queue, &events).await.context("the in-memory queue failed")?;
            let enqueued = queue.pending().saturating_sub(pending_before);
            let calls_before = simulator.total_calls();
            let round = drain(&queue, &consumer, &clock).await?;
            consumed.add(&round);
            accepted += events.len();
            dropped_by_queue += events.len().saturating_sub(enqueued);
            round_reports.push(platform::RoundReport {
                pulled_events: events.len(),
                enqueued,
                applied: round.applied,
                klicktipp_calls: simulator.total_calls().saturating_sub(calls_before),
            });
        }
        platform_report = Some(platform::PlatformReport::new(side.puller.call_log().snapshot(), round_reports));
    }
    Ok(Report {
        responses: fed.responses,
        events: EventCounts::new(accepted, dropped_by_queue, &consumed, queue.dead_letters().len()),
        klicktipp: KlickTippReport::of(simulator),
        platform: platform_report,
    })
}

/// The simulator's own credentials, whatever the environment holds: a replay never reaches the
/// real KlickTipp. Unlimited rate, since the simulator is in-process and no one else shares it.
fn simulated_client(config: &BridgeConfig, simulator: &Simulator) -> anyhow::Result<KlickTippClient> {
    let mut client = wiring::simulator_client_config(simulator, 0.0);
    client.listbuilding_apikey = config.klicktipp.listbuilding_apikey.clone();
    wiring::client(client)
}

/// One contact at a time, so the batches, and with them the call counts, are the same on
/// every run.
fn replay_options(config: &BridgeConfig) -> ConsumerOptions {
    let mode = match config.klicktipp.mode() {
        KlickTippMode::Listbuilding => ApplyMode::Listbuilding,
        KlickTippMode::Management | KlickTippMode::Unconfigured => ApplyMode::Management,
    };
    let defaults = wiring::consumer_options(config, mode, ConsumerOptions::default().lease);
    ConsumerOptions { group_concurrency: 1, listid: simulated_listid(config), ..defaults }
}

/// The simulated account has only KlickTipp's two standard opt-in processes.
fn simulated_listid(config: &BridgeConfig) -> Option<u64> {
    let listid = config.klicktipp.listid?;
    if [DEFAULT_DOUBLE_OPTIN_LISTID, SINGLE_OPTIN_LISTID].contains(&listid) {
        return Some(listid);
    }
    tracing::warn!(listid, "KLICKTIPP_LISTID is not an opt-in process of the simulated account; using its default");
    None
}

struct Fed {
    responses: Vec<ResponseLine>,
    accepted: usize,
    dropped_by_queue: usize,
}

/// Ingests every request at its arrival time. Nothing consumes meanwhile, so the queue's growth
/// tells how many accepted events were new to it.
async fn feed(ingest: &Ingest, queue: &MemoryQueue, clock: &ManualClock, requests: &[RecordedRequest]) -> Fed {
    let mut fed = Fed { responses: Vec::with_capacity(requests.len()), accepted: 0, dropped_by_queue: 0 };
    for recorded in requests {
        clock.set(recorded.request.received_at);
        let pending_before = queue.pending();
        // As `serve` does: an oversized body is refused before anything looks at it.
        let response = if recorded.request.body.len() > MAX_BODY_BYTES {
            http::oversized_body()
        } else {
            ingest.handle(&recorded.request).await
        };
        let accepted = report::accepted_events(&response);
        let enqueued = queue.pending().saturating_sub(pending_before);
        fed.accepted += accepted;
        fed.dropped_by_queue += accepted.saturating_sub(enqueued);
        fed.responses.push(ResponseLine { line: recorded.line, status: response.status, body: response.body });
    }
    fed
}

/// Consumes until nothing is pending (dead letters are not pending), moving the clock past
/// retry delays instead of waiting for them.
async fn drain(queue: &MemoryQueue, consumer: &Consumer, clock: &ManualClock) -> anyhow::Result<BatchSummary> {
    let mut total = BatchSummary::default();
    let mut waited = Duration::ZERO;
    while queue.pending() > 0 {
        let batch = worker::process_one_batch(queue, consumer).await.context("the in-memory queue failed")?;
        total.add(&batch);
        if batch.received == 0 {
            anyhow::ensure!(waited < MAX_SIMULATED_WAIT, "the replay did not settle within a week of simulated time");
            clock.advance(RETRY_STEP);
            waited += RETRY_STEP;
        }
    }
    Ok(total)
}
