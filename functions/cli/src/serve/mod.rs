//! `webinar-bridge serve`: ingest over HTTP and the consumer loop in one process, sharing one
//! SQLite file, until Ctrl-C or SIGTERM.

mod banner;
mod edge;
mod reconcile;

use crate::{exit, http, wiring};
use anyhow::Context as _;
use klicktipp_sim::Simulator;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{Notify, watch};
use webinar_bridge::adapters::memory::QueueSettings;
use webinar_bridge::adapters::sqlite::SqliteDb;
use webinar_bridge::config::BridgeConfig;
use webinar_bridge::consume::{ApplyMode, Consumer};
use webinar_bridge::ingest::Ingest;
use webinar_bridge::ports::{EventQueue, SystemClock};
use webinar_bridge::worker;

/// How often an idle consumer looks for new messages (another process's, delayed retries); an
/// enqueue by this process's ingest wakes it at once.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// How often expired event records, old dead letters and dedup ids are purged from the database.
const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address of the webhook HTTP server (port 0 picks a free port; the URLs printed show it).
    #[arg(long, default_value = "127.0.0.1:3000", value_name = "ADDR")]
    listen: String,
    /// Address of the in-process KlickTipp simulator, used only without KlickTipp credentials.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    simulator_listen: String,
    /// Seconds a message being processed (and its event claim) stays reserved. After a crash the
    /// next run picks the unfinished work up once this has passed.
    #[arg(long, default_value_t = 60, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    visibility_timeout: u64,
    /// Open HTTP connections at most. At the cap the longest-idle connection is closed to make
    /// room; only when all have a request in flight is a new one refused with 503. Lowered to
    /// `ulimit -n` minus 128 when the open-file limit is smaller.
    #[arg(long, env = "BRIDGE_MAX_CONNECTIONS", default_value_t = 512, value_name = "N", value_parser = parse_max_connections)]
    max_connections: u64,
    /// Seconds a client has to send the request line and headers, counted from when the
    /// connection opened or its previous response was sent.
    #[arg(long, default_value_t = 10, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=300))]
    header_timeout: u64,
    /// Seconds a connection may stay open with no request in flight and nothing received.
    #[arg(long, default_value_t = 5, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=300))]
    idle_timeout: u64,
}

/// Names the variable too: the value may come from the environment.
fn parse_max_connections(raw: &str) -> Result<u64, String> {
    raw.trim().parse::<u64>().ok().filter(|count| (1..=65_536).contains(count)).ok_or_else(|| {
        "expected a whole number from 1 to 65536 (--max-connections or BRIDGE_MAX_CONNECTIONS)".to_owned()
    })
}

