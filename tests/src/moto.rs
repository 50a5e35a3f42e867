//! A private moto server (SQS, DynamoDB, Secrets Manager on their real wire protocols) for the
//! AWS adapter and handler suites, with uniquely named resources per test.
//!
//! [`Moto::start`] runs moto's server from `.tools` on a free loopback port, one request at a time
//! (see [`SERIALIZED_MOTO`]), or reuses the server at `MOTO_ENDPOINT` when that is set, and kills
//! its own server on drop. (A server at `MOTO_ENDPOINT` is used as it is; a plain threaded moto
//! can let the concurrency cases fail for its own races.) The SDK configuration is
//! built explicitly (endpoint, region, static test credentials), so nothing in production code
//! knows about tests: production reads the same settings from `AWS_ENDPOINT_URL` and friends.
//!
//! Resources mirror the SAM template (and `infra/local/create-resources.sh`): a high-throughput
//! FIFO queue without content-based deduplication and a FIFO dead-letter queue behind a redrive
//! policy, the events table keyed by `event_id` with TTL on `expires_at`, and the contacts table
//! keyed by `pk`, both on demand. Visibility timeout and maxReceiveCount come from the test.

use crate::port_suite::InspectableQueue;
use async_trait::async_trait;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use webinar_bridge::adapters::aws_secrets::aws_config::{self, BehaviorVersion, Region, SdkConfig};
use webinar_bridge::adapters::aws_secrets::aws_sdk_secretsmanager;
use webinar_bridge::adapters::dynamodb::aws_sdk_dynamodb;
use webinar_bridge::adapters::dynamodb::aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use webinar_bridge::adapters::dynamodb::{
    CONTACTS_PARTITION_KEY, EVENTS_PARTITION_KEY, EVENTS_TTL_ATTRIBUTE, REFUSED_INDEX, REFUSED_INDEX_KEY,
    REFUSED_INDEX_SORT,
};
use webinar_bridge::adapters::dynamodb_history::{
    HISTORY_PARTITION_KEY, HISTORY_SORT_KEY, HISTORY_TTL_ATTRIBUTE, PROBLEMS_INDEX, PROBLEMS_INDEX_KEY,
};
use webinar_bridge::adapters::memory::{DeadLetter, QueueSettings};
use webinar_bridge::adapters::sqs::aws_sdk_sqs;
use webinar_bridge::adapters::sqs::aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use webinar_bridge::adapters::sqs::{DEAD_LETTER_REASON_ATTRIBUTE, SqsQueue};
use webinar_bridge::ports::{EventQueue, OutgoingMessage, PortError, PortResult, QueuedMessage};

pub const REGION: &str = "eu-central-1";
/// The maxReceiveCount the SAM template gives the events queue's redrive policy.
pub const TEMPLATE_MAX_RECEIVE_COUNT: u32 = 30;

const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
const START_ATTEMPTS: usize = 3;

/// Where `install-tools.sh` puts moto.
pub fn moto_server_binary() -> PathBuf {
    crate::harness::workspace_root().join(".tools/bin/moto_server")
}

/// `moto_server` with one change: requests are handled one at a time. moto serves each request on
/// its own thread without locking its backends, so two simultaneous conditional writes can both
/// pass their condition, and two receives can both get one message. AWS makes each request atomic;
/// serializing whole requests restores that, while tasks still interleave between requests, which
/// is where the adapters' races live.
const SERIALIZED_MOTO: &str = "\
import threading
from moto import server
lock = threading.Lock()
serve = server.DomainDispatcherApplication.__call__
def one_at_a_time(self, environ, start_response):
    with lock:
        return list(serve(self, environ, start_response))
server.DomainDispatcherApplication.__call__ = one_at_a_time
server.main()
";

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("a bound listener has an address").port()
}

/// A process-wide unique suffix for resource names.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}-{:06x}", std::process::id(), rand::random::<u32>() & 0xff_ffff)
}

/// A moto server and an SDK configuration pointing at it.
pub struct Moto {
    endpoint: String,
    child: Option<Child>,
    sdk: SdkConfig,
}

