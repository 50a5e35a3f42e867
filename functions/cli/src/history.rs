//! `contact <email>` and `problems`: the story of a contact and everything a person has to look
//! at (DESIGN 12), read through the ports from `serve`'s SQLite database (BRIDGE_DB) or the AWS
//! stack (`--stack NAME`, see `backend`) into the shared read model (`webinar_bridge::story`).

use crate::backend::BackendArgs;
use crate::{exit, wiring};
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::Args;
use std::collections::BTreeSet;
use std::process::ExitCode;
use webinar_bridge::adapters::memory::DeadLetter;
use webinar_bridge::config::{BridgeConfig, KlickTippMode};
use webinar_bridge::domain::Email;
use webinar_bridge::story::{ContactStory, KlickTippLookup, KlickTippNow, Problem, contact_story, outcome_name};

#[derive(Debug, Args)]
pub struct ContactArgs {
    /// The contact's e-mail address.
    pub email: String,
    /// Print the story as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Do not ask KlickTipp what it holds now.
    #[arg(long)]
    pub offline: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
}

#[derive(Debug, Args)]
pub struct ProblemsArgs {
    /// Only problems at or after this time: RFC 3339 (2026-03-01T00:00:00Z) or an age (7d, 12h, 30m).
    #[arg(long)]
    pub since: Option<String>,
    /// Print the problems as a JSON array.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// RFC 3339, or an age like `7d`, `12h`, `30m` before `now`.
pub fn parse_since(raw: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Some(at.with_timezone(&Utc));
    }
    let (number, unit) = raw.split_at(raw.len().checked_sub(1)?);
    let number: i64 = number.parse().ok().filter(|n| *n >= 0)?;
    let age = match unit {
        "d" => chrono::Duration::try_days(number)?,
        "h" => chrono::Duration::try_hours(number)?,
        "m" => chrono::Duration::try_minutes(number)?,
        _ => return None,
    };
    now.checked_sub_signed(age)
}

