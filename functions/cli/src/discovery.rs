//! `webinar-bridge klicktipp tags|fields|optins`: what the configured account has, so the ids
//! and keys for BRIDGE_FIELD_MAP and KLICKTIPP_LISTID can be copied from it.

use crate::wiring;
use anyhow::Context as _;
use serde_json::{Value, json};
use std::process::ExitCode;
use webinar_bridge::klicktipp::KlickTippClient;

#[derive(clap::Subcommand)]
pub enum DiscoveryCommand {
    /// Manual tags: id and name.
    Tags(ListArgs),
    /// Data fields: key (for BRIDGE_FIELD_MAP) and label.
    Fields(ListArgs),
    /// Opt-in processes: id (for KLICKTIPP_LISTID) and name.
    Optins(ListArgs),
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// Print a JSON array of {"id"|"key", "name"} instead of tab-separated lines.
    #[arg(long)]
    json: bool,
}

/// One listed thing: its id or key, and its name.
struct Entry {
    id: Value,
    name: String,
}

pub async fn run(command: DiscoveryCommand) -> anyhow::Result<ExitCode> {
    let config = wiring::load_config()?;
    let client = wiring::management_client(&config)?;
    let (id_label, entries, args) = match command {
        DiscoveryCommand::Tags(args) => ("id", tags(&client).await?, args),
        DiscoveryCommand::Fields(args) => ("key", fields(&client).await?, args),
        DiscoveryCommand::Optins(args) => ("id", optins(&client).await?, args),
    };
    if let Err(error) = client.logout().await {
        tracing::warn!(%error, "could not log out of KlickTipp");
    }
    if args.json {
        let listed: Vec<Value> = entries.iter().map(|entry| json!({id_label: entry.id, "name": entry.name})).collect();
        println!("{}", serde_json::to_string_pretty(&listed)?);
    } else {
        for entry in &entries {
            let id = entry.id.as_str().map(str::to_owned).unwrap_or_else(|| entry.id.to_string());
            println!("{id}\t{}", entry.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn tags(client: &KlickTippClient) -> anyhow::Result<Vec<Entry>> {
    let tags = client.list_tags().await.context("cannot list the KlickTipp tags")?;
    Ok(tags.into_iter().map(|(id, name)| Entry { id: json!(id), name }).collect())
}

async fn fields(client: &KlickTippClient) -> anyhow::Result<Vec<Entry>> {
    let fields = client.list_fields().await.context("cannot list the KlickTipp data fields")?;
    Ok(fields.into_iter().map(|(key, name)| Entry { id: json!(key), name }).collect())
}

async fn optins(client: &KlickTippClient) -> anyhow::Result<Vec<Entry>> {
    let processes = client.list_optins().await.context("cannot list the KlickTipp opt-in processes")?;
    Ok(processes.into_iter().map(|(id, name)| Entry { id: json!(id), name: optin_name(name) }).collect())
}

/// KlickTipp names its predefined double opt-in process with an empty string.
fn optin_name(name: String) -> String {
    if name.is_empty() { "(default double opt-in)".to_owned() } else { name }
}
