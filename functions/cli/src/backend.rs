//! Where the operator commands (`contact`, `problems`, and the fixing commands built on them)
//! read and write: `serve`'s SQLite file, or a deployed AWS stack.
//!
//! - `--stack NAME`: the CloudFormation stack's outputs name the tables, queues and secret, its
//!   parameters give the engine settings (tag template, field map, ...); the user's own AWS
//!   credentials and region (the usual `AWS_*` variables, profiles, SSO) reach them.
//! - Without `--stack`, the variables the Lambdas get (`EVENTS_TABLE`, `CONTACTS_TABLE`,
//!   `HISTORY_TABLE`, `EVENTS_QUEUE_URL`, `DEAD_LETTER_QUEUE_URL`, `BRIDGE_SECRETS_ARN`; with
//!   `AWS_ENDPOINT_URL` for an emulator) select the AWS resources directly.
//! - Otherwise `serve`'s database at `BRIDGE_DB`.

use crate::{exit, wiring};
use anyhow::Context as _;
use aws_sdk_cloudformation::types::Stack;
use clap::Args;
use std::collections::HashMap;
use std::sync::Arc;
use webinar_bridge::adapters::aws_secrets::{SdkConfig, environment_with_secrets, load_sdk_config};
use webinar_bridge::adapters::memory::{DeadLetter, QueueSettings};
use webinar_bridge::adapters::sqlite::{SqliteDb, SqliteQueue};
use webinar_bridge::adapters::sqs::{SqsDeadLetters, aws_sdk_sqs};
use webinar_bridge::config::BridgeConfig;
use webinar_bridge::ports::DeadLetters;

/// Which deployment a command works on; flattened into each operator command.
#[derive(Debug, Clone, Default, Args)]
pub struct BackendArgs {
    /// Work on the deployed AWS stack NAME: its outputs name the tables and queues, its
    /// parameters give the settings; uses your AWS credentials and region. Without it: the
    /// resources named by EVENTS_TABLE, CONTACTS_TABLE, HISTORY_TABLE, EVENTS_QUEUE_URL and
    /// DEAD_LETTER_QUEUE_URL when set, else serve's database at BRIDGE_DB.
    #[arg(long, value_name = "NAME")]
    pub stack: Option<String>,
}

/// Stack output -> the variable the Lambdas get it as.
pub const STACK_OUTPUTS: [(&str, &str); 6] = [
    ("EventsTableName", "EVENTS_TABLE"),
    ("ContactsTableName", "CONTACTS_TABLE"),
    ("HistoryTableName", "HISTORY_TABLE"),
    ("EventsQueueUrl", "EVENTS_QUEUE_URL"),
    ("DeadLetterQueueUrl", "DEAD_LETTER_QUEUE_URL"),
    ("SecretArn", "BRIDGE_SECRETS_ARN"),
];

/// Stack parameter -> the variable the Lambdas get it as (template.yaml, `Globals`).
pub const STACK_PARAMETERS: [(&str, &str); 12] = [
    ("KlickTippBaseUrl", "KLICKTIPP_BASE_URL"),
    ("KlickTippListId", "KLICKTIPP_LISTID"),
    ("KlickTippRps", "BRIDGE_KLICKTIPP_RPS"),
    ("TagTemplate", "BRIDGE_TAG_TEMPLATE"),
    ("Language", "BRIDGE_LANGUAGE"),
    ("StateNames", "BRIDGE_STATE_NAMES"),
    ("FieldMap", "BRIDGE_FIELD_MAP"),
    ("FullAttendancePercent", "BRIDGE_FULL_ATTENDANCE_PERCENT"),
    ("EventRetentionDays", "BRIDGE_EVENT_RETENTION_DAYS"),
    ("FieldAliases", "BRIDGE_FIELD_ALIASES"),
    ("WebinarSettings", "BRIDGE_WEBINAR_SETTINGS"),
    ("TagsAhead", "BRIDGE_TAGS_AHEAD"),
];

/// The chosen deployment, opened.
pub struct Backend {
    /// The configuration as the deployment runs it (on AWS: with the stack's settings and the
    /// bridge secret's credentials laid over the environment).
    pub config: BridgeConfig,
    pub store: Store,
}

/// Where the state lives.
pub enum Store {
    Sqlite(SqliteDb),
    Aws { sdk: Box<SdkConfig>, resources: wiring::AwsResources },
}

impl Backend {
    /// Every port of the engine on this deployment.
    pub fn ports(&self) -> wiring::Ports {
        match &self.store {
            Store::Sqlite(db) => wiring::sqlite_ports(db, QueueSettings::default()),
            Store::Aws { sdk, resources } => wiring::aws_ports(sdk, resources),
        }
    }

