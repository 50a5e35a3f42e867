//! The pull side (DESIGN 10 "platform pull"): backfilling one EverWebinar webinar of many
//! registrants from the platform simulator (which enforces 20 calls/s per API key and answers
//! 429 above it) through the real API client and its FIFO throttle, then draining the events
//! through the real consumer (a process of its own) into the KlickTipp simulator at its cap.
//!
//! Figures: platform calls/s while pages remain (the median over whole seconds of the
//! simulator's log, and its ratio to 20), 429s, FIFO order, then KlickTipp calls against their
//! lower bound and every contact against the oracle.
//!
//! FIFO is judged on what the bridge controls: the order pages left the throttle, recorded by
//! the client (`CallLog::trace_departures`). Two calls on two connections can still reach
//! the simulator the other way round (a stalled thread on a loaded machine); those arrival swaps
//! are counted apart, with the largest overtake, and set against [`ARRIVAL_JITTER_MS`] (the
//! tolerance of tests/tests/platform_pull.rs) as a figure, not a bar.

use crate::backlog::{capped_simulator, drain_in_child};
use crate::consumer_role::DrainReport;
use crate::economy::lower_bound_calls;
use crate::stats::{median, round3};
use anyhow::{Context as _, ensure};
use platform_sim::{CallRecord, PlatformData, PlatformSim, SimConfig};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;
use webinar_bridge::Secret;
use webinar_bridge::adapters::memory::QueueSettings;
use webinar_bridge::adapters::sqlite::{SqliteDb, SqliteQueue};
use webinar_bridge::platforms::DepartureRecord;
use webinar_bridge::platforms::Platform;
use webinar_bridge::platforms::config::PlatformConfig;
use webinar_bridge::platforms::genesis::RegistrantsPage;
use webinar_bridge::platforms::pull::{Puller, enqueue};
use webinar_bridge_tests::oracle::expected_contacts;

/// The platform's limit per API key (and the throttle's default).
pub const PLATFORM_RATE: u32 = 20;
pub const WEBINAR_ID: &str = "4242";
const SCHEDULE: u64 = 7;
const DURATION_MINUTES: u64 = 60;
const REGISTRANTS_ENDPOINT: &str = "POST /everwebinar/registrants";
/// How far a page may arrive at the simulator after a page that left the throttle behind it.
pub const ARRIVAL_JITTER_MS: u64 = 250;

