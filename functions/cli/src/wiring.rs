//! Building the engine's parts from the configuration: storage adapters, the KlickTipp client
//! (or the in-process simulator standing in for KlickTipp), ingest and the consumer.

use crate::exit;
use anyhow::Context as _;
use klicktipp_sim::{FieldSpec, FieldType, ListbuildingKey, SimConfig, Simulator};
use std::sync::Arc;
use std::time::Duration;
use webinar_bridge::Secret;
use webinar_bridge::adapters::aws_secrets::SdkConfig;
use webinar_bridge::adapters::dynamodb::{DynamoContactStore, DynamoEventLog, DynamoReceiptLog, DynamoTagDirectory};
use webinar_bridge::adapters::dynamodb_history::DynamoHistoryLog;
use webinar_bridge::adapters::memory::{
    MemoryContactStore, MemoryEventLog, MemoryHistoryLog, MemoryQueue, MemoryReceiptLog, MemoryTagDirectory,
    MemoryWebinarSettings, QueueSettings,
};
use webinar_bridge::adapters::sqlite::{
    SqliteContactStore, SqliteDb, SqliteEventLog, SqliteHistoryLog, SqliteParkedWebhooks, SqliteQueue,
    SqliteReceiptLog, SqliteTagDirectory, SqliteWebinarSettings,
};
use webinar_bridge::adapters::sqs::SqsQueue;
use webinar_bridge::config::{BridgeConfig, KlickTippMode};
use webinar_bridge::consume::{ApplyMode, Consumer, ConsumerOptions};
use webinar_bridge::domain::{FieldFormat, LogicalField, Settings};
use webinar_bridge::ingest::Ingest;
use webinar_bridge::klicktipp::{KlickTippAuth, KlickTippClient, KlickTippConfig};
use webinar_bridge::ports::WebinarSettings;
use webinar_bridge::ports::{
    Clock, ContactStore, EventLog, EventQueue, HistoryLog, ParkedWebhooks, ReceiptLog, TagDirectory,
};
use webinar_bridge::tag_resolver::TagResolver;

/// The configuration from the environment; an invalid value ends the command with exit 2 and
/// the one line `VARIABLE: problem`.
pub fn load_config() -> anyhow::Result<BridgeConfig> {
    BridgeConfig::from_env().map_err(|error| exit::unusable(error.to_string()))
}

/// Every port the engine needs, whatever stores them.
#[derive(Clone)]
pub struct Ports {
    pub queue: Arc<dyn EventQueue>,
    pub log: Arc<dyn EventLog>,
    pub contacts: Arc<dyn ContactStore>,
    pub tags: Arc<dyn TagDirectory>,
    /// Ingest's record of event ids and payload fingerprints (409 on a reused id).
    pub receipts: Arc<dyn ReceiptLog>,
    /// Each event's story: received by ingest, its outcome by the consumer (DESIGN 12).
    pub history: Arc<dyn HistoryLog>,
    /// Per-webinar settings (tag mapping, listid, include filter) and seen webinars.
    pub webinar_settings: Arc<dyn WebinarSettings>,
    /// Authenticated webhooks that could not become an event, kept to be reprocessed; `None`
    /// (`simulate`) answers them 422 as before.
    pub parked: Option<Arc<dyn ParkedWebhooks>>,
}

/// All ports on one SQLite file (`serve`).
pub fn sqlite_ports(db: &SqliteDb, queue_settings: QueueSettings) -> Ports {
    Ports {
        queue: Arc::new(SqliteQueue::new(db.clone(), queue_settings)),
        log: Arc::new(SqliteEventLog::new(db.clone())),
        contacts: Arc::new(SqliteContactStore::new(db.clone())),
        tags: Arc::new(SqliteTagDirectory::new(db.clone())),
        receipts: Arc::new(SqliteReceiptLog::new(db.clone())),
        history: Arc::new(SqliteHistoryLog::new(db.clone())),
        webinar_settings: Arc::new(SqliteWebinarSettings::new(db.clone())),
        parked: Some(Arc::new(SqliteParkedWebhooks::new(db.clone()))),
    }
}

/// The AWS resources a stack holds the bridge's state in (the Lambdas' variables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsResources {
    pub events_table: String,
    pub contacts_table: String,
    pub history_table: String,
    pub events_queue_url: String,
    pub dead_letter_queue_url: Option<String>,
}

