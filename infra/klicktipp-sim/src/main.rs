//! `klicktipp-sim`: run the KlickTipp simulator as a standalone server.

use anyhow::Context as _;
use clap::Parser;
use klicktipp_sim::{FieldSpec, Knobs, ListbuildingKey, PartnerAccount, SimConfig};

#[derive(Debug, Parser)]
#[command(name = "klicktipp-sim", about = "A local KlickTipp API simulator with fault knobs; introspection at /_sim/")]
struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: String,
    #[arg(long, default_value = "bridge")]
    username: String,
    #[arg(long, default_value = "sim-password")]
    password: String,
    /// Requests per second before answering 429 (rolling one-second window).
    #[arg(long)]
    rate_limit: Option<u32>,
    /// Send `Retry-After: 1` with 429 answers.
    #[arg(long)]
    retry_after: bool,
    /// A custom data field, `KEY:TYPE:LABEL`, e.g. `field12345:datetime:Webinar start`. Repeatable.
    #[arg(long = "custom-field", value_name = "KEY:TYPE:LABEL")]
    custom_fields: Vec<String>,
    /// A listbuilding API key, `APIKEY:LISTID:TAGID`. Repeatable.
    #[arg(long = "listbuilding-key", value_name = "APIKEY:LISTID:TAGID")]
    listbuilding_keys: Vec<String>,
    /// Partner access, `DEVELOPER_KEY_HEX:CUSTOMER_KEY` (X-Un is the username).
    #[arg(long, value_name = "DEVELOPER_KEY_HEX:CUSTOMER_KEY")]
    partner: Option<String>,
    /// Knobs as JSON (partial; merged over the defaults and the flags above).
    #[arg(long)]
    knobs_json: Option<String>,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

fn parse_custom_field(spec: &str) -> anyhow::Result<FieldSpec> {
    let mut parts = spec.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(key), Some(field_type), Some(label)) if !key.is_empty() && !label.is_empty() => {
            let field_type = field_type.parse().map_err(|e: String| anyhow::anyhow!("--custom-field {spec:?}: {e}"))?;
            Ok(FieldSpec::new(key, label, field_type))
        }
        _ => anyhow::bail!("--custom-field {spec:?}: expected KEY:TYPE:LABEL"),
    }
}

fn parse_listbuilding_key(spec: &str) -> anyhow::Result<ListbuildingKey> {
    let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
    let [tagid, listid, apikey] = parts.as_slice() else {
        anyhow::bail!("--listbuilding-key {spec:?}: expected APIKEY:LISTID:TAGID");
    };
    Ok(ListbuildingKey {
        apikey: (*apikey).to_owned(),
        listid: listid.parse().with_context(|| format!("--listbuilding-key {spec:?}: LISTID"))?,
        tagid: tagid.parse().with_context(|| format!("--listbuilding-key {spec:?}: TAGID"))?,
    })
}

fn build_config(args: &Args) -> anyhow::Result<SimConfig> {
    let mut knobs = Knobs { rate_limit_per_second: args.rate_limit, retry_after: args.retry_after, ..Knobs::default() };
    if let Some(json) = &args.knobs_json {
        let patch: serde_json::Value = serde_json::from_str(json).context("--knobs-json is not JSON")?;
        knobs = knobs.merged_with(&patch).map_err(|e| anyhow::anyhow!("--knobs-json: {e}"))?;
    }
    let partner = match &args.partner {
        Some(spec) => {
            let (developer_key, customer_key) =
                spec.split_once(':').context("--partner: expected DEVELOPER_KEY_HEX:CUSTOMER_KEY")?;
            hex::decode(developer_key).context("--partner: the developer key is not hex")?;
            Some(PartnerAccount {
                username: args.username.clone(),
                developer_key: developer_key.to_owned(),
                customer_key: customer_key.to_owned(),
            })
        }
        None => None,
    };
    Ok(SimConfig {
        username: args.username.clone(),
        password: args.password.clone(),
        partner,
        listbuilding_keys: args
            .listbuilding_keys
            .iter()
            .map(|spec| parse_listbuilding_key(spec))
            .collect::<anyhow::Result<_>>()?,
        custom_fields: args.custom_fields.iter().map(|spec| parse_custom_field(spec)).collect::<anyhow::Result<_>>()?,
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
    let sim = klicktipp_sim::start(config, &args.listen).await?;
    println!(
        "klicktipp-sim listening on {} (username {:?}, password {:?}); contacts at {}/_sim/",
        sim.url(),
        args.username,
        args.password,
        sim.url()
    );
    tracing::info!(url = %sim.url(), knobs = ?sim.knobs(), "klicktipp-sim started");
    tokio::signal::ctrl_c().await.context("cannot listen for Ctrl-C")?;
    tracing::info!("klicktipp-sim shutting down");
    sim.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use klicktipp_sim::FieldType;

    #[test]
    fn parses_field_and_key_specs() {
        let field = parse_custom_field("field123:datetime:Webinar: start").expect("valid");
        assert_eq!(field, FieldSpec::new("field123", "Webinar: start", FieldType::DateTime));
        assert!(parse_custom_field("field123:colour:X").is_err());
        let key = parse_listbuilding_key("abc:def:2:17").expect("valid");
        assert_eq!((key.apikey.as_str(), key.listid, key.tagid), ("abc:def", 2, 17));
    }
}