impl Moto {
    /// Reuses `MOTO_ENDPOINT` if set, else starts a private server.
    pub async fn start() -> Moto {
        let (endpoint, child) = match std::env::var("MOTO_ENDPOINT") {
            Ok(endpoint) if !endpoint.trim().is_empty() => (endpoint.trim().trim_end_matches('/').to_owned(), None),
            _ => {
                let (endpoint, child) = spawn_moto().await;
                (endpoint, Some(child))
            }
        };
        let sdk = sdk_config(&endpoint).await;
        Moto { endpoint, child, sdk }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn sdk(&self) -> &SdkConfig {
        &self.sdk
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    pub fn secrets_manager(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk)
    }

    /// The variables production code reads to reach this server (for `BridgeConfig` and for
    /// child processes).
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }

    /// A FIFO queue and its FIFO dead-letter queue, as the template defines them.
    pub async fn create_queue(&self, settings: QueueSettings) -> MotoQueue {
        let sqs = self.sqs();
        let name = unique_name("events");
        let dlq_retention = [(QueueAttributeName::MessageRetentionPeriod, "1209600".to_owned())];
        let dlq_url = create_fifo_queue(&sqs, &format!("{name}-dlq.fifo"), &dlq_retention).await;
        let dlq_arn = queue_arn(&sqs, &dlq_url).await;
        let redrive =
            serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": settings.max_receive_count});
        let attributes = [
            (QueueAttributeName::DeduplicationScope, "messageGroup".to_owned()),
            (QueueAttributeName::FifoThroughputLimit, "perMessageGroupId".to_owned()),
            (QueueAttributeName::MessageRetentionPeriod, "345600".to_owned()),
            (QueueAttributeName::VisibilityTimeout, settings.visibility_timeout.as_secs().to_string()),
            (QueueAttributeName::RedrivePolicy, redrive.to_string()),
        ];
        let url = create_fifo_queue(&sqs, &format!("{name}.fifo"), &attributes).await;
        MotoQueue { queue: SqsQueue::new(sqs.clone(), url).with_dead_letter_queue(dlq_url.clone()), dlq_url, sqs }
    }

    /// The events table: key `event_id`, TTL on `expires_at`.
    pub async fn create_events_table(&self) -> String {
        let name = unique_name("events");
        // With the template's sparse index of refused receipts.
        let refused = sparse_index(REFUSED_INDEX, REFUSED_INDEX_KEY, REFUSED_INDEX_SORT);
        create_table_with(&self.dynamodb(), &name, EVENTS_PARTITION_KEY, None, Some(refused)).await;
        self.enable_ttl(&name, EVENTS_TTL_ATTRIBUTE).await;
        name
    }

    /// The history table as the template defines it: contact hash and sort key, the sparse
    /// problems index, TTL.
    pub async fn create_history_table(&self) -> String {
        let name = unique_name("history");
        let problems = sparse_index(PROBLEMS_INDEX, PROBLEMS_INDEX_KEY, HISTORY_SORT_KEY);
        create_table_with(&self.dynamodb(), &name, HISTORY_PARTITION_KEY, Some(HISTORY_SORT_KEY), Some(problems)).await;
        self.enable_ttl(&name, HISTORY_TTL_ATTRIBUTE).await;
        name
    }

