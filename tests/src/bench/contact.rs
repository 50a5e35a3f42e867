//! `contact <email>` over a large history (DESIGN 12's bar: < 50 ms with 100,000 stored events):
//! 100,000 history steps in a SQLite file, spread over many contacts, one of them with a long
//! story (1,000 events) and a stored contact record; then `webinar-bridge contact <email>
//! --offline --json` as the binary, 20 timed runs after a warm-up, and the same read in-process
//! (history Query, contact record, read model) for comparison.

use crate::stats::{median, percentile, round3};
use anyhow::{Context as _, bail, ensure};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use webinar_bridge::adapters::sqlite::{SqliteContactStore, SqliteDb, SqliteHistoryLog};
use webinar_bridge::domain::{EventId, Settings};
use webinar_bridge::ports::{ContactStore, HistoryEntry, HistoryLog, HistoryOutcome, HistoryStep, ReceivedEvent};
use webinar_bridge::story::{KlickTippLookup, contact_story};
use webinar_bridge_tests::port_suite::contact_in_webinars;

/// Stored history steps in total.
pub const STORED_STEPS: usize = 100_000;
/// Events of the one long story (two steps each: received, outcome).
pub const LONG_STORY_EVENTS: usize = 1_000;
/// Steps of every other contact (five events).
const STEPS_PER_CONTACT: usize = 10;
const RUNS: usize = 20;
const WARMUP_RUNS: usize = 2;
const RETENTION: Duration = Duration::from_secs(30 * 86_400);
const INSERT_CHUNK: usize = 10_000;

#[derive(Debug, Clone, Serialize)]
pub struct ContactFigures {
    pub stored_steps: usize,
    pub contacts: usize,
    pub long_story_events: usize,
    pub runs: usize,
    /// `webinar-bridge contact <email> --offline --json`, process start to exit.
    pub binary_p50_ms: f64,
    pub binary_p95_ms: f64,
    pub binary_max_ms: f64,
    /// CPU time (user + system) per run of the binary, the mean over the runs: less sensitive
    /// than wall time to a machine shared with other work.
    pub binary_cpu_mean_ms: f64,
    /// The 1-minute load average when the runs ended (`/proc/loadavg`), for reading the figures.
    pub load_average: f64,
    /// The same read in this process: history, contact record, read model.
    pub in_process_p50_ms: f64,
    pub in_process_p95_ms: f64,
    /// Filling the file (not part of the bar).
    pub fill_seconds: f64,
}

fn step_received(contact: &str, id: &EventId, at: DateTime<Utc>, webinar: usize) -> HistoryEntry {
    HistoryEntry {
        contact: contact.to_owned(),
        event_id: id.clone(),
        at,
        step: HistoryStep::Received(ReceivedEvent {
            source: "zoom".into(),
            kind: if webinar.is_multiple_of(2) { "registered" } else { "attended" }.into(),
            webinar_id: format!("8123456{:04}", webinar % 10_000),
            webinar_name: Some(format!("Webinar {}", webinar % 50)),
            session_id: None,
            occurred_at: at,
            received_at: at,
        }),
    }
}

fn step_outcome(contact: &str, id: &EventId, at: DateTime<Utc>, n: usize) -> HistoryEntry {
    let outcome = if n.is_multiple_of(25) {
        HistoryOutcome::FieldProblem { field: "field101".into(), error_number: Some(8), reason: "not a number".into() }
    } else {
        HistoryOutcome::Applied
    };
    HistoryEntry { contact: contact.to_owned(), event_id: id.clone(), at, step: HistoryStep::Outcome(outcome) }
}

/// Events of `contact` numbered `first..first + events`, received and applied a second apart.
fn story(contact: &str, first: usize, events: usize, start: DateTime<Utc>) -> Vec<HistoryEntry> {
    let mut entries = Vec::with_capacity(events * 2);
    for n in first..first + events {
        let id = EventId::from_sender(&format!("zoom:bench:{n:08}")).expect("a valid id");
        let at = start + chrono::Duration::seconds(n as i64);
        entries.push(step_received(contact, &id, at, n));
        entries.push(step_outcome(contact, &id, at + chrono::Duration::milliseconds(300), n));
    }
    entries
}

