//! The report: bench.json (every figure, the bars and whether they hold) and a table for people.

use crate::backlog::{Convergence, RateCap, SqliteIngest};
use crate::consumer_role::DrainReport;
use crate::contact::ContactFigures;
use crate::economy::Economy;
use crate::end_to_end::EndToEnd;
use crate::fleet::Fleet;
use crate::http_load::HttpLatency;
use crate::ingest_rate::SourceRate;
use crate::reconcile::Reconcile;
use crate::stats::round3;
use serde::Serialize;
use serde_json::{Value, json};
use webinar_bridge_tests::generator::LogStats;

/// DESIGN 10's bars.
pub const RATE_UTILIZATION_BAR: f64 = 0.95;
pub const NAIVE_RATIO_BAR: f64 = 0.5;
pub const LOWER_BOUND_RATIO_BAR: f64 = 1.1;
pub const INGEST_PER_CORE_BAR: f64 = 20_000.0;
pub const HTTP_P99_BAR_MS: f64 = 5.0;
/// `contact <email>` with 100,000 stored history steps (DESIGN 12, issue 14).
pub const CONTACT_BAR_MS: f64 = 50.0;
/// 30 MB, decimal: the stricter reading.
pub const MEMORY_BAR_BYTES: u64 = 30_000_000;

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub date: String,
    pub cores: usize,
    pub build: &'static str,
    pub quick: bool,
    pub seed: u64,
    pub registrants: usize,
    pub cap: u32,
    pub log: LogSummary,
    pub timings_seconds: Timings,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogSummary {
    pub registrants: usize,
    pub events: usize,
    pub requests: usize,
    pub redeliveries: usize,
    pub out_of_order: usize,
}

