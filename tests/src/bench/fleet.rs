//! The fleet: the backlog again, drained by several consumer *processes* at once, each with a
//! limiter of `cap / instances`, into one simulator enforcing `cap` - as Lambda's
//! `MaximumConcurrency` shares KlickTipp's cap. The figures: the rate the fleet achieved, 429s,
//! each instance's first second (a fresh limiter must not burst), convergence, dead letters.

use crate::backlog::{Convergence, capped_simulator, convergence, fill_queue, max_in_window};
use crate::consumer_role::DrainReport;
use crate::stats::round3;
use anyhow::{Context as _, ensure};
use klicktipp_sim::LoggedRequest;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use webinar_bridge::adapters::memory::QueueSettings;
use webinar_bridge::adapters::sqlite::{SqliteDb, SqliteQueue};
use webinar_bridge_tests::generator::Log;

/// Lambda's `MaximumConcurrency` in the bench (DESIGN 10: N = 4).
pub const INSTANCES: usize = 4;

#[derive(Debug, Clone, Serialize)]
pub struct Fleet {
    pub cap: u32,
    pub instances: usize,
    /// Each instance's limiter: `cap / instances` calls per second.
    pub rate_per_instance: f64,
    pub achieved_rps: f64,
    pub utilization: f64,
    pub http_429: u64,
    pub calls: usize,
    pub span_seconds: f64,
    /// Most calls the simulator handled within any 1000 ms, all instances together.
    pub max_calls_in_any_second: usize,
    /// Most calls one instance made in the first second after its first call.
    pub max_first_second_calls: usize,
    /// Per instance (told apart by their KlickTipp sessions; the logins carry none).
    pub per_instance: Vec<InstanceFigures>,
    pub dead_letters: usize,
    pub convergence: Convergence,
    /// What the consumer processes reported, added up.
    pub applied: usize,
    pub retried: usize,
    pub rejected: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct InstanceFigures {
    pub calls: usize,
    /// Calls within 1000 ms of the instance's first call in its session.
    pub first_second_calls: usize,
    pub max_calls_in_any_second: usize,
    pub http_429: usize,
}

impl Fleet {
    /// Each instance may start a slot every `1.02 / rate`: at most `ceil(rate)` in any second.
    pub fn first_seconds_hold(&self) -> bool {
        self.max_first_second_calls <= self.rate_per_instance.ceil() as usize
    }
}

pub async fn run(log: &Log, cap: u32, workdir: &Path) -> anyhow::Result<Fleet> {
    let db_path = workdir.join("fleet.db");
    fill_queue(log, &db_path).await?;
    let simulator = capped_simulator(cap).await?;
    let rate_per_instance = f64::from(cap) / INSTANCES as f64;
    let reports = drain_in_children(&db_path, &simulator.url(), rate_per_instance).await?;
    let requests = simulator.request_log();
    ensure!(requests.len() > 1, "the fleet made {} KlickTipp calls", requests.len());
    let span_ms = requests.last().map_or(0, |last| last.at_ms) - requests[0].at_ms;
    let span_seconds = span_ms as f64 / 1000.0;
    let achieved = (requests.len() - 1) as f64 / span_seconds.max(1e-3);
    let per_instance = per_instance(&requests);
    let queue = SqliteQueue::new(SqliteDb::open(&db_path)?, QueueSettings::default());
    let dead_letters = queue.dead_letters().await?.len();
    let fleet = Fleet {
        cap,
        instances: INSTANCES,
        rate_per_instance: round3(rate_per_instance),
        achieved_rps: round3(achieved),
        utilization: round3(achieved / f64::from(cap)),
        http_429: simulator.count_status(429),
        calls: requests.len(),
        span_seconds: round3(span_seconds),
        max_calls_in_any_second: max_in_window(&requests.iter().map(|request| request.at_ms).collect::<Vec<_>>(), 1000),
        max_first_second_calls: per_instance.iter().map(|instance| instance.first_second_calls).max().unwrap_or(0),
        per_instance,
        dead_letters,
        convergence: convergence(log, &simulator),
        applied: reports.iter().map(|report| report.applied).sum(),
        retried: reports.iter().map(|report| report.retried).sum(),
        rejected: reports.iter().map(|report| report.rejected).sum(),
    };
    simulator.shutdown().await;
    Ok(fleet)
}

/// Starts every instance at once, then waits for all of them.
async fn drain_in_children(db_path: &Path, sim_url: &str, rate: f64) -> anyhow::Result<Vec<DrainReport>> {
    let exe = std::env::current_exe().context("cannot find the bench binary to run the consumers")?;
    let args =
        ["--role", "consumer", "--db", &db_path.to_string_lossy(), "--sim-url", sim_url, "--rate", &rate.to_string()]
            .map(str::to_owned);
    let mut children = Vec::new();
    for _ in 0..INSTANCES {
        let child = Command::new(&exe)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start a consumer process")?;
        children.push(child);
    }
    let mut reports = Vec::new();
    for child in children {
        let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
        ensure!(
            output.status.success(),
            "a fleet consumer process failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout.lines().last().context("a fleet consumer process printed nothing")?;
        reports.push(serde_json::from_str(line).with_context(|| format!("a consumer's report is not JSON: {line}"))?);
    }
    Ok(reports)
}

/// The simulator's log split by session cookie: one session per instance. The logins carry no
/// cookie; the n-th login opened the session whose first call came n-th (each instance logs in
/// and makes its next call one slot later), so each instance's first second starts at its login.
fn per_instance(requests: &[LoggedRequest]) -> Vec<InstanceFigures> {
    let mut sessions: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut statuses: BTreeMap<&str, usize> = BTreeMap::new();
    let mut logins = Vec::new();
    for request in requests {
        match request.headers.get("cookie") {
            Some(cookie) => {
                sessions.entry(cookie.as_str()).or_default().push(request.at_ms);
                *statuses.entry(cookie.as_str()).or_default() += usize::from(request.status == 429);
            }
            None if request.endpoint == "POST /account/login" => logins.push(request.at_ms),
            None => {}
        }
    }
    let mut by_first_call: Vec<(&str, Vec<u64>)> = sessions.into_iter().collect();
    by_first_call.sort_by_key(|(_, at_ms)| at_ms.first().copied());
    let mut figures: Vec<InstanceFigures> = by_first_call
        .into_iter()
        .enumerate()
        .map(|(index, (cookie, mut at_ms))| {
            if let Some(login) = logins.get(index) {
                at_ms.insert(0, *login);
            }
            let first = at_ms.first().copied().unwrap_or_default();
            InstanceFigures {
                calls: at_ms.len(),
                first_second_calls: at_ms.iter().filter(|at| **at < first + 1000).count(),
                max_calls_in_any_second: max_in_window(&at_ms, 1000),
                http_429: statuses.get(cookie).copied().unwrap_or_default(),
            }
        })
        .collect();
    figures.sort_by_key(|instance| std::cmp::Reverse(instance.calls));
    figures
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(at_ms: u64, endpoint: &str, cookie: Option<&str>, status: u16) -> LoggedRequest {
        LoggedRequest {
            at_ms,
            method: "POST".to_owned(),
            path: String::new(),
            endpoint: endpoint.to_owned(),
            body: serde_json::Value::Null,
            status,
            headers: cookie.map(|cookie| ("cookie".to_owned(), cookie.to_owned())).into_iter().collect(),
        }
    }

    #[test]
    fn calls_are_told_apart_by_session_and_each_login_opens_its_first_second() {
        let requests = [
            call(0, "POST /account/login", None, 200),
            call(5, "POST /account/login", None, 200),
            call(200, "POST /subscriber", Some("SSESSa=1"), 200),
            call(210, "POST /subscriber", Some("SSESSb=2"), 200),
            call(400, "POST /subscriber", Some("SSESSa=1"), 429),
            call(990, "POST /subscriber", Some("SSESSb=2"), 200),
            call(1004, "POST /subscriber", Some("SSESSb=2"), 200),
            call(1500, "POST /subscriber", Some("SSESSa=1"), 200),
        ];
        let figures = per_instance(&requests);
        assert_eq!(figures.len(), 2);
        // a: login at 0 plus 200, 400 in its first second; b: login at 5 plus 210, 990, 1004.
        let a = figures.iter().find(|instance| instance.http_429 == 1).expect("instance a");
        let b = figures.iter().find(|instance| instance.http_429 == 0).expect("instance b");
        assert_eq!((a.calls, a.first_second_calls), (4, 3));
        assert_eq!((b.calls, b.first_second_calls), (4, 4));
        assert_eq!(b.max_calls_in_any_second, 4);
    }
}
