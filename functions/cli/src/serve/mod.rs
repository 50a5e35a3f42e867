//! `webinar-bridge serve`: ingest over HTTP and the consumer loop in one process, sharing one
//! SQLite file, until Ctrl-C or SIGTERM.

mod banner;

use crate::{http, wiring};
use anyhow::Context as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;
use webinar_bridge::adapters::memory::QueueSettings;
use webinar_bridge::adapters::sqlite::SqliteDb;
use webinar_bridge::consume::Consumer;
use webinar_bridge::ports::{EventQueue, SystemClock};
use webinar_bridge::worker;

/// How often an idle consumer looks for new messages.
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
    let db = SqliteDb::open(&config.db_path)
        .with_context(|| format!("cannot open the database {} (BRIDGE_DB)", config.db_path.display()))?;
    let target = wiring::klicktipp_target(&config, &args.simulator_listen).await?;
    // The claim lease equals the visibility timeout, so a message redelivered after a crash
    // finds its claim expired and is taken over, instead of being retried into the dead letters.
    let reservation = Duration::from_secs(args.visibility_timeout);
    let ports =
        wiring::sqlite_ports(&db, QueueSettings { visibility_timeout: reservation, ..QueueSettings::default() });
    let options = wiring::consumer_options(&config, target.mode, reservation);
    let (ingest, consumer) = wiring::assemble(&ports, target.client, &config, options, Arc::new(SystemClock));

    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", args.listen))?;
    let address = listener.local_addr().context("the listener has no local address")?;
    let signals = ShutdownSignals::install()?;
    banner::print(address, &config, target.simulator.as_ref());
    tracing::info!(%address, mode = ?target.mode, simulator = target.simulator.is_some(), "serving");

    let (stop, stopped) = watch::channel(false);
    let stop = Arc::new(stop);
    let worker = tokio::spawn(consume(Arc::clone(&ports.queue), consumer, stopped));
    let stop_on_signal = {
        let stop = Arc::clone(&stop);
        async move {
            signals.wait().await;
            tracing::info!("shutdown requested: no new requests; finishing the batch in flight");
            stop.send_replace(true);
        }
    };
    let served = axum::serve(listener, http::router(ingest)).with_graceful_shutdown(stop_on_signal).await;
    // Also when the server failed on its own: the consumer must not outlive it.
    stop.send_replace(true);
    worker.await.context("the consumer loop panicked")?;
    served.context("the HTTP server failed")?;
    if let Some(simulator) = target.simulator {
        simulator.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn consume(queue: Arc<dyn EventQueue>, consumer: Consumer, stopped: watch::Receiver<bool>) {
    worker::run(queue.as_ref(), &consumer, stopped, IDLE_POLL).await;
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