pub async fn measure(binary: &Path, workdir: &Path) -> anyhow::Result<ContactFigures> {
    let path = workdir.join("contact-bench.db");
    let _ = std::fs::remove_file(&path);
    let db = SqliteDb::open(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let log = SqliteHistoryLog::new(db.clone());
    let record = contact_in_webinars(20);
    let email = record.email.clone();
    let long_contact = email.group_hash();
    SqliteContactStore::new(db.clone()).save(&record, None).await.context("storing the contact record")?;

    let fill = Instant::now();
    let start = Utc::now() - chrono::Duration::days(10);
    let mut pending = story(&long_contact, 0, LONG_STORY_EVENTS, start);
    let mut stored = 0;
    let mut contacts = 1;
    let mut next_event = LONG_STORY_EVENTS;
    while stored + pending.len() < STORED_STEPS {
        let contact = format!("{:064x}", contacts as u128 * 0x9e37_79b9_7f4a_7c15);
        pending.extend(story(&contact, next_event, STEPS_PER_CONTACT / 2, start));
        next_event += STEPS_PER_CONTACT / 2;
        contacts += 1;
        if pending.len() >= INSERT_CHUNK {
            log.append_many(&pending, RETENTION).await.context("filling the history")?;
            stored += pending.len();
            pending.clear();
        }
    }
    let rest = STORED_STEPS - stored;
    pending.truncate(rest);
    log.append_many(&pending, RETENTION).await.context("filling the history")?;
    stored += pending.len();
    let fill_seconds = round3(fill.elapsed().as_secs_f64());
    ensure!(stored == STORED_STEPS, "stored {stored} steps, not {STORED_STEPS}");

    // In-process: the read `contact` makes, without the process around it.
    let settings = Settings::default();
    let mut in_process = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        let now = Utc::now();
        let history = log.for_contact(&long_contact, now).await?;
        let record = SqliteContactStore::new(db.clone()).load(&email).await?.map(|versioned| versioned.value);
        let story = contact_story(email.as_str(), record.as_ref(), &history, &settings, KlickTippLookup::NotChecked);
        in_process.push(started.elapsed().as_secs_f64() * 1000.0);
        ensure!(story.timeline.len() == LONG_STORY_EVENTS, "the long story has {} events", story.timeline.len());
    }
    drop(log);
    drop(db);

    let mut binary_ms = Vec::with_capacity(RUNS);
    let mut children_cpu = Duration::ZERO;
    for run in 0..WARMUP_RUNS + RUNS {
        let cpu_before = children_cpu_time()?;
        let started = Instant::now();
        let output = Command::new(binary)
            .args(["contact", email.as_str(), "--offline", "--json"])
            .env_clear()
            .env("BRIDGE_DB", &path)
            .env("RUST_LOG", "warn")
            .output()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        // Exit 1: the story has problems (field problems), which is what it should say.
        if !matches!(output.status.code(), Some(0 | 1)) {
            bail!("contact failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let story: serde_json::Value = serde_json::from_slice(&output.stdout).context("contact --json output")?;
        let events = story["timeline"].as_array().map_or(0, Vec::len);
        ensure!(events == LONG_STORY_EVENTS, "contact showed {events} events, not {LONG_STORY_EVENTS}");
        if run >= WARMUP_RUNS {
            binary_ms.push(elapsed);
            children_cpu += children_cpu_time()?.saturating_sub(cpu_before);
        }
    }
    let _ = std::fs::remove_file(&path);
    Ok(ContactFigures {
        stored_steps: stored,
        contacts,
        long_story_events: LONG_STORY_EVENTS,
        runs: RUNS,
        binary_p50_ms: round3(median(&binary_ms)),
        binary_p95_ms: round3(percentile(&binary_ms, 95.0)),
        binary_max_ms: round3(binary_ms.iter().copied().fold(0.0, f64::max)),
        binary_cpu_mean_ms: round3(children_cpu.as_secs_f64() * 1000.0 / RUNS as f64),
        load_average: load_average()?,
        in_process_p50_ms: round3(median(&in_process)),
        in_process_p95_ms: round3(percentile(&in_process, 95.0)),
        fill_seconds,
    })
}

/// User + system time of this process's reaped children (`/proc/self/stat` fields 16 and 17,
/// in clock ticks of 10 ms: Linux's `USER_HZ` is 100).
fn children_cpu_time() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("cannot read /proc/self/stat")?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).context("/proc/self/stat is unreadable")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |index: usize| -> anyhow::Result<u64> {
        fields.get(index).and_then(|raw| raw.parse().ok()).context("/proc/self/stat is unreadable")
    };
    // cutime is field 16, cstime field 17; `rest` starts at field 3.
    Ok(Duration::from_millis((ticks(13)? + ticks(14)?) * 10))
}

fn load_average() -> anyhow::Result<f64> {
    let raw = std::fs::read_to_string("/proc/loadavg").context("cannot read /proc/loadavg")?;
    raw.split_whitespace().next().and_then(|first| first.parse().ok()).context("/proc/loadavg is unreadable")
}
