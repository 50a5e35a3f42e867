//! `--drop-webhooks P --reconcile` (issue 13): part of the webhooks never arrive, and the
//! platforms' APIs fill the gap. The generated truth is loaded into the platform simulator as
//! its APIs would return it (registrations, live attendance with minutes or Zoom's participant
//! rows, no-shows and Zoom absentees, replays, purchases); the simulator injects faults (5xx,
//! answers slower than the client's timeout, an expired Zoom token) while every ended session
//! is reconciled through the real clients, throttles and reconciliation pass, into the same
//! queue the webhooks use. The run is then judged against the oracle of the *full* truth.
//!
//! Only what the APIs can express is generated ([`platform_mix`]): no cancellations (neither
//! API lists them) and no full attendance on WebinarJam/EverWebinar (their API does not return
//! the webinar's length, so minutes cannot be judged "full"). Zoom registrants who did not
//! attend are no-shows in the full truth: Zoom's webhooks never say so, its absentee report
//! does.

use crate::generator::{Log, Mix, Tool};
use crate::oracle::expected_contacts;
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use platform_sim::{Knobs, PlatformData, PlatformSim, SimConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use webinar_bridge::Secret;
use webinar_bridge::domain::{EventId, EventKind, WebinarEvent};
use webinar_bridge::platforms::config::{PlatformConfig, ZoomAppConfig};
use webinar_bridge::platforms::done_store::MemoryDoneSessions;
use webinar_bridge::platforms::pull::Puller;
use webinar_bridge::ports::EventQueue;
use webinar_bridge::sources::RawRequest;

/// The schedule (session) id of the WebinarJam and EverWebinar webinars.
const SCHEDULE: u64 = 1;
/// The platform client's timeout in the soak: shorter than the simulator's stalls.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(400);
const STALL: Duration = Duration::from_millis(600);
/// Reconciliation passes before the run gives up on a session.
const MAX_PASSES: usize = 12;

/// The soak's mix, with only what the platform APIs can express.
pub fn platform_mix(base: Mix) -> Mix {
    Mix {
        generic: 0.0,
        everwebinar: 0.3,
        cancel_of_registrants: 0.0,
        reregister_of_cancelled: 0.0,
        genesis_cancellations: false,
        fully_of_attendees: 0.0,
        ..base
    }
}

/// Keeps each request with probability `1 - share` (seeded); returns the kept ones and how many
/// were dropped.
pub fn drop_webhooks(requests: Vec<RawRequest>, share: f64, seed: u64) -> (Vec<RawRequest>, usize) {
    if share <= 0.0 {
        return (requests, 0);
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0xD80B_0057_u64);
    let before = requests.len();
    let kept: Vec<RawRequest> = requests.into_iter().filter(|_| !rng.random_bool(share.min(1.0))).collect();
    let dropped = before - kept.len();
    (kept, dropped)
}

/// The full truth: the generator's events plus a no-show for every Zoom registrant who never
/// joined. E-mail -> tag names.
pub fn full_truth(log: &Log) -> BTreeMap<String, BTreeSet<String>> {
    let mut documents = log.truth_documents();
    let no_shows: Vec<WebinarEvent> = documents
        .iter()
        .filter(|document| document.kind == EventKind::Registered && document.source.key() == "zoom")
        .filter(|document| {
            !documents.iter().any(|other| {
                other.contact.email == document.contact.email
                    && matches!(other.kind, EventKind::Attended | EventKind::LeftEarly | EventKind::FullyAttended)
            })
        })
        .filter_map(|registered| {
            let mut no_show = registered.clone();
            no_show.kind = EventKind::NoShow;
            no_show.event_id = EventId::from_sender(&format!("truth-no-show-{}", registered.event_id.as_str()))?;
            let end = registered.webinar.starts_at? + chrono::Duration::minutes(60);
            no_show.occurred_at = end;
            no_show.received_at = end;
            Some(no_show)
        })
        .collect();
    documents.extend(no_shows);
    let mut expected: BTreeMap<String, BTreeSet<String>> =
        log.contacts.iter().map(|contact| (contact.email.clone(), BTreeSet::new())).collect();
    for (email, contact) in expected_contacts(&documents) {
        expected.insert(email, contact.tags);
    }
    expected
}

fn local(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn revenue(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The truth as the platforms' APIs return it (`platform.json`, DESIGN 11).
pub fn platform_document(log: &Log) -> Value {
    let mut genesis: BTreeMap<Tool, Vec<Value>> = BTreeMap::new();
    let (mut registrants, mut participants, mut absentees) = (Vec::new(), Vec::new(), Vec::new());
    for (index, contact) in log.contacts.iter().enumerate() {
        let registered = contact.events.iter().find(|event| event.kind == EventKind::Registered);
        let signed_up = registered.map_or(log.webinars[contact.webinar].starts_at, |event| event.occurred_at);
        match contact.tool {
            Tool::WebinarJam | Tool::EverWebinar => {
                let mut record = json!({
                    "lead_id": 10_000 + index, "email": contact.email, "first_name": contact.first_name,
                    "last_name": contact.last_name, "schedule": SCHEDULE, "signup_date": local(signed_up),
                    "attended_live": 2, "attended_replay": 0, "purchased_live": 0, "purchased_replay": 0,
                });
                for event in &contact.events {
                    match event.kind {
                        EventKind::Attended | EventKind::LeftEarly | EventKind::FullyAttended => {
                            let minutes = event.minutes.unwrap_or(30);
                            record["attended_live"] = json!(1);
                            record["date_live"] = json!(local(event.occurred_at));
                            record["time_live"] = json!(format!("{}:{:02}:00", minutes / 60, minutes % 60));
                        }
                        EventKind::ReplayWatched => {
                            record["attended_replay"] = json!(1);
                            record["date_replay"] = json!(local(event.occurred_at));
                            record["time_replay"] = json!("0:20:00");
                        }
                        EventKind::Purchased => {
                            record["purchased_live"] = json!(1);
                            record["revenue_live"] = json!(revenue(event.amount_cents.unwrap_or(0)));
                        }
                        _ => {}
                    }
                }
                genesis.entry(contact.tool).or_default().push(record);
            }
            Tool::Zoom => {
                let id = format!("reg_{index}");
                registrants.push(json!({"id": id, "email": contact.email, "first_name": contact.first_name,
                    "last_name": contact.last_name, "status": "approved", "create_time": signed_up.to_rfc3339()}));
                // One row per attendance stretch, as the report lists them.
                let mut spans: BTreeMap<DateTime<Utc>, DateTime<Utc>> = BTreeMap::new();
                for span in contact.events.iter().filter_map(|event| event.interval) {
                    if let Some(end) = span.end {
                        spans.insert(span.start, end);
                    }
                }
                for (start, end) in &spans {
                    participants.push(json!({"registrant_id": id, "user_email": contact.email,
                        "name": format!("{} {}", contact.first_name, contact.last_name),
                        "join_time": start.to_rfc3339(), "leave_time": end.to_rfc3339(),
                        "duration": (*end - *start).num_seconds().max(0)}));
                }
                if spans.is_empty() {
                    absentees.push(json!({"id": id, "email": contact.email, "first_name": contact.first_name,
                        "last_name": contact.last_name}));
                }
            }
            Tool::Generic => {}
        }
    }
    let mut jam_account = |tool: Tool| {
        let Some(webinar) = log.webinars.iter().find(|webinar| webinar.tool == tool) else {
            return json!({"webinars": []});
        };
        json!({"webinars": [{"webinar_id": webinar.id, "name": webinar.name, "timezone": "UTC",
            "schedules": [{"schedule": SCHEDULE, "date": webinar.starts_at.format("%Y-%m-%d %H:%M").to_string()}],
            "registrants": genesis.remove(&tool).unwrap_or_default()}]})
    };
    let zoom = log.webinars.iter().find(|webinar| webinar.tool == Tool::Zoom).map_or_else(
        || json!({"webinars": []}),
        |webinar| {
            json!({"webinars": [{"id": webinar.id, "uuid": "soak/Zq//9XvRTn2wYb3cQp1Lmg==", "topic": webinar.name,
                "start_time": webinar.starts_at.to_rfc3339(), "duration": webinar.duration_minutes.unwrap_or(60),
                "registrants": registrants, "participants": participants, "absentees": absentees}]})
        },
    );
    json!({"webinarjam": jam_account(Tool::WebinarJam), "everwebinar": jam_account(Tool::EverWebinar), "zoom": zoom})
}

/// What reconciliation did and met.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReconcileFigures {
    pub passes: usize,
    pub sessions_pulled: usize,
    pub events_enqueued: usize,
    /// Sessions that failed in a pass (and were tried again in the next).
    pub failed_attempts: usize,
    pub platform_calls: usize,
    pub platform_calls_by_endpoint: BTreeMap<String, u64>,
    pub platform_5xx: usize,
    /// Calls the simulator held longer than the client waits.
    pub platform_timeouts: usize,
    pub platform_429: usize,
    /// Zoom tokens issued: the first, and one more after the simulator expired it.
    pub zoom_tokens_issued: u64,
    pub zoom_tokens_expired: usize,
    pub seconds: f64,
    /// Sessions (or listings) that failed in the last pass: still not done after [`MAX_PASSES`].
    pub sessions_left: usize,
}

impl ReconcileFigures {
    /// Fault classes that never fired (the run would prove nothing about them).
    pub fn missing_faults(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if self.platform_5xx == 0 {
            missing.push("platform 5xx");
        }
        if self.platform_timeouts == 0 {
            missing.push("platform timeout");
        }
        if self.zoom_tokens_expired == 0 || self.zoom_tokens_issued < 2 {
            missing.push("expired Zoom token");
        }
        missing
    }
}

/// Loads the truth into a platform simulator with faults and reconciles every ended session
/// into `queue`, pass after pass until none is left (bounded).
pub async fn reconcile(queue: &dyn EventQueue, log: &Log, seed: u64) -> anyhow::Result<ReconcileFigures> {
    let data = PlatformData::from_json(&platform_document(log).to_string()).context("the platform document")?;
    let knobs = Knobs {
        fault_rate_5xx: 0.08,
        fault_rate_stall: 0.05,
        stall_ms: u64::try_from(STALL.as_millis()).unwrap_or(u64::MAX),
        // Small pages, so a session takes many calls and the faults meet them.
        jam_page_size: 25,
        zoom_default_page_size: 30,
        seed,
        ..Knobs::default()
    };
    let mut sim_config = SimConfig::with_data(data);
    sim_config.knobs = knobs;
    let sim = PlatformSim::start(sim_config).await?;
    let zoom = sim.zoom_credentials();
    let key = Secret::new(sim.api_key());
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
        ..PlatformConfig::default()
    };
    let puller = Puller::from_config(&config)?.with_request_timeout(CLIENT_TIMEOUT);
    let done = MemoryDoneSessions::default();
    // As if a day and a half after the webinars: each session's replay round is due.
    let latest_start = log.webinars.iter().map(|webinar| webinar.starts_at).max().unwrap_or_else(Utc::now);
    let now = latest_start + chrono::Duration::hours(36);
    let started = Instant::now();
    let mut figures = ReconcileFigures::default();

    // The Zoom token the client holds expires once, after its first use.
    let expire = async {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !sim.call_log().iter().any(|call| call.path.starts_with("/v2/") && call.status == 200) {
            if Instant::now() > deadline {
                return 0;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sim.expire_tokens()
    };
    let passes = async {
        let mut figures = ReconcileFigures::default();
        for _ in 0..MAX_PASSES {
            let summary = puller.reconcile_due(&done, queue, now, config.reconcile_after).await;
            figures.passes += 1;
            figures.sessions_pulled += summary.sessions_pulled;
            figures.events_enqueued += summary.events_enqueued;
            figures.failed_attempts += summary.failures;
            figures.sessions_left = summary.failures;
            if summary.failures == 0 && summary.sessions_pulled == 0 {
                break;
            }
        }
        figures
    };
    let (expired, pass_figures) = tokio::join!(expire, passes);
    figures.passes = pass_figures.passes;
    figures.sessions_pulled = pass_figures.sessions_pulled;
    figures.events_enqueued = pass_figures.events_enqueued;
    figures.failed_attempts = pass_figures.failed_attempts;
    figures.zoom_tokens_expired = expired;
    let calls = sim.call_log();
    figures.platform_calls = calls.len();
    for call in &calls {
        *figures.platform_calls_by_endpoint.entry(call.endpoint.clone()).or_default() += 1;
    }
    figures.platform_5xx = calls.iter().filter(|call| call.status >= 500).count();
    figures.platform_429 = calls.iter().filter(|call| call.status == 429).count();
    figures.zoom_tokens_issued = figures.platform_calls_by_endpoint.get("POST /oauth/token").copied().unwrap_or(0);
    figures.platform_timeouts = usize::try_from(puller.call_log().snapshot().transport_errors).unwrap_or(usize::MAX);
    figures.seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    figures.sessions_left = pass_figures.sessions_left;
    sim.shutdown().await;
    Ok(figures)
}
