//! `webinar-bridge serve`: ingest over HTTP and the consumer loop in one process, sharing one
//! SQLite file, until Ctrl-C or SIGTERM.

mod banner;

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
    tracing::info!(%address, mode = ?pipeline.mode, simulator = pipeline.simulator.is_some(), "serving");

    let simulator = pipeline.run_until(listener, signals).await?;
    if let Some(simulator) = simulator {
        simulator.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Ingest and consumer on one SQLite file, and the simulator when it stands in for KlickTipp.
struct Pipeline {
    ingest: Ingest,
    consumer: Consumer,
    queue: Arc<dyn EventQueue>,
    /// Notified by every enqueue of `ingest`: the consumer loop starts at once.
    wake: Arc<Notify>,
    mode: ApplyMode,
    simulator: Option<Simulator>,
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
        let queue_settings = QueueSettings { visibility_timeout: reservation, ..QueueSettings::default() };
        let mut ports = wiring::sqlite_ports(&db, queue_settings);
        let wake = Arc::new(Notify::new());
        ports.queue = Arc::new(worker::WakingQueue::new(ports.queue, Arc::clone(&wake)));
        let options = wiring::consumer_options(config, target.mode, reservation);
        let (ingest, consumer) = wiring::assemble(&ports, target.client, config, options, Arc::new(SystemClock));
        Ok(Self { ingest, consumer, queue: ports.queue, wake, mode: target.mode, simulator: target.simulator })
    }

    /// Serves and consumes until a shutdown signal: then stops accepting, lets the batch in
    /// flight finish, and hands back the simulator (if any) to be shut down.
    async fn run_until(self, listener: TcpListener, signals: ShutdownSignals) -> anyhow::Result<Option<Simulator>> {
        let (stop, stopped) = watch::channel(false);
        let stop = Arc::new(stop);
        let worker = tokio::spawn(consume(self.queue, self.consumer, stopped, self.wake));
        let stop_on_signal = {
            let stop = Arc::clone(&stop);
            async move {
                signals.wait().await;
                tracing::info!("shutdown requested: no new requests; finishing the batch in flight");
                stop.send_replace(true);
            }
        };
        let served = axum::serve(listener, http::router(self.ingest)).with_graceful_shutdown(stop_on_signal).await;
        // Also when the server failed on its own: the consumer must not outlive it.
        stop.send_replace(true);
        worker.await.context("the consumer loop panicked")?;
        served.context("the HTTP server failed")?;
        Ok(self.simulator)
    }
}

async fn consume(queue: Arc<dyn EventQueue>, consumer: Consumer, stopped: watch::Receiver<bool>, wake: Arc<Notify>) {
    worker::run_woken(queue.as_ref(), &consumer, stopped, IDLE_POLL, &wake).await;
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
