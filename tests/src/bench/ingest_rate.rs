//! In-process ingest throughput per source: `Ingest::handle` over the memory queue on a
//! single-threaded runtime, requests per CPU-second of that one thread (DESIGN 10: >= 20,000/s
//! per core). Every repetition starts from an empty queue; the median is reported.

use crate::proc_status::thread_cpu_time;
use crate::stats::{median, round3};
use anyhow::ensure;
use bytes::Bytes;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use webinar_bridge::Secret;
use webinar_bridge::adapters::memory::MemoryQueue;
use webinar_bridge::ingest::Ingest;
use webinar_bridge::sources::{RawRequest, SourceSecrets};
use webinar_bridge_tests::generator::{Log, Tool};
use webinar_bridge_tests::harness::{GENERIC_SECRET, standard_webhook_headers};

#[derive(Debug, Clone, Serialize)]
pub struct SourceRate {
    pub source: String,
    /// Median over repetitions of requests / CPU seconds of the ingest thread.
    pub requests_per_cpu_second: f64,
    /// Median over repetitions of requests / wall seconds (lower when the machine is busy).
    pub requests_per_wall_second: f64,
    pub repetitions: usize,
    pub requests_per_repetition: usize,
    /// Distinct requests cycled through (the rest of each repetition are redeliveries).
    pub distinct_requests: usize,
}

pub fn secrets(log: &Log) -> SourceSecrets {
    SourceSecrets {
        webinarjam: Some(Secret::new(log.secrets.webinarjam.clone())),
        everwebinar: None,
        zoom: Some(Secret::new(log.secrets.zoom.clone())),
        generic: Some(Secret::new(GENERIC_SECRET)),
    }
}

/// Runs on a thread of its own with a current-thread runtime, so "per core" is one core.
pub fn measure(log: &Log, repetitions: usize, requests_per_repetition: usize) -> anyhow::Result<Vec<SourceRate>> {
    let sets = [
        ("webinarjam", tool_requests(log, Tool::WebinarJam)),
        ("zoom", tool_requests(log, Tool::Zoom)),
        ("generic", generic_requests(log)),
    ];
    let secrets = secrets(log);
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                sets.iter()
                    .map(|(source, requests)| {
                        runtime.block_on(rate_of(source, requests, &secrets, repetitions, requests_per_repetition))
                    })
                    .collect()
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the ingest measuring thread panicked"))?
    })
}

async fn rate_of(
    source: &str,
    requests: &[RawRequest],
    secrets: &SourceSecrets,
    repetitions: usize,
    per_repetition: usize,
) -> anyhow::Result<SourceRate> {
    ensure!(!requests.is_empty(), "the log has no {source} requests");
    let (mut per_cpu, mut per_wall) = (Vec::new(), Vec::new());
    // One untimed pass warms caches and allocator pools.
    run(requests, secrets, requests.len().min(per_repetition)).await?;
    for _ in 0..repetitions {
        let (cpu_before, wall_before) = (thread_cpu_time()?, Instant::now());
        run(requests, secrets, per_repetition).await?;
        let cpu = thread_cpu_time()?.saturating_sub(cpu_before).as_secs_f64();
        per_cpu.push(per_repetition as f64 / cpu.max(1e-9));
        per_wall.push(per_repetition as f64 / wall_before.elapsed().as_secs_f64().max(1e-9));
    }
    Ok(SourceRate {
        source: source.to_owned(),
        requests_per_cpu_second: round3(median(&per_cpu)),
        requests_per_wall_second: round3(median(&per_wall)),
        repetitions,
        requests_per_repetition: per_repetition,
        distinct_requests: requests.len(),
    })
}

/// `count` requests cycling through `requests`, into a fresh memory queue.
async fn run(requests: &[RawRequest], secrets: &SourceSecrets, count: usize) -> anyhow::Result<()> {
    let ingest = Ingest::new(Arc::new(MemoryQueue::default()), secrets.clone());
    for request in requests.iter().cycle().take(count) {
        let response = ingest.handle(request).await;
        ensure!(response.status == 200, "ingest answered {} to {}: {}", response.status, request.path, response.body);
    }
    Ok(())
}

fn tool_requests(log: &Log, tool: Tool) -> Vec<RawRequest> {
    log.requests
        .iter()
        .filter(|request| log.contacts[request.contact].tool == tool)
        .map(|request| request.to_raw())
        .collect()
}

/// The registrations of the log as the generic source would get them: one event per request,
/// Standard Webhooks signed.
fn generic_requests(log: &Log) -> Vec<RawRequest> {
    log.contacts
        .iter()
        .enumerate()
        .filter_map(|(index, contact)| {
            let registered = contact.events.first()?;
            let webinar = &log.webinars[contact.webinar];
            let body = serde_json::json!({
                "event_id": format!("bench-registered-{index:06}"),
                "kind": "registered",
                "occurred_at": registered.occurred_at.to_rfc3339(),
                "contact": {"email": contact.email, "first_name": contact.first_name, "last_name": contact.last_name},
                "webinar": {"id": webinar.id, "name": webinar.name, "starts_at": webinar.starts_at.to_rfc3339()},
            })
            .to_string();
            let received_at = registered.occurred_at;
            let headers = standard_webhook_headers(&format!("msg_{index:06}"), received_at.timestamp(), &body);
            Some(RawRequest {
                method: "POST".to_owned(),
                path: "/hooks/generic/Livestorm".to_owned(),
                query: None,
                headers,
                body: Bytes::from(body),
                received_at,
            })
        })
        .collect()
}