/// All ports on a deployed stack's DynamoDB tables and SQS queue (`--stack`, or the Lambdas'
/// variables).
pub fn aws_ports(sdk: &SdkConfig, resources: &AwsResources) -> Ports {
    let mut queue = SqsQueue::from_conf(sdk, &resources.events_queue_url);
    if let Some(url) = &resources.dead_letter_queue_url {
        queue = queue.with_dead_letter_queue(url);
    }
    Ports {
        queue: Arc::new(queue),
        log: Arc::new(DynamoEventLog::from_conf(sdk, &resources.events_table)),
        contacts: Arc::new(DynamoContactStore::from_conf(sdk, &resources.contacts_table)),
        tags: Arc::new(DynamoTagDirectory::from_conf(sdk, &resources.contacts_table)),
        receipts: Arc::new(DynamoReceiptLog::from_conf(sdk, &resources.events_table)),
        history: Arc::new(DynamoHistoryLog::from_conf(sdk, &resources.history_table)),
        webinar_settings: Arc::new(webinar_bridge::adapters::dynamodb::DynamoWebinarSettings::from_conf(
            sdk,
            &resources.contacts_table,
        )),
        parked: Some(Arc::new(webinar_bridge::adapters::dynamodb::DynamoParkedWebhooks::from_conf(
            sdk,
            &resources.events_table,
        ))),
    }
}

/// All ports in memory on `clock` (`simulate`); the queue is also returned as itself so the
/// caller can see what is pending and what was dead-lettered.
pub fn memory_ports(queue_settings: QueueSettings, clock: Arc<dyn Clock>) -> (Ports, MemoryQueue) {
    let queue = MemoryQueue::with_clock(queue_settings, clock);
    let ports = Ports {
        queue: Arc::new(queue.clone()),
        log: Arc::new(MemoryEventLog::default()),
        contacts: Arc::new(MemoryContactStore::default()),
        tags: Arc::new(MemoryTagDirectory::default()),
        receipts: Arc::new(MemoryReceiptLog::default()),
        history: Arc::new(MemoryHistoryLog::default()),
        webinar_settings: Arc::new(MemoryWebinarSettings::default()),
        parked: None,
    };
    (ports, queue)
}

/// Ingest and the consumer over the same ports.
pub fn assemble(
    ports: &Ports,
    client: KlickTippClient,
    config: &BridgeConfig,
    options: ConsumerOptions,
    clock: Arc<dyn Clock>,
) -> (Ingest, Consumer) {
    let ingest = Ingest::new(Arc::clone(&ports.queue), config.secrets.clone())
        .with_receipts(Arc::clone(&ports.receipts), config.retention)
        .with_history(Arc::clone(&ports.history))
        .with_field_aliases(config.field_aliases.clone());
    let ingest = match &ports.parked {
        Some(parked) => ingest.with_parked(Arc::clone(parked), config.parked_cap),
        None => ingest,
    };
    let tags = TagResolver::new(Arc::clone(&ports.tags), client.clone(), Arc::clone(&clock));
    let consumer = Consumer::new(
        Arc::clone(&ports.log),
        Arc::clone(&ports.contacts),
        tags,
        client,
        config.settings.clone(),
        options,
        clock,
    )
    .with_history(Arc::clone(&ports.history))
    .with_webinar_settings(Arc::clone(&ports.webinar_settings), config.tags_ahead);
    (ingest, consumer)
}

/// Consumer options from the configuration; `lease` is how long a claim keeps others off.
pub fn consumer_options(config: &BridgeConfig, mode: ApplyMode, lease: Duration) -> ConsumerOptions {
    ConsumerOptions {
        lease,
        retention: config.retention,
        listid: config.klicktipp.listid,
        mode,
        ..ConsumerOptions::default()
    }
}

// ---------------------------------------------------------------------------------------------
// KlickTipp

/// Where the consumer's KlickTipp calls go.
pub struct KlickTippTarget {
    pub client: KlickTippClient,
    pub mode: ApplyMode,
    /// Set when no credentials are configured and the in-process simulator stands in.
    pub simulator: Option<Simulator>,
}

/// The configured account, or, without credentials, a simulator started on `simulator_listen`.
/// One process owns the whole rate (`BRIDGE_KLICKTIPP_RPS`).
pub async fn klicktipp_target(config: &BridgeConfig, simulator_listen: &str) -> anyhow::Result<KlickTippTarget> {
    let mode = match config.klicktipp.mode() {
        KlickTippMode::Unconfigured => {
            let simulator = start_simulator(simulator_config(&config.settings), simulator_listen).await?;
            let client = client(simulator_client_config(&simulator, config.klicktipp.rps))?;
            return Ok(KlickTippTarget { client, mode: ApplyMode::Management, simulator: Some(simulator) });
        }
        KlickTippMode::Management => ApplyMode::Management,
        KlickTippMode::Listbuilding => ApplyMode::Listbuilding,
    };
    let client = client(config.klicktipp.client_config(1))?;
    Ok(KlickTippTarget { client, mode, simulator: None })
}