#[derive(Debug, Clone, Serialize)]
pub struct Reconcile {
    pub registrants: usize,
    pub page_size: usize,
    pub pages: usize,
    pub platform: PlatformFigures,
    pub events: usize,
    pub klicktipp: KlickTippFigures,
    pub convergence: crate::backlog::Convergence,
    pub consumer_drain: DrainReport,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlatformFigures {
    pub rate_limit: u32,
    pub calls: usize,
    pub calls_by_endpoint: BTreeMap<String, u64>,
    /// First to last `/registrants` call in the simulator's log.
    pub span_seconds: f64,
    /// (calls - 1) / span over that stretch.
    pub mean_rps: f64,
    /// Calls in each whole second while pages remained (from the first page call on).
    pub per_second: Vec<u64>,
    pub median_rps: f64,
    /// `median_rps / rate_limit`.
    pub utilization: f64,
    pub max_calls_in_any_second: usize,
    pub http_429: u64,
    /// Pages left the throttle in the order they were queued (1, 2, 3, ...), each once on its
    /// first attempt (by the client's departure record).
    pub fifo: bool,
    /// Pages that left after a page queued behind them (0 when `fifo`).
    pub pages_out_of_order: usize,
    /// Pairs of pages that first arrived at the simulator the other way round from how they left.
    pub arrival_swaps: usize,
    /// The most milliseconds by which a page arrived after one that left behind it (0 if none).
    pub arrival_max_overtake_ms: u64,
    /// Every arrival swap within [`ARRIVAL_JITTER_MS`].
    pub arrival_within_jitter: bool,
    pub pull_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct KlickTippFigures {
    pub cap: u32,
    pub contacts: usize,
    pub calls: u64,
    pub lower_bound_calls: u64,
    pub ratio_to_lower_bound: f64,
    pub http_429: u64,
    pub calls_by_endpoint: BTreeMap<String, u64>,
}

/// A small deterministic generator (splitmix64), so a seed gives the same webinar.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A whole number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One EverWebinar webinar, one ended session, `registrants` people: about 55% attended live
/// (some all the way), the rest no-shows; some watched the replay; a few bought.
pub fn webinar_document(registrants: usize, seed: u64) -> Value {
    let mut draw = Draw(seed ^ 0x005E_ED0F_BAC4_F111);
    let start = chrono::Utc::now() - chrono::Duration::days(2);
    let people: Vec<Value> = (0..registrants)
        .map(|index| {
            let mut person = json!({
                "lead_id": 100_000 + index, "email": format!("backfill{index}@example.com"),
                "first_name": format!("Person{index}"), "schedule": SCHEDULE,
                "signup_date": (start - chrono::Duration::hours(24 + (index % 48) as i64)).format("%Y-%m-%d %H:%M:%S").to_string(),
                "attended_live": 2, "attended_replay": 0, "purchased_live": 0, "purchased_replay": 0,
            });
            if draw.below(100) < 55 {
                let minutes = 3 + draw.below(DURATION_MINUTES - 2);
                person["attended_live"] = json!(if minutes >= 48 { 4 } else { 3 });
                person["time_live"] = json!(format!("{}:{:02}:{:02}", minutes / 60, minutes % 60, draw.below(60)));
                if draw.below(100) < 8 {
                    person["purchased_live"] = json!(1);
                    person["revenue_live"] = json!("497");
                }
            } else if draw.below(100) < 30 {
                person["attended_replay"] = json!(1);
                person["time_replay"] = json!(format!("0:{:02}:00", 5 + draw.below(50)));
                if draw.below(100) < 5 {
                    person["purchased_replay"] = json!(1);
                    person["revenue_replay"] = json!("497");
                }
            }
            person
        })
        .collect();
    json!({"everwebinar": {"webinars": [{
        "webinar_id": WEBINAR_ID, "name": "Backfill Masterclass", "timezone": "UTC",
        "duration_minutes": DURATION_MINUTES,
        "schedules": [{"schedule": SCHEDULE, "date": start.format("%Y-%m-%d %-H:%M").to_string()}],
        "registrants": people}]}})
}

pub async fn run(registrants: usize, seed: u64, cap: u32, workdir: &Path) -> anyhow::Result<Reconcile> {
    let data = PlatformData::from_json(&webinar_document(registrants, seed).to_string())?;
    let platform = PlatformSim::start(SimConfig::with_data(data)).await?;
    let page_size = platform.knobs().jam_page_size;
    let config = PlatformConfig {
        everwebinar_api_key: Some(Secret::new(platform.api_key())),
        genesis_base_url: platform.url(),
        rate_per_second: PLATFORM_RATE,
        ..PlatformConfig::default()
    };
    let puller = Puller::from_config(&config).context("cannot build the EverWebinar client")?;
    puller.call_log().trace_departures();

    // The backfill: pull every page through the throttle, then enqueue as `backfill` does.
    let started = Instant::now();
    let mut pages = 0;
    let mapped = puller
        .pull_genesis(Platform::EverWebinar, WEBINAR_ID, None, None, chrono::Utc::now(), |_: &RegistrantsPage| {
            pages += 1
        })
        .await
        .context("the backfill pull failed")?;
    let pull_seconds = started.elapsed().as_secs_f64();
    let log = platform.call_log();
    let departed = departure_pages(&puller.call_log().departures());
    let platform_figures = platform_figures(&log, &departed, pull_seconds);
    platform.shutdown().await;
    ensure!(!mapped.events.is_empty(), "the pull mapped no events");

    let db_path = workdir.join("reconcile.db");
    {
        let queue = SqliteQueue::new(SqliteDb::open(&db_path)?, QueueSettings::default());
        enqueue(&queue, &mapped.events).await.context("cannot enqueue the pulled events")?;
    }
    let klicktipp = capped_simulator(cap).await?;
    let consumer_drain = drain_in_child(&db_path, &klicktipp.url(), cap).await?;

    let expected: BTreeMap<String, BTreeSet<String>> =
        expected_contacts(&mapped.events).into_iter().map(|(email, contact)| (email, contact.tags)).collect();
    let actual: BTreeMap<String, BTreeSet<String>> =
        klicktipp.contacts().into_iter().map(|contact| (contact.email, contact.tags.into_iter().collect())).collect();
    let mismatched: Vec<String> = expected
        .iter()
        .filter(|(email, tags)| actual.get(*email) != Some(*tags))
        .map(|(email, _)| email.clone())
        .collect();
    let convergence = crate::backlog::Convergence {
        contacts: expected.len(),
        matching: expected.len() - mismatched.len(),
        mismatched: mismatched.into_iter().take(5).collect(),
    };
    let calls_by_endpoint = klicktipp.calls_by_endpoint();
    let calls: u64 = calls_by_endpoint.values().sum();
    let (lower_bound, _) = lower_bound_calls(&expected);
    let klicktipp_figures = KlickTippFigures {
        cap,
        contacts: expected.len(),
        calls,
        lower_bound_calls: lower_bound,
        ratio_to_lower_bound: round3(calls as f64 / lower_bound.max(1) as f64),
        http_429: klicktipp.count_status(429),
        calls_by_endpoint,
    };
    klicktipp.shutdown().await;
    Ok(Reconcile {
        registrants,
        page_size,
        pages,
        platform: platform_figures,
        events: mapped.events.len(),
        klicktipp: klicktipp_figures,
        convergence,
        consumer_drain,
    })
}

/// The pages of `/registrants` calls in the order they left the throttle, first attempts only.
fn departure_pages(departures: &[DepartureRecord]) -> Vec<u64> {
    let mut first: Vec<&DepartureRecord> = departures
        .iter()
        .filter(|departure| departure.endpoint == REGISTRANTS_ENDPOINT && departure.attempt == 1)
        .collect();
    first.sort_by_key(|departure| departure.number);
    first.iter().filter_map(|departure| page_of(&departure.label)).collect()
}

fn page_of(label: &str) -> Option<u64> {
    label.split('&').find_map(|pair| pair.strip_prefix("page=")).and_then(|page| page.parse().ok())
}

/// Pages after a page that came before them in `order` (as a queue of 1, 2, 3, ... would not).
fn out_of_order(order: &[u64]) -> usize {
    let mut highest = 0;
    let mut count = 0;
    for page in order {
        if *page < highest {
            count += 1;
        }
        highest = highest.max(*page);
    }
    count
}

fn platform_figures(log: &[CallRecord], departed: &[u64], pull_seconds: f64) -> PlatformFigures {
    let mut calls_by_endpoint: BTreeMap<String, u64> = BTreeMap::new();
    for call in log {
        *calls_by_endpoint.entry(call.endpoint.clone()).or_default() += 1;
    }
    let pages: Vec<&CallRecord> = log.iter().filter(|call| call.endpoint == REGISTRANTS_ENDPOINT).collect();
    let (first, last) = (pages.first().map_or(0, |c| c.at_ms), pages.last().map_or(0, |c| c.at_ms));
    let span_ms = last.saturating_sub(first);
    // Whole seconds from the first page call on, while pages remained.
    let whole_seconds = span_ms / 1000;
    let mut per_second = vec![0u64; whole_seconds as usize];
    for call in log.iter().filter(|call| call.at_ms >= first) {
        let second = ((call.at_ms - first) / 1000) as usize;
        if let Some(count) = per_second.get_mut(second) {
            *count += 1;
        }
    }
    let mean = (pages.len().saturating_sub(1)) as f64 / (span_ms as f64 / 1000.0).max(1e-3);
    // A pull shorter than two seconds has no whole second to take a median of: the mean stands in.
    let median_rps = if per_second.is_empty() {
        mean
    } else {
        median(&per_second.iter().map(|count| *count as f64).collect::<Vec<_>>())
    };
    // FIFO where the bridge decides it: the departures, every page once, in queue order.
    let mut unique = BTreeSet::new();
    let fifo = !departed.is_empty()
        && departed.iter().all(|page| unique.insert(*page))
        && departed.iter().zip(1..).all(|(page, expected)| *page == expected);
    let pages_out_of_order = out_of_order(departed);
    // Arrivals at the simulator: pairs that swapped on the way, and by how much.
    let mut seen = BTreeSet::new();
    let arrivals: Vec<(u64, u64)> = pages
        .iter()
        .filter_map(|call| call.params.get("page").and_then(|page| page.parse().ok()).map(|page| (page, call.at_ms)))
        .filter(|(page, _)| seen.insert(*page))
        .collect();
    let (mut arrival_swaps, mut arrival_max_overtake_ms) = (0, 0);
    for (index, (page, at)) in arrivals.iter().enumerate() {
        for (later_page, later_at) in &arrivals[index + 1..] {
            if later_page < page {
                arrival_swaps += 1;
                arrival_max_overtake_ms = arrival_max_overtake_ms.max(later_at.saturating_sub(*at));
            }
        }
    }
    let times: Vec<u64> = log.iter().filter(|call| call.status != 429).map(|call| call.at_ms).collect();
    PlatformFigures {
        rate_limit: PLATFORM_RATE,
        calls: log.len(),
        calls_by_endpoint,
        span_seconds: round3(span_ms as f64 / 1000.0),
        mean_rps: round3(mean),
        per_second,
        median_rps: round3(median_rps),
        utilization: round3(median_rps / f64::from(PLATFORM_RATE)),
        max_calls_in_any_second: crate::backlog::max_in_window(&times, 1000),
        http_429: log.iter().filter(|call| call.status == 429).count() as u64,
        fifo,
        pages_out_of_order,
        arrival_swaps,
        arrival_max_overtake_ms,
        arrival_within_jitter: arrival_max_overtake_ms <= ARRIVAL_JITTER_MS,
        pull_seconds: round3(pull_seconds),
    }
}

impl Reconcile {
    /// The platform bar: the budget used (median >= 0.95 x 20), never exceeded, pages left in
    /// FIFO order (arrival swaps are reported beside it, not judged: the bridge does not
    /// control a loaded machine's scheduling between its socket and the simulator's).
    pub fn platform_holds(&self) -> bool {
        self.platform.utilization >= crate::report::RATE_UTILIZATION_BAR
            && self.platform.http_429 == 0
            && self.platform.max_calls_in_any_second <= PLATFORM_RATE as usize
            && self.platform.fifo
    }

    pub fn economy_holds(&self) -> bool {
        self.klicktipp.ratio_to_lower_bound <= crate::report::LOWER_BOUND_RATIO_BAR
    }

    pub fn converged(&self) -> bool {
        self.convergence.matching == self.convergence.contacts
    }
}

/// The table's lines for the section, from its JSON.
pub fn lines(reconcile: &Value) -> Vec<String> {
    let platform = &reconcile["platform"];
    let klicktipp = &reconcile["klicktipp"];
    vec![
        format!(
            "reconcile: backfill of {} EverWebinar registrants ({} pages of {}): {} platform calls in {} s",
            reconcile["registrants"],
            reconcile["pages"],
            reconcile["page_size"],
            platform["calls"],
            platform["pull_seconds"]
        ),
        format!(
            "  platform calls/s while pages remain: median {} over whole seconds {} (x{} of {}), mean {}, most in any second {}, {} x 429, left in FIFO order {} ({} pages out of order), {} arrival swaps at the platform (most {} ms, within {} ms: {})",
            platform["median_rps"],
            platform["per_second"],
            platform["utilization"],
            platform["rate_limit"],
            platform["mean_rps"],
            platform["max_calls_in_any_second"],
            platform["http_429"],
            platform["fifo"],
            platform["pages_out_of_order"],
            platform["arrival_swaps"],
            platform["arrival_max_overtake_ms"],
            ARRIVAL_JITTER_MS,
            platform["arrival_within_jitter"]
        ),
        format!(
            "  KlickTipp at cap {}: {} calls for {} contacts ({} events); lower bound {} (x{}); {} x 429; {} of {} contacts as the oracle",
            klicktipp["cap"],
            klicktipp["calls"],
            klicktipp["contacts"],
            reconcile["events"],
            klicktipp["lower_bound_calls"],
            klicktipp["ratio_to_lower_bound"],
            klicktipp["http_429"],
            reconcile["convergence"]["matching"],
            reconcile["convergence"]["contacts"]
        ),
    ]
}