impl ServeArgs {
    fn limits(&self) -> edge::Limits {
        let requested = usize::try_from(self.max_connections).unwrap_or(usize::MAX);
        let (max_connections, open_file_limit) = edge::cap_under_open_file_limit(requested);
        if let Some(open_file_limit) = open_file_limit {
            tracing::warn!(
                requested,
                max_connections,
                open_file_limit,
                "--max-connections lowered to stay under the open-file limit (raise `ulimit -n` to allow more)"
            );
        }
        edge::Limits {
            max_connections,
            header_read_timeout: Duration::from_secs(self.header_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
        }
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = wiring::load_config()?;
    let pipeline = Pipeline::build(&config, &args).await?;
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", args.listen))?;
    let address = listener.local_addr().context("the listener has no local address")?;
    let signals = ShutdownSignals::install()?;
    banner::print(address, &config, pipeline.simulator.as_ref());
    tracing::info!(%address, mode = ?pipeline.mode, simulator = pipeline.simulator.is_some(), console = pipeline.console.is_some(), "serving");
    if pipeline.console.is_some() {
        println!("Console:   http://{address}/console (sign in with BRIDGE_CONSOLE_TOKEN)");
    }

    let limits = args.limits();
    tracing::info!(
        max_connections = limits.max_connections,
        header_timeout_s = args.header_timeout,
        idle_timeout_s = args.idle_timeout,
        "HTTP limits"
    );
    let simulator = pipeline.run_until(listener, limits, signals).await?;
    if let Some(simulator) = simulator {
        simulator.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Ingest and consumer on one SQLite file, and the simulator when it stands in for KlickTipp.
struct Pipeline {
    ingest: Ingest,
    consumer: Arc<Consumer>,
    queue: Arc<dyn EventQueue>,
    /// Notified by every enqueue of `ingest`: the consumer loop starts at once.
    wake: Arc<Notify>,
    mode: ApplyMode,
    simulator: Option<Simulator>,
    /// Purged periodically so the file stops growing (`BRIDGE_EVENT_RETENTION_DAYS`).
    db: SqliteDb,
    retention: Duration,
    dedup_window: Duration,
    /// Where reconciliation remembers its done sessions (the same database file).
    db_path: std::path::PathBuf,
    platforms: webinar_bridge::platforms::config::PlatformConfig,
    /// Zoom's ended occurrences (ingest records, reconciliation reads; a record wakes it).
    zoom_ledger: Arc<reconcile::WakingZoomLedger>,
    /// The web console's parts when `BRIDGE_CONSOLE_TOKEN` is set.
    console: Option<crate::console::ConsoleParts>,
    /// Tags ahead for the webinars reconciliation lists (`BRIDGE_TAGS_AHEAD`, Management mode).
    listed_webinars: Option<Arc<webinar_bridge::tags_ahead::ListedWebinars>>,
}

impl Pipeline {
    async fn build(config: &BridgeConfig, args: &ServeArgs) -> anyhow::Result<Self> {
        let db = SqliteDb::open(&config.db_path).map_err(|error| {
            exit::unusable(format!("BRIDGE_DB: cannot open the database {}: {error}", config.db_path.display()))
        })?;
        let target = wiring::klicktipp_target(config, &args.simulator_listen).await?;
        // The claim lease equals the visibility timeout, so a message redelivered after a crash
        // finds its claim expired and is taken over, instead of being retried into the dead letters.
        let reservation = Duration::from_secs(args.visibility_timeout);
        // As many receives as the deployed queue: a KlickTipp outage of hours is ridden out.
        let queue_settings = QueueSettings {
            visibility_timeout: reservation,
            max_receive_count: webinar_bridge::consume::MAX_RECEIVE_COUNT,
            ..QueueSettings::default()
        };
        let mut ports = wiring::sqlite_ports(&db, queue_settings);
        webinar_bridge::tags_ahead::seed_webinar_settings(
            ports.webinar_settings.as_ref(),
            &config.webinar_settings_seed,
        )
        .await
        .context("cannot write BRIDGE_WEBINAR_SETTINGS to the database")?;
        let wake = Arc::new(Notify::new());
        ports.queue = Arc::new(worker::WakingQueue::new(ports.queue, Arc::clone(&wake)));
        let console =
            crate::console::token_from_env().map_err(exit::unusable)?.map(|token| crate::console::ConsoleParts {
                token,
                db: db.clone(),
                queue_settings,
                klicktipp: target.client.clone(),
                consumer: None,
                tag_template: config.settings.tag_template.clone(),
                // The store the consumer reads at every batch (wiring::assemble).
                settings: Some(Arc::clone(&ports.webinar_settings)),
                parked: None,
            });
        let listed_webinars = (config.tags_ahead && target.mode == webinar_bridge::consume::ApplyMode::Management)
            .then(|| {
                let resolver = webinar_bridge::tag_resolver::TagResolver::new(
                    Arc::clone(&ports.tags),
                    target.client.clone(),
                    Arc::new(SystemClock),
                );
                Arc::new(webinar_bridge::tags_ahead::ListedWebinars::new(
                    resolver,
                    config.settings.clone(),
                    Arc::clone(&ports.webinar_settings),
                ))
            });
        let options = wiring::consumer_options(config, target.mode, reservation);
        let (ingest, consumer) = wiring::assemble(&ports, target.client, config, options, Arc::new(SystemClock));
        let zoom_ledger = Arc::new(reconcile::open_zoom_ledger(&config.db_path).map_err(|error| {
            exit::unusable(format!("BRIDGE_DB: cannot open the database {}: {error}", config.db_path.display()))
        })?);
        let ingest = ingest.with_zoom_ledger(zoom_ledger.clone());
        let consumer = Arc::new(consumer);
        // The console reprocesses parked webhooks through this same ingest (queue, receipts, aliases).
        let console = console
            .map(|parts| parts.with_consumer(Arc::clone(&consumer)).with_parked(ports.parked.clone(), ingest.clone()));
        let platforms = webinar_bridge::platforms::config::PlatformConfig::from_env()
            .map_err(|error| exit::unusable(error.to_string()))?;
        Ok(Self {
            ingest,
            consumer,
            queue: ports.queue,
            wake,
            mode: target.mode,
            simulator: target.simulator,
            db,
            retention: config.retention,
            dedup_window: queue_settings.dedup_window,
            db_path: config.db_path.clone(),
            platforms,
            zoom_ledger,
            console,
            listed_webinars,
        })
    }

    /// Serves and consumes until a shutdown signal: then stops accepting, lets the batch in
    /// flight finish, and hands back the simulator (if any) to be shut down.
    async fn run_until(
        self,
        listener: TcpListener,
        limits: edge::Limits,
        signals: ShutdownSignals,
    ) -> anyhow::Result<Option<Simulator>> {
        let (stop, stopped) = watch::channel(false);
        let stop = Arc::new(stop);
        let purger = tokio::spawn(purge(self.db, self.retention, self.dedup_window, stopped.clone()));
        let reconciler = reconcile::spawn(
            &self.platforms,
            &self.db_path,
            self.queue.clone(),
            self.zoom_ledger,
            self.listed_webinars,
            stopped.clone(),
        )
        .context("cannot start automatic reconciliation")?;
        let worker = tokio::spawn(consume(self.queue, self.consumer, stopped, self.wake));
        let stop_on_signal = {
            let stop = Arc::clone(&stop);
            async move {
                signals.wait().await;
                tracing::info!("shutdown requested: no new requests; finishing the batch in flight");
                stop.send_replace(true);
            }
        };
        let router = match self.console {
            Some(console) => crate::console::router(console).merge(http::router(self.ingest)),
            None => http::router(self.ingest),
        };
        edge::serve(listener, router, limits, stop_on_signal).await;
        stop.send_replace(true);
        worker.await.context("the consumer loop panicked")?;
        purger.await.context("the purge task panicked")?;
        if let Some(reconciler) = reconciler {
            reconciler.await.context("the reconciliation loop panicked")?;
        }
        Ok(self.simulator)
    }
}

async fn consume(
    queue: Arc<dyn EventQueue>,
    consumer: Arc<Consumer>,
    stopped: watch::Receiver<bool>,
    wake: Arc<Notify>,
) {
    worker::run_woken(queue.as_ref(), consumer.as_ref(), stopped, IDLE_POLL, &wake).await;
}

/// Purges at start and every `PURGE_INTERVAL` until stopped; a failed purge is logged and tried
/// again next time (nothing depends on it but the file's size).
async fn purge(db: SqliteDb, retention: Duration, dedup_window: Duration, mut stopped: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(PURGE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
        match db.purge(chrono::Utc::now(), retention, dedup_window).await {
            Ok(purged) => tracing::info!(
                events = purged.events,
                dead_letters = purged.dead_letters,
                dedup_ids = purged.dedup_ids,
                history = purged.history,
                receipts = purged.receipts,
                "purged expired records"
            ),
            Err(error) => tracing::warn!(%error, "purging expired records failed; trying again later"),
        }
    }
}

/// Ctrl-C and SIGTERM, installed before anything is served so an early signal is not lost.
struct ShutdownSignals {
    terminate: Signal,
}

impl ShutdownSignals {
    fn install() -> anyhow::Result<Self> {
        Ok(Self { terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")? })
    }

    async fn wait(mut self) {
        tokio::select! {
            result = tokio::signal::ctrl_c() => {
                if let Err(error) = result {
                    // Without Ctrl-C handling SIGTERM still works; keep serving until it comes.
                    tracing::warn!(%error, "cannot listen for Ctrl-C");
                    self.terminate.recv().await;
                }
            }
            _ = self.terminate.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_connection_cap_names_the_flag_and_the_variable() {
        assert_eq!(parse_max_connections(" 64 "), Ok(64));
        for bad in ["0", "65537", "-1", "many", ""] {
            let error = parse_max_connections(bad).expect_err(bad);
            assert!(error.contains("BRIDGE_MAX_CONNECTIONS") && error.contains("--max-connections"), "{error}");
        }
    }
}
