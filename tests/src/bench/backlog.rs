//! Draining a backlog: the whole log is ingested into a SQLite queue first, then a consumer
//! process drains it into a simulator that enforces the cap. Gives the rate cap, the call
//! economy, the consumer's peak RSS and a convergence check against the ground truth.

use crate::consumer_role::DrainReport;
use crate::economy::{Economy, economy};
use crate::ingest_rate::secrets;
use crate::stats::round3;
use anyhow::{Context as _, ensure};
use klicktipp_sim::{Knobs, Simulator};
use serde::Serialize;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;
use webinar_bridge::adapters::memory::QueueSettings;
use webinar_bridge::adapters::sqlite::{SqliteDb, SqliteQueue};
use webinar_bridge::ingest::Ingest;
use webinar_bridge_tests::generator::Log;
use webinar_bridge_tests::harness::simulator_config;

#[derive(Debug, Clone, Serialize)]
pub struct RateCap {
    pub cap: u32,
    pub achieved_rps: f64,
    pub utilization: f64,
    pub http_429: u64,
    pub calls: usize,
    /// First to last call in the simulator's log.
    pub span_seconds: f64,
    /// Most calls the simulator handled within any 1000 ms (its rolling window).
    pub max_calls_in_any_second: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Convergence {
    pub contacts: usize,
    pub matching: usize,
    /// A few e-mails whose tags differ from the ground truth.
    pub mismatched: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SqliteIngest {
    pub requests: usize,
    pub seconds: f64,
    pub requests_per_second: f64,
}

pub struct Backlog {
    pub rate_cap: RateCap,
    pub economy: Economy,
    pub convergence: Convergence,
    pub drain: DrainReport,
    pub sqlite_ingest: SqliteIngest,
}

/// The simulator's account with the cap enforced.
pub async fn capped_simulator(cap: u32) -> anyhow::Result<Simulator> {
    let mut config = simulator_config();
    config.knobs = Knobs { rate_limit_per_second: Some(cap), ..Knobs::default() };
    klicktipp_sim::start(config, "127.0.0.1:0").await
}

pub async fn run(log: &Log, cap: u32, workdir: &Path) -> anyhow::Result<Backlog> {
    let db_path = workdir.join("backlog.db");
    let sqlite_ingest = fill_queue(log, &db_path).await?;
    let simulator = capped_simulator(cap).await?;
    let drain = drain_in_child(&db_path, &simulator.url(), cap).await?;
    let requests = simulator.request_log();
    ensure!(requests.len() > 1, "the consumer made {} KlickTipp calls", requests.len());
    let span_ms = requests.last().map_or(0, |last| last.at_ms) - requests[0].at_ms;
    let span_seconds = span_ms as f64 / 1000.0;
    // Calls per second between the first and the last call: N calls span N - 1 intervals.
    let achieved = (requests.len() - 1) as f64 / span_seconds.max(1e-3);
    let rate_cap = RateCap {
        cap,
        achieved_rps: round3(achieved),
        utilization: round3(achieved / f64::from(cap)),
        http_429: simulator.count_status(429),
        calls: requests.len(),
        span_seconds: round3(span_seconds),
        max_calls_in_any_second: max_in_window(&requests.iter().map(|request| request.at_ms).collect::<Vec<_>>(), 1000),
    };
    let convergence = convergence(log, &simulator);
    let economy = economy(log, simulator.calls_by_endpoint());
    simulator.shutdown().await;
    Ok(Backlog { rate_cap, economy, convergence, drain, sqlite_ingest })
}

/// Every request through the real ingest into the queue `serve` would use.
pub async fn fill_queue(log: &Log, db_path: &Path) -> anyhow::Result<SqliteIngest> {
    let db = SqliteDb::open(db_path)?;
    let ingest = Ingest::new(Arc::new(SqliteQueue::new(db, QueueSettings::default())), secrets(log));
    let raw: Vec<_> = log.requests.iter().map(|request| request.to_raw()).collect();
    let started = Instant::now();
    for request in &raw {
        let response = ingest.handle(request).await;
        ensure!(response.status == 200, "ingest answered {} to {}: {}", response.status, request.path, response.body);
    }
    let seconds = started.elapsed().as_secs_f64();
    // Dropping the last handle closes the connection, so the child finds a checkpointed file.
    drop(ingest);
    Ok(SqliteIngest {
        requests: raw.len(),
        seconds: round3(seconds),
        requests_per_second: round3(raw.len() as f64 / seconds.max(1e-9)),
    })
}

pub async fn drain_in_child(db_path: &Path, sim_url: &str, cap: u32) -> anyhow::Result<DrainReport> {
    let exe = std::env::current_exe().context("cannot find the bench binary to run the consumer")?;
    let args =
        ["--role", "consumer", "--db", &db_path.to_string_lossy(), "--sim-url", sim_url, "--cap", &cap.to_string()]
            .map(str::to_owned);
    let output = tokio::task::spawn_blocking(move || Command::new(exe).args(args).output()).await??;
    ensure!(
        output.status.success(),
        "the consumer process failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().context("the consumer process printed nothing")?;
    serde_json::from_str(line).with_context(|| format!("the consumer's report is not JSON: {line}"))
}

/// The most timestamps (sorted, ms) within any window of `window_ms` (end exclusive).
pub fn max_in_window(at_ms: &[u64], window_ms: u64) -> usize {
    let mut start = 0;
    let mut most = 0;
    for (end, at) in at_ms.iter().enumerate() {
        while at_ms[start] + window_ms <= *at {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most
}

pub fn convergence(log: &Log, simulator: &Simulator) -> Convergence {
    let expected = log.expected_tags();
    let actual: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        simulator.contacts().into_iter().map(|contact| (contact.email, contact.tags.into_iter().collect())).collect();
    let mismatched: Vec<String> = expected
        .iter()
        .filter(|(email, tags)| actual.get(*email) != Some(*tags))
        .map(|(email, _)| email.clone())
        .collect();
    Convergence {
        contacts: expected.len(),
        matching: expected.len() - mismatched.len(),
        mismatched: mismatched.into_iter().take(5).collect(),
    }
}
