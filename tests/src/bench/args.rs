//! The command line: `bench [--quick] [--registrants N] [--cap R] [--seed S] [--out PATH]`, and
//! the hidden `--role consumer` a parent uses to run the consumer in a process of its own.

use anyhow::{Context as _, bail};
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Options {
    pub quick: bool,
    pub registrants: usize,
    pub cap: u32,
    pub seed: u64,
    pub out: PathBuf,
    /// `serve` to measure; default: `webinar-bridge` beside this binary, else in the workspace.
    pub serve_binary: Option<PathBuf>,
    /// Only the `contact` section (`--contact-only`): prints its figures, writes no bench.json.
    pub contact_only: bool,
    /// `--only reconcile`: run that section alone.
    pub only_reconcile: bool,
}

/// The consumer child: drains `db` into the simulator at `sim_url` at `rate` calls/s (`--rate`,
/// a fleet instance's share; else `--cap`).
#[derive(Debug, Clone)]
pub struct ConsumerRole {
    pub db: PathBuf,
    pub sim_url: String,
    pub rate: f64,
}

pub enum Invocation {
    Bench(Options),
    Consumer(ConsumerRole),
}

const USAGE: &str = "usage: bench [--quick] [--registrants N] [--cap R] [--seed S] [--out PATH] [--serve-binary PATH] [--contact-only] [--only reconcile]";

pub fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Invocation> {
    let mut quick = false;
    let mut contact_only = false;
    let (mut registrants, mut cap, mut seed, mut out, mut serve_binary) =
        (None, 20, 1, PathBuf::from("bench.json"), None);
    let (mut role, mut db, mut sim_url, mut rate) = (None, None, None, None);
    let mut only_reconcile = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value; {USAGE}"));
        match arg.as_str() {
            "--quick" => quick = true,
            "--contact-only" => contact_only = true,
            "--registrants" => registrants = Some(number(&value("--registrants")?, "--registrants")?),
            "--cap" => cap = number(&value("--cap")?, "--cap")?,
            "--seed" => seed = number(&value("--seed")?, "--seed")?,
            "--out" => out = PathBuf::from(value("--out")?),
            "--serve-binary" => serve_binary = Some(PathBuf::from(value("--serve-binary")?)),
            "--only" => match value("--only")?.as_str() {
                "reconcile" => only_reconcile = true,
                other => bail!("--only takes `reconcile`, not {other:?}; {USAGE}"),
            },
            "--role" => role = Some(value("--role")?),
            "--db" => db = Some(PathBuf::from(value("--db")?)),
            "--sim-url" => sim_url = Some(value("--sim-url")?),
            "--rate" => rate = Some(positive_rate(&value("--rate")?)?),
            "--help" | "-h" => bail!("{USAGE}"),
            other => bail!("unknown argument {other:?}; {USAGE}"),
        }
    }
    if cap == 0 {
        bail!("--cap must be at least 1");
    }
    match role.as_deref() {
        Some("consumer") => Ok(Invocation::Consumer(ConsumerRole {
            db: db.context("--role consumer needs --db")?,
            sim_url: sim_url.context("--role consumer needs --sim-url")?,
            rate: rate.unwrap_or(f64::from(cap)),
        })),
        Some(other) => bail!("unknown role {other:?}"),
        None => {
            let registrants =
                registrants.unwrap_or(if quick { 200 } else { webinar_bridge_tests::generator::DEFAULT_REGISTRANTS });
            if registrants == 0 {
                bail!("--registrants must be at least 1");
            }
            Ok(Invocation::Bench(Options {
                quick,
                registrants,
                cap,
                seed,
                out,
                serve_binary,
                contact_only,
                only_reconcile,
            }))
        }
    }
}

fn number<T: std::str::FromStr>(raw: &str, name: &str) -> anyhow::Result<T> {
    raw.parse().ok().with_context(|| format!("{name} must be a whole number, not {raw:?}"))
}

fn positive_rate(raw: &str) -> anyhow::Result<f64> {
    match raw.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => bail!("--rate must be a positive number of calls per second, not {raw:?}"),
    }
}