    async fn enable_ttl(&self, table: &str, attribute: &str) {
        self.dynamodb()
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(attribute)
                    .build()
                    .expect("a complete TTL specification"),
            )
            .send()
            .await
            .unwrap_or_else(|error| panic!("enable TTL on {table}: {error:?}"));
    }

    /// The contacts table (contacts and tag directory): key `pk`.
    pub async fn create_contacts_table(&self) -> String {
        let name = unique_name("contacts");
        create_table(&self.dynamodb(), &name, CONTACTS_PARTITION_KEY).await;
        name
    }

    /// A secret with `secret_string`; returns its ARN.
    pub async fn create_secret(&self, secret_string: &str) -> String {
        let output = self
            .secrets_manager()
            .create_secret()
            .name(unique_name("bridge-secrets"))
            .secret_string(secret_string)
            .send()
            .await
            .expect("create the secret");
        output.arn().expect("a created secret has an ARN").to_owned()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn spawn_moto() -> (String, Child) {
    let binary = moto_server_binary();
    assert!(binary.exists(), "{} is missing: run infra/local/install-tools.sh first", binary.display());
    for _ in 0..START_ATTEMPTS {
        let port = free_port();
        let python = binary.with_file_name("python3");
        let mut child = Command::new(&python)
            .args(["-c", SERIALIZED_MOTO, "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start moto with {}: {error}", python.display()));
        let endpoint = format!("http://127.0.0.1:{port}");
        if wait_until_up(&endpoint, &mut child).await {
            return (endpoint, child);
        }
        // Most likely the port was taken between picking and binding: try another.
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("moto_server did not start after {START_ATTEMPTS} attempts");
}

async fn wait_until_up(endpoint: &str, child: &mut Child) -> bool {
    let http = reqwest::Client::new();
    let started = Instant::now();
    while started.elapsed() < STARTUP_TIMEOUT {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false;
        }
        let answer = http.get(format!("{endpoint}/moto-api/")).timeout(Duration::from_secs(2)).send().await;
        if answer.is_ok_and(|response| response.status().is_success()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn sdk_config(endpoint: &str) -> SdkConfig {
    let credentials = aws_sdk_sqs::config::Credentials::new("testing", "testing", None, None, "moto-test");
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(credentials)
        .load()
        .await
}

async fn create_fifo_queue(sqs: &aws_sdk_sqs::Client, name: &str, extra: &[(QueueAttributeName, String)]) -> String {
    let mut request = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "false");
    for (attribute, value) in extra {
        request = request.attributes(attribute.clone(), value);
    }
    let output = request.send().await.unwrap_or_else(|error| panic!("create queue {name}: {error:?}"));
    output.queue_url().expect("a created queue has a URL").to_owned()
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    let output = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("read the queue ARN");
    output.attributes().and_then(|attributes| attributes.get(&QueueAttributeName::QueueArn)).expect("QueueArn").clone()
}

/// A global secondary index over `key` (hash) and `sort` (range), all attributes projected.
struct SparseIndex {
    name: &'static str,
    key: &'static str,
    sort: &'static str,
}

fn sparse_index(name: &'static str, key: &'static str, sort: &'static str) -> SparseIndex {
    SparseIndex { name, key, sort }
}

fn string_attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("a complete attribute definition")
}

fn key_element(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder().attribute_name(name).key_type(kind).build().expect("a complete key")
}

async fn create_table_with(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
    key: &str,
    sort: Option<&str>,
    index: Option<SparseIndex>,
) {
    let mut attributes: Vec<&str> = vec![key];
    let mut request = dynamodb.create_table().table_name(name).billing_mode(BillingMode::PayPerRequest);
    request = request.key_schema(key_element(key, KeyType::Hash));
    if let Some(sort) = sort {
        attributes.push(sort);
        request = request.key_schema(key_element(sort, KeyType::Range));
    }
    if let Some(index) = index {
        for attribute in [index.key, index.sort] {
            if !attributes.contains(&attribute) {
                attributes.push(attribute);
            }
        }
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .key_schema(key_element(index.key, KeyType::Hash))
                .key_schema(key_element(index.sort, KeyType::Range))
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .build()
                .expect("a complete index"),
        );
    }
    for attribute in attributes {
        request = request.attribute_definitions(string_attribute(attribute));
    }
    request.send().await.unwrap_or_else(|error| panic!("create table {name}: {error:?}"));
}

async fn create_table(dynamodb: &aws_sdk_dynamodb::Client, name: &str, key: &str) {
    create_table_with(dynamodb, name, key, None, None).await;
}

// ---------------------------------------------------------------------------------------------
// The queue as tests look at it

/// An [`SqsQueue`] plus what tests need to inspect: its dead-letter queue and its depth.
#[derive(Clone, Debug)]
pub struct MotoQueue {
    pub queue: SqsQueue,
    pub dlq_url: String,
    sqs: aws_sdk_sqs::Client,
}

impl MotoQueue {
    pub fn url(&self) -> &str {
        self.queue.queue_url()
    }

    /// Raw SDK messages from the main queue, with every system attribute, as Lambda's event
    /// source mapping would receive them (at most ten).
    pub async fn receive_raw(&self, max: i32) -> Vec<aws_sdk_sqs::types::Message> {
        let output = self
            .sqs
            .receive_message()
            .queue_url(self.url())
            .max_number_of_messages(max)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive from the queue");
        output.messages.unwrap_or_default()
    }

    /// Messages in the dead-letter queue, left in it. Peeking is itself a receive, so the count
    /// reported is the receives before the peek. Sees at most ten messages per group.
    pub async fn dead_letters(&self) -> PortResult<Vec<DeadLetter>> {
        let mut peeked = Vec::new();
        loop {
            let output = self
                .sqs
                .receive_message()
                .queue_url(&self.dlq_url)
                .max_number_of_messages(10)
                .visibility_timeout(30)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(|error| PortError::Unavailable(format!("ReceiveMessage (DLQ): {error:?}")))?;
            let messages = output.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            peeked.extend(messages);
        }
        let mut dead = Vec::with_capacity(peeked.len());
        for message in &peeked {
            let attribute = |name: MessageSystemAttributeName| {
                message.attributes().and_then(|attributes| attributes.get(&name)).cloned().unwrap_or_default()
            };
            let receives: u32 = attribute(MessageSystemAttributeName::ApproximateReceiveCount).parse().unwrap_or(1);
            dead.push(DeadLetter {
                message_id: message.message_id().unwrap_or_default().to_owned(),
                group_id: attribute(MessageSystemAttributeName::MessageGroupId),
                body: message.body().unwrap_or_default().to_owned(),
                receive_count: receives.saturating_sub(1),
                reason: message
                    .message_attributes()
                    .and_then(|attributes| attributes.get(DEAD_LETTER_REASON_ATTRIBUTE))
                    .and_then(|value| value.string_value())
                    .map(str::to_owned),
            });
            // Back to visible, so the dead letters stay where an operator would find them.
            if let Some(receipt) = message.receipt_handle() {
                let _ = self
                    .sqs
                    .change_message_visibility()
                    .queue_url(&self.dlq_url)
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .send()
                    .await;
            }
        }
        Ok(dead)
    }

    /// Messages in the main queue, visible, in flight or delayed.
    pub async fn depth(&self) -> PortResult<usize> {
        self.count(self.url()).await
    }

    /// Messages in the dead-letter queue.
    pub async fn dlq_depth(&self) -> PortResult<usize> {
        self.count(&self.dlq_url).await
    }

    async fn count(&self, url: &str) -> PortResult<usize> {
        let output = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|error| PortError::Unavailable(format!("GetQueueAttributes: {error:?}")))?;
        let attributes = output.attributes().cloned().unwrap_or_default();
        Ok(attributes.values().filter_map(|count| count.parse::<usize>().ok()).sum())
    }
}

#[async_trait]
impl EventQueue for MotoQueue {
    async fn send(&self, messages: &[OutgoingMessage]) -> PortResult<()> {
        self.queue.send(messages).await
    }

    async fn receive(&self, max: usize) -> PortResult<Vec<QueuedMessage>> {
        self.queue.receive(max).await
    }

    async fn ack(&self, message: &QueuedMessage) -> PortResult<()> {
        self.queue.ack(message).await
    }

    async fn retry_later(&self, message: &QueuedMessage, delay: Duration) -> PortResult<()> {
        self.queue.retry_later(message, delay).await
    }

    async fn dead_letter(&self, message: &QueuedMessage, reason: &str) -> PortResult<()> {
        self.queue.dead_letter(message, reason).await
    }
}

#[async_trait]
impl InspectableQueue for MotoQueue {
    async fn dead_letters(&self) -> PortResult<Vec<DeadLetter>> {
        MotoQueue::dead_letters(self).await
    }

    async fn pending(&self) -> PortResult<usize> {
        self.depth().await
    }
}
