//! Pulling one session and handing its events to the queue: the part `simulate --platform`,
//! `backfill` and reconciliation share. The clients are built once from [`PlatformConfig`]:
//! one FIFO throttle per API key (WebinarJam and EverWebinar share it when the account's key
//! is the same), one for Zoom.

use super::config::PlatformConfig;
use super::error::{Platform, PlatformError};
use super::genesis::GenesisClient;
use super::http::CallLog;
use super::mapping::{self, Mapped, ZoomSession};
use super::throttle::FifoThrottle;
use super::zoom::{ZoomClient, ZoomCredentials};
use super::zoom_ledger::ZoomLedger;
use crate::domain::{Source, WebinarEvent};
use crate::ingest::to_message;
use crate::ports::{EventQueue, PortError, PortResult};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Zoom's report endpoints are "heavy": 10 calls/s on a Pro account.
pub const ZOOM_RATE_PER_SECOND: u32 = 10;

/// The configured platform clients.
#[derive(Debug, Clone, Default)]
pub struct Puller {
    webinarjam: Option<GenesisClient>,
    everwebinar: Option<GenesisClient>,
    zoom: Option<ZoomClient>,
    log: CallLog,
    ended: Option<EndedLedger>,
    /// Creates the state tags of each newly listed webinar (`BRIDGE_TAGS_AHEAD`).
    ahead: Option<Arc<crate::tags_ahead::ListedWebinars>>,
}

/// Where `webinar.ended` webhooks were recorded ([`Puller::with_zoom_ledger`]).
#[derive(Clone)]
struct EndedLedger(Arc<dyn ZoomLedger>);

impl std::fmt::Debug for EndedLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ZoomLedger")
    }
}

impl Puller {
    pub fn from_config(config: &PlatformConfig) -> Result<Self, PlatformError> {
        let log = CallLog::default();
        let jam_throttle = Arc::new(FifoThrottle::new(config.rate_per_second));
        let ever_throttle = match (&config.webinarjam_api_key, &config.everwebinar_api_key) {
            (Some(jam), Some(ever)) if jam == ever => jam_throttle.clone(),
            _ => Arc::new(FifoThrottle::new(config.rate_per_second)),
        };
        let genesis = |platform, key: &Option<crate::Secret>, throttle| {
            key.clone()
                .map(|key| GenesisClient::new(platform, &config.genesis_base_url, key, throttle, log.clone()))
                .transpose()
        };
        let webinarjam = genesis(Platform::WebinarJam, &config.webinarjam_api_key, jam_throttle)?;
        let everwebinar = genesis(Platform::EverWebinar, &config.everwebinar_api_key, ever_throttle)?;
        let zoom = config
            .zoom
            .as_ref()
            .map(|app| {
                let credentials = ZoomCredentials {
                    account_id: app.account_id.clone(),
                    client_id: app.client_id.clone(),
                    client_secret: app.client_secret.clone(),
                };
                let throttle = Arc::new(FifoThrottle::new(config.rate_per_second.min(ZOOM_RATE_PER_SECOND)));
                ZoomClient::new(&config.zoom_base_url, None, credentials, throttle, log.clone())
            })
            .transpose()?;
        Ok(Self { webinarjam, everwebinar, zoom, log, ended: None, ahead: None })
    }

    /// Reconciliation also pulls the Zoom occurrences whose `webinar.ended` webhook ingest
    /// recorded here, whether or not the API's webinar list still shows them.
    pub fn with_zoom_ledger(mut self, ledger: Arc<dyn ZoomLedger>) -> Self {
        self.ended = Some(EndedLedger(ledger));
        self
    }

    /// Reconciliation also creates the state tags of each webinar its listings show for the
    /// first time (tags ahead, issue 15), so campaigns can be built before the first registrant.
    pub fn with_tags_ahead(mut self, ahead: Arc<crate::tags_ahead::ListedWebinars>) -> Self {
        self.ahead = Some(ahead);
        self
    }

