//! `bench`: measures the bridge against DESIGN 10's bars and writes bench.json.
//!
//! `cargo run --release -p webinar-bridge-tests --bin bench -- [--quick] [--registrants N]
//! [--cap R] [--seed S] [--out bench.json]`
//!
//! 1. ingest in-process: `Ingest::handle` per source on one core (memory queue);
//! 2. backlog: the generated log ingested into SQLite, then drained by a consumer process into a
//!    simulator enforcing the cap: rate cap, call economy, consumer memory, convergence;
//! 3. fleet: the same backlog drained by 4 consumer processes, each limited to cap / 4, into
//!    one simulator enforcing the cap (Lambda's MaximumConcurrency): rate, 429s, first seconds;
//! 4. HTTP: an open-loop 1,000 requests/s against `webinar-bridge serve` (latency, serve memory);
//! 5. end to end: webhooks at a low rate through `serve` until KlickTipp has them;
//! 6. contact: `webinar-bridge contact <email>` over 100,000 stored history steps
//!    (`--contact-only` runs just this one).
//! 7. reconcile: a backfill of 10,000 EverWebinar registrants from the platform simulator (20
//!    calls/s per key) through the client's FIFO throttle, then the consumer at the cap
//!    (`--only reconcile` runs this section alone).
//!
//! Speeds are reported, never asserted: the machine is shared and noisy.

#[path = "../bench/args.rs"]
mod args;
#[path = "../bench/backlog.rs"]
mod backlog;
#[path = "../bench/consumer_role.rs"]
mod consumer_role;
#[path = "../bench/contact.rs"]
mod contact;
#[path = "../bench/economy.rs"]
mod economy;
#[path = "../bench/end_to_end.rs"]
mod end_to_end;
#[path = "../bench/fleet.rs"]
mod fleet;
#[path = "../bench/http_load.rs"]
mod http_load;
#[path = "../bench/ingest_rate.rs"]
mod ingest_rate;
#[path = "../bench/proc_status.rs"]
mod proc_status;
#[path = "../bench/reconcile.rs"]
mod reconcile;
#[path = "../bench/report.rs"]
mod report;
#[path = "../bench/serve_process.rs"]
mod serve_process;
#[path = "../bench/stats.rs"]
mod stats;

use anyhow::Context as _;
use args::{Invocation, Options};
use report::{Figures, Run, Timings};
use serve_process::Serve;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use webinar_bridge_tests::generator::{Config, DeliveryClock, Log};

/// How long each phase runs; `--quick` keeps the whole run under a minute.
struct Sizes {
    ingest_repetitions: usize,
    ingest_requests: usize,
    http_rate: u32,
    http_warmup: usize,
    http_seconds: u32,
    end_to_end_events: usize,
    end_to_end_rate: f64,
    /// Registrants of the backfilled webinar (DESIGN 10: 10,000).
    reconcile_registrants: usize,
}

