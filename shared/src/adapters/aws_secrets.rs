//! Cold start on AWS: the SDK configuration and the bridge configuration, with the secrets read
//! once from one Secrets Manager secret (DESIGN 8: secrets never live in the template).
//!
//! `BRIDGE_SECRETS_ARN` names a secret whose `SecretString` is a JSON object keyed by the DESIGN 8
//! variable names, e.g. `{"KLICKTIPP_USERNAME": "...", "BRIDGE_ZOOM_SECRET_TOKEN": "..."}`. Its
//! values are laid over the environment, then [`BridgeConfig::from_vars`] reads the result.
//! Production points the SDK at an emulator only through the environment (`AWS_ENDPOINT_URL`).

use super::sqs::unavailable;
use crate::config::{BridgeConfig, ConfigError};
use crate::ports::PortError;
use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use std::collections::HashMap;
use std::time::Duration;

// Re-exported so the functions and tests name the same SDK versions without depending on them.
pub use aws_config::{self, SdkConfig};
pub use aws_sdk_secretsmanager;

/// The variable holding the secret's ARN.
pub const SECRETS_ARN_VARIABLE: &str = "BRIDGE_SECRETS_ARN";

/// The keys the secret is expected to hold (others are ignored with a warning).
pub const SECRET_KEYS: [&str; 14] = [
    "KLICKTIPP_USERNAME",
    "KLICKTIPP_PASSWORD",
    "KLICKTIPP_DEVELOPER_KEY",
    "KLICKTIPP_CUSTOMER_KEY",
    "KLICKTIPP_LISTBUILDING_APIKEY",
    "BRIDGE_WEBINARJAM_SECRET",
    "BRIDGE_EVERWEBINAR_SECRET",
    "BRIDGE_ZOOM_SECRET_TOKEN",
    "BRIDGE_GENERIC_SECRET",
    "BRIDGE_WEBINARJAM_API_KEY",
    "BRIDGE_EVERWEBINAR_API_KEY",
    "ZOOM_ACCOUNT_ID",
    "ZOOM_CLIENT_ID",
    "ZOOM_CLIENT_SECRET",
];

/// One SDK attempt may not eat a Lambda invocation: fail fast and let the caller retry.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(12);

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("{SECRETS_ARN_VARIABLE}: the secret could not be read: {0}")]
    Unavailable(String),
    #[error("{SECRETS_ARN_VARIABLE}: the secret has no SecretString (store the JSON object as text)")]
    NotText,
    #[error("{SECRETS_ARN_VARIABLE}: the secret must be a JSON object of variable names to strings")]
    NotAnObject,
    #[error("{SECRETS_ARN_VARIABLE}: the value of {key} must be a string")]
    NotAString { key: String },
}

impl From<SecretsError> for PortError {
    fn from(error: SecretsError) -> Self {
        match error {
            SecretsError::Unavailable(reason) => PortError::Unavailable(reason),
            other => PortError::Corrupt(other.to_string()),
        }
    }
}

/// Why a Lambda could not start; each message names the variable to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The SDK configuration from the environment (region, credentials, `AWS_ENDPOINT_URL`), with
/// timeouts short enough for a Lambda.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build();
    aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts).load().await
}

/// The variables stored in the secret. Values must be strings; empty ones count as unset.
pub fn parse_secret_string(raw: &str) -> Result<HashMap<String, String>, SecretsError> {
    let value: serde_json::Value = serde_json::from_str(raw).map_err(|_| SecretsError::NotAnObject)?;
    let object = value.as_object().ok_or(SecretsError::NotAnObject)?;
    let mut vars = HashMap::with_capacity(object.len());
    for (key, value) in object {
        let text = value.as_str().ok_or_else(|| SecretsError::NotAString { key: key.clone() })?;
        if !SECRET_KEYS.contains(&key.as_str()) {
            // The name only; the value may be a secret.
            tracing::warn!(key = %key, "the bridge secret holds a key the bridge does not read");
        }
        if !text.trim().is_empty() {
            vars.insert(key.clone(), text.to_owned());
        }
    }
    Ok(vars)
}

/// Reads the secret once (GetSecretValue) and returns its variables.
pub async fn read_secret_vars(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<HashMap<String, String>, SecretsError> {
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|error| SecretsError::Unavailable(unavailable("GetSecretValue", &error).to_string()))?;
    parse_secret_string(output.secret_string().ok_or(SecretsError::NotText)?)
}

/// The environment with the secret's variables laid over it; unchanged without
/// `BRIDGE_SECRETS_ARN`.
pub async fn environment_with_secrets(
    sdk: &aws_config::SdkConfig,
    mut vars: HashMap<String, String>,
) -> Result<HashMap<String, String>, SecretsError> {
    let Some(arn) = vars.get(SECRETS_ARN_VARIABLE).map(|arn| arn.trim().to_owned()).filter(|arn| !arn.is_empty())
    else {
        return Ok(vars);
    };
    let secrets = read_secret_vars(&aws_sdk_secretsmanager::Client::new(sdk), &arn).await?;
    tracing::info!(keys = secrets.len(), "read the bridge secret");
    vars.extend(secrets);
    Ok(vars)
}

/// The bridge configuration a Lambda runs with: the process environment plus the secret.
pub async fn bridge_config(sdk: &aws_config::SdkConfig) -> Result<BridgeConfig, StartupError> {
    let vars = environment_with_secrets(sdk, std::env::vars().collect()).await?;
    Ok(BridgeConfig::from_vars(&vars)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_values_are_read_and_empty_ones_are_unset() {
        let vars = parse_secret_string(r#"{"KLICKTIPP_USERNAME":"bridge","KLICKTIPP_PASSWORD":"  "}"#).expect("valid");
        assert_eq!(vars.get("KLICKTIPP_USERNAME").map(String::as_str), Some("bridge"));
        assert!(!vars.contains_key("KLICKTIPP_PASSWORD"));
    }

    #[test]
    fn other_shapes_are_refused_without_echoing_values() {
        assert!(matches!(parse_secret_string("[]"), Err(SecretsError::NotAnObject)));
        assert!(matches!(parse_secret_string("hunter2"), Err(SecretsError::NotAnObject)));
        let error = parse_secret_string(r#"{"KLICKTIPP_PASSWORD":12345}"#).expect_err("a number is refused");
        assert!(error.to_string().contains("KLICKTIPP_PASSWORD") && !error.to_string().contains("12345"));
    }
}
