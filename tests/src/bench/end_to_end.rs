//! End to end without a backlog: webhooks sent to `serve` at a low rate, each matched to the
//! moment the simulator received that contact's first KlickTipp call.

use crate::backlog::capped_simulator;
use crate::serve_process::{Serve, environment};
use crate::stats::{percentile, round3};
use anyhow::{Context as _, bail};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use webinar_bridge_tests::generator::{Log, Request};

/// How long to wait for the last contact's call to arrive.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Serialize)]
pub struct EndToEnd {
    pub events: usize,
    pub rate_per_second: f64,
    pub matched: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
    /// How precisely the simulator's clock was placed on ours (half the start-up window).
    pub clock_uncertainty_ms: f64,
}

/// The first delivery of each contact's first-arriving event: each one makes the contact's
/// first KlickTipp call, so call and webhook pair up by e-mail.
fn first_contact_requests(log: &Log, events: usize) -> Vec<&Request> {
    let mut firsts: Vec<usize> = log
        .contacts
        .iter()
        .filter_map(|contact| contact.events.iter().map(|event| event.deliveries[0]).min())
        .collect();
    firsts.sort_unstable();
    firsts.into_iter().take(events).map(|index| &log.requests[index]).collect()
}

pub async fn measure(
    binary: &Path,
    log: &Log,
    workdir: &Path,
    cap: u32,
    events: usize,
    rate: f64,
) -> anyhow::Result<EndToEnd> {
    let before_start = Instant::now();
    let simulator = capped_simulator(cap).await?;
    let after_start = Instant::now();
    let half_window = (after_start - before_start) / 2;
    let sim_zero = before_start + half_window;
    let env = environment(log, &simulator.url(), &workdir.join("end_to_end.db"), cap);
    let serve = Serve::start(binary, &env, &workdir.join("end_to_end.serve.log")).await?;

    let chosen = first_contact_requests(log, events);
    let client = reqwest::Client::new();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let mut sent_at: BTreeMap<String, Instant> = BTreeMap::new();
    for (index, request) in chosen.iter().enumerate() {
        tokio::time::sleep_until(start + interval.mul_f64(index as f64)).await;
        let mut sending =
            client.post(format!("{}{}", serve.base_url, request.path_and_query())).body(request.body.clone());
        for (name, value) in &request.headers {
            sending = sending.header(name, value);
        }
        sent_at.insert(log.contacts[request.contact].email.clone(), Instant::now());
        let response = sending.send().await.context("serve did not answer")?;
        if !response.status().is_success() {
            bail!("serve answered {} to {}", response.status(), request.path);
        }
    }

    let arrived = wait_for_first_calls(&simulator, &sent_at).await;
    let latencies: Vec<f64> = sent_at
        .iter()
        .filter_map(|(email, sent)| {
            let at = sim_zero + Duration::from_millis(*arrived.get(email)?);
            Some(at.saturating_duration_since(*sent).as_secs_f64() * 1000.0)
        })
        .collect();
    serve.stop().await?;
    simulator.shutdown().await;
    Ok(EndToEnd {
        events: chosen.len(),
        rate_per_second: rate,
        matched: latencies.len(),
        p50_ms: round3(percentile(&latencies, 50.0)),
        p95_ms: round3(percentile(&latencies, 95.0)),
        max_ms: round3(percentile(&latencies, 100.0)),
        clock_uncertainty_ms: round3(half_window.as_secs_f64() * 1000.0),
    })
}

/// e-mail -> `at_ms` of its first upsert or tag call, once every e-mail has one (or time is up).
async fn wait_for_first_calls(
    simulator: &klicktipp_sim::Simulator,
    sent_at: &BTreeMap<String, Instant>,
) -> BTreeMap<String, u64> {
    let started = Instant::now();
    loop {
        let mut first: BTreeMap<String, u64> = BTreeMap::new();
        for request in simulator.request_log() {
            if !matches!(request.endpoint.as_str(), "POST /subscriber" | "POST /subscriber/tag") {
                continue;
            }
            if let Some(email) = request.body.get("email").and_then(|email| email.as_str())
                && sent_at.contains_key(email)
            {
                first.entry(email.to_owned()).or_insert(request.at_ms);
            }
        }
        if first.len() == sent_at.len() || started.elapsed() > SETTLE_LIMIT {
            return first;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