impl Sizes {
    fn for_run(quick: bool) -> Self {
        if quick {
            Self {
                ingest_repetitions: 3,
                ingest_requests: 4_000,
                http_rate: 1_000,
                http_warmup: 300,
                http_seconds: 2,
                end_to_end_events: 40,
                // Half the default cap: the consumer keeps up, so no backlog builds.
                end_to_end_rate: 10.0,
                reconcile_registrants: 300,
            }
        } else {
            Self {
                ingest_repetitions: 7,
                ingest_requests: 20_000,
                http_rate: 1_000,
                http_warmup: 1_000,
                http_seconds: 8,
                end_to_end_events: 200,
                end_to_end_rate: 10.0,
                reconcile_registrants: 10_000,
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    match args::parse(std::env::args().skip(1))? {
        Invocation::Consumer(role) => consumer_role::run(&role),
        Invocation::Bench(options) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(bench(options))
        }
    }
}

/// A scratch directory for the SQLite files and serve's logs, removed afterwards.
struct Workdir(PathBuf);

impl Workdir {
    fn create() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("webinar-bridge-bench-{}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn bench(options: Options) -> anyhow::Result<()> {
    let started = Instant::now();
    let sizes = Sizes::for_run(options.quick);
    if options.only_reconcile {
        return reconcile_only(&options, &sizes).await;
    }
    let serve_binary = serve_process::locate(options.serve_binary.as_deref())?;
    let workdir = Workdir::create()?;
    if options.contact_only {
        eprintln!("bench: contact over {} stored history steps", contact::STORED_STEPS);
        let figures = contact::measure(&serve_binary, &workdir.0).await?;
        let report = serde_json::json!({ "contact": figures });
        println!("{}", serde_json::to_string_pretty(&report)?);
        println!("{}", report::contact_line(&report));
        return Ok(());
    }
    let config = Config { seed: options.seed, registrants: options.registrants, ..Config::default() };
    let log = Log::generate(&config);
    let mut timings = Timings::default();
    eprintln!(
        "bench: {} registrants, {} requests; serve = {}",
        options.registrants,
        log.requests.len(),
        serve_binary.display()
    );

    let phase = Instant::now();
    eprintln!("bench: in-process ingest");
    let ingest_rates = ingest_rate::measure(&log, sizes.ingest_repetitions, sizes.ingest_requests)?;
    timings.ingest = stats::round3(phase.elapsed().as_secs_f64());

    let phase = Instant::now();
    eprintln!("bench: backlog drain at {} calls/s", options.cap);
    let backlog = backlog::run(&log, options.cap, &workdir.0).await?;
    timings.backlog = stats::round3(phase.elapsed().as_secs_f64());

    let phase = Instant::now();
    eprintln!("bench: fleet of {} consumer processes sharing {} calls/s", fleet::INSTANCES, options.cap);
    let fleet = fleet::run(&log, options.cap, &workdir.0).await?;
    timings.fleet = stats::round3(phase.elapsed().as_secs_f64());

    let phase = Instant::now();
    eprintln!("bench: HTTP at {} requests/s", sizes.http_rate);
    let (http, serve_peak_rss_kib) = http_run(&options, &sizes, &serve_binary, &workdir.0).await?;
    timings.http = stats::round3(phase.elapsed().as_secs_f64());

    let phase = Instant::now();
    eprintln!("bench: end to end");
    let live_log = live_log(&options);
    let end_to_end = end_to_end::measure(
        &serve_binary,
        &live_log,
        &workdir.0,
        options.cap,
        sizes.end_to_end_events,
        sizes.end_to_end_rate,
    )
    .await?;
    timings.end_to_end = stats::round3(phase.elapsed().as_secs_f64());

    let phase = Instant::now();
    eprintln!("bench: contact over {} stored history steps", contact::STORED_STEPS);
    let contact = contact::measure(&serve_binary, &workdir.0).await?;
    timings.contact = stats::round3(phase.elapsed().as_secs_f64());

    let phase = Instant::now();
    eprintln!("bench: reconcile (backfill of {} registrants)", sizes.reconcile_registrants);
    let reconcile = reconcile::run(sizes.reconcile_registrants, options.seed, options.cap, &workdir.0).await?;
    timings.reconcile = stats::round3(phase.elapsed().as_secs_f64());
    timings.total = stats::round3(started.elapsed().as_secs_f64());

    let figures = Figures {
        run: Run {
            date: chrono::Utc::now().format("%Y-%m-%d").to_string(),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            build: if cfg!(debug_assertions) { "debug" } else { "release" },
            quick: options.quick,
            seed: options.seed,
            registrants: options.registrants,
            cap: options.cap,
            log: log.stats().into(),
            timings_seconds: timings,
        },
        rate_cap: backlog.rate_cap,
        fleet,
        economy: backlog.economy,
        convergence: backlog.convergence,
        drain: backlog.drain,
        ingest_rates,
        sqlite_ingest: backlog.sqlite_ingest,
        http,
        serve_peak_rss_kib,
        end_to_end,
        contact,
        reconcile,
    };
    let report = figures.to_json();
    write(&options.out, &report)?;
    println!("{}", report::table(&report));
    println!("\nwritten to {}", options.out.display());
    Ok(())
}

/// `--only reconcile`: the pull section alone, in a report of its own.
async fn reconcile_only(options: &Options, sizes: &Sizes) -> anyhow::Result<()> {
    let started = Instant::now();
    let workdir = Workdir::create()?;
    eprintln!("bench: reconcile (backfill of {} registrants)", sizes.reconcile_registrants);
    let reconcile = reconcile::run(sizes.reconcile_registrants, options.seed, options.cap, &workdir.0).await?;
    let report = report::reconcile_only_json(
        &reconcile,
        serde_json::json!({
            "date": chrono::Utc::now().format("%Y-%m-%d").to_string(),
            "cores": std::thread::available_parallelism().map_or(1, usize::from),
            "build": if cfg!(debug_assertions) { "debug" } else { "release" },
            "quick": options.quick,
            "seed": options.seed,
            "cap": options.cap,
            "only": "reconcile",
            "timings_seconds": {"reconcile": stats::round3(started.elapsed().as_secs_f64())},
        }),
    );
    write(&options.out, &report)?;
    println!("{}", report::table(&report));
    println!("\nwritten to {}", options.out.display());
    Ok(())
}

/// The log again, arriving now: Zoom accepts a signature timestamp only within five minutes.
fn live_log(options: &Options) -> Log {
    let clock = DeliveryClock::Compressed { start: chrono::Utc::now(), spacing: Duration::from_millis(1) };
    Log::generate(&Config {
        seed: options.seed,
        registrants: options.registrants,
        delivery_clock: clock,
        ..Config::default()
    })
}

/// Open-loop load against a fresh serve; returns the latencies and serve's peak RSS after it.
async fn http_run(
    options: &Options,
    sizes: &Sizes,
    serve_binary: &Path,
    workdir: &Path,
) -> anyhow::Result<(http_load::HttpLatency, u64)> {
    let simulator = backlog::capped_simulator(options.cap).await?;
    let log = live_log(options);
    let env = serve_process::environment(&log, &simulator.url(), &workdir.join("http.db"), options.cap);
    let serve = Serve::start(serve_binary, &env, &workdir.join("http.serve.log")).await?;
    let count = (sizes.http_rate * sizes.http_seconds) as usize;
    let base_url = serve.base_url.clone();
    let requests = log.requests.clone();
    let (rate, warmup) = (sizes.http_rate, sizes.http_warmup);
    let latency =
        tokio::task::spawn_blocking(move || http_load::open_loop(&base_url, &requests, rate, warmup, count)).await??;
    let peak = serve.peak_rss_kib()?;
    serve.stop().await?;
    simulator.shutdown().await;
    Ok((latency, peak))
}

fn write(path: &Path, report: &serde_json::Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}
