//! `parked` and `reprocess`: authenticated WebinarJam/EverWebinar webhooks whose body could not
//! become an event were kept (answered `202 parked`); list them, and run them through ingest
//! again once an alias (`BRIDGE_FIELD_ALIASES`) or the configuration is fixed.
//!
//! Store: `serve`'s SQLite file (BRIDGE_DB), or a deployed stack (`--stack NAME`, or the
//! Lambdas' variables), as `backend` chooses for every operator command.

use crate::backend::BackendArgs;
use crate::exit;
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::json;
use std::process::ExitCode;
use std::sync::Arc;
use webinar_bridge::ingest::{Ingest, Reprocessed};
use webinar_bridge::ports::{ParkedWebhook, ParkedWebhooks};

#[derive(Debug, Args)]
pub struct ParkedArgs {
    /// Print the list as a JSON array (without bodies).
    #[arg(long)]
    pub json: bool,
    /// Print one parked webhook in full, its body included (it may hold a person's address).
    #[arg(long, value_name = "ID")]
    pub show: Option<String>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

#[derive(Debug, Args)]
pub struct ReprocessArgs {
    /// The parked webhook to run again (from `webinar-bridge parked`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub id: Option<String>,
    /// Run every parked webhook again, oldest first.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// The parked store and an ingest that enqueues where the running bridge consumes.
struct Parked {
    store: Arc<dyn ParkedWebhooks>,
    ingest: Ingest,
}

async fn open(args: &BackendArgs) -> anyhow::Result<Parked> {
    let backend = args.open().await?;
    let ports = backend.ports();
    let config = &backend.config;
    let store = ports.parked.clone().ok_or_else(|| anyhow::anyhow!("this deployment keeps no parked webhooks"))?;
    let ingest = Ingest::new(Arc::clone(&ports.queue), config.secrets.clone())
        .with_receipts(Arc::clone(&ports.receipts), config.retention)
        .with_history(Arc::clone(&ports.history))
        .with_field_aliases(config.field_aliases.clone())
        .with_parked(Arc::clone(&store), config.parked_cap);
    Ok(Parked { store, ingest })
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// What a listing shows of a parked webhook: never its body.
pub fn summary(parked: &ParkedWebhook) -> serde_json::Value {
    json!({
        "id": parked.id,
        "source": parked.source,
        "path": parked.path,
        "query": parked.query,
        "content_type": parked.content_type,
        "received_at": parked.received_at,
        "updated_at": parked.updated_at,
        "expires_at": parked.expires_at,
        "size": parked.size(),
        "reason": parked.reason,
    })
}

pub async fn list(args: ParkedArgs) -> anyhow::Result<ExitCode> {
    let backend = open(&args.backend).await?;
    let now = Utc::now();
    if let Some(id) = &args.show {
        let parked = backend
            .store
            .get(id, now)
            .await
            .context("reading the parked webhook")?
            .ok_or_else(|| exit::unusable(format!("{id}: no such parked webhook (see `webinar-bridge parked`)")))?;
        let mut shown = summary(&parked);
        shown["body"] = json!(String::from_utf8_lossy(&parked.body));
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(ExitCode::SUCCESS);
    }
    let parked = backend.store.list(now).await.context("listing parked webhooks")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&parked.iter().map(summary).collect::<Vec<_>>())?);
    } else if parked.is_empty() {
        println!("Nothing parked.");
    } else {
        println!("{} parked webhook(s):", parked.len());
        for webhook in &parked {
            println!(
                "  {}  {}  {}  {} bytes  {}{}\n      reason: {}",
                webhook.id,
                time(webhook.received_at),
                webhook.source,
                webhook.size(),
                webhook.path,
                webhook.query.as_deref().map(|query| format!("?{query}")).unwrap_or_default(),
                webhook.reason
            );
        }
        println!(
            "fix: add the body's keys to BRIDGE_FIELD_ALIASES (see `webinar-bridge parked --show <id>`), then `webinar-bridge reprocess --all`"
        );
    }
    Ok(if parked.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

pub async fn reprocess(args: ReprocessArgs) -> anyhow::Result<ExitCode> {
    let backend = open(&args.backend).await?;
    let now = Utc::now();
    let parked =
        match &args.id {
            Some(id) => {
                vec![backend.store.get(id, now).await.context("reading the parked webhook")?.ok_or_else(|| {
                    exit::unusable(format!("{id}: no such parked webhook (see `webinar-bridge parked`)"))
                })?]
            }
            None => backend.store.list(now).await.context("listing parked webhooks")?,
        };
    if parked.is_empty() {
        println!("Nothing parked.");
        return Ok(ExitCode::SUCCESS);
    }
    let (mut accepted, mut refused, mut failed) = (0, 0, 0);
    for webhook in &parked {
        match backend.ingest.reprocess(backend.store.as_ref(), webhook, Utc::now()).await {
            Reprocessed::Accepted { event_ids } => {
                accepted += 1;
                println!("{}  accepted: {} event(s) queued {}", webhook.id, event_ids.len(), event_ids.join(" "));
            }
            Reprocessed::StillRefused { reason } => {
                refused += 1;
                println!("{}  still parked: {reason}", webhook.id);
            }
            Reprocessed::Failed { message } => {
                failed += 1;
                println!("{}  failed, still parked: {message}", webhook.id);
            }
        }
    }
    println!("{accepted} accepted, {refused} still parked, {failed} failed.");
    Ok(if refused + failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
