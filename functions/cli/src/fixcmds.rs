//! `redrive`, `resync` and `forget`: fixing what `contact` and `problems` show (DESIGN 12), on
//! `serve`'s SQLite database (BRIDGE_DB) and on the AWS resources.
//!
//! - `redrive` moves dead letters back to the queue; the consumer (serve, or the consumer
//!   Lambda) then applies them like any message.
//! - `resync` re-plans stored contacts against what KlickTipp holds now (a live read), under the
//!   rate cap, and writes only the drift.
//! - `forget` erases a contact everywhere the bridge stores it and records that an erasure
//!   happened, without the address.

use crate::backend::{Backend, BackendArgs, Store};
use crate::{exit, wiring};
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::Args;
use std::collections::BTreeSet;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use webinar_bridge::adapters::aws_secrets::SdkConfig;
use webinar_bridge::adapters::dynamodb::{DynamoContactStore, DynamoEventLog, DynamoReceiptLog};
use webinar_bridge::adapters::memory::QueueSettings;
use webinar_bridge::adapters::sqlite::{SqliteContactStore, SqliteDb, SqliteEventLog, SqliteQueue, SqliteReceiptLog};
use webinar_bridge::adapters::sqs::{SqsDeadLetters, aws_sdk_sqs};
use webinar_bridge::config::{BridgeConfig, KlickTippMode};
use webinar_bridge::consume::{ApplyMode, Consumer, Resynced};
use webinar_bridge::domain::{ContactRecord, Email, EventId, FieldSlot};
use webinar_bridge::ports::{
    ContactAdmin, DeadLetter, DeadLetters, EventErasure, HistoryEntry, HistoryOutcome, HistoryStep, ParkedWebhooks,
    RedriveMethod, RedriveSelection, SystemClock,
};

#[derive(Debug, Args)]
pub struct RedriveArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// A dead letter's message id or the event id its body carries (`problems` lists both).
    #[arg(conflicts_with = "all", required_unless_present = "all")]
    pub id: Option<String>,
    /// Every dead letter.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct ResyncArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// The contact's e-mail address.
    #[arg(conflicts_with_all = ["webinar", "all"], required_unless_present_any = ["webinar", "all"])]
    pub email: Option<String>,
    /// Every stored contact of this webinar (its id or its name).
    #[arg(long, conflicts_with = "all")]
    pub webinar: Option<String>,
    /// Every stored contact.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// The contact's e-mail address.
    pub email: String,
    /// Also delete the contact in KlickTipp (search, then DELETE /subscriber/{id}).
    #[arg(long)]
    pub klicktipp: bool,
}

/// The ports these commands need, for one backend.
pub struct FixPorts {
    pub ports: wiring::Ports,
    pub dead_letters: Arc<dyn DeadLetters>,
    pub contact_admin: Arc<dyn ContactAdmin>,
    /// Per-event records by event id: (what they are, where).
    pub event_records: Vec<(&'static str, Arc<dyn EventErasure>)>,
    /// `serve`'s file: scrubbed after an erasure so deleted bytes are gone from disk too.
    pub sqlite: Option<SqliteDb>,
}

/// Every port on `serve`'s SQLite file.
pub fn sqlite_fix_ports(db: &SqliteDb) -> FixPorts {
    let queue = SqliteQueue::new(db.clone(), QueueSettings::default());
    FixPorts {
        ports: wiring::sqlite_ports(db, QueueSettings::default()),
        dead_letters: Arc::new(queue),
        contact_admin: Arc::new(SqliteContactStore::new(db.clone())),
        event_records: vec![
            ("event records", Arc::new(SqliteEventLog::new(db.clone()))),
            ("ingest receipts", Arc::new(SqliteReceiptLog::new(db.clone()))),
        ],
        sqlite: Some(db.clone()),
    }
}

/// Every port on the AWS resources: the stack's tables, its queue and dead-letter queue.
pub fn aws_fix_ports(sdk: &SdkConfig, resources: &wiring::AwsResources) -> anyhow::Result<FixPorts> {
    let dead_letter_queue_url = resources.dead_letter_queue_url.as_ref().ok_or_else(|| {
        exit::unusable(
            "DEAD_LETTER_QUEUE_URL: not set; name the stack with --stack NAME, or set the dead-letter queue's URL",
        )
    })?;
    Ok(FixPorts {
        ports: wiring::aws_ports(sdk, resources),
        dead_letters: Arc::new(SqsDeadLetters::new(
            aws_sdk_sqs::Client::new(sdk),
            &resources.events_queue_url,
            dead_letter_queue_url,
        )),
        contact_admin: Arc::new(DynamoContactStore::from_conf(sdk, &resources.contacts_table)),
        event_records: vec![
            ("event records", Arc::new(DynamoEventLog::from_conf(sdk, &resources.events_table))),
            ("ingest receipts", Arc::new(DynamoReceiptLog::from_conf(sdk, &resources.events_table))),
        ],
        sqlite: None,
    })
}

fn fix_ports(backend: &Backend) -> anyhow::Result<FixPorts> {
    match &backend.store {
        Store::Sqlite(db) => Ok(sqlite_fix_ports(db)),
        Store::Aws { sdk, resources } => aws_fix_ports(sdk, resources),
    }
}

fn parse_email(raw: &str) -> anyhow::Result<Email> {
    Email::parse(raw).map_err(|error| exit::unusable(format!("{raw}: not a usable e-mail address ({error})")))
}

/// Removes every stored parked body that mentions `email` (expired ones not yet swept too);
/// returns how many.
async fn forget_parked(parked: &dyn ParkedWebhooks, email: &Email) -> anyhow::Result<usize> {
    let stored = parked.list(DateTime::<Utc>::MIN_UTC).await.context("reading the parked webhooks")?;
    let mut removed = 0;
    for webhook in stored.iter().filter(|webhook| mentions(&webhook.body, email)) {
        removed += usize::from(parked.remove(&webhook.id).await.context("erasing a parked webhook")?);
    }
    Ok(removed)
}

/// Whether `body` holds `email` as it is, or percent-encoded (a form body: `%40`, `%2B`), in any
/// letter case.
fn mentions(body: &[u8], email: &Email) -> bool {
    let plain = email.as_str().to_ascii_lowercase();
    let encoded: String = plain
        .bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(byte).to_string(),
            other => format!("%{other:02x}"),
        })
        .collect();
    let body = body.to_ascii_lowercase();
    [plain.as_bytes(), encoded.as_bytes(), plain.replace('@', "%40").as_bytes()]
        .iter()
        .any(|needle| !needle.is_empty() && body.windows(needle.len()).any(|window| window == *needle))
}

