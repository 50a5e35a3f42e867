//! `platform-sim`: run the WebinarJam/EverWebinar/Zoom API simulator as a standalone server.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use platform_sim::{Knobs, PlatformData, PlatformSim, SimConfig, ZoomCredentials};

#[derive(Debug, Parser)]
#[command(
    name = "platform-sim",
    about = "A local WebinarJam/EverWebinar and Zoom API simulator with fault knobs; introspection at /_sim/"
)]
struct Args {
    /// The platform document (DESIGN 11 `platform.json` format). Empty platforms when absent.
    #[arg(long)]
    platform: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8091")]
    listen: String,
    /// A WebinarJam/EverWebinar API key. Repeatable.
    #[arg(long = "api-key", default_value = platform_sim::DEFAULT_API_KEY)]
    api_keys: Vec<String>,
    #[arg(long, default_value = "sim-account")]
    zoom_account_id: String,
    #[arg(long, default_value = "sim-client-id")]
    zoom_client_id: String,
    #[arg(long, default_value = "sim-client-secret")]
    zoom_client_secret: String,
    /// WebinarJam/EverWebinar calls per second per key (0 = unlimited).
    #[arg(long, default_value_t = 20)]
    rate: u32,
    /// Knobs as JSON (partial; merged over the defaults and the flags above).
    #[arg(long)]
    knobs_json: Option<String>,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

fn build_config(args: &Args) -> anyhow::Result<SimConfig> {
    let data = match &args.platform {
        Some(path) => PlatformData::load(path)?,
        None => PlatformData::default(),
    };
    let mut knobs = Knobs { jam_rate_per_second: (args.rate > 0).then_some(args.rate), ..Knobs::default() };
    if let Some(json) = &args.knobs_json {
        let patch: serde_json::Value = serde_json::from_str(json).context("--knobs-json is not JSON")?;
        knobs = knobs.merged_with(&patch).map_err(|e| anyhow::anyhow!("--knobs-json: {e}"))?;
    }
    Ok(SimConfig {
        data,
        api_keys: args.api_keys.clone(),
        zoom: ZoomCredentials {
            account_id: args.zoom_account_id.clone(),
            client_id: args.zoom_client_id.clone(),
            client_secret: args.zoom_client_secret.clone(),
        },
        knobs,
    })
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr so stdout carries only the one line with the URL.
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_json);
    let config = build_config(&args)?;
    let sim = PlatformSim::start_on(config, &args.listen).await?;
    println!(
        "platform-sim listening on {} (WebinarJam {}, EverWebinar {}, Zoom {}/oauth/token and {}/v2); calls at {}/_sim/calls",
        sim.url(),
        sim.webinarjam_url(),
        sim.everwebinar_url(),
        sim.url(),
        sim.url(),
        sim.url()
    );
    tracing::info!(url = %sim.url(), "platform-sim started");
    tokio::signal::ctrl_c().await.context("cannot listen for Ctrl-C")?;
    tracing::info!("platform-sim shutting down");
    sim.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_knobs_json_build_the_config() {
        let args = Args::parse_from([
            "platform-sim",
            "--api-key",
            "k1",
            "--api-key",
            "k2",
            "--rate",
            "0",
            "--knobs-json",
            r#"{"jam_page_size": 7, "zoom_rate_per_second": 10}"#,
        ]);
        let config = build_config(&args).expect("valid flags");
        assert_eq!(config.api_keys, vec!["k1".to_owned(), "k2".to_owned()]);
        assert_eq!(config.knobs.jam_rate_per_second, None);
        assert_eq!((config.knobs.jam_page_size, config.knobs.zoom_rate_per_second), (7, Some(10)));
        let typo = Args::parse_from(["platform-sim", "--knobs-json", r#"{"jam_pagesize": 7}"#]);
        assert!(build_config(&typo).is_err());
        let missing = Args::parse_from(["platform-sim", "--platform", "/nonexistent/platform.json"]);
        let error = build_config(&missing).expect_err("no such file");
        assert!(format!("{error:#}").contains("/nonexistent/platform.json"), "{error:#}");
    }
}
