//! The pull-side API clients against the platform simulator over real HTTP (DESIGN 11): the
//! FIFO throttle's order and rate as the simulator saw them, 429 handling, the paginator,
//! classified errors, and Zoom's token cache.

use platform_sim::{PlatformData, PlatformSim, SimConfig};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use webinar_bridge::Secret;
use webinar_bridge::platforms::genesis::GenesisClient;
use webinar_bridge::platforms::zoom::{ZoomClient, ZoomCredentials};
use webinar_bridge::platforms::{CallLog, FifoThrottle, Platform, PlatformError};

fn data(registrants: usize) -> PlatformData {
    let registrants: Vec<_> = (0..registrants)
        .map(|index| {
            json!({"lead_id": 1000 + index, "email": format!("p{index}@example.com"), "first_name": "P",
                   "schedule": 45, "signup_date": "2026-02-01 10:12:00", "attended_live": 1, "time_live": "0:42:10"})
        })
        .collect();
    let document = json!({
        "everwebinar": {"webinars": [{"webinar_id": "123", "name": "Masterclass", "timezone": "Europe/Berlin",
            "duration_minutes": 60, "schedules": [{"schedule": 45, "date": "2026-02-10 9:00"}],
            "registrants": registrants}]},
        "zoom": {"webinars": [{"id": "85012345678", "uuid": "/k7Zq//9XvRTn2wYb3cQp1Lmg==", "topic": "Demo Webinar",
            "start_time": "2026-01-15T17:00:00Z", "duration": 60,
            "registrants": [{"id": "reg_1", "email": "a@example.com", "first_name": "A", "status": "approved"}],
            "participants": [{"registrant_id": "reg_1", "user_email": "", "name": "A",
                "join_time": "2026-01-15T17:02:00Z", "leave_time": "2026-01-15T17:40:00Z", "duration": 2280}],
            "absentees": [{"id": "reg_2", "email": "b@example.com", "first_name": "B"}]}]}
    });
    PlatformData::from_json(&document.to_string()).expect("platform document")
}

async fn start(registrants: usize) -> PlatformSim {
    PlatformSim::start(SimConfig::with_data(data(registrants))).await.expect("start platform-sim")
}

fn everwebinar(sim: &PlatformSim, key: &str, rate: u32) -> GenesisClient {
    let throttle = Arc::new(FifoThrottle::new(rate));
    GenesisClient::new(Platform::EverWebinar, &sim.url(), Secret::new(key), throttle, CallLog::default())
        .expect("client")
}

