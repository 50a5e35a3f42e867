//! An open-loop HTTP load generator: request `i` is sent at `start + i / rate` whatever happened
//! to earlier ones (it never waits for answers), so a server stall shows up in the percentiles
//! instead of silently lowering the rate (no coordinated omission). Latency counts from the
//! moment of sending; how late the generator itself sent (its timer ticks in whole
//! milliseconds) is reported apart, as `send_lag_p99_ms`.

use crate::stats::{percentile, round3};
use anyhow::Context as _;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use std::time::{Duration, Instant};
use webinar_bridge_tests::generator::Request;

#[derive(Debug, Clone, Serialize)]
pub struct HttpLatency {
    pub rate_per_second: u32,
    pub duration_seconds: f64,
    pub requests: usize,
    pub non_200: usize,
    pub errors: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Requests slower than the 5 ms bar.
    pub over_5_ms: usize,
    /// How late the generator sent, against its schedule.
    pub send_lag_p99_ms: f64,
}

/// A request ready to send again and again.
struct Prepared {
    url: String,
    headers: HeaderMap,
    body: Bytes,
}

fn prepare(base_url: &str, request: &Request) -> anyhow::Result<Prepared> {
    let mut headers = HeaderMap::new();
    for (name, value) in &request.headers {
        headers.insert(HeaderName::from_bytes(name.as_bytes())?, HeaderValue::from_str(value)?);
    }
    Ok(Prepared {
        url: format!("{base_url}{}", request.path_and_query()),
        headers,
        body: Bytes::from(request.body.clone()),
    })
}

/// Sends `warmup` requests, then `count` measured ones, at `rate` per second, cycling through
/// `requests`. Runs on a thread of its own with a current-thread runtime, so the generator takes
/// one core at most.
pub fn open_loop(
    base_url: &str,
    requests: &[Request],
    rate: u32,
    warmup: usize,
    count: usize,
) -> anyhow::Result<HttpLatency> {
    let prepared = requests.iter().map(|request| prepare(base_url, request)).collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!prepared.is_empty(), "no requests to send");
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime.block_on(async {
                    let client = reqwest::Client::builder().build().context("cannot build the HTTP client")?;
                    fire(&client, &prepared, rate, warmup).await;
                    let started = Instant::now();
                    let results = fire(&client, &prepared[warmup % prepared.len()..], rate, count).await;
                    Ok(summarize(rate, started.elapsed(), &results))
                })
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the load generator panicked"))?
    })
}

/// One request's fate.
struct Sent {
    /// From sending to the whole answer read.
    latency: Duration,
    /// From its scheduled time to sending.
    lag: Duration,
    /// `None` for a connection error.
    status: Option<u16>,
}

async fn fire(client: &reqwest::Client, prepared: &[Prepared], rate: u32, count: usize) -> Vec<Sent> {
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let mut tasks = Vec::with_capacity(count);
    for (index, request) in prepared.iter().cycle().take(count).enumerate() {
        let due = start + interval.mul_f64(index as f64);
        tokio::time::sleep_until(due).await;
        let sent = tokio::time::Instant::now();
        let sending = client.post(&request.url).headers(request.headers.clone()).body(request.body.clone()).send();
        tasks.push(tokio::spawn(async move {
            let status = match sending.await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    // The latency includes reading the whole answer.
                    response.bytes().await.ok().map(|_| status)
                }
                Err(_) => None,
            };
            Sent { latency: sent.elapsed(), lag: sent - due, status }
        }));
    }
    let mut results = Vec::with_capacity(count);
    for task in tasks {
        if let Ok(result) = task.await {
            results.push(result);
        }
    }
    results
}

fn summarize(rate: u32, elapsed: Duration, results: &[Sent]) -> HttpLatency {
    let ms = |duration: Duration| duration.as_secs_f64() * 1000.0;
    let millis: Vec<f64> = results.iter().map(|sent| ms(sent.latency)).collect();
    let lags: Vec<f64> = results.iter().map(|sent| ms(sent.lag)).collect();
    HttpLatency {
        rate_per_second: rate,
        duration_seconds: round3(elapsed.as_secs_f64()),
        requests: results.len(),
        non_200: results.iter().filter(|sent| sent.status.is_some_and(|status| status != 200)).count(),
        errors: results.iter().filter(|sent| sent.status.is_none()).count(),
        p50_ms: round3(percentile(&millis, 50.0)),
        p90_ms: round3(percentile(&millis, 90.0)),
        p99_ms: round3(percentile(&millis, 99.0)),
        max_ms: round3(percentile(&millis, 100.0)),
        over_5_ms: millis.iter().filter(|ms| **ms > 5.0).count(),
        send_lag_p99_ms: round3(percentile(&lags, 99.0)),
    }
}