    /// The Zoom ledger (registrant ids, kept participant events): serve's file, or the events table.
    pub fn zoom_ledger(&self) -> anyhow::Result<Arc<dyn webinar_bridge::platforms::zoom_ledger::ZoomLedger>> {
        Ok(match &self.store {
            Store::Sqlite(_) => Arc::new(
                webinar_bridge::platforms::zoom_ledger::SqliteZoomLedger::open(&self.config.db_path)
                    .with_context(|| format!("cannot open {}", self.config.db_path.display()))?,
            ),
            Store::Aws { sdk, resources } => {
                Arc::new(webinar_bridge::adapters::dynamodb::DynamoZoomLedger::from_conf(sdk, &resources.events_table))
            }
        })
    }

    /// The dead letters, left where they are (the `DeadLetters` port: serve's table, or a peek
    /// at the DLQ that makes each message visible again at once).
    pub async fn dead_letters(&self) -> anyhow::Result<Vec<DeadLetter>> {
        let letters: Arc<dyn DeadLetters> = match &self.store {
            Store::Sqlite(db) => Arc::new(SqliteQueue::new(db.clone(), QueueSettings::default())),
            Store::Aws { sdk, resources } => match &resources.dead_letter_queue_url {
                Some(url) => {
                    Arc::new(SqsDeadLetters::new(aws_sdk_sqs::Client::new(sdk), &resources.events_queue_url, url))
                }
                None => return Ok(Vec::new()),
            },
        };
        Ok(letters.list(DEAD_LETTERS_LISTED).await?)
    }
}

/// How many dead letters `problems` lists at most.
const DEAD_LETTERS_LISTED: usize = 1_000;

impl BackendArgs {
    /// Opens the deployment these arguments choose.
    pub async fn open(&self) -> anyhow::Result<Backend> {
        self.open_with(false).await
    }

    /// As [`Self::open`], but a missing `serve` database is created: for commands that prepare
    /// a deployment before `serve` first runs (`tags ensure`).
    pub async fn open_or_create(&self) -> anyhow::Result<Backend> {
        self.open_with(true).await
    }

    async fn open_with(&self, create_db: bool) -> anyhow::Result<Backend> {
        let env: HashMap<String, String> = std::env::vars().collect();
        if let Some(stack) = &self.stack {
            let sdk = load_sdk_config().await;
            let described = describe_stack(&sdk, stack).await?;
            let vars = stack_vars(stack, &described, env)?;
            return open_aws(sdk, vars).await;
        }
        let aws_selected = ["EVENTS_TABLE", "CONTACTS_TABLE", "HISTORY_TABLE"]
            .iter()
            .any(|name| env.get(*name).is_some_and(|value| !value.trim().is_empty()));
        if aws_selected {
            return open_aws(load_sdk_config().await, env).await;
        }
        let config = BridgeConfig::from_vars(&env).map_err(|error| exit::unusable(error.to_string()))?;
        let db = if create_db {
            SqliteDb::open(&config.db_path).map_err(|error| {
                exit::unusable(format!("BRIDGE_DB: cannot open the database {}: {error}", config.db_path.display()))
            })?
        } else {
            open_db(&config)?
        };
        Ok(Backend { config, store: Store::Sqlite(db) })
    }
}

/// `serve`'s database; a missing file is an error, not a new empty database.
pub fn open_db(config: &BridgeConfig) -> anyhow::Result<SqliteDb> {
    if !config.db_path.exists() {
        return Err(exit::unusable(format!(
            "BRIDGE_DB: no database at {}; point BRIDGE_DB at the file `webinar-bridge serve` uses, or name the AWS stack with --stack NAME",
            config.db_path.display()
        )));
    }
    SqliteDb::open(&config.db_path).with_context(|| format!("cannot open {}", config.db_path.display()))
}

async fn open_aws(sdk: SdkConfig, vars: HashMap<String, String>) -> anyhow::Result<Backend> {
    let vars = environment_with_secrets(&sdk, vars)
        .await
        .map_err(|error| anyhow::anyhow!("{}: {error}", webinar_bridge::adapters::aws_secrets::SECRETS_ARN_VARIABLE))?;
    let config = BridgeConfig::from_vars(&vars).map_err(|error| exit::unusable(error.to_string()))?;
    let required = |value: &Option<String>, name: &str| {
        value.clone().ok_or_else(|| {
            exit::unusable(format!(
                "{name}: not set; name the stack with --stack NAME, or set EVENTS_TABLE, CONTACTS_TABLE, HISTORY_TABLE and EVENTS_QUEUE_URL"
            ))
        })
    };
    let resources = wiring::AwsResources {
        events_table: required(&config.events_table, "EVENTS_TABLE")?,
        contacts_table: required(&config.contacts_table, "CONTACTS_TABLE")?,
        history_table: required(&config.history_table, "HISTORY_TABLE")?,
        events_queue_url: required(&config.events_queue_url, "EVENTS_QUEUE_URL")?,
        dead_letter_queue_url: config.dead_letter_queue_url.clone(),
    };
    Ok(Backend { config, store: Store::Aws { sdk: Box::new(sdk), resources } })
}