impl From<LogStats> for LogSummary {
    fn from(stats: LogStats) -> Self {
        Self {
            registrants: stats.registrants,
            events: stats.events,
            requests: stats.requests,
            redeliveries: stats.redeliveries,
            out_of_order: stats.out_of_order,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub ingest: f64,
    pub backlog: f64,
    pub fleet: f64,
    pub http: f64,
    pub end_to_end: f64,
    pub contact: f64,
    pub reconcile: f64,
    pub total: f64,
}

pub struct Figures {
    pub run: Run,
    pub rate_cap: RateCap,
    pub fleet: Fleet,
    pub economy: Economy,
    pub convergence: Convergence,
    pub drain: DrainReport,
    pub ingest_rates: Vec<SourceRate>,
    pub sqlite_ingest: SqliteIngest,
    pub http: HttpLatency,
    pub serve_peak_rss_kib: u64,
    pub end_to_end: EndToEnd,
    pub contact: ContactFigures,
    pub reconcile: Reconcile,
}

fn megabytes(kib: u64) -> f64 {
    round3(kib as f64 * 1024.0 / 1e6)
}

fn bar(holds: bool, measured: f64, bar: &str) -> Value {
    json!({"holds": holds, "measured": measured, "bar": bar})
}

/// The pull section's bars (DESIGN 10 "platform pull", and the call economy of its drain).
fn reconcile_bars(reconcile: &Reconcile) -> [(&'static str, Value); 3] {
    [
        (
            "platform_pull",
            bar(reconcile.platform_holds(), reconcile.platform.utilization, ">= 0.95 x 20/s, zero 429, FIFO"),
        ),
        (
            "reconcile_economy",
            bar(reconcile.economy_holds(), reconcile.klicktipp.ratio_to_lower_bound, "<= 1.1 x lower bound"),
        ),
        (
            "reconcile_convergence",
            bar(reconcile.converged(), reconcile.convergence.matching as f64, "every contact equals the oracle"),
        ),
    ]
}

/// The report of `bench --only reconcile`.
pub fn reconcile_only_json(reconcile: &Reconcile, run: Value) -> Value {
    let bars: serde_json::Map<String, Value> =
        reconcile_bars(reconcile).into_iter().map(|(name, bar)| (name.to_owned(), bar)).collect();
    json!({"run": run, "reconcile": reconcile, "bars": bars})
}

impl Figures {
    fn slowest_ingest(&self) -> f64 {
        self.ingest_rates.iter().map(|rate| rate.requests_per_cpu_second).fold(f64::INFINITY, f64::min)
    }

    pub fn to_json(&self) -> Value {
        let mut report = self.to_json_without_reconcile_bars();
        if let Some(bars) = report["bars"].as_object_mut() {
            bars.extend(reconcile_bars(&self.reconcile).map(|(name, bar)| (name.to_owned(), bar)));
        }
        report
    }

    fn to_json_without_reconcile_bars(&self) -> Value {
        let consumer_kib = self.drain.peak_rss_kib;
        let slowest = self.slowest_ingest();
        json!({
            "run": self.run,
            "rate_cap": self.rate_cap,
            "fleet": self.fleet,
            "economy": self.economy,
            "ingest": {
                "in_process": self.ingest_rates,
                "min_requests_per_cpu_second": slowest,
                "http": self.http,
                "sqlite_backlog_fill": self.sqlite_ingest,
            },
            "memory": {
                "consumer_peak_rss_kib": consumer_kib,
                "consumer_peak_rss_mb": megabytes(consumer_kib),
                "serve_peak_rss_kib": self.serve_peak_rss_kib,
                "serve_peak_rss_mb": megabytes(self.serve_peak_rss_kib),
                "note": "consumer: a process of its own draining the backlog (SQLite). serve: VmHWM after the HTTP run, pointed at a simulator outside it, so ingest HTTP + consumer loop + SQLite, no simulator.",
            },
            "end_to_end": self.end_to_end,
            "contact": self.contact,
            "convergence": self.convergence,
            "consumer_drain": self.drain,
            "reconcile": self.reconcile,
            "bars": {
                "rate_cap": bar(
                    self.rate_cap.utilization >= RATE_UTILIZATION_BAR && self.rate_cap.http_429 == 0,
                    self.rate_cap.utilization,
                    ">= 0.95 x cap and zero 429",
                ),
                "fleet_rate_cap": bar(
                    self.fleet.utilization >= RATE_UTILIZATION_BAR
                        && self.fleet.http_429 == 0
                        && self.fleet.first_seconds_hold(),
                    self.fleet.utilization,
                    ">= 0.95 x cap, zero 429, no first-second burst",
                ),
                "fleet_convergence": bar(
                    self.fleet.convergence.matching == self.fleet.convergence.contacts && self.fleet.dead_letters == 0,
                    self.fleet.convergence.matching as f64,
                    "every contact as the ground truth, 0 dead letters",
                ),
                "economy_vs_naive": bar(self.economy.ratio_to_naive <= NAIVE_RATIO_BAR, self.economy.ratio_to_naive, "<= 0.5"),
                "economy_vs_lower_bound": bar(
                    self.economy.ratio_to_lower_bound <= LOWER_BOUND_RATIO_BAR,
                    self.economy.ratio_to_lower_bound,
                    "<= 1.1",
                ),
                "ingest_in_process": bar(slowest >= INGEST_PER_CORE_BAR, slowest, ">= 20000 requests/s per core"),
                "ingest_http_p99": bar(
                    self.http.p99_ms < HTTP_P99_BAR_MS && self.http.errors == 0 && self.http.non_200 == 0,
                    self.http.p99_ms,
                    "< 5 ms at 1000 requests/s",
                ),
                "memory_consumer": bar(consumer_kib * 1024 < MEMORY_BAR_BYTES, megabytes(consumer_kib), "< 30 MB"),
                "memory_serve": bar(
                    self.serve_peak_rss_kib * 1024 < MEMORY_BAR_BYTES,
                    megabytes(self.serve_peak_rss_kib),
                    "< 30 MB",
                ),
                "contact_story_p95": bar(
                    self.contact.binary_p95_ms < CONTACT_BAR_MS,
                    self.contact.binary_p95_ms,
                    "< 50 ms with 100000 stored events",
                ),
                "convergence": bar(
                    self.convergence.matching == self.convergence.contacts,
                    self.convergence.matching as f64,
                    "every contact equals the ground truth",
                ),
            },
        })
    }
}

/// The table printed on stdout.
pub fn table(report: &Value) -> String {
    let mut lines = vec![format!("{:<24} {:>14}  {:<34} {}", "bar", "measured", "target", "holds")];
    if let Some(bars) = report["bars"].as_object() {
        for (name, bar) in bars {
            let holds = if bar["holds"].as_bool() == Some(true) { "yes" } else { "NO" };
            lines.push(format!(
                "{name:<24} {:>14}  {:<34} {holds}",
                bar["measured"].to_string(),
                bar["bar"].as_str().unwrap_or_default()
            ));
        }
    }
    if report["rate_cap"].is_null() {
        // `--only reconcile`.
        lines.push(String::new());
        lines.extend(crate::reconcile::lines(&report["reconcile"]));
        return lines.join("\n");
    }
    let economy = &report["economy"];
    let rate = &report["rate_cap"];
    let http = &report["ingest"]["http"];
    let e2e = &report["end_to_end"];
    lines.push(String::new());
    lines.push(format!(
        "rate cap {}: {} calls/s ({} calls over {} s, {} x 429)",
        rate["cap"], rate["achieved_rps"], rate["calls"], rate["span_seconds"], rate["http_429"]
    ));
    let fleet = &report["fleet"];
    lines.push(format!(
        "fleet of {} at {} calls/s each: {} calls/s ({} calls over {} s, {} x 429, most in one second {}, most in an instance's first second {})",
        fleet["instances"],
        fleet["rate_per_instance"],
        fleet["achieved_rps"],
        fleet["calls"],
        fleet["span_seconds"],
        fleet["http_429"],
        fleet["max_calls_in_any_second"],
        fleet["max_first_second_calls"]
    ));
    lines.push(format!(
        "economy: {} calls for {} events ({} per event); naive {} (x{}); lower bound {} (x{})",
        economy["calls"],
        economy["events"],
        economy["calls_per_event"],
        economy["naive_calls"],
        economy["ratio_to_naive"],
        economy["lower_bound_calls"],
        economy["ratio_to_lower_bound"]
    ));
    if let Some(rates) = report["ingest"]["in_process"].as_array() {
        for rate in rates {
            lines.push(format!(
                "ingest in-process {:<10} {} req/s per CPU-second ({} per wall second)",
                rate["source"].as_str().unwrap_or_default(),
                rate["requests_per_cpu_second"],
                rate["requests_per_wall_second"]
            ));
        }
    }
    lines.push(format!(
        "ingest HTTP at {}/s: p50 {} ms, p90 {} ms, p99 {} ms, max {} ms ({} requests, {} non-200, {} errors)",
        http["rate_per_second"],
        http["p50_ms"],
        http["p90_ms"],
        http["p99_ms"],
        http["max_ms"],
        http["requests"],
        http["non_200"],
        http["errors"]
    ));
    lines.push(format!(
        "memory: consumer {} MB, serve {} MB",
        report["memory"]["consumer_peak_rss_mb"], report["memory"]["serve_peak_rss_mb"]
    ));
    lines.push(format!(
        "end to end ({} events at {}/s): p50 {} ms, p95 {} ms, max {} ms",
        e2e["events"], e2e["rate_per_second"], e2e["p50_ms"], e2e["p95_ms"], e2e["max_ms"]
    ));
    lines.push(contact_line(report));
    lines.extend(crate::reconcile::lines(&report["reconcile"]));
    lines.join("\n")
}

/// The `contact` section in one line.
pub fn contact_line(report: &Value) -> String {
    let contact = &report["contact"];
    format!(
        "contact ({} events of one contact among {} stored steps, {} runs, load {}): binary p50 {} ms, p95 {} ms, max {} ms, CPU {} ms per run; in-process p50 {} ms, p95 {} ms",
        contact["long_story_events"],
        contact["stored_steps"],
        contact["runs"],
        contact["load_average"],
        contact["binary_p50_ms"],
        contact["binary_p95_ms"],
        contact["binary_max_ms"],
        contact["binary_cpu_mean_ms"],
        contact["in_process_p50_ms"],
        contact["in_process_p95_ms"]
    )
}
