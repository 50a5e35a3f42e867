//! The reconcile Lambda: read the environment and the bridge secret once per cold start, build
//! the platform clients, the queue and the done-session store, then run the handler (see
//! `lib.rs`) on each scheduled invocation.

use lambda_runtime::{LambdaEvent, service_fn};
use webinar_bridge::adapters::aws_secrets::{environment_with_secrets, load_sdk_config};
use webinar_bridge::config::BridgeConfig;
use webinar_bridge::platforms::config::PlatformConfig;
use webinar_bridge_reconcile::ReconcileFunction;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    webinar_bridge::telemetry::init_json_logging("info");
    let sdk = load_sdk_config().await;
    let vars = environment_with_secrets(&sdk, std::env::vars().collect()).await?;
    let config = BridgeConfig::from_vars(&vars)?;
    let platforms = PlatformConfig::from_vars(&vars)?;
    let function = ReconcileFunction::from_config(&sdk, &config, &platforms)?;
    let function = &function;
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<serde_json::Value>| async move {
        function.run(chrono::Utc::now()).await.map_err(lambda_runtime::Error::from)
    }))
    .await
    .map_err(|error| anyhow::anyhow!("the Lambda runtime stopped: {error}"))
}
