//! `webinar-bridge`: the whole pipeline on one machine (`serve`), an offline replay of recorded
//! webhooks (`simulate`), and setup checks against the KlickTipp account (`klicktipp`,
//! `check-config`). Exit codes: 0 success, 1 failure or problems found, 2 unusable input
//! (command line, configuration, request file).

mod backend;
mod check_config;
mod console;
mod discovery;
mod exit;
mod fixcmds;
mod history;
mod http;
mod parked;
mod pull;
mod serve;
mod simulate;
mod tags;
mod wiring;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "webinar-bridge", version, about = "Webinar platforms to KlickTipp, exactly once in effect.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run ingest (HTTP) and the consumer on one machine with SQLite at BRIDGE_DB.
    Serve(serve::ServeArgs),
    /// Replay recorded requests (JSON lines) offline through the real pipeline; print one JSON report.
    ///
    /// Each line: {"method","path","headers":{..},"body":"<raw text>"} (or "body_base64"), with an
    /// optional "query" and "received_at" (RFC 3339). Storage is in memory and KlickTipp is an
    /// in-process simulator, so nothing outside this process is touched. A request arrives at its
    /// received_at, else at its x-zm-request-timestamp or webhook-timestamp (so recorded signatures
    /// still verify), else at 2026-01-01T00:00:00Z plus one second per line. Configuration comes
    /// from the same environment as `serve`.
    Simulate(simulate::SimulateArgs),
    /// List what the configured KlickTipp account has (setup discovery).
    #[command(subcommand)]
    Klicktipp(discovery::DiscoveryCommand),
    /// Validate the environment and check it against the KlickTipp account.
    CheckConfig,
    /// List the webinars and sessions the configured platform APIs hold.
    Webinars(pull::WebinarsArgs),
    /// Pull a past webinar from its platform's API and enqueue it like webhooks (--dry-run: show
    /// the tag and field changes instead).
    Backfill(pull::BackfillArgs),
    /// Show one contact's story (from BRIDGE_DB, or the AWS stack with --stack): timeline, state per webinar, implied tags, what
    /// KlickTipp holds now and the differences. Exit 1 when there are differences or problems.
    Contact(history::ContactArgs),
    /// List rejected events, field problems, dead letters and refused webhooks with the fix.
    /// Exit 1 when there are any.
    Problems(history::ProblemsArgs),
    /// Prepare a webinar's KlickTipp tags before it opens (`tags ensure`).
    #[command(subcommand)]
    Tags(tags::TagsCommand),
    /// Move dead letters back to the queue (one by message or event id, or --all); the consumer
    /// then applies them.
    Redrive(fixcmds::RedriveArgs),
    /// Re-plan stored contacts against what KlickTipp holds now (a live read) and write only the
    /// drift, under the rate cap: one address, --webinar NAME or --all.
    Resync(fixcmds::ResyncArgs),
    /// Erase a contact: its state, history, event records, receipts and queued messages
    /// (--klicktipp: also the KlickTipp contact). The erasure is recorded without the address.
    Forget(fixcmds::ForgetArgs),
    /// List parked webhooks: authenticated WebinarJam/EverWebinar bodies that could not become an
    /// event (answered 202 parked). Exit 1 when there are any.
    Parked(parked::ParkedArgs),
    /// Run parked webhooks through ingest again (after a BRIDGE_FIELD_ALIASES or configuration
    /// fix): accepted ones are queued and removed, the others stay with their new reason.
    Reprocess(parked::ReprocessArgs),
}

impl Command {
    /// `simulate` prints its report on stdout and is usually read by a person or a script, so it
    /// only logs what went wrong unless RUST_LOG asks for more.
    fn default_log_level(&self) -> &'static str {
        match self {
            Command::Serve(_) => "info",
            Command::Simulate(_)
            | Command::Klicktipp(_)
            | Command::CheckConfig
            | Command::Webinars(_)
            | Command::Backfill(_)
            | Command::Contact(_)
            | Command::Problems(_)
            | Command::Tags(_)
            | Command::Redrive(_)
            | Command::Resync(_)
            | Command::Forget(_)
            | Command::Parked(_)
            | Command::Reprocess(_) => "warn",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // JSON lines on stderr; stdout stays free for what the command prints for people and scripts.
    webinar_bridge::telemetry::init_json_logging(cli.command.default_log_level());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return exit::report(anyhow::Error::new(error).context("cannot start the async runtime")),
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(error) => exit::report(error),
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve::run(args).await,
        Command::Simulate(args) => simulate::run(args).await,
        Command::Klicktipp(command) => discovery::run(command).await,
        Command::CheckConfig => check_config::run().await,
        Command::Webinars(args) => pull::webinars(args).await,
        Command::Backfill(args) => pull::backfill(args).await,
        Command::Contact(args) => history::contact(args).await,
        Command::Problems(args) => history::problems(args).await,
        Command::Tags(command) => tags::run(command).await,
        Command::Redrive(args) => fixcmds::redrive(args).await,
        Command::Resync(args) => fixcmds::resync(args).await,
        Command::Forget(args) => fixcmds::forget(args).await,
        Command::Parked(args) => parked::list(args).await,
        Command::Reprocess(args) => parked::reprocess(args).await,
    }
}
