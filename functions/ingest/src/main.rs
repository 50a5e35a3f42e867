//! The ingest Lambda: build the queue client once per cold start, then hand each request to the
//! engine (see `lib.rs`).

use webinar_bridge::adapters::aws_secrets::{bridge_config, load_sdk_config};
use webinar_bridge_ingest::IngestFunction;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    webinar_bridge::telemetry::init_json_logging("info");
    let sdk = load_sdk_config().await;
    let config = bridge_config(&sdk).await?;
    let function = IngestFunction::from_config(&sdk, &config)?;
    let function = &function;
    lambda_http::run(lambda_http::service_fn(move |request| async move {
        Ok::<_, lambda_http::Error>(function.handle(request).await)
    }))
    .await
    .map_err(|error| anyhow::anyhow!("the Lambda runtime stopped: {error}"))
}
