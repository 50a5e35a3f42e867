//! What `serve` tells the person who started it: where to send webhooks, where KlickTipp is.
//! Secrets are named by their variable, never printed.

use klicktipp_sim::Simulator;
use std::net::SocketAddr;
use webinar_bridge::config::{BridgeConfig, KlickTippMode};
use webinar_bridge::domain::EventKind;
use webinar_bridge::sources::SourceSecrets;

pub fn print(address: SocketAddr, config: &BridgeConfig, simulator: Option<&Simulator>) {
    let base = format!("http://{address}");
    println!("webinar-bridge is listening on {base}");
    println!("Database: {}", config.db_path.display());
    for line in klicktipp_lines(config, simulator) {
        println!("{line}");
    }
    println!("Webhook URLs (replace <VARIABLE> with the value you configured in that variable):");
    for line in webhook_lines(&base, &config.secrets) {
        println!("  {line}");
    }
    let kinds: Vec<&str> = EventKind::ALL.iter().map(|kind| kind.as_str()).collect();
    println!("  {{kind}} is one of: {}", kinds.join(", "));
    println!("Health: GET {base}/health");
}

fn klicktipp_lines(config: &BridgeConfig, simulator: Option<&Simulator>) -> Vec<String> {
    if let Some(simulator) = simulator {
        return vec![
            format!(
                "No KlickTipp credentials are configured: started the KlickTipp simulator in-process at {}",
                simulator.url()
            ),
            format!("Inspect the simulated KlickTipp contacts at {}/_sim/", simulator.url()),
        ];
    }
    let mode = match config.klicktipp.mode() {
        KlickTippMode::Listbuilding => "Listbuilding API: registrations only",
        _ => "Management API",
    };
    vec![format!("KlickTipp: {} ({mode}, at most {} calls/s)", config.klicktipp.base_url, config.klicktipp.rps)]
}

/// One line per source: its URL, or which variable enables it.
fn webhook_lines(base: &str, secrets: &SourceSecrets) -> Vec<String> {
    let sources = [
        (
            "WebinarJam",
            secrets.webinarjam.is_some(),
            "BRIDGE_WEBINARJAM_SECRET",
            format!("POST {base}/hooks/webinarjam/{{kind}}?token=<BRIDGE_WEBINARJAM_SECRET>"),
        ),
        (
            "EverWebinar",
            secrets.everwebinar.is_some(),
            "BRIDGE_EVERWEBINAR_SECRET",
            format!("POST {base}/hooks/everwebinar/{{kind}}?token=<BRIDGE_EVERWEBINAR_SECRET>"),
        ),
        (
            "Zoom",
            secrets.zoom.is_some(),
            "BRIDGE_ZOOM_SECRET_TOKEN",
            format!("POST {base}/hooks/zoom (the Zoom app's Secret Token is <BRIDGE_ZOOM_SECRET_TOKEN>)"),
        ),
        (
            "Generic",
            secrets.generic.is_some(),
            "BRIDGE_GENERIC_SECRET",
            format!(
                "POST {base}/hooks/generic/{{tool}} (Standard Webhooks signature with <BRIDGE_GENERIC_SECRET>, or Authorization: Bearer <BRIDGE_GENERIC_SECRET>)"
            ),
        ),
    ];
    sources
        .into_iter()
        .map(|(name, enabled, variable, url)| match enabled {
            true => format!("{name}: {url}"),
            false => format!("{name}: disabled; set {variable} to enable it"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use webinar_bridge::Secret;

    #[test]
    fn names_variables_and_never_secrets() {
        let secrets = SourceSecrets { webinarjam: Some(Secret::new("wj-very-secret")), ..SourceSecrets::default() };
        let lines = webhook_lines("http://127.0.0.1:3000", &secrets);
        assert_eq!(
            lines[0],
            "WebinarJam: POST http://127.0.0.1:3000/hooks/webinarjam/{kind}?token=<BRIDGE_WEBINARJAM_SECRET>"
        );
        assert_eq!(lines[2], "Zoom: disabled; set BRIDGE_ZOOM_SECRET_TOKEN to enable it");
        assert!(lines.iter().all(|line| !line.contains("wj-very-secret")));
    }
}
