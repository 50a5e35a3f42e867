//! The consumer Lambda: build the SDK clients, the KlickTipp client and the engine once per cold
//! start, then hand each SQS batch to the handler (see `lib.rs`).

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use webinar_bridge::adapters::aws_secrets::{bridge_config, load_sdk_config};
use webinar_bridge_consumer::ConsumerFunction;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    webinar_bridge::telemetry::init_json_logging("info");
    let sdk = load_sdk_config().await;
    let config = bridge_config(&sdk).await?;
    let function = ConsumerFunction::from_config(&sdk, &config)?;
    let function = &function;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(function.handle_event(event).await)
    }))
    .await
    .map_err(|error| anyhow::anyhow!("the Lambda runtime stopped: {error}"))
}
