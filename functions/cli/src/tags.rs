//! `webinar-bridge tags ensure`: every state tag of a webinar, created in KlickTipp before the
//! webinar opens, so its campaigns can be built before the first registrant (issue 15).
//! Idempotent: through the tag resolver and the bridge's tag directory (single writer), so a
//! second run, or a running `serve` or consumer on the same store, creates nothing twice.
//! Works on `serve`'s SQLite file (BRIDGE_DB) or a deployed AWS stack (`--stack NAME`, or the
//! Lambdas' variables): the per-webinar settings and tag directory of that deployment.

use crate::backend::BackendArgs;
use crate::{exit, wiring};
use anyhow::Context as _;
use chrono::NaiveDate;
use std::process::ExitCode;
use std::sync::Arc;
use webinar_bridge::domain::Source;
use webinar_bridge::ports::SystemClock;
use webinar_bridge::tag_resolver::TagResolver;
use webinar_bridge::tags_ahead::{WebinarRef, ensure_webinar_tags, seed_webinar_settings};

#[derive(clap::Subcommand)]
pub enum TagsCommand {
    /// Create every state tag of a webinar in KlickTipp now (idempotent), honouring
    /// BRIDGE_LANGUAGE, BRIDGE_STATE_NAMES, BRIDGE_TAG_TEMPLATE and the per-webinar tag mapping.
    /// Prints one line per state: created, existing or mapped, the tag id and its name.
    Ensure(EnsureArgs),
}

#[derive(clap::Args)]
pub struct EnsureArgs {
    /// The platform: zoom, webinarjam, everwebinar or generic:<tool>.
    #[arg(long)]
    source: String,
    /// The webinar's name as tag names show it.
    #[arg(long)]
    webinar: String,
    /// The webinar's id at the platform, when the per-webinar settings name it by id.
    #[arg(long)]
    webinar_id: Option<String>,
    /// The session date (YYYY-MM-DD, in the webinar's time zone), for a BRIDGE_TAG_TEMPLATE with {date}.
    #[arg(long)]
    session: Option<String>,
    #[command(flatten)]
    backend: BackendArgs,
}

pub async fn run(command: TagsCommand) -> anyhow::Result<ExitCode> {
    let TagsCommand::Ensure(args) = command;
    let source = parse_source(&args.source).map_err(exit::unusable)?;
    let webinar = args.webinar.trim();
    if webinar.is_empty() {
        return Err(exit::unusable("--webinar: give the webinar's name as tag names show it"));
    }
    let backend = args.backend.open_or_create().await?;
    let config = &backend.config;
    let date = match &args.session {
        Some(raw) => Some(
            NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
                .map_err(|_| exit::unusable(format!("--session: {raw:?} is not a date like 2026-03-14")))?,
        ),
        None if config.settings.tag_template.uses_date() => {
            return Err(exit::unusable(
                "--session: BRIDGE_TAG_TEMPLATE contains {date}, so each session has its own tags; give the session date (YYYY-MM-DD)",
            ));
        }
        None => None,
    };
    let client = wiring::management_client(config)?;
    let ports = backend.ports();
    let store = &ports.webinar_settings;
    seed_webinar_settings(store.as_ref(), &config.webinar_settings_seed)
        .await
        .context("cannot write BRIDGE_WEBINAR_SETTINGS to the settings store")?;
    let webinar_settings = store.all().await.context("cannot read the per-webinar settings")?;
    let resolver = TagResolver::new(Arc::clone(&ports.tags), client, Arc::new(SystemClock));
    let webinar = WebinarRef {
        source,
        webinar_id: args.webinar_id.clone().unwrap_or_else(|| webinar.to_owned()),
        name: Some(webinar.to_owned()),
        date,
    };
    let ensured = ensure_webinar_tags(&resolver, &config.settings, &webinar_settings, &webinar)
        .await
        .context("KlickTipp did not create the tags")?;
    for tag in &ensured {
        println!("{:<9}{:>12}  {}", tag.how.as_str(), tag.id, tag.name);
    }
    // The consumer need not create them again when the webinar's first event arrives.
    store
        .mark_seen(&webinar.seen_key(&config.settings), chrono::Utc::now())
        .await
        .context("cannot record the webinar as prepared")?;
    Ok(ExitCode::SUCCESS)
}

/// `zoom`, `webinarjam`, `everwebinar` (any case, also as the tool names show them) or
/// `generic:<tool>`.
fn parse_source(raw: &str) -> Result<Source, String> {
    let raw = raw.trim();
    if let Some(tool) = raw.strip_prefix("generic:") {
        let tool = tool.trim();
        if tool.is_empty() {
            return Err("--source: generic:<tool> needs the tool's name, e.g. generic:Demio".to_owned());
        }
        return Ok(Source::Generic { tool: tool.to_owned() });
    }
    match raw.to_ascii_lowercase().as_str() {
        "zoom" => Ok(Source::Zoom),
        "webinarjam" => Ok(Source::Webinarjam),
        "everwebinar" => Ok(Source::Everwebinar),
        _ => Err(format!("--source: {raw:?} is not a source; use zoom, webinarjam, everwebinar or generic:<tool>")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_by_key_or_tool_name() {
        assert_eq!(parse_source("Zoom"), Ok(Source::Zoom));
        assert_eq!(parse_source("WebinarJam"), Ok(Source::Webinarjam));
        assert_eq!(parse_source("generic:Demio"), Ok(Source::Generic { tool: "Demio".into() }));
        assert!(parse_source("generic:").unwrap_err().starts_with("--source:"));
        assert!(parse_source("teams").unwrap_err().contains("zoom, webinarjam"));
    }
}
