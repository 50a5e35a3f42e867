//! The reconcile Lambda's handler (DESIGN 11): run by an EventBridge Scheduler schedule with a
//! reserved concurrency of 1, so one process owns each platform's rate budget. Each run lists the
//! ended sessions, pulls those due (`BRIDGE_RECONCILE_AFTER_MINUTES` after their end, and again a
//! day later), enqueues their events to the events queue like ingest does, and remembers each
//! done round in the events table (`reconciled#...`).
//!
//! A run in which any platform or session failed returns an error, so the function's `Errors`
//! metric (and its alarm) shows it; what succeeded stays done and the rest is tried next run.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use webinar_bridge::adapters::aws_secrets::{SdkConfig, StartupError};
use webinar_bridge::adapters::dynamodb::{DynamoDoneSessions, DynamoZoomLedger};
use webinar_bridge::adapters::sqs::SqsQueue;
use webinar_bridge::config::{BridgeConfig, ConfigError};
use webinar_bridge::platforms::config::PlatformConfig;
use webinar_bridge::platforms::done_store::DoneSessionStore;
use webinar_bridge::platforms::pull::{Puller, ReconcileSummary};
use webinar_bridge::platforms::{Platform, PlatformError};
use webinar_bridge::ports::EventQueue;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileStartupError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the platform clients cannot start: {0}")]
    Platform(#[from] PlatformError),
    #[error("the KlickTipp client cannot start: {0}")]
    KlickTipp(#[from] webinar_bridge::klicktipp::KlickTippError),
}

/// A run that left work for the next one.
#[derive(Debug, thiserror::Error)]
#[error(
    "{failures} platform or session pulls failed ({sessions_pulled} sessions reconciled); they are tried again on the next run"
)]
pub struct ReconcileRunError {
    pub failures: usize,
    pub sessions_pulled: usize,
}

/// What one run did (the invocation's result).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    pub sessions_pulled: usize,
    pub events_enqueued: usize,
    pub platform_calls: u64,
    pub platform_429s: u64,
}

/// Tags ahead for the webinars a run lists (`BRIDGE_TAGS_AHEAD`, KlickTipp Management
/// credentials): the tag directory, per-webinar settings and seen marks in the contacts table,
/// shared with the consumer, so each webinar's tags are created once whichever sees it first.
fn listed_webinars(
    sdk: &SdkConfig,
    config: &BridgeConfig,
) -> Result<Option<webinar_bridge::tags_ahead::ListedWebinars>, ReconcileStartupError> {
    let Some(contacts_table) = config.contacts_table.as_deref() else { return Ok(None) };
    if !config.tags_ahead || config.klicktipp.mode() != webinar_bridge::config::KlickTippMode::Management {
        return Ok(None);
    }
    let klicktipp = webinar_bridge::klicktipp::KlickTippClient::new(config.klicktipp.client_config(1))?;
    let resolver = webinar_bridge::tag_resolver::TagResolver::new(
        Arc::new(webinar_bridge::adapters::dynamodb::DynamoTagDirectory::from_conf(sdk, contacts_table)),
        klicktipp,
        Arc::new(webinar_bridge::ports::SystemClock),
    );
    Ok(Some(webinar_bridge::tags_ahead::ListedWebinars::new(
        resolver,
        config.settings.clone(),
        Arc::new(webinar_bridge::adapters::dynamodb::DynamoWebinarSettings::from_conf(sdk, contacts_table)),
    )))
}

/// The reconcile function: built once per cold start, then called per scheduled run.
pub struct ReconcileFunction {
    puller: Puller,
    done: Arc<dyn DoneSessionStore>,
    queue: Arc<dyn EventQueue>,
    reconcile_after: Duration,
}

impl ReconcileFunction {
    pub fn new(
        puller: Puller,
        done: Arc<dyn DoneSessionStore>,
        queue: Arc<dyn EventQueue>,
        reconcile_after: Duration,
    ) -> Self {
        Self { puller, done, queue, reconcile_after }
    }

    /// Production wiring: the events queue (`EVENTS_QUEUE_URL`), done rounds in the events table
    /// (`EVENTS_TABLE`), the platform clients from the platform variables and the secret.
    pub fn from_config(
        sdk: &SdkConfig,
        config: &BridgeConfig,
        platforms: &PlatformConfig,
    ) -> Result<Self, ReconcileStartupError> {
        let queue_url = BridgeConfig::require(&config.events_queue_url, "EVENTS_QUEUE_URL")?;
        let events_table = BridgeConfig::require(&config.events_table, "EVENTS_TABLE")?;
        // Zoom occurrences whose `webinar.ended` ingest recorded (`zoom#ended#...` items).
        let mut puller =
            Puller::from_config(platforms)?.with_zoom_ledger(Arc::new(DynamoZoomLedger::from_conf(sdk, events_table)));
        if let Some(listed) = listed_webinars(sdk, config)? {
            puller = puller.with_tags_ahead(Arc::new(listed));
        }
        if puller.genesis(Platform::WebinarJam).is_err()
            && puller.genesis(Platform::EverWebinar).is_err()
            && puller.zoom().is_err()
        {
            // Not an error: a stack deployed before the API keys are put into the secret runs idle.
            tracing::warn!(
                "no platform API credentials (BRIDGE_WEBINARJAM_API_KEY, BRIDGE_EVERWEBINAR_API_KEY, ZOOM_ACCOUNT_ID/\
                 ZOOM_CLIENT_ID/ZOOM_CLIENT_SECRET in the bridge secret): nothing to reconcile"
            );
        }
        Ok(Self::new(
            puller,
            Arc::new(DynamoDoneSessions::from_conf(sdk, events_table)),
            Arc::new(SqsQueue::from_conf(sdk, queue_url)),
            platforms.reconcile_after,
        ))
    }

    /// One scheduled run at `now`.
    pub async fn run(&self, now: DateTime<Utc>) -> Result<ReconcileReport, ReconcileRunError> {
        let before = self.puller.call_log().snapshot();
        let ReconcileSummary { sessions_pulled, events_enqueued, failures } =
            self.puller.reconcile_due(self.done.as_ref(), self.queue.as_ref(), now, self.reconcile_after).await;
        let after = self.puller.call_log().snapshot();
        let report = ReconcileReport {
            sessions_pulled,
            events_enqueued,
            platform_calls: after.calls.saturating_sub(before.calls),
            platform_429s: after.http_429.saturating_sub(before.http_429),
        };
        tracing::info!(
            sessions = report.sessions_pulled,
            events = report.events_enqueued,
            platform_calls = report.platform_calls,
            platform_429s = report.platform_429s,
            failures,
            "reconciliation run"
        );
        if failures > 0 {
            return Err(ReconcileRunError { failures, sessions_pulled });
        }
        Ok(report)
    }
}
