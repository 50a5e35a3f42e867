//! The pull-side API clients against the platform simulator over real HTTP (DESIGN 11): the
//! FIFO throttle's order and rate as the simulator saw them, 429 handling, the paginator,
//! classified errors, and Zoom's token cache.

use platform_sim::{CallRecord, CallStats, PlatformData, PlatformSim, SimConfig};
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

/// The simulator's own record, read the way an operator would: `GET /_sim/log` and
/// `GET /_sim/calls` over HTTP.
async fn sim_log(sim: &PlatformSim) -> (Vec<CallRecord>, CallStats) {
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{}{path}", sim.url())).send();
    let log = get("/_sim/log").await.expect("GET /_sim/log").json().await.expect("call log");
    let stats = get("/_sim/calls").await.expect("GET /_sim/calls").json().await.expect("call stats");
    (log, stats)
}

fn page_of(call: &CallRecord) -> u32 {
    call.params["page"].parse().expect("page")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_queued_calls_leave_in_fifo_order_never_more_than_twenty_a_second() {
    let sim = start(30).await;
    let client = everwebinar(&sim, &sim.api_key(), 20);
    client.call_log().trace_departures();
    // Queued in page order: join_all polls each future once, in order, before any can finish.
    let calls = futures::future::join_all((1..=500u32).map(|page| client.registrants_page("123", None, page)));
    // Halfway through, the platform answers one call 429 whatever its window holds.
    let inject = async {
        let deadline = Instant::now() + Duration::from_secs(120);
        while sim.call_log().len() < 250 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        sim.update_knobs(|knobs| knobs.throttle_next_calls = 1);
    };
    let (results, ()) = tokio::time::timeout(Duration::from_secs(120), futures::future::join(calls, inject))
        .await
        .expect("500 calls within two minutes");
    assert!(results.iter().all(Result::is_ok), "{:?}", results.iter().find(|r| r.is_err()));

    let (log, stats) = sim_log(&sim).await;
    assert_eq!(log, sim.call_log(), "GET /_sim/log is the simulator's log");
    // Never more than 20 in any one-second window: sliding, by the simulator's clock, and per
    // whole second of its per-second log.
    let answered: Vec<_> = log.iter().filter(|call| call.status != 429).collect();
    let times: Vec<u64> = answered.iter().map(|call| call.at_ms).collect();
    let busiest = max_in_any_second(&times);
    assert!(busiest <= 20, "{busiest} calls arrived within one second");
    assert!(stats.max_accepted_in_any_window <= 20, "{:?}", stats.per_second);
    assert!(stats.per_second.iter().all(|second| second.calls <= 20), "{:?}", stats.per_second);
    // The throttle never earned a 429: the one the platform answered is the injected one.
    let limited: Vec<_> = log.iter().enumerate().filter(|(_, call)| call.status == 429).collect();
    assert_eq!((limited.len(), stats.http_429), (1, 1), "{:?}", stats.per_second);
    assert_eq!(client.call_log().snapshot().http_429, 1);
    // FIFO where the bridge decides it: by the client's own record, every page left the throttle
    // once on its first attempt, in the order it was queued; the refused call went once more.
    let mut departures = client.call_log().departures();
    departures.sort_by_key(|departure| departure.number);
    let first_attempts: Vec<u32> = departures
        .iter()
        .filter(|departure| departure.attempt == 1)
        .map(|departure| {
            let page = departure.label.split('&').find_map(|pair| pair.strip_prefix("page="));
            page.and_then(|page| page.parse().ok()).expect("a page in the label")
        })
        .collect();
    assert_eq!(first_attempts, (1..=500).collect::<Vec<u32>>(), "pages left the throttle out of order");
    assert_eq!(departures.len(), 501, "500 first attempts and the retry of the refused call");
    assert!(departures.iter().all(|departure| !departure.label.contains("api_key")), "no credential in the record");
    // FIFO: calls leave the throttle in the order they were queued, at least 25 ms apart, so
    // pages arrive in that order too - up to this shared machine's stalls between a call leaving
    // and the simulator stamping it (two calls on two connections can swap). No page may arrive
    // more than `JITTER_MS` after a page queued behind it; swaps within that are counted.
    const JITTER_MS: u64 = 250;
    let mut seen = std::collections::BTreeSet::new();
    let first_arrivals: Vec<&CallRecord> = log.iter().filter(|call| seen.insert(page_of(call))).collect();
    assert_eq!(first_arrivals.len(), 500);
    let mut swapped = 0;
    for (index, call) in first_arrivals.iter().enumerate() {
        for later in &first_arrivals[index + 1..] {
            if page_of(later) < page_of(call) {
                swapped += 1;
                assert!(
                    call.at_ms <= later.at_ms + JITTER_MS,
                    "page {} overtook page {} by {} ms",
                    page_of(call),
                    page_of(later),
                    later.at_ms - call.at_ms
                );
            }
        }
    }
    let (at, refused) = limited[0];
    let pages: Vec<u32> = answered.iter().map(|call| page_of(call)).collect();
    assert_eq!(pages.iter().copied().collect::<std::collections::BTreeSet<_>>().len(), 500, "every page answered once");
    // The refused call waited at least a second and went again at the head of the queue: only
    // calls already on their way when the 429 came back arrived in between.
    let (gap, retry) = log[at + 1..]
        .iter()
        .enumerate()
        .find(|(_, call)| call.params == refused.params)
        .expect("the refused call went again");
    assert_eq!(retry.status, 200, "the same call succeeds");
    assert!(retry.at_ms - refused.at_ms >= 1000, "retried after {} ms", retry.at_ms - refused.at_ms);
    assert!(log[at + 1..at + 1 + gap].iter().all(|call| call.at_ms < refused.at_ms + 1000), "{gap} calls overtook it");
    assert!(
        log[at + 1..].iter().all(|call| page_of(call) >= page_of(refused) || call.at_ms <= refused.at_ms + JITTER_MS),
        "a call queued before the refused one arrived after it"
    );
    // Figures, not assertions on speed.
    let first_ok = times.first().copied().unwrap_or(0);
    let before: Vec<u64> = times.iter().copied().filter(|t| *t <= refused.at_ms).collect();
    let span_ms = before.last().copied().unwrap_or(0).saturating_sub(first_ok).max(1);
    println!(
        "500 calls: {:.2} calls/s before the injected 429 ({} calls in {span_ms} ms), busiest second {busiest}, \
         {} answered 429 (1 injected), {swapped} pages swapped on the way",
        (before.len().saturating_sub(1)) as f64 * 1000.0 / span_ms as f64,
        before.len(),
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