    /// Tags ahead for one listed webinar; best effort (a failure is logged and tried again on
    /// the next pass, the listing goes on).
    async fn prepare_listed(&self, webinar: crate::tags_ahead::WebinarRef) {
        let Some(ahead) = &self.ahead else { return };
        if let Err(error) = ahead.prepare(&webinar).await {
            tracing::warn!(webinar = %webinar.webinar_id, %error, "creating the listed webinar's tags ahead failed; tried again next pass");
        }
    }

    /// Every client gives up on a call without an answer after `timeout` (and retries it as a
    /// broken connection); 30 s by default.
    pub fn with_request_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.webinarjam = self.webinarjam.map(|client| client.with_request_timeout(timeout));
        self.everwebinar = self.everwebinar.map(|client| client.with_request_timeout(timeout));
        self.zoom = self.zoom.map(|client| client.with_request_timeout(timeout));
        self
    }

    /// Calls made by every client, by endpoint, and 429 answers.
    pub fn call_log(&self) -> &CallLog {
        &self.log
    }

    /// The WebinarJam or EverWebinar client, if its key is configured.
    pub fn genesis(&self, platform: Platform) -> Result<&GenesisClient, PlatformError> {
        let client = match platform {
            Platform::WebinarJam => self.webinarjam.as_ref(),
            Platform::EverWebinar => self.everwebinar.as_ref(),
            Platform::Zoom => None,
        };
        client.ok_or(PlatformError::NotConfigured { platform })
    }

    pub fn zoom(&self) -> Result<&ZoomClient, PlatformError> {
        self.zoom.as_ref().ok_or(PlatformError::NotConfigured { platform: Platform::Zoom })
    }

    /// A WebinarJam/EverWebinar webinar (one schedule, or all) as events. `duration_minutes`
    /// stands in for the webinar length the API does not return.
    pub async fn pull_genesis(
        &self,
        platform: Platform,
        webinar_id: &str,
        schedule: Option<&str>,
        duration_minutes: Option<u32>,
        pulled_at: DateTime<Utc>,
        on_page: impl FnMut(&super::genesis::RegistrantsPage),
    ) -> Result<Mapped, PlatformError> {
        let client = self.genesis(platform)?;
        let mut webinar = client.webinar(webinar_id).await?;
        if webinar.webinar_id.is_empty() {
            webinar.webinar_id = webinar_id.to_owned();
        }
        if let Some(minutes) = duration_minutes {
            webinar.duration_minutes = Some(i64::from(minutes));
        }
        let registrants = client.registrants(webinar_id, schedule, on_page).await?;
        let source = if platform == Platform::WebinarJam { Source::Webinarjam } else { Source::Everwebinar };
        Ok(mapping::genesis_events(&source, &webinar, &registrants, pulled_at))
    }

    /// Where an ended Zoom occurrence sits, for a pull by hand (`backfill`): its start (from the
    /// webinar's past instances) and, for a webinar recurring with a fixed time (type 9 in the
    /// webinar list, which shows webinars with occurrences still to come), its occurrence id, so its events key state as
    /// that occurrence's webhooks do. What the API cannot tell stays `None`.
    pub async fn zoom_occurrence(&self, webinar_id: &str, uuid: &str) -> (Option<DateTime<Utc>>, Option<String>) {
        let Ok(client) = self.zoom() else {
            return (None, None);
        };
        let instances = client.past_instances(webinar_id).await.unwrap_or_default();
        let start = instances
            .iter()
            .find(|instance| instance.uuid.as_deref() == Some(uuid))
            .and_then(|instance| instance.start_time.as_deref())
            .and_then(|raw| DateTime::parse_from_rfc3339(raw.trim()).ok())
            .map(|at| at.with_timezone(&Utc));
        let listed_type = client
            .webinars()
            .await
            .unwrap_or_default()
            .into_iter()
            .find(|webinar| webinar.id == webinar_id)
            .and_then(|webinar| webinar.webinar_type);
        // Only the list's type says so: a single webinar started twice also has two instances.
        let recurring = listed_type
            .is_some_and(|kind| u64::try_from(kind).ok() == Some(crate::sources::zoom::RECURRING_WITH_FIXED_TIME));
        (start, start.filter(|_| recurring).map(crate::sources::zoom::occurrence_id_at))
    }

    /// One ended Zoom occurrence as events: registrants, the participants report, absentees.
    pub async fn pull_zoom(&self, session: &ZoomSession, pulled_at: DateTime<Utc>) -> Result<Mapped, PlatformError> {
        let client = self.zoom()?;
        let registrants = client.registrants(&session.webinar_id, session.occurrence_id.as_deref()).await?;
        let participants = client.participants(&session.uuid).await?;
        let absentees = client.absentees(&session.uuid).await?;
        Ok(mapping::zoom_events(session, &registrants, &participants, &absentees, pulled_at))
    }
}

