//! `webinar-bridge webinars` and `webinar-bridge backfill` (DESIGN 11): see what the platforms
//! hold, and load a past webinar through the same queue and consumer as webhooks.

use crate::{exit, wiring};
use anyhow::Context as _;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::Instant;
use webinar_bridge::adapters::memory::QueueSettings;
use webinar_bridge::adapters::sqlite::SqliteDb;
use webinar_bridge::domain::{ContactRecord, Email, WebinarEvent};
use webinar_bridge::platforms::config::PlatformConfig;
use webinar_bridge::platforms::mapping::{Mapped, ZoomSession};
use webinar_bridge::platforms::pull::{self, Puller};
use webinar_bridge::platforms::{Platform, PlatformError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceArg {
    Webinarjam,
    Everwebinar,
    Zoom,
}

impl SourceArg {
    fn platform(self) -> Platform {
        match self {
            SourceArg::Webinarjam => Platform::WebinarJam,
            SourceArg::Everwebinar => Platform::EverWebinar,
            SourceArg::Zoom => Platform::Zoom,
        }
    }
}

#[derive(clap::Args)]
pub struct WebinarsArgs {
    /// Only this platform (default: every platform with credentials).
    #[arg(long)]
    source: Option<SourceArg>,
}

#[derive(clap::Args)]
pub struct BackfillArgs {
    /// The platform to pull from.
    #[arg(long)]
    source: SourceArg,
    /// The webinar id (as `webinar-bridge webinars` lists it).
    #[arg(long)]
    webinar: String,
    /// One session: a WebinarJam/EverWebinar schedule id, or a Zoom occurrence uuid (required
    /// for Zoom).
    #[arg(long)]
    session: Option<String>,
    /// Zoom only (required there): the webinar's topic, as tags name it.
    #[arg(long)]
    name: Option<String>,
    /// Zoom only: the webinar's length in minutes (for Fully Attended).
    #[arg(long)]
    duration_minutes: Option<u32>,
    /// Print the tag and field changes that would happen; enqueue nothing.
    #[arg(long)]
    dry_run: bool,
}

fn puller() -> anyhow::Result<Puller> {
    let config = PlatformConfig::from_env().map_err(|error| exit::unusable(error.to_string()))?;
    Puller::from_config(&config).map_err(|error| exit::unusable(error.to_string()))
}

pub async fn webinars(args: WebinarsArgs) -> anyhow::Result<ExitCode> {
    let puller = puller()?;
    let wanted: Vec<Platform> = match args.source {
        Some(source) => vec![source.platform()],
        None => [Platform::WebinarJam, Platform::EverWebinar, Platform::Zoom]
            .into_iter()
            .filter(|platform| match platform {
                Platform::Zoom => puller.zoom().is_ok(),
                other => puller.genesis(*other).is_ok(),
            })
            .collect(),
    };
    if wanted.is_empty() {
        return Err(exit::unusable(
            "no platform API is configured: set BRIDGE_WEBINARJAM_API_KEY, BRIDGE_EVERWEBINAR_API_KEY or ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID and ZOOM_CLIENT_SECRET",
        ));
    }
    let mut out = std::io::stdout().lock();
    for platform in wanted {
        match platform {
            Platform::Zoom => {
                let client = puller.zoom()?;
                for webinar in client.webinars().await? {
                    writeln!(out, "zoom\t{}\t{}", webinar.id, webinar.topic.unwrap_or_default())?;
                    // Ended occurrences: the --session values for `backfill --source zoom`.
                    for instance in client.past_instances(&webinar.id).await? {
                        writeln!(
                            out,
                            "  session {}\t{}",
                            instance.uuid.unwrap_or_default(),
                            instance.start_time.unwrap_or_default()
                        )?;
                    }
                }
            }
            genesis => {
                let client = puller.genesis(genesis)?;
                for summary in client.webinars().await? {
                    let details = client.webinar(&summary.webinar_id).await?;
                    let name = details.name.or(summary.name).unwrap_or_default();
                    writeln!(out, "{}\t{}\t{name}", genesis.name().to_ascii_lowercase(), summary.webinar_id)?;
                    for schedule in details.schedules {
                        writeln!(
                            out,
                            "  session {}\t{}\t{}",
                            schedule.schedule,
                            schedule.date.unwrap_or_default(),
                            details.timezone.clone().unwrap_or_default()
                        )?;
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Pages, records, events and time on one updating line on a terminal; plain lines otherwise.
struct Progress {
    terminal: bool,
    started: Instant,
    pages: usize,
    records: usize,
    expected_pages: Option<u32>,
}

impl Progress {
    fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            started: Instant::now(),
            pages: 0,
            records: 0,
            expected_pages: None,
        }
    }

    fn page(&mut self, page: &webinar_bridge::platforms::genesis::RegistrantsPage) {
        self.pages += 1;
        self.records += page.registrants.len();
        self.expected_pages = self.expected_pages.or(page.last_page);
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta = self.expected_pages.map(|total| {
            let left = f64::from(total).max(self.pages as f64) - self.pages as f64;
            format!(", ETA {:.0} s", left * elapsed / self.pages as f64)
        });
        let of = self.expected_pages.map(|total| format!("/{total}")).unwrap_or_default();
        let line = format!("pages {}{of}, records {}{}", self.pages, self.records, eta.unwrap_or_default());
        if self.terminal {
            eprint!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
    }

    fn done(&self, events: usize) {
        let pages = if self.pages > 0 {
            format!("{} records in {} pages -> ", self.records, self.pages)
        } else {
            String::new()
        };
        let line = format!("pulled {pages}{events} events in {:.1} s", self.started.elapsed().as_secs_f64());
        if self.terminal {
            eprintln!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
    }
}

pub async fn backfill(args: BackfillArgs) -> anyhow::Result<ExitCode> {
    let puller = puller()?;
    let pulled_at = chrono::Utc::now();
    let mut progress = Progress::new();
    let mapped: Mapped = match args.source.platform() {
        Platform::Zoom => {
            let uuid = args.session.clone().ok_or_else(|| {
                exit::unusable("--session <occurrence uuid> is required for Zoom (the uuid of the ended occurrence)")
            })?;
            let topic = args.name.clone().ok_or_else(|| {
                exit::unusable(
                    "--name <topic> is required for Zoom: tags name the webinar by its topic, as webhooks do",
                )
            })?;
            // A recurring occurrence keys state as its webhooks do (`<id>@<occurrence>`).
            let (start_time, occurrence_id) = puller.zoom_occurrence(&args.webinar, &uuid).await;
            let session = ZoomSession {
                webinar_id: args.webinar.clone(),
                uuid,
                topic: Some(topic),
                start_time,
                duration_minutes: args.duration_minutes,
                timezone: None,
                occurrence_id,
            };
            puller.pull_zoom(&session, pulled_at).await.map_err(explain)?
        }
        genesis => puller
            .pull_genesis(genesis, &args.webinar, args.session.as_deref(), args.duration_minutes, pulled_at, |page| {
                progress.page(page)
            })
            .await
            .map_err(explain)?,
    };
    progress.done(mapped.events.len());
    if mapped.skipped_without_email + mapped.skipped_unregistered > 0 {
        eprintln!(
            "left out: {} records without a usable e-mail, {} participants who never registered (hosts, panelists)",
            mapped.skipped_without_email, mapped.skipped_unregistered
        );
    }

    let config = wiring::load_config()?;
    let db = SqliteDb::open(&config.db_path)
        .map_err(|error| exit::unusable(format!("cannot open BRIDGE_DB {}: {error}", config.db_path.display())))?;
    let ports = wiring::sqlite_ports(&db, QueueSettings::default());
    if args.dry_run {
        print_changes(&ports, &config.settings, &mapped.events).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let sent = pull::enqueue(ports.queue.as_ref(), &mapped.events).await.context("cannot enqueue the pulled events")?;
    println!(
        "enqueued {sent} events for {} contacts in {}; `webinar-bridge serve` applies them (events it already has cost nothing)",
        mapped.events.iter().map(|event| event.contact.email.as_str()).collect::<BTreeSet<_>>().len(),
        config.db_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn explain(error: PlatformError) -> anyhow::Error {
    if error.is_retryable() { anyhow::Error::new(error) } else { exit::unusable(error.to_string()) }
}

/// For each contact: the tags that would be added and removed and the fields that would change,
/// against what KlickTipp holds according to the bridge's database.
async fn print_changes(
    ports: &wiring::Ports,
    settings: &webinar_bridge::domain::Settings,
    events: &[WebinarEvent],
) -> anyhow::Result<()> {
    let mut by_contact: BTreeMap<Email, Vec<&WebinarEvent>> = BTreeMap::new();
    for event in events {
        by_contact.entry(event.contact.email.clone()).or_default().push(event);
    }
    let mut out = std::io::stdout().lock();
    let mut unchanged = 0;
    for (email, events) in by_contact {
        let stored = ports.contacts.load(&email).await.context("cannot read the contact store")?;
        let mut record = stored.map(|versioned| versioned.value).unwrap_or_else(|| ContactRecord::new(email.clone()));
        for event in events {
            record.apply(event);
        }
        let desired = record.desired(settings);
        let applied = &record.applied;
        let added: Vec<&String> = desired.tags.difference(&applied.tags).collect();
        let removed: Vec<&String> = applied.tags.difference(&desired.tags).collect();
        let fields: Vec<String> = desired
            .fields
            .iter()
            .filter(|(key, value)| applied.fields.get(*key) != Some(*value))
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        if added.is_empty() && removed.is_empty() && fields.is_empty() {
            unchanged += 1;
            continue;
        }
        writeln!(out, "{email}")?;
        for tag in added {
            writeln!(out, "  + {tag}")?;
        }
        for tag in removed {
            writeln!(out, "  - {tag}")?;
        }
        for field in fields {
            writeln!(out, "  field {field}")?;
        }
    }
    writeln!(out, "{unchanged} contacts unchanged; dry run: nothing was enqueued")?;
    Ok(())
}
