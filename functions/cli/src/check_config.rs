//! `webinar-bridge check-config`: the environment is valid, KlickTipp answers, and everything the
//! configuration names exists in the account. One line per problem; exit 1 if there is any.

use crate::wiring;
use std::collections::BTreeMap;
use std::process::ExitCode;
use webinar_bridge::config::{BridgeConfig, KlickTippMode};
use webinar_bridge::domain::{FieldMap, TagTemplate, all_distinct, preview, session_date};
use webinar_bridge::klicktipp::KlickTippClient;
use webinar_bridge::sources::SourceSecrets;

pub async fn run() -> anyhow::Result<ExitCode> {
    let config = wiring::load_config()?;
    let mut problems = source_problems(&config.secrets);
    let (tags, tag_problems) = tag_preview(&config.settings.tag_template);
    println!("Tag names of a webinar, for example: {}", tags.join(" | "));
    problems.extend(tag_problems);
    for line in webinar_settings_lines(&config) {
        println!("{line}");
    }
    if config.klicktipp.mode() == KlickTippMode::Listbuilding {
        println!(
            "Listbuilding mode: registrations are signed in with KLICKTIPP_LISTBUILDING_APIKEY; data fields and opt-in processes can only be checked with Management API credentials."
        );
    } else {
        let client = wiring::management_client(&config)?;
        problems.extend(account_problems(&client, &config).await);
        if let Err(error) = client.logout().await {
            tracing::warn!(%error, "could not log out of KlickTipp");
        }
    }
    for problem in &problems {
        println!("{problem}");
    }
    if problems.is_empty() {
        println!("OK: the configuration is valid and matches the KlickTipp account.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{} problem(s) found.", problems.len());
        Ok(ExitCode::FAILURE)
    }
}

/// A bridge without any enabled source can never receive an event.
fn source_problems(secrets: &SourceSecrets) -> Vec<String> {
    let any_enabled = [&secrets.webinarjam, &secrets.everwebinar, &secrets.zoom, &secrets.generic]
        .iter()
        .any(|secret| secret.is_some());
    if any_enabled {
        return Vec::new();
    }
    vec![
        "no webhook source is enabled: set at least one of BRIDGE_WEBINARJAM_SECRET, BRIDGE_EVERWEBINAR_SECRET, BRIDGE_ZOOM_SECRET_TOKEN, BRIDGE_GENERIC_SECRET"
            .to_owned(),
    ]
}

/// The seven state tags of an example webinar, and a problem if two of them would be one tag
/// (the configuration refuses such names at start; this is the check on what it accepted).
fn tag_preview(template: &TagTemplate) -> (Vec<String>, Vec<String>) {
    let date =
        template.uses_date().then(|| session_date(Some("2026-03-05T17:00:00Z"), Some("Europe/Berlin"))).flatten();
    let tags = preview(template, "Zoom", "Demo Webinar", date);
    let problems = if all_distinct(&tags) {
        Vec::new()
    } else {
        vec!["BRIDGE_TAG_TEMPLATE / BRIDGE_STATE_NAMES: two states of one webinar would get the same tag".to_owned()]
    };
    (tags, problems)
}

/// Connects (listing the fields), then checks the field map and the opt-in process. A failed
/// connection is one problem, not one per check.
async fn account_problems(client: &KlickTippClient, config: &BridgeConfig) -> Vec<String> {
    let fields = match client.list_fields().await {
        Ok(fields) => fields,
        Err(error) => return vec![format!("KlickTipp ({}): cannot connect: {error}", config.klicktipp.base_url)],
    };
    let mut problems = field_problems(&config.settings.field_map, &fields);
    if let Some(listid) = config.klicktipp.listid {
        match client.list_optins().await {
            Ok(processes) if processes.contains_key(&listid) => {}
            Ok(_) => problems.push(format!(
                "KLICKTIPP_LISTID: {listid} is not an opt-in process of this account (see `webinar-bridge klicktipp optins`)"
            )),
            Err(error) => problems.push(format!("KLICKTIPP_LISTID: cannot list the opt-in processes: {error}")),
        }
    }
    problems.extend(webinar_settings_problems(client, config).await);
    problems
}