/// The most calls whose arrival times fall within any one-second window.
fn max_in_any_second(times_ms: &[u64]) -> usize {
    times_ms
        .iter()
        .map(|start| times_ms.iter().filter(|t| **t >= *start && **t < start + 1000).count())
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_queued_calls_leave_in_fifo_order_never_more_than_twenty_a_second() {
    let sim = start(30).await;
    let client = everwebinar(&sim, &sim.api_key(), 20);
    // Queued in page order: join_all polls each future once, in order, before any can finish.
    let calls = (1..=500u32).map(|page| client.registrants_page("123", None, page));
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(Result::is_ok), "{:?}", results.iter().find(|r| r.is_err()));

    let log = sim.call_log();
    let answered: Vec<_> = log.iter().filter(|call| call.status != 429).collect();
    let pages: Vec<u32> = answered.iter().map(|call| call.params["page"].parse().expect("page")).collect();
    assert_eq!(pages, (1..=500).collect::<Vec<_>>(), "calls arrived out of order");
    let times: Vec<u64> = answered.iter().map(|call| call.at_ms).collect();
    let busiest = max_in_any_second(&times);
    assert!(busiest <= 20, "{busiest} calls arrived within one second");
    let stats = sim.stats();
    assert!(stats.max_accepted_in_any_window <= 20, "{:?}", stats.per_second);
    assert!(stats.per_second.iter().all(|second| second.calls - second.http_429 <= 20), "{:?}", stats.per_second);
    // Calls leave evenly spaced; only a stall of this shared machine between leaving and
    // arriving can bunch them up into a 429, which the throttle then absorbs in order.
    assert!(stats.http_429 <= 3, "{:?}", stats.per_second);
    // Figures, not assertions on speed.
    let span_ms = times.last().copied().unwrap_or(0).saturating_sub(times.first().copied().unwrap_or(0)).max(1);
    println!(
        "500 calls in {span_ms} ms: {:.1} calls/s, busiest second {busiest}, {} answered 429",
        499_000.0 / span_ms as f64,
        stats.http_429
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_rate_limited_call_waits_a_second_and_the_same_call_succeeds() {
    let sim = start(3).await;
    sim.update_knobs(|knobs| knobs.throttle_next_calls = 1);
    let client = everwebinar(&sim, &sim.api_key(), 20);
    let started = Instant::now();
    let page = client.registrants_page("123", None, 1).await.expect("the retry succeeds");
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(page.registrants.len(), 3);
    let log = sim.call_log();
    assert_eq!(log.iter().map(|call| call.status).collect::<Vec<_>>(), [429, 200]);
    assert_eq!(log[0].params, log[1].params, "the same call went again");
    assert!(log[1].at_ms - log[0].at_ms >= 1000, "{} ms", log[1].at_ms - log[0].at_ms);
    assert_eq!(client.call_log().snapshot().http_429, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn every_page_is_pulled_and_records_read_leniently() {
    let sim = start(95).await;
    sim.update_knobs(|knobs| knobs.jam_page_size = 10);
    let client = everwebinar(&sim, &sim.api_key(), 20);
    let mut pages = 0;
    let registrants = client.registrants("123", None, |_| pages += 1).await.expect("registrants");
    assert_eq!((registrants.len(), pages), (95, 10));
    let emails: std::collections::BTreeSet<_> = registrants.iter().filter_map(|r| r.email.clone()).collect();
    assert_eq!(emails.len(), 95);
    assert!(registrants.iter().all(|r| r.attended_live == Some(1) && r.lead_id.is_some()));
    let details = client.webinar("123").await.expect("webinar");
    assert_eq!(details.schedules[0].schedule, "45");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_wrong_key_is_permanent_and_says_what_to_do() {
    let sim = start(1).await;
    let client = everwebinar(&sim, "an-old-key", 20);
    let error = client.webinars().await.expect_err("the key is refused");
    assert!(!error.is_retryable(), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("BRIDGE_EVERWEBINAR_API_KEY") && !text.contains("an-old-key"), "{text}");
    sim.shutdown().await;
}

#[tokio::test]
async fn server_errors_are_retried_at_the_head_of_the_queue() {
    let sim = start(2).await;
    sim.update_knobs(|knobs| knobs.fail_next_calls = 2);
    let client = everwebinar(&sim, &sim.api_key(), 20);
    let page = client.registrants_page("123", None, 1).await.expect("the third attempt succeeds");
    assert_eq!(page.registrants.len(), 2);
    sim.update_knobs(|knobs| knobs.fail_next_calls = 5);
    let error = client.registrants_page("123", None, 1).await.expect_err("gives up after three attempts");
    assert!(matches!(error, PlatformError::Server { .. }) && error.is_retryable(), "{error:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn zoom_token_is_cached_and_renewed_after_it_expires() {
    let sim = start(0).await;
    let credentials = sim.zoom_credentials();
    let client = ZoomClient::new(
        &sim.url(),
        None,
        ZoomCredentials {
            account_id: credentials.account_id,
            client_id: credentials.client_id,
            client_secret: Secret::new(credentials.client_secret),
        },
        Arc::new(FifoThrottle::new(10)),
        CallLog::default(),
    )
    .expect("client");
    let uuid = "/k7Zq//9XvRTn2wYb3cQp1Lmg==";
    let participants = client.participants(uuid).await.expect("participants");
    assert_eq!(participants[0].registrant_id.as_deref(), Some("reg_1"));
    assert_eq!(client.absentees(uuid).await.expect("absentees")[0].email.as_deref(), Some("b@example.com"));
    assert_eq!(client.registrants("85012345678", None).await.expect("registrants").len(), 1);
    let counts = client.call_log().snapshot();
    assert_eq!(counts.by_endpoint["POST /oauth/token"], 1, "{counts:?}");

    assert!(sim.expire_tokens() >= 1);
    client.participants(uuid).await.expect("a 401 gets a new token once");
    let counts = client.call_log().snapshot();
    assert_eq!(counts.by_endpoint["POST /oauth/token"], 2, "{counts:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn wrong_zoom_credentials_are_permanent() {
    let sim = start(0).await;
    let client = ZoomClient::new(
        &sim.url(),
        None,
        ZoomCredentials { account_id: "x".into(), client_id: "y".into(), client_secret: Secret::new("z") },
        Arc::new(FifoThrottle::new(10)),
        CallLog::default(),
    )
    .expect("client");
    let error = client.absentees("abc").await.expect_err("refused");
    assert!(matches!(error, PlatformError::Unauthorized { platform: Platform::Zoom, .. }), "{error:?}");
    assert!(error.to_string().contains("ZOOM_CLIENT_SECRET"), "{error}");
    sim.shutdown().await;
}
