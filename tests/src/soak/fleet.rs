//! The consumer fleet: several instances draining one queue, as several Lambda instances (or
//! several `serve` processes on one file) would. Each has its own KlickTipp client (its share of
//! the rate cap, its own session), its own tag resolver and its own storage handles, and all of
//! them may crash at the hook's points.

use super::chaos::CrashInjector;
use super::config::SoakConfig;
use super::storage::Storage;
use crate::harness::{SIM_PASSWORD, SIM_USERNAME};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use webinar_bridge::Secret;
use webinar_bridge::consume::{Consumer, ConsumerOptions};
use webinar_bridge::domain::{FieldMap, Settings};
use webinar_bridge::klicktipp::{KlickTippAuth, KlickTippClient, KlickTippConfig};
use webinar_bridge::ports::{Clock, EventQueue, SystemClock};
use webinar_bridge::tag_resolver::TagResolver;
use webinar_bridge::worker::{self, BatchSummary};

/// With `SoakConfig::refused_fields`: the number field the webinar name is mapped to.
pub const REFUSED_FIELD: &str = "field101";

/// How long an idle instance waits before asking the queue again.
const IDLE_WAIT: Duration = Duration::from_millis(25);
/// After a queue error, back off longer.
const ERROR_WAIT: Duration = Duration::from_millis(200);

/// What the fleet did.
#[derive(Debug, Clone, Default)]
pub struct FleetReport {
    pub summary: BatchSummary,
    pub batches: usize,
    pub queue_errors: usize,
    pub slowest_batch: Duration,
    /// Batches that took longer than the claim lease: work a redelivery could have overlapped.
    pub batches_over_lease: usize,
}

impl FleetReport {
    fn merge(&mut self, other: &FleetReport) {
        self.summary.add(&other.summary);
        self.batches += other.batches;
        self.queue_errors += other.queue_errors;
        self.slowest_batch = self.slowest_batch.max(other.slowest_batch);
        self.batches_over_lease += other.batches_over_lease;
    }
}

/// One consumer instance against the simulator at `klicktipp_url`.
fn consumer(
    config: &SoakConfig,
    storage: &Storage,
    klicktipp_url: &str,
    crashes: &Arc<CrashInjector>,
) -> anyhow::Result<(Arc<dyn EventQueue>, Consumer)> {
    let ports = storage.ports()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let auth = KlickTippAuth::Session { username: SIM_USERNAME.to_owned(), password: Secret::new(SIM_PASSWORD) };
    let mut klicktipp = KlickTippConfig::new(klicktipp_url, auth);
    klicktipp.rate_per_second = config.rps_per_consumer();
    klicktipp.request_timeout = config.chaos.client_timeout;
    klicktipp.max_attempts = config.client_max_attempts;
    klicktipp.backoff_base = config.client_backoff_base;
    let client = KlickTippClient::new(klicktipp)?;
    let resolver = TagResolver::new(ports.tags, client.clone(), Arc::clone(&clock));
    let options = ConsumerOptions {
        lease: config.lease,
        retention: Duration::from_secs(86_400),
        retry_base: config.retry_base,
        retry_cap: config.retry_cap,
        ..ConsumerOptions::default()
    };
    let consumer = Consumer::new(ports.log, ports.contacts, resolver, client, settings(config)?, options, clock)
        .with_crash_hook(crashes.hook());
    Ok((ports.queue, consumer))
}

/// The default settings; with `refused_fields` the webinar name also goes to a number field.
fn settings(config: &SoakConfig) -> anyhow::Result<Settings> {
    if !config.refused_fields {
        return Ok(Settings::default());
    }
    let map =
        format!(r#"{{"first_name":"fieldFirstName","last_name":"fieldLastName","webinar_name":"{REFUSED_FIELD}"}}"#);
    Ok(Settings { field_map: FieldMap::parse_json(&map)?, ..Settings::default() })
}

/// Starts `config.consumers` instances; they run until `stop` turns true.
pub fn start(
    config: &SoakConfig,
    storage: &Storage,
    klicktipp_url: &str,
    crashes: &Arc<CrashInjector>,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinSet<FleetReport>> {
    let mut fleet = tokio::task::JoinSet::new();
    for _ in 0..config.consumers.max(1) {
        let (queue, consumer) = consumer(config, storage, klicktipp_url, crashes)?;
        fleet.spawn(run_instance(queue, consumer, stop.clone(), config.lease));
    }
    Ok(fleet)
}

/// Waits for every instance and adds up their reports.
pub async fn join(mut fleet: tokio::task::JoinSet<FleetReport>) -> FleetReport {
    let mut total = FleetReport::default();
    while let Some(instance) = fleet.join_next().await {
        total.merge(&instance.expect("a consumer instance never panics"));
    }
    total
}

async fn run_instance(
    queue: Arc<dyn EventQueue>,
    consumer: Consumer,
    stop: watch::Receiver<bool>,
    lease: Duration,
) -> FleetReport {
    let mut report = FleetReport::default();
    while !*stop.borrow() {
        let started = Instant::now();
        match worker::process_one_batch(queue.as_ref(), &consumer).await {
            Ok(batch) if batch.received > 0 => {
                let took = started.elapsed();
                report.summary.add(&batch);
                report.batches += 1;
                report.slowest_batch = report.slowest_batch.max(took);
                report.batches_over_lease += usize::from(took > lease);
            }
            Ok(_) => tokio::time::sleep(IDLE_WAIT).await,
            Err(error) => {
                tracing::warn!(%error, "soak consumer: queue error");
                report.queue_errors += 1;
                tokio::time::sleep(ERROR_WAIT).await;
            }
        }
    }
    report
}