// ---------------------------------------------------------------------------------------------
// redrive

fn describe_letter(letter: &DeadLetter) -> String {
    let event = letter.event_id().map(|id| format!("  event {id}")).unwrap_or_default();
    let contact = letter.group_id.get(..12).unwrap_or(&letter.group_id);
    format!("  message {}{event}  contact {contact}", letter.message_id)
}

pub async fn redrive(args: RedriveArgs) -> anyhow::Result<ExitCode> {
    let backend = args.backend.open().await?;
    let fix = fix_ports(&backend)?;
    let selection = match args.id {
        None => RedriveSelection::All,
        Some(id) => {
            let listed = fix.dead_letters.list(usize::MAX).await.context("listing the dead letters")?;
            if listed.iter().any(|letter| letter.message_id == id) {
                RedriveSelection::Message(id)
            } else if listed.iter().any(|letter| letter.event_id().as_deref() == Some(id.as_str())) {
                RedriveSelection::Event(id)
            } else {
                println!(
                    "No dead letter has the message or event id {id} (run `webinar-bridge problems` to list them)."
                );
                return Ok(ExitCode::FAILURE);
            }
        }
    };
    let redriven = fix.dead_letters.redrive(&selection).await.context("redriving the dead letters")?;
    let how = match redriven.method {
        RedriveMethod::InPlace => "back at their place in the queue".to_owned(),
        RedriveMethod::MoveTask => "by an SQS message-move task (it runs for a few seconds)".to_owned(),
        RedriveMethod::Resend => match &redriven.note {
            Some(note) => format!("by receive, send and delete (the message-move task was refused: {note})"),
            None => "by receive, send and delete".to_owned(),
        },
    };
    if redriven.moved.is_empty() {
        println!("No dead letters to redrive.");
        return Ok(ExitCode::SUCCESS);
    }
    println!("Redrove {} dead letter(s) {how}:", redriven.moved.len());
    for letter in &redriven.moved {
        println!("{}", describe_letter(letter));
    }
    println!("The consumer applies them next; `webinar-bridge contact <email>` shows the outcome.");
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------------
// resync

/// One line per contact on a terminal (overwritten), plain lines otherwise.
struct Progress {
    terminal: bool,
    total: usize,
    done: usize,
    started: Instant,
}

impl Progress {
    fn new(total: usize) -> Self {
        Self { terminal: std::io::stderr().is_terminal(), total, done: 0, started: Instant::now() }
    }

    fn step(&mut self, healed: usize) {
        self.done += 1;
        let elapsed = self.started.elapsed().as_secs_f64();
        let left = (self.total - self.done) as f64 * elapsed / self.done as f64;
        let width = 30;
        let filled = self.done * width / self.total.max(1);
        let line = format!(
            "[{}{}] {}/{} contacts, {healed} healed, ETA {left:.0} s",
            "#".repeat(filled),
            "-".repeat(width - filled),
            self.done,
            self.total
        );
        if self.terminal {
            eprint!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
    }

    fn finish(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}

fn in_webinar(record: &ContactRecord, webinar: &str) -> bool {
    record
        .webinars
        .iter()
        .any(|(key, state)| key.webinar_id == webinar || state.field(FieldSlot::WebinarName) == Some(webinar))
}

fn describe_resync(email: &Email, resynced: &Resynced) -> Option<String> {
    let mut changes = Vec::new();
    if resynced.contact_missing {
        changes.push("contact created again in KlickTipp".to_owned());
    }
    for tag in &resynced.tags_added {
        changes.push(format!("tag `{tag}` set"));
    }
    for tag in &resynced.tags_removed {
        changes.push(format!("tag `{tag}` removed"));
    }
    if !resynced.fields_written.is_empty() {
        changes.push(format!("fields written: {}", resynced.fields_written.join(", ")));
    }
    (!changes.is_empty()).then(|| format!("{email}: {} ({} write call(s))", changes.join("; "), resynced.writes))
}

pub async fn resync(args: ResyncArgs) -> anyhow::Result<ExitCode> {
    let backend = args.backend.open().await?;
    let config = &backend.config;
    if config.klicktipp.mode() != KlickTippMode::Management {
        wiring::management_client(config)?;
    }
    let fix = fix_ports(&backend)?;
    let emails: Vec<Email> = match (&args.email, &args.webinar) {
        (Some(raw), _) => vec![parse_email(raw)?],
        (None, webinar) => {
            let mut chosen = Vec::new();
            for email in fix.contact_admin.emails().await.context("listing the stored contacts")? {
                let wanted = match webinar {
                    None => true,
                    Some(webinar) => fix
                        .ports
                        .contacts
                        .load(&email)
                        .await
                        .context("reading a stored contact")?
                        .is_some_and(|stored| in_webinar(&stored.value, webinar)),
                };
                if wanted {
                    chosen.push(email);
                }
            }
            chosen
        }
    };
    let consumer = resync_consumer(config, &fix.ports)?;
    let single = args.email.is_some();
    let mut progress = (!single).then(|| Progress::new(emails.len()));
    let (mut healed, mut writes, mut failed, mut missing) = (0usize, 0usize, 0usize, 0usize);
    for email in &emails {
        match consumer.resync_live(email).await {
            Ok(resynced) if !resynced.stored => {
                missing += 1;
                if single {
                    println!("{email}: no contact is stored under this address; nothing to resync.");
                }
            }
            Ok(resynced) => {
                writes += resynced.writes;
                match describe_resync(email, &resynced) {
                    Some(line) => {
                        healed += 1;
                        if progress.as_ref().is_some_and(|progress| progress.terminal) {
                            eprint!("\r\x1b[2K");
                        }
                        println!("{line}");
                    }
                    None if single => println!("{email}: KlickTipp already matches the stored state; nothing written."),
                    None => {}
                }
            }
            Err(error) => {
                failed += 1;
                eprintln!("{email}: resync failed: {error}");
            }
        }
        if let Some(progress) = progress.as_mut() {
            progress.step(healed);
        }
    }
    if let Some(progress) = &progress {
        progress.finish();
        println!(
            "Resynced {} contact(s): {healed} healed with {writes} write call(s), {} already matched, {failed} failed.",
            emails.len() - failed,
            emails.len() - failed - healed - missing
        );
    }
    Ok(if failed == 0 && missing == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// A consumer over `ports` with the configured account's Management API, under the rate cap
/// (BRIDGE_KLICKTIPP_RPS).
fn resync_consumer(config: &BridgeConfig, ports: &wiring::Ports) -> anyhow::Result<Consumer> {
    let client = wiring::management_client(config)?;
    let options = wiring::consumer_options(config, ApplyMode::Management, Duration::from_secs(60));
    let (_, consumer) = wiring::assemble(ports, client, config, options, Arc::new(SystemClock));
    Ok(consumer)
}

// ---------------------------------------------------------------------------------------------
// forget

/// Every event id the record mentions (stamps, field problems), wherever it sits in the JSON.
fn event_ids_in_record(record: &ContactRecord) -> BTreeSet<String> {
    fn walk(value: &serde_json::Value, found: &mut BTreeSet<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("event_id", serde_json::Value::String(id)) => {
                            found.insert(id.clone());
                        }
                        _ => walk(value, found),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| walk(item, found)),
            _ => {}
        }
    }
    let mut found = BTreeSet::new();
    if let Ok(json) = serde_json::to_value(record) {
        walk(&json, &mut found);
    }
    found
}

pub async fn forget(args: ForgetArgs) -> anyhow::Result<ExitCode> {
    let email = parse_email(&args.email)?;
    let backend = args.backend.open().await?;
    let config = &backend.config;
    let client = if args.klicktipp { Some(wiring::management_client(config)?) } else { None };
    let fix = fix_ports(&backend)?;
    let contact = email.group_hash();
    let now = Utc::now();

    // KlickTipp first: if it fails nothing is erased yet, and the command can simply run again.
    let mut klicktipp = None;
    if let Some(client) = &client {
        let deleted =
            match client.search_subscriber(email.as_str()).await.context("KlickTipp: searching the contact")? {
                Some(id) => client.delete_subscriber(&id).await.context("KlickTipp: deleting the contact")?,
                None => false,
            };
        klicktipp = Some(deleted);
    }

    let record = fix.ports.contacts.load(&email).await.context("reading the contact")?.map(|stored| stored.value);
    let history = fix.ports.history.for_contact(&contact, now).await.context("reading the history")?;
    let mut ids: BTreeSet<String> = history.iter().map(|entry| entry.event_id.as_str().to_owned()).collect();
    if let Some(record) = &record {
        ids.extend(event_ids_in_record(record));
    }
    let ids: Vec<EventId> = ids.iter().filter_map(|id| EventId::from_sender(id)).collect();

    let mut counts: Vec<(&str, usize)> = Vec::new();
    counts.push((
        "queued messages and dead letters",
        fix.dead_letters.erase_group(&contact).await.context("erasing queued messages")?,
    ));
    for (what, store) in &fix.event_records {
        counts.push((what, store.erase_events(&ids).await.with_context(|| format!("erasing {what}"))?));
    }
    counts.push(("history entries", fix.ports.history.forget_contact(&contact).await.context("erasing the history")?));
    counts.push((
        "Zoom registrant records",
        backend.zoom_ledger()?.forget_email(&email).await.context("erasing the Zoom registrant records")?,
    ));
    if let Some(parked) = &fix.ports.parked {
        counts.push(("parked webhooks", forget_parked(parked.as_ref(), &email).await?));
    }
    counts.push((
        "contact record",
        usize::from(fix.contact_admin.erase(&email).await.context("erasing the contact record")?),
    ));
    let items: usize = counts.iter().map(|(_, count)| count).sum();

    // The record that an erasure happened: a random key, no address, no hash of it.
    let key = format!("erasure-{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>());
    if let Some(event_id) = EventId::from_sender(&key) {
        let entry = HistoryEntry {
            contact: key,
            event_id,
            at: now,
            step: HistoryStep::Outcome(HistoryOutcome::Erased { items }),
        };
        fix.ports.history.append(&entry, config.retention).await.context("recording the erasure")?;
    }
    let scrubbed = match &fix.sqlite {
        Some(db) => Some(db.scrub().await.context("scrubbing the database file")?),
        None => None,
    };
    tracing::info!(items, "contact erased");

    println!("Forgot {email}: {items} stored item(s) erased.");
    for (what, count) in &counts {
        println!("  {what}: {count}");
    }
    match klicktipp {
        Some(true) => println!("  KlickTipp: contact deleted"),
        Some(false) => println!("  KlickTipp: no contact with this address"),
        None => println!("  KlickTipp: left as it is (add --klicktipp to delete the contact there too)"),
    }
    match scrubbed {
        Some(true) => println!("  database file rebuilt and its write-ahead log truncated: the bytes are gone"),
        Some(false) => println!(
            "  database file rebuilt; its write-ahead log was busy (serve is writing) and is overwritten as serve goes on"
        ),
        None => {}
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parked_body_mentions_the_address_in_any_case_or_percent_encoded() {
        let email = Email::parse("Max.Muster+news@Example.com").expect("an address");
        for body in [
            r#"{"email":"max.muster+news@example.com"}"#,
            r#"{"email":"MAX.MUSTER+NEWS@EXAMPLE.COM"}"#,
            "email=max.muster%2Bnews%40example.com&webinar_id=1",
            "email=Max.Muster%2bnews%40Example.com",
            "email=max.muster+news%40example.com",
        ] {
            assert!(mentions(body.as_bytes(), &email), "{body}");
        }
        for body in ["email=stays%40example.com", r#"{"email":"muster+news@example.com.other"}"#, ""] {
            assert!(!mentions(body.as_bytes(), &email), "{body}");
        }
    }
}
