//! `simulate --platform <platform.json>` (DESIGN 11): after the recorded requests, every session
//! in the platform file is reconciled as if it ended long ago, through the real API clients
//! against an in-process platform simulator serving that file.

use anyhow::Context as _;
use platform_sim::{PlatformData, PlatformSim, SimConfig};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use webinar_bridge::Secret;
use webinar_bridge::domain::WebinarEvent;
use webinar_bridge::platforms::config::{PlatformConfig, ZoomAppConfig};
use webinar_bridge::platforms::mapping::ZoomSession;
use webinar_bridge::platforms::pull::Puller;
use webinar_bridge::platforms::{CallCounts, Platform};

/// The `platform` part of the report.
#[derive(Debug, Serialize)]
pub struct PlatformReport {
    pub calls: u64,
    pub calls_by_endpoint: BTreeMap<String, u64>,
    pub http_429: u64,
    /// One entry per reconciliation (`--pull-rounds`).
    pub rounds: Vec<RoundReport>,
}

/// What one reconciliation did.
#[derive(Debug, Serialize)]
pub struct RoundReport {
    /// Events the pull produced.
    pub pulled_events: usize,
    /// Of those, how many the queue took as new (the rest it already held).
    pub enqueued: usize,
    /// Events that changed a contact's state.
    pub applied: usize,
    pub klicktipp_calls: u64,
}

impl PlatformReport {
    pub fn new(counts: CallCounts, rounds: Vec<RoundReport>) -> Self {
        Self { calls: counts.calls, calls_by_endpoint: counts.by_endpoint, http_429: counts.http_429, rounds }
    }
}

/// The platform simulator serving the file, and clients pointed at it.
pub struct PlatformSide {
    pub sim: PlatformSim,
    pub data: PlatformData,
    pub puller: Puller,
}

impl PlatformSide {
    pub async fn start(path: &Path, rate_per_second: u32) -> anyhow::Result<Self> {
        let data = PlatformData::load(path)?;
        let sim = PlatformSim::start(SimConfig::with_data(data.clone())).await?;
        let key = Secret::new(sim.api_key());
        let zoom = sim.zoom_credentials();
        let config = PlatformConfig {
            webinarjam_api_key: Some(key.clone()),
            everwebinar_api_key: Some(key),
            zoom: Some(ZoomAppConfig {
                account_id: zoom.account_id,
                client_id: zoom.client_id,
                client_secret: Secret::new(zoom.client_secret),
            }),
            genesis_base_url: sim.url(),
            zoom_base_url: sim.url(),
            rate_per_second,
            ..PlatformConfig::default()
        };
        let puller = Puller::from_config(&config).context("cannot build the platform API clients")?;
        Ok(Self { sim, data, puller })
    }

    /// Every session in the file, pulled through the API, as events.
    pub async fn pull_everything(&self, pulled_at: chrono::DateTime<chrono::Utc>) -> anyhow::Result<Vec<WebinarEvent>> {
        let mut events = Vec::new();
        for (platform, account) in
            [(Platform::WebinarJam, &self.data.webinarjam), (Platform::EverWebinar, &self.data.everwebinar)]
        {
            for webinar in &account.webinars {
                let duration = webinar.duration_minutes.and_then(|minutes| u32::try_from(minutes).ok());
                let mapped = self
                    .puller
                    .pull_genesis(platform, &webinar.webinar_id, None, duration, pulled_at, |_| {})
                    .await
                    .with_context(|| format!("pulling {} webinar {}", platform.name(), webinar.webinar_id))?;
                events.extend(mapped.events);
            }
        }
        for webinar in &self.data.zoom.webinars {
            let start_time =
                chrono::DateTime::parse_from_rfc3339(&webinar.start_time).ok().map(|at| at.with_timezone(&chrono::Utc));
            // As the reconciler learns it from the webinar list: recurring (type 9) occurrences
            // keep their own state.
            let recurring =
                self.data.zoom.webinar_type(&webinar.id) == webinar_bridge::sources::zoom::RECURRING_WITH_FIXED_TIME;
            let session = ZoomSession {
                webinar_id: webinar.id.clone(),
                uuid: webinar.uuid.clone(),
                topic: Some(webinar.topic.clone()).filter(|topic| !topic.is_empty()),
                start_time,
                duration_minutes: u32::try_from(webinar.duration).ok().filter(|minutes| *minutes > 0),
                timezone: webinar.timezone.clone(),
                occurrence_id: start_time.filter(|_| recurring).map(webinar_bridge::sources::zoom::occurrence_id_at),
            };
            let mapped = self
                .puller
                .pull_zoom(&session, pulled_at)
                .await
                .with_context(|| format!("pulling Zoom webinar {} occurrence {}", webinar.id, webinar.uuid))?;
            events.extend(mapped.events);
        }
        Ok(events)
    }
}