/// A client for the Management API of the configured account (discovery and checks). Without
/// Management credentials there is nothing to ask: exit 2 saying what is missing.
pub fn management_client(config: &BridgeConfig) -> anyhow::Result<KlickTippClient> {
    match config.klicktipp.mode() {
        KlickTippMode::Management => client(config.klicktipp.client_config(1)),
        KlickTippMode::Unconfigured => Err(exit::unusable(
            "KlickTipp credentials are missing: set KLICKTIPP_USERNAME and KLICKTIPP_PASSWORD (or KLICKTIPP_USERNAME, KLICKTIPP_DEVELOPER_KEY and KLICKTIPP_CUSTOMER_KEY)",
        )),
        KlickTippMode::Listbuilding => Err(exit::unusable(
            "only KLICKTIPP_LISTBUILDING_APIKEY is configured; this needs Management API credentials: set KLICKTIPP_USERNAME and KLICKTIPP_PASSWORD (or the developer and customer keys)",
        )),
    }
}

pub fn client(config: KlickTippConfig) -> anyhow::Result<KlickTippClient> {
    KlickTippClient::new(config).context("cannot build the KlickTipp client")
}

pub async fn start_simulator(config: SimConfig, listen: &str) -> anyhow::Result<Simulator> {
    klicktipp_sim::start(config, listen).await.context("cannot start the KlickTipp simulator")
}

/// A client logged in to `simulator` with its account's credentials.
pub fn simulator_client_config(simulator: &Simulator, rate_per_second: f64) -> KlickTippConfig {
    let account = SimConfig::default();
    let auth = KlickTippAuth::Session { username: account.username, password: Secret::new(account.password) };
    let mut config = KlickTippConfig::new(simulator.url(), auth);
    config.rate_per_second = rate_per_second;
    config
}

/// The simulated account: KlickTipp's global fields plus one custom field for every
/// `field<digits>` key in the field map, typed as its logical field needs.
pub fn simulator_config(settings: &Settings) -> SimConfig {
    let custom_fields = settings
        .field_map
        .iter()
        .filter(|(_, key)| is_custom_field_key(key))
        .map(|(field, key)| FieldSpec::new(key, field.as_str(), simulator_field_type(field)))
        .chain(
            settings
                .field_map
                .custom()
                .filter(|(_, key)| is_custom_field_key(key))
                .map(|(name, key)| FieldSpec::new(key, name, FieldType::Line)),
        )
        .collect();
    SimConfig { custom_fields, ..SimConfig::default() }
}

/// The simulated account also accepts `apikey` on the Listbuilding API (`simulate` in
/// listbuilding mode), signing contacts in to the default double opt-in without a tag.
pub fn with_listbuilding_key(mut config: SimConfig, apikey: &Secret) -> SimConfig {
    config.listbuilding_keys.push(ListbuildingKey {
        apikey: apikey.expose().to_owned(),
        listid: klicktipp_sim::DEFAULT_DOUBLE_OPTIN_LISTID,
        tagid: 0,
    });
    config
}

/// Custom data fields are `field` + the numeric id KlickTipp gave them; the named ones
/// (`fieldFirstName`, ...) are global and exist in every account.
fn is_custom_field_key(key: &str) -> bool {
    key.strip_prefix("field").is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

fn simulator_field_type(field: LogicalField) -> FieldType {
    match field.format() {
        FieldFormat::Line => FieldType::Line,
        FieldFormat::UnixSeconds => FieldType::DateTime,
        FieldFormat::Url => FieldType::Url,
        FieldFormat::Integer => FieldType::Number,
        FieldFormat::Decimal => FieldType::Decimal,
        FieldFormat::Date => FieldType::Date,
        FieldFormat::Time => FieldType::Time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webinar_bridge::domain::FieldMap;

    #[test]
    fn only_numeric_field_keys_become_custom_fields() {
        let field_map = FieldMap::parse_json(
            r#"{"first_name":"fieldFirstName","webinar_start":"field101","purchase_amount":"field102","join_url":"fieldWebsite"}"#,
        )
        .expect("valid map");
        let settings = Settings { field_map, ..Settings::default() };
        let fields: Vec<(String, FieldType)> =
            simulator_config(&settings).custom_fields.into_iter().map(|spec| (spec.key, spec.field_type)).collect();
        assert_eq!(fields, [("field101".to_owned(), FieldType::DateTime), ("field102".to_owned(), FieldType::Decimal)]);
    }
}
