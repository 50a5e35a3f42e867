//! Automatic reconciliation in `serve` (DESIGN 11): every few minutes, each WebinarJam/
//! EverWebinar session or ended Zoom occurrence that ended `BRIDGE_RECONCILE_AFTER_MINUTES` ago is pulled and enqueued
//! (and again a day after its end); done rounds are remembered in the database.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use webinar_bridge::platforms::Platform;
use webinar_bridge::platforms::config::PlatformConfig;
use webinar_bridge::platforms::done_sessions::DoneSessions;
use webinar_bridge::platforms::pull::Puller;
use webinar_bridge::platforms::zoom_ledger::{SqliteZoomLedger, WakeOnEnded};
use webinar_bridge::ports::EventQueue;
use webinar_bridge::tags_ahead::ListedWebinars;

/// How often the platforms are asked which sessions have ended.
const PASS_INTERVAL: Duration = Duration::from_secs(300);

/// Starts the background loop when a WebinarJam or EverWebinar API key or a Zoom app is
/// configured.
pub fn spawn(
    config: &PlatformConfig,
    db_path: &Path,
    queue: Arc<dyn EventQueue>,
    zoom_ledger: Arc<WakingZoomLedger>,
    listed_webinars: Option<Arc<ListedWebinars>>,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    let ended = zoom_ledger.notifier();
    let mut puller = Puller::from_config(config)?.with_zoom_ledger(zoom_ledger);
    if let Some(listed) = listed_webinars {
        // Each webinar a pass lists for the first time gets its state tags (BRIDGE_TAGS_AHEAD).
        puller = puller.with_tags_ahead(listed);
    }
    if puller.genesis(Platform::WebinarJam).is_err()
        && puller.genesis(Platform::EverWebinar).is_err()
        && puller.zoom().is_err()
    {
        return Ok(None);
    }
    let done = DoneSessions::open(db_path)?;
    let reconcile_after = config.reconcile_after;
    tracing::info!(minutes_after_end = reconcile_after.as_secs() / 60, "automatic reconciliation on");
    Ok(Some(tokio::spawn(async move {
        loop {
            let summary = puller.reconcile_due(&done, queue.as_ref(), chrono::Utc::now(), reconcile_after).await;
            if summary.sessions_pulled + summary.failures > 0 {
                tracing::info!(
                    sessions = summary.sessions_pulled,
                    events = summary.events_enqueued,
                    failures = summary.failures,
                    "reconciliation pass"
                );
            }
            tokio::select! {
                _ = tokio::time::sleep(PASS_INTERVAL) => {}
                // A `webinar.ended` just recorded: its occurrence may already be due.
                _ = ended.notified() => {}
                _ = stopped.wait_for(|stop| *stop) => return,
            }
        }
    })))
}

/// The Zoom ledger in the database file, waking the reconciliation loop whenever ingest records
/// a `webinar.ended`, so an occurrence that is already due is pulled at once.
pub type WakingZoomLedger = WakeOnEnded<SqliteZoomLedger>;

pub fn open_zoom_ledger(db_path: &Path) -> webinar_bridge::ports::PortResult<WakingZoomLedger> {
    Ok(WakeOnEnded::new(SqliteZoomLedger::open(db_path)?))
}