/// The stack as CloudFormation describes it (outputs and parameters).
async fn describe_stack(sdk: &SdkConfig, name: &str) -> anyhow::Result<Stack> {
    let client = aws_sdk_cloudformation::Client::new(sdk);
    let output = client.describe_stacks().stack_name(name).send().await.map_err(|error| {
        let detail = error
            .as_service_error()
            .map(|service| {
                use aws_sdk_cloudformation::error::ProvideErrorMetadata as _;
                format!("{} ({})", service.message().unwrap_or("no message"), service.code().unwrap_or("error"))
            })
            .unwrap_or_else(|| error.to_string());
        match error.as_service_error().and_then(|service| {
            use aws_sdk_cloudformation::error::ProvideErrorMetadata as _;
            service.code().map(str::to_owned)
        }) {
            Some(code) if code == "ValidationError" => exit::unusable(format!(
                "--stack {name}: CloudFormation has no such stack in this account and region ({detail}); check the name, AWS_REGION and AWS_PROFILE"
            )),
            _ => anyhow::anyhow!("--stack {name}: cannot describe the stack: {detail}"),
        }
    })?;
    output
        .stacks
        .unwrap_or_default()
        .into_iter()
        .next()
        .ok_or_else(|| exit::unusable(format!("--stack {name}: CloudFormation has no such stack")))
}

/// The variables the stack's functions run with: `env` with the stack's parameters and outputs
/// laid over it (the stack is the truth about its own resources and settings).
pub fn stack_vars(
    name: &str,
    stack: &Stack,
    mut env: HashMap<String, String>,
) -> anyhow::Result<HashMap<String, String>> {
    let outputs: HashMap<&str, &str> =
        stack.outputs().iter().filter_map(|output| Some((output.output_key()?, output.output_value()?))).collect();
    for (output, variable) in STACK_OUTPUTS {
        match outputs.get(output) {
            Some(value) => {
                env.insert(variable.to_owned(), (*value).to_owned());
            }
            // The secret is optional (then credentials come from the environment).
            None if variable == "BRIDGE_SECRETS_ARN" || variable == "DEAD_LETTER_QUEUE_URL" => {}
            None => {
                return Err(exit::unusable(format!(
                    "--stack {name}: the stack has no output {output}; deploy this version's template.yaml to it (sam deploy)"
                )));
            }
        }
    }
    for parameter in stack.parameters() {
        let (Some(key), Some(value)) = (parameter.parameter_key(), parameter.parameter_value()) else { continue };
        if let Some((_, variable)) = STACK_PARAMETERS.iter().find(|(name, _)| *name == key) {
            env.insert((*variable).to_owned(), value.to_owned());
        }
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudformation::types::{Output, Parameter};

    fn stack(outputs: &[(&str, &str)], parameters: &[(&str, &str)]) -> Stack {
        let mut builder = Stack::builder();
        for (key, value) in outputs {
            builder = builder.outputs(Output::builder().output_key(*key).output_value(*value).build());
        }
        for (key, value) in parameters {
            builder = builder.parameters(Parameter::builder().parameter_key(*key).parameter_value(*value).build());
        }
        builder.build()
    }

    #[test]
    fn stack_outputs_and_parameters_become_the_functions_variables() {
        let described = stack(
            &[
                ("EventsTableName", "s-events"),
                ("ContactsTableName", "s-contacts"),
                ("HistoryTableName", "s-history"),
                ("EventsQueueUrl", "https://sqs/q.fifo"),
                ("DeadLetterQueueUrl", "https://sqs/dlq.fifo"),
                ("SecretArn", "arn:secret"),
                ("HealthUrl", "https://x/health"),
            ],
            &[
                ("TagTemplate", "{state}"),
                ("AlarmEmail", "ops@example.com"),
                ("WebinarSettings", r#"[{"source":"zoom","webinar":"1","listid":2}]"#),
                ("TagsAhead", "off"),
            ],
        );
        let env = HashMap::from([("EVENTS_TABLE".to_owned(), "stale".to_owned())]);
        let vars = stack_vars("s", &described, env).expect("complete");
        assert_eq!(vars["EVENTS_TABLE"], "s-events", "the stack wins");
        assert_eq!(vars["HISTORY_TABLE"], "s-history");
        assert_eq!(vars["DEAD_LETTER_QUEUE_URL"], "https://sqs/dlq.fifo");
        assert_eq!(vars["BRIDGE_SECRETS_ARN"], "arn:secret");
        assert_eq!(vars["BRIDGE_TAG_TEMPLATE"], "{state}");
        assert_eq!(vars["BRIDGE_WEBINAR_SETTINGS"], r#"[{"source":"zoom","webinar":"1","listid":2}]"#);
        assert_eq!(vars["BRIDGE_TAGS_AHEAD"], "off");
        assert!(!vars.values().any(|value| value == "ops@example.com"), "only the engine's parameters");
    }

    #[test]
    fn a_stack_without_the_history_output_asks_for_a_redeploy() {
        let described = stack(&[("EventsTableName", "e"), ("ContactsTableName", "c"), ("EventsQueueUrl", "q")], &[]);
        let error = stack_vars("old", &described, HashMap::new()).expect_err("incomplete");
        assert!(error.to_string().contains("no output HistoryTableName"), "{error}");
    }
}
