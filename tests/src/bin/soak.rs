//! `soak`: the chaos soak against the oracle (issue 8).
//!
//! ```text
//! cargo run --release -p webinar-bridge-tests --bin soak -- --events 20000 --seed 7 \
//!     [--backend sqlite|aws] [--quick] [--out soak.json]
//! ```
//! Prints `soak.json` on stdout (and to `--out`), a summary on stderr, and exits 1 on any lost
//! event, contact that differs from the oracle, duplicate effect, dead letter, or when nothing
//! was applied. `--refused-fields` makes KlickTipp refuse a mapped field of every contact;
//! `--genesis-reregistration` adds WebinarJam/EverWebinar cancellations and re-registrations
//! (both off by default until the engine handles them). `--drop-webhooks 0.2` drops a fifth of
//! the generated webhooks before delivery; `--reconcile` then loads the full truth into the
//! platform simulator (with 5xx, timeouts and an expired Zoom token), reconciles every session
//! and judges the run against the full truth (webinar kinds limited to what the platform APIs
//! can express; see `soak::platform`). `RUST_LOG` sets what the
//! bridge logs to stderr (default: errors only; the chaos makes every warning routine).

use std::process::ExitCode;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};
use webinar_bridge_tests::soak::{self, BackendKind, SoakConfig};

const USAGE: &str = "usage: soak [--events N] [--seed S] [--backend sqlite|aws] [--quick] [--out FILE] [--refused-fields] [--genesis-reregistration] [--drop-webhooks P] [--reconcile]";

struct Args {
    events: Option<usize>,
    seed: u64,
    backend: BackendKind,
    quick: bool,
    out: Option<String>,
    refused_fields: bool,
    genesis_reregistration: bool,
    drop_webhooks: f64,
    reconcile: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        events: None,
        seed: 1,
        backend: BackendKind::Sqlite,
        quick: false,
        out: None,
        refused_fields: false,
        genesis_reregistration: false,
        drop_webhooks: 0.0,
        reconcile: false,
    };
    let mut raw = std::env::args().skip(1);
    while let Some(flag) = raw.next() {
        let mut value = || raw.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--events" => args.events = Some(value()?.parse().map_err(|_| format!("--events takes a count\n{USAGE}"))?),
            "--seed" => args.seed = value()?.parse().map_err(|_| format!("--seed takes a number\n{USAGE}"))?,
            "--backend" => args.backend = value()?.parse()?,
            "--out" => args.out = Some(value()?),
            "--quick" => args.quick = true,
            "--refused-fields" => args.refused_fields = true,
            "--genesis-reregistration" => args.genesis_reregistration = true,
            "--drop-webhooks" => {
                args.drop_webhooks = value()?
                    .parse::<f64>()
                    .ok()
                    .filter(|share| (0.0..=1.0).contains(share))
                    .ok_or_else(|| format!("--drop-webhooks takes a share between 0 and 1, e.g. 0.2\n{USAGE}"))?;
            }
            "--reconcile" => args.reconcile = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn config(args: &Args) -> SoakConfig {
    let mut config = if args.quick {
        SoakConfig::quick(args.seed, args.backend)
    } else {
        SoakConfig::full(20_000, args.seed, args.backend)
    };
    if let Some(events) = args.events {
        config.events = events;
    }
    config.refused_fields = args.refused_fields;
    config.genesis_reregistration = args.genesis_reregistration;
    config.drop_webhooks = args.drop_webhooks;
    config.reconcile = args.reconcile;
    config
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let stderr_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("error"));
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(stderr_filter))
        .with(soak::client_fault_layer())
        .init();

    let report = match soak::run(&config(&args)).await {
        Ok(report) => report,
        Err(error) => {
            eprintln!("soak could not run: {error:#}");
            return ExitCode::from(2);
        }
    };
    let json = serde_json::to_string_pretty(&report).expect("the report serializes");
    println!("{json}");
    if let Some(path) = &args.out
        && let Err(error) = std::fs::write(path, format!("{json}\n"))
    {
        eprintln!("cannot write {path}: {error}");
        return ExitCode::from(2);
    }
    eprintln!("{}", report.summary());
    if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