/// What `BRIDGE_WEBINAR_SETTINGS` and `BRIDGE_TAGS_AHEAD` set, one line each.
fn webinar_settings_lines(config: &BridgeConfig) -> Vec<String> {
    let ahead = if config.tags_ahead { "on" } else { "off" };
    let mut lines = vec![format!("Tags ahead (BRIDGE_TAGS_AHEAD): {ahead}")];
    for entry in &config.webinar_settings_seed {
        let mut parts = Vec::new();
        for (state, tag) in &entry.tags {
            parts.push(format!("{} -> tag {} {:?}", state.as_str(), tag.id, tag.name));
        }
        if let Some(listid) = entry.listid {
            parts.push(format!("listid {listid}"));
        }
        if let Some(include) = entry.include {
            parts.push(if include { "included".to_owned() } else { "excluded".to_owned() });
        }
        let settings = if parts.is_empty() { "(nothing set)".to_owned() } else { parts.join(", ") };
        lines.push(format!("Webinar settings {}/{}: {settings}", entry.source, entry.webinar));
    }
    lines
}

/// Every mapped tag and listid of `BRIDGE_WEBINAR_SETTINGS` exists in the account.
async fn webinar_settings_problems(client: &KlickTippClient, config: &BridgeConfig) -> Vec<String> {
    let seed = &config.webinar_settings_seed;
    let mut problems = Vec::new();
    if seed.iter().any(|entry| !entry.tags.is_empty()) {
        match client.list_tags().await {
            Ok(tags) => {
                for entry in seed {
                    for (state, tag) in &entry.tags {
                        if tags.get(&tag.id) != Some(&tag.name) {
                            problems.push(format!(
                                "BRIDGE_WEBINAR_SETTINGS: {}/{} maps {} to tag {} {:?}, which this KlickTipp account does not have under that id and name (see `webinar-bridge klicktipp tags`)",
                                entry.source,
                                entry.webinar,
                                state.as_str(),
                                tag.id,
                                tag.name
                            ));
                        }
                    }
                }
            }
            Err(error) => problems.push(format!("BRIDGE_WEBINAR_SETTINGS: cannot list the tags: {error}")),
        }
    }
    if seed.iter().any(|entry| entry.listid.is_some()) {
        match client.list_optins().await {
            Ok(processes) => {
                for entry in seed {
                    if let Some(listid) = entry.listid.filter(|listid| !processes.contains_key(listid)) {
                        problems.push(format!(
                            "BRIDGE_WEBINAR_SETTINGS: {}/{} has listid {listid}, which is not an opt-in process of this account (see `webinar-bridge klicktipp optins`)",
                            entry.source, entry.webinar
                        ));
                    }
                }
            }
            Err(error) => problems.push(format!("BRIDGE_WEBINAR_SETTINGS: cannot list the opt-in processes: {error}")),
        }
    }
    problems
}

fn field_problems(field_map: &FieldMap, account_fields: &BTreeMap<String, String>) -> Vec<String> {
    field_map
        .iter()
        .filter(|(_, key)| !account_fields.contains_key(*key))
        .map(|(field, key)| {
            format!(
                "BRIDGE_FIELD_MAP: {} maps to {key}, which this KlickTipp account does not have (see `webinar-bridge klicktipp fields`)",
                field.as_str()
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn previews_the_tags_in_the_configured_language() {
        let vars = HashMap::from([
            ("BRIDGE_LANGUAGE".to_owned(), "de".to_owned()),
            ("BRIDGE_TAG_TEMPLATE".to_owned(), "[{tool}] [{webinar} {date}] {state}".to_owned()),
        ]);
        let config = BridgeConfig::from_vars(&vars).expect("valid");
        let (tags, problems) = tag_preview(&config.settings.tag_template);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(tags.len(), 7);
        assert_eq!(tags[0], "[Zoom] [Demo Webinar 2026-03-05] Angemeldet");
        assert_eq!(tags[6], "[Zoom] [Demo Webinar 2026-03-05] Käufer");
    }

    #[test]
    fn names_every_missing_field() {
        let map = FieldMap::parse_json(r#"{"first_name":"fieldFirstName","webinar_start":"field999"}"#).expect("valid");
        let account = BTreeMap::from([("fieldFirstName".to_owned(), "First name".to_owned())]);
        let problems = field_problems(&map, &account);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("BRIDGE_FIELD_MAP: webinar_start maps to field999"));
    }
}