pub async fn contact(args: ContactArgs) -> anyhow::Result<ExitCode> {
    let email = Email::parse(&args.email)
        .map_err(|error| exit::unusable(format!("{}: not a usable e-mail address ({error})", args.email)))?;
    let backend = args.backend.open().await?;
    let config = &backend.config;
    let ports = backend.ports();
    let now = Utc::now();
    let record = ports.contacts.load(&email).await?.map(|versioned| versioned.value);
    let history = ports.history.for_contact(&email.group_hash(), now).await?;
    let klicktipp = if args.offline { KlickTippLookup::NotChecked } else { klicktipp_now(config, &email).await? };
    let story = contact_story(email.as_str(), record.as_ref(), &history, &config.settings, klicktipp);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&story)?);
    } else {
        print!("{}", render_story(&story));
    }
    Ok(if story.differences.is_empty() && story.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// What KlickTipp holds now, tag ids named; not checked without Management credentials.
async fn klicktipp_now(config: &BridgeConfig, email: &Email) -> anyhow::Result<KlickTippLookup> {
    if config.klicktipp.mode() != KlickTippMode::Management {
        return Ok(KlickTippLookup::NotChecked);
    }
    let client = wiring::management_client(config)?;
    let Some(id) = client.search_subscriber(email.as_str()).await.context("KlickTipp: searching the contact")? else {
        return Ok(KlickTippLookup::NotFound);
    };
    let subscriber = client.get_subscriber(&id).await.context("KlickTipp: reading the contact")?;
    let names = client.list_tags().await.context("KlickTipp: listing tags")?;
    let tags: BTreeSet<String> =
        subscriber.tags.iter().map(|id| names.get(id).cloned().unwrap_or_else(|| format!("#{id}"))).collect();
    Ok(KlickTippLookup::Found(KlickTippNow {
        id: subscriber.id,
        status: Some(subscriber.status).filter(|status| !status.is_empty()),
        tags,
        fields: subscriber.fields,
    }))
}

fn time(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "-".to_owned(), |at| at.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// The story as text for a person.
pub fn render_story(story: &ContactStory) -> String {
    let mut out = format!("Contact {}\n\nTimeline ({} events):\n", story.email, story.timeline.len());
    for item in &story.timeline {
        let what = item.received.as_ref().map_or_else(
            || "(received before history was kept)".to_owned(),
            |received| {
                let name = received.webinar_name.as_deref().map(|name| format!(" \"{name}\"")).unwrap_or_default();
                format!("{} {} webinar {}{name}", received.source, received.kind, received.webinar_id)
            },
        );
        out.push_str(&format!("  {}  {what}  -> {}  [{}]\n", time(item.at()), item.status(), item.event_id));
        for outcome in &item.outcomes {
            if outcome.outcome.is_problem() {
                out.push_str(&format!("      {} {}\n", time(Some(outcome.at)), outcome_name(&outcome.outcome)));
            }
        }
    }
    out.push_str("\nState per webinar:\n");
    for webinar in &story.webinars {
        out.push_str(&format!("  {} {}: {}\n", webinar.source, webinar.webinar_id, webinar.labels.join(", ")));
    }
    out.push_str("\nTags the state implies:\n");
    for tag in &story.implied_tags {
        let mark = match &story.klicktipp_now {
            Some(now) if !now.tags.contains(tag) => "  <- missing in KlickTipp",
            _ => "",
        };
        out.push_str(&format!("  {tag}{mark}\n"));
    }
    match (&story.klicktipp_now, story.klicktipp_checked) {
        (_, false) => out.push_str("\nKlickTipp now: not checked (offline or no Management credentials)\n"),
        (None, true) => out.push_str("\nKlickTipp now: no such contact\n"),
        (Some(now), true) => {
            out.push_str(&format!(
                "\nKlickTipp now: contact {} ({})\n  tags: {}\n",
                now.id,
                now.status.as_deref().unwrap_or("status unknown"),
                now.tags.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    if story.klicktipp_checked {
        out.push_str(&format!("\nDifferences ({}):\n", story.differences.len()));
        for difference in &story.differences {
            out.push_str(&format!("  ! {}\n", difference.describe()));
        }
        if !story.differences.is_empty() {
            out.push_str(&format!("  fix: webinar-bridge resync {}\n", story.email));
        }
    }
    out.push_str(&format!("\nProblems ({}):\n", story.problems.len()));
    for problem in &story.problems {
        out.push_str(&render_problem(problem));
    }
    out
}

fn render_problem(problem: &Problem) -> String {
    let mut head = format!("  {}  {}", time(problem.at), problem.kind.as_str());
    for (label, value) in [
        ("event", &problem.event_id),
        ("message", &problem.message_id),
        ("contact", &problem.contact),
        ("field", &problem.field),
    ] {
        if let Some(value) = value {
            head.push_str(&format!("  {label} {value}"));
        }
    }
    if let Some(number) = problem.error_number {
        head.push_str(&format!("  KlickTipp error {number}"));
    }
    format!("{head}\n      reason: {}\n      fix: {}\n", problem.reason, problem.fix)
}

pub async fn problems(args: ProblemsArgs) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    let since = match &args.since {
        None => DateTime::<Utc>::UNIX_EPOCH,
        Some(raw) => parse_since(raw, now).ok_or_else(|| {
            exit::unusable(format!("--since: `{raw}` is neither an RFC 3339 time nor an age like 7d, 12h or 30m"))
        })?,
    };
    let backend = args.backend.open().await?;
    let zoom = backend.zoom_ledger()?;
    let mut problems =
        collect_problems(&backend.ports(), backend.dead_letters().await?, Some(zoom.as_ref()), since, now).await?;
    problems.sort_by_key(|problem| problem.at);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&problems)?);
    } else if problems.is_empty() {
        println!("No problems since {}.", time(Some(since)));
    } else {
        println!("{} problem(s):", problems.len());
        for problem in &problems {
            print!("{}", render_problem(problem));
        }
    }
    Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Rejected events, field problems and flagged events from the history; `dead_letters` (the
/// dead-letter store's messages); refused webhooks from the ingest receipts; parked webhooks;
/// Zoom participant events kept without an e-mail (`zoom`'s summary, one row per registrant id).
pub async fn collect_problems(
    ports: &wiring::Ports,
    dead_letters: Vec<DeadLetter>,
    zoom: Option<&dyn webinar_bridge::platforms::zoom_ledger::ZoomLedger>,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Problem>> {
    let mut problems = Vec::new();
    for entry in ports.history.problems_since(since, now).await? {
        // Dead letters are listed from the dead-letter store below, with their message id.
        if let Some(problem) = Problem::from_history(&entry)
            && problem.kind != webinar_bridge::story::ProblemKind::DeadLetter
        {
            problems.push(problem.for_contact(entry.contact.get(..12).unwrap_or(&entry.contact)));
        }
    }
    for dead in dead_letters {
        let event_id = serde_json::from_str::<serde_json::Value>(&dead.body)
            .ok()
            .and_then(|body| body.get("event_id").and_then(|id| id.as_str()).map(str::to_owned));
        let contact = dead.group_id.get(..12).unwrap_or(&dead.group_id).to_owned();
        problems
            .push(Problem::dead_letter(None, &dead.message_id, event_id, dead.reason.as_deref()).for_contact(contact));
    }
    for receipt in ports.receipts.refused_since(since, now).await? {
        problems.extend(Problem::refused_webhook(&receipt));
    }
    let parked = match &ports.parked {
        Some(store) => store.list(now).await?,
        None => Vec::new(),
    };
    for parked in parked {
        if parked.received_at >= since {
            problems.push(Problem::parked(&parked.id, &parked.source, parked.received_at, &parked.reason));
        }
    }
    if let Some(zoom) = zoom {
        for kept in zoom.kept_summary(now).await.context("reading the kept Zoom participant events")? {
            if kept.oldest >= since {
                problems.push(Problem::zoom_unmatched(&kept.registrant_id, kept.count, kept.oldest));
            }
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_time_or_an_age() {
        let now = DateTime::parse_from_rfc3339("2026-03-10T12:00:00Z").expect("time").with_timezone(&Utc);
        assert_eq!(parse_since("7d", now), Some(now - chrono::Duration::days(7)));
        assert_eq!(parse_since("12h", now), Some(now - chrono::Duration::hours(12)));
        assert_eq!(
            parse_since("2026-03-01T00:00:00Z", now).map(|at| at.to_rfc3339()),
            Some("2026-03-01T00:00:00+00:00".into())
        );
        assert_eq!(parse_since("soon", now), None);
        assert_eq!(parse_since("", now), None);
    }
}