/// Sends events to the queue the webhooks use (FIFO per contact, deduplicated by event id).
pub async fn enqueue(queue: &dyn EventQueue, events: &[WebinarEvent]) -> PortResult<usize> {
    let messages = events
        .iter()
        .map(|event| to_message(event).map_err(|error| PortError::Corrupt(error.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    // SQS takes at most 10 messages per batch; the other adapters do not mind.
    for chunk in messages.chunks(10) {
        queue.send(chunk).await?;
    }
    Ok(messages.len())
}

/// What one reconciliation pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileSummary {
    pub sessions_pulled: usize,
    pub events_enqueued: usize,
    pub failures: usize,
}

impl Puller {
    /// The WebinarJam/EverWebinar sessions the API lists, with when each ended.
    pub async fn genesis_sessions(
        &self,
        platform: Platform,
    ) -> Result<Vec<(super::reconcile::EndedSession, Option<u32>)>, PlatformError> {
        let client = self.genesis(platform)?;
        let mut sessions = Vec::new();
        for summary in client.webinars().await? {
            let details = client.webinar(&summary.webinar_id).await?;
            let duration = details.duration_minutes.and_then(|minutes| u32::try_from(minutes).ok());
            if let Some(ahead) = &self.ahead {
                let source = match platform {
                    Platform::EverWebinar => crate::domain::Source::Everwebinar,
                    _ => crate::domain::Source::Webinarjam,
                };
                let listed = crate::tags_ahead::WebinarRef {
                    source,
                    webinar_id: summary.webinar_id.clone(),
                    name: details.name.clone().or_else(|| details.title.clone()),
                    date: None,
                };
                if ahead.per_session() {
                    for schedule in &details.schedules {
                        let date = schedule.date.as_deref().and_then(|date| {
                            let start = super::lenient::local_to_utc(date, details.timezone.as_deref())?;
                            crate::domain::session_date(Some(&start.to_rfc3339()), details.timezone.as_deref())
                        });
                        if date.is_some() {
                            self.prepare_listed(crate::tags_ahead::WebinarRef { date, ..listed.clone() }).await;
                        }
                    }
                } else {
                    self.prepare_listed(listed).await;
                }
            }
            for schedule in &details.schedules {
                let Some(starts_at) = schedule
                    .date
                    .as_deref()
                    .and_then(|date| super::lenient::local_to_utc(date, details.timezone.as_deref()))
                else {
                    continue;
                };
                let key = super::reconcile::SessionKey {
                    source: platform.name().to_ascii_lowercase(),
                    webinar_id: summary.webinar_id.clone(),
                    session_id: schedule.schedule.clone(),
                };
                sessions.push((
                    super::reconcile::EndedSession { key, ends_at: super::reconcile::end_of(starts_at, duration) },
                    duration,
                ));
            }
        }
        Ok(sessions)
    }

    /// The ended Zoom occurrences the API lists (the account's webinars, then each one's past
    /// instances), with when each ended.
    pub async fn zoom_sessions(&self) -> Result<Vec<(super::reconcile::EndedSession, ZoomSession)>, PlatformError> {
        let client = self.zoom()?;
        let mut sessions = Vec::new();
        for webinar in client.webinars().await? {
            if self.ahead.is_some() {
                let date = crate::domain::session_date(webinar.start_time.as_deref(), webinar.timezone.as_deref());
                let per_session = self.ahead.as_ref().is_some_and(|ahead| ahead.per_session());
                if !per_session || date.is_some() {
                    self.prepare_listed(crate::tags_ahead::WebinarRef {
                        source: crate::domain::Source::Zoom,
                        webinar_id: webinar.id.clone(),
                        name: webinar.topic.clone(),
                        date,
                    })
                    .await;
                }
            }
            let duration = webinar.duration.and_then(|minutes| u32::try_from(minutes).ok()).filter(|m| *m > 0);
            let recurring = webinar
                .webinar_type
                .is_some_and(|kind| u64::try_from(kind).ok() == Some(crate::sources::zoom::RECURRING_WITH_FIXED_TIME));
            for instance in client.past_instances(&webinar.id).await? {
                let (Some(uuid), Some(starts_at)) = (
                    instance.uuid.clone(),
                    instance
                        .start_time
                        .as_deref()
                        .and_then(|raw| DateTime::parse_from_rfc3339(raw.trim()).ok())
                        .map(|at| at.with_timezone(&Utc)),
                ) else {
                    continue;
                };
                let key = super::reconcile::SessionKey {
                    source: "zoom".to_owned(),
                    webinar_id: webinar.id.clone(),
                    session_id: uuid.clone(),
                };
                let ended =
                    super::reconcile::EndedSession { key, ends_at: super::reconcile::end_of(starts_at, duration) };
                let session = ZoomSession {
                    webinar_id: webinar.id.clone(),
                    uuid,
                    topic: webinar.topic.clone(),
                    start_time: Some(starts_at),
                    duration_minutes: duration,
                    timezone: webinar.timezone.clone(),
                    occurrence_id: recurring.then(|| crate::sources::zoom::occurrence_id_at(starts_at)),
                };
                sessions.push((ended, session));
            }
        }
        Ok(sessions)
    }

    /// One pass of automatic reconciliation: every due WebinarJam/EverWebinar session is pulled
    /// and enqueued, and remembered as done. A platform or session that fails is logged and
    /// tried again on the next pass.
    pub async fn reconcile_due(
        &self,
        done: &dyn super::done_store::DoneSessionStore,
        queue: &dyn EventQueue,
        now: DateTime<Utc>,
        reconcile_after: std::time::Duration,
    ) -> ReconcileSummary {
        let mut summary = ReconcileSummary::default();
        for platform in [Platform::WebinarJam, Platform::EverWebinar] {
            if self.genesis(platform).is_err() {
                continue;
            }
            let sessions = match self.genesis_sessions(platform).await {
                Ok(sessions) => sessions,
                Err(error) => {
                    tracing::warn!(platform = platform.name(), %error, "cannot list sessions for reconciliation");
                    summary.failures += 1;
                    continue;
                }
            };
            let candidates =
                super::done_store::candidate_rounds(sessions.iter().map(|(s, _)| (&s.key, s.ends_at)), now);
            let done_rounds = match done.done_among(&candidates).await {
                Ok(rounds) => rounds,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the reconciled sessions");
                    summary.failures += 1;
                    return summary;
                }
            };
            let ended: Vec<_> = sessions.iter().map(|(session, _)| session.clone()).collect();
            for (key, round) in super::reconcile::due(&ended, &done_rounds, now, reconcile_after) {
                let duration =
                    sessions.iter().find(|(session, _)| session.key == key).and_then(|(_, minutes)| *minutes);
                let pulled =
                    self.pull_genesis(platform, &key.webinar_id, Some(&key.session_id), duration, now, |_| {}).await;
                let outcome = match pulled {
                    Ok(mapped) => enqueue(queue, &mapped.events).await.map_err(|error| error.to_string()),
                    Err(error) => Err(error.to_string()),
                };
                let outcome = match outcome {
                    Ok(sent) => done.mark_done(&key, round, now).await.map(|()| sent).map_err(|e| e.to_string()),
                    Err(error) => Err(error),
                };
                match outcome {
                    Ok(sent) => {
                        tracing::info!(platform = platform.name(), webinar = %key.webinar_id, session = %key.session_id, round = round.as_str(), events = sent, "session reconciled");
                        summary.sessions_pulled += 1;
                        summary.events_enqueued += sent;
                    }
                    Err(error) => {
                        tracing::warn!(platform = platform.name(), webinar = %key.webinar_id, session = %key.session_id, %error, "reconciliation failed; tried again on the next pass");
                        summary.failures += 1;
                    }
                }
            }
        }
        if self.zoom.is_some() {
            self.reconcile_zoom(done, queue, now, reconcile_after, &mut summary).await;
        }
        summary
    }

    async fn reconcile_zoom(
        &self,
        done: &dyn super::done_store::DoneSessionStore,
        queue: &dyn EventQueue,
        now: DateTime<Utc>,
        reconcile_after: std::time::Duration,
        summary: &mut ReconcileSummary,
    ) {
        let mut sessions = match self.zoom_sessions().await {
            Ok(sessions) => sessions,
            Err(error) => {
                // The occurrences recorded from webhooks are still pulled.
                tracing::warn!(platform = "Zoom", %error, "cannot list sessions for reconciliation");
                summary.failures += 1;
                Vec::new()
            }
        };
        if let Some(EndedLedger(ledger)) = &self.ended {
            let look_back = chrono::Duration::from_std(super::reconcile::LOOK_BACK).unwrap_or_default();
            match ledger.ended_since(now - look_back, now).await {
                Ok(recorded) => merge_recorded_ends(&mut sessions, &recorded),
                Err(error) => {
                    tracing::warn!(%error, "cannot read the ended Zoom occurrences");
                    summary.failures += 1;
                }
            }
        }
        let candidates = super::done_store::candidate_rounds(sessions.iter().map(|(s, _)| (&s.key, s.ends_at)), now);
        let done_rounds = match done.done_among(&candidates).await {
            Ok(rounds) => rounds.into_iter().collect(),
            Err(error) => {
                tracing::warn!(%error, "cannot read the reconciled sessions");
                summary.failures += 1;
                return;
            }
        };
        let ended: Vec<_> = sessions.iter().map(|(ended, _)| ended.clone()).collect();
        for (key, round) in super::reconcile::due(&ended, &done_rounds, now, reconcile_after) {
            let Some((_, session)) = sessions.iter().find(|(ended, _)| ended.key == key) else {
                continue;
            };
            let outcome = match self.pull_zoom(session, now).await {
                Ok(mapped) => enqueue(queue, &mapped.events).await.map_err(|error| error.to_string()),
                Err(error) => Err(error.to_string()),
            };
            let outcome = match outcome {
                Ok(sent) => done.mark_done(&key, round, now).await.map(|()| sent).map_err(|e| e.to_string()),
                Err(error) => Err(error),
            };
            match outcome {
                Ok(sent) => {
                    tracing::info!(platform = "Zoom", webinar = %key.webinar_id, round = round.as_str(), events = sent, "session reconciled");
                    summary.sessions_pulled += 1;
                    summary.events_enqueued += sent;
                }
                Err(error) => {
                    tracing::warn!(platform = "Zoom", webinar = %key.webinar_id, %error, "reconciliation failed; tried again on the next pass");
                    summary.failures += 1;
                }
            }
        }
    }
}

/// Adds the occurrences `webinar.ended` recorded to those the API listed. The webhook's end time
/// wins over the one computed from the scheduled length; an occurrence listed too keeps the
/// listing's details and is pulled once.
fn merge_recorded_ends(
    sessions: &mut Vec<(super::reconcile::EndedSession, ZoomSession)>,
    recorded: &[super::zoom_ledger::EndedOccurrence],
) {
    for ended in recorded {
        let key = ended.key();
        match sessions.iter_mut().find(|(listed, _)| listed.key == key) {
            Some((listed, session)) => {
                listed.ends_at = ended.ended_at;
                if session.occurrence_id.is_none() {
                    session.occurrence_id.clone_from(&ended.occurrence_id);
                }
            }
            None => sessions.push((super::reconcile::EndedSession { key, ends_at: ended.ended_at }, ended.session())),
        }
    }
}
